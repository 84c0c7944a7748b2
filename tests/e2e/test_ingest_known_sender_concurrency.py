"""Exactly once under concurrency for known senders (on PostgreSQL: the group-committed fast
path), over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.db.tables import conversations, customers, inbox, messages
from tests.builders import count, events_of
from tests.e2e.test_ingest_concurrency import at_once
from tests.e2e.webhooks import Webhooks, container_for, webhooks_for


def test_twenty_identical_deliveries_from_a_known_sender_store_one_message(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    assert hooks.whatsapp(wa.text(message_id="wamid.hello")).status_code == 200
    body = wa.text(message_id="wamid.storm-known")

    codes = at_once([lambda: hooks.whatsapp(body) for _ in range(20)])

    assert codes == [200] * 20
    assert count(db, inbox) == 2
    assert count(db, messages) == 2
    assert len(events_of(db, "message.inbound.created")) == 2


def test_parallel_messages_from_a_known_sender_get_consecutive_sequences(db: Database) -> None:
    hooks = webhooks_for(db)
    assert hooks.whatsapp(wa.text(message_id="wamid.first")).status_code == 200
    bodies = [wa.text(message_id=f"wamid.known-{n}", body=f"hello {n}") for n in range(20)]

    codes = at_once([lambda body=body: hooks.whatsapp(body) for body in bodies])

    assert codes == [200] * 20
    assert count(db, messages) == 21
    assert count(db, customers) == 2
    assert count(db, conversations) == 1
    created = events_of(db, "message.inbound.created")
    opened = events_of(db, "conversation.opened")
    sequences = sorted(e["sequence"] for e in [*created, *opened])
    assert sequences == list(range(1, 23))
    assert {e["data"]["external_message_id"] for e in created} == {
        "wamid.first",
        *(f"wamid.known-{n}" for n in range(20)),
    }


def test_with_the_app_running_parallel_messages_are_stored_once_each(db: Database) -> None:
    # The lifespan runs: on PostgreSQL the writer is a task on the app's own event loop.
    with TestClient(create_app(container=container_for(db))) as client:
        hooks = Webhooks(client)
        assert hooks.whatsapp(wa.text(message_id="wamid.app-first")).status_code == 200
        bodies = [wa.text(message_id=f"wamid.app-{n}") for n in range(20)]

        codes = at_once([lambda body=body: hooks.whatsapp(body) for body in [*bodies, *bodies]])

    assert codes == [200] * 40
    assert count(db, messages) == 21
    created = events_of(db, "message.inbound.created")
    assert sorted(e["sequence"] for e in created) == list(range(2, 23))
