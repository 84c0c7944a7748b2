"""Every channel's webhooks, the WhatsApp handshake and REST lookups through a real `kobliat
serve` with every secret set: no secret and no full phone number or e-mail address appears in
anything it logs (structlog, uvicorn, alembic) or in the error texts it stores."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
from sqlalchemy import create_engine, select

from kobliat.channels.samples import signing
from kobliat.channels.samples import twilio as twilio_samples
from kobliat.channels.samples import whatsapp as wa
from kobliat.db.tables import inbox
from tests.e2e.webhooks import (
    API_KEY,
    FIXTURES,
    GENERIC_SECRET,
    TELEGRAM_BOT_ID,
    TELEGRAM_SECRET,
    TWILIO_TOKEN,
    WHATSAPP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
)
from tests.support.serve import serving

PHONES = [
    wa.WA_ID,
    wa.BR_WA_ID_WITH_NINTH_DIGIT,
    wa.MX_WA_ID_WITH_1,
    wa.DISPLAY_PHONE_NUMBER,
    twilio_samples.SMS_CUSTOMER.lstrip("+"),
    "4915112345678",
    "351912345678",
    "447700900123",
]
SPACED = "+44 7700 900123"
EMAIL = "alice.smith@example.com"
SECRETS = [
    API_KEY,
    WHATSAPP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
    TELEGRAM_SECRET,
    TWILIO_TOKEN,
    GENERIC_SECRET,
    GENERIC_SECRET.removeprefix("whsec_"),
]


def test_no_secret_phone_number_or_address_in_logs_or_stored_errors(
    db_url: str, tmp_path: Path
) -> None:
    env = {
        "KOBLIAT_DATABASE_URL": db_url,
        "KOBLIAT_LOG_LEVEL": "DEBUG",
        "KOBLIAT_API_KEYS": API_KEY,
        "KOBLIAT_WHATSAPP_APP_SECRET": WHATSAPP_SECRET,
        "KOBLIAT_WHATSAPP_VERIFY_TOKEN": WHATSAPP_VERIFY_TOKEN,
        "KOBLIAT_TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "KOBLIAT_TELEGRAM_BOT_ID": TELEGRAM_BOT_ID,
        "KOBLIAT_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "KOBLIAT_GENERIC_WEBHOOK_SECRET": GENERIC_SECRET,
    }
    with serving(tmp_path, env) as served, httpx.Client(base_url=served.base) as http:
        handshake = {"hub.mode": "subscribe", "hub.challenge": "42"}
        answer = http.get(
            "/webhooks/whatsapp", params={**handshake, "hub.verify_token": WHATSAPP_VERIFY_TOKEN}
        )
        assert answer.text == "42"
        for channel in ("whatsapp", "telegram", "twilio", "generic"):
            for path in sorted((FIXTURES / channel).iterdir()):
                answer = post(http, channel, path.read_bytes())
                assert answer.status_code < 500, (path, answer.text)
        # Personal data in a message a backend may refuse (NUL): refused or stored, it must
        # not reach the log or a stored error.
        text = {"body": f"call me on {SPACED} or {EMAIL}\u0000"}
        post(http, "whatsapp", wa.single(wa.message_item("text", text, message_id="wamid.nul")))
        auth = {"Authorization": f"Bearer {API_KEY}"}
        for external_id in (SPACED, "+" + wa.WA_ID, EMAIL):
            lookup = {"external_type": "whatsapp", "external_id": external_id}
            assert http.get("/customers", params=lookup, headers=auth).status_code < 500
        http.post("/customers", json={"external_type": "sms", "external_id": "0"}, headers=auth)
    logged = served.log.read_text()
    assert "GET /customers?" in logged and "POST /webhooks/telegram 200" in logged
    engine = create_engine(db_url)
    with engine.connect() as conn:
        errors = [e for e in conn.execute(select(inbox.c.last_error)).scalars() if e]
    engine.dispose()
    for where, text in {"the log": logged, "stored errors": "\n".join(errors)}.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret in {where}"
        digits = re.sub(r"[^\d\n]", "", text)  # numbers however they were spaced
        for phone in PHONES:
            assert phone not in digits, f"{phone} in {where}"
        assert EMAIL not in text and "alice.smith%40" not in text, f"an address in {where}"


def post(http: httpx.Client, channel: str, body: bytes) -> httpx.Response:
    """A correctly signed webhook of `channel` to the running server."""
    headers: dict[str, str]
    if channel == "whatsapp":
        headers = signing.whatsapp_headers(body, WHATSAPP_SECRET)
    elif channel == "telegram":
        headers = signing.telegram_headers(TELEGRAM_SECRET)
    elif channel == "twilio":
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        url = f"{http.base_url}webhooks/twilio".replace("//webhooks", "/webhooks")
        headers = signing.twilio_headers(url, pairs, TWILIO_TOKEN)
    else:
        msg_id = f"privacy-{hash(body) & 0xFFFFFF:x}"
        headers = signing.generic_headers(
            body, GENERIC_SECRET, msg_id=msg_id, timestamp=datetime.now(UTC)
        )
    return http.post(f"/webhooks/{channel}", content=body, headers=headers)
