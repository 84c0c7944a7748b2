"""`KOBLIAT_LOG_FORMAT=json`: one JSON object per line from kobliat, uvicorn and Alembic alike,
each HTTP request's lines carrying its request id (a real `kobliat serve`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.serve import serving


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
    env = {
        "KOBLIAT_LOG_FORMAT": "json",
        "KOBLIAT_API_KEYS": "kbl_test-key-for-logs",
        "KOBLIAT_DATABASE_URL": f"sqlite:///{tmp_path / 'kobliat.db'}",
    }
    with serving(tmp_path, env) as served:
        headers = {"Authorization": "Bearer kbl_test-key-for-logs", "X-Request-ID": "req-42"}
        answer = httpx.get(f"{served.base}/conversations", headers=headers, timeout=10)
        generated = httpx.get(f"{served.base}/healthz", timeout=10)
    log = served.log
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
