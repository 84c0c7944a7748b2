"""`kill -9` of `kobliat serve` at random moments under load. The senders retry what was not
answered 2xx (as providers do) and serve is started again each time: every acknowledged
webhook is stored exactly once, and once the relay has caught up every stored message's event
is in the stream exactly once, each conversation's events in `sequence` order."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.reliability.checks import (
    assert_stored_once,
    assert_stream_complete,
    figures,
    ledger_figures,
    settle,
    stream_state,
)
from tests.support.load import Load
from tests.support.nats import NatsServer
from tests.support.processes import kobliat_env, relay_process, running, serve_process

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.nats]
KILLS = 3


@pytest.mark.timeout(400)
def test_serve_killed_under_load_loses_and_repeats_nothing(
    pg_url: str, nats_server: NatsServer, workdir: Path, rng: random.Random
) -> None:
    env = kobliat_env(pg_url, nats_url=nats_server.url)
    serve = serve_process({**env, "KOBLIAT_RELAY_ENABLED": "false"}, workdir)
    relay = relay_process(env, workdir)
    prefix = f"kill{rng.randrange(10**6)}"
    restarts: list[float] = []
    with running(serve, relay):
        load = Load(serve.base_url, prefix, senders=20, rate=30, limit=600, concurrency=16)
        load.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.5))
            serve.kill()
            killed = time.monotonic()
            serve.start()  # waits until /healthz answers
            restarts.append(time.monotonic() - killed)
        time.sleep(1.0)
        tally = load.finish(timeout=120)
        ledger = settle(pg_url, prefix, tally)
        stream = stream_state(nats_server.url, ledger)
    figures(
        "serve-kill-9",
        kills=KILLS,
        restart_to_healthy_s=[round(r, 2) for r in restarts],
        **tally.summary(),
        **ledger_figures(ledger, tally),
        **stream,
    )
    assert tally.acknowledged == {h.message_id for h in load.hooks}, "every webhook got a 2xx"
    assert tally.server_errors() == 0, tally.summary()
    assert_stored_once(ledger, tally)
    assert_stream_complete(stream)
    assert set(ledger.stored) == tally.acknowledged
