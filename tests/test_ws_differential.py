"""The random WebSocket differential test: sequences of client and server steps on one object's
hibernatable sockets, run in real workerd and in durable (``tests/differential/ws_ops.py``).

Needs ``node`` and ``npm install --prefix tests/differential``; without them the tests that talk
to workerd skip. ``DURABLE_WS_DIFFERENTIAL_SEQUENCES`` (default 10) and
``DURABLE_WS_DIFFERENTIAL_SEED`` (default 0) choose how many sequences run and from which seed;
``python tests/differential/run_ws.py N --seed S`` runs more by hand and prints every difference.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from differential.runner import Workerd, harness_missing, started_or_skipped
from differential.ws_ops import STORE_OPS, THROWN, Generator
from differential.ws_runner import DurableWs, differences, run_in_workerd

import durable

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def workerd() -> Iterator[Workerd]:
    yield from started_or_skipped("ws")


class TestRandomSequences:
    async def test_no_unexplained_difference(self, workerd: Workerd, durable_runtime: durable.Runtime) -> None:
        """Every step's result, every message and close each client got and every event the
        object's handlers saw are alike in workerd and in durable (after ``normalize``)."""
        count = int(os.environ.get("DURABLE_WS_DIFFERENTIAL_SEQUENCES", "10"))
        seed = int(os.environ.get("DURABLE_WS_DIFFERENTIAL_SEED", "0"))
        side = DurableWs(durable_runtime)
        gen = Generator(seed)
        found = []
        for number in range(count):
            sequence = gen.sequence()
            expected = run_in_workerd(workerd, sequence)
            diff = differences(sequence, expected, await side.run(sequence))
            if diff:
                found.append(f"sequence {number}: {json.dumps(sequence)[:2000]}\n" + "\n".join(diff))
        assert not found, f"{len(found)} of {count} sequences differ (seed {seed}):\n" + "\n".join(found[:3])


class TestChosenSequences:
    async def test_smallest_smi_read_out_of_a_double_array(
        self, workerd: Workerd, durable_runtime: durable.Runtime
    ) -> None:
        """-2**30 in a Map read out of a JSON array of doubles sizes as the Smi it is on both sides.

        JSON.parse keeps ``[2147483648, -1073741824]`` as doubles, so the -2**30 ws_worker.js read
        out of it was a double (9 bytes) where durable's twin has a Smi (6): an attachment of
        16475 bytes in workerd, 16472 in durable (miniflare 4.20260426; run_ws.py 800 --seed 9632,
        sequence 721). ws_worker.js's ``value`` makes every integer of V8's Smi range, -2**30 to
        2**30 - 1, a Smi again; the neighbours outside it stay doubles on both sides.
        """
        numbers = [2**31, -(2**30), 2**30 - 1, 2**30, -(2**30) - 1]
        pad = {"$": "big", "n": 16370, "ch": "a"}
        attach = {"op": "attach", "ws": "self", "value": {"x": pad, "y": numbers}}
        mapped = {"op": "attach", "ws": "self", "value": {"p": pad, "m": {"$": "map", "v": [numbers[:2]]}}}
        sequence = {
            "object": "smi-out-of-doubles",
            "steps": [
                {"step": "open", "id": "c0", "tags": ["c0"]},
                {"step": "csend", "c": "c0", "data": {"t": "cmd:" + json.dumps([attach, mapped])}},
            ],
        }
        got = await DurableWs(durable_runtime).run(sequence)
        assert differences(sequence, run_in_workerd(workerd, sequence), got) == []


SEND_THEN_THROW = "cmd:" + json.dumps(
    [{"op": "send", "ws": "self", "data": {"t": "x"}}, {"op": "throw", "message": "handler boom"}]
)
"""A client message whose listener sends on its own socket and then throws."""


