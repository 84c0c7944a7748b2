"""Test fixtures: real SQLite files and a real, throwaway PostgreSQL cluster.

Every storage test takes the `db` fixture, which runs it once on SQLite and once on
PostgreSQL. PostgreSQL tests skip when the machine cannot start a cluster, unless
KOBLIAT_REQUIRE_POSTGRES=1 (as in CI), where that is a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine

from kobliat import tracing
from kobliat.db import migrate
from kobliat.db.engine import Database
from tests.support.contract import check_outbox
from tests.support.nats import NatsServer, NatsUnavailable
from tests.support.postgres import PostgresCluster, PostgresUnavailable, start_cluster

TEMPLATE = "kobliat_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster, with a migrated template database."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("KOBLIAT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        create_database(cluster, TEMPLATE)
        engine = create_engine(cluster.url(TEMPLATE))
        migrate.upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of one test alone, with no database of kobliat's yet: the test may
    stop and start it (`pause`, `resume`)."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("KOBLIAT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def create_database(cluster: PostgresCluster, name: str, *, template: str | None = None) -> None:
    """CREATE DATABASE (optionally from a template) in the cluster."""
    with psycopg.connect(
        f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        suffix = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')


def migrated_database(cluster: PostgresCluster, name: str) -> str:
    """Create and migrate a database in the cluster; its URL."""
    create_database(cluster, name)
    engine = create_engine(cluster.url(name))
    migrate.upgrade(engine)
    engine.dispose()
    return cluster.url(name)


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """URL of a fresh, migrated PostgreSQL database for one test."""
    name = f"t{os.getpid()}_{next(_counter)}"
    create_database(pg_cluster, name, template=TEMPLATE)
    return pg_cluster.url(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh, migrated SQLite file for one test."""
    url = f"sqlite:///{tmp_path / 'kobliat.db'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh migrated database URL, once per backend; afterwards every event the test wrote
    there is checked against its published schema."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    yield url
    check_outbox(url)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A Database on a fresh migrated schema, once on SQLite and once on PostgreSQL."""
    database = Database(db_url, pool_size=60)
    yield database
    database.dispose()


API_KEY = "test-key-0123456789"


@pytest.fixture
def container(db: Database, db_url: str) -> Iterator[Any]:
    """The application's container on the test database (both backends)."""
    from kobliat.auth import KeyChecker
    from kobliat.bootstrap import Container
    from kobliat.settings import Settings

    settings = Settings(database_url=db_url, api_keys=API_KEY, relay_enabled=False, _env_file=None)  # type: ignore[call-arg]
    yield Container(settings=settings, db=db, keys=KeyChecker(db, [API_KEY]))


@pytest.fixture
def client(container: Any) -> Iterator[Any]:
    """An HTTP client on the app, authenticated with the test key."""
    from fastapi.testclient import TestClient

    from kobliat.api import create_app

    with TestClient(create_app(container=container)) as http:
        http.headers["Authorization"] = f"Bearer {API_KEY}"
        yield http


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server -js for one test (JetStream store under tmp_path), stopped after."""
    try:
        server = NatsServer(tmp_path / "nats")
    except NatsUnavailable as exc:
        if os.environ.get("KOBLIAT_REQUIRE_NATS") == "1":
            pytest.fail(f"nats-server is required but unavailable: {exc}")
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded in memory while the test runs (ask for it before the app is built)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    yield exporter
    tracing.unconfigure()
