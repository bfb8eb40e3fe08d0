"""The parts of a history (``_history_log.HistoryLog``, ``_history_capture.HistoryCapture``), each without a runtime."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from durable._history import History
from durable._history_capture import HistoryCapture
from durable._history_log import BASE, CLOSE, DELTA, MARK, HistoryLog, unwal
from durable._sqlite import connect

T0 = 1_700_000_000_000
DAY = 24 * 3600 * 1000


class Clock:
    """A clock in ms that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def new_log(path: Path | None, clock: Clock, retention_ms: int = 30 * DAY) -> HistoryLog:
    return HistoryLog(path, namespace="N", hexid="h", now_ms=clock, fsync=False, retention_ms=retention_ms)


def rows(image: bytes) -> list[int]:
    """The values of table ``t`` in a database image (``[]`` without the table)."""
    conn = sqlite3.connect(":memory:")
    try:
        if image:
            conn.deserialize(unwal(image))
        if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0]:
            return []
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY rowid")]
    finally:
        conn.close()


def image_of(values: list[int]) -> bytes:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    conn.commit()
    try:
        return conn.serialize()
    finally:
        conn.close()


class TestHistoryLog:
    """The log alone: records appended, read back after a reload, compacted."""

    def test_states_survive_a_reload(self, tmp_path: Path) -> None:
        """States appended to a file log are read back, with their lineage, by a new log on the same file."""
        clock = Clock()
        log = new_log(tmp_path / "h.history", clock)
        log.load()
        log.append(BASE, 1, log.state_time(), image_of([1]))
        clock.now += 1000
        log.append(BASE, 2, log.state_time(), image_of([1, 2]))
        log.close()
        again = new_log(tmp_path / "h.history", clock)
        assert again.states() == [(1, T0), (2, T0 + 1000)]
        assert again.lineage == log.lineage != 0
        assert again.last_seq == 2
        assert rows(again.image_at(1)) == [1]
        assert rows(again.image_at(2)) == [1, 2]

    def test_a_torn_tail_is_cut_off(self, tmp_path: Path) -> None:
        """Bytes of a half-written record at the end are dropped on load; the records before stay."""
        clock = Clock()
        path = tmp_path / "h.history"
        log = new_log(path, clock)
        log.append(BASE, 1, log.state_time(), image_of([5]))
        log.close()
        size = path.stat().st_size
        with open(path, "ab") as handle:
            handle.write(b"\x10\x00\x00\x00torn")
        again = new_log(path, clock)
        assert again.states() == [(1, T0)]
        assert path.stat().st_size == size

    def test_state_times_never_go_backwards(self) -> None:
        """A state recorded after the clock went back takes the time of the last record."""
        clock = Clock()
        log = new_log(None, clock)
        log.append(BASE, 1, log.state_time(), image_of([1]))
        clock.now -= 5000
        assert log.state_time() == T0

    def test_a_request_is_pending_until_its_mark(self, tmp_path: Path) -> None:
        """A recorded restore request survives a reload; the MARK of its undo state clears it."""
        clock = Clock()
        path = tmp_path / "h.history"
        log = new_log(path, clock)
        log.append(BASE, 1, log.state_time(), image_of([1]))
        log.request(1, 1 << 32)
        log.close()
        again = new_log(path, clock)
        again.load()
        assert again.pending == (1, 1 << 32)
        again.append(MARK, 1 << 32, again.state_time(), b"")
        again.close()
        third = new_log(path, clock)
        third.load()
        assert third.pending is None
        assert third.last_seq == 1 << 32

    def test_compaction_folds_old_states_into_one_base(self) -> None:
        """States that ended before the window become one BASE; later states and their images stay."""
        clock = Clock()
        log = new_log(None, clock, retention_ms=DAY)
        for seq in (1, 2, 3):
            log.append(BASE, seq, log.state_time(), image_of(list(range(seq))))
            clock.now += DAY
        log.append(BASE, 4, log.state_time(), image_of([9]))
        before = log.size()
        log.compact()
        assert [seq for seq, _ in log.states()] == [3, 4]  # 3 was current a day (the window) ago
        assert rows(log.image_at(3)) == [0, 1, 2]
        assert rows(log.image_at(4)) == [9]
        assert log.size() < before

    def test_a_restores_mark_is_written_with_the_restored_state(self, tmp_path: Path) -> None:
        """The MARK a restore leads with goes into the same append as the restored state; an
        append that fails keeps it for the next one (it was lost, and the restore applied again
        at every start)."""
        import pytest

        clock = Clock()
        path = tmp_path / "h.history"
        log = new_log(path, clock)
        log.append(BASE, 1, log.state_time(), image_of([1]))
        log.request(1, 1 << 32)
        log.lead_with_mark(1 << 32)
        assert log.last_seq == 1 << 32  # the restored state follows the MARK
        store = log._store
        real = store.append

        def full(data: bytes) -> None:
            raise OSError(28, "No space left on device")

        store.append = full  # type: ignore[method-assign]
        with pytest.raises(OSError):
            log.append(BASE, log.last_seq + 1, log.state_time(), image_of([1]))
        store.append = real  # type: ignore[method-assign]
        log.append(BASE, log.last_seq + 1, log.state_time(), image_of([1]))
        log.settle_mark(done=True)  # taken by the append: nothing more to write
        log.close()
        again = new_log(path, clock)
        again.load()
        assert again.pending is None
        assert [seq for seq, _ in again.states()] == [1, 1 << 32, (1 << 32) + 1]

    def test_a_restore_that_failed_drops_its_mark(self) -> None:
        """settle_mark(done=False): no MARK, and the next state follows the last one as before."""
        clock = Clock()
        log = new_log(None, clock)
        log.append(BASE, 1, log.state_time(), image_of([1]))
        log.request(1, 1 << 32)
        log.lead_with_mark(1 << 32)
        log.settle_mark(done=False)
        assert log.last_seq == 1 and log.pending == (1, 1 << 32)
        log.settle_mark(done=True)  # nothing to settle any more
        assert [seq for seq, _ in log.states()] == [1]


