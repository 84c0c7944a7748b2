"""Phase 3b/3c: statements per webhook and the in-process CPU of the hot path."""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from sqlalchemy import event, text
from tests.support.postgres import PostgresCluster

from ingestbench.common import (
    SECRET,
)
from ingestbench.load import Traffic
from ingestbench.spy import _category, _kobliat_module, _short
from kobliat.channels import whatsapp
from kobliat.channels.records import InboundMessage
from kobliat.db import migrate
from kobliat.db.engine import Database
from kobliat.db.types import utcnow
from kobliat.events.envelope import to_cloudevent
from kobliat.inbox import group_commit
from kobliat.inbox import service as inbox
from kobliat.inbox.group_commit import GroupCommit
from kobliat.inbox.model import Delivery
from kobliat.messages.model import Message
from kobliat.settings import Settings


def _webhook(traffic: Traffic, request: bytes) -> tuple[bytes, dict[str, str]]:
    head, _, body = request.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return body, headers


_LOOP = asyncio.new_event_loop()


def accept(
    db: Database,
    settings: Settings,
    body: bytes,
    headers: dict[str, str],
    writer: GroupCommit | None = None,
) -> str:
    """What the WhatsApp route does (signature check included): through the group commit
    with a `writer` (as `kobliat serve` on PostgreSQL), else the general flow."""
    header = headers["x-hub-signature-256"]
    if not whatsapp.verify_signature(body, header, SECRET):
        raise RuntimeError("bad signature")
    kept = {k: v for k, v in headers.items() if k in ("content-type", "x-hub-signature-256")}
    delivery = Delivery("whatsapp", body, kept, utcnow())
    if writer is None:
        return inbox.accept(db, delivery, settings).status
    return _LOOP.run_until_complete(group_commit.accept(writer, db, delivery, settings)).status


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

    writer = GroupCommit(db.url)
    traffic = Traffic(port=0, known=20, new_share=0.0)
    for n in range(20):  # known senders, and warm psycopg's prepared statements
        for _ in range(6):
            accept(db, settings, *_webhook(traffic, traffic.known_sender(n)), writer)
    log = cluster.root / "log"
    repeat = traffic.known_sender(3)
    cases = (
        ("known sender", traffic.known_sender(5)),
        ("new sender", traffic._request("447913000001", "Brand New")),
        ("provider retry", repeat),
    )
    accept(db, settings, *_webhook(traffic, repeat), writer)
    for label, request in cases:
        issued.clear()
        offset = log.stat().st_size
        status = accept(db, settings, *_webhook(traffic, request), writer)
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
    writer.close()
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
    """Serial in-process runs of what the webhook route does: the general flow, the hot path,
    and a lean lower bound."""
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
        # The process clock: the hot path's writer thread is part of the work.
        cpu, wall = time.process_time(), time.perf_counter()
        results = [work(body, headers) for body, headers in requests]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
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
    writer = GroupCommit(db.url)
    timed(
        "hot path: group commit, batches of one",
        lambda b, h: accept(db, settings, b, h, writer),
        webhooks,
    )

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
        accept(db, settings, body, headers, writer)
    profiler.disable()
    writer.close()
    db.dispose()
    stats = pstats.Stats(profiler)
    rows = []
    for (path, _line, func), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((path, func, calls, tottime, cumtime))
    total = sum(r[3] for r in rows)
    calls_total = sum(r[2] for r in rows)
    print(
        f"  cProfile (CPU clock) of {count} webhooks through the hot path (the request's"
        f" thread; the writer thread is not seen): {calls_total / count:,.0f} Python function"
        " calls per webhook"
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
