"""``rows_read`` for loops whose count follows from the rows they produced and one look at the data.

workerd counts a cursor's every landing: the seek or ``Rewind``/``Last`` that starts a loop (an
index seek that must find an equal key and finds none counts 0) and each ``Next``/``Prev`` that
lands on an entry, including the one past a range's end that stops the loop (see
``durable._sql_reads``). So a loop of one cursor over a key range that produces a row (or writes
one) per entry in the range reads the rows produced, plus 1 if an entry lies past the range's end,
and at least the 1 of its start. This module recognises four loops in a statement's program:

- ``range``: one cursor over a rowid or index range (``WHERE id < 3``, ``WHERE a = ?`` on an
  index, ``BETWEEN``, ``ORDER BY a DESC``), each entry producing a row (a ``SELECT``) or
  writing one (an ``UPDATE`` or ``DELETE``), no other test in the loop; a ``SELECT``'s may have
  a ``LIMIT`` (no ``OFFSET``), which ends the loop without a further step once reached. Whether
  an entry lies past the end is asked of the database with a query of the same comparison;
- ``in``: rowid lookups of the values of an ``IN (...)`` list, which SQLite keeps in a temporary
  index: one per distinct value (its ``Rewind``, then a ``Next`` per further value), plus one
  per value that is an integer (a lookup, found or not; SQLite skips it for others);
- ``limited``: a full scan with ``LIMIT``/``OFFSET`` and no ``WHERE``: the rows up to
  ``OFFSET + LIMIT``, at least 1;
- ``range`` fed to a sorter (``WHERE a = ? ORDER BY b``, no LIMIT): the range's count, then one
  per row sorted (its entries, or the rows returned if another test filtered them), at least 1;
- ``sorted``: a full scan fed to a sorter (``ORDER BY`` on no index): the table's rows, then one
  per row sorted (those past a ``LIMIT`` are looked at once each), at least 1 each.

Measured with miniflare 4 (2026-12-07): tests/test_sql_rows_counted.py. Pure functions.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

Op = tuple[Any, ...]
"""``(address, opcode, p1, p2, p3, p4, p5)`` of an ``EXPLAIN`` row."""

_STARTS: Final = {
    "SeekGE": "Next",
    "SeekGT": "Next",
    "Rewind": "Next",
    "SeekLE": "Prev",
    "SeekLT": "Prev",
    "Last": "Prev",
}
_ENDS: Final = {"IdxGT": ">", "IdxGE": ">=", "IdxLT": "<", "IdxLE": "<=", "Gt": ">", "Ge": ">=", "Lt": "<", "Le": "<="}
_SEEKS: Final = {"SeekGE": ">=", "SeekGT": ">", "SeekLE": "<=", "SeekLT": "<"}
_LOADERS: Final = frozenset({"Integer", "Int64", "Real", "String8", "Null", "Variable"})
_WRITE_P2: Final = frozenset({
    "Integer", "Int64", "Real", "String8", "String", "Variable", "Blob", "Rowid", "IdxRowid", "SCopy", "IntCopy",
    "Sequence", "NewRowid", "Count", "ReadCookie", "OffsetLimit", "RowData", "SorterData",
})  # fmt: skip
_WRITE_P3: Final = frozenset({
    "Column", "Function", "PureFunc", "Add", "Subtract", "Multiply", "Divide", "Remainder", "Concat", "BitAnd",
    "BitOr", "ShiftLeft", "ShiftRight", "MakeRecord",
})  # fmt: skip
_WRITE_P1: Final = frozenset({"AddImm", "SoftNull", "Cast", "RealAffinity", "AggFinal", "AggValue"})
_LIMIT_JUMPS: Final = frozenset({"IfPos", "DecrJumpZero"})
_OPFLAG_SEEKEQ: Final = 0x02
_NO_ROW: Final = object()


def loop_shape(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    """The ``range``, ``limited`` or ``sorted`` shape of a program (see the module), or ``None``."""
    if len(counted) == 3:
        return _in_list(ops, counted)
    if any(op[1] in ("InitCoroutine", "Yield", "Gosub", "Return", "BeginSubrtn") for op in ops):
        return None
    if len(counted) == 2:
        if any(op[1] in ("OpenEphemeral", "SorterOpen", "OpenPseudo") for op in ops):
            return None
        return _range(conn, ops, counted, tag) or _limited(conn, ops, counted, tag)
    if len(counted) == 4 and counted[0][1] in _SEEKS:
        return _range_sorted(conn, ops, counted, tag)
    if len(counted) in (4, 5):
        return _sorted(conn, ops, counted, tag)
    return None


def _range_sorted(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    """A range (``_range``) whose entries go to a sorter (``WHERE a = ? ORDER BY b``, no LIMIT):
    ``("range", ...)`` with its sorter's loop, which steps once per row sorted."""
    start, step, sort, sort_next = counted
    if [sort[1], sort_next[1]] != ["SorterSort", "SorterNext"] or sort_next[2] != sort[2]:
        return None
    if not step[0] < sort[0] < sort_next[3] <= sort_next[0] or sort[3] <= sort_next[0]:
        return None
    if any(
        op[1] in ("OffsetLimit", "DecrJumpZero", "IfNotZero") or (op[1] in ("IdxLE", "IdxLT") and op[2] == sort[2])
        for op in ops
    ):
        return None  # a LIMIT: the sorter keeps its rows only
    results = [op for op in ops if op[1] == "ResultRow"]
    if len(results) != 1 or not sort_next[3] <= results[0][0] < sort_next[0]:
        return None
    inserts = [op for op in ops[step[3] : step[0]] if op[1] == "SorterInsert"]
    if len(inserts) != 1 or inserts[0][2] != sort[2]:
        return None
    for op in ops[sort[0] + 1 : sort_next[0]]:
        if op[1] in _JUMPERS:
            return None
    return _range(conn, ops, [start, step], tag, sorter=(sort[0], sort_next[0]))


