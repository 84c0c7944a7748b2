"""Phase 2: kobliat over HTTP at each concurrency, checked against what was stored."""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from tests.support.postgres import PostgresCluster

from ingestbench.common import (
    TARGET,
)
from ingestbench.load import LoadResult, Traffic, drive, serving
from ingestbench.machine import Others, postgres_cpu, tree_cpu
from ingestbench.spy import py_spy


@dataclass
class Window:
    """One measured window at one concurrency."""

    connections: int
    load: LoadResult
    server_cpu: float
    pg_cpu: float | None
    other_cores: float
    new_senders: int
    sessions: int | None  # PostgreSQL sessions opened meanwhile (pool churn)
    load_average: float = 0.0  # the machine's 1-minute load average right after the window

    @property
    def rate(self) -> float:
        return self.load.ok / self.load.seconds


@dataclass
class HttpFigures:
    label: str
    windows: list[Window]
    floor: LoadResult
    floor_cpu: float
    warmup_ok: int
    extra_ok: int
    stored: int
    unprocessed: int


def http_run(
    label: str,
    *,
    database_url: str,
    count_messages: Callable[[], tuple[int, int]],
    sessions: Callable[[], int] | None,
    workdir: Path,
    args: argparse.Namespace,
    seconds: float,
    known: int,
    cluster: PostgresCluster | None,
    profile_to: Path | None,
) -> HttpFigures:
    """Warm up (one webhook per known sender), measure at each concurrency, optionally
    profile, then verify the stored messages against the 200 answers."""
    levels = args.connection_levels
    with serving(database_url, workdir, args) as (port, pid):
        traffic = Traffic(port=port, known=known, new_share=args.new_share)
        pending = iter(range(known))

        def warm() -> bytes | None:
            n = next(pending, None)
            return None if n is None else traffic.known_sender(n)

        warmup = drive(port, max(levels), 120, warm)
        # Build about twice what the warm-up rate suggests the window will use.
        expected = int(2 * warmup.ok / max(warmup.seconds, 0.001) * seconds)
        ahead = min(max(expected, 1000), 200_000)
        windows = []
        for connections in levels:
            new_before = traffic.sent_new
            next_request = traffic.prepared(ahead)
            sessions_before = sessions() if sessions else None
            server_before = tree_cpu(pid)
            pg_before = postgres_cpu(cluster) if cluster else 0.0
            others = Others()
            load = drive(port, connections, seconds, next_request)
            server_cpu = tree_cpu(pid) - server_before
            pg_cpu = postgres_cpu(cluster) - pg_before if cluster else None
            other_cores = others.cores(server_cpu + (pg_cpu or 0.0) + load.client_cpu)
            opened = sessions() - sessions_before - 1 if sessions and sessions_before else None
            windows.append(
                Window(
                    connections=connections,
                    load=load,
                    server_cpu=server_cpu,
                    pg_cpu=pg_cpu,
                    other_cores=other_cores,
                    new_senders=traffic.sent_new - new_before,
                    sessions=opened,
                    load_average=os.getloadavg()[0],
                )
            )
        # The floor of the HTTP stack alone: GET /healthz (a sync route, so also a thread hop).
        health = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        server_before = tree_cpu(pid)
        floor = drive(port, max(levels), min(5.0, seconds), lambda: health)
        floor_cpu = tree_cpu(pid) - server_before
        extra_ok = 0
        if profile_to is not None:
            extra_ok = py_spy(pid, port, traffic, args, profile_to)
        # Anything answered "queued" is processed by the inbox worker within a few seconds.
        deadline = time.monotonic() + 15
        while True:
            stored, unprocessed = count_messages()
            if unprocessed == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return HttpFigures(
        label=label,
        windows=windows,
        floor=floor,
        floor_cpu=floor_cpu,
        warmup_ok=warmup.ok,
        extra_ok=extra_ok,
        stored=stored,
        unprocessed=unprocessed,
    )


def pg_sessions(url: str) -> Callable[[], int]:
    """Sessions ever opened to the database (pg_stat_database), itself opening one."""

    def count() -> int:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                found = conn.execute(
                    text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                ).scalar_one()
        finally:
            engine.dispose()
        return int(found)

    return count


