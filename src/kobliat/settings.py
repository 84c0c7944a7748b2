"""Configuration from the environment (prefix KOBLIAT_) and an optional .env file."""

from __future__ import annotations

from typing import Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kobliat import channel_secrets


class Settings(BaseSettings):
    """Everything kobliat reads from its environment (prefix KOBLIAT_) or a .env file."""

    # hide_input_in_errors: a refused secret must not be echoed in the error that refuses it.
    model_config = SettingsConfigDict(
        env_prefix="KOBLIAT_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = "sqlite:///./kobliat.db"
    host: str = "127.0.0.1"  # `kobliat serve` listens here (--host overrides)
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int | None = Field(default=None, ge=1)  # serve processes; None: from the cores
    # `kobliat relay` serves /healthz, /readyz and /metrics on this port (on `host`); None: none.
    relay_port: int | None = Field(default=None, ge=1, le=65535)
    nats_url: str | None = None
    api_keys: SecretStr | None = None  # comma-separated bearer keys accepted besides stored ones
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    telegram_secret_token: SecretStr | None = None
    telegram_bot_id: str = "bot"
    twilio_auth_token: SecretStr | None = None
    generic_webhook_secret: SecretStr | None = None
    public_url: str | None = (
        None  # the URL providers call, when a proxy rewrites it (Twilio signs it)
    )
    db_pool_size: int = Field(default=20, ge=1)
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"  # one format for every line
    relay_enabled: bool = True
    # Event delivery (see docs/events.md).
    relay_poll_seconds: float = Field(default=0.25, gt=0)
    relay_batch_size: int = Field(default=50, ge=1)  # aggregates claimed per batch
    outbox_retention_hours: float = Field(default=72.0, ge=0)
    nats_stream: str = "KOBLIAT"
    nats_publish_timeout_seconds: float = Field(default=5.0, gt=0)
    nats_retry_max_seconds: float = Field(default=10.0, gt=0)
    nats_replicas: int = Field(default=1, ge=1, le=5)  # copies of the stream in a NATS cluster
    # Repeats of an event id within this window are dropped by the stream. A relay that died
    # after publishing republishes when it (or another) comes back, so the window must cover
    # the longest relay outage an operator would sit through: a night. See docs/operations.md.
    nats_duplicate_window_seconds: float = Field(default=86400.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_concurrency: int = Field(default=16, ge=1)  # requests in flight per subscription
    # Let subscriptions target loopback, private, link-local and other internal addresses
    # (development only: otherwise a subscription could reach services behind the firewall).
    subscriptions_allow_private: bool = False
    # Sending replies (see docs/sending.md). A channel sends once its credentials are set.
    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_url: str = "https://graph.facebook.com/v24.0"
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    twilio_account_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    generic_outbound_url: str | None = None
    sender_enabled: bool = True
    send_poll_seconds: float = Field(default=0.25, gt=0)
    send_timeout_seconds: float = Field(default=15.0, gt=0)
    send_lease_seconds: float = Field(default=60.0, gt=0)
    send_max_attempts: int = Field(default=12, ge=1)
    send_retry_base_seconds: float = Field(default=1.0, gt=0)
    send_retry_max_seconds: float = Field(default=300.0, gt=0)
    send_concurrency: int = Field(default=32, ge=1)  # conversations sent to at once per process
    # A failed send waits this long for an operator's `kobliat outbox retry`, then is pruned
    # (its message keeps the `failed` status and the provider's error).
    send_failed_retention_hours: float = Field(default=168.0, ge=0)
    # The HTTP edge (see README, "Running it in production"): request bodies are counted while
    # they stream in and refused past these sizes; slow or idle clients are cut off.
    webhook_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    http_body_timeout_seconds: float = Field(default=60.0, gt=0)  # the whole body, once begun
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)  # the request line + headers
    http_max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    http_limit_concurrency: int = Field(default=1000, ge=1)  # connections; past it: 503
    http_keep_alive_seconds: int = Field(default=30, ge=1)
    # The country (ISO 3166 code, e.g. NL) of phone numbers given in national form (0612345678)
    # through the API; without it such numbers are refused rather than guessed.
    default_phone_region: str | None = None

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region code phone numbers know (e.g. NL, GB)")
        return region

    @field_validator(
        "whatsapp_app_secret",
        "whatsapp_verify_token",
        "telegram_secret_token",
        "twilio_auth_token",
        "generic_webhook_secret",
    )
    @classmethod
    def _usable_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Refuse at start a channel secret no request could ever be checked against; an empty
        one (`KOBLIAT_X=`) is the channel turned off, as when unset."""
        if value is None or value.get_secret_value() == "":
            return None
        channel_secrets.check(info.field_name or "", value.get_secret_value())
        return value

    def configured_api_keys(self) -> list[str]:
        """The keys given in KOBLIAT_API_KEYS, trimmed, without empties."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]
