"""A hand-stepped event (Python 3.11's ``_eager._drive`` and ``_Resume``) against asyncio's eager
task (3.12+): what its code yields that is no future it can await, a cancellation's message, its
context variables, ``asyncio.timeout()``, a ``TaskGroup`` and the current task across the steps
a wake-up makes.

Each test runs as this Python starts events and with the hand stepper forced; the expected
outcomes are those of asyncio's eager task (measured on Python 3.12.1: ``Task.__step`` throws a
``RuntimeError`` into a coroutine that yields anything but a future of its loop, and
``Task.cancel(msg)``'s message reaches the ``CancelledError`` the coroutine sees).
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Iterator
from typing import Any

import pytest

import durable
from durable import _eager

seen: list[Any] = []
INSTANCES: list[Any] = []
VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@types.coroutine
def bad_yield(value: Any) -> Any:
    return (yield value)


class P(durable.DurableObject):
    """Each method records what it saw in ``seen``."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = loop.create_future()
        self.later: asyncio.Future[None] = loop.create_future()
        self.me: Any = None
        INSTANCES.append(self)

    def ready(self) -> None:
        seen.clear()

    def release(self) -> None:
        self.future.set_result(None)

    async def ctxvars(self) -> None:
        VAR.set("step1")
        await self.future  # done before the task begins: a wake-up steps it
        seen.append(VAR.get())
        VAR.set("step2")
        await asyncio.sleep(0)
        seen.append(VAR.get())
        VAR.set("step3")
        await self.later
        seen.append(VAR.get())

    async def cancel_msg(self) -> None:
        self.me = asyncio.current_task()
        await self.future
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        except asyncio.CancelledError as e:
            seen.append(("cancelled", e.args))

    async def yields_bad(self, what: str) -> None:
        try:
            if what == "int":
                await bad_yield(42)
            else:
                fut = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(fut.set_result, 1)
                await bad_yield(fut)  # a future yielded without await
            seen.append("resumed")
        except BaseException as e:
            seen.append((type(e).__name__, str(e)[:40]))

    async def yields_bad_later(self, what: str) -> None:
        await self.future  # wake-up path
        await self.yields_bad(what)

    async def timeout_parked(self) -> None:
        self.me = asyncio.current_task()
        try:
            async with asyncio.timeout(None) as cm:
                await self.future
                cm.reschedule(asyncio.get_running_loop().time() - 1)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                seen.append("not timed out")
        except TimeoutError:
            seen.append("timed out")
        seen.append(self.me.cancelling())

    async def current(self) -> None:
        me = asyncio.current_task()
        await self.future
        seen.append(asyncio.current_task() is me)
        await asyncio.sleep(0)
        seen.append(asyncio.current_task() is me)

    async def group_parked(self) -> None:
        self.me = asyncio.current_task()

        async def child(n: int) -> None:
            if n:
                raise ValueError("child")
            await asyncio.sleep(10)

        try:
            async with asyncio.TaskGroup() as tg:
                await self.future
                tg.create_task(child(0))
                tg.create_task(child(1))
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                seen.append("group not cancelled")
        except* ValueError:
            seen.append("group failed")
        seen.append(self.me.cancelling())

    async def raises_base(self) -> None:
        await self.future
        raise KeyboardInterrupt


BAD = {"int": "Task got bad yield: 42", "future": "yield was used instead of yield from in "}


@pytest.fixture(params=["native", "hand-stepped"])
def stepping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "hand-stepped":
        monkeypatch.setattr(_eager, "EAGER_TASKS", False)
    yield request.param


@pytest.fixture
async def p(stepping: str) -> Any:
    async with durable.Runtime() as rt:
        stub = rt.namespace(P).get_by_name("s")
        await stub.ready()
        yield stub


async def test_context_variables_of_every_step_stay_in_the_event(p: Any) -> None:
    """Each step (the first, a wake-up's, the task's) sees what the earlier ones set; the caller sees none of it."""
    VAR.set("caller")
    call = p.ctxvars()
    await p.release()
    assert VAR.get() == "caller"
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    INSTANCES[-1].later.set_result(None)
    await call
    assert VAR.get() == "caller"
    assert seen == ["step1", "step2", "step3"]


async def test_a_cancellation_while_parked_keeps_its_message(p: Any) -> None:
    """``cancel("why")`` of the event's task between two wake-up steps: the event's ``CancelledError`` says why."""
    call = p.cancel_msg()
    await p.release()
    asyncio.get_running_loop().call_soon(lambda: INSTANCES[-1].me.cancel("why"))
    await call
    assert seen == [("cancelled", ("why",))]


@pytest.mark.parametrize("what", ["int", "future"])
async def test_a_bad_yield_in_the_first_step_raises_in_the_event(p: Any, what: str) -> None:
    """A value, or a future yielded without ``await``: ``RuntimeError`` (asyncio's text), not a resumption."""
    await p.yields_bad(what)
    assert seen == [("RuntimeError", BAD[what])]


