"""Project tooling: the linter's configuration, CI's lint step, and the lint itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


class TestRuff:
    """ruff is configured once, installed by the test extra, and run by CI."""

    def test_one_line_width(self) -> None:
        """One line width for the linter and the formatter, set once in [tool.ruff]."""
        ruff = pyproject()["tool"]["ruff"]
        assert ruff["line-length"] == 120
        assert "line-length" not in ruff["lint"] and "line-length" not in ruff.get("format", {})
        assert "format" in ruff

    def test_in_the_test_extra(self) -> None:
        """`pip install -e '.[test]'` installs ruff."""
        test_extra = pyproject()["project"]["optional-dependencies"]["test"]
        assert any(req.startswith("ruff") for req in test_extra)

    def test_ci_runs_ruff_check(self) -> None:
        """.ci/run lints the whole tree and checks its formatting."""
        lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        assert "ruff check ." in lines
        assert "ruff format --check ." in lines

    def test_tree_is_clean(self) -> None:
        """`ruff check .` reports nothing (skipped where ruff is not installed)."""
        ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
        if ruff is None:
            pytest.skip("ruff is not installed")
        done = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


class TestCitations:
    """The package's docstrings and comments cite only documents that are in the repository."""

    def test_no_citation_of_absent_documents(self) -> None:
        """No module cites the contract files, reference notes or issue numbers kept outside the repository."""
        absent = re.compile(r"(?<![/\w])API\.md|cloudflare-semantics|\breference section|(?i:\bissue \d+)|STYLE\.md")
        found = [
            f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for path in sorted((ROOT / "durable").rglob("*.py"))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if absent.search(line)
        ]
        assert found == []

    def test_cited_docs_pages_exist(self) -> None:
        """Every ``docs/<page>.md`` the package cites exists."""
        cited = {
            match.group(0)
            for path in (ROOT / "durable").rglob("*.py")
            for match in re.finditer(r"docs/[\w.-]+\.md", path.read_text(encoding="utf-8"))
        }
        assert cited, "the scan found no citation at all"
        assert sorted(page for page in cited if not (ROOT / page).is_file()) == []


class TestDesignNotes:
    """docs/design.md's module map lists every module of the package, and only those."""

    def test_module_map_matches_the_package(self) -> None:
        """Each ``durable/`` module has its line in the map; each line names an existing module."""
        text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
        section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
        listed = set(re.findall(r"^- `([\w/]+\.py)`:", section, re.MULTILINE))
        package = {str(p.relative_to(ROOT / "durable")) for p in (ROOT / "durable").rglob("*.py")}
        assert sorted(package - listed) == [], "modules missing from docs/design.md's module map"
        assert sorted(listed - package) == [], "docs/design.md's module map names modules that do not exist"

    def test_linked_from_the_readme(self) -> None:
        """The README's Documentation list links the design notes."""
        assert "](docs/design.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