class TestComparison:
    """The comparison itself (no workerd needed)."""

    async def test_sees_a_difference(self, durable_runtime: durable.Runtime) -> None:
        """A message changed, a result changed or an event left out is reported."""
        gen = Generator(5)
        sequence = next(s for s in (gen.sequence() for _ in range(50)) if len(s["steps"]) > 6)
        got = await DurableWs(durable_runtime).run(sequence)
        assert differences(sequence, got, got) == []
        changed = copy.deepcopy(got)
        changed["results"][0] = {"status": 500}
        assert differences(sequence, got, changed)
        server = next(iter(got["server"]), None)
        if server is not None:
            changed = copy.deepcopy(got)
            changed["server"][server] = changed["server"][server][1:]
            assert differences(sequence, got, changed)

    async def test_a_lost_connection_before_the_close_takes_the_listeners_error(
        self, durable_runtime: durable.Runtime
    ) -> None:
        """An ``accept()`` socket closed by the object right after it sent on two hibernatable
        sockets got, in workerd, ``Network connection lost.`` before its close event, and no error
        for its raising close listener (miniflare 4.20260426, every run; ``run_ws.py 150 --seed
        9768 --resets --loop uvloop``, sequence 60); durable reports the listener's error after the
        close. Not compared after such a lost connection; compared otherwise."""
        throw = {"op": "throw", "message": THROWN}
        sequence = {
            "object": "lost-before-close",
            "steps": [
                {"step": "open", "id": "c1", "tags": ["c1"]},
                {"step": "open", "id": "c2", "tags": ["c2"], "standard": True},
                {"step": "open", "id": "c3", "tags": ["c3"]},
                {"step": "srv", "ops": [{"op": "on_close", "ops": [throw]}, {"op": "close", "ws": "c2", "code": 1001}]},
            ],
        }
        got = await DurableWs(durable_runtime).run(sequence)
        assert [e[0] for e in got["server"]["c2"]] == ["close", "error"]
        workerd = copy.deepcopy(got)  # as measured there
        close = got["server"]["c2"][0]
        workerd["server"]["c2"] = [
            ["error", "Network connection lost.", "Uncaught Error: Network connection lost."],
            close,
        ]
        assert differences(sequence, workerd, got) == []
        workerd["server"]["c2"] = [close]  # (no lost connection: the listener's error is compared)
        assert differences(sequence, workerd, got)

    async def test_client_of_a_listener_that_sent_and_raised(self, durable_runtime: durable.Runtime) -> None:
        """A listener that sends on its socket and then raises leaves workerd's client OPEN for
        good (miniflare 4.20260426: still OPEN 4 s later, no close event, the object's later
        ``close()`` not delivered; a send in an earlier call or on another socket, or none, and
        the client gets 1006), where durable's client gets the 1006 close (websockets.md, "What
        differs"): the states that client reports from that message on are not compared, those
        before it and another client's still are."""
        sequence = {
            "object": "listener-sent-and-raised",
            "steps": [
                {"step": "open", "id": "c0", "tags": ["c0"], "standard": True},
                {"step": "open", "id": "c1", "tags": ["c1"], "standard": True},
                {"step": "cstate", "c": "c0"},
                {"step": "csend", "c": "c0", "data": {"t": SEND_THEN_THROW}},
                {"step": "cstate", "c": "c0"},
                {"step": "srv", "ops": [{"op": "close", "ws": "c0", "code": 1013}]},
                {"step": "cstate", "c": "c0"},
                {"step": "cstate", "c": "c1"},
            ],
        }
        got = await DurableWs(durable_runtime).run(sequence)
        assert [got["results"][i] for i in (2, 4, 6, 7)] == [1, 3, 3, 1]
        workerd = copy.deepcopy(got)  # as measured there: no close event, OPEN
        workerd["clients"]["c0"] = [e for e in got["clients"]["c0"] if e[0] != "close"]
        workerd["results"][4] = workerd["results"][6] = 1
        assert differences(sequence, workerd, got) == []
        for index in (2, 7):  # (before the message, and another client: compared)
            changed = copy.deepcopy(got)
            changed["results"][index] = 3
            assert differences(sequence, workerd, changed)

    async def test_sends_after_the_stuck_client_closed(self, durable_runtime: durable.Runtime) -> None:
        """Once the client whose listener sent and raised calls ``close()`` itself, workerd's
        (still ``OPEN``) client goes ``CLOSING`` and refuses each later ``send()`` with
        ``TypeError: Can't call WebSocket send() after close().``; durable's client had its 1006
        close, so its ``close()`` changes nothing and the sends are dropped, as workerd drops
        them after a 1006 (miniflare 4.20260426, run_ws.py 300 --seed 9301, sequence 125): not
        compared from that ``close()`` on; a send before it still is."""
        sequence = {
            "object": "stuck-client-closed",
            "steps": [
                {"step": "open", "id": "c0", "tags": ["c0"], "standard": True},
                {"step": "csend", "c": "c0", "data": {"t": SEND_THEN_THROW}},
                {"step": "csend", "c": "c0", "data": {"t": "a"}},
                {"step": "cclose", "c": "c0", "code": 2000},
                {"step": "csend", "c": "c0", "data": {"t": "b"}},
                {"step": "burst", "steps": [{"step": "csend", "c": "c0", "data": {"t": "c"}}]},
            ],
        }
        got = await DurableWs(durable_runtime).run(sequence)
        assert got["results"][2:] == ["sent", 3, "sent", ["sent"]]
        refused = {"err": {"name": "TypeError", "message": "Can't call WebSocket send() after close()."}}
        workerd = copy.deepcopy(got)  # as measured there
        workerd["clients"]["c0"] = [e for e in got["clients"]["c0"] if e[0] != "close"]
        workerd["results"][3:] = [2, refused, [refused]]
        assert differences(sequence, workerd, got) == []
        workerd["results"][2] = refused  # (before its close(): compared)
        assert differences(sequence, workerd, got)

    async def test_tags_of_the_stuck_socket(self, durable_runtime: durable.Runtime) -> None:
        """``ctx.get_tags()`` on the server socket of a client whose listener sent and raised: the
        socket is open in workerd ("only hibernatable websockets can have tags.") and closed in
        durable (its "you must call 'acceptWebSocket()'" message; run_ws.py 200 --seed 9303,
        sequence 113): not compared; on another socket it still is."""
        sequence = {
            "object": "stuck-tags",
            "steps": [
                {"step": "open", "id": "c0", "tags": ["c0"], "standard": True},
                {"step": "open", "id": "c1", "tags": ["c1"], "standard": True},
                {"step": "csend", "c": "c0", "data": {"t": SEND_THEN_THROW}},
                {"step": "srv", "ops": [{"op": "tags", "ws": "c0"}, {"op": "tags", "ws": "c1"}]},
            ],
        }
        got = await DurableWs(durable_runtime).run(sequence)
        closed, open_ = (
            {"err": {"name": "Error", "message": m}}
            for m in (
                "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket.",
                "only hibernatable websockets can have tags.",
            )
        )
        assert got["results"][3] == [closed, open_]
        workerd = copy.deepcopy(got)
        workerd["results"][3][0] = copy.deepcopy(open_)  # as measured there
        assert differences(sequence, workerd, got) == []
        workerd["results"][3][1] = copy.deepcopy(closed)  # (another socket: compared)
        assert differences(sequence, workerd, got)

    async def test_lost_connection_after_the_close_is_no_raising_listener(
        self, durable_runtime: durable.Runtime
    ) -> None:
        """workerd's ``"Network connection lost."`` error event after a socket's close does not
        count as its listener raising: a later command that would send and raise (refused, the
        client closed) does not make that client's state uncompared (run_ws.py 300 --seed 9301,
        sequence 209: the same state 3 on both sides was reported as a difference)."""
        sequence = {
            "object": "lost-after-close",
            "steps": [
                {"step": "open", "id": "c0", "tags": ["c0"], "standard": True},
                {"step": "srv", "ops": [{"op": "close", "ws": "c0", "code": 1002}]},
                {"step": "cclose", "c": "c0", "code": 2999},
                {"step": "csend", "c": "c0", "data": {"t": SEND_THEN_THROW}},
                {"step": "cstate", "c": "c0"},
            ],
        }
        got = await DurableWs(durable_runtime).run(sequence)
        assert got["results"][4] == 3
        workerd = copy.deepcopy(got)
        lost = "Network connection lost."
        workerd["server"]["c0"].append(["error", lost, f"Uncaught Error: {lost}"])
        assert differences(sequence, workerd, got) == []
        workerd["results"][4] = 1
        assert differences(sequence, workerd, got)

    def test_seeded(self) -> None:
        """The same seed draws the same sequences; every step and op kind is drawn."""
        first = [Generator(7).sequence() for _ in range(1)] + [Generator(7).sequence()]
        assert first[0] == first[1]
        gen = Generator(11)
        text = json.dumps([gen.sequence() for _ in range(200)])
        for kind in ("open", "csend", "cclose", "cstate", "srv", "hibernate"):
            assert f'"step": "{kind}"' in text
        for op in (
            "send",
            "close",
            "attach",
            "detach",
            "list",
            "tags",
            "auto",
            "get_auto",
            "auto_ts",
            "timeout",
            "bcast",
            "st_put",
            "st_get",
            "st_delete",
            "st_list",
        ):
            assert f'"op": "{op}"' in text or f'\\"op\\": \\"{op}\\"' in text
        assert "throw" in text and "on_close" in text

    def test_no_burst_closes_a_socket_once_a_close_handler_may_reset(self) -> None:
        """With ``--resets``, once a close handler that resets the object may be armed, a burst's
        client closes run as steps of their own after it: in workerd a close overtook another
        socket's earlier second message (as if it took a burst's events a socket at a time) and its
        reset lost that message, where durable runs them in the order sent (run_ws.py 150 --seed 9666
        --resets, sequence 142, every run; miniflare 4.20260426). Seed 9666's sequence 142 is that
        case; the other bursts and sequences keep their closes."""
        gen = Generator(9666, resets=True)
        sequences = [gen.sequence() for _ in range(150)]
        steps = sequences[142]["steps"]
        assert [s["step"] for s in steps[12:14]] == ["burst", "cclose"]
        assert {s["c"] for s in steps[12]["steps"]} == {"c1", "c3"}
        armed = kept = 0
        for sequence in sequences:
            resets = False
            for step in sequence["steps"]:
                closes = step["step"] == "burst" and any(
                    s["step"] == "cclose" or any(op["op"] == "close" for op in _command(s)) for s in step["steps"]
                )
                assert not (resets and closes)
                kept += closes
                resets = resets or _arms_a_resetting_close(step)
                armed += resets
        assert armed and kept

    def test_no_burst_command_closes_its_socket_once_a_close_handler_may_reset(self) -> None:
        """The same for a command that closes its own socket: with c0's and c1's commands each
        closing their socket in one burst, workerd ran c1's close handler (which reset the
        object) first, durable c0's (run_ws.py 200 --seed 9996 --resets, sequence 156). That
        sequence's burst keeps c0's message and sends the two closing commands after it."""
        gen = Generator(9996, resets=True)
        steps = [gen.sequence() for _ in range(157)][156]["steps"]
        assert [s["step"] for s in steps[10:13]] == ["burst", "csend", "csend"]
        assert [s["c"] for s in steps[10]["steps"]] == ["c0", "c1", "c0"]
        assert [s["c"] for s in steps[11:13]] == ["c0", "c1"]
        assert all(any(op["op"] == "close" for op in _command(s)) for s in steps[11:13])

    def test_storage_ops_leave_the_other_draws_as_they_were(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The awaited storage ops come from a stream of their own: without them, a seed's
        sequences are what it drew before they were added; a socket accepted with ``accept()``
        gets none in its commands, and a command's keys are its own socket's."""
        gen = Generator(9989, resets=True)
        drawn = [gen.sequence() for _ in range(150)]
        monkeypatch.setattr(Generator, "stored", lambda self, ops, socket, burst=False: ops)
        gen = Generator(9989, resets=True)
        again = [gen.sequence() for _ in range(150)]
        assert [_without_storage(s) for s in drawn] == again
        stored = 0
        for sequence in drawn:
            standard = {s["id"] for s in sequence["steps"] if s["step"] == "open" and s.get("standard")}
            for step in _flat(sequence["steps"]):
                ops = _command(step)
                keys = {op.get("key", op.get("prefix", "")).split("/")[0] for op in ops if op["op"] in STORE_OPS}
                stored += bool(keys)
                assert not keys or (step["c"] not in standard and keys <= {step["c"], ""})
        assert stored > 50
        closing = [
            op
            for sequence in drawn
            for step in _flat(sequence["steps"])
            for on_close in [*step.get("ops", []), *_command(step)]
            if on_close["op"] == "on_close"
            for op in on_close["ops"]
            if op["op"] in STORE_OPS
        ]
        assert closing
        assert {op.get("key", op.get("prefix")) for op in closing} <= {"self/x", "self/y", "self/", ""}

    def test_no_storage_op_before_a_close_in_a_burst(self) -> None:
        """In a burst, a command's storage ops come after its ``close``: in workerd a ``close()``
        made after an awaited ``put()`` with two more of the burst's messages on their way gave
        the object's ``webSocketClose`` 1006 (not clean), where durable, and workerd with one
        message or with the ``close()`` first, got the client's answer (run_ws.py 150 --seed 9989,
        sequence 126; miniflare 4.20260426). That burst's first command is that case."""
        gen = Generator(9989)
        sequences = [gen.sequence() for _ in range(200)]
        burst = sequences[126]["steps"][10]
        assert burst["step"] == "burst"
        assert [op["op"] for op in _command(burst["steps"][0])][:2] == ["close", "tags"]
        for sequence in sequences:
            for step in sequence["steps"]:
                for inner in step["steps"] if step["step"] == "burst" else []:
                    kinds = [op["op"] for op in _command(inner)]
                    if "close" in kinds:
                        before = kinds[: len(kinds) - kinds[::-1].index("close")]
                        assert not set(before) & set(STORE_OPS)


