"""What crosses a stub when a call fails, where durable once differed from workerd (measured with
miniflare 4, compatibility date 2026-04-07, a Worker calling a Durable Object's methods)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable


class Flags(durable.DurableObject):
    async def ok(self) -> str:
        return "ok"

    async def raise_with(self, flags: dict[str, bool]) -> None:
        error = ValueError("m")
        for name, value in flags.items():
            setattr(error, name, value)
        raise error


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime() as runtime:
        yield runtime


def flags_of(error: BaseException) -> dict[str, Any]:
    return {
        "remote": getattr(error, "remote", None),
        "retryable": bool(getattr(error, "retryable", False)),
        "overloaded": bool(getattr(error, "overloaded", False)),
        "durable_object_reset": bool(getattr(error, "durable_object_reset", False)),
    }


class TestFlagsSetByTheApplication:
    """workerd, for `const e = new Error("m"); Object.assign(e, flags); throw e;` in a method: the caller
    gets `remote: true`, `retryable` and `overloaded` as set (only `overloaded` when both are), never
    `durableObjectReset`, and the same stub answers the next call ("ok")."""

    @pytest.mark.parametrize(
        ("flags", "seen"),
        [
            ({"retryable": True}, {"retryable": True}),
            ({"overloaded": True}, {"overloaded": True}),
            ({"durable_object_reset": True}, {}),
            ({"retryable": True, "overloaded": True}, {"overloaded": True}),
            ({"remote": False}, {}),
            ({"overloaded": True, "durable_object_reset": True}, {"overloaded": True}),
            ({"retryable": True, "durable_object_reset": True}, {"retryable": True}),
        ],
    )
    async def test_flags_and_the_stub(self, rt: durable.Runtime, flags: dict[str, bool], seen: dict[str, bool]) -> None:
        stub = rt.namespace(Flags).get_by_name("a")
        with pytest.raises(ValueError, match="^m$") as info:
            await stub.raise_with(flags)
        expected = {"remote": True, "retryable": False, "overloaded": False, "durable_object_reset": False}
        assert flags_of(info.value) == expected | seen
        assert await stub.ok() == "ok"  # the stub is not broken

    async def test_an_unawaited_call_does_not_break_the_stub(self, rt: durable.Runtime) -> None:
        stub = rt.namespace(Flags).get_by_name("a")
        stub.raise_with({"overloaded": True, "durable_object_reset": True})
        stub.raise_with({"retryable": True})
        assert await stub.ok() == "ok"


class Writes(durable.DurableObject):
    async def write(self, key: str) -> str:
        await asyncio.sleep(0.02)
        await self.ctx.storage.put(key, True)
        return key

    async def fetch(self, request: durable.Request) -> durable.Response:
        await self.write(request.url.rsplit("/", 1)[1] + await request.text())
        return durable.Response("written")

    async def write_request(self, request: durable.Request) -> str:
        return await self.write(request.url.rsplit("/", 1)[1] + await request.text())

    async def written(self, keys: list[str]) -> list[str]:
        found = await self.ctx.storage.get(keys)
        return sorted(found)


KEYS = [
    "cancelled", "wait_for", "task", "unawaited", "fetch_wait_for", "fetch_unawaited",
    "fetch_streamed:body", "rpc_streamed:body",
]  # fmt: skip


async def streamed() -> AsyncIterator[bytes]:
    yield b":body"


async def all_written(stub: Any) -> None:
    """Wait until every call of stop_waiting() has committed its key (each event sleeps 20 ms on
    the real clock first; a loaded machine may take longer than any fixed wait)."""
    written: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while written != sorted(KEYS) and loop.time() < deadline:
        await asyncio.sleep(0.02)
        written = await stub.written(KEYS)
    assert written == sorted(KEYS)


async def stop_waiting(stub: Any) -> Any:
    """Calls a caller makes and stops waiting for at once, in every way asyncio has."""
    promise = stub.write("cancelled")
    promise.cancel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stub.write("wait_for"), 0)
    task = asyncio.ensure_future(stub.write("task"))
    await asyncio.sleep(0)
    task.cancel()
    stub.write("unawaited")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stub.fetch("http://do/fetch_wait_for"), 0)
    # A body streamed on the caller's loop is read there first; the call is sent all the same.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stub.fetch("http://do/fetch_streamed", method="POST", body=streamed()), 0)
    request = durable.Request("http://do/rpc_streamed", method="POST", body=streamed())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stub.write_request(request), 0)
    return asyncio.ensure_future(stub.fetch("http://do/fetch_unawaited"))  # the loop ends now: asyncio.run cancels it


class TestACallerThatStopsWaiting:
    """workerd: a call (or fetch) is made when the stub is called; a caller that disconnects or
    stops waiting does not cancel the object's event, which runs to its end and commits."""

    async def test_on_the_runtimes_loop(self, rt: durable.Runtime) -> None:
        stub = rt.namespace(Writes).get_by_name("a")
        await stop_waiting(stub)
        await all_written(stub)

    async def test_from_another_threads_loop(self, rt: durable.Runtime) -> None:
        """A call made from another thread's loop was withdrawn if its caller stopped waiting
        before the runtime's loop started it, and lost when that thread's asyncio.run ended."""
        stub = rt.namespace(Writes).get_by_name("a")
        await stub.written([])  # the runtime's loop is this one
        await asyncio.to_thread(lambda: asyncio.run(stop_waiting(stub)))
        await all_written(stub)

    async def test_from_another_thread_the_outcome_still_arrives(self, rt: durable.Runtime) -> None:
        stub = rt.namespace(Writes).get_by_name("a")
        await stub.written([])

        async def call() -> list[Any]:
            return [await stub.write("k"), await (await stub.fetch("http://do/f")).text()]

        assert await asyncio.to_thread(lambda: asyncio.run(call())) == ["k", "written"]


