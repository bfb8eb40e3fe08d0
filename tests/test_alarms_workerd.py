"""Alarm behaviour measured against workerd's (miniflare 4, compatibility date 2026-04-07): what once
differed, and scenarios measured alike (``TestMeasuredScenarios``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable._host import ObjectHost
from durable.testing import MockClock, evict

from helpers import eager_tasks, needs_eager_tasks, settle, wait_until

T0 = 1_700_000_000
T0_MS = T0 * 1000


class Alarmed(durable.DurableObject):
    async def arm(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime(clock=MockClock(T0)) as runtime:
        yield runtime


class TestSetAlarmArguments:
    @pytest.mark.parametrize("when", ["12345678901234", "soon", None, True, False, b"1", [T0_MS], {}])
    async def test_not_a_number_or_date_has_workerds_message(self, rt: durable.Runtime, when: Any) -> None:
        """Neither a number nor a date: workerd raises TypeError: Failed to execute 'setAlarm' on
        'DurableObjectStorage': parameter 1 is not of type 'date'. (for a string, null, a boolean,
        an object), and nothing is set."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        message = r"^Failed to execute 'setAlarm' on 'DurableObjectStorage': parameter 1 is not of type 'date'\.$"
        with pytest.raises(TypeError, match=message):
            await stub.arm(when)
        assert await stub.get() is None


Seen = list[Any]


class InTransactions(durable.DurableObject):
    """Its alarm() handler runs the scenario named by its object's name, recording what it sees."""

    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now_ms() + 200)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        seen: Seen = self.env.seen
        seen.append("alarm")
        if len(seen) > 10:  # a scenario that makes the alarm run again and again
            await self.ctx.storage.delete_alarm()
            return
        storage = self.ctx.storage
        later = self.ctx.now_ms() + 100_000
        name = self.ctx.id.name

        async def visible(txn: Any) -> Any:
            alarm = await txn.get_alarm()
            return alarm if alarm is None else alarm == later

        if name == "rollback":

            async def set_and_roll_back(txn: durable.Transaction) -> None:
                await txn.set_alarm(later)
                seen.append(await visible(txn))
                txn.rollback()

            await storage.transaction(set_and_roll_back)
        elif name == "raise":

            async def set_and_raise(txn: durable.Transaction) -> None:
                await txn.set_alarm(later)
                raise ValueError("undo")

            with pytest.raises(ValueError):
                await storage.transaction(set_and_raise)
        elif name == "nested":

            async def outer(txn: durable.Transaction) -> None:
                async def inner(txn2: durable.Transaction) -> None:
                    await txn2.set_alarm(later)
                    seen.append(await visible(txn2))

                await storage.transaction(inner)
                seen.append(await visible(txn))
                if self.env.roll_back_outer:
                    txn.rollback()

            await storage.transaction(outer)
        elif name == "inner-rollback":

            async def outer2(txn: durable.Transaction) -> None:
                seen.append(await visible(txn))

                async def inner(txn2: durable.Transaction) -> None:
                    await txn2.set_alarm(later)
                    seen.append(await visible(txn2))
                    txn2.rollback()

                await storage.transaction(inner)
                seen.append(await visible(txn))

            await storage.transaction(outer2)
        elif name == "sync":

            def set_and_fail() -> None:
                storage.set_alarm(later)
                raise ValueError("undo")

            with pytest.raises(ValueError):
                storage.transaction_sync(set_and_fail)
        seen.append(await visible(storage))
        if seen[-1] is True:
            await storage.delete_alarm()  # a committed alarm: visible, so the handler ends clean


