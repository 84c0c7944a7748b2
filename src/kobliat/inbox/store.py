"""Every SQL statement of the webhook inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from kobliat.db import dialect
from kobliat.db.tables import inbox
from kobliat.inbox.model import Delivery, StoredDelivery

i = inbox.c


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
    stmt = (
        dialect.dialect_insert(conn, inbox)
        .values(
            channel=delivery.channel,
            delivery_key=delivery_key,
            body=delivery.body,
            headers=delivery.headers,
            received_at=delivery.received_at,
            processed_at=processed_at,
            attempts=1,
            last_error=error,
            next_attempt_at=next_attempt_at,
        )
        .on_conflict_do_nothing(index_elements=[i.channel, i.delivery_key])
        .returning(i.id)
    )
    found = conn.execute(stmt).scalar_one_or_none()
    return None if found is None else int(found)


def due(conn: Connection, *, now: datetime, max_attempts: int, limit: int) -> list[int]:
    """Ids of unprocessed deliveries whose next attempt is due, oldest first."""
    stmt = (
        select(i.id)
        .where(i.processed_at.is_(None), i.next_attempt_at <= now, i.attempts < max_attempts)
        .order_by(i.next_attempt_at, i.id)
        .limit(limit)
    )
    return [int(row.id) for row in conn.execute(stmt)]


def claim(conn: Connection, inbox_id: int) -> StoredDelivery | None:
    """Lock an unprocessed delivery for this transaction; None when done or held elsewhere."""
    stmt = (
        select(inbox)
        .where(i.id == inbox_id, i.processed_at.is_(None))
        .with_for_update(skip_locked=True)
    )
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


def mark_processed(conn: Connection, inbox_id: int, *, now: datetime) -> None:
    """Record a successful attempt."""
    conn.execute(
        update(inbox)
        .where(i.id == inbox_id)
        .values(processed_at=now, attempts=i.attempts + 1, last_error=None)
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
        .where(i.id == inbox_id, i.processed_at.is_(None))
        .values(attempts=attempts, last_error=error, next_attempt_at=next_attempt_at)
    )


def delete_processed_before(conn: Connection, before: datetime) -> int:
    """Delete deliveries processed before `before`; how many."""
    result = conn.execute(delete(inbox).where(i.processed_at < before))
    return int(result.rowcount)
