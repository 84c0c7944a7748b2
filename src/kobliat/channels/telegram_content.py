"""Telegram Bot API message fields mapped to kobliat content types, bodies and metadata."""

from __future__ import annotations

from typing import Any

from kobliat.channels._content import Content, joined
from kobliat.channels._fields import JsonObject, is_set, present, soft_list, soft_obj, soft_str
from kobliat.channels.records import ContentType

# Checked in this order: an animation also carries `document` for old clients, and a venue
# also carries `location`, so the more specific field must win.
_MEDIA: tuple[tuple[str, ContentType], ...] = (
    ("animation", "video"),
    ("video", "video"),
    ("video_note", "video"),
    ("voice", "audio"),
    ("audio", "audio"),
    ("document", "file"),
    ("sticker", "image"),
)
_MEDIA_KEYS = (
    "file_id",
    "file_unique_id",
    "mime_type",
    "file_name",
    "file_size",
    "width",
    "height",
    "duration",
    "title",
    "performer",
    "emoji",
    "set_name",
    "is_animated",
    "is_video",
)

# Content kinds kobliat has no type for: recorded by name, kept raw, typed "unknown".
_OTHER_KINDS = (
    "dice",
    "game",
    "story",
    "invoice",
    "paid_media",
    "giveaway",
    "giveaway_winners",
    "checklist",
    "successful_payment",
    "web_app_data",
)


def describe(message: JsonObject) -> Content:
    """The content of one Telegram `Message` object."""
    caption = soft_str(message, "caption")
    if isinstance(message.get("text"), str):
        return Content("text", message["text"], {"provider_type": "text"})
    if isinstance(message.get("photo"), list):
        return _photo(message["photo"], caption)
    for key, content_type in _MEDIA:
        if isinstance(message.get(key), dict):
            media = {"kind": key, **_media_fields(message[key])}
            metadata = present(provider_type=key, media=[media], caption=caption)
            return Content(content_type, caption, metadata)
    if isinstance(message.get("venue"), dict):
        return _venue(message["venue"])
    if isinstance(message.get("location"), dict):
        location = _location_fields(message["location"])
        return Content("location", None, {"provider_type": "location", "location": location})
    if isinstance(message.get("contact"), dict):
        return _contact(message["contact"])
    if isinstance(message.get("poll"), dict):
        poll = message["poll"]
        metadata = {"provider_type": "poll", "poll": poll}
        return Content("structured", soft_str(poll, "question"), metadata)
    kind = next((key for key in _OTHER_KINDS if is_set(message.get(key))), None)
    return Content("unknown", caption, present(provider_type=kind))


def _photo(sizes: list[Any], caption: str | None) -> Content:
    # Telegram lists one picture at several resolutions, smallest first.
    photo_sizes = [size for size in sizes if isinstance(size, dict)]
    largest = max(photo_sizes, key=_area, default={})
    media = {"kind": "photo", **_media_fields(largest)}
    metadata = present(
        provider_type="photo", media=[media], photo_sizes=photo_sizes, caption=caption
    )
    return Content("image", caption, metadata)


def _venue(venue: JsonObject) -> Content:
    title, address = soft_str(venue, "title"), soft_str(venue, "address")
    location = {
        **_location_fields(soft_obj(venue, "location")),
        **present(name=title, address=address),
    }
    metadata = {"provider_type": "venue", "location": location, "venue": venue}
    return Content("location", joined([title, address], " — "), metadata)


def _contact(contact: JsonObject) -> Content:
    name = joined([soft_str(contact, "first_name"), soft_str(contact, "last_name")], " ")
    metadata = {"provider_type": "contact", "contacts": [contact]}
    return Content("contacts", name or soft_str(contact, "phone_number"), metadata)


def _media_fields(media: JsonObject) -> JsonObject:
    return {key: media[key] for key in _MEDIA_KEYS if media.get(key) is not None}


def _location_fields(location: JsonObject) -> JsonObject:
    return present(latitude=location.get("latitude"), longitude=location.get("longitude"))


def _area(size: JsonObject) -> float:
    width, height = size.get("width"), size.get("height")
    if isinstance(width, int | float) and isinstance(height, int | float):
        return float(width) * float(height)
    return 0.0


def entities(message: JsonObject) -> list[Any]:
    """Formatting and mention entities of the text or the caption."""
    return soft_list(message, "entities") or soft_list(message, "caption_entities")
