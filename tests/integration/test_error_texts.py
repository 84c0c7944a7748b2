"""Database errors never carry the statement's bound values (message texts, phone numbers)
into their text, so neither logs nor the inbox's stored `last_error` can show them."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from kobliat.db.engine import Database
from kobliat.inbox.service import describe


def test_a_failing_statement_does_not_quote_its_parameters(db: Database) -> None:
    secret = "+447700900123 says: my card is 4111 1111"
    with pytest.raises(Exception) as failed:
        db.run(
            lambda uow: uow.connection.execute(text("SELECT no_such_function(:p)"), {"p": secret})
        )
    assert "no_such_function" in str(failed.value)
    assert secret not in str(failed.value) and secret not in describe(failed.value)
    assert "447700900123" not in describe(failed.value)
