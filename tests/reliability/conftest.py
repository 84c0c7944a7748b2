"""Fixtures of the fault-injection suite: a logged seed, a PostgreSQL cluster a test may stop,
and the kobliat processes of a scenario (stopped after it, even when it fails)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from kobliat.db import migrate
from tests.conftest import create_database
from tests.support.postgres import PostgresCluster, PostgresUnavailable, start_cluster


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Seeded randomness; the seed is printed (set KOBLIAT_RELIABILITY_SEED to replay it)."""
    seed = int(
        os.environ.get("KOBLIAT_RELIABILITY_SEED") or random.SystemRandom().randrange(1 << 32)
    )
    print(f"\n{request.node.name}: seed {seed} (KOBLIAT_RELIABILITY_SEED={seed} replays it)")
    return random.Random(seed)


@dataclass
class OwnCluster:
    """A PostgreSQL cluster for one test alone (it may be stopped) and its migrated database."""

    cluster: PostgresCluster
    url: str


@pytest.fixture
def own_cluster() -> Iterator[OwnCluster]:
    """A fresh cluster with a migrated database `kobliat`, deleted after the test; durable,
    so that what it acknowledged survives `pause(immediate=True)` (as a crash)."""
    try:
        cluster = start_cluster(durable=True)
    except PostgresUnavailable as exc:
        if os.environ.get("KOBLIAT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        create_database(cluster, "kobliat")
        engine = create_engine(cluster.url("kobliat"))
        migrate.upgrade(engine)
        engine.dispose()
        yield OwnCluster(cluster, cluster.url("kobliat"))
    finally:
        cluster.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the scenario's processes run and log."""
    path = tmp_path / "procs"
    path.mkdir()
    return path
