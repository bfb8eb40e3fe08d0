"""``ctx.storage.sql`` against what workerd does, case by case (measured with miniflare 4.20260730).

Each test names the workerd result it reproduces; the cases were run in workerd (npm's
``miniflare``, compatibility date 2026-04-07, SQLite-backed object) and in ``durable``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import durable
from durable import testing

from helpers import exactly


class Obj(durable.DurableObject):
    def q(self, sql: str, *bindings: Any) -> list[dict[str, Any]]:
        return [row.to_py() for row in self.ctx.storage.sql.exec(sql, *bindings)]


# -- functions workerd's SQLite is built without ---------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd: Error: no such function: soundex at offset 7: SQLITE_ERROR (Python's SQLite
        # may be built with SQLITE_SOUNDEX and answered 'X000').
        ("SELECT soundex('x')", "no such function: soundex at offset 7: SQLITE_ERROR"),
        ("SELECT SOUNDEX('x')", "no such function: SOUNDEX at offset 7: SQLITE_ERROR"),
        ("SELECT a FROM t WHERE soundex(a) = 'X'", "no such function: soundex at offset 22: SQLITE_ERROR"),
        # workerd: the same message whatever the arguments (durable said "wrong number of arguments").
        ("SELECT soundex()", "no such function: soundex at offset 7: SQLITE_ERROR"),
        # R*Tree's and FTS3's functions: workerd has none of them. rtreecheck used to run a
        # transaction of its own, refused with the BEGIN TRANSACTION message.
        ("SELECT rtreecheck('x')", "no such function: rtreecheck at offset 7: SQLITE_ERROR"),
        ("SELECT rtreedepth()", "no such function: rtreedepth at offset 7: SQLITE_ERROR"),
        ("SELECT rtreenode(1, x'00')", "no such function: rtreenode at offset 7: SQLITE_ERROR"),
        ("SELECT matchinfo('x')", "no such function: matchinfo at offset 7: SQLITE_ERROR"),
        ("SELECT offsets()", "no such function: offsets at offset 7: SQLITE_ERROR"),
        ("SELECT optimize()", "no such function: optimize at offset 7: SQLITE_ERROR"),
        ("SELECT fts3_tokenizer()", "no such function: fts3_tokenizer at offset 7: SQLITE_ERROR"),
    ],
)
async def test_functions_workerd_lacks(stub: Any, sql: str, message: str) -> None:
    await stub.q("CREATE TABLE t(a)")
    with exactly(durable.SqlError, message):
        await stub.q(sql)


async def test_pragma_optimize_is_not_the_function(stub: Any) -> None:
    """``PRAGMA optimize`` still runs (workerd: ``[]``); only FTS3's ``optimize()`` function is absent."""
    await stub.q("CREATE TABLE t(a)")
    assert await stub.q("PRAGMA optimize") == []


# -- error offsets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd: Error: misuse of aggregate: max() at offset 27: SQLITE_ERROR
        ("SELECT sum(a) FROM t WHERE max(a) > 1", "misuse of aggregate: max() at offset 27: SQLITE_ERROR"),
        # workerd: Error: misuse of window function row_number() at offset 15: SQLITE_ERROR
        (
            "SELECT 1 WHERE row_number() OVER () > 1",
            "misuse of window function row_number() at offset 15: SQLITE_ERROR",
        ),
        ("SELECT a FROM t WHERE rank() > 1", "misuse of window function rank() at offset 22: SQLITE_ERROR"),
        ("SELECT cume_dist()", "misuse of window function cume_dist() at offset 7: SQLITE_ERROR"),
    ],
)
async def test_misuse_offsets(stub: Any, sql: str, message: str) -> None:
    await stub.q("CREATE TABLE t(a)")
    with exactly(durable.SqlError, message):
        await stub.q(sql)


# -- the reserved tables as sqlite_master shows them ----------------------------------------------


