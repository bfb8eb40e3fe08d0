"""``ctx.storage.kv``: the synchronous key-value API of SQLite-backed objects.

:class:`SyncKV` reads and writes the same ``_cf_KV`` table as the asynchronous ``ctx.storage``
methods, with the same keys, values and limits (``_keys.py``); its writes join the object's
implicit transaction like every other write. ``kv.list()`` returns a lazy iterator; as in workerd,
only one lives at a time.

Like ``SqlStorage``, it takes what it needs (the host, the instance generation, the database, the
storage's running transactions and their ``check_sync``) rather than the ``Storage`` it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any, Final, final

from ._aliases import normalize_options
from ._codec import decode
from ._keys import bindable_keys, check_key, checked_limit, compile_range, encode_checked
from ._sqlite import ObjectDatabase

if TYPE_CHECKING:
    from ._kvcache import KvCache
    from ._storage import StorageHost

__all__ = ["LIST_INVALIDATED", "SyncKV"]

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

    __slots__ = ("_check_sync", "_db", "_gen", "_host", "_live", "_transactions")

    def __init__(
        self,
        host: StorageHost,
        generation: int,
        database: ObjectDatabase,
        *,
        transactions: Sized,
        check_sync: Callable[[str], None],
    ) -> None:
        """Made by ``ctx.storage.kv``, never by applications.

        Args:
            host: the object's host (liveness, write notifications, limits).
            generation: the instance generation the storage belongs to (``host.check_live``).
            database: the object's database.
            transactions: the storage's running ``transaction()`` closures; while it is not
                empty, ``check_sync`` decides whether a synchronous call may run now.
            check_sync: raises when another event's ``transaction()`` is running; its argument
                names the operation (``"kv.get()"``).
        """
        self._host = host
        self._gen = generation
        self._db = database
        self._transactions = transactions
        self._check_sync = check_sync
        self._live: _KvListIterator | None = None

    def __repr__(self) -> str:
        return "<durable.SyncKV>"

    def _usable(self, what: str) -> None:
        """Raise unless ``what`` may run now: the instance is live, no other transaction runs."""
        self._host.check_live(self._gen)
        if self._transactions:
            self._check_sync(what)

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (a fresh copy), or ``None``."""
        host = self._host
        host.check_live(self._gen)
        if self._transactions:
            self._check_sync("kv.get()")
        blob = self._db.kv.get(check_key(key, host))
        return None if blob is None else decode(blob)

    def put(self, key: str, value: Any = ...) -> None:
        """Store ``value`` under ``key``.

        Raises ``DataCloneError`` for a value that cannot be stored and ``StorageLimitError`` for
        a key plus value over the limit; without a value, workerd's ``TypeError`` (``put(key)``,
        also ``put({...})``: this API takes one pair).
        """
        host = self._host
        host.check_live(self._gen)
        if self._transactions:
            self._check_sync("kv.put()")
        if value is ...:
            # workerd's words (measured with miniflare 4, 2026-04-07: kv.put("a"), kv.put({a: 1})).
            raise TypeError("Failed to execute 'put' on 'SyncKvStorage': parameter 2 is not of type 'JsValue'.")
        key = check_key(key, host)
        blob = encode_checked(key, value, host)
        self._db.kv.put(key, blob)
        host.wrote(gated=True)

    def delete(self, key: str) -> bool:
        """Delete ``key``; ``True`` if it existed."""
        host = self._host
        host.check_live(self._gen)
        if self._transactions:
            self._check_sync("kv.delete()")
        _, refused = bindable_keys((key := check_key(key, host),), host)
        if refused is not None:
            raise refused  # workerd's SQLITE_TOOBIG for a key too long to bind
        existed = self._db.kv.delete(key)
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
        self._usable("kv.list()")
        opts = normalize_options("list", options, _SYNC_LIST_OPTIONS) if options else {}
        bounds = compile_range(**opts)
        if bounds is None:
            # An empty range never reaches the database, so (as in workerd) it does not
            # invalidate the live iterator.
            return _KvListIterator(self, None)
        if self._live is not None:
            self._live._invalidate()
        rows = _Range(bounds[0], bounds[1], opts.get("reverse", False), checked_limit(opts.get("limit")))
        it = self._live = _KvListIterator(self, rows, self._db.kv)
        self._db.kv.listing = self.invalidate_iterator  # storage.list() invalidates it too
        return it

    def invalidate_iterator(self) -> None:
        """A ``storage.list()`` started: the live ``kv.list()`` iterator is invalidated, as in workerd."""
        if self._live is not None:
            self._live._invalidate()


@final
class _Range:
    """What a ``kv.list()`` iterator walks: bounds, direction, how many rows are left, the last key."""

    __slots__ = ("after", "end", "left", "reverse", "start")

    def __init__(self, start: str | None, end: str | None, reverse: bool, limit: int | None) -> None:
        self.start, self.end, self.reverse, self.left = start, end, reverse, limit
        self.after: str | None = None


@final
class _KvListIterator:
    """The iterator ``kv.list()`` returns: each step reads the next pair as stored at that moment."""

    __slots__ = ("_cache", "_invalid", "_kv", "_rows")

    def __init__(self, kv: SyncKV, rows: _Range | None, cache: KvCache | None = None) -> None:
        self._kv = kv
        self._rows = rows
        self._cache = cache
        """The object's key-value data, which each step reads (none for an empty range)."""
        self._invalid = False

    def __iter__(self) -> _KvListIterator:
        return self

    def __next__(self) -> tuple[str, Any]:
        if self._invalid:
            raise RuntimeError(LIST_INVALIDATED)
        rows = self._rows
        if rows is None:
            raise StopIteration
        self._kv._usable("next() on a kv.list() iterator")
        item = None
        if (rows.left is None or rows.left > 0) and self._cache is not None:
            item = self._cache.step(rows.start, rows.end, rows.after, reverse=rows.reverse)
        if item is None:
            self._finish()
            raise StopIteration
        rows.after = item[0]
        if rows.left is not None:
            rows.left -= 1
        return item[0], decode(item[1])

    def _finish(self) -> None:
        self._rows = None
        if self._kv._live is self:
            self._kv._live = None

    def _invalidate(self) -> None:
        self._finish()
        self._invalid = True
