"""An event's trace context travels with its deliveries: the `traceparent` header on NATS and on
HTTP subscription requests, and a delivery span in the caller's trace (in-memory exporter)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kobliat import tracing
from kobliat.customers import service as customers
from kobliat.events import subscriptions
from tests.support.events import a_container, read_stream
from tests.support.nats import NatsServer
from tests.support.receiver import running_receiver
from tests.support.relay import running_relay, wait_for

pytestmark = pytest.mark.nats

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def test_deliveries_carry_the_events_trace_context(
    spans: InMemorySpanExporter, db_url: str, nats_server: NatsServer
) -> None:
    container = a_container(db_url, nats_url=nats_server.url)
    with running_receiver() as receiver:
        container.db.run(
            lambda uow: subscriptions.create(
                uow, url=receiver.url, event_types=None, secret=None, allow_private=True
            )
        )
        with tracing.span("caller", parent={"traceparent": TRACEPARENT}):
            customer, _ = container.db.run(
                lambda uow: customers.find_or_create(
                    uow, external_type="telegram", external_id="512345678"
                )
            )
        with running_relay(container):
            wait_for(lambda: len(receiver.accepted()) >= 1, timeout=30, what="the webhook")
            wait_for(lambda: read_stream(nats_server.url) != [], timeout=30, what="NATS")
            [published] = read_stream(nats_server.url)
    container.close()
    [delivered] = receiver.accepted()
    for traceparent in (delivered.headers["traceparent"], published["traceparent"]):
        assert traceparent.split("-")[1] == TRACE_ID
    assert delivered.event["traceparent"] == published["event"]["traceparent"]
    deliveries = [s for s in spans.get_finished_spans() if s.name == "kobliat.deliver"]
    assert len(deliveries) == 2  # one per sink
    assert {format(s.context.trace_id, "032x") for s in deliveries} == {TRACE_ID}
    assert {s.attributes["event_type"] for s in deliveries} == {"customer.created"}
    assert str(customer.id) == delivered.event["subject"]
