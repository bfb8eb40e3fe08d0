"""Hosting one Durable Object: its instance, its events, its gates, its commits and its resets.

An :class:`ObjectHost` exists per object id in a runtime. It builds the instance lazily on the first
event, delivers events (RPC calls, fetches, alarms, test hooks) through the input gate, and resets
the object when something breaks. Its collaborators do the rest: the output gate
(``durable._output_gate.OutputGate``) commits the implicit transaction at the end of each turn and
holds results until the writes made before them are durable; ``durable._alarm_state.AlarmState``
keeps the alarm's bookkeeping; ``durable._object_class.ObjectClass`` builds the instance and calls
into it; ``durable._eager`` starts events and counts those in flight.

Rules, and the Cloudflare behaviour each mirrors:

- Events start in arrival order. An event starts eagerly, inside the call that delivers it, and
  moves to a task of its own at its first suspension, so a handler keeps running even if its
  caller stops waiting (Cloudflare does not cancel a Durable Object's work when a client goes
  away). Calls are not serialized: at any await that is not storage, other events get in, exactly
  as production interleaves them.
- Writes made without a suspension between them coalesce: they join the object's implicit
  transaction, which commits when the turn ends (workerd commits SQLite-backed objects on the
  next turn of the event loop). When an event's synchronous step ends, the commit is scheduled
  for the end of the loop turn, so the writes of every event that runs in that turn share one
  commit (``OutputGate.step_done``); a caller that awaits a result makes the commit at once
  (``OutputGate.flush_now``).
- Output gate: a result (value or error) leaves only after the commit of every write made before
  it; a call the object makes to another object also waits. ``allow_unconfirmed`` writes do not
  hold it. If the commit fails, held results become reset errors, the batch is rolled back and the
  instance is discarded (workerd's "broken.outputGateBroken").
- Reset (failed commit, ``abort()``, failing or over-time ``block_concurrency_while``, a throwing
  constructor): the generation ends, queued and running calls fail with an error carrying
  ``durable_object_reset = True``, unflushed writes are dropped, and the next event builds a fresh
  instance from durable storage. An ordinary exception in a handler fails only that call.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from asyncio import Future
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from . import _context, _eager
from ._alarm_state import AlarmState
from ._background import BackgroundWork
from ._codec import ATOMIC_TYPES, clone
from ._eager import CURRENT_TASKS, EventCall, EventCalls, continue_in_task, start_eagerly, swap_current_task
from ._exceptions import (
    ConnectionClosedError,
    DurableError,
    ObjectAbortedError,
    copy_handler_error,
    copy_remote_exception,
)
from ._gates import InputGate
from ._http import REDIRECT_STATUSES
from ._id import DurableObjectId
from ._limits import Limits
from ._object import DurableObject, call_fetch, check_response
from ._object_class import EventKind, ObjectClass
from ._output_gate import PLAIN_FUTURES, OutputGate, reset_copy
from ._sqlite import ObjectDatabase, end_statements
from ._state import State
from ._storage import Done

if TYPE_CHECKING:
    from ._clock import Clock
    from ._hibernation import HibernationManager, SocketRegistry
    from ._http import Request, Response

__all__ = ["EventKind", "ObjectHost", "call_rpc"]

log = logging.getLogger("durable")

T = TypeVar("T")

running = _context.running
"""Whose code runs in the current task: ``_context.Running`` (host and generation), or None."""

Args = tuple[Any, ...]
"""An event's positional arguments."""
Kwargs = dict[str, Any]
"""An event's keyword arguments."""

_new = object.__new__

_NO_KWARGS: Kwargs = {}
"""A fetch handler's keyword arguments (none; never changed)."""

_HANDLER_CANCELLED = (
    "The Durable Object's handler raised asyncio.CancelledError (a task it awaited was cancelled). durable "
    "reports it as this error, so that the caller does not take it for its own cancellation; the object was "
    "not reset."
)
_CLOSED_MESSAGE = "Connection closed: this Durable Object instance is no longer active. Reconnect or retry the request."


class AlarmTimers(Protocol):
    """The runtime's alarm timers, as a host sees them (``_alarms.AlarmScheduler``)."""

    armed: bool
    """Whether the runtime is attached to the running loop with every alarm timer armed."""


class IdleObjects(Protocol):
    """The runtime's table of objects, as a host that became idle sees it (``_hosts.HostTable``)."""

    def idle(self, host: ObjectHost) -> None:
        """``host`` has no event left: it joins the idle objects (evicted after ``idle_timeout``)."""


