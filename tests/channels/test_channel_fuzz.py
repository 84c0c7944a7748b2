"""Random and mutated payloads: every parser returns records or raises PayloadError, only."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import InboundMessage, ParsedWebhook, PayloadError, StatusUpdate
from kobliat.channels.samples.catalog import CATALOG

RECEIVED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys the parsers look for, so random objects hit real branches, not only unknown keys.
KEYS = sorted(
    {
        "object",
        "entry",
        "id",
        "changes",
        "field",
        "value",
        "metadata",
        "messages",
        "statuses",
        "contacts",
        "errors",
        "from",
        "from_user_id",
        "timestamp",
        "type",
        "text",
        "body",
        "image",
        "interactive",
        "reaction",
        "context",
        "group_id",
        "status",
        "profile",
        "wa_id",
        "update_id",
        "message",
        "edited_message",
        "callback_query",
        "chat",
        "date",
        "message_id",
        "photo",
        "caption",
        "reply_to_message",
        "sender_chat",
        "to",
        "conversation",
        "content_type",
        "participants",
        "name",
        "phone_number_id",
        "display_phone_number",
    }
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["text", "image", "messages", "private", "group", "1767261845", "sent"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)

JsonParser = Callable[[bytes], ParsedWebhook]
JSON_PARSERS: dict[str, JsonParser] = {
    "whatsapp": whatsapp.parse,
    "telegram": lambda body: telegram.parse(body, bot_id="1", received_at=RECEIVED_AT),
    "generic": lambda body: generic.parse(body, delivery_id="d"),
}


def assert_parses_or_rejects(parse: Callable[[], ParsedWebhook]) -> None:
    """The only acceptable outcomes: well-formed records, or a PayloadError with a message."""
    try:
        parsed = parse()
    except PayloadError as error:
        assert str(error)
        return
    assert isinstance(parsed, ParsedWebhook)
    assert parsed.delivery_key
    for item in parsed.items:
        # Metadata is stored as JSON: it must serialise.
        json.dumps(getattr(item, "metadata", None) or getattr(item, "detail", None))
        if isinstance(item, InboundMessage):
            assert item.sent_at.tzinfo is not None
            assert item.external_message_id
            assert isinstance(item.sender.external_id, str) and item.sender.external_id
        if isinstance(item, StatusUpdate):
            assert item.occurred_at.tzinfo is not None


@FUZZ
@given(channel=st.sampled_from(sorted(JSON_PARSERS)), document=json_values)
def test_random_json_documents_are_parsed_or_rejected(channel: str, document: Any) -> None:
    body = json.dumps(document).encode()
    assert_parses_or_rejects(lambda: JSON_PARSERS[channel](body))


@FUZZ
@given(channel=st.sampled_from(sorted(JSON_PARSERS)), body=st.binary(max_size=64))
def test_random_bytes_are_parsed_or_rejected(channel: str, body: bytes) -> None:
    assert_parses_or_rejects(lambda: JSON_PARSERS[channel](body))


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node inside a decoded JSON document, the root excluded."""
    found: list[tuple[Any, ...]] = []
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any, *, delete: bool) -> Any:
    """A copy of the document with the node at `path` replaced by `value`, or deleted."""
    copy = json.loads(json.dumps(document))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


JSON_SAMPLES = [
    (channel, name) for channel in sorted(JSON_PARSERS) for name in sorted(CATALOG[channel])
]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=st.sampled_from(JSON_SAMPLES), data=st.data())
def test_valid_payloads_with_one_node_changed_are_parsed_or_rejected(
    sample: tuple[str, str], data: st.DataObject
) -> None:
    channel, name = sample
    built = CATALOG[channel][name]()
    assert isinstance(built, bytes)
    document = json.loads(built)
    path = data.draw(st.sampled_from(paths(document)))
    changed = replaced(document, path, data.draw(json_values), delete=data.draw(st.booleans()))
    body = json.dumps(changed).encode()
    assert_parses_or_rejects(lambda: JSON_PARSERS[channel](body))


FORM_NAMES = [
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MediaUrl1",
    "Latitude",
    "Longitude",
    "ButtonText",
    "ButtonPayload",
    "ErrorCode",
    "ErrorMessage",
    "ProfileName",
    "WaId",
    "OriginalRepliedMessageSid",
    "FromCity",
    "ReferralBody",
]
form_values = st.text(max_size=12) | st.sampled_from(
    [
        "whatsapp:+15550001111",
        "+15550001111",
        "received",
        "sent",
        "undelivered",
        "2",
        "1",
        "0",
        "image/jpeg",
        "-23.5",
        "30003",
        "whatsapp:GB.123",
    ]
)
form_pairs = st.lists(
    st.tuples(st.sampled_from(FORM_NAMES) | st.text(max_size=6), form_values), max_size=14
)


@FUZZ
@given(pairs=form_pairs)
def test_random_twilio_forms_are_parsed_or_rejected(pairs: list[tuple[str, str]]) -> None:
    assert_parses_or_rejects(lambda: twilio.parse(pairs, received_at=RECEIVED_AT))


@FUZZ
@given(name=st.sampled_from(sorted(CATALOG["twilio"])), data=st.data())
def test_twilio_fixture_forms_with_one_field_changed_are_parsed_or_rejected(
    name: str, data: st.DataObject
) -> None:
    pairs = CATALOG["twilio"][name]()
    assert isinstance(pairs, list)
    index = data.draw(st.integers(min_value=0, max_value=len(pairs) - 1))
    changed = list(pairs)
    if data.draw(st.booleans()):
        del changed[index]
    else:
        changed[index] = (pairs[index][0], data.draw(form_values))
    assert_parses_or_rejects(lambda: twilio.parse(changed, received_at=RECEIVED_AT))


header_text = st.none() | st.text(max_size=80)


@FUZZ
@given(body=st.binary(max_size=40), header=header_text, secret=st.text(max_size=20))
def test_signature_checks_never_raise_on_arbitrary_headers(
    body: bytes, header: str | None, secret: str
) -> None:
    assert whatsapp.verify_signature(body, header, secret) in (True, False)
    assert telegram.verify_signature(header, secret) in (True, False)
    url = "https://hooks.example.com/" + (header or "")
    assert twilio.verify_signature(url, [("a", header or "")], header, secret) in (True, False)
    assert whatsapp.verify_handshake("subscribe", header, "1", secret) in ("1", None)


@FUZZ
@given(
    body=st.binary(max_size=40),
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "Webhook-Id"]),
        st.text(max_size=40),
    ),
)
def test_standard_webhooks_check_never_raises_on_arbitrary_headers(
    body: bytes, headers: dict[str, str]
) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert generic.verify_signature(body, headers, secret, now=RECEIVED_AT) in (True, False)