def loop_rows(
    conn: sqlite3.Connection,
    shape: tuple[Any, ...],
    params: tuple[Any, ...],
    tag: str,
    *,
    returned: int,
    finished: bool,
    changes: int,
    stale: bool,
    sql: str = "",
) -> int | None:
    """workerd's ``rowsRead`` for a statement of ``shape`` (from :func:`loop_shape`); ``sql``:
    its text, counted again for a range read in part (see ``_range_rows``)."""
    kind = shape[0]
    if kind == "in":
        # Read in part: the values looked up so far are not known (a miss returns no row).
        return _in_rows(shape, params) if finished else None
    if kind == "range":
        return _range_rows(conn, shape, params, tag, returned, finished, changes, stale, sql)
    limit = _whole(_value(shape[2], params))
    offset = _whole(_value(shape[3], params))
    if limit is _NO_ROW or offset is _NO_ROW:
        return None
    if limit == 0:
        return 0
    if stale or (not finished and (kind == "limited" or limit is not None)):
        return None
    table_rows = _count(conn, shape[1], tag)
    if kind == "limited":
        visited = table_rows if limit is None or limit < 0 else min(table_rows, max(offset or 0, 0) + limit)
        return max(visited, 1)
    if not finished:
        if shape[4]:
            return None  # the rows sorted are not known before the end
        # the sorter's rows stepped to: those read and the one waiting, unless the last was read
        return max(table_rows, 1) + max(min(returned + 1, table_rows), 1)
    if shape[4]:  # filtered: the rows sorted are those returned (no LIMIT: see _sorted)
        return max(table_rows, 1) + max(returned, 1)
    return 2 * max(table_rows, 1)