class HostRuntime(Protocol):
    """What a host needs from its runtime (implemented by ``_runtime.Runtime``)."""

    @property
    def hosts(self) -> IdleObjects:
        """The runtime's objects (an attribute of the runtime)."""

    clock: Clock
    env: Any
    max_queued_calls: int | None
    loop: asyncio.AbstractEventLoop | None
    hibernation: HibernationManager

    @property
    def closed(self) -> bool:
        """Whether the runtime is closed."""

    alarm_timers: AlarmTimers

    def check_open(self) -> None:
        """Raise ``RuntimeClosedError`` if the runtime is closed."""

    def host_busy(self, host: ObjectHost) -> None:
        """``host`` starts an event (the runtime attaches to the running loop if it must)."""

    def host_idle(self, host: ObjectHost) -> None:
        """``host`` has no event left (it may be evicted)."""

    def alarm_before_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        """``host`` is about to commit ``when_ms`` as its alarm (``None``: none)."""

    def alarm_after_commit(self, host: ObjectHost, when_ms: int | None, *, unwaited: bool = False) -> None:
        """``host`` committed ``when_ms`` as its alarm (``None``: none); ``unwaited``: nothing waited for that commit."""


class _EventRest:
    """The rest of a fast-path event (``_first_step``) whose handler suspended, stepped by a task
    like a coroutine.

    ``send``/``throw`` step the handler's coroutine (a task's cancellation reaches it where it
    waits, even before the task's first step); when it ends, its outcome is delivered and the
    event ends. It raises nothing but ``StopIteration``, as ``continue_in_task`` requires.
    """

    __slots__ = ("call", "coro", "fetch", "gen", "host")

    def __init__(
        self, host: ObjectHost, call: EventCall, gen: int, coro: CoroutineType[Any, Any, Any], fetch: Request | None
    ) -> None:
        self.host, self.call, self.gen, self.coro, self.fetch = host, call, gen, coro, fetch

    def send(self, value: None, /) -> Any:
        try:
            return self.coro.send(value)
        except BaseException as exc:
            self._end(exc)

    def throw(self, exc: BaseException, /) -> Any:
        try:
            return self.coro.throw(exc)
        except BaseException as raised:
            self._end(raised)

    def _end(self, exc: BaseException) -> NoReturn:
        host, call = self.host, self.call
        if isinstance(exc, StopIteration):
            try:
                _deliver(host, call, self.gen, exc.value, self.fetch)
            except BaseException as error:  # a result that cannot be copied, a reset
                exc = error
        if not isinstance(exc, StopIteration):
            host._fail_event(call.fut, self.gen, exc)
        _event_ended(host, call)
        raise StopIteration


