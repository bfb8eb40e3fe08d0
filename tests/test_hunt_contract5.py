"""Contract audit 5 (docs/api.md, API.md sections 2, 4, 6 and 8): what a test written against the
contract would catch."""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import Any

import pytest

import durable
import durable.testing


class Directory(durable.DurableObject):
    """Hands out stubs of other objects and functions, as a directory or a factory does."""

    async def room(self, name: str) -> object:
        return self.env.ROOMS.get_by_name(name)

    async def rooms(self, *names: str) -> dict[str, object]:
        stubs = [self.env.ROOMS.get_by_name(name) for name in names]
        return {"list": stubs, "tuple": tuple(stubs), "nested": {"first": stubs[0]}, "count": len(stubs)}

    async def doubler(self) -> object:
        def double(x: int) -> int:
            return x * 2

        return double

    async def greet(self, room: durable.Stub[Room]) -> str:
        return str(await room.hello())

    async def apply(self, fn: object, x: int) -> int:
        return int(await fn(x))  # type: ignore[operator]

    async def kept(self) -> list[object]:
        if not hasattr(self, "stubs"):
            self.stubs: list[object] = [self.env.ROOMS.get_by_name("k"), {"s": self.env.ROOMS.get_by_name("k")}]
        return self.stubs

    async def kept_types(self) -> list[str]:
        return [type(self.stubs[0]).__name__, type(self.stubs[1]["s"]).__name__]  # type: ignore[index]

    async def cycle(self) -> list[object]:
        here: list[object] = [self.env.ROOMS.get_by_name("c")]
        here.append(here)
        return here

    async def shared(self) -> list[object]:
        stub = self.env.ROOMS.get_by_name("s")
        return [stub, {"again": stub}]

    async def deep(self, depth: int) -> list[object]:
        value: list[object] = [self.env.ROOMS.get_by_name("deep")]
        for _ in range(depth):
            value = [value]
        return value

    async def tuple_cycle(self) -> tuple[object, list[object]]:
        inside: list[object] = []
        here = (self.env.ROOMS.get_by_name("t"), inside)
        inside.append(here)
        return here


class Room(durable.DurableObject):
    async def hello(self) -> str:
        return f"hello from {self.ctx.id.name}"


