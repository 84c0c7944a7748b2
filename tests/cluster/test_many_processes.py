"""Three `kobliat serve` and two `kobliat relay` processes on one PostgreSQL: webhooks spread
over the servers (a delivery and its retry landing on different ones) are stored once, every
event reaches NATS and an HTTP subscriber in per-aggregate order, and when the relay holding
the dispatch lock (or, between dispatches, holding delivery leases) is killed with SIGKILL,
the other delivers the rest. Prints how long that took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from kobliat.db.engine import Database
from kobliat.db.tables import conversations, customers, delivery_heads, messages
from kobliat.events.delivery_store import DISPATCH_LOCK
from tests.cluster.load import WebhookLoad
from tests.cluster.processes import Kobliat, environment
from tests.support.events import assert_in_aggregate_order, expected_events, read_stream
from tests.support.nats import NatsServer
from tests.support.receiver import Receiver, running_receiver
from tests.support.relay import wait_for

pytestmark = [pytest.mark.nats, pytest.mark.postgres]
TOTAL = 600
SENDERS = 20


@contextmanager
def _processes(pg_url: str, nats_url: str, tmp_path: Path) -> Iterator[list[Kobliat]]:
    """3 serve (one worker each, no relay inside) and 2 relay processes, all stopped after."""
    serve_env = environment(pg_url, relay_enabled="false", workers="1")
    procs = [Kobliat(["serve"], serve_env, tmp_path / f"serve{i}.log") for i in range(3)]
    for i in range(2):
        # PGAPPNAME names the relay's database sessions, so the test can see who dispatches.
        relay_env = {**environment(pg_url, nats_url=nats_url), "PGAPPNAME": f"relay{i}"}
        procs.append(Kobliat(["relay"], relay_env, tmp_path / f"relay{i}.log"))
    with ExitStack() as stack:
        for proc in procs:
            stack.callback(proc.stop)
        yield procs


def _subscribe(base: str, receiver: Receiver) -> None:
    answer = httpx.post(
        f"{base}/subscriptions",
        json={"url": receiver.url},
        headers={"Authorization": "Bearer test-key"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def _victim(db: Database, relays: list[Kobliat]) -> tuple[Kobliat, str]:
    """The relay holding the dispatch lock right now, preferably while it also holds delivery
    leases (the case that makes the other relay wait); else one holding leases."""
    holder = text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.objid = :key AND l.granted"
    )
    fallback: tuple[Kobliat, str] | None = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with db.reading() as conn:  # a new transaction each time: pg_stat_activity is cached
            name = conn.execute(holder, {"key": DISPATCH_LOCK}).scalar()
        if name not in ("relay0", "relay1"):
            continue
        relay = relays[int(name[-1])]
        if _leased_by(db, relay) > 0:
            return relay, "dispatch lock"
        fallback = fallback or (relay, "dispatch lock")
    if fallback is not None:
        return fallback
    leasing = [r for r in relays if _leased_by(db, r) > 0]
    return (leasing[0], "delivery leases") if leasing else (relays[0], "nothing")


def _leased_by(db: Database, relay: Kobliat) -> int:
    """Heads whose lease the (dead) relay still holds: they wait for the lease to run out."""
    owned = delivery_heads.c.lease_owner.contains(f":{relay.pid}:")
    live = delivery_heads.c.leased_until > func.now()
    with db.reading() as conn:
        query = select(func.count()).select_from(delivery_heads).where(owned, live)
        return int(conn.execute(query).scalar_one())


def _count(db: Database, table: object) -> int:
    with db.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.mark.timeout(600)
def test_three_servers_two_relays_store_once_and_deliver_everything_in_order(
    pg_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    db = Database(pg_url)
    with running_receiver() as receiver, _processes(pg_url, nats_server.url, tmp_path) as procs:
        serves, relays = procs[:3], procs[3:]
        for proc in procs:
            proc.start()
        receiver.delay = 0.02  # a subscriber taking its time: relays hold leases while it works
        _subscribe(serves[0].base, receiver)
        bases = [s.base for s in serves]
        # Two senders of the same deliveries: every webhook arrives at least twice, at the same
        # time, on different processes (a provider retrying while the first is in flight).
        loads = [
            WebhookLoad(bases, total=TOTAL, senders=SENDERS, retry_every=3),
            WebhookLoad(bases[1:] + bases[:1], total=TOTAL, senders=SENDERS, retry_every=7),
        ]
        with loads[0].running(), loads[1].running():
            wait_for(lambda: len(receiver.accepted_ids()) > 300, timeout=180, what="deliveries")
            victim, holding = _victim(db, relays)
            victim.kill()
            killed_at = time.monotonic()
            orphaned = _leased_by(db, victim)
        expected = expected_events(db)
        wait_for(lambda: receiver.accepted_ids() >= set(expected), timeout=300, what="HTTP")
        delivered_after = time.monotonic() - killed_at
        wait_for(
            lambda: {m["msg_id"] for m in read_stream(nats_server.url)} >= set(expected),
            timeout=120,
            what="NATS",
        )
        stream = read_stream(nats_server.url)

    assert all(set(load.statuses) == {200} and load.sent == TOTAL for load in loads)
    assert _count(db, messages) == TOTAL, "each webhook stored once"
    assert _count(db, customers) == SENDERS + 1, "each sender once, and the business number"
    assert _count(db, conversations) == SENDERS
    http_events = [d.event for d in receiver.accepted()]
    assert {e["id"] for e in http_events} == set(expected)
    assert_in_aggregate_order(http_events)
    ids = [m["msg_id"] for m in stream]
    assert set(ids) == set(expected) and len(ids) == len(set(ids))
    assert_in_aggregate_order(m["event"] for m in stream)
    print(
        f"\nkilled the relay holding the {holding} (and {orphaned} delivery leases); "
        f"{len(expected)} events; the other relay "
        f"had delivered everything {delivered_after:.1f} s later; HTTP received "
        f"{len(http_events)} deliveries for {len(expected)} events"
    )
    db.dispose()
