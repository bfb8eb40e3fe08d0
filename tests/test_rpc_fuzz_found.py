"""Differences the random RPC test (tests/differential/rpc_ops.py, run_rpc.py) found, fixed.

workerd carries a *thrown* error's message to the caller as text (measured with miniflare 4,
compatibility date 2026-04-07, probe /tmp/contract-mf: a Durable Object method, an RpcTarget's
method and a callback each throwing the same messages): the message ends at its first NUL
character, and a standard class's loses its leading spaces:

- ``throw new TypeError(" a ")`` arrives as ``TypeError: "a "``; ``"a\\0b"`` as ``"a"``; ``"\\0"``
  and ``"  "`` as ``""``;
- tabs, newlines, ``\\r\\n``, U+00A0, U+2003, vertical tab and form feed stay, leading or
  trailing, and so do trailing spaces;
- an ``Error`` subclass arrives as ``Error: "Custom:  a"`` (docs/differences.md "Errors"): its
  spaces after the colon stay, the NUL still cuts it (``"Custom: \\0b"`` gives ``"Custom: "``);
- an ``Error`` sent as a value (returned, not thrown) keeps its message whole.

Before the fix ``durable`` delivered the message whole in every case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import durable


class Custom(Exception):
    pass


class Worded(Exception):
    def __str__(self) -> str:
        return "its own words"


class Thrower(durable.RpcTarget):
    def boom(self, message: str) -> None:
        raise TypeError(message)


class Obj(durable.DurableObject):
    def boom(self, cls: str, message: str) -> None:
        raise {"TypeError": TypeError, "ValueError": ValueError, "Exception": Exception, "Custom": Custom}[cls](message)

    def worded(self, message: str) -> None:
        raise Worded(message)

    def two_args(self, message: str) -> None:
        raise TypeError(message, 2)

    def value(self, message: str) -> TypeError:
        return TypeError(message)

    def target(self) -> Thrower:
        return Thrower()

    async def call_back(self, fn: Any, message: str) -> Any:
        return await fn(message)


@pytest.fixture
def stub(durable_runtime: durable.Runtime) -> Any:
    return durable_runtime.namespace(Obj).get_by_name("a")


def _raise_value_error(message: str) -> None:
    raise ValueError(message)


@pytest.mark.parametrize(
    ("message", "arrives"),
    [
        (" a ", "a "),
        ("a\0b", "a"),
        ("\0", ""),
        ("  ", ""),
        (" a\0 b", "a"),
        ("\ta\t", "\ta\t"),
        ("\na\n", "\na\n"),
        ("a\r\n", "a\r\n"),
        ("\xa0a\xa0", "\xa0a\xa0"),
        ("\u2003a", "\u2003a"),
        ("a\x0b", "a\x0b"),
    ],
)
class TestThrownMessage:
    async def test_from_a_method(self, stub: Any, message: str, arrives: str) -> None:
        """workerd: a method's ``throw new TypeError(m)`` / ``RangeError`` / ``Error``."""
        for cls, expected in (("TypeError", TypeError), ("ValueError", ValueError), ("Exception", Exception)):
            with pytest.raises(expected) as info:
                await stub.boom(cls, message)
            assert type(info.value) is expected and info.value.args == (arrives,) and info.value.remote  # type: ignore[attr-defined]

    async def test_from_an_rpc_target(self, stub: Any, message: str, arrives: str) -> None:
        """workerd: an RpcTarget's method that throws, called through the stub its caller got."""
        target = await stub.target()
        with pytest.raises(TypeError) as info:
            await target.boom(message)
        assert info.value.args == (arrives,)

    async def test_from_a_callback(self, stub: Any, message: str, arrives: str) -> None:
        """workerd: a callback the caller sent throws; the object lets it through to the caller."""
        with pytest.raises(ValueError) as info:
            await stub.call_back(_raise_value_error, message)
        assert info.value.args == (arrives,)


