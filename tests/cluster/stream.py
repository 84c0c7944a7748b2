"""Reading the kobliat stream from a NATS cluster: its leader, and every message with the time
the stream stored it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from uuid import uuid4

import nats
import nats.errors


def stream_leader(url: str, stream: str = "KOBLIAT") -> str | None:
    """The server name of the stream's current leader (None while there is none)."""

    async def leader() -> str | None:
        nc = await nats.connect(servers=url.split(","))
        try:
            info = await nc.jetstream().stream_info(stream)
            return info.cluster.leader if info.cluster else None
        except (nats.errors.Error, TimeoutError):
            return None
        finally:
            await nc.close()

    return asyncio.run(leader())


def stored(url: str, subject: str = "kobliat.>") -> list[dict[str, Any]]:
    """Every message by a new durable pull consumer, in stream order: msg_id, event, and
    `at`, the time the stream stored it."""
    return asyncio.run(_stored(url, subject))


async def _stored(url: str, subject: str) -> list[dict[str, Any]]:
    nc = await nats.connect(servers=url.split(","))
    try:
        sub = await nc.jetstream().pull_subscribe(subject, durable=f"check{uuid4().hex[:8]}")
        found: list[dict[str, Any]] = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=2)
            except TimeoutError:
                return found
            for msg in batch:
                at: datetime = msg.metadata.timestamp
                found.append(
                    {
                        "msg_id": (msg.headers or {}).get("Nats-Msg-Id"),
                        "event": json.loads(msg.data),
                        "at": at.timestamp(),
                    }
                )
                await msg.ack()
    finally:
        await nc.close()


def message_count(url: str, stream: str = "KOBLIAT") -> int:
    """Messages in the stream, as the cluster reports them (0 when it cannot say)."""

    async def count() -> int:
        nc = await nats.connect(servers=url.split(","))
        try:
            return int((await nc.jetstream().stream_info(stream)).state.messages)
        except (nats.errors.Error, TimeoutError):
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())
