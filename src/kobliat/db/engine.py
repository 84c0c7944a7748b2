"""The Database: one engine per process, and the transaction runner every use case goes through."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
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

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (several writers at once), False on SQLite (one writer)."""
        return self.engine.dialect.name == "postgresql"

    def run(self, work: Callable[[UnitOfWork], T], *, attempts: int = 6) -> T:
        """Run `work` in a unit of work and commit it; run it again on a retryable failure."""
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
        """Close every pooled connection."""
        self.engine.dispose()
