"""The event wait the long-running loops use must never swallow a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from kobliat.aio import wait_event


def test_a_cancellation_that_arrives_as_the_event_is_set_still_cancels() -> None:
    # asyncio.wait_for on Python 3.11 returns normally here, and a loop around it never stops.
    async def scenario() -> None:
        event = asyncio.Event()
        waiting = asyncio.create_task(wait_event(event, 10))
        await asyncio.sleep(0)
        event.set()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())


def test_it_says_whether_the_event_was_set() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        event = asyncio.Event()
        timed_out = await wait_event(event, 0.01)
        event.set()
        return timed_out, await wait_event(event, 0.01), await wait_event(event, None)

    assert asyncio.run(scenario()) == (False, True, True)
