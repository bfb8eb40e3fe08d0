"""One object's database: a SQLite file (or in-memory database) and the implicit transaction on it.

This module knows nothing of objects, events or the event loop. ``ObjectDatabase`` owns the
connection and the transaction primitives the storage layer builds on, and holds one collaborator
per reserved table:

- ``kv`` (``_kvcache.KvCache``): ``_cf_KV(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID``, the
  key-value data, as on Cloudflare, so the SQL API shares the same database; behind a write buffer
  and a read cache. The storage layer calls it directly (``db.kv.get(key)``).
- ``meta`` (``_dbmeta.MetadataTable``): ``_cf_METADATA``, the object's alarm. As in workerd, it is
  created by the first ``set_alarm`` only, and ``delete_all`` drops it with every other table.

The schema version is the file's ``PRAGMA user_version`` (refused to user SQL, as in workerd), and
the object's name is kept by the runtime's directory (``_directory.py``): the object's own database
holds nothing workerd's does not. Files written by an older durable, whose ``_cf_METADATA`` held
the schema version and the name, are cleaned when opened: the name is handed to ``name_sink``.

Writes go into an implicit transaction committed by the storage layer at the end of the turn
(``commit()``), which is workerd's model for SQLite-backed objects: every write made without a
suspension in between commits atomically. Nested explicit transactions are savepoints inside it.
Nothing is created on disk for an object that only reads. Buffered key-value writes reach SQLite
at the commit, or before a savepoint (they belong before it); a rollback forgets them.

A damaged file never leaks ``sqlite3`` errors or connections: opening it closes whatever it
opened before raising, and the errors of opening and of the key-value and metadata reads reach
callers as :class:`~durable.DataCorruptionError` (the file is damaged) or
:class:`~durable.SqlError` (anything else), raised ``from`` the ``sqlite3`` error (``wrap_error``).
An empty object file is damage too: durable creates each file with its first page already
written. How a file is opened, created and checked lives in ``_dbfile.py``, whose ``connect``,
``wrap_error`` and ``SCHEMA_VERSION`` are re-exported here.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ._dbfile import SCHEMA_VERSION as SCHEMA_VERSION
from ._dbfile import connect as connect
from ._dbfile import copy_image, drop_schema, open_file, schema_entries
from ._dbfile import wrap_error as wrap_error
from ._dbmeta import MetadataTable
from ._exceptions import SqlError
from ._kvcache import KvCache

__all__ = ["SCHEMA_VERSION", "ObjectDatabase", "connect", "wrap_error"]


class CommitHooks(Protocol):
    """What the database tells a history of itself (implemented by ``_history.History``)."""

    def opened(self, conn: sqlite3.Connection, file: Path | None) -> None: ...
    def committed(self, conn: sqlite3.Connection, file: Path | None) -> None: ...
    def closing(self, conn: sqlite3.Connection, file: Path | None) -> None: ...
    def closed(self, file: Path | None) -> None: ...


def _savepoint_name(depth: int) -> str:
    """The name of the savepoint opened at ``depth`` (0 for the outermost)."""
    return f"_cf_savepoint_{depth}"


class ObjectDatabase:
    """The storage of one Durable Object: lazily opened, transactional, closable and reopenable.

    Args:
        file: the database file, or ``None`` for an in-memory one (it lives as long as this object).
        name: the object's name, for ``name_sink`` when the file is made (ids rebuilt from storage keep it).
        synchronous: the ``PRAGMA synchronous`` level for file databases.
    """

    def __init__(self, file: Path | None, *, name: str | None = None, synchronous: str = "NORMAL") -> None:
        self.file = file
        self.name = name
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        # Internal statements carry a per-database random tag, so the prepared-statement cache never
        # hands a statement prepared without the SQL authorizer to user SQL of the same text.
        self._tag = secrets.token_hex(8)
        self._sql_begin = self.tagged("BEGIN")
        self._sql_commit = self.tagged("COMMIT")
        self.kv = KvCache(self)
        """The key-value pairs (``_cf_KV``), behind the write buffer and the read cache."""
        self.meta = MetadataTable(self)
        """The metadata table (``_cf_METADATA``): the alarm."""
        self._began = False
        """Whether ``BEGIN`` ran: SQLite holds uncommitted writes."""
        self.savepoint_depth = 0
        self.schema_epoch = 0
        """Changes whenever the schema may have changed behind the SQL layer's back (rollback, ``delete_all``...)."""
        self.user_sql = False
        """True while user SQL (``sql.exec``) is being prepared; the SQL authorizer applies only then."""
        self.fail_next: BaseException | None = None
        """An exception the next ``commit()`` raises instead of committing (failure injection)."""
        self.on_open: list[Callable[[sqlite3.Connection], None]] = []
        """Called with every connection this database opens (the SQL layer installs its authorizer)."""
        self.on_wipe: list[Callable[[], None]] = []
        """Called when ``delete_all`` empties the database, before anything is dropped."""
        self.on_close: list[Callable[[sqlite3.Connection], None]] = []  # closing, or end_statements()
        self.history: CommitHooks | None = None
        """Told of every open, commit and close (point-in-time recovery keeps its log with it)."""
        self.after_commit: list[Callable[[], None]] = []
        """Called once right after the next successful commit (a snapshot of its state); a rollback drops them."""
        self.name_sink: Callable[[str], None] | None = None
        """Where the object's name is recorded (the runtime's directory): at the file's creation, or as an old file has it."""

    @property
    def tag(self) -> str:
        """This database's random tag, which ends every statement durable runs itself."""
        return self._tag

    def tagged(self, sql: str) -> str:
        """``sql`` marked as durable's own statement: ``<sql> -- <tag>`` (why: ``__init__``)."""
        return f"{sql} -- {self._tag}"

    # -- connection ---------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether there are uncommitted writes: in SQLite's transaction, or buffered."""
        return self._began or bool(self.kv.dirty)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def exists(self) -> bool:
        """Whether anything was ever created for this object (a file, or an opened memory db)."""
        return self._conn is not None or (self.file is not None and self.file.exists())

    def _open(self) -> sqlite3.Connection:
        """Open the connection; a damaged file raises DataCorruptionError and leaves nothing open."""
        conn: sqlite3.Connection | None = None
        try:
            conn = open_file(
                self.file, self._synchronous, self._creating, self.after_commit.append, self.history is None
            )
            # Not on a cursor kept in a local: a statement failed on a damaged page would stay alive with
            # the traceback, and the closed connection keep the file's lock ("database is locked").
            self._look_up_tables(conn, clean=True)
            cursor = conn.cursor()  # reused by the hot statements (a new cursor per call costs)
            for hook in self.on_open:
                hook(conn)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise wrap_error(exc, self.file) from exc
            raise
        self._conn = conn
        self._cursor = cursor
        self.kv.attach(cursor)
        if self.history is not None:
            self.history.opened(conn, self.file)
        return conn

    def _look_up_tables(self, conn: sqlite3.Connection, *, clean: bool = False) -> None:
        """Which reserved tables exist, after the schema may have changed (a new connection, an
        image loaded, a rollback); ``clean``: clean a file an older durable wrote (``clean_legacy``)."""
        self.schema_epoch += 1
        names = {name for kind, name in schema_entries(conn, self._tag) if kind == "table"}
        meta_exists = "_cf_METADATA" in names
        if meta_exists and clean and self.meta.clean_legacy(conn, self._legacy_name):
            meta_exists = False
        self.kv.exists, self.meta.exists = "_cf_KV" in names, meta_exists

    def _creating(self) -> None:
        """The file is about to be created: record the object's name first."""
        if self.name is not None and self.name_sink is not None:
            self.name_sink(self.name)

    def _legacy_name(self, name: str) -> None:
        """The name found in a file an older durable wrote: kept if none was given, and recorded."""
        if self.name is None:
            self.name = name
        if self.name_sink is not None:
            self.name_sink(name)

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
        self.rollback()
        self.kv.detach()
        conn, self._conn = self._conn, None
        self._cursor = None
        if conn is None:
            return
        for hook in self.on_close:
            hook(conn)
        if self.history is not None:
            self.history.closing(conn, self.file)
        conn.close()
        if self.history is not None:
            self.history.closed(self.file)

    # -- transaction --------------------------------------------------------------------------

    def commit(self) -> None:
        """Commit the implicit transaction. On failure it is rolled back and the error raised."""
        if not (self._began or self.kv.dirty):  # not self.in_transaction: without its two property
            self.meta.wiped = False  # (a delete_all() of a database never opened: nothing to commit)
            return  # calls (seq-increment 86,423 -> 85,307 instructions, callgrind, ninth pass)
        # fail_next and after_commit are read before anything is stored to them, and the error's
        # wording is a function's (_commit_error, which keeps the class under 300 lines): a tuple
        # swap, two stores and an empty loop less per commit (seq-increment 69,604 -> 69,015
        # instructions, callgrind, fourteenth pass, docs/performance.md).
        try:
            if self.fail_next is not None:
                failure, self.fail_next = self.fail_next, None
                raise failure
            # One key-value write and nothing else: one autocommit statement is the transaction.
            if self._began or not self.kv.write_alone():
                self.kv.spill()
                cursor = self._cursor
                assert cursor is not None  # spill() or an earlier write opened the connection
                cursor.execute(self._sql_commit)
        except BaseException as exc:
            self.rollback()
            if isinstance(exc, sqlite3.Error):
                raise _commit_error(exc, self.file) from exc
            raise
        self._began = self.meta.wiped = False
        if self.history is not None:
            assert self._conn is not None
            self.history.committed(self._conn, self.file)
        if self.after_commit:
            hooks, self.after_commit = self.after_commit, []
            for hook in hooks:
                hook()

    def load_image(self, image: bytes) -> None:
        """Make the database exactly ``image`` (a serialized database; empty: no tables), as one commit.

        A point-in-time restore (``_dbfile.copy_image``): a crash leaves the old or the new state.
        """
        assert not self.in_transaction, "load_image() inside a transaction"
        conn = self._conn or self._open()
        copy_image(image, conn)
        self.kv.discard()
        self._look_up_tables(conn, clean=True)  # the image may be of a file an older durable wrote
        if self.history is not None:
            self.history.committed(conn, self.file)

    def rollback(self) -> None:
        """Drop every write not yet committed."""
        self.kv.discard()
        self.after_commit.clear()
        self.meta.wiped = False
        conn = self._conn
        if conn is None or not self._began:
            return
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
        self.kv.spill()  # what is buffered now belongs before the savepoint: rollback_to keeps it
        conn = self.write_conn()
        name = _savepoint_name(self.savepoint_depth)
        conn.execute(self.tagged(f"SAVEPOINT {name}"))
        self.savepoint_depth += 1
        return name

    def release(self, name: str) -> None:
        """Keep a savepoint's writes (they commit with the implicit transaction).

        The depth is restored even if SQLite fails, so a failure never leaves the object waiting for a
        savepoint that no longer exists (the commit would be deferred forever)."""
        assert self._conn is not None
        try:
            self._conn.execute(self.tagged(f"RELEASE {name}"))
        finally:
            self.savepoint_depth = max(0, self.savepoint_depth - 1)

    def rollback_to(self, name: str | None = None) -> None:
        """Undo a savepoint's writes and end it, the innermost's if ``name`` is None (the depth is
        restored even if SQLite fails)."""
        assert self._conn is not None
        name = _savepoint_name(self.savepoint_depth - 1) if name is None else name
        self.kv.discard()  # buffered writes were all made inside the savepoint
        try:
            self._conn.execute(self.tagged(f"ROLLBACK TO {name}"))
            self._conn.execute(self.tagged(f"RELEASE {name}"))
        finally:
            self.savepoint_depth = max(0, self.savepoint_depth - 1)
            self._look_up_tables(self._conn)

    # -- the whole database -------------------------------------------------------------------

    def kv_clear(self) -> None:
        """Delete every key-value pair and the alarm (``delete_all`` of a key-value-backed class)."""
        self.kv.clear()
        self.meta.set_alarm(None)

    def wipe(self) -> None:
        """Drop every table, index, view and trigger: ``delete_all`` of a SQLite-backed class.

        The ``on_wipe`` hooks run first (the SQL layer cancels its open cursors), then
        ``drop_schema`` empties the schema.
        """
        self.kv.discard()
        for hook in self.on_wipe:
            hook()
        self.meta.wiped = True  # (until the commit: a delete_alarm() then creates _cf_METADATA)
        if self.read_conn() is None:
            return
        conn = self.write_conn()
        try:
            drop_schema(conn, self._tag)
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc
        self.kv.exists = False
        self.meta.exists = False  # dropped with the rest, alarm included, as in workerd
        self.schema_epoch += 1

    def stored_name(self) -> str | None:
        """The name this database knows: given, or found in a file an older durable wrote.

        Opens the file (cleaning it, see ``MetadataTable.clean_legacy``) if it exists and is not open.
        """
        if self.name is None:
            self.read_conn()
        return self.name

    def has_data(self) -> bool:
        """Whether the object has any storage: key-value pairs, an alarm, or SQL tables."""
        conn = self.read_conn()
        if conn is None:
            return False
        if self.kv.count() or self.meta.get_alarm() is not None:
            return True
        try:
            return any(name not in ("_cf_KV", "_cf_METADATA") for _, name in schema_entries(conn, self._tag))
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.file) from exc


def _commit_error(exc: sqlite3.Error, file: Path | None) -> Exception:
    """The error ``ObjectDatabase.commit`` raises for SQLite's ``exc`` (the commit rolled back)."""
    if isinstance(exc, sqlite3.IntegrityError):
        # Deferred constraints (``PRAGMA defer_foreign_keys``) are checked at COMMIT. Cloudflare
        # resets the object with the SQLite message; the host words the reset (see _host._flush).
        return SqlError(f"{exc}: SQLITE_CONSTRAINT", code="SQLITE_CONSTRAINT")
    # A damaged file that shows only at commit (DataCorruptionError), a full disk, an I/O error
    # (SqlError): the host resets the object with this error as the cause.
    return wrap_error(exc, file)


def end_statements(db: ObjectDatabase) -> None:
    """The instance using ``db`` ended (reset, eviction) and its connection may stay open (an
    in-memory database, ``ctx.abort()``): the ``on_close`` hooks end its cursors' statements."""
    if db.is_open and (conn := db.read_conn()) is not None:
        for hook in db.on_close:
            hook(conn)
