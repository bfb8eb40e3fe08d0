"""RPC through stubs: which methods are reachable, copying of arguments and results, errors."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import durable
from durable import testing

from helpers import settle


class Base(durable.DurableObject):
    def inherited(self) -> str:
        return "from base"


class Obj(Base):
    constructed = 0
    answer = 42
    release: asyncio.Event | None = None

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        type(self).constructed += 1
        self.items: list[Any] = []
        self.callable_attr = lambda: "instance attribute"

    async def add(self, item: Any) -> list[Any]:
        self.items.append(item)
        return self.items

    async def save(self, item: Any) -> None:
        await self.ctx.storage.put("item", item)

    async def wait_then_add(self, item: Any) -> list[Any]:
        assert Obj.release is not None
        await Obj.release.wait()
        self.items.append(item)
        return self.items

    def returns_awaitable(self, value: int) -> Any:
        async def later() -> int:
            await asyncio.sleep(0)
            return value * 2

        return later()

    async def shadowed(self) -> str:
        return "class method"

    def shadow(self) -> None:
        setattr(self, "shadowed", lambda: "instance attribute")

    def plain(self, a: int, *, b: int = 0) -> int:
        return a + b

    async def mutate(self, value: dict[str, Any]) -> dict[str, Any]:
        value["touched"] = True
        return value

    async def fail(self, cls_name: str) -> None:
        raise {"ValueError": ValueError, "KeyError": KeyError, "Custom": CustomError}[cls_name]("went wrong")

    def returns_unclonable(self) -> object:
        return object()

    def returns_function(self) -> object:
        return len

    @property
    def prop(self) -> str:
        return "property value"

    def _private(self) -> None:
        raise AssertionError("must not be reachable")

    async def alarm(self, info: durable.AlarmInfo) -> None:
        raise AssertionError("must not be reachable")

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("fetched")


class Special(durable.DurableObject):
    """Names whose reach over RPC workerd decides in its own way."""

    def connect(self, who: str) -> str:
        return f"connected {who}"

    write_only = property(None, lambda self, value: None)


class TestSpecialNames:
    async def test_connect_is_not_called_over_rpc(self) -> None:
        """workerd (miniflare 4, 2026-04-07): ``stub.connect("alice")`` on an object whose class
        defines ``connect(x)`` raises ``TypeError: Specified address is missing port.``, as the
        stub's own socket API, and never calls the method; ``stub.webSocketOpen()`` (not a handler
        name) answers."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Special).get_by_name("a")
            with pytest.raises(TypeError, match='^The RPC receiver does not implement the method "connect".') as info:
                await stub.connect("alice")
            assert "another name" in str(info.value)

    async def test_setter_alone_is_not_implemented(self) -> None:
        """workerd (miniflare 4, 2026-04-07): reading or calling an accessor with a setter alone
        raises ``TypeError: The RPC receiver does not implement the method "onlySet".``"""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Special).get_by_name("a")
            message = '^The RPC receiver does not implement the method "write_only".$'
            with pytest.raises(TypeError, match=message):
                await stub.write_only
            with pytest.raises(TypeError, match=message):
                await stub.write_only()


class CustomError(Exception):
    def __init__(self, message: str, extra: int = 0) -> None:
        super().__init__(message)
        self.extra = extra


