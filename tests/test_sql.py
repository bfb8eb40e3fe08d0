"""The SQL API (``ctx.storage.sql``): exec, cursors, values, restrictions, limits, errors and commits."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable import _sql, _sql_rules, _storage, testing

from helpers import exactly, inside

ROOT = Path(__file__).resolve().parent.parent


class Obj(durable.DurableObject):
    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass

    def q(self, sql: str, *bindings: Any) -> list[dict[str, Any]]:
        return [row.to_py() for row in self.ctx.storage.sql.exec(sql, *bindings)]

    def raw(self, sql: str, *bindings: Any) -> list[list[Any]]:
        return list(self.ctx.storage.sql.exec(sql, *bindings).raw())

    async def write_then_fail(self, sql: str) -> None:
        self.ctx.storage.sql.exec(sql)
        raise ValueError("after the write")


def sql_of(ctx: durable.State) -> durable.SqlStorage:
    return ctx.storage.sql


# -- a reference: SQLite's own C API through ctypes (the library Python's sqlite3 uses) -------------


def _load_sqlite() -> Any:
    name = ctypes.util.find_library("sqlite3") or "libsqlite3.so.0"
    try:
        lib = ctypes.CDLL(name)
        lib.sqlite3_error_offset
    except (OSError, AttributeError):
        return None
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    if lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        return None
    lib.sqlite3_errmsg.restype = ctypes.c_char_p
    return lib


LIB = _load_sqlite()
needs_libsqlite = pytest.mark.skipif(LIB is None, reason="the SQLite library Python uses cannot be loaded with ctypes")


class Reference:
    """A raw SQLite connection: what sqlite3_prepare and sqlite3_error_offset say."""

    def __init__(self, schema: str = "") -> None:
        self.db = ctypes.c_void_p()
        LIB.sqlite3_open(b":memory:", ctypes.byref(self.db))
        if schema:
            LIB.sqlite3_exec(self.db, schema.encode(), None, None, None)

    def close(self) -> None:
        LIB.sqlite3_close(self.db)

    def prepare(self, sql: bytes) -> tuple[int, bool, int, str, int]:
        """(result code, a statement was made, tail byte offset, message, error offset)."""
        buf = ctypes.create_string_buffer(sql)
        stmt = ctypes.c_void_p()
        tail = ctypes.c_void_p()
        rc = LIB.sqlite3_prepare_v2(self.db, buf, len(sql), ctypes.byref(stmt), ctypes.byref(tail))
        made = bool(stmt.value)
        if made:
            LIB.sqlite3_finalize(stmt)
        offset = (tail.value or ctypes.addressof(buf)) - ctypes.addressof(buf)
        return rc, made, offset, LIB.sqlite3_errmsg(self.db).decode(), LIB.sqlite3_error_offset(self.db)

    def split(self, code: str) -> list[str | None]:
        """The statements workerd's exec loop would prepare, in order (None: "no statement")."""
        data = code.encode()
        out: list[str | None] = []
        while True:
            rc, made, tail, message, _ = self.prepare(data)
            # A semantic error ("no such column") still leaves the tail after the statement.
            assert rc == 0 or not message.startswith(("near", "unrecognized", "incomplete")), message
            if rc == 0 and not made:
                out.append(None)
                return out
            out.append(data[:tail].decode().rstrip(" \t\n\r\v\f"))
            data = data[tail:].lstrip(b" \t\n\r\v\f")
            if not data:
                return out


def durable_split(code: str) -> list[str | None]:
    """The statements durable's exec loop runs, in order (None: "no statement"), without trailing spaces."""
    out: list[str | None] = []
    while True:
        bounds = _sql_rules.first_statement(code)
        if bounds is None:
            out.append(None)
            return out
        out.append(code[: bounds[1]].rstrip(" \t\n\r\v\f"))
        code = code[bounds[1] :].lstrip(" \t\n\r\v\f")
        if not code:
            return out


# -- tests ------------------------------------------------------------------------------------------


class TestExec:
    """exec() runs SQL at once and returns a cursor over the last statement."""

    async def test_select_rows(self, stub: Any) -> None:
        """A SELECT gives its rows as column -> value mappings."""
        assert await stub.q("SELECT 1 AS x, 'a' AS y UNION ALL SELECT 2, 'b'") == [
            {"x": 1, "y": "a"},
            {"x": 2, "y": "b"},
        ]

    async def test_writes_happen_without_reading_the_cursor(self, stub: Any) -> None:
        """A write runs inside exec(), even when its cursor is never read."""

        def body(obj: Any, ctx: durable.State) -> None:
            ctx.storage.sql.exec("CREATE TABLE t (a)")
            ctx.storage.sql.exec("INSERT INTO t VALUES (1), (2)")

        await inside(stub, body)
        assert await stub.q("SELECT count(*) AS n FROM t") == [{"n": 2}]

    async def test_several_statements_run_in_order(self, stub: Any) -> None:
        """Statements separated by ; run in order; the cursor is the last one's; bindings go to it."""
        rows = await stub.q(
            "CREATE TABLE t (a); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); SELECT a FROM t WHERE a > ?", 1
        )
        assert rows == [{"a": 2}]

    async def test_earlier_select_is_discarded(self, stub: Any) -> None:
        """Rows of a statement before the last are discarded."""
        assert await stub.q("SELECT 1 AS first; SELECT 2 AS second") == [{"second": 2}]

    async def test_parameters_only_in_the_last_statement(self, stub: Any) -> None:
        """A parameter in an earlier statement is refused with Cloudflare's message."""
        with exactly(durable.SqlError, _sql_rules.MULTI_PARAMETERS):
            await stub.q("SELECT ?; SELECT 1")
        with exactly(durable.SqlError, _sql_rules.MULTI_PARAMETERS):
            await stub.q("SELECT ?; SELECT ?", 1)

    @pytest.mark.parametrize("sql", ["", "   ", ";", " ; ; ", "-- just a comment", "/* only */", "\n-- a\n/* b */\n"])
    async def test_no_statement(self, stub: Any, sql: str) -> None:
        """Empty SQL, or SQL with only comments and semicolons, is refused."""
        with exactly(durable.SqlError, "SQL code did not contain a statement."):
            await stub.q(sql)

    async def test_trailing_comment_after_last_statement(self, stub: Any) -> None:
        """A comment after the last semicolon is an empty statement, as in workerd; earlier ones ran."""
        await stub.q("CREATE TABLE t (a)")
        with exactly(durable.SqlError, "SQL code did not contain a statement."):
            await stub.q("INSERT INTO t VALUES (1); -- done")
        with exactly(durable.SqlError, "SQL code did not contain a statement."):
            await stub.q("INSERT INTO t VALUES (2);;")
        assert await stub.q("SELECT a FROM t") == [{"a": 1}, {"a": 2}]

    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT 1 AS v;",
            "SELECT 1 AS v;  \n\t",
            ";;SELECT 1 AS v",
            "-- lead\nSELECT 1 AS v -- trail",
            "SELECT 1 AS v /* c */",
        ],
    )
    async def test_accepted_shapes(self, stub: Any, sql: str) -> None:
        """Leading semicolons and comments, a final semicolon, trailing spaces and comments are fine."""
        assert await stub.q(sql) == [{"v": 1}]

    @pytest.mark.parametrize(("sql", "bindings"), [("SELECT ?", ()), ("SELECT ?, ?", (1,)), ("SELECT 1", (1,))])
    async def test_wrong_number_of_bindings(self, stub: Any, sql: str, bindings: tuple[Any, ...]) -> None:
        """Too few or too many bindings are refused with Cloudflare's message."""
        with exactly(durable.SqlError, "Wrong number of parameter bindings for SQL query."):
            await stub.q(sql, *bindings)

    async def test_query_must_be_str(self, stub: Any) -> None:
        """SQL given as anything but valid Unicode str raises TypeError."""
        with pytest.raises(TypeError, match="str"):
            await inside(stub, lambda o, c: c.storage.sql.exec(b"SELECT 1"))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="lone surrogate at index 8"):
            await stub.q("SELECT '\ud800'")

    async def test_database_size(self, stub: Any) -> None:
        """database_size is (pages in use) x (page size): a table adds a page, dropping it removes it."""
        empty = await inside(stub, lambda o, c: c.storage.sql.database_size)
        assert empty == 4096  # workerd's empty database: one page
        await stub.q("CREATE TABLE a (x)")
        size = await inside(stub, lambda o, c: c.storage.sql.database_size)
        assert size > 0 and size % 4096 == 0
        await stub.q("CREATE TABLE b (x)")
        assert await inside(stub, lambda o, c: c.storage.sql.database_size) == size + 4096
        await stub.q("DROP TABLE b")
        assert await inside(stub, lambda o, c: c.storage.sql.database_size) == size

    async def test_camel_case_aliases(self, stub: Any) -> None:
        """databaseSize, toArray, columnNames, rowsRead and rowsWritten are aliases."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql: Any = ctx.storage.sql
            cur: Any = sql.exec("SELECT 1 AS one")
            return sql.databaseSize == sql.database_size, cur.columnNames, cur.toArray(), cur.rowsRead, cur.rowsWritten

        same, names, rows, read, written = await inside(stub, body)
        # SELECT 1 reads no row of any table (workerd, measured: rowsRead 0)
        assert same and names == ["one"] and rows == [{"one": 1}] and read == 0 and written == 0


class TestSplitting:
    """Statements are split where SQLite's parser splits them."""

    CASES = [
        "SELECT 'a;b'; SELECT 2",
        "SELECT 'it''s;'; SELECT 2;",
        'SELECT "a;b" FROM t; SELECT 2',
        "SELECT `a;b` FROM t; SELECT 2",
        "SELECT [a;b] FROM t; SELECT 2",
        "SELECT 1 -- c;\n; SELECT 2",
        "SELECT 1 /* ; */; SELECT 2",
        "SELECT x'00'; SELECT 'é;'; SELECT '😀;'",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); DELETE FROM u; END; SELECT 3",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET x = CASE WHEN new.a THEN 1 ELSE 2 END; END; SELECT 1",
        "CREATE TEMP TRIGGER tr BEFORE DELETE ON t BEGIN SELECT 'end;'; END;",
        ";;SELECT 1; SELECT 2",
        "SELECT 1;\n\t SELECT 2;  ",
        "SELECT 1; -- trailing",
        "SELECT 1;;",
        "SELECT 'unterminated; SELECT 2",
        "SELECT 1 /* unterminated ; SELECT 2",
        "SELECT 1 -- ; no newline",
    ]

    @pytest.mark.parametrize("code", CASES)
    def test_known_cases(self, code: str) -> None:
        """Semicolons in strings, identifiers, comments and trigger bodies do not split."""
        expected = {
            "SELECT 'a;b'; SELECT 2": ["SELECT 'a;b';", "SELECT 2"],
            "CREATE TEMP TRIGGER tr BEFORE DELETE ON t BEGIN SELECT 'end;'; END;": [
                "CREATE TEMP TRIGGER tr BEFORE DELETE ON t BEGIN SELECT 'end;'; END;"
            ],
            "SELECT 1; -- trailing": ["SELECT 1;", None],
            "SELECT 1;;": ["SELECT 1;", None],
            "SELECT 'unterminated; SELECT 2": ["SELECT 'unterminated; SELECT 2"],
        }.get(code)
        if expected is not None:
            assert durable_split(code) == expected
        if LIB is not None:
            ref = Reference("CREATE TABLE t(a); CREATE TABLE u(x)")
            try:
                if "unterminated" not in code:
                    assert durable_split(code) == ref.split(code)
            finally:
                ref.close()

    @needs_libsqlite
    @settings(max_examples=200, deadline=None)
    @given(
        parts=st.lists(
            st.sampled_from(
                [
                    "SELECT 1",
                    "SELECT 'a;b'",
                    'SELECT "c;d" FROM t',
                    "SELECT [e;f] FROM t",
                    "SELECT `g;h` FROM t",
                    "SELECT x'00'",
                    "SELECT 'x'';y'",
                    "SELECT 1 /* ; */",
                    "SELECT 2 -- ;\n",
                    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 'x;'; END",
                    "/* lead */ SELECT 3",
                ]
            ),
            min_size=1,
            max_size=5,
        ),
        seps=st.lists(st.sampled_from([";", "; ", ";\n", ";-- c\n ", "; /* ; */ ", ";\t"]), min_size=5, max_size=5),
        final=st.sampled_from(["", ";", "; ", ";\n\n"]),
    )
    def test_matches_sqlite_prepare(self, parts: list[str], seps: list[str], final: str) -> None:
        """For random sequences of statements, the split is the one sqlite3_prepare makes."""
        code = "".join(part + sep for part, sep in zip(parts[:-1], seps)) + parts[-1] + final
        ref = Reference("CREATE TABLE t(a)")
        try:
            assert durable_split(code) == ref.split(code)
        finally:
            ref.close()

    async def test_trigger_body_runs_as_one_statement(self, stub: Any) -> None:
        """CREATE TRIGGER ... BEGIN ...; ...; END is one statement, and the trigger works."""
        await stub.q(
            "CREATE TABLE t (a); CREATE TABLE log (msg);"
            "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES ('a;' || new.a); "
            "INSERT INTO log VALUES ('b'); END; INSERT INTO t VALUES (1)"
        )
        assert await stub.q("SELECT msg FROM log ORDER BY rowid") == [{"msg": "a;1"}, {"msg": "b"}]


