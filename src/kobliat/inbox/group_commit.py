"""Group commit for the webhook hot path on PostgreSQL.

Each verified delivery the fast path can take (`kobliat.ingest_fast`) is handed to one writer per
process. The writer takes everything pending (up to `batch_size`), sorts it by sender so any two
batches (of two processes, or the two a writer may have in flight at once) lock conversations in
the same order and cannot deadlock, and sends it as ONE statement on one of its own psycopg
async connections: the statement hands every delivery's parameters to the function in
turn, all in one transaction and one round trip. (A first contact takes a second call: the
direct function's answer 'new-sender' sends it back as a first-contact call, in a later batch.)
Each request is answered only after the shared commit that stored it, so a delivery is still
durable before its 200. When the batch fails as a whole (a deadlock, a bad delivery, a lost
connection), nothing of it is kept and every delivery in it goes through the general flow on
its own, which retries, stores failures for the worker, and answers as before: one bad delivery
costs its neighbours a slower path, never their delivery.

In `kobliat serve` the writer is a task on the server's event loop (`serving`, entered by the
app's lifespan): handing it a delivery costs no thread switch at all. Without it (an app whose
lifespan never ran, a script) the writer runs its own event loop in a thread, so requests on any
event loop can still hand it work; that writer closes its connection after a quiet spell and
starts again on the next delivery.
"""

from __future__ import annotations

import asyncio
import threading
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import cast

import psycopg
import structlog
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

from kobliat import ingest_fast
from kobliat.aio import wait_event
from kobliat.db.engine import Database
from kobliat.inbox import service as inbox
from kobliat.inbox.model import Delivery
from kobliat.settings import Settings

log = structlog.get_logger(__name__)
Answer = ingest_fast.Answer
Waiter = Future[Answer] | asyncio.Future[Answer]
Pending = tuple[ingest_fast.FastCall, Waiter]
Connection = psycopg.AsyncConnection[tuple[object, ...]]


class GroupCommit:
    """One writer: batches fast-path deliveries into shared, pipelined transactions."""

    def __init__(
        self, url: str, *, batch_size: int = 64, idle_seconds: float = 5.0, connections: int = 2
    ) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._batch_size = batch_size
        self._connections = connections
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._pending: list[Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # where the writer runs
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, call: ingest_fast.FastCall) -> Awaitable[Answer]:
        """Queue one delivery; the answer comes once its batch has committed (or failed)."""
        with self._lock:
            if self._loop is None:
                self._start_thread()
            loop, wake = self._loop, self._wake
            assert loop is not None and wake is not None
            if _running_loop() is loop:
                here: asyncio.Future[Answer] = loop.create_future()
                self._pending.append((call, here))
                wake.set()
                return here
            there: Future[Answer] = Future()
            self._pending.append((call, there))
            loop.call_soon_threadsafe(wake.set)
        return asyncio.wrap_future(there)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Run the writer as a task on the running event loop while the block runs."""
        self.close()  # a thread writer started before (none in a server) hands over
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop, self._wake = loop, asyncio.Event()
        task = loop.create_task(self._run(idle_seconds=None))
        try:
            yield
        finally:
            self.close()
            await task

    def close(self) -> None:
        """Stop the writer after what is pending, and close its connection."""
        with self._lock:
            loop, wake, thread = self._loop, self._wake, self._thread
            if loop is None or wake is None:
                return
            self._stopping = True
        loop.call_soon_threadsafe(wake.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _start_thread(self) -> None:
        started = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop, self._wake = loop, asyncio.Event()
            started.set()
            try:
                loop.run_until_complete(self._run(idle_seconds=self._idle_seconds))
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="kobliat-group-commit", daemon=True)
        self._thread.start()
        started.wait()

    async def _run(self, *, idle_seconds: float | None) -> None:
        wake = self._wake
        assert wake is not None
        # Each connection writes one batch at a time; with two, the next batch goes out while the
        # last one is still in the database, so neither the server nor the database waits on the
        # other. A connection is None until first used and after a failure.
        free: list[Connection | None] = [None] * self._connections
        writing: set[asyncio.Task[Connection | None]] = set()
        try:
            while True:
                if not free:
                    done, writing = await asyncio.wait(writing, return_when=FIRST_COMPLETED)
                    free.extend(task.result() for task in done)
                    continue
                batch = self._take()
                if batch:
                    writing.add(asyncio.create_task(self._commit(free.pop(), batch)))
                    continue
                idle = not await wait_event(wake, idle_seconds)
                wake.clear()
                with self._lock:
                    if not self._pending and (self._stopping or idle):
                        # The next submit starts a new writer.
                        self._loop = self._wake = self._thread = None
                        self._stopping = False
                        return
        finally:
            for conn in [*free, *[_connection(task) for task in await _finished(writing)]]:
                if conn is not None:
                    await conn.close()

    def _take(self) -> list[Pending]:
        with self._lock:
            taken, self._pending = (
                self._pending[: self._batch_size],
                self._pending[self._batch_size :],
            )
        # A request cancelled meanwhile (its client went away) is not written.
        live = [item for item in taken if _claim(item[1])]
        return sorted(live, key=lambda item: item[0].order)

    async def _commit(self, conn: Connection | None, batch: list[Pending]) -> Connection | None:
        """Write one batch; returns the connection to use next (None after a failure)."""
        try:
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            answers = await _write(conn, [call for call, _ in batch])
        except Exception as exc:
            log.warning("group commit failed; its deliveries take the general flow", error=exc)
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if conn is not None:
                await conn.close()
            return None
        for (_, done), answer in zip(batch, answers, strict=True):
            if not done.done():
                done.set_result(answer)
        return conn


def running(writer: GroupCommit | None) -> AbstractAsyncContextManager[None]:
    """The writer on the server's event loop while the app runs (nothing without one)."""
    return nullcontext() if writer is None else writer.serving()


