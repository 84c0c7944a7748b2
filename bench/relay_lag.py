"""Relay lag: from an event's commit to its publish on NATS JetStream while ingest runs at peak.

    uv run python bench/relay_lag.py                  # 32 connections for 30 s, about 1.5 minutes
    uv run python bench/relay_lag.py --seconds 10     # shorter

`kobliat serve` (the installed console script, default settings, the relay enabled and
KOBLIAT_NATS_URL set to a `nats-server -js` the bench starts) on a throwaway PostgreSQL cluster,
driven by bench/ingestbench/load.py: signed WhatsApp text webhooks over keep-alive connections,
90 % known senders and 10 % first contacts. Meanwhile:

- a subscriber in its own process (an ordered push consumer on the stream `KOBLIAT`, subjects
  `kobliat.>`) notes for each message its event id (`Nats-Msg-Id`), the time the stream stored it
  (the JetStream metadata timestamp: the publish) and the time it reached the subscriber;
- a sampler counts, once a second, the outbox rows written and the events not yet acknowledged
  by the stream (rows not dispatched, `outbox.published_at` NULL, plus events dispatched to the
  NATS sink's `delivery_heads` but not acknowledged).

The commit time of each event is PostgreSQL's own commit timestamp of its transaction
(`track_commit_timestamp = on`, set by the bench; `pg_xact_commit_timestamp` of the row's `txid`).
The row's `created_at` is shown too: kobliat takes it from the application's clock when the event
is raised, before the transaction commits, so the lag from it is an upper bound. Every clock is
this machine's. The lag is split at `outbox.published_at` (set by the relay's dispatch, from
the dispatching transaction's start) into the wait for dispatch and the wait for a claim loop
to publish. Prints p50/p99/max lag over the events written during the load, events/s
written and published, the backlog each second and its trend, and how long it takes to drain
once the load stops. Asserts nothing; a watchdog (--max-seconds) bounds it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestbench.common import begin
from ingestbench.load import Traffic, drive, serving
from ingestbench.machine import (
    Others,
    postgres_cpu,
    serve_roles,
    tree_cpu,
)
from ingestbench.natswatch import Sample, Sampler, Watcher, slope
from tests.support.nats import NatsServer
from tests.support.postgres import PostgresCluster, start_cluster

from kobliat.events import relay
from kobliat.settings import Settings

TARGET_P99_MS = 100.0
STREAM = "KOBLIAT"  # kobliat's default KOBLIAT_NATS_STREAM

# Per event of the stream: created_at and the commit time of the transaction that wrote it. The
# row's `txid` is that transaction's id (the column's default), or, when an older transaction
# wrote after a younger one on the same aggregate, the younger one's (committed earlier): never
# a later commit, so the lag is never understated.
EVENT_TIMES = """
SELECT event_id::text,
       extract(epoch FROM created_at),
       extract(epoch FROM pg_xact_commit_timestamp((txid % 4294967296)::text::xid)),
       extract(epoch FROM published_at)
