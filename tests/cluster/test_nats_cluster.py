"""A three-node NATS cluster under webhook load: the stream's leader is killed with SIGKILL
mid-load and restarted later, then the server kobliat is connected to; every event is in the
stream exactly once, a durable consumer reads them all, each aggregate's events in order.
Prints how long publishing stalled."""

from __future__ import annotations

import asyncio
import time

import httpx
import nats
import nats.errors
import pytest
from sqlalchemy import func, select

from kobliat.api import create_app
from kobliat.db.tables import messages
from tests.cluster.load import WHATSAPP_SECRET, WebhookLoad
from tests.cluster.stream import message_count, stored, stream_leader
from tests.support.events import a_container, assert_in_aggregate_order, expected_events
from tests.support.nats import NatsCluster, NatsServer
from tests.support.relay import serving, wait_for

pytestmark = [pytest.mark.nats, pytest.mark.postgres]
TOTAL = 1000


def _precreate_small_stream(url: str) -> None:
    """An existing stream as an older kobliat made it: one replica, a 2-minute window."""

    async def create() -> None:
        nc = await nats.connect(servers=url.split(","))
        try:
            js = nc.jetstream(timeout=5)
            for _ in range(60):  # until the nodes have elected a JetStream meta leader
                try:
                    await js.add_stream(name="KOBLIAT", subjects=["kobliat.>"], num_replicas=1)
                    return
                except (nats.errors.Error, TimeoutError):
                    await asyncio.sleep(0.5)
            raise AssertionError("the cluster never accepted a stream")
        finally:
            await nc.close()

    asyncio.run(create())


def _nats_report(base: str) -> dict[str, object]:
    report: dict[str, object] = httpx.get(f"{base}/readyz", timeout=10).json()["nats"]
    return report


def _connected_node(cluster: NatsCluster, base: str) -> NatsServer:
    server = _nats_report(base)["server"]
    return next(node for node in cluster.nodes if server == f"127.0.0.1:{node.port}")


@pytest.mark.timeout(600)
def test_stream_leader_killed_under_load_loses_and_repeats_nothing(
    pg_url: str, nats_cluster: NatsCluster
) -> None:
    _precreate_small_stream(nats_cluster.url)
    container = a_container(
        pg_url,
        nats_url=nats_cluster.url,
        nats_replicas=3,
        whatsapp_app_secret=WHATSAPP_SECRET,
        # Production's publish timeout and backoff, so the stall measured is the one users see.
        nats_publish_timeout_seconds=5.0,
        nats_retry_max_seconds=10.0,
    )
    with serving(create_app(container=container)) as base:
        wait_for(lambda: _nats_report(base)["replicas"] == 3, timeout=60, what="stream at R3")
        assert _nats_report(base)["duplicate_window_seconds"] == 86400.0
        with WebhookLoad([base], total=TOTAL).running() as load:
            wait_for(lambda: message_count(nats_cluster.url) > 200, timeout=120, what="events")
            leader = stream_leader(nats_cluster.url)
            assert leader is not None
            nats_cluster.node(leader).kill()
            killed_at, sent_at_kill = time.time(), load.sent
            wait_for(lambda: load.sent >= sent_at_kill + 200, timeout=120, what="more load")
            nats_cluster.node(leader).start()  # same port, same store: it catches up
            # Then the server kobliat is connected to dies: it reconnects to a survivor.
            connected = _connected_node(nats_cluster, base)
            connected.kill()
            wait_for(
                lambda: _nats_report(base)["server"] not in (None, f"127.0.0.1:{connected.port}"),
                timeout=60,
                what="a connection to a surviving server",
            )
            connected.start()
        expected = expected_events(container.db)
        wait_for(
            lambda: message_count(nats_cluster.url) >= len(expected),
            timeout=240,
            what="every event in the stream",
        )
        report = _nats_report(base)
        exposed = httpx.get(f"{base}/metrics", timeout=10).text
    assert "kobliat_nats_stream_replicas 3.0" in exposed
    assert f'kobliat_nats_connected{{server="{report["server"]}"}} 1.0' in exposed
    stream = stored(nats_cluster.url)
    with container.db.reading() as conn:
        stored_messages = conn.execute(select(func.count()).select_from(messages)).scalar_one()
    container.close()

    assert set(load.statuses) == {200} and load.sent == TOTAL
    assert stored_messages == TOTAL, "every webhook stored once, retries included"
    ids = [m["msg_id"] for m in stream]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    assert set(ids) == set(expected)
    assert_in_aggregate_order(m["event"] for m in stream)
    assert report["replicas"] == 3 and report["problem"] is None and report["server"]
    after = [m["at"] for m in stream if m["at"] >= killed_at]
    before = [m["at"] for m in stream if m["at"] < killed_at]
    gaps = [b - a for a, b in zip(before[-1:] + after, after, strict=False)]
    print(
        f"\nstream leader {leader} killed after {sent_at_kill} webhooks; {len(expected)} events; "
        f"first publish after the kill {after[0] - killed_at:.2f} s later; "
        f"longest gap between stored events {max(gaps):.2f} s"
    )
