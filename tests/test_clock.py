"""Clocks: the mock clock's timers and advance(), the real clock, and what the runtime times with them
(idle eviction and the 30 s limit of block_concurrency_while)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock

from helpers import settle

T0 = 1_700_000_000


class TestMockClock:
    def test_starts_where_told(self) -> None:
        """MockClock(start) reads `start` until it is advanced."""
        clock = MockClock(T0)
        assert clock.time() == T0
        assert clock.time_ms() == T0 * 1000

    def test_default_start_is_now(self) -> None:
        """Without `start`, the clock starts at the real time, to the millisecond."""
        before = time.time()
        clock = MockClock()
        assert int(before * 1000) <= clock.time_ms() <= time.time() * 1000
        assert clock.time() == clock.time_ms() / 1000

    async def test_default_start_has_no_microseconds(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A clock started at a real time 1.2 us below a millisecond ran an alarm set 5 s ahead on
        ``advance(4.999)``: float error (0.24 us per step at today's epoch) put ``time_ms()`` on the
        alarm's millisecond. The default start drops the microseconds, so times a test reaches by
        whole milliseconds are whole milliseconds (tests/test_examples_apps.py's job queue tests
        failed about once in 5000 runs)."""
        monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0029988)
        monkeypatch.setattr(time, "time_ns", lambda: 1_800_000_000_002_998_800)
        clock = MockClock()
        assert clock.time() == 1_800_000_000.002
        fired: list[int] = []
        due_ms = clock.time_ms() + 5_000
        clock.call_at(due_ms / 1000, lambda: fired.append(clock.time_ms()))
        await clock.advance(4.999)
        assert fired == []
        await clock.advance(0.001)
        assert fired == [due_ms]

    def test_time_ms_is_exact_for_fractional_times(self) -> None:
        """time_ms() is not thrown off by float error (1_700_000_000.123 s is ...123 ms)."""
        assert MockClock(1_700_000_000.123).time_ms() == 1_700_000_000_123

    def test_is_a_durable_clock(self) -> None:
        """MockClock is a durable.Clock and is exported from durable.testing."""
        assert isinstance(MockClock(T0), durable.Clock)

    async def test_advance_moves_time(self) -> None:
        """advance(s) adds s seconds."""
        clock = MockClock(T0)
        await clock.advance(1.5)
        await clock.advance(0)
        assert clock.time() == T0 + 1.5

    @pytest.mark.parametrize("seconds", [-1, -0.001])
    async def test_advance_refuses_to_go_back(self, seconds: float) -> None:
        """A negative advance is a ValueError."""
        clock = MockClock(T0)
        with pytest.raises(ValueError, match="cannot move time backwards"):
            await clock.advance(seconds)
        assert clock.time() == T0

    @pytest.mark.parametrize(
        ("seconds", "words"),
        [
            (float("nan"), "takes a finite number of seconds, not nan"),
            (float("inf"), "takes a finite number of seconds, not inf"),
            (1e300, "would move time past the year 9999"),
        ],
    )
    async def test_advance_refuses_what_time_cannot_reach(self, seconds: float, words: str) -> None:
        """An advance to infinity (which ran a periodic alarm forever, or left time_ms() raising
        OverflowError) or past the year 9999 is a ValueError that says so; time stays."""
        clock = MockClock(T0)
        with pytest.raises(ValueError, match=words):
            await clock.advance(seconds)
        assert clock.time() == T0 and clock.time_ms() == T0 * 1000

    @pytest.mark.parametrize("start", [1796509637.579999, 1_700_000_000.1234567, 1_700_000_000.0009996])
    async def test_alarm_at_time_ms_plus_a_period_fires_after_that_period(self, start: float) -> None:
        """An alarm at ``time_ms() + 60_000`` fires on ``advance(60)``, whatever microseconds the start has.

        time_ms() rounds a start like ...637.579999 up to ...637_580 ms (its 1 us tolerance), so the
        alarm's time is a hair after start + 60 s; the clock counts a timer within 1 us as due.
        """

        class Beat(durable.DurableObject):
            async def arm(self, at_ms: int) -> None:
                await self.ctx.storage.put("beats", 0)
                await self.ctx.storage.set_alarm(at_ms)

            async def beats(self) -> int:
                beats: int = await self.ctx.storage.get("beats")
                return beats

            async def alarm(self, info: durable.AlarmInfo) -> None:
                await self.ctx.storage.put("beats", await self.ctx.storage.get("beats") + 1)
                await self.ctx.storage.set_alarm(info.scheduled_time + 60_000)

        clock = MockClock(start)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Beat).get_by_name("b")
            await stub.arm(clock.time_ms() + 60_000)
            await clock.advance(59.9)
            assert await stub.beats() == 0
            await clock.advance(0.1)
            assert await stub.beats() == 1
            await clock.advance(60)
            assert await stub.beats() == 2

    @pytest.mark.parametrize("start", [1_800_000_000.0019985, 1_700_000_000.0009988, 1796509637.5799985])
    async def test_alarm_never_fires_before_time_ms_reads_it(self, start: float) -> None:
        """``advance(5.999)`` does not run an alarm set for ``time_ms() + 6_000``, whatever microseconds
        the start has: ``time_ms()`` still reads the millisecond before, so the alarm would run early.

        A start 1 to 2 us below a millisecond (the pytest plugin's clock starts at the real time, so
        about one test in a thousand) did that, when a timer within 2 us of the target counted as due:
        tests/test_examples_apps.py's alarm-retry tests failed once in a while.
        """
        clock = MockClock(start)
        fired: list[int] = []
        due_ms = clock.time_ms() + 6_000
        clock.call_at(due_ms / 1000, lambda: fired.append(clock.time_ms()))
        await clock.advance(5.999)
        assert clock.time_ms() == due_ms - 1
        assert fired == []
        await clock.advance(0.001)
        assert fired == [due_ms]

    async def test_timers_fire_in_order_at_their_time(self) -> None:
        """Timers fire in time order, and time() reads each timer's own time while it runs."""
        clock = MockClock(T0)
        seen: list[tuple[str, float]] = []
        for name, at in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
            clock.call_at(T0 + at, lambda name=name: seen.append((name, clock.time() - T0)))  # type: ignore[misc]
        await clock.advance(10)
        assert seen == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]
        assert clock.time() == T0 + 10

    async def test_timer_at_the_target_fires(self) -> None:
        """A timer exactly at the target time fires; one just after does not."""
        clock = MockClock(T0)
        seen: list[str] = []
        clock.call_at(T0 + 5, lambda: seen.append("at"))
        clock.call_at(T0 + 5.001, lambda: seen.append("after"))
        await clock.advance(5)
        assert seen == ["at"]

    async def test_cancelled_timer_does_not_fire(self) -> None:
        """cancel() on the returned handle stops the timer."""
        clock = MockClock(T0)
        seen: list[str] = []
        clock.call_at(T0 + 1, lambda: seen.append("x")).cancel()
        await clock.advance(5)
        assert seen == []

    async def test_timer_set_by_timer_fires_in_same_advance(self) -> None:
        """A timer set while advancing fires in the same advance() if it falls due."""
        clock = MockClock(T0)
        seen: list[float] = []

        def first() -> None:
            seen.append(clock.time() - T0)
            clock.call_at(clock.time() + 2, lambda: seen.append(clock.time() - T0))

        clock.call_at(T0 + 1, first)
        await clock.advance(3)
        assert seen == [1.0, 3.0]

    async def test_due_timer_fires_without_advance(self) -> None:
        """A timer set at or before the current time runs on the loop's next turn, as a real one would."""
        clock = MockClock(T0)
        fired = asyncio.Event()
        clock.call_at(T0 - 10, fired.set)
        await fired.wait()
        assert clock.time() == T0

    def test_due_timer_without_loop_waits_for_advance(self) -> None:
        """A due timer set outside any event loop fires on the next advance()."""
        clock = MockClock(T0)
        seen: list[str] = []
        clock.call_at(T0, lambda: seen.append("x"))
        assert seen == []
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(clock.advance(0))
        finally:
            loop.close()
        assert seen == ["x"]

    async def test_advance_waits_for_tracked_work(self) -> None:
        """advance() returns after the work its timers started, and the work that work started, is done."""
        clock = MockClock(T0)
        done: list[str] = []
        gate = asyncio.Event()

        async def inner() -> None:
            await gate.wait()
            done.append("inner")

        async def outer() -> None:
            clock.track(inner())
            await settle()
            gate.set()
            done.append("outer")

        clock.call_at(T0 + 1, lambda: clock.track(outer()))
        await clock.advance(1)
        assert sorted(done) == ["inner", "outer"]

    async def test_time_stays_at_timer_while_its_work_runs(self) -> None:
        """Work started by a timer sees the timer's time, even when the advance goes further."""
        clock = MockClock(T0)
        seen: list[float] = []

        async def work() -> None:
            await settle()
            seen.append(clock.time() - T0)

        clock.call_at(T0 + 1, lambda: clock.track(work()))
        await clock.advance(100)
        assert seen == [1.0]

    async def test_concurrent_advance_is_refused(self) -> None:
        """A second advance() while one is running raises RuntimeError."""
        clock = MockClock(T0)
        release = asyncio.Event()
        clock.call_at(T0 + 1, lambda: clock.track(release.wait()))
        first = asyncio.create_task(clock.advance(1))
        await settle(50)
        with pytest.raises(RuntimeError, match="already running"):
            await clock.advance(1)
        release.set()
        await first
        assert clock.time() == T0 + 1

    async def test_cancelling_advance_spares_the_work(self) -> None:
        """Cancelling an advance() does not cancel the object code it was waiting for."""
        clock = MockClock(T0)
        release = asyncio.Event()
        finished: list[str] = []

        async def work() -> None:
            await release.wait()
            finished.append("work")

        clock.call_at(T0 + 1, lambda: clock.track(work()))
        advancing = asyncio.create_task(clock.advance(1))
        await settle(50)
        advancing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await advancing
        release.set()
        await clock.advance(0)
        assert finished == ["work"]

    def test_repr(self) -> None:
        """The repr shows the time."""
        assert repr(MockClock(T0)) == f"MockClock(time={float(T0)!r})"


