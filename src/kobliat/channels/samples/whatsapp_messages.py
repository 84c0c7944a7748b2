"""Realistic WhatsApp Cloud API message bodies, one builder per message type.

Ids and numbers are invented. Every builder is deterministic given its arguments.
"""

from __future__ import annotations

import json

from kobliat.channels.samples.whatsapp import (
    BSUID,
    DISPLAY_PHONE_NUMBER,
    MESSAGE_ID,
    NAME,
    OUR_MESSAGE_ID,
    TIMESTAMP,
    WA_ID,
    Item,
    entry,
    envelope,
    message_item,
    messages_change,
    single,
)


def text(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    body: str = "Is the 10:30 slot on Friday still free?",
    reply_to: str | None = None,
    group_id: str | None = None,
) -> bytes:
    """A text message, optionally quoting `reply_to` (a wamid we sent) or in a group."""
    context = {"from": DISPLAY_PHONE_NUMBER, "id": reply_to} if reply_to else None
    extra = {"group_id": group_id} if group_id else {}
    item = message_item(
        "text",
        {"body": body},
        wa_id=wa_id,
        message_id=message_id,
        timestamp=timestamp,
        context=context,
        **extra,
    )
    return single(item, wa_id=wa_id, name=name)


def media(
    kind: str = "image",
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    media_id: str = "1398472210553621",
    mime_type: str = "image/jpeg",
    caption: str | None = None,
    filename: str | None = None,
    voice: bool | None = None,
) -> bytes:
    """An image, video, audio, document or sticker message."""
    content: Item = {
        "id": media_id,
        "mime_type": mime_type,
        "sha256": "t0mTq0H5Yl2X8Kc3o1bR9vA7dE4fG6hJ2kL5mN8pQ1s=",
    }
    for key, value in (("caption", caption), ("filename", filename), ("voice", voice)):
        if value is not None:
            content[key] = value
    if kind == "sticker":
        content["animated"] = False
    item = message_item(kind, content, wa_id=wa_id, message_id=message_id, timestamp=timestamp)
    return single(item, wa_id=wa_id, name=name)


def location(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    latitude: float = 51.5203,
    longitude: float = -0.0977,
    place: str | None = "Clinic B",
    address: str | None = "12 Example Street, London",
) -> bytes:
    """A shared location (a pin, or a named place when `place`/`address` are given)."""
    content: Item = {"latitude": latitude, "longitude": longitude}
    if place is not None:
        content["name"] = place
        content["url"] = "https://clinic-b.example.com"
    if address is not None:
        content["address"] = address
    item = message_item(
        "location", content, wa_id=wa_id, message_id=message_id, timestamp=timestamp
    )
    return single(item, wa_id=wa_id, name=name)


def contacts(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    cards: tuple[tuple[str, str], ...] = (("Ravi Natarajan", "447911654321"),),
) -> bytes:
    """A message sharing one or more contact cards, each (formatted name, wa_id)."""
    content = [_card(card_name, card_wa_id) for card_name, card_wa_id in cards]
    item = message_item(
        "contacts", content, wa_id=wa_id, message_id=message_id, timestamp=timestamp
    )
    return single(item, wa_id=wa_id, name=name)


def _card(formatted_name: str, card_wa_id: str) -> Item:
    first, _, last = formatted_name.partition(" ")
    return {
        "name": {"formatted_name": formatted_name, "first_name": first, "last_name": last},
        "phones": [{"phone": f"+{card_wa_id}", "wa_id": card_wa_id, "type": "MOBILE"}],
    }


def interactive(
    reply_type: str = "button_reply",
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    reply_id: str = "slot_fri_1030",
    title: str = "Fri 10:30",
    description: str | None = None,
    context_id: str = OUR_MESSAGE_ID,
) -> bytes:
    """A `button_reply` or `list_reply` to an interactive message we sent."""
    reply: Item = {"id": reply_id, "title": title}
    if description is not None:
        reply["description"] = description
    content = {"type": reply_type, reply_type: reply}
    context = {"from": DISPLAY_PHONE_NUMBER, "id": context_id}
    item = message_item(
        "interactive",
        content,
        wa_id=wa_id,
        message_id=message_id,
        timestamp=timestamp,
        context=context,
    )
    return single(item, wa_id=wa_id, name=name)


