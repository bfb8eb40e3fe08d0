"""Section 8 of the contract under load and abuse: many threads and loops at once on persisted
runtimes, closing while calls run, callers that stop waiting, ``os.fork()`` (docs/threads.md).

Counts are checked exactly after reopening the path: nothing acknowledged is lost, nothing is
counted twice. Every test has a timeout, so a hang fails the test that caused it; the fork
scenarios run in a subprocess of their own.
"""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable import testing

pytestmark = pytest.mark.timeout(120)


class Tally(durable.DurableObject):
    async def inc(self, by: int = 1) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + by)
        return value + by

    async def slow_inc(self, seconds: float) -> int:
        await asyncio.sleep(seconds)
        return await self.inc()

    async def count(self) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        return value

    async def fetch(self, request: durable.Request) -> durable.Response:
        n = await self.inc()

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(5):
                await asyncio.sleep(0)
                yield f"{n}:{i};".encode()

        return durable.Response(chunks())

    async def alarm(self) -> None:
        await self.inc(100)


def threads_run(target: Callable[[int], None], count: int) -> list[BaseException]:
    """Run ``target(i)`` in ``count`` threads at once; the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
        assert not thread.is_alive(), "a thread hung"
    return errors


def counts_once_settled(
    rt: durable.BlockingRuntime, stubs: list[durable.BlockingStub[Tally]], expected: list[int]
) -> list[int]:
    """The objects' counts once they reach ``expected`` (calls whose callers stopped waiting are
    still running), or after 30 s (then the test fails on them)."""

    async def poll() -> list[int]:
        for _ in range(3000):
            counts = [await stub.stub.count() for stub in stubs]
            if counts == expected:
                break
            await asyncio.sleep(0.01)
        return counts

    return rt.run(poll)


def stored_counts(path: Path, names: list[str]) -> list[int]:
    with durable.BlockingRuntime(path) as rt:
        tallies = rt.namespace(Tally)
        return [tallies.get_by_name(name).count() for name in names]


class TestManyThreadsPersisted:
    def test_blocking_and_asyncio_run_mixed_from_40_threads(self, tmp_path: Path) -> None:
        """40 threads, half blocking calls, half ``asyncio.run`` of the async stub, on 3 objects."""
        names = ["a", "b", "c"]
        acked = [[0] * 3 for _ in range(40)]
        with durable.BlockingRuntime(tmp_path) as rt:
            tallies = rt.namespace(Tally)
            stubs = [tallies.get_by_name(name) for name in names]

            def work(i: int) -> None:
                for k in range(25):
                    which = (i + k) % 3
                    if i % 2:
                        stubs[which].inc()
                    else:
                        asyncio.run(stubs[which].stub.inc())
                    acked[i][which] += 1

            assert threads_run(work, 40) == []
        assert stored_counts(tmp_path, names) == [sum(row[j] for row in acked) for j in range(3)]

    def test_asyncio_run_from_30_threads_into_a_runtime_on_this_loop(self, tmp_path: Path) -> None:
        async def main() -> None:
            async with durable.Runtime(tmp_path) as rt:
                stub = rt.namespace(Tally).get_by_name("shared")

                def work(i: int) -> None:
                    for _ in range(20):
                        asyncio.run(stub.inc())

                assert await asyncio.to_thread(threads_run, work, 30) == []

        asyncio.run(main())
        assert stored_counts(tmp_path, ["shared"]) == [600]


OPS = st.sampled_from(["blocking", "asyncio_run", "fetch", "gathered", "evict", "timeout"])
"""What one step of a thread does to an object (``apply_step``)."""


def apply_step(rt: durable.BlockingRuntime, stub: durable.BlockingStub[Tally], op: str) -> int:
    """Do ``op`` to ``stub``'s object; how many increments it adds (each one exactly once)."""
    if op == "blocking":
        stub.inc()
    elif op == "asyncio_run":
        asyncio.run(stub.stub.inc())
    elif op == "fetch":
        rt.run(stub.fetch("http://t/").text)
    elif op == "gathered":

        async def gathered() -> None:
            await asyncio.gather(stub.stub.inc(), stub.stub.inc(2))

        asyncio.run(gathered())
        return 3
    elif op == "evict":
        asyncio.run(testing.evict(stub))
        return 0
    else:  # a caller that stops waiting at once: the call runs to its end all the same

        async def abandoned() -> None:
            async with asyncio.timeout(0):
                await stub.stub.slow_inc(0.01)

        with pytest.raises(TimeoutError):
            asyncio.run(abandoned())
    return 1


