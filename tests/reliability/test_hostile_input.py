"""Malformed and oversized input on every endpoint (bad JSON, wrong types, deep nesting,
oversized and chunked bodies, bad or missing signatures and keys, huge headers, garbage query
parameters): each answered 4xx, nothing stored, and the server keeps serving. A signed,
well-formed delivery whose every item is refused may instead be answered 2xx `failed`: the
provider must not retry it, and only the raw delivery is kept (in the inbox, for an operator)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from kobliat.db import tables
from kobliat.db.engine import Database
from tests.reliability.checks import figures
from tests.reliability.hostile import Attempt, rest_attempts, webhook_attempts
from tests.support.load import generic_hook, signed_headers
from tests.support.processes import kobliat_env, running, serve_process

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]
COUNTED = ("customers", "conversations", "messages", "outbox", "inbox", "sinks", "api_keys")
REFUSED = "failed"  # the receipt of a delivery kept, but none of its items applied


@pytest.mark.timeout(300)
def test_hostile_input_on_every_endpoint_is_4xx_and_stores_nothing(
    pg_url: str, workdir: Path, rng: random.Random
) -> None:
    serve = serve_process(kobliat_env(pg_url, relay_enabled=False), workdir)
    with running(serve), httpx.Client(base_url=serve.base_url, timeout=60) as http:
        openapi = http.get("/openapi.json").json()
        attempts = [*rest_attempts(openapi), *webhook_attempts(serve.base_url)]
        rng.shuffle(attempts)
        before = _counts(pg_url)
        answers = {a.label: _send(http, a) for a in attempts}
        after = _counts(pg_url)
        health = http.get("/healthz").status_code
        valid = generic_hook(f"after{rng.randrange(10**6)}", 0, senders=1)
        still = http.post("/webhooks/generic", content=valid.body, headers=signed_headers(valid))
        log = serve.log_text()
    wrong = {label: a for label, a in answers.items() if not _refused(a)}
    kept_failed = sum(1 for a in answers.values() if a == f"200 {REFUSED}")
    figures(
        "hostile-input",
        requests=len(attempts),
        answers=dict(sorted(Counter(answers.values()).items())),
        not_4xx=wrong,
        rows_before=before,
        rows_after=after,
        healthz_after=health,
        valid_webhook_after=still.status_code,
    )
    assert not wrong, json.dumps(wrong, indent=1)
    assert after == {**before, "inbox": before["inbox"] + kept_failed}, "nothing stored"
    assert health == 200 and still.status_code == 200, "the server keeps serving"
    assert "Traceback" not in log


def _refused(answer: str) -> bool:
    status = int(answer.split()[0])
    return 400 <= status < 500 or answer == f"200 {REFUSED}"


def _send(http: httpx.Client, attempt: Attempt) -> str:
    """The status of one hostile request (599 when the server gave no answer), with the
    receipt's `status` when it was a 2xx webhook answer."""
    content: bytes | Iterator[bytes] | None = attempt.body
    if attempt.chunked and attempt.body is not None:
        content = _chunks(attempt.body)
    try:
        with http.stream(
            attempt.method,
            attempt.path,
            headers=attempt.headers,
            params=attempt.params,
            content=content,
        ) as answer:
            if not (200 <= answer.status_code < 300 and attempt.path.startswith("/webhooks/")):
                return str(answer.status_code)  # never read a stream's body: it may not end
            answer.read()
            return f"{answer.status_code} {answer.json().get('status')}"
    except httpx.TransportError:
        return "599"


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _counts(url: str) -> dict[str, int]:
    db = Database(url, pool_size=1)
    try:
        with db.reading() as conn:
            return {
                name: int(
                    conn.execute(
                        select(func.count()).select_from(getattr(tables, name))
                    ).scalar_one()
                )
                for name in COUNTED
            }
    finally:
        db.dispose()
