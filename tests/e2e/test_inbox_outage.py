"""The inbox worker through failures: a database that stops and starts, a table that is gone.
It keeps polling, logs the failure once per interval with how many polls failed since (never a
traceback per poll), and processes what waited once the database is back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.inbox.worker import InboxWorker
from tests.conftest import migrated_database
from tests.e2e.inbox_helpers import inbox_rows, rename_table, store_unprocessed
from tests.e2e.webhooks import message_by_external_id, settings_for
from tests.support.postgres import PostgresCluster
from tests.support.relay import in_a_thread, wait_for

FAILED = "inbox worker failed; retrying"
POLL = 0.05  # forty polls a second: an outage of a second or two fails many of them


@contextlib.contextmanager
def worker_running(db: Database, *, log_every: float) -> Iterator[InboxWorker]:
    """An inbox worker polling every POLL seconds in a thread of its own, stopped at the end."""
    worker = InboxWorker(db, settings_for(db), interval=POLL, log_failures_every=log_every)
    with in_a_thread(worker, what="the inbox worker"):
        yield worker


def failures(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker's failure lines among captured log entries."""
    return [entry for entry in entries if entry["event"] == FAILED]


def processed(db: Database) -> bool:
    """Every delivery in the inbox is processed."""
    return all(row["processed_at"] is not None for row in inbox_rows(db))


def test_a_failing_poll_is_logged_with_its_traceback_once_per_interval(db: Database) -> None:
    store_unprocessed(db, wa.text(message_id="wamid.waited"), "waited")
    rename_table(db, "inbox", "inbox_away")  # every poll fails: a bug, not an outage
    with capture_logs() as entries, worker_running(db, log_every=30):
        wait_for(lambda: bool(failures(entries)), what="a failed poll")
        time.sleep(1)  # some twenty more polls fail meanwhile
        rename_table(db, "inbox_away", "inbox")
        wait_for(lambda: processed(db), timeout=30, what="the delivery processed")
        lines = failures(entries)

    assert message_by_external_id(db, "wamid.waited")["body"]
    (line,) = lines
    assert line["loop"] == "inbox" and line["exc_info"] is not None


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_the_worker_recovers_after_postgresql_restarts_and_logs_per_interval(
    own_cluster: PostgresCluster,
) -> None:
    db = Database(migrated_database(own_cluster, "inbox"))
    with capture_logs() as entries, worker_running(db, log_every=0.5):
        own_cluster.pause()
        try:
            time.sleep(2)  # some forty polls fail meanwhile
        finally:
            own_cluster.resume()
        store_unprocessed(db, wa.text(message_id="wamid.after-restart"), "after-restart")
        wait_for(lambda: processed(db), timeout=60, what="the delivery processed")
        lines = failures(entries)
    db.dispose()

    assert 1 <= len(lines) <= 2 / 0.5 + 2, lines  # once per interval, not once per poll
    assert all(line["exc_info"] is None for line in lines), "no traceback for an outage"
    assert sum(line["repeats_since_last_log"] for line in lines) > len(lines)