class TestRealClock:
    def test_reads_wall_clock(self) -> None:
        """RealClock().time() is time.time()."""
        before = time.time()
        now = durable._clock.RealClock().time()
        assert before <= now <= time.time()

    async def test_due_timer_fires(self) -> None:
        """A timer set for now fires on the running loop."""
        clock = durable._clock.RealClock()
        fired = asyncio.Event()
        clock.call_at(clock.time(), fired.set)
        await fired.wait()

    async def test_cancelled_timer_does_not_fire(self) -> None:
        """A cancelled timer does not fire."""
        clock = durable._clock.RealClock()
        seen: list[str] = []
        clock.call_at(clock.time(), lambda: seen.append("x")).cancel()
        fired = asyncio.Event()
        clock.call_at(clock.time(), fired.set)
        await fired.wait()
        await settle(50)
        assert seen == []

    def test_needs_a_running_loop(self) -> None:
        """call_at() outside an event loop raises RuntimeError, as loop.call_later would."""
        with pytest.raises(RuntimeError):
            durable._clock.RealClock().call_at(time.time(), lambda: None)

    def test_runtime_defaults_to_real_clock(self) -> None:
        """A Runtime without clock= uses the real clock."""
        assert isinstance(durable.Runtime().clock, durable._clock.RealClock)


