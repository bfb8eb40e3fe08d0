"""The interleaving differential test: concurrent calls into one object, in workerd and in durable.

A case is ``{"backend": "sqlite" | "kv", "calls": [script, ...]}``: 2 to 6 calls fired together
into one object (``Promise.all`` of stub calls in ``worker.js``, ``asyncio.gather`` here), each
running a script of steps. A step is a storage call (``get``, ``put``, ``delete``, ``list`` (with bounds, a prefix,
``reverse`` or a ``limit`` sometimes),
and the forms of many keys ``get_many``, ``put_many``, ``delete_many``, awaited or not), an
``incr`` (the counter every example writes: ``await get("n")``, then ``await put("n", v + 1)``), an await that may let other events in (``resolved``: an already resolved
promise, ``timer``: a 0 ms timer, ``other``: a call to a second object), a ``bcw``
(``blockConcurrencyWhile``) or ``txn`` (``transaction()``) section running steps of its own, a
synchronous ``kv_get`` / ``kv_put`` / ``sql_put`` / ``sql_get`` / ``txn_sync`` (SQLite-backed
objects), or a ``throw`` (``sync``, ``await storage.sync()``, is never drawn: see ``_everyday``). Every step appends ``[call, step path, what it saw]`` to a log kept in the object's
memory; an operation not awaited logs ``"issued"``, and what it resolved to under the path
``"<path>~"`` once the script ends. The outcome compared is the log, each call's result, the order
the results reached the caller, and the storage left (key-value entries, and table ``t`` that the
SQL steps write).

Timers make some interleavings nondeterministic in workerd: ``outcome_in_workerd`` runs a case
several times there and reports whether it answered alike every time; only stable cases are
compared. ``run_interleave.py`` runs many by hand; ``tests/test_interleave_differential.py`` is the
test.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
from typing import Any

import durable

from .runner import Workerd

Step = dict[str, Any]
Case = dict[str, Any]

STORAGE_STEPS = ("get", "put", "delete", "list")
MANY_STEPS = {"get": "get_many", "put": "put_many", "delete": "delete_many"}
"""The form of many keys of each storage step (``Generator._many``)."""
COUNTER = "n"
"""The key ``incr`` steps count in (no other step writes it: a path there would not add up)."""
SYNC_STEPS = ("kv_get", "kv_put", "sql_put", "sql_get")
KEYS = ("a", "b", "c")


class Generator:
    """Draws cases from a seeded ``random.Random`` (the same seed gives the same cases)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.more = random.Random(f"more-{seed}")
        """The stream of ``_everyday``'s steps, so that the main one draws what it drew before."""
        self.wide = random.Random(f"many-{seed}")
        """The stream of ``_many``'s steps, so that the other two draw what they drew before."""
        self.bounds = random.Random(f"bounds-{seed}")
        """The stream of ``_bounded``'s list options, so that the others draw what they drew."""

    def case(self) -> Case:
        rng = self.rng
        backend = rng.choice(["sqlite", "sqlite", "kv"])
        calls = [self.steps(backend, "top", str(call), rng.randint(1, 5)) for call in range(rng.randint(2, 6))]
        return {"backend": backend, "calls": calls}

    def steps(self, backend: str, where: str, prefix: str, count: int) -> list[Step]:
        return [self.step(backend, where, f"{prefix}.{i}") for i in range(count)]

    def step(self, backend: str, where: str, path: str) -> Step:
        """One step of a script; ``where`` is ``top``, ``bcw`` or ``txn`` (what it runs inside)."""
        rng = self.rng
        kinds = [*STORAGE_STEPS, *STORAGE_STEPS, "resolved", "other", "other_err"]
        if backend == "sqlite":
            kinds += SYNC_STEPS
        if where == "top":
            # No timer inside a section: workerd holds the timers of other events while a
            # section runs, and one that awaits a timer itself waits with them until the 30 s
            # limit resets the object (docs/differences.md, "Timers of other events...").
            kinds += ["bcw", "txn", "throw", "timer"]
        elif where == "bcw":
            kinds += ["txn"]
        kind = rng.choice(kinds)
        step: Step = {"s": kind}
        if kind in ("get", "put", "delete", "kv_get", "kv_put", "sql_put"):
            step["key"] = rng.choice(KEYS)
        if kind in ("put", "kv_put", "sql_put"):
            step["value"] = path  # unique: shows who wrote what survived
        if kind in STORAGE_STEPS:
            # Inside a transaction every call is awaited (a txn call after the closure is an error).
            step["wait"] = where == "txn" or rng.random() < 0.7
        if kind in ("bcw", "txn"):
            step["steps"] = self.steps(backend, kind, path, rng.randint(1, 3))
        if kind == "txn":
            step["end"] = rng.choice(["commit", "commit", "rollback", "throw"])
        return self._bounded(self._many(self._everyday(backend, step, path), path))

    def _bounded(self, step: Step) -> Step:
        """``step``, or (from a stream of its own) a ``list`` with options: ``start``, ``end``,
        ``prefix``, ``reverse`` and ``limit``, over keys other calls write and delete meanwhile."""
        bounds = self.bounds
        if step["s"] != "list" or bounds.random() >= 0.5:
            return step
        options: dict[str, Any] = {}
        for name in ("start", "end", "prefix"):
            if bounds.random() < 0.3:
                options[name] = bounds.choice(["", "a", "b", "c", "d", COUNTER])
        if bounds.random() < 0.4:
            options["reverse"] = True
        if bounds.random() < 0.4:
            options["limit"] = bounds.choice([1, 2])
        return {**step, "options": options}

    def _many(self, step: Step, path: str) -> Step:
        """``step``, or (from a stream of its own, ``step`` drawn all the same) a storage call of
        many keys in its place (``get([...])``, ``put({...})``, ``delete([...])``, awaited as
        ``step`` was), or an ``incr`` in place of a ``get``."""
        wide = self.wide
        if step["s"] not in MANY_STEPS or wide.random() >= 0.3:
            return step
        if step["s"] == "get" and wide.random() < 0.4:
            return {"s": "incr"}
        keys = sorted(wide.sample(KEYS, wide.randint(1, 3)))
        many: Step = {"s": MANY_STEPS[step["s"]], "wait": step["wait"]}
        if step["s"] == "put":
            many["entries"] = [[key, f"{path}/{key}"] for key in keys]
        else:
            many["keys"] = keys
        return many

    def _everyday(self, backend: str, step: Step, path: str) -> Step:
        """``step``, or (drawn from a stream of its own, the main one's draws for ``step`` made all
        the same) a ``transactionSync()`` that writes a key and reads it back, committed or thrown
        out (SQLite-backed objects).

        Not ``await storage.sync()``: it suspends in both, and other events run meanwhile, but for
        how long is latency: workerd's took longer than a call to another object and back (both
        ran before it resumed, every time: ``run_interleave.py 60 --seed 9754``, cases 31 and 46,
        miniflare 4.20260426), durable's resumes on the next loop turn. The ``sync`` step is kept
        for cases written by hand."""
        more = self.more
        if more.random() < 0.05 and backend == "sqlite":
            return {"s": "txn_sync", "key": more.choice(KEYS), "value": path, "end": more.choice(["commit", "throw"])}
        return step


