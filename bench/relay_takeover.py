"""How long a killed relay's aggregates wait before another relay delivers them.

    uv run python bench/relay_takeover.py                       # default HTTP timeout (10 s)
    uv run python bench/relay_takeover.py --webhook-timeout 2   # as in the tests

A relay delivers to a local HTTP subscriber that answers slowly, so deliveries are in flight;
it is then killed where it stands (its event loop stops: no lease released, nothing recorded),
and a second relay starts at once. Prints the seconds from the kill until the subscriber has
every event, on a temporary SQLite file and, with --postgres, on a throwaway PostgreSQL cluster.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.builders import a_conversation
from tests.support.events import a_container, expected_events
from tests.support.postgres import start_cluster
from tests.support.receiver import running_receiver
from tests.support.relay import running_relay, wait_for

from kobliat import bootstrap
from kobliat.db import migrate
from kobliat.events import subscriptions


def takeover_seconds(url: str, *, webhook_timeout: float) -> float:
    """Seconds from killing a relay mid-delivery until a second relay delivered everything."""
    container = a_container(url, webhook_timeout_seconds=webhook_timeout)
    with running_receiver() as receiver:
        receiver.answer, receiver.delay = (lambda _d: 503), 3.0  # in flight, then failed
        container.db.run(
            lambda uow: subscriptions.create(
                uow, url=receiver.url, event_types=None, secret=None, allow_private=True
            )
        )
        for _ in range(5):
            a_conversation(container.db)
        expected = set(expected_events(container.db))
        doomed = bootstrap.build_relay(container)
        loop = asyncio.new_event_loop()
        main = loop.create_task(doomed.run())

        def run() -> None:
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(main)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        wait_for(lambda: receiver.arrived >= 1, what="the first relay to deliver")
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        killed = time.monotonic()
        receiver.answer, receiver.delay = (lambda _d: 204), 0.0
        with running_relay(container):
            wait_for(lambda: receiver.accepted_ids() >= expected, timeout=300, what="takeover")
            took = time.monotonic() - killed
        doomed.stop()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(main, 30))
        loop.close()
    container.close()
    return took


def main() -> None:
    """Print the takeover time on SQLite (and PostgreSQL with --postgres)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhook-timeout", type=float, default=10.0)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/takeover.db"
        migrate.upgrade(create_engine(url))
        seconds = takeover_seconds(url, webhook_timeout=args.webhook_timeout)
        timeout = args.webhook_timeout
        print(f"sqlite: takeover after {seconds:.1f} s (webhook timeout {timeout:g} s)")
    if args.postgres:
        cluster = start_cluster()
        try:
            engine = create_engine(cluster.url("postgres"))
            migrate.upgrade(engine)
            engine.dispose()
            url = cluster.url("postgres")
            seconds = takeover_seconds(url, webhook_timeout=args.webhook_timeout)
            print(
                f"postgres: takeover after {seconds:.1f} s "
                f"(webhook timeout {args.webhook_timeout:g} s)"
            )
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