class Counter(durable.DurableObject):
    """Counts its constructions (in env.built) and keeps a count in memory and in storage."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(ctx.id.name)
        self.in_memory = 0

    async def bump(self) -> tuple[int, int]:
        self.in_memory += 1
        stored = (await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", stored)
        return self.in_memory, stored

    async def wait_for(self, name: str) -> None:
        await self.env.events[name].wait()

    async def hold(self) -> None:
        async def forever() -> None:
            self.env.events["started"].set()
            await self.env.events["never"].wait()

        await self.ctx.block_concurrency_while(forever)


@pytest.fixture
def clock() -> MockClock:
    return MockClock(T0)


@pytest.fixture
def built() -> list[Any]:
    return []


@pytest.fixture
def events() -> dict[str, asyncio.Event]:
    return {"started": asyncio.Event(), "never": asyncio.Event(), "release": asyncio.Event()}


@pytest.fixture
async def rt(clock: MockClock, built: list[Any], events: dict[str, asyncio.Event]) -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime(clock=clock, idle_timeout=10, vars={"built": built, "events": events}) as runtime:
        yield runtime


class TestIdleEviction:
    async def test_idle_object_is_evicted(self, rt: durable.Runtime, clock: MockClock, built: list[Any]) -> None:
        """After idle_timeout seconds without events the instance is dropped; the next call re-runs the constructor."""
        stub = rt.namespace(Counter).get_by_name("a")
        assert await stub.bump() == (1, 1)
        await clock.advance(9.999)
        assert await stub.bump() == (2, 2)
        await clock.advance(9.999)
        assert built == ["a"]
        await clock.advance(0.001)
        assert await stub.bump() == (1, 3)
        assert built == ["a", "a"]

    async def test_busy_object_is_not_evicted(
        self, rt: durable.Runtime, clock: MockClock, built: list[Any], events: dict[str, asyncio.Event]
    ) -> None:
        """An object with a call in progress is not evicted, however long it takes; the idle time counts from its end."""
        stub = rt.namespace(Counter).get_by_name("a")
        await stub.bump()
        waiting = asyncio.create_task(stub.wait_for("release"))
        await settle(50)
        await clock.advance(100)
        events["release"].set()
        await waiting
        await clock.advance(9)
        assert await stub.bump() == (2, 2)
        assert built == ["a"]

    async def test_no_timeout_never_evicts(self, clock: MockClock, built: list[Any]) -> None:
        """idle_timeout=None keeps instances for the runtime's life."""
        async with durable.Runtime(clock=clock, idle_timeout=None, vars={"built": built}) as rt:
            stub = rt.namespace(Counter).get_by_name("a")
            await stub.bump()
            await clock.advance(10_000)
            assert await stub.bump() == (2, 2)

    async def test_alarm_wake_then_idle(self, rt: durable.Runtime, clock: MockClock, built: list[Any]) -> None:
        """An object woken by an alarm is evicted idle_timeout seconds after the alarm."""

        class Woken(Counter):
            async def arm(self, when: int) -> None:
                await self.ctx.storage.set_alarm(when)

            async def alarm(self, info: durable.AlarmInfo) -> None:
                self.in_memory = 100

        stub = rt.namespace(Woken).get_by_name("w")
        await stub.arm(T0 * 1000 + 50_000)
        await clock.advance(50)
        assert built == ["w", "w"]  # evicted after 10 s, woken at 50 s
        await clock.advance(9)
        assert await stub.bump() == (101, 1)
        await clock.advance(10)
        assert await stub.bump() == (1, 2)


