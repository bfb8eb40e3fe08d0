"""One object's alarm bookkeeping: what its storage reports, what a commit announces, the handler's run.

Rules, and the Cloudflare behaviour each mirrors:

- While the alarm handler runs, ``get_alarm()`` reports no alarm, unless the handler set a new one
  (workerd clears the alarm before running its handler, as seen by the handler). An alarm set or
  deleted inside a ``transaction()`` counts once the transaction commits, and not at all if it rolls
  back (workerd's "alarm dirty" flag of an explicit transaction): until then only code inside that
  transaction (or one nested in it) sees it.
- A handler that returns clears the alarm it ran for, unless it set a new one meanwhile; an alarm
  the scheduler gives up on (retries exhausted) is deleted if it is still the one stored.
- A handler still running after :data:`ALARM_TIME_LIMIT` (15 minutes of the runtime's clock)
  resets the object, which ends it and fails the attempt: it is retried as any failed attempt
  (workerd's "Alarm exceeded its allowed execution time").
- A changed alarm reaches the runtime's scheduler only with the commit that makes it durable
  (:meth:`AlarmState.before_commit`, :meth:`AlarmState.after_commit`, called by the output gate),
  so an alarm written by a turn that is rolled back never fires; ``writes`` counts alarm writes,
  so that a deletion the scheduler hears of late is dropped if the alarm was written since.

Layer 0: it knows its object (an ``ObjectHost``) only by type, and uses its ``db``, its ``gen``
(generation: a reset during the handler ends it), its ``runtime``'s two alarm hooks and clock,
its ``wrote()`` and its ``reset()`` (the handler's time limit).
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from ._exceptions import DataCorruptionError, ObjectResetError
from ._util import positional_arity

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._host import ObjectHost
    from ._object import AlarmInfo, DurableObject
    from ._sqlite import ObjectDatabase

log = logging.getLogger("durable")
_NO_HANDLER = "Attempted to run a scheduled alarm without a handler, did you remember to export an alarm() function?"
"""workerd's log line when an alarm falls due on a class without ``alarm()``."""

__all__ = ["ALARM_TIME_LIMIT", "ALARM_TIME_LIMIT_MESSAGE", "AlarmState"]

ALARM_TIME_LIMIT = 15 * 60
"""Seconds an ``alarm()`` handler may run (on the runtime's clock) before the object is reset (workerd's 15 minutes)."""
ALARM_TIME_LIMIT_MESSAGE = "Alarm exceeded its allowed execution time"
"""workerd's error for a handler past :data:`ALARM_TIME_LIMIT`."""


def _stored_alarm(db: ObjectDatabase) -> int | None:
    """The stored alarm, or -1 if it is damaged (a restore may well mend it)."""
    try:
        return db.meta.get_alarm()
    except DataCorruptionError:
        return -1


