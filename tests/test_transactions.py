"""Explicit transactions: storage.transaction(closure) and its txn handle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable import testing

from helpers import settle


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
            if op == "list":
                await txn.list()
            else:  # put with a value: put("k") alone is workerd's TypeError even here
                await getattr(txn, op)(*(("k", 1) if op == "put" else ("k",)))

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
            await settle(10)
            Obj.log.append("txn end")

        await self.ctx.storage.transaction(body)

    async def note(self, label: str) -> None:
        Obj.log.append(label)

    async def alarm_in_txn(self) -> Any:
        async def body(txn: Any) -> Any:
            await txn.set_alarm(4 * 10**12)
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
        with pytest.raises(
            RuntimeError,
            match=r"^Cannot call get\(\) on transaction that has already committed: did you move `txn` outside of the closure\?$",
        ):
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
        await settle(3)
        await stub.note("other event")
        await txn
        assert Obj.log == ["txn start", "txn end", "other event"]

    async def test_alarm_methods(self, stub: Any) -> None:
        """The alarm can be set and read inside a transaction."""
        assert await stub.alarm_in_txn() == 4 * 10**12

    async def test_sync_closure(self, stub: Any) -> None:
        """A plain (non-async) closure works too."""
        assert await stub.sync_closure() == 6

    async def test_commit_failure_of_transaction(self, stub: Any) -> None:
        """A transaction whose commit fails resets the object and stores nothing."""
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await stub.commit()
        assert await contents(stub._namespace.get(stub.id)) == {}


# -- transactions that overlap other events --------------------------------------------------------


class Peer(durable.DurableObject):
    """Another object, called from inside transactions; ``echo_back`` calls the caller back."""

    async def echo(self, value: int) -> int:
        await asyncio.sleep(0)
        return value

    async def echo_back(self, name: str, value: int, method: str) -> int:
        result: int = await getattr(self.env.RACER.get_by_name(name), method)(value)
        return result


class Racer(durable.DurableObject):
    """Events whose storage calls overlap a transaction at await points."""

    async def bump(self, value: int) -> int:
        await self.ctx.storage.put(f"bump{value}", value)
        return value

    async def peek(self, value: int) -> int:
        await self.ctx.storage.get("a")  # a call back from inside the transaction: it reads now
        return value

    async def gather_two(self, call_back: str) -> Any:
        peer = self.env.PEER.get_by_name("p")
        storage = self.ctx.storage

        def body(key: str, value: int) -> Any:
            async def closure(txn: Any) -> int:
                await txn.put(key, value)
                if call_back:
                    await peer.echo_back(str(self.ctx.id.name), value, call_back)
                else:
                    await peer.echo(value)
                await txn.put(key + "-after", await txn.get(key))
                return value

            return closure

        return await asyncio.gather(storage.transaction(body("a", 1)), storage.transaction(body("b", 2)))

    async def slow_txn(self, key: str, outcome: str, steps: int = 20) -> str:
        async def closure(txn: Any) -> str:
            await txn.put(key, "txn")
            self.in_closure = True  # (read by _during_closure)
            await settle(steps)
            if outcome == "raise":
                raise ValueError("closure failed")
            if outcome == "rollback":
                txn.rollback()
            return outcome

        try:
            return await self.ctx.storage.transaction(closure)
        except ValueError:
            return "raised"

    async def late_txn(self, key: str) -> str:
        await asyncio.sleep(0)  # already inside the object: resumes while another transaction runs
        return await self.slow_txn(key, "commit", 20)

    async def idle_txn(self, steps: int) -> str:
        async def closure(txn: Any) -> str:
            await settle(steps)
            return "idle"

        return await self.ctx.storage.transaction(closure)

    async def late_put(self, key: str, awaited: bool) -> str:
        await asyncio.sleep(0)
        if awaited:
            await self.ctx.storage.put(key, "plain")
        else:
            self.ctx.storage.put(key, "plain")
        return "ok"

    async def _during_closure(self) -> None:
        """Resume once a closure of ``slow_txn`` has written: code of another event that resumes
        before the closure starts runs before it, outside the transaction, as in workerd (whose
        input gate lets what was ready before the call go first); whether a bare ``sleep(0)``
        resumes before or after the closure depends on the Python version's task stepping."""
        while not getattr(self, "in_closure", False):
            await asyncio.sleep(0)

    async def late_get(self, key: str) -> Any:
        await self._during_closure()
        return await self.ctx.storage.get(key)

    async def late_sql(self, during: bool = True) -> str:
        if during:
            await self._during_closure()
        else:
            await asyncio.sleep(0)
        try:
            self.ctx.storage.sql.exec("SELECT 1")
        except durable.InvalidTransactionError as exc:
            return str(exc)
        return "ran"

    async def nested_gather(self) -> Any:
        storage = self.ctx.storage
        order: list[str] = []

        async def first(txn: Any) -> None:
            await txn.put("n1", 1)
            await settle()
            order.append("n1 end")

        async def second(txn: Any) -> None:
            order.append("n2 start")
            await txn.put("n2", 2)
            raise KeyError("n2 fails")

        async def outer(txn: Any) -> None:
            results = await asyncio.gather(
                storage.transaction(first), storage.transaction(second), return_exceptions=True
            )
            order.append(type(results[1]).__name__)

        await storage.transaction(outer)
        return order, await storage.list()

    async def outer_rollback_while_inner_runs(self) -> Any:
        storage = self.ctx.storage

        async def inner(txn: Any) -> None:
            await txn.put("inner", 1)
            await settle()

        async def outer(txn: Any) -> tuple[str, str]:
            await txn.put("outer", 1)
            running = storage.transaction(inner)  # not awaited yet: it starts and runs meanwhile
            await asyncio.sleep(0)
            try:
                txn.rollback()
            except durable.InvalidTransactionError as exc:
                refused = str(exc)
            await running
            txn.rollback()  # now that it ended: undoes its writes too
            return refused, "rolled back"

        result = await storage.transaction(outer)
        return result, await storage.list()

    async def outer_rollback_from_inner(self, catch: bool) -> Any:
        storage = self.ctx.storage

        async def outer(t1: Any) -> str | None:
            await t1.put("outer", 1)

            async def inner(t2: Any) -> None:
                await t2.put("inner", 1)
                t1.rollback()

            try:
                await storage.transaction(inner)
            except durable.InvalidTransactionError as exc:
                if not catch:
                    raise
                return str(exc)
            return None

        result = await storage.transaction(outer)
        return result, await storage.list()

    async def sync_in_txn(self) -> Any:
        async def closure(txn: Any) -> Any:
            await txn.put("synced", 1)
            await self.ctx.storage.sync()
            return await txn.get("synced")

        return await self.ctx.storage.transaction(closure)

    async def inner_not_awaited(self) -> Any:
        storage = self.ctx.storage

        async def inner(txn: Any) -> None:
            await settle(3)
            await txn.put("inner", 1)

        async def outer(txn: Any) -> None:
            storage.transaction(inner)

        await storage.transaction(outer)
        return await storage.list()

    async def abort_in_txn(self) -> None:
        async def closure(txn: Any) -> None:
            await txn.put("x", 1)
            await settle()
            self.ctx.abort("stop")

        await self.ctx.storage.transaction(closure)

    async def depth(self) -> int:
        return self.ctx.storage._db.savepoint_depth