def _range_rows(
    conn: sqlite3.Connection,
    shape: tuple[Any, ...],
    params: tuple[Any, ...],
    tag: str,
    returned: int,
    finished: bool,
    changes: int,
    stale: bool,
    sql: str,
) -> int | None:
    _, dml, eq_only, guards, rowid_key, beyond, keys, limit_source, inside, whole, deletes, sorted_by = shape
    limit = None if limit_source is None else _whole(_value(limit_source, params))
    if limit is _NO_ROW:
        return None
    if limit == 0:
        return 0  # LIMIT 0 skips the loop
    if sorted_by is not None:
        # Then the sorter's loop: one step per row sorted (at least its SorterSort), those read
        # and the one waiting while the rows are read. The range's entries, or with another test
        # the rows it let through: the rows returned, known once all are.
        if sorted_by and not finished:
            return None
        skipped = _skipped(guards, rowid_key, params)
        if skipped is None:
            return None
        if skipped is _AFTER_SEEK:
            return 2  # the seek, then the sorter's SorterSort (miniflare 4.20260426: 2)
        if skipped:
            return 1  # the range skipped (a NULL key), the sorter's SorterSort still counts
        sorted_rows = returned if sorted_by else _inside_rows(conn, inside, params, tag)
        if sorted_rows is None or stale:
            return None
        sorting = max(sorted_rows if finished else min(returned + 1, sorted_rows), 1)
        inside_only = _range_rows(conn, (*shape[:10], False, None), params, tag, returned, True, changes, stale, sql)
        return None if inside_only is None else inside_only + sorting
    skipped = _skipped(guards, rowid_key, params)
    if skipped is None:
        return None
    if skipped is _AFTER_SEEK:
        return 1  # the other bound NULL: the seek, then out (miniflare 4.20260426: 1, on 0 or 5 rows)
    if skipped:
        return 0  # an IsNull test, or a rowid seek's key that is no number: the loop jumped past
    if inside is not None:
        # An aggregate (its loop ran whole on the statement's first step), or a loop with another
        # test: it stepped over the range's entries, whichever rows it produced.
        if stale or not (whole or dml or finished):
            return None  # a SELECT with a test, read in part: the entries stepped over so far
        produced = _inside_rows(conn, inside, params, tag)
        if produced is None or (deletes and changes < 0):
            return None
        if deletes:
            produced += changes  # the entries it deleted were in the range
        dml, returned, finished = False, produced, True
    if not dml and not finished:
        if limit is not None and 0 < limit <= returned:
            return returned  # no row waits past the LIMIT's last
        if stale:
            return returned + 1  # the rows stepped to: those read and the one waiting
        total = _statement_rows(conn, sql, params, tag)
        if total is None:
            return None
        if returned < total:
            return returned + 1  # the rows stepped to: those read and the one waiting
        # Every row of the range read: what waits is the entry past its end, if there is one
        # (counted below, as for a range run to its end). workerd (miniflare 4.20260426,
        # 2026-12-07): four rows of ``id > 1`` on ids 1-5 read 4, of ``id > 1 ORDER BY id DESC``
        # 5 (id 1 waits); five of ``id < 6`` 5, four of ``id < 5`` 5.
    produced = changes if dml else returned
    if produced < 0:
        return None
    if eq_only and produced == 0:
        return 0  # the seek found no equal key: SQLite counts it only when it does
    if limit is not None and 0 < limit <= produced:
        return produced  # the LIMIT stopped the loop before a further step
    past = 0
    if beyond is not None:
        if stale:
            return None
        values = [_value(k, params) for k in keys]
        if any(v is _NO_ROW for v in values):
            return None
        query = beyond[1] if beyond[1] is not None and all(v is None for v in values) else beyond[0]
        if query is None:
            return None
        bound = [] if query is beyond[1] else values
        past = int(conn.execute(f"{query} -- {tag}", bound).fetchone()[0])
    return max(produced + past, 1)


_AFTER_SEEK: Final = "after the seek"
"""``_skipped``'s answer for a loop left after its seek (the range's other bound is NULL)."""


def _skipped(guards: tuple[Any, ...], rowid_key: Any, params: tuple[Any, ...]) -> bool | str | None:
    """Whether a range's loop is jumped past with ``params`` (``None`` if unknown): an ``IsNull``
    test of a NULL key, or a rowid seek whose key is no number (a NULL, a text, a blob).
    ``("late", source)``: a test of the other bound, after the seek: ``_AFTER_SEEK`` if it is
    NULL (the loop left once the seek, which counts whatever it lands on, ran)."""
    late = False
    for source in guards:
        if source[0] == "late":
            late = late or _value(source[1], params) is None
        elif _value(source, params) is None:
            return True
    if late:
        return _AFTER_SEEK
    if rowid_key is None:
        return False
    key = _value(rowid_key, params)
    return None if key is _NO_ROW else not _numeric(key)


def _inside_rows(conn: sqlite3.Connection, inside: tuple[Any, ...], params: tuple[Any, ...], tag: str) -> int | None:
    """The entries of an aggregate's range (``_inside``), ``None`` if unknown. A NULL key stands
    for the NULLs' end of the index (they sort first): ``a < 3`` starts past them."""
    source, column, first, last = inside
    terms: list[str] = []
    values: list[Any] = []
    for which, bound in (("start", first), ("end", last)):
        if bound is None:
            continue
        comparison, key = bound
        value = _value(key, params)
        if value is _NO_ROW:
            return None
        if value is not None:
            terms.append(f"{column} {comparison} ?" if which == "start" else f"NOT ({column} {comparison} ?)")
            values.append(value)
        elif (which, comparison) == ("start", ">"):
            terms.append(f"{column} IS NOT NULL")
        elif (which, comparison) == ("end", "<="):
            terms.append(f"{column} IS NOT NULL")
        elif (which, comparison) not in (("start", ">="), ("end", "<")):
            return None
    where = " AND ".join(terms) if terms else "1"
    return int(conn.execute(f"SELECT count(*) {source} WHERE {where} -- {tag}", values).fetchone()[0])


