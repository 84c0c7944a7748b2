"""Walking every page of GET /conversations while conversations get messages (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from fastapi.testclient import TestClient

from kobliat.db.engine import Database
from tests.builders import a_conversation, a_customer

EXISTING = 30
PAGE = 4


def _walk(client: TestClient, order: str, between_pages: Callable[[list[str]], None]) -> list[str]:
    """Every id the list returns, page by page, calling `between_pages(seen)` after each."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"order": order, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        r = client.get("/conversations", params=params)
        assert r.status_code == 200, r.text
        seen += [c["id"] for c in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return seen
        between_pages(seen)


def _writer(db: Database, client: TestClient, existing: list[UUID]) -> Callable[[list[str]], None]:
    """Between pages: a message to the oldest conversation not listed yet (it jumps to the top
    of the activity order), and a new conversation."""

    def write(seen: list[str]) -> None:
        unseen = [cid for cid in existing if str(cid) not in seen]
        if unseen:
            r = client.post(f"/conversations/{unseen[-1]}/messages", json={"body": "news"})
            assert r.status_code == 201, r.text
        a_conversation(db, participants=[a_customer(db).id, a_customer(db).id])

    return write


def test_walk_in_creation_order_returns_every_conversation_once_during_writes(
    db: Database, client: TestClient
) -> None:
    existing = [a_conversation(db).id for _ in range(EXISTING)]

    seen = _walk(client, "created", _writer(db, client, existing))

    assert len(seen) == len(set(seen))
    assert set(map(str, existing)) <= set(seen)
    assert seen[:EXISTING] == [str(cid) for cid in existing]  # oldest first


def test_walk_in_activity_order_can_miss_a_conversation_that_moves_ahead(
    db: Database, client: TestClient
) -> None:
    # The documented behaviour of the default order, and the reason `order=created` exists.
    existing = [a_conversation(db).id for _ in range(EXISTING)]

    seen = _walk(client, "activity", _writer(db, client, existing))

    assert len(seen) == len(set(seen))
    assert not set(map(str, existing)) <= set(seen)


def test_a_cursor_of_one_order_is_refused_by_the_other(client: TestClient, db: Database) -> None:
    for _ in range(3):
        a_conversation(db)
    r = client.get("/conversations", params={"order": "created", "limit": 1})
    cursor = r.json()["next_cursor"]

    refused = client.get("/conversations", params={"cursor": cursor, "limit": 1})

    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
