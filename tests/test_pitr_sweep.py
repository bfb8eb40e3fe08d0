"""Point-in-time recovery, attacked: files changed behind the runtime's back, crashes around a restore.

workerd's local back-end implements none of the restore API (measured with miniflare 4,
compatibility date 2026-04-07, SQLite-backed class: ``getCurrentBookmark()`` returns the counter
bookmarks ``00000000-0000000N-00000000-`` + 32 zeros, ``getBookmarkForTime`` and
``onNextSessionRestoreBookmark`` throw "This Durable Object's storage back-end does not implement
point-in-time recovery."), so these follow Cloudflare's documentation and ``docs/recovery.md``:
a bookmark names the state the object had, and nothing accepted is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock, evict

T0 = 1_700_000_000


class Sweep(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def items(self) -> dict[str, Any]:
        return dict(await self.ctx.storage.list())

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)


async def restored(rt: durable.Runtime, stub: durable.Stub[Sweep], bookmark: str) -> durable.Stub[Sweep]:
    """Ask for ``bookmark`` and restart the object; a stub of the restored object."""
    await stub.restore(bookmark)
    await evict(stub)
    return rt.namespace(Sweep).get(stub.id)


class Other(Sweep):
    """Another class (namespace) with the same methods, for bookmarks of the same name elsewhere."""


@pytest.fixture(params=["memory", "disk"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[durable.Runtime]:
    path = tmp_path / "state" if request.param == "disk" else None
    async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
        yield rt


class TestRequests:
    async def test_the_last_request_wins_and_both_share_the_undo(self, runtime: durable.Runtime) -> None:
        """Two restores asked for in one session: the next start applies the last one, and the undo
        bookmark both returned brings back the state the session ended with."""
        stub = runtime.namespace(Sweep).get_by_name("a")
        await stub.put("k", 1)
        one = await stub.bookmark()
        await stub.put("k", 2)
        two = await stub.bookmark()
        await stub.put("k", 3)
        undo = await stub.restore(one)
        assert await stub.restore(two) == undo
        await stub.put("k", 4)  # after the requests, in the same session: the undo holds it
        stub = await restored(runtime, stub, two)
        assert await stub.items() == {"k": 2}
        stub = await restored(runtime, stub, undo)
        assert await stub.items() == {"k": 4}

    async def test_writes_not_awaited_around_the_request_are_in_the_undo(self, runtime: durable.Runtime) -> None:
        """Writes of the same turn as the request, before and after it, commit with the session."""
        stub = runtime.namespace(Sweep).get_by_name("a")
        await stub.put("k", 1)
        mark = await stub.bookmark()

        async def body(obj: Any, ctx: durable.State) -> str:
            ctx.storage.put("before", 1)
            undo = await ctx.storage.on_next_session_restore_bookmark(mark)
            ctx.storage.put("after", 2)
            return undo

        undo = await durable.testing.run_in_object(stub, body)
        await evict(stub)
        assert await stub.items() == {"k": 1}
        stub = await restored(runtime, stub, undo)
        assert await stub.items() == {"k": 1, "before": 1, "after": 2}

    async def test_a_bookmark_of_the_same_name_in_another_namespace_is_refused(self, runtime: durable.Runtime) -> None:
        """The bookmark binds the namespace as well as the id: the same name in another class is refused."""
        mine = runtime.namespace(Sweep).get_by_name("a")
        theirs = runtime.namespace(Other).get_by_name("a")
        await mine.put("k", 1)
        await theirs.put("k", 1)
        with pytest.raises(ValueError, match="not a bookmark of this Durable Object"):
            await mine.restore(await theirs.bookmark())


_PHASE = """
import asyncio, json, os, sys
import durable
from durable.testing import MockClock
sys.path.insert(0, sys.argv[3])
from test_pitr_sweep import Sweep

path, phase = sys.argv[1], sys.argv[2]
marks_file = os.path.join(path, "..", "marks.json")
marks = json.load(open(marks_file)) if os.path.exists(marks_file) else {}

