"""RPC promise pipelining: a call or a property read on an un-awaited call's result (durable._pipeline).

Every expectation was measured on workerd with miniflare 4.20260426 (compatibility date
2026-04-07), in a Durable Object called from a Worker (probes pipelining-p1 to p4):
``await stub.getCounter(5).inc(1)`` is 6, a chain of three calls works, ``stub.getConfig().name``
reads a plain object's property and ``stub.getCounter(1).value`` an RpcTarget's getter; a missing
member, and any member of null, undefined, a number, a string, an array, a Date, a Map, an Error
or a Response, raises ``TypeError: The RPC receiver does not implement the method "<name>".``;
calling a property that is not a function raises ``TypeError: "<name>" is not a function.``; a
function in a plain object crossed as a stub and can be called; ``dup`` raises ``TypeError:
'dup' is a reserved method and cannot be called over RPC.`` (``fetch``, ``connect`` and
``onRpcBroken`` of an RpcTarget are called as any method); if the first call throws, the
pipelined call and read fail with the same class and message; the first call runs once; the
pipelined calls run after the calls made on the stub meanwhile; pipelining works on callback
stubs and RpcTarget stubs received as arguments; ``stub.fetch()`` returns a plain Promise
(``stub.fetch(url).status`` is undefined); a pipelined call's arguments are copied when it is
made, and one that cannot be copied rejects its promise.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable

from helpers import eager_tasks, needs_eager_tasks

NOT_IMPLEMENTED = r'^The RPC receiver does not implement the method "{}"\.$'
RESERVED_DUP = r"^'dup' is a reserved method and cannot be called over RPC\.$"


class Counter(durable.RpcTarget):
    def __init__(self, n: int, log: list[str] | None = None) -> None:
        self.n = n
        self.log = log

    def inc(self, by: int) -> int:
        if self.log is not None:
            self.log.append(f"inc{by}")
        self.n += by
        return self.n

    @property
    def value(self) -> int:
        return self.n

    def again(self, by: int) -> Counter:
        return Counter(self.n + by, self.log)

    def boom(self) -> None:
        raise RangeError("counter boom")

    def fetch(self, what: Any) -> str:
        return f"my fetch {what}"

    def echo(self, value: Any) -> Any:
        return value

    def dup(self) -> str:
        return "my dup"


class RangeError(Exception):
    pass


class Maker(durable.RpcTarget):
    def make(self, n: int) -> Counter:
        return Counter(n)


class Obj(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.calls = 0
        self.log: list[str] = []

    def get_counter(self, n: int) -> Counter:
        self.calls += 1
        self.log.append(f"get_counter{n}")
        return Counter(n, self.log)

    def get_config(self) -> dict[str, Any]:
        return {"name": "cfg", "nested": {"x": 1}, "list": [1, 2], "f": lambda x: x * 2, "dup": "d"}

    def get_value(self, value: Any) -> Any:
        return value

    def throws(self) -> None:
        raise TypeError("first failed")

    async def throws_later(self) -> None:
        await asyncio.sleep(0)
        raise RangeError("later")

    def mark(self, x: int) -> int:
        self.log.append(f"mark{x}")
        return x

    def get_log(self) -> list[str]:
        return self.log

    def get_calls(self) -> int:
        return self.calls

    async def use_callback(self, cb: Any) -> Any:
        return [await cb(5).inc(2), await cb(5).value]

    async def use_target(self, target: Any) -> Any:
        return [await target.make(7).inc(3), await target.make(7).value]

    def get_maker(self) -> Maker:
        return Maker()

    async def slow_counter(self, n: int) -> Counter:
        await asyncio.sleep(0.001)
        self.log.append(f"slow_counter{n}")
        return Counter(n, self.log)

    async def relay(self, other: Any) -> int:
        return await other.get_counter(3).inc(1)  # type: ignore[no-any-return]

    def ping(self) -> str:
        return "pong"

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response(f"fetched {request.url}")


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime() as runtime:
        yield runtime


@pytest.fixture
def stub(rt: durable.Runtime) -> Any:
    return rt.namespace(Obj).get_by_name("a")


class TestCalls:
    async def test_call_on_an_rpc_target_result(self, stub: Any) -> None:
        """workerd: ``await stub.getCounter(5).inc(1)`` is 6."""
        assert await stub.get_counter(5).inc(1) == 6

    async def test_chain_of_three(self, stub: Any) -> None:
        """workerd: ``stub.getCounter(5).again(1).again(10).inc(100)`` is 116."""
        assert await stub.get_counter(5).again(1).again(10).inc(100) == 116

    async def test_pipelined_call_is_an_rpc_promise(self, stub: Any) -> None:
        """It can be gathered, made a task of, and pipelined on again."""
        promise = stub.get_counter(1).inc(1)
        assert isinstance(promise, durable.RpcPromise)
        assert list(await asyncio.gather(promise, stub.get_counter(2).inc(2))) == [2, 4]
        assert await asyncio.create_task(stub.get_counter(3).inc(3)) == 6
        async with asyncio.TaskGroup() as group:
            task = group.create_task(stub.get_counter(4).inc(4))
        assert task.result() == 8

    async def test_first_call_runs_once(self, stub: Any) -> None:
        """workerd: with ``p = getCounter(2)`` and ``q = p.inc(1)`` both awaited, getCounter ran
        once, and ``(await p).value`` is 3: the same counter."""
        promise = stub.get_counter(2)
        pipelined = promise.inc(1)
        counter = await promise
        assert await pipelined == 3
        assert await stub.get_calls() == 1
        assert await counter.value == 3

    async def test_order_of_delivery(self, stub: Any) -> None:
        """workerd: ``p = getCounter(2); p.inc(10); mark(1); p.inc(20); mark(2)`` runs getCounter2,
        mark1, mark2, inc10, inc20: the pipelined calls after the calls made meanwhile."""
        promise = stub.get_counter(2)
        calls = [promise, promise.inc(10), stub.mark(1), promise.inc(20), stub.mark(2)]
        results = await asyncio.gather(*calls)
        assert results[1:] == [12, 1, 32, 2]
        assert await stub.get_log() == ["get_counter2", "mark1", "mark2", "inc10", "inc20"]

    @pytest.mark.parametrize("case", ["settled", "pending", "pipelined after the await"])
    async def test_pipelined_call_before_a_call_on_the_awaited_result(self, stub: Any, case: str) -> None:
        """workerd (miniflare 4.20260426, probe review-r2-order): ``p = getCounter(0); q = p.inc(1);
        c = await p; r = c.inc(10)`` runs inc1 then inc10 (q is 1, r is 11), the first call quick
        or slow, and so does ``c = await p; q = p.inc(1); r = c.inc(10)``: the calls keep the order
        they were made in. durable ran inc10 first (the pipelined call waited in a task)."""
        promise = stub.slow_counter(0) if case == "pending" else stub.get_counter(0)
        if case == "pipelined after the await":
            counter = await promise
            pipelined = promise.inc(1)
        else:
            pipelined = promise.inc(1)
            counter = await promise
        direct = counter.inc(10)
        assert [await pipelined, await direct] == [1, 11]
        assert (await stub.get_log())[1:] == ["inc1", "inc10"]

    async def test_arguments_are_copied_when_the_call_is_made(self, stub: Any) -> None:
        """workerd: ``o = {v: 1}; q = p.echoV(o); o.v = 2`` gives 1."""
        value = {"v": 1}
        pipelined = stub.get_counter(1).echo(value)
        value["v"] = 2
        assert await pipelined == {"v": 1}

    async def test_argument_that_cannot_be_copied_rejects_the_promise(self, stub: Any) -> None:
        """workerd: ``p.hello(Symbol())`` returns; awaiting it raises DataCloneError."""
        pipelined = stub.get_counter(1).echo(object())
        with pytest.raises(durable.DataCloneError):
            await pipelined

    async def test_fetch_connect_are_plain_methods_of_a_target(self, stub: Any) -> None:
        """workerd: a pipelined ``.fetch("u")`` on an RpcTarget with a fetch method gives "my fetch u"."""
        assert await stub.get_counter(1).fetch("u") == "my fetch u"

    async def test_call_made_by_an_object(self, rt: durable.Runtime, stub: Any) -> None:
        """Pipelining inside an object's method, on a stub it was given."""
        other = rt.namespace(Obj).get_by_name("b")
        assert await stub.relay(other) == 4