class TestWhatKeepsItsMessage:
    @pytest.mark.parametrize(("message", "arrives"), [(" a", " a"), (" a\0b", " a"), ("\0b", "")])
    async def test_a_class_of_the_application_is_only_cut_at_nul(self, stub: Any, message: str, arrives: str) -> None:
        """workerd: ``class Custom extends Error`` thrown with " a" arrives as "Custom:  a" (the
        spaces stay after the name), with " a\\0b" as "Custom:  a"."""
        with pytest.raises(Custom) as info:
            await stub.boom("Custom", message)
        assert info.value.args == (arrives,)

    async def test_an_error_sent_as_a_value(self, stub: Any) -> None:
        """workerd: ``return new TypeError(" a\\0b")`` arrives with that message."""
        error = await stub.value(" a\0b")
        assert type(error) is TypeError and error.args == (" a\0b",)

    async def test_a_class_with_its_own_str(self, stub: Any) -> None:
        """A message its ``__str__`` makes is not the argument: nothing to cut."""
        with pytest.raises(Worded) as info:
            await stub.worded(" a\0b")
        assert info.value.args == (" a\0b",)

    async def test_several_arguments(self, stub: Any) -> None:
        """An exception of several arguments has no one message to cut: it arrives as raised."""
        with pytest.raises(TypeError) as info:
            await stub.two_args(" a\0b")
        assert info.value.args == (" a\0b", 2)

    async def test_an_ordinary_message(self, stub: Any) -> None:
        with pytest.raises(TypeError) as info:
            await stub.boom("TypeError", "bad type")
        assert info.value.args == ("bad type",)


class Made(durable.RpcTarget):
    def hi(self) -> str:
        return "hi"

    @property
    def p(self) -> int:
        return 1


class Maker(durable.DurableObject):
    def make(self) -> list[Any]:
        return [lambda: "fn", lambda v: [v, v], Made()]

    def stop(self, reason: str) -> None:
        self.ctx.abort(reason)


@pytest.fixture
def maker(durable_runtime: durable.Runtime) -> Any:
    return durable_runtime.namespace(Maker).get_by_name("m")


class TestCallbackMembers:
    """workerd (miniflare 4, 2026-04-07): ``await fn.nope()`` and ``await fn.size`` on a function's
    stub raise ``TypeError: The RPC receiver does not implement the method "nope".`` with
    ``remote: true``. Before: ``AttributeError: 'CallbackStub' object has no attribute 'nope'``."""

    async def test_a_method_call(self, maker: Any) -> None:
        fn, _, _ = await maker.make()
        with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "nope"\.$') as info:
            await fn.nope(1)
        assert info.value.remote  # type: ignore[attr-defined]

    async def test_a_property_read(self, maker: Any) -> None:
        _, pair, _ = await maker.make()
        with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "size"\.$'):
            await pair.size
        assert await pair("x") == ["x", "x"]  # the stub still works

    async def test_python_protocol_names_stay_attribute_errors(self, maker: Any) -> None:
        """Names starting with ``_`` are Python's protocols (``__wrapped__``, ``_is_coroutine``)."""
        fn, _, _ = await maker.make()
        assert not hasattr(fn, "_is_coroutine") and not hasattr(fn, "__wrapped__")


class TestHomeGone:
    """workerd (miniflare 4, 2026-04-07): a function and an RpcTarget returned by an object that
    then called ``ctx.abort("r")``, called afterwards: ``Error: The execution context which hosts
    this callback is no longer running.``, ``remote`` and ``durableObjectReset`` unset. Before:
    the reset error (``ObjectAbortedError: r``, ``durable_object_reset``)."""

    async def test_function_and_target(self, maker: Any) -> None:
        fn, pair, target = await maker.make()
        with pytest.raises(durable.ObjectAbortedError):
            await maker.stop("r")
        calls: list[Callable[[], Awaitable[Any]]] = [lambda: fn(), lambda: pair(1), target.hi, lambda: target.p]
        for call in calls:
            with pytest.raises(durable.DurableError) as info:
                await call()
            assert type(info.value) is durable.DurableError
            assert str(info.value) == "The execution context which hosts this callback is no longer running."
            assert not info.value.remote and not info.value.durable_object_reset


