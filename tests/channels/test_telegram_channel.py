"""Telegram adapter: every update shape parses to the expected record; the secret token holds."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kobliat.channels import telegram
from kobliat.channels.records import IgnoredItem, InboundMessage, ParsedWebhook, PayloadError
from kobliat.channels.samples import telegram as tg

Raw = Callable[[str, str], bytes]
BOT_ID = tg.BOT_ID
RECEIVED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SENT_AT = datetime(2026, 1, 1, 10, 46, 40, tzinfo=UTC)


def parse(body: bytes) -> ParsedWebhook:
    return telegram.parse(body, bot_id=BOT_ID, received_at=RECEIVED_AT)


def message_fixture(raw: Raw, name: str) -> InboundMessage:
    parsed = parse(raw("telegram", name))
    (item,) = parsed.items
    assert isinstance(item, InboundMessage)
    return item


def ignored_fixture(raw: Raw, name: str) -> IgnoredItem:
    (item,) = parse(raw("telegram", name)).items
    assert isinstance(item, IgnoredItem)
    return item


def test_private_text_becomes_direct_message_keyed_by_chat_and_message_id(raw: Raw) -> None:
    parsed = parse(raw("telegram", "private_text_reply"))
    (message,) = parsed.items
    assert isinstance(message, InboundMessage)

    assert parsed.channel == "telegram"
    assert parsed.delivery_key == f"{BOT_ID}:{tg.UPDATE_ID}"
    assert message.channel == "telegram"
    assert message.external_message_id == "512345678:4187"
    assert message.content_type == "text"
    assert message.body == "Thursday afternoon please"
    assert message.sent_at == SENT_AT
    assert message.sender.external_type == "telegram"
    assert message.sender.external_id == "512345678"
    assert message.sender.name == "Tomás Ferreira"
    assert message.sender.metadata == {
        "username": "tferreira",
        "language_code": "pt-br",
        "is_bot": False,
    }
    assert message.business.external_type == "telegram"
    assert message.business.external_id == BOT_ID
    assert message.conversation.kind == "direct"
    assert message.metadata["chat_type"] == "private"
    assert message.metadata["raw"]["message_id"] == 4187


def test_reply_points_at_the_replied_message_of_the_same_chat(raw: Raw) -> None:
    message = message_fixture(raw, "private_text_reply")
    assert message.metadata["reply_to"] == {"external_message_id": "512345678:4185", "from": BOT_ID}


def test_group_photo_takes_the_largest_size_and_the_caption(raw: Raw) -> None:
    message = message_fixture(raw, "group_photo")
    assert message.external_message_id == f"{tg.GROUP_ID}:90211"
    assert message.content_type == "image"
    assert message.body == "parking sign at the entrance"
    assert message.conversation.kind == "group"
    assert message.conversation.external_id == str(tg.GROUP_ID)
    assert message.conversation.group_name == "Clinic B — front desk"
    assert message.sender.external_id == "623456789"
    assert message.sender.name == "Ana"
    (media,) = message.metadata["media"]
    assert media["file_id"] == "AgACAgQAAxkBAAIBa2X_l"
    assert media["width"] == 1280
    assert media["file_unique_id"].startswith("AQAD")
    assert [size["width"] for size in message.metadata["photo_sizes"]] == [90, 320, 1280]


def test_album_photos_keep_their_media_group_id() -> None:
    (message,) = parse(tg.group_photo(media_group_id="13598846512345678")).items
    assert isinstance(message, InboundMessage)
    assert message.metadata["media_group_id"] == "13598846512345678"


def test_supergroup_topic_message_keeps_thread_id(raw: Raw) -> None:
    message = message_fixture(raw, "supergroup_topic_text")
    assert message.conversation.kind == "group"
    assert message.conversation.external_id == str(tg.SUPERGROUP_ID)
    assert message.conversation.group_name == "Clinic B — patients"
    assert message.metadata["message_thread_id"] == 77
    assert message.metadata["is_topic_message"] is True
    assert message.metadata["chat_type"] == "supergroup"


def test_anonymous_admin_writes_as_the_group_itself(raw: Raw) -> None:
    message = message_fixture(raw, "supergroup_anonymous_admin")
    assert message.sender.external_id == str(tg.SUPERGROUP_ID)
    assert message.sender.name == "Clinic B — patients"
    assert message.sender.metadata == {"chat_type": "supergroup"}


@pytest.mark.parametrize(
    ("name", "content_type", "body", "mime_type"),
    [
        ("video", "video", "how to find us", "video/mp4"),
        ("animation", "video", None, "video/mp4"),
        ("voice", "audio", None, "audio/ogg"),
        ("audio", "audio", None, "audio/mpeg"),
        ("document", "file", "my referral", "application/pdf"),
        ("sticker", "image", None, None),
    ],
)
def test_media_messages_map_to_content_types_with_file_ids(
    raw: Raw, name: str, content_type: str, body: str | None, mime_type: str | None
) -> None:
    message = message_fixture(raw, name)
    assert message.content_type == content_type
    assert message.body == body
    assert message.metadata["provider_type"] == name
    (media,) = message.metadata["media"]
    assert media["kind"] == name
    assert media["file_id"] == f"{name.upper()}-file-id-4187"
    assert media["file_unique_id"]
    assert media.get("mime_type") == mime_type


def test_sticker_keeps_its_emoji_and_set(raw: Raw) -> None:
    (media,) = message_fixture(raw, "sticker").metadata["media"]
    assert media["emoji"] == "👍"
    assert media["set_name"] == "ClinicStickers"


def test_location_and_venue_are_locations(raw: Raw) -> None:
    pin = message_fixture(raw, "location")
    assert pin.content_type == "location"
    assert pin.body is None
    assert pin.metadata["location"] == {"latitude": 38.7223, "longitude": -9.1393}
    venue = message_fixture(raw, "venue")
    assert venue.content_type == "location"
    assert venue.body == "Clinic B — Rua Augusta 100, Lisboa"
    assert venue.metadata["location"]["name"] == "Clinic B"
    assert venue.metadata["location"]["latitude"] == 38.7104


def test_contact_is_a_contacts_message(raw: Raw) -> None:
    message = message_fixture(raw, "contact")
    assert message.content_type == "contacts"
    assert message.body == "Rita Costa"
    assert message.metadata["contacts"][0]["phone_number"] == "+351912345678"


def test_poll_is_structured_and_dice_is_unknown(raw: Raw) -> None:
    poll = message_fixture(raw, "poll")
    assert poll.content_type == "structured"
    assert poll.body == "Which day suits you best?"
    assert len(poll.metadata["poll"]["options"]) == 2
    dice = message_fixture(raw, "dice")
    assert dice.content_type == "unknown"
    assert dice.metadata["provider_type"] == "dice"
    assert dice.metadata["raw"]["dice"] == {"emoji": "🎲", "value": 4}


def test_edited_message_keeps_the_original_id_and_is_marked_edited(raw: Raw) -> None:
    parsed = parse(raw("telegram", "edited_message"))
    (message,) = parsed.items
    assert isinstance(message, InboundMessage)
    assert parsed.delivery_key == f"{BOT_ID}:{tg.UPDATE_ID + 1}"
    assert message.external_message_id == "512345678:4187"
    assert message.body == "Thursday afternoon please, after 3pm"
    assert message.metadata["edited"] is True
    assert message.metadata["edited_at"] == "2026-01-01T10:47:40+00:00"
    assert message.sent_at == SENT_AT


def test_channel_post_is_sent_by_the_channel_into_its_own_conversation(raw: Raw) -> None:
    message = message_fixture(raw, "channel_post")
    assert message.external_message_id == f"{tg.CHANNEL_ID}:311"
    assert message.sender.external_id == str(tg.CHANNEL_ID)
    assert message.sender.name == "Clinic B news"
    assert message.sender.metadata == {"username": "clinicb_news", "chat_type": "channel"}
    assert message.conversation.kind == "group"
    assert message.conversation.external_id == str(tg.CHANNEL_ID)


def test_business_message_is_an_inbound_message_with_its_connection() -> None:
    person = tg.user()
    obj = tg.message(
        chat=tg.private_chat(person), sender=person, text="hi", business_connection_id="bc-1"
    )
    (message,) = parse(tg.update("business_message", obj)).items
    assert isinstance(message, InboundMessage)
    assert message.body == "hi"
    assert message.metadata["business_connection_id"] == "bc-1"
    assert "edited" not in message.metadata


def test_callback_query_is_interactive_with_its_data(raw: Raw) -> None:
    message = message_fixture(raw, "callback_query")
    assert message.content_type == "interactive"
    assert message.external_message_id == "callback:2204451093827364519"
    assert message.body == "slot:thu_1500"
    assert message.sender.external_id == "512345678"
    assert message.conversation.kind == "direct"
    assert message.sent_at == RECEIVED_AT
    assert message.metadata["interactive"] == {
        "type": "callback_query",
        "id": "2204451093827364519",
        "data": "slot:thu_1500",
    }
    assert message.metadata["reply_to"] == {"external_message_id": "512345678:4188"}


def test_callback_query_without_receive_time_is_dated_now() -> None:
    before = datetime.now(UTC)
    parsed = telegram.parse(tg.callback_query(), bot_id=BOT_ID)
    (message,) = parsed.items
    assert isinstance(message, InboundMessage)
    assert before <= message.sent_at <= datetime.now(UTC)


def test_bot_membership_change_is_ignored_with_the_update_kept(raw: Raw) -> None:
    item = ignored_fixture(raw, "my_chat_member")
    assert item.channel == "telegram"
    assert item.kind == "telegram.my_chat_member"
    assert item.detail["update"]["my_chat_member"]["new_chat_member"]["status"] == "left"


def test_group_migration_is_ignored_with_both_chat_ids(raw: Raw) -> None:
    item = ignored_fixture(raw, "migrate_to_supergroup")
    assert item.kind == "telegram.migrate"
    assert item.detail == {"chat_id": tg.GROUP_ID, "migrate_to_chat_id": tg.SUPERGROUP_ID}


def test_service_messages_are_ignored() -> None:
    chat = tg.group_chat()
    obj = tg.message(chat=chat, sender=tg.user(), new_chat_members=[tg.user(user_id=1)])
    (item,) = parse(tg.update("message", obj)).items
    assert isinstance(item, IgnoredItem)
    assert item.kind == "telegram.service.new_chat_members"
    assert item.detail["chat_id"] == tg.GROUP_ID


def test_unknown_update_kind_is_ignored() -> None:
    (item,) = parse(json.dumps({"update_id": 5, "purchased_paid_media": {"x": 1}}).encode()).items
    assert isinstance(item, IgnoredItem)
    assert item.kind == "telegram.purchased_paid_media"


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ([], "must be a JSON object"),
        ({"message": {}}, "update_id is missing"),
        ({"update_id": "7"}, "update_id must be an integer, got the string '7'"),
        ({"update_id": 7, "message": []}, "message must be an object, got an array"),
        ({"update_id": 7, "message": {"message_id": 1, "date": 1}}, "message.chat is missing"),
        (
            {"update_id": 7, "message": {"message_id": 1, "date": 1, "chat": {"type": "private"}}},
            "message.chat.id is missing",
        ),
        (
            {
                "update_id": 7,
                "edited_message": {"message_id": 1, "chat": {"id": 1, "type": "private"}},
            },
            "edited_message.date is missing",
        ),
        ({"update_id": 7, "callback_query": {"id": "q"}}, "callback_query.from is missing"),
    ],
)
def test_malformed_updates_raise_payload_error_naming_the_field(
    update: object, message: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse(json.dumps(update).encode())


SECRET = "kobliat_tg-Secret_42"


def test_secret_token_header_must_equal_the_configured_token() -> None:
    assert telegram.verify_signature(SECRET, SECRET)
    assert not telegram.verify_signature("kobliat_tg-Secret_43", SECRET)
    assert not telegram.verify_signature(None, SECRET)
    assert not telegram.verify_signature("", SECRET)
    assert not telegram.verify_signature(SECRET + "é", SECRET)


def test_secret_token_check_refuses_when_no_token_is_configured() -> None:
    assert not telegram.verify_signature("", "")


SERVICE_FLAG_ABSENCES = {
    "group_chat_created": False,
    "supergroup_chat_created": False,
    "channel_chat_created": False,
    "delete_chat_photo": False,
    "new_chat_members": [],
    "new_chat_photo": [],
    "new_chat_title": None,
    "left_chat_member": None,
    "pinned_message": None,
    "message_auto_delete_timer_changed": None,
    "migrate_to_chat_id": None,
    "migrate_from_chat_id": None,
}


@pytest.mark.parametrize(("field", "value"), SERVICE_FLAG_ABSENCES.items())
def test_service_field_with_a_false_or_empty_value_does_not_hide_the_message(
    field: str, value: object
) -> None:
    # Bot frameworks serialise every field of their Message model, unset ones included.
    group = tg.group_chat()
    obj = tg.message(chat=group, sender=tg.user(), text="hello all", **{field: value})

    (item,) = parse(tg.update("message", obj)).items

    assert isinstance(item, InboundMessage)
    assert item.body == "hello all"


@pytest.mark.parametrize(
    "field", ["group_chat_created", "supergroup_chat_created", "delete_chat_photo"]
)
def test_service_flag_set_to_true_is_a_service_message(field: str) -> None:
    obj = tg.message(chat=tg.group_chat(), sender=tg.user(), **{field: True})

    (item,) = parse(tg.update("message", obj)).items

    assert isinstance(item, IgnoredItem)
    assert item.kind == f"telegram.service.{field}"


def test_null_update_kinds_next_to_the_real_one_are_skipped() -> None:
    body = json.dumps(
        {
            "update_id": tg.UPDATE_ID,
            "message": None,
            "callback_query": None,
            "edited_message": tg.message(chat=tg.group_chat(), sender=tg.user(), text="fixed"),
        }
    ).encode()

    (item,) = parse(body).items

    assert isinstance(item, InboundMessage)
    assert item.body == "fixed" and item.metadata["edited"] is True
