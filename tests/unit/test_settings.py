"""Channel secrets that no request could be checked against are refused when kobliat starts,
with a message naming the setting and never the value."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from kobliat.settings import Settings

GOOD_GENERIC = "whsec_" + base64.b64encode(b"sixteen-byte-key").decode()


@pytest.mark.parametrize(
    ("setting", "value", "complaint"),
    [
        ("generic_webhook_secret", "whsec_", "too short"),
        ("generic_webhook_secret", "not-whsec-at-all", "must start with whsec_"),
        ("generic_webhook_secret", "whsec_%%%%not-base64", "followed by base64"),
        ("generic_webhook_secret", "whsec_" + base64.b64encode(b"short").decode(), "5 bytes"),
        ("whatsapp_app_secret", "abc", "too short"),
        ("telegram_secret_token", " spaced-secret ", "spaces"),
        ("twilio_auth_token", "1234567", "too short"),
    ],
)
def test_unusable_channel_secrets_are_refused_at_start(
    setting: str, value: str, complaint: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **{setting: value})  # type: ignore[call-arg]
    message = str(refused.value)
    assert f"KOBLIAT_{setting.upper()}" in message and complaint in message
    if value.strip():
        assert value.strip() not in message  # the secret itself is never echoed


def test_usable_secrets_and_empty_or_unset_channels_are_accepted() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        generic_webhook_secret=GOOD_GENERIC,
        twilio_auth_token="a" * 32,
        telegram_secret_token="",
    )
    assert settings.whatsapp_app_secret is None and settings.telegram_secret_token is None
    assert settings.generic_webhook_secret is not None
