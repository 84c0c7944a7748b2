"""The relay keeps delivering through failures: a database restart, a claim loop that ends, a
relay that dies holding leases. /readyz tells the truth meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kobliat import bootstrap
from kobliat.api import create_app
from kobliat.bootstrap import Container
from kobliat.db.tables import delivery_heads
from kobliat.events import subscriptions
from kobliat.events.delivery import Sink
from kobliat.events.relay import Relay
from tests.builders import a_conversation
from tests.conftest import migrated_database
from tests.support.events import (
    a_container,
    assert_in_aggregate_order,
    expected_events,
    read_stream,
)
from tests.support.nats import NatsServer
from tests.support.postgres import PostgresCluster
from tests.support.processes import kobliat_env, relay_process, running
from tests.support.receiver import Receiver, running_receiver
from tests.support.relay import running_relay, wait_for

WAITING = "database unavailable at start; waiting"


def _subscribe(container: Container, receiver: Receiver) -> Sink:
    return container.db.run(
        lambda uow: subscriptions.create(
            uow, url=receiver.url, event_types=None, secret=None, allow_private=True
        )
    )


def _health_client(container: Container, relay: Relay) -> TestClient:
    """A client of the app's health routes that report on `relay` (the app's own workers are
    not started: the relay alone is under test)."""
    app = create_app(container=container)
    app.state.relay = relay
    return TestClient(app)


def _claim_loops(client: TestClient) -> list[int]:
    """Each sink's running claim loops, as /readyz reports them."""
    answer = client.get("/readyz")
    if answer.status_code != 200:
        return []
    sinks = answer.json()["relay"]["sinks"]
    return [s["loops_running_here"] for s in sinks if "loops_running_here" in s]


@pytest.fixture
def migrated(own_cluster: PostgresCluster) -> PostgresCluster:
    """The test's own cluster with a migrated database `kobliat` (it is stopped and started)."""
    migrated_database(own_cluster, "kobliat")
    return own_cluster


@pytest.mark.postgres
@pytest.mark.nats
@pytest.mark.timeout(600)
def test_relay_delivers_everything_after_the_database_restarts(
    migrated: PostgresCluster, nats_server: NatsServer
) -> None:
    container = a_container(migrated.url("kobliat"), nats_url=nats_server.url)
    with running_receiver() as receiver, running_relay(container) as relay:
        client = _health_client(container, relay)
        _subscribe(container, receiver)
        a_conversation(container.db)
        before = set(expected_events(container.db))
        wait_for(lambda: receiver.accepted_ids() >= before, timeout=60, what="first events")

        migrated.pause()
        try:
            wait_for(lambda: client.get("/readyz").status_code == 503, what="readyz to fail")
            refused = client.get("/readyz")
            assert refused.json()["code"] == "database-unavailable"
            assert refused.headers["Retry-After"] == "5"
            time.sleep(3)  # every relay loop fails a number of times meanwhile
        finally:
            migrated.resume()

        wait_for(lambda: client.get("/readyz").status_code == 200, what="readyz to recover")
        for _ in range(3):
            a_conversation(container.db)
        expected = set(expected_events(container.db))
        wait_for(lambda: receiver.accepted_ids() >= expected, timeout=60, what="webhooks")
        wait_for(
            lambda: {m["msg_id"] for m in read_stream(nats_server.url)} >= expected,
            timeout=60,
            what="NATS",
        )
        assert _claim_loops(client) == [2, 2], "each sink still has its claim loops"
    assert_in_aggregate_order(d.event for d in receiver.accepted())
    container.close()