class TestValues:
    """Python values in, SQLite values out."""

    async def test_types_round_trip(self, stub: Any) -> None:
        """None, int, float, str and bytes bind as NULL, INTEGER, REAL, TEXT and BLOB, and come back."""
        rows = await stub.q(
            "SELECT ? AS n, typeof(?) AS nt, ? AS i, typeof(?) AS it, ? AS f, typeof(?) AS ft,"
            " ? AS s, typeof(?) AS st, ? AS b, typeof(?) AS bt",
            None, None, 7, 7, 1.5, 1.5, "é", "é", b"\x00\xff", b"\x00\xff",
        )  # fmt: skip
        assert rows == [
            {"n": None, "nt": "null", "i": 7, "it": "integer", "f": 1.5, "ft": "real",
             "s": "é", "st": "text", "b": b"\x00\xff", "bt": "blob"}
        ]  # fmt: skip
        assert type(rows[0]["i"]) is int and type(rows[0]["b"]) is bytes

    async def test_int_stays_integer_at_64_bits(self, stub: Any) -> None:
        """Python ints bind as INTEGER with full 64-bit precision (Cloudflare binds every JS number as REAL)."""
        big = 2**63 - 1
        assert await stub.q("SELECT ? AS v, typeof(?) AS t", big, big) == [{"v": big, "t": "integer"}]
        assert await stub.q("SELECT ? AS v", -(2**63)) == [{"v": -(2**63)}]

    async def test_int_out_of_range(self, stub: Any) -> None:
        """An int outside 64 bits raises OverflowError naming the binding."""
        with pytest.raises(OverflowError, match="binding 2"):
            await stub.q("SELECT ?, ?", 1, 2**63)

    async def test_bool_binds_as_integer(self, stub: Any) -> None:
        """True and False bind as INTEGER 1 and 0."""
        assert await stub.q("SELECT ? AS t, ? AS f, typeof(?) AS k", True, False, True) == [
            {"t": 1, "f": 0, "k": "integer"}
        ]

    async def test_bytes_like_bind_as_blob(self, stub: Any) -> None:
        """bytearray and memoryview bind as BLOB and come back as bytes."""

        def body(obj: Any, ctx: durable.State) -> Any:
            return ctx.storage.sql.exec("SELECT ? AS a, ? AS b", bytearray(b"ab"), memoryview(b"cd")).one().to_py()

        assert await inside(stub, body) == {"a": b"ab", "b": b"cd"}

    @pytest.mark.parametrize("value", [[1], {"a": 1}, object(), 1j])
    async def test_unsupported_type(self, stub: Any, value: Any) -> None:
        """Other types raise TypeError naming the type and the binding's position."""
        with pytest.raises(TypeError, match=rf"binding 2 is of type {type(value).__qualname__}"):
            await inside(stub, lambda o, c: c.storage.sql.exec("SELECT ?, ?", 1, value))

    async def test_lone_surrogate(self, stub: Any) -> None:
        """A str with a lone surrogate raises TypeError."""
        with pytest.raises(TypeError, match="binding 1 is a str with a lone surrogate"):
            await stub.q("SELECT ?", "a\ud800")

    async def test_numbered_and_named_parameters_bind_by_position(self, stub: Any) -> None:
        """?NNN, :name, @name and $name parameters are filled by position, as on Cloudflare."""
        assert await stub.q("SELECT ?2 AS a, ?1 AS b", "x", "y") == [{"a": "y", "b": "x"}]
        assert await stub.q("SELECT :p AS a, @q AS b, :p AS c", 1, 2) == [{"a": 1, "b": 2, "c": 1}]
        assert await stub.q("SELECT $v AS a", 5) == [{"a": 5}]

    def test_named_parameters_as_a_dict(self) -> None:
        """For Python 3.12+, positional bindings become a dict when every parameter has a name."""
        named = _sql_rules.named_parameters
        assert named("SELECT ?, ?", (1, 2)) == (1, 2)
        assert named("SELECT ?2, ?1", (1, 2)) == (1, 2)
        assert named("SELECT :a, @b, :a, $c", (1, 2, 3)) == {"a": 1, "b": 2, "c": 3}
        assert named("SELECT ':a', :b", (1,)) == {"b": 1}
        assert named("SELECT :a, ?", (1, 2)) is None  # an unnamed one: the sequence it is
        assert named("SELECT :a, @a", (1, 2)) is None  # two names, one key
        assert named("SELECT :a", (1, 2)) is None  # the wrong count is reported by sqlite3

    async def test_nan_binds_as_null(self, stub: Any) -> None:
        """NaN binds as NULL, as SQLite stores it."""
        assert await stub.q("SELECT ? AS v", float("nan")) == [{"v": None}]


