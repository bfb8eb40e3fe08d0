"""durable embedded where Python code runs: notebooks, trio/anyio, several processes, many asyncio.run calls."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import durable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock: the in-process lock only
    fcntl = None  # type: ignore[assignment]


class Counter(durable.DurableObject):
    async def increment(self) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + 1)
        return value + 1


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` with no asyncio loop, as trio (or any other event loop) would step it."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        coro.close()
    raise AssertionError("the coroutine waited for something, which no loop here can give it")


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Keep the cyclic garbage collector from running by itself, so that only durable's own call frees a cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class TestNotEventAsyncio:
    """trio (anyio's trio backend, pytest's anyio plugin with ``anyio_backend = "trio"``) runs coroutines
    with no asyncio loop: durable said only asyncio's "no running event loop"."""

    def test_opening_a_runtime_names_trio_and_the_fix(self) -> None:
        rt = durable.Runtime()
        with pytest.raises(RuntimeError, match=r"durable runs on asyncio, not on trio.*BlockingRuntime"):
            _drive(rt.__aenter__())

    def test_a_stub_call_names_trio_and_the_fix(self) -> None:
        rt = durable.Runtime()
        stub = rt.namespace(Counter).get_by_name("a")

        async def call() -> None:
            await stub.increment()

        with pytest.raises(RuntimeError, match=r"needs a running asyncio event loop.*anyio_backend"):
            _drive(call())

    def test_a_fetch_names_trio_and_the_fix(self) -> None:
        rt = durable.Runtime()
        stub = rt.namespace(Counter).get_by_name("a")

        async def call() -> durable.Response:
            return await stub.fetch("http://counter/")

        with pytest.raises(RuntimeError, match=r"stub\.fetch\(\) needs a running asyncio event loop"):
            _drive(call())

    def test_under_trio_itself(self) -> None:
        """The same under trio when it is installed; a BlockingRuntime works there, as the error says."""
        trio = pytest.importorskip("trio")

        async def main() -> int:
            rt = durable.Runtime()
            with pytest.raises(RuntimeError, match="durable runs on asyncio, not on trio"):
                await rt.namespace(Counter).get_by_name("a").increment()
            with durable.BlockingRuntime() as blocking:
                stub = blocking.namespace(Counter).get_by_name("a")
                result: int = await trio.to_thread.run_sync(stub.increment)
                return result

        assert trio.run(main) == 1


class TestPathLockInNotebooks:
    def test_a_dropped_runtime_in_a_cycle_frees_its_path(self, tmp_path: Path, no_collector: None) -> None:
        """A runtime used with ``asyncio.run`` and dropped without ``aclose()`` (a notebook variable bound
        again, a script's helper returning) is kept by a reference cycle: opening its path again failed with
        PathLockedError until the collector happened to run. The collector now runs first, the dropped
        runtime's finalizer commits and releases the path (warning that it was never closed)."""
        rt = durable.Runtime(tmp_path)
        assert asyncio.run(rt.namespace(Counter).get_by_name("a").increment()) == 1
        del rt
        with pytest.warns(ResourceWarning, match="was never closed"):
            again = durable.Runtime(tmp_path)
        try:
            assert asyncio.run(again.namespace(Counter).get_by_name("a").increment()) == 2  # nothing lost
        finally:
            asyncio.run(again.aclose())

    def test_a_live_runtime_still_holds_it_with_the_notebook_fix(self, tmp_path: Path) -> None:
        """A runtime still referenced (a notebook cell run again: its variable holds the previous runtime
        until the new one is made) is refused, and the message says what to do there."""

        async def main() -> None:
            async with durable.Runtime(tmp_path):
                with pytest.raises(durable.PathLockedError, match=r"In a notebook.*await rt\.aclose\(\)"):
                    durable.Runtime(tmp_path)

        asyncio.run(main())

    @pytest.mark.skipif(fcntl is None, reason="no flock on this platform")
    def test_another_process_names_workers(self, tmp_path: Path) -> None:
        """Another holder of the file lock (``uvicorn --workers 2``, ``gunicorn -w 2``: the second worker) is
        refused with a message saying why two processes cannot share the directory and what to do. The
        lock is taken here through another open file, which flock treats as another process would."""
        (tmp_path / ".lock").write_text(f"pid {os.getpid() + 1} on elsewhere\n")
        with open(tmp_path / ".lock", encoding="utf-8") as other:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(durable.PathLockedError, match=r"--workers N.*a path of its own"):
                durable.Runtime(tmp_path)
        rt = durable.Runtime(tmp_path)  # free once the other holder let go
        asyncio.run(rt.aclose())


_COLLECTED_IN_THE_LOCK = """
import asyncio, gc, sys, warnings
from pathlib import Path
import durable, durable._directory as directory
warnings.simplefilter("ignore", ResourceWarning)
base = Path(sys.argv[1])
async def drop():
    rt = durable.Runtime(path=base / "a")
    rt.cycle = rt  # only the collector frees it
asyncio.run(drop())
flock = directory.fcntl.flock
def collecting_flock(*args):
    gc.collect()  # as any allocation while the lock table is held may
    return flock(*args)
directory.fcntl.flock = collecting_flock
async def main():
    async with durable.Runtime(path=base / "b"):
        pass
asyncio.run(main())
print("opened")
"""


@pytest.mark.skipif(os.name != "posix", reason="the path lock takes a flock on POSIX")
def test_a_collection_while_the_path_table_is_held_does_not_deadlock(tmp_path: Path) -> None:
    """A dropped runtime's finalizer, run by a collection that starts while this thread holds the
    table of held paths (opening another path), releases its own path: the table's lock is
    reentrant. It was not, so the process hung (the finalizer waited for its own thread). In a
    subprocess, so that a hang cannot take the test run's lock table with it."""
    import subprocess
    import sys

    from helpers import REPO

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _COLLECTED_IN_THE_LOCK, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("opening a path hung: a collection in the locked region ran a finalizer that waited for the lock")
    assert done.stdout.strip() == "opened", done.stderr
