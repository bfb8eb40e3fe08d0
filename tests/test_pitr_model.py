"""Point-in-time recovery against a model: a hypothesis state machine over writes, bookmarks and restores.

What the other PITR tests do not drive together: SQL ``UPDATE`` and ``DROP TABLE`` over several
tables, ``transaction()`` and ``transaction_sync()`` that commit or are rolled back by a throw (or
``rollback()``), restores scheduled and left pending while the session goes on writing (and
requested twice), sessions ended by ``ctx.abort()``, eviction or a restart of a persisted
runtime, ``getBookmarkForTime`` at any moment of the mock clock (before the first write, between
two commits of the same millisecond, exactly at a restore) and hostile arguments (forged and
malformed bookmarks, another object's, times in the future, negative, NaN) interleaved with all of
it. The model predicts every key, table, row and the alarm after every step.

Cloudflare documents the semantics (``api/sqlite-storage-api.mdx``: a restore takes the whole
storage to the bookmark at the next session and returns an undo bookmark for "the state the object
will have at the end of the current session"); workerd's local back-end implements only
``getCurrentBookmark`` (placeholder counter) and the argument conversions of the other calls
(miniflare 4, compatibility date 2026-04-07: ``getBookmarkForTime(NaN)`` is ``TypeError: The value
cannot be converted because it is not a valid Date.``, a string ``... parameter 1 is not of type
'date'.``, ``onNextSessionRestoreBookmark()`` ``... parameter 1 is not of type 'string'.``, and -1,
a future time or ``"garbage"`` reach the back-end, which throws ``This Durable Object's storage
back-end does not implement point-in-time recovery.``), so the rest follows the documentation and
``docs/recovery.md``.

A longer run: ``DURABLE_PITR_MODEL_EXAMPLES=300 pytest tests/test_pitr_model.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import durable
from durable.testing import MockClock, evict

EXAMPLES = int(os.environ.get("DURABLE_PITR_MODEL_EXAMPLES", "12"))
T0 = 1_700_000_000
DAY_MS = 24 * 3600 * 1000
IDLE_TIMEOUT = 70
"""``Runtime(idle_timeout=...)``'s default, in seconds: a longer wait evicts the object."""
FAR = (T0 + 3650 * 24 * 3600) * 1000
"""Alarm times that never fall due while a test runs."""

Tables = dict[str, list[int]]
State = tuple[dict[str, int], Tables, int | None]
EMPTY: State = ({}, {}, None)
GONE: State = ({"<wiped by Runtime.reset()>": 0}, {}, None)
"""What a bookmark taken before ``Runtime.reset()`` names: nothing (it is refused)."""
EMPTY_PREFIX = "00000000-00000000-00000000-"
"""The empty state's bookmark: it belongs to every history of the object."""


class Boom(Exception):
    """Thrown from a transaction's closure to roll it back."""


