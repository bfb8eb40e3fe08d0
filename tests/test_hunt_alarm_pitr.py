"""Alarms and point-in-time recovery: what a fidelity and robustness hunt found.

Each test fails without the fix it names (see CHANGELOG.md); the workerd measurements are
quoted where workerd has the behaviour (its local back-end has no point-in-time recovery: those
follow Cloudflare's documentation, docs/recovery.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import durable
import durable.testing
from durable.testing import MockClock

T0 = 1_700_000_000


class Clocked(durable.DurableObject):
    """Records each run of its alarm in its storage."""

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def set_alarm_at(self, ms: int) -> None:
        await self.ctx.storage.set_alarm(ms)

    async def delete_alarm(self) -> None:
        await self.ctx.storage.delete_alarm()

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        await self.ctx.storage.put("ran", info.scheduled_time)


_KILLED_AFTER_THE_RESTORE = """
import asyncio, os, sys
import durable
import durable._history
sys.path.insert(0, sys.argv[2])
from durable.testing import MockClock
from test_hunt_alarm_pitr import Clocked, T0

begin = durable._history.History.begin_session

def begin_then_die(self, db, *args):
    restored = begin(self, db, *args)
    if restored:
        os._exit(9)  # killed once the restored state is committed, before the scheduler heard of it
    return restored

durable._history.History.begin_session = begin_then_die

async def main():
    async with durable.Runtime(sys.argv[1], clock=MockClock(start=T0 + 10), point_in_time_recovery=True) as rt:
        await rt.namespace(Clocked).get_by_name("a").get("ran")  # the start applies the restore, and dies

