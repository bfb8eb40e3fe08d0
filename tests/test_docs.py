"""Every ```python block of README.md and docs/*.md runs as a standalone script.

A block fenced ```python skip is a fragment: it is compiled, not run; shell commands are fenced ```sh.
Each block runs in its own interpreter, in an empty directory (so ``Runtime(path="state")``
writes nothing into the repository), importing this checkout's ``durable``, with a timeout, and is
named by ``file:line`` so that a failure says which block drifted. A ``print(...)  # value`` line
must print that value. A page that shows the files of a small project (blocks whose first line is
``# name.py``, as docs/testing.md does) has those files written next to the block, so that one
file of the project can import another; a block of tests outside that project is run by pytest.

What a reader follows from the pages is checked too: relative links and their headings, the
`durable.X` names, the options shown for `durable serve` / `durable inspect`, and the guide's
`durable inspect` commands, run on what its step 2 stored.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import resolve_durable_name

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
SKIPPED_BLOCKS = [block for block in ALL_BLOCKS if block.info == "python skip"]
# Blocks of pytest tests. docs/testing.md and docs/alarms.md are projects of files that
# tests/test_pytest_plugin.py runs whole; a test file shown on another page is run here, from the
# repository's root (its paths, such as "examples/python-workers/messages", are relative to it),
# with the options its first line gives: `# tests/test_worker.py    (run with: pytest --python-workers)`.
PROJECT_PAGES = {"testing.md", "alarms.md"}
TEST_BLOCKS = [
    block
    for block in ALL_BLOCKS
    if block.info in ("python", "python skip")
    and block.page.name not in PROJECT_PAGES
    and re.search(r"^(?:async )?def test_", block.code, re.M)
]
RUN_WITH = re.compile(r"\(run with: pytest([^)]*)\)")


def run_block(block: Block, directory: Path) -> subprocess.CompletedProcess[str]:
    """Run one block as a script in ``directory``, with its page's project files beside it."""
    for other in blocks_of(block.page):
        name = other.file_name
        if name is not None and other is not block:
            (directory / name).write_text(other.code, encoding="utf-8")
    script = directory / "_doc_block.py"
    script.write_text(block.code, encoding="utf-8")
    # This checkout's durable, whatever is installed: an environment made for another checkout (a
    # second worktree sharing one venv) would otherwise run the pages against that one's code.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


# `print(x)  # 404 False Not Found`: the comment shows what the line prints. The value is the whole
# comment, or what follows one of its ": " (`# on an instance: parses the body: {'count': 3}`),
# quoted or ending at " (" or ", " (`# 'POST' (always upper-cased)`, `# 1, then 2 on the next run`).
PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s+# (.+)$")


def claimed_outputs(comment: str) -> set[str]:
    """The outputs a ``print(...)  # comment`` line may be claiming, read as described above."""
    parts = comment.split(": ")
    claims: set[str] = set()
    for start in range(len(parts)):
        text = ": ".join(parts[start:]).strip()
        if text[:1] in "'\"" and text.find(text[0], 1) > 0:
            claims.add(text[1 : text.find(text[0], 1)])
        claims.add(re.split(r" \(|, ", text, maxsplit=1)[0])
    return claims


def unprinted_claims(block: Block, stdout: str) -> list[str]:
    """The commented ``print`` lines of ``block`` whose claim is not what it printed, in order."""
    printed = stdout.splitlines()
    missing = []
    for line in block.code.splitlines():
        commented = PRINT_COMMENT.match(line)
        if commented is None:
            continue
        claims = claimed_outputs(commented.group(1))
        found = next((i for i, out in enumerate(printed) if out in claims), None)
        if found is None:
            missing.append(f"{line.strip()!r} printed none of {printed!r}")
        else:
            del printed[: found + 1]
    return missing


