"""Alarms: setting, delivery, retries with backoff, give-up, storage semantics and restarts.

Every test runs on a :class:`durable.testing.MockClock` started at ``T0``; time moves only through
``await clock.advance(...)``, so the tests never sleep and every time they check is exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable._clock import TimerHandle
from durable.testing import MockClock, evict, fail_next_commit, run_in_object

from helpers import eager_tasks, needs_eager_tasks, settle

T0 = 1_700_000_000
"""The mock clock's start, in seconds since the epoch (a whole second, so times compare exactly)."""
T0_MS = T0 * 1000

Events = list[tuple[Any, ...]]


class Alarmed(durable.DurableObject):
    """Records its constructions and alarm attempts in ``env.events``; RPC methods drive storage."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.events.append(("init", ctx.id.name))

    async def arm(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def disarm(self) -> None:
        await self.ctx.storage.delete_alarm()

    async def value(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    def offset(self) -> float:
        return float(self.env.clock.time() - T0)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.events.append(("alarm", self.offset(), info.retry_count, info.is_retry, info.scheduled_time))
        await self.outcome(info)

    async def outcome(self, info: durable.AlarmInfo) -> None:
        """What the handler does after recording the attempt (subclasses override)."""


class Failing(Alarmed):
    async def outcome(self, info: durable.AlarmInfo) -> None:
        raise RuntimeError(f"boom {info.retry_count}")


class NoHandler(durable.DurableObject):
    async def arm(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)


class ArmsInConstructor(durable.DurableObject):
    """No ``alarm()``; its constructor sets an alarm 10 s ahead (workerd allows it there)."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.events.append(("init",))
        ctx.storage.set_alarm(env.clock.time() * 1000 + 10_000)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def arm(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)


def alarm_times(events: Events) -> list[float]:
    """The clock offsets (seconds after ``T0``) at which ``alarm()`` was entered."""
    return [e[1] for e in events if e[0] == "alarm"]


@pytest.fixture
def clock() -> MockClock:
    return MockClock(T0)


@pytest.fixture
def events() -> Events:
    return []


@pytest.fixture
async def rt(clock: MockClock, events: Events) -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime(clock=clock, vars={"events": events, "clock": clock}) as runtime:
        yield runtime


@pytest.fixture
def quiet_alarm_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the scheduler's warnings about failed attempts instead of printing them."""
    with caplog.at_level(logging.WARNING, logger="durable"):
        yield caplog


async def let_the_loop_run() -> None:
    """Give the event loop many turns, so that anything wrongly runnable gets the chance to run.

    Used only before asserting that something has *not* happened; correct code passes with any
    number of turns, so this orders nothing.
    """
    await settle(50)