# -- the durable side --------------------------------------------------------------------------


UVLOOP_IDLE_TURNS = 200
"""Loop turns ``Timers`` lets pass on uvloop before it takes the loop for idle (see ``_tick``).
With 200, ``run_interleave.py 500 --seed 9403 --loop uvloop`` agreed with workerd on every case;
with none (a timer fired after one turn), 18 of the first 200 differed."""


class Timers:
    """0 ms timers as workerd's local runtime fires them: in the order they were set, each once
    nothing else is ready to run (its event loop polls timers only when idle; on uvloop, whose
    ready queue cannot be read, after ``UVLOOP_IDLE_TURNS`` turns).

    ``asyncio.sleep(0)`` resumes after one loop turn instead, which puts a timer before events
    that are still on their way (a stub call takes a few turns to arrive): a difference of latency,
    not of the gates, that would hide every other one (docs/differences.md).
    """

    def __init__(self) -> None:
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._stalled: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ticker: asyncio.Task[None] | None = None

    async def sleep(self) -> None:
        await self._idle(self._waiting)

    async def stalled(self) -> None:
        """Returns once nothing else is ready to run and no timer is waiting (``Turns`` gives up
        waiting for a call that is not coming)."""
        await self._idle(self._stalled)

    async def _idle(self, queue: collections.deque[asyncio.Future[None]]) -> None:
        loop = asyncio.get_running_loop()
        fired: asyncio.Future[None] = loop.create_future()
        queue.append(fired)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())
        await fired

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting or self._stalled:
            await asyncio.sleep(0)
            if not hasattr(loop, "_ready"):
                # uvloop's ready queue is not in Python's reach: as many turns as the longest
                # in-process chain of a case takes, with room to spare (a timer fired later than
                # idle sees the same: nothing else runs in between, the workerd side is done).
                for _ in range(UVLOOP_IDLE_TURNS):
                    await asyncio.sleep(0)
            if not getattr(loop, "_ready", None):
                fired = (self._waiting or self._stalled).popleft()
                if not fired.done():  # (a stalled() given up by Turns is cancelled)
                    fired.set_result(None)


