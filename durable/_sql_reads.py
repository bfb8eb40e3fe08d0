"""``rows_read`` as workerd counts it, for the statement shapes whose program decides it.

workerd's patched SQLite counts, per statement, every cursor seek (``SeekGE/GT/LE/LT`` that finds
an entry, ``SeekRowid``/``NotExists`` found or not), every ``Rewind``/``Last`` (on an empty table
too), every successful ``Next``/``Prev`` (sorters' included) and ``VNext``, and a table's size for
``OP_Count``. Python's ``sqlite3`` runs SQLite unpatched: nothing counts those steps. But for
some programs the count follows from the program and numbers ``durable`` can read afterwards, so
:func:`classify` reads the statement's program (``EXPLAIN``) and recognises four shapes:

- no counted instruction (``SELECT 1``, ``INSERT ... VALUES`` with an automatic rowid, a PRAGMA,
  a ``VALUES`` list, ``DELETE`` without ``WHERE``): 0;
- rowid lookups every run reaches once (``WHERE id = ?``, an ``UPDATE``/``DELETE`` by rowid, an
  ``INSERT`` with an explicit key, ``INSERT OR REPLACE``, an upsert on the rowid, the
  ``sqlite_master`` updates of ``CREATE TABLE``): 1 each, or 0 when the key is not an integer;
- ``SELECT count(*) FROM t`` answered by ``OP_Count``: the table's rows;
- one full scan of one table (filtered or not, ``IN (?, ?, ?)`` lists too; ``SELECT``, ``UPDATE``,
  ``DELETE``, aggregates):
  the table's rows (at least 1: the ``Rewind`` of an empty table counts) once the statement ran
  to its end, the rows stepped to before.

Loops over a rowid or index range, rowid ``IN`` lists, scans with LIMIT/OFFSET and sorted scans:
``durable._sql_loops``. Anything else (joins, subqueries, ``INSERT ... SELECT``, triggers, an
instruction not known here): ``None``, and the caller counts the rows returned. Measurements:
docs/sql.md and tests/test_sql_rows_counted.py. Pure functions of a connection and the
statement, no state kept but the cache the caller hands in.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sqlite3
import warnings
from typing import Any, Final, NamedTuple

from ._sql_loops import JUMPS, _rowid_read, loop_rows, loop_shape
from ._sql_multi import (
    DROP,
    alter_reads,
    autoincrement_reads,
    index_rows,
    multi_rows,
    multi_shape,
    passes,
    returning_parts,
    sequence_reads,
    without_returning,
)
from ._sql_rules import HEAD_START, NAMED_NEED_A_DICT, named_parameters, statement_head, tokens
from ._sql_twin import close as close_twin
from ._sql_twin import listed

_COUNTED: Final = frozenset({
    "Rewind", "Last", "Sort", "SorterSort", "SeekGE", "SeekGT", "SeekLE", "SeekLT", "SeekRowid", "NotExists",
    "Next", "Prev", "SorterNext", "VNext", "Count",
})  # fmt: skip
"""Instructions workerd's SQLite counts as rows read."""


_STRAIGHT: Final = frozenset({
    "Halt", "HaltIfNull", "Transaction", "OpenRead", "OpenWrite", "OpenEphemeral", "OpenAutoindex", "OpenDup",
    "OpenPseudo", "SorterOpen", "ReopenIdx", "Close", "Column", "Rowid", "IdxRowid", "ResultRow", "Integer",
    "Int64", "Real", "String8", "String", "Null", "SoftNull", "Blob", "Variable", "Move", "Copy", "SCopy",
    "IntCopy", "Affinity", "TypeCheck", "MakeRecord", "Insert", "IdxInsert", "Delete", "IdxDelete", "NewRowid",
    "Function", "PureFunc", "AggStep", "AggStep1", "AggFinal", "AggValue", "AggInverse", "Add", "Subtract",
    "Multiply", "Divide", "Remainder", "Concat", "BitAnd", "BitOr", "ShiftLeft", "ShiftRight", "Not", "BitNot",
    "AddImm", "Cast", "RealAffinity", "Noop", "Explain", "Count", "Clear", "ResetCount", "ReadCookie",
    "SetCookie", "CreateBtree", "ParseSchema", "DropTable", "DropIndex", "DropTrigger", "Destroy", "SqlExec",
    "Sequence", "NullRow", "DeferredSeek", "FinishSeek", "SorterData", "SorterInsert", "RowData", "Offset",
    "CollSeq", "IsTrue", "ZeroOrNull", "Expire", "TableLock", "Trace", "CursorHint", "CursorLock",
    "CursorUnlock", "Permutation", "Compare", "ClrSubtype", "Abortable", "ReleaseReg", "BeginSubrtn",
    "SeekHit", "FkCounter", "MemMax", "OffsetLimit", "RowCell", "FilterAdd", "GetSubtype", "SetSubtype",
})  # fmt: skip
"""Instructions that never jump. An instruction in no set here (a trigger's ``Program``, or one a
later SQLite adds) leaves the count unknown."""

