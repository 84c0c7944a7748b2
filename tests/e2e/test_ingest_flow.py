"""The inbound flow over HTTP: identities, conversation keys, statuses, time and edits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kobliat.channels.records import InboundMessage
from kobliat.channels.samples import telegram, whatsapp
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.db.tables import conversation_participants, conversations, customers, pending_statuses
from kobliat.db.types import utcnow
from kobliat.inbox import service as inbox_service
from kobliat.inbox.model import Delivery
from kobliat.messages import service as messages_service
from tests.builders import count, events_of
from tests.e2e.webhooks import (
    AUTH,
    Webhooks,
    fixture,
    message_by_external_id,
    settings_for,
    webhooks_for,
)


def post_ok(hooks: Webhooks, channel: str, body: bytes) -> dict[str, Any]:
    response = hooks.post(channel, body)
    assert response.status_code == 200, response.text
    if channel == "twilio":  # answered with empty TwiML
        return {}
    answer: dict[str, Any] = response.json()
    return answer


def send_outbound(hooks: Webhooks, conversation_id: Any, external_id: str) -> dict[str, Any]:
    response = hooks.client.post(
        f"/conversations/{conversation_id}/messages",
        json={"body": "See you Friday", "external_message_id": external_id},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


def a_whatsapp_conversation(hooks: Webhooks, db: Database) -> Any:
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.opening"))
    return message_by_external_id(db, "wamid.opening")["conversation_id"]


def customer_names(db: Database) -> dict[str, str | None]:
    with db.reading() as conn:
        rows = conn.execute(select(customers.c.external_id, customers.c.name))
        return {row.external_id: row.name for row in rows}


def test_batched_whatsapp_delivery_processes_every_message_and_status(db: Database) -> None:
    hooks = webhooks_for(db)
    conversation_id = a_whatsapp_conversation(hooks, db)
    send_outbound(hooks, conversation_id, "wamid.ours-1")
    send_outbound(hooks, conversation_id, "wamid.ours-2")

    body = fixture("whatsapp", "batch")
    items = inbox_service.parse(Delivery("whatsapp", body, {}, utcnow()), settings_for(db)).items
    inbound = [item for item in items if isinstance(item, InboundMessage)]
    assert len(inbound) >= 4  # several entries, changes and messages: the point of the test

    answer = post_ok(hooks, "whatsapp", body)

    assert (answer["messages"], answer["statuses"], answer["pending_statuses"]) == (
        len(inbound),
        3,
        0,
    )
    for record in inbound:
        assert message_by_external_id(db, record.external_message_id)["direction"] == "inbound"
    assert message_by_external_id(db, "wamid.ours-1")["status"] == "read"
    assert message_by_external_id(db, "wamid.ours-2")["status"] == "delivered"
    updates = events_of(db, "message.status.updated")
    assert [e["data"]["status"] for e in updates] == ["read", "sent", "delivered"]


def test_brazil_and_mexico_wa_id_variants_are_one_customer_and_one_conversation(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    pairs = [
        (whatsapp.BR_WA_ID_WITH_NINTH_DIGIT, whatsapp.BR_WA_ID_WITHOUT_NINTH_DIGIT),
        (whatsapp.MX_WA_ID_WITH_1, whatsapp.MX_WA_ID_WITHOUT_1),
    ]
    for n, (one, other) in enumerate(pairs):
        post_ok(hooks, "whatsapp", wa.text(wa_id=one, message_id=f"wamid.v{n}a"))
        post_ok(hooks, "whatsapp", wa.text(wa_id=other, message_id=f"wamid.v{n}b"))
        first = message_by_external_id(db, f"wamid.v{n}a")
        second = message_by_external_id(db, f"wamid.v{n}b")
        assert first["sender_customer_id"] == second["sender_customer_id"]
        assert first["conversation_id"] == second["conversation_id"]
    assert count(db, customers) == 3  # two senders and the business number
    assert len(events_of(db, "conversation.opened")) == 2


def test_status_before_its_message_is_kept_then_applied_when_the_message_is_sent(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    conversation_id = a_whatsapp_conversation(hooks, db)
    early = whatsapp.status(message_id="wamid.early", status="read")
    failed = whatsapp.status(message_id="wamid.early", status="failed", error_code=131047)

    assert post_ok(hooks, "whatsapp", early)["pending_statuses"] == 1
    assert post_ok(hooks, "whatsapp", failed)["pending_statuses"] == 1
    assert count(db, pending_statuses) == 2

    sent = send_outbound(hooks, conversation_id, "wamid.early")

    assert sent["status"] == "read"
    assert message_by_external_id(db, "wamid.early")["status"] == "read"
    assert count(db, pending_statuses) == 0
    assert [e["data"]["status"] for e in events_of(db, "message.status.updated")] == [
        "failed",
        "read",
    ]


def test_status_kept_while_its_message_was_committing_is_applied_by_the_worker(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    conversation_id = a_whatsapp_conversation(hooks, db)
    send_outbound(hooks, conversation_id, "wamid.raced")
    # What a status racing the message's own transaction leaves behind: kept, never applied.
    db.run(
        lambda uow: messages_service.keep_pending_status(
            uow,
            channel="whatsapp",
            external_message_id="wamid.raced",
            status="delivered",
            at=utcnow(),
        )
    )

    assert inbox_service.apply_overdue_statuses(db) == 1

    assert message_by_external_id(db, "wamid.raced")["status"] == "delivered"
    assert count(db, pending_statuses) == 0


def test_failed_status_carries_its_error(db: Database) -> None:
    hooks = webhooks_for(db)
    send_outbound(hooks, a_whatsapp_conversation(hooks, db), whatsapp.OUR_MESSAGE_ID)

    post_ok(hooks, "whatsapp", fixture("whatsapp", "status_failed"))

    row = message_by_external_id(db, whatsapp.OUR_MESSAGE_ID)
    assert row["status"] == "failed"
    assert row["metadata"]["error"]["code"] == 131047
    (event,) = events_of(db, "message.status.updated")
    assert event["data"]["error"]["code"] == 131047


def test_statuses_never_move_backwards(db: Database) -> None:
    hooks = webhooks_for(db)
    send_outbound(hooks, a_whatsapp_conversation(hooks, db), whatsapp.OUR_MESSAGE_ID)

    for name in ("status_read", "status_delivered", "status_sent"):
        post_ok(hooks, "whatsapp", fixture("whatsapp", name))

    assert message_by_external_id(db, whatsapp.OUR_MESSAGE_ID)["status"] == "read"
    assert len(events_of(db, "message.status.updated")) == 1


def test_twilio_status_callback_updates_the_outbound_sms(db: Database) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "twilio", fixture("twilio", "sms"))
    conversation_id = message_by_external_id(db, "SMcdfb1013b0f482424ec5410a2d174797")[
        "conversation_id"
    ]
    send_outbound(hooks, conversation_id, "SMa41c09e7d25b4f7f9d0e6b1c3a8f2e55")

    post_ok(hooks, "twilio", fixture("twilio", "status_undelivered"))

    row = message_by_external_id(db, "SMa41c09e7d25b4f7f9d0e6b1c3a8f2e55")
    assert row["status"] == "failed"
    assert row["metadata"]["error"]["code"] == 30003


def test_messages_arriving_out_of_order_are_listed_in_provider_time_order(db: Database) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.later", timestamp=1767262000))
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.earlier", timestamp=1767261000))
    conversation_id = message_by_external_id(db, "wamid.later")["conversation_id"]

    page = hooks.client.get(
        f"/conversations/{conversation_id}/messages", params={"order": "asc"}, headers=AUTH
    ).json()
    detail = hooks.client.get(f"/conversations/{conversation_id}", headers=AUTH).json()

    assert [m["external_message_id"] for m in page["data"]] == ["wamid.earlier", "wamid.later"]
    assert detail["last_message_at"].startswith("2026-01-01T10:06:40")


def test_message_for_a_closed_conversation_opens_a_new_one_and_a_retry_reopens_nothing(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    first = wa.text(message_id="wamid.before-close")
    post_ok(hooks, "whatsapp", first)
    closed_id = message_by_external_id(db, "wamid.before-close")["conversation_id"]
    patched = hooks.client.patch(
        f"/conversations/{closed_id}", json={"status": "closed"}, headers=AUTH
    )
    assert patched.status_code == 200, patched.text

    # The provider retries the old message in a new delivery: stored already, nothing opens.
    retried = wa.text(message_id="wamid.before-close", body="Is the 10:30 slot still free?")
    assert post_ok(hooks, "whatsapp", retried)["duplicates"] == 1
    assert count(db, conversations) == 1

    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.after-close"))

    new_id = message_by_external_id(db, "wamid.after-close")["conversation_id"]
    assert new_id != closed_id
    assert len(events_of(db, "conversation.opened")) == 2


def test_group_message_from_a_new_sender_adds_them_as_a_member(db: Database) -> None:
    hooks = webhooks_for(db)
    group = whatsapp.GROUP_ID
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.g1", group_id=group))
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.g2", group_id=group))  # known sender
    post_ok(
        hooks,
        "whatsapp",
        wa.text(message_id="wamid.g3", group_id=group, wa_id="447911000222", name="Ravi"),
    )

    conversation_id = message_by_external_id(db, "wamid.g1")["conversation_id"]
    assert message_by_external_id(db, "wamid.g3")["conversation_id"] == conversation_id
    detail = hooks.client.get(f"/conversations/{conversation_id}", headers=AUTH).json()
    assert detail["type"] == "group"
    assert detail["group_name"]  # WhatsApp payloads carry none: a readable fallback
    assert len(detail["participants"]) == 3  # the business number and both senders
    (added,) = events_of(db, "conversation.participant.added")
    ravi = message_by_external_id(db, "wamid.g3")["sender_customer_id"]
    assert added["data"]["customer_id"] == str(ravi)
    assert added["data"]["role"] == "member"


def test_telegram_group_takes_its_name_from_the_payload_and_follows_a_rename(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "telegram", telegram.supergroup_text(update_id=1, message_id=1))
    post_ok(
        hooks,
        "telegram",
        telegram.supergroup_text(update_id=2, message_id=2, title="Clinic B — all patients"),
    )

    with db.reading() as conn:
        (row,) = conn.execute(select(conversations)).all()
    assert (row.type, row.group_name) == ("group", "Clinic B — all patients")
    (updated,) = events_of(db, "conversation.updated")
    assert updated["data"]["changes"] == {"group_name": "Clinic B — all patients"}
    assert count(db, conversation_participants) == 2


def test_new_profile_name_updates_the_customer_name(db: Database) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.n1", name="Priya"))
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.n2", name="Priya Natarajan"))
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.n3", name="Priya Natarajan"))

    assert customer_names(db)["+" + whatsapp.WA_ID] == "Priya Natarajan"
    (updated,) = events_of(db, "customer.updated")
    assert updated["data"]["changes"] == {"name": "Priya Natarajan"}


def test_edit_of_a_stored_message_is_kept_in_its_metadata_not_stored_twice(
    db: Database,
) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "telegram", telegram.private_text())
    post_ok(hooks, "telegram", telegram.edited_message())
    post_ok(hooks, "telegram", telegram.edited_message(update_id=telegram.UPDATE_ID + 7))

    row = message_by_external_id(db, f"{telegram.USER_ID}:{telegram.MESSAGE_ID}")
    assert row["body"] == "Thursday afternoon please"
    (edit,) = row["metadata"]["edits"]
    assert edit["body"] == "Thursday afternoon please, after 3pm"
    assert len(events_of(db, "message.inbound.created")) == 1


def test_reply_to_a_stored_message_links_to_it(db: Database) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.question"))
    post_ok(hooks, "whatsapp", wa.text(message_id="wamid.answer", reply_to="wamid.question"))

    question = message_by_external_id(db, "wamid.question")
    reply_to = message_by_external_id(db, "wamid.answer")["metadata"]["reply_to"]
    assert reply_to["external_message_id"] == "wamid.question"
    assert reply_to["stored_message_id"] == str(question["id"])


def test_sender_and_business_endpoint_are_customers_of_the_channel(db: Database) -> None:
    hooks = webhooks_for(db)
    post_ok(hooks, "whatsapp", fixture("whatsapp", "text"))

    names = customer_names(db)
    assert set(names) == {"+" + whatsapp.WA_ID, "+" + whatsapp.DISPLAY_PHONE_NUMBER}
    with db.reading() as conn:
        business = conn.execute(
            select(customers).where(customers.c.external_id == "+" + whatsapp.DISPLAY_PHONE_NUMBER)
        ).one()
    assert business.external_type == "whatsapp"
    assert business.metadata["phone_number_id"] == whatsapp.PHONE_NUMBER_ID


def test_nul_characters_in_a_payload_are_stored_as_replacement_characters(db: Database) -> None:
    hooks = webhooks_for(db)
    body = telegram.private_text(
        update_id=990001, message_id=990001, first_name="To\u0000mas", text="hi\u0000there"
    )
    answer = post_ok(hooks, "telegram", body)
    assert answer["status"] == "processed", answer
    stored = message_by_external_id(db, f"{telegram.USER_ID}:990001")
    assert stored["body"] == "hi\ufffdthere"
    assert "\u0000" not in str(stored["metadata"])
