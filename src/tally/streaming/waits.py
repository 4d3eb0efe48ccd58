"""Waiting for an event with a time limit, in a way a cancellation always ends."""

from __future__ import annotations

import asyncio


async def woken_within(event: asyncio.Event, seconds: float) -> bool:
    """True when `event` is set within `seconds`. Not `asyncio.wait_for`: on Python 3.11 it swallows a
    cancellation that arrives in the turn the event is set, so a stopped task could run on and whatever
    stops it wait for it forever."""
    try:
        async with asyncio.timeout(max(seconds, 0)):
            await event.wait()
        return True
    except TimeoutError:
        return False