_SUBROUTINES: Final = frozenset({"InitCoroutine", "Yield", "EndCoroutine", "Gosub", "Return"})
"""Instructions that jump to an address held in a register: a program with one of them counts
as workerd does only if it has no counted instruction at all (``VALUES`` lists, subqueries)."""

_RETURNING: Final = frozenset({"Jump", "FkCheck", "RowSetAdd"})
"""Instructions known in a write with ``RETURNING`` (``FkCheck`` ends its writes; ``RowSetAdd``
collects a DELETE's rowids)."""

_ROWID_SEEKS: Final = frozenset({"SeekRowid", "NotExists"})
_NO_OUTPUT: Final = frozenset({
    "MakeRecord", "OpenRead", "OpenWrite", "ReopenIdx", "Close", "Insert", "Delete", "Halt", "Transaction",
    "ResultRow", "FkCounter", "Noop",
})  # fmt: skip
"""Instructions whose P2 is no register they write (:func:`_key_source` looks past them)."""
_PARTIAL: Final = re.compile(r"\bWHERE\b", re.IGNORECASE)
_CREATE: Final = re.compile(r"\s*CREATE\s", re.IGNORECASE)
_ALTER: Final = re.compile(r"\s*ALTER\s", re.IGNORECASE)
DROPPED: Final = "\0drop "
"""The key of a ``DROP``'s count, taken before it ran (``drop_reads``), in its cursor's own cache."""
_CREATE_INDEX: Final = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s", re.IGNORECASE)

Shape = tuple[Any, ...]
"""``("none",)``, ``("point", keys)``, ``("count", table)``, ``("scan", table, deletes, filtered)``, or one
of ``durable._sql_loops`` (``range``, ``limited``, ``sorted``)."""


def rows_read(
    conn: sqlite3.Connection,
    cache: dict[str, tuple[Any, Shape | None]],
    epoch: object,
    sql: str,
    params: tuple[Any, ...],
    *,
    tag: str,
    returned: int,
    finished: bool,
    written: int,
    stale: bool = False,
    changes: int = -1,
) -> int | None:
    """workerd's ``rowsRead`` for ``sql`` run with ``params`` on ``conn``, or ``None`` if unknown.

    ``cache``: shapes per statement text, valid for schema ``epoch``; ``tag``: the comment that
    marks durable's own statements; ``returned``: rows the application read; ``finished``: the
    statement ran to its end; ``written``: its ``rows_written``; ``stale``: something was
    written, or the schema changed, since the statement ended (or took its first step, while it
    has not ended). A table's rows are counted now: if ``stale``, they may not be those the
    statement saw, and the count is unknown (``None``). ``changes``: the rows an UPDATE or
    DELETE changed (SQLite's ``changes()``; -1 if unknown).
    """
    try:
        whole = sql
        if sql[:1] in HEAD_START:
            sql = statement_head(sql)  # (`-- c\nCREATE ...` is a CREATE: read past what SQLite skips)
        # A CREATE that created something cannot be compiled again as it ran (``... IF NOT
        # EXISTS`` now compiles to nothing): its program is the one it has on an empty database.
        created = written > 0 and _CREATE.match(sql) is not None
        if DROP.match(sql) is not None:
            # Counted before it ran (see drop_reads), from the schema as it was then: later
            # writes leave it as it is.
            counted = cache.get(DROPPED + whole)
            value: Any = None if counted is None else counted[1]
            return value if isinstance(value, int) else None
        if written > 0 and _ALTER.match(sql) is not None:
            return None if stale else alter_reads(conn, sql, written, tag)
        if created and _CREATE_INDEX.match(sql) is not None:
            return None if stale else index_rows(conn, sql, written, tag)
        key, sequenced = sql, False
        if created:
            sequenced = _AUTOINCREMENT.search(sql) is not None and _sequence_before(conn, tag)
            key = "\0created " + ("\0sequenced " if sequenced else "") + sql
        hit = cache.get(key)
        if hit is not None and hit[0] == epoch:
            shape = hit[1]
        else:
            shape = classify(conn, sql, params, tag, created=created, cache=cache, sequenced=sequenced)
            if len(cache) > 256:
                close_twin(cache)
                cache.clear()
            cache[key] = (epoch, shape)
        if shape is None:
            return None
        ran = _Ran(params, tag, returned, finished, written, stale, changes, sql)
        count = (_returning_rows if shape[0] == "returning" else _shape_rows)(conn, shape, ran)
        return None if count is None or count < 0 else count  # (a shape misread: count as before)
    except Exception:  # an estimate: whatever goes wrong (a closed connection...), count as before
        return None


_AUTOINCREMENT: Final = re.compile(r"(?i)\bAUTOINCREMENT\b")


