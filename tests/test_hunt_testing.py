"""Bugs found hunting in ``durable.testing`` (API.md section 6) where it meets alarms and resets.

Every test runs on a :class:`durable.testing.MockClock` started at ``T0``; the workerd
measurements cited were made with miniflare 4 (compatibility date 2026-04-07).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import durable
from durable.testing import MockClock

T0 = 1_700_000_000
T0_MS = T0 * 1000

Seen = list[Any]


@pytest.mark.parametrize("start", [float("nan"), float("inf"), float("-inf")])
async def test_mock_clock_start_not_finite_is_a_value_error(start: float) -> None:
    """A float that is no time is a ValueError, as ``advance()`` raises for the same values (and
    Python for a right type with a wrong value); ``MockClock(nan)`` raised TypeError."""
    with pytest.raises(ValueError, match=f"finite number of seconds since the epoch, not {start!r}"):
        MockClock(start)
    with pytest.raises(ValueError, match=f"finite number of seconds, not {start!r}"):
        await MockClock(T0).advance(start)
    with pytest.raises(TypeError, match="not '1'"):
        MockClock("1")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [Fraction(1, 2), Decimal("0.5"), True, "1", None])
async def test_mock_clock_names_the_types_it_takes(value: Any) -> None:
    """A Fraction or a Decimal is a number, refused as "not a number of seconds": the messages
    name the types taken (int, float) now."""
    with pytest.raises(TypeError, match=rf"number of seconds \(an int or a float\), not {type(value).__name__}$"):
        await MockClock(T0).advance(value)
    if value is not None:
        with pytest.raises(TypeError, match=r"since the epoch \(an int or a float\) or None"):
            MockClock(value)


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
            assert seen == [(32_000, 0)]  # the attempt failed at the gate: it does not count

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


class Wakes(durable.DurableObject):
    """Its constructor raises while ``env.failing[0]`` is positive (counting down); its alarm records.

    ``throw_later()`` runs a ``block_concurrency_while()`` callback that raises once ``env.event`` is set."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        if env.failing[0] > 0:
            env.failing[0] -= 1
            env.seen.append(("constructor raised", ctx.now_ms() - T0_MS))
            raise ValueError("constructor")

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def throw_later(self) -> None:
        async def callback() -> None:
            await self.env.event.wait()
            raise ValueError("callback raised")

        await self.ctx.block_concurrency_while(callback)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.seen.append(("alarm", self.ctx.now_ms() - T0_MS, info.retry_count, info.is_retry))


class TestAnAttemptThatFailedBeforeItsHandlerStartedDoesNotCount:
    """workerd (miniflare 4, 2026-04-07) retries an alarm whose attempt failed before its handler
    ran (the constructor threw, or the object was reset while the alarm waited at the input gate)
    with the usual backoff, but without counting it: the handler then ran with retryCount 0.
    durable counted every failed attempt (retry_count 1, 2...), so such failures also used up the
    7 attempts and deleted the alarm."""

    async def test_constructor_failures(self) -> None:
        """workerd: constructor threw at 1.0 s and ~3.2 s; the handler ran at ~7.5 s, retryCount 0,
        isRetry false."""
        seen = await self.constructor_failures(2, 20)
        assert seen == [("constructor raised", 1000), ("constructor raised", 3000), ("alarm", 7000, 0, False)]

    async def test_constructor_failures_never_use_up_the_retries(self) -> None:
        """Beyond 7 attempts (where a counted failure gives up), the delay stops at 1024 s."""
        seen = await self.constructor_failures(12, 5000)
        times = [entry[1] for entry in seen]
        assert [b - a for a, b in itertools.pairwise(times)] == [
            2000 << n for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9)
        ]
        assert seen[-1] == ("alarm", times[-1], 0, False)

    @staticmethod
    async def constructor_failures(failures: int, seconds: float) -> Seen:
        """What ``Wakes`` saw: an alarm armed 1 s ahead, the instance evicted, its next
        ``failures`` constructions raising, the clock advanced ``seconds``."""
        clock = MockClock(T0)
        seen: Seen = []
        failing = [0]
        async with durable.Runtime(clock=clock, vars={"seen": seen, "failing": failing}) as rt:
            stub = rt.namespace(Wakes).get_by_name("a")
            await stub.arm(T0_MS + 1000)
            await durable.testing.evict(stub)
            failing[0] = failures
            await clock.advance(seconds)
        return seen

    async def test_a_reset_while_the_alarm_waits_at_the_gate(self) -> None:
        """workerd: an alarm due at 1 s waited behind a blockConcurrencyWhile() callback that threw
        at 3 s; it ran at ~5.4 s with retryCount 0."""
        clock = MockClock(T0)
        seen: Seen = []
        event = asyncio.Event()
        async with durable.Runtime(clock=clock, vars={"seen": seen, "failing": [0], "event": event}) as rt:
            ns = rt.namespace(Wakes)
            await ns.get_by_name("a").arm(T0_MS + 1000)
            call = asyncio.ensure_future(ns.get_by_name("a").throw_later())
            await asyncio.sleep(0)
            clock.call_at(T0 + 3, event.set)
            await clock.advance(10)
            with pytest.raises(ValueError, match="callback raised"):
                await call
            assert seen == [("alarm", 5000, 0, False)]


