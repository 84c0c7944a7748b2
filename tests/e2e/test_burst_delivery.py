"""A burst of 1,000 state changes reaches NATS, an HTTP subscriber and the SSE stream, complete
and in per-aggregate order, with the relay running inside the app (as `kobliat serve` runs it)."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from kobliat.api import create_app
from tests.support.events import (
    a_container,
    assert_in_aggregate_order,
    burst,
    expected_events,
    read_stream,
)
from tests.support.nats import NatsServer
from tests.support.receiver import running_receiver
from tests.support.relay import serving, wait_for
from tests.support.sse import SseCollector

pytestmark = pytest.mark.nats

KEY = "test-key"


@pytest.mark.timeout(600)
def test_burst_of_1000_changes_arrives_everywhere_in_aggregate_order(
    db_url: str, nats_server: NatsServer
) -> None:
    container = a_container(db_url, nats_url=nats_server.url, relay_enabled=True)
    auth = {"authorization": f"Bearer {KEY}"}
    with running_receiver() as receiver, serving(create_app(container=container)) as base:
        created = httpx.post(f"{base}/subscriptions", json={"url": receiver.url}, headers=auth)
        assert created.status_code == 201
        secret = created.json()["secret"]
        # One reader from the start, one that drops after 300 events and resumes.
        whole = SseCollector(base, KEY).start()
        first_part = SseCollector(base, KEY, stop_after=300).start()

        burst(container.db, changes=1000)
        expected = expected_events(container.db)
        assert len(expected) >= 1000

        wait_for(lambda: receiver.accepted_ids() >= set(expected), timeout=240, what="webhooks")
        wait_for(
            lambda: len({e.data["id"] for e in whole.events}) >= len(expected),
            timeout=240,
            what="the SSE stream",
        )
        first_part.join()
        rest = SseCollector(
            base, KEY, last_event_id=first_part.events[-1].id, stop_after=len(expected) - 300
        ).start()
        rest.join(timeout=120)
        wait_for(
            lambda: {m["msg_id"] for m in read_stream(nats_server.url)} >= set(expected),
            timeout=240,
            what="NATS",
        )
        whole.stop()

    http_events = [d.event for d in receiver.accepted()]
    assert {e["id"] for e in http_events} == set(expected)
    assert_in_aggregate_order(http_events)
    for delivery in receiver.accepted()[:50]:
        Webhook(secret).verify(delivery.body, delivery.headers)

    sse_events = [e.data for e in whole.events]
    assert {e["id"] for e in sse_events} == set(expected)
    assert len(sse_events) == len({e["id"] for e in sse_events}), "the feed repeats nothing"
    assert_in_aggregate_order(sse_events)
    resumed = [e.data["id"] for e in first_part.events + rest.events]
    assert resumed == [e["id"] for e in sse_events], "resume continues exactly where it left"

    stream = read_stream(nats_server.url)
    assert {m["msg_id"] for m in stream} == set(expected)
    assert len(stream) == len(expected), "JetStream dropped every duplicate"
    assert all(m["subject"] == f"kobliat.{m['event']['type']}" for m in stream)
    assert_in_aggregate_order(m["event"] for m in stream)
    container.close()
