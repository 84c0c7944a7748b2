"""`kobliat outbox list` and `kobliat outbox retry`: the operator's view of replies that were
not sent. Nothing here shows a message body; errors are shown with phone numbers masked."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from kobliat import logs

if TYPE_CHECKING:
    from kobliat.db.engine import Database

app = typer.Typer(
    help="Outbound messages that were not sent: list them, retry them.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


@app.command("list")
def list_sends(
    state: Literal["all", "failed", "pending"] = typer.Option("all", help="which sends"),
    limit: int = typer.Option(50, min=1, help="rows per state"),
) -> None:
    """Show failed and pending sends: message, provider, attempts, last error."""
    from kobliat.sending import service

    rows: list[tuple[str, Any]] = []
    with _database() as db, db.reading() as conn:
        if state in ("all", "failed"):
            rows += [("failed", row) for row in service.failed(conn, limit=limit)]
        if state in ("all", "pending"):
            rows += [(row.state, row) for row in service.pending(conn, limit=limit)]
    if not rows:
        err.print("no unsent messages")
        return
    table = Table("state", "message id", "conversation id", "provider", "attempts", "when")
    table.add_column("last error", overflow="fold")
    for shown, row in rows:
        when = row.updated_at if shown == "failed" else row.next_attempt_at
        style = "red" if shown == "failed" else "yellow"
        table.add_row(
            f"[{style}]{shown}[/{style}]",
            str(row.message_id),
            str(row.conversation_id),
            row.provider,
            str(row.attempts),
            _time(when),
            _error(row.last_error),
        )
    out.print(table)


@app.command("retry")
def retry_sends(
    message_ids: list[str] = typer.Argument(None, metavar="MESSAGE_ID", show_default=False),
    all_failed: bool = typer.Option(False, "--all-failed", help="retry every failed send"),
) -> None:
    """Queue failed sends again (the named messages, or every failed one).

    A send that failed with an unknown outcome may have reached the customer: retrying it
    may deliver it twice.
    """
    from kobliat.sending import service

    if not message_ids and not all_failed:
        raise typer.BadParameter("name message ids or pass --all-failed")
    try:
        ids = [UUID(value) for value in message_ids or ()]
    except ValueError as exc:
        raise typer.BadParameter(f"not a message id: {exc}") from exc
    with _database() as db:
        queued = db.run(lambda uow: service.retry(uow, message_ids=ids))
    missing = set(ids) - set(queued)
    for message_id in queued:
        out.print(f"[green]queued[/green] {message_id}")
    for message_id in sorted(missing, key=str):
        err.print(f"[red]not a failed send[/red] {message_id}")
    if not queued and not missing:
        err.print("no failed sends")
    if missing:
        raise typer.Exit(1)


@contextmanager
def _database() -> Iterator[Database]:
    from kobliat.db.engine import Database
    from kobliat.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, secrets=logs.secrets_of(settings), fmt=settings.log_format)
    db = Database(settings.database_url, pool_size=2)
    try:
        yield db
    finally:
        db.dispose()


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _error(text: str | None) -> str:
    return "" if text is None else logs.mask_phones(text).replace("[", r"\[")
