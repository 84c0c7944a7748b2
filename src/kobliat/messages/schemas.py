"""HTTP shapes of the message context."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from kobliat.http import ReadableJson, Strict
from kobliat.messages.model import ContentType, Direction, Message

MessageStatus = Literal["received", "pending", "sent", "delivered", "read", "failed"]

EXAMPLE: JsonDict = {
    "id": "5d1c7a0e-2b8f-4a63-8f0e-6c3d2b1a9e77",
    "conversation_id": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
    "sender_customer_id": "0b6f3a52-7c1e-4d5a-9a51-2f0c8d1e9b42",
    "direction": "inbound",
    "channel": "whatsapp",
    "external_message_id": "wamid.HBgLNDQ3NzAwOTAwMTIzFQIAEhgUM0E",
    "content_type": "text",
    "body": "Hi, is my order on its way?",
    "metadata": {},
    "sent_at": "2026-01-31T10:15:00Z",
    "status": "received",
    "created_at": "2026-01-31T10:15:00.412345Z",
    "updated_at": "2026-01-31T10:15:00.412345Z",
}


class MessageOut(BaseModel):
    """A message in a conversation, inbound or outbound."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    id: UUID = Field(description="the message's id")
    conversation_id: UUID = Field(description="the conversation it belongs to")
    sender_customer_id: UUID | None = Field(description="the customer who sent it, when known")
    direction: Direction = Field(description="inbound (from a customer), outbound or system")
    channel: str = Field(description="the channel it travels on (`whatsapp`, `telegram`, ...)")
    external_message_id: str | None = Field(
        description="the provider's id for it (unique per channel), once known"
    )
    content_type: ContentType = Field(description="what kind of content `body` holds")
    body: str | None = Field(description="the text, the caption, or a summary of the content")
    metadata: ReadableJson = Field(
        description="media ids and URLs, captions, location, reply context, status history, "
        "the provider's raw payload (`raw`)"
    )
    sent_at: datetime = Field(description="when the provider says it was sent")
    status: MessageStatus | None = Field(
        description="`received` for inbound; outbound: pending → sent → delivered → read, or failed"
    )
    created_at: datetime = Field(description="when kobliat stored it")
    updated_at: datetime = Field(description="when it last changed (status, edits)")

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        """From the domain object."""
        return cls.model_validate(message, from_attributes=True)


class MessageCreate(Strict):
    """An outbound message the business sends."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"content_type": "text", "body": "Yes, it arrives tomorrow morning."}]
        }
    )

    content_type: ContentType = Field(default="text", description="what `body` holds")
    body: str | None = Field(
        default=None, max_length=65536, description="the text, or a caption for media"
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="media URL, location, reply context, ..."
    )
    sender_customer_id: UUID | None = Field(
        default=None, description="the business endpoint sending it (a participant)"
    )
    external_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="the provider's id, when the message was already sent through it",
    )
