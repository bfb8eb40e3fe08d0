"""The key-value storage API, call by call, against what workerd does (measured with miniflare 4,
compatibility date 2026-04-07, on SQLite-backed and key-value-backed objects alike)."""

from __future__ import annotations

from typing import Any

import pytest

import durable

from helpers import exactly, inside


class Obj(durable.DurableObject):
    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


@pytest.fixture(params=["sqlite", "kv"])
def stub(request: pytest.FixtureRequest, durable_runtime: durable.Runtime) -> Any:
    """A new object of each backend."""
    return durable_runtime.namespace(Obj, storage=request.param).get_by_name("a")


async def escaped_txn(ctx: durable.State, end: str) -> Any:
    """The ``txn`` of a transaction whose closure kept it, after the closure ended by ``end``:
    returning, calling ``rollback()`` then returning, or raising."""
    kept: list[Any] = []

    async def closure(txn: Any) -> None:
        kept.append(txn)
        if end == "rollback":
            txn.rollback()
        elif end == "raise":
            raise ValueError("closure failed")

    try:
        await ctx.storage.transaction(closure)
    except ValueError:
        pass
    return kept[0]


class TestTxnAfterTheClosure:
    """A txn kept past its closure says how its transaction ended."""

    @pytest.mark.parametrize("op", ["get", "put", "list", "setAlarm"])
    async def test_after_the_closure_raised(self, stub: Any, op: str) -> None:
        """A closure that raised was rolled back: workerd says ``Cannot put() on rolled back
        transaction`` (not "already committed") to the escaped txn."""

        async def body(o: Any, ctx: durable.State) -> Any:
            txn = await escaped_txn(ctx, "raise")
            calls = {
                "get": lambda: txn.get("a"),
                "put": lambda: txn.put("a", 1),
                "list": lambda: txn.list(),
                "setAlarm": lambda: txn.set_alarm(4 * 10**12),
            }
            await calls[op]()

        with exactly(durable.InvalidTransactionError, f"Cannot {op}() on rolled back transaction"):
            await inside(stub, body)

    @pytest.mark.parametrize("end", ["rollback", "raise"])
    async def test_rollback_again(self, stub: Any, end: str) -> None:
        """rollback() on a txn whose transaction ended rolled back does nothing, as in workerd
        (which returns undefined)."""

        async def body(o: Any, ctx: durable.State) -> Any:
            txn = await escaped_txn(ctx, end)
            return txn.rollback()

        assert await inside(stub, body) is None

    async def test_rollback_after_commit(self, stub: Any) -> None:
        """rollback() after a committed closure still raises workerd's "already committed" error."""

        async def body(o: Any, ctx: durable.State) -> Any:
            (await escaped_txn(ctx, "return")).rollback()

        with exactly(
            durable.InvalidTransactionError,
            "Cannot call rollback() on transaction that has already committed: did you move `txn` "
            "outside of the closure?",
        ):
            await inside(stub, body)
