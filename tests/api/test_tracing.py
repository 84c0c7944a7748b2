"""Traces: spans for HTTP requests, and a caller's `traceparent` carried into the events it causes
(recorded with OpenTelemetry's in-memory exporter; both backends)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from tests.builders import events_of
from tests.e2e.webhooks import webhooks_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_a_request_span_continues_the_callers_trace_and_its_events_carry_it(
    spans: InMemorySpanExporter, client: Any, db: Database
) -> None:
    answer = client.post(
        "/customers",
        json={"external_type": "telegram", "external_id": "512345678"},
        headers={"traceparent": TRACEPARENT},
    )
    assert answer.status_code == 201
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(server) == 1
    assert format(server[0].context.trace_id, "032x") == TRACE_ID
    assert server[0].parent is not None and format(server[0].parent.span_id, "016x") == PARENT_ID
    [event] = events_of(db, "customer.created")
    version, trace_id, span_id, flags = event["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != PARENT_ID  # the request's own span, a child of the caller's


def test_without_an_exporter_the_callers_traceparent_still_reaches_the_events(
    client: Any, db: Database
) -> None:
    client.post(
        "/customers",
        json={"external_type": "telegram", "external_id": "512345679"},
        headers={"traceparent": TRACEPARENT},
    )
    client.post("/customers", json={"external_type": "telegram", "external_id": "512345670"})
    traced, untraced = events_of(db, "customer.created")
    assert traced["traceparent"] == TRACEPARENT
    assert "traceparent" not in untraced
    feed = client.get("/events").json()["data"]
    assert [e.get("traceparent") for e in feed] == [TRACEPARENT, None]
    assert "traceparent" not in feed[1] and feed[0]["data"] == traced["data"]


def test_webhooks_carry_the_callers_trace_into_their_events_on_every_path(
    spans: InMemorySpanExporter, db: Database
) -> None:
    hooks = webhooks_for(db)
    hooks.client.headers["traceparent"] = TRACEPARENT
    first = hooks.whatsapp(wa.text(message_id="wamid.traced-1"))  # a first contact
    again = hooks.whatsapp(wa.text(message_id="wamid.traced-2"))  # known sender (fast path)
    # A new sender to the known business number: its first contact's own hot path.
    new = hooks.whatsapp(wa.text(wa_id="447911000111", message_id="wamid.traced-3"))
    assert first.status_code == again.status_code == new.status_code == 200
    created = events_of(db, "message.inbound.created")
    assert len(created) == 3
    caused = [*created, *events_of(db, "customer.created"), *events_of(db, "conversation.opened")]
    assert len(caused) == 3 + 3 + 2
    assert {e["traceparent"].split("-")[1] for e in caused} == {TRACE_ID}
    ingest = [s for s in spans.get_finished_spans() if s.name == "kobliat.ingest"]
    assert len(ingest) == 3
    assert {format(s.context.trace_id, "032x") for s in ingest} == {TRACE_ID}
