"""Phase 1: the SQL ceiling with pgbench, against kobliat's migrated schema."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from sqlalchemy import create_engine, text
from tests.support.postgres import PostgresCluster

from ingestbench.common import (
    CEILING_SENDERS,
    KEPT_HEADERS,
)
from ingestbench.machine import Others, postgres_cpu, proc_cpu, wait_backends_gone
from kobliat.channels import whatsapp
from kobliat.channels.records import InboundMessage
from kobliat.channels.samples import whatsapp_messages
from kobliat.channels.samples.whatsapp import DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, WABA_ID
from kobliat.db import migrate
from kobliat.db.types import utcnow
from kobliat.events.envelope import to_cloudevent
from kobliat.messages.model import Message


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
    # What kobliat adds to the five steps, still as one statement.
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
    best = max(results[("one", 8)].tps, results[("one", 32)].tps)
    print(f"  the ceiling (better one-statement run): {best:,.0f} commits/s")
    return best
