"""`kobliat outbox list` and `kobliat outbox retry`, run as the operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobliat.db.engine import Database
from tests.e2e.sending_helpers import open_whatsapp, sending_app, settled
from tests.e2e.webhooks import GENERIC_SECRET, TWILIO_TOKEN
from tests.support.providers import FakeProviders, running_providers, whatsapp_error

KOBLIAT = Path(sys.executable).parent / "kobliat"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    """The fake providers, on a free local port."""
    with running_providers(twilio_token=TWILIO_TOKEN, generic_secret=GENERIC_SECRET) as state:
        yield state
    assert state.malformed == []


def outbox(db: Database, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command against the test database, in a directory without a .env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}
    env.update(KOBLIAT_DATABASE_URL=db.url, COLUMNS="300", NO_COLOR="1")
    return subprocess.run(
        [str(KOBLIAT), "outbox", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_failed_send_is_listed_without_its_text_and_retried(
    db: Database, fake: FakeProviders, tmp_path: Path
) -> None:
    fake.script("whatsapp", whatsapp_error(131049, "healthy ecosystem engagement"))
    with sending_app(db, fake) as client:
        chat = open_whatsapp(client, db)
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "secret plan"})
        message_id = posted.json()["id"]
        settled(client, chat, message_id, "failed")

    listed = outbox(db, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert message_id in listed.stdout and "whatsapp" in listed.stdout
    assert "131049" in listed.stdout
    assert "secret plan" not in listed.stdout

    unknown = outbox(db, tmp_path, "retry", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1 and "not a failed send" in unknown.stderr
    retried = outbox(db, tmp_path, "retry", message_id)
    assert retried.returncode == 0, retried.stderr
    assert f"queued {message_id}" in retried.stdout

    with sending_app(db, fake) as client:
        sent = settled(client, chat, message_id, "sent")
    assert sent["external_message_id"] == fake.accepted("whatsapp")[0].external_id
    assert "no unsent messages" in outbox(db, tmp_path, "list").stderr
