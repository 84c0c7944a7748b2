"""HTTP shapes of subscriptions."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, Field, field_validator

from kobliat.events import signing
from kobliat.events.delivery import Sink
from kobliat.events.maintenance_store import Backlog
from kobliat.http import Strict

_TYPE_PATTERN = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")


class SubscriptionCreate(Strict):
    """Where to POST events, which ones, and optionally the signing secret to use."""

    url: AnyHttpUrl
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

    id: UUID
    url: str
    event_types: list[str] | None
    created_at: datetime
    pending_aggregates: int = 0
    dead_letters: int = 0

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

    secret: str


class ReplayIn(Strict):
    """Replay dead letters; with `since`, also every event kept since then."""

    since: AwareDatetime | None = None


class ReplayOut(BaseModel):
    """How many aggregates will be delivered again."""

    aggregates: int