async def test_kv_table_text_in_sqlite_master(stub: Any) -> None:
    """workerd (miniflare 4.20260730): after ``kv.put``, ``SELECT sql FROM sqlite_master`` gives
    its CREATE statement with its own line breaks, and no trailing comment."""

    async def put(_: Any, ctx: durable.State) -> None:
        ctx.storage.kv.put("a", 1)

    await testing.run_in_object(stub, put)
    rows = await stub.q("SELECT type, name, tbl_name, sql FROM sqlite_master")
    assert rows == [
        {
            "type": "table",
            "name": "_cf_KV",
            "tbl_name": "_cf_KV",
            "sql": "CREATE TABLE _cf_KV (\n        key TEXT PRIMARY KEY,\n        value BLOB\n      ) WITHOUT ROWID",
        }
    ]


async def test_too_many_arguments_offset(stub: Any) -> None:
    """workerd: ``Error: too many arguments on function max at offset 7: SQLITE_ERROR`` (128 > 127)."""
    with exactly(durable.SqlError, "too many arguments on function max at offset 7: SQLITE_ERROR"):
        await stub.q("SELECT max(" + ",".join(["1"] * 128) + ") AS x")
    assert await stub.q("SELECT max(" + ",".join(["1"] * 127) + ") AS x") == [{"x": 1}]


# -- a NUL character in the SQL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd (miniflare 4.20260730): SQLite reads the SQL up to the NUL; what follows it
        # holds no statement.
        ("SELECT 1 AS a\0", "SQL code did not contain a statement."),
        ("\0SELECT 1 AS a", "SQL code did not contain a statement."),
        ("SELECT 1 AS a -- \0 x", "SQL code did not contain a statement."),
        ("SELECT 1 AS a /* \0 */", "SQL code did not contain a statement."),
        ("SELECT 'a\0b' AS a", 'unrecognized token: "\'a" at offset 7: SQLITE_ERROR'),
        ('SELECT 1 AS "a\0b"', 'unrecognized token: ""a" at offset 12: SQLITE_ERROR'),
        ("SELEC\0T 1", 'near "SELEC": syntax error at offset 0: SQLITE_ERROR'),
        ("SELECT 1 +\0 2", "incomplete input: SQLITE_ERROR"),
    ],
)
async def test_nul_ends_the_sql(stub: Any, sql: str, message: str) -> None:
    with exactly(durable.SqlError, message):
        await stub.q(sql)


async def test_statements_before_a_nul_run(stub: Any) -> None:
    """workerd: ``CREATE TABLE t(a); CREATE TABLE u(a)\\0 x`` creates both tables, then raises
    ``SQL code did not contain a statement.``; a binding makes the statement before the NUL one
    of several (``only the last statement can have parameters``)."""
    with exactly(durable.SqlError, "SQL code did not contain a statement."):
        await stub.q("CREATE TABLE t(a); CREATE TABLE u(a)\0 x")
    assert await stub.q("SELECT name FROM sqlite_master") == [{"name": "t"}, {"name": "u"}]
    with exactly(
        durable.SqlError,
        "When executing multiple SQL statements in a single call, only the last statement can have parameters.",
    ):
        await stub.q("SELECT ? AS a\0", 1)


# -- database_size ------------------------------------------------------------------------------------


async def test_database_size_before_any_write(stub: Any) -> None:
    """workerd: ``databaseSize`` is 4096 on a fresh object, after a read-only query and after
    reads of keys; 8192 once a table exists (durable: 0 until its file existed)."""

    def size(_: Any, ctx: durable.State) -> int:
        return ctx.storage.sql.database_size

    assert await testing.run_in_object(stub, size) == 4096
    await stub.q("SELECT 1")
    assert await testing.run_in_object(stub, size) == 4096
    await stub.q("CREATE TABLE t(a)")
    assert await testing.run_in_object(stub, size) == 8192