class TestRandomInterleavings:
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(scripts=st.lists(st.lists(st.tuples(OPS, st.integers(0, 2)), max_size=8), min_size=2, max_size=8))
    def test_every_step_counts_once(self, scripts: list[list[tuple[str, int]]], tmp_path_factory: Any) -> None:
        """Threads each running a random script of steps on 3 objects: stored counts are exact."""
        path = tmp_path_factory.mktemp("state")
        expected = [0, 0, 0]
        lock = threading.Lock()
        with durable.BlockingRuntime(path) as rt:
            tallies = rt.namespace(Tally)
            stubs = [tallies.get_by_name(str(which)) for which in range(3)]

            def work(i: int) -> None:
                for op, which in scripts[i]:
                    added = apply_step(rt, stubs[which], op)
                    with lock:
                        expected[which] += added

            assert threads_run(work, len(scripts)) == []
            counts_once_settled(rt, stubs, expected)  # the abandoned calls end
        assert stored_counts(path, ["0", "1", "2"]) == expected


class TestClosingMidCall:
    def test_blocking_runtime_closed_while_30_threads_call(self, tmp_path: Path) -> None:
        """Every call returns or fails clearly; what was acknowledged is stored after reopening."""
        acked: list[int] = []
        failed: list[BaseException] = []
        rt = durable.BlockingRuntime(tmp_path)
        stub = rt.namespace(Tally).get_by_name("t")
        started = threading.Barrier(31)

        def work(i: int) -> None:
            started.wait()
            while True:
                try:
                    acked.append(stub.inc() if i % 2 else asyncio.run(stub.stub.inc()))
                except (durable.RuntimeClosedError, durable.ConnectionClosedError) as exc:
                    failed.append(exc)
                    return

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(30)]
        for thread in threads:
            thread.start()
        started.wait()
        while len(acked) < 300:
            threading.Event().wait(0.005)
        rt.close()
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive(), "a call hung after close()"
        assert len(failed) == 30
        assert len(set(acked)) == len(acked)  # nothing counted twice
        stored = stored_counts(tmp_path, ["t"])[0]
        assert stored >= max(acked)  # nothing acknowledged lost

    def test_runtime_closed_on_its_loop_while_threads_call(self, tmp_path: Path) -> None:
        acked: list[int] = []
        failed: list[BaseException] = []

        async def main() -> None:
            rt = durable.Runtime(tmp_path)
            await rt.__aenter__()
            stub = rt.namespace(Tally).get_by_name("t")

            def work(i: int) -> None:
                while True:
                    try:
                        acked.append(asyncio.run(stub.inc()))
                    except (durable.RuntimeClosedError, durable.ConnectionClosedError) as exc:
                        failed.append(exc)
                        return

            threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(20)]
            for thread in threads:
                thread.start()
            while len(acked) < 200:
                await asyncio.sleep(0.005)
            await rt.aclose()
            for thread in threads:
                await asyncio.to_thread(thread.join, 60)
                assert not thread.is_alive(), "a call hung after aclose()"

        asyncio.run(main())
        assert len(failed) == 20
        assert len(set(acked)) == len(acked)
        assert stored_counts(tmp_path, ["t"])[0] >= max(acked)


