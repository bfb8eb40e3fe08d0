"""More conformance checks of the contract (docs/api.md): runtime, ``ctx``, testing helpers, threads.

Each test checks a stated rule through the public API (``import durable``, ``durable.testing``) the
way a user's test suite or a conformance check would, with the inputs such a suite tries first
(wrong types, calls in the wrong state, other threads and event loops).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import durable
from durable import testing


class Timed(durable.DurableObject):
    """Counts, sets alarms, and records the thread its alarm handler ran on."""

    threads: list[int] = []
    slow_started = threading.Event()

    async def increment(self, by: int = 1) -> int:
        value: int = (await self.ctx.storage.get("n") or 0) + by
        await self.ctx.storage.put("n", value)
        return value

    async def schedule(self, seconds: float) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now_ms() + int(seconds * 1000))

    async def thread(self) -> int:
        return threading.get_ident()

    async def slow(self) -> str:
        Timed.slow_started.set()
        await asyncio.sleep(0.3)
        return "done"

    async def alarm(self, info: durable.AlarmInfo) -> None:
        Timed.threads.append(threading.get_ident())
        await asyncio.sleep(0.01)
        await self.ctx.storage.put("alarmed", info.retry_count)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)


# -- section 6 and 8: durable.testing with a runtime on another thread's loop --------------------


def test_mock_clock_advance_from_another_loop_runs_alarms_on_the_runtimes_loop() -> None:
    """Section 8: "A Runtime runs on the event loop it was opened on." A test of synchronous code
    (``BlockingRuntime``) that moves its ``MockClock`` with ``asyncio.run(clock.advance(s))`` gets
    the alarms run on the runtime's thread, not on the test's (where they would run the object's
    code on two threads at once)."""
    clock = testing.MockClock(start=1_700_000_000)
    Timed.threads.clear()
    with durable.BlockingRuntime(clock=clock) as rt:
        stub = rt.namespace(Timed).get_by_name("a")
        home = stub.thread()
        stub.schedule(10)
        asyncio.run(clock.advance(11))
        assert Timed.threads == [home]
        assert stub.get("alarmed") == 0


def test_run_alarm_evict_reset_from_another_loop_run_on_the_runtimes_loop() -> None:
    """``run_alarm``, ``evict``, ``list_ids`` and ``rt.reset()`` awaited on another thread's loop run
    the object's code (and wait for its calls) on the runtime's own loop, as a stub call does."""
    Timed.threads.clear()
    with durable.BlockingRuntime() as rt:
        stub = rt.namespace(Timed).get_by_name("a")
        home = stub.thread()
        stub.schedule(3600)
        assert asyncio.run(testing.run_alarm(stub.stub)) is True
        assert Timed.threads == [home]
        assert [i.name for i in asyncio.run(testing.list_ids(rt.namespace(Timed).namespace))] == ["a"]

        results: list[Any] = []
        caller = threading.Thread(target=lambda: results.append(_outcome(stub.slow)))
        Timed.slow_started.clear()
        caller.start()
        assert Timed.slow_started.wait(10)  # the call is running in the object
        asyncio.run(testing.evict(stub.stub))  # waits for the call, as workerd's evict does
        caller.join()
        assert results == ["done"]

        assert stub.increment() == 1
        asyncio.run(rt.runtime.reset())
        assert stub.increment() == 1


def _outcome(call: Any) -> str:
    try:
        return str(call())
    except Exception as exc:
        return type(exc).__name__


def test_testing_helpers_take_blocking_stubs_and_namespaces() -> None:
    """The helpers of ``durable.testing`` take a ``BlockingRuntime``'s stubs and namespaces too
    (``rt.run(durable.testing.run_in_object, stub, fn)``), instead of a ``TypeError``."""
    with durable.BlockingRuntime() as rt:
        counters = rt.namespace(Timed)
        stub = counters.get_by_name("a")
        assert stub.increment(2) == 2
        assert rt.run(testing.run_in_object, stub, lambda obj, ctx: ctx.id.name) == "a"
        assert rt.run(testing.query, stub, "SELECT 1 AS x") == [{"x": 1}]
        assert rt.run(testing.run_alarm, stub) is False
        assert [i.name for i in rt.run(testing.list_ids, counters)] == ["a"]
        rt.run(testing.evict, stub)
        testing.fail_next_commit(stub, OSError("disk full"))
        with pytest.raises(durable.ObjectResetError, match="disk full"):
            stub.increment()
        assert counters.get_by_name("a").increment() == 3
        with pytest.raises(TypeError, match="durable.Stub"):
            rt.run(testing.evict, counters)
        with pytest.raises(TypeError, match="durable.Namespace"):
            rt.run(testing.list_ids, stub)


async def test_fail_next_commit_takes_an_exception_class() -> None:
    """``fail_next_commit(stub, exc)``: ``exc`` may be a class, as ``raise`` takes one; the caller
    gets the reset error, whose cause is an instance of it."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Timed).get_by_name("a")
        testing.fail_next_commit(stub, PermissionError)
        with pytest.raises(durable.ObjectResetError, match="PermissionError") as caught:
            await stub.increment()
        assert caught.value.durable_object_reset is True
        assert isinstance(caught.value.__cause__, PermissionError)
        assert await rt.namespace(Timed).get_by_name("a").increment() == 1
        with pytest.raises(TypeError, match="an exception or an exception class, not str"):
            testing.fail_next_commit(stub, "disk full")  # type: ignore[arg-type]