class TestHistoryCapture:
    """Capture alone: a connection's commits become state records of the log."""

    def test_every_commit_of_a_file_database_is_a_delta(self, tmp_path: Path) -> None:
        """Each commit of a WAL database is copied as one DELTA whose image is the database after it."""
        clock = Clock()
        file = tmp_path / "obj.sqlite"
        conn = connect(file)
        log = new_log(tmp_path / "obj.history", clock)
        capture = HistoryCapture(log)
        capture.opened(conn, file)
        conn.execute("CREATE TABLE t (v)")
        capture.committed(conn, file)
        for value in (1, 2):
            conn.execute("INSERT INTO t VALUES (?)", (value,))
            capture.committed(conn, file)
        assert [rows(log.image_at(seq)) for seq, _ in log.states()] == [[], [], [1], [1, 2]]
        state = log.last_state_entry()
        assert state is not None and state.kind == DELTA
        capture.closing(conn, file)
        conn.close()
        capture.closed(file)
        last = log.last_entry()
        assert last is not None and last.kind == CLOSE

    def test_in_memory_commits_are_page_diffs(self) -> None:
        """An in-memory database's commits are recorded from its image; a commit that changes nothing adds nothing."""
        clock = Clock()
        conn = sqlite3.connect(":memory:", isolation_level=None)
        log = new_log(None, clock)
        capture = HistoryCapture(log)
        capture.opened(conn, None)
        conn.execute("CREATE TABLE t (v)")
        capture.committed(conn, None)
        conn.execute("INSERT INTO t VALUES (4)")
        capture.committed(conn, None)
        capture.committed(conn, None)
        assert [rows(log.image_at(seq)) for seq, _ in log.states()] == [[], [], [4]]
        conn.close()


class TestHistory:
    """``History`` holds one log and one capture, and answers the bookmark calls from them."""

    def test_history_is_made_of_its_log_and_capture(self) -> None:
        """The capture writes into the history's own log, whose states the history reports."""
        history = History(None, namespace="N", hexid="h", now_ms=Clock())
        assert history.capture.history_log is history.log
        conn = sqlite3.connect(":memory:", isolation_level=None)
        history.opened(conn, None)
        conn.execute("CREATE TABLE t (v)")
        history.committed(conn, None)
        assert history.states() == history.log.states()
        assert history.parse(history.current_bookmark()) == history.log.last_seq == 1
        conn.close()
