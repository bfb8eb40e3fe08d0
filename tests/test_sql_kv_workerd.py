"""The SQL API, the key-value APIs and transactions together, against what workerd does.

Each case was run in workerd (npm's ``miniflare`` 4, compatibility date 2026-04-07, SQLite-backed
object) and in ``durable``; the docstrings quote workerd's results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing

from helpers import exactly

CANCELED = "SQLite query was canceled because the database was deleted."


class Obj(durable.DurableObject):
    def setup(self) -> None:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t(a)")
        sql.exec("DELETE FROM t")
        sql.exec("INSERT INTO t VALUES (1), (2), (3)")

    def open(self) -> Any:
        self.cursor = self.ctx.storage.sql.exec("SELECT a FROM t")
        return next(self.cursor).to_py()

    def rest(self) -> Any:
        try:
            return [row.to_py() for row in self.cursor]
        except durable.SqlError as exc:
            return str(exc)

    async def wipe(self) -> None:
        await self.ctx.storage.delete_all()

    def q(self, sql: str) -> list[dict[str, Any]]:
        return [row.to_py() for row in self.ctx.storage.sql.exec(sql)]


def _rows(cursor: durable.SqlCursor) -> list[dict[str, Any]]:
    return [row.to_py() for row in cursor]


# -- delete_all() with cursors still open ------------------------------------------------------------


async def test_delete_all_cancels_an_open_cursor(stub: Any) -> None:
    """workerd: ``deleteAll()`` succeeds while a cursor has rows left (durable raised ``database
    table is locked: SQLITE_LOCKED``); every later read of that cursor, ``rowsRead`` and
    ``rowsWritten`` included, raises ``Error: SQLite query was canceled because the database was
    deleted.``; ``columnNames`` still answers."""

    async def fn(_: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        sql.exec("CREATE TABLE t(a)")
        sql.exec("INSERT INTO t VALUES (1), (2), (3)")
        cursor = sql.exec("SELECT * FROM t")
        first = next(cursor).to_py()
        await ctx.storage.delete_all()
        out: list[Any] = [first, cursor.column_names]
        for read in (
            lambda: cursor.rows_read,
            lambda: cursor.rows_written,
            lambda: next(cursor),
            cursor.to_array,
            cursor.one,
            lambda: list(cursor.raw()),
        ):
            with exactly(durable.SqlError, CANCELED):
                read()
        out.append(_rows(sql.exec("SELECT name FROM sqlite_master")))
        return out

    assert await testing.run_in_object(stub, fn) == [{"a": 1}, ["a"], []]


async def test_delete_all_cancels_unstarted_and_buffered_cursors(stub: Any) -> None:
    """workerd: a cursor not read yet, a raw iterator, a ``LIMIT 1`` cursor and an
    ``INSERT ... RETURNING`` whose rows are unread are all canceled; a new cursor made after
    ``deleteAll()`` reads the new table."""

    async def fn(_: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        sql.exec("CREATE TABLE t(a)")
        sql.exec("INSERT INTO t VALUES (1), (2), (3)")
        unstarted = sql.exec("SELECT * FROM t")
        raw: Any = sql.exec("SELECT * FROM t").raw()
        next(raw)
        limited = sql.exec("SELECT * FROM t LIMIT 1")
        returning = sql.exec("INSERT INTO t VALUES (5), (6) RETURNING a")
        next(returning)
        await ctx.storage.delete_all()
        for read in (unstarted.to_array, lambda: next(raw), raw.to_array, limited.one, returning.to_array):
            with exactly(durable.SqlError, CANCELED):
                read()
        sql.exec("CREATE TABLE t(a)")
        sql.exec("INSERT INTO t VALUES (7)")
        return _rows(sql.exec("SELECT * FROM t"))

    assert await testing.run_in_object(stub, fn) == [{"a": 7}]


async def test_delete_all_leaves_finished_cursors_finished(stub: Any) -> None:
    """workerd: a cursor read to its end, an INSERT's cursor and a SELECT that found no row keep
    their counts and read as empty after ``deleteAll()``."""

    async def fn(_: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        sql.exec("CREATE TABLE t(a)")
        sql.exec("INSERT INTO t VALUES (1), (2), (3)")
        consumed = sql.exec("SELECT * FROM t")
        rows = _rows(consumed)
        insert = sql.exec("INSERT INTO t VALUES (7)")
        empty = sql.exec("SELECT * FROM t WHERE a > 100")
        await ctx.storage.delete_all()
        return [
            rows,
            consumed.rows_read,
            consumed.to_array(),
            insert.rows_read,
            insert.rows_written,
            insert.to_array(),
            empty.to_array(),
        ]

    assert await testing.run_in_object(stub, fn) == [[{"a": 1}, {"a": 2}, {"a": 3}], 3, [], 0, 1, [], []]


async def test_delete_all_cancels_a_fresh_objects_cursor(stub: Any) -> None:
    """workerd: on an object with no storage yet, ``SELECT 1 UNION ALL SELECT 2``'s cursor is
    canceled too."""

    async def fn(_: Any, ctx: durable.State) -> None:
        cursor = ctx.storage.sql.exec("SELECT 1 AS a UNION ALL SELECT 2")
        await ctx.storage.delete_all()
        with exactly(durable.SqlError, CANCELED):
            cursor.to_array()

    await testing.run_in_object(stub, fn)


async def test_delete_all_cancels_a_cursor_kept_across_events(stub: Any) -> None:
    """workerd: a cursor kept on the instance by one call, ``deleteAll()`` in a second call (which
    succeeds; durable raised ``SQLITE_LOCKED``), then the cursor read in a third call raises the
    cancel error. ``DROP TABLE`` in between is refused with ``SQLITE_LOCKED`` there too."""
    await stub.setup()
    assert await stub.open() == {"a": 1}
    await stub.wipe()
    assert await stub.rest() == CANCELED
    await stub.setup()
    assert await stub.open() == {"a": 1}
    with exactly(durable.SqlError, "database table is locked: SQLITE_LOCKED"):
        await stub.q("DROP TABLE t")
    assert await stub.rest() == [{"a": 2}, {"a": 3}]


# -- what delete_all() leaves ------------------------------------------------------------------------


async def test_delete_all_removes_sqlite_sequence(stub: Any) -> None:
    """workerd: after ``deleteAll()`` of an object with an AUTOINCREMENT table, ``sqlite_master`` is
    empty and ``databaseSize`` is 4096 (durable kept ``sqlite_sequence``: 8192); a new
    AUTOINCREMENT table starts again at 1 with a new ``sqlite_sequence``."""

    async def fn(_: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        sql.exec("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        sql.exec("INSERT INTO a(x) VALUES (1), (2)")
        ctx.storage.kv.put("k", 1)
        await ctx.storage.delete_all()
        out: list[Any] = [sql.database_size, _rows(sql.exec("SELECT type, name FROM sqlite_master"))]
        sql.exec("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        sql.exec("INSERT INTO a(x) VALUES (1)")
        out += [_rows(sql.exec("SELECT * FROM a")), _rows(sql.exec("SELECT * FROM sqlite_sequence"))]
        return out

    assert await testing.run_in_object(stub, fn) == [
        4096,
        [],
        [{"id": 1, "x": 1}],
        [{"name": "a", "seq": 1}],
    ]
    assert await stub.q("SELECT name, seq FROM sqlite_sequence") == [{"name": "a", "seq": 1}]


async def test_sqlite_sequence_removal_commits_cleanly(tmp_path: Path) -> None:
    """The file stays sound after ``sqlite_sequence`` is dropped by ``delete_all()``, once
    committed and reopened (``PRAGMA integrity_check`` is ``ok``)."""
    async with durable.Runtime(tmp_path) as rt:
        stub = rt.namespace(Obj).get_by_name("a")
        await stub.q("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        await stub.q("INSERT INTO a(x) VALUES (1)")
        await stub.wipe()
        assert await stub.q("SELECT name FROM sqlite_master") == []
    async with durable.Runtime(tmp_path) as rt:
        stub = rt.namespace(Obj).get_by_name("a")
        assert await testing.query(stub, "PRAGMA integrity_check", unrestricted=True) == [{"integrity_check": "ok"}]
        assert await stub.q("SELECT name FROM sqlite_master") == []


async def test_delete_all_then_a_failed_commit_keeps_sqlite_sequence(stub: Any, durable_runtime: Any) -> None:
    """A commit that fails after ``delete_all()`` undoes it whole, ``sqlite_sequence`` included."""
    await stub.q("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
    await stub.q("INSERT INTO a(x) VALUES (1)")
    testing.fail_next_commit(stub)
    with pytest.raises(durable.ObjectResetError):
        await stub.wipe()
    stub = durable_runtime.namespace(Obj).get_by_name("a")  # (the reset broke the old stub)
    assert await stub.q("SELECT name FROM sqlite_master ORDER BY name") == [{"name": "a"}, {"name": "sqlite_sequence"}]
    await stub.q("INSERT INTO a(x) VALUES (2)")
    assert await stub.q("SELECT * FROM a") == [{"id": 1, "x": 1}, {"id": 2, "x": 2}]


_SWITCHES = (
    "foreign_keys",
    "defer_foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
)


@pytest.mark.parametrize("with_table", [True, False])
async def test_delete_all_resets_the_switches(stub: Any, with_table: bool) -> None:
    """workerd: ``deleteAll()`` resets the database, so every switch PRAGMA reads its default
    afterwards (``foreign_keys`` 1, the others 0; ``case_sensitive_like`` off again), whether the
    object had a table or no storage at all. durable kept the switches set before (and left
    ``defer_foreign_keys`` on, from its own drop)."""

    async def fn(_: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        if with_table:
            sql.exec("CREATE TABLE t(a)")
        for name in ("case_sensitive_like", *_SWITCHES):
            sql.exec(f"PRAGMA {name} = {'OFF' if name == 'foreign_keys' else 'ON'}")
        await ctx.storage.delete_all()
        return [_rows(sql.exec(f"PRAGMA {name}")) for name in _SWITCHES] + [_rows(sql.exec("SELECT 'a' LIKE 'A' AS x"))]

    assert await testing.run_in_object(stub, fn) == [
        [{"foreign_keys": 1}],
        [{"defer_foreign_keys": 0}],
        [{"ignore_check_constraints": 0}],
        [{"legacy_alter_table": 0}],
        [{"recursive_triggers": 0}],
        [{"reverse_unordered_selects": 0}],
        [{"x": 1}],
    ]


# -- database_size -----------------------------------------------------------------------------------


async def test_database_size_after_a_rolled_back_first_write(stub: Any) -> None:
    """workerd: a new object's first write, ``kv.put`` in a ``transactionSync()`` that throws, is
    undone and ``databaseSize`` is 4096 (durable: 0)."""

    def fn(_: Any, ctx: durable.State) -> list[Any]:
        def body() -> None:
            ctx.storage.kv.put("k", 1)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            ctx.storage.transaction_sync(body)
        return [_rows(ctx.storage.sql.exec("SELECT name FROM sqlite_master")), ctx.storage.sql.database_size]

    assert await testing.run_in_object(stub, fn) == [[], 4096]


# -- delete_all() where workerd fails with an internal error (docs/differences.md, SQL) ---------------


async def test_delete_all_inside_transaction_sync_goes_on(stub: Any) -> None:
    """workerd: ``deleteAll()`` inside ``transactionSync()`` wipes the storage, then the call fails
    with ``internal error`` ("no such savepoint: _cf_sync_savepoint_0"). Kept: durable wipes it and
    returns the callback's value."""

    async def fn(_: Any, ctx: durable.State) -> Any:
        await ctx.storage.put("a", 1)
        ctx.storage.sql.exec("CREATE TABLE t(x)")

        def callback() -> str:
            ctx.storage.delete_all()
            return "value"

        value = ctx.storage.transaction_sync(callback)
        return value, await ctx.storage.list(), _rows(ctx.storage.sql.exec("SELECT name FROM sqlite_master"))

    assert await testing.run_in_object(stub, fn) == ("value", {}, [])


async def test_kv_list_iterator_open_across_delete_all_ends(stub: Any) -> None:
    """workerd: the next step of a ``kv.list()`` iterator left open across ``deleteAll()`` fails
    with ``internal error`` ("query canceled because reset() was called on the database"). Kept:
    durable's iterator ends, as nothing is left to list."""

    async def fn(_: Any, ctx: durable.State) -> Any:
        kv = ctx.storage.kv
        for key in "abc":
            kv.put(key, key)
        live = kv.list()
        first = next(live)
        await ctx.storage.delete_all()
        return first, list(live), list(kv.list())

    assert await testing.run_in_object(stub, fn) == (("a", "a"), [], [])
