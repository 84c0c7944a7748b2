"""First contacts on the hot path: one function call after the direct one, and race-safe.

Two writers (two processes' group commits, or any transaction) may take first contacts of the
same new sender at once: the customer's unique identity lets one create the customer and its
conversation; the other waits for it, then stores its message as a known sender's (or leaves it
to the general flow). Either way: one customer, one open conversation, every message once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select, text

from kobliat import ingest_fast
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db import dialect, migrate
from kobliat.db.engine import Database
from kobliat.db.tables import conversations, customers, messages, outbox
from kobliat.inbox import group_commit
from kobliat.inbox import service as inbox
from kobliat.inbox.model import Delivery
from kobliat.settings import Settings
from tests.integration.test_inbox_migration import downgrade
from tests.integration.test_ingest_fast import feed_keys_follow_sequences
from tests.support.contract import check_outbox

pytestmark = pytest.mark.postgres
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
RECEIVED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DEADLINE = 60.0


def delivery(body: bytes) -> Delivery:
    """A WhatsApp delivery as the route builds it."""
    return Delivery("whatsapp", body, {"content-type": "application/json"}, RECEIVED)


def plain(url: str) -> str:
    """The URL as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def fast(pg_url: str) -> Iterator[Database]:
    """A database where the business endpoint is known (one sender wrote before)."""
    db = Database(pg_url)
    inbox.accept(db, delivery(wa.text(wa_id="15550001000", message_id="wamid.seed")), SETTINGS)
    yield db
    db.dispose()
    check_outbox(pg_url)


