"""Ingest speed against DESIGN §8: kobliat's webhooks/s next to the same-run SQL ceiling.

    uv run python bench/ingest.py                    # full run, about 4 minutes on 2 cores
    uv run python bench/ingest.py --wait-quiet 600   # first wait for a quiet machine
    uv run python bench/ingest.py --quick            # short phases, a smoke test

Everything runs on this machine, over 127.0.0.1 only, in a throwaway PostgreSQL 15 cluster the
bench starts itself (as the tests do) and a temporary SQLite file. It prints its figures and
asserts nothing; a watchdog (--max-seconds) bounds it. On a shared machine every phase also
prints how many cores other processes used meanwhile: read the figures with that in mind.

1. The SQL ceiling (pgbench -M prepared, against kobliat's migrated schema holding 10,000 known
   senders, each with an open direct conversation): DESIGN §8's ingest of one inbound message
   (upsert the sender, find the open conversation, insert the message, bump last_message_at,
   insert the outbox row) as ONE statement of CTEs with 8 and 32 clients, as five statements
   with 8 clients, and, for reference, the one statement plus what kobliat's design adds to
   DESIGN's five steps (the raw delivery in `inbox`, the indexed `last_activity_at`, the
   per-aggregate sequence row). Message metadata and the CloudEvent are kobliat's own bytes.
2. kobliat over HTTP: `kobliat serve` (the installed console script, with
   KOBLIAT_RELAY_ENABLED=false) on a free port, driven by a lean asyncio HTTP/1.1 load
   generator (raw requests signed on the fly, keep-alive; its CPU is reported) with N
   connections for each N of --connections:
   WhatsApp text webhooks (distinct wamids; 90 % from the known senders a warm-up created,
   10 % from new ones), on PostgreSQL, then on SQLite. Then the HTTP floor (GET /healthz).
   Afterwards the stored bench messages are counted with SQL and compared with the 200s.
3. Where the time goes: CPU µs per webhook of the server, PostgreSQL and the load generator
   (/proc), PostgreSQL sessions opened (pool churn); py-spy --gil samples of the serving
   process; SQL statements per webhook counted with SQLAlchemy's before_cursor_execute and on
   the server with log_statement = all (which also shows BEGIN, COMMIT and the pool's
   pre-ping); serial in-process CPU of `inbox.accept` (what the route runs in its thread),
   split into the driver and the rest, next to a lean lower bound (kobliat's own parse and
   normalise, then one prepared CTE); cProfile on the CPU clock.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import create_engine, event, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import PostgresCluster, free_port, start_cluster

from kobliat.channels import whatsapp
from kobliat.channels.records import InboundMessage
from kobliat.channels.samples import whatsapp_messages
from kobliat.channels.samples.signing import whatsapp_headers
from kobliat.channels.samples.whatsapp import DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, WABA_ID
from kobliat.db import migrate
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.events.envelope import to_cloudevent
from kobliat.inbox import service as inbox
from kobliat.inbox.model import Delivery
from kobliat.messages.model import Message
from kobliat.settings import Settings

BIN = Path(sys.executable).parent
SECRET = "bench-app-secret"
CEILING_SENDERS = 10_000
TARGET = 0.40
SPY_RATE = 200
KEPT_HEADERS = {"content-type": "application/json"}


class Overtime(Exception):
    """The whole bench ran past --max-seconds."""


# --------------------------------------------------------------------------------------------
# Process CPU accounting (Linux /proc): who burns the two cores.
# --------------------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds used by a process (and its reaped children)."""
    try:
        fields = _stat(pid)
    except FileNotFoundError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def _postmaster(cluster: PostgresCluster) -> int:
    return int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])


def wait_backends_gone(cluster: PostgresCluster, dbname: str, timeout: float = 5.0) -> None:
    """Wait until no backend of `dbname` is left, so the postmaster has reaped them and their
    CPU is in its cutime (else it would be missing from one window and land in the next)."""
    postmaster = _postmaster(cluster)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if int(_stat(int(entry.name))[1]) != postmaster:
                    continue
                if f" {dbname} ".encode() in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                    left += 1
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
        if left == 0:
            return
        time.sleep(0.1)


def postgres_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds of the postmaster, its live backends and every backend that has exited."""
    postmaster = _postmaster(cluster)
    total = proc_cpu(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat(int(entry.name))[1]) == postmaster:
                total += proc_cpu(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def self_cpu() -> float:
    """CPU seconds of this (load generator) process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