class TestCallersThatStopWaiting:
    def test_caller_loop_closed_before_the_result(self, tmp_path: Path) -> None:
        """A call made on a loop that closes before the result arrives still runs to its end."""
        with durable.BlockingRuntime(tmp_path) as rt:
            stub = rt.namespace(Tally).get_by_name("t")

            def work(i: int) -> None:
                loop = asyncio.new_event_loop()

                async def send() -> None:
                    stub.stub.slow_inc(0.05)  # never awaited: the loop ends first

                loop.run_until_complete(send())
                loop.close()

            assert threads_run(work, 20) == []

            assert counts_once_settled(rt, [stub], [20]) == [20]

    def test_timeout_around_a_cross_thread_call(self) -> None:
        """workerd: a caller that stops waiting does not cancel the call; the object finishes it."""
        with durable.BlockingRuntime() as rt:
            stub = rt.namespace(Tally).get_by_name("t")

            def work(i: int) -> None:
                async def call() -> None:
                    async with asyncio.timeout(0.01):
                        await stub.stub.slow_inc(0.1)

                with pytest.raises(TimeoutError):
                    asyncio.run(call())

            assert threads_run(work, 10) == []

            assert counts_once_settled(rt, [stub], [10]) == [10]

    def test_promises_dropped_on_other_threads_and_collected_elsewhere(self) -> None:
        with durable.BlockingRuntime() as rt:
            stub = rt.namespace(Tally).get_by_name("t")
            kept: list[object] = []

            def work(i: int) -> None:
                async def send() -> None:
                    kept.extend(stub.stub.inc() for _ in range(5))

                asyncio.run(send())

            assert threads_run(work, 10) == []

            def collect() -> None:
                kept.clear()
                gc.collect()

            collector = threading.Thread(target=collect)
            collector.start()
            collector.join(30)

            assert counts_once_settled(rt, [stub], [50]) == [50]


class TestBlockingRuntimeApi:
    def test_run_variants(self) -> None:
        with durable.BlockingRuntime() as rt:
            assert rt.run(lambda: 5) == 5  # type: ignore[arg-type,return-value]  # tolerated, as anyio's portal

            async def boom() -> None:
                raise ValueError("boom")

            with pytest.raises(ValueError, match="boom"):
                rt.run(boom)

            async def nested() -> None:
                rt.run(asyncio.sleep, 0)

            with pytest.raises(RuntimeError, match="own event-loop thread"):
                rt.run(nested)
            assert rt.run(asyncio.sleep, 0, "still serving") == "still serving"

    def test_stubs_and_namespaces_used_after_close(self) -> None:
        rt = durable.BlockingRuntime()
        tallies = rt.namespace(Tally)
        stub = tallies.get_by_name("t")
        stub.inc()
        rt.close()
        for call in (stub.inc, stub.count, lambda: stub.fetch("http://x/"), lambda: rt.namespace(Tally)):
            with pytest.raises(durable.RuntimeClosedError, match="closed"):
                call()
        with pytest.raises(durable.RuntimeClosedError):
            asyncio.run(stub.stub.inc())
        rt.close()

    def test_streaming_fetch_from_many_threads(self) -> None:
        with durable.BlockingRuntime() as rt:
            stub = rt.namespace(Tally).get_by_name("t")
            texts: list[str] = []

            def work(i: int) -> None:
                if i % 2:
                    texts.append(rt.run(stub.fetch("http://t/").text))
                else:

                    async def read() -> str:
                        response = await stub.stub.fetch("http://t/")
                        return await response.text()

                    texts.append(asyncio.run(read()))

            assert threads_run(work, 20) == []
            assert sorted(int(text.split(":")[0]) for text in texts) == list(range(1, 21))
            assert all(text.count(";") == 5 for text in texts)


class TestTestingHelpersFromThreads:
    def test_evict_and_run_in_object_while_threads_call(self, tmp_path: Path) -> None:
        with durable.BlockingRuntime(tmp_path) as rt:
            stub = rt.namespace(Tally).get_by_name("t")

            def work(i: int) -> None:
                for _ in range(10):
                    if i == 0:
                        asyncio.run(testing.evict(stub))
                    elif i == 1:
                        asyncio.run(testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("n")))
                    else:
                        stub.inc()

            assert threads_run(work, 12) == []
        assert stored_counts(tmp_path, ["t"]) == [100]

    def test_mock_clock_advanced_from_other_threads(self) -> None:
        clock = testing.MockClock()
        with durable.BlockingRuntime(clock=clock) as rt:
            stubs = [rt.namespace(Tally).get_by_name(f"t{i}") for i in range(5)]

            async def arm(stub: durable.Stub[Tally]) -> None:
                await testing.run_in_object(
                    stub, lambda obj, ctx: ctx.storage.set_alarm(int(clock.time() * 1000) + 1000)
                )

            for stub in stubs:
                rt.run(arm, stub.stub)

            turn = threading.Lock()  # (two advances at once are refused, naming the problem)

            def work(i: int) -> None:
                with turn:
                    asyncio.run(clock.advance(0.5))

            assert threads_run(work, 6) == []
            assert [stub.count() for stub in stubs] == [100] * 5


