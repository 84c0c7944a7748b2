"""Prometheus metrics, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "kobliat_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "kobliat_http_request_seconds", "HTTP request latency", ["method", "route"]
)
WEBHOOKS = Counter(
    "kobliat_webhooks_total",
    "Webhook deliveries by channel and outcome (processed, duplicate, queued, refused ...)",
    ["channel", "outcome"],
)
INBOX_DELIVERIES = Gauge(
    "kobliat_inbox_deliveries",
    "Unprocessed webhook deliveries: pending (will be retried) or failed (wait for an operator)",
    ["state"],
)
