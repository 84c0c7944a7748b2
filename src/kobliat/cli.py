"""The `kobliat` command: serve, migrate, keys create (and more as they arrive)."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console

from kobliat import auth, logs
from kobliat.bootstrap import Container
from kobliat.db import migrate as migrations
from kobliat.db.engine import Database
from kobliat.inbox import commands as inbox_commands
from kobliat.sending import commands as outbox_commands
from kobliat.settings import Settings

app = typer.Typer(
    help="kobliat: chat webhooks in; customers, conversations, messages, events out.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Manage REST API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(inbox_commands.app, name="inbox")
app.add_typer(outbox_commands.app, name="outbox")
console = Console(stderr=True)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="interface to listen on [KOBLIAT_HOST, 127.0.0.1]"),
    port: int | None = typer.Option(None, help="TCP port [KOBLIAT_PORT, 8000]"),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="server processes [KOBLIAT_WORKERS; default min(cores, 4) on PostgreSQL, 1 on SQLite]",
    ),
) -> None:
    """Migrate the database, then serve the API and webhooks (in several processes when the
    machine has several cores)."""
    import uvicorn

    from kobliat import bootstrap, server
    from kobliat.api import create_app

    settings = _development_secrets(_settings())
    logs.configure(settings.log_level, secrets=logs.secrets_of(settings), fmt=settings.log_format)
    host, port = host or settings.host, port or settings.port
    processes = workers or settings.workers or default_workers(settings.database_url)
    # Migrations and the first key happen here, once, before any worker starts.
    container = bootstrap.build(settings)
    _first_key(container)
    console.print(
        f"kobliat listening on http://{host}:{port}  (OpenAPI at /docs; {processes} process(es))"
    )
    options: dict[str, Any] = {"host": host, "port": port, **server.uvicorn_options(settings)}
    if processes == 1:
        app = create_app(settings, container=container)
        server.settle_heap()
        uvicorn.run(app, **options)
        return
    container.close()
    # The workers share one listening socket, and the event loop's library (libuv) accepts
    # every pending connection at once: the first worker to wake took all 32 keep-alive
    # connections of a benchmark's burst and then did all of its work. One accept per turn, a
    # libuv setting read from the environment, spreads new connections over the workers.
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    # uvicorn kills a worker that does not answer its health check in time; a worker still
    # importing on a busy machine does not answer, so the default 5 s kills healthy workers.
    uvicorn.run(
        "kobliat.cli:worker_app",
        factory=True,
        workers=processes,
        timeout_worker_healthcheck=60,
        **options,
    )


def _first_key(container: Container) -> None:
    """Create and print an API key when none exists (and none is configured)."""
    if container.settings.configured_api_keys() or auth.stored_key_count(container.db) > 0:
        return
    key = auth.create_key(container.db, name="first")
    console.print("[bold]No API key existed, so one was created. It is shown only once:[/bold]")
    print(key, flush=True)


def default_workers(database_url: str) -> int:
    """min(cores, 4) on PostgreSQL; 1 on SQLite, where processes would only queue on the one
    file lock (sleeping in SQLite's busy handler) instead of writing in parallel."""
    if database_url.startswith("sqlite"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 4))


def worker_app() -> Any:
    """The application of one `serve` worker process (the database is already migrated)."""
    from kobliat import bootstrap, server
    from kobliat.api import create_app

    settings = Settings()
    logs.configure(settings.log_level, secrets=logs.secrets_of(settings), fmt=settings.log_format)
    app = create_app(settings, container=bootstrap.build(settings, run_migrations=False))
    server.settle_heap()
    return app


def _settings() -> Settings:
    """The settings, or a clear message and exit code 2 when one of them is unusable."""
    try:
        return Settings()
    except ValidationError as exc:
        console.print(f"[red]kobliat cannot start:[/red] {exc}")
        raise typer.Exit(2) from None


def _development_secrets(settings: Settings) -> Settings:
    """On a first run with the embedded database and no channel secret, write random ones to
    .env, so webhooks (and `kobliat simulate`, which reads the same file) work at once."""
    from kobliat import devsecrets

    env = Path(".env")
    if not devsecrets.needed_for_development(settings):
        return settings
    names = devsecrets.write_env(env)
    console.print(
        f"No channel secret was set, so development secrets were written to {env.resolve()} "
        f"({', '.join(names)}). `kobliat simulate` run from here signs with them."
    )
    return _settings()


@app.command("dev-secrets")
def dev_secrets(
    path: Path = typer.Option(Path(".env"), help="the env file to write"),
    force: bool = typer.Option(False, help="replace secrets that are already set"),
) -> None:
    """Write random webhook secrets for local development to .env (read by serve and simulate)."""
    from kobliat import devsecrets

    names = devsecrets.write_env(path, force=force)
    if names:
        console.print(f"wrote {', '.join(names)} to {path}")
    else:
        console.print(f"{path} already sets every channel secret (use --force to replace them)")


