"""The fast path is a twin of the general ingest flow: same deliveries, same rows, same events.

Both databases start as one (the second is a copy of the first after the same first contacts),
then take the same deliveries: one through `inbox.accept` (the general flow), the other through
the group commit (`kobliat_ingest_direct` where it applies, `kobliat_ingest_first` for a sender
it answers 'new-sender' to, the general flow where they answer 'fallback'). Ids the two could
not share (new messages, events, customers and conversations made afterwards) are compared by
what identifies them; timestamps taken from the clock are left out; every provider-given value,
sequence and feed key relation is compared as is.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import select

from kobliat import ingest_fast
from kobliat.channels.samples import whatsapp as wa_sample
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.conversations import service as conversations
from kobliat.db.engine import Database
from kobliat.db.tables import (
    aggregate_sequences,
    conversation_participants,
    customers,
    messages,
    outbox,
)
from kobliat.db.tables import (
    conversations as conversations_t,
)
from kobliat.db.tables import (
    inbox as inbox_t,
)
from kobliat.inbox import group_commit
from kobliat.inbox import service as inbox
from kobliat.inbox.model import Delivery
from kobliat.settings import Settings
from tests.conftest import create_database
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.postgres
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
RECEIVED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KNOWN = [f"1555000{n:04d}" for n in range(4)]
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Set from the clock, not from the delivery: never equal between two runs.
# (last_activity_at: the later of the opening time and the provider's times.)
CLOCK_COLUMNS = {
    "created_at",
    "updated_at",
    "processed_at",
    "next_attempt_at",
    "joined_at",
    "last_activity_at",
}


def delivery(body: bytes) -> Delivery:
    """A WhatsApp delivery as the route builds it."""
    return Delivery("whatsapp", body, {"content-type": "application/json"}, RECEIVED)


def first_contacts() -> list[bytes]:
    """One message from each known sender: creates them and their conversations."""
    return [wa.text(wa_id=w, name=f"Sender {w}", message_id=f"wamid.seed-{w}") for w in KNOWN]


def mixed_deliveries() -> list[bytes]:
    """The common case, first contacts, and every case the fast path must leave to the general
    flow."""
    a, b, c, _ = KNOWN
    plain = wa.text(wa_id=a, name=f"Sender {a}", message_id="wamid.m1", body="hello")
    first = wa.text(wa_id="15559999999", name="New", message_id="wamid.m6")
    return [
        plain,
        plain,  # the same delivery again
        wa.text(wa_id=a, name=f"Sender {a}", message_id="wamid.m1", body="hello", timestamp=1),
        wa.text(wa_id=a, name=f"Sender {a}", message_id="wamid.m2", timestamp=1_700_000_000),
        wa.media("image", wa_id=b, name=f"Sender {b}", message_id="wamid.m3"),
        wa.text(wa_id=b, name="Renamed", message_id="wamid.m4"),  # profile change
        wa.text(wa_id=c, name=f"Sender {c}", message_id="wamid.m5"),  # closed conversation
        first,  # first contact
        first,  # the same delivery again
        wa.text(wa_id="15559999999", name="New", message_id="wamid.m6", timestamp=2),
        wa.text(wa_id="15559999999", name="New", message_id="wamid.m6b"),  # known by now
        wa.media("video", wa_id="15558888888", name="Newer", message_id="wamid.m6c"),
        wa.bsuid_text(message_id="wamid.m6d"),  # a new sender with profile metadata
        wa.text(wa_id="15557777777", name="Late", message_id="wamid.m1"),  # a stored message id
        wa.text(wa_id="15556666666", name="Grouped", message_id="wamid.m6e", group_id="G1"),
        other_business(wa.text(wa_id="15555555555", name="Elsewhere", message_id="wamid.m6f")),
        wa.text(wa_id=a, name=f"Sender {a}", message_id="wamid.m7", reply_to="wamid.m1"),
        wa.text(wa_id=a, name=f"Sender {a}", message_id="wamid.m8", body="nul \x00 here"),
        wa_sample.status(message_id="wamid.unknown", status="delivered"),
        wa_sample.batch(),
    ]


def other_business(body: bytes) -> bytes:
    """The same delivery to a business number kobliat has not seen yet."""
    return body.replace(wa_sample.PHONE_NUMBER_ID.encode(), b"309999999999999").replace(
        wa_sample.DISPLAY_PHONE_NUMBER.encode(), b"12025550199"
    )


@pytest.fixture
def twins(pg_cluster: PostgresCluster, pg_url: str) -> Iterator[tuple[Database, Database]]:
    """Two databases with the same first contacts (and the same ids), the third sender's
    conversation closed."""
    general = Database(pg_url)
    for body in first_contacts():
        inbox.accept(general, delivery(body), SETTINGS)
    with general.reading() as conn:
        closed_id = conn.execute(
            select(messages.c.conversation_id).where(
                messages.c.external_message_id == f"wamid.seed-{KNOWN[2]}"
            )
        ).scalar_one()
    general.run(lambda uow: conversations.update(uow, closed_id, status="closed"))
    general.dispose()
    name = f"{pg_url.rsplit('/', 1)[1]}_fast"
    create_database(pg_cluster, name, template=pg_url.rsplit("/", 1)[1])
    fast = Database(pg_cluster.url(name))
    yield general, fast
    general.dispose()
    fast.dispose()


def test_fast_path_writes_the_rows_and_events_the_general_flow_writes(
    twins: tuple[Database, Database],
) -> None:
    general, fast = twins
    writer = group_commit.GroupCommit(fast.url)
    answers = []
    try:
        for body in mixed_deliveries():
            inbox.accept(general, delivery(body), SETTINGS)
            call = ingest_fast.prepare(delivery(body), inbox.parse(delivery(body), SETTINGS))
            answers.append("fallback" if call is None else _peek(fast, call))
            asyncio.run(group_commit.accept(writer, fast, delivery(body), SETTINGS))
    finally:
        writer.close()

    # Every path was taken; first contacts (text, media, with metadata) in one round trip each.
    assert {"stored", "fallback", "delivery-duplicate"} <= set(answers)
    assert answers.count("new-sender: stored") == 3
    assert "new-sender: fallback" in answers  # the stored message id
    fast_rows, general_rows = snapshot(fast), snapshot(general)
    for table, rows in general_rows.items():
        assert fast_rows[table] == rows, table
    assert feed_keys_follow_sequences(fast)


@pytest.mark.parametrize("on_the_loop", [False, True], ids=["own-thread", "server-loop"])
def test_concurrent_deliveries_keep_sequences_gapless(
    twins: tuple[Database, Database], on_the_loop: bool
) -> None:
    _, fast = twins
    writer = group_commit.GroupCommit(fast.url)
    bodies = [
        wa.text(wa_id=w, name=f"Sender {w}", message_id=f"wamid.burst-{w}-{n}", body=str(n))
        for n in range(25)
        for w in KNOWN[:2]
    ]

    async def all_at_once() -> list[inbox.Receipt]:
        calls = [group_commit.accept(writer, fast, delivery(b), SETTINGS) for b in bodies]
        if not on_the_loop:
            return await asyncio.gather(*calls)
        async with writer.serving():
            return await asyncio.gather(*calls)

    try:
        receipts = asyncio.run(all_at_once())
    finally:
        writer.close()

    assert [r.status for r in receipts] == ["processed"] * len(bodies)
    with fast.reading() as conn:
        rows = conn.execute(select(outbox.c.aggregate_id, outbox.c.sequence)).all()
    by_aggregate: dict[str, list[int]] = {}
    for aggregate_id, sequence in rows:
        by_aggregate.setdefault(aggregate_id, []).append(sequence)
    for sequences in by_aggregate.values():
        assert sorted(sequences) == list(range(1, len(sequences) + 1))
    assert feed_keys_follow_sequences(fast)


def _peek(db: Database, call: ingest_fast.FastCall) -> str:
    """What the functions answer for this call now (both rounds for a new sender), without
    keeping anything."""
    with psycopg.connect(db.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(call.statement, call.params).fetchone()
        assert row is not None
        answer = str(row[0])
        if answer == "new-sender":
            second = ingest_fast.first_contact(call)
            row = conn.execute(second.statement, second.params).fetchone()
            assert row is not None
            answer = f"{answer}: {row[0]}"
        conn.rollback()
    return answer


def feed_keys_follow_sequences(db: Database) -> bool:
    """Each aggregate's feed keys never decrease along its sequence, and its sequence row
    holds the latest key."""
    with db.reading() as conn:
        events = conn.execute(
            select(outbox.c.aggregate_id, outbox.c.sequence, outbox.c.txid).order_by(
                outbox.c.aggregate_id, outbox.c.sequence
            )
        ).all()
        heads = {
            row.aggregate_id: (row.last_sequence, row.last_txid)
            for row in conn.execute(select(aggregate_sequences))
        }
    latest: dict[str, tuple[int, int]] = {}
    for aggregate_id, sequence, txid in events:
        if aggregate_id in latest and txid < latest[aggregate_id][1]:
            return False
        latest[aggregate_id] = (sequence, txid)
    return latest == heads


def snapshot(db: Database) -> dict[str, Any]:
    """Every row kobliat wrote, with ids named by what identifies them."""
    with db.reading() as conn:
        tables = {
            t.name: [dict(r._mapping) for r in conn.execute(select(t))]
            for t in (customers, conversations_t, conversation_participants, messages, inbox_t)
        }
        events = [
            dict(r._mapping)
            for r in conn.execute(select(outbox).order_by(outbox.c.txid, outbox.c.id))
        ]
        sequences = [dict(r._mapping) for r in conn.execute(select(aggregate_sequences))]
    names = _names(tables)
    result = {
        name: sorted((_plain(row, names) for row in rows), key=repr)
        for name, rows in tables.items()
    }
    result["outbox"] = sorted((_event(row, names) for row in events), key=repr)
    result["aggregate_sequences"] = sorted(
        (names.get(r["aggregate_id"], "?"), r["last_sequence"]) for r in sequences
    )
    result["feed"] = _feed(events, names)
    return result


def _feed(events: list[dict[str, Any]], names: dict[str, str]) -> list[tuple[Any, ...]]:
    """The feed's order (feed key, then id) with each key named by its rank, and the key each
    aggregate's sequence row holds: which events share a transaction, and in what order."""
    ranks = {txid: rank for rank, txid in enumerate(sorted({e["txid"] for e in events}))}
    return [
        (ranks[e["txid"]], e["event_type"], names.get(e["aggregate_id"], "?"), e["sequence"])
        for e in events
    ]


