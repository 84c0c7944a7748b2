"""Message use cases. They take a unit of work and never commit."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Connection

from kobliat import pagination
from kobliat.conversations import service as conversations
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.errors import NotFound, RuleViolation
from kobliat.messages import store
from kobliat.messages.model import STATUS_RANK, Message


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
    direction: Literal["inbound", "outbound"] = "inbound",
) -> tuple[Message, bool]:
    """Store a message a provider delivered, once (`message.inbound.created`, or
    `message.outbound.created` for the business endpoint's own); a repeat returns the first."""
    message = Message.new(
        conversation_id=conversation_id,
        direction=direction,
        channel=channel,
        content_type=content_type,
        body=body,
        sent_at=sent_at,
        now=utcnow(),
        sender_customer_id=sender_customer_id,
        external_message_id=external_message_id,
        metadata=metadata,
        # The provider reporting the business's own message means it was sent.
        status="received" if direction == "inbound" else "sent",
    )
    if not store.insert_if_new(uow.connection, message):
        existing = store.get_by_external_id(uow.connection, channel, external_message_id)
        assert existing is not None
        return existing, False
    conversations.record_message_time(uow, conversation_id, sent_at)
    uow.emit(message.created_event())
    if direction == "outbound":
        message = apply_pending_statuses(uow, message)
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
    conversation = conversations.open_for_message(uow, conversation_id)
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
        return apply_pending_statuses(uow, message), True
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
    same = (
        earlier.content_type,
        earlier.body,
        _as_posted(earlier.metadata),
        earlier.sender_customer_id,
    ) == (
        attempt.content_type,
        attempt.body,
        _as_posted(attempt.metadata),
        attempt.sender_customer_id,
    )
    if not same:
        raise RuleViolation(
            "this Idempotency-Key was used for a different message",
            code="idempotency-key-reused",
        )
    return earlier


# Metadata keys kobliat adds to a message after it was posted (delivery statuses, errors).
_ADDED_KEYS = frozenset({"status_at", "error", "provider_id"})


def _as_posted(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata as it was posted: a repeat of a POST is compared with this."""
    return {k: v for k, v in metadata.items() if k not in _ADDED_KEYS}


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


def find_by_external_id(
    conn: Connection, *, channel: str, external_message_id: str
) -> Message | None:
    """The message a provider knows by this id, if stored."""
    return store.get_by_external_id(conn, channel, external_message_id)


def keep_pending_status(
    uow: UnitOfWork,
    *,
    channel: str,
    external_message_id: str,
    status: str,
    at: datetime,
    error: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Keep a status for a message not stored yet; False when this status is kept already."""
    return store.keep_pending_status(
        uow.connection,
        {
            "channel": channel,
            "external_message_id": external_message_id,
            "status": status,
            "occurred_at": at,
            "error": error,
            "metadata": metadata or {},
            "received_at": utcnow(),
        },
    )


def apply_pending_statuses(uow: UnitOfWork, message: Message) -> Message:
    """Apply (and forget) the statuses that arrived before this message did."""
    if message.external_message_id is None:
        return message
    kept = store.take_pending_statuses(uow.connection, message.channel, message.external_message_id)
    current = message
    for row in sorted(kept, key=lambda r: (r.occurred_at, STATUS_RANK.get(r.status, 0))):
        current, event = current.with_status(
            row.status, error=row.error, at=row.occurred_at, now=utcnow()
        )
        if event is not None:
            uow.emit(event)
    if current is not message:
        store.save_status(uow.connection, current)
    return current


def overdue_statuses(conn: Connection, *, since: datetime, limit: int) -> list[tuple[str, str]]:
    """(channel, external id) of statuses kept since `since` whose message is stored by now.

    A status and its message committed at the same moment cannot see each other (each
    transaction misses the other's uncommitted row): a periodic sweep closes that gap.
    """
    return store.pending_with_message(conn, since=since, limit=limit)


def apply_overdue_statuses(uow: UnitOfWork, keys: list[tuple[str, str]]) -> int:
    """Apply the kept statuses of these (channel, external id) messages; how many messages."""
    applied = 0
    for channel, external_id in keys:
        message = store.get_by_external_id(uow.connection, channel, external_id, for_update=True)
        if message is not None:
            apply_pending_statuses(uow, message)
            applied += 1
    return applied


def forget_pending_statuses(uow: UnitOfWork, *, before: datetime) -> int:
    """Drop statuses kept since before `before` (their message never came); how many."""
    return store.delete_pending_before(uow.connection, before)


def record_edit(
    uow: UnitOfWork,
    *,
    channel: str,
    external_message_id: str,
    content_type: str,
    body: str | None,
    edited_at: str | None,
) -> Message | None:
    """Keep a provider's edit of a stored message in its metadata; None when not stored."""
    current = store.get_by_external_id(
        uow.connection, channel, external_message_id, for_update=True
    )
    if current is None:
        return None
    after = current.with_edit(
        content_type=content_type, body=body, edited_at=edited_at, now=utcnow()
    )
    if after is not current:
        store.save_status(uow.connection, after)
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
    return pagination.page_of(rows, limit=limit, kind=kind, key=lambda m: (m.sent_at, m.id))


def latest_inbound(conn: Connection, conversation_id: UUID) -> Message | None:
    """The last message the customer side wrote in this conversation, if any."""
    return store.latest_inbound(conn, conversation_id)


def record_sent(
    uow: UnitOfWork, message_id: UUID, *, external_message_id: str, at: datetime
) -> Message:
    """A provider accepted an outbound message: keep its id, mark it `sent`, and apply the
    statuses that arrived before the provider's answer did."""
    current = store.get(uow.connection, message_id)
    if current is None:
        raise NotFound(f"no message {message_id}", code="message-not-found")
    if current.status == "failed":  # an operator's retry of a failed send went through
        current = replace(current, status="pending")
    if store.get_by_external_id(uow.connection, current.channel, external_message_id):
        # The provider's id is stored on another message already (an echo webhook won the
        # race): keep it in the metadata so nothing is lost, without breaking the unique index.
        current = replace(
            current, metadata={**current.metadata, "provider_id": external_message_id}
        )
    else:
        current = replace(current, external_message_id=external_message_id)
    after, event = current.with_status("sent", error=None, at=at, now=utcnow())
    store.save_sent(uow.connection, after)
    if event is not None:
        uow.emit(event)
    return apply_pending_statuses(uow, after)


def record_send_failure(
    uow: UnitOfWork, message_id: UUID, *, error: dict[str, Any], at: datetime
) -> Message:
    """The provider refused an outbound message (or its outcome is unknown): `failed`."""
    current = store.get(uow.connection, message_id)
    if current is None:
        raise NotFound(f"no message {message_id}", code="message-not-found")
    after, event = current.with_status("failed", error=error, at=at, now=utcnow())
    if event is not None:
        store.save_status(uow.connection, after)
        uow.emit(event)
    return after
