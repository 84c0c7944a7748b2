"""Every SQL statement of event delivery: dispatch, claims, outcomes, replay, pruning, backlog.

How the relay keeps order with several relays at once:

1. Dispatch (one relay at a time, under a transaction-scoped lock): outbox rows not yet handed
   on are read in id order and, for every sink that wants them, raise that sink's *head* for the
   row's aggregate (`delivery_heads.target_sequence`). An aggregate's events commit in sequence
   order (see `outbox`), so a head's target only ever moves forward over committed events.
2. Claim (per sink, any number of relays): a relay leases heads that are behind their target
   (`FOR UPDATE SKIP LOCKED` on PostgreSQL, in a short transaction, committed before any
   network call). A leased head belongs to that relay's claim loop alone, so no two relays
   deliver events of the same aggregate to the same sink at once. Leases are short, end at a
   time taken from the database's clock, and are renewed while the loop delivers.
3. Outcome: the relay delivers the head's next events in sequence order, stopping at the first
   failure (or well before its lease could run out), and then records how far the sink
   acknowledged. A failing event holds back only its own aggregate for that sink; other
   aggregates and other sinks have their own heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    func,
    null,
    or_,
    select,
    update,
)

from kobliat.db import dialect
from kobliat.db.tables import delivery_heads, outbox
from kobliat.db.types import UTCDateTime
from kobliat.events.delivery import Claim, Outcome, PendingEvent, RetryPolicy, Sink

DISPATCH_LOCK = 7302  # advisory lock key (7301 is the migrations')
heads = delivery_heads


# --- dispatch ---------------------------------------------------------------------------------
def has_undispatched(conn: Connection) -> bool:
    """True when some outbox row has not been handed to the sinks yet (a cheap read)."""
    found = conn.execute(select(outbox.c.id).where(outbox.c.published_at.is_(None)).limit(1))
    return found.first() is not None


def dispatch(
    conn: Connection, sinks: list[Sink], *, limit: int, now: datetime
) -> tuple[int, set[UUID]] | None:
    """Hand up to `limit` outbox rows to the sinks' heads; returns (rows, sinks with new work),
    or None when another relay is dispatching right now."""
    if not dialect.try_relay_lock(conn, DISPATCH_LOCK):
        return None
    rows = conn.execute(
        select(
            outbox.c.id,
            outbox.c.aggregate_id,
            outbox.c.sequence,
            outbox.c.event_type,
            outbox.c.created_at,
        )
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0, set()
    targets: dict[tuple[UUID, str], dict[str, Any]] = {}
    for row in rows:
        for sink in sinks:
            if sink.wants(row.event_type):
                _widen(targets, sink.id, row, now)
    if targets:
        _raise_targets(conn, [targets[key] for key in sorted(targets)])
    ids = [row.id for row in rows]
    conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=now))
    return len(rows), {sink_id for sink_id, _ in targets}


def _widen(
    targets: dict[tuple[UUID, str], dict[str, Any]], sink_id: UUID, row: Any, now: datetime
) -> None:
    key = (sink_id, row.aggregate_id)
    found = targets.get(key)
    if found is None:
        targets[key] = {
            "sink_id": sink_id,
            "aggregate_id": row.aggregate_id,
            "delivered_sequence": row.sequence - 1,
            "target_sequence": row.sequence,
            "state": "ready",
            "attempts": 0,
            "next_attempt_at": now,
            "pending_since": row.created_at,
            "updated_at": now,
        }
        return
    found["delivered_sequence"] = min(found["delivered_sequence"], row.sequence - 1)
    found["target_sequence"] = max(found["target_sequence"], row.sequence)
    found["pending_since"] = min(found["pending_since"], row.created_at)


def _raise_targets(conn: Connection, params: list[dict[str, Any]]) -> None:
    """Create heads, or move existing ones' targets forward (their progress is kept)."""
    stmt = dialect.dialect_insert(conn, heads)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[heads.c.sink_id, heads.c.aggregate_id],
        set_={
            "target_sequence": larger(new.target_sequence, heads.c.target_sequence),
            "pending_since": func.coalesce(heads.c.pending_since, new.pending_since),
            "updated_at": new.updated_at,
        },
    )
    conn.execute(stmt, params)


