"""WhatsApp Cloud API adapter: fixtures parse to the expected records; signatures hold."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from kobliat.channels import whatsapp
from kobliat.channels.records import (
    IgnoredItem,
    InboundMessage,
    ParsedWebhook,
    PayloadError,
    StatusUpdate,
)
from kobliat.channels.samples import whatsapp as wa_samples
from kobliat.channels.samples import whatsapp_messages as wa

Raw = Callable[[str, str], bytes]
OUR_WAMID = wa_samples.OUR_MESSAGE_ID


def only_message(parsed: ParsedWebhook) -> InboundMessage:
    assert len(parsed.items) == 1
    item = parsed.items[0]
    assert isinstance(item, InboundMessage)
    return item


def only_status(parsed: ParsedWebhook) -> StatusUpdate:
    assert len(parsed.items) == 1
    item = parsed.items[0]
    assert isinstance(item, StatusUpdate)
    return item


def message_fixture(raw: Raw, name: str) -> InboundMessage:
    return only_message(whatsapp.parse(raw("whatsapp", name)))


def test_text_message_becomes_inbound_text_with_sender_business_and_time(raw: Raw) -> None:
    body = raw("whatsapp", "text")
    parsed = whatsapp.parse(body)
    message = only_message(parsed)

    assert parsed.channel == "whatsapp"
    assert parsed.delivery_key == hashlib.sha256(body).hexdigest()
    assert message.channel == "whatsapp"
    assert message.external_message_id == wa_samples.MESSAGE_ID
    assert message.content_type == "text"
    assert message.body == "Is the 10:30 slot on Friday still free?"
    assert message.sent_at == datetime(2026, 1, 1, 10, 4, 5, tzinfo=UTC)
    assert message.sender.external_type == "whatsapp"
    assert message.sender.external_id == "447911123456"
    assert message.sender.name == "Priya Natarajan"
    assert message.sender.metadata == {"wa_id": "447911123456"}
    assert message.business.external_type == "whatsapp"
    assert message.business.external_id == "12025550143"
    assert message.business.metadata == {
        "phone_number_id": "301234567890123",
        "waba_id": "209876543210987",
    }
    assert message.conversation.kind == "direct"
    assert message.conversation.external_id is None
    assert message.metadata["raw"]["id"] == wa_samples.MESSAGE_ID
    assert message.metadata["provider_type"] == "text"


def test_reply_keeps_the_quoted_wamid_and_its_sender(raw: Raw) -> None:
    message = message_fixture(raw, "text_reply")
    assert message.metadata["reply_to"] == {"external_message_id": OUR_WAMID, "from": "12025550143"}


def test_forwarded_flags_are_kept() -> None:
    body = wa_samples.single(
        wa_samples.message_item(
            "text", {"body": "fwd"}, context={"forwarded": True, "frequently_forwarded": True}
        )
    )
    message = only_message(whatsapp.parse(body))
    assert message.metadata["forwarded"] is True
    assert message.metadata["frequently_forwarded"] is True
    assert "reply_to" not in message.metadata


def test_group_message_points_at_the_group_conversation(raw: Raw) -> None:
    message = message_fixture(raw, "group_text")
    assert message.conversation.kind == "group"
    assert message.conversation.external_id == wa_samples.GROUP_ID
    assert message.conversation.group_name is None
    assert message.sender.external_id == "447911123456"


def test_bsuid_only_sender_is_identified_by_business_scoped_id(raw: Raw) -> None:
    message = message_fixture(raw, "bsuid_text")
    assert message.sender.external_type == "whatsapp_bsuid"
    assert message.sender.external_id == "GB.8841203957716620"
    assert message.sender.name == "Priya"
    assert message.sender.metadata == {"user_id": "GB.8841203957716620", "username": "priya.n"}


@pytest.mark.parametrize(
    ("name", "wa_id"),
    [
        ("text_br_without_ninth_digit", "551187654321"),
        ("text_br_with_ninth_digit", "5511987654321"),
        ("text_mx_521", "5215512345678"),
        ("text_mx_without_1", "525512345678"),
    ],
)
def test_wa_id_is_kept_exactly_as_meta_sent_it(raw: Raw, name: str, wa_id: str) -> None:
    message = message_fixture(raw, name)
    assert message.sender.external_id == wa_id
    assert message.sender.metadata["wa_id"] == wa_id


def test_image_with_caption_keeps_media_id_mime_sha_and_caption(raw: Raw) -> None:
    message = message_fixture(raw, "image")
    assert message.content_type == "image"
    assert message.body == "my referral letter"
    assert message.metadata["caption"] == "my referral letter"
    assert message.metadata["media"] == [
        {
            "kind": "image",
            "id": "1398472210553621",
            "mime_type": "image/jpeg",
            "sha256": "t0mTq0H5Yl2X8Kc3o1bR9vA7dE4fG6hJ2kL5mN8pQ1s=",
            "caption": "my referral letter",
        }
    ]


@pytest.mark.parametrize(
    ("name", "content_type", "body", "media_fields"),
    [
        ("video", "video", None, {"id": "1406281951234567", "mime_type": "video/mp4"}),
        ("audio_voice", "audio", None, {"voice": True, "mime_type": "audio/ogg; codecs=opus"}),
        (
            "document",
            "file",
            "the referral",
            {"filename": "referral.pdf", "mime_type": "application/pdf"},
        ),
        ("sticker", "image", None, {"mime_type": "image/webp", "animated": False}),
    ],
)
def test_media_types_map_to_kobliat_content_types(
    raw: Raw, name: str, content_type: str, body: str | None, media_fields: dict[str, Any]
) -> None:
    message = message_fixture(raw, name)
    assert message.content_type == content_type
    assert message.body == body
    (media,) = message.metadata["media"]
    assert media.items() >= media_fields.items()
    assert media["sha256"]


def test_location_keeps_coordinates_name_address_and_url(raw: Raw) -> None:
    message = message_fixture(raw, "location")
    assert message.content_type == "location"
    assert message.body == "Clinic B — 12 Example Street, London"
    assert message.metadata["location"] == {
        "latitude": 51.5203,
        "longitude": -0.0977,
        "name": "Clinic B",
        "address": "12 Example Street, London",
        "url": "https://clinic-b.example.com",
    }


def test_contacts_message_lists_the_cards_and_their_names(raw: Raw) -> None:
    message = message_fixture(raw, "contacts")
    assert message.content_type == "contacts"
    assert message.body == "Ravi Natarajan"
    (card,) = message.metadata["contacts"]
    assert card["phones"][0]["wa_id"] == "447911654321"


def test_several_contact_cards_join_their_names() -> None:
    body = wa.contacts(cards=(("Ravi Natarajan", "447911654321"), ("Mina Rao", "447911000111")))
    message = only_message(whatsapp.parse(body))
    assert message.body == "Ravi Natarajan, Mina Rao"
    assert len(message.metadata["contacts"]) == 2


@pytest.mark.parametrize(
    ("name", "body", "interactive"),
    [
        (
            "button_reply",
            "Fri 10:30",
            {"type": "button_reply", "id": "slot_fri_1030", "title": "Fri 10:30"},
        ),
        (
            "list_reply",
            "Fri 10:30",
            {
                "type": "list_reply",
                "id": "slot_fri_1030",
                "title": "Fri 10:30",
                "description": "Clinic B",
            },
        ),
        (
            "button",
            "Confirm",
            {"type": "button", "payload": "CONFIRM_APPOINTMENT", "title": "Confirm"},
        ),
    ],
)
def test_replies_to_buttons_and_lists_are_interactive(
    raw: Raw, name: str, body: str, interactive: dict[str, str]
) -> None:
    message = message_fixture(raw, name)
    assert message.content_type == "interactive"
    assert message.body == body
    assert message.metadata["interactive"] == interactive
    assert message.metadata["reply_to"]["external_message_id"] == OUR_WAMID


def test_flow_reply_keeps_response_json_raw_and_decoded(raw: Raw) -> None:
    message = message_fixture(raw, "nfm_reply")
    assert message.content_type == "interactive"
    assert message.body == "Sent"
    interactive = message.metadata["interactive"]
    assert interactive["type"] == "nfm_reply"
    assert json.loads(interactive["response_json"]) == {"flow_token": "tok-77", "slot": "fri_1030"}
    assert interactive["response"] == {"flow_token": "tok-77", "slot": "fri_1030"}


def test_reaction_carries_emoji_and_target_message(raw: Raw) -> None:
    message = message_fixture(raw, "reaction")
    assert message.content_type == "reaction"
    assert message.body == "👍"
    assert message.metadata["reaction"] == {"message_id": OUR_WAMID, "emoji": "👍"}


def test_reaction_removal_has_an_empty_emoji(raw: Raw) -> None:
    message = message_fixture(raw, "reaction_removed")
    assert message.content_type == "reaction"
    assert message.body == ""
    assert message.metadata["reaction"] == {"message_id": OUR_WAMID, "emoji": ""}


def test_order_is_structured_with_its_items(raw: Raw) -> None:
    message = message_fixture(raw, "order")
    assert message.content_type == "structured"
    assert message.body == "Please deliver after 5pm"
    assert message.metadata["order"]["catalog_id"] == "880012345678901"
    assert len(message.metadata["order"]["product_items"]) == 2


def test_system_message_is_structured_and_needs_no_contacts(raw: Raw) -> None:
    message = message_fixture(raw, "system")
    assert message.content_type == "structured"
    assert message.body == "User 447911123456 changed from 447911123456 to 447911999888"
    assert message.metadata["system"]["type"] == "user_changed_number"
    assert message.sender.external_id == "447911123456"
    assert message.sender.name is None


@pytest.mark.parametrize("name", ["unsupported", "unknown_type"])
def test_unsupported_and_unknown_types_are_kept_as_unknown(raw: Raw, name: str) -> None:
    message = message_fixture(raw, name)
    assert message.content_type == "unknown"
    assert message.body is None
    assert message.metadata["errors"][0]["code"] == 131051
    assert message.metadata["raw"]["type"] == message.metadata["provider_type"]


def test_batch_yields_every_message_and_status_of_every_entry_in_order(raw: Raw) -> None:
    parsed = whatsapp.parse(raw("whatsapp", "batch"))
    summary = [
        (type(item).__name__, getattr(item, "external_message_id", None)) for item in parsed.items
    ]
    assert summary == [
        ("InboundMessage", "wamid.batch-1"),
        ("InboundMessage", "wamid.batch-2"),
        ("InboundMessage", "wamid.batch-3"),
        ("StatusUpdate", "wamid.ours-1"),
        ("InboundMessage", "wamid.batch-4"),
        ("InboundMessage", "wamid.batch-5"),
        ("StatusUpdate", "wamid.ours-2"),
        ("StatusUpdate", "wamid.ours-2"),
    ]
    second_sender = parsed.items[1]
    assert isinstance(second_sender, InboundMessage)
    assert second_sender.sender.name == "Joana Silva"
    last_message = parsed.items[5]
    assert isinstance(last_message, InboundMessage)
    assert last_message.content_type == "location"
    assert last_message.business.external_id == "12025550199"
    assert last_message.business.metadata["waba_id"] == "209876543210999"
    assert last_message.sender.external_id == wa_samples.MX_WA_ID_WITH_1


@pytest.mark.parametrize(
    ("name", "status", "provider_status"),
    [
        ("status_sent", "sent", "sent"),
        ("status_delivered", "delivered", "delivered"),
        ("status_read", "read", "read"),
        ("status_played", "read", "played"),
    ],
)
def test_statuses_map_to_kobliat_statuses(
    raw: Raw, name: str, status: str, provider_status: str
) -> None:
    update = only_status(whatsapp.parse(raw("whatsapp", name)))
    assert update.channel == "whatsapp"
    assert update.external_message_id == OUR_WAMID
    assert update.status == status
    assert update.occurred_at == datetime(2026, 1, 1, 10, 4, 5, tzinfo=UTC)
    assert update.error is None
    assert update.metadata["provider_status"] == provider_status
    assert update.metadata["recipient_id"] == "447911123456"
    assert update.metadata["business_phone_number_id"] == "301234567890123"


def test_sent_status_keeps_conversation_and_pricing(raw: Raw) -> None:
    update = only_status(whatsapp.parse(raw("whatsapp", "status_sent")))
    assert update.metadata["pricing"]["pricing_model"] == "PMP"
    assert update.metadata["conversation"]["origin"] == {"type": "service"}


def test_failed_status_carries_the_first_error(raw: Raw) -> None:
    update = only_status(whatsapp.parse(raw("whatsapp", "status_failed")))
    assert update.status == "failed"
    assert update.error is not None
    assert update.error["code"] == 131047
    assert update.error["title"] == "Re-engagement message"
    assert len(update.metadata["errors"]) == 1


def test_unknown_status_name_is_ignored_not_rejected() -> None:
    parsed = whatsapp.parse(wa_samples.status(status="deleted"))
    (item,) = parsed.items
    assert isinstance(item, IgnoredItem)
    assert item.kind == "whatsapp.status.deleted"


def test_other_fields_are_ignored_items(raw: Raw) -> None:
    (item,) = whatsapp.parse(raw("whatsapp", "account_update")).items
    assert isinstance(item, IgnoredItem)
    assert item.kind == "whatsapp.account_update"
    assert item.detail["waba_id"] == "209876543210987"
    assert item.detail["value"]["event"] == "VERIFIED_ACCOUNT"


def test_value_level_errors_become_an_ignored_item() -> None:
    change = wa_samples.messages_change()
    change["value"]["errors"] = [{"code": 131000, "title": "Something went wrong"}]
    (item,) = whatsapp.parse(wa_samples.envelope([wa_samples.entry([change])])).items
    assert isinstance(item, IgnoredItem)
    assert item.kind == "whatsapp.errors"
    assert item.detail["errors"][0]["code"] == 131000


def test_another_object_than_a_waba_is_ignored() -> None:
    parsed = whatsapp.parse(b'{"object": "page", "entry": []}')
    (item,) = parsed.items
    assert isinstance(item, IgnoredItem)
    assert item.kind == "whatsapp.unknown_object"


def test_empty_entry_list_parses_to_no_items() -> None:
    parsed = whatsapp.parse(wa_samples.envelope([]))
    assert parsed.items == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "must be a JSON object, got an array"),
        (b'{"object": "whatsapp_business_account"}', "entry is missing"),
        (b'{"object": "whatsapp_business_account", "entry": {}}', "entry must be an array"),
        (b'{"object": "whatsapp_business_account", "entry": [1]}', "entry[0] must be an object"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1"}]}',
            "entry[0].changes is missing",
        ),
        (b'{"entry": []}', "object is missing"),
    ],
)
def test_malformed_envelopes_raise_payload_error_naming_the_problem(
    body: bytes, message: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)):
        whatsapp.parse(body)


def test_missing_metadata_names_its_path() -> None:
    change = wa_samples.messages_change()
    other = wa_samples.messages_change()
    del other["value"]["metadata"]
    body = wa_samples.envelope([wa_samples.entry([change, other])])
    with pytest.raises(
        PayloadError, match=re.escape("entry[0].changes[1].value.metadata is missing")
    ):
        whatsapp.parse(body)


def test_message_without_timestamp_or_sender_is_rejected() -> None:
    item = wa_samples.message_item("text", {"body": "x"})
    del item["timestamp"]
    with pytest.raises(PayloadError, match=r"messages\[0\]\.timestamp"):
        whatsapp.parse(wa_samples.single(item))
    item = wa_samples.message_item("text", {"body": "x"})
    del item["from"]
    with pytest.raises(PayloadError, match="neither 'from' nor 'from_user_id'"):
        whatsapp.parse(wa_samples.single(item))


def test_content_of_an_unexpected_shape_is_tolerated() -> None:
    item = wa_samples.message_item("image", "not an object")
    message = only_message(whatsapp.parse(wa_samples.single(item)))
    assert message.content_type == "image"
    assert message.body is None
    assert message.metadata["media"] == [{"kind": "image"}]


# -- signatures and handshake ---------------------------------------------------------------

SECRET = "3f1c9b7e2a5d4c6b8e0f1a2b3c4d5e6f"


def test_signature_of_the_exact_body_is_accepted(raw: Raw) -> None:
    body = raw("whatsapp", "text")
    header = whatsapp.sign(body, SECRET)
    assert header.startswith("sha256=")
    assert whatsapp.verify_signature(body, header, SECRET)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, header: (body + b" ", header), id="tampered-body"),
        pytest.param(lambda body, header: (body, whatsapp.sign(body, "other")), id="wrong-secret"),
        pytest.param(lambda body, header: (body, None), id="missing-header"),
        pytest.param(lambda body, header: (body, ""), id="empty-header"),
        pytest.param(lambda body, header: (body, header.removeprefix("sha256=")), id="no-prefix"),
        pytest.param(
            lambda body, header: (body, "sha1=" + header.removeprefix("sha256=")), id="sha1-prefix"
        ),
        pytest.param(lambda body, header: (body, header.upper()), id="uppercased"),
        pytest.param(lambda body, header: (body, header + "é"), id="non-ascii"),
    ],
)
def test_signature_rejects_anything_but_the_exact_hmac(
    raw: Raw, tamper: Callable[[bytes, str], tuple[bytes, str | None]]
) -> None:
    body = raw("whatsapp", "text")
    tampered_body, header = tamper(body, whatsapp.sign(body, SECRET))
    assert not whatsapp.verify_signature(tampered_body, header, SECRET)


def test_signature_check_refuses_when_no_secret_is_configured(raw: Raw) -> None:
    body = raw("whatsapp", "text")
    assert not whatsapp.verify_signature(body, whatsapp.sign(body, ""), "")


def test_handshake_echoes_the_challenge_for_our_token() -> None:
    assert whatsapp.verify_handshake("subscribe", "tok_3f9c2e", "872145390", "tok_3f9c2e") == (
        "872145390"
    )


@pytest.mark.parametrize(
    ("mode", "token", "challenge", "verify_token"),
    [
        ("subscribe", "wrong", "872145390", "tok_3f9c2e"),
        ("unsubscribe", "tok_3f9c2e", "872145390", "tok_3f9c2e"),
        (None, "tok_3f9c2e", "872145390", "tok_3f9c2e"),
        ("subscribe", None, "872145390", "tok_3f9c2e"),
        ("subscribe", "tok_3f9c2e", None, "tok_3f9c2e"),
        ("subscribe", "", "872145390", ""),
        ("subscribe", "tök", "872145390", "tok_3f9c2e"),
    ],
)
def test_handshake_refuses_anything_else(
    mode: str | None, token: str | None, challenge: str | None, verify_token: str
) -> None:
    assert whatsapp.verify_handshake(mode, token, challenge, verify_token) is None
