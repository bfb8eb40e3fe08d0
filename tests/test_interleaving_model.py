"""Nothing accepted is lost, under random interleavings (Hypothesis).

Rounds of concurrent calls reach a few objects, each call adding a number to a key by one of the
ways an object may read-modify-write (plain awaited storage calls, ``transaction()``,
``block_concurrency_while`` with a real suspension inside, the synchronous KV API, SQL, writes
not awaited, ``fetch``). Between rounds the test may evict an object, inject a failing commit, or
close and reopen the runtime on its files.

The rule checked is the one Cloudflare's gates give: a read-modify-write whose only awaits are
storage calls is atomic, so a key ends at exactly the sum of what the calls that answered
successfully added. A call that failed with ``ObjectResetError`` added nothing (its writes were
rolled back with the failed commit), nor did a transaction that raised; a handler that raised
after its write keeps the write, as in workerd. A call that answered is never lost, even across
eviction and reopening.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable import testing

MODES = ("plain", "txn", "bcw", "kv", "sql", "unawaited", "fetch", "yield_after", "txn_raise", "raise_after_put")


class Refused(Exception):
    """Raised by the object on purpose, after or inside its write."""


class Acc(durable.DurableObject):
    """Adds ``n`` to the integer under ``key``, in the way ``mode`` names."""

    async def add(self, key: str, n: int, mode: str) -> int:
        storage = self.ctx.storage
        if mode in ("plain", "yield_after"):
            value = (await storage.get(key)) or 0
            await storage.put(key, value + n)
            if mode == "yield_after":
                await asyncio.sleep(0)  # the input gate opens after the write: still atomic
        elif mode == "txn":

            async def body(txn: Any) -> None:
                value = (await txn.get(key)) or 0
                await txn.put(key, value + n)

            await storage.transaction(body)
        elif mode == "bcw":

            async def blocked() -> None:
                value = (await storage.get(key)) or 0
                await asyncio.sleep(0)  # real suspension: only the blocked gate keeps others out
                await storage.put(key, value + n)

            await self.ctx.block_concurrency_while(blocked)
        elif mode == "txn_raise":

            async def failing(txn: Any) -> None:
                value = (await txn.get(key)) or 0
                await txn.put(key, value + n)
                raise Refused("rolled back")

            await storage.transaction(failing)
        elif mode == "raise_after_put":
            value = (await storage.get(key)) or 0
            await storage.put(key, value + n)
            raise Refused("after the write")  # the write stays: an exception rolls nothing back
        elif mode == "kv":
            storage.kv.put(key, (storage.kv.get(key) or 0) + n)
        elif mode == "sql":
            # The same key-value table through SQL would be refused (_cf_KV is reserved): a table of
            # its own, read back by total() with the key-value data.
            storage.sql.exec("CREATE TABLE IF NOT EXISTS acc (k TEXT PRIMARY KEY, v INTEGER)")
            storage.sql.exec("INSERT INTO acc VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = v + excluded.v", key, n)
        elif mode == "unawaited":
            pending = storage.get(key)
            value = (await pending) or 0
            storage.put(key, value + n)  # not awaited: still part of this turn's batch
        else:
            raise AssertionError(mode)
        return n

    async def fetch(self, request: durable.Request) -> durable.Response:
        key, n = request.url.rsplit("/", 2)[-2:]
        await self.add(key, int(n), "plain")
        return durable.Response(n)

    async def total(self, key: str) -> int:
        storage = self.ctx.storage
        sql_total = 0
        tables = storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'acc'").to_array()
        if tables:
            rows = storage.sql.exec("SELECT v FROM acc WHERE k = ?", key).to_array()
            sql_total = rows[0]["v"] if rows else 0
        return ((await storage.get(key)) or 0) + sql_total


calls = st.tuples(
    st.sampled_from(["o1", "o2"]),  # the object
    st.sampled_from(["a", "b"]),  # the key
    st.integers(min_value=1, max_value=9),
    st.sampled_from(MODES),
)
between = st.sampled_from(["nothing", "nothing", "evict", "fail_commit", "reopen"])
rounds = st.lists(st.tuples(st.lists(calls, min_size=1, max_size=8), between), min_size=1, max_size=6)


async def call(stub: Any, key: str, n: int, mode: str) -> int:
    if mode == "fetch":
        response = await stub.fetch(f"http://acc/{key}/{n}")
        return int(await response.text())
    return int(await stub.add(key, n, mode))


async def play(schedule: list[tuple[list[tuple[str, str, int, str]], str]], path: Path | None) -> None:
    expected: dict[tuple[str, str], int] = {}
    rt = durable.Runtime(path=path) if path is not None else durable.Runtime()
    try:
        for batch, then in schedule:
            ns = rt.namespace(Acc)
            stubs = {name: ns.get_by_name(name) for name in ("o1", "o2")}  # fresh stubs: none broken
            results = await asyncio.gather(
                *(call(stubs[obj], key, n, mode) for obj, key, n, mode in batch), return_exceptions=True
            )
            for (obj, key, n, mode), result in zip(batch, results, strict=True):
                if isinstance(result, durable.ObjectResetError):
                    continue  # its commit failed: nothing of it was kept
                if mode == "txn_raise":
                    assert isinstance(result, Refused), result  # the transaction rolled back
                elif mode == "raise_after_put":
                    assert isinstance(result, Refused), result
                    expected[obj, key] = expected.get((obj, key), 0) + n  # committed all the same
                else:
                    assert result == n
                    expected[obj, key] = expected.get((obj, key), 0) + n
            if then == "evict":
                await testing.evict(stubs["o1"])
            elif then == "fail_commit":
                testing.fail_next_commit(stubs["o1"])
            elif then == "reopen" and path is not None:
                await rt.aclose()
                rt = durable.Runtime(path=path)
        # An injected failure not yet met would fail the first check: meet it with a write first.
        ns = rt.namespace(Acc)
        await asyncio.gather(*(call(ns.get_by_name(o), "z", 1, "plain") for o in ("o1", "o2")), return_exceptions=True)
        for obj in ("o1", "o2"):
            stub = rt.namespace(Acc).get_by_name(obj)
            for key in ("a", "b"):
                assert await stub.total(key) == expected.get((obj, key), 0), (obj, key)
    finally:
        await rt.aclose()


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("persisted", [False, True], ids=["memory", "files"])
@SETTINGS
@given(schedule=rounds)
def test_every_answered_call_is_kept_and_no_update_is_lost(persisted: bool, schedule: Any) -> None:
    if not persisted:
        asyncio.run(play(schedule, None))
        return
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(play(schedule, Path(directory)))
