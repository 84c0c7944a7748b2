"""Small asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until `event` is set or `seconds` pass (None: no limit); True when it was set.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives just as the
    event is set, and a loop that waits on it can then never be stopped.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
