"""``ctx.storage``: the transactional key-value API of one object, its transactions and its alarm.

Every method applies its effect when called and returns an awaitable that is already resolved, as
Cloudflare's promises run whether or not they are awaited: an un-awaited ``put`` still happens, and a
``get`` sees every write made before it (reads of one's own writes are immediate). Writes join the
object's implicit transaction, which the host commits at the end of the turn; the output gate holds
the object's results until that commit (see ``_host.py``).

:class:`SyncKV` (``ctx.storage.kv``) is the synchronous key-value API of SQLite-backed objects,
over the same table and the same implicit transaction; ``ctx.storage.sql`` lives in ``_sql.py``.

Explicit transactions (``transaction()``) are savepoints in that implicit transaction, kept
isolated from the rest of the object's code: they are serialized (one per object runs at a time,
nested ones inside it), and code outside the running one waits for it to end before it touches
storage (see :class:`Storage`). workerd gets the same from its input gate, which holds every other
continuation of the object; asyncio cannot hold another task's awaits, so storage does it.

This module knows nothing of namespaces, stubs or HTTP. It talks to its object through the small
:class:`StorageHost` protocol.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import inspect
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, Protocol, TypeVar, final, overload

from ._aliases import camel_aliases, normalize_options
from ._codec import decode, encode
from ._context import check_owner
from ._exceptions import DurableError, InvalidTransactionError, StorageLimitError
from ._gates import GateLock, InputGate, held_locks
from ._history import NO_PITR_KV, PITR_OFF, History
from ._limits import Limits
from ._sqlite import ObjectDatabase
from ._util import lone_surrogate_at

if TYPE_CHECKING:
    from ._sql import SqlStorage

__all__ = ["Done", "Storage", "StorageHost", "SyncKV", "Transaction", "check_key", "compile_range", "encode_checked"]

T = TypeVar("T")


async def _after(waiter: Awaitable[None], then: Callable[[], T]) -> T:
    await waiter
    return then()


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

_ENABLE_SQLITE = (
    "change `new_classes` to `new_sqlite_classes` within the 'migrations' field in your wrangler.jsonc or "
    "wrangler.toml file. If using workerd directly,{space}set `enableSql = true` in your workerd config for the "
    "class. Note that this change cannot be made after the class is already deployed to production."
)

_NO_SQL = "SQL is not enabled for this Durable Object class. To enable it, " + _ENABLE_SQLITE.format(space="")
"""workerd's text (sic: no space after "directly,"), for ``storage.sql`` on a key-value-backed class.
In durable the switch is ``rt.namespace(cls, storage="sqlite")``."""

_NO_SYNC_KV = (
    "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable Objects, but this "
    "object's namespace is not declared to use SQLite. You can use the older, asyncronous interface via "
    "methods of `storage` itself (e.g. `storage.get()`). Alternatively, to enable SQLite, "
) + _ENABLE_SQLITE.format(space=" ")
"""workerd's text (sic: "asyncronous"), for ``storage.kv`` on a key-value-backed class."""

# A storage call used without `await` hands its caller this awaitable instead of the value. Its
# name says what it is, and using it as a value (arithmetic, comparison, truth, indexing,
# iteration, attributes) raises an error that asks "did you forget await?" instead of Python's
# "unsupported operand type(s) for +: 'Done' and 'int'".
Done.__name__ = Done.__qualname__ = "StorageAwaitable"
_FORGOT_AWAIT = (
    "a storage call's result (a StorageAwaitable) was used as a value: did you forget await? "
    "Write `value = await ctx.storage.get(key)`, not `value = ctx.storage.get(key)`."
)


def _forgot_await(self: Done[Any], *args: object) -> NoReturn:
    raise TypeError(_FORGOT_AWAIT)


def _forgot_await_attribute(self: Done[Any], name: str) -> NoReturn:
    if name.startswith("__"):  # a protocol probe (copy, pickle, asyncio...), not a user's mistake
        raise AttributeError(name)
    raise AttributeError(f"'StorageAwaitable' object has no attribute {name!r}: {_FORGOT_AWAIT}")


for _method in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
    "__neg__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__iter__",
    "__contains__", "__getitem__", "__setitem__", "__int__", "__float__", "__index__",
):  # fmt: skip
    setattr(Done, _method, _forgot_await)
Done.__getattr__ = _forgot_await_attribute  # type: ignore[attr-defined]
del _method