@pytest.fixture(params=["sqlite", "kv"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def run_scenario(name: str, backend: str, *, roll_back_outer: bool = False) -> tuple[Seen, int | None]:
    """Arm the object's alarm, let it run (and run again if it stays set), return what it saw."""
    clock = MockClock(T0)
    seen: Seen = []
    async with durable.Runtime(clock=clock, vars={"seen": seen, "roll_back_outer": roll_back_outer}) as rt:
        stub = rt.namespace(InTransactions, storage=backend).get_by_name(name)
        await stub.arm()
        await clock.advance(60)
        return seen, await stub.get()


class TestAlarmWrittenInsideATransactionOfTheHandler:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike) counts an alarm set inside a
    transaction() of the alarm handler once that transaction commits, and not at all if it rolls
    back; durable kept the handler's "I set a new alarm" mark after a rollback, so get_alarm()
    read the alarm that was running and the alarm ran again and again."""

    async def test_rolled_back(self, backend: str) -> None:
        """workerd: inside the transaction getAlarm() reads the new time; after rollback() null, once."""
        assert await run_scenario("rollback", backend) == (["alarm", True, None], None)

    async def test_transaction_that_raises(self, backend: str) -> None:
        """workerd: a transaction() whose closure throws undoes its setAlarm: getAlarm() is null, once."""
        assert await run_scenario("raise", backend) == (["alarm", None], None)

    async def test_nested_commits(self, backend: str) -> None:
        """workerd: an alarm set in a nested transaction is seen by the outer one and, once committed, after it."""
        assert await run_scenario("nested", backend) == (["alarm", True, True, True], None)

    async def test_outer_rollback_undoes_the_nested_one(self, backend: str) -> None:
        """workerd: the outer transaction's rollback() undoes what its committed nested one set."""
        assert await run_scenario("nested", backend, roll_back_outer=True) == (["alarm", True, True, None], None)

    async def test_inner_rollback(self, backend: str) -> None:
        """workerd: the outer transaction reads null before and after a nested one set the alarm and rolled back."""
        assert await run_scenario("inner-rollback", backend) == (["alarm", None, True, None, None], None)

    async def test_transaction_sync_that_raises(self, backend: str) -> None:
        """A transaction_sync() that raises undoes its set_alarm: the handler then reads None and ends once.

        (workerd's transactionSync keeps its "new alarm" mark after the rollback, so getAlarm() reads
        the running alarm's time and the alarm stays stored: docs/differences.md.)
        """
        assert await run_scenario("sync", backend) == (["alarm", None], None)


class FailingAlarm(durable.DurableObject):
    """Its alarm fails every time; records (seconds after T0, retry_count) of each attempt."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def set_and_roll_back(self) -> None:
        async def body(txn: durable.Transaction) -> None:
            await txn.set_alarm(self.ctx.now_ms() + 100_000)
            txn.rollback()

        await self.ctx.storage.transaction(body)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.attempts.append(((self.ctx.now_ms() - T0_MS) / 1000, info.retry_count))
        raise RuntimeError("fails")


class TestRetriesAndUnchangedAlarms:
    async def test_rolled_back_alarm_write_keeps_the_retry(self) -> None:
        """workerd: a transaction() that sets the alarm and rolls back, between two retries, changes
        nothing (attempts at 0.3 s, 2.5 s, 6.7 s with retry counts 0, 1, 2); durable ran the alarm
        again at once as a first attempt."""
        clock = MockClock(T0)
        attempts: list[tuple[float, int]] = []
        async with durable.Runtime(clock=clock, vars={"attempts": attempts}) as rt:
            stub = rt.namespace(FailingAlarm).get_by_name("a")
            await stub.arm(T0_MS + 1000)
            await clock.advance(1.5)
            await stub.set_and_roll_back()
            await clock.advance(20)
        assert attempts == [(1.0, 0), (3.0, 1), (7.0, 2), (15.0, 3)]


class FailingAfterRolledBackWrite(durable.DurableObject):
    """Its alarm() handler writes the alarm in a transaction that is undone (the scenario named by
    its object's name), then fails on its first two attempts; records (seconds after T0, retry_count)."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        attempts: list[tuple[float, int]] = self.env.attempts
        attempts.append(((self.ctx.now_ms() - T0_MS) / 1000, info.retry_count))
        if len(attempts) > 10:  # the alarm ran again and again
            return
        storage = self.ctx.storage
        name = self.ctx.id.name
        if name == "delete-and-raise":

            async def delete_and_raise(txn: durable.Transaction) -> None:
                await txn.delete_alarm()
                raise ValueError("undo")

            with pytest.raises(ValueError):
                await storage.transaction(delete_and_raise)
        elif name == "set-and-roll-back":

            async def set_and_roll_back(txn: durable.Transaction) -> None:
                await txn.set_alarm(self.ctx.now_ms() + 100_000)
                txn.rollback()

            await storage.transaction(set_and_roll_back)
        elif name == "nested-then-roll-back":

            async def outer(txn: durable.Transaction) -> None:
                async def inner(txn2: durable.Transaction) -> None:
                    await txn2.delete_alarm()

                await storage.transaction(inner)
                txn.rollback()

            await storage.transaction(outer)
        if info.retry_count < 2:
            raise RuntimeError("fails")


class TestFailingHandlerWithARolledBackAlarmWrite:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike): an alarm() handler whose
    transaction() sets or deletes the alarm and is rolled back, and which then throws, is retried
    as usual (attempts at 0 s, ~2 s, ~6.5 s with retryCount 0, 1, 2). durable announced the
    rolled-back write to the scheduler as a new alarm, so the failed attempt was not retried but
    ran again at once as a first attempt, again and again."""

    @pytest.mark.parametrize("scenario", ["delete-and-raise", "set-and-roll-back", "nested-then-roll-back"])
    async def test_retried_as_usual(self, backend: str, scenario: str) -> None:
        clock = MockClock(T0)
        attempts: list[tuple[float, int]] = []
        async with durable.Runtime(clock=clock, vars={"attempts": attempts}) as rt:
            stub = rt.namespace(FailingAfterRolledBackWrite, storage=backend).get_by_name(scenario)
            await stub.arm(T0_MS + 1000)
            await clock.advance(20)
            assert attempts == [(1.0, 0), (3.0, 1), (7.0, 2)]
            assert await stub.get() is None


class FailsFirst(durable.DurableObject):
    """Its alarm fails on its first ``env.fails`` attempts; records (seconds after T0, retry_count,
    seconds of scheduled_time after T0) of each attempt."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        attempts: list[tuple[float, int, float]] = self.env.attempts
        attempts.append(((self.ctx.now_ms() - T0_MS) / 1000, info.retry_count, (info.scheduled_time - T0_MS) / 1000))
        if len(attempts) <= self.env.fails:
            raise RuntimeError("fails")


class TestSetAlarmWhileARetryIsPending:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike): an alarm fails at 0 s; at
    0.5 s a call sets the alarm again while the retry (due at ~2 s) is pending. Set to a time
    due by the retry's (1 s, or a past time, clamped to now), nothing runs then: the retry runs
    at ~2 s as usual, with retryCount 1 and the old scheduledTime, and its success clears the
    alarm; if that retry fails too, the new alarm runs at once as a first attempt (retryCount 0,
    its own scheduledTime). Set to a time after the retry's (4 s), the retry does not run and the
    new alarm runs at 4 s with retryCount 0. durable ran the new alarm at its own time, as a
    first attempt, in every case."""

    async def run(self, backend: str, when: float, fails: int) -> tuple[list[tuple[float, int, float]], Any, Any]:
        clock = MockClock(T0)
        attempts: list[tuple[float, int, float]] = []
        async with durable.Runtime(clock=clock, vars={"attempts": attempts, "fails": fails}) as rt:
            stub = rt.namespace(FailsFirst, storage=backend).get_by_name("a")
            await stub.arm(T0_MS)
            await clock.advance(0.5)
            await stub.arm(T0_MS + int(when * 1000))
            pending = await stub.get()
            await clock.advance(20)
            return attempts, pending, await stub.get()

    @pytest.mark.parametrize("when", [1.0, 0.1, 2.0])
    async def test_by_the_retry_the_retry_runs(self, backend: str, when: float) -> None:
        attempts, pending, after = await self.run(backend, when, fails=1)
        assert pending == T0_MS + max(int(when * 1000), 500)  # a past time is clamped to now
        assert attempts == [(0.0, 0, 0.0), (2.0, 1, 0.0)]
        assert after is None

    @pytest.mark.parametrize("when", [1.0, 0.1])
    async def test_then_a_failed_retry_runs_the_new_alarm_at_once(self, backend: str, when: float) -> None:
        attempts, _, after = await self.run(backend, when, fails=2)
        new = max(when, 0.5)
        assert attempts == [(0.0, 0, 0.0), (2.0, 1, 0.0), (2.0, 0, new)]
        assert after is None

    async def test_after_the_retry_the_new_alarm_runs_at_its_time(self, backend: str) -> None:
        attempts, _, after = await self.run(backend, 4.0, fails=2)
        assert attempts == [(0.0, 0, 0.0), (4.0, 0, 4.0), (6.0, 1, 4.0)]
        assert after is None

    async def test_a_new_alarm_not_yet_due_when_the_retry_fires_is_not_lost(
        self, backend: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Set to the retry's own time, the new alarm is run by the retry; if the retry's timer
        fires a little early (the clock reads 1 ms before that time), the retry skips it, and the
        new alarm must still run at its time instead of being dropped."""
        clock = MockClock(T0)
        attempts: list[tuple[float, int, float]] = []
        async with durable.Runtime(clock=clock, vars={"attempts": attempts, "fails": 1}) as rt:
            stub = rt.namespace(FailsFirst, storage=backend).get_by_name("a")
            await stub.arm(T0_MS)
            await clock.advance(0.5)
            await stub.arm(T0_MS + 2000)  # exactly when the retry is due
            real_now_ms = ObjectHost.now_ms
            monkeypatch.setattr(ObjectHost, "now_ms", lambda host: real_now_ms(host) - 1)  # an early timer
            await clock.advance(1.5)
            monkeypatch.setattr(ObjectHost, "now_ms", real_now_ms)
            await clock.advance(1)
            # The new alarm ran as a first attempt, at its time (1.999 on the clock read 1 ms early).
            assert [(retry, scheduled) for _, retry, scheduled in attempts] == [(0, 0.0), (0, 2.0)]
            assert await stub.get() is None


