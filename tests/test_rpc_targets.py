"""Functions and RpcTarget instances over RPC (durable._rpc_target).

Every expectation was measured on workerd with miniflare 4 (compatibility date 2026-04-07), in a
Durable Object called from a Worker (probes rpc-targets-p1/p2): a callback's result and errors
come back (``RangeError: cb boom``, ``remote`` true), its arguments are copies; a function
returned stays callable across calls; a callback received as an argument and kept fails after
the call ended, from a later request or an alarm (``Error: RPC stub used after being
disposed.``); an RpcTarget's prototype methods and getters are reachable, its own properties are
not (``The RPC receiver does not implement the method "plain".``); storing a function raises
``DataCloneError``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable import testing
from durable._codec import Transfer, register_transfer
from durable._rpc_target import copy_params

from helpers import eager_tasks, needs_eager_tasks


class Counter(durable.RpcTarget):
    def __init__(self, n: int) -> None:
        self.n = n
        self.plain = 5

    def inc(self, by: int) -> int:
        self.n += by
        return self.n

    async def inc_later(self, by: int) -> int:
        return self.inc(by)

    @property
    def value(self) -> int:
        return self.n

    def boom(self) -> None:
        raise ValueError("target boom")

    def dup(self) -> str:
        return "dup"

    def alarm(self) -> str:
        return "alarm"


class Obj(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.kept: Any = None
        self.alarm_result: Any = None
        self.count = 0
        self.log: list[str] = []

    async def with_cb(self, cb: Any, *args: Any) -> Any:
        return await cb(*args)

    async def catches(self, cb: Any) -> list[Any]:
        try:
            await cb()
        except Exception as exc:
            return [type(exc).__name__, str(exc), getattr(exc, "remote", None)]
        return ["no error"]

    async def catches_base(self, cb: Any) -> list[Any]:
        try:
            await cb()
        except BaseException as exc:
            return [type(exc).__name__, str(exc)]
        return ["no error"]

    def get_exiting(self) -> Any:
        def exits() -> None:
            raise SystemExit("in the object")

        return exits

    async def args_copied(self, cb: Any) -> list[Any]:
        sent = {"a": 1}
        back = await cb(sent)
        return [sent["a"], back]

    def get_fn(self) -> Any:
        def add(by: int) -> int:
            self.count += by
            return self.count

        return add

    def keep(self, cb: Any) -> str:
        self.kept = cb
        return "kept"

    async def use_kept(self, *args: Any) -> Any:
        return await self.kept(*args)

    def get_kept(self) -> list[Any]:
        return [self.kept]

    async def pass_kept(self, other: Any) -> list[Any]:
        return list(await other.catches(self.kept))

    async def use_kept_pair(self) -> list[Any]:
        target, fn = self.kept
        out: list[Any] = []
        for call in (target.inc, fn):
            try:
                await call(1)
            except Exception as exc:
                out.append([type(exc).__name__, str(exc)])
        return [repr(target), repr(fn), *out]

    async def keep_for_alarm(self, cb: Any) -> None:
        self.kept = cb
        await self.ctx.storage.set_alarm(4 * 10**12)

    async def alarm(self, info: Any = None) -> None:
        try:
            self.alarm_result = ["ok", await self.kept(7)]
        except Exception as exc:
            self.alarm_result = [type(exc).__name__, str(exc)]

    def get_alarm_result(self) -> Any:
        return self.alarm_result

    async def store_fn(self) -> None:
        await self.ctx.storage.put("f", {"g": lambda: 1})

    def get_counter(self, n: int) -> Counter:
        return Counter(n)

    def get_nested(self, n: int) -> dict[str, Any]:
        return {"c": Counter(n), "list": [Counter(n + 1)]}

    async def call_target(self, target: Any) -> list[int]:
        return [await target.inc(2), await target.value]

    async def write_then_cb(self, cb: Any) -> Any:
        await self.ctx.storage.put("k", "written")
        return await cb()

    async def read(self) -> Any:
        return await self.ctx.storage.get("k")

    def get_writer(self) -> Any:
        async def write(value: str) -> str:
            await self.ctx.storage.put("k", value)
            return value

        return write

    def get_logger(self) -> Any:
        def log(entry: str) -> list[str]:
            self.log.append(entry)
            return self.log

        return log

    async def block_then_log(self, started: Any) -> None:
        async def blocked() -> None:
            await started()  # tells the test the gate is closed now
            await asyncio.sleep(0.05)
            self.log.append("gate opens")

        await self.ctx.block_concurrency_while(blocked)

    async def twice(self, cb: Any) -> list[Any]:
        return list(await asyncio.gather(cb(1), cb(2)))

    async def forward(self, other: Any, target: Any) -> list[int]:
        return list(await other.call_target(target))


def _closure_over(buffer: bytearray) -> Any:
    def size() -> int:
        return len(buffer)

    return size


@pytest.fixture
async def ns() -> AsyncIterator[durable.Namespace[Obj]]:
    async with durable.Runtime() as rt:
        yield rt.namespace(Obj)


class TestCallbacks:
    async def test_a_callback_runs_and_its_result_comes_back(self, ns: Any) -> None:
        """workerd: ``withCb(x => x * 2, 21)`` gives 42, an async callback too (63 for x * 3)."""
        stub = ns.get_by_name("a")
        assert await stub.with_cb(lambda x: x * 2, 21) == 42

        async def triple(x: int) -> int:
            return x * 3

        assert await stub.with_cb(triple, 21) == 63

    async def test_errors_cross_back(self, ns: Any) -> None:
        """workerd: the callback's error reaches the receiver with its class, message and
        ``remote`` true; uncaught there, it reaches the caller."""

        def fails() -> None:
            raise ValueError("cb boom")

        stub = ns.get_by_name("a")
        assert await stub.catches(fails) == ["ValueError", "cb boom", True]
        with pytest.raises(ValueError, match="cb boom"):
            await stub.with_cb(fails)

    async def test_arguments_and_results_are_copied(self, ns: Any) -> None:
        """workerd: the callback mutating its argument leaves the receiver's object unchanged."""

        def mutates(value: dict[str, int]) -> dict[str, int]:
            value["a"] = 99
            return {"b": 1}

        assert await ns.get_by_name("a").args_copied(mutates) == [1, {"b": 1}]

    async def test_a_returned_function_runs_in_its_object(self, ns: Any) -> None:
        """workerd: a function returned stays callable across calls, and keeps its state (2, then 5)."""
        stub = ns.get_by_name("a")
        add = await stub.get_fn()
        assert callable(add)
        assert await add(2) == 2
        assert await stub.with_cb(lambda x: x, 1) == 1
        assert await add(3) == 5

    async def test_a_callback_from_an_object_runs_there_and_its_writes_commit(self, ns: Any) -> None:
        """A callback homed in an object runs as an event of that object (its ctx is usable)."""
        a, b = ns.get_by_name("a"), ns.get_by_name("b")
        add = await a.get_fn()
        assert await b.with_cb(add, 4) == 4
        assert await testing.run_in_object(a, lambda obj, ctx: getattr(obj, "count")) == 4

    async def test_a_callback_kept_after_its_call_is_disposed(self, ns: Any) -> None:
        """workerd: ``Error: RPC stub used after being disposed.`` from a later request."""
        stub = ns.get_by_name("a")
        assert await stub.keep(lambda x: x + 100) == "kept"
        with pytest.raises(durable.DurableError, match=r"^RPC stub used after being disposed\.$"):
            await stub.use_kept(1)

    async def test_a_callback_kept_for_an_alarm_is_disposed(self, ns: Any) -> None:
        """workerd: the same error when the alarm handler calls it."""
        stub = ns.get_by_name("a")
        await stub.keep_for_alarm(lambda x: x + 1)
        await testing.run_alarm(stub)
        assert await stub.get_alarm_result() == ["DurableError", "RPC stub used after being disposed."]

    async def test_a_disposed_stub_kept_by_the_receiver_keeps_nothing_of_the_sender(self, ns: Any) -> None:
        """workerd releases the sender's function or target when the call ends and its stubs are
        disposed; before, a receiver that kept the stub kept the function (and its closure: the
        sending instance, its buffers) or the RpcTarget alive."""
        target = Counter(1)
        fn = _closure_over(bytearray(1000))
        refs = [weakref.ref(target), weakref.ref(fn)]
        stub = ns.get_by_name("a")
        assert await stub.keep([target, fn]) == "kept"
        assert await stub.use_kept_pair() == [  # a later request: the call has ended
            "<durable RpcTarget stub (disposed)>",
            "<durable callback stub (disposed)>",
            ["DurableError", "RPC stub used after being disposed."],
            ["DurableError", "RPC stub used after being disposed."],
        ]
        del target, fn
        gc.collect()
        assert [ref() for ref in refs] == [None, None]

    @needs_eager_tasks
    async def test_a_kept_callback_is_disposed_as_its_call_ends_even_for_an_eager_next_call(self, ns: Any) -> None:
        """workerd disposes the stub when the call ends; durable disposed it one loop turn later
        (a done-callback), so a next call started eagerly in between (an eager task factory,
        Python 3.12+) still ran the kept callback: ``use_kept`` returned 101."""
        stub = ns.get_by_name("a")
        with eager_tasks():
            assert await stub.keep(lambda x: x + 100) == "kept"
            with pytest.raises(durable.DurableError, match=r"^RPC stub used after being disposed\.$"):
                await stub.use_kept(1)

    async def test_a_disposed_stub_can_be_sent_on_and_stays_disposed(self, ns: Any) -> None:
        """workerd (probe review-rpct-p2): an object returns a kept (disposed) callback, or passes
        it to another object: both arrive, and calling them fails with ``RPC stub used after being
        disposed.`` Before: returning or passing it raised at once."""
        stub = ns.get_by_name("a")
        assert await stub.keep(lambda: 1) == "kept"
        await asyncio.sleep(0)  # the call's stubs are disposed once it ended
        [kept] = await stub.get_kept()
        with pytest.raises(durable.DurableError, match=r"^RPC stub used after being disposed\.$"):
            await kept()
        assert (await stub.pass_kept(ns.get_by_name("b")))[:2] == [
            "DurableError",
            "RPC stub used after being disposed.",
        ]

    async def test_keyboard_interrupt_and_system_exit_reach_the_caller_not_the_loop(self, ns: Any) -> None:
        """As for an object's method that raises them: the caller gets them, the loop runs on.
        Before, the call's task raised them out of the loop (asyncio re-raises both), stopping it,
        and the caller got ``CancelledError``."""

        def interrupt() -> None:
            raise KeyboardInterrupt("plain")

        stub = ns.get_by_name("a")
        assert await stub.catches_base(interrupt) == ["KeyboardInterrupt", "plain"]
        exits = await stub.get_exiting()
        with pytest.raises(SystemExit, match="in the object"):
            await exits()
        assert await stub.with_cb(lambda x: x + 1, 1) == 2

    async def test_a_function_is_still_not_stored(self, ns: Any) -> None:
        """workerd: ``DataCloneError`` for a function put in storage, nested too."""
        with pytest.raises(durable.DataCloneError, match="not a stored value"):
            await ns.get_by_name("a").store_fn()

    async def test_a_callback_after_its_object_was_reset_says_its_home_is_gone(self, ns: Any) -> None:
        """workerd (miniflare 4, 2026-04-07): ``Error: The execution context which hosts this
        callback is no longer running.``, without ``remote`` or ``durableObjectReset``
        (tests/test_rpc_fuzz_found.py has the RpcTarget case)."""
        a = ns.get_by_name("a")
        add = await a.get_fn()
        with pytest.raises(durable.ObjectAbortedError):
            await testing.run_in_object(a, lambda obj, ctx: ctx.abort("gone"))
        with pytest.raises(durable.DurableError) as info:
            await add(1)
        assert type(info.value) is durable.DurableError
        assert str(info.value) == "The execution context which hosts this callback is no longer running."
        assert not info.value.durable_object_reset and not info.value.remote

    async def test_a_callback_homed_in_an_object_uses_its_storage(self, ns: Any) -> None:
        """A callback's writes are its home object's, committed before its result leaves."""
        a, b = ns.get_by_name("a"), ns.get_by_name("b")
        write = await a.get_writer()
        assert await b.with_cb(write, "from b") == "from b"
        assert await a.read() == "from b"
        assert await b.read() is None

    async def test_a_callback_homed_in_an_object_waits_at_its_input_gate(self, ns: Any) -> None:
        """A call on it is an event of its home: while the home's block_concurrency_while()
        holds the input gate, the call waits, as an incoming RPC call does."""
        a, b = ns.get_by_name("a"), ns.get_by_name("b")
        log = await a.get_logger()
        closed = asyncio.Event()

        async def started() -> None:
            closed.set()

        blocking = asyncio.ensure_future(a.block_then_log(started))
        await closed.wait()
        assert await b.with_cb(log, "callback") == ["gate opens", "callback"]
        await blocking

    async def test_concurrent_calls_of_one_callback(self, ns: Any) -> None:
        """workerd: ``Promise.all([cb(1), cb(2)])`` with a callback that sleeps gives [1, 2]."""

        async def slow(x: int) -> int:
            await asyncio.sleep(0.01)
            return x

        assert await ns.get_by_name("a").twice(slow) == [1, 2]

    async def test_a_callback_from_another_thread(self) -> None:
        """A BlockingStub's caller (another thread) sends a function: it runs, on the runtime's loop."""
        with durable.BlockingRuntime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            seen: list[bool] = []

            def on_runtime_thread(x: int) -> int:
                seen.append(threading.current_thread() is not threading.main_thread())
                return x + 1

            assert await asyncio.to_thread(stub.with_cb, on_runtime_thread, 1) == 2
            assert len(seen) == 1

    async def test_a_returned_function_called_on_another_threads_loop_runs_on_the_runtimes(self) -> None:
        """A function an object returned, called from a BlockingRuntime's caller (its own loop, via
        asyncio.run), runs on the runtime's thread like the object's other events. Before: on the
        caller's thread, beside the object's code on the runtime's (workerd runs an object's code on
        one thread only)."""

        class Where(durable.DurableObject):
            def get_fn(self) -> Any:
                def where(x: int) -> list[Any]:
                    return [x, threading.current_thread().name]

                return where

            def get_target(self) -> Any:
                class Here(durable.RpcTarget):
                    def where(self) -> str:
                        return threading.current_thread().name

                return Here()

        def in_caller_thread() -> list[Any]:
            with durable.BlockingRuntime() as rt:
                stub = rt.namespace(Where).get_by_name("a")
                fn, target = stub.get_fn(), stub.get_target()
                return [asyncio.run(fn(1)), asyncio.run(target.where()), threading.current_thread().name]

        by_fn, by_target, caller = await asyncio.to_thread(in_caller_thread)
        assert by_fn[0] == 1
        assert {by_fn[1], by_target} == {"durable-runtime"} != {caller}

    async def test_a_blocking_call_inside_a_function_sent_from_a_blocking_runtime_names_it(self) -> None:
        """A function a BlockingRuntime's caller sends runs on the runtime's thread: a blocking
        stub call inside it is refused (it would wait for itself), and the error now says so."""

        def in_caller_thread() -> str:
            with durable.BlockingRuntime() as rt:
                stub = rt.namespace(Obj).get_by_name("a")
                try:
                    stub.with_cb(lambda x: stub.read(), 1)
                except RuntimeError as exc:
                    return str(exc)
                return "no error"

        message = await asyncio.to_thread(in_caller_thread)
        assert "own event-loop thread" in message and "a function sent over RPC" in message


