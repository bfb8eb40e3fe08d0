"""Time, injectable: everything time-based in `durable` (alarms, alarm retries, idle eviction, the
``block_concurrency_while`` timeout) reads and schedules through a :class:`Clock`.

:class:`RealClock` is wall-clock time on the running event loop. :class:`MockClock` stands still until
a test calls ``await clock.advance(seconds)``, which fires every timer that falls due, in time order,
and waits for the object code those timers started (an alarm handler, its retries) before moving on.
This follows trio's ``MockClock`` but without autojump: in tests of Durable Objects, time is the
thing under test, so it moves only when the test says so.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import math
import time as _time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from ._util import shown, unbuilt_safe_repr

__all__ = ["Clock", "MockClock", "RealClock", "TimerHandle"]


class TimerHandle(Protocol):
    """What :meth:`Clock.call_at` returns: something that can be cancelled."""

    def cancel(self) -> None: ...


# A mock timer this close after the target time counts as due: float error of sums of advances
# (~0.24 us per step at today's epoch). Timers at a whole millisecond (alarms) follow time_ms().
_DUE_TOLERANCE = 2e-6


def _due(when: float, now: float) -> bool:
    """Whether a mock timer at ``when`` is due when the clock reads ``now``.

    A timer at a whole millisecond (an object's alarm, set in ms) is due once ``time_ms()`` reads
    that millisecond, no sooner: ``time_ms()`` rounds a time within 1 us below a millisecond up to
    it (float error), so an alarm at ``time_ms() + 60_000`` can sit up to 1 us after ``time() +
    60``, and ``advance(60)`` runs it; but a time 1 to 2 us below the alarm's millisecond still
    reads the millisecond before, and an alarm run then would run early (a fixed 2 us tolerance
    did that, for a clock whose start time fell there: ``advance(5.999)`` ran an alarm set 6 s
    ahead).
    """
    millis = when * 1000
    whole = round(millis)
    if abs(millis - whole) < 0.001:
        return math.floor(now * 1000 + 0.001) >= whole
    return when <= now + _DUE_TOLERANCE


class Clock:
    """Base class of clocks. ``time()`` is seconds since the epoch, as ``time.time()``.

    A clock schedules callbacks (``call_at``) and reads the time; subclasses implement both.
    """

    def time(self) -> float:
        """The current time in seconds since the epoch."""
        raise NotImplementedError

    def time_ms(self) -> int:
        """The current time in whole milliseconds since the epoch (Cloudflare's ``Date.now()``)."""
        # The 1 µs tolerance absorbs float error: 1_700_000_000.123 * 1000 is 1700000000122.9998.
        return math.floor(self.time() * 1000 + 0.001)

    def call_at(self, when: float, callback: Callable[[], None], label: str | None = None) -> TimerHandle:
        """Run ``callback`` (on the running loop) once the clock reads ``when`` or later.

        ``label`` names what a timer that can set itself again is for ("the alarm of ..."): a
        :class:`MockClock` refuses to fire timers of one label more than
        ``MockClock.SAME_INSTANT_LIMIT`` times without time moving.
        """
        raise NotImplementedError

    def call_at_deadline(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """As :meth:`call_at`, for the time limit of work in progress (the ``block_concurrency_while``
        limit): a :class:`MockClock` lets time reach it while the work it waits for is stalled."""
        return self.call_at(when, callback)

    def call_at_limit(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """As :meth:`call_at_deadline` (which it calls unless overridden), for an ``alarm()``
        handler's 15-minute limit: a :class:`MockClock` lets time reach it while the handler is
        stalled only in an ``advance()`` whose target reaches it (a shorter one still waits for a
        slow handler). A method of its own, so that a clock overriding ``call_at_deadline(when,
        callback)`` as documented keeps working."""
        return self.call_at_deadline(when, callback)

    def track(self, work: Awaitable[object]) -> None:
        """Register work started by a timer, so that a mock clock can wait for it. No-op here."""


_timer_work: contextvars.ContextVar[tuple[asyncio.Future[object], ...]] = contextvars.ContextVar(
    "durable_timer_work", default=()
)
"""The tasks of timer-started work (alarm deliveries) that the running code is part of: the
delivery itself, and the calls and tasks it starts, which copy its context."""


def enter_timer_work() -> None:
    """Mark the running task as work a timer started (an alarm delivery), for this task's context
    and the calls and tasks it starts: a ``MockClock.advance()`` awaited there would wait for it."""
    task = asyncio.current_task()
    if task is not None:
        # Ended ones dropped: a timer set from a delivery's context (an alarm the handler sets
        # again) starts the next delivery in a copy of it, and the tuple must not grow per run.
        _timer_work.set((*(t for t in _timer_work.get() if not t.done()), task))


class RealClock(Clock):
    """Wall-clock time; timers run on the running asyncio loop.

    ``call_at`` needs a running loop (it raises ``RuntimeError`` otherwise), like
    ``loop.call_later``.
    """

    def __repr__(self) -> str:
        return "RealClock()"

    # time.time itself, not a method that calls it: read at the end of every event (the idle
    # objects' order), one Python frame less per call (docs/performance.md).
    time = staticmethod(_time.time)

    def call_at(self, when: float, callback: Callable[[], None], label: str | None = None) -> TimerHandle:
        delay = max(0.0, when - _time.time())
        return asyncio.get_running_loop().call_later(delay, callback)


def _cancelled_callback() -> None:
    """What a cancelled mock timer calls: nothing (its own callback is dropped at once)."""


class _MockTimer:
    __slots__ = ("callback", "cancelled", "clock", "deadline", "label", "loop", "reached_only", "when")

    def __init__(self, when: float, callback: Callable[[], None], label: str | None, clock: MockClock) -> None:
        self.when = when
        self.callback = callback
        self.label = label
        self.cancelled = False
        self.deadline = False
        """A time limit on work in progress (``call_at_deadline``)."""
        self.reached_only = False
        """A deadline that frees stalled work only in an ``advance()`` that reaches it."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop the timer was set on (its runtime's), if one ran."""
        self.clock: MockClock | None = clock
        """The clock whose heap holds this timer; None once it left the heap (fired)."""

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        # The callback (an alarm's closure over its entry) is released now, not when time reaches
        # the timer; the clock drops cancelled timers from its heap once they are most of it.
        self.callback = _cancelled_callback
        if self.clock is not None:
            self.clock._timer_cancelled(self)


_COMPACT_AFTER: Final = 64
"""A mock clock rebuilds its heap without cancelled timers once more than this many are in it
and they are more than half of it (asyncio's loop does the same with its cancelled handles)."""


_MAX_TIME: Final = 253402300799.0
"""The last second of the year 9999 (``datetime``'s limit): ``MockClock`` does not go beyond it."""
_MIN_TIME: Final = -62135596800.0
"""The first second of the year 1 (``datetime``'s limit): a ``MockClock`` does not start before it."""


class MockClock(Clock):
    """A clock that moves only when told to, for tests.

    Args:
        start: the initial time in seconds since the epoch; default: the real time now, to the
            whole millisecond (what ``Date.now()`` reads), so that a test advancing by whole
            milliseconds lands on whole milliseconds: what it runs never depends on the
            microseconds of the moment it started.

    Timers that are already due when they are set (an alarm set in the past) run on the next turn
    of the event loop, as a real timer with delay 0 would; ``await clock.advance(0)`` runs them
    and waits for what they start.

    Example::

        clock = durable.testing.MockClock(start=1_700_000_000)
        async with durable.Runtime(clock=clock) as rt:
            ...                       # an object sets an alarm 60 s ahead
            await clock.advance(60)   # the alarm runs, and has finished, when this returns
    """

    SAME_INSTANT_LIMIT: Final = 1000
    """How many times ``advance()`` fires timers of one label (an object's alarm) at one instant."""

    STALL_SECONDS: Final = 1.0
    """Real seconds after which ``advance()`` stops holding time still for work it started that
    has not ended, while a ``block_concurrency_while`` time limit is pending (or an ``alarm()``
    handler's 15-minute limit falls due by the advance's target): that work may be waiting for
    the limit, which only moving time reaches."""

    def __init__(self, start: float | None = None) -> None:
        if start is not None and (not isinstance(start, (int, float)) or isinstance(start, bool)):
            raise TypeError(
                f"MockClock(start) takes seconds since the epoch (an int or a float) or None, not {shown(start)}"
            )
        if isinstance(start, float) and not math.isfinite(start):  # an int is finite (10**400 has no float)
            # A float, but no time: a ValueError, as advance() raises for the same values.
            raise ValueError(f"MockClock(start) takes a finite number of seconds since the epoch, not {start!r}")
        if start is not None and not _MIN_TIME <= start <= _MAX_TIME:
            raise ValueError(
                f"MockClock(start) takes a time between the years 1 and 9999 (what datetime shows), not {shown(start)}"
            )
        self._now = _time.time_ns() // 1_000_000 / 1000 if start is None else float(start)
        self._timers: list[tuple[float, int, _MockTimer]] = []
        self._cancelled_in_heap = 0
        """How many timers in ``_timers`` are cancelled (an alarm set again or deleted, an object
        evicted): without dropping them, a test that sets alarms and never advances would keep
        every one (and its callback) for good."""
        self._seq = itertools.count()
        self._work: set[asyncio.Future[object]] = set()
        self._stalled: set[asyncio.Future[object]] = set()
        """Work of ``_work`` that made no progress for ``STALL_SECONDS`` while a deadline was
        pending: ``advance()`` no longer waits for it, until a deadline fires."""
        self._deadlines = 0
        """How many deadline timers (``call_at_deadline``) are pending, ``reached_only`` ones aside."""
        self._limits = 0
        """How many ``reached_only`` deadline timers are pending (alarm handlers' time limits)."""
        self._target: float | None = None
        """The time the ``advance()`` in progress moves to."""
        self._advancing = False
        self._home: asyncio.AbstractEventLoop | None = None
        """The loop timers were last set on: the runtime's (``advance()`` runs there)."""

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"MockClock(time={self._now!r})"

    def time(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None], label: str | None = None) -> TimerHandle:
        timer = _MockTimer(float(when), callback, label, self)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return timer  # no loop yet (a namespace registered before it started): next advance()
        timer.loop = self._home = loop
        if _due(timer.when, self._now) and not self._advancing:
            # Already due: run on the loop's next turn, as a real timer with delay 0 would.
            loop.call_soon(self._fire_due)
        return timer

    def call_at_deadline(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return self._deadline_timer(when, callback, reached_only=False)

    def call_at_limit(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return self._deadline_timer(when, callback, reached_only=True)

    def _deadline_timer(self, when: float, callback: Callable[[], None], *, reached_only: bool) -> TimerHandle:
        """A deadline timer; ``reached_only``: one that frees stalled work only in an ``advance()`` that reaches it."""
        timer = self.call_at(when, callback)
        assert isinstance(timer, _MockTimer)
        timer.deadline = True
        timer.reached_only = reached_only
        self._count_deadline(timer, 1)
        return timer

    def _count_deadline(self, timer: _MockTimer, change: int) -> None:
        if timer.reached_only:
            self._limits += change
        else:
            self._deadlines += change

    def _limit_reached(self) -> bool:
        """Whether a ``reached_only`` deadline falls due by the target of the ``advance()`` in progress."""
        target = self._target
        if not self._limits or target is None:
            return False
        return any(t.reached_only and not t.cancelled and _due(when, target) for when, _, t in self._timers)

    def track(self, work: Awaitable[object]) -> None:
        fut = asyncio.ensure_future(work)
        self._work.add(fut)
        fut.add_done_callback(self._work.discard)
        fut.add_done_callback(self._stalled.discard)

    def _timer_cancelled(self, timer: _MockTimer) -> None:
        """A timer in the heap was cancelled: drop the cancelled ones once they are most of it."""
        if timer.deadline:
            self._count_deadline(timer, -1)
        self._cancelled_in_heap += 1
        if self._cancelled_in_heap > _COMPACT_AFTER and 2 * self._cancelled_in_heap > len(self._timers):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled_in_heap = 0

    def _pop_due(self, limit: float) -> _MockTimer | None:
        while self._timers:
            when, _, timer = self._timers[0]
            if timer.cancelled:
                heapq.heappop(self._timers)
                self._cancelled_in_heap -= 1
                continue
            if not _due(when, limit):
                return None
            heapq.heappop(self._timers)
            timer.clock = None
            if timer.deadline:
                self._count_deadline(timer, -1)
            return timer
        return None

    def _fire_due(self) -> None:
        if self._advancing:
            return  # advance() fires them itself, in order
        loop = asyncio.get_running_loop()
        while (timer := self._pop_due(self._now)) is not None:
            other = timer.loop
            if other is not None and other is not loop and other.is_running():
                other.call_soon_threadsafe(timer.callback)  # another runtime's, on its own loop
            else:
                timer.callback()

    async def _settle(self) -> None:
        # Let callbacks scheduled by timers start, then wait for the work they registered (and
        # the work that work registers). asyncio.wait, unlike gather, never cancels the work when
        # the caller of advance() is cancelled.
        for _ in range(3):
            await asyncio.sleep(0)
        while waiting := self._work - self._stalled:
            if not self._deadlines and not self._limit_reached():
                await asyncio.wait(waiting)
            else:
                # A block_concurrency_while() limit is pending, or an alarm handler's limit falls
                # due by the target: the work may wait for it (an alarm handler whose callback
                # never ends, or one queued behind another event's), and only time reaches it.
                # Work that ends nothing for STALL_SECONDS (real time) no longer holds the clock;
                # time moves on to the next timer (the limit, in order).
                done, _ = await asyncio.wait(waiting, timeout=self.STALL_SECONDS)
                if not done:
                    self._stalled |= waiting
                    return
            for _ in range(3):
                await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running everything that falls due on the way.

        Timers fire in time order, each at its own time (``time()`` reads the timer's time while
        its work runs); work they start, such as alarm handlers (and what those pass to
        ``ctx.wait_until()``), is waited for before time moves
        past it, so a retry scheduled by a failed attempt fires within the same ``advance`` if it
        falls due. Returns once the clock reads the target time and no started work is running.

        One exception, so that a ``block_concurrency_while()`` callback that never ends cannot
        stop time for good: while such a callback's 30 s limit is pending, started work that
        ends nothing for ``STALL_SECONDS`` (1 s of real time) no longer holds the clock, so time
        moves on, in order, to that limit (which resets the object and fails the attempt, as on
        Cloudflare); if the target comes first, this returns with that work still running.

        Awaited on another loop than the one the runtime's timers were set on (a thread's, with the
        runtime's loop running in another thread), it runs on the runtime's loop and waits there.

        Raises ``TypeError`` for a non-number, ``ValueError`` for a negative, infinite or NaN
        ``seconds`` (or one past the year 9999), and ``RuntimeError`` if another ``advance()`` is
        in progress, or if an object's alarm fell due more than ``SAME_INSTANT_LIMIT`` (1000)
        times at one instant (a handler that sets its alarm to ``ctx.now_ms()`` again and again:
        time would never move). The timers not yet fired stay pending.
        """
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise TypeError(
                f"MockClock.advance() takes a number of seconds (an int or a float), not {type(seconds).__name__}"
            )
        if isinstance(seconds, float) and not math.isfinite(seconds):
            raise ValueError(f"MockClock.advance() takes a finite number of seconds, not {seconds!r}")
        if seconds < 0:
            raise ValueError(f"MockClock.advance() cannot move time backwards ({shown(seconds)} s)")
        if seconds > _MAX_TIME - self._now:  # compared as given: an int past float's range has no float
            raise ValueError(f"MockClock.advance({shown(seconds)}) would move time past the year 9999")
        home = self._home
        if home is not None and home is not asyncio.get_running_loop() and home.is_running():
            # The timers' callbacks belong to the runtime that set them, on its loop in another
            # thread (a BlockingRuntime's, say): they run there, and this waits for them.
            forwarded = contextvars.Context().run(asyncio.run_coroutine_threadsafe, self.advance(seconds), home)
            await asyncio.wrap_future(forwarded)
            return
        if self._work and self._awaited_by_work():
            raise RuntimeError(
                "MockClock.advance() was awaited from work that it waits for (an alarm() handler, "
                "ctx.wait_until() work an alarm started, or a call they made), so it would wait for "
                "itself forever: advance the clock from the test body"
            )
        if self._advancing:
            raise RuntimeError("MockClock.advance() is already running; await it before advancing again")
        target = self._now + seconds
        self._advancing = True
        self._target = target
        fired: dict[str, int] = {}  # label -> timers of that label fired at the current instant
        try:
            await self._settle()
            while (timer := self._pop_due(target)) is not None:
                if timer.when > self._now:
                    self._now = timer.when
                    fired.clear()
                self._fire_counted(timer, fired)
                await self._settle()
            if target > self._now:
                self._now = target
                fired.clear()
            await self._settle()
            # Work that settled at the target time may have set timers due right now.
            while (timer := self._pop_due(self._now)) is not None:
                self._fire_counted(timer, fired)
                await self._settle()
        finally:
            self._advancing = False
            self._target = None

    def _awaited_by_work(self) -> bool:
        """Whether the running code is work this clock waits for, or part of it (a call it made)."""
        if asyncio.current_task() in self._work:
            return True
        return any(task in self._work for task in _timer_work.get())

    def _put_back(self, timer: _MockTimer) -> None:
        """Return a timer taken from the heap without firing it: it stays pending."""
        timer.clock = self
        if timer.deadline:
            self._count_deadline(timer, 1)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))

    def _fire_counted(self, timer: _MockTimer, fired: dict[str, int]) -> None:
        """Fire ``timer``, unless timers of its label already fired too often at this instant.

        Time moves only between timers of different times, so an alarm whose handler sets it again
        to ``ctx.now_ms()`` (or earlier) would run forever at one instant: ``advance()`` raises
        instead (the timer stays pending).
        """
        other = timer.loop
        if other is not None and other.is_running() and other is not asyncio.get_running_loop():
            self._put_back(timer)
            raise RuntimeError(
                "MockClock.advance() stopped: this clock drives runtimes on two event loops running "
                "at once (a BlockingRuntime's, in its thread, and another), and a timer's callback "
                "runs on its own runtime's loop only; give each BlockingRuntime a MockClock of its own"
            )
        if timer.label is not None:
            count = fired[timer.label] = fired.get(timer.label, 0) + 1
            if count > self.SAME_INSTANT_LIMIT:
                self._put_back(timer)
                raise RuntimeError(
                    f"MockClock.advance() stopped: {timer.label} fell due {self.SAME_INSTANT_LIMIT} times "
                    f"at {self._now!r} without time moving (an alarm() handler that sets the alarm to "
                    "ctx.now_ms() or earlier runs again at once, forever, since mock time moves only "
                    "when the next timer is later); set the next alarm in the future, or delete it"
                )
        if timer.deadline:
            self._stalled.clear()  # the work it limits may go on now: wait for it again
        timer.callback()
