"""Deep pagination costs what the first page costs: time page 1 and deep pages of
GET /conversations's query on a large PostgreSQL table.

    uv run python bench/pagination.py --conversations 1000000 [--explain]

Starts its own throwaway PostgreSQL cluster (as the tests do), fills it with generate_series
(each conversation with two named customers and three messages), then times the view the API
calls: one statement per page, with the participants' names and the last message. Prints
milliseconds per page (median of repeats); `--explain` also prints the plan of a deep page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import start_cluster

from kobliat import pagination, views
from kobliat.db import migrate
from kobliat.db.engine import Database

FILL = """
INSERT INTO conversations (id, type, status, channel, conversation_key, created_at, updated_at,
                           last_message_at, last_activity_at)
SELECT gen_random_uuid(), 'direct',
       (ARRAY['open','pending','closed'])[1 + g % 3]::conversation_status,
       'whatsapp', 'direct:whatsapp:' || g,
       now() - make_interval(secs => g), now(), now() - make_interval(secs => g),
       now() - make_interval(secs => g)
FROM generate_series(1, :n) AS g;
INSERT INTO customers (id, external_id, external_type, name, created_at, updated_at)
SELECT gen_random_uuid(), '+4477' || lpad(g::text, 8, '0'), 'whatsapp', 'person ' || g, now(), now()
FROM generate_series(1, :n + 1) AS g;
INSERT INTO conversation_participants (id, conversation_id, customer_id, role, joined_at)
SELECT gen_random_uuid(), c.id, cu.id, 'member', c.created_at
FROM (SELECT id, created_at, row_number() OVER (ORDER BY id) AS k FROM conversations) AS c
JOIN (SELECT id, row_number() OVER (ORDER BY id) AS k FROM customers) AS cu
  ON cu.k IN (c.k, c.k + 1);
INSERT INTO messages (id, conversation_id, direction, channel, content_type, body, metadata,
                      sent_at, status, created_at, updated_at)
SELECT gen_random_uuid(), c.id, (ARRAY['inbound','outbound'])[1 + s % 2], 'whatsapp', 'text',
       repeat('message ' || s || ' ', 20), '{}', c.last_activity_at - make_interval(secs => s),
       'received', now(), now()
FROM conversations AS c, generate_series(0, 2) AS s
"""


def timed(work, repeats: int = 7) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of `work()`."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def deep_cursor(db: Database, kind: str, order_by: str, offset: int) -> str:
    """The cursor a client holds after walking `offset` rows in this order."""
    columns = order_by.replace(" DESC", "").split(", ")
    with db.reading() as conn:
        row = conn.execute(
            text(
                f"SELECT {', '.join(columns)} FROM conversations ORDER BY {order_by}"
                " OFFSET :o LIMIT 1"
            ),
            {"o": offset},
        ).one()
    return pagination.encode(kind, *row)


def explain(db: Database, cursor: str, limit: int) -> None:
    """Print EXPLAIN ANALYZE of the statement a deep page sends."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    with db.reading() as conn:
        views.inbox_page(conn, cursor=cursor, limit=limit)
    event.remove(db.engine, "before_cursor_execute", keep)
    [(statement, parameters)] = sent
    with db.reading() as conn:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        print("\n".join(row[0] for row in plan))


def main() -> None:
    """Fill, then time first and deep pages."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--explain", action="store_true", help="print a middle page's plan")
    args = parser.parse_args()
    cluster = start_cluster()
    try:
        url = cluster.url()
        engine = create_engine(url)
        migrate.upgrade(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            for statement in FILL.split(";"):
                conn.execute(text(statement), {"n": args.conversations})
            conn.execute(text("ANALYZE"))
        print(
            f"filled {args.conversations:,} conversations in {time.perf_counter() - started:.1f}s"
        )
        engine.dispose()
        db = Database(url)
        offset = args.conversations - args.page_size * 2
        depth = offset // args.page_size
        deep = deep_cursor(db, "conversations", "last_activity_at DESC, id DESC", offset)
        deep_created = deep_cursor(db, "conversations-created", "created_at, id", offset)
        middle = args.conversations // 2
        mid = deep_cursor(db, "conversations", "last_activity_at DESC, id DESC", middle)
        for label, cursor, status, order in (
            ("page 1", None, None, "activity"),
            (f"page ~{middle // args.page_size:,}", mid, None, "activity"),
            (f"page ~{depth:,}", deep, None, "activity"),
            ("page 1, status=open", None, "open", "activity"),
            (f"page ~{depth:,}, status=open", deep, "open", "activity"),
            ("page 1, order=created", None, None, "created"),
            (f"page ~{depth:,}, order=created", deep_created, None, "created"),
        ):

            def page(
                cursor: str | None = cursor, status: str | None = status, order: str = order
            ) -> None:
                with db.reading() as conn:
                    views.inbox_page(
                        conn,
                        cursor=cursor,
                        limit=args.page_size,
                        status=status,
                        order=order,  # type: ignore[arg-type]
                    )

            print(f"{label:>30}: {timed(page):7.2f} ms")
        if args.explain:
            explain(db, mid, args.page_size)
        db.dispose()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
