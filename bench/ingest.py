"""Ingest speed: kobliat's webhooks/s next to the same-run single-statement SQL ceiling.

    uv run python bench/ingest.py                    # every phase, about 4 minutes on 2 cores
    uv run python bench/ingest.py ceiling            # phase 1 only
    uv run python bench/ingest.py pg --quick         # ceiling + PostgreSQL over HTTP, short
    uv run python bench/ingest.py sqlite             # ceiling + SQLite over HTTP
    uv run python bench/ingest.py profile            # ceiling + statements and in-process CPU
    uv run python bench/ingest.py --wait-quiet 600   # first wait for a quiet machine

Each command prints the machine (cores, load average, other processes' share per phase), the
same-run ceiling, and kobliat's ratio to it. Everything runs on this machine, over 127.0.0.1
only, in a throwaway PostgreSQL cluster the bench starts itself (as the tests do) and a
temporary SQLite file. It asserts nothing; a watchdog (--max-seconds) bounds it. The phases live
in bench/ingestbench/:

1. ceiling.py: pgbench -M prepared against kobliat's migrated schema holding 10,000 known
   senders with open direct conversations: the ingest of one inbound message (upsert the
   sender, find the open conversation, insert the message, bump last_message_at, insert the
   outbox row) as ONE statement of CTEs with 8 and 32 clients (the ceiling is the better of the
   two), as five statements, and the one statement plus kobliat's extras (the raw delivery in
   `inbox`, the indexed `last_activity_at`, the per-aggregate sequence row).
2. served.py + load.py: `kobliat serve` (the installed console script, default settings,
   KOBLIAT_RELAY_ENABLED=false) driven by a lean asyncio HTTP/1.1 load generator (signed
   requests, keep-alive) at each of --connections (PostgreSQL) and --sqlite-connections:
   WhatsApp text webhooks, 90 % from known senders, 10 % first contacts; p50/p99/p99.9, CPU per
   webhook of server, PostgreSQL and load generator; stored messages checked against the 200s.
3. spy.py: py-spy --gil samples of the serving process; inprocess.py: statements per webhook
   (SQLAlchemy's view and the server's log_statement = all) and serial in-process CPU of the
   general flow and of the hot path, next to a lean lower bound; cProfile on the CPU clock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestbench.ceiling import run_ceiling
from ingestbench.common import begin
from ingestbench.inprocess import count_statements, profile_in_process
from ingestbench.served import http_run, pg_counter, pg_sessions, print_http, sqlite_counter
from ingestbench.spy import summarise_py_spy
from tests.support.postgres import PostgresCluster, start_cluster

PHASES = ("all", "ceiling", "pg", "sqlite", "profile")


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", nargs="?", default="all", choices=PHASES)
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test)")
    parser.add_argument("--pgbench-seconds", type=float, default=15)
    parser.add_argument("--http-seconds", type=float, default=20)
    parser.add_argument("--sqlite-seconds", type=float, default=10)
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument("--connections", default="1,8,32,128", help="PostgreSQL: comma list")
    parser.add_argument("--sqlite-connections", default="16", help="SQLite: comma list")
    parser.add_argument("--pool-size", type=int, default=0, help="KOBLIAT_DB_POOL_SIZE for serve")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="wait up to this many seconds for other processes to leave the CPUs alone",
    )
    parser.add_argument("--known", type=int, default=1000, help="known senders (PostgreSQL)")
    parser.add_argument("--new-share", type=float, default=0.1, help="share of new senders")
    parser.add_argument("--log-level", default="INFO", help="KOBLIAT_LOG_LEVEL for serve")
    parser.add_argument("--profile-webhooks", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--skip", default="", help="comma list of: ceiling,pg,sqlite,profile")
    parser.add_argument("--keep", action="store_true", help="keep the scripts, logs and samples")
    parser.add_argument("--max-seconds", type=int, default=900, help="hard stop for the bench")
    args = parser.parse_args()
    if args.quick:
        args.pgbench_seconds, args.http_seconds, args.sqlite_seconds = 4, 5, 4
        args.profile_seconds, args.known, args.profile_webhooks = 3, 200, 300
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    # py-spy on the serving process belongs to the PostgreSQL run: `pg` keeps it.
    args.spy = "profile" not in skip and args.phase in ("all", "pg")
    if args.phase != "all":  # one phase, after the ceiling it is compared with
        skip |= {p for p in PHASES[2:] if p != args.phase}
    args.skipped = skip
    args.pg_levels = [int(c) for c in str(args.connections).split(",") if c.strip()]
    args.sqlite_levels = [int(c) for c in str(args.sqlite_connections).split(",") if c.strip()]
    return args


def main() -> None:
    args = arguments()
    skip = args.skipped

    begin(args.max_seconds, args.wait_quiet)
    workdir = Path(tempfile.mkdtemp(prefix="kobliat-bench-"))
    cluster = start_cluster()
    try:
        admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            for name in ("ceiling", "served", "stmtlog", "profiled"):
                conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        print(f"PostgreSQL {version} (throwaway cluster, fsync=off as in the tests)")
        ceiling = None
        if "ceiling" not in skip:
            ceiling = run_ceiling(cluster, workdir, args)
        if "pg" not in skip:
            run_pg(cluster, workdir, args, ceiling)
        if "sqlite" not in skip:
            path = workdir / "bench.db"
            args.connection_levels = args.sqlite_levels
            figures = http_run(
                "SQLite",
                database_url=f"sqlite:///{path}",
                count_messages=sqlite_counter(path),
                sessions=None,
                workdir=workdir,
                args=args,
                seconds=args.sqlite_seconds,
                known=max(50, args.known // 4),
                cluster=None,
                profile_to=None,
            )
            print_http(figures, ceiling, args)
        if "profile" not in skip:
            print("\n== 3b. SQL statements per webhook (in-process, PostgreSQL) ==")
            count_statements(cluster, cluster.url("stmtlog"))
            print("\n== 3c. In-process CPU per webhook (PostgreSQL, serial) ==")
            profile_in_process(cluster.url("profiled"), args.profile_webhooks, args.top)
        print(f"\nload average at the end: {'/'.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        signal.alarm(0)
        cluster.stop()
        if args.keep:
            print(f"kept {workdir} (pgbench scripts, serve logs, py-spy samples, SQLite file)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_pg(
    cluster: PostgresCluster, workdir: Path, args: argparse.Namespace, ceiling: float | None
) -> None:
    """Phase 2 on PostgreSQL (and 3a, py-spy on the serving process, unless skipped)."""
    spy_out = workdir / "py-spy.txt" if args.spy else None
    args.connection_levels = args.pg_levels
    figures = http_run(
        "PostgreSQL",
        database_url=cluster.url("served"),
        count_messages=pg_counter(cluster.url("served")),
        sessions=pg_sessions(cluster.url("served")),
        workdir=workdir,
        args=args,
        seconds=args.http_seconds,
        known=args.known,
        cluster=cluster,
        profile_to=spy_out,
    )
    print_http(figures, ceiling, args)
    if spy_out is not None and spy_out.exists():
        print("\n== 3a. py-spy on the serving process (same load, after measuring) ==")
        summarise_py_spy(spy_out, args.top, max(3, round(args.profile_seconds)))


if __name__ == "__main__":
    main()
