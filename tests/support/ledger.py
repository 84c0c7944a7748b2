"""What a fault-injection run left behind, read from the database and the JetStream stream,
and the checks every scenario makes on it (stored once, every event in the stream once, in
order per aggregate)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from kobliat.db.engine import Database
from kobliat.db.tables import inbox, messages, outbox


@dataclass
class Ledger:
    """Stored messages of a run (by provider id) and every event in the outbox."""

    stored: Counter[str]
    events: list[dict[str, Any]]  # event_id, type, aggregate_id, sequence, message_id
    unprocessed_deliveries: int

    @property
    def duplicates(self) -> int:
        """Stored rows beyond the first per provider message id."""
        return sum(n - 1 for n in self.stored.values() if n > 1)

    def message_event_ids(self) -> set[str]:
        """Ids of the `message.inbound.created` events of the run's messages."""
        return {e["event_id"] for e in self.events if e["type"] == "message.inbound.created"}


def read_ledger(db_url: str, prefix: str) -> Ledger:
    """The run's messages (external ids starting with `prefix`) and the whole outbox."""
    db = Database(db_url, pool_size=2)
    try:
        with db.reading() as conn:
            ids = conn.execute(
                select(messages.c.external_message_id).where(
                    messages.c.external_message_id.like(f"%{prefix}-m%")
                )
            ).scalars()
            stored = Counter(str(i) for i in ids)
            rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.id)).scalars()
            events = [_event(envelope) for envelope in rows]
            pending = conn.execute(
                select(inbox.c.delivery_key).where(inbox.c.processed_at.is_(None))
            ).all()
    finally:
        db.dispose()
    return Ledger(stored, events, len(pending))


def _event(envelope: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": envelope["id"],
        "type": envelope["type"],
        "aggregate_id": envelope["subject"],
        "sequence": envelope["sequence"],
        "message_id": envelope["data"].get("message_id"),
    }


def stream_report(stream: list[dict[str, Any]], expected: Iterable[str]) -> dict[str, int]:
    """Counts of a stream read against the expected event ids."""
    ids = Counter(m["msg_id"] for m in stream)
    wanted = set(expected)
    return {
        "expected": len(wanted),
        "in_stream": len(stream),
        "distinct": len(ids),
        "missing": len(wanted - set(ids)),
        "repeated": sum(n - 1 for n in ids.values() if n > 1),
        "unexpected": len(set(ids) - wanted),
    }


def repeats_as_at_least_once_allows(envelopes: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Check each aggregate's arrivals: the first is sequence 1 and each later one is the next
    sequence, or goes back to an earlier one (a redelivery after a relay died, which then
    replays forward from there); never a jump over an event. Counts repeats and rewinds."""
    position: dict[str, int] = {}
    highest: dict[str, int] = {}
    repeats = rewinds = 0
    for envelope in envelopes:
        subject, sequence = envelope["subject"], envelope["sequence"]
        at = position.get(subject, 0)
        assert sequence <= at + 1, f"aggregate {subject}: sequence {sequence} after {at} (a gap)"
        rewinds += sequence <= at
        repeats += sequence <= highest.get(subject, 0)
        position[subject] = sequence
        highest[subject] = max(highest.get(subject, 0), sequence)
    return {"repeats": repeats, "rewinds": rewinds}


def waited(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> float:
    """Poll `check` until true; the seconds it took. Fails after `timeout` (a bound only)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def leases_held(db_url: str, pid: int) -> int:
    """Aggregate heads (any sink) whose lease the relay running as process `pid` holds."""
    from sqlalchemy import func

    from kobliat.db.tables import delivery_heads

    db = Database(db_url, pool_size=1)
    try:
        with db.reading() as conn:
            found = conn.execute(
                select(func.count())
                .select_from(delivery_heads)
                .where(delivery_heads.c.lease_owner.like(f"%:{pid}:%"))
            ).scalar_one()
    finally:
        db.dispose()
    return int(found)