def test_a_claim_loop_that_ends_is_reported_then_started_again(db_url: str) -> None:
    container = a_container(db_url)
    with running_receiver() as receiver, running_relay(container) as relay:
        client = _health_client(container, relay)
        sink = _subscribe(container, receiver)
        wait_for(lambda: _claim_loops(client) == [2], what="claim loops")

        async def end_one_claim_loop() -> httpx.Response:
            task = relay._workers[sink.id][0]
            task.cancel()
            await asyncio.wait([task])
            # Asked from the relay's own event loop, which cannot restart the loop meanwhile.
            return client.get("/readyz")

        relays_loop = relay._loops["dispatch"].get_loop()
        answer = asyncio.run_coroutine_threadsafe(end_one_claim_loop(), relays_loop).result(30)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert answer.json()["code"] == "relay-not-running"
        report = answer.json()["relay"]
        assert report["ready"] is False
        assert report["loops_stopped_here"] == [f"claim {sink.id} #0"]

        wait_for(lambda: client.get("/readyz").status_code == 200, what="the loop restarted")
        assert _claim_loops(client) == [2]
        a_conversation(container.db)
        expected = set(expected_events(container.db))
        wait_for(lambda: receiver.accepted_ids() >= expected, timeout=60, what="webhooks")
    container.close()


@contextlib.contextmanager
def a_relay_that_dies(container: Container) -> Iterator[Callable[[], None]]:
    """A relay in its own thread, and a function that kills it where it stands (its event loop
    stops: no lease is released, nothing more is recorded). It is wound down at the end."""
    relay = bootstrap.build_relay(container)
    loop = asyncio.new_event_loop()
    main = loop.create_task(relay.run())

    def run() -> None:
        with contextlib.suppress(RuntimeError):  # "Event loop stopped before Future completed"
            loop.run_until_complete(main)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def kill() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)

    try:
        yield kill
    finally:
        kill()
        relay.stop()  # let the dead relay's tasks end now rather than be left pending
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(main, 30))
        loop.close()


@contextlib.contextmanager
def running_relay_later(container: Container) -> Iterator[Callable[[], None]]:
    """A relay that starts when the yielded function is called, and stops at the end."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(running_relay(container))


def _leased(container: Container) -> int:
    with container.db.reading() as conn:
        stmt = select(func.count()).where(delivery_heads.c.lease_owner.is_not(None))
        return int(conn.execute(stmt).scalar_one())


def test_a_dead_relays_aggregates_are_delivered_by_another_relay_within_its_short_lease(
    db_url: str,
) -> None:
    container = a_container(db_url)
    with running_receiver() as receiver:
        # The first relay's deliveries are in flight when it dies (and fail afterwards).
        receiver.answer, receiver.delay = (lambda _d: 503), 3.0
        _subscribe(container, receiver)
        for _ in range(3):
            a_conversation(container.db)
        expected = set(expected_events(container.db))
        with a_relay_that_dies(container) as kill, running_relay_later(container) as start:
            wait_for(lambda: receiver.arrived >= 1, what="the first relay to deliver")
            kill()
            assert _leased(container) > 0, "the dead relay left leases behind"
            receiver.answer, receiver.delay = (lambda _d: 204), 0.0
            start()
            # Leases used to last a minute; now they last the delivery timeout (2 s here)
            # plus 4 s, so half a minute is a generous bound.
            wait_for(lambda: receiver.accepted_ids() >= expected, timeout=30, what="takeover")
    assert_in_aggregate_order(d.event for d in receiver.accepted())
    container.close()


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_a_relay_started_while_the_database_is_down_waits_then_delivers(
    migrated: PostgresCluster, tmp_path: Path
) -> None:
    container = a_container(migrated.url("kobliat"))
    with running_receiver() as receiver:
        _subscribe(container, receiver)
        a_conversation(container.db)
        expected = set(expected_events(container.db))
        container.close()
        migrated.pause()
        relay = relay_process(kobliat_env(migrated.url("kobliat")), tmp_path)
        with running(relay):
            try:
                wait_for(lambda: WAITING in relay.log_text(), what="the relay to say it waits")
                time.sleep(3)  # it tries again a few times meanwhile
                assert relay.alive(), relay.log_text()
            finally:
                migrated.resume()
            wait_for(lambda: receiver.accepted_ids() >= expected, timeout=60, what="webhooks")
            log = relay.log_text()
    assert log.count(WAITING) == 1, log  # once per 30 s, not once per attempt
    assert "Traceback" not in log
