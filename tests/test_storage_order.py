"""The order of key-value storage calls around a ``transaction()``, and ``_cf_KV`` after a restart.

1. workerd (miniflare 4.20260426.0, compatibility date 2026-04-20, SQLite- and KV-backed alike)
starts a ``transaction()``'s closure once the calling code's turn is over: the other branches of a
``Promise.all`` it is part of run first, outside the transaction. Measured after ``put("k", "old")``,
with a closure that reads ``k`` and lists, then rolls back (``T``), or reads ``k`` and writes it
(``T1``/``T2``, writing "one"/"two"; ``T``, writing "t"):

- ``Promise.all([txn(), (async () => put("k", "new"))()])``: put done, T sees new, final new;
- ``Promise.all([transaction(T), get("k")])``: get old, T sees old, final t (``delete``: delete
  true, T sees undefined; ``list``: the list has old);
- a branch that awaits a ``get`` first, then puts: the put still runs before the closure;
- a branch that waits for a timer first, then puts: the closure runs first (T sees old);
- ``Promise.all([transaction(T1), transaction(T2), put("k", "new")])``: T1 sees new, T2 sees one;
- inside a closure, ``Promise.all([transaction(inner), (async () => txn.put("k", "outer"))()])``:
  the put runs first, inner sees outer.

In Python the branches of ``asyncio.gather`` are tasks that begin after the one that called
``transaction()``; durable let only that caller go first, so a gathered coroutine's storage call
waited for the transaction's end (differential allowance "txn-sibling-first", now closed).

2. See the second half of this file.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from differential.runner import DurableSide, Workerd, compare, started_or_skipped

import durable

from helpers import eager_tasks, settle, wait_until


class Order(durable.DurableObject):
    async def shape(self, shape: str) -> list[str]:
        storage = self.ctx.storage
        await storage.delete_all()
        await storage.put("k", "old")
        log: list[str] = []

        def reads(name: str) -> Callable[[durable.Transaction], Awaitable[str]]:
            async def closure(txn: durable.Transaction) -> str:
                log.append(f"{name} sees {await txn.get('k')}")
                log.append(f"{name} list {list((await txn.list()).items())}")
                txn.rollback()
                return name

            return closure

        def writes(name: str, value: str) -> Callable[[durable.Transaction], Awaitable[str]]:
            async def closure(txn: durable.Transaction) -> str:
                log.append(f"{name} sees {await txn.get('k')}")
                await txn.put("k", value)
                return name

            return closure

        async def txn(closure: Callable[[durable.Transaction], Awaitable[str]]) -> None:
            await storage.transaction(closure)

        async def put(value: str) -> None:
            await storage.put("k", value)
            log.append(f"put {value} done")

        async def logged(what: str, call: Callable[[], Awaitable[Any]]) -> None:
            log.append(f"{what} {await call()}")  # (called in the gathered coroutine's own task)

        async def get_then_put() -> None:
            await storage.get("x")
            await put("new")

        async def later_put() -> None:
            while not log:  # (workerd: after a setTimeout of 0, the closure has run)
                await asyncio.sleep(0)
            await put("new")

        if shape == "txn,put":
            await asyncio.gather(txn(reads("T")), put("new"))
        elif shape == "direct,put":  # transaction() called by the gathering code itself
            await asyncio.gather(storage.transaction(reads("T")), storage.put("k", "new"))
        elif shape == "direct,coroutine-put":  # a difference kept (docs/differences.md)
            await asyncio.gather(storage.transaction(reads("T")), put("new"))
        elif shape == "txn,get":
            await asyncio.gather(txn(writes("T", "t")), logged("get", lambda: storage.get("k")))
        elif shape == "txn,delete":
            await asyncio.gather(txn(reads("T")), logged("delete", lambda: storage.delete("k")))
        elif shape == "txn,list":
            await asyncio.gather(txn(writes("T", "t")), logged("list", lambda: storage.list()))
        elif shape == "txn,get-then-put":
            await asyncio.gather(txn(reads("T")), get_then_put())
        elif shape == "txn,later-put":
            await asyncio.gather(txn(reads("T")), later_put())
        elif shape == "txn,txn":
            await asyncio.gather(txn(writes("T1", "one")), txn(writes("T2", "two")))
        elif shape == "txn,txn,put":
            await asyncio.gather(txn(writes("T1", "one")), txn(writes("T2", "two")), put("new"))
        elif shape == "nested":

            async def outer(t: durable.Transaction) -> None:
                async def outer_put() -> None:
                    await t.put("k", "outer")
                    log.append("outer put done")

                await asyncio.gather(txn(reads("inner")), outer_put())
                log.append(f"outer sees {await t.get('k')}")

            await storage.transaction(outer)
        elif shape == "woken":  # another task of the object, woken just before the call
            woken = asyncio.get_running_loop().create_future()

            async def other() -> None:
                await woken
                storage.put("k", "other")
                log.append("other put")

            task = asyncio.ensure_future(other())
            await asyncio.sleep(0)  # (it waits for woken)
            woken.set_result(None)
            await storage.transaction(reads("T"))
            await task
        else:
            raise ValueError(shape)
        log.append(f"final {await storage.get('k')}")
        return log

    async def shape_eager(self, shape: str) -> list[str]:
        with eager_tasks():
            return await self.shape(shape)


SHAPES = {
    # as measured in workerd (the module docstring), in Python's words
    "txn,put": ["put new done", "T sees new", "T list [('k', 'new')]", "final new"],
    "direct,put": ["T sees new", "T list [('k', 'new')]", "final new"],
    "direct,coroutine-put": ["T sees old", "T list [('k', 'old')]", "put new done", "final new"],  # workerd: new
    "txn,get": ["get old", "T sees old", "final t"],
    "txn,delete": ["delete True", "T sees None", "T list []", "final None"],
    "txn,list": ["list {'k': 'old'}", "T sees old", "final t"],
    "txn,get-then-put": ["put new done", "T sees new", "T list [('k', 'new')]", "final new"],
    "txn,later-put": ["T sees old", "T list [('k', 'old')]", "put new done", "final new"],
    "txn,txn": ["T1 sees old", "T2 sees one", "final two"],
    "txn,txn,put": ["put new done", "T1 sees new", "T2 sees one", "final two"],
    "nested": ["outer put done", "inner sees outer", "inner list [('k', 'outer')]", "outer sees outer", "final outer"],
    "woken": ["other put", "T sees other", "T list [('k', 'other')]", "final other"],
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("backend", ["sqlite", "kv"])
async def test_calls_gathered_with_a_transaction_run_before_its_closure(backend: str, shape: str) -> None:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Order, storage=backend).get_by_name(shape)
        assert await stub.shape(shape) == SHAPES[shape]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory is new in Python 3.12")
@pytest.mark.parametrize("shape", ["txn,put", "txn,get", "txn,txn,put", "nested"])
async def test_the_same_with_eager_tasks(shape: str) -> None:
    """With ``asyncio.eager_task_factory`` (Python 3.12+) the gathered coroutines start inside
    ``gather``; the closure still starts after them."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Order).get_by_name(shape)
        assert await stub.shape_eager(shape) == SHAPES[shape]


