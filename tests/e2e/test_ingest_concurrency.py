"""Exactly once under concurrency: simultaneous retries and first contacts, over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from kobliat.channels.samples import generic as generic_samples
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.db.tables import conversations, customers, inbox, messages
from tests.builders import count, events_of
from tests.e2e.webhooks import webhooks_for


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[int]:
    """Run every call in its own thread, released together; their status codes."""
    barrier = threading.Barrier(len(calls))
    codes: list[int] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], httpx.Response]) -> None:
        try:
            barrier.wait()
            codes.append(call().status_code)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return codes


def test_twenty_identical_deliveries_at_once_store_one_message_and_one_event(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    body = wa.text(message_id="wamid.storm")

    codes = at_once([lambda: hooks.whatsapp(body) for _ in range(20)])

    assert codes == [200] * 20
    assert count(db, inbox) == 1
    assert count(db, messages) == 1
    assert len(events_of(db, "message.inbound.created")) == 1
    assert len(events_of(db, "customer.created")) == 2
    assert len(events_of(db, "conversation.opened")) == 1


def test_same_message_in_twenty_different_deliveries_at_once_is_stored_once(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    body = generic_samples.message(message_id="msg-resent")

    # Each delivery has its own webhook-id, so only the message id can tell they are one.
    codes = at_once([lambda: hooks.generic(body) for _ in range(20)])

    assert codes == [200] * 20
    assert count(db, inbox) == 20
    assert count(db, messages) == 1
    assert len(events_of(db, "message.inbound.created")) == 1
    assert count(db, conversations) == 1


def test_parallel_first_contacts_from_one_new_sender_create_one_customer_and_conversation(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    bodies = [wa.text(message_id=f"wamid.first-{n}", body=f"hello {n}") for n in range(20)]

    codes = at_once([lambda body=body: hooks.whatsapp(body) for body in bodies])

    assert codes == [200] * 20
    assert count(db, messages) == 20
    assert count(db, customers) == 2  # the sender and the business number
    assert count(db, conversations) == 1
    assert len(events_of(db, "customer.created")) == 2
    assert len(events_of(db, "conversation.opened")) == 1
    assert len(events_of(db, "message.inbound.created")) == 20


def test_parallel_first_contacts_to_a_known_business_number_store_each_message_once(
    db: Database,
) -> None:
    # The business number is known: on PostgreSQL these first contacts take the hot path's
    # first-contact function, racing on each new customer.
    hooks = webhooks_for(db)
    assert (
        hooks.whatsapp(wa.text(wa_id="15550001000", message_id="wamid.before")).status_code == 200
    )
    senders = [f"1555002{n:04d}" for n in range(5)]
    bodies = {
        (sender, n): wa.text(wa_id=sender, name=f"New {sender}", message_id=f"wamid.{sender}-{n}")
        for sender in senders
        for n in range(4)
    }
    repeated = [bodies[sender, 0] for sender in senders]  # each sender's first, twice

    codes = at_once(
        [lambda body=body: hooks.whatsapp(body) for body in [*bodies.values(), *repeated]]
    )

    assert codes == [200] * 25
    assert count(db, messages) == 1 + 20
    assert count(db, customers) == 2 + 5
    assert count(db, conversations) == 1 + 5
    assert len(events_of(db, "customer.created")) == 2 + 5
    assert len(events_of(db, "conversation.opened")) == 1 + 5
    assert len(events_of(db, "message.inbound.created")) == 1 + 20
