"""Twilio adapter: SMS, MMS and WhatsApp forms and status callbacks; the signature scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kobliat.channels import twilio
from kobliat.channels.records import (
    IgnoredItem,
    InboundMessage,
    ParsedWebhook,
    PayloadError,
    StatusUpdate,
)
from kobliat.channels.samples import twilio as tw

Form = Callable[[str], list[tuple[str, str]]]
RECEIVED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def parse(pairs: list[tuple[str, str]]) -> ParsedWebhook:
    return twilio.parse(pairs, received_at=RECEIVED_AT)


def message_fixture(form: Form, name: str) -> InboundMessage:
    (item,) = parse(form(name)).items
    assert isinstance(item, InboundMessage)
    return item


def status_fixture(form: Form, name: str) -> StatusUpdate:
    (item,) = parse(form(name)).items
    assert isinstance(item, StatusUpdate)
    return item


def test_sms_becomes_inbound_text_between_two_sms_parties(form: Form) -> None:
    parsed = parse(form("sms"))
    (message,) = parsed.items
    assert isinstance(message, InboundMessage)

    assert parsed.channel == "sms"
    assert parsed.delivery_key == f"{tw.MESSAGE_SID}:inbound"
    assert message.channel == "sms"
    assert message.external_message_id == tw.MESSAGE_SID
    assert message.content_type == "text"
    assert message.body == "Can I move my appointment to Friday?"
    assert message.sent_at == RECEIVED_AT
    assert (message.sender.external_type, message.sender.external_id) == ("sms", "+447400123456")
    assert message.sender.name is None
    assert (message.business.external_type, message.business.external_id) == (
        "sms",
        "+12015550123",
    )
    assert message.business.metadata == {
        "account_sid": tw.ACCOUNT_SID,
        "messaging_service_sid": tw.MESSAGING_SERVICE_SID,
    }
    assert message.conversation.kind == "direct"
    assert message.metadata["provider"] == "twilio"
    assert message.metadata["account_sid"] == tw.ACCOUNT_SID
    assert message.metadata["messaging_service_sid"] == tw.MESSAGING_SERVICE_SID
    assert message.metadata["num_segments"] == "1"
    assert message.metadata["geo"]["from_city"] == "LONDON"
    assert message.metadata["geo"]["to_state"] == "NJ"
    assert message.metadata["raw"]["SmsStatus"] == "received"


def test_mms_lists_every_attachment_and_types_by_the_first(form: Form) -> None:
    message = message_fixture(form, "mms")
    assert message.content_type == "image"
    assert message.body == "Front and back of my insurance card"
    media = message.metadata["media"]
    assert [item["content_type"] for item in media] == ["image/jpeg", "image/png"]
    assert media[0]["url"].endswith("/Media/ME334af13995e760c76c248a4d6619e728")
    assert media[1]["url"].endswith("/Media/ME9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e")


@pytest.mark.parametrize(
    ("mime", "content_type"),
    [
        ("audio/ogg", "audio"),
        ("video/mp4", "video"),
        ("application/pdf", "file"),
        ("text/vcard", "file"),
    ],
)
def test_media_content_type_follows_the_mime_family(mime: str, content_type: str) -> None:
    (message,) = parse(tw.whatsapp_media(content_type=mime)).items
    assert isinstance(message, InboundMessage)
    assert message.content_type == content_type


def test_whatsapp_through_twilio_strips_the_prefix_and_uses_profile_name(form: Form) -> None:
    message = message_fixture(form, "whatsapp_text")
    assert message.channel == "whatsapp"
    assert (message.sender.external_type, message.sender.external_id) == (
        "whatsapp",
        "+5511987654321",
    )
    assert message.sender.name == "Joana"
    assert message.sender.metadata == {"wa_id": "5511987654321"}
    assert (message.business.external_type, message.business.external_id) == (
        "whatsapp",
        "+14155238886",
    )
    assert message.body == "Bom dia, posso remarcar?"
    assert message.metadata["profile_name"] == "Joana"
    assert message.metadata["wa_id"] == "5511987654321"


def test_whatsapp_media_through_twilio(form: Form) -> None:
    message = message_fixture(form, "whatsapp_media")
    assert message.channel == "whatsapp"
    assert message.content_type == "image"
    assert message.body == "Segue a foto do pedido"
    assert len(message.metadata["media"]) == 1


def test_whatsapp_location_through_twilio(form: Form) -> None:
    message = message_fixture(form, "whatsapp_location")
    assert message.content_type == "location"
    assert message.body == "Clínica Paulista"
    assert message.metadata["location"] == {
        "latitude": -23.5613,
        "longitude": -46.6565,
        "address": "Av. Paulista, 1000, São Paulo",
        "name": "Clínica Paulista",
    }


def test_template_button_through_twilio_is_interactive_with_reply_context(form: Form) -> None:
    message = message_fixture(form, "whatsapp_button")
    assert message.content_type == "interactive"
    assert message.body == "Confirmar"
    assert message.metadata["interactive"] == {
        "type": "button",
        "payload": "CONFIRM_APPOINTMENT",
        "title": "Confirmar",
    }
    assert message.metadata["reply_to"] == {
        "external_message_id": "SMf0e1d2c3b4a5968778695a4b3c2d1e0f",
        "from": "whatsapp:+14155238886",
    }


def test_whatsapp_sender_known_only_by_bsuid() -> None:
    pairs = tw.whatsapp_text(sender="whatsapp:GB.8841203957716620")
    (message,) = parse(pairs).items
    assert isinstance(message, InboundMessage)
    assert message.sender.external_type == "whatsapp_bsuid"
    assert message.sender.external_id == "GB.8841203957716620"


@pytest.mark.parametrize(
    ("name", "status", "channel"),
    [
        ("status_sent", "sent", "sms"),
        ("status_delivered", "delivered", "sms"),
        ("status_read", "read", "whatsapp"),
    ],
)
def test_status_callbacks_map_to_statuses(form: Form, name: str, status: str, channel: str) -> None:
    parsed = parse(form(name))
    (update,) = parsed.items
    assert isinstance(update, StatusUpdate)
    assert parsed.delivery_key == f"SMa41c09e7d25b4f7f9d0e6b1c3a8f2e55:{status}"
    assert parsed.channel == channel
    assert update.channel == channel
    assert update.external_message_id == "SMa41c09e7d25b4f7f9d0e6b1c3a8f2e55"
    assert update.status == status
    assert update.occurred_at == RECEIVED_AT
    assert update.error is None
    assert update.metadata["provider_status"] == status
    assert update.metadata["account_sid"] == tw.ACCOUNT_SID


def test_undelivered_is_a_failure_with_code_and_message(form: Form) -> None:
    update = status_fixture(form, "status_undelivered")
    assert update.status == "failed"
    assert update.error == {"code": 30003, "message": "Unreachable destination handset"}
    assert update.metadata["provider_status"] == "undelivered"


def test_failed_status_keeps_a_non_numeric_error_code_as_text() -> None:
    (update,) = parse(tw.status(status="failed", error_code="E1")).items
    assert isinstance(update, StatusUpdate)
    assert update.error == {"code": "E1"}


@pytest.mark.parametrize("status", ["queued", "sending", "accepted", "canceled", "receiving"])
def test_intermediate_statuses_are_ignored(status: str) -> None:
    parsed = parse(tw.status(status=status))
    (item,) = parsed.items
    assert isinstance(item, IgnoredItem)
    assert item.kind == f"twilio.status.{status}"
    assert parsed.delivery_key.endswith(f":{status}")


def test_queued_fixture_is_ignored(form: Form) -> None:
    (item,) = parse(form("status_queued")).items
    assert isinstance(item, IgnoredItem)
    assert item.detail["message_sid"] == "SMa41c09e7d25b4f7f9d0e6b1c3a8f2e55"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], "MessageSid is missing"),
        ([("MessageSid", "SM1"), ("Body", "hi"), ("To", "+1")], "From is missing"),
        ([("MessageSid", "SM1"), ("Body", "hi"), ("From", "+1")], "To is missing"),
        ([("MessageSid", "SM1"), ("From", "+1")], "neither a message"),
        (
            [("MessageSid", "SM1"), ("From", "+1"), ("To", "+2"), ("NumMedia", "x")],
            "NumMedia must be a small whole number",
        ),
        (
            [("MessageSid", "SM1"), ("From", "+1"), ("To", "+2"), ("NumMedia", "1")],
            "MediaUrl0 is missing",
        ),
        (
            [
                ("MessageSid", "SM1"),
                ("From", "+1"),
                ("To", "+2"),
                ("Body", ""),
                ("Latitude", "north"),
                ("Longitude", "1"),
            ],
            "Latitude must be a number",
        ),
    ],
)
def test_malformed_forms_raise_payload_error(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse(pairs)


# -- signature ------------------------------------------------------------------------------

Tampered = tuple[list[tuple[str, str]], str, str | None]
TOKEN = "12345678901234567890123456789012"
URL = "https://hooks.example.com/webhooks/twilio?tenant=7"


def reference_signature(url: str, params: dict[str, list[str]], token: str) -> str:
    """The algorithm exactly as channels.md §3.3 writes it."""
    text = url + "".join(k + v for k in sorted(params) for v in sorted(params[k]))
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_signature_matches_the_documented_algorithm(form: Form) -> None:
    pairs = form("sms")
    expected = reference_signature(URL, {k: [v] for k, v in pairs}, TOKEN)
    assert twilio.sign(URL, pairs, TOKEN) == expected


def test_signature_sorts_repeated_names_by_value() -> None:
    pairs = [("b", "2"), ("a", "z"), ("a", "y")]
    expected = reference_signature(URL, {"a": ["z", "y"], "b": ["2"]}, TOKEN)
    assert twilio.sign(URL, pairs, TOKEN) == expected
    assert twilio.verify_signature(URL, pairs, expected, TOKEN)


def test_good_signature_is_accepted(form: Form) -> None:
    pairs = form("whatsapp_text")
    assert twilio.verify_signature(URL, pairs, twilio.sign(URL, pairs, TOKEN), TOKEN)


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        (
            "https://hooks.example.com:443/webhooks/twilio",
            "https://hooks.example.com/webhooks/twilio",
        ),
        (
            "https://hooks.example.com/webhooks/twilio",
            "https://hooks.example.com:443/webhooks/twilio",
        ),
        ("http://hooks.example.com:80/tw?x=1", "http://hooks.example.com/tw?x=1"),
        ("https://hooks.example.com/tw", "https://hooks.example.com:8443/tw"),
    ],
)
def test_signature_is_accepted_with_or_without_the_port(
    form: Form, signed_url: str, received_url: str
) -> None:
    pairs = form("sms")
    assert twilio.verify_signature(
        received_url, pairs, twilio.sign(signed_url, pairs, TOKEN), TOKEN
    )


def test_signature_for_another_non_default_port_is_rejected(form: Form) -> None:
    pairs = form("sms")
    header = twilio.sign("https://hooks.example.com:8443/tw", pairs, TOKEN)
    assert not twilio.verify_signature("https://hooks.example.com:9443/tw", pairs, header, TOKEN)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda pairs, url, header: ([*pairs, ("Extra", "1")], url, header), id="added-field"
        ),
        pytest.param(
            lambda pairs, url, header: (
                [(k, v + "!") if k == "Body" else (k, v) for k, v in pairs],
                url,
                header,
            ),
            id="changed-body",
        ),
        pytest.param(lambda pairs, url, header: (pairs, url + "&x=1", header), id="other-url"),
        pytest.param(lambda pairs, url, header: (pairs, url, None), id="missing-header"),
        pytest.param(lambda pairs, url, header: (pairs, url, ""), id="empty-header"),
        pytest.param(lambda pairs, url, header: (pairs, url, header + "é"), id="non-ascii"),
        pytest.param(
            lambda pairs, url, header: (pairs, url, twilio.sign(url, pairs, "other-token")),
            id="wrong-token",
        ),
    ],
)
def test_signature_rejects_tampering(form: Form, tamper: Callable[..., Tampered]) -> None:
    pairs = form("sms")
    tampered_pairs, url, header = tamper(pairs, URL, twilio.sign(URL, pairs, TOKEN))
    assert not twilio.verify_signature(url, tampered_pairs, header, TOKEN)


def test_signature_check_refuses_when_no_token_is_configured(form: Form) -> None:
    pairs = form("sms")
    assert not twilio.verify_signature(URL, pairs, twilio.sign(URL, pairs, ""), "")


def test_signature_check_survives_a_malformed_url(form: Form) -> None:
    pairs = form("sms")
    url = "https://hooks.example.com:notaport/tw"
    assert twilio.verify_signature(url, pairs, twilio.sign(url, pairs, TOKEN), TOKEN)


def test_an_empty_message_status_field_does_not_hide_an_inbound_sms() -> None:
    (item,) = parse([*tw.sms(body="still a message"), ("MessageStatus", "")]).items

    assert isinstance(item, InboundMessage)
    assert item.body == "still a message"
