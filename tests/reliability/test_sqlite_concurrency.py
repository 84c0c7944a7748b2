"""The SQLite default (one `kobliat serve` with its relay, no PostgreSQL) under 32 concurrent
connections, webhooks and REST reads and writes mixed: no 5xx, no "database is locked", every
acknowledged message stored once."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.webhooks import AUTH
from tests.reliability.checks import assert_stored_once, figures, ledger_figures, settle
from tests.support.load import Load
from tests.support.processes import kobliat_env, running, serve_process

pytestmark = [pytest.mark.reliability]
WEBHOOK_CONNECTIONS = 24
REST_CONNECTIONS = 8
REST_REQUESTS = 200


@pytest.mark.timeout(300)
def test_sqlite_default_under_32_connections_never_locks(
    sqlite_url: str, workdir: Path, rng: random.Random
) -> None:
    serve = serve_process(kobliat_env(sqlite_url), workdir)  # the relay runs in serve
    prefix = f"lite{rng.randrange(10**6)}"
    with running(serve):
        load = Load(serve.base_url, prefix, rate=400, limit=400, concurrency=WEBHOOK_CONNECTIONS)
        load.retry = False  # every answer counts as it came
        load.start()
        started = time.monotonic()
        rest = asyncio.run(_rest_traffic(serve.base_url, prefix, rng.randrange(10**6)))
        tally = load.finish(timeout=120)
        elapsed = time.monotonic() - started
        ledger = settle(sqlite_url, prefix, tally)
        log = serve.log_text()
    figures(
        "sqlite-32-connections",
        seconds=round(elapsed, 1),
        **tally.summary(),
        rest_statuses=dict(sorted(rest.items())),
        **ledger_figures(ledger, tally),
        locked_in_log=log.count("database is locked"),
    )
    assert set(tally.statuses) == {200} and not tally.transport_errors, tally.summary()
    assert set(rest) <= {200, 201}, rest
    assert "database is locked" not in log
    assert tally.acknowledged == {h.message_id for h in load.hooks}
    assert_stored_once(ledger, tally)


async def _rest_traffic(base: str, prefix: str, salt: int) -> Counter[int]:
    """REST_REQUESTS mixed reads and writes over REST_CONNECTIONS connections."""
    statuses: Counter[int] = Counter()
    jobs = list(range(REST_REQUESTS))
    limits = httpx.Limits(max_connections=REST_CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=60, limits=limits) as http:

        async def worker() -> None:
            while jobs:
                n = jobs.pop()
                if n % 4 == 0:
                    new = {"external_type": "email", "external_id": f"{prefix}-{salt}-{n}@x.test"}
                    answer = await http.post("/customers", json=new)
                elif n % 4 == 1:
                    answer = await http.get("/events", params={"limit": 50})
                else:
                    answer = await http.get("/conversations", params={"limit": 20})
                statuses[answer.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(REST_CONNECTIONS)))
    return statuses