def _sequence_before(conn: sqlite3.Connection, tag: str) -> bool:
    """Whether ``sqlite_sequence`` existed before the CREATE of an AUTOINCREMENT table that just
    ran: one that CREATE made is the last row of ``sqlite_master`` (SQLite adds it after the
    table's, and every new row after the others)."""
    row = conn.execute(
        f"SELECT (SELECT rowid FROM \"main\".sqlite_master WHERE name = 'sqlite_sequence'),"
        f' (SELECT max(rowid) FROM "main".sqlite_master) -- {tag}'
    ).fetchone()
    return row is not None and row[0] is not None and row[0] != row[1]


class _Ran(NamedTuple):
    """How a statement ran, for its count (``rows_read``'s arguments)."""

    params: tuple[Any, ...]
    tag: str
    returned: int
    finished: bool
    written: int
    stale: bool
    changes: int
    sql: str


def _shape_rows(conn: sqlite3.Connection, shape: Shape, ran: _Ran) -> int | None:
    """``rows_read``'s count for a statement of ``shape``, run as ``ran`` says."""
    params, tag, returned, finished, written, stale, changes, sql = ran
    kind = shape[0]
    if kind == "none":
        return 0
    if kind == "autoinc":
        if stale:
            return None  # written to since: sqlite_sequence may not be as the statement left it
        inner = _shape_rows(conn, shape[1], ran)
        scanned = sequence_reads(conn, shape[2], tag)
        return None if inner is None or scanned is None else inner + scanned
    if kind == "groupwhere":
        kept = None if stale or not finished else _where_rows(conn, sql, params, tag)
        return None if kept is None else max(_rows(conn, shape[1], tag), 1) + max(kept, 1)
    if kind == "twopass" and shape[1][0] == "scan":  # (a write that fires triggers: _two_pass)
        if stale or changes < 0:
            return None
        scanned = max(_rows(conn, shape[1][1], tag) + (changes if shape[1][2] else 0), 1)
        return scanned + int(shape[3]) * changes + (max(changes, 1) if shape[2] else 0)
    if kind == "twopass":
        inner = multi_rows(conn, shape[1], tag, finished=finished, stale=stale)
        if inner is None or changes < 0:
            return None
        return inner + changes + (max(changes, 1) if shape[2] else 0)
    if kind in ("join", "insub", "fed", "grouped", "ordered", "fixed"):
        return multi_rows(conn, shape, tag, finished=finished, stale=stale)
    if kind in ("in", "range", "limited", "sorted"):
        return loop_rows(
            conn, shape, params, tag, returned=returned, finished=finished, changes=changes, stale=stale, sql=sql
        )
    if kind == "point":
        if changes < 0 and any(key is not None and key[0] == "found" for key in shape[1]):
            return None
        return sum(
            1
            for key in shape[1]
            if (key is None or key[0] != "found" or changes > 0) and _integer_key(_unfound(key), params)
        )
    if kind == "scan" and not finished:
        if shape[3]:
            return None  # the rows stepped to include those the filter skipped: unknown
        if stale:
            return returned + 1  # the rows stepped to: those read and the one waiting
        # ... unless the last row was read (sqlite3 has stepped past it: nothing waits)
        return min(returned + 1, max(_rows(conn, shape[1], tag), 1))
    if stale:
        return None  # written to since: the table's rows now are not those it counted
    if kind == "count":
        return _rows(conn, shape[1], tag)
    return max(_rows(conn, shape[1], tag) + (written if shape[2] else 0), 1)


def _returning_rows(conn: sqlite3.Connection, shape: Shape, ran: _Ran) -> int | None:
    """A write with ``RETURNING``: what the write without it reads (its first pass), one landing
    per row in each temporary table it loops over (at least 1: the rowids an UPDATE collects,
    the rows of a multi-row ``VALUES``), one lookup per row changed in each second pass, and its
    loop over the rows it returns: those stepped to so far (the rows read and the one waiting),
    at least 1. The write ran whole inside ``exec()``."""
    _, inner, stripped, loops, lookups = shape
    rows = ran.changes if ran.changes >= 0 else (ran.returned if ran.finished else -1)
    if rows < 0:
        return None
    first = _shape_rows(
        conn, inner, _Ran(ran.params, ran.tag, rows, True, ran.written, ran.stale, ran.changes, stripped)
    )
    if first is None:
        return None
    given = max(rows, 1) if ran.finished else max(min(ran.returned + 1, rows), 1)
    return int(first + loops * max(rows, 1) + lookups * rows + given)