class Queued(durable.DurableObject):
    async def run(self) -> list[str]:
        """Another task's put queued during a transaction, and its next put made before the
        closure of the transaction queued behind it starts: they keep their order."""
        storage = self.ctx.storage
        await storage.put("k", "old")
        release = asyncio.get_running_loop().create_future()
        log: list[str] = []

        async def first(txn: durable.Transaction) -> None:
            await release

        async def second(txn: durable.Transaction) -> None:
            log.append(f"second sees {await txn.get('k')}")

        running = storage.transaction(first)
        await asyncio.sleep(0)  # (its closure waits for release)
        queued = storage.transaction(second)  # waits for the first one

        async def other() -> None:
            storage.put("k", "a")  # queued after the second transaction
            release.set_result(None)
            while not running.done():
                await asyncio.sleep(0)
            storage.put("k", "b")  # the first one ended; the second's closure has not started

        await asyncio.gather(running, queued, other())
        log.append(f"final {await storage.get('k')}")
        return log


@pytest.mark.parametrize("backend", ["sqlite", "kv"])
async def test_calls_queued_at_a_level_keep_their_order(backend: str) -> None:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Queued, storage=backend).get_by_name("q")
        assert await stub.run() == ["second sees old", "final b"]


class CrossEvent(durable.DurableObject):
    """Another event's code woken by the caller of ``transaction()`` just before the call."""

    woken: asyncio.Future[None] | None = None

    async def waiter(self) -> str:
        CrossEvent.woken = asyncio.get_running_loop().create_future()
        await CrossEvent.woken
        self.ctx.storage.put("x", "other")
        return "put"

    async def wake_then_transaction(self) -> str:
        assert CrossEvent.woken is not None
        CrossEvent.woken.set_result(None)

        async def closure(txn: durable.Transaction) -> Any:
            seen = await txn.get("x")
            await txn.put("x", "txn")
            txn.rollback()
            return seen

        seen = await self.ctx.storage.transaction(closure)
        return f"txn saw {seen}, after {await self.ctx.storage.get('x')}"


