"""HTTP shapes of the conversation context."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from kobliat.conversations.model import Conversation, ConversationType, Participant, Status
from kobliat.customers.model import Customer
from kobliat.customers.schemas import EXAMPLE as CUSTOMER
from kobliat.customers.schemas import CustomerOut
from kobliat.http import ReadableJson, Strict
from kobliat.messages.model import ContentType, Direction
from kobliat.messages.schemas import EXAMPLE as MESSAGE
from kobliat.messages.schemas import MessageOut
from kobliat.views import InboxConversation

Role = Literal["owner", "admin", "member"]

PARTICIPANT: JsonDict = {
    "customer_id": CUSTOMER["id"],
    "role": "member",
    "joined_at": "2026-01-31T10:15:00.412345Z",
    "metadata": {},
}
BUSINESS: JsonDict = {**PARTICIPANT, "customer_id": "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a98"}
EXAMPLE: JsonDict = {
    "id": MESSAGE["conversation_id"],
    "type": "direct",
    "status": "open",
    "channel": "whatsapp",
    "external_id": None,
    "group_name": None,
    "group_avatar": None,
    "group_metadata": {},
    "last_message_at": "2026-01-31T10:15:00Z",
    "created_at": "2026-01-31T10:15:00.412345Z",
    "updated_at": "2026-01-31T10:15:00.412345Z",
    "participants": [PARTICIPANT, BUSINESS],
}


class ParticipantOut(BaseModel):
    """A membership, as lists show it."""

    model_config = ConfigDict(json_schema_extra={"examples": [PARTICIPANT]})

    customer_id: UUID = Field(description="the participating customer")
    role: Role = Field(description="owner, admin or member (direct and multi: always member)")
    joined_at: datetime = Field(description="when the customer joined")
    metadata: ReadableJson = Field(description="free-form attributes of the membership")

    @classmethod
    def of(cls, member: Participant) -> ParticipantOut:
        """From the domain object."""
        return cls.model_validate(member, from_attributes=True)


class ParticipantDetail(ParticipantOut):
    """A membership with its customer's details."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**PARTICIPANT, "customer": CUSTOMER}]}
    )

    customer: CustomerOut | None = Field(description="the customer (null only if never stored)")

    @classmethod
    def with_customer(cls, member: Participant, customer: Customer | None) -> ParticipantDetail:
        """From the domain objects (customer None only if it was never stored)."""
        return cls(
            **ParticipantOut.of(member).model_dump(),
            customer=CustomerOut.of(customer) if customer else None,
        )


class ConversationOut(BaseModel):
    """A conversation as lists show it."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    id: UUID = Field(description="the conversation's id")
    type: ConversationType = Field(description="direct (two parties), multi (two or more) or group")
    status: Status = Field(description="open ⇄ pending, → closed; closed → open (reopen)")
    channel: str | None = Field(description="the channel it lives on")
    external_id: str | None = Field(description="a group's id on its channel")
    group_name: str | None = Field(description="the group's name (groups only)")
    group_avatar: str | None = Field(description="the group's avatar URL (groups only)")
    group_metadata: ReadableJson = Field(description="free-form attributes of the group")
    last_message_at: datetime | None = Field(
        description="provider time of the latest message (null before the first)"
    )
    created_at: datetime = Field(description="when it was opened")
    updated_at: datetime = Field(description="when its status or details last changed")
    participants: list[ParticipantOut] = Field(description="who takes part, with their roles")

    @classmethod
    def of(cls, conv: Conversation) -> ConversationOut:
        """From the domain object."""
        return cls.model_validate(conv, from_attributes=True)


NAMED_PARTICIPANT: JsonDict = {
    **PARTICIPANT,
    "name": CUSTOMER["name"],
    "external_type": CUSTOMER["external_type"],
    "external_id": CUSTOMER["external_id"],
}
NAMED_BUSINESS: JsonDict = {
    **BUSINESS,
    "name": "Clinic B",
    "external_type": "whatsapp",
    "external_id": "+447700900999",
}
LAST_MESSAGE: JsonDict = {
    "id": MESSAGE["id"],
    "direction": MESSAGE["direction"],
    "content_type": MESSAGE["content_type"],
    "body_preview": MESSAGE["body"],
    "body_truncated": False,
    "sender_customer_id": MESSAGE["sender_customer_id"],
    "sent_at": MESSAGE["sent_at"],
}


class NamedParticipant(ParticipantOut):
    """A membership with the customer's display name and channel identity."""

    model_config = ConfigDict(json_schema_extra={"examples": [NAMED_PARTICIPANT]})

    name: str | None = Field(description="the customer's display name (null when none is known)")
    external_type: str | None = Field(
        description="the customer's kind of id (`whatsapp`, `telegram`, `sms`, `email`, ...); "
        "null only if the customer was never stored"
    )
    external_id: str | None = Field(
        description="the customer's id of that kind (an E.164 number, a user id, ...); "
        "null only if the customer was never stored"
    )


