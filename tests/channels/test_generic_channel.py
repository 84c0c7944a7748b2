"""Generic channel: the documented JSON format parses strictly; Standard Webhooks signing holds."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from kobliat.channels import generic
from kobliat.channels.records import InboundMessage, PayloadError, StatusUpdate
from kobliat.channels.samples import generic as gen

Raw = Callable[[str, str], bytes]
SENT_AT = datetime(2026, 1, 1, 10, 4, 5, tzinfo=UTC)


def message_of(body: bytes) -> InboundMessage:
    (item,) = generic.parse(body, delivery_id="msg_delivery_1").items
    assert isinstance(item, InboundMessage)
    return item


def test_message_parses_to_a_direct_inbound_message(raw: Raw) -> None:
    parsed = generic.parse(raw("generic", "message"), delivery_id="msg_delivery_1")
    (message,) = parsed.items
    assert isinstance(message, InboundMessage)
    assert parsed.channel == "generic"
    assert parsed.delivery_key == "msg_delivery_1"
    assert message.channel == "generic"
    assert message.external_message_id == gen.MESSAGE_ID
    assert message.content_type == "text"
    assert message.body == "Hello, I'd like to book a cleaning."
    assert message.sent_at == SENT_AT
    assert (message.sender.external_type, message.sender.external_id) == (
        "email",
        "ana.souza@example.com",
    )
    assert message.sender.name == "Ana Souza"
    assert (message.business.external_type, message.business.external_id) == (
        "email",
        "support@clinic-b.example.com",
    )
    assert message.conversation.kind == "direct"
    assert message.metadata["raw"]["id"] == gen.MESSAGE_ID


def test_group_message_carries_group_id_name_and_avatar(raw: Raw) -> None:
    message = message_of(raw("generic", "group_message"))
    assert message.conversation.kind == "group"
    assert message.conversation.external_id == "team-frontdesk"
    assert message.conversation.group_name == "Front desk"
    assert message.conversation.group_avatar == "https://cdn.example.com/groups/frontdesk.png"


def test_multi_message_lists_the_other_parties(raw: Raw) -> None:
    message = message_of(raw("generic", "multi_message"))
    assert message.conversation.kind == "multi"
    assert message.conversation.external_id == "thread-8812"
    assert [
        (p.external_type, p.external_id, p.name) for p in message.conversation.other_parties
    ] == [
        ("email", "bruno@example.com", "Bruno"),
        ("phone", "+4915112345678", "Carla"),
    ]
    assert message.content_type == "image"
    assert message.metadata["attachments"][0]["mime"] == "image/png"


def test_status_parses_to_a_status_update(raw: Raw) -> None:
    (update,) = generic.parse(raw("generic", "status"), delivery_id="d").items
    assert isinstance(update, StatusUpdate)
    assert update.channel == "generic"
    assert update.external_message_id == "out_01JH4XB0A1B2C3D4E5F6"
    assert update.status == "delivered"
    assert update.occurred_at == SENT_AT + timedelta(seconds=5)
    assert update.error is None


def test_batch_yields_messages_then_statuses_in_order(raw: Raw) -> None:
    items = generic.parse(raw("generic", "batch"), delivery_id="d").items
    assert [
        (type(item).__name__, getattr(item, "external_message_id", None)) for item in items
    ] == [
        ("InboundMessage", "msg_batch_1"),
        ("InboundMessage", "msg_batch_2"),
        ("StatusUpdate", "out_batch_1"),
    ]
    failed = items[2]
    assert isinstance(failed, StatusUpdate)
    assert failed.status == "failed"
    assert failed.error == {"code": "mailbox_full", "message": "Recipient mailbox is full"}


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-01-01T10:04:05Z", SENT_AT),
        ("2026-01-01T12:04:05+02:00", SENT_AT),
        (1767261845, SENT_AT),
        (1767261845.5, SENT_AT + timedelta(milliseconds=500)),
        ("1767261845", SENT_AT),
    ],
)
def test_timestamp_may_be_iso_with_offset_or_unix_seconds(
    timestamp: Any, expected: datetime
) -> None:
    obj = gen.message_obj()
    obj["timestamp"] = timestamp
    assert message_of(json.dumps(obj).encode()).sent_at == expected


def mutated(change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = gen.message_obj()
    change(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.pop("id"), "id is missing"),
        (lambda o: o.update(id=5), "id must be a non-empty string, got a number"),
        (lambda o: o.pop("timestamp"), "timestamp is missing"),
        (lambda o: o.update(timestamp="2026-01-01T10:04:05"), "timestamp must carry a UTC offset"),
        (lambda o: o.update(timestamp="yesterday"), "timestamp must be ISO 8601"),
        (lambda o: o.update(timestamp=True), "timestamp must be unix seconds, got bool"),
        (lambda o: o.pop("from"), "from is missing"),
        (lambda o: o["from"].pop("type"), "from.type is missing"),
        (lambda o: o["to"].update(id=""), "to.id must be a non-empty string, got an empty string"),
        (lambda o: o.update(content_type="gif"), "content_type must be one of"),
        (lambda o: o.update(body=None), "body is required for a text message"),
        (lambda o: o.update(body=["x"]), "body must be a string, got an array"),
        (lambda o: o.update(metadata=[]), "metadata must be an object"),
        (
            lambda o: o.update(conten_type="text"),
            "the payload has unknown member(s) ['conten_type']",
        ),
        (lambda o: o["from"].update(nick="a"), "from has unknown member(s) ['nick']"),
        (lambda o: o.update(conversation={"type": "group"}), "conversation.id is missing"),
        (lambda o: o.update(conversation={"type": "multi"}), "conversation.participants must list"),
        (
            lambda o: o.update(conversation={"type": "room"}),
            "conversation.type must be direct, group",
        ),
        (
            lambda o: o.update(conversation={"type": "direct", "id": "x"}),
            "conversation of type direct takes no other member",
        ),
        (
            lambda o: o.update(conversation={"type": "multi", "participants": [{"type": "email"}]}),
            "conversation.participants[0].id is missing",
        ),
    ],
)
def test_invalid_messages_are_rejected_naming_the_field(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)):
        generic.parse(mutated(change), delivery_id="d")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not valid JSON"),
        (b'"hi"', "must be a JSON object"),
        (b'{"messages": {}}', "messages must be an array"),
        (b'{"messages": [], "extra": 1}', "unknown member(s) ['extra']"),
        (b'{"messages": [1]}', "messages[0] must be an object"),
        (
            b'{"status": {"message_id": "m", "status": "bounced", "timestamp": 1}}',
            "status.status must be one of",
        ),
        (b'{"status": {"status": "read", "timestamp": 1}}', "status.message_id is missing"),
        (
            b'{"statuses": [{"message_id": "m", "status": "read"}]}',
            "statuses[0].timestamp is missing",
        ),
    ],
)
def test_invalid_envelopes_are_rejected(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(message)):
        generic.parse(body, delivery_id="d")


def test_media_message_may_have_no_body() -> None:
    message = message_of(
        gen.message(content_type="image", body=None, metadata={"url": "https://x"})
    )
    assert message.content_type == "image"
    assert message.body is None


# -- Standard Webhooks signature ------------------------------------------------------------

SECRET = gen.SECRET
NOW = datetime(2026, 1, 1, 10, 4, 5, tzinfo=UTC)


def signed(body: bytes, *, at: datetime = NOW, secret: str = SECRET) -> dict[str, str]:
    return generic.signed_headers(body, secret, msg_id="msg_delivery_1", timestamp=at)


def test_signature_made_by_the_reference_library_is_accepted(raw: Raw) -> None:
    body = raw("generic", "message")
    signature = Webhook(SECRET).sign("msg_delivery_1", NOW, body.decode())
    headers = {
        "webhook-id": "msg_delivery_1",
        "webhook-timestamp": str(int(NOW.timestamp())),
        "webhook-signature": signature,
    }
    assert generic.verify_signature(body, headers, SECRET, now=NOW)
    assert signed(body)["webhook-signature"] == signature


def test_header_names_are_case_insensitive(raw: Raw) -> None:
    body = raw("generic", "message")
    headers = {name.title(): value for name, value in signed(body).items()}
    assert generic.verify_signature(body, headers, SECRET, now=NOW)


def test_one_matching_signature_among_several_is_enough(raw: Raw) -> None:
    body = raw("generic", "message")
    headers = signed(body)
    old = generic.sign(body, "whsec_" + "b2xkLXNlY3JldA==", msg_id="msg_delivery_1", timestamp=NOW)
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert generic.verify_signature(body, headers, SECRET, now=NOW)


@pytest.mark.parametrize("skew", [timedelta(minutes=-4, seconds=-59), timedelta(minutes=4)])
def test_timestamps_within_five_minutes_are_accepted(raw: Raw, skew: timedelta) -> None:
    body = raw("generic", "message")
    assert generic.verify_signature(body, signed(body, at=NOW + skew), SECRET, now=NOW)


@pytest.mark.parametrize("skew", [timedelta(minutes=-5, seconds=-1), timedelta(minutes=6)])
def test_expired_or_future_timestamps_are_rejected(raw: Raw, skew: timedelta) -> None:
    body = raw("generic", "message")
    assert not generic.verify_signature(body, signed(body, at=NOW + skew), SECRET, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b, h: (b + b" ", h), id="tampered-body"),
        pytest.param(lambda b, h: (b, {**h, "webhook-id": "other"}), id="other-id"),
        pytest.param(
            lambda b, h: (b, {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}),
            id="other-timestamp",
        ),
        pytest.param(
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}),
            id="missing-signature",
        ),
        pytest.param(
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-id"}), id="missing-id"
        ),
        pytest.param(lambda b, h: (b, {**h, "webhook-timestamp": "soon"}), id="bad-timestamp"),
        pytest.param(lambda b, h: (b, {**h, "webhook-timestamp": "9" * 5000}), id="huge-timestamp"),
        pytest.param(
            lambda b, h: (
                b,
                {**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")},
            ),
            id="wrong-version",
        ),
        pytest.param(lambda b, h: (b, {**h, "webhook-signature": "garbage"}), id="garbage"),
        pytest.param(lambda b, h: (b"\xff\xfe", h), id="non-utf8-body"),
        pytest.param(
            lambda b, h: (b, {**h, "webhook-signature": h["webhook-signature"] + "é"}),
            id="non-ascii",
        ),
    ],
)
def test_tampered_or_incomplete_headers_are_rejected(
    raw: Raw, tamper: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]
) -> None:
    body = raw("generic", "message")
    tampered_body, headers = tamper(body, signed(body))
    assert not generic.verify_signature(tampered_body, headers, SECRET, now=NOW)


def test_wrong_secret_is_rejected(raw: Raw) -> None:
    body = raw("generic", "message")
    other = "whsec_" + "c29tZS1vdGhlci1zZWNyZXQtdmFsdWU="
    assert not generic.verify_signature(body, signed(body, secret=other), SECRET, now=NOW)


def test_no_configured_secret_accepts_nothing(raw: Raw) -> None:
    body = raw("generic", "message")
    assert not generic.verify_signature(body, signed(body), "", now=NOW)


def test_without_now_the_current_clock_is_used(raw: Raw) -> None:
    body = raw("generic", "message")
    assert generic.verify_signature(body, signed(body, at=datetime.now(UTC)), SECRET)
    assert not generic.verify_signature(body, signed(body), SECRET)
