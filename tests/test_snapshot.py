"""The snapshot API: ``ctx.storage.snapshot(bookmark?)`` and ``ctx.on_next_session_restore(snapshot)``.

Sources (docs/recovery.md "Snapshots" lists the decisions): Cloudflare's docs
(``durable-objects/api/sqlite-storage-api.mdx`` "Snapshot API", ``api/state.mdx``
"onNextSessionRestore", ``best-practices/snapshot-and-restore-durable-object-storage.mdx``, changelog
2026-09-23) and workerd's ``DurableObjectSnapshot`` (``api/actor-snapshot.c++``: serializable over
RPC only, ``DOMDataCloneError`` "DurableObjectSnapshots cannot be cloned or stored. They can only be
transferred over RPC." otherwise). Local workerd has neither method (measured with miniflare
4.20260426, compatibility date 2026-04-07, ``useSQLite: true``: ``ctx.storage.snapshot`` and
``ctx.onNextSessionRestore`` are ``undefined``, "TypeError: s.snapshot is not a function"), so
nothing here could be compared with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock

RESTORE = "Snapshot restore scheduled"


class Db(durable.DurableObject):
    """KV and SQL data, an alarm, and the docs' ``snapshot()`` / ``copy()`` methods."""

    async def write(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t (v)")
        sql.exec("INSERT INTO t VALUES (?)", str(value))

    async def read(self) -> tuple[dict[str, Any], list[str]]:
        rows = self.ctx.storage.sql.exec("SELECT v FROM t").to_array() if self._has_table() else []
        return await self.ctx.storage.list(), [r["v"] for r in rows]

    def _has_table(self) -> bool:
        return bool(self.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 't'").to_array())

    async def snapshot(self, bookmark: str | None = None) -> durable.DurableObjectSnapshot:
        return await self.ctx.storage.snapshot(bookmark)

    async def copy(self, snapshot: Any) -> None:
        await self.ctx.on_next_session_restore(snapshot)
        self.ctx.abort(RESTORE)

    async def schedule(self, snapshot: Any) -> str:
        """Schedule the restore without restarting (the next start applies it)."""
        undo: str = await self.ctx.onNextSessionRestore(snapshot)
        return undo

    async def set_alarm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get_alarm(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self) -> None:
        await self.ctx.storage.put("alarm_ran", True)

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore_bookmark(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)


class Other(Db):
    """A second namespace: the docs allow a snapshot of any SQLite-backed object, of any namespace."""


async def copy(source: durable.Stub[Any], ns: durable.Namespace[Any], name: str, **kw: Any) -> durable.Stub[Any]:
    """The docs' copyStorage(): snapshot the source, restore into ``name``, and return a fresh stub."""
    snapshot = await source.snapshot(**kw)
    with pytest.raises(durable.ObjectResetError, match=RESTORE):
        await ns.get_by_name(name).copy(snapshot)
    return ns.get_by_name(name)


@pytest.fixture(params=["memory", "persisted"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    return None if request.param == "memory" else tmp_path / "state"


@pytest.mark.parametrize("pitr", [False, True], ids=["history-off", "history-on"])
class TestRestore:
    async def test_the_destination_starts_on_the_sources_kv_and_sql_data(self, path: Path | None, pitr: bool) -> None:
        """The docs: "Restoring replaces the destination's entire SQLite database, including both SQL
        tables and key-value data"; data of the destination not in the snapshot is gone."""
        async with durable.Runtime(path=path, point_in_time_recovery=pitr) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("src").write("a", 1)
            await ns.get_by_name("dst").write("mine", 2)
            dst = await copy(ns.get_by_name("src"), ns, "dst")
            assert await dst.read() == ({"a": 1}, ["1"])
            await dst.write("b", 3)  # the copy diverges freely
            assert await ns.get_by_name("src").read() == ({"a": 1}, ["1"])

    async def test_a_snapshot_of_another_namespace_restores(self, path: Path | None, pitr: bool) -> None:
        """The docs (state.mdx): the snapshot "can be created by any SQLite-backed Durable Object,
        including one in a different Durable Object namespace"."""
        async with durable.Runtime(path=path, point_in_time_recovery=pitr) as rt:
            await rt.namespace(Db).get_by_name("src").write("a", 1)
            other = rt.namespace(Other)
            dst = await copy(rt.namespace(Db).get_by_name("src"), other, "dst")
            assert await dst.read() == ({"a": 1}, ["1"])

    async def test_alarms_are_not_carried_over(self, path: Path | None, pitr: bool) -> None:
        """The docs: "scheduled alarms on the destination are not carried over": after the restore
        neither the source's alarm nor the destination's own is set, and none fires."""
        clock = MockClock(start=1_700_000_000)
        async with durable.Runtime(path=path, point_in_time_recovery=pitr, clock=clock) as rt:
            ns = rt.namespace(Db)
            src = ns.get_by_name("src")
            await src.write("a", 1)
            await src.set_alarm(clock.time_ms() + 60_000)
            await ns.get_by_name("dst").set_alarm(clock.time_ms() + 30_000)
            dst = await copy(src, ns, "dst")
            assert await dst.get_alarm() is None
            assert await src.get_alarm() == clock.time_ms() + 60_000
            await clock.advance(120)
            assert "alarm_ran" not in (await dst.read())[0]
            assert (await src.read())[0]["alarm_ran"] is True

    async def test_a_restore_scheduled_then_evicted_or_restarted_applies(self, path: Path | None, pitr: bool) -> None:
        """Any next start applies it (eviction, or a restart of a persisted runtime), not only abort()."""
        async with durable.Runtime(path=path, point_in_time_recovery=pitr) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("src").write("a", 1)
            dst = ns.get_by_name("dst")
            await dst.write("mine", 2)
            await dst.schedule(await ns.get_by_name("src").snapshot())
            assert await dst.read() == ({"mine": 2}, ["2"])  # not before the next start
            await durable.testing.evict(dst)
            assert await ns.get_by_name("dst").read() == ({"a": 1}, ["1"])
            await durable.testing.evict(ns.get_by_name("dst"))
            assert await ns.get_by_name("dst").read() == ({"a": 1}, ["1"])  # applied once


class TestWhatASnapshotHolds:
    async def test_it_includes_the_writes_made_before_the_call(self, durable_runtime: durable.Runtime) -> None:
        """As getCurrentBookmark(), it waits for the commit of the writes made so far (not awaited here)."""

        class Writer(Db):
            async def write_and_snapshot(self) -> durable.DurableObjectSnapshot:
                self.ctx.storage.put("x", 1)
                self.ctx.storage.sql.exec("CREATE TABLE t (v)")
                self.ctx.storage.sql.exec("INSERT INTO t VALUES ('x')")
                snapshot = self.ctx.storage.snapshot()
                return await snapshot

        ns = durable_runtime.namespace(Writer)
        dst = await copy_snapshot(await ns.get_by_name("src").write_and_snapshot(), ns)
        assert await dst.read() == ({"x": 1}, ["x"])

    async def test_it_is_unchanged_by_later_writes_of_the_source(self, durable_runtime: durable.Runtime) -> None:
        ns = durable_runtime.namespace(Db)
        src = ns.get_by_name("src")
        await src.write("a", 1)
        snapshot = await src.snapshot()
        await src.write("b", 2)
        dst = await copy_snapshot(snapshot, ns)
        assert await dst.read() == ({"a": 1}, ["1"])

    async def test_an_empty_object_restores_as_empty(self, durable_runtime: durable.Runtime) -> None:
        ns = durable_runtime.namespace(Db)
        await ns.get_by_name("dst").write("mine", 1)
        dst = await copy_snapshot(await ns.get_by_name("never-written").snapshot(), ns)
        assert await dst.read() == ({}, [])

    async def test_the_snapshot_is_opaque_and_cannot_be_stored(self, durable_runtime: durable.Runtime) -> None:
        """workerd (api/actor-snapshot.c++) refuses to clone or store one: DOMDataCloneError with its text."""

        class Storer(Db):
            async def store(self) -> None:
                snapshot = await self.ctx.storage.snapshot()
                await self.ctx.storage.put("s", snapshot)

        with pytest.raises(durable.DataCloneError, match="cannot be cloned or stored. They can only be transferred"):
            await durable_runtime.namespace(Storer).get_by_name("a").store()
        snapshot = await durable_runtime.namespace(Db).get_by_name("a").snapshot()
        assert repr(snapshot) == "<durable.DurableObjectSnapshot of 'a'>"
        assert [name for name in dir(snapshot) if not name.startswith("_")] == []


async def copy_snapshot(snapshot: durable.DurableObjectSnapshot, ns: durable.Namespace[Any]) -> durable.Stub[Any]:
    with pytest.raises(durable.ObjectResetError, match=RESTORE):
        await ns.get_by_name("dst").copy(snapshot)
    return ns.get_by_name("dst")


class TestRefusals:
    async def test_key_value_backed_objects_have_no_snapshots(self, durable_runtime: durable.Runtime) -> None:
        """The docs: "Snapshots work only for SQLite-backed Durable Objects" (source and destination)."""
        kv = durable_runtime.namespace(Db, name="KV", storage="kv")
        with pytest.raises(NotImplementedError, match="not backed by SQLite storage"):
            await kv.get_by_name("a").snapshot()
        snapshot = await durable_runtime.namespace(Db).get_by_name("a").snapshot()
        with pytest.raises(NotImplementedError, match="not backed by SQLite storage"):
            await kv.get_by_name("a").schedule(snapshot)

    @pytest.mark.parametrize("value", ["a snapshot", None, {"image": b""}])
    async def test_only_a_snapshot_can_be_restored(self, durable_runtime: durable.Runtime, value: Any) -> None:
        ns = durable_runtime.namespace(Db)
        with pytest.raises(TypeError, match="parameter 1 is not of type 'DurableObjectSnapshot'"):
            await ns.get_by_name("a").schedule(value)

    async def test_a_bookmark_must_be_a_str(self, durable_runtime: durable.Runtime) -> None:
        with pytest.raises(TypeError, match="'snapshot' on 'DurableObjectStorage': parameter 1 is not of type"):
            await durable_runtime.namespace(Db).get_by_name("a").snapshot(5)

    async def test_a_bookmark_needs_the_history(self, durable_runtime: durable.Runtime) -> None:
        """snapshot() alone works without point-in-time recovery; snapshot(bookmark) says how to turn it on."""
        with pytest.raises(NotImplementedError, match=r"point_in_time_recovery=True.*without a bookmark works"):
            await durable_runtime.namespace(Db).get_by_name("a").snapshot("00000000-00000001-00000000-" + "0" * 32)

    async def test_a_bookmark_of_another_object_is_refused(self) -> None:
        async with durable.Runtime(point_in_time_recovery=True) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("a").write("x", 1)
            bookmark = await ns.get_by_name("a").bookmark()
            with pytest.raises(ValueError, match="not a bookmark of this Durable Object"):
                await ns.get_by_name("b").snapshot(bookmark)
            with pytest.raises(ValueError, match="Invalid bookmark"):
                await ns.get_by_name("a").snapshot("nonsense")

    async def test_a_snapshot_older_than_30_days_is_refused(self) -> None:
        """The docs: snapshots "follow the same 30-day retention window" as PITR bookmarks."""
        clock = MockClock(start=1_700_000_000)
        async with durable.Runtime(clock=clock) as rt:
            ns = rt.namespace(Db)
            snapshot = await ns.get_by_name("a").snapshot()
            await clock.advance(31 * 24 * 3600)
            with pytest.raises(ValueError, match="more than 30 days old"):
                await ns.get_by_name("b").schedule(snapshot)

    async def test_restores_of_both_kinds_are_not_mixed_in_one_session(self) -> None:
        async with durable.Runtime(point_in_time_recovery=True) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("b").write("x", 1)
            bookmark = await ns.get_by_name("b").bookmark()
            snapshot = await ns.get_by_name("a").snapshot()
            await ns.get_by_name("b").restore_bookmark(bookmark)
            with pytest.raises(RuntimeError, match="restore to a bookmark .* is already scheduled"):
                await ns.get_by_name("b").schedule(snapshot)
            await ns.get_by_name("c").schedule(snapshot)
            with pytest.raises(RuntimeError, match="restore from a snapshot .* is already scheduled"):
                await ns.get_by_name("c").restore_bookmark(await ns.get_by_name("c").bookmark())


class TestWithHistory:
    async def test_a_snapshot_at_a_bookmark_copies_that_state(self, path: Path | None) -> None:
        """The docs: "Captures the calling Durable Object's storage as of the given bookmark"."""
        async with durable.Runtime(path=path, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Db)
            src = ns.get_by_name("src")
            await src.write("a", 1)
            bookmark = await src.bookmark()
            await src.write("b", 2)
            dst = await copy(src, ns, "dst", bookmark=bookmark)
            assert await dst.read() == ({"a": 1}, ["1"])

    async def test_the_undo_bookmark_brings_the_destination_back(self, path: Path | None) -> None:
        """The docs (state.mdx): it returns "a bookmark that represents the point in time immediately
        before the restore. Use this bookmark to undo the restore later"."""
        async with durable.Runtime(path=path, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("src").write("a", 1)
            dst = ns.get_by_name("dst")
            await dst.write("mine", 2)
            undo = await dst.schedule(await ns.get_by_name("src").snapshot())
            await dst.write("later", 3)  # part of this session's end, which the undo bookmark names
            await durable.testing.evict(dst)
            dst = ns.get_by_name("dst")
            assert await dst.read() == ({"a": 1}, ["1"])
            assert await dst.bookmark() > undo
            await dst.restore_bookmark(undo)
            await durable.testing.evict(dst)
            assert await ns.get_by_name("dst").read() == ({"later": 3, "mine": 2}, ["2", "3"])

    async def test_the_undo_bookmark_of_a_never_written_destination(self, path: Path | None) -> None:
        """A snapshot restored into an object that never wrote (the docs' copy into a fresh preview
        object): its undo bookmark names the empty state before the restore. It was made before the
        object had a history log, with lineage 0, and the log begun by the restore had another:
        restoring it raised ``ValueError: Invalid bookmark: ... belongs to another history``."""
        async with durable.Runtime(path=path, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("src").write("a", 1)
            dst = ns.get_by_name("dst")
            undo = await dst.schedule(await ns.get_by_name("src").snapshot())
            await durable.testing.evict(dst)
            dst = ns.get_by_name("dst")
            assert await dst.read() == ({"a": 1}, ["1"])
            assert await dst.bookmark() > undo
            await dst.restore_bookmark(undo)
            await durable.testing.evict(dst)
            assert await ns.get_by_name("dst").read() == ({}, [])

    async def test_without_history_the_undo_bookmark_is_a_placeholder(self, durable_runtime: durable.Runtime) -> None:
        """workerd's local bookmarks have this shape (``%08x-%08x-00000000-`` and 32 zeros)."""
        ns = durable_runtime.namespace(Db)
        undo = await ns.get_by_name("dst").schedule(await ns.get_by_name("src").snapshot())
        assert undo == "00000000-00000000-00000000-" + "0" * 32


class TestPythonWorkers:
    pytestmark = pytest.mark.usefixtures("python_workers_shims")

    async def test_self_ctx_storage_snapshot_works_from_python_workers_code(
        self, durable_runtime: durable.Runtime
    ) -> None:
        """The Python SDK passes ``ctx.storage`` and ``ctx`` methods through (workers-py's
        ``_BindingWrapper``); the snapshot crosses its RPC as it is."""
        from durable.compat import python_workers as pw
        from durable.compat.python_workers import workers as sdk

        class PyDb(sdk.DurableObject):
            async def put(self, value: Any) -> None:
                await self.ctx.storage.put("v", value)

            async def get(self) -> Any:
                return await self.ctx.storage.get("v")

            async def snapshot(self) -> Any:
                return await self.ctx.storage.snapshot()

            async def copy(self, snapshot: Any) -> None:
                await self.ctx.onNextSessionRestore(snapshot)
                self.ctx.abort(RESTORE)

        durable_runtime.namespace(PyDb, name="PY")
        pw.serving(durable_runtime)
        env = sdk.env
        await env.PY.getByName("src").put(7)
        snapshot = await env.PY.getByName("src").snapshot()
        with pytest.raises(Exception, match=RESTORE):
            await env.PY.getByName("dst").copy(snapshot)
        assert await env.PY.getByName("dst").get() == 7


_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, types
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    import durable, durable._snapshot as snap, durable._object_class as oc
    from test_snapshot import Db

    where, path, pitr = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "rename":  # the restore file is written, not yet in place
        snap.os = types.SimpleNamespace(**{{**vars(os), "replace": die}})  # this module's os.replace only
    elif where == "apply":  # the database holds the snapshot, the restore file is still there
        snap.PendingRestore.done = lambda self: die()

    async def main():
        async with durable.Runtime(path=path, point_in_time_recovery=pitr) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("src").write("a", 1)
            await ns.get_by_name("dst").write("mine", 2)
            await ns.get_by_name("dst").schedule(await ns.get_by_name("src").snapshot())
            print("SCHEDULED", flush=True)
            if where == "scheduled":
                die()
            await ns.get_by_name("dst").read()  # no restart yet: same instance
            await durable.testing.evict(ns.get_by_name("dst"))
            await ns.get_by_name("dst").read()  # the next start applies it

    asyncio.run(main())
    """
)


class TestCrash:
    @pytest.mark.parametrize("pitr", [False, True], ids=["history-off", "history-on"])
    @pytest.mark.parametrize("where", ["rename", "scheduled", "apply"])
    async def test_kill_9_leaves_the_restore_applied_or_not_never_half(
        self, tmp_path: Path, where: str, pitr: bool
    ) -> None:
        """SIGKILL while the restore file is written (before its rename), after
        ``on_next_session_restore`` returned, and after the start copied the image but before it
        removed the file: the reopened object holds the old storage (not scheduled) or the
        snapshot's, whole; a restore that was acknowledged is applied."""
        state = tmp_path / "state"
        script = tmp_path / "child.py"
        here = Path(__file__).resolve().parent
        script.write_text(_CHILD.format(root=str(here.parent), tests=str(here)))
        proc = subprocess.run(
            [sys.executable, str(script), where, str(state), "1" if pitr else "0"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(here.parent)},
        )
        assert proc.returncode == -9, proc.stderr
        acknowledged = "SCHEDULED" in proc.stdout
        assert acknowledged == (where != "rename")
        async with durable.Runtime(path=state, point_in_time_recovery=pitr) as rt:
            ns = rt.namespace(Db)
            got = await ns.get_by_name("dst").read()
            assert got == (({"a": 1}, ["1"]) if acknowledged else ({"mine": 2}, ["2"]))
            assert not list(state.rglob("*.restore"))
            if pitr:  # the history still restores the state before the snapshot
                await ns.get_by_name("dst").write("after", 3)
        if where == "rename":
            assert list(state.rglob("*.restore.tmp"))  # a torn schedule is left aside, never applied


class TestDamagedRestoreFile:
    """A ``<id>.restore`` file damaged outside durable (a disk fault, a partial copy of the directory):
    rename-into-place never leaves one torn, but one that is must not read as the object's own
    database being malformed (``sqlite3.DatabaseError: database disk image is malformed`` before the
    fix, which points at the wrong file) nor lose the object's data."""

    @pytest.mark.parametrize("damage", ["truncated", "flipped", "no-header"])
    async def test_it_is_refused_by_name_and_the_objects_data_is_kept(self, tmp_path: Path, damage: str) -> None:
        state = tmp_path / "state"
        async with durable.Runtime(path=state) as rt:
            ns = rt.namespace(Db)
            await ns.get_by_name("src").write("a", 1)
            await ns.get_by_name("dst").write("mine", 2)
            await ns.get_by_name("dst").schedule(await ns.get_by_name("src").snapshot())
        (restore,) = state.rglob("*.restore")
        data = bytearray(restore.read_bytes())
        if damage == "truncated":
            del data[len(data) // 2 :]
        elif damage == "flipped":
            data[-100] ^= 0xFF
        else:
            del data[:10]
        restore.write_bytes(bytes(data))
        async with durable.Runtime(path=state) as rt:
            ns = rt.namespace(Db)
            with pytest.raises(durable.DataCorruptionError, match=rf"{restore.name} (is damaged|is not a snapshot)"):
                await ns.get_by_name("dst").read()
        code, out = _inspect(state)
        assert code == 0 and "snapshot restore=ERROR" in out
        restore.unlink()  # as the error says: the object starts on its own storage
        async with durable.Runtime(path=state) as rt:
            assert await rt.namespace(Db).get_by_name("dst").read() == ({"mine": 2}, ["2"])


def _inspect(state: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "durable", "inspect", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    return proc.returncode, proc.stdout + proc.stderr


async def test_durable_inspect_shows_a_pending_restore(tmp_path: Path) -> None:
    """Before the fix ``durable inspect`` showed nothing of a scheduled restore, and left out an object
    whose only file is one (a destination that never wrote: the restore creates its database)."""
    state = tmp_path / "state"
    async with durable.Runtime(path=state) as rt:
        ns = rt.namespace(Db)
        await ns.get_by_name("src").write("a", 1)
        await ns.get_by_name("dst").write("mine", 2)
        snapshot = await ns.get_by_name("src").snapshot()
        await ns.get_by_name("dst").schedule(snapshot)
        await ns.get_by_name("fresh").schedule(snapshot)
        fresh = ns.id_from_name("fresh").to_string()
    code, out = _inspect(state)
    assert code == 0, out
    assert "3 objects" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "snapshot restore pending" in lines[fresh] and "keys=0" in lines[fresh]
    assert sum("snapshot restore pending" in line for line in lines.values()) == 2
    async with durable.Runtime(path=state) as rt:
        ns = rt.namespace(Db)
        assert await ns.get_by_name("fresh").read() == ({"a": 1}, ["1"])
        assert await ns.get_by_name("dst").read() == ({"a": 1}, ["1"])
    code, out = _inspect(state)
    assert "snapshot restore" not in out