class Pitr(durable.DurableObject):
    async def put(self, key: str, value: int) -> None:
        await self.ctx.storage.put(key, value)

    async def delete(self, key: str) -> bool:
        return await self.ctx.storage.delete(key)

    async def delete_all(self) -> None:
        await self.ctx.storage.delete_all()

    async def sql(self, query: str, *args: Any) -> None:
        self.ctx.storage.sql.exec(query, *args)

    async def arm(self, when: int | None) -> None:
        if when is None:
            await self.ctx.storage.delete_alarm()
        else:
            await self.ctx.storage.set_alarm(when)

    async def alarm(self) -> None:
        raise AssertionError("no alarm falls due in these tests")

    async def transaction(self, ops: list[tuple[Any, ...]], end: str) -> None:
        """KV and SQL writes in one ``transaction()``; ``end``: "commit", "throw" or "rollback"."""
        sql = self.ctx.storage.sql

        async def body(txn: Any) -> None:
            for op in ops:
                if op[0] == "put":
                    await txn.put(op[1], op[2])
                elif op[0] == "delete":
                    await txn.delete(op[1])
                elif op[0] == "arm":
                    await txn.set_alarm(op[1])
                else:
                    sql.exec(*op[1:])
            if end == "throw":
                raise Boom
            if end == "rollback":
                txn.rollback()

        try:
            await self.ctx.storage.transaction(body)
        except Boom:
            assert end == "throw"

    async def transaction_sync(self, queries: list[tuple[Any, ...]], throw: bool) -> str:
        """SQL in one ``transaction_sync()``, which takes a bookmark awaited after it (as workerd allows)."""
        sql = self.ctx.storage.sql
        promises: list[Awaitable[str]] = []

        def body() -> None:
            for query in queries:
                sql.exec(*query)
            promises.append(self.ctx.storage.get_current_bookmark())
            if throw:
                raise Boom

        try:
            self.ctx.storage.transaction_sync(body)
        except Boom:
            assert throw
        return await promises[0]

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def bookmark_for(self, when: Any) -> str:
        return await self.ctx.storage.get_bookmark_for_time(when)

    async def request(self, bookmark: Any) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)

    async def abort(self) -> None:
        self.ctx.abort("session ends")

    async def state(self) -> State:
        sql = self.ctx.storage.sql
        names = [
            row["name"]
            for row in sql.exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 4) != '_cf_' ORDER BY name"
            )
        ]
        tables = {name: [row["v"] for row in sql.exec(f"SELECT v FROM {name} ORDER BY rowid")] for name in names}
        kv = dict(await self.ctx.storage.list())
        # get() of each key too (single and batch), and the synchronous API: each may be served by a cache.
        for key in "abc":
            assert await self.ctx.storage.get(key) == kv.get(key), key
            assert self.ctx.storage.kv.get(key) == kv.get(key), key
        assert await self.ctx.storage.get(list("abc")) == kv
        return kv, tables, await self.ctx.storage.get_alarm()


def _copy(state: State) -> State:
    kv, tables, alarm = state
    return dict(kv), {name: list(rows) for name, rows in tables.items()}, alarm


keys = st.sampled_from("abc")
values = st.integers(min_value=0, max_value=5)
table_names = st.sampled_from(["t1", "t2"])
tx_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, values),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("arm"), st.integers(min_value=1, max_value=9)),
        st.tuples(st.just("insert"), table_names, values),
        st.tuples(st.just("create"), table_names),
        st.tuples(st.just("drop"), table_names),
    ),
    max_size=4,
)


