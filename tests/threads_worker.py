"""Calls stubs from many threads at once, each with its own event loop; run by ``tests/test_threads.py``.

Run in a subprocess, so that a crash (a segfault, a deadlock killed by the timeout) fails the
test that ran it instead of the whole test run. Usage::

    python tests/threads_worker.py SCENARIO STORAGE THREADS CALLS [DIR]

SCENARIO: ``opened`` (the runtime is opened on the main thread's loop, which keeps running while
worker threads call it), ``adopted`` (the runtime is made in synchronous code and never opened:
the worker threads' short-lived loops take it over one after another), or ``blocking``
(``durable.BlockingRuntime``). STORAGE: ``memory`` or ``disk`` (DIR is then the directory).
Half the threads make every call with its own ``asyncio.run(stub.increment())``; the other half
run one loop and await their calls in it. Every thread also reads one object and calls a second
object by ``fetch``. Prints ``OK <count>`` and exits 0 when every count is exact, else prints
what differed and exits 1.

In ``adopted``, the runtime's loop is whichever thread's loop used it first, and it closes when
that thread's ``asyncio.run`` returns: calls forwarded to it may then fail with the retryable
``ConnectionClosedError`` (never hang, never crash). Those are counted, and the count must lie
between the calls that succeeded and the calls made.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import durable

RETRIED = [0]
"""Calls of the ``adopted`` scenario that failed with the retryable error (for the re-read check)."""


class Tally(durable.DurableObject):
    """A counter with RPC and fetch."""

    async def increment(self, by: int = 1) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + by)
        return value + by

    async def count(self) -> int:
        return (await self.ctx.storage.get("n")) or 0

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response(str(await self.increment()))


def run_threads(ns: Any, threads: int, calls: int, failures: list[str], retried: list[str]) -> None:
    """Start ``threads`` threads that each make ``calls`` increments, and wait for them."""

    def retrying(make: Any) -> Any:
        try:
            return asyncio.run(make())
        except durable.ConnectionClosedError as exc:  # retryable: the call may or may not have run
            retried.append(str(exc))
            return None

    def per_call_loops(index: int) -> None:
        stub = ns.get_by_name("shared")
        for _ in range(calls):
            retrying(lambda: stub.increment())
        retrying(lambda: ns.get_by_name("fetched").fetch("http://tally/"))

    def one_loop(index: int) -> None:
        async def body() -> None:
            stub = ns.get_by_name("shared")
            for _ in range(calls):
                try:
                    await stub.increment()
                except durable.ConnectionClosedError as exc:
                    retried.append(str(exc))
            try:
                response = await ns.get_by_name("fetched").fetch("http://tally/")
                int(await response.text())
            except durable.ConnectionClosedError as exc:
                retried.append(str(exc))

        asyncio.run(body())

    def guarded(index: int) -> None:
        try:
            (per_call_loops if index % 2 else one_loop)(index)
        except BaseException as exc:  # reported, so that the count check says why it differs
            failures.append(f"thread {index}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=guarded, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def check(shared: int, fetched: int, threads: int, calls: int, failures: list[str], retried: int = 0) -> int:
    problems = list(failures)
    if not threads * calls - retried <= shared <= threads * calls:
        problems.append(f"shared count {shared}, expected {threads * calls} ({retried} calls retryable)")
    if not threads - retried <= fetched <= threads:
        problems.append(f"fetched count {fetched}, expected {threads} ({retried} calls retryable)")
    if problems:
        print("FAIL " + "; ".join(problems[:10]), flush=True)
        return 1
    print(f"OK {shared} {retried}", flush=True)
    return 0


def opened(path: str | None, threads: int, calls: int) -> int:
    async def main() -> int:
        failures: list[str] = []
        async with durable.Runtime(path=path) as rt:
            ns = rt.namespace(Tally)
            await asyncio.to_thread(run_threads, ns, threads, calls, failures, failures)
            shared, fetched = await ns.get_by_name("shared").count(), await ns.get_by_name("fetched").count()
        return check(shared, fetched, threads, calls, failures)

    return asyncio.run(main())


def adopted(path: str | None, threads: int, calls: int) -> int:
    failures: list[str] = []
    retried: list[str] = []
    rt = durable.Runtime(path=path)
    ns = rt.namespace(Tally)
    run_threads(ns, threads, calls, failures, retried)

    async def finish() -> tuple[int, int]:
        counts = await ns.get_by_name("shared").count(), await ns.get_by_name("fetched").count()
        await rt.aclose()
        return counts

    shared, fetched = asyncio.run(finish())
    RETRIED[0] = len(retried)
    return check(shared, fetched, threads, calls, failures, len(retried))


def blocking(path: str | None, threads: int, calls: int) -> int:
    failures: list[str] = []
    with durable.BlockingRuntime(path) as rt:
        ns = rt.namespace(Tally)

        def work(index: int) -> None:
            try:
                stub = ns.get_by_name("shared")
                for _ in range(calls):
                    stub.increment()
                response = ns.get_by_name("fetched").fetch("http://tally/")
                int(rt.run(response.text))
            except BaseException as exc:
                failures.append(f"thread {index}: {type(exc).__name__}: {exc}")

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        shared, fetched = ns.get_by_name("shared").count(), ns.get_by_name("fetched").count()
    return check(shared, fetched, threads, calls, failures)


def main(argv: list[str]) -> int:
    """Run one scenario (see the module docstring); the exit status says whether it passed."""
    scenario, storage, threads, calls = argv[0], argv[1], int(argv[2]), int(argv[3])
    path = argv[4] if storage == "disk" else None
    run = {"opened": opened, "adopted": adopted, "blocking": blocking}[scenario]
    status = run(path, threads, calls)
    if path is not None and status == 0:
        # Reopened, the directory holds exactly the same counts.
        async def reread() -> tuple[int, int]:
            async with durable.Runtime(path=path) as rt:
                ns = rt.namespace(Tally)
                return await ns.get_by_name("shared").count(), await ns.get_by_name("fetched").count()

        shared, fetched = asyncio.run(reread())
        status = check(shared, fetched, threads, calls, [], RETRIED[0])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
