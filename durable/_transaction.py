"""``storage.transaction()`` and ``transaction_sync()``: explicit transactions and their isolation.

Explicit transactions are savepoints in the object's implicit transaction, kept isolated from the
rest of the object's code: they are serialized (one per object runs at a time, nested ones inside
it), and code outside the running one waits for it to end before it touches storage. workerd gets
the same from its input gate, which holds every other continuation of the object; asyncio cannot
hold another task's awaits, so storage does it.

:class:`Transactions` is that machinery, one per ``Storage``: the stack of open transactions, the
queue of storage calls and transactions waiting for their turn, and the running of closures.
``Storage`` asks it, only while a transaction is open, where the running code stands
(:meth:`Transactions.where`) and queues a call that must wait (:meth:`Transactions.defer`).
:class:`Transaction` is the ``txn`` handle a closure receives; it forwards to the ``Storage``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import inspect
import types
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

from ._aliases import camel_aliases, normalize_options
from ._done import Done
from ._eager import create_task_later, task_started
from ._exceptions import InvalidTransactionError
from ._gates import GateLock, InputGate, held_locks
from ._keys import (
    ALARM_GET_OPTIONS,
    ALARM_SET_OPTIONS,
    GET_OPTIONS,
    PUT_OPTIONS,
    alarm_time_ms,
    check_key_arguments,
    check_put_arguments,
    list_range,
)

if TYPE_CHECKING:
    from ._storage import Storage, StorageHost

__all__ = ["NOW", "AsyncClosure", "Closure", "Transaction", "Transactions"]

T = TypeVar("T")

_NOT_A_FUNCTION = "Failed to execute '{method}' on 'DurableObjectStorage': parameter 1 is not of type 'function'."
"""workerd's TypeError for ``transaction()`` / ``transactionSync()`` given something not callable."""

_in_transaction: ContextVar[Transaction | None] = ContextVar("durable_transaction", default=None)


