"""Messages whose sender is the business endpoint itself (echoes, From == To)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kobliat.channels.samples import generic, twilio, whatsapp
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.db.tables import conversation_participants, conversations, inbox, messages
from tests.builders import count, events_of
from tests.e2e.webhooks import message_by_external_id, webhooks_for

BUSINESS = generic.party("email", "support@clinic-b.example.com")


def inbox_states(db: Database) -> list[tuple[Any, Any]]:
    with db.reading() as conn:
        rows = conn.execute(select(inbox.c.processed_at, inbox.c.last_error))
        return [(row.processed_at is not None, row.last_error) for row in rows]


def test_direct_message_from_the_business_to_itself_is_ignored_not_retried(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    body = generic.message(message_id="msg-self", sender=BUSINESS, to=BUSINESS)

    answer = hooks.generic(body).json()

    assert (answer["status"], answer["messages"], answer["ignored"]) == ("processed", 0, 1)
    assert count(db, messages) == 0
    assert count(db, conversations) == 0
    assert inbox_states(db) == [(True, None)]


def test_twilio_sms_with_from_equal_to_is_acknowledged_and_ignored(db: Database) -> None:
    hooks = webhooks_for(db)
    pairs = twilio.sms(sender=twilio.SMS_NUMBER, to=twilio.SMS_NUMBER)

    assert hooks.twilio(twilio.encode(pairs)).status_code == 200

    assert count(db, messages) == 0
    assert inbox_states(db) == [(True, None)]


def test_whatsapp_message_from_the_business_number_itself_is_ignored(db: Database) -> None:
    hooks = webhooks_for(db)
    body = wa.text(wa_id=whatsapp.DISPLAY_PHONE_NUMBER, message_id="wamid.self")

    answer = hooks.whatsapp(body).json()

    assert (answer["messages"], answer["ignored"]) == (0, 1)
    assert inbox_states(db) == [(True, None)]


def test_business_writing_in_a_group_is_stored_as_an_outbound_message(db: Database) -> None:
    hooks = webhooks_for(db)
    assert hooks.generic(generic.group_message(message_id="msg-ana")).status_code == 200
    group = {"type": "group", "id": "team-frontdesk", "name": "Front desk"}
    body = generic.message(
        message_id="msg-from-us", sender=BUSINESS, to=BUSINESS, conversation=group
    )

    answer = hooks.generic(body).json()

    assert answer["messages"] == 1
    ours = message_by_external_id(db, "msg-from-us")
    theirs = message_by_external_id(db, "msg-ana")
    assert ours["conversation_id"] == theirs["conversation_id"]
    assert (ours["direction"], ours["status"]) == ("outbound", "sent")
    (event,) = events_of(db, "message.outbound.created")
    assert event["data"]["external_message_id"] == "msg-from-us"
    assert count(db, conversation_participants) == 2  # Ana and the business, once each


def test_business_writing_in_a_multi_thread_is_outbound_to_the_other_parties(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    others = [generic.party("phone", "+447700900123"), generic.party("phone", "+447700900456")]
    thread = {"type": "multi", "participants": others}
    body = generic.message(
        message_id="msg-multi-us", sender=BUSINESS, to=BUSINESS, conversation=thread
    )

    assert hooks.generic(body).json()["messages"] == 1

    ours = message_by_external_id(db, "msg-multi-us")
    assert ours["direction"] == "outbound"
    with db.reading() as conn:
        (kind,) = conn.execute(select(conversations.c.type)).scalars()
    assert kind == "multi"
    assert count(db, conversation_participants) == 3
