"""Edges of API.md sections 1-3 (objects, ids, namespaces, stubs, ``ctx``) found by comparing with
workerd (miniflare 4, compatibility date 2026-04-07).

Each test quotes its measurement: a Worker calling a Durable Object through ``env.C`` in a probe
driven with ``mf.dispatchFetch(url)``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import durable


class Echo(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.ran = 0

    async def echo(self, value: Any) -> Any:
        self.ran += 1
        return value

    async def runs(self) -> int:
        return self.ran

    async def call_back(self, fn: Callable[[Any], Any]) -> str:
        """Call ``fn`` with a value that cannot be copied: a raise at the call, or a failed await."""
        try:
            pending = fn(object())
        except Exception as exc:
            return f"at the call: {type(exc).__name__}"
        try:
            await pending
        except durable.DataCloneError:
            return "when awaited: DataCloneError"
        return "ok"


class TestArgumentsThatCannotBeCopied:
    """workerd: ``p = stub.echo(Symbol("q"))`` does not throw (``typeof p`` is "function"); ``await p``
    rejects with ``DataCloneError: Symbol(q) could not be cloned.``, and the method never ran.
    A callback stub called with ``Symbol("z")`` inside the object likewise gives a promise that
    rejects (``rej DataCloneError: Symbol(z) could not be cloned.``). durable raised
    ``DataCloneError`` from the call itself, before any promise existed."""

    async def test_the_promise_fails_not_the_call(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Echo).get_by_name("a")
            pending = stub.echo(object())  # raised DataCloneError here
            assert isinstance(pending, durable.RpcPromise)
            with pytest.raises(durable.DataCloneError, match='type "object"'):
                await pending
            keyword = stub.echo(value=[object()])
            with pytest.raises(durable.DataCloneError):
                await keyword
            assert await stub.runs() == 0  # the method did not run

    async def test_gather_sees_it_as_one_failed_call(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Echo).get_by_name("a")
            results = await asyncio.gather(stub.echo(1), stub.echo({1: object()}), return_exceptions=True)
            assert results[0] == 1 and isinstance(results[1], durable.DataCloneError)

    async def test_an_unawaited_failed_call_is_dropped(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Echo).get_by_name("a")
            stub.echo(object())  # as on Cloudflare, nothing to see and nothing raised
            assert await stub.echo(2) == 2

    def test_without_a_running_loop_the_coroutine_raises(self) -> None:
        async def main() -> None:
            async with durable.Runtime() as rt:
                stub = rt.namespace(Echo).get_by_name("a")
                await asyncio.get_running_loop().run_in_executor(None, lambda: _no_loop_call(stub))

        def _no_loop_call(stub: Any) -> None:
            coro = stub.echo(object())  # no loop on this thread: a coroutine, failing when run
            assert asyncio.iscoroutine(coro)
            with pytest.raises(durable.DataCloneError):
                coro.send(None)

        asyncio.run(main())

    async def test_a_callback_stub_fails_its_promise(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Echo).get_by_name("a")
            assert await stub.call_back(lambda x: x) == "when awaited: DataCloneError"


class TestJurisdiction:
    """workerd: ``ns.jurisdiction()`` (``undefined``) returned ``[object DurableObjectNamespace]``;
    ``ns.jurisdiction("")`` and ``("eu")`` threw ``Error: Jurisdiction restrictions are not
    implemented in workerd.``; ``newUniqueId({jurisdiction: null})`` made an id and
    ``{jurisdiction: ""}`` threw the same Error. durable refused ``jurisdiction()`` (a missing
    argument) and ``jurisdiction(None)`` (NotImplementedError)."""

    async def test_no_jurisdiction_is_the_namespace_itself(self) -> None:
        async with durable.Runtime() as rt:
            ns = rt.namespace(Echo)
            assert ns.jurisdiction() is ns and ns.jurisdiction(None) is ns
            assert await ns.jurisdiction().get_by_name("a").echo(3) == 3

    async def test_any_name_is_not_implemented(self) -> None:
        async with durable.Runtime() as rt:
            ns = rt.namespace(Echo)
            for name in ("", "eu", "fedramp"):
                with pytest.raises(NotImplementedError, match="Jurisdiction restrictions are not implemented"):
                    ns.jurisdiction(name)
                with pytest.raises(NotImplementedError, match="Jurisdiction restrictions are not implemented"):
                    ns.new_unique_id(jurisdiction=name)
            assert ns.new_unique_id(jurisdiction=None).name is None


class Region(enum.StrEnum):
    EU = "eu"


class Text(str):
    """A str subclass that is not an enum."""


class Named(durable.DurableObject):
    async def own_name(self) -> Any:
        return self.ctx.id.name

    async def store(self) -> Any:
        await self.ctx.storage.put("k", 1)
        return self.ctx.id.name


class TestNamesThatAreStrSubclasses:
    """workerd's ``id.name`` is always a string (``idFromName(5).name`` is ``"5"``), and ``ctx.id.name``
    comes back as one. durable kept a ``str`` subclass as it was: ``ctx.id.name`` of
    ``get_by_name(Region.EU)`` could not be returned over RPC (DataCloneError: an Enum member), and
    a subclass with a lone surrogate skipped the U+FFFD reading that a ``str`` gets (workerd:
    ``idFromName("x\\ud800").name`` reads back with U+FFFD), so its first write failed the commit
    and reset the object (UnicodeEncodeError from storing the name)."""

    async def test_a_str_enum_name_is_its_text(self) -> None:
        async with durable.Runtime() as rt:
            ns = rt.namespace(Named)
            oid = ns.id_from_name(Region.EU)
            assert oid == ns.id_from_name("eu") and type(oid.name) is str and oid.name == "eu"
            assert type(ns.get_by_name(Text("t")).name) is str
            assert await ns.get_by_name(Region.EU).own_name() == "eu"

    async def test_a_surrogate_in_a_str_subclass_is_read_as_in_a_str(self, tmp_path: Path) -> None:
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Named)
            assert ns.id_from_name(Text("x\ud800")).name == "x\ufffd\ufffd\ufffd"
            assert await ns.get_by_name(Text("x\ud800")).store() == "x\ufffd\ufffd\ufffd"
            key = str(ns.id_from_name("x\ud800"))
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Named)
            assert await ns.get(ns.id_from_string(key)).own_name() == "x\ufffd\ufffd\ufffd"

    async def test_a_str_enum_namespace_name_is_its_text(self) -> None:
        """The namespace name too: ``ns.name`` was the member, and so were ids' namespace keys."""

        class Binding(enum.StrEnum):
            COUNTER = "COUNTER"

        async with durable.Runtime() as rt:
            ns = rt.namespace(Named, name=Binding.COUNTER)
            assert type(ns.name) is str and repr(ns) == "<durable.Namespace 'COUNTER' of Named (sqlite)>"
            assert type(ns.id_from_name("a").key[0]) is str
            assert rt.env.COUNTER is ns and rt.namespace(Named, name="COUNTER") is ns