def _names(tables: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    names = {
        str(c["id"]): f"customer {c['external_type']}:{c['external_id']}"
        for c in tables["customers"]
    }
    for m in tables["messages"]:
        names[str(m["id"])] = f"message {m['channel']}:{m['external_message_id']}"
    for c in tables["conversations"]:
        kind, channel, parties = c["conversation_key"].split(":", 2)
        named = sorted(names.get(party, party) for party in parties.split(","))
        key = f"{kind}:{channel}:{','.join(named)}"
        names[str(c["id"])] = f"conversation {key} {c['status']}"
    return names


def _plain(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    kept = {k: v for k, v in row.items() if k not in CLOCK_COLUMNS and k != "id"}
    if "conversation_key" in kept and str(row["id"]) in names:
        kept["conversation_key"] = names[str(row["id"])]
    return _renamed(kept, names)


def _event(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    envelope = dict(row["envelope"])
    data = {k: v for k, v in envelope.pop("data").items() if k not in {"event_id", "timestamp"}}
    kept = {k: v for k, v in envelope.items() if k not in {"id", "time"}}
    return _renamed(
        {
            "type": row["event_type"],
            "aggregate": row["aggregate_id"],
            "sequence": row["sequence"],
            "envelope": {**kept, "data": data},
        },
        names,
    )


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_renamed(v, names) for v in value]
    if isinstance(value, UUID):
        value = str(value)
    if isinstance(value, str):
        return UUID_TEXT.sub(lambda found: names.get(found.group(), "<id>"), value)
    return value


def test_a_delivery_the_database_refuses_does_not_fail_its_batch_neighbours(
    twins: tuple[Database, Database],
) -> None:
    _, fast = twins
    writer = group_commit.GroupCommit(fast.url)
    good = [
        wa.text(wa_id=KNOWN[0], name=f"Sender {KNOWN[0]}", message_id=f"wamid.ok-{n}")
        for n in range(5)
    ]
    # Too long for the unique index on (channel, external_message_id): PostgreSQL refuses it.
    bad = wa.text(wa_id=KNOWN[1], name=f"Sender {KNOWN[1]}", message_id=os.urandom(6000).hex())

    async def all_at_once() -> list[inbox.Receipt]:
        calls = [group_commit.accept(writer, fast, delivery(b), SETTINGS) for b in [*good, bad]]
        return await asyncio.gather(*calls)

    try:
        receipts = asyncio.run(all_at_once())
    finally:
        writer.close()

    assert [r.status for r in receipts] == ["processed"] * 5 + ["queued"]
    with fast.reading() as conn:
        stored = conn.execute(
            select(messages.c.external_message_id).where(
                messages.c.external_message_id.like("wamid.ok-%")
            )
        ).all()
        kept = conn.execute(select(inbox_t.c.last_error).where(inbox_t.c.processed_at.is_(None)))
        errors = [row.last_error for row in kept]
    assert len(stored) == 5
    assert len(errors) == 1 and "index row" in errors[0]


def test_a_conversation_closed_while_the_fast_path_waits_for_it_is_not_written_into(
    twins: tuple[Database, Database],
) -> None:
    _, fast = twins
    sender = KNOWN[0]
    with fast.reading() as conn:
        open_id = conn.execute(
            select(messages.c.conversation_id).where(
                messages.c.external_message_id == f"wamid.seed-{sender}"
            )
        ).scalar_one()
    writer = group_commit.GroupCommit(fast.url)
    body = wa.text(wa_id=sender, name=f"Sender {sender}", message_id="wamid.after-close")
    receipts: list[inbox.Receipt] = []
    closer = psycopg.connect(fast.url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        closer.execute("UPDATE conversations SET status = 'closed' WHERE id = %s", (open_id,))
        waiting = threading.Thread(
            target=lambda: receipts.append(
                asyncio.run(group_commit.accept(writer, fast, delivery(body), SETTINGS))
            )
        )
        waiting.start()
        time.sleep(1.0)  # the delivery now waits for the closer's row lock
        closer.commit()
        waiting.join(timeout=60)
    finally:
        closer.close()
        writer.close()

    assert [r.status for r in receipts] == ["processed"]
    with fast.reading() as conn:
        stored_in = conn.execute(
            select(messages.c.conversation_id).where(
                messages.c.external_message_id == "wamid.after-close"
            )
        ).scalar_one()
    assert stored_in != open_id
