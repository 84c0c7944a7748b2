"""32 writers at once through the ingest flow: no error, no retry, every message once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext

from kobliat import ingest
from kobliat.channels.records import ConversationRef, InboundMessage, Party
from kobliat.db.engine import Database
from kobliat.db.tables import messages
from tests.builders import count

WRITERS = 32
MESSAGES_EACH = 10


def _message(writer: int, n: int) -> InboundMessage:
    # Half the writers share one sender (one customer row, one conversation row to update).
    sender = "+15550000000" if writer % 2 else f"+1555100{writer:04d}"
    return InboundMessage(
        channel="whatsapp",
        external_message_id=f"wamid.w{writer}n{n}",
        sender=Party(external_type="whatsapp", external_id=sender),
        business=Party(external_type="whatsapp", external_id="+15559990000"),
        conversation=ConversationRef(kind="direct"),
        content_type="text",
        body=f"{writer}/{n}",
        sent_at=datetime(2026, 1, 1, 12, n, writer % 60, tzinfo=UTC),
    )


def test_thirty_two_concurrent_writers_store_everything_without_lock_errors(db_url: str) -> None:
    db = Database(db_url, pool_size=WRITERS)
    database_errors: list[str] = []

    @event.listens_for(db.engine, "handle_error")
    def _seen(context: ExceptionContext) -> None:
        database_errors.append(str(context.original_exception))

    if db.engine.dialect.name == "sqlite":
        # No busy handler: were two connections of this process ever to contend for SQLite's
        # write lock, the loser would fail at once instead of sleeping and hiding it.
        @event.listens_for(db.engine, "connect")
        def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=0")

    failures: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(index: int) -> None:
        start.wait()
        for n in range(MESSAGES_EACH):
            try:
                db.run(lambda uow, n=n: ingest.receive_message(uow, _message(index, n)))
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        assert [e for e in database_errors if "locked" in e] == []
        assert count(db, messages) == WRITERS * MESSAGES_EACH
    finally:
        db.dispose()