def _statement_rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], tag: str) -> int | None:
    """How many rows ``sql``, a ``SELECT`` of a range (nothing else tested in its loop), returns
    with ``params`` now, or ``None`` if that cannot be asked."""
    text = sql.strip().rstrip(";")
    if not text:
        return None
    try:
        return int(conn.execute(f"SELECT count(*) FROM (\n{text}\n) -- {tag}", params).fetchone()[0])
    except (sqlite3.Error, sqlite3.Warning, ValueError, TypeError):
        return None


def _range(
    conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str, *, sorter: tuple[int, int] | None = None
) -> tuple[Any, ...] | None:
    """``sorter``: the addresses of the ``SorterSort`` and ``SorterNext`` of the loop over the
    rows the range fed to a sorter (checked by ``_range_sorted``), whose jumps are not this loop's."""
    start, step = counted
    cursor = start[2]
    if start[1] not in _STARTS or step[1] != _STARTS[start[1]] or step[2] != cursor:
        return None
    if not (start[0] < step[3] <= step[0] and start[3] > step[0]):
        return None
    body = ops[step[3] : step[0]]
    rows = [op for op in body if op[1] == "ResultRow"]
    writes = [op for op in body if op[1] in ("Delete", "Insert")]
    after = [op for op in ops if op[1] == "ResultRow" and not step[3] <= op[0] < step[0]]
    aggregate = not rows and not writes and any(op[1] in ("AggStep", "AggStep1") for op in body)
    if sorter is not None:
        aggregate = False
    elif after and not (aggregate and len(after) == 1 and after[0][0] > step[0]):
        return None  # (an aggregate's one row comes after its loop)
    if aggregate or sorter is not None:
        dml = False
    elif len(rows) == 1 and not writes:
        dml = False
    elif not rows and writes and all(op[1] in ("Delete", "Insert") for op in writes):
        dml = True
    else:
        return None
    opened = _opened(conn, ops, cursor, tag)
    if opened is None:
        return None
    kind, table, index = opened
    limits = _limits(ops)
    if limits is None or limits[1] is not None or ((dml or aggregate) and limits[0] is not None):
        return None  # (a LIMIT is taken for a SELECT's, with no OFFSET)
    end: Op | None = None
    guards: list[Any] = []
    filtered = False
    for op in ops:
        addr, name, p1, p2 = op[0], op[1], op[2], op[3]
        if addr in (start[0], step[0]) or name not in _JUMPERS:
            continue
        if sorter is not None and sorter[0] <= addr <= sorter[1]:
            continue
        if name == "Init" or (name == "Goto" and addr == len(ops) - 1 and p2 == 1):
            continue
        if limits[0] is not None and addr < start[0] and _before_loop(op, limits):
            continue  # LIMIT 0: nothing read (_range_rows)
        if step[3] <= addr < step[0]:
            if limits[0] is not None and name == "DecrJumpZero" and p1 == limits[2] and p2 >= step[0]:
                continue  # the LIMIT reached: out of the loop without a further step
            if end is None and addr < step[3] + 3 and name in _ENDS and p2 == start[3]:
                end = op
                continue
            if name == "IsNull" and dml and _rowid_read(ops, addr, p1):
                continue  # an UPDATE's guard on the rowid it just read: never taken
            if _opens_once(ops, op):
                continue
            if name != "Jump" and p2 == step[0]:
                filtered = True  # another test: on to the next entry (the steps are the same)
                continue
            if dml and name != "Jump" and addr < p2 <= min(w[0] for w in writes):
                continue  # a constraint's check (NoConflict of a UNIQUE index, CHECK): on to the write
            return None
        if addr < start[0] and name == "IsNull" and p2 >= step[0]:
            guards.append(_source(ops, p1, addr))
            continue
        if start[0] < addr < step[3] and name == "IsNull" and p2 >= step[0]:
            # The range's other bound, bound to a parameter, tested once the seek ran: when it
            # is NULL, the loop is left after a seek whose count is not known here (_skipped).
            late = _source(ops, p1, addr)
            guards.append(None if late is None else ("late", late))
            continue
        return None
    if any(g is None for g in guards):
        return None
    open_flags = next(op[6] for op in ops if op[1] in ("OpenRead", "OpenWrite") and op[2] == cursor)
    eq_only = bool(kind == "index" and open_flags & _OPFLAG_SEEKEQ and start[1] in ("SeekGE", "SeekLE"))
    rowid_key = None
    if kind == "table" and start[1].startswith("Seek"):
        rowid_key = _source(ops, start[4], start[0])
        if rowid_key is None:
            return None
    beyond: tuple[str | None, str | None] | None = None
    keys: list[Any] = []
    if end is not None:
        made = _beyond(conn, ops, end, kind, table, index, cursor, step[1], tag)
        if made is None:
            return None
        beyond, keys = made
    inside = None
    if aggregate or filtered or sorter is not None:
        if filtered and limits[0] is not None:
            return None  # where the LIMIT stops the loop depends on the test
        inside = _inside(conn, ops, start, end, kind, table, index, tag)
        if inside is None:
            return None
    deletes = dml and not any(op[1] == "Insert" for op in writes)  # (the rows are gone when counted)
    shape = ("range", dml, eq_only, tuple(guards), rowid_key, beyond, tuple(keys), limits[0], inside, aggregate)
    return (*shape, deletes, None if sorter is None else filtered)


