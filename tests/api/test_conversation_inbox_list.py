"""GET /conversations as an inbox shows it: names and the last message, one query per page
(both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from sqlalchemy import event

from kobliat import views
from kobliat.db.engine import Database
from kobliat.messages import service as messages
from tests.builders import a_conversation, a_customer

START = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


def an_inbound(
    db: Database,
    conversation_id: UUID,
    *,
    sender: UUID,
    body: str | None,
    content_type: str = "text",
    at: datetime = START,
) -> UUID:
    """A stored inbound message, as a provider delivers it."""
    message, _ = db.run(
        lambda uow: messages.record_inbound(
            uow,
            conversation_id=conversation_id,
            sender_customer_id=sender,
            channel="whatsapp",
            external_message_id=f"wamid.{conversation_id}.{at.timestamp()}",
            content_type=content_type,
            body=body,
            sent_at=at,
        )
    )
    return message.id


@contextmanager
def counted_statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _listed(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/conversations", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_page_shows_participants_names_and_the_last_inbound_message(
    db: Database, client: TestClient
) -> None:
    priya = a_customer(db, external_type="whatsapp", external_id="+447700900123", name="Priya")
    clinic = a_customer(db, external_type="whatsapp", external_id="+447700900999")
    conv = a_conversation(db, participants=[priya.id, clinic.id])
    an_inbound(db, conv.id, sender=priya.id, body="first", at=START)
    long_text = "é" * 130  # characters, not bytes
    last = an_inbound(db, conv.id, sender=priya.id, body=long_text, at=START + timedelta(1))
    an_inbound(db, conv.id, sender=priya.id, body="late arrival", at=START - timedelta(1))

    [item] = _listed(client)["data"]

    assert item["id"] == str(conv.id) and item["type"] == "direct"
    named = {
        (p["customer_id"], p["name"], p["external_type"], p["external_id"], p["role"])
        for p in item["participants"]
    }
    assert named == {
        (str(priya.id), "Priya", "whatsapp", "+447700900123", "member"),
        (str(clinic.id), None, "whatsapp", "+447700900999", "member"),
    }
    assert item["last_message"] == {
        "id": str(last),
        "direction": "inbound",
        "content_type": "text",
        "body_preview": "é" * 120,
        "body_truncated": True,
        "sender_customer_id": str(priya.id),
        "sent_at": "2026-02-01T10:00:00Z",
    }


def test_the_last_message_can_be_outbound_or_media_without_a_body(
    db: Database, client: TestClient
) -> None:
    customer = a_customer(db, name="Ana")
    texted = a_conversation(db, participants=[customer.id, a_customer(db).id])
    photo = a_conversation(db, participants=[customer.id, a_customer(db).id])
    an_inbound(db, texted.id, sender=customer.id, body="hello", at=START)
    sent = client.post(f"/conversations/{texted.id}/messages", json={"body": "Hi Ana"})
    assert sent.status_code == 201, sent.text
    an_inbound(db, photo.id, sender=customer.id, body=None, content_type="image", at=START)

    by_id = {i["id"]: i["last_message"] for i in _listed(client)["data"]}

    assert by_id[str(texted.id)]["direction"] == "outbound"
    assert by_id[str(texted.id)]["body_preview"] == "Hi Ana"
    assert by_id[str(texted.id)]["id"] == sent.json()["id"]
    assert by_id[str(texted.id)]["body_truncated"] is False
    assert by_id[str(photo.id)]["content_type"] == "image"
    assert by_id[str(photo.id)]["body_preview"] is None
    assert by_id[str(photo.id)]["body_truncated"] is False


def test_a_conversation_without_messages_has_no_last_message(
    db: Database, client: TestClient
) -> None:
    conv = a_conversation(db)

    [item] = _listed(client)["data"]

    assert item["id"] == str(conv.id)
    assert item["last_message"] is None and item["last_message_at"] is None
    assert len(item["participants"]) == 2


def test_a_group_with_many_members_does_not_shorten_the_page(
    db: Database, client: TestClient
) -> None:
    # The LIMIT counts conversations, not the (conversation, participant) rows of the join.
    members = [a_customer(db).id for _ in range(7)]
    group = a_conversation(db, type="group", participants=members, group_name="Clinic B")
    others = [a_conversation(db).id for _ in range(2)]

    page = _listed(client, limit=3, order="created")

    assert [i["id"] for i in page["data"]] == [str(group.id), *map(str, others)]
    listed = [p["customer_id"] for p in page["data"][0]["participants"]]
    assert sorted(listed) == sorted(map(str, members))
    assert page["next_cursor"] is None


def _fill(db: Database, conversations: int) -> None:
    for n in range(conversations):
        people = [a_customer(db, name=f"person {n}").id, a_customer(db).id]
        conv = a_conversation(db, participants=people)
        an_inbound(db, conv.id, sender=people[0], body=f"message {n}", at=START + timedelta(n))


def test_a_page_is_one_query_whatever_its_size(db: Database, client: TestClient) -> None:
    _fill(db, 51)
    sizes = {}
    for limit in (5, 50):
        with db.reading() as conn, counted_statements(db) as statements:
            items, cursor = views.inbox_page(conn, cursor=None, limit=limit)
        assert len(items) == limit and cursor is not None
        assert all(i.last_message and len(i.participants) == 2 for i in items)
        assert len(statements) == 1, statements
        with counted_statements(db) as statements:
            assert len(_listed(client, limit=limit)["data"]) == limit
        sizes[limit] = len(statements)

    assert sizes[5] == sizes[50]


def test_pages_and_filters_still_work(db: Database, client: TestClient) -> None:
    anna = a_customer(db, name="Anna")
    mine = [a_conversation(db, participants=[anna.id, a_customer(db).id]).id for _ in range(3)]
    theirs = [a_conversation(db, channel="telegram").id for _ in range(4)]
    an_inbound(db, mine[0], sender=anna.id, body="newest", at=datetime.now(UTC) + timedelta(1))

    walked: list[str] = []
    cursor: str | None = None
    while True:
        page = _listed(client, limit=2, **({"cursor": cursor} if cursor else {}))
        walked += [i["id"] for i in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    by_creation = [i["id"] for i in _listed(client, order="created")["data"]]
    anna_only = _listed(client, customer_id=str(anna.id))["data"]
    telegram = _listed(client, channel="telegram", limit=3)

    assert walked[0] == str(mine[0])  # most recent activity first
    assert sorted(walked) == sorted(map(str, mine + theirs)) and len(set(walked)) == 7
    assert by_creation == [str(cid) for cid in mine + theirs]
    assert {i["id"] for i in anna_only} == set(map(str, mine))
    assert all(any(p["name"] == "Anna" for p in i["participants"]) for i in anna_only)
    assert len(telegram["data"]) == 3 and telegram["next_cursor"] is not None
    assert _listed(client, type="group")["data"] == []
    assert _listed(client, status="closed")["data"] == []