class ObjectHost:
    """Hosts one object id: delivers its events and resets it (the rules: see the module docstring).

    Collaborators: ``output`` (OutputGate) commits each turn and holds results until then;
    ``alarms`` (AlarmState) keeps the alarm's bookkeeping; ``type`` (ObjectClass) builds the
    instance and calls into it; ``background`` (BackgroundWork) runs background work.
    """

    def __init__(
        self,
        runtime: HostRuntime,
        cls: type[DurableObject],
        oid: DurableObjectId,
        db: ObjectDatabase,
        *,
        kv_backed: bool,
        limits: Limits,
    ) -> None:
        self.runtime = runtime
        self.cls = cls
        self.id = oid
        self.key = oid.key
        self.detached = False
        """Set once the runtime has forgotten this host (evicted, closed): stubs look up anew."""
        self.db = db
        self.kv_backed = kv_backed
        self.limits = limits
        self.alarms = AlarmState(self)
        self.type = ObjectClass(cls, self.alarms, self.reset)
        self.has_alarm_handler = self.type.has_alarm_handler
        self.gen, self.running = 0, _context.Running(self, 0)  # running: what its events set in _context.running
        self.gate = InputGate()
        self.instance: DurableObject | None = None
        self.state: State | None = None
        self.output = OutputGate(owner=self)
        self.wrote, self.commit_now = self.output.wrote_in_turn, self.output.flush_pending
        """``StorageHost.wrote`` (called by every write, docs/performance.md), ``commit_now``: the output gate's own."""
        self.events = EventCalls()
        self.background = BackgroundWork(self, runtime.clock)
        self._broken: BaseException = ConnectionClosedError(_CLOSED_MESSAGE)
        self.pins = 0
        """Connections that keep the object busy (WebSockets accepted with ``accept()`` in it)."""
        self.ending: set[Callable[[], None]] = set()
        """Called when this generation ends (reset, eviction): the compat layer's ``js`` timers."""

    def __repr__(self) -> str:
        return f"<ObjectHost {self.id!r} gen={self.gen}>"

    @property
    def busy(self) -> bool:
        """Whether anything runs or waits in this object (it may not be evicted then)."""
        return self.events_running or bool(self.background.tasks or self.pins)

    # -- what the hibernation manager asks (durable._hibernation) ------------------------------

    @property
    def has_instance(self) -> bool:
        """Whether an instance is live (not evicted, hibernated or reset since)."""
        return self.instance is not None

    @property
    def events_running(self) -> bool:
        """Whether an event runs or waits, or the input gate is closed."""
        return bool(self.events.admitted or self.gate.locked or self.db.savepoint_depth)

    @property
    def background_work(self) -> bool:
        """Whether ``wait_until`` work or a ``block_concurrency_while`` callback is pending."""
        return bool(self.background.tasks)

    def event_tasks(self) -> set[asyncio.Future[Any]]:
        """The tasks that run this object's events and background work (not the object's own tasks)."""
        return self.events.tasks() | self.background.tasks

    def maybe_idle(self) -> None:
        """Tell the runtime the object is idle, if it is (a pinning connection ended)."""
        if not self.busy:
            self.runtime.host_idle(self)

    def socket_registry(self, *, create: bool = True) -> SocketRegistry | None:
        """This object's WebSockets and Hibernation API settings (kept by the runtime).

        With ``create=False``, None when the object has none (reading makes nothing).
        """
        manager = self.runtime.hibernation
        return manager.registry(self.key) if create else manager.registries.get(self.key)

    # -- the StorageHost protocol (durable._storage), and what stubs and sockets ask -----------

    def check_live(self, generation: int) -> None:
        if generation != self.gen:
            raise reset_copy(self._broken)
        _context.check_owner(self)  # ctx or storage used from outside the object?

    def now_ms(self) -> int:
        return self.runtime.clock.time_ms()

    def alarm_written(self, stored_changed: bool = True, *, from_none: bool = False) -> None:
        self.alarms.written(stored_changed, from_none=from_none)

    def alarm_visible(self, stored: int | None) -> int | None:
        return self.alarms.visible(stored)

    def savepoint_ended(self, kept: bool) -> None:
        self.alarms.savepoint_ended(kept)

    def commit_waiter(self) -> Awaitable[None]:
        waiter = self.output.commit_waiter()
        return Done(None) if waiter is None else waiter

    def transaction_ended(self) -> None:
        if self.db.in_transaction:
            self.output.wrote_in_turn(False)

    def inside_own_transaction(self) -> bool:
        """Whether the running event runs inside one of this object's open ``transaction()`` closures."""
        return self.state is not None and self.state.storage.inside_transaction()

    def before_outgoing(self) -> asyncio.Future[None] | None:
        """What a call this object makes now must wait for: the commit of its earlier writes (``OutputGate``)."""
        _refuse_reset_code(self)
        return self.output.outgoing_waiter()

    def drop_alarm(self, scheduled_ms: int) -> None:
        """Delete the stored alarm if it is still the one set for ``scheduled_ms`` (the scheduler gave up)."""
        self.alarms.drop(scheduled_ms)

    def invoke(
        self, kind: EventKind, name: Any, args: Args, kwargs: Kwargs, fut: Future[Any] | None = None
    ) -> Future[Any]:
        """Deliver an event; the future (``fut``, or a new one) gets its result once it may leave."""
        runtime = self.runtime
        if runtime.closed:
            runtime.check_open()  # raises RuntimeClosedError
        loop = asyncio.get_running_loop() if fut is None else fut.get_loop()
        self.events.admit(runtime.max_queued_calls)
        if fut is None:
            fut = loop.create_future()
        runtime.host_busy(self)
        # Eager start (durable._eager): the event runs right here, in a copy of the caller's
        # context, until it first suspends; only then does a task take it over. An event that
        # never suspends (most storage-only handlers) costs no loop turn.
        call = EventCall(fut)
        start_eagerly(self, call, self._event(call, kind, name, args, kwargs), loop, contextvars.copy_context())
        return fut

    def call_rpc(self, name: str, args: Args, kwargs: Kwargs, fut: Future[Any]) -> None:
        """Deliver an RPC call made from outside any object; ``fut`` gets its outcome (see :func:`call_rpc`)."""
        call_rpc(self, name, args, kwargs, fut)

    def call_fetch(self, request: Any, fut: Future[Any]) -> None:
        """Deliver a fetch made from outside any object (``invoke("fetch", ...)`` on ``call_rpc``'s shorter path)."""
        gate = self.gate
        runtime = self.runtime
        if (
            self.instance is None
            or gate.locks
            or gate.waiters
            or gate.reopening  # the turn the last lock ended: its caller goes on first (InputGate.idle)
            or runtime.closed
            or runtime.max_queued_calls is not None
            or not runtime.alarm_timers.armed
        ):
            self.invoke("fetch", "fetch", (request,), {}, fut)
            return
        _start_fast(self, fut, None, (), _NO_KWARGS, request)  # (the handler: call_fetch, see _first_step)
        # (Stub.fetch calls start_fetch below, this method's checks and _start_fast in one frame.)

    def _fail_event(self, fut: asyncio.Future[Any], gen: int, error: BaseException) -> None:
        if fut.done():
            return
        if gen != self.gen:
            fut.set_exception(reset_copy(self._broken))
        elif isinstance(error, asyncio.CancelledError):
            task = asyncio.current_task()  # the event's (its EventCall when stepped by hand)
            if task is not None and task.cancelling():
                fut.set_exception(ConnectionClosedError(_CLOSED_MESSAGE))  # the event was cancelled: its loop stops
            else:
                # The handler's own code raised it (a task it awaited was cancelled): an error of
                # this call, not a reset nor a cancellation of the caller, who must not take it
                # for its own; the object lives on.
                self.output.deliver(fut, copy_remote_exception(DurableError(_HANDLER_CANCELLED)), True)
        else:
            # Errors are responses too: an error of the call, not a reset of this object, so the
            # caller's stub to it stays usable (copy_handler_error: which flags travel).
            self.output.deliver(fut, copy_handler_error(error), True)

    async def _enter(self) -> int:
        """Wait at the gate, build the instance if needed; returns the generation entered."""
        while True:
            gate = self.gate
            await gate.wait()
            if self.instance is None:
                self._construct()
            if gate is self.gate and self.gate.is_open():
                return self.gen

    def _construct(self) -> None:
        gen = self.gen
        state = _new_state(self, gen)
        self.has_alarm_handler = True  # workerd looks for alarm() once the object is built (miniflare 4)
        try:
            instance = self.type.construct(state, self.runtime.env, self.db)  # resets the object if it raises
        finally:
            self.has_alarm_handler = self.type.has_alarm_handler
        if gen != self.gen:  # the constructor itself reset the object (abort)
            raise reset_copy(self._broken)
        self.state = state
        self.instance = instance

    async def _event(self, call: EventCall, kind: EventKind, name: Any, args: Args, kwargs: Kwargs) -> None:
        running.set(self.running)
        fut, gen = call.fut, self.gen
        try:
            if self.instance is None or not self.gate.idle:
                gen = await self._enter()  # else the common case: live instance, open gate, nobody queued
                running.set(self.running if gen == self.gen else _context.Running(self, gen))
            self.events.running.add(call)
            assert self.instance is not None
            result = self.type.dispatch(self.instance, self.state, kind, name, args, kwargs)
            if type(result) is CoroutineType or inspect.isawaitable(result):
                result = await result
            result = self.type.result(kind, result, args)
            if kind == "fetch":
                await _fetch_answered(self, fut, result)
            if gen != self.gen:
                raise reset_copy(self._broken)
            if not fut.done():
                self.output.deliver(fut, result, False)  # held until the commit that step_done() makes
        except BaseException as exc:
            self._fail_event(fut, gen, exc)
        finally:
            _event_ended(self, call)

    # -- reset and eviction --------------------------------------------------------------------

    def abort(self, reason: str | None, gen: int, *, retry_alarm: bool = True) -> NoReturn:
        self.check_live(gen)
        error = ObjectAbortedError(
            reason if reason is not None else "Application called abort() to reset Durable Object."
        )
        error.retry_alarm = retry_alarm  # read by the alarm scheduler, through every copy (reset_copy)
        self.reset(error)
        raise reset_copy(error)

    def reset(self, error: BaseException, *, keep_hibernatable: bool = False) -> None:
        """End this generation: fail its calls with ``error``, drop unflushed writes and the instance."""
        self._end_generation(error)
        self.runtime.hibernation.object_reset(self, keep_hibernatable)  # its WebSockets are disconnected
        _context.cancel_left_over(self, self.gen)  # the tasks the instance created (Python 3.12+)

    def _end_generation(self, error: BaseException) -> None:
        self.gen += 1
        self.running = _context.Running(self, self.gen)
        self._broken = error
        old_gate, self.gate = self.gate, InputGate()
        old_gate.break_(error)
        self.output.keep_ended_turns()  # the writes of turns that ended commit (workerd's had begun)
        self.db.rollback()
        # Cursors it kept (in a global) must not hold their statements open on a connection the
        # next instance uses: its DROP TABLE failed with SQLITE_LOCKED (closing does it too).
        end_statements(self.db)
        self.alarms.generation_ended()
        self.output.fail(error)
        self.instance = None
        self.state = None
        self.events.fail_running(error)
        self.background.cancel_all()
        ending, self.ending = self.ending, set()
        for callback in ending:
            callback()

    def evict(self) -> None:
        """Drop the instance but keep its storage: committed writes stay, the next event rebuilds.

        Pending writes are committed first; calls still running fail with Cloudflare's
        "Connection closed" error (``retryable = True``).
        """
        self.output.flush_pending()
        self._end_generation(ConnectionClosedError(_CLOSED_MESSAGE))
        self.runtime.hibernation.object_evicted(self)  # hibernatable sockets stay
        if self.db.file is not None and not self.db.in_transaction:
            self.db.close()

    def close(self, *, collected: bool = False) -> None:
        """Commit what can be committed and close the database (runtime shutdown).

        ``collected``: the runtime was garbage collected without ``aclose()``, maybe on another
        thread than its loop's, which may be closed or still running: no caller waits for its
        events any more (a caller's stub would have kept it alive), so only the writes are
        committed and the database closed; no future, task or gate of the loop is touched.
        """
        try:
            if collected:
                self.output.batch = None  # its held results: nobody waits for them
            self.output.flush_pending()
            if not collected and (self.instance is not None or self.events.running or self.background.tasks):
                self._end_generation(ConnectionClosedError(_CLOSED_MESSAGE))
        finally:
            self.db.close()  # even if ending the generation failed: the file must not stay open


