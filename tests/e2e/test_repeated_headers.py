"""A signature or delivery-id header sent twice is refused on every channel, nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from starlette.datastructures import Headers

from kobliat.channels import generic as generic_channel
from kobliat.channels.samples import generic, signing, telegram, twilio
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from tests.e2e.inbox_helpers import inbox_rows
from tests.e2e.webhooks import (
    GENERIC_SECRET,
    TELEGRAM_SECRET,
    TWILIO_TOKEN,
    TWILIO_URL,
    WHATSAPP_SECRET,
    webhooks_for,
)


def signed(channel: str) -> tuple[bytes, dict[str, str]]:
    """A correctly signed body and its headers for a channel."""
    if channel == "whatsapp":
        body = wa.text()
        return body, signing.whatsapp_headers(body, WHATSAPP_SECRET)
    if channel == "telegram":
        return telegram.private_text(), signing.telegram_headers(TELEGRAM_SECRET)
    if channel == "twilio":
        body = twilio.encode(twilio.sms())
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        return body, signing.twilio_headers(TWILIO_URL, pairs, TWILIO_TOKEN)
    body = generic.message()
    now = datetime.now(UTC)  # signed when sent: the check allows five minutes
    return body, signing.generic_headers(body, GENERIC_SECRET, msg_id="first-id", timestamp=now)


@pytest.mark.parametrize(
    ("channel", "header", "second"),
    [
        ("whatsapp", "X-Hub-Signature-256", "sha256=" + "0" * 64),
        ("telegram", "X-Telegram-Bot-Api-Secret-Token", "another-token"),
        ("twilio", "X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl"),
        ("generic", "webhook-id", "fresh-id-for-a-replay"),
        ("generic", "webhook-timestamp", "1767261845"),
        ("generic", "webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl"),
    ],
)
def test_signature_header_sent_twice_is_refused(
    db: Database, channel: str, header: str, second: str
) -> None:
    hooks = webhooks_for(db)
    body, headers = signed(channel)
    # The valid copy first and last: whichever copy a reader takes, the request is refused.
    for raw in ([*headers.items(), (header, second)], [(header, second), *headers.items()]):
        response = hooks.client.post(f"/webhooks/{channel}", content=body, headers=raw)

        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "repeated-header"
        assert header.lower() in response.json()["detail"]
    assert inbox_rows(db) == []
    assert hooks.post(channel, body).status_code == 200  # the same request, sent once, is fine


def test_generic_signature_check_refuses_a_repeated_header_itself() -> None:
    body, headers = signed("generic")
    repeated = Headers(
        raw=[(k.lower().encode(), v.encode()) for k, v in [*headers.items(), ("webhook-id", "x")]]
    )

    assert generic_channel.verify_signature(body, Headers(headers), GENERIC_SECRET)
    assert not generic_channel.verify_signature(body, repeated, GENERIC_SECRET)
