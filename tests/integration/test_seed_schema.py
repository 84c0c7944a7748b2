"""The seed's three tables exist exactly as the seed writes them (PostgreSQL catalogs), and
the SQLite schema has the same tables and columns as the Core metadata the code queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from kobliat.db import migrate
from kobliat.db.tables import metadata
from tests.conftest import create_database
from tests.support.postgres import PostgresCluster

SEED_SQL = Path(__file__).parent.parent / "fixtures" / "seed_schema.sql"
SEED_TABLES = ("customers", "conversations", "conversation_participants")

COLUMNS = """
SELECT table_name, column_name, data_type, udt_name, column_default, is_nullable,
       character_maximum_length, numeric_precision, datetime_precision
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = ANY(%s)
ORDER BY table_name, column_name
"""
CONSTRAINTS = """
SELECT rel.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
WHERE rel.relname = ANY(%s)
ORDER BY 1, 2
"""
ENUMS = """
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
GROUP BY t.typname ORDER BY 1
"""


def _catalog(cluster: PostgresCluster, dbname: str) -> dict[str, Any]:
    with psycopg.connect(
        f"host=127.0.0.1 port={cluster.port} user=postgres dbname={dbname}"
    ) as conn:
        columns = {(r[0], r[1]): r[2:] for r in conn.execute(COLUMNS, (list(SEED_TABLES),))}
        constraints = {(r[0], r[1]): r[2:] for r in conn.execute(CONSTRAINTS, (list(SEED_TABLES),))}
        enums = {r[0]: list(r[1]) for r in conn.execute(ENUMS)}
    return {"columns": columns, "constraints": constraints, "enums": enums}


@pytest.mark.postgres
def test_migrated_postgres_matches_the_seed_ddl_exactly(pg_cluster: PostgresCluster) -> None:
    create_database(pg_cluster, "seed_reference")
    with psycopg.connect(
        f"host=127.0.0.1 port={pg_cluster.port} user=postgres dbname=seed_reference"
    ) as conn:
        conn.execute(SEED_SQL.read_text())  # type: ignore[arg-type]
    create_database(pg_cluster, "seed_migrated")
    engine = create_engine(pg_cluster.url("seed_migrated"))
    migrate.upgrade(engine)
    engine.dispose()

    seed = _catalog(pg_cluster, "seed_reference")
    ours = _catalog(pg_cluster, "seed_migrated")

    assert len(seed["columns"]) == 22
    for key, definition in seed["columns"].items():
        assert ours["columns"].get(key) == definition, f"column {key} differs"
    # Additions to seed tables are new columns only, never changes.
    assert set(seed["columns"]) <= set(ours["columns"])
    # Constraints (PK, UNIQUE, FK with ON DELETE CASCADE) are identical, names included.
    assert ours["constraints"] == seed["constraints"]
    assert ours["enums"]["conversation_type"] == ["direct", "multi", "group"]
    assert ours["enums"]["conversation_status"] == ["open", "closed", "pending"]
    for name in ("conversation_type", "conversation_status"):
        assert ours["enums"][name] == seed["enums"][name]


def test_migrated_schema_has_every_table_and_column_the_code_uses(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            found = {col["name"] for col in inspector.get_columns(table.name)}
            assert found == {col.name for col in table.columns}, table.name
    finally:
        engine.dispose()