# -- vertical tabs and a bare "/*": SQLite's tokenizer, workerd's trimming ------------------------


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        # workerd (miniflare 4, 2026-04-07): spaces after a statement's ";" are skipped with C's
        # isspace (vertical tab included); durable raised sqlite3's "You can only execute one
        # statement at a time." for these.
        ("SELECT 1 AS a;\v", [{"a": 1}]),
        ("SELECT 1 AS a;\v ", [{"a": 1}]),
        ("SELECT 1 AS a;\v\vSELECT 2 AS b", [{"b": 2}]),
        # A vertical tab after another space is part of the run of spaces.
        (" \vSELECT 1 AS a", [{"a": 1}]),
    ],
)
async def test_vertical_tab_after_a_statement(stub: Any, sql: str, rows: list[dict[str, Any]]) -> None:
    assert await stub.q(sql) == rows


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd: SQLite's tokenizer refuses a vertical tab that starts a token.
        ("\v", 'unrecognized token: "\v" at offset 0: SQLITE_ERROR'),
        ("\vSELECT 1 AS a", 'unrecognized token: "\v" at offset 0: SQLITE_ERROR'),
        (";\vSELECT 1 AS a", 'unrecognized token: "\v" at offset 1: SQLITE_ERROR'),
        ("SELECT 1 AS a\v", 'unrecognized token: "\v" at offset 13: SQLITE_ERROR'),
        ("SELECT 1\vAS a", 'unrecognized token: "\v" at offset 8: SQLITE_ERROR'),
        ("SELECT 1 AS a; /* x */\vSELECT 2 AS b", 'unrecognized token: "\v" at offset 7: SQLITE_ERROR'),
        # the statements before a NUL run; the vertical tab is skipped, nothing is left
        ("SELECT 1 AS a;\v\0", "SQL code did not contain a statement."),
        # workerd: "/*" with nothing after it is a slash (SQLite's tokenizer), not a comment.
        ("/*", 'near "/": syntax error at offset 0: SQLITE_ERROR'),
        ("SELECT 1 AS a; /*", 'near "/": syntax error at offset 0: SQLITE_ERROR'),
        ("SELECT 1 AS a /*", 'near "/": syntax error at offset 14: SQLITE_ERROR'),
        # ... while "/*x" is a comment that runs to the end
        ("SELECT 1 AS a; /*x", "SQL code did not contain a statement."),
    ],
)
async def test_vertical_tab_and_bare_comment_start(stub: Any, sql: str, message: str) -> None:
    with exactly(durable.SqlError, message):
        await stub.q(sql)


async def test_unterminated_comment_is_part_of_the_column_name(stub: Any) -> None:
    """workerd: ``SELECT 1 /* x`` gives the column ``1 /* x``."""
    assert await stub.q("SELECT 1 /* x") == [{"1 /* x": 1}]


# -- offsets of errors that name no column, function or table ------------------------------------


