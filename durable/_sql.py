"""``ctx.storage.sql`` and ``ctx.storage.kv``: the synchronous APIs of SQLite-backed objects.

:class:`SqlStorage` runs the application's SQL on the object's own connection, the one that also
holds the ``_cf_KV`` table, so SQL and key-value writes share one implicit transaction: they commit
together at the end of the turn, are held behind the output gate together, roll back together when
the commit fails, and join the savepoints of ``transaction()`` / ``transaction_sync()``.
:class:`durable._kv.SyncKV` is the synchronous key-value API over the same table.

What production Cloudflare refuses is refused here too, with workerd's messages (its
``util/sqlite.c++`` and ``api/sql.c++``; the rules themselves are in ``_sql_rules.py``): an SQLite authorizer, installed on every connection of the
object through ``ObjectDatabase.on_open``, applies workerd's rules while ``db.user_sql`` is set
(only around the application's statements, so durable's own statements are never affected), and
``setlimit`` applies workerd's limits.

Python's ``sqlite3`` has no "prepare without running" and no ``sqlite3_stmt_readonly``, so whether
a statement writes is learnt from the authorizer, which SQLite calls while it compiles the
statement: a statement not known to write first runs outside the implicit transaction in "probe"
mode, where the first write action makes the authorizer refuse it; it is then run again inside
the transaction, and the host is told about the write. Reads therefore never open a transaction,
never hold the output gate and never create a database file. Python's statement cache skips the
authorizer on a cache hit, so what was learnt is kept per connection (see :class:`_Connection`).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import re
import sqlite3
import threading
import warnings
import weakref
from collections.abc import Callable, Sized
from typing import TYPE_CHECKING, Any, Final, final

from ._aliases import camel_aliases
from ._codec import copy_as_dict
from ._exceptions import SqlError
from ._sql_multi import DROP, drop_reads
from ._sql_reads import DROPPED, Shape
from ._sql_reads import rows_read as rows_read_of
from ._sql_rules import (
    ABSENT_TABLES,
    ALLOWED_PRAGMAS,
    ALTER,
    BOOLEAN,
    COUNTED_ACTIONS,
    DENY,
    DML_ACTIONS,
    HEAD_START,
    MULTI_PARAMETERS,
    MULTIPLE_RESULTS,
    NAMED_NEED_A_DICT,
    NATIVE,
    NO_RESULTS,
    NO_STATEMENT,
    NUMBERED_PARAMETER,
    OK,
    RECORD_SLACK,
    RTREE,
    SCHEMA_ACTIONS,
    SHADOW_ACTIONS,
    SHADOW_HINT,
    SQL_LENGTH,
    SQL_LIMITS,
    TRANSACTION_MESSAGE,
    VACUUM_OR_OPTIMIZE,
    WHITESPACE,
    WRITE_ACTIONS,
    WRONG_BINDINGS,
    SqlValue,
    alter_kind,
    authorized,
    check_binding,
    first_statement,
    named_parameters,
    printf_clamped,
    renames_to_reserved,
    shadow_refusal,
    shadow_tables,
    sql_error,
    statement_head,
)
from ._sql_twin import close as close_twin
from ._sqlite import ObjectDatabase, connect
from ._util import lone_surrogate_at

if TYPE_CHECKING:
    from ._storage import StorageHost

__all__ = ["SqlCursor", "SqlRow", "SqlStorage", "SqlValue", "exec_unrestricted"]

_EMPTY_DATABASE_SIZE: Final = 4096
"""``sql.database_size`` of an object with no database file yet: workerd's new database has one
4096-byte page (``databaseSize`` is 4096 before any write, measured with miniflare 4.20260730)."""

_WRITES_REMEMBERED: Final = 4096
"""How many writing statements a connection remembers before it forgets them all (see
:meth:`_Connection.remember`)."""


# -- one connection's SQL state ---------------------------------------------------------------------


_AUTOINCREMENT = re.compile(r"(?i)\bautoincrement\b")
_ROWID_NAMES: Final = frozenset({"rowid", "oid", "_rowid_"})
_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_PARTIAL = re.compile(r"(?is)\)\s*WHERE\b(.*)$")


_IF_NOT_EXISTS = re.compile(r"(?is)\s*CREATE\b[^(]*?\bIF\s+NOT\s+EXISTS\b")


class _Printf:
    """``printf()`` and ``format()`` with workerd's width and precision limit (``PRINTF_LIMIT``).

    Python's SQLite has no such limit and its printf cannot be given one, so the application's
    connections call this instead: it clamps the arguments (``printf_clamped``) and runs SQLite's
    own printf on them in a private in-memory database, shared by every thread under a lock
    (opened on first use, closed at exit).
    """

    __slots__ = ("_conn", "_lock")

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self, *arguments: SqlValue) -> SqlValue:
        with self._lock:
            conn = self._conn
            if conn is None:
                conn = self._conn = sqlite3.connect(":memory:", check_same_thread=False)
                conn.text_factory = bytes
                atexit.register(conn.close)
            args = printf_clamped(arguments, lambda value: self._int(conn, value))
            text = conn.execute(f"SELECT printf({', '.join('?' * len(args))})", args).fetchone()[0]
        if text is None:
            return None
        try:
            return str(text, "utf-8")
        except UnicodeDecodeError:
            return bytes(text)  # a BLOB's bytes formatted with %s: sqlite3 cannot return them as TEXT

    @staticmethod
    def _int(conn: sqlite3.Connection, value: SqlValue) -> int:
        """The 64-bit integer SQLite reads ``value`` as (a ``*`` width or precision)."""
        if type(value) is int:
            return value
        number = conn.execute("SELECT CAST(? AS INTEGER)", (value,)).fetchone()[0]
        return int(number) if number is not None else 0


_printf = _Printf()


def _limit(conn: sqlite3.Connection, row_limit: int | None) -> None:
    """Give ``conn`` workerd's limits: ``SQL_LIMITS``, the row length, and printf()'s (``_Printf``)."""
    for limit, value in SQL_LIMITS:
        conn.setlimit(limit, value)
    if row_limit is not None:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, row_limit + RECORD_SLACK)
    conn.create_function("printf", -1, _printf, deterministic=True)
    conn.create_function("format", -1, _printf, deterministic=True)


CANCELED: Final = "SQLite query was canceled because the database was deleted."
"""What reading a cursor left open across ``delete_all()`` raises (workerd's text, measured with
miniflare 4, 2026-04-07: ``Error: SQLite query was canceled because the database was deleted.``)."""

_SWITCH_DEFAULTS: Final = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA case_sensitive_like = OFF",
    "PRAGMA ignore_check_constraints = OFF",
    "PRAGMA legacy_alter_table = OFF",
    "PRAGMA recursive_triggers = OFF",
    "PRAGMA reverse_unordered_selects = OFF",
    "PRAGMA defer_foreign_keys = OFF",
)
"""The switches as workerd's new database has them, where ``delete_all()`` puts them back (workerd
resets the database: measured with miniflare 4, 2026-04-07, every switch reads its default after it)."""


_EXPLAIN: Final = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*+explain\b", re.IGNORECASE | re.DOTALL)
_EXPLAINS: Final = itertools.count()
"""Numbers each ``EXPLAIN`` the application runs, so that its text is new every time: SQLite 3.40
(Debian 12's) re-prepares a cached statement stepped again after a schema change, and for
``EXPLAIN DELETE ... RETURNING`` after an ``ALTER TABLE ... ADD COLUMN`` then lists its program from
freed memory (valgrind: invalid reads in ``sqlite3VdbeDisplayP4``), which can kill the process
(``_sql_reads._explain`` does the same for its own; tests/test_difffuzz_found.py)."""


def _schema_version(conn: sqlite3.Connection, tag: str) -> int:
    """SQLite's schema cookie, which every change of the schema increments."""
    return int(conn.execute(f"PRAGMA schema_version -- {tag}").fetchone()[0])


_SCHEMA_ROWS: Final = "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND "


def _altered_rows(conn: sqlite3.Connection, tag: str, statement: str, table: str) -> int:
    """b-tree rows an ``ALTER TABLE`` wrote, as workerd counts them (measured with miniflare 4,
    2026-04-07): the rows of ``sqlite_master`` that SQLite's own UPDATEs rewrite, whether or
    not they changed. RENAME TO rewrites every row but other tables' indexes, then the renamed
    table's rows (table, indexes, triggers) and its ``sqlite_sequence`` row; RENAME COLUMN and
    DROP COLUMN first rewrite every row but virtual tables' (``sqlite_rename_quotefix``), then
    RENAME COLUMN the rows it renames in, DROP COLUMN the table's row and each of its rows.
    """

    def count(sql: str, *args: str) -> int:
        return int(conn.execute(f"{sql} -- {tag}", args).fetchone()[0])

    kind, name = alter_kind(statement)
    if kind == "add":
        return 1
    if kind == "rename":
        name = name or table
        written = count(_SCHEMA_ROWS + "(type != 'index' OR tbl_name = ? COLLATE nocase)", name)
        written += count(
            "SELECT count(*) FROM sqlite_master WHERE tbl_name = ? COLLATE nocase"
            " AND type IN ('table', 'index', 'trigger')",
            name,
        )
        if count("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"):
            written += count("SELECT count(*) FROM sqlite_sequence WHERE name = ?", name)
        return written
    written = count(_SCHEMA_ROWS + "sql NOT LIKE 'create virtual%'")
    if kind == "column":
        return written + count(_SCHEMA_ROWS + "(type != 'index' OR tbl_name = ?)", table)
    quoted = table.replace('"', '""')
    return written + 1 + count(f'SELECT count(*) FROM "{quoted}"')


def _count_drop(conn: sqlite3.Connection, sql: str, tag: str) -> int | None:
    """The ``rows_read`` of ``sql``, a ``DROP``, counted before it runs
    (``durable._sql_multi.drop_reads``: what it drops is gone after), ``None`` if unknown."""
    try:
        return drop_reads(conn, sql, tag)
    except Exception:  # an estimate: whatever goes wrong, its cursor counts as before
        return None


def _reindexed_table(conn: sqlite3.Connection, tag: str, index: str, plan: tuple[tuple[Any, ...], ...]) -> str | None:
    """The table whose ``index`` a REINDEX rebuilds (the authorizer names each such index, a
    WITHOUT ROWID table's primary key included, which ``sqlite_master`` does not list), or
    ``None`` when workerd counts nothing for it: an index CREATE INDEX fills through the same
    check (counted as created), and durable's ``_cf_METADATA``, whose twin in workerd has an
    integer key and no index to rebuild (measured with miniflare 4.20260426)."""
    if any(a[0] == sqlite3.SQLITE_CREATE_INDEX and a[1] == index for a in plan):
        return None
    try:
        row = conn.execute(
            "SELECT m.name FROM sqlite_master AS m JOIN pragma_index_list(m.name) AS i "
            f"WHERE m.type = 'table' AND i.name = ? -- {tag}",
            (index,),
        ).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None or row[0] == "_cf_METADATA" else str(row[0])


def _shadow_tables(conn: sqlite3.Connection, tag: str) -> frozenset[str]:
    """The shadow tables of the database's virtual tables (lowercase names)."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' -- " + tag
    )
    return shadow_tables(rows.fetchall())


@final
class _TableShape:
    """What decides a table's index writes: its secondary indexes and its key columns.

    ``indexes`` holds, per index, the columns it covers (lower case; for an index on an
    expression, every word of its definition); a WITHOUT ROWID table's primary key is the table
    itself, not an index. ``key``: the columns whose change rewrites every index (the
    rowid, its alias, a WITHOUT ROWID table's primary key).
    """

    __slots__ = ("autoincrement", "indexes", "key")

    def __init__(self, indexes: list[frozenset[str]], key: frozenset[str], *, autoincrement: bool) -> None:
        self.indexes = indexes
        self.key = key
        self.autoincrement = autoincrement

    @classmethod
    def read(cls, conn: sqlite3.Connection, table: str, tag: str) -> _TableShape:
        row = conn.execute(
            f"SELECT sql FROM sqlite_master WHERE type = 'table' AND lower(name) = ? -- {tag}", (table,)
        ).fetchone()
        autoincrement = row is not None and row[0] is not None and _AUTOINCREMENT.search(row[0]) is not None
        without_rowid = conn.execute(
            f"SELECT wr FROM pragma_table_list WHERE lower(name) = ? AND schema = 'main' -- {tag}", (table,)
        ).fetchone()
        pk = [
            (r[1].lower(), r[2].upper())
            for r in conn.execute(
                f"SELECT pk, name, type FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk -- {tag}", (table,)
            )
        ]
        wr = bool(without_rowid and without_rowid[0])
        key = set(_ROWID_NAMES) if not wr else set()
        if wr or (len(pk) == 1 and pk[0][1] == "INTEGER"):
            key.update(name for name, _ in pk)  # the rowid's alias, or the WITHOUT ROWID key
        indexes: list[frozenset[str]] = []
        for _, name, _, origin, _ in conn.execute(
            f'SELECT seq, name, "unique", origin, partial FROM pragma_index_list(?) -- {tag}', (table,)
        ):
            if wr and origin == "pk":
                continue
            columns = [r[0] for r in conn.execute(f"SELECT name FROM pragma_index_info(?) -- {tag}", (name,))]
            if any(c is None for c in columns):
                # An index on an expression: SQLite rewrites it when a column it names changes.
                row = conn.execute(
                    f"SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ? -- {tag}", (name,)
                ).fetchone()
                words = _WORD.findall(row[0]) if row is not None and row[0] is not None else []
                indexes.append(frozenset(w.lower() for w in words))
            else:
                indexes.append(frozenset(c.lower() for c in columns))
        return cls(indexes, frozenset(key), autoincrement=autoincrement)


def _autoindexes(conn: sqlite3.Connection, table: str, tag: str) -> int:
    """Rows a new table's UNIQUE and PRIMARY KEY constraints wrote to ``sqlite_master``, and
    the rows ``CREATE TABLE ... AS SELECT`` wrote into it.

    One per index SQLite kept: the authorizer also reports a duplicate constraint's index, which
    SQLite drops, and a WITHOUT ROWID table's primary key, which is the table itself.
    """
    quoted = '"' + table.replace('"', '""') + '"'
    try:
        row = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND lower(tbl_name) = ? AND "
            f"name LIKE 'sqlite\\_autoindex\\_%' ESCAPE '\\' -- {tag}",
            (table.lower(),),
        ).fetchone()
        # A new table holds rows only if CREATE TABLE ... AS SELECT put them there (one b-tree
        # row each; sqlite3 does not report them as changes).
        filled = conn.execute(f"SELECT count(*) FROM {quoted} -- {tag}").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) + int(filled[0])


def _count(conn: sqlite3.Connection, index: str, table: str, tag: str) -> int:
    """Entries of a new index: the table's rows (those its WHERE selects, for a partial index)."""
    quoted = '"' + table.replace('"', '""') + '"'
    try:
        row = conn.execute(
            f"SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ? -- {tag}", (index,)
        ).fetchone()
        where = _PARTIAL.search(row[0]) if row is not None and row[0] is not None else None
        condition = f" WHERE {where.group(1)}" if where is not None else ""
        count = conn.execute(f"SELECT count(*) FROM {quoted}{condition} -- {tag}").fetchone()
    except sqlite3.Error:
        return 0
    return int(count[0])


_INSERT_INTO: Final = re.compile(
    r'(?is)\s*(?:INSERT(?:\s+OR\s+\w+)?|REPLACE)\s+INTO\s+(?:(?:main|"main")\s*\.\s*)?'
    r'("(?:[^"]|"")+"|\[[^\]]+\]|`(?:[^`]|``)+`|[A-Za-z_\u0080-\U0010ffff][\w$\u0080-\U0010ffff]*)'
)


def _counter(conn: sqlite3.Connection, table: str, tag: str) -> int | None:
    """AUTOINCREMENT ``table``'s counter in ``sqlite_sequence`` (``None``: no row yet)."""
    row = conn.execute(f"SELECT seq FROM sqlite_sequence WHERE name = ? COLLATE NOCASE -- {tag}", (table,)).fetchone()
    return None if row is None else row[0]


def _sequence(state: _Connection, conn: sqlite3.Connection, sql: str) -> tuple[str, int | None] | None:
    """The AUTOINCREMENT table an INSERT (or REPLACE) names, lower case, and its counter in
    ``sqlite_sequence`` before it runs (``None``: no row yet); ``None`` for other statements.
    The counter read after the last such statement is used while nothing was written since and no
    rollback came (a rollback moves the schema epoch)."""
    match = _INSERT_INTO.match(sql)
    if match is None:
        return None
    name = match.group(1)
    if name[0] in '"[`':
        name = name[1:-1].replace(name[0] * 2, name[0]) if name[0] != "[" else name[1:-1]
    table = name.lower()
    shape = state.table_shape(conn, table)
    if shape is None or not shape.autoincrement:
        return None
    known = state.counters.get(table)
    if known is not None and known[0] == conn.total_changes and known[1] == state.db.schema_epoch:
        return table, known[2]
    try:
        return table, _counter(conn, name, state.db.tag)
    except sqlite3.Error:
        return None


def _moved(state: _Connection, conn: sqlite3.Connection, table: str, before: tuple[str, int | None] | None) -> int:
    """1 if the statement that inserted into AUTOINCREMENT ``table`` wrote its ``sqlite_sequence``
    row, else 0. SQLite writes it at the statement's end when the counter grew (a new rowid, or an
    explicit one above it, even in a row then ignored) or had no row yet, as workerd counts it
    (measured with miniflare 4.20260426). Unknown (``before`` is not about ``table``): 1."""
    if before is None or before[0] != table:
        return 1
    try:
        value = _counter(conn, table, state.db.tag)
    except sqlite3.Error:
        return 1
    if len(state.counters) > _WRITES_REMEMBERED:
        state.counters.clear()
    state.counters[table] = (conn.total_changes, state.db.schema_epoch, value)
    return 1 if value is not None and (before[1] is None or value > before[1]) else 0


class _ProbeHit(Exception):
    """A statement run as a read turned out to write (its first write action was refused)."""


class _Connection:
    """The SQL side of one object's database: its authorizer, limits and what it learnt.

    One instance per :class:`ObjectDatabase`, kept in ``db.on_open`` (so every connection the
    database opens is configured) and found there again by :func:`_state_of`.
    """

    def __init__(self, db: ObjectDatabase, row_limit: int | None) -> None:
        self.db = db
        self.row_limit = row_limit
        self.writes: set[str] = set()
        """Texts of the statements seen writing on the current connection (see remember())."""
        self._conn: sqlite3.Connection | None = None
        self.probe = False
        self.trusted = False
        self.saw_write = False
        self.probe_hit = False
        self.transaction = False
        self.absent: str | None = None
        """A table the statement reads that workerd's SQLite lacks (``ABSENT_TABLES``), refused."""
        self.statement = ""
        """The application's statement being run (R*Tree may read ``page_size`` while it creates one)."""
        self.compiled = False
        """Whether SQLite compiled the current statement (so the authorizer saw its actions)."""
        self.shadow: frozenset[str] = frozenset()
        """Shadow tables the current statement may name, which it may not change (``shadow_refusal``)."""
        self.refusal: str | None = None
        self.targets: list[tuple[int, str | None, str | None, str | None]] = []
        """The writes the authorizer saw while compiling the current statement (for rows_written)."""
        self.plans: dict[str, tuple[tuple[int, str | None, str | None, str | None], ...]] = {}
        """Those writes, per statement text, for when the statement runs again from the cache."""
        self.tables: dict[str, _TableShape] = {}
        """Index shapes of tables, valid for ``tables_epoch``."""
        self.tables_epoch = -1
        self.costs: dict[str, tuple[int, int, int]] = {}
        """Per DML statement text: (schema epoch, rows per changed row, extra rows when any changed)."""
        self.per_row = 1
        """b-tree rows the last statement writes per changed row (the row and its index entries)."""
        self.extra = 0
        """b-tree rows the last statement writes once if it changes any (an AUTOINCREMENT counter)."""
        self.sequence: tuple[str, int | None] | None = None
        """The AUTOINCREMENT table the statement inserts into and its counter before (``_sequence``)."""
        self.counters: dict[str, tuple[int, int, int | None]] = {}
        """AUTOINCREMENT counters last read: (``total_changes``, schema epoch, value) per table (``_moved``)."""
        self.switches: list[tuple[str, str]] = []
        """Switch PRAGMAs (``foreign_keys = OFF``...) the current statement sets."""
        self.replay: list[tuple[str, str]] = []
        """Switches set on the scratch database, to set again on the real one when it opens."""
        self._scratch: sqlite3.Connection | None = None
        self._scratch_closer: weakref.finalize[[], _Connection] | None = None
        self.reads: dict[str, tuple[Any, Shape | None]] = {}
        """Statement shapes for ``rows_read`` (``durable._sql_reads``), per statement text."""
        self.dropped: tuple[str, int | None] | None = None  # the last DROP, its rows_read: _count_drop
        self.cursors: weakref.WeakSet[SqlCursor] = weakref.WeakSet()
        """Cursors that may still have rows to read, which ``delete_all()`` cancels (``wiped``)."""

    def __call__(self, conn: sqlite3.Connection) -> None:
        """The ``on_open`` hook: configure a connection the database just opened."""
        self.configure(conn)
        self.writes.clear()
        self._conn = conn
        if self._scratch_closer is not None and not self.cursors:
            self._scratch_closer()  # the stand-in is not needed (unless a cursor still reads it)
            self._scratch = self._scratch_closer = None
        replay, self.replay = self.replay, []
        for name, value in replay:  # names come from ALLOWED_PRAGMAS: safe to splice
            quoted = value.replace("'", "''")
            conn.execute(self.db.tagged(f"PRAGMA {name} = '{quoted}'"))

    def wiped(self) -> None:
        """The ``on_wipe`` hook: ``delete_all()`` is about to empty the database.

        workerd resets the database: a cursor with rows left raises ``CANCELED`` from then on
        (closing its statement here also lets the tables it reads be dropped), and the switches
        (``PRAGMA recursive_triggers = ON``...) read their defaults again.
        """
        cursors = list(self.cursors)
        self.cursors.clear()
        for cursor in cursors:
            cursor._cancel()
        self.replay = []
        for conn in (self._scratch, self._conn if self.db.is_open else None):
            if conn is not None:
                for pragma in _SWITCH_DEFAULTS:
                    conn.execute(self.db.tagged(pragma))

    def configure(self, conn: sqlite3.Connection, authorizer: Callable[..., int] | None = None) -> None:
        """Install workerd's authorizer (``self.authorize`` unless given) and limits on ``conn``."""
        conn.set_authorizer(authorizer if authorizer is not None else self.authorize)
        _limit(conn, self.row_limit)

    def scratch(self) -> sqlite3.Connection:
        """An empty in-memory database standing in for one that does not exist yet.

        Reading an object that has no database file must not create one; a read of an empty
        database gives the same result on any empty database. A statement that writes is refused
        here (probe mode) and then run on the real database, which creates it. Switches set here
        (``PRAGMA recursive_triggers = ON``...) are set again on the real database when it opens.
        """
        if self._scratch is None:
            conn = connect(":memory:")  # the same pragmas as the real database (foreign_keys...)
            self.configure(conn, _weak_authorizer(weakref.WeakMethod(self.authorize)))
            # Closed when this state is collected, or when the real database opens (__call__).
            self._scratch_closer = weakref.finalize(self, conn.close)
            self._scratch = conn
        return self._scratch

    def authorize(self, action: int, arg1: str | None, arg2: str | None, dbname: str | None, source: str | None) -> int:
        """The SQLite authorizer: workerd's rules for the application's statements only."""
        if not self.db.user_sql:
            return OK  # durable's own statements
        self.compiled = True
        if action in COUNTED_ACTIONS:
            self.targets.append((action, arg1, arg2, source))
        if action in SCHEMA_ACTIONS:
            self.db.schema_epoch += 1  # the index shapes cached for rows_written may change
        try:
            if action == sqlite3.SQLITE_TRANSACTION or action == sqlite3.SQLITE_SAVEPOINT:
                self.transaction = True
                return DENY
            if action == sqlite3.SQLITE_PRAGMA and arg1 == "page_size" and arg2 is None and RTREE.match(self.statement):
                return OK  # R*Tree's own read, while a CREATE VIRTUAL TABLE ... USING rtree runs
            if not self.trusted and not authorized(action, arg1, arg2, dbname):
                return DENY
            if self.shadow and action in SHADOW_ACTIONS:
                self.refusal = shadow_refusal(action, arg1, arg2, source, self.shadow, self.statement)
                if self.refusal is not None:
                    return DENY
            if (
                action == sqlite3.SQLITE_READ
                and arg1 is not None
                and arg1.lower() in ABSENT_TABLES
                and not self.trusted
            ):
                self.absent = arg1
                return DENY
            if action == sqlite3.SQLITE_PRAGMA and arg1 is not None and arg2 is not None:
                if ALLOWED_PRAGMAS.get(arg1) == BOOLEAN:
                    self.switches.append((arg1, arg2))
            if action in WRITE_ACTIONS:
                self.saw_write = True
                if self.probe:
                    self.probe_hit = True
                    return DENY
            return OK
        except Exception:  # pragma: no cover - an exception would be swallowed by sqlite3 anyway
            return DENY

    def rows_written(
        self,
        conn: sqlite3.Connection,
        text: str,
        plan: tuple[tuple[int, str | None, str | None, str | None], ...],
        changes: int,
    ) -> int:
        """b-tree rows a statement wrote (see ``_rows_written``), from a per-statement cache for DML."""
        cost = self.costs.get(text)
        sequence = self.sequence  # (an AUTOINCREMENT counter's row counts when the counter moved)
        if cost is not None and cost[0] == self.db.schema_epoch:
            self.per_row = cost[1]
            self.extra = cost[2] if sequence is None else _moved(self, conn, sequence[0], sequence)
            return changes * cost[1] + (self.extra if changes or sequence else 0)
        written = self._rows_written(conn, plan, changes)
        if changes and self.per_row >= 1 and plan and all(a[0] in DML_ACTIONS for a in plan):
            if len(self.costs) > _WRITES_REMEMBERED:
                self.costs.clear()
            self.costs[text] = (self.db.schema_epoch, self.per_row, written - changes * self.per_row)
        return written

    def _rows_written(
        self, conn: sqlite3.Connection, plan: tuple[tuple[int, str | None, str | None, str | None], ...], changes: int
    ) -> int:
        """b-tree rows a statement wrote, as workerd counts them (its patched SQLite counts every
        row and index entry inserted, every row deleted, and the rows of ``sqlite_master``).

        Python's sqlite3 only reports changed rows (``total_changes``), so the rest is derived
        from what the statement does (``plan``, the authorizer's actions) and the table's indexes:
        an INSERT also writes one entry per index, an UPDATE one per index on a changed column
        (every index when the rowid or primary key changes), a DELETE none. CREATE TABLE and
        CREATE VIEW write 2 rows of ``sqlite_master``, CREATE INDEX 1 and an entry per row
        indexed, REINDEX an entry per row of each index it rebuilds, CREATE TRIGGER 1, ALTER TABLE what _altered_rows says, DROP 0; an AUTOINCREMENT table's counter is
        one more row. Statements that fire triggers or write several tables count changed rows
        only, and partial indexes count as full ones (see docs/sql.md).
        """
        fixed = 0
        tables: dict[str, tuple[bool, set[str]]] = {}
        mixed = altered = False
        for action, arg1, arg2, source in plan:
            if action == sqlite3.SQLITE_CREATE_TABLE or action == sqlite3.SQLITE_CREATE_VIEW:
                fixed += 2
                if action == sqlite3.SQLITE_CREATE_TABLE and arg1 is not None:
                    fixed += _autoindexes(conn, arg1, self.db.tag)  # and the rows of CREATE TABLE ... AS SELECT
            elif action == sqlite3.SQLITE_CREATE_INDEX:
                if arg1 is not None and arg1.lower().startswith("sqlite_autoindex_"):
                    continue  # a UNIQUE or PRIMARY KEY constraint's index: counted with its table
                fixed += 1 + (_count(conn, arg1, arg2, self.db.tag) if arg1 is not None and arg2 is not None else 0)
            elif action == sqlite3.SQLITE_CREATE_TRIGGER:
                fixed += 1
            elif action == sqlite3.SQLITE_REINDEX and arg1 is not None:
                table = _reindexed_table(conn, self.db.tag, arg1, plan)
                fixed += _count(conn, arg1, table, self.db.tag) if table is not None else 0
            elif action == sqlite3.SQLITE_ALTER_TABLE:
                if not altered:  # (a virtual table's own ALTERs, run inside it, are not counted)
                    fixed += _altered_rows(conn, self.db.tag, self.statement, arg2 or "")
                altered = True
            elif arg1 is not None and not arg1.lower().startswith("sqlite_"):
                if source is not None:
                    mixed = True  # written by a trigger
                inserted, columns = tables.setdefault(arg1.lower(), (False, set()))
                if action == sqlite3.SQLITE_INSERT:
                    tables[arg1.lower()] = (True, columns)
                elif action == sqlite3.SQLITE_UPDATE and arg2 is not None:
                    columns.add(arg2.lower())
        if fixed or mixed or len(tables) != 1:
            return changes + fixed
        ((table, (inserted, columns)),) = tables.items()
        shape = self.table_shape(conn, table)
        if shape is None:
            return changes
        if inserted:
            entries = len(shape.indexes)
        elif columns:
            if columns & shape.key:
                entries = len(shape.indexes)
            else:
                entries = sum(1 for index in shape.indexes if index & columns)
        else:
            entries = 0  # DELETE: workerd does not count the index entries removed
        # Set even when nothing changed yet: a statement with RETURNING reports its changes only
        # as its rows are fetched, and the cursor counts them with this.
        self.per_row = 1 + entries
        # The row of sqlite_sequence, written when the counter moved (even by a row ignored).
        self.extra = _moved(self, conn, table, self.sequence) if inserted and shape.autoincrement else 0
        if not changes:
            return self.extra if self.sequence else 0
        return changes * (1 + entries) + self.extra

    def table_shape(self, conn: sqlite3.Connection, table: str) -> _TableShape | None:
        """The indexes of ``table`` (cached until the schema may have changed)."""
        if self.tables_epoch != self.db.schema_epoch:
            self.tables.clear()
            self.tables_epoch = self.db.schema_epoch
        shape = self.tables.get(table)
        if shape is None:
            try:
                shape = _TableShape.read(conn, table, self.db.tag)
            except sqlite3.Error:
                return None
            self.tables[table] = shape
        return shape

    def remember(self, sql: str) -> None:
        """Record that ``sql`` writes, if the authorizer saw it write.

        Python's statement cache runs a statement again without compiling it, so without calling
        the authorizer: a writing statement run again in probe mode would not be caught, and would
        run outside the implicit transaction. Every statement that compiled while writing is
        therefore remembered, and goes straight to the transaction the next time. (Reads need no
        record: a read run again is still a read.) Past the bound the record is dropped and every
        compiled statement of the connection is expired (setting the authorizer does that), so
        each is compiled, and authorized, again before it next runs.
        """
        if not self.saw_write:
            return
        writes = self.writes
        writes.add(sql)
        if len(writes) > _WRITES_REMEMBERED:
            writes.clear()
            if self._conn is not None:
                self._conn.set_authorizer(self.authorize)


def _weak_authorizer(method: weakref.WeakMethod[Callable[..., int]]) -> Callable[..., int]:
    """An authorizer calling ``method`` while its object lives (the scratch database's).

    The scratch connection is closed by a ``weakref.finalize`` of its state, which holds the
    connection: were the connection's authorizer the state's bound method, the state would never
    be collected. It was: every object that ran a read before it had storage kept its state, its
    database and both connections for the life of the process (60 KB of memory per object).
    """

    def authorize(action: int, arg1: str | None, arg2: str | None, dbname: str | None, source: str | None) -> int:
        bound = method()
        return DENY if bound is None else bound(action, arg1, arg2, dbname, source)

    return authorize


def _end_statements(state: _Connection, conn: sqlite3.Connection) -> None:
    """The ``on_close`` hook: the database is about to close ``conn`` (eviction, shutdown).

    The statements of cursors with rows left on it end now: Python's ``close()`` leaves a
    connection whose statements are still alive open (``sqlite3_close_v2``), holding its read
    lock on the file, so the next instance's first write failed with ``SQLITE_BUSY`` for as long
    as such a cursor was referenced (a stashed cursor, an instance a test kept). Reading one
    afterwards raises, as before: the ended instance's error. The schema's twin that
    ``rows_read`` keeps (``durable._sql_twin``) closes too: 10,000 objects evicted kept theirs.
    """
    for cursor in list(state.cursors):
        if cursor._end_statement(conn):
            state.cursors.discard(cursor)
    close_twin(state.reads)  # (built again by the next instance that needs it)


def _state_of(db: ObjectDatabase, row_limit: int | None) -> _Connection:
    for hook in db.on_open:
        if isinstance(hook, _Connection):
            return hook
    state = _Connection(db, row_limit)
    db.on_open.append(state)
    db.on_wipe.append(state.wiped)
    db.on_close.append(functools.partial(_end_statements, state))
    if db.is_open:
        conn = db.read_conn()
        assert conn is not None
        state(conn)
    return state


# -- rows and cursors -------------------------------------------------------------------------------

_lenient_text: Final = functools.partial(str, encoding="utf-8", errors="replace")
"""How the application's SQL reads TEXT: bytes that are not valid UTF-8 (``CAST(x'ff' AS TEXT)``,
text written by another tool) read back with U+FFFD in their place, as in workerd, instead of
making the row unreadable. Set on the connection only while the application's SQL runs or is
read, so durable's own statements keep sqlite3's fast path."""


@final
class SqlRow(dict[str, Any]):
    """One result row: a ``dict`` of column name to value, whose columns are also attributes.

    ``row["x"]``, ``row.x``, ``dict(row)`` and ``row.to_py()`` (a plain ``dict``) all work. When
    column names repeat (``SELECT *`` over a join) the last column wins, as on Cloudflare. A
    column named like a ``dict`` method (``keys``, ``items``...) is reached as ``row["keys"]``.
    Values are typed ``Any`` for convenience; at run time they are ``SqlValue`` values. Rows cross
    RPC and storage as plain dicts (structured clone drops the class, as Cloudflare's does).
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the row has no column {name!r}") from None

    def to_py(self) -> dict[str, Any]:
        """The row as a plain ``dict``."""
        return dict(self)

    def __repr__(self) -> str:
        return f"SqlRow({dict.__repr__(self)})"


copy_as_dict(SqlRow)


class _Rows:
    """The rows of a statement already run to its end (``SqlCursor._complete``), read like a
    ``sqlite3.Cursor``."""

    __slots__ = ("_at", "_rows", "connection")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows
        self._at = 0  # the next row to read (an index: reading one by one stays linear)
        self.connection = _NoChanges

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        rows = self._rows[self._at : self._at + size]
        self._at += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows[self._at :]
        self._at = len(self._rows)
        return rows

    def close(self) -> None:
        self._rows, self._at = [], 0


class _NoChangesConnection:
    """What ``SqlCursor._fetch`` reads of the connection of rows already fetched: nothing changes."""

    total_changes = 0
    text_factory: Any = str


_NoChanges = _NoChangesConnection()


@final
@camel_aliases
class SqlCursor:
    """The result of ``sql.exec()``: an iterator over the rows of its (last) statement.

    The statement's first step already ran inside ``exec()``; the rest runs as rows are taken.
    ``for row in cursor``, ``next(cursor)``, ``to_array()``, ``one()`` and ``raw()`` all consume
    the same stream, each continuing where another stopped. Consume a cursor before the next
    ``await``: like Cloudflare's, it gives no snapshot isolation across other events.
    """

    __slots__ = (
        "__weakref__", "_changes", "_conn", "_cur", "_db", "_end", "_extra", "_failed", "_gen", "_host", "_names", "_params", "_per_row",
        "_read", "_reads", "_sql", "_written",
    )  # fmt: skip

    def __init__(
        self,
        cur: sqlite3.Cursor | None,
        sql: str,
        written: int,
        *,
        host: StorageHost,
        generation: int,
        db: ObjectDatabase,
        per_row: int,
        extra: int,
        params: tuple[SqlValue, ...] = (),
        reads: dict[str, tuple[Any, Shape | None]] | None = None,
    ) -> None:
        """Made by ``sql.exec()``, never by applications.

        Args:
            cur: the statement's ``sqlite3`` cursor, after its first step (``None``: no rows).
            sql: the statement, for error messages.
            written: rows written by the first step.
            host, generation, db: as ``SqlStorage`` holds them (liveness checks, the database).
            per_row: rows written per row a ``RETURNING`` statement reports (its index entries
                included); extra: rows written once more if such a statement writes at all.
            params: the statement's bindings; reads: the shapes of statements for ``rows_read``
                (``durable._sql_reads``), per statement text.
        """
        self._cur = cur
        self._sql = sql
        self._names: list[str] = [d[0] for d in cur.description] if cur is not None and cur.description else []
        self._read = 0
        self._written = written
        self._host = host
        self._gen = generation
        self._db = db
        self._per_row = per_row
        self._extra = 0 if written else extra
        self._conn = conn = cur.connection if cur is not None else None
        self._params = params
        self._reads = reads
        self._changes = cur.rowcount if cur is not None else -1  # an UPDATE's or DELETE's rows
        self._end = conn.total_changes + db.schema_epoch if conn is not None else -1
        """The connection's ``total_changes`` plus the schema's epoch (both only grow) when the
        statement took its first step, then when it ended (-2 if either changed in between but
        by the statement's own writes): ``rows_read`` counts a table only if neither changed since."""

    def __repr__(self) -> str:
        state = "done" if self._cur is None else "open"
        return (
            f"<durable.SqlCursor {state} columns={self._names!r} rows_read={self._read} rows_written={self._written}>"
        )

    @property
    def column_names(self) -> list[str]:
        """The result's column names, in order (repeats included)."""
        return list(self._names)

    @property
    def rows_read(self) -> int:
        """Rows read so far, as workerd counts them where the statement's shape tells
        (``durable._sql_reads``: scans of one table, rowid lookups, ``count(*)``...), else the rows
        returned (Cloudflare counts every row its SQLite steps over, for billing; docs/sql.md).
        A table's rows are counted when this is read, if nothing was written since the statement
        ended; else the rows returned."""
        self._check_canceled()
        conn, reads = self._conn, self._reads
        if conn is None or reads is None:
            return self._read
        try:
            stale = self._end != conn.total_changes + self._db.schema_epoch
        except sqlite3.ProgrammingError:  # closed (the object was evicted, or its runtime closed)
            return self._read
        counted = rows_read_of(
            conn,
            reads,
            (self._db.schema_epoch, id(conn)),
            self._sql,
            self._params,
            tag=self._db.tag,
            returned=self._read,
            finished=self._cur is None or not self._names,
            written=self._written,
            stale=stale,
            changes=self._changes,
        )
        return self._read if counted is None else counted

    @property
    def rows_written(self) -> int:
        """Rows inserted, updated or deleted so far by the statement, triggers included."""
        self._check_canceled()
        return self._written

    def _check_canceled(self) -> None:
        failed: SqlError | None = getattr(self, "_failed", None)
        if failed is not None and str(failed) == CANCELED:
            raise SqlError(CANCELED)

    def _cancel(self) -> None:
        """``delete_all()`` reset the database under this cursor (``_Connection.wiped``).

        A cursor whose statement had run to its end reads as finished, as in workerd; one with
        rows left raises ``CANCELED`` on every later read (``rows_read`` and ``rows_written``
        too; ``column_names`` stays readable).
        """
        cur, self._cur = self._cur, None
        if cur is None:
            return
        try:
            more = cur.fetchone() is not None  # (sqlite3 already took the step to the row it holds)
        except (sqlite3.Error, sqlite3.Warning, MemoryError):
            more = True
        finally:
            cur.close()
        if more:
            self._failed = SqlError(CANCELED)

    def _end_statement(self, conn: sqlite3.Connection) -> bool:
        """End this cursor's statement if it runs on ``conn``, which is closing (``_end_statements``).

        The closed ``sqlite3`` cursor stays: a later read raises the ended instance's error
        (``check_live``), or, were the instance still live, ``SqlError`` naming the closed cursor.
        """
        cur = self._cur
        if not isinstance(cur, sqlite3.Cursor) or cur.connection is not conn:
            return False
        cur.close()
        return True

    def _fetch(self, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` more rows (all of them for -1); the cursor closes once they run out."""
        cur = self._cur
        if cur is None:
            failed: SqlError | None = getattr(self, "_failed", None)  # (set only when a step failed)
            if failed is not None:
                # workerd raises a cursor's error again on every later read (measured with miniflare)
                raise SqlError(str(failed), code=failed.code)
            return []
        self._host.check_live(self._gen)
        db = self._db
        conn = cur.connection
        before = conn.total_changes
        db.user_sql = True
        conn.text_factory = _lenient_text
        try:
            if limit == 1:
                row = cur.fetchone()
                rows: list[tuple[Any, ...]] = [] if row is None else [row]
            elif limit < 0:
                rows = cur.fetchall()
            else:
                rows = cur.fetchmany(limit)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            self._close()
            self._failed = error = sql_error(exc, self._sql)
            raise error from exc
        except MemoryError as exc:
            self._close()
            self._failed = error = SqlError("out of memory: SQLITE_NOMEM", code="SQLITE_NOMEM")
            raise error from exc
        finally:
            db.user_sql = False
            conn.text_factory = str
            changed = conn.total_changes - before
            if changed:  # a statement with RETURNING reports its changes as its rows are fetched
                self._written += changed * self._per_row + self._extra
                self._extra = 0
                self._end += changed  # its own changes leave its count as it is
        if len(rows) != limit:
            self._close()
            if isinstance(cur, sqlite3.Cursor) and self._end != before + changed + db.schema_epoch:
                # Written to between its first step and its end (a sort of rows since deleted,
                # a LIMIT on a table since cut): rows_read counts the rows returned. (Rows kept
                # by _complete come from a statement that ended there: checked then.)
                self._end = -2
        self._read += len(rows)
        return rows

    def _close(self) -> None:
        cur, self._cur = self._cur, None
        if cur is not None:
            cur.close()

    def _complete(self) -> None:
        """Run a write with ``RETURNING`` to its end now, keeping its rows for reading.

        SQLite makes all of such a statement's changes on its first step, and workerd reports
        them in ``rows_written`` at once (measured with miniflare); Python's ``sqlite3`` counts
        them only when the statement ends. A failure raises here, from ``exec()``, as in workerd.
        """
        cur = self._cur
        rows = self._fetch(-1)
        self._read -= len(rows)  # not read by the application yet
        if isinstance(cur, sqlite3.Cursor):
            self._changes = cur.rowcount  # (sqlite3 counts them as the statement ends)
        if rows:
            self._cur = _Rows(rows)  # type: ignore[assignment]  # (fetchone/fetchmany/fetchall/close)

    def __iter__(self) -> SqlCursor:
        return self

    def __next__(self) -> SqlRow:
        rows = self._fetch(1)
        if not rows:
            raise StopIteration
        return SqlRow(zip(self._names, rows[0]))

    def to_array(self) -> list[SqlRow]:
        """Every remaining row, as a list."""
        names = self._names
        return [SqlRow(zip(names, row)) for row in self._fetch(-1)]

    def one(self) -> SqlRow:
        """The one row of the result; raises ``SqlError`` if there are none or several.

        It consumes the cursor.
        """
        rows = self._fetch(2)
        if not rows:
            raise SqlError(NO_RESULTS)
        if len(rows) > 1:
            self._close()
            raise SqlError(MULTIPLE_RESULTS)
        return SqlRow(zip(self._names, rows[0]))

    def raw(self) -> _RawIterator:
        """An iterator of rows as lists of values, over the same stream as the cursor; its
        ``to_array()`` (``toArray``) gives every remaining row."""
        return _RawIterator(self)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        toArray = to_array
        columnNames = column_names
        rowsRead = rows_read
        rowsWritten = rows_written


@final
@camel_aliases
class _RawIterator:
    """What ``cursor.raw()`` returns: the rows as lists of values; ``to_array()`` (``toArray``)
    gives every remaining one, as workerd's raw iterator does."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: SqlCursor) -> None:
        self._cursor = cursor

    def __iter__(self) -> _RawIterator:
        return self

    def __next__(self) -> list[SqlValue]:
        rows = self._cursor._fetch(1)
        if not rows:
            raise StopIteration
        return list(rows[0])

    def to_array(self) -> list[list[SqlValue]]:
        """Every remaining row, as lists of values."""
        return [list(row) for row in self._cursor._fetch(-1)]

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        toArray = to_array


# -- the SQL API ------------------------------------------------------------------------------------


@final
@camel_aliases
class SqlStorage:
    """``ctx.storage.sql``: SQL on the object's private SQLite database (SQLite-backed objects).

    Example::

        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)")
        sql.exec("INSERT INTO users (name) VALUES (?)", "Ada")
        for row in sql.exec("SELECT id, name FROM users"):
            print(row.id, row["name"])
    """

    __slots__ = ("_check_sync", "_db", "_gen", "_host", "_state", "_transactions")

    def __init__(
        self,
        host: StorageHost,
        generation: int,
        database: ObjectDatabase,
        *,
        transactions: Sized,
        check_sync: Callable[[str], None],
    ) -> None:
        """Made by ``ctx.storage.sql``, never by applications.

        Args:
            host: the object's host (liveness, write notifications, limits).
            generation: the instance generation the storage belongs to (``host.check_live``).
            database: the object's database.
            transactions: the storage's running ``transaction()`` closures; while it is not
                empty, ``check_sync`` decides whether synchronous SQL may run now.
            check_sync: raises when another event's ``transaction()`` is running; its argument
                names the operation (``"sql.exec()"``).
        """
        self._host = host
        self._gen = generation
        self._db = database
        self._transactions = transactions
        self._check_sync = check_sync
        self._state = _state_of(self._db, self._host.limits.sqlite_max_row_bytes)

    def __repr__(self) -> str:
        return "<durable.SqlStorage>"

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        """Run ``query`` now and return a cursor over the results of its last statement.

        ``query`` may hold several statements separated by ``;``: each runs in turn (earlier ones
        to their first step, which completes any write), and only the last may have parameters.
        ``bindings`` fill its ``?`` (or ``?NNN``, ``:name``...) parameters by position: ``None``,
        ``int``, ``float``, ``str``, ``bytes``/``bytearray``/``memoryview``; ``bool`` binds as 1 or 0.

        Writes join the object's implicit transaction: they commit at the end of the turn with
        every other write, whether or not the cursor is read.

        Raises:
            SqlError: SQLite refused the statement (``...: SQLITE_<CODE>``), or Cloudflare would:
                empty SQL, a wrong number of bindings, parameters before the last statement,
                ``BEGIN``/``SAVEPOINT``, reserved ``_cf_`` names, PRAGMAs and functions outside
                the allow-lists, ATTACH, TEMP objects, most virtual tables.
            TypeError: a binding of another type; OverflowError: an int outside 64 bits.
        """
        return self._exec(query, bindings, trusted=False)

    def _exec(self, query: str, bindings: tuple[Any, ...], *, trusted: bool) -> SqlCursor:
        self._host.check_live(self._gen)
        if self._transactions:
            self._check_sync("sql.exec()")  # another event's transaction() is running
        if type(query) is not str:
            raise TypeError(f"sql.exec() takes the SQL as a str, not {type(query).__name__}")
        if (index := lone_surrogate_at(query)) is not None:
            raise TypeError(f"sql.exec() SQL has a lone surrogate at index {index}; it must be valid Unicode")
        db = self._db
        if trusted or db.kv.pending:
            # SQL without the rules may read _cf_KV, and any SQL may list it in sqlite_master: as
            # in workerd, it exists from the first key-value write on. Buffered writes go there.
            db.kv.spill()
            if db.in_transaction:
                self._host.wrote(gated=True)  # the table may be new: commit it at the end of the turn
        params: tuple[SqlValue, ...] = bindings  # checked by sqlite3 as it binds (see _attempt)
        for value in bindings:
            if type(value) not in NATIVE:
                params = tuple(check_binding(value, i) for i, value in enumerate(bindings, 1))
                break
        code = query
        # workerd's SQLite reads the SQL up to a NUL: the statements before it run as earlier
        # statements do, then what is left holds none ("SQL code did not contain a statement.").
        cut = "\0" in query
        if cut:
            code = query[: query.index("\0")]
        while True:
            # workerd hands SQLite all the SQL not yet run, so the length limit applies to it.
            if len(code) > SQL_LENGTH // 4 and len(code.encode("utf-8", "surrogatepass")) > SQL_LENGTH:
                raise SqlError("statement too long: SQLITE_TOOBIG", code="SQLITE_TOOBIG")
            bounds = first_statement(code)
            if bounds is None:
                raise SqlError(NO_STATEMENT)
            end = bounds[1]
            sql = code[:end]
            rest = code[end:].lstrip(WHITESPACE)
            if not rest and not cut:
                cur, written = self._run(sql, params, last=True, trusted=trusted)
                state = self._state
                reads = state.reads
                dropped = state.dropped
                if dropped is not None:
                    state.dropped = None
                    counted: Any = dropped[1]  # (rows_read finds it where a statement's shape would be)
                    if dropped[0] == sql and counted is not None:
                        reads = {DROPPED + sql: (None, counted)}  # the cursor's own, counted before it ran
                cursor = SqlCursor(
                    cur,
                    sql,
                    written,
                    host=self._host,
                    generation=self._gen,
                    db=db,
                    per_row=state.per_row,
                    extra=state.extra,
                    params=params,
                    reads=reads,
                )
                if state.saw_write and cur.description is not None:
                    cursor._complete()  # a write with RETURNING: see _complete
                if cursor._cur is not None:
                    state.cursors.add(cursor)  # (delete_all() cancels it: _Connection.wiped)
                return cursor
            cur, _ = self._run(sql, (), last=False, trusted=trusted)
            cur.close()
            code = rest

    def _run(self, sql: str, params: tuple[SqlValue, ...], *, last: bool, trusted: bool) -> tuple[sqlite3.Cursor, int]:
        """Prepare ``sql`` and take its first step, on the right connection, in the right mode."""
        db = self._db
        state = self._state
        if trusted:
            # A statement authorized without the rules must never be reused, from Python's
            # statement cache, by the application: give it a text of its own. The mark goes first:
            # SQLite names a result column by its expression's text up to the next token, so a
            # mark after the last column would end up in that column's name.
            text = f"-- durable.testing.query {db.tag}\n{sql}"
        else:
            text = sql
            if ALTER.match(sql) and renames_to_reserved(sql):
                raise SqlError("not authorized: SQLITE_AUTH", code="SQLITE_AUTH")
        if text in state.writes or VACUUM_OR_OPTIMIZE.match(sql):
            # (VACUUM and PRAGMA optimize write while they run, where the authorizer cannot stop them)
            conn = db.write_conn()
            self._host.wrote(gated=True)
            return self._attempt(conn, sql, text, params, last=last, probe=False, trusted=trusted)
        if db.in_transaction:
            return self._attempt(db.write_conn(), sql, text, params, last=last, probe=False, trusted=trusted)
        conn = db.read_conn() or state.scratch()
        try:
            return self._attempt(conn, sql, text, params, last=last, probe=True, trusted=trusted)
        except _ProbeHit:
            conn = db.write_conn()
            self._host.wrote(gated=True)
            return self._attempt(conn, sql, text, params, last=last, probe=False, trusted=trusted)

    def _attempt(
        self,
        conn: sqlite3.Connection,
        sql: str,
        text: str,
        params: tuple[SqlValue, ...],
        *,
        last: bool,
        probe: bool,
        trusted: bool,
    ) -> tuple[sqlite3.Cursor, int]:
        """Run ``text`` (``sql``, perhaps marked) to its first step; ``probe``: refuse any write."""
        db = self._db
        state = self._state
        bound: tuple[SqlValue, ...] | dict[str, SqlValue] | None = params
        if params and NAMED_NEED_A_DICT and ("$" in sql or ":" in sql or "@" in sql):
            bound = named_parameters(sql, params)
        scratch = conn is state._scratch
        # A CREATE ... IF NOT EXISTS of something that exists writes nothing (workerd: 0 rows), but
        # the authorizer reports its CREATE all the same: the schema's version tells them apart.
        head = statement_head(sql) if sql[:1] in HEAD_START else sql  # (`-- c\nINSERT` is an INSERT)
        first = head[:1]
        schema = _schema_version(conn, db.tag) if not probe and _IF_NOT_EXISTS.match(head) else None
        if not probe and not scratch and DROP.match(head) is not None:
            state.dropped = (sql, _count_drop(conn, head, db.tag))
        state.sequence = _sequence(state, conn, head) if not probe and not scratch and first in "iIrR" else None
        before = conn.total_changes
        state.probe = probe
        state.trusted = trusted
        state.saw_write = state.probe_hit = state.transaction = False
        state.absent = None
        state.statement = sql
        state.compiled = False
        state.refusal = None
        state.shadow = _shadow_tables(conn, db.tag) if not scratch and SHADOW_HINT.search(sql) else frozenset()
        if state.targets:
            state.targets = []
        if state.switches:
            state.switches = []
        db.user_sql = True
        conn.text_factory = _lenient_text
        marked = False
        if (sql[:1] in "eE" or not sql[:1].isalpha()) and _EXPLAIN.match(sql):
            # Never a cached EXPLAIN (see _EXPLAINS). The mark goes first: after the statement it
            # would end up in the error of an unterminated string or name; and it is left out
            # where it would take the text past SQLite's length limit (which sql is within).
            mark = f"-- {next(_EXPLAINS)}\n"
            if (
                len(text) + len(mark) <= SQL_LENGTH // 4
                or len((mark + text).encode("utf-8", "surrogatepass")) <= SQL_LENGTH
            ):
                text = mark + text
                marked = True  # (never run again: nothing to remember of it)
        if bound is params and NAMED_NEED_A_DICT and "?" in sql and NUMBERED_PARAMETER.search(sql):
            bound = None  # ?NNN binds by position; Python 3.12.0-3.12.x warns that it is "named"
        try:
            if bound is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    cur = conn.execute(text, params)
            else:
                cur = conn.execute(text, bound)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            if state.probe_hit:
                raise _ProbeHit from None
            if state.transaction:
                raise SqlError(TRANSACTION_MESSAGE) from exc
            if state.refusal is not None:
                raise SqlError(f"{state.refusal}: SQLITE_ERROR", code="SQLITE_ERROR") from exc
            if state.absent is not None:
                raise SqlError(f"no such table: {state.absent}: SQLITE_ERROR", code="SQLITE_ERROR") from exc
            if isinstance(exc, sqlite3.ProgrammingError) and str(exc).startswith("Incorrect number of bindings"):
                raise SqlError(WRONG_BINDINGS if last else MULTI_PARAMETERS) from exc
            raise sql_error(exc, sql) from exc
        except MemoryError as exc:
            # sqlite3 turns SQLITE_NOMEM into MemoryError. It is what SQLite returns for a
            # statement past SQLITE_LIMIT_VDBE_OP, as well as for a real shortage.
            raise SqlError("out of memory: SQLITE_NOMEM", code="SQLITE_NOMEM") from exc
        except (OverflowError, UnicodeEncodeError):
            # sqlite3 refused a value while binding it: say which, as check_binding words it.
            for i, value in enumerate(params, 1):
                check_binding(value, i)
            raise  # pragma: no cover - check_binding refuses whatever sqlite3 refuses
        finally:
            db.user_sql = False
            conn.text_factory = str
            state.probe = False
            if state.saw_write:
                if not scratch and not state.probe_hit and not marked:
                    state.remember(text)
                if not probe:
                    self._host.wrote(gated=True)
        if scratch and state.switches:
            state.replay.extend(state.switches)
        written = conn.total_changes - before
        if not state.compiled and text in state.writes:
            # Run again from Python's statement cache, so the authorizer did not see it write;
            # it did the first time (remember()). _exec needs to know, for RETURNING.
            state.saw_write = True
        state.per_row = 1
        state.extra = 0
        if not probe:
            if state.compiled:
                plan = tuple(state.targets)
                if (plan or text in state.plans) and not marked:
                    if len(state.plans) > _WRITES_REMEMBERED:
                        state.plans.clear()
                    state.plans[text] = plan
            else:
                plan = state.plans.get(text, ())
            if schema is not None and _schema_version(conn, db.tag) == schema:
                plan = ()  # CREATE ... IF NOT EXISTS that created nothing
            if plan:
                written = state.rows_written(conn, text, plan, written)
        return cur, written

    @property
    def database_size(self) -> int:
        """The database's size in bytes: (pages in use) x (page size), as Cloudflare computes it."""
        self._host.check_live(self._gen)
        if self._transactions:
            self._check_sync("sql.database_size")
        db = self._db
        db.kv.spill()  # buffered key-value writes count too
        conn = db.read_conn()
        if conn is None:
            return _EMPTY_DATABASE_SIZE  # no file yet: workerd's empty database has one page
        row = conn.execute(
            "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM "
            f"pragma_freelist_count()), (SELECT page_size FROM pragma_page_size()) -- {db.tag}"
        ).fetchone()
        # An in-memory database whose first write was rolled back has no page at all: workerd's
        # database always has its first one (measured: 4096 after a transactionSync() whose only
        # write, the first of the object, was undone).
        return max(int(row[0]), 1) * int(row[1])

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        databaseSize = database_size


def exec_unrestricted(sql: SqlStorage, query: str, bindings: tuple[Any, ...]) -> SqlCursor:
    """Run ``query`` as ``sql.exec(query, *bindings)`` does, without Cloudflare's rules.

    Package-internal, for ``durable.testing.query(..., unrestricted=True)``: a function rather
    than a method, so that ``ctx.storage.sql`` never offers applications a way around the rules.
    Transactions stay refused and the limits apply. The statements get a text of their own, so
    Python's statement cache never hands them to the application's SQL.
    """
    return sql._exec(query, bindings, trusted=True)
