"""Everything that differs between SQLite and PostgreSQL lives here, and only here."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    event,
    literal,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry

# PostgreSQL SQLSTATEs worth retrying the whole transaction for.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def engine_url(url: str) -> str:
    """Pick kobliat's driver for a plain URL (postgresql:// → psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def engine_options(url: str, *, pool_size: int) -> dict[str, Any]:
    """Keyword arguments for `create_engine` that suit the URL's database."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # No pre-ping (a round trip per checkout): a connection found dead raises a disconnect
    # error, which invalidates it and every older pooled one, and that request answers 503.
    # connect_timeout: an unreachable host fails a request in seconds instead of hanging it.
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "connect_args": {"connect_timeout": 5},
    }


def prepare_engine(engine: Engine) -> None:
    """Install per-dialect connection set-up.

    SQLite: WAL so readers never block the writer, and every write transaction starts with
    BEGIN IMMEDIATE, which takes the write lock up front: concurrent find-or-create calls then
    queue instead of failing with "database is locked" when a reader upgrades to a writer.
    Within a process, writers queue on `writing` before that BEGIN; the busy timeout is left
    for another process on the same file (a separate `kobliat relay`).
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("kobliat_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# As long as the busy timeout SQLite itself is given: a writer stuck longer is a fault.
SQLITE_WRITER_TIMEOUT = 30.0
_sqlite_writers: dict[str, threading.Lock] = {}
_sqlite_writers_guard = threading.Lock()


@contextmanager
def writing(engine: Engine) -> Iterator[None]:
    """Hold this process's turn to write (SQLite: one writer per database file, so no
    connection of the process ever sleeps in SQLite's busy handler); PostgreSQL: nothing."""
    if engine.dialect.name != "sqlite":
        yield
        return
    file = engine.url.database or ""
    key = os.path.abspath(file) if file and file != ":memory:" else f"engine:{id(engine)}"
    with _sqlite_writers_guard:
        lock = _sqlite_writers.setdefault(key, threading.Lock())
    if not lock.acquire(timeout=SQLITE_WRITER_TIMEOUT):
        raise TimeoutError(f"no turn to write to {key} within {SQLITE_WRITER_TIMEOUT:.0f} s")
    try:
        yield
    finally:
        lock.release()


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The INSERT … ON CONFLICT construct of the connection's dialect."""
    return insert_for(conn.dialect.name, table)


def insert_for(dialect_name: str, table: Table) -> Any:
    """The INSERT … ON CONFLICT construct of a dialect, by name (for statements built once)."""
    module = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


def is_retryable(exc: BaseException) -> bool:
    """True when the whole transaction may simply be run again (deadlock, lock timeout)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(orig)


def is_bad_data(exc: BaseException) -> bool:
    """True when the database or its driver refused a value itself (text it cannot encode, a
    number out of range, malformed JSON): running the transaction again cannot help."""
    if isinstance(exc, UnicodeError | OverflowError):  # raised by the drivers before sending
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    # PostgreSQL's class 22 is "data exception"; SQLite's driver has DataError for the same.
    return sqlstate.startswith("22") or type(exc.orig).__name__ == "DataError"


def is_unique_violation(exc: BaseException, constraint: str) -> bool:
    """True when `exc` is a unique violation of the named constraint or index."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(orig, "sqlstate", None) == "23505":
        return bool(diag.constraint_name == constraint)
    # SQLite names the columns, not the index: callers pass the index name, so map it.
    return "UNIQUE constraint failed" in str(orig) and _SQLITE_UNIQUE_COLUMNS.get(
        constraint, "\0"
    ) in str(orig)


_SQLITE_UNIQUE_COLUMNS = {
    "conversations_open_key_uq": "conversations.conversation_key",
}


def feed_horizon(conn: Connection) -> int | None:
    """The lowest transaction id still running, or None where writers are serialised.

    See `kobliat.events.outbox.read_feed` for why the feed needs it.
    """
    if conn.dialect.name != "postgresql":
        return None
    value = conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
    return int(value.scalar_one())


def txid_for(dialect_name: str) -> ColumnElement[int]:
    """SQL for the writing transaction's id (PostgreSQL), or 0 where writers are serialised;
    by dialect name, for statements built once."""
    if dialect_name != "postgresql":
        return literal(0, BigInteger)
    return literal_column("pg_current_xact_id()::text::bigint", BigInteger)


def skip_locked(conn: Connection, stmt: Select[Any]) -> Select[Any]:
    """`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises."""
    if conn.dialect.name != "postgresql":
        return stmt
    return stmt.with_for_update(skip_locked=True)


def try_relay_lock(conn: Connection, key: int, *, wait: bool = False) -> bool:
    """Take a transaction-scoped lock (PostgreSQL advisory lock), waiting for it or only if
    free; SQLite: always True, as a write transaction there already excludes other writers."""
    if conn.dialect.name != "postgresql":
        return True
    if wait:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        return True
    taken = conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(taken.scalar_one())


def database_now(conn: Connection) -> datetime:
    """The database server's clock (aware UTC): every relay takes lease and retry times from it,
    so hosts whose clocks disagree still agree on when a lease ends. PostgreSQL's `now()` is the
    transaction's start, never later than the moment the caller began it."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(text("SELECT now()")).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    found = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
    return datetime.fromisoformat(str(found)).replace(tzinfo=UTC)


# PostgreSQL SQLSTATE classes and codes that mean "the database cannot serve now", not "this
# request is wrong": connection exceptions, insufficient resources, operator intervention.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_SQLITE_UNAVAILABLE = ("database is locked", "database is busy", "unable to open database")


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached or is too busy right now (refused,
    shut down, connection lost, pool exhausted, SQLite still locked after its timeout)."""
    if isinstance(exc, SQLAlchemyTimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return str(sqlstate).startswith(_UNAVAILABLE_SQLSTATE_CLASSES)
    if isinstance(orig, psycopg.OperationalError):  # no SQLSTATE: no server answered at all
        return True
    return isinstance(exc, OperationalError) and any(m in str(orig) for m in _SQLITE_UNAVAILABLE)


def describe_unavailable(exc: BaseException) -> str:
    """A short, value-free description of an outage error for the log (first line only)."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first}"[:200]


def supports_lateral(conn: Connection) -> bool:
    """True where a subquery in FROM may read the rows before it (PostgreSQL's LATERAL)."""
    return conn.dialect.name == "postgresql"