@pytest.mark.parametrize(
    ("setup", "sql", "message"),
    [
        # workerd (miniflare 4, 2026-04-07) gives each of these an offset; durable gave none.
        ("", "SELECT 0x1ffffffffffffffff AS a", "hex literal too big: 0x1ffffffffffffffff at offset 7"),
        ("", "SELECT 1 + 0X2FFFFFFFFFFFFFFFF AS a", "hex literal too big: 0X2FFFFFFFFFFFFFFFF at offset 11"),
        # ALTER TABLE's column names, quoted in the message as written
        ("CREATE TABLE c(c, d)", "ALTER TABLE c DROP COLUMN x", 'no such column: "x" at offset 26'),
        ("CREATE TABLE c(c, d)", 'ALTER TABLE c DROP COLUMN "x"', 'no such column: ""x"" at offset 26'),
        ("CREATE TABLE c(c, d)", "ALTER TABLE c RENAME x TO c", 'no such column: "x" at offset 21'),
        ("CREATE TABLE c(c, d)", "ALTER TABLE c RENAME COLUMN [x y] TO z", 'no such column: "[x y]" at offset 28'),
        # likelihood(): the call whose second argument is not a REAL literal of at most 1.0
        (
            "",
            "SELECT likelihood(1, 0.5) + likelihood(1, 2) AS a",
            "second argument to likelihood() must be a constant between 0.0 and 1.0 at offset 28",
        ),
        (
            "",
            "SELECT 1 AS a WHERE likelihood(1, 1.0) AND likelihood(1, -0.5)",
            "second argument to likelihood() must be a constant between 0.0 and 1.0 at offset 43",
        ),
        # non-deterministic functions: the call
        (
            "CREATE TABLE random(a)",
            "CREATE INDEX i ON random(abs(random()))",
            "non-deterministic functions prohibited in index expressions at offset 29",
        ),
        (
            "CREATE TABLE t(a)",
            "CREATE INDEX i ON t(a) WHERE randomblob(2) > 0",
            "non-deterministic functions prohibited in partial index WHERE clauses at offset 29",
        ),
        (
            "",
            "CREATE TABLE t(a, b AS (random()))",
            "non-deterministic functions prohibited in generated columns at offset 24",
        ),
        # subqueries: only IN's has an offset, its left operand's leftmost leaf
        ("", "CREATE TABLE t(a CHECK (a IN (SELECT 1)))", "subqueries prohibited in CHECK constraints at offset 24"),
        (
            "",
            "CREATE TABLE t(a, CHECK ((a) NOT IN (SELECT 1)))",
            "subqueries prohibited in CHECK constraints at offset 26",
        ),
        (
            "",
            "CREATE TABLE t(a, CHECK (a + 1 IN (SELECT 1)))",
            "subqueries prohibited in CHECK constraints at offset 25",
        ),
        (
            "",
            "CREATE TABLE t(a, CHECK (lower(a) IN (SELECT 1)))",
            "subqueries prohibited in CHECK constraints at offset 25",
        ),
        ("", "CREATE TABLE t(a CHECK ((SELECT 1)))", "subqueries prohibited in CHECK constraints"),
        # ORDER BY / GROUP BY terms: below 1, or past the columns of a compound SELECT
        (
            "CREATE TABLE t(a)",
            "SELECT a FROM t ORDER BY 0",
            "1st ORDER BY term out of range - should be between 1 and 1 at offset 25",
        ),
        (
            "CREATE TABLE t(a)",
            "SELECT a FROM t ORDER BY -1",
            "1st ORDER BY term out of range - should be between 1 and 1 at offset 26",
        ),
        (
            "CREATE TABLE t(a)",
            "SELECT a FROM t GROUP BY 0",
            "1st GROUP BY term out of range - should be between 1 and 1 at offset 25",
        ),
        (
            "CREATE TABLE t(a)",
            "SELECT a FROM t ORDER BY a, 0 LIMIT 5",
            "2nd ORDER BY term out of range - should be between 1 and 1 at offset 28",
        ),
        (
            "",
            "SELECT 1 AS a UNION SELECT 2 ORDER BY 3",
            "1st ORDER BY term out of range - should be between 1 and 1 at offset 38",
        ),
        (
            "CREATE TABLE t(a)",
            "SELECT a FROM t ORDER BY 2",
            "1st ORDER BY term out of range - should be between 1 and 1",
        ),
    ],
)
async def test_offsets_found_from_the_message(stub: Any, setup: str, sql: str, message: str) -> None:
    if setup:
        await stub.q(setup)
    with exactly(durable.SqlError, f"{message}: SQLITE_ERROR"):
        await stub.q(sql)


