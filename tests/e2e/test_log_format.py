"""`KOBLIAT_LOG_FORMAT=json`: one JSON object per line from kobliat, uvicorn and Alembic alike,
each HTTP request's lines carrying its request id (a real `kobliat serve`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_simulate import wait_until_up
from tests.support.postgres import free_port

KOBLIAT = Path(sys.executable).parent / "kobliat"


def _json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def test_json_logs_from_every_source_with_request_ids(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}
    env.update(
        KOBLIAT_LOG_FORMAT="json",
        KOBLIAT_RELAY_ENABLED="false",
        KOBLIAT_API_KEYS="kbl_test-key-for-logs",
        KOBLIAT_DATABASE_URL=f"sqlite:///{tmp_path / 'kobliat.db'}",
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen(
            [str(KOBLIAT), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, serve)
        headers = {"Authorization": "Bearer kbl_test-key-for-logs", "X-Request-ID": "req-42"}
        answer = httpx.get(f"{base}/conversations", headers=headers, timeout=10)
        generated = httpx.get(f"{base}/healthz", timeout=10)
    finally:
        serve.terminate()
        serve.wait(timeout=20)
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "req-42"
    assert len(generated.headers["x-request-id"]) == 32
    lines = _json_lines(log.read_text())
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    events = [str(line["event"]) for line in lines]
    assert any("Running upgrade" in e for e in events), events  # alembic
    assert any("Application startup complete" in e for e in events), events  # uvicorn
    [access] = [line for line in lines if str(line["event"]).startswith("GET /conversations")]
    assert access["request_id"] == "req-42"
    text_lines = [
        line for line in log.read_text().splitlines() if line.strip() and not line.startswith("{")
    ]
    # What is not JSON is the command's own console output, never a log line.
    assert not any("INFO" in line or "[info" in line for line in text_lines), text_lines