def classify(
    conn: sqlite3.Connection,
    sql: str,
    params: tuple[Any, ...],
    tag: str,
    *,
    created: bool = False,
    cache: dict[str, Any] | None = None,
    sequenced: bool = False,
) -> Shape | None:
    """The shape of ``sql``'s program (see the module's docstring), ``None`` if none fits.

    ``created``: ``sql`` is a CREATE that created what it names, compiled on an empty database
    (the CREATEs that compile there, such as ``CREATE TABLE``, have the same program there).
    ``sequenced``: ``sqlite_sequence`` existed before that CREATE (of an AUTOINCREMENT table), which
    then did not create it (workerd, miniflare 4.20260426: such a CREATE TABLE reads 1, 2 when it
    creates ``sqlite_sequence`` too): the empty database gets one first.
    ``cache``: ``rows_read``'s, where the twin that lists a write's program without resetting
    ``changes()`` is kept (``durable._sql_twin``); without it, programs are listed on ``conn``.
    """
    if not created:
        program = listed(conn, cache, sql, params, tag, _explain)
        stripped = without_returning(sql)
        if stripped is not None:
            return _returning_shape(conn, program, stripped, params, tag, cache)
        shape = _shape(conn, program, tag)
        return shape if shape is not None else _two_pass(conn, sql, params, tag, cache, program)
    empty = sqlite3.connect(":memory:")
    try:
        if sequenced:
            empty.execute('CREATE TABLE "durable sequence" (id INTEGER PRIMARY KEY AUTOINCREMENT)')
        program = _explain(empty, sql, params, tag)
    finally:
        empty.close()
    return _shape(conn, program, tag)


def _returning_shape(
    conn: sqlite3.Connection,
    program: list[tuple[Any, ...]],
    stripped: str,
    params: tuple[Any, ...],
    tag: str,
    cache: dict[str, Any] | None,
) -> Shape | None:
    """``("returning", inner, stripped, loops, lookups)``: ``inner`` the shape of the write
    without its ``RETURNING`` (``stripped``), the rest from the program (``returning_parts``)."""
    program, sequences = autoincrement_reads(conn, program, tag)
    ops = [(row[0], row[1], row[2], row[3], row[4], row[5], row[6]) for row in program]
    if any(
        op[1] not in _STRAIGHT and op[1] not in JUMPS and op[1] not in _SUBROUTINES and op[1] not in _RETURNING
        for op in ops
    ):
        return None
    parts = returning_parts(ops)
    if parts is None:
        return None
    plain = listed(conn, cache, stripped, params, tag, _explain)
    inner = _shape(conn, plain, tag)
    if inner is not None and inner[0] == "autoinc":
        if inner[2] != sequences:
            return None
        inner = inner[1]
    if inner == ("none",) and parts[1]:
        # ``DELETE FROM t``: SQLite clears the table, unless it must return the rows; then it
        # scans them (the rows deleted, at least 1) and looks each up again.
        scan = [op for op in ops if op[1] == "Rewind" and op[6] == 0 and op[2] not in _ephemeral(ops)]
        reads = [op for op in ops if op[1] != "OpenWrite"]  # (its second pass opens it to write)
        table = _table_of(conn, reads, scan[0][2], tag) if len(scan) == 1 else None
        inner = None if table is None else ("scan", table, True, False)
    if inner is None or inner[0] not in ("none", "point", "scan", "range", "in", "fixed"):
        return None
    if inner[0] == "fixed":
        inner = ("none",)  # (its lookups move into the loop over the rows buffered: counted there)
    if sequences:
        inner = ("autoinc", inner, sequences)
    before = passes([(row[0], row[1], row[2], row[3], row[4], row[5], row[6]) for row in plain])
    return ("returning", inner, stripped, parts[0] - before[0], parts[1] - before[1])


_WRITE_HEAD: Final = re.compile(r"(?is)\s*(?:DELETE\s+FROM|UPDATE(?:\s+OR\s+\w+)?)\s")


def _two_pass(
    conn: sqlite3.Connection,
    sql: str,
    params: tuple[Any, ...],
    tag: str,
    cache: dict[str, Any] | None,
    program: list[tuple[Any, ...]],
) -> Shape | None:
    """``("twopass", inner, update)`` for an UPDATE or DELETE whose ``WHERE`` selects rowids
    through a subquery of another table (``WHERE id IN (SELECT tid FROM p)``), ``inner`` the
    shape of the same ``SELECT * FROM t WHERE ...`` (``insub`` or ``join``); else ``None``.

    workerd's SQLite runs such a write in two passes (measured with miniflare 4.20260426, where
    Python's SQLite 3.40 makes one): what the SELECT reads, then, for a DELETE, one lookup per row
    deleted (its rowids kept where nothing counts), for an UPDATE, a loop over the rowids kept
    (at least 1) and one lookup per row updated: 9 and 11 for 2 rows of 5 where the SELECT reads 7.

    A write that fires triggers whose programs count nothing (``INSERT INTO log VALUES
    (new.a)``) is one too when its rows come from a full scan of the table it writes:
    ``("twopass", scan, update, lookups)``, ``scan`` that scan (a DELETE's deleted rows included;
    SQLite makes two passes for any such write), ``lookups`` the rowid lookups per row changed (2
    with a BEFORE trigger, after which SQLite looks the row up again). By rowid, it makes one:
    the lookup's shape, alone (workerd: 9 for ``UPDATE t SET b = 'q' WHERE a > 3``, 2 rows of 5,
    11 with a BEFORE trigger, 15 for all 5 rows, 7 for such a DELETE, 1 by rowid).
    """
    triggered = _quiet_triggers(program)
    parts = _where_of(sql, any_where=triggered)
    if parts is None:
        return None
    target, where, update, set_variables = parts
    where_variables = any(kind == "variable" for kind, _, _ in tokens(where))
    if set_variables and where_variables:
        return None  # (the WHERE's parameters are not numbered alone)
    select = f"SELECT * FROM {target} {where}"
    inner = _shape(conn, listed(conn, cache, select, params if where_variables else (), tag, _explain), tag)
    if triggered:
        if inner is None or inner[0] not in ("point", "scan"):
            return None
        main = program[: next(i for i, row in enumerate(program) if i and row[0] == 0)]
        lookups = sum(1 for row in main if row[1] == "NotExists")  # (2 each with a BEFORE trigger)
        if inner[0] == "point" or not lookups:
            return inner if inner[0] == "point" else None
        return ("twopass", ("scan", inner[1], not update, inner[3]), update, lookups)
    if inner is None or inner[0] not in ("insub", "join") or str(inner[1]).lower() == _unquoted(target).lower():
        return None
    return ("twopass", inner, update)