class TestAbortReason:
    """workerd (miniflare 4, 2026-04-07): ``ctx.abort("  ")`` fails the call with an ``Error``
    whose message is ``""``, ``abort(" a\\0b")`` with ``"a\\0b"`` (leading spaces go, a NUL stays).
    Before: the reason whole."""

    @pytest.mark.parametrize(("reason", "message"), [("  ", ""), (" a\0b", "a\0b"), ("a ", "a "), ("\ta", "\ta")])
    async def test_leading_spaces(self, maker: Any, reason: str, message: str) -> None:
        with pytest.raises(durable.ObjectAbortedError) as info:
            await maker.stop(reason)
        assert str(info.value) == message


class Relays(durable.DurableObject):
    def stop(self, reason: str) -> None:
        self.ctx.abort(reason)

    async def relay(self, peer: str, reason: str) -> None:
        await self.env.Relays.get_by_name(peer).stop(reason)


class TestAbortReasonLetThrough:
    """An object that lets another object's abort error through (``await other.stop(reason)``,
    not caught) throws it on: workerd (miniflare 4.20260426, compatibility date 2026-04-20) carries
    its message to the caller as any thrown error's, cut at its first NUL (``ctx.abort("x\0y")``
    two hops away arrives as ``"x"``, one hop away as ``"x\0y"``), without ``durableObjectReset``.
    Found by ``run_rpc.py 250 --seed 9747 --loop uvloop`` (interaction 132) and ``run_rpc.py 200
    --seed 9748`` on Python 3.13 (interaction 113). Before: ``"x\0y"`` on both hops."""

    @pytest.mark.parametrize(
        ("reason", "message"),
        [
            ("x\0y", "x"),
            ("  a\0b", "a"),
            (" a", "a"),
            ("\0", ""),
            ("a\tb \0", "a\tb "),
            ("a\ud800", "a" + "\ufffd" * 3),
        ],
    )
    async def test_two_hops(self, durable_runtime: durable.Runtime, reason: str, message: str) -> None:
        ns = durable_runtime.namespace(Relays, name="Relays")
        with pytest.raises(durable.ObjectAbortedError) as info:
            await ns.get_by_name("a").relay("b", reason)
        assert str(info.value) == message
        assert info.value.remote and not info.value.durable_object_reset
        with pytest.raises(durable.ObjectAbortedError) as one_hop:  # (from the reset object: whole)
            await ns.get_by_name("c").stop("x\0y")
        assert str(one_hop.value) == "x\0y"


class Blocked(durable.DurableObject):
    async def bcw(self, message: str) -> None:
        async def fail() -> None:
            raise TypeError(message)

        await self.ctx.block_concurrency_while(fail)


