"""`kill -9` of one of two `kobliat relay` processes mid-delivery, then started again: every
event reaches the NATS stream (once: JetStream drops repeats by Nats-Msg-Id) and the HTTP
subscriber, with no gap in any aggregate; the subscriber sees repeats only as at-least-once
delivery allows (a replay from the last recorded point of an aggregate the dead relay held)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.webhooks import AUTH
from tests.reliability.checks import (
    assert_stored_once,
    assert_stream_complete,
    figures,
    ledger_figures,
    settle,
    stream_state,
)
from tests.support.ledger import leases_held, repeats_as_at_least_once_allows, waited
from tests.support.load import Load
from tests.support.nats import NatsServer
from tests.support.processes import kobliat_env, relay_process, running, serve_process
from tests.support.receiver import running_receiver

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.nats]


@pytest.mark.timeout(400)
def test_a_relay_killed_mid_delivery_leaves_no_gap(
    pg_url: str, nats_server: NatsServer, workdir: Path, rng: random.Random
) -> None:
    env = kobliat_env(pg_url, nats_url=nats_server.url, relay_batch_size=5)
    serve = serve_process({**env, "KOBLIAT_RELAY_ENABLED": "false"}, workdir)
    doomed, steady = relay_process(env, workdir, "relay-a"), relay_process(env, workdir, "relay-b")
    prefix = f"relay{rng.randrange(10**6)}"
    with running_receiver() as receiver, running(serve, doomed, steady):
        receiver.delay = 0.005  # deliveries take a moment: the kill lands mid-delivery
        made = httpx.post(
            f"{serve.base_url}/subscriptions", json={"url": receiver.url}, headers=AUTH
        )
        assert made.status_code == 201, made.text
        load = Load(serve.base_url, prefix, senders=12, rate=40, limit=400, concurrency=8)
        load.start()
        waited(lambda: len(receiver.accepted()) >= 30, timeout=120, what="deliveries to begin")
        time.sleep(rng.uniform(0.0, 1.0))
        pid = doomed.pid
        assert pid is not None
        waited(lambda: leases_held(pg_url, pid) > 0, timeout=60, what="relay A holding leases")
        held = leases_held(pg_url, pid)
        delivered_at_kill = len(receiver.accepted())
        doomed.kill()
        killed = time.monotonic()
        time.sleep(rng.uniform(0.5, 2.0))
        doomed.start()
        time.sleep(2.0)
        tally = load.finish(timeout=120)
        ledger = settle(pg_url, prefix, tally)
        expected = {e["event_id"] for e in ledger.events}
        http_done = waited(
            lambda: receiver.accepted_ids() >= expected,
            timeout=200,
            what="every event at the HTTP subscriber",
            every=0.5,
        )
        complete_after_kill = time.monotonic() - killed
        stream = stream_state(nats_server.url, ledger, timeout=60)
    arrivals = [d.event for d in receiver.accepted()]
    order = repeats_as_at_least_once_allows(arrivals)
    figures(
        "relay-kill-9",
        **tally.summary(),
        **ledger_figures(ledger, tally),
        delivered_before_kill=delivered_at_kill,
        leases_held_by_killed_relay=held,
        http_received=len(arrivals),
        http_distinct=len({e["id"] for e in arrivals}),
        http_repeats=order["repeats"],
        http_rewinds=order["rewinds"],
        http_complete_after_load_s=round(http_done, 1),
        all_delivered_after_kill_s=round(complete_after_kill, 1),
        **stream,
    )
    assert delivered_at_kill > 0, "the kill landed mid-delivery"
    assert {e["id"] for e in arrivals} == expected
    assert tally.acknowledged == {h.message_id for h in load.hooks}
    assert_stored_once(ledger, tally)
    assert_stream_complete(stream)
