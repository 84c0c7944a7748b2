"""Every SQL statement of event delivery: dispatch, claims, outcomes, replay, pruning, backlog.

How the relay keeps order with several relays at once:

1. Dispatch (one relay at a time, under a transaction-scoped lock): outbox rows not yet handed
   on are read in id order and, for every sink that wants them, raise that sink's *head* for the
   row's aggregate (`delivery_heads.target_sequence`). An aggregate's events commit in sequence
   order (see `outbox`), so a head's target only ever moves forward over committed events.
2. Claim (per sink, any number of relays): a relay leases heads that are behind their target
   (`FOR UPDATE SKIP LOCKED` on PostgreSQL, in a short transaction, committed before any
   network call). A leased head belongs to that relay alone, so no two relays deliver events
   of the same aggregate to the same sink at once.
3. Outcome: the relay delivers the head's next events in sequence order, stopping at the first
   failure, and then records how far the sink acknowledged. A failing event holds back only its
   own aggregate for that sink; other aggregates and other sinks have their own heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
            "target_sequence": _larger(new.target_sequence, heads.c.target_sequence),
            "pending_since": func.coalesce(heads.c.pending_since, new.pending_since),
            "updated_at": new.updated_at,
        },
    )
    conn.execute(stmt, params)


def _larger(a: Any, b: Any) -> Any:
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
    stmt = (
        select(
            heads.c.aggregate_id,
            heads.c.delivered_sequence,
            heads.c.target_sequence,
            heads.c.attempts,
        )
        .where(_due(sink.id, now))
        .order_by(heads.c.next_attempt_at)
        .limit(limit)
    )
    rows = conn.execute(dialect.skip_locked(conn, stmt)).all()
    if not rows:
        return []
    conn.execute(
        update(heads)
        .where(heads.c.sink_id == sink.id, heads.c.aggregate_id.in_([r.aggregate_id for r in rows]))
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
    params: list[dict[str, Any]] = []
    dead = 0
    for outcome in sorted(outcomes, key=lambda o: o.aggregate_id):
        attempts, state, next_at = 0, "ready", now
        if outcome.error is not None:
            attempts = 1 if outcome.progressed else outcome.attempts + 1
            next_at = now + policy.delay(attempts)
            if policy.is_exhausted(attempts):
                state, dead = "dead", dead + 1
        params.append(
            {
                "b_sink": sink_id,
                "b_aggregate": outcome.aggregate_id,
                "b_owner": owner,
                "b_from": outcome.claimed_from,
                "b_to": outcome.delivered_to,
                "b_pending": outcome.pending_since,
                "b_attempts": attempts,
                "b_state": state,
                "b_next": next_at,
                "b_error": outcome.error,
                "b_now": now,
            }
        )
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
    return dead


# --- replay, pruning, backlog -----------------------------------------------------------------
def replay(conn: Connection, sink_id: UUID, *, since: datetime | None, now: datetime) -> int:
    """Retry the sink's dead-lettered heads now and, with `since`, deliver again every event
    still in the outbox created at or after it; returns the number of aggregates affected."""
    dialect.try_relay_lock(conn, DISPATCH_LOCK, wait=True)  # not while a dispatch runs
    revived = conn.execute(
        update(heads)
        .where(heads.c.sink_id == sink_id, heads.c.state == "dead")
        .values(state="ready", attempts=0, next_attempt_at=now, last_error=None, updated_at=now)
    ).rowcount
    if since is None:
        return revived
    rows = conn.execute(
        select(
            outbox.c.aggregate_id,
            func.min(outbox.c.sequence).label("first"),
            func.max(outbox.c.sequence).label("last"),
            func.min(outbox.c.created_at).label("oldest"),
        )
        .where(outbox.c.created_at >= since, outbox.c.published_at.is_not(None))
        .group_by(outbox.c.aggregate_id)
        .order_by(outbox.c.aggregate_id)
    ).all()
    if rows:
        _rewind(conn, sink_id, rows, now)
    return max(revived, len(rows))


def _rewind(conn: Connection, sink_id: UUID, rows: Sequence[Any], now: datetime) -> None:
    stmt = dialect.dialect_insert(conn, heads)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[heads.c.sink_id, heads.c.aggregate_id],
        set_={
            "delivered_sequence": case(
                (new.delivered_sequence < heads.c.delivered_sequence, new.delivered_sequence),
                else_=heads.c.delivered_sequence,
            ),
            "target_sequence": _larger(new.target_sequence, heads.c.target_sequence),
            "pending_since": new.pending_since,
            "state": "ready",
            "attempts": 0,
            "next_attempt_at": now,
            "updated_at": now,
        },
    )
    conn.execute(
        stmt,
        [
            {
                "sink_id": sink_id,
                "aggregate_id": r.aggregate_id,
                "delivered_sequence": r.first - 1,
                "target_sequence": r.last,
                "state": "ready",
                "attempts": 0,
                "next_attempt_at": now,
                "pending_since": r.oldest,
                "updated_at": now,
            }
            for r in rows
        ],
    )


def prune(conn: Connection, *, cutoff: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` outbox rows created before `cutoff` that every sink has
    acknowledged (or does not want); returns how many went."""
    row = outbox.alias("row")
    needed = (
        select(heads.c.sink_id)
        .where(
            heads.c.aggregate_id == row.c.aggregate_id,
            heads.c.delivered_sequence < row.c.sequence,
            heads.c.target_sequence >= row.c.sequence,
        )
        .exists()
    )
    doomed = (
        select(row.c.id)
        .where(row.c.created_at < cutoff, row.c.published_at.is_not(None), ~needed)
        .order_by(row.c.created_at)
        .limit(limit)
    )
    return conn.execute(delete(outbox).where(outbox.c.id.in_(doomed))).rowcount


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one sink still has to deliver."""

    pending_aggregates: int
    dead_letters: int
    oldest_pending: datetime | None


def backlog(conn: Connection) -> tuple[int, datetime | None, dict[UUID, Backlog]]:
    """(undispatched rows, oldest undispatched time, per-sink backlog)."""
    waiting, oldest = conn.execute(
        select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
    ).one()
    per_sink = conn.execute(
        select(
            heads.c.sink_id,
            func.count(),
            func.sum(case((heads.c.state == "dead", 1), else_=0)),
            func.min(heads.c.pending_since),
        )
        .where(heads.c.delivered_sequence < heads.c.target_sequence)
        .group_by(heads.c.sink_id)
    ).all()
    result = {
        sink_id: Backlog(int(count), int(dead or 0), oldest_pending)
        for sink_id, count, dead, oldest_pending in per_sink
    }
    return int(waiting), oldest, result
