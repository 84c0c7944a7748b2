"""`kobliat dev-secrets` writes usable secrets without clobbering what is set."""

from __future__ import annotations

from pathlib import Path

from kobliat.devsecrets import write_env
from kobliat.settings import Settings


def test_writes_every_channel_secret_and_settings_read_them(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "KOBLIAT_DATABASE_URL=sqlite:///x.db\nKOBLIAT_TWILIO_AUTH_TOKEN=mine-own-token\n"
    )
    written = write_env(env)
    assert "KOBLIAT_TWILIO_AUTH_TOKEN" not in written and len(written) == 4
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "mine-own-token"
    assert settings.generic_webhook_secret is not None
    assert settings.generic_webhook_secret.get_secret_value().startswith("whsec_")
    assert settings.database_url == "sqlite:///x.db"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert write_env(env) == []
    assert len(write_env(env, force=True)) == 5
    assert "mine-own-token" not in env.read_text()
