"""Neutral records every channel adapter produces from a verified webhook.

Adapters (one module per channel) only verify and parse; they never touch the database.
`kobliat.ingest` turns these records into customers, a conversation and a message.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from kobliat.errors import InvalidInput
from kobliat.jsonlimits import describe, unstorable
from kobliat.messages.model import ContentType as ContentType  # re-exported for the adapters

ConversationKind = Literal["direct", "group", "multi"]
StatusName = Literal["sent", "delivered", "read", "failed"]


@dataclass(frozen=True, slots=True)
class Party:
    """An identity on a channel: becomes (or finds) a Customer.

    `external_type` is the customers.external_type ("whatsapp", "telegram", "sms", or a generic
    sender's own type such as "email"); `external_id` is the raw id as the provider sent it —
    the customer service normalises it (phone numbers to E.164 and so on).
    """

    external_type: str
    external_id: str
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Which conversation a message belongs to, as the payload tells it."""

    kind: ConversationKind = "direct"
    # The provider's id of the group or thread (WhatsApp group_id, Telegram chat.id);
    # None for direct.
    external_id: str | None = None
    group_name: str | None = None
    group_avatar: str | None = None
    # For multi conversations: every party of the thread other than the sender and the business.
    other_parties: tuple[Party, ...] = ()


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a customer sent to the business."""

    channel: str  # messages.channel: "whatsapp", "telegram", "sms" or "generic"
    external_message_id: str
    sender: Party
    business: Party
    conversation: ConversationRef
    content_type: ContentType
    body: str | None
    sent_at: datetime  # the provider's timestamp, timezone-aware UTC
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery receipt for a message the business sent."""

    channel: str
    external_message_id: str
    status: StatusName
    occurred_at: datetime  # the provider's timestamp, timezone-aware UTC
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IgnoredItem:
    """Something the payload carried that is not a message or a status (kept for the record)."""

    channel: str
    kind: str  # e.g. "whatsapp.account_update", "telegram.my_chat_member"
    detail: dict[str, Any] = field(default_factory=dict)


InboundItem = InboundMessage | StatusUpdate | IgnoredItem


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """Everything one verified webhook delivery carried, in payload order."""

    channel: str
    # Unique per provider delivery, for the inbox: a retry of the same delivery has the same key.
    delivery_key: str
    items: tuple[InboundItem, ...]


class PayloadError(ValueError):
    """The payload is malformed (not the provider's format): answered with a 400/422 problem."""


T = TypeVar("T")
REPLACEMENT = "\ufffd"
# NUL and lone UTF-16 surrogates (a JSON escape such as "\ud800" decodes to one): no backend
# can store either, and neither means anything in a chat.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: T) -> T:
    """The same records with every U+0000 and lone surrogate replaced by U+FFFD, in text, keys
    and metadata.

    Providers relay whatever users type, and JSON can escape code points UTF-8 cannot encode;
    PostgreSQL's text and jsonb cannot hold NUL, and no driver can send a lone surrogate, so a
    delivery carrying one would fail on every retry.
    """
    return _scrub(value)  # type: ignore[no-any-return]


def refuse_unstorable(item: InboundItem) -> None:
    """Raise InvalidInput when an item breaks the limits every stored JSON value keeps (depth,
    NaN and Infinity; see `kobliat.jsonlimits`): the item is refused, its neighbours are not."""
    found = unstorable(item)
    if found is not None:
        raise InvalidInput(describe(found), code="unstorable-payload")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii():  # the common case, and no surrogate is ASCII
            return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _scrub(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value