def _refuse_reset_code(host: ObjectHost) -> None:
    """Raise the reset error if the running code belongs to an instance of ``host`` that was reset.

    Such code (a task the instance created, still running) may call no one, as it may not use
    storage. In workerd none of it runs any more (measured with miniflare 4, 2026-04-07: a call
    due 30 ms after ``abort()`` never reaches the other object).
    """
    now = running.get()
    if now is not None and now.gen != host.gen:
        host.check_live(now.gen)  # raises the reset error


def _new_state(host: ObjectHost, gen: int) -> State:
    """The ``ctx`` of generation ``gen``, about to be built in the entering event's context: the
    generation is set there first, so that tasks its constructor starts inherit it."""
    running.set(host.running)  # (gen is host.gen: _construct() runs in the entering event)
    return State(host, gen)


# -- the fast-path event of ObjectHost.call_rpc and call_fetch (functions: the class stays small) --


_future_done = Future.done
"""``Future.done`` called as a function on a call's promise. An ``RpcPromise`` has a
``__getattr__`` (promise pipelining, ``_pipeline``), which on CPython 3.11 puts every attribute
read of a promise on the slow path: ``fut.done()`` made a bound method through that hook, about
490 instructions more per read (callgrind)."""

_future_set_result = Future.set_result
"""``Future.set_result`` as a function (see ``_future_done``), for the future types whose
``set_result`` is asyncio's own (``PLAIN_FUTURES``: a redirected fetch's promise overrides it).
``_first_step``'s inlined delivery calls it without that check: it delivers only RPC results
(``fetch is None``), whose promises never override it; the check cost about 350 instructions
per call there (seq-noop 26,484 -> 26,831, callgrind)."""