def larger(a: Any, b: Any) -> Any:
    """SQL for the larger of two values (GREATEST, which SQLite spells differently)."""
    return case((a > b, a), else_=b)


# --- claims -----------------------------------------------------------------------------------
def _due(sink_id: UUID, now: datetime) -> Any:
    return and_(
        heads.c.sink_id == sink_id,
        heads.c.state == "ready",
        heads.c.delivered_sequence < heads.c.target_sequence,
        heads.c.next_attempt_at <= now,
        or_(heads.c.leased_until.is_(None), heads.c.leased_until < now),
    )


def has_due(conn: Connection, sink_id: UUID, *, now: datetime) -> bool:
    """True when some head of the sink waits for delivery (a cheap read before claiming)."""
    return (
        conn.execute(select(heads.c.aggregate_id).where(_due(sink_id, now)).limit(1)).first()
        is not None
    )


def claim(
    conn: Connection,
    sink: Sink,
    *,
    owner: str,
    limit: int,
    lease: timedelta,
    now: datetime,
    per_head: int = 100,
) -> list[Claim]:
    """Lease up to `limit` due heads of `sink` to `owner` and load their next events."""
    rows = _lock_due(conn, sink.id, now=now, limit=limit)
    if not rows:
        return []
    leased = [r.aggregate_id for r in rows]
    conn.execute(
        update(heads)
        .where(heads.c.sink_id == sink.id, heads.c.aggregate_id.in_(leased))
        .values(leased_until=now + lease, lease_owner=owner)
    )
    covers = {r.aggregate_id: min(r.target_sequence, r.delivered_sequence + per_head) for r in rows}
    loaded = _load(
        conn,
        [(r.aggregate_id, r.delivered_sequence, covers[r.aggregate_id]) for r in rows],
        wants=sink.wants,
    )
    return [
        Claim(
            aggregate_id=r.aggregate_id,
            delivered=r.delivered_sequence,
            attempts=r.attempts,
            covers=covers[r.aggregate_id],
            events=tuple(loaded.get(r.aggregate_id, ())),
        )
        for r in rows
    ]


def _lock_due(conn: Connection, sink_id: UUID, *, now: datetime, limit: int) -> Sequence[Any]:
    """Lock due heads, skipping those another relay is claiming right now."""
    stmt = (
        select(
            heads.c.aggregate_id,
            heads.c.delivered_sequence,
            heads.c.target_sequence,
            heads.c.attempts,
        )
        .where(_due(sink_id, now))
        .order_by(heads.c.next_attempt_at)
        .limit(limit)
    )
    return conn.execute(dialect.skip_locked(conn, stmt)).all()


def _load(
    conn: Connection, ranges: list[tuple[str, int, int]], *, wants: Callable[[str], bool]
) -> dict[str, list[PendingEvent]]:
    """The wanted events of each (aggregate, after, up to) range, in sequence order."""
    stmt = (
        select(
            outbox.c.aggregate_id,
            outbox.c.event_id,
            outbox.c.event_type,
            outbox.c.sequence,
            outbox.c.envelope,
            outbox.c.created_at,
        )
        .where(
            or_(
                *(
                    and_(
                        outbox.c.aggregate_id == aggregate_id,
                        outbox.c.sequence > after,
                        outbox.c.sequence <= upto,
                    )
                    for aggregate_id, after, upto in ranges
                )
            )
        )
        .order_by(outbox.c.aggregate_id, outbox.c.sequence)
    )
    found: dict[str, list[PendingEvent]] = {}
    for row in conn.execute(stmt):
        if wants(row.event_type):
            found.setdefault(row.aggregate_id, []).append(
                PendingEvent(
                    event_id=row.event_id,
                    event_type=row.event_type,
                    sequence=row.sequence,
                    envelope=row.envelope,
                    created_at=row.created_at,
                )
            )
    return found


