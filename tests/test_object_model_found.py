"""Regression tests for what the object model test (tests/test_object_model.py) found.

Each is a plain example, measured against workerd (miniflare 4, compatibility date 2026-04-07,
three runs alike) where the behaviour is workerd's.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import durable


class Waker(durable.DurableObject):
    """Two events: ``a`` waits for outside I/O then runs a transaction; ``b`` runs one at once."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.log: list[str] = []

    async def a(self, wait_for: str) -> None:
        storage = self.ctx.storage
        self.log.append("a start")
        if wait_for == "bookmark":
            await storage.get_current_bookmark()
        else:
            await storage.sync()
        self.log.append("a resumes")

        async def closure(txn: durable.Transaction) -> None:
            self.log.append("a closure")
            await txn.put("a", 1)

        await storage.transaction(closure)
        self.log.append("a after txn")

    async def b(self, read: str) -> None:
        storage = self.ctx.storage
        self.log.append("b start")

        async def closure(txn: durable.Transaction) -> None:
            self.log.append("b closure")

        await storage.transaction(closure)
        self.log.append("b after txn")
        value = storage.kv.get("a") if read == "kv" else await storage.get("a")
        self.log.append(f"b reads {value!r}")

    async def history(self) -> list[str]:
        return self.log

    async def ping(self) -> str:
        await asyncio.sleep(0.02)
        return "pong"

    async def a_after_timer(self) -> None:
        """``a`` resumes from a timer, which durable does not hold at a closed gate (see
        docs/differences.md), while ``b``'s transaction runs; its transaction raises."""
        storage = self.ctx.storage
        self.log.append("a start")
        await asyncio.sleep(0.001)
        self.log.append("a resumes")

        async def closure(txn: durable.Transaction) -> None:
            self.log.append("a closure")
            await txn.put("a", 1)
            raise ValueError("boom")

        with contextlib.suppress(ValueError):
            await storage.transaction(closure)
        self.log.append("a caught")

    async def b_writes_after(self, read: str) -> None:
        storage = self.ctx.storage
        self.log.append("b start")

        async def closure(txn: durable.Transaction) -> None:
            self.log.append("b closure")
            await self.env.WAKER.get_by_name("other").ping()

        await storage.transaction(closure)
        self.log.append("b after txn")
        if read == "kv":
            storage.kv.put("b", 2)
            value = storage.kv.get("a")
        else:
            storage.put("b", 2)
            value = await storage.get("a")
        self.log.append(f"b reads {value!r}")

    async def contents(self) -> dict[str, Any]:
        return await self.ctx.storage.list()


class TestOutsideIoWaitsForTheCodeWokenByATransaction:
    @pytest.mark.parametrize(
        ("wait_for", "backend", "read"),
        [("sync", "sqlite", "kv"), ("bookmark", "sqlite", "kv"), ("sync", "kv", "get")],
        ids=["sync-sqlite", "bookmark-sqlite", "sync-kv-backend"],
    )
    async def test_the_caller_of_the_transaction_goes_on_first(self, wait_for: str, backend: str, read: str) -> None:
        """Event ``a`` awaits ``sync()`` (or ``get_current_bookmark()``) while event ``b``'s
        transaction runs. When that transaction ends, ``b``'s code goes on up to its next
        suspension before ``a`` resumes: workerd's log is a start, b start, b closure, b after
        txn, b reads undefined, a resumes, a closure, a after txn (miniflare 4, 2026-04-07, both
        backends, sync() and getCurrentBookmark() alike).

        Before the fix ``a`` resumed in the turn the transaction ended (the completion checked
        only the gate's locks, not the turn in which the last lock ended), started its own
        transaction, and ``b``'s ``storage.kv.get()`` then raised ``InvalidTransactionError``
        ("while a transaction() of another event is in progress").
        """
        async with durable.Runtime(point_in_time_recovery=wait_for == "bookmark") as rt:
            stub = rt.namespace(Waker, storage=backend).get_by_name("x")
            await asyncio.gather(stub.a(wait_for), stub.b(read))
            assert await stub.history() == [
                "a start",
                "b start",
                "b closure",
                "b after txn",
                "b reads None",
                "a resumes",
                "a closure",
                "a after txn",
            ]

    @pytest.mark.parametrize(
        ("backend", "read"), [("sqlite", "kv"), ("sqlite", "get"), ("kv", "get")], ids=["kv-api", "get", "kv-backend"]
    )
    async def test_the_caller_goes_on_before_a_transaction_that_waited(self, backend: str, read: str) -> None:
        """Event ``a`` resumes (from a timer) while event ``b``'s transaction runs and calls
        ``transaction()``, which waits for ``b``'s. When ``b``'s ends, ``b``'s next lines run
        before ``a``'s closure starts, outside ``a``'s transaction: workerd (miniflare 4,
        2026-04-07, both backends, three runs alike; there ``b``'s closure awaits a call to
        another object) logs b after txn, b reads undefined, then a closure, and keeps ``b``'s
        write when ``a``'s transaction raises: {"b": 2}.

        Before the fix ``b``'s ``storage.kv`` calls raised ``InvalidTransactionError``, and its
        ``await storage.get("a")`` waited for ``a``'s transaction to end. (That ``a`` resumes
        during ``b``'s transaction at all is the documented difference on timers.)
        """
        async with durable.Runtime() as rt:
            ns = rt.namespace(Waker, name="WAKER", storage=backend)
            stub = ns.get_by_name("x")
            await asyncio.gather(stub.a_after_timer(), stub.b_writes_after(read))
            log = [line for line in await stub.history() if line != "a resumes"]
            assert log == ["a start", "b start", "b closure", "b after txn", "b reads None", "a closure", "a caught"]
            assert await stub.contents() == {"b": 2}


