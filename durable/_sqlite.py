"""One object's database: a SQLite file (or in-memory database) and the implicit transaction on it.

This module knows nothing of objects, events or the event loop. It owns the connection, every
pragma, the two reserved tables, and the transaction primitives the storage layer builds on:

- ``_cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID``: the key-value data, as on Cloudflare,
  so the SQL API shares the same database. TEXT keys with SQLite's BINARY collation sort in UTF-8
  byte order, which is code-point order for valid strings. Values are codec bytes, never pickle.
- ``_cf_METADATA(key TEXT PRIMARY KEY, value) WITHOUT ROWID``: the object's alarm. As in workerd,
  it is created by the first ``set_alarm`` only, so user SQL sees no such table before (``no such
  table: _cf_METADATA``), and ``delete_all`` drops it with every other table.

The schema version is the file's ``PRAGMA user_version`` (refused to user SQL, as in workerd), and
the object's name is kept by the runtime's directory (``_directory.py``): the object's own database
holds nothing workerd's does not. Files written by an older durable, whose ``_cf_METADATA`` held
the schema version and the name, are cleaned when opened: the name is handed to ``name_sink``.

Writes go into an implicit transaction committed by the storage layer at the end of the turn
(``commit()``), which is workerd's model for SQLite-backed objects: every write made without a
suspension in between commits atomically. Nested explicit transactions are savepoints inside it.
Nothing is created on disk for an object that only reads.

Key-value writes are buffered in memory (``_dirty``) and reach SQLite at the commit, or earlier when
something must see them in SQLite (a range read, a savepoint, SQL that may read ``_cf_KV``). A
commit of one buffered key-value write and nothing else is a single autocommit statement.
Recently read or written pairs are cached (``_kv_cache``), so reading them runs no SQL.

A damaged file never leaks ``sqlite3`` errors or connections: opening it closes whatever it
opened before raising, and the errors of opening and of the key-value and metadata reads reach
callers as :class:`~durable.DataCorruptionError` (the file is damaged) or
:class:`~durable.SqlError` (anything else), raised ``from`` the ``sqlite3`` error (``wrap_error``).
An empty object file is damage too: durable creates each file with its first page already
written (``_create_file``).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ._exceptions import DataCorruptionError, SqlError

__all__ = ["SCHEMA_VERSION", "ObjectDatabase", "connect", "wrap_error"]

SCHEMA_VERSION = 1
"""Version of the reserved-table layout: an object file's ``PRAGMA user_version``, and the runtime
metadata database's ``schema_version``."""


def connect(file: Path | str, *, synchronous: str = "NORMAL", exclusive: bool = True) -> sqlite3.Connection:
    """Open a SQLite connection with every pragma `durable` relies on, set in this one place.

    - ``isolation_level=None``: Python's sqlite3 must not open transactions behind our back; the
      storage layer issues ``BEGIN``/``COMMIT`` itself, mirroring workerd's implicit transaction.
    - ``journal_mode=WAL``: a commit is one append to the log, and a process killed at any moment
      (``kill -9``) leaves either the whole transaction or none of it.
    - ``synchronous=NORMAL`` (default): in WAL mode a commit survives the process being killed;
      only a power loss may drop the last commits. ``Runtime(synchronous="FULL")`` fsyncs every
      commit for power-loss durability, at a cost.
    - ``locking_mode=EXCLUSIVE`` (set before WAL, so the WAL index lives in process memory, not in
      a ``-shm`` file): a runtime owns its files alone (the path lock refuses a second runtime), so
      SQLite need not take and drop file locks around every transaction; that was 8 ``fcntl``
      calls per read-modify-write. Outside tools can read an object's file once the runtime has
      closed it (idle eviction or ``aclose()``).
    - ``foreign_keys=ON``: Cloudflare enforces foreign keys in Durable Object SQLite databases.
    - ``busy_timeout``: one runtime owns a path (a lock file enforces it), so contention only
      comes from outside tools reading the file; wait a little rather than fail at once.
    - ``check_same_thread=False``: the connection is only used from the event-loop thread, but a
      runtime may be closed from another thread after its loop ended.

    If a pragma fails (a damaged file: "file is not a database", "database disk image is
    malformed"), the connection is closed before the error is raised: left open, it would keep the
    file's exclusive lock, and every later attempt would wait out the busy timeout, then fail with
    "database is locked".
    """
    conn = sqlite3.connect(os.fspath(file), isolation_level=None, check_same_thread=False, cached_statements=256)
    try:
        if os.fspath(file) != ":memory:":
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            # synchronous first: switching a new file to WAL is itself a write, made at this level.
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


