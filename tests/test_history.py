"""Point-in-time recovery: bookmarks, restores of KV, SQL and alarm, undo, the 30-day window, restarts.

Every test runs on a :class:`durable.testing.MockClock`, so the times bookmarks are asked for are
exact. Objects are restored the Cloudflare way: ``on_next_session_restore_bookmark`` then
``ctx.abort()``; the next call builds a new instance on the restored storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable.testing import MockClock, evict, run_alarm

T0 = 1_700_000_000
DAY = 24 * 3600
FAR = (T0 + 3650 * DAY) * 1000
"""An alarm time that never falls due while a test runs (ten years after the start)."""


class Box(durable.DurableObject):
    """Writes KV pairs, SQL rows and its alarm; reports its whole state; restores bookmarks."""

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def delete(self, key: str) -> None:
        await self.ctx.storage.delete(key)

    async def insert(self, value: int) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", value)

    async def arm(self, when: int | None) -> None:
        if when is None:
            await self.ctx.storage.delete_alarm()
        else:
            await self.ctx.storage.set_alarm(when)

    async def state(self) -> tuple[dict[str, Any], list[int], int | None]:
        sql = self.ctx.storage.sql
        has_t = sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 't'").one()["n"]
        rows = [row["v"] for row in sql.exec("SELECT v FROM t ORDER BY rowid")] if has_t else []
        return dict(await self.ctx.storage.list()), rows, await self.ctx.storage.get_alarm()

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def put_and_bookmark(self, key: str, value: Any) -> str:
        await self.ctx.storage.put(key, value)
        return await self.ctx.storage.get_current_bookmark()

    async def bookmark_for(self, when: Any) -> str:
        return await self.ctx.storage.get_bookmark_for_time(when)

    async def restore(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)

    async def restore_now(self, bookmark: str) -> None:
        await self.ctx.storage.onNextSessionRestoreBookmark(bookmark)  # the camelCase alias
        self.ctx.abort("restoring")

    async def alarm(self, info: durable.AlarmInfo) -> None:
        await self.ctx.storage.put("alarm ran", info.scheduled_time)


async def restore(rt: durable.Runtime, stub: durable.Stub[Box], bookmark: str) -> durable.Stub[Box]:
    """Ask for ``bookmark`` and reset the object, as Cloudflare's docs do; returns a working stub.

    The stub that saw the reset stays broken, as on Cloudflare, so the caller goes on with a new one.
    """
    with pytest.raises(durable.ObjectAbortedError, match="restoring"):
        await stub.restore_now(bookmark)
    return rt.namespace(Box).get(stub.id)


@pytest.fixture(params=["memory", "disk"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[durable.Runtime]:
    path = tmp_path / "state" if request.param == "disk" else None
    async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
        yield rt


class TestBookmarks:
    async def test_current_bookmarks_increase(self, runtime: durable.Runtime) -> None:
        """Each commit's bookmark sorts after the previous one, as workerd's sql-test asserts."""
        stub = runtime.namespace(Box).get_by_name("a")
        marks = [await stub.bookmark()]
        for i in range(5):
            marks.append(await stub.put_and_bookmark("k", i))
        assert marks == sorted(marks) and len(set(marks)) == len(marks)
        assert all(len(m) == 59 for m in marks)

    async def test_bookmark_without_writes_still_advances(self, runtime: durable.Runtime) -> None:
        """Without a write in between, the next bookmark is larger (as workerd's) and names the same data."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 1)
        first, second = await stub.bookmark(), await stub.bookmark()
        assert first < second
        stub = await restore(runtime, stub, first)
        assert (await stub.state())[0] == {"k": 1}

    async def test_bookmark_of_another_object_is_refused(self, runtime: durable.Runtime) -> None:
        """A bookmark of object A given to object B raises, naming the problem."""
        ns = runtime.namespace(Box)
        mark = await ns.get_by_name("a").put_and_bookmark("k", 1)
        with pytest.raises(ValueError, match="not a bookmark of this Durable Object"):
            await ns.get_by_name("b").restore(mark)

    @pytest.mark.parametrize("bad", ["", "nonsense", "0000-0000", "g" * 62])
    async def test_malformed_bookmark_is_refused(self, runtime: durable.Runtime, bad: str) -> None:
        """A string that is no bookmark raises ValueError."""
        stub = runtime.namespace(Box).get_by_name("a")
        with pytest.raises(ValueError, match="Invalid bookmark"):
            await stub.restore(bad)

    async def test_non_string_bookmark_is_a_type_error(self, runtime: durable.Runtime) -> None:
        """A bookmark must be a str."""
        stub = runtime.namespace(Box).get_by_name("a")
        with pytest.raises(TypeError, match="bookmark is a str"):
            await stub.restore(42)

    async def test_time_in_future_or_too_old_is_refused(self, runtime: durable.Runtime) -> None:
        """getBookmarkForTime takes times within the last 30 days on the runtime clock."""
        stub = runtime.namespace(Box).get_by_name("a")
        with pytest.raises(ValueError, match="in the future"):
            await stub.bookmark_for((T0 + 10) * 1000)
        with pytest.raises(ValueError, match="more than 30 days ago"):
            await stub.bookmark_for((T0 - 31 * DAY) * 1000)
        with pytest.raises(TypeError, match="parameter 1 is not of type 'date'"):
            await stub.bookmark_for("yesterday")

    async def test_datetime_is_accepted(self, runtime: durable.Runtime) -> None:
        """A datetime names the same moment as its ms since the epoch."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 1)
        when = dt.datetime.fromtimestamp(T0, tz=dt.UTC)
        assert await stub.bookmark_for(when) == await stub.bookmark_for(T0 * 1000)

    async def test_object_that_never_wrote_has_the_empty_bookmark(self, runtime: durable.Runtime) -> None:
        """Before any write, the current bookmark names the empty state, and nothing is created."""
        stub = runtime.namespace(Box).get_by_name("a")
        mark = await stub.bookmark()
        assert mark.startswith("00000000-00000000-00000000-")
        assert await durable.testing.list_ids(runtime.namespace(Box)) == []


class TestOff:
    async def test_off_by_default_with_a_clear_error(self) -> None:
        """Without point_in_time_recovery=True, the calls say how to turn it on."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Box).get_by_name("a")
            with pytest.raises(NotImplementedError, match=r"point_in_time_recovery=True"):
                await stub.bookmark()
            with pytest.raises(NotImplementedError, match=r"point_in_time_recovery=True"):
                await stub.bookmark_for(0)

    async def test_kv_backend_raises_workerds_error(self) -> None:
        """Key-value-backed classes have no point-in-time recovery, with workerd's message."""
        async with durable.Runtime(point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box, storage="kv").get_by_name("a")
            with pytest.raises(NotImplementedError, match="does not implement point-in-time recovery"):
                await stub.bookmark()

    async def test_option_must_be_bool(self) -> None:
        """point_in_time_recovery takes a bool."""
        with pytest.raises(TypeError, match="must be a bool"):
            durable.Runtime(point_in_time_recovery="yes")  # type: ignore[arg-type]

    def test_camel_case_aliases(self) -> None:
        """getCurrentBookmark, getBookmarkForTime and onNextSessionRestoreBookmark alias the methods."""
        storage = durable.Storage
        assert storage.getCurrentBookmark is storage.get_current_bookmark
        assert storage.getBookmarkForTime is storage.get_bookmark_for_time
        assert storage.onNextSessionRestoreBookmark is storage.on_next_session_restore_bookmark


class TestRestore:
    async def test_restore_kv_sql_and_alarm(self, runtime: durable.Runtime) -> None:
        """KV pairs, SQL tables and the alarm all return to the bookmark."""
        clock = runtime.clock
        assert isinstance(clock, MockClock)
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", "old")
        await stub.insert(1)
        await stub.arm(FAR)
        before = await stub.state()
        mark = await stub.bookmark()
        await clock.advance(60)
        await stub.put("k", "new")
        await stub.put("other", 2)
        await stub.insert(2)
        await stub.arm(FAR + 1000)
        stub = await restore(runtime, stub, mark)
        assert await stub.state() == before

    async def test_restored_alarm_is_scheduled(self, runtime: durable.Runtime) -> None:
        """An alarm brought back by a restore fires when due; a removed one does not."""
        clock = runtime.clock
        assert isinstance(clock, MockClock)
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.arm((T0 + 100) * 1000)
        mark = await stub.bookmark()
        await stub.arm(None)
        stub = await restore(runtime, stub, mark)
        assert (await stub.state())[2] == (T0 + 100) * 1000  # restored when the object started again
        await clock.advance(200)
        kv, _, alarm = await stub.state()
        assert kv == {"alarm ran": (T0 + 100) * 1000} and alarm is None

    async def test_an_alarm_the_restore_removed_does_not_run(self, runtime: durable.Runtime) -> None:
        """The alarm set after the bookmark was pending when the restore was asked for: it falls
        due after the object restarted on the restored state, which has no alarm, so it does not
        run (it used to run once, on the restored data)."""
        clock = runtime.clock
        assert isinstance(clock, MockClock)
        stub = runtime.namespace(Box).get_by_name("a")
        mark = await stub.put_and_bookmark("x", "old")
        await stub.put("x", "new")
        await stub.arm((T0 + 5) * 1000)
        stub = await restore(runtime, stub, mark)
        await clock.advance(10)
        assert await stub.state() == ({"x": "old"}, [], None)

    async def test_run_alarm_after_a_restore_that_removed_it(self, runtime: durable.Runtime) -> None:
        """``run_alarm`` on an object whose pending restore removes its alarm runs nothing and
        returns False, as for an object without an alarm."""
        stub = runtime.namespace(Box).get_by_name("a")
        mark = await stub.put_and_bookmark("x", 1)
        await stub.arm(FAR)
        await stub.restore(mark)
        await evict(stub)
        assert await run_alarm(stub) is False
        assert await stub.state() == ({"x": 1}, [], None)

    async def test_undo_bookmark_round_trip(self, runtime: durable.Runtime) -> None:
        """The returned undo bookmark brings back the state the session ended with."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 1)
        mark = await stub.bookmark()
        await stub.put("k", 2)
        undo = await stub.restore(mark)
        await stub.put("k", 3)  # still part of this session: the undo bookmark includes it
        with pytest.raises(durable.ObjectAbortedError):
            await stub.restore_now(mark)
        stub = runtime.namespace(Box).get_by_name("a")
        assert (await stub.state())[0] == {"k": 1}
        assert undo > mark
        stub = await restore(runtime, stub, undo)
        assert (await stub.state())[0] == {"k": 3}
        assert (await stub.bookmark()) > undo

    async def test_restore_to_the_empty_state(self, runtime: durable.Runtime) -> None:
        """The bookmark taken before any write restores an object with no storage at all."""
        stub = runtime.namespace(Box).get_by_name("a")
        empty = await stub.bookmark()
        await stub.put("k", 1)
        await stub.insert(1)
        stub = await restore(runtime, stub, empty)
        assert await stub.state() == ({}, [], None)
        await stub.put("k", 2)  # and it keeps working
        assert (await stub.state())[0] == {"k": 2}

    async def test_restore_happens_only_at_next_start(self, runtime: durable.Runtime) -> None:
        """Until the object restarts, it keeps its current state; eviction is a restart too."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 1)
        mark = await stub.bookmark()
        await stub.put("k", 2)
        await stub.restore(mark)
        assert (await stub.state())[0] == {"k": 2}
        await evict(stub)
        assert (await stub.state())[0] == {"k": 1}

    async def test_bookmark_for_time_restores_that_moment(self, runtime: durable.Runtime) -> None:
        """Cloudflare's example: restore the object to how it was two days ago."""
        clock = runtime.clock
        assert isinstance(clock, MockClock)
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("day", 0)
        for day in range(1, 5):
            await clock.advance(DAY)
            await stub.put("day", day)
        two_days_ago = clock.time_ms() - 2 * DAY * 1000
        stub = await restore(runtime, stub, await stub.bookmark_for(two_days_ago))
        assert (await stub.state())[0] == {"day": 2}


class TestRetention:
    async def test_thirty_day_window(self, tmp_path: Path) -> None:
        """States older than 30 days are refused, and their bytes leave the log."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            old = await stub.put_and_bookmark("big", "x" * 20000)
            for i in range(20):
                await stub.put("big", str(i) * 20000)
            log = next(tmp_path.glob("Box/*.history"))
            size = log.stat().st_size
            await clock.advance(31 * DAY)
            await stub.put("k", "now")
            with pytest.raises(ValueError, match="more than 30 days ago"):
                await stub.bookmark_for(clock.time_ms() - 31 * DAY * 1000)
            with pytest.raises(ValueError, match="older than 30 days"):
                await stub.restore(old)
            assert log.stat().st_size < size / 4
            # What is within the window still restores: 30 days ago, the last big value.
            stub = await restore(rt, stub, await stub.bookmark_for(clock.time_ms() - 30 * DAY * 1000))
            assert (await stub.state())[0] == {"big": "19" * 20000}


class TestRestart:
    async def test_history_survives_a_restart(self, tmp_path: Path) -> None:
        """A persisted runtime reopened later restores bookmarks taken before."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            first = await stub.put_and_bookmark("k", 1)
            await stub.insert(7)
            await clock.advance(60)
            await stub.put("k", 2)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            assert (await stub.state())[0] == {"k": 2}
            stub = await restore(rt, stub, first)
            assert await stub.state() == ({"k": 1}, [], None)
            stub = await restore(rt, stub, await stub.bookmark_for(T0 * 1000 + 30_000))
            assert await stub.state() == ({"k": 1}, [7], None)

    async def test_pending_restore_survives_a_restart(self, tmp_path: Path) -> None:
        """A restore asked for just before the runtime closed happens when the object next starts."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            mark = await stub.put_and_bookmark("k", 1)
            await stub.put("k", 2)
            await stub.restore(mark)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            assert (await rt.namespace(Box).get_by_name("a").state())[0] == {"k": 1}

    async def test_reset_wipes_the_history(self, tmp_path: Path) -> None:
        """Runtime.reset() removes the logs with the databases; old bookmarks are refused."""
        async with durable.Runtime(tmp_path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            mark = await stub.put_and_bookmark("k", 1)
            await rt.reset()
            assert not list(tmp_path.glob("Box/*.history"))
            stub = rt.namespace(Box).get_by_name("a")
            await stub.put("k", 2)
            with pytest.raises(ValueError, match="earlier, wiped history|not reached"):
                await stub.restore(mark)

    async def test_writes_by_a_runtime_without_history_are_noticed(self, tmp_path: Path) -> None:
        """Writes made while the history was off never make a restore produce a state that never existed."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            await stub.put("a", 1)
        async with durable.Runtime(tmp_path, clock=clock) as rt:
            await rt.namespace(Box).get_by_name("a").put("b", 2)
        await clock.advance(10)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            mark = await stub.bookmark()
            await stub.put("c", 3)
            stub = await restore(rt, stub, mark)
            assert (await stub.state())[0] == {"a": 1, "b": 2}


class TestLongHistory:
    async def test_bookmarks_across_wal_checkpoints(self, tmp_path: Path) -> None:
        """Bookmarks taken before and after the WAL is checkpointed and restarted all restore exactly."""
        async with durable.Runtime(tmp_path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            marks: dict[int, str] = {}
            for i in range(2600):  # more than two WAL generations of 1000 frames
                await stub.put(f"k{i % 7}", i)
                if i % 450 == 0:
                    marks[i] = await stub.bookmark()
            for i, mark in sorted(marks.items(), reverse=True):
                stub = await restore(rt, stub, mark)
                expected = {f"k{j % 7}": j for j in range(i + 1)}
                assert (await stub.state())[0] == expected


# -- random writes, random moments ---------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 3600),  # seconds to wait before the operation
        st.one_of(
            st.tuples(st.just("put"), st.sampled_from("abcd"), st.integers() | st.text(max_size=300)),
            st.tuples(st.just("delete"), st.sampled_from("abcd")),
            st.tuples(st.just("insert"), st.integers(min_value=0, max_value=9)),
            st.tuples(st.just("arm"), st.none() | st.integers(min_value=1, max_value=1000)),
            st.tuples(st.just("evict")),
        ),
    ),
    min_size=1,
    max_size=25,
)