@pytest.fixture
async def ns() -> Any:
    Obj.constructed = 0
    async with durable.Runtime() as rt:
        yield rt.namespace(Obj)


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every ``ObjectDatabase.commit`` call from now on, as whether it had writes to commit."""
    from durable._sqlite import ObjectDatabase

    seen: list[bool] = []
    original = ObjectDatabase.commit

    def counting(db: ObjectDatabase) -> None:
        seen.append(db.in_transaction)
        original(db)

    monkeypatch.setattr(ObjectDatabase, "commit", counting)
    return seen


class TestReachability:
    async def test_public_methods_are_callable(self, ns: Any) -> None:
        """Public methods, async or plain, defined on the class or a base below DurableObject answer."""
        stub = ns.get_by_name("a")
        assert await stub.plain(1, b=2) == 3
        assert await stub.add("x") == ["x"]
        assert await stub.inherited() == "from base"

    @pytest.mark.parametrize("name", ["_private", "__init__", "callable_attr", "missing", "ctx", "env", "fetch"])
    async def test_unreachable_names(self, ns: Any, name: str) -> None:
        """Private names, instance attributes, unknown names and fetch give Cloudflare's TypeError."""
        stub = ns.get_by_name("a")
        method = durable.RpcMethod(stub, name)
        with pytest.raises(TypeError, match=f'^The RPC receiver does not implement the method "{name}".$'):
            await method()

    @pytest.mark.parametrize(
        "name", ["alarm", "webSocketMessage", "webSocketClose", "webSocketError", "dup", "constructor"]
    )
    async def test_reserved_names(self, ns: Any, name: str) -> None:
        """Reserved handler names cannot be called over RPC."""
        with pytest.raises(TypeError, match=f"^'{name}' is a reserved method and cannot be called over RPC.$"):
            await getattr(ns.get_by_name("a"), name)()

    async def test_non_function_attribute_called(self, ns: Any) -> None:
        """Calling a class attribute that is not a function raises Cloudflare's TypeError."""
        with pytest.raises(TypeError, match='^"answer" is not a function.$'):
            await ns.get_by_name("a").answer()

    async def test_properties_are_read_by_awaiting(self, ns: Any) -> None:
        """Awaiting stub.name without calling it reads a property or class attribute."""
        stub = ns.get_by_name("a")
        assert await stub.prop == "property value"
        assert await stub.answer == 42

    async def test_errors_are_remote_copies(self, ns: Any) -> None:
        """An exception in the object reaches the caller with its class, message and remote=True."""
        stub = ns.get_by_name("a")
        with pytest.raises(ValueError, match="^went wrong$") as info:
            await stub.fail("ValueError")
        assert info.value.remote is True  # type: ignore[attr-defined]
        assert info.value.__traceback__ is not None and info.value.__cause__ is None

    async def test_custom_exception_class_is_kept(self, ns: Any) -> None:
        """A user-defined exception class travels, without its extra attributes."""
        with pytest.raises(CustomError) as info:
            await ns.get_by_name("a").fail("Custom")
        assert str(info.value) == "went wrong" and info.value.extra == 0

    async def test_user_error_does_not_reset(self, ns: Any) -> None:
        """An ordinary exception fails only that call: the instance and stub keep working."""
        stub = ns.get_by_name("a")
        await stub.add(1)
        with pytest.raises(KeyError):
            await stub.fail("KeyError")
        assert await stub.add(2) == [1, 2]
        assert Obj.constructed == 1

    async def test_sync_method_returning_an_awaitable(self, ns: Any) -> None:
        """A plain method's awaitable result is awaited, on every call (first and later ones)."""
        stub = ns.get_by_name("a")
        assert [await stub.returns_awaitable(i) for i in range(3)] == [0, 2, 4]

    async def test_instance_attribute_does_not_shadow_a_method(self, ns: Any) -> None:
        """RPC reaches the class's method even when the instance has an attribute of that name."""
        stub = ns.get_by_name("a")
        assert await stub.shadowed() == "class method"
        await stub.shadow()
        assert await stub.shadowed() == "class method"
        assert await testing.run_in_object(stub, lambda obj, ctx: getattr(obj, "shadowed")()) == "instance attribute"

    async def test_method_replaced_on_the_class_is_called(self, ns: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """A method patched on the class (as tests do) is what later calls reach, and unpatched again."""
        stub = ns.get_by_name("a")
        assert await stub.plain(1) == 1

        def patched(self: Any, a: int, *, b: int = 0) -> str:
            return f"patched {a}"

        with monkeypatch.context() as patch:
            patch.setattr(Obj, "plain", patched)
            assert await stub.plain(1) == "patched 1"
            assert await stub.plain(2) == "patched 2"
        assert await stub.plain(3) == 3


class TestCopying:
    async def test_arguments_are_copied(self, ns: Any) -> None:
        """The object gets a copy of its arguments: its changes do not reach the caller's value."""
        value = {"a": [1, 2]}
        result = await ns.get_by_name("a").mutate(value)
        assert value == {"a": [1, 2]}
        assert result == {"a": [1, 2], "touched": True}

    async def test_results_are_copied(self, ns: Any) -> None:
        """The caller gets a copy of the result: changing it does not change the object's state."""
        stub = ns.get_by_name("a")
        items = await stub.add("x")
        items.append("caller's change")
        assert await stub.add("y") == ["x", "y"]

    async def test_unclonable_argument(self, ns: Any) -> None:
        """An argument that cannot be cloned raises DataCloneError before anything is sent."""
        with pytest.raises(durable.DataCloneError, match="object"):
            await ns.get_by_name("a").add(object())
        assert Obj.constructed == 0

    async def test_unclonable_result(self, ns: Any) -> None:
        """A result that cannot be cloned fails the call with DataCloneError."""
        with pytest.raises(durable.DataCloneError):
            await ns.get_by_name("a").returns_unclonable()


class Introducer(durable.DurableObject):
    """Takes and gives stubs over RPC."""

    async def whoami(self) -> str | None:
        return self.ctx.id.name

    async def ask(self, other: Any) -> str | None:
        name: str | None = await other.whoami()
        return name

    async def give(self, name: str) -> Any:
        return self.env.INTRO.get_by_name(name)

    async def store(self, value: Any) -> None:
        await self.ctx.storage.put("k", value)


class TestStubsCrossRpc:
    """As in workerd (measured with miniflare 2026-12-06), a stub may be an RPC argument or result."""

    async def test_stub_argument(self) -> None:
        """The receiver calls the object the stub it was given reaches."""
        async with durable.Runtime() as rt:
            intro = rt.namespace(Introducer, name="INTRO")
            assert await intro.get_by_name("a").ask(intro.get_by_name("b")) == "b"

    async def test_stub_result(self) -> None:
        """A stub returned by an object reaches the object it names."""
        async with durable.Runtime() as rt:
            intro = rt.namespace(Introducer, name="INTRO")
            other = await intro.get_by_name("a").give("c")
            assert isinstance(other, durable.Stub) and other.id == intro.id_from_name("c")
            assert await other.whoami() == "c"

    async def test_stub_not_stored_nor_id_sent(self) -> None:
        """Storage refuses a stub, naming what to store; an id crosses neither (as in workerd)."""
        async with durable.Runtime() as rt:
            intro = rt.namespace(Introducer, name="INTRO")
            stub = intro.get_by_name("a")
            with pytest.raises(durable.DataCloneError, match=r"store str\(stub\.id\)"):
                await stub.store(intro.get_by_name("b"))
            with pytest.raises(durable.DataCloneError, match='"DurableObjectId"'):
                await stub.ask(intro.id_from_name("b"))


class TestInstances:
    async def test_stub_is_lazy(self, ns: Any) -> None:
        """Making ids and stubs constructs nothing."""
        ns.get(ns.id_from_name("a"))
        ns.get_by_name("b")
        assert Obj.constructed == 0

    async def test_one_live_instance_per_id(self, ns: Any) -> None:
        """Every stub for one id reaches the same instance; other ids get their own."""
        await ns.get_by_name("a").add(1)
        await ns.get(ns.id_from_name("a")).add(2)
        assert await ns.get(ns.id_from_string(str(ns.id_from_name("a")))).add(3) == [1, 2, 3]
        assert await ns.get_by_name("b").add(9) == [9]
        assert Obj.constructed == 2

    async def test_concurrent_first_calls_construct_once(self, ns: Any) -> None:
        """Many calls racing to a new object construct it exactly once."""
        stub = ns.get_by_name("a")
        await asyncio.gather(*(stub.add(i) for i in range(50)))
        assert Obj.constructed == 1
        assert sorted(await stub.add(50)) == list(range(51))

    async def test_eviction_reruns_constructor(self, ns: Any) -> None:
        """After eviction the next call builds a fresh instance: in-memory fields are gone."""
        stub = ns.get_by_name("a")
        await stub.add(1)
        await testing.evict(stub)
        assert await stub.add(2) == [2]
        assert Obj.constructed == 2

    async def test_stub_properties(self, ns: Any) -> None:
        """stub.id is the id it was made with and stub.name its name."""
        oid = ns.id_from_name("a")
        stub = ns.get(oid)
        assert stub.id == oid and stub.name == "a"
        assert ns.get(ns.new_unique_id()).name is None

    def test_stub_has_no_public_constructor(self) -> None:
        """Stubs are made by namespaces only."""
        with pytest.raises(TypeError, match="no public constructor"):
            durable.Stub()  # type: ignore[call-arg]


class Relay(durable.DurableObject):
    """Makes calls to Obj without awaiting them."""

    async def fire_and_forget(self, name: str, item: int) -> str:
        self.env.OBJ.get_by_name(name).add(item)  # not awaited: it runs all the same
        return "sent"

    async def save_in(self, name: str, item: int) -> None:
        await self.env.OBJ.get_by_name(name).save(item)


class TestRpcPromise:
    """``stub.method(...)`` makes the call at once and returns an RpcPromise, as Cloudflare does."""

    async def test_call_is_made_without_await(self, ns: Any) -> None:
        """An RPC call nobody awaits still runs (the reference: "An emulator should still run them")."""
        stub = ns.get_by_name("a")
        promise = stub.add(1)
        assert isinstance(promise, durable.RpcPromise)
        del promise
        gc.collect()  # no "coroutine was never awaited": nothing was left unstarted
        assert await stub.add(2) == [1, 2]

    async def test_tasks_awaiting_in_one_turn_share_a_commit(self, ns: Any, commits: list[bool]) -> None:
        """Awaited calls from one task commit one by one; from many tasks in one turn, together."""
        stub = ns.get_by_name("commits")
        for item in range(3):
            await stub.save(item)  # each commits before the next starts: no loop turn in between
        assert commits.count(True) == 3
        commits.clear()

        async def save(item: int) -> None:
            await stub.save(item)

        await asyncio.gather(*(asyncio.create_task(save(item)) for item in range(10)))
        # The first task commits at once; the nine others, in the same turn, share the turn's commit.
        assert commits.count(True) == 2
        assert await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("item")) == 9

    async def test_objects_calling_one_object_in_one_turn_share_a_commit(self, commits: list[bool]) -> None:
        """Calls from many objects that reach one object in the same turn share its commit."""
        async with durable.Runtime() as rt:
            target = rt.namespace(Obj, name="OBJ").get_by_name("target")
            relays = [rt.namespace(Relay, name="RELAY").get_by_name(f"r{i}") for i in range(10)]
            await asyncio.gather(*(relay.save_in("target", i) for i, relay in enumerate(relays)))
            assert commits.count(True) == 2  # the first call's at once; the nine others' together
            assert await testing.run_in_object(target, lambda obj, ctx: ctx.storage.get("item")) == 9

    async def test_unawaited_error_is_dropped(self, ns: Any, caplog: pytest.LogCaptureFixture) -> None:
        """The error of a call nobody awaits is swallowed, as Cloudflare swallows it (nothing is logged)."""
        stub = ns.get_by_name("a")
        promise = stub.fail("ValueError")
        await asyncio.sleep(0)
        assert promise.done()
        del promise
        gc.collect()
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
        assert await stub.plain(1, b=2) == 3  # an ordinary error does not break the stub

    async def test_awaited_error_is_raised(self, ns: Any) -> None:
        with pytest.raises(ValueError, match="went wrong"):
            await ns.get_by_name("a").fail("ValueError")

    async def test_unawaited_reset_breaks_the_stub(self, ns: Any) -> None:
        """A reset error breaks the stub whether or not the failed call was awaited."""
        stub = ns.get_by_name("a")
        testing.fail_next_commit(stub)
        stub.save(1)  # its write cannot commit: the object is reset
        await asyncio.sleep(0)
        with pytest.raises(durable.ObjectResetError):
            await stub.plain(1)
        assert await ns.get_by_name("a").add(2) == [2]  # a new stub reaches a fresh instance

    async def test_works_with_asyncio_and_anyio(self, ns: Any) -> None:
        """A promise is a Future that asyncio.Task takes too: every asyncio way of waiting takes it."""
        import anyio

        stub = ns.get_by_name("a")
        done, _ = await asyncio.wait([stub.plain(0)])
        assert [t.result() for t in done] == [0]
        assert await asyncio.create_task(stub.plain(1)) == 1
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(stub.plain(2))
        assert task.result() == 2
        assert await asyncio.wait_for(stub.plain(3), timeout=10) == 3
        assert list(await asyncio.gather(stub.plain(4), stub.plain(5))) == [4, 5]
        assert await asyncio.shield(stub.plain(6)) == 6

        async def add(value: int) -> Any:  # anyio's start_soon wants a coroutine function
            return await stub.add(value)

        async with anyio.create_task_group() as group:
            group.start_soon(add, 7)
        assert await stub.add(8) == [7, 8]

    async def test_cancelling_the_wait_does_not_stop_the_call(self, ns: Any) -> None:
        """A caller that stops waiting does not cancel the object's work (Cloudflare does not either)."""
        Obj.release = asyncio.Event()
        stub = ns.get_by_name("a")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stub.wait_then_add(1), timeout=0)
        Obj.release.set()
        await settle(3)
        assert await stub.add(2) == [1, 2]

    async def test_call_made_by_an_object_runs_unawaited(self) -> None:
        """An object's un-awaited call to another object is made too."""
        async with durable.Runtime() as rt:
            rt.namespace(Obj, name="OBJ")
            rt.namespace(Relay, name="RELAY")
            assert await rt.env.RELAY.get_by_name("r").fire_and_forget("x", 5) == "sent"
            await settle(3)
            assert await rt.env.OBJ.get_by_name("x").add(6) == [5, 6]

    def test_outside_an_event_loop_a_coroutine(self) -> None:
        """Where no loop runs, a call is a coroutine, made when awaited: asyncio.run(stub.m()) works."""
        rt = durable.Runtime()
        stub = rt.namespace(Obj).get_by_name("a")
        call = stub.plain(1, b=1)
        assert asyncio.iscoroutine(call) and not isinstance(call, asyncio.Future)
        assert asyncio.run(call) == 2