class TestCancel:
    """asyncio only: workerd's promises cannot be cancelled."""

    async def test_cancelling_a_pipelined_call_leaves_the_first(self, stub: Any) -> None:
        """Cancelling ``p.inc(1)`` cancelled ``p`` (the task that made the call awaited it), and
        with it the first call in the object."""
        promise = stub.slow_counter(1)
        pipelined = promise.inc(1)
        await asyncio.sleep(0)
        pipelined.cancel()
        assert await (await promise).value == 1
        assert await stub.get_log() == ["slow_counter1"]

    async def test_cancelling_a_pipelined_read_leaves_the_first(self, stub: Any) -> None:
        """As asyncio.wait_for does to a read that times out."""
        promise = stub.slow_counter(2)
        read = asyncio.ensure_future(promise.value)
        await asyncio.sleep(0)  # (the read waits for the first call now)
        read.cancel()
        assert await (await promise).value == 2

    async def test_pipelined_on_a_cancelled_call(self, stub: Any) -> None:
        promise = stub.slow_counter(3)
        pipelined, read = promise.inc(1), asyncio.ensure_future(promise.value)
        promise.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pipelined
        with pytest.raises(asyncio.CancelledError):
            await read

    async def test_cancelled_pipelined_call_is_not_made(self, stub: Any) -> None:
        promise = stub.slow_counter(4)
        promise.inc(1).cancel()
        counter = await promise
        assert await counter.inc(10) == 14
        assert await stub.get_log() == ["slow_counter4", "inc10"]


