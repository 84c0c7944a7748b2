"""WhatsApp Cloud API message types mapped to kobliat content types, bodies and metadata.

Content objects are read leniently: a field of an unexpected type is left out rather than
rejected, because the raw item is kept in metadata and Meta adds fields without notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kobliat.channels._content import Content, joined
from kobliat.channels._fields import JsonObject, present, soft_list, soft_obj, soft_str
from kobliat.channels.records import ContentType


def describe(message: JsonObject) -> Content:
    """The content type, body and type-specific metadata of one `messages[]` item."""
    kind = soft_str(message, "type") or ""
    handler = _HANDLERS.get(kind, _unknown)
    content = handler(kind, message)
    metadata = {"provider_type": kind or None, **content.metadata, **_common(message)}
    return Content(content.content_type, content.body, present(**metadata))


def _common(message: JsonObject) -> JsonObject:
    """Reply context, forwarding, ads referral and errors, which any type may carry."""
    context = soft_obj(message, "context")
    reply_to = None
    if soft_str(context, "id"):
        reply_to = present(external_message_id=context["id"], **{"from": soft_str(context, "from")})
    return present(
        reply_to=reply_to,
        forwarded=True if context.get("forwarded") is True else None,
        frequently_forwarded=True if context.get("frequently_forwarded") is True else None,
        referred_product=context.get("referred_product"),
        referral=message.get("referral"),
        errors=message.get("errors"),
        raw=message,
    )


def _text(kind: str, message: JsonObject) -> Content:
    return Content("text", soft_str(soft_obj(message, "text"), "body"))


_MEDIA_TYPES: dict[str, ContentType] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "file",
    "sticker": "image",
}


def _media(kind: str, message: JsonObject) -> Content:
    media = soft_obj(message, kind)
    caption = soft_str(media, "caption")
    item = present(
        kind=kind,
        id=soft_str(media, "id"),
        mime_type=soft_str(media, "mime_type"),
        sha256=soft_str(media, "sha256"),
        filename=soft_str(media, "filename"),
        caption=caption,
        voice=media.get("voice") if isinstance(media.get("voice"), bool) else None,
        animated=media.get("animated") if isinstance(media.get("animated"), bool) else None,
    )
    return Content(_MEDIA_TYPES[kind], caption, {"media": [item], "caption": caption})


def _location(kind: str, message: JsonObject) -> Content:
    location = soft_obj(message, "location")
    name, address = soft_str(location, "name"), soft_str(location, "address")
    details = present(
        latitude=location.get("latitude"),
        longitude=location.get("longitude"),
        name=name,
        address=address,
        url=soft_str(location, "url"),
    )
    return Content("location", joined([name, address], " — "), {"location": details})


def _contacts(kind: str, message: JsonObject) -> Content:
    cards = soft_list(message, "contacts")
    names = [soft_str(soft_obj(card, "name"), "formatted_name") for card in cards if _is_obj(card)]
    return Content("contacts", joined(names, ", "), {"contacts": cards})


def _interactive(kind: str, message: JsonObject) -> Content:
    interactive = soft_obj(message, "interactive")
    reply_kind = soft_str(interactive, "type") or ""
    reply = soft_obj(interactive, reply_kind)
    if reply_kind == "nfm_reply":
        response_json = soft_str(reply, "response_json")
        details = present(
            type=reply_kind,
            name=soft_str(reply, "name"),
            body=soft_str(reply, "body"),
            response_json=response_json,
            response=_json_or_none(response_json),
        )
        return Content("interactive", soft_str(reply, "body"), {"interactive": details})
    details = present(
        type=reply_kind or None,
        id=soft_str(reply, "id"),
        title=soft_str(reply, "title"),
        description=soft_str(reply, "description"),
    )
    return Content("interactive", soft_str(reply, "title"), {"interactive": details})


def _button(kind: str, message: JsonObject) -> Content:
    button = soft_obj(message, "button")
    text = soft_str(button, "text")
    details = present(type="button", payload=soft_str(button, "payload"), title=text)
    return Content("interactive", text, {"interactive": details})


def _reaction(kind: str, message: JsonObject) -> Content:
    reaction = soft_obj(message, "reaction")
    # Meta removes a reaction by sending an empty (or, per some reports, absent) emoji.
    emoji = soft_str(reaction, "emoji") or ""
    details = {"message_id": soft_str(reaction, "message_id"), "emoji": emoji}
    return Content("reaction", emoji, {"reaction": details})


def _order(kind: str, message: JsonObject) -> Content:
    order = soft_obj(message, "order")
    return Content("structured", soft_str(order, "text"), {"order": order})


def _system(kind: str, message: JsonObject) -> Content:
    system = soft_obj(message, "system")
    return Content("structured", soft_str(system, "body"), {"system": system})


def _unknown(kind: str, message: JsonObject) -> Content:
    return Content("unknown", None, present(unsupported=message.get("unsupported")))


_HANDLERS: dict[str, Callable[[str, JsonObject], Content]] = {
    "text": _text,
    **dict.fromkeys(_MEDIA_TYPES, _media),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
}


def _is_obj(value: Any) -> bool:
    return isinstance(value, dict)


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
