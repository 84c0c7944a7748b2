"""The Database: one engine per process, and the transaction runner every use case goes through."""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine

from kobliat.db import dialect
from kobliat.db.uow import UnitOfWork

T = TypeVar("T")


class Database:
    """Owns the engine; runs units of work with retries on deadlocks and lock time-outs."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = dialect.engine_url(url)
        # hide_parameters: errors never carry bound values (message texts, phone numbers)
        # into logs or into the inbox's stored `last_error`.
        self.engine: Engine = create_engine(
            self.url,
            hide_parameters=True,
            **dialect.engine_options(self.url, pool_size=pool_size),
        )
        dialect.prepare_engine(self.engine)
        self._writer: ThreadPoolExecutor | None = None
        self._writer_thread: int | None = None
        if not self.is_postgres:
            self._start_writer()

    def _start_writer(self) -> None:
        # SQLite takes one writer at a time: one thread runs every write transaction of this
        # Database back to back, in arrival order, rather than threads handing a lock on (each
        # hand-over waits for the next thread to be scheduled) or sleeping in SQLite's busy
        # handler (which leaves the database idle and some writers waiting for seconds).
        self._writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="kobliat-sqlite-writer", initializer=self._mark
        )

    def _mark(self) -> None:
        self._writer_thread = threading.get_ident()

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (several writers at once), False on SQLite (one writer)."""
        return self.engine.dialect.name == "postgresql"

    def run(self, work: Callable[[UnitOfWork], T], *, attempts: int = 6) -> T:
        """Run `work` in a unit of work and commit it; run it again on a retryable failure."""
        if self._writer is None:
            return self._run_here(work, attempts)
        if threading.get_ident() == self._writer_thread:
            raise RuntimeError("a write transaction cannot start inside another one")
        context = contextvars.copy_context()  # the caller's log context goes along
        return self._writer.submit(context.run, self._run_here, work, attempts).result()

    def _run_here(self, work: Callable[[UnitOfWork], T], attempts: int) -> T:
        for attempt in range(1, attempts + 1):
            try:
                with UnitOfWork(self.engine) as uow:
                    result = work(uow)
                    uow.commit()
                    return result
            except Exception as exc:
                if attempt == attempts or not dialect.is_retryable(exc):
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction (never takes SQLite's write lock)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(kobliat_read_only=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close every pooled connection (and stop SQLite's writer thread)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._start_writer()  # started lazily: no thread until the next write
        self.engine.dispose()