class TestRpcTarget:
    async def test_methods_and_getters_are_callable(self, ns: Any) -> None:
        """workerd: ``inc(1)``, ``inc(2)``, then the getter: 11, 13, 13."""
        counter = await ns.get_by_name("a").get_counter(10)
        assert [await counter.inc(1), await counter.inc_later(2), await counter.value] == [11, 13, 13]

    async def test_own_attributes_and_reserved_names_are_not_reachable(self, ns: Any) -> None:
        """workerd: an instance's own property is not implemented (called or read); ``dup`` is
        reserved; ``alarm`` (reserved on a Durable Object) is callable on an RpcTarget."""
        counter = await ns.get_by_name("a").get_counter(10)
        for member in (counter.plain, counter.plain(), counter.n, counter.dup()):
            with pytest.raises(TypeError, match="The RPC receiver does not implement the method"):
                await member
        assert await counter.alarm() == "alarm"
        with pytest.raises(ValueError, match="target boom"):
            await counter.boom()

    async def test_nested_targets_and_targets_sent_as_arguments(self, ns: Any) -> None:
        """workerd: ``{c, list: [c2]}`` gives two stubs (2, 3); a target sent in is called ([3, 3])."""
        stub = ns.get_by_name("a")
        nested = await stub.get_nested(1)
        assert [await nested["c"].inc(1), await nested["list"][0].inc(1)] == [2, 3]
        local = Counter(1)
        assert await stub.call_target(local) == [3, 3]
        assert local.n == 3  # the method ran on the sender's instance

    async def test_a_target_stub_forwarded_to_a_third_object(self, ns: Any) -> None:
        """A stub received as an argument may be sent on during the call; it reaches the same instance."""
        local = Counter(0)
        assert await ns.get_by_name("a").forward(ns.get_by_name("b"), local) == [2, 2]
        assert local.n == 2

    async def test_an_rpc_target_is_not_stored(self, ns: Any) -> None:
        with pytest.raises(durable.DataCloneError, match="An RpcTarget can be an RPC argument"):
            await testing.run_in_object(ns.get_by_name("a"), lambda obj, ctx: ctx.storage.put("t", Counter(1)))


