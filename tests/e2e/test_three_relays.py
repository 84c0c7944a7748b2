"""Three relays at once on PostgreSQL (as on three hosts): every event delivered, and each
aggregate's sequence numbers arrive in order at the consumers."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from kobliat.events import subscriptions
from tests.support.events import (
    a_container,
    assert_in_aggregate_order,
    burst,
    expected_events,
    read_stream,
)
from tests.support.nats import NatsServer
from tests.support.receiver import running_receiver
from tests.support.relay import running_relay, wait_for

pytestmark = pytest.mark.nats


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_three_relays_deliver_everything_in_aggregate_order(
    pg_url: str, nats_server: NatsServer
) -> None:
    containers = [
        a_container(pg_url, nats_url=nats_server.url, relay_batch_size=5) for _ in range(3)
    ]
    writer = containers[0].db
    with running_receiver() as receiver, ExitStack() as stack:
        writer.run(
            lambda uow: subscriptions.create(
                uow, url=receiver.url, event_types=None, secret=None, allow_private=True
            )
        )
        relays = [stack.enter_context(running_relay(c)) for c in containers]
        # Few aggregates, many events each: the relays contend for the same aggregates.
        burst(writer, changes=1000, conversations=6, threads=12)
        expected = expected_events(writer)
        wait_for(lambda: receiver.accepted_ids() >= set(expected), timeout=240, what="webhooks")
        wait_for(
            lambda: {m["msg_id"] for m in read_stream(nats_server.url)} >= set(expected),
            timeout=240,
            what="NATS",
        )
        per_relay = [sum(c["delivered"] for c in r.counts.values()) for r in relays]

    http_events = [d.event for d in receiver.accepted()]
    assert {e["id"] for e in http_events} == set(expected)
    assert_in_aggregate_order(http_events)
    stream = read_stream(nats_server.url)
    assert {m["msg_id"] for m in stream} == set(expected)
    assert_in_aggregate_order(m["event"] for m in stream)
    print(
        f"three relays: {len(expected)} events, delivered per relay {per_relay}, "
        f"HTTP received {len(http_events)}, stream holds {len(stream)}"
    )
    assert sum(1 for n in per_relay if n > 0) >= 2, "the relays shared the work"
    for container in containers:
        container.close()