class TestNewUniqueIdOptions:
    async def test_unknown_options_are_ignored(self) -> None:
        """workerd: ``newUniqueId({foo: 1})`` made an id (unknown options ignored, as ``get``'s are);
        durable raised ``TypeError: new_unique_id() got an unexpected keyword argument 'foo'``, so a
        Python Worker's ``newUniqueId({"foo": 1})`` failed where workerd's succeeds."""
        from durable.compat import python_workers as pw
        from durable.compat.python_workers import workers as sdk

        async with durable.Runtime() as rt:
            ns = rt.namespace(Echo, name="NS")
            assert ns.new_unique_id(foo=1).name is None
            pw.serving(rt)
            assert sdk.env.NS.newUniqueId({"foo": 1}).name is None
            with pytest.raises(NotImplementedError):
                ns.new_unique_id(foo=1, jurisdiction="eu")

    async def test_a_python_worker_namespace_has_no_jurisdiction(self) -> None:
        """A Python Worker's ``env.NS.jurisdiction()`` is the namespace (``None`` crosses Pyodide as
        ``undefined``); ``jurisdiction("eu")`` raises workerd's words. It raised for both, in words
        of its own (``namespace.jurisdiction() is not supported by durable``)."""
        from durable.compat import python_workers as pw
        from durable.compat.python_workers import workers as sdk

        async with durable.Runtime() as rt:
            rt.namespace(Echo, name="NS")
            pw.serving(rt)
            assert await sdk.env.NS.jurisdiction().getByName("a").echo(4) == 4
            with pytest.raises(NotImplementedError, match="Jurisdiction restrictions are not implemented"):
                sdk.env.NS.jurisdiction("eu")


class TestBindingNamesEnvCannotShow:
    """``env.NAME`` reaches a binding only if ``durable.Env`` has no attribute of that name:
    ``Runtime(vars={"__class__": 1})`` and ``namespace(cls, name="_bindings")`` were accepted, and
    ``env.__class__`` / ``env._bindings`` gave Env's own attributes (the binding reachable only as
    ``env["__class__"]``). workerd's env is a plain object whose own properties win over inherited
    ones, so there is nothing to measure: they are refused at registration, naming the problem."""

    @pytest.mark.parametrize("name", ["__class__", "_bindings", "__getitem__", "_bind"])
    async def test_vars_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match=f"a binding cannot be named '{name}'"):
            async with durable.Runtime(vars={name: 1}):
                pass

    async def test_namespace_refused(self) -> None:
        async with durable.Runtime() as rt:
            with pytest.raises(ValueError, match="a binding cannot be named '_bindings'"):
                rt.namespace(Echo, name="_bindings")
            assert "_bindings" not in rt.env
            ns = rt.namespace(Echo, name="_private_but_fine")
            assert rt.env._private_but_fine is ns
