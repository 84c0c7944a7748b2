"""Configuration from the environment (prefix KOBLIAT_) and an optional .env file."""

from __future__ import annotations

import phonenumbers
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything kobliat reads from its environment; see DESIGN §7 for the names."""

    model_config = SettingsConfigDict(env_prefix="KOBLIAT_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./kobliat.db"
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
    relay_enabled: bool = True
    # Event delivery (see docs/events.md).
    relay_poll_seconds: float = Field(default=0.25, gt=0)
    relay_batch_size: int = Field(default=50, ge=1)  # aggregates claimed per batch
    outbox_retention_hours: float = Field(default=72.0, ge=0)
    nats_stream: str = "KOBLIAT"
    nats_publish_timeout_seconds: float = Field(default=5.0, gt=0)
    nats_retry_max_seconds: float = Field(default=10.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_concurrency: int = Field(default=16, ge=1)  # requests in flight per subscription
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

    def configured_api_keys(self) -> list[str]:
        """The keys given in KOBLIAT_API_KEYS, trimmed, without empties."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]
