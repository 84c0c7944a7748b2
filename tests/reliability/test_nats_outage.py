"""NATS down for a while under load: ingest goes on (every webhook answered 2xx), the relay's
lag grows while events wait in the outbox, then drains once NATS is back (same store), and no
event is missing from the stream or repeated in it."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.checks import (
    assert_stored_once,
    assert_stream_complete,
    figures,
    ledger_figures,
    settle,
    stream_state,
)
from tests.support.events import stream_count
from tests.support.ledger import waited
from tests.support.load import Load, Probe
from tests.support.nats import NatsServer
from tests.support.processes import kobliat_env, relay_process, running, serve_process

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.nats]
# Long enough for the relay's reconnect backoff to reach its cap several times over and for
# hundreds of events to pile up; a 30 s outage shows the same, only slower.
OUTAGE_SECONDS = 10.0


@pytest.mark.timeout(400)
def test_nats_outage_under_load_delays_events_and_loses_none(
    pg_url: str, nats_server: NatsServer, workdir: Path, rng: random.Random
) -> None:
    env = kobliat_env(pg_url, nats_url=nats_server.url)
    serve = serve_process({**env, "KOBLIAT_RELAY_ENABLED": "false"}, workdir)
    relay = relay_process(env, workdir)
    prefix = f"natsdown{rng.randrange(10**6)}"
    with running(serve, relay), Probe(f"{serve.base_url}/readyz", every=0.5) as ready:
        load = Load(serve.base_url, prefix, senders=20, rate=40, limit=1000, concurrency=16)
        load.start()
        # The fault strikes a relay at work, not one still starting.
        waited(lambda: stream_count(nats_server.url) > 0, timeout=120, what="relay at work")
        time.sleep(rng.uniform(1.0, 3.0))
        nats_server.stop()
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        nats_server.start()
        started = time.monotonic()
        time.sleep(3.0)
        tally = load.finish(timeout=120)
        ledger = settle(pg_url, prefix, tally)
        stream = stream_state(nats_server.url, ledger)
        settled = time.monotonic()
        time.sleep(1.5)  # a last readiness sample after the drain
    lag_during = [_lag(body) for _, _, body in ready.between(stopped, started)]
    lag_after = [_lag(body) for _, _, body in ready.between(settled, time.monotonic())]
    drained = [t - started for t, _, body in ready.between(started, settled) if _lag(body) < 1.0]
    figures(
        "nats-outage",
        outage_s=OUTAGE_SECONDS,
        **tally.summary(),
        **ledger_figures(ledger, tally),
        max_lag_during_outage_s=max(lag_during, default=None),
        waiting_at_nats_start=_waiting(ready.between(started - 1.0, started)),
        lag_under_1s_after_nats_start_s=round(drained[0], 1) if drained else None,
        lag_after_drain_s=lag_after[-1:],
        **stream,
    )
    assert set(tally.statuses) == {200} and not tally.transport_errors, tally.summary()
    assert max(lag_during) >= OUTAGE_SECONDS / 2, "events waited while NATS was away"
    assert lag_after and lag_after[-1] < OUTAGE_SECONDS / 2, "the lag drained"
    assert tally.acknowledged == {h.message_id for h in load.hooks}
    assert_stored_once(ledger, tally)
    assert_stream_complete(stream)


def _lag(body: Any) -> float:
    return float(body["relay"]["lag_seconds"]) if body and "relay" in body else 0.0


def _waiting(samples: list[tuple[float, int, Any]]) -> int | None:
    for _, _, body in reversed(samples):
        if body and "relay" in body:
            relay = body["relay"]
            return int(relay["undispatched"]) + sum(
                int(s["pending_aggregates"]) for s in relay["sinks"]
            )
    return None
