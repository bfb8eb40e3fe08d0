"""Eager start of an object's events: an event runs inside the call that delivers it.

An event (an RPC call, a fetch, an alarm) starts at once, in the caller's stack, and moves to a
task of its own only at its first suspension. An event that never suspends (most storage-only
handlers) costs no loop turn, and its writes commit with the caller's turn; one that suspends keeps
running even if its caller stops waiting (Cloudflare does not cancel a Durable Object's work when a
client goes away).

On Python 3.12 and later this is asyncio's own eager task (``asyncio.Task(..., eager_start=True)``).
Python 3.11 has none, so :func:`_drive` reproduces it there by hand (with ``_host``'s
``_first_step``, the places in the package that step a coroutine themselves).
``tests/test_eager.py`` proves that both behave alike, but for one thing: by hand, the first step
runs in the caller's task, so what captures the current task there (``asyncio.timeout()``) gets
the caller's. Stepping by hand on 3.12+ too measured 5-7% less CPU per fetch on 3.13, because no
``Task`` is made for an event that never suspends, and was undone for that reason
(docs/performance.md).

Layer 0: knows nothing of objects beyond the :class:`Stepping` protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any, Protocol

from ._exceptions import OverloadedError
from ._output_gate import reset_copy

__all__ = [
    "EAGER_TASKS",
    "EventCall",
    "EventCalls",
    "StepCounter",
    "Steppable",
    "Stepping",
    "continue_in_task",
    "start_eagerly",
]

EAGER_TASKS = sys.version_info >= (3, 12)
"""Whether asyncio has eager tasks (Python 3.12+); if not, :func:`_drive` steps events by hand."""


class StepCounter(Protocol):
    """Counts the synchronous steps of an object's events (implemented by ``_output_gate.OutputGate``)."""

    steps: int
    """Synchronous steps of its events running right now: writes made meanwhile commit at the step's end."""

    def step_done(self) -> None:
        """An event's synchronous step ended: ``steps`` goes down by one (the commit may be scheduled)."""
        ...


class Stepping(Protocol):
    """What eager start needs of the object an event runs in (implemented by ``ObjectHost``)."""

    gen: int
    """Its generation: an event whose generation ended before its task began is cancelled at once."""

    @property
    def output(self) -> StepCounter:
        """Its step counter (the output gate, which commits when the last step of a turn ends)."""
        ...


class Steppable(Protocol):
    """What ``_drive`` steps: a coroutine, or an object that steps like one (``_host._EventRest``)."""

    def send(self, value: None, /) -> Any:
        """Resume; return what it waits on next, or raise ``StopIteration`` at its end."""
        ...

    def throw(self, exc: BaseException, /) -> Any:
        """Resume by raising ``exc`` where it waits; as ``send`` otherwise."""
        ...


class EventCall:
    """One event in flight: the future its caller waits on and the task that runs it once suspended."""

    __slots__ = ("fut", "task")

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self.fut = fut
        self.task: asyncio.Task[Any] | None = None
        """Set when the event suspended and a task took it over (None while it runs eagerly)."""


class EventCalls:
    """The events in flight in one object: how many were admitted, and the ones running now.

    An event is admitted when it is delivered (it may then wait at the input gate), runs once it
    is past the gate (its :class:`EventCall` is in ``running``), and ends once, either way.
    """

    __slots__ = ("admitted", "running")

    def __init__(self) -> None:
        self.admitted = 0
        """Events delivered and not ended (waiting at the input gate or running)."""
        self.running: set[EventCall] = set()
        """The events past the input gate of the current generation."""

    def admit(self, limit: int | None) -> None:
        """Count an event in; ``OverloadedError`` (workerd's text) if ``limit`` events are in already."""
        if limit is not None and self.admitted >= limit:
            raise OverloadedError("Durable Object is overloaded. Too many requests queued.")
        self.admitted += 1

    def ended(self, call: EventCall) -> None:
        """``call``'s event ended (delivered its outcome, failed, or was cancelled by a reset)."""
        self.running.discard(call)
        self.admitted -= 1

    def tasks(self) -> set[asyncio.Future[Any]]:
        """The tasks that continue running events (those that suspended)."""
        return {call.task for call in self.running if call.task is not None}

    def fail_running(self, error: BaseException) -> None:
        """The generation ended with ``error``: each running event's caller gets a copy; its task is cancelled.

        The task running now (the one that resets the object) is not cancelled: it goes on to its end.
        """
        current = asyncio.current_task()
        calls, self.running = self.running, set()
        for call in calls:
            if not call.fut.done():
                call.fut.set_exception(reset_copy(error))
            if call.task is not None and call.task is not current:
                call.task.cancel()


