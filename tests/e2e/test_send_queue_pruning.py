"""Failed sends wait for an operator's retry for a while (KOBLIAT_SEND_FAILED_RETENTION_HOURS),
then the sender's housekeeping prunes them; their messages keep the failure. Sent rows leave
the queue as they are sent, and queued or in-flight ones are never pruned, however old."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import select, update

from kobliat.db.engine import Database
from kobliat.db.tables import send_queue
from kobliat.db.types import utcnow
from kobliat.sending import service
from tests.e2e.sending_helpers import message, open_telegram, sending_app, settled, wait_for
from tests.e2e.webhooks import GENERIC_SECRET, TWILIO_TOKEN
from tests.support.providers import FakeProviders, running_providers, telegram_error

BLOCKED = telegram_error(403, "Forbidden: bot was blocked by the user")


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    """The fake providers, on a free local port."""
    with running_providers(twilio_token=TWILIO_TOKEN, generic_secret=GENERIC_SECRET) as state:
        yield state


def queue(db: Database) -> dict[str, str]:
    """Every send-queue row: message id → state."""
    with db.reading() as conn:
        rows = conn.execute(select(send_queue.c.message_id, send_queue.c.state))
        return {str(row.message_id): row.state for row in rows}


def age(db: Database, message_id: str, *, hours: float) -> None:
    """Make a queue row look last changed `hours` ago."""
    db.run(
        lambda uow: uow.connection.execute(
            update(send_queue)
            .where(send_queue.c.message_id == UUID(message_id))
            .values(updated_at=utcnow() - timedelta(hours=hours))
        )
    )


def two_failed_sends(db: Database, fake: FakeProviders) -> tuple[UUID, list[str]]:
    """A Telegram conversation with two replies the provider refused for good."""
    fake.script("telegram", BLOCKED, BLOCKED)
    with sending_app(db, fake) as client:
        chat = open_telegram(client, db)
        ids = [
            client.post(f"/conversations/{chat}/messages", json={"body": b}).json()["id"]
            for b in ("first", "second")
        ]
        for message_id in ids:
            settled(client, chat, message_id, "failed")
    assert queue(db) == {ids[0]: "failed", ids[1]: "failed"}
    return chat, ids


def test_the_sender_prunes_failed_sends_past_their_retention(
    db: Database, fake: FakeProviders
) -> None:
    chat, (old, recent) = two_failed_sends(db, fake)
    age(db, old, hours=169)  # past the default week
    age(db, recent, hours=167)

    with sending_app(db, fake) as client:  # the sender's first housekeeping pass prunes
        wait_for(lambda: queue(db) == {recent: "failed"}, what="the old failed send pruned")
        kept = message(client, chat, old)
    assert kept["status"] == "failed" and kept["metadata"]["error"]["code"] == 403


def test_only_failed_sends_are_pruned_never_queued_ones(db: Database, fake: FakeProviders) -> None:
    _, (retried, failed) = two_failed_sends(db, fake)
    db.run(lambda uow: service.retry(uow, message_ids=[UUID(retried)]))  # queued again
    age(db, retried, hours=1000)
    age(db, failed, hours=1000)

    pruned = db.run(lambda uow: service.prune_failed(uow, older_than=timedelta(hours=168)))

    assert pruned == 1
    assert queue(db) == {retried: "queued"}