class TestResetByAThrownError:
    """workerd (miniflare 4, 2026-04-07): a ``blockConcurrencyWhile()`` callback that throws
    ``new TypeError("  a\\0b")`` fails the call with ``TypeError: "a"`` and ``durableObjectReset``:
    the thrown error's message is cut as for any thrown error. Before: ``"  a\\0b"``."""

    async def test_block_concurrency_while(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(Blocked).get_by_name("b")
        with pytest.raises(TypeError) as info:
            await stub.bcw("  a\0b")
        assert info.value.args == ("a",) and info.value.durable_object_reset  # type: ignore[attr-defined]
        with pytest.raises(TypeError) as again:  # the broken stub raises it again, cut the same way
            await stub.bcw("x")
        assert again.value.args == ("a",)


class TestLoneSurrogates:
    """workerd (miniflare 4, 2026-04-07) carries a thrown error's message and an abort reason as
    UTF-8: ``throw new TypeError("a\\ud800b")`` arrives as ``"a\\ufffdb"`` (``"\\udfff"`` as
    ``"\\ufffd"``, a surrogate pair stays its character); ``ctx.abort("x\\ud800")`` fails the call
    with ``"x"`` and three U+FFFD; an ``Error`` sent as a value keeps its lone surrogates.
    Before: the message whole."""

    @pytest.mark.parametrize(
        ("message", "arrives"), [("a\ud800b", "a\ufffdb"), ("\udfff", "\ufffd"), ("\ud83d\ude00", "\U0001f600")]
    )
    async def test_thrown(self, stub: Any, message: str, arrives: str) -> None:
        with pytest.raises(TypeError) as info:
            await stub.boom("TypeError", message)
        assert info.value.args == (arrives,)
        assert (await stub.value(message)).args == (message,)

    async def test_abort_reason(self, maker: Any) -> None:
        with pytest.raises(durable.ObjectAbortedError) as info:
            await maker.stop("x\ud800")
        assert str(info.value) == "x\ufffd\ufffd\ufffd"


class Box(durable.RpcTarget):
    def add(self, v: int) -> list[int]:
        return [v]

    def named(self, name: Any = None, target: Any = None, label: Any = None) -> list[Any]:
        return [name, target, label]

    @property
    def size(self) -> int:
        return 0

    @property
    def child(self) -> Box:
        return Box()

    @property
    def obj(self) -> dict[str, Any]:
        return {"k": 1, "t": Box()}


class Configs(durable.DurableObject):
    def config(self) -> dict[str, Any]:
        return {"name": "n", "target": Box(), "nested": {"val": 7, "inner": {"x": 1, "t": Box()}}}

    def box(self) -> Box:
        return Box()


class TestPipelinedNotAFunction:
    """workerd (miniflare 4.20260426, compatibility date 2026-04-20) names a pipelined call's
    member that is not a function by its whole path from the first call's result:
    ``getConfig().target.size(1)`` raises ``TypeError: "target.size" is not a function.`` (remote),
    ``getConfig().nested.inner.x(1)`` ``"nested.inner.x" ...``; a call right on the result names
    the one name (``getConfig().name(1)``, ``getTarget().size(1)``: ``"size" ...``), and so does a
    call on a held stub (``(await getTarget()).size(1)``). Found by ``run_rpc.py --seed 9975 --loop
    uvloop`` (interaction 116). Before: the last name only (``"size" is not a function.``)."""

    @pytest.mark.parametrize(
        ("source", "path", "label"),
        [
            ("config", ("target", "size"), "target.size"),
            ("config", ("name",), "name"),
            ("config", ("nested", "val"), "nested.val"),
            ("config", ("nested", "inner", "x"), "nested.inner.x"),
            ("config", ("nested", "inner", "t", "size"), "nested.inner.t.size"),
            ("config", ("target", "child", "child", "size"), "target.child.child.size"),
            ("config", ("target", "obj", "t", "size"), "target.obj.t.size"),
            ("box", ("size",), "size"),
            ("box", ("child", "size"), "child.size"),
            ("box", ("obj", "k"), "obj.k"),
        ],
    )
    async def test_names_the_path(
        self, durable_runtime: durable.Runtime, source: str, path: tuple[str, ...], label: str
    ) -> None:
        member: Any = getattr(durable_runtime.namespace(Configs).get_by_name("c"), source)()
        for name in path:
            member = getattr(member, name)
        with pytest.raises(TypeError) as info:
            await member(1)
        assert info.value.args == (f'"{label}" is not a function.',) and info.value.remote  # type: ignore[attr-defined]

    async def test_a_held_stub_names_the_name(self, durable_runtime: durable.Runtime) -> None:
        box = await durable_runtime.namespace(Configs).get_by_name("c").box()
        with pytest.raises(TypeError, match=r'^"size" is not a function\.$'):
            await box.size(1)

    @pytest.mark.parametrize(
        ("path", "missing"),
        [
            (("target", "nope"), "nope"),
            (("nested", "nope", "y"), "nope"),
            (("name", "x"), "name"),
            (("target", "size", "x"), "size"),
        ],
    )
    async def test_a_missing_member_is_named_alone(
        self, durable_runtime: durable.Runtime, path: tuple[str, ...], missing: str
    ) -> None:
        """workerd: a member missing on the way (or walked on from a number, a string) is named
        alone: ``getConfig().nested.nope.y()`` raises ``... does not implement the method "nope".``"""
        member: Any = durable_runtime.namespace(Configs).get_by_name("c").config()
        for name in path:
            member = getattr(member, name)
        with pytest.raises(TypeError, match=rf'^The RPC receiver does not implement the method "{missing}"\.$'):
            await member(1)


class TestKeywordsOfATargetsMethod:
    """A target's method whose keyword arguments are called ``name``, ``target`` or ``label``
    (the names of durable's own helper's parameters): before, ``await box.named(name=1)`` raised
    ``TypeError: _call_member() got multiple values for argument 'name'``."""

    async def test_called_by_keyword(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(Configs).get_by_name("c")
        box = await stub.box()
        assert await box.named(name=1, target=2, label=3) == [1, 2, 3]
        assert await stub.box().named(name=4) == [4, None, None]
        assert await stub.config().target.named(target=5) == [None, 5, None]


class TestHeldTargetPaths:
    """workerd (miniflare 4.20260426, compatibility date 2026-04-20) walks a path on a held
    ``RpcTarget`` stub where the target lives: ``await t.child.size`` reads, ``t.child.add(1)``
    calls, ``t.child.size(1)`` raises ``"child.size" is not a function.`` (remote), a name missing
    on the way ``does not implement the method "nope".``, one walked on from a number names the
    member before it. Before: ``AttributeError: '_TargetMember' object has no attribute ...``."""

    async def test_reads_and_calls(self, durable_runtime: durable.Runtime) -> None:
        box = await durable_runtime.namespace(Configs).get_by_name("c").box()
        assert await box.child.size == 0
        assert await box.obj.k == 1
        assert await box.child.add(2) == [2]
        assert await box.obj.t.child.add(3) == [3]
        assert await box.child.named(name=4) == [4, None, None]

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            (("child", "size"), '"child.size" is not a function.'),
            (("obj", "k"), '"obj.k" is not a function.'),
            (("obj", "t", "child", "size"), '"obj.t.child.size" is not a function.'),
            (("child", "nope"), 'The RPC receiver does not implement the method "nope".'),
            (("obj", "nope", "x"), 'The RPC receiver does not implement the method "nope".'),
            (("size", "x"), 'The RPC receiver does not implement the method "size".'),
            (("obj", "k", "x"), 'The RPC receiver does not implement the method "k".'),
        ],
    )
    async def test_errors(self, durable_runtime: durable.Runtime, path: tuple[str, ...], message: str) -> None:
        member: Any = await durable_runtime.namespace(Configs).get_by_name("c").box()
        for name in path:
            member = getattr(member, name)
        with pytest.raises(TypeError) as info:
            await member(1)
        assert info.value.args == (message,) and info.value.remote  # type: ignore[attr-defined]

    async def test_a_functions_member_path(self, maker: Any) -> None:
        """workerd: ``fn.a.x()`` on a function's stub names ``"a"``."""
        fn, _, _ = await maker.make()
        with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "a"\.$'):
            await fn.a.x()


