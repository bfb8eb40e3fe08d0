"""``durable.BlockingRuntime``: the runtime for synchronous code (docs/threads.md)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import durable


class Counter(durable.DurableObject):
    async def increment(self, by: int = 1) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + by)
        return value + by

    def plain(self, x: list[int]) -> list[int]:
        x.append(1)
        return x

    async def fail(self) -> None:
        raise KeyError("missing")

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response(f"{request.method} {request.url}")

    async def add_to(self, others: list[durable.Stub[Counter]], by: int) -> list[int]:
        return [await other.increment(by) for other in others]

    async def keep(self, other: object) -> None:
        await self.ctx.storage.put("other", other)


class TestBlockingRuntime:
    def test_blocking_calls_return_results(self) -> None:
        """Stub methods block and return the result; arguments are copied."""
        with durable.BlockingRuntime() as rt:
            counters = rt.namespace(Counter)
            stub = counters.get_by_name("A")
            assert stub.increment(5) == 5
            assert counters.get(counters.id_from_name("A")).increment() == 6
            arg = [0]
            assert stub.plain(arg) == [0, 1]
            assert arg == [0]
            assert stub.name == "A" and stub.id == counters.id_from_name("A")

    def test_errors_are_raised_in_the_caller(self) -> None:
        """An exception raised in the object is raised by the blocking call."""
        with durable.BlockingRuntime() as rt, pytest.raises(KeyError, match="missing"):
            rt.namespace(Counter).get_by_name("A").fail()

    def test_fetch_returns_a_read_response(self) -> None:
        """stub.fetch blocks and returns a Response whose text rt.run gives."""
        with durable.BlockingRuntime() as rt:
            response = rt.namespace(Counter).get_by_name("A").fetch("http://do/x", method="POST")
            assert response.status == 200
            assert rt.run(response.text) == "POST http://do/x"

    def test_run_runs_a_coroutine_function(self) -> None:
        """rt.run(async_fn, *args) returns its result, computed on the runtime's loop."""
        with durable.BlockingRuntime() as rt:
            ns = rt.namespace(Counter)

            async def twice(name: str) -> int:
                stub = ns.namespace.get_by_name(name)
                await stub.increment()
                return int(await stub.increment())

            assert rt.run(twice, "B") == 2
            assert isinstance(rt.runtime, durable.Runtime)

    def test_run_refuses_an_async_generator_function(self) -> None:
        """rt.run(agen_fn) raises TypeError saying how to iterate it: it returned the generator,
        made on the runtime's loop, whose items no loop of the caller's thread could read."""
        with durable.BlockingRuntime() as rt:

            async def numbers() -> AsyncIterator[int]:
                yield 1

            with pytest.raises(TypeError, match="async generator function"):
                rt.run(numbers)  # type: ignore[arg-type]

            async def collect() -> list[int]:
                return [n async for n in numbers()]

            assert rt.run(collect) == [1]

    def test_run_refuses_a_coroutine_object(self) -> None:
        """rt.run(coro) instead of rt.run(fn) raises TypeError saying how to call it."""
        with durable.BlockingRuntime() as rt:

            async def answer() -> int:
                return 42

            with pytest.raises(TypeError, match=r"rt.run\(fn, \*args\)"):
                rt.run(answer())  # type: ignore[arg-type]
            assert rt.run(answer) == 42

    def test_persisted_across_runtimes(self, tmp_path: Path) -> None:
        """A persisted BlockingRuntime's writes are there when the directory is opened again."""
        with durable.BlockingRuntime(tmp_path) as rt:
            assert rt.namespace(Counter).get_by_name("A").increment(3) == 3
        with durable.BlockingRuntime(tmp_path) as rt:
            assert rt.namespace(Counter).get_by_name("A").increment() == 4

    def test_path_held_twice_is_refused(self, tmp_path: Path) -> None:
        """A second runtime on the same path fails at construction, and leaves no thread behind."""
        before = threading.active_count()
        with durable.BlockingRuntime(tmp_path), pytest.raises(durable.PathLockedError):
            durable.BlockingRuntime(tmp_path)
        assert threading.active_count() == before

    def test_many_threads_at_once(self, tmp_path: Path) -> None:
        """Calls from a pool of threads all count, in memory and persisted."""
        for path in (None, tmp_path):
            with durable.BlockingRuntime(path) as rt:
                stub = rt.namespace(Counter).get_by_name("A")
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda _: stub.increment(), range(400)))  # noqa: B023 - called in this iteration
                assert stub.increment(0) == 400

    def test_closed_runtime_refuses_calls(self) -> None:
        """After close, calls raise RuntimeClosedError; close is idempotent."""
        rt = durable.BlockingRuntime()
        stub = rt.namespace(Counter).get_by_name("A")
        rt.close()
        rt.close()
        assert rt.closed
        with pytest.raises(durable.RuntimeClosedError):
            stub.increment()
        with pytest.raises(durable.RuntimeClosedError):
            rt.namespace(Counter)

    @pytest.mark.parametrize("error", [ValueError("mine"), KeyboardInterrupt()])
    def test_with_block_closes_on_an_exception(self, error: BaseException, tmp_path: Path) -> None:
        """A `with` block left by an exception (Ctrl-C too) closes the runtime, flushing what was
        committed and freeing its path, and the exception propagates as it was."""
        with pytest.raises(type(error)) as raised, durable.BlockingRuntime(tmp_path) as rt:
            stub = rt.namespace(Counter).get_by_name("A")
            stub.increment(3)
            raise error
        assert raised.value is error
        assert rt.closed
        with pytest.raises(durable.RuntimeClosedError):
            stub.increment()
        with durable.BlockingRuntime(tmp_path) as again:  # PathLockedError had it stayed open
            assert again.namespace(Counter).get_by_name("A").increment(0) == 3

    def test_calls_racing_close_are_never_left_waiting(self) -> None:
        """Threads calling while another closes the runtime each get a result or
        RuntimeClosedError, never a wait without end (a call whose start came after the
        shutdown's cancellations used to wait forever)."""
        for _ in range(20):
            rt = durable.BlockingRuntime()
            stub = rt.namespace(Counter).get_by_name("A")
            outcomes: list[str] = []
            started = threading.Barrier(4)

            def caller() -> None:
                started.wait()  # noqa: B023 - this iteration's barrier
                while True:
                    try:
                        stub.increment()  # noqa: B023 - this iteration's stub
                    except durable.RuntimeClosedError:
                        outcomes.append("closed")  # noqa: B023
                        return

            threads = [threading.Thread(target=caller, daemon=True) for _ in range(3)]
            for thread in threads:
                thread.start()
            started.wait()
            rt.close()
            for thread in threads:
                thread.join(10)
            assert not any(thread.is_alive() for thread in threads)
            assert outcomes == ["closed"] * 3

    def test_blocking_call_from_inside_the_runtime_is_refused(self) -> None:
        """A blocking call made on the runtime's own thread raises instead of deadlocking."""
        with durable.BlockingRuntime() as rt:
            stub = rt.namespace(Counter).get_by_name("A")

            async def inside() -> int:
                return int(stub.increment())

            with pytest.raises(RuntimeError, match="own event-loop thread"):
                rt.run(inside)

    def test_a_blocking_stub_passed_over_rpc(self) -> None:
        """A BlockingStub in a call's arguments reaches the object as a stub of the same object,
        as a Stub does (API.md section 2: stubs cross RPC, as in workerd); it was refused with
        DataCloneError ("BlockingStub ... does not support serialization"). Storage refuses it
        with the hint a Stub gets."""
        with durable.BlockingRuntime() as rt:
            counters = rt.namespace(Counter)
            a, b = counters.get_by_name("A"), counters.get_by_name("B")
            assert a.add_to([b, b], 5) == [5, 10]
            assert (a.increment(0), b.increment(0)) == (0, 10)
            with pytest.raises(durable.DataCloneError, match=r"str\(stub.id\)"):
                a.keep(b)

    def test_a_stub_of_a_closed_runtime_called_from_another(self) -> None:
        """An object of one BlockingRuntime calling a stub of another that was closed since gets
        RuntimeClosedError, as on one loop: the call spun for ever on the caller's loop (made
        there, it was forwarded to the closed runtime's loop, which sent it back), and so did the
        blocking call waiting for it. Bounded: a thread makes the call, joined with a time limit."""
        a_rt, b_rt = durable.BlockingRuntime(), durable.BlockingRuntime()
        a = a_rt.namespace(Counter).get_by_name("A")
        b = b_rt.namespace(Counter).get_by_name("B")
        assert b.add_to([a], 2) == [2]  # across runtimes, while both are open
        a_rt.close()
        outcome: list[BaseException | object] = []

        def call() -> None:
            try:
                outcome.append(b.add_to([a], 1))
            except BaseException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(30)
        if caller.is_alive():  # (b_rt is left open: closing it would wait for the spinning call)
            pytest.fail("the call still waits 30 s later: it would for ever")
        assert isinstance(outcome[0], durable.RuntimeClosedError), outcome
        assert b.increment(0) == 0  # B serves on
        b_rt.close()

    @pytest.mark.parametrize("turns", range(12))
    def test_a_call_ending_as_the_runtime_closes_keeps_its_result(self, turns: int) -> None:
        """A call that ends in the turn where the shutdown cancels what is left returns its result:
        its caller got ConnectionClosedError, set on every call still marked running, before the
        call's own outcome (passed on a turn later) was. The call ends `turns` turns after the
        runtime is closed (one of them is that turn); another call, waiting for ever, keeps the
        shutdown going to the cancelling."""
        rt = durable.BlockingRuntime()
        started = threading.Event()
        never: list[asyncio.Event] = []  # (held: a task waiting on an unreferenced event is garbage)
        returned: list[int] = []
        outcomes: dict[str, object] = {}

        async def stuck() -> None:
            never.append(asyncio.Event())
            started.set()
            await never[0].wait()

        async def ends_late() -> str:
            while not rt.runtime.closed:
                await asyncio.sleep(0)
            for _ in range(turns):
                await asyncio.sleep(0)
            returned.append(turns)
            return "done"

        def call(name: str, fn: Callable[[], Awaitable[object]]) -> None:
            try:
                outcomes[name] = rt.run(fn)
            except BaseException as exc:
                outcomes[name] = exc

        callers = [threading.Thread(target=call, args=("stuck", stuck), daemon=True)]
        callers[0].start()
        assert started.wait(30)
        callers.append(threading.Thread(target=call, args=("late", ends_late), daemon=True))
        callers[1].start()
        rt.close()
        for caller in callers:
            caller.join(30)
            assert not caller.is_alive(), "a caller still waits 30 s after close()"
        assert isinstance(outcomes["stuck"], durable.ConnectionClosedError)
        if returned:
            assert outcomes["late"] == "done"
        else:  # cancelled, or sent once the runtime was closed
            assert isinstance(outcomes["late"], (durable.ConnectionClosedError, durable.RuntimeClosedError))

    def test_an_error_while_sending_is_not_taken_for_closed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A RuntimeError raised while a call is sent (a RecursionError, in a signal handler's
        call nested too deep) is raised as it is: it was reported as RuntimeClosedError, which
        only a closed loop means."""
        import durable._blocking as blocking

        with durable.BlockingRuntime() as rt:
            stub = rt.namespace(Counter).get_by_name("A")

            def too_deep(*args: object) -> None:
                raise RecursionError("maximum recursion depth exceeded")

            monkeypatch.setattr(blocking, "submit", too_deep)
            with pytest.raises(RecursionError):
                stub.increment()
            monkeypatch.undo()
            assert stub.increment() == 1

    def test_namespace_options_and_errors(self) -> None:
        """namespace() takes Runtime.namespace's options and raises its errors."""
        with durable.BlockingRuntime() as rt:
            ns = rt.namespace(Counter, name="COUNTER", storage="kv")
            assert ns.name == "COUNTER"
            assert ns.id_from_string(str(ns.new_unique_id())).name is None
            with pytest.raises(TypeError):
                rt.namespace(int)


class TestExample:
    def test_examples_blocking_runs(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """examples/blocking.py counts every call from its threads, and persists with --persist."""
        import importlib.util

        path = Path(__file__).resolve().parent.parent / "examples" / "blocking.py"
        spec = importlib.util.spec_from_file_location("durable_example_blocking", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(["--threads", "4", "--calls", "50"])
        assert capsys.readouterr().out.startswith("shared: 200 (each worker: [50, 50, 50, 50])")
        for expected in ("200", "400"):
            module.main(["--threads", "4", "--calls", "50", "--persist", str(tmp_path)])
            assert capsys.readouterr().out.startswith(f"shared: {expected} ")
        for args, said in (
            (["--threads", "0"], "--threads: must be at least 1, not 0"),
            (["--calls", "many"], "--calls: must be a whole number, not 'many'"),
        ):
            with pytest.raises(SystemExit):
                module.main(args)
            err = capsys.readouterr().err
            assert said in err and "_positive" not in err  # argparse named the type function
