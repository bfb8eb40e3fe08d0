"""Resets: failed commits, abort(), throwing constructors and block_concurrency_while callbacks."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

import durable
from durable import _context, testing
from durable.testing import run_in_object


class Obj(durable.DurableObject):
    constructed = 0
    fail_constructor = False

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        type(self).constructed += 1
        if type(self).fail_constructor:
            raise ValueError("constructor failed")
        self.memory: list[int] = []

    async def remember(self, value: int) -> list[int]:
        self.memory.append(value)
        await self.ctx.storage.put("last", value)
        return self.memory

    async def last(self) -> Any:
        return await self.ctx.storage.get("last")

    async def abort(self, reason: str | None) -> None:
        self.ctx.storage.put("last", -1)  # dropped: never committed
        self.ctx.abort(reason)

    async def failing_bcw(self) -> None:
        async def body() -> None:
            await asyncio.sleep(0)
            raise KeyError("bcw failed")

        await self.ctx.block_concurrency_while(body)


@pytest.fixture
async def ns() -> Any:
    Obj.constructed = 0
    Obj.fail_constructor = False
    async with durable.Runtime() as rt:
        yield rt.namespace(Obj)


class TestFailedCommit:
    async def test_caller_gets_reset_error_and_storage_is_unchanged(self, ns: Any) -> None:
        """A failed commit reaches the caller as a reset error and leaves storage as it was."""
        stub = ns.get_by_name("a")
        await stub.remember(1)
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError, match="commit failed") as info:
            await stub.remember(2)
        assert info.value.durable_object_reset is True
        assert isinstance(info.value.__cause__, OSError)
        assert await ns.get_by_name("a").last() == 1

    async def test_instance_is_rebuilt(self, ns: Any) -> None:
        """After the reset, in-memory state is gone and the constructor runs again."""
        stub = ns.get_by_name("a")
        await stub.remember(1)
        testing.fail_next_commit(stub, RuntimeError("disk full"))
        with pytest.raises(durable.ObjectResetError, match="disk full"):
            await stub.remember(2)
        assert await ns.get_by_name("a").remember(3) == [3]
        assert Obj.constructed == 2

    async def test_stub_is_broken_after_reset(self, ns: Any) -> None:
        """The stub that saw a reset error keeps raising it; a new stub works."""
        stub = ns.get_by_name("a")
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await stub.remember(1)
        with pytest.raises(durable.ObjectResetError):
            await stub.last()
        assert await ns.get(stub.id).last() is None

    async def test_all_held_results_fail(self, ns: Any) -> None:
        """Every result waiting on the failed commit turns into a reset error."""
        stub = ns.get_by_name("a")
        await stub.remember(0)
        testing.fail_next_commit(stub)
        results = await asyncio.gather(*(ns.get_by_name("a").remember(i) for i in range(5)), return_exceptions=True)
        assert all(isinstance(r, durable.ObjectResetError) for r in results)
        assert await ns.get_by_name("a").last() == 0


class TestAbort:
    async def test_abort_with_reason(self, ns: Any) -> None:
        """abort(reason) fails the call with a reset error carrying the reason and drops pending writes."""
        stub = ns.get_by_name("a")
        await stub.remember(1)
        with pytest.raises(durable.ObjectAbortedError, match="^maintenance$") as info:
            await stub.abort("maintenance")
        assert info.value.durable_object_reset is True
        assert Obj.constructed == 1
        assert await ns.get_by_name("a").last() == 1
        assert Obj.constructed == 2  # the next call built a fresh instance
        assert await ns.get_by_name("a").remember(2) == [2]

    async def test_abort_default_message(self, ns: Any) -> None:
        """abort() without a reason uses Cloudflare's default message."""
        with pytest.raises(durable.ObjectResetError, match=r"^Application called abort\(\) to reset Durable Object\.$"):
            await ns.get_by_name("a").abort(None)


class TestConstructorAndBlockConcurrency:
    async def test_throwing_constructor(self, ns: Any) -> None:
        """A constructor that raises fails the call with its error, flagged remote and reset."""
        Obj.fail_constructor = True
        with pytest.raises(ValueError, match="constructor failed") as info:
            await ns.get_by_name("a").last()
        assert info.value.remote is True  # type: ignore[attr-defined]
        assert info.value.durable_object_reset is True  # type: ignore[attr-defined]
        Obj.fail_constructor = False
        assert await ns.get_by_name("a").last() is None
        assert Obj.constructed == 2

    async def test_failing_block_concurrency_while_resets(self, ns: Any) -> None:
        """A block_concurrency_while callback that raises resets the object and fails queued calls."""
        stub = ns.get_by_name("a")
        await stub.remember(1)
        failing = asyncio.ensure_future(stub.failing_bcw())
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(ns.get_by_name("a").remember(2))
        with pytest.raises(KeyError):
            await failing
        with pytest.raises(KeyError) as info:
            await queued
        assert info.value.durable_object_reset is True  # type: ignore[attr-defined]
        assert await ns.get_by_name("a").remember(3) == [3]


