"""What the sender works with: routes fixed at POST time, claimed jobs, provider outcomes.

Plain Python: no SQL, HTTP or framework imports.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

from kobliat.errors import InvalidInput

Provider = Literal["whatsapp", "telegram", "twilio", "generic"]
PROVIDERS: tuple[Provider, ...] = ("whatsapp", "telegram", "twilio", "generic")
# WhatsApp's customer service window: free-form messages only this long after the customer's
# last message; before and after it, only templates.
SERVICE_WINDOW = timedelta(hours=24)
MEDIA_TYPES = frozenset({"image", "audio", "video", "file"})

# What each provider can deliver (the rest is refused with a 422 when the message is posted).
CAPABILITIES: dict[str, frozenset[str]] = {
    "whatsapp": frozenset({"text", "location", "template", *MEDIA_TYPES}),
    "telegram": frozenset({"text", "location", *MEDIA_TYPES}),
    "twilio": frozenset({"text", "template", *MEDIA_TYPES}),
    "generic": frozenset(
        {"text", "location", "contacts", "interactive", "reaction", "structured", *MEDIA_TYPES}
    ),
}


@dataclass(frozen=True, slots=True)
class Route:
    """Who sends to whom, decided when the message is posted and kept with the queue row."""

    provider: Provider
    endpoint: str  # WhatsApp phone_number_id, Telegram bot id, Twilio From, generic business id
    to: str  # WhatsApp wa_id or group id, Telegram chat id, Twilio To, generic recipient id
    group: bool = False
    reply_to: str | None = None  # the provider's id of the message this one answers
    # Generic channel only: the parties and conversation as the generic format writes them.
    parties: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The JSON kept in send_queue.route."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Route:
        """Back from send_queue.route."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed queue row together with the message it sends."""

    id: int
    message_id: UUID
    conversation_id: UUID
    route: Route
    attempts: int  # including this one
    channel: str
    content_type: str
    body: str | None
    metadata: dict[str, Any]


OutcomeKind = Literal["sent", "retry", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to.

    sent: the provider accepted it (with its id); retry: it surely did not, try again later;
    failed: the provider refused it for good; unknown: the request left and no answer came.
    """

    kind: OutcomeKind
    external_message_id: str | None = None
    error: dict[str, Any] | None = None
    retry_after: float | None = None


def check_content(provider: str, content_type: str, body: str | None, meta: dict[str, Any]) -> None:
    """Refuse (422) what this provider cannot deliver, before anything is stored."""
    if content_type not in CAPABILITIES[provider]:
        raise InvalidInput(
            f"{provider} cannot send content_type {content_type!r}; it sends "
            f"{', '.join(sorted(CAPABILITIES[provider]))}",
            code="content-type-not-sendable",
        )
    if content_type == "text" and not body:
        raise InvalidInput("a text message needs a body", code="empty-message")
    if content_type in MEDIA_TYPES and not isinstance(meta.get("url"), str):
        raise InvalidInput(
            f"a {content_type} message needs metadata.url (the media's https URL)",
            code="media-url-missing",
        )
    if content_type == "location" and not all(
        isinstance(meta.get(k), int | float) for k in ("latitude", "longitude")
    ):
        raise InvalidInput(
            "a location needs numeric metadata.latitude and metadata.longitude",
            code="location-missing",
        )
    if content_type == "template":
        _check_template(provider, meta)


def _check_template(provider: str, meta: dict[str, Any]) -> None:
    if provider == "twilio":
        if not isinstance(meta.get("content_sid"), str):
            raise InvalidInput(
                "a Twilio template needs metadata.content_sid (and optional content_variables)",
                code="template-invalid",
            )
        return
    language = meta.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    components = meta.get("components", [])
    if not isinstance(meta.get("name"), str) or not isinstance(language, str):
        raise InvalidInput(
            'a template needs metadata.name and metadata.language (e.g. "en_US")',
            code="template-invalid",
        )
    if not isinstance(components, list):
        raise InvalidInput("metadata.components must be a list", code="template-invalid")


def retry_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Seconds to wait before the next attempt: the provider's Retry-After when it gave one,
    else exponential backoff with jitter (so a crowd of retries does not arrive together)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    exponential = min(cap, base * 2 ** max(attempt - 1, 0))
    return float(exponential * random.uniform(0.5, 1.0))
