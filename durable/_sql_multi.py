"""``rows_read`` for statements of more than one loop: joins on a rowid, ``IN (SELECT ...)``,
``INSERT ... SELECT``, ``CREATE INDEX``, ``DROP``, ``ALTER TABLE ... ADD COLUMN`` and the parts
of a write with ``RETURNING``.

workerd counts every cursor landing of the statement's program (``durable._sql_reads``): a
loop's ``Rewind`` (on an empty table too) and each ``Next`` that lands on a row, each rowid
lookup whose key is an integer (found or not). This module recognises these programs, whose
count follows from the data, asked with a query or two when ``rows_read`` is read (a ``DROP``'s
just before it runs, as what it drops is gone after: :func:`drop_reads`):

- ``join``: a full scan of one table whose every row looks up one row of another by its rowid
  (``SELECT * FROM p JOIN t ON t.id = p.tid``, ``LEFT JOIN`` too, tests on either table after
  the lookup; ``id IN (SELECT id FROM u)``; backwards for ``DESC``; the outer loop may scan a
  covering index): the outer table's rows (at least 1), plus one per outer row whose key SQLite
  reads as an integer (a NULL, a text, a blob or 2.5 is looked up nowhere);
- ``insub``: ``SELECT ... WHERE id IN (SELECT col FROM u)`` (``col`` may be arithmetic of
  ``u``'s columns, :func:`_expression`): SQLite fills a temporary index with the
  subquery's values (a full scan of ``u``, no filter), then loops over it looking each value up:
  ``u``'s rows (at least 1), the distinct values (at least 1), one per integer value;
- ``fixed``: a multi-row ``INSERT ... VALUES`` that gives the rowid: one lookup per row
  (:func:`_values_fed`); an INSERT into an ``AUTOINCREMENT`` table adds its scan of
  ``sqlite_sequence`` (:func:`autoincrement_reads`, :func:`sequence_reads`);
- ``fed``: ``INSERT INTO c SELECT ... FROM t [WHERE ...]``, a full scan of one other table
  feeding the INSERT through a coroutine: that table's rows, at least 1 (an explicit rowid, or
  ``t`` itself, make other programs: not these);
- ``grouped``: ``GROUP BY`` through a sorter fed by a full scan with no ``WHERE`` nor
  ``LIMIT``: the table's rows twice (the scan, the sorter's loop), at least 1 each;
- ``CREATE INDEX`` (:func:`index_rows`): the table's scan, the sorter's loop over the entries,
  and SQLite's ``OP_SeekEnd`` before each entry is appended, which counts when the index's
  cursor is not positioned: before the first two entries, then twice per leaf page the index
  grew (miniflare 4.20260426: 2005 for 1000 integers, 2007 for 1000 short texts, 10025 for 5000);
- ``DROP`` (:func:`drop_reads`) and ``ALTER TABLE`` (:func:`alter_reads`): the scans of
  ``sqlite_master`` of SQLite's nested statements;
- a write with ``RETURNING`` (:func:`returning_parts`, :func:`passes`; counted by
  ``durable._sql_reads``): the loops over temporary tables and the lookups its two passes add.

Measured with miniflare 4.20260426 (2026-12-07): tests/test_sql_rows_counted.py. Pure functions.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Any, Final

from ._sql_loops import JUMPS, Op, _integer_affinity, _opened, _quote, _rowid_read, _writes
from ._sql_rules import alter_kind, altered_table

_JUMPERS: Final = JUMPS | {"Jump"}
_COUNTED: Final = frozenset({
    "Rewind", "Last", "Sort", "SorterSort", "SeekGE", "SeekGT", "SeekLE", "SeekLT", "SeekRowid", "NotExists",
    "Next", "Prev", "SorterNext", "VNext", "Count",
})  # fmt: skip
_INDEX_NAME: Final = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?:(?:\"(?:[^\"]|\"\")*\"|\[[^\]]*\]|`(?:[^`]|``)*`|\w+)\s*\.\s*)?"
    r"(\"(?:[^\"]|\"\")*\"|\[[^\]]*\]|`(?:[^`]|``)*`|\w+)",
    re.IGNORECASE,
)


def multi_shape(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    """The ``join``, ``insub``, ``fed``, ``grouped`` or ``ordered`` shape of a program (see the module), or ``None``."""
    names = [op[1] for op in counted]
    if names == ["NotExists"]:
        return _values_fed(ops, counted)
    # (``ORDER BY id DESC``: the same loop backwards, from its ``Last``, each ``Prev``)
    backwards = [{"Last": "Rewind", "Prev": "Next"}.get(name, name) for name in names]
    if backwards == ["Rewind", "SeekRowid", "Next"] and _paired(counted[0], counted[2]):
        return _join(conn, ops, counted, tag)
    if backwards[:2] == ["Rewind", "Next"] and backwards[2:] == ["Rewind", "SeekRowid", "Next"]:
        # (the subquery's scan runs backwards too under ``PRAGMA reverse_unordered_selects``)
        paired = _paired(counted[0], counted[1]) and _paired(counted[2], counted[4])
        return _in_subquery(conn, ops, counted, tag) if paired else None
    if backwards == ["Rewind", "Next"] and _paired(counted[0], counted[1]):
        if any(op[1] == "Gosub" for op in ops):
            return _index_grouped(conn, ops, counted, tag)
        return _insert_select(conn, ops, counted, tag) if names == ["Rewind", "Next"] else None
    if names == ["Rewind", "Next", "SorterSort", "SorterNext"]:
        return _grouped(conn, ops, counted, tag)
    return None


def _paired(start: Op, step: Op) -> bool:
    return (start[1], step[1]) in (("Rewind", "Next"), ("Last", "Prev"))


def _grouped(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    """``("grouped", table)``: ``GROUP BY`` through a sorter fed by a full scan of one table with
    no test (no ``WHERE``), no ``LIMIT``: the table's rows (at least 1: its ``Rewind``), then the
    sorter's loop over as many (at least its ``SorterSort``), however the groups are output.
    ``("groupwhere", table)``: the same with a ``WHERE`` whose tests skip rows: the sorter's loop
    is over the rows it keeps (``durable._sql_reads`` counts them with the WHERE's text)."""
    scan, step, sort, sort_next = counted
    if step[2] != scan[2] or step[6] != 1 or sort_next[2] != sort[2] or not any(op[1] == "Gosub" for op in ops):
        return None
    if not scan[0] < step[3] <= step[0] < sort[0] < sort_next[3] <= sort_next[0] < sort[3]:
        return None
    if any(op[1] in ("OffsetLimit", "DecrJumpZero", "IfNotZero", "InitCoroutine", "OpenEphemeral") for op in ops):
        return None  # a LIMIT (its end leaves the sorter's loop), a subquery, a DISTINCT aggregate
    tests = [op for op in ops[scan[0] + 1 : step[0]] if op[1] in _JUMPERS]
    if any(op[1] == "Jump" or op[3] != step[0] for op in tests):
        return None  # not a WHERE's test, whose row is skipped (on to the scan's next row)
    inserts = [op for op in ops[step[3] : step[0]] if op[1] == "SorterInsert"]
    if len(inserts) != 1 or inserts[0][2] != sort[2] or not any(op[1] == "ResultRow" for op in ops):
        return None
    opened = _opened(conn, ops, scan[2], tag)
    # With a WHERE, the rows sorted are those it keeps: counted again from the statement's text.
    return None if opened is None else ("groupwhere" if tests else "grouped", opened[1])


def _index_grouped(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    """``("ordered", table)``: ``GROUP BY`` over a full scan of one table, or of an index on all
    its rows, in the grouped order (``GROUP BY b`` with ``b UNIQUE`` or an index on ``b``, ``GROUP
    BY id``), no sorter: the groups are output by subroutines as the scan goes, which count
    nothing, and the rowid lookups of an index's rows (``DeferredSeek``) count nothing either. No
    ``LIMIT`` (its end leaves the scan: 3 for ``LIMIT 2`` of 5 groups), no subquery, no ``DISTINCT``
    aggregate: the table's rows, at least 1 (workerd, miniflare 4.20260426: 1 on an empty table,
    5 for 5 rows in 2 or 5 groups, with or without ``WHERE`` / ``HAVING``)."""
    scan, step = counted
    if step[2] != scan[2] or step[6] != 1 or not scan[0] < step[3] <= step[0] < scan[3]:
        return None
    refused = ("OffsetLimit", "DecrJumpZero", "IfNotZero", "InitCoroutine", "OpenEphemeral", "SorterOpen")
    if any(op[1] in refused or op[1] in ("Insert", "Delete", "OpenWrite") for op in ops):
        return None
    if not any(op[1] == "ResultRow" for op in ops):
        return None
    last = len(ops) - 1
    for op in ops:
        name, addr, target = op[1], op[0], op[3]
        if name not in _JUMPERS or op is scan or op is step or name in ("Init", "Gosub", "Return"):
            continue
        if name == "Jump":
            targets = [t for t in (op[2], op[3], op[4]) if t]
            if any(t <= addr for t in targets) or (scan[0] < addr < step[0] and any(t > step[0] for t in targets)):
                return None
            continue
        if target <= addr and not (name == "Goto" and addr == last and target == 1):
            if not (addr > step[0] and ops[target][1] == "Return"):
                return None  # a loop of its own (HAVING's test: back to its subroutine's Return)
        if scan[0] < addr < step[0] and target > step[0] and name != "IfPos":
            return None  # a way out of the scan (IfPos: the abort flag a LIMIT would set)
    opened = _opened(conn, ops, scan[2], tag)
    return None if opened is None else ("ordered", opened[1])


def _insert_select(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    """``("fed", table)``: ``INSERT INTO c SELECT ... FROM t [WHERE ...]``, its SELECT a full
    scan of one table in a coroutine that feeds the INSERT's loop (each row yielded is inserted,
    which reads nothing more): the table's rows, at least 1."""
    scan, step = counted
    coroutines = [op for op in ops if op[1] == "InitCoroutine"]
    if len(coroutines) != 1 or any(op[1] in ("OpenEphemeral", "Gosub", "Return") for op in ops):
        return None
    body_start, body_end = coroutines[0][4], coroutines[0][3]
    if not body_start <= scan[0] < step[0] < body_end or step[2] != scan[2] or step[6] != 1:
        return None
    if not scan[0] < step[3] <= step[0] < scan[3]:
        return None
    feed = coroutines[0][2]
    inserts = [op for op in ops if op[1] == "Insert"]
    if len(inserts) != 1 or inserts[0][2] == scan[2] or inserts[0][0] < body_end:
        return None
    last = len(ops) - 1
    for op in ops:
        name, addr, target = op[1], op[0], op[3]
        if name not in _JUMPERS or op is scan or op is step or name == "Init" or (name == "Goto" and addr == last):
            continue
        if name == "InitCoroutine":
            continue
        if step[3] <= addr < step[0]:
            if name == "Yield" or (name != "Jump" and target == step[0]):
                continue  # a row fed to the INSERT, or a test: on to the next row
            return None
        if addr >= body_end and name == "Yield" and op[2] == feed:
            continue  # the INSERT's loop: the next row, or its end
        if addr >= body_end and name == "Goto" and ops[target][1] == "Yield" and ops[target][2] == feed:
            continue  # back for the next row
        if addr >= body_end and name != "Jump" and addr < target <= last:
            continue  # a constraint's check, forward within the INSERT's loop (nothing counted there)
        return None
    opened = _opened(conn, ops, scan[2], tag)
    return None if opened is None else ("fed", opened[1])


def multi_rows(
    conn: sqlite3.Connection, shape: tuple[Any, ...], tag: str, *, finished: bool, stale: bool
) -> int | None:
    """workerd's ``rowsRead`` for a statement of ``shape`` (from :func:`multi_shape`) run to its end."""
    if shape[0] == "fixed":
        return int(shape[1])  # (the write ran whole inside ``exec()``)
    if not finished or stale:
        return None  # read in part: the lookups so far are not known; written since: nor the rows
    if shape[0] in ("fed", "ordered"):
        return max(_count(conn, shape[1], tag), 1)
    if shape[0] == "grouped":
        return 2 * max(_count(conn, shape[1], tag), 1)
    if shape[0] == "join":
        _, table, column = shape
        rows = _count(conn, table, tag)
        keys = rows if column is None else _integer_keys(conn, table, column, tag)
        return max(rows, 1) + keys
    _, table, column = shape
    rows = _count(conn, table, tag)
    found = conn.execute(f'SELECT DISTINCT {column} FROM "main".{_quote(table)} -- {tag}')
    # the index's affinity (numeric) made '3' and 3.0 the value 3: one entry
    values = {_kept(_integer_affinity(row[0])) for row in found}
    integers = sum(1 for v in values if v[0] == 1 and isinstance(v[1], int))
    return max(rows, 1) + max(len(values), 1) + integers


def _kept(value: tuple[int, Any]) -> tuple[int, Any]:
    """``value`` (from ``_integer_affinity``) as kept to tell the distinct values apart: a long
    text or blob by its digest, so that a table of large values (``s || s``) is not held in memory
    whole while ``rows_read`` counts them."""
    kind, data = value
    if kind == 2 and len(data) > 64:
        return (4, hashlib.sha256(data.encode("utf-8", "surrogatepass")).digest())
    if kind == 3 and len(data) > 64:
        return (5, hashlib.sha256(data).digest())
    return value


def index_rows(conn: sqlite3.Connection, sql: str, written: int, tag: str) -> int | None:
    """workerd's ``rowsRead`` for ``sql``, a ``CREATE INDEX`` that created its index and wrote
    ``written`` rows (its ``sqlite_master`` row and one per entry), or ``None`` if unknown."""
    match = _INDEX_NAME.match(sql)
    if match is None or written < 1:
        return None
    name = _unquote(match.group(1))
    row = conn.execute(
        f"SELECT tbl_name FROM \"main\".sqlite_master WHERE type = 'index' AND name = ? -- {tag}", (name,)
    ).fetchone()
    if row is None:
        return None
    table, entries = str(row[0]), written - 1
    if entries == 0:
        appends = 0
    else:
        leaves = _leaf_pages(conn, name, tag)
        appends = min(entries, 2) if leaves is None or leaves <= 1 else 2 * leaves - 1
    return max(_count(conn, table, tag), 1) + max(entries, 1) + appends


def _leaf_pages(conn: sqlite3.Connection, index: str, tag: str) -> int | None:
    """The leaf pages of ``index``, or ``None`` where SQLite has no ``dbstat`` table."""
    try:
        row = conn.execute(
            f"SELECT count(*) FROM dbstat('main') WHERE name = ? AND pagetype = 'leaf' -- {tag}", (index,)
        ).fetchone()
    except sqlite3.Error:
        return None
    return int(row[0])


def _join(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    scan, seek, step = counted
    outer = scan[2]
    if step[2] != outer or seek[2] == outer:
        return None
    if not scan[0] < step[3] <= seek[0] < step[0] < scan[3]:
        return None
    if not _after(ops, scan, step, seek) or not _straight_outside(ops, scan, step):
        return None
    if any(op[1] in ("Insert", "Delete", "IdxDelete") for op in ops):
        return None  # (an UPDATE ... FROM: not measured)
    opened = _opened(conn, ops, outer, tag)
    inner = _opened(conn, ops, seek[2], tag)
    if opened is None or inner is None or inner[0] != "table":
        return None
    setter = _setter(ops, seek[0], seek[4])
    if setter is None or setter[2] != outer:
        return None
    if opened[0] == "index":
        # a scan of a covering index (``ORDER BY x.b``, an index on ``b``), not partial: its
        # entries are the table's rows, each looked up by the rowid it holds
        return ("join", opened[1], None) if setter[1] == "IdxRowid" else None
    if setter[1] == "Rowid":
        return ("join", opened[1], None)
    if setter[1] != "Column":
        return None
    column = _column(conn, opened[1], setter[3], tag)
    return None if column is None else ("join", opened[1], column)


def _in_subquery(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    fill, fill_next, loop, seek, step = counted
    eph = loop[2]
    if fill_next[2] != fill[2] or fill_next[6] != 1 or step[2] != eph or seek[2] in (eph, fill[2]):
        return None
    if not fill[0] < fill_next[3] <= fill_next[0] < loop[0] < step[3] <= seek[0] < step[0] < loop[3]:
        return None
    if [op[2] for op in ops if op[1] == "OpenEphemeral"] != [eph]:
        return None
    if any(op[1] in ("Insert", "Delete", "IdxDelete") for op in ops) or not any(
        op[1] == "ResultRow" and step[3] <= op[0] < step[0] for op in ops
    ):
        return None  # a SELECT's: workerd's SQLite makes such an UPDATE or DELETE two passes
    body = ops[fill_next[3] : fill_next[0]]
    inserts = [op for op in body if op[1] == "IdxInsert"]
    if len(inserts) != 1 or inserts[0][2] != eph or any(op[1] in _JUMPERS for op in body):
        return None
    record = next((op for op in reversed(body) if op[1] == "MakeRecord" and op[4] == inserts[0][3]), None)
    if record is None or record[3] != 1 or record[5] not in ("C", "D"):
        return None
    setter = _setter(ops, record[0], record[2])
    if setter is None:  # (what it is: _expression)
        return None
    key = _setter(ops, seek[0], seek[4])
    if key is None or key[1] != "Column" or key[2] != eph or key[3] != 0:
        return None
    for op in ops[step[3] : step[0]]:
        if op[1] in _JUMPERS and not (op[0] < op[3] <= step[0]):
            return None  # only on to the next value (a NULL value, the lookup's miss, a test)
    for op in ops:
        if op[1] not in _JUMPERS or fill[0] <= op[0] <= fill_next[0] or step[3] <= op[0] <= step[0]:
            continue
        if op[0] in (loop[0], len(ops) - 1) or op[1] == "Init" or (op[1] == "Once" and op[3] <= loop[0]):
            continue
        return None
    opened = _opened(conn, ops, fill[2], tag)
    if opened is None or opened[0] != "table" or _opened(conn, ops, seek[2], tag) is None:
        return None
    names = [str(row[1]) for row in conn.execute(f"PRAGMA main.table_info({_quote(opened[1])}) -- {tag}")]
    if "rowid" in (name.lower() for name in names):
        return None
    value = _expression(ops, (fill_next[3], record[0]), record[2], fill[2], names)
    return None if value is None else ("insub", opened[1], value)


_ARITHMETIC: Final = {"Add": "+", "Subtract": "-", "Multiply": "*", "Divide": "/", "Remainder": "%", "Concat": "||"}


def _expression(ops: list[Op], span: tuple[int, int], register: int, cursor: int, names: list[str]) -> str | None:
    """The SQL of the value ``register`` holds at ``span[1]``, computed inside ``span`` from the
    columns of ``cursor`` (named ``names``), constants and arithmetic (``id + 0``, ``d * 2``), or
    ``None``: something else (a function, a test)."""
    found = next((op for op in reversed(ops[span[0] : span[1]]) if _writes(op, register)), None)
    if found is None:  # a constant SQLite loads once, in the code the Init runs first
        found = next((op for op in ops if _writes(op, register)), None)
        if found is None or found[1] not in ("Integer", "Int64", "Real", "String8", "Null"):
            return None
    name, p1, p2 = found[1], found[2], found[3]
    if name == "RealAffinity":  # (SQL reads a REAL column's integer as a float too)
        return _expression(ops, (span[0], found[0]), register, cursor, names)
    if name == "Column" and p1 == cursor and 0 <= p2 < len(names):
        return _quote(names[p2])
    if name == "Rowid" and p1 == cursor:
        return "rowid"
    if name == "Integer":
        return str(int(p1))
    if name in ("Int64", "Real") and isinstance(found[5], (int, float, str)):
        return str(found[5])
    if name == "String8" and isinstance(found[5], str):
        return "'" + found[5].replace("'", "''") + "'"
    if name == "Null":
        return "NULL"
    if name in _ARITHMETIC:
        left = _expression(ops, (span[0], found[0]), p2, cursor, names)  # (P3 = P2 op P1)
        right = _expression(ops, (span[0], found[0]), p1, cursor, names)
        return None if left is None or right is None else f"({left} {_ARITHMETIC[name]} {right})"
    return None


def _after(ops: list[Op], scan: Op, step: Op, seek: Op) -> bool:
    """Whether the loop's body, before the lookup, has no jump, and after it jumps only forward
    within the body (a test, the lookup's miss) or back to just after the lookup (``LEFT JOIN``'s
    row of NULLs)."""
    for op in ops[step[3] : step[0]]:
        if op[1] not in _JUMPERS or op is seek:
            continue
        if op[1] == "IsNull" and op[0] < seek[0] and op[2] == seek[4] and _rowid_read(ops, op[0], op[2], scan[2]):
            continue  # (``id IN (SELECT id FROM u)``: a rowid is never NULL)
        if op[0] < seek[0] or op[1] == "Jump":
            return False
        if not seek[0] < op[3] <= step[0]:
            return False
    return True


def _straight_outside(ops: list[Op], scan: Op, step: Op) -> bool:
    """Whether nothing outside the loop jumps but the loop's start and the ``Init`` trampoline."""
    last = len(ops) - 1
    for op in ops:
        if op[1] not in _JUMPERS or step[3] <= op[0] <= step[0] or op[0] == scan[0]:
            continue
        if op[1] == "Init" or (op[1] == "Goto" and op[0] == last):
            continue
        if op[1] == "Once" and op[0] < op[3] <= scan[0]:
            continue  # (around an OpenRead before the loop)
        return False
    return True


def _setter(ops: list[Op], before: int, register: int) -> Op | None:
    """The instruction before ``before`` that last wrote ``register`` (the one before a
    ``RealAffinity``, which makes a REAL column's integer a float again, the same number)."""
    found = next((op for op in reversed(ops[:before]) if _writes(op, register)), None)
    if found is not None and found[1] == "RealAffinity":
        return _setter(ops, found[0], register)
    return found


def _column(conn: sqlite3.Connection, table: str, cid: int, tag: str) -> str | None:
    """The name of ``table``'s column ``cid`` as ``OP_Column`` numbers it, ``None`` if the table
    has generated or hidden columns (numbered otherwise in its records)."""
    rows = conn.execute(f"SELECT cid, name, hidden FROM pragma_table_xinfo(?, 'main') -- {tag}", (table,)).fetchall()
    if any(row[2] for row in rows):
        return None
    return next((str(row[1]) for row in rows if row[0] == cid), None)


def _integer_keys(conn: sqlite3.Connection, table: str, column: str, tag: str) -> int:
    """The rows of ``table`` whose ``column`` SQLite's rowid lookup reads as an integer."""
    source = f'FROM "main".{_quote(table)}'
    col = _quote(column)
    integers = int(conn.execute(f"SELECT count(*) {source} WHERE typeof({col}) = 'integer' -- {tag}").fetchone()[0])
    others = conn.execute(f"SELECT {col} {source} WHERE typeof({col}) IN ('real', 'text') -- {tag}")
    for (value,) in others:
        kind, number = _integer_affinity(value)
        integers += kind == 1 and type(number) is int
    return integers


def _count(conn: sqlite3.Connection, table: str, tag: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "main".{_quote(table)} -- {tag}').fetchone()[0])


def _unquote(name: str) -> str:
    if name[:1] == '"' and name[-1:] == '"':
        return name[1:-1].replace('""', '"')
    if name[:1] == "`" and name[-1:] == "`":
        return name[1:-1].replace("``", "`")
    if name[:1] == "[" and name[-1:] == "]":
        return name[1:-1]
    return name


def returning_parts(ops: list[Op]) -> tuple[int, int] | None:
    """The loops over temporary tables and the second-pass lookups (:func:`passes`) of a write
    with ``RETURNING``, its loop over the rows it returns left out, or ``None`` if its program is
    not a write's followed by that loop (around the program's only ``ResultRow``)."""
    halt = next((op[0] for op in ops if op[1] == "Halt"), len(ops))
    results = [op for op in ops if op[1] == "ResultRow"]
    if len(results) != 1 or any(op[1] in ("Last", "Prev", "VNext", "Count", "SorterSort") for op in ops):
        return None
    step = next((op for op in ops if op[1] == "Next" and op[3] <= results[0][0] < op[0]), None)
    if step is None:
        return None
    start = next((op for op in ops if op[1] == "Rewind" and op[2] == step[2] and op[0] < step[3]), None)
    if start is None or start[3] <= step[0] or any(op[1] in _COUNTED and op[0] > step[0] for op in ops):
        return None
    if not any(op[1] == "OpenEphemeral" and op[2] == step[2] and op[0] > halt for op in ops):
        return None  # (SQLite opens the RETURNING buffer in the code the Init runs first)
    return passes(ops[: start[0]])


def passes(ops: list[Op]) -> tuple[int, int]:
    """The loops of ``ops`` over temporary tables (a ``Rewind`` and its ``Next`` on an
    ``OpenEphemeral`` cursor) and the rowid lookups inside them or inside a ``RowSetRead`` loop:
    a write's second pass, and an ``IN`` list's loop."""
    ephemeral = {op[2] for op in ops if op[1] == "OpenEphemeral"}
    spans: list[tuple[int, int]] = []
    loops = 0
    for op in ops:
        if op[1] == "Next" and op[2] in ephemeral:
            start = next((o for o in ops if o[1] == "Rewind" and o[2] == op[2] and o[0] < op[3]), None)
            if start is not None:
                loops += 1
                spans.append((start[0], op[0]))
        elif op[1] == "RowSetRead":
            back = next((o for o in ops if o[1] == "Goto" and o[3] == op[0] and o[0] > op[0]), None)
            if back is not None:
                spans.append((op[0], back[0]))
    lookups = sum(
        1 for op in ops if op[1] in ("NotExists", "SeekRowid") and any(begin < op[0] < end for begin, end in spans)
    )
    return loops, lookups


def without_returning(sql: str) -> str | None:
    """``sql`` without its ``RETURNING`` clause, or ``None`` if it has none (outside strings,
    quoted names, comments and parentheses)."""
    if "returning" not in sql.lower():
        return None
    depth, i, size = 0, 0, len(sql)
    while i < size:
        ch = sql[i]
        if ch in "'\"`":
            end = sql.find(ch, i + 1)
            while end != -1 and sql[end + 1 : end + 2] == ch:
                end = sql.find(ch, end + 2)
            if end == -1:
                return None
            i = end + 1
            continue
        if ch == "[":
            end = sql.find("]", i + 1)
            if end == -1:
                return None
            i = end + 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = size if end == -1 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = size if end == -1 else end + 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif (
            depth == 0
            and ch in "rR"
            and sql[i : i + 9].lower() == "returning"
            and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_$"))
            and not (sql[i + 9 : i + 10].isalnum() or sql[i + 9 : i + 10] in ("_", "$"))
        ):
            return sql[:i].rstrip()
        i += 1
    return None


_NAME: Final = r"(\"(?:[^\"]|\"\")*\"|\[[^\]]*\]|`(?:[^`]|``)*`|\w+)"
DROP: Final = re.compile(
    rf"\s*DROP\s+(TABLE|INDEX|VIEW|TRIGGER)\s+(?:IF\s+EXISTS\s+)?(?:{_NAME}\s*\.\s*)?{_NAME}\s*;?\s*$", re.IGNORECASE
)
"""A ``DROP`` statement: what it drops, the schema named if any, the name."""
_QUOTED: Final = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\[[^\]]*\]|`(?:[^`]|``)*`|--[^\n]*|/\*.*?(?:\*/|$)", re.S
)
"""A string, a quoted name or a comment: what a column's definition says in them tests nothing."""
_ADD_COLUMN: Final = re.compile(rf"\s*ALTER\s+TABLE\s+(?:{_NAME}\s*\.\s*)?{_NAME}\s+ADD\s", re.IGNORECASE)


def drop_reads(conn: sqlite3.Connection, sql: str, tag: str) -> int | None:
    """workerd's ``rowsRead`` for ``sql``, a ``DROP``, counted before it runs (what it drops is
    gone after), or ``None`` if unknown. Each of SQLite's nested ``DELETE``s from
    ``sqlite_master`` scans it as it then is (one per trigger dropped, then one for the rest),
    a table's AUTOINCREMENT row is deleted by a scan of ``sqlite_sequence``, and each b-tree
    dropped (the table's, its indexes') counts 1. workerd (miniflare 4.20260426): 2 for a table
    alone in the schema, 7 for one with two indexes beside another table, 10 for one with two
    triggers beside another table, 5 for an index of four schema rows, 4 for a trigger of four.
    With ``ANALYZE``'s ``sqlite_stat1``, a DROP INDEX or DROP TABLE also scans it (its rows, at
    least 1): 8 for an index of five schema rows with 2 statistics rows, 9 of seven with none."""
    match = DROP.match(sql)
    if match is None or (match.group(2) is not None and _unquote(match.group(2)).lower() != "main"):
        return None
    kind, name = match.group(1).lower(), _unquote(match.group(3)).lower()
    rows = conn.execute(f'SELECT type, name, tbl_name, sql FROM "main".sqlite_master -- {tag}').fetchall()
    if any("REFERENCES" in _QUOTED.sub(" ", str(row[3])).upper() for row in rows):
        return None  # a table's implicit DELETE of its rows, for foreign keys
    target = [row for row in rows if row[0] == kind and str(row[1]).lower() == name]
    if len(target) != 1:
        return None  # (IF EXISTS of nothing: no program to count)
    schema = len(rows)
    stats = {str(row[1]).lower() for row in rows if str(row[1]).lower().startswith("sqlite_stat")}
    if stats - {"sqlite_stat1"}:
        return None  # (sqlite_stat4, of a build with STAT4: not measured)
    if stats and kind in ("index", "table"):
        # SQLite deletes the statistics of what it drops by a scan of sqlite_stat1 (workerd: its
        # rows, at least 1, for a DROP INDEX or DROP TABLE, none for a view or a trigger)
        scanned = conn.execute(f'SELECT count(*) FROM "main".sqlite_stat1 -- {tag}').fetchone()[0]
        stat_scan = max(int(scanned), 1)
    else:
        stat_scan = 0
    if kind == "index":
        return schema + 1 + stat_scan
    if kind == "trigger":
        return schema
    created = _QUOTED.sub(" ", str(target[0][3])).upper()  # (a DEFAULT 'AUTOINCREMENT' is none)
    if "VIRTUAL" in created.split("(", 1)[0]:
        return None  # a virtual table's xDestroy runs statements of its own
    owner = name
    triggers = sum(1 for row in rows if row[0] == "trigger" and str(row[2]).lower() == owner)
    indexes = sum(1 for row in rows if row[0] == "index" and str(row[2]).lower() == owner)
    count = sum(schema - j for j in range(triggers)) + schema - triggers
    if kind == "table":
        count += 1 + indexes
        if "AUTOINCREMENT" in created:
            sequence = conn.execute(f'SELECT count(*) FROM "main".sqlite_sequence -- {tag}').fetchone()[0]
            count += max(int(sequence), 1)
    return count + stat_scan


def alter_reads(conn: sqlite3.Connection, sql: str, written: int, tag: str) -> int | None:
    """workerd's ``rowsRead`` for ``sql``, an ``ALTER TABLE`` that ran and wrote ``written``
    rows (its ``rows_written``), or ``None`` if unknown. ADD COLUMN: :func:`add_column_reads`.
    The others scan ``sqlite_master`` (N rows) in SQLite's nested statements, and each row their
    UPDATEs rewrite counts twice (its scan's step and its lookup), as workerd counts (miniflare
    4.20260426, on schemas of 1 to 7 rows: tables, indexes, triggers, views, autoindexes,
    AUTOINCREMENT, statistics, an FTS5 table beside the one altered):

    - RENAME TO: 3 N + 2 per ``sqlite_master`` row written + 3, and, when ``sqlite_sequence``
      exists, its scan (its rows, at least 1), 1 more, and 1 per row of it renamed;
    - RENAME COLUMN: 4 N + 2 per row written + 6;
    - DROP COLUMN: 4 N + 2 per ``sqlite_master`` row written but the table's + 6, and the table's
      rows, rewritten (at least 1: its scan's ``Rewind``).

    A virtual table altered (its module's own statements run) is unknown."""
    kind, new = alter_kind(sql)
    if kind == "add":
        return add_column_reads(conn, sql, tag)
    schema, table = altered_table(sql)
    if schema is not None and schema.lower() != "main":
        return None
    name = new if kind == "rename" and new is not None else table
    if name is None:
        return None

    def count(query: str, *args: Any) -> int:
        return int(conn.execute(f"{query} -- {tag}", args).fetchone()[0])

    target = conn.execute(
        f"SELECT sql FROM \"main\".sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE -- {tag}", (name,)
    ).fetchone()
    if target is None or str(target[0]).lstrip()[:14].upper().startswith("CREATE VIRTUAL"):
        return None
    rows = count('SELECT count(*) FROM "main".sqlite_master')
    if kind == "column":
        return 4 * rows + 2 * written + 6
    if kind == "drop":
        quoted = name.replace('"', '""')
        stored = count(f'SELECT count(*) FROM "main"."{quoted}"')
        return 4 * rows + 2 * (written - 1 - stored) + max(stored, 1) + 6
    reads = 3 * rows + 2 * written + 3
    if count("SELECT count(*) FROM \"main\".sqlite_master WHERE name = 'sqlite_sequence'"):
        sequences = count('SELECT count(*) FROM "main".sqlite_sequence')
        renamed = count('SELECT count(*) FROM "main".sqlite_sequence WHERE name = ?', name)
        reads += max(sequences, 1) + 1 - renamed  # (written counts the renamed rows: once each here)
    return reads


def add_column_reads(conn: sqlite3.Connection, sql: str, tag: str) -> int | None:
    """workerd's ``rowsRead`` for ``sql`` if it is an ``ALTER TABLE ... ADD COLUMN`` that ran:
    SQLite's ``UPDATE`` of ``sqlite_master`` (a scan of its rows, the row's lookup and one more:
    miniflare 4.20260426 reads 3, 4 and 5 with 1, 2 and 3 schema rows, whatever the table's), and
    a ``CHECK`` constraint's ``pragma_quick_check`` 1 more; ``None`` for what runs other checks
    (``NOT NULL`` without a default, a generated column, ``REFERENCES``) or for anything else."""
    match = _ADD_COLUMN.match(sql)
    if match is None or (match.group(1) is not None and _unquote(match.group(1)).lower() != "main"):
        return None
    definition = _QUOTED.sub(" ", sql[match.end() :]).upper()  # (a DEFAULT 'CHECK' is no CHECK)
    if re.search(r"\bREFERENCES\b|\bGENERATED\b|\bAS\s*\(", definition):
        return None
    if re.search(r"\bNOT\s+NULL\b", definition) and not re.search(r"\bDEFAULT\b", definition):
        return None
    strict = conn.execute(
        f"SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ? COLLATE NOCASE -- {tag}",
        (_unquote(match.group(2)),),
    ).fetchone()
    if strict is None or strict[0]:
        return None  # (a STRICT table's new column is checked too)
    schema = int(conn.execute(f'SELECT count(*) FROM "main".sqlite_master -- {tag}').fetchone()[0])
    return schema + 2 + (1 if re.search(r"\bCHECK\b", definition) else 0)


def _values_fed(ops: list[Op], counted: list[Op]) -> tuple[Any, ...] | None:
    """``("fixed", rows)``: ``INSERT INTO t (id, ...) VALUES (...), (...)``, a multi-row ``VALUES``
    in a coroutine (straight code, one ``Yield`` per row) feeding the INSERT's loop, whose one
    counted instruction is the rowid lookup of the row's key (``MustBeInt`` before it: an integer,
    or an error), reached once per row whatever the row: one per row (miniflare 4.20260426: 2 for
    two rows, ``OR IGNORE`` and ``OR REPLACE`` too)."""
    seek = counted[0]
    coroutines = [op for op in ops if op[1] == "InitCoroutine"]
    if len(coroutines) != 1 or any(op[1] in ("OpenEphemeral", "Gosub", "Return", "Jump") for op in ops):
        return None
    feed, body_start, body_end = coroutines[0][2], coroutines[0][4], coroutines[0][3]
    rows = 0
    for op in ops[body_start:body_end]:
        if op[1] == "Yield" and op[2] == feed and not op[3]:
            rows += 1
        elif op[1] in _JUMPERS or op[1] in ("InitCoroutine", "Gosub", "Return"):
            return None
        elif op[1] == "EndCoroutine" and op[0] != body_end - 1:
            return None
    consumer = [op for op in ops if op[1] == "Yield" and op[0] >= body_end]
    if rows < 2 or len(consumer) != 1 or consumer[0][2] != feed or not consumer[0][0] < seek[0] < consumer[0][3]:
        return None
    loop, done = consumer[0][0], consumer[0][3]
    if not any(op[1] == "MustBeInt" and op[2] == seek[4] for op in ops[loop : seek[0]]):
        return None
    if any(
        _writes(op, seek[4])
        for op in ops[
            next(op[0] for op in ops[loop : seek[0]] if op[1] == "MustBeInt" and op[2] == seek[4]) + 1 : seek[0]
        ]
    ):
        return None
    last = len(ops) - 1
    for op in ops:
        name, addr, target = op[1], op[0], op[3]
        if name not in _JUMPERS or name == "Init" or (name == "Goto" and addr == last) or op is consumer[0]:
            continue
        if not target and name != "Goto":
            continue  # (``MustBeInt`` with no P2: an error, not a jump)
        if body_end <= addr < done:
            if name == "Goto" and target == loop:
                continue  # back for the next row
            if target <= addr and not (name == "Goto" and target == loop):
                return None
            if addr < seek[0] < target:
                return None  # the lookup may be jumped over
            if addr != seek[0] and target > done:
                return None
            continue
        if addr < body_end or addr < done:
            return None
        if not (name == "Goto" and target < body_end) and not addr < target <= last:
            return None  # (the Init code's jump back; forward after the loop: nothing counted there)
    return ("fixed", rows)


_COUNTER_LOOKUP: Final = frozenset({"Column", "Ne", "Rowid", "AddImm", "Copy", "Goto"})
"""The instructions of the loop over ``sqlite_sequence`` that finds an AUTOINCREMENT counter."""


def autoincrement_reads(
    conn: sqlite3.Connection, program: list[tuple[Any, ...]], tag: str
) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
    """``program`` with the scans of ``sqlite_sequence`` that an INSERT into an ``AUTOINCREMENT``
    table runs first (to find the table's counter: a loop that stops at its row) made ``Noop``s,
    and the tables whose rows they look for (none: ``program`` as it is)."""
    if not any(row[1] == "OpenRead" for row in program):
        return program, ()
    root = conn.execute(f"SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_sequence' -- {tag}").fetchone()
    if root is None:
        return program, ()
    out = list(program)
    names: list[str] = []
    for row in program:
        if row[1] != "OpenRead" or row[3] != root[0] or row[4] != 0:
            continue
        cursor, opened = row[2], row[0]
        start = next((op for op in program[opened + 1 :] if op[1] in _COUNTED or op[1] in _JUMPERS), None)
        if start is None or start[1] != "Rewind" or start[2] != cursor or start[3] < start[0] + 2:
            return program, ()
        step = program[start[3] - 1]
        if step[1] != "Next" or step[2] != cursor or step[3] != start[0] + 1:
            return program, ()
        loaded = [op for op in program[opened + 1 : start[0]] if op[1] == "String8"]
        body = program[start[0] + 1 : step[0]]
        if len(loaded) != 1 or any(op[1] not in _COUNTER_LOOKUP for op in body):
            return program, ()  # (a statement of the application's reading sqlite_sequence)
        if any(op[1] in _JUMPERS and not start[0] < op[3] <= start[3] + 1 for op in body):
            return program, ()  # (a jump out of the loop lands just past it)
        names.append(str(loaded[0][5]))
        for addr in range(opened, step[0] + 1):
            out[addr] = (addr, "Noop", 0, 0, 0, None, 0, *program[addr][7:])
    for row in program if names else ():
        if row[1] == "OpenWrite" and row[3] == root[0] and row[4] == 0:
            # its update of the counter, after the INSERT (nothing counted: its key is the row's)
            close = next((op for op in program[row[0] :] if op[1] == "Close" and op[2] == row[2]), None)
            if close is None or any(op[1] in _COUNTED for op in program[row[0] : close[0]]):
                return program, ()
            for addr in range(row[0], close[0] + 1):
                out[addr] = (addr, "Noop", 0, 0, 0, None, 0, *program[addr][7:])
    return out, tuple(names)


def sequence_reads(conn: sqlite3.Connection, names: tuple[str, ...], tag: str) -> int | None:
    """What the scans of ``sqlite_sequence`` (:func:`autoincrement_reads`) read, from the table as
    the INSERT left it: the rows up to the table's row, where the loop stopped; all of them (at
    least 1) if it has none. A row last of several may be the one the INSERT added (its scan read
    the rows before it, at least 1) or one it found there: ``None``."""
    found = [str(row[0]) for row in conn.execute(f"SELECT name FROM sqlite_sequence ORDER BY rowid -- {tag}")]
    total = 0
    for name in names:
        if name not in found:
            total += max(len(found), 1)
            continue
        position = found.index(name) + 1
        if position == len(found) and position > 1:
            return None
        total += position
    return total