asyncio.run(main())
"""


class TestRestoredAlarmSurvivesACrash:
    @pytest.mark.timeout(120)
    async def test_kill_nine_right_after_a_restore_that_brings_an_alarm_back(self, tmp_path: Path) -> None:
        """``kill -9`` once a restore to a state with an alarm has committed: the alarm still runs.

        The runtime's alarm index (which lists, as a superset, the objects to wake after a restart)
        learnt of the restored alarm only after the restore had committed: killed between the two,
        the restarted runtime never woke the object, and its restored alarm never ran.
        """
        path = tmp_path / "state"
        async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Clocked).get_by_name("a")
            await stub.set_alarm_at((T0 + 100) * 1000)
            mark = await stub.bookmark()
            await stub.delete_alarm()
            await stub.restore(mark)
        here = Path(__file__).resolve().parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_THE_RESTORE, str(path), str(here)], env=env, timeout=60, check=False
        )
        assert done.returncode == 9, done
        clock = MockClock(start=T0 + 20)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Clocked)
            await clock.advance(100)  # past the restored alarm, without calling the object
            assert await ns.get_by_name("a").get("ran") == (T0 + 100) * 1000


class _Odd(int):
    """An ``int`` subclass whose ``__int__`` lies: Pyodide reads its own value, as durable must."""

    def __int__(self) -> int:
        return 1


class _Odder(float):
    def __float__(self) -> float:
        return 1.0


class TestNumberSubclassesAreNumbers:
    """``set_alarm`` refused an ``int`` or ``float`` subclass (an ``IntEnum``, ``numpy.float64``)
    with ``TypeError: ... parameter 1 is not of type 'date'``, where Pyodide passes any such value
    to JavaScript as a number (its own value, not an overridden ``__int__`` / ``__float__``), and
    ``get_bookmark_for_time`` read an overridden ``__int__``. A ``bool`` stays refused (Pyodide
    makes it a boolean)."""

    async def test_set_alarm_takes_int_and_float_subclasses(self) -> None:
        import enum

        later = (T0 + 60) * 1000

        class When(enum.IntEnum):
            LATER = later

        async with durable.Runtime(clock=MockClock(start=T0)) as rt:
            stub = rt.namespace(Clocked).get_by_name("a")

            def set_then_get(when: Any) -> Any:
                async def run(_: Any, ctx: durable.State) -> Any:
                    await ctx.storage.set_alarm(when)
                    return await ctx.storage.get_alarm()

                return durable.testing.run_in_object(stub, run)

            assert await set_then_get(When.LATER) == later
            assert await set_then_get(_Odder(later + 1000.5)) == later + 1000
            assert await set_then_get(_Odd(later + 2000)) == later + 2000

            async def in_transaction(_: Any, ctx: durable.State) -> Any:
                async def body(txn: Any) -> Any:
                    await txn.set_alarm(_Odd(later + 3000))
                    return await txn.get_alarm()

                return await ctx.storage.transaction(body)

            assert await durable.testing.run_in_object(stub, in_transaction) == later + 3000
            with pytest.raises(TypeError, match=r"parameter 1 is not of type 'date'\.$"):
                await set_then_get(True)

    async def test_get_bookmark_for_time_reads_a_subclass_own_value(self) -> None:
        clock = MockClock(start=T0)
        async with durable.Runtime(clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Clocked).get_by_name("a")
            await stub.put("k", 1)
            first = await stub.bookmark()
            await clock.advance(10)
            await stub.put("k", 2)

            async def bookmark_for(_: Any, ctx: durable.State) -> Any:
                return await ctx.storage.get_bookmark_for_time(_Odd((T0 + 5) * 1000))

            # (its __int__ says 1 ms after the epoch: more than 30 days ago, a ValueError)
            assert await durable.testing.run_in_object(stub, bookmark_for) == first


class TestARestoreThatKeepsTheAlarm:
    async def test_a_call_between_the_abort_and_the_retry_keeps_the_retry(self) -> None:
        """A restore forced (``abort()``) by a call while ``alarm()`` runs, to a bookmark that holds
        the same alarm: the attempt failed, and its retry runs on the restored storage with
        ``retry_count`` 1 (docs/recovery.md). When another call started the object before the
        retry, the restore was announced to the scheduler as a new alarm: it replaced the retry,
        and the handler ran again as attempt 0. A restore that leaves the alarm as it was now
        announces nothing, as a commit that leaves it unchanged does."""
        import asyncio

        runs: list[tuple[str, int]] = []
        go = asyncio.Event()

        class Waits(Clocked):
            async def alarm(self, info: durable.AlarmInfo) -> None:
                runs.append((await self.ctx.storage.get("mode"), info.retry_count))
                if await self.ctx.storage.get("mode") == "wait":
                    await go.wait()

            async def restore_and_abort(self, bookmark: str) -> None:
                await self.ctx.storage.on_next_session_restore_bookmark(bookmark)
                self.ctx.abort("restoring")

        clock = MockClock(start=T0)
        async with durable.Runtime(clock=clock, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Waits)
            stub = ns.get_by_name("a")
            await stub.put("mode", "wait")
            await stub.set_alarm_at(T0 * 1000 + 50)
            bookmark = await stub.bookmark()
            advance = asyncio.ensure_future(clock.advance(300))
            async with asyncio.timeout(5):
                while not runs:
                    await asyncio.sleep(0.001)
            with pytest.raises(durable.ObjectResetError):
                await stub.restore_and_abort(bookmark)
            stub = ns.get_by_name("a")
            assert await stub.get("mode") == "wait"  # the restored instance, started before the retry
            go.set()
            await advance
            assert runs == [("wait", 0), ("wait", 1)]


class TestAClockThatWentBack:
    async def test_get_bookmark_for_time_now_names_the_current_state(self, tmp_path: Path) -> None:
        """A persisted runtime reopened with an earlier clock (a ``MockClock`` started where the
        last run started, a wall clock stepped back): the history's records are stamped ahead of
        the clock (they never go back), and ``get_bookmark_for_time(now)`` named the state before
        the first of them, the empty one: restoring it lost every write, this session's too. A
        time is now read as so long before the history's own now."""
        path = tmp_path / "state"
        clock = MockClock(start=T0)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Clocked).get_by_name("a")
            await stub.put("k", 1)
            await clock.advance(3600)
            await stub.put("k", 2)
        clock = MockClock(start=T0)  # an hour behind the history
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Clocked)
            stub = ns.get_by_name("a")
            await stub.put("k", 3)

            async def bookmark_for(when: int) -> Any:
                async def run(_: Any, ctx: durable.State) -> str:
                    return await ctx.storage.get_bookmark_for_time(when)

                return await durable.testing.run_in_object(ns.get_by_name("a"), run)

            now = await bookmark_for(clock.time_ms())
            earlier = await bookmark_for(clock.time_ms() - 1800_000)  # half an hour before the last commit
            await stub.restore(earlier)
            await durable.testing.evict(stub)
            assert await stub.get("k") == 1
            await stub.restore(now)
            await durable.testing.evict(stub)
            assert await stub.get("k") == 3
            with pytest.raises(ValueError, match="in the future"):
                await bookmark_for(clock.time_ms() + 1)


class _Ticking(MockClock):
    """A ``MockClock`` whose every read moves it 1 ms on while ``ticking`` (a wall clock read twice)."""

    ticking = False

    def time(self) -> float:
        if self.ticking:
            self.extra = getattr(self, "extra", 0.0) + 0.001
        return super().time() + getattr(self, "extra", 0.0)


class TestAClockReadOnce:
    async def test_a_time_just_before_a_commit_names_the_state_before_it(self) -> None:
        """``get_bookmark_for_time`` read the clock twice (the runtime's now, then the history's own
        now for the clock-went-back rule): a clock that moved on in between shifted the time asked
        for by as much, and a time 1 ms before a commit named the state after it."""
        clock = _Ticking(start=T0)
        async with durable.Runtime(clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Clocked).get_by_name("a")
            await stub.put("k", 1)
            await clock.advance(1)
            committed = clock.time_ms()
            await stub.put("k", 2)
            await clock.advance(1)

            async def run(_: Any, ctx: durable.State) -> str:
                clock.ticking = True
                try:
                    return await ctx.storage.get_bookmark_for_time(committed - 1)
                finally:
                    clock.ticking = False

            before = await durable.testing.run_in_object(stub, run)
            await stub.restore(before)
            await durable.testing.evict(stub)
            assert await stub.get("k") == 1