# -- shadow tables: workerd's SQLite runs in defensive mode --------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd (miniflare 4, 2026-04-07): an FTS5 table's shadow tables can be read but not
        # changed by the application; durable let these through (Python's sqlite3 cannot set
        # SQLITE_DBCONFIG_DEFENSIVE).
        ("UPDATE f_config SET v = 2", "table f_config may not be modified"),
        ("DELETE FROM f_data", "table f_data may not be modified"),
        ("DELETE FROM F_DATA", "table f_data may not be modified"),
        ("DELETE FROM main.f_data", "table f_data may not be modified"),
        ("REPLACE INTO f_config VALUES ('version', 4)", "table f_config may not be modified"),
        ("INSERT INTO f_docsize VALUES (9, x'00')", "table f_docsize may not be modified"),
        ("DROP TABLE f_data", "table f_data may not be dropped"),
        ("ALTER TABLE f_data RENAME TO g", "table f_data may not be altered"),
        ("ALTER TABLE f_idx ADD COLUMN z", "table f_idx may not be altered"),
        ("CREATE TRIGGER tr AFTER INSERT ON f_content BEGIN SELECT 1; END", "cannot create triggers on shadow tables"),
        (
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; DELETE FROM f_data; END",
            'trigger "tr" may not write to shadow table "f_data"',
        ),
        (
            'CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT OR REPLACE INTO "f_content" VALUES (1, 2); END',
            'trigger "tr" may not write to shadow table "f_content"',
        ),
    ],
)
async def test_shadow_tables_are_read_only(stub: Any, sql: str, message: str) -> None:
    await stub.q("CREATE VIRTUAL TABLE f USING fts5(a); CREATE TABLE t(a)")
    await stub.q("INSERT INTO f VALUES ('hello world')")
    with exactly(durable.SqlError, f"{message}: SQLITE_ERROR"):
        await stub.q(sql)
    assert await stub.q("SELECT a FROM f WHERE f MATCH 'hello'") == [{"a": "hello world"}]


async def test_shadow_tables_change_through_their_virtual_table(stub: Any) -> None:
    """workerd: reading shadow tables, indexing or viewing them, writing the FTS5 table (also from
    a trigger), its commands, renaming and dropping it all work; so do tables only named like
    shadow tables."""
    await stub.q("CREATE VIRTUAL TABLE f USING fts5(a); CREATE TABLE t(a); CREATE TABLE g_data(a)")
    await stub.q("CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO f VALUES (new.a); END")
    await stub.q("INSERT INTO t VALUES ('hello')")
    await stub.q("INSERT INTO g_data VALUES (1)")
    await stub.q("CREATE TABLE f_other(a); INSERT INTO f_other VALUES (1)")
    assert await stub.q("SELECT c0 FROM f_content") == [{"c0": "hello"}]
    await stub.q("CREATE INDEX i ON f_content(c0)")
    await stub.q("CREATE VIEW v AS SELECT * FROM f_data")
    await stub.q("UPDATE f SET a = 'bye'")
    await stub.q("INSERT INTO f(f) VALUES ('optimize')")
    await stub.q("DROP VIEW v; DROP INDEX i")
    await stub.q("ALTER TABLE f RENAME TO h")
    assert await stub.q("SELECT a FROM h WHERE h MATCH 'bye'") == [{"a": "bye"}]
    await stub.q("DROP TABLE h")
    assert await stub.q("SELECT name FROM sqlite_master ORDER BY name") == [
        {"name": "f_other"},
        {"name": "g_data"},
        {"name": "t"},
        {"name": "tr"},
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT json_pretty('[1]') AS a",
        "SELECT JSON_PRETTY('[1]') AS a",
        "SELECT json_error_position('{') AS a",
        "SELECT fts5_get_locale(1, 2) AS a",
        "SELECT fts5_locale('a', 'b') AS a",
    ],
)
async def test_newer_functions_workerd_refuses(stub: Any, sql: str) -> None:
    """workerd's SQLite has these, but not on its allow-list (miniflare 4, 2026-04-07): ``not
    authorized to use function: json_pretty at offset 7: SQLITE_ERROR``; an older SQLite said
    ``no such function``."""
    name = sql[7 : sql.index("(")]
    with exactly(durable.SqlError, f"not authorized to use function: {name} at offset 7: SQLITE_ERROR"):
        await stub.q(sql)


