"""HTTP shapes of subscriptions."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from kobliat.events import signing
from kobliat.events.delivery import Sink
from kobliat.events.maintenance_store import Backlog
from kobliat.http import Strict

_TYPE_PATTERN = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")


EVENT: JsonDict = {
    "specversion": "1.0",
    "id": "8a0f3c7e-5a8e-4f9e-9d57-3b8a2c1e0f11",
    "source": "kobliat",
    "type": "conversation.opened",
    "subject": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
    "time": "2026-01-31T10:15:00.412345Z",
    "datacontenttype": "application/json",
    "sequence": 1,
    "aggregatetype": "conversation",
    "data": {
        "event_id": "8a0f3c7e-5a8e-4f9e-9d57-3b8a2c1e0f11",
        "conversation_id": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
        "type": "direct",
        "channel": "whatsapp",
        "group_name": None,
        "participants": [
            "0b6f3a52-7c1e-4d5a-9a51-2f0c8d1e9b42",
            "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a98",
        ],
        "timestamp": "2026-01-31T10:15:00.412345Z",
    },
}
SUBSCRIPTION: JsonDict = {
    "id": "7b6a5948-3726-4150-8f9e-0d1c2b3a4958",
    "url": "https://crm.example.com/hooks/kobliat",
    "event_types": ["conversation.opened", "message.*"],
    "created_at": "2026-01-31T10:15:00.412345Z",
    "pending_aggregates": 0,
    "dead_letters": 0,
}


class EventOut(BaseModel):
    """An event: a CloudEvents 1.0 envelope (structured mode). `data` is described per type by
    the JSON Schemas at `/schemas/events/{type}`."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EVENT]})

    specversion: Literal["1.0"] = Field(description="the CloudEvents version")
    id: str = Field(description="the event's id (also `Nats-Msg-Id` and `webhook-id`)")
    source: str = Field(description="always `kobliat`")
    type: str = Field(description="the event type, e.g. `message.inbound.created`")
    subject: str = Field(description="the aggregate's id: a customer or a conversation")
    time: str = Field(description="when it happened (ISO 8601, UTC)")
    datacontenttype: str = Field(description="always `application/json`")
    sequence: int = Field(description="position among the aggregate's events (1, 2, ...)")
    aggregatetype: Literal["customer", "conversation"] = Field(description="the aggregate's kind")
    data: dict[str, Any] = Field(description="the payload; its schema depends on `type`")
    traceparent: str | None = Field(
        default=None, description="W3C trace context of the request that caused the event"
    )


class SubscriptionCreate(Strict):
    """Where to POST events, which ones, and optionally the signing secret to use."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/kobliat",
                    "event_types": ["conversation.opened", "message.*"],
                }
            ]
        }
    )

    url: AnyHttpUrl = Field(description="where events are POSTed (http or https)")
    event_types: list[str] | None = Field(
        default=None,
        description="types (`conversation.opened`) or prefixes (`message.*`); omit for all",
        max_length=100,
    )
    secret: str | None = Field(
        default=None, description="`whsec_` + base64 of 24-64 bytes; generated when omitted"
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            if not _TYPE_PATTERN.match(item):
                raise ValueError(f"{item!r} is not an event type or a `prefix.*` pattern")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            signing.secret_key(value)  # InvalidSecret is a ValueError: a 422
        return value


class SubscriptionOut(BaseModel):
    """A subscription as GET shows it: never its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [SUBSCRIPTION]})

    id: UUID = Field(description="the subscription's id")
    url: str = Field(description="where events are POSTed")
    event_types: list[str] | None = Field(
        description="types or `prefix.*` patterns it receives; null for every event"
    )
    created_at: datetime = Field(description="when it was created")
    pending_aggregates: int = Field(
        default=0, description="customers and conversations with events still to deliver"
    )
    dead_letters: int = Field(
        default=0, description="aggregates whose delivery gave up (replay them with /replay)"
    )

    @classmethod
    def of(cls, sink: Sink, backlog: Backlog | None = None) -> SubscriptionOut:
        """From the sink and its backlog."""
        return cls(
            id=sink.id,
            url=sink.url or "",
            event_types=list(sink.event_types) if sink.event_types is not None else None,
            created_at=sink.created_at,
            pending_aggregates=backlog.pending_aggregates if backlog else 0,
            dead_letters=backlog.dead_letters if backlog else 0,
        )


class SubscriptionCreated(SubscriptionOut):
    """The answer to POST: the only time the secret is shown."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**SUBSCRIPTION, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]
        }
    )

    secret: str = Field(
        description="the Standard Webhooks secret (`whsec_...`) that signs every delivery"
    )


class ReplayIn(Strict):
    """Replay dead letters; with `since`, also every event kept since then."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"since": "2026-01-31T00:00:00Z"}]})

    since: AwareDatetime | None = Field(
        default=None, description="also deliver again every event kept from this time on"
    )


class ReplayOut(BaseModel):
    """How many aggregates will be delivered again."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"aggregates": 3}]})

    aggregates: int = Field(description="customers and conversations queued for delivery again")
