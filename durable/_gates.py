"""Input gates: which events may enter an object, and when.

Cloudflare's rule (see "Durable Objects: Easy, Fast, Correct — Choose three"): while a storage
operation is in flight, or a ``blockConcurrencyWhile`` callback or ``transaction()`` runs, no other
event is delivered to the object: not new calls, not alarms, not the results of calls the object
made to others. At any other suspension point events do get in.

In `durable` every storage operation completes synchronously (SQLite is local; the awaitable a
storage call returns is already resolved), so a storage read can never leave the gate open for a
foreign event: ``v = await get(k); await put(k, v + 1)`` is atomic without any gate work. What does
close the gate is a :class:`GateLock`, taken by ``block_concurrency_while`` and ``transaction()``
for as long as their callback runs, across any awaits.

Events that the lock holder itself started (a call it makes that comes back to the same object,
A → B → A) must get in, or the chain would deadlock. Python's context variables carry that
ancestry: a lock holder runs with the lock in :data:`held_locks`, every task it starts inherits a
copy of its context, so a call chain that descends from the holder carries the lock along and
passes the gate. Waiters are served first-come, first-served.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from asyncio import _get_running_loop
from collections.abc import Awaitable, Generator
from contextvars import ContextVar
from typing import Any, Generic, TypeVar, final

__all__ = ["GateLock", "GatedIO", "InputGate", "held_locks", "through_gate"]

T = TypeVar("T")


_CHILD_FIRST = 1 << 62
"""Subtracted from the place of a callback waiting to close the gate: it goes before every event."""


class GateLock:
    """A closed input gate, held by one ``block_concurrency_while`` or ``transaction()``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<GateLock {self.reason}>"


held_locks: ContextVar[frozenset[GateLock]] = ContextVar("durable_held_locks", default=frozenset())
"""The gate locks held by the current call chain (inherited by every task it starts)."""


