"""Prose claims of the docs that no other test held, each quoted with its page.

tests/test_docs.py runs the pages' code blocks; these check what the sentences around them state
(a command's flags, a limit's meaning, a value's type).
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import run_in_object, websocket

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))
# `python benchmarks/bench_x.py --flag value --other` (a line break may sit inside the command)
COMMAND = re.compile(r"benchmarks/(bench_\w+\.py)((?:\s+--[a-z][\w-]*(?:\s+(?!--)[^\s`]+)?)*)")
FLAG = re.compile(r"--[a-z][\w-]*")
SECTION = re.compile(r"^## `(bench_\w+\.py)`")


def _help(script: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{script} --help: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_answers_help_with_its_docstring(script: str) -> None:
    """benchmarks/README.md: "Each script's docstring (`python benchmarks/<script> --help`) says
    exactly what it measures." (bench_codec.py ran the whole benchmark instead.)"""
    source = (BENCHMARKS / script).read_text(encoding="utf-8")
    docstring = source.split('"""', 2)[1]
    first_line = " ".join(docstring.split("\n\n", 1)[0].split())
    assert first_line in " ".join(_help(script).split())


def _flags_named_in_pages() -> dict[str, set[str]]:
    """Every `--flag` the pages give a benchmark script: after its command, or in its README section."""
    found: dict[str, set[str]] = {}
    pages = [BENCHMARKS / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in COMMAND.finditer(text):
            found.setdefault(match.group(1), set()).update(FLAG.findall(match.group(2)))
        if page.name != "README.md":
            continue
        script = None
        for line in text.splitlines():
            heading = SECTION.match(line)
            if heading or line.startswith("## "):
                script = heading.group(1) if heading else None
            elif script is not None:
                found.setdefault(script, set()).update(f for f in FLAG.findall(line) if f != "--help")
    return found


def test_benchmark_flags_in_the_pages_exist() -> None:
    """benchmarks/README.md and docs/*.md: every option shown for a benchmark (`bench_storage.py
    --no-full --repeats 5`, "Options: `--ops`, `--concurrent`, ...") is one the script takes."""
    named = _flags_named_in_pages()
    assert named.get("bench_storage.py", set()) >= {"--no-full", "--repeats", "--no-fetch"}
    missing = {}
    for script, flags in sorted(named.items()):
        assert script in SCRIPTS, f"the pages name benchmarks/{script}, which does not exist"
        accepted = set(FLAG.findall(_help(script)))
        if flags - accepted:
            missing[script] = sorted(flags - accepted)
    assert not missing


class Sockets(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)


async def test_auto_response_timestamp_is_a_utc_datetime() -> None:
    """docs/websockets.md: "`ctx.get_web_socket_auto_response_timestamp(ws)` says when it last did (a
    `datetime` in UTC, on the runtime's clock)"."""
    clock = durable.testing.MockClock(start=1_700_000_000)
    async with durable.Runtime(clock=clock) as rt:
        stub = rt.namespace(Sockets).get_by_name("s")
        async with websocket(stub, "http://s/") as ws:
            await run_in_object(
                stub,
                lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong")),
            )
            await clock.advance(3)
            ws.send("ping")
            assert await ws.receive() == "pong"

            def stamp(obj: Any, ctx: durable.State) -> datetime.datetime | None:
                return ctx.get_web_socket_auto_response_timestamp(ctx.get_web_sockets()[0])

            when = await run_in_object(stub, stamp)
            assert when == datetime.datetime.fromtimestamp(1_700_000_003, datetime.UTC)
            assert when is not None and when.tzinfo == datetime.UTC


class Sql(durable.DurableObject):
    def count(self, query: str) -> int:
        return int(self.ctx.storage.sql.exec(query).one()["n"])


async def test_the_vm_instruction_limit_is_the_program_length() -> None:
    """docs/sql.md, Limits: "VM instructions in a compiled statement (its program's length, not the
    steps it runs) | 25,000 | `out of memory: SQLITE_NOMEM`". Measured in workerd (miniflare 4,
    2026-04-07): a recursive CTE counting 100,000 rows runs; an INSERT of 20,000 `(1)` rows is
    `out of memory: SQLITE_NOMEM` (tests/test_sql.py holds that one)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Sql).get_by_name("q")
        query = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT count(*) AS n FROM (SELECT x FROM c LIMIT 100000)"
        )
        assert await stub.count(query) == 100_000
        with pytest.raises(durable.SqlError, match=r"^out of memory: SQLITE_NOMEM$"):
            await stub.count("SELECT count(*) AS n FROM (VALUES " + ",".join(["(1)"] * 20_000) + ")")