class TestEnv:
    async def test_env_has_named_namespaces_and_vars(self) -> None:
        """rt.env exposes namespaces registered with name= and the vars given to the runtime."""

        class Caller(durable.DurableObject):
            async def call_other(self) -> int:
                result: int = await self.env.OBJ.get_by_name("x").plain(1, b=self.env.BONUS)
                return result

        async with durable.Runtime(vars={"BONUS": 10}) as rt:
            rt.namespace(Obj, name="OBJ")
            callers = rt.namespace(Caller)
            assert rt.env.BONUS == 10 and "OBJ" in rt.env and "Caller" not in rt.env
            assert await callers.get_by_name("c").call_other() == 11
            with pytest.raises(AttributeError, match="no binding 'NOPE'"):
                rt.env.NOPE

    async def test_namespace_registration_errors(self) -> None:
        """Registering a non-object, an unknown backend or a taken name raises clearly."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError, match="DurableObject subclass"):
                rt.namespace(int)
            with pytest.raises(ValueError, match="storage must be"):
                rt.namespace(Obj, storage="redis")
            rt.namespace(Obj, name="X")
            assert rt.namespace(Obj, name="X").name == "X"
            with pytest.raises(ValueError, match="already registered"):
                rt.namespace(Base, name="X")

    async def test_a_name_given_later_binds_the_namespace(self) -> None:
        """``rt.namespace(C)`` then ``rt.namespace(C, name="C")``: the same namespace, now on env
        (it was never bound, while the error told to do exactly that)."""
        async with durable.Runtime() as rt:
            first = rt.namespace(Obj)
            assert rt.namespace(Obj, name="Obj") is first and rt.env.Obj is first

    async def test_a_refused_registration_leaves_nothing_behind(self) -> None:
        """A name env already has (a var) refuses the registration whole, every time."""
        async with durable.Runtime(vars={"X": 1}) as rt:
            for _ in range(2):
                with pytest.raises(ValueError, match="env already has a binding named 'X'"):
                    rt.namespace(Obj, name="X")
            assert rt.env.X == 1

    async def test_closed_runtime_refuses_calls(self) -> None:
        """A closed runtime raises RuntimeClosedError, a RuntimeError that says what to do."""
        rt = durable.Runtime()
        ns = rt.namespace(Obj)
        await rt.aclose()
        with pytest.raises(durable.RuntimeClosedError, match="closed"):
            await ns.get_by_name("a").plain(1)
        with pytest.raises(RuntimeError):
            rt.namespace(Base)
        await rt.aclose()  # idempotent


class TestNotImplemented:
    async def test_pitr_apis_raise_not_implemented(self) -> None:
        """APIs durable does not emulate raise NotImplementedError naming themselves, in both spellings."""

        async with durable.Runtime() as rt:
            stub = rt.namespace(Base).get_by_name("a")

            def probe(obj: Any, ctx: Any) -> list[str]:
                messages = []
                calls: list[Any] = [
                    lambda: ctx.storage.get_current_bookmark(),
                    lambda: ctx.storage.onNextSessionRestoreBookmark("x"),
                ]
                for call in calls:
                    with pytest.raises(NotImplementedError) as info:
                        call()
                    messages.append(str(info.value))
                return messages

            messages = await testing.run_in_object(stub, probe)
            assert "Point-in-time recovery" in messages[0] and "Point-in-time recovery" in messages[1]

    async def test_functions_over_rpc_become_callback_stubs(self, ns: Any) -> None:
        """workerd sends a function as a callback stub (tests/test_rpc_targets.py has the rest)."""
        stub = ns.get_by_name("a")
        assert callable((await stub.add(lambda: None))[0])
        assert callable(await stub.returns_function())
        assert len(await stub.add("still works")) == 2


class Cancels(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.calls = 0

    async def awaits_a_cancelled_task(self) -> None:
        self.calls += 1
        helper = asyncio.ensure_future(asyncio.sleep(10))
        asyncio.get_running_loop().call_later(0.01, helper.cancel)
        await helper

    async def count(self) -> int:
        return self.calls


class TestCancelledInsideAMethod:
    async def test_a_cancelled_helper_is_an_error_of_the_call(self) -> None:
        """A CancelledError the method's own code raised (a task it awaited was cancelled) reaches
        the caller as a DurableError that says so: not retryable, not a cancellation of the
        caller, and neither the stub nor the instance is broken."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Cancels).get_by_name("c")
            for _ in range(2):
                with pytest.raises(durable.DurableError, match="raised asyncio.CancelledError") as info:
                    await stub.awaits_a_cancelled_task()
                assert not isinstance(info.value, asyncio.CancelledError)
                assert (info.value.retryable, info.value.remote, info.value.durable_object_reset) == (
                    False,
                    True,
                    False,
                )
            assert await stub.count() == 2  # the same stub, the same instance


