"""The storage directory (``durable/_directory.py``) and what the object's own database keeps out of sight.

workerd keeps an object's name and durable's schema version out of the object's SQLite database:
``_cf_METADATA`` exists only from the first alarm. durable keeps the name in the runtime's
``durable-meta.sqlite`` and the version in ``PRAGMA user_version``; files an older durable wrote
are cleaned when opened.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing
from durable._directory import MemoryDirectory, namespace_folder, namespace_of_folder
from durable._inspect import inspect_directory


class Obj(durable.DurableObject):
    async def write(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def arm(self, ms: int) -> None:
        await self.ctx.storage.set_alarm(ms)

    async def alarm(self, info: Any = None) -> None:
        pass


def _tables(file: Path) -> set[str]:
    conn = sqlite3.connect(file)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def _make_legacy(file: Path, name: str, *, alarm: int | None = None) -> None:
    """Give ``file`` the ``_cf_METADATA`` rows an older durable wrote."""
    conn = sqlite3.connect(file)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        conn.executemany("INSERT OR REPLACE INTO _cf_METADATA VALUES (?, ?)", [("schema_version", 1), ("name", name)])
        if alarm is not None:
            conn.execute("INSERT OR REPLACE INTO _cf_METADATA VALUES ('alarm', ?)", (alarm,))
        conn.commit()
    finally:
        conn.close()
    meta = sqlite3.connect(file.parent.parent / "durable-meta.sqlite")
    try:
        meta.execute("DELETE FROM objects")
        meta.commit()
    finally:
        meta.close()


class TestHiddenMetadata:
    """The object's database holds only what workerd's holds."""

    async def test_no_metadata_table_before_an_alarm(self) -> None:
        """User SQL sees no _cf_METADATA before the first alarm: sqlite_master omits it, SELECT says no such table."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            await stub.write("k", 1)
            await testing.query(stub, "CREATE TABLE t (a)")
            names = await testing.query(stub, "SELECT name FROM sqlite_master ORDER BY name")
            assert [row["name"] for row in names] == ["_cf_KV", "t"]
            with pytest.raises(durable.SqlError, match=r"^no such table: _cf_METADATA: SQLITE_ERROR$"):
                await testing.query(stub, "SELECT * FROM _cf_METADATA")

    async def test_alarm_creates_it_and_delete_all_drops_it(self) -> None:
        """The first alarm creates _cf_METADATA (listed, refused), and delete_all() drops it."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            await stub.arm(4 * 10**12)
            names = await testing.query(stub, "SELECT name FROM sqlite_master")
            assert [row["name"] for row in names] == ["_cf_METADATA"]
            with pytest.raises(durable.SqlError, match="SQLITE_AUTH"):
                await testing.query(stub, "SELECT * FROM _cf_METADATA")
            await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.delete_all())
            assert await testing.query(stub, "SELECT name FROM sqlite_master") == []

    async def test_schema_version_is_user_version_refused_to_user_sql(self, tmp_path: Path) -> None:
        """The schema version is PRAGMA user_version, which user SQL may not read (as in workerd)."""
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            await stub.write("k", 1)
            with pytest.raises(durable.SqlError, match="not authorized: SQLITE_AUTH"):
                await testing.query(stub, "PRAGMA user_version")
        (file,) = tmp_path.glob("Obj/*.sqlite")
        conn = sqlite3.connect(file)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        finally:
            conn.close()


class TestNames:
    """Names live in the directory's metadata database, one row per object file."""

    async def test_name_survives_restart_from_the_directory(self, tmp_path: Path) -> None:
        """An id rebuilt from its hex after a restart has its name, read from durable-meta.sqlite."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            hexid = str(ns.id_from_name("alice"))
            await ns.get_by_name("alice").write("k", 1)
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            assert (await testing.list_ids(ns))[0].name == "alice"
            oid = await testing.run_in_object(ns.get(ns.id_from_string(hexid)), lambda obj, ctx: ctx.id)
            assert oid.name == "alice"
        meta = sqlite3.connect(tmp_path / "durable-meta.sqlite")
        try:
            assert meta.execute("SELECT namespace, id, name FROM objects").fetchall() == [("Obj", hexid, "alice")]
        finally:
            meta.close()

    async def test_file_of_an_older_durable_is_cleaned_once(self, tmp_path: Path) -> None:
        """A file whose _cf_METADATA holds name and schema rows keeps its name, and loses the table."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            hexid = str(ns.id_from_name("old"))
            await ns.get_by_name("old").write("k", 1)
        (file,) = tmp_path.glob("Obj/*.sqlite")
        _make_legacy(file, "old")
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            stub = ns.get(ns.id_from_string(hexid))
            oid = await testing.run_in_object(stub, lambda obj, ctx: ctx.id)
            assert oid.name == "old"
            assert await testing.query(stub, "SELECT name FROM sqlite_master") == [{"name": "_cf_KV"}]
        assert "_cf_METADATA" not in _tables(file)
        async with durable.Runtime(path=tmp_path) as rt:  # the name now comes from the directory
            ns = rt.namespace(Obj)
            assert (await testing.list_ids(ns))[0].name == "old"

    async def test_older_file_with_an_alarm_keeps_only_the_alarm(self, tmp_path: Path) -> None:
        """Cleaning an older file keeps its alarm row, in a _cf_METADATA that holds nothing else."""
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj).get_by_name("old").write("k", 1)
        (file,) = tmp_path.glob("Obj/*.sqlite")
        _make_legacy(file, "old", alarm=4 * 10**12)
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("old")
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get_alarm()) == 4 * 10**12
        conn = sqlite3.connect(file)
        try:
            assert conn.execute("SELECT key, value FROM _cf_METADATA").fetchall() == [("alarm", 4 * 10**12)]
        finally:
            conn.close()

    async def test_reset_forgets_names(self, tmp_path: Path) -> None:
        """Runtime.reset() removes the object files and their names."""
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj).get_by_name("a").write("k", 1)
            await rt.reset()
        meta = sqlite3.connect(tmp_path / "durable-meta.sqlite")
        try:
            assert meta.execute("SELECT count(*) FROM objects").fetchone()[0] == 0
        finally:
            meta.close()

    async def test_inspect_names_a_hashed_namespace_folder(self, tmp_path: Path) -> None:
        """durable inspect shows the name of a namespace whose folder is a hash, and its objects' names."""
        long_name = "N" * 60 + "é" * 40
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj, name=long_name).get_by_name("x").write("k", 1)
        assert namespace_folder(long_name).startswith("nsh-")
        info = inspect_directory(tmp_path)
        assert list(info["namespaces"]) == [long_name]
        assert [obj["name"] for obj in info["namespaces"][long_name]] == ["x"]


