"""Corners of the public contract (/work/shared/API.md) found by a third adversarial audit.

Each test names what the contract (or workerd, measured with miniflare 4, compatibility date
2026-04-07) promises and what durable did before the fix.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import durable
from durable.compat.python_workers._fetch import FetchError
from durable.compat.python_workers.pyodide.ffi import JsException

_COPIES: list[Callable[[Any], Any]] = [copy.copy, copy.deepcopy, lambda exc: pickle.loads(pickle.dumps(exc))]


class TestExceptionsCopyAndPickle:
    """Public exceptions with a constructor of their own could not be copied or pickled: Python
    rebuilds an exception from ``args`` (its message alone), which ``WebSocketClosed(code, reason,
    was_clean)`` and ``FetchError(name, message)`` refuse (``TypeError: missing 2 required
    positional arguments``), and ``JsException("TypeError", "x")`` came back as ``"Error:
    TypeError: x"``. Every other exception class of durable's copies and pickles, so a process pool
    or ``copy.deepcopy`` of a structure holding one failed only for these."""

    @pytest.mark.parametrize("how", _COPIES, ids=["copy", "deepcopy", "pickle"])
    def test_websocket_closed(self, how: Callable[[Any], Any]) -> None:
        exc = durable.WebSocketClosed(4000, "bye", True)
        exc.remote = True  # set on one that crossed RPC
        again = how(exc)
        assert type(again) is durable.WebSocketClosed and str(again) == "WebSocket closed with code 4000: bye"
        assert (again.code, again.reason, again.was_clean, again.wasClean) == (4000, "bye", True, True)
        assert again.remote is True and again.args == exc.args

    @pytest.mark.parametrize("how", _COPIES, ids=["copy", "deepcopy", "pickle"])
    @pytest.mark.parametrize("exc", [JsException("TypeError", "x"), JsException("m"), FetchError("TypeError", "bad")])
    def test_python_workers_errors(self, how: Callable[[Any], Any], exc: Exception) -> None:
        again = how(exc)
        assert type(again) is type(exc) and str(again) == str(exc) and again.args == exc.args
        assert vars(again) == vars(exc)