def _quiet_triggers(program: list[tuple[Any, ...]]) -> bool:
    """Whether ``program`` runs triggers (``Program``) whose own programs, listed after it by
    ``EXPLAIN``, count nothing in workerd (no cursor steps, seeks or lookups), and nothing else
    nested (no foreign key's check)."""
    if not any(row[1] == "Program" for row in program):
        return False
    starts = [i for i, row in enumerate(program) if row[0] == 0]
    if len(starts) < 2 or any(row[1] in ("FkCheck", "FkCounter", "FkIfZero") for row in program):
        return False
    return not any(row[1] in _COUNTED or row[1] == "Program" for row in program[starts[1] :])


def _where_of(sql: str, *, any_where: bool = False) -> tuple[str, str, bool, bool] | None:
    """``(table, "WHERE ...", update, variables in SET)`` of ``DELETE FROM t WHERE ...`` or
    ``UPDATE t SET ... WHERE ...`` (no alias, ``INDEXED BY``, ``FROM``, ``ORDER BY`` or ``LIMIT``)
    whose ``WHERE`` has a subquery, or (``any_where``) any ``WHERE`` or none (``WHERE ...`` is
    then ``""``); else ``None``."""
    if _WRITE_HEAD.match(sql) is None or ("select" not in sql.lower() and not any_where):
        return None
    words = [(kind, sql[start:end], start, end) for kind, start, end in tokens(sql) if kind not in ("space", "comment")]
    update = words[0][1].upper() == "UPDATE"
    at = 1 if not update else (3 if words[1][1].upper() == "OR" else 1)
    at += 0 if update else 1  # (past FROM)
    if len(words) < at + (1 if any_where else 3) or words[at][0] not in ("word", "quoted"):
        return None
    end = at + 1
    if len(words) > end + 1 and words[end][1] == ".":
        end += 2
    target = sql[words[at][2] : words[end - 1][3]]
    depth, where, variables = 0, -1, False
    if update and (len(words) <= end or words[end][1].upper() != "SET"):
        return None
    for index in range(end, len(words)):
        kind, text, _, _ = words[index]
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif kind == "variable" and where < 0:
            variables = True
        elif depth == 0 and kind == "word":
            word = text.upper()
            if where < 0 and word == "WHERE":
                where = index
            elif word in ("FROM", "ORDER", "LIMIT", "RETURNING", "INDEXED", "NOT", "AS") and where < 0:
                return None
            elif word in ("ORDER", "LIMIT", "RETURNING"):
                return None
    if where < 0 and any_where and (update or len(words) == end or words[end][1] == ";"):
        return target, "", update, variables
    if where < 0 or (where != end and not update):
        return None
    return target, sql[words[where][2] :].rstrip().rstrip(";"), update, variables


def _where_rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], tag: str) -> int | None:
    """The rows ``SELECT ... FROM t WHERE ... GROUP BY ...`` keeps before grouping, counted with
    its ``FROM`` and ``WHERE`` (``None`` if they cannot be cut out: a parameter outside the WHERE,
    a WHERE naming a result column)."""
    words = [(kind, sql[start:end], start) for kind, start, end in tokens(sql) if kind not in ("space", "comment")]
    depth, marks = 0, dict[str, int]()
    for kind, text, start in words:
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and kind == "word" and text.upper() in ("FROM", "WHERE", "GROUP"):
            marks.setdefault(text.upper(), start)
    if len(marks) != 3 or not marks["FROM"] < marks["WHERE"] < marks["GROUP"]:
        return None
    source, where = sql[marks["FROM"] : marks["WHERE"]], sql[marks["WHERE"] : marks["GROUP"]]
    variables = [(text, start) for kind, text, start in words if kind == "variable"]
    if any(text != "?" or not marks["WHERE"] <= start < marks["GROUP"] for text, start in variables):
        return None  # (numbered and named ones would need the statement's numbering)
    try:
        row = conn.execute(f"SELECT count(*) {source}{where}-- {tag}", params if variables else ()).fetchone()
    except sqlite3.Error:
        return None
    return int(row[0])