COUNT_BENCH_MESSAGES = (
    "SELECT count(*) FROM messages WHERE external_message_id LIKE 'wamid.bench.%'"
)


def pg_counter(url: str) -> Callable[[], tuple[int, int]]:
    def count() -> tuple[int, int]:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                stored = conn.execute(text(COUNT_BENCH_MESSAGES)).scalar_one()
                unprocessed = conn.execute(
                    text("SELECT count(*) FROM inbox WHERE processed_at IS NULL")
                ).scalar_one()
        finally:
            engine.dispose()
        return int(stored), int(unprocessed)

    return count


def sqlite_counter(path: Path) -> Callable[[], tuple[int, int]]:
    def count() -> tuple[int, int]:
        with sqlite3.connect(path, timeout=30) as conn:
            stored = conn.execute(COUNT_BENCH_MESSAGES).fetchone()[0]
            unprocessed = conn.execute(
                "SELECT count(*) FROM inbox WHERE processed_at IS NULL"
            ).fetchone()[0]
        return int(stored), int(unprocessed)

    return count


def print_http(figures: HttpFigures, ceiling: float | None, args: argparse.Namespace) -> None:
    """Phase 2's figures, each window against the same-run ceiling."""
    pool = ""
    if figures.label == "PostgreSQL":
        pool = f", pool {args.pool_size or 'default (20 + 20 overflow)'}"
    print(
        f"\n== 2. kobliat serve over HTTP on {figures.label}:"
        f" {1 - args.new_share:.0%} known senders, log level {args.log_level}{pool} =="
    )
    for window in figures.windows:
        load = window.load
        print(
            f"  {window.connections:>3} connections: {window.rate:7,.0f} webhooks/s"
            f"   p50 {load.percentile(0.50):6.1f} ms   p99 {load.percentile(0.99):7.1f} ms"
            f"   p99.9 {load.percentile(0.999):7.1f} ms"
            f"   errors {load.errors}   ({load.ok:,} answered 200 in {load.seconds:.1f} s:"
            f" {dict(load.answers)}; {window.new_senders:,} new senders)"
        )
        if load.errors:
            print(
                f"      non-200: {dict(load.statuses)}  transport errors: {load.transport_errors}"
            )
        if ceiling:
            ratio = window.rate / ceiling
            print(
                f"      ratio to the same-run one-statement ceiling: {ratio:.1%}"
                f"  (target {TARGET:.0%}: {'met' if ratio >= TARGET else 'NOT met'})"
            )
        cpu = [("kobliat serve", window.server_cpu)]
        if window.pg_cpu is not None:
            cpu.append(("PostgreSQL", window.pg_cpu))
        cpu.append(("load generator", load.client_cpu))
        per = "   ".join(f"{name} {used / max(load.ok, 1) * 1e6:,.0f}" for name, used in cpu)
        busy = sum(used for _, used in cpu) / load.seconds
        print(f"      CPU µs per webhook: {per}")
        churn = (
            f"; {window.sessions} PostgreSQL sessions opened" if window.sessions is not None else ""
        )
        print(
            f"      cores busy: ours {busy:.2f}, other processes {window.other_cores:.2f},"
            f" of {os.cpu_count()}{churn}; load average {window.load_average:.1f}"
        )
    floor = figures.floor
    print(
        f"  HTTP floor, GET /healthz at {max(args.connection_levels)} connections:"
        f" {floor.ok / floor.seconds:,.0f} requests/s, p50 {floor.percentile(0.5):.1f} ms,"
        f" kobliat serve CPU {figures.floor_cpu / max(floor.ok, 1) * 1e6:,.0f} µs per request"
    )
    answered = figures.warmup_ok + sum(w.load.ok for w in figures.windows) + figures.extra_ok
    print(
        f"  verified with SQL: {figures.stored:,} bench messages stored for {answered:,}"
        f" answers 200 (warm-up {figures.warmup_ok:,}"
        f" + measured {sum(w.load.ok for w in figures.windows):,}"
        f" + profiling {figures.extra_ok:,}): "
        + ("equal" if figures.stored == answered else "MISMATCH")
        + (f"; {figures.unprocessed} inbox rows unprocessed" if figures.unprocessed else "")
    )
