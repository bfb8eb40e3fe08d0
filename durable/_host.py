"""Hosting one Durable Object: its instance, its events, its gates, its commits and its resets.

An :class:`ObjectHost` exists per object id in a runtime. It builds the instance lazily on the first
event, delivers events (RPC calls, fetches, alarms, test hooks) through the input gate, commits the
implicit transaction at the end of each turn, holds results behind the output gate until the writes
made before them are durable, and resets the object when something breaks.

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
  commit (``step_done``); a caller that awaits a result makes the commit at once (``flush_now``).
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
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, TypeVar

from . import _context
from ._background import BackgroundWork
from ._codec import clone
from ._eager import EventCall, start_eagerly
from ._exceptions import ConnectionClosedError, ObjectAbortedError, OverloadedError, copy_remote_exception
from ._gates import InputGate
from ._history import History
from ._id import DurableObjectId
from ._limits import Limits
from ._object import AlarmInfo, DurableObject, call_fetch, call_method, check_response, read_property, rpc_table
from ._output_gate import OutputGate, commit_failed, reset_copy
from ._sqlite import ObjectDatabase
from ._state import State
from ._storage import Done

if TYPE_CHECKING:
    from ._clock import Clock
    from ._hibernation import HibernationManager, SocketRegistry

__all__ = ["EventKind", "ObjectHost", "current_host"]

log = logging.getLogger("durable")

T = TypeVar("T")

current_host: ContextVar[ObjectHost | None] = _context.current_host
"""The object whose code is running in the current task (None outside any object)."""

_CLOSED_MESSAGE = "Connection closed: this Durable Object instance is no longer active. Reconnect or retry the request."


class HostRuntime(Protocol):
    """What a host needs from its runtime (implemented by ``_runtime.Runtime``)."""

    clock: Clock
    env: Any
    max_queued_calls: int | None
    hibernation: HibernationManager

    @property
    def closed(self) -> bool:
        """Whether the runtime is closed."""

    @property
    def armed(self) -> bool:
        """Whether the runtime is attached to the running loop with every alarm timer armed."""

    def check_open(self) -> None:
        """Raise ``RuntimeClosedError`` if the runtime is closed."""

    def host_busy(self, host: ObjectHost) -> None:
        """``host`` starts an event (the runtime attaches to the running loop if it must)."""

    def host_idle(self, host: ObjectHost) -> None:
        """``host`` has no event left (it may be evicted)."""

    def alarm_before_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        """``host`` is about to commit ``when_ms`` as its alarm (``None``: none)."""

    def alarm_after_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        """``host`` committed ``when_ms`` as its alarm (``None``: none)."""


EventKind = Literal["rpc", "get", "fetch", "alarm", "run"]
"""What an event is: an RPC call, a property read over RPC, a fetch, an alarm, or test code run in the object."""


class ObjectHost:
    """Hosts one object id: see the module docstring for the rules it implements."""

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
        self.key = (oid._namespace, oid._hex)
        self.detached = False
        """Set once the runtime has forgotten this host (evicted, closed): stubs look up anew."""
        self.db = db
        self.kv_backed = kv_backed
        self.limits = limits
        self.has_alarm_handler = callable(getattr(cls, "alarm", None))
        self._rpc = rpc_table(cls)
        self.gen = 0
        self.gate = InputGate()
        self.instance: DurableObject | None = None
        self.state: State | None = None
        self.output = OutputGate(self._flush)
        self.steps = 0
        """Synchronous steps of events running right now (nested when events call back in)."""
        self.calls: set[EventCall] = set()
        self.pending = 0
        self.background = BackgroundWork(self, runtime.clock)
        self._broken: BaseException = ConnectionClosedError(_CLOSED_MESSAGE)
        self.alarm_running = False
        self.alarm_reset = False
        self._alarm_dirty = False
        self.pins = 0
        """Connections that keep the object busy (WebSockets accepted with ``accept()`` in it)."""

    def __repr__(self) -> str:
        return f"<ObjectHost {self.id!r} gen={self.gen}>"

    @property
    def busy(self) -> bool:
        """Whether anything runs or waits in this object (it may not be evicted then)."""
        return bool(self.pending or self.background.tasks or self.gate.locked or self.db.savepoint_depth or self.pins)

    # -- what the hibernation manager asks (durable._hibernation) ------------------------------

    @property
    def has_instance(self) -> bool:
        """Whether an instance is live (not evicted, hibernated or reset since)."""
        return self.instance is not None

    @property
    def events_running(self) -> bool:
        """Whether an event runs or waits, or the input gate is closed."""
        return bool(self.pending or self.gate.locked or self.db.savepoint_depth)

    @property
    def background_work(self) -> bool:
        """Whether ``wait_until`` work or a ``block_concurrency_while`` callback is pending."""
        return bool(self.background.tasks)

    def event_tasks(self) -> set[asyncio.Future[Any]]:
        """The tasks that run this object's events and background work (not the object's own tasks)."""
        running: set[asyncio.Future[Any]] = {call.task for call in self.calls if call.task is not None}
        running.update(self.background.tasks)
        return running

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

    # -- the StorageHost protocol --------------------------------------------------------------

    def check_live(self, generation: int) -> None:
        if generation != self.gen:
            raise reset_copy(self._broken)
        _context.check_owner(self)  # ctx or storage used from outside the object?

    def now_ms(self) -> int:
        return self.runtime.clock.time_ms()

    def wrote(self, gated: bool) -> None:
        self.output.wrote(gated)
        if not self.steps:
            # A write outside any event step (a background task, a block_concurrency_while
            # callback, test code): commit once this turn ends. Inside a step, step_done() decides.
            self.output.schedule_commit()

    def alarm_written(self) -> None:
        self._alarm_dirty = True
        if self.alarm_running:
            self.alarm_reset = True

    def alarm_visible(self, stored: int | None) -> int | None:
        if self.alarm_running and not self.alarm_reset:
            return None
        return stored

    def commit_waiter(self) -> Awaitable[None]:
        waiter = self.output.commit_waiter()
        return Done(None) if waiter is None else waiter

    def transaction_ended(self) -> None:
        if self.db.in_transaction:
            self.wrote(False)

    # -- commits -------------------------------------------------------------------------------

    def flush_now(self) -> None:
        """Commit at once, if writes wait and no event step runs: someone awaits a held result.

        The commit would happen when this loop turn ends anyway; a caller about to wait for it
        makes it now, so an awaited call costs no loop turn. Within a step, nothing is done (the
        step's writes are not complete).
        """
        if self.output.batch is not None and not self.steps:
            self._flush()

    def _flush(self) -> None:
        """Commit the implicit transaction (end of turn). Deferred while a transaction runs.

        A flush scheduled earlier stays scheduled (a flush of nothing is cheap), so a run of
        awaited calls leaves one pending callback in the loop, not one per call.
        """
        db = self.db
        if db.savepoint_depth:
            return  # transaction_ended() schedules the commit
        batch = self.output.take()
        alarm_dirty, self._alarm_dirty = self._alarm_dirty, False
        alarm = db.meta.get_alarm() if alarm_dirty else None
        try:
            if alarm_dirty:
                self.runtime.alarm_before_commit(self, alarm)
            db.commit()
        except BaseException as exc:
            error = commit_failed(exc)
            log.error("durable: commit failed for %r; the object is reset", self.id, exc_info=exc)
            if batch is not None:
                batch.fail(error)
            self.reset(error)
            return
        if alarm_dirty:
            self.runtime.alarm_after_commit(self, alarm)
        if batch is not None:
            batch.succeed()

    def _deliver(self, fut: asyncio.Future[Any], value: Any, is_error: bool) -> None:
        """Hand a result to its caller, through the output gate: at once, or when the commit succeeds.

        An event that runs inside one of this object's open transactions (a call back from the
        transaction's own call chain, A -> B -> A) is not held: its caller is part of the
        transaction, whose commit waits for it, as ``before_outgoing`` does for calls going out.
        """
        output = self.output
        if output.batch is None:  # nothing to wait for (the common case of a call that wrote nothing)
            if is_error:
                fut.set_exception(value)
            else:
                fut.set_result(value)
            return
        inside = bool(self.db.savepoint_depth) and self.state is not None and self.state.storage.inside_transaction()
        output.deliver(fut, value, is_error, hold=not inside)

    def before_outgoing(self) -> asyncio.Future[None] | None:
        """What a call this object makes now must wait for: the commit of its earlier writes.

        Taken when the call is made, so a commit that fails before the call goes out stops it
        (output gate). Inside a ``transaction()`` the commit waits for the closure, so waiting
        would deadlock; the call goes out and the transaction's writes commit when it ends.
        """
        if self.db.savepoint_depth:
            return None
        return self.output.outgoing_waiter()

    # -- events --------------------------------------------------------------------------------

    def invoke(
        self,
        kind: EventKind,
        name: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fut: asyncio.Future[Any] | None = None,
    ) -> asyncio.Future[Any]:
        """Deliver an event; the future (``fut``, or a new one) gets its result once it may leave."""
        runtime = self.runtime
        if runtime.closed:
            runtime.check_open()  # raises RuntimeClosedError
        limit = runtime.max_queued_calls
        if limit is not None and self.pending >= limit:
            raise OverloadedError("Durable Object is overloaded. Too many requests queued.")
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
        else:
            loop = fut.get_loop()
        self.pending += 1
        runtime.host_busy(self)
        # Eager start (durable._eager): the event runs right here, in a copy of the caller's
        # context, until it first suspends; only then does a task take it over. An event that
        # never suspends (most storage-only handlers) costs no loop turn.
        call = EventCall(fut)
        start_eagerly(self, call, self._event(call, kind, name, args, kwargs), loop, contextvars.copy_context())
        return fut

    def call_rpc(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], fut: asyncio.Future[Any]) -> None:
        """Deliver an RPC call made from outside any object; ``fut`` gets its outcome.

        The same as ``invoke("rpc", ...)``, on a shorter path for the common case (a live
        instance, an open gate, a plain method called before): the method's own coroutine is
        started here, with no gate or dispatch work around it. Anything else goes through ``invoke``.
        """
        entry = self._rpc.get(name)
        if entry is not None and (entry[2] is None or getattr(self.cls, name, None) is not entry[1]):
            entry = None  # not a plain function, or replaced on the class since (a test's monkeypatch)
        instance = self.instance
        gate = self.gate
        runtime = self.runtime
        if (
            entry is None
            or instance is None
            or not gate.idle
            or runtime.closed
            or runtime.max_queued_calls is not None
            or not runtime.armed
        ):
            self.invoke("rpc", name, args, kwargs, fut)
            return
        self.pending += 1
        call = EventCall(fut)
        event = self._rpc_event(call, self.gen, instance, entry[0], args, kwargs)
        start_eagerly(self, call, event, fut.get_loop(), contextvars.copy_context())

    async def _rpc_event(
        self,
        call: EventCall,
        gen: int,
        instance: DurableObject,
        func: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """``call_rpc``'s event: call the plain method ``func``, deliver its outcome."""
        current_host.set(self)
        self.calls.add(call)
        try:
            result = func(instance, *args, **kwargs)
            if type(result) is CoroutineType or inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            self._settle(call.fut, gen, None, exc)
        else:
            self._settle(call.fut, gen, result, None)
        finally:
            self._event_ended(call)

    def _settle(self, fut: asyncio.Future[Any], gen: int, value: Any, error: BaseException | None) -> None:
        """Deliver an RPC event's outcome: its result (copied), or the error it raised."""
        if error is None:
            try:
                value = clone(value)
                if gen != self.gen:
                    raise reset_copy(self._broken)
            except BaseException as exc:
                error = exc
            else:
                if not fut.done():
                    self._deliver(fut, value, False)  # held until the commit that step_done() makes
                return
        self._fail_event(fut, gen, error)

    def _fail_event(self, fut: asyncio.Future[Any], gen: int, error: BaseException) -> None:
        if fut.done():
            return
        if gen != self.gen:
            fut.set_exception(reset_copy(self._broken))
        elif isinstance(error, asyncio.CancelledError):
            fut.set_exception(ConnectionClosedError(_CLOSED_MESSAGE))
        else:
            self._deliver(fut, copy_remote_exception(error), True)  # errors are responses too

    def _event_ended(self, call: EventCall) -> None:
        self.calls.discard(call)
        self.pending -= 1
        if not (
            self.pending or self.background.tasks or self.gate.locked or self.db.savepoint_depth or self.pins
        ):  # not busy
            self.runtime.host_idle(self)

    def step_done(self) -> None:
        """An event's synchronous step ended (it returned or suspended): its turn is over.

        If it left writes uncommitted, the commit is scheduled for the end of this loop turn, so
        the writes of every event that runs meanwhile join the same batch (workerd commits on
        the next turn of the event loop). A caller that awaits a held result commits at once
        (``flush_now``): then no loop turn passes.
        """
        self.steps -= 1
        if self.steps or self.output.batch is None:
            return
        self.output.schedule_commit()

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
        state = State(self, gen)
        try:
            if self.db.history is not None:
                self._begin_session()
            instance = self.cls(state, self.runtime.env)
        except BaseException as exc:
            error = reset_copy(exc, keep_cause=False)
            log.warning("durable: constructor of %s raised; the object is reset", self.cls.__name__, exc_info=exc)
            self.reset(error)
            raise error from None
        if gen != self.gen:  # the constructor itself reset the object (abort)
            raise reset_copy(self._broken)
        self.state = state
        self.instance = instance

    async def _event(
        self, call: EventCall, kind: EventKind, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        current_host.set(self)
        fut = call.fut
        gen = self.gen
        try:
            gate = self.gate
            if self.instance is not None and gate.idle:
                gen = self.gen  # the common case: live instance, open gate, nobody queued
            else:
                gen = await self._enter()
            self.calls.add(call)
            result = self._dispatch(kind, name, args, kwargs)
            if type(result) is CoroutineType or inspect.isawaitable(result):
                result = await result
            if kind == "rpc" or kind == "get":
                result = clone(result)
            elif kind == "fetch":
                check_response(result)
            if gen != self.gen:
                raise reset_copy(self._broken)
            if not fut.done():
                self._deliver(fut, result, False)  # held until the commit that step_done() makes
        except BaseException as exc:
            self._fail_event(fut, gen, exc)
        finally:
            if kind == "alarm":
                self.alarm_running = False
            self._event_ended(call)

    def _begin_session(self) -> None:
        """A new instance is about to start: apply the restore the last one asked for (PITR).

        The alarm returns with the rest of the storage, so the scheduler learns of it as of a commit.
        """
        history = self.db.history
        if isinstance(history, History) and history.begin_session(self.db):
            alarm = self.db.meta.get_alarm()
            self.runtime.alarm_before_commit(self, alarm)
            self.runtime.alarm_after_commit(self, alarm)

    def _dispatch(self, kind: EventKind, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        instance = self.instance
        assert instance is not None
        if kind == "rpc":
            return call_method(self.cls, instance, name, args, kwargs)
        if kind == "get":
            return read_property(self.cls, instance, name)
        if kind == "fetch":
            return call_fetch(self.cls, instance, args[0])
        if kind == "alarm":
            self.alarm_running = True
            self.alarm_reset = False
            return self._alarm(instance, args[0])
        if kind == "run":
            return name(instance, self.state)
        raise AssertionError(kind)  # pragma: no cover

    async def _alarm(self, instance: DurableObject, info: AlarmInfo) -> None:
        result = instance.alarm(info)  # type: ignore[attr-defined]
        if inspect.isawaitable(result):
            await result
        self.alarm_running = False
        if not self.alarm_reset and self.db.meta.get_alarm() == info.scheduled_time:
            # Success clears the alarm, unless the handler set a new one.
            self.db.meta.set_alarm(None)
            self.alarm_written()
            self.wrote(True)

    # -- background work (durable._background) ------------------------------------------------

    def block_concurrency_while(self, callback: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """``ctx.block_concurrency_while``: run ``callback`` with the input gate closed."""
        return self.background.block_concurrency_while(callback)

    def wait_until(self, work: Awaitable[Any]) -> None:
        """``ctx.wait_until``: keep the object busy until ``work`` ends (its code only)."""
        _context.check_owner(self)
        self.background.wait_until(work)

    def abort(self, reason: str | None, gen: int) -> NoReturn:
        self.check_live(gen)
        error = ObjectAbortedError(
            reason if reason is not None else "Application called abort() to reset Durable Object."
        )
        self.reset(error)
        raise reset_copy(error)

    def drop_alarm(self, scheduled_ms: int) -> None:
        """Delete the stored alarm if it is still the one set for ``scheduled_ms`` (given up)."""
        if self.db.meta.get_alarm() == scheduled_ms:
            self.db.meta.set_alarm(None)
            self.alarm_written()
            self.wrote(False)

    # -- reset and eviction --------------------------------------------------------------------

    def reset(self, error: BaseException) -> None:
        """End this generation: fail its calls with ``error``, drop unflushed writes and the instance."""
        self._end_generation(error)
        self.runtime.hibernation.object_reset(self)  # its WebSockets are disconnected

    def _end_generation(self, error: BaseException) -> None:
        self.gen += 1
        self._broken = error
        old_gate, self.gate = self.gate, InputGate()
        old_gate.break_(error)
        self.db.rollback()
        self._alarm_dirty = False
        self.output.fail(error)
        self.instance = None
        self.state = None
        current = asyncio.current_task()
        calls, self.calls = self.calls, set()
        for call in calls:
            if not call.fut.done():
                call.fut.set_exception(reset_copy(error))
            if call.task is not None and call.task is not current:
                call.task.cancel()
        self.background.cancel_all()

    def evict(self) -> None:
        """Drop the instance but keep its storage: committed writes stay, the next event rebuilds.

        Pending writes are committed first; calls still running fail with Cloudflare's
        "Connection closed" error (``retryable = True``).
        """
        if self.db.in_transaction and not self.db.savepoint_depth:
            self._flush()
        self._end_generation(ConnectionClosedError(_CLOSED_MESSAGE))
        self.runtime.hibernation.object_evicted(self)  # hibernatable sockets stay
        if self.db.file is not None and not self.db.in_transaction:
            self.db.close()

    def close(self) -> None:
        """Commit what can be committed and close the database (runtime shutdown)."""
        if self.db.in_transaction and not self.db.savepoint_depth:
            self._flush()
        if self.instance is not None or self.calls or self.background.tasks:
            self._end_generation(ConnectionClosedError(_CLOSED_MESSAGE))
        self.db.close()