def _unquoted(target: str) -> str:
    """The table's name in ``target`` (``t``, ``"t"``, ``main.t``...), without its quotes."""
    name = [target[start:end] for kind, start, end in tokens(target) if kind in ("word", "quoted")][-1]
    if name[:1] in '"`[':
        return name[1:-1].replace(name[0] * 2, name[0]) if name[0] != "[" else name[1:-1]
    return name


def _ephemeral(ops: list[tuple[Any, ...]]) -> set[int]:
    return {op[2] for op in ops if op[1] == "OpenEphemeral"}


_EXPLAINS = itertools.count()
"""Numbers each ``EXPLAIN`` that :func:`_explain` runs, so that its text is new every time."""


def _explain(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], tag: str) -> list[tuple[Any, ...]]:
    # Each EXPLAIN's text is new, so Python's statement cache never hands back one prepared
    # before a schema change: SQLite 3.40 (Debian 12's) re-prepares such a statement when it is
    # stepped again, and for `EXPLAIN DELETE ... RETURNING` after an `ALTER TABLE ... ADD COLUMN`
    # then lists its program from freed memory (valgrind: invalid reads in sqlite3VdbeDisplayP4),
    # which killed the process with SIGSEGV (tests/test_difffuzz_found.py). An EXPLAIN runs once
    # per statement text and schema, so the cache gains no more entries than before.
    text = f"EXPLAIN {sql.rstrip().rstrip(';')}\n-- {tag} {next(_EXPLAINS)}"
    bound: Any = params
    if params and NAMED_NEED_A_DICT and ("$" in sql or ":" in sql or "@" in sql):
        bound = named_parameters(sql, params)
        if bound is None:
            bound = params
    # The statement ran within SQLite's length limit; ``EXPLAIN`` and the tag may take it past.
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH)
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > limit else 0
    if size > limit:
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return conn.execute(text, bound).fetchall()
    finally:
        if size > limit:
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, limit)


def _shape(conn: sqlite3.Connection, program: list[tuple[Any, ...]], tag: str) -> Shape | None:
    program, sequences = autoincrement_reads(conn, program, tag)
    shape = _program_shape(conn, program, tag)
    return ("autoinc", shape, sequences) if sequences and shape is not None else shape


def _program_shape(conn: sqlite3.Connection, program: list[tuple[Any, ...]], tag: str) -> Shape | None:
    ops = [(row[0], row[1], row[2], row[3], row[4], row[5], row[6]) for row in program]
    if any(
        op[1] not in _STRAIGHT and op[1] not in JUMPS and op[1] not in _SUBROUTINES and op[1] != "Jump" for op in ops
    ):
        return None  # an instruction not known here (a trigger's Program, a later SQLite's)
    shape = _plain_shape(conn, ops, tag)
    if shape is None:
        counted = [op for op in ops if op[1] in _COUNTED]
        shape = loop_shape(conn, ops, counted, tag)
        if shape is None:
            shape = multi_shape(conn, ops, counted, tag)
    return shape


