"""A runtime taken over by one short-lived loop after another (``asyncio.run`` in several threads,
or several times in a row): calls forwarded between them, and alarms, are neither lost nor failed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path

import pytest

import durable

THREADS = 4
CALLS = 50
JOIN_TIMEOUT = 120.0
"""Seconds the threads of a test may take (a few seconds at most on a loaded 2-core VM)."""


class Count(durable.DurableObject):
    async def inc(self) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + 1)
        return value + 1

    async def value(self) -> int:
        return (await self.ctx.storage.get("n")) or 0


def run_threads(work: Callable[[int], None]) -> Tally[str]:
    """Run ``work(i)`` in THREADS threads; the errors they raised, by type and message."""
    errors: Tally[str] = Tally()
    lock = threading.Lock()

    def worker(i: int) -> None:
        for n in range(CALLS):
            try:
                work(i * CALLS + n)
            except Exception as exc:
                with lock:
                    errors[f"{type(exc).__name__}: {exc}"] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs"
    return errors


@pytest.mark.parametrize("persisted", [False, True], ids=["memory", "persisted"])
def test_asyncio_run_in_several_threads_fails_no_call(tmp_path: Path, persisted: bool) -> None:
    """Each thread's ``asyncio.run`` takes the runtime over in turn while the others forward their
    calls to it: when it ends, the calls it runs for the others finish there (they did their work:
    they used to fail with ConnectionClosedError), and those sent as it ends go to the next loop."""
    rt = durable.Runtime(tmp_path / "state") if persisted else durable.Runtime()  # as durable_runtime makes it
    stub = rt.namespace(Count).get_by_name("x")
    errors = run_threads(lambda n: asyncio.run(stub.inc()))
    assert errors == Tally()
    assert asyncio.run(stub.value()) == THREADS * CALLS
    asyncio.run(rt.aclose())


def test_blocking_runtime_mixed_with_asyncio_run() -> None:
    """Threads mixing a BlockingRuntime's blocking calls and ``asyncio.run`` of its async stub."""
    with durable.BlockingRuntime() as rt:
        stub = rt.namespace(Count).get_by_name("x")

        def work(n: int) -> None:
            if n % 2:
                stub.inc()
            else:
                asyncio.run(stub.stub.inc())

        assert run_threads(work) == Tally()
        assert stub.value() == THREADS * CALLS


def test_persisted_blocking_runtime_with_asyncio_run(tmp_path: Path) -> None:
    with durable.BlockingRuntime(tmp_path / "state") as rt:
        stub = rt.namespace(Count).get_by_name("x")
        assert run_threads(lambda n: asyncio.run(stub.stub.inc())) == Tally()
        assert stub.value() == THREADS * CALLS


ALARMS_RAN: list[str] = []


class Alarmed(durable.DurableObject):
    async def set_in(self, ms: int) -> None:
        await self.ctx.storage.set_alarm(int(time.time() * 1000) + ms)

    async def alarm_time(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo | None = None) -> None:
        ALARMS_RAN.append(self.ctx.id.name or "")


@pytest.mark.parametrize("persisted", [False, True], ids=["memory", "persisted"])
def test_alarm_set_in_one_asyncio_run_runs_in_the_next(tmp_path: Path, persisted: bool) -> None:
    """A timer armed on a loop that ended is armed again on the loop that takes the runtime over.

    The real clock: a MockClock's timers are not the loop's (its advance() runs them on any loop).
    """
    ALARMS_RAN.clear()
    rt = durable.Runtime(tmp_path / "state") if persisted else durable.Runtime()
    ns = rt.namespace(Alarmed)
    asyncio.run(ns.get_by_name("a").set_in(100))  # due once this loop has ended

    async def second() -> None:
        await ns.get_by_name("b").alarm_time()  # takes the runtime over
        deadline = time.monotonic() + 10
        while "a" not in ALARMS_RAN and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert ALARMS_RAN == ["a"]
        assert await ns.get_by_name("a").alarm_time() is None
        await rt.aclose()

    asyncio.run(second())