def _inside(
    conn: sqlite3.Connection,
    ops: list[Op],
    start: Op,
    end: Op | None,
    kind: str,
    table: str,
    index: str | None,
    tag: str,
) -> tuple[str, str, tuple[str, Any] | None, tuple[str, Any] | None] | None:
    """What counts a range's entries (an aggregate's loop produces no row to count): the table,
    the column compared (the rowid, or the index's first), and the start's and the end's
    comparison and key source (``None``: no such end); ``None`` if the range is not of one rowid
    or one indexed column."""
    if kind == "table":
        column = "rowid"
    else:
        columns = conn.execute(f"SELECT cid, name, desc, coll FROM pragma_index_xinfo(?) -- {tag}", (index,)).fetchall()
        if not columns or columns[0][0] < 0 or columns[0][2] or columns[0][1] is None:
            return None
        column = f"{_quote(columns[0][1])} COLLATE {_quote(columns[0][3])}"
    first = None
    if start[1].startswith("Seek"):
        if kind == "index" and str(start[5]) != "1":
            return None  # a key of several columns (``a = 3 AND b > 2``)
        key = _source(ops, start[4], start[0])
        if key is None:
            return None
        first = (_SEEKS[start[1]], key)
    last = None
    if end is not None:
        if kind == "index" and str(end[5]) != "1":
            return None
        key = _source(ops, end[4] if end[1].startswith("Idx") else end[2], end[0])
        if key is None:
            return None
        last = (_ENDS[end[1]], key)
    return (f'FROM "main".{_quote(table)}', column, first, last)


def _beyond(
    conn: sqlite3.Connection,
    ops: list[Op],
    end: Op,
    kind: str,
    table: str,
    index: str | None,
    cursor: int,
    step: str,
    tag: str,
) -> tuple[tuple[str | None, str | None], list[Any]] | None:
    """A query whether an entry lies past the range's end, and the sources of its bindings."""
    name = end[1]
    comparison = _ENDS[name]
    forward = step == "Next"
    if forward != (comparison in (">", ">=")):
        return None
    source = f'FROM "main".{_quote(table)}'
    if kind == "table":
        if name.startswith("Idx") or not _rowid_read(ops, end[0], end[4], cursor):
            return None
        key = _source(ops, end[2], end[0])
        if key is None:
            return None
        return (f"SELECT EXISTS (SELECT 1 {source} WHERE rowid {comparison} ?)", None), [key]
    if not name.startswith("Idx") or end[2] != cursor or index is None:
        return None
    count = int(end[5]) if isinstance(end[5], (int, str)) and str(end[5]).isdigit() else 0
    columns = conn.execute(f"SELECT cid, name, desc, coll FROM pragma_index_xinfo(?) -- {tag}", (index,)).fetchall()
    if not 0 < count <= len(columns) or any(c[0] < 0 or c[2] or c[1] is None for c in columns[:count]):
        return None  # an expression, a DESC column or the rowid in the key
    keys = [_source(ops, end[4] + i, end[0]) for i in range(count)]
    if any(k is None for k in keys):
        return None
    terms = [f"{_quote(c[1])} COLLATE {_quote(c[3])}" for c in columns[:count]]
    marks = ", ".join("?" for _ in terms)
    compare = f"({', '.join(terms)}) {comparison} ({marks})"
    if count == 1:
        nulls = f"{_quote(columns[0][1])} IS NULL"
        # NULLs sort first: past a backward range's end, and of no forward range's key; a NULL
        # key (``a < 3``'s lower end) has every entry but the NULLs past it, or only those.
        if forward:
            with_nulls = f"{_quote(columns[0][1])} IS NOT NULL" if comparison == ">" else "1"
            return (
                (
                    f"SELECT EXISTS (SELECT 1 {source} WHERE {compare})",
                    f"SELECT EXISTS (SELECT 1 {source} WHERE {with_nulls})",
                ),
                keys,
            )
        on_null = f"SELECT EXISTS (SELECT 1 {source} WHERE {nulls})" if comparison == "<=" else "SELECT 0"
        return (f"SELECT EXISTS (SELECT 1 {source} WHERE {compare} OR {nulls})", on_null), keys
    if not forward:
        return None
    return (f"SELECT EXISTS (SELECT 1 {source} WHERE {compare})", None), keys


