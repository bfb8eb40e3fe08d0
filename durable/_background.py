"""An object's background work: ``block_concurrency_while`` callbacks and ``wait_until`` work.

Rules, and the Cloudflare behaviour each mirrors:

- ``ctx.block_concurrency_while(callback)`` closes the object's input gate for as long as the
  callback runs (no other event gets in, across any awaits); calls the callback makes that come
  back to the object still get in (see ``durable._gates``). If the callback raises, or runs longer
  than :data:`BCW_TIMEOUT` seconds, the object is reset (workerd: "A call to
  blockConcurrencyWhile() in a Durable Object waited for too long"), the timeout error marked
  ``overloaded``.
- ``ctx.wait_until(work)`` keeps the object alive (not evicted, not hibernated) until ``work``
  ends; its error, if any, is logged and goes nowhere else, as on Cloudflare.
- A reset cancels all of it (:meth:`BackgroundWork.cancel_all`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import _context
from ._eager import create_task_later, task_started
from ._exceptions import ObjectResetError
from ._gates import GateLock, InputGate, held_locks
from ._output_gate import reset_copy

if TYPE_CHECKING:
    from ._alarm_state import AlarmState
    from ._clock import Clock
    from ._output_gate import OutputGate

__all__ = ["BCW_MAX_DEPTH", "BCW_TIMEOUT", "BackgroundHost", "BackgroundWork", "enter_own_work", "own_work"]

log = logging.getLogger("durable")

T = TypeVar("T")

BCW_TIMEOUT = 30.0
"""Seconds a ``block_concurrency_while`` callback may run before the object is reset."""

BCW_MAX_DEPTH = 64
"""How deep ``block_concurrency_while`` callbacks (and transactions) may nest (workerd's limit)."""

_CALLBACK_CANCELLED = (
    "A blockConcurrencyWhile() callback raised asyncio.CancelledError (a future it awaited was cancelled). "
    "durable reports it as this error, so that the caller does not take it for its own cancellation; the "
    "object was reset."
)


_own_work: ContextVar[tuple[asyncio.Future[Any], ...]] = ContextVar("durable_own_work", default=())
"""The background tasks the running code is part of: the task itself, and the tasks it starts
(``asyncio.wait_for`` on Python 3.11, ``shield``, ``gather``), which copy its context."""


def own_work() -> tuple[asyncio.Future[Any], ...]:
    """The ``wait_until()`` work and ``block_concurrency_while()`` callbacks the running code is
    part of (``Runtime.aclose()`` does not wait for them: they wait for it)."""
    return _own_work.get()


def _enter_own_work() -> None:
    task = asyncio.current_task()
    if task is not None:
        enter_own_work(task)


def enter_own_work(work: asyncio.Future[Any]) -> None:
    """Mark the running code, and what it starts, as part of ``work`` (``BackgroundWork.hold``'s
    events mark their outcome so: an ``aclose()`` they await does not wait for them)."""
    _own_work.set((*(t for t in _own_work.get() if not t.done()), work))


async def _as_own_work(work: Awaitable[T]) -> T:
    """``work``, marked as background work in its task's context (``own_work``)."""
    _enter_own_work()
    return await work


class BackgroundHost(Protocol):
    """What background work needs of its object (implemented by ``ObjectHost``)."""

    id: Any
    gen: int
    """The object's generation: work of an ended generation resets nothing."""
    running: _context.Running
    """What the current generation's code runs with in ``_context.running``."""
    gate: InputGate
    output: OutputGate

    @property
    def alarms(self) -> AlarmState:
        """The object's alarm bookkeeping (whether its alarm handler runs)."""
        ...

    def reset(self, error: BaseException) -> None:
        """End the generation (its calls fail with a copy of ``error``)."""
        ...

    def maybe_idle(self) -> None:
        """Tell the runtime the object is idle, if it is."""
        ...


def _close_unstarted(work: Coroutine[Any, Any, Any]) -> None:
    """Close ``wait_until()`` work that a reset cancelled before its first step (a reset, or
    ``ctx.abort()``, right after the call): Python warned "coroutine ... was never awaited" for
    it, which fails a test run with warnings as errors (pytest's unraisable-exception warning)."""
    if inspect.getcoroutinestate(work) == inspect.CORO_CREATED:
        work.close()


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # Mark a future's exception as seen, so asyncio does not log "exception never retrieved".
    if not fut.cancelled():
        fut.exception()


class BackgroundWork:
    """The ``block_concurrency_while`` callbacks and ``wait_until`` work of one object."""

    __slots__ = ("_clock", "_host", "_timeouts", "tasks", "unawaited")

    def __init__(self, host: BackgroundHost, clock: Clock) -> None:
        self._host = host
        self._clock = clock
        self.tasks: set[asyncio.Future[Any]] = set()
        """What runs now: callbacks' tasks and ``wait_until`` work (the object is busy meanwhile)."""
        self.unawaited: set[asyncio.Future[Any]] = set()
        """Events running that no caller awaits (``hold``): a closing runtime waits for them too."""
        self._timeouts: dict[asyncio.Task[Any], BaseException] = {}

    def block_concurrency_while(self, callback: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``callback`` in a task of its own with the input gate closed; returns the task.

        Raises ``TypeError`` if ``callback`` is not callable, ``RuntimeError`` when called inside
        :data:`BCW_MAX_DEPTH` nested callbacks (workerd: "blockConcurrencyWhile() calls are nested
        too deeply.", measured with miniflare 4, 2026-04-07).
        """
        given: object = callback
        if not callable(given):
            if inspect.iscoroutine(given):
                given.close()  # refused: no "never awaited" warning on top of the error
                raise TypeError(
                    "block_concurrency_while() takes a callable, not coroutine: pass the async "
                    "function itself, block_concurrency_while(fn), not fn()"
                )
            raise TypeError(f"block_concurrency_while() takes a callable, not {type(given).__name__}")
        host = self._host
        gate = host.gate
        if gate.depth() >= BCW_MAX_DEPTH:
            raise RuntimeError("blockConcurrencyWhile() calls are nested too deeply.")
        loop = asyncio.get_running_loop()
        # The writes of this turn, made before or after this call, commit before the callback
        # starts (its task runs after this commit), as in workerd: a callback that raises resets
        # the object and drops only its own writes (measured with miniflare 4, 2026-04-07, from a
        # fetch and an alarm alike). The commit was left to the end of the event's step, after
        # the callback's first step, unless a caller awaiting the event's result made it first.
        host.output.schedule_commit()
        if not gate.locks or gate.inside():
            lock, held = gate.close_for("blockConcurrencyWhile()")
            task = create_task_later(loop, self._run(callback, gate, lock, held, host.gen))
        else:
            # Another callback or transaction, not this code's, holds the gate: wait for it to end,
            # ahead of the waiting events, as workerd's critical section waits for the input lock
            # (measured with miniflare 4, 2026-04-07: two blockConcurrencyWhile() started together
            # by one event run one after the other).
            ticket = gate.ticket()
            task = create_task_later(loop, self._queued(callback, gate, ticket, host.gen))
            task.add_done_callback(lambda _: gate.abandon(ticket))
        self.tasks.add(task)
        task.add_done_callback(self._done)
        task.add_done_callback(_retrieve)
        return task

    async def _queued(
        self, callback: Callable[[], Awaitable[T]], gate: InputGate, ticket: tuple[int, asyncio.Future[None]], gen: int
    ) -> T:
        await task_started()
        await gate.wait(ticket)
        lock, held = gate.close_for("blockConcurrencyWhile()")
        return await self._run(callback, gate, lock, held, gen)

    async def _run(
        self, callback: Callable[[], Awaitable[T]], gate: InputGate, lock: GateLock, held: frozenset[GateLock], gen: int
    ) -> T:
        host = self._host
        held_locks.set(held)
        _enter_own_work()
        _context.running.set(host.running if gen == host.gen else _context.Running(host, gen))
        task = asyncio.current_task()
        assert task is not None
        clock = self._clock
        timer = clock.call_at_deadline(clock.time() + BCW_TIMEOUT, lambda: self._timeout(task, gen))
        try:
            await task_started()  # (on an eager loop: after the commit scheduled by the call)
            if host.alarms.unconfirmed:  # (rarely: a deletion in that commit is confirmed first)
                host.alarms.section_started()
            pending: Any = callback()  # a plain (non-async) callable is tolerated too
            if inspect.isawaitable(pending):
                pending = await pending
            return pending  # type: ignore[no-any-return]
        except asyncio.CancelledError as exc:
            timeout_error = self._timeouts.pop(task, None)
            if timeout_error is not None:
                raise reset_copy(timeout_error) from None
            if task.cancelling() or gen != host.gen:
                raise  # this task was cancelled (a reset, the runtime closing)
            # The callback's own code raised it (a future it awaited was cancelled): a callback that
            # raised, which resets the object; its callers must not take it for their own cancellation.
            cancelled = ObjectResetError(_CALLBACK_CANCELLED)
            log.warning("durable: blockConcurrencyWhile() callback raised; the object is reset", exc_info=exc)
            host.reset(cancelled)
            _stop_awaiting_event(task)
            raise reset_copy(cancelled) from None
        except BaseException as exc:
            if gen == host.gen:
                error = reset_copy(exc, keep_cause=False)
                log.warning("durable: blockConcurrencyWhile() callback raised; the object is reset", exc_info=exc)
                host.reset(error)
                _stop_awaiting_event(task)
            raise
        finally:
            timer.cancel()
            gate.unlock(lock)

    def _timeout(self, task: asyncio.Task[Any], gen: int) -> None:
        host = self._host
        if task.done() or gen != host.gen:
            return
        error = ObjectResetError(
            "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
            "The call was canceled and the Durable Object was reset."
        )
        error.overloaded = True
        self._timeouts[task] = error
        host.reset(error)
        task.cancel()

    def wait_until(self, work: Awaitable[Any]) -> None:
        """Keep the object busy until ``work`` ends (its code only). Raises ``TypeError`` if it is not awaitable.

        Raises ``RuntimeError`` if called from outside the object's own code (``ctx.wait_until``'s rule).
        """
        try:
            _context.check_owner(self._host)
        except RuntimeError:
            if inspect.iscoroutine(work):
                work.close()  # refused: no "never awaited" warning on top of the error
            raise
        if not inspect.isawaitable(work):
            raise TypeError(f"wait_until() takes an awaitable, not {type(work).__name__}")
        # (a coroutine is marked as this work, for Runtime.aclose(): see own_work)
        if inspect.iscoroutine(work):
            fut: asyncio.Future[Any] = asyncio.ensure_future(_as_own_work(work))
            fut.add_done_callback(lambda _: _close_unstarted(work))
        else:
            fut = asyncio.ensure_future(work)
        self.tasks.add(fut)
        fut.add_done_callback(self._done)
        fut.add_done_callback(self._log_error)
        if self._host.alarms.running:
            # Started by an alarm, hence by a timer: a mock clock's advance() waits for it too.
            self._clock.track(fut)

    def hold(self, fut: asyncio.Future[Any]) -> None:
        """``fut`` is the outcome of an event nobody awaits (a ``js`` timer's callback):
        ``Runtime.aclose()`` waits for it as for ``wait_until`` work."""
        self.unawaited.add(fut)
        fut.add_done_callback(self.unawaited.discard)

    def unfinished(self) -> list[asyncio.Future[Any]]:
        """The work a closing runtime waits for: ``tasks`` and ``unawaited`` not yet done."""
        return [task for tasks in (self.tasks, self.unawaited) for task in tasks if not task.done()]

    def _done(self, fut: asyncio.Future[Any]) -> None:
        self.tasks.discard(fut)
        self._host.maybe_idle()

    def _log_error(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            log.error("durable: work passed to wait_until() in %r raised", self._host.id, exc_info=exc)

    def cancel_all(self) -> None:
        """The object was reset: cancel its work (not the running task, nor a callback that timed out)."""
        current = asyncio.current_task()
        tasks, self.tasks = self.tasks, set()
        for task in tasks:
            if task is not current and task not in self._timeouts:
                task.cancel()


def _stop_awaiting_event(task: asyncio.Task[Any]) -> None:
    """The callback running in ``task`` (the current one) raised and reset the object: end
    ``task`` cancelled if the reset cancelled an event awaiting it, so that the event stops there.

    The reset cancels the object's running events; asyncio hands the cancellation of an event
    that waits for ``task`` to ``task`` itself, and a task that ends with an error drops it: the
    event would take the callback's error and go on. workerd runs no more of it (measured with
    miniflare 4.20260426: a fetch handler's ``catch`` around the ``blockConcurrencyWhile()`` runs
    neither its ``catch`` nor its next lines; its caller gets the callback's error, here a copy
    the reset already gave it).
    """
    if task.cancelling():
        raise asyncio.CancelledError
