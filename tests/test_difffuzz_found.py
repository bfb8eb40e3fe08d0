"""Differences between workerd and durable found by the differential fuzzer (tests/differential/),
each fixed in durable, with the workerd measurement it follows."""

from __future__ import annotations

import durable


class Reindexer(durable.DurableObject):
    def written(self, *statements: str) -> list[int]:
        out = []
        for statement in statements:
            cursor = self.ctx.storage.sql.exec(statement)
            cursor.to_array()
            out.append(cursor.rows_written)
        return out

    async def put(self, key: str) -> None:
        await self.ctx.storage.put(key, 1)

    async def set_alarm(self) -> None:
        await self.ctx.storage.set_alarm(4_102_444_800_000)

    async def alarm(self) -> None:
        pass


class TestReindexRowsWritten:
    """workerd counts one written row per entry of each index REINDEX rebuilds (miniflare
    4.20260426, 2026-04-27): over `t (a, b UNIQUE)` with 3 rows `REINDEX`, `REINDEX t` and
    `REINDEX sqlite_autoindex_t_1` write 3; `v (a PRIMARY KEY, b)` with 2 rows 2; a WITHOUT ROWID
    `u (x PRIMARY KEY)` with 2 rows 2; `REINDEX NOCASE` only the NOCASE index's 2; `CREATE INDEX ia
    ON t (a)` still 4 and `REINDEX ia` 3; the whole database 12, 13 once `_cf_KV` holds a key."""

    async def test_counts_each_rebuilt_index(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(Reindexer).get_by_name("r")
        got = await stub.written(
            "CREATE TABLE t (a, b UNIQUE)",
            "INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)",
            "REINDEX",
            "REINDEX t",
            "REINDEX sqlite_autoindex_t_1",
            "CREATE TABLE v (a PRIMARY KEY, b)",
            "INSERT INTO v VALUES (1, 1), (2, 2)",
            "REINDEX v",
            "CREATE TABLE z (a INTEGER PRIMARY KEY, b COLLATE NOCASE UNIQUE)",
            "INSERT INTO z VALUES (1, 1), (2, 2)",
            "REINDEX NOCASE",
            "CREATE TABLE u (x PRIMARY KEY) WITHOUT ROWID",
            "INSERT INTO u VALUES (1), (2)",
            "REINDEX u",
            "CREATE INDEX ia ON t (a)",
            "REINDEX ia",
            "REINDEX",
        )
        assert got == [3, 6, 3, 3, 3, 3, 4, 2, 3, 4, 2, 2, 2, 2, 4, 3, 12]

    async def test_counts_the_key_value_table(self, durable_runtime: durable.Runtime) -> None:
        """_cf_KV (WITHOUT ROWID) is rebuilt too: one row per key."""
        stub = durable_runtime.namespace(Reindexer).get_by_name("kv")
        assert await stub.written("REINDEX") == [0]
        await stub.put("a")
        await stub.put("b")
        assert await stub.written("REINDEX") == [2]

    async def test_leaves_out_the_alarm_table(self, durable_runtime: durable.Runtime) -> None:
        """workerd's _cf_METADATA adds nothing: after set_alarm and one put, REINDEX writes 1
        (measured with miniflare 4.20260426; durable keeps the alarm in a WITHOUT ROWID table)."""
        stub = durable_runtime.namespace(Reindexer).get_by_name("alarm")
        await stub.set_alarm()
        assert await stub.written("REINDEX") == [0]
        await stub.put("a")
        assert await stub.written("REINDEX") == [1]


class DeletesAllFirst(durable.DurableObject):
    async def delete_all_before_the_closure(self) -> list[str]:
        """``p = transaction(f); delete_all(); await p``: f reads ``k`` and rolls back."""
        storage = self.ctx.storage
        log: list[str] = []
        await storage.put("k", "old")

        async def closure(txn: durable.Transaction) -> None:
            log.append(f"closure sees {await txn.get('k')}")
            txn.rollback()

        running = storage.transaction(closure)
        storage.delete_all()
        await running
        log.append(f"final {await storage.get('k')}")
        return log


class TestDeleteAllBeforeATransactionsClosure:
    """workerd runs a ``deleteAll()`` made by the caller's next line after ``transaction()``, before
    the closure starts: the closure reads undefined and its rollback keeps the wipe (miniflare
    4.20260426.0, both backends). durable queued any ``delete_all()`` made while a transaction was
    open until its end (found by ``run.py 150 --seed 9796``, sequence 58, by helper txn-first)."""

    async def test_sqlite(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(DeletesAllFirst).get_by_name("a")
        assert await stub.delete_all_before_the_closure() == ["closure sees None", "final None"]

    async def test_kv(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(DeletesAllFirst, storage="kv").get_by_name("a")
        assert await stub.delete_all_before_the_closure() == ["closure sees None", "final None"]
