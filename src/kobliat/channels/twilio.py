"""Twilio Programmable Messaging (SMS, MMS, WhatsApp): signature and form parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kobliat.channels._content import Content
from kobliat.channels._fields import present
from kobliat.channels.records import (
    ContentType,
    ConversationRef,
    IgnoredItem,
    InboundItem,
    InboundMessage,
    ParsedWebhook,
    Party,
    PayloadError,
    StatusName,
    StatusUpdate,
)

SIGNATURE_HEADER = "X-Twilio-Signature"
_WHATSAPP_PREFIX = "whatsapp:"
# A business-scoped WhatsApp user id (country code, dot, alphanumerics) instead of a number.
_BSUID = re.compile(r"^[A-Z]{2}\.")
_STATUSES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}
_MEDIA_TYPES: dict[str, ContentType] = {"image": "image", "audio": "audio", "video": "video"}
_GEO_FIELDS = ("City", "State", "Zip", "Country")
_DEFAULT_PORTS = {"https": 443, "http": 80}

Params = list[tuple[str, str]]


def sign(url: str, params: Params, auth_token: str) -> str:
    """The `X-Twilio-Signature` for a form POST to `url` with these fields."""
    # Same string as twilio-python's RequestValidator (not used: it brings the whole Twilio REST
    # client for one HMAC): names sorted, each distinct value of a name sorted.
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(url: str, params: Params, header: str | None, auth_token: str) -> bool:
    """Whether `header` signs this URL and form, with or without the default port in the URL."""
    if not auth_token or not header:
        return False
    # Twilio is inconsistent about including :443/:80, so its SDK accepts both spellings.
    candidates = {url, *_port_variants(url)}
    return any(
        hmac.compare_digest(sign(candidate, params, auth_token).encode(), header.encode())
        for candidate in sorted(candidates)
    )


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return []
    host = parts.netloc.rpartition("@")
    userinfo = host[0] + host[1]
    hostname = host[2]
    if port is not None:
        bare = hostname[: hostname.rfind(":")]
        return [urlunsplit(parts._replace(netloc=userinfo + bare))]
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None:
        return []
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{hostname}:{default}"))]


def parse(params: Params, *, received_at: datetime) -> ParsedWebhook:
    """The inbound message or status callback of one Twilio request.

    Twilio's webhooks carry no provider timestamp, so `received_at` dates the record.
    """
    fields = _first_values(params)
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    if not sid:
        raise PayloadError("MessageSid is missing")
    status = fields.get("MessageStatus") or fields.get("SmsStatus")
    # By value: a relay that forwards every field may send an empty MessageStatus.
    is_inbound = not fields.get("MessageStatus") and status in (None, "received")
    if is_inbound and ("Body" in fields or "NumMedia" in fields):
        item: InboundItem = _message(fields, sid, params, received_at)
        return ParsedWebhook(item.channel, f"{sid}:inbound", (item,))
    if status is None:
        raise PayloadError("neither a message (Body, NumMedia) nor a status (MessageStatus)")
    channel = _channel(fields.get("From", ""))
    item = _status(fields, sid, status, params, received_at)
    return ParsedWebhook(channel, f"{sid}:{status}", (item,))


def _first_values(params: Params) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in params:
        fields.setdefault(name, value)
    return fields


def _channel(address: str) -> str:
    return "whatsapp" if address.startswith(_WHATSAPP_PREFIX) else "sms"


def _party(address: str, *, name: str | None = None, metadata: dict[str, Any]) -> Party:
    if address.startswith(_WHATSAPP_PREFIX):
        bare = address.removeprefix(_WHATSAPP_PREFIX)
        external_type = "whatsapp_bsuid" if _BSUID.match(bare) else "whatsapp"
        return Party(external_type, bare, name=name, metadata=metadata)
    return Party("sms", address, name=name, metadata=metadata)


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise PayloadError(f"{name} is missing")
    return value


def _message(
    fields: dict[str, str], sid: str, params: Params, received_at: datetime
) -> InboundMessage:
    sender_address, business_address = _required(fields, "From"), _required(fields, "To")
    sender_meta = present(
        wa_id=fields.get("WaId"),
        user_id=fields.get("ExternalUserId"),
        parent_user_id=fields.get("ParentExternalUserId"),
        username=fields.get("ProfileUsername"),
    )
    business_meta = present(
        account_sid=fields.get("AccountSid"),
        messaging_service_sid=fields.get("MessagingServiceSid"),
    )
    content = _content(fields)
    return InboundMessage(
        channel=_channel(sender_address),
        external_message_id=sid,
        sender=_party(sender_address, name=fields.get("ProfileName"), metadata=sender_meta),
        business=_party(business_address, metadata=business_meta),
        conversation=ConversationRef(),
        content_type=content.content_type,
        body=content.body,
        sent_at=received_at,
        metadata={**content.metadata, **_message_metadata(fields, params)},
    )


def _message_metadata(fields: dict[str, str], params: Params) -> dict[str, Any]:
    geo = {
        f"{side.lower()}_{part.lower()}": fields[f"{side}{part}"]
        for side in ("From", "To")
        for part in _GEO_FIELDS
        if fields.get(f"{side}{part}")
    }
    reply_sid = fields.get("OriginalRepliedMessageSid")
    reply_to = None
    if reply_sid:
        reply_to = present(
            external_message_id=reply_sid, **{"from": fields.get("OriginalRepliedMessageSender")}
        )
    referral = {name: value for name, value in fields.items() if name.startswith("Referral")}
    return present(
        provider="twilio",
        account_sid=fields.get("AccountSid"),
        messaging_service_sid=fields.get("MessagingServiceSid"),
        num_segments=fields.get("NumSegments"),
        profile_name=fields.get("ProfileName"),
        wa_id=fields.get("WaId"),
        geo=geo or None,
        reply_to=reply_to,
        forwarded=True if fields.get("Forwarded") == "true" else None,
        frequently_forwarded=True if fields.get("FrequentlyForwarded") == "true" else None,
        referral=referral or None,
        raw=_raw(params),
    )


def _content(fields: dict[str, str]) -> Content:
    body = fields.get("Body") or None
    if fields.get("ButtonPayload") or fields.get("ButtonText"):
        text = fields.get("ButtonText") or None
        interactive = present(type="button", payload=fields.get("ButtonPayload"), title=text)
        return Content("interactive", text or body, {"interactive": interactive})
    if fields.get("Latitude") and fields.get("Longitude"):
        return _location(fields, body)
    media = _media(fields)
    if media:
        return Content(_media_type(media[0]["content_type"]), body, {"media": media})
    return Content("text", body)


def _location(fields: dict[str, str], body: str | None) -> Content:
    location = present(
        latitude=_number(fields, "Latitude"),
        longitude=_number(fields, "Longitude"),
        address=fields.get("Address"),
        name=fields.get("Label"),
    )
    label = fields.get("Label") or fields.get("Address") or body
    return Content("location", label, {"location": location})


def _number(fields: dict[str, str], name: str) -> float:
    try:
        return float(fields[name])
    except ValueError as exc:
        raise PayloadError(f"{name} must be a number, got {fields[name]!r}") from exc


def _media(fields: dict[str, str]) -> list[dict[str, str]]:
    count_text = fields.get("NumMedia", "0")
    if not count_text.isdecimal() or len(count_text) > 3:
        raise PayloadError(f"NumMedia must be a small whole number, got {count_text!r}")
    media = []
    for index in range(int(count_text)):
        url = fields.get(f"MediaUrl{index}")
        if not url:
            raise PayloadError(f"MediaUrl{index} is missing (NumMedia={count_text})")
        content_type = fields.get(f"MediaContentType{index}", "application/octet-stream")
        media.append({"url": url, "content_type": content_type})
    return media


def _media_type(mime: str) -> ContentType:
    return _MEDIA_TYPES.get(mime.partition("/")[0].lower(), "file")


def _status(
    fields: dict[str, str], sid: str, status: str, params: Params, received_at: datetime
) -> InboundItem:
    channel = _channel(fields.get("From", ""))
    mapped = _STATUSES.get(status)
    if mapped is None:
        # Intermediate or inbound-side states (queued, sending, received, ...) change nothing.
        return IgnoredItem(
            channel, f"twilio.status.{status}", {"message_sid": sid, "raw": _raw(params)}
        )
    error = None
    if fields.get("ErrorCode"):
        code = fields["ErrorCode"]
        error = present(
            code=int(code) if code.isdecimal() else code, message=fields.get("ErrorMessage")
        )
    metadata = present(
        provider="twilio",
        provider_status=status,
        account_sid=fields.get("AccountSid"),
        messaging_service_sid=fields.get("MessagingServiceSid"),
        **{"from": fields.get("From"), "to": fields.get("To")},
        raw=_raw(params),
    )
    return StatusUpdate(channel, sid, mapped, received_at, error=error, metadata=metadata)


def _raw(params: Params) -> dict[str, str | list[str]]:
    raw: dict[str, str | list[str]] = {}
    for name, value in params:
        previous = raw.get(name)
        if previous is None:
            raw[name] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            raw[name] = [previous, value]
    return raw
