"""Both executors of the differential test, and the op-by-op comparison.

``Workerd`` drives ``harness.mjs`` (real workerd, through npm's ``miniflare``) over stdio;
``DurableSide`` runs the same op lists in an in-memory ``durable.Runtime``. ``compare`` runs one
sequence on both and returns its differences after ``allowances.normalize``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import durable

from . import allowances, codec
from .ops import Op, Sequence

HERE = Path(__file__).resolve().parent
TIMEOUT = 60.0
"""Seconds to wait for workerd to start or to answer one call before giving up."""


def harness_missing() -> str | None:
    """Why workerd cannot run here (no ``node``, or ``npm install`` not run), or ``None``."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "miniflare" / "package.json").exists():
        return f"miniflare is not installed: run `npm install --prefix {HERE}`"
    return None


LOOPS = ("asyncio", "uvloop")
"""The event loops a runner's ``--loop`` can choose: asyncio's own, or uvloop's (``durable serve``'s default)."""


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """Gives a runner's command line the ``--loop`` option that ``run_main`` reads."""
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="event loop durable runs on (default asyncio; uvloop as `durable serve` uses where installed)",
    )


def run_main(main: Coroutine[Any, Any, int], loop: str = "asyncio") -> int:
    """Runs a runner's ``main`` on the event ``loop`` named (see ``LOOPS``) and returns its exit code;
    exits 2 with a message naming the package when ``uvloop`` is asked for and not installed."""
    if loop not in LOOPS:
        main.close()
        raise ValueError(f"unknown event loop {loop!r}: choose one of {', '.join(LOOPS)}")
    factory = asyncio.new_event_loop
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            main.close()
            print("cannot run: --loop uvloop needs uvloop: pip install uvloop", file=sys.stderr)
            return 2
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def started_or_skipped(test: str = "storage") -> Iterator[Workerd]:
    """The body of a test module's ``workerd`` fixture: a running harness with the ``test``'s
    Worker for the module's tests, closed after them; they skip, saying why, where workerd cannot run."""
    import pytest  # only the tests need it, not run.py and its siblings

    missing = harness_missing()
    if missing is not None:
        pytest.skip(f"workerd is not available: {missing}")
    harness = Workerd(test)
    try:
        yield harness
    finally:
        harness.close()


class Workerd:
    """A running ``harness.mjs`` with the Worker of one differential ``test`` ("storage", the
    default, which serves the RPC and interleaving tests too; "ws"; "alarm"): one workerd process
    serving calls, until ``close()``."""

    def __init__(self, test: str = "storage") -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the harness
        self._proc = subprocess.Popen(
            ["node", str(HERE / "harness.mjs"), test],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = json.loads(self._next_line())
        self.version: str = ready["miniflare"]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                self._lines.put(line)
        finally:
            self._lines.put("")

    def _next_line(self) -> str:
        try:
            line = self._lines.get(timeout=TIMEOUT)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"workerd did not answer within {TIMEOUT} s") from None
        if not line:
            code = self._proc.wait()
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(f"the workerd harness exited (code {code}):\n{tail}")
        return line

    def call(self, backend: str, obj: str, ops: list[Op]) -> list[Any]:
        """Run ``ops`` in the object named ``obj`` of the ``backend`` class; one result per op."""
        answer = self.request({"backend": backend, "object": obj, "ops": ops})
        if isinstance(answer, dict):
            raise RuntimeError(f"the workerd call failed: {answer}")
        results: list[Any] = answer
        return results

    def request(self, payload: dict[str, Any]) -> Any:
        """Send one request line to the harness (see ``harness.mjs``); its decoded answer."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(payload) + "\n")
        self._proc.stdin.flush()
        line = self._next_line()
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            # (run_alarm.py 100 --seed 9849 --resets once read a line that was not JSON)
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(f"the workerd harness answered {line[:500]!r}, not JSON:\n{tail}") from None

    def close(self) -> None:
        """Stop the harness (and its workerd)."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(OSError):  # (a harness that exited leaves a broken pipe)
            proc.stdin.close()  # closed in every case: it ends a running harness
        if proc.poll() is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reader.join(timeout=10)
        proc.stdout.close()
        self._stderr.close()


# -- the durable side --------------------------------------------------------------------------


class Boom(Exception):
    """What a transaction closure raises to make it fail (``Boom`` on both sides)."""


ERROR_NAMES: dict[type[BaseException], str] = {
    Boom: "Boom",
    durable.DataCloneError: "DataCloneError",
    durable.SqlError: "Error",
    durable.StorageLimitError: "Error",
    durable.InvalidTransactionError: "Error",
    TypeError: "TypeError",
    durable.DurableError: "Error",  # e.g. "SQL is not enabled for this Durable Object class."
}
"""The JavaScript error name each exception class stands for (allowance ``error-classes``)."""


def _failure(exc: BaseException) -> dict[str, Any]:
    name = next((n for cls, n in ERROR_NAMES.items() if isinstance(exc, cls)), type(exc).__name__)
    return {"err": {"name": name, "message": str(exc)}}