class AlarmState:
    """The alarm of one object: whether its handler runs, and whether it changed since the last commit."""

    __slots__ = (
        "_attempt",
        "_before_restore",
        "_changed_depth",
        "_committing",
        "_dirty_depth",
        "_from_none",
        "_from_writes",
        "_marks",
        "_owner",
        "_txn_writes",
        "changed",
        "reset",
        "running",
        "started",
        "unconfirmed",
        "writes",
    )

    def __init__(self, owner: ObjectHost) -> None:
        self._owner = owner
        self.running = False
        """Whether the alarm handler of the object's current generation runs now."""
        self._attempt: object | None = None
        """The token of the attempt that set ``running`` (:meth:`run`): only that attempt clears it."""
        self.reset = False
        """Whether the running handler set (or deleted) the alarm itself."""
        self.started: AlarmInfo | None = None
        """The ``AlarmInfo`` of the last attempt whose handler started: the scheduler counts a
        failed attempt as a retry only if its handler started (workerd's rule)."""
        self.changed = False
        """Whether the alarm was written since the last commit (the scheduler must hear of it)."""
        self._changed_depth: int | None = None
        """The savepoint depth at which ``changed`` became true, if inside a ``transaction()``:
        rolling that savepoint back makes it false again. ``None``: at depth 0 (or not changed)."""
        self._committing: int | None = None
        self._before_restore: int | None = -1  # the alarm before a restore underway; -1: none underway
        self._from_none = False
        """Whether the first write of ``changed`` set the alarm where none was stored (so none was
        at the last commit): if none is stored at the next commit either, nothing changed."""
        self._from_writes = 0
        """``writes`` before the first write of ``changed``."""
        self.writes = 0
        """How many times the alarm was set or deleted (workerd's alarm version): a deletion whose
        commit is confirmed after a later write is not announced (``AlarmScheduler.after_commit``).
        A delete of no alarm does not count, nor does a write a ``transaction()`` rolled back
        (:meth:`savepoint_ended`); one a reset dropped does."""
        self._marks: list[tuple[int, int]] = []
        """``(savepoint depth, writes before it)``: for each open savepoint whose code counted a
        write (shallowest first), ``writes`` as it was before the first, restored if it rolls back."""
        self.unconfirmed: list[Callable[[], None]] = []
        """The scheduler's confirmations of deletions, due a loop iteration after their commits
        (``_alarms._defer_deletion``): a section's start runs them first (:meth:`section_started`)."""
        self._txn_writes: int | None = None  # writes when a root transaction() that wrote the alarm committed
        self._dirty_depth: int | None = None
        """While the handler runs: the shallowest savepoint depth (``transaction()`` nesting) whose
        uncommitted writes set or deleted the alarm; they make ``reset`` true once they reach depth
        0, and are forgotten if that savepoint rolls back. ``None``: no such write."""

    def written(self, stored_changed: bool = True, *, from_none: bool = False) -> None:
        """The alarm was set or deleted: the scheduler re-arms it after the commit.

        ``stored_changed=False``: a ``delete_alarm()`` or ``delete_all()`` that found no alarm
        stored. The scheduler hears nothing of it, so a failed handler's pending retry goes on: in
        workerd (miniflare 4.20260426, SQLite- and KV-backed) a handler that deleted its alarm
        and threw, then a call's ``deleteAlarm()`` or ``deleteAll()``, then a call's
        ``setAlarm(past)``: the alarm ran at the retry's time as the retry (``retryCount`` 1). Nor
        does it count in ``writes``, so an earlier deletion heard of late still drops a pending
        retry (measured with miniflare 4.20260426, SQLite- and KV-backed: a ``deleteAlarm()``
        after the ``blockConcurrencyWhile()`` callback that deleted it, then a ``setTimeout`` and
        a set to a past time: a first attempt at once).

        ``from_none``: a set where no alarm was stored. If it is the first write since the last
        commit and no alarm is stored again by the next, that commit announces nothing: in workerd
        (miniflare 4.20260426, SQLite- and KV-backed) a handler that deleted its alarm and threw,
        then a call's ``setAlarm(later); deleteAlarm()`` (or ``deleteAll()``, or in one
        ``transactionSync()``), then a call's ``setAlarm(past)``: the alarm ran as the retry.
        """
        depth = self._owner.db.savepoint_depth
        if stored_changed:
            if depth and (not self._marks or self._marks[-1][0] < depth):
                self._marks.append((depth, self.writes))
            self.writes += 1
            if not self.changed:
                self.changed = True
                self._from_none = from_none
                self._from_writes = self.writes - 1
                self._changed_depth = depth or None
            elif self._changed_depth is not None and depth < self._changed_depth:
                self._changed_depth = depth or None
        if self.running and not self.reset:
            if depth == 0:
                self.reset = True
                self._dirty_depth = None
            elif self._dirty_depth is None or depth < self._dirty_depth:
                self._dirty_depth = depth

    def savepoint_ended(self, kept: bool) -> None:
        """A ``transaction()`` savepoint was released (``kept``) or rolled back: so were its alarm writes.

        Alarm writes that are all rolled back leave the alarm as it was, so the commit announces no
        change: a running alarm's retry goes on, as in workerd (measured with miniflare: a handler
        whose ``transaction()`` deletes the alarm and throws, and which then throws itself, is
        retried after 2 s with ``retryCount`` 1).
        """
        depth = self._owner.db.savepoint_depth  # the depth now, after the savepoint ended
        marks = self._marks
        if marks and marks[-1][0] > depth:
            # Its counted writes: undone with it (workerd: a transactionSync() that set the alarm
            # and threw does not keep an earlier deletion from dropping a pending retry, measured
            # with miniflare 4.20260426), or now the enclosing savepoint's.
            before = marks.pop()[1]
            if not kept:
                self.writes = before
            elif not depth and self.writes != before and self._owner.inside_own_transaction():
                self._txn_writes = self.writes  # a transaction() (not transaction_sync()) committed alarm writes
            elif depth and (not marks or marks[-1][0] < depth):
                marks.append((depth, before))
        first = self._changed_depth
        if first is not None and first > depth:
            if kept:
                self._changed_depth = depth or None
            else:
                self.changed = False
                self._changed_depth = None
        dirty = self._dirty_depth
        if dirty is None:
            return
        if dirty <= depth:
            return  # written outside the savepoint that ended
        if not kept:
            self._dirty_depth = None
        elif depth == 0:
            self.reset = True
            self._dirty_depth = None
        else:
            self._dirty_depth = depth

    def visible(self, stored: int | None) -> int | None:
        """The alarm ``get_alarm()`` reports, given the ``stored`` one (None while the handler runs)."""
        if self.running and not self.reset:
            dirty = self._dirty_depth
            if dirty is None or self._owner.db.savepoint_depth < dirty:
                return None
        return stored

    def generation_ended(self) -> None:
        """The object was reset (or evicted): a handler of the old generation no longer counts as running. Its code
        may go on (a handler that caught its own ``abort()``), but its storage calls raise, and the next instance
        (the retry's handler, or any call) must see the stored alarm as if no handler ran; the old run's end leaves
        this state alone (:meth:`run`)."""
        self.running = self.reset = self.changed = False
        self._dirty_depth = self._attempt = self._txn_writes = None
        self._marks.clear()  # its savepoints are gone; their writes stay counted (workerd's do)

    def take_change(self) -> bool:
        """Whether the alarm changed since the last commit; the change is now this commit's to announce.
        (The output gate reads ``changed`` first: most commits change no alarm.)"""
        if not self.changed:
            return False
        self.changed = False
        alarm = self._owner.db.meta.get_alarm()
        if alarm is None and self._from_none:
            # Set and deleted again since the last commit, which stored none: no change, and no
            # write either (an earlier deletion still drops a pending retry, as in workerd).
            self.writes = self._from_writes
            self._txn_writes = None
            return False
        self._committing = alarm
        return True

    def settled_writes(self) -> int:
        """``writes``, less the uncommitted ones if they leave no alarm where none was stored.

        workerd (miniflare 4.20260426, SQLite- and KV-backed): a ``deleteAlarm()`` in a ``blockConcurrencyWhile()``
        callback while a retry is pending, then ``setAlarm(later); deleteAlarm()``, a ``setTimeout`` and a set to a
        past time: a first attempt at once (the deletion dropped the retry), as without the set and delete between.
        """
        if self.changed and self._from_none and self._owner.db.meta.get_alarm() is None:
            return self._from_writes
        return self.writes

    def section_started(self) -> None:
        """A ``block_concurrency_while()`` callback or a ``transaction()`` closure starts: the deletions whose
        confirmation is pending are confirmed first, as in workerd, where both wait for the object's lock and the
        commit's confirmation comes before it (see ``_alarms._defer_deletion``)."""
        while self.unconfirmed:
            self.unconfirmed.pop(0)()

    def before_commit(self) -> None:
        """The changed alarm (read by :meth:`take_change`) is about to commit."""
        self._owner.runtime.alarm_before_commit(self._owner, self._committing)

    def after_commit(self, unwaited: bool = False) -> None:
        """The changed alarm committed: the scheduler arms it. ``unwaited``: nothing waited for this commit, so
        nothing shows that it is confirmed yet; the scheduler may hear of a deletion a loop iteration later
        (``AlarmScheduler.after_commit``)."""
        # A root transaction()'s commit, nothing written since: workerd commits it at its end (ExplicitTxn::commitImpl)
        # and its scheduler hears of the alarm before transaction() returns (tests/test_alarm_retry_txn.py).
        unwaited, self._txn_writes = unwaited and self._txn_writes != self.writes, None
        self._owner.runtime.alarm_after_commit(self._owner, self._committing, unwaited=unwaited)

    def restoring(self) -> None:
        """A restore is about to replace the storage: note the alarm, and index the object first (the index lists
        a superset of the alarms: a ``kill -9`` before :meth:`restored` used to lose a restored one)."""
        self._before_restore = _stored_alarm(self._owner.db)
        self._owner.runtime.alarm_before_commit(self._owner, self._owner.now_ms())

    def restored(self) -> None:
        """The storage was restored (PITR): announce its alarm as of a commit, if the restore changed it."""
        before, self._before_restore = self._before_restore, -1
        self._committing = self._owner.db.meta.get_alarm()
        if self._committing != before:
            self.before_commit()
            self.after_commit()

    async def run(self, instance: DurableObject, info: AlarmInfo) -> bool:
        """Run the alarm handler; success clears the alarm, unless the handler set a new one.

        Returns ``False``, running nothing, if the stored alarm is no longer the one that fell
        due: it was deleted or moved to a later time (or a point-in-time restore removed it)
        while this event waited (at the input gate, or for its retry). workerd cancels the
        handler then ("alarm handler canceled with requestScheduledAlarm", measured with
        miniflare). An alarm moved to a time already due (a past time, clamped to now) is run by
        this event, with its ``info``, and cleared on success, as in workerd ("SQLite alarm
        overdue, running despite AlarmManager mismatch", measured with miniflare 4).
        """
        stored = self._owner.db.meta.get_alarm()
        if stored != info.scheduled_time and (stored is None or stored > self._owner.now_ms()):
            return False
        attempt = object()
        gen = self._owner.gen
        clock = self._owner.runtime.clock
        # Set before the handler counts as running: a clock that raises here fails the attempt
        # without leaving get_alarm() reporting no alarm for the rest of the generation.
        limit = clock.call_at_limit(clock.time() + ALARM_TIME_LIMIT, lambda: self._time_out(attempt, gen))
        self.running = True
        self.started = info
        self.reset = False
        self._dirty_depth = None
        self._attempt = attempt
        try:
            handler = getattr(instance, "alarm", None)
            if not callable(handler):
                # An alarm the constructor set on a class without alarm(): workerd logs this and
                # clears the alarm, without an error or a retry (measured with miniflare 4).
                log.warning(_NO_HANDLER)
            else:
                # `async def alarm(self)` is fine too: JavaScript drops the argument a handler does not take.
                result = handler() if positional_arity(handler) == 0 else handler(info)
                if inspect.isawaitable(result):
                    await result
        finally:
            limit.cancel()
            # Only this attempt's own flag: a handler that caught the reset of its object may end
            # while its retry (another attempt, of the next generation) runs.
            if self._attempt is attempt:
                self.running = False
                self._attempt = None
        if self._owner.gen != gen:
            # The object was reset while the handler ran (a block_concurrency_while() callback
            # that raised, an abort() the handler caught...): the attempt failed (the event
            # raises the reset error) and is retried, as in workerd, where the handler's code
            # does not even go on. Clearing the alarm here wrote on after the reset.
            return True
        db = self._owner.db
        if not self.reset and db.meta.get_alarm() == stored:
            db.meta.set_alarm(None)
            self.written()
            self._owner.wrote(True)
        return True

    def _time_out(self, attempt: object, gen: int) -> None:
        """The handler of ``attempt`` ran for :data:`ALARM_TIME_LIMIT`: reset the object, as workerd does.

        workerd aborts the object with "Alarm exceeded its allowed execution time" (a
        ``broken.dropped`` error of type OVERLOADED), keeps the alarm and counts the attempt as a
        failed one (retried with the usual backoff; measured with miniflare 4, 2026-04-07: a
        handler that never ends, started at 1 s, was ended at ~901 s and retried 2 s later with
        ``retryCount`` 1). The reset cancels the handler's task and fails every call in flight.
        """
        if self._attempt is not attempt or self._owner.gen != gen:
            return  # already ended with its generation (a reset, an eviction)
        error = ObjectResetError(ALARM_TIME_LIMIT_MESSAGE)
        error.overloaded = True
        log.warning(
            "durable: the alarm() handler of %r ran for %d s; the object is reset", self._owner.id, ALARM_TIME_LIMIT
        )
        self._owner.reset(error)

    def drop(self, scheduled_ms: int) -> None:
        """Delete the stored alarm if it is still the one set for ``scheduled_ms`` (given up)."""
        db = self._owner.db
        if db.meta.get_alarm() == scheduled_ms:
            db.meta.set_alarm(None)
            self.written()
            self._owner.wrote(False)
