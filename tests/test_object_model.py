"""One object's whole storage surface against a plain Python model (a Hypothesis state machine).

The other model tests each look at one part: ``test_database_model`` the write buffer under the
storage layer, ``test_storage_model`` the async key-value calls without options, transactions or
SQL, ``test_transaction_model`` transactions interleaved, ``test_interleaving_model`` counters
under concurrency. This one drives a whole object, through RPC, with random programs mixing
everything an object does with its storage, and after every step compares the object with a
model (a dict of keys, a dict of SQL rows, the alarm):

- key-value ``get``/``put``/``delete`` single and batched, ``list`` with its options, each with
  random ``allow_concurrency``/``allow_unconfirmed``/``no_cache`` options; un-awaited puts;
- the synchronous ``ctx.storage.kv`` API and SQL (insert, update, delete, select);
- ``transaction()`` that commits, raises or calls ``rollback()``, and ``transaction_sync()`` that
  returns or raises, with writes of every kind inside (only what committed stays);
- ``delete_all()``, ``set_alarm``/``delete_alarm``/``get_alarm``, alarms firing (a mock clock);
- several calls at once (``asyncio.gather``, each on keys and rows of its own);
- eviction, a failing commit (``testing.fail_next_commit``: the call fails with a reset error and
  nothing of it stays), ``rt.reset()``, and closing and reopening the runtime on its directory.

Everything acknowledged must be there after eviction and reopening; nothing rolled back may be.
Both backends run (``storage="kv"`` without SQL and the synchronous API).

A longer run: ``DURABLE_MODEL_EXAMPLES=2000 pytest tests/test_object_model.py`` (the default keeps
the file to a few seconds in CI).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import durable
from durable import testing

from helpers import settle

EXAMPLES = int(os.environ.get("DURABLE_MODEL_EXAMPLES", "25"))
START = 1_700_000_000.0
"""The mock clock's start (seconds)."""
FIRED = "!fired"
"""The key the alarm handler counts its successful runs in."""
TRIES = "!tries"
"""The key the alarm handler counts its attempts in (a failed attempt's write stays, an aborted one's not)."""
PLAN = "!plan"
"""What the alarm handler does at each attempt ("ok", "raise" or "abort"), "ok" past the list's end."""


class Boom(Exception):
    """Raised by a program on purpose (a transaction's closure whose outcome is "raise")."""


# -- values, keys, options -------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.binary(max_size=6),
)
values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(max_size=3), inner, max_size=3),
            st.tuples(inner, inner),
            st.frozensets(st.integers(-3, 3), max_size=3),
        ),
        max_leaves=6,
    ),
    st.sampled_from(["x" * 3000, b"\x00" * 5000]),  # past the read cache's largest value
)
keys = st.text(alphabet=st.sampled_from(["a", "b", "é", "\x00", "\U0001f600"]), max_size=2)
key_lists = st.lists(keys, max_size=4)
get_options = st.fixed_dictionaries({}, optional={"allow_concurrency": st.booleans(), "no_cache": st.booleans()})
put_options = st.fixed_dictionaries(
    {}, optional={"allow_concurrency": st.booleans(), "allow_unconfirmed": st.booleans(), "no_cache": st.booleans()}
)
list_options = st.fixed_dictionaries(
    {},
    optional={
        "start": keys,
        "end": keys,
        "prefix": keys,
        "reverse": st.booleans(),
        "limit": st.integers(min_value=1, max_value=4),
        "no_cache": st.booleans(),
    },
) | st.fixed_dictionaries({"start_after": keys}, optional={"reverse": st.booleans(), "end": keys})
row_ids = st.integers(min_value=0, max_value=5)
texts = st.text(alphabet="xyz\x00é", max_size=3)
alarm_offsets = st.integers(min_value=1, max_value=9_000)
"""An alarm's time, in ms after the clock's present."""