class TestBlockingResults:
    """A stub an object returns to a BlockingStub's caller blocks too (API.md 8: "stubs whose
    methods block and return the result"); it was an async Stub whose calls gave synchronous code
    a coroutine it could not await."""

    def test_a_returned_stub_blocks(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            directory = rt.namespace(Directory, name="DIR").get_by_name("d")
            room = directory.room("a")
            assert isinstance(room, durable.BlockingStub)
            assert room.name == "a"
            assert room.hello() == "hello from a"
            assert room == rt.namespace(Room, name="ROOMS").get_by_name("a")

    def test_stubs_inside_a_result_block(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            result = rt.namespace(Directory, name="DIR").get_by_name("d").rooms("a", "b")
            assert [stub.hello() for stub in result["list"]] == ["hello from a", "hello from b"]
            assert isinstance(result["tuple"], tuple)
            assert [stub.hello() for stub in result["tuple"]] == ["hello from a", "hello from b"]
            assert result["nested"]["first"].hello() == "hello from a"
            assert result["count"] == 2

    def test_a_returned_function_is_called_through_run(self) -> None:
        """Functions stay async callback stubs (tests/test_rpc_targets.py calls them with asyncio.run)."""
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            double = rt.namespace(Directory, name="DIR").get_by_name("d").doubler()
            assert rt.run(double, 4) == 8

    def test_the_objects_own_value_is_untouched(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            directory = rt.namespace(Directory, name="DIR").get_by_name("d")
            got = directory.kept()
            assert [type(got[0]), type(got[1]["s"])] == [durable.BlockingStub, durable.BlockingStub]
            assert directory.kept_types() == ["Stub", "Stub"]

    def test_a_cycle_in_a_result_is_kept(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            here = rt.namespace(Directory, name="DIR").get_by_name("d").cycle()
            assert here[1] is here
            assert here[0].hello() == "hello from c"

    def test_a_stub_returned_twice_is_one_blocking_stub(self) -> None:
        """One stub shared in a result is one BlockingStub, as clone keeps shared references."""
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            got = rt.namespace(Directory, name="DIR").get_by_name("d").shared()
            assert got[0] is got[1]["again"]
            assert got[0].hello() == "hello from s"

    def test_a_stub_deeper_than_100_lists_blocks(self) -> None:
        """A stub as deep as RPC carries it blocks too: past 100 levels it stayed an async Stub."""
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            value = rt.namespace(Directory, name="DIR").get_by_name("d").deep(300)
            for _ in range(301):
                value = value[0]
            assert isinstance(value, durable.BlockingStub)
            assert value.hello() == "hello from deep"

    def test_a_cycle_through_a_tuple_has_one_converted_tuple(self) -> None:
        """A tuple reached again through a list inside it is the converted tuple: it was the
        original, whose stub stayed an async Stub."""
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            here = rt.namespace(Directory, name="DIR").get_by_name("d").tuple_cycle()
            assert here[1][0] is here
            assert isinstance(here[0], durable.BlockingStub)

    def test_what_was_returned_passed_back_over_rpc(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            directory = rt.namespace(Directory, name="DIR").get_by_name("d")
            assert directory.greet(directory.room("a")) == "hello from a"
            assert directory.apply(directory.doubler(), 5) == 10


_STUBS: dict[str, durable.BlockingStub[Any]] = {}
"""The blocking stubs the objects of two runtimes call each other through (set by each test)."""


class Ping(durable.DurableObject):
    """Calls the other runtime's object, blocking its own runtime's thread (a plain ``def``)."""

    def ping(self, other: str, n: int) -> str:
        if n == 0:
            return f"pong from {self.ctx.id.name}"
        return str(_STUBS[other].ping("a" if other == "b" else "b", n - 1))

    async def aping(self, other: str, n: int) -> str:
        if n == 0:
            return f"pong from {self.ctx.id.name}"
        return str(await _STUBS[other].stub.aping("a" if other == "b" else "b", n - 1))


class TestBlockingCallsBetweenRuntimes:
    """Objects of two BlockingRuntimes making blocking calls to each other: a cycle of threads
    waiting for each other hung for ever; one call of it is now refused, naming the fix."""

    def test_a_cycle_raises_instead_of_hanging(self) -> None:
        with durable.BlockingRuntime() as ra, durable.BlockingRuntime() as rb:
            _STUBS.update(a=ra.namespace(Ping).get_by_name("a"), b=rb.namespace(Ping).get_by_name("b"))
            assert _STUBS["a"].ping("b", 1) == "pong from b"  # one way: no cycle, it works
            with pytest.raises(RuntimeError, match=r"await blocking_stub\.stub\.method"):
                _STUBS["a"].ping("b", 2)  # a -> b -> a: a's thread is blocked, waiting for b
            # Neither runtime is left blocked; the fix the error names works.
            assert _STUBS["a"].ping("b", 1) == "pong from b"
            assert _STUBS["b"].ping("a", 1) == "pong from a"
            assert _STUBS["a"].aping("b", 4) == "pong from a"

    def test_many_threads_calling_in_both_directions_never_hang(self) -> None:
        with durable.BlockingRuntime() as ra, durable.BlockingRuntime() as rb:
            _STUBS.update(a=ra.namespace(Ping).get_by_name("a"), b=rb.namespace(Ping).get_by_name("b"))

            def call(i: int) -> str:
                start = "a" if i % 2 else "b"
                try:
                    return str(_STUBS[start].ping("b" if start == "a" else "a", 1 + i % 3))
                except RuntimeError as exc:
                    return "cycle" if "await blocking_stub.stub.method" in str(exc) else repr(exc)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(call, range(40)))
            assert set(outcomes) <= {"pong from a", "pong from b", "cycle"}
            assert "cycle" in outcomes


class Named(durable.DurableObject):
    async def name_inside(self) -> str | None:
        return self.ctx.id.name

    async def write(self) -> None:
        await self.ctx.storage.put("k", 1)


class TestLongNamesInsideTheObject:
    """workerd passes a name to the object (``ctx.id.name``) only up to 1,024 UTF-8 bytes; past
    that the object sees ``undefined`` while the caller's id and stub keep the name (miniflare
    4.20260426, compatibility date 2026-04-20, both backends: "a" * 1024 and "😀" * 256 arrive,
    "a" * 1025, "é" * 513 and "😀" * 257 do not)."""

    async def test_the_object_sees_no_name_past_1024_bytes(self, durable_runtime: durable.Runtime) -> None:
        for storage in ("sqlite", "kv"):
            ns = durable_runtime.namespace(Named, name=f"N{storage}", storage=storage)
            for name in ("a" * 1024, "😀" * 256, "é" * 512):
                assert await ns.get_by_name(name).name_inside() == name
            for name in ("a" * 1025, "😀" * 257, "é" * 513):
                stub = ns.get_by_name(name)
                assert await stub.name_inside() is None
                assert stub.name == name and stub.id.name == name and ns.id_from_name(name).name == name
                assert await ns.get(ns.id_from_name(name)).name_inside() is None

    async def test_nor_after_eviction_or_a_restart(self, tmp_path: Any) -> None:
        name = "b" * 2000
        async with durable.Runtime(tmp_path) as rt:
            stub = rt.namespace(Named).get_by_name(name)
            await stub.write()
            await durable.testing.evict(stub)
            assert await stub.name_inside() is None
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(Named)
            assert await ns.get_by_name(name).name_inside() is None
            assert [oid.name for oid in await durable.testing.list_ids(ns)] == [None]


class TestCycleRecordsReadTogether:
    """The cycle detector records and reads the waits under one lock (review of hunt-contract5)."""

    def test_two_threads_closing_one_cycle_at_once_withdraw_one_call(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Two runtimes' threads that record their waits for each other at the same moment both saw
        the cycle, and each withdrew its own call where one was enough: now exactly one call fails."""
        from durable import _blocking

        threads: dict[str, Any] = {}
        raised: dict[str, BaseException | None] = {}
        b_recorded, go, b_searched = threading.Event(), threading.Event(), threading.Event()
        search = _blocking._break_cycle

        def paused_search(me: Any) -> None:
            """b's thread has recorded its wait; it looks for the cycle once a's thread is on its way."""
            if me is threads["b"]:
                b_recorded.set()
                go.wait()
            search(me)
            if me is threads["b"]:
                b_searched.set()

        monkeypatch.setattr(_blocking, "_break_cycle", paused_search)

        class Lock:
            """The records' lock: a's thread finding it held lets b's thread go on."""

            def __init__(self, lock: Any) -> None:
                self.lock = lock

            def __enter__(self) -> None:
                if not self.lock.acquire(blocking=False):
                    go.set()
                    self.lock.acquire()

            def __exit__(self, *exc: object) -> None:
                self.lock.release()

        if hasattr(_blocking, "_waits"):
            monkeypatch.setattr(_blocking, "_waits", Lock(_blocking._waits))

        class WithdrawnLast(concurrent.futures.Future[Any]):
            """a's call: b's thread looks for the cycle before a's withdraws this call."""

            def cancel(self) -> bool:
                go.set()
                b_searched.wait()
                return super().cancel()

        futures: dict[str, concurrent.futures.Future[Any]] = {"a": WithdrawnLast(), "b": concurrent.futures.Future()}
        settled = {side: queue.SimpleQueue[object]() for side in "ab"}
        for side, fut in futures.items():
            fut.add_done_callback(settled[side].put)

        def wait(side: str, other: str) -> None:
            try:
                _blocking._wait(threads[other], futures[side], settled[side])
                raised[side] = None
            except RuntimeError as exc:
                raised[side] = exc

        threads["a"] = _blocking._RuntimeThread(lambda: wait("a", "b"))
        threads["b"] = _blocking._RuntimeThread(lambda: wait("b", "a"))
        threads["b"].start()
        b_recorded.wait()
        threads["a"].start()
        threads["a"].join()
        for fut in futures.values():
            if not fut.done():
                fut.set_result(None)  # (the call b waits for ends: a's thread runs again)
        threads["b"].join()
        assert {side for side, exc in raised.items() if exc is not None} == {"a"}


class TestLoneSurrogatesInLongNames:
    """A lone surrogate counts its three UTF-8 bytes towards the 1,024 (review of hunt-contract5;
    miniflare 4.20260426, compatibility date 2026-04-20: ``"\\ud800".repeat(150)`` arrives as 450
    U+FFFD, ``.repeat(342)`` is undefined, ``"a".repeat(1021) + "\\ud800"`` arrives, 1,022 "a" do not)."""

    async def test_counted_as_workerd_counts_them(self, durable_runtime: durable.Runtime) -> None:
        """``id.name`` shows each as three U+FFFD (nine bytes), which made 150 of them too long."""
        ns = durable_runtime.namespace(Named)
        assert await ns.get_by_name("\ud800" * 150).name_inside() == "\ufffd" * 450
        assert await ns.get_by_name("a" * 1021 + "\ud800").name_inside() == "a" * 1021 + "\ufffd" * 3
        assert await ns.get_by_name("\ud800" * 342).name_inside() is None
        assert await ns.get_by_name("a" * 1022 + "\ud800").name_inside() is None
        assert await ns.get_by_name("\ufffd" * 342).name_inside() is None  # U+FFFD itself: three bytes
        assert await ns.get_by_name("\ufffd" * 341 + "a").name_inside() == "\ufffd" * 341 + "a"