class SyncAfterTransaction(durable.DurableObject):
    """``sync()`` awaited by code whose storage calls go first: the caller of a transaction whose
    closure has not started, or the caller woken by the end of the one that transaction waited for."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.log: list[str] = []

    async def calls_then_syncs(self, nested: bool) -> list[str]:
        storage, log = self.ctx.storage, []

        async def closure(txn: durable.Transaction) -> None:
            log.append("closure")
            await txn.put("k", 1)
            log.append("closure end")

        async def body() -> None:
            pending = storage.transaction(closure)
            log.append("called")
            await storage.sync()
            log.append("after sync")
            await pending
            log.append("after txn")

        async def outer(txn: durable.Transaction) -> None:
            await body()

        await (storage.transaction(outer) if nested else body())
        return log


class WokenSyncs(Waker):
    async def b_syncs_after(self) -> None:
        storage = self.ctx.storage
        self.log.append("b start")

        async def closure(txn: durable.Transaction) -> None:
            self.log.append("b closure")
            await self.env.WAKER.get_by_name("other").ping()

        await storage.transaction(closure)
        self.log.append("b after txn")
        await storage.sync()
        self.log.append("b after sync")


class TestSyncOfCodeThatGoesFirst:
    """Review of fuzz-model (review-round4): code whose calls run before a pending transaction's
    closure (``_caller_goes_first``) took its ``sync()`` for the running transaction's own, which
    completes at once. workerd resolves it after that closure ends."""

    @pytest.mark.parametrize("backend", ["sqlite", "kv"])
    @pytest.mark.parametrize("nested", [False, True], ids=["top-level", "nested"])
    async def test_the_caller_of_a_pending_transaction_syncs_after_its_closure(
        self, backend: str, nested: bool
    ) -> None:
        """``p = storage.transaction(f); await storage.sync(); await p``: workerd logs called,
        closure, closure end, after sync, after txn, at the top level and inside a transaction,
        on both backends (miniflare 4, 2026-04-07). durable resolved the sync() at once, before
        the closure ran (it took the caller for the transaction's own code)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(SyncAfterTransaction, storage=backend).get_by_name("x")
            log = await asyncio.wait_for(stub.calls_then_syncs(nested), 10)
            assert log == ["called", "closure", "closure end", "after sync", "after txn"]

    @pytest.mark.parametrize("backend", ["sqlite", "kv"])
    async def test_the_woken_caller_syncs_after_the_transaction_that_waited(self, backend: str) -> None:
        """As test_the_caller_goes_on_before_a_transaction_that_waited, ``b`` then awaits
        ``sync()``: workerd logs a closure, a caught, then b after sync (miniflare 4,
        2026-04-07, both backends). Since fuzz-model's "woken caller goes first" rule, durable
        resolved it at once, before ``a``'s closure (before that rule, it matched workerd)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(WokenSyncs, name="WAKER", storage=backend).get_by_name("x")
            await asyncio.wait_for(asyncio.gather(stub.a_after_timer(), stub.b_syncs_after()), 10)
            log = [line for line in await stub.history() if line != "a resumes"]
            assert log == ["a start", "b start", "b closure", "b after txn", "a closure", "a caught", "b after sync"]