@final
@camel_aliases
class Transaction:
    """The ``txn`` handle of a ``storage.transaction()`` closure.

    Offers ``get``, ``put``, ``delete``, ``list``, the alarm methods and ``rollback()``;
    ``delete_all`` (``deleteAll``) is there too, as on workerd's ``txn``, and always raises. Using it after the closure returned, or after ``rollback()`` (or the closure
    raising, which rolls it back), raises ``InvalidTransactionError`` with Cloudflare's message,
    once the call's arguments passed their checks: as in workerd, bad arguments raise their own
    error first, and a ``list()`` of an empty range answers ``{}``.
    """

    __slots__ = (
        "_caller",
        "_caller_held",
        "_children",
        "_closure_task",
        "_gate",
        "_gate_lock",
        "_held",
        "_host",
        "_outer",
        "_phase",
        "_runner",
        "_savepoint",
        "_started",
        "_storage",
        "_woken",
    )

    def __init__(
        self,
        storage: Storage,
        txns: Transactions,
        host: StorageHost,
        outer: Transaction | None,
        caller_held: frozenset[GateLock],
    ) -> None:
        self._storage = storage
        """The storage the operations of ``txn`` go to."""
        self._host = host
        """The storage's object, for the checks of ``set_alarm``'s time."""
        self._runner = txns
        """The storage's transaction machinery, which opens, ends and rolls back this one."""
        self._outer = outer
        """The transaction (of any object) the code that started this one ran inside."""
        self._caller_held = caller_held
        self._held: frozenset[GateLock] = caller_held
        self._gate: InputGate | None = None
        self._gate_lock: GateLock | None = None
        self._savepoint = ""
        self._phase = "active"
        self._started = False
        """Started (savepoint open, gate closed) and not yet ended."""
        self._closure_task: asyncio.Future[Any] | None = None
        """The task running the closure, while the transaction waits for it to start."""
        self._caller: object = None
        """The task that called ``transaction()``: until the closure starts, its storage calls run
        outside the transaction, even while calls queued before wait (:meth:`Transactions._goes_first`)."""
        self._woken: object = None
        """For a transaction that waited for another one: the task that called that one, woken by
        its end. Until this closure starts, its calls run outside this transaction too."""
        self._children: set[asyncio.Task[Any]] = set()
        """Transactions started inside this one that have not ended: it ends after them."""

    def __repr__(self) -> str:
        return f"<durable.Transaction {self._phase}>"

    def _check(self, op: str) -> Storage:
        if self._phase.startswith("rolled_back"):
            raise InvalidTransactionError(f"Cannot {op}() on rolled back transaction")  # workerd's text
        if self._phase != "active":
            raise InvalidTransactionError(
                f"Cannot call {op}() on transaction that has already committed: did you move `txn` "
                "outside of the closure?"
            )
        return self._storage

    def get(self, key: Any, **options: Any) -> Awaitable[Any]:
        """As ``Storage.get``, inside the transaction."""
        if self._phase != "active":
            check_key_arguments("get", key, options, GET_OPTIONS)  # workerd reads them first
        return self._check("get").get(key, **options)

    def list(self, **options: Any) -> Awaitable[dict[str, Any]]:
        """As ``Storage.list``, inside the transaction."""
        if self._phase != "active" and list_range(options) is None:
            return Done({})  # workerd answers an empty range before it looks at the transaction
        return self._check("list").list(**options)

    def put(self, key: Any, value: Any = ..., **options: Any) -> Awaitable[None]:
        """As ``Storage.put``, inside the transaction."""
        if self._phase != "active":
            check_put_arguments(key, value, options)  # workerd reads and serializes them first
        return self._check("put").put(key, value, **options)

    def delete(self, key: Any, **options: Any) -> Awaitable[Any]:
        """As ``Storage.delete``, inside the transaction."""
        if self._phase != "active":
            check_key_arguments("delete", key, options, PUT_OPTIONS)
        return self._check("delete").delete(key, **options)

    def get_alarm(self, **options: Any) -> Awaitable[int | None]:
        """As ``Storage.get_alarm``, inside the transaction."""
        if self._phase != "active" and options:
            normalize_options("get_alarm", options, ALARM_GET_OPTIONS)
        return self._check("getAlarm").get_alarm(**options)

    def set_alarm(self, when: int | float | _dt.datetime, **options: Any) -> Awaitable[None]:
        """As ``Storage.set_alarm``, inside the transaction."""
        # Checked here first: a bad time is workerd's TypeError, naming 'DurableObjectTransaction',
        # even once the transaction has ended.
        if options:
            normalize_options("set_alarm", options, ALARM_SET_OPTIONS)
        alarm_time_ms(when, self._host, "DurableObjectTransaction")
        return self._check("setAlarm").set_alarm(when, **options)

    def delete_alarm(self, **options: Any) -> Awaitable[None]:
        """As ``Storage.delete_alarm``, inside the transaction."""
        if self._phase != "active" and options:
            normalize_options("delete_alarm", options, ALARM_SET_OPTIONS)
        return self._check("deleteAlarm").delete_alarm(**options)

    def delete_all(self, **options: Any) -> Awaitable[None]:
        """Not available in a transaction, as on Cloudflare."""
        raise InvalidTransactionError("Cannot call deleteAll() within a transaction")

    def rollback(self) -> None:
        """Discard the transaction's writes; the closure's return value is still returned.

        May be called more than once, even after the closure ended rolled back (it called
        ``rollback()`` or raised). Afterwards every other operation on ``txn`` raises.

        Raises:
            InvalidTransactionError: a transaction started inside this one is still running
                (workerd's ``Cannot roll back an outer transaction while a nested transaction is
                still running.``, measured with miniflare); nothing is rolled back.
        """
        if self._phase.startswith("rolled_back"):
            return  # also once the closure ended rolled back (it raised): workerd returns undefined
        self._check("rollback")
        runner = self._runner
        if self._started and ((runner.stack and runner.stack[-1] is not self) or runner._sync_depth):
            raise InvalidTransactionError(
                "Cannot roll back an outer transaction while a nested transaction is still running."
            )
        self._phase = "rolled_back"
        self._runner.roll_back(self)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        deleteAll = delete_all
        getAlarm = get_alarm
        setAlarm = set_alarm
        deleteAlarm = delete_alarm


AsyncClosure = Callable[[Transaction], Awaitable[T]] | Callable[[], Awaitable[T]]
"""A ``transaction()`` closure that is a coroutine function: of ``txn``, or of nothing."""
Closure = Callable[[Transaction], Awaitable[T] | T] | Callable[[], Awaitable[T] | T]
"""Any ``transaction()`` closure: of ``txn`` or of nothing, returning a value or an awaitable."""


def _takes_txn(closure: Callable[..., Any]) -> bool:
    """Whether ``closure`` takes the ``txn`` argument. One that takes no argument is called without
    it, as JavaScript's ``transaction(async () => ...)`` ignores it (the usual form on SQLite-backed
    objects, where writes straight on ``ctx.storage`` join the transaction)."""
    if isinstance(closure, types.FunctionType):  # the common case, without inspect.signature
        code = closure.__code__
        return bool(code.co_argcount or code.co_flags & inspect.CO_VARARGS)
    try:
        signature = inspect.signature(closure)
    except (TypeError, ValueError):
        return True  # no signature to read: called with txn, as the contract says
    try:
        signature.bind(None)
    except TypeError:
        try:
            signature.bind()
        except TypeError:
            return True  # it takes neither: the call with txn raises Python's own error
        return False
    return True


class _Here(enum.Enum):
    """What :meth:`Transactions.where` answers when the running code may use storage at once."""

    NOW = "now"


NOW: Final = _Here.NOW
"""``Transactions.where()``'s answer when the running code may use storage now."""


@final
class _Waiting:
    """A storage call or transaction that waits for ``level`` to be the innermost transaction."""

    __slots__ = ("apply", "fut", "level", "txn")

    def __init__(
        self,
        level: Transaction | None,
        apply: Callable[[], Any] | None,
        fut: asyncio.Future[Any],
        txn: Transaction | None,
    ) -> None:
        self.level = level
        self.apply = apply
        self.fut = fut
        self.txn = txn


