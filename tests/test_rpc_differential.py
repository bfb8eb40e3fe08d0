"""The random RPC test: interactions of a caller with a Durable Object, in real workerd and in durable.

``tests/differential/rpc_ops.py`` draws them (echoed values of every shared structured-clone type,
errors as values and thrown, functions and RpcTargets crossing both ways, property reads, missing
methods, disposed callbacks); ``rpc_worker.js`` runs them in workerd. A few run here (workerd
tests skip without ``node`` and ``npm install --prefix tests/differential``);
``python tests/differential/run_rpc.py N --seed S`` runs more by hand.
``DURABLE_RPC_DIFFERENTIAL_INTERACTIONS`` (default 12) and ``DURABLE_DIFFERENTIAL_SEED`` choose
how many and from which seed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from differential.rpc_ops import MAKE_KINDS, PIPE_SOURCES, UNSENDABLE, RpcGenerator, RpcSide, Step, first_difference
from differential.runner import Workerd, started_or_skipped

import durable


@pytest.fixture(scope="module")
def workerd() -> Iterator[Workerd]:
    yield from started_or_skipped()


async def test_random_interactions_observe_alike(workerd: Workerd, durable_runtime: durable.Runtime) -> None:
    """What the caller observes of each step (values by codec, error names, messages, ``remote``)
    is the same on both sides, once allowed differences are taken out."""
    count = int(os.environ.get("DURABLE_RPC_DIFFERENTIAL_INTERACTIONS", "12"))
    seed = int(os.environ.get("DURABLE_DIFFERENTIAL_SEED", "0"))
    side = RpcSide(durable_runtime)
    gen = RpcGenerator(seed)
    found = []
    for number in range(count):
        steps = gen.interaction()
        name = f"rpc-{seed}-{number}"
        expected = await asyncio.to_thread(workerd.request, {"object": name, "rpc": steps})
        difference = first_difference(steps, expected, await side.run(name, steps))
        if difference is not None:
            found.append(f"interaction {number}: {difference}\n  steps: {json.dumps(steps)}")
    assert not found, f"{len(found)} of {count} interactions differ (seed {seed}):\n" + "\n".join(found[:3])


async def test_thrown_messages_as_workerd_cuts_them(workerd: Workerd, durable_runtime: durable.Runtime) -> None:
    """Leading spaces and what follows a NUL, thrown from a method and from an RpcTarget's method
    (tests/test_rpc_fuzz_found.py has the durable side alone)."""
    steps: list[dict[str, Any]] = [
        {"op": "fail", "error": {"t": "error", "cls": cls, "message": message}}
        for cls in ("TypeError", "Custom")
        for message in (" a ", "a\0b", "\0b", "  ", "\ta\n")
    ]
    steps += [
        {"op": "make", "kind": "target"},
        {"op": "held_call", "index": 0, "as": "target", "name": "fail", "args": [steps[1]["error"]]},
    ]
    expected = await asyncio.to_thread(workerd.request, {"object": "rpc-messages", "rpc": steps})
    assert first_difference(steps, expected, await RpcSide(durable_runtime).run("rpc-messages", steps)) is None


async def test_bumps_made_together_count_in_order(workerd: Workerd, durable_runtime: durable.Runtime) -> None:
    """Calls made at once on one stub arrive in the order made, and the input gate keeps each
    bump's read and write together: 0, 1, 2 for one key, whatever runs between them."""
    bump = {"op": "bump", "key": "n"}
    steps: list[dict[str, Any]] = [
        {"op": "together", "calls": [bump, {"op": "echo", "args": []}, bump, {"op": "bump", "key": "m"}, bump]},
        {"op": "together", "calls": [{"op": "fail", "error": {"t": "error", "cls": "Error", "message": "e"}}, bump]},
    ]
    expected = await asyncio.to_thread(workerd.request, {"object": "rpc-together", "rpc": steps})
    assert [r.get("ok") for r in expected[0]["together"]] == [
        {"t": "num", "v": 0},
        {"t": "arr", "v": []},
        {"t": "num", "v": 1},
        {"t": "num", "v": 0},
        {"t": "num", "v": 2},
    ]
    assert expected[1]["together"][1] == {"ok": {"t": "num", "v": 3}}
    assert first_difference(steps, expected, await RpcSide(durable_runtime).run("rpc-together", steps)) is None


