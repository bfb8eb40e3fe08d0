"""A statement's program listed where listing it cannot reset the application's ``changes()``.

``rows_read`` reads a statement's program with ``EXPLAIN`` (``durable._sql_reads``). SQLite
marks the program of an ``INSERT``, ``UPDATE`` or ``DELETE`` to set the connection's change
count when it halts, and an ``EXPLAIN`` of it halts too, having changed nothing: SQLite's
``changes()`` reads 0 after it, where workerd (which counts inside SQLite and lists no program)
still answers the write's count. No SQL sets ``changes()`` back without adding to
``total_changes()`` as well, so such a program is listed on a twin instead: an in-memory
database given the same schema (``sqlite_master``'s rows, written there) and switches
(``foreign_keys``...), whose program is the one SQLite compiles on the object's database but for
the b-trees' root pages, which are mapped back by name.

The twin is used only where an ``EXPLAIN`` would change something (the statement may write and
``changes()`` is not 0) and where it compiles the same program for certain: statistics
(``ANALYZE``'s ``sqlite_stat1``, which the planner reads) are copied into it, and
``case_sensitive_like`` (which has no value to read back) is told by whether ``LIKE`` matches
across case; a schema with a virtual table (whose module would read its shadow tables) or with
``sqlite_stat4`` is listed on the object's connection, as before. The twin is kept per
connection state, built again when the schema, its statistics or a switch changes.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable
from typing import Any, Final

TWIN: Final = "\0twin"
"""The key of the twin in the cache of statement shapes that ``rows_read`` is handed."""

_READS: Final = re.compile(r"(?is)\s*(?:SELECT|VALUES|PRAGMA|CREATE|DROP|ALTER|EXPLAIN|ANALYZE|REINDEX)\b")
"""Statements whose program never sets ``changes()`` (their nested writes do not count)."""
_VIRTUAL: Final = re.compile(r"(?is)\s*CREATE\s+VIRTUAL\b")
_SWITCHES: Final = ("foreign_keys", "ignore_check_constraints", "recursive_triggers", "reverse_unordered_selects")
"""The switches that change a write's program and can be read back (not ``case_sensitive_like``;
``defer_foreign_keys`` only turns a foreign key's check into a count, and SQLite switches it off
at every commit; ``legacy_alter_table`` changes only ALTER TABLE)."""
_STATE: Final = (
    "SELECT changes(), " + ", ".join(f"(SELECT * FROM pragma_{name})" for name in _SWITCHES) + ", 'a' LIKE 'A'"
)
"""``changes()``, the switches and ``case_sensitive_like`` (which has no value to read back: whether
``LIKE`` matches across case tells it), in one statement."""
_OPENS: Final = frozenset({"OpenRead", "OpenWrite", "ReopenIdx"})

Explain = Callable[[sqlite3.Connection, str, tuple[Any, ...], str], list[tuple[Any, ...]]]


def listed(
    conn: sqlite3.Connection,
    cache: dict[str, Any] | None,
    sql: str,
    params: tuple[Any, ...],
    tag: str,
    explain: Explain,
) -> list[tuple[Any, ...]]:
    """``explain(conn, sql, params, tag)``'s rows, listed on a twin of ``conn``'s schema where
    listing them on ``conn`` would reset ``changes()`` (see the module's docstring)."""
    if cache is None or _READS.match(sql) is not None:
        return explain(conn, sql, params, tag)
    state = conn.execute(f"{_STATE} -- {tag}").fetchone()
    if not state[0]:
        return explain(conn, sql, params, tag)  # (nothing to reset)
    twin = _twin(conn, cache, tag, tuple(int(value) for value in state[1:]))
    if twin is None:
        return explain(conn, sql, params, tag)
    other, roots = twin
    try:
        program = explain(other, sql, params, tag)
    except sqlite3.Error:
        return explain(conn, sql, params, tag)
    # P2 of an open of the main database (P3 = 0) is a root page, unless P5 says it is a register
    # (OPFLAG_P2ISREG, 0x10; 0x02 is OPFLAG_SEEKEQ, which an index's open for an equality has).
    mapped = [
        (*row[:3], roots.get(row[3], 0), *row[4:]) if row[1] in _OPENS and row[4] == 0 and not row[6] & 0x10 else row
        for row in program
    ]
    if any(row[3] == 0 and row[1] in _OPENS for row in mapped):
        return explain(conn, sql, params, tag)  # (a b-tree the twin has and the database not)
    return mapped


def close(cache: dict[str, Any]) -> None:
    """Close the twin kept in ``cache``, if any: the instance that used it ended (eviction,
    hibernation, reset), and an object's twin holds its schema's pages until the object's
    database is dropped, which an evicted object's never is."""
    hit = cache.pop(TWIN, None)
    if hit is not None and hit[1][0] is not None:
        with contextlib.suppress(sqlite3.Error):  # (never in the way of the database's own close)
            hit[1][0][0].close()


def _twin(
    conn: sqlite3.Connection, cache: dict[str, Any], tag: str, switches: tuple[int, ...]
) -> tuple[sqlite3.Connection, dict[int, int]] | None:
    """The twin of ``conn``'s schema and ``switches`` and the map of its root pages to
    ``conn``'s, or ``None`` where a twin may compile another program (kept in ``cache``, with
    the schema and switches it was made for)."""
    rows = conn.execute(f'SELECT type, name, tbl_name, rootpage, sql FROM "main".sqlite_master -- {tag}').fetchall()
    stats: list[Any] = []
    for _, name, _, _, _ in rows:
        if str(name).lower().startswith("sqlite_stat"):
            if str(name).lower() != "sqlite_stat1":
                return None  # (sqlite_stat4, of a build with STAT4: not copied)
            stats = conn.execute(f'SELECT tbl, idx, stat FROM "main".sqlite_stat1 -- {tag}').fetchall()
    key = (rows, switches, stats)
    hit = cache.get(TWIN)
    if hit is not None and hit[0] == key:
        twin: tuple[sqlite3.Connection, dict[int, int]] | None = hit[1][0]
        return twin
    close(cache)  # (Python 3.13 warns of a connection left to the garbage collector)
    twin = _build(rows, switches, stats)
    cache[TWIN] = (key, (twin,))
    return twin


def _build(
    rows: list[Any], switches: tuple[int, ...], stats: list[Any]
) -> tuple[sqlite3.Connection, dict[int, int]] | None:
    """The twin, its ``sqlite_master`` written row by row (``writable_schema``) rather than built
    by running each ``CREATE``: SQLite parses each new object's rows again from a scan of all of
    ``sqlite_master``, so that a schema of n objects took n scans to build (0.4 s for 3000 on
    SQLite 3.40, at every first ``rows_read`` of a write after a schema change). A program is only
    listed there, never run: each object's root page is a page of the twin's (numbered 3, 4...
    in ``sqlite_master``'s order; SQLite refuses a root page past the database's end, so the
    twin is made as long with a blob of 512-byte pages), mapped back to the database's.

    ``stats``, the rows of ``sqlite_stat1`` (``ANALYZE``'s statistics, which the planner reads
    when the schema loads), go into a real ``sqlite_stat1`` of the twin's, made by its own
    ``ANALYZE`` (SQLite makes that table only so), before the schema is read afresh. Its root page
    is none of the database's: a program that opens it is listed on the database instead."""
    for _, _, _, _, text in rows:
        if text is not None and _VIRTUAL.match(text):
            return None
    rows = [row for row in rows if str(row[1]).lower() != "sqlite_stat1"]
    other = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    roots = {1: 1}
    entries = []
    for number, (kind, name, table, root, text) in enumerate(rows):
        mine = number + 3 if root else 0
        if root:
            roots[mine] = root
        entries.append((kind, name, table, mine, text))
    try:
        for name, value in zip(_SWITCHES, switches[:-1], strict=True):
            other.execute(f"PRAGMA {name} = {value}")
        other.execute(f"PRAGMA case_sensitive_like = {0 if switches[-1] else 1}")
        for name in ("printf", "format"):  # (durable's own on the object's connection: _sql._limit)
            other.create_function(name, -1, _nothing, deterministic=True)
        other.execute("PRAGMA page_size = 512")
        other.execute("BEGIN")
        other.execute("CREATE TABLE pages (x)")
        other.execute("INSERT INTO pages VALUES (zeroblob(?))", ((len(rows) + 3) * 512,))
        other.execute("PRAGMA writable_schema = ON")
        if stats:
            other.execute("ANALYZE")  # (makes sqlite_stat1, with a row of its own for pages)
            other.execute("DELETE FROM sqlite_stat1")
            other.executemany("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", stats)
        other.execute("DELETE FROM sqlite_master WHERE name != 'sqlite_stat1'")
        other.executemany("INSERT INTO sqlite_master VALUES (?, ?, ?, ?, ?)", entries)
        other.execute("COMMIT")
        other.execute("PRAGMA writable_schema = RESET")  # (off, and the schema read afresh)
        other.execute("SELECT * FROM sqlite_master LIMIT 0").fetchall()  # (parsed now: a bad one fails here)
    except sqlite3.Error:
        other.close()
        return None
    return other, roots


def _nothing(*_: Any) -> None:
    return None