# -- rows_written of ALTER TABLE --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "sql", "written"),
    [
        # workerd (miniflare 4, 2026-04-07) counts the sqlite_master rows SQLite's own UPDATEs
        # rewrite; durable said 1 for every ALTER TABLE.
        ("CREATE TABLE t(a)", "ALTER TABLE t RENAME TO u", 2),
        ("CREATE TABLE t(a UNIQUE, b); CREATE INDEX i ON t(b)", "ALTER TABLE t RENAME TO u", 5),
        (
            "CREATE TABLE t(a); CREATE TABLE l(x); CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO l VALUES (1); END",
            "ALTER TABLE t RENAME TO u",
            5,
        ),
        ("CREATE TABLE t(a); CREATE VIEW v AS SELECT a FROM t", "ALTER TABLE t RENAME TO u", 3),
        ("CREATE TABLE t(a PRIMARY KEY); CREATE TABLE c(x REFERENCES t(a))", "ALTER TABLE t RENAME TO u", 4),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT); INSERT INTO t DEFAULT VALUES",
            "ALTER TABLE t RENAME TO u",
            3,
        ),
        ("CREATE TABLE t(a, b); CREATE TABLE u(c); CREATE INDEX iu ON u(c)", 'ALTER TABLE main.t RENAME TO "New"', 3),
        ("CREATE TABLE t(a)", "ALTER TABLE t RENAME COLUMN a TO b", 2),
        ("CREATE TABLE t(a, b); CREATE INDEX i ON t(a); CREATE INDEX j ON t(b)", "ALTER TABLE t RENAME a TO z", 6),
        ("CREATE TABLE t(a, b); CREATE TABLE u(c)", "ALTER TABLE t RENAME COLUMN a TO z", 4),
        (
            "CREATE VIRTUAL TABLE f USING fts5(a); CREATE TABLE t(a, b); CREATE TABLE u(c); CREATE INDEX iu ON u(c);"
            " CREATE VIEW v AS SELECT a FROM t",
            "ALTER TABLE t RENAME COLUMN a TO z",
            18,
        ),
        ("CREATE TABLE t(a, b)", "ALTER TABLE t DROP COLUMN b", 2),
        ("CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 2), (3, 4), (5, 6)", "ALTER TABLE t DROP COLUMN b", 5),
        (
            "CREATE TABLE t(a, b, c); CREATE INDEX i ON t(a); INSERT INTO t VALUES (1, 2, 3), (4, 5, 6)",
            "ALTER TABLE t DROP COLUMN b",
            5,
        ),
        (
            "CREATE VIRTUAL TABLE f USING fts5(a); CREATE TABLE t(a, b); CREATE TABLE u(c); CREATE INDEX iu ON u(c);"
            " INSERT INTO t VALUES (1, 2)",
            "ALTER TABLE t DROP COLUMN b",
            10,
        ),
        ("CREATE TABLE t(a); CREATE INDEX i ON t(a); INSERT INTO t VALUES (1)", "ALTER TABLE t ADD COLUMN c", 1),
    ],
)
async def test_alter_table_rows_written(stub: Any, setup: str, sql: str, written: int) -> None:
    await stub.q(setup)

    def run(_: Any, ctx: durable.State) -> int:
        return ctx.storage.sql.exec(sql).rows_written

    assert await testing.run_in_object(stub, run) == written


# -- negative zero ------------------------------------------------------------------------------------


class _Float(float):
    pass