class MovedWhileDue(durable.DurableObject):
    """Its alarm falls due while a block_concurrency_while() holds the object; inside, the alarm
    is set again, to ``env.flags["to"]`` ms. Records (retry_count, scheduled_time) of each attempt."""

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def hold(self) -> None:
        async def closed() -> None:
            self.env.flags["holding"].set()
            await self.env.flags["release"].wait()
            await self.ctx.storage.set_alarm(self.env.flags["to"])

        await self.ctx.block_concurrency_while(closed)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.attempts.append((info.retry_count, info.scheduled_time))


class TestAlarmMovedToAPastTimeWhileItsHandlerWaits:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike): an alarm due at 100 ms falls
    due while a block_concurrency_while() holds the object (till ~400 ms), which sets the alarm
    to a past time (clamped to now): the handler then runs once, for the old alarm (scheduledTime
    100 ms, retryCount 0), and clears the new one (workerd's "SQLite alarm overdue, running
    despite AlarmManager mismatch"). Moved to a later time, the handler runs at that time with
    it. durable cancelled the waiting handler and ran the new alarm, with its own scheduled time.
    (A real clock: a MockClock does not move while an alarm's handler waits.)"""

    @pytest.mark.parametrize("later", [False, True])
    async def test_moved_while_waiting(self, backend: str, later: bool) -> None:
        # The scenario needs the hold to begin before the alarm falls due: on a loaded machine
        # arm() and hold() may take longer than the margin, and the run is tried again with more.
        for margin_ms in (100, 1_000, 10_000):
            if await self._moved_while_waiting(backend, later, margin_ms):
                return
        pytest.fail("the hold never began before the alarm fell due, even 10 s ahead")

    async def _moved_while_waiting(self, backend: str, later: bool, margin_ms: int) -> bool:
        attempts: list[tuple[int, int]] = []
        flags: dict[str, Any] = {"release": asyncio.Event(), "holding": asyncio.Event()}
        async with durable.Runtime(vars={"attempts": attempts, "flags": flags}) as rt:
            stub = rt.namespace(MovedWhileDue, storage=backend).get_by_name("a")
            due = rt.clock.time_ms() + margin_ms
            flags["to"] = 1_000_000_000_000  # a past time, clamped to now
            await stub.arm(due)
            held = asyncio.ensure_future(stub.hold())
            await flags["holding"].wait()
            if rt.clock.time_ms() >= due:  # too late: the alarm may have run before the hold
                flags["release"].set()
                await held
                return False
            while rt.clock.time_ms() <= due:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the alarm fell due; its handler waits for the gate
            if later:
                flags["to"] = rt.clock.time_ms() + 150  # set at the release, so still ahead then
            flags["release"].set()
            await held
            await wait_until(lambda: bool(attempts), what="an alarm attempt")
            await asyncio.sleep(0.1)
            assert attempts == [(0, flags["to"] if later else due)]
            assert await stub.get() is None
        return True


class Scenario(durable.DurableObject):
    """Its alarm() handler runs the scenario named by its object's name on the first attempt (and
    fails, for names ending in "-fail"), then succeeds; records (seconds after T0, retry_count,
    seconds of scheduled_time after T0) of each attempt in ``env.attempts``."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        if env.flags.pop("woken", False):  # the constructor run by the alarm, after evict()
            ctx.block_concurrency_while(self.construct)

    async def construct(self) -> None:
        storage = self.ctx.storage
        self.env.seen.append(("constructor", await self.get()))
        if self.ctx.id.name == "constructor-deletes":
            await storage.delete_alarm()
        elif self.ctx.id.name == "constructor-moves":
            await storage.set_alarm(T0_MS + 2500)

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> float | None:
        alarm = await self.ctx.storage.get_alarm()
        return None if alarm is None else (alarm - T0_MS) / 1000

    async def keys(self) -> list[str]:
        return list(await self.ctx.storage.list())

    async def meanwhile(self) -> None:
        """A call made while the handler runs (it waits for ``env.flags["go"]``)."""
        storage, name = self.ctx.storage, self.ctx.id.name or ""
        if name.startswith("call-deletes-all"):
            await storage.delete_all()
        elif name.startswith("call-deletes"):
            await storage.delete_alarm()
        elif name.startswith("call-sets"):
            await storage.set_alarm(T0_MS + 3000)
        elif name.startswith("call-aborts"):
            self.ctx.abort("meanwhile")

    async def alarm(self, info: durable.AlarmInfo) -> None:
        attempts: list[tuple[float, int, float]] = self.env.attempts
        attempts.append(((self.ctx.now_ms() - T0_MS) / 1000, info.retry_count, (info.scheduled_time - T0_MS) / 1000))
        if len(attempts) > 1:
            return
        storage, name = self.ctx.storage, self.ctx.id.name or ""
        if name.startswith("writes"):
            await storage.put("awaited", 1)
            storage.put("not-awaited", 1)
        elif name == "deletes-all-fail":
            await storage.delete_all()
        elif name.startswith("call-"):
            self.env.flags["running"].set()
            await self.env.flags["go"].wait()
            self.env.seen.append(("after the call", await self.get()))
        elif name == "sets-deletes-sets":
            await storage.set_alarm(T0_MS + 100_000)
            self.env.seen.append(await self.get())
            await storage.delete_alarm()
            self.env.seen.append(await self.get())
            await storage.set_alarm(T0_MS + 200_000)
            self.env.seen.append(await self.get())
        if name.endswith("-fail"):
            raise RuntimeError("fails")


class TestMeasuredScenarios:
    """Alarm scenarios measured with workerd (miniflare 4, compatibility date 2026-04-07, SQLite- and
    KV-backed alike), each alarm set 300 ms ahead. durable already behaved so; these keep it."""

    async def run(
        self, backend: str, name: str, *, woken: bool = False
    ) -> tuple[list[tuple[float, int, float]], Seen, float | None, list[str]]:
        clock = MockClock(T0)
        attempts: list[tuple[float, int, float]] = []
        seen: Seen = []
        flags: dict[str, Any] = {"running": asyncio.Event(), "go": asyncio.Event()}
        env = {"attempts": attempts, "seen": seen, "flags": flags}
        async with durable.Runtime(clock=clock, vars=env) as rt:
            stub = rt.namespace(Scenario, storage=backend).get_by_name(name)
            await stub.arm(T0_MS + 300)
            if woken:
                await evict(stub)
                flags["woken"] = True
            advancing = asyncio.ensure_future(clock.advance(0.3))
            if name.startswith("call-"):
                await flags["running"].wait()
                try:
                    await stub.meanwhile()
                except durable.ObjectAbortedError:
                    stub = rt.namespace(Scenario, storage=backend).get_by_name(name)
                flags["go"].set()
            await advancing
            await clock.advance(1)
            seen.append(("at 1.3 s", await stub.get()))
            await clock.advance(300)
            return attempts, seen, await stub.get(), await stub.keys()

    async def test_writes_of_a_failed_attempt_are_kept(self, backend: str) -> None:
        """workerd: the puts of an attempt that throws (awaited or not) are stored; it is retried."""
        attempts, _, after, keys = await self.run(backend, "writes-fail")
        assert attempts == [(0.3, 0, 0.3), (2.3, 1, 0.3)]
        assert (after, keys) == (None, ["awaited", "not-awaited"])

    async def test_delete_all_in_a_failing_handler_prevents_the_retry(self, backend: str) -> None:
        """workerd: deleteAll() deletes the running alarm's retry too: one attempt, no alarm after."""
        attempts, _, after, _ = await self.run(backend, "deletes-all-fail")
        assert attempts == [(0.3, 0, 0.3)]
        assert after is None

    async def test_set_delete_set_in_the_handler(self, backend: str) -> None:
        """workerd: getAlarm() in the handler reads each new time, null after deleteAlarm(); the last one stays."""
        attempts, seen, after, _ = await self.run(backend, "sets-deletes-sets")
        assert seen[:3] == [100.0, None, 200.0]
        assert attempts == [(0.3, 0, 0.3), (200.0, 0, 200.0)]
        assert after is None

    @pytest.mark.parametrize(
        ("name", "expected", "at_1_3"),
        [
            # deleteAlarm() from a call while the handler runs: no retry, nothing left.
            ("call-deletes-fail", [(0.3, 0, 0.3)], None),
            ("call-deletes-all-fail", [(0.3, 0, 0.3)], None),
            # setAlarm() from a call: the new alarm runs at its time as a first attempt, no retry.
            ("call-sets-fail", [(0.3, 0, 0.3), (3.0, 0, 3.0)], 3.0),
            ("call-sets-ok", [(0.3, 0, 0.3), (3.0, 0, 3.0)], 3.0),
            # abort() from a call: the attempt failed, retried 2 s later with retryCount 1.
            ("call-aborts-fail", [(0.3, 0, 0.3), (2.3, 1, 0.3)], 0.3),
        ],
    )
    async def test_a_call_while_the_handler_runs(
        self, backend: str, name: str, expected: list[tuple[float, int, float]], at_1_3: float | None
    ) -> None:
        attempts, seen, after, _ = await self.run(backend, name)
        assert attempts == expected
        assert ("at 1.3 s", at_1_3) in seen
        assert after is None

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            # The constructor of an object woken by its alarm reads the alarm's time (the handler reads null).
            ("constructor-reads", [(0.3, 0, 0.3)]),
            # Deleted there, the handler never runs (workerd cancels it).
            ("constructor-deletes", []),
            # Moved later there, the handler is cancelled and runs at the new time.
            ("constructor-moves", [(2.5, 0, 2.5)]),
        ],
    )
    async def test_the_constructor_of_an_object_its_alarm_woke(
        self, backend: str, name: str, expected: list[tuple[float, int, float]]
    ) -> None:
        attempts, seen, after, _ = await self.run(backend, name, woken=True)
        assert seen[0] == ("constructor", 0.3)
        assert attempts == expected
        assert after is None
        if name == "constructor-moves":  # workerd reads null until it runs (docs/differences.md)
            assert ("at 1.3 s", 2.5) in seen