FROM outbox
"""


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of the load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--known", type=int, default=1000, help="known senders")
    parser.add_argument("--new-share", type=float, default=0.1, help="share of new senders")
    parser.add_argument("--drain-seconds", type=float, default=120, help="longest drain wait")
    parser.add_argument("--log-level", default="INFO", help="KOBLIAT_LOG_LEVEL for serve")
    parser.add_argument("--wait-quiet", type=float, default=0, help="wait for a quiet machine")
    parser.add_argument("--keep", action="store_true", help="keep the serve log and samples")
    parser.add_argument("--max-seconds", type=int, default=400, help="hard stop for the bench")
    args = parser.parse_args()
    args.pool_size = 0  # serving(): the default pool
    return args


def main() -> None:
    args = arguments()

    begin(args.max_seconds, args.wait_quiet)
    workdir = Path(tempfile.mkdtemp(prefix="kobliat-relay-lag-"))
    cluster = start_cluster()
    broker = NatsServer(workdir / "nats")
    try:
        url = prepare(cluster)
        broker.start()
        env = {"KOBLIAT_RELAY_ENABLED": "true", "KOBLIAT_NATS_URL": broker.url}
        with serving(url, workdir, args, env) as (port, pid):
            watcher = Watcher(broker.url, STREAM, workdir / "stream.tsv")
            watcher.start()
            run(args, url, port, pid, cluster, watcher)
        print(f"\nload average at the end: {'/'.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        signal.alarm(0)
        broker.stop()
        cluster.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def prepare(cluster: PostgresCluster) -> str:
    """Turn on commit timestamps (a restart), create the database; returns its URL."""
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET track_commit_timestamp = on"))
        conn.execute(text("CREATE DATABASE served"))
    admin.dispose()
    cluster.pause()
    cluster.resume()
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        tracked = conn.execute(text("SHOW track_commit_timestamp")).scalar_one()
    admin.dispose()
    print(
        f"PostgreSQL {version} (throwaway cluster, fsync=off as in the tests,"
        f" track_commit_timestamp={tracked})"
    )
    return cluster.url("served")


def run(
    args: argparse.Namespace,
    url: str,
    port: int,
    pid: int,
    cluster: PostgresCluster,
    watcher: Watcher,
) -> None:
    """Warm up, drain, load for --seconds while sampling, drain again; print the figures."""
    sampler = Sampler(url)
    traffic = Traffic(port=port, known=args.known, new_share=args.new_share)
    pending = iter(range(args.known))
    warmup = drive(port, args.connections, 120, lambda: _next_known(traffic, pending))
    settled = wait_drained(sampler, args.drain_seconds)
    print(
        f"warm-up: {warmup.ok:,} webhooks (one per known sender), backlog drained in"
        f" {settled:.1f} s; subscriber has {watcher.seen:,} messages"
    )
    # Build about twice what the warm-up rate suggests the load will use.
    expected = int(2 * warmup.ok / max(warmup.seconds, 0.001) * args.seconds)
    next_request = traffic.prepared(min(max(expected, 1000), 200_000))
    sampler.start()
    server_before, pg_before, others = tree_cpu(pid), postgres_cpu(cluster), Others()
    started_wall, started = time.time(), time.monotonic()
    load = drive(port, args.connections, args.seconds, next_request)
    ended_wall, ended = time.time(), time.monotonic()
    server_cpu, pg_cpu = tree_cpu(pid) - server_before, postgres_cpu(cluster) - pg_before
    other_cores = others.cores(server_cpu + pg_cpu + load.client_cpu)
    drained = wait_drained(sampler, args.drain_seconds, since=ended)
    written = sampler.sample().written
    samples = sampler.stop()
    deadline = time.monotonic() + 30
    while watcher.seen < written and time.monotonic() < deadline:
        time.sleep(0.2)
    received = watcher.stop()
    print(
        f"\n== kobliat serve on PostgreSQL, relay on, NATS JetStream: {args.connections}"
        f" connections, {load.seconds:.1f} s, {1 - args.new_share:.0%} known senders =="
    )
    print(
        f"  ingest: {load.ok / load.seconds:,.0f} webhooks/s, p50 {load.percentile(0.5):.1f} ms,"
        f" p99 {load.percentile(0.99):.1f} ms, errors {load.errors}"
    )
    busy = (server_cpu + pg_cpu + load.client_cpu) / load.seconds
    print(
        f"  cores busy: kobliat serve {server_cpu / load.seconds:.2f}, PostgreSQL"
        f" {pg_cpu / load.seconds:.2f}, load generator {load.client_cpu / load.seconds:.2f}"
        f" (ours {busy:.2f}), other processes {other_cores:.2f}, of {os.cpu_count()}"
    )
    defaults = Settings.model_fields
    print(
        f"  {list(serve_roles(pid).values()).count('worker') or 1} serving process(es), each"
        " running the app and a relay;"
        f" relay defaults: poll {defaults['relay_poll_seconds'].default} s, dispatch up to"
        f" {relay.DISPATCH_BATCH} rows, {relay.CLAIM_LOOPS} claim loops per sink, each claiming"
        f" up to {defaults['relay_batch_size'].default} aggregates"
    )
    print_backlog(samples, started, ended, drained)
    print_lag(url, received, started_wall, ended_wall, written)


def _next_known(traffic: Traffic, pending: Any) -> bytes | None:
    n = next(pending, None)
    return None if n is None else traffic.known_sender(n)


def wait_drained(sampler: Sampler, limit: float, since: float | None = None) -> float:
    """Seconds (from `since`, default now) until no event waits for the stream; -1 if never.
    Samples through `sampler` itself, so a running sampler's record goes on meanwhile."""
    since = time.monotonic() if since is None else since
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if sampler.sample().backlog == 0:
            return time.monotonic() - since
        time.sleep(0.1)
    return -1.0