@pytest.mark.parametrize("what", ["int", "future"])
async def test_a_bad_yield_in_a_wake_up_step_raises_in_the_event(p: Any, what: str) -> None:
    """The same in a step a wake-up made (the future of the first step was done before its task began)."""
    call = p.yields_bad_later(what)
    await p.release()
    await call
    assert seen == [("RuntimeError", BAD[what])]


async def test_a_timeout_expiring_between_wake_up_steps(p: Any) -> None:
    """``asyncio.timeout()`` of the first step, expired in a wake-up's step: ``TimeoutError``, all taken back."""
    call = p.timeout_parked()
    await p.release()
    await call
    assert seen == ["timed out", 0]


async def test_the_current_task_in_wake_up_steps(p: Any) -> None:
    """``asyncio.current_task()`` is the same object in the first step and in the steps after."""
    call = p.current()
    await p.release()
    await call
    assert seen == [True, True]


async def test_a_task_group_whose_child_fails_between_wake_up_steps(p: Any) -> None:
    """The group cancels the event (its parent) while it is parked: the failure comes out, no cancellation is left."""
    call = p.group_parked()
    await p.release()
    await call
    assert seen == ["group failed", 0]


class Q(P):
    async def bad_then_cancel(self) -> None:
        self.me = asyncio.current_task()
        await self.future
        asyncio.get_running_loop().call_soon(self.me.cancel, "late")  # before the task resumes
        try:
            await bad_yield(42)
            seen.append("resumed")
        except BaseException as e:
            seen.append((type(e).__name__, e.args))


async def test_a_cancellation_before_a_bad_yields_error_is_thrown_in(stepping: str) -> None:
    """Cancelled after a wake-up's step yielded a value, before the task took over: the event sees
    the ``CancelledError`` instead of the ``RuntimeError`` (as ``Task.__step`` does); it was lost."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Q).get_by_name("q")
        await stub.ready()
        call = stub.bad_then_cancel()
        await stub.release()
        await call
    assert seen == [("CancelledError", ("late",))]


class R(P):
    async def other_loop(self) -> None:
        other = asyncio.new_event_loop()
        try:
            await other.create_future()
        except RuntimeError as e:
            seen.append(str(e).endswith("attached to a different loop"))
        finally:
            other.close()


async def test_a_future_of_another_loop(stepping: str) -> None:
    """Awaited in the first step: asyncio's ``RuntimeError`` (its text), as an eager task throws it in."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(R).get_by_name("r")
        await stub.ready()
        await stub.other_loop()
    assert seen == [True]


SHARED: list[asyncio.Future[None]] = []


class S(P):
    async def waits_shared(self) -> None:
        try:
            await SHARED[0]
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise


async def test_a_reset_before_the_task_begins_cancels_what_the_event_waits_on(stepping: str) -> None:
    """The object reset between the event's first suspension and its task's first step: the future
    it waits on is cancelled (as ``Task.cancel()`` cancels it), and nothing of the event stays on it."""
    SHARED[:] = [asyncio.get_running_loop().create_future()]
    async with durable.Runtime() as rt:
        stub = rt.namespace(S).get_by_name("s")
        await stub.ready()
        call = stub.waits_shared()
        with pytest.raises(durable.ObjectAbortedError):
            await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.abort("stop"))
        with pytest.raises(durable.ObjectAbortedError):
            await call
        for _ in range(3):
            await asyncio.sleep(0)
    assert seen == ["cancelled"]
    assert SHARED[0].cancelled()


class T(P):
    async def bad_first_then_reset(self) -> None:
        try:
            await bad_yield(42)
        except BaseException as e:
            seen.append(type(e).__name__)
        await asyncio.sleep(0)  # a bare yield next: resumed, with no stale error thrown in
        seen.append("went on")


async def test_a_reset_before_a_bad_yields_error_is_thrown_in(stepping: str) -> None:
    """The object reset before the task threw in the error of a bad first yield: the event sees
    ``CancelledError`` (as ``Task.__step`` throws it instead), and its next bare yield resumes it."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(T).get_by_name("t")
        await stub.ready()
        call = stub.bad_first_then_reset()
        with pytest.raises(durable.ObjectAbortedError):
            await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.abort("stop"))
        with pytest.raises(durable.ObjectAbortedError):
            await call
        for _ in range(4):
            await asyncio.sleep(0)
    assert seen == ["CancelledError", "went on"]


class U(P):
    async def cancelled_then_bad(self) -> None:
        self.me = asyncio.current_task()
        try:
            await self.future
        except asyncio.CancelledError:
            seen.append("cancelled")
        try:
            await bad_yield(42)
        except BaseException as e:
            seen.append(type(e).__name__)


async def test_a_cancellation_thrown_in_by_a_wake_up_is_not_thrown_again(stepping: str) -> None:
    """Cancelled before the wake-up, which throws it in; the event catches it and yields a value:
    it gets the ``RuntimeError``, not the same cancellation a second time."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(U).get_by_name("u")
        await stub.ready()
        call = stub.cancelled_then_bad()
        asyncio.get_running_loop().call_soon(lambda: INSTANCES[-1].me.cancel())  # after the task began
        await stub.release()
        await call
    assert seen == ["cancelled", "RuntimeError"]
