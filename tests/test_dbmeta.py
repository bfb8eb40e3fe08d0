"""``MetadataTable`` and the file helpers of ``_dbfile`` on their own, without an ``ObjectDatabase``.

``MetadataTable`` meets its database only through ``_dbfile.Connections``; these tests give it a
bare in-memory connection and look at SQLite directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable import DataCorruptionError
from durable._dbfile import SCHEMA_VERSION, open_file, schema_entries
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
