"""A statement's program listed where listing it cannot reset the application's ``changes()``.

``rows_read`` reads a statement's program with ``EXPLAIN`` (``durable._sql_reads``). SQLite
marks the program of an ``INSERT``, ``UPDATE`` or ``DELETE`` to set the connection's change
count when it halts, and an ``EXPLAIN`` of it halts too, having changed nothing: SQLite's
``changes()`` reads 0 after it, where workerd (which counts inside SQLite and lists no program)
still answers the write's count. No SQL sets ``changes()`` back without adding to
``total_changes()`` as well, so such a program is listed on a twin instead: an in-memory
database given the same schema (``sqlite_master``'s statements, run in order) and switches
(``foreign_keys``...), whose program is the one SQLite compiles on the object's database but for
the b-trees' root pages, which are mapped back by name.

The twin is used only where an ``EXPLAIN`` would change something (the statement may write and
``changes()`` is not 0) and where it compiles the same program for certain: a schema with
statistics (``ANALYZE``'s ``sqlite_stat1``, which the planner reads), a virtual table, or a
statement with ``LIKE`` (``PRAGMA case_sensitive_like`` cannot be read back) is listed on the
object's connection, as before. The twin is kept per connection state, built again when the
schema or a switch changes.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any, Final

TWIN: Final = "\0twin"
"""The key of the twin in the cache of statement shapes that ``rows_read`` is handed."""

_READS: Final = re.compile(r"(?is)\s*(?:SELECT|VALUES|PRAGMA|CREATE|DROP|ALTER|EXPLAIN|ANALYZE|REINDEX)\b")
"""Statements whose program never sets ``changes()`` (their nested writes do not count)."""
_LIKE: Final = re.compile(r"(?i)LIKE")
_VIRTUAL: Final = re.compile(r"(?is)\s*CREATE\s+VIRTUAL\b")
_SWITCHES: Final = (
    "foreign_keys", "defer_foreign_keys", "ignore_check_constraints", "legacy_alter_table", "recursive_triggers",
    "reverse_unordered_selects",
)  # fmt: skip
"""The switches that change a program and can be read back (not ``case_sensitive_like``)."""
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
    if cache is None or _READS.match(sql) is not None or _LIKE.search(sql) is not None:
        return explain(conn, sql, params, tag)
    if not conn.execute(f"SELECT changes() -- {tag}").fetchone()[0]:
        return explain(conn, sql, params, tag)  # (nothing to reset)
    twin = _twin(conn, cache, tag)
    if twin is None:
        return explain(conn, sql, params, tag)
    other, roots = twin
    try:
        program = explain(other, sql, params, tag)
    except sqlite3.Error:
        return explain(conn, sql, params, tag)
    mapped = []
    for row in program:
        if row[1] in _OPENS and row[4] == 0 and not row[6] & 0x02:  # main database; P2 a root page
            root = roots.get(row[3])
            if root is None:
                return explain(conn, sql, params, tag)
            row = (*row[:3], root, *row[4:])
        mapped.append(row)
    return mapped


def _twin(
    conn: sqlite3.Connection, cache: dict[str, Any], tag: str
) -> tuple[sqlite3.Connection, dict[int, int]] | None:
    """The twin of ``conn``'s schema and the map of its root pages to ``conn``'s, or ``None``
    where a twin may compile another program."""
    rows = conn.execute(f'SELECT type, name, tbl_name, rootpage, sql FROM "main".sqlite_master -- {tag}').fetchall()
    for _, name, _, _, text in rows:
        if str(name).lower().startswith("sqlite_stat") or (text is not None and _VIRTUAL.match(text)):
            return None
    switches = tuple(int(conn.execute(f"PRAGMA {name} -- {tag}").fetchone()[0]) for name in _SWITCHES)
    key = (tuple((row[0], row[1], row[2], row[4]) for row in rows), switches)
    hit = cache.get(TWIN)
    if hit is not None and hit[0] == key:
        other = hit[1][0]
    else:
        cache.pop(TWIN, None)
        other = _build(rows, switches)
        if other is None:
            return None
        cache[TWIN] = (key, (other,))
    theirs = {str(name): root for name, root in other.execute("SELECT name, rootpage FROM sqlite_master")}
    roots = {1: 1}
    for _, name, _, root, _ in rows:
        if root and str(name) in theirs:
            roots[theirs[str(name)]] = root
    return other, roots


def _build(rows: list[Any], switches: tuple[int, ...]) -> sqlite3.Connection | None:
    other = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        for name, value in zip(_SWITCHES, switches, strict=True):
            other.execute(f"PRAGMA {name} = {value}")
        for name in ("printf", "format"):  # (durable's own on the object's connection: _sql._limit)
            other.create_function(name, -1, _nothing, deterministic=True)
        for _, name, _, _, text in rows:
            if text is not None and str(name).lower() != "sqlite_sequence":
                other.execute(text)
    except sqlite3.Error:
        other.close()
        return None
    return other


def _nothing(*_: Any) -> None:
    return None
