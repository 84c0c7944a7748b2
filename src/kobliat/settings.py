"""Configuration from the environment (prefix KOBLIAT_) and an optional .env file."""

from __future__ import annotations

from pydantic import Field, SecretStr
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

    def configured_api_keys(self) -> list[str]:
        """The keys given in KOBLIAT_API_KEYS, trimmed, without empties."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]