def call_rpc(host: ObjectHost, name: str, args: Args, kwargs: Kwargs, fut: Future[Any]) -> None:
    """Deliver an RPC call made from outside any object to ``host``; ``fut`` gets its outcome.

    The same as ``host.invoke("rpc", ...)``, on a shorter path for the common case (a live
    instance, an open gate, a plain method called before): the method's own coroutine is
    started here, with no gate or dispatch work around it. Anything else goes through ``invoke``.
    ``RpcMethod.__call__`` calls this function, not the method (``ObjectHost.call_rpc``), and on
    3.11 it starts the event itself (``_start_fast``'s part for 3.11, inlined): a Python frame
    less per call, seq-noop 28,737 -> 28,184 instructions (callgrind, thirteenth pass,
    docs/performance.md).
    """
    # ObjectClass.plain_method(name), inlined (docs/performance.md): the method resolved before, a plain
    # function, not replaced on the class since (a test's monkeypatch).
    entry = host.type.rpc.get(name)
    func = None if entry is None or entry[2] is None or getattr(host.cls, name, None) is not entry[1] else entry[0]
    gate = host.gate
    runtime = host.runtime
    if (  # the shorter path's conditions (as in call_fetch; inlined: a call is ~750 instructions)
        func is None
        or host.instance is None
        or gate.locks  # not gate.idle, without the property's call
        or gate.waiters
        or gate.reopening  # the turn the last lock ended: its caller goes on first (InputGate.idle)
        or runtime.closed
        or runtime.max_queued_calls is not None
        or not runtime.alarm_timers.armed
    ):
        host.invoke("rpc", name, args, kwargs, fut)
        return
    if _eager.EAGER_TASKS:  # 3.12+: asyncio's eager task (see _fast_event)
        _start_fast(host, fut, func, args, kwargs, None)
        return
    # _start_fast(host, fut, func, args, kwargs, None) on 3.11, inlined: keep the two alike.
    host.events.admitted += 1
    call = _new(EventCall)  # (object.__new__, read once: see _storage._new)
    call.fut, call.task = fut, None
    output = host.output
    output.steps += 1  # the event's first step, as start_eagerly() counts it
    loop = runtime.loop  # (the running loop: see _start_fast)
    tasks = CURRENT_TASKS
    if tasks is None:
        caller = swap_current_task(loop, call)
    else:
        caller = tasks.get(loop)
        tasks[loop] = call
    try:
        contextvars.copy_context().run(_first_step, host, call, host.gen, func, args, kwargs, None)
    finally:
        if tasks is None:
            swap_current_task(loop, caller)
        elif caller is None:
            del tasks[loop]
        else:
            tasks[loop] = caller
        # output.step_done(), inlined (``loop`` is the running loop): a frame and a _get_running_loop()
        # less per call, seq-fetch 80,419 -> 79,825, seq-increment 67,713 -> 67,169 instructions
        # (callgrind, twentieth pass, docs/performance.md). Keep the three copies alike with it
        # (tests/test_fast_paths.py).
        output.steps -= 1
        if not output.steps:
            output.turn_wrote = False
            if output.batch is not None and output.scheduled_on is not loop:
                output.schedule_commit()


