"""`kobliat inbox list` and `kobliat inbox retry`: the operator's view of unprocessed deliveries.

Nothing here shows a payload or a header (they hold personal data and signatures); errors are
shown with phone numbers masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import typer
from rich.console import Console
from rich.table import Table

from kobliat import logs

if TYPE_CHECKING:
    from kobliat.db.engine import Database
    from kobliat.inbox.model import Entry
    from kobliat.inbox.service import Replay
    from kobliat.settings import Settings

app = typer.Typer(
    help="Webhook deliveries that are not processed: list them, retry them.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


@app.command("list")
def list_deliveries(
    state: Literal["all", "failed", "pending"] = typer.Option("all", help="which deliveries"),
    limit: int = typer.Option(50, min=1, help="rows per state"),
) -> None:
    """Show failed and pending deliveries: channel, delivery key, attempts, last error."""
    from kobliat.inbox import service

    states: list[Literal["failed", "pending"]] = [
        s for s in ("failed", "pending") if state in ("all", s)
    ]
    with _database() as (db, _):
        rows = [entry for s in states for entry in service.unprocessed(db, s, limit=limit)]
    if not rows:
        err.print("no unprocessed deliveries")
        return
    out.print(_entries_table(rows))


@app.command("retry")
def retry_deliveries(
    delivery_keys: list[str] = typer.Argument(None, metavar="DELIVERY_KEY", show_default=False),
    all_failed: bool = typer.Option(False, "--all-failed", help="retry every failed delivery"),
) -> None:
    """Try deliveries again now (the named ones, or every failed one) and show how it went."""
    from kobliat.inbox import service

    if not delivery_keys and not all_failed:
        raise typer.BadParameter("name delivery keys or pass --all-failed")
    with _database() as (db, settings):
        replays = service.retry(db, settings, keys=delivery_keys or (), all_failed=all_failed)
    if not replays:
        err.print("no failed deliveries")
        return
    out.print(_replays_table(replays))
    if any(r.result in ("failed", "not found") for r in replays):
        raise typer.Exit(1)


@contextmanager
def _database() -> Iterator[tuple[Database, Settings]]:
    from kobliat.db.engine import Database
    from kobliat.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    # No migration here: an operator's look at the inbox should never change the schema.
    db = Database(settings.database_url, pool_size=2)
    try:
        yield db, settings
    finally:
        db.dispose()


def _entries_table(rows: list[Entry]) -> Table:
    table = Table("state", "channel", "delivery key", "attempts", "received", "next / failed")
    table.add_column("last error", overflow="fold")
    for row in rows:
        when = row.failed_at if row.state == "failed" else row.next_attempt_at
        style = "red" if row.state == "failed" else "yellow"
        table.add_row(
            f"[{style}]{row.state}[/{style}]",
            row.channel,
            # Shown in full: it is what `kobliat inbox retry` takes, and it is the provider's
            # delivery id or a hash, never a phone number.
            row.delivery_key,
            str(row.attempts),
            _time(row.received_at),
            _time(when),
            _error(row.last_error),
        )
    return table


def _replays_table(replays: list[Replay]) -> Table:
    table = Table("delivery key", "channel", "result")
    table.add_column("error", overflow="fold")
    for replay in replays:
        style = "green" if replay.result.startswith("processed") else "red"
        table.add_row(
            replay.delivery_key,
            replay.channel or "",
            f"[{style}]{replay.result}[/{style}]",
            _error(replay.error),
        )
    return table


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _error(text: str | None) -> str:
    # Rich markup in an error (e.g. "[bold]") must print as it is.
    return "" if text is None else logs.mask_phones(text).replace("[", r"\[")
