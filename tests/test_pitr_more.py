"""Point-in-time recovery, measured against workerd: argument errors, bookmark order, restore flows.

The errors of ``getBookmarkForTime`` and ``onNextSessionRestoreBookmark`` for bad arguments, and
the order of successive ``getCurrentBookmark`` results, were measured with miniflare 4
(compatibility date 2026-04-07); workerd's local back-end implements nothing else of the API, so
the restore flows follow Cloudflare's documentation (see ``docs/recovery.md``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock, evict

T0 = 1_700_000_000
DAY = 24 * 3600

NOT_A_DATE = "Failed to execute 'getBookmarkForTime' on 'DurableObjectStorage': parameter 1 is not of type 'date'."
INVALID_DATE = "The value cannot be converted because it is not a valid Date."
NOT_A_STRING = (
    "Failed to execute 'onNextSessionRestoreBookmark' on 'DurableObjectStorage': parameter 1 is not of type 'string'"
)


class Pit(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def bookmarks(self, n: int) -> list[str]:
        return [await self.ctx.storage.get_current_bookmark() for _ in range(n)]

    async def bookmark_for(self, when: Any) -> str:
        return await self.ctx.storage.get_bookmark_for_time(when)

    async def restore(self, bookmark: Any) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)

    async def snapshot(self) -> durable.DurableObjectSnapshot:
        return await self.ctx.storage.snapshot()

    async def schedule(self, snapshot: durable.DurableObjectSnapshot) -> str:
        return await self.ctx.on_next_session_restore(snapshot)

    async def restore_unawaited(self) -> str:
        bookmark = self.ctx.storage.get_bookmark_for_time(T0 * 1000)  # not awaited, as in Cloudflare's example
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)  # type: ignore[arg-type]

    async def snapshot_unawaited(self) -> None:
        await self.ctx.storage.snapshot(self.ctx.storage.get_current_bookmark())  # type: ignore[arg-type]

    async def alarm_at(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm(self) -> None:
        pass


@pytest.fixture(params=["memory", "disk"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[durable.Runtime]:
    path = tmp_path / "state" if request.param == "disk" else None
    async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
        yield rt


class TestTimeArgument:
    """workerd converts getBookmarkForTime's argument to a kj::Date, with JSG's TypeErrors."""

    @pytest.mark.parametrize("when", [float("nan"), float("inf"), float("-inf")])
    async def test_nan_and_infinities_are_not_valid_dates(self, runtime: durable.Runtime, when: float) -> None:
        """workerd: ``getBookmarkForTime(NaN)`` (and Infinity) rejects with ``TypeError: The value
        cannot be converted because it is not a valid Date.``"""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(TypeError) as info:
            await stub.bookmark_for(when)
        assert str(info.value) == INVALID_DATE

    @pytest.mark.parametrize(
        ("when", "message"),
        [
            (8.64e15, "This API doesn't support dates after 2189."),
            (1e300, "This API doesn't support dates after 2189."),
            (-8.64e15, "This API doesn't support dates before 1687."),
        ],
    )
    async def test_times_outside_kj_date_are_type_errors(
        self, runtime: durable.Runtime, when: float, message: str
    ) -> None:
        """workerd: ``getBookmarkForTime(8.64e15)`` rejects with ``TypeError: This API doesn't
        support dates after 2189.`` (JSG's kj::Date conversion), not a range error of its own."""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(TypeError) as info:
            await stub.bookmark_for(when)
        assert str(info.value) == message

    @pytest.mark.parametrize("when", ["abc", "123", None, True, {}, dt.date(2023, 11, 14)])
    async def test_other_types_get_workerds_message(self, runtime: durable.Runtime, when: Any) -> None:
        """workerd: a string, null, a bool, a BigInt or an object: ``TypeError: Failed to execute
        'getBookmarkForTime' on 'DurableObjectStorage': parameter 1 is not of type 'date'.`` (a Python
        ``date``, which has no time of day, gets a hint after it: tests/test_hunt_pitr.py)."""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(TypeError) as info:
            await stub.bookmark_for(when)
        if isinstance(when, dt.date):
            assert str(info.value).startswith(NOT_A_DATE + " (")
        else:
            assert str(info.value) == NOT_A_DATE

    async def test_argument_is_checked_before_the_backend(self, tmp_path: Path) -> None:
        """workerd checks the argument before its storage back-end refuses: on a key-value-backed
        object ``getBookmarkForTime('abc')`` is the TypeError, ``getBookmarkForTime(NaN)`` too."""
        async with durable.Runtime(point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit, storage="kv").get_by_name("a")
            with pytest.raises(TypeError, match="not of type 'date'"):
                await stub.bookmark_for("abc")
            with pytest.raises(TypeError, match="not a valid Date"):
                await stub.bookmark_for(float("nan"))
            with pytest.raises(TypeError, match="not of type 'string'"):
                await stub.restore(None)
            with pytest.raises(NotImplementedError, match="does not implement point-in-time recovery"):
                await stub.bookmark_for(T0 * 1000)
        async with durable.Runtime() as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            with pytest.raises(TypeError, match="not of type 'date'"):
                await stub.bookmark_for("abc")
            with pytest.raises(NotImplementedError, match="point_in_time_recovery=True"):
                await stub.bookmark_for(T0 * 1000)

    @pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/New_York"])
    @pytest.mark.parametrize(
        ("when", "message"),
        [
            (dt.datetime(1, 1, 1), "This API doesn't support dates before 1687."),
            (dt.datetime.max, "This API doesn't support dates after 2189."),
        ],
    )
    async def test_naive_datetimes_at_the_ends_are_workerds_type_errors(
        self, monkeypatch: pytest.MonkeyPatch, zone: str, when: dt.datetime, message: str
    ) -> None:
        """workerd: ``getBookmarkForTime(new Date("0001-01-01T00:00:00Z"))`` and ``setAlarm()`` of it
        reject with ``TypeError: This API doesn't support dates before 1687.`` (year 9999: ``after
        2189.``), miniflare 4, 2026-04-07. A naive datetime there raised Python's ``ValueError: year 0
        is out of range`` (or ``year 10000``, east of UTC) from its local-time conversion instead."""
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        try:
            async with durable.Runtime(point_in_time_recovery=True) as rt:
                stub = rt.namespace(Pit).get_by_name("a")
                with pytest.raises(TypeError) as info:
                    await stub.bookmark_for(when)
                assert str(info.value) == message
                with pytest.raises(TypeError) as info:
                    await stub.alarm_at(when)
                assert str(info.value) == message
        finally:
            monkeypatch.undo()
            time.tzset()

    async def test_seconds_are_named_in_the_error(self, runtime: durable.Runtime) -> None:
        """``time.time()`` (seconds) where ms are expected is a time in January 1970: refused as
        more than 30 days ago, the error now says the number looks like seconds."""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(ValueError, match=r"more than 30 days ago.*looks like seconds"):
            await stub.bookmark_for(T0 - 60)
        with pytest.raises(ValueError, match=r"more than 30 days ago") as info:
            await stub.bookmark_for((T0 - 31 * DAY) * 1000)
        assert "seconds" not in str(info.value)

    async def test_fractional_ms_are_truncated(self, runtime: durable.Runtime) -> None:
        """A fractional time names the same state as its whole ms (kj::Date from ``int64_t(millis)``)."""
        stub = runtime.namespace(Pit).get_by_name("a")
        await stub.put("k", 1)
        assert await stub.bookmark_for(T0 * 1000 + 0.9) == await stub.bookmark_for(T0 * 1000)


class TestRestoreArgument:
    async def test_missing_bookmark_is_workerds_type_error(self, runtime: durable.Runtime) -> None:
        """workerd: ``onNextSessionRestoreBookmark()`` rejects with ``TypeError: Failed to execute
        'onNextSessionRestoreBookmark' on 'DurableObjectStorage': parameter 1 is not of type 'string'.``"""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(TypeError, match=NOT_A_STRING):
            await stub.restore(None)
        with pytest.raises(TypeError, match=NOT_A_STRING):
            await stub.restore(5)

    async def test_an_unawaited_bookmark_says_to_await_it(self, runtime: durable.Runtime) -> None:
        """Cloudflare's own example (docs ``api/sqlite-storage-api.mdx``, both languages) passes
        ``getBookmarkForTime(...)`` on without ``await``. The TypeError said only "not Done"; it now
        says to await the call (workerd turns the Promise into a string and refuses that)."""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(TypeError, match=NOT_A_STRING) as info:
            await stub.restore_unawaited()
        assert "await get_bookmark_for_time() or get_current_bookmark()" in str(info.value)
        with pytest.raises(TypeError, match="'snapshot'") as info:
            await stub.snapshot_unawaited()
        assert "await get_bookmark_for_time() or get_current_bookmark()" in str(info.value)
        with pytest.raises(TypeError) as info:
            await stub.restore(5)
        assert "await" not in str(info.value)


class TestBookmarkOrder:
    async def test_each_call_sorts_after_the_previous_one(self, runtime: durable.Runtime) -> None:
        """workerd's ``sql-test.js`` (testSessionsAPIBookmark) asserts that each of 20 successive
        ``getCurrentBookmark()`` calls, with no write in between, is larger than the last ("new
        bookmark didn't advance!"); miniflare 4 measured: ``...-00000000-...``, ``...-00000001-...``."""
        stub = runtime.namespace(Pit).get_by_name("a")
        marks = await stub.bookmarks(20)
        await stub.put("k", 1)
        marks += [await stub.bookmark() for _ in range(3)]
        assert all(a < b for a, b in itertools.pairwise(marks)), marks

    async def test_unchanged_states_restore_the_same_data(self, runtime: durable.Runtime) -> None:
        """Bookmarks taken with no write in between name the same data: any of them restores it."""
        ns = runtime.namespace(Pit)
        stub = ns.get_by_name("a")
        await stub.put("k", "old")
        first, second = await stub.bookmarks(2)
        await stub.put("k", "new")
        for mark in (first, second):
            await stub.restore(mark)
            await evict(stub)
            assert await stub.get("k") == "old"
            await stub.put("k", "new")

    async def test_a_new_session_sorts_after_the_last(self, tmp_path: Path) -> None:
        """workerd keeps its counter in the database so that "bookmarks from the current workerd
        session sort after bookmarks from previous sessions" (``actor-sqlite.c++``)."""
        path = tmp_path / "state"
        async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            before = await stub.bookmark()
        async with durable.Runtime(path, clock=MockClock(start=T0 + 60), point_in_time_recovery=True) as rt:
            after = await rt.namespace(Pit).get_by_name("a").bookmark()
        assert before < after

    async def test_a_never_written_objects_bookmark_sorts_before_the_next_sessions(self, tmp_path: Path) -> None:
        """workerd (miniflare 4, 2026-04-07, persisted, one call per runtime): a fresh object's
        ``getCurrentBookmark()`` is ``00000000-00000000-00000000-...``, then ``...-00000001-...`` and
        ``...-00000002-...`` in the next two runtimes. durable handed out the empty state's bookmark
        again after a restart (nothing was written to say it had been handed out), equal to the last."""
        path = tmp_path / "state"
        marks = []
        for start in (T0, T0 + 60, T0 + 120):
            async with durable.Runtime(path, clock=MockClock(start=start), point_in_time_recovery=True) as rt:
                marks.append(await rt.namespace(Pit).get_by_name("a").bookmark())
                assert await durable.testing.list_ids(rt.namespace(Pit)) == []  # still no storage
        assert marks[0].startswith("00000000-00000000-00000000-")
        assert marks[0] < marks[1] < marks[2], marks

    async def test_object_that_never_wrote_still_starts_empty(self, runtime: durable.Runtime) -> None:
        """The first bookmark of a new object names the empty state; later ones restore to it."""
        ns = runtime.namespace(Pit)
        stub = ns.get_by_name("a")
        first, later = await stub.bookmarks(2)
        assert first.startswith("00000000-00000000-00000000-") and first < later
        await stub.put("k", 1)
        await stub.restore(later)
        await evict(stub)
        assert await stub.get("k") is None


_KILLED_MID_RESTORE = """
import asyncio, os, sys
import durable
import durable._sqlite
sys.path.insert(0, sys.argv[2])
from test_pitr_more import Pit

def die(image, conn):
    os._exit(9)  # killed while the restored image is being written: SQLite keeps the old state

durable._sqlite.copy_image = die

async def main():
    async with durable.Runtime(sys.argv[1], point_in_time_recovery=True) as rt:
        await rt.namespace(Pit).get_by_name("a").get("k")  # the start applies the restore, and dies

asyncio.run(main())
"""

_KILLED_AFTER_THE_COPY = """
import asyncio, os, sys
import durable
import durable._sqlite
sys.path.insert(0, sys.argv[2])
from test_pitr_more import Pit

copy = durable._sqlite.copy_image

def copy_then_die(image, conn):
    copy(image, conn)
    os._exit(9)  # killed once SQLite holds the restored state, before the history has it

durable._sqlite.copy_image = copy_then_die

async def main():
    async with durable.Runtime(sys.argv[1], point_in_time_recovery=True) as rt:
        await rt.namespace(Pit).get_by_name("a").get("k")  # the start applies the restore, and dies

asyncio.run(main())
"""


class TestRestoreThatDoesNotFinish:
    """A restore that fails or is killed before the restored state is written is not lost."""

    async def test_failed_restore_is_tried_again_at_the_next_start(
        self, runtime: durable.Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The restore used to be marked done before the image was written: a failure to write it
        (a full disk) reset the object, and the next start went on with the unrestored data."""
        import durable._sqlite

        ns = runtime.namespace(Pit)
        stub = ns.get_by_name("a")
        await stub.put("k", 1)
        mark = await stub.bookmark()
        await stub.put("k", 2)
        undo = await stub.restore(mark)
        calls = []

        def full_disk(image: bytes, conn: Any) -> None:
            calls.append(1)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(durable._sqlite, "copy_image", full_disk)
        await evict(stub)
        with pytest.raises(OSError, match="No space left"):
            await stub.get("k")
        assert calls == [1]
        monkeypatch.undo()
        stub = ns.get_by_name("a")
        assert await stub.get("k") == 1
        await stub.restore(undo)  # and the undo bookmark still names the state before the restore
        await evict(stub)
        assert await stub.get("k") == 2

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize("moment", ["while-writing", "after-the-copy"])
    async def test_kill_nine_during_a_restore(self, tmp_path: Path, moment: str) -> None:
        """``kill -9`` while the restore writes the database: the next start restores all the same.

        ``after-the-copy``: killed once SQLite holds the restored state but before the history
        recorded it. The undo bookmark named the restored state instead of the one before (the
        commit was recovered from the WAL as an ordinary state, and the restore done again after it).
        """
        import os
        import subprocess
        import sys

        script = _KILLED_MID_RESTORE if moment == "while-writing" else _KILLED_AFTER_THE_COPY
        path = tmp_path / "state"
        async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            mark = await stub.bookmark()
            await stub.put("k", 2)
            undo = await stub.restore(mark)
        here = Path(__file__).resolve().parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, "-c", script, str(path), str(here)], env=env, timeout=60, check=False)
        assert done.returncode == 9
        async with durable.Runtime(path, clock=MockClock(start=T0 + 60), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            assert await stub.get("k") == 1
            await stub.restore(undo)
            await evict(stub)
            assert await stub.get("k") == 2

    @pytest.mark.timeout(120)
    async def test_kill_nine_after_the_empty_state_was_written(self, tmp_path: Path) -> None:
        """The same for a restore to the state before the first write (the empty database): the
        restored file has a page but no schema, where the history's image of that state is empty;
        it was not recognised, and the undo bookmark named the empty state."""
        import os
        import subprocess
        import sys

        path = tmp_path / "state"
        async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            mark = await stub.bookmark()
            await stub.put("k", 1)
            await stub.put("k", 2)
            undo = await stub.restore(mark)
        here = Path(__file__).resolve().parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_THE_COPY, str(path), str(here)], env=env, timeout=60, check=False
        )
        assert done.returncode == 9
        async with durable.Runtime(path, clock=MockClock(start=T0 + 60), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            assert await stub.get("k") is None
            await stub.restore(undo)
            await evict(stub)
            assert await stub.get("k") == 2

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize("written", [True, False], ids=["written", "never-written"])
    async def test_kill_nine_after_a_snapshot_was_copied(self, tmp_path: Path, written: bool) -> None:
        """The same for a snapshot restore (``on_next_session_restore``), killed once SQLite holds
        the snapshot but before the log recorded it. The next open logged the snapshot's data as
        one more state of the session before and the restore then put its ``MARK`` after it: the
        undo bookmark restored the snapshot instead of the object's own data."""
        import os
        import subprocess
        import sys

        path = tmp_path / "state"
        async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            ns = rt.namespace(Pit)
            await ns.get_by_name("src").put("k", "snapshot")
            stub = ns.get_by_name("a")
            if written:
                await stub.put("k", "own")
            undo = await stub.schedule(await ns.get_by_name("src").snapshot())
        here = Path(__file__).resolve().parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_THE_COPY, str(path), str(here)], env=env, timeout=60, check=False
        )
        assert done.returncode == 9
        async with durable.Runtime(path, clock=MockClock(start=T0 + 60), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            assert await stub.get("k") == "snapshot"
            assert await stub.bookmark() > undo
            await stub.restore(undo)
            await evict(stub)
            assert await stub.get("k") == ("own" if written else None)
            assert not list(path.rglob("*.restore"))


class TestRetentionWithoutWrites:
    """The 30-day window prunes the log of an object that is no longer written to."""

    @pytest.mark.parametrize("touch", ["start", "bookmark"])
    async def test_an_old_log_shrinks_without_a_new_commit(self, tmp_path: Path, touch: str) -> None:
        """The log was compacted only at a commit: an object that was read, or asked for bookmarks,
        after its states fell out of the window kept them (and their bytes) for ever."""
        path = tmp_path / "state"
        clock = MockClock(start=T0)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            for i in range(20):
                await stub.put("big", str(i) * 20000)
        log = next(path.glob("Pit/*.history"))
        size = log.stat().st_size
        await clock.advance(31 * DAY + 2 * 3600)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            if touch == "start":
                assert await stub.get("big") == "19" * 20000
            else:
                await stub.bookmark()
            assert log.stat().st_size < size / 4
            assert await stub.get("big") == "19" * 20000
            await stub.restore(await stub.bookmark_for(clock.time_ms() - 30 * DAY * 1000))
            await evict(stub)
            assert await stub.get("big") == "19" * 20000


class TestForeignBookmarks:
    async def test_bookmark_of_another_runtime_says_so(self) -> None:
        """The same object in another runtime has another history: its bookmarks are refused, and
        the error says so (it spoke only of a history wiped by Runtime.reset())."""
        async with durable.Runtime(clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            theirs = await stub.bookmark()
        async with durable.Runtime(clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            with pytest.raises(ValueError, match="another history of this object: another runtime's"):
                await stub.restore(theirs)

    async def test_a_huge_string_is_not_repeated_in_the_error(self, runtime: durable.Runtime) -> None:
        """A 1 MB string is refused with a message of reasonable size (it held the whole string)."""
        stub = runtime.namespace(Pit).get_by_name("a")
        with pytest.raises(ValueError, match=r"Invalid bookmark: '0+'\.\.\. \(1000000 characters\)") as info:
            await stub.restore("0" * 1_000_000)
        assert len(str(info.value)) < 300


class TestPendingRestoreAcrossARuntimeWithoutHistory:
    async def test_applied_at_the_next_start_with_history(self, tmp_path: Path) -> None:
        """docs/recovery.md: a runtime with the history off neither applies nor cancels a pending
        restore; the next runtime with it on applies it, and the undo bookmark keeps what was written."""
        path = tmp_path / "state"
        clock = MockClock(start=T0)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            mark = await stub.bookmark()
            await stub.put("k", 2)
            undo = await stub.restore(mark)
        async with durable.Runtime(path, clock=clock) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            assert await stub.get("k") == 2
            await stub.put("k", 3)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            assert await stub.get("k") == 1
            await stub.restore(undo)
            await evict(stub)
            assert await stub.get("k") == 3
