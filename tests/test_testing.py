"""The testing toolkit: run_in_object, run_alarm, evict, list_ids, fail_next_commit and Runtime.reset()."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock, evict, fail_next_commit, list_ids, run_alarm, run_in_object

from helpers import settle

T0 = 1_700_000_000
T0_MS = T0 * 1000


class Thing(durable.DurableObject):
    """Counts constructions in env.built; stores values; can set an alarm whose handler may fail."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(ctx.id.name)
        self.memory: list[Any] = []

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm_time(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def remember(self, value: Any) -> int:
        self.memory.append(value)
        return len(self.memory)

    async def wait(self) -> None:
        await self.env.release.wait()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.alarms.append(info)
        if self.env.failures and info.retry_count < self.env.failures[0]:
            raise RuntimeError(f"attempt {info.retry_count} failed")


@pytest.fixture
def clock() -> MockClock:
    return MockClock(T0)


@pytest.fixture
def env() -> dict[str, Any]:
    return {"built": [], "alarms": [], "failures": [], "release": asyncio.Event()}


@pytest.fixture
async def rt(clock: MockClock, env: dict[str, Any]) -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime(clock=clock, vars=env) as runtime:
        yield runtime


@pytest.fixture
def ns(rt: durable.Runtime) -> durable.Namespace[Thing]:
    return rt.namespace(Thing)


@pytest.fixture
def quiet_alarm_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the scheduler's warnings about failed attempts instead of printing them."""
    with caplog.at_level(logging.WARNING, logger="durable"):
        yield caplog


class TestRunInObject:
    async def test_gets_instance_and_ctx(self, ns: durable.Namespace[Thing]) -> None:
        """fn receives the live instance and its ctx, and its result is returned."""
        stub = ns.get_by_name("a")
        await stub.remember("x")

        def look(obj: durable.DurableObject, ctx: durable.State) -> tuple[Any, ...]:
            assert isinstance(obj, Thing)
            return obj.memory, ctx.id == stub.id, obj.ctx is ctx

        assert await run_in_object(stub, look) == (["x"], True, True)

    async def test_async_fn_is_awaited(self, ns: durable.Namespace[Thing]) -> None:
        """An async fn is awaited and its writes are durable when run_in_object returns."""
        stub = ns.get_by_name("a")

        async def write(obj: durable.DurableObject, ctx: durable.State) -> str:
            await ctx.storage.put("k", "v")
            return "done"

        assert await run_in_object(stub, write) == "done"
        await evict(stub)
        assert await stub.get("k") == "v"

    async def test_result_is_not_copied(self, ns: durable.Namespace[Thing]) -> None:
        """The result is the object itself, not a structured clone (anything may be returned)."""
        stub = ns.get_by_name("a")
        obj = await run_in_object(stub, lambda o, ctx: o)
        assert isinstance(obj, Thing)
        assert await run_in_object(stub, lambda o, ctx: o) is obj

    async def test_constructs_the_object(self, ns: durable.Namespace[Thing], env: dict[str, Any]) -> None:
        """The object is constructed first if it is not live."""
        await run_in_object(ns.get_by_name("fresh"), lambda o, ctx: None)
        assert env["built"] == ["fresh"]

    async def test_exception_propagates(self, ns: durable.Namespace[Thing]) -> None:
        """An exception raised by fn reaches the caller with its class and message."""

        def boom(obj: durable.DurableObject, ctx: durable.State) -> None:
            raise KeyError("nope")

        with pytest.raises(KeyError, match="nope"):
            await run_in_object(ns.get_by_name("a"), boom)

    async def test_goes_through_input_gate(self, ns: durable.Namespace[Thing]) -> None:
        """fn waits while block_concurrency_while() holds the object."""
        stub = ns.get_by_name("a")
        order: list[str] = []
        release = asyncio.Event()

        async def critical() -> None:
            await release.wait()
            order.append("critical")

        await run_in_object(stub, lambda o, ctx: ctx.block_concurrency_while(critical) and None)
        probing = asyncio.create_task(run_in_object(stub, lambda o, ctx: order.append("probe")))
        await settle(50)
        assert order == []
        release.set()
        await probing
        assert order == ["critical", "probe"]

    async def test_type_errors(self, ns: durable.Namespace[Thing]) -> None:
        """A non-stub or a non-callable is a TypeError."""
        with pytest.raises(TypeError, match="takes a durable.Stub"):
            await run_in_object(ns, lambda o, ctx: None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes a callable"):
            await run_in_object(ns.get_by_name("a"), 42)  # type: ignore[arg-type]


class TestRunAlarm:
    async def test_false_without_alarm(self, ns: durable.Namespace[Thing], env: dict[str, Any]) -> None:
        """run_alarm() returns False, and runs nothing, when no alarm is set."""
        assert await run_alarm(ns.get_by_name("a")) is False
        assert env["alarms"] == []

    async def test_runs_future_alarm_now(
        self, ns: durable.Namespace[Thing], env: dict[str, Any], clock: MockClock
    ) -> None:
        """A pending alarm runs at once with a real AlarmInfo, and is cleared."""
        stub = ns.get_by_name("a")
        await stub.arm(T0_MS + 3_600_000)
        assert await run_alarm(stub) is True
        assert env["alarms"] == [durable.AlarmInfo(retry_count=0, scheduled_time=T0_MS + 3_600_000)]
        assert await stub.alarm_time() is None
        assert await run_alarm(stub) is False

    async def test_a_due_alarm_runs_once_whether_run_alarm_comes_before_or_after_it_starts(
        self, ns: durable.Namespace[Thing], env: dict[str, Any], clock: MockClock
    ) -> None:
        """An alarm set for now starts on its own; a run_alarm() before that runs it; it runs once.

        docs/testing.md said such an alarm "is already running" when run_alarm() is called, so that
        run_alarm() always raised; right after set_alarm() it runs the alarm itself, and only once.
        """
        first, second = ns.get_by_name("a"), ns.get_by_name("b")
        await first.arm(T0_MS)
        assert await run_alarm(first) is True  # before the scheduler started it
        await second.arm(T0_MS)
        await settle(50)  # the scheduler starts it on its own
        assert env["alarms"] == [durable.AlarmInfo(retry_count=0, scheduled_time=T0_MS)] * 2
        await clock.advance(60)
        assert len(env["alarms"]) == 2  # neither ran twice
        assert await run_alarm(second) is False  # it ran and is cleared

    async def test_timer_does_not_run_it_again(
        self, ns: durable.Namespace[Thing], env: dict[str, Any], clock: MockClock
    ) -> None:
        """Once run by run_alarm(), the alarm does not also run when its time comes."""
        stub = ns.get_by_name("a")
        await stub.arm(T0_MS + 60_000)
        await run_alarm(stub)
        await clock.advance(3600)
        assert len(env["alarms"]) == 1

    async def test_failure_raises_and_schedules_retry(
        self,
        ns: durable.Namespace[Thing],
        env: dict[str, Any],
        clock: MockClock,
        quiet_alarm_logs: pytest.LogCaptureFixture,
    ) -> None:
        """A failing handler's exception is raised, the alarm stays set, and its retry runs 2 s later."""
        env["failures"].append(1)
        stub = ns.get_by_name("a")
        await stub.arm(T0_MS + 60_000)
        with pytest.raises(RuntimeError, match="attempt 0 failed") as info:
            await run_alarm(stub)
        assert getattr(info.value, "remote", False) is True
        assert await stub.alarm_time() == T0_MS + 60_000
        await clock.advance(1.999)
        assert len(env["alarms"]) == 1
        await clock.advance(0.001)
        assert [i.retry_count for i in env["alarms"]] == [0, 1]
        assert await stub.alarm_time() is None
        await clock.advance(3600)
        assert len(env["alarms"]) == 2

    async def test_continues_the_retry_count(
        self,
        ns: durable.Namespace[Thing],
        env: dict[str, Any],
        clock: MockClock,
        quiet_alarm_logs: pytest.LogCaptureFixture,
    ) -> None:
        """run_alarm() on an alarm that already failed passes the next retry_count."""
        env["failures"].append(100)
        stub = ns.get_by_name("a")
        await stub.arm(T0_MS)
        await clock.advance(0)
        with pytest.raises(RuntimeError, match="attempt 1 failed"):
            await run_alarm(stub)
        assert [(i.retry_count, i.is_retry) for i in env["alarms"]] == [(0, False), (1, True)]

    async def test_gives_up_after_seven_attempts(
        self,
        ns: durable.Namespace[Thing],
        env: dict[str, Any],
        clock: MockClock,
        quiet_alarm_logs: pytest.LogCaptureFixture,
    ) -> None:
        """Seven failing run_alarm() calls exhaust the retries: the alarm is deleted."""
        env["failures"].append(100)
        stub = ns.get_by_name("a")
        await stub.arm(T0_MS + 60_000)
        for attempt in range(7):
            with pytest.raises(RuntimeError, match=f"attempt {attempt} failed"):
                await run_alarm(stub)
        assert await stub.alarm_time() is None
        assert await run_alarm(stub) is False
        await clock.advance(10_000)
        assert len(env["alarms"]) == 7

    async def test_handler_may_set_new_alarm(self, rt: durable.Runtime, env: dict[str, Any], clock: MockClock) -> None:
        """An alarm the handler sets is kept, and runs at its own time."""

        class Again(Thing):
            async def alarm(self, info: durable.AlarmInfo) -> None:
                await super().alarm(info)
                if info.scheduled_time == T0_MS + 60_000:
                    await self.ctx.storage.set_alarm(T0_MS + 120_000)

        stub = rt.namespace(Again).get_by_name("a")
        await stub.arm(T0_MS + 60_000)
        assert await run_alarm(stub)
        assert await stub.alarm_time() == T0_MS + 120_000
        await clock.advance(120)
        assert [i.scheduled_time for i in env["alarms"]] == [T0_MS + 60_000, T0_MS + 120_000]

    async def test_type_error(self, ns: durable.Namespace[Thing]) -> None:
        """A non-stub is a TypeError."""
        with pytest.raises(TypeError, match="run_alarm"):
            await run_alarm("stub")  # type: ignore[arg-type]


class TestEvict:
    async def test_keeps_storage_rebuilds_instance(self, ns: durable.Namespace[Thing], env: dict[str, Any]) -> None:
        """evict() drops in-memory state; storage stays; the next call runs the constructor."""
        stub = ns.get_by_name("a")
        await stub.put("k", 1)
        assert await stub.remember("x") == 1
        await evict(stub)
        assert await stub.remember("y") == 1
        assert await stub.get("k") == 1
        assert env["built"] == ["a", "a"]

    async def test_commits_pending_writes(self, ns: durable.Namespace[Thing]) -> None:
        """Writes made but not yet committed are committed, not lost."""
        stub = ns.get_by_name("a")

        async def write_then_evict(obj: durable.DurableObject, ctx: durable.State) -> None:
            ctx.storage.put("k", "kept")

        await run_in_object(stub, write_then_evict)
        await evict(stub)
        assert await stub.get("k") == "kept"

    async def test_waits_for_a_running_call(self, ns: durable.Namespace[Thing], env: dict[str, Any]) -> None:
        """evict() waits for a call in flight, which completes in the old instance; then it drops it.

        workerd's evict (miniflare 4, 2026-04-07: ``unsafeEvictDurableObject``, the primitive of
        vitest-pool-workers' ``evictDurableObject``) "waits for in-flight requests to drain first":
        evicting while a 500 ms call ran took ~430 ms, the call returned its result, and the next
        call ran the constructor again.
        """
        stub = ns.get_by_name("a")
        await stub.remember("x")
        waiting = asyncio.create_task(stub.wait())
        await settle(50)
        evicting = asyncio.create_task(evict(stub))
        await settle(50)
        assert not evicting.done()  # the call still runs
        env["release"].set()
        await evicting
        assert await waiting is None  # it completed, not ConnectionClosedError
        assert await stub.remember("z") == 1  # a new instance
        assert env["built"] == ["a", "a"]

    async def test_waits_for_a_running_alarm(self, rt: durable.Runtime, env: dict[str, Any], clock: MockClock) -> None:
        """An alarm handler that runs is let finish (and so succeeds: it is not retried).

        workerd (miniflare 4, 2026-04-07): evicting during a 1 s alarm handler took ~765 ms; the
        handler ended, ``getAlarm()`` then read null, and the alarm did not run again.
        """

        class Slow(durable.DurableObject):
            async def arm(self, when: int) -> None:
                await self.ctx.storage.set_alarm(when)

            async def alarm_time(self) -> int | None:
                return await self.ctx.storage.get_alarm()

            async def alarm(self, info: durable.AlarmInfo) -> None:
                self.env.alarms.append(info.retry_count)
                await self.env.release.wait()

        stub = rt.namespace(Slow).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        advancing = asyncio.create_task(clock.advance(1))
        await settle(50)
        assert env["alarms"] == [0]
        evicting = asyncio.create_task(evict(stub))
        await settle(50)
        assert not evicting.done()
        env["release"].set()
        await evicting
        await advancing
        await clock.advance(300)
        assert env["alarms"] == [0]  # succeeded once, no retry
        assert await stub.alarm_time() is None

    async def test_waits_for_wait_until_work(self, rt: durable.Runtime, env: dict[str, Any]) -> None:
        """Work passed to ``ctx.wait_until()`` ends before the instance goes.

        workerd (miniflare 4, 2026-04-07): evicting with a 1 s ``waitUntil`` pending took ~940 ms
        and the work completed.
        """
        done: list[str] = []

        class Background(durable.DurableObject):
            async def start(self) -> None:
                async def later() -> None:
                    await self.env.release.wait()
                    await self.ctx.storage.put("late", True)
                    done.append("work")

                self.ctx.wait_until(later())

            async def late(self) -> Any:
                return await self.ctx.storage.get("late")

        stub = rt.namespace(Background).get_by_name("a")
        await stub.start()
        evicting = asyncio.create_task(evict(stub))
        await settle(50)
        assert not evicting.done()
        env["release"].set()
        await evicting
        assert done == ["work"]
        assert await stub.late() is True

    async def test_gives_up_after_the_timeout(
        self, ns: durable.Namespace[Thing], env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A call that does not end makes evict() fail with workerd's message; the instance stays.

        workerd (miniflare 4, 2026-04-07) gives up after 30 s: "Error: Timed out waiting to evict
        Durable Object: it still has active references." (the timeout is shortened here).
        """
        monkeypatch.setattr(durable.testing, "_EVICT_TIMEOUT", 0.05)
        stub = ns.get_by_name("a")
        assert await stub.remember("x") == 1
        waiting = asyncio.create_task(stub.wait())
        await settle(50)
        with pytest.raises(
            TimeoutError, match=r"^Timed out waiting to evict Durable Object: it still has active references\.$"
        ):
            await evict(stub)
        env["release"].set()
        assert await waiting is None
        assert await stub.remember("y") == 2  # the same instance
        assert env["built"] == ["a"]

    async def test_from_the_objects_own_call_fails_at_once(
        self, ns: durable.Namespace[Thing], env: dict[str, Any]
    ) -> None:
        """evict() awaited by the object's own call would wait for that call: RuntimeError at once.

        (In workerd it would wait for the 30 s timeout; nothing else can end that wait.)
        """
        stub = ns.get_by_name("a")
        assert await stub.remember("x") == 1

        async def evict_self(obj: Any, ctx: durable.State) -> None:
            await evict(stub)

        with pytest.raises(RuntimeError, match=r"^evict\(\) was called from the code of the object it evicts"):
            await asyncio.wait_for(run_in_object(stub, evict_self), 5)
        assert await stub.remember("y") == 2  # not evicted, not reset
        assert env["built"] == ["a"]

    async def test_object_never_used(self, ns: durable.Namespace[Thing], env: dict[str, Any]) -> None:
        """Evicting an object that is not live is harmless."""
        await evict(ns.get_by_name("never"))
        assert env["built"] == []

    async def test_type_error(self) -> None:
        """A non-stub is a TypeError."""
        with pytest.raises(TypeError, match="evict"):
            await evict(None)  # type: ignore[arg-type]


class TestListIds:
    async def test_objects_with_storage(self, rt: durable.Runtime, ns: durable.Namespace[Thing]) -> None:
        """Objects that stored something (a value, an alarm) are listed; objects that only read are not."""
        await ns.get_by_name("kv").put("k", 1)
        await ns.get_by_name("alarm").arm(T0_MS + 60_000)
        await ns.get_by_name("reader").get("k")
        ids = await list_ids(ns)
        assert sorted(i.name or "" for i in ids) == ["alarm", "kv"]
        assert [str(i) for i in ids] == sorted(str(i) for i in ids)
        assert all(isinstance(i, durable.DurableObjectId) for i in ids)

    async def test_objects_with_sql_tables(self, ns: durable.Namespace[Thing]) -> None:
        """An object whose only storage is a SQL table is listed."""
        pytest.importorskip("durable._sql")
        await run_in_object(ns.get_by_name("sql"), lambda o, ctx: ctx.storage.sql.exec("CREATE TABLE t (x)"))
        assert [i.name for i in await list_ids(ns)] == ["sql"]

    async def test_other_namespaces_are_not_listed(self, rt: durable.Runtime, ns: durable.Namespace[Thing]) -> None:
        """Only ids of the given namespace are listed."""
        other = rt.namespace(Thing, name="OTHER")
        await other.get_by_name("x").put("k", 1)
        assert await list_ids(ns) == []
        assert [i.name for i in await list_ids(other)] == ["x"]

    async def test_deleted_objects_are_not_listed(self, ns: durable.Namespace[Thing]) -> None:
        """After delete_all() an object has no storage and is not listed."""
        stub = ns.get_by_name("a")
        await stub.put("k", 1)
        await run_in_object(stub, lambda o, ctx: ctx.storage.delete_all())
        assert await list_ids(ns) == []

    async def test_persisted_objects_after_restart(self, tmp_path: Path, env: dict[str, Any]) -> None:
        """A persisted runtime lists the objects stored by an earlier run, names included."""
        async with durable.Runtime(path=tmp_path, vars=env) as rt:
            await rt.namespace(Thing).get_by_name("kept").put("k", 1)
        async with durable.Runtime(path=tmp_path, vars=env) as rt:
            assert [i.name for i in await list_ids(rt.namespace(Thing))] == ["kept"]

    @pytest.mark.parametrize("storage", ["sqlite", "kv"])
    async def test_emptied_objects_are_not_listed_when_persisted(
        self, tmp_path: Path, env: dict[str, Any], storage: str
    ) -> None:
        """Persisted, an object emptied by delete_all() is not listed, live or after a restart
        (vitest's listDurableObjectIds would list it: docs/testing.md says why not)."""
        async with durable.Runtime(path=tmp_path, vars=env) as rt:
            ns = rt.namespace(Thing, storage=storage)
            await ns.get_by_name("kept").put("k", 1)
            await ns.get_by_name("emptied").put("k", 1)
            await run_in_object(ns.get_by_name("emptied"), lambda o, ctx: ctx.storage.delete_all())
            await run_in_object(ns.get_by_name("constructed"), lambda o, ctx: None)
            assert [i.name for i in await list_ids(ns)] == ["kept"]
        async with durable.Runtime(path=tmp_path, vars=env) as rt:
            ns = rt.namespace(Thing, storage=storage)
            assert [i.name for i in await list_ids(ns)] == ["kept"]

    async def test_type_error(self) -> None:
        """A non-namespace is a TypeError."""
        with pytest.raises(TypeError, match="list_ids"):
            await list_ids("Thing")  # type: ignore[arg-type]


class TestFailNextCommit:
    async def test_default_is_os_error_and_reset(self, ns: durable.Namespace[Thing], env: dict[str, Any]) -> None:
        """The next commit fails (OSError): the call gets a reset error, the write is rolled back."""
        stub = ns.get_by_name("a")
        await stub.remember("x")
        fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError) as info:
            await stub.put("k", 1)
        assert info.value.durable_object_reset
        assert "OSError" in str(info.value)
        assert isinstance(info.value.__cause__, OSError)
        fresh = ns.get_by_name("a")
        assert await fresh.get("k") is None
        assert await fresh.remember("y") == 1
        assert env["built"] == ["a", "a"]

    async def test_custom_exception(self, ns: durable.Namespace[Thing]) -> None:
        """The given exception is what the commit raises."""
        stub = ns.get_by_name("a")
        fail_next_commit(stub, sqlite_full := OSError(28, "No space left on device"))
        with pytest.raises(durable.ObjectResetError, match="No space left on device") as info:
            await stub.put("k", 1)
        assert info.value.__cause__ is sqlite_full

    async def test_only_the_next_commit(self, ns: durable.Namespace[Thing]) -> None:
        """Only one commit fails; later writes succeed."""
        fail_next_commit(ns.get_by_name("a"))
        with pytest.raises(durable.ObjectResetError):
            await ns.get_by_name("a").put("k", 1)
        stub = ns.get_by_name("a")
        await stub.put("k", 2)
        assert await stub.get("k") == 2

    async def test_a_second_call_replaces_the_first(self, ns: durable.Namespace[Thing]) -> None:
        """Two calls before a commit arm one failure, with the last exception (docs/testing.md)."""
        fail_next_commit(ns.get_by_name("a"), KeyError)
        fail_next_commit(ns.get_by_name("a"), ValueError("second"))
        with pytest.raises(durable.ObjectResetError, match="ValueError: second"):
            await ns.get_by_name("a").put("k", 1)
        stub = ns.get_by_name("a")
        await stub.put("k", 2)
        assert await stub.get("k") == 2

    async def test_reads_do_not_consume_it(self, ns: durable.Namespace[Thing]) -> None:
        """A call that only reads commits nothing, so the failure waits for the next write."""
        stub = ns.get_by_name("a")
        fail_next_commit(stub)
        assert await stub.get("k") is None
        with pytest.raises(durable.ObjectResetError):
            await stub.put("k", 1)

    async def test_type_errors(self, ns: durable.Namespace[Thing]) -> None:
        """A non-stub or a non-exception is a TypeError."""
        with pytest.raises(TypeError, match="fail_next_commit"):
            fail_next_commit(ns)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="an exception or an exception class"):
            fail_next_commit(ns.get_by_name("a"), "disk full")  # type: ignore[arg-type]


class TestMockClockShared:
    async def test_one_clock_drives_two_runtimes(self, clock: MockClock) -> None:
        """advance() runs the alarms of every runtime on the clock, in time order."""
        seen: list[tuple[str, int]] = []

        class Tagged(durable.DurableObject):
            async def arm(self, when: int) -> None:
                await self.ctx.storage.set_alarm(when)

            async def alarm(self, info: durable.AlarmInfo) -> None:
                seen.append((self.env.tag, self.ctx.now_ms()))

        async with (
            durable.Runtime(clock=clock, vars={"tag": "a"}) as a,
            durable.Runtime(clock=clock, vars={"tag": "b"}) as b,
        ):
            await b.namespace(Tagged).get_by_name("x").arm(T0_MS + 1000)
            await a.namespace(Tagged).get_by_name("x").arm(T0_MS + 2000)
            await clock.advance(5)
        assert seen == [("b", T0_MS + 1000), ("a", T0_MS + 2000)]


class TestRuntimeReset:
    async def test_wipes_storage_and_instances(
        self, rt: durable.Runtime, ns: durable.Namespace[Thing], env: dict[str, Any]
    ) -> None:
        """reset() deletes every object's storage and drops every instance."""
        stub = ns.get_by_name("a")
        await stub.put("k", 1)
        await stub.remember("x")
        await rt.reset()
        assert await list_ids(ns) == []
        assert await stub.get("k") is None
        assert await stub.remember("y") == 1
        assert env["built"] == ["a", "a"]

    async def test_cancels_alarms(
        self, rt: durable.Runtime, ns: durable.Namespace[Thing], env: dict[str, Any], clock: MockClock
    ) -> None:
        """Alarms set before reset() never run, and none is set afterwards."""
        await ns.get_by_name("a").arm(T0_MS + 1000)
        await ns.get_by_name("b").arm(T0_MS)
        await rt.reset()
        await clock.advance(3600)
        assert env["alarms"] == []
        assert await ns.get_by_name("a").alarm_time() is None

    async def test_cancels_pending_retries(
        self,
        rt: durable.Runtime,
        ns: durable.Namespace[Thing],
        env: dict[str, Any],
        clock: MockClock,
        quiet_alarm_logs: pytest.LogCaptureFixture,
    ) -> None:
        """An alarm waiting for its retry is gone after reset()."""
        env["failures"].append(100)
        await ns.get_by_name("a").arm(T0_MS)
        await clock.advance(1)
        await rt.reset()
        await clock.advance(3600)
        assert len(env["alarms"]) == 1

    async def test_work_in_flight_ends_with_connection_closed_and_no_alarm_failure(
        self, rt: durable.Runtime, env: dict[str, Any], clock: MockClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A call in flight gets the retryable ConnectionClosedError; a running alarm() is not retried or logged."""

        class Waiter(durable.DurableObject):
            async def wait(self) -> None:
                await self.env.release.wait()

            async def arm(self, when: int) -> None:
                await self.ctx.storage.set_alarm(when)

            async def alarm(self, info: durable.AlarmInfo) -> None:
                self.env.alarms.append(info)
                await self.env.release.wait()

        ns = rt.namespace(Waiter)
        await ns.get_by_name("alarm").arm(T0_MS)
        advance = asyncio.ensure_future(clock.advance(0))  # waits for the handler it runs
        call = asyncio.ensure_future(ns.get_by_name("call").wait())
        await settle(5)
        assert len(env["alarms"]) == 1 and not call.done() and not advance.done()
        with caplog.at_level(logging.WARNING, logger="durable"):
            await rt.reset()
            with pytest.raises(durable.ConnectionClosedError) as info:
                await call
            assert info.value.retryable is True
            await asyncio.wait_for(advance, 5)
            await clock.advance(3600)
        assert len(env["alarms"]) == 1
        assert [r.getMessage() for r in caplog.records] == []

    async def test_namespaces_stay_registered(self, rt: durable.Runtime, ns: durable.Namespace[Thing]) -> None:
        """Namespaces and the runtime stay usable; new alarms work after reset()."""
        await rt.reset()
        assert rt.namespace(Thing) is ns
        stub = ns.get_by_name("a")
        await stub.arm(T0_MS + 1000)
        assert await run_alarm(stub)

    async def test_pending_unawaited_write_is_dropped(self, rt: durable.Runtime, ns: durable.Namespace[Thing]) -> None:
        """A write not yet committed when reset() runs does not come back."""
        stub = ns.get_by_name("a")

        async def write_and_reset(obj: durable.DurableObject, ctx: durable.State) -> None:
            ctx.storage.put("k", "late")
            await rt.reset()

        with pytest.raises(durable.DurableError):
            await run_in_object(stub, write_and_reset)
        await settle(50)
        assert await ns.get_by_name("a").get("k") is None
        assert await list_ids(ns) == []

    async def test_persisted_files_removed(self, tmp_path: Path, env: dict[str, Any]) -> None:
        """A persisted runtime's object files are deleted and its alarm index emptied."""
        async with durable.Runtime(path=tmp_path, vars=env, clock=MockClock(T0)) as rt:
            ns = rt.namespace(Thing)
            await ns.get_by_name("a").put("k", 1)
            await ns.get_by_name("b").arm(T0_MS + 1000)
            await rt.reset()
            assert list(tmp_path.glob("*/*.sqlite")) == []
            assert await list_ids(ns) == []
        async with durable.Runtime(path=tmp_path, vars=env, clock=MockClock(T0 + 100)) as rt:
            clock = rt.clock
            assert isinstance(clock, MockClock)
            rt.namespace(Thing)
            await clock.advance(10)
            assert env["alarms"] == []

    async def test_closed_runtime(self, env: dict[str, Any]) -> None:
        """reset() on a closed runtime raises RuntimeClosedError."""
        rt = durable.Runtime(vars=env)
        await rt.aclose()
        with pytest.raises(durable.RuntimeClosedError):
            await rt.reset()
