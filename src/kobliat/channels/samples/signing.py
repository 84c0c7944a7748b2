"""Headers that make a sample body pass each channel's signature check (simulator, tests)."""

from __future__ import annotations

from datetime import datetime

from kobliat.channels import generic, telegram, twilio, whatsapp


def whatsapp_headers(raw_body: bytes, app_secret: str) -> dict[str, str]:
    """Headers of a Meta webhook POST for this body."""
    return {
        "Content-Type": "application/json",
        whatsapp.SIGNATURE_HEADER: whatsapp.sign(raw_body, app_secret),
    }


def telegram_headers(secret_token: str) -> dict[str, str]:
    """Headers of a Telegram webhook POST for a bot whose `secret_token` is this."""
    return {"Content-Type": "application/json", telegram.SECRET_HEADER: secret_token}


def twilio_headers(url: str, pairs: list[tuple[str, str]], auth_token: str) -> dict[str, str]:
    """Headers of a Twilio webhook POST of these form pairs to `url`."""
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        twilio.SIGNATURE_HEADER: twilio.sign(url, pairs, auth_token),
    }


def generic_headers(
    raw_body: bytes, secret: str, *, msg_id: str, timestamp: datetime
) -> dict[str, str]:
    """Headers of a generic webhook POST (Standard Webhooks) for this body."""
    headers = generic.signed_headers(raw_body, secret, msg_id=msg_id, timestamp=timestamp)
    return {"Content-Type": "application/json", **headers}