def start_fetch(host: ObjectHost, request: Any, fut: Future[Any]) -> None:
    """Deliver a fetch made from outside any object to ``host``; ``fut`` gets its outcome.

    ``host.call_fetch(request, fut)`` for ``Stub.fetch``, as :func:`call_rpc` is for RPC calls: its
    checks, and on 3.11 ``_start_fast``'s part inlined, in one Python frame where there were two
    (seq-fetch 88,053 -> 87,204 instructions, callgrind, fourteenth pass, docs/performance.md).
    Keep it alike with ``ObjectHost.call_fetch`` and ``_start_fast``.
    """
    gate = host.gate
    runtime = host.runtime
    if (  # ObjectHost.call_fetch's conditions for the shorter path
        host.instance is None
        or gate.locks
        or gate.waiters
        or gate.reopening
        or runtime.closed
        or runtime.max_queued_calls is not None
        or not runtime.alarm_timers.armed
    ):
        host.invoke("fetch", "fetch", (request,), {}, fut)
        return
    if _eager.EAGER_TASKS:  # 3.12+: asyncio's eager task (see _fast_event)
        _start_fast(host, fut, None, (), _NO_KWARGS, request)
        return
    # _start_fast(host, fut, None, (), _NO_KWARGS, request) on 3.11, inlined: keep the two alike.
    host.events.admitted += 1
    call = _new(EventCall)  # (object.__new__, read once: see _storage._new)
    call.fut, call.task = fut, None
    output = host.output
    output.steps += 1  # the event's first step, as start_eagerly() counts it
    loop = runtime.loop  # (the running loop: see _start_fast)
    tasks = CURRENT_TASKS
    if tasks is None:
        caller = swap_current_task(loop, call)
    else:
        caller = tasks.get(loop)
        tasks[loop] = call
    try:
        contextvars.copy_context().run(_first_step, host, call, host.gen, None, (), _NO_KWARGS, request)
    finally:
        if tasks is None:
            swap_current_task(loop, caller)
        elif caller is None:
            del tasks[loop]
        else:
            tasks[loop] = caller
        # output.step_done(), inlined (``loop`` is the running loop): a frame and a _get_running_loop()
        # less per call, seq-fetch 80,419 -> 79,825, seq-increment 67,713 -> 67,169 instructions
        # (callgrind, twentieth pass, docs/performance.md). Keep the three copies alike with it
        # (tests/test_fast_paths.py).
        output.steps -= 1
        if not output.steps:
            output.turn_wrote = False
            if output.batch is not None and output.scheduled_on is not loop:
                output.schedule_commit()


def _start_fast(
    host: ObjectHost, fut: Future[Any], func: Any, args: Args, kwargs: Kwargs, fetch: Request | None
) -> None:
    """Start a fast-path event: ``func(instance, *args, **kwargs)`` (for a fetch, ``func`` is None and
    ``fetch`` the request: the instance's ``fetch`` handler), its outcome to ``fut``."""
    host.events.admitted += 1
    # EventCall(fut) without its Python __init__ (type_call, slot_tp_init, a frame): made and
    # filled here, as __init__ does: seq-noop 28,936 -> 28,711 (tenth pass, continued)
    call = object.__new__(EventCall)
    call.fut, call.task = fut, None
    if _eager.EAGER_TASKS:  # 3.12+: asyncio's eager task (see _fast_event)
        event = _fast_event(host, call, host.gen, func, args, kwargs, fetch)
        start_eagerly(host, call, event, fut.get_loop(), contextvars.copy_context())
        return
    output = host.output  # (call_rpc has this 3.11 part inlined: keep the two alike)
    output.steps += 1  # the event's first step, as start_eagerly() counts it
    # The handler sees its event (``call``) as the current task, as on 3.12+ it sees its eager
    # task (EventCall's docstring): on 3.11 the dict current_task() reads, set inline (_eager.CURRENT_TASKS).
    loop = (
        host.runtime.loop
    )  # (the running loop: the shorter path needs alarm_timers.armed; fut.get_loop() cost ~500 more)
    tasks = CURRENT_TASKS
    if tasks is None:
        caller = swap_current_task(loop, call)
    else:
        caller = tasks.get(loop)
        tasks[loop] = call
    try:
        contextvars.copy_context().run(_first_step, host, call, host.gen, func, args, kwargs, fetch)
    finally:
        if tasks is None:
            swap_current_task(loop, caller)
        elif caller is None:
            del tasks[loop]
        else:
            tasks[loop] = caller
        # output.step_done(), inlined (``loop`` is the running loop): a frame and a _get_running_loop()
        # less per call, seq-fetch 80,419 -> 79,825, seq-increment 67,713 -> 67,169 instructions
        # (callgrind, twentieth pass, docs/performance.md). Keep the three copies alike with it
        # (tests/test_fast_paths.py).
        output.steps -= 1
        if not output.steps:
            output.turn_wrote = False
            if output.batch is not None and output.scheduled_on is not loop:
                output.schedule_commit()


