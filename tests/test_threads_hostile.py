"""Section 8 of the contract under hostile use: many threads, closing under load, objects that
misbehave (docs/threads.md).

Every scenario runs under ``guarded``: in a thread joined with a timeout, so that a hang fails
the test that caused it (never a wall-clock assertion about how long something took).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import durable
from durable import testing

R = TypeVar("R")

GUARD_SECONDS = 60.0
"""How long a scenario may take before it counts as hung (they take well under a second)."""


def guarded(fn: Callable[[], R], seconds: float = GUARD_SECONDS) -> R:
    """``fn()`` run in a daemon thread; fails the test if it has not returned after ``seconds``.

    Whatever ``fn`` raises (``SystemExit`` and ``KeyboardInterrupt`` included) is raised here.
    """
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the test as it is
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"hung: {getattr(fn, '__name__', fn)} did not return within {seconds} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def outcome_of(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or the exception it raised (any, ``SystemExit`` included)."""
    try:
        return fn()
    except BaseException as exc:  # the test looks at it
        return exc


READING = threading.Semaphore(0)


class Hostile(durable.DurableObject):
    async def increment(self, by: int = 1) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + by)
        return value + by

    async def exit(self, kind: str) -> None:
        raise SystemExit(3) if kind == "exit" else KeyboardInterrupt("from the object")

    async def exit_in_a_task(self) -> str:
        async def boom() -> None:
            raise SystemExit(5)

        task = asyncio.get_running_loop().create_task(boom())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.exception() if task.done() else None  # (retrieved: no "never retrieved" log)
        return "after"

    async def stop_the_loop(self) -> str:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0)
        return "after"

    async def slow(self) -> str:
        await asyncio.sleep(3600)
        return "late"

    async def fetch(self, request: durable.Request) -> durable.Response:
        async def endless() -> AsyncIterator[bytes]:
            yield b"first"
            READING.release()  # the caller's side reads the body (asks for the next chunk)
            await asyncio.sleep(3600)

        return durable.Response(endless())

    async def stubborn(self) -> None:
        while True:  # ignores its cancellation
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass


class TestObjectsRaisingSystemExit:
    @pytest.mark.parametrize("kind", ["exit", "interrupt"])
    def test_from_another_threads_loop(self, kind: str) -> None:
        """An object raising ``SystemExit`` (or ``KeyboardInterrupt``) in a call made from another
        thread's loop raises it in that caller only, as the same call made on the runtime's loop
        does; it used to escape the runtime's loop, stopping the application's ``asyncio.run``."""

        async def main() -> tuple[Any, int]:
            async with durable.Runtime() as rt:
                stub = rt.namespace(Hostile).get_by_name("a")
                raised = await asyncio.to_thread(outcome_of, lambda: asyncio.run(stub.exit(kind)))
                return raised, await stub.increment()

        raised, after = guarded(lambda: asyncio.run(main()))
        assert type(raised) is (SystemExit if kind == "exit" else KeyboardInterrupt)
        assert getattr(raised, "remote", None) is True
        assert after == 1

    @pytest.mark.parametrize("kind", ["exit", "interrupt"])
    def test_from_a_blocking_call(self, kind: str) -> None:
        """Raised in a ``BlockingStub`` call, it reaches the caller; the runtime's thread keeps
        serving (it used to die, and every later call waited for ever)."""

        def scenario() -> tuple[Any, int]:
            with durable.BlockingRuntime() as rt:
                stub = rt.namespace(Hostile).get_by_name("a")
                raised = outcome_of(lambda: stub.exit(kind))
                return raised, stub.increment()

        raised, after = guarded(scenario)
        assert type(raised) is (SystemExit if kind == "exit" else KeyboardInterrupt)
        assert after == 1

    def test_a_task_raising_system_exit_or_stopping_the_loop(self) -> None:
        """A task an object started raising ``SystemExit``, or an object stopping its loop, does
        not end a ``BlockingRuntime``'s thread: later calls and close() still work."""

        def scenario() -> list[Any]:
            with durable.BlockingRuntime() as rt:
                stub = rt.namespace(Hostile).get_by_name("a")
                return [stub.exit_in_a_task(), stub.stop_the_loop(), stub.increment(), stub.increment()]

        assert guarded(scenario) == ["after", "after", 1, 2]