class StorageHost(Protocol):
    """What storage needs from the object that owns it (implemented by ``_host.ObjectHost``).

    Attributes:
        db: the object's database (write buffer, read cache, implicit transaction).
        limits: the runtime's storage limits (key and value sizes, batch sizes).
        kv_backed: whether the object is key-value-backed (no ``sql``, ``kv``, bookmarks).
        has_alarm_handler: whether the object's class defines ``alarm()`` (``set_alarm`` needs it).
        gate: the object's input gate, which ``transaction()`` closures hold.
        gen: the current instance generation; a reset increments it.
    """

    db: ObjectDatabase
    limits: Limits
    kv_backed: bool
    has_alarm_handler: bool
    gate: InputGate

    gen: int

    def check_live(self, generation: int) -> None:
        """Raise the reset's error if the instance of ``generation`` was reset (or the runtime
        closed), and ``RuntimeError`` if called from outside the object's own events."""
        ...

    def wrote(self, *, gated: bool) -> None:
        """Record a write in the current batch, which commits at the end of the turn.

        ``gated``: the write holds the output gate until it commits (every write but those
        made with ``allow_unconfirmed=True``).
        """
        ...

    def alarm_written(self) -> None:
        """Record that the alarm changed, so that the scheduler re-arms it after the commit."""
        ...

    def alarm_visible(self, stored: int | None) -> int | None:
        """The alarm ``get_alarm()`` reports, given the ``stored`` one: ``None`` while the alarm
        handler runs, unless the handler set a new alarm (as Cloudflare reports it)."""
        ...

    def now_ms(self) -> int:
        """The runtime clock's time, in milliseconds since the epoch (alarm validation)."""
        ...

    def commit_waiter(self) -> Awaitable[None]:
        """An awaitable that resolves when the writes made so far have committed (``sync()``);
        already done when nothing is pending. It raises when the commit fails."""
        ...

    def transaction_ended(self) -> None:
        """A ``transaction()`` closure ended: commit what it wrote with the current batch."""
        ...


KeyList = list[str] | tuple[str, ...]
_Pairs = list[tuple[str, bytes]]

_in_transaction: ContextVar[Transaction | None] = ContextVar("durable_transaction", default=None)

# -- keys, values, ranges (shared with the synchronous ``kv`` API) ------------------------------


def check_key(key: object, host: StorageHost) -> str:
    """Return ``key`` if it is a valid key, else raise ``TypeError`` / ``StorageLimitError``."""
    if type(key) is not str:
        raise TypeError(f"Storage keys must be str, not {type(key).__name__}")
    if host.kv_backed and (limit := host.limits.kv_max_key_bytes) is not None and len(key) * 4 > limit:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise StorageLimitError(f"Keys cannot be larger than {limit} bytes. A key of size {size} was provided.")
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
                raise StorageLimitError(
                    "string or blob too big: SQLITE_TOOBIG (in a SQLite-backed object a key plus "
                    f"its value may take at most {limit} bytes (2 MB), as on Cloudflare; this one "
                    f"takes {len(blob) + len(key.encode('utf-8'))}. Split the value over several "
                    "keys, or relax the limit where production is not the target with "
                    "durable.Runtime(limits=durable.Limits(sqlite_max_row_bytes=...)).)"
                )
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


def _past_surrogates(bound: str, index: int) -> str:
    """A bound without lone surrogates that orders every valid key as ``bound`` does.

    workerd compares keys as UTF-8 bytes and encodes a lone surrogate as its 3-byte form, which
    sorts between U+D7FF and U+E000. No key holds one, so a key is above ``bound`` exactly when it
    is at or above ``bound[:index] + "\\uE000"``, and below it otherwise.
    """
    return bound[:index] + "\ue000"


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
    Cloudflare refuses. Bounds may hold lone surrogates (keys may not): they order keys as in
    workerd.
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
        if not -(2**31) <= limit < 2**31:  # workerd reads the limit as an int32, and says so
            raise TypeError("Value out of range. Must be between -2147483648 and 2147483647 (inclusive).")
        if limit <= 0:
            raise TypeError("List limit must be positive.")
    if prefix is not None and lone_surrogate_at(prefix) is not None:
        return None  # no key holds a lone surrogate, so none starts with this prefix
    if start_after is not None and (index := lone_surrogate_at(start_after)) is not None:
        start, start_after = _past_surrogates(start_after, index), None
    elif start is not None and (index := lone_surrogate_at(start)) is not None:
        start = _past_surrogates(start, index)
    if end is not None and (index := lone_surrogate_at(end)) is not None:
        end = _past_surrogates(end, index)
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
_LIST_OPTIONS = frozenset(
    {"start", "start_after", "end", "prefix", "reverse", "limit", "allow_concurrency", "no_cache"}
)


_MAX_ALARM_NS = float(2**63)
"""workerd converts an alarm time to nanoseconds in an int64 (kj::Date): ``ms * 1e6``, computed as a
double, must lie strictly between -2**63 and 2**63 (so the latest time is in 2262, although workerd's
message says 2189)."""


_YEAR_MS = 365 * 86_400_000


def _refuse_seconds(when: int | float, host: StorageHost) -> None:
    """Refuse a time that is plainly in seconds since the epoch (``time.time() + 60``).

    Read as milliseconds, such a time is a date in January 1970, so the alarm would fire at once.
    Cloudflare accepts it silently; durable refuses a number that, read as seconds, lies within ten
    years of the clock's now while, read as milliseconds, it lies over a year in the past (so a
    mock clock started near 0 can still be given small millisecond times).
    """
    now = host.now_ms()
    if abs(when * 1000 - now) <= 10 * _YEAR_MS and when < now - _YEAR_MS:
        as_ms = _dt.datetime.fromtimestamp(when / 1000, _dt.UTC)
        raise TypeError(
            f"setAlarm() takes a time in milliseconds since the epoch, but {when!r} looks like "
            f"seconds (as milliseconds it is {as_ms:%Y-%m-%d %H:%M:%S} UTC). Pass "
            "int(time.time() * 1000) + delay_ms, or a datetime."
        )


