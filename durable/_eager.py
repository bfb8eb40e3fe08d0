"""Eager start of an object's events: an event runs inside the call that delivers it.

An event (an RPC call, a fetch, an alarm) starts at once, in the caller's stack, and moves to a
task of its own only at its first suspension. An event that never suspends (most storage-only
handlers) costs no loop turn, and its writes commit with the caller's turn; one that suspends keeps
running even if its caller stops waiting (Cloudflare does not cancel a Durable Object's work when a
client goes away).

On Python 3.12 and later this is asyncio's own eager task (``asyncio.Task(..., eager_start=True)``).
Python 3.11 has none, so :func:`_drive` reproduces it there by hand (with ``_host``'s
``_first_step``, the places in the package that step a coroutine themselves), and
:class:`_Resume` makes the steps that an eager task would make before ``_drive``'s task can.
``tests/test_eager.py`` and ``tests/test_eager_order.py`` prove that both behave alike. By hand, the event's code sees its
:class:`EventCall` as the current task in every step, the first included (asyncio's current-task
entry is set around each step), so what captures the current task there (``asyncio.timeout()``,
a ``TaskGroup``) binds to the event, as it does to the eager task on 3.12+. Stepping by hand on
3.12+ too measured 5-7% less CPU per fetch on 3.13, because no ``Task`` is made for an event that
never suspends; it stays off there so that the current task is a real ``asyncio.Task``
(docs/performance.md).

The other way round, :func:`create_task_later` makes a task that starts on a later loop iteration
even on a loop whose task factory starts every task eagerly (an application's
``asyncio.eager_task_factory``): the package's tasks whose start is ordered after the caller's
next lines (``block_concurrency_while`` callbacks, ``transaction()`` closures, alarm deliveries).

Layer 0: knows nothing of objects beyond the :class:`Stepping` protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ._exceptions import OverloadedError
from ._output_gate import reset_copy

__all__ = [
    "CURRENT_TASKS",
    "EAGER_TASKS",
    "EventCall",
    "EventCalls",
    "StepCounter",
    "Steppable",
    "Stepping",
    "continue_in_task",
    "create_task_later",
    "start_eagerly",
    "swap_current_task",
    "task_started",
]

_creating = threading.local()  # .on: create_task_later() is making a task on this thread


def create_task_later(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """``loop.create_task(coro)`` for a coroutine that awaits :func:`task_started` first.

    On a loop whose task factory starts tasks eagerly (the application's
    ``asyncio.eager_task_factory``, Python 3.12+), the task would run inside this call; it then
    waits one loop iteration in :func:`task_started`, so that its first step runs after the code
    that follows the call and after callbacks scheduled before it (the commit of the turn), as on
    any other loop. The package's own tasks whose order matters are made this way.
    """
    _creating.on = True
    try:
        return loop.create_task(coro)
    finally:
        _creating.on = False


async def task_started() -> None:
    """Awaited first by a coroutine given to :func:`create_task_later`: yields if it started eagerly."""
    if getattr(_creating, "on", False):
        _creating.on = False  # (what the task creates in turn starts as its loop says)
        await asyncio.sleep(0)


EAGER_TASKS = sys.version_info >= (3, 12)
"""Whether asyncio has eager tasks (Python 3.12+); if not, :func:`_drive` steps events by hand."""

# What asyncio.current_task() returns, set while a hand-stepped event runs (EventCall's docstring).
if sys.version_info >= (3, 12):  # (only tests step events by hand there: EAGER_TASKS forced off)
    CURRENT_TASKS: dict[Any, Any] | None = None
    swap_current_task: Callable[[Any, Any], Any] = asyncio.tasks._swap_current_task  # type: ignore[attr-defined]
else:
    CURRENT_TASKS = asyncio.tasks._current_tasks  # type: ignore[attr-defined]
    """Python 3.11: the dict (loop -> task) that C's ``current_task()`` reads. The shorter path
    (``_host._start_fast``) sets it inline: through :func:`swap_current_task` it cost about 900
    instructions more per call (callgrind, ``bench_rpc.py --only seq-noop``)."""

    def swap_current_task(loop: Any, task: Any) -> Any:
        """Make ``task`` (None: none) the current task on ``loop``; return the one it was (3.12's
        ``asyncio.tasks._swap_current_task``, which eager tasks use)."""
        prev = CURRENT_TASKS.get(loop)
        if task is None:
            CURRENT_TASKS.pop(loop, None)
        else:
            CURRENT_TASKS[loop] = task
        return prev


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
    """One event in flight: the future its caller waits on and the task that runs it once suspended.

    Where events are stepped by hand (Python 3.11, :func:`_drive`), it is also what
    ``asyncio.current_task()`` returns while the event's code runs, from its first step to its
    last, so that what captures the current task there (``asyncio.timeout()``, a
    ``TaskGroup``) binds to the event, not to its caller: ``cancel()``, ``uncancel()``,
    ``cancelling()`` and ``done()`` act on the task that continues the event, as they would on an
    eager task's own (a cancellation requested before that task exists waits for it). The rest of
    the ``Task`` methods are passed to that task once it exists (before, they raise
    ``RuntimeError`` and say why, but for ``get_coro()``, the event's coroutine). It is not an
    ``asyncio.Task``: ``asyncio.all_tasks()`` does not list it. Libraries that read a task's
    private ``_must_cancel`` and ``_fut_waiter`` and keep tasks in a ``WeakKeyDictionary`` (anyio,
    so httpx) work with it too.
    """

    __slots__ = ("__weakref__", "cancel_msg", "cancels", "coro", "fut", "name", "task")

    cancels: int
    """Cancellations requested (as the current task) before a task took the event over; unset: none."""
    cancel_msg: Any
    coro: Any
    """The event's coroutine, for ``get_coro()`` before a task took it over (set when stepped by hand)."""
    name: str
    """The event's name, made when first asked for (``get_name()``)."""

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        # (_host._start_fast makes an EventCall without this: keep them alike)
        self.fut = fut
        self.task: asyncio.Task[Any] | None = None
        """Set when the event suspended and a task took it over (None while it runs eagerly)."""
        # (``cancels`` and ``cancel_msg`` are set only if asked for: two stores fewer per event)

    # -- the current task while a hand-stepped event runs (Python 3.11; see the class docstring) --

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the event's task (or, before it exists, once it exists), as ``Task.cancel()``."""
        if self.task is not None:
            return self.task.cancel(msg)
        self.cancels = getattr(self, "cancels", 0) + 1
        self.cancel_msg = msg
        return True

    def uncancel(self) -> int:
        """Take back one cancellation request (as ``Task.uncancel()``); the number left."""
        if self.task is not None:
            return self.task.uncancel()
        cancels = getattr(self, "cancels", 0)
        if cancels > 0:
            self.cancels = cancels = cancels - 1
        return cancels

    def cancelling(self) -> int:
        """The cancellation requests not taken back (as ``Task.cancelling()``)."""
        return self.task.cancelling() if self.task is not None else getattr(self, "cancels", 0)

    def done(self) -> bool:
        """Whether the event's task is done (before it exists: whether the event has an outcome)."""
        return self.task.done() if self.task is not None else self.fut.done()

    def cancelled(self) -> bool:
        """Whether the event's task was cancelled (False before it exists)."""
        return self.task is not None and self.task.cancelled()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the event runs on."""
        return self.fut.get_loop()

    def get_name(self) -> str:
        """The event's name: the same in every step (``set_name()`` changes it)."""
        try:
            return self.name
        except AttributeError:  # (set when first asked for: no store per event)
            self.name = f"durable event {id(self):#x}"
            return self.name

    def set_name(self, value: object) -> None:
        """Name the event (and the task that continues it, once there is one)."""
        self.name = str(value)
        if self.task is not None:
            self.task.set_name(self.name)

    def _task_now(self, method: str) -> asyncio.Task[Any]:
        if self.task is None:
            raise RuntimeError(
                f"asyncio.current_task().{method}() is not available before the event's first suspension "
                "on Python 3.11, which has no eager tasks (durable runs the first step of an event by "
                "hand there); call it after an await, or use Python 3.12+"
            )
        return self.task

    def get_coro(self) -> Any:
        """The coroutine of the task that continues the event (before it exists, the event's)."""
        return self.task.get_coro() if self.task is not None else getattr(self, "coro", None)

    @property
    def _must_cancel(self) -> bool:
        """``Task._must_cancel``, which anyio reads: a cancellation waits to be thrown in."""
        task: Any = self.task
        return bool(task._must_cancel) if task is not None else getattr(self, "cancels", 0) > 0

    @property
    def _fut_waiter(self) -> Any:
        """``Task._fut_waiter``, which anyio reads: the future the event waits on (None while it runs)."""
        task: Any = self.task
        return task._fut_waiter if task is not None else None

    def get_context(self) -> contextvars.Context:
        """The context the event runs in."""
        return self._task_now("get_context").get_context()  # type: ignore[attr-defined,no-any-return,unused-ignore]

    def add_done_callback(self, fn: Any, *, context: contextvars.Context | None = None) -> None:
        """As ``Task.add_done_callback``, on the task that continues the event."""
        self._task_now("add_done_callback").add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Any) -> int:
        """As ``Task.remove_done_callback``, on the task that continues the event."""
        return self._task_now("remove_done_callback").remove_done_callback(fn)

    def result(self) -> Any:
        """As ``Task.result``, on the task that continues the event."""
        return self._task_now("result").result()

    def exception(self) -> BaseException | None:
        """As ``Task.exception``, on the task that continues the event."""
        return self._task_now("exception").exception()

    def get_stack(self, *, limit: int | None = None) -> list[Any]:
        """As ``Task.get_stack``, on the task that continues the event."""
        return self._task_now("get_stack").get_stack(limit=limit)

    def print_stack(self, *, limit: int | None = None, file: Any = None) -> None:
        """As ``Task.print_stack``, on the task that continues the event."""
        self._task_now("print_stack").print_stack(limit=limit, file=file)

    def __repr__(self) -> str:
        state = "in its first step" if self.task is None else f"in {self.task!r}"
        return f"<durable event {state}>"


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
        current: object = asyncio.current_task()  # (a hand-stepped event's EventCall, see its docstring)
        calls, self.running = self.running, set()
        for call in calls:
            if not call.fut.done():
                call.fut.set_exception(reset_copy(error))
            if call.task is not None and call.task is not current and call is not current:
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
    call.coro = coro
    caller = swap_current_task(loop, call)  # the event's code sees itself as the current task
    try:
        yielded = context.run(coro.send, None)
    except StopIteration:
        return
    finally:
        swap_current_task(loop, caller)
        counter.step_done()
    _hand_over(host, call, coro, yielded, loop, context)