class TestLoops:
    @needs_eager_tasks
    async def test_with_eager_tasks(self, stub: Any) -> None:
        """With asyncio's eager task factory (3.12+), pipelined calls and reads still run on the
        first call's result, which runs once."""
        with eager_tasks():
            promise = stub.get_counter(2)
            assert list(await asyncio.gather(promise.inc(1), promise.inc(1), promise.value)) == [3, 4, 4]
            assert await stub.get_config().nested.x == 1
        assert await stub.get_calls() == 1

    async def test_from_another_threads_loop(self, stub: Any) -> None:
        """From asyncio.run on another thread: the first call is forwarded to the runtime's loop
        (its promise is the caller loop's), the pipelined call is made on its result from there."""

        async def pipelined() -> list[Any]:
            return [await stub.get_counter(5).inc(1), await stub.get_config().name]

        assert await asyncio.to_thread(asyncio.run, pipelined()) == [6, "cfg"]

    async def test_on_a_blocking_runtimes_target(self) -> None:
        """A BlockingRuntime's call returns its result, an RpcTarget's stub (the async kind):
        calls on it pipeline in the caller's asyncio.run."""

        def in_caller_thread() -> Any:
            with durable.BlockingRuntime() as rt:
                counter = rt.namespace(Obj).get_by_name("t").get_counter(5)

                async def pipelined() -> Any:
                    return await counter.again(1).inc(1)

                return asyncio.run(pipelined())

        assert await asyncio.to_thread(in_caller_thread) == 7


class TestProperties:
    async def test_property_of_a_plain_object(self, stub: Any) -> None:
        """workerd: ``getConfig().name`` is "cfg", ``.nested.x`` 1, ``.list`` [1, 2]."""
        assert await stub.get_config().name == "cfg"
        assert await stub.get_config().nested.x == 1
        assert await stub.get_config().list == [1, 2]

    async def test_getter_of_an_rpc_target(self, stub: Any) -> None:
        """workerd: ``getCounter(1).value`` is 1; ``getCounter(1).again(2).value`` is 3."""
        assert await stub.get_counter(1).value == 1
        assert await stub.get_counter(1).again(2).value == 3

    async def test_function_in_a_plain_object(self, stub: Any) -> None:
        """workerd: ``getObjFn().f(3)`` is 6 (the function crossed as a stub)."""
        assert await stub.get_config().f(3) == 6
        assert callable(await stub.get_config().f)