class _Gate:
    """A value whose copy waits for an event: holds one thread inside copy_params."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        self.entered, self.release = entered, release


def _copy_gate(gate: _Gate) -> None:
    gate.entered.set()
    assert gate.release.wait(10)


register_transfer(_Gate, Transfer(_copy_gate, "a test value"))


class TestCopyParamsThreads:
    def test_two_threads_copying_arguments_at_once_each_collect_their_own_stubs(self) -> None:
        """Thread A copies arguments (a function after a value whose copy waits) while thread B
        starts copying its own. Before, the stubs being collected were one global: A's stub went
        to neither list (never disposed), and B, ending last, left A's list as the global for good
        (every later stub of A's thread joined it)."""
        a_in, a_go, b_in, b_go = (threading.Event() for _ in range(4))
        out: dict[str, Any] = {}

        def copy(name: str, gate: _Gate) -> None:
            out[name] = copy_params(([gate, lambda: name],), {})[2]

        a = threading.Thread(target=copy, args=("a", _Gate(a_in, a_go)))
        b = threading.Thread(target=copy, args=("b", _Gate(b_in, b_go)))
        a.start()
        assert a_in.wait(10)
        b.start()
        assert b_in.wait(10)
        a_go.set()
        a.join(10)
        b_go.set()
        b.join(10)
        assert [len(out["a"] or []), len(out["b"] or [])] == [1, 1]
