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

    def configured_api_keys(self) -> list[str]:
        """The keys given in KOBLIAT_API_KEYS, trimmed, without empties."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]
