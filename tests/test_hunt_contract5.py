"""Contract audit 5 (docs/api.md, API.md sections 2, 4, 6 and 8): what a test written against the
contract would catch."""

from __future__ import annotations

import durable


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

    async def cycle(self) -> list[object]:
        here: list[object] = [self.env.ROOMS.get_by_name("c")]
        here.append(here)
        return here


class Room(durable.DurableObject):
    async def hello(self) -> str:
        return f"hello from {self.ctx.id.name}"


class TestBlockingResults:
    """A stub or a function an object returns to a BlockingStub's caller blocks too (API.md 8:
    "stubs whose methods block and return the result"); it was an async Stub whose calls gave
    synchronous code a coroutine it could not await."""

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

    def test_a_returned_function_blocks(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            double = rt.namespace(Directory, name="DIR").get_by_name("d").doubler()
            assert double(21) == 42
            assert rt.run(double.callback, 4) == 8  # the async callback stub, on the runtime's loop

    def test_a_cycle_in_a_result_is_kept(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            here = rt.namespace(Directory, name="DIR").get_by_name("d").cycle()
            assert here[1] is here
            assert here[0].hello() == "hello from c"

    def test_what_was_returned_passed_back_over_rpc(self) -> None:
        with durable.BlockingRuntime() as rt:
            rt.namespace(Room, name="ROOMS")
            directory = rt.namespace(Directory, name="DIR").get_by_name("d")
            assert directory.greet(directory.room("a")) == "hello from a"
            assert directory.apply(directory.doubler(), 5) == 10
