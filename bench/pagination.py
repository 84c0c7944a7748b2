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
        with db.reading() as conn:
            rows = conn.execute(
                text(
                    "SELECT last_activity_at, id FROM conversations"
                    " ORDER BY last_activity_at DESC, id DESC OFFSET :o LIMIT 1"
                ),
                {"o": args.conversations - args.page_size * 2},
            ).one()
        deep = pagination.encode("conversations", rows.last_activity_at, rows.id)
        depth = (args.conversations - args.page_size * 2) // args.page_size
        for label, cursor, status in (
            ("page 1", None, None),
            (f"page ~{depth:,}", deep, None),
            ("page 1, status=open", None, "open"),
            (f"page ~{depth:,}, status=open", deep, "open"),
        ):

            def page(cursor: str | None = cursor, status: str | None = status) -> None:
                with db.reading() as conn:
                    conversations.list_page(
                        conn, cursor=cursor, limit=args.page_size, status=status
                    )

            print(f"{label:>28}: {timed(page):7.2f} ms")
        db.dispose()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
