"""`kobliat keys create|list|revoke`, run as an operator runs them, and what the API makes of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.auth import KeyChecker, list_keys
from kobliat.db.engine import Database

KOBLIAT = Path(sys.executable).parent / "kobliat"


def kobliat(db: Database, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `kobliat keys ...` against the test database, in a directory without a .env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}
    env.update(KOBLIAT_DATABASE_URL=db.url, COLUMNS="300", NO_COLOR="1")
    return subprocess.run(
        [str(KOBLIAT), "keys", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _status(container: Any, key: str) -> int:
    with TestClient(create_app(container=container)) as http:
        return http.get("/conversations", headers={"Authorization": f"Bearer {key}"}).status_code


def test_keys_are_named_listed_without_the_secret_and_revoked(
    db: Database, tmp_path: Path, container: Any
) -> None:
    created = kobliat(db, tmp_path, "create", "--name", "support-desk")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("kbl_")

    listed = kobliat(db, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "support-desk" in listed.stdout and key[:8] in listed.stdout
    assert key not in listed.stdout and key[8:] not in listed.stdout
    [stored] = list_keys(db)
    assert stored.last_used_at is None and stored.revoked_at is None

    container.keys = KeyChecker(db, [], ttl=0)  # no cache: a revocation is seen at once
    assert _status(container, key) == 200
    [stored] = list_keys(db)
    assert stored.last_used_at is not None

    revoked = kobliat(db, tmp_path, "revoke", str(stored.id)[:8])
    assert revoked.returncode == 0, revoked.stderr
    assert str(stored.id) in revoked.stderr
    assert _status(container, key) == 401
    [stored] = list_keys(db)
    assert stored.revoked_at is not None
    lines = kobliat(db, tmp_path, "list").stdout.splitlines()
    row = next(line for line in lines if key[:8] in line)
    assert row.count("UTC") == 3  # created, last used, revoked


def test_revoking_an_unknown_key_says_so(db: Database, tmp_path: Path) -> None:
    result = kobliat(db, tmp_path, "revoke", "0000")
    assert result.returncode == 2
    assert "no key match" in result.stderr
