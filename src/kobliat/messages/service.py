"""Message use cases. They take a unit of work and never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from kobliat import pagination
from kobliat.conversations import service as conversations
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.errors import NotFound, RuleViolation
from kobliat.messages import store
from kobliat.messages.model import Message


def is_stored(conn: Connection, *, channel: str, external_message_id: str) -> bool:
    """True when a provider's message is stored already (a retried webhook)."""
    return store.get_by_external_id(conn, channel, external_message_id) is not None


def record_inbound(
    uow: UnitOfWork,
    *,
    conversation_id: UUID,
    sender_customer_id: UUID | None,
    channel: str,
    external_message_id: str,
    content_type: str,
    body: str | None,
    sent_at: datetime,
    metadata: dict[str, Any] | None = None,
) -> tuple[Message, bool]:
    """Store a provider's message once (`message.inbound.created`); a repeat returns the first."""
    message = Message.new(
        conversation_id=conversation_id,
        direction="inbound",
        channel=channel,
        content_type=content_type,
        body=body,
        sent_at=sent_at,
        now=utcnow(),
        sender_customer_id=sender_customer_id,
        external_message_id=external_message_id,
        metadata=metadata,
        status="received",
    )
    if not store.insert_if_new(uow.connection, message):
        existing = store.get_by_external_id(uow.connection, channel, external_message_id)
        assert existing is not None
        return existing, False
    conversations.record_message_time(uow, conversation_id, sent_at)
    uow.emit(message.created_event())
    return message, True


def send_outbound(
    uow: UnitOfWork,
    conversation_id: UUID,
    *,
    content_type: str,
    body: str | None,
    metadata: dict[str, Any] | None = None,
    sender_customer_id: UUID | None = None,
    external_message_id: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Message, bool]:
    """Record a message the business sends (`message.outbound.created`).

    With an Idempotency-Key, a repeat of the same request returns the first message (and
    False); the same key with a different request is refused.
    """
    conversation = conversations.get(uow.connection, conversation_id)
    if conversation.status == "closed":
        raise RuleViolation(
            "the conversation is closed; reopen it to send", code="conversation-closed"
        )
    if sender_customer_id is not None and conversation.participant(sender_customer_id) is None:
        raise RuleViolation(
            f"sender {sender_customer_id} is not a participant", code="sender-not-participant"
        )
    now = utcnow()
    message = Message.new(
        conversation_id=conversation_id,
        direction="outbound",
        channel=conversation.channel or "api",
        content_type=content_type,
        body=body,
        sent_at=now,
        now=now,
        sender_customer_id=sender_customer_id,
        external_message_id=external_message_id,
        metadata=metadata,
        status="pending",
        idempotency_key=idempotency_key,
    )
    if store.insert_if_new(uow.connection, message):
        conversations.record_message_time(uow, conversation_id, now)
        uow.emit(message.created_event())
        return message, True
    return _earlier(uow.connection, message), False


def _earlier(conn: Connection, attempt: Message) -> Message:
    """The stored message that made `attempt` a repeat; refuse when it was a different one."""
    earlier = None
    if attempt.idempotency_key is not None:
        earlier = store.get_by_idempotency_key(
            conn, attempt.conversation_id, attempt.idempotency_key
        )
    if earlier is None and attempt.external_message_id is not None:
        earlier = store.get_by_external_id(conn, attempt.channel, attempt.external_message_id)
        if earlier is not None:
            raise RuleViolation(
                f"a message with external_message_id {attempt.external_message_id} exists",
                code="external-message-id-taken",
            )
    if earlier is None:
        raise RuntimeError("message insert conflicted with nothing visible")
    same = (earlier.content_type, earlier.body, earlier.metadata, earlier.sender_customer_id) == (
        attempt.content_type,
        attempt.body,
        attempt.metadata,
        attempt.sender_customer_id,
    )
    if not same:
        raise RuleViolation(
            "this Idempotency-Key was used for a different message",
            code="idempotency-key-reused",
        )
    return earlier


def apply_status(
    uow: UnitOfWork,
    *,
    channel: str,
    external_message_id: str,
    status: str,
    at: datetime,
    error: dict[str, Any] | None = None,
) -> Message | None:
    """Move an outbound message's status forward (`message.status.updated`).

    Returns None when no message has this provider id (yet); the caller keeps the status.
    """
    current = store.get_by_external_id(
        uow.connection, channel, external_message_id, for_update=True
    )
    if current is None:
        return None
    after, event = current.with_status(status, error=error, at=at, now=utcnow())
    if event is not None:
        store.save_status(uow.connection, after)
        uow.emit(event)
    return after


def get(conn: Connection, message_id: UUID) -> Message:
    """The message, or NotFound."""
    found = store.get(conn, message_id)
    if found is None:
        raise NotFound(f"no message {message_id}", code="message-not-found")
    return found


def list_page(
    conn: Connection,
    conversation_id: UUID,
    *,
    cursor: str | None,
    limit: int,
    newest_first: bool = True,
) -> tuple[list[Message], str | None]:
    """A page of a conversation's messages by provider time, and the next page's cursor."""
    kind = "messages-desc" if newest_first else "messages-asc"
    after = pagination.decode(kind, cursor, datetime, UUID) if cursor else None
    rows = store.page(
        conn,
        conversation_id,
        after=after,
        limit=limit + 1,
        newest_first=newest_first,
    )
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = pagination.encode(kind, last.sent_at, last.id)
    return items, next_cursor
