"""Found by the hunt on the tools (API.md sections 7, 11, 12 and 13): ``durable inspect``'s query and
output details, and the reference counter."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import tomllib
from pathlib import Path

import pytest

import durable
from durable._cli import main


class Table(durable.DurableObject):
    async def fill(self, table: str = "t", column: str = "x") -> None:
        quoted_table = '"' + table.replace('"', '""') + '"'
        quoted_column = '"' + column.replace('"', '""') + '"'
        self.ctx.storage.sql.exec(f"CREATE TABLE {quoted_table} ({quoted_column})")
        self.ctx.storage.sql.exec(f"INSERT INTO {quoted_table} VALUES (1), (2)")


def write(path: Path, name: str, namespace: str = "Table", table: str = "t", column: str = "x") -> str:
    async def body() -> str:
        async with durable.Runtime(path) as rt:
            ns = rt.namespace(Table, name=namespace)
            await ns.get_by_name(name).fill(table, column)
            return ns.id_from_name(name).to_string()

    return asyncio.run(body())


def hashes(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in path.rglob("*") if f.is_file()
    }


class TestInspectQueries:
    @pytest.mark.parametrize(
        "query",
        ["/* why */ SELECT count(*) FROM t", "/**/SELECT count(*) FROM t", "/* a */ -- b\nSELECT count(*) FROM t"],
    )
    def test_a_leading_block_comment_is_a_query(
        self, tmp_path: Path, query: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A query that starts with a block comment runs (SQLite skips the comment). The check for "no
        statement" let ``/\\*.*?`` stretch to the end of the query through its ``\\Z`` alternative, so
        ``/* why */ SELECT ...`` was refused with "--sql needs one SQL statement"."""
        path = tmp_path / "state"
        write(path, "a")
        before = hashes(path)
        assert main(["inspect", str(path), "Table", "a", "--sql", query, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["query"]["rows"] == [[2]]
        assert hashes(path) == before

    @pytest.mark.parametrize("query", ["/* nothing */", "/* unclosed SELECT 1", "/* a */ -- b"])
    def test_comments_alone_are_still_no_statement(
        self, tmp_path: Path, query: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Comments alone (an unclosed one runs to the end, as SQLite reads it) are still refused."""
        path = tmp_path / "state"
        write(path, "a")
        assert main(["inspect", str(path), "Table", "a", "--sql", query]) == 1
        assert "--sql needs one SQL statement" in capsys.readouterr().err


class TestInspectOutput:
    def test_table_and_column_names_are_escaped(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A table or column name holding a newline or a terminal escape is shown by its repr(), as
        keys and object names are: printed raw, it split the object's line in two and sent the
        escape to the terminal. Printable names stay as they are."""
        path = tmp_path / "state"
        write(path, "a", table="t\n\x1b[31mred", column="c\x1b[0m")
        write(path, "b", namespace="Plain", table='we"ird table', column="col")
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out
        assert "tables='t\\n\\x1b[31mred' (2 rows)" in out
        assert 'tables=we"ird table (2 rows)' in out
        assert main(["inspect", str(path), "Table", "a", "--sql", 'SELECT * FROM "t\n\x1b[31mred"']) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "'c\\x1b[0m'\n1\n2\n(2 rows)\n" in out

    def test_an_object_of_another_namespace_says_where_it_is(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An object's id or name given with the wrong namespace says which namespace has it (ids
        and names are per namespace, so the message "no object ... in namespace" alone left the
        user guessing)."""
        path = tmp_path / "state"
        write(path, "a", namespace="One")
        other = write(path, "b", namespace="Two")
        assert main(["inspect", str(path), "One", other]) == 1
        err = capsys.readouterr().err
        assert f"no object named or with id {other!r} in namespace 'One'" in err
        assert "(that id is an object of namespace 'Two')" in err
        assert main(["inspect", str(path), "One", other.upper()]) == 1
        assert "(that id is an object of namespace 'Two')" in capsys.readouterr().err
        assert main(["inspect", str(path), "One", "b"]) == 1  # a name: the same
        assert "no object named or with id 'b' in namespace 'One' (namespace 'Two' has an object of that name)" in (
            capsys.readouterr().err
        )
        for unknown in ["0" * 64, "c"]:  # nothing anywhere: no hint
            assert main(["inspect", str(path), "One", unknown]) == 1
            assert capsys.readouterr().err.endswith("in namespace 'One'\n")


class TestInspectTextThatIsNotUtf8:
    @pytest.fixture
    def damaged(self, tmp_path: Path) -> Path:
        """An object whose file another program wrote TEXT into that is not UTF-8: a key-value key,
        an SQL value and a table's name."""
        path = tmp_path / "state"
        hexid = write(path, "a")
        file = path / "Table" / f"{hexid}.sqlite"
        conn = sqlite3.connect(file)
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
            conn.execute("INSERT INTO _cf_KV VALUES (CAST(x'ff61' AS TEXT), x'00')")
            conn.execute("INSERT INTO t VALUES (CAST(x'fe' AS TEXT))")
            conn.execute("CREATE TABLE u (x)")
            conn.execute("PRAGMA writable_schema=ON")
            sql = b'CREATE TABLE "\xffu" (x)'.hex()
            conn.execute(
                "UPDATE sqlite_master SET name = CAST(x'ff75' AS TEXT), tbl_name = CAST(x'ff75' AS TEXT), "
                f"sql = CAST(x'{sql}' AS TEXT) WHERE name = 'u'"
            )
        conn.close()
        return path

    def test_shown_as_bytes(self, damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """TEXT that is not valid UTF-8 is shown as its bytes, as a BLOB is: with sqlite3's decoding,
        ``durable inspect DIR NS NAME`` ended in a traceback (``OperationalError: Could not decode to
        UTF-8 column 'key'``), with ``--json`` printing nothing, and ``--sql`` refused the query."""
        before = hashes(damaged)
        assert main(["inspect", str(damaged)]) == 0
        assert "tables=t (3 rows), b'\\xffu' (? rows)" in capsys.readouterr().out
        assert main(["inspect", str(damaged), "Table", "a"]) == 0
        out = capsys.readouterr().out
        assert "  b'\\xffa': <undecodable value:" in out
        assert main(["inspect", str(damaged), "Table", "a", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert list(info["entries"]) == ["b'\\xffa'"] and info["tables"] == {"t": 3, "b'\\xffu'": None}
        assert main(["inspect", str(damaged), "Table", "a", "--sql", "SELECT x FROM t", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["query"]["rows"] == [[1], [2], [{"bytes": "fe"}]]
        assert hashes(damaged) == before

    def test_names_that_are_not_utf8_are_left_out(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A row of the runtime's ``objects`` table whose namespace or name is not UTF-8 names
        nothing (the object is still listed by its file); the others keep their names. Read as
        bytes, such a namespace ended the listing in a TypeError."""
        path = tmp_path / "state"
        write(path, "a")
        write(path, "b", namespace="Other")
        conn = sqlite3.connect(path / "durable-meta.sqlite")
        with conn:
            conn.execute("UPDATE objects SET namespace = CAST(x'ff' AS TEXT) WHERE namespace = 'Other'")
            conn.execute("UPDATE objects SET name = CAST(x'fe' AS TEXT) WHERE name = 'a'")
        conn.close()
        assert main(["inspect", str(path), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["namespaces"]
        assert [(ns, [o["name"] for o in objects]) for ns, objects in listed.items()] == [
            ("Other", [None]),
            ("Table", [None]),
        ]


class TestInspectHeldDirectory:
    def test_a_lock_file_that_is_not_utf8(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A held ``.lock`` whose text is not UTF-8 (written by another program) is reported with
        what it says, replaced characters and all; reading it ended the command in a
        UnicodeDecodeError."""
        fcntl = pytest.importorskip("fcntl")  # (POSIX: durable inspect reads holders through flock)
        path = tmp_path / "state"
        write(path, "a")
        with open(path / ".lock", "wb") as handle:
            handle.write(b"pid 12 on \xffhost")
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # another open file description: held
            assert main(["inspect", str(path)]) == 1
        assert "is held by a live durable.Runtime (pid 12 on \ufffdhost)" in capsys.readouterr().err


class TestDistribution:
    def test_the_sdist_holds_what_the_tests_read(self) -> None:
        """Every top-level file or folder a test reads from the repository (``ROOT / NAME``) is in
        the sdist, whose ``tests/`` is shipped: `.ci` was not, so in an unpacked sdist
        ``pytest`` failed three tests with ``FileNotFoundError: .../.ci/run``."""
        root = Path(__file__).resolve().parent.parent
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        included = set(pyproject["tool"]["hatch"]["build"]["targets"]["sdist"]["include"])
        assert "tests" in included
        read = set()
        for source in (root / "tests").glob("*.py"):
            read |= set(re.findall(r'ROOT / "([\w.-]+)"', source.read_text(encoding="utf-8")))
        assert ".ci" in read  # (the test looks at what it should)
        assert read <= included | {"pyproject.toml"}, (
            read - included - {"pyproject.toml"}
        )  # (hatchling always ships pyproject.toml)
