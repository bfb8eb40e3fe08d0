"""The alarm scheduler of a runtime: timers, delivery, retries, and the index that survives restarts.

Cloudflare's alarm rules (docs/alarms.md), as implemented here:

- An object has at most one alarm; the committed value in its ``_cf_METADATA`` is the truth. The
  scheduler learns of it after each commit that touched it (``after_commit``), and keeps one
  timer per object. A write that fails to commit never reaches the scheduler, so a ``set_alarm``
  followed by a failed commit leaves no alarm (the output gate's rule for every write).
- When the timer fires, the alarm is delivered as an event (through the input gate, building the
  instance if needed) with an :class:`AlarmInfo`. Success clears the alarm unless the handler set
  a new one. An exception (``ctx.abort()`` included, unless it passed ``retry_alarm=False``) is
  retried after 2 s, 4 s, 8 s, 16 s, 32 s,
  64 s (no jitter, so tests can predict it; workerd adds up to 25 %); after the 6th retry fails
  the alarm is deleted (7 attempts in all). An attempt that failed before its handler started
  (the constructor raised, or the object was reset while the alarm waited at its input gate) is
  retried with the same backoff but does not count, as in workerd: the next attempt gets the
  same ``retry_count``, and such failures alone never give the alarm up (the delay stops
  growing at 1024 s, workerd's cap). An alarm set while the handler runs replaces the retry;
  one deleted leaves it pending, and an alarm set before its time runs as the retry. A call's
  deletion drops a pending retry once its commit is confirmed (at once if a result waited for it
  or a ``transaction()`` committed it, else a loop iteration later, or when a ``block_concurrency_while()`` callback or a
  ``transaction()`` closure starts first), unless the alarm was written again by then
  (``_defer_deletion``).
- At most one ``alarm()`` runs per object at a time (Cloudflare documents this): an alarm that
  falls due while the handler runs, typically one the handler set in the past, waits and runs
  when the handler ends.
- Persisted runtimes keep an index of alarms in the runtime's metadata database, written *before*
  the object's commit when an alarm is set and *after* it when one is cleared, so it always lists a
  superset of the real alarms. When a namespace is registered, each of its entries is checked
  against the object's own storage, and alarms that fell due while the runtime was down run at
  once. The retry count is not persisted: an alarm that was between retries starts again at
  attempt 0 after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Coroutine
from contextvars import Context, ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any

from ._clock import MockClock, enter_timer_work
from ._context import running_host
from ._eager import create_task_later, task_started
from ._exceptions import DataCorruptionError, DurableError, ObjectAbortedError
from ._object import AlarmInfo
from ._util import running_loop

if TYPE_CHECKING:
    from ._alarm_state import AlarmState
    from ._clock import Clock, TimerHandle
    from ._directory import StorageDirectory
    from ._host import ObjectHost

__all__ = ["MAX_RETRIES", "AlarmScheduler", "retry_delay"]

log = logging.getLogger("durable")

MAX_RETRIES = 6
"""Retries after the first attempt before an alarm is given up (Cloudflare documents 6)."""


def retry_delay(retry_count: int) -> float:
    """Seconds to wait before retry number ``retry_count`` (1-based): 2, 4, 8, 16, 32, 64."""
    if retry_count < 1:
        raise ValueError(f"retry_count starts at 1, not {retry_count!r}")
    return float(2 << (retry_count - 1))


Key = tuple[str, str]

_MAX_BACKOFF = 9
"""workerd's cap on the backoff exponent of retries that do not count: at most 2 s << 9 = 1024 s."""

RUN_ALARM_WAIT_LIMIT = 1000
"""How many runs in a row of one object's alarm ``run_alarm()`` waits for before it raises (a
handler that sets its alarm to now again and again never ends: MockClock.SAME_INSTANT_LIMIT)."""

DUE_ALARM_TURNS = 32
"""Loop turns an alarm already due when armed waits before its event starts (``_alarm_timer``): the
stand-in for workerd's loop, which fires a timer only once no other work is ready. A call's
``transaction()`` or ``block_concurrency_while()`` takes two; a loop with nothing else to do runs
them at once."""

_delivering: ContextVar[frozenset[Key]] = ContextVar("durable_delivering_alarms", default=frozenset())
"""The objects whose ``alarm()`` the current call chain descends from (calls inherit the context):
``run_alarm()`` from there would wait for a handler that waits for it."""