def _plain_shape(conn: sqlite3.Connection, ops: list[tuple[Any, ...]], tag: str) -> Shape | None:
    jumps: list[tuple[int, int]] = []  # (address, target)
    last = len(ops) - 1
    subroutines = False
    inline = _inline_subroutines(ops)
    for addr, name, p1, p2, p3, _, _ in ops:
        if name == "Jump":
            jumps.extend((addr, t) for t in (p1, p2, p3) if t)
        elif name in JUMPS:
            if p2 and name != "Init":
                jumps.append((addr, p2))
        elif name in _SUBROUTINES:
            if addr not in inline:
                subroutines = True
        elif name not in _STRAIGHT:
            return None
    counted = [op for op in ops if op[1] in _COUNTED]
    if inline and any(begin < op[0] < end for end, begin in inline.items() for op in counted):
        return None
    if not counted:
        return ("none",)  # (however its coroutines loop: a trigger's Program is refused above)
    if subroutines:
        return None
    if all(op[1] in _ROWID_SEEKS for op in counted):
        unchecked: set[int] = set()
        found: set[int] = set()
        for addr, target in jumps:  # straight code: no loop, no jump over a lookup but a key's check's
            if target <= addr and not (addr == last and target == 1):
                return None
            skipped = [op for op in counted if addr < op[0] < target]
            if not skipped:
                continue
            kind = _key_check(ops, addr, skipped)
            if kind is None:
                return None
            (unchecked if kind == "unchecked" else found).update(op[0] for op in skipped)
        keys = [
            ("found", _key_source(ops, op[0], op[4])) if op[0] in found else _key_source(ops, op[0], op[4])
            for op in counted
            if op[0] not in unchecked
        ]
        return ("point", tuple(keys))
    loop = None
    if len(counted) == 2:
        start, step = counted
        if not (
            start[1] in ("Rewind", "Last")
            and step[1] == ("Next" if start[1] == "Rewind" else "Prev")
            and start[2] == step[2]
            and step[6] == 1  # SQLITE_STMTSTATUS_FULLSCAN_STEP: a full scan
            and start[0] < step[3] <= step[0]
        ):
            return None
        loop = (start[0], step[0])
    elif len(counted) > 2:
        return None
    first = counted[0][0] if counted else last
    for addr, target in jumps:
        if target <= addr:  # a jump back: only the scan's own step, and the Init trampoline's
            if not ((loop is not None and addr == loop[1]) or (addr == last and target == 1)):
                return None
        elif addr < first < target:
            return None  # the counted instruction may be jumped over
        elif loop is not None and loop[0] < addr < loop[1] and target > loop[1] and not _rowid_guard(ops, addr):
            return None  # a way out of the loop before its end (LIMIT, min(), EXISTS...)
    op = counted[0]
    if loop is None and op[1] == "Count" and op[4] == 0:
        table = _table_of(conn, ops, op[2], tag)
        return None if table is None else ("count", table)
    if loop is None:
        return None
    table = _table_of(conn, ops, op[2], tag)
    if table is None:
        return None
    # A DELETE's rows are gone when the count is taken (an UPDATE deletes and inserts again).
    deletes = any(o[1] == "Delete" and o[2] == op[2] for o in ops) and not any(
        o[1] == "Insert" and o[2] == op[2] for o in ops
    )
    filtered = any(loop[0] < addr < loop[1] and not _rowid_guard(ops, addr) for addr, _ in jumps)
    return ("scan", table, deletes, filtered)


def _inline_subroutines(ops: list[tuple[Any, ...]]) -> dict[int, int]:
    """The ``Return`` instructions that end a subroutine run only where it stands (its ``BeginSubrtn``
    sets the return register to NULL and no ``Gosub`` calls it, so ``Return`` with P3 = 1 falls
    through), mapped from their address to the ``BeginSubrtn``'s: an ``IN (?, ?, ?)`` list's
    ephemeral index, built once (``Once``) inside a scan, is such a block. Straight code, as long
    as the block has no counted instruction (which the caller checks)."""
    begins: dict[int, int] = {}
    called: set[int] = set()
    found: dict[int, int] = {}
    for addr, name, p1, p2, p3, _, _ in ops:
        if name == "BeginSubrtn":
            begins[p2] = addr
        elif name == "Gosub":
            called.add(p1)
        elif name == "Return" and p3 == 1 and p1 in begins:
            found[begins[p1]] = addr
    return {end: begin for begin, end in found.items() if ops[begin][3] not in called}


def _rowid_guard(ops: list[tuple[Any, ...]], addr: int) -> bool:
    """Whether the jump at ``addr`` is an ``IsNull`` of a rowid just read (an UPDATE's guard,
    never taken: a row always has a rowid)."""
    # (What last wrote the register, by each instruction's output operand: a P2 equal to it may
    # be a root page, as in the ``OpenWrite`` of an index opened ``Once`` inside the loop.)
    return ops[addr][1] == "IsNull" and _rowid_read(ops, addr, ops[addr][2])


def _key_check(ops: list[tuple[Any, ...]], addr: int, skipped: list[tuple[Any, ...]]) -> str | None:
    """Why the jump at ``addr`` skips the rowid lookups ``skipped`` (a foreign key's checks of its
    parent, as SQLite writes them; workerd, miniflare 4.20260426: 1 for ``INSERT INTO c (pid)
    VALUES (1)``, 2 with an explicit ``id`` or for ``UPDATE c SET pid = 2 WHERE id = 1``, 1 for
    ``DELETE FROM c WHERE id = 3``, 0 for a NULL ``pid``), or ``None`` if not known:

    - ``"key"``: the key is NULL (``IsNull`` of the column copied into their key) or no integer
      (``MustBeInt`` of their key): :func:`_integer_key` counts such a key 0 already;
    - ``"unchecked"``: ``FkIfZero`` of the statement's counter, the check of the row's old key,
      made only once the statement has violated a key (then it fails): never counted;
    - ``"found"``: the row written was not found (a lookup, or ``IsNull`` of its rowid, of a
      cursor opened to write): counted when the statement changed rows."""
    op = ops[addr]
    keys = [_key_registers(ops, lookup[0], lookup[4]) for lookup in skipped]
    if op[1] in ("IsNull", "MustBeInt") and all(op[2] in registers for registers in keys):
        return "key"
    if op[1] == "FkIfZero" and op[2] == 0:
        return "unchecked"
    written = {o[2] for o in ops if o[1] == "OpenWrite"}
    if op[1] in _ROWID_SEEKS and op[2] in written:
        return "found"
    if op[1] == "IsNull":
        source = next((o for o in reversed(ops[:addr]) if o[1] not in ("Noop",) and _sets(o, op[2])), None)
        if source is not None and source[1] == "Rowid" and source[2] in written:
            return "found"
    return None


