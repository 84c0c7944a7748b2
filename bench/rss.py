"""Memory of `kobliat serve` under ingest: the RSS of every serving process as webhooks pile up.

    uv run python bench/rss.py                               # PostgreSQL, 100,000 webhooks
    uv run python bench/rss.py --webhooks 20000 --every 2000 # shorter
    uv run python bench/rss.py sqlite --webhooks 20000       # the embedded SQLite default
    uv run python bench/rss.py --no-nats                     # relay on, but no NATS sink

`kobliat serve` (the installed console script, default settings: as many worker processes as
it chooses, the relay enabled, and KOBLIAT_NATS_URL set to a `nats-server -js` the bench starts
unless --no-nats) on a throwaway PostgreSQL cluster or a temporary SQLite file, driven by
bench/ingestbench/load.py: signed WhatsApp text webhooks over keep-alive connections, 90 % from
known senders and 10 % first contacts (so customers and conversations keep being created).
Before the first webhook and after every --every webhooks, the resident set size (VmRSS of
/proc/<pid>/status) of the serve process and of each of its descendants (found through /proc)
is printed, and at the end the growth of each over the last half of the run. Asserts nothing;
a watchdog (--max-seconds) bounds it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestbench.common import begin
from ingestbench.load import LoadResult, Traffic, drive, serving
from ingestbench.machine import process_tree, rss_mib, serve_roles
from tests.support.nats import NatsServer
from tests.support.postgres import start_cluster

TARGET_MIB = 200.0


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database", nargs="?", default="pg", choices=("pg", "sqlite"))
    parser.add_argument("--webhooks", type=int, default=100_000, help="webhooks to send")
    parser.add_argument("--every", type=int, default=10_000, help="sample RSS this often")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--known", type=int, default=1000, help="known senders")
    parser.add_argument("--new-share", type=float, default=0.1, help="share of new senders")
    parser.add_argument("--no-nats", action="store_true", help="no KOBLIAT_NATS_URL")
    parser.add_argument("--log-level", default="INFO", help="KOBLIAT_LOG_LEVEL for serve")
    parser.add_argument("--wait-quiet", type=float, default=0, help="wait for a quiet machine")
    parser.add_argument("--max-seconds", type=int, default=900, help="hard stop for the bench")
    args = parser.parse_args()
    if args.database == "sqlite" and "--connections" not in sys.argv:
        args.connections = 16  # as bench/ingest.py drives SQLite
    args.pool_size = 0  # serving(): the default pool
    return args


def main() -> None:
    args = arguments()

    begin(args.max_seconds, args.wait_quiet)
    workdir = Path(tempfile.mkdtemp(prefix="kobliat-rss-"))
    try:
        with ExitStack() as stack:
            url = database(args, workdir, stack)
            env = {"KOBLIAT_RELAY_ENABLED": "true"}
            if not args.no_nats:
                broker = NatsServer(workdir / "nats")
                broker.start()
                stack.callback(broker.stop)
                env["KOBLIAT_NATS_URL"] = broker.url
            relay = "relay on, " + ("no NATS" if args.no_nats else "publishing to NATS JetStream")
            print(
                f"kobliat serve, default settings ({relay}), {args.connections} connections,"
                f" {1 - args.new_share:.0%} known senders"
            )
            with serving(url, workdir, args, env) as (port, pid):
                samples = measure(args, port, pid)
            print_verdict(samples)
        print(f"\nload average at the end: {'/'.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        signal.alarm(0)
        shutil.rmtree(workdir, ignore_errors=True)


def database(args: argparse.Namespace, workdir: Path, stack: ExitStack) -> str:
    """A throwaway PostgreSQL database or a SQLite file; returns its URL."""
    if args.database == "sqlite":
        print("SQLite (a temporary file)")
        return f"sqlite:///{workdir / 'rss.db'}"
    cluster = start_cluster()
    stack.callback(cluster.stop)
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        conn.execute(text("CREATE DATABASE served"))
    admin.dispose()
    print(f"PostgreSQL {version} (throwaway cluster, fsync=off as in the tests)")
    return cluster.url("served")


Sample = tuple[int, dict[int, float]]  # (webhooks sent so far, pid → RSS in MiB)


def measure(args: argparse.Namespace, port: int, pid: int) -> list[Sample]:
    """Send the webhooks in slices of --every, printing the RSS of every process after each."""
    traffic = Traffic(port=port, known=args.known, new_share=args.new_share)
    samples: list[Sample] = []
    roles = serve_roles(pid)
    print("  processes: " + ", ".join(f"{p} ({r})" for p, r in roles.items()))
    head = f"{'webhooks':>9}  {'webhooks/s':>10}  {'p99 ms':>7}  {'errors':>6}"
    print(f"  {head}  RSS MiB per process")
    samples.append(sample(0, pid))
    print_row(samples[-1], None)
    sent = 0
    while sent < args.webhooks:
        count = min(args.every, args.webhooks - sent)
        load = drive(port, args.connections, 3600, limited(traffic.prepared(count), count))
        sent += count
        samples.append(sample(sent, pid))
        print_row(samples[-1], load)
    time.sleep(10)  # idle: the relay catches up, the workers settle
    samples.append(sample(sent, pid))
    print_row(samples[-1], None, note="after 10 s idle")
    return samples


def limited(next_request: Callable[[], bytes], count: int) -> Callable[[], bytes | None]:
    """`next_request`, `count` times, then None (the load generator's end of work)."""
    left = count

    def take() -> bytes | None:
        nonlocal left
        if left <= 0:
            return None
        left -= 1
        return next_request()

    return take


def sample(sent: int, pid: int) -> Sample:
    """The RSS of the serve process and every descendant, now."""
    return sent, {p: rss_mib(p) for p in process_tree(pid)}


def print_row(found: Sample, load: LoadResult | None, note: str = "") -> None:
    """One line of the table."""
    sent, rss = found
    per = "  ".join(f"{p}: {mib:6.1f}" for p, mib in rss.items())
    if load is None:
        figures = f"{'':>10}  {'':>7}  {'':>6}"
    else:
        rate = load.ok / max(load.seconds, 1e-6)
        figures = f"{rate:10,.0f}  {load.percentile(0.99):7.1f}  {load.errors:6}"
    print(f"  {sent:9,}  {figures}  {per}  (sum {sum(rss.values()):.1f}) {note}".rstrip())


def print_verdict(samples: list[Sample]) -> None:
    """Each process's RSS at the end and its growth over the last half of the webhooks."""
    last_sent = samples[-1][0]
    ingesting = samples[:-1]  # without the idle sample
    middle = min(ingesting, key=lambda s: abs(s[0] - last_sent / 2))
    end = ingesting[-1]
    print(
        f"\n  growth over the last half ({middle[0]:,} → {end[0]:,} webhooks), per process"
        f" (target: each serving process under {TARGET_MIB:.0f} MiB and flat):"
    )
    for pid, mib in end[1].items():
        before = middle[1].get(pid)
        if before is None:
            print(f"    {pid}: {mib:.1f} MiB at the end; started after the middle of the run")
            continue
        growth = mib - before
        per_10k = growth / max(end[0] - middle[0], 1) * 10_000
        flat = abs(growth) < max(0.02 * before, 2.0)
        print(
            f"    {pid}: {before:.1f} → {mib:.1f} MiB ({growth:+.1f} MiB, {per_10k:+.2f} MiB per"
            f" 10,000 webhooks): {'under' if mib < TARGET_MIB else 'OVER'} {TARGET_MIB:.0f} MiB,"
            f" {'flat' if flat else 'NOT flat'} (flat: under 2 % or 2 MiB)"
        )


if __name__ == "__main__":
    main()