class TestClosingUnderLoad:
    def test_a_second_close_waits_for_the_first(self, tmp_path: Path) -> None:
        """close() called while another thread is closing returns once the runtime is closed
        (its path free again), not at once while the first close still flushes."""

        class Late(durable.DurableObject):
            async def start(self) -> None:
                async def later() -> None:
                    await asyncio.sleep(0.2)
                    await self.ctx.storage.put("done", True)

                self.ctx.wait_until(later())

            async def done(self) -> bool:
                return bool(await self.ctx.storage.get("done"))

        def scenario() -> bool:
            rt = durable.BlockingRuntime(tmp_path)
            rt.namespace(Late).get_by_name("a").start()
            first = threading.Thread(target=rt.close)
            first.start()
            while not rt.closed:  # the first close() has begun
                pass
            rt.close()
            with durable.BlockingRuntime(tmp_path) as again:  # PathLockedError if still closing
                done = again.namespace(Late).get_by_name("a").done()
            first.join()
            return bool(done)

        assert guarded(scenario) is True

    def test_a_call_in_flight_when_closed(self) -> None:
        """A thread blocked in a call when the runtime closes gets ConnectionClosedError, the
        error aclose() gives such calls on any loop (retryable), not a hang."""

        def scenario() -> Any:
            rt = durable.BlockingRuntime()
            stub = rt.namespace(Hostile).get_by_name("a")
            stub.increment()
            caught: list[Any] = []
            caller = threading.Thread(target=lambda: caught.append(outcome_of(stub.slow)))
            caller.start()
            rt.run(asyncio.sleep, 0.05)  # the call has reached the object
            rt.close()
            caller.join()
            return caught[0]

        raised = guarded(scenario)
        assert isinstance(raised, durable.ConnectionClosedError)
        assert "no longer active" in str(raised)
        assert raised.retryable is True

    def test_a_fetch_whose_body_is_still_read_when_closed(self) -> None:
        """A blocking fetch (and one from another thread's loop) still reading its response's
        body when the runtime closes fails with ConnectionClosedError saying the runtime was
        closed. It said that the runtime's loop stopped and advised using a BlockingRuntime, to
        a caller using one."""

        def scenario() -> list[Any]:
            rt = durable.BlockingRuntime()
            stub = rt.namespace(Hostile).get_by_name("a")
            caught: list[Any] = []
            callers = [
                threading.Thread(target=lambda: caught.append(outcome_of(lambda: stub.fetch("http://a/")))),
                threading.Thread(
                    target=lambda: caught.append(outcome_of(lambda: asyncio.run(stub.stub.fetch("http://a/"))))
                ),
            ]
            for caller in callers:
                caller.start()

            assert READING.acquire(timeout=30) and READING.acquire(timeout=30)  # both read their body
            rt.close()
            for caller in callers:
                caller.join()
            return caught

        blocking, forwarded = sorted(guarded(scenario), key=lambda raised: "BlockingRuntime was" not in str(raised))
        assert isinstance(blocking, durable.ConnectionClosedError), blocking
        assert "the durable.BlockingRuntime was closed before this call ended" in str(blocking)
        assert isinstance(forwarded, durable.ConnectionClosedError), forwarded
        assert "the runtime was closed" in str(forwarded)

    def test_close_with_a_task_that_ignores_cancellation(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A call that catches every CancelledError does not make close() wait for ever: it is
        left after durable._runtime.SHUTDOWN_GRACE seconds (shortened here), with a warning.
        Collected later, its task closes quietly (on 3.11 the task stepping an event swallowed
        the GeneratorExit: "Exception ignored ... cannot reuse already awaited coroutine")."""
        monkeypatch.setattr("durable._blocking.SHUTDOWN_GRACE", 0.2)
        unraisable: list[Any] = []
        monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

        def scenario() -> Any:
            rt = durable.BlockingRuntime()
            stub = rt.namespace(Hostile).get_by_name("a")
            caught: list[Any] = []
            caller = threading.Thread(target=lambda: caught.append(outcome_of(stub.stubborn)))
            caller.start()
            rt.run(asyncio.sleep, 0.05)
            rt.close()
            caller.join()
            return caught[0]

        assert isinstance(guarded(scenario), durable.ConnectionClosedError)
        left = [r for r in caplog.records if "did not end when cancelled" in r.getMessage()]
        assert len(left) == 1  # given up on once, not waited for again
        gc.collect()
        assert [str(u.exc_value) for u in unraisable] == []


class Room(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send(f"echo: {message!s}")

    async def increment(self) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + 1)
        return value + 1


class TestTestingHelpersFromOtherThreads:
    def test_websocket_helpers_take_a_blocking_stub(self) -> None:
        """hibernate(), hibernation_blockers() and websocket() take a BlockingStub, as the other
        helpers of durable.testing do (docs/threads.md); they refused it with TypeError."""

        def scenario() -> list[Any]:
            with durable.BlockingRuntime() as rt:
                stub = rt.namespace(Room).get_by_name("r")

                async def talk() -> Any:
                    async with testing.websocket(stub, "http://room/") as ws:
                        ws.send("hi")
                        return await ws.receive()

                echoed = asyncio.run(talk())
                blockers = testing.hibernation_blockers(stub)
                asyncio.run(testing.hibernate(stub))
                return [echoed, blockers, stub.increment()]

        assert guarded(scenario) == ["echo: hi", [], 1]

    def test_hibernate_from_another_thread_while_calls_run(self, tmp_path: Path) -> None:
        """hibernate() awaited on another thread's loop runs on the runtime's, between calls: calls
        made meanwhile from other threads all count. It ran on the caller's thread, under the
        object's feet: commits failed ("Recursive use of cursors not allowed") and reset it."""

        def scenario() -> tuple[int, int]:
            with durable.BlockingRuntime(tmp_path) as rt:
                stub = rt.namespace(Room).get_by_name("r")
                stub.increment()
                stop = threading.Event()
                made: list[int] = []

                def caller() -> None:
                    count = 0
                    while not stop.is_set():
                        stub.increment()
                        count += 1
                    made.append(count)

                callers = [threading.Thread(target=caller) for _ in range(3)]
                for thread in callers:
                    thread.start()

                async def hibernate_often() -> None:
                    for _ in range(200):
                        with contextlib.suppress(RuntimeError):  # not eligible now: a call runs
                            await testing.hibernate(stub)
                        testing.hibernation_blockers(stub)
                        await asyncio.sleep(0)

                try:
                    asyncio.run(hibernate_often())
                finally:
                    stop.set()
                    for thread in callers:
                        thread.join()
                return 1 + sum(made), stub.increment() - 1

        made, stored = guarded(scenario)
        assert stored == made


class TestClosingWhileOtherLoopsCall:
    def test_calls_from_other_loops_racing_close(self, caplog: pytest.LogCaptureFixture) -> None:
        """Threads calling a BlockingRuntime's objects from loops of their own while it closes
        each end with RuntimeClosedError or ConnectionClosedError, and the calls that started in
        the loop's last turns end too: none is "destroyed but it is pending" when the loop closes
        (asyncio's error log, and a "coroutine ... was never awaited" warning, before)."""

        def scenario() -> set[type[BaseException]]:
            ended: set[type[BaseException]] = set()
            for _ in range(5):
                rt = durable.BlockingRuntime()
                ns = rt.namespace(Hostile)
                started = threading.Barrier(4)

                async def hammer(name: str) -> None:
                    stub = ns.namespace.get_by_name(name)  # noqa: B023 - this round's namespace
                    await stub.increment()
                    started.wait()  # noqa: B023 - this round's barrier
                    while True:
                        await stub.increment()

                callers = [
                    threading.Thread(target=lambda n=n: ended.add(type(outcome_of(lambda: asyncio.run(hammer(n))))))
                    for n in "abc"
                ]
                for thread in callers:
                    thread.start()
                started.wait()
                rt.close()
                for thread in callers:
                    thread.join()
            return ended

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ended = guarded(scenario)
            gc.collect()
        assert ended <= {durable.RuntimeClosedError, durable.ConnectionClosedError}, ended
        assert [r.getMessage() for r in caplog.records if "destroyed" in r.getMessage()] == []
        assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


INTERRUPTED_CLOSE = """
import asyncio, os, signal, sys, threading
import durable

released = threading.Event()


def interrupt(signum, frame):
    released.set()  # the interrupted close() waits for the work this releases
    raise KeyboardInterrupt


class Late(durable.DurableObject):
    async def start(self):
        async def later():
            await asyncio.to_thread(released.wait)
            await self.ctx.storage.put("done", True)

        self.ctx.wait_until(later())

    async def done(self):
        return await self.ctx.storage.get("done")


signal.signal(signal.SIGINT, interrupt)
rt = durable.BlockingRuntime(sys.argv[1])
rt.namespace(Late).get_by_name("a").start()


def ctrl_c():
    while not rt.closed:
        pass
    os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=ctrl_c).start()
try:
    rt.close()
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
with durable.BlockingRuntime(sys.argv[1]) as again:  # PathLockedError if left half closed
    print(again.namespace(Late).get_by_name("a").done())
"""


class TestInterrupted:
    def test_close_interrupted_by_ctrl_c(self, tmp_path: Path) -> None:
        """Ctrl-C while close() waits raises KeyboardInterrupt once the shutdown has ended: the
        runtime is closed, its wait_until work done and its path free. It stopped the loop in
        the middle of the shutdown: the path stayed locked for the rest of the process and the
        work was lost."""
        script = tmp_path / "interrupted_close.py"
        script.write_text(INTERRUPTED_CLOSE)
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "state")],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
            env={**os.environ, "PYTHONPATH": str(Path(durable.__file__).parent.parent)},
        )
        assert (done.stdout.split(), done.returncode) == (["interrupted", "True"], 0), done.stderr[-2000:]