class Turns:
    """The order in which workerd's run of a case resumed the calls to the other object, replayed
    by the other object answering in that order (its latency, which the gates do not decide).

    workerd (miniflare 4.20260426, /tmp/contract-mf/hunt-interleave-5.mjs) sends the calls to
    another object that the output gate held for a write in the order they were made, but a call
    made by an event that arrived once the commit was done goes out at once, ahead of them: with
    events 0-4 each calling object B and event w writing first, B got ``2,0,1,3,4`` (w=0),
    ``0,3,1,2,4`` (w=1), ``0,1,4,2,3`` (w=2), every time. Which events arrive before the commit
    ends is latency (on Cloudflare, the storage's and the network's), and so is the order in which
    the results come back; but what the calls see afterwards depends on it (a call resumed first
    runs a ``block_concurrency_while`` whose writes the other then lists), so ``canonical_log``
    cannot leave it out. Replaying it lets everything after it be compared exactly. A call that
    durable does not make (or whose caller cannot resume) while the next waits is given up once
    nothing else is ready to run and no timer waits, so a real difference shows instead of a hang.
    """

    def __init__(self, order: list[int]) -> None:
        self._order = collections.deque(order)
        self._waiting: dict[int, asyncio.Future[None]] = {}

    async def turn(self, call: int) -> None:
        """Waits until the call (to the other object, by script ``call``) is the next to answer:
        until the calls ahead of it have resumed in their callers (how long a result takes to get
        back differs: in durable an error overtakes a result answered a turn before it)."""
        while call in self._order and self._order[0] != call:
            head = asyncio.get_running_loop().create_future()
            self._waiting[call] = head
            stalled = asyncio.ensure_future(TIMERS.stalled())
            await asyncio.wait([head, stalled], return_when=asyncio.FIRST_COMPLETED)
            stalled.cancel()
            self._waiting.pop(call, None)
            if not head.done():  # durable is not resuming the calls ahead of it: stop waiting
                self._order.remove(call)
                self._order.appendleft(call)

    def resumed(self, call: int) -> None:
        """The caller resumed after the other object answered ``call``: the next may answer."""
        if call in self._order:
            self._order.remove(call)
        if self._order and self._order[0] in self._waiting:
            self._waiting[self._order[0]].set_result(None)


TURNS: dict[str, Turns] = {}
"""The ``Turns`` of the other object of each case being run, by its name."""


