"""What makes a configured channel secret usable, checked when the settings are read."""

from __future__ import annotations

import base64
import binascii

MIN_LENGTH = 8  # shorter secrets are guessable; providers generate 16 characters or more
MIN_GENERIC_KEY_BYTES = 16
_GENERIC_PREFIX = "whsec_"


def check(setting: str, value: str) -> None:
    """Raise ValueError (naming the setting, never the value) when `value` cannot be used."""
    name = f"KOBLIAT_{setting.upper()}"
    if value != value.strip():
        raise ValueError(f"{name} has leading or trailing spaces")
    if len(value) < MIN_LENGTH:
        raise ValueError(
            f"{name} is too short: use at least {MIN_LENGTH} characters (`kobliat dev-secrets` "
            "writes usable ones), or leave it empty to turn the channel off"
        )
    if setting == "generic_webhook_secret":
        _check_generic(name, value)


def _check_generic(name: str, value: str) -> None:
    if not value.startswith(_GENERIC_PREFIX):
        raise ValueError(f"{name} must start with {_GENERIC_PREFIX} (Standard Webhooks)")
    try:
        key = base64.b64decode(value.removeprefix(_GENERIC_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} must be {_GENERIC_PREFIX} followed by base64") from exc
    if len(key) < MIN_GENERIC_KEY_BYTES:
        raise ValueError(
            f"{name}'s key is {len(key)} bytes; Standard Webhooks keys are at least "
            f"{MIN_GENERIC_KEY_BYTES} (24 to 64 recommended)"
        )