@pytest.fixture(params=["memory-sqlite", "memory-kv", "disk-sqlite"])
async def racer_rt(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    where, backend = request.param.split("-")
    async with durable.Runtime(path=tmp_path / "state" if where == "disk" else None) as rt:
        rt.namespace(Peer, name="PEER")
        yield rt.namespace(Racer, name="RACER", storage=backend)


async def guarded(awaitable: Any) -> Any:
    """Await with a guard, so a wedged object fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, 10)


class TestOverlappingTransactions:
    """Transactions that overlap other events or each other are serialized and isolated."""

    @pytest.mark.parametrize("call_back", ["", "peek", "bump"])
    async def test_gather_of_two_transactions(self, racer_rt: Any, call_back: str) -> None:
        """Two gathered transactions whose closures call another object (that may call back) both commit."""
        stub = racer_rt.get_by_name("r")
        assert await guarded(stub.gather_two(call_back)) == [1, 2]
        assert await guarded(stub.depth()) == 0
        stored = await guarded(contents(stub))
        assert {k: stored[k] for k in ("a", "a-after", "b", "b-after")} == {"a": 1, "a-after": 1, "b": 2, "b-after": 2}
        assert await guarded(stub.bump(7)) == 7  # later calls still run and commit
        await testing.evict(stub)
        assert (await guarded(contents(racer_rt.get_by_name("r"))))["bump7"] == 7

    async def test_second_event_transaction_waits(self, racer_rt: Any) -> None:
        """An event that starts a transaction while another one's closure sleeps waits for it; both commit."""
        stub = racer_rt.get_by_name("r")
        second = asyncio.ensure_future(stub.late_txn("t2"))
        first = asyncio.ensure_future(stub.slow_txn("t1", "commit", 3))  # would end first
        assert await guarded(asyncio.gather(first, second)) == ["commit", "commit"]
        assert await guarded(stub.depth()) == 0
        assert await guarded(stub.bump(1)) == 1
        await testing.evict(stub)
        assert await guarded(contents(racer_rt.get_by_name("r"))) == {"t1": "txn", "t2": "txn", "bump1": 1}

    @pytest.mark.parametrize("outcome", ["raise", "rollback"])
    @pytest.mark.parametrize("awaited", [True, False])
    async def test_rollback_keeps_other_events_writes(self, racer_rt: Any, outcome: str, awaited: bool) -> None:
        """A rollback never undoes puts that other events made (and were acknowledged for) meanwhile."""
        stub = racer_rt.get_by_name("r")
        puts = [asyncio.ensure_future(stub.late_put(f"k{i:03}", awaited)) for i in range(100)]
        txn = asyncio.ensure_future(stub.slow_txn("x", outcome))
        assert await guarded(asyncio.gather(*puts)) == ["ok"] * 100
        assert await guarded(txn) == ("raised" if outcome == "raise" else "rollback")
        await testing.evict(stub)
        stored = await guarded(contents(racer_rt.get_by_name("r")))
        assert stored == {f"k{i:03}": "plain" for i in range(100)}

    @pytest.mark.parametrize("outcome", ["raise", "rollback", "commit"])
    async def test_no_dirty_reads(self, racer_rt: Any, outcome: str) -> None:
        """Other events never read a transaction's writes before it ends."""
        stub = racer_rt.get_by_name("r")
        await stub.bump(0)
        reads = [asyncio.ensure_future(stub.late_get("x")) for _ in range(10)]
        txn = asyncio.ensure_future(stub.slow_txn("x", outcome))
        seen = await guarded(asyncio.gather(*reads))
        await guarded(txn)
        assert seen == ["txn" if outcome == "commit" else None] * 10

    async def test_sync_calls_of_other_events_are_refused(self, durable_runtime: durable.Runtime) -> None:
        """Synchronous SQL from another event during a transaction raises instead of joining it."""
        durable_runtime.namespace(Peer, name="PEER")
        stub = durable_runtime.namespace(Racer, name="RACER").get_by_name("r")
        other = asyncio.ensure_future(stub.late_sql())
        txn = asyncio.ensure_future(stub.slow_txn("x", "rollback"))
        message = await guarded(other)
        assert message.startswith("Cannot call sql.exec() while a transaction() of another event is in progress")
        await guarded(txn)
        assert await guarded(stub.late_sql(False)) == "ran"

    async def test_nested_gather_is_serialized(self, racer_rt: Any) -> None:
        """Nested transactions gathered in one closure run one after the other; a failing one undoes only itself."""
        order, stored = await guarded(racer_rt.get_by_name("r").nested_gather())
        assert order == ["n1 end", "n2 start", "KeyError"]
        assert stored == {"n1": 1}

    async def test_outer_rollback_while_inner_runs(self, racer_rt: Any) -> None:
        """An outer rollback made while an inner transaction runs is refused, as in workerd
        (measured with miniflare); once the inner one ended, it undoes both."""
        stub = racer_rt.get_by_name("r")
        refused = "Cannot roll back an outer transaction while a nested transaction is still running."
        assert await guarded(stub.outer_rollback_while_inner_runs()) == ((refused, "rolled back"), {})
        assert await guarded(stub.depth()) == 0

    async def test_outer_rollback_from_the_inner_closure(self, racer_rt: Any) -> None:
        """workerd's case: ``t1.rollback()`` called inside the nested closure raises there; the
        inner transaction is undone by its error, and the outer one commits if it catches it."""
        stub = racer_rt.get_by_name("r")
        result, stored = await guarded(stub.outer_rollback_from_inner(True))
        assert result == "Cannot roll back an outer transaction while a nested transaction is still running."
        assert stored == {"outer": 1}
        with pytest.raises(durable.InvalidTransactionError, match="nested transaction is still running"):
            await guarded(stub.outer_rollback_from_inner(False))
        assert await guarded(contents(racer_rt.get_by_name("r"))) == {"outer": 1}  # the first call's

    async def test_abort_inside_a_transaction_leaves_no_unretrieved_error(self) -> None:
        """ctx.abort() in a transaction's closure: the caller gets the reset error, and asyncio
        reports no "Task exception was never retrieved" for the transaction's own task."""
        import gc

        class Aborts(durable.DurableObject):
            async def run(self) -> None:
                async def closure(txn: Any) -> None:
                    await txn.put("a", 1)
                    self.ctx.abort("asked to")

                await self.ctx.storage.transaction(closure)

        reported: list[str] = []
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
        try:
            async with durable.Runtime() as rt:
                with pytest.raises(durable.ObjectAbortedError, match="asked to"):
                    await rt.namespace(Aborts).get_by_name("a").run()
                await asyncio.sleep(0.01)
                gc.collect()
                await asyncio.sleep(0)
        finally:
            loop.set_exception_handler(previous)
        assert reported == []

    async def test_sync_inside_a_transaction(self, racer_rt: Any) -> None:
        """``storage.sync()`` in a transaction's closure resolves at once (workerd), after a write too:
        the transaction's writes become durable when it ends. It used to wait for that forever."""
        stub = racer_rt.get_by_name("r")
        assert await asyncio.wait_for(guarded(stub.sync_in_txn()), 10) == 1
        assert await guarded(contents(racer_rt.get_by_name("r"))) == {"synced": 1}

    async def test_outer_waits_for_inner(self, racer_rt: Any) -> None:
        """A transaction ends only after the transactions started inside it, whose writes it keeps."""
        stub = racer_rt.get_by_name("r")
        assert await guarded(stub.inner_not_awaited()) == {"inner": 1}
        assert await guarded(stub.depth()) == 0

    async def test_reset_during_transaction(self, racer_rt: Any) -> None:
        """An abort inside a transaction fails the calls waiting for it; the next instance works."""
        stub = racer_rt.get_by_name("r")
        txn = asyncio.ensure_future(stub.abort_in_txn())
        waiting = asyncio.ensure_future(stub.late_put("k", True))
        with pytest.raises(durable.ObjectResetError, match="stop"):
            await guarded(txn)
        with pytest.raises(Exception) as info:
            await guarded(waiting)
        assert getattr(info.value, "durable_object_reset", False) or isinstance(info.value, durable.DurableError)
        fresh = racer_rt.get_by_name("r")
        assert await guarded(fresh.bump(3)) == 3
        assert await guarded(fresh.depth()) == 0
        assert await guarded(contents(fresh)) == {"bump3": 3}

    async def test_queued_write_holds_the_result(self, racer_rt: Any) -> None:
        """An event's un-awaited put queued behind a transaction holds its result until it is durable."""
        stub = racer_rt.get_by_name("r")
        await stub.bump(0)
        put = asyncio.ensure_future(stub.late_put("k", False))
        txn = asyncio.ensure_future(stub.idle_txn(10))  # writes nothing itself
        await asyncio.sleep(0)
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await guarded(put)  # the commit that would have made its write durable failed
        with pytest.raises(durable.ObjectResetError):
            await guarded(txn)
        assert await guarded(contents(racer_rt.get_by_name("r"))) == {"bump0": 0}

    async def test_other_calls_wait_in_order(self, racer_rt: Any) -> None:
        """Every kind of storage call from outside a running transaction waits for it, in call order."""
        stub = racer_rt.get_by_name("r")

        async def outside(o: Any, ctx: durable.State) -> Any:
            s = ctx.storage
            order: list[str] = []

            async def closure(txn: Any) -> None:
                await txn.put("t", 1)
                await settle()
                order.append("txn end")

            async def other() -> Any:
                await asyncio.sleep(0)  # the transaction runs now
                s.put("a", 1)
                got = await asyncio.gather(
                    s.get("t"), s.get(["a", "t"]), s.list(), s.delete("a"), s.get_alarm(), s.sync()
                )
                order.append("other")
                with pytest.raises(durable.InvalidTransactionError, match="Cannot call deleteAll"):
                    await s.transaction(lambda txn: txn.delete_all())
                return got

            txn = s.transaction(closure)
            got = await other()
            await txn
            return order, got

        order, got = await guarded(testing.run_in_object(stub, outside))
        assert order == ["txn end", "other"]
        assert got == [1, {"a": 1, "t": 1}, {"a": 1, "t": 1}, True, None, None]


class FailsInsideTxn(durable.DurableObject):
    async def txn_raises(self) -> None:
        async def body(txn: Any) -> None:
            await txn.put("t", 1)
            raise ValueError("the closure's own error")

        await self.ctx.storage.transaction(body)

    async def write(self) -> None:
        await self.ctx.storage.put("w", 1)


async def test_a_failed_transaction_of_a_reset_turn_is_not_reported_as_never_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A transaction whose closure raised in a turn whose commit then fails: the event awaiting it
    is dropped with the reset, so nobody reads the task's error, and asyncio logged "Task exception
    was never retrieved" at garbage collection (on Python 3.11 that log, made inside compile(),
    could even turn into a SystemError in an unrelated import)."""
    import gc

    async with durable.Runtime() as rt:
        stub = rt.namespace(FailsInsideTxn).get_by_name("a")
        await stub.write()  # live: the calls below run in one turn
        testing.fail_next_commit(stub)
        results = await asyncio.gather(stub.write(), stub.txn_raises(), return_exceptions=True)
        assert all(isinstance(r, durable.ObjectResetError) for r in results), results
        await settle()
    gc.collect()
    assert "never retrieved" not in caplog.text