class Scripted(durable.DurableObject):
    """Runs scripts (the counterpart of ``Harness.script`` in ``worker.js``)."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.log: list[list[Any]] = []
        self.other = ""

    async def script(self, script_json: str) -> dict[str, str]:
        script = json.loads(script_json)
        self.other = script["other"]
        pending: list[tuple[str, Any]] = []
        await self._steps(script["call"], "", script["steps"], self.ctx.storage, pending)
        for at, awaitable in pending:
            self.log.append([script["call"], f"{at}~", _seen(await awaitable)])
        return {"ok": "done"}

    async def ping(self, call: int) -> str:
        await self._turn(call)
        return f"pong {call}"

    async def fail(self, call: int) -> None:
        await self._turn(call)
        raise RuntimeError(f"failed {call}")

    async def _turn(self, call: int) -> None:
        turns = TURNS.get(self.ctx.id.name or "")
        if turns is not None:
            await turns.turn(call)

    def _resumed(self, call: int) -> None:
        turns = TURNS.get(self.other)
        if turns is not None:
            turns.resumed(call)

    async def dump(self) -> str:
        storage = self.ctx.storage
        sql: Any = None
        try:
            sql = [list(row) for row in storage.sql.exec("SELECT k, v FROM t ORDER BY k").raw()]
        except Exception:
            pass
        kv = [[k, v] for k, v in (await storage.list()).items()]
        return json.dumps({"log": self.log, "kv": kv, "sql": sql})

    async def _steps(self, call: int, prefix: str, steps: list[Step], target: Any, pending: list[Any]) -> None:
        for i, step in enumerate(steps):
            await self._step(call, f"{prefix}{i}", step, target, pending)

    async def _step(self, call: int, at: str, step: Step, target: Any, pending: list[Any]) -> None:
        storage = self.ctx.storage
        kind = step["s"]

        def log(seen: Any) -> None:
            self.log.append([call, at, seen])

        if kind in STORAGE_STEPS:
            if kind == "get":
                awaitable = target.get(step["key"])
            elif kind == "put":
                awaitable = target.put(step["key"], step["value"])
            elif kind == "delete":
                awaitable = target.delete(step["key"])
            else:
                awaitable = target.list(**step.get("options", {}))
            if step["wait"]:
                log(_seen(await awaitable))
            else:
                log("issued")
                pending.append((at, awaitable))
        elif kind in MANY_STEPS.values():
            if kind == "get_many":
                awaitable = target.get(step["keys"])
            elif kind == "put_many":
                awaitable = target.put(dict(step["entries"]))
            else:
                awaitable = target.delete(step["keys"])
            if step["wait"]:
                log(_seen(await awaitable))
            else:
                log("issued")
                pending.append((at, awaitable))
        elif kind == "incr":
            stored = await target.get(COUNTER)
            value = 0 if stored is None else stored
            await target.put(COUNTER, value + 1)
            log(value)
        elif kind == "resolved":
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            await done
            log("resumed")
        elif kind == "timer":
            await TIMERS.sleep()
            log("resumed")
        elif kind == "other":
            log(await self.env.ISQLITE.get_by_name(self.other).ping(call))
            self._resumed(call)
        elif kind == "other_err":
            try:
                await self.env.ISQLITE.get_by_name(self.other).fail(call)
            except Exception as exc:
                log(f"caught {exc}")
            self._resumed(call)
        elif kind == "bcw":

            async def section() -> str:
                await self._steps(call, f"{at}.", step["steps"], storage, pending)
                return "bcw-done"

            log(await self.ctx.block_concurrency_while(section))
        elif kind == "txn":

            async def closure(txn: durable.Transaction) -> str:
                await self._steps(call, f"{at}.", step["steps"], txn, pending)
                if step["end"] == "rollback":
                    txn.rollback()
                if step["end"] == "throw":
                    raise RuntimeError("txn-boom")
                return "txn-done"

            try:
                log(await storage.transaction(closure))
            except Exception as exc:
                log(f"caught {exc}")
        elif kind == "kv_get":
            log(storage.kv.get(step["key"]))
        elif kind == "kv_put":
            storage.kv.put(step["key"], step["value"])
            log("kv-put")
        elif kind == "sql_put":
            storage.sql.exec("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v)")
            storage.sql.exec("INSERT OR REPLACE INTO t VALUES (?, ?)", step["key"], step["value"])
            log("sql-put")
        elif kind == "sql_get":
            storage.sql.exec("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v)")
            log([list(row) for row in storage.sql.exec("SELECT k, v FROM t ORDER BY k").raw()])
        elif kind == "sync":
            await storage.sync()
            log("synced")
        elif kind == "txn_sync":

            def body() -> Any:
                storage.kv.put(step["key"], step["value"])
                if step["end"] == "throw":
                    raise RuntimeError("sync-boom")
                return storage.kv.get(step["key"])

            try:
                log(storage.transaction_sync(body))
            except Exception as exc:
                log(f"caught {exc}")
        elif kind == "throw":
            raise RuntimeError(f"boom {call} {at}")
        else:
            raise ValueError(f"unknown step {kind!r}")


TIMERS = Timers()


def _seen(value: Any) -> Any:
    """What a storage call resolved to, as worker.js logs it (a list() as its entries)."""
    if isinstance(value, dict):
        return [[k, v] for k, v in value.items()]
    return value


class DurableSide:
    """Runs cases in objects of a ``durable.Runtime``."""

    def __init__(self, runtime: durable.Runtime) -> None:
        self._namespaces = {
            "sqlite": runtime.namespace(Scripted, name="ISQLITE", storage="sqlite"),
            "kv": runtime.namespace(Scripted, name="IKV", storage="kv"),
        }

    async def outcome(self, case: Case, name: str, workerd: dict[str, Any] | None = None) -> dict[str, Any]:
        """The case's outcome here; with ``workerd``'s outcome, the other object answers in the
        order workerd resumed its calls (``Turns``)."""
        stub: Any = self._namespaces[case["backend"]].get_by_name(name)
        arrivals: list[int] = []
        if workerd is not None and isinstance(workerd.get("log"), list):
            TURNS[f"{name}/other"] = Turns(other_calls(case, workerd["log"]))

        async def one(call: int, steps: list[Step]) -> Any:
            try:
                result = await stub.script(json.dumps({"call": call, "steps": steps, "other": f"{name}/other"}))
            except Exception as exc:
                result = {"err": str(exc)}
            arrivals.append(call)
            return result

        try:
            results = await asyncio.gather(*(one(call, steps) for call, steps in enumerate(case["calls"])))
        finally:
            TURNS.pop(f"{name}/other", None)
        state = json.loads(await stub.dump())
        return {"results": list(results), "arrivals": arrivals, **state}


def outcome_in_workerd(workerd: Workerd, case: Case, name: str, repeats: int) -> tuple[dict[str, Any], bool]:
    """The case's outcome in workerd, run ``repeats`` times (in fresh objects), and whether it was
    stable. Raises RuntimeError, with workerd's answer, when the harness or the Worker itself
    failed (``{"err": ...}`` from ``harness.mjs``, ``{"crashed": ...}`` from ``worker.js``): that
    answer has no outcome to compare, however alike the runs were."""
    outcomes = [
        workerd.request({"backend": case["backend"], "object": f"{name}-r{r}", "interleave": case})
        for r in range(repeats)
    ]
    for outcome in outcomes:
        if not isinstance(outcome, dict) or "err" in outcome or "crashed" in outcome:
            raise RuntimeError(f"the workerd call failed: {json.dumps(outcome)[:2000]}")
    stable = all(o == outcomes[0] for o in outcomes[1:])
    return outcomes[0], stable


FIELDS = ("log", "results", "kv", "sql")
"""The fields compared. ``arrivals`` is not: workerd releases the results held by one commit in
another order than durable (an error before the results released with it; measured with
miniflare 4.20260426: a call that threw right after another's 90 MB of writes arrived first but
in the same millisecond as the other's result, so it was held by the commit too). The order the
caller's callbacks run in, within one release, is latency, not a gate."""


RESUMING = frozenset({"timer", "other", "other_err"})
"""Steps whose log entry is written when the call resumes after an await that opens the gate (an
already resolved promise opens nothing: workerd runs only its own microtasks there, and durable
does not suspend)."""


def _kind(case: Case, call: int, path: str) -> str:
    steps: Any = case["calls"][call]
    step: Step = {"s": "pending"}
    if path.endswith("~"):
        return "pending"
    for index in path.split("."):
        step = steps[int(index)]
        steps = step.get("steps", [])
    return str(step["s"])


def other_calls(case: Case, log: list[list[Any]]) -> list[int]:
    """The calls whose calls to the other object resumed, in the log's order (one per such step)."""
    return [entry[0] for entry in log if _kind(case, entry[0], entry[1]) in ("other", "other_err")]


def canonical_log(case: Case, log: list[list[Any]]) -> list[list[list[Any]]]:
    """The log as segments (what one call ran between two suspensions), where the order of
    consecutive segments that each start where a call resumed after a timer or a call to another
    object is left out.

    Results of calls to other objects that are in flight together come back in an order the gates
    do not decide (workerd, miniflare 4.20260426, releases two calls held by one commit in either
    order: their latency, which on Cloudflare is the network's), and timers set after them follow
    that order. The segments must still be the same, each whole: an event that got in while a
    gate was closed splits one, and what each step saw shows the order of the writes.
    """
    segments: list[list[list[Any]]] = []
    starts: list[bool] = []
    for entry in log:
        call, path = entry[0], entry[1]
        kind = _kind(case, call, path)
        if not segments or segments[-1][-1][0] != call or kind in RESUMING:
            segments.append([])
            starts.append(kind in RESUMING)
        segments[-1].append(entry)
    out: list[list[list[Any]]] = []
    run: list[list[list[Any]]] = []
    for segment, resumed in zip(segments, starts, strict=True):
        if resumed:
            run.append(segment)
            continue
        out += sorted(run, key=json.dumps)
        run = []
        out.append(segment)
    return out + sorted(run, key=json.dumps)


def differences(case: Case, workerd: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """The fields of two outcomes that differ, each with both values (the logs as ``canonical_log``)."""
    found = []
    for field in FIELDS:
        w, d = workerd.get(field), got.get(field)
        if field == "log" and w is not None and d is not None:
            same = canonical_log(case, w) == canonical_log(case, d)
        else:
            same = w == d
        if not same:
            found.append(f"{field}:\n    workerd: {json.dumps(w)}\n    durable: {json.dumps(d)}")
    return found
