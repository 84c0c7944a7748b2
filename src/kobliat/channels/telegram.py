"""Telegram Bot API: secret-token check and Update parsing (one update per request)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from kobliat.channels._content import joined
from kobliat.channels._fields import (
    JsonObject,
    is_set,
    load_object,
    opt_int,
    opt_obj,
    present,
    req_int,
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
)
from kobliat.channels.telegram_content import describe, entities
from kobliat.channels.timestamps import from_unix, to_iso

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Update kinds that carry a Message a person wrote; the edited ones reuse the original id.
_MESSAGE_KINDS = {
    "message": False,
    "edited_message": True,
    "channel_post": False,
    "edited_channel_post": True,
    "business_message": False,
    "edited_business_message": True,
}
# Service messages say something happened to the chat; nobody wrote them.
_SERVICE_FIELDS = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "message_auto_delete_timer_changed",
    "pinned_message",
)


def verify_signature(header: str | None, secret_token: str) -> bool:
    """Whether the `X-Telegram-Bot-Api-Secret-Token` header equals our secret token."""
    if not secret_token or header is None:
        return False
    return hmac.compare_digest(header.encode(), secret_token.encode())


def parse(raw_body: bytes, *, bot_id: str, received_at: datetime | None = None) -> ParsedWebhook:
    """The one message, callback or ignored item of a Telegram Update.

    `received_at` stands in for the send time of callback queries, which carry none.
    """
    update = load_object(raw_body, what="Telegram")
    update_id = req_int(update, "update_id", "")
    delivery_key = f"{bot_id}:{update_id}"
    # Frameworks serialise the kinds an update does not carry as null.
    kinds = [key for key, value in update.items() if key != "update_id" and value is not None]
    kind = next((key for key in kinds if key in _MESSAGE_KINDS or key == "callback_query"), None)
    business = Party(CHANNEL, bot_id)
    item: InboundItem
    if kind in _MESSAGE_KINDS:
        message = req_obj(update, kind, "")
        item = _message(message, kind, business, edited=_MESSAGE_KINDS[kind])
    elif kind == "callback_query":
        moment = received_at or datetime.now(UTC)
        item = _callback(req_obj(update, kind, ""), kind, business, moment)
    else:
        other = kinds[0] if kinds else "unknown"
        item = IgnoredItem(CHANNEL, f"telegram.{other}", {"update": update})
    return ParsedWebhook(CHANNEL, delivery_key, (item,))


def _message(message: JsonObject, path: str, business: Party, *, edited: bool) -> InboundItem:
    message_id = req_int(message, "message_id", path)
    chat = req_obj(message, "chat", path)
    chat_id = req_int(chat, "id", f"{path}.chat")
    chat_type = req_str(chat, "type", f"{path}.chat")
    sent_at = from_unix(req_int(message, "date", path), field=f"{path}.date")
    ignored = _service_item(message, chat_id, message_id)
    if ignored is not None:
        return ignored
    content = describe(message)
    metadata = {
        **content.metadata,
        **_context(message, path, chat_id),
        **present(edited=True if edited else None, edited_at=_edit_time(message, path)),
        "chat_type": chat_type,
        "raw": message,
    }
    return InboundMessage(
        channel=CHANNEL,
        external_message_id=f"{chat_id}:{message_id}",
        sender=_sender(message, path, chat),
        business=business,
        conversation=_conversation(chat, chat_id, chat_type),
        content_type=content.content_type,
        body=content.body,
        sent_at=sent_at,
        metadata=metadata,
    )


def _service_item(message: JsonObject, chat_id: int, message_id: int) -> IgnoredItem | None:
    migrate_to, migrate_from = (
        _chat_id(message.get("migrate_to_chat_id")),
        _chat_id(message.get("migrate_from_chat_id")),
    )
    if migrate_to is not None or migrate_from is not None:
        # A group that became a supergroup changes chat id: the ingest side remaps its keys.
        detail = present(
            chat_id=chat_id, migrate_to_chat_id=migrate_to, migrate_from_chat_id=migrate_from
        )
        return IgnoredItem(CHANNEL, "telegram.migrate", detail)
    for field in _SERVICE_FIELDS:
        if is_set(message.get(field)):
            detail = {"chat_id": chat_id, "message_id": message_id, field: message[field]}
            return IgnoredItem(CHANNEL, f"telegram.service.{field}", detail)
    return None


def _chat_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _context(message: JsonObject, path: str, chat_id: int) -> JsonObject:
    """Reply, thread, album, forwarding and business-connection context of a message."""
    reply = opt_obj(message, "reply_to_message", path)
    reply_to = None
    if reply is not None:
        reply_path = f"{path}.reply_to_message"
        reply_id = req_int(reply, "message_id", reply_path)
        reply_from = soft_obj(reply, "from").get("id")
        reply_to = present(
            external_message_id=f"{chat_id}:{reply_id}",
            **{"from": str(reply_from) if isinstance(reply_from, int) else None},
        )
    forward_origin = message.get("forward_origin")
    return present(
        reply_to=reply_to,
        message_thread_id=opt_int(message, "message_thread_id", path),
        is_topic_message=message.get("is_topic_message"),
        media_group_id=soft_str(message, "media_group_id"),
        forwarded=True if is_set(forward_origin) else None,
        forward_origin=forward_origin,
        entities=entities(message) or None,
        business_connection_id=soft_str(message, "business_connection_id"),
    )


def _edit_time(message: JsonObject, path: str) -> str | None:
    edit_date = opt_int(message, "edit_date", path)
    return None if edit_date is None else to_iso(from_unix(edit_date, field=f"{path}.edit_date"))


def _sender(message: JsonObject, path: str, chat: JsonObject) -> Party:
    # Anonymous group admins and channels write as a chat; `from` is then a placeholder bot.
    sender_chat = opt_obj(message, "sender_chat", path)
    if sender_chat is not None:
        return _chat_party(sender_chat, f"{path}.sender_chat")
    user = opt_obj(message, "from", path)
    if user is not None:
        return _user_party(user, f"{path}.from")
    return _chat_party(chat, f"{path}.chat")


def _user_party(user: JsonObject, path: str) -> Party:
    user_id = req_int(user, "id", path)
    name = joined([soft_str(user, "first_name"), soft_str(user, "last_name")], " ")
    metadata = present(
        username=soft_str(user, "username"),
        language_code=soft_str(user, "language_code"),
        is_bot=user.get("is_bot") if isinstance(user.get("is_bot"), bool) else None,
    )
    return Party(CHANNEL, str(user_id), name=name, metadata=metadata)


def _chat_party(chat: JsonObject, path: str) -> Party:
    chat_id = req_int(chat, "id", path)
    name = soft_str(chat, "title") or joined(
        [soft_str(chat, "first_name"), soft_str(chat, "last_name")], " "
    )
    metadata = present(username=soft_str(chat, "username"), chat_type=soft_str(chat, "type"))
    return Party(CHANNEL, str(chat_id), name=name, metadata=metadata)


def _conversation(chat: JsonObject, chat_id: int, chat_type: str) -> ConversationRef:
    if chat_type == "private":
        return ConversationRef()
    return ConversationRef("group", str(chat_id), group_name=soft_str(chat, "title"))


def _callback(query: JsonObject, path: str, business: Party, moment: datetime) -> InboundMessage:
    query_id = req_str(query, "id", path)
    sender = _user_party(req_obj(query, "from", path), f"{path}.from")
    data = soft_str(query, "data")
    # The keyboard's message may be "inaccessible" (date 0, no content) but still names its chat.
    origin = soft_obj(query, "message")
    chat = soft_obj(origin, "chat")
    chat_id, origin_id = chat.get("id"), origin.get("message_id")
    conversation = ConversationRef()
    reply_to = None
    if isinstance(chat_id, int) and isinstance(chat.get("type"), str):
        conversation = _conversation(chat, chat_id, chat["type"])
        if isinstance(origin_id, int):
            reply_to = {"external_message_id": f"{chat_id}:{origin_id}"}
    callback = present(
        id=query_id,
        data=data,
        chat_instance=soft_str(query, "chat_instance"),
        inline_message_id=soft_str(query, "inline_message_id"),
        game_short_name=soft_str(query, "game_short_name"),
    )
    metadata: dict[str, Any] = present(
        provider_type="callback_query",
        interactive={"type": "callback_query", "id": query_id, "data": data},
        callback=callback,
        reply_to=reply_to,
        raw=query,
    )
    return InboundMessage(
        channel=CHANNEL,
        external_message_id=f"callback:{query_id}",
        sender=sender,
        business=business,
        conversation=conversation,
        content_type="interactive",
        body=data,
        sent_at=moment,
        metadata=metadata,
    )