class TestModel:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        ops=operations, picks=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=4), disk=st.booleans()
    )
    def test_restores_match_a_model_of_every_moment(self, ops: list[Any], picks: list[float], disk: bool) -> None:
        """Random writes at random times; bookmarks for random moments restore exactly that moment's state."""
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(self.check(ops, picks, Path(tmp) if disk else None))

    async def check(self, ops: list[Any], picks: list[float], path: Path | None) -> None:
        clock = MockClock(start=T0)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("m")
            kv: dict[str, Any] = {}
            rows: list[int] = []
            alarm: int | None = None
            moments: list[tuple[int, tuple[dict[str, Any], list[int], int | None]]] = [
                (clock.time_ms(), ({}, [], None))
            ]
            for wait, op in ops:
                await clock.advance(wait)
                if op[0] == "put":
                    kv[op[1]] = op[2]
                    await stub.put(op[1], op[2])
                elif op[0] == "delete":
                    kv.pop(op[1], None)
                    await stub.delete(op[1])
                elif op[0] == "insert":
                    rows.append(op[1])
                    await stub.insert(op[1])
                elif op[0] == "evict":
                    await evict(stub)  # closes the database: the log goes on from a clean close
                    continue
                else:
                    alarm = None if op[1] is None else FAR + op[1]
                    await stub.arm(alarm)
                moments.append((clock.time_ms(), (dict(kv), list(rows), alarm)))
            await clock.advance(1)
            start, end = moments[0][0], clock.time_ms()
            for pick in picks:
                when = start + int(pick * (end - start))
                expected = [state for at, state in moments if at <= when][-1]
                await clock.advance(1)  # a restore is a new state too: keep it after the moments picked
                stub = await restore(rt, stub, await stub.bookmark_for(when))
                assert await stub.state() == expected


