"""The events' contract: one JSON Schema per event type's `data`, and the AsyncAPI document.

Consumers build against these (the server publishes them at `/schemas/events/{type}` and
`/asyncapi.json`; `docs/events/` holds the same files). The models forbid fields they do not
name, so a test that validates every event the test suite produces keeps them complete.
Run `python -m kobliat.events.contract docs/events` to write the files again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kobliat.conversations.model import ConversationType
from kobliat.messages.model import ContentType, Direction

MessageStatus = Literal["received", "pending", "sent", "failed", "delivered", "read"]
Role = Literal["owner", "admin", "member"]


class _Data(BaseModel):
    """Fields every event's data carries."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(description="the event's id, equal to the envelope's `id`")
    timestamp: AwareDatetime = Field(description="when it happened (ISO 8601, UTC)")


class CustomerCreated(_Data):
    """A customer was stored for the first time (exactly once per customer)."""

    customer_id: str = Field(description="the customer's id")
    external_id: str = Field(description="the normalised identity (E.164 for phone numbers)")
    external_type: str = Field(description="the identity's kind: whatsapp, telegram, sms, ...")
    name: str | None = Field(description="display name, when known")
    metadata: dict[str, Any] = Field(description="free-form attributes")


class CustomerChanges(BaseModel):
    """What a customer update changed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="the new name")
    metadata: dict[str, Any] | None = Field(
        default=None, description="the merge patch applied (RFC 7396: null removed a key)"
    )


class CustomerUpdated(_Data):
    """A customer's name or metadata changed."""

    customer_id: str = Field(description="the customer's id")
    changes: CustomerChanges = Field(description="what changed")
    name: str | None = Field(description="the name after the change")
    metadata: dict[str, Any] = Field(description="the metadata after the change")


class ConversationOpened(_Data):
    """A conversation was opened (created, or a closed one reopened)."""

    conversation_id: str = Field(description="the conversation's id")
    type: ConversationType = Field(description="direct, multi or group")
    channel: str = Field(description="the channel it lives on")
    group_name: str | None = Field(description="the group's name (groups only)")
    participants: list[str] = Field(description="the participants' customer ids")


class ConversationClosed(_Data):
    """A conversation was closed; the next message for its key opens a new one."""

    conversation_id: str = Field(description="the conversation's id")


class Change(BaseModel):
    """A value before and after."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Any = Field(alias="from", description="the value before")
    to: Any = Field(description="the value after")


class ConversationChanges(BaseModel):
    """What a conversation update changed (only the fields that did)."""

    model_config = ConfigDict(extra="forbid")

    status: Change | None = Field(default=None, description="open ⇄ pending, closed → open")
    group_name: str | None = Field(default=None, description="the group's new name")
    group_avatar: str | None = Field(default=None, description="the group's new avatar")
    group_metadata: dict[str, Any] | None = Field(default=None, description="new group metadata")
    external_id: Change | None = Field(
        default=None, description="the provider's new id for the group (a Telegram supergroup)"
    )
    conversation_key: Change | None = Field(
        default=None, description="the conversation's new key (group moved, parties changed)"
    )


class ConversationUpdated(_Data):
    """A conversation's status or group details changed."""

    conversation_id: str = Field(description="the conversation's id")
    changes: ConversationChanges = Field(description="what changed")


class ParticipantAdded(_Data):
    """A customer joined a conversation."""

    conversation_id: str = Field(description="the conversation's id")
    customer_id: str = Field(description="the participant's customer id")
    role: Role = Field(description="owner, admin or member (direct and multi: member)")


class ParticipantRemoved(_Data):
    """A customer left a conversation."""

    conversation_id: str = Field(description="the conversation's id")
    customer_id: str = Field(description="the former participant's customer id")


class MessageCreated(_Data):
    """A message was stored (inbound from a customer, or outbound to them)."""

    message_id: str = Field(description="the message's id")
    conversation_id: str = Field(description="its conversation")
    sender_customer_id: str | None = Field(description="who sent it, when known")
    direction: Direction = Field(description="inbound, outbound or system")
    channel: str = Field(description="the channel it travels on")
    external_message_id: str | None = Field(description="the provider's id for it, once known")
    content_type: ContentType = Field(description="what kind of content `body` holds")
    body: str | None = Field(description="text, caption or a summary of the content")
    metadata: dict[str, Any] = Field(description="media ids, captions, location, reply context")
    sent_at: AwareDatetime = Field(description="when the provider says it was sent")
    status: MessageStatus | None = Field(
        description="`received` for inbound; outbound: pending, sent, delivered, read or failed"
    )


