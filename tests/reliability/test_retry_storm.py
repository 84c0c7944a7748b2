"""Retry storm: every webhook posted three times at once (as a provider retrying a slow answer
does) is stored once, with one event, and no request is answered 5xx."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.reliability.checks import (
    assert_stored_once,
    assert_stream_complete,
    backend,
    figures,
    ledger_figures,
    settle,
    stream_state,
)
from tests.support.load import generic_hook, storm
from tests.support.nats import NatsServer
from tests.support.processes import kobliat_env, relay_process, running, serve_process

pytestmark = [pytest.mark.reliability, pytest.mark.nats]
WEBHOOKS = 100


@pytest.mark.timeout(300)
def test_each_webhook_posted_three_times_at_once_is_stored_once(
    db_url: str, nats_server: NatsServer, workdir: Path, rng: random.Random
) -> None:
    env = kobliat_env(db_url, nats_url=nats_server.url)
    serve = serve_process({**env, "KOBLIAT_RELAY_ENABLED": "false"}, workdir)
    relay = relay_process(env, workdir)
    prefix = f"storm{rng.randrange(10**6)}"
    hooks = [generic_hook(prefix, n, senders=15) for n in range(WEBHOOKS)]
    rng.shuffle(hooks)
    with running(serve, relay):
        tally = storm(serve.base_url, hooks, copies=3)
        ledger = settle(db_url, prefix, tally)
        stream = stream_state(nats_server.url, ledger)
    figures(
        f"retry-storm[{backend(db_url)}]",
        **tally.summary(),
        **ledger_figures(ledger, tally),
        **stream,
    )
    assert set(tally.statuses) <= {200}, tally.summary()
    assert tally.acknowledged == {h.message_id for h in hooks}
    assert_stored_once(ledger, tally)
    assert_stream_complete(stream)
    assert len(ledger.stored) == WEBHOOKS
    assert "Traceback" not in serve.log_text()
