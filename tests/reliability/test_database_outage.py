"""PostgreSQL stopped during a storm of webhooks, then started again: meanwhile webhooks are
answered 503 problems quickly (never 500, never a hang) and /readyz says not ready; the service
recovers by itself within seconds of the database returning and nothing acknowledged is lost
(every acknowledged message stored once, every event in the stream once)."""

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
from tests.reliability.conftest import OwnCluster
from tests.support.events import stream_count
from tests.support.ledger import waited
from tests.support.load import Load, Probe
from tests.support.nats import NatsServer
from tests.support.processes import kobliat_env, relay_process, running, serve_process

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.nats]
OUTAGE_SECONDS = 8.0
ANSWER_BOUND_SECONDS = 15.0  # what "quickly" means on a loaded 2-core machine
RECOVERY_BOUND_SECONDS = 30.0


@pytest.mark.timeout(400)
def test_database_outage_answers_503_and_recovers_by_itself(
    own_cluster: OwnCluster, nats_server: NatsServer, workdir: Path, rng: random.Random
) -> None:
    url = own_cluster.url
    env = kobliat_env(url, nats_url=nats_server.url)
    serve = serve_process({**env, "KOBLIAT_RELAY_ENABLED": "false"}, workdir)
    relay = relay_process(env, workdir)
    prefix = f"pgdown{rng.randrange(10**6)}"
    with running(serve, relay), Probe(f"{serve.base_url}/readyz") as ready:
        load = Load(serve.base_url, prefix, senders=20, rate=40, limit=1000, concurrency=16)
        load.start()
        # The fault strikes a relay at work, not one still starting.
        waited(lambda: stream_count(nats_server.url) > 0, timeout=120, what="relay at work")
        time.sleep(rng.uniform(1.0, 3.0))
        own_cluster.cluster.pause(immediate=True)
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        resuming = time.monotonic()  # the database may answer before `resume` returns
        own_cluster.cluster.resume()
        started = time.monotonic()
        time.sleep(5.0)
        tally = load.finish(timeout=150)
        ledger = settle(url, prefix, tally, timeout=150)
        stream = stream_state(nats_server.url, ledger, timeout=90)
    during = [s for _, s, _ in ready.between(stopped + 1.0, resuming)]
    # Requests sent and answered while the database was down (one sent just before the stop
    # may have committed and be answered late, on a loaded machine, with a rightful 200).
    outage_answers = [s for t0, t1, s in tally.spans if stopped + 1.0 <= t0 and t1 <= resuming]
    recovered = tally.first_2xx_after(started)
    lost = sorted(tally.acknowledged - set(ledger.stored))
    figures(
        "postgres-outage",
        outage_s=OUTAGE_SECONDS,
        **tally.summary(),
        answers_during_outage=len(outage_answers),
        readyz_during_outage=sorted(set(during)),
        readyz_200_after_db_start_s=_round(ready.first_after(started, 200)),
        first_webhook_2xx_after_db_start_s=_round(recovered),
        **ledger_figures(ledger, tally),
        lost_acknowledged_s_from_db_stop=[
            round(tally.acknowledged_at[m] - stopped, 2) for m in lost
        ],
        **stream,
    )
    assert during and set(during) == {503}, "readyz says not ready while the database is down"
    assert outage_answers and set(outage_answers) == {503}, "503 problems, connections kept"
    assert tally.server_errors() == 0, tally.summary()
    assert tally.slowest_answer < ANSWER_BOUND_SECONDS, tally.summary()
    assert recovered is not None and recovered < RECOVERY_BOUND_SECONDS
    assert tally.acknowledged == {h.message_id for h in load.hooks}
    assert_stored_once(ledger, tally)
    assert_stream_complete(stream)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
