"""`kobliat dev-secrets`: a `.env` with fresh random webhook secrets for local development,
so `serve` and `simulate` agree without anyone committing or pasting secrets."""

from __future__ import annotations

from pathlib import Path

from kobliat.settings import Settings

CHANNEL_SECRETS = (
    "whatsapp_app_secret",
    "telegram_secret_token",
    "twilio_auth_token",
    "generic_webhook_secret",
)


def generate() -> dict[str, str]:
    """One fresh random secret per channel setting."""
    from kobliat.channels import registry

    return {
        name: make()
        for channel in registry.CHANNELS.values()
        for name, make in channel.secrets.items()
    }


def write_env(path: Path, *, force: bool = False) -> list[str]:
    """Add the settings missing from `path` (all of them with `force`); returns the names set."""
    existing = path.read_text().splitlines() if path.exists() else []
    present = {line.split("=", 1)[0].strip() for line in existing if "=" in line}
    fresh = generate()
    chosen = {k: v for k, v in fresh.items() if force or k not in present}
    kept = [line for line in existing if line.split("=", 1)[0].strip() not in chosen]
    lines = kept + [f"{name}={value}" for name, value in chosen.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return list(chosen)


def needed_for_development(settings: Settings) -> bool:
    """True for the embedded SQLite default with no channel secret set at all: a first run."""
    unset = all(getattr(settings, name) is None for name in CHANNEL_SECRETS)
    return unset and settings.database_url.startswith("sqlite")
