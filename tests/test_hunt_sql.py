"""``ctx.storage.sql`` and storage answers found to differ from workerd's, now the same.

Each case was run in workerd (npm's ``miniflare`` 4.20260426, compatibility date 2026-04-07,
SQLite-backed object) and in ``durable``; each test names the workerd result it reproduces.
"""

from __future__ import annotations

from typing import Any

import pytest

import durable
from durable import testing

from helpers import exactly


class Obj(durable.DurableObject):
    def q(self, *statements: str) -> list[dict[str, Any]]:
        """Run each statement; the rows of the last one."""
        rows: list[dict[str, Any]] = []
        for sql in statements:
            rows = [row.to_py() for row in self.ctx.storage.sql.exec(sql)]
        return rows

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)


# -- the reserved _cf_ prefix is compared as written -------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        # workerd: [] for each (it logs "SQL identifier matches reserved _cf_ prefix
        # case-insensitively" and goes on); durable raised "not authorized: SQLITE_AUTH".
        "CREATE TABLE _CF_X (a)",
        "CREATE TABLE _Cf_x (a)",
        "CREATE VIEW _cF_v AS SELECT 1",
        "CREATE INDEX _CF_i ON t (a)",
        "CREATE TRIGGER _CF_tr AFTER INSERT ON t BEGIN SELECT 1; END",
        "ALTER TABLE t RENAME TO _CF_t",
        'ALTER TABLE t RENAME TO "_Cf_t"',
        "CREATE VIRTUAL TABLE _CF_v USING fts5(a)",
    ],
)
async def test_other_spellings_of_the_prefix_are_allowed(stub: Any, sql: str) -> None:
    assert await stub.q("CREATE TABLE t (a)", sql) == []


async def test_a_table_named_in_capitals_is_usable(stub: Any) -> None:
    """workerd: ``[[{"a":1}], [{"name":"_CF_X"}]]`` for the rows and ``sqlite_master``'s names, and
    ``PRAGMA table_info(_CF_X)`` lists its column."""
    assert await stub.q("CREATE TABLE _CF_X (a)", "INSERT INTO _CF_X VALUES (1)", "SELECT * FROM _CF_X") == [{"a": 1}]
    assert await stub.q("SELECT name FROM sqlite_master") == [{"name": "_CF_X"}]
    assert await stub.q("PRAGMA table_info(_CF_X)") == [
        {"cid": 0, "name": "a", "type": "", "notnull": 0, "dflt_value": None, "pk": 0}
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # workerd: the runtime's own table stays out of reach however it is spelled (SQLite names
        # it to the authorizer as it was created, _cf_KV).
        ("SELECT * FROM _CF_KV", "access to _cf_KV.key is prohibited: SQLITE_AUTH"),
        ("DROP TABLE _CF_KV", "not authorized: SQLITE_AUTH"),
        ("INSERT INTO _CF_KV VALUES ('a', x'00')", "not authorized: SQLITE_AUTH"),
        ("CREATE INDEX i ON _CF_KV (value)", "not authorized: SQLITE_AUTH"),
        ("ALTER TABLE _CF_KV ADD COLUMN x", "not authorized: SQLITE_AUTH"),
        ("CREATE TABLE _CF_KV (a)", "table _CF_KV already exists at offset 13: SQLITE_ERROR"),
        # and the prefix as written stays refused
        ("CREATE TABLE _cf_ (a)", "not authorized: SQLITE_AUTH"),
    ],
)
async def test_the_runtime_tables_stay_refused_in_any_spelling(stub: Any, sql: str, message: str) -> None:
    await stub.put("k", 1)
    with exactly(durable.SqlError, message):
        await stub.q(sql)


async def test_table_info_of_the_kv_table_in_capitals(stub: Any) -> None:
    """workerd: ``PRAGMA table_info(_CF_KV)`` answers (the pragma's argument is compared as
    written), where ``PRAGMA table_info(_cf_KV)`` is ``not authorized``."""
    await stub.put("k", 1)
    assert await stub.q("PRAGMA table_info(_CF_KV)") == [
        {"cid": 0, "name": "key", "type": "TEXT", "notnull": 1, "dflt_value": None, "pk": 1},
        {"cid": 1, "name": "value", "type": "BLOB", "notnull": 0, "dflt_value": None, "pk": 0},
    ]
    with exactly(durable.SqlError, "not authorized: SQLITE_AUTH"):
        await stub.q("PRAGMA table_info(_cf_KV)")


# -- printf() and format() stop at workerd's width and precision limit ---------------------------------