class Others:
    """How busy the machine was with processes that are not this bench's (shared machines)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.busy = machine_busy()

    def cores(self, ours: float) -> float:
        """Cores used by other processes since construction, given our own CPU seconds."""
        elapsed = time.perf_counter() - self.started
        return max(0.0, (machine_busy() - self.busy - ours) / elapsed)


def wait_quiet(patience: float, *, threshold: float = 0.25, sample: float = 3.0) -> str:
    """Wait (up to `patience` s) until other processes use < `threshold` cores; say how busy."""
    deadline = time.monotonic() + patience
    while True:
        others = Others()
        mine = self_cpu()
        time.sleep(sample)
        busy = others.cores(self_cpu() - mine)
        if busy < threshold or time.monotonic() >= deadline:
            break
    load = os.getloadavg()
    return (
        f"machine before start: other processes busy {busy:.2f} cores,"
        f" load average {load[0]:.1f}/{load[1]:.1f} (figures below are per phase)"
    )


# --------------------------------------------------------------------------------------------
# Phase 1: the SQL ceiling with pgbench
# --------------------------------------------------------------------------------------------


def lit(value: str) -> str:
    """A PostgreSQL E'' literal pgbench will not read variables from (':' is escaped)."""
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace(":", "\\x3a")
    return f"E'{escaped}'"


def realistic_rows() -> tuple[str, str, bytes]:
    """(message metadata JSON, outbox envelope JSON, webhook body) exactly as kobliat writes
    them for a text webhook, so the ceiling moves the same bytes."""
    body = whatsapp_messages.text(wa_id="447911000001", name="Bench Sender 1")
    record = whatsapp.parse(body).items[0]
    assert isinstance(record, InboundMessage)
    metadata = dict(record.metadata)
    message = Message.new(
        conversation_id=uuid4(),
        direction="inbound",
        channel="whatsapp",
        content_type="text",
        body=record.body,
        sent_at=record.sent_at,
        now=utcnow(),
        sender_customer_id=uuid4(),
        external_message_id=record.external_message_id,
        metadata=metadata,
        status="received",
    )
    envelope = to_cloudevent(message.created_event(), sequence=1)
    return json.dumps(metadata), json.dumps(envelope), body


SEED_CEILING = """
WITH s AS (
    SELECT id AS customer_id, gen_random_uuid() AS conversation_id
    FROM customers WHERE id <> CAST(:business AS uuid)
), c AS (
    INSERT INTO conversations (id, type, status, channel, conversation_key,
                               last_message_at, last_activity_at)
    SELECT conversation_id, 'direct', 'open', 'whatsapp',
           'direct:whatsapp:' || CAST(least(customer_id, CAST(:business AS uuid)) AS text)
           || ',' || CAST(greatest(customer_id, CAST(:business AS uuid)) AS text),
           now(), now()
    FROM s
    RETURNING id
), q AS (
    INSERT INTO aggregate_sequences (aggregate_id, last_sequence)
    SELECT CAST(id AS text), 0 FROM c
)
INSERT INTO conversation_participants (conversation_id, customer_id, role)
SELECT conversation_id, customer_id, 'member' FROM s
UNION ALL
SELECT conversation_id, CAST(:business AS uuid), 'member' FROM s
"""


def seed_ceiling(url: str) -> str:
    """Migrate, then add the business number and 10,000 senders with open conversations."""
    engine = create_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        business = conn.execute(
            text(
                "INSERT INTO customers (external_id, external_type, metadata)"
                " VALUES (:e, 'whatsapp', CAST(:m AS jsonb)) RETURNING id"
            ),
            {
                "e": "+" + DISPLAY_PHONE_NUMBER,
                "m": json.dumps({"phone_number_id": PHONE_NUMBER_ID, "waba_id": WABA_ID}),
            },
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO customers (external_id, external_type, name, metadata)"
                " SELECT '+447911' || lpad(g::text, 6, '0'), 'whatsapp', 'Sender ' || g,"
                "        jsonb_build_object('wa_id', '447911' || lpad(g::text, 6, '0'))"
                " FROM generate_series(1, :n) AS g"
            ),
            {"n": CEILING_SENDERS},
        )
        conn.execute(text(SEED_CEILING), {"business": str(business)})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return str(business)


def ceiling_scripts(business: str) -> dict[str, str]:
    """The pgbench scripts, keyed by name."""
    metadata, envelope, body = realistic_rows()
    # uuid order is the order of the lowercase hex text: the key kobliat computes in Python.
    key = (
        lit("direct:whatsapp:")
        + f" || CAST(least(sender.id, CAST('{business}' AS uuid)) AS text) || ',' || "
        + f"CAST(greatest(sender.id, CAST('{business}' AS uuid)) AS text)"
    )
    head = f"\\set n random(1, {CEILING_SENDERS})\n\\set r random(1, 1000000000000000)\n"
    sender_values = (
        "INSERT INTO customers (external_id, external_type, name, metadata)\n"
        "  VALUES ('+447911' || lpad(CAST(:n AS text), 6, '0'), 'whatsapp',\n"
        "          'Sender ' || CAST(:n AS text),\n"
        "          jsonb_build_object('wa_id', '447911' || lpad(CAST(:n AS text), 6, '0')))\n"
        "  ON CONFLICT (external_type, external_id) DO UPDATE SET name = EXCLUDED.name\n"
        "  RETURNING id"
    )
    wamid = "'wamid.pgb.' || CAST(:client_id AS text) || '.' || CAST(:r AS text)"
    message_cols = (
        "INSERT INTO messages (conversation_id, sender_customer_id, direction, channel,\n"
        "    external_message_id, content_type, body, metadata, sent_at, status)\n"
    )
    message_rest = (
        f"'inbound', 'whatsapp', {wamid}, 'text', "
        f"{lit('Is the 10:30 slot on Friday still free?')},\n"
        f"    CAST({lit(metadata)} AS jsonb), now(), 'received'"
    )
    outbox_cols = (
        "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, sequence,"
        " envelope)\n"
    )
    one = (
        head
        + f"WITH sender AS (\n  {sender_values}\n), conv AS (\n"
        + "  SELECT c.id FROM conversations c, sender\n"
        + f"  WHERE c.conversation_key = {key} AND c.status <> 'closed'\n"
        + f"), msg AS (\n  {message_cols}  SELECT conv.id, sender.id, {message_rest}\n"
        + "  FROM conv, sender\n  ON CONFLICT DO NOTHING\n  RETURNING id, conversation_id\n"
        + "), bump AS (\n  UPDATE conversations SET last_message_at = now()\n"
        + "  FROM msg WHERE conversations.id = msg.conversation_id\n"
        + "  RETURNING conversations.id\n)\n"
        + outbox_cols
        + "SELECT gen_random_uuid(), 'message.inbound.created', 'conversation',"
        + f" CAST(msg.conversation_id AS text), 1, CAST({lit(envelope)} AS jsonb)\nFROM msg;\n"
    )
    five = (
        head
        + "BEGIN;\n"
        + sender_values.replace("RETURNING id", "RETURNING id AS sender_id \\gset")
        + "\n"
        + "SELECT id AS conv_id FROM conversations\n"
        + "  WHERE conversation_key = "
        + key.replace("sender.id", "CAST(:sender_id AS uuid)")
        + " AND status <> 'closed' \\gset\n"
        + message_cols
        + f"  VALUES (CAST(:conv_id AS uuid), CAST(:sender_id AS uuid), {message_rest})\n"
        + "  ON CONFLICT DO NOTHING;\n"
        + "UPDATE conversations SET last_message_at = now()"
        + " WHERE id = CAST(:conv_id AS uuid);\n"
        + outbox_cols
        + "  VALUES (gen_random_uuid(), 'message.inbound.created', 'conversation',"
        + f" :conv_id, 1, CAST({lit(envelope)} AS jsonb));\n"
        + "END;\n"
    )
    # What kobliat's design adds to DESIGN's five steps, still as one statement.
    body_hex = "'\\x" + body.hex() + "'"
    extras = (
        head
        + "WITH delivery AS (\n"
        + "  INSERT INTO inbox (channel, delivery_key, body, headers, received_at,"
        + " processed_at, attempts, next_attempt_at)\n"
        + "  VALUES ('whatsapp', 'pgb-' || CAST(:client_id AS text) || '-' || CAST(:r AS text),"
        + f" CAST({body_hex} AS bytea), CAST({lit(json.dumps(KEPT_HEADERS))} AS jsonb),"
        + " now(), now(), 1, now())\n"
        + "  ON CONFLICT (channel, delivery_key) DO NOTHING RETURNING id\n"
        + f"), sender AS (\n  {sender_values}\n), conv AS (\n"
        + "  SELECT c.id FROM conversations c, sender, delivery\n"
        + f"  WHERE c.conversation_key = {key} AND c.status <> 'closed'\n"
        + f"), msg AS (\n  {message_cols}  SELECT conv.id, sender.id, {message_rest}\n"
        + "  FROM conv, sender\n  ON CONFLICT DO NOTHING\n  RETURNING id, conversation_id\n"
        + "), bump AS (\n  UPDATE conversations SET last_message_at = now(),"
        + " last_activity_at = now()\n"
        + "  FROM msg WHERE conversations.id = msg.conversation_id\n"
        + "  RETURNING conversations.id\n"
        + "), seq AS (\n  INSERT INTO aggregate_sequences (aggregate_id, last_sequence)\n"
        + "  SELECT CAST(conversation_id AS text), 1 FROM msg\n"
        + "  ON CONFLICT (aggregate_id) DO UPDATE"
        + " SET last_sequence = aggregate_sequences.last_sequence + 1\n"
        + "  RETURNING aggregate_id, last_sequence\n)\n"
        + outbox_cols
        + "SELECT gen_random_uuid(), 'message.inbound.created', 'conversation',"
        + f" seq.aggregate_id, seq.last_sequence, CAST({lit(envelope)} AS jsonb)\nFROM seq;\n"
    )
    return {"one": one, "five": five, "extras": extras}


@dataclass
class PgbenchResult:
    tps: float
    transactions: int
    failed: int
    pg_cpu_per_commit_us: float
    aborted: str
    other_cores: float


def run_pgbench(
    cluster: PostgresCluster, dbname: str, script: Path, clients: int, seconds: float
) -> PgbenchResult:
    """One pgbench run; commits/s without connection time."""
    wait_backends_gone(cluster, dbname)  # the seeding's or the last run's backends
    runtime = max(2, round(seconds))
    command = [
        str(cluster.bindir / "pgbench"),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(runtime),
        "-f",
        str(script),
        "-h",
        "127.0.0.1",
        "-p",
        str(cluster.port),
        "-U",
        "postgres",
        dbname,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # CPU is sampled inside the run, while every backend is alive (exiting backends' CPU
    # reaches the postmaster's cutime late): from 1 s in to 0.5 s before the end.
    time.sleep(1.0)
    pg_before, bench_before, others = postgres_cpu(cluster), proc_cpu(proc.pid), Others()
    time.sleep(max(0.5, runtime - 1.5))
    pg_used = postgres_cpu(cluster) - pg_before
    elapsed = time.perf_counter() - others.started
    other_cores = others.cores(pg_used + proc_cpu(proc.pid) - bench_before)
    try:
        stdout, stderr = proc.communicate(timeout=runtime + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    out = done.stdout + done.stderr
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if tps is None or processed is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{out[-3000:]}")
    count = int(processed.group(1))
    aborted = re.search(r"(\d+) of \d+ clients? aborted|client \d+ aborted.*", out)
    return PgbenchResult(
        tps=float(tps.group(1)),
        transactions=count,
        failed=int(failed.group(1)) if failed else 0,
        pg_cpu_per_commit_us=pg_used / elapsed / max(float(tps.group(1)), 1.0) * 1e6,
        aborted=aborted.group(0) if aborted else "",
        other_cores=other_cores,
    )


# --------------------------------------------------------------------------------------------
# Phase 2: kobliat over HTTP
# --------------------------------------------------------------------------------------------


class Traffic:
    """Signed WhatsApp text webhooks: distinct wamids, known senders mostly, some new ones."""

    def __init__(self, *, port: int, known: int, new_share: float, seed: int = 7) -> None:
        self.port = port
        self.known = known
        self.new_share = new_share
        self.random = random.Random(seed)
        self.sequence = 0
        self.new_senders = 0  # built
        self.sent_new = 0  # handed to the load generator
        self.run = f"{os.getpid()}{int(time.time()) % 100000}"

    def _request(self, wa_id: str, name: str) -> bytes:
        self.sequence += 1
        body = whatsapp_messages.text(
            wa_id=wa_id,
            name=name,
            message_id=f"wamid.bench.{self.run}.{self.sequence}",
            timestamp=int(time.time()),
        )
        signature = whatsapp_headers(body, SECRET)[whatsapp.SIGNATURE_HEADER]
        head = (
            f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\n{whatsapp.SIGNATURE_HEADER}: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def known_sender(self, n: int) -> bytes:
        return self._request(f"447911{n:06d}", f"Bench Sender {n}")

    def _mixed(self) -> tuple[bytes, bool]:
        if self.random.random() < self.new_share:
            self.new_senders += 1
            wa_id, name = f"447912{self.new_senders:06d}", f"New Sender {self.new_senders}"
            return self._request(wa_id, name), True
        return self.known_sender(self.random.randrange(self.known)), False

    def mixed(self) -> bytes:
        """The next webhook: a known sender mostly, a new one with probability new_share."""
        request, new = self._mixed()
        self.sent_new += new
        return request

    def prepared(self, count: int) -> Callable[[], bytes]:
        """`mixed()`, with `count` requests built ahead (so building them is not load-generator
        CPU inside the measured window); built on the fly once they run out."""
        ready = iter([self._mixed() for _ in range(count)])

        def next_request() -> bytes:
            request, new = next(ready, (b"", False))
            if not request:
                return self.mixed()
            self.sent_new += new
            return request

        return next_request


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    client_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + (
            self.transport_errors
        )

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _connection(
    port: int,
    next_request: Callable[[], bytes | None],
    result: LoadResult,
    deadline: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            request = next_request()
            if request is None:
                return
            started = time.perf_counter()
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError):
                result.transport_errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            result.latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            result.statuses[status] += 1
            if status == 200:
                match = re.search(rb'"status":"(\w+)"', body)
                result.answers[match.group(1).decode() if match else "?"] += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _drive(
    port: int, connections: int, seconds: float, next_request: Callable[[], bytes | None]
) -> LoadResult:
    result = LoadResult(seconds=seconds)
    cpu_before = self_cpu()
    started = time.perf_counter()
    deadline = started + seconds
    tasks = [
        asyncio.create_task(_connection(port, next_request, result, deadline))
        for _ in range(connections)
    ]
    done, pending = await asyncio.wait(tasks, timeout=seconds + 60)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            result.transport_errors += 1
    result.seconds = time.perf_counter() - started
    result.client_cpu = self_cpu() - cpu_before
    return result


def drive(
    port: int, connections: int, seconds: float, next_request: Callable[[], bytes | None]
) -> LoadResult:
    """Keep `connections` keep-alive connections busy for `seconds` (or until requests end)."""
    try:  # uvicorn[standard] brings uvloop: a cheaper client leaves more CPU to the server
        import uvloop
    except ImportError:
        return asyncio.run(_drive(port, connections, seconds, next_request))
    return uvloop.run(_drive(port, connections, seconds, next_request))


@contextmanager
def serving(
    database_url: str, workdir: Path, args: argparse.Namespace
) -> Iterator[tuple[int, int]]:
    """`kobliat serve` as its own process; yields (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "KOBLIAT_DATABASE_URL": database_url,
        "KOBLIAT_WHATSAPP_APP_SECRET": SECRET,
        "KOBLIAT_RELAY_ENABLED": "false",
        "KOBLIAT_API_KEYS": "bench-not-used",
        "KOBLIAT_LOG_LEVEL": args.log_level,
    }
    if args.pool_size:
        env["KOBLIAT_DB_POOL_SIZE"] = str(args.pool_size)
    log = workdir / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "kobliat"), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kobliat serve exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("kobliat serve did not come up within 60 s")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
            server_before = proc_cpu(pid)
            pg_before = postgres_cpu(cluster) if cluster else 0.0
            others = Others()
            load = drive(port, connections, seconds, next_request)
            server_cpu = proc_cpu(pid) - server_before
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
                )
            )
        # The floor of the HTTP stack alone: GET /healthz (a sync route, so also a thread hop).
        health = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        server_before = proc_cpu(pid)
        floor = drive(port, max(levels), min(5.0, seconds), lambda: health)
        floor_cpu = proc_cpu(pid) - server_before
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


