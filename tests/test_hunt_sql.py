"""``ctx.storage.sql`` and storage answers found to differ from workerd's, now the same.

Each case was run in workerd (npm's ``miniflare`` 4.20260426, compatibility date 2026-04-07,
SQLite-backed object) and in ``durable``; each test names the workerd result it reproduces.
"""

from __future__ import annotations

from typing import Any

import pytest

import durable

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
