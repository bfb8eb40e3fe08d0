"""When a hand-stepped event resumes (Python 3.11's ``_eager._drive`` and ``_Resume``), against
asyncio's own eager tasks (3.12+).

An eager task's wake-up is queued at the end of its first step: on the next loop turn for a bare
yield (``await asyncio.sleep(0)``), where its future is done for an ``await``. The hand stepper
begins its task only on the next loop turn; it resumed a bare yield one turn later, and an
``await`` on a future done before its task began one turn later too. Each test runs as this
Python starts events and with the hand stepper forced, and expects the order asyncio's eager tasks
give (measured on Python 3.12.1; workerd has no such loop turn to compare with: an ``await`` in
JavaScript resumes in a microtask).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import durable
from durable import _eager

seen: list[str] = []
INSTANCES: list[Any] = []


class Steps(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.later: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.me: Any = None
        INSTANCES.append(self)

    def ready(self) -> None:
        seen.clear()

    async def yields(self) -> None:
        seen.append("yields 1")
        await asyncio.sleep(0)
        seen.append("yields 2")
        await asyncio.sleep(0)
        seen.append("yields 3")

    async def waits(self) -> None:
        seen.append("waits 1")
        self.me = asyncio.current_task()
        try:
            await self.future
            seen.append("waits 2")
            await asyncio.sleep(0)
            seen.append("waits 3")
        except asyncio.CancelledError:
            seen.append("waits cancelled")

    async def waits_twice(self) -> None:
        self.me = asyncio.current_task()
        await self.future
        seen.append("resumed")
        loop = asyncio.get_running_loop()
        loop.call_soon(self.me.cancel)  # after this step, before the next: `later` is cancelled
        try:
            await self.later
            seen.append("later")
        except asyncio.CancelledError:
            seen.append("later cancelled")

    async def syncs(self) -> None:
        seen.append("syncs 1")
        await self.ctx.storage.sync()
        seen.append("syncs 2")

    def release(self) -> None:
        self.future.set_result(None)
        seen.append("released")


@pytest.fixture(params=["native", "hand-stepped"])
def stepping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test as this Python starts events, then with the hand-written stepper forced."""
    if request.param == "hand-stepped":
        monkeypatch.setattr(_eager, "EAGER_TASKS", False)
    yield request.param


@pytest.fixture
async def steps(stepping: str) -> Any:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Steps).get_by_name("s")
        await stub.ready()  # the instance exists: calls take the shorter path (the first, invoke())
        yield stub


def _marks(label: str, count: int = 2) -> None:
    loop = asyncio.get_running_loop()
    for n in range(count):
        loop.call_soon(seen.append, f"{label}{n}")


@pytest.mark.parametrize("path", ["invoke", "shorter"])
async def test_a_bare_yield_resumes_on_the_next_loop_turn(stepping: str, path: str) -> None:
    """`await asyncio.sleep(0)` as the first suspension: the event goes on where callbacks queued
    before the call run, ahead of those queued after it (3.11 resumed it a turn later)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Steps).get_by_name("s")
        if path == "shorter":
            await stub.ready()
        seen.clear()
        _marks("before ")
        call = stub.yields()
        _marks("after ")
        await call
    assert seen == ["yields 1", "before 0", "before 1", "yields 2", "after 0", "after 1", "yields 3"]


async def test_a_bare_yield_against_a_sync(steps: Any) -> None:
    """Two events: ``await sync()`` with nothing to commit, and two bare yields (3.11 let the
    sync's event resume before the second yield)."""
    await asyncio.gather(steps.syncs(), steps.yields())
    assert seen == ["syncs 1", "yields 1", "yields 2", "syncs 2", "yields 3"]


async def test_a_future_done_before_the_task_begins(steps: Any) -> None:
    """The future the first step waits on is done in the same turn: the event resumes where that
    future's callbacks run, not a loop turn later."""
    _marks("before ")
    call = steps.waits()
    _marks("after ")
    await steps.release()  # (never suspends: no loop turn)
    _marks("released ")
    await call
    expected = ["waits 1", "released", "before 0", "before 1", "after 0", "after 1", "waits 2"]
    expected += ["released 0", "released 1", "waits 3"]
    assert seen == expected


async def test_a_cancellation_before_the_wake_up_reaches_the_event(steps: Any) -> None:
    """The event's task is cancelled after its future is done and before the event resumed: the
    event sees ``CancelledError`` where it waits, as an eager task's coroutine does."""
    call = steps.waits()
    asyncio.get_running_loop().call_soon(_cancel_event)  # after the task began, before the wake-up
    await steps.release()
    await call
    assert seen == ["waits 1", "released", "waits cancelled"]


async def test_a_cancellation_after_a_wake_up_cancels_what_the_event_waits_on(steps: Any) -> None:
    """Cancelled between a step made by a wake-up and the task's taking over: what the event
    waits on next is cancelled, as ``Task.cancel()`` cancels the future its task waits on."""
    call = steps.waits_twice()
    await steps.release()
    await call
    assert seen == ["released", "resumed", "later cancelled"]


def _cancel_event() -> None:
    """Cancel the task of the event that waits (``Steps.me``, the current task it saw)."""
    INSTANCES[-1].me.cancel()
