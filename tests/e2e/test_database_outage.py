"""PostgreSQL stopped under a running `kobliat serve`: webhooks and REST calls are answered
`503 database-unavailable` with Retry-After over the same keep-alive connection, the log says
so once per interval, and once the database is back every delivery is taken in exactly once."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from kobliat.channels.samples import signing
from kobliat.channels.samples import whatsapp as wa
from kobliat.db.tables import messages
from tests.conftest import create_database
from tests.e2e.webhooks import API_KEY, WHATSAPP_SECRET
from tests.support.postgres import PostgresCluster
from tests.support.serve import Served, serving

pytestmark = pytest.mark.postgres


@pytest.fixture
def served(own_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Served]:
    """`kobliat serve` on the test's own cluster (it migrates the empty database at start)."""
    create_database(own_cluster, "outage")
    env = {
        "KOBLIAT_DATABASE_URL": own_cluster.url("outage"),
        "KOBLIAT_API_KEYS": API_KEY,
        "KOBLIAT_WHATSAPP_APP_SECRET": WHATSAPP_SECRET,
    }
    with serving(tmp_path, env) as server:
        yield server


def webhook(n: int) -> tuple[bytes, dict[str, str]]:
    """A signed WhatsApp text webhook with message id wamid.outage-<n>."""
    item = wa.message_item("text", {"body": f"hello {n}"}, message_id=f"wamid.outage-{n}")
    body = wa.single(item)
    return body, {
        "Content-Type": "application/json",
        **signing.whatsapp_headers(body, WHATSAPP_SECRET),
    }


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, object]]:
    """One request on the kept-alive connection; the status, headers and JSON body."""
    conn.request(method, path, body=body or None, headers=headers or {})
    answer = conn.getresponse()
    content = answer.read()
    return (
        answer.status,
        {k.lower(): v for k, v in answer.getheaders()},
        json.loads(content or b"{}"),
    )


def test_an_outage_answers_503_on_a_kept_connection_and_nothing_acknowledged_is_lost(
    own_cluster: PostgresCluster, served: Served
) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    acknowledged: set[int] = set()
    status, _, _ = call(conn, "POST", "/webhooks/whatsapp", *webhook(0))
    assert status == 200
    acknowledged.add(0)
    assert call(conn, "GET", "/conversations", headers=auth)[0] == 200
    sock = conn.sock

    own_cluster.pause()
    refused = []
    for n in range(1, 11):
        status, headers, problem = call(conn, "POST", "/webhooks/whatsapp", *webhook(n))
        assert status == 503, problem
        assert problem["code"] == "database-unavailable" and int(headers["retry-after"]) > 0
        refused.append(n)
    rest = [
        ("GET", "/conversations", b""),
        ("POST", "/customers", b'{"external_type": "whatsapp", "external_id": "447700900555"}'),
    ]
    for method, path, body in rest:
        status, headers, problem = call(conn, method, path, body, auth)
        assert (status, problem["code"]) == (503, "database-unavailable")
        assert "retry-after" in headers
    status, headers, problem = call(conn, "GET", "/readyz")
    assert (status, problem["code"], headers["retry-after"]) == (503, "database-unavailable", "5")
    assert conn.sock is sock, "the keep-alive connection was dropped during the outage"

    own_cluster.resume()
    deadline = time.monotonic() + 60
    while refused and time.monotonic() < deadline:  # the provider retries what was refused
        status, _, _ = call(conn, "POST", "/webhooks/whatsapp", *webhook(refused[0]))
        if status == 200:
            acknowledged.add(refused.pop(0))
        else:
            assert status == 503
            time.sleep(0.2)
    assert not refused, "the service did not recover within 60 s of the database"
    assert conn.sock is sock
    conn.close()

    engine = create_engine(own_cluster.url("outage"))
    with engine.connect() as db:
        rows = db.execute(
            select(messages.c.external_message_id, func.count()).group_by(
                messages.c.external_message_id
            )
        ).all()
    engine.dispose()
    assert {key: count for key, count in rows} == {f"wamid.outage-{n}": 1 for n in acknowledged}

    log = served.log.read_text()
    assert "queued for retry" not in log  # nothing was queued: the database refused it all
    assert "Exception in ASGI application" not in log and "unhandled error" not in log
    assert 1 <= log.count("database unavailable; answering 503") <= 3, log