class TestBlockConcurrencyTimeout:
    async def test_resets_after_thirty_seconds(
        self, rt: durable.Runtime, clock: MockClock, built: list[Any], events: dict[str, asyncio.Event]
    ) -> None:
        """A block_concurrency_while() callback still waiting after 30 s resets the object with the overloaded error."""
        stub = rt.namespace(Counter).get_by_name("a")
        holding = asyncio.create_task(stub.hold())
        await events["started"].wait()
        await clock.advance(29.999)
        assert not holding.done()
        await clock.advance(0.001)
        with pytest.raises(durable.ObjectResetError) as info:
            await holding
        assert str(info.value) == (
            "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
            "The call was canceled and the Durable Object was reset."
        )
        assert info.value.overloaded and info.value.durable_object_reset
        fresh = rt.namespace(Counter).get_by_name("a")
        assert await fresh.bump() == (1, 1)
        assert built == ["a", "a"]

    async def test_quick_callback_is_not_reset(self, clock: MockClock, built: list[Any]) -> None:
        """A callback that finishes in time leaves no timer behind: advancing past 30 s resets nothing."""

        class Quick(Counter):
            async def init(self) -> int:
                async def load() -> int:
                    return 7

                return await self.ctx.block_concurrency_while(load)

        async with durable.Runtime(clock=clock, idle_timeout=None, vars={"built": built}) as rt:
            stub = rt.namespace(Quick).get_by_name("q")
            assert await stub.init() == 7
            await stub.bump()
            await clock.advance(31)
            assert await stub.bump() == (2, 2)
            assert built == ["q"]


class TestAdvanceWaitsForAlarmBackgroundWork:
    async def test_wait_until_work_of_an_alarm_is_awaited(self) -> None:
        """advance() returns only once work an alarm handler passed to wait_until() has finished."""
        clock = MockClock(start=1_700_000_000)
        done: list[str] = []

        class Background(durable.DurableObject):
            async def arm(self) -> None:
                await self.ctx.storage.set_alarm(1_700_000_010_000)

            async def alarm(self, info: durable.AlarmInfo) -> None:
                async def later() -> None:
                    await settle(20)
                    done.append("background")

                self.ctx.wait_until(later())

        async with durable.Runtime(clock=clock) as rt:
            await rt.namespace(Background).get_by_name("b").arm()
            await clock.advance(10)
            assert done == ["background"]