class Gated(durable.DurableObject):
    async def block_with(self, kind: str) -> Any:
        async def five() -> int:
            return 5

        if kind == "coroutine":
            return await self.ctx.block_concurrency_while(five())  # type: ignore[call-overload]
        return await self.ctx.block_concurrency_while(5)  # type: ignore[call-overload]


async def test_block_concurrency_while_refuses_a_coroutine_naming_the_fix() -> None:
    """Section 3: ``block_concurrency_while(fn)`` takes the async callable. Given its coroutine
    (``fn()``), the ``TypeError`` says to pass the function, and no "coroutine was never awaited"
    warning follows (warnings are errors in this suite). workerd: ``parameter 1 is not of type
    'function'``."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Gated).get_by_name("a")
        with pytest.raises(TypeError, match=r"block_concurrency_while\(fn\), not fn\(\)"):
            await stub.block_with("coroutine")
        with pytest.raises(TypeError, match="takes a callable, not int"):
            await rt.namespace(Gated).get_by_name("a").block_with("int")


class Initialising(durable.DurableObject):
    """Its block_concurrency_while callback fails; the method catches the error."""

    async def catch_failed_block(self) -> str:
        async def fail() -> None:
            raise LookupError("init failed")

        try:
            await self.ctx.block_concurrency_while(fail)
        except LookupError:
            return "caught"
        return "not raised"

    async def hang(self) -> None:
        await self.ctx.block_concurrency_while(lambda: asyncio.sleep(3600))

    async def ping(self) -> str:
        return "pong"


async def test_block_concurrency_while_failure_resets_even_when_caught() -> None:
    """Section 3: "if `fn` raises, the object is reset", whatever the method does with the error.
    workerd (miniflare 4, 2026-04-07): a method that catches the callback's ``RangeError`` still
    fails with it (``durableObjectReset`` true), so does the next call on that stub, and a new
    stub reaches a fresh instance."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Initialising).get_by_name("a")
        with pytest.raises(LookupError, match="init failed") as caught:
            await stub.catch_failed_block()
        assert caught.value.durable_object_reset is True  # type: ignore[attr-defined]
        with pytest.raises(LookupError, match="init failed"):
            await stub.ping()
        assert await rt.namespace(Initialising).get_by_name("a").ping() == "pong"


async def test_block_concurrency_while_timeout_is_an_overloaded_reset() -> None:
    """Section 3 and the reference: a callback still running after 30 s resets the object.
    workerd (miniflare 4, 2026-04-07), after 30,030 ms: the call and a call queued behind it fail
    with ``A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was
    canceled and the Durable Object was reset.``, ``overloaded`` and ``durableObjectReset`` true;
    the same stub stays broken, a new one reaches a fresh instance."""
    clock = testing.MockClock()
    async with durable.Runtime(clock=clock) as rt:
        stub = rt.namespace(Initialising).get_by_name("a")
        hung = asyncio.ensure_future(stub.hang())
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(stub.ping())
        await clock.advance(29.9)
        assert not hung.done() and not queued.done()
        await clock.advance(0.2)
        for call in (hung, queued, stub.ping()):
            with pytest.raises(
                durable.ObjectResetError, match="blockConcurrencyWhile.. in a Durable Object waited"
            ) as c:
                await call
            assert (c.value.overloaded, c.value.durable_object_reset) == (True, True)
        assert await rt.namespace(Initialising).get_by_name("a").ping() == "pong"


class Other(durable.DurableObject):
    pass


async def test_namespace_registered_twice() -> None:
    """Section 2: a namespace is identified by its name. The same class, name and storage again
    give the same namespace; anything else under a taken name is a ``ValueError`` that says what
    holds the name (the class and its storage backend)."""
    async with durable.Runtime() as rt:
        first = rt.namespace(Timed)
        assert rt.namespace(Timed) is first
        assert rt.namespace(Timed, name="Timed") is first
        with pytest.raises(ValueError, match=r"'Timed' is already registered \(for Timed, storage='sqlite'\)"):
            rt.namespace(Timed, storage="kv")
        with pytest.raises(ValueError, match=r"'Timed' is already registered \(for Timed, storage='sqlite'\)"):
            rt.namespace(Other, name="Timed")
