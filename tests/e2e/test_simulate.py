"""`kobliat simulate` against a real uvicorn server on the test database."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from typer.testing import CliRunner

from kobliat.api import create_app
from kobliat.cli import app as cli
from kobliat.db.engine import Database
from kobliat.db.tables import inbox, messages
from tests.builders import count
from tests.e2e.webhooks import (
    GENERIC_SECRET,
    TELEGRAM_SECRET,
    TWILIO_TOKEN,
    WHATSAPP_SECRET,
    container_for,
)
from tests.support.postgres import free_port
from tests.support.serve import KOBLIAT, clean_environment, serving

SECRETS = {
    "KOBLIAT_WHATSAPP_APP_SECRET": WHATSAPP_SECRET,
    "KOBLIAT_TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
    "KOBLIAT_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "KOBLIAT_GENERIC_WEBHOOK_SECRET": GENERIC_SECRET,
}


@pytest.fixture
def server_url(db: Database) -> Iterator[str]:
    """A kobliat server (uvicorn, real sockets) on the test database."""
    port = free_port()
    config = uvicorn.Config(
        create_app(container=container_for(db)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_simulate_sends_signed_webhooks_of_every_channel_and_all_are_accepted(
    db: Database, server_url: str
) -> None:
    env = SECRETS
    args = ["simulate", "--url", server_url, "--rate", "80", "--duration", "1", "--senders", "5"]

    result = CliRunner().invoke(cli, args, env=env)

    assert result.exit_code == 0, result.output
    for channel in ("whatsapp", "telegram", "twilio", "generic"):
        assert channel in result.output
    assert "200: " in result.output
    assert count(db, inbox) == 80
    with db.reading() as conn:
        channels = conn.execute(
            select(messages.c.channel, func.count()).group_by(messages.c.channel)
        )
        stored = {channel: n for channel, n in channels}
    assert set(stored) >= {"whatsapp", "telegram", "sms", "generic"}


def test_simulate_without_any_secret_explains_what_to_configure(server_url: str) -> None:
    env = {
        f"KOBLIAT_{name}": ""
        for name in (
            "WHATSAPP_APP_SECRET",
            "TELEGRAM_SECRET_TOKEN",
            "TWILIO_AUTH_TOKEN",
            "GENERIC_WEBHOOK_SECRET",
        )
    }

    result = CliRunner().invoke(cli, ["simulate", "--url", server_url, "--duration", "1"], env=env)

    assert result.exit_code == 2
    assert "KOBLIAT_WHATSAPP_APP_SECRET" in result.output


def test_serve_then_simulate_as_processes_then_conversations_are_listed(
    db_url: str, tmp_path: Path
) -> None:
    # The flow a new user follows: one .env for both commands, serve, simulate, list.
    (tmp_path / ".env").write_text(
        "\n".join(f"{name}={value}" for name, value in SECRETS.items()) + "\n"
    )
    env = {"KOBLIAT_DATABASE_URL": db_url}
    with serving(tmp_path, env) as served:
        simulated = subprocess.run(
            [str(KOBLIAT), "simulate", "--url", served.base, "--duration", "2", "--rate", "30"],
            cwd=tmp_path,
            env={**clean_environment(), **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        (key,) = [line for line in served.log.read_text().splitlines() if line.startswith("kbl_")]
        page = httpx.get(
            f"{served.base}/conversations?limit=500",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).json()
    assert len(page["data"]) > 0
    assert {c["channel"] for c in page["data"]} >= {"whatsapp", "telegram", "sms", "generic"}
