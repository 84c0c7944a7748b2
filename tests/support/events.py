"""Test helpers for event delivery: a container tuned for quick retries, a burst of state
changes, reading the NATS stream, and order checks."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from typing import Any
from uuid import uuid4

import nats
import nats.errors
import nats.js.errors

from kobliat import bootstrap
from kobliat.bootstrap import Container
from kobliat.customers import service as customers
from kobliat.db.engine import Database
from kobliat.messages import service as messages
from kobliat.settings import Settings
from tests.builders import a_conversation, a_customer, events_of


def a_container(db_url: str, **overrides: Any) -> Container:
    """A container on a migrated database, with quick polls and retries for tests."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "relay_poll_seconds": 0.05,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.2,
        "webhook_timeout_seconds": 2.0,
        "nats_retry_max_seconds": 0.5,
        "nats_publish_timeout_seconds": 1.0,
        "api_keys": "test-key",
        "subscriptions_allow_private": True,  # the test subscribers listen on 127.0.0.1
    }
    values.update(overrides)
    return bootstrap.build(Settings(**values), run_migrations=False)


def burst(db: Database, *, changes: int = 1000, conversations: int = 20, threads: int = 8) -> None:
    """`changes` committed state changes, from concurrent writers, spread over a few
    conversations (messages) and their customers (profile updates)."""
    people = [a_customer(db) for _ in range(conversations * 2)]
    chats = [
        a_conversation(db, channel="api", participants=[people[2 * i].id, people[2 * i + 1].id])
        for i in range(conversations)
    ]
    jobs = list(range(changes - len(people) - len(chats)))
    lock = threading.Lock()

    def change(n: int) -> None:
        if n % 10 == 0:
            who = people[n % len(people)].id
            db.run(lambda uow: customers.update_profile(uow, who, name=f"name {n}"))
            return
        chat = chats[n % len(chats)].id
        db.run(lambda uow: messages.send_outbound(uow, chat, content_type="text", body=f"m{n}"))

    def worker() -> None:
        while True:
            with lock:
                if not jobs:
                    return
                n = jobs.pop()
            change(n)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def expected_events(db: Database) -> dict[str, dict[str, Any]]:
    """Every event in the outbox by id."""
    return {e["id"]: e for e in events_of(db)}


def assert_in_aggregate_order(envelopes: Iterable[dict[str, Any]]) -> None:
    """Each aggregate's events arrive with increasing sequence numbers (repeats of an event
    already seen, which at-least-once allows, are ignored)."""
    seen: set[str] = set()
    last: dict[str, int] = {}
    for envelope in envelopes:
        if envelope["id"] in seen:
            continue
        seen.add(envelope["id"])
        subject, sequence = envelope["subject"], envelope["sequence"]
        assert sequence > last.get(subject, 0), (
            f"aggregate {subject}: sequence {sequence} arrived after {last[subject]}"
        )
        last[subject] = sequence


def read_stream(url: str, *, subject: str = "kobliat.>") -> list[dict[str, Any]]:
    """Everything in the JetStream stream, in stream order, read by a durable pull consumer;
    each item has the subject, the Nats-Msg-Id header and the CloudEvent."""
    return asyncio.run(_read_stream(url, subject))


async def _read_stream(url: str, subject: str) -> list[dict[str, Any]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        try:
            sub = await js.pull_subscribe(subject, durable=f"reader{uuid4().hex[:8]}")
        except nats.js.errors.NotFoundError:
            return []  # the relay has not created the stream yet
        found: list[dict[str, Any]] = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except TimeoutError:  # nats-py raises asyncio.TimeoutError too
                return found
            for msg in batch:
                found.append(
                    {
                        "subject": msg.subject,
                        "msg_id": (msg.headers or {}).get("Nats-Msg-Id"),
                        "traceparent": (msg.headers or {}).get("traceparent"),
                        "event": json.loads(msg.data),
                    }
                )
                await msg.ack()
    finally:
        await nc.close()


def stream_count(url: str, stream: str = "KOBLIAT") -> int:
    """Messages stored in the stream (0 when it does not exist yet)."""

    async def count() -> int:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(stream)
            return int(info.state.messages)
        except Exception:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())
