"""`kobliat inbox list` and `kobliat inbox retry`, run as the operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kobliat.channels.samples import generic
from kobliat.channels.samples import whatsapp_messages as wa
from kobliat.db.engine import Database
from kobliat.db.tables import inbox
from kobliat.inbox import service
from tests.e2e.inbox_helpers import inbox_rows, rename_table
from tests.e2e.webhooks import message_by_external_id, webhooks_for

KOBLIAT = Path(sys.executable).parent / "kobliat"
NOT_A_PHONE = generic.party("phone", "call me maybe")


def kobliat(db: Database, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command against the test database, in a directory without a .env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBLIAT_")}
    env.update(KOBLIAT_DATABASE_URL=db.url, COLUMNS="300", NO_COLOR="1")
    return subprocess.run(
        [str(KOBLIAT), "inbox", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def a_failed_and_a_pending_delivery(db: Database) -> None:
    hooks = webhooks_for(db)
    hooks.generic(
        generic.message(message_id="msg-bad", sender=NOT_A_PHONE, body="my secret plans"),
        delivery_id="d-failed",
    )
    rename_table(db, "messages", "messages_away")
    hooks.whatsapp(wa.text(message_id="wamid.pending", body="see you at ten"))
    rename_table(db, "messages_away", "messages")


def test_list_shows_failed_and_pending_deliveries_without_payloads(
    db: Database, tmp_path: Path
) -> None:
    a_failed_and_a_pending_delivery(db)
    # An error quoting a phone number, as a database error quoting its parameters would.
    db.run(
        lambda uow: uow.connection.execute(
            inbox.update()
            .where(inbox.c.channel == "whatsapp")
            .values(last_error="OperationalError: wa_id +447700900123 locked")
        )
    )

    listed = kobliat(db, tmp_path, "list")
    only_failed = kobliat(db, tmp_path, "list", "--state", "failed")

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    failed = next(line for line in lines if "d-failed" in line)
    assert "failed" in failed and "generic" in failed and "invalid-phone-number" in failed
    pending = next(line for line in lines if "pending" in line and "whatsapp" in line)
    assert "+4477*****23" in pending
    assert "447700900123" not in listed.stdout
    assert "my secret plans" not in listed.stdout and "see you at ten" not in listed.stdout
    assert "d-failed" in only_failed.stdout and "whatsapp" not in only_failed.stdout


def test_retry_by_delivery_key_processes_it_now_and_names_unknown_keys(
    db: Database, tmp_path: Path
) -> None:
    a_failed_and_a_pending_delivery(db)
    key = next(row["delivery_key"] for row in inbox_rows(db) if row["channel"] == "whatsapp")

    retried = kobliat(db, tmp_path, "retry", key)
    unknown = kobliat(db, tmp_path, "retry", "no-such-delivery")
    bare = kobliat(db, tmp_path, "retry")

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "processed" in retried.stdout
    assert message_by_external_id(db, "wamid.pending")["body"] == "see you at ten"
    assert (unknown.returncode, "not found" in unknown.stdout) == (1, True)
    assert (bare.returncode, "--all-failed" in bare.stderr) == (2, True)


def test_retry_of_all_failed_exits_non_zero_when_one_fails_again(
    db: Database, tmp_path: Path
) -> None:
    a_failed_and_a_pending_delivery(db)

    retried = kobliat(db, tmp_path, "retry", "--all-failed")

    assert retried.returncode == 1
    line = next(line for line in retried.stdout.splitlines() if "d-failed" in line)
    assert "failed" in line and "invalid-phone-number" in line
    assert service.unprocessed(db, "pending", limit=10)  # the pending one was not touched
