"""Bug hunt of API.md section 8 (threads, other event loops, blocking code): what a demanding
user of ``durable.BlockingRuntime`` hits beyond tests/test_blocking.py and test_threads*.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import durable


class Counter(durable.DurableObject):
    kind = "counter"

    async def increment(self, by: int = 1) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + by)
        return value + by


@dataclasses.dataclass
class Holder:
    handle: object


class TestHandlesAreCopiedAsThemselves:
    """A ``durable.Stub`` copies as itself and refuses pickling naming the fix (tests/test_hostile.py).
    The blocking handles did neither: ``copy.deepcopy`` and ``dataclasses.asdict`` of a structure
    holding a ``BlockingStub`` raised "cannot pickle '_thread.RLock' object" (the runtime's lock),
    ``copy.copy(rt)`` made a second BlockingRuntime sharing the first's thread, and
    ``copy.deepcopy`` of a plain ``Namespace`` recursed into its runtime until RecursionError."""

    def test_blocking_handles(self) -> None:
        with durable.BlockingRuntime() as rt:
            counters = rt.namespace(Counter)
            stub = counters.get_by_name("a")
            for handle in (rt, counters, stub):
                assert copy.copy(handle) is handle
                assert copy.deepcopy(handle) is handle
                assert dataclasses.asdict(Holder(handle))["handle"] is handle
                with pytest.raises(TypeError, match=rf"durable\.{type(handle).__name__} cannot be pickled"):
                    pickle.dumps(handle)
            assert copy.deepcopy([stub])[0].increment() == 1  # still the runtime's, usable

    def test_plain_namespace(self) -> None:
        async def main() -> None:
            async with durable.Runtime() as rt:
                counters = rt.namespace(Counter)
                assert copy.copy(counters) is counters
                assert copy.deepcopy({"c": counters})["c"] is counters
                with pytest.raises(TypeError, match=r"durable\.Namespace cannot be pickled"):
                    pickle.dumps(counters)

        asyncio.run(main())


def test_same_path_twice_names_the_blocking_fix(tmp_path: Path) -> None:
    """Nested ``with`` of two BlockingRuntimes: different paths work side by side; the same path
    (spelled another way) is refused naming ``rt.close()``, where the message named only
    ``await runtime.aclose()``, which a synchronous caller has no loop to run."""
    with durable.BlockingRuntime(tmp_path / "a") as first, durable.BlockingRuntime(tmp_path / "b") as second:
        assert first.namespace(Counter).get_by_name("x").increment(1) == 1
        assert second.namespace(Counter).get_by_name("x").increment(2) == 2
        with pytest.raises(durable.PathLockedError, match=r"rt\.close\(\) for a durable\.BlockingRuntime"):
            durable.BlockingRuntime(tmp_path / "b" / ".." / "a")


def test_fifty_threads_and_a_property_read() -> None:
    """50 pool threads at once, each call counted; a class attribute is read with
    ``rt.run(lambda: stub.stub.attr)`` (docs/threads.md: a BlockingStub's attributes are calls)."""
    with durable.BlockingRuntime() as rt:
        stub = rt.namespace(Counter).get_by_name("pool")
        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(lambda _: stub.increment(), range(200)))
        assert sorted(results) == list(range(1, 201))
        assert rt.run(lambda: stub.stub.kind) == "counter"


def test_run_of_a_coroutine_that_ends_cancelled() -> None:
    """A coroutine given to ``rt.run()`` that raises ``asyncio.CancelledError`` (it cancelled its own
    task, or awaited a cancelled task) while the runtime stays open gives the caller
    ``concurrent.futures.CancelledError``, as anyio's blocking portal does. It raised
    ``ConnectionClosedError`` saying that the BlockingRuntime was closed, which it was not."""

    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    async def awaits_a_cancelled_task() -> None:
        task = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task

    with durable.BlockingRuntime() as rt:
        for fn in (cancels_itself, awaits_a_cancelled_task):
            with pytest.raises(concurrent.futures.CancelledError, match=r"the runtime is still open"):
                rt.run(fn)
        assert rt.namespace(Counter).get_by_name("after").increment() == 1  # still open and serving
