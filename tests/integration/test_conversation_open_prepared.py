"""Opening conversations keeps working once the driver prepares the statement (PostgreSQL)."""

from __future__ import annotations

from kobliat.conversations import service
from kobliat.db.engine import Database
from tests.builders import a_customer


def test_find_or_open_works_past_the_prepared_statement_threshold(db: Database) -> None:
    # psycopg prepares a statement on its 5th run and PostgreSQL plans it generically a few
    # runs later: a partial-index ON CONFLICT with a bound predicate then stops matching.
    business = a_customer(db)
    opened = []
    for _ in range(15):
        customer = a_customer(db)
        for _ in range(2):  # once opening, once finding the open one (the conflict path)
            _, created = db.run(
                lambda uow, c=customer: service.find_or_open(
                    uow,
                    type="direct",
                    channel="whatsapp",
                    participants=[(c.id, None), (business.id, None)],
                )
            )
            opened.append(created)
    assert opened == [True, False] * 15