class TestDamagedLog:
    async def test_damaged_log_is_set_aside(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A log that cannot be read is moved aside with an error logged; the object keeps working."""
        async with durable.Runtime(tmp_path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            old = await stub.put_and_bookmark("k", 1)
        log_file = next(tmp_path.glob("Box/*.history"))
        log_file.write_bytes(b"garbage" * 10)
        async with durable.Runtime(tmp_path, clock=MockClock(start=T0 + 10), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Box).get_by_name("a")
            assert (await stub.state())[0] == {"k": 1}
            mark = await stub.put_and_bookmark("k", 2)
            with pytest.raises(ValueError, match="earlier, wiped history"):
                await stub.restore(old)
            await stub.put("k", 3)
            stub = await restore(rt, stub, mark)
            assert (await stub.state())[0] == {"k": 2}
        assert "cannot be read" in caplog.text
        assert list(tmp_path.glob("Box/*.history.damaged-*"))


def _put_and_ask(ctx: durable.State, promises: list[Awaitable[str]]) -> None:
    """A ``transaction_sync()`` closure: write ``k`` = 1, then ask for the current bookmark."""
    ctx.storage.kv.put("k", 1)
    promises.append(ctx.storage.get_current_bookmark())


class TestInsideTransaction:
    async def test_current_bookmark_awaited_in_a_transaction_is_refused(self, runtime: durable.Runtime) -> None:
        """Inside transaction() the commit is not yet possible: awaiting there is a clear error, not a hang."""
        stub = runtime.namespace(Box).get_by_name("a")

        async def body(obj: Any, ctx: durable.State) -> str:
            async def txn(t: durable.Transaction) -> str:
                await t.put("k", 1)
                with pytest.raises(RuntimeError, match="inside transaction"):
                    await ctx.storage.get_current_bookmark()
                return "ok"

            await ctx.storage.transaction(txn)
            return await ctx.storage.get_current_bookmark()

        mark = await durable.testing.run_in_object(stub, body)
        assert mark > "00000000-00000000"

    @pytest.mark.parametrize("kind", ["sync", "sync-rolled-back", "async"])
    async def test_called_in_a_transaction_and_awaited_after_it(self, runtime: durable.Runtime, kind: str) -> None:
        """workerd returns the Promise of a getCurrentBookmark() called inside transactionSync(), or
        inside a transaction() closure without awaiting it, and it resolves once awaited after the
        transaction (miniflare 4, 2026-04-07; also after a transactionSync() that threw). durable
        raised RuntimeError at the call, which rolled the user's transaction back. The bookmark
        names the state with the transaction's writes (none when it was rolled back)."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 0)

        async def body(obj: Any, ctx: durable.State) -> str:
            promises: list[Awaitable[str]] = []
            if kind == "async":

                async def closure(t: durable.Transaction) -> None:
                    await t.put("k", 1)
                    promises.append(ctx.storage.get_current_bookmark())

                await ctx.storage.transaction(closure)
            else:

                def sync() -> None:
                    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
                    ctx.storage.kv.put("k", 1)
                    promises.append(ctx.storage.get_current_bookmark())
                    if kind == "sync-rolled-back":
                        raise LookupError("rolled back")

                with contextlib.suppress(LookupError):
                    ctx.storage.transaction_sync(sync)
            return await promises[0]

        mark = await durable.testing.run_in_object(stub, body)
        await stub.put("k", 2)
        stub = await restore(runtime, stub, mark)
        assert (await stub.state())[0] == {"k": 0 if kind == "sync-rolled-back" else 1}

    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_called_in_a_transaction_sorts_before_one_called_after(
        self, runtime: durable.Runtime, kind: str
    ) -> None:
        """A bookmark asked for inside a transaction names the state at the call: one asked for
        after the transaction sorts after it, whichever is awaited first. workerd (miniflare 4,
        2026-04-07): ``transactionSync(() => { put; p1 = getCurrentBookmark() }); p2 =
        getCurrentBookmark(); await p2; await p1`` gives p1 < p2, also with ``transaction()``.
        durable asked for the first one only when it was awaited, so it sorted after the second."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 0)

        async def body(obj: Any, ctx: durable.State) -> tuple[str, str]:
            promises: list[Awaitable[str]] = []
            if kind == "sync":
                ctx.storage.transaction_sync(functools.partial(_put_and_ask, ctx, promises))
            else:

                async def closure(t: durable.Transaction) -> None:
                    await t.put("k", 1)
                    promises.append(ctx.storage.get_current_bookmark())
                    await t.put("k", 3)

                await ctx.storage.transaction(closure)
            after = ctx.storage.get_current_bookmark()
            second = await after
            return await promises[0], second

        first, second = await durable.testing.run_in_object(stub, body)
        assert first < second

    async def test_awaited_in_a_later_transaction_once_committed(self, runtime: durable.Runtime) -> None:
        """Called inside ``transaction_sync()``, awaited inside a later ``transaction()`` closure once
        the first one's writes have committed: workerd resolves it (miniflare 4, 2026-04-07:
        ``transactionSync(...); await sync(); await transaction(async () => await p1)``); durable
        raised "cannot be awaited inside transaction()". It names the state of the first one."""
        stub = runtime.namespace(Box).get_by_name("a")
        await stub.put("k", 0)

        async def body(obj: Any, ctx: durable.State) -> str:
            promises: list[Awaitable[str]] = []
            ctx.storage.transaction_sync(functools.partial(_put_and_ask, ctx, promises))
            await ctx.storage.sync()

            async def closure(t: durable.Transaction) -> str:
                await t.put("k", 2)
                return await promises[0]

            return await ctx.storage.transaction(closure)

        mark = await durable.testing.run_in_object(stub, body)
        stub = await restore(runtime, stub, mark)
        assert (await stub.state())[0] == {"k": 1}
