"""Webhook authentication and refusal: signatures, unconfigured channels, malformed bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.channels.samples import signing
from kobliat.db.engine import Database
from kobliat.db.tables import customers, inbox, messages
from tests.builders import count, events_of
from tests.e2e.webhooks import (
    GENERIC_SECRET,
    TWILIO_TOKEN,
    WHATSAPP_VERIFY_TOKEN,
    Webhooks,
    container_for,
    fixture,
    webhooks_for,
)

SAMPLES = {
    "whatsapp": fixture("whatsapp", "text"),
    "telegram": fixture("telegram", "private_text_reply"),
    "twilio": fixture("twilio", "sms"),
    "generic": fixture("generic", "message"),
}
SETTING = {
    "whatsapp": "whatsapp_app_secret",
    "telegram": "telegram_secret_token",
    "twilio": "twilio_auth_token",
    "generic": "generic_webhook_secret",
}


def assert_nothing_stored(db: Database) -> None:
    assert count(db, inbox) == 0
    assert count(db, messages) == 0
    assert count(db, customers) == 0
    assert events_of(db) == []


def send(hooks: Webhooks, channel: str, *, signature: str | None) -> int:
    poster = getattr(hooks, channel)
    return int(poster(SAMPLES[channel], signature=signature).status_code)


@pytest.mark.parametrize("channel", sorted(SAMPLES))
def test_correctly_signed_webhook_is_stored_and_answered_200(db: Database, channel: str) -> None:
    response = webhooks_for(db).post(channel, SAMPLES[channel])
    assert response.status_code == 200, response.text
    assert count(db, inbox) == 1
    assert count(db, messages) == 1
    assert len(events_of(db, "message.inbound.created")) == 1


@pytest.mark.parametrize("channel", sorted(SAMPLES))
def test_webhook_with_wrong_signature_is_refused_401_and_nothing_stored(
    db: Database, channel: str
) -> None:
    hooks = webhooks_for(db)
    wrong = {"whatsapp": "sha256=" + "0" * 64, "generic": "v1,AAAA"}.get(channel, "forged")
    response = getattr(hooks, channel)(SAMPLES[channel], signature=wrong)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid-signature"
    assert_nothing_stored(db)


@pytest.mark.parametrize("channel", sorted(SAMPLES))
def test_webhook_without_signature_is_refused_401_and_nothing_stored(
    db: Database, channel: str
) -> None:
    response = getattr(webhooks_for(db), channel)(SAMPLES[channel], signature=None)
    assert response.status_code == 401
    assert response.json()["code"] == "missing-signature"
    assert_nothing_stored(db)


@pytest.mark.parametrize("channel", sorted(SAMPLES))
def test_channel_without_secret_refuses_with_a_problem_naming_the_setting(
    db: Database, channel: str
) -> None:
    hooks = webhooks_for(db, **{SETTING[channel]: None})
    response = hooks.post(channel, SAMPLES[channel])
    assert response.status_code == 503
    problem = response.json()
    assert problem["code"] == "channel-not-configured"
    assert f"KOBLIAT_{SETTING[channel].upper()}" in problem["detail"]
    assert_nothing_stored(db)


@pytest.mark.parametrize(
    ("channel", "body"),
    [
        ("whatsapp", b"{not json"),
        ("whatsapp", b'{"object": "whatsapp_business_account", "entry": "nope"}'),
        ("telegram", b"[1, 2]"),
        ("telegram", b'{"update_id": "one"}'),
        ("twilio", b"NumMedia=0&Body=hi"),
        ("generic", b'{"id": "m1", "timestamp": 1767261845, "from": {}}'),
    ],
)
def test_malformed_signed_payload_is_refused_400_and_nothing_stored(
    db: Database, channel: str, body: bytes
) -> None:
    response = webhooks_for(db).post(channel, body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed-payload"
    assert_nothing_stored(db)


def test_generic_webhook_signed_too_long_ago_is_refused(db: Database) -> None:
    hooks = webhooks_for(db)
    body = SAMPLES["generic"]
    headers = signing.generic_headers(
        body, GENERIC_SECRET, msg_id="old-delivery", timestamp=datetime(2020, 1, 1, tzinfo=UTC)
    )
    response = hooks.client.post("/webhooks/generic", content=body, headers=headers)
    assert response.status_code == 401
    assert_nothing_stored(db)


def test_whatsapp_handshake_echoes_the_challenge_as_text(db: Database) -> None:
    client = webhooks_for(db).client
    response = client.get(
        "/webhooks/whatsapp",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": WHATSAPP_VERIFY_TOKEN,
            "hub.challenge": "872145390",
        },
    )
    assert response.status_code == 200
    assert response.text == "872145390"
    assert response.headers["content-type"].startswith("text/plain")


def test_whatsapp_handshake_with_wrong_token_is_refused_403(db: Database) -> None:
    client = webhooks_for(db).client
    params = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    response = client.get("/webhooks/whatsapp", params=params)
    assert response.status_code == 403
    assert response.json()["code"] == "handshake-refused"


def test_whatsapp_handshake_without_verify_token_configured_is_refused(db: Database) -> None:
    client = webhooks_for(db, whatsapp_verify_token=None).client
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    response = client.get("/webhooks/whatsapp", params=params)
    assert response.status_code == 503
    assert response.json()["code"] == "channel-not-configured"


def test_twilio_signature_covers_the_public_url_when_one_is_configured(db: Database) -> None:
    public = "https://hooks.example.com/kobliat"
    client = TestClient(create_app(container=container_for(db, public_url=public)))
    body = SAMPLES["twilio"]
    pairs = parse_qsl(body.decode(), keep_blank_values=True)
    as_called = signing.twilio_headers(public + "/webhooks/twilio", pairs, TWILIO_TOKEN)
    as_seen = signing.twilio_headers("http://testserver/webhooks/twilio", pairs, TWILIO_TOKEN)

    assert client.post("/webhooks/twilio", content=body, headers=as_seen).status_code == 401
    response = client.post("/webhooks/twilio", content=body, headers=as_called)
    assert response.status_code == 200
    assert response.text == "<Response/>"
    assert response.headers["content-type"].startswith("text/xml")


def test_inbox_keeps_no_secret_header(db: Database) -> None:
    webhooks_for(db).post("telegram", SAMPLES["telegram"])
    with db.reading() as conn:
        headers = conn.execute(inbox.select()).one().headers
    assert "x-telegram-bot-api-secret-token" not in headers