def continue_in_task(host: Stepping, call: EventCall, coro: Steppable, yielded: Any) -> None:
    """Continue, in a task, an event whose first step ran and suspended on ``yielded``.

    For a caller that stepped the event's first step itself, in the event's context (the
    current one, which the task copies): the shorter path of ``ObjectHost.call_rpc`` and
    ``call_fetch`` on 3.11. ``coro`` (which never raises)
    is resumed once ``yielded`` is done, as a task would resume it, and stepped to its end.
    """
    _hand_over(host, call, coro, yielded, call.fut.get_loop(), contextvars.copy_context())


def _hand_over(
    host: Stepping,
    call: EventCall,
    coro: Steppable,
    yielded: Any,
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
) -> None:
    """Python 3.11: the first step of ``coro`` suspended on ``yielded``; a task (``_drive``) continues it.

    An eager task resumes where ``yielded`` is done: its wake-up is queued on the future right at
    the end of its first step. The continuing task's first step comes later (on the next loop
    turn), so it is queued here too (``_Resume.wake``): if the future is done by the time the task
    begins, the wake-up steps the event where the eager task's would, not a loop turn later.
    """
    resume = _Resume(host, call, coro, loop, context)
    if yielded is not None and (bad := _bad_yield(yielded, loop, call)) is not None:
        resume.bad = bad  # thrown in by the task's first step, as Task.__step's call_soon would
    elif yielded is not None:  # an asyncio future of this loop (pending)
        yielded._asyncio_future_blocking = False  # (taken over, as Task.__step marks it)
        yielded.add_done_callback(resume.wake, context=context)
        resume.waits = yielded
    # The task runs in a context of its own (each step of the event runs in ``context``): it ends a
    # loop turn after an event whose last step a wake-up made, and must not count meanwhile as a
    # task the object created (which keeps it from hibernating, ``Hibernation.blockers``).
    loop.create_task(_drive(resume, yielded, host.gen), context=contextvars.Context())