@app.command()
def relay(
    host: str | None = typer.Option(None, help="interface for --port [KOBLIAT_HOST, 127.0.0.1]"),
    port: int | None = typer.Option(
        None, help="serve /healthz, /readyz, /metrics on this port [KOBLIAT_RELAY_PORT, none]"
    ),
) -> None:
    """Run the outbox relay on its own (NATS, HTTP subscriptions, pruning); no HTTP API, only
    the health endpoints when given a port."""
    from kobliat import bootstrap, relay_health

    settings = _settings()
    logs.configure(settings.log_level, secrets=logs.secrets_of(settings), fmt=settings.log_format)
    # A relay outlives database outages while it runs; it waits out one at its start too.
    container = bootstrap.build_when_reachable(settings)
    relay = bootstrap.build_relay(container)
    port = port if port is not None else settings.relay_port

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, relay.stop)
        await relay_health.run(container, relay, host=host or settings.host, port=port)

    nats = "NATS and " if settings.nats_url else ""
    health = f"; health on port {port}" if port is not None else ""
    console.print(f"kobliat relay delivering to {nats}HTTP subscriptions{health} (Ctrl-C stops)")
    try:
        asyncio.run(run())
    finally:
        container.close()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = Settings()
    db = Database(settings.database_url)
    migrations.upgrade(db.engine)
    db.dispose()
    console.print("database is up to date")


@keys_app.command("create")
def keys_create(name: str = typer.Option("default", help="a label for the key")) -> None:
    """Create an API key and print it (once; only its hash is stored)."""
    db = _migrated_database()
    try:
        print(auth.create_key(db, name=name))
    finally:
        db.dispose()


@keys_app.command("list")
def keys_list() -> None:
    """List stored API keys: id, name, prefix, created, last used, revoked (never the key)."""
    from rich.table import Table

    db = _migrated_database()
    try:
        keys = auth.list_keys(db)
    finally:
        db.dispose()
    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    for key in keys:
        table.add_row(
            str(key.id),
            key.name,
            key.prefix + "…",
            _when(key.created_at),
            _when(key.last_used_at),
            _when(key.revoked_at),
        )
    Console().print(table)
    if not keys:
        console.print("no stored keys (keys set in KOBLIAT_API_KEYS are not listed)")


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(help="the key's id (or its first characters) or its prefix"),
) -> None:
    """Revoke an API key; running servers refuse it within their key cache time (30 s)."""
    db = _migrated_database()
    try:
        revoked = auth.revoke_key(db, key)
    except auth.UnknownKey as exc:
        console.print(f"[red]{exc}[/red] (`kobliat keys list` shows the ids)")
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    console.print(f"revoked {revoked.id} ({revoked.name}, {revoked.prefix}…)")


def _migrated_database() -> Database:
    db = Database(Settings().database_url)
    migrations.upgrade(db.engine)
    return db


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


@app.command()
def simulate(
    url: str = typer.Option("http://127.0.0.1:8000", help="base URL of a running kobliat"),
    rate: float = typer.Option(20.0, min=0.1, help="webhooks per second"),
    duration: float = typer.Option(10.0, min=0.1, help="seconds to keep sending"),
    senders: int = typer.Option(25, min=1, help="distinct simulated customers"),
    api_key: str | None = typer.Option(
        None,
        envvar="KOBLIAT_API_KEY",
        help="an API key of the server (the one `serve` printed), to read back what it stored",
    ),
) -> None:
    """Send realistic signed webhooks of every channel and type to a running server."""
    from kobliat import simulate as simulation

    settings = Settings()
    report = simulation.run(
        url=url, rate=rate, duration=duration, senders=senders, settings=settings, console=console
    )
    if len(report.skipped) == 4:
        console.print(
            "[red]No channel secret is configured.[/red] Set the same KOBLIAT_WHATSAPP_APP_SECRET, "
            "KOBLIAT_TELEGRAM_SECRET_TOKEN, KOBLIAT_TWILIO_AUTH_TOKEN and/or "
            "KOBLIAT_GENERIC_WEBHOOK_SECRET for `kobliat serve` and `kobliat simulate` "
            "(a .env file works for both; see docs/webhooks.md)."
        )
        raise typer.Exit(2)
    console.print(simulation.summary(report))
    for hint in simulation.hints(report):
        console.print(f"[yellow]{hint}[/yellow]")
    _read_back(url, api_key or next(iter(settings.configured_api_keys()), None))
    if report.failures:
        console.print(f"[red]{report.failures} request(s) were not answered 2xx[/red]")
        raise typer.Exit(1)


def _read_back(url: str, api_key: str | None) -> None:
    """Show what the server stored, through its REST API."""
    import httpx

    from kobliat import simulate_readback

    if api_key is None:
        console.print(
            "Pass --api-key (the key `kobliat serve` printed) to see what the server stored."
        )
        return
    try:
        stored = simulate_readback.read_back(url, api_key)
    except httpx.HTTPError as exc:
        console.print(f"[red]could not read back what was stored: {exc}[/red]")
        return
    console.print(simulate_readback.table(stored))