class TestErrors:
    @pytest.mark.parametrize("read", [False, True])
    async def test_missing_member(self, stub: Any, read: bool) -> None:
        """workerd: ``getConfig().missing`` and ``.missing()``, ``getCounter(1).nope`` and
        ``.nope()``: TypeError: The RPC receiver does not implement the method "...".."""
        for promise in (stub.get_config(), stub.get_counter(1)):
            with pytest.raises(TypeError, match=NOT_IMPLEMENTED.format("missing")):
                await (promise.missing if read else promise.missing())

    @pytest.mark.parametrize("value", [None, 42, "abc", [1, 2], 1.5, b"x"])
    @pytest.mark.parametrize("read", [False, True])
    async def test_result_without_members(self, stub: Any, value: Any, read: bool) -> None:
        """workerd: ``.inc(1)`` and ``.name`` on null, undefined, 42, a string, an array (as on a
        Date, a Map, an Error, a Response): The RPC receiver does not implement the method."""
        promise = stub.get_value(value)
        with pytest.raises(TypeError, match=NOT_IMPLEMENTED.format("name")):
            await (promise.name if read else promise.name(1))

    async def test_calling_what_is_not_a_function(self, stub: Any) -> None:
        """workerd: ``getConfig().name()`` and ``getCounter(1).value()``: TypeError: "name" is
        not a function. ("value" for the getter)."""
        with pytest.raises(TypeError, match=r'^"name" is not a function\.$'):
            await stub.get_config().name()
        with pytest.raises(TypeError, match=r'^"value" is not a function\.$'):
            await stub.get_counter(1).value()

    async def test_dup_is_reserved(self, stub: Any) -> None:
        """workerd: ``getT().dup()``, ``await getT().dup`` and ``getObj().dup`` (a plain object
        with a ``dup`` key): TypeError: 'dup' is a reserved method and cannot be called over RPC."""
        for member in (stub.get_counter(1).dup(), stub.get_counter(1).dup, stub.get_config().dup):
            with pytest.raises(TypeError, match=RESERVED_DUP):
                await member

    async def test_errors_of_the_name_are_remote(self, stub: Any) -> None:
        """workerd checks a pipelined name where the result lives: its TypeErrors have ``remote``
        true (miniflare 4.20260426, differential seed 9701: ``make("error").nested``,
        ``getConfig().target(e)``, ``getConfig().dup(m)``, on a target and on a list alike)."""
        members = [
            stub.get_config().missing,
            stub.get_config().missing(),
            stub.get_counter(1).nope(),
            stub.get_value([1]).name,
            stub.get_value(None).name.x(),
            stub.get_config().name(),
            stub.get_counter(1).dup(),
            stub.get_config().dup,
        ]
        for member in members:
            with pytest.raises(TypeError) as error:
                await member
            assert getattr(error.value, "remote", None) is True, error.value

    async def test_path_through_a_primitive_names_the_name_that_reached_it(self, stub: Any) -> None:
        """workerd (miniflare 4.20260426, differential seed 9701): a path walking on from a
        primitive names the member that gave it: ``getConfig().name.nested``, ``.name.nested()``,
        ``.name.a.b()`` and ``getCounter(1).value.x``: does not implement the method "name" (or
        "value"), as ``.list.x`` (an array) "list"; from a plain object without the member, that
        member: ``.nested.nope.x`` "nope"; a call's result starts a new path: ``.f(1).x`` "x"."""
        cases = [
            (stub.get_config().name.nested, "name"),
            (stub.get_config().name.nested(), "name"),
            (stub.get_config().name.a.b(), "name"),
            (stub.get_config().name.dup(), "name"),  # (before dup's refusal: seed 9702)
            (stub.get_counter(1).value.x, "value"),
            (stub.get_counter(1).value.x(), "value"),
            (stub.get_config().nested.nope.x, "nope"),
            (stub.get_config().list.x, "list"),
            (stub.get_config().list.x(), "list"),
            (stub.get_config().f(1).x, "x"),
            (stub.get_value(None).x, "x"),
        ]
        for member, name in cases:
            with pytest.raises(TypeError, match=NOT_IMPLEMENTED.format(name)):
                await member

    async def test_first_call_fails(self, stub: Any) -> None:
        """workerd: ``throws().inc(1)`` and ``throws().name`` raise the first call's TypeError:
        first failed; an async method's RangeError: later, likewise."""
        with pytest.raises(TypeError, match="^first failed$"):
            await stub.throws().inc(1)
        with pytest.raises(TypeError, match="^first failed$"):
            await stub.throws().name
        with pytest.raises(RangeError, match="^later$"):
            await stub.throws_later().inc(1)

    async def test_every_pipelined_call_gets_the_first_calls_error(self, stub: Any) -> None:
        """workerd: awaiting ``p = throws()`` and ``p.inc(1)`` gives two errors of the same class
        and message (two copies there; here the one exception, as two awaits of a future give)."""
        promise = stub.throws()
        pipelined = [promise.inc(1), promise.name.x, promise.again(1).inc(2)]
        with pytest.raises(TypeError, match="^first failed$") as first:
            await promise
        for member in pipelined:
            with pytest.raises(TypeError) as error:
                await member
            assert error.value is first.value

    async def test_error_of_a_pipelined_call(self, stub: Any) -> None:
        """workerd: ``getCounter(1).boom().inc(1)`` raises the RangeError of boom()."""
        with pytest.raises(RangeError, match="^counter boom$"):
            await stub.get_counter(1).boom().inc(1)

    async def test_stub_fetch_is_not_pipelined(self, stub: Any) -> None:
        """workerd: ``stub.fetch(url)`` is a plain Promise (``.status`` undefined): nothing pipelines."""
        promise = stub.fetch("http://do/")
        with pytest.raises(AttributeError, match=r"no attribute 'status': it is not an RPC promise"):
            promise.status
        assert (await promise).status == 200