@pytest.mark.parametrize("backend", ["sqlite", "kv"])
async def test_another_event_woken_by_the_caller_runs_before_the_closure(backend: str) -> None:
    """One event waits for a promise; another resolves it, then calls ``transaction()`` (its
    closure reads ``x``, writes it and rolls back). workerd (miniflare 4.20260426.0, compatibility
    date 2026-04-20, every run of three) ran the woken event's ``put("x", "other")`` first, outside
    the transaction: "txn saw other, after other". Code of the object that is ready when
    ``transaction()`` is called goes first whatever event it belongs to (the closure's task starts
    behind it); durable made it wait for the transaction's end before the txn-sibling-first fix
    ("txn saw undefined, after other")."""
    CrossEvent.woken = None
    async with durable.Runtime() as rt:
        ns = rt.namespace(CrossEvent, storage=backend)
        waiting = asyncio.ensure_future(ns.get_by_name("a").waiter())
        await wait_until(lambda: CrossEvent.woken is not None, what="the waiting event")
        await settle(20)  # (its task waits for the future)
        assert await ns.get_by_name("a").wake_then_transaction() == "txn saw other, after other"
        assert await waiting == "put"


# 2. ``_cf_KV`` after a restart. workerd (miniflare 4.20260426.0, compatibility date 2026-04-20,
# SQLite-backed) creates ``_cf_KV`` for a key-value write that changes nothing (a delete of a
# missing key, ``put({})``, ``delete([...])`` of missing keys, an un-awaited delete) and commits it
# with the turn: a new instance (after ``ctx.abort()``, a throwing ``blockConcurrencyWhile()``, an
# ordinary throw, or miniflare disposed and started again on the same files) lists ``_cf_KV`` in
# ``sqlite_master``. Not when the delete was rolled back with its ``transaction()``, nor when
# ``ctx.abort()`` came in the same turn as the delete (the turn's writes were dropped); a throwing
# ``blockConcurrencyWhile()`` later in the delete's call comes after its commit (the table stays).
# durable created the table only when later SQL of the same instance needed it.


class Empty(durable.DurableObject):
    async def act(self, what: str) -> Any:
        storage = self.ctx.storage
        if what == "delete":
            return await storage.delete("missing")
        if what == "delete-many":
            return await storage.delete(["missing", "other"])
        if what == "put-empty":
            return await storage.put({})
        if what == "delete-nowait":
            storage.delete("missing")
            return "sent"
        if what == "txn-delete-rollback":

            async def closure(txn: durable.Transaction) -> str:
                await txn.delete("missing")
                txn.rollback()
                return "rb"

            return await storage.transaction(closure)
        if what == "abort":
            self.ctx.abort("restart")
        if what == "delete-abort":
            storage.delete("missing")
            self.ctx.abort("restart")
        if what == "bcw-throw":
            await self.ctx.block_concurrency_while(_throw)
        if what == "delete-bcw-throw":
            storage.delete("missing")
            await self.ctx.block_concurrency_while(_throw)
        if what == "throw":
            raise ValueError("plain throw")
        if what == "master":
            return [row["name"] for row in storage.sql.exec("SELECT name FROM sqlite_master")]
        raise ValueError(what)


async def _throw() -> None:
    raise ValueError("bcw")


RESETS = {
    # steps, then what sqlite_master lists (measured in workerd)
    "delete,abort": (["delete", "abort"], ["_cf_KV"]),
    "put-empty,abort": (["put-empty", "abort"], ["_cf_KV"]),
    "delete-many,abort": (["delete-many", "abort"], ["_cf_KV"]),
    "delete-nowait,abort": (["delete-nowait", "abort"], ["_cf_KV"]),
    "delete,bcw-throw": (["delete", "bcw-throw"], ["_cf_KV"]),
    "delete,throw": (["delete", "throw"], ["_cf_KV"]),
    "delete-bcw-throw": (["delete-bcw-throw"], ["_cf_KV"]),
    "delete-abort": (["delete-abort"], []),
    "txn-delete-rollback,abort": (["txn-delete-rollback", "abort"], []),
    "nothing": ([], []),
}


