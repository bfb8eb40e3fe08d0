"""``durable inspect``: listing, one object, one read-only query, JSON; held, crashed and corrupted directories.

Every directory here is written by a real :class:`durable.Runtime` (in this process, or in a child
process that is killed or kept alive), and every test that reads one checks, by hashing every file
before and after, that inspecting it changed nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import durable
from durable._cli import main

HERE = Path(__file__).resolve().parent


class Shelf(durable.DurableObject):
    """Stores a few values, a table and an alarm."""

    async def fill(self, label: str) -> None:
        await self.ctx.storage.put({"label": label, "blob": b"\x00\x01", "nested": {"a": [1, 2.5, None]}, "set": {3}})
        self.ctx.storage.sql.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        self.ctx.storage.sql.exec("INSERT INTO items (name) VALUES ('x'), ('y'), ('z')")
        await self.ctx.storage.set_alarm(1_900_000_000_000)

    async def alarm(self) -> None:
        pass


class Bag(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)


def write_directory(path: Path) -> None:
    async def body() -> None:
        async with durable.Runtime(path, point_in_time_recovery=True) as rt:
            shelves = rt.namespace(Shelf)
            await shelves.get_by_name("first").fill("one")
            await shelves.get_by_name("second").fill("two")
            await rt.namespace(Bag, name="odd name/é", storage="kv").get_by_name("bag").put("k", 1)

    asyncio.run(body())


def hashes(path: Path) -> dict[str, str]:
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    write_directory(path)
    return path


class TestListing:
    def test_lists_namespaces_and_objects(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Every namespace, and each object's name, keys, tables, bytes and alarm."""
        before = hashes(directory)
        code, out, _ = run(capsys, str(directory))
        assert code == 0
        assert "namespace 'Shelf': 2 objects" in out and "namespace 'odd name/é': 1 object" in out
        assert "name='first'" in out and "name='second'" in out and "name='bag'" in out
        assert "keys=4  tables=items (3 rows)" in out
        assert "alarm=2030-03-17T17:46:40.000+00:00" in out
        assert "history=" in out
        assert hashes(directory) == before

    def test_json_listing(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json gives the same facts as data."""
        code, out, _ = run(capsys, str(directory), "--json")
        data = json.loads(out)
        assert code == 0
        shelves = {obj["name"]: obj for obj in data["namespaces"]["Shelf"]}
        assert shelves["first"]["keys"] == 4 and shelves["first"]["tables"] == {"items": 3}
        assert shelves["first"]["alarm"]["ms"] == 1_900_000_000_000
        assert shelves["first"]["bytes"] > 0 and shelves["first"]["history"]["states"] >= 1
        assert len(shelves["first"]["id"]) == 64

    def test_one_namespace(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """NAMESPACE alone lists only that namespace; an unknown one is an error naming the known ones."""
        code, out, _ = run(capsys, str(directory), "odd name/é")
        assert code == 0 and "Shelf" not in out and "name='bag'" in out
        code, _, err = run(capsys, str(directory), "Nope")
        assert code == 1 and "no namespace 'Nope'" in err and "Shelf" in err

    def test_not_a_directory(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A path that is not a directory is a clear error."""
        code, _, err = run(capsys, str(tmp_path / "missing"))
        assert code == 1 and "is not a directory" in err


class TestObject:
    def test_decoded_entries_by_name_and_by_id(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An object's key-value entries are shown decoded, found by name or by id."""
        before = hashes(directory)
        code, out, _ = run(capsys, str(directory), "Shelf", "first")
        assert code == 0
        assert "'label': 'one'" in out and "'blob': b'\\x00\\x01'" in out and "'set': {3}" in out
        object_id = out.split()[0]
        code, by_id, _ = run(capsys, str(directory), "Shelf", object_id)
        assert code == 0 and by_id == out
        assert hashes(directory) == before

    def test_json_entries(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """In JSON, bytes and other non-JSON values are spelled out."""
        code, out, _ = run(capsys, str(directory), "Shelf", "second", "--json")
        entries = json.loads(out)["entries"]
        assert code == 0
        assert entries["label"] == "two" and entries["blob"] == {"bytes": "0001"}
        assert entries["nested"] == {"a": [1, 2.5, None]} and entries["set"] == {"repr": "{3}"}

    def test_read_only_query(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--sql runs one query; a write is refused and changes nothing."""
        before = hashes(directory)
        code, out, _ = run(
            capsys, str(directory), "Shelf", "first", "--sql", "SELECT name FROM items ORDER BY id", "--json"
        )
        assert code == 0 and json.loads(out)["query"]["rows"] == [["x"], ["y"], ["z"]]
        code, _, err = run(capsys, str(directory), "Shelf", "first", "--sql", "DELETE FROM items")
        assert code == 1 and "readonly" in err
        assert hashes(directory) == before

    def test_sql_needs_an_object_and_unknown_object(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--sql without an object, or an object that does not exist, is a clear error."""
        code, _, err = run(capsys, str(directory), "--sql", "SELECT 1")
        assert code == 1 and "--sql needs an object" in err
        code, _, err = run(capsys, str(directory), "Shelf", "third")
        assert code == 1 and "no object named or with id 'third'" in err


class TestDirectoriesInOtherStates:
    def test_a_directory_that_is_not_durable_storage(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory without durable's metadata file is said to be no storage directory (it
        printed "(no objects)" and exited 0)."""
        (tmp_path / "other").mkdir()
        code, _, err = run(capsys, str(tmp_path / "other"))
        assert code == 1 and "is not a durable storage directory (it has no durable-meta.sqlite)" in err

    def test_a_reader_that_stops_early(self, directory: Path) -> None:
        """``durable inspect DIR | head -1``: the closed pipe is not an error (it was a traceback)."""
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "inspect", str(directory), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before anything was read
        err = proc.stderr.read()
        proc.stderr.close()
        assert proc.wait(timeout=60) == 0
        assert b"Traceback" not in err and b"BrokenPipe" not in err

    def test_held_directory_reports_the_pid(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory held by a live runtime in another process is reported with its PID, not read."""
        script = (
            "import asyncio, sys, durable\n"
            "async def main():\n"
            "    async with durable.Runtime(sys.argv[1]):\n"
            "        print('READY', flush=True)\n"
            "        sys.stdin.read()\n"
            "asyncio.run(main())\n"
        )
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        with subprocess.Popen(
            [sys.executable, "-c", script, str(directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        ) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            try:
                assert proc.stdout.readline().strip() == b"READY"
                before = hashes(directory)
                code, out, err = run(capsys, str(directory), "--json")
                assert code == 1 and f"pid {proc.pid}" in err
                assert json.loads(out)["held_by"].startswith(f"pid {proc.pid}")
                assert hashes(directory) == before
            finally:
                proc.stdin.close()
                proc.wait(timeout=30)
        code, _, _ = run(capsys, str(directory))
        assert code == 0  # once the runtime closed, the directory is read

    def test_directory_left_by_a_killed_runtime(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A WAL left behind by a killed runtime is read from a copy: its writes show, no file changes."""
        script = (
            "import asyncio, os, sys, durable\n"
            "class Bag(durable.DurableObject):\n"
            "    async def put(self, k, v):\n"
            "        await self.ctx.storage.put(k, v)\n"
            "async def main():\n"
            "    rt = durable.Runtime(sys.argv[1])\n"
            "    await rt.namespace(Bag).get_by_name('b').put('k', 'survived')\n"
            "    os._exit(0)\n"
            "asyncio.run(main())\n"
        )
        directory = tmp_path / "state"
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        subprocess.run([sys.executable, "-c", script, str(directory)], check=True, env=env, timeout=60)
        assert list(directory.glob("Bag/*.sqlite-wal"))
        before = hashes(directory)
        code, out, _ = run(capsys, str(directory), "Bag", "b")
        assert code == 0 and "'k': 'survived'" in out
        assert hashes(directory) == before

    def test_corrupted_object_file_is_reported(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that is not a database is reported; the other objects are still listed."""
        bad = directory / "Shelf" / ("ab" * 32 + ".sqlite")
        bad.write_bytes(b"this is not a database" * 300)
        before = hashes(directory)
        code, out, _ = run(capsys, str(directory))
        assert code == 0 and f"{'ab' * 32}  ERROR: cannot read" in out and "name='first'" in out
        code, _, err = run(capsys, str(directory), "Shelf", "ab" * 32)
        assert code == 1 and "cannot read" in err
        assert hashes(directory) == before

    def test_command_line_entry_point(self, directory: Path) -> None:
        """`python -m durable inspect DIR` runs the command."""
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        result = subprocess.run(
            [sys.executable, "-m", "durable", "inspect", str(directory), "Shelf"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0 and "name='first'" in result.stdout
