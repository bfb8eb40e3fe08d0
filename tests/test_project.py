"""Project hygiene: the README's commands, CI and the changelog stay in step."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
            page = part.split(")", 1)[0]
            assert (ROOT / "docs" / page).is_file(), page


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
