"""kobliat's own JSON webhook format (see GENERIC.md), signed with Standard Webhooks."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeGuard, get_args

from standardwebhooks.webhooks import Webhook

from kobliat.channels._fields import (
    JsonObject,
    each_obj,
    load_object,
    opt_obj,
    opt_str,
    req_obj,
    req_str,
)
from kobliat.channels.records import (
    ContentType,
    ConversationRef,
    InboundItem,
    InboundMessage,
    ParsedWebhook,
    Party,
    PayloadError,
    StatusName,
    StatusUpdate,
)
from kobliat.channels.timestamps import from_unix_or_iso

CHANNEL = "generic"
TOLERANCE = timedelta(minutes=5)
_CONTENT_TYPES: frozenset[str] = frozenset(get_args(ContentType))
_STATUS_NAMES: frozenset[str] = frozenset(get_args(StatusName))
_MESSAGE_KEYS = frozenset(
    {"id", "timestamp", "from", "to", "conversation", "content_type", "body", "metadata"}
)
_PARTY_KEYS = frozenset({"type", "id", "name", "metadata"})
_CONVERSATION_KEYS = frozenset({"type", "id", "name", "avatar", "participants"})
_STATUS_KEYS = frozenset({"message_id", "status", "timestamp", "error", "metadata"})
SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def sign(raw_body: bytes, secret: str, *, msg_id: str, timestamp: datetime) -> str:
    """The `webhook-signature` header value (`v1,<base64>`) for this body, id and time."""
    return Webhook(secret).sign(msg_id, timestamp.astimezone(UTC), raw_body.decode())


def signed_headers(
    raw_body: bytes, secret: str, *, msg_id: str, timestamp: datetime
) -> dict[str, str]:
    """The three Standard Webhooks headers a sender attaches to this body."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": sign(raw_body, secret, msg_id=msg_id, timestamp=timestamp),
    }


def verify_signature(
    raw_body: bytes, headers: Mapping[str, str], secret: str, *, now: datetime | None = None
) -> bool:
    """Whether the Standard Webhooks headers sign this body within 5 minutes of `now` (aware).

    A header given twice never verifies: which copy would the delivery be keyed on?
    """
    pairs = [(name.lower(), value) for name, value in headers.items()]
    lowered = dict(pairs)
    if len(lowered) < len(pairs) and any(
        sum(name == wanted for name, _ in pairs) > 1 for wanted in SIGNED_HEADERS
    ):
        return False
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature")
    if not secret or not msg_id or not signatures or not _is_unix_seconds(stamp):
        return False
    sent_at = datetime.fromtimestamp(int(stamp), UTC)
    if abs((now or datetime.now(UTC)) - sent_at) > TOLERANCE:
        return False
    try:
        expected = sign(raw_body, secret, msg_id=msg_id, timestamp=sent_at)
    except UnicodeDecodeError:
        return False
    # The header may list several space-separated signatures during a secret rotation.
    return any(
        hmac.compare_digest(candidate.encode(), expected.encode())
        for candidate in signatures.split(" ")
    )


def _is_unix_seconds(stamp: str) -> bool:
    # Ten or eleven ASCII digits cover years 2001 to 5138 and cannot overflow a datetime.
    return stamp.isascii() and stamp.isdigit() and 10 <= len(stamp) <= 11


def parse(raw_body: bytes, *, delivery_id: str) -> ParsedWebhook:
    """A message, a status, or a batch of both, in the generic format."""
    root = load_object(raw_body, what="generic")
    items: list[InboundItem]
    if "messages" in root or "statuses" in root:
        _reject_unknown(root, frozenset({"messages", "statuses"}), "")
        items = [_message(m, path) for path, m in each_obj(root, "messages", "")]
        items += [_status(s, path) for path, s in each_obj(root, "statuses", "")]
    elif "status" in root:
        _reject_unknown(root, frozenset({"status"}), "")
        items = [_status(req_obj(root, "status", ""), "status")]
    else:
        items = [_message(root, "")]
    return ParsedWebhook(CHANNEL, delivery_id, tuple(items))


