"""More of ``durable inspect``: queries that would write a file, the command line, output details, damaged
alarms, names and history logs, and Ctrl-C."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import durable
from durable._cli import main


class Table(durable.DurableObject):
    async def fill(self) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE t (x)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (1), (2)")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "state"

    async def body() -> None:
        async with durable.Runtime(path) as rt:
            await rt.namespace(Table).get_by_name("a").fill()

    asyncio.run(body())
    return path


def hashes(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in path.rglob("*") if f.is_file()
    }


class TestSqlNeverWritesAFile:
    @pytest.mark.parametrize("statement", ["ATTACH DATABASE '{target}' AS other", "VACUUM INTO '{target}'"])
    def test_attach_and_vacuum_into_refused(
        self, directory: Path, tmp_path: Path, statement: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """ATTACH and VACUUM INTO are refused: PRAGMA query_only let them create the file they name.

        Before, `--sql "ATTACH DATABASE 'x.db' AS e"` answered "(0 rows)" and left an empty x.db.
        """
        target = tmp_path / "made.db"
        before = hashes(directory)
        code = main(["inspect", str(directory), "Table", "a", "--sql", statement.format(target=target)])
        err = capsys.readouterr().err
        assert code == 1
        assert "query refused: ATTACH and VACUUM INTO are refused" in err and "never changes a file" in err
        assert not target.exists()
        assert hashes(directory) == before

    def test_query_only_cannot_be_turned_off(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`PRAGMA query_only=0` is refused; reading the pragma and table-valued pragmas still work."""
        assert main(["inspect", str(directory), "Table", "a", "--sql", "PRAGMA query_only=0"]) == 1
        assert "PRAGMA query_only cannot be changed" in capsys.readouterr().err
        assert main(["inspect", str(directory), "Table", "a", "--sql", "PRAGMA query_only"]) == 0
        assert "(1 row)" in capsys.readouterr().out
        assert main(["inspect", str(directory), "Table", "a", "--sql", "SELECT name FROM pragma_table_info('t')"]) == 0
        assert "'x'" in capsys.readouterr().out


class Shelf(durable.DurableObject):
    async def fill(self) -> None:
        await self.ctx.storage.put({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "text": "nan"})
        self.ctx.storage.sql.exec("CREATE TABLE one (x)")
        self.ctx.storage.sql.exec("INSERT INTO one VALUES (1)")
        await self.ctx.storage.set_alarm(1_900_000_000_000)

    async def alarm(self) -> None:
        pass


def write_shelves(path: Path, *names: str, namespace: str = "Shelf") -> list[str]:
    async def body() -> list[str]:
        async with durable.Runtime(path) as rt:
            ns = rt.namespace(Shelf, name=namespace)
            for name in names:
                await ns.get_by_name(name).fill()
            return [ns.id_from_name(name).to_string() for name in names]

    return asyncio.run(body())


def set_alarm_value(file: Path, value: object) -> None:
    """Damage ``file`` as another program could: its stored alarm becomes ``value``."""
    conn = sqlite3.connect(file)
    with conn:
        conn.execute("UPDATE _cf_METADATA SET value = ? WHERE key = 'alarm'", (value,))
    conn.close()