class TestDocBlocks:
    @pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.where for b in PYTHON_BLOCKS])
    def test_block_runs(self, block: Block, tmp_path: Path) -> None:
        """The block runs on its own, exits with status 0, and prints what its comments say."""
        result = run_block(block, tmp_path)
        assert result.returncode == 0, f"{block.where} failed:\n{result.stdout}\n{result.stderr}"
        assert unprinted_claims(block, result.stdout) == [], block.where

    @pytest.mark.parametrize("block", TEST_BLOCKS, ids=[b.where for b in TEST_BLOCKS])
    def test_test_block_passes(self, block: Block, tmp_path: Path) -> None:
        """A block of pytest tests passes under pytest, every test of it, as its reader would run it
        (pytest-asyncio's auto mode, warnings as errors, the options its first line names)."""
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n",
            encoding="utf-8",
        )
        test_file = tmp_path / "test_doc_block.py"
        test_file.write_text(block.code, encoding="utf-8")
        run_with = RUN_WITH.search(block.code.split("\n", 1)[0])
        options = run_with.group(1).split() if run_with else []
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
        ini = ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ini, *options, str(test_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        tests = len(re.findall(r"^(?:async )?def test_", block.code, re.M))
        assert result.returncode == 0 and f"{tests} passed" in result.stdout, f"{block.where}:\n{result.stdout}"

    @pytest.mark.parametrize("block", SKIPPED_BLOCKS, ids=[b.where for b in SKIPPED_BLOCKS])
    def test_fragment_compiles(self, block: Block) -> None:
        """A ```python skip fragment (an object's method body, a test's lines) is still valid Python:
        it compiles, `await` allowed at its top level."""
        import ast

        compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)

    def test_info_strings_are_known(self) -> None:
        """Every code block is tagged with a known info string, so none is run or skipped by accident."""
        known = {"python", "python skip", "sh", "toml", "text", ""}
        unknown = [f"{b.where} ({b.info!r})" for b in ALL_BLOCKS if b.info not in known]
        assert unknown == []

    def test_blocks_are_found(self) -> None:
        """The extractor sees the README's example and blocks on several pages."""
        pages = {b.page.name for b in PYTHON_BLOCKS}
        assert {"README.md", "http.md", "sql.md", "guide.md"} <= pages
        assert "python-workers.md" in {b.page.name for b in TEST_BLOCKS}


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

    def test_print_comments_are_checked(self, tmp_path: Path) -> None:
        """A `print(...)  # value` comment is compared with what the line printed, in order."""
        page = tmp_path / "page.md"
        page.write_text(
            "```python\nprint('POST')  # 'POST' (always upper-cased)\nprint(1)  # 1, then 2 on the next run\n"
            "print({'n': 3})  # on an instance: parses the body: {'n': 3}\nprint(4)  # 5\n```\n",
            encoding="utf-8",
        )
        (block,) = blocks_of(page)
        assert unprinted_claims(block, "POST\n1\n{'n': 3}\n5\n") == []
        assert unprinted_claims(block, "POST\n1\n{'n': 3}\n4\n") == ["'print(4)  # 5' printed none of ['4']"]

    def test_a_failing_block_fails(self, tmp_path: Path) -> None:
        """A block that raises gives a non-zero status (so the test above would catch it)."""
        page = tmp_path / "page.md"
        page.write_text("```python\nraise SystemExit('drifted')\n```\n", encoding="utf-8")
        (block,) = blocks_of(page)
        result = run_block(block, tmp_path)
        assert result.returncode != 0 and "drifted" in result.stderr


# ---------------------------------------------------------------------------------------------
# Links, names and commands: what a reader follows from the pages must exist.