class TestClosedRuntimeIsNotTakenOver:
    def test_call_after_close_leaves_the_runtime_where_it_was(self) -> None:
        """A call made from another thread's loop to a closed runtime raises RuntimeClosedError
        there, and does not make that loop the runtime's: it did (a closed loop is "taken over"),
        so calls from third threads were forwarded to that caller's loop, where they could start
        in its asyncio.run's last turns and be destroyed pending (seen under load in
        test_calls_from_other_loops_racing_close)."""
        rt = durable.BlockingRuntime()
        stub = rt.namespace(Hostile).get_by_name("a")
        assert stub.increment() == 1
        home = rt.runtime.loop
        rt.close()
        outcome = outcome_of(lambda: asyncio.run(stub.stub.increment()))
        assert type(outcome) is durable.RuntimeClosedError
        assert rt.runtime.loop is home


class TestPinnedLoop:
    """A BlockingRuntime's thread stops its loop and runs it again (an object's code stopped it,
    or the shutdown runs next): a call from another thread's loop made in that moment must wait
    for that loop, not take the runtime over (it would then run on two threads at once)."""

    @staticmethod
    def route_from_another_loop(runtime: durable.Runtime) -> asyncio.AbstractEventLoop | None:
        from durable._stub import _runtime_loop

        async def route() -> asyncio.AbstractEventLoop | None:
            return _runtime_loop(runtime, asyncio.get_running_loop())

        return asyncio.run(route())

    @pytest.mark.parametrize("pinned", [True, False])
    def test_a_stopped_loop_keeps_a_pinned_runtime(self, pinned: bool) -> None:
        from durable._stub import pin_runtime_loop

        home = asyncio.new_event_loop()
        runtime = durable.Runtime()
        try:
            home.run_until_complete(runtime.__aenter__())  # its loop is `home`, now stopped
            if pinned:
                pin_runtime_loop(runtime)
            routed = self.route_from_another_loop(runtime)
            # Pinned: forwarded to its own loop. Not pinned (a plain Runtime whose loop is gone):
            # the calling loop takes it over, as docs/threads.md describes.
            assert (routed is home) if pinned else (routed is None and runtime.loop is not home)
        finally:
            if runtime.loop is home:
                home.run_until_complete(runtime.aclose())
            else:
                asyncio.run(runtime.aclose())  # taken over: closed from a loop that takes it again
            home.close()

    def test_a_blocking_runtime_is_pinned(self) -> None:
        from durable._stub import _pinned

        with durable.BlockingRuntime() as rt:
            assert rt.runtime in _pinned