class TestNamingHelpers:
    """Folder names map back to namespace names where the folder tells."""

    @pytest.mark.parametrize("name", ["COUNTER", "a b", ".lock", "ns-x", "é"])
    def test_folder_round_trip(self, name: str) -> None:
        """namespace_of_folder(namespace_folder(n)) is n for names whose folder is not a hash."""
        assert namespace_of_folder(namespace_folder(name)) == name

    def test_memory_directory_keeps_no_files(self) -> None:
        """The in-memory directory has no object files and records no names."""
        directory = MemoryDirectory()
        directory.record_name(("N", "0" * 64), "a")
        assert directory.object_file("N", "0" * 64) is None
        assert directory.stored_name(("N", "0" * 64)) is None
        assert directory.alarm_rows() == []


class TestMetadataDurability:
    """The metadata database is written at the runtime's ``synchronous`` level.

    Its alarm index is written before the object's commit so that it lists a superset of the alarms,
    and an object's name before its file is created: with ``synchronous="FULL"`` an object's commit
    survives a power loss, so the index row and the name it relies on must too.
    """

    @pytest.mark.parametrize("level", ["NORMAL", "FULL"])
    async def test_meta_connection_follows_the_runtime(
        self, tmp_path: Path, level: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from durable._sqlite import connect as real_connect

        levels: list[str] = []

        def spy(file: Any, **kwargs: Any) -> sqlite3.Connection:
            levels.append(kwargs.get("synchronous", "NORMAL"))
            return real_connect(file, **kwargs)

        monkeypatch.setattr("durable._directory.connect", spy)
        async with durable.Runtime(path=tmp_path, synchronous=level):  # type: ignore[arg-type]
            pass
        assert levels == [level]