@pytest.mark.parametrize("name", list(RESETS))
async def test_cf_kv_made_by_a_write_of_nothing_survives_a_reset(name: str) -> None:
    steps, expected = RESETS[name]
    async with durable.Runtime() as rt:
        ns = rt.namespace(Empty)
        for step in steps:
            try:
                await ns.get_by_name(name).act(step)  # (a stub of its own, as workerd's harness: a reset breaks it)
            except Exception:
                pass  # (the reset's error, or the thrown one)
        assert await ns.get_by_name(name).act("master") == expected


@pytest.mark.parametrize("write", ["delete", "put-empty", "delete-nowait", "txn-delete-rollback"])
async def test_cf_kv_made_by_a_write_of_nothing_survives_a_restart(tmp_path: Any, write: str) -> None:
    async with durable.Runtime(path=tmp_path) as rt:
        await rt.namespace(Empty).get_by_name("a").act(write)
    async with durable.Runtime(path=tmp_path) as rt:
        expected = [] if write == "txn-delete-rollback" else ["_cf_KV"]
        assert await rt.namespace(Empty).get_by_name("a").act("master") == expected


# Both, in the differential test's terms (tests/differential/), compared with workerd itself: the
# reproduction of allowance "txn-sibling-first", and an ALTER TABLE after a write of nothing and a
# restart, which reads sqlite_master's rows (workerd 4 with _cf_KV, durable read 3 without it).

_STR = {"t": "str", "v": "old"}
_TABLE = {"op": "sql", "query": "CREATE TABLE t1 (id INTEGER PRIMARY KEY, b TEXT)", "bindings": []}
_ALTER = {"op": "sql", "query": "ALTER TABLE t1 ADD COLUMN e", "bindings": []}
ON_WORKERD: dict[str, dict[str, Any]] = {
    "txn-sibling-first": {
        "backend": "sqlite",
        "calls": [
            [{"op": "put", "key": "k", "value": _STR}],
            [
                {
                    "op": "all",
                    "ops": [
                        {"op": "txn", "via": "txn", "end": "rollback", "ops": [{"op": "get", "key": "k"}]},
                        {"op": "put", "key": "k", "value": {"t": "str", "v": "new"}},
                    ],
                }
            ],
        ],
    },
    "put-empty-restart": {
        "backend": "sqlite",
        "calls": [[{"op": "put_many", "entries": []}], [{"op": "restart"}], [_TABLE, _ALTER]],
    },
    "delete-missing-restart": {
        "backend": "sqlite",
        "calls": [[{"op": "delete", "key": "k"}], [{"op": "restart"}], [_TABLE, _ALTER]],
    },
}


@pytest.fixture(scope="module")
def workerd() -> Iterator[Workerd]:
    yield from started_or_skipped()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(ON_WORKERD))
async def test_as_on_workerd(name: str, workerd: Workerd, durable_runtime: durable.Runtime) -> None:
    difference = await compare(ON_WORKERD[name], f"storage-order-{name}", workerd, DurableSide(durable_runtime))
    assert difference is None, str(difference)


@pytest.mark.parametrize("write", ["delete", "delete-many", "put-empty", "kv.delete"])
async def test_cf_kv_that_cannot_be_made_fails_the_call_with_durables_error(write: str) -> None:
    """The table made by a write of nothing, in a database that cannot grow (``PRAGMA
    max_page_count`` at its size: SQLITE_FULL, as a full disk), fails the call with
    ``durable.SqlError``, as a spilled write does; ``sqlite3.OperationalError`` escaped."""
    from durable.testing import query, run_in_object

    async with durable.Runtime() as rt:
        stub = rt.namespace(Empty).get_by_name("full")
        await query(stub, "CREATE TABLE t (a)")
        (pages,) = (await query(stub, "PRAGMA page_count", unrestricted=True))[0].values()
        await query(stub, f"PRAGMA max_page_count = {pages}", unrestricted=True)

        async def body(obj: Any, ctx: durable.State) -> Any:
            storage = ctx.storage
            if write == "delete":
                return await storage.delete("missing")
            if write == "delete-many":
                return await storage.delete(["missing", "other"])
            if write == "put-empty":
                return await storage.put({})
            return storage.kv.delete("missing")

        with pytest.raises(durable.SqlError) as info:
            await run_in_object(stub, body)
        assert info.value.code == "SQLITE_FULL"
        await query(stub, "PRAGMA max_page_count = 1000", unrestricted=True)
        assert await run_in_object(stub, lambda obj, ctx: ctx.storage.kv.delete("missing")) is False