class _Entry:
    """The alarm of one object as the scheduler tracks it: its time, its attempt, its timer."""

    __slots__ = (
        "cancelled",
        "deferred",
        "due_ms",
        "failures",
        "forgotten",
        "handle",
        "moved_to",
        "retry_count",
        "scheduled_ms",
    )

    def __init__(self, scheduled_ms: int, retry_count: int = 0) -> None:
        self.scheduled_ms = scheduled_ms
        self.retry_count = retry_count  # failed attempts that count (their handler started)
        self.failures = retry_count  # failed attempts in a row, counted or not: the backoff
        self.handle: TimerHandle | None = None
        self.due_ms = scheduled_ms  # when its timer fires (a retry's time once it failed)
        self.moved_to: int | None = None  # the alarm set while its retry was pending
        self.deferred = False  # fell due while the object's alarm() was running
        self.cancelled = False  # its handler did not run: the stored alarm had changed (AlarmState.run)
        self.forgotten = False  # wiped by Runtime.reset while its handler ran: its end is no failure

    def failed(self, *, counted: bool) -> bool:
        """Count a failed attempt; ``False`` if it was the last one (the 6th counted retry failed).

        ``counted``: the attempt's handler started. One that failed before (the constructor
        raised, the object was reset while the alarm waited at the input gate) does not count,
        as in workerd (measured with miniflare 4, 2026-04-07: after two constructor failures,
        and after a reset at the gate, the handler ran with retryCount 0), but its retry waits
        as long (2 s, then 4 s: measured), up to 1024 s (workerd's cap on that exponent, 9).
        """
        if counted:
            if self.retry_count >= MAX_RETRIES:
                return False
            self.retry_count += 1
        self.failures += 1
        return True


def _log_failure(host: ObjectHost, attempt: int, exc: BaseException) -> None:
    log.warning("durable: alarm of %r failed (attempt %d): %s: %s", host.id, attempt, type(exc).__name__, exc)


def _delivery_task(delivery: Coroutine[Any, Any, BaseException | None]) -> asyncio.Task[BaseException | None]:
    """The task of an alarm's delivery, in a context of its own.

    The timer's callback runs in a copy of the context that armed it (the commit of the alarm's
    write), which inside a ``block_concurrency_while`` callback carries its gate lock
    (``held_locks``): the alarm then passed the closed gate. workerd runs it once the callback
    ends (miniflare 4, 2026-04-07, tests/test_gates_cross.py).
    """
    return Context().run(create_task_later, asyncio.get_running_loop(), delivery)


def _defer_deletion(scheduler: AlarmScheduler, key: Key, entry: _Entry, alarms: AlarmState) -> bool:
    """Drop the pending retry (``entry``) of ``key``, whose alarm a commit nothing waited for
    deleted, only once that commit is confirmed: one loop iteration later
    (:func:`_deletion_confirmed`). ``False`` if no loop runs: the caller drops it at once.

    workerd tells its alarm scheduler of a deletion (or a move to a later time) only once the
    commit is confirmed, and not at all if the alarm was written again meanwhile (its "alarm
    version" changed): then the later write reaches the scheduler alone, and an alarm set again
    moves the pending retry instead of replacing it. Measured with miniflare 4.20260426, SQLite-
    and KV-backed alike: a call that deletes the alarm and sets it to a past time with nothing
    between but reads or the end of a ``blockConcurrencyWhile()`` callback that deleted it keeps
    the retry (retryCount 1, at its time); a ``setTimeout(0)``, ``sync()``, the start of a
    callback, a ``transaction()`` in the callback or another event between them drop it, and the
    set alarm runs at once as a first attempt (tests/test_alarm_fuzz_found.py). A commit a result or a waiter waited for is confirmed at
    once: its waiters are released only after the scheduler heard of it, as in workerd. So is one
    a ``block_concurrency_while()`` callback or a ``transaction()`` closure starting meanwhile
    finds pending (``AlarmState.section_started``): in workerd both wait for the object's lock,
    which the confirmation comes before (miniflare 4.20260426, a probe run alone: a delete, then
    such a callback or closure that sets a past time, dropped the retry every run; ``run_alarm.py
    120 --seed 9611 --resets``, sequence 28, and ``--seed 9612 --resets --loop uvloop``, 77).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    confirm = partial(_deletion_confirmed, scheduler, key, entry, alarms, alarms.writes)
    alarms.unconfirmed.append(confirm)
    loop.call_soon(_confirm_later, alarms, confirm)
    return True


def _confirm_later(alarms: AlarmState, confirm: Callable[[], None]) -> None:
    """A loop iteration after the commit: confirm its deletion, unless a section's start did."""
    if confirm in alarms.unconfirmed:
        alarms.unconfirmed.remove(confirm)
        confirm()


