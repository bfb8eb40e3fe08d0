"""Project hygiene: the README's commands, CI and the changelog stay in step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


class TestProject:
    def test_readme_opens_with_two_commands(self) -> None:
        """The README's first block has the counter command, then the test command."""
        run_counter, run_tests = readme_commands()
        assert "'.[server]'" in run_counter and run_counter.endswith("python examples/counter.py")
        assert "'.[test]'" in run_tests and run_tests.endswith("python -m pytest")

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run runs the README's test command verbatim."""
        ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        assert readme_commands()[1] in ci

    def test_changelog_has_unreleased_section(self) -> None:
        """CHANGELOG.md follows Keep a Changelog with an Unreleased head."""
        text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
        assert "## [Unreleased]" in text

    def test_docs_linked_from_readme_exist(self) -> None:
        """Every docs/ page the README links to exists."""
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        for part in text.split("](docs/")[1:]:
            page = part.split(")", 1)[0].split("#", 1)[0]
            assert (ROOT / "docs" / page).is_file(), page

    @pytest.mark.parametrize(
        "source",
        sorted(p for d in ("durable", "tests", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py")),
        ids=lambda p: str(p.relative_to(ROOT)),
    )
    def test_docstrings_are_valid_unicode(self, source: Path) -> None:
        """No docstring holds a lone surrogate (an escape such as ``\\ud800`` written single in a
        non-raw docstring): Python 3.13 cleans docstrings as UTF-8 when it compiles them, so the
        module fails to import there, while 3.11 imports it."""
        import ast

        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc is not None:
                    doc.encode("utf-8")  # raises UnicodeEncodeError, naming the character


class TestDistribution:
    def test_distribution_name(self) -> None:
        """The distribution is durable-objects (the PyPI name `durable` belongs to another project)."""
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        assert project["name"] == "durable-objects"
        assert project["readme"] == "README.md"

    def test_no_install_instruction_names_the_old_distribution(self) -> None:
        """No page, message or docstring tells users to install `durable[...]` or plain `durable`."""
        import re

        wrong = re.compile(r"pip install (?:-U )?['\"]?durable(?:\[|['\"\s]|$)")
        files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "durable").glob("*.py")]
        offenders = [f"{f.name}: {m.group(0)}" for f in files for m in wrong.finditer(f.read_text(encoding="utf-8"))]
        assert offenders == []

    def test_ci_builds_and_checks_the_distribution(self) -> None:
        """.ci/run builds the sdist and wheel and checks them with twine."""
        ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
        assert "python -m build" in ci and "twine check --strict dist/*" in ci

    def test_readme_installs_the_published_name(self) -> None:
        """The README says how to install from PyPI, server extra included."""
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        assert "pip install 'durable-objects[server]'" in text

    def test_build_backend_writes_the_license(self) -> None:
        """`license = "MIT"` and the `license-files` list (PEP 639) need hatchling 1.27 or later.

        Measured: hatchling 1.25 refuses the list ("Field `project.license-files` must be a
        table"), 1.26 builds a wheel whose metadata has no License-Expression.
        """
        project = PYPROJECT["project"]
        assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])
        (hatchling,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("hatchling")]
        match = re.fullmatch(r"hatchling>=(\d+)\.(\d+)(?:\.\d+)?", hatchling)
        assert match is not None and (int(match[1]), int(match[2])) >= (1, 27), hatchling
        assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")

    def test_metadata(self) -> None:
        """Python 3.11 or newer, the classifiers that say so, the server and test extras."""
        project = PYPROJECT["project"]
        assert project["requires-python"] == ">=3.11"
        classifiers = set(project["classifiers"])
        assert "License :: OSI Approved :: MIT License" in classifiers
        versions = {
            c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
        }
        assert versions == {"3.11", "3.12", "3.13"}
        assert {"server", "test"} <= set(project["optional-dependencies"])
        assert project["scripts"] == {"durable": "durable.__main__:main"}


def run_example(*argv: str) -> subprocess.CompletedProcess[str]:
    """``python examples/...`` from the repository's root, importing this checkout's durable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


class TestExamples:
    @pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
    def test_help_names_the_script(self, example: Path) -> None:
        """`python examples/X.py --help` exits 0 with a usage line of its own (not `durable serve FILE.py`)."""
        result = run_example(f"examples/{example.name}", "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: ") and example.name in result.stdout.splitlines()[0]
        assert "FILE.py" not in result.stdout

    def test_a_served_example_names_itself_in_usage_errors(self) -> None:
        """A bad option of `python examples/counter.py` is reported against the script, with exit code 2."""
        result = run_example("examples/counter.py", "--port", "eighty")
        assert result.returncode == 2
        assert "python examples/counter.py: error: argument --port: invalid port: 'eighty'" in result.stderr

    @pytest.mark.parametrize("example", ["counter.py", "chat.py"])
    def test_served_examples_take_the_serve_options(self, example: str) -> None:
        """A served example takes every option of `durable serve` (its --help shows the same ones)."""
        flag = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
        serve = set(flag.findall(run_example("-m", "durable", "serve", "--help").stdout))
        assert {"--port", "--persist", "--in-memory", "--loop", "--http"} <= serve
        assert set(flag.findall(run_example(f"examples/{example}", "--help").stdout)) == serve
