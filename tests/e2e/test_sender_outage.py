"""The sender through a PostgreSQL restart: every poll fails meanwhile, the log says so once per
interval without a traceback (never one per poll), and replies go out once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from kobliat.db.engine import Database
from tests.conftest import migrated_database
from tests.e2e.sending_helpers import open_telegram, sending_app, settled, wait_for
from tests.e2e.webhooks import GENERIC_SECRET, TWILIO_TOKEN
from tests.support.postgres import PostgresCluster
from tests.support.providers import FakeProviders, running_providers

FAILED = "sender loop failed; retrying"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    """The fake providers, on a free local port."""
    with running_providers(twilio_token=TWILIO_TOKEN, generic_secret=GENERIC_SECRET) as state:
        yield state
    assert state.malformed == []


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_the_sender_logs_an_outage_once_and_sends_after_it(
    own_cluster: PostgresCluster, fake: FakeProviders
) -> None:
    db = Database(migrated_database(own_cluster, "sender"))
    with capture_logs() as entries, sending_app(db, fake) as client:
        chat = open_telegram(client, db)
        own_cluster.pause()
        try:
            time.sleep(2)  # the sender polls every 0.05 s: some forty polls fail meanwhile
        finally:
            own_cluster.resume()
        posted = wait_for(  # a request on a connection the restart closed is answered 503
            lambda: (
                (
                    r := client.post(f"/conversations/{chat}/messages", json={"body": "back"})
                ).status_code
                == 201
                and r.json()
            ),
            what="a reply accepted after the restart",
        )
        settled(client, chat, posted["id"], "sent")
        lines = [entry for entry in entries if entry["event"] == FAILED]
        tracebacks = [entry["event"] for entry in entries if entry.get("exc_info")]
    db.dispose()

    assert tracebacks == [], "an outage is logged without a traceback"
    assert len(lines) == 1, lines  # once per 30 s, not once per poll
    assert [c.text() for c in fake.accepted("telegram")] == ["back"]