@pytest.mark.parametrize("zero", [-0.0, _Float(-0.0)], ids=["float", "float-subclass"])
async def test_negative_zero_keeps_its_sign(stub: Any, zero: float) -> None:
    """workerd (miniflare 4, compatibility date 2026-04-07) keeps the sign of a bound negative
    zero: ``SELECT ? AS x, quote(?) AS q, typeof(?) AS t`` bound to ``-0`` gives ``Object.is(x,
    -0)`` true, ``q`` '0.0' and ``t`` 'real'; ``raw()`` gives ``-0`` too, and so does an untyped
    column it was inserted into (a probe that carries its cases into the Worker through
    ``JSON.stringify`` sees ``0`` instead: JSON has no negative zero)."""

    def run(_: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        row = sql.exec("SELECT ? AS x, typeof(?) AS t, -0.0 AS y, quote(?) AS q", zero, zero, zero).one()
        raw = sql.exec("SELECT ? AS x", zero).raw().to_array()
        sql.exec("CREATE TABLE t(a)")
        sql.exec("INSERT INTO t VALUES (?)", zero)
        stored = sql.exec("SELECT a, typeof(a) AS t, quote(a) AS q FROM t").one()
        return [row["x"], row["t"], row["y"], row["q"], raw[0][0], stored["a"], stored["t"], stored["q"]]

    x, t, y, q, raw, stored, stored_type, stored_q = await testing.run_in_object(stub, run)
    assert (t, q, stored_type, stored_q) == ("real", "0.0", "real", "0.0")
    assert [math.copysign(1.0, v) for v in (x, y, raw, stored)] == [-1.0, -1.0, -1.0, -1.0]


# -- where a misused aggregate or window function is reported ----------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd (miniflare 4, 2026-04-07): SQLite reports the call in the clause that may not
        # hold it, not the first call of that name (durable said "at offset 7" for all of these).
        ("SELECT count(*) FROM t WHERE count(*) > 1", "misuse of aggregate: count() at offset 29: SQLITE_ERROR"),
        (
            "SELECT count(*) FROM t WHERE a > 1 AND count(*) > 1",
            "misuse of aggregate: count() at offset 39: SQLITE_ERROR",
        ),
        # (code generation records each misused call over the last: the last of the WHERE clause)
        (
            "SELECT count(*) FROM t WHERE count(*) > 1 OR count(*) < 0",
            "misuse of aggregate: count() at offset 45: SQLITE_ERROR",
        ),
        (
            "SELECT sum(a) FROM t WHERE sum(a) BETWEEN 1 AND sum(a)",
            "misuse of aggregate: sum() at offset 48: SQLITE_ERROR",
        ),
        # (the outermost WHERE holding one: a subquery's is not the one reported)
        (
            "SELECT count(*) FROM t WHERE count(*) > 1 AND a IN (SELECT count(*) FROM t WHERE count(*) > 2)",
            "misuse of aggregate: count() at offset 29: SQLITE_ERROR",
        ),
        (
            "SELECT (SELECT count(*) FROM t WHERE count(*) > 0) AS x",
            "misuse of aggregate: count() at offset 37: SQLITE_ERROR",
        ),
        # (in a join's ON clause: no offset)
        (
            "SELECT count(*) FROM t AS x JOIN t AS y ON count(*) > 1 WHERE count(*) > 2",
            "misuse of aggregate: count(): SQLITE_ERROR",
        ),
        # (a result column's alias used in WHERE: the result column's call, as before)
        ("SELECT count(*) AS n FROM t WHERE n > 1", "misuse of aggregate: count() at offset 7: SQLITE_ERROR"),
        # Found while resolving names, which stops at the first: the first call outside a result
        # list, HAVING and ORDER BY.
        (
            "SELECT count(*) FROM t ORDER BY count(*) LIMIT count(*)",
            "misuse of aggregate function count() at offset 47: SQLITE_ERROR",
        ),
        (
            "SELECT count(*) FROM t WHERE a IN (SELECT a FROM t WHERE count(*) > 1)",
            "misuse of aggregate function count() at offset 57: SQLITE_ERROR",
        ),
        (
            "SELECT (SELECT count(*) FROM t) FROM t WHERE count(*) > 1",
            "misuse of aggregate function count() at offset 45: SQLITE_ERROR",
        ),
        # Window functions: allowed in a result list and ORDER BY, not in HAVING.
        (
            "SELECT rank() OVER () FROM t WHERE rank() OVER () > 1",
            "misuse of window function rank() at offset 35: SQLITE_ERROR",
        ),
        (
            "SELECT a FROM t ORDER BY row_number() OVER () LIMIT row_number() OVER ()",
            "misuse of window function row_number() at offset 52: SQLITE_ERROR",
        ),
    ],
)
async def test_misused_function_offsets(stub: Any, sql: str, message: str) -> None:
    await stub.q("CREATE TABLE t(a)")
    with exactly(durable.SqlError, message):
        await stub.q(sql)