def _limited(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    start, step = counted
    if start[1] != "Rewind" or step[1] != "Next" or step[6] != 1 or start[2] != step[2]:
        return None
    if not any(op[1] == "ResultRow" and step[3] <= op[0] < step[0] for op in ops):
        return None
    limits = _limits(ops)
    if limits is None:
        return None
    for op in ops:
        addr, name = op[0], op[1]
        if addr in (start[0], step[0]) or name not in _JUMPERS or name == "Init":
            continue
        if name == "Goto" and addr == len(ops) - 1:
            continue
        if step[3] <= addr < step[0] and name in _LIMIT_JUMPS:
            continue
        if addr < start[0] and _before_loop(op, limits):
            continue  # LIMIT 0, or a bound LIMIT of 0: nothing read (loop_rows)
        return None
    table = _whole_table(conn, ops, start[2], tag)
    return None if table is None else ("limited", table, limits[0], limits[1])


def _sorted(conn: sqlite3.Connection, ops: list[Op], counted: list[Op], tag: str) -> tuple[Any, ...] | None:
    names = [op[1] for op in counted]
    if names == ["Rewind", "Next", "SorterSort", "SorterNext"]:
        scan, scan_next, sort, sort_next = counted
        last = None
    elif names == ["Rewind", "Last", "Next", "Sort", "Next"]:
        scan, last, scan_next, sort, sort_next = counted
    else:
        return None
    sorter = sort[2]
    if (
        scan[2] != scan_next[2]
        or scan_next[6] != 1
        or sort_next[2] != sorter
        or (last is not None and last[2] != sorter)
    ):
        return None
    if not (scan[0] < scan_next[3] <= scan_next[0] < sort[0] < sort_next[3] <= sort_next[0]):
        return None
    if not any(op[1] == "ResultRow" and sort_next[3] <= op[0] < sort_next[0] for op in ops):
        return None
    limits = _limits(ops)
    if limits is None:
        return None
    limited = limits[0] is not None
    filtered = False
    for op in ops:
        addr, name = op[0], op[1]
        if (
            addr in (scan[0], scan_next[0], sort[0], sort_next[0])
            or op is last
            or name not in _JUMPERS
            or name == "Init"
        ):
            continue
        if name == "Goto" and addr == len(ops) - 1:
            continue
        if scan_next[3] <= addr < scan_next[0]:
            if name == "IfNotZero" or (name.startswith("Idx") and op[2] == sorter):
                continue  # the sorter's LIMIT: keeps OFFSET + LIMIT rows
            filtered = True
            continue
        if sort_next[3] <= addr < sort_next[0] and name in _LIMIT_JUMPS:
            continue
        if addr < scan[0] and _before_loop(op, limits):
            continue
        return None
    if filtered and limited:
        return None
    table = _whole_table(conn, ops, scan[2], tag)
    return None if table is None else ("sorted", table, limits[0], limits[1], filtered)


def _in_list(ops: list[Op], counted: list[Op]) -> tuple[Any, ...] | None:
    """``("in", values)``: rowid lookups of the values of an ``IN (...)`` list, which SQLite keeps
    in a temporary index it loops over (a ``Rewind``, a ``Next`` per further value; ``Last`` and
    ``Prev`` for ``ORDER BY id DESC``, the same count in workerd)."""
    start, seek, step = counted
    eph = start[2]
    if (start[1], step[1]) not in (("Rewind", "Next"), ("Last", "Prev")):  # ORDER BY id DESC: Last, Prev
        return None
    if seek[1] not in ("SeekRowid", "NotExists") or step[2] != eph:
        return None
    if not (start[0] < step[3] <= seek[0] < step[0] < start[3]):
        return None
    if [op[2] for op in ops if op[1] == "OpenEphemeral"] != [eph] or seek[2] == eph:
        return None
    writer = next((op for op in reversed(ops[: seek[0]]) if _writes(op, seek[4])), None)
    if writer is None or writer[1] != "Column" or writer[2] != eph or writer[3] != 0:
        return None
    values = []
    for op in ops:
        if op[1] in ("IdxInsert", "Insert", "Delete", "IdxDelete") and op[2] == eph:
            record = next((r for r in reversed(ops[: op[0]]) if r[1] == "MakeRecord" and r[4] == op[3]), None)
            if op[1] != "IdxInsert" or record is None or record[3] != 1 or record[5] not in ("D", "C"):
                return None
            source = _source(ops, record[2], record[0])
            if source is None or not start[0] > op[0]:
                return None
            values.append(source)
    if not values:
        return None
    for op in ops:
        addr, name = op[0], op[1]
        if addr in (start[0], step[0]) or name not in _JUMPERS or name == "Init":
            continue
        if name == "Goto" and addr == len(ops) - 1:
            continue
        if step[3] <= addr < step[0]:
            if op[3] == step[0] or _opens_once(ops, op) or (name == "IsNull" and _rowid_read(ops, addr, op[2])):
                continue  # on to the next value (the lookup's miss, a NULL value, another test), an UPDATE's guard
            return None
        if addr < start[0] and name == "Once" and op[3] <= start[0]:
            continue  # the list is filled once
        return None
    return ("in", tuple(values))


def _in_rows(shape: tuple[Any, ...], params: tuple[Any, ...]) -> int | None:
    keys: set[tuple[int, Any]] = set()
    for source in shape[1]:
        value = _value(source, params)
        if value is _NO_ROW:
            return None
        keys.add(_integer_affinity(value))
    integers = sum(1 for k in keys if k[0] == 1 and isinstance(k[1], int))
    return len(keys) + integers  # each value's landing in the list, then each rowid lookup


def _integer_affinity(value: Any) -> tuple[int, Any]:
    """``value`` as SQLite's INTEGER affinity stores it, with its class for comparing: 0 NULL,
    1 a number, 2 text, 3 a blob (SQLite's order of classes)."""
    if value is None:
        return (0, None)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (3, bytes(value))
    if isinstance(value, str):
        text = value.strip(" \t\n\f\r")
        if not text.isascii() or "_" in text or not text:
            return (2, value)
        try:
            number: int | float = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return (2, value)
            if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
                return (2, value)
        value = number
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, float) and value.is_integer() and -(2**63) <= value < 2**63:
        return (1, int(value))
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return (1, float(value))
    return (1, value)


