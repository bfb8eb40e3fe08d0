"""Output gates: a result leaves an object only once the writes made before it are durable.

Cloudflare's rule (see "Durable Objects: Easy, Fast, Correct — Choose three"): while a write is not
yet confirmed, the object's outgoing messages (the results of its calls, the calls it makes to
other objects) are held; they are released when the write is durable, and if the write fails they
are never sent: the object is reset instead (workerd's "broken.outputGateBroken"). Writes made with
``allow_unconfirmed`` do not hold the gate.

An :class:`OutputGate` belongs to one object's host. It keeps the :class:`Batch` of writes made
since the last commit and decides, per result, whether it leaves now or waits for that batch. The
host commits (it owns the database); the gate only schedules the commit for the end of the loop
turn and settles what waited on it, with the results or with copies of the reset error
(:func:`reset_copy`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ._exceptions import DurableError, ObjectResetError, copy_remote_exception

__all__ = ["Batch", "OutputGate", "commit_failed", "reset_copy", "resolve"]


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
        message = f"Durable Object reset because its storage commit failed: {type(exc).__name__}: {exc}"
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
        self.waiters: list[asyncio.Future[None]] = []

    def waiter(self) -> asyncio.Future[None]:
        """A future that settles when this batch is durable (with the reset error if it fails)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        return fut

    def succeed(self) -> None:
        """The batch is durable: release what it held."""
        for fut, value, is_error in self.held:
            resolve(fut, value, is_error)
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


class OutputGate:
    """The output gate of one object: its uncommitted batch and the commit scheduled for it.

    ``commit`` is the host's commit; the gate calls it once the loop turn in which
    :meth:`schedule_commit` was first called ends (workerd commits on the next turn of the event
    loop, so the writes of every event that runs in that turn share one commit).
    """

    __slots__ = ("_commit", "_handle", "_loop", "batch")

    def __init__(self, commit: Callable[[], None]) -> None:
        self._commit = commit
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batch: Batch | None = None
        """The writes since the last commit (None: nothing to commit)."""

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

    def take(self) -> Batch | None:
        """The batch to commit now; the gate starts a new one (empty until the next write)."""
        batch, self.batch = self.batch, None
        return batch

    def fail(self, error: BaseException) -> None:
        """The uncommitted writes are dropped (reset): what waited for them gets ``error``."""
        batch, self.batch = self.batch, None
        if batch is not None:
            batch.fail(error)

    def schedule_commit(self) -> None:
        """Commit when this loop turn ends; a commit already scheduled on this loop will do."""
        loop = asyncio.get_running_loop()
        if self._handle is None or self._loop is not loop:
            # (A commit left on another loop, one that stopped before running it, never runs.)
            self._handle = loop.call_soon(self._scheduled)
            self._loop = loop

    def _scheduled(self) -> None:
        self._handle = None
        self._commit()

    def deliver(self, fut: asyncio.Future[Any], value: Any, is_error: bool, *, hold: bool = True) -> None:
        """Hand a result to its caller: at once, or when the batch it follows is durable.

        With ``hold=False`` (the event runs inside one of the object's own open transactions,
        whose commit waits for it) the result leaves at once.
        """
        batch = self.batch
        if hold and batch is not None and batch.gated:
            batch.held.append((fut, value, is_error))
        elif is_error:
            fut.set_exception(value)
        else:
            fut.set_result(value)

    def outgoing_waiter(self) -> asyncio.Future[None] | None:
        """What a call the object makes now must wait for: the commit of its earlier writes, if any."""
        batch = self.batch
        if batch is None or not batch.gated:
            return None
        return batch.waiter()

    def commit_waiter(self) -> asyncio.Future[None] | None:
        """A future settled when the current batch is durable; None if nothing waits for a commit."""
        batch = self.batch
        return None if batch is None else batch.waiter()