class TestAnInstanceOfAClass:
    async def test_the_error_names_the_class_as_workerd_does(self, rt: durable.Runtime) -> None:
        """workerd, for an instance of a class declared inside a function, as a result (`remote`) or
        an argument: `DataCloneError: Could not serialize object of type "Thing". This type does not
        support serialization.` (the constructor's name, without where it was declared)."""

        class Thing:
            def f(self) -> int:
                return 1

        class Returns(durable.DurableObject):
            async def thing(self, arg: Any = None) -> Any:
                return Thing()

        stub = rt.namespace(Returns).get_by_name("a")
        message = '^Could not serialize object of type "Thing". This type does not support serialization.$'
        with pytest.raises(durable.DataCloneError, match=message) as info:
            await stub.thing()
        assert info.value.remote is True
        with pytest.raises(durable.DataCloneError, match=message):
            await stub.thing(Thing())


class Passes(durable.DurableObject):
    """A calls B; B raises an error with flags; A lets it through, or catches it and changes it."""

    async def raise_with(self, flags: dict[str, bool]) -> None:
        error = TypeError("m")
        for name, value in flags.items():
            setattr(error, name, value)
        raise error

    async def abort(self) -> None:
        self.ctx.abort("why")

    async def overloaded(self) -> None:
        raise durable.OverloadedError("busy")

    async def ok(self) -> str:
        return "ok"

    async def through(self, target: str, method: str, *args: Any) -> Any:
        return await getattr(self.env.PASSES.get_by_name(target), method)(*args)

    async def changed(self, target: str, method: str, flags: dict[str, bool]) -> Any:
        try:
            return await getattr(self.env.PASSES.get_by_name(target), method)()
        except Exception as error:
            for name, value in flags.items():
                setattr(error, name, value)
            raise

    async def fetch(self, request: durable.Request) -> durable.Response:
        await self.through("b", "raise_with", {"retryable": True})
        return durable.Response("unreached")


