"""Small fixes of the reviews of round 3 (helper small-fixes): each checked on workerd or its source."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import durable
from durable._directory import META_FILE


class Named(durable.DurableObject):
    async def name_inside(self) -> str | None:
        return self.ctx.id.name

    async def write(self) -> None:
        await self.ctx.storage.put("k", 1)


def _record_name(path: Path, namespace: str, hexid: str, name: str) -> None:
    """Record ``name`` for an object as a durable of before the 1,024-byte rule did."""
    with sqlite3.connect(path / META_FILE) as meta:
        meta.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", (namespace, hexid, name))
    meta.close()


class TestStoredLongNames:
    """A name over 1,024 UTF-8 bytes that an earlier durable recorded does not reach the object.

    workerd's ``ctx.id.name`` is ``undefined`` for such a name (miniflare 4.20260426, both
    backends, see ``Namespace.host``); an earlier durable recorded it in the runtime's directory, and
    ``host_for`` read it back for an id without a name, so the object saw it after a restart.
    """

    async def test_a_recorded_long_name_is_ignored(self, tmp_path: Path) -> None:
        long, short = "b" * 1025, "c" * 1024
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(Named)
            long_id, short_id = ns.id_from_name(long), ns.id_from_name(short)
            await ns.get(long_id).write()
            await ns.get(short_id).write()
        _record_name(tmp_path, "Named", str(long_id), long)
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(Named)
            assert await ns.get(ns.id_from_string(str(long_id))).name_inside() is None
            assert await ns.get_by_name(long).name_inside() is None
            assert await ns.get(ns.id_from_string(str(short_id))).name_inside() == short
            names = {str(oid): oid.name for oid in await durable.testing.list_ids(ns)}
            assert names == {str(long_id): None, str(short_id): short}

    async def test_lone_surrogates_count_their_bytes(self, tmp_path: Path) -> None:
        """A name recorded as workerd reads it (U+FFFD per byte of a lone surrogate) counts the
        surrogate's three bytes, as ``Namespace.host`` does: 341 of them reach the object, 342 not."""
        fits, over = "\ud800" * 341, "\ud800" * 342
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(Named)
            fits_id, over_id = ns.id_from_name(fits), ns.id_from_name(over)
            await ns.get(fits_id).write()
            await ns.get(over_id).write()
            seen = fits_id.name
        _record_name(tmp_path, "Named", str(over_id), over_id.name or "")
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(Named)
            assert await ns.get(ns.id_from_string(str(fits_id))).name_inside() == seen == "\ufffd" * 1023
            assert await ns.get(ns.id_from_string(str(over_id))).name_inside() is None


class TestPythonWorkersStubFetchIsACoroutine:
    """The SDK's ``stub.fetch(...)`` is a coroutine: sent when it runs, not when it is called.

    cloudflare/workers-py ``packages/runtime-sdk`` at ``b00837d4``: ``_FetcherWrapper.fetch`` (in
    ``src/workers/rpc.py``) returns ``fetch(*args, fetcher=self._binding.fetch, **kwargs)``, the
    ``async def fetch`` of ``src/workers/fetch.py``, whose body calls Pyodide's ``pyfetch`` (an
    ``async def`` too) that calls the JavaScript ``fetch``: until the coroutine is awaited or handed
    to a task, nothing is sent (and Python warns it was never awaited). durable's ``StubAdapter.fetch``
    is an ``async def`` and does the same. An RPC call is sent at once in both (the SDK calls the
    JavaScript method before it returns its coroutine): durable's ``stub.method(...)`` too.
    """

    async def test_an_unawaited_fetch_is_not_sent(self, durable_runtime: durable.Runtime) -> None:
        import inspect

        from durable.compat import python_workers as pw
        from durable.compat.python_workers import workers as sdk

        seen: list[str] = []

        class Target(sdk.DurableObject):
            async def fetch(self, request: object) -> object:
                seen.append("fetch")
                return sdk.Response("ok")

            async def call(self) -> None:
                seen.append("call")

        pw.install()
        try:
            durable_runtime.namespace(Target, name="TARGET")
            pw.serving(durable_runtime)
            stub = sdk.env.TARGET.getByName("a")
            pending = stub.fetch("https://w/")
            assert inspect.iscoroutine(pending)
            await stub.call()  # the loop runs: the fetch does not
            assert seen == ["call"]
            pending.close()  # never sent, as in the SDK
            response = await stub.fetch("https://w/")
            assert await response.text() == "ok" and seen == ["call", "fetch"]
        finally:
            pw.uninstall()


class KvTable(durable.DurableObject):
    async def after(self, op: str) -> tuple[list[str], int]:
        """What SQL sees after ``op``: ``sqlite_master``'s names, and an ``ALTER TABLE``'s rows_read."""
        storage = self.ctx.storage
        if op == "put({})":
            await storage.put({})
        elif op == "put({}) unawaited":
            storage.put({})
        elif op == "delete([])":
            assert await storage.delete([]) == 0
        elif op == "get([])":
            assert await storage.get([]) == {}
        elif op == "transaction put({})":
            await storage.transaction(lambda txn: txn.put({}))
        elif op == "transaction_sync put({})":

            def put_nothing() -> None:
                storage.put({})  # (its awaitable is done at once; workerd's promise too)

            storage.transaction_sync(put_nothing)
        elif op == "rolled back put({})":

            async def rolled_back(txn: durable.Transaction) -> None:
                await txn.put({})
                txn.rollback()

            await storage.transaction(rolled_back)
        names = [row["name"] for row in storage.sql.exec("SELECT name FROM sqlite_master ORDER BY name")]
        storage.sql.exec("CREATE TABLE t (a)")
        return names, storage.sql.exec("ALTER TABLE t ADD COLUMN b").rows_read


class TestEmptyBatchesAndCfKv:
    """``put({})`` creates ``_cf_KV`` on a SQLite-backed object, as a delete of a missing key does;
    ``delete([])`` and ``get([])`` do not. Measured with miniflare 4.20260426.0 (compatibility date
    2026-04-20): after ``put({})`` (awaited or not, in ``transaction()`` or ``transactionSync()``)
    ``sqlite_master`` lists ``_cf_KV`` and ``ALTER TABLE t ADD COLUMN b`` reads 4 rows (3 without
    it); a rolled-back transaction's ``put({})`` leaves no table. durable returned at once and
    created nothing."""

    async def test_which_calls_create_the_table(self, durable_runtime: durable.Runtime) -> None:
        ns = durable_runtime.namespace(KvTable)
        created = (["_cf_KV"], 4)
        expected = {
            "nothing": ([], 3),
            "put({})": created,
            "put({}) unawaited": created,
            "transaction put({})": created,
            "transaction_sync put({})": created,
            "delete([])": ([], 3),
            "get([])": ([], 3),
            "rolled back put({})": ([], 3),
        }
        seen = {op: tuple(await ns.get_by_name(op).after(op)) for op in expected}
        assert seen == {op: (names, rows) for op, (names, rows) in expected.items()}