class TestCursor:
    """SqlCursor: iteration, to_array, one, raw, column names and row counts."""

    async def test_iterator_and_to_array_share_the_stream(self, stub: Any) -> None:
        """next() and to_array() continue where the other stopped."""

        def body(obj: Any, ctx: durable.State) -> Any:
            cur = ctx.storage.sql.exec("SELECT 1 AS v UNION ALL SELECT 2 UNION ALL SELECT 3")
            first = next(cur)
            rest = cur.to_array()
            return first.v, [r.v for r in rest], cur.to_array(), list(cur)

        assert await inside(stub, body) == (1, [2, 3], [], [])

    @pytest.mark.parametrize(
        ("verb", "reads"),
        [
            ("INSERT INTO t VALUES (4), (5), (6)", (4, 6)),
            ("UPDATE t SET x = x + 1", (10, 12)),
            ("DELETE FROM t", (7, 9)),
        ],
    )
    async def test_rows_written_with_returning_is_whole_at_once(
        self, stub: Any, verb: str, reads: tuple[int, int]
    ) -> None:
        """A write with RETURNING reports all its rows written right after exec(), as workerd does
        (measured with miniflare); its rows are still read one by one, and rows_read counts as
        workerd's (miniflare 4.20260426: its writes' reads at once, then the rows returned)."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            sql.exec("CREATE TABLE t (x)")
            sql.exec("INSERT INTO t VALUES (1), (2), (3)")
            cur = sql.exec(f"{verb} RETURNING x")
            at_once, read_before = cur.rows_written, cur.rows_read
            first = next(cur).x
            rest = [row.x for row in cur]
            return at_once, read_before, first, rest, cur.rows_read, cur.rows_written

        at_once, read_before, first, rest, read, written = await inside(stub, body)
        assert (at_once, (read_before, read), written) == (3, reads, 3)
        assert len([first, *rest]) == 3

    async def test_a_failed_write_with_returning_raises_from_exec(self, stub: Any) -> None:
        """The whole write runs inside exec(): a constraint met by a later row raises there."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            sql.exec("CREATE TABLE u (x UNIQUE)")
            try:
                sql.exec("INSERT INTO u VALUES (1), (1) RETURNING x")
            except durable.SqlError as exc:
                return str(exc), sql.exec("SELECT count(*) AS n FROM u").one().n
            return None

        message, count = await inside(stub, body)
        assert message.startswith("UNIQUE constraint failed: u.x") and count == 0

    async def test_a_failed_step_fails_every_later_read(self, stub: Any) -> None:
        """A cursor whose step raised raises the same error on every later read, as workerd's
        ``toArray()`` and iteration do (measured with miniflare); it does not end as if its rows
        had run out. (workerd's ``next()`` there gives a row of nulls; durable raises.)"""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            sql.exec("CREATE TABLE t (x)")
            sql.exec("INSERT INTO t VALUES (1), (2), (3)")
            cur = sql.exec("SELECT CASE WHEN x = 2 THEN json('bad') ELSE x END AS v FROM t")
            seen: list[Any] = []
            for read in (lambda: next(cur), cur.to_array, lambda: list(cur.raw()), cur.one, lambda: next(cur)):
                try:
                    seen.append(read())
                except durable.SqlError as exc:
                    seen.append((str(exc), exc.code))
            return seen

        error = ("malformed JSON: SQLITE_ERROR", "SQLITE_ERROR")
        assert await inside(stub, body) == [error] * 5

    async def test_raw_to_array(self, stub: Any) -> None:
        """``raw().toArray()`` (``to_array``) gives the remaining rows as lists, as workerd's raw
        iterator does (measured with miniflare: ``[[1, "a"], [2, "b"]]``)."""

        def body(obj: Any, ctx: durable.State) -> Any:
            cur: Any = ctx.storage.sql.exec("SELECT 1 AS id, 'a' AS v UNION ALL SELECT 2, 'b'")
            return cur.raw().toArray()

        assert await inside(stub, body) == [[1, "a"], [2, "b"]]

    async def test_raw_continues_the_same_stream(self, stub: Any) -> None:
        """raw() gives value lists over the same stream as the row iterator."""

        def body(obj: Any, ctx: durable.State) -> Any:
            cur = ctx.storage.sql.exec("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y' UNION ALL SELECT 3, 'z'")
            raw = cur.raw()
            first = next(raw)
            second = next(cur)
            return first, second.to_py(), list(cur.raw())

        assert await inside(stub, body) == ([1, "x"], {"a": 2, "b": "y"}, [[3, "z"]])
        assert await stub.raw("SELECT abs(-123)") == [[123]]

    async def test_one(self, stub: Any) -> None:
        """one() returns the single row, and consumes the cursor."""

        def body(obj: Any, ctx: durable.State) -> Any:
            cur = ctx.storage.sql.exec("SELECT 123 AS foo, 'abc' AS bar")
            row = cur.one()
            return row.to_py(), list(cur)

        assert await inside(stub, body) == ({"foo": 123, "bar": "abc"}, [])

    async def test_one_with_no_rows(self, stub: Any) -> None:
        """one() with no rows raises Cloudflare's error."""
        with exactly(durable.SqlError, "Expected exactly one result from SQL query, but got no results."):
            await inside(stub, lambda o, c: c.storage.sql.exec("SELECT 1 WHERE 0").one())

    async def test_one_with_several_rows(self, stub: Any) -> None:
        """one() with several rows raises Cloudflare's error."""
        with exactly(durable.SqlError, "Expected exactly one result from SQL query, but got multiple results."):
            await inside(stub, lambda o, c: c.storage.sql.exec("SELECT 1 UNION ALL SELECT 2").one())

    async def test_rows_are_mappings_with_attributes(self, stub: Any) -> None:
        """A row supports row["x"], row.x, dict(row), to_py(), equality with a dict, and is a dict."""

        def body(obj: Any, ctx: durable.State) -> Any:
            row = ctx.storage.sql.exec("SELECT 1 AS x, 'b' AS y").one()
            with pytest.raises(AttributeError, match="no column 'z'"):
                row.z
            return row["x"], row.x, dict(row), row.to_py(), row == {"x": 1, "y": "b"}, isinstance(row, dict), repr(row)

        x, attr, as_dict, py, equal, is_dict, text = await inside(stub, body)
        assert (x, attr, as_dict, py, equal, is_dict) == (1, 1, {"x": 1, "y": "b"}, {"x": 1, "y": "b"}, True, True)
        assert text == "SqlRow({'x': 1, 'y': 'b'})"

    async def test_repeated_column_names(self, stub: Any) -> None:
        """column_names keeps repeats; in a row the last column of a name wins."""
        await stub.q(
            "CREATE TABLE a (id, v); CREATE TABLE b (id, w); INSERT INTO a VALUES (1, 'a'); INSERT INTO b VALUES (2, 'b')"
        )

        def body(obj: Any, ctx: durable.State) -> Any:
            cur = ctx.storage.sql.exec("SELECT * FROM a, b")
            return cur.column_names, next(cur).to_py()

        names, row = await inside(stub, body)
        assert names == ["id", "v", "id", "w"] and row == {"id": 2, "v": "a", "w": "b"}

    async def test_column_names_without_rows(self, stub: Any) -> None:
        """column_names is known before reading, and empty for a statement without results."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            return sql.exec("SELECT 1 AS a, 2 AS b WHERE 0").column_names, sql.exec("CREATE TABLE t (x)").column_names

        assert await inside(stub, body) == (["a", "b"], [])

    async def test_row_counts(self, stub: Any) -> None:
        """rows_written counts changed rows (triggers included); rows_read grows as rows are read
        (it counts the rows SQLite stepped to)."""
        await stub.q(
            "CREATE TABLE t (a); CREATE TABLE log (a); CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END"
        )

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            ins = sql.exec("INSERT INTO t VALUES (1), (2), (3)")
            upd = sql.exec("UPDATE t SET a = a + 1 WHERE a > 1")
            sel = sql.exec("SELECT a FROM t")
            counts = [sel.rows_read]
            next(sel)
            counts.append(sel.rows_read)
            sel.to_array()
            counts.append(sel.rows_read)
            ret = sql.exec("DELETE FROM log RETURNING a")
            ret_rows = len(ret.to_array())
            return ins.rows_written, upd.rows_written, counts, ret.rows_written, ret_rows

        # A scan reads the row SQLite steps to next as well (workerd, measured on a 5-row table:
        # 1 after exec(), 2 after one next(), 5 at the end; tests/test_sql_rows_counted.py).
        assert await inside(stub, body) == (6, 2, [1, 2, 3], 3, 3)

    # (statement, workerd's rows_written): workerd counts every b-tree row written (its patched SQLite).
    WORKERD_ROWS_WRITTEN = (
        ("CREATE TABLE t (a TEXT UNIQUE, b)", 3),  # its UNIQUE index's row of sqlite_master too
        ("CREATE INDEX ib ON t(b)", 1),
        ("CREATE TABLE w (k PRIMARY KEY, v, x) WITHOUT ROWID", 2),
        ("CREATE INDEX iwv ON w(v)", 1),
        ("INSERT INTO t (a) VALUES ('x')", 3),
        ("INSERT INTO t (a, b) VALUES ('y', 1)", 3),
        ("UPDATE t SET a = a || '1'", 4),
        ("UPDATE t SET b = 2", 4),
        ("UPDATE t SET b = 3 WHERE a = 'zz'", 0),
        ("UPDATE t SET rowid = rowid + 10", 6),
        ("INSERT OR REPLACE INTO t (a, b) VALUES ('x1', 5)", 3),
        ("INSERT INTO t (a, b) VALUES ('q1', 6) ON CONFLICT(a) DO UPDATE SET b = 7", 3),
        ("DELETE FROM t WHERE a = 'q1'", 1),
        ("DELETE FROM t", 2),
        ("INSERT INTO w VALUES (1, 2, 3)", 2),
        ("UPDATE w SET x = 4", 1),
        ("UPDATE w SET v = 4", 2),
        ("UPDATE w SET k = 9", 2),
        ("DELETE FROM w", 1),
        ("CREATE TABLE z (a)", 2),
        ("INSERT INTO z VALUES (1), (2)", 2),
        ("CREATE INDEX iz ON z(a)", 3),
        ("DROP TABLE z", 0),
        ("CREATE TABLE a (x INTEGER PRIMARY KEY AUTOINCREMENT, y)", 4),
        ("INSERT INTO a (y) VALUES (1)", 2),
        ("INSERT INTO a (y) VALUES (2), (3)", 3),
        ("CREATE TABLE b (y)", 2),
        ("CREATE TRIGGER tr AFTER INSERT ON b BEGIN INSERT INTO a (y) VALUES (new.y); END", 1),
        ("CREATE VIEW v AS SELECT * FROM a", 2),
        ("CREATE INDEX ia ON a(y) WHERE y > 2", 2),  # 1 + the one row with y > 2
        ("INSERT INTO a (y) VALUES (10)", 3),
        ("CREATE INDEX ie ON b(y + 1)", 1),
        ("UPDATE b SET y = 6", 0),
        ("ALTER TABLE b ADD COLUMN z", 1),
        ("INSERT INTO z2 SELECT 1", None),  # refused: no such table (nothing written)
        ("DROP VIEW v", 0),
        ("DROP INDEX ia", 0),
        ("CREATE TABLE c (p, q, PRIMARY KEY (p, q)) WITHOUT ROWID", 2),
        ("CREATE UNIQUE INDEX cq ON c(q)", 1),
        ("INSERT INTO c VALUES (1, 2), (3, 4)", 4),
        ("UPDATE c SET q = q + 10", 4),
        ("CREATE TABLE d (id INTEGER PRIMARY KEY, r REFERENCES d(id) ON DELETE CASCADE)", 2),
        ("INSERT INTO d VALUES (1, NULL), (2, 1), (3, 2)", 3),
        ("DELETE FROM d WHERE id = 1", 3),
        ("REPLACE INTO c VALUES (1, 12)", 2),
        ("CREATE TABLE IF NOT EXISTS t (a TEXT UNIQUE, b)", 0),  # exists: nothing written
        ("CREATE TABLE IF NOT EXISTS n (a UNIQUE)", 3),
        ("CREATE VIEW IF NOT EXISTS v2 AS SELECT 1", 2),
        ("CREATE VIEW IF NOT EXISTS v2 AS SELECT 1", 0),
        ("CREATE TRIGGER IF NOT EXISTS tn AFTER INSERT ON n BEGIN SELECT 1; END", 1),
        ("CREATE TRIGGER IF NOT EXISTS tn AFTER INSERT ON n BEGIN SELECT 1; END", 0),
        ("CREATE TABLE u3 (a UNIQUE, b UNIQUE)", 4),
        ("CREATE TABLE u4 (a PRIMARY KEY, b)", 3),
        ("CREATE TABLE u6 (a TEXT PRIMARY KEY, b UNIQUE) WITHOUT ROWID", 3),
        ("CREATE TABLE u7 (a, b, UNIQUE (a, b), UNIQUE (a, b))", 3),  # SQLite keeps one of the two
        ("CREATE TABLE u8 (a UNIQUE UNIQUE)", 3),
        ("CREATE TABLE u9 AS SELECT 1 AS x UNION SELECT 2", 4),  # and its two rows
        ("INSERT INTO u3 (a) VALUES ('x'), ('y') RETURNING a", 6),
        ("UPDATE u3 SET a = a || '1' RETURNING a", 4),
        ("CREATE TABLE u10 (a INTEGER PRIMARY KEY AUTOINCREMENT, b UNIQUE)", 3),  # sqlite_sequence exists
        ("INSERT INTO u10 (b) VALUES (1), (2) RETURNING a", 5),
    )

    async def test_rows_written_counts_index_entries(self, stub: Any) -> None:
        """rows_written counts index entries and sqlite_master rows as workerd does (its observed figures)."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            seen: list[tuple[str, int | None]] = []
            for statement, _ in self.WORKERD_ROWS_WRITTEN:
                try:
                    cursor = sql.exec(statement)
                except durable.SqlError:
                    seen.append((statement, None))
                    continue
                cursor.to_array()
                seen.append((statement, cursor.rows_written))
            return seen

        assert await inside(stub, body) == list(self.WORKERD_ROWS_WRITTEN)

    async def test_rows_written_of_a_cached_statement(self, stub: Any) -> None:
        """A statement run again (from sqlite3's statement cache) counts the same, and follows schema changes."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            sql.exec("CREATE TABLE t (a, b)")
            counts = [sql.exec("INSERT INTO t VALUES (1, 2)").rows_written]
            sql.exec("CREATE INDEX ta ON t(a)")
            counts.append(sql.exec("INSERT INTO t VALUES (1, 2)").rows_written)
            sql.exec("DROP INDEX ta")
            counts.append(sql.exec("INSERT INTO t VALUES (1, 2)").rows_written)
            cursor = sql.exec("INSERT INTO t VALUES (3, 4) RETURNING a")
            counts.append(len(cursor.to_array()) and cursor.rows_written)
            return counts

        assert await inside(stub, body) == [1, 2, 1, 1]

    async def test_same_statement_twice_overlapping(self, stub: Any) -> None:
        """Two cursors of the same SQL can be read interleaved (workerd's test)."""

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            one = sql.exec("SELECT 1 AS v UNION ALL SELECT 2")
            two = sql.exec("SELECT 1 AS v UNION ALL SELECT 2")
            return [r.v for r in two], [r.v for r in one]

        assert await inside(stub, body) == ([1, 2], [1, 2])

    async def test_error_in_a_later_row(self, stub: Any) -> None:
        """An error met while stepping to a later row is a SqlError, raised by the read that steps there.

        As in workerd, reading a row also steps to the next one, so the error comes with the
        read of the row before the failing one. Reading on raises it again, as workerd's
        ``toArray()`` and iteration do (measured with miniflare).
        """
        await stub.q("CREATE TABLE t (a); INSERT INTO t VALUES (1), (2), (3)")

        def body(obj: Any, ctx: durable.State) -> Any:
            cur = ctx.storage.sql.exec("SELECT CASE WHEN a = 3 THEN json('{bad') ELSE a END AS v FROM t")
            first = next(cur).v
            with exactly(durable.SqlError, "malformed JSON: SQLITE_ERROR"):
                next(cur)
            with exactly(durable.SqlError, "malformed JSON: SQLITE_ERROR"):
                list(cur)
            return first

        assert await inside(stub, body) == 1

    async def test_cursor_of_a_reset_object(self, stub: Any) -> None:
        """A cursor kept past a reset raises the reset error when read."""
        holder: dict[str, Any] = {}

        def body(obj: Any, ctx: durable.State) -> None:
            holder["cur"] = ctx.storage.sql.exec("SELECT 1 UNION ALL SELECT 2")

        await inside(stub, body)
        with pytest.raises(durable.ObjectAbortedError):
            await inside(stub, lambda o, c: c.abort("bye"))
        with pytest.raises(durable.ObjectResetError):
            holder["cur"].to_array()


class TestRestrictions:
    """What production Cloudflare refuses is refused, with its messages."""

    @pytest.mark.parametrize(
        "sql",
        [
            "BEGIN",
            "BEGIN TRANSACTION",
            "BEGIN IMMEDIATE",
            "COMMIT",
            "END",
            "ROLLBACK",
            "SAVEPOINT x",
            "RELEASE x",
            "ROLLBACK TO x",
        ],
    )
    async def test_transactions(self, stub: Any, sql: str) -> None:
        """BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE are refused with Cloudflare's advice."""
        with exactly(durable.SqlError, _sql_rules.TRANSACTION_MESSAGE):
            await stub.q(sql)

    @pytest.mark.parametrize(
        ("sql", "table"),
        [
            ("SELECT name FROM dbstat", "dbstat"),
            ("SELECT count(*) FROM DBSTAT", "DBSTAT"),
            ("SELECT * FROM sqlite_dbpage", "sqlite_dbpage"),
            ("WITH x AS (SELECT * FROM dbstat) SELECT 1 FROM x", "dbstat"),
        ],
    )
    async def test_virtual_tables_workerd_lacks(self, stub: Any, sql: str, table: str) -> None:
        """Python's SQLite may have dbstat (it lists the reserved tables); workerd's has not:
        ``no such table: dbstat: SQLITE_ERROR`` there (measured with miniflare), and here."""
        await inside(stub, lambda o, c: c.storage.put("k", 1))
        with exactly(durable.SqlError, f"no such table: {table}: SQLITE_ERROR"):
            await stub.q(sql)

    async def test_reading_cf_kv(self, stub: Any) -> None:
        """Reading _cf_KV is refused as in production."""
        await inside(stub, lambda o, c: c.storage.put("k", 1))
        with exactly(durable.SqlError, "access to _cf_KV.key is prohibited: SQLITE_AUTH"):
            await stub.q("SELECT * FROM _cf_KV")
        with exactly(durable.SqlError, "access to _cf_KV.value is prohibited: SQLITE_AUTH"):
            await stub.q("SELECT value FROM _cf_KV")

    @pytest.mark.parametrize(
        "sql",
        [
            "CREATE TABLE _cf_x (a)",
            "CREATE TABLE _cf_X (a)",
            "DROP TABLE _CF_KV",
            "CREATE VIEW _cf_v AS SELECT 1",
            "CREATE INDEX _cf_i ON t (a)",
            "CREATE INDEX i ON _cf_KV (value)",
            "CREATE TRIGGER _cf_tr AFTER INSERT ON t BEGIN SELECT 1; END",
            "INSERT INTO _cf_KV VALUES ('k', x'00')",
            "DELETE FROM _cf_KV",
            "UPDATE _cf_KV SET value = NULL",
            "DROP TABLE _cf_KV",
            "DROP TABLE _cf_METADATA",
            "ALTER TABLE _cf_KV ADD COLUMN x",
            "ALTER TABLE t RENAME TO _cf_t",
            'ALTER TABLE t RENAME TO "_cf_T"',
            "PRAGMA table_info(_cf_KV)",
            "PRAGMA table_xinfo(_cf_KV)",
            "PRAGMA index_list(_cf_KV)",
            "PRAGMA foreign_key_list(_cf_KV)",
            "PRAGMA quick_check(_cf_KV)",
        ],
    )
    async def test_reserved_names(self, stub: Any, sql: str) -> None:
        """Names starting with _cf_ cannot be created, changed or inspected (the runtime's tables in
        any spelling: SQLite's authorizer sees the name they were created with)."""
        await stub.q("CREATE TABLE t (a)")
        await inside(stub, lambda o, c: c.storage.put("k", 1))
        await inside(stub, lambda o, c: c.storage.set_alarm(4 * 10**12))  # _cf_METADATA exists from the first alarm
        with pytest.raises(durable.SqlError, match=r"(not authorized|prohibited): SQLITE_AUTH$"):
            await stub.q(sql)

    async def test_create_reserved_message(self, stub: Any) -> None:
        """Creating a _cf_ table gives exactly 'not authorized: SQLITE_AUTH'."""
        with exactly(durable.SqlError, "not authorized: SQLITE_AUTH"):
            await stub.q("CREATE TABLE _cf_x (name TEXT)")

    @pytest.mark.parametrize(
        "sql",
        [
            "ATTACH ':memory:' AS other",
            "DETACH other",
            "CREATE TEMP TABLE tt (a)",
            "CREATE TEMPORARY VIEW tv AS SELECT 1",
            "CREATE TEMP TRIGGER ttr AFTER INSERT ON t BEGIN SELECT 1; END",
            "CREATE VIRTUAL TABLE v USING fts5abcd(a)",
            "CREATE VIRTUAL TABLE v USING fts4(a)",
            "CREATE VIRTUAL TABLE _cf_v USING fts5(a)",
        ],
    )
    async def test_attach_temp_and_virtual_tables(self, stub: Any, sql: str) -> None:
        """ATTACH/DETACH, TEMP objects and virtual tables other than FTS5 and R*Tree are refused."""
        await stub.q("CREATE TABLE t (a)")
        with exactly(durable.SqlError, "not authorized: SQLITE_AUTH"):
            await stub.q(sql)

    async def test_allowed_virtual_tables(self, stub: Any) -> None:
        """FTS5 (any case), fts5vocab, rtree and rtree_i32 work, with FTS5's functions."""
        await stub.q(
            "CREATE VIRTUAL TABLE docs USING FtS5(title, body);"
            "CREATE VIRTUAL TABLE vocab USING fTs5VoCaB(docs, row);"
            "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1);"
            "CREATE VIRTUAL TABLE iboxes USING rtree_i32(id, x0, x1);"
            "INSERT INTO docs VALUES ('one', 'hello world'), ('two', 'goodbye');"
            "INSERT INTO boxes VALUES (1, 0, 10)"
        )
        rows = await stub.q(
            "SELECT title, highlight(docs, 1, '[', ']') AS h FROM docs WHERE docs MATCH 'hello' ORDER BY bm25(docs)"
        )
        assert rows == [{"title": "one", "h": "[hello] world"}]
        assert await stub.q("SELECT term FROM vocab WHERE term = 'hello'") == [{"term": "hello"}]
        assert await stub.q("SELECT id FROM boxes WHERE x0 <= 5 AND x1 >= 5") == [{"id": 1}]
        await stub.q("DROP TABLE docs")

    @pytest.mark.parametrize(
        "sql",
        [
            "PRAGMA data_version",
            "PRAGMA foreign_keys",
            "PRAGMA foreign_keys = ON",
            "PRAGMA defer_foreign_keys = 'off'",
            "PRAGMA case_sensitive_like = true",
            "PRAGMA ignore_check_constraints = 0",
            "PRAGMA legacy_alter_table = no",
            "PRAGMA recursive_triggers = yes",
            "PRAGMA reverse_unordered_selects = FALSE",
            "PRAGMA table_list",
            "PRAGMA table_info(t)",
            "PRAGMA table_xinfo('t')",
            "PRAGMA index_list(t)",
            "PRAGMA index_info(t_a)",
            "PRAGMA index_xinfo(t_a)",
            "PRAGMA foreign_key_list(t)",
            "PRAGMA foreign_key_check",
            "PRAGMA foreign_key_check(t)",
            "PRAGMA quick_check",
            "PRAGMA quick_check(1)",
            "PRAGMA quick_check(t)",
            "PRAGMA optimize",
            "PRAGMA optimize(-1)",
            "PRAGMA optimize(0x7fffffff)",
            "PRAGMA optimize=0x10002",
            "ANALYZE",
        ],
    )
    async def test_allowed_pragmas(self, stub: Any, sql: str) -> None:
        """The PRAGMAs on Cloudflare's allow-list work, with the arguments it allows."""
        await stub.q("CREATE TABLE t (a); CREATE INDEX t_a ON t (a)")
        await stub.q(sql)

    @pytest.mark.parametrize(
        "sql",
        [
            "PRAGMA user_version",
            "PRAGMA user_version = 3",
            "PRAGMA data_version = 5",
            "PRAGMA page_size",  # refused by workerd too
            "PRAGMA main.page_size",
            "SELECT * FROM pragma_page_size()",
            "PRAGMA page_size = 8192",
            "PRAGMA max_page_count = 65536",
            "PRAGMA journal_mode",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA synchronous = OFF",
            "PRAGMA hard_heap_limit = 1024",
            "PRAGMA integrity_check",
            "PRAGMA function_list",
            "PRAGMA foreign_keys = maybe",
            "PRAGMA optimize(abc)",
            "PRAGMA table_info",
            "PRAGMA TABLE_INFO(t)",
            "PRAGMA main.user_version",
        ],
    )
    async def test_refused_pragmas(self, stub: Any, sql: str) -> None:
        """Other PRAGMAs, and write forms of read-only ones, are not authorized."""
        await stub.q("CREATE TABLE t (a)")
        with exactly(durable.SqlError, "not authorized: SQLITE_AUTH"):
            await stub.q(sql)

    @pytest.mark.parametrize("fn", ["sqlite_version()", "sqlite_source_id()", "sqlite_compileoption_used('X')"])
    async def test_refused_functions(self, stub: Any, fn: str) -> None:
        """Functions outside the allow-list are refused by name."""
        name = fn.split("(")[0]
        with exactly(durable.SqlError, f"not authorized to use function: {name} at offset 7: SQLITE_ERROR"):
            await stub.q(f"SELECT {fn}")

    async def test_allowed_functions(self, stub: Any) -> None:
        """JSON functions and operators, math, date/time, aggregate and window functions work."""
        rows = await stub.q(
            """SELECT '{"a":2,"c":[4,5,{"f":7}]}' -> '$.c' AS arrow, '{"a":2}' ->> '$.a' AS arrow2,
                      json_extract('{"x":1}', '$.x') AS je, json_array(1, 2) AS ja, cos(0) AS c, pi() > 3 AS p,
                      date('2024-01-02') AS d, unixepoch('1970-01-02') AS u, abs(-3) AS a, upper('x') AS up,
                      length(current_timestamp) AS ts"""
        )
        assert rows == [
            {"arrow": '[4,5,{"f":7}]', "arrow2": 2, "je": 1, "ja": "[1,2]", "c": 1.0, "p": 1,
             "d": "2024-01-02", "u": 86400, "a": 3, "up": "X", "ts": 19}
        ]  # fmt: skip
        assert await stub.q(
            "SELECT sum(v) AS s, row_number() OVER () AS r FROM (SELECT 1 AS v UNION ALL SELECT 2)"
        ) == [{"s": 3, "r": 1}]
        assert await stub.q("SELECT value FROM json_each('[1,2]')") == [{"value": 1}, {"value": 2}]

    async def test_durable_own_storage_is_unaffected(self, stub: Any) -> None:
        """Once SQL is used, the key-value API, alarms and delete_all still work (they are not user SQL)."""

        async def body(obj: Any, ctx: durable.State) -> Any:
            s = ctx.storage
            s.sql.exec("SELECT 1")
            await s.put({f"k{i:03}": i for i in range(300)})
            got = await s.get([f"k{i:03}" for i in range(300)])
            await s.set_alarm(4 * 10**12)
            listed = await s.list(prefix="k00")
            deleted = await s.delete([f"k{i:03}" for i in range(150)])
            return len(got), len(listed), deleted, await s.get_alarm()

        assert await inside(stub, body) == (300, 10, 150, 4 * 10**12)


class TestLimits:
    """Cloudflare's SQLite limits."""

    @pytest.mark.parametrize(
        ("sql", "message"),
        [
            (
                "CREATE TABLE wide (" + ", ".join(f"c{i}" for i in range(101)) + ")",
                "too many columns on wide: SQLITE_ERROR",
            ),
            ("SELECT " + "1+" * 100 + "1", "Expression tree is too large (maximum depth 100): SQLITE_ERROR"),
            (" UNION ALL ".join(["SELECT 1"] * 6), "too many terms in compound SELECT: SQLITE_ERROR"),
            (
                "SELECT json_array(" + ",".join(["1"] * 128) + ")",
                "too many arguments on function json_array at offset 7: SQLITE_ERROR",
            ),
            ("SELECT 'a' LIKE '" + "a" * 51 + "'", "LIKE or GLOB pattern too complex: SQLITE_ERROR"),
            ("SELECT zeroblob(2 * 1024 * 1024 + 65)", "string or blob too big: SQLITE_TOOBIG"),
            ("SELECT 1" + " " * 100_000, "statement too long: SQLITE_TOOBIG"),
            ("SELECT 1;" + " SELECT 2;" * 10_000, "statement too long: SQLITE_TOOBIG"),
            ("INSERT INTO t VALUES " + ",".join(["(1)"] * 20_000), "out of memory: SQLITE_NOMEM"),
        ],
    )
    async def test_limits(self, stub: Any, sql: str, message: str) -> None:
        """Columns, expression depth, compound SELECTs, function arguments, LIKE patterns, lengths, VM size."""
        await stub.q("CREATE TABLE t (a)")
        with exactly(durable.SqlError, message):
            await stub.q(sql)

    async def test_within_limits(self, stub: Any) -> None:
        """Exactly at the limits, statements work."""
        await stub.q("CREATE TABLE wide (" + ", ".join(f"c{i}" for i in range(100)) + ")")
        assert len(await stub.q(" UNION ALL ".join(["SELECT 1"] * 5))) == 5
        assert await stub.q("SELECT length(zeroblob(2 * 1024 * 1024)) AS n") == [{"n": 2 * 1024 * 1024}]
        assert await stub.raw("SELECT " + ", ".join(["?"] * 100), *range(100)) == [list(range(100))]

    async def test_bound_parameters(self, stub: Any) -> None:
        """More than 100 bound parameters is too many."""
        with exactly(durable.SqlError, "too many SQL variables at offset 307: SQLITE_ERROR"):
            await stub.q("SELECT " + ", ".join(["?"] * 101), *range(101))

    async def test_trigger_depth(self, stub: Any) -> None:
        """Triggers recurse at most 10 levels."""
        await stub.q(
            "PRAGMA recursive_triggers = ON; CREATE TABLE r (n);"
            "CREATE TRIGGER rt AFTER INSERT ON r WHEN new.n < 100 BEGIN INSERT INTO r VALUES (new.n + 1); END"
        )
        with exactly(durable.SqlError, "too many levels of trigger recursion: SQLITE_ERROR"):
            await stub.q("INSERT INTO r VALUES (0)")

    async def test_row_length_follows_runtime_limits(self) -> None:
        """Runtime(limits=Limits.unlimited()) lifts the 2 MB string/BLOB limit."""
        async with durable.Runtime(limits=durable.Limits.unlimited()) as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            assert await stub.q("SELECT length(zeroblob(3000000)) AS n") == [{"n": 3000000}]


class TestErrors:
    """SQLite errors become durable.SqlError, worded as Cloudflare words them."""

    async def test_constraint(self, stub: Any) -> None:
        """An extended code is named by its primary code, which is also the error's code."""
        await stub.q("CREATE TABLE t (a UNIQUE)")
        await stub.q("INSERT INTO t VALUES (1)")

        def body(obj: Any, ctx: durable.State) -> Any:
            try:
                ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
            except durable.SqlError as exc:
                return str(exc), exc.code, type(exc.__cause__).__name__, isinstance(exc, durable.DurableError)
            raise AssertionError("no error")

        assert await inside(stub, body) == (
            "UNIQUE constraint failed: t.a: SQLITE_CONSTRAINT",
            "SQLITE_CONSTRAINT",
            "IntegrityError",
            True,
        )

    async def test_foreign_keys_are_enforced(self, stub: Any) -> None:
        """Foreign keys are on, as on Cloudflare."""
        await stub.q("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid REFERENCES p (id))")
        with exactly(durable.SqlError, "FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"):
            await stub.q("INSERT INTO c VALUES (5)")

    async def test_datatype_mismatch(self, stub: Any) -> None:
        """A non-integer rowid is a datatype mismatch (workerd's test)."""
        await stub.q("CREATE TABLE test_error_codes (name TEXT)")
        with exactly(durable.SqlError, "datatype mismatch: SQLITE_MISMATCH"):
            await stub.q("INSERT INTO test_error_codes(rowid, name) values ('yeah','nah')")

    @pytest.mark.parametrize(
        ("sql", "message"),
        [
            ("SELECT ;", 'near ";": syntax error at offset 7: SQLITE_ERROR'),
            ("SELECT -;", 'near ";": syntax error at offset 8: SQLITE_ERROR'),
            ("SELECT * bunk;", 'near "bunk": syntax error at offset 9: SQLITE_ERROR'),
            ("INSER INTO xyz VALUES ('a'),('b');", 'near "INSER": syntax error at offset 0: SQLITE_ERROR'),
            ("SELECT 'é', ;", 'near ";": syntax error at offset 13: SQLITE_ERROR'),
            ("SELECT 1; SELECT * bunk", 'near "bunk": syntax error at offset 9: SQLITE_ERROR'),
            ("SELECT 'abc", 'unrecognized token: "\'abc" at offset 7: SQLITE_ERROR'),
            ("SELECT", "incomplete input: SQLITE_ERROR"),
            ("SELECT * FROM nosuch", "no such table: nosuch: SQLITE_ERROR"),
            ("SELECT nosuch FROM t", "no such column: nosuch at offset 7: SQLITE_ERROR"),
            ("SELECT nosuch()", "no such function: nosuch at offset 7: SQLITE_ERROR"),
            ("CREATE TABLE t (x)", "table t already exists at offset 13: SQLITE_ERROR"),
        ],
    )
    async def test_messages(self, stub: Any, sql: str, message: str) -> None:
        """Messages carry workerd's ' at offset N' where SQLite locates the error, then the code."""
        await stub.q("CREATE TABLE t (a, b)")
        with exactly(durable.SqlError, message):
            await stub.q(sql)

    @needs_libsqlite
    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT ;",
            "SELECT a, a a a FROM t",
            "SELECT * FROM t WHERE a = = 1",
            "SELECT (1 + ) FROM t",
            "SELECT " + ", ".join(["?"] * 101),
            "SELECT ?1, :a, ?, " + ", ".join([f":p{i}" for i in range(99)]),
            "SELECT ?101",
            "SELECT ?0",
            "SELECT x'zz'",
            "SELECT 123abc",
            "SELECT `a",
            "INSERT INTO t VALUES (1,)",
            "CREATE TABLE u (a INTEGER PRIMARY KEY PRIMARY)",
            "SELECT t.nosuch FROM t",
            "SELECT a FROM t, t AS u",
            "SELECT max() FROM t",
            "SELECT abs(1, 2)",
            "SELECT nosuch()",
            "SELECT x FROM (SELECT 1 AS y)",
            "CREATE TABLE t (x)",
            "SELECT * FROM nosuch",
            "UPDATE t SET zz = 1",
            "INSERT INTO t VALUES (1, 2, 3)",
            "SELECT '😀', é FROM t",
            # the named token in a place that can hold it (strings, aliases, SET targets...)
            "UPDATE t SET zz = zz",
            "UPDATE t SET (a, zz) = (1, 2)",
            "UPDATE t SET zz = (SELECT zz FROM t)",
            "UPDATE t SET a = 1, zz = a",
            "UPDATE t SET a = abs(zz)",
            'SELECT "a" FROM t, t AS u',
            "SELECT main.t.a FROM t WHERE main.t.zz = 1",
            "SELECT zz FROM t AS zz",
            "SELECT 'zz(' , zz(1)",
            "SELECT a FROM t WHERE a = :zz AND zz = 1",
            "WITH zz(a) AS (SELECT 1) SELECT zz FROM zz",
            "SELECT t.a FROM t JOIN t AS u ON zz = 1 WHERE (zz) = 1",
            "SELECT t.a FROM t JOIN t AS u ON u.zz = 1 WHERE u.zz = 2",
            "SELECT a FROM t AS x JOIN t AS u ON x.a = u.a JOIN t AS v ON zz = 1 WHERE x.a = 2",
            "INSERT INTO t SELECT a FROM t WHERE 1 ON CONFLICT (zz) DO NOTHING",
        ],
    )
    def test_offsets_match_sqlite(self, sql: str) -> None:
        """The offset durable computes is the one sqlite3_error_offset gives."""
        ref = Reference("CREATE TABLE t (a, b)")
        LIB.sqlite3_limit(ref.db, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)
        try:
            rc, _, _, message, offset = ref.prepare(sql.encode())
        finally:
            ref.close()
        assert rc != 0
        assert _sql_rules.error_offset(sql, message) == (None if offset < 0 else offset)

    async def test_remote_error(self, stub: Any) -> None:
        """Over RPC the caller gets a SqlError with the same message and code, marked remote."""
        with pytest.raises(durable.SqlError) as info:
            await stub.q("SELECT * FROM nosuch")
        assert str(info.value) == "no such table: nosuch: SQLITE_ERROR"
        assert info.value.code == "SQLITE_ERROR" and getattr(info.value, "remote", False)