class Tagged(Exception):
    """Formats its message in __init__ (so running it again would format it twice)."""

    def __init__(self, msg: str, status: int = 500) -> None:
        super().__init__(f"[{status}] {msg}")


class HttpError(Exception):
    """Says its message through __str__, from an attribute __init__ sets."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status

    def __str__(self) -> str:
        return f"HTTP {self.status}"


class ApiError(Exception):
    """Needs two arguments and says its message through attributes its __init__ sets."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


class Unsayable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class Raises(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.data = {"secret": "kept"}

    def tagged(self) -> None:
        raise Tagged("not found", 404)

    def http(self) -> None:
        raise HttpError(418)

    def holds(self) -> None:
        raise ValueError(self.data)

    def secret(self) -> Any:
        return self.data

    def group(self) -> None:
        raise ExceptionGroup("two", [KeyError("k"), Tagged("inner", 409)])

    def stop(self) -> None:
        raise StopIteration("done")

    async def via(self, name: str) -> None:
        await self.env.RAISES.get_by_name(name).abort_me()

    def abort_me(self) -> None:
        self.ctx.abort("the other one")

    def hi(self) -> str:
        return "hi"

    def api(self) -> None:
        raise ApiError(404, "missing")

    def unsayable(self) -> None:
        raise Unsayable("x")

    async def relay(self, method: str) -> None:
        await getattr(self.env.RAISES.get_by_name("other"), method)()


class TestErrorCopies:
    @pytest.mark.parametrize("through", [False, True])
    async def test_errors_that_are_hard_to_copy_still_reach_the_caller(self, through: bool) -> None:
        """An error whose __str__ reads attributes its __init__ set (with another signature), or
        whose __str__ fails, still reaches the caller, directly or let through another object
        (the caller used to wait forever when copying it raised)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Raises, name="RAISES").get_by_name("a")
            with pytest.raises(ApiError) as api:
                await asyncio.wait_for(stub.relay("api") if through else stub.api(), 5)
            assert str(api.value) == "404: missing" and api.value.status == 404
            with pytest.raises(Unsayable):
                await asyncio.wait_for(stub.relay("unsayable") if through else stub.unsayable(), 5)

    async def test_the_message_is_the_one_raised(self) -> None:
        """The caller sees the object's message: a class that formats its message in __init__ is
        not run again on it (it said "[500] [404] not found"), one that says it through an
        attribute is (its __str__ needs it)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Raises, name="RAISES").get_by_name("a")
            with pytest.raises(Tagged) as tagged:
                await stub.tagged()
            assert str(tagged.value) == "[404] not found" and tagged.value.remote is True  # type: ignore[attr-defined]
            with pytest.raises(HttpError) as http:
                await stub.http()
            assert str(http.value) == "HTTP 418"

    async def test_arguments_are_copies(self) -> None:
        """An exception's arguments are copied like any value crossing RPC: the caller cannot
        change the object's data through them."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Raises, name="RAISES").get_by_name("a")
            with pytest.raises(ValueError) as info:
                await stub.holds()
            info.value.args[0]["secret"] = "changed by the caller"
            assert await stub.secret() == {"secret": "kept"}

    async def test_groups_and_stop_iteration(self) -> None:
        """An ExceptionGroup's members are copies too (remote, messages kept); a StopIteration,
        which no future may hold, arrives as a RuntimeError naming it."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Raises, name="RAISES").get_by_name("a")
            with pytest.raises(ExceptionGroup) as group:
                await stub.group()
            inner = group.value.exceptions
            assert [type(e).__name__ for e in inner] == ["KeyError", "Tagged"] and str(inner[1]) == "[409] inner"
            assert all(getattr(e, "remote", False) for e in inner)
            with pytest.raises(RuntimeError, match="^the handler raised StopIteration: done$"):
                await stub.stop()
            assert await stub.hi() == "hi"

    async def test_a_reset_let_through_does_not_break_the_callers_stub(self) -> None:
        """A's call to B fails because B was reset; A lets the error through. Its caller gets the
        error, remote, without the reset flag, and its stub to A keeps working (workerd:
        "B aborted remote=true reset=undefined", then A answers)."""
        async with durable.Runtime() as rt:
            a = rt.namespace(Raises, name="RAISES").get_by_name("a")
            with pytest.raises(durable.ObjectAbortedError, match="the other one") as info:
                await a.via("b")
            assert info.value.durable_object_reset is False and info.value.remote is True
            assert await a.hi() == "hi"


