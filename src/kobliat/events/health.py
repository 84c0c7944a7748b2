"""Relay lag and per-sink backlog, read from the database (so every process reports the same),
for /readyz and the Prometheus gauges."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from kobliat import metrics
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.events import maintenance_store, sinks_store
from kobliat.events.delivery import Sink

if TYPE_CHECKING:
    from kobliat.events.relay import Relay


def _age(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def snapshot(db: Database, *, relay: Relay | None = None) -> dict[str, Any]:
    """Relay lag, undispatched rows and each sink's backlog; also refreshes the gauges.

    `relay` is this process's relay, if it runs one: its connections and counts are added.
    """
    with db.reading() as conn:
        waiting, oldest, per_sink = maintenance_store.backlog(conn)
        sinks = sinks_store.all_sinks(conn)
    now = utcnow()
    oldest_overall = min(
        [t for t in [oldest, *(b.oldest_pending for b in per_sink.values())] if t is not None],
        default=None,
    )
    lag = _age(now, oldest_overall)
    metrics.RELAY_LAG.set(lag)
    metrics.OUTBOX_UNDISPATCHED.set(waiting)
    for gauge in (metrics.SINK_PENDING, metrics.SINK_DEAD_LETTERS, metrics.SINK_LAG):
        gauge.clear()  # drop deleted subscriptions' series
    report = []
    for sink in sinks:
        found = per_sink.get(sink.id)
        entry = _sink_entry(sink, found, now)
        if relay is not None:
            entry.update(relay.sink_report(sink))
        metrics.SINK_PENDING.labels(sink.label).set(entry["pending_aggregates"])
        metrics.SINK_DEAD_LETTERS.labels(sink.label).set(entry["dead_letters"])
        metrics.SINK_LAG.labels(sink.label).set(entry["lag_seconds"])
        report.append(entry)
    loops = relay.loops_report() if relay is not None else {}
    stopped = sorted(name for name, running in loops.items() if not running)
    return {
        "running_here": relay is not None,
        # False while one of this process's relay loops is not running (it is restarted
        # within a second or so; staying False means the relay is stuck).
        "ready": not stopped,
        "loops_stopped_here": stopped,
        "lag_seconds": round(lag, 3),
        "undispatched": waiting,
        "sinks": report,
    }


def _sink_entry(
    sink: Sink, found: maintenance_store.Backlog | None, now: datetime
) -> dict[str, Any]:
    return {
        "sink": sink.label,
        "kind": sink.kind,
        "pending_aggregates": found.pending_aggregates if found else 0,
        "dead_letters": found.dead_letters if found else 0,
        "lag_seconds": round(_age(now, found.oldest_pending if found else None), 3),
    }
