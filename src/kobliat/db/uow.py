"""The unit of work: owns one transaction, collects the domain events raised in it, and is the
only thing that commits. Committing writes those events to the outbox in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, RootTransaction

from kobliat.db import dialect
from kobliat.events.envelope import DomainEvent


class UnitOfWork:
    """One database transaction plus the events it raised."""

    connection: Connection

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.events: list[DomainEvent] = []
        self._tx: RootTransaction | None = None
        self._committed = False
        self._held = ExitStack()

    def __enter__(self) -> Self:
        # The writer's turn comes before the connection: a writer waiting for its turn holds
        # no pooled connection.
        with ExitStack() as held:
            held.enter_context(dialect.writing(self._engine))
            self.connection = self._engine.connect()
            held.callback(self.connection.close)
            self._tx = self.connection.begin()
            self._held = held.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._held:  # closes the connection, then gives the writer's turn to the next
            if not self._committed and self._tx is not None and self._tx.is_active:
                self._tx.rollback()

    def emit(self, *events: DomainEvent) -> None:
        """Record events to be written to the outbox when this unit of work commits."""
        self.events.extend(events)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: when the block raises, its changes and its events are undone."""
        mark = len(self.events)
        try:
            with self.connection.begin_nested():
                yield
        except BaseException:
            del self.events[mark:]
            raise

    def commit(self) -> None:
        """Write the collected events to the outbox, then commit everything at once."""
        from kobliat.events import outbox  # events depend on db, not the other way round

        assert self._tx is not None
        if self.events:
            outbox.append(self.connection, self.events)
        self._tx.commit()
        self._committed = True
