"""``delete_alarm()`` after ``delete_all()`` in one transaction creates ``_cf_METADATA``, as in workerd.

Measured with miniflare 4.20260426.0, compatibility date 2026-04-20 (a SQLite-backed object whose
``fetch`` ran the listed calls, each awaited, then ``SELECT type, name FROM sqlite_master``):
``deleteAll(); deleteAlarm()`` leaves an empty ``_cf_METADATA`` that user SQL sees (and an ``ALTER``
counts: differential fuzzer, ``run.py --seed 10172 --loop uvloop``, sequence 55), also after a
``put`` and with a table created between them; a ``getAlarm()`` between them, a turn's end (a
20 ms timer) between them, or the two in separate calls leave no table, nor does ``deleteAlarm()``
alone on a new object.
"""

from __future__ import annotations

import asyncio

import pytest

import durable


class Probe(durable.DurableObject):
    async def run(self, ops: list[str]) -> list[str]:
        storage = self.ctx.storage
        for op in ops:
            if op == "deleteAll":
                await storage.delete_all()
            elif op == "deleteAlarm":
                await storage.delete_alarm()
            elif op == "getAlarm":
                await storage.get_alarm()
            elif op == "put":
                await storage.put("k", 1)
            elif op == "turn":
                await asyncio.sleep(0.02)  # a timer: the turn's commit runs before it fires
            else:
                storage.sql.exec(op)
        return [str(row[1]) for row in storage.sql.exec("SELECT type, name FROM sqlite_master").raw()]


@pytest.mark.parametrize(
    ("calls", "tables"),
    [
        ([["deleteAll", "deleteAlarm"]], ["_cf_METADATA"]),
        ([["put", "deleteAll", "deleteAlarm"]], ["_cf_METADATA"]),
        ([["deleteAll", "deleteAlarm", "deleteAlarm"]], ["_cf_METADATA"]),
        ([["deleteAll", "CREATE TABLE t (x)", "deleteAlarm"]], ["t", "_cf_METADATA"]),
        ([["deleteAll", "deleteAlarm"], []], ["_cf_METADATA"]),
        ([["deleteAll", "getAlarm", "deleteAlarm"]], []),
        ([["deleteAll", "turn", "deleteAlarm"]], []),
        ([["deleteAll"], ["deleteAlarm"]], []),
        ([["deleteAlarm"]], []),
    ],
)
async def test_delete_alarm_after_delete_all_creates_the_metadata_table(
    calls: list[list[str]], tables: list[str]
) -> None:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Probe).get_by_name("p")
        seen: list[str] = []
        for ops in calls:
            seen = await stub.run(ops)
        assert seen == tables


async def test_the_table_made_so_holds_no_alarm_and_is_refused_to_user_sql() -> None:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Probe).get_by_name("p")
        await stub.run(["deleteAll", "deleteAlarm"])
        assert await stub.run(["getAlarm"]) == ["_cf_METADATA"]
        with pytest.raises(Exception, match="_cf_METADATA"):
            await stub.run(["SELECT * FROM _cf_METADATA"])