class TestCommits:
    """SQL writes join the implicit transaction: coalesced, output-gated, rolled back together."""

    async def test_sql_and_kv_commit_together(self, stub: Any) -> None:
        """SQL and key-value writes of one turn are durable after it (they survive eviction)."""

        async def body(obj: Any, ctx: durable.State) -> None:
            ctx.storage.sql.exec("CREATE TABLE t (a)")
            await ctx.storage.put("k", 1)
            ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
            ctx.storage.kv.put("j", 2)

        await inside(stub, body)
        await testing.evict(stub)
        assert await stub.q("SELECT a FROM t") == [{"a": 1}]
        assert await inside(stub, lambda o, c: c.storage.kv.get("k") + c.storage.kv.get("j")) == 3

    async def test_failed_commit_rolls_back_sql_and_kv(self, durable_runtime: durable.Runtime) -> None:
        """When the commit fails, the held result becomes a reset error and every write of the batch is gone."""
        ns = durable_runtime.namespace(Obj)
        stub = ns.get_by_name("a")
        await stub.q("CREATE TABLE t (a)")
        testing.fail_next_commit(stub)

        async def body(obj: Any, ctx: durable.State) -> None:
            ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
            await ctx.storage.put("k", 1)
            ctx.storage.sql.exec("CREATE TABLE u (b)")

        with pytest.raises(durable.ObjectResetError):
            await inside(stub, body)
        fresh = ns.get_by_name("a")
        assert await fresh.q("SELECT name FROM sqlite_master WHERE name = 'u'") == []
        assert await fresh.q("SELECT a FROM t") == []
        assert await inside(fresh, lambda o, c: c.storage.kv.get("k")) is None

    async def test_ddl_is_a_write(self, durable_runtime: durable.Runtime) -> None:
        """CREATE TABLE alone holds the output gate and is rolled back by a failed commit."""
        ns = durable_runtime.namespace(Obj)
        stub = ns.get_by_name("a")
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await stub.q("CREATE TABLE t (a)")
        assert await ns.get_by_name("a").q("SELECT name FROM sqlite_master") == []

    async def test_error_after_write_still_commits(self, stub: Any) -> None:
        """An exception in the handler does not undo its SQL writes (only a failed commit does)."""
        await stub.q("CREATE TABLE t (a)")
        with pytest.raises(ValueError, match="after the write"):
            await stub.write_then_fail("INSERT INTO t VALUES (1)")
        assert await stub.q("SELECT a FROM t") == [{"a": 1}]

    async def test_failed_statement_keeps_earlier_ones(self, stub: Any) -> None:
        """In a multi-statement exec, statements before a failing one keep their effect."""
        await stub.q("CREATE TABLE t (a UNIQUE)")
        with pytest.raises(durable.SqlError, match="UNIQUE"):
            await stub.q("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); INSERT INTO t VALUES (1)")
        assert await stub.q("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 2}]

    async def test_reads_are_not_held_and_commit_nothing(self, durable_runtime: durable.Runtime) -> None:
        """A call that only reads commits nothing, so an injected commit failure waits for a write."""
        ns = durable_runtime.namespace(Obj)
        stub = ns.get_by_name("a")
        testing.fail_next_commit(stub)
        assert await stub.q("SELECT 1 AS x") == [{"x": 1}]
        assert await stub.q("PRAGMA table_list") != []
        with pytest.raises(durable.ObjectResetError):
            await stub.q("CREATE TABLE t (a)")

    async def test_reads_open_no_transaction(self, stub: Any) -> None:
        """A read runs outside the implicit transaction; a write opens it."""

        def body(obj: Any, ctx: durable.State) -> Any:
            db = ctx.storage._db
            ctx.storage.sql.exec("SELECT 1")
            after_read = db.in_transaction
            ctx.storage.sql.exec("CREATE TABLE t (a)")
            return after_read, db.in_transaction

        assert await inside(stub, body) == (False, True)

    async def test_cached_write_statement_still_opens_the_transaction(self, stub: Any) -> None:
        """A write statement run again (from the statement cache) still joins the transaction."""
        await stub.q("CREATE TABLE t (a)")
        for _ in range(3):
            await stub.q("INSERT INTO t VALUES (1)")

        def body(obj: Any, ctx: durable.State) -> Any:
            ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
            return ctx.storage._db.in_transaction

        assert await inside(stub, body) is True
        await testing.evict(stub)
        assert await stub.q("SELECT count(*) AS n FROM t") == [{"n": 4}]

    async def test_forgotten_write_statement_still_opens_the_transaction(
        self, stub: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the bound on remembered writes, a cached write statement is compiled, and caught, again."""
        monkeypatch.setattr(_sql, "_WRITES_REMEMBERED", 2)
        await stub.q("CREATE TABLE t (a)")
        for value in range(4):  # the third distinct write makes the connection forget them all
            await stub.q(f"INSERT INTO t VALUES ({value})")

        def body(obj: Any, ctx: durable.State) -> Any:
            ctx.storage.sql.exec("INSERT INTO t VALUES (0)")  # in Python's statement cache, forgotten here
            return ctx.storage._db.in_transaction

        assert await inside(stub, body) is True
        await testing.evict(stub)
        assert await stub.q("SELECT count(*) AS n FROM t") == [{"n": 5}]

    async def test_reading_does_not_create_a_database(self, tmp_path: Path) -> None:
        """On a persisted runtime, SQL reads of a new object create no file; its first write does."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            stub = ns.get_by_name("fresh")
            assert await stub.q("SELECT 1 AS one") == [{"one": 1}]
            assert await stub.q("SELECT name FROM sqlite_master") == []
            assert await stub.q("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) SELECT x FROM c") == [
                {"x": 1}, {"x": 2}, {"x": 3}
            ]  # fmt: skip
            with exactly(durable.SqlError, "no such table: t: SQLITE_ERROR"):
                await stub.q("SELECT * FROM t")
            assert await inside(stub, lambda o, c: c.storage.sql.database_size) == 4096  # workerd's
            assert not list(tmp_path.glob("Obj/*"))
            assert await testing.list_ids(ns) == []
            await stub.q("CREATE TABLE t (a)")
            assert len(list(tmp_path.glob("Obj/*.sqlite"))) == 1
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("fresh")
            assert await stub.q("SELECT name FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\'") == [
                {"name": "t"}
            ]

    async def test_switches_set_before_the_database_exists(self, stub: Any) -> None:
        """PRAGMA switches read or set before the first write apply to the database once it exists."""
        assert await stub.q("PRAGMA foreign_keys") == [{"foreign_keys": 1}]
        await stub.q("PRAGMA foreign_keys = OFF")
        assert await stub.q("PRAGMA foreign_keys") == [{"foreign_keys": 0}]
        await stub.q(
            "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid REFERENCES p (id)); INSERT INTO c VALUES (5)"
        )
        assert await stub.q("PRAGMA foreign_keys") == [{"foreign_keys": 0}]
        assert await stub.q("SELECT pid FROM c") == [{"pid": 5}]

    async def test_deferred_foreign_key_violation_resets(self, durable_runtime: durable.Runtime) -> None:
        """A deferred constraint still violated at commit resets the object with Cloudflare's message."""
        ns = durable_runtime.namespace(Obj)
        stub = ns.get_by_name("a")
        await stub.q("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid REFERENCES p (id))")
        message = (
            "Durable Object was reset and rolled back to its last known good state because the application "
            "left the database in a state where constraints were violated: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"
        )
        with exactly(durable.ObjectResetError, message) as info:
            await stub.q("PRAGMA defer_foreign_keys = ON; INSERT INTO c VALUES (5)")
        assert getattr(info.value, "durable_object_reset", False)
        with exactly(durable.ObjectResetError, message):
            await stub.q("SELECT 1")  # the stub that saw the reset stays broken
        fresh = ns.get_by_name("a")
        assert await fresh.q("SELECT * FROM c") == []
        assert await fresh.q(
            "PRAGMA defer_foreign_keys = ON; INSERT INTO p VALUES (5); INSERT INTO c VALUES (5); SELECT count(*) AS n FROM c"
        ) == [{"n": 1}]

    async def test_foreign_keys_off_within_transaction_is_a_no_op(self, stub: Any) -> None:
        """PRAGMA foreign_keys cannot be changed inside the open implicit transaction (SQLite's rule)."""
        await stub.q("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid REFERENCES p (id))")
        with pytest.raises(durable.SqlError, match="FOREIGN KEY"):
            await stub.q("INSERT INTO p VALUES (1); PRAGMA foreign_keys = OFF; INSERT INTO c VALUES (5)")


class TestTransactions:
    """transaction() and transaction_sync() take in SQL and key-value writes alike."""

    async def test_transaction_sync_commits_both(self, stub: Any) -> None:
        """transaction_sync returns the closure's value and keeps its SQL and KV writes."""

        def body(obj: Any, ctx: durable.State) -> Any:
            def work() -> str:
                ctx.storage.sql.exec("CREATE TABLE t (a); INSERT INTO t VALUES (1)")
                ctx.storage.kv.put("k", "v")
                return "done"

            return ctx.storage.transaction_sync(work)

        assert await inside(stub, body) == "done"
        await testing.evict(stub)
        assert await stub.q("SELECT a FROM t") == [{"a": 1}]
        assert await inside(stub, lambda o, c: c.storage.kv.get("k")) == "v"

    async def test_transaction_sync_failure_rolls_back_both(self, stub: Any) -> None:
        """If the closure raises, its SQL and KV writes are undone and the error propagates."""
        await stub.q("CREATE TABLE t (a)")

        def body(obj: Any, ctx: durable.State) -> Any:
            def work() -> None:
                ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
                ctx.storage.kv.put("k", "v")
                raise KeyError("boom")

            with pytest.raises(KeyError):
                ctx.storage.transaction_sync(work)
            return ctx.storage.sql.exec("SELECT count(*) AS n FROM t").one().n, ctx.storage.kv.get("k")

        assert await inside(stub, body) == (0, None)

    async def test_nested_inner_failure_rolls_back_only_inner(self, stub: Any) -> None:
        """A failing inner transaction_sync undoes only its own writes."""
        await stub.q("CREATE TABLE t (a)")

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql

            def inner() -> None:
                sql.exec("INSERT INTO t VALUES (2)")
                ctx.storage.kv.put("inner", 1)
                raise RuntimeError("inner")

            def outer() -> None:
                sql.exec("INSERT INTO t VALUES (1)")
                with pytest.raises(RuntimeError):
                    ctx.storage.transaction_sync(inner)
                sql.exec("INSERT INTO t VALUES (3)")
                ctx.storage.kv.put("outer", 1)

            ctx.storage.transaction_sync(outer)

        await inside(stub, body)
        await testing.evict(stub)
        assert await stub.q("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 3}]
        assert await inside(stub, lambda o, c: (c.storage.kv.get("inner"), c.storage.kv.get("outer"))) == (None, 1)

    async def test_sql_errors_inside_transaction_sync(self, stub: Any) -> None:
        """A SQL error in the closure rolls it back; BEGIN stays refused inside it."""
        await stub.q("CREATE TABLE t (a UNIQUE)")

        def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql

            def dup() -> None:
                sql.exec("INSERT INTO t VALUES (1)")
                sql.exec("INSERT INTO t VALUES (1)")

            with pytest.raises(durable.SqlError, match="UNIQUE"):
                ctx.storage.transaction_sync(dup)
            with exactly(durable.SqlError, _sql_rules.TRANSACTION_MESSAGE):
                ctx.storage.transaction_sync(lambda: sql.exec("BEGIN"))
            return sql.exec("SELECT count(*) AS n FROM t").one().n

        assert await inside(stub, body) == 0

    async def test_async_transaction_rollback_undoes_sql(self, stub: Any) -> None:
        """SQL run inside transaction() is undone by txn.rollback(), kept otherwise, nested or not."""
        await stub.q("CREATE TABLE t (a)")

        async def body(obj: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            storage: Any = ctx.storage

            async def rolled(txn: durable.Transaction) -> str:
                sql.exec("INSERT INTO t VALUES (1)")

                async def nested(inner: durable.Transaction) -> None:
                    sql.exec("INSERT INTO t VALUES (2)")

                await storage.transaction(nested)
                txn.rollback()
                return "value kept"

            async def kept(txn: durable.Transaction) -> None:
                sql.exec("INSERT INTO t VALUES (3)")
                await txn.put("k", 1)

            result = await storage.transaction(rolled)
            await storage.transaction(kept)
            return result

        assert await inside(stub, body) == "value kept"
        await testing.evict(stub)
        assert await stub.q("SELECT a FROM t") == [{"a": 3}]

    async def test_async_transaction_error_undoes_sql(self, stub: Any) -> None:
        """An exception in the transaction() closure undoes its SQL writes without a reset."""
        await stub.q("CREATE TABLE t (a)")

        async def body(obj: Any, ctx: durable.State) -> Any:
            async def failing(txn: durable.Transaction) -> None:
                ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
                raise LookupError("no")

            storage: Any = ctx.storage
            with pytest.raises(LookupError):
                await storage.transaction(failing)

        await inside(stub, body)
        assert await stub.q("SELECT count(*) AS n FROM t") == [{"n": 0}]


class TestDeleteAll:
    """delete_all() on a SQLite-backed object."""

    async def test_wipes_tables_kv_and_alarm(self, stub: Any) -> None:
        """Tables, indexes, views, triggers, key-value data and the alarm are all gone."""
        await stub.q(
            "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid REFERENCES p (id));"
            "CREATE INDEX ci ON c (pid); CREATE VIEW v AS SELECT * FROM p;"
            "CREATE TRIGGER tr AFTER INSERT ON p BEGIN SELECT 1; END;"
            "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1)"
        )

        async def body(obj: Any, ctx: durable.State) -> Any:
            ctx.storage.kv.put("k", 1)
            await ctx.storage.set_alarm(4 * 10**12)
            await ctx.storage.delete_all()

        await inside(stub, body)
        await testing.evict(stub)
        assert await stub.q("SELECT name FROM sqlite_master WHERE name NOT LIKE '_cf_%'") == []
        assert await inside(stub, lambda o, c: (c.storage.kv.get("k"), list(c.storage.kv.list()))) == (None, [])
        assert await inside(stub, lambda o, c: c.storage.get_alarm()) is None
        assert await stub.q("CREATE TABLE p (x); SELECT count(*) AS n FROM p") == [{"n": 0}]


class TestKvBackedNamespace:
    """A storage="kv" namespace has no SQL and no synchronous KV, but has transaction_sync."""

    async def test_refusals(self, durable_runtime: durable.Runtime) -> None:
        """sql and kv raise workerd's plain errors (DurableError, not TypeError), word for word."""
        stub = durable_runtime.namespace(Obj, storage="kv").get_by_name("a")
        with exactly(durable.DurableError, _storage._NO_SQL) as info:
            await inside(stub, lambda o, c: c.storage.sql)
        assert not isinstance(info.value, TypeError)
        assert _storage._NO_SQL.startswith(
            "SQL is not enabled for this Durable Object class. To enable it, change `new_classes` to "
            "`new_sqlite_classes` within the 'migrations' field in your wrangler.jsonc or wrangler.toml file."
        )
        with exactly(durable.DurableError, _storage._NO_SYNC_KV):
            await inside(stub, lambda o, c: c.storage.kv)
        assert _storage._NO_SYNC_KV.startswith(
            "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable Objects"
        )
        with pytest.raises(durable.DurableError, match="^SQL is not enabled for this Durable Object class"):
            await testing.query(stub, "SELECT 1")

    async def test_transaction_sync_runs(self, durable_runtime: durable.Runtime) -> None:
        """transaction_sync runs fn on a kv class, as workerd does; an error inside propagates and rolls back."""
        stub = durable_runtime.namespace(Obj, storage="kv").get_by_name("a")
        assert await inside(stub, lambda o, c: c.storage.transaction_sync(lambda: 5)) == 5

        def failing(o: Any, c: durable.State) -> None:
            def body() -> None:
                c.storage.put("w", 2)
                raise KeyError("inner")

            c.storage.put("q", 1)
            c.storage.transaction_sync(body)

        with pytest.raises(KeyError, match="inner"):
            await inside(stub, failing)
        assert await inside(stub, lambda o, c: c.storage.list()) == {"q": 1}


class TestTestingQuery:
    """durable.testing.query seeds and inspects an object's database from a test."""

    async def test_seed_and_inspect(self, stub: Any) -> None:
        """Rows come back as plain dicts; writes are committed before it returns."""
        await testing.query(stub, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        assert await testing.query(stub, "INSERT INTO users (name) VALUES (?) RETURNING id", "Ada") == [{"id": 1}]
        rows = await testing.query(stub, "SELECT name FROM users")
        assert rows == [{"name": "Ada"}] and type(rows[0]) is dict
        await testing.evict(stub)
        assert await stub.q("SELECT name FROM users") == [{"name": "Ada"}]

    async def test_unrestricted(self, stub: Any) -> None:
        """unrestricted=True lifts the name, PRAGMA and function rules but not the transaction rule."""
        await inside(stub, lambda o, c: c.storage.put("k", 1))
        with pytest.raises(durable.SqlError, match="not authorized"):
            await testing.query(stub, "PRAGMA user_version")
        assert await testing.query(stub, "PRAGMA user_version", unrestricted=True) == [{"user_version": 0}]
        assert await testing.query(stub, "SELECT key FROM _cf_KV", unrestricted=True) == [{"key": "k"}]
        assert len(await testing.query(stub, "SELECT sqlite_version() AS v", unrestricted=True)) == 1
        with exactly(durable.SqlError, _sql_rules.TRANSACTION_MESSAGE):
            await testing.query(stub, "BEGIN", unrestricted=True)
        with pytest.raises(durable.SqlError, match="not authorized"):
            await stub.q("PRAGMA user_version")  # the object's own SQL is still restricted

    async def test_needs_a_stub(self) -> None:
        """Anything but a stub raises TypeError."""
        with pytest.raises(TypeError, match="durable.Stub"):
            await testing.query("nope", "SELECT 1")  # type: ignore[arg-type]


# -- commits against a model (Hypothesis) ----------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("sql_put"), KEYS, st.integers(-5, 5)),
        st.tuples(st.just("sql_del"), KEYS),
        st.tuples(st.just("kv_put"), KEYS, st.integers(-5, 5)),
        st.tuples(st.just("kv_del"), KEYS),
        st.tuples(st.just("async_put"), KEYS, st.integers(-5, 5)),
        st.tuples(st.just("multi"), KEYS, st.integers(-5, 5)),
    ),
    min_size=1,
    max_size=8,
)
TURNS = st.lists(st.tuples(OPS, st.booleans(), st.booleans()), min_size=1, max_size=6)


class Model(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")

    async def apply(self, ops: list[tuple[Any, ...]]) -> None:
        sql = self.ctx.storage.sql
        kv = self.ctx.storage.kv
        for op in ops:
            kind = op[0]
            if kind == "sql_put":
                sql.exec("INSERT OR REPLACE INTO t VALUES (?, ?)", op[1], op[2])
            elif kind == "sql_del":
                sql.exec("DELETE FROM t WHERE k = ?", op[1])
            elif kind == "kv_put":
                kv.put(op[1], op[2])
            elif kind == "kv_del":
                kv.delete(op[1])
            elif kind == "async_put":
                await self.ctx.storage.put(op[1], op[2])  # awaiting a put does not end the batch
            else:
                sql.exec(f"DELETE FROM t WHERE k = '{op[1]}'; INSERT INTO t VALUES (?, ?)", op[1], op[2])

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        rows = {r["k"]: r["v"] for r in self.ctx.storage.sql.exec("SELECT k, v FROM t")}
        return rows, dict(self.ctx.storage.kv.list())


class TestCommitModel:
    """Random interleavings of SQL and key-value writes in one turn commit or roll back as one."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(turns=TURNS)
    def test_against_model(self, turns: list[tuple[list[tuple[Any, ...]], bool, bool]]) -> None:
        """After each turn the stored SQL rows and key-value pairs equal the model's."""
        asyncio.run(self.check(turns))

    async def check(self, turns: list[tuple[list[tuple[Any, ...]], bool, bool]]) -> None:
        table: dict[str, int] = {}
        pairs: dict[str, int] = {}
        async with durable.Runtime() as rt:
            ns = rt.namespace(Model)
            stub = ns.get_by_name("m")
            await stub.state()
            for ops, fail, evict in turns:
                if fail:
                    testing.fail_next_commit(stub)
                    with pytest.raises(durable.ObjectResetError):
                        # a delete of a key never stored writes nothing: make sure this turn commits
                        await stub.apply([*ops, ("kv_put", "z", 0)])
                    stub = ns.get_by_name("m")
                else:
                    await stub.apply(ops)
                    for op in ops:
                        kind = op[0]
                        if kind in ("sql_put", "multi"):
                            table[op[1]] = op[2]
                        elif kind == "sql_del":
                            table.pop(op[1], None)
                        elif kind in ("kv_put", "async_put"):
                            pairs[op[1]] = op[2]
                        else:
                            pairs.pop(op[1], None)
                if evict:
                    await testing.evict(stub)
                assert await stub.state() == (table, pairs)


# -- the example ------------------------------------------------------------------------------------


class TestExample:
    """examples/sql_schema.py: schema, index and migration in the constructor."""

    def _load(self) -> Any:
        import importlib.util

        spec = importlib.util.spec_from_file_location("sql_schema_example", ROOT / "examples" / "sql_schema.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    async def test_schema_and_migration(self, tmp_path: Path) -> None:
        """The store migrates once, keeps data across restarts, and answers queries."""
        example = self._load()
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(example.TodoList).get_by_name("mine")
            first = await stub.add("write docs")
            await stub.add("ship")
            assert await stub.done(first) is True
            assert await stub.pending() == ["ship"]
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(example.TodoList).get_by_name("mine")
            assert await stub.pending() == ["ship"]
            assert await stub.schema_version() == example.SCHEMA_VERSION
            assert await testing.query(stub, "SELECT count(*) AS n FROM migrations") == [{"n": example.SCHEMA_VERSION}]

    def test_runs_as_a_script(self) -> None:
        """python examples/sql_schema.py runs and prints its results."""
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "sql_schema.py")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "pending: ['ship the release']" in out.stdout


class TestRowsOverRpc:
    async def test_rows_cross_rpc_as_plain_dicts(self) -> None:
        """to_array() rows returned from an RPC method arrive as plain dicts, as structured clone gives."""

        class Rows(durable.DurableObject):
            def rows(self) -> Any:
                return self.ctx.storage.sql.exec("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'").to_array()

        async with durable.Runtime() as rt:
            rows = await rt.namespace(Rows).get_by_name("r").rows()
        assert rows == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
        assert all(type(row) is dict for row in rows)
