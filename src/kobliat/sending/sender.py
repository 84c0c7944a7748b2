"""The sender: claims due sends, paces them, calls the providers, records what happened.

Runs inside `kobliat serve` (unless KOBLIAT_SENDER_ENABLED is false) and may run in any number
of processes: the queue's claim (see `kobliat.sending.store`) keeps one attempt per
conversation in flight across all of them. Database work runs in threads, HTTP in asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlencode
from uuid import uuid4

import httpx
import structlog

from kobliat import logs, metrics
from kobliat.aio import wait_event
from kobliat.db.engine import Database
from kobliat.db.uow import UnitOfWork
from kobliat.events.loops import FailureLog
from kobliat.sending import service
from kobliat.sending.clients import Client
from kobliat.sending.model import Job, Outcome
from kobliat.sending.pacing import Pacer
from kobliat.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")
HOUSEKEEPING_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 3600.0


class Sender:
    """Delivers queued outbound messages until stopped."""

    def __init__(self, db: Database, clients: dict[str, Client], settings: Settings) -> None:
        self.db = db
        self.clients = clients
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self._poll = settings.send_poll_seconds
        self._timeout = settings.send_timeout_seconds
        self._concurrency = settings.send_concurrency
        # The lease outlives a request's whole time budget, or a slow answer would look like
        # a dead sender to the others.
        self._lease = timedelta(seconds=max(settings.send_lease_seconds, self._timeout + 5))
        self._policy = service.RetryPolicy(
            base=settings.send_retry_base_seconds,
            cap=settings.send_retry_max_seconds,
            max_attempts=settings.send_max_attempts,
        )
        self._resend_safe = frozenset(p for p, c in clients.items() if c.resend_safe)
        self._failed_retention = timedelta(hours=settings.send_failed_retention_hours)
        self._pruned_at: float | None = None
        self._failures = FailureLog(message="sender loop failed; retrying")
        self._pacer = Pacer()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._waiting: set[int] = set()  # claimed, request not sent yet

    def stop(self) -> None:
        """Ask `run()` to finish after the requests in flight have their answers."""
        self._stop.set()

    def wake(self) -> None:
        """Look for due sends now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Send until `stop()` is called."""
        timeout = httpx.Timeout(self._timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            housekeeping = asyncio.create_task(self._forever(self._housekeeping))
            log.info("sender started", owner=self._owner, providers=sorted(self.clients))
            try:
                await self._claim_loop(http)
            finally:
                housekeeping.cancel()
                await self._drain()
                log.info("sender stopped", owner=self._owner)

    async def _claim_loop(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            claimed = 0
            try:
                claimed = await self._claim(http)
            except Exception as exc:  # an outage fails every poll: say so once per interval
                self._failures.failed("claim", exc)
            if claimed == 0:
                await wait_event(self._wake, self._poll)
                self._wake.clear()

    async def _claim(self, http: httpx.AsyncClient) -> int:
        free = self._concurrency - len(self._tasks)
        if free <= 0 or not await asyncio.to_thread(self._has_due):
            return 0
        jobs = await self._write(
            functools.partial(
                service.claim,
                owner=self._owner,
                limit=free,
                lease=self._lease,
                providers=tuple(self.clients),
            )
        )
        for job in jobs:
            self._waiting.add(job.id)
            task = asyncio.create_task(self._send(http, job))
            self._tasks[job.id] = task
            task.add_done_callback(functools.partial(self._done, job.id))
        return len(jobs)

    def _done(self, job_id: int, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(job_id, None)
        self._wake.set()  # a slot is free, and the conversation's next message may be due

    async def _drain(self) -> None:
        """On stop: give back sends not started; let requests in flight finish."""
        for job_id in list(self._waiting):
            task = self._tasks.get(job_id)
            if task is not None:
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=self._timeout + 5)
        unsent = list(self._waiting)
        if unsent:
            with contextlib.suppress(Exception):  # else their leases run out
                await self._write(
                    functools.partial(service.release, job_ids=unsent, owner=self._owner)
                )

    async def _send(self, http: httpx.AsyncClient, job: Job) -> None:
        client = self.clients[job.route.provider]
        await asyncio.sleep(self._pacer.reserve(client.paces(job)))
        try:
            request = client.request(job)
        except Exception:  # a bug, or a row edited by hand: never leave it leased
            log.exception("send request could not be built", message_id=str(job.message_id))
            self._waiting.discard(job.id)
            error = {"code": "request-not-built", "message": "kobliat could not build it"}
            await self._record(job, Outcome("failed", error=error))
            return
        content, headers = request.content, dict(request.headers)
        if request.form is not None:
            content = urlencode(request.form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self._waiting.discard(job.id)  # from here on, the provider may get it
        try:
            auth = httpx.BasicAuth(*request.auth) if request.auth else httpx.USE_CLIENT_DEFAULT
            response = await http.post(request.url, content=content, headers=headers, auth=auth)
            outcome = client.outcome(
                job, response.status_code, _lower(response.headers), response.content
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the provider: safe to try again.
            outcome = Outcome(
                "retry", error={"code": "connection-failed", "message": type(exc).__name__}
            )
        except httpx.HTTPError as exc:
            # The request may have arrived (only the answer is missing). Type name only: the
            # exception text could carry the URL, and Telegram's holds the bot token.
            outcome = Outcome(
                "unknown",
                error={
                    "code": "send-outcome-unknown",
                    "message": f"{type(exc).__name__} after the request was sent",
                },
            )
        await self._record(job, outcome)

    async def _record(self, job: Job, outcome: Outcome) -> None:
        work = functools.partial(
            service.record,
            job=job,
            outcome=outcome,
            owner=self._owner,
            policy=self._policy,
            resend_safe=self._resend_safe,
        )
        # The provider has answered: losing that answer to a database hiccup would turn a
        # known outcome into an unknown one when the lease runs out, so insist a while.
        for attempt in range(1, 8):
            try:
                recorded = await self._write(work)
                break
            except Exception:
                log.exception("recording a send failed", attempt=attempt)
                await asyncio.sleep(min(2.0**attempt * 0.1, 5.0))
        else:
            return
        metrics.SENDS.labels(job.channel, job.route.provider, recorded).inc()
        if recorded != "sent":
            error = logs.mask_phones(str(outcome.error))
            log.warning(
                "send not completed",
                provider=job.route.provider,
                message_id=str(job.message_id),
                outcome=recorded,
                error=error,
            )

    async def _housekeeping(self) -> None:
        """Settle sends whose sender died, report the backlog and, hourly, prune failed sends
        past their retention."""
        while True:
            await self._prune()
            settled = await self._write(
                functools.partial(service.recover_expired, limit=100, resend_safe=self._resend_safe)
            )
            for job, recorded in settled:
                metrics.SENDS.labels(job.channel, job.route.provider, recorded).inc()
                log.warning(
                    "send lease expired",
                    provider=job.route.provider,
                    message_id=str(job.message_id),
                    outcome=recorded,
                )
            backlog = await asyncio.to_thread(self._backlog)
            for state, count in backlog.items():
                metrics.SEND_QUEUE.labels(state).set(count)
            self._pacer.forget_idle()
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def _prune(self) -> None:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        total, prune = 0, functools.partial(service.prune_failed, older_than=self._failed_retention)
        while (count := await self._write(prune)) > 0:
            total += count
        self._pruned_at = now
        if total:
            log.info("failed sends pruned", rows=total)

    def _has_due(self) -> bool:
        # Read first: an idle sender then costs no write transaction (SQLite's lock is shared).
        with self.db.reading() as conn:
            return service.has_due(conn, providers=tuple(self.clients))

    def _backlog(self) -> dict[str, int]:
        with self.db.reading() as conn:
            return service.backlog(conn)

    async def _forever(self, loop: Callable[[], object]) -> None:
        while True:
            try:
                await loop()  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures.failed("housekeeping", exc)
                await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def _write(self, work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.to_thread(self.db.run, work)


def _lower(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