def _check_alarm_range(ms: int | float) -> None:
    """Refuse, with workerd's words, a time that is not a valid Date or does not fit a kj::Date."""
    if ms != ms or ms in (float("inf"), float("-inf")):
        raise TypeError("The value cannot be converted because it is not a valid Date.")
    # The time in ms, as a double, times 1e6 must fit an int64 of nanoseconds.
    nanos = float(ms) * 1e6 if abs(ms) < 2**64 else (1.0 if ms > 0 else -1.0) * 2.0**64
    if nanos >= _MAX_ALARM_NS:
        raise TypeError("This API doesn't support dates after 2189.")
    if nanos <= -_MAX_ALARM_NS:
        raise TypeError("This API doesn't support dates before 1687.")


def _to_alarm_ms(when: object, host: StorageHost) -> int:
    if isinstance(when, _dt.datetime):
        stamp = when.timestamp() * 1000
        _check_alarm_range(stamp)
        ms = int(stamp)
    elif type(when) is int or type(when) is float:
        _check_alarm_range(when)
        ms = int(when) if when > 0 else 0  # any time <= 0 is refused below
        _refuse_seconds(when, host)
    else:
        raise TypeError(
            f"setAlarm() takes a time in milliseconds since the epoch (int) or a datetime, not {type(when).__name__}"
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

    While a ``transaction()`` runs, code of the object that is not inside it (another event
    already in progress, a sibling task) does not touch storage: its asynchronous calls are
    queued, in call order, and take effect (their awaitables resolve) once the transaction has
    ended, as workerd holds such code until then; its synchronous calls (``sql``, ``kv``,
    ``transaction_sync``) raise ``InvalidTransactionError``. See ``docs/concurrency.md``.
    """

    __slots__ = ("_db", "_gen", "_host", "_kv", "_queue", "_sql", "_stack", "_sync_depth")

    def __init__(self, host: StorageHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self._db = host.db
        self._sql: SqlStorage | None = None
        self._kv: SyncKV | None = None
        self._stack: list[Transaction] = []
        """Open transactions, outermost first; each one is nested in the one before it."""
        self._queue: list[_Waiting] = []
        """Storage calls and transactions waiting for the transaction they belong to to be innermost."""
        self._sync_depth = 0
        """How many ``transaction_sync()`` callbacks are running (a ``transaction()`` waits for them)."""

    def __repr__(self) -> str:
        return f"<durable.Storage {'kv' if self._host.kv_backed else 'sqlite'}-backed>"

    # -- isolation of transactions ---------------------------------------------------------------

    def _level(self) -> Transaction | None:
        """The innermost open transaction of this object that the running code is inside, if any."""
        txn = _in_transaction.get()
        while txn is not None:
            if txn._storage is self and txn._open:
                return txn
            txn = txn._outer
        return None

    def inside_transaction(self) -> bool:
        """Whether the running code is inside one of this object's open ``transaction()`` calls."""
        return bool(self._stack) and self._level() is not None

    def _where(self) -> Transaction | _Here | None:
        """``_Here.NOW`` if the running code may use storage now, else the level it must wait for.

        Code may use storage when it runs inside the innermost open transaction (or no
        transaction is open). Anything else would write into that transaction's savepoint (and be
        undone by its rollback) or read its uncommitted writes.
        """
        stack = self._stack
        if not stack:
            return _Here.NOW
        level = self._level()
        return _Here.NOW if level is stack[-1] else level

    def _defer(
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

    def _check_sync(self, what: str) -> None:
        """Refuse a synchronous call made from outside the transaction that is running."""
        if self._stack and self._where() is not _Here.NOW:
            raise InvalidTransactionError(
                f"Cannot call {what} while a transaction() of another event is in progress on this "
                "object: await that transaction first, or make the call inside its closure (workerd "
                "runs no other code of the object until the transaction ends; durable cannot pause "
                "synchronous code, so it refuses the call instead of mixing it into the transaction)"
            )

    def _drain(self) -> None:
        """Run what waited for the now innermost transaction (or for none), in call order."""
        stack, queue = self._stack, self._queue
        host = self._host
        i = 0
        while i < len(queue):
            top = stack[-1] if stack else None
            entry = queue[i]
            if entry.level is not top and self._gen == host.gen:
                i += 1
                continue
            del queue[i]
            fut = entry.fut
            try:
                host.check_live(self._gen)  # reset meanwhile: everything waiting fails
                if entry.txn is not None:
                    self._start(entry.txn)
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

    def _start(self, txn: Transaction) -> None:
        """Open ``txn``'s savepoint and close the input gate for it (its parent is innermost)."""
        txn._savepoint = self._db.savepoint()
        gate = self._host.gate
        lock, _ = gate.close_for("transaction()")
        txn._gate, txn._lock = gate, lock
        txn._held = txn._caller_held | {lock}
        txn._open = True
        self._stack.append(txn)

    # -- reads --

    @overload
    def get(self, key: str, **options: Any) -> Awaitable[Any]: ...
    @overload
    def get(self, key: KeyList, **options: Any) -> Awaitable[dict[str, Any]]: ...
    def get(self, key: str | KeyList, **options: Any) -> Awaitable[Any]:
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
            if self._stack and (level := self._where()) is not _Here.NOW:
                return self._defer(level, lambda: self._get_one(key))
            blob = self._db.kv.get(key)
            return _NONE if blob is None else Done(decode(blob))
        if isinstance(key, (list, tuple)):
            keys = [check_key(k, host) for k in key]
            _check_batch(len(keys), host)
            if self._stack and (level := self._where()) is not _Here.NOW:
                return self._defer(level, lambda: self._get_many(keys))
            return Done(self._get_many(keys))
        raise TypeError(f"get() takes a str key or a list of str keys, not {type(key).__name__}")

    def _get_one(self, key: str) -> Any:
        blob = self._db.kv.get(key)
        return None if blob is None else decode(blob)

    def _get_many(self, keys: list[str]) -> dict[str, Any]:
        return {k: decode(v) for k, v in self._db.kv.get_many(keys)}

    def list(self, **options: Any) -> Awaitable[dict[str, Any]]:
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
        reverse, limit = opts.get("reverse", False), opts.get("limit")
        if self._stack and (level := self._where()) is not _Here.NOW:
            return self._defer(level, lambda: self._scan(bounds, reverse=reverse, limit=limit))
        return Done(self._scan(bounds, reverse=reverse, limit=limit))

    def _scan(self, bounds: tuple[str | None, str | None], *, reverse: bool, limit: int | None) -> dict[str, Any]:
        rows = self._db.kv.scan(bounds[0], bounds[1], reverse=reverse, limit=limit)
        return {k: decode(v) for k, v in rows}

    # -- writes --

    def put(self, key: str | Mapping[str, Any], value: Any = ..., **options: Any) -> Awaitable[None]:
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
        gated = not opts.get("allow_unconfirmed", False)
        if type(key) is str:
            if value is ...:
                raise TypeError("put() called with undefined value.")
            blob = encode_checked(check_key(key, host), value, host)
            if self._stack and (level := self._where()) is not _Here.NOW:
                return self._defer(level, lambda: self._put_one(key, blob, gated=gated), write=True, gated=gated)
            self._db.kv.put(key, blob)
        elif isinstance(key, Mapping) and value is ...:
            _check_batch(len(key), host)
            items = [(check_key(k, host), v) for k, v in key.items()]
            blobs = [(k, encode_checked(k, v, host)) for k, v in items]
            if not blobs:
                return _NONE
            if self._stack and (level := self._where()) is not _Here.NOW:
                return self._defer(level, lambda: self._put_many(blobs, gated=gated), write=True, gated=gated)
            self._db.kv.put_many(blobs)
        else:
            raise TypeError(
                "put() may only be called with a single key-value pair and optional options as "
                "put(key, value, options) or with multiple key-value pairs and optional options as "
                "put(entries, options)"
            )
        host.wrote(gated=gated)
        return _NONE

    def _put_one(self, key: str, blob: bytes, *, gated: bool) -> None:
        self._db.kv.put(key, blob)
        self._host.wrote(gated=gated)

    def _put_many(self, blobs: _Pairs, *, gated: bool) -> None:
        self._db.kv.put_many(blobs)
        self._host.wrote(gated=gated)

    @overload
    def delete(self, key: str, **options: Any) -> Awaitable[bool]: ...
    @overload
    def delete(self, key: KeyList, **options: Any) -> Awaitable[int]: ...
    def delete(self, key: str | KeyList, **options: Any) -> Awaitable[bool] | Awaitable[int]:
        """Delete one key (``True`` if it existed) or several (how many existed)."""
        host = self._host
        check_owner(host)
        if self._gen != host.gen:
            host.check_live(self._gen)  # raises: this instance was reset or evicted
        opts = normalize_options("delete", options, _PUT_OPTIONS) if options else {}
        gated = not opts.get("allow_unconfirmed", False)
        keys: str | list[str]
        if type(key) is str:
            keys = check_key(key, host)
        elif isinstance(key, (list, tuple)):
            keys = [check_key(k, host) for k in key]
            _check_batch(len(keys), host)
        else:
            raise TypeError(f"delete() takes a str key or a list of str keys, not {type(key).__name__}")
        if self._stack and (level := self._where()) is not _Here.NOW:
            return self._defer(level, lambda: self._delete(keys, gated=gated), write=True, gated=gated)
        return Done(self._delete(keys, gated=gated))

    def _delete(self, keys: str | KeyList, *, gated: bool) -> bool | int:
        db = self._db
        result = db.kv.delete(keys) if isinstance(keys, str) else db.kv.delete_many(list(keys))
        if db.in_transaction:
            self._host.wrote(gated=gated)
        return result

    def delete_all(self, **options: Any) -> Awaitable[None]:
        """Delete everything: every key, the alarm and, for SQLite-backed objects, every SQL table.

        Raises ``InvalidTransactionError`` inside ``transaction()``, as Cloudflare does.
        """
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("delete_all", options, _PUT_OPTIONS) if options else {}
        if self._level() is not None:
            raise InvalidTransactionError("Cannot call deleteAll() within a transaction")
        gated = not opts.get("allow_unconfirmed", False)
        if self._stack:
            return self._defer(None, lambda: self._delete_all(gated=gated), write=True, gated=gated)
        self._delete_all(gated=gated)
        return _NONE

    def _delete_all(self, *, gated: bool) -> None:
        # Buffered writes are dropped even when nothing reached SQLite yet (a new object's first
        # turn): workerd's deleteAll() undoes them too.
        if self._host.kv_backed:
            self._db.kv_clear()
        else:
            self._db.wipe()
        self._host.alarm_written()
        self._host.wrote(gated=gated)

    # -- alarm --

    def get_alarm(self, **options: Any) -> Awaitable[int | None]:
        """The alarm's time in ms since the epoch, or ``None``.

        Inside a running ``alarm()`` handler this is ``None`` unless the handler set a new alarm.
        """
        host = self._host
        host.check_live(self._gen)
        if options:
            normalize_options("get_alarm", options, frozenset({"allow_concurrency"}))
        if self._stack and (level := self._where()) is not _Here.NOW:
            return self._defer(level, lambda: host.alarm_visible(self._db.meta.get_alarm()))
        return Done(host.alarm_visible(self._db.meta.get_alarm()))

    def set_alarm(self, scheduled_time: int | float | _dt.datetime, **options: Any) -> Awaitable[None]:
        """Set the object's one alarm (replacing any other) to ``scheduled_time``.

        ``scheduled_time`` is ms since the epoch or a ``datetime``; a time in the past runs as soon
        as possible. Raises ``TypeError`` for a time <= 0 and for a class without ``alarm()``.
        """
        host = self._host
        host.check_live(self._gen)
        opts = (
            normalize_options("set_alarm", options, frozenset({"allow_concurrency", "allow_unconfirmed"}))
            if options
            else {}
        )
        # workerd clamps a time in the past to now: get_alarm() and AlarmInfo.scheduled_time read now.
        ms = max(_to_alarm_ms(scheduled_time, host), host.now_ms())
        gated = not opts.get("allow_unconfirmed", False)
        if self._stack and (level := self._where()) is not _Here.NOW:
            return self._defer(level, lambda: self._set_alarm(ms, gated=gated), write=True, gated=gated)
        self._set_alarm(ms, gated=gated)
        return _NONE

    def _set_alarm(self, ms: int, *, gated: bool) -> None:
        self._db.meta.set_alarm(ms)
        self._host.alarm_written()
        self._host.wrote(gated=gated)

    def delete_alarm(self, **options: Any) -> Awaitable[None]:
        """Cancel the alarm, if any. A handler already running is not cancelled."""
        host = self._host
        host.check_live(self._gen)
        opts = (
            normalize_options("delete_alarm", options, frozenset({"allow_concurrency", "allow_unconfirmed"}))
            if options
            else {}
        )
        gated = not opts.get("allow_unconfirmed", False)
        if self._stack and (level := self._where()) is not _Here.NOW:
            return self._defer(level, lambda: self._delete_alarm(gated=gated), write=True, gated=gated)
        self._delete_alarm(gated=gated)
        return _NONE

    def _delete_alarm(self, *, gated: bool) -> None:
        host = self._host
        if self._db.meta.get_alarm() is None and not host.alarm_visible(None):
            host.alarm_written()  # still clears a handler-set marker, see ObjectHost.alarm_written
            return
        self._db.meta.set_alarm(None)
        host.alarm_written()
        host.wrote(gated=gated)

    # -- durability --

    def sync(self) -> Awaitable[None]:
        """An awaitable that completes once every write made before the call is durable."""
        self._host.check_live(self._gen)
        if self._stack and (level := self._where()) is not _Here.NOW:
            return asyncio.ensure_future(self._sync_after(self._defer(level, lambda: None)))
        return self._host.commit_waiter()

    async def _sync_after(self, queued: Awaitable[None]) -> None:
        await queued
        await self._host.commit_waiter()

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

        Transactions are serialized: one started while another runs (from another event, or a
        sibling task such as ``asyncio.gather(transaction(f), transaction(g))``) waits until that
        one has ended, as workerd's do. Other code of the object never sees a transaction's writes
        before it ends, and its rollback never undoes writes made outside it. A transaction ends
        once its closure and the transactions started inside it have ended.
        """
        host = self._host
        host.check_live(self._gen)
        if not callable(closure):
            raise TypeError(f"transaction() takes a callable, not {type(closure).__name__}")
        parent = self._level()
        txn = Transaction(self, _in_transaction.get(), held_locks.get())
        stack = self._stack
        ready: asyncio.Future[None] | None = None
        if (not stack or stack[-1] is parent) and not self._sync_depth:
            self._start(txn)
        else:
            ready = asyncio.get_running_loop().create_future()
            self._queue.append(_Waiting(parent, None, ready, txn))
        task = asyncio.ensure_future(self._run_transaction(closure, txn, ready))
        if parent is not None:
            children = parent._children
            children.add(task)
            task.add_done_callback(children.discard)
        return task

    async def _run_transaction(
        self, closure: Callable[[Transaction], Awaitable[T] | T], txn: Transaction, ready: asyncio.Future[None] | None
    ) -> T:
        if ready is not None:
            try:
                await ready  # raises the reset error if the object was reset meanwhile
            except BaseException:
                if not txn._open:
                    self._queue[:] = [entry for entry in self._queue if entry.txn is not txn]
                    txn._state = "failed"
                    raise
                self._end(txn, failed=True)  # started, but cancelled before it could run
                raise
        held_locks.set(txn._held)
        _in_transaction.set(txn)
        try:
            try:
                result = closure(txn)
                if inspect.isawaitable(result):
                    result = await result
            finally:
                await _wait_children(txn)
        except BaseException:
            self._end(txn, failed=True)
            raise
        self._end(txn, failed=False)
        return result

    def _end(self, txn: Transaction, *, failed: bool) -> None:
        """Commit (release) or roll back ``txn``'s savepoint, reopen the gate, run what waited."""
        host = self._host
        live = self._gen == host.gen  # after a reset the savepoint is gone with everything else
        try:
            if live and txn._open and txn._state == "active":
                if failed:
                    self._db.rollback_to(txn._savepoint)
                else:
                    self._db.release(txn._savepoint)
        finally:
            if txn._state == "active":
                txn._state = "failed" if failed else "committed"
            elif txn._state == "rolled_back":
                txn._state = "rolled_back_ended"
            opened = txn._open
            if opened:
                txn._open = False
                self._stack.remove(txn)  # the innermost one: its children have ended
            self._drain()  # a transaction waiting for this one closes the gate before it opens
            if opened:
                assert txn._gate is not None and txn._lock is not None
                txn._gate.unlock(txn._lock)
            if live:
                host.transaction_ended()

    def transaction_sync(self, closure: Callable[[], T]) -> T:
        """Run ``closure()`` synchronously in a savepoint and return its value.

        Its writes commit with the object's implicit transaction if it returns, and are rolled
        back if it raises (only the inner part, when nested). ``closure`` must not be async. It
        works on key-value-backed classes too, as in workerd (their ``put``/``delete`` join it).
        """
        host = self._host
        host.check_live(self._gen)
        if not callable(closure):
            raise TypeError(f"transaction_sync() takes a callable, not {type(closure).__name__}")
        if inspect.iscoroutinefunction(closure):
            raise TypeError("transaction_sync() takes a synchronous callable; use transaction() for async code")
        if self._stack:
            self._check_sync("transaction_sync()")
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
                host.wrote(gated=True)
                raise
            db.release(savepoint)
            host.wrote(gated=True)
            return result
        finally:
            self._sync_depth -= 1
            if self._queue and not self._sync_depth:
                self._drain()  # a transaction() started inside the callback starts now

    # -- point-in-time recovery (see _history.py and docs/recovery.md) --

    def _history(self) -> History:
        host = self._host
        host.check_live(self._gen)
        if host.kv_backed:
            raise NotImplementedError(NO_PITR_KV)
        history = self._db.history
        if not isinstance(history, History):
            # NotImplementedError (a RuntimeError), as when this runtime had no history at all.
            raise NotImplementedError(PITR_OFF)
        return history

    def get_current_bookmark(self) -> Awaitable[str]:
        """A bookmark of the current state, once the writes made so far have committed.

        As on Cloudflare, it names the commit that includes every write made before the call
        (and possibly concurrent ones made before that commit). Raises ``NotImplementedError`` if
        the runtime keeps no history (saying how to turn it on) or for a key-value-backed class.
        """
        history = self._history()
        if self._db.savepoint_depth:
            # The commit it would wait for happens when the transaction ends: waiting here would hang.
            raise RuntimeError(
                "get_current_bookmark() cannot be awaited inside transaction(): the commit it names happens "
                "when the transaction ends; call it after the transaction returns"
            )
        waiter = self._host.commit_waiter()
        if isinstance(waiter, Done):
            return Done(history.current_bookmark())
        return _after(waiter, history.current_bookmark)

    def get_bookmark_for_time(self, timestamp: int | float | _dt.datetime) -> Done[str]:
        """The bookmark of the state the object had at ``timestamp`` (ms since the epoch, or a datetime).

        Raises ``ValueError`` for a time in the future, more than 30 days ago on the runtime's
        clock, or before the object's history starts.
        """
        return Done(self._history().bookmark_for_time(timestamp))

    def on_next_session_restore_bookmark(self, bookmark: str) -> Done[str]:
        """Restore the whole storage (KV, SQL, alarm) to ``bookmark`` when the object next starts.

        The restore happens before the next instance is built: force it with ``ctx.abort()``.
        Returns a bookmark of the state at the end of this session, which undoes the restore.
        Raises ``ValueError`` for a bookmark of another object, or older than 30 days.
        """
        return Done(self._history().request_restore(bookmark))

    # -- SQLite-backed extras --

    @property
    def sql(self) -> SqlStorage:
        """The SQL API (``durable.SqlStorage``); SQLite-backed objects only."""
        if self._sql is None:
            self._host.check_live(self._gen)
            if self._host.kv_backed:
                raise DurableError(_NO_SQL)
            from ._sql import SqlStorage  # _sql (one layer down) is imported only by SQLite-backed objects

            self._sql = SqlStorage(
                self._host, self._gen, self._db, transactions=self._stack, check_sync=self._check_sync
            )
        return self._sql

    @property
    def kv(self) -> SyncKV:
        """Synchronous ``get``/``put``/``delete``/``list`` on the same data; SQLite-backed only."""
        if self._kv is None:
            self._host.check_live(self._gen)
            if self._host.kv_backed:
                raise DurableError(_NO_SYNC_KV)
            self._kv = SyncKV(self)
        return self._kv

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        deleteAll = delete_all
        getAlarm = get_alarm
        setAlarm = set_alarm
        deleteAlarm = delete_alarm
        transactionSync = transaction_sync
        getCurrentBookmark = get_current_bookmark
        getBookmarkForTime = get_bookmark_for_time
        onNextSessionRestoreBookmark = on_next_session_restore_bookmark


@final
@camel_aliases
class Transaction:
    """The ``txn`` handle of a ``storage.transaction()`` closure.

    Offers ``get``, ``put``, ``delete``, ``list``, the alarm methods and ``rollback()``; not
    ``delete_all``. Using it after the closure returned, or after ``rollback()``, raises
    ``InvalidTransactionError`` with Cloudflare's message.
    """

    __slots__ = (
        "_caller_held",
        "_children",
        "_gate",
        "_held",
        "_lock",
        "_open",
        "_outer",
        "_savepoint",
        "_state",
        "_storage",
    )

    def __init__(self, storage: Storage, outer: Transaction | None, caller_held: frozenset[GateLock]) -> None:
        self._storage = storage
        self._outer = outer
        """The transaction (of any object) the code that started this one ran inside."""
        self._caller_held = caller_held
        self._held: frozenset[GateLock] = caller_held
        self._gate: InputGate | None = None
        self._lock: GateLock | None = None
        self._savepoint = ""
        self._state = "active"
        self._open = False
        """Started (savepoint open, gate closed) and not yet ended."""
        self._children: set[asyncio.Task[Any]] = set()
        """Transactions started inside this one that have not ended: it ends after them."""

    def __repr__(self) -> str:
        return f"<durable.Transaction {self._state}>"

    def _check(self, op: str) -> Storage:
        if self._state.startswith("rolled_back"):
            raise InvalidTransactionError(f"Cannot {op}() on rolled back transaction")  # workerd's text
        if self._state != "active":
            raise InvalidTransactionError(
                f"Cannot call {op}() on transaction that has already committed: did you move `txn` "
                "outside of the closure?"
            )
        return self._storage

    def get(self, key: Any, **options: Any) -> Awaitable[Any]:
        """As ``Storage.get``, inside the transaction."""
        return self._check("get").get(key, **options)

    def list(self, **options: Any) -> Awaitable[dict[str, Any]]:
        """As ``Storage.list``, inside the transaction."""
        return self._check("list").list(**options)

    def put(self, key: Any, value: Any = ..., **options: Any) -> Awaitable[None]:
        """As ``Storage.put``, inside the transaction."""
        return self._check("put").put(key, value, **options)

    def delete(self, key: Any, **options: Any) -> Awaitable[Any]:
        """As ``Storage.delete``, inside the transaction."""
        return self._check("delete").delete(key, **options)

    def get_alarm(self, **options: Any) -> Awaitable[int | None]:
        """As ``Storage.get_alarm``, inside the transaction."""
        return self._check("getAlarm").get_alarm(**options)

    def set_alarm(self, scheduled_time: int | float | _dt.datetime, **options: Any) -> Awaitable[None]:
        """As ``Storage.set_alarm``, inside the transaction."""
        return self._check("setAlarm").set_alarm(scheduled_time, **options)

    def delete_alarm(self, **options: Any) -> Awaitable[None]:
        """As ``Storage.delete_alarm``, inside the transaction."""
        return self._check("deleteAlarm").delete_alarm(**options)

    def delete_all(self, **options: Any) -> Awaitable[None]:
        """Not available in a transaction, as on Cloudflare."""
        raise InvalidTransactionError("Cannot call deleteAll() within a transaction")

    def rollback(self) -> None:
        """Discard the transaction's writes; the closure's return value is still returned.

        May be called more than once. Afterwards every other operation on ``txn`` raises. While
        a transaction started inside this one runs, the rollback takes effect when it has ended
        (and undoes its writes too, as an outer rollback does).
        """
        if self._state == "rolled_back":
            return
        storage = self._check("rollback")
        self._state = "rolled_back"
        if storage._gen != storage._host.gen or not self._open:
            return  # reset: the savepoint is gone already
        savepoint, db = self._savepoint, storage._db
        if storage._stack[-1] is self:
            db.rollback_to(savepoint)
        else:
            storage._defer(self, lambda: db.rollback_to(savepoint))

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        getAlarm = get_alarm
        setAlarm = set_alarm
        deleteAlarm = delete_alarm


class _Here(enum.Enum):
    """What ``Storage._where`` answers when the running code may use storage at once."""

    NOW = "now"


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


# -- the synchronous key-value API (ctx.storage.kv) ------------------------------------------------

LIST_INVALIDATED: Final = (
    "kv.list() iterator was invalidated because a new call to kv.list() was started. Only one "
    "kv.list() iterator can exist at a time."
)

_SYNC_LIST_OPTIONS: Final = frozenset({"start", "start_after", "end", "prefix", "reverse", "limit"})


@final
class SyncKV:
    """``ctx.storage.kv``: synchronous ``get``/``put``/``delete``/``list`` (SQLite-backed objects).

    The same data as the asynchronous API (the ``_cf_KV`` table), with the same keys, values and
    limits; writes join the implicit transaction like every other write. Example::

        kv = self.ctx.storage.kv
        kv.put("count", (kv.get("count") or 0) + 1)
        for key, value in kv.list(prefix="user:"):
            ...
    """

    __slots__ = ("_db", "_gen", "_host", "_live", "_storage")

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._host: StorageHost = storage._host
        self._gen: int = storage._gen
        self._db: ObjectDatabase = storage._db
        self._live: _KvListIterator | None = None

    def __repr__(self) -> str:
        return "<durable.SyncKV>"

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (a fresh copy), or ``None``."""
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.get()")
        blob = self._db.kv.get(check_key(key, host))
        return None if blob is None else decode(blob)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``.

        Raises ``DataCloneError`` for a value that cannot be stored and ``StorageLimitError`` for
        a key plus value over the limit.
        """
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.put()")
        blob = encode_checked(check_key(key, host), value, host)
        self._db.kv.put(key, blob)
        host.wrote(gated=True)

    def delete(self, key: str) -> bool:
        """Delete ``key``; ``True`` if it existed."""
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.delete()")
        existed = self._db.kv.delete(check_key(key, host))
        if self._db.in_transaction:
            host.wrote(gated=True)
        return existed

    def list(self, **options: Any) -> Iterator[tuple[str, Any]]:
        """A lazy iterator of ``(key, value)`` pairs in key order.

        Options as ``storage.list()``: ``start``, ``start_after``, ``end``, ``prefix``,
        ``reverse`` and ``limit`` (camelCase accepted). Only one such iterator lives at a time:
        calling ``list()`` again invalidates the previous one, whose next step raises
        ``RuntimeError`` with Cloudflare's message.
        """
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.list()")
        opts = normalize_options("list", options, _SYNC_LIST_OPTIONS) if options else {}
        bounds = compile_range(**opts)
        if bounds is None:
            # An empty range never reaches the database, so (as in workerd) it does not
            # invalidate the live iterator.
            return _KvListIterator(self, None)
        rows = self._db.kv.scan(
            bounds[0], bounds[1], reverse=opts.get("reverse", False), limit=opts.get("limit"), lazy=True
        )
        if self._live is not None:
            self._live._invalidate()
        it = self._live = _KvListIterator(self, rows)
        return it


@final
class _KvListIterator:
    """The iterator ``kv.list()`` returns."""

    __slots__ = ("_invalid", "_kv", "_rows")

    def __init__(self, kv: SyncKV, rows: Iterator[tuple[str, bytes]] | None) -> None:
        self._kv = kv
        self._rows = rows
        self._invalid = False

    def __iter__(self) -> _KvListIterator:
        return self

    def __next__(self) -> tuple[str, Any]:
        if self._invalid:
            raise RuntimeError(LIST_INVALIDATED)
        rows = self._rows
        if rows is None:
            raise StopIteration
        kv = self._kv
        kv._host.check_live(kv._gen)
        if kv._storage._stack:
            kv._storage._check_sync("next() on a kv.list() iterator")
        item = next(rows, None)
        if item is None:
            self._finish()
            raise StopIteration
        return item[0], decode(item[1])

    def _finish(self) -> None:
        rows, self._rows = self._rows, None
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        if self._kv._live is self:
            self._kv._live = None

    def _invalidate(self) -> None:
        self._finish()
        self._invalid = True
