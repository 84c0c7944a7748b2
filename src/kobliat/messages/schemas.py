"""HTTP shapes of the message context."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from kobliat.http import ReadableJson, Strict
from kobliat.messages.model import ContentType, Message


class MessageOut(BaseModel):
    """A message as the API shows it."""

    id: UUID
    conversation_id: UUID
    sender_customer_id: UUID | None
    direction: str
    channel: str
    external_message_id: str | None
    content_type: str
    body: str | None
    metadata: ReadableJson
    sent_at: datetime
    status: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        """From the domain object."""
        return cls.model_validate(message, from_attributes=True)


class MessageCreate(Strict):
    """An outbound message the business sends."""

    content_type: ContentType = "text"
    body: str | None = Field(default=None, max_length=65536)
    metadata: dict[str, Any] | None = None
    sender_customer_id: UUID | None = None
    external_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="the provider's id, when the message was already sent through it",
    )
