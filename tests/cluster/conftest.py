"""Fixtures for the scale-out tests: a three-node NATS cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats import NatsCluster, NatsUnavailable


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three clustered `nats-server -js` nodes on loopback, stopped after the test."""
    try:
        cluster = NatsCluster(tmp_path / "nats")
    except NatsUnavailable as exc:
        if os.environ.get("KOBLIAT_REQUIRE_NATS") == "1":
            pytest.fail(f"nats-server is required but unavailable: {exc}")
        pytest.skip(str(exc))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