def _limits(ops: list[Op]) -> tuple[Any, Any, int | None] | None:
    """The sources of a program's LIMIT and OFFSET (``None``: none) and the LIMIT's register, or
    ``None`` if unknown."""
    offsets = [op for op in ops if op[1] == "OffsetLimit"]
    counters = [op for op in ops if op[1] in ("DecrJumpZero", "IfNotZero")]
    if len(offsets) > 1:
        return None
    if offsets:
        limit, offset = _source(ops, offsets[0][2], offsets[0][0]), _source(ops, offsets[0][4], offsets[0][0])
        if limit is None or offset is None:
            return None
        return limit, offset, offsets[0][2]
    if not counters:
        return (None, None, None)
    limit = _source(ops, counters[0][2], counters[0][0])
    return None if limit is None else (limit, None, counters[0][2])


def _opens_once(ops: list[Op], op: Op) -> bool:
    """Whether ``op`` is a ``Once`` that only skips opening cursors (an index a DELETE writes)."""
    skipped = ops[op[0] + 1 : op[3]]
    return op[1] == "Once" and op[3] > op[0] and all(o[1] in ("OpenRead", "OpenWrite") for o in skipped)


def _before_loop(op: Op, limits: tuple[Any, Any, int | None]) -> bool:
    """Whether a jump before a loop only skips it for a LIMIT of 0 (``MustBeInt`` jumps nowhere)."""
    name = op[1]
    if name == "MustBeInt":
        return bool(op[3] == 0)
    if name == "IfNot":
        return bool(limits[2] is not None and op[2] == limits[2])
    return bool(name == "Goto" and limits[0] == ("value", 0))


JUMPS: Final = frozenset({
    "Goto", "If", "IfNot", "IsNull", "NotNull", "IsType", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "ElseEq", "Once",
    "IfNullRow", "IfPos", "IfNotZero", "DecrJumpZero", "MustBeInt", "SeekRowid", "NotExists", "Found",
    "NotFound", "NoConflict", "IfNoHope", "SeekGE", "SeekGT", "SeekLE", "SeekLT", "SeekScan", "IdxGE", "IdxGT",
    "IdxLE", "IdxLT", "Rewind", "Last", "Next", "Prev", "Sort", "SorterSort", "SorterNext", "SorterCompare",
    "IfSmaller", "IfEmpty", "Filter", "VFilter", "VNext", "RowSetRead", "RowSetTest", "FkIfZero",
    "IncrVacuum", "SequenceTest", "IfNotOpen", "Init",
})  # fmt: skip
"""Instructions whose P2 is an address they may jump to (``Jump`` jumps to P1, P2 or P3)."""
_JUMPERS: Final = JUMPS | {"Jump"}
"""``JUMPS`` and ``Jump``: every instruction that may jump."""


