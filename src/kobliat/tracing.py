"""OpenTelemetry: spans for HTTP requests, ingest and event deliveries, and the W3C trace context
carried from a request into the events it produces and on to their deliveries.

Exporting is on when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads the other `OTEL_*` variables
itself. Carrying the context is always on: a `traceparent` header arriving on a webhook or a REST
call becomes the `traceparent` extension of every event the request writes (the CloudEvents
distributed-tracing extension), and NATS and HTTP deliveries of the event send it as a header.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.types import ASGIApp, Receive, Scope, Send

TRACER_NAME = "kobliat"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# kobliat's own provider rather than OpenTelemetry's global one, which can be set only once per
# process: tests install one with an in-memory exporter and take it away again.
_provider: TracerProvider | None = None


def configure(provider: TracerProvider | None = None) -> bool:
    """Use `provider` (tests pass one with an in-memory exporter), or an OTLP exporter when the
    environment names an endpoint; returns whether spans are recorded."""
    global _provider
    if provider is not None:
        _provider = provider
    elif _provider is None and any(os.environ.get(name) for name in _ENDPOINTS):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        _provider = TracerProvider(resource=Resource.create({"service.name": "kobliat"}))
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return _provider is not None


def unconfigure() -> None:
    """Stop recording spans (tests)."""
    global _provider
    _provider = None


def tracer() -> trace.Tracer:
    """kobliat's tracer: a no-op one unless a provider is configured."""
    return _provider.get_tracer(TRACER_NAME) if _provider is not None else trace.NoOpTracer()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span or incoming context, if there is one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def headers_of(envelope: Mapping[str, Any]) -> dict[str, str]:
    """The trace-context headers for delivering an event (empty when it carries none)."""
    traceparent = envelope.get("traceparent")
    return {"traceparent": traceparent} if isinstance(traceparent, str) else {}


@contextmanager
def span(name: str, *, parent: Mapping[str, Any] | None = None, **attributes: Any) -> Iterator[Any]:
    """A span around some work; with `parent` (an event envelope), a child of the request that
    wrote the event."""
    if _provider is None and parent is None:
        # Nothing is recorded, and the current context (the caller's traceparent) stays as it
        # is: skip building a no-op span on every webhook.
        yield trace.INVALID_SPAN
        return
    ctx = propagate.extract(headers_of(parent)) if parent is not None else None
    clean = {key: value for key, value in attributes.items() if value is not None}
    with tracer().start_as_current_span(name, context=ctx, attributes=clean) as current:
        yield current


class TraceContextMiddleware:
    """Plain ASGI: a server span per HTTP request when spans are recorded; otherwise the incoming
    `traceparent` is still made current, so the events the request writes carry it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.traced: ASGIApp | None = None
        if _provider is not None:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            self.traced = OpenTelemetryMiddleware(
                app, excluded_urls="healthz,readyz,metrics", tracer_provider=_provider
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.traced is not None:
            await self.traced(scope, receive, send)
            return
        if not any(name == b"traceparent" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)  # the common case: nothing to carry
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = context.attach(propagate.extract(headers))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
