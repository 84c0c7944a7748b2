"""What counts as "the database is unavailable" (a 503 with Retry-After, not a 500): real
errors from a refused PostgreSQL connection and a SQLite file still locked after its timeout;
a wrong statement stays a bug."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from kobliat.db import dialect
from kobliat.db.engine import Database
from tests.support.postgres import free_port


def test_a_refused_postgresql_connection_is_unavailable() -> None:
    engine = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
        connect_args={"connect_timeout": 5},
    )
    with pytest.raises(DBAPIError) as refused:
        engine.connect()
    assert dialect.is_unavailable(refused.value)


def test_a_sqlite_file_still_locked_after_the_timeout_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = create_engine(url, connect_args={"isolation_level": None})
    impatient = create_engine(url, connect_args={"isolation_level": None, "timeout": 0.1})
    with holder.connect() as held:
        held.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        held.exec_driver_sql("BEGIN IMMEDIATE")
        with impatient.connect() as conn, pytest.raises(DBAPIError) as locked:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        held.exec_driver_sql("ROLLBACK")
    holder.dispose()
    impatient.dispose()
    assert dialect.is_unavailable(locked.value)


def test_a_wrong_statement_is_not_an_outage(db: Database) -> None:
    with pytest.raises(DBAPIError) as wrong, db.reading() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not dialect.is_unavailable(wrong.value)
