"""`kobliat serve --workers 2` as a real process on PostgreSQL: migrations and the first key
once, two worker processes answering, every webhook stored once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from kobliat.db.engine import Database
from kobliat.db.tables import messages
from tests.cluster.load import WebhookLoad
from tests.cluster.processes import Kobliat, environment

pytestmark = pytest.mark.postgres
TOTAL = 300


@pytest.fixture
def two_workers(pg_url: str, tmp_path: Path) -> Iterator[Kobliat]:
    """`kobliat serve --workers 2` without KOBLIAT_API_KEYS, so it creates the first key."""
    env = environment(pg_url)
    env.pop("KOBLIAT_API_KEYS")
    serve = Kobliat(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    try:
        yield serve.start()
    finally:
        serve.stop()


def _processed_per_worker(base: str) -> set[float]:
    """The webhook counter as each answering process reports it (new connection each time)."""
    pattern = re.compile(r'kobliat_webhooks_total\{channel="whatsapp",outcome="processed"\} (\S+)')
    seen = set()
    for _ in range(40):
        found = pattern.search(httpx.get(f"{base}/metrics", timeout=10).text)
        seen.add(float(found.group(1)) if found else 0.0)
    return seen


@pytest.mark.timeout(300)
def test_serve_with_two_workers_answers_from_both_and_stores_once(
    two_workers: Kobliat, pg_url: str
) -> None:
    assert len(two_workers.children()) >= 2, "two worker processes"
    keys = [ln for ln in two_workers.log.read_text().splitlines() if ln.startswith("kbl_")]
    assert len(keys) == 1, "the first key is created once, before the workers"
    first = WebhookLoad([two_workers.base], total=TOTAL)
    with first.running():
        pass
    again = WebhookLoad([two_workers.base], total=TOTAL, retry_every=1)  # every one repeated
    with again.running():
        pass
    assert set(first.statuses) | set(again.statuses) == {200}
    auth = {"Authorization": f"Bearer {keys[0]}"}
    assert httpx.get(f"{two_workers.base}/conversations", headers=auth).status_code == 200
    db = Database(pg_url)
    with db.reading() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == TOTAL
    db.dispose()
    per_worker = _processed_per_worker(two_workers.base)
    assert len(per_worker) == 2 and sum(per_worker) == TOTAL, per_worker
    assert two_workers.log.read_text().count("Running upgrade") <= 4, "migrated once"
