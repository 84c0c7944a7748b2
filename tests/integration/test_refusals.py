"""Which failures the inbox treats as final for an item (applied item by item at once) and which
it retries: real errors from the real databases."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from kobliat.channels.records import PayloadError
from kobliat.db import dialect
from kobliat.db.engine import Database
from kobliat.errors import InvalidInput
from kobliat.inbox.service import is_permanent
from kobliat.ingest import is_refusal


def failure(db: Database, statement: str, **params: object) -> BaseException:
    """The exception a statement raises on this database."""
    with db.reading() as conn, pytest.raises(Exception) as raised:
        conn.execute(text(statement), params)
    return raised.value


def test_text_the_driver_cannot_encode_is_refused_for_good(db: Database) -> None:
    assert is_refusal(failure(db, "SELECT :v", v="broken \ud800 text"))


def test_a_value_the_database_refuses_is_refused_for_good(db: Database) -> None:
    if db.is_postgres:
        exc = failure(db, "SELECT CAST(:v AS integer)", v="not a number")
    else:
        exc = failure(db, "SELECT :v", v=2**70)
    assert is_refusal(exc)


def test_a_missing_table_is_retried(db: Database) -> None:
    # What a half-applied deploy looks like: trying again later can succeed.
    exc = failure(db, "SELECT * FROM no_such_table")
    assert not is_refusal(exc) and not is_permanent(exc)


def test_domain_rules_and_malformed_payloads_are_permanent() -> None:
    assert is_permanent(InvalidInput("bad", code="invalid-phone-number"))
    assert is_permanent(PayloadError("not JSON"))
    assert not is_permanent(ConnectionError("database away"))


def test_an_unreachable_database_is_an_outage_and_a_missing_table_is_not(db: Database) -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(Exception) as raised:
        engine.connect()
    engine.dispose()

    assert dialect.is_unavailable(raised.value) and not is_refusal(raised.value)
    assert not dialect.is_unavailable(failure(db, "SELECT * FROM no_such_table"))