class PitrModel(RuleBasedStateMachine):
    """One object's storage and its bookmarks, against a model of every state they name."""

    disk = False

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="durable-pitr-model-")
        self.path = Path(self.tmp.name) / "state" if self.disk else None
        self.clock = MockClock(start=T0)
        self.rt = durable.Runtime(self.path, clock=self.clock, point_in_time_recovery=True)
        self.stub = self.rt.namespace(Pitr).get_by_name("m")
        self.other = self.rt.namespace(Pitr).get_by_name("other")
        self.now: State = _copy(EMPTY)
        # Every state the object had, with the clock time it began: getBookmarkForTime's answer.
        self.moments: list[tuple[int, State]] = []
        # Every bookmark handed out and the state it names (None: an undo bookmark of this session).
        self.known: list[tuple[str, State | None]] = []
        self.pending: State | None = None
        self.highest = ""  # the largest current or undo bookmark of an ended session
        self.session_top = ""  # the largest current bookmark of this session

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def teardown(self) -> None:
        try:
            self.run(self.rt.aclose())
        finally:
            self.loop.close()
            self.tmp.cleanup()

    def changed(self) -> None:
        self.moments.append((self.clock.time_ms(), _copy(self.now)))

    # -- time --

    @rule(seconds=st.sampled_from([0, 0.001, 0.5, 60, 3600, 86400]))
    def advance(self, seconds: float) -> None:
        self.run(self.clock.advance(seconds))
        if seconds > IDLE_TIMEOUT:  # the object was idle that long: evicted, its session ended
            self.end_session("idle")

    # -- key-value --

    @rule(key=keys, value=values)
    def put(self, key: str, value: int) -> None:
        self.run(self.stub.put(key, value))
        self.now[0][key] = value
        self.changed()

    @rule(key=keys)
    def delete(self, key: str) -> None:
        assert self.run(self.stub.delete(key)) == (key in self.now[0])
        self.now[0].pop(key, None)
        self.changed()

    @rule()
    def delete_all(self) -> None:
        self.run(self.stub.delete_all())
        self.now = _copy(EMPTY)  # the SQL tables and the alarm go too
        self.changed()

    # -- SQL --

    @rule(table=table_names)
    def create(self, table: str) -> None:
        self.run(self.stub.sql(f"CREATE TABLE IF NOT EXISTS {table} (v INTEGER)"))
        self.now[1].setdefault(table, [])
        self.changed()

    @rule(table=table_names, value=values)
    def insert(self, table: str, value: int) -> None:
        if table not in self.now[1]:
            with pytest.raises(durable.SqlError, match="no such table"):
                self.run(self.stub.sql(f"INSERT INTO {table} VALUES (?)", value))
            return
        self.run(self.stub.sql(f"INSERT INTO {table} VALUES (?)", value))
        self.now[1][table].append(value)
        self.changed()

    @rule(table=table_names, old=values, new=values)
    def update(self, table: str, old: int, new: int) -> None:
        if table not in self.now[1]:
            return
        self.run(self.stub.sql(f"UPDATE {table} SET v = ? WHERE v = ?", new, old))
        self.now[1][table] = [new if v == old else v for v in self.now[1][table]]
        self.changed()

    @rule(table=table_names)
    def drop(self, table: str) -> None:
        self.run(self.stub.sql(f"DROP TABLE IF EXISTS {table}"))
        self.now[1].pop(table, None)
        self.changed()

    # -- transactions --

    @rule(ops=tx_ops, end=st.sampled_from(["commit", "throw", "rollback"]))
    def transaction(self, ops: list[tuple[Any, ...]], end: str) -> None:
        after = _copy(self.now)
        wire: list[tuple[Any, ...]] = []
        for op in ops:
            kind = op[0]
            if kind == "put":
                after[0][op[1]] = op[2]
            elif kind == "delete":
                after[0].pop(op[1], None)
            elif kind == "arm":
                after = (after[0], after[1], FAR + op[1])
                op = ("arm", FAR + op[1])
            elif kind == "create":
                after[1].setdefault(op[1], [])
                op = ("sql", f"CREATE TABLE IF NOT EXISTS {op[1]} (v INTEGER)")
            elif kind == "drop":
                after[1].pop(op[1], None)
                op = ("sql", f"DROP TABLE IF EXISTS {op[1]}")
            elif op[1] in after[1]:
                after[1][op[1]].append(op[2])
                op = ("sql", f"INSERT INTO {op[1]} VALUES (?)", op[2])
            else:
                continue  # an insert into a table that does not exist at that point
            wire.append(op)
        self.run(self.stub.transaction(wire, end))
        if end == "commit":
            self.now = after
            self.changed()

    @rule(table=table_names, rows=st.lists(values, max_size=3), drop=st.booleans(), throw=st.booleans())
    def transaction_sync(self, table: str, rows: list[int], drop: bool, throw: bool) -> None:
        queries: list[tuple[Any, ...]] = [(f"CREATE TABLE IF NOT EXISTS {table} (v INTEGER)",)]
        queries += [(f"INSERT INTO {table} VALUES (?)", v) for v in rows]
        if drop:
            queries.append((f"DROP TABLE {table}",))
        mark = self.run(self.stub.transaction_sync(queries, throw))
        if not throw:
            if drop:
                self.now[1].pop(table, None)
            else:
                self.now[1].setdefault(table, []).extend(rows)
            self.changed()
        assert mark > self.highest and mark > self.session_top, "a current bookmark sorts after those before it"
        self.session_top = mark
        self.known.append((mark, _copy(self.now)))

    # -- the alarm --

    @rule(offset=st.none() | st.integers(min_value=1, max_value=9))
    def arm(self, offset: int | None) -> None:
        when = None if offset is None else FAR + offset
        self.run(self.stub.arm(when))
        self.now = (self.now[0], self.now[1], when)
        self.changed()

    # -- bookmarks --

    @rule()
    def current_bookmark(self) -> None:
        mark = self.run(self.stub.bookmark())
        assert mark > self.highest and mark > self.session_top, "a current bookmark sorts after those before it"
        self.session_top = mark
        self.known.append((mark, _copy(self.now)))

    def expected_at(self, when: int) -> State:
        found = [state for at, state in self.moments if at <= when]
        return found[-1] if found else EMPTY

    @rule(
        pick=st.one_of(
            st.floats(min_value=0, max_value=1),
            st.sampled_from(["before-first", "at-moment", "moment-minus-1", "now"]),
        ),
        index=st.integers(min_value=0, max_value=1000),
        shape=st.sampled_from(["int", "float", "datetime"]),
    )
    def bookmark_for_time(self, pick: float | str, index: int, shape: str) -> None:
        now = self.clock.time_ms()
        if pick == "before-first":
            when = T0 * 1000 - DAY_MS
        elif pick == "now" or not self.moments:
            when = now
        elif isinstance(pick, str):
            when = self.moments[index % len(self.moments)][0] - (1 if pick == "moment-minus-1" else 0)
        else:
            when = T0 * 1000 + int(pick * (now - T0 * 1000))
        arg: Any = when
        if shape == "float":  # a fraction of a millisecond is dropped, as JavaScript's Date does
            arg = when + 0.75
        elif shape == "datetime":
            arg = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=when)
        mark = self.run(self.stub.bookmark_for(arg))
        self.known.append((mark, _copy(self.expected_at(when))))

    # -- restores --

    @precondition(lambda self: bool(self.known))
    @rule(index=st.integers(min_value=0, max_value=1000))
    def request_restore(self, index: int) -> None:
        mark, state = self.known[index % len(self.known)]
        if state is GONE:
            with pytest.raises(ValueError, match="belongs to another history of this object"):
                self.run(self.stub.request(mark))
            return
        if state is None:  # an undo bookmark of this session names a state not reached yet
            with pytest.raises(ValueError, match="names a state this object has not reached"):
                self.run(self.stub.request(mark))
            return
        undo = self.run(self.stub.request(mark))
        assert undo > self.session_top and undo > self.highest, "the undo bookmark sorts after every state before"
        undos = {m for m, s in self.known if s is None}
        assert undos <= {undo}, "every request of one session returns the same undo bookmark"
        self.known.append((undo, None))
        self.pending = _copy(state)

    def end_session(self, how: str) -> None:
        if how == "abort":
            with pytest.raises(durable.ObjectResetError, match="session ends"):
                self.run(self.stub.abort())
            self.stub = self.rt.namespace(Pitr).get_by_name("m")  # a stub that saw a reset is broken
        elif how == "evict":
            self.run(evict(self.stub))
        elif how == "restart":
            self.run(self.rt.aclose())
            self.rt = durable.Runtime(self.path, clock=self.clock, point_in_time_recovery=True)
            self.stub = self.rt.namespace(Pitr).get_by_name("m")
            self.other = self.rt.namespace(Pitr).get_by_name("other")
        for i, (mark, state) in enumerate(self.known):
            if state is None:
                self.known[i] = (mark, _copy(self.now))
                self.highest = max(self.highest, mark)
        self.highest = max(self.highest, self.session_top)
        self.session_top = ""
        if self.pending is not None:
            self.now, self.pending = self.pending, None
            # The restore is a new state, written when the object next starts: the check below.
            self.changed()

    @rule()
    def reset(self) -> None:
        """``Runtime.reset()`` wipes the data and the history: only the empty state's bookmark stays valid."""
        self.run(self.rt.reset())
        self.known = [(mark, EMPTY if mark.startswith(EMPTY_PREFIX) else GONE) for mark, _ in self.known]
        self.now, self.pending, self.moments = _copy(EMPTY), None, []
        self.highest = self.session_top = ""  # a new history: its bookmarks start again from the empty state

    @rule(how=st.sampled_from(["abort", "evict"]))
    def new_session(self, how: str) -> None:
        self.end_session(how)

    @precondition(lambda self: self.disk)
    @rule()
    def restart_runtime(self) -> None:
        self.end_session("restart")

    # -- hostile input: refused with a clear error, nothing changed --

    @rule(
        how=st.sampled_from(["digit", "mac", "lineage", "upper", "space", "empty", "garbage", "other", "long"]),
        index=st.integers(min_value=0, max_value=1000),
    )
    def forged_bookmark(self, how: str, index: int) -> None:
        real = [m for m, _ in self.known] or [self.run(self.stub.bookmark())]
        mark = real[index % len(real)]
        if not self.known:
            self.known.append((mark, _copy(self.now)))
            self.session_top = max(self.session_top, mark)
        flip = {"digit": 16, "mac": 40, "lineage": 22}
        if how in flip:
            at = flip[how]
            bad = mark[:at] + ("1" if mark[at] == "0" else "0") + mark[at + 1 :]
            message = "Invalid bookmark"
        elif how == "other":
            bad = self.run(self.other.bookmark())
            message = "not a bookmark of this Durable Object"
        else:
            bad = {
                "upper": mark.upper() if mark != mark.upper() else mark + "0",
                "space": f" {mark}",
                "empty": "",
                "garbage": "garbage",
                "long": mark * 1000,
            }[how]
            message = "Invalid bookmark"
        with pytest.raises(ValueError, match=message):
            self.run(self.stub.request(bad))

    @rule(when=st.sampled_from(["future", "negative", "nan", "inf", "string", "none", "bool", "old"]))
    def hostile_time(self, when: str) -> None:
        now = self.clock.time_ms()
        arg: Any = {
            "future": now + 1,
            "negative": -1,
            "nan": math.nan,
            "inf": -math.inf,
            "string": str(now),
            "none": None,
            "bool": True,
            "old": now - 30 * DAY_MS - 1,
        }[when]
        if when in ("future", "negative", "old"):
            error: type[Exception] = ValueError
            message = "in the future" if when == "future" else "more than 30 days ago"
        else:
            error = TypeError
            message = "not a valid Date" if when in ("nan", "inf") else "not of type 'date'"
        with pytest.raises(error, match=message):
            self.run(self.stub.bookmark_for(arg))

    # -- the check --

    @invariant()
    def storage_is_the_model(self) -> None:
        assert self.run(self.stub.state()) == self.now