_CORRUPTION_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_INDEX", "SQLITE_CORRUPT_SEQUENCE"})


def wrap_error(
    exc: sqlite3.Error, file: Path | None, *, what: str = "the database of this Durable Object"
) -> DataCorruptionError | SqlError:
    """The `durable` error for a ``sqlite3`` error met outside user SQL (raise it ``from exc``).

    A damaged file (SQLite's ``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``, or a bare
    ``sqlite3.DatabaseError``) is a :class:`DataCorruptionError` naming the file; anything else
    (a full disk, an I/O error, a lock held by another program) a :class:`SqlError` with SQLite's
    code.
    """
    code = getattr(exc, "sqlite_errorname", None)
    where = "in memory" if file is None else f"at {os.fspath(file)!r}"
    if code in _CORRUPTION_CODES or type(exc) is sqlite3.DatabaseError:
        return DataCorruptionError(
            f"{what} {where} is damaged ({exc}): restore it from a backup, or delete the file to start afresh"
        )
    suffix = f": {code}" if code else ""
    return SqlError(f"{exc}{suffix} ({what} {where})", code=code)


def _checked_rows(rows: Iterator[tuple[str, bytes]], file: Path | None) -> Iterator[tuple[str, bytes]]:
    """``rows`` with any ``sqlite3`` error met while reading them wrapped (see ``wrap_error``)."""
    try:
        yield from rows
    except sqlite3.Error as exc:
        raise wrap_error(exc, file) from exc


class CommitHooks(Protocol):
    """What the database tells a history of itself (implemented by ``_history.History``)."""

    def opened(self, conn: sqlite3.Connection, file: Path | None) -> None: ...
    def committed(self, conn: sqlite3.Connection, file: Path | None) -> None: ...
    def closing(self, conn: sqlite3.Connection, file: Path | None) -> None: ...
    def closed(self, file: Path | None) -> None: ...


KV_CACHE_ENTRIES = 128
"""Key-value pairs an object keeps cached in memory (reads of them skip SQLite)."""

KV_CACHE_MAX_VALUE = 2048
"""Larger values (encoded bytes) are not cached."""

_MISSING: Any = object()