class LastMessagePreview(BaseModel):
    """The start of a conversation's latest message, by provider time."""

    model_config = ConfigDict(json_schema_extra={"examples": [LAST_MESSAGE]})

    id: UUID = Field(description="the message's id (`GET /conversations/{id}/messages` has it all)")
    direction: Direction = Field(description="inbound (from a customer), outbound or system")
    content_type: ContentType = Field(description="what kind of content the message holds")
    body_preview: str | None = Field(
        description="the first 120 characters of the body (text or caption); null when the "
        "message has no body, as media without a caption"
    )
    body_truncated: bool = Field(description="true when the body is longer than the preview")
    sender_customer_id: UUID | None = Field(description="the customer who sent it, when known")
    sent_at: datetime = Field(description="when the provider says it was sent")


class ConversationListItem(ConversationOut):
    """A conversation as an inbox lists it: participants with names, and the last message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE,
                    "participants": [NAMED_PARTICIPANT, NAMED_BUSINESS],
                    "last_message": LAST_MESSAGE,
                }
            ]
        }
    )

    participants: list[NamedParticipant] = Field(  # type: ignore[assignment]
        description="who takes part, with their roles, names and channel ids, in joining order"
    )
    last_message: LastMessagePreview | None = Field(
        description="the latest message by provider time (null before the first)"
    )

    @classmethod
    def of_view(cls, item: InboxConversation) -> ConversationListItem:
        """From the inbox read model."""
        return cls.model_validate(item, from_attributes=True)


class ConversationDetail(ConversationOut):
    """A conversation with its participants' customers and its latest messages (newest first)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE,
                    "participants": [{**PARTICIPANT, "customer": CUSTOMER}],
                    "messages": [MESSAGE],
                }
            ]
        }
    )

    participants: list[ParticipantDetail] = Field(  # type: ignore[assignment]
        description="who takes part, each with the customer's details"
    )
    messages: list[MessageOut] = Field(description="the latest 20 messages, newest first")


class ParticipantIn(Strict):
    """A customer joining a conversation."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"customer_id": CUSTOMER["id"], "role": "admin"}]}
    )

    customer_id: UUID = Field(description="the customer who joins")
    role: Role | None = Field(default=None, description="groups: owner, admin or member (default)")


class ConversationCreate(Strict):
    """Open a conversation (or get the open one with the same key: 200)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "group",
                    "channel": "whatsapp",
                    "group_name": "Clinic B",
                    "participants": [
                        {"customer_id": CUSTOMER["id"], "role": "owner"},
                        {"customer_id": BUSINESS["customer_id"]},
                    ],
                }
            ]
        }
    )

    type: Literal["direct", "multi", "group"] = Field(
        default="direct", description="direct (exactly 2), multi (2 or more) or group"
    )
    channel: str = Field(min_length=1, max_length=64, description="the channel it lives on")
    participants: list[ParticipantIn] = Field(
        default_factory=list, max_length=1000, description="who takes part, with their roles"
    )
    group_name: str | None = Field(default=None, max_length=512, description="required for groups")
    group_avatar: str | None = Field(default=None, max_length=2048, description="an avatar URL")
    group_metadata: dict[str, Any] | None = Field(
        default=None, description="free-form attributes of the group"
    )
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="a group's id on its channel; with it, one open conversation per group",
    )


class ConversationPatch(Strict):
    """Status and group details."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "closed"}]})

    status: Literal["open", "closed", "pending"] | None = Field(
        default=None, description="open ⇄ pending, → closed, closed → open (reopen)"
    )
    group_name: str | None = Field(default=None, max_length=512, description="a new group name")
    group_avatar: str | None = Field(default=None, max_length=2048, description="a new avatar URL")
    group_metadata: dict[str, Any] | None = Field(
        default=None, description="new group metadata (replaces the old)"
    )