class PitrModelOnDisk(PitrModel):
    disk = True


class TestFound:
    """What the state machine found, kept as plain regression tests."""

    async def test_idle_eviction_keeps_the_history_of_an_object_that_only_took_bookmarks(self) -> None:
        """An in-memory object that never wrote but handed out bookmarks, evicted for being idle
        (``idle_timeout``, 70 s): its history was forgotten with its empty database, so the next
        bookmark sorted before the earlier ones (``...-00000000-00000000-...`` again) and those were
        refused as "another history". workerd's ``sql-test.js`` asserts that successive
        ``getCurrentBookmark()`` results increase; a bookmark handed out stays restorable."""
        clock = MockClock(start=T0)
        async with durable.Runtime(clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pitr).get_by_name("m")
            first = await stub.bookmark()
            second = await stub.bookmark()
            await clock.advance(3600)  # idle for longer than idle_timeout: evicted
            third = await stub.bookmark()
            assert first < second < third
            await stub.request(second)
            await evict(stub)
            assert await stub.state() == EMPTY


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


TestPitrModelInMemory = PitrModel.TestCase
TestPitrModelInMemory.settings = _settings(EXAMPLES)
TestPitrModelOnDisk = PitrModelOnDisk.TestCase
# Fewer on disk: SQLite's fsyncs make each example ~0.25 s; the memory runs cover the rest.
TestPitrModelOnDisk.settings = _settings(max(1, EXAMPLES // 3))
