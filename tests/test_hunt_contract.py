"""Contract hunt (API.md sections 2, 3, 6 and 8): what a demanding user's test would catch."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings

import durable
import durable.testing


class Later(durable.DurableObject):
    """Starts ``ctx.wait_until()`` work and returns before it has run a step."""

    RAN: list[str] = []

    async def later(self, tag: str) -> None:
        await asyncio.sleep(0)
        await self.ctx.storage.put(tag, 1)
        Later.RAN.append(tag)

    async def start(self, tag: str) -> None:
        self.ctx.wait_until(self.later(tag))

    async def start_and_abort(self, tag: str) -> None:
        self.ctx.wait_until(self.later(tag))
        self.ctx.abort("stop")

    async def keys(self) -> list[str]:
        return list(await self.ctx.storage.list())


def _unawaited(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "never awaited" in str(w.message)]


class TestWaitUntilCancelledBeforeItStarts:
    """A reset (``rt.reset()``, ``ctx.abort()``) that cancels ``wait_until`` work before its first
    step closes the coroutine: Python warned "coroutine ... was never awaited" (a failing test
    under ``filterwarnings = error``, as an unraisable-exception warning)."""

    async def test_runtime_reset_right_after_wait_until(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with durable.Runtime() as rt:
                stub = rt.namespace(Later).get_by_name("a")
                await stub.start("reset")
                await rt.reset()
                await asyncio.sleep(0.01)
                assert await rt.namespace(Later).get_by_name("a").keys() == []
            gc.collect()
        assert _unawaited(caught) == []
        assert "reset" not in Later.RAN

    async def test_abort_right_after_wait_until(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with durable.Runtime() as rt:
                ns = rt.namespace(Later)
                try:
                    await ns.get_by_name("a").start_and_abort("abort")
                except durable.ObjectAbortedError:
                    pass
                assert await ns.get_by_name("a").keys() == []
            gc.collect()
        assert _unawaited(caught) == []


class Count(durable.DurableObject):
    async def inc(self) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await asyncio.sleep(0)
        await self.ctx.storage.put("n", value + 1)
        return value + 1


class TestEnteringARuntimeThatRunsElsewhere:
    """``async with runtime`` on a loop while the runtime runs on another loop, in another thread
    (a ``BlockingRuntime``'s ``runtime``): it stays on its loop. It was taken over by the entering
    loop, under its live objects, and a ``BlockingRuntime`` stub called from that loop's thread
    then waited forever (its call was sent to the loop it blocked)."""

    async def test_blocking_runtime_runtime_entered_from_another_loop(self) -> None:
        brt = durable.BlockingRuntime()
        try:
            blocking = brt.namespace(Count).get_by_name("a")
            assert blocking.inc() == 1
            home = brt.runtime.loop
            async with brt.runtime as rt:
                assert rt.loop is home  # not taken over by this loop
                assert await rt.namespace(Count).get_by_name("a").inc() == 2
                assert blocking.inc() == 3  # (blocked forever before: sent to this very loop)
                assert await asyncio.to_thread(blocking.inc) == 4
            assert rt.closed
        finally:
            brt.close()


class Alarmed(durable.DurableObject):
    RUNS: list[str | None] = []

    async def alarm(self, info: durable.AlarmInfo) -> None:
        Alarmed.RUNS.append(self.ctx.id.name)

    async def set(self, when_ms: int) -> None:
        await self.ctx.storage.set_alarm(when_ms)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()


class TestNamespaceRegisteredFromAnotherThreadsLoop:
    """A persisted runtime's namespace registered from a worker thread's own loop (``asyncio.run``
    there) while the runtime runs on its loop: the objects' stored alarms are armed on the
    runtime's loop. They were armed on the thread's loop, and lost (never run) when it ended."""

    async def test_stored_alarm_runs(self, tmp_path: object) -> None:
        # A real clock: a MockClock's advance() fires a timer whatever loop it was set on.
        Alarmed.RUNS.clear()
        async with durable.Runtime(str(tmp_path)) as rt:
            await rt.namespace(Alarmed).get_by_name("a").set(int(time.time() * 1000) + 50)
        async with durable.Runtime(str(tmp_path)) as rt:

            async def register() -> durable.Namespace[Alarmed]:
                return rt.namespace(Alarmed)

            ns = await asyncio.to_thread(asyncio.run, register())
            for _ in range(500):  # until the alarm has run (at most 5 s)
                if Alarmed.RUNS:
                    break
                await asyncio.sleep(0.01)
            assert Alarmed.RUNS == ["a"]
            assert await ns.get_by_name("a").get() is None


class TestNamespaceRegisteredByThreadsAtOnce:
    """``rt.namespace(cls, name="X")`` called by several threads at once (a threaded web app
    registering its class on first use): one registers it, the others get the same namespace.
    Each checked that the name was free, then all but one failed with ``ValueError: env already
    has a binding named 'X'``."""

    def test_same_registration_from_threads(self) -> None:
        rt = durable.Runtime()
        directory = rt.hosts.directory
        fix_backend = directory.fix_backend

        def slow_fix_backend(namespace: str, storage: str) -> None:
            time.sleep(0.02)  # (widens the window between the lookup and the registration)
            fix_backend(namespace, storage)

        directory.fix_backend = slow_fix_backend  # type: ignore[method-assign]
        results: list[object] = []

        def register() -> None:
            try:
                results.append(rt.namespace(Count, name="COUNTER"))
            except Exception as exc:  # collected for the assertion
                results.append(exc)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        asyncio.run(rt.aclose())
        assert all(result is rt.env.COUNTER for result in results), results


class TestNamespaceRegisteredWhileTheRuntimesLoopWaits:
    """A namespace registered from another thread never waits for the runtime's loop: a thread's
    own loop (``asyncio.run``) registering it while the runtime's loop was blocked on that thread
    (``thread.join()``, a server thread's startup waited for) hung both for ever, the registration
    waiting for the loop to arm the stored alarms. From a thread without a loop, the stored alarms
    waited for the runtime's next event: an object that only waits for its alarm got none."""

    async def test_thread_loop_registers_while_the_runtime_loop_joins_it(self) -> None:
        async with durable.Runtime() as rt:
            assert await rt.namespace(Count).get_by_name("a").inc() == 1  # (the runtime is on this loop)

            async def register() -> None:
                rt.namespace(Alarmed)

            thread = threading.Thread(target=asyncio.run, args=(register(),), daemon=True)
            thread.start()
            thread.join(10)  # (blocks this loop, the runtime's: the registration must not wait for it)
            finished = not thread.is_alive()
            await asyncio.to_thread(thread.join)
            assert finished, "rt.namespace() from a thread's loop waited for the runtime's blocked loop"

    async def test_stored_alarm_runs_when_registered_from_a_thread_without_a_loop(self, tmp_path: object) -> None:
        Alarmed.RUNS.clear()
        async with durable.Runtime(str(tmp_path)) as rt:
            await rt.namespace(Alarmed).get_by_name("a").set(int(time.time() * 1000) + 50)
        async with durable.Runtime(str(tmp_path)) as rt:
            assert await rt.namespace(Count).get_by_name("a").inc() == 1  # (the runtime is on this loop)
            ns = await asyncio.to_thread(rt.namespace, Alarmed)
            for _ in range(500):  # until the alarm has run (at most 5 s); no call to the runtime meanwhile
                if Alarmed.RUNS:
                    break
                await asyncio.sleep(0.01)
            assert Alarmed.RUNS == ["a"]
            assert await ns.get_by_name("a").get() is None