# -- where an error naming a column or function is reported ------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd (miniflare 4, 2026-04-07); durable pointed at the first token spelling the name.
        # Never inside a string literal:
        ("SELECT 'b', b FROM t", "no such column: b at offset 12: SQLITE_ERROR"),
        ("SELECT 'nofn', nofn(1)", "no such function: nofn at offset 15: SQLITE_ERROR"),
        ("SELECT 'abs', abs(1, 2)", "wrong number of arguments to function abs() at offset 14: SQLITE_ERROR"),
        # A function is a name followed by "(", not an alias of that name:
        ("SELECT a FROM t AS nofn WHERE nofn(1)", "no such function: nofn at offset 30: SQLITE_ERROR"),
        (
            "SELECT 'x' AS sqlite_version, sqlite_version()",
            "not authorized to use function: sqlite_version at offset 30: SQLITE_ERROR",
        ),
        # A qualified column is its whole spelling, not the first token naming its table:
        ("SELECT a FROM t WHERE t.b = 1", "no such column: t.b at offset 22: SQLITE_ERROR"),
        ("SELECT b.a FROM t AS b WHERE b.c = 1", "no such column: b.c at offset 29: SQLITE_ERROR"),
        ("SELECT a FROM t WHERE a = 1 AND a.b = 2", "no such column: a.b at offset 32: SQLITE_ERROR"),
        # An unqualified column is not an alias declared with AS, nor a double-quoted word (which
        # SQLite reads as a string when no column has that name):
        ("SELECT a FROM t AS b ORDER BY b", "no such column: b at offset 30: SQLITE_ERROR"),
        ('SELECT "b" FROM t WHERE b > 1', "no such column: b at offset 24: SQLITE_ERROR"),
        # In an UPDATE only a column assigned by SET has no offset (durable gave none at all):
        ("UPDATE t SET a = b", "no such column: b at offset 17: SQLITE_ERROR"),
        ("UPDATE t SET a = 1 WHERE b = 2", "no such column: b at offset 25: SQLITE_ERROR"),
        # A quoted table name, as the message spells it:
        ('CREATE TABLE "t"(b)', 'table "t" already exists at offset 13: SQLITE_ERROR'),
        # A common table expression's name is not a column:
        ("WITH zz AS (SELECT 1 AS a) SELECT zz FROM zz", "no such column: zz at offset 34: SQLITE_ERROR"),
        # An expression of a join's ON clause keeps no offset, and the WHERE clause is resolved
        # before it (not ON CONFLICT's or CREATE INDEX's ON):
        ("SELECT t.a FROM t JOIN t AS u ON u.zz = t.a", "no such column: u.zz: SQLITE_ERROR"),
        ("SELECT t.a FROM t LEFT JOIN t AS u ON zz = t.a", "no such column: zz: SQLITE_ERROR"),
        (
            "SELECT t.a FROM t JOIN t AS u ON abs(zz) = t.a WHERE zz = 1",
            "no such column: zz at offset 53: SQLITE_ERROR",
        ),
        (
            "SELECT t.a FROM t JOIN t AS u ON zz WHERE EXISTS (SELECT zz)",
            "no such column: zz at offset 57: SQLITE_ERROR",
        ),
        ("SELECT t.a FROM t JOIN t AS u ON nofn(1) WHERE nofn(2)", "no such function: nofn: SQLITE_ERROR"),
        ("INSERT INTO t VALUES (1) ON CONFLICT (zz) DO NOTHING", "no such column: zz at offset 38: SQLITE_ERROR"),
        # SQLite resolves a SET value before its column:
        ("UPDATE t SET zz = zz", "no such column: zz at offset 18: SQLITE_ERROR"),
        ("UPDATE t SET (a, zz) = (1, 2)", "no such column: zz: SQLITE_ERROR"),
    ],
)
async def test_named_error_offsets(stub: Any, sql: str, message: str) -> None:
    await stub.q("CREATE TABLE t(a)")
    with exactly(durable.SqlError, message):
        await stub.q(sql)
