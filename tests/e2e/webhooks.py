"""Signed webhook requests against the real app on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from kobliat.api import create_app
from kobliat.auth import KeyChecker
from kobliat.bootstrap import Container
from kobliat.channels.samples import signing
from kobliat.db.engine import Database
from kobliat.db.tables import messages
from kobliat.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "channels"
WHATSAPP_SECRET = "wa-app-secret-for-tests"
WHATSAPP_VERIFY_TOKEN = "wa-verify-token"
TELEGRAM_SECRET = "tg-secret_token-for-tests"
TELEGRAM_BOT_ID = "7012345678"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"generic-secret-for-the-test-suite").decode()
TWILIO_URL = "http://testserver/webhooks/twilio"
API_KEY = "kbl_test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
_delivery_ids = itertools.count(1)


def settings_for(db: Database, **overrides: Any) -> Settings:
    """Settings with every channel configured (a real .env never leaks into tests)."""
    values: dict[str, Any] = {
        "database_url": db.url,
        "whatsapp_app_secret": WHATSAPP_SECRET,
        "whatsapp_verify_token": WHATSAPP_VERIFY_TOKEN,
        "telegram_secret_token": TELEGRAM_SECRET,
        "telegram_bot_id": TELEGRAM_BOT_ID,
        "twilio_auth_token": TWILIO_TOKEN,
        "generic_webhook_secret": GENERIC_SECRET,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def container_for(db: Database, **overrides: Any) -> Container:
    """A container on the test database (already migrated by the fixture)."""
    return Container(settings=settings_for(db, **overrides), db=db, keys=KeyChecker(db, [API_KEY]))


def fixture(channel: str, name: str) -> bytes:
    """The bytes of a channel fixture (JSON, or a URL-encoded Twilio form)."""
    suffix = ".form" if channel == "twilio" else ".json"
    return (FIXTURES / channel / f"{name}{suffix}").read_bytes()


def fixture_names(channel: str) -> list[str]:
    """Every fixture of a channel, by name."""
    return sorted(path.stem for path in (FIXTURES / channel).iterdir())


@dataclass
class Webhooks:
    """Posts correctly signed (or deliberately broken) webhooks to the app."""

    client: TestClient

    def whatsapp(self, body: bytes, *, signature: str | None = "sign") -> httpx.Response:
        """POST /webhooks/whatsapp; `signature=None` leaves the header out."""
        headers = signing.whatsapp_headers(body, WHATSAPP_SECRET)
        return self._post("/webhooks/whatsapp", body, headers, "X-Hub-Signature-256", signature)

    def telegram(self, body: bytes, *, signature: str | None = "sign") -> httpx.Response:
        """POST /webhooks/telegram."""
        headers = signing.telegram_headers(TELEGRAM_SECRET)
        header = "X-Telegram-Bot-Api-Secret-Token"
        return self._post("/webhooks/telegram", body, headers, header, signature)

    def twilio(self, body: bytes, *, signature: str | None = "sign") -> httpx.Response:
        """POST /webhooks/twilio with a form body (as stored in the fixtures)."""
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        headers = signing.twilio_headers(TWILIO_URL, pairs, TWILIO_TOKEN)
        return self._post("/webhooks/twilio", body, headers, "X-Twilio-Signature", signature)

    def generic(
        self, body: bytes, *, signature: str | None = "sign", delivery_id: str | None = None
    ) -> httpx.Response:
        """POST /webhooks/generic, signed now with a fresh (or the given) webhook-id."""
        msg_id = delivery_id or f"delivery-{next(_delivery_ids)}"
        headers = signing.generic_headers(
            body, GENERIC_SECRET, msg_id=msg_id, timestamp=datetime.now(UTC)
        )
        return self._post("/webhooks/generic", body, headers, "webhook-signature", signature)

    def post(self, channel: str, body: bytes) -> httpx.Response:
        """A correctly signed POST of `body` to a channel's endpoint."""
        sender = {
            "whatsapp": self.whatsapp,
            "telegram": self.telegram,
            "twilio": self.twilio,
            "generic": self.generic,
        }[channel]
        return sender(body)

    def _post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        header: str,
        signature: str | None,
    ) -> httpx.Response:
        if signature is None:
            headers.pop(header)
        elif signature != "sign":
            headers[header] = signature
        return self.client.post(path, content=body, headers=headers)


def webhooks_for(db: Database, **overrides: Any) -> Webhooks:
    """A Webhooks poster on an app whose lifespan (and inbox worker) is not started."""
    return Webhooks(TestClient(create_app(container=container_for(db, **overrides))))


def stored_messages(db: Database) -> list[dict[str, Any]]:
    """Every stored message row, oldest insert first."""
    with db.reading() as conn:
        rows = conn.execute(select(messages).order_by(messages.c.created_at, messages.c.id))
        return [dict(row._mapping) for row in rows]


def message_by_external_id(db: Database, external_id: str) -> dict[str, Any]:
    """The stored message row with this provider id."""
    found = [m for m in stored_messages(db) if m["external_message_id"] == external_id]
    assert len(found) == 1, f"{len(found)} messages with external id {external_id}"
    return found[0]


def all_fixtures() -> Iterator[tuple[str, str]]:
    """(channel, name) of every fixture file."""
    for channel in ("whatsapp", "telegram", "twilio", "generic"):
        for name in fixture_names(channel):
            yield channel, name