async def _finished(
    tasks: set[asyncio.Task[Connection | None]],
) -> set[asyncio.Task[Connection | None]]:
    """The tasks once all have ended (a batch being written is let finish: its requests wait)."""
    if tasks:
        await asyncio.wait(tasks)
    return tasks


def _connection(task: asyncio.Task[Connection | None]) -> Connection | None:
    """The connection a finished batch hands back (None when the task did not end normally)."""
    return None if task.cancelled() or task.exception() is not None else task.result()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _claim(done: Waiter) -> bool:
    """Whether a waiter still wants its answer (and, across threads, can no longer cancel)."""
    if isinstance(done, Future):
        return done.set_running_or_notify_cancel()
    return not done.cancelled()


async def _write(conn: Connection, calls: list[ingest_fast.FastCall]) -> list[ingest_fast.Answer]:
    """Every call in one statement (one transaction, autocommit); the answers once it has
    committed. A call JSON cannot carry is answered 'fallback' without being sent."""
    elements = [ingest_fast.batch_element(call) for call in calls]
    sent = [element for element in elements if element is not None]
    answers: list[ingest_fast.Answer] = []
    if sent:
        document = b"[" + b",".join(sent) + b"]"
        cursor = await conn.execute(ingest_fast.BATCH_STATEMENT, (document.decode(),), prepare=True)
        answers = [cast(ingest_fast.Answer, row[0]) for row in await cursor.fetchall()]
    if len(answers) != len(sent):
        raise RuntimeError(f"the batch of {len(sent)} was answered {len(answers)} times")
    given = iter(answers)
    return ["fallback" if element is None else next(given) for element in elements]


async def accept(
    writer: GroupCommit | None, db: Database, delivery: Delivery, settings: Settings
) -> inbox.Receipt:
    """Take in a verified delivery: through the group commit when it can, else the general
    flow. Raises PayloadError (nothing stored) when it is malformed."""
    parsed = inbox.parse(delivery, settings)
    call = ingest_fast.prepare(delivery, parsed) if writer is not None else None
    if writer is not None and call is not None:
        answer = await _written(writer, call)
        if answer == "new-sender":  # drafted only now: most senders are known
            answer = await _written(writer, ingest_fast.first_contact(call))
        if answer == "delivery-duplicate":
            return inbox.Receipt("duplicate", parsed.delivery_key)
        outcome = ingest_fast.receipt_outcome(answer)
        if outcome is not None:
            return inbox.Receipt("processed", parsed.delivery_key, outcome)
    return await run_in_threadpool(inbox.accept, db, delivery, settings, parsed=parsed)


async def _written(writer: GroupCommit, call: ingest_fast.FastCall) -> Answer:
    try:
        return await writer.submit(call)
    except Exception:
        return "fallback"  # logged by the writer; the general flow stores it