SIGNAL_IN_SUBMIT = """
import signal
import sys

import durable
import durable._blocking as blocking


class Counter(durable.DurableObject):
    async def increment(self) -> int:
        value = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + 1)
        return value + 1


rt = durable.BlockingRuntime()
stub = rt.namespace(Counter).get_by_name("a")
seen = []


def handler(signum, frame):
    seen.append(rt.close() if sys.argv[1] == "close" else stub.increment())


signal.signal(signal.SIGUSR1, handler)
forward = blocking.submit


def submit_interrupted(loop, make, *outcome):
    # The signal arrives while the main thread is submitting a call: its handler runs there,
    # at the next bytecode, in the middle of BlockingRuntime._run_blocking (once: not in its own call).
    if not seen and not raised:
        raised.append(True)
        signal.raise_signal(signal.SIGUSR1)
    return forward(loop, make, *outcome)


raised = []


blocking.submit = submit_interrupted
try:
    outcome = stub.increment()
except durable.RuntimeClosedError as exc:
    outcome = type(exc).__name__
blocking.submit = forward
print(outcome, seen, rt.closed)
rt.close()
"""


class TestSignalHandlers:
    @pytest.mark.parametrize(
        ("in_handler", "expected"),
        [
            # the handler's call runs first (it ran inside the main thread's call), then the main's
            ("call", "2 [1] False"),
            # closed by the handler before the main thread's call was sent: refused
            ("close", "RuntimeClosedError [None] True"),
        ],
    )
    def test_a_handler_that_calls_while_the_main_thread_submits(
        self, in_handler: str, expected: str, tmp_path: Path
    ) -> None:
        """A signal handler (SIGTERM closing the runtime, SIGHUP asking an object) runs in the
        main thread between two bytecodes, possibly while that thread is inside a blocking call
        of the same BlockingRuntime, holding its lock: the handler's own call or close() then
        waited for that lock for ever (the main thread, which holds it, waits for the handler)."""
        script = tmp_path / "signal_in_submit.py"
        script.write_text(SIGNAL_IN_SUBMIT)
        done = subprocess.run(
            [sys.executable, str(script), in_handler],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
            env={**os.environ, "PYTHONPATH": str(Path(durable.__file__).parent.parent)},
        )
        assert (done.stdout.strip(), done.returncode) == (expected, 0), done.stderr[-2000:]


