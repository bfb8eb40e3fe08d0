"""docs/api.md and the package's exports cannot drift apart.

Every name in ``durable.__all__`` and ``durable.testing.__all__`` has an entry in docs/api.md, and
every ``durable.X`` (or ``durable.testing.X``) the page names exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import durable
import durable.testing

from helpers import resolve_durable_name

API_MD = Path(__file__).resolve().parent.parent / "docs" / "api.md"
TEXT = API_MD.read_text(encoding="utf-8")
# The error tree (a fenced block under "## Errors") names the exception classes without the prefix.
TREE = re.search(r"## Errors\s+```\n(.*?)```", TEXT, re.S)
TREE_NAMES = set(re.findall(r"(?:^|── )([A-Z]\w+)", TREE.group(1), re.M)) if TREE else set()
TESTING = re.search(r"## Testing\n(.*?)(?=\n## |\Z)", TEXT, re.S)
TESTING_TEXT = TESTING.group(1) if TESTING else ""
NAMED = sorted(set(re.findall(r"\bdurable\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)", TEXT)))


class TestApiReference:
    @pytest.mark.parametrize("name", sorted(durable.__all__))
    def test_every_export_has_an_entry(self, name: str) -> None:
        """Each name of durable.__all__ appears in docs/api.md as `durable.NAME` (errors: in the tree)."""
        exported = getattr(durable, name)
        in_tree = isinstance(exported, type) and issubclass(exported, BaseException) and name in TREE_NAMES
        assert re.search(rf"\bdurable\.{name}\b", TEXT) or in_tree, f"docs/api.md has no entry for durable.{name}"

    @pytest.mark.parametrize("name", sorted(durable.testing.__all__))
    def test_every_testing_helper_is_listed(self, name: str) -> None:
        """Each name of durable.testing.__all__ appears in the Testing section of docs/api.md."""
        assert re.search(rf"`{name}\b", TESTING_TEXT), f"docs/api.md's Testing section omits durable.testing.{name}"

    @pytest.mark.parametrize("dotted", NAMED)
    def test_every_named_thing_exists(self, dotted: str) -> None:
        """Every `durable.X` the page names is a real attribute or submodule."""
        resolve_durable_name(dotted)

    def test_the_error_tree_is_the_real_tree(self) -> None:
        """Every class in the page's error tree is a durable exception."""
        assert TREE_NAMES, "docs/api.md has no error tree under ## Errors"
        for name in TREE_NAMES:
            cls = getattr(durable, name, None)
            assert isinstance(cls, type) and issubclass(cls, durable.DurableError), name
