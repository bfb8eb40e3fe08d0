"""The interleaving differential test: concurrent calls into one object, in workerd and in durable.

Needs ``node`` and ``npm install --prefix tests/differential`` (``.ci/run`` does it); without them
the test that talks to workerd skips. ``DURABLE_INTERLEAVE_CASES`` (default 100) and
``DURABLE_INTERLEAVE_SEED`` (default 0) choose how many cases run and from which seed;
``python tests/differential/run_interleave.py N`` runs more by hand and prints every difference.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from differential.interleave import (
    DurableSide,
    Generator,
    Turns,
    canonical_log,
    differences,
    other_calls,
    outcome_in_workerd,
)
from differential.runner import Workerd, started_or_skipped

import durable

# ~100 cases take about 20 s on a quiet machine; a loaded CI machine takes longer.
pytestmark = pytest.mark.timeout(600)

REPEATS = 2
"""Runs of each case in workerd: a case is compared only if they answered alike."""


@pytest.fixture(scope="module")
def workerd() -> Iterator[Workerd]:
    yield from started_or_skipped()


async def test_random_cases(workerd: Workerd, durable_runtime: durable.Runtime) -> None:
    """Every case answers alike on both sides: the log of what each step saw, in the order the
    gates allowed (up to the order of timers and results of other objects, see canonical_log),
    each call's result or error, and the storage left."""
    count = int(os.environ.get("DURABLE_INTERLEAVE_CASES", "100"))
    seed = int(os.environ.get("DURABLE_INTERLEAVE_SEED", "0"))
    side = DurableSide(durable_runtime)
    gen = Generator(seed)
    found = []
    compared = 0
    for number in range(count):
        case = gen.case()
        name = f"interleave-{seed}-{number}"
        expected, stable = await asyncio.to_thread(outcome_in_workerd, workerd, case, name, REPEATS)
        if not stable:
            continue
        compared += 1
        diff = differences(case, expected, await side.outcome(case, name, expected))
        if diff:
            found.append(f"case {number}: {json.dumps(case)}\n  " + "\n  ".join(diff))
    assert not found, f"{len(found)} of {compared} cases differ (seed {seed}):\n" + "\n".join(found[:3])
    assert compared >= count // 2, f"only {compared} of {count} cases were stable in workerd"


HELD_CALLS_CASE: dict[str, Any] = {
    "backend": "sqlite",
    "calls": [
        [
            {"s": "put", "key": "b", "value": "0.0", "wait": False},
            {"s": "delete", "key": "b", "wait": True},
            {"s": "put", "key": "b", "value": "0.2", "wait": False},
            {"s": "kv_put", "key": "a", "value": "0.3"},
        ],
        [{"s": "other_err"}, {"s": "list", "wait": True}, {"s": "list", "wait": True}, {"s": "other"}],
        [
            {"s": "other_err"},
            {"s": "sql_get"},
            {"s": "bcw", "steps": [{"s": "txn", "steps": [
                {"s": "sql_put", "key": "a", "value": "2.2.0.0"},
                {"s": "kv_put", "key": "c", "value": "2.2.0.1"},
            ], "end": "commit"}]},
        ],
    ],
}  # fmt: skip
"""Seed 7002, case 221: call 0's writes hold calls 1's and 2's calls to the other object; workerd
(miniflare 4.20260426) resumes call 2 first, whose section writes ``c`` that call 1 then lists."""


async def test_calls_to_the_other_object_resume_in_workerds_order(
    workerd: Workerd, durable_runtime: durable.Runtime
) -> None:
    """The order in which calls to the other object come back is latency (Turns): the other
    object answers in the order workerd resumed them, and what the calls saw afterwards matches
    (without the replay, durable resumed call 1 first and its list() did not see ``c``)."""
    case = HELD_CALLS_CASE
    expected, stable = await asyncio.to_thread(outcome_in_workerd, workerd, case, "interleave-held", REPEATS)
    assert stable
    assert other_calls(case, expected["log"]) == [2, 1, 1]  # call 2's first, though made after call 1's
    side = DurableSide(durable_runtime)
    assert differences(case, expected, await side.outcome(case, "interleave-held", expected)) == []


class TestTurns:
    async def test_answers_in_the_order_given(self) -> None:
        """Each call answers once the calls ahead of it have resumed in their callers."""
        turns = Turns([2, 0, 1])
        resumed: list[int] = []

        async def call(n: int) -> None:
            await turns.turn(n)
            await asyncio.sleep(0)
            resumed.append(n)
            turns.resumed(n)

        await asyncio.gather(call(0), call(1), call(2))
        assert resumed == [2, 0, 1]

    async def test_a_call_that_is_not_coming_is_given_up(self) -> None:
        """Waiting for a call that never comes ends once nothing else is ready to run."""
        turns = Turns([1, 0])
        await asyncio.wait_for(turns.turn(0), 10)
        turns.resumed(0)
        await asyncio.wait_for(turns.turn(1), 10)  # no longer expected ahead of anything


