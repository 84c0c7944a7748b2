"""A real `kobliat relay --port` process serves /healthz, /readyz (its loops, sinks and NATS
connection, as `kobliat serve` reports them) and /metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cluster.processes import Kobliat, environment
from tests.support.nats import NatsServer
from tests.support.relay import wait_for

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


def _ready(base: str) -> dict[str, object] | None:
    answer = httpx.get(f"{base}/readyz", timeout=10)
    body = answer.json()
    if answer.status_code != 200 or not body["nats"] or body["nats"]["state"] != "connected":
        return None
    sinks = body["relay"]["sinks"]
    if not sinks or not sinks[0].get("loops_running_here"):  # claim loops not started yet
        return None
    return body  # type: ignore[no-any-return]


@pytest.mark.timeout(180)
def test_relay_with_a_port_serves_health_readiness_and_metrics(
    pg_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    env = environment(pg_url, nats_url=nats_server.url)
    relay = Kobliat(["relay"], env, tmp_path / "relay.log", health_port=True)
    try:
        relay.start()  # waits for /healthz
        assert httpx.get(f"{relay.base}/healthz", timeout=10).json() == {"status": "ok"}
        wait_for(lambda: _ready(relay.base) is not None, timeout=60, what="relay ready")
        ready = _ready(relay.base)
        assert ready is not None
        assert ready["database"] == "ok"
        report = ready["relay"]
        assert isinstance(report, dict)
        assert report["running_here"] is True and report["loops_stopped_here"] == []
        assert [s["sink"] for s in report["sinks"]] == ["nats"]
        assert report["sinks"][0]["loops_running_here"] >= 1
        nats = ready["nats"]
        assert isinstance(nats, dict)
        assert nats_server.url.endswith(str(nats["server"])) and nats["replicas"] == 1
        metrics = httpx.get(f"{relay.base}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert "kobliat_relay_lag_seconds" in metrics.text
        assert 'kobliat_sink_pending_aggregates{sink="nats"}' in metrics.text
        assert httpx.get(f"{relay.base}/conversations", timeout=10).status_code == 404
    finally:
        relay.stop()
    assert relay.process is not None and relay.process.returncode == 0, relay.log.read_text()
    assert "relay stopped" in relay.log.read_text()
