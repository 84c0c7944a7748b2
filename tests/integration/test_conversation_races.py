"""A conversation closed at the very moment a message arrives (PostgreSQL, several writers).

Each test holds the closing transaction open, starts the message in a second thread, waits until
that thread is blocked on the conversation's row lock, and only then commits the close: the
interleaving the race needs, every time. (SQLite admits one writer at a time, so the message
there simply runs before or after the close.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from kobliat import ingest
from kobliat.channels.records import ConversationRef, InboundMessage, Party
from kobliat.conversations import service as conversations
from kobliat.db.engine import Database
from kobliat.db.uow import UnitOfWork
from kobliat.errors import RuleViolation
from kobliat.messages import service as messages
from tests.builders import events_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    """A Database on a fresh PostgreSQL schema."""
    database = Database(pg_url)
    yield database
    database.dispose()


def _inbound(n: int) -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        external_message_id=f"wamid.race{n}",
        sender=Party(external_type="whatsapp", external_id="+15550001111"),
        business=Party(external_type="whatsapp", external_id="+15559990000"),
        conversation=ConversationRef(kind="direct"),
        content_type="text",
        body=f"hello {n}",
        sent_at=datetime(2026, 1, 1, 12, 0, n, tzinfo=UTC),
    )


def _wait_for_lock_waiter(db: Database) -> None:
    """Block until some session of this database waits for a lock (generous deadline)."""
    url = db.engine.url.set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError("the second writer never waited for the conversation's lock")


def _close_while(db: Database, conversation_id: Any, work: Callable[[], Any]) -> Any:
    """Run `work` in a thread while a close of the conversation is pending, then commit the
    close once `work` waits for it; `work`'s result (or exception) afterwards."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except Exception as exc:
            outcome["error"] = exc

    with UnitOfWork(db.engine) as uow:
        conversations.update(uow, conversation_id, status="closed")
        thread = threading.Thread(target=run)
        thread.start()
        _wait_for_lock_waiter(db)
        uow.commit()
    thread.join(timeout=60)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_message_arriving_as_its_conversation_closes_opens_a_new_one(pg: Database) -> None:
    pg.run(lambda uow: ingest.receive_message(uow, _inbound(1)))
    [first] = [e["data"]["conversation_id"] for e in events_of(pg, "conversation.opened")]

    received = _close_while(
        pg, first, lambda: pg.run(lambda uow: ingest.receive_message(uow, _inbound(2)))
    )

    assert received == "stored"
    with pg.reading() as conn:
        second = messages.find_by_external_id(
            conn, channel="whatsapp", external_message_id="wamid.race2"
        )
        assert second is not None
        assert str(second.conversation_id) != first
        assert conversations.get(conn, second.conversation_id).status == "open"
        assert conversations.get(conn, first).last_message_at == _inbound(1).sent_at
    opened = [e["data"]["conversation_id"] for e in events_of(pg, "conversation.opened")]
    assert opened == [first, str(second.conversation_id)]
    created = events_of(pg, "message.inbound.created")
    assert created[-1]["data"]["conversation_id"] == str(second.conversation_id)


def test_sending_to_a_conversation_closed_meanwhile_is_refused(pg: Database) -> None:
    pg.run(lambda uow: ingest.receive_message(uow, _inbound(1)))
    [first] = [e["data"]["conversation_id"] for e in events_of(pg, "conversation.opened")]

    def send() -> Any:
        return pg.run(
            lambda uow: messages.send_outbound(uow, first, content_type="text", body="too late")
        )

    with pytest.raises(RuleViolation) as refused:
        _close_while(pg, first, send)

    assert refused.value.code == "conversation-closed"
    assert events_of(pg, "message.outbound.created") == []
