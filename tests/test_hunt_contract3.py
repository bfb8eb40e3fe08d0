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


class Obj(durable.DurableObject):
    async def own_name(self) -> str | None:
        return self.ctx.id.name


class TestIdFromStringOfAnId:
    """workerd reads ``idFromString(id)`` as ``idFromString(String(id))`` (measured: the same id,
    ``equals`` true, ``name`` undefined; an id of another namespace raises ``TypeError: Durable
    Object ID is not valid for this namespace.``). durable raised ``TypeError: Invalid Durable
    Object ID: must be 64 hex digits`` for an id, whose text is just that."""

    async def test_an_id_is_read_as_its_text(self) -> None:
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("a")
            again = ns.id_from_string(oid)
            assert again == oid and again.equals(oid) and again.name is None
            assert ns.idFromString(ns.new_unique_id()).name is None
            assert await ns.get(again).own_name() is None
            with pytest.raises(TypeError, match=r"^Durable Object ID is not valid for this namespace\.$"):
                ns.id_from_string(rt.namespace(Obj, name="OTHER").id_from_name("a"))

    def test_blocking_namespace_too(self) -> None:
        with durable.BlockingRuntime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("a")
            assert ns.id_from_string(oid) == oid
