"""The Message aggregate (its events belong to the conversation's stream, for ordering)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID, uuid4

from kobliat.errors import InvalidInput
from kobliat.events.envelope import DomainEvent, isoformat

Direction = Literal["inbound", "outbound", "system"]
ContentType = Literal[
    "text",
    "image",
    "audio",
    "video",
    "file",
    "location",
    "contacts",
    "interactive",
    "reaction",
    "structured",
    "unknown",
    # An outbound WhatsApp template (metadata: name, language, components); stored as text in
    # the content_type column, like every other type.
    "template",
]
CONTENT_TYPES: tuple[str, ...] = get_args(ContentType)
# Delivery statuses only move forward. A provider may report `read` without `delivered`, or
# report statuses out of order; a `failed` after `delivered` is a multi-device crossing and is
# ignored, while a `delivered`/`read` after `failed` means the message did arrive after all.
STATUS_RANK = {"pending": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}


@dataclass(frozen=True, slots=True)
class Message:
    """One message in a conversation."""

    id: UUID
    conversation_id: UUID
    sender_customer_id: UUID | None
    direction: Direction
    channel: str
    external_message_id: str | None
    content_type: str
    body: str | None
    metadata: dict[str, Any]
    sent_at: datetime
    status: str | None
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None

    @classmethod
    def new(
        cls,
        *,
        conversation_id: UUID,
        direction: Direction,
        channel: str,
        content_type: str,
        body: str | None,
        sent_at: datetime,
        now: datetime,
        sender_customer_id: UUID | None = None,
        external_message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """A new message; content_type must be one of CONTENT_TYPES."""
        if content_type not in CONTENT_TYPES:
            raise InvalidInput(
                f"content_type must be one of {', '.join(CONTENT_TYPES)}",
                code="invalid-content-type",
            )
        return cls(
            id=uuid4(),
            conversation_id=conversation_id,
            sender_customer_id=sender_customer_id,
            direction=direction,
            channel=channel,
            external_message_id=external_message_id,
            content_type=content_type,
            body=body,
            metadata=dict(metadata or {}),
            sent_at=sent_at,
            status=status,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
        )

    def created_event(self) -> DomainEvent:
        """`message.inbound.created` / `message.outbound.created`."""
        kind = "outbound" if self.direction == "outbound" else "inbound"
        data = {
            "message_id": str(self.id),
            "conversation_id": str(self.conversation_id),
            "sender_customer_id": str(self.sender_customer_id) if self.sender_customer_id else None,
            "direction": self.direction,
            "channel": self.channel,
            "external_message_id": self.external_message_id,
            "content_type": self.content_type,
            "body": self.body,
            "metadata": {k: v for k, v in self.metadata.items() if k != "raw"},
            "sent_at": isoformat(self.sent_at),
            "status": self.status,
        }
        return DomainEvent(
            type=f"message.{kind}.created",
            aggregate_type="conversation",
            aggregate_id=self.conversation_id,
            data=data,
            time=self.created_at,
        )

    def with_status(
        self, status: str, *, error: dict[str, Any] | None, at: datetime, now: datetime
    ) -> tuple[Message, DomainEvent | None]:
        """Apply a delivery status if it moves the message forward; else change nothing."""
        if status not in STATUS_RANK:
            raise InvalidInput(f"unknown status {status!r}", code="invalid-status")
        if STATUS_RANK[status] <= STATUS_RANK.get(self.status or "pending", 0):
            return self, None
        metadata = dict(self.metadata)
        metadata["status_at"] = {**metadata.get("status_at", {}), status: isoformat(at)}
        if error is not None:
            metadata["error"] = error
        after = replace(self, status=status, metadata=metadata, updated_at=now)
        event = DomainEvent(
            type="message.status.updated",
            aggregate_type="conversation",
            aggregate_id=self.conversation_id,
            data={
                "message_id": str(self.id),
                "conversation_id": str(self.conversation_id),
                "external_message_id": self.external_message_id,
                "status": status,
                "previous_status": self.status,
                "error": error,
                "status_at": isoformat(at),
            },
            time=now,
        )
        return after, event

    def with_edit(
        self, *, content_type: str, body: str | None, edited_at: str | None, now: datetime
    ) -> Message:
        """Record a provider's edit in `metadata["edits"]`; the first body stays the body.

        Kept as history rather than applied, so what was first said is never lost; the same
        edit delivered twice is recorded once.
        """
        edit = {"edited_at": edited_at, "content_type": content_type, "body": body}
        edits = list(self.metadata.get("edits", []))
        if edit in edits:
            return self
        metadata = {**self.metadata, "edits": [*edits, edit]}
        return replace(self, metadata=metadata, updated_at=now)