@pytest.mark.parametrize(
    ("expression", "length"),
    [
        # workerd's SQLite is built with SQLITE_PRINTF_PRECISION_LIMIT=100000 (measured: each
        # length below); Python's SQLite has no limit, and durable gave the unclamped lengths.
        ("printf('%.*c', 100001, 'x')", 100_000),
        ("printf('%.*c', 100000, 'x')", 100_000),
        ("printf('%200000d', 1)", 100_000),
        ("printf('%.200000f', 1.0)", 100_002),
        ("format('%-150000s|', 'a')", 100_001),
        ("printf('%.150000s', printf('%.*c', 100000, 'y') || printf('%.*c', 100000, 'y'))", 100_000),
        ("printf('%*d', 100001, 1)", 100_000),
        ("printf('%*d', -150000, 1)", 100_000),
        ("printf('%*.*f', '-200000', 150000.5, 3.14)", 100_002),
        ("printf('%.*c', 2147483653, 'x')", 100_000),
        ("printf('%.*c', -200000, 'x')", 100_000),
        ("printf('%-*d|', -200000, 1)", 100_001),
        ("printf('%.*c', 1e300, 'x')", 1),
        ("printf('%*d', x'323030303030', 1)", 100_000),
        ("printf('%.*c', -2147483648, 'x')", 1),
        ("printf('%*d|', -2147483648, 1)", 2),
        ("printf('%.*c', 4294967296, 'x')", 1),
        ("printf('%.*c', '  150000xyz', 'x')", 100_000),
        ("printf('%.*c', 150000.9, 'x')", 100_000),
        ("printf('%.*c', '1e6', 'x')", 1),
        ("printf('%0200000d', 5)", 100_000),
        ("printf('%#.200000x', 5)", 100_002),
        ("printf('%.200000e', 1.5)", 100_006),
        ("printf('%.200000g', 1.5)", 3),
        ("printf('%+0*d', 150000, 5)", 100_000),
        ("printf('%.*c%.*c', 150000, 'a', 150000, 'b')", 200_000),
        ("printf('%.*c', 99999999, 'x')", 100_000),
    ],
)
async def test_printf_width_and_precision_stop_at_100000(stub: Any, expression: str, length: int) -> None:
    assert await stub.q(f"SELECT length({expression}) AS n") == [{"n": length}]


async def test_printf_formats_as_before(stub: Any) -> None:
    """workerd's answers for printf() within the limit, unchanged by durable's stand-in."""
    assert await stub.q(
        "SELECT printf('%d|%s|%q|%Q|%w|%c|%!.3s|%,d|%5.2f|%x|%%|%e|%g', '12', NULL, 'it''s', NULL, 'a\"b', "
        "'xyz', 'héllo', 1234567, 3.14159, 255, 12345.678, 0.0001) AS r"
    ) == [{"r": "12||it''s|NULL|a\"\"b|x|hél|1,234,567| 3.14|ff|%|1.234568e+04|0.0001"}]
    assert await stub.q(
        "SELECT printf(NULL) AS a, printf() AS b, printf(5) AS c, printf('%') AS d, printf('%l') AS e, "
        "printf('%lld', 5) AS f, printf('%z', 'q') AS g, printf('abc%', 1) AS h, printf('%2147483648d|', 7) AS i, "
        "printf('%.*c', 'abc', 'x') AS j, printf('%.*c', NULL, 'x') AS k"
    ) == [
        {
            "a": None,
            "b": None,
            "c": "5",
            "d": "%",
            "e": None,
            "f": "5",
            "g": "q",
            "h": "abc%",
            "i": "7|",
            "j": "x",
            "k": "x",
        }
    ]


async def test_printf_in_the_schema(stub: Any) -> None:
    """workerd: ``[[{"a":42,"b":"00042"}],[{"f":"<42>"}],[{"a":42}]]``: printf() and format() in a
    generated column, a CHECK, an index expression and a view."""
    await stub.q(
        "CREATE TABLE t(a, b AS (printf('%05d', a)), CHECK (length(printf('%s', a)) < 10))",
        "CREATE INDEX i ON t(printf('%x', a))",
        "CREATE VIEW v AS SELECT format('<%s>', a) AS f FROM t",
        "INSERT INTO t(a) VALUES (42)",
    )
    assert await stub.q("SELECT * FROM t") == [{"a": 42, "b": "00042"}]
    assert await stub.q("SELECT * FROM v") == [{"f": "<42>"}]
    assert await stub.q("SELECT a FROM t WHERE printf('%x', a) = '2a'") == [{"a": 42}]


async def test_printf_of_text_that_is_not_utf8(stub: Any) -> None:
    """workerd: ``"\\ufffdA"``. Kept (docs/differences.md): Python's sqlite3 cannot hand such TEXT
    to durable's printf(), so it raises, naming the problem; a BLOB argument works."""
    with pytest.raises(durable.SqlError, match=r"^printf\(\) and format\(\) take TEXT that is valid UTF-8"):
        await stub.q("SELECT printf('%s', CAST(x'ff41' AS TEXT)) AS a")
    assert await stub.q("SELECT hex(printf('%s', x'ff41')) AS b") == [{"b": "FF41"}]


# -- kept differences (docs/differences.md) --------------------------------------------------------


async def test_delete_all_in_a_transaction_sync_that_raises_is_rolled_back(stub: Any) -> None:
    """workerd: the callback's ``deleteAll()`` stays (``kv.list()`` is empty afterwards) and the
    call fails with ``internal error`` (its savepoint went with the database). Kept
    (docs/differences.md): durable rolls everything back and raises the callback's exception."""

    async def fn(_: Any, ctx: durable.State) -> Any:
        ctx.storage.kv.put("z", 0)

        def callback() -> None:
            ctx.storage.kv.put("a", 1)
            ctx.storage.delete_all()
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="^boom$"):
            ctx.storage.transaction_sync(callback)
        return list(ctx.storage.kv.list())

    assert await testing.run_in_object(stub, fn) == [("z", 0)]