def _first_step(
    host: ObjectHost, call: EventCall, gen: int, func: Any, args: Args, kwargs: Kwargs, fetch: Request | None
) -> None:
    """A fast-path event, in its own context: call ``func`` (the method, given the instance
    first; for a fetch, ``call_fetch``) and step its coroutine here, up to its first
    suspension; deliver its outcome, or leave the rest to a task.

    The eager start of ``start_eagerly()`` without its wrapper coroutine: the handler's own
    coroutine is stepped, and only one that suspends gets a task (``_EventRest``). Measured
    (callgrind, docs/performance.md, fourth pass): a no-op RPC call 34,017 -> 32,574
    instructions on 3.11, a sequential fetch 111,316 -> 107,469 (with Response's fast path).
    """
    running.set(host.running)  # (gen is host.gen: called by _start_fast, synchronously)
    host.events.running.add(call)
    try:
        # A method called without arguments is called as such: func(instance, *args, **kwargs)
        # builds a list, a tuple and a dict first (seq-noop 30,616 -> 29,780 instructions,
        # callgrind, tenth pass). A fetch calls call_fetch itself, not through a wrapper given as
        # ``func`` with ``(request,)``: seq-fetch 99,173 -> 97,238, conc-fetch 93,405 -> 91,449
        # instructions (callgrind, eleventh pass).
        if fetch is not None:
            result = call_fetch(host.instance, fetch)
        elif not args and not kwargs:
            result = func(host.instance)
        else:
            result = func(host.instance, *args, **kwargs)
        if type(result) is CoroutineType:
            call.coro = result  # (EventCall.get_coro(), the current task's)
            try:
                yielded = result.send(None)
            except StopIteration as stop:
                result = stop.value
            else:
                # Suspended on ``yielded``: a task waits for it, then resumes the handler.
                continue_in_task(host, call, _EventRest(host, call, gen, result, fetch), yielded)
                return
        elif inspect.isawaitable(result):
            rest = _awaitable_rest(host, call, gen, result, fetch)
            try:
                yielded = rest.send(None)  # (_awaitable_rest delivers and ends the event itself)
            except StopIteration:
                return
            continue_in_task(host, call, rest, yielded)
            return
        if fetch is None and type(result) in ATOMIC_TYPES and gen == host.gen:
            # _deliver() of an RPC method's result that needs no copy (an atomic value, the object
            # not reset meanwhile), inlined: a frame less per call, seq-noop 26,775 -> 26,259,
            # seq-increment 69,015 -> 68,490 instructions (callgrind, fourteenth pass,
            # docs/performance.md). Anything else goes to _deliver. Keep the two alike
            # (tests/test_fast_paths.py compares them).
            fut = call.fut
            if not _future_done(fut):
                batch = host.output.batch
                if batch is None:
                    _future_set_result(fut, result)  # (an RPC call's promise: see _future_set_result)
                elif batch.gated and not host.db.savepoint_depth:
                    batch.held.append((fut, result, False))
                else:
                    host.output.deliver(fut, result, False)
        elif fetch is not None:
            # _deliver() of a fetch's response, inlined: its statements for a fetch, in order (a frame
            # less per fetch; with the Batch and write_alone changes of the same pass, seq-fetch 81,568 -> 80,419
            # instructions, callgrind, twentieth pass,
            # docs/performance.md). Keep the two alike (tests/test_fast_paths.py compares them).
            result = check_response(result, fetch)
            if result.status in REDIRECT_STATUSES:
                _redirect_answered(call.fut)
            if host.gate.locks and not host.gate.is_open() and gen == host.gen:
                _hold_response(host, call.fut, gen, result)
            else:
                if gen != host.gen:
                    host.check_live(gen)  # raises the reset's error
                fut = call.fut
                if not _future_done(fut):
                    batch = host.output.batch
                    if batch is None:
                        if type(fut) in PLAIN_FUTURES:
                            _future_set_result(fut, result)
                        else:
                            fut.set_result(result)
                    elif batch.gated and not host.db.savepoint_depth:
                        batch.held.append((fut, result, False))
                    else:
                        host.output.deliver(fut, result, False)
        else:
            _deliver(host, call, gen, result, fetch)
    except BaseException as exc:
        host._fail_event(call.fut, gen, exc)
    _event_ended(host, call)