class TestThroughStubs:
    async def test_callback_stub_received_as_argument(self, stub: Any) -> None:
        """workerd: ``cb(5).inc(2)`` in the object, cb a function returning an RpcTarget: 7; ``cb(5).value`` 5."""
        assert await stub.use_callback(lambda n: Counter(n)) == [7, 5]

    async def test_target_stub_received_as_argument(self, stub: Any) -> None:
        """workerd: ``t.make(7).inc(3)`` in the object, t an RpcTarget: 10; ``t.make(7).value`` 7."""
        assert await stub.use_target(Maker()) == [10, 7]

    async def test_target_in_a_result(self, stub: Any) -> None:
        """workerd: ``getMaker().make(4).inc(1)`` is 5."""
        assert await stub.get_maker().make(4).inc(1) == 5

    async def test_durable_object_stub_in_a_result(self, rt: durable.Runtime, stub: Any) -> None:
        """A Durable Object stub returned by a call (durable lets it cross; miniflare refused to
        serialize one): its methods and fetch pipeline as ``(await p).name`` reaches them."""
        other = rt.namespace(Obj).get_by_name("other")
        assert await stub.get_value(other).ping() == "pong"
        response = await stub.get_value(other).fetch("http://do/x")
        assert await response.text() == "fetched http://do/x"
        assert await stub.get_value(other).name == "other"