async_leaf = st.one_of(
    st.tuples(st.just("put"), keys, values, put_options),
    st.tuples(st.just("put_many"), st.dictionaries(keys, values, max_size=3), put_options),
    st.tuples(st.just("unawaited_put"), keys, values),
    st.tuples(st.just("get"), keys, get_options),
    st.tuples(st.just("get_many"), key_lists, get_options),
    st.tuples(st.just("delete"), keys, put_options),
    st.tuples(st.just("delete_many"), key_lists, put_options),
    st.tuples(st.just("list"), list_options),
    st.tuples(st.just("set_alarm"), alarm_offsets),
    st.tuples(st.just("delete_alarm")),
    st.tuples(st.just("get_alarm")),
)
sync_leaf = st.one_of(
    st.tuples(st.just("kv_put"), keys, values),
    st.tuples(st.just("kv_get"), keys),
    st.tuples(st.just("kv_delete"), keys),
    st.tuples(st.just("kv_list"), list_options.map(lambda o: {k: v for k, v in o.items() if k != "no_cache"})),
    st.tuples(st.just("sql_put"), row_ids, texts),
    st.tuples(st.just("sql_delete"), row_ids),
    st.tuples(st.just("sql_append"), texts),
    st.tuples(st.just("sql_select")),
)
outcomes = st.sampled_from(["commit", "raise", "rollback"])
BAD = ("uncloneable", "too_big", "surrogate_key", "not_a_key", "unknown_option", "delete_all_in_txn")
bad_leaf = st.one_of(
    st.tuples(st.just("bad"), st.sampled_from(BAD), keys, values),
    st.tuples(st.just("cycle"), keys, values),
    st.tuples(st.just("sync")),
)
SQL_BAD = ("syntax", "multi", "constraint", "huge_int", "bindings", "kv_too_big", "kv_surrogate")
sql_bad_leaf = st.tuples(st.just("bad"), st.sampled_from(SQL_BAD), keys, values)
ERRORS = {
    "uncloneable": "DataCloneError",
    "too_big": "StorageLimitError",
    "surrogate_key": "TypeError",
    "not_a_key": "TypeError",
    "unknown_option": "TypeError",
    "delete_all_in_txn": "InvalidTransactionError",
    "syntax": "SqlError",
    "multi": "SqlError",
    "constraint": "SqlError",
    "huge_int": "OverflowError",
    "bindings": "SqlError",
    "kv_too_big": "StorageLimitError",
    "kv_surrogate": "TypeError",
}
"""What each bad step raises (the object catches it: nothing of the step may stay)."""


def programs(sql: bool) -> st.SearchStrategy[list[Any]]:
    """Random programs: lists of steps, transactions holding steps (nested once)."""
    leaf = st.one_of(async_leaf, sync_leaf, bad_leaf, sql_bad_leaf) if sql else st.one_of(async_leaf, bad_leaf)
    inner = st.one_of(leaf, st.tuples(st.just("txn"), outcomes, st.lists(leaf, max_size=3)))
    steps = [leaf, st.tuples(st.just("txn"), outcomes, st.lists(inner, max_size=4))]
    if sql:
        steps.append(st.tuples(st.just("txn_sync"), st.booleans(), st.lists(sync_leaf, max_size=4)))
    return st.lists(st.one_of(*steps), min_size=1, max_size=6)


# -- comparing values by type, not only by ==  -------------------------------------------------