async def _fast_event(
    host: ObjectHost, call: EventCall, gen: int, func: Any, args: Args, kwargs: Kwargs, fetch: Request | None
) -> None:
    """A fast-path event as a coroutine, for asyncio's eager task on 3.12+.

    There, the event runs in a task of its own from its first step, so code that needs the
    current task in that step gets the event's own (``asyncio.timeout()``, ``asyncio.wait_for()``,
    ``TaskGroup``); ``_first_step`` steps by hand on 3.11, which has no eager tasks.
    """
    running.set(host.running if gen == host.gen else _context.Running(host, gen))
    host.events.running.add(call)
    try:
        result = call_fetch(host.instance, fetch) if fetch is not None else func(host.instance, *args, **kwargs)
        if type(result) is CoroutineType or inspect.isawaitable(result):
            result = await result
        _deliver(host, call, gen, result, fetch)
    except BaseException as exc:
        host._fail_event(call.fut, gen, exc)
    finally:
        _event_ended(host, call)


async def _awaitable_rest(
    host: ObjectHost, call: EventCall, gen: int, awaitable: Awaitable[Any], fetch: Request | None
) -> None:
    """A fast-path event whose handler returned an awaitable that is not a coroutine."""
    try:
        _deliver(host, call, gen, await awaitable, fetch)
    except BaseException as exc:
        host._fail_event(call.fut, gen, exc)
    finally:
        _event_ended(host, call)


def _deliver(host: ObjectHost, call: EventCall, gen: int, result: Any, fetch: Request | None) -> None:
    """Hand the handler's ``result`` (a copy; for a fetch, whose request ``fetch`` is, the
    checked ``Response``) to the caller, once the output gate lets it leave."""
    if fetch is not None:
        result = check_response(result, fetch)
        if result.status in REDIRECT_STATUSES:
            _redirect_answered(call.fut)
        if host.gate.locks and not host.gate.is_open() and gen == host.gen:
            _hold_response(host, call.fut, gen, result)
            return
    elif type(result) not in ATOMIC_TYPES:  # (clone() returns those as they are)
        result = clone(result)
    if gen != host.gen:
        host.check_live(gen)  # raises the reset's error
    fut = call.fut
    if not _future_done(fut):  # (Future's own methods called through the class: see _future_done)
        # Held until the commit step_done() schedules: OutputGate.deliver, inlined for the two
        # common cases (seq-noop 29,780 -> 28,748 instructions, callgrind, tenth pass).
        batch = host.output.batch
        if batch is None:
            if type(fut) in PLAIN_FUTURES:  # (see _future_done)
                _future_set_result(fut, result)
            else:
                fut.set_result(result)
        elif batch.gated and not host.db.savepoint_depth:
            batch.held.append((fut, result, False))
        else:
            host.output.deliver(fut, result, False)


async def _fetch_answered(host: ObjectHost, fut: Future[Any], response: Response) -> None:
    """The general path's ``_deliver`` for a fetch's checked response: a redirect settles through
    its promise's redirect path; a response waits for a section its handler started (``_hold_response``)."""
    if response.status in REDIRECT_STATUSES:
        _redirect_answered(fut)
    if host.gate.locks and not host.gate.is_open():
        await host.gate.wait()


def _hold_response(host: ObjectHost, fut: Future[Any], gen: int, response: Response) -> None:
    """A fetch handler returned while a ``block_concurrency_while()`` or ``transaction()`` it started
    (not awaited) holds the gate: its response waits at the gate, as an event does, and fails with
    the reset error if that section resets the object. workerd holds it so (a 500 ms section: the
    response arrives after ~505 ms; a section that throws fails the fetch with its error; both
    backends, miniflare 4, 2026-04-07), though not an RPC method's result (~14 ms)."""

    async def deliver() -> None:
        try:
            await host.gate.wait()
            if gen != host.gen:
                host.check_live(gen)  # raises the reset's error
        except BaseException as exc:
            host._fail_event(fut, gen, exc)
            return
        if not fut.done():
            host.output.deliver(fut, response, False)

    fut.get_loop().create_task(deliver())


def _redirect_answered(fut: Future[Response]) -> None:
    """A fetch's response, about to settle ``fut``, has a redirect status: a ``stub.fetch`` promise
    then settles through its redirect path (``_FetchPromise._redirecting``), which may follow it.
    Other futures (a fetch sent by an object: its promise looks when the task settles it) have none."""
    redirecting = getattr(fut, "_redirecting", None)
    if redirecting is not None:
        redirecting()


def _event_ended(host: ObjectHost, call: EventCall) -> None:
    """``call``'s event ended: count it out; tell the runtime if the object is now idle."""
    events = host.events
    events.running.discard(call)  # events.ended(call), then not host.busy: inlined (docs/performance.md)
    events.admitted -= 1
    if not (events.admitted or host.background.tasks or host.gate.locks or host.db.savepoint_depth or host.pins):
        # runtime.host_idle(host), inlined for an object without hibernatable WebSockets: one
        # Python call less per call (seq-noop 32,356 -> 31,798 instructions, callgrind, tenth pass).
        runtime = host.runtime
        if runtime.closed or host.detached or runtime.hibernation.registries:
            runtime.host_idle(host)
        else:
            runtime.hosts.idle(host)
