"""Resource leaks and unbounded growth, for an emulator embedded in a long-running application.

Each test repeats a workload, measures a resource after a warm-up, after N more iterations and
after N more again, and asserts that the second N grew it by (nearly) nothing: a leak is growth
in proportion to the iterations. Resources are counted (live objects of a type, open file
descriptors, threads, tasks, timers on the loop), never timed. The figures behind each test are
in docs/performance.md (Memory over time).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import threading
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing
from durable.testing import MockClock

pytestmark = pytest.mark.timeout(120)

T0 = 1_700_000_000


def live(type_name: str) -> int:
    """How many objects whose type is named ``type_name`` the garbage collector tracks."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ == type_name)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def growth(step: Callable[[], Awaitable[None]], measure: Callable[[], int]) -> tuple[int, int]:
    """``measure()`` after one ``step()`` (the warm-up), and after each of two more: the growth of
    the first and of the second repetition. The loop runs a few turns before each measure, so
    callbacks still queued (which hold what they will touch) have run."""
    counts = []
    for _ in range(3):
        await step()
        for _ in range(5):
            await asyncio.sleep(0)
        counts.append(measure())
    return counts[1] - counts[0], counts[2] - counts[1]


class Alarmed(durable.DurableObject):
    async def arm(self, ms: int) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now_ms() + ms)

    async def disarm(self) -> None:
        await self.ctx.storage.delete_alarm()

    async def alarm(self) -> None:
        await self.ctx.storage.put("fired", (await self.ctx.storage.get("fired") or 0) + 1)

    async def state(self) -> tuple[Any, Any]:
        return await self.ctx.storage.get_alarm(), await self.ctx.storage.get("fired")


@pytest.mark.timeout(120)
async def test_alarms_set_again_and_deleted_on_a_mock_clock_that_never_advances() -> None:
    """Every ``set_alarm`` of an object with an alarm cancels the old timer; a ``MockClock`` used
    to keep each cancelled timer (and the closure it calls) until time reached it, so a test that
    set alarms 1,000 times without advancing held 1,000 more of them (780 bytes each)."""
    clock = MockClock(start=T0)
    async with durable.Runtime(clock=clock) as rt:
        ns = rt.namespace(Alarmed)
        stubs = [ns.get_by_name(f"a{i}") for i in range(5)]

        async def step() -> None:
            for k in range(600):
                stub = stubs[k % 5]
                await stub.arm(60_000 + k)
                if k % 3 == 0:
                    await stub.disarm()

        grew = await growth(step, lambda: live("_MockTimer"))
        assert grew[1] <= 64 + 5, grew  # was +600 per 600 calls
        # The heap stayed a heap: each alarm still set (its last call did not disarm it) fires once.
        await clock.advance(120)
        states = [await stub.state() for stub in stubs]
        last = {k % 5: k for k in range(600)}
        assert states == [(None, None if last[i] % 3 == 0 else 1) for i in range(5)]


class Count(durable.DurableObject):
    async def inc(self) -> int:
        value = (await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", value)
        return int(value)


@pytest.mark.timeout(120)
async def test_history_of_a_live_object_costs_few_bytes_per_commit(tmp_path: Path) -> None:
    """A live object's history keeps an index of its log's records in memory, one per commit for
    the 30 days kept: about 205 bytes each as objects (4 MB per 20,000 commits), 33 packed."""
    async with durable.Runtime(tmp_path, point_in_time_recovery=True) as rt:
        stub = rt.namespace(Count).get_by_name("a")
        for _ in range(300):
            await stub.inc()
        tracemalloc.start()
        try:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(1500):
                await stub.inc()
            gc.collect()
            per_commit = (tracemalloc.get_traced_memory()[0] - before) / 1500
        finally:
            tracemalloc.stop()
        assert per_commit < 100, per_commit  # was 205
        assert await stub.inc() == 1801


class Tabled(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t(a)")  # read first: the table may exist

    async def count(self) -> int:
        return int(self.ctx.storage.sql.exec("SELECT count(*) AS n FROM t").one()["n"])

    async def read_across_creation(self) -> list[int]:
        sql = self.ctx.storage.sql
        cursor = sql.exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT x FROM c")
        first = next(cursor)["x"]
        sql.exec("CREATE TABLE u(a)")  # opens the real database while the cursor has rows left
        return [first] + [row["x"] for row in cursor]


def sqlite_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, sqlite3.Connection))


@pytest.mark.timeout(120)
async def test_objects_that_read_sql_before_they_have_storage_are_collected(tmp_path: Path) -> None:
    """A read made before an object has a database runs on a stand-in (scratch) connection,
    whose authorizer held the object's SQL state while a ``weakref.finalize`` held the connection:
    nothing of an evicted object was ever collected. Measured: 2 connections and about 60 KB of
    memory kept per object (1,000 objects, +2,000 connections, +60 MB of RSS)."""
    async with durable.Runtime(tmp_path, max_live_objects=10) as rt:
        ns = rt.namespace(Tabled)
        made = 0

        async def step() -> None:
            nonlocal made
            for _ in range(100):
                made += 1
                assert await ns.get_by_name(f"t{made}").count() == 0

        grew = await growth(step, sqlite_connections)
        assert grew[1] <= 5, grew  # was +200 per 100 objects
        fds_before = fds()
        await step()
        assert fds() <= fds_before + 2


