"""Every SQL statement of the message context."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, Select, and_, bindparam, delete, or_, select, update

from kobliat.db import dialect
from kobliat.db.tables import messages as messages_t
from kobliat.db.tables import pending_statuses as pending_t
from kobliat.messages.model import Message

m = messages_t.c


def _to_message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        sender_customer_id=row.sender_customer_id,
        direction=row.direction,
        channel=row.channel,
        external_message_id=row.external_message_id,
        content_type=row.content_type,
        body=row.body,
        metadata=row.metadata or {},
        sent_at=row.sent_at,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        idempotency_key=row.idempotency_key,
    )


def insert_if_new(conn: Connection, message: Message) -> bool:
    """Insert unless (channel, external_message_id) or (conversation, Idempotency-Key) is taken.

    True when this call inserted the row.
    """
    values = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender_customer_id": message.sender_customer_id,
        "direction": message.direction,
        "channel": message.channel,
        "external_message_id": message.external_message_id,
        "content_type": message.content_type,
        "body": message.body,
        "metadata": message.metadata,
        "sent_at": message.sent_at,
        "status": message.status,
        "idempotency_key": message.idempotency_key,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }
    return conn.execute(_insert_if_new(conn.dialect.name), values).first() is not None


@functools.cache
def _insert_if_new(dialect_name: str) -> Any:
    # Built once per dialect; the values come with each execution.
    # No conflict target: either unique index may be the one hit, and both mean "stored already".
    return dialect.insert_for(dialect_name, messages_t).on_conflict_do_nothing().returning(m.id)


def get(conn: Connection, message_id: UUID) -> Message | None:
    """The message with this id."""
    row = conn.execute(select(messages_t).where(m.id == message_id)).first()
    return _to_message(row) if row else None


def get_by_external_id(
    conn: Connection, channel: str, external_message_id: str, *, for_update: bool = False
) -> Message | None:
    """The message a provider knows by this id."""
    params = {"channel": channel, "external_message_id": external_message_id}
    row = conn.execute(_by_external_id(for_update), params).first()
    return _to_message(row) if row else None


@functools.cache
def _by_external_id(for_update: bool) -> Select[Any]:
    # Built once: every inbound message and status looks its message up.
    stmt = select(messages_t).where(
        m.channel == bindparam("channel"), m.external_message_id == bindparam("external_message_id")
    )
    return stmt.with_for_update() if for_update else stmt


def get_by_idempotency_key(conn: Connection, conversation_id: UUID, key: str) -> Message | None:
    """The outbound message posted earlier with this Idempotency-Key."""
    row = conn.execute(
        select(messages_t).where(m.conversation_id == conversation_id, m.idempotency_key == key)
    ).first()
    return _to_message(row) if row else None


def save_status(conn: Connection, message: Message) -> None:
    """Persist status, metadata and updated_at."""
    conn.execute(
        update(messages_t)
        .where(m.id == message.id)
        .values(status=message.status, metadata=message.metadata, updated_at=message.updated_at)
    )


def keep_pending_status(conn: Connection, values: dict[str, Any]) -> bool:
    """Store a status whose message is not known yet; False when it is kept already."""
    stmt = (
        dialect.dialect_insert(conn, pending_t)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[
                pending_t.c.channel,
                pending_t.c.external_message_id,
                pending_t.c.status,
            ]
        )
        .returning(pending_t.c.id)
    )
    return conn.execute(stmt).first() is not None


def take_pending_statuses(
    conn: Connection, channel: str, external_message_id: str
) -> list[Row[Any]]:
    """Remove and return the statuses kept for this provider message id."""
    stmt = (
        delete(pending_t)
        .where(
            pending_t.c.channel == channel, pending_t.c.external_message_id == external_message_id
        )
        .returning(
            pending_t.c.status, pending_t.c.occurred_at, pending_t.c.error, pending_t.c.metadata
        )
    )
    return list(conn.execute(stmt))


def pending_with_message(conn: Connection, *, since: datetime, limit: int) -> list[tuple[str, str]]:
    """(channel, external_message_id) of statuses kept since `since` whose message exists."""
    stmt = (
        select(pending_t.c.channel, pending_t.c.external_message_id)
        .where(pending_t.c.received_at >= since)
        .join(
            messages_t,
            and_(
                m.channel == pending_t.c.channel,
                m.external_message_id == pending_t.c.external_message_id,
            ),
        )
        .distinct()
        .limit(limit)
    )
    return [(row.channel, row.external_message_id) for row in conn.execute(stmt)]


def delete_pending_before(conn: Connection, before: datetime) -> int:
    """Forget statuses kept since before `before`; how many."""
    result = conn.execute(delete(pending_t).where(pending_t.c.received_at < before))
    return int(result.rowcount)


def page(
    conn: Connection,
    conversation_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
    newest_first: bool,
) -> list[Message]:
    """A conversation's messages in provider-time order, keyset-paginated on (sent_at, id)."""
    stmt = select(messages_t).where(m.conversation_id == conversation_id)
    if after is not None:
        moment, last_id = after
        if newest_first:
            stmt = stmt.where(or_(m.sent_at < moment, and_(m.sent_at == moment, m.id < last_id)))
        else:
            stmt = stmt.where(or_(m.sent_at > moment, and_(m.sent_at == moment, m.id > last_id)))
    if newest_first:
        stmt = stmt.order_by(m.sent_at.desc(), m.id.desc())
    else:
        stmt = stmt.order_by(m.sent_at, m.id)
    return [_to_message(row) for row in conn.execute(stmt.limit(limit))]


def latest_inbound(conn: Connection, conversation_id: UUID) -> Message | None:
    """The conversation's most recent inbound message by provider time."""
    stmt = (
        select(messages_t)
        .where(m.conversation_id == conversation_id, m.direction == "inbound")
        .order_by(m.sent_at.desc(), m.id.desc())
        .limit(1)
    )
    row = conn.execute(stmt).first()
    return _to_message(row) if row else None


def save_sent(conn: Connection, message: Message) -> None:
    """Persist the provider's id together with status, metadata and updated_at."""
    conn.execute(
        update(messages_t)
        .where(m.id == message.id)
        .values(
            external_message_id=message.external_message_id,
            status=message.status,
            metadata=message.metadata,
            updated_at=message.updated_at,
        )
    )
