"""Sending under concurrency: per-conversation order, a status that beats the send's answer,
two `kobliat serve` processes on one database, and a sender killed mid-burst."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kobliat.channels.samples import whatsapp as wa_samples
from kobliat.db.engine import Database
from kobliat.db.tables import messages as messages_t
from kobliat.db.tables import send_queue
from tests.e2e.sending_helpers import (
    open_whatsapp,
    sending_app,
    sending_settings,
    settled,
    status_events,
    wait_for,
)
from tests.e2e.webhooks import API_KEY, GENERIC_SECRET, TWILIO_TOKEN, Webhooks
from tests.support.processes import running, serve_process
from tests.support.providers import (
    TG_TOKEN,
    WA_TOKEN,
    Answer,
    FakeProviders,
    running_providers,
)
from tests.support.serve import clean_environment

NUMBER_ID = "109876543210987"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    """The fake providers, on a free local port."""
    with running_providers(twilio_token=TWILIO_TOKEN, generic_secret=GENERIC_SECRET) as state:
        yield state
    assert state.malformed == []


def test_concurrent_posts_to_one_conversation_go_out_in_creation_order(
    db: Database, fake: FakeProviders
) -> None:
    fake.delay = 0.01
    # The first two attempts fail: the conversation's head waits, and nothing overtakes it.
    fake.script("whatsapp", Answer(503), Answer(503))
    with sending_app(db, fake) as client:
        chat = open_whatsapp(client, db)
        bodies = [f"part {n}" for n in range(24)]

        def post(text: str) -> None:
            answer = client.post(f"/conversations/{chat}/messages", json={"body": text})
            assert answer.status_code == 201, answer.text

        threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = client.get(
            f"/conversations/{chat}/messages", params={"order": "asc", "limit": 100}
        ).json()["data"]
        replies = [m for m in stored if m["direction"] == "outbound"]
        for reply in replies:
            settled(client, chat, reply["id"], "sent")
    assert sorted(m["body"] for m in replies) == sorted(bodies)
    assert [c.text() for c in fake.accepted("whatsapp")] == [m["body"] for m in replies]
    assert len(fake.calls) == len(bodies) + 2


def test_a_status_webhook_that_beats_the_send_answer_is_applied(
    db: Database, fake: FakeProviders
) -> None:
    fake.hold = threading.Event()
    with sending_app(db, fake) as client:
        chat = open_whatsapp(client, db)
        posted = client.post(f"/conversations/{chat}/messages", json={"body": "hold on"}).json()
        call = wait_for(lambda: fake.calls and fake.calls[0], what="the request")
        early = wa_samples.status(message_id=call.planned_id, timestamp=int(time.time()))
        assert Webhooks(client).whatsapp(early).status_code == 200
        fake.hold.set()
        shown = settled(client, chat, posted["id"], "delivered")
        assert shown["external_message_id"] == call.planned_id
        assert [e["status"] for e in status_events(client, posted["id"])] == ["sent", "delivered"]


# --- real processes ---------------------------------------------------------------------------
def _env(db_url: str, fake: FakeProviders, **extra: str) -> dict[str, str]:
    names = {
        "database_url": db_url,
        "api_keys": API_KEY,
        "whatsapp_phone_number_id": NUMBER_ID,
        "send_timeout_seconds": "2",
        "send_lease_seconds": "3",
        **{k: str(v) for k, v in sending_settings(fake).items()},
        **extra,
    }
    env = clean_environment()
    env.update({f"KOBLIAT_{k.upper()}": str(v) for k, v in names.items()})
    return env


def _conversations(http: httpx.Client, count: int) -> list[str]:
    """Direct WhatsApp conversations opened through the REST API (templates only)."""
    desk = http.post("/customers", json={"external_type": "email", "external_id": "desk@b.example"})
    chats = []
    for n in range(count):
        person = http.post(
            "/customers", json={"external_type": "whatsapp", "external_id": f"+4477009002{n:02d}"}
        ).json()["id"]
        chat = http.post(
            "/conversations",
            json={
                "channel": "whatsapp",
                "participants": [{"customer_id": person}, {"customer_id": desk.json()["id"]}],
            },
        )
        chats.append(chat.json()["id"])
    return chats


def _telegram_reply(http: httpx.Client) -> None:
    """A Telegram reply through the REST API (the bot is the business participant)."""
    ids = [
        http.post("/customers", json={"external_type": "telegram", "external_id": i}).json()["id"]
        for i in ("5001", TG_TOKEN.split(":")[0])
    ]
    chat = http.post(
        "/conversations",
        json={"channel": "telegram", "participants": [{"customer_id": i} for i in ids]},
    ).json()["id"]
    answer = http.post(f"/conversations/{chat}/messages", json={"body": "hello from the bot"})
    assert answer.status_code == 201, answer.text


def _template(name: str) -> dict[str, Any]:
    return {"content_type": "template", "metadata": {"name": name, "language": "en_US"}}


def _names(calls: list[Any]) -> list[str]:
    return [c.fields["template"]["name"] for c in calls]


def _unsettled(db: Database) -> int:
    with db.reading() as conn:
        rows = conn.execute(select(send_queue.c.id).where(send_queue.c.state != "failed"))
        return len(list(rows))


def test_two_serve_processes_never_send_one_message_twice(
    db: Database, db_url: str, fake: FakeProviders, tmp_path: Path
) -> None:
    fake.delay = 0.02
    env = _env(db_url, fake)
    servers = [serve_process(env, tmp_path, f"serve{n}") for n in range(2)]
    with running(*servers):
        clients = [
            httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
            for s in servers
        ]
        chats = _conversations(clients[0], 6)
        posted: dict[str, list[str]] = {c: [] for c in chats}
        for n in range(36):
            chat = chats[n % len(chats)]
            answer = clients[n % 2].post(f"/conversations/{chat}/messages", json=_template(f"t{n}"))
            assert answer.status_code == 201, answer.text
            posted[chat].append(f"t{n}")
        wait_for(lambda: len(fake.accepted()) >= 36 and _unsettled(db) == 0, what="every send")
        _telegram_reply(clients[1])
        wait_for(lambda: fake.accepted("telegram"), what="the telegram reply")
    logged = "".join(p.read_text() for p in tmp_path.glob("serve*.log"))
    assert "sender started" in logged
    assert WA_TOKEN not in logged and TG_TOKEN not in logged and "AAH-test" not in logged
    names = _names(fake.accepted("whatsapp"))
    assert sorted(names) == sorted(n for sent in posted.values() for n in sent)
    assert Counter(names).most_common(1)[0][1] == 1
    by_recipient: dict[str, list[str]] = {}
    for call in fake.accepted("whatsapp"):
        by_recipient.setdefault(call.fields["to"], []).append(call.fields["template"]["name"])
    assert sorted(by_recipient.values()) == sorted(posted.values())


def test_a_sender_killed_mid_burst_loses_nothing_and_sends_nothing_twice(
    db: Database, db_url: str, fake: FakeProviders, tmp_path: Path
) -> None:
    fake.delay = 0.3
    env = _env(db_url, fake)
    first = serve_process(env, tmp_path, "first")
    with running(first):
        auth = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=first.base_url, headers=auth) as http:
            chats = _conversations(http, 6)
            for n in range(30):
                chat = chats[n % 6]
                answer = http.post(f"/conversations/{chat}/messages", json=_template(f"k{n}"))
                assert answer.status_code == 201
        wait_for(lambda: len(fake.calls) >= 8, what="the burst to start")
        first.kill()  # SIGKILL to it and its workers: no clean-up
    fake.delay = 0.0
    with running(serve_process(env, tmp_path, "second")):
        wait_for(lambda: _unsettled(db) == 0, timeout=90, what="every send to settle")
    # A request the kill cut off between its headers and its body reaches the fake without the
    # body, as it would reach a provider: that is the kill, not a malformed request.
    fake.malformed[:] = [m for m in fake.malformed if not m.endswith(" b''")]
    names = _names(fake.calls)
    assert Counter(names).most_common(1)[0][1] == 1  # nothing sent twice
    with db.reading() as conn:
        rows = (
            conn.execute(select(messages_t).where(messages_t.c.direction == "outbound"))
            .mappings()
            .all()
        )
    assert len(rows) == 30  # nothing lost
    for row in rows:
        name = row["metadata"]["name"]
        if row["status"] == "sent":
            assert names.count(name) == 1
            [call] = [c for c in fake.calls if c.fields["template"]["name"] == name]
            assert row["external_message_id"] == call.planned_id
        else:
            # In flight when the process died: possibly delivered, so never resent.
            assert row["status"] == "failed"
            assert row["metadata"]["error"]["code"] == "send-outcome-unknown"
    assert sum(r["status"] == "sent" for r in rows) >= 30 - 6  # at most one per conversation
