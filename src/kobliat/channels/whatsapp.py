"""WhatsApp Cloud API (Meta): handshake, signature and webhook parsing."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from kobliat.channels._fields import (
    JsonObject,
    each_obj,
    load_object,
    objects,
    opt_list,
    opt_obj,
    opt_str,
    present,
    req_list,
    req_obj,
    req_str,
    soft_obj,
    soft_str,
)
from kobliat.channels.records import (
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
from kobliat.channels.timestamps import from_unix
from kobliat.channels.whatsapp_content import describe

CHANNEL = "whatsapp"
SIGNATURE_HEADER = "X-Hub-Signature-256"
_OBJECT = "whatsapp_business_account"
_STATUSES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    # Voice notes get "played" after "read"; for delivery tracking it means read.
    "played": "read",
    "failed": "failed",
}


def sign(raw_body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value Meta would send for this body."""
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether `header` is the HMAC-SHA256 of the exact body bytes under the app secret."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    # Bytes, because compare_digest refuses non-ASCII str and a forged header may hold some.
    return hmac.compare_digest(sign(raw_body, app_secret).encode(), header.encode())


def verify_handshake(
    mode: str | None, token: str | None, challenge: str | None, verify_token: str
) -> str | None:
    """The `hub.challenge` to echo when the subscription handshake is ours, else None."""
    if not verify_token or mode != "subscribe" or token is None or challenge is None:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge


def parse(raw_body: bytes) -> ParsedWebhook:
    """Every message, status and other change of one webhook delivery, in payload order."""
    root = load_object(raw_body, what="WhatsApp")
    obj = req_str(root, "object", "")
    entries = req_list(root, "entry", "")
    # Meta has no delivery id; a retry resends the same bytes, so their hash is the key.
    delivery_key = hashlib.sha256(raw_body).hexdigest()
    if obj != _OBJECT:
        ignored = IgnoredItem(CHANNEL, "whatsapp.unknown_object", {"object": obj, "entry": entries})
        return ParsedWebhook(CHANNEL, delivery_key, (ignored,))
    items: list[InboundItem] = []
    for entry_path, entry in objects(entries, "entry"):
        waba_id = req_str(entry, "id", entry_path)
        changes = req_list(entry, "changes", entry_path)
        for change_path, change in objects(changes, f"{entry_path}.changes"):
            items.extend(_change_items(change, change_path, waba_id))
    return ParsedWebhook(CHANNEL, delivery_key, tuple(items))


def _change_items(change: JsonObject, path: str, waba_id: str) -> list[InboundItem]:
    field = req_str(change, "field", path)
    value = req_obj(change, "value", path)
    if field != "messages":
        return [IgnoredItem(CHANNEL, f"whatsapp.{field}", {"waba_id": waba_id, "value": value})]
    value_path = f"{path}.value"
    business = _business(req_obj(value, "metadata", value_path), f"{value_path}.metadata", waba_id)
    contacts = [contact for _, contact in each_obj(value, "contacts", value_path)]
    items: list[InboundItem] = []
    for item_path, message in each_obj(value, "messages", value_path):
        items.append(_message(message, item_path, business, contacts))
    for item_path, status in each_obj(value, "statuses", value_path):
        items.append(_status(status, item_path, business))
    errors = opt_list(value, "errors", value_path)
    if errors:
        detail = {"waba_id": waba_id, "phone_number_id": business.metadata["phone_number_id"]}
        items.append(IgnoredItem(CHANNEL, "whatsapp.errors", {**detail, "errors": errors}))
    return items


def _business(metadata: JsonObject, path: str, waba_id: str) -> Party:
    phone_number_id = req_str(metadata, "phone_number_id", path)
    display = req_str(metadata, "display_phone_number", path)
    ids = {"phone_number_id": phone_number_id, "waba_id": waba_id}
    return Party(CHANNEL, display, metadata=ids)


def _message(
    message: JsonObject, path: str, business: Party, contacts: list[JsonObject]
) -> InboundMessage:
    message_id = req_str(message, "id", path)
    sent_at = from_unix(message.get("timestamp"), field=f"{path}.timestamp")
    content = describe(message)
    group_id = opt_str(message, "group_id", path)
    conversation = ConversationRef("group", group_id) if group_id else ConversationRef()
    return InboundMessage(
        channel=CHANNEL,
        external_message_id=message_id,
        sender=_sender(message, path, contacts),
        business=business,
        conversation=conversation,
        content_type=content.content_type,
        body=content.body,
        sent_at=sent_at,
        metadata=content.metadata,
    )


def _sender(message: JsonObject, path: str, contacts: list[JsonObject]) -> Party:
    wa_id = opt_str(message, "from", path)
    user_id = opt_str(message, "from_user_id", path)
    contact = _matching_contact(contacts, wa_id, user_id)
    profile = soft_obj(contact, "profile")
    user_id = user_id or soft_str(contact, "user_id")
    metadata = present(
        wa_id=wa_id,
        user_id=user_id,
        parent_user_id=soft_str(contact, "parent_user_id"),
        username=soft_str(profile, "username"),
    )
    name = soft_str(profile, "name")
    if wa_id:
        return Party(CHANNEL, wa_id, name=name, metadata=metadata)
    if user_id:
        # Users with a username may hide their number: the business-scoped id is all we get.
        return Party("whatsapp_bsuid", user_id, name=name, metadata=metadata)
    raise PayloadError(f"{path} has neither 'from' nor 'from_user_id'")


def _matching_contact(
    contacts: list[JsonObject], wa_id: str | None, user_id: str | None
) -> JsonObject:
    for contact in contacts:
        if wa_id and contact.get("wa_id") == wa_id:
            return contact
        if user_id and contact.get("user_id") == user_id:
            return contact
    return {}


def _status(status: JsonObject, path: str, business: Party) -> InboundItem:
    message_id = req_str(status, "id", path)
    name = req_str(status, "status", path)
    occurred_at = from_unix(status.get("timestamp"), field=f"{path}.timestamp")
    errors = opt_list(status, "errors", path)
    mapped = _STATUSES.get(name)
    if mapped is None:
        return IgnoredItem(CHANNEL, f"whatsapp.status.{name}", {"status": status})
    metadata: dict[str, Any] = present(
        provider_status=name,
        recipient_id=opt_str(status, "recipient_id", path),
        recipient_type=soft_str(status, "recipient_type"),
        recipient_user_id=soft_str(status, "recipient_user_id"),
        recipient_parent_user_id=soft_str(status, "recipient_parent_user_id"),
        conversation=opt_obj(status, "conversation", path),
        pricing=opt_obj(status, "pricing", path),
        biz_opaque_callback_data=soft_str(status, "biz_opaque_callback_data"),
        errors=errors or None,
        business_phone_number_id=business.metadata["phone_number_id"],
        raw=status,
    )
    error = errors[0] if errors and isinstance(errors[0], dict) else None
    return StatusUpdate(CHANNEL, message_id, mapped, occurred_at, error=error, metadata=metadata)
