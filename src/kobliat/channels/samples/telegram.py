"""Realistic Telegram Bot API updates (invented ids), one builder per update shape.

Every builder is deterministic given its arguments and returns the raw body bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kobliat.channels.samples._json import dump

BOT_ID = "7012345678"
UPDATE_ID = 734120558
MESSAGE_ID = 4187
DATE = 1767264400
USER_ID = 512345678
GROUP_ID = -4012345678
SUPERGROUP_ID = -1001987654321
CHANNEL_ID = -1001555000111
BOT = {
    "id": int(BOT_ID),
    "is_bot": True,
    "first_name": "Clinic Helper",
    "username": "clinic_helper_bot",
}

Obj = dict[str, Any]

# One file per media kind; `file_unique_id` is what stays stable across bots.
_MEDIA: dict[str, Obj] = {
    "video": {
        "duration": 12,
        "width": 1280,
        "height": 720,
        "file_name": "walkthrough.mp4",
        "mime_type": "video/mp4",
    },
    "animation": {
        "duration": 3,
        "width": 320,
        "height": 240,
        "file_name": "wave.mp4",
        "mime_type": "video/mp4",
    },
    "voice": {"duration": 4, "mime_type": "audio/ogg"},
    "audio": {
        "duration": 95,
        "performer": "Clinic B",
        "title": "Breathing exercise",
        "mime_type": "audio/mpeg",
    },
    "document": {"file_name": "referral.pdf", "mime_type": "application/pdf"},
    "sticker": {
        "width": 512,
        "height": 512,
        "emoji": "👍",
        "set_name": "ClinicStickers",
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    },
}


def user(
    *,
    user_id: int = USER_ID,
    first_name: str = "Tomás",
    last_name: str | None = "Ferreira",
    username: str | None = "tferreira",
    language_code: str | None = "pt-br",
) -> Obj:
    """A Telegram `User` (a person, not a bot)."""
    obj: Obj = {"id": user_id, "is_bot": False, "first_name": first_name}
    for key, value in (
        ("last_name", last_name),
        ("username", username),
        ("language_code", language_code),
    ):
        if value is not None:
            obj[key] = value
    return obj


def private_chat(person: Obj) -> Obj:
    """The private `Chat` with a user (its id is the user's id)."""
    keys = ("id", "first_name", "last_name", "username")
    chat: Obj = {key: person[key] for key in keys if key in person}
    return {**chat, "type": "private"}


def group_chat(
    *, chat_id: int = GROUP_ID, title: str = "Clinic B — front desk", kind: str = "group"
) -> Obj:
    """A group, supergroup or channel `Chat`."""
    return {"id": chat_id, "title": title, "type": kind}


def message(
    *,
    chat: Obj,
    sender: Obj | None = None,
    message_id: int = MESSAGE_ID,
    date: int = DATE,
    **fields: Any,
) -> Obj:
    """A `Message` object; `fields` are its content (text, photo, caption, ...)."""
    obj: Obj = {"message_id": message_id}
    if sender is not None:
        obj["from"] = sender
    obj.update({"chat": chat, "date": date})
    obj.update(fields)
    return obj


def update(kind: str, obj: Obj, *, update_id: int = UPDATE_ID) -> bytes:
    """A complete Update body carrying `obj` as its `kind`."""
    return dump({"update_id": update_id, kind: obj})


def private_text(
    *,
    update_id: int = UPDATE_ID,
    message_id: int = MESSAGE_ID,
    date: int = DATE,
    user_id: int = USER_ID,
    first_name: str = "Tomás",
    last_name: str | None = "Ferreira",
    username: str | None = "tferreira",
    text: str = "Thursday afternoon please",
    reply_to_message_id: int | None = 4185,
) -> bytes:
    """A text in a private chat, replying to one of the bot's messages by default."""
    person = user(user_id=user_id, first_name=first_name, last_name=last_name, username=username)
    chat = private_chat(person)
    fields: Obj = {}
    if reply_to_message_id is not None:
        fields["reply_to_message"] = message(
            chat=chat,
            sender=BOT,
            message_id=reply_to_message_id,
            date=date - 100,
            text="Which day suits you?",
        )
    fields["text"] = text
    obj = message(chat=chat, sender=person, message_id=message_id, date=date, **fields)
    return update("message", obj, update_id=update_id)


def group_photo(
    *,
    update_id: int = UPDATE_ID,
    message_id: int = 90211,
    date: int = DATE,
    chat_id: int = GROUP_ID,
    title: str = "Clinic B — front desk",
    caption: str | None = "parking sign at the entrance",
    media_group_id: str | None = None,
) -> bytes:
    """A photo (three sizes) with a caption, posted in a basic group."""
    photo = [
        _file("AgACAgQAAxkBAAIBa2X_s", width=90, height=67, file_size=1204),
        _file("AgACAgQAAxkBAAIBa2X_m", width=320, height=240, file_size=15320),
        _file("AgACAgQAAxkBAAIBa2X_l", width=1280, height=960, file_size=118733),
    ]
    fields: Obj = {"photo": photo}
    if caption is not None:
        fields["caption"] = caption
    if media_group_id is not None:
        fields["media_group_id"] = media_group_id
    sender = user(
        user_id=623456789, first_name="Ana", last_name=None, username=None, language_code="en"
    )
    chat = group_chat(chat_id=chat_id, title=title)
    obj = message(chat=chat, sender=sender, message_id=message_id, date=date, **fields)
    return update("message", obj, update_id=update_id)


def supergroup_text(
    *,
    update_id: int = UPDATE_ID,
    message_id: int = 90212,
    date: int = DATE,
    chat_id: int = SUPERGROUP_ID,
    title: str = "Clinic B — patients",
    text: str = "Is the car park open on Sundays?",
    thread_id: int | None = 77,
    anonymous_admin: bool = False,
) -> bytes:
    """A text in a forum topic of a supergroup, or from an anonymous admin (as the chat)."""
    chat = group_chat(chat_id=chat_id, title=title, kind="supergroup")
    fields: Obj = {"text": text}
    if thread_id is not None:
        fields.update(message_thread_id=thread_id, is_topic_message=True)
    if anonymous_admin:
        placeholder = {
            "id": 1087968824,
            "is_bot": True,
            "first_name": "Group",
            "username": "GroupAnonymousBot",
        }
        obj = message(
            chat=chat,
            sender=placeholder,
            message_id=message_id,
            date=date,
            sender_chat=chat,
            **fields,
        )
    else:
        sender = user(
            user_id=623456789, first_name="Ana", last_name=None, username=None, language_code="en"
        )
        obj = message(chat=chat, sender=sender, message_id=message_id, date=date, **fields)
    return update("message", obj, update_id=update_id)


def media(
    kind: str = "video",
    *,
    update_id: int = UPDATE_ID,
    message_id: int = MESSAGE_ID,
    date: int = DATE,
    user_id: int = USER_ID,
    caption: str | None = None,
) -> bytes:
    """A video, animation, voice, audio, document or sticker sent in a private chat."""
    content = {**_MEDIA[kind], **_file(f"{kind.upper()}-file-id-{message_id}", file_size=48213)}
    fields: Obj = {kind: content}
    if kind == "animation":
        # Bot API keeps sending `document` next to `animation` for older clients.
        fields["document"] = {
            key: content[key]
            for key in ("file_name", "mime_type", "file_id", "file_unique_id", "file_size")
        }
    if caption is not None:
        fields["caption"] = caption
    person = user(user_id=user_id)
    obj = message(
        chat=private_chat(person), sender=person, message_id=message_id, date=date, **fields
    )
    return update("message", obj, update_id=update_id)


def private_content(
    fields: Obj,
    *,
    update_id: int = UPDATE_ID,
    message_id: int = MESSAGE_ID,
    date: int = DATE,
    user_id: int = USER_ID,
) -> bytes:
    """A private-chat message whose content `fields` are given as they appear in the API."""
    person = user(user_id=user_id)
    obj = message(
        chat=private_chat(person), sender=person, message_id=message_id, date=date, **fields
    )
    return update("message", obj, update_id=update_id)


def location(*, latitude: float = 38.7223, longitude: float = -9.1393, **kwargs: Any) -> bytes:
    """A location pin in a private chat."""
    return private_content({"location": {"latitude": latitude, "longitude": longitude}}, **kwargs)


def venue(
    *, title: str = "Clinic B", address: str = "Rua Augusta 100, Lisboa", **kwargs: Any
) -> bytes:
    """A venue (a named place with its location) in a private chat."""
    place = {"latitude": 38.7104, "longitude": -9.1385}
    venue_obj = {"location": place, "title": title, "address": address}
    return private_content({"location": place, "venue": venue_obj}, **kwargs)


def contact(
    *, phone_number: str = "+351912345678", first_name: str = "Rita", **kwargs: Any
) -> bytes:
    """A shared contact card in a private chat."""
    card = {
        "phone_number": phone_number,
        "first_name": first_name,
        "last_name": "Costa",
        "user_id": 598765432,
    }
    return private_content({"contact": card}, **kwargs)


def poll(*, question: str = "Which day suits you best?", **kwargs: Any) -> bytes:
    """A poll posted in a private chat."""
    options = [{"text": day, "voter_count": 0} for day in ("Thursday", "Friday")]
    poll_obj = {
        "id": "5301234567890123456",
        "question": question,
        "options": options,
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
    }
    return private_content({"poll": poll_obj}, **kwargs)


def dice(**kwargs: Any) -> bytes:
    """A dice roll: a content kind kobliat has no type for."""
    return private_content({"dice": {"emoji": "🎲", "value": 4}}, **kwargs)


def edited_message(
    *,
    update_id: int = UPDATE_ID + 1,
    message_id: int = MESSAGE_ID,
    date: int = DATE,
    edit_date: int = DATE + 60,
    text: str = "Thursday afternoon please, after 3pm",
) -> bytes:
    """An edit of an earlier private text: same message_id, new update_id."""
    person = user()
    obj = message(
        chat=private_chat(person),
        sender=person,
        message_id=message_id,
        date=date,
        edit_date=edit_date,
        text=text,
    )
    return update("edited_message", obj, update_id=update_id)


def channel_post(
    *,
    update_id: int = UPDATE_ID,
    message_id: int = 311,
    date: int = DATE,
    text: str = "Clinic B is closed on 1 May.",
) -> bytes:
    """A post in a channel the bot administers: no `from`, the channel is the sender."""
    chat = {
        **group_chat(chat_id=CHANNEL_ID, title="Clinic B news", kind="channel"),
        "username": "clinicb_news",
    }
    obj = message(chat=chat, message_id=message_id, date=date, sender_chat=chat, text=text)
    return update("channel_post", obj, update_id=update_id)


def callback_query(
    *,
    update_id: int = UPDATE_ID,
    query_id: str = "2204451093827364519",
    data: str = "slot:thu_1500",
    message_id: int = 4188,
    user_id: int = USER_ID,
) -> bytes:
    """A tap on an inline keyboard button under one of the bot's messages."""
    person = user(user_id=user_id)
    keyboard_message = message(
        chat=private_chat(person),
        sender=BOT,
        message_id=message_id,
        date=DATE - 30,
        text="Pick a time:",
    )
    query = {
        "id": query_id,
        "from": person,
        "message": keyboard_message,
        "chat_instance": "-7734128812346601234",
        "data": data,
    }
    return update("callback_query", query, update_id=update_id)


def my_chat_member(*, update_id: int = UPDATE_ID, new_status: str = "left") -> bytes:
    """The bot's own membership changed (here: removed from a supergroup)."""
    bot_user = {key: BOT[key] for key in ("id", "is_bot", "first_name")}
    change = {
        "chat": group_chat(chat_id=SUPERGROUP_ID, title="Clinic B — patients", kind="supergroup"),
        "from": user(
            user_id=623456789, first_name="Ana", last_name=None, username=None, language_code=None
        ),
        "date": DATE + 100,
        "old_chat_member": {"user": bot_user, "status": "member"},
        "new_chat_member": {"user": bot_user, "status": new_status},
    }
    return update("my_chat_member", change, update_id=update_id)


def migrate_to_supergroup(
    *, update_id: int = UPDATE_ID, chat_id: int = GROUP_ID, new_chat_id: int = SUPERGROUP_ID
) -> bytes:
    """The service message a basic group gets when it becomes a supergroup (new chat id)."""
    sender = user(
        user_id=623456789, first_name="Ana", last_name=None, username=None, language_code=None
    )
    obj = message(
        chat=group_chat(chat_id=chat_id),
        sender=sender,
        message_id=90300,
        migrate_to_chat_id=new_chat_id,
    )
    return update("message", obj, update_id=update_id)


def _file(file_id: str, **fields: Any) -> Obj:
    # file_unique_id is derived, not random, so samples stay deterministic.
    unique = hashlib.sha256(file_id.encode()).hexdigest()[:12]
    return {"file_id": file_id, "file_unique_id": f"AQAD{unique}", **fields}