class MessageStatusUpdated(_Data):
    """A message's delivery status moved forward."""

    message_id: str = Field(description="the message's id")
    conversation_id: str = Field(description="its conversation")
    external_message_id: str | None = Field(description="the provider's id for it")
    status: MessageStatus = Field(description="the new status")
    previous_status: MessageStatus | None = Field(description="the status before")
    error: dict[str, Any] | None = Field(description="the provider's error, for `failed`")
    status_at: AwareDatetime = Field(description="when the provider says it changed")


EVENT_DATA: dict[str, type[_Data]] = {
    "customer.created": CustomerCreated,
    "customer.updated": CustomerUpdated,
    "conversation.opened": ConversationOpened,
    "conversation.updated": ConversationUpdated,
    "conversation.closed": ConversationClosed,
    "conversation.participant.added": ParticipantAdded,
    "conversation.participant.removed": ParticipantRemoved,
    "message.inbound.created": MessageCreated,
    "message.outbound.created": MessageCreated,
    "message.status.updated": MessageStatusUpdated,
}


def data_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's `data` (KeyError for an unknown type)."""
    model = EVENT_DATA[event_type]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:kobliat:events:{event_type}",
        **model.model_json_schema(by_alias=True),
    }
    schema["title"] = event_type
    return schema


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of the CloudEvents envelope every event travels in."""
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "description": "the event's id (also `Nats-Msg-Id`)"},
            "source": {"type": "string", "description": "always `kobliat`"},
            "type": {"enum": sorted(EVENT_DATA), "description": "the event type"},
            "subject": {"type": "string", "description": "the aggregate's id"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "sequence": {
                "type": "integer",
                "description": "position among the aggregate's events (1, 2, ...)",
            },
            "aggregatetype": {"enum": ["customer", "conversation"]},
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the request that caused the event",
            },
            "data": {"type": "object", "description": "see the schema of the event's type"},
        },
    }


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document: NATS JetStream subjects and HTTP subscription deliveries."""
    messages = {_name(t): _message(t) for t in EVENT_DATA}
    refs = [{"$ref": f"#/components/messages/{_name(t)}"} for t in EVENT_DATA]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "kobliat events",
            "version": "1.0.0",
            "description": (
                "Domain events as CloudEvents 1.0 (structured mode), delivered at least once and "
                "in order per aggregate (a customer, or a conversation with its messages)."
            ),
        },
        "servers": {
            "nats": {"host": "localhost:4222", "protocol": "nats"},
            "subscriber": {
                "host": "subscriber.example",
                "protocol": "https",
                "description": "your endpoint, registered with POST /subscriptions",
            },
        },
        "channels": {
            **{
                f"nats_{_name(t)}": {
                    "address": f"kobliat.{t}",
                    "servers": [{"$ref": "#/servers/nats"}],
                    "description": f"JetStream stream KOBLIAT, `Nats-Msg-Id` = event id ({t})",
                    "messages": {_name(t): {"$ref": f"#/components/messages/{_name(t)}"}},
                }
                for t in EVENT_DATA
            },
            "subscription": {
                "address": "{subscription_url}",
                "servers": [{"$ref": "#/servers/subscriber"}],
                "description": (
                    "Standard Webhooks signed POST (`webhook-id`, `webhook-timestamp`, "
                    "`webhook-signature`), `Content-Type: application/cloudevents+json`"
                ),
                "parameters": {"subscription_url": {"description": "the subscription's url"}},
                "messages": {_name(t): ref for t, ref in zip(EVENT_DATA, refs, strict=True)},
            },
        },
        "operations": {
            "receiveFromNats": {
                "action": "receive",
                "channel": {"$ref": "#/channels/nats_" + _name("message.inbound.created")},
                "summary": "subscribe to `kobliat.>` for every type (one channel per type)",
            },
            "receiveSubscription": {
                "action": "receive",
                "channel": {"$ref": "#/channels/subscription"},
                "summary": "HTTP deliveries to a subscription",
            },
        },
        "components": {"messages": messages},
    }


def _name(event_type: str) -> str:
    return event_type.replace(".", "_")


def _message(event_type: str) -> dict[str, Any]:
    envelope = envelope_schema()
    envelope["properties"] = {
        **envelope["properties"],
        "type": {"const": event_type},
        "data": {k: v for k, v in data_schema(event_type).items() if k not in ("$schema", "$id")},
    }
    return {
        "name": event_type,
        "title": event_type,
        "summary": EVENT_DATA[event_type].__doc__,
        "contentType": "application/cloudevents+json",
        "payload": envelope,
    }


def write(directory: Path) -> list[Path]:
    """Write every schema and the AsyncAPI document under `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {f"{t}.schema.json": data_schema(t) for t in EVENT_DATA}
    files["asyncapi.json"] = asyncapi()
    written = []
    for name, document in files.items():
        path = directory / name
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/events")):
        print(path)