class TestSetAndGet:
    async def test_set_then_get(self, rt: durable.Runtime) -> None:
        """get_alarm() returns the time set_alarm() was given, in ms since the epoch."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        assert await stub.get() is None
        await stub.arm(T0_MS + 60_000)
        assert await stub.get() == T0_MS + 60_000

    async def test_datetime_is_accepted(self, rt: durable.Runtime) -> None:
        """A datetime is converted to ms since the epoch."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(dt.datetime.fromtimestamp(T0 + 90, tz=dt.UTC))
        assert await stub.get() == T0_MS + 90_000

    async def test_setting_replaces(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """An object has one alarm: a second set_alarm() replaces the first, which never runs."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(T0_MS + 10_000)
        await stub.arm(T0_MS + 20_000)
        assert await stub.get() == T0_MS + 20_000
        await clock.advance(100)
        assert alarm_times(events) == [20.0]

    async def test_delete_cancels(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """delete_alarm() removes the alarm, which then never runs; deleting again is a no-op."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(T0_MS + 10_000)
        await stub.disarm()
        await stub.disarm()
        assert await stub.get() is None
        await clock.advance(100)
        assert alarm_times(events) == []

    @pytest.mark.parametrize("when", [0, -1, -T0_MS, 0.5])
    async def test_time_not_positive_is_type_error(self, rt: durable.Runtime, when: float) -> None:
        """A time <= 0 raises Cloudflare's TypeError."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        with pytest.raises(TypeError, match=r"^setAlarm\(\) cannot be called with an alarm time <= 0$"):
            await stub.arm(when)
        assert await stub.get() is None

    async def test_class_without_handler_is_type_error(self, rt: durable.Runtime) -> None:
        """A class without alarm() cannot set an alarm (Cloudflare's message)."""
        stub = rt.namespace(NoHandler).get_by_name("a")
        message = r"^Your Durable Object class must have an alarm\(\) handler in order to call setAlarm\(\)$"
        with pytest.raises(TypeError, match=message):
            await stub.arm(T0_MS + 1000)

    async def test_constructor_of_class_without_handler_may_set_it(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """workerd checks for alarm() only once the object is built: its constructor may set an alarm.

        When it falls due, workerd logs that there is no handler and clears it, with no error, no
        retry and no reset (measured with miniflare 4, 2026-04-07). Outside the constructor the
        TypeError stays.
        """
        stub = rt.namespace(ArmsInConstructor).get_by_name("a")
        assert await stub.get() == T0_MS + 10_000
        message = r"^Your Durable Object class must have an alarm\(\) handler in order to call setAlarm\(\)$"
        with pytest.raises(TypeError, match=message):
            await stub.arm(T0_MS + 20_000)
        await clock.advance(10)
        assert "Attempted to run a scheduled alarm without a handler" in quiet_alarm_logs.text
        assert await stub.get() is None
        await clock.advance(120)  # no retry: nothing is logged again
        assert quiet_alarm_logs.text.count("without a handler") == 1
        assert events == [("init",)]  # the instance was never reset

    @pytest.mark.parametrize("when", ["soon", None])
    async def test_not_a_time_is_type_error(self, rt: durable.Runtime, when: Any) -> None:
        """Anything but ms or a datetime is refused with a TypeError."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        with pytest.raises(TypeError, match="setAlarm"):
            await stub.arm(when)

    @pytest.mark.parametrize("when", [float("nan"), float("inf"), float("-inf")])
    async def test_not_a_date_is_type_error(self, rt: durable.Runtime, when: float) -> None:
        """NaN and infinities are refused with workerd's words."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        with pytest.raises(TypeError, match=r"^The value cannot be converted because it is not a valid Date\.$"):
            await stub.arm(when)

    @pytest.mark.parametrize(
        "when",
        [
            9_223_372_036_854.776,
            9_223_372_036_855,
            8_640_000_000_000_000,
            10**400,
            dt.datetime(2263, 1, 1, tzinfo=dt.UTC),
        ],
    )
    async def test_time_beyond_int64_nanoseconds_is_type_error(self, rt: durable.Runtime, when: Any) -> None:
        """A time whose nanoseconds do not fit an int64 is refused with workerd's words; the last one that fits is taken."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        with pytest.raises(TypeError, match=r"^This API doesn't support dates after 2189\.$"):
            await stub.arm(when)
        await stub.arm(9_223_372_036_854)
        assert await stub.get() == 9_223_372_036_854

    @pytest.mark.parametrize("when", [-9_223_372_036_855, -(10**400)])
    async def test_time_before_int64_nanoseconds_is_type_error(self, rt: durable.Runtime, when: int) -> None:
        """A time too far before the epoch gets workerd's words, not the "<= 0" message."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        with pytest.raises(TypeError, match=r"^This API doesn't support dates before 1687\.$"):
            await stub.arm(when)

    async def test_camel_case_aliases(self, rt: durable.Runtime) -> None:
        """setAlarm / getAlarm / deleteAlarm are the same methods."""
        stub = rt.namespace(Alarmed).get_by_name("a")

        async def use(obj: durable.DurableObject, ctx: durable.State) -> list[Any]:
            storage: Any = ctx.storage
            await storage.setAlarm(T0_MS + 5000)
            seen = [await storage.getAlarm()]
            await storage.deleteAlarm()
            seen.append(await storage.getAlarm())
            return seen

        assert await run_in_object(stub, use) == [T0_MS + 5000, None]

    async def test_transaction_alarm_rolls_back(self, rt: durable.Runtime) -> None:
        """An alarm set inside a transaction that rolls back is not set."""
        stub = rt.namespace(Alarmed).get_by_name("a")

        async def use(obj: durable.DurableObject, ctx: durable.State) -> None:
            async def body(txn: durable.Transaction) -> None:
                await txn.set_alarm(T0_MS + 5000)
                assert await txn.get_alarm() == T0_MS + 5000
                txn.rollback()

            storage: Any = ctx.storage  # Storage.transaction's annotation defeats mypy's inference here
            await storage.transaction(body)

        await run_in_object(stub, use)
        assert await stub.get() is None


class TestDelivery:
    async def test_runs_at_its_time_not_before(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """The alarm runs when the clock reaches its time, not a millisecond before."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(T0_MS + 60_000)
        await clock.advance(59.999)
        assert alarm_times(events) == []
        await clock.advance(0.001)
        assert alarm_times(events) == [60.0]

    async def test_handler_gets_alarm_info(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """alarm(info) receives a durable.AlarmInfo: retry_count 0, is_retry False, scheduled_time."""
        infos: list[durable.AlarmInfo] = []

        class Keeps(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                infos.append(info)

        stub = rt.namespace(Keeps).get_by_name("a")
        await stub.arm(T0_MS + 1234)
        await clock.advance(2)
        assert len(infos) == 1
        assert isinstance(infos[0], durable.AlarmInfo)
        assert (infos[0].retry_count, infos[0].is_retry, infos[0].scheduled_time) == (0, False, T0_MS + 1234)
        camel: Any = infos[0]
        assert (camel.retryCount, camel.isRetry, camel.scheduledTime) == (0, False, T0_MS + 1234)

    async def test_past_time_runs_as_soon_as_possible(
        self, rt: durable.Runtime, clock: MockClock, events: Events
    ) -> None:
        """An alarm set in the past runs at once (on advance(0)), its time clamped to now as in workerd."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(T0_MS - 5000)
        await clock.advance(0)
        assert [e for e in events if e[0] == "alarm"] == [("alarm", 0.0, 0, False, T0_MS)]
        assert await stub.get() is None

    async def test_past_alarm_fires_without_advance(self, rt: durable.Runtime, events: Events) -> None:
        """A due alarm runs on the event loop by itself, as with a real clock; advance() only waits."""
        fired = asyncio.Event()

        class Signals(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                fired.set()

        await rt.namespace(Signals).get_by_name("a").arm(T0_MS)
        await fired.wait()
        assert alarm_times(events) == [0.0]

    async def test_sync_handler(self, rt: durable.Runtime, clock: MockClock) -> None:
        """A plain `def alarm` works too."""
        seen: list[int] = []

        class Sync(durable.DurableObject):
            async def arm(self, when: int) -> None:
                await self.ctx.storage.set_alarm(when)

            def alarm(self, info: durable.AlarmInfo) -> None:
                seen.append(info.scheduled_time)

        await rt.namespace(Sync).get_by_name("a").arm(T0_MS + 1000)
        await clock.advance(1)
        assert seen == [T0_MS + 1000]

    async def test_success_clears_the_alarm(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """After a successful run get_alarm() is None and nothing runs again."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        assert await stub.get() is None
        await clock.advance(1000)
        assert alarm_times(events) == [1.0]

    async def test_get_alarm_inside_handler_is_none(self, rt: durable.Runtime, clock: MockClock) -> None:
        """Inside alarm(), get_alarm() is None while the handler has not set a new alarm."""
        seen: list[int | None] = []

        class Looks(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                seen.append(await self.ctx.storage.get_alarm())
                await self.ctx.storage.set_alarm(T0_MS + 50_000)
                seen.append(await self.ctx.storage.get_alarm())

        stub = rt.namespace(Looks).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        assert seen == [None, T0_MS + 50_000]
        assert await stub.get() == T0_MS + 50_000

    async def test_handler_can_reschedule(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """An alarm set by the handler survives its success and runs at its own time."""

        class Periodic(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                if info.scheduled_time < T0_MS + 30_000:
                    await self.ctx.storage.set_alarm(info.scheduled_time + 10_000)

        stub = rt.namespace(Periodic).get_by_name("a")
        await stub.arm(T0_MS + 10_000)
        await clock.advance(100)
        assert alarm_times(events) == [10.0, 20.0, 30.0]
        assert await stub.get() is None

    async def test_past_alarm_set_by_handler_runs_after_it(
        self, rt: durable.Runtime, clock: MockClock, events: Events
    ) -> None:
        """An alarm the handler sets in the past runs again at once, but only after the handler ends."""
        running: list[bool] = []

        class Again(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                running.append(True)
                assert running.count(True) == 1, "two alarm() calls overlapped"
                if len([e for e in events if e[0] == "alarm"]) == 1:
                    await self.ctx.storage.set_alarm(T0_MS)  # in the past: clamped to now
                    await settle(50)  # a concurrent delivery would start here
                running.remove(True)

        stub = rt.namespace(Again).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        assert [e[4] for e in events if e[0] == "alarm"] == [T0_MS + 1000, T0_MS + 1000]
        assert await stub.get() is None

    async def test_constructs_object_if_not_live(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """An alarm wakes an evicted object: the constructor runs, with ctx.id.name known."""
        stub = rt.namespace(Alarmed).get_by_name("sleeper")
        await stub.arm(T0_MS + 5000)
        await evict(stub)
        events.clear()
        await clock.advance(5)
        assert events == [("init", "sleeper"), ("alarm", 5.0, 0, False, T0_MS + 5000)]

    async def test_alarm_set_in_constructor(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """A constructor may set the alarm (un-awaited); it commits with the first event and runs."""

        class SelfArming(Alarmed):
            def __init__(self, ctx: durable.State, env: durable.Env) -> None:
                super().__init__(ctx, env)
                ctx.storage.set_alarm(T0_MS + 5000)

        stub = rt.namespace(SelfArming).get_by_name("a")
        assert await stub.get() == T0_MS + 5000
        await clock.advance(5)
        assert alarm_times(events) == [5.0]

    async def test_unique_id_object_is_woken(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """Objects with unique ids (no name) get their alarms too."""
        ns = rt.namespace(Alarmed)
        stub = ns.get(ns.new_unique_id())
        await stub.arm(T0_MS + 5000)
        await evict(stub)
        await clock.advance(5)
        assert [e for e in events if e[0] == "init"] == [("init", None), ("init", None)]
        assert alarm_times(events) == [5.0]

    async def test_delivered_through_input_gate(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """A due alarm waits while block_concurrency_while() holds the object's input gate."""
        started = asyncio.Event()
        release = asyncio.Event()

        class Blocking(Alarmed):
            async def hold(self) -> None:
                async def critical() -> None:
                    started.set()
                    await release.wait()
                    self.env.events.append(("critical done",))

                await self.ctx.block_concurrency_while(critical)

        stub = rt.namespace(Blocking).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        holding = asyncio.create_task(stub.hold())
        await started.wait()
        advancing = asyncio.create_task(clock.advance(1))
        await settle(50)
        assert alarm_times(events) == []
        release.set()
        await advancing
        await holding
        assert [e[0] for e in events if e[0] != "init"] == ["critical done", "alarm"]

    async def test_handler_writes_are_committed(self, rt: durable.Runtime, clock: MockClock) -> None:
        """What the handler stores is durable once it has run."""

        class Writes(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                await self.ctx.storage.put("ran", info.scheduled_time)

        stub = rt.namespace(Writes).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        await evict(stub)
        assert await stub.value("ran") == T0_MS + 1000

    async def test_alarm_is_not_reachable_over_rpc(self, rt: durable.Runtime) -> None:
        """`alarm` is a reserved name: calling it through a stub is a TypeError."""
        stub: Any = rt.namespace(Alarmed).get_by_name("a")
        with pytest.raises(TypeError, match="'alarm' is a reserved method"):
            await stub.alarm()

    async def test_independent_objects(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """Each object has its own alarm; they run in time order."""
        ns = rt.namespace(Alarmed)
        await ns.get_by_name("late").arm(T0_MS + 3000)
        await ns.get_by_name("early").arm(T0_MS + 1000)
        await ns.get_by_name("middle").arm(T0_MS + 2000)
        await clock.advance(5)
        assert [e[4] for e in events if e[0] == "alarm"] == [T0_MS + 1000, T0_MS + 2000, T0_MS + 3000]


class TestRetries:
    async def test_backoff_schedule(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """A failing handler is retried after 2, 4, 8, 16, 32 and 64 s, with retry_count 1..6."""
        stub = rt.namespace(Failing).get_by_name("a")
        await stub.arm(T0_MS + 10_000)
        await clock.advance(10_000)
        attempts = [e for e in events if e[0] == "alarm"]
        assert [e[1] - 10 for e in attempts] == [0, 2, 6, 14, 30, 62, 126]
        assert [e[2] for e in attempts] == [0, 1, 2, 3, 4, 5, 6]
        assert [e[3] for e in attempts] == [False] + [True] * 6
        assert {e[4] for e in attempts} == {T0_MS + 10_000}

    async def test_gives_up_after_six_retries(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """After 7 failed attempts the alarm is deleted and never runs again."""
        stub = rt.namespace(Failing).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1 + 126)
        assert len(alarm_times(events)) == 7
        assert await stub.get() is None
        await clock.advance(100_000)
        assert len(alarm_times(events)) == 7
        assert "failed 7 times; giving up" in quiet_alarm_logs.text

    async def test_each_failure_is_logged(
        self, rt: durable.Runtime, clock: MockClock, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """A failed attempt is logged as a warning naming the error and the attempt."""
        await rt.namespace(Failing).get_by_name("a").arm(T0_MS)
        await clock.advance(0)
        assert "(attempt 1): RuntimeError: boom 0" in quiet_alarm_logs.text

    async def test_alarm_stays_set_between_retries(
        self, rt: durable.Runtime, clock: MockClock, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """Between a failure and its retry, get_alarm() still returns the alarm's time."""
        stub = rt.namespace(Failing).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1.5)
        assert await stub.get() == T0_MS + 1000

    async def test_success_on_a_retry_clears(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """A retry that succeeds clears the alarm and ends the retries."""

        class Flaky(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                if info.retry_count < 2:
                    raise RuntimeError("not yet")

        stub = rt.namespace(Flaky).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(1000)
        assert alarm_times(events) == [0.0, 2.0, 6.0]
        assert await stub.get() is None

    @needs_eager_tasks
    async def test_backoff_schedule_on_an_eager_loop(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """The same on a loop whose task factory is ``asyncio.eager_task_factory``. A delivery
        whose handler failed at once ran to its end inside the scheduler's create_task(), before
        it was recorded as the object's running delivery; recorded after its end, it stayed so,
        and every later attempt waited for it: one attempt, never retried."""
        with eager_tasks():
            await self.test_backoff_schedule(rt, clock, events, quiet_alarm_logs)

    async def test_a_base_exception_is_a_failed_attempt(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """A handler raising a BaseException that is not an Exception fails its attempt like any
        error and is retried (a Python Worker's handler reports it to workerd as an error, which
        retries it). The scheduler let it end its delivery task: the alarm stayed stored, unrun,
        and was never retried ("the alarm scheduler failed")."""

        class Stop(BaseException):
            pass

        class RaisesBase(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                if info.retry_count == 0:
                    raise Stop("not an Exception")

        stub = rt.namespace(RaisesBase).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(10)
        assert [(e[1], e[2]) for e in events if e[0] == "alarm"] == [(0.0, 0), (2.0, 1)]
        assert await stub.get() is None
        assert "(attempt 1): Stop: not an Exception" in quiet_alarm_logs.text
        assert "scheduler failed" not in quiet_alarm_logs.text

    async def test_alarm_set_by_failing_handler_replaces_retry(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """A handler that sets a new alarm and then raises gets the new alarm, not a retry."""

        class SetsThenFails(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                if info.scheduled_time == T0_MS:
                    await self.ctx.storage.set_alarm(T0_MS + 100_000)
                    raise RuntimeError("after setting")

        stub = rt.namespace(SetsThenFails).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(1000)
        attempts = [e for e in events if e[0] == "alarm"]
        assert [(e[1], e[2], e[4]) for e in attempts] == [(0.0, 0, T0_MS), (100.0, 0, T0_MS + 100_000)]

    async def test_delete_in_failing_handler_prevents_retry(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """delete_alarm() inside a handler that then raises means no retry."""

        class DeletesThenFails(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                await self.ctx.storage.delete_alarm()
                raise RuntimeError("after deleting")

        stub = rt.namespace(DeletesThenFails).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(1000)
        assert alarm_times(events) == [0.0]
        assert await stub.get() is None

    async def test_set_alarm_between_retries_restarts_count(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """A set_alarm() from a call while a retry is pending replaces it: the new alarm starts at attempt 0."""
        stub = rt.namespace(Failing).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(0)
        await stub.arm(T0_MS + 50_000)
        await clock.advance(60)
        attempts = [e for e in events if e[0] == "alarm"]
        assert [(e[1], e[2]) for e in attempts][:3] == [(0.0, 0), (50.0, 0), (52.0, 1)]

    async def test_delete_alarm_between_retries_cancels(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """delete_alarm() from a call while a retry is pending cancels the retry."""
        stub = rt.namespace(Failing).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(1)
        await stub.disarm()
        await clock.advance(1000)
        assert alarm_times(events) == [0.0]

    async def test_abort_retries(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """ctx.abort() inside alarm() resets the object and the alarm is retried on a fresh instance."""

        class Aborts(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                if info.retry_count == 0:
                    await self.ctx.storage.put("unflushed", True)
                    self.ctx.abort("alarm gave up on this instance")

        stub = rt.namespace(Aborts).get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(10)
        assert [e[0] for e in events] == ["init", "alarm", "init", "alarm"]
        assert [(e[1], e[2]) for e in events if e[0] == "alarm"] == [(0.0, 0), (2.0, 1)]
        # The stub reached the instance that was reset: it is broken (workerd, measured with
        # miniflare 4, 2026-04-07: `Error: alarm aborted`, durableObjectReset); a new one works.
        with pytest.raises(durable.ObjectAbortedError, match="alarm gave up on this instance"):
            await stub.get()
        stub = rt.namespace(Aborts).get_by_name("a")
        assert await stub.value("unflushed") is None
        assert await stub.get() is None
        assert "alarm gave up on this instance" in quiet_alarm_logs.text

    async def test_constructor_failure_is_retried_without_counting(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """If the constructor of an alarm-woken object raises, the attempt failed and is retried 2 s
        later, but does not count: workerd (miniflare 4, 2026-04-07) ran the handler after two
        constructor failures with retryCount 0 (tests/test_hunt_testing.py)."""
        broken = [True]

        class Fragile(Alarmed):
            def __init__(self, ctx: durable.State, env: durable.Env) -> None:
                super().__init__(ctx, env)
                if broken[0]:
                    raise RuntimeError("constructor failed")

        broken[0] = False
        stub = rt.namespace(Fragile).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await evict(stub)
        broken[0] = True
        await clock.advance(1)
        broken[0] = False
        await clock.advance(2)
        assert [(e[1], e[2]) for e in events if e[0] == "alarm"] == [(3.0, 0)]


class Gated(durable.DurableObject):
    """Holds its input gate closed until released, then deletes or moves its alarm."""

    release: asyncio.Event
    ran: list[tuple[int, int]]

    async def arm(self, when_ms: int) -> None:
        await self.ctx.storage.set_alarm(when_ms)

    async def hold_then(self, what: int | None) -> None:
        async def closed() -> None:
            await Gated.release.wait()
            if what is None:
                await self.ctx.storage.delete_alarm()
            else:
                await self.ctx.storage.set_alarm(what)

        await self.ctx.block_concurrency_while(closed)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        Gated.ran.append((info.scheduled_time, info.retry_count))


class Overlong(Alarmed):
    """Its first attempt's handler never ends (it waits for ``env.never``); a call can hang alongside."""

    async def outcome(self, info: durable.AlarmInfo) -> None:
        if info.retry_count == 0:
            try:
                await self.env.never.wait()
            except asyncio.CancelledError:
                self.env.events.append(("cancelled", self.offset()))
                raise

    async def hang(self) -> None:
        await self.env.never.wait()


class ChangesThenHangs(Alarmed):
    """Its first handler changes its alarm as ``env.modes[name]`` says, then never ends."""

    async def outcome(self, info: durable.AlarmInfo) -> None:
        if info.retry_count or self.ctx.id.name in self.env.done:
            return
        self.env.done.add(self.ctx.id.name)
        mode = self.ctx.id.name
        if mode == "del":
            await self.ctx.storage.delete_alarm()
        elif mode == "soon":
            await self.ctx.storage.set_alarm(self.ctx.now_ms() + 5_000)
        elif mode == "late":
            await self.ctx.storage.set_alarm(self.ctx.now_ms() + 3_600_000)
        await asyncio.Event().wait()


class TestTimeLimit:
    """workerd ends an alarm() handler after 15 minutes of wall time: it aborts the object with
    "Alarm exceeded its allowed execution time" (OVERLOADED, "broken.dropped"), keeps the alarm and
    counts the attempt as failed (measured with miniflare 4, 2026-04-07: a handler that never ends,
    started at 1 s, was ended at ~901 s and retried 2 s later with retryCount 1)."""

    @pytest.fixture
    async def rt(self, clock: MockClock, events: Events) -> AsyncIterator[durable.Runtime]:
        never = asyncio.Event()
        async with durable.Runtime(clock=clock, vars={"events": events, "clock": clock, "never": never}) as runtime:
            yield runtime
            never.set()

    async def test_handler_past_15_minutes_is_ended_and_retried(
        self, rt: durable.Runtime, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """Before: the handler ran on, and advance() past its start waited for it forever."""
        stub = rt.namespace(Overlong).get_by_name("a")
        await stub.arm(T0_MS + 1_000)
        call = asyncio.ensure_future(stub.hang())  # in flight when the limit falls due
        await settle()
        # The handler starts at 1 s and makes no progress: time moves on to its limit.
        await clock.advance(901)
        assert ("cancelled", 901.0) in events  # its task was cancelled at the limit, 900 s after its start
        with pytest.raises(durable.ObjectResetError, match="^Alarm exceeded its allowed execution time$") as info:
            await call
        assert info.value.durable_object_reset and info.value.overloaded
        assert "Alarm exceeded its allowed execution time" in quiet_alarm_logs.text
        assert await rt.namespace(Overlong).get_by_name("a").get() == T0_MS + 1_000  # kept for the retry
        await clock.advance(2)
        assert [e for e in events if e[0] == "alarm"] == [
            ("alarm", 1.0, 0, False, T0_MS + 1_000),
            ("alarm", 903.0, 1, True, T0_MS + 1_000),  # counted: retryCount 1, 2 s after the failure
        ]
        assert await rt.namespace(Overlong).get_by_name("a").get() is None  # the retry succeeded

    async def test_advance_short_of_the_limit_waits_for_a_slow_handler(
        self, rt: durable.Runtime, clock: MockClock, events: Events
    ) -> None:
        """Only an advance() that reaches the limit lets time move past a handler that makes no
        progress: a shorter one waits for the handler, as before."""
        stub = rt.namespace(Overlong).get_by_name("a")
        await stub.arm(T0_MS + 1_000)
        advancing = asyncio.ensure_future(clock.advance(60))
        await asyncio.sleep(MockClock.STALL_SECONDS * 1.5)  # past the stall time: still held
        assert not advancing.done() and clock.time() == T0 + 1
        rt.env.never.set()
        await advancing
        assert clock.time() == T0 + 60 and ("cancelled", 1.0) not in events

    async def test_a_clock_overriding_call_at_deadline_as_documented_still_runs_alarms(
        self, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """docs/api.md documents ``Clock.call_at_deadline(when, callback)`` as overridable. The
        alarm time limit does not reach it with an argument such a clock never took. Before
        (review-gaps): every alarm() run called it with ``reached_only=True``, a TypeError, so
        every attempt failed before its handler ran and the alarm was given up."""

        class Custom(MockClock):
            def call_at_deadline(self, when: float, callback: Callable[[], None]) -> TimerHandle:
                return super().call_at_deadline(when, callback)

        clock = Custom(T0)
        async with durable.Runtime(clock=clock, vars={"events": events, "clock": clock}) as rt:
            stub = rt.namespace(Alarmed).get_by_name("a")
            await stub.arm(T0_MS + 1_000)
            await clock.advance(1)
            assert [e for e in events if e[0] == "alarm"] == [("alarm", 1.0, 0, False, T0_MS + 1_000)]
            assert await stub.get() is None and "failed" not in quiet_alarm_logs.text

    async def test_a_clock_failing_to_set_the_limit_leaves_the_alarm_visible(
        self, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """The limit's timer is set before the handler counts as running: a clock that raises
        there fails the attempt (retried), and get_alarm() still reports the stored alarm. Before
        (review-gaps): the handler stayed "running" for the rest of the generation, so
        get_alarm() answered None while the alarm waited for its retry."""

        class Failing(MockClock):
            failures = 1

            def call_at_limit(self, when: float, callback: Callable[[], None]) -> TimerHandle:
                if self.failures:
                    self.failures -= 1
                    raise RuntimeError("no timer")
                return super().call_at_limit(when, callback)

        clock = Failing(T0)
        async with durable.Runtime(clock=clock, vars={"events": events, "clock": clock}) as rt:
            stub = rt.namespace(Alarmed).get_by_name("a")
            await stub.arm(T0_MS + 1_000)
            await clock.advance(1)
            assert "RuntimeError: no timer" in quiet_alarm_logs.text
            assert await stub.get() == T0_MS + 1_000  # kept for its retry, and seen
            await clock.advance(2)
            assert [e for e in events if e[0] == "alarm"] == [("alarm", 3.0, 0, False, T0_MS + 1_000)]
            assert await stub.get() is None

    async def test_an_alarm_changed_by_the_handler_before_its_limit_replaces_the_retry(
        self, clock: MockClock, events: Events, quiet_alarm_logs: pytest.LogCaptureFixture
    ) -> None:
        """Measured with miniflare 4 (2026-04-07, handlers started at ~1 s that never end): one that
        deleted its alarm first is not retried; one that set it 5 s ahead (due while it runs)
        runs that alarm at ~901 s, when it is ended, with retryCount 0, and no retry; one that
        set it an hour ahead keeps that alarm, with no retry (one that changes nothing is retried
        at ~903 s with retryCount 1: the test above). A guard of the limit's interplay with the
        retry logic (review-gaps)."""
        vars = {"events": events, "clock": clock, "done": set()}
        async with durable.Runtime(clock=clock, vars=vars) as rt:
            ns = rt.namespace(ChangesThenHangs)
            for name in ("del", "soon", "late"):
                await ns.get_by_name(name).arm(T0_MS + 1_000)
            await clock.advance(930)
            later = [(e[1], e[2]) for e in events if e[0] == "alarm" and e[1] > 1]
            assert later == [(901.0, 0)]  # soon's own alarm, run when its handler was ended
            assert await ns.get_by_name("del").get() is None
            assert await ns.get_by_name("soon").get() is None
            assert await ns.get_by_name("late").get() == T0_MS + 1_000 + 3_600_000


class TestChangedWhileDue:
    @pytest.mark.parametrize("moved", [False, True])
    async def test_an_alarm_changed_before_its_handler_starts_does_not_run(
        self, rt: durable.Runtime, clock: MockClock, moved: bool
    ) -> None:
        """An alarm that fell due while the input gate was closed, and was deleted or moved before
        its handler could start, does not run: workerd cancels that handler (measured with
        miniflare: nothing runs). A moved alarm runs at its new time."""
        Gated.release, Gated.ran = asyncio.Event(), []
        stub = rt.namespace(Gated).get_by_name("g")
        await stub.arm(T0_MS + 1000)
        held = asyncio.ensure_future(stub.hold_then(T0_MS + 500_000 if moved else None))
        await let_the_loop_run()
        advancing = asyncio.ensure_future(clock.advance(2))  # the alarm falls due; its event waits
        await let_the_loop_run()
        Gated.release.set()
        await held
        await advancing
        assert Gated.ran == []
        await clock.advance(1000)
        assert Gated.ran == ([(T0_MS + 500_000, 0)] if moved else [])


class TestStorageSemantics:
    async def test_failed_commit_leaves_no_alarm(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """set_alarm() is a storage write: if its commit fails, no alarm is set and none runs."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await stub.arm(T0_MS + 1000)
        stub = rt.namespace(Alarmed).get_by_name("a")
        assert await stub.get() is None
        await clock.advance(100)
        assert alarm_times(events) == []

    async def test_coalesced_with_other_writes(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """An alarm and a put in one turn commit together: a failed commit drops both."""

        class Both(Alarmed):
            async def both(self) -> None:
                self.ctx.storage.put("k", 1)
                self.ctx.storage.set_alarm(T0_MS + 1000)

        ns = rt.namespace(Both)
        fail_next_commit(ns.get_by_name("a"))
        with pytest.raises(durable.ObjectResetError):
            await ns.get_by_name("a").both()
        stub = ns.get_by_name("a")
        assert (await stub.value("k"), await stub.get()) == (None, None)
        await clock.advance(100)
        assert alarm_times(events) == []

    async def test_abort_drops_unflushed_alarm(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """An alarm set in the same turn as ctx.abort() is dropped with the other unflushed writes."""

        class Aborting(Alarmed):
            async def set_and_abort(self) -> None:
                self.ctx.storage.set_alarm(T0_MS + 1000)
                self.ctx.abort()

        ns = rt.namespace(Aborting)
        with pytest.raises(durable.ObjectAbortedError):
            await ns.get_by_name("a").set_and_abort()
        assert await ns.get_by_name("a").get() is None
        await clock.advance(100)
        assert alarm_times(events) == []

    async def test_delete_all_removes_alarm(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """delete_all() also deletes the alarm."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await run_in_object(stub, lambda obj, ctx: ctx.storage.delete_all())
        assert await stub.get() is None
        await clock.advance(100)
        assert alarm_times(events) == []

    async def test_unconfirmed_alarm_is_set(self, rt: durable.Runtime, clock: MockClock, events: Events) -> None:
        """allow_unconfirmed=True is accepted and the alarm still runs."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        await run_in_object(stub, lambda obj, ctx: ctx.storage.set_alarm(T0_MS + 1000, allow_unconfirmed=True))
        await clock.advance(1)
        assert alarm_times(events) == [1.0]


class TestPersistence:
    async def test_alarm_survives_restart(self, tmp_path: Path, events: Events) -> None:
        """A persisted alarm is still set after a restart and runs at its time."""
        clock = MockClock(T0)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            await rt.namespace(Alarmed).get_by_name("p").arm(T0_MS + 60_000)
        clock = MockClock(T0 + 30)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            stub = rt.namespace(Alarmed).get_by_name("p")
            assert await stub.get() == T0_MS + 60_000
            await clock.advance(29.999)
            assert alarm_times(events) == []
            await clock.advance(0.001)
            assert alarm_times(events) == [60.0]
            assert await stub.get() is None

    async def test_overdue_alarm_runs_once_at_start(self, tmp_path: Path, events: Events) -> None:
        """An alarm that fell due while the runtime was down runs once, when its namespace is registered."""
        clock = MockClock(T0)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            await rt.namespace(Alarmed).get_by_name("p").arm(T0_MS + 60_000)
        events.clear()
        clock = MockClock(T0 + 3600)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            rt.namespace(Alarmed)
            await clock.advance(0)
            assert events == [("init", "p"), ("alarm", 3600.0, 0, False, T0_MS + 60_000)]
            await clock.advance(1000)
            assert len(alarm_times(events)) == 1
        events.clear()
        clock = MockClock(T0 + 7200)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            rt.namespace(Alarmed)
            await clock.advance(1000)
            assert events == []

    async def test_overdue_alarms_of_many_objects(self, tmp_path: Path, events: Events) -> None:
        """Every object's overdue alarm runs at start-up, in the order they were due."""
        clock = MockClock(T0)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            ns = rt.namespace(Alarmed)
            for i in (3, 1, 2):
                await ns.get_by_name(f"o{i}").arm(T0_MS + i * 1000)
        events.clear()
        clock = MockClock(T0 + 100)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            rt.namespace(Alarmed)
            await clock.advance(0)
            assert [e[1] for e in events if e[0] == "init"] == ["o1", "o2", "o3"]

    async def test_alarm_waits_for_its_namespace(self, tmp_path: Path, events: Events) -> None:
        """Alarms of a namespace not registered on the new runtime do not run until it is."""
        clock = MockClock(T0)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            await rt.namespace(Alarmed, name="LATE").get_by_name("p").arm(T0_MS + 1000)
        events.clear()
        clock = MockClock(T0 + 100)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            await clock.advance(10)
            assert events == []
            rt.namespace(Alarmed, name="LATE")
            await clock.advance(0)
            assert alarm_times(events) == [110.0]

    async def test_failed_commit_leaves_nothing_after_restart(self, tmp_path: Path, events: Events) -> None:
        """An alarm whose commit failed does not come back after a restart."""
        clock = MockClock(T0)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            stub = rt.namespace(Alarmed).get_by_name("p")
            fail_next_commit(stub)
            with pytest.raises(durable.ObjectResetError):
                await stub.arm(T0_MS + 1000)
        clock = MockClock(T0 + 100)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            rt.namespace(Alarmed)
            await clock.advance(100)
            assert alarm_times(events) == []
        with sqlite3.connect(tmp_path / "durable-meta.sqlite") as meta:
            assert meta.execute("SELECT count(*) FROM alarms").fetchone() == (0,)
        meta.close()

    async def test_deleted_alarm_stays_deleted_after_restart(self, tmp_path: Path, events: Events) -> None:
        """An alarm deleted before shutdown does not run after a restart."""
        clock = MockClock(T0)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            stub = rt.namespace(Alarmed).get_by_name("p")
            await stub.arm(T0_MS + 1000)
            await stub.disarm()
        clock = MockClock(T0 + 100)
        async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
            rt.namespace(Alarmed)
            await clock.advance(100)
            assert alarm_times(events) == []

    def test_namespace_registered_before_the_loop_runs(self, tmp_path: Path, events: Events) -> None:
        """A persisted runtime whose namespace is registered outside any event loop still runs its overdue alarms."""
        fired = asyncio.Event()

        class Signals(Alarmed):
            async def outcome(self, info: durable.AlarmInfo) -> None:
                fired.set()

        async def first() -> None:
            clock = MockClock(T0)
            async with durable.Runtime(path=tmp_path, clock=clock, vars={"events": events, "clock": clock}) as rt:
                await rt.namespace(Signals).get_by_name("p").arm(T0_MS + 1000)

        async def second(rt: durable.Runtime) -> None:
            async with rt:
                await fired.wait()  # the real clock fires the overdue alarm without help

        run(first())
        # A real clock: T0 is long past. Registration happens with no running loop.
        rt = durable.Runtime(path=tmp_path, vars={"events": events, "clock": MockClock(T0)})  # env.clock: offsets only
        rt.namespace(Signals)
        run(second(rt))
        assert alarm_times(events) == [0.0]


class NoInfo(durable.DurableObject):
    """A handler that declares no ``info`` parameter, as a port of ``async alarm() {}`` would."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm(self) -> None:
        await self.ctx.storage.put("runs", ((await self.ctx.storage.get("runs")) or 0) + 1)

    async def runs(self) -> Any:
        return await self.ctx.storage.get("runs")


async def test_an_alarm_handler_may_declare_no_info_parameter() -> None:
    """docs/api.md: handlers "may declare fewer parameters". It runs once, and is not retried."""
    clock = MockClock(T0)
    async with durable.Runtime(clock=clock) as rt:
        stub = rt.namespace(NoInfo).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        assert await stub.runs() == 1
        await clock.advance(600)  # a failed first try would have retried in 2 s
        assert await stub.runs() == 1
        assert await run_in_object(stub, lambda obj, ctx: ctx.storage.get_alarm()) is None


def run(coro: Any) -> None:
    """Run ``coro`` on a private event loop (for the test that needs code outside any loop)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()