CTRL_C_IN_A_CALL = """
import asyncio
import os
import signal
import threading

import durable

started = threading.Event()
interrupted = threading.Event()


class Slow(durable.DurableObject):
    async def work(self) -> str:
        started.set()
        # The call ends only once the main thread has seen its KeyboardInterrupt (or after 20 s,
        # then "not interrupted"): a fixed sleep ended first on a loaded machine.
        for _ in range(2000):
            if interrupted.is_set():
                break
            await asyncio.sleep(0.01)
        await self.ctx.storage.put("done", True)
        return "done"

    async def done(self) -> bool:
        return bool(await self.ctx.storage.get("done"))


def ctrl_c() -> None:
    started.wait(30)
    os.kill(os.getpid(), signal.SIGINT)


with durable.BlockingRuntime() as rt:
    stub = rt.namespace(Slow).get_by_name("a")
    interrupter = threading.Thread(target=ctrl_c)
    interrupter.start()
    try:
        stub.work()
        print("not interrupted")
    except KeyboardInterrupt:
        interrupted.set()
        print("interrupted")
    interrupted.set()  # the second work() below returns at once
    interrupter.join()

    async def settled() -> bool:
        for _ in range(3000):
            if await stub.stub.done():
                return True
            await asyncio.sleep(0.01)
        return False

    print(rt.run(settled), stub.work())
print(threading.active_count())
"""