def _deletion_confirmed(scheduler: AlarmScheduler, key: Key, entry: _Entry, alarms: AlarmState, writes: int) -> None:
    """The commit that deleted the alarm of ``key`` while ``entry``'s retry was pending is
    confirmed: drop the retry, unless the object wrote its alarm again since (its own commit
    announces that), or ``entry`` is no longer waiting (its timer fired: the handler's run finds
    the deletion, ``AlarmState.run``; it was rescheduled, forgotten by a reset or stopped)."""
    if alarms.settled_writes() == writes and entry.handle is not None and not entry.forgotten:
        scheduler.schedule(key, None)


def _defer_set(scheduler: AlarmScheduler, key: Key, when_ms: int, running: _Entry, alarms: AlarmState) -> bool:
    """Arm the alarm ``when_ms`` that a commit nothing waited for set while the handler of
    ``running`` runs only once that commit is confirmed, one loop iteration later, and not at all
    if the alarm was written again by then (:func:`_set_confirmed`). ``False`` if the handler has
    not started or no loop runs.

    The same rule as :func:`_defer_deletion`, for a set: measured with miniflare 4.20260426, a
    handler that sets its alarm (+45 ms) in a ``blockConcurrencyWhile()`` callback, then
    deletes it and calls ``ctx.abort()`` (the reset loses the delete, the set is stored): the
    stored alarm ran at the retry's time as the retry (retryCount 1, the old scheduledTime), every
    run; set 3 s ahead, past the retry's time, it ran at its own time as a first attempt; with no
    delete (or the delete committed) the set replaced the retry. Found by ``run_alarm.py 120
    --seed 9512 --resets`` (sequence 37). Only once the handler has started: a set committed while
    its event waits at the input gate is armed at once, as before (``run_alarm.py 120 --seed 9513
    --resets --loop uvloop``, sequence 48, agreed with workerd only so)."""
    if not alarms.running:
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    loop.call_soon(_set_confirmed, scheduler, key, when_ms, running, alarms, alarms.writes)
    return True


def _set_confirmed(
    scheduler: AlarmScheduler, key: Key, when_ms: int, running: _Entry, alarms: AlarmState, writes: int
) -> None:
    """The commit that set the alarm of ``key`` to ``when_ms`` while ``running``'s handler ran is
    confirmed: arm it, unless the object wrote its alarm again since (that write's own commit
    announces it; if a reset dropped that write, the pending retry finds the stored alarm when
    it falls due), or the runtime forgot its alarms meanwhile (a stopped one arms nothing)."""
    if alarms.settled_writes() == writes and not running.forgotten:
        scheduler.schedule(key, when_ms)


def _alarm_timer(clock: Clock, at: float, fire: Callable[[], None], key: Key) -> TimerHandle:
    """The timer of the alarm of ``key``, due at ``at``, which calls ``fire`` (``RuntimeError`` if
    no loop runs); for an alarm already due, :data:`DUE_ALARM_TURNS` loop turns later.

    workerd's event loop looks at its timers only once no other work is ready, so an alarm set to
    a past time while a call runs on without waiting for I/O starts after that work: a second set
    (in a second ``blockConcurrencyWhile()`` callback, or after one) replaces the alarm before its
    event exists, and the new alarm runs, then its retry if it fails (measured with miniflare
    4.20260426, every run: ``run_alarm.py 120 --seed 9513 --resets --loop uvloop``, sequence 48;
    a call that sets a past time, runs a callback that reads, and sets a past time again, then a
    failing handler, retried with retryCount 1: ``--seed 9643``, sequence 11). uvloop runs a timer
    due at once before the callbacks queued meanwhile, asyncio's loop after them but in the same
    turn, before the call's next steps: either started the first set's event, which waited at the
    gate, and ran the second set as a second first attempt. The extra turns, on every loop (a
    user's own loop included), let those steps run first. One turn was enough for a callback, not
    for two ``transaction()`` calls (two turns each, the task's start and its end): a call that
    sets a past time, runs a ``transaction()`` that sets the alarm and rolls back, then one that
    sets it to now, and a failing handler: workerd (miniflare 4.20260426, every run) ran the moved
    alarm, then its retry (retryCount 1), durable the first set's event (which waited at the
    gate), then the moved alarm as a second first attempt (``run_alarm.py 99 --seed 9779
    --resets``, sequence 98; tests/test_alarm_order.py). A loop with nothing else to do runs the
    turns at once. A timer due later is left alone: one
    that falls due with another (a call's ``asyncio.sleep`` a little later) must keep its place
    before it (``--seed 9616``, sequence 116). A :class:`MockClock` runs due timers from loop
    callbacks on either loop.
    """
    label = f"the alarm of {key[0]}/{key[1]}"
    if isinstance(clock, MockClock):
        return clock.call_at(at, fire, label)
    if at > clock.time():
        return clock.call_at(at, fire, label)
    loop = asyncio.get_running_loop()

    def after_ready(turns: int = DUE_ALARM_TURNS) -> None:
        if turns:
            loop.call_soon(after_ready, turns - 1)
        else:
            fire()

    return clock.call_at(at, after_ready, label)