async def main():
    rt = durable.Runtime(path, clock=MockClock(start=1_700_000_000 + 60 * len(marks)), point_in_time_recovery=True)
    await rt.__aenter__()
    stub = rt.namespace(Sweep).get_by_name("a")
    if phase == "request":
        await stub.put("k", 1)
        marks["one"] = await stub.bookmark()
        await stub.put("k", 2)
        marks["undo"] = await stub.restore(marks["one"])
        await stub.put("k", 3)  # after the request: the undo must bring it back
    else:
        assert await stub.items() == {"k": 1}, "the restore was not applied"
        await stub.put("k", 4)  # a write of the restored session
        marks["four"] = await stub.bookmark()
    json.dump(marks, open(marks_file, "w"))
    os._exit(9)  # no clean close: no CLOSE record, commits possibly only in the WAL

asyncio.run(main())
"""


class TestKillNineAroundARestore:
    @pytest.mark.timeout(120)
    async def test_request_and_restored_session_survive_kill_nine(self, tmp_path: Path) -> None:
        """``kill -9`` right after the request, then again after the restored session wrote: the
        request is applied, the restored session's write is kept, and the undo bookmark brings back
        the state before the restore, with the write made after the request."""
        import json
        import os
        import subprocess
        import sys

        path = tmp_path / "state"
        here = Path(__file__).resolve().parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
        for phase in ("request", "restored"):
            done = subprocess.run(
                [sys.executable, "-c", _PHASE, str(path), phase, str(here)],
                env=env,
                timeout=60,
                check=False,
                capture_output=True,
            )
            assert done.returncode == 9, done.stderr.decode()
        marks = json.loads((tmp_path / "marks.json").read_text())
        async with durable.Runtime(path, clock=MockClock(start=T0 + 3600), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Sweep).get_by_name("a")
            assert await stub.items() == {"k": 4}
            stub = await restored(rt, stub, marks["undo"])
            assert await stub.items() == {"k": 3}
            stub = await restored(rt, stub, marks["one"])
            assert await stub.items() == {"k": 1}
            stub = await restored(rt, stub, marks["four"])
            assert await stub.items() == {"k": 4}


class TestDatabaseFileRemoved:
    async def test_a_removed_database_is_a_state_of_its_own(self, tmp_path: Path) -> None:
        """The object's ``.sqlite`` deleted by hand, its ``.history`` kept: the object starts empty,
        and a bookmark taken then named the last state the log held (the data of the deleted file),
        so restoring it brought that data back instead of the empty object the bookmark was taken on."""
        path = tmp_path / "state"
        clock = MockClock(start=T0)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Sweep).get_by_name("a")
            await stub.put("k", 1)
            before = await stub.bookmark()
        (database,) = path.glob("*/*.sqlite")
        database.unlink()
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Sweep).get_by_name("a")
            assert await stub.items() == {}
            empty = await stub.bookmark()
            await stub.put("k", 2)
            stub = await restored(rt, stub, empty)
            assert await stub.items() == {}
            stub = await restored(rt, stub, before)
            assert await stub.items() == {"k": 1}


class TestInspectShowsAPendingRestore:
    def test_a_pending_restore_is_said(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A restore asked for but not applied yet (the object has not started again) replaces the
        data ``durable inspect`` shows at the object's next start: the listing said nothing of it."""
        import asyncio
        import json

        from durable._cli import main

        path = tmp_path / "state"

        async def body() -> str:
            async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
                ns = rt.namespace(Sweep)
                first, second = ns.get_by_name("first"), ns.get_by_name("second")
                await second.put("k", 1)
                await first.put("k", 1)
                await first.restore(await first.bookmark())
                return ns.id_from_name("first").to_string()

        first = asyncio.run(body())
        assert main(["inspect", str(path)]) == 0
        lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
        assert lines[first].endswith(", restore pending")
        assert [line for line in lines.values() if "restore pending" in line] == [lines[first]]
        assert main(["inspect", str(path), "--json"]) == 0
        objects = json.loads(capsys.readouterr().out)["namespaces"]["Sweep"]
        assert {obj["name"]: obj["history"]["restore_pending"] for obj in objects} == {"first": True, "second": False}

        async def start() -> None:
            async with durable.Runtime(path, clock=MockClock(start=T0 + 60), point_in_time_recovery=True) as rt:
                assert await rt.namespace(Sweep).get_by_name("first").items() == {"k": 1}

        asyncio.run(start())
        assert main(["inspect", str(path)]) == 0
        assert "restore pending" not in capsys.readouterr().out
