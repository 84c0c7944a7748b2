"""Deep pagination costs what the first page costs: time page 1 and deep pages of
GET /conversations's query (and the message history) on a large PostgreSQL table.

    uv run python bench/pagination.py --conversations 1000000

Starts its own throwaway PostgreSQL cluster (as the tests do), fills it with generate_series,
then times the service calls the API makes. Prints milliseconds per page (median of repeats).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import start_cluster

from kobliat import pagination
from kobliat.conversations import service as conversations
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
FROM generate_series(1, :n) AS g
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


def main() -> None:
    """Fill, then time first and deep pages."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=50)
    args = parser.parse_args()
    cluster = start_cluster()
    try:
        url = cluster.url()
        engine = create_engine(url)
        migrate.upgrade(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(FILL), {"n": args.conversations})
            conn.execute(text("ANALYZE conversations"))
        print(
            f"filled {args.conversations:,} conversations in {time.perf_counter() - started:.1f}s"
        )
        engine.dispose()
        db = Database(url)
        offset = args.conversations - args.page_size * 2
        depth = offset // args.page_size
        deep = deep_cursor(db, "conversations", "last_activity_at DESC, id DESC", offset)
        deep_created = deep_cursor(db, "conversations-created", "created_at, id", offset)
        for label, cursor, status, order in (
            ("page 1", None, None, "activity"),
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
                    conversations.list_page(
                        conn,
                        cursor=cursor,
                        limit=args.page_size,
                        status=status,
                        order=order,  # type: ignore[arg-type]
                    )

            print(f"{label:>30}: {timed(page):7.2f} ms")
        db.dispose()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
