"""Explicit transactions: storage.transaction(closure) and its txn handle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable import testing


class Obj(durable.DurableObject):
    log: list[str] = []

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass

    async def commit(self) -> Any:
        async def body(txn: Any) -> str:
            await txn.put("a", 1)
            self.ctx.storage.put("b", 2)  # straight on storage: part of the transaction too
            return "done"

        return await self.ctx.storage.transaction(body)

    async def fail(self) -> None:
        async def body(txn: Any) -> None:
            await txn.put("a", "lost")
            raise ValueError("closure failed")

        await self.ctx.storage.transaction(body)

    async def roll_back(self) -> Any:
        async def body(txn: Any) -> str:
            await txn.put("a", "lost")
            txn.rollback()
            txn.rollback()  # more than once is fine
            return "value kept"

        return await self.ctx.storage.transaction(body)

    async def after_rollback(self, op: str) -> None:
        async def body(txn: Any) -> None:
            txn.rollback()
            await getattr(txn, op)("k") if op != "list" else await txn.list()

        await self.ctx.storage.transaction(body)

    async def escape(self) -> None:
        kept: list[Any] = []

        async def body(txn: Any) -> None:
            kept.append(txn)

        await self.ctx.storage.transaction(body)
        await kept[0].get("k")

    async def nested(self) -> Any:
        async def inner(txn: Any) -> None:
            await txn.put("inner", 1)

        async def outer(txn: Any) -> None:
            await txn.put("outer", 1)
            await self.ctx.storage.transaction(inner)
            txn.rollback()

        await self.ctx.storage.transaction(outer)
        return await self.ctx.storage.list()

    async def nested_inner_fails(self) -> Any:
        async def inner(txn: Any) -> None:
            await txn.put("inner", 1)
            raise KeyError("inner")

        async def outer(txn: Any) -> None:
            await txn.put("outer", 1)
            with pytest.raises(KeyError):
                await self.ctx.storage.transaction(inner)

        await self.ctx.storage.transaction(outer)
        return await self.ctx.storage.list()

    async def delete_all_inside(self, via_txn: bool) -> None:
        async def body(txn: Any) -> None:
            if via_txn:
                await txn.delete_all()
            else:
                await self.ctx.storage.delete_all()

        await self.ctx.storage.transaction(body)

    async def slow_transaction(self) -> None:
        async def body(txn: Any) -> None:
            Obj.log.append("txn start")
            for _ in range(10):
                await asyncio.sleep(0)
            Obj.log.append("txn end")

        await self.ctx.storage.transaction(body)

    async def note(self, label: str) -> None:
        Obj.log.append(label)

    async def alarm_in_txn(self) -> Any:
        async def body(txn: Any) -> Any:
            await txn.set_alarm(10**13)
            return await txn.get_alarm()

        return await self.ctx.storage.transaction(body)

    async def sync_closure(self) -> Any:
        async def body(txn: Any) -> int:
            return 5

        return await self.ctx.storage.transaction(lambda txn: 6)


@pytest.fixture(params=["sqlite", "kv"])
async def stub(request: pytest.FixtureRequest) -> Any:
    Obj.log = []
    async with durable.Runtime() as rt:
        yield rt.namespace(Obj, storage=request.param).get_by_name("t")


async def contents(stub: Any) -> Any:
    return await testing.run_in_object(stub, lambda o, c: c.storage.list())


class TestTransactions:
    async def test_commit(self, stub: Any) -> None:
        """A closure's writes, through txn or straight on storage, are stored; its value is returned."""
        assert await stub.commit() == "done"
        assert await contents(stub) == {"a": 1, "b": 2}

    async def test_exception_rolls_back_without_reset(self, stub: Any) -> None:
        """A closure that raises rolls back; the error propagates and the object is not reset."""
        with pytest.raises(ValueError, match="closure failed") as info:
            await stub.fail()
        assert not getattr(info.value, "durable_object_reset", False)
        assert await contents(stub) == {}
        assert await stub.commit() == "done"

    async def test_rollback_keeps_return_value(self, stub: Any) -> None:
        """txn.rollback() discards the writes and the closure's value is still returned."""
        assert await stub.roll_back() == "value kept"
        assert await contents(stub) == {}

    @pytest.mark.parametrize("op", ["get", "put", "delete", "list"])
    async def test_use_after_rollback(self, stub: Any, op: str) -> None:
        """After rollback() every other txn operation raises Cloudflare's error."""
        with pytest.raises(durable.InvalidTransactionError, match=rf"^Cannot {op}\(\) on rolled back transaction$"):
            await stub.after_rollback(op)

    async def test_use_after_commit(self, stub: Any) -> None:
        """Using txn after the closure returned raises Cloudflare's error."""
        with pytest.raises(RuntimeError, match=r"^Cannot call get\(\) on transaction that has already committed: did you move `txn` outside of the closure\?$"):
            await stub.escape()

    async def test_inner_commit_then_outer_rollback(self, stub: Any) -> None:
        """Nested transactions are savepoints: an outer rollback undoes a committed inner one."""
        assert await stub.nested() == {}

    async def test_inner_failure_rolls_back_only_inner(self, stub: Any) -> None:
        """An inner transaction that raises undoes only its own writes."""
        assert await stub.nested_inner_fails() == {"outer": 1}

    @pytest.mark.parametrize("via_txn", [True, False])
    async def test_delete_all_inside(self, stub: Any, via_txn: bool) -> None:
        """deleteAll() inside a transaction raises Cloudflare's error."""
        with pytest.raises(RuntimeError, match=r"^Cannot call deleteAll\(\) within a transaction$"):
            await stub.delete_all_inside(via_txn)

    async def test_holds_the_input_gate(self, stub: Any) -> None:
        """No other event is delivered while a transaction's closure runs, even across awaits."""
        txn = asyncio.ensure_future(stub.slow_transaction())
        for _ in range(3):
            await asyncio.sleep(0)
        await stub.note("other event")
        await txn
        assert Obj.log == ["txn start", "txn end", "other event"]

    async def test_alarm_methods(self, stub: Any) -> None:
        """The alarm can be set and read inside a transaction."""
        assert await stub.alarm_in_txn() == 10**13

    async def test_sync_closure(self, stub: Any) -> None:
        """A plain (non-async) closure works too."""
        assert await stub.sync_closure() == 6

    async def test_commit_failure_of_transaction(self, stub: Any) -> None:
        """A transaction whose commit fails resets the object and stores nothing."""
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await stub.commit()
        assert await contents(stub._namespace.get(stub.id)) == {}