class TestProbes:
    """What asyncio, inspect, copy, pickle and hasattr() read of a promise sends nothing."""

    async def test_private_names_and_dunders_stay_attribute_errors(self, stub: Any) -> None:
        promise = stub.get_counter(1)
        for name in ("_private", "__wrapped__", "__array__", "__copy__", "_repr_html_", "cr_frame", "gi_code"):
            assert not hasattr(promise, name), name
            assert not hasattr(promise.inc, name), name
        assert hasattr(promise, "close") == (sys.version_info >= (3, 13))
        await promise
        assert await stub.get_log() == ["get_counter1"]

    async def test_future_names_keep_their_meaning(self, stub: Any) -> None:
        promise = stub.get_counter(1)
        assert asyncio.isfuture(promise) and inspect.isawaitable(promise)
        assert not asyncio.iscoroutine(promise)
        counter = await promise
        assert promise.done() and promise.result() is counter
        assert promise.exception() is None and not promise.cancelled()
        assert promise.get_loop() is asyncio.get_running_loop()

    async def test_tasks_of_promises_are_shown_and_inspected(self, stub: Any) -> None:
        """A task's get_stack() probes its coroutine for cr_frame, gi_frame, ag_frame."""
        task = asyncio.create_task(stub.get_counter(1).inc(1))  # (the task runs the promise)
        assert task.get_stack() == []
        assert await task == 2
        assert await stub.get_log() == ["get_counter1", "inc1"]

    async def test_repr_of_a_task_of_a_promise(self, stub: Any) -> None:
        """asyncio's task repr asserted that its coroutine is one (AssertionError, 3.11 to 3.13)."""
        task = asyncio.create_task(stub.get_counter(1))
        assert "coro=<RpcPromise()>" in repr(task)
        await task
        assert "coro=<RpcPromise()>" in repr(task)
        pipelined = asyncio.create_task(stub.get_counter(1).inc(1))
        assert await pipelined == 2 and "coro=<RpcPromise()>" in repr(pipelined)

    async def test_copy_and_pickle_send_nothing(self, stub: Any) -> None:
        promise = stub.get_counter(1)
        member = promise.inc
        with pytest.raises(TypeError):
            pickle.dumps(member)
        with pytest.raises(TypeError):
            pickle.dumps(promise)
        copy.copy(member)
        await promise
        assert await stub.get_log() == ["get_counter1"]

    async def test_member_repr(self, stub: Any) -> None:
        promise = stub.get_config()
        assert repr(promise.nested.x).startswith("<durable pipelined member nested.x of <RpcPromise")
        await promise


def test_pipelined_call_where_no_loop_runs() -> None:
    """A promise kept past its asyncio.run(): a pipelined call on it says what it needs."""

    async def make() -> Any:
        async with durable.Runtime() as rt:
            promise = rt.namespace(Obj).get_by_name("a").get_counter(1)
            await promise
            return promise

    promise = asyncio.run(make())
    with pytest.raises(RuntimeError, match=r"^a pipelined call \(promise\.name\(\.\.\.\)\) needs a running event loop"):
        promise.inc(1)


@pytest.mark.parametrize(("raised", "expected"), [(StopIteration, RuntimeError), (asyncio.CancelledError, None)])
async def test_a_member_raising_at_once_settles_the_pipelined_promise(raised: type, expected: type | None) -> None:
    """A one-member call is made by a done callback of the first call's promise (``_dispatch``),
    where asyncio only logs what escapes: a member that raises ``StopIteration`` (which a Future
    refuses) or ``CancelledError`` at once fails or cancels the pipelined promise, as the task of a
    longer path does, instead of leaving it pending. (No RPC result reaches this: functions cross
    as callback stubs, whose calls fail their promise; a plain result stands in for one.)"""
    from durable._stub import _promise_on

    loop = asyncio.get_running_loop()
    logged: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: logged.append(context))

    def member() -> None:
        raise raised

    for settled_first in (False, True):
        source = _promise_on(loop)
        if settled_first:
            source.set_result({"f": member})
        pipelined = source.f()
        if not settled_first:
            source.set_result({"f": member})
        await asyncio.wait((pipelined,), timeout=5)
        assert pipelined.done()
        if expected is None:
            assert pipelined.cancelled()
        else:
            assert isinstance(pipelined.exception(), expected)
    assert logged == []