class ObjectDatabase:
    """The storage of one Durable Object: lazily opened, transactional, closable and reopenable.

    Args:
        file: the database file, or ``None`` for an in-memory database (which lives as long as
            this object, across evictions of the Durable Object instance).
        name: the object's name, handed to ``name_sink`` when the file is created (so ids rebuilt
            from storage keep it); an in-memory database keeps it here.
        synchronous: the ``PRAGMA synchronous`` level for file databases.
    """

    def __init__(self, file: Path | None, *, name: str | None = None, synchronous: str = "NORMAL") -> None:
        self.file = file
        self.name = name
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        self._kv_exists = False
        self._meta_exists = False
        # Internal statements carry a per-database random tag, so the prepared-statement cache never
        # hands a statement prepared without the SQL authorizer to user SQL of the same text.
        self._tag = secrets.token_hex(8)
        # The hot statements, built once.
        self._sql_begin = self.tagged("BEGIN")
        self._sql_commit = self.tagged("COMMIT")
        self._sql_get = self.tagged("SELECT value FROM _cf_KV WHERE key = ?")
        self._sql_put = self.tagged("INSERT OR REPLACE INTO _cf_KV VALUES (?, ?)")
        self._sql_delete = self.tagged("DELETE FROM _cf_KV WHERE key = ?")
        self._kv_cache: dict[str, bytes | None] = {}
        """Recently read pairs (None: absent), as SQLite's transaction sees them."""
        self._dirty: dict[str, bytes | None] = {}
        """Key-value writes not yet in SQLite (None: delete), in the order made."""
        self._began = False
        """Whether ``BEGIN`` ran: SQLite holds uncommitted writes."""
        self._kv_wanted = False
        """A key-value delete that changed nothing was made before ``_cf_KV`` existed. workerd
        creates the table on the first write, so SQL run afterwards sees it (``spill()`` creates
        it then); by itself it creates no file, as a read would not."""
        self._write_through = False
        """Set once a lazy scan was handed out (it must see later writes): writes skip the buffer."""
        self.savepoint_depth = 0
        self.schema_epoch = 0
        """Changes whenever the schema may have changed behind the SQL layer's back (a rollback,
        ``delete_all``, a new connection), so what it cached about tables is read again."""
        self.user_sql = False
        """True while user SQL (``sql.exec``) is being prepared; the SQL authorizer applies only then."""
        self.fail_next: BaseException | None = None
        """An exception the next ``commit()`` raises instead of committing (failure injection)."""
        self.on_open: list[Callable[[sqlite3.Connection], None]] = []
        """Called with every connection this database opens (the SQL layer installs its authorizer)."""
        self.history: CommitHooks | None = None
        """Told of every open, commit and close (point-in-time recovery keeps its log with it)."""
        self.name_sink: Callable[[str], None] | None = None
        """Where the object's name is recorded (the runtime's directory): called with ``name`` when
        the file is created, and with the name found in a file of an older durable."""

    @property
    def tag(self) -> str:
        """This database's random tag, which ends every statement durable runs itself."""
        return self._tag

    def tagged(self, sql: str) -> str:
        """``sql`` marked as durable's own statement: ``<sql> -- <tag>``.

        The tag is random per database, so Python's statement cache never hands a statement
        prepared without the SQL authorizer (durable's) to the application's SQL of the same text.
        """
        return f"{sql} -- {self._tag}"

    # -- connection ---------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether there are uncommitted writes: in SQLite's transaction, or buffered."""
        return self._began or bool(self._dirty)

    @property
    def kv_pending(self) -> bool:
        """Whether key-value writes wait in the buffer (``spill()`` would write to SQLite)."""
        return bool(self._dirty) or self._kv_wanted

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def exists(self) -> bool:
        """Whether anything was ever created for this object (a file, or an opened memory db)."""
        if self._conn is not None:
            return True
        return self.file is not None and self.file.exists()

    def _open(self) -> sqlite3.Connection:
        """Open the connection; a damaged file raises DataCorruptionError and leaves nothing open."""
        conn: sqlite3.Connection | None = None
        try:
            if self.file is None:
                conn = connect(":memory:")
            else:
                if not self.file.exists():
                    if self.name is not None and self.name_sink is not None:
                        self.name_sink(self.name)  # first: no crash leaves a file without its name
                    self._create_file(self.file)
                else:
                    self._check_not_emptied(self.file)
                conn = connect(self.file, synchronous=self._synchronous)
            cursor = conn.cursor()  # reused by the hot statements (a new cursor per call costs)
            kv_exists, meta_exists = self._reserved_tables(cursor)
            if meta_exists and self._clean_legacy_metadata(conn):
                meta_exists = False
            for hook in self.on_open:
                hook(conn)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise wrap_error(exc, self.file) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._conn = conn
        self.schema_epoch += 1
        self._cursor = cursor
        self._kv_exists, self._meta_exists = kv_exists, meta_exists
        if self.history is not None:
            self.history.opened(conn, self.file)
        return conn

    def _reserved_tables(self, conn: sqlite3.Connection | sqlite3.Cursor) -> tuple[bool, bool]:
        """Whether ``_cf_KV`` and ``_cf_METADATA`` exist: the one scan of ``sqlite_master`` made
        when a connection opens, an image is loaded or a rollback may have dropped tables."""
        names = {row[0] for row in conn.execute(self.tagged("SELECT name FROM sqlite_master WHERE type='table'"))}
        return "_cf_KV" in names, "_cf_METADATA" in names

    def _clean_legacy_metadata(self, conn: sqlite3.Connection) -> bool:
        """Move what an older durable kept in ``_cf_METADATA`` out of it; True if the table is gone.

        Its ``name`` row goes to ``name_sink`` (and ``name``), its ``schema_version`` row to
        ``PRAGMA user_version``; the rows are deleted, and the table too if no alarm is left in it,
        in one autocommit transaction outside the object's implicit one.
        """
        rows = dict(
            conn.execute(self.tagged("SELECT key, value FROM _cf_METADATA WHERE key IN ('name', 'schema_version')"))
        )
        if not rows:
            return False
        legacy = rows.get("name")
        if legacy is not None and type(legacy) is not str:
            raise self._bad_metadata("name", legacy, "TEXT")
        if legacy is not None:
            if self.name is None:
                self.name = legacy
            if self.name_sink is not None:
                self.name_sink(legacy)
        conn.execute(self.tagged("BEGIN"))
        try:
            conn.execute(self.tagged("DELETE FROM _cf_METADATA WHERE key IN ('name', 'schema_version')"))
            left = conn.execute(self.tagged("SELECT count(*) FROM _cf_METADATA")).fetchone()[0]
            if not left:
                conn.execute(self.tagged("DROP TABLE _cf_METADATA"))
            conn.execute(self.tagged(f"PRAGMA user_version = {SCHEMA_VERSION}"))
            conn.execute(self.tagged("COMMIT"))
        except BaseException:
            conn.execute(self.tagged("ROLLBACK"))
            raise
        return not left

    def _create_file(self, file: Path) -> None:
        """Create an object's file, already in WAL mode, in one step (a rename).

        SQLite creates an empty file at connect and writes its first page when WAL mode is set; a
        process killed between the two would leave an empty file, which durable refuses as
        damaged (see ``_check_not_emptied``). So the file is made under a temporary name and
        renamed once it has its first page.
        """
        temp = file.with_name(file.name + "-new")
        try:
            conn = connect(temp, synchronous=self._synchronous)
        except sqlite3.OperationalError:
            if file.parent.is_dir():
                raise
            # The namespace's folder is made on its first object's first write only.
            file.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(temp, synchronous=self._synchronous)
        try:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            conn.close()
        os.replace(temp, file)

    @staticmethod
    def _check_not_emptied(file: Path) -> None:
        """Refuse an object file that was emptied (truncated to zero bytes) after durable wrote it.

        durable never leaves an empty file (``_create_file``), and committed data lives in the
        file or in its write-ahead log. An empty file with no log is damage: reading it as an
        object without data would silently lose everything it held.
        """
        if file.stat().st_size == 0:
            wal = file.with_name(file.name + "-wal")
            if not wal.exists() or wal.stat().st_size == 0:
                raise DataCorruptionError(
                    f"the database of this Durable Object at {os.fspath(file)!r} is damaged: the file "
                    "is empty (it was truncated); restore it from a backup, or delete it to start "
                    "the object afresh"
                )

    def read_conn(self) -> sqlite3.Connection | None:
        """The connection for reading, or ``None`` if the object has no storage at all yet."""
        if self._conn is not None:
            return self._conn
        if self.file is None or not self.file.exists():
            return None  # nothing was ever written: nothing to open (or create)
        return self._open()

    def write_conn(self) -> sqlite3.Connection:
        """The connection for writing, inside the implicit transaction (opened if needed)."""
        conn = self._conn or self._open()
        if not self._began:
            cursor = self._cursor
            assert cursor is not None  # set with _conn
            cursor.execute(self._sql_begin)
            self._began = True
        return conn

    def close(self) -> None:
        """Roll back anything uncommitted and close the connection (a file db can be reopened)."""
        self._drop_pending()
        conn, self._conn = self._conn, None
        self._cursor = None
        self._write_through = False
        if conn is None:
            return
        if self._began:
            self._rollback(conn)
        if self.history is not None:
            self.history.closing(conn, self.file)
        conn.close()
        if self.history is not None:
            self.history.closed(self.file)

    def _drop_pending(self) -> None:
        """Forget buffered writes, and cached pairs (they may show writes being rolled back)."""
        self._dirty.clear()
        self._kv_cache.clear()
        self._kv_wanted = False

    def spill(self) -> None:
        """Write the buffered key-value writes into SQLite's transaction (before SQL must see them)."""
        dirty = self._dirty
        if not dirty:
            if self._kv_wanted:
                self._kv_ready_for_write()
                self._kv_wanted = False
            return
        try:
            conn = self._kv_ready_for_write()
            puts = [(key, value) for key, value in dirty.items() if value is not None]
            if puts:
                conn.executemany(self._sql_put, puts)
            if len(puts) < len(dirty):
                conn.executemany(self._sql_delete, [(key,) for key, value in dirty.items() if value is None])
        except sqlite3.Error as exc:
            # Damage met only now (a page the write reaches): DataCorruptionError naming the file.
            raise wrap_error(exc, self.file) from exc
        for key, value in dirty.items():
            self._cache(key, value)
        dirty.clear()

    # -- transaction --------------------------------------------------------------------------

    def commit(self) -> None:
        """Commit the implicit transaction. On failure it is rolled back and the error raised."""
        if not self.in_transaction:
            return
        failure, self.fail_next = self.fail_next, None
        try:
            if failure is not None:
                raise failure
            dirty = self._dirty
            cursor = self._cursor
            if not self._began and len(dirty) == 1 and cursor is not None and self._kv_exists:
                # One key-value write and nothing else: one autocommit statement is the transaction.
                ((key, value),) = dirty.items()
                if value is None:
                    cursor.execute(self._sql_delete, (key,))
                else:
                    cursor.execute(self._sql_put, (key, value))
                self._cache(key, value)
                dirty.clear()
            else:
                self.spill()
                cursor = self._cursor
                assert cursor is not None  # spill() or an earlier write opened the connection
                cursor.execute(self._sql_commit)
        except sqlite3.IntegrityError as exc:
            # Deferred constraints (``PRAGMA defer_foreign_keys``) are checked at COMMIT. Cloudflare
            # resets the object with the SQLite message; the host words the reset (see _host._flush).
            self.rollback()
            raise SqlError(f"{exc}: SQLITE_CONSTRAINT", code="SQLITE_CONSTRAINT") from exc
        except sqlite3.Error as exc:
            # A damaged file that shows only at commit (DataCorruptionError), a full disk, an I/O
            # error (SqlError): the host resets the object with this error as the cause.
            self.rollback()
            raise wrap_error(exc, self.file) from exc
        except BaseException:
            self.rollback()
            raise
        self._began = False
        if self.history is not None:
            assert self._conn is not None
            self.history.committed(self._conn, self.file)

    def load_image(self, image: bytes) -> None:
        """Make the database exactly ``image`` (a serialized database; empty: no tables), as one commit.

        A point-in-time restore: SQLite's backup API copies the image's pages over the live
        database through its own journal, so a crash leaves the old or the new state, never a mix.
        """
        assert not self.in_transaction, "load_image() inside a transaction"
        conn = self._conn or self._open()
        source = sqlite3.connect(":memory:")
        try:
            if image:
                source.deserialize(image)
            source.backup(conn)
        finally:
            source.close()
        self._drop_pending()
        self._kv_exists, self._meta_exists = self._reserved_tables(conn)
        if self._meta_exists and self._clean_legacy_metadata(conn):
            self._meta_exists = False  # an image of a file an older durable wrote
        if self.history is not None:
            self.history.committed(conn, self.file)

    def rollback(self) -> None:
        """Drop every write not yet committed."""
        self._drop_pending()
        if self._conn is not None and self._began:
            self._rollback(self._conn)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        self._drop_pending()
        self._began = False
        self.savepoint_depth = 0
        try:
            conn.execute(self.tagged("ROLLBACK"))
        except sqlite3.Error:
            pass  # SQLite may have rolled back already (after some errors it does so itself)
        # Tables created in the dropped transaction are gone again; look afresh.
        try:
            self._look_up_tables(conn)
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc

    def savepoint(self) -> str:
        """Open a nested savepoint inside the implicit transaction; returns its name."""
        self.spill()  # what is buffered now belongs before the savepoint: rollback_to keeps it
        conn = self.write_conn()
        name = f"_cf_savepoint_{self.savepoint_depth}"
        conn.execute(self.tagged(f"SAVEPOINT {name}"))
        self.savepoint_depth += 1
        return name

    def release(self, name: str) -> None:
        """Keep a savepoint's writes (they commit with the implicit transaction).

        The depth is restored even if SQLite fails, so a failure never leaves the object waiting
        for a savepoint that no longer exists (the commit would be deferred forever).
        """
        assert self._conn is not None
        try:
            self._conn.execute(self.tagged(f"RELEASE {name}"))
        finally:
            self.savepoint_depth = max(0, self.savepoint_depth - 1)

    def rollback_to(self, name: str) -> None:
        """Undo a savepoint's writes and end it (the depth is restored even if SQLite fails)."""
        assert self._conn is not None
        self._drop_pending()  # buffered writes were all made inside the savepoint
        try:
            self._conn.execute(self.tagged(f"ROLLBACK TO {name}"))
            self._conn.execute(self.tagged(f"RELEASE {name}"))
        finally:
            self.savepoint_depth = max(0, self.savepoint_depth - 1)
            self._look_up_tables(self._conn)

    def _look_up_tables(self, conn: sqlite3.Connection) -> None:
        """Tables created in a rolled back part are gone again: look afresh."""
        self.schema_epoch += 1
        self._kv_exists, self._meta_exists = self._reserved_tables(conn)

    # -- key-value ----------------------------------------------------------------------------

    def _kv_ready_for_write(self) -> sqlite3.Connection:
        conn = self.write_conn()
        if not self._kv_exists:
            conn.execute(
                self.tagged("CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
            )
            self._kv_exists = True
        return conn

    def drop_caches(self) -> None:
        """Forget cached key-value pairs (after SQL that may have written ``_cf_KV`` directly)."""
        self._kv_cache.clear()

    def _cache(self, key: str, value: bytes | None) -> None:
        cache = self._kv_cache
        if value is not None and len(value) > KV_CACHE_MAX_VALUE:
            cache.pop(key, None)
            return
        if len(cache) >= KV_CACHE_ENTRIES and key not in cache:
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = value

    def kv_get(self, key: str) -> bytes | None:
        cached = self._dirty.get(key, _MISSING)
        if cached is _MISSING:
            cached = self._kv_cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]
        conn = self.read_conn()
        if conn is None or not self._kv_exists:
            return None
        cursor = self._cursor
        assert cursor is not None  # set with _conn
        try:
            row = cursor.execute(self._sql_get, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc
        value = None if row is None else row[0]
        if value is None or type(value) is bytes:
            self._cache(key, value)
        # else: stored as TEXT, INTEGER or REAL by another program; decode() reports it as damage.
        return value

    def kv_get_many(self, keys: list[str]) -> list[tuple[str, bytes]]:
        """The stored pairs among ``keys``, sorted by key; missing keys are left out."""
        self.spill()
        conn = self.read_conn()
        if conn is None or not self._kv_exists or not keys:
            return []
        found: list[tuple[str, bytes]] = []
        unique = sorted(set(keys))
        # Chunks of 100 stay within SQLITE_LIMIT_VARIABLE_NUMBER, which the SQL API lowers to 100
        # (Cloudflare's limit) on the connection once an object uses ``ctx.storage.sql``.
        for i in range(0, len(unique), 100):
            chunk = unique[i : i + 100]
            marks = ",".join("?" * len(chunk))
            try:
                found.extend(
                    conn.execute(
                        self.tagged(f"SELECT key, value FROM _cf_KV WHERE key IN ({marks}) ORDER BY key"),
                        chunk,
                    )
                )
            except sqlite3.Error as exc:
                raise wrap_error(exc, self.file) from exc
        return found

    def kv_put(self, key: str, value: bytes) -> None:
        self._dirty[key] = value
        if self._write_through:
            self.spill()

    def kv_put_many(self, items: list[tuple[str, bytes]]) -> None:
        self._dirty.update(items)
        if self._write_through:
            self.spill()

    def kv_delete(self, key: str) -> bool:
        """Delete ``key``; whether it existed."""
        existed = self.kv_get(key) is not None
        if not existed and not self._kv_exists and not self._dirty:
            self._kv_wanted = True
        if existed or key in self._dirty:
            self._dirty[key] = None
            if self._write_through:
                self.spill()
        return existed

    def kv_delete_many(self, keys: list[str]) -> int:
        """Delete ``keys``; how many of them existed."""
        deleted = 0
        for key in dict.fromkeys(keys):
            deleted += self.kv_delete(key)
        return deleted

    def kv_scan(
        self, start: str | None, end: str | None, *, reverse: bool = False, limit: int | None = None, lazy: bool = False
    ) -> Iterator[tuple[str, bytes]]:
        """Pairs with ``start <= key < end`` (``None``: unbounded), ascending or descending.

        ``lazy``: the caller reads the rows as it goes, so later writes must reach SQLite at once
        to be seen (from then on, as long as the connection is open, writes are not buffered).
        """
        self.spill()
        if lazy:
            self._write_through = True
        conn = self.read_conn()
        if conn is None or not self._kv_exists:
            return iter(())
        clauses: list[str] = []
        params: list[object] = []
        if start is not None:
            clauses.append("key >= ?")
            params.append(start)
        if end is not None:
            clauses.append("key < ?")
            params.append(end)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if reverse else "ASC"
        tail = ""
        if limit is not None:
            tail = " LIMIT ?"
            params.append(limit)
        sql = self.tagged(f"SELECT key, value FROM _cf_KV{where} ORDER BY key {order}{tail}")
        try:
            if not lazy:
                return iter(conn.execute(sql, params).fetchall())  # every row read now, errors included
            rows = conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc
        return _checked_rows(rows, self.file)  # read as the caller goes: errors wrapped then

    def kv_count(self) -> int:
        self.spill()
        conn = self.read_conn()
        if conn is None or not self._kv_exists:
            return 0
        try:
            return conn.execute(self.tagged("SELECT count(*) FROM _cf_KV")).fetchone()[0]  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc

    def kv_clear(self) -> None:
        """Delete every key-value pair and the alarm (``delete_all`` of a key-value-backed class)."""
        self._drop_pending()
        if self.read_conn() is None:
            return
        conn = self.write_conn()
        if self._kv_exists:
            try:
                conn.execute(self.tagged("DELETE FROM _cf_KV"))
            except sqlite3.Error as exc:
                raise wrap_error(exc, self.file) from exc
        self.set_alarm(None)

    def wipe(self) -> None:
        """Drop every table, index, view and trigger: ``delete_all`` of a SQLite-backed class.

        Foreign-key checks are deferred for the drop (``defer_foreign_keys`` lasts until the
        commit), since dropping a referenced table first would otherwise fail; once every table
        is gone no violation can remain.
        """
        self._drop_pending()
        if self.read_conn() is None:
            return
        conn = self.write_conn()
        try:
            conn.execute(self.tagged("PRAGMA defer_foreign_keys=ON"))
            rows = conn.execute(
                self.tagged(
                    "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND type IN ('table', 'view')"
                )
            ).fetchall()
            for kind, name in rows:
                quoted = '"' + name.replace('"', '""') + '"'
                conn.execute(self.tagged(f"DROP {kind.upper()} IF EXISTS {quoted}"))
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc
        self._kv_exists = False
        self._meta_exists = False  # dropped with the rest, alarm included, as in workerd
        self.schema_epoch += 1

    # -- alarm --------------------------------------------------------------------------------

    def get_alarm(self) -> int | None:
        conn = self.read_conn()
        if conn is None or not self._meta_exists:
            return None
        try:
            row = conn.execute(self.tagged("SELECT value FROM _cf_METADATA WHERE key = 'alarm'")).fetchone()
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc
        if row is None or row[0] is None:
            return None
        if type(row[0]) is not int:
            raise self._bad_metadata("alarm", row[0], "an INTEGER (milliseconds)")
        return row[0]

    def set_alarm(self, when_ms: int | None) -> None:
        if when_ms is None and (self.read_conn() is None or not self._meta_exists):
            return
        conn = self.write_conn()
        try:
            if when_ms is None:
                conn.execute(self.tagged("DELETE FROM _cf_METADATA WHERE key = 'alarm'"))
            else:
                if not self._meta_exists:  # workerd creates it with the first alarm
                    conn.execute(
                        self.tagged(
                            "CREATE TABLE IF NOT EXISTS _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID"
                        )
                    )
                    self._meta_exists = True
                conn.execute(self.tagged("INSERT OR REPLACE INTO _cf_METADATA VALUES ('alarm', ?)"), (when_ms,))
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc

    def stored_name(self) -> str | None:
        """The name this database knows: given, or found in a file an older durable wrote.

        Opens the file (cleaning it, see ``_clean_legacy_metadata``) if it exists and is not open.
        """
        if self.name is None:
            self.read_conn()
        return self.name

    def _bad_metadata(self, key: str, value: object, expected: str) -> DataCorruptionError:
        where = "in memory" if self.file is None else f"at {os.fspath(self.file)!r}"
        kind = {bytes: "a BLOB", int: "an INTEGER", float: "a REAL", str: "TEXT"}.get(type(value), type(value).__name__)
        return DataCorruptionError(
            f"the database of this Durable Object {where} is damaged: its stored {key} is {kind}, not {expected}"
        )

    def has_data(self) -> bool:
        """Whether the object has any storage: key-value pairs, an alarm, or SQL tables."""
        conn = self.read_conn()
        if conn is None:
            return False
        if self.kv_count() or self.get_alarm() is not None:
            return True
        try:
            row = conn.execute(
                self.tagged(
                    "SELECT 1 FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT IN ('_cf_KV', '_cf_METADATA') LIMIT 1"
                )
            ).fetchone()
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc
        return row is not None