class _Keywords(durable.RpcTarget):
    def kws(self, /, **kwargs: Any) -> dict[str, Any]:  # (``self=`` works called directly too)
        return kwargs

    @property
    def child(self) -> _Keywords:
        return _Keywords()


def _keywords(**kwargs: Any) -> dict[str, Any]:
    return kwargs


class KeywordsObj(durable.DurableObject):
    def target(self) -> _Keywords:
        return _Keywords()

    def fn(self) -> Any:
        return _keywords

    def kws(self, /, **kwargs: Any) -> dict[str, Any]:
        return kwargs


class TestAKeywordNamedSelf:
    """A method (``def kws(self, /, **kwargs)``) or function taking ``**kwargs`` gets ``self=``, through a held target stub,
    its member path, a pipelined call and a function's stub (Python only: JavaScript has no
    keyword arguments). Before: ``TypeError: _TargetMember.__call__() got multiple values for
    argument 'self'`` (the stub's own ``__call__`` took it)."""

    async def test_self_keyword(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(KeywordsObj).get_by_name("k")
        t = await stub.target()
        assert await t.kws(self=1, name=2) == {"self": 1, "name": 2}
        assert await t.child.kws(self=3) == {"self": 3}
        assert await stub.target().kws(self=4) == {"self": 4}
        assert await stub.target().child.kws(self=5) == {"self": 5}
        fn = await stub.fn()
        assert await fn(self=6) == {"self": 6}

    async def test_self_keyword_on_a_durable_object_stub(self, durable_runtime: durable.Runtime) -> None:
        """The object's own method through its stub (``RpcMethod.__call__``) gets ``self=`` too."""
        stub = durable_runtime.namespace(KeywordsObj).get_by_name("k")
        assert await stub.kws(self=7, name=8) == {"self": 7, "name": 8}