class Where(durable.DurableObject):
    """Its alarm records the thread it runs on."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def pending(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self) -> None:
        self.env.seen.append((self.ctx.id.name, threading.current_thread().name))


async def test_one_mock_clock_for_runtimes_on_two_running_loops_is_refused() -> None:
    """One ``MockClock`` shared by a runtime of the test's loop and a ``BlockingRuntime`` (its loop
    in a thread): ``advance()`` ran every timer on one loop, so one runtime's ``alarm()`` ran on the
    other's thread (at the same time as its own loop's calls on the object's database), silently.
    It raises now, naming the fix, and the timers stay pending."""
    clock = MockClock(T0)
    seen: Seen = []
    async with durable.Runtime(clock=clock, vars={"seen": seen}) as rt:
        with durable.BlockingRuntime(clock=clock, vars={"seen": seen}) as brt:
            brt.namespace(Where).get_by_name("blocking").arm(T0_MS + 2000)
            await rt.namespace(Where).get_by_name("async").arm(T0_MS + 1000)
            with pytest.raises(RuntimeError, match="two event loops running at once"):
                await clock.advance(3)
            assert seen == [("async", threading.current_thread().name)]  # at 1 s, on its own loop
            assert brt.namespace(Where).get_by_name("blocking").pending() == T0_MS + 2000  # still set
            seen.clear()
    # Each runtime with its own clock: each alarm runs on its own runtime's thread.
    async with durable.Runtime(clock=clock, vars={"seen": seen}) as rt:
        await rt.namespace(Where).get_by_name("async").arm(clock.time_ms() + 1000)
        await clock.advance(1)
    other = MockClock(T0)
    with durable.BlockingRuntime(clock=other, vars={"seen": seen}) as brt:
        brt.namespace(Where).get_by_name("blocking").arm(T0_MS + 1000)
        brt.run(other.advance, 1)
    assert seen == [("async", threading.current_thread().name), ("blocking", "durable-runtime")]


class Stores(durable.DurableObject):
    async def put(self, key: str, value: int) -> None:
        await self.ctx.storage.put(key, value)

    async def items(self) -> dict[str, Any]:
        return await self.ctx.storage.list()


@pytest.mark.parametrize(
    ("exc", "shown"),
    [(ValueError, "ValueError"), (ValueError("disk gone"), "ValueError: disk gone"), (None, "OSError: [Errno 5]")],
)
async def test_fail_next_commit_message_names_an_exception_without_a_message(exc: Any, shown: str) -> None:
    """An injected exception without a message gave "...commit failed: ValueError: " (a dangling
    colon); the reset error names it alone now. Nothing of the failed commit survives."""
    async with durable.Runtime() as rt:
        ns = rt.namespace(Stores)
        await ns.get_by_name("a").put("kept", 1)
        durable.testing.fail_next_commit(ns.get_by_name("a"), exc)
        with pytest.raises(durable.ObjectResetError) as caught:
            await ns.get_by_name("a").put("lost", 2)
        assert str(caught.value).startswith(f"Durable Object reset because its storage commit failed: {shown}")
        assert not str(caught.value).endswith(": ")
        assert await ns.get_by_name("a").items() == {"kept": 1}
