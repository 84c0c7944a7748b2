"""Deliveries that cannot succeed are failed at once, visible, and replayable; others back off."""

from __future__ import annotations

from datetime import timedelta

from kobliat.channels.samples import generic, twilio
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.channels.samples._json import dump
from kobliat.db.engine import Database
from kobliat.db.tables import customers, inbox, messages
from kobliat.db.types import utcnow
from kobliat.inbox import service
from kobliat.inbox.model import MAX_ATTEMPTS
from kobliat.inbox.worker import InboxWorker
from tests.builders import count, events_of
from tests.e2e.inbox_helpers import inbox_rows, make_due, rename_table, store_unprocessed
from tests.e2e.webhooks import message_by_external_id, settings_for, webhooks_for

NOT_A_PHONE = generic.party("phone", "call me maybe")


def test_delivery_a_domain_rule_refuses_is_answered_and_failed_without_retries(
    db: Database,
) -> None:
    hooks = webhooks_for(db)

    answer = hooks.generic(generic.message(message_id="msg-bad", sender=NOT_A_PHONE)).json()

    assert answer["status"] == "failed"
    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None and row["processed_at"] is None
    assert row["attempts"] == 1
    assert "message msg-bad: InvalidInput(invalid-phone-number)" in row["last_error"]
    make_due(db)
    assert service.process_due(db, settings_for(db)) == 0
    assert inbox_rows(db)[0]["attempts"] == 1  # never picked up again


def test_twilio_sms_from_an_impossible_sender_is_failed_at_once(db: Database) -> None:
    hooks = webhooks_for(db)

    response = hooks.twilio(twilio.encode(twilio.sms(sender="??")))

    assert response.status_code == 200
    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None
    assert "invalid-sms-address" in row["last_error"]


def test_batch_with_one_refused_message_stores_the_rest_and_fails_the_delivery(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    body = dump(
        {
            "messages": [
                generic.message_obj(message_id="msg-good", body="fine"),
                generic.message_obj(message_id="msg-bad", sender=NOT_A_PHONE),
                generic.message_obj(message_id="msg-good-too", body="also fine"),
            ]
        }
    )

    answer = hooks.generic(body).json()

    assert (answer["status"], answer["messages"]) == ("failed", 2)
    assert message_by_external_id(db, "msg-good")["body"] == "fine"
    assert message_by_external_id(db, "msg-good-too")["body"] == "also fine"
    assert len(events_of(db, "message.inbound.created")) == 2
    assert count(db, customers) == 2  # nothing of the refused message's sender is left
    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None
    assert "msg-bad" in row["last_error"] and "msg-good" not in row["last_error"]


def test_stored_delivery_that_no_longer_parses_is_failed_by_the_worker(db: Database) -> None:
    store_unprocessed(db, b'{"object": "whatsapp_business_account"}', "unparseable")

    assert service.process_due(db, settings_for(db)) == 0

    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None
    assert row["last_error"].startswith("PayloadError")


def test_worker_fails_a_stored_delivery_a_domain_rule_refuses(db: Database) -> None:
    body = generic.message(message_id="msg-bad", sender=NOT_A_PHONE)
    store_unprocessed(db, body, "stored-bad", channel="generic", **{"webhook-id": "stored-bad"})

    assert service.process_due(db, settings_for(db)) == 0

    (row,) = inbox_rows(db)
    assert (row["failed_at"] is not None, row["attempts"]) == (True, 2)
    assert "invalid-phone-number" in row["last_error"]


def test_delivery_failing_on_the_database_is_failed_after_its_last_attempt(
    db: Database,
) -> None:
    store_unprocessed(db, wa.text(message_id="wamid.unlucky"), "unlucky")
    make_due(db, attempts=MAX_ATTEMPTS - 1)
    rename_table(db, "messages", "messages_away")

    assert service.process_due(db, settings_for(db)) == 0

    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None
    assert row["last_error"].startswith(f"gave up after {MAX_ATTEMPTS} attempts")


def test_retry_replays_a_failed_delivery_once_its_cause_is_gone(db: Database) -> None:
    store_unprocessed(db, wa.text(message_id="wamid.replayed"), "replayed")
    make_due(db, attempts=MAX_ATTEMPTS - 1)
    rename_table(db, "messages", "messages_away")
    service.process_due(db, settings_for(db))
    rename_table(db, "messages_away", "messages")

    (replay,) = service.retry(db, settings_for(db), keys=["replayed"])

    assert (replay.delivery_key, replay.result, replay.channel) == (
        "replayed",
        "processed",
        "whatsapp",
    )
    assert message_by_external_id(db, "wamid.replayed")
    (row,) = inbox_rows(db)
    assert (row["processed_at"] is not None, row["failed_at"], row["attempts"]) == (
        True,
        None,
        1,
    )


def test_retry_of_every_failed_delivery_reports_each_one(db: Database) -> None:
    hooks = webhooks_for(db)
    hooks.generic(generic.message(message_id="msg-bad", sender=NOT_A_PHONE), delivery_id="d-bad")
    hooks.whatsapp(wa.text(message_id="wamid.fine"))
    store_unprocessed(db, b'{"object": "whatsapp_business_account"}', "unparseable")
    service.process_due(db, settings_for(db))

    replays = service.retry(db, settings_for(db), all_failed=True)

    assert sorted((r.delivery_key, r.result) for r in replays) == [
        ("d-bad", "failed"),
        ("unparseable", "failed"),
    ]
    assert all(r.error for r in replays)


def test_retry_names_unknown_and_processed_keys(db: Database) -> None:
    hooks = webhooks_for(db)
    key = hooks.whatsapp(wa.text(message_id="wamid.done")).json()["delivery_key"]

    replays = service.retry(db, settings_for(db), keys=[key, "no-such-delivery"])

    assert sorted((r.delivery_key, r.result) for r in replays) == sorted(
        [(key, "processed already"), ("no-such-delivery", "not found")]
    )
    assert count(db, messages) == 1


def test_worker_reports_pending_and_failed_deliveries_as_gauges(db: Database) -> None:
    hooks = webhooks_for(db)
    hooks.generic(generic.message(message_id="msg-bad", sender=NOT_A_PHONE))
    rename_table(db, "messages", "messages_away")
    hooks.whatsapp(wa.text(message_id="wamid.waiting"))  # queued for a retry in 2 s
    rename_table(db, "messages_away", "messages")
    later = utcnow() + timedelta(hours=1)
    db.run(
        lambda uow: uow.connection.execute(
            inbox.update().where(inbox.c.failed_at.is_(None)).values(next_attempt_at=later)
        )
    )

    InboxWorker(db, settings_for(db)).run_once()

    text = hooks.client.get("/metrics").text
    assert 'kobliat_inbox_deliveries{state="failed"} 1.0' in text
    assert 'kobliat_inbox_deliveries{state="pending"} 1.0' in text
