"""The transactional outbox: events are rows written in the same transaction as the change.

Each aggregate's events get consecutive sequence numbers from `aggregate_sequences`. Bumping that
row locks it until commit, so two transactions touching the same aggregate commit their events in
sequence order: a relay that delivers an aggregate's rows by sequence keeps per-aggregate order.

The same row also carries the aggregate's latest feed-order key (`last_txid`); see `append`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Integer, and_, bindparam, case, or_, select

from kobliat import pagination
from kobliat.db import dialect
from kobliat.db.tables import aggregate_sequences, outbox
from kobliat.events.envelope import DomainEvent, to_cloudevent


def append(conn: Connection, events: list[DomainEvent]) -> None:
    """Write `events` (in the order raised) to the outbox with per-aggregate sequence numbers.

    Each row's `txid` (the feed-order key, see `read_feed`) is the larger of this transaction's
    id and the key of the aggregate's previous event. A transaction's id is fixed at its first
    write, which can come before it waits for the aggregate's sequence row: a transaction with
    an older id can then write sequence n+1 after a younger one wrote n. Taking the larger key
    keeps each aggregate's events in sequence order in the feed, and the key is still never
    below the writer's own id, which is all the feed's horizon relies on.
    """
    by_aggregate: dict[str, list[DomainEvent]] = defaultdict(list)
    for event in events:
        by_aggregate[str(event.aggregate_id)].append(event)
    rows: list[dict[str, Any]] = []
    # Lock sequence rows in one global order so two transactions can never deadlock on them.
    for aggregate_id in sorted(by_aggregate):
        batch = by_aggregate[aggregate_id]
        last, txid = _reserve(conn, aggregate_id, len(batch))
        for offset, event in enumerate(batch):
            sequence = last - len(batch) + 1 + offset
            rows.append(
                {
                    "event_id": event.id,
                    "event_type": event.type,
                    "aggregate_type": event.aggregate_type,
                    "aggregate_id": aggregate_id,
                    "sequence": sequence,
                    "txid": txid,
                    "envelope": to_cloudevent(event, sequence=sequence),
                    "created_at": event.time,
                }
            )
    # Keep the order the events were raised in, for the feed's id order.
    order = {event.id: index for index, event in enumerate(events)}
    rows.sort(key=lambda row: order[row["event_id"]])
    conn.execute(outbox.insert(), rows)


def _reserve(conn: Connection, aggregate_id: str, count: int) -> tuple[int, int]:
    """Advance the aggregate's sequence by `count`; returns (new last sequence, feed key)."""
    params = {"aggregate_id": aggregate_id, "count": count}
    row = conn.execute(_reserving(conn.dialect.name), params).one()
    return int(row.last_sequence), int(row.last_txid)


@functools.cache
def _reserving(dialect_name: str) -> Any:
    # Built once per dialect: every event runs it.
    table = aggregate_sequences
    count = bindparam("count", type_=Integer())
    stmt = dialect.insert_for(dialect_name, table).values(
        aggregate_id=bindparam("aggregate_id"),
        last_sequence=count,
        last_txid=dialect.txid_for(dialect_name),
    )
    newer = stmt.excluded.last_txid
    return stmt.on_conflict_do_update(
        index_elements=[table.c.aggregate_id],
        set_={
            "last_sequence": table.c.last_sequence + count,
            "last_txid": case((newer > table.c.last_txid, newer), else_=table.c.last_txid),
        },
    ).returning(table.c.last_sequence, table.c.last_txid)


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the event feed and the cursor to read on from."""

    events: list[dict[str, Any]]
    next_cursor: str | None
    cursors: list[str]  # the cursor just after each event (the SSE `id`)


def read_feed(conn: Connection, *, after: str | None, limit: int) -> FeedPage:
    """Events in commit order, oldest first, strictly after the opaque cursor `after`.

    Why not simply `id > after`: on PostgreSQL ids come from a sequence when the row is
    inserted, but transactions commit in any order, so id 11 can be visible while id 10 is still
    uncommitted; a reader that moved its cursor to 11 would skip 10 forever. Each row records a
    key (`txid`) that is never below the id of the transaction that wrote it (see `append`), and
    the feed only returns rows whose key is below the oldest transaction still running
    (`pg_snapshot_xmin`): any transaction that has not finished can only write keys at or above
    that horizon. Rows are ordered by (txid, id), a total order that no later commit can insert
    itself before, and that keeps each aggregate's events in sequence order. On SQLite writers
    are serialised (BEGIN IMMEDIATE), so id order is commit order and txid is 0 on every row.
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
    cursors = [pagination.encode("events", int(row.txid), int(row.id)) for row in rows]
    cursor = cursors[-1] if cursors else after
    return FeedPage(events=events, next_cursor=cursor, cursors=cursors)


LAST_ID = 2**63 - 1  # past every row id: (key, LAST_ID) is after every row with that key


def cursor_after_event(conn: Connection, event_id: UUID) -> str | None:
    """The feed cursor just after the event with this id; None when it is not (or no longer)
    in the outbox.

    The event may come from NATS or a webhook, ahead of the feed: when its key is at or above
    the horizon, a transaction still running may yet commit events that the feed orders before
    it. The cursor then goes back to just below the horizon, so those are read too (along with a
    few events the reader may already have), never skipped.
    """
    row = conn.execute(
        select(outbox.c.txid, outbox.c.id).where(outbox.c.event_id == event_id)
    ).first()
    if row is None:
        return None
    txid, row_id = int(row.txid), int(row.id)
    horizon = dialect.feed_horizon(conn)
    if horizon is not None and txid >= horizon:
        txid, row_id = horizon - 1, LAST_ID
    return pagination.encode("events", txid, row_id)


__all__ = ["FeedPage", "append", "cursor_after_event", "read_feed"]
