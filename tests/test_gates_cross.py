"""Interactions between the input gate and the context that timers and tasks inherit.

A timer's callback runs in a copy of the context that set it; a task copies its creator's. The
gate lets in the code that carries its lock (``held_locks``), so what the runtime starts on its own
(an alarm's delivery) must not inherit the lock of whatever code happened to arm its timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

import durable

LOG: list[str] = []
ALARM_RAN: list[asyncio.Event] = []  # the running test's (an Event belongs to one loop)


class Locker(durable.DurableObject):
    async def lock_and_set_alarm(self, how: str) -> None:
        async def hold(storage: Any) -> None:
            await storage.set_alarm(time.time() * 1000 - 1)  # due at once: its timer fires next turn
            with contextlib.suppress(TimeoutError):  # the alarm must wait for this lock to end
                await asyncio.wait_for(ALARM_RAN[0].wait(), 0.1)
            LOG.append("lock end")

        if how == "bcw":
            await self.ctx.block_concurrency_while(lambda: hold(self.ctx.storage))
        else:
            await self.ctx.storage.transaction(hold)

    async def alarm(self, info: Any = None) -> None:
        LOG.append("alarm")
        ALARM_RAN[0].set()


@pytest.mark.parametrize("how", ["bcw", "transaction"])
async def test_an_alarm_set_under_a_lock_waits_for_it(how: str) -> None:
    """An alarm set inside ``block_concurrency_while`` or ``transaction()`` and due while it still
    runs waits for it to end (workerd, miniflare 4, 2026-04-07: ``setAlarm(Date.now() + 30)`` then
    ``scheduler.wait(400)`` in either logs "end" before "alarm"). Before, the alarm's timer was
    armed by the commit of that write, in the lock holder's context, and its delivery inherited
    the gate lock: ``alarm()`` ran inside the callback (with the real clock)."""
    LOG.clear()
    ALARM_RAN[:] = [asyncio.Event()]
    async with durable.Runtime() as rt:
        await rt.namespace(Locker).get_by_name(how).lock_and_set_alarm(how)
        await asyncio.wait_for(ALARM_RAN[0].wait(), 5)
    assert LOG == ["lock end", "alarm"]