class WritesThenFailingSection(durable.DurableObject):
    """Writes "w" around a block_concurrency_while() whose callback writes "in" and raises (the
    variant named by ``env.variants[its name]``), from a call or from its alarm's first attempt."""

    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(T0_MS + 200)

    async def keys(self) -> list[str]:
        return list(await self.ctx.storage.list())

    async def section(self) -> None:
        storage = self.ctx.storage

        async def fails() -> None:
            storage.put("in", 1)
            raise RuntimeError("the callback fails")

        def fails_at_once() -> None:
            raise RuntimeError("the callback fails")

        variant = self.env.variants[self.ctx.id.name]
        if variant == "awaited put":
            await storage.put("w", 1)
            await self.ctx.block_concurrency_while(fails)
        elif variant == "put":
            storage.put("w", 1)
            await self.ctx.block_concurrency_while(fails)
        elif variant == "put after the call":
            section = self.ctx.block_concurrency_while(fails)
            storage.put("w", 1)
            await section
        else:
            storage.put("w", 1)
            await self.ctx.block_concurrency_while(fails_at_once)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.attempts.append(info.retry_count)
        if info.retry_count == 0:
            await self.section()


class TestWritesBeforeAFailingBlockConcurrencyWhile:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike): the writes an event makes in
    the turn that calls blockConcurrencyWhile() (before or after the call) are stored, though the
    callback then throws and resets the object; only the callback's own write is lost. Measured
    from a fetch and from an alarm (retried after 2 s with retryCount 1). durable committed them
    only when a caller awaiting the event's result made the commit first: from an alarm, or a
    call nobody awaited, the callback started first and its reset dropped them."""

    @pytest.mark.parametrize("variant", ["awaited put", "put", "put after the call", "plain callback"])
    @pytest.mark.parametrize("source", ["alarm", "call not awaited"])
    async def test_they_are_kept(self, backend: str, source: str, variant: str) -> None:
        clock = MockClock(T0)
        attempts: list[int] = []
        async with durable.Runtime(clock=clock, vars={"attempts": attempts, "variants": {"a": variant}}) as rt:
            stub = rt.namespace(WritesThenFailingSection, storage=backend).get_by_name("a")
            if source == "alarm":
                await stub.arm()
                await clock.advance(10)
                assert attempts == [0, 1]
            else:
                call = asyncio.ensure_future(stub.section())
                await settle(20)  # nobody awaits its result meanwhile (the callback has failed by then)
                with pytest.raises(RuntimeError, match="the callback fails"):
                    await call
            stub = rt.namespace(WritesThenFailingSection, storage=backend).get_by_name("a")
            assert await stub.keys() == ["w"]

    @needs_eager_tasks
    @pytest.mark.parametrize("variant", ["awaited put", "put", "put after the call", "plain callback"])
    async def test_they_are_kept_on_an_eager_loop(self, backend: str, variant: str) -> None:
        """The same on a loop whose task factory is ``asyncio.eager_task_factory``: the callback's
        task started running inside the call, before the commit of the turn, and its reset
        dropped the writes (``keys()`` read ``[]``)."""
        with eager_tasks():
            async with durable.Runtime(vars={"attempts": [], "variants": {"a": variant}}) as rt:
                stub = rt.namespace(WritesThenFailingSection, storage=backend).get_by_name("a")
                with pytest.raises(RuntimeError, match="the callback fails"):
                    await stub.section()
                stub = rt.namespace(WritesThenFailingSection, storage=backend).get_by_name("a")
                assert await stub.keys() == ["w"]


class CatchesItsReset(durable.DurableObject):
    """Its alarm() handler resets the object on its first attempt, in the way named by its
    object's name, and catches the error; records each attempt's retry_count and what it caught."""

    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(T0_MS + 200)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        seen: Seen = self.env.seen
        seen.append(info.retry_count)
        if info.retry_count:
            return
        try:
            if self.ctx.id.name == "abort":
                self.ctx.abort("reset")
            else:
                await asyncio.sleep(0)

                async def fails() -> None:
                    raise RuntimeError("reset")

                await self.ctx.block_concurrency_while(fails)
        except Exception as exc:
            seen.append(str(exc))


class TestAHandlerThatCatchesTheResetOfItsObject:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike): an alarm handler whose
    object is reset while it runs (its own abort() in a try/catch, a blockConcurrencyWhile()
    callback that throws, awaited in a try/catch) failed its attempt: it is retried after 2 s
    with retryCount 1 (there the handler's code does not even go on to its catch). In durable
    the handler's catch then returned normally, and its success cleared the alarm, written after
    the reset: no retry, no alarm. The handler awaiting the failing callback no longer reaches its
    catch either (as in workerd; tests/test_reset.py, TestTheEventThatAwaitedAFailingCallback);
    the one that calls abort() itself still does (docs/differences.md)."""

    @pytest.mark.parametrize("name", ["abort", "block_concurrency_while"])
    async def test_the_attempt_failed_and_is_retried(self, backend: str, name: str) -> None:
        clock = MockClock(T0)
        seen: Seen = []
        async with durable.Runtime(clock=clock, vars={"seen": seen}) as rt:
            await rt.namespace(CatchesItsReset, storage=backend).get_by_name(name).arm()
            await clock.advance(1)
            caught = ["reset"] if name == "abort" else []
            assert seen == [0, *caught]
            stub = rt.namespace(CatchesItsReset, storage=backend).get_by_name(name)
            assert await stub.get() == T0_MS + 200  # stored until the retry
            await clock.advance(10)
            assert seen == [0, *caught, 1]
            assert await stub.get() is None