# --------------------------------------------------------------------------------------------
# Phase 3: where the time goes
# --------------------------------------------------------------------------------------------


def py_spy(pid: int, port: int, traffic: Traffic, args: argparse.Namespace, out: Path) -> int:
    """Sample the serving process under the same load; returns the 200s sent meanwhile."""
    exe = BIN / "py-spy"
    if not exe.exists():
        print("  (py-spy not installed: no server-side samples)")
        return 0
    seconds = max(3, round(args.profile_seconds))
    spy = subprocess.Popen(
        [
            str(exe),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(SPY_RATE),
            "--gil",  # only the thread holding the GIL: Python's CPU, not threads waiting
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    load = drive(port, max(args.connection_levels), seconds, traffic.mixed)
    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if spy.returncode != 0 or not out.exists():
        print(f"  (py-spy failed: {err.strip()[-500:]})")
    return load.ok


_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _kobliat_module(path: str) -> str | None:
    """`kobliat.x.y` for a frame in kobliat's package (py-spy shortens paths), else None."""
    if path.startswith("kobliat/"):
        return path.removesuffix(".py").replace("/", ".")
    if "/kobliat/" in path:
        return "kobliat." + path.split("/kobliat/", 1)[1].removesuffix(".py").replace("/", ".")
    return None


def _category(path: str, func: str) -> str:
    module = _kobliat_module(path)
    if module is not None:
        return module
    rules = (
        ("sqlalchemy", "sqlalchemy"),
        ("psycopg", "psycopg"),
        ("phonenumbers", "phonenumbers"),
        ("structlog", "logging"),
        ("logging", "logging"),
        ("uvicorn", "uvicorn/httptools"),
        ("h11", "uvicorn/httptools"),
        ("httptools", "uvicorn/httptools"),
        ("starlette", "starlette/fastapi"),
        ("fastapi", "starlette/fastapi"),
        ("pydantic", "pydantic"),
        ("anyio", "threads (anyio)"),
        ("threading", "threads (anyio)"),
        ("concurrent", "threads (anyio)"),
        ("asyncio", "asyncio"),
        ("json", "json"),
        ("prometheus", "prometheus"),
        ("uuid", "uuid"),
    )
    for needle, name in rules:
        if needle in path:
            return name
    return f"other ({Path(path).name})"


def summarise_py_spy(raw: Path, top: int, seconds: float) -> None:
    """Self time by library and inclusive time of kobliat's own functions."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        parsed = [_FRAME.match(f) for f in frames]
        leaf = parsed[-1] if parsed else None
        own[_category(leaf["file"], leaf["func"]) if leaf else "?"] += count
        seen = set()
        for match in parsed:
            module = None if match is None else _kobliat_module(match["file"])
            if match is None or module is None:
                continue
            name = f"{module}.{match['func']}"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    if total == 0:
        print("  (no samples)")
        return
    print(
        f"  {total} samples of the GIL-holding thread in {seconds:.0f} s at {SPY_RATE}/s: the GIL"
        f" was held {total / (SPY_RATE * seconds):.0%} of the time"
    )
    print("  self time by library (where the Python CPU is spent):")
    for name, count in own.most_common(top):
        print(f"    {count / total:6.1%}  {name}")
    print("  inclusive time of kobliat functions:")
    for name, count in inclusive.most_common(top):
        print(f"    {count / total:6.1%}  {name}")


def _webhook(traffic: Traffic, request: bytes) -> tuple[bytes, dict[str, str]]:
    head, _, body = request.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return body, headers


def accept(db: Database, settings: Settings, body: bytes, headers: dict[str, str]) -> str:
    """What the WhatsApp route does in its worker thread (signature check included)."""
    header = headers["x-hub-signature-256"]
    if not whatsapp.verify_signature(body, header, SECRET):
        raise RuntimeError("bad signature")
    kept = {k: v for k, v in headers.items() if k in ("content-type", "x-hub-signature-256")}
    return inbox.accept(db, Delivery("whatsapp", body, kept, utcnow()), settings).status


_LOGGED = re.compile(r"\] LOG:  (?:statement|execute [^:]*): (.*)$")


def count_statements(cluster: PostgresCluster, url: str) -> None:
    """Statements per webhook: SQLAlchemy's view and the server's (log_statement = all)."""
    db = Database(url)
    migrate.upgrade(db.engine)
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("ALTER DATABASE stmtlog SET log_statement = 'all'")
        )
    db.dispose()  # new connections pick the setting up
    settings = Settings(whatsapp_app_secret=SECRET)
    issued: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _issued(*args: Any) -> None:
        statement, executemany = args[2], args[5]
        issued.append(("[many] " if executemany else "") + " ".join(statement.split()))

    traffic = Traffic(port=0, known=20, new_share=0.0)
    for n in range(20):  # known senders, and warm psycopg's prepared statements
        for _ in range(6):
            accept(db, settings, *_webhook(traffic, traffic.known_sender(n)))
    log = cluster.root / "log"
    repeat = traffic.known_sender(3)
    cases = (
        ("known sender", traffic.known_sender(5)),
        ("new sender", traffic._request("447913000001", "Brand New")),
        ("provider retry", repeat),
    )
    accept(db, settings, *_webhook(traffic, repeat))
    for label, request in cases:
        issued.clear()
        offset = log.stat().st_size
        status = accept(db, settings, *_webhook(traffic, request))
        time.sleep(0.3)
        with log.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode(errors="replace").splitlines()
        server = [m.group(1) for line in lines if (m := _LOGGED.search(line))]
        print(
            f"  {label:<15} ({status}): {len(issued)} SQLAlchemy executions,"
            f" {len(server)} statements reaching PostgreSQL"
        )
        if label == "known sender":
            for statement in issued:
                print(f"      sa  {statement[:104]}")
        if label != "new sender":
            print(f"      pg  {' | '.join(s.split(chr(10))[0][:40] for s in server)}")
    db.dispose()


LEAN_CTE = """
WITH delivery AS (
  INSERT INTO inbox (channel, delivery_key, body, headers, received_at, processed_at,
                     attempts, next_attempt_at)
  VALUES ('whatsapp', %(key)s, %(raw)s, %(headers)s, now(), now(), 1, now())
  ON CONFLICT (channel, delivery_key) DO NOTHING RETURNING id
), business AS (
  SELECT id FROM customers WHERE external_type = 'whatsapp' AND external_id = %(business)s
), sender AS (
  INSERT INTO customers (id, external_id, external_type, name, metadata, created_at, updated_at)
  SELECT %(sender_id)s, %(sender)s, 'whatsapp', %(name)s, %(sender_meta)s, now(), now()
  FROM delivery
  ON CONFLICT (external_type, external_id) DO UPDATE SET name = EXCLUDED.name
  RETURNING id
), conv AS (
  SELECT c.id FROM conversations c, sender, business
  WHERE c.conversation_key = 'direct:whatsapp:' || CAST(least(sender.id, business.id) AS text)
        || ',' || CAST(greatest(sender.id, business.id) AS text)
    AND c.status <> 'closed'
), msg AS (
  INSERT INTO messages (id, conversation_id, sender_customer_id, direction, channel,
      external_message_id, content_type, body, metadata, sent_at, status, created_at, updated_at)
  SELECT %(message_id)s, conv.id, sender.id, 'inbound', 'whatsapp', %(wamid)s, 'text', %(text)s,
         %(meta)s, %(sent_at)s, 'received', now(), now()
  FROM conv, sender
  ON CONFLICT DO NOTHING
  RETURNING conversation_id
), bump AS (
  UPDATE conversations
  SET last_message_at = greatest(last_message_at, %(sent_at)s),
      last_activity_at = greatest(last_activity_at, %(sent_at)s)
  FROM msg WHERE conversations.id = msg.conversation_id
  RETURNING conversations.id
), seq AS (
  INSERT INTO aggregate_sequences (aggregate_id, last_sequence)
  SELECT CAST(conversation_id AS text), 1 FROM msg
  ON CONFLICT (aggregate_id) DO UPDATE
  SET last_sequence = aggregate_sequences.last_sequence + 1
  RETURNING aggregate_id, last_sequence
)
INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, sequence, envelope,
                    created_at)
SELECT %(event_id)s, 'message.inbound.created', 'conversation', seq.aggregate_id,
       seq.last_sequence,
       jsonb_set(jsonb_set(%(envelope)s, '{subject}', to_jsonb(seq.aggregate_id)),
                 '{data,conversation_id}', to_jsonb(seq.aggregate_id)),
       now()
FROM seq
"""


def lean_accept(conn: Any, body: bytes, headers: dict[str, str]) -> int:
    """A lower bound inside kobliat's stack: verify, parse and normalise with kobliat's own
    code, build the CloudEvent, then ONE prepared statement in autocommit (one round trip).
    Known senders only (it does not open conversations); not a proposal for the semantics."""
    from psycopg.types.json import Jsonb

    from kobliat.customers import identity

    if not whatsapp.verify_signature(body, headers["x-hub-signature-256"], SECRET):
        raise RuntimeError("bad signature")
    parsed = whatsapp.parse(body)
    record = parsed.items[0]
    assert isinstance(record, InboundMessage)
    _, sender = identity.normalise(record.sender.external_type, record.sender.external_id)
    _, business = identity.normalise(record.business.external_type, record.business.external_id)
    message = Message.new(
        conversation_id=uuid4(),  # replaced in SQL by the conversation found
        direction="inbound",
        channel="whatsapp",
        content_type=record.content_type,
        body=record.body,
        sent_at=record.sent_at,
        now=utcnow(),
        sender_customer_id=uuid4(),
        external_message_id=record.external_message_id,
        metadata=record.metadata,
        status="received",
    )
    event = message.created_event()
    cursor = conn.execute(
        LEAN_CTE,
        {
            "key": parsed.delivery_key,
            "raw": body,
            "headers": Jsonb({"content-type": "application/json"}),
            "business": business,
            "sender_id": uuid4(),
            "sender": sender,
            "name": record.sender.name,
            "sender_meta": Jsonb(record.sender.metadata),
            "message_id": message.id,
            "wamid": record.external_message_id,
            "text": record.body,
            "meta": Jsonb(message.metadata),
            "sent_at": record.sent_at,
            "event_id": event.id,
            "envelope": Jsonb(to_cloudevent(event, sequence=1)),
        },
    )
    return int(cursor.rowcount)


def profile_in_process(url: str, webhooks: int, top: int) -> None:
    """Serial in-process runs of what the webhook route does in its worker thread."""
    import psycopg

    db = Database(url)
    migrate.upgrade(db.engine)
    settings = Settings(whatsapp_app_secret=SECRET)
    known = 500
    traffic = Traffic(port=0, known=known, new_share=0.1, seed=11)
    for n in range(known):
        accept(db, settings, *_webhook(traffic, traffic.known_sender(n)))
    driver = {"cpu": 0.0, "wall": 0.0, "calls": 0}
    started: dict[str, float] = {}

    def before(*_: Any) -> None:
        started["cpu"], started["wall"] = time.thread_time(), time.perf_counter()

    def after(*_: Any) -> None:
        driver["cpu"] += time.thread_time() - started["cpu"]
        driver["wall"] += time.perf_counter() - started["wall"]
        driver["calls"] += 1

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)

    def timed(label: str, work: Callable[[bytes, dict[str, str]], object], count: int) -> float:
        requests = [_webhook(traffic, traffic.mixed()) for _ in range(count)]
        cpu, wall = time.thread_time(), time.perf_counter()
        results = [work(body, headers) for body, headers in requests]
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        stored = sum(r for r in results if isinstance(r, int))
        print(
            f"  {label:<44} CPU {cpu / count * 1e6:6,.0f} µs   wall {wall / count * 1e6:6,.0f} µs"
            f"   ({count / wall:,.0f}/s serially)" + (f" {stored}/{count} stored" if stored else "")
        )
        return cpu / count

    print("  per webhook, one thread, one connection, 10 % new senders:")
    driver.update(cpu=0.0, wall=0.0, calls=0)
    timed(
        "kobliat inbox.accept (+ signature check)",
        lambda b, h: accept(db, settings, b, h),
        webhooks,
    )
    print(
        f"    of which inside cursor.execute (psycopg + libpq): CPU"
        f" {driver['cpu'] / webhooks * 1e6:,.0f} µs, wall {driver['wall'] / webhooks * 1e6:,.0f}"
        f" µs, {driver['calls'] / webhooks:.1f} executions"
    )
    event.remove(db.engine, "before_cursor_execute", before)
    event.remove(db.engine, "after_cursor_execute", after)

    def parse_only(body: bytes, headers: dict[str, str]) -> None:
        from kobliat.customers import identity

        whatsapp.verify_signature(body, headers["x-hub-signature-256"], SECRET)
        record = whatsapp.parse(body).items[0]
        assert isinstance(record, InboundMessage)
        identity.normalise(record.sender.external_type, record.sender.external_id)
        identity.normalise(record.business.external_type, record.business.external_id)

    timed("verify + parse + normalise only (no SQL)", parse_only, webhooks)
    traffic.new_share = 0.0  # the lean statement does not open conversations
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        timed(
            "lean: same + ONE prepared CTE, autocommit",
            lambda b, h: lean_accept(conn, b, h),
            webhooks,
        )
    traffic.new_share = 0.1

    count = max(100, webhooks // 4)
    requests = [_webhook(traffic, traffic.mixed()) for _ in range(count)]
    profiler = cProfile.Profile(time.thread_time)  # CPU time: preemption is not counted
    profiler.enable()
    for body, headers in requests:
        accept(db, settings, body, headers)
    profiler.disable()
    db.dispose()
    stats = pstats.Stats(profiler)
    rows = []
    for (path, _line, func), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((path, func, calls, tottime, cumtime))
    total = sum(r[3] for r in rows)
    calls_total = sum(r[2] for r in rows)
    print(
        f"  cProfile (CPU clock) of {count} kobliat webhooks: {calls_total / count:,.0f} Python"
        " function calls per webhook"
    )
    by_library: Counter[str] = Counter()
    for path, func, _calls, tottime, _ in rows:
        by_library[_category(path, func) if path != "~" else f"builtins ({func[:30]})"] += tottime
    print("  self CPU by library:")
    for name, spent in by_library.most_common(top):
        print(f"    {spent / total:6.1%}  {name}")
    print("  cumulative CPU of kobliat functions (share of the webhook):")
    own = [r for r in rows if _kobliat_module(r[0]) is not None and r[1] != "<module>"]
    root = max((r[4] for r in own), default=total) or total
    for path, func, calls, _, cumtime in sorted(own, key=lambda r: -r[4])[:top]:
        print(f"    {cumtime / root:6.1%}  {calls / count:5.1f}/webhook  {_short(path)}:{func}")
    print("  top self CPU per function:")
    for path, func, calls, tottime, _ in sorted(rows, key=lambda r: -r[3])[:top]:
        print(f"    {tottime / total:6.1%}  {calls / count:6.1f}/webhook  {_short(path)}:{func}")


def _short(path: str) -> str:
    for marker in ("/kobliat/", "site-packages/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test)")
    parser.add_argument("--pgbench-seconds", type=float, default=15)
    parser.add_argument("--http-seconds", type=float, default=20)
    parser.add_argument("--sqlite-seconds", type=float, default=10)
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument(
        "--connections", default="16,32", help="HTTP connections; a comma list measures each"
    )
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
    args.connection_levels = [int(c) for c in str(args.connections).split(",") if c.strip()]

    def overtime(*_: Any) -> None:
        raise Overtime(f"bench ran past --max-seconds={args.max_seconds}")

    signal.signal(signal.SIGALRM, overtime)
    print(f"cores: {os.cpu_count()}   python: {sys.version.split()[0]}")
    print(wait_quiet(args.wait_quiet), flush=True)
    signal.alarm(args.max_seconds)  # the bench itself, not the wait for a quiet machine
    workdir = Path(tempfile.mkdtemp(prefix="kobliat-bench-"))
    cluster = start_cluster()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    try:
        admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            for name in ("ceiling", "served", "stmtlog", "profiled"):
                conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        print(f"PostgreSQL {version} (throwaway cluster, fsync=off as in the tests)")
        ceiling_8 = None
        if "ceiling" not in skip:
            ceiling_8 = run_ceiling(cluster, workdir, args)
        if "pg" not in skip:
            spy_out = workdir / "py-spy.txt" if "profile" not in skip else None
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
            print_http(figures, ceiling_8, args)
            if spy_out is not None and spy_out.exists():
                print("\n== 3a. py-spy on the serving process (same load, after measuring) ==")
                summarise_py_spy(spy_out, args.top, max(3, round(args.profile_seconds)))
        if "sqlite" not in skip:
            path = workdir / "bench.db"
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
            print_http(figures, None, args)
        if "profile" not in skip:
            print("\n== 3b. SQL statements per webhook (in-process inbox.accept, PostgreSQL) ==")
            count_statements(cluster, cluster.url("stmtlog"))
            print("\n== 3c. In-process CPU of the route's thread work (PostgreSQL, serial) ==")
            profile_in_process(cluster.url("profiled"), args.profile_webhooks, args.top)
    finally:
        signal.alarm(0)
        cluster.stop()
        if args.keep:
            print(f"kept {workdir} (pgbench scripts, serve logs, py-spy samples, SQLite file)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_ceiling(cluster: PostgresCluster, workdir: Path, args: argparse.Namespace) -> float:
    print("\n== 1. SQL ceiling: pgbench -M prepared against kobliat's migrated schema ==")
    business = seed_ceiling(cluster.url("ceiling"))
    scripts = ceiling_scripts(business)
    for name, script in scripts.items():
        (workdir / f"{name}.sql").write_text(script)
    runs = (
        ("one statement (CTEs), 8 clients", "one", 8),
        ("one statement (CTEs), 32 clients", "one", 32),
        ("five statements, 8 clients", "five", 8),
        ("one statement + kobliat extras, 8 clients", "extras", 8),
    )
    results = {}
    for label, name, clients in runs:
        result = run_pgbench(
            cluster, "ceiling", workdir / f"{name}.sql", clients, args.pgbench_seconds
        )
        results[(name, clients)] = result
        note = f"  failed {result.failed}" if result.failed else ""
        note += f"  ABORTED: {result.aborted}" if result.aborted else ""
        print(
            f"  {label:<44} {result.tps:8,.0f} commits/s"
            f"   (PostgreSQL CPU {result.pg_cpu_per_commit_us:,.0f} µs/commit;"
            f" other processes {result.other_cores:.2f} cores){note}"
        )
    print(
        "  (kobliat extras = the raw delivery row in `inbox`, the indexed last_activity_at,"
        " the aggregate_sequences bump)"
    )
    return results[("one", 8)].tps


def print_http(figures: HttpFigures, ceiling_8: float | None, args: argparse.Namespace) -> None:
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
            f"   errors {load.errors}   ({load.ok:,} answered 200 in {load.seconds:.1f} s:"
            f" {dict(load.answers)}; {window.new_senders:,} new senders)"
        )
        if load.errors:
            print(
                f"      non-200: {dict(load.statuses)}  transport errors: {load.transport_errors}"
            )
        if ceiling_8:
            ratio = window.rate / ceiling_8
            print(
                f"      ratio to the 8-client one-statement ceiling: {ratio:.1%}"
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
            f" of {os.cpu_count()}{churn}"
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


if __name__ == "__main__":
    main()