def _later_alarm(entry: _Entry, host: ObjectHost) -> int | None:
    """The alarm to arm once ``entry``'s retry found the stored one not yet due: the one set while
    the retry was pending, else the stored one (its set was never announced, ``_defer_set``: it
    runs at its own time as a first attempt, as in workerd, measured with miniflare 4.20260426).
    A timer may fire a little early, so the one set meanwhile may not be due yet either."""
    return entry.moved_to if entry.moved_to is not None else host.db.meta.get_alarm()


def _arm_unannounced(scheduler: AlarmScheduler, key: Key, host: ObjectHost, given_up_ms: int) -> None:
    """Once the scheduler gave up the alarm set for ``given_up_ms`` (and deleted it if still stored),
    arm another alarm stored, committed, that it was never told of, at its own time as a first
    attempt, as a retry finding it not yet due would have (``_later_alarm``): whatever
    ``get_alarm()`` reports runs. A handler's set is not announced if the alarm is written again
    before its commit is confirmed (``_set_confirmed``); if a reset then dropped that write and the
    attempt was the last (the 7th, or ``ctx.abort(retry_alarm=False)``), no retry found it and
    ``get_alarm()`` reported it for good. An alarm written since the last commit is left to that
    commit (``AlarmState.changed``), as is a damaged one. workerd loses it (miniflare 4.20260426,
    after a 7th attempt: docs/differences.md); kept on purpose."""
    if host.alarms.changed:
        return
    try:
        stored = host.db.meta.get_alarm()
    except DataCorruptionError:
        return
    if stored is not None and stored != given_up_ms:
        scheduler.schedule(key, stored)


def _arm_again(
    entries: dict[Key, _Entry],
    unarmed: dict[Key, tuple[_Entry, float]],
    arm: Callable[[Key, _Entry, float], None],
    active: Container[Key] | None,
) -> None:
    """Arm the timers set while no loop ran (``unarmed``) on the runtime's new loop and, given the
    objects whose ``alarm()`` runs (``active``: the runtime moved there from a loop that ended,
    ``asyncio.run`` after ``asyncio.run``), the timers armed on that loop, which will never run
    them: an alarm set in one ``asyncio.run`` runs in the next (tests/test_threads_loops.py)."""
    for key, (entry, at) in unarmed.items():
        if entries.get(key) is entry:
            arm(key, entry, at)
    if active is not None:
        for key, entry in list(entries.items()):
            if entry.handle is not None and key not in active and key not in unarmed:
                arm(key, entry, entry.due_ms / 1000)


