"""Found reviewing the session's own changes (helper review-all): what an application's ``EXPLAIN``
through ``sql.exec`` did differently once each one got a text of its own (``_sql.py``'s
``_EXPLAINS``, against a SQLite 3.40 use-after-free when a cached ``EXPLAIN`` is re-prepared)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import durable


class Explains(durable.DurableObject):
    def error(self, query: str) -> str:
        try:
            self.ctx.storage.sql.exec(query)
        except durable.SqlError as exc:
            return str(exc)
        return "no error"

    def rows(self, query: str) -> int:
        return len(self.ctx.storage.sql.exec(query).to_array())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("EXPLAIN SELECT 'abc", 'unrecognized token: "\'abc" at offset 15: SQLITE_ERROR'),
        ("EXPLAIN SELECT [abc", 'unrecognized token: "[abc" at offset 15: SQLITE_ERROR'),
        ("explain query plan select 1 `a", 'unrecognized token: "`a" at offset 28: SQLITE_ERROR'),
    ],
)
async def test_an_explains_unterminated_token_is_reported_as_written(
    durable_runtime: durable.Runtime, query: str, message: str
) -> None:
    """An ``EXPLAIN`` ending in an unterminated string or name is reported as any statement's is
    (as before the mark, and as ``SELECT 'abc`` is: ``unrecognized token: "'abc" at offset 7``).
    The mark, appended after the statement, ended up inside the token: ``unrecognized token:
    "'abc\\n-- 0": SQLITE_ERROR``, without the offset."""
    stub = durable_runtime.namespace(Explains).get_by_name("a")
    assert await stub.error(query) == message


async def test_an_explain_at_the_length_limit_runs(durable_runtime: durable.Runtime) -> None:
    """An ``EXPLAIN`` of exactly 100,000 bytes, SQLite's limit, runs as a ``SELECT`` of that length
    does; the mark took it past the limit: sqlite3's ``query string is too large`` (not even a
    ``SqlError``)."""
    stub = durable_runtime.namespace(Explains).get_by_name("a")
    for head in ("SELECT '", "EXPLAIN SELECT '"):
        query = head + "a" * (100_000 - len(head) - 1) + "'"
        assert len(query.encode()) == 100_000
        assert await stub.rows(query) == (1 if head == "SELECT '" else 5)


def test_the_files_ci_names_exist() -> None:
    """.ci/run names test files by their stem in ``for file in ...; do`` lists (the files the other
    passes skip, those the Python 3.12 and 3.13 passes run): a file renamed or not yet merged
    would fail only there, minutes into CI (pytest's "file or directory not found")."""
    root = Path(__file__).parent.parent
    script = (root / ".ci" / "run").read_text().replace("\\\n", " ")
    lists = re.findall(r"^\s*for file in ([^;]*); do$", script, re.MULTILINE)
    assert len(lists) >= 3, lists
    names = [name for found in lists for name in found.split()]
    assert {"eager", "hunt_ws3", "python_workers", "docs"} <= set(names)
    assert not [name for name in names if not (root / "tests" / f"test_{name}.py").is_file()]
    assert len(names) == len(set(names)), "a file named twice"


def _child(script: str, *args: str, what: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a child process importing this checkout's durable; fail the test, naming
    ``what``, if it does not end within 15 s (a hang there is the defect, not the suite's)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            timeout=15,
            env={**os.environ, "PYTHONPATH": str(Path(durable.__file__).parent.parent)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not answer within 15 s")


_COMMENTED = """
import asyncio
import durable


class O(durable.DurableObject):
    def run(self, query):
        return self.ctx.storage.sql.exec(query).to_array()


async def main():
    async with durable.Runtime() as rt:
        stub = rt.namespace(O).get_by_name("a")
        print(await stub.run("-- " + "-" * 76 + "\\nSELECT 1 AS x"))
        print(await stub.run("/**/" * 64 + "SELECT 2 AS x"))
        print(len(await stub.run("/* plan */ " * 64 + "EXPLAIN SELECT 3 AS x")))
        print(await stub.run("-- " * 40 + "\\nSELECT 4 AS x"))


asyncio.run(main())
"""


def test_a_statement_after_many_comments_runs_at_once() -> None:
    """A statement after a separator line (``-- ------...``, 76 dashes), 64 block comments or a
    line of 40 ``--`` runs as any other. ``_sql_rules.ALTER`` (tested on every statement),
    ``RTREE`` and ``_sql._EXPLAIN`` read the comments before the first word with a repeated group
    whose comment alternatives can split one comment in many ways: the regex backtracked through
    them all, exponentially, on the object's thread (``"-- " + "-" * 40 + "\\nSELECT 1"`` took
    61 s, 4 dashes more about 7 times as long). In a child process, so that the defect is a
    failure (its timeout), not a hang of the suite."""
    done = _child(_COMMENTED, what="the statement after the comments")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:4] == ["[{'x': 1}]", "[{'x': 2}]", "5", "[{'x': 4}]"], done.stdout


_INSPECTED = """
import asyncio
import sys

import durable
from durable._cli import main


class Table(durable.DurableObject):
    def fill(self):
        self.ctx.storage.sql.exec("CREATE TABLE t (x)")


async def write(path):
    async with durable.Runtime(path) as rt:
        await rt.namespace(Table).get_by_name("a").fill()


asyncio.run(write(sys.argv[1]))
sys.exit(main(["inspect", sys.argv[1], "Table", "a", "--sql", "-- " + "-" * 76 + "\\nSELECT 7 AS x", "--json"]))
"""


def test_inspect_runs_a_query_after_a_separator_line(tmp_path: Path) -> None:
    """``durable inspect --sql`` runs a query after a ``-- ------...`` line (76 dashes). Its check
    for "no statement" (``_inspect._NO_STATEMENT.fullmatch``) backtracked exponentially through the
    ways to split that comment (18 ``-- `` took 39 s). In a child process, with a timeout."""
    done = _child(_INSPECTED, str(tmp_path / "state"), what="durable inspect --sql")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["query"]["rows"] == [[7]], done.stdout