class Reader(durable.DurableObject):
    async def look(self) -> int:
        storage = self.ctx.storage
        await storage.get("k")
        storage.sql.exec("SELECT 1").one()
        await storage.get_bookmark_for_time(self.ctx.now_ms())
        return 0


async def test_in_memory_objects_that_only_read_are_dropped_with_history_on() -> None:
    """An in-memory runtime keeps the database of an evicted object that wrote or handed out a
    bookmark (its history, docs/performance.md); one that only read, SQL included, or only asked
    ``get_bookmark_for_time()``, leaves nothing, with point-in-time recovery on as well."""
    async with durable.Runtime(point_in_time_recovery=True, max_live_objects=10) as rt:
        ns = rt.namespace(Reader)
        made = 0

        async def step() -> None:
            nonlocal made
            for _ in range(100):
                made += 1
                assert await ns.get_by_name(f"r{made}").look() == 0

        grew = await growth(step, lambda: live("ObjectDatabase"))
        assert grew[1] <= 5, grew


async def test_a_cursor_on_the_stand_in_database_reads_on_after_the_real_one_opens() -> None:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Tabled).get_by_name("a")
        assert await stub.read_across_creation() == [1, 2, 3]


class Alarmed2(Alarmed):
    async def both(self) -> None:
        await self.ctx.storage.put("k", 1)
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t(a)")
        await self.ctx.storage.set_alarm(self.ctx.now_ms() + 3_600_000)


async def test_runtimes_opened_and_closed_on_one_path_and_on_new_ones_release_everything(tmp_path: Path) -> None:
    """Descriptors, threads, SQLite connections and the loop's live timers return to where they
    were (measured over 300 runtimes: no growth)."""
    loop = asyncio.get_running_loop()
    made = 0

    async def step() -> None:
        nonlocal made
        for _ in range(15):
            made += 1
            path = tmp_path / ("same" if made % 2 else f"new{made}")
            async with durable.Runtime(path, point_in_time_recovery=made % 3 == 0) as rt:
                ns = rt.namespace(Alarmed2, name="A")
                await ns.get_by_name("a").both()
                await ns.get_by_name(f"b{made}").both()

    def resources() -> int:
        # asyncio's live timers (uvloop keeps its own out of Python's reach: not counted there)
        scheduled: list[asyncio.TimerHandle] = getattr(loop, "_scheduled", [])
        timers = sum(1 for h in scheduled if not h.cancelled())
        return fds() + threading.active_count() + sqlite_connections() + timers

    grew = await growth(step, resources)
    assert grew == (0, 0)


def test_blocking_runtimes_leave_no_thread_behind(tmp_path: Path) -> None:
    def step() -> None:
        for i in range(10):
            with durable.BlockingRuntime(tmp_path if i % 2 else None) as rt:
                assert rt.namespace(durable.Counter).get_by_name("a").increment() >= 1

    step()
    before = (threading.active_count(), fds())
    step()
    step()
    assert (threading.active_count(), fds()) == before


class Room(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        if request.url.endswith("/standard"):
            server.accept()
            server.add_event_listener("message", lambda event: server.send(f"echo {event.data}"))
        else:
            self.ctx.accept_web_socket(server, ["t"])
            server.serialize_attachment({"n": 1})
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send(f"echo {message!s}")


async def test_websockets_accepted_hibernated_woken_and_closed_leave_nothing() -> None:
    async with durable.Runtime() as rt:
        ns = rt.namespace(Room)

        async def step() -> None:
            for k in range(60):
                stub = ns.get_by_name(f"r{k % 4}")
                kind = ("hibernatable", "standard", "dropped")[k % 3]
                async with testing.websocket(stub, f"http://r/{kind}") as ws:
                    ws.send("a")
                    assert await ws.receive() == "echo a"
                    if kind == "hibernatable":
                        await testing.hibernate(stub)
                        ws.send("b")
                        assert await ws.receive() == "echo b"
                    elif kind == "dropped":
                        testing.disconnect(ws)
                if k % 10 == 0:
                    await testing.evict(stub)

        grew = await growth(step, lambda: live("WebSocket") + len(asyncio.all_tasks()))
        assert grew[1] <= 0, grew


@pytest.mark.timeout(120)  # I/O bound (each eviction checkpoints a file): slow disks under load
async def test_calls_over_more_objects_than_stay_live_keep_the_tables_bounded(tmp_path: Path) -> None:
    """Calls over 60 objects, 10 live at most, some evicted by hand (measured: 50,000 calls over
    2,000 objects, 1,000 live, no growth after the first round)."""
    async with durable.Runtime(tmp_path, max_live_objects=10) as rt:
        ns = rt.namespace(Count)
        stubs = [ns.get_by_name(f"c{i}") for i in range(60)]

        async def step() -> None:
            for k in range(120):
                await stubs[k % 60].inc()
                if k % 7 == 0:
                    await testing.evict(stubs[k % 60])

        grew = await growth(step, lambda: live("ObjectHost") + live("ObjectDatabase") + fds())
        assert grew[1] <= 0, grew
