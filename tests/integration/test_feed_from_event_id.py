"""Reading the feed from an event id (as a consumer of NATS or webhooks has) never skips an
event whose transaction commits later."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest

from kobliat.customers import service as customers
from kobliat.db.engine import Database
from kobliat.db.uow import UnitOfWork
from kobliat.events import outbox
from tests.builders import a_conversation, events_of


def _read_all(db: Database, cursor: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with db.reading() as conn:
        while True:
            page = outbox.read_feed(conn, after=cursor, limit=3)
            if not page.events:
                return found
            found.extend(page.events)
            cursor = page.next_cursor


@pytest.mark.postgres
def test_feed_from_an_event_id_ahead_of_the_horizon_reads_a_later_commit(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        a_conversation(db)  # something before
        slow_started, release = threading.Event(), threading.Event()

        def slow(uow: UnitOfWork) -> None:
            customers.find_or_create(uow, external_type="telegram", external_id="777")
            slow_started.set()
            release.wait(10)

        worker = threading.Thread(target=lambda: db.run(slow))
        worker.start()
        assert slow_started.wait(10)
        fast = a_conversation(db)  # commits while the slow transaction is still open
        # The id of the fast conversation's last event, as NATS or a webhook delivered it.
        seen = [e for e in events_of(db) if e["subject"] == str(fast.id)][-1]
        with db.reading() as conn:
            cursor = outbox.cursor_after_event(conn, UUID(seen["id"]))
        release.set()
        worker.join()

        after = _read_all(db, cursor)
        late = next(e for e in events_of(db) if e["data"].get("external_id") == "777")
        assert late["id"] in {e["id"] for e in after}, "the later commit was skipped"
        ids = [e["id"] for e in after]
        assert len(ids) == len(set(ids))
    finally:
        db.dispose()


def test_feed_from_an_event_id_reads_on_just_after_it(db: Database) -> None:
    for _ in range(3):
        a_conversation(db)
    every = events_of(db)
    with db.reading() as conn:
        cursor = outbox.cursor_after_event(conn, UUID(every[4]["id"]))
    assert [e["id"] for e in _read_all(db, cursor)] == [e["id"] for e in every[5:]]
