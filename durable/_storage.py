"""``ctx.storage``: the transactional key-value API of one object, its transactions and its alarm.

Every method applies its effect when called and returns an awaitable that is already resolved
(``_done.Done``), as Cloudflare's promises run whether or not they are awaited: an un-awaited
``put`` still happens, and a ``get`` sees every write made before it (reads of one's own writes are
immediate). Writes join the object's implicit transaction, which the host commits at the end of
the turn; the output gate holds the object's results until that commit (see ``_host.py``).

:class:`Storage` keeps the key-value methods and hands the rest to collaborators it holds, one
per concern: ``_transaction.Transactions`` (``transaction()``, ``transaction_sync()`` and the
isolation of running transactions from the rest of the object's code), ``_storage_alarm.StorageAlarm``
(the alarm methods) and ``_bookmarks.Bookmarks`` (point-in-time recovery). Keys, values and ranges
are checked by ``_keys.py``; ``ctx.storage.kv`` is ``_kv.SyncKV`` and ``ctx.storage.sql`` is
``_sql.SqlStorage``, both over the same database and implicit transaction.

This module knows nothing of namespaces, stubs or HTTP. It talks to its object through the small
:class:`StorageHost` protocol.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from asyncio import _get_running_loop
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, final, overload

from . import _codec, _context
from ._aliases import camel_aliases, normalize_options
from ._bookmarks import Bookmarks
from ._codec import decode, encode
from ._context import Running, check_owner
from ._done import NONE as _NONE
from ._done import Done as Done
from ._done import next_turn
from ._exceptions import DurableError, InvalidTransactionError
from ._gates import InputGate, through_gate
from ._keys import (
    GET_OPTIONS,
    LIST_OPTIONS,
    PUT_OPTIONS,
    PUT_SHAPE,
    KeyList,
    as_key,
    bindable_keys,
    check_batch,
    check_key,
    check_value_size,
    checked_limit,
    encode_checked,
)
from ._keys import compile_range as compile_range
from ._kv import LIST_INVALIDATED as LIST_INVALIDATED
from ._kv import SyncKV as SyncKV
from ._limits import Limits
from ._sqlite import ObjectDatabase
from ._storage_alarm import StorageAlarm, alarm_stored
from ._transaction import NOW, AsyncClosure, Closure, Transactions
from ._transaction import Transaction as Transaction
from ._v8size import V8_SIZE_FACTOR

if TYPE_CHECKING:
    from ._alarm_state import AlarmState
    from ._snapshot import DurableObjectSnapshot
    from ._sql import SqlStorage

__all__ = [
    "LIST_INVALIDATED",
    "Done",
    "Storage",
    "StorageHost",
    "SyncKV",
    "Transaction",
    "check_key",
    "compile_range",
    "encode_checked",
]

T = TypeVar("T")

running = _context.running
"""The context variable of ``_context`` (whose code runs), assigned here, not imported: CPython
3.11 compiles ``name.get()`` on a name a module imported to an attribute load and a call, which
makes a bound method per call (about 480 instructions), where an assigned name gets ``LOAD_METHOD``
(get() and put() read it once each, as does Stub.fetch: seq-fetch 106,140 -> 104,649 instructions,
callgrind, docs/performance.md, ninth pass)."""

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


class StorageHost(Protocol):
    """What storage needs from the object that owns it (implemented by ``_host.ObjectHost``).

    Attributes:
        db: the object's database (write buffer, read cache, implicit transaction).
        limits: the runtime's storage limits (key and value sizes, batch sizes).
        kv_backed: whether the object is key-value-backed (no ``sql``, ``kv``, bookmarks).
        has_alarm_handler: whether ``set_alarm`` may be called: the class defines ``alarm()``, or
            its constructor is running (workerd looks for the handler once the object is built).
        gate: the object's input gate, which ``transaction()`` closures hold.
        gen: the current instance generation; a reset increments it.
        running: what the current generation's code runs with in ``_context.running``.
        alarms: the alarm's bookkeeping (a ``transaction()`` closure's start is a section's,
            ``AlarmState.section_started``).
    """

    db: ObjectDatabase
    limits: Limits
    kv_backed: bool
    has_alarm_handler: bool
    gate: InputGate
    alarms: AlarmState

    gen: int
    running: Running

    def check_live(self, generation: int) -> None:
        """Raise the reset's error if the instance of ``generation`` was reset (or the runtime
        closed), and ``RuntimeError`` if called from outside the object's own events."""
        ...

    def wrote(self, gated: bool) -> None:
        """Record a write in the current batch, which commits at the end of the turn.

        ``gated``: the write holds the output gate until it commits (every write but those
        made with ``allow_unconfirmed=True``). ``Storage.put`` passes it positionally (a call
        with a keyword is not specialized by CPython 3.11: thirteenth pass).
        """
        ...

    def alarm_written(self, stored_changed: bool = True, *, from_none: bool = False) -> None:
        """Record that the alarm was set or deleted, so that the scheduler re-arms it after the
        commit (``stored_changed=False``: a delete that found no alarm stored, which the scheduler
        must not hear of; ``from_none``: a set where none was stored; see ``AlarmState.written``)."""
        ...

    def savepoint_ended(self, kept: bool) -> None:
        """A ``transaction()`` or ``transaction_sync()`` savepoint was released (``kept``) or rolled back."""
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

    def commit_now(self) -> None:
        """Commit what waits now, even within an event's step (``delete_all()``)."""
        ...