def _bad_yield(yielded: Any, loop: asyncio.AbstractEventLoop, call: EventCall) -> RuntimeError | None:
    """What ``Task.__step`` throws into a coroutine that yielded ``yielded`` (not None) on ``loop``:
    None for a pending future of that loop it awaits, else the error (its texts, Python 3.11-3.13)
    that an eager task throws in on the next loop turn: a future of another loop, a future yielded
    without ``await``, a generator, anything else."""
    blocking = getattr(yielded, "_asyncio_future_blocking", None)
    if blocking is not None:
        get_loop = getattr(yielded, "get_loop", None)  # (every asyncio future has it, uvloop's too)
        if get_loop is None or get_loop() is not loop:
            return RuntimeError(f"Task {call!r} got Future {yielded!r} attached to a different loop")
        if blocking:
            return None
        return RuntimeError(f"yield was used instead of yield from in task {call!r} with {yielded!r}")
    if inspect.isgenerator(yielded):
        return RuntimeError(f"yield was used instead of yield from for generator in task {call!r} with {yielded!r}")
    return RuntimeError(f"Task got bad yield: {yielded!r}")


def _cancelled_error(source: BaseException | asyncio.Future[Any]) -> asyncio.CancelledError:
    """A new ``CancelledError`` with the message of a cancellation (a cancelled future, or the
    ``CancelledError`` a task's cancellation raised): ``Task.cancel(msg)``'s ``msg`` reaches the event."""
    if isinstance(source, BaseException):
        return asyncio.CancelledError(*source.args)
    try:
        source.result()
    except asyncio.CancelledError as exc:
        return asyncio.CancelledError(*exc.args)
    return asyncio.CancelledError()


