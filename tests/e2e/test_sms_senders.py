"""SMS from short codes and alphanumeric sender ids, through the Twilio webhook."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kobliat.channels.samples import twilio
from kobliat.db.engine import Database
from kobliat.db.tables import conversations, customers, inbox
from tests.builders import count
from tests.e2e.webhooks import Webhooks, message_by_external_id, webhooks_for


def post_sms(hooks: Webhooks, *, sid: str, sender: str, to: str = twilio.SMS_NUMBER) -> None:
    body = twilio.encode(twilio.sms(message_sid=sid, sender=sender, to=to))
    response = hooks.twilio(body)
    assert response.status_code == 200, response.text


def sms_customers(db: Database) -> dict[str, Any]:
    with db.reading() as conn:
        rows = conn.execute(select(customers).where(customers.c.external_type == "sms"))
        return {row.external_id: row.id for row in rows}


def unprocessed(db: Database) -> int:
    with db.reading() as conn:
        rows = conn.execute(select(inbox.c.id).where(inbox.c.processed_at.is_(None)))
        return len(rows.all())


def test_sms_from_a_short_code_is_stored_under_one_stable_customer(db: Database) -> None:
    hooks = webhooks_for(db)

    post_sms(hooks, sid="SM-short-1", sender="12345")
    post_sms(hooks, sid="SM-short-2", sender="12345")

    first = message_by_external_id(db, "SM-short-1")
    second = message_by_external_id(db, "SM-short-2")
    sender = sms_customers(db)["12345"]
    assert first["sender_customer_id"] == second["sender_customer_id"] == sender
    assert first["conversation_id"] == second["conversation_id"]
    assert unprocessed(db) == 0


def test_sms_from_an_alphanumeric_sender_id_is_upper_cased_into_one_customer(
    db: Database,
) -> None:
    hooks = webhooks_for(db)

    post_sms(hooks, sid="SM-alpha-1", sender="MyBank")
    post_sms(hooks, sid="SM-alpha-2", sender="MYBANK")

    ids = sms_customers(db)
    assert "MYBANK" in ids and "MyBank" not in ids
    assert message_by_external_id(db, "SM-alpha-1")["sender_customer_id"] == ids["MYBANK"]
    assert message_by_external_id(db, "SM-alpha-2")["sender_customer_id"] == ids["MYBANK"]
    assert count(db, conversations) == 1
    assert unprocessed(db) == 0


def test_sms_to_a_short_code_makes_the_short_code_the_business_endpoint(db: Database) -> None:
    hooks = webhooks_for(db)

    post_sms(hooks, sid="SM-to-short", sender=twilio.SMS_CUSTOMER, to="898211")

    ids = sms_customers(db)
    assert set(ids) == {twilio.SMS_CUSTOMER, "898211"}
    sender = message_by_external_id(db, "SM-to-short")["sender_customer_id"]
    assert sender == ids[twilio.SMS_CUSTOMER]