class Later(durable.DurableObject):
    constructed = 0
    aborted = False  # set as the timer calls abort(), so that a test waits for it and not a fixed time

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        type(self).constructed += 1

    async def ok(self) -> str:
        return "ok"

    async def abort_later(self, how: str) -> str:
        async def later() -> None:
            await asyncio.sleep(0.02)
            type(self).aborted = True
            self.ctx.abort("later")

        if how == "wait_until":
            self.ctx.wait_until(later())
        else:
            asyncio.get_running_loop().create_task(later())
        return "returned"

    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now_ms() + 10)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        if info.retry_count == 0:
            self.ctx.abort("alarm aborted")


class TestAStubThatReachedAResetInstance:
    """workerd (miniflare 4, 2026-04-07): a stub that made a call to an instance stays bound to that
    instance. Once it is reset (here by `ctx.abort("later")` from `waitUntil` work or a timer, 20 ms
    after the call returned; or from the alarm handler), every later call on that stub fails with
    the reset error (`Error: later`, `durableObjectReset: true`), although none of its calls saw
    it; a stub of the same object that had made no call yet works, as does a new one (the
    constructor ran again: 2)."""

    @pytest.mark.parametrize("how", ["wait_until", "task"])
    async def test_abort_after_the_call_returned(self, how: str) -> None:
        Later.constructed = 0
        Later.aborted = False
        async with durable.Runtime() as rt:
            ns = rt.namespace(Later)
            stub, used, unused = (ns.get_by_name("a") for _ in range(3))
            assert await used.ok() == "ok"
            assert await stub.abort_later(how) == "returned"
            # Until the timer has aborted (a fixed 60 ms ran out on a loaded machine), then a
            # few turns more for the reset to finish
            for _ in range(1000):
                if Later.aborted:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.02)
            for reached in (stub, used):
                for _ in range(2):
                    with pytest.raises(durable.ObjectAbortedError, match="^later$") as info:
                        await reached.ok()
                    assert info.value.durable_object_reset is True
                with pytest.raises(durable.ObjectAbortedError, match="^later$"):
                    await reached.fetch("http://do/")
            assert await unused.ok() == "ok"
            assert await ns.get_by_name("a").ok() == "ok"
            assert Later.constructed == 2

    async def test_abort_in_the_alarm_handler(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Later).get_by_name("a")
            await stub.arm()
            await asyncio.sleep(0.1)
            with pytest.raises(durable.ObjectAbortedError, match="^alarm aborted$"):
                await stub.ok()
            assert await rt.namespace(Later).get_by_name("a").ok() == "ok"

    async def test_eviction_breaks_no_stub(self) -> None:
        """Eviction is not a reset: the stub reaches the next instance."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Later).get_by_name("a")
            assert await stub.ok() == "ok"
            await testing.evict(stub)
            assert await stub.ok() == "ok"

    async def test_from_another_object(self) -> None:
        """A stub an object keeps (in a field) is bound the same way."""

        class Keeper(durable.DurableObject):
            def __init__(self, ctx: durable.State, env: durable.Env) -> None:
                super().__init__(ctx, env)
                self.kept = env.LATER.get_by_name("b")

            async def call(self, method: str, *args: Any) -> Any:
                return await getattr(self.kept, method)(*args)

        async with durable.Runtime() as rt:
            rt.namespace(Later, name="LATER")
            keeper = rt.namespace(Keeper).get_by_name("k")
            assert await keeper.call("abort_later", "task") == "returned"
            await asyncio.sleep(0.06)
            with pytest.raises(durable.ObjectAbortedError, match="^later$"):
                await keeper.call("ok")
            assert await rt.env.LATER.get_by_name("b").ok() == "ok"


class Leaves(durable.DurableObject):
    """Leaves tasks running, then is reset (``abort()`` or a ``block_concurrency_while`` that raises)."""

    log: list[str] = []

    async def _later(self, tag: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            Leaves.log.append(f"{tag} cancelled")
            raise
        Leaves.log.append(f"{tag} ran")
        try:
            await self.ctx.storage.put("k", tag)
        except Exception as exc:
            Leaves.log.append(f"{tag} put: {exc}")  # (not raised: the task's error would be logged)

    async def _leave(self) -> None:
        self.timer = asyncio.create_task(self._later("timer", 0.02))
        await asyncio.sleep(0)  # the timer's task starts and sleeps
        self.unstarted = asyncio.create_task(self._later("unstarted", 0))  # starts after the reset

    async def abort(self) -> None:
        await self._leave()
        self.ctx.abort("bye")

    async def failing_bcw(self) -> None:
        async def body() -> None:
            await self._leave()
            raise ValueError("bcw boom")

        await self.ctx.block_concurrency_while(body)

    async def leave_one(self) -> str:
        self.timer = asyncio.create_task(self._later("next", 0.02))
        return "left"


class TestTasksOfAResetInstance:
    """workerd (miniflare 4.20260426, compatibility date 2026-04-07, logging to a module global): a
    ``setTimeout`` callback due 30 ms later, an un-awaited async chain (20 ms) and a
    ``storage.get().then()`` made before ``ctx.abort()``, or before a ``blockConcurrencyWhile``
    callback throws, never run: no line of them is logged, their storage writes and calls to
    another object are never seen. durable let an instance's asyncio tasks run on (their storage
    calls raised the reset error); the reset now cancels them. On Python 3.11, which has no
    ``Task.get_context()``, they ran on until the task's context was read through the garbage
    collector (``_context.task_context``)."""

    @pytest.mark.parametrize("how", ["abort", "failing_bcw"])
    async def test_they_stop(self, how: str) -> None:
        Leaves.log = []
        async with durable.Runtime() as rt:
            ns = rt.namespace(Leaves)
            outside = asyncio.create_task(asyncio.sleep(0.03))  # the test body's: not the object's
            other = ns.get_by_name("other")
            assert await other.leave_one() == "left"
            with pytest.raises(Exception, match="^(bye|bcw boom)$") as info:
                await getattr(ns.get_by_name("a"), how)()
            assert info.value.durable_object_reset is True  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            assert sorted(Leaves.log) == ["next ran", "timer cancelled"]
            assert not outside.cancelled()
            assert await ns.get_by_name("a").leave_one() == "left"  # the next instance's tasks run
            await asyncio.sleep(0.05)
            assert Leaves.log.count("next ran") == 2
            assert await run_in_object(ns.get_by_name("a"), lambda obj, ctx: ctx.storage.get("k")) == "next"


class Catches(durable.DurableObject):
    log: list[str] = []

    async def catch_bcw(self) -> str:
        async def body() -> None:
            await asyncio.sleep(0)
            raise ValueError("bcw boom")

        try:
            await self.ctx.block_concurrency_while(body)
        except Exception as exc:
            Catches.log.append(f"caught {exc!r}")
        Catches.log.append("went on")
        return "returned"


class TestTheEventThatAwaitedAFailingCallback:
    async def test_goes_no_further(self) -> None:
        """workerd (miniflare 4.20260426, compatibility date 2026-04-07): a fetch handler that
        awaits a ``blockConcurrencyWhile()`` callback that throws, in ``try``/``catch``, runs
        neither its ``catch`` nor its next lines (a ``storage.put``); its caller gets the callback's
        error (``bcw boom``). In durable the handler caught it and went on (its storage calls
        raised the reset error): the reset's cancellation of the event went to the callback's
        task, which it awaited, and that task ended with its error instead."""
        Catches.log = []
        async with durable.Runtime() as rt:
            with pytest.raises(ValueError, match="^bcw boom$") as info:
                await rt.namespace(Catches).get_by_name("a").catch_bcw()
            assert info.value.durable_object_reset is True  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
            assert Catches.log == []


class TestTaskContext:
    """``_context.task_context``, which tells a reset whose tasks to cancel: on Python 3.11 (no
    ``Task.get_context()``) read from the pure-Python task's ``_context`` or through the garbage
    collector (C tasks, asyncio's and uvloop's); before, 3.11 found no context and cancelled
    nothing (TestTasksOfAResetInstance)."""

    async def test_of_each_kind_of_task(self) -> None:
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
        var.set("inherited")
        given = contextvars.copy_context()
        given.run(var.set, "given")
        loop = asyncio.get_running_loop()

        class Sub(asyncio.Task):  # type: ignore[type-arg]
            pass

        tasks = {
            "c": loop.create_task(asyncio.sleep(1)),
            "c given": loop.create_task(asyncio.sleep(1), context=given),
            "python given": asyncio.tasks._PyTask(asyncio.sleep(1), loop=loop, context=given),  # type: ignore[attr-defined]
            "subclass given": Sub(asyncio.sleep(1), loop=loop, context=given),
        }
        for task in tasks.values():
            task.add_done_callback(lambda _: None, context=contextvars.Context())  # another context
        try:
            seen = {}
            for name, task in tasks.items():
                context = _context.task_context(task)
                seen[name] = None if context is None else context.get(var)
            assert seen == {"c": "inherited", "c given": "given", "python given": "given", "subclass given": "given"}
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