LINKED_PAGES = [
    *PAGES,
    ROOT / "CHANGELOG.md",
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "examples").rglob("*.md")),
]
# The changelog is history: it may name what was renamed or removed since.
NAMING_PAGES = [page for page in LINKED_PAGES if page.name != "CHANGELOG.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
DURABLE_NAME = re.compile(r"(?<![\w/.-])durable\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        opening = FENCE.match(line)
        if fence is None and opening is not None:
            fence = opening.group(1)
        elif fence is not None and line.startswith(fence):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def anchors(page: Path) -> set[str]:
    """The fragment of every heading of ``page``, as GitHub derives it (duplicates get -1, -2...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(page):
        heading = HEADING.match(line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def missing_durable_names(text: str) -> list[str]:
    """The `durable.X` names in ``text`` that are no real attribute or module."""
    missing = []
    for dotted in sorted(set(DURABLE_NAME.findall(text))):
        try:
            resolve_durable_name(dotted)
        except AttributeError:
            missing.append(f"durable.{dotted}")
    return missing


class TestLinksAndNames:
    @pytest.mark.parametrize("page", LINKED_PAGES, ids=[str(p.relative_to(ROOT)) for p in LINKED_PAGES])
    def test_relative_links_resolve(self, page: Path) -> None:
        """Every relative link of the page names an existing file, and a heading of it after `#`."""
        broken = []
        for line in prose_lines(page):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue  # https:, mailto:
                path, _, fragment = target.partition("#")
                linked = (page.parent / path).resolve() if path else page
                if not linked.exists():
                    broken.append(f"{target}: no such file")
                elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                    broken.append(f"{target}: no heading #{fragment} in {linked.name}")
        assert broken == []

    def test_anchors_follow_github(self, tmp_path: Path) -> None:
        """Headings become GitHub's fragments: lower case, punctuation dropped, spaces as dashes."""
        page = tmp_path / "p.md"
        page.write_text("# A b\n## The reference object: `durable.Counter`\n```sh\n# not a heading\n```\n# A b\n")
        assert anchors(page) == {"a-b", "the-reference-object-durablecounter", "a-b-1"}

    @pytest.mark.parametrize("page", NAMING_PAGES, ids=[str(p.relative_to(ROOT)) for p in NAMING_PAGES])
    def test_durable_names_exist(self, page: Path) -> None:
        """Every `durable.X` (or `durable.testing.X`...) the page names is a real attribute or module."""
        assert missing_durable_names(page.read_text(encoding="utf-8")) == []

    @pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
    def test_example_docstrings_name_real_things(self, example: Path) -> None:
        """The examples' docstrings and comments name only `durable.X` that exist."""
        assert missing_durable_names(example.read_text(encoding="utf-8")) == []


def cli_options(*argv: str) -> set[str]:
    """The options that ``durable <argv> --help`` lists."""
    import contextlib
    import io

    from durable.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--help"]) == 0
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out.getvalue()))


class TestCommands:
    def test_serve_options_shown_exist(self) -> None:
        """Every option docs/http.md shows in its `durable serve` section, and the README and other
        pages show after `durable serve`, is an option of the command."""
        options = cli_options("serve") | cli_options()  # and `durable --version`
        http = (ROOT / "docs" / "http.md").read_text(encoding="utf-8")
        section = http.split("## durable serve", 1)[1].split("\n## ", 1)[0]
        shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section))
        for page in PAGES:
            for command in re.findall(
                r"(?:durable serve|python examples/(?:counter|chat)\.py)\b[^`\n]*", page.read_text(encoding="utf-8")
            ):
                shown |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", command))
        assert shown - options == set()

    def test_inspect_options_shown_exist(self) -> None:
        """Every option shown after `durable inspect` is an option of the command."""
        options = cli_options("inspect")
        shown: set[str] = set()
        for page in PAGES:
            for command in re.findall(r"durable inspect\b[^`\n]*", page.read_text(encoding="utf-8")):
                shown |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", command.split("#", 1)[0]))
        assert shown and shown - options == set()

    def test_guide_inspect_commands_run(self, tmp_path: Path) -> None:
        """docs/guide.md's `durable inspect` commands work on what its step 2 stored."""
        import shlex

        guide = ROOT / "docs" / "guide.md"
        blocks = blocks_of(guide)
        (step2,) = [b for b in blocks if b.info == "python" and 'Runtime(path="state")' in b.code]
        assert run_block(step2, tmp_path).returncode == 0
        (commands,) = [b for b in blocks if b.info == "sh" and "durable inspect" in b.code]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for line in commands.code.splitlines():
            argv = shlex.split(line, comments=True)
            assert argv[0] == "durable"
            result = subprocess.run(
                [sys.executable, "-m", "durable", *argv[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
