"""Found by the fourth contract hunt (API.md sections 2-9, called with wrong inputs as a user's
tests call them).

Every bad input already got a clear error; what these tests check is what the user sees around
it, in a test report, and what is documented where durable keeps workerd's behaviour apart.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Callable
from typing import ClassVar

import pytest

import durable
import durable.testing


def _frame_self(exc: BaseException, cls: type) -> object:
    """The ``self`` of the innermost frame of ``exc``'s traceback whose ``self`` is a ``cls``:
    what pytest prints as ``self = ...`` when it shows that frame's arguments."""
    found: object = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, cls):
            found = candidate
        tb = tb.tb_next
    assert found is not None, f"no frame of {cls.__name__} in the traceback"
    return found


_REFUSED: list[tuple[str, type, Callable[[], object]]] = [
    ("Response(status=99)", durable.Response, lambda: durable.Response(status=99)),
    ("MockClock('x')", durable.testing.MockClock, lambda: durable.testing.MockClock("x")),  # type: ignore[arg-type]
    (
        "WebSocketRequestResponsePair(None, 'x')",
        durable.WebSocketRequestResponsePair,
        lambda: durable.WebSocketRequestResponsePair(None, "x"),  # type: ignore[arg-type]
    ),
    ("WebSocket()", durable.WebSocket, lambda: durable.WebSocket()),
]


def _more_refused() -> list[tuple[str, type, Callable[[], object]]]:
    """The same defect in the classes the review after the hunt found (review-r2): the runtime
    and the Python Workers classes a user's code constructs (``js.URL.new``, ``workers.Response``...)."""
    from durable.compat.python_workers import _forms, _http, _jsdate, _jsurl, _wsclient, js

    return [
        ("Runtime(idle_timeout=-1)", durable.Runtime, lambda: durable.Runtime(idle_timeout=-1)),
        ("js.URL.new('bad')", _jsurl.URL, lambda: js.URL.new("bad")),
        ("js.URLSearchParams.new(5)", _jsurl.URLSearchParams, lambda: js.URLSearchParams.new(5)),
        ("js.WebSocket.new('bad')", _wsclient.JsWebSocket, lambda: js.WebSocket.new("bad")),
        ("workers.Response(status=99)", _http.Response, lambda: _http.Response("x", status=99)),
        ("workers.Request('bad')", _http.Request, lambda: _http.Request("bad")),
        ("workers.Blob(5)", _forms.Blob, lambda: _forms.Blob(5)),
        ("workers.File(5, 'f')", _forms.File, lambda: _forms.File(5, "f")),
        ("JsDate(object())", _jsdate.JsDate, lambda: _jsdate.JsDate(object())),  # type: ignore[arg-type]
    ]


_REFUSED += _more_refused()


class TestAConstructorThatRefusesItsInput:
    """pytest shows the arguments of every frame of a failure's traceback, ``self`` included. A
    constructor that refused its input left ``self`` without the fields its ``__repr__`` reads, so
    the report of ``durable.Response(status=99)`` in a user's test read ``self =
    <[AttributeError("'Response' object has no attribute 'status'") raised in repr()] Response
    object at 0x...>`` above the real ``ValueError``, an error that is not the user's. Now the
    half-built instance reads ``<Response (not constructed: its __init__ raised)>``."""

    @pytest.mark.parametrize(("call", "cls", "make"), _REFUSED, ids=[case[0] for case in _REFUSED])
    def test_the_half_built_instance_has_a_repr(self, call: str, cls: type, make: Callable[[], object]) -> None:
        with pytest.raises(Exception) as caught:  # (TypeError, ValueError, js's JsException)
            make()
        shown = repr(_frame_self(caught.value, cls))
        assert shown == f"<{cls.__qualname__} (not constructed: its __init__ raised)>", call

    def test_a_built_instance_reads_as_before(self) -> None:
        assert repr(durable.Response("x", status=201)) == "<Response [201 Created]>"
        assert repr(durable.testing.MockClock(5)) == "MockClock(time=5.0)"

    def test_an_attribute_error_of_a_built_instance_is_not_hidden_by_a_subclass(self) -> None:
        """Only a missing field reads as "not constructed": a subclass's own repr still runs."""

        class Mine(durable.Response):
            def __repr__(self) -> str:
                return "mine"

        assert repr(Mine("x")) == "mine"


class Keeper(durable.DurableObject):
    kept: ClassVar[list[durable.State]] = []

    async def keep(self) -> None:
        Keeper.kept.append(self.ctx)


class TestWaitUntilRefusedOutsideItsObject:
    """``ctx.wait_until(coro)`` from outside the object raises ``RuntimeError`` naming the fix, and
    the coroutine it was handed is never run. It was left unclosed, so Python added ``RuntimeWarning:
    coroutine '...' was never awaited`` when it was collected: under ``-W error`` (or pytest's
    ``filterwarnings = error``) that warning, raised where the collection happens, failed a test
    that had checked the ``RuntimeError`` with ``pytest.raises``. The refused coroutine is now closed,
    as ``block_concurrency_while(coro)`` and ``BlockingRuntime.run(coro)`` already closed theirs."""

    async def test_the_refused_coroutine_is_closed(self) -> None:
        async with durable.Runtime() as rt:
            await rt.namespace(Keeper).get_by_name("a").keep()
            ctx = Keeper.kept.pop()
            work = asyncio.sleep(0)
            with pytest.raises(RuntimeError, match=r"durable\.testing\.run_in_object"):
                ctx.wait_until(work)
            assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED  # never runs, warns of nothing

    async def test_after_the_runtime_closed_too(self) -> None:
        async with durable.Runtime() as rt:
            await rt.namespace(Keeper).get_by_name("a").keep()
        ctx = Keeper.kept.pop()
        work = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="belong to that object"):
            ctx.waitUntil(work)
        assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED


class TestStrictModeTakesABool:
    """``durable.compat.python_workers.install(strict=...)`` (and ``set_strict``) read any value for
    its truth, so ``install(strict="false")``, the text of a setting, switched strict value mode
    on (RPC then refused tuples and bytearrays). A value that is not a ``bool`` now raises
    ``TypeError`` naming it, and the mode stays as it was."""

    @pytest.mark.parametrize("value", ["false", 0, 1, None], ids=repr)
    def test_set_strict(self, value: object) -> None:
        from durable.compat import python_workers

        before = python_workers.is_strict()
        with pytest.raises(
            TypeError, match=rf"^strict mode is switched with True or False, not {type(value).__name__}"
        ):
            python_workers.set_strict(value)  # type: ignore[arg-type]
        assert python_workers.is_strict() is before

    def test_install(self) -> None:
        from durable.compat import python_workers

        was_installed = python_workers.installed()
        with pytest.raises(TypeError, match=r"not str: 'false'"):
            python_workers.install(strict="false")  # type: ignore[arg-type]
        assert python_workers.is_strict() is False
        assert python_workers.installed() is was_installed