FORK_SCRIPT = """
import asyncio, atexit, gc, os, signal, sys, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # (os.fork() with threads running)
import durable

class Tally(durable.DurableObject):
    async def inc(self):
        n = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", n + 1)
        return n + 1

path, kind = sys.argv[1], sys.argv[2]
names = [f"c{i}" for i in range(4)]
acked = [0] * 4
lock = threading.Lock()
stop = threading.Event()
if kind == "blocking":
    rt = durable.BlockingRuntime(path)
    atexit.register(rt.close)
    stubs = [rt.namespace(Tally).get_by_name(name) for name in names]
    call = lambda i: stubs[i].inc()
    close = rt.close
else:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    arts = asyncio.run_coroutine_threadsafe(durable.Runtime(path).__aenter__(), loop).result()
    stubs = [arts.namespace(Tally).get_by_name(name) for name in names]
    call = lambda i: asyncio.run(stubs[i].inc())
    close = lambda: asyncio.run_coroutine_threadsafe(arts.aclose(), loop).result()

def work(i):
    while not stop.is_set():
        call(i % 4)
        with lock:
            acked[i % 4] += 1

threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
for t in threads:
    t.start()
while sum(acked) < 100:
    stop.wait(0.01)
r, w = os.pipe()
tried_r, tried_w = os.pipe()  # the child has made its attempts: only then may the parent close
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a child that hangs never outlives the test
    try:
        os.close(w)
        os.close(tried_r)
        attempts = [lambda: call(0)]
        if kind == "blocking":
            attempts += [lambda: rt.run(asyncio.sleep, 0), lambda: rt.namespace(Tally)]
        for attempt in attempts:
            try:
                attempt()
                print("child: a call returned", flush=True)
                os._exit(3)
            except durable.RuntimeClosedError as exc:
                assert "os.fork()" in str(exc) and "post_fork" in str(exc), exc
        try:
            durable.Runtime(path)
            print("child: opened the parent's path", flush=True)
            os._exit(4)
        except durable.PathLockedError:
            pass
        os.write(tried_w, b"x")
        os.read(r, 1)  # the parent closed its runtime and opened its path again
        del stubs[:]
        gc.collect()
    except BaseException as exc:
        print("child:", repr(exc), flush=True)
        os._exit(5)
    sys.exit(0)  # atexit runs rt.close(), which returns at once here
os.close(r)
os.close(tried_w)
stop.set()
for t in threads:
    t.join()
os.read(tried_r, 1)  # (closing before the child's Runtime(path) let it take the path in the gap)
close()
with durable.BlockingRuntime(path) as again:  # the child lives on: its copy of the lock is closed
    tallies = again.namespace(Tally)
    assert [tallies.get_by_name(name).inc() - 1 for name in names] == acked
os.write(w, b"x")
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
with durable.BlockingRuntime(path) as again:  # nothing the child did at its exit touched the storage
    tallies = again.namespace(Tally)
    assert [tallies.get_by_name(name).inc() - 2 for name in names] == acked
print("ok", flush=True)
"""


