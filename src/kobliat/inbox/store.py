"""Every SQL statement of the webhook inbox."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)

from kobliat.db import dialect
from kobliat.db.tables import inbox
from kobliat.inbox.model import CHANNELS, Delivery, Entry, State, StoredDelivery

i = inbox.c
# Neither processed nor given up on: the worker will try it (again).
_PENDING = (i.processed_at.is_(None), i.failed_at.is_(None))
# What an operator sees of a delivery: never its body or headers.
_ENTRY_COLUMNS: tuple[ColumnElement[Any], ...] = (
    i.id,
    i.channel,
    i.delivery_key,
    i.attempts,
    i.last_error,
    i.received_at,
    i.next_attempt_at,
    i.failed_at,
    i.processed_at,
)


def insert(
    conn: Connection,
    delivery: Delivery,
    *,
    delivery_key: str,
    processed_at: datetime | None,
    next_attempt_at: datetime,
    error: str | None = None,
) -> int | None:
    """Store a delivery unless its (channel, delivery_key) is stored already; its id if new."""
    values = {
        "channel": delivery.channel,
        "delivery_key": delivery_key,
        "body": delivery.body,
        "headers": delivery.headers,
        "received_at": delivery.received_at,
        "processed_at": processed_at,
        "attempts": 1,
        "last_error": error,
        "next_attempt_at": next_attempt_at,
    }
    found = conn.execute(_insert(conn.dialect.name), values).scalar_one_or_none()
    return None if found is None else int(found)


@functools.cache
def _insert(dialect_name: str) -> Any:
    # Built once per dialect: every webhook runs it.
    return (
        dialect.insert_for(dialect_name, inbox)
        .on_conflict_do_nothing(index_elements=[i.channel, i.delivery_key])
        .returning(i.id)
    )


def due(conn: Connection, *, now: datetime, limit: int) -> list[int]:
    """Ids of pending deliveries whose next attempt is due, oldest first."""
    stmt = (
        select(i.id)
        .where(*_PENDING, i.next_attempt_at <= now)
        .order_by(i.next_attempt_at, i.id)
        .limit(limit)
    )
    return [int(row.id) for row in conn.execute(stmt)]


def claim(conn: Connection, inbox_id: int) -> StoredDelivery | None:
    """Lock a pending delivery for this transaction; None when done, failed or held elsewhere."""
    stmt = select(inbox).where(i.id == inbox_id, *_PENDING).with_for_update(skip_locked=True)
    row = conn.execute(stmt).first()
    if row is None:
        return None
    delivery = Delivery(
        channel=row.channel,
        body=bytes(row.body),
        headers=dict(row.headers or {}),
        received_at=row.received_at,
    )
    return StoredDelivery(
        id=int(row.id), delivery_key=row.delivery_key, delivery=delivery, attempts=row.attempts
    )


def mark_processed(conn: Connection, inbox_id: int, *, now: datetime, attempts: int) -> None:
    """Record a successful attempt (the `attempts`-th)."""
    conn.execute(
        update(inbox)
        .where(i.id == inbox_id)
        .values(processed_at=now, attempts=attempts, last_error=None)
    )


def mark_failed(
    conn: Connection, inbox_id: int, *, now: datetime, attempts: int, error: str
) -> None:
    """Give up on a delivery: the worker leaves it alone until an operator retries it."""
    conn.execute(
        update(inbox)
        .where(i.id == inbox_id, i.processed_at.is_(None))
        .values(failed_at=now, attempts=attempts, last_error=error)
    )


def attempts(conn: Connection, inbox_id: int) -> int | None:
    """How many attempts a delivery has had, locking its row (None when it is gone)."""
    stmt = select(i.attempts).where(i.id == inbox_id).with_for_update()
    found = conn.execute(stmt).scalar_one_or_none()
    return None if found is None else int(found)


def record_failure(
    conn: Connection, inbox_id: int, *, error: str, attempts: int, next_attempt_at: datetime
) -> None:
    """Record a failed attempt and when to try again."""
    conn.execute(
        update(inbox)
        .where(i.id == inbox_id, *_PENDING)
        .values(attempts=attempts, last_error=error, next_attempt_at=next_attempt_at)
    )


def entries(conn: Connection, state: Literal["pending", "failed"], *, limit: int) -> list[Entry]:
    """Failed deliveries, most recent failure first, or pending ones, next attempt first."""
    stmt = select(*_ENTRY_COLUMNS)
    if state == "failed":
        stmt = stmt.where(i.failed_at.is_not(None)).order_by(i.failed_at.desc(), i.id.desc())
    else:
        stmt = stmt.where(*_PENDING).order_by(i.next_attempt_at, i.id)
    return [_entry(row) for row in conn.execute(stmt.limit(limit))]


def lookup(conn: Connection, *, keys: Sequence[str] = (), ids: Sequence[int] = ()) -> list[Entry]:
    """The deliveries with these delivery keys (on any channel) or these ids."""
    # Naming every channel lets the (channel, delivery_key) unique index find the keys.
    by_key = and_(i.channel.in_(CHANNELS), i.delivery_key.in_(keys))
    stmt = select(*_ENTRY_COLUMNS).where(or_(by_key, i.id.in_(ids)))
    return [_entry(row) for row in conn.execute(stmt.order_by(i.id))]


def failed_ids(conn: Connection) -> list[int]:
    """Ids of every failed delivery, oldest failure first."""
    stmt = select(i.id).where(i.failed_at.is_not(None)).order_by(i.failed_at, i.id)
    return [int(row.id) for row in conn.execute(stmt)]


def requeue(conn: Connection, ids: Sequence[int], *, now: datetime) -> None:
    """Make unprocessed deliveries due now, failed or not, with a fresh round of attempts."""
    conn.execute(
        update(inbox)
        .where(i.id.in_(ids), i.processed_at.is_(None))
        .values(failed_at=None, attempts=0, next_attempt_at=now)
    )


def counts(conn: Connection) -> dict[str, int]:
    """How many deliveries are pending and how many failed."""
    pending = select(func.count()).select_from(inbox).where(*_PENDING).scalar_subquery()
    failed = select(func.count()).select_from(inbox).where(i.failed_at.is_not(None))
    row = conn.execute(select(pending, failed.scalar_subquery())).one()
    return {"pending": int(row[0]), "failed": int(row[1])}


def delete_processed_before(conn: Connection, before: datetime) -> int:
    """Delete deliveries processed before `before`; how many."""
    result = conn.execute(delete(inbox).where(i.processed_at < before))
    return int(result.rowcount)


def _entry(row: Row[Any]) -> Entry:
    return Entry(
        id=int(row.id),
        channel=row.channel,
        delivery_key=row.delivery_key,
        state=_state(row),
        attempts=row.attempts,
        last_error=row.last_error,
        received_at=row.received_at,
        next_attempt_at=row.next_attempt_at,
        failed_at=row.failed_at,
    )


def _state(row: Row[Any]) -> State:
    if row.processed_at is not None:
        return "processed"
    return "pending" if row.failed_at is None else "failed"
