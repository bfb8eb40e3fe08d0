"""Bugs found hunting in ``durable.testing`` (API.md section 6) where it meets alarms and resets.

Every test runs on a :class:`durable.testing.MockClock` started at ``T0``; the workerd
measurements cited were made with miniflare 4 (compatibility date 2026-04-07).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable.testing import MockClock

T0 = 1_700_000_000
T0_MS = T0 * 1000

Seen = list[Any]


class Blocks(durable.DurableObject):
    """An object whose ``block_concurrency_while()`` callback never ends (from a call or its alarm)."""

    async def arm(self, when: int, mode: str = "plain") -> None:
        await self.ctx.storage.put("mode", mode)
        await self.ctx.storage.set_alarm(when)

    async def pending(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def block(self) -> None:
        await self.ctx.block_concurrency_while(asyncio.Event().wait)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.seen.append((self.ctx.now_ms() - T0_MS, info.retry_count))
        if await self.ctx.storage.get("mode") == "blocks" and info.retry_count == 0:
            await self.ctx.block_concurrency_while(asyncio.Event().wait)


class TestAdvanceReachesTheBlockConcurrencyWhileLimit:
    """``advance()`` waits for the alarm handlers it starts; one waiting for a
    ``block_concurrency_while()`` callback that never ends is freed only by the 30 s limit, which
    only moving time reaches. durable waited for the handler before moving time: ``advance()``
    never returned."""

    async def test_an_alarm_queued_behind_a_blocked_call(self) -> None:
        """workerd: the callback times out at 30 s ("waited for too long"), the object is reset, and
        the alarm that waited behind it is retried 2 s later (measured: its handler ran at ~32.7 s)."""
        clock = MockClock(T0)
        seen: Seen = []
        async with durable.Runtime(clock=clock, vars={"seen": seen}) as rt:
            ns = rt.namespace(Blocks)
            await ns.get_by_name("a").arm(T0_MS + 1000)
            call = asyncio.ensure_future(ns.get_by_name("a").block())
            await asyncio.sleep(0)
            await asyncio.wait_for(clock.advance(40), 60)  # (a bound, not a time asserted: it hung)
            with pytest.raises(durable.ObjectResetError, match="waited for too long"):
                await call
            assert [at for at, _ in seen] == [32_000]

    async def test_an_alarm_whose_own_callback_never_ends(self) -> None:
        """workerd: attempt 0 at 1 s blocks; the limit resets the object at 31 s; the retry ran at
        ~33.4 s with retryCount 1 (measured)."""
        clock = MockClock(T0)
        seen: Seen = []
        async with durable.Runtime(clock=clock, vars={"seen": seen}) as rt:
            await rt.namespace(Blocks).get_by_name("a").arm(T0_MS + 1000, "blocks")
            await asyncio.wait_for(clock.advance(60), 60)
            assert seen == [(1000, 0), (33_000, 1)]
            assert await rt.namespace(Blocks).get_by_name("a").pending() is None  # the retry succeeded

    async def test_advance_returns_while_the_handler_still_blocks(self) -> None:
        """At 20 s the handler is still blocked (the limit is at 31 s): ``advance(20)`` returns, the
        next ``advance()`` reaches the limit and the retry."""
        clock = MockClock(T0)
        seen: Seen = []
        async with durable.Runtime(clock=clock, vars={"seen": seen}) as rt:
            await rt.namespace(Blocks).get_by_name("a").arm(T0_MS + 1000, "blocks")
            await asyncio.wait_for(clock.advance(20), 60)
            assert seen == [(1000, 0)]
            await asyncio.wait_for(clock.advance(20), 60)
            assert seen == [(1000, 0), (33_000, 1)]
