"""Every ```python block of README.md and docs/*.md runs as a standalone script.

A block fenced ```python skip is a fragment and is not run; shell commands are fenced ```sh.
Each block runs in its own interpreter, in an empty directory (so ``Runtime(path="state")``
writes nothing into the repository), with a timeout, and is named by ``file:line`` so that a
failure says which block drifted. A page that shows the files of a small project (blocks whose
first line is ``# name.py``, as docs/testing.md does) has those files written next to the block,
so that one file of the project can import another.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})(.*)$")
FILE_NAME = re.compile(r"^# (\S+\.(?:py|toml))$")
TIMEOUT = 60


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its info string and its text."""

    page: Path
    line: int
    info: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        first = self.code.split("\n", 1)[0]
        match = FILE_NAME.match(first)
        return match.group(1) if match else None


def blocks_of(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        line, start = i + 1, i + 1  # the fence's line number (1-based); the code's first index
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            i += 1
        found.append(Block(page, line, info, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.info == "python"]


def run_block(block: Block, directory: Path) -> subprocess.CompletedProcess[str]:
    """Run one block as a script in ``directory``, with its page's project files beside it."""
    for other in blocks_of(block.page):
        name = other.file_name
        if name is not None and other is not block:
            (directory / name).write_text(other.code, encoding="utf-8")
    script = directory / "_doc_block.py"
    script.write_text(block.code, encoding="utf-8")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


class TestDocBlocks:
    @pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.where for b in PYTHON_BLOCKS])
    def test_block_runs(self, block: Block, tmp_path: Path) -> None:
        """The block runs on its own and exits with status 0."""
        result = run_block(block, tmp_path)
        assert result.returncode == 0, f"{block.where} failed:\n{result.stdout}\n{result.stderr}"

    def test_info_strings_are_known(self) -> None:
        """Every code block is tagged with a known info string, so none is run or skipped by accident."""
        known = {"python", "python skip", "sh", "toml", "text", ""}
        unknown = [f"{b.where} ({b.info!r})" for b in ALL_BLOCKS if b.info not in known]
        assert unknown == []

    def test_blocks_are_found(self) -> None:
        """The extractor sees the README's example and blocks on several pages."""
        pages = {b.page.name for b in PYTHON_BLOCKS}
        assert {"README.md", "http.md", "sql.md", "guide.md"} <= pages


class TestExtractor:
    def test_fences_and_info_strings(self, tmp_path: Path) -> None:
        """Blocks are split on their fences, keep their info string and report their first line."""
        page = tmp_path / "page.md"
        page.write_text(
            "text\n```python\nprint(1)\n```\n\n```python skip\nx\n```\n````sh\n```\n````\n",
            encoding="utf-8",
        )
        blocks = blocks_of(page)
        assert [(b.line, b.info, b.code) for b in blocks] == [
            (2, "python", "print(1)\n"),
            (6, "python skip", "x\n"),
            (9, "sh", "```\n"),
        ]

    def test_a_failing_block_fails(self, tmp_path: Path) -> None:
        """A block that raises gives a non-zero status (so the test above would catch it)."""
        page = tmp_path / "page.md"
        page.write_text("```python\nraise SystemExit('drifted')\n```\n", encoding="utf-8")
        (block,) = blocks_of(page)
        result = run_block(block, tmp_path)
        assert result.returncode != 0 and "drifted" in result.stderr
