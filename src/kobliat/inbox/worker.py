"""The in-process inbox worker: processes stored deliveries that are not processed yet.

It runs once as soon as the app starts (so deliveries acknowledged before a crash are
processed) and then every few seconds. Several processes may each run one: a delivery is
claimed with FOR UPDATE SKIP LOCKED, so no two workers process it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog

from kobliat import metrics
from kobliat.aio import wait_event
from kobliat.db.engine import Database
from kobliat.events.loops import FailureLog
from kobliat.inbox import service
from kobliat.settings import Settings

log = structlog.get_logger(__name__)
POLL_SECONDS = 2.0
PRUNE_EVERY_SECONDS = 3600.0


class InboxWorker:
    """Polls the inbox for due deliveries until stopped."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        interval: float = POLL_SECONDS,
        log_failures_every: float = 30.0,
    ):
        self._db = db
        self._settings = settings
        self._interval = interval
        self._stop = asyncio.Event()
        self._pruned_at: float | None = None
        self._failures = FailureLog(log_failures_every, "inbox worker failed; retrying")

    def run_once(self) -> int:
        """Process every due delivery now (in batches); returns how many succeeded.

        Also applies statuses that raced their message, reports the backlog to the metrics
        and, hourly, prunes old rows.
        """
        total = 0
        while (done := service.process_due(self._db, self._settings)) > 0:
            total += done
        service.apply_overdue_statuses(self._db)
        for state, count in service.backlog(self._db).items():
            metrics.INBOX_DELIVERIES.labels(state).set(count)
        now = time.monotonic()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            deliveries, statuses = service.prune(self._db)
            self._pruned_at = now
            if deliveries or statuses:
                log.info("inbox pruned", deliveries=deliveries, pending_statuses=statuses)
        return total

    async def run(self) -> None:
        """Run until `stop()`; an iteration that fails is logged (once per interval, with how
        many failed since) and the loop goes on."""
        while not self._stop.is_set():
            try:
                processed = await asyncio.to_thread(self.run_once)
                if processed:
                    log.info("inbox deliveries processed", count=processed)
            except Exception as exc:  # an outage fails every poll: say so once per interval
                self._failures.failed("inbox", exc)
            await wait_event(self._stop, self._interval)

    def stop(self) -> None:
        """Ask the loop to end after the current iteration."""
        self._stop.set()


@contextlib.asynccontextmanager
async def running(db: Database, settings: Settings) -> AsyncIterator[InboxWorker]:
    """Run an inbox worker for the duration of the block (the app's lifespan)."""
    worker = InboxWorker(db, settings)
    task = asyncio.create_task(worker.run(), name="kobliat-inbox-worker")
    try:
        yield worker
    finally:
        worker.stop()
        # Let the current iteration finish its transaction before connections are closed.
        await task
