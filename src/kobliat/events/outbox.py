"""The transactional outbox: events are rows written in the same transaction as the change.

Each aggregate's events get consecutive sequence numbers from `aggregate_sequences`. Bumping that
row locks it until commit, so two transactions touching the same aggregate commit their events in
sequence order: a relay that delivers an aggregate's rows by sequence keeps per-aggregate order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from kobliat import pagination
from kobliat.db import dialect
from kobliat.db.tables import aggregate_sequences, outbox
from kobliat.events.envelope import DomainEvent, to_cloudevent


def append(conn: Connection, events: list[DomainEvent]) -> None:
    """Write `events` (in the order raised) to the outbox with per-aggregate sequence numbers."""
    by_aggregate: dict[str, list[DomainEvent]] = defaultdict(list)
    for event in events:
        by_aggregate[str(event.aggregate_id)].append(event)
    rows: list[dict[str, Any]] = []
    # Lock sequence rows in one global order so two transactions can never deadlock on them.
    for aggregate_id in sorted(by_aggregate):
        batch = by_aggregate[aggregate_id]
        last = _reserve(conn, aggregate_id, len(batch))
        for offset, event in enumerate(batch):
            sequence = last - len(batch) + 1 + offset
            rows.append(
                {
                    "event_id": event.id,
                    "event_type": event.type,
                    "aggregate_type": event.aggregate_type,
                    "aggregate_id": aggregate_id,
                    "sequence": sequence,
                    "envelope": to_cloudevent(event, sequence=sequence),
                    "created_at": event.time,
                }
            )
    # Keep the order the events were raised in, for the feed's id order.
    order = {event.id: index for index, event in enumerate(events)}
    rows.sort(key=lambda row: order[row["event_id"]])
    conn.execute(outbox.insert(), rows)


def _reserve(conn: Connection, aggregate_id: str, count: int) -> int:
    """Advance the aggregate's sequence by `count`; returns the new last sequence number."""
    stmt = dialect.dialect_insert(conn, aggregate_sequences).values(
        aggregate_id=aggregate_id, last_sequence=count
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[aggregate_sequences.c.aggregate_id],
        set_={"last_sequence": aggregate_sequences.c.last_sequence + count},
    ).returning(aggregate_sequences.c.last_sequence)
    return int(conn.execute(stmt).scalar_one())


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the event feed and the cursor to read on from."""

    events: list[dict[str, Any]]
    next_cursor: str | None


def read_feed(conn: Connection, *, after: str | None, limit: int) -> FeedPage:
    """Events in commit order, oldest first, strictly after the opaque cursor `after`.

    Why not simply `id > after`: on PostgreSQL ids come from a sequence when the row is
    inserted, but transactions commit in any order, so id 11 can be visible while id 10 is still
    uncommitted; a reader that moved its cursor to 11 would skip 10 forever. Each row records the
    id of the transaction that wrote it (`txid`), and the feed only returns rows whose
    transaction is older than the oldest one still running (`pg_snapshot_xmin`): every such
    transaction has finished, and any transaction that has not can only have a txid at or above
    that horizon. Rows are ordered by (txid, id), a total order that no later commit can insert
    itself before. On SQLite writers are serialised (BEGIN IMMEDIATE), so id order is commit
    order and txid is 0 on every row.
    """
    position = pagination.decode("events", after, int, int) if after else None
    horizon = dialect.feed_horizon(conn)
    stmt = select(outbox.c.txid, outbox.c.id, outbox.c.envelope)
    if position is not None:
        txid, row_id = position
        stmt = stmt.where(
            or_(outbox.c.txid > txid, and_(outbox.c.txid == txid, outbox.c.id > row_id))
        )
    if horizon is not None:
        stmt = stmt.where(outbox.c.txid < horizon)
    stmt = stmt.order_by(outbox.c.txid, outbox.c.id).limit(limit)
    rows = conn.execute(stmt).all()
    events = [row.envelope for row in rows]
    if rows:
        last = rows[-1]
        cursor: str | None = pagination.encode("events", int(last.txid), int(last.id))
    else:
        cursor = after
    return FeedPage(events=events, next_cursor=cursor)


__all__ = ["FeedPage", "append", "read_feed"]
