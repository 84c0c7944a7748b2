"""The `kobliat` command: serve, migrate, keys create (and more as they arrive)."""

from __future__ import annotations

import asyncio
import signal

import typer
from rich.console import Console

from kobliat import auth, logs
from kobliat.db import migrate as migrations
from kobliat.db.engine import Database
from kobliat.settings import Settings

app = typer.Typer(help="kobliat: chat webhooks in; customers, conversations, messages, events out.",
                  no_args_is_help=True)
keys_app = typer.Typer(help="Manage REST API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
) -> None:
    """Migrate the database, then serve the API and webhooks."""
    import uvicorn

    from kobliat import bootstrap
    from kobliat.api import create_app

    settings = Settings()
    logs.configure(settings.log_level)
    container = bootstrap.build(settings)
    if not settings.configured_api_keys() and auth.stored_key_count(container.db) == 0:
        key = auth.create_key(container.db, name="first")
        console.print("[bold]No API key existed, so one was created. It is shown only once:[/bold]")
        print(key, flush=True)
    console.print(f"kobliat listening on http://{host}:{port}  (OpenAPI at /docs)")
    uvicorn.run(create_app(settings, container=container), host=host, port=port,
                log_level=settings.log_level.lower())


@app.command()
def relay() -> None:
    """Run the outbox relay on its own (NATS, HTTP subscriptions, pruning); no HTTP API."""
    from kobliat import bootstrap

    settings = Settings()
    logs.configure(settings.log_level)
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
