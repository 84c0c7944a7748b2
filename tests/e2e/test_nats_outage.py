"""NATS goes away mid-stream: the API keeps answering, events wait in the outbox, and every one
of them is in the stream once the server is back (same store directory)."""

from __future__ import annotations

import httpx
import pytest

from kobliat.api import create_app
from tests.builders import a_conversation
from tests.support.events import (
    a_container,
    assert_in_aggregate_order,
    expected_events,
    read_stream,
    stream_count,
)
from tests.support.nats import NatsServer
from tests.support.relay import serving, wait_for

pytestmark = pytest.mark.nats

AUTH = {"authorization": "Bearer test-key"}


def _post_messages(base: str, chats: list[str], count: int, start: int) -> None:
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
        for n in range(start, start + count):
            chat = chats[n % len(chats)]
            answer = client.post(f"/conversations/{chat}/messages", json={"body": f"m{n}"})
            assert answer.status_code == 201, answer.text


@pytest.mark.timeout(600)
def test_nats_outage_delays_events_and_loses_none(db_url: str, nats_server: NatsServer) -> None:
    container = a_container(db_url, nats_url=nats_server.url, relay_enabled=True)
    chats = [str(a_conversation(container.db, channel="api").id) for _ in range(10)]
    with serving(create_app(container=container)) as base:
        _post_messages(base, chats, 200, start=0)
        wait_for(lambda: stream_count(nats_server.url) > 50, timeout=60, what="first events")

        nats_server.stop()
        _post_messages(base, chats, 300, start=200)  # the API answers throughout
        ready = httpx.get(f"{base}/readyz").json()
        nats_sink = next(s for s in ready["relay"]["sinks"] if s["sink"] == "nats")
        assert nats_sink["state_here"] in {"reconnecting", "connecting"}
        waiting = ready["relay"]["undispatched"] + nats_sink["pending_aggregates"]
        assert waiting > 0, "events wait in the outbox while NATS is away"

        nats_server.start()  # same port, same JetStream store
        _post_messages(base, chats, 100, start=500)
        expected = expected_events(container.db)
        wait_for(
            lambda: stream_count(nats_server.url) >= len(expected),
            timeout=240,
            what="every event in the stream after the outage",
        )

    stream = read_stream(nats_server.url)
    ids = [m["msg_id"] for m in stream]
    assert set(ids) == set(expected), f"missing: {len(set(expected) - set(ids))}"
    assert len(ids) == len(set(ids))
    assert_in_aggregate_order(m["event"] for m in stream)
    print(f"outage: {len(expected)} events, {len(set(ids))} distinct in the stream")
    container.close()
