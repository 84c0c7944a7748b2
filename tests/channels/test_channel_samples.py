"""The sample builders and the fixture files generated from them stay in step."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from kobliat.channels import generic, telegram, twilio, whatsapp
from kobliat.channels.records import ParsedWebhook
from kobliat.channels.samples import signing
from kobliat.channels.samples import twilio as tw
from kobliat.channels.samples.catalog import CATALOG

FIXTURES = Path(__file__).parent.parent / "fixtures" / "channels"
SAMPLES = [(channel, name) for channel, builders in CATALOG.items() for name in builders]
RECEIVED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def expected_file_content(channel: str, name: str) -> bytes:
    sample = CATALOG[channel][name]()
    return sample if isinstance(sample, bytes) else tw.encode(sample)


@pytest.mark.parametrize(("channel", "name"), SAMPLES)
def test_fixture_file_equals_what_the_sample_builder_makes(channel: str, name: str) -> None:
    suffix = ".form" if channel == "twilio" else ".json"
    stored = (FIXTURES / channel / f"{name}{suffix}").read_bytes()
    # If this fails: uv run python tests/fixtures/channels/regenerate.py
    assert stored == expected_file_content(channel, name)


def test_every_fixture_file_has_a_sample_builder() -> None:
    stored = {
        (path.parent.name, path.stem)
        for path in FIXTURES.glob("*/*")
        if path.suffix in (".json", ".form")
    }
    assert stored == set(SAMPLES)


@pytest.mark.parametrize(("channel", "name"), SAMPLES)
def test_samples_are_deterministic(channel: str, name: str) -> None:
    assert CATALOG[channel][name]() == CATALOG[channel][name]()


def parse_fixture(channel: str, content: bytes) -> ParsedWebhook:
    if channel == "whatsapp":
        return whatsapp.parse(content)
    if channel == "telegram":
        return telegram.parse(content, bot_id="7012345678", received_at=RECEIVED_AT)
    if channel == "twilio":
        pairs = parse_qsl(content.decode(), keep_blank_values=True)
        return twilio.parse(pairs, received_at=RECEIVED_AT)
    return generic.parse(content, delivery_id="d")


@pytest.mark.parametrize(("channel", "name"), SAMPLES)
def test_every_fixture_parses_to_at_least_one_item(channel: str, name: str) -> None:
    parsed = parse_fixture(channel, expected_file_content(channel, name))
    assert parsed.items


def test_twilio_form_survives_the_encode_decode_round_trip() -> None:
    pairs = tw.whatsapp_location()
    assert parse_qsl(tw.encode(pairs).decode(), keep_blank_values=True) == pairs


def test_signing_helpers_make_headers_the_verifiers_accept() -> None:
    body = CATALOG["whatsapp"]["text"]()
    assert isinstance(body, bytes)
    headers = signing.whatsapp_headers(body, "app-secret")
    assert whatsapp.verify_signature(body, headers["X-Hub-Signature-256"], "app-secret")

    headers = signing.telegram_headers("tg-secret")
    assert telegram.verify_signature(headers["X-Telegram-Bot-Api-Secret-Token"], "tg-secret")

    pairs = tw.sms()
    headers = signing.twilio_headers(tw.WEBHOOK_URL, pairs, "auth-token")
    assert twilio.verify_signature(
        tw.WEBHOOK_URL, pairs, headers["X-Twilio-Signature"], "auth-token"
    )

    body = CATALOG["generic"]["message"]()
    assert isinstance(body, bytes)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signing.generic_headers(body, secret, msg_id="msg_1", timestamp=RECEIVED_AT)
    assert headers["webhook-id"] == "msg_1"
    assert generic.verify_signature(body, headers, secret, now=RECEIVED_AT)