DROPPED_IN_CHILD_SCRIPT = """
import asyncio, gc, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import durable

class Tally(durable.DurableObject):
    async def inc(self):
        n = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", n + 1)
        return n + 1

path, pitr = sys.argv[1], sys.argv[2] == "pitr"
loop = asyncio.new_event_loop()
rt = loop.run_until_complete(durable.Runtime(path, point_in_time_recovery=pitr).__aenter__())
stub = rt.namespace(Tally).get_by_name("a")
assert loop.run_until_complete(stub.inc()) == 1
pid = os.fork()
if pid == 0:  # the child makes its own loop and drops what it inherited (a uvicorn worker)
    del rt, stub, loop
    gc.collect()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert loop.run_until_complete(stub.inc()) == 2
os._exit(0)  # the parent is killed: its commits are in its write-ahead logs
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork() is POSIX only")
class TestFork:
    @pytest.mark.parametrize("kind", ["blocking", "async"])
    def test_a_runtime_used_in_a_forked_child(self, kind: str, tmp_path: Path) -> None:
        """A runtime inherited through os.fork() (gunicorn --preload) fails clearly in the child.

        Before: a call there waited for ever for a loop no thread ran, and the child's copy of the
        path's lock file kept the parent from opening its path again after closing it.
        """
        script = tmp_path / "fork.py"
        script.write_text(textwrap.dedent(FORK_SCRIPT))
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "state"), kind], capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().endswith("ok")

    @pytest.mark.parametrize("pitr", ["pitr", "plain"])
    def test_a_child_that_drops_its_inherited_runtime_leaves_the_parents_logs(self, pitr: str, tmp_path: Path) -> None:
        """A forked child collecting its copy of a runtime does not close the parent's SQLite connections.

        Before: garbage collection closed the copies; each believed it held its file's exclusive
        lock, so it checkpointed and deleted the ``-wal`` file the parent still appended to, and
        the parent's next commit was lost when it was killed (the count read 1, not 2).
        """
        script = tmp_path / "drop.py"
        script.write_text(textwrap.dedent(DROPPED_IN_CHILD_SCRIPT))
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "state"), pitr], capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with durable.BlockingRuntime(tmp_path / "state", point_in_time_recovery=pitr == "pitr") as rt:
            assert rt.namespace(Tally).get_by_name("a").inc() == 3


#: asyncio's debug-mode line for a slow callback ("Executing <Handle ...> took 0.112 seconds").
_SLOW_CALLBACK = re.compile(r"Executing <.*> took \d+\.\d+ seconds")

LEFT_OPEN_SCRIPT = """
import asyncio, gc, sys, threading, time
import durable

class Tally(durable.DurableObject):
    async def inc(self):
        n = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", n + 1)
        return n + 1

    async def later(self):
        self.ctx.wait_until(asyncio.sleep(3600))  # still running at the exit: lost, as documented

path, how = sys.argv[1], sys.argv[2]
rt = durable.BlockingRuntime(path)
tallies = rt.namespace(Tally)
acked = [0] * 8

def hammer(i):
    stub = tallies.get_by_name(f"t{i % 4}")
    while True:
        acked[i] = max(acked[i], stub.inc())

for i in range(8):
    threading.Thread(target=hammer, args=(i,), daemon=True).start()
tallies.get_by_name("t0").later()
while min(acked) < 20:
    time.sleep(0.01)
print(*[max(acked[j] for j in range(8) if j % 4 == k) for k in range(4)], flush=True)
if how == "dropped":  # the caller's references go; its threads keep their stubs, and it runs on
    del rt, tallies
    gc.collect()
"""


class TestLeftOpenAtExit:
    @pytest.mark.parametrize("how", ["left", "dropped"])
    def test_a_blocking_runtime_never_closed(self, how: str, tmp_path: Path) -> None:
        """A BlockingRuntime never closed, with eight threads calling it and wait_until work
        running, does not hold the interpreter's exit and logs nothing; every call acknowledged
        before the exit is stored (docs/threads.md)."""
        script = tmp_path / "left_open.py"
        script.write_text(textwrap.dedent(LEFT_OPEN_SCRIPT))
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", str(script), str(tmp_path / "state"), how],
            capture_output=True,
            text=True,
            timeout=90,
        )
        # Development mode turns on asyncio's debug mode, which logs any loop callback that took
        # over 0.1 s of wall-clock time: a busy machine (CI runs several passes on two cores)
        # makes one now and then, with nothing wrong. Those lines are left out; anything else
        # logged fails the test.
        logged = "".join(
            line for line in done.stderr.splitlines(keepends=True) if not _SLOW_CALLBACK.fullmatch(line.rstrip("\n"))
        )
        assert (done.returncode, logged) == (0, "")
        acked = [int(n) for n in done.stdout.split()]
        stored = stored_counts(tmp_path / "state", [f"t{k}" for k in range(4)])
        assert all(s >= a for s, a in zip(stored, acked, strict=True)), (stored, acked)
