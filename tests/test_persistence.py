"""Persisted runtimes: one SQLite file per object, survival across restarts, the path lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing


class Obj(durable.DurableObject):
    constructed = 0

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        type(self).constructed += 1

    async def write(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def write_unawaited(self, key: str, value: Any) -> None:
        self.ctx.storage.put(key, value)

    async def read(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def dump(self) -> dict[str, Any]:
        return await self.ctx.storage.list()


def object_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.sqlite"))


class TestFiles:
    async def test_data_survives_a_restart(self, tmp_path: Path) -> None:
        """Everything written before aclose() is there after reopening the path."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj, name="OBJ")
            await ns.get_by_name("a").write("k", {"nested": [1, 2, 3]})
            await ns.get_by_name("b").write_unawaited("k", "unawaited")
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj, name="OBJ")
            assert await ns.get_by_name("a").read("k") == {"nested": [1, 2, 3]}
            assert await ns.get_by_name("b").read("k") == "unawaited"

    async def test_one_file_per_object_that_wrote(self, tmp_path: Path) -> None:
        """Objects that only read create no file; each object that wrote has its own."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj, name="OBJ")
            assert await ns.get_by_name("reader").read("k") is None
            await ns.get_by_name("w1").write("k", 1)
            await ns.get_by_name("w2").write("k", 2)
            expected = sorted(str(ns.id_from_name(n)) + ".sqlite" for n in ("w1", "w2"))
        assert [p.name for p in object_files(tmp_path)] == expected
        assert all(p.parent.name == "OBJ" for p in object_files(tmp_path))

    async def test_file_layout_is_cloudflare_like(self, tmp_path: Path) -> None:
        """Key-value data lives in _cf_KV in WAL mode, no pickle; schema version and name are out of sight."""
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj).get_by_name("a").write("k", [1, "two"])
        (file,) = object_files(tmp_path)
        conn = sqlite3.connect(file)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            ((key, blob),) = conn.execute("SELECT key, value FROM _cf_KV").fetchall()
            assert key == "k" and isinstance(blob, bytes) and not blob.startswith(b"\x80")  # not a pickle
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            assert "_cf_METADATA" not in tables  # workerd's exists from the first alarm only
        finally:
            conn.close()
        meta = sqlite3.connect(tmp_path / "durable-meta.sqlite")
        try:
            assert meta.execute("SELECT namespace, name FROM objects").fetchall() == [("Obj", "a")]
        finally:
            meta.close()

    async def test_in_memory_storage_outlives_eviction(self) -> None:
        """Without a path, storage still survives the instance being evicted."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            await stub.write("k", 1)
            await testing.evict(stub)
            assert await stub.read("k") == 1

    async def test_many_objects_stay_within_the_live_limit(self, tmp_path: Path) -> None:
        """Beyond max_live_objects, idle objects are evicted and their files closed; data stays."""
        Obj.constructed = 0
        async with durable.Runtime(path=tmp_path, max_live_objects=5) as rt:
            ns = rt.namespace(Obj)
            for i in range(20):
                await ns.get_by_name(str(i)).write("i", i)
            assert len(rt.hosts.live) <= 5
            assert [await ns.get_by_name(str(i)).read("i") for i in range(20)] == list(range(20))
        assert Obj.constructed >= 35

    async def test_least_recently_used_object_is_evicted_first(self, tmp_path: Path) -> None:
        """Past max_live_objects the object idle longest goes first; one called again stays live."""
        async with durable.Runtime(path=tmp_path, max_live_objects=2) as rt:
            ns = rt.namespace(Obj)
            for name in ("a", "b", "a", "a", "c"):  # a is used again after b: b is the oldest
                await ns.get_by_name(name).write("k", name)
            live = sorted(str(host.id.name) for host in rt.hosts.live.values())
            assert live == ["a", "c"]
            await ns.get_by_name("b").read("k")  # b comes back: a is now the oldest
            assert sorted(str(host.id.name) for host in rt.hosts.live.values()) == ["b", "c"]

    async def test_list_ids(self, tmp_path: Path) -> None:
        """list_ids gives the ids of objects with storage, named where the name is known."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            await ns.get_by_name("x").write("k", 1)
            await ns.get_by_name("y").read("k")
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            ids = await testing.list_ids(ns)
            assert ids == [ns.id_from_name("x")] and ids[0].name == "x"

    async def test_delete_all_leaves_no_data(self, tmp_path: Path) -> None:
        """After delete_all the object is listed as having no storage."""

        class Wiper(durable.DurableObject):
            async def run(self) -> None:
                await self.ctx.storage.put("k", 1)

            async def wipe(self) -> None:
                await self.ctx.storage.delete_all()

        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Wiper)
            await ns.get_by_name("w").run()
            assert len(await testing.list_ids(ns)) == 1
            await ns.get_by_name("w").wipe()
            assert await testing.list_ids(ns) == []


class TestPathLock:
    async def test_second_runtime_in_process_is_refused(self, tmp_path: Path) -> None:
        """A second live runtime on the same path in this process raises PathLockedError naming it."""
        async with durable.Runtime(path=tmp_path):
            with pytest.raises(durable.PathLockedError, match="already used by another live durable.Runtime") as info:
                durable.Runtime(path=tmp_path)
            assert str(tmp_path.resolve()) in str(info.value)
        async with durable.Runtime(path=tmp_path):  # free again once closed
            pass

    async def test_runtime_in_another_process_is_refused(self, tmp_path: Path) -> None:
        """A runtime in another process holding the path makes this one fail, naming the holder."""
        script = textwrap.dedent(
            f"""
            import sys, durable
            rt = durable.Runtime(path={str(tmp_path)!r})
            print("locked", flush=True)
            sys.stdin.readline()
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "locked"
            with pytest.raises(durable.PathLockedError, match=f"pid {child.pid}"):
                durable.Runtime(path=tmp_path)
        finally:
            child.kill()
            child.wait(timeout=30)
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    stream.close()
        async with durable.Runtime(path=tmp_path):  # the lock died with the process
            pass