def test_a_first_contact_takes_two_function_calls_and_no_general_flow_statement(
    fast: Database,
) -> None:
    name = fast.url.rsplit("/", 1)[1]
    with psycopg.connect(plain(fast.url), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'pl'")
    executed: list[str] = []
    event.listen(fast.engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    writer = group_commit.GroupCommit(fast.url)  # its connections track function calls
    body = wa.text(wa_id="15550002000", name="First", message_id="wamid.first")
    try:
        receipt = asyncio.run(group_commit.accept(writer, fast, delivery(body), SETTINGS))
    finally:
        writer.close()  # its backend reports its statistics as it ends

    assert receipt.status == "processed" and receipt.outcome is not None
    assert receipt.outcome.messages == 1
    assert executed == []  # nothing went through the general flow
    expected = {"kobliat_ingest_direct": 1, "kobliat_ingest_first": 1}
    assert _function_calls(fast, expected) == expected
    assert _counts(fast, "15550002000") == (1, 1, 1)


def _function_calls(db: Database, expected: dict[str, int]) -> dict[str, int]:
    """Calls of the hot path's functions, once the writer's backends have reported them (each
    as it ends), or what they came to by the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        with psycopg.connect(plain(db.url)) as conn:
            rows = conn.execute(
                "SELECT funcname, calls FROM pg_stat_user_functions"
                " WHERE funcname LIKE 'kobliat_ingest_%'"
            ).fetchall()
        calls = {str(name): int(count) for name, count in rows}
        if calls == expected or time.monotonic() > deadline:
            return calls
        time.sleep(0.2)


@pytest.mark.parametrize("first_writer", ["commits", "rolls back"])
def test_a_first_contact_waits_for_another_writers_customer_then_settles(
    fast: Database, first_writer: str
) -> None:
    sender = "15550003000"
    mine = wa.text(wa_id=sender, name="Racer", message_id="wamid.race-1")
    theirs = wa.text(wa_id=sender, name="Racer", message_id="wamid.race-2")
    writer = group_commit.GroupCommit(fast.url)
    receipts: list[inbox.Receipt] = []
    other = psycopg.connect(plain(fast.url))
    try:
        # Another writer has created the customer and its conversation, not yet committed.
        call = ingest_fast.prepare(delivery(mine), inbox.parse(delivery(mine), SETTINGS))
        assert call is not None
        second = ingest_fast.first_contact(call)
        row = other.execute(second.statement, second.params).fetchone()
        assert row == ("stored",)
        waiting = threading.Thread(
            target=lambda: receipts.append(
                asyncio.run(group_commit.accept(writer, fast, delivery(theirs), SETTINGS))
            )
        )
        waiting.start()
        _until_one_waits_for_a_lock(fast)
        other.commit() if first_writer == "commits" else other.rollback()
        waiting.join(timeout=DEADLINE)
    finally:
        other.close()
        writer.close()

    assert [r.status for r in receipts] == ["processed"]
    assert receipts[0].outcome is not None and receipts[0].outcome.messages == 1
    stored = 2 if first_writer == "commits" else 1
    assert _counts(fast, sender) == (1, 1, stored)
    with fast.reading() as conn:
        types = Counter(conn.execute(select(outbox.c.event_type)).scalars())
    seeded = Counter(
        {"customer.created": 2, "conversation.opened": 1, "message.inbound.created": 1}
    )
    assert types - seeded == Counter(
        {"customer.created": 1, "conversation.opened": 1, "message.inbound.created": stored}
    )
    assert feed_keys_follow_sequences(fast)


def _until_one_waits_for_a_lock(db: Database) -> None:
    deadline = time.monotonic() + DEADLINE
    with psycopg.connect(plain(db.url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] >= 1:
                return
            time.sleep(0.05)
    raise AssertionError("the second writer never waited for the first one's customer")


def test_two_writers_racing_first_contacts_of_the_same_senders_store_each_message_once(
    fast: Database,
) -> None:
    senders = [f"1555001{n:04d}" for n in range(12)]
    left, right = group_commit.GroupCommit(fast.url), group_commit.GroupCommit(fast.url)
    jobs: list[tuple[group_commit.GroupCommit, bytes]] = []
    for n, sender in enumerate(senders):
        text = {"wa_id": sender, "name": f"New {n}"}
        jobs.append((left, wa.text(**text, message_id=f"wamid.{sender}-a")))
        jobs.append((right, wa.text(**text, message_id=f"wamid.{sender}-b")))
        if n % 2 == 0:  # the provider delivers this one twice, once to each process
            both = wa.text(**text, message_id=f"wamid.{sender}-c")
            jobs += [(left, both), (right, both)]

    async def all_at_once() -> list[inbox.Receipt]:
        calls = [group_commit.accept(w, fast, delivery(body), SETTINGS) for w, body in jobs]
        return await asyncio.gather(*calls)

    try:
        receipts = asyncio.run(all_at_once())
    finally:
        left.close()
        right.close()

    assert Counter(r.status for r in receipts) == {"processed": 30, "duplicate": 6}
    assert sum(r.outcome.messages for r in receipts if r.outcome is not None) == 30
    for n, sender in enumerate(senders):
        assert _counts(fast, sender) == (1, 1, 3 if n % 2 == 0 else 2), sender
    with fast.reading() as conn:
        types = Counter(conn.execute(select(outbox.c.event_type)).scalars())
        sequences = conn.execute(select(outbox.c.aggregate_id, outbox.c.sequence)).all()
    assert types == {
        "customer.created": 14,
        "conversation.opened": 13,
        "message.inbound.created": 31,
    }
    by_aggregate: dict[str, list[int]] = {}
    for aggregate_id, sequence in sequences:
        by_aggregate.setdefault(aggregate_id, []).append(sequence)
    assert all(sorted(s) == list(range(1, len(s) + 1)) for s in by_aggregate.values())
    assert feed_keys_follow_sequences(fast)


def _counts(db: Database, wa_id: str) -> tuple[int, int, int]:
    """The sender's customers, its open conversations, and the messages in them."""
    with db.reading() as conn:
        found = list(
            conn.execute(
                select(customers.c.id).where(customers.c.external_id == f"+{wa_id}")
            ).scalars()
        )
        if not found:
            return 0, 0, 0
        conversation_ids = list(
            conn.execute(
                select(conversations.c.id).where(
                    conversations.c.conversation_key.contains(str(found[0])),
                    conversations.c.status == "open",
                )
            ).scalars()
        )
        stored = conn.execute(
            select(func.count()).where(
                messages.c.conversation_id.in_(conversation_ids),
                messages.c.sender_customer_id.in_(found),
            )
        ).scalar_one()
    return len(found), len(conversation_ids), int(stored)


def test_the_migration_reverses_to_the_direct_function_that_falls_back(pg_url: str) -> None:
    before = ScriptDirectory.from_config(migrate.alembic_config()).get_revision("0009")
    engine = create_engine(dialect.engine_url(pg_url))
    try:
        assert _hot_path_functions(engine) == {
            "kobliat_ingest_direct": True,
            "kobliat_ingest_first": False,
        }
        downgrade(engine, str(before.down_revision))
        assert _hot_path_functions(engine) == {"kobliat_ingest_direct": False}
        migrate.upgrade(engine)
        assert _hot_path_functions(engine) == {
            "kobliat_ingest_direct": True,
            "kobliat_ingest_first": False,
        }
    finally:
        engine.dispose()


def _hot_path_functions(engine: Engine) -> dict[str, bool]:
    """The hot path's functions, and whether each can answer 'new-sender'."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'kobliat_ingest_%'")
        ).all()
    return {name: "RETURN 'new-sender'" in source for name, source in found}
