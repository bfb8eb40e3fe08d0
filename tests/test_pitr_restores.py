"""Point-in-time recovery across restores: a model of every bookmark handed out, checked after each step.

Cloudflare's documentation says that bookmarks compare "lexically": one of an earlier point in time
is a smaller string (``api/sqlite-storage-api.mdx``), that a restore "can be undone by performing a
second recovery to" the bookmark ``onNextSessionRestoreBookmark`` returns, and (D1's Time Travel,
the same bookmarks) that restoring "does not remove or delete older bookmarks". workerd's local
back-end implements none of this (miniflare 4: ``This Durable Object's storage back-end does not
implement point-in-time recovery.``), so these follow the documentation.

Random writes (KV, SQL, the alarm, ``delete_all``), bookmarks, restores to any bookmark handed out
so far (undo bookmarks included, so restores of states from before earlier restores), object
restarts and, on disk, runtime restarts: every bookmark restores exactly the state it named (those
of ``getBookmarkForTime`` for each step's moment too), and every current or undo bookmark sorts
after those handed out before it.

A longer run: ``DURABLE_PITR_EXAMPLES=200 pytest tests/test_pitr_restores.py`` (the default, 20,
keeps the suite fast: an example on disk spends ~0.2 s in SQLite's fsyncs, and 40 of them took
5-6 s on a loaded CI machine).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable.testing import MockClock, evict

EXAMPLES = int(os.environ.get("DURABLE_PITR_EXAMPLES", "20"))
T0 = 1_700_000_000
FAR = (T0 + 3650 * 24 * 3600) * 1000
"""Alarm times that never fall due while a test runs."""

State = tuple[dict[str, int], list[int], int | None]


class Ledger(durable.DurableObject):
    async def put(self, key: str, value: int) -> None:
        await self.ctx.storage.put(key, value)

    async def insert(self, value: int) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", value)

    async def wipe(self) -> None:
        await self.ctx.storage.delete_all()

    async def arm(self, when: int | None) -> None:
        if when is None:
            await self.ctx.storage.delete_alarm()
        else:
            await self.ctx.storage.set_alarm(when)

    async def alarm(self) -> None:
        raise AssertionError("no alarm falls due in these tests")

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def request(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)

    async def state(self) -> State:
        sql = self.ctx.storage.sql
        has_t = sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 't'").one()["n"]
        rows = [row["v"] for row in sql.exec("SELECT v FROM t ORDER BY rowid")] if has_t else []
        return dict(await self.ctx.storage.list()), rows, await self.ctx.storage.get_alarm()

    async def bookmark_for(self, when: int) -> str:
        return await self.ctx.storage.get_bookmark_for_time(when)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from("abc"), st.integers(min_value=0, max_value=99)),
        st.tuples(st.just("insert"), st.integers(min_value=0, max_value=99)),
        st.tuples(st.just("wipe")),
        st.tuples(st.just("arm"), st.none() | st.integers(min_value=1, max_value=9)),
        st.tuples(st.just("bookmark")),
        st.tuples(st.just("restore"), st.floats(min_value=0, max_value=1)),
        st.tuples(st.just("restart")),
    ),
    min_size=1,
    max_size=30,
)


class TestRestoresOfRestores:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=steps, disk=st.booleans())
    def test_every_bookmark_restores_its_state_and_sorts_in_order(self, ops: list[Any], disk: bool) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(self.check(ops, Path(tmp) / "state" if disk else None))

    async def check(self, ops: list[Any], path: Path | None) -> None:
        clock = MockClock(start=T0)
        rt = durable.Runtime(path, clock=clock, point_in_time_recovery=True)
        kv: dict[str, int] = {}
        rows: list[int] = []
        alarm: int | None = None

        def now() -> State:
            return dict(kv), list(rows), alarm

        known: list[tuple[str, State]] = []  # every bookmark handed out, in order, and its state
        moments: list[tuple[int, State]] = [(clock.time_ms(), now())]  # the state after each step
        try:
            stub = rt.namespace(Ledger).get_by_name("m")
            known.append((await stub.bookmark(), now()))
            for op in ops:
                await clock.advance(60)
                if op[0] == "put":
                    kv[op[1]] = op[2]
                    await stub.put(op[1], op[2])
                elif op[0] == "insert":
                    rows.append(op[1])
                    await stub.insert(op[1])
                elif op[0] == "wipe":
                    kv, rows, alarm = {}, [], None  # delete_all() deletes the alarm too
                    await stub.wipe()
                elif op[0] == "arm":
                    alarm = None if op[1] is None else FAR + op[1]
                    await stub.arm(alarm)
                elif op[0] == "bookmark":
                    known.append((await stub.bookmark(), now()))
                elif op[0] == "restore":
                    target, then = known[int(op[1] * (len(known) - 1))]
                    known.append((await stub.request(target), now()))  # the undo: the state this session ends with
                    await evict(stub)  # the next call starts the object again, restored
                    kv, rows, alarm = dict(then[0]), list(then[1]), then[2]
                elif path is not None:  # restart the runtime on the same directory
                    await rt.aclose()
                    rt = durable.Runtime(path, clock=clock, point_in_time_recovery=True)
                    stub = rt.namespace(Ledger).get_by_name("m")
                else:
                    await evict(stub)
                assert await stub.state() == now(), op
                moments.append((clock.time_ms(), now()))
            known.append((await stub.bookmark(), now()))
            marks = [mark for mark, _ in known]
            assert marks == sorted(marks) and len(set(marks)) == len(marks)
            # getBookmarkForTime: each step's moment names the state after it (restores included).
            known += [(await stub.bookmark_for(at), state) for at, state in moments]
            for mark, expected in reversed(known):
                await clock.advance(60)
                await stub.request(mark)
                await evict(stub)
                assert await stub.state() == expected, mark
        finally:
            await rt.aclose()
