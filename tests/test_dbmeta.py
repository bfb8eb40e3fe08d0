"""``MetadataTable`` and the file helpers of ``_dbfile`` on their own, without an ``ObjectDatabase``.

``MetadataTable`` meets its database only through ``_dbfile.Connections``; these tests give it a
bare in-memory connection and look at SQLite directly.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
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
        async with durable.Runtime(tmp_path) as rt:
            assert not leftover.exists()  # deleted when the path was opened
            ns = rt.namespace(durable.Counter)
            assert await ns.get_by_name("a").increment() == 1
            spares = rt._directory.spares
            assert spares is not None
            _wait_ready(spares, leftover.parent)
            assert await ns.get_by_name("b").increment() == 1  # its file is the spare
        assert not leftover.exists()  # deleted when the runtime closed
        async with durable.Runtime(tmp_path) as rt:
            ns = rt.namespace(durable.Counter)
            assert await ns.get_by_name("a").get_counter_value() == 1
            assert await ns.get_by_name("b").get_counter_value() == 1