def start_eagerly(
    host: Stepping,
    call: EventCall,
    coro: Coroutine[Any, Any, None],
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
) -> None:
    """Run ``coro`` (an event, which never raises) in ``context`` until it first suspends, then in a task.

    Its first step counts as one of ``host``'s steps; ``call.task`` is set to the task that
    continues it, if it suspends.
    """
    counter = host.output
    counter.steps += 1
    if EAGER_TASKS:
        try:
            task = asyncio.Task(coro, loop=loop, context=context, eager_start=True)  # type: ignore[call-arg,unused-ignore]
        finally:
            counter.step_done()
        if not task.done():
            call.task = task
        return
    try:
        yielded = context.run(coro.send, None)
    except StopIteration:
        return
    finally:
        counter.step_done()
    loop.create_task(_drive(host, call, coro, yielded, host.gen), context=context)


def continue_in_task(host: Stepping, call: EventCall, coro: Steppable, yielded: Any) -> None:
    """Continue, in a task, an event whose first step ran and suspended on ``yielded``.

    For a caller that stepped the event's first step itself, in the event's context (the
    current one, which the task copies): the shorter path of ``ObjectHost.call_rpc`` and
    ``call_fetch`` on 3.11. ``coro`` (which never raises)
    is resumed once ``yielded`` is done, as a task would resume it, and stepped to its end.
    """
    call.fut.get_loop().create_task(_drive(host, call, coro, yielded, host.gen))


async def _drive(host: Stepping, call: EventCall, coro: Steppable, yielded: Any, gen: int) -> None:
    """Python 3.11 only: continue an eagerly started event that suspended, stepping it as a task would.

    This reproduces what ``asyncio.Task.__step`` does with the coroutine it runs (and what
    ``eager_start=True`` does for its first step on 3.12+): the coroutine yielded ``yielded`` (a
    future it waits for, or None to let the loop turn); wait for that, then resume it, and it reads
    the future's outcome itself. If this task is cancelled (the object was reset), the cancellation
    reaches the coroutine the way a task's would; so it does if the object was reset (generation
    ``gen`` ended) before this task began. Every step counts as one of ``host``'s steps, as the
    first did. ``tests/test_eager.py`` proves it (it runs on every Python in CI).
    """
    call.task = asyncio.current_task()
    cancel = gen != host.gen
    while True:
        if not cancel:
            try:
                if yielded is None:
                    await asyncio.sleep(0)
                else:
                    # What Task.__step does with a yielded future: mark it as taken over, so that
                    # awaiting it here (and the coroutine's own await resuming) is legitimate.
                    yielded._asyncio_future_blocking = False
                    await yielded
            except asyncio.CancelledError:
                # This task itself was cancelled, unless the future was (the coroutine sees that).
                cancel = yielded is None or not yielded.cancelled()
            except BaseException:
                pass  # the future failed: the coroutine raises it when resumed
        counter = host.output
        counter.steps += 1
        try:
            if cancel:
                cancel = False
                yielded = coro.throw(asyncio.CancelledError())
            else:
                yielded = coro.send(None)
        except StopIteration:
            return
        finally:
            counter.step_done()
