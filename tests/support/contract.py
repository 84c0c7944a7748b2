"""Every event a test produced, checked against the published contract (envelope + data schema)."""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import create_engine, select
from sqlalchemy.exc import DBAPIError

from kobliat.db import dialect
from kobliat.db.tables import outbox
from kobliat.events import contract


@functools.cache
def _validator(event_type: str) -> Draft202012Validator:
    return Draft202012Validator(contract.data_schema(event_type))


_ENVELOPE = Draft202012Validator(contract.envelope_schema())


def violations(envelope: dict[str, Any]) -> list[str]:
    """What is wrong with one stored envelope (empty when it keeps the contract)."""
    found = [f"envelope: {e.message}" for e in _ENVELOPE.iter_errors(envelope)]
    event_type = envelope.get("type")
    if event_type in contract.EVENT_DATA:
        data = envelope.get("data")
        found += [
            f"data{list(e.absolute_path)}: {e.message}"
            for e in _validator(event_type).iter_errors(data)
        ]
    return found


def check_outbox(url: str) -> None:
    """Fail when an event in the database at `url` breaks its schema.

    A database the test left unreadable (stopped, dropped) is not checked.
    """
    engine = create_engine(dialect.engine_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(outbox.c.envelope)).all()
    except DBAPIError:
        return
    finally:
        engine.dispose()
    problems = [
        (row.envelope["type"], v)
        for row in rows
        if not str(row.envelope.get("type")).startswith("test.")  # tests' own synthetic events
        for v in violations(row.envelope)
    ]
    assert not problems, f"events that break their published schema: {problems[:5]}"