_BEGINNING, _PARKED, _TASK, _ENDED = range(4)
"""``_Resume.state``: its task has not begun; the wake-ups step the event while its task waits
(parked); its task steps the event; the event ended (while parked)."""


class _Resume:
    """Python 3.11: the steps of a hand-stepped event after its first, and who makes them.

    Its task (``_drive``) makes them once it waits on the future the event waits on before that
    future is done (an eager task's own ``await``); until then (the future was done before the task
    began, or the event yields to the loop) they are made by the wake-ups queued where the eager
    task's own would be (:meth:`wake`), while the task waits parked, ready to take over. The task
    is the event's all along (``EventCall.task``): a cancellation of it while parked reaches the
    event at its next step, as a task's own cancellation does.
    """

    __slots__ = (
        "bad",
        "call",
        "consumed",
        "context",
        "coro",
        "error",
        "host",
        "loop",
        "must_throw",
        "parked",
        "state",
        "waits",
    )

    def __init__(
        self,
        host: Stepping,
        call: EventCall,
        coro: Steppable,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context,
    ) -> None:
        self.host, self.call, self.coro, self.loop, self.context = host, call, coro, loop, context
        self.state = _BEGINNING
        self.waits: Any = None
        """The future a wake-up is queued on (None: none)."""
        self.parked: asyncio.Future[None] | None = None
        """What the parked task waits on: done after each step a wake-up makes, cancelled with the task."""
        self.consumed: asyncio.Future[None] | None = None
        """The parked future whose cancellation already reached the event (thrown in, or its future cancelled)."""
        self.must_throw: asyncio.CancelledError | None = None
        """A cancellation of the task, waiting for the next wake-up to be thrown in."""
        self.error: BaseException | None = None
        self.bad: RuntimeError | None = None
        """What the event yielded last is no future it can wait on: the error its task throws in."""

    def wake(self, _done: object = None) -> None:
        """Step the event where an eager task would (a future it waited on is done, or a loop turn passed)."""
        if self.state != _PARKED:
            return  # its task steps it (or has not begun: it never began, cancelled before)
        parked = self.parked
        assert parked is not None
        throw = self.must_throw
        if throw is None and parked.cancelled() and self.consumed is not parked:
            throw = _cancelled_error(parked)
        self.must_throw = None
        if parked.cancelled():
            self.consumed = parked
        host, loop = self.host, self.loop
        counter = host.output
        counter.steps += 1
        caller = swap_current_task(loop, self.call)
        try:
            yielded = self.coro.send(None) if throw is None else self.coro.throw(throw)
        except StopIteration:
            self.state = _ENDED
            yielded = None
        except BaseException as exc:  # (an event never raises: kept for its task to raise)
            self.state, self.error = _ENDED, exc
            yielded = None
        finally:
            swap_current_task(loop, caller)
            counter.step_done()
        if self.state == _ENDED:  # its task ends on its next step: it keeps nothing of the event
            self.coro = self.context = None  # type: ignore[assignment]
        self.waits = None
        if self.state == _PARKED:
            # asked for during the step:
            cancelled = _cancelled_error(parked) if parked.cancelled() and self.consumed is not parked else None
            if yielded is None:
                loop.call_soon(self.wake, context=self.context)  # a bare yield: the next loop turn
                self.must_throw = cancelled
            elif (bad := _bad_yield(yielded, loop, self.call)) is not None:
                self.state, self.bad = _TASK, bad  # its task throws it in (it is resumed right after)
            else:
                yielded._asyncio_future_blocking = False
                yielded.add_done_callback(self.wake, context=self.context)
                self.waits = yielded
                if cancelled is not None:  # (as Task.__step cancels the future it is given when asked to)
                    if yielded.cancel(*cancelled.args):
                        self.consumed = parked
                    else:
                        self.must_throw = cancelled
        if self.state == _TASK:
            self.waits = yielded
        if not parked.done():
            parked.set_result(None)

    async def park(self) -> bool:
        """Wait, parked, while wake-ups step the event; True once it ended, False once the task takes over."""
        self.state = _PARKED
        while True:
            parked = self.parked = self.loop.create_future()
            try:
                await parked
            except asyncio.CancelledError as exc:
                if parked.cancelled() and self.consumed is parked:
                    pass  # (it reached the event already)
                elif self.state == _PARKED:
                    # The task was cancelled after the last wake-up: cancel what the event waits
                    # on (as Task.cancel does), or throw it in at the next wake-up.
                    if self.waits is not None and not self.waits.done():
                        self.waits.cancel(*exc.args)
                    else:
                        self.must_throw = _cancelled_error(exc)
                elif self.state == _TASK:  # (a bad yield's error to throw in: the task throws this instead)
                    self.must_throw = _cancelled_error(exc)
            if self.state == _ENDED:
                if self.error is not None:
                    raise self.error
                return True
            if self.state == _TASK or (self.waits is not None and not self.waits.done() and self.must_throw is None):
                self.state = _TASK  # the task waits on it itself from now on (its wake-up does nothing)
                return False