OPTION_NAMES = {"allowConcurrency": "allow_concurrency", "allowUnconfirmed": "allow_unconfirmed", "noCache": "no_cache"}
"""An op's ``opts`` (JavaScript's names) as durable's keyword options."""


def _list_options(options: dict[str, Any]) -> dict[str, Any]:
    return dict(options)


def _entries(items: Any) -> list[list[Any]]:
    return [[k, codec.encode(v)] for k, v in items]


def _sync(storage: durable.Storage, op: Op) -> Any:
    kind = op["op"]
    if kind == "txn_sync":
        inner: list[Any] = []

        def closure() -> str:
            for sub in op["ops"]:
                inner.append(_step_sync(storage, sub))
            if op["end"] == "throw":
                raise Boom("boom")
            return "done"

        return {"inner": inner, "value": storage.transaction_sync(closure)}
    if kind == "kv_get":
        return codec.encode(storage.kv.get(op["key"]))
    if kind == "kv_put":
        storage.kv.put(op["key"], codec.decode(op["value"]))
        return None
    if kind == "kv_delete":
        return storage.kv.delete(op["key"])
    if kind == "kv_list":
        return _entries(storage.kv.list(**_list_options(op["options"])))
    if kind == "sql":
        cursor = storage.sql.exec(op["query"], *(codec.cell_from_json(c) for c in op["bindings"]))
        rows = [[codec.cell_to_json(c) for c in row] for row in cursor.raw()]
        return {
            "columns": cursor.column_names,
            "rows": rows,
            "rowsRead": cursor.rows_read,
            "rowsWritten": cursor.rows_written,
        }
    if kind == "sql_cursor":
        return _cursor_op(storage, op)
    raise ValueError(f"unknown op {kind!r}")


def _row_entries(row: Any) -> list[list[Any]]:
    return [[k, codec.cell_to_json(c)] for k, c in row.items()]


_kept_cursors: contextvars.ContextVar[list[durable.SqlCursor]] = contextvars.ContextVar("kept_cursors")
"""The cursors of the object running (``Harness.run`` sets the instance's own list), each kept as
long as its instance lives, as worker.js keeps them: a cursor not read to its end holds its
statement open, and a DROP TABLE or DROP INDEX meanwhile fails with ``SQLITE_LOCKED``, until V8
collects it there, or at once here when nothing refers to it (run.py --seed 10147, sequence 16)."""


def _cursor_op(storage: durable.Storage, op: Op) -> Any:
    """One way of reading a cursor (``op["mode"]``), as ``cursorOp`` in worker.js."""
    cursor = storage.sql.exec(op["query"], *(codec.cell_from_json(c) for c in op["bindings"]))
    _kept_cursors.get().append(cursor)

    def meta() -> dict[str, Any]:
        return {"columns": cursor.column_names, "rowsRead": cursor.rows_read, "rowsWritten": cursor.rows_written}

    mode = op["mode"]
    if mode == "toArray":
        return {"rows": [_row_entries(r) for r in cursor.to_array()], **meta()}
    if mode == "one":
        return {"row": _row_entries(cursor.one()), **meta()}
    if mode == "unread":
        return meta()
    if mode == "next":
        first = next(cursor, None)
        before = meta()
        rest = [[codec.cell_to_json(c) for c in row] for row in list(cursor.raw())]
        again = next(cursor, None) is None
        entries = None if first is None else _row_entries(first)
        return {"first": entries, "before": before, "rest": rest, "again": again, **meta()}
    if mode == "twice":
        rows = [[codec.cell_to_json(c) for c in row] for row in list(cursor.raw())]
        return {"rows": rows, "again": len(cursor.to_array()), **meta()}
    raise ValueError(f"unknown mode {mode!r}")


def _step_sync(storage: durable.Storage, op: Op) -> Any:
    try:
        return {"ok": _sync(storage, op)}
    except Exception as exc:
        return _failure(exc)


async def _execute(storage: durable.Storage, target: Any, op: Op) -> Any:
    kind = op["op"]
    opts = {OPTION_NAMES[name]: value for name, value in op.get("opts", {}).items()}
    if kind == "get":
        return codec.encode(await target.get(op["key"], **opts))
    if kind == "get_many":
        return _entries((await target.get(op["keys"], **opts)).items())
    if kind == "put":
        done = target.put(op["key"], codec.decode(op["value"]), **opts)
        if op.get("wait", True):
            await done  # not awaited: the write still applies, at once
        return None
    if kind == "put_many":
        await target.put({k: codec.decode(v) for k, v in op["entries"]}, **opts)
        return None
    if kind in ("delete", "delete_many"):
        deleted = target.delete(op["key"] if kind == "delete" else op["keys"], **opts)
        if not op.get("wait", True):
            return None  # not awaited: the delete still applies, at once (as in worker.js)
        return await deleted
    if kind == "delete_all":
        await target.delete_all()
        return None
    if kind == "list":
        return _entries((await target.list(**_list_options(op["options"]), **opts)).items())
    if kind == "get_alarm":
        return await target.get_alarm(**opts)
    if kind == "set_alarm":
        await target.set_alarm(op["time"], **opts)
        return None
    if kind == "delete_alarm":
        await target.delete_alarm(**opts)
        return None
    if kind == "sync":
        await storage.sync()
        return None
    if kind == "all":  # Promise.all of steps (each catches its own error), as in worker.js
        return list(await asyncio.gather(*(_step(storage, target, sub) for sub in op["ops"])))
    if kind == "txn":
        inner: list[Any] = []
        after: list[Any] = []  # calls on the ended txn (worker.js)
        kept: list[durable.Transaction] = []

        async def closure(txn: durable.Transaction) -> str:
            kept.append(txn)
            for sub in op["ops"]:
                inner.append(await _step(storage, txn if op["via"] == "txn" else storage, sub))
            if op["end"] == "rollback":
                txn.rollback()
                for sub in op.get("after", []):
                    after.append(await _step(storage, storage if op.get("afterVia") == "storage" else txn, sub))
            if op["end"] == "throw":
                raise Boom("boom")
            return "done"

        value = await storage.transaction(closure)
        if op["end"] == "commit":
            for sub in op.get("after", []):
                after.append(await _step(storage, storage if op.get("afterVia") == "storage" else kept[0], sub))
        return {"inner": inner, "value": value, "after": after} if "after" in op else {"inner": inner, "value": value}
    return _sync(storage, op)