def _sets(op: tuple[Any, ...], register: int) -> bool:
    """Whether ``op`` (``Rowid``, ``Column``, a constant...) writes ``register`` (its P2, or P3)."""
    if op[1] in ("Rowid", "Integer", "Int64", "String8", "Real", "Variable", "Null", "SCopy", "Copy"):
        return bool(op[3] == register)
    return bool(op[1] == "Column" and op[4] == register)


def _key_registers(ops: list[tuple[Any, ...]], before: int, register: int) -> set[int]:
    """``register`` and those it was copied from (``SCopy``, ``Copy``) before ``before``."""
    found = {register}
    for _, name, p1, p2, _, _, _ in reversed(ops[:before]):
        if p2 == register and name in ("SCopy", "Copy"):
            register = p1
            found.add(register)
        elif p2 == register and name != "MustBeInt":
            break
    return found


def _key_source(ops: list[tuple[Any, ...]], before: int, register: int) -> tuple[str, Any] | None:
    """What last set the key register of a rowid lookup: ``("param", index)``, ``("value", v)``
    (through ``SCopy`` / ``Copy``: a foreign key's lookup copies the child's column)."""
    for index in range(before - 1, -1, -1):
        _, name, p1, p2, p3, p4, _ = ops[index]
        if name == "Null" and p2 < register <= p3:
            return ("value", None)  # (a range of NULLs)
        if name in JUMPS or name in _NO_OUTPUT:
            continue  # (their P2 is a jump's target, a count, a root page: the key is set before)
        if p2 != register:
            if p3 == register and name not in ("SeekRowid", "NotExists"):
                return None  # (written by an instruction whose output is its P3: Column, Add...)
            continue
        if name in ("SCopy", "Copy"):
            return _key_source(ops, index, p1)
        if name == "Variable":
            return ("param", p1)
        if name == "Null":
            return ("value", None)
        if name in ("String8", "Real"):
            return ("value", p4)
        if name in ("Integer", "Int64"):
            return ("value", 1)
        return None
    return None


def _unfound(key: tuple[str, Any] | None) -> tuple[str, Any] | None:
    """A ``point`` shape's key without its ``"found"`` mark (see :func:`_key_check`)."""
    return key[1] if key is not None and key[0] == "found" else key


def _integer_key(source: tuple[str, Any] | None, params: tuple[Any, ...]) -> bool:
    """Whether SQLite's rowid lookup reaches the b-tree: its key reads as a 64-bit integer.

    A real (or a text read as a real) is one only strictly between -2**63 and 2**63 - 1, as
    SQLite converts it: ``id = 1e30``, ``'1e30'``, ``9.3e18`` and even ``-9.2233720368547758e18``
    read nothing in workerd (measured with miniflare 4, 2026-12-07), nor ``'1_000'``.
    """
    if source is None:
        return True
    value = source[1]
    if source[0] == "param":
        if not 0 < value <= len(params):
            return True
        value = params[value - 1]
    if value is None or isinstance(value, (bytes, bytearray, memoryview)):
        return False
    if isinstance(value, (bool, int)):
        return True
    if isinstance(value, str):
        if not value.isascii() or "_" in value:
            return False  # (Python's int() and float() read these; SQLite does not)
        with contextlib.suppress(ValueError):
            return -(2**63) <= int(value) < 2**63
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return bool(number.is_integer()) and -(2**63) < number < 2**63 - 1


def _table_of(conn: sqlite3.Connection, ops: list[tuple[Any, ...]], cursor: int, tag: str) -> str | None:
    """The table that ``cursor`` reads all of (a table, or an index on all of its rows)."""
    opens = [op for op in ops if op[1] in ("OpenRead", "OpenWrite", "ReopenIdx") and op[2] == cursor]
    if len(opens) != 1 or opens[0][4] != 0 or opens[0][6] & 0x02:  # main database; P2 not a register
        return None
    root = opens[0][3]
    if root == 1:
        return "sqlite_master"
    row = conn.execute(f"SELECT type, tbl_name, sql FROM sqlite_master WHERE rootpage = ? -- {tag}", (root,)).fetchone()
    if row is None or row[0] not in ("table", "index"):
        return None
    if row[0] == "index" and row[2] is not None and _PARTIAL.search(row[2]):
        return None  # a partial index: its entries are not the table's rows
    return str(row[1])


def _rows(conn: sqlite3.Connection, table: str, tag: str) -> int:
    quoted = '"' + table.replace('"', '""') + '"'
    return int(conn.execute(f"SELECT count(*) FROM {quoted} -- {tag}").fetchone()[0])
