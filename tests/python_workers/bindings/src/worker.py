"""A Durable Object whose methods each check one behaviour of the SDK's storage, SQL and ctx.

The checks are those of the Durable Object part of Cloudflare's workers-py bindings test
(packages/runtime-sdk/tests/bindings-test), written in the SDK's calling shapes: camelCase,
options as positional dicts, rows read by item. Each `check_*` method raises AssertionError
on a mismatch; tests call them over RPC.
"""

from datetime import datetime, timedelta
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint


class Mixin:
    async def from_mixin(self):
        return "mixin"


class CheckedObject(Mixin, DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.started = ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.loaded = await self.ctx.storage.get("loaded-count") or 0

    async def fetch(self, request):
        if urlparse(request.url).path == "/ping":
            return Response("pong from DO")
        return Response("not found", status=404)

    async def check_put_get(self):
        storage = self.ctx.storage
        await storage.deleteAll()
        await storage.put("key1", "value1")
        assert await storage.get("key1") == "value1"
        assert await storage.get("missing") is None

    async def check_multi(self):
        storage = self.ctx.storage
        await storage.deleteAll()
        await storage.put({"a": 1, "b": 2, "c": 3})
        assert [await storage.get(k) for k in "abc"] == [1, 2, 3]
        several = await storage.get(["a", "b", "missing"])
        assert several.get("a") == 1 and several.get("b") == 2 and "missing" not in several
        assert await storage.delete(["a", "b"]) == 2
        assert await storage.delete("c") is True
        assert await storage.delete("c") is False

    async def check_list(self):
        storage = self.ctx.storage
        await storage.deleteAll()
        await storage.put({"list:a": 1, "list:b": 2, "list:c": 3, "other": 99})
        listed = await storage.list({"prefix": "list:"})
        assert list(listed) == ["list:a", "list:b", "list:c"]
        assert listed["list:b"] == 2
        assert len(await storage.list({"prefix": "list:", "limit": 2})) == 2
        assert list(await storage.list({"startAfter": "list:a", "end": "list:c"})) == ["list:b"]
        assert list(await storage.list({"reverse": True, "limit": 1})) == ["other"]
        await storage.deleteAll()
        assert await storage.list() == {}

    async def check_value_types(self):
        storage = self.ctx.storage
        values = {"str": "hello", "int": 42, "float": 3.14, "bool": True, "list": [1, "two"]}
        for key, value in values.items():
            await storage.put(key, value)
        for key, value in values.items():
            assert await storage.get(key) == value
        await storage.put("dict", {"nested": {"x": 1}})
        read = await storage.get("dict")
        assert read.nested.x == 1 and read["nested"]["x"] == 1

    async def check_sql(self):
        sql = self.ctx.storage.sql
        sql.exec("DROP TABLE IF EXISTS t")
        sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, val TEXT)")
        for i, val in enumerate(["alpha", "beta", "gamma"], 1):
            sql.exec("INSERT INTO t (id, val) VALUES (?, ?)", i, val)
        rows = sql.exec("SELECT id, val FROM t ORDER BY id").toArray()
        assert [(r["id"], r["val"]) for r in rows] == [(1, "alpha"), (2, "beta"), (3, "gamma")]
        assert rows[0].val == "alpha"
        assert [row["val"] for row in sql.exec("SELECT val FROM t ORDER BY id")] == ["alpha", "beta", "gamma"]
        assert sql.exec("SELECT val FROM t WHERE id = 2").one()["val"] == "beta"
        cursor = sql.exec("SELECT id AS foo, val AS bar FROM t")
        assert list(cursor.columnNames) == ["foo", "bar"]
        cursor.toArray()  # an open cursor keeps the table locked (SQLITE_LOCKED on DROP), as on Cloudflare
        written = sql.exec("INSERT INTO t VALUES (4, 'delta')")
        written.toArray()
        assert written.rowsWritten >= 1
        read = sql.exec("SELECT * FROM t")
        read.toArray()
        assert read.rowsRead >= 1
        assert sql.databaseSize > 0
        sql.exec("DROP TABLE t")

    async def check_alarm(self):
        storage = self.ctx.storage
        await storage.deleteAlarm()
        assert await storage.getAlarm() is None
        await storage.setAlarm(datetime.now() + timedelta(minutes=1))
        assert await storage.getAlarm() is not None
        await storage.deleteAlarm()
        assert await storage.getAlarm() is None

    async def check_transaction(self):
        await self.ctx.storage.deleteAll()

        async def body(txn):
            await txn.put("txn_key", "txn_value")
            await txn.put({"other": 1})
            assert list(await txn.list({"prefix": "txn"})) == ["txn_key"]
            return await txn.get("txn_key")

        assert await self.ctx.storage.transaction(body) == "txn_value"
        assert await self.ctx.storage.get("txn_key") == "txn_value"

        async def rolled_back(txn):
            await txn.put("gone", 1)
            txn.rollback()

        await self.ctx.storage.transaction(rolled_back)
        assert await self.ctx.storage.get("gone") is None

    async def check_ctx_id(self):
        text = self.ctx.id.toString()
        assert len(text) == 64 and self.ctx.id.name is not None

    async def check_block_concurrency_while(self):
        await self.started

        async def init():
            await self.ctx.storage.put("bcw_key", "bcw_value")
            return 42

        assert await self.ctx.blockConcurrencyWhile(init) == 42
        assert await self.ctx.storage.get("bcw_key") == "bcw_value"

    async def check_sync(self):
        await self.ctx.storage.put("sync_key", "sync_value")
        await self.ctx.storage.sync()
        assert await self.ctx.storage.get("sync_key") == "sync_value"

    async def echo(self, value):
        return value

    async def wrap(self, data):
        return {"received": data, "added": True}

    def pair(self):
        return (1, 2)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.TEST_DO.getByName("fetch")
        return await stub.fetch("http://fake-host/ping")
