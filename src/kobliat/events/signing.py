"""Standard Webhooks signing (https://www.standardwebhooks.com): secrets and headers.

The signature is `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
where the key is the base64-decoded part of the `whsec_...` secret. The `standardwebhooks`
library signs (the same one verifies the generic channel); this module checks secrets first,
which the library does not (any base64, of any length, passes there).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"


class InvalidSecret(ValueError):
    """A secret that is not `whsec_` followed by base64 of 24 to 64 bytes."""


def new_secret() -> str:
    """A fresh random secret (32 bytes of key)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret; raises InvalidSecret."""
    if not secret.startswith(PREFIX):
        raise InvalidSecret("the secret must start with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("the secret must be whsec_ followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise InvalidSecret("the secret's key must be 24 to 64 bytes")
    return key


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one delivery."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(secret_key(secret)).sign(msg_id, moment, body.decode())


def headers(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }
