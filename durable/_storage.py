"""``ctx.storage``: the transactional key-value API of one object, its transactions and its alarm.

Every method applies its effect when called and returns an awaitable that is already resolved, as
Cloudflare's promises run whether or not they are awaited: an un-awaited ``put`` still happens, and a
``get`` sees every write made before it (reads of one's own writes are immediate). Writes join the
object's implicit transaction, which the host commits at the end of the turn; the output gate holds
the object's results until that commit (see ``_host.py``).

This module knows nothing of namespaces, stubs or HTTP. It talks to its object through the small
:class:`StorageHost` protocol.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar, final, overload

from ._aliases import camel_aliases, normalize_options
from ._codec import decode, encode
from ._context import check_owner
from ._exceptions import InvalidTransactionError, StorageLimitError
from ._gates import GateLock, InputGate, held_locks
from ._limits import Limits
from ._sqlite import ObjectDatabase
from ._util import lone_surrogate_at

if TYPE_CHECKING:
    from ._sql import SqlStorage, SyncKV

__all__ = ["Done", "Storage", "StorageHost", "Transaction", "check_key", "compile_range", "encode_checked"]

T = TypeVar("T")


@final
class Done(Generic[T]):
    """An awaitable that is already resolved: ``await`` returns its value without suspending.

    Storage calls return these, so awaiting a storage call never yields to the event loop, and
    writes made with or without ``await`` between them coalesce into one commit.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        yield from ()  # a generator that never yields: awaiting it does not suspend
        return self.value

    def __repr__(self) -> str:
        return f"<Done {self.value!r}>"


_NONE: Done[None] = Done(None)

_NO_PITR = (
    "Point-in-time recovery (getCurrentBookmark, getBookmarkForTime, onNextSessionRestoreBookmark) is not "
    "implemented in durable, as in Cloudflare's local runtime; see docs/differences.md"
)


class StorageHost(Protocol):
    """What storage needs from the object that owns it (implemented by ``_host.ObjectHost``)."""

    db: ObjectDatabase
    limits: Limits
    kv_backed: bool
    has_alarm_handler: bool
    gate: InputGate

    gen: int

    def check_live(self, generation: int) -> None: ...
    def wrote(self, gated: bool) -> None: ...
    def alarm_written(self) -> None: ...
    def alarm_visible(self, stored: int | None) -> int | None: ...
    def now_ms(self) -> int: ...
    def commit_waiter(self) -> Awaitable[None]: ...
    def transaction_ended(self) -> None: ...


KeyList = list[str] | tuple[str, ...]

_in_transaction: ContextVar[Transaction | None] = ContextVar("durable_transaction", default=None)

# -- keys, values, ranges (shared with the synchronous ``kv`` API) ------------------------------


def check_key(key: object, host: StorageHost) -> str:
    """Return ``key`` if it is a valid key, else raise ``TypeError`` / ``StorageLimitError``."""
    if type(key) is not str:
        raise TypeError(f"Storage keys must be str, not {type(key).__name__}")
    if host.kv_backed and (limit := host.limits.kv_max_key_bytes) is not None and len(key) * 4 > limit:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise StorageLimitError(
                f"Keys cannot be larger than {limit} bytes. A key of size {size} was provided."
            )
    if not key.isascii() and (index := lone_surrogate_at(key)) is not None:
        raise TypeError(f"Storage keys must be valid Unicode: {key!r} contains a lone surrogate at index {index}")
    return key


def encode_checked(key: str, value: object, host: StorageHost) -> bytes:
    """Encode ``value`` for storage under ``key``, enforcing the value limits of the backend."""
    blob = encode(value)
    limits = host.limits
    if host.kv_backed:
        limit = limits.kv_max_value_bytes
        if limit is not None and len(blob) > limit:
            raise StorageLimitError(
                f"Values cannot be larger than {limit} bytes. A value of size {len(blob)} was provided."
            )
    else:
        limit = limits.sqlite_max_row_bytes
        # len(key) * 4 bounds its UTF-8 size: measure exactly only when it could matter.
        if limit is not None and len(blob) + len(key) * 4 > limit:
            if len(blob) + len(key.encode("utf-8")) > limit:
                raise StorageLimitError("string or blob too big: SQLITE_TOOBIG")
    return blob


def _check_batch(count: int, host: StorageHost) -> None:
    limit = host.limits.kv_max_batch
    if host.kv_backed and limit is not None and count > limit:
        raise StorageLimitError(f"Maximum number of key value pairs is {limit}. {count} pairs were provided.")


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (None: none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000  # surrogates never occur in keys
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def compile_range(
    *,
    start: str | None = None,
    start_after: str | None = None,
    end: str | None = None,
    prefix: str | None = None,
    reverse: bool = False,
    limit: int | None = None,
) -> tuple[str | None, str | None] | None:
    """Turn ``list()`` options into a half-open key range ``[lo, hi)``, as workerd compiles them.

    ``start`` is inclusive, ``start_after`` exclusive (it becomes ``start_after + "\\0"``), ``end``
    exclusive; ``prefix`` clamps the range to the keys that start with it. ``reverse`` does not
    swap the bounds. Returns ``None`` when the range is empty. Raises ``TypeError`` for options
    Cloudflare refuses.
    """
    if start is not None and start_after is not None:
        raise TypeError("list() cannot be called with both start and startAfter values.")
    for label, bound in (("start", start), ("startAfter", start_after), ("end", end), ("prefix", prefix)):
        if bound is not None and type(bound) is not str:
            raise TypeError(f"list() option {label} must be a str, not {type(bound).__name__}")
    if type(reverse) is not bool:
        raise TypeError(f"list() option reverse must be a bool, not {type(reverse).__name__}")
    if limit is not None:
        if type(limit) is not int:
            raise TypeError(f"list() option limit must be an int, not {type(limit).__name__}")
        if limit <= 0:
            raise TypeError("List limit must be positive.")
    lo = start if start_after is None else start_after + "\0"
    hi = end
    if prefix:
        if lo is None or lo < prefix:
            lo = prefix
        succ = _successor(prefix)
        if succ is not None and (hi is None or succ < hi):
            hi = succ
    if lo is not None and hi is not None and hi <= lo:
        return None
    return lo, hi


_GET_OPTIONS = frozenset({"allow_concurrency", "no_cache"})
_PUT_OPTIONS = frozenset({"allow_concurrency", "allow_unconfirmed", "no_cache"})
_LIST_OPTIONS = frozenset({"start", "start_after", "end", "prefix", "reverse", "limit", "allow_concurrency", "no_cache"})


_MAX_ALARM_MS = 8_640_000_000_000_000
"""The largest time a JavaScript ``Date`` holds (ms since the epoch); SQLite's INTEGER holds it too."""


def _to_alarm_ms(when: object, host: StorageHost) -> int:
    if isinstance(when, _dt.datetime):
        ms = int(when.timestamp() * 1000)
    elif type(when) is int or type(when) is float:
        if when != when:  # NaN
            raise TypeError("setAlarm() cannot be called with an alarm time that is not a number")
        if when > _MAX_ALARM_MS:  # also +inf; a larger time is an invalid Date in JavaScript
            raise TypeError(
                f"setAlarm() cannot be called with an alarm time after {_MAX_ALARM_MS} "
                "(the latest time a JavaScript Date can hold)"
            )
        ms = int(when) if when > 0 else 0  # -inf cannot be converted; any time <= 0 is refused below
    else:
        raise TypeError(
            f"setAlarm() takes a time in milliseconds since the epoch (int) or a datetime, "
            f"not {type(when).__name__}"
        )
    if ms <= 0:
        raise TypeError("setAlarm() cannot be called with an alarm time <= 0")
    if not host.has_alarm_handler:
        raise TypeError("Your Durable Object class must have an alarm() handler in order to call setAlarm()")
    return ms


# -- the API ------------------------------------------------------------------------------------


@final
@camel_aliases
class Storage:
    """``ctx.storage``: the object's private, transactional storage.

    Keys are ``str``; values are structured-clone values (see ``docs/values.md``). Every method
    applies its effect when called and returns an awaitable (already resolved), so::

        await self.ctx.storage.put("count", 1)       # awaited or not, the write happens
        count = await self.ctx.storage.get("count")   # sees the write at once

    Writes made without a real suspension between them commit together, atomically, at the end
    of the turn; results leave the object only after that commit (the output gate).
    """

    __slots__ = ("_db", "_gen", "_host", "_kv", "_sql")

    def __init__(self, host: StorageHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self._db = host.db
        self._sql: SqlStorage | None = None
        self._kv: SyncKV | None = None

    def __repr__(self) -> str:
        return f"<durable.Storage {'kv' if self._host.kv_backed else 'sqlite'}-backed>"

    # -- reads --

    @overload
    def get(self, key: str, **options: Any) -> Done[Any]: ...
    @overload
    def get(self, key: KeyList, **options: Any) -> Done[dict[str, Any]]: ...
    def get(self, key: str | KeyList, **options: Any) -> Done[Any]:
        """Read one key (its value, or ``None``) or several (a dict of those that exist, by key).

        Options ``allow_concurrency`` and ``no_cache`` are accepted; reads never suspend here, so
        neither changes anything (see ``docs/differences.md``).
        """
        host = self._host
        check_owner(host)
        if self._gen != host.gen:
            host.check_live(self._gen)  # raises: this instance was reset or evicted
        if options:
            normalize_options("get", options, _GET_OPTIONS)
        if type(key) is str:
            check_key(key, host)
            blob = self._db.kv_get(key)
            return _NONE if blob is None else Done(decode(blob))
        if isinstance(key, (list, tuple)):
            keys = [check_key(k, host) for k in key]
            _check_batch(len(keys), host)
            return Done({k: decode(v) for k, v in self._db.kv_get_many(keys)})
        raise TypeError(f"get() takes a str key or a list of str keys, not {type(key).__name__}")

    def list(self, **options: Any) -> Done[dict[str, Any]]:
        """Key-value pairs in key order (code-point order), as a dict.

        Options: ``start`` (inclusive), ``start_after`` (exclusive), ``end`` (exclusive),
        ``prefix``, ``reverse`` (descending; the bounds keep their meaning) and ``limit`` (> 0,
        applied after ordering). Raises ``TypeError`` for ``start`` with ``start_after`` and for
        a limit that is not positive, with Cloudflare's messages.
        """
        host = self._host
        check_owner(host)
        if self._gen != host.gen:
            host.check_live(self._gen)  # raises: this instance was reset or evicted
        opts = normalize_options("list", options, _LIST_OPTIONS) if options else {}
        opts.pop("allow_concurrency", None)
        opts.pop("no_cache", None)
        bounds = compile_range(**opts)
        if bounds is None:
            return Done({})
        rows = self._db.kv_scan(bounds[0], bounds[1], reverse=opts.get("reverse", False), limit=opts.get("limit"))
        return Done({k: decode(v) for k, v in rows})

    # -- writes --

    def put(self, key: str | Mapping[str, Any], value: Any = ..., **options: Any) -> Done[None]:
        """Store ``value`` under ``key``, or every pair of a dict as one atomic batch.

        Raises ``DataCloneError`` for a value that cannot be stored, ``StorageLimitError`` past a
        limit, ``TypeError`` for a malformed call; nothing is written when any check fails.
        Option ``allow_unconfirmed=True``: results of the object are not held for this write.
        """
        host = self._host
        check_owner(host)
        if self._gen != host.gen:
            host.check_live(self._gen)  # raises: this instance was reset or evicted
        opts = normalize_options("put", options, _PUT_OPTIONS) if options else {}
        if type(key) is str:
            if value is ...:
                raise TypeError("put() called with undefined value.")
            blob = encode_checked(check_key(key, host), value, host)
            self._db.kv_put(key, blob)
        elif isinstance(key, Mapping) and value is ...:
            _check_batch(len(key), host)
            items = [(check_key(k, host), v) for k, v in key.items()]
            blobs = [(k, encode_checked(k, v, host)) for k, v in items]
            if not blobs:
                return _NONE
            self._db.kv_put_many(blobs)
        else:
            raise TypeError(
                "put() may only be called with a single key-value pair and optional options as "
                "put(key, value, options) or with multiple key-value pairs and optional options as "
                "put(entries, options)"
            )
        host.wrote(not opts.get("allow_unconfirmed", False))
        return _NONE

    @overload
    def delete(self, key: str, **options: Any) -> Done[bool]: ...
    @overload
    def delete(self, key: KeyList, **options: Any) -> Done[int]: ...
    def delete(self, key: str | KeyList, **options: Any) -> Done[bool] | Done[int]:
        """Delete one key (``True`` if it existed) or several (how many existed)."""
        host = self._host
        check_owner(host)
        if self._gen != host.gen:
            host.check_live(self._gen)  # raises: this instance was reset or evicted
        opts = normalize_options("delete", options, _PUT_OPTIONS) if options else {}
        result: bool | int
        if type(key) is str:
            result = self._db.kv_delete(check_key(key, host))
        elif isinstance(key, (list, tuple)):
            keys = [check_key(k, host) for k in key]
            _check_batch(len(keys), host)
            result = self._db.kv_delete_many(keys)
        else:
            raise TypeError(f"delete() takes a str key or a list of str keys, not {type(key).__name__}")
        if self._db.in_transaction:
            host.wrote(not opts.get("allow_unconfirmed", False))
        return Done(result)

    def delete_all(self, **options: Any) -> Done[None]:
        """Delete everything: every key, the alarm and, for SQLite-backed objects, every SQL table.

        Raises ``InvalidTransactionError`` inside ``transaction()``, as Cloudflare does.
        """
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("delete_all", options, _PUT_OPTIONS) if options else {}
        if _in_transaction.get() is not None:
            raise InvalidTransactionError("Cannot call deleteAll() within a transaction")
        if not self._db.exists():
            return _NONE
        if host.kv_backed:
            self._db.kv_clear()
        else:
            self._db.wipe()
        host.alarm_written()
        host.wrote(not opts.get("allow_unconfirmed", False))
        return _NONE

    # -- alarm --

    def get_alarm(self, **options: Any) -> Done[int | None]:
        """The alarm's time in ms since the epoch, or ``None``.

        Inside a running ``alarm()`` handler this is ``None`` unless the handler set a new alarm.
        """
        host = self._host
        host.check_live(self._gen)
        if options:
            normalize_options("get_alarm", options, frozenset({"allow_concurrency"}))
        return Done(host.alarm_visible(self._db.get_alarm()))

    def set_alarm(self, scheduled_time: int | float | _dt.datetime, **options: Any) -> Done[None]:
        """Set the object's one alarm (replacing any other) to ``scheduled_time``.

        ``scheduled_time`` is ms since the epoch or a ``datetime``; a time in the past runs as soon
        as possible. Raises ``TypeError`` for a time <= 0 and for a class without ``alarm()``.
        """
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("set_alarm", options, frozenset({"allow_concurrency", "allow_unconfirmed"})) if options else {}
        ms = _to_alarm_ms(scheduled_time, host)
        self._db.set_alarm(ms)
        host.alarm_written()
        host.wrote(not opts.get("allow_unconfirmed", False))
        return _NONE

    def delete_alarm(self, **options: Any) -> Done[None]:
        """Cancel the alarm, if any. A handler already running is not cancelled."""
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("delete_alarm", options, frozenset({"allow_concurrency", "allow_unconfirmed"})) if options else {}
        if self._db.get_alarm() is None and not host.alarm_visible(None):
            host.alarm_written()  # still clears a handler-set marker, see ObjectHost.alarm_written
            return _NONE
        self._db.set_alarm(None)
        host.alarm_written()
        host.wrote(not opts.get("allow_unconfirmed", False))
        return _NONE

    # -- durability --

    def sync(self) -> Awaitable[None]:
        """An awaitable that completes once every write made before the call is durable."""
        self._host.check_live(self._gen)
        return self._host.commit_waiter()

    # -- transactions --

    @overload
    def transaction(self, closure: Callable[[Transaction], Awaitable[T]]) -> asyncio.Task[T]: ...
    @overload
    def transaction(self, closure: Callable[[Transaction], T]) -> asyncio.Task[T]: ...
    def transaction(self, closure: Callable[[Transaction], Awaitable[T] | T]) -> asyncio.Task[T]:
        """Run ``closure(txn)`` as one transaction, with no other event delivered meanwhile.

        The closure's writes (through ``txn`` or straight on ``ctx.storage``) commit together
        when it returns, and are rolled back if it raises (the error propagates; the object is
        not reset). ``txn.rollback()`` discards them and the closure's value is still returned.
        Transactions nest as savepoints. Returns a task that is already running.
        """
        host = self._host
        host.check_live(self._gen)
        if not callable(closure):
            raise TypeError(f"transaction() takes a callable, not {type(closure).__name__}")
        gate = host.gate
        lock, held = gate.close_for("transaction()")
        task = asyncio.ensure_future(self._run_transaction(closure, gate, lock, held))
        return task

    async def _run_transaction(
        self, closure: Callable[[Transaction], Awaitable[T] | T], gate: InputGate, lock: GateLock, held: frozenset[GateLock]
    ) -> T:
        held_locks.set(held)
        db = self._db
        try:
            self._host.check_live(self._gen)
            savepoint = db.savepoint()
            txn = Transaction(self, savepoint)
            _in_transaction.set(txn)
            try:
                result = closure(txn)
                if inspect.isawaitable(result):
                    result = await result
            except BaseException:
                if txn._state == "active" and db.savepoint_depth > 0:
                    db.rollback_to(savepoint)
                txn._state = "failed"
                raise
            if txn._state == "active":
                db.release(savepoint)
            txn._state = "committed"
            return result
        finally:
            gate.unlock(lock)
            self._host.transaction_ended()

    def transaction_sync(self, closure: Callable[[], T]) -> T:
        """Run ``closure()`` synchronously in a savepoint (SQLite-backed objects only).

        Its writes commit with the object's implicit transaction if it returns, and are rolled
        back if it raises (only the inner part, when nested). ``closure`` must not be async.
        """
        host = self._host
        host.check_live(self._gen)
        if host.kv_backed:
            raise TypeError("Durable Object is not backed by SQL.")
        if not callable(closure):
            raise TypeError(f"transaction_sync() takes a callable, not {type(closure).__name__}")
        if inspect.iscoroutinefunction(closure):
            raise TypeError("transaction_sync() takes a synchronous callable; use transaction() for async code")
        db = self._db
        savepoint = db.savepoint()
        try:
            result = closure()
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise TypeError("transaction_sync() callback returned an awaitable; it must be synchronous")
        except BaseException:
            db.rollback_to(savepoint)
            host.wrote(True)
            raise
        db.release(savepoint)
        host.wrote(True)
        return result

    # -- not implemented: point-in-time recovery --

    def get_current_bookmark(self) -> NoReturn:
        """Not implemented: point-in-time recovery (as in Cloudflare's local runtime)."""
        raise NotImplementedError(_NO_PITR)

    def get_bookmark_for_time(self, timestamp: object) -> NoReturn:
        """Not implemented: point-in-time recovery (as in Cloudflare's local runtime)."""
        raise NotImplementedError(_NO_PITR)

    def on_next_session_restore_bookmark(self, bookmark: str) -> NoReturn:
        """Not implemented: point-in-time recovery (as in Cloudflare's local runtime)."""
        raise NotImplementedError(_NO_PITR)

    # -- SQLite-backed extras --

    @property
    def sql(self) -> SqlStorage:
        """The SQL API (``durable.SqlStorage``); SQLite-backed objects only."""
        if self._sql is None:
            self._host.check_live(self._gen)
            if self._host.kv_backed:
                raise TypeError(
                    "This Durable Object is not backed by SQLite storage, so the SQL API is not available. "
                    "SQL can be enabled on a new Durable Object class by using the `new_sqlite_classes` "
                    "instead of `new_classes` under `migrations` in your wrangler configuration "
                    "(in durable: rt.namespace(cls, storage=\"sqlite\"))."
                )
            from ._sql import SqlStorage

            self._sql = SqlStorage(self)
        return self._sql

    @property
    def kv(self) -> SyncKV:
        """Synchronous ``get``/``put``/``delete``/``list`` on the same data; SQLite-backed only."""
        if self._kv is None:
            self._host.check_live(self._gen)
            if self._host.kv_backed:
                raise TypeError(
                    "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable "
                    "Objects, but this object's namespace is not declared to use SQLite. You can use "
                    "the older, asynchronous interface via methods of `storage` itself (e.g. "
                    "`storage.get()`) (in durable: rt.namespace(cls, storage=\"sqlite\"))."
                )
            from ._sql import SyncKV

            self._kv = SyncKV(self)
        return self._kv


@final
@camel_aliases
class Transaction:
    """The ``txn`` handle of a ``storage.transaction()`` closure.

    Offers ``get``, ``put``, ``delete``, ``list``, the alarm methods and ``rollback()``; not
    ``delete_all``. Using it after the closure returned, or after ``rollback()``, raises
    ``InvalidTransactionError`` with Cloudflare's message.
    """

    __slots__ = ("_savepoint", "_state", "_storage")

    def __init__(self, storage: Storage, savepoint: str) -> None:
        self._storage = storage
        self._savepoint = savepoint
        self._state = "active"

    def _check(self, op: str) -> Storage:
        if self._state == "rolled_back":
            raise InvalidTransactionError(f"Cannot {op} on rolled back transaction")
        if self._state != "active":
            raise InvalidTransactionError(
                f"Cannot call {op} on transaction that has already committed: did you move `txn` "
                "outside of the closure?"
            )
        return self._storage

    def get(self, key: Any, **options: Any) -> Done[Any]:
        """As ``Storage.get``, inside the transaction."""
        return self._check("get").get(key, **options)

    def list(self, **options: Any) -> Done[dict[str, Any]]:
        """As ``Storage.list``, inside the transaction."""
        return self._check("list").list(**options)

    def put(self, key: Any, value: Any = ..., **options: Any) -> Done[None]:
        """As ``Storage.put``, inside the transaction."""
        return self._check("put").put(key, value, **options)

    def delete(self, key: Any, **options: Any) -> Done[Any]:
        """As ``Storage.delete``, inside the transaction."""
        return self._check("delete").delete(key, **options)

    def get_alarm(self, **options: Any) -> Done[int | None]:
        """As ``Storage.get_alarm``, inside the transaction."""
        return self._check("getAlarm").get_alarm(**options)

    def set_alarm(self, scheduled_time: int | float | _dt.datetime, **options: Any) -> Done[None]:
        """As ``Storage.set_alarm``, inside the transaction."""
        return self._check("setAlarm").set_alarm(scheduled_time, **options)

    def delete_alarm(self, **options: Any) -> Done[None]:
        """As ``Storage.delete_alarm``, inside the transaction."""
        return self._check("deleteAlarm").delete_alarm(**options)

    def delete_all(self, **options: Any) -> Done[None]:
        """Not available in a transaction, as on Cloudflare."""
        raise InvalidTransactionError("Cannot call deleteAll() within a transaction")

    def rollback(self) -> None:
        """Discard the transaction's writes; the closure's return value is still returned.

        May be called more than once. Afterwards every other operation on ``txn`` raises.
        """
        if self._state == "rolled_back":
            return
        self._check("rollback")
        db = self._storage._db
        if db.savepoint_depth > 0:
            db.rollback_to(self._savepoint)
        self._state = "rolled_back"

