"""Every SQL statement of the send queue.

Claiming: a row is due when it is `queued`, its next attempt has come, and no older row of the
same conversation is still `queued` or `sending`, so one conversation has at most one send in
flight and its messages leave in creation order. Rows are taken with FOR UPDATE SKIP LOCKED on
PostgreSQL (SQLite's BEGIN IMMEDIATE serialises claimers anyway) and leased with the
database's clock, so several sender processes on several hosts agree on who holds what.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from kobliat.db import dialect
from kobliat.db.tables import send_queue as queue_t
from kobliat.sending.model import Route

q = queue_t.c
ACTIVE = ("queued", "sending")


def enqueue(
    conn: Connection, *, message_id: UUID, conversation_id: UUID, route: Route, now: datetime
) -> None:
    """Add a message to the queue (in the transaction that stores the message)."""
    conn.execute(
        insert(queue_t).values(
            message_id=message_id,
            conversation_id=conversation_id,
            provider=route.provider,
            route=route.as_json(),
            state="queued",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def now(conn: Connection) -> datetime:
    """The clock leases are measured with."""
    return dialect.database_now(conn)


def claim(
    conn: Connection,
    *,
    owner: str,
    limit: int,
    lease: timedelta,
    at: datetime,
    providers: Sequence[str],
) -> list[Row[Any]]:
    """Lease up to `limit` due rows of these providers, each the oldest unfinished one of its
    conversation."""
    earlier = aliased(queue_t)
    blocked = exists().where(
        earlier.c.conversation_id == q.conversation_id,
        earlier.c.state.in_(ACTIVE),
        earlier.c.id < q.id,
    )
    stmt = (
        select(q.id)
        .where(q.state == "queued", q.next_attempt_at <= at, q.provider.in_(providers), ~blocked)
        .order_by(q.id)
        .limit(limit)
    )
    ids = [int(row.id) for row in conn.execute(dialect.skip_locked(conn, stmt))]
    if not ids:
        return []
    conn.execute(
        update(queue_t)
        .where(q.id.in_(ids))
        .values(
            state="sending",
            attempts=q.attempts + 1,
            leased_until=at + lease,
            lease_owner=owner,
            updated_at=at,
        )
    )
    return rows(conn, ids)


def has_due(conn: Connection, *, at: datetime, providers: Sequence[str]) -> bool:
    """Whether any queued row of these providers is due (a cheap read before a claim)."""
    stmt = select(q.id).where(
        q.state == "queued", q.next_attempt_at <= at, q.provider.in_(providers)
    )
    return conn.execute(stmt.limit(1)).first() is not None


def rows(conn: Connection, ids: Sequence[int]) -> list[Row[Any]]:
    """The queue rows with these ids, oldest first."""
    return list(conn.execute(select(queue_t).where(q.id.in_(ids)).order_by(q.id)))


def expired(conn: Connection, *, at: datetime, limit: int) -> list[Row[Any]]:
    """Rows whose sender vanished mid-send (lease run out), locked for this transaction."""
    stmt = select(q.id).where(q.state == "sending", q.leased_until < at).order_by(q.id).limit(limit)
    ids = [int(row.id) for row in conn.execute(dialect.skip_locked(conn, stmt))]
    return rows(conn, ids) if ids else []


def holds(conn: Connection, job_id: int, *, owner: str | None) -> bool:
    """Whether the row is still `sending` under this owner (None: under anyone), locking it."""
    stmt = select(q.lease_owner).where(q.id == job_id, q.state == "sending").with_for_update()
    found = conn.execute(stmt).first()
    return found is not None and (owner is None or found.lease_owner == owner)


def remove(conn: Connection, job_id: int) -> None:
    """Forget a sent row: the message itself now says `sent` and holds the provider's id."""
    conn.execute(delete(queue_t).where(q.id == job_id))


def fail(conn: Connection, job_id: int, *, at: datetime, error: str) -> None:
    """Park a row as failed: it waits for an operator's retry."""
    conn.execute(
        update(queue_t)
        .where(q.id == job_id)
        .values(
            state="failed", leased_until=None, lease_owner=None, last_error=error, updated_at=at
        )
    )


def reschedule(
    conn: Connection, job_id: int, *, at: datetime, retry_at: datetime, error: str
) -> None:
    """Put a row back in the queue for a later attempt."""
    conn.execute(
        update(queue_t)
        .where(q.id == job_id)
        .values(
            state="queued",
            next_attempt_at=retry_at,
            leased_until=None,
            lease_owner=None,
            last_error=error,
            updated_at=at,
        )
    )


def release(conn: Connection, ids: Sequence[int], *, owner: str) -> int:
    """Give back rows this owner claimed but never started sending (a clean shutdown)."""
    result = conn.execute(
        update(queue_t)
        .where(q.id.in_(ids), q.state == "sending", q.lease_owner == owner)
        .values(state="queued", leased_until=None, lease_owner=None, attempts=q.attempts - 1)
    )
    return int(result.rowcount)


def prune_failed(conn: Connection, *, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` failed rows last changed before `before`; how many went."""
    doomed = (
        select(q.id)
        .where(q.state == "failed", q.updated_at < before)
        .order_by(q.updated_at, q.id)
        .limit(limit)
    )
    return int(conn.execute(delete(queue_t).where(q.id.in_(doomed))).rowcount)


def failed(conn: Connection, *, limit: int) -> list[Row[Any]]:
    """Failed rows, most recent first, with what an operator needs to see."""
    stmt = (
        select(q.id, q.message_id, q.conversation_id, q.provider, q.attempts, q.last_error)
        .add_columns(q.updated_at)
        .where(q.state == "failed")
        .order_by(q.updated_at.desc(), q.id.desc())
        .limit(limit)
    )
    return list(conn.execute(stmt))


def pending(conn: Connection, *, limit: int) -> list[Row[Any]]:
    """Queued and in-flight rows, oldest first."""
    stmt = (
        select(q.id, q.message_id, q.conversation_id, q.provider, q.attempts, q.last_error)
        .add_columns(q.next_attempt_at, q.state)
        .where(q.state.in_(ACTIVE))
        .order_by(q.id)
        .limit(limit)
    )
    return list(conn.execute(stmt))


def requeue(conn: Connection, *, message_ids: Sequence[UUID], at: datetime) -> list[UUID]:
    """Make failed rows (these messages', or every one when none is named) due now."""
    where = [q.state == "failed"]
    if message_ids:
        where.append(q.message_id.in_(message_ids))
    stmt = (
        update(queue_t)
        .where(and_(*where))
        .values(state="queued", attempts=0, next_attempt_at=at, last_error=None, updated_at=at)
        .returning(q.message_id)
    )
    return [row.message_id for row in conn.execute(stmt)]


def counts(conn: Connection) -> dict[str, int]:
    """Rows per state (queued, sending, failed)."""
    stmt = (
        select(q.state, func.count())
        .where(q.state.in_(("queued", "sending", "failed")))
        .group_by(q.state)
    )
    found = {row[0]: int(row[1]) for row in conn.execute(stmt)}
    return {state: found.get(state, 0) for state in ("queued", "sending", "failed")}
