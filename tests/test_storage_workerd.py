"""Storage and SQL results that once differed from workerd's, now the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing


class Obj(durable.DurableObject):
    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


@pytest.fixture(params=["memory-sqlite", "memory-kv", "disk-sqlite", "disk-kv"])
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A new object (nothing stored yet), on each backend, in memory and on disk."""
    where, backend = request.param.split("-")
    async with durable.Runtime(path=tmp_path if where == "disk" else None) as rt:
        yield rt.namespace(Obj, storage=backend).get_by_name("new")


class TestDeleteAllInTheFirstTurn:
    """delete_all() in a new object's first writing turn drops the writes made before it."""

    async def test_put_then_delete_all(self, fresh: Any) -> None:
        """put; delete_all; every read says the key is gone, then and after a restart of the instance."""

        async def body(o: Any, ctx: durable.State) -> Any:
            s = ctx.storage
            s.put("a", 1)
            s.put({"b": 2, "c": 3})
            s.delete_all()
            return [await s.get("a"), await s.get(["a", "b"]), await s.list()]

        assert await testing.run_in_object(fresh, body) == [None, {}, {}]
        await testing.evict(fresh)
        assert await testing.run_in_object(fresh, lambda o, c: c.storage.list()) == {}

    async def test_sync_kv_sees_it_too(self, tmp_path: Path) -> None:
        """kv.get and kv.list agree on a SQLite-backed object."""
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("new")

            def body(o: Any, ctx: durable.State) -> Any:
                ctx.storage.kv.put("a", 1)
                ctx.storage.delete_all()
                return ctx.storage.kv.get("a"), list(ctx.storage.kv.list())

            assert await testing.run_in_object(stub, body) == (None, [])


class TestKvTableFromTheFirstWrite:
    """_cf_KV exists for SQL from the first key-value write on, as in workerd."""

    @pytest.mark.parametrize("write", ["delete", "put"])
    async def test_same_turn(self, durable_runtime: durable.Runtime, write: str) -> None:
        """delete("a") (or put) then SELECT * FROM _cf_KV in the same turn is prohibited, not missing."""
        stub = durable_runtime.namespace(Obj).get_by_name("new")

        def body(o: Any, ctx: durable.State) -> Any:
            if write == "delete":
                ctx.storage.delete("a")
            else:
                ctx.storage.put("a", 1)
            try:
                ctx.storage.sql.exec("SELECT * FROM _cf_KV")
            except durable.SqlError as exc:
                error = str(exc)
            names = [row["name"] for row in ctx.storage.sql.exec("SELECT name FROM sqlite_master")]
            return error, names

        error, names = await testing.run_in_object(stub, body)
        assert error == "access to _cf_KV.key is prohibited: SQLITE_AUTH"
        assert "_cf_KV" in names
        assert await testing.run_in_object(stub, lambda o, c: c.storage.get("a")) == (None if write == "delete" else 1)

    async def test_reads_create_nothing(self, durable_runtime: durable.Runtime) -> None:
        """Reads alone do not create it (workerd lists nothing for a new object)."""
        stub = durable_runtime.namespace(Obj).get_by_name("new")

        def body(o: Any, ctx: durable.State) -> Any:
            ctx.storage.kv.get("a")
            return ctx.storage.sql.exec("SELECT name FROM sqlite_master").to_array()

        assert await testing.run_in_object(stub, body) == []


class TestInvalidUtf8Text:
    """TEXT that is not valid UTF-8 reads back with U+FFFD, as in workerd, never an unreadable row."""

    @pytest.mark.parametrize(
        ("sql", "expected"),
        [
            ("SELECT CAST(x'ff' AS TEXT) AS v", "\ufffd"),
            ("SELECT CAST(x'61ff62c3' AS TEXT) AS v", "a\ufffdb\ufffd"),
            ("SELECT CAST(x'c3a9' AS TEXT) AS v", "é"),
        ],
    )
    async def test_cast(self, durable_runtime: durable.Runtime, sql: str, expected: str) -> None:
        """CAST of bytes to TEXT: workerd's result."""
        stub = durable_runtime.namespace(Obj).get_by_name("a")
        rows = await testing.run_in_object(stub, lambda o, c: c.storage.sql.exec(sql).to_array())
        assert rows == [{"v": expected}]

    async def test_stored_row_stays_readable(self, durable_runtime: durable.Runtime) -> None:
        """A stored row with bad TEXT is read, row by row, and the object keeps working."""
        stub = durable_runtime.namespace(Obj).get_by_name("a")

        def body(o: Any, ctx: durable.State) -> Any:
            sql = ctx.storage.sql
            sql.exec("CREATE TABLE t (a TEXT)")
            sql.exec("INSERT INTO t VALUES (CAST(x'ff00' AS TEXT)), ('ok')")
            return [row["a"] for row in sql.exec("SELECT a FROM t ORDER BY rowid")]

        assert await testing.run_in_object(stub, body) == ["\ufffd\x00", "ok"]


class TestLoneSurrogateBounds:
    """A lone surrogate in a list bound orders keys as workerd does (keys themselves stay refused)."""

    KEYS = {"a": 1, "\ud7ff": 2, "\ue000": 3, "\U0001f600": 4}

    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ({"start": "\ud800"}, ["\ue000", "\U0001f600"]),
            ({"end": "\ud800"}, ["a", "\ud7ff"]),
            ({"start_after": "\udfff"}, ["\ue000", "\U0001f600"]),
            ({"prefix": "\ud800"}, []),
            ({"prefix": "a\udc00"}, []),
            ({"start": "a\ud800", "end": "\udbff"}, ["\ud7ff"]),
            ({"start": "\ud800", "reverse": True, "limit": 1}, ["\U0001f600"]),
        ],
    )
    async def test_list(self, durable_runtime: durable.Runtime, options: dict[str, Any], expected: list[str]) -> None:
        """list() and kv.list() answer as for any bound."""
        stub = durable_runtime.namespace(Obj).get_by_name("a")

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put(self.KEYS)
            listed = list(await ctx.storage.list(**options))
            synced = [k for k, _ in ctx.storage.kv.list(**options)]
            return listed, synced

        assert await testing.run_in_object(stub, body) == (expected, expected)

    async def test_keys_stay_refused(self, durable_runtime: durable.Runtime) -> None:
        """A key with a lone surrogate is still a TypeError."""
        stub = durable_runtime.namespace(Obj).get_by_name("a")
        with pytest.raises(TypeError, match="lone surrogate"):
            await testing.run_in_object(stub, lambda o, c: c.storage.put("\ud800", 1))