class AlarmScheduler:
    """One per runtime. Keys are ``(namespace name, id hex)``.

    Args:
        clock: the runtime's clock (timers, retry times, tracking of delivery tasks).
        index: the runtime's storage directory, whose alarm index survives restarts (a
            :class:`~durable._directory.MemoryDirectory` keeps none).
        lookup: the host of an object key, made if it is not live; ``None`` if its namespace is not
            bound; ``TypeError`` if the id hex does not belong to the namespace.
        stored_alarm: the alarm an object's storage holds (raises as ``lookup`` does, and
            ``DurableError`` for a damaged file), read without keeping the object's file open.
    """

    def __init__(
        self,
        clock: Clock,
        index: StorageDirectory,
        lookup: Callable[[Key], ObjectHost | None],
        stored_alarm: Callable[[Key], int | None],
    ) -> None:
        self._clock = clock
        self._index = index
        self._lookup = lookup
        self._stored_alarm = stored_alarm
        self._entries: dict[Key, _Entry] = {}
        self._active: dict[Key, asyncio.Task[BaseException | None]] = {}  # alarm() running
        self._running: set[asyncio.Task[BaseException | None]] = set()
        self._unarmed: dict[Key, tuple[_Entry, float]] = {}  # timers set while no loop ran
        self._stopped = False
        self._waiting: dict[str, list[tuple[str, int]]] = {}  # namespace -> [(id hex, ms)] not yet bound
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop the runtime was last used on (``attach_loop``); the pytest plugin closes on it."""
        self.armed = False
        """Whether a loop is attached and every timer is armed on it (no ``attach_loop`` needed): kept up to
        date where those change (``_note_armed``), not a property, as every RPC call reads it (docs/performance.md)."""
        for namespace, hexid, ms in index.alarm_rows():
            self._waiting.setdefault(namespace, []).append((hexid, ms))

    # -- the index -----------------------------------------------------------------------------

    def _note_armed(self) -> None:
        self.armed = self.loop is not None and not self._unarmed

    def before_commit(self, key: Key, when_ms: int | None) -> None:
        """Object ``key`` is about to commit ``when_ms`` as its alarm: index a new alarm first."""
        if when_ms is not None:
            self._index.index_alarm(key, when_ms)

    def after_commit(self, key: Key, when_ms: int | None, alarms: AlarmState | None = None) -> None:
        """Object ``key`` committed ``when_ms`` as its alarm: unindex a cleared one, set the timer.

        An alarm committed unchanged (a ``transaction()`` that set it and rolled back) keeps its timer and
        retry count, as workerd schedules nothing then (measured with miniflare: retries at 2 s, 4 s...).
        One set while a retry is pending keeps the retry, as in workerd (miniflare 4, also after an earlier
        set past the retry's time, in its own commit): the retry runs the handler for the stored alarm if
        overdue (its retry count and old scheduled time, ``AlarmState.run``); if it fails, the new alarm
        runs at once as a first attempt; one not due by then runs at its own time as a first attempt. A
        delete drops the retry, and a set while the handler runs replaces it, once the commit is confirmed
        (``_defer_deletion``, not for a delete of no alarm, unannounced; ``_defer_set``)."""
        old = self._entries.get(key)
        running = old if old is not None and key in self._active else None
        if old is not None and (old.handle is None or running is not None):
            old = None  # not waiting: its handler runs (or its timer is not armed)
        if when_ms is None:
            self._index.unindex_alarm(key)
            if alarms is not None and old is not None and old.failures and _defer_deletion(self, key, old, alarms):
                return
        elif old is not None:
            if old.scheduled_ms == when_ms and old.moved_to is None:
                return
            if old.failures:
                old.moved_to = when_ms
                return
        elif running is not None and alarms is not None and _defer_set(self, key, when_ms, running, alarms):
            return
        self.schedule(key, when_ms)

    def namespace_bound(self, name: str) -> None:
        """A namespace was registered: schedule the persisted alarms of its objects."""
        for hexid, _ in self._waiting.pop(name, []):
            try:
                actual = self._stored_alarm((name, hexid))  # the object's storage is the truth
            except TypeError:  # not an id of this namespace: a stale or foreign index row
                actual = None
            except DurableError as exc:
                # A damaged object file: the error stays with that object (its calls raise it);
                # the namespace and its other objects start. The index row is kept, so the alarm
                # is checked again at the next start, once the file is repaired.
                log.error("durable: cannot read the alarm of %s/%s: %s", name, hexid, exc)
                continue
            if actual is None:
                self._index.unindex_alarm((name, hexid))
                continue
            self.schedule((name, hexid), actual)

    # -- timers --------------------------------------------------------------------------------

    def attach_loop(self) -> None:
        """The runtime is used on the running loop: remember it, and arm timers set without one, or on a loop that ended."""
        previous, self.loop = self.loop, running_loop("a durable.Runtime")
        unarmed, self._unarmed = self._unarmed, {}
        moved = previous is not None and previous is not self.loop and not self._stopped
        _arm_again(self._entries, unarmed, self._arm, self._active if moved else None)
        self._note_armed()

    def schedule(self, key: Key, when_ms: int | None, retry_count: int = 0) -> None:
        """Make ``when_ms`` the object's alarm time (``None``: no alarm), replacing any timer."""
        old = self._entries.pop(key, None)
        if old is not None and old.handle is not None:
            old.handle.cancel()
            old.handle = None
        if self._unarmed.pop(key, None) is not None:
            self._note_armed()
        if when_ms is None or self._stopped:
            return
        entry = _Entry(when_ms, retry_count)
        self._entries[key] = entry
        self._arm(key, entry, when_ms / 1000)

    def _arm(self, key: Key, entry: _Entry, at: float) -> None:
        if entry.handle is not None:
            entry.handle.cancel()
        try:
            entry.handle = _alarm_timer(self._clock, at, lambda: self._fire(key, entry), key)
        except RuntimeError:
            # No running loop (a persisted runtime's namespace registered from synchronous code):
            # armed by attach_loop() when the runtime is first used on a loop.
            entry.handle = None
            self._unarmed[key] = (entry, at)
            self.armed = False

    def _fire(self, key: Key, entry: _Entry) -> None:
        if self._stopped or self._entries.get(key) is not entry or entry.handle is None:
            return  # (handle None: run_now() started it between its timer and this callback)
        entry.handle = None
        if key in self._active:
            entry.deferred = True  # one alarm() at a time per object: runs when the current one ends
            return
        self._start(key, entry)

    def _start(self, key: Key, entry: _Entry) -> asyncio.Task[BaseException | None]:
        task = _delivery_task(self._deliver(key, entry))
        self._active[key] = task
        self._running.add(task)
        task.add_done_callback(self._delivery_done)
        self._clock.track(task)
        return task

    def _delivery_done(self, task: asyncio.Task[BaseException | None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("durable: the alarm scheduler failed", exc_info=exc)  # pragma: no cover - a bug

    async def _deliver(self, key: Key, entry: _Entry) -> BaseException | None:
        """One attempt: run the handler, then clear, retry or give up. Returns the handler's error."""
        _delivering.set(_delivering.get() | {key})  # this task's own context, and its calls'
        enter_timer_work()  # a MockClock.advance() awaited by the handler would wait for this task
        try:
            await task_started()  # (on an eager loop: once _start has made it the active delivery)
            if self._entries.get(key) is not entry:
                return None  # replaced or cancelled (Runtime.reset) before this task started
            host = self._lookup(key)
            if host is None:
                return None
            info = AlarmInfo(retry_count=entry.retry_count, scheduled_time=entry.scheduled_ms)
            try:
                if await host.invoke("alarm", "alarm", (info,), {}) is False:
                    entry.cancelled = True  # deleted or moved meanwhile: nothing ran, nothing to retry
                    if self._entries.get(key) is entry:
                        # An alarm set while the retry was pending (or one never announced: _defer_set)
                        # not yet due when the retry's timer fired gets its own; a kept retry (below) ends.
                        self.schedule(key, _later_alarm(entry, host))
            except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
                raise  # Ctrl-C, sys.exit(), or this delivery cancelled by the runtime's shutdown
            except BaseException as exc:  # a BaseException subclass too: workerd retries whatever is thrown
                if entry.forgotten:
                    return exc  # Runtime.reset ended the handler (ConnectionClosedError): not a failure
                _log_failure(host, entry.failures + 1, exc)
                if key not in self._entries and not self._stopped:  # deleted while the handler ran:
                    # workerd keeps the retry (runs nothing then, or an alarm set by then: after_commit).
                    self._entries[key] = entry
                if self._entries.get(key) is entry:  # not replaced by an alarm set meanwhile
                    if entry.moved_to is not None:  # the alarm set while the retry was pending runs now
                        self.schedule(key, entry.moved_to)
                    elif isinstance(exc, ObjectAbortedError) and not exc.retry_alarm:
                        self._give_up(key, entry)  # ctx.abort(..., retry_alarm=False), Cloudflare's option
                    else:
                        self._retry_later(key, entry, counted=host.alarms.started is info)
                return exc
            return None
        finally:
            if self._active.get(key) is asyncio.current_task():
                del self._active[key]
            following = self._entries.get(key)
            if following is not None and following.deferred and not self._stopped:
                following.deferred = False
                self._start(key, following)

    def _retry_later(self, key: Key, entry: _Entry, *, counted: bool) -> None:
        if not entry.failed(counted=counted):
            log.error("durable: alarm of %s/%s failed %d times; giving up", key[0], key[1], entry.retry_count + 1)
            self._give_up(key, entry)
            return
        delay = retry_delay(min(entry.failures, _MAX_BACKOFF + 1))
        entry.due_ms = self._clock.time_ms() + int(delay * 1000)
        self._arm(key, entry, entry.due_ms / 1000)

    def _give_up(self, key: Key, entry: _Entry) -> None:
        """Retry no more: forget the entry, delete the stored alarm if it is still this one (``_arm_unannounced``)."""
        del self._entries[key]
        if (host := self._lookup(key)) is not None:
            host.drop_alarm(entry.scheduled_ms)
            _arm_unannounced(self, key, host, entry.scheduled_ms)

    async def run_now(self, key: Key, host: ObjectHost) -> bool:
        """Run the object's stored alarm now, as if its timer fired (``durable.testing.run_alarm``).

        Returns ``False`` if no alarm is set (or none is once the object has started: a pending
        point-in-time restore may remove it). The attempt follows every rule of a timed one (its
        retry count, clearing on success, retry or give-up on failure); the handler's exception,
        if any, is raised after the retry has been scheduled. One ``alarm()`` runs at a time: while
        the object's handler runs, this waits for it to end, then runs the alarm still set, if
        any (from the object's own code while its handler runs: ``RuntimeError``).
        """
        waited = 0
        while (running := self._active.get(key)) is not None:
            if running_host() is host:
                raise RuntimeError(
                    "run_alarm() was called from the code of the object whose alarm() handler is "
                    "running, and would wait for that handler to end: call it from the test body"
                )
            if key in _delivering.get():
                raise RuntimeError(
                    f"run_alarm() was called from code that the alarm() handler of {key[0]}/{key[1]} "
                    "awaits (a call it made), and would wait for that handler to end: call it from "
                    "the test body"
                )
            if waited == RUN_ALARM_WAIT_LIMIT:
                raise RuntimeError(
                    f"run_alarm() waited for {waited} runs in a row of the alarm of {key[0]}/{key[1]}: "
                    "its alarm() handler sets the alarm to ctx.now_ms() or earlier, so it runs again "
                    "at once, forever; set the next alarm in the future, or delete it"
                )
            waited += 1
            await asyncio.wait([running])
            host = self._lookup(key) or host  # the handler may have reset the object
        scheduled = host.db.meta.get_alarm()
        if scheduled is None:
            return False
        entry = self._entries.get(key)
        if entry is None or entry.scheduled_ms != scheduled:
            self.schedule(key, None)
            entry = self._entries[key] = _Entry(scheduled)
        if entry.handle is not None:
            entry.handle.cancel()
            entry.handle = None
        if self._unarmed.pop(key, None) is not None:
            self._note_armed()
        entry.deferred = False
        error = await asyncio.shield(self._start(key, entry))
        if error is not None:
            raise error
        return not entry.cancelled  # (a restore applied as the object started may have removed it)

    # -- lifecycle -----------------------------------------------------------------------------

    def cancel_all(self) -> None:
        """Forget every alarm (``Runtime.reset``); handlers already running finish on their own."""
        for entry in self._entries.values():
            entry.forgotten = True
            if entry.handle is not None:
                entry.handle.cancel()
        self._entries.clear()
        self._unarmed.clear()
        self._note_armed()
        self._waiting.clear()
        self._index.clear_alarms()

    def halt(self) -> None:
        """Cancel every timer for good (shutdown, a collected runtime)."""
        self._stopped = True
        for entry in self._entries.values():
            if entry.handle is not None:
                entry.handle.cancel()
        self._entries.clear()
        self._unarmed.clear()
        self._note_armed()

    async def stop(self) -> None:
        """Cancel every timer and every delivery in progress (runtime shutdown)."""
        self.halt()
        running = [task for task in self._running if not task.done()]
        for task in running:
            task.cancel()
        loop = asyncio.get_running_loop()
        mine = [task for task in running if task.get_loop() is loop]
        if mine:
            await asyncio.wait(mine)
