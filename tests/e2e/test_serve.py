"""`kobliat serve` as a real process, driven over real HTTP as the README shows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serve import serving


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A `kobliat serve` process (as many workers as it chooses) on a fresh database, with no
    key configured; yields (base URL, the key it printed, its log)."""
    with serving(tmp_path, {"KOBLIAT_DATABASE_URL": db_url}, workers=None) as server:
        keys = [line for line in server.log.read_text().splitlines() if line.startswith("kbl_")]
        assert len(keys) == 1, server.log.read_text()
        yield server.base, keys[0], server.log


def test_serve_prints_a_key_that_works_and_the_readme_flow_runs(
    served: tuple[str, str, Path],
) -> None:
    base, key, log = served
    assert key.startswith("kbl_")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        assert (
            http.get("/conversations", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        ids = [
            http.post(
                "/customers",
                json={"external_type": "whatsapp", "external_id": f"4477009001{n:02d}"},
            ).json()["id"]
            for n in range(3)
        ]
        group = http.post(
            "/conversations",
            json={
                "type": "group",
                "channel": "whatsapp",
                "group_name": "Clinic B",
                "participants": [{"customer_id": ids[0], "role": "owner"}, {"customer_id": ids[1]}],
            },
        )
        assert group.status_code == 201
        added = http.post(
            f"/conversations/{group.json()['id']}/participants", json={"customer_id": ids[2]}
        )
        assert added.status_code == 201
        for n in range(2):
            http.post(
                "/conversations",
                json={
                    "type": "direct",
                    "channel": "whatsapp",
                    "participants": [{"customer_id": ids[n]}, {"customer_id": ids[n + 1]}],
                },
            )
        seen, cursor = [], None
        while True:
            page = http.get(
                "/conversations", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
            ).json()
            seen += [c["id"] for c in page["data"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 3 == len(set(seen))
        types = [e["type"] for e in http.get("/events", params={"limit": 100}).json()["data"]]
        assert types.count("customer.created") == 3 and types.count("conversation.opened") == 3
        assert "conversation.participant.added" in types
        assert http.get("/docs").status_code == 200
        lookup = http.get(
            "/customers", params={"external_type": "whatsapp", "external_id": "447700900100"}
        )
        assert lookup.json()["data"][0]["id"] == ids[0]
    # The access log line is written just after the answer is sent: wait for it.
    deadline = time.monotonic() + 30
    while "GET /customers?" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = log.read_text()
    assert "GET /customers?" in logged  # the access log is on...
    assert "447700900100" not in logged  # ...and the phone number in it is masked
    assert logged.count(key) == 1  # printed once at start, never logged
