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

# Event delivery. `sink` is "nats" or an HTTP subscription's id.
EVENTS_DELIVERED = Counter("kobliat_events_delivered_total", "Events a sink acknowledged", ["sink"])
EVENT_DELIVERY_FAILURES = Counter(
    "kobliat_event_delivery_failures_total",
    "Delivery attempts a sink did not acknowledge",
    ["sink"],
)
EVENTS_DEAD_LETTERED = Counter(
    "kobliat_events_dead_lettered_total", "Aggregates parked after the last attempt", ["sink"]
)
RELAY_LAG = Gauge(
    "kobliat_relay_lag_seconds", "Age of the oldest event not yet delivered to every sink"
)
OUTBOX_UNDISPATCHED = Gauge(
    "kobliat_outbox_undispatched", "Outbox rows not yet handed to the sinks"
)
SINK_PENDING = Gauge(
    "kobliat_sink_pending_aggregates", "Aggregates with events waiting for a sink", ["sink"]
)
SINK_DEAD_LETTERS = Gauge(
    "kobliat_sink_dead_letters",
    "Aggregates dead-lettered for a sink (waiting for replay)",
    ["sink"],
)
SINK_LAG = Gauge("kobliat_sink_lag_seconds", "Age of the oldest event waiting for a sink", ["sink"])
OUTBOX_PRUNED = Counter("kobliat_outbox_pruned_total", "Delivered outbox rows pruned")
INBOX_DELIVERIES = Gauge(
    "kobliat_inbox_deliveries",
    "Unprocessed webhook deliveries: pending (will be retried) or failed (wait for an operator)",
    ["state"],
)

# The NATS sink of this process's relay (absent when it runs none).
NATS_CONNECTED = Gauge(
    "kobliat_nats_connected", "1 for the NATS server the sink is connected to", ["server"]
)
NATS_STREAM_REPLICAS = Gauge("kobliat_nats_stream_replicas", "Replicas of the JetStream stream")
NATS_STREAM_SETTINGS_APPLIED = Gauge(
    "kobliat_nats_stream_settings_applied",
    "1 when the stream has the configured replicas and duplicate window, 0 when JetStream "
    "refused a change (see /readyz)",
)
# Sending replies through the providers.
SENDS = Counter(
    "kobliat_sends_total",
    "Outbound send attempts by channel, provider and outcome (sent, retried, failed, unknown)",
    ["channel", "provider", "outcome"],
)
SEND_QUEUE = Gauge(
    "kobliat_send_queue",
    "Outbound messages waiting to be sent (queued), in flight (sending) or failed",
    ["state"],
)
