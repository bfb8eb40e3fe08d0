"""A pending alarm retry and ``transaction()``: a deletion a committed ``transaction()`` made reaches
the scheduler before the call goes on, so it drops the retry even when the call sets the alarm again
next (workerd, measured with miniflare 4.20260426, SQLite- and KV-backed alike, compatibility date
2026-04-20: an alarm at +200 ms whose first attempt throws, then at ~1.3 s a call doing the steps of
each case below, the new alarm 73 ms ahead).

Found by ``run_alarm.py 120 --seed 9779 --resets`` (sequence 98) and ``--seed 9781`` (sequence 71).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext

import pytest

import durable
from durable.testing import MockClock

from helpers import eager_tasks, needs_eager_tasks

T0 = 1_700_000_000
T0_MS = T0 * 1000
SOON = T0_MS + 1373
"""The new alarm: 73 ms after the call (made at T0_MS + 1300, before the retry at T0_MS + 3000)."""

DROPPED = [(0, T0_MS + 1000), (0, SOON)]
"""The retry was dropped: the new alarm ran at its own time as a first attempt."""
KEPT = [(0, T0_MS + 1000), (1, T0_MS + 1000)]
"""The retry was kept: it ran at its time (2 s after the failure) with retry_count 1."""


@pytest.fixture
async def clock() -> AsyncIterator[MockClock]:
    yield MockClock(start=T0)


class FailsOnce(durable.DurableObject):
    """Its first alarm() raises; every run records ``(retry_count, scheduled_time)``."""

    seen: list[tuple[int, int]]

    async def arm(self, when: int) -> None:
        self.seen = []
        await self.ctx.storage.set_alarm(when)

    async def report(self) -> list[tuple[int, int]]:
        return self.seen

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.seen.append((info.retry_count, info.scheduled_time))
        if len(self.seen) == 1:
            raise RuntimeError("the first attempt fails")

    async def move(self, case: str) -> None:
        """Delete (or move) the alarm as ``case`` says, then set it to :data:`SOON`."""
        storage = self.ctx.storage

        async def delete(txn: durable.Transaction) -> None:
            await txn.delete_alarm()

        if case == "transaction":
            await storage.transaction(delete)
        elif case == "transaction, then a read":
            await storage.transaction(delete)
            await storage.get("k")
        elif case == "transaction with a put":

            async def delete_and_put(txn: durable.Transaction) -> None:
                await txn.delete_alarm()
                await txn.put("k", 1)

            await storage.transaction(delete_and_put)
        elif case == "nested transaction":

            async def outer(txn: durable.Transaction) -> None:
                await storage.transaction(delete)

            await storage.transaction(outer)
        elif case == "plain, then an empty transaction":
            await storage.delete_alarm()
            await storage.transaction(lambda: None)
        elif case == "plain":
            await storage.delete_alarm()
        elif case == "transaction_sync":

            def delete_sync() -> None:
                storage.delete_alarm()

            storage.transaction_sync(delete_sync)
        elif case == "transaction moving it later":

            async def move_later(txn: durable.Transaction) -> None:
                await txn.set_alarm(T0_MS + 60_000)

            await storage.transaction(move_later)
        elif case == "transaction rolled back":

            async def roll_back(txn: durable.Transaction) -> None:
                await txn.delete_alarm()
                txn.rollback()

            await storage.transaction(roll_back)
        else:  # pragma: no cover - a typo in a case
            raise AssertionError(case)
        await storage.set_alarm(SOON)


@pytest.mark.parametrize(
    ("case", "runs"),
    [
        ("transaction", DROPPED),
        ("transaction, then a read", DROPPED),
        ("transaction with a put", DROPPED),
        ("nested transaction", DROPPED),
        ("plain, then an empty transaction", DROPPED),
        ("plain", KEPT),
        ("transaction_sync", KEPT),
        ("transaction moving it later", KEPT),
        ("transaction rolled back", KEPT),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite", "kv", pytest.param("eager", marks=needs_eager_tasks)])
async def test_a_deletion_a_transaction_committed_drops_the_retry(
    clock: MockClock, case: str, runs: list[tuple[int, int]], backend: str
) -> None:
    """workerd tells its alarm scheduler of the alarm a root ``transaction()`` committed as part
    of that commit, before the call's next line runs (``ExplicitTxn::commitImpl`` commits at once;
    its post-commit alarm sync is skipped only if the alarm was written again meanwhile): a deletion
    there drops the retry, and the alarm set next is a new one. A plain ``deleteAlarm()`` or one in
    a ``transactionSync()`` commits with the implicit transaction, together with the set, which
    then moves the retry; a transaction that moves the alarm later, or deletes it and rolls back,
    drops nothing (miniflare 4.20260426, both back-ends, every run)."""
    with eager_tasks() if backend == "eager" else nullcontext():  # ("eager": SQLite-backed, on eager tasks)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(FailsOnce, storage="kv" if backend == "kv" else "sqlite").get_by_name(case)
            await stub.arm(T0_MS + 1000)
            await clock.advance(1.3)
            await stub.move(case)
            await clock.advance(5)
            assert await stub.report() == runs


async def test_a_set_before_an_unawaited_transaction_deletes_it_drops_the_retry(clock: MockClock) -> None:
    """A ``transaction()`` that deletes the alarm, not awaited, then ``setAlarm(soon)``: the set
    runs first (a storage call made before the closure starts runs outside it), the transaction
    then deletes the alarm, and its commit drops the retry: the handler never runs again
    (miniflare 4.20260426, both back-ends)."""

    class SetsFirst(FailsOnce):
        async def move_unawaited(self) -> None:
            async def delete(txn: durable.Transaction) -> None:
                await txn.delete_alarm()

            done = self.ctx.storage.transaction(delete)
            await self.ctx.storage.set_alarm(SOON)
            await done

    async with durable.Runtime(clock=clock) as rt:
        stub = rt.namespace(SetsFirst).get_by_name("a")
        await stub.arm(T0_MS + 1000)
        await clock.advance(1.3)
        await stub.move_unawaited()
        await clock.advance(5)
        assert await stub.report() == [(0, T0_MS + 1000)]
