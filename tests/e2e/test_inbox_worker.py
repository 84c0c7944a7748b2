"""The inbox: deliveries acknowledged but not processed are processed by the worker."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode

from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.channels.samples import twilio as twilio_samples
from kobliat.channels.samples import whatsapp
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.db.tables import inbox, messages, pending_statuses
from kobliat.db.types import utcnow
from kobliat.inbox import service
from kobliat.inbox.model import RETENTION
from tests.builders import count, events_of
from tests.e2e.inbox_helpers import inbox_rows, rename_table, store_unprocessed
from tests.e2e.webhooks import (
    container_for,
    message_by_external_id,
    settings_for,
    webhooks_for,
)


def test_delivery_left_unprocessed_by_a_crash_is_processed_when_the_app_starts(
    db: Database,
) -> None:
    store_unprocessed(db, wa.text(message_id="wamid.before-crash"), "crashed-delivery")
    app = create_app(container=container_for(db))

    with TestClient(app):
        deadline = time.monotonic() + 10
        while count(db, messages) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    assert message_by_external_id(db, "wamid.before-crash")["body"]
    (row,) = inbox_rows(db)
    assert row["processed_at"] is not None
    assert len(events_of(db, "message.inbound.created")) == 1


def test_worker_does_not_store_a_message_twice_when_the_delivery_repeats_one(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    assert hooks.whatsapp(wa.text(message_id="wamid.once")).status_code == 200
    store_unprocessed(db, wa.text(message_id="wamid.once", body="again"), "repeat-delivery")

    assert service.process_due(db, settings_for(db)) == 1
    assert service.process_due(db, settings_for(db)) == 0

    assert count(db, messages) == 1
    assert len(events_of(db, "message.inbound.created")) == 1
    assert all(row["processed_at"] is not None for row in inbox_rows(db))


def test_delivery_that_fails_on_a_database_error_is_acknowledged_and_retried_with_backoff(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    rename_table(db, "messages", "messages_away")

    response = hooks.twilio(urlencode(twilio_samples.sms()).encode())

    assert response.status_code == 200
    (row,) = inbox_rows(db)
    assert (row["processed_at"], row["attempts"]) == (None, 1)
    assert "messages" in str(row["last_error"])

    db.run(lambda uow: uow.connection.execute(inbox.update().values(next_attempt_at=utcnow())))
    assert service.process_due(db, settings_for(db)) == 0
    (row,) = inbox_rows(db)
    assert (row["processed_at"], row["attempts"]) == (None, 2)
    assert row["next_attempt_at"] > utcnow()  # type: ignore[operator]

    rename_table(db, "messages_away", "messages")
    db.run(lambda uow: uow.connection.execute(inbox.update().values(next_attempt_at=utcnow())))
    assert service.process_due(db, settings_for(db)) == 1
    assert count(db, messages) == 1


def test_prune_forgets_old_processed_deliveries_and_unmatched_statuses_only(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    hooks.whatsapp(wa.text(message_id="wamid.old"))
    hooks.whatsapp(whatsapp.status(message_id="wamid.never-sent", status="read"))
    store_unprocessed(db, wa.text(message_id="wamid.stuck"), "stuck-delivery")
    long_ago = utcnow() - RETENTION - timedelta(hours=1)
    db.run(
        lambda uow: (
            uow.connection.execute(
                inbox.update()
                .values(processed_at=long_ago)
                .where(inbox.c.processed_at.is_not(None))
            ),
            uow.connection.execute(pending_statuses.update().values(received_at=long_ago)),
        )
    )
    hooks.whatsapp(wa.text(message_id="wamid.recent"))

    assert service.prune(db) == (2, 1)

    keys = {row["delivery_key"] for row in inbox_rows(db)}
    assert "stuck-delivery" in keys  # unprocessed deliveries are never pruned
    assert len(keys) == 2
    assert count(db, pending_statuses) == 0
    assert count(db, messages) == 2  # pruning the inbox never touches what it produced
