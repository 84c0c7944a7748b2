"""Conversation find-or-open, rules and lifecycle on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from kobliat.conversations import service
from kobliat.db.engine import Database
from kobliat.db.tables import conversation_participants, conversations
from kobliat.errors import RuleViolation
from tests.builders import a_conversation, a_customer, count, events_of


def _at_once(n: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in n threads released together; return results, re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_fifty_simultaneous_opens_of_one_direct_key_make_one_conversation(db: Database) -> None:
    ana, shop = a_customer(db), a_customer(db)
    results = _at_once(
        50,
        lambda: db.run(
            lambda uow: service.find_or_open(
                uow,
                type="direct",
                channel="whatsapp",
                participants=[(ana.id, None), (shop.id, None)],
            )
        ),
    )
    assert len({conv.id for conv, _ in results}) == 1
    assert sum(1 for _, opened in results if opened) == 1
    assert count(db, conversations) == 1
    assert count(db, conversation_participants) == 2
    opened = events_of(db, "conversation.opened")
    assert len(opened) == 1
    assert sorted(opened[0]["data"]["participants"]) == sorted([str(ana.id), str(shop.id)])


def test_fifty_simultaneous_group_messages_add_each_sender_once(db: Database) -> None:
    owner = a_customer(db)
    senders = [a_customer(db) for _ in range(5)]

    def arrive(i: int) -> Any:
        def work(uow: Any) -> Any:
            conv, _ = service.find_or_open(
                uow,
                type="group",
                channel="telegram",
                participants=[(owner.id, "owner")],
                external_id="-100123",
                group_name="Clinic B",
            )
            return service.ensure_participant(uow, conv, senders[i % 5].id)

        return db.run(work)

    counter = iter(range(50))
    lock = threading.Lock()

    def next_arrival() -> Any:
        with lock:
            i = next(counter)
        return arrive(i)

    _at_once(50, next_arrival)
    assert count(db, conversations) == 1
    assert count(db, conversation_participants) == 6
    assert len(events_of(db, "conversation.opened")) == 1
    assert len(events_of(db, "conversation.participant.added")) == 5


def test_the_same_parties_in_either_order_share_one_direct_conversation(db: Database) -> None:
    a, b = a_customer(db), a_customer(db)
    first = a_conversation(db, participants=[a.id, b.id])
    second = a_conversation(db, participants=[b.id, a.id])
    assert first.id == second.id
    other_channel = a_conversation(db, participants=[a.id, b.id], channel="sms")
    assert other_channel.id != first.id


def test_closed_key_opens_a_new_conversation_and_reopen_of_the_old_is_refused(db: Database) -> None:
    a, b = a_customer(db), a_customer(db)
    old = a_conversation(db, participants=[a.id, b.id])
    db.run(lambda uow: service.update(uow, old.id, status="closed"))
    new = a_conversation(db, participants=[a.id, b.id])
    assert new.id != old.id
    with pytest.raises(RuleViolation) as refused:
        db.run(lambda uow: service.update(uow, old.id, status="open"))
    assert refused.value.code == "reopen-conflicts-with-open-conversation"
    db.run(lambda uow: service.update(uow, new.id, status="closed"))
    reopened = db.run(lambda uow: service.update(uow, old.id, status="open"))
    assert reopened.status == "open"
    assert [e["type"] for e in events_of(db) if e["subject"] == str(old.id)] == [
        "conversation.opened",
        "conversation.closed",
        "conversation.updated",
        "conversation.opened",
    ]


def test_pending_and_back_and_closed_to_pending_refused(db: Database) -> None:
    conv = a_conversation(db)
    assert db.run(lambda uow: service.update(uow, conv.id, status="pending")).status == "pending"
    assert db.run(lambda uow: service.update(uow, conv.id, status="open")).status == "open"
    db.run(lambda uow: service.update(uow, conv.id, status="closed"))
    with pytest.raises(RuleViolation):
        db.run(lambda uow: service.update(uow, conv.id, status="pending"))
    with db.reading() as conn:
        assert service.get(conn, conv.id).status == "closed"


def test_direct_conversation_refuses_a_third_participant_and_a_removal(db: Database) -> None:
    conv = a_conversation(db)
    third = a_customer(db)
    with pytest.raises(RuleViolation) as added:
        db.run(lambda uow: service.add_participant(uow, conv.id, third.id, role=None))
    assert added.value.code == "direct-needs-exactly-two-participants"
    with pytest.raises(RuleViolation):
        db.run(
            lambda uow: service.remove_participant(uow, conv.id, conv.participants[0].customer_id)
        )
    assert count(db, conversation_participants) == 2
    assert events_of(db, "conversation.participant.added") == []


def test_multi_keeps_two_participants_under_concurrent_removals(db: Database) -> None:
    people = [a_customer(db) for _ in range(3)]
    conv = a_conversation(db, type="multi", participants=[p.id for p in people])
    outcomes: list[str] = []

    def remove(i: int) -> None:
        try:
            db.run(lambda uow: service.remove_participant(uow, conv.id, people[i].id))
            outcomes.append("removed")
        except RuleViolation:
            outcomes.append("refused")

    threads = [threading.Thread(target=remove, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "removed"]
    assert count(db, conversation_participants) == 2
