"""Three `kobliat serve` and two `kobliat relay` processes on one PostgreSQL: webhooks spread
over the servers (a delivery and its retry landing on different ones) are stored once, every
event reaches NATS and an HTTP subscriber in per-aggregate order, and when the relay holding
the dispatch lock (or, between dispatches, holding delivery leases) is killed with SIGKILL,
the other takes over within a bound derived from the lease length and delivers the rest.
Prints the measured takeover time."""

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
from kobliat.events.loops import lease_seconds
from tests.cluster.load import WebhookLoad
from tests.cluster.processes import Kobliat, environment
from tests.support.events import assert_in_aggregate_order, expected_events, read_stream
from tests.support.nats import NatsServer
from tests.support.receiver import Receiver, running_receiver
from tests.support.relay import wait_for

pytestmark = [pytest.mark.nats, pytest.mark.postgres]
TOTAL = 600
SENDERS = 20
# Short sink timeouts make short leases (a lease is the delivery timeout + a few seconds, on the
# database's clock), so a dead relay's leases run out quickly.
TIMEOUT_SECONDS = 2.0
LEASE_SECONDS = lease_seconds(TIMEOUT_SECONDS)
# Takeover: the dead relay's leases run out, then the other relay claims and delivers those
# aggregates. The margin is generous because the machine running the tests is shared and
# loaded; the measured figure is printed (docs/operations.md quotes it).
TAKEOVER_BOUND = LEASE_SECONDS + 60


@contextmanager
def _processes(pg_url: str, nats_url: str, tmp_path: Path) -> Iterator[list[Kobliat]]:
    """3 serve (one worker each, no relay inside) and 2 relay processes, all stopped after."""
    serve_env = environment(pg_url, relay_enabled="false", workers="1")
    procs = [Kobliat(["serve"], serve_env, tmp_path / f"serve{i}.log") for i in range(3)]
    for i in range(2):
        # PGAPPNAME names the relay's database sessions, so the test can see who dispatches.
        timeouts = {"webhook_timeout_seconds": f"{TIMEOUT_SECONDS}"}
        timeouts["nats_publish_timeout_seconds"] = f"{TIMEOUT_SECONDS}"
        relay_env = {**environment(pg_url, nats_url=nats_url, **timeouts), "PGAPPNAME": f"relay{i}"}
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
    """The relay holding the dispatch lock, if it also holds delivery leases right now (the
    case that makes the other relay wait); else the relay holding the most live leases (their
    owner ids carry the process id); else the dispatch lock's holder."""
    holder = text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.objid = :key AND l.granted"
    )
    locker: Kobliat | None = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with db.reading() as conn:  # a new transaction each time: pg_stat_activity is cached
            name = conn.execute(holder, {"key": DISPATCH_LOCK}).scalar()
        locker = relays[int(name[-1])] if name in ("relay0", "relay1") else locker
        if locker is not None and _orphans(db, locker):
            return locker, "dispatch lock and delivery leases"
        leasing = max(relays, key=lambda r: len(_orphans(db, r)))
        if _orphans(db, leasing):
            return leasing, "delivery leases"
    return (locker, "dispatch lock") if locker is not None else (relays[0], "nothing")


def _orphans(db: Database, relay: Kobliat) -> dict[tuple[object, str], int]:
    """Heads whose live lease the relay holds, with their delivered sequence."""
    owned = delivery_heads.c.lease_owner.contains(f":{relay.pid}:")
    live = delivery_heads.c.leased_until > func.now()
    heads = delivery_heads.c
    query = select(heads.sink_id, heads.aggregate_id, heads.delivered_sequence).where(owned, live)
    with db.reading() as conn:
        return {(r.sink_id, r.aggregate_id): r.delivered_sequence for r in conn.execute(query)}


def _taken_over(db: Database, orphaned: dict[tuple[object, str], int]) -> bool:
    """Every head the dead relay had leased has been delivered further by another relay (or
    caught up entirely: caught-up heads are deleted)."""
    heads = delivery_heads.c
    with db.reading() as conn:
        rows = conn.execute(select(heads.sink_id, heads.aggregate_id, heads.delivered_sequence))
        now = {(r.sink_id, r.aggregate_id): r.delivered_sequence for r in rows}
    return all(now.get(key, seq + 1) > seq for key, seq in orphaned.items())


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
            orphaned = _orphans(db, victim)
            before = len(receiver.accepted_ids())
            wait_for(
                lambda: _taken_over(db, orphaned) and len(receiver.accepted_ids()) > before,
                timeout=TAKEOVER_BOUND + 60,
                what="takeover",
            )
            takeover = time.monotonic() - killed_at
        expected = expected_events(db)
        wait_for(lambda: receiver.accepted_ids() >= set(expected), timeout=300, what="HTTP")
        delivered_after = time.monotonic() - killed_at
        wait_for(
            lambda: {m["msg_id"] for m in read_stream(nats_server.url)} >= set(expected),
            timeout=120,
            what="NATS",
        )
        stream = read_stream(nats_server.url)

    assert takeover <= TAKEOVER_BOUND, f"takeover took {takeover:.1f} s"
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
        f"\nkilled the relay holding the {holding} ({len(orphaned)} live delivery leases, "
        f"lease {LEASE_SECONDS:.0f} s); the other relay took over in {takeover:.1f} s "
        f"(bound {TAKEOVER_BOUND:.0f} s); {len(expected)} events; it "
        f"had delivered everything {delivered_after:.1f} s later; HTTP received "
        f"{len(http_events)} deliveries for {len(expected)} events"
    )
    db.dispose()