class TestCommandLine:
    def test_options_may_come_before_the_object(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`durable inspect DIR --json NAMESPACE NAME` works as with the options last.

        It was a usage error ("unrecognized arguments: Table a"): argparse filled the optional
        positionals before the option and left the rest unparsed.
        """
        assert main(["inspect", str(directory), "--json", "Table", "a"]) == 0
        assert json.loads(capsys.readouterr().out)["tables"] == {"t": 2}
        assert main(["inspect", str(directory), "Table", "--sql", "SELECT count(*) FROM t", "a"]) == 0
        assert "(1 row)" in capsys.readouterr().out
        assert main(["inspect", str(directory), "--json", "Table"]) == 0
        assert "Table" in json.loads(capsys.readouterr().out)["namespaces"]
        assert main(["inspect", str(directory), "Table", "a", "extra"]) == 2
        assert "unrecognized arguments: extra" in capsys.readouterr().err

    def test_double_dash_before_the_positionals(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`durable inspect -- DIR NAMESPACE -name` (an object named with a leading '-') works as
        it did before options could come anywhere: argparse's intermixed parsing reported
        "unrecognized arguments: -name"."""
        write_shelves(tmp_path / "state", "-a")
        for argv in (
            ["--", "state", "Shelf", "-a"],
            ["state", "--", "Shelf", "-a"],
            ["--json", "--", "state", "Shelf", "-a"],
        ):
            assert main(["inspect", *[str(tmp_path / a) if a == "state" else a for a in argv]]) == 0, argv
            assert "-a" in capsys.readouterr().out

    def test_an_upper_case_id(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An id in upper case finds the object, as ``id_from_string`` accepts it (it said no object)."""
        (object_id,) = write_shelves(tmp_path / "state", "a")
        assert main(["inspect", str(tmp_path / "state"), "Shelf", object_id.upper()]) == 0
        assert capsys.readouterr().out.startswith(f"{object_id}  name='a'")


class TestOutput:
    def test_json_has_no_bare_nan_or_infinity(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """NaN and the infinities are the strings "nan", "inf", "-inf" (as tests/test_values_more.py
        has them), never JSON's invalid bare ``NaN``/``Infinity``; in query rows too."""
        write_shelves(tmp_path / "state", "a")
        assert main(["inspect", str(tmp_path / "state"), "Shelf", "a", "--json"]) == 0
        out = capsys.readouterr().out
        entries = json.loads(out, parse_constant=lambda name: pytest.fail(f"bare {name} in the JSON"))["entries"]
        assert entries == {"nan": "nan", "inf": "inf", "ninf": "-inf", "text": "nan"}
        assert main(["inspect", str(tmp_path / "state"), "Shelf", "a", "--sql", "SELECT 1e999, -1e999", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["query"]["rows"] == [["inf", "-inf"]]

    def test_one_row_is_one_row(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A table of one row is listed as "(1 row)" (it said "(1 rows)")."""
        write_shelves(tmp_path / "state", "a")
        assert main(["inspect", str(tmp_path / "state")]) == 0
        assert "tables=one (1 row)" in capsys.readouterr().out

    def test_namespaces_in_name_order(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Namespaces are listed by name, not by the order of their folders' names (an encoded name's
        folder, ``ns-<hex>``, sorted after the others)."""
        path = tmp_path / "state"
        write_shelves(path, "a", namespace="Zeta")
        write_shelves(path, "a", namespace="Alpha beta")  # folder ns-416c...
        write_shelves(path, "a", namespace="Mid")
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert out.index("'Alpha beta'") < out.index("'Mid'") < out.index("'Zeta'")

    def test_a_folder_named_like_a_database_is_no_object(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Only files are objects: a folder named ``<64 hex>.sqlite`` was listed with "disk I/O error"."""
        path = tmp_path / "state"
        write_shelves(path, "a")
        (path / "Shelf" / ("c" * 64 + ".sqlite")).mkdir()
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "c" * 64 not in out and "namespace 'Shelf': 1 object" in out


class TestDamagedAlarm:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("soon", "ERROR: the stored alarm is TEXT, not an INTEGER (milliseconds)"),
            (1.9e12, "ERROR: the stored alarm is a REAL, not an INTEGER (milliseconds)"),
            (2**62, f"{2**62} ms (beyond the year 9999)"),
        ],
    )
    def test_reported_not_a_traceback(
        self, tmp_path: Path, value: object, shown: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An alarm another program stored as TEXT or REAL, or past what a date holds, is shown as
        such; the object's entries are still shown (it ended in a ValueError traceback)."""
        path = tmp_path / "state"
        (object_id,) = write_shelves(path, "a")
        set_alarm_value(path / "Shelf" / f"{object_id}.sqlite", value)
        before = hashes(path)
        assert main(["inspect", str(path)]) == 0
        assert f"alarm={shown}" in capsys.readouterr().out
        assert main(["inspect", str(path), "Shelf", "a"]) == 0
        out = capsys.readouterr().out
        assert f"alarm={shown}" in out and "'text': 'nan'" in out
        assert main(["inspect", str(path), "Shelf", "a", "--json"]) == 0
        alarm = json.loads(capsys.readouterr().out)["alarm"]
        if isinstance(value, int):
            assert alarm == {"ms": value, "utc": None}
        else:
            assert alarm == {"error": shown.removeprefix("ERROR: ")}
        assert hashes(path) == before


class TestQueries:
    def test_vacuum_is_refused_by_name(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A plain VACUUM is refused as VACUUM (the message spoke of ATTACH and of a file named '')."""
        before = hashes(directory)
        assert main(["inspect", str(directory), "Table", "a", "--sql", "VACUUM"]) == 1
        err = capsys.readouterr().err
        assert "query refused: VACUUM and ATTACH are refused" in err and "''" not in err
        assert hashes(directory) == before

    def test_no_statement(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A query with no statement (empty, blanks, a comment) is an error, not "(0 rows)" under an
        empty header."""
        for query in ["", "  ", "-- nothing"]:
            assert main(["inspect", str(directory), "Table", "a", "--sql", query]) == 1
            assert "--sql needs one SQL statement" in capsys.readouterr().err


class TestOlderFiles:
    def test_name_kept_in_the_object_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file of an older durable keeps the object's name in ``_cf_METADATA``: it is shown and
        found; one that is not TEXT (damage) is no name (``--json`` ended in a TypeError on bytes)."""
        path = tmp_path / "state"
        old, bad = write_shelves(path, "old", "bad")
        meta = sqlite3.connect(path / "durable-meta.sqlite")
        with meta:
            meta.execute("DELETE FROM objects")
        meta.close()
        for object_id, name in [(old, "old"), (bad, b"bad")]:
            conn = sqlite3.connect(path / "Shelf" / f"{object_id}.sqlite")
            with conn:
                conn.execute("INSERT INTO _cf_METADATA VALUES ('name', ?)", (name,))
            conn.close()
        before = hashes(path)
        assert main(["inspect", str(path), "--json"]) == 0
        listed = {obj["id"]: obj["name"] for obj in json.loads(capsys.readouterr().out)["namespaces"]["Shelf"]}
        assert listed == {old: "old", bad: None}
        assert main(["inspect", str(path), "Shelf", "old"]) == 0
        assert capsys.readouterr().out.startswith(f"{old}  name='old'")
        assert hashes(path) == before


class Logged(durable.DurableObject):
    async def put(self, key: str, value: object) -> None:
        await self.ctx.storage.put(key, value)


class TestHistory:
    def test_damaged_history_is_said_in_text(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A history log that cannot be read shows its error in the text listing, as in JSON (the
        text said "history=? states, ? bytes"); one state is "1 state"."""
        path = tmp_path / "state"

        async def body() -> list[str]:
            async with durable.Runtime(path, point_in_time_recovery=True) as rt:
                ns = rt.namespace(Logged)
                for name in ("good", "bad"):
                    await ns.get_by_name(name).put("k", 1)
                return [ns.id_from_name(name).to_string() for name in ("good", "bad")]

        good, bad = asyncio.run(body())
        (path / "Logged" / f"{bad}.history").write_bytes(b"not a history log")
        before = hashes(path)
        assert main(["inspect", str(path)]) == 0
        lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
        assert f"history=ERROR: cannot read {bad}.history: not a durable history log" in lines[bad]
        assert "history=1 state, " in lines[good]
        assert hashes(path) == before


class TestListingShape:
    def test_namespace_by_its_folder(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """NAMESPACE may be the folder seen on disk (``ns-<hex>``, ``nsh-<hash>``), not only the name."""
        path = tmp_path / "state"
        long_name = "N" * 130 + " x"  # more than 120 bytes: an nsh- folder
        write_shelves(path, "a", namespace=long_name)
        write_shelves(path, "a", namespace="two words")
        for name, prefix in [(long_name, "nsh-"), ("two words", "ns-")]:
            folder = next(f.name for f in path.iterdir() if f.name.startswith(prefix))
            assert main(["inspect", str(path), folder]) == 0
            assert f"namespace {name!r}: 1 object" in capsys.readouterr().out
            assert main(["inspect", str(path), folder, "a", "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["name"] == "a"

    def test_damaged_object_keeps_its_name_and_the_shape(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An object whose file cannot be read is listed with its name (from the runtime's metadata)
        and, in JSON, with every field of the others (``null`` where unknown); it had only id, bytes
        and error."""
        path = tmp_path / "state"
        (object_id, _) = write_shelves(path, "broken", "fine")
        (path / "Shelf" / f"{object_id}.sqlite").write_bytes(b"not a database" * 1000)
        assert main(["inspect", str(path)]) == 0
        assert f"{object_id}  name='broken'  ERROR: cannot read" in capsys.readouterr().out
        assert main(["inspect", str(path), "--json"]) == 0
        objects = {obj["name"]: obj for obj in json.loads(capsys.readouterr().out)["namespaces"]["Shelf"]}
        assert set(objects["broken"]) == set(objects["fine"]) | {"error"}
        assert objects["broken"]["keys"] is None and objects["broken"]["tables"] is None


def _wait_until_it_opens(proc: subprocess.Popen[bytes], directory: Path) -> None:
    """Waits until the process has a file of `directory` open: its interpreter is up (SIGINT is
    Python's KeyboardInterrupt from then on) and the query is about to run. A fixed sleep was not
    enough on a loaded machine, where the signal came before the interpreter's handler and killed
    the process (status -2). Without /proc, a longer sleep stands in."""
    fds = Path(f"/proc/{proc.pid}/fd")
    if not fds.parent.exists():
        time.sleep(5)
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            targets = [os.readlink(fd) for fd in fds.iterdir()]
        except OSError:  # a descriptor closed between listing and reading: look again
            targets = []
        if any(target.startswith(str(directory)) and target.endswith(".sqlite") for target in targets):
            time.sleep(0.3)  # into SQLite's loop
            return
        time.sleep(0.02)
    raise AssertionError("the inspect process never opened the object's database")


class TestInterrupt:
    def test_ctrl_c_stops_a_runaway_query(self, directory: Path) -> None:
        """Ctrl-C (SIGINT) stops a query that would never end: "interrupted", exit status 130, no
        traceback. SQLite's loop never gave Python a chance to raise KeyboardInterrupt, so only
        SIGKILL/SIGTERM stopped `--sql "WITH RECURSIVE r(n) AS (...) SELECT count(*) FROM r"`."""
        query = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        with subprocess.Popen(
            [sys.executable, "-m", "durable", "inspect", str(directory), "Table", "a", "--sql", query],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, as in a terminal
        ) as proc:  # fmt: skip
            _wait_until_it_opens(proc, directory)
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=30)
            finally:
                proc.kill()
        assert proc.returncode == 130
        assert b"durable inspect: interrupted" in err and b"Traceback" not in err


class TestWrongDirectory:
    def test_a_namespace_folder_or_the_parent_is_pointed_at(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Given a namespace's folder, or the folder holding the storage directory, the error says
        which directory to give."""
        path = tmp_path / "state"
        write_shelves(path, "a")
        assert main(["inspect", str(path / "Shelf")]) == 1
        err = capsys.readouterr().err
        assert "is not a durable storage directory" in err
        assert f"it is the folder of the namespace 'Shelf' in {str(path)!r}" in err
        assert main(["inspect", str(tmp_path)]) == 1
        assert f"the storage directory {str(path)!r} is in it" in capsys.readouterr().err


class TestOutputEncoding:
    def test_a_terminal_that_cannot_show_every_character(self, tmp_path: Path) -> None:
        """With an output encoding that lacks a character (PYTHONIOENCODING=ascii, a cp1252
        console), the character is escaped (``\\xe9``), not a UnicodeEncodeError traceback."""
        path = tmp_path / "state"
        write_shelves(path, "é😀", namespace="Shelf")
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), PYTHONIOENCODING="ascii")
        for args in ([], ["Shelf", "é😀"], ["Shelf", "nobody-é"]):
            result = subprocess.run(
                [sys.executable, "-m", "durable", "inspect", str(path), *args],
                capture_output=True, env=env, timeout=60,
            )  # fmt: skip
            assert b"Traceback" not in result.stderr, result.stderr
            assert b"\\xe9" in result.stdout + result.stderr


class TestDamagedKeys:
    def test_a_key_that_is_not_text(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A ``_cf_KV`` key another program stored as a BLOB is shown (by its repr in JSON, whose
        keys are strings); `--json` ended in a TypeError traceback."""
        path = tmp_path / "state"
        (object_id,) = write_shelves(path, "a")
        conn = sqlite3.connect(path / "Shelf" / f"{object_id}.sqlite")
        with conn:
            value = conn.execute("SELECT value FROM _cf_KV WHERE key = 'text'").fetchone()[0]
            conn.execute("INSERT INTO _cf_KV VALUES (?, ?)", (b"\x00k", value))
        conn.close()
        before = hashes(path)
        assert main(["inspect", str(path), "Shelf", "a"]) == 0
        out = capsys.readouterr().out
        assert "  b'\\x00k': 'nan'" in out
        assert main(["inspect", str(path), "Shelf", "a", "--json"]) == 0
        entries = json.loads(capsys.readouterr().out)["entries"]
        assert entries["b'\\x00k'"] == entries["text"] == "nan"
        assert hashes(path) == before
