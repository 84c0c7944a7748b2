"""Migration 0004 on both backends: exhausted deliveries become failed, and it reverses."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, select

from kobliat.db import dialect, migrate
from kobliat.db.tables import inbox
from tests.conftest import create_database
from tests.support.postgres import PostgresCluster

MOMENT = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
# The revision 0004 follows (looked up, so re-chaining the migrations keeps this test true).
_SCRIPTS = ScriptDirectory.from_config(migrate.alembic_config())
BEFORE = str(_SCRIPTS.get_revision("0004").down_revision)
_names = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database (nothing migrated), once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'blank.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        name = f"blank_{next(_names)}"
        create_database(cluster, name)
        url = cluster.url(name)
    engine = create_engine(dialect.engine_url(url))
    yield engine
    engine.dispose()


def downgrade(engine: Engine, revision: str) -> None:
    config = migrate.alembic_config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()


def a_delivery(engine: Engine, key: str, *, attempts: int) -> None:
    columns = {c.name for c in inbox.columns} - {"id", "failed_at"}
    values: dict[str, Any] = {
        "channel": "whatsapp",
        "delivery_key": key,
        "body": b"{}",
        "headers": {},
        "received_at": MOMENT,
        "processed_at": None,
        "attempts": attempts,
        "last_error": "boom",
        "next_attempt_at": MOMENT,
    }
    assert set(values) == columns
    with engine.begin() as conn:
        conn.execute(inbox.insert().values(**values))


def rows(engine: Engine, *names: str) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(select(inbox.c.delivery_key, *(inbox.c[n] for n in names)))
        return {row[0]: tuple(row[1:]) for row in found}


def test_deliveries_out_of_attempts_become_failed_and_the_others_stay_pending(
    blank_engine: Engine,
) -> None:
    migrate.upgrade(blank_engine, BEFORE)
    a_delivery(blank_engine, "exhausted", attempts=12)
    a_delivery(blank_engine, "retrying", attempts=3)

    migrate.upgrade(blank_engine)

    assert rows(blank_engine, "failed_at") == {"exhausted": (MOMENT,), "retrying": (None,)}


def test_downgrade_keeps_failed_deliveries_out_of_the_old_worker_and_upgrades_again(
    blank_engine: Engine,
) -> None:
    migrate.upgrade(blank_engine)
    a_delivery(blank_engine, "retrying", attempts=3)
    with blank_engine.begin() as conn:
        conn.execute(inbox.update().values(failed_at=MOMENT))

    downgrade(blank_engine, BEFORE)

    columns = {c["name"] for c in inspect(blank_engine).get_columns("inbox")}
    assert "failed_at" not in columns
    assert rows(blank_engine, "attempts") == {"retrying": (12,)}
    migrate.upgrade(blank_engine)
    assert rows(blank_engine, "failed_at") == {"retrying": (MOMENT,)}
