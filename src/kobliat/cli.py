"""The `kobliat` command: serve, migrate, keys create (and more as they arrive)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from kobliat import auth, logs
from kobliat.db import migrate as migrations
from kobliat.db.engine import Database
from kobliat.inbox import commands as inbox_commands
from kobliat.settings import Settings

app = typer.Typer(
    help="kobliat: chat webhooks in; customers, conversations, messages, events out.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Manage REST API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(inbox_commands.app, name="inbox")
console = Console(stderr=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
) -> None:
    """Migrate the database, then serve the API and webhooks."""
    import uvicorn

    from kobliat import bootstrap, server
    from kobliat.api import create_app

    settings = _settings()
    logs.configure(settings.log_level, secrets=logs.secrets_of(settings))
    container = bootstrap.build(settings)
    if not settings.configured_api_keys() and auth.stored_key_count(container.db) == 0:
        key = auth.create_key(container.db, name="first")
        console.print("[bold]No API key existed, so one was created. It is shown only once:[/bold]")
        print(key, flush=True)
    console.print(f"kobliat listening on http://{host}:{port}  (OpenAPI at /docs)")
    uvicorn.run(
        create_app(settings, container=container),
        host=host,
        port=port,
        **server.uvicorn_options(settings),
    )


def _settings() -> Settings:
    """The settings, or a clear message and exit code 2 when one of them is unusable."""
    try:
        return Settings()
    except ValidationError as exc:
        console.print(f"[red]kobliat cannot start:[/red] {exc}")
        raise typer.Exit(2) from None


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
def relay() -> None:
    """Run the outbox relay on its own (NATS, HTTP subscriptions, pruning); no HTTP API."""
    from kobliat import bootstrap

    settings = _settings()
    logs.configure(settings.log_level, secrets=logs.secrets_of(settings))
    container = bootstrap.build(settings)
    relay = bootstrap.build_relay(container)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, relay.stop)
        await relay.run()

    nats = "NATS and " if settings.nats_url else ""
    console.print(f"kobliat relay delivering to {nats}HTTP subscriptions (Ctrl-C stops)")
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
    settings = Settings()
    db = Database(settings.database_url)
    migrations.upgrade(db.engine)
    print(auth.create_key(db, name=name))
    db.dispose()


@app.command()
def simulate(
    url: str = typer.Option("http://127.0.0.1:8000", help="base URL of a running kobliat"),
    rate: float = typer.Option(20.0, min=0.1, help="webhooks per second"),
    duration: float = typer.Option(10.0, min=0.1, help="seconds to keep sending"),
    senders: int = typer.Option(25, min=1, help="distinct simulated customers"),
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
    if report.failures:
        console.print(f"[red]{report.failures} request(s) were not answered 2xx[/red]")
        raise typer.Exit(1)
