"""Python Workers' ``js`` globals against JavaScript's own answers, on the inputs where a
Python idiom gives a different one: white space (``str.strip``'s set is not JavaScript's), the
order of promise jobs, timers across objects and resets, and dates outside ``datetime``'s years.

Expected values were measured with node (V8, the engine and date parser of workerd) and, for
the timers, in workerd (miniflare 4, compatibility date 2026-04-07) with the JavaScript each
test names.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def _js() -> Any:
    import js  # type: ignore[import-not-found]

    return js


class TestWhiteSpace:
    def test_javascript_white_space_not_pythons(self) -> None:
        """node: ``parseInt("\\ufeff42")``, ``parseFloat("\\ufeff42")`` are 42 and
        ``isNaN("\\ufeff42")`` false (the byte order mark is white space to JavaScript);
        ``parseInt("\\x1c42")``, ``parseInt("\\x8542")``, ``parseFloat`` of them are ``NaN`` and
        ``isNaN`` true (Python's ``str.isspace`` takes them as white space, JavaScript does not);
        ``parseInt("\\u212a", 36)`` (the Kelvin sign, whose ``lower()`` is ``k``) is ``NaN``."""
        js = _js()
        assert js.parseInt("\ufeff42") == 42 and js.parseInt("\ufeff42", 16) == 66
        assert js.parseFloat("\ufeff4.5") == 4.5
        assert js.isNaN("\ufeff42") is False and js.isFinite("\u3000 42 \ufeff") is True
        for text in ("\x1c42", "\x1f42", "\x8542"):
            assert math.isnan(js.parseInt(text)) and math.isnan(js.parseFloat(text))
            assert js.isNaN(text) is True
        assert math.isnan(js.parseInt("\u212a", 36))
        assert js.parseInt("\u2028\u00a0 -12abc") == -12
