"""The dispatcher's waits end when cancelled, even when what they wait for happens in the same turn: with
`asyncio.wait_for` on Python 3.11 such a cancellation was swallowed, the deliverer or the lease loop ran
on, and `WebhookDispatcher.stop` waited for it forever."""

from __future__ import annotations

import asyncio

import pytest

from tally.streaming.waits import woken_within
from tally.streaming.webhooks.dispatcher import _Worker


async def _cancelled_as_woken(wait, event: asyncio.Event) -> None:
    task = asyncio.ensure_future(wait)
    await asyncio.sleep(0)  # the task now waits on the event
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_wait_cancelled_in_the_turn_its_event_is_set_is_cancelled() -> None:
    event = asyncio.Event()
    await _cancelled_as_woken(woken_within(event, 10), event)


@pytest.mark.parametrize("changes_only", [False, True])
async def test_a_deliverers_nap_cancelled_as_it_is_woken_is_cancelled(changes_only: bool) -> None:
    worker = _Worker(hook=None)
    await _cancelled_as_woken(worker.nap(10, changes_only=changes_only),
                              worker.changed if changes_only else worker.woken)
    assert not worker.woken.is_set() and not worker.changed.is_set()


async def test_woken_within_says_whether_the_event_came_in_time() -> None:
    event = asyncio.Event()
    assert await woken_within(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await woken_within(event, 10) is True
    assert await woken_within(event, 0) is True  # already set: no wait at all