# --- outcomes ---------------------------------------------------------------------------------
_RECORD = (
    update(heads)
    .where(
        heads.c.sink_id == bindparam("b_sink"),
        heads.c.aggregate_id == bindparam("b_aggregate"),
        heads.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        # A replay may have rewound the head meanwhile: then its rewind wins.
        delivered_sequence=case(
            (heads.c.delivered_sequence == bindparam("b_from"), bindparam("b_to")),
            else_=heads.c.delivered_sequence,
        ),
        pending_since=case(
            (bindparam("b_to", type_=BigInteger) >= heads.c.target_sequence, null()),
            else_=func.coalesce(bindparam("b_pending", type_=UTCDateTime), heads.c.pending_since),
        ),
        attempts=bindparam("b_attempts"),
        state=bindparam("b_state"),
        next_attempt_at=bindparam("b_next", type_=UTCDateTime),
        last_error=bindparam("b_error"),
        leased_until=None,
        lease_owner=None,
        updated_at=bindparam("b_now", type_=UTCDateTime),
    )
)


def record(
    conn: Connection,
    sink_id: UUID,
    *,
    owner: str,
    outcomes: Iterable[Outcome],
    policy: RetryPolicy,
    now: datetime,
) -> int:
    """Store how far each claim got and release the leases; returns heads now dead-lettered."""
    params = [
        {"b_sink": sink_id, "b_owner": owner, "b_now": now, **_next_state(o, policy, now)}
        for o in sorted(outcomes, key=lambda o: o.aggregate_id)
    ]
    if not params:
        return 0
    conn.execute(_RECORD, params)
    # Heads that caught up are deleted, so the table holds only work in progress; dispatch
    # recreates a head from the next event's sequence.
    conn.execute(
        delete(heads).where(
            heads.c.sink_id == sink_id,
            heads.c.aggregate_id.in_([p["b_aggregate"] for p in params]),
            heads.c.delivered_sequence >= heads.c.target_sequence,
            heads.c.state == "ready",
            heads.c.lease_owner.is_(None),
        )
    )
    return sum(1 for p in params if p["b_state"] == "dead")


def _next_state(outcome: Outcome, policy: RetryPolicy, now: datetime) -> dict[str, Any]:
    """The head's new state: caught up or moved on, or retried later, or dead-lettered."""
    attempts, state, next_at = 0, "ready", now
    if outcome.error is not None:
        # A failure after progress is the first failure of a new head-of-line event.
        attempts = 1 if outcome.progressed else outcome.attempts + 1
        next_at = now + policy.delay(attempts)
        if policy.is_exhausted(attempts):
            state = "dead"
    return {
        "b_aggregate": outcome.aggregate_id,
        "b_from": outcome.claimed_from,
        "b_to": outcome.delivered_to,
        "b_pending": outcome.pending_since,
        "b_attempts": attempts,
        "b_state": state,
        "b_next": next_at,
        "b_error": outcome.error,
    }


def renew(
    conn: Connection,
    sink_id: UUID,
    *,
    owner: str,
    aggregates: Sequence[str],
    lease: timedelta,
    now: datetime,
) -> int:
    """Extend `owner`'s leases on these heads to `now + lease`; returns how many it still holds."""
    result = conn.execute(
        update(heads)
        .where(
            heads.c.sink_id == sink_id,
            heads.c.lease_owner == owner,
            heads.c.aggregate_id.in_(list(aggregates)),
        )
        .values(leased_until=now + lease)
    )
    return int(result.rowcount)


def release(conn: Connection, *, owners: Iterable[str]) -> None:
    """Give up every lease these owners hold (a relay shutting down), so others need not wait."""
    conn.execute(
        update(heads)
        .where(heads.c.lease_owner.in_(list(owners)))
        .values(leased_until=None, lease_owner=None)
    )