class TestClockInsideObjects:
    async def test_now_ms_follows_the_runtime_clock(self) -> None:
        """ctx.now_ms() reads the runtime's clock, so a mock clock moves it."""
        clock = testing.MockClock(start=1_700_000_000)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Base).get_by_name("a")
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.now_ms()) == 1_700_000_000_000
            await clock.advance(2.5)
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.now_ms()) == 1_700_000_002_500


class TestResolveCache:
    def test_a_resolved_class_is_not_kept_alive(self) -> None:
        """The RPC resolution cache holds classes weakly: a class made in a test can be collected."""
        import weakref

        from durable._object import _rpc_cache, resolve_rpc, rpc_table

        class Ephemeral(durable.DurableObject):
            def ping(self) -> str:
                return "pong"

        assert resolve_rpc(Ephemeral, "ping") is Ephemeral.__dict__["ping"]
        assert "ping" in rpc_table(Ephemeral)
        assert Ephemeral in _rpc_cache
        ref = weakref.ref(Ephemeral)
        del Ephemeral
        gc.collect()
        assert ref() is None

    def test_resolve_rpc_is_next_to_reserved_methods(self) -> None:
        """resolve_rpc raises Cloudflare's TypeErrors for reserved, private and missing names."""
        from durable._object import resolve_rpc

        with pytest.raises(TypeError, match="'alarm' is a reserved method and cannot be called over RPC."):
            resolve_rpc(Obj, "alarm")
        with pytest.raises(TypeError, match='The RPC receiver does not implement the method "_private".'):
            resolve_rpc(Obj, "_private")
        assert resolve_rpc(Obj, "plain") is Obj.__dict__["plain"]


class _GreetingMixin:
    """A plain mixin with a public method, for TestMixinAfterDurableObject."""

    async def greet(self, name: str) -> str:
        return f"hello {name}"

    def _hidden(self) -> int:
        return 1


class _MixedAfter(durable.DurableObject, _GreetingMixin):
    async def own(self) -> str:
        return "own"


class TestMixinAfterDurableObject:
    async def test_a_mixin_listed_after_durable_object_is_reachable(self) -> None:
        """`class X(DurableObject, Mixin)` puts the mixin after DurableObject in the method
        resolution order; its public methods are the class's methods all the same (workers-py
        reaches any attribute of the instance), and its private ones stay unreachable."""
        async with durable.Runtime() as rt:
            stub: Any = rt.namespace(_MixedAfter).get_by_name("a")
            assert await stub.own() == "own"
            assert await stub.greet("you") == "hello you"
            with pytest.raises(TypeError, match='does not implement the method "_hidden"'):
                await stub._hidden()
            with pytest.raises(TypeError, match='does not implement the method "nothing"'):
                await stub.nothing()