class TestGenerator:
    def test_deterministic(self) -> None:
        """The same seed gives the same cases."""
        assert json.dumps([Generator(5).case() for _ in range(5)]) == json.dumps(
            [Generator(5).case() for _ in range(5)]
        )

    def test_covers_every_step(self) -> None:
        """A hundred cases use every step, awaited and not, on both backends, with 2 to 6 calls."""
        gen = Generator(0)
        cases = [gen.case() for _ in range(100)]

        def walk(steps: list[Any]) -> Iterator[Any]:
            for step in steps:
                yield step
                yield from walk(step.get("steps", []))

        steps = [s for c in cases for call in c["calls"] for s in walk(call)]
        assert {s["s"] for s in steps} == {
            "get", "put", "delete", "list", "resolved", "timer", "other", "other_err",
            "bcw", "txn", "kv_get", "kv_put", "sql_put", "sql_get", "throw", "txn_sync",
            "get_many", "put_many", "delete_many", "incr",
        }  # fmt: skip
        assert {s["wait"] for s in steps if s["s"] == "put_many"} == {True, False}
        assert {s["end"] for s in steps if s["s"] == "txn_sync"} == {"commit", "throw"}
        assert {s["wait"] for s in steps if "wait" in s} == {True, False}
        assert {c["backend"] for c in cases} == {"sqlite", "kv"}
        assert {len(c["calls"]) for c in cases} == {2, 3, 4, 5, 6}
        options = {name for s in steps if s["s"] == "list" for name in s.get("options", {})}
        assert options == {"start", "end", "prefix", "reverse", "limit"}

    def test_calls_of_many_keys_leave_the_other_draws_as_they_were(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The steps of many keys and the counter come from a stream of their own, each in place of
        a step drawn all the same (``incr`` of a ``get``): without them, a seed draws what it drew
        before they were added."""
        gen = Generator(9966)
        drawn = [gen.case() for _ in range(60)]
        monkeypatch.setattr(Generator, "_many", lambda self, step, path: step)
        gen = Generator(9966)
        again = [gen.case() for _ in range(60)]
        single = {"get_many": "get", "put_many": "put", "delete_many": "delete", "incr": "get"}

        def kinds(steps: list[Any]) -> list[Any]:
            return [[single.get(s["s"], s["s"]), kinds(s.get("steps", []))] for s in steps]

        assert [[kinds(call) for call in c["calls"]] for c in drawn] == [
            [kinds(call) for call in c["calls"]] for c in again
        ]
        assert drawn != again

    def test_list_options_leave_the_other_draws_as_they_were(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A list's options come from a stream of their own: without them, a seed's cases are what
        they were before they were added."""
        gen = Generator(10150)
        drawn = [gen.case() for _ in range(60)]
        monkeypatch.setattr(Generator, "_bounded", lambda self, step: step)
        gen = Generator(10150)
        again = [gen.case() for _ in range(60)]

        def plain(x: Any) -> Any:
            if isinstance(x, list):
                return [plain(y) for y in x]
            if isinstance(x, dict):
                return {k: plain(v) for k, v in x.items() if k != "options"}
            return x

        assert plain(drawn) == again != drawn


class TestCanonicalLog:
    CASE: dict[str, Any] = {
        "backend": "kv",
        "calls": [[{"s": "other"}, {"s": "get", "key": "a", "wait": True}], [{"s": "other"}], [{"s": "timer"}]],
    }

    def test_results_of_other_objects_in_either_order(self) -> None:
        """Segments that start with the result of another object's call may come in either order."""
        one = [[0, "0", "pong 0"], [0, "1", None], [1, "0", "pong 1"]]
        other = [[1, "0", "pong 1"], [0, "0", "pong 0"], [0, "1", None]]
        assert canonical_log(self.CASE, one) == canonical_log(self.CASE, other)

    def test_a_split_segment_differs(self) -> None:
        """An event that got in between two steps of one segment shows."""
        whole = [[0, "0", "pong 0"], [0, "1", None], [2, "0", "resumed"]]
        split = [[0, "0", "pong 0"], [2, "0", "resumed"], [0, "1", None]]
        assert canonical_log(self.CASE, whole) != canonical_log(self.CASE, split)

    def test_what_a_step_saw_counts(self) -> None:
        """The same order with another value seen differs."""
        case = self.CASE
        assert canonical_log(case, [[0, "0", "pong 0"], [0, "1", "x"]]) != canonical_log(
            case, [[0, "0", "pong 0"], [0, "1", None]]
        )
