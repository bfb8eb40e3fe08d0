"""``MetadataTable`` and the file helpers of ``_dbfile`` on their own, without an ``ObjectDatabase``.

``MetadataTable`` meets its database only through ``_dbfile.Connections``; these tests give it a
bare in-memory connection and look at SQLite directly.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from durable import DataCorruptionError, _dbfile
from durable._dbfile import SCHEMA_VERSION, connect, create_file, open_file, schema_entries
from durable._dbmeta import MetadataTable


class Connections:
    """A bare ``Connections``: one in-memory connection, ``BEGIN`` on the first write."""

    file: Path | None = None

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)

    def read_conn(self) -> sqlite3.Connection | None:
        return self.conn

    def write_conn(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        return self.conn

    def tagged(self, sql: str) -> str:
        return f"{sql} -- test"

    def tables(self) -> list[str]:
        return [name for kind, name in schema_entries(self.conn, "test") if kind == "table"]


@pytest.fixture
def conns() -> Iterator[Connections]:
    conns = Connections()
    yield conns
    conns.conn.close()  # an unclosed connection is a ResourceWarning when collected (3.13)


class TestAlarmRow:
    """The alarm lives in ``_cf_METADATA``, which exists from the first alarm on, as in workerd."""

    def test_deleting_creates_nothing(self, conns: Connections) -> None:
        """Deleting an alarm that was never set creates no table and opens no transaction."""
        meta = MetadataTable(conns)
        meta.set_alarm(None)
        assert meta.get_alarm() is None
        assert conns.tables() == [] and not conns.conn.in_transaction

    def test_the_first_alarm_creates_the_table(self, conns: Connections) -> None:
        """Setting an alarm creates ``_cf_METADATA`` and stores the time; ``None`` deletes it again."""
        meta = MetadataTable(conns)
        meta.set_alarm(1234)
        assert conns.tables() == ["_cf_METADATA"] and meta.exists
        assert meta.get_alarm() == 1234
        meta.set_alarm(None)
        assert meta.get_alarm() is None and conns.tables() == ["_cf_METADATA"]

    def test_an_alarm_that_is_not_an_integer_is_damage(self, conns: Connections) -> None:
        """An alarm stored as TEXT by another program is DataCorruptionError naming its type."""
        meta = MetadataTable(conns)
        meta.set_alarm(1)
        conns.conn.execute("UPDATE _cf_METADATA SET value = 'soon'")
        with pytest.raises(DataCorruptionError, match="its stored alarm is TEXT, not an INTEGER"):
            meta.get_alarm()


class TestLegacyRows:
    """A file of an older durable kept its name and schema version in ``_cf_METADATA``."""

    def _legacy(self, conns: Connections, *rows: tuple[str, object]) -> None:
        conns.conn.execute("CREATE TABLE _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        conns.conn.executemany("INSERT INTO _cf_METADATA VALUES (?, ?)", rows)

    def test_name_and_version_move_out(self, conns: Connections) -> None:
        """The name goes to the callback, the version to ``user_version``, and the emptied table is dropped."""
        self._legacy(conns, ("name", "counter"), ("schema_version", 1))
        found: list[str] = []
        assert MetadataTable(conns).clean_legacy(conns.conn, found.append) is True
        assert found == ["counter"] and conns.tables() == []
        assert conns.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    def test_an_alarm_keeps_the_table(self, conns: Connections) -> None:
        """With an alarm left in it, the table stays and only the alarm row remains."""
        self._legacy(conns, ("name", "counter"), ("alarm", 99))
        meta = MetadataTable(conns)
        assert meta.clean_legacy(conns.conn, lambda name: None) is False
        meta.exists = True
        assert meta.get_alarm() == 99
        assert conns.conn.execute("SELECT key FROM _cf_METADATA").fetchall() == [("alarm",)]

    def test_a_name_that_is_not_text_is_damage(self, conns: Connections) -> None:
        """A stored name that is not TEXT is DataCorruptionError, and nothing is changed."""
        self._legacy(conns, ("name", b"\x00"))
        with pytest.raises(DataCorruptionError, match="its stored name is a BLOB, not TEXT"):
            MetadataTable(conns).clean_legacy(conns.conn, lambda name: None)
        assert conns.conn.execute("SELECT count(*) FROM _cf_METADATA").fetchone()[0] == 1


class TestOpenFile:
    """``open_file`` creates a missing file (recording first) and checks an existing one."""

    def test_creates_after_the_callback(self, tmp_path: Path) -> None:
        """A new file is created in its folder, with its first page, after ``creating`` ran."""
        file = tmp_path / "NS" / "obj.sqlite"
        seen: list[bool] = []
        conn = open_file(file, synchronous="NORMAL", creating=lambda: seen.append(file.exists()))
        conn.close()
        assert seen == [False] and file.stat().st_size > 0

    def test_refuses_an_emptied_file(self, tmp_path: Path) -> None:
        """An existing empty file (truncated) is DataCorruptionError; ``creating`` is not called."""
        file = tmp_path / "obj.sqlite"
        file.write_bytes(b"")
        with pytest.raises(DataCorruptionError, match="empty"):
            open_file(file, synchronous="NORMAL", creating=lambda: pytest.fail("created"))


class TestCreateFile:
    """``create_file`` makes the process's first object file with SQLite, and copies it after that."""

    @pytest.fixture(autouse=True)
    def fresh_process(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_dbfile, "_first_page", None)  # as in a process that made no file yet
        monkeypatch.setattr(_dbfile, "_first_log", None)

    @staticmethod
    def _check_usable(file: Path) -> None:
        """``file`` opens in WAL mode with durable's schema version, takes a commit and keeps it."""
        conn = connect(file)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            conn.execute("CREATE TABLE t (v)")
            conn.execute("INSERT INTO t VALUES (42)")
        finally:
            conn.close()
        with sqlite3.connect(file) as again:
            assert again.execute("SELECT v FROM t").fetchall() == [(42,)]
        again.close()

    def test_later_files_are_copies_of_the_first(self, tmp_path: Path) -> None:
        """The second file has the first one's bytes and is as usable as the one SQLite made."""
        first, second = tmp_path / "NS" / "a.sqlite", tmp_path / "NS" / "b.sqlite"
        create_file(first, synchronous="NORMAL")
        assert _dbfile._first_page == first.read_bytes()
        create_file(second, synchronous="NORMAL")
        assert second.read_bytes() == first.read_bytes()
        assert sorted(p.name for p in first.parent.iterdir()) == ["a.sqlite", "b.sqlite"]
        self._check_usable(first)
        self._check_usable(second)

    def test_a_copy_makes_its_folder_and_replaces_a_leftover(self, tmp_path: Path) -> None:
        """A copy into a folder not made yet works; a ``-new`` file a crash left behind is overwritten."""
        create_file(tmp_path / "A" / "a.sqlite", synchronous="NORMAL")
        create_file(tmp_path / "B" / "b.sqlite", synchronous="FULL")  # the folder B does not exist yet
        self._check_usable(tmp_path / "B" / "b.sqlite")
        leftover = tmp_path / "B" / "c.sqlite-new"
        leftover.write_bytes(b"half a page from a crash" * 1000)
        create_file(tmp_path / "B" / "c.sqlite", synchronous="NORMAL")
        assert not leftover.exists()
        self._check_usable(tmp_path / "B" / "c.sqlite")

    def test_first_page_check(self, tmp_path: Path) -> None:
        """Only a one-page WAL-mode database with durable's schema version is kept for copying."""
        create_file(tmp_path / "a.sqlite", synchronous="NORMAL")
        image = (tmp_path / "a.sqlite").read_bytes()
        assert _dbfile._is_first_page(image)
        rollback_mode = image[:18] + b"\x01\x01" + image[20:]
        other_version = image[:60] + (SCHEMA_VERSION + 1).to_bytes(4, "big") + image[64:]
        for bad in (rollback_mode, other_version, image[:100], image + image, b"", b"not a database" * 300):
            assert not _dbfile._is_first_page(bad)

    def test_an_image_that_fails_the_check_is_not_kept(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If SQLite ever made another kind of first file, every file would still be made by SQLite."""
        monkeypatch.setattr(_dbfile, "_is_first_page", lambda image: False)
        create_file(tmp_path / "a.sqlite", synchronous="NORMAL")
        create_file(tmp_path / "b.sqlite", synchronous="NORMAL")
        assert _dbfile._first_page is None
        self._check_usable(tmp_path / "b.sqlite")


def _wait_ready(spares: _dbfile.Spares, folder: Path) -> None:
    """Wait (at most 60 s, for a loaded machine) until ``spares`` has a spare ready in ``folder``."""
    for _ in range(6000):
        with spares._lock:
            if folder in spares._ready:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"no spare was made in {folder}")


class TestSpares:
    """New object files made ahead by a thread (``_dbfile.Spares``): a new file is then a rename.

    Measured (docs/performance.md, tenth pass): the write and ``fdatasync`` of a new object's
    first page were about half a millisecond of the ~1.7 ms that making a new object added to
    1000 concurrent calls on it; with a spare ready the object's first call makes no sync of its
    own file (strace: 50 new objects, 50 renames of the spare, no ``fdatasync`` of a new file on
    the loop's thread).
    """

    def test_a_new_file_is_the_spare_made_ahead(self, tmp_path: Path) -> None:
        spares = _dbfile.Spares(tmp_path)
        folder = tmp_path / "NS"
        try:
            create_file(folder / "a.sqlite", synchronous="NORMAL")
            _wait_ready(spares, folder)
            spare = folder / _dbfile.SPARE_FILE
            inode = spare.stat().st_ino
            assert spare.read_bytes() == (folder / "a.sqlite").read_bytes()
            create_file(folder / "b.sqlite", synchronous="NORMAL")
            assert (folder / "b.sqlite").stat().st_ino == inode  # renamed, not written again
            TestCreateFile._check_usable(folder / "b.sqlite")
        finally:
            spares.close()
        assert sorted(p.name for p in folder.iterdir()) == ["a.sqlite", "b.sqlite"]  # close() deleted the next spare
        assert not any(t.name == "durable-spare-files" for t in threading.enumerate())

    def test_a_spare_deleted_behind_durables_back_is_not_needed(self, tmp_path: Path) -> None:
        spares = _dbfile.Spares(tmp_path)
        folder = tmp_path / "NS"
        try:
            create_file(folder / "a.sqlite", synchronous="NORMAL")
            _wait_ready(spares, folder)
            (folder / _dbfile.SPARE_FILE).unlink()
            create_file(folder / "b.sqlite", synchronous="NORMAL")
            TestCreateFile._check_usable(folder / "b.sqlite")
        finally:
            spares.close()

    async def test_a_runtime_deletes_its_spares_and_those_a_killed_one_left(self, tmp_path: Path) -> None:
        import durable

        leftover = tmp_path / "Counter" / _dbfile.SPARE_FILE
        leftover.parent.mkdir(parents=True)
        leftover.write_bytes(b"half a page from a killed runtime")
        leftover_log = tmp_path / "Counter" / _dbfile.SPARE_LOG
        leftover_log.write_bytes(b"half a log from a killed runtime")
        async with durable.Runtime(tmp_path) as rt:
            assert not leftover.exists()  # deleted when the path was opened
            assert not leftover_log.exists()
            ns = rt.namespace(durable.Counter)
            assert await ns.get_by_name("a").increment() == 1
            spares = rt._directory.spares
            assert spares is not None
            _wait_ready(spares, leftover.parent)
            assert await ns.get_by_name("b").increment() == 1  # its file is the spare
        assert not leftover.exists()  # deleted when the runtime closed
        assert not leftover_log.exists()
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            assert await ns.get_by_name("a").get_counter_value() == 1
            assert await ns.get_by_name("b").get_counter_value() == 1

    def test_the_thread_never_makes_a_folder(self, tmp_path: Path) -> None:
        """A folder removed before its spare is written (the path deleted while the runtime runs) stays removed.

        Before: the thread's write made the folder again, and the runtime's path above it, in
        the background: a ``shutil.rmtree`` of the path could fail (a file appeared in a folder it
        was emptying) or find the path back once it returned.
        """
        create_file(tmp_path / "first" / "a.sqlite", synchronous="NORMAL")  # (the process's first page)
        path = tmp_path / "removed"
        spares = _dbfile.Spares(path)
        try:
            spares.want(path / "NS")
            _wait_idle(spares, path / "NS")
            assert not path.exists()
        finally:
            spares.close()
        assert not path.exists()

    def test_close_writes_no_spare_queued_before_it(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``close()`` (``aclose()``, on the loop's thread) waits for the spare being written, not for the queued ones.

        Before: the thread wrote and synced the spare of every folder queued before ``close()``
        (one ``fdatasync`` each) while ``close()`` waited, and ``close()`` then deleted them all.
        """
        create_file(tmp_path / "first" / "a.sqlite", synchronous="NORMAL")
        folders = [tmp_path / name for name in ("A", "B", "C")]
        for folder in folders:
            folder.mkdir()
        written: list[Path] = []
        writing, go_on = threading.Event(), threading.Event()
        write = _dbfile._write_synced

        def slow_write(temp: Path, image: bytes, **options: bool) -> None:
            if temp.name == _dbfile.SPARE_FILE:  # (its log, SPARE_LOG, is written after it)
                written.append(temp.parent)
                writing.set()
                go_on.wait(60)
            write(temp, image, **options)

        monkeypatch.setattr(_dbfile, "_write_synced", slow_write)
        spares = _dbfile.Spares(tmp_path)
        for folder in folders:
            spares.want(folder)
        assert writing.wait(60)
        closing = threading.Thread(target=spares.close)
        closing.start()
        for _ in range(6000):  # (until close() has begun: it then waits for the thread)
            if spares._closed:
                break
            threading.Event().wait(0.01)
        go_on.set()
        closing.join(60)
        assert not closing.is_alive()
        assert written == [folders[0]]
        assert [p for folder in folders for p in folder.iterdir()] == []

    def test_a_spare_written_while_closing_is_deleted(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A runtime collected without ``aclose()`` on the spare thread itself (its finalizer runs ``close()``
        there, mid-write) leaves no spare behind.

        Before: ``close()`` deleted the spare before the thread had written it; the thread then
        wrote it and marked it ready, and it stayed in the folder after the runtime was gone.
        """
        create_file(tmp_path / "first" / "a.sqlite", synchronous="NORMAL")
        folder = tmp_path / "NS"
        folder.mkdir()
        spares = _dbfile.Spares(tmp_path)
        write = _dbfile._write_synced

        threads: list[threading.Thread] = []

        def write_after_close(temp: Path, image: bytes, **options: bool) -> None:
            threads.append(threading.current_thread())
            spares.close()  # (as garbage collection may, on this thread)
            write(temp, image, **options)

        monkeypatch.setattr(_dbfile, "_write_synced", write_after_close)
        spares.want(folder)
        _wait_idle(spares, folder)
        [thread] = threads
        thread.join(60)
        assert not thread.is_alive()
        assert list(folder.iterdir()) == []
        assert not spares._ready

    def test_the_thread_ends_once_no_spare_is_wanted(self, tmp_path: Path) -> None:
        """An idle runtime keeps no spare thread, so a process forking later is not multi-threaded
        because of it (Python 3.12+ warns on ``os.fork()`` in a multi-threaded process).

        Before: the thread lived from the first new object until the runtime closed.
        """
        create_file(tmp_path / "first" / "a.sqlite", synchronous="NORMAL")
        folder = tmp_path / "NS"
        folder.mkdir()
        spares = _dbfile.Spares(tmp_path)
        try:
            spares.want(folder)
            _wait_idle(spares, folder)
            for _ in range(6000):
                if not any(t.name == "durable-spare-files" for t in threading.enumerate()):
                    break
                threading.Event().wait(0.01)
            assert not any(t.name == "durable-spare-files" for t in threading.enumerate())
            assert spares._thread is None
            assert sorted(p.name for p in folder.iterdir()) == [_dbfile.SPARE_FILE, _dbfile.SPARE_LOG]
            assert spares.take(folder / "x.sqlite")  # (the spare is used, and the next one wanted)
            _wait_idle(spares, folder)
            assert sorted(p.name for p in folder.iterdir()) == sorted(
                [_dbfile.SPARE_FILE, _dbfile.SPARE_LOG, "x.sqlite", "x.sqlite-wal"]
            )
        finally:
            spares.close()
        assert sorted(p.name for p in folder.iterdir()) == ["x.sqlite", "x.sqlite-wal"]

    def test_a_leftover_that_cannot_be_deleted_does_not_keep_the_path_closed(self, tmp_path: Path) -> None:
        """Opening a path deletes a killed runtime's spare if it can; one it cannot is left (never taken).

        Before: any error deleting it but "not found" (a folder made read-only, or here a
        directory by that name) kept every runtime from opening the path.
        """
        import durable

        (tmp_path / "Counter" / _dbfile.SPARE_FILE).mkdir(parents=True)
        with durable.BlockingRuntime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            assert [ns.get_by_name(name).increment() for name in "abc"] == [1, 1, 1]
        assert (tmp_path / "Counter" / _dbfile.SPARE_FILE).is_dir()

    @pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork() is POSIX only")
    def test_a_forked_child_leaves_the_parents_spares(self, tmp_path: Path) -> None:
        """A child made by ``os.fork()`` that collects its copy of a runtime neither deletes the
        parent's spares nor waits for the spare lock a parent's thread held at the fork.

        (It never closes the copy: ``_runtime._forked_child`` marks inherited runtimes closed. This
        holds that for the spares: were the copy closed, ``Spares.close()`` would delete the
        parent's spare files and, with the lock held at the fork, wait for ever.)
        """
        script = tmp_path / "fork.py"
        script.write_text(FORKED_SPARES_SCRIPT)
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "state")], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().endswith("ok")


FORKED_SPARES_SCRIPT = """
import asyncio, gc, os, signal, sys, threading, warnings
warnings.simplefilter("ignore")
import durable
from durable import _dbfile

loop = asyncio.new_event_loop()
rt = loop.run_until_complete(durable.Runtime(sys.argv[1]).__aenter__())
ns = rt.namespace(durable.Counter)
assert loop.run_until_complete(ns.get_by_name("a").increment()) == 1
spares = rt._directory.spares
folder = rt.path / "Counter"
for _ in range(6000):
    with spares._lock:
        if folder in spares._ready:
            break
    threading.Event().wait(0.01)
spare = folder / _dbfile.SPARE_FILE
assert spare.exists()
held, release = threading.Event(), threading.Event()

def hold():
    with spares._lock:  # (the spare thread holds it briefly after each write)
        held.set()
        release.wait()

holder = threading.Thread(target=hold)
holder.start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a child that waits for ever is killed
    del rt, ns, spares, loop
    gc.collect()
    os._exit(0)
release.set()
holder.join()
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert spare.exists(), "the child deleted the parent's spare"
inode = spare.stat().st_ino
assert loop.run_until_complete(ns.get_by_name("b").increment()) == 1
assert (folder / f"{ns.id_from_name('b')}.sqlite").stat().st_ino == inode
loop.run_until_complete(rt.aclose())
print("ok", flush=True)
"""


def _wait_idle(spares: _dbfile.Spares, folder: Path) -> None:
    """Wait (at most 60 s) until ``spares``'s thread is done with ``folder`` (made its spare or failed)."""
    for _ in range(6000):
        with spares._lock:
            if folder not in spares._wanted:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"the spare of {folder} was never made")


class TestSpareLog:
    """A spare's log made ahead (``_dbfile.SPARE_LOG``), the request of the next spare after the new
    object's first commit, and the thread kept for a run of new objects (docs/performance.md,
    thirteenth pass).

    Measured at 7464b29 (``strace -ff -tt -T`` on the ext4 VM): a new object's first call made two
    syncs on the loop's thread, both in its first commit: SQLite writes the log's header when it
    writes frame 0 and syncs it (``sqlite3WalFrames``), and syncs the folder at the first sync of a
    log opened with ``SQLITE_OPEN_CREATE`` (``unixOpen``'s ``UNIXFILE_DIRSYNC``), about 1 ms in
    all. With the log made ahead the commit appends at frame 1: no header, no sync (NORMAL).
    """

    @staticmethod
    def _spares_ready(tmp_path: Path) -> tuple[_dbfile.Spares, Path]:
        spares = _dbfile.Spares(tmp_path)
        folder = tmp_path / "NS"
        create_file(folder / "a.sqlite", synchronous="NORMAL")
        _wait_ready(spares, folder)
        return spares, folder

    def test_the_first_commit_appends_to_the_log_made_ahead(self, tmp_path: Path) -> None:
        spares, folder = self._spares_ready(tmp_path)
        try:
            first_log = _dbfile._first_log
            assert first_log is not None
            assert _dbfile._is_first_log(first_log, (folder / "a.sqlite").read_bytes())
            assert (folder / _dbfile.SPARE_LOG).read_bytes() == first_log
            create_file(folder / "b.sqlite", synchronous="NORMAL")
            log = folder / "b.sqlite-wal"
            assert log.read_bytes() == first_log  # renamed beside its file
            conn = connect(folder / "b.sqlite")
            try:
                assert conn.execute("PRAGMA page_count").fetchone() == (1,)  # (databaseSize: one page, as before)
                assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
                conn.execute("CREATE TABLE t (v)")
                conn.execute("INSERT INTO t VALUES (42)")
                data = log.read_bytes()
                # The header is the one made ahead: SQLite wrote (and synced) none, as it does only at frame 0.
                assert data[:32] == first_log[:32] and len(data) > len(first_log)
            finally:
                conn.close()
            with sqlite3.connect(folder / "b.sqlite") as again:
                assert again.execute("SELECT v FROM t").fetchall() == [(42,)]
                assert again.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            again.close()
        finally:
            spares.close()

    async def test_a_process_killed_between_the_two_renames_leaves_a_sound_object(self, tmp_path: Path) -> None:
        """The file is renamed first: killed before its log follows, the object's file has no log (as a
        spare made without one), and the spare's log is deleted when a runtime opens the path."""
        import durable

        folder = tmp_path / "Counter"
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            assert await ns.get_by_name("a").increment() == 1
            hexid = str(ns.id_from_name("b"))
            spares = rt._directory.spares
            assert spares is not None
            _wait_ready(spares, folder)
            spare, spare_log = folder / _dbfile.SPARE_FILE, folder / _dbfile.SPARE_LOG
            kept = spare.read_bytes(), spare_log.read_bytes()
        # The state a kill between take()'s two renames leaves: b's file, the spare's log beside it.
        (folder / f"{hexid}.sqlite").write_bytes(kept[0])
        spare_log.write_bytes(kept[1])
        async with durable.Runtime(tmp_path) as rt:
            assert not spare_log.exists()
            ns = rt.namespace(durable.Counter)
            assert await ns.get_by_name("b").get_counter_value() == 0
            assert await ns.get_by_name("b").increment() == 1
        async with durable.Runtime(tmp_path) as rt:
            assert await rt.namespace(durable.Counter).get_by_name("b").get_counter_value() == 1
        TestCreateFile._check_usable(folder / f"{hexid}.sqlite")

    def test_a_log_without_its_file_is_not_replayed_into_a_new_file(self, tmp_path: Path) -> None:
        """Before: a ``-wal`` left where no file was (a file deleted behind durable's back, or a rename
        of a spare's log kept by a power loss that lost its file's) was replayed by SQLite into the
        next new file of that name."""
        other = tmp_path / "other.sqlite"
        conn = connect(other)
        conn.execute("CREATE TABLE t (v)")
        conn.execute("INSERT INTO t VALUES (1)")
        orphan = (tmp_path / "other.sqlite-wal").read_bytes()
        conn.close()
        for made in range(2):  # the process's first file (by SQLite), then a copy
            file = tmp_path / f"new{made}.sqlite"
            Path(os.fspath(file) + "-wal").write_bytes(orphan)
            create_file(file, synchronous="NORMAL")
            check = connect(file)
            try:
                assert check.execute("SELECT name FROM sqlite_master").fetchall() == []
                assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            finally:
                check.close()

    @pytest.mark.parametrize("how", ["with a history", "a spare without its log"])
    def test_a_log_without_its_file_is_not_replayed_into_a_spare(self, tmp_path: Path, how: str) -> None:
        """A ``-wal`` left where no file is, with another object's commits in it, and a spare taken
        without a log of its own (an object with a history: ``log=False``; a spare whose log could
        not be written): the spare's file must not get those commits.

        Before: only a file made without a spare deleted such a log; SQLite replayed it into the
        spare (the new object had the other object's table). The same log beside a spare taken with
        its log was overwritten, but a kill between the file's rename and the log's left them together.
        """
        other = tmp_path / "other.sqlite"
        conn = connect(other)
        conn.execute("CREATE TABLE t (v)")
        conn.execute("INSERT INTO t VALUES (1)")
        orphan = (tmp_path / "other.sqlite-wal").read_bytes()
        conn.close()
        spares, folder = self._spares_ready(tmp_path)
        try:
            if how == "a spare without its log":
                with spares._lock:
                    spares._logged.discard(folder)
                (folder / _dbfile.SPARE_LOG).unlink()
            file = folder / "b.sqlite"
            Path(os.fspath(file) + "-wal").write_bytes(orphan)
            # (the next spare's request is held, as a new object's first commit would: asked for at
            # once, the thread could make it before the check below)
            asked: list[Callable[[], None]] = []
            create_file(file, synchronous="NORMAL", defer=asked.append, log=how != "with a history")
            assert not (folder / _dbfile.SPARE_FILE).exists()  # (the spare was taken)
            check = connect(file)
            try:
                assert check.execute("SELECT name FROM sqlite_master").fetchall() == []
                assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            finally:
                check.close()
        finally:
            spares.close()

    def test_an_object_with_a_history_does_not_take_the_log(self, tmp_path: Path) -> None:
        """A history checkpoints a log it finds at open (three syncs): such an object takes the file alone."""
        spares, folder = self._spares_ready(tmp_path)
        try:
            asked: list[Callable[[], None]] = []  # (the next spare not asked for: see above)
            assert spares.take(folder / "b.sqlite", asked.append, log=False)
            assert not (folder / "b.sqlite-wal").exists()
            assert not (folder / _dbfile.SPARE_LOG).exists()
            TestCreateFile._check_usable(folder / "b.sqlite")
        finally:
            spares.close()

    def test_the_next_spare_is_asked_for_after_the_first_commit(self, tmp_path: Path) -> None:
        """Asked for at the take, the spare's write and sync ran beside the new object's first commit."""
        from durable._sqlite import ObjectDatabase

        spares, folder = self._spares_ready(tmp_path)
        try:
            db = ObjectDatabase(folder / "b.sqlite")
            db.write_conn()  # opens, the file the spare
            with spares._lock:
                assert folder not in spares._wanted and folder not in spares._ready
            db.commit()
            _wait_ready(spares, folder)
            db.close()
        finally:
            spares.close()

    def test_one_thread_makes_a_run_of_spares_and_close_ends_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The thread waits for the next request (``_LINGER``) instead of a thread per spare; ``close()``
        wakes it and joins it, however long it would still wait."""
        monkeypatch.setattr(_dbfile, "_LINGER", 600.0)
        spares, folder = self._spares_ready(tmp_path)
        closing: threading.Thread | None = None
        try:
            thread = spares._thread
            assert thread is not None and thread.is_alive()
            assert spares.take(folder / "b.sqlite")
            _wait_ready(spares, folder)
            assert spares._thread is thread  # the same thread made the next one
        finally:
            closing = threading.Thread(target=spares.close)
            closing.start()
            closing.join(60)
        assert not closing.is_alive()
        assert not thread.is_alive()
        assert sorted(p.name for p in folder.iterdir()) == ["a.sqlite", "b.sqlite", "b.sqlite-wal"]

    async def test_a_runtime_leaves_no_spare_thread(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import durable

        monkeypatch.setattr(_dbfile, "_LINGER", 600.0)
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            for name in "abcd":
                assert await ns.get_by_name(name).increment() == 1
            assert any(t.name == "durable-spare-files" for t in threading.enumerate())
        assert not any(t.name == "durable-spare-files" for t in threading.enumerate())

    async def test_a_spare_thread_that_cannot_start_fails_no_commit(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The next spare is asked for after a new object's first commit succeeded: a thread that
        cannot start there ("can't start new thread", a process at its limit) must not turn that
        commit into an error. Before: the RuntimeError reached the caller of a committed call."""
        import durable

        def refuse(self: threading.Thread) -> None:
            if self.name == "durable-spare-files":
                raise RuntimeError("can't start new thread")
            real_start(self)

        real_start = threading.Thread.start
        monkeypatch.setattr(threading.Thread, "start", refuse)
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            for name in "abc":
                assert await ns.get_by_name(name).increment() == 1
                assert await ns.get_by_name(name).increment() == 2
            assert not any(t.name == "durable-spare-files" for t in threading.enumerate())
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            assert [await ns.get_by_name(name).get_counter_value() for name in "abc"] == [2, 2, 2]

    def test_a_spare_being_written_is_waited_for(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A new object whose folder's spare is being written takes it once written.

        Before: it made its own file on the loop's thread (a write and a sync, then its first
        commit's two: strace, 50 new objects 5 ms apart on the loaded VM, 16 to 23 made so).
        """
        spares, folder = self._spares_ready(tmp_path)
        writing, go_on = threading.Event(), threading.Event()
        write = _dbfile._write_synced

        def slow_write(temp: Path, image: bytes, **options: bool) -> None:
            if temp.name == _dbfile.SPARE_FILE:
                writing.set()
                assert go_on.wait(60)
            write(temp, image, **options)

        try:
            later: list[Callable[[], None]] = []
            assert spares.take(folder / "b.sqlite", later.append)  # the ready one (the next not asked for)
            monkeypatch.setattr(_dbfile, "_write_synced", slow_write)
            monkeypatch.setattr(_dbfile, "_WAIT", 60.0)
            monkeypatch.setattr(spares, "_took", 30.0)  # (a slow disk: waited for as long as 60 s)
            spares.want(folder)
            assert writing.wait(60)
            threading.Timer(0.05, go_on.set).start()
            assert spares.take(folder / "c.sqlite")
            assert (folder / "c.sqlite-wal").exists()
            TestCreateFile._check_usable(folder / "c.sqlite")
        finally:
            go_on.set()
            spares.close()


def test_a_runtime_collected_by_the_spare_thread_under_its_lock_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime dropped without ``aclose()`` is closed by its finalizer on whichever thread the
    collector runs, the spare thread included, and there while it holds the spares' lock (from
    Python 3.12 the collector runs at any call's start: ``_closing()``, ``notify_all()``).

    Before: ``close()`` took the same lock again (a ``threading.Lock``) and the spare thread hung for
    good inside the finalizer, before the path's lock was released: the path could not be opened
    again in the process. The spare thread now lingers a second after each new object, which makes
    the window wide. Here the collector is made to run at the ``_closing()`` read under the lock.
    """
    import asyncio
    import gc
    import warnings

    import durable

    released, calls = threading.Event(), list[None]()
    write, closing = _dbfile._write_synced, _dbfile.Spares._closing

    def held_write(temp: Path, image: bytes, **options: bool) -> None:
        if temp.name == _dbfile.SPARE_FILE:
            assert released.wait(60)  # until the runtime is dropped
        write(temp, image, **options)

    def collecting(self: _dbfile.Spares) -> bool:
        if threading.current_thread().name == "durable-spare-files":
            calls.append(None)
            if len(calls) == 2:  # (the second read is under the lock, after the spare's writes)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ResourceWarning)
                    gc.collect()
        return closing(self)

    monkeypatch.setattr(_dbfile, "_write_synced", held_write)
    monkeypatch.setattr(_dbfile.Spares, "_closing", collecting)

    async def use() -> threading.Thread:
        rt = durable.Runtime(tmp_path)
        assert await rt.namespace(durable.Counter).get_by_name("a").increment() == 1
        for _ in range(6000):
            thread = next((t for t in threading.enumerate() if t.name == "durable-spare-files"), None)
            if thread is not None:
                return thread
            await asyncio.sleep(0.01)
        raise AssertionError("no spare thread")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        thread = asyncio.run(use())  # (the runtime is garbage once the loop is gone: a cycle)
    released.set()
    thread.join(60)
    assert not thread.is_alive()
    assert len(calls) >= 2
    blocking = durable.BlockingRuntime(tmp_path)  # the path's lock was released
    try:
        assert blocking.namespace(durable.Counter).get_by_name("b").increment() == 1
    finally:
        blocking.close()


def test_a_spare_write_far_slower_than_the_last_is_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``take`` waits for a spare being written only about as long as making the file would take:
    twice what the last spare took (docs/performance.md, thirteenth pass, the review).

    Before: it waited up to 0.5 s (here made 60 s, and the write held 5 s) whatever the last spare
    took, and again for every new object of the folder while a write was stalled; on tmpfs, where
    the file is a write with no sync, the wait measured 1.5-1.6 ms against 0.8-0.96 ms without.
    """
    monkeypatch.setattr(_dbfile, "_WAIT", 60.0)
    spares = _dbfile.Spares(tmp_path)
    folder = tmp_path / "NS"
    writing, go_on = threading.Event(), threading.Event()
    write = _dbfile._write_synced
    try:
        create_file(folder / "a.sqlite", synchronous="NORMAL")
        _wait_ready(spares, folder)
        monkeypatch.setattr(spares, "_took", 0.01, raising=False)  # (the last spare: 10 ms)

        def stalled_write(temp: Path, image: bytes, **options: bool) -> None:
            if temp.name == _dbfile.SPARE_FILE:
                writing.set()
                assert go_on.wait(60)
            write(temp, image, **options)

        later: list[Callable[[], None]] = []
        assert spares.take(folder / "b.sqlite", later.append)
        monkeypatch.setattr(_dbfile, "_write_synced", stalled_write)
        spares.want(folder)
        assert writing.wait(60)
        timer = threading.Timer(5.0, go_on.set)  # (before: waited for, and taken)
        timer.start()
        assert not spares.take(folder / "c.sqlite")  # made as before, not waited for
        timer.cancel()
    finally:
        go_on.set()
        spares.close()