class TestNoThreadLeft:
    def test_close_returns_once_the_runtimes_thread_has_ended(self) -> None:
        """Once close() returns, the runtime's thread has ended (docs/threads.md: close() stops
        its thread). close() returned as soon as the shutdown was done, while that thread was
        still ending: a caller checking for leftover threads could find it."""
        rt = durable.BlockingRuntime()
        assert rt.namespace(Hostile).get_by_name("a").increment() == 1

        class SlowToEnd(threading.Event):
            def set(self) -> None:  # the thread's last step, made slow to end
                super().set()
                threading.Event().wait(0.3)

        rt._stopped = SlowToEnd()
        guarded(rt.close)
        assert not rt._thread.is_alive()


class TestCtrlCInACall:
    def test_ctrl_c_during_a_blocking_call(self, tmp_path: Path) -> None:
        """Ctrl-C while the main thread waits for a blocking call raises KeyboardInterrupt there
        at once; the call runs to its end on the runtime, which stays usable, then closes
        leaving no thread (docs/threads.md)."""
        script = tmp_path / "ctrl_c_in_a_call.py"
        script.write_text(CTRL_C_IN_A_CALL)
        done = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
            env={**os.environ, "PYTHONPATH": str(Path(durable.__file__).parent.parent)},
        )
        assert (done.stdout.split(), done.returncode) == (["interrupted", "True", "done", "1"], 0), done.stderr[-2000:]


SIGNAL_WHILE_WAITING = """
import asyncio
import concurrent.futures
import signal
import threading

import durable

rt = durable.BlockingRuntime()
seen = []


async def answer(n, seconds):
    await asyncio.sleep(seconds)
    return n


def handler(signum, frame):
    seen.append(rt.run(answer, 2, 0.5))  # the main thread's call ends first (it started first)


signal.signal(signal.SIGUSR1, handler)
register = concurrent.futures.Future.add_done_callback
raised = []


def add_done_callback(self, fn):
    # The signal arrives while the main thread holds the call's future's lock (adding a callback,
    # or checking the result before waiting): its handler runs there, holding it.
    with self._condition:
        if threading.current_thread() is threading.main_thread() and not raised:
            raised.append(True)
            signal.raise_signal(signal.SIGUSR1)
        return register(self, fn)


concurrent.futures.Future.add_done_callback = add_done_callback
print(rt.run(answer, 1, 0.2), seen)
rt.close()
"""


class TestSignalWhileWaiting:
    def test_a_handler_that_calls_while_the_main_thread_holds_its_calls_future(self, tmp_path: Path) -> None:
        """A signal handler's blocking call, run while the main thread holds the lock of its own
        call's future (the caller's side of concurrent.futures takes it to add a callback or to
        read the result): the runtime's thread, settling that call, waited for that lock, so it
        never ran the handler's call, which the main thread waited for: a hang. The caller now
        waits on a queue the runtime's thread fills, and touches the future only once settled."""
        script = tmp_path / "signal_while_waiting.py"
        script.write_text(SIGNAL_WHILE_WAITING)
        done = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
            env={**os.environ, "PYTHONPATH": str(Path(durable.__file__).parent.parent)},
        )
        assert (done.stdout.strip(), done.returncode) == ("1 [2]", 0), done.stderr[-2000:]