def _flat(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [inner for step in steps for inner in (step["steps"] if step["step"] == "burst" else [step])]


def _command(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The ops a client's ``cmd:`` message carries ([] for any other step)."""
    data = step.get("data", {}).get("t", "") if step["step"] == "csend" else ""
    return json.loads(data[4:]) if isinstance(data, str) and data.startswith("cmd:") else []


def _without_storage(sequence: dict[str, Any]) -> dict[str, Any]:
    """``sequence`` with its awaited storage ops taken out."""

    def ops(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [op for op in items if op["op"] not in STORE_OPS]
        return [{**op, "ops": ops(op["ops"])} if op["op"] == "on_close" else op for op in kept]

    def step(s: dict[str, Any]) -> dict[str, Any]:
        if s["step"] == "burst":
            return {**s, "steps": [step(inner) for inner in s["steps"]]}
        if s["step"] == "srv":
            return {**s, "ops": ops(s["ops"])}
        if _command(s):
            return {**s, "data": {"t": "cmd:" + json.dumps(ops(_command(s)))}}
        return s

    return {**sequence, "steps": [step(s) for s in sequence["steps"]]}


def _arms_a_resetting_close(step: dict[str, Any]) -> bool:
    """Whether ``step`` (a call, or a client's command) sets close handler ops that reset."""
    ops = step.get("ops", [])
    data = step.get("data", {}).get("t", "")
    if step["step"] == "csend" and isinstance(data, str) and data.startswith("cmd:"):
        ops = json.loads(data[4:])
    return any(op["op"] == "on_close" and any(o["op"] == "abort" for o in op["ops"]) for op in ops)


class TestWithoutNode:
    def test_reports_missing_node(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without node on PATH, harness_missing() says so (and the workerd test skips)."""
        monkeypatch.setenv("PATH", "")
        assert harness_missing() == "node is not installed"
