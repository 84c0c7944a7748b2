"""Malformed, oversized and unsigned requests for every endpoint of a running kobliat, built
from its OpenAPI document (REST) and per channel (webhooks)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from uuid import uuid4

from kobliat.channels.samples import signing
from tests.e2e.webhooks import (
    API_KEY,
    GENERIC_SECRET,
    TELEGRAM_SECRET,
    TWILIO_TOKEN,
    WHATSAPP_SECRET,
)

MiB = 1024 * 1024
OVERSIZED = 9 * MiB  # above the 8 MiB webhook cap
HUGE_HEADER = "h" * 100_000  # above any sane header limit
NESTED = 300  # levels of nesting in a signed generic message's metadata
_BAD_JSON = b'{"external_type": "email", "external_id":'
_WRONG_TYPES = {
    "external_type": 5,
    "external_id": ["x"],
    "name": {"a": 1},
    "type": 7,
    "channel": [],
    "participants": "everyone",
    "customer_id": 12,
    "status": False,
    "body": {"text": 1},
    "url": 42,
    "event_types": "all",
}


@dataclass
class Attempt:
    """One hostile request: what it is, and what to send."""

    label: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    chunked: bool = False


def _paths(template: str) -> Iterator[str]:
    """The path with each `{param}` as a malformed id and as an id that exists nowhere."""
    if "{" not in template:
        yield template
        return
    yield re.sub(r"\{[^}]+\}", "not-an-id", template)
    yield re.sub(r"\{[^}]+\}", str(uuid4()), template)


def rest_attempts(openapi: dict[str, Any]) -> Iterator[Attempt]:
    """For every REST operation: no key, a wrong key, and with the key malformed input (bad
    JSON, wrong types, deep nesting, NUL, oversized, a huge header, bad query parameters)."""
    auth = {"authorization": f"Bearer {API_KEY}"}
    for template, operations in openapi["paths"].items():
        if template.startswith("/webhooks") or template in {"/healthz", "/metrics"}:
            continue
        for method, operation in operations.items():
            method = method.upper()
            if not operation.get("security") and not _takes_input(operation):
                continue  # /readyz, /docs: nothing to feed
            for path in _paths(template):
                name = f"{method} {path}"
                yield Attempt(f"{name} without key", method, path)
                yield Attempt(f"{name} wrong key", method, path, {"authorization": "Bearer no"})
                yield from _malformed_input(name, method, path, operation, auth)


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _malformed_input(
    name: str, method: str, path: str, operation: dict[str, Any], auth: dict[str, str]
) -> Iterator[Attempt]:
    as_json = {**auth, "content-type": "application/json"}
    if "requestBody" in operation:
        bodies = {
            "bad JSON": _BAD_JSON,
            "a list": b"[1, 2, 3]",
            "wrong types": json.dumps(_WRONG_TYPES).encode(),
            "deep nesting": b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "NaN": b'{"external_type": "email", "external_id": NaN}',
            "NUL": b'{"external_type": "email\\u0000", "external_id": "a\\u0000b@x.test"}',
            "oversized": b'{"external_type": "email", "name": "' + b"a" * OVERSIZED + b'"}',
        }
        for what, body in bodies.items():
            yield Attempt(f"{name} {what}", method, path, as_json, body=body)
        yield Attempt(
            f"{name} huge header", method, path, {**as_json, "x-big": HUGE_HEADER}, {}, _BAD_JSON
        )
    for param in operation.get("parameters", []):
        if param.get("in") != "query":
            continue
        for what, value in _garbage(param).items():
            yield Attempt(
                f"{name} ?{param['name']}={what}", method, path, auth, {param["name"]: value}
            )
    if path.endswith("/events/stream"):
        yield Attempt(
            f"{name} bad Last-Event-ID", method, path, {**auth, "last-event-id": "[" * 3000}
        )


def _garbage(param: dict[str, Any]) -> dict[str, str]:
    """Values a query parameter must refuse: not numbers for a number, not a position for a
    cursor (free-text filters accept any text, so they get none)."""
    kinds = {
        s.get("type") for s in [param.get("schema", {}), *param.get("schema", {}).get("anyOf", [])]
    }
    if kinds & {"integer", "number"}:
        return {"letters": "abc", "negative": "-5", "huge": "9" * 400}
    if param["name"] in {"cursor", "after"}:
        return {"brackets": "[" * 3000, "garbage": "not-a-cursor"}
    return {}


def webhook_attempts(base_url: str) -> Iterator[Attempt]:
    """For every channel: unsigned, wrongly signed, signed but malformed, oversized (whole and
    chunked), a huge header; and the WhatsApp handshake with a wrong token."""
    yield Attempt(
        "GET /webhooks/whatsapp wrong verify token",
        "GET",
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": "no", "hub.challenge": "1"},
    )
    for channel, malformed in _MALFORMED.items():
        path = f"/webhooks/{channel}"
        sign = _SIGNERS[channel]
        some = malformed[0]
        unsigned = {"content-type": _content_type(channel)}
        yield Attempt(f"{channel} unsigned", "POST", path, unsigned, body=some)
        yield Attempt(f"{channel} bad signature", "POST", path, _forged(channel), body=some)
        for n, body in enumerate(malformed):
            yield Attempt(
                f"{channel} signed malformed #{n}", "POST", path, sign(body, base_url), body=body
            )
        big = some + b" " * OVERSIZED
        yield Attempt(f"{channel} oversized", "POST", path, sign(big, base_url), body=big)
        yield Attempt(
            f"{channel} chunked 20 MiB",
            "POST",
            path,
            unsigned,
            body=b"x" * (20 * MiB),
            chunked=True,
        )
        yield Attempt(
            f"{channel} huge header", "POST", path, {**unsigned, "x-big": HUGE_HEADER}, body=some
        )


def _content_type(channel: str) -> str:
    return "application/x-www-form-urlencoded" if channel == "twilio" else "application/json"


def _forged(channel: str) -> dict[str, str]:
    headers = {"content-type": _content_type(channel)}
    if channel == "generic":
        headers.update(
            {"webhook-id": "forged", "webhook-timestamp": str(int(datetime.now(UTC).timestamp()))}
        )
    header = {
        "whatsapp": "x-hub-signature-256",
        "telegram": "x-telegram-bot-api-secret-token",
        "twilio": "x-twilio-signature",
        "generic": "webhook-signature",
    }[channel]
    headers[header] = {"whatsapp": "sha256=" + "0" * 64, "generic": "v1,AAAA"}.get(channel, "nope")
    return headers


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def _generic_nested() -> bytes:
    message = {
        "id": f"nested-{uuid4().hex}",
        "timestamp": "2026-01-01T10:00:00Z",
        "from": {"type": "email", "id": "deep@example.com"},
        "to": {"type": "email", "id": "support@clinic.example.com"},
        "body": "deep",
        "metadata": _nested(NESTED),
    }
    return json.dumps(message).encode()


_MALFORMED: dict[str, list[bytes]] = {
    "whatsapp": [
        b'{"object": "whatsapp_business_account", "entry":',
        b'{"object": 5, "entry": "x"}',
    ],
    "telegram": [b'{"update_id": ', b'{"update_id": "x", "message": 5}'],
    "twilio": [b"MessageSid=SM1&From=%ZZ", b"Body=hi"],
    "generic": [
        b'{"id": "x", ',
        b'{"id": 5, "from": "x", "to": [], "timestamp": {}}',
        _generic_nested(),
    ],
}


def _sign_generic(body: bytes, _base: str) -> dict[str, str]:
    return signing.generic_headers(
        body, GENERIC_SECRET, msg_id=f"hostile-{uuid4().hex}", timestamp=datetime.now(UTC)
    )


def _sign_twilio(body: bytes, base: str) -> dict[str, str]:
    pairs = parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
    return signing.twilio_headers(f"{base}/webhooks/twilio", pairs, TWILIO_TOKEN)


_SIGNERS = {
    "whatsapp": lambda body, _base: signing.whatsapp_headers(body, WHATSAPP_SECRET),
    "telegram": lambda _body, _base: signing.telegram_headers(TELEGRAM_SECRET),
    "twilio": _sign_twilio,
    "generic": _sign_generic,
}