class DeletesAllThenAborts(durable.DurableObject):
    """Seeds key "k"; deletes everything, then aborts in the same turn, from a call or its alarm."""

    async def seed(self, arm: bool) -> None:
        await self.ctx.storage.put("k", 1)
        if arm:
            await self.ctx.storage.set_alarm(T0_MS + 200)

    async def state(self) -> tuple[int | None, list[str]]:
        return await self.ctx.storage.get_alarm(), list(await self.ctx.storage.list())

    async def delete_all_then_abort(self) -> None:
        storage = self.ctx.storage
        storage.put("a", 1)
        if self.ctx.id.name == "awaited":
            await storage.delete_all()
        else:
            storage.delete_all()
        storage.put("b", 1)
        self.ctx.abort("reset")

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.attempts.append(info.retry_count)
        if info.retry_count == 0:
            try:
                await self.delete_all_then_abort()
            except durable.ObjectAbortedError:
                pass


class TestDeleteAllIsDurableAtOnce:
    """workerd (miniflare 4, 2026-04-07, SQLite- and KV-backed alike): deleteAll(), awaited or
    not, is durable at once: an abort() in the same turn leaves no keys (a put made after it is
    lost), and an alarm handler doing so is not retried and leaves no alarm. durable rolled the
    deletion back with the rest of the turn: the keys came back, the alarm stayed and was retried."""

    @pytest.mark.parametrize("name", ["awaited", "not awaited"])
    async def test_from_a_call(self, backend: str, name: str) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(DeletesAllThenAborts, storage=backend).get_by_name(name)
            await stub.seed(False)
            with pytest.raises(durable.ObjectAbortedError):
                await stub.delete_all_then_abort()
            stub = rt.namespace(DeletesAllThenAborts, storage=backend).get_by_name(name)
            assert await stub.state() == (None, [])

    @pytest.mark.parametrize("name", ["awaited", "not awaited"])
    async def test_from_an_alarm(self, backend: str, name: str) -> None:
        clock = MockClock(T0)
        attempts: list[int] = []
        async with durable.Runtime(clock=clock, vars={"attempts": attempts}) as rt:
            stub = rt.namespace(DeletesAllThenAborts, storage=backend).get_by_name(name)
            await stub.seed(True)
            await clock.advance(10)
            assert attempts == [0]
            stub = rt.namespace(DeletesAllThenAborts, storage=backend).get_by_name(name)
            assert await stub.state() == (None, [])


