"""Output gates: a result leaves an object only once the writes made before it are durable.

Cloudflare's rule (see "Durable Objects: Easy, Fast, Correct — Choose three"): while a write is not
yet confirmed, the object's outgoing messages (the results of its calls, the calls it makes to
other objects) are held; they are released when the write is durable, and if the write fails they
are never sent: the object is reset instead (workerd's "broken.outputGateBroken"). Writes made with
``allow_unconfirmed`` do not hold the gate.

An :class:`OutputGate` belongs to one object's host. It keeps the :class:`Batch` of writes made
since the last commit, counts the synchronous steps of the events running now, decides per result
whether it leaves now or waits for that batch, and makes the commit of a turn (:meth:`OutputGate.flush`):
the owner's database commits, the owner's alarm bookkeeping hears of it, and what waited is settled,
with the results or with copies of the reset error (:func:`reset_copy`); a failed commit resets the
owner (:class:`GateOwner`).
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import _get_running_loop
from collections.abc import Callable
from typing import Any, Protocol, cast

from ._exceptions import DurableError, ObjectAbortedError, ObjectResetError, copy_remote_exception

__all__ = ["AlarmCommits", "Batch", "GateDatabase", "GateOwner", "OutputGate", "commit_failed", "reset_copy", "resolve"]

log = logging.getLogger("durable")

_new = object.__new__
"""``object.__new__``, read once (see ``OutputGate.wrote_in_turn``)."""


def reset_copy(error: BaseException, *, keep_cause: bool = True) -> BaseException:
    """A copy of ``error`` as a caller of a reset object sees it, marked ``durable_object_reset``.

    Errors of the runtime (a :class:`durable.DurableError`) keep their own class and flags; any
    other error (the application's, from a constructor or a ``block_concurrency_while`` callback)
    gets ``durable_object_reset = True``, as workerd marks it. ``overloaded`` and ``retryable``
    travel. With ``keep_cause`` the copy keeps ``error.__cause__`` (the runtime's reset errors say
    what broke that way); pass False for an application's exception, whose cause stays behind.
    """
    copy = copy_remote_exception(error)
    if not isinstance(copy, DurableError):
        copy.durable_object_reset = True  # type: ignore[attr-defined]
    for flag in ("overloaded", "retryable"):
        if getattr(error, flag, False):
            setattr(copy, flag, True)
    if isinstance(error, ObjectAbortedError) and not error.retry_alarm and isinstance(copy, ObjectAbortedError):
        copy.retry_alarm = False  # the alarm scheduler sees a copy
    if keep_cause:
        copy.__cause__ = error.__cause__
    return copy


def commit_failed(exc: BaseException) -> ObjectResetError:
    """The reset error for a commit that raised ``exc`` (workerd's wording), caused by ``exc``."""
    if isinstance(exc, DurableError) and getattr(exc, "code", None) == "SQLITE_CONSTRAINT":
        # Deferred constraints violated at COMMIT (a SqlError from ObjectDatabase.commit):
        # workerd's wording for this reset.
        message = (
            "Durable Object was reset and rolled back to its last known good state because the "
            f"application left the database in a state where constraints were violated: {exc}"
        )
    else:
        text = str(exc)  # (an exception without a message, fail_next_commit(stub, ValueError): its name alone)
        failure = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        message = f"Durable Object reset because its storage commit failed: {failure}"
    error = ObjectResetError(message)
    error.__cause__ = exc
    return error


def resolve(fut: asyncio.Future[Any], value: Any, is_error: bool) -> None:
    """Settle ``fut`` with a result or an error, unless it is settled already."""
    if fut.done():
        return
    try:
        if is_error:
            fut.set_exception(value)
        else:
            fut.set_result(value)
    except RuntimeError:
        pass  # made on an event loop that is closed now: nobody can be waiting for it


class Batch:
    """Writes since the last commit, and what waits for them to be durable.

    ``held`` are results the output gate holds: the commit delivers them straight to their callers'
    futures (no task wakes up just to pass a result on). ``waiters`` are futures of code that
    awaits durability (``sync()``, calls to other objects); each has its own, so a waiter that is
    cancelled never disturbs the others. ``gated`` is False while every write of the batch was made
    with ``allow_unconfirmed``: then nothing is held.
    """

    __slots__ = ("gated", "held", "waiters")

    def __init__(self) -> None:
        self.gated = False
        self.held: list[tuple[asyncio.Future[Any], Any, bool]] = []
        # The shared empty tuple until a waiter comes (rare: sync(), calls out): a list less per
        # commit, that is per sequential call that wrote (tenth pass, docs/performance.md).
        self.waiters: list[asyncio.Future[None]] | tuple[()] = ()

    def waiter(self) -> asyncio.Future[None]:
        """A future that settles when this batch is durable (with the reset error if it fails)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.waiters:
            self.waiters = [fut]
        else:
            self.waiters.append(fut)
        return fut

    def succeed(self) -> None:
        """The batch is durable: release what it held."""
        held = self.held
        if len(held) > 1:
            _release_together(held)  # many calls shared this commit: their callbacks in one loop callback
        else:
            for fut, value, is_error in held:
                # resolve(), inlined: one held result per awaited call that wrote (docs/performance.md).
                if _FUTURE_DONE(fut):
                    continue
                try:
                    if is_error:
                        fut.set_exception(value)
                    else:
                        if type(fut) in PLAIN_FUTURES:
                            _FUTURE_SET_RESULT(fut, value)
                        else:
                            fut.set_result(value)
                except RuntimeError:
                    pass  # made on an event loop that is closed now: nobody can be waiting for it
        for waiter in self.waiters:
            resolve(waiter, None, False)

    def fail(self, error: BaseException) -> None:
        """The batch was lost: every held result and waiter gets a copy of the reset ``error``."""
        for fut, _, _ in self.held:
            resolve(fut, reset_copy(error), True)
        for waiter in self.waiters:
            resolve(waiter, reset_copy(error), True)
            if waiter.done() and not waiter.cancelled():
                # Seen: its awaiter (if still there) raises it; one cancelled by the reset never
                # reads it, and asyncio would log "Future exception was never retrieved".
                waiter.exception()


_FUTURE_SET_RESULT = asyncio.Future.set_result
PLAIN_FUTURES: set[type] = {asyncio.Future}
"""The future types whose ``set_result`` is asyncio's own (``_stub`` adds its promise types, not the
redirected fetch's): settled through ``_FUTURE_SET_RESULT``, without reading the promise's
attribute (see ``_FUTURE_DONE``)."""
_FUTURE_DONE = asyncio.Future.done
_FUTURE_GET_LOOP = asyncio.Future.get_loop
_FUTURE_REMOVE_DONE_CALLBACK = asyncio.Future.remove_done_callback
"""asyncio.Future's own methods, called as functions on the calls' promises: an ``RpcPromise`` has
a ``__getattr__`` (promise pipelining), which on CPython 3.11 made each ``fut.done()`` a bound
method made through that hook, about 490 instructions more per read (callgrind)."""

_Taken = list[tuple[asyncio.Future[Any], list[tuple[Callable[[Any], object], Any]]]]


def _release_together(held: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    """Settle the held results of a commit that many calls shared, as ``resolve()`` would one by one,
    but with the done callbacks of their futures run by one loop callback instead of one each.

    ``Future.set_result`` schedules each done callback with ``loop.call_soon``: a ``Handle`` made and
    run by asyncio's Python per callback, about 5,600 of the 63,400 instructions of each of 1000
    gathered increments (callgrind, twelfth pass, docs/performance.md). Here the callbacks of a
    plain future (asyncio's ``set_result``, on the running loop) are taken off it before it
    settles, and run in the same order, each in its own context, by one ``_run_callbacks``
    callback: in the same loop turn as the handles would have run, since every one of them would
    have been queued at this point too. A future settled another way (an error, a class of its own,
    another loop, the loop in debug mode) is settled by ``resolve()`` after the callbacks taken
    before it are queued, so the order of all callbacks stays that of the held results.
    """
    loop = _get_running_loop()
    if loop is None or loop.get_debug():
        for fut, value, is_error in held:
            resolve(fut, value, is_error)
        return
    taken: _Taken = []
    for fut, value, is_error in held:
        if _FUTURE_DONE(fut):
            continue
        if (
            not is_error
            and type(fut).set_result is _FUTURE_SET_RESULT
            and _FUTURE_GET_LOOP(fut) is loop
            and (callbacks := fut._callbacks)
        ):
            # A copy: with its first callback removed before, asyncio's C future hands out its own
            # list of the others, which remove_done_callback rewrites in place (one would run
            # twice, the next be lost: tests/test_fast_paths.py).
            callbacks = list(callbacks)
            for callback, _ in callbacks:
                _FUTURE_REMOVE_DONE_CALLBACK(fut, callback)
            _FUTURE_SET_RESULT(fut, value)  # (no callback left to schedule)
            taken.append((fut, callbacks))
            continue
        if taken:
            loop.call_soon(_run_callbacks, loop, taken)
            taken = []
        resolve(fut, value, is_error)
    if taken:
        loop.call_soon(_run_callbacks, loop, taken)


def _run_callbacks(loop: asyncio.AbstractEventLoop, taken: _Taken) -> None:
    """Run the done callbacks ``_release_together`` took, in order, as their handles would have run:
    each in its context, an exception going to the loop's exception handler."""
    for index, (fut, callbacks) in enumerate(taken):
        for position, (callback, context) in enumerate(callbacks):
            try:
                context.run(callback, fut)
            except (SystemExit, KeyboardInterrupt):
                # As out of a handle: the loop stops with it; the callbacks not run yet run on
                # its next turn (their handles would have stayed queued).
                rest = [(fut, callbacks[position + 1 :])] if position + 1 < len(callbacks) else []
                if rest or index + 1 < len(taken):
                    loop.call_soon(_run_callbacks, loop, rest + taken[index + 1 :])
                raise
            except BaseException as exc:
                handle = asyncio.Handle(callback, (fut,), loop, context)
                loop.call_exception_handler(
                    {"message": f"Exception in callback {callback!r}", "exception": exc, "handle": handle}
                )


class GateDatabase(Protocol):
    """What the gate needs of its owner's database (``durable._sqlite.ObjectDatabase``)."""

    savepoint_depth: int
    """Open ``transaction()`` savepoints: while one is open, the commit waits for it to end."""

    @property
    def in_transaction(self) -> bool:
        """Whether writes wait in the implicit transaction."""
        ...

    def commit(self) -> None:
        """Commit the implicit transaction; raises if the commit fails (the batch is then lost)."""
        ...


class AlarmCommits(Protocol):
    """The alarm bookkeeping a commit reports to (``durable._alarm_state.AlarmState``)."""

    changed: bool
    """Whether the alarm was written since the last commit."""

    def take_change(self) -> bool:
        """Whether the alarm changed since the last commit (and so must be announced with this one)."""
        ...

    def before_commit(self) -> None:
        """The changed alarm is about to commit."""
        ...

    def after_commit(self, unwaited: bool = False) -> None:
        """The changed alarm committed; ``unwaited``: no result or waiter waits for this commit."""
        ...


class GateOwner(Protocol):
    """The object an output gate belongs to (implemented by ``durable._host.ObjectHost``)."""

    id: Any

    @property
    def db(self) -> GateDatabase:
        """The object's database: what the gate commits."""
        ...

    @property
    def alarms(self) -> AlarmCommits:
        """The object's alarm bookkeeping, told of each commit."""
        ...

    def reset(self, error: BaseException) -> None:
        """End the object's generation: its commit failed with ``error``."""
        ...

    def inside_own_transaction(self) -> bool:
        """Whether the running event runs inside one of the object's own open ``transaction()`` closures."""
        ...


class _Savepoints(Protocol):
    savepoint_depth: int

    def rollback_to(self, name: str | None = None) -> None: ...


class _SavepointOwner(Protocol):
    def savepoint_ended(self, kept: bool) -> None: ...


def _leave_savepoints(owner: GateOwner, db: GateDatabase) -> bool:
    """Roll back the open ``transaction()`` savepoints before a reset; whether the writes made before
    them may commit (:meth:`OutputGate.keep_ended_turns`).

    workerd keeps them when the closure resets (measured with miniflare 4.20260426, SQLite- and
    KV-backed: ``put(); await transaction(async txn => { await txn.put(); abort() })`` keeps the
    first put only; the closure starts after the calling turn ended). While a transaction is open
    nothing else writes outside it. Kept nothing (docs/differences.md): a reset by other code (one
    already running, which workerd would not run). The alarm bookkeeping hears of each rollback (an
    alarm set in the closure is dropped; workerd too, measured as above).
    """
    if not owner.inside_own_transaction():
        return False
    sp = cast("_Savepoints", db)  # (the owner's ObjectDatabase and ObjectHost: only they have savepoints)
    try:
        while sp.savepoint_depth:  # innermost first: each call ends one level
            sp.rollback_to()  # (the innermost)
            cast("_SavepointOwner", owner).savepoint_ended(False)
    except BaseException as exc:  # (the reset's rollback drops everything, as before)
        log.error("durable: rollback before the reset failed for %r", owner.id, exc_info=exc)
        return False
    return True


class _NoDatabase:
    """The database of a gate without owner (unit tests give it a plain commit callable)."""

    savepoint_depth = 0
    in_transaction = False

    def commit(self) -> None:
        raise AssertionError("an output gate without owner commits through the callable it was given")


class OutputGate:
    """The output gate of one object: its uncommitted batch, its event steps and the commit of a turn.

    At the end of a loop turn in which writes were made (:meth:`schedule_commit`), the gate calls
    ``commit``: by default :meth:`flush`, which commits the ``owner``'s database (workerd commits on
    the next turn of the event loop, so the writes of every event that runs in that turn share one
    commit). A gate made with a ``commit`` callable and no owner (the unit tests) calls only that.
    """

    __slots__ = (
        "_commit",
        "_contended",
        "_db",
        "_flusher",
        "_handle",
        "_loose",
        "_owner",
        "batch",
        "scheduled_on",
        "steps",
        "turn_wrote",
    )

    def __init__(self, commit: Callable[[], None] | None = None, *, owner: GateOwner | None = None) -> None:
        if commit is None and owner is None:
            raise TypeError("OutputGate() takes a commit callable or an owner")
        self._owner = owner
        self._db: GateDatabase = owner.db if owner is not None else _NoDatabase()
        self._commit = commit if commit is not None else self.flush
        self._handle: asyncio.Handle | None = None
        self.scheduled_on: asyncio.AbstractEventLoop | None = None
        """The loop on which a commit is scheduled (:meth:`schedule_commit`), None when none is.
        Public for ``_host``'s copies of :meth:`step_done`'s end (see there)."""
        self._flusher: object = None
        """The task that last committed early (``flush_for``) since the scheduled commit last ran."""
        self._contended = False
        """Whether callers waited for the scheduled commit in this turn, or shared the last one."""
        self.batch: Batch | None = None
        """The writes since the last commit (None: nothing to commit)."""
        self.steps = 0
        """Synchronous steps of events running right now (nested when events call back in)."""
        self.turn_wrote = False
        """Whether the turn running now wrote: a write in an event's step since the last step of
        an event ended with no other step running (:meth:`keep_ended_turns`)."""
        self._loose: set[object] | None = None
        """The tasks that wrote outside any counted step since the last commit (background work,
        ``block_concurrency_while`` callbacks, the later steps of an eager task on 3.12+): a
        task's uncommitted writes are of its running step, as its earlier steps' commit ran
        before it resumed (:meth:`keep_ended_turns`)."""

    @property
    def pending(self) -> bool:
        """Whether writes wait for a commit."""
        return self.batch is not None

    def wrote(self, gated: bool) -> None:
        """A write was made; ``gated`` unless it was made with ``allow_unconfirmed``."""
        batch = self.batch
        if batch is None:
            batch = self.batch = Batch()
        if gated:
            batch.gated = True
        if self.steps:
            self.turn_wrote = True
        else:
            self._wrote_loose()

    def _wrote_loose(self) -> None:
        """A write outside any counted step: note its task (:meth:`keep_ended_turns`)."""
        loop = _get_running_loop()
        task = None if loop is None else asyncio.current_task(loop)
        if self._loose is None:
            self._loose = {task}
        else:
            self._loose.add(task)

    def wrote_in_turn(self, gated: bool) -> None:
        """A write of the owner's code: recorded, and committed at the end of the turn if no event step runs.

        A write outside any event step (a background task, a ``block_concurrency_while``
        callback, test code) commits once this turn ends; inside a step, :meth:`step_done` decides.
        """
        batch = self.batch  # wrote(), inlined: this runs for every write (docs/performance.md)
        if batch is None:
            # Batch() without its Python __init__ (type_call, slot_tp_init, a frame): made and filled
            # here as __init__ does, once per commit: seq-increment about -270, seq-fetch about -200
            # instructions (callgrind, nineteenth pass; kept in the twentieth, docs/performance.md).
            # Keep the two alike (tests/test_fast_paths.py compares them).
            batch = self.batch = _new(Batch)
            batch.gated = False
            batch.held = []
            batch.waiters = ()
        if gated:
            batch.gated = True
        if self.steps:
            self.turn_wrote = True
        else:
            self._wrote_loose()
            self.schedule_commit()

    def step_done(self) -> None:
        """An event's synchronous step ended (it returned or suspended): its turn is over.

        It ends the step counted when it began (``steps += 1``). If the step left writes uncommitted, the commit is scheduled for the end of this loop turn,
        so the writes of every event that runs meanwhile join the same batch (workerd commits on
        the next turn of the event loop). A caller that awaits a held result commits at once
        (:meth:`flush_now`): then no loop turn passes.
        """
        self.steps -= 1
        if self.steps:
            return
        self.turn_wrote = False  # uncommitted now: of turns that ended (keep_ended_turns); no batch too, after a reset
        if self.batch is None:
            return
        if (on := self.scheduled_on) is not None and on is _get_running_loop():
            return  # a commit is already scheduled on this loop (schedule_commit's test, without the call)
        self.schedule_commit()

    def take(self) -> Batch | None:
        """The batch to commit now; the gate starts a new one (empty until the next write)."""
        batch, self.batch = self.batch, None
        self._loose = None
        return batch

    def fail(self, error: BaseException) -> None:
        """The uncommitted writes are dropped (reset): what waited for them gets ``error``."""
        batch, self.batch = self.batch, None
        self._loose = None
        if batch is not None:
            batch.fail(error)

    def keep_ended_turns(self) -> None:
        """Commit the writes of turns that ended, as a reset is about to drop what is uncommitted
        (:func:`_keep_ended_turns`, a function to keep this class under 300 lines)."""
        _keep_ended_turns(self, self._owner, self._db, self._loose)

    def schedule_commit(self) -> None:
        """Commit when this loop turn ends; a commit already scheduled on this loop will do."""
        loop = asyncio.get_running_loop()
        if self.scheduled_on is not loop:  # (None: nothing scheduled)
            # (A commit left on another loop, one that stopped before running it, never runs.)
            self._handle = loop.call_soon(self._scheduled)
            self.scheduled_on = loop

    def _scheduled(self) -> None:
        self._handle = None
        self.scheduled_on = None
        self._flusher = None
        self._contended = self.batch is not None and len(self.batch.held) > 1
        self._commit()

    def flush_for(self, task: object) -> None:
        """Commit at once for ``task``, about to wait for a held result, unless others await in this turn.

        A caller that awaits its result commits at once (:meth:`flush_now`), so a run of awaited
        calls costs no loop turn each. But when another task already committed early in this
        loop turn (the commit that :meth:`step_done` scheduled has not run yet), several callers
        are waiting on the object in the same turn (concurrent requests): the commit is left to
        the scheduled one, at the end of the turn, and their writes share it, as workerd's do.
        The served counter at 16 and 64 connections went from about 0.6 to about 1.0 of the
        bare ASGI floor with this (``benchmarks/bench_http_floor.py``, docs/performance.md).
        """
        if self.batch is None or self.steps:
            return
        flusher = self._flusher
        if (
            flusher is not task  # (a task awaiting call after call commits at once, every time)
            and (self._contended or flusher is not None)
            and (on := self.scheduled_on) is not None
            and on is _get_running_loop()
        ):
            self._contended = True
            return  # the scheduled commit, at the end of this turn, commits for them all
        self._flusher = task
        self._commit()

    def flush_now(self) -> None:
        """Commit at once, if writes wait and no event step runs: someone awaits a held result.

        The commit would happen when this loop turn ends anyway; a caller about to wait for it
        makes it now, so an awaited call costs no loop turn. Within a step, nothing is done (the
        step's writes are not complete). A commit scheduled earlier stays scheduled (a commit of
        nothing is cheap), so a run of awaited calls leaves one pending callback in the loop.
        """
        if self.batch is not None and not self.steps:
            self._commit()

    def flush(self) -> None:
        """Commit the owner's implicit transaction (end of turn); deferred while a transaction runs.

        On success the batch's held results and waiters are released; on failure they get copies
        of the reset error (:func:`commit_failed`) and the owner is reset ("broken.outputGateBroken").
        """
        owner = self._owner
        assert owner is not None, "an output gate without owner cannot flush"
        db = self._db
        if db.savepoint_depth:
            return  # the transaction's end (ObjectHost.transaction_ended) schedules the commit
        batch, self.batch = self.batch, None
        self._loose = None
        alarms = owner.alarms
        alarm_changed = alarms.changed and alarms.take_change()
        try:
            if alarm_changed:
                alarms.before_commit()
            db.commit()
        except BaseException as exc:
            error = commit_failed(exc)
            log.error("durable: commit failed for %r; the object is reset", owner.id, exc_info=exc)
            if batch is not None:
                batch.fail(error)
            owner.reset(error)
            return
        if alarm_changed:
            # (Results held by this commit are released only after the scheduler heard of it.)
            alarms.after_commit(batch is None or not (batch.held or batch.waiters))
        if batch is None:
            return
        held = batch.held
        if len(held) == 1 and not batch.waiters:
            # Batch.succeed() for the one held result of an awaited call, inlined: a frame less per
            # sequential call that wrote, seq-increment 70,784 -> 69,823 instructions (callgrind,
            # thirteenth pass, docs/performance.md). Keep the two alike.
            fut, value, is_error = held[0]
            if not _FUTURE_DONE(fut):  # (see _FUTURE_DONE)
                try:
                    if is_error:
                        fut.set_exception(value)
                    else:
                        if type(fut) in PLAIN_FUTURES:
                            _FUTURE_SET_RESULT(fut, value)
                        else:
                            fut.set_result(value)
                except RuntimeError:
                    pass  # made on an event loop that is closed now: nobody can be waiting for it
        else:
            batch.succeed()

    def flush_pending(self) -> None:
        """Commit what waits now, unless a ``transaction()`` is open (eviction, shutdown)."""
        if self._db.in_transaction and not self._db.savepoint_depth:
            self.flush()

    def deliver(self, fut: asyncio.Future[Any], value: Any, is_error: bool, *, hold: bool = True) -> None:
        """Hand a result to its caller: at once, or when the batch it follows is durable.

        With ``hold=False`` the result leaves at once. With an owner, an event that runs inside one
        of the owner's open transactions (a call back from the transaction's own call chain,
        A -> B -> A) is not held either: its caller is part of the transaction, whose commit waits
        for it, as :meth:`outgoing_waiter` does for calls going out.
        """
        batch = self.batch
        if (
            hold
            and batch is not None
            and batch.gated
            and not (self._db.savepoint_depth and self._owner is not None and self._owner.inside_own_transaction())
        ):
            batch.held.append((fut, value, is_error))
        elif is_error:
            fut.set_exception(value)
        else:
            fut.set_result(value)

    def outgoing_waiter(self) -> asyncio.Future[None] | None:
        """What a call the object makes now must wait for: the commit of its earlier writes, if any.

        Taken when the call is made, so a commit that fails before the call goes out stops it.
        Inside a ``transaction()`` the commit waits for the closure, so waiting would deadlock;
        the call goes out and the transaction's writes commit when it ends.
        """
        batch = self.batch
        if batch is None or not batch.gated or self._db.savepoint_depth:
            return None
        return batch.waiter()

    def commit_waiter(self) -> asyncio.Future[None] | None:
        """A future settled when the current batch is durable; None if nothing waits for a commit."""
        batch = self.batch
        return None if batch is None else batch.waiter()


def _keep_ended_turns(gate: OutputGate, owner: GateOwner | None, db: GateDatabase, loose: set[object] | None) -> None:
    """``gate.keep_ended_turns()``: commit the writes of turns that ended, as a reset is about to
    drop what is uncommitted.

    workerd commits a turn's writes on the next turn of its event loop, before it runs the
    next event; a reset (``ctx.abort()``) by a later event does not undo them, but the results
    they held still fail with the reset error (miniflare 4.20260426, both backends: of
    ``put()`` in one call and ``abort()`` in a second one sent at the same time, both callers
    get the abort error and the write is kept). Here events that run in the same loop turn
    share one commit, still pending when the later one resets: it is made now, unless the
    turn running now wrote too (its writes and the earlier ones share the implicit transaction,
    and workerd drops those of the resetting turn: all are dropped, docs/differences.md; with a
    ``transaction()`` open, :func:`_leave_savepoints`). The batch stays, for :meth:`OutputGate.fail`.
    """
    if gate.turn_wrote or gate.batch is None or owner is None or not db.in_transaction:
        return
    if (opened := db.savepoint_depth) and not _leave_savepoints(owner, db):
        return
    if loose is not None and not opened:  # (the closure's writes were in its savepoints)
        loop = _get_running_loop()
        if (None if loop is None else asyncio.current_task(loop)) in loose:
            return  # the task resetting wrote in this step: its writes are not to be kept
    alarms = owner.alarms
    alarm_changed = alarms.changed and alarms.take_change()
    try:
        if alarm_changed:
            alarms.before_commit()
        db.commit()
    except BaseException as exc:  # (rolled back: the reset drops them, as before)
        log.error("durable: commit before the reset failed for %r", owner.id, exc_info=exc)
        return
    if alarm_changed:
        alarms.after_commit(True)  # (nothing waits for this commit: its results fail with the reset)
