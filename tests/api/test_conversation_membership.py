"""A conversation's identity follows its participants and its reopening (both backends)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from kobliat.conversations import service
from kobliat.db.engine import Database
from tests.builders import a_conversation, a_customer, events_of


def _multi(db: Database, people: list[UUID]) -> tuple[UUID, bool]:
    """What a message from exactly these parties resolves to: (conversation id, opened)."""
    conversation, opened = db.run(
        lambda uow: service.find_or_open(
            uow, type="multi", channel="sms", participants=[(p, None) for p in people]
        )
    )
    return conversation.id, opened


def _is_problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code and r.json()["detail"]


def test_adding_a_party_moves_a_multi_conversation_to_the_new_set(
    db: Database, client: TestClient
) -> None:
    a, b, c, d = (a_customer(db).id for _ in range(4))
    three = a_conversation(db, type="multi", channel="sms", participants=[a, b, c])

    r = client.post(f"/conversations/{three.id}/participants", json={"customer_id": str(d)})

    assert r.status_code == 201, r.text
    assert _multi(db, [d, c, b, a]) == (three.id, False)
    reopened_for_three, opened = _multi(db, [a, b, c])
    assert opened and reopened_for_three != three.id


def test_removing_a_party_moves_a_multi_conversation_to_the_smaller_set(
    db: Database, client: TestClient
) -> None:
    a, b, c, d = (a_customer(db).id for _ in range(4))
    four = a_conversation(db, type="multi", channel="sms", participants=[a, b, c, d])

    r = client.delete(f"/conversations/{four.id}/participants/{d}")

    assert r.status_code == 204, r.text
    assert _multi(db, [a, b, c]) == (four.id, False)
    assert _multi(db, [a, b, c, d])[1] is True


def test_participant_change_onto_another_open_conversations_set_is_refused(
    db: Database, client: TestClient
) -> None:
    a, b, c, d = (a_customer(db).id for _ in range(4))
    three = a_conversation(db, type="multi", channel="sms", participants=[a, b, c])
    four = a_conversation(db, type="multi", channel="sms", participants=[a, b, c, d])
    before = len(events_of(db))
    with db.reading() as conn:
        stored = [service.get(conn, three.id), service.get(conn, four.id)]

    added = client.post(f"/conversations/{three.id}/participants", json={"customer_id": str(d)})
    removed = client.delete(f"/conversations/{four.id}/participants/{d}")

    _is_problem(added, 409, "participants-match-another-conversation")
    _is_problem(removed, 409, "participants-match-another-conversation")
    assert len(events_of(db)) == before
    with db.reading() as conn:
        assert [service.get(conn, three.id), service.get(conn, four.id)] == stored
    assert _multi(db, [a, b, c]) == (three.id, False)
    assert _multi(db, [a, b, c, d]) == (four.id, False)


def test_a_closed_multi_conversation_takes_a_taken_set_and_cannot_reopen_on_it(
    db: Database, client: TestClient
) -> None:
    a, b, c, d = (a_customer(db).id for _ in range(4))
    three = a_conversation(db, type="multi", channel="sms", participants=[a, b, c])
    four = a_conversation(db, type="multi", channel="sms", participants=[a, b, c, d])
    client.patch(f"/conversations/{three.id}", json={"status": "closed"})

    added = client.post(f"/conversations/{three.id}/participants", json={"customer_id": str(d)})
    reopen = client.patch(f"/conversations/{three.id}", json={"status": "open"})

    assert added.status_code == 201, added.text
    _is_problem(reopen, 409, "reopen-conflicts-with-open-conversation")
    assert _multi(db, [a, b, c, d]) == (four.id, False)


def test_reopening_emits_the_status_update_and_an_opening(db: Database, client: TestClient) -> None:
    conversation = a_conversation(db)
    client.patch(f"/conversations/{conversation.id}", json={"status": "closed"})

    r = client.patch(f"/conversations/{conversation.id}", json={"status": "open"})

    assert r.status_code == 200, r.text
    mine = [e for e in events_of(db) if e["subject"] == str(conversation.id)]
    assert [e["type"] for e in mine] == [
        "conversation.opened",
        "conversation.closed",
        "conversation.updated",
        "conversation.opened",
    ]
    assert [e["sequence"] for e in mine] == [1, 2, 3, 4]
    assert mine[2]["data"]["changes"] == {"status": {"from": "closed", "to": "open"}}
    reopened = mine[3]["data"]
    assert reopened["conversation_id"] == str(conversation.id)
    assert sorted(reopened["participants"]) == sorted(
        str(p.customer_id) for p in conversation.participants
    )
