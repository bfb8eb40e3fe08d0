"""An adversarial sweep of the testing toolkit (``durable.testing``, docs/testing.md): what it does
at its edges, each case a regression test of a misbehaviour the sweep found.

Every test has a pytest timeout, so a hang fails instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock, run_alarm

from helpers import settle

pytestmark = pytest.mark.timeout(30)

T0 = 1_700_000_000
T0_MS = T0 * 1000


class Again(durable.DurableObject):
    """An alarm handler that counts its runs, fails if ``opts["fail"]``, and sets the alarm again at
    ``opts["next_ms"](now_ms)`` (the mutable ``opts`` of the runtime's vars, changed by each test)."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def runs(self) -> int:
        return await self.ctx.storage.get("runs") or 0

    async def alarm_time(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.seen.append((info.retry_count, self.ctx.now_ms() - T0_MS))
        await self.ctx.storage.put("runs", await self.runs() + 1)
        if self.env.opts["fail"]:
            raise ConnectionError("down")
        following = self.env.opts["next_ms"](self.ctx.now_ms())
        if following is not None:
            await self.ctx.storage.set_alarm(following)


@pytest.fixture
def clock() -> MockClock:
    return MockClock(T0)


@pytest.fixture
def env() -> dict[str, Any]:
    return {"seen": [], "opts": {"fail": False, "next_ms": lambda now: None}}


@pytest.fixture
async def rt(clock: MockClock, env: dict[str, Any]) -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime(clock=clock, vars=env) as runtime:
        yield runtime


@pytest.fixture
def stub(rt: durable.Runtime) -> durable.Stub[Again]:
    return rt.namespace(Again).get_by_name("a")


@pytest.fixture
def quiet_alarm_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.CRITICAL, logger="durable"):
        yield caplog


class TestAdvanceWithSelfSettingAlarms:
    async def test_alarm_set_to_now_by_its_handler_stops_advance_with_an_error(
        self, stub: durable.Stub[Again], env: dict[str, Any], clock: MockClock
    ) -> None:
        """A handler that sets its alarm to ctx.now_ms() again runs at once, forever (workerd: "can
        loop"); mock time never moves, so advance() used to spin without returning. It now raises
        after MockClock.SAME_INSTANT_LIMIT runs at one instant, naming the alarm."""
        env["opts"]["next_ms"] = lambda now: now
        await stub.arm(T0_MS + 1000)
        with pytest.raises(RuntimeError, match=r"the alarm of Again/[0-9a-f]{64} fell due 1000 times"):
            await clock.advance(5)
        assert await stub.runs() == MockClock.SAME_INSTANT_LIMIT
        assert clock.time() == T0 + 1  # time stopped where the loop was
        assert await stub.alarm_time() == T0_MS + 1000  # the alarm stays set (the timer is pending)

    async def test_alarm_set_in_the_past_by_its_handler_is_the_same_loop(
        self, stub: durable.Stub[Again], env: dict[str, Any], clock: MockClock
    ) -> None:
        """An earlier time is clamped to now, as in workerd: the same loop, the same error."""
        env["opts"]["next_ms"] = lambda now: now - 60_000
        await stub.arm(T0_MS)
        with pytest.raises(RuntimeError, match="fell due 1000 times"):
            await clock.advance(0)

    async def test_a_short_burst_at_one_instant_is_allowed(
        self, stub: durable.Stub[Again], env: dict[str, Any], clock: MockClock
    ) -> None:
        """A handler that drains work in batches, re-arming at now a bounded number of times, runs
        every batch within one advance()."""
        env["opts"]["next_ms"] = lambda now: now if len(env["seen"]) < 50 else None
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        assert await stub.runs() == 50
        assert await stub.alarm_time() is None

    async def test_a_loop_that_moves_time_runs_to_the_target(
        self, stub: durable.Stub[Again], env: dict[str, Any], clock: MockClock
    ) -> None:
        """Re-arming 1 ms ahead is a loop of the user's making that ends with the window: no error."""
        env["opts"]["next_ms"] = lambda now: now + 1
        await stub.arm(T0_MS + 1)
        await clock.advance(2)  # 2000 runs, none two at one instant
        assert await stub.runs() == 2000

    async def test_many_objects_due_at_one_instant_are_not_a_loop(
        self, rt: durable.Runtime, env: dict[str, Any], clock: MockClock
    ) -> None:
        """The limit counts one object's alarm: 1,500 objects due at the same time all run."""
        namespace = rt.namespace(Again)
        for i in range(1500):
            await namespace.get_by_name(f"o{i}").arm(T0_MS + 1000)
        await clock.advance(1)
        assert len(env["seen"]) == 1500


class TestRetriesUnderAdvance:
    async def test_backoff_follows_workerd(
        self,
        stub: durable.Stub[Again],
        env: dict[str, Any],
        clock: MockClock,
        quiet_alarm_logs: pytest.LogCaptureFixture,
    ) -> None:
        """workerd's backoff for user errors (cloudflare-semantics.md section 6): 2, 4, 8, 16, 32, 64 s
        after each failure, 7 attempts, then deleted. (Sweep check; it held.)"""
        env["opts"]["fail"] = True
        await stub.arm(T0_MS)
        await clock.advance(1000)
        assert env["seen"] == [(0, 0), (1, 2000), (2, 6000), (3, 14000), (4, 30000), (5, 62000), (6, 126000)]
        assert await stub.alarm_time() is None


class TestRunAlarmWhileItsHandlerRuns:
    @pytest.mark.parametrize("turns", range(8))
    async def test_alarm_due_now_then_run_alarm(
        self, stub: durable.Stub[Again], env: dict[str, Any], clock: MockClock, turns: int
    ) -> None:
        """An alarm set to now starts on its own on the next turns of the loop; run_alarm() soon
        after used to raise RuntimeError ("already running") when it came while that run was in
        progress. Now, whichever comes first runs the alarm, once, and nothing raises: run_alarm()
        returns True if it ran it, False if the timer had (it waits for that run to end)."""
        await stub.arm(T0_MS)
        await settle(turns)
        ran = await run_alarm(stub)
        assert env["seen"] == [(0, 0)]
        assert await stub.alarm_time() is None
        assert await run_alarm(stub) is False
        await clock.advance(10)
        assert env["seen"] == [(0, 0)]
        assert isinstance(ran, bool)

    async def test_waits_for_the_running_handler_then_runs_what_it_set(
        self, rt: durable.Runtime, env: dict[str, Any], clock: MockClock
    ) -> None:
        """One alarm() at a time: run_alarm() during a run waits for it, then runs the alarm that run
        set (as the scheduler runs an alarm that fell due meanwhile when the handler ends)."""
        release = asyncio.Event()

        class Slow(Again):
            async def alarm(self, info: durable.AlarmInfo) -> None:
                self.env.seen.append(info.scheduled_time)
                if info.scheduled_time == T0_MS:
                    await self.ctx.storage.set_alarm(T0_MS + 999_000)
                    await release.wait()

        stub = rt.namespace(Slow).get_by_name("a")
        await stub.arm(T0_MS)
        advancing = asyncio.create_task(clock.advance(0))
        await settle(20)
        running = asyncio.create_task(run_alarm(stub))
        await settle(20)
        assert not running.done()  # waiting for the handler
        release.set()
        assert await running is True
        await advancing
        assert env["seen"] == [T0_MS, T0_MS + 999_000]
        assert await stub.alarm_time() is None

    async def test_from_the_running_handler_itself_is_refused(
        self, rt: durable.Runtime, env: dict[str, Any], clock: MockClock
    ) -> None:
        """From the handler's own code, waiting would wait for itself: RuntimeError at once."""

        class Selfish(Again):
            async def alarm(self, info: durable.AlarmInfo) -> None:
                try:
                    await run_alarm(self.env.NS.get(self.ctx.id))
                except RuntimeError as exc:
                    self.env.seen.append(str(exc))

        rt.namespace(Selfish, name="NS")
        stub = rt.env.NS.get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1)
        assert len(env["seen"]) == 1
        assert "called from the code of the object whose alarm() handler is running" in env["seen"][0]