class TestGenerator:
    def test_deterministic(self) -> None:
        """The same seed gives the same interactions."""
        first = [RpcGenerator(5).interaction() for _ in range(5)]
        assert json.dumps(first) == json.dumps([RpcGenerator(5).interaction() for _ in range(5)])

    def test_relays_leave_the_other_steps_as_they_were(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``relay`` steps come from a stream of their own: without them, a seed's interactions
        are what it drew before they were added (``together`` steps, drawn with the values'
        generator that relays draw with too, are left out)."""
        gen = RpcGenerator(9745)
        mine = ("relay", "together")
        drawn = [[s for s in gen.interaction() if s["op"] not in mine] for _ in range(100)]
        monkeypatch.setattr(RpcGenerator, "everyday", lambda self: {"op": "relay"})
        gen = RpcGenerator(9745)
        assert drawn == [[s for s in gen.interaction() if s["op"] not in mine] for _ in range(100)]

    def test_calls_only_functions_as_functions(self) -> None:
        """A ``held_call`` ``as: fn`` names a stub the runners hold for a function.

        The runners hold the stubs of results that came back: a ``make`` of a function or target,
        and a ``callback`` of ``make_fn`` unless its argument could not be sent (a ``Plain``
        fails the call). The generator counted that failed one too, so a later step called the
        next stub held, an RpcTarget's, as a function, a documented difference (workerd's
        ``"(this)" is not a function.``; run_rpc.py --seed 9634 --loop uvloop, interaction 3253).
        """
        gen = RpcGenerator(9634)
        for _ in range(3300):
            held: list[str] = []
            for step in gen.interaction():
                if step["op"] == "held_call" and step["as"] == "fn" and step["index"] < len(held):
                    assert held[step["index"]] == "fn", step
                if step["op"] == "make" and step["kind"] in ("function", "nested_function"):
                    held.append("fn")
                elif step["op"] == "make" and step["kind"] in ("target", "nested_target"):
                    held.append("target")
                elif step["op"] == "callback" and step["fn"] == "make_fn" and step["args"] != [UNSENDABLE]:
                    held.append("fn")

    def test_resetting_pipelines_send_what_they_can(self) -> None:
        """A pipelined call on ``abort`` or ``bcw`` (which reset the object) gets no argument its
        caller cannot serialize: the step would fail at once with the reset still on its way, and
        whether a callback of the object called next runs before it is timing (workerd ran it,
        run_rpc.py --seed 9832, interaction 86: ``make`` a function, ``pipe`` from ``abort`` with
        a ``Plain`` argument, ``held_call`` of the function). Other sources still get one."""
        gen = RpcGenerator(9832)
        pipes = [s for _ in range(2000) for s in gen.interaction() if s["op"] == "pipe"]

        def unsendable(step: Step) -> bool:
            return any(UNSENDABLE in seg.get("args", []) for seg in step["path"])

        assert not any(unsendable(s) for s in pipes if s["src"] in ("abort", "bcw"))
        assert any(unsendable(s) for s in pipes if s["src"] not in ("abort", "bcw"))
        assert any(s["src"] == "abort" and any("args" in seg for seg in s["path"]) for s in pipes)

    def test_calls_made_together_leave_the_other_steps_as_they_were(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``together`` steps come from a stream of their own: without them, a seed's interactions
        are what it drew before they were added (relays included)."""
        gen = RpcGenerator(9977)
        drawn = [[s for s in gen.interaction() if s["op"] != "together"] for _ in range(100)]
        monkeypatch.setattr(RpcGenerator, "together_step", lambda self: {"op": "together", "calls": []})
        gen = RpcGenerator(9977)
        assert drawn == [[s for s in gen.interaction() if s["op"] != "together"] for _ in range(100)]

    def test_covers_every_step(self) -> None:
        """150 interactions use every step, every kind of result, every first call of a pipelined
        one, and errors in values."""
        gen = RpcGenerator(0)
        steps = [step for _ in range(150) for step in gen.interaction()]
        assert {s["op"] for s in steps} == {
            "echo",
            "pair",
            "make",
            "fail",
            "missing",
            "prop",
            "callback",
            "keep",
            "call_kept",
            "caller_target",
            "pass_back",
            "held_call",
            "held_prop",
            "abort",
            "bcw",
            "pipe",
            "relay",
            "together",
        }
        calls = [c["op"] for s in steps if s["op"] == "together" for c in s["calls"]]
        assert set(calls) == {"bump", "echo", "pair", "fail", "missing", "prop", "make"}
        assert {s["via"] for s in steps if s["op"] == "relay"} == {"echo", "pair", "fail", "caught", "make", "abort"}
        assert {s["kind"] for s in steps if s["op"] == "make"} == set(MAKE_KINDS)
        assert {s["src"] for s in steps if s["op"] == "pipe"} == set(PIPE_SOURCES)
        text = json.dumps(steps)
        assert all(f'"t": "{tag}"' in text for tag in ("error", "plain", "ref", "map", "set", "date", "buf", "big"))