def print_backlog(samples: list[Sample], started: float, ended: float, drained: float) -> None:
    """The per-second table, rates and the backlog's trend during the load."""
    print("  each second: t (s), events written/s, events acknowledged by the stream/s, backlog")
    line = []
    for before, after in itertools.pairwise(samples):
        span = max(after.at - before.at, 1e-6)
        wrote = (after.written - before.written) / span
        acked = wrote - (after.backlog - before.backlog) / span
        mark = "" if after.at <= ended else "*"
        at = f"{after.at - started:5.1f}{mark}"
        line.append(f"{at} {wrote:6,.0f} {acked:6,.0f} {after.backlog:6,}")
    for start in range(0, len(line), 3):
        print("    " + "   |".join(line[start : start + 3]))
    print("    (* after the load stopped)")
    during = [s for s in samples if s.at <= ended]
    if len(during) >= 2:
        span = during[-1].at - during[0].at
        wrote = (during[-1].written - during[0].written) / span
        acked = wrote - (during[-1].backlog - during[0].backlog) / span
        trend = slope([(s.at, s.backlog) for s in during])
        half = during[len(during) // 2 :]
        print(
            f"  during the load: {wrote:,.0f} events/s written, {acked:,.0f} events/s"
            f" acknowledged by the stream; backlog min {min(s.backlog for s in during):,},"
            f" max {max(s.backlog for s in during):,}, mean of the second half"
            f" {sum(s.backlog for s in half) / len(half):,.0f}; trend {trend:+,.1f} events/s"
            f" ({'flat' if abs(trend) < 0.02 * max(wrote, 1) else 'NOT flat'}:"
            " |trend| under 2 % of the write rate counts as flat)"
        )
    undispatched = max((s.undispatched for s in during), default=0)
    unacked = max((s.unacknowledged for s in during), default=0)
    print(
        f"  backlog parts at their largest: {undispatched:,} rows not dispatched,"
        f" {unacked:,} dispatched but not acknowledged"
    )
    drain = f"{drained:.1f} s" if drained >= 0 else "did NOT drain within the limit"
    print(f"  after the load stopped: backlog drained in {drain}")


def print_lag(
    url: str,
    received: dict[str, tuple[float, float]],
    started: float,
    ended: float,
    written: int,
) -> None:
    """Lag percentiles of the events raised during the load."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(EVENT_TIMES)).all()
    engine.dispose()
    lags: dict[str, list[float]] = {
        "commit": [],
        "created": [],
        "arrival": [],
        "dispatch": [],
        "claim": [],
    }
    missing = 0
    for event_id, created, committed, dispatched in rows:
        if not started <= float(created) <= ended:
            continue
        found = received.get(event_id)
        if found is None:
            missing += 1
            continue
        stored, arrived = found
        lags["created"].append(stored - float(created))
        lags["arrival"].append(arrived - float(committed if committed else created))
        if committed is not None:
            lags["commit"].append(stored - float(committed))
            if dispatched is not None:
                lags["dispatch"].append(float(dispatched) - float(committed))
                lags["claim"].append(stored - float(dispatched))
    print(
        f"  stream: {len(received):,} distinct event ids received for {written:,} outbox rows;"
        f" {len(lags['created']):,} events raised during the load, {missing} of them not received"
    )
    labels = {
        "commit": "commit → stored in the stream (PostgreSQL commit timestamp)",
        "created": "created_at → stored in the stream (upper bound)",
        "arrival": "commit → arrival at the subscriber",
        "dispatch": "  of which commit → dispatched (outbox.published_at)",
        "claim": "  and dispatched → stored in the stream",
    }
    for key, label in labels.items():
        values = sorted(lags[key])
        if not values:
            print(f"  {label}: no events")
            continue

        def at(q: float, values: list[float] = values) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] * 1000

        verdict = ""
        if key == "commit":
            verdict = f"  (target p99 < {TARGET_P99_MS:.0f} ms:"
            verdict += f" {'met' if at(0.99) < TARGET_P99_MS else 'NOT met'})"
        print(
            f"  {label}: p50 {at(0.5):.1f} ms, p99 {at(0.99):.1f} ms, max {values[-1] * 1000:.1f}"
            f" ms, min {values[0] * 1000:.1f} ms{verdict}"
        )


if __name__ == "__main__":
    main()