class InputGate:
    """The input gate of one generation of one object.

    When the object is reset, its gate is broken: every event still waiting fails with the reset
    error, and the next generation gets a fresh gate.
    """

    __slots__ = ("_broken", "_reopen_on", "_seq", "locks", "reopening", "waiters")

    def __init__(self) -> None:
        # Read directly by the host's fast path (ObjectHost.call_rpc, the end of an event): the
        # `idle` and `locked` properties cost a Python call each, about 650 instructions on 3.11.
        # Changed only here.
        self.locks: list[GateLock] = []
        """The locks that hold the gate closed (``block_concurrency_while``, ``transaction()``)."""
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []
        """The events waiting at the gate, as a heap by arrival."""
        self._seq = itertools.count()
        self._broken: BaseException | None = None
        self.reopening = False
        """The last lock ended in this loop turn: results wait until the next (``unlock``)."""
        self._reopen_on: asyncio.AbstractEventLoop | None = None
        """The loop whose next turn ends ``reopening`` (``_reopen``)."""

    @property
    def broken_by(self) -> BaseException | None:
        """The error that ended this gate's generation (a reset's, or the ``ConnectionClosedError``
        of an eviction or a shutdown), or None while it is the object's gate."""
        return self._broken

    @property
    def locked(self) -> bool:
        """Whether a ``block_concurrency_while`` or ``transaction()`` holds the gate closed."""
        return bool(self.locks)

    @property
    def idle(self) -> bool:
        """No lock is held, no event waits, and no lock ended in this loop turn (``reopening``): an
        event may run at once, with no ordering to keep. An event that arrives in the turn the last
        lock ended waits for the next, behind the lock holder's caller, as in workerd (an alarm
        that fell due then: miniflare 4.20260426, tests/test_alarm_fuzz_found.py)."""
        return not self.locks and not self.waiters and not self.reopening

    def is_open(self) -> bool:
        """Whether an event in the current context may proceed now."""
        if not self.locks:
            return True
        held = held_locks.get()
        return all(lock in held for lock in self.locks)

    def must_wait(self) -> bool:
        """Whether the result of a call made in the current context must wait at the gate before
        the code that made it goes on: while the gate is closed to it, or, when no lock is held,
        while events queued at the gate still wait to enter (they arrived first: workerd delivers
        them first, measured with miniflare 4.20260426, tests/test_interleave_found.py), and in
        the loop turn in which the last lock ended (``reopening``). Inside
        the lock holder's own chain it never waits (it would wait for itself).
        """
        if self.locks:
            return not self.is_open()
        return bool(self.waiters) or self.reopening

    def close_for(self, reason: str) -> tuple[GateLock, frozenset[GateLock]]:
        """Close the gate for a callback about to run (``block_concurrency_while``, a transaction).

        Returns the lock, to ``unlock`` when the callback ends, and the locks the callback's task
        must carry in :data:`held_locks` so that it, and the calls it makes, still pass the gate.
        """
        lock = GateLock(reason)
        self.locks.append(lock)
        return lock, held_locks.get() | {lock}

    def unlock(self, lock: GateLock) -> None:
        try:
            self.locks.remove(lock)
        except ValueError:
            return
        if self.locks:
            return
        running = _get_running_loop()
        # On the next loop iteration: the callback's caller, woken when its task ends, resumes
        # first and runs up to its next suspension before a waiting event gets in, as in
        # workerd, which resolves blockConcurrencyWhile()'s promise under the input lock.
        # The waiters' loop, not the running one: a callback's coroutine closed where no loop
        # runs (collected at shutdown) still ends here, and must not raise in its `finally`.
        loop = self.waiters[0][1].get_loop() if self.waiters else running
        if loop is None:
            return
        if loop is running:
            # Until then a result whose code resumes in this turn (it came back while the gate
            # was closed, and its wake-up was queued before the caller's) waits too (must_wait):
            # workerd runs the caller first (miniflare 4.20260426, tests/test_review8.py).
            self.reopening = True
            self._reopen_on = loop
            loop.call_soon(self._reopen, loop)
        elif self.waiters:  # another thread's loop, maybe running: thread-safely
            try:
                loop.call_soon_threadsafe(self._wake_next)
            except RuntimeError:
                pass  # closed: it runs nothing more (waking its waiters would raise the same)

    def _reopen(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._reopen_on:
            return  # left on a loop that stopped first; the runtime moved on (``wait``)
        self.reopening = False
        if not self.locks:
            self._wake_next()

    def _wake_next(self) -> None:
        while self.waiters:
            _, fut = self.waiters[0]
            if fut.done():  # cancelled while waiting
                heapq.heappop(self.waiters)
                continue
            fut.set_result(None)
            return

    def depth(self) -> int:
        """How many of the locks held on this gate the current context runs inside (nesting depth)."""
        held = held_locks.get()
        return sum(lock in held for lock in self.locks)

    def inside(self) -> bool:
        """Whether the current context runs inside a lock held on this gate (its callback, its calls)."""
        held = held_locks.get()
        return any(lock in held for lock in self.locks)

    def ticket(self) -> tuple[int, asyncio.Future[None]]:
        """A place in the queue for a callback that will close the gate, for a ``wait(ticket)`` that
        starts later. Such callbacks go before every waiting event, first-come, first-served among
        themselves (workerd's critical sections wait as the gate's "children", served first).

        If that wait never starts (its task cancelled first), pass the ticket to ``abandon``.
        """
        entry = (next(self._seq) - _CHILD_FIRST, asyncio.get_running_loop().create_future())
        heapq.heappush(self.waiters, entry)
        return entry

    def abandon(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        """A ticket will not be used: leave the queue, passing the turn on if it had come."""
        if entry in self.waiters:
            self._remove(entry)
            if entry[1].done() and not entry[1].cancelled():
                self._wake_next()
        entry[1].cancel()

    async def wait(self, ticket: tuple[int, asyncio.Future[None]] | None = None) -> None:
        """Wait until this event may enter. Raises the reset error if the gate breaks meanwhile."""
        if self._broken is not None:
            raise self._broken
        if ticket is None:
            if not self.waiters and self.is_open() and not self.reopening:
                return
            seq = next(self._seq)
        else:
            seq = ticket[0]
        if self.reopening and self._reopen_on is not (running := asyncio.get_running_loop()):
            # The lock ended in the last turn of a loop that stopped before its next one, which
            # was to end ``reopening``: the runtime runs on this loop now, whose next turn does
            # (else every event would wait here for ever).
            self._reopen_on = running
            running.call_soon(self._reopen, running)
        while True:
            if ticket is None:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                entry = (seq, fut)
                heapq.heappush(self.waiters, entry)
            else:
                entry, ticket = ticket, None
                fut = entry[1]
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    # We were woken but will not enter: pass the turn on.
                    self._remove(entry)
                    self._wake_next()
                else:
                    self._remove(entry)
                raise
            self._remove(entry)
            if self._broken is not None:
                raise self._broken
            if self.is_open():
                # Let the next waiter check too; it resumes after this event has run up to its
                # first suspension, by which time any lock this event takes is in place.
                self._wake_next()
                return

    def _remove(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        try:
            self.waiters.remove(entry)
        except ValueError:
            return
        heapq.heapify(self.waiters)

    def break_(self, error: BaseException) -> None:
        """Fail every waiting event with ``error``; later waits fail at once."""
        self._broken = error
        self.locks.clear()
        waiters, self.waiters = self.waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_result(None)  # they re-check, see the break and raise


def through_gate(io: Awaitable[T], gate: InputGate) -> GatedIO[T]:
    """``io`` (outside I/O: ``sync()``, ``get_current_bookmark()``) as an awaitable whose completion
    waits at ``gate`` until the current context may go on, as an event waits to enter: it is
    delivered to the waiting code only once the gate opens. workerd holds such a continuation while
    another event's ``blockConcurrencyWhile()`` callback runs (measured with miniflare 4,
    2026-04-07); the callback's own code passes (``InputGate.is_open``). As an RPC result, it also
    waits in the turn the last lock ended, for the code that lock's end woke
    (``InputGate.must_wait``): workerd resumes a transaction's caller before an event whose
    ``sync()`` came back meanwhile (miniflare 4, 2026-04-07, tests/test_object_model_found.py).

    ``io`` must be re-awaitable (a future): the result, like workerd's Promise, may be awaited
    more than once, or not at all, without a "never awaited" warning.
    """
    return GatedIO(io, gate)


@final
class GatedIO(Generic[T]):
    """What :func:`through_gate` returns: each ``await`` waits for ``io``, then at the gate."""

    __slots__ = ("gate", "io")

    def __init__(self, io: Awaitable[T], gate: InputGate) -> None:
        self.io = io
        self.gate = gate

    def __await__(self) -> Generator[Any, None, T]:
        return _through_gate(self.io, self.gate).__await__()


async def _through_gate(io: Awaitable[T], gate: InputGate) -> T:
    value = await io
    if gate.must_wait():
        await gate.wait()
    return value
