"""HTTP shapes of the conversation context."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from kobliat.conversations.model import Conversation, Participant
from kobliat.customers.model import Customer
from kobliat.customers.schemas import CustomerOut
from kobliat.http import ReadableJson, Strict
from kobliat.messages.schemas import MessageOut

Role = Literal["owner", "admin", "member"]


class ParticipantOut(BaseModel):
    """A membership, as lists show it."""

    customer_id: UUID
    role: str
    joined_at: datetime
    metadata: ReadableJson

    @classmethod
    def of(cls, member: Participant) -> ParticipantOut:
        """From the domain object."""
        return cls.model_validate(member, from_attributes=True)


class ParticipantDetail(ParticipantOut):
    """A membership with its customer's details."""

    customer: CustomerOut | None

    @classmethod
    def with_customer(cls, member: Participant, customer: Customer | None) -> ParticipantDetail:
        """From the domain objects (customer None only if it was never stored)."""
        return cls(
            **ParticipantOut.of(member).model_dump(),
            customer=CustomerOut.of(customer) if customer else None,
        )


class ConversationOut(BaseModel):
    """A conversation as lists show it."""

    id: UUID
    type: str
    status: str
    channel: str | None
    external_id: str | None
    group_name: str | None
    group_avatar: str | None
    group_metadata: ReadableJson
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    participants: list[ParticipantOut]

    @classmethod
    def of(cls, conv: Conversation) -> ConversationOut:
        """From the domain object."""
        return cls.model_validate(conv, from_attributes=True)


class ConversationDetail(ConversationOut):
    """A conversation with its participants' customers and its latest messages (newest first)."""

    participants: list[ParticipantDetail]  # type: ignore[assignment]
    messages: list[MessageOut]


class ParticipantIn(Strict):
    """A customer joining a conversation."""

    customer_id: UUID
    role: Role | None = None


class ConversationCreate(Strict):
    """Open a conversation (or get the open one with the same key: 200)."""

    type: Literal["direct", "multi", "group"] = "direct"
    channel: str = Field(min_length=1, max_length=64)
    participants: list[ParticipantIn] = Field(default_factory=list, max_length=1000)
    group_name: str | None = Field(default=None, max_length=512)
    group_avatar: str | None = Field(default=None, max_length=2048)
    group_metadata: dict[str, Any] | None = None
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="a group's id on its channel; with it, one open conversation per group",
    )


class ConversationPatch(Strict):
    """Status and group details."""

    status: Literal["open", "closed", "pending"] | None = None
    group_name: str | None = Field(default=None, max_length=512)
    group_avatar: str | None = Field(default=None, max_length=2048)
    group_metadata: dict[str, Any] | None = None
