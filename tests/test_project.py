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
