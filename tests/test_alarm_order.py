"""When an alarm's event starts, against the code of the call that set it: orderings found by the
random alarm test (tests/differential/run_alarm.py), each measured in workerd (miniflare
4.20260426, compatibility date 2026-04-20) and fixed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable.testing import MockClock, run_alarm

from helpers import wait_until

RUNS: list[tuple[int, int]] = []


class SetsAroundTransactions(durable.DurableObject):
    """``move()`` sets the alarm to a past time, runs a ``transaction()`` that sets it and rolls
    back, then one that sets it to now and commits; the first ``alarm()`` raises. Every run is
    recorded in ``RUNS``."""

    async def move(self) -> int | None:
        storage = self.ctx.storage
        await storage.set_alarm(self.ctx.now_ms() - 5000)

        async def rolled_back(txn: durable.Transaction) -> None:
            await txn.set_alarm(self.ctx.now_ms() + 70)
            txn.rollback()

        async def committed(txn: durable.Transaction) -> None:
            await txn.set_alarm(self.ctx.now_ms())

        await storage.transaction(rolled_back)
        await storage.transaction(committed)
        return await storage.get_alarm()

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        RUNS.append((info.retry_count, info.scheduled_time))
        if len(RUNS) == 1:
            raise RuntimeError("the first attempt fails")


async def sets_around_transactions() -> tuple[int | None, int | None, bool, int | None]:
    async with durable.Runtime() as rt:  # the real clock: a MockClock runs a due timer at once
        stub = rt.namespace(SetsAroundTransactions).get_by_name("a")
        moved = await stub.move()
        await wait_until(lambda: bool(RUNS), what="the first attempt")
        between = await stub.get()  # (once the failed attempt ended: calls wait for its gate)
        retried = await run_alarm(rt.namespace(SetsAroundTransactions).get_by_name("a"))
        return moved, between, retried, await stub.get()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_alarm_set_again_by_the_transactions_of_the_call_that_set_it(loop: str) -> None:
    """A call sets the alarm to a past time, then, in a second ``transaction()`` (after one that
    set it and rolled back), to now; the handler that runs throws. workerd (miniflare 4.20260426,
    every run) ran the alarm once for the second time (its scheduledTime), then its retry
    (retryCount 1, 2 s later); ``get_alarm()`` read that time after the call and between the
    attempts, none in the handler and after the retry: a due alarm's timer fires only once its
    loop has no other work, and a ``transaction()`` without I/O gives it none, so the alarm was
    moved before its event existed. durable started the event of the first set during the first
    ``transaction()`` (two loop turns each): it waited at the gate and ran, and the moved alarm
    then ran at once as a second first attempt. Found by ``run_alarm.py 99 --seed 9779 --resets``
    (sequence 98); a handler that aborts, or throws, differs alike. The retry is run here with
    ``run_alarm()``, not 2 s later."""
    factory: Any = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    RUNS.clear()
    with asyncio.Runner(loop_factory=factory) as runner:
        moved, between, retried, after = runner.run(sets_around_transactions())
    assert moved is not None
    assert (RUNS, between, retried, after) == ([(0, moved), (1, moved)], moved, True, None)


def _sets(ops: list[Any], offset: int = 0) -> list[tuple[int, Any]]:
    """``(due, op)`` of every set of a call's ops (``due``: ms after the call starts, its sleeps summed)."""
    found = []
    for op in ops:
        if op["op"] in ("txn", "bcw"):
            found += _sets(op["ops"], offset)
        elif op["op"] in ("set", "ensure") and 0 < op["d"] <= 100:
            found.append((offset + op["d"], op))
        elif op["op"] == "sleep":
            offset += op["ms"]
    return found


def _ends(ops: list[Any]) -> list[int]:
    ends: list[int] = []
    for op in ops:
        if op["op"] == "sleep":
            ends.append((ends[-1] if ends else 0) + op["ms"])
    return ends


def test_two_calls_sent_together_keep_their_alarms_away_from_each_others_sleeps() -> None:
    """``run_alarm.py 60 --seed 9865`` (sequence 59): ``ensure 44`` in the second of two calls sent
    together, after a committed ``transaction()``, against the first call's ``sleep 50``, ran
    before the sleep's end in durable and after it in workerd, every run on a busy machine
    (miniflare 4.20260426, compatibility date 2026-04-20; at 30 and 5 ms too, in half the runs):
    workerd starts the second call later, and its ops take longer. The generator moves the second
    call's alarms within 40 ms before to 15 ms after such an end to 20 ms after it, the first
    call's within 15 ms before (to 20 ms before) or 40 ms after (to 45 ms after)."""
    from differential.alarm_ops import LAG_MS, NEAR_MS, AlarmGenerator

    gen = AlarmGenerator(9865)
    sequences = [gen.sequence() for _ in range(60)]
    second = sequences[59]["steps"][-1]["rpcs"][1]
    assert second[-1]["op"] == "ensure"
    assert second[-1]["d"] == 50 + NEAR_MS + 5
    pairs = 0
    for seed in range(9860, 9870):
        gen = AlarmGenerator(seed)
        for _ in range(100):
            for step in gen.sequence()["steps"]:
                if "rpcs" not in step:
                    continue
                pairs += 1
                first_call, second_call = step["rpcs"]
                for call, other, before, after in (
                    (first_call, second_call, NEAR_MS, LAG_MS),
                    (second_call, first_call, LAG_MS, NEAR_MS),
                ):
                    for due, op in _sets(call):
                        for end in _ends(other):
                            assert not -before <= due - end <= after, (seed, op, end)
    assert pairs > 50


