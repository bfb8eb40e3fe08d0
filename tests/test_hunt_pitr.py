"""Point-in-time recovery: deviations found by probing (see ``docs/recovery.md``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock, evict

T0 = 1_700_000_000
DAY = 24 * 3600


class Pit(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)


class TestLogGrowth:
    async def test_restarts_without_writes_do_not_grow_the_log(self, tmp_path: Path) -> None:
        """Each clean close recorded a CLOSE (45 bytes) that nothing ever dropped: an object only read,
        and evicted between reads, grew its log forever (compaction keeps what follows the last state)."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            await evict(stub)
            (log,) = tmp_path.rglob("*.history")
            size = log.stat().st_size
            for _ in range(5):
                assert await stub.get("k") == 1
                await evict(stub)
                await clock.advance(DAY)
            assert log.stat().st_size == size
            bookmark = await stub.bookmark()
            await stub.put("k", 2)
            await stub.restore(bookmark)
            await evict(stub)
            assert await stub.get("k") == 1

    async def test_the_same_restore_asked_for_again_does_not_grow_the_log(self, tmp_path: Path) -> None:
        """Each on_next_session_restore_bookmark() appended a REQUEST record, the same one too: a
        session asking again and again (a retried request, without abort()) grew the log forever."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            bookmark = await stub.bookmark()
            await stub.put("k", 2)
            undo = await stub.restore(bookmark)
            (log,) = tmp_path.rglob("*.history")
            size = log.stat().st_size
            for _ in range(5):
                assert await stub.restore(bookmark) == undo
            assert log.stat().st_size == size
            await evict(stub)
            assert await stub.get("k") == 1
            await stub.restore(undo)
            await evict(stub)
            assert await stub.get("k") == 2


class TestTimeArgument:
    async def test_a_date_without_time_says_what_to_pass(self) -> None:
        """``get_bookmark_for_time(date.today())`` said "parameter 1 is not of type 'date'" for a date,
        workerd's words for a value that is no JavaScript Date; it now says what to pass instead."""

        class Dates(durable.DurableObject):
            async def for_day(self) -> str:
                return await self.ctx.storage.get_bookmark_for_time(dt.date(2023, 11, 14))  # type: ignore[arg-type]

        async with durable.Runtime(clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            with pytest.raises(TypeError, match=r"not of type 'date'\. \(a datetime\.date has no time of day"):
                await rt.namespace(Dates).get_by_name("a").for_day()


class TestCloseRecord:
    """The ``CLOSE`` record a clean close writes (``HistoryLog.control``) is only a shortcut for the
    next open: failing to write it, or dying while it replaces the one before, loses nothing."""

    async def test_a_close_record_that_cannot_be_written_is_logged_not_raised(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A full disk at the clean close raised ``OSError`` out of the close (``evict()``, an idle
        eviction, the runtime's shutdown), and left the log's file open."""
        from durable import _history_log

        append = _history_log._Store.append

        def full_for_close(store: Any, data: bytes) -> None:
            if data[8] == _history_log.CLOSE:  # (the kind byte of the record)
                raise OSError(28, "No space left on device")
            append(store, data)

        async with durable.Runtime(tmp_path, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            bookmark = await stub.bookmark()
            await stub.put("k", 2)
            monkeypatch.setattr(_history_log._Store, "append", full_for_close)
            await evict(stub)  # (raised OSError)
            assert "could not record its clean close" in caplog.text
            monkeypatch.undo()
            assert await stub.get("k") == 2
            await stub.restore(bookmark)
            await evict(stub)
            assert await stub.get("k") == 1

    async def test_killed_between_dropping_the_last_close_and_appending_its_successor(self, tmp_path: Path) -> None:
        """``kill -9`` after ``control()`` cut the log's last ``CLOSE`` and before it appended the new one:
        the next open compares the file with the log's last state, and every state stays restorable."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            first = await stub.bookmark()
            await stub.put("k", 2)
            await evict(stub)
        (path,) = tmp_path.rglob("*.history")
        history = _log_of(path)
        last = history.last_entry()
        assert last is not None and last.kind == _history_log_module().CLOSE
        history.close()
        with open(path, "r+b") as handle:  # the file as the kill left it: the CLOSE cut, none after
            handle.truncate(last.offset - _history_log_module()._REC.size)
        states = len(_log_of(path).states())
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            assert await stub.get("k") == 2
            await stub.restore(first)
            await evict(stub)
            assert await stub.get("k") == 1
        reopened = _log_of(path)
        kinds = [entry.kind for entry in reopened._entries]
        assert _history_log_module().BASE not in kinds  # the file was the log's last state: no new BASE
        assert len(reopened.states()) == states + 2  # the restore's undo MARK and restored state only

    def test_control_on_a_log_not_loaded_yet_reads_it_first(self, tmp_path: Path) -> None:
        """``HistoryLog.control()`` on a log not loaded yet took it for empty and repeated its last record."""
        mod = _history_log_module()
        path = tmp_path / "obj.history"
        first = _log_of(path)
        first.append(mod.DELTA, 1, T0 * 1000, b"x")
        first.control(mod.CLOSE, 0, b"c" * 16)
        first.close()
        size = path.stat().st_size
        again = _log_of(path, load=False)
        again.control(mod.CLOSE, 0, b"c" * 16)
        again.close()
        assert path.stat().st_size == size


def _history_log_module() -> Any:
    from durable import _history_log

    return _history_log


def _log_of(path: Path, *, load: bool = True) -> Any:
    log = _history_log_module().HistoryLog(
        path, namespace="Pit", hexid="00" * 32, now_ms=lambda: T0 * 1000, fsync=False, retention_ms=30 * DAY * 1000
    )
    if load:
        log.load()
    return log


class TestRebuildBound:
    """Rebuilding a state replayed every ``DELTA`` since the last compaction (20,000 commits: 0.2 s,
    growing with the object's age): a ``BASE`` of the state just committed now follows its ``DELTA``
    once the ``DELTA``s since the last ``BASE`` outgrow the bound, and a rebuild starts there."""

    @pytest.mark.parametrize("persisted", [True, False])
    async def test_states_stay_restorable_with_checkpoints(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, persisted: bool
    ) -> None:
        from durable import _history_capture, _history_log

        monkeypatch.setattr(_history_capture, "REBUILD_MIN_BYTES", 0)
        monkeypatch.setattr(_history_capture, "REBUILD_RATIO", 2)
        clock = MockClock(start=T0)
        path = tmp_path if persisted else None
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            marks = []
            for value in range(12):
                await stub.put("k", value)
                marks.append(await stub.bookmark())
                await clock.advance(1)
            history = (await _host_history(stub)).log
            kinds = [(entry.kind, entry.seq) for entry in history._entries]
            checkpoints = [seq for kind, seq in kinds if kind == _history_log.BASE]
            assert checkpoints, "no BASE bounds the rebuild"
            assert all((_history_log.DELTA, seq) in kinds for seq in checkpoints)  # each follows its DELTA
            limit = 2 * len(history.image_at(history.last_seq))
            assert history.replayed_bytes() <= limit + 3 * 4096 + 64
            seqs = [seq for seq, _ in history.states()]
            assert len(seqs) == len(set(seqs))  # a checkpoint is no state of its own
            await stub.restore(marks[3])
            await evict(stub)
            assert await stub.get("k") == 3
            await stub.restore(marks[10])
            await evict(stub)
            assert await stub.get("k") == 10


async def _host_history(stub: Any) -> Any:
    from durable._stub import host_of

    return host_of(stub).db.history


class TestCrashAfterACheckpoint:
    def test_the_commits_a_kill_left_in_the_wal_are_states_of_their_own(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed after a checkpoint (the ``BASE`` following a ``DELTA``), the next open took the log's
        last state for a ``BASE`` and compared the database with it: the commits the WAL held were
        one ``BASE``, not a state each (their bookmarks named nothing). It continues from the DELTA."""
        import sqlite3

        from durable import _history_capture, _history_log
        from durable._history_capture import HistoryCapture

        monkeypatch.setattr(_history_capture, "REBUILD_MIN_BYTES", 0)
        monkeypatch.setattr(_history_capture, "REBUILD_RATIO", 1)
        file = tmp_path / "obj.sqlite"
        conn = sqlite3.connect(file, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        capture = HistoryCapture(_log_of(tmp_path / "obj.history", load=False))
        capture.opened(conn, file)
        conn.execute("CREATE TABLE t (v)")
        capture.committed(conn, file)
        written: list[int] = []
        while len(written) < 10:
            written.append(len(written) + 1)
            conn.execute("INSERT INTO t VALUES (?)", (written[-1],))
            capture.committed(conn, file)
            last = capture.history_log.last_entry()
            if last is not None and last.kind == _history_log.BASE:
                break  # (a checkpoint ends the log)
        assert last is not None and last.kind == _history_log.BASE
        lost = [written[-1] + 1, written[-1] + 2]
        for value in lost:
            conn.execute("INSERT INTO t VALUES (?)", (value,))  # killed before the log has them
        capture.history_log.close()
        reopened = sqlite3.connect(file, isolation_level=None)
        history = _log_of(tmp_path / "obj.history", load=False)
        HistoryCapture(history).opened(reopened, file)
        values = [_rows(history.image_at(seq)) for seq, _ in history.states()]
        assert values[-3:] == [written, written + lost[:1], written + lost]
        reopened.close()
        conn.close()


def _rows(image: bytes) -> list[int]:
    import sqlite3

    from durable._history_log import unwal

    conn = sqlite3.connect(":memory:")
    try:
        if image:
            conn.deserialize(unwal(image))
        if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0]:
            return []
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY rowid")]
    finally:
        conn.close()
