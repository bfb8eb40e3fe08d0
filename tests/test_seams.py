"""The named interfaces between runtime, hosts, scheduler and gates (issue 12 item 2).

Each class is used here through what it offers the others, with the others replaced by small
fakes: the scheduler runs with no runtime, the gate is read through ``idle``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable._alarms import AlarmScheduler
from durable._directory import MemoryDirectory
from durable._gates import InputGate
from durable._object import bind
from durable.testing import MockClock


class _FakeHost:
    """What the scheduler uses of a host: ``invoke`` and ``drop_alarm``."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.id = "fake"

    def invoke(self, kind: str, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        self.calls.append((kind, args[0].retry_count, args[0].scheduled_time))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def drop_alarm(self, scheduled_ms: int) -> None:  # pragma: no cover - no give-up here
        raise AssertionError("not expected")


class TestSchedulerAlone:
    """AlarmScheduler(clock, index, lookup, stored_alarm) needs no Runtime."""

    async def test_delivers_through_lookup(self) -> None:
        """A scheduled alarm is delivered to the host its lookup returns, when the clock reaches it."""
        clock = MockClock(start=1000.0)
        host = _FakeHost()
        looked_up: list[tuple[str, str]] = []

        def lookup(key: tuple[str, str]) -> Any:
            looked_up.append(key)
            return host

        scheduler = AlarmScheduler(clock, MemoryDirectory(), lookup, lambda key: None)
        scheduler.attach_loop()
        assert scheduler.armed
        scheduler.after_commit(("N", "ab"), 1_005_000)
        await clock.advance(4)
        assert host.calls == []
        await clock.advance(1)
        assert looked_up == [("N", "ab")]
        assert host.calls == [("alarm", 0, 1_005_000)]
        await scheduler.stop()

    async def test_namespace_bound_reads_the_stored_alarm(self) -> None:
        """Persisted index rows are checked with stored_alarm; a row whose object has none is dropped."""

        class Index(MemoryDirectory):
            def __init__(self) -> None:
                super().__init__()
                self.dropped: list[tuple[str, str]] = []

            def alarm_rows(self) -> list[tuple[str, str, int]]:
                return [("N", "aa", 5), ("N", "bb", 7)]

            def unindex_alarm(self, key: tuple[str, str]) -> None:
                self.dropped.append(key)

        index = Index()
        stored = {("N", "aa"): None, ("N", "bb"): 4 * 10**12}
        scheduler = AlarmScheduler(MockClock(), index, lambda key: None, stored.__getitem__)
        scheduler.attach_loop()
        scheduler.namespace_bound("N")
        assert index.dropped == [("N", "aa")]
        await scheduler.stop()


class TestGateAndRuntimeSurface:
    """The small public-within-the-package surface that replaced private reads."""

    async def test_gate_idle(self) -> None:
        """InputGate.idle is False while a lock is held and in the loop turn it is released
        (``reopening``: the lock holder's caller goes first), True again from the next."""
        gate = InputGate()
        states = [gate.idle]
        lock, _ = gate.close_for("test")
        states.append(gate.idle)
        gate.unlock(lock)
        states.append(gate.idle)
        await asyncio.sleep(0)
        states.append(gate.idle)
        assert states == [True, False, False, True]

    async def test_runtime_loop_closed_armed(self) -> None:
        """Runtime.loop is the loop it was opened on, alarm_timers.armed True there; closed turns True at aclose()."""
        rt = durable.Runtime()
        assert (rt.loop, rt.alarm_timers.armed, rt.closed) == (None, False, False)
        async with rt:
            assert (rt.loop, rt.alarm_timers.armed) == (asyncio.get_running_loop(), True)
        assert rt.closed
        with pytest.raises(durable.RuntimeClosedError):
            rt.check_open()

    def test_env_bind(self) -> None:
        """_object.bind adds a binding and refuses a second one; a binding named "bind" is not hidden."""
        env = durable.Env()
        bind(env, "X", 1)
        bind(env, "bind", 2)
        assert (env.X, env.bind) == (1, 2)
        with pytest.raises(ValueError, match="already has a binding named 'X'"):
            bind(env, "X", 2)
