"""Project tooling: the linter's configuration, CI's lint step, and the lint itself."""

from __future__ import annotations

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
        """.ci/run lints the whole tree."""
        assert "ruff check ." in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()

    def test_tree_is_clean(self) -> None:
        """`ruff check .` reports nothing (skipped where ruff is not installed)."""
        ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
        if ruff is None:
            pytest.skip("ruff is not installed")
        done = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