@final
class Transactions:
    """One storage's explicit transactions: the open ones, the calls waiting, the closures' runs.

    ``stack`` holds the open transactions, outermost first, each nested in the one before it; it
    is empty unless a ``transaction()`` runs, so ``Storage`` tests it before asking anything else
    (the hot path of a plain ``get``/``put`` stays one list test). Package-internal interface:
    ``stack``, :meth:`level`, :meth:`inside`, :meth:`where`, :meth:`defer`, :meth:`check_sync`,
    :meth:`run`, :meth:`run_sync` and :meth:`roll_back`.
    """

    __slots__ = ("_db", "_gen", "_host", "_queue", "_sync_depth", "stack")

    def __init__(self, host: StorageHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self._db = host.db
        self.stack: list[Transaction] = []
        """Open transactions, outermost first; each one is nested in the one before it. Never
        rebound: ``Storage``, ``SqlStorage`` and ``SyncKV`` test this same list."""
        self._queue: list[_Waiting] = []
        """Storage calls and transactions waiting for the transaction they belong to to be innermost."""
        self._sync_depth = 0
        """How many ``transaction_sync()`` callbacks are running (a ``transaction()`` waits for them)."""

    # -- where the running code stands -----------------------------------------------------------

    def level(self) -> Transaction | None:
        """The innermost open transaction of this storage that the running code is inside, if any."""
        txn = _in_transaction.get()
        while txn is not None:
            if txn._runner is self and txn._started:
                return txn
            txn = txn._outer
        return None

    def inside(self) -> bool:
        """Whether the running code is inside one of this storage's open ``transaction()`` calls."""
        return bool(self.stack) and self.level() is not None

    def where(self) -> Transaction | _Here | None:
        """:data:`NOW` if the running code may use storage now, else the level it must wait for.

        Code may use storage when it runs inside the innermost open transaction (or no
        transaction is open). Anything else would write into that transaction's savepoint (and be
        undone by its rollback) or read its uncommitted writes.
        """
        stack = self.stack
        if not stack:
            return NOW
        level = self.level()
        return NOW if level is stack[-1] or _goes_first(stack, self._queue, level) else level

    def defer(
        self, level: Transaction | None, apply: Callable[[], Any], *, write: bool = False, gated: bool = True
    ) -> asyncio.Future[Any]:
        """Queue ``apply`` until ``level`` is the innermost open transaction; a future of its result.

        A write marks the object as written now, so the calling event's result waits behind the
        output gate until the write, applied later, is committed.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._queue.append(_Waiting(level, apply, fut, None))
        if write:
            self._host.wrote(gated=gated)
        return fut

    def check_sync(self, what: str) -> None:
        """Refuse a synchronous call (``what``) made from outside the transaction that is running."""
        if self.stack and self.where() is not NOW:
            raise InvalidTransactionError(_OTHER_EVENT.format(what=what))

    def _drain(self, ended: Transaction | None = None) -> None:
        """Run what waited for the now innermost transaction (or for none), in call order; the
        caller of ``ended`` (if given) goes first as a starting one's own does (``_woken``)."""
        stack, queue = self.stack, self._queue
        host = self._host
        i = 0
        while i < len(queue):
            top = stack[-1] if stack else None
            entry = queue[i]
            if entry.level is not top and self._gen == host.gen:
                i += 1
                continue
            if entry.txn is not None and self._opening() and self._gen == host.gen:
                return  # a transaction about to start goes first; what follows waits for it
            del queue[i]
            fut = entry.fut
            try:
                host.check_live(self._gen)  # reset meanwhile: everything waiting fails
                if entry.txn is not None:
                    # Its turn: the gate closes for it now, its savepoint opens when its closure
                    # starts (after the code woken by the transaction that ended, as in workerd).
                    self._close_gate(entry.txn)
                    self.stack.append(entry.txn)
                    entry.txn._woken = ended._caller if ended is not None else None
                    result: Any = None
                else:
                    assert entry.apply is not None
                    result = entry.apply()
            except BaseException as exc:
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(result)
            if entry.txn is not None:
                return  # it is innermost now: what follows waits for it

    def _opening(self) -> bool:
        """Whether a transaction is called (its gate closed) but its closure has not started (nor
        its savepoint). There is at most one, innermost: nothing else starts until it has."""
        stack = self.stack
        return bool(stack) and not stack[-1]._started

    def _close_gate(self, txn: Transaction) -> None:
        gate = self._host.gate
        lock, _ = gate.close_for("transaction()")
        txn._gate, txn._gate_lock = gate, lock
        txn._held = txn._caller_held | {lock}

    def _open(self, txn: Transaction) -> None:
        """The closure of ``txn`` (called, its gate closed) starts: open its savepoint."""
        txn._closure_task = None
        try:
            self._host.check_live(self._gen)  # reset meanwhile: the closure does not run
            txn._savepoint = self._db.savepoint()
        except BaseException:
            self._give_up(txn)
            raise
        txn._started = True  # on the stack since it was called (where())
        self._host.alarms.section_started()  # (a pending deletion is confirmed first)

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        """The task of a transaction that never started ended (cancelled before its first step)."""
        if self._opening() and (txn := self.stack[-1])._closure_task is task:
            self._give_up(txn)

    def _give_up(self, txn: Transaction) -> None:
        txn._phase = "failed"
        if txn in self.stack:
            self.stack.remove(txn)
        if txn._gate is not None and txn._gate_lock is not None:
            txn._gate.unlock(txn._gate_lock)
        if self._queue:
            self._drain()

    # -- transaction() ---------------------------------------------------------------------------

    def run(self, closure: Closure[T], storage: Storage) -> asyncio.Task[T]:
        """``storage.transaction(closure)``: a running task; ``txn`` forwards to ``storage``."""
        self._host.check_live(self._gen)
        if not callable(closure):
            # workerd's words (measured with miniflare 4, 2026-04-07: transaction(5)).
            raise TypeError(_NOT_A_FUNCTION.format(method="transaction"))
        parent = self.level()
        txn = Transaction(storage, self, self._host, _in_transaction.get(), held_locks.get())
        txn._caller = asyncio.current_task()
        stack = self.stack
        ready: asyncio.Future[None] | None = None
        if (not stack or stack[-1] is parent) and not self._sync_depth and not self._opening():
            # The gate closes now; the transaction starts with its closure, after the caller's
            # next lines (workerd, measured with miniflare 4, 2026-04-07: storage calls made
            # there run before the closure, outside the transaction).
            self._close_gate(txn)
            stack.append(txn)
        else:
            ready = asyncio.get_running_loop().create_future()
            self._queue.append(_Waiting(parent, None, ready, txn))
        task = create_task_later(asyncio.get_running_loop(), self._run(closure, txn, ready))
        if ready is None:
            txn._closure_task = task
            task.add_done_callback(self._abandon)
        if parent is not None:
            children = parent._children
            children.add(task)
            task.add_done_callback(children.discard)
        return task

    async def _run(self, closure: Closure[T], txn: Transaction, ready: asyncio.Future[None] | None) -> T:
        if ready is None:
            await task_started()  # (on an eager loop: after the caller's next lines, as on any other)
        else:
            try:
                await ready  # raises the reset error if the object was reset meanwhile
                # workerd (miniflare 4, 2026-04-07): the code woken by the end of the one before
                # (`await first; storage.get(...)`) runs before this closure starts. Its wake-up
                # came after ours (a turn later for a hand-stepped event, Python 3.11): let it go.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            except BaseException:
                if txn in self.stack:
                    self._give_up(txn)  # its turn came, but it was cancelled before it started
                else:
                    self._queue[:] = [entry for entry in self._queue if entry.txn is not txn]
                    txn._phase = "failed"
                raise
        try:
            self._open(txn)
        except BaseException:
            if (task := asyncio.current_task()) is not None:
                task.add_done_callback(self._retrieve_if_reset)  # as below
            raise
        held_locks.set(txn._held)
        _in_transaction.set(txn)
        try:
            try:
                result = closure(txn) if _takes_txn(closure) else closure()  # type: ignore[call-arg]
                if inspect.isawaitable(result):
                    result = await result
            finally:
                await _wait_children(txn)
        except BaseException:
            self._end(txn, failed=True)
            if (task := asyncio.current_task()) is not None:
                # If the object is reset under the transaction, or before the event that awaits
                # this task resumes (a commit of this same turn fails), every caller gets the
                # reset error and that event is dropped; asyncio need not then report this task's
                # error as "never retrieved" (CPython 3.11 may even raise SystemError when it
                # logs that during a garbage collection inside compile()). Decided once the task
                # is done, after the awaiting event's own wake-up, which was registered first.
                task.add_done_callback(self._retrieve_if_reset)
            raise
        self._end(txn, failed=False)
        return result

    def _retrieve_if_reset(self, task: asyncio.Future[Any]) -> None:
        if self._gen != self._host.gen:
            _retrieve(task)

    def _end(self, txn: Transaction, *, failed: bool) -> None:
        """Commit (release) or roll back ``txn``'s savepoint, reopen the gate, run what waited."""
        host = self._host
        live = self._gen == host.gen  # after a reset the savepoint is gone with everything else
        try:
            if live and txn._started and txn._phase == "active":
                if failed:
                    self._db.rollback_to(txn._savepoint)
                else:
                    self._db.release(txn._savepoint)
                host.savepoint_ended(not failed)
        finally:
            if txn._phase == "active" and not failed:
                txn._phase = "committed"
            elif txn._phase in ("active", "rolled_back"):
                # A closure that raised was rolled back: workerd then says "on rolled back
                # transaction" to an escaped txn, as after rollback() (measured with miniflare).
                txn._phase = "rolled_back_ended"
            opened = txn._started
            if opened:
                txn._started = False
                self.stack.remove(txn)  # the innermost one: its children have ended
            self._drain(txn)  # a transaction waiting for this one closes the gate before it opens
            if opened:
                assert txn._gate is not None and txn._gate_lock is not None
                txn._gate.unlock(txn._gate_lock)
            if live:
                host.transaction_ended()

    def roll_back(self, txn: Transaction) -> None:
        """Undo ``txn``'s savepoint (``txn.rollback()``, which refuses while one inside it runs)."""
        if self._gen != self._host.gen or not txn._started:
            return  # reset: the savepoint is gone already
        self._db.rollback_to(txn._savepoint)
        self._host.savepoint_ended(False)

    # -- transaction_sync() ----------------------------------------------------------------------

    def run_sync(self, closure: Callable[[], T]) -> T:
        """``storage.transaction_sync(closure)``: run it in a savepoint and return its value."""
        host = self._host
        host.check_live(self._gen)
        if not callable(closure):
            raise TypeError(_NOT_A_FUNCTION.format(method="transactionSync"))
        if inspect.iscoroutinefunction(closure):
            raise TypeError("transaction_sync() takes a synchronous callable; use transaction() for async code")
        if self.stack:
            self.check_sync("transaction_sync()")
        db = self._db
        savepoint = db.savepoint()
        self._sync_depth += 1
        try:
            try:
                result = closure()
                if inspect.isawaitable(result):
                    _close_awaitable(result)
                    raise TypeError("transaction_sync() callback returned an awaitable; it must be synchronous")
            except BaseException:
                db.rollback_to(savepoint)
                host.savepoint_ended(False)
                host.wrote(gated=True)
                raise
            db.release(savepoint)
            host.savepoint_ended(True)
            host.wrote(gated=True)
            return result
        finally:
            self._sync_depth -= 1
            if self._queue and not self._sync_depth:
                self._drain()  # a transaction() started inside the callback starts now


_OTHER_EVENT = (
    "Cannot call {what} while a transaction() of another event is in progress on this "
    "object: await that transaction first, or make the call inside its closure (workerd "
    "runs no other code of the object until the transaction ends; durable cannot pause "
    "synchronous code, so it refuses the call instead of mixing it into the transaction)"
)


def _goes_first(stack: list[Transaction], queue: list[_Waiting], level: Transaction | None) -> bool:
    """Whether the running code, at ``level``, runs before the closure of the innermost
    transaction, which has not started yet: outside it.

    workerd starts a closure once the calling code's turn is over: what that turn still does runs
    first, outside the transaction (the caller's next lines, the other branches of a
    ``Promise.all``, code its resolutions wake; measured with miniflare 4.20260426.0,
    tests/test_storage_order.py). Here the closure starts at its task's first step, behind the
    callbacks the loop already had ready at the ``transaction()`` call: any code of the object that
    runs before it (a coroutine gathered with the caller) goes first. While calls queued during an
    earlier transaction wait at ``level``, only the caller, and the code woken by the end of the
    transaction this one waited for, go first, so that the queued calls keep their order
    (tests/test_storage_order.py). O(1) but for that scan of the (short) queue.
    """
    top = stack[-1]
    if top._started or level is not (stack[-2] if len(stack) > 1 else None):
        return False
    if queue and any(entry.txn is None and entry.level is level for entry in queue):
        task = asyncio.current_task()
        return top._caller is task or top._woken is task
    return True


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # A queued write may be left un-awaited: mark its error as seen (it also reached the commit).
    if not fut.cancelled():
        fut.exception()


def _close_awaitable(result: object) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


async def _wait_children(txn: Transaction) -> None:
    """Wait for the transactions started inside ``txn`` (they are nested in its savepoint)."""
    cancelled = False
    while txn._children:
        try:
            await asyncio.wait(list(txn._children))
        except asyncio.CancelledError:
            cancelled = True
            for child in txn._children:
                child.cancel()
    if cancelled:
        raise asyncio.CancelledError