def _source(ops: list[Op], register: int, before: int) -> tuple[str, Any] | None:
    """What sets ``register`` for the instruction at ``before``: ``("param", n)`` or ``("value",
    v)`` if a loader does: the nearest one before it, else the only one (in the code the ``Init``
    runs first, past the ``Halt``)."""
    for op in reversed(ops[:before]):
        if _writes(op, register):
            return _loaded(op)
    found = [op for op in ops[before:] if _writes(op, register)]
    halt = next((op[0] for op in ops if op[1] == "Halt"), len(ops))
    if len(found) != 1 or found[0][0] < halt:
        return None
    return _loaded(found[0])


def _writes(op: Op, register: int) -> bool:
    name, p1, p2, p3 = op[1], op[2], op[3], op[4]
    if name == "Null":
        return bool(p2 == register or (p3 > p2 and p2 <= register <= p3))
    if name in _WRITE_P2:
        return bool(p2 == register)
    if name in _WRITE_P3:
        return bool(p3 == register)
    if name in _WRITE_P1:
        return bool(p1 == register)
    if name in ("Copy", "Move"):
        return bool(p2 <= register <= p2 + max(p3, 0))
    return False


def _loaded(op: Op) -> tuple[str, Any] | None:
    name, p1, p4 = op[1], op[2], op[5]
    if name not in _LOADERS:
        return None
    if name == "Variable":
        return ("param", p1)
    if name == "Null":
        return ("value", None)
    if name == "Integer":
        return ("value", p1)
    if name == "Int64":
        return ("value", int(p4))
    if name == "Real":
        return ("value", float(p4))
    return ("value", p4)


def _value(source: tuple[str, Any] | None, params: tuple[Any, ...]) -> Any:
    """The value of ``source`` (``None`` stays ``None``: no LIMIT), ``_NO_ROW`` if unknown."""
    if source is None:
        return None
    if source[0] == "value":
        return source[1]
    if not 0 < source[1] <= len(params):
        return _NO_ROW
    return params[source[1] - 1]


def _whole(value: Any) -> Any:
    """A LIMIT's or OFFSET's value as SQLite reads it (an integer: ``2.0`` and ``'2'`` are 2),
    ``None`` for none, ``_NO_ROW`` if it is no integer (SQLite fails the statement)."""
    if value is None or value is _NO_ROW:
        return value
    kind, number = _integer_affinity(value)
    return number if kind == 1 and type(number) is int else _NO_ROW


def _numeric(value: Any) -> bool:
    """Whether SQLite's numeric affinity makes ``value`` a number (a rowid seek's key)."""
    if isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str) and value.strip().isascii() and "_" not in value:
        try:
            float(value.strip())
        except ValueError:
            return False
        return True
    return False


def _rowid_read(ops: list[Op], addr: int, register: int, cursor: int | None = None) -> bool:
    """Whether ``register``, as the instruction at ``addr`` reads it, is a rowid just read."""
    for op in reversed(ops[:addr]):
        if _writes(op, register):
            return op[1] == "Rowid" and (cursor is None or op[2] == cursor)
    return False


def _opened(conn: sqlite3.Connection, ops: list[Op], cursor: int, tag: str) -> tuple[str, str, str | None] | None:
    """``("table", table, None)`` or ``("index", table, index)`` for the b-tree ``cursor`` reads."""
    opens = [op for op in ops if op[1] in ("OpenRead", "OpenWrite") and op[2] == cursor]
    if len(opens) != 1 or opens[0][4] != 0 or opens[0][6] & 0x10:  # main database; P2 not a register
        return None
    row = conn.execute(
        f"SELECT type, name, tbl_name, sql FROM sqlite_master WHERE rootpage = ? -- {tag}", (opens[0][3],)
    ).fetchone()
    if row is None or row[0] not in ("table", "index"):
        return None
    if row[0] == "table":
        if row[3] is None or "WITHOUT" in row[3].upper():
            return None  # a WITHOUT ROWID table is an index b-tree
        return ("table", str(row[2]), None)
    partial = conn.execute(
        f"SELECT partial FROM pragma_index_list(?, 'main') WHERE name = ? -- {tag}", (row[2], row[1])
    ).fetchone()
    if partial is None or partial[0]:
        return None  # a partial index (``WHERE(a < 3)`` too): its entries are not the table's rows
    return ("index", str(row[2]), str(row[1]))


def _whole_table(conn: sqlite3.Connection, ops: list[Op], cursor: int, tag: str) -> str | None:
    opened = _opened(conn, ops, cursor, tag)
    return None if opened is None else opened[1]


def _count(conn: sqlite3.Connection, table: str, tag: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "main".{_quote(table)} -- {tag}').fetchone()[0])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