_Pairs = list[tuple[str, bytes]]


@final
class _KvTable:
    """The key-value data as ``Storage`` changes it: decoded reads, writes reported to the host.

    What a call does once it may run, apart from the checks that decide whether it may (those
    stay in ``Storage``): a call that waits for a transaction queues one of these methods. The
    plain ``get``/``put`` of a key, the hot path, does the same inline.
    """

    __slots__ = ("_db", "_host")

    def __init__(self, host: StorageHost) -> None:
        self._host = host
        self._db = host.db

    def get(self, key: str) -> Any:
        """The value under ``key``, or ``None``."""
        blob = self._db.kv.get(key)
        return None if blob is None else decode(blob)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The values of those of ``keys`` that exist, by key."""
        return {k: decode(v) for k, v in self._db.kv.get_many(keys)}

    def scan(self, bounds: tuple[str | None, str | None], *, reverse: bool, limit: int | None) -> dict[str, Any]:
        """The pairs of the key range ``bounds``, in key order (``list()``)."""
        kv = self._db.kv
        if kv.listing is not None:
            kv.listing()  # a new list invalidates kv.list()'s live iterator, as in workerd
        rows = kv.scan(bounds[0], bounds[1], reverse=reverse, limit=limit)
        return {k: decode(v) for k, v in rows}

    def put(self, key: str, blob: bytes, gated: bool) -> None:
        """Store one encoded value."""
        self._db.kv.put(key, blob)
        self._host.wrote(gated=gated)

    def put_all(self, blobs: _Pairs, gated: bool) -> None:
        """Store encoded values, as one batch.

        An empty batch (``put({})``) stores nothing but creates ``_cf_KV``, as in workerd
        (miniflare 4.20260426: SQL run after it lists the table), and as a delete of a missing key
        does: with no commit of its own outside a transaction (``delete`` below).
        """
        db = self._db
        if blobs:
            db.kv.put_many(blobs)
        else:
            db.kv.touch()
            if not db.in_transaction:
                return
        self._host.wrote(gated=gated)

    def delete(self, keys: str | KeyList, *, gated: bool) -> bool | int:
        """Delete one key (whether it existed) or several (how many existed).

        A key too long for SQLite to bind raises, after the keys before it (``bindable_keys``).
        """
        db = self._db
        result: bool | int
        if isinstance(keys, str):
            bound, refused = bindable_keys((keys,), self._host)
            result = db.kv.delete(keys) if bound else False
        else:
            bound, refused = bindable_keys(keys, self._host)
            result = db.kv.delete_many(list(bound))
        if db.in_transaction:
            self._host.wrote(gated=gated)
        if refused is not None:
            raise refused
        return result

    def clear(self, *, gated: bool) -> None:
        """``delete_all()``: every key, the alarm and (SQLite-backed) every table."""
        # Buffered writes are dropped even when nothing reached SQLite yet (a new object's first
        # turn): workerd's deleteAll() undoes them too.
        had_alarm = alarm_stored(self._db)  # (a damaged one too: wiped with the rest)
        if self._host.kv_backed:
            self._db.kv_clear()
        else:
            self._db.wipe()
        # No alarm stored: nothing for the scheduler, whose pending retry goes on (AlarmState.written).
        self._host.alarm_written(had_alarm)
        self._host.wrote(gated=gated)


# Storage.get() of one key looks in the write buffer and the key-value cache itself (kv.get(key)'s
# first two lookups) and leaves only SQLite to kv.get: a cached key (sequential calls)
# seq-increment 77,769 -> 76,916 (tenth pass), a key written earlier in the turn (concurrent calls,
# each reading what the one before wrote) conc-increment 65,936 -> 65,249 instructions (callgrind,
# twelfth pass, docs/performance.md).

# No lambda nor comprehension in Storage.get() and put(): each variable those capture is a cell that
# every call makes, deferred or not (10 in all); functools.partial and the two helpers below make
# none: seq-increment 89,680 -> 86,876 instructions (callgrind, docs/performance.md, ninth pass).


def _checked_keys(keys: KeyList, host: StorageHost) -> list[str]:
    """``keys`` checked (``get`` of a list), in a function of its own (see above)."""
    return [check_key(k, host) for k in keys]


def _encoded_pairs(pairs: Mapping[str, Any], host: StorageHost) -> _Pairs:
    """The keys of ``put(dict)`` checked, then its values encoded (see above)."""
    items = [(check_key(k, host), v) for k, v in pairs.items()]
    return [(k, encode_checked(k, v, host)) for k, v in items]


def _sync_in_transaction(txns: Transactions, host: StorageHost) -> Awaitable[None]:
    """``sync()`` while a ``transaction()`` is open.

    From the running transaction's own code it completes at once: its writes commit when the
    outermost transaction ends, after this closure, so waiting for that commit there would wait
    forever (workerd resolves it at once, measured with miniflare 2026-12-06). From other code, it
    waits for its turn, then for the commit that follows.

    The caller of a transaction whose closure has not started yet (or of the one it waited for),
    whose other calls go first (``Transactions.where``), waits for that closure too: workerd
    resolves its ``sync()`` after the closure ends, at the top level and inside a transaction
    (miniflare 4, 2026-04-07, both backends, tests/test_transactions.py). Inside one it waits
    for no commit: that comes when the outermost transaction ends, after the caller's code.
    """
    level = txns.where()
    if level is NOW:
        own = txns.level()
        if own is txns.stack[-1]:
            return _NONE
        queued = txns.defer(own, lambda: None)  # (the caller goes first: after the closure)
        return through_gate(
            queued if own is not None else asyncio.ensure_future(_commit_after(queued, host)), host.gate
        )
    return through_gate(asyncio.ensure_future(_commit_after(txns.defer(level, lambda: None), host)), host.gate)


async def _commit_after(queued: Awaitable[None], host: StorageHost) -> None:
    """``sync()`` from outside a running transaction: its turn, then the commit that follows."""
    await queued
    await host.commit_waiter()


# -- the API ------------------------------------------------------------------------------------


_new = object.__new__
"""``object.__new__``, read once: read per call (``object.__new__(Done)`` in Storage.get), it was a
lookup on a type, which CPython 3.11 does not specialize (thirteenth pass)."""

_UNCACHED: Any = object()
"""Storage.get's mark for a key not in the key-value cache."""


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

    __slots__ = ("_alarm", "_bookmarks", "_db", "_gen", "_host", "_kv", "_sql", "_stack", "_table", "_txns")

    def __init__(self, host: StorageHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self._db = host.db
        self._sql: SqlStorage | None = None
        self._kv: SyncKV | None = None
        self._txns = Transactions(host, generation)
        self._stack = self._txns.stack  # the same list: tested first, where() asked only when non-empty
        self._table = _KvTable(host)
        self._alarm = StorageAlarm(host, generation, self._txns)
        self._bookmarks = Bookmarks(host, generation)

    def __repr__(self) -> str:
        return f"<durable.Storage {'kv' if self._host.kv_backed else 'sqlite'}-backed>"

    def inside_transaction(self) -> bool:
        """Whether the running code is inside one of this object's open ``transaction()`` calls."""
        return self._txns.inside()

    @overload
    def get(self, key: str, **options: Any) -> Awaitable[Any]: ...
    @overload
    def get(self, key: KeyList, **options: Any) -> Awaitable[dict[str, Any]]: ...
    def get(self, key: str | KeyList, **options: Any) -> Awaitable[Any]:
        """Read one key (its value, or ``None``) or several (a dict of those that exist, by key).

        Options ``allow_concurrency`` and ``no_cache`` are accepted and change nothing (reads never suspend here:
        ``docs/differences.md``). Checks run only where they could fail (check_live, check_key: docs/performance.md).
        """
        host = self._host
        if self._gen != host.gen or running.get() is not host.running or _get_running_loop() is None:
            host.check_live(self._gen)  # raises: reset or evicted, or not used by the object's own code
        if options:
            normalize_options("get", options, GET_OPTIONS)
        if type(key) is str:
            if host.kv_backed or not key.isascii():
                check_key(key, host)
            if self._stack and (level := self._txns.where()) is not NOW:
                return self._txns.defer(level, partial(self._table.get, key))
            kv = self._db.kv  # kv.get(key)'s lookups and decode()'s first test, inlined: see below the class
            blob = kv.dirty.get(key, _UNCACHED) if kv.dirty else _UNCACHED
            if blob is _UNCACHED and (blob := kv.cache.get(key, _UNCACHED)) is _UNCACHED:
                blob = kv.get(key)
            if blob is None:
                return _NONE
            (result := _new(Done)).value = last[1] if blob is (last := _codec.last_int)[0] else decode(blob)
            return result
        if isinstance(key, (list, tuple)):
            keys = _checked_keys(key, host)
            check_batch(len(keys), host)
            if self._stack and (level := self._txns.where()) is not NOW:
                return self._txns.defer(level, partial(self._table.get_many, keys))
            return Done(self._table.get_many(keys))
        return self.get(as_key(key, "get"), **options)  # a str subclass, or TypeError

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
        opts = normalize_options("list", options, LIST_OPTIONS) if options else {}
        opts.pop("allow_concurrency", None)
        opts.pop("no_cache", None)
        bounds = compile_range(**opts)
        if bounds is None:
            return Done({})
        reverse, limit = opts.get("reverse", False), checked_limit(opts.get("limit"))
        if self._stack and (level := self._txns.where()) is not NOW:
            return self._txns.defer(level, lambda: self._table.scan(bounds, reverse=reverse, limit=limit))
        return Done(self._table.scan(bounds, reverse=reverse, limit=limit))

    # -- writes --

    def put(self, key: str | Mapping[str, Any], value: Any = ..., **options: Any) -> Awaitable[None]:
        """Store ``value`` under ``key``, or every pair of a dict as one atomic batch.

        Raises ``DataCloneError`` for a value that cannot be stored, ``StorageLimitError`` past a
        limit, ``TypeError`` for a malformed call; nothing is written when any check fails.
        Option ``allow_unconfirmed=True``: results of the object are not held for this write.
        """
        host = self._host
        if self._gen != host.gen or running.get() is not host.running or _get_running_loop() is None:
            host.check_live(self._gen)  # raises, as in get()
        gated = not options or not normalize_options("put", options, PUT_OPTIONS).get("allow_unconfirmed", False)
        if type(key) is str:
            if value is ...:
                raise TypeError("put() called with undefined value.")
            if host.kv_backed or not key.isascii():
                check_key(key, host)  # the common case needs no check (as in get())
            blob = encode(value)  # encode_checked(key, value, host), inlined: see below the class
            if host.kv_backed or (len(blob) + len(key)) * V8_SIZE_FACTOR > (host.limits.sqlite_max_row_bytes or 0):
                check_value_size(key, value, blob, host)  # raises past a limit (no limit: None, checked there)
            if self._stack and (level := self._txns.where()) is not NOW:
                return self._txns.defer(level, partial(self._table.put, key, blob, gated), write=True, gated=gated)
            self._db.kv.dirty[key] = blob  # kv.put(key, blob), inlined: a Python call less (tenth pass)
        elif isinstance(key, Mapping) and (value is ... or value is None):  # None: JavaScript's null options
            check_batch(len(key), host)
            blobs = _encoded_pairs(key, host)
            if self._stack and (level := self._txns.where()) is not NOW:
                return self._txns.defer(level, partial(self._table.put_all, blobs, gated), write=True, gated=gated)
            self._table.put_all(blobs, gated)  # (an empty one creates _cf_KV, as in workerd)
            return _NONE
        elif isinstance(key, str):
            return self.put(as_key(key, "put"), value, **options)  # a str subclass: its text
        else:
            raise TypeError(PUT_SHAPE)
        host.wrote(gated)  # (positional: see StorageHost.wrote)
        return _NONE

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
        opts = normalize_options("delete", options, PUT_OPTIONS) if options else {}
        gated = not opts.get("allow_unconfirmed", False)
        keys: str | list[str]
        if isinstance(key, str):
            keys = check_key(key, host)
        elif isinstance(key, (list, tuple)):
            keys = [check_key(k, host) for k in key]
            check_batch(len(keys), host)
        else:
            raise TypeError(f"delete() takes a str key or a list of str keys, not {type(key).__name__}")
        if self._stack and (level := self._txns.where()) is not NOW:
            return self._txns.defer(level, lambda: self._table.delete(keys, gated=gated), write=True, gated=gated)
        return Done(self._table.delete(keys, gated=gated))

    def delete_all(self, **options: Any) -> Awaitable[None]:
        """Delete everything: every key, the alarm and, for SQLite-backed objects, every SQL table.
        Raises ``InvalidTransactionError`` inside ``transaction()``, as Cloudflare does."""
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("delete_all", options, PUT_OPTIONS) if options else {}
        if self._txns.level() is not None:
            raise InvalidTransactionError("Cannot call deleteAll() within a transaction")
        gated = not opts.get("allow_unconfirmed", False)
        if self._stack and self._txns.where() is not NOW:  # (NOW: before a transaction's closure starts)
            return self._txns.defer(None, lambda: self._table.clear(gated=gated), write=True, gated=gated)
        self._table.clear(gated=gated)
        host.commit_now()  # durable at once, as workerd's (an abort() later in the turn undoes nothing)
        return _NONE

    def sync(self) -> Awaitable[None]:
        """Completes once every write made before the call is durable (``_sync_in_transaction``).
        It suspends even with nothing pending: workerd's opens the input gate (``next_turn``)."""
        self._host.check_live(self._gen)
        if self._stack:
            return _sync_in_transaction(self._txns, self._host)
        waiter = self._host.commit_waiter()
        return through_gate(next_turn(None) if isinstance(waiter, Done) else waiter, self._host.gate)

    # -- the alarm (_storage_alarm.py) --

    def get_alarm(self, **options: Any) -> Awaitable[int | None]:
        """The alarm's time in ms since the epoch, or ``None``.

        Inside a running ``alarm()`` handler this is ``None`` unless the handler set a new alarm.
        """
        return self._alarm.get(options)

    def set_alarm(self, when: int | float | _dt.datetime, **options: Any) -> Awaitable[None]:
        """Set the object's one alarm (replacing any other) to ``when``.

        ``when`` is ms since the epoch or a ``datetime``; a time in the past runs as soon
        as possible. Raises ``TypeError`` for a time <= 0 and for a class without ``alarm()``.
        """
        return self._alarm.set(when, options)

    def delete_alarm(self, **options: Any) -> Awaitable[None]:
        """Cancel the alarm, if any. A handler already running is not cancelled."""
        return self._alarm.delete(options)

    # -- transactions (_transaction.py) --

    @overload
    def transaction(self, fn: AsyncClosure[T]) -> asyncio.Task[T]: ...
    @overload
    def transaction(self, fn: Callable[[Transaction], T] | Callable[[], T]) -> asyncio.Task[T]: ...
    def transaction(self, fn: Closure[T]) -> asyncio.Task[T]:
        """Run ``fn(txn)`` (``fn()`` if it takes no argument) as one transaction.

        No other event is delivered meanwhile. The closure's writes (through ``txn`` or straight on ``ctx.storage``) commit together
        when it returns, and are rolled back if it raises (the error propagates; the object is
        not reset). ``txn.rollback()`` discards them and the closure's value is still returned.
        Transactions nest as savepoints. Returns a task that is already running.

        Transactions are serialized: one started while another runs (from another event, or a
        sibling task such as ``asyncio.gather(transaction(f), transaction(g))``) waits until that
        one has ended, as workerd's do. Other code of the object never sees a transaction's writes
        before it ends, and its rollback never undoes writes made outside it. A transaction ends
        once its closure and the transactions started inside it have ended.
        """
        return self._txns.run(fn, self)

    def transaction_sync(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` synchronously in a savepoint and return its value.

        Its writes commit with the object's implicit transaction if it returns, and are rolled
        back if it raises (only the inner part, when nested). ``fn`` must not be async. It
        works on key-value-backed classes too, as in workerd (their ``put``/``delete`` join it).
        """
        return self._txns.run_sync(fn)

    # -- point-in-time recovery (_bookmarks.py, _history.py and docs/recovery.md) --

    def get_current_bookmark(self) -> Awaitable[str]:
        """A bookmark of the current state, once the writes made so far have committed (as on
        Cloudflare, possibly with concurrent ones). ``NotImplementedError`` if the runtime keeps no
        history (saying how to turn it on) or for a key-value-backed class."""
        return self._bookmarks.current()

    def get_bookmark_for_time(self, when: int | float | _dt.datetime) -> Done[str]:
        """The bookmark of the state the object had at ``when`` (ms since the epoch, or a datetime).
        ``ValueError`` for a time in the future, over 30 days ago, or before the object's history."""
        return self._bookmarks.for_time(when)

    def on_next_session_restore_bookmark(self, bookmark: str) -> Done[str]:
        """Restore the whole storage (KV, SQL, alarm) to ``bookmark`` when the object next starts
        (force it with ``ctx.abort()``); returns the bookmark of this session's end, which undoes it.
        ``ValueError`` for a bookmark of another object, or older than 30 days."""
        return self._bookmarks.restore_next(bookmark)

    def snapshot(self, bookmark: str | None = None) -> Awaitable[DurableObjectSnapshot]:
        """An opaque copy of the whole storage (SQL and KV, no alarm) to restore into another
        SQLite-backed object over RPC (``ctx.on_next_session_restore``): of the state once the writes
        made so far commit, or at ``bookmark`` (needs point-in-time recovery). See docs/recovery.md."""
        return self._bookmarks.snapshot(bookmark)

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
                self._host, self._gen, self._db, transactions=self._stack, check_sync=self._txns.check_sync
            )
        return self._sql

    @property
    def kv(self) -> SyncKV:
        """Synchronous ``get``/``put``/``delete``/``list`` on the same data; SQLite-backed only."""
        if self._kv is None:
            self._host.check_live(self._gen)
            if self._host.kv_backed:
                raise DurableError(_NO_SYNC_KV)
            self._kv = SyncKV(
                self._host, self._gen, self._db, transactions=self._stack, check_sync=self._txns.check_sync
            )
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


# Storage.get and Storage.put, inlined on their common paths (docs/performance.md, sixteenth pass):
# - get(key) of one key reads the key-value buffer and cache itself (kv.get's lookups), and answers
#   an int from the very bytes encode() made last for it without calling decode()
#   (``_codec.last_int``, read once: decode()'s own first test; anything else is decode()'s, its
#   errors too): the increment's read.
# - put(key, value) encodes with encode() and calls check_value_size() only where encode_checked()
#   could refuse the value: always for a key-value object; for a SQLite-backed one when the
#   encoding and the key times V8_SIZE_FACTOR pass the row limit (check_value_size's own first
#   test; with no row limit, ``None`` taken as 0, it is called and checks nothing), so put()
#   refuses exactly what encode_checked() refuses (tests/test_fast_paths.py).
# The two frames less: seq-fetch 83,095 -> 82,263, conc-fetch 72,757 -> 71,901, seq-increment 69,413 -> 68,601
# instructions per call (callgrind, benchmarks/instructions.sh, exports of 62b749c and of the change at paths
# of the same length).