def flow_reply(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    response: Item | None = None,
    context_id: str = OUR_MESSAGE_ID,
) -> bytes:
    """An `nfm_reply`: the answers of a WhatsApp Flow form."""
    answers = response if response is not None else {"slot": "fri_1030", "flow_token": "tok-77"}
    content = {
        "type": "nfm_reply",
        "nfm_reply": {
            "name": "flow",
            "body": "Sent",
            "response_json": json.dumps(answers, sort_keys=True),
        },
    }
    context = {"from": DISPLAY_PHONE_NUMBER, "id": context_id}
    item = message_item(
        "interactive",
        content,
        wa_id=wa_id,
        message_id=message_id,
        timestamp=timestamp,
        context=context,
    )
    return single(item, wa_id=wa_id, name=name)


def template_button(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    payload: str = "CONFIRM_APPOINTMENT",
    button_text: str = "Confirm",
    context_id: str = OUR_MESSAGE_ID,
) -> bytes:
    """A `button` message: a quick-reply button tapped on a template we sent."""
    content = {"payload": payload, "text": button_text}
    context = {"from": DISPLAY_PHONE_NUMBER, "id": context_id}
    item = message_item(
        "button", content, wa_id=wa_id, message_id=message_id, timestamp=timestamp, context=context
    )
    return single(item, wa_id=wa_id, name=name)


def reaction(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    target_message_id: str = OUR_MESSAGE_ID,
    emoji: str = "👍",
) -> bytes:
    """A reaction to `target_message_id`; an empty `emoji` removes the reaction."""
    content = {"message_id": target_message_id, "emoji": emoji}
    item = message_item(
        "reaction", content, wa_id=wa_id, message_id=message_id, timestamp=timestamp
    )
    return single(item, wa_id=wa_id, name=name)


def order(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    note: str = "Please deliver after 5pm",
) -> bytes:
    """An order placed from a catalog."""
    content = {
        "catalog_id": "880012345678901",
        "text": note,
        "product_items": [
            {
                "product_retailer_id": "SKU-1001",
                "quantity": 2,
                "item_price": 12.5,
                "currency": "GBP",
            },
            {"product_retailer_id": "SKU-2002", "quantity": 1, "item_price": 30, "currency": "GBP"},
        ],
    }
    item = message_item("order", content, wa_id=wa_id, message_id=message_id, timestamp=timestamp)
    return single(item, wa_id=wa_id, name=name)


def system(
    *,
    wa_id: str = WA_ID,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    new_wa_id: str = "447911999888",
) -> bytes:
    """A `user_changed_number` system message (these come without a contacts array)."""
    content = {
        "body": f"User {wa_id} changed from {wa_id} to {new_wa_id}",
        "wa_id": new_wa_id,
        "type": "user_changed_number",
    }
    item = message_item("system", content, wa_id=wa_id, message_id=message_id, timestamp=timestamp)
    return envelope([entry([messages_change(messages=[item])])])


def unsupported(
    *,
    wa_id: str = WA_ID,
    name: str = NAME,
    message_id: str = MESSAGE_ID,
    timestamp: int = TIMESTAMP,
    kind: str = "unsupported",
) -> bytes:
    """Something the Cloud API cannot carry (a poll, a view-once photo, ...)."""
    errors = [
        {
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."},
        }
    ]
    content = {"type": "poll_creation"} if kind == "unsupported" else None
    item = message_item(
        kind, content, wa_id=wa_id, message_id=message_id, timestamp=timestamp, errors=errors
    )
    return single(item, wa_id=wa_id, name=name)


def bsuid_text(
    *,
    user_id: str = BSUID,
    username: str = "priya.n",
    name: str = "Priya",
    message_id: str = MESSAGE_ID,
    timestamp: int = 1778400000,
    body: str = "hi again",
) -> bytes:
    """A text from a user who hides their number behind a username: only a BSUID."""
    item = {
        "from_user_id": user_id,
        "id": message_id,
        "timestamp": str(timestamp),
        "type": "text",
        "text": {"body": body},
    }
    sender = {"profile": {"name": name, "username": username}, "user_id": user_id}
    return envelope([entry([messages_change(messages=[item], contacts=[sender])])])