class OutlivesItsReset(durable.DurableObject):
    """Its first alarm() attempt calls ctx.abort(), catches the error and goes on until its retry
    (retry_count 1) lets it end; both record what they see. (A handler whose object another task
    resets, a failing block_concurrency_while() callback say, is cancelled: it does not go on.)"""

    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(T0_MS + 200)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        env = self.env
        seen: Seen = env.seen
        if info.retry_count == 0:
            try:
                self.ctx.abort("reset")
            except Exception as exc:
                seen.append(str(exc))
            await env.old_may_end.wait()  # set by the retry, which runs meanwhile
            try:
                await self.ctx.storage.delete_alarm()
            except durable.DurableError as exc:
                seen.append(type(exc).__name__)
            try:
                await self.ctx.storage.set_alarm(T0_MS)
            except durable.DurableError as exc:
                seen.append(type(exc).__name__)
            env.old_ended.set()
            return
        seen.append(("retry", info.retry_count, await self.ctx.storage.get_alarm()))
        env.old_may_end.set()
        await env.old_ended.wait()
        seen.append(("retry", info.retry_count, await self.ctx.storage.get_alarm()))


class TestAHandlerThatOutlivesTheResetOfItsObject:
    """A handler that catches its own abort() and goes on past its retry, 2 s later: in workerd (miniflare 4,
    2026-04-07, SQLite- and KV-backed) the old run's code does not go on at all, the retry's
    getAlarm() reads null from start to end, and between the failure and the retry getAlarm()
    reads the alarm. In durable the old run goes on (docs/differences.md), and its end cleared the
    shared "handler running" flag: the retry's get_alarm() then read its own alarm; while the
    old run went on, before the retry, get_alarm() read None."""

    async def test_the_old_run_leaves_the_retry_alone(self, backend: str) -> None:
        clock = MockClock(T0)
        seen: Seen = []
        env = {"seen": seen, "old_may_end": asyncio.Event(), "old_ended": asyncio.Event()}
        async with durable.Runtime(clock=clock, vars=env) as rt:
            await rt.namespace(OutlivesItsReset, storage=backend).get_by_name("a").arm()
            await clock.advance(1)
            assert seen == ["reset"]
            await clock.advance(2)
            # The retry reads None to its end; the old run's storage calls raise: it can neither
            # clear nor move the retry's alarm.
            assert seen == ["reset", ("retry", 1, None), "ObjectAbortedError", "ObjectAbortedError", ("retry", 1, None)]
            stub = rt.namespace(OutlivesItsReset, storage=backend).get_by_name("a")
            assert await stub.get() is None  # the retry succeeded and cleared it
            await clock.advance(200)
            assert len(seen) == 5  # nothing more ran

    async def test_until_the_retry_a_call_reads_the_alarm(self, backend: str) -> None:
        clock = MockClock(T0)
        seen: Seen = []
        env = {"seen": seen, "old_may_end": asyncio.Event(), "old_ended": asyncio.Event()}
        async with durable.Runtime(clock=clock, vars=env) as rt:
            await rt.namespace(OutlivesItsReset, storage=backend).get_by_name("a").arm()
            await clock.advance(1)
            assert seen == ["reset"]
            stub = rt.namespace(OutlivesItsReset, storage=backend).get_by_name("a")
            assert await stub.get() == T0_MS + 200  # the old run goes on, but no handler of this instance runs
            await clock.advance(2)
            assert seen[1:2] == [("retry", 1, None)]