def _message(message: JsonObject, path: str) -> InboundMessage:
    _reject_unknown(message, _MESSAGE_KEYS, path)
    content_type = opt_str(message, "content_type", path) or "text"
    if not _is_content_type(content_type):
        raise PayloadError(f"{_at(path, 'content_type')} must be one of {sorted(_CONTENT_TYPES)}")
    body = opt_str(message, "body", path)
    if content_type == "text" and not body:
        raise PayloadError(f"{_at(path, 'body')} is required for a text message")
    metadata = opt_obj(message, "metadata", path) or {}
    return InboundMessage(
        channel=CHANNEL,
        external_message_id=req_str(message, "id", path),
        sender=_party(req_obj(message, "from", path), _at(path, "from")),
        business=_party(req_obj(message, "to", path), _at(path, "to")),
        conversation=_conversation(message, path),
        content_type=content_type,
        body=body,
        sent_at=_timestamp(message, path),
        metadata={**metadata, "raw": message},
    )


def _party(party: JsonObject, path: str) -> Party:
    _reject_unknown(party, _PARTY_KEYS, path)
    return Party(
        req_str(party, "type", path),
        req_str(party, "id", path),
        name=opt_str(party, "name", path),
        metadata=opt_obj(party, "metadata", path) or {},
    )


def _conversation(message: JsonObject, message_path: str) -> ConversationRef:
    conversation = opt_obj(message, "conversation", message_path)
    if conversation is None:
        return ConversationRef()
    path = _at(message_path, "conversation")
    _reject_unknown(conversation, _CONVERSATION_KEYS, path)
    kind = req_str(conversation, "type", path)
    parties = each_obj(conversation, "participants", path)
    participants = tuple(_party(party, party_path) for party_path, party in parties)
    if kind == "direct":
        if len(conversation) > 1:
            raise PayloadError(f"{path} of type direct takes no other member than type")
        return ConversationRef()
    if kind == "group":
        return ConversationRef(
            "group",
            req_str(conversation, "id", path),
            group_name=opt_str(conversation, "name", path),
            group_avatar=opt_str(conversation, "avatar", path),
            other_parties=participants,
        )
    if kind == "multi":
        if not participants:
            raise PayloadError(f"{_at(path, 'participants')} must list at least one other party")
        return ConversationRef(
            "multi", opt_str(conversation, "id", path), other_parties=participants
        )
    raise PayloadError(f"{_at(path, 'type')} must be direct, group or multi, got {kind!r}")


def _status(status: JsonObject, path: str) -> StatusUpdate:
    _reject_unknown(status, _STATUS_KEYS, path)
    name = req_str(status, "status", path)
    if not _is_status_name(name):
        raise PayloadError(f"{_at(path, 'status')} must be one of {sorted(_STATUS_NAMES)}")
    return StatusUpdate(
        channel=CHANNEL,
        external_message_id=req_str(status, "message_id", path),
        status=name,
        occurred_at=_timestamp(status, path),
        error=opt_obj(status, "error", path),
        metadata=opt_obj(status, "metadata", path) or {},
    )


def _is_content_type(value: str) -> TypeGuard[ContentType]:
    return value in _CONTENT_TYPES


def _is_status_name(value: str) -> TypeGuard[StatusName]:
    return value in _STATUS_NAMES


def _timestamp(obj: JsonObject, path: str) -> datetime:
    field = _at(path, "timestamp")
    if obj.get("timestamp") is None:
        raise PayloadError(f"{field} is missing")
    return from_unix_or_iso(obj["timestamp"], field=field)


def _reject_unknown(obj: JsonObject, allowed: frozenset[str], path: str) -> None:
    # Our own format: a misspelt member is an error, not silently dropped data.
    unknown = sorted(set(obj) - allowed)
    if unknown:
        where = path or "the payload"
        raise PayloadError(f"{where} has unknown member(s) {unknown}; allowed: {sorted(allowed)}")


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
