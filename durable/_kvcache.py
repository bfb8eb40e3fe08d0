"""One object's key-value table (``_cf_KV``) behind a write buffer and a read cache.

``KvCache`` is the key-value API of an object's database (``ObjectDatabase.kv``), used by the
storage layer on every ``get``, ``put``, ``delete`` and ``list``. It keeps two things in memory:

- the write buffer: key-value writes not yet in SQLite, in the order made. They reach SQLite at
  the commit, or earlier when something must see them there (a range read, a savepoint, SQL that
  may read ``_cf_KV``): ``spill()``. A commit of one buffered write and nothing else is a single
  autocommit statement (``write_alone()``).
- the read cache: recently read or written pairs, as SQLite's transaction sees them, so reading
  them again runs no SQL. At most ``KV_CACHE_ENTRIES`` pairs, none larger than
  ``KV_CACHE_MAX_VALUE`` bytes; forgotten with the buffer whenever writes are rolled back.

The table is workerd's: ``_cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID``, created by the
first write, so the SQL API shares it. TEXT keys with SQLite's BINARY collation sort in UTF-8 byte
order, which is code-point order for valid strings. Values are codec bytes, never pickle.

The database (``_dbfile.Connections``) gives the connections; it tells this class of each
connection it opens (``attach``) or closes (``detach``), of rollbacks (``discard``) and of whether
the table exists (``exists``). ``tests/test_database_model.py`` runs this class against a dict.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from ._dbfile import Connections, wrap_error

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS _cf_KV (\n        key TEXT PRIMARY KEY,\n        value BLOB\n      ) WITHOUT ROWID;"
)
"""workerd's statement, spaces included: ``sqlite_master`` shows its text (from the table's name
on, so without ``IF NOT EXISTS``) as in workerd. The ``;`` ends the text SQLite keeps there
before durable's tag (a WITHOUT ROWID table's text otherwise runs to the end, comment included)."""

__all__ = ["KV_CACHE_ENTRIES", "KV_CACHE_MAX_VALUE", "KvCache"]

KV_CACHE_ENTRIES = 128
"""Key-value pairs an object keeps cached in memory (reads of them skip SQLite)."""

KV_CACHE_MAX_VALUE = 2048
"""Larger values (encoded bytes) are not cached."""

_MISSING: Any = object()


class KvCache:
    """The key-value pairs of one object's database: ``_cf_KV``, a write buffer and a read cache.

    Args:
        db: the database that holds the table, for its connections and statement tag.
    """

    def __init__(self, db: Connections) -> None:
        self._conns = db
        self._cursor: sqlite3.Cursor | None = None
        """The open connection's cursor (``attach``), reused by the hot statements."""
        self.exists = False
        """Whether ``_cf_KV`` exists in SQLite's current view (set by the database as it learns)."""
        self.cache: dict[str, bytes | None] = {}
        """Recently read pairs (None: absent), as SQLite's transaction sees them."""
        self.dirty: dict[str, bytes | None] = {}
        """Key-value writes not yet in SQLite (None: delete), in the order made. Read by the
        database's commit (``ObjectDatabase.commit``: a test of this dict, not ``buffered``, as
        it runs per call); changed only here."""
        self.listing: Callable[[], None] | None = None
        """Called when ``storage.list()`` starts (``SyncKV`` invalidates its live ``kv.list()`` iterator)."""
        self._sql_get = db.tagged("SELECT value FROM _cf_KV WHERE key = ?")
        self._sql_put = db.tagged("INSERT OR REPLACE INTO _cf_KV VALUES (?, ?)")
        self._sql_delete = db.tagged("DELETE FROM _cf_KV WHERE key = ?")

    # -- what the database tells it -------------------------------------------------------------

    def attach(self, cursor: sqlite3.Cursor) -> None:
        """A connection was opened: its cursor, reused by the hot statements."""
        self._cursor = cursor

    def detach(self) -> None:
        """The connection is closing: forget the buffer, the cache and the cursor."""
        self.discard()
        self._cursor = None

    def discard(self) -> None:
        """Forget buffered writes, and cached pairs (they may show writes being rolled back)."""
        self.dirty.clear()
        self.cache.clear()

    def drop_caches(self) -> None:
        """Forget cached pairs (after SQL that may have written ``_cf_KV`` directly)."""
        self.cache.clear()

    @property
    def buffered(self) -> bool:
        """Whether writes wait in the buffer (they are uncommitted writes, not yet in SQLite)."""
        return bool(self.dirty)

    @property
    def pending(self) -> bool:
        """Whether ``spill()`` would write to SQLite (buffered writes)."""
        return bool(self.dirty)

    def spill(self) -> None:
        """Write the buffered writes into SQLite's transaction (before SQL must see them)."""
        dirty = self.dirty
        if not dirty:
            return
        try:
            conn = self._ready_for_write()
            puts = [(key, bytearray(value)) for key, value in dirty.items() if value is not None]  # (write_alone)
            if puts:
                conn.executemany(self._sql_put, puts)
            if len(puts) < len(dirty):
                conn.executemany(self._sql_delete, [(key,) for key, value in dirty.items() if value is None])
        except sqlite3.Error as exc:
            # Damage met only now (a page the write reaches): DataCorruptionError naming the file.
            raise wrap_error(exc, self._conns.file) from exc
        for key, value in dirty.items():
            self._remember(key, value)
        dirty.clear()

    def write_alone(self) -> bool:
        """Commit the one buffered write as a single autocommit statement, if that is all there is.

        The database calls it only when nothing else is in SQLite's transaction (no ``BEGIN``
        ran). Returns whether it did; ``sqlite3`` errors are raised as they are (the commit wraps
        them).
        """
        dirty = self.dirty
        cursor = self._cursor
        if len(dirty) != 1 or cursor is None or not self.exists:
            return False
        # The one entry read as `for key in dirty`, then `dirty[key]`: `((key, value),) = dirty.items()`
        # made a view, its iterator and an unspecialized unpacking, about 1,060 instructions against
        # 665 (callgrind, seventeenth pass; kept in the twentieth, docs/performance.md).
        for key in dirty:
            value = dirty[key]
        if value is None:
            cursor.execute(self._sql_delete, (key,))
        else:
            # Bound as a bytearray, the same BLOB: sqlite3 binds a bytes parameter only after asking
            # the adapter protocol about it (an adapters lookup, then __adapt__, whose AttributeError
            # it formats, and __conform__), and an exact bytearray as it is. The copy costs a few
            # hundred instructions of the ~2,500 saved (callgrind, docs/performance.md, eighth pass).
            cursor.execute(self._sql_put, (key, bytearray(value)))
        # _remember(key, value), inlined for a small value already cached (a key written again):
        # a Python call less per commit (tenth pass, docs/performance.md).
        cache = self.cache
        if key in cache and (value is None or len(value) <= KV_CACHE_MAX_VALUE):
            cache[key] = value
        else:
            self._remember(key, value)
        dirty.clear()
        return True

    def _ready_for_write(self) -> sqlite3.Connection:
        conn = self._conns.write_conn()
        if not self.exists:
            conn.execute(self._conns.tagged(_CREATE_TABLE))
            self.exists = True
        return conn

    def _remember(self, key: str, value: bytes | None) -> None:
        cache = self.cache
        if value is not None and len(value) > KV_CACHE_MAX_VALUE:
            cache.pop(key, None)
            return
        if len(cache) >= KV_CACHE_ENTRIES and key not in cache:
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = value

    # -- the key-value API ----------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The stored value of ``key`` (codec bytes), or ``None``: from the buffer, the cache or SQLite."""
        cached = self.dirty.get(key, _MISSING)
        if cached is _MISSING:
            cached = self.cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]
        cursor = self._cursor
        if cursor is None:
            if self._conns.read_conn() is None:
                return None
            cursor = self._cursor  # attached by the connection just opened
        if not self.exists:
            return None
        assert cursor is not None
        try:
            row = cursor.execute(self._sql_get, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._conns.file) from exc
        value = None if row is None else row[0]
        if value is None or type(value) is bytes:
            self._remember(key, value)
        # else: stored as TEXT, INTEGER or REAL by another program; decode() reports it as damage.
        return value

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes]]:
        """The stored pairs among ``keys``, sorted by key; missing keys are left out."""
        self.spill()
        conn = self._conns.read_conn()
        if conn is None or not self.exists or not keys:
            return []
        found: list[tuple[str, bytes]] = []
        unique = sorted(set(keys))
        # Chunks of 100 stay within SQLITE_LIMIT_VARIABLE_NUMBER, which the SQL API lowers to 100
        # (Cloudflare's limit) on the connection once an object uses ``ctx.storage.sql``.
        for i in range(0, len(unique), 100):
            chunk = unique[i : i + 100]
            marks = ",".join("?" * len(chunk))
            sql = self._conns.tagged(f"SELECT key, value FROM _cf_KV WHERE key IN ({marks}) ORDER BY key")
            try:
                found.extend(conn.execute(sql, chunk))
            except sqlite3.Error as exc:
                raise wrap_error(exc, self._conns.file) from exc
        return found

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` (codec bytes) under ``key``, in the buffer."""
        self.dirty[key] = value

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """Store every pair of ``items``, in the buffer."""
        self.dirty.update(items)

    def delete(self, key: str) -> bool:
        """Delete ``key``; whether it existed."""
        existed = self.get(key) is not None
        if not existed:
            self.touch()
        if existed or key in self.dirty:
            self.dirty[key] = None
        return existed

    def touch(self) -> None:
        """A write that changed nothing (a delete of a missing key, ``put({})``): workerd creates
        ``_cf_KV`` for it all the same, so SQL run afterwards sees the table (measured with
        miniflare 4.20260426: ``sqlite_master`` lists it, and ``ALTER TABLE`` reads one row more),
        and commits it with the turn: a new instance (after a reset, or workerd restarted on the
        same files) still lists it; a rollback (of the turn, of a ``transaction()``) drops it.

        So the table is created now, in the implicit transaction (opened if need be; the caller
        then marks the object written, as for any write), and committed with the turn's writes.
        With writes buffered it is created when they reach SQLite (``spill()``), as they are
        committed with the turn too. Until 2026-12 the creation waited for SQL of the same
        instance to need the table, and a reset or restart before that lost it.
        """
        if not self.exists and not self.dirty:
            try:
                self._ready_for_write()
            except sqlite3.Error as exc:
                # As spill() reports it: the call that made the write fails with durable's error
                # (a full disk: SqlError with SQLITE_FULL; a damaged file: DataCorruptionError).
                raise wrap_error(exc, self._conns.file) from exc

    def delete_many(self, keys: list[str]) -> int:
        """Delete ``keys``; how many of them existed."""
        deleted = 0
        for key in dict.fromkeys(keys):
            deleted += self.delete(key)
        return deleted

    def scan(
        self, start: str | None, end: str | None, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[str, bytes]]:
        """Pairs with ``start <= key < end`` (``None``: unbounded), ascending or descending."""
        return self._select(start, end, None, reverse=reverse, limit=limit)

    def step(self, start: str | None, end: str | None, after: str | None, *, reverse: bool) -> tuple[str, bytes] | None:
        """The first pair in ``start <= key < end`` past ``after`` (in the direction given), as
        stored now; ``None`` when there is none.

        ``kv.list()``'s iterator takes its rows one by one with this, so that, as workerd's
        cursor does, it sees what was written or deleted ahead of it since it started (a
        ``sqlite3`` cursor has read its next row already).
        """
        rows = self._select(start, end, after, reverse=reverse, limit=1)
        return rows[0] if rows else None

    def _select(
        self, start: str | None, end: str | None, after: str | None, *, reverse: bool, limit: int | None
    ) -> list[tuple[str, bytes]]:
        self.spill()
        conn = self._conns.read_conn()
        if conn is None or not self.exists:
            return []
        clauses: list[str] = []
        params: list[object] = []
        if start is not None:
            clauses.append("key >= ?")
            params.append(start)
        if end is not None:
            clauses.append("key < ?")
            params.append(end)
        if after is not None:
            clauses.append("key < ?" if reverse else "key > ?")
            params.append(after)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = ""
        if limit is not None:
            tail = " LIMIT ?"
            params.append(limit)
        order = "DESC" if reverse else "ASC"
        sql = self._conns.tagged(f"SELECT key, value FROM _cf_KV{where} ORDER BY key {order}{tail}")
        try:
            rows: list[tuple[str, bytes]] = conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._conns.file) from exc
        return rows

    def count(self) -> int:
        """How many pairs are stored."""
        self.spill()
        conn = self._conns.read_conn()
        if conn is None or not self.exists:
            return 0
        try:
            return conn.execute(self._conns.tagged("SELECT count(*) FROM _cf_KV")).fetchone()[0]  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._conns.file) from exc

    def clear(self) -> None:
        """Delete every pair, inside the implicit transaction (nothing is created if nothing exists)."""
        self.discard()
        if self._conns.read_conn() is None:
            return
        conn = self._conns.write_conn()
        if self.exists:
            try:
                conn.execute(self._conns.tagged("DELETE FROM _cf_KV"))
            except sqlite3.Error as exc:
                raise wrap_error(exc, self._conns.file) from exc