def typed(value: Any) -> Any:
    """``value`` with every part tagged by its type: 1, 1.0 and True differ, so do -0.0 and 0.0."""
    if isinstance(value, float):
        return ("float", math.copysign(1, value), abs(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(map(repr, map(typed, value))))
    return (type(value).__name__, value)


# -- the object ------------------------------------------------------------------------------


def sql_ready(storage: durable.Storage) -> None:
    storage.sql.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")


def run_sync_step(storage: durable.Storage, step: Any) -> Any:
    kind = step[0]
    if kind == "kv_put":
        return storage.kv.put(step[1], step[2])
    if kind == "kv_get":
        return storage.kv.get(step[1])
    if kind == "kv_delete":
        return storage.kv.delete(step[1])
    if kind == "kv_list":
        return list(storage.kv.list(**step[1]))
    sql_ready(storage)
    if kind == "sql_put":
        return storage.sql.exec("INSERT OR REPLACE INTO t VALUES (?, ?)", step[1], step[2]).rows_written
    if kind == "sql_delete":
        return storage.sql.exec("DELETE FROM t WHERE id = ?", step[1]).rows_written
    if kind == "sql_append":
        return storage.sql.exec("UPDATE t SET v = v || ?", step[1]).rows_written
    if kind == "sql_select":
        return [tuple(r) for r in storage.sql.exec("SELECT id, v FROM t ORDER BY id").raw()]
    raise AssertionError(kind)


def run_bad_step(storage: Any, step: Any) -> Any:
    """A step that must fail with a clear error and change nothing (``ERRORS`` names the error)."""
    _, how, key, value = step
    if how == "uncloneable":
        return storage.put({key: value, key + "~": object()})
    if how == "too_big":
        return storage.put({key: value, key + "~": "x" * 3_000_000})
    if how == "surrogate_key":
        return storage.put({key: value, key + "\ud800": value})
    if how == "not_a_key":
        return storage.delete([key, 5])
    if how == "unknown_option":
        return storage.put(key, value, allow_everything=True)
    if how == "delete_all_in_txn":

        async def closure(txn: durable.Transaction) -> None:
            await txn.put(key, value)
            await txn.delete_all()

        return storage.transaction(closure)
    sql_ready(storage)
    if how == "syntax":
        return storage.sql.exec("INSERT INTO t VALUES (99, 'x')x")
    if how == "multi":
        # The statements before the failing one keep their effect, as in workerd (miniflare 4,
        # 2026-04-07: exec("INSERT ...; INSERT INTO t VALUE") raises and the first row stays).
        return storage.sql.exec("INSERT OR REPLACE INTO t VALUES (60, 'm'); INSERT INTO t VALUE")
    if how == "constraint":
        return storage.sql.exec("INSERT INTO t VALUES (98, 'x'), (98, 'y')")
    if how == "huge_int":
        return storage.sql.exec("INSERT INTO t VALUES (?, 'x')", 2**64)
    if how == "bindings":
        return storage.sql.exec("INSERT INTO t VALUES (?, ?)", 97)
    if how == "kv_too_big":
        return storage.kv.put(key, "x" * 3_000_000)
    if how == "kv_surrogate":
        return storage.kv.put("\udfff" + key, value)
    raise AssertionError(how)


class Modeled(durable.DurableObject):
    """Runs a program (see ``programs``) and returns what each step returned."""

    async def run(self, steps: list[Any], now_ms: int) -> list[Any]:
        storage = self.ctx.storage
        return await self.run_steps(storage, steps, now_ms)

    async def run_steps(self, target: Any, steps: list[Any], now_ms: int) -> list[Any]:
        storage = self.ctx.storage
        out: list[Any] = []
        for step in steps:
            kind = step[0]
            if kind == "put":
                out.append(await target.put(step[1], step[2], **step[3]))
            elif kind == "put_many":
                out.append(await target.put(step[1], **step[2]))
            elif kind == "unawaited_put":
                target.put(step[1], step[2])
                out.append(None)
            elif kind == "get":
                out.append(await target.get(step[1], **step[2]))
            elif kind == "get_many":
                out.append(list((await target.get(step[1], **step[2])).items()))
            elif kind == "delete":
                out.append(await target.delete(step[1], **step[2]))
            elif kind == "delete_many":
                out.append(await target.delete(step[1], **step[2]))
            elif kind == "list":
                out.append(list((await target.list(**step[1])).items()))
            elif kind == "set_alarm":
                out.append(await target.set_alarm(now_ms + step[1]))
            elif kind == "delete_alarm":
                out.append(await target.delete_alarm())
            elif kind == "get_alarm":
                out.append(await target.get_alarm())
            elif kind == "delete_all":
                await storage.delete_all()
                out.append(None)
            elif kind == "bad":
                try:
                    # SQL, the synchronous API and transaction() are on ctx.storage, not on txn.
                    result = run_bad_step(target if step[1] in BAD[:-1] else storage, step)
                    if hasattr(result, "__await__"):
                        await result
                except Exception as exc:
                    out.append(type(exc).__name__)
                else:
                    out.append("accepted")
            elif kind == "cycle":
                cyclic: list[Any] = [step[2]]
                cyclic.append(cyclic)
                await target.put(step[1], cyclic)
                back = await target.get(step[1])
                assert back[1] is back and back is not cyclic
                out.append(await target.put(step[1], step[2]))
            elif kind == "sync":
                await storage.sync()
                out.append(None)
            elif kind == "txn":
                out.append(await self.transaction(step[1], step[2], now_ms))
            elif kind == "txn_sync":
                commit, inner = step[1], step[2]

                def closure(inner: list[Any] = inner, commit: bool = commit) -> list[Any]:
                    results = [run_sync_step(storage, s) for s in inner]
                    if not commit:
                        raise Boom("transaction_sync")
                    return results

                try:
                    out.append(storage.transaction_sync(closure))
                except Boom:
                    out.append("raised")
            else:
                out.append(run_sync_step(storage, step))
        return out

    async def run_then(self, steps: list[Any], now_ms: int, then: str) -> list[Any]:
        """Run ``steps``, then raise (the writes stay, as in workerd) or abort (they are dropped)."""
        await self.run_steps(self.ctx.storage, steps, now_ms)
        if then == "raise":
            raise Boom("after the program")
        self.ctx.abort("the model aborts")

    async def transaction(self, outcome: str, inner: list[Any], now_ms: int) -> Any:
        async def closure(txn: durable.Transaction) -> list[Any]:
            results = await self.run_steps(txn, inner, now_ms)
            if outcome == "raise":
                raise Boom("transaction")
            if outcome == "rollback":
                txn.rollback()
            return results

        try:
            return await self.ctx.storage.transaction(closure)
        except Boom:
            return "raised"

    async def contents(self, sql: bool) -> tuple[list[Any], list[Any], int | None]:
        storage = self.ctx.storage
        rows: list[Any] = []
        if sql:
            listed = storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 't'")
            if listed.to_array():
                rows = [tuple(r) for r in storage.sql.exec("SELECT id, v FROM t ORDER BY id").raw()]
        return list((await storage.list()).items()), rows, await storage.get_alarm()

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> None:
        await self.ctx.storage.on_next_session_restore_bookmark(bookmark)
        self.ctx.abort("restoring")

    async def alarm(self, info: durable.AlarmInfo) -> None:
        storage = self.ctx.storage
        plan = (await storage.get(PLAN)) or []
        outcome = plan[info.retry_count] if info.retry_count < len(plan) else "ok"
        await storage.put(TRIES, ((await storage.get(TRIES)) or 0) + 1)
        if outcome == "raise":
            raise Boom("the alarm fails")
        if outcome == "abort":
            self.ctx.abort("the alarm aborts")
        await storage.put(FIRED, ((await storage.get(FIRED)) or 0) + 1)


# -- the model -------------------------------------------------------------------------------


def in_range(key: str, opts: dict[str, Any]) -> bool:
    return (
        ("start" not in opts or key >= opts["start"])
        and ("start_after" not in opts or key > opts["start_after"])
        and ("end" not in opts or key < opts["end"])
        and key.startswith(opts.get("prefix", ""))
    )


class Model:
    """What the object must hold: keys, the rows of table ``t``, the alarm."""

    def __init__(self) -> None:
        self.kv: dict[str, Any] = {}
        self.rows: dict[int, str] = {}
        self.alarm: int | None = None

    def copy(self) -> Model:
        other = Model()
        other.kv, other.rows, other.alarm = dict(self.kv), dict(self.rows), self.alarm
        return other

    def clear(self) -> None:
        self.kv.clear()
        self.rows.clear()
        self.alarm = None

    def listed(self, opts: dict[str, Any]) -> list[tuple[str, Any]]:
        items = sorted((k, v) for k, v in self.kv.items() if in_range(k, opts))
        if opts.get("reverse"):
            items.reverse()
        return items[: opts["limit"]] if "limit" in opts else items

    def run(self, steps: list[Any], now_ms: int) -> list[Any]:
        out: list[Any] = []
        for step in steps:
            kind = step[0]
            if kind in ("put", "unawaited_put", "kv_put"):
                self.kv[step[1]] = step[2]
                out.append(None)
            elif kind == "put_many":
                self.kv.update(step[1])
                out.append(None)
            elif kind in ("get", "kv_get"):
                out.append(self.kv.get(step[1]))
            elif kind == "get_many":
                out.append(sorted((k, self.kv[k]) for k in set(step[1]) if k in self.kv))
            elif kind in ("delete", "kv_delete"):
                out.append(self.kv.pop(step[1], ...) is not ...)
            elif kind == "delete_many":
                out.append(sum(self.kv.pop(k, ...) is not ... for k in set(step[1])))
            elif kind in ("list", "kv_list"):
                out.append(self.listed(step[1]))
            elif kind == "set_alarm":
                self.alarm = now_ms + step[1]
                out.append(None)
            elif kind == "delete_alarm":
                self.alarm = None
                out.append(None)
            elif kind == "get_alarm":
                out.append(self.alarm)
            elif kind == "bad":
                if step[1] == "multi":
                    self.rows[60] = "m"
                out.append(ERRORS[step[1]])
            elif kind == "cycle":
                self.kv[step[1]] = step[2]
                out.append(None)
            elif kind == "sync":
                out.append(None)
            elif kind == "delete_all":
                self.clear()
                out.append(None)
            elif kind == "sql_put":
                self.rows[step[1]] = step[2]
                out.append(1)
            elif kind == "sql_delete":
                out.append(int(self.rows.pop(step[1], None) is not None))
            elif kind == "sql_append":
                self.rows = {i: v + step[1] for i, v in self.rows.items()}
                out.append(len(self.rows))
            elif kind == "sql_select":
                out.append(sorted(self.rows.items()))
            elif kind in ("txn", "txn_sync"):
                outcome = step[1] if kind == "txn" else ("commit" if step[1] else "raise")
                inner = self.copy()
                results = inner.run(step[2], now_ms)
                if outcome == "commit":
                    self.kv, self.rows, self.alarm = inner.kv, inner.rows, inner.alarm
                out.append("raised" if outcome == "raise" else results)
            else:
                raise AssertionError(kind)
        return out


def own(call: int, steps: list[Any]) -> list[Any]:
    """``steps`` moved onto keys and rows of call ``call`` alone (concurrent calls then commute)."""

    def key(k: str) -> str:
        return f"{call}/{k}"

    def opts(o: dict[str, Any]) -> dict[str, Any]:
        moved = {name: key(v) if name in ("start", "start_after", "end") else v for name, v in o.items()}
        moved["prefix"] = key(o.get("prefix", ""))
        return moved

    def move(step: Any) -> Any:
        kind = step[0]
        if kind in ("put", "unawaited_put", "kv_put", "get", "kv_get", "delete", "kv_delete", "cycle"):
            return (kind, key(step[1]), *step[2:])
        if kind == "put_many":
            return (kind, {key(k): v for k, v in step[1].items()}, step[2])
        if kind == "bad":
            return (kind, step[1], key(step[2]), step[3])
        if kind in ("get_many", "delete_many"):
            return (kind, [key(k) for k in step[1]], step[2])
        if kind in ("list", "kv_list"):
            return (kind, opts(step[1]))
        if kind in ("sql_put", "sql_delete"):
            return (kind, step[1] + 10 * call, *step[2:])
        if kind in ("txn", "txn_sync"):
            return (kind, step[1], [move(s) for s in step[2] if keep(s)])
        return step

    def keep(step: Any) -> bool:
        # The alarm and the whole table are shared by every call: left to single calls.
        return step[0] not in ("set_alarm", "delete_alarm", "get_alarm", "sql_append", "sql_select")

    return [move(s) for s in steps if keep(s)]


def confirmed(steps: list[Any]) -> list[Any]:
    """``steps`` without ``allow_unconfirmed`` (a call may answer before such a write commits)."""

    def strip(step: Any) -> Any:
        if step[0] in ("txn", "txn_sync"):
            return (step[0], step[1], confirmed(step[2]))
        if step[0] in ("put", "put_many", "delete", "delete_many"):
            return (*step[:-1], {k: v for k, v in step[-1].items() if k != "allow_unconfirmed"})
        return step

    return [strip(s) for s in steps]


# -- the machine -----------------------------------------------------------------------------


class ObjectMachine(RuleBasedStateMachine):
    """One object of a runtime (in memory or on disk, either backend), against ``Model``."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = testing.MockClock(START)
        self.tmp: str | None = None
        self.rt: durable.Runtime | None = None
        self.blocking: durable.BlockingRuntime | None = None
        self.model = Model()
        self.sql = True
        self.pitr = False
        self.bookmarks: list[tuple[str, Model]] = []
        """Bookmarks taken (or returned to undo a restore), with the state each stands for."""

    @initialize(
        on_disk=st.booleans(),
        backend=st.sampled_from(["sqlite", "sqlite", "kv"]),
        pitr=st.booleans(),
        blocking=st.booleans(),
    )
    def open(self, on_disk: bool, backend: str, pitr: bool, blocking: bool) -> None:
        self.tmp = tempfile.mkdtemp(prefix="durable-object-model-") if on_disk else None
        self.backend = backend
        self.sql = backend == "sqlite"
        self.pitr = pitr and self.sql
        self.use_blocking = blocking
        """A BlockingRuntime (its own loop in its own thread), called from threads, instead of a Runtime."""
        self.start()

    def start(self) -> None:
        if self.use_blocking:
            self.blocking = durable.BlockingRuntime(self.tmp, clock=self.clock, point_in_time_recovery=self.pitr)
            self.rt = self.blocking.runtime
            self.ns: Any = self.blocking.namespace(Modeled, storage=self.backend)
            return
        self.rt = durable.Runtime(path=self.tmp, clock=self.clock, point_in_time_recovery=self.pitr)
        self.loop.run_until_complete(self.rt.__aenter__())
        self.ns = self.rt.namespace(Modeled, storage=self.backend)

    def close(self) -> None:
        if self.blocking is not None:
            self.blocking.close()
        elif self.rt is not None:
            self.loop.run_until_complete(self.rt.aclose())

    def call(self, stub: Any, method: str, *args: Any) -> Any:
        """An awaitable of ``stub.method(*args)``; a blocking stub's call runs in a thread of its own."""
        if self.blocking is not None:
            return asyncio.to_thread(getattr(stub, method), *args)
        return getattr(stub, method)(*args)

    @property
    def stub(self) -> Any:
        return self.ns.get_by_name("m")  # a fresh stub each time: one a reset broke is not reused

    def run(self, make: Any) -> Any:
        """Run ``make()``'s awaitable on the machine's loop; a wedge fails the test instead of hanging."""

        async def main() -> Any:
            return await asyncio.wait_for(make(), 30)

        return self.loop.run_until_complete(main())

    def now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def expect(self, steps: list[Any], got: list[Any]) -> None:
        expected = self.model.run(steps, self.now_ms())
        assert typed(got) == typed(expected), (steps, got, expected)

    # -- programs ----------------------------------------------------------------------------

    @precondition(lambda self: self.rt is not None)
    @rule(data=st.data())
    def program(self, data: st.DataObject) -> None:
        steps = data.draw(programs(self.sql))
        got = self.run(lambda: self.call(self.stub, "run", steps, self.now_ms()))
        self.expect(steps, got)

    @precondition(lambda self: self.rt is not None)
    @rule(data=st.data(), n=st.integers(min_value=2, max_value=4), evict_at=st.none() | st.integers(0, 4))
    def concurrent_programs(self, data: st.DataObject, n: int, evict_at: int | None) -> None:
        """Calls at once, each on keys of its own; an eviction among them waits for them all."""
        batch = [own(i, data.draw(programs(self.sql))) for i in range(n)]
        stub, now = self.stub, self.now_ms()

        async def calls() -> list[Any]:
            started = [asyncio.ensure_future(self.call(stub, "run", steps, now)) for steps in batch]
            if evict_at is not None:
                await settle(evict_at)
                await testing.evict(stub)
            return list(await asyncio.gather(*started))

        results = self.run(calls)
        for steps, got in zip(batch, results, strict=True):
            self.expect(steps, got)

    @precondition(lambda self: self.rt is not None)
    @rule()
    def delete_all(self) -> None:
        self.expect([("delete_all",)], self.run(lambda: self.call(self.stub, "run", [("delete_all",)], self.now_ms())))

    @precondition(lambda self: self.rt is not None)
    @rule(data=st.data())
    def failing_commit(self, data: st.DataObject) -> None:
        """The commit fails: the call gets a reset error and nothing of what it wrote stays."""
        steps = confirmed([("put", "a", 1, {}), *data.draw(programs(self.sql))])
        stub = self.stub
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            self.run(lambda: self.call(stub, "run", steps, self.now_ms()))

    @precondition(lambda self: self.rt is not None)
    @rule(data=st.data())
    def program_then_raise(self, data: st.DataObject) -> None:
        """A call that raises after its writes: they stay (an exception rolls nothing back)."""
        steps = data.draw(programs(self.sql))
        with pytest.raises(Boom):
            self.run(lambda: self.call(self.stub, "run_then", steps, self.now_ms(), "raise"))
        self.model.run(steps, self.now_ms())

    @precondition(lambda self: self.rt is not None)
    @rule(data=st.data())
    def program_then_abort(self, data: st.DataObject) -> None:
        """A call that aborts after its writes: those since its last real suspension are dropped.

        Awaiting ``transaction()`` or ``sync()`` commits what was written before (and the
        transaction's writes), as in workerd (miniflare 4, 2026-04-07: ``put("a"); await
        transaction(...); abort()`` keeps "a", ``put("a"); await get("a"); abort()`` does not).
        """
        steps = data.draw(programs(self.sql))
        with pytest.raises(durable.ObjectResetError, match="the model aborts"):
            self.run(lambda: self.call(self.stub, "run_then", steps, self.now_ms(), "abort"))
        suspends = [i for i, s in enumerate(steps) if s[0] in ("txn", "sync") or s[1:2] == ("delete_all_in_txn",)]
        if suspends:
            self.model.run(steps[: suspends[-1] + 1], self.now_ms())

    @precondition(lambda self: self.rt is not None)
    @rule(data=st.data(), n=st.integers(min_value=2, max_value=4))
    def failing_commit_under_concurrent_calls(self, data: st.DataObject, n: int) -> None:
        """Calls at once, one commit fails: a call that answered keeps all it wrote, one that
        failed with a reset error keeps nothing (no step of these programs commits mid-call)."""
        batch = [own(i, confirmed([("put", "w", i, {}), *data.draw(programs(self.sql))])) for i in range(n)]
        batch = [
            [s for s in steps if s[0] not in ("txn", "sync") and s[1:2] != ("delete_all_in_txn",)] for steps in batch
        ]
        stub, now = self.stub, self.now_ms()
        testing.fail_next_commit(stub)
        results = self.run(
            lambda: asyncio.gather(*(self.call(stub, "run", steps, now) for steps in batch), return_exceptions=True)
        )
        assert any(isinstance(r, durable.ObjectResetError) for r in results), results
        for steps, got in zip(batch, results, strict=True):
            if isinstance(got, durable.ObjectResetError):
                continue
            assert not isinstance(got, BaseException), got
            self.expect(steps, got)

    # -- point-in-time recovery --------------------------------------------------------------

    @precondition(lambda self: self.rt is not None and bool(self.bookmarks))
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        """Restore a bookmark (and abort to apply it): the state is the bookmark's, whatever came after."""
        bookmark, state = data.draw(st.sampled_from(self.bookmarks))
        stub = self.stub
        with pytest.raises(durable.ObjectResetError, match="restoring"):
            self.run(lambda: self.call(stub, "restore", bookmark))
        self.model = state.copy()
        if self.model.alarm is not None and self.model.alarm <= self.now_ms():
            # A restored alarm that is due runs at once when the object starts (the restore is
            # applied then): start it, and wait for the handler (docs/testing.md).
            self.run(lambda: self.call(self.stub, "contents", self.sql))
            self.run(lambda: self.clock.advance(0))
            self.model.alarm = None
            self.fired(["ok"])

    # -- time, lifecycle ---------------------------------------------------------------------

    @precondition(lambda self: self.rt is not None)
    @rule(seconds=st.sampled_from([1, 5, 10]))
    def advance(self, seconds: int) -> None:
        target = self.now_ms() + seconds * 1000
        self.run(lambda: self.clock.advance(seconds))
        if self.model.alarm is not None and self.model.alarm <= target:
            self.model.alarm = None
            self.fired(["ok"])

    def fired(self, plan: list[str]) -> None:
        """What the alarm's attempts leave, following ``plan``: 7 attempts at most."""
        for attempt in range(7):
            outcome = plan[attempt] if attempt < len(plan) else "ok"
            if outcome != "abort":  # an abort drops the attempt's write
                self.model.kv[TRIES] = self.model.kv.get(TRIES, 0) + 1
            if outcome == "ok":
                self.model.kv[FIRED] = self.model.kv.get(FIRED, 0) + 1
                return

    @precondition(lambda self: self.rt is not None)
    @rule(plan=st.lists(st.sampled_from(["ok", "raise", "abort"]), max_size=8))
    def failing_alarm(self, plan: list[str]) -> None:
        """An alarm whose attempts fail as ``plan`` says: retried 6 times (in 126 s), then given up."""
        setup: list[Any] = [("put", PLAN, plan, {}), ("set_alarm", 1000)]
        self.expect(setup, self.run(lambda: self.call(self.stub, "run", setup, self.now_ms())))
        self.run(lambda: self.clock.advance(200))
        self.model.alarm = None  # cleared by the attempt that succeeded, or deleted after the last
        self.fired(plan)
        self.expect([("delete", PLAN, {})], self.run(lambda: self.call(self.stub, "run", [("delete", PLAN, {})], 0)))

    @precondition(lambda self: self.rt is not None)
    @rule()
    def evict(self) -> None:
        self.run(lambda: testing.evict(self.stub))

    @precondition(lambda self: self.rt is not None)
    @rule()
    def hibernate(self) -> None:
        self.run(lambda: testing.hibernate(self.stub))

    @precondition(lambda self: self.rt is not None)
    @rule()
    def reset_runtime(self) -> None:
        assert self.rt is not None
        rt, blocking = self.rt, self.blocking
        self.run(lambda: asyncio.to_thread(blocking.run, rt.reset) if blocking is not None else rt.reset())
        self.model.clear()
        self.bookmarks.clear()  # the history went with the storage

    @precondition(lambda self: self.rt is not None and self.tmp is not None)
    @rule()
    def reopen(self) -> None:
        """Close the runtime and open a new one on its directory: what was acknowledged is there."""
        self.close()
        self.start()

    @precondition(lambda self: self.rt is not None)
    @invariant()
    def matches_the_model(self) -> None:
        kv, rows, alarm = self.run(lambda: self.call(self.stub, "contents", self.sql))
        assert typed(kv) == typed(sorted(self.model.kv.items()))
        assert rows == sorted(self.model.rows.items())
        assert alarm == self.model.alarm
        if self.pitr:  # a bookmark of every state checked, for restore() to pick from
            self.bookmarks.append((self.run(lambda: self.call(self.stub, "bookmark")), self.model.copy()))

    def teardown(self) -> None:
        try:
            self.close()
        finally:
            self.loop.close()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)


TestObjectModel = ObjectMachine.TestCase
TestObjectModel.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