async def _step(storage: durable.Storage, target: Any, op: Op) -> Any:
    try:
        return {"ok": await _execute(storage, target, op)}
    except Exception as exc:
        return _failure(exc)


class Harness(durable.DurableObject):
    """The object that runs op lists in ``durable`` (the counterpart of ``worker.js``)."""

    async def run(self, ops_json: str) -> str:
        ops = json.loads(ops_json)
        if ops == [{"op": "restart"}]:
            self.ctx.abort("restart")
        self.calls = getattr(self, "calls", 0) + 1
        self.cursors: list[durable.SqlCursor] = getattr(self, "cursors", [])
        _kept_cursors.set(self.cursors)
        storage = self.ctx.storage
        # "calls": how many calls this instance has served, which shows when a restart happened.
        results = [{"ok": self.calls} if op["op"] == "calls" else await _step(storage, storage, op) for op in ops]
        return json.dumps(results)

    async def alarm(self) -> None:
        pass


class DurableSide:
    """The same calls as ``Workerd.call``, made to objects of an in-memory ``durable.Runtime``."""

    def __init__(self, runtime: durable.Runtime) -> None:
        self._namespaces = {
            "sqlite": runtime.namespace(Harness, name="Sqlite", storage="sqlite"),
            "kv": runtime.namespace(Harness, name="Kv", storage="kv"),
        }

    async def call(self, backend: str, obj: str, ops: list[Op]) -> list[Any]:
        """Run ``ops`` in the object named ``obj`` of the ``backend`` class; one result per op."""
        stub: Any = self._namespaces[backend].get_by_name(obj)
        try:
            answer = await stub.run(json.dumps(ops))
        except durable.ObjectAbortedError:
            if ops == [{"op": "restart"}]:
                return [{"ok": None}]  # the next call gets a new instance, as in worker.js
            raise
        results: list[Any] = json.loads(answer)
        return results


# -- comparing -----------------------------------------------------------------------------------


@dataclass
class Difference:
    """The first op of a sequence whose normalized results differ."""

    sequence: Sequence
    call: int
    index: int
    op: Op
    workerd: Any
    durable: Any

    def __str__(self) -> str:
        return (
            f"{self.sequence['backend']} class, call {self.call}, op {self.index}: "
            f"{json.dumps(self.op)}\n  workerd: {json.dumps(self.workerd)}\n  durable: {json.dumps(self.durable)}"
        )

    def reproduction(self) -> str:
        """The calls up to and including the differing op, as JSON (feed it to either side)."""
        calls = [*self.sequence["calls"][: self.call], self.sequence["calls"][self.call][: self.index + 1]]
        return json.dumps({"backend": self.sequence["backend"], "calls": calls})


def same(a: Any, b: Any) -> bool:
    """JSON equality where ``1`` equals ``1.0`` (JavaScript prints both as ``1``) but not ``True``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


async def compare(
    sequence: Sequence, name: str, workerd: Workerd, side: DurableSide, lifted: frozenset[str] = frozenset()
) -> Difference | None:
    """Run ``sequence`` in a fresh object called ``name`` on both sides; the first difference, if any.

    ``lifted`` names open defects (``allowances.OPEN``) not to normalize away.
    """
    backend = sequence["backend"]
    for number, ops in enumerate(sequence["calls"]):
        expected = await asyncio.to_thread(workerd.call, backend, name, ops)
        got = await side.call(backend, name, ops)
        for index, op in enumerate(ops):
            w = allowances.normalize(op, expected[index], lifted)
            d = allowances.normalize(op, got[index], lifted)
            if not same(w, d):
                return Difference(sequence, number, index, op, w, d)
    return None


def workerd_available() -> bool:
    """Whether the harness can start (see ``harness_missing``)."""
    return harness_missing() is None and os.environ.get("DURABLE_DIFFERENTIAL", "1") != "0"