def test_a_call_keeps_its_alarms_away_from_its_own_sleeps() -> None:
    """``run_alarm.py 30 --seed 9937`` (sequence 14): a call's ``set 50`` then ``sleep 50`` woke
    first in workerd, whose ``Date.now()`` stands still while code runs, in most runs, and ran the
    alarm first here, whose clock moves (docs/differences.md, "An alarm and a timer set for the
    same instant"; miniflare 4.20260426). The generator moves such an alarm 10 ms from the end."""
    from differential.alarm_ops import OWN_MS, AlarmGenerator

    gen = AlarmGenerator(9937)
    sequences = [gen.sequence() for _ in range(15)]
    assert sequences[14]["steps"][4]["rpc"][0] == {"op": "set", "d": 60, "id": "s2"}
    calls = 0
    for seed in range(9930, 9946):
        gen = AlarmGenerator(seed)
        for _ in range(50):
            for step in gen.sequence()["steps"]:
                for call in step.get("rpcs", [step["rpc"]] if "rpc" in step else []):
                    calls += 1
                    for due, op in _sets(call):
                        assert all(abs(due - end) > OWN_MS for end in _ends(call)), (seed, op)
    assert calls > 500


async def test_two_sets_to_one_time_keep_their_own_labels() -> None:
    """The random test names an alarm time by the set that gave it: two sets to one time (``d``
    ms apart, ``d`` ms apart in time, in one runtime only) made the later label name both, so a
    rolled-back set's label named the alarm the earlier set stored (``run_alarm.py 40 --seed
    9930``, sequence 27: workerd "s3", durable "s2", its sets 12 ms apart in workerd only). A set
    to a time already named now moves 1 ms on (alarm_ops.py and alarm_worker.js alike). With a
    mock clock, which stands still, two sets of the same ``d`` give one time."""
    from differential.alarm_ops import AlarmFuzz

    async with durable.Runtime(clock=MockClock(1_700_000_000)) as rt:
        stub = rt.namespace(AlarmFuzz, storage="sqlite").get_by_name("labels")
        await stub.setup([])
        ops = [
            {"op": "set", "d": 7, "id": "s1"},
            {"op": "txn", "ops": [{"op": "set", "d": 7, "id": "s2"}, {"op": "get"}], "end": "throw"},
            {"op": "get"},
        ]
        assert await stub.run(0, ops) == [{"ok": None}, {"err": "Error"}, {"ok": "s1"}]
        assert (await stub.final())["alarm"] == "s1"


async def test_a_set_to_now_is_past_even_at_a_labelled_time() -> None:
    """A set to now (or before) names its time "past", even when an earlier set named that
    millisecond: a handler's set to now fell in the millisecond of a rolled-back set's time in
    durable's run only, and the alarm was named after that set (``run_alarm.py 8 --seed 10329``,
    sequence 5: durable "s2", workerd "past"). alarm_ops.py and alarm_worker.js alike."""
    from differential.alarm_ops import AlarmFuzz

    clock = MockClock(1_700_000_000)
    async with durable.Runtime(clock=clock) as rt:
        stub = rt.namespace(AlarmFuzz, storage="sqlite").get_by_name("past")
        await stub.setup([])
        rolled_back = {"op": "txn", "ops": [{"op": "set", "d": 30, "id": "s1"}], "end": "rollback"}
        assert await stub.run(0, [rolled_back]) == [{"ok": [{"ok": None}]}]
        await clock.advance(0.030)
        ops = [{"op": "set", "d": 0, "id": "s2"}, {"op": "get"}]
        assert await stub.run(1, ops) == [{"ok": None}, {"ok": "past"}]


class TestRerunVerdict:
    """How ``run_alarm.py`` judges a sequence that differed, once run again on both sides."""

    def test_durable_showing_one_of_workerds_varying_reports_is_accepted(self) -> None:
        """workerd's timing decides (seed 10047 --resets, sequence 19): durable's report is one of its."""
        from differential.run_alarm import verdict

        assert verdict({"before", "after"}, {"after"}) == "varies in workerd"
        assert verdict({"before", "after"}, {"before", "after"}) == "varies in workerd"

    def test_anything_else_is_a_difference(self) -> None:
        """A report workerd never gave, or durable varying where workerd does not, still counts."""
        from differential.run_alarm import verdict

        assert verdict({"a"}, {"b"}) == "differs every time"
        assert verdict({"a", "b"}, {"c"}) == "TIMING: not the same on a rerun"
        assert verdict({"a", "b"}, {"a", "c"}) == "TIMING: not the same on a rerun"
        assert verdict({"a"}, {"a", "b"}) == "TIMING: not the same on a rerun"
