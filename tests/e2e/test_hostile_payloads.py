"""Odd text and odd shapes in signed webhooks: each item stands or falls alone."""

from __future__ import annotations

from typing import Any

from kobliat.channels.samples import generic
from kobliat.channels.samples import whatsapp as wa_envelope
from kobliat.channels.samples._json import dump
from kobliat.channels.samples.whatsapp import contact, entry, envelope, message_item
from kobliat.db.engine import Database
from kobliat.db.tables import messages
from kobliat.db.types import utcnow
from kobliat.inbox import service
from kobliat.inbox.model import MAX_ATTEMPTS
from kobliat.jsonlimits import UNSERIALISABLE
from kobliat.messages import service as messages_service
from tests.builders import a_conversation, count, events_of
from tests.e2e.inbox_helpers import inbox_rows, make_due, rename_table, store_unprocessed
from tests.e2e.webhooks import AUTH, message_by_external_id, settings_for, webhooks_for

LONE_SURROGATE = b"\\ud800"  # a JSON escape no UTF-8 text can hold


def two_whatsapp_messages(*, first_body: str, second_body: str) -> bytes:
    """One delivery carrying two text messages from two senders."""
    items = [
        message_item("text", {"body": first_body}, wa_id="447911000001", message_id="wamid.one"),
        message_item("text", {"body": second_body}, wa_id="447911000002", message_id="wamid.two"),
    ]
    change = wa_envelope.messages_change(
        messages=items,
        contacts=[contact(wa_id="447911000001"), contact(wa_id="447911000002")],
    )
    return envelope([entry([change])])


def test_lone_surrogate_in_one_message_neither_blocks_nor_loses_its_neighbour(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    body = two_whatsapp_messages(first_body="broken XX here", second_body="all fine")
    body = body.replace(b"XX", LONE_SURROGATE)

    response = hooks.whatsapp(body)

    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    assert message_by_external_id(db, "wamid.one")["body"] == "broken \ufffd here"
    assert message_by_external_id(db, "wamid.two")["body"] == "all fine"
    assert count(db, messages) == 2
    assert len(events_of(db, "message.inbound.created")) == 2
    (row,) = inbox_rows(db)
    assert row["processed_at"] is not None and row["last_error"] is None


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` deep: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def test_one_unserialisable_stored_message_never_blocks_pages_or_the_feed(
    db: Database,
) -> None:
    # Stored before limits applied to every channel (or by any path that skipped them).
    conversation = a_conversation(db)
    for external_id, metadata in (("m-fine", {"ok": True}), ("m-deep", nested(300))):
        db.run(
            lambda uow, external_id=external_id, metadata=metadata: messages_service.record_inbound(
                uow,
                conversation_id=conversation.id,
                sender_customer_id=conversation.participants[0].customer_id,
                channel="whatsapp",
                external_message_id=external_id,
                content_type="text",
                body="hello",
                sent_at=utcnow(),
                metadata=metadata,
            )
        )
    client = webhooks_for(db).client
    client.headers.update(AUTH)
    base = f"/conversations/{conversation.id}"

    page = client.get(f"{base}/messages")
    detail = client.get(base)
    feed = client.get("/events", params={"limit": 1000})

    assert page.status_code == 200, page.text
    by_id = {m["external_message_id"]: m for m in page.json()["data"]}
    assert by_id["m-fine"]["metadata"] == {"ok": True}
    assert "nested deeper than 64 levels" in by_id["m-deep"]["metadata"][UNSERIALISABLE]
    assert detail.status_code == 200, detail.text
    assert len(detail.json()["messages"]) == 2
    assert feed.status_code == 200, feed.text
    created = [e for e in feed.json()["data"] if e["type"] == "message.inbound.created"]
    assert len(created) == 2
    assert UNSERIALISABLE in created[1]["data"]


def test_items_breaking_the_json_limits_are_refused_one_by_one(db: Database) -> None:
    hooks = webhooks_for(db)
    body = dump(
        {
            "messages": [
                generic.message_obj(message_id="msg-deep", metadata=nested(100)),
                generic.message_obj(message_id="msg-good", body="fine"),
                generic.message_obj(message_id="msg-nan", metadata={"score": float("nan")}),
            ]
        }
    )

    answer = hooks.generic(body).json()

    assert (answer["status"], answer["messages"]) == ("failed", 1)
    assert message_by_external_id(db, "msg-good")["body"] == "fine"
    assert count(db, messages) == 1
    assert len(events_of(db, "message.inbound.created")) == 1
    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None
    assert "message msg-deep: InvalidInput(unstorable-payload)" in row["last_error"]
    assert "nested deeper than 64 levels" in row["last_error"]
    assert "message msg-nan: InvalidInput(unstorable-payload)" in row["last_error"]
    assert "NaN" in row["last_error"]


def test_last_attempt_applies_the_items_that_work_and_fails_the_rest(db: Database) -> None:
    # A status of a message we never sent is kept in pending_statuses; that table failing is
    # no rule and no bad data, so the delivery is retried, and the last try goes item by item.
    status = wa_envelope.status_item(message_id="wamid.ours", status="delivered")
    message = message_item("text", {"body": "still here"}, message_id="wamid.theirs")
    change = wa_envelope.messages_change(
        messages=[message], statuses=[status], contacts=[contact()]
    )
    store_unprocessed(db, envelope([entry([change])]), "half-broken")
    rename_table(db, "pending_statuses", "pending_statuses_away")
    settings = settings_for(db)

    make_due(db)
    assert service.process_due(db, settings) == 0
    assert count(db, messages) == 0 and inbox_rows(db)[0]["failed_at"] is None  # backs off
    make_due(db, attempts=MAX_ATTEMPTS - 1)
    assert service.process_due(db, settings) == 0

    assert message_by_external_id(db, "wamid.theirs")["body"] == "still here"
    (row,) = inbox_rows(db)
    assert row["failed_at"] is not None and row["attempts"] == MAX_ATTEMPTS
    assert row["last_error"].startswith(f"gave up after {MAX_ATTEMPTS} attempts: status")
    assert "wamid.theirs" not in row["last_error"]
    assert "[SQL" not in row["last_error"] and "[parameters" not in row["last_error"]


def test_a_known_senders_single_message_keeps_the_same_limits_on_the_fast_path(
    db: Database,
) -> None:
    # On PostgreSQL a known sender's single message takes the one-statement path: the limits
    # and the cleaning must hold there exactly as in the general flow.
    hooks = webhooks_for(db)
    assert hooks.generic(dump(generic.message_obj(message_id="msg-first"))).status_code == 200
    deep = hooks.generic(dump(generic.message_obj(message_id="msg-deep2", metadata=nested(100))))
    way_deep = hooks.generic(
        dump(generic.message_obj(message_id="msg-deep3", metadata=nested(300)))
    )
    broken = dump(generic.message_obj(message_id="msg-surrogate", body="odd XX text"))
    odd = hooks.generic(broken.replace(b"XX", LONE_SURROGATE))

    assert [r.status_code for r in (deep, way_deep, odd)] == [200, 200, 200]
    assert deep.json()["status"] == way_deep.json()["status"] == "failed"
    assert message_by_external_id(db, "msg-surrogate")["body"] == "odd \ufffd text"
    assert count(db, messages) == 2