async def _drive(resume: _Resume, yielded: Any, gen: int) -> None:
    """Python 3.11 only: continue an eagerly started event that suspended, stepping it as a task would.

    This reproduces what ``asyncio.Task.__step`` does with the coroutine it runs (and what
    ``eager_start=True`` does for its first step on 3.12+): the coroutine yielded ``yielded`` (a
    future it waits for, or None to let the loop turn); wait for that, then resume it, and it reads
    the future's outcome itself. If this task is cancelled (the object was reset), the cancellation
    reaches the coroutine the way a task's would; so it does if the object was reset (generation
    ``gen`` ended) before this task began. Every step counts as one of ``host``'s steps, as the
    first did. Where the eager task would resume the event before this task can wait on its
    future (done before this task began), :class:`_Resume` wake-ups step it meanwhile. What the
    coroutine yields that is no future of this loop gets ``Task.__step``'s ``RuntimeError`` thrown
    in (:func:`_bad_yield`), and a cancellation keeps its message.
    ``tests/test_eager.py``, ``tests/test_eager_order.py`` and ``tests/test_eager_yields.py`` prove it
    (they run on every Python in CI).
    """
    call = resume.call
    task = call.task = asyncio.current_task()
    assert task is not None
    cancel = gen != resume.host.gen
    if cancel and resume.waits is not None:  # reset before this task began: the reset's Task.cancel()
        resume.waits.cancel()  # would have cancelled the future it waits on (its wake-up then lets go of it)
    message: BaseException | None = None
    cancels = getattr(call, "cancels", 0)
    for _ in range(cancels):  # asked for (of asyncio.current_task()) in the first step
        task.cancel(call.cancel_msg)  # (what the event waits on is cancelled, as a task does)
    first = not cancel and not cancels  # a bare yield's loop turn is this task's beginning
    if first and yielded is not None and resume.waits is yielded and yielded.done():
        # The eager task's wake-up is queued already (the future was done before this task began).
        yielded = None  # (the task, which ends a loop turn after the event, keeps nothing of it)
        if await resume.park():
            return
        # (a bad yield's error is thrown in at once: Task.__step queued it at the end of that step)
        yielded, first = resume.waits, resume.bad is not None
        if resume.must_throw is not None:  # cancelled as it took over
            cancel, first, message, resume.bad = True, False, resume.must_throw, None
    host, coro, loop, context = resume.host, resume.coro, resume.loop, resume.context
    bad, resume.bad = resume.bad, None
    resume.state = _TASK  # (a wake-up queued on a future this task waits on does nothing)
    while True:
        if not cancel:
            try:
                if yielded is None or bad is not None:  # a bare yield, or an error to throw in
                    if not first:
                        await asyncio.sleep(0)  # (Task.__step's call_soon: the next loop turn)
                else:
                    # What Task.__step does with a yielded future: mark it as taken over, so that
                    # awaiting it here (and the coroutine's own await resuming) is legitimate.
                    yielded._asyncio_future_blocking = False
                    if yielded.done():
                        # A task resumes on a future that is already done one loop turn later
                        # (Task.__step's add_done_callback schedules it), not at once: else an
                        # event whose commit waiter settled before its task began would overtake
                        # events that waited on it longer (two `put(); await sync()`).
                        await asyncio.sleep(0)
                    await yielded
            except asyncio.CancelledError as exc:
                # This task itself was cancelled, unless the future was (the coroutine sees that).
                if yielded is None or bad is not None or not yielded.cancelled():
                    cancel, bad, message = True, None, exc  # (Task.__step throws it instead of ``bad``)
            except GeneratorExit:
                raise  # this task was collected pending (its loop closed): the event's code is too
            except BaseException:
                pass  # the future failed: the coroutine raises it when resumed
        first = False
        counter = host.output
        counter.steps += 1
        swap_current_task(loop, call)  # the event's code sees the same current task in every step
        try:
            if cancel:
                cancel = False
                error: BaseException = asyncio.CancelledError() if message is None else _cancelled_error(message)
                message = None
                yielded = context.run(coro.throw, error)
            elif bad is not None:
                error, bad = bad, None
                yielded = context.run(coro.throw, error)
            else:
                yielded = context.run(coro.send, None)
        except StopIteration:
            return
        finally:
            swap_current_task(loop, task)
            counter.step_done()
        bad = None if yielded is None else _bad_yield(yielded, loop, call)  # (None: a future of this loop)
