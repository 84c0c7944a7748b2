"""Messages stored once, provider-time order, statuses, and the event feed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from kobliat.db.engine import Database
from kobliat.db.tables import messages as messages_t
from kobliat.errors import RuleViolation
from kobliat.events import outbox
from kobliat.messages import service
from tests.builders import a_conversation, count, events_of

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def _inbound(db: Database, conv_id, wamid: str, at: datetime, body: str = "hi"):  # type: ignore[no-untyped-def]
    return db.run(
        lambda uow: service.record_inbound(
            uow,
            conversation_id=conv_id,
            sender_customer_id=None,
            channel="whatsapp",
            external_message_id=wamid,
            content_type="text",
            body=body,
            sent_at=at,
        )
    )


def test_twenty_identical_messages_at_once_store_one_and_emit_one_event(db: Database) -> None:
    conv = a_conversation(db)
    barrier = threading.Barrier(20)
    created: list[bool] = []

    def deliver() -> None:
        barrier.wait()
        created.append(_inbound(db, conv.id, "wamid.same", T0)[1])

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert created.count(True) == 1 and len(created) == 20
    assert count(db, messages_t) == 1
    assert len(events_of(db, "message.inbound.created")) == 1


def test_out_of_order_messages_list_in_provider_time_and_last_message_at_never_goes_back(
    db: Database,
) -> None:
    conv = a_conversation(db)
    _inbound(db, conv.id, "w2", T0 + timedelta(seconds=5), "second")
    _inbound(db, conv.id, "w1", T0, "first")
    with db.reading() as conn:
        newest, _ = service.list_page(conn, conv.id, cursor=None, limit=10)
        oldest, _ = service.list_page(conn, conv.id, cursor=None, limit=10, newest_first=False)
        from kobliat.conversations import service as conversations

        assert conversations.get(conn, conv.id).last_message_at == T0 + timedelta(seconds=5)
    assert [m.body for m in newest] == ["second", "first"]
    assert [m.body for m in oldest] == ["first", "second"]


def test_message_pages_walk_the_whole_history_once(db: Database) -> None:
    conv = a_conversation(db)
    for i in range(25):
        _inbound(db, conv.id, f"w{i}", T0 + timedelta(seconds=i // 3))  # ties on purpose
    seen: list[str] = []
    cursor = None
    with db.reading() as conn:
        while True:
            page, cursor = service.list_page(conn, conv.id, cursor=cursor, limit=4)
            seen.extend(m.external_message_id or "" for m in page)
            if cursor is None:
                break
    assert len(seen) == 25 and len(set(seen)) == 25


def test_outbound_with_idempotency_key_is_stored_once_and_a_different_body_is_refused(
    db: Database,
) -> None:
    conv = a_conversation(db)

    def send(body: str):  # type: ignore[no-untyped-def]
        return db.run(
            lambda uow: service.send_outbound(
                uow, conv.id, content_type="text", body=body, idempotency_key="key-1"
            )
        )

    first, created = send("hello")
    again, created_again = send("hello")
    assert created and not created_again and first.id == again.id
    with pytest.raises(RuleViolation) as refused:
        send("something else")
    assert refused.value.code == "idempotency-key-reused"
    assert len(events_of(db, "message.outbound.created")) == 1


def test_statuses_only_move_forward_and_failed_keeps_its_error(db: Database) -> None:
    conv = a_conversation(db)
    db.run(
        lambda uow: service.send_outbound(
            uow, conv.id, content_type="text", body="hi", external_message_id="wamid.out"
        )
    )

    def status(name: str, error: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
        return db.run(
            lambda uow: service.apply_status(
                uow,
                channel="whatsapp",
                external_message_id="wamid.out",
                status=name,
                at=T0,
                error=error,
            )
        )

    assert status("read").status == "read"
    assert status("delivered").status == "read"  # a late 'delivered' changes nothing
    assert status("failed", {"code": 131047}).status == "read"
    assert (
        db.run(
            lambda uow: service.apply_status(
                uow, channel="whatsapp", external_message_id="unknown", status="read", at=T0
            )
        )
        is None
    )
    updates = events_of(db, "message.status.updated")
    assert [u["data"]["status"] for u in updates] == ["read"]


def test_feed_pages_in_commit_order_and_a_cursor_can_be_polled(db: Database) -> None:
    for _ in range(5):
        a_conversation(db)
    all_events = events_of(db)
    seen = []
    cursor = None
    with db.reading() as conn:
        for _ in range(20):
            page = outbox.read_feed(conn, after=cursor, limit=4)
            if not page.events:
                break
            seen.extend(page.events)
            cursor = page.next_cursor
        assert outbox.read_feed(conn, after=cursor, limit=4).next_cursor == cursor
    assert [e["id"] for e in seen] == [e["id"] for e in all_events]
    sequences = {}
    for e in seen:
        sequences.setdefault(e["subject"], []).append(e["sequence"])
    assert all(s == list(range(1, len(s) + 1)) for s in sequences.values())


@pytest.mark.postgres
def test_feed_never_skips_an_event_whose_transaction_commits_late(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        a_conversation(db)  # something before
        slow_started = threading.Event()
        release = threading.Event()

        def slow(uow):  # type: ignore[no-untyped-def]
            from kobliat.customers import service as customers

            customers.find_or_create(uow, external_type="telegram", external_id="777")
            slow_started.set()
            release.wait(10)

        worker = threading.Thread(target=lambda: db.run(slow))
        worker.start()
        slow_started.wait(10)
        a_conversation(db)  # commits while the slow transaction is still open
        with db.reading() as conn:
            first = outbox.read_feed(conn, after=None, limit=100)
        release.set()
        worker.join()
        with db.reading() as conn:
            rest = outbox.read_feed(conn, after=first.next_cursor, limit=100)
        ids = [e["id"] for e in first.events + rest.events]
        assert sorted(ids) == sorted(e["id"] for e in events_of(db))
        assert len(ids) == len(set(ids))
    finally:
        db.dispose()
