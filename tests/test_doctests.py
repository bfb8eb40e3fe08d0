"""The ``>>>`` examples in the package's docstrings run and show what they claim.

Every module of ``durable`` whose source shows a ``>>>`` example is run through :mod:`doctest`
(what ``pytest --doctest-modules`` does, for these modules only: that flag would also import every
script under ``tests/`` as a module). A module that gains an example is picked up by itself.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import durable

PACKAGE = Path(durable.__file__).parent
ROOT = PACKAGE.parent
WITH_EXAMPLES = sorted(p for p in PACKAGE.rglob("*.py") if ">>>" in p.read_text(encoding="utf-8"))


class TestDocstringExamples:
    """Docstring examples are executed."""

    def test_some_module_has_examples(self) -> None:
        """The scan finds the modules with examples (durable/_codec.py has some)."""
        assert PACKAGE / "_codec.py" in WITH_EXAMPLES

    @pytest.mark.parametrize("path", WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
    def test_examples_pass(self, path: Path) -> None:
        """Every ``>>>`` example of the module gives the output its docstring shows."""
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert results.attempted > 0, f"{path.name}: no example was found by doctest"
        assert results.failed == 0, f"{path.name}: {results.failed} example(s) failed (output above)"