class TestFlagsOfAnErrorLetThrough:
    """workerd (miniflare 4, 2026-04-07), A calling B, B throwing `Object.assign(new TypeError("m"),
    flags)`, A letting it through (or catching and rethrowing it): A's caller gets `remote: true` and
    the `retryable` / `overloaded` B set (only `overloaded` when both are), as B's direct caller does;
    never `durableObjectReset` (for B's `ctx.abort("why")` too: `Error: why`, remote, no reset flag);
    flags A changes on the caught error before rethrowing it are what travel (`e.overloaded = false`
    clears it). Also two hops (A → M → B) and through A's `fetch()`. A's stub keeps working."""

    @pytest.mark.parametrize(
        ("flags", "seen"),
        [
            ({"retryable": True}, {"retryable": True}),
            ({"overloaded": True}, {"overloaded": True}),
            ({"retryable": True, "overloaded": True}, {"overloaded": True}),
            ({"durable_object_reset": True}, {}),
            ({"retryable": False, "overloaded": False}, {}),
        ],
    )
    async def test_flags_of_an_application_error(
        self, rt: durable.Runtime, flags: dict[str, bool], seen: dict[str, bool]
    ) -> None:
        a = rt.namespace(Passes, name="PASSES").get_by_name("a")
        expected = {"remote": True, "retryable": False, "overloaded": False, "durable_object_reset": False} | seen
        with pytest.raises(TypeError, match="^m$") as info:
            await a.through("b", "raise_with", flags)
        assert flags_of(info.value) == expected
        with pytest.raises(TypeError, match="^m$") as info:
            await a.through("m", "through", "b", "raise_with", flags)  # two hops
        assert flags_of(info.value) == expected
        assert await a.ok() == "ok"

    async def test_through_fetch(self, rt: durable.Runtime) -> None:
        a = rt.namespace(Passes, name="PASSES").get_by_name("a")
        with pytest.raises(TypeError, match="^m$") as info:
            await a.fetch("http://do/")
        assert flags_of(info.value) == {
            "remote": True,
            "retryable": True,
            "overloaded": False,
            "durable_object_reset": False,
        }

    async def test_flags_changed_before_the_rethrow(self, rt: durable.Runtime) -> None:
        a = rt.namespace(Passes, name="PASSES").get_by_name("a")
        with pytest.raises(TypeError) as info:
            await a.changed("b", "raise_with", {"overloaded": False})  # B raised it overloaded
        assert flags_of(info.value)["overloaded"] is False
        with pytest.raises(durable.ObjectAbortedError) as aborted:
            await a.changed("c", "abort", {"durable_object_reset": True})
        assert flags_of(aborted.value) == {
            "remote": True,
            "retryable": False,
            "overloaded": False,
            "durable_object_reset": False,
        }
        assert await a.ok() == "ok"

    async def test_the_runtimes_own_overloaded_error(self, rt: durable.Runtime) -> None:
        a = rt.namespace(Passes, name="PASSES").get_by_name("a")
        with pytest.raises(durable.OverloadedError) as info:
            await a.through("b", "overloaded")
        assert flags_of(info.value)["overloaded"] is True
        assert await a.ok() == "ok"

    async def test_a_reset_error_the_object_raises_itself(self, rt: durable.Runtime) -> None:
        """An error the object's code raises is an error of the call (workerd never lets one carry
        `durableObjectReset`), even a `durable.ObjectResetError`: the object was not reset."""

        class Fakes(durable.DurableObject):
            async def fake(self) -> None:
                raise durable.ObjectResetError("fake reset")

            async def ok(self) -> str:
                return "ok"

        stub = rt.namespace(Fakes).get_by_name("a")
        with pytest.raises(durable.ObjectResetError, match="^fake reset$") as info:
            await stub.fake()
        assert info.value.durable_object_reset is False
        assert await stub.ok() == "ok"
