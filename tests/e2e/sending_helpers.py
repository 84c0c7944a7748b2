"""Helpers for the sending tests: an app whose sender talks to the fake providers, and
conversations opened by real inbound webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from fastapi.testclient import TestClient

from kobliat.api import create_app
from kobliat.channels.samples import telegram as tg_samples
from kobliat.channels.samples import twilio as tw_samples
from kobliat.channels.samples import whatsapp_messages as wa_samples
from kobliat.db.engine import Database
from tests.e2e.webhooks import AUTH, Webhooks, container_for, message_by_external_id
from tests.support.providers import FakeProviders

T = TypeVar("T")
PUBLIC_URL = "http://testserver"


def sending_settings(fake: FakeProviders, **overrides: Any) -> dict[str, Any]:
    """Settings overrides: every provider on the fake, quick polls and retries."""
    return {
        "relay_enabled": False,
        "public_url": PUBLIC_URL,
        "send_poll_seconds": 0.05,
        "send_retry_base_seconds": 0.05,
        "send_retry_max_seconds": 2.0,
        **fake.settings(),
        **overrides,
    }


@contextmanager
def sending_app(db: Database, fake: FakeProviders, **overrides: Any) -> Iterator[TestClient]:
    """The app with its lifespan (and so its sender) running, authenticated."""
    container = container_for(db, **sending_settings(fake, **overrides))
    with TestClient(create_app(container=container)) as client:
        client.headers.update(AUTH)
        yield client


def wait_for(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "outcome") -> T:
    """Poll `check` until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_whatsapp(
    client: TestClient, db: Database, *, n: int = 1, wa_id: str = wa_samples.WA_ID
) -> UUID:
    """A WhatsApp Cloud conversation opened by an inbound text (inside the 24-hour window)."""
    wamid = f"wamid.INBOUND{n}x{wa_id}"
    body = wa_samples.text(wa_id=wa_id, message_id=wamid, timestamp=int(time.time()) - 60)
    assert Webhooks(client).whatsapp(body).status_code == 200
    return UUID(str(message_by_external_id(db, wamid)["conversation_id"]))


def open_telegram(
    client: TestClient, db: Database, *, user_id: int = tg_samples.USER_ID, n: int = 1
) -> UUID:
    """A private Telegram conversation opened by an inbound text."""
    body = tg_samples.private_text(
        update_id=9000 + n, message_id=n, user_id=user_id, reply_to_message_id=None
    )
    assert Webhooks(client).telegram(body).status_code == 200
    return UUID(str(message_by_external_id(db, f"{user_id}:{n}")["conversation_id"]))


def open_twilio(
    client: TestClient, db: Database, *, sid: str = "SM5f2a9c0e7b3d4a1f8e6c2b9d0a7f3e11"
) -> UUID:
    """A WhatsApp-through-Twilio conversation opened by an inbound text."""
    body = tw_samples.encode(tw_samples.whatsapp_text(message_sid=sid))
    assert Webhooks(client).twilio(body).status_code == 200
    return UUID(str(message_by_external_id(db, sid)["conversation_id"]))


def message(client: TestClient, conversation_id: UUID, message_id: str) -> dict[str, Any]:
    """The message as GET /conversations/{id}/messages shows it."""
    page = client.get(f"/conversations/{conversation_id}/messages", params={"limit": 200}).json()
    found = [m for m in page["data"] if m["id"] == message_id]
    assert len(found) == 1
    return found[0]


def settled(
    client: TestClient, conversation_id: UUID, message_id: str, status: str
) -> dict[str, Any]:
    """Wait until the message has this status; return it."""
    return wait_for(
        lambda: (m := message(client, conversation_id, message_id))["status"] == status and m,
        what=f"message {message_id} to be {status}",
    )


def status_events(client: TestClient, message_id: str) -> list[dict[str, Any]]:
    """The `message.status.updated` events of a message, oldest first."""
    events = client.get("/events", params={"limit": 500}).json()["data"]
    return [
        e["data"]
        for e in events
        if e["type"] == "message.status.updated" and e["data"]["message_id"] == message_id
    ]
