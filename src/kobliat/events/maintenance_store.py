"""Delivery housekeeping SQL: replay of dead letters, pruning of delivered rows, backlog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, case, delete, func, select, update

from kobliat.db import dialect
from kobliat.db.tables import delivery_heads, outbox
from kobliat.events.delivery_store import DISPATCH_LOCK, larger

heads = delivery_heads


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
            "target_sequence": larger(new.target_sequence, heads.c.target_sequence),
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
