"""Dispatch, claims, outcomes, replay and pruning on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, text

from kobliat.db.engine import Database
from kobliat.db.tables import delivery_heads, outbox
from kobliat.db.types import utcnow
from kobliat.db.uow import UnitOfWork
from kobliat.events import delivery_store as store
from kobliat.events import maintenance_store, sinks_store, subscriptions
from kobliat.events import outbox as feed
from kobliat.events.delivery import Claim, Outcome, RetryPolicy, Sink
from kobliat.events.envelope import DomainEvent
from tests.builders import a_conversation, count

POLICY = RetryPolicy(base_seconds=60, max_seconds=60, max_attempts=2)


def _sink(db: Database, event_types: list[str] | None = None) -> Sink:
    return db.run(
        lambda uow: subscriptions.create(
            uow,
            url="http://127.0.0.1:9/hook",
            event_types=event_types,
            secret=None,
            allow_private=True,
        )
    )


def _dispatch(db: Database) -> None:
    db.run(
        lambda uow: store.dispatch(
            uow.connection, sinks_store.all_sinks(uow.connection), limit=1000, now=utcnow()
        )
    )


def _claim(db: Database, sink: Sink, owner: str = "me") -> list[Claim]:
    return db.run(
        lambda uow: store.claim(
            uow.connection, sink, owner=owner, limit=100, lease=timedelta(minutes=1), now=utcnow()
        )
    )


def _succeed(db: Database, sink: Sink, claims: list[Claim], owner: str = "me") -> None:
    outcomes = [
        Outcome(c.aggregate_id, c.delivered, c.covers, None, None, c.attempts) for c in claims
    ]
    db.run(
        lambda uow: store.record(
            uow.connection, sink.id, owner=owner, outcomes=outcomes, policy=POLICY, now=utcnow()
        )
    )


def _fail(db: Database, sink: Sink, claims: list[Claim]) -> int:
    outcomes = [
        Outcome(
            c.aggregate_id, c.delivered, c.delivered, c.events[0].created_at, "HTTP 500", c.attempts
        )
        for c in claims
    ]
    return db.run(
        lambda uow: store.record(
            uow.connection,
            sink.id,
            owner="me",
            outcomes=outcomes,
            policy=POLICY,
            now=utcnow() - timedelta(hours=1),
        )
    )


def test_claims_carry_each_aggregates_wanted_events_in_sequence_order(db: Database) -> None:
    sink = _sink(db, ["conversation.*"])
    chat = a_conversation(db)
    _dispatch(db)
    claims = _claim(db, sink)
    assert [c.aggregate_id for c in claims] == [str(chat.id)]  # customers are not wanted
    assert [e.sequence for e in claims[0].events] == sorted(e.sequence for e in claims[0].events)
    assert all(e.event_type.startswith("conversation.") for e in claims[0].events)
    assert _claim(db, sink, owner="other") == [], "a leased head is nobody else's"
    _succeed(db, sink, claims)
    assert count(db, delivery_heads) == 0, "caught-up heads are removed"


def test_failures_back_off_then_dead_letter_and_replay_revives(db: Database) -> None:
    sink = _sink(db)
    a_conversation(db)
    _dispatch(db)
    claims = _claim(db, sink)
    assert _fail(db, sink, claims) == 0  # attempt 1 of 2; next one is due in the past here
    again = _claim(db, sink)
    assert {c.attempts for c in again} == {1}
    assert _fail(db, sink, again) == len(again)  # attempt 2 of 2: dead
    assert _claim(db, sink) == []
    revived = db.run(lambda uow: subscriptions.replay(uow, sink.id, since=None))
    assert revived == len(again)
    assert {c.attempts for c in _claim(db, sink)} == {0}


def test_replay_since_a_time_delivers_kept_events_again(db: Database) -> None:
    sink = _sink(db)
    before = utcnow()
    chat = a_conversation(db)
    _dispatch(db)
    _succeed(db, sink, _claim(db, sink))
    db.run(lambda uow: subscriptions.replay(uow, sink.id, since=before))
    claims = {c.aggregate_id: c for c in _claim(db, sink)}
    assert claims[str(chat.id)].delivered == 0
    assert claims[str(chat.id)].events[0].sequence == 1


def test_pruning_removes_only_rows_every_sink_has_acknowledged(db: Database) -> None:
    sink = _sink(db)
    delivered = a_conversation(db)
    pending = a_conversation(db)
    _dispatch(db)
    claims = _claim(db, sink)
    _succeed(db, sink, [c for c in claims if c.aggregate_id != str(pending.id)])
    a_conversation(db)  # not dispatched yet
    kept_before = count(db, outbox)

    assert (
        db.run(
            lambda uow: maintenance_store.prune(
                uow.connection, cutoff=utcnow() - timedelta(hours=1)
            )
        )
        == 0
    )
    removed = db.run(
        lambda uow: maintenance_store.prune(uow.connection, cutoff=utcnow() + timedelta(1))
    )

    with db.reading() as conn:
        left = {row.aggregate_id for row in conn.execute(select(outbox.c.aggregate_id))}
    assert str(delivered.id) not in left
    assert str(pending.id) in left
    assert removed > 0 and count(db, outbox) == kept_before - removed
    assert len(left) >= 3, "undispatched rows (the third conversation and its customers) stay"


@pytest.mark.postgres
def test_feed_keeps_aggregate_order_when_an_older_transaction_commits_later(
    pg_url: str,
) -> None:
    # (SQLite has one writer at a time, so there this cannot happen.)
    db = Database(pg_url)
    aggregate = uuid4()
    with UnitOfWork(db.engine) as older:
        # The older transaction takes its id first, then writes the aggregate's next event
        # only after a younger transaction committed one.
        older.connection.execute(text("SELECT pg_current_xact_id()"))
        db.run(lambda uow: uow.emit(_event(aggregate, "first")))
        older.emit(_event(aggregate, "second"))
        older.commit()
    with db.reading() as conn:
        page = feed.read_feed(conn, after=None, limit=10)
    assert [(e["data"]["label"], e["sequence"]) for e in page.events] == [
        ("first", 1),
        ("second", 2),
    ]
    db.dispose()


def test_feed_can_start_after_an_event_id(db: Database) -> None:
    aggregate = uuid4()
    events = [_event(aggregate, str(n)) for n in range(3)]
    db.run(lambda uow: uow.emit(*events))
    with db.reading() as conn:
        cursor = feed.cursor_after_event(conn, events[0].id)
        page = feed.read_feed(conn, after=cursor, limit=10)
        assert feed.cursor_after_event(conn, uuid4()) is None
    assert [e["id"] for e in page.events] == [str(events[1].id), str(events[2].id)]


@pytest.mark.postgres
def test_two_relays_claiming_at_once_never_share_an_aggregate(pg_url: str) -> None:
    db = Database(pg_url)
    sink = _sink(db)
    for _ in range(6):
        a_conversation(db)
    _dispatch(db)
    with UnitOfWork(db.engine) as first:
        mine = store.claim(
            first.connection, sink, owner="a", limit=4, lease=timedelta(minutes=1), now=utcnow()
        )
        theirs = _claim(db, sink, owner="b")  # while the first claim is not committed
        first.commit()
    assert len(mine) == 4
    assert {c.aggregate_id for c in mine}.isdisjoint(c.aggregate_id for c in theirs)
    assert _claim(db, sink, owner="c") == [] or not (
        {c.aggregate_id for c in _claim(db, sink, owner="c")} & {c.aggregate_id for c in mine}
    )
    db.dispose()


def _event(aggregate: UUID, label: str) -> DomainEvent:
    return DomainEvent(
        type="test.happened",
        aggregate_type="conversation",
        aggregate_id=aggregate,
        data={"label": label},
    )