class TestListIdsLeavesNoTrace:
    async def test_list_ids_does_not_bring_objects_to_life(self, tmp_path: Path) -> None:
        """list_ids reads the files without registering a live object for each."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            for i in range(5):
                await ns.get_by_name(str(i)).write("k", i)
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            ids = await testing.list_ids(ns)
            assert sorted(oid.name or "" for oid in ids) == [str(i) for i in range(5)]
            assert rt.hosts.live == {}


class TestBackendIsFixed:
    """A namespace's storage backend is fixed once it has objects, as Cloudflare's migrations fix a class's:
    a class deployed with ``new_classes`` (key-value) cannot be converted to SQLite in place, nor back.
    """

    @pytest.mark.parametrize(("first", "then"), [("sqlite", "kv"), ("kv", "sqlite")])
    async def test_reopening_with_the_other_backend_is_refused(self, tmp_path: Path, first: str, then: str) -> None:
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj, name="OBJ", storage=first).get_by_name("a").write("k", 1)
        async with durable.Runtime(path=tmp_path) as rt:
            with pytest.raises(ValueError, match=f"storage={first!r}") as info:
                rt.namespace(Obj, name="OBJ", storage=then)
            assert "OBJ" in str(info.value) and str(tmp_path.resolve()) in str(info.value)
            assert "OBJ" not in rt.env  # nothing was registered
            ns = rt.namespace(Obj, name="OBJ", storage=first)  # the same backend still works
            assert await ns.get_by_name("a").read("k") == 1

    async def test_a_namespace_without_objects_may_change(self, tmp_path: Path) -> None:
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj, name="OBJ", storage="kv")
            assert await ns.get_by_name("a").read("k") is None  # read only: no file
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj, name="OBJ").get_by_name("a").write("k", 1)
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.reset()  # no objects left: the backend is free again
            rt.namespace(Obj, name="OBJ", storage="kv")

    async def test_a_directory_of_an_older_durable_takes_the_first_backend(self, tmp_path: Path) -> None:
        async with durable.Runtime(path=tmp_path) as rt:
            await rt.namespace(Obj, name="OBJ").get_by_name("a").write("k", 1)
        meta = sqlite3.connect(tmp_path / "durable-meta.sqlite")
        try:
            meta.execute("DROP TABLE namespaces")
            meta.commit()
        finally:
            meta.close()
        async with durable.Runtime(path=tmp_path) as rt:
            assert await rt.namespace(Obj, name="OBJ", storage="kv").get_by_name("a").read("k") == 1
        async with durable.Runtime(path=tmp_path) as rt:
            with pytest.raises(ValueError, match="storage='kv'"):
                rt.namespace(Obj, name="OBJ")
