"""Corners of the public contract (/work/shared/API.md) found by a third adversarial audit.

Each test names what the contract (or workerd, measured with miniflare 4, compatibility date
2026-04-07) promises and what durable did before the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.compat.python_workers._fetch import FetchError
from durable.compat.python_workers.pyodide.ffi import JsException
from durable.testing import MockClock, list_ids

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


class Named(durable.DurableObject):
    woke: list[str | None] = []

    async def write(self) -> str | None:
        await self.ctx.storage.put("k", 1)
        await self.ctx.storage.set_alarm(2_000_000)
        return self.ctx.id.name

    async def own_name(self) -> str | None:
        return self.ctx.id.name

    async def alarm(self, info: durable.AlarmInfo) -> None:
        Named.woke.append(self.ctx.id.name)


class TestTheEmptyNameAfterARestart:
    """``get_by_name("")`` is a name like any other (workerd: ``idFromName("").name`` is ``""``), and a
    persisted runtime keeps an object's name for ``ctx.id.name`` however it is started again and for
    ``list_ids``. The name ``""`` was recorded but read back as a false value and dropped: after a
    restart ``list_ids`` gave ``name None``, and so did ``ctx.id.name`` in an instance started by an
    ``id_from_string`` stub or by its alarm."""

    async def test_it_comes_back(self, tmp_path: Path) -> None:
        Named.woke = []
        async with durable.Runtime(path=tmp_path, clock=MockClock(start=1000)) as rt:
            assert await rt.namespace(Named).get_by_name("").write() == ""
        async with durable.Runtime(path=tmp_path, clock=MockClock(start=1000)) as rt:
            ns = rt.namespace(Named)
            assert [oid.name for oid in await list_ids(ns)] == [""]
            assert await ns.get(ns.id_from_string(str(ns.id_from_name("")))).own_name() == ""
        clock = MockClock(start=1000)
        async with durable.Runtime(path=tmp_path, clock=clock) as rt:
            rt.namespace(Named)
            await clock.advance(1001)
            assert Named.woke == [""]


@dataclasses.dataclass
class AppConfig:
    runtime: durable.Runtime
    env: durable.Env


class TestRuntimeAndEnvAreHandles:
    """``BlockingRuntime``, ``Namespace`` and ``Stub`` are handles (docs/threads.md): ``copy.copy``,
    ``copy.deepcopy`` and ``dataclasses.asdict`` of a structure holding one give it itself, and
    pickling raises ``TypeError`` naming it. ``Runtime`` and ``Env`` were not: ``copy.copy(rt)``
    made a second Runtime sharing the first's objects and files, ``copy.deepcopy`` and
    ``dataclasses.asdict`` of either recursed until ``RecursionError`` (Env's ``__getattr__`` on an
    instance without bindings), and so did ``pickle.loads(pickle.dumps(env))``."""

    async def test_copies_give_the_runtime_and_its_env(self) -> None:
        async with durable.Runtime(vars={"GREETING": "hi"}) as rt:
            rt.namespace(Obj, name="OBJ")
            assert copy.copy(rt) is rt and copy.deepcopy(rt) is rt
            assert copy.copy(rt.env) is rt.env and copy.deepcopy(rt.env) is rt.env
            config = dataclasses.asdict(AppConfig(rt, rt.env))
            assert config["runtime"] is rt and config["env"] is rt.env
            assert await copy.deepcopy(rt.env).OBJ.get_by_name("a").own_name() == "a"

    async def test_pickling_says_why_not(self) -> None:
        async with durable.Runtime(vars={"GREETING": "hi"}) as rt:
            with pytest.raises(TypeError, match=r"^a durable\.Runtime cannot be pickled: "):
                pickle.dumps(rt)
            with pytest.raises(TypeError, match=r"^a durable\.Env cannot be pickled: "):
                pickle.dumps(rt.env)
