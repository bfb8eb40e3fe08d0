"""When an alarm's event starts, against the code of the call that set it: orderings found by the
random alarm test (tests/differential/run_alarm.py), each measured in workerd (miniflare
4.20260426, compatibility date 2026-04-20) and fixed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable.testing import run_alarm

from helpers import wait_until

RUNS: list[tuple[int, int]] = []


class SetsAroundTransactions(durable.DurableObject):
    """``move()`` sets the alarm to a past time, runs a ``transaction()`` that sets it and rolls
    back, then one that sets it to now and commits; the first ``alarm()`` raises. Every run is
    recorded in ``RUNS``."""

    async def move(self) -> int | None:
        storage = self.ctx.storage
        await storage.set_alarm(self.ctx.now_ms() - 5000)

        async def rolled_back(txn: durable.Transaction) -> None:
            await txn.set_alarm(self.ctx.now_ms() + 70)
            txn.rollback()

        async def committed(txn: durable.Transaction) -> None:
            await txn.set_alarm(self.ctx.now_ms())

        await storage.transaction(rolled_back)
        await storage.transaction(committed)
        return await storage.get_alarm()

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        RUNS.append((info.retry_count, info.scheduled_time))
        if len(RUNS) == 1:
            raise RuntimeError("the first attempt fails")


async def sets_around_transactions() -> tuple[int | None, int | None, bool, int | None]:
    async with durable.Runtime() as rt:  # the real clock: a MockClock runs a due timer at once
        stub = rt.namespace(SetsAroundTransactions).get_by_name("a")
        moved = await stub.move()
        await wait_until(lambda: bool(RUNS), what="the first attempt")
        between = await stub.get()  # (once the failed attempt ended: calls wait for its gate)
        retried = await run_alarm(rt.namespace(SetsAroundTransactions).get_by_name("a"))
        return moved, between, retried, await stub.get()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_alarm_set_again_by_the_transactions_of_the_call_that_set_it(loop: str) -> None:
    """A call sets the alarm to a past time, then, in a second ``transaction()`` (after one that
    set it and rolled back), to now; the handler that runs throws. workerd (miniflare 4.20260426,
    every run) ran the alarm once for the second time (its scheduledTime), then its retry
    (retryCount 1, 2 s later); ``get_alarm()`` read that time after the call and between the
    attempts, none in the handler and after the retry: a due alarm's timer fires only once its
    loop has no other work, and a ``transaction()`` without I/O gives it none, so the alarm was
    moved before its event existed. durable started the event of the first set during the first
    ``transaction()`` (two loop turns each): it waited at the gate and ran, and the moved alarm
    then ran at once as a second first attempt. Found by ``run_alarm.py 99 --seed 9779 --resets``
    (sequence 98); a handler that aborts, or throws, differs alike. The retry is run here with
    ``run_alarm()``, not 2 s later."""
    factory: Any = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    RUNS.clear()
    with asyncio.Runner(loop_factory=factory) as runner:
        moved, between, retried, after = runner.run(sets_around_transactions())
    assert moved is not None
    assert (RUNS, between, retried, after) == ([(0, moved), (1, moved)], moved, True, None)
