"""Promise pipelining: a call or a property read on the eventual result of an un-awaited call.

As in workerd (measured with miniflare 4.20260426, compatibility date 2026-04-07;
``tests/test_rpc_pipelining.py``): ``await stub.get_counter(5).inc(1)`` calls ``inc(1)`` on what
``get_counter(5)`` returns, without awaiting it first; ``await stub.get_config().name`` reads
``name`` of it. ``promise.name`` (``RpcPromise.__getattr__``, for a public name the promise does
not have itself) is a :class:`PipelinedMember`, which sends nothing by itself:
calling it makes the call now (its arguments copied now, as a call's are) and returns an
``RpcPromise``; awaiting it reads the property. Members chain: ``p.a.b``, ``p.f(1).g(2)``.

What the name reaches, once the first call's result is in (the same as workerd):

- a stub (an ``RpcTarget``'s, a function's, a Durable Object's): its member, as
  ``(await promise).name`` gives it;
- a plain ``dict`` (a JavaScript object): its key ``name``; calling it works only if its value is a
  function (which crossed as a callback stub), else ``TypeError: "name" is not a function.``
  (a call at the end of a longer path names the whole path: ``"a.b.name" is not a function.``);
- anything else (``None``, a number, a string, a list, a ``dict`` without the key): ``TypeError:
  The RPC receiver does not implement the method "name".``;
- ``dup`` is refused everywhere: ``TypeError: 'dup' is a reserved method and cannot be called
  over RPC.``

If the first call fails, every pipelined call and read on it fails with its error (the same
exception object, as two awaits of one future raise; workerd gives each an equal copy). The
pipelined call is made once the first call's result is in, so calls made on the stub meanwhile
run before it, as in workerd (which delivers ``getCounter``, then two later direct calls, then
the pipelined ones, in that order). A call on a member of the result (``p.name(...)``) is made
by a done callback of the first call's promise, added when it is pipelined (made at once if the
promise is settled), so it comes before a call the caller makes on the result it awaited after:
workerd keeps that order (``q = p.inc(1); c = await p; c.inc(10)`` runs inc1, then inc10).
Cancelling a pipelined call or read does not cancel the promise it was pipelined on.

Layer 4, below ``_stub``: the promise type is handed in by :func:`register_pipelining`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, final

from ._codec import ATOMIC_TYPES
from ._rpc_target import CallbackStub, TargetStub, call_target_member, copy_params, dispose_all

if TYPE_CHECKING:
    from ._stub import RpcPromise

__all__ = ["NOT_PIPELINED", "PipelinedCall", "PipelinedMember", "register_pipelining"]

NOT_PIPELINED = frozenset(
    {
        # What asyncio, inspect and other libraries probe a coroutine-like object for with
        # hasattr() (asyncio's repr of a task and Task.get_stack(), inspect.getcoroutinestate):
        # a promise has none of them, and a pipelined member in their place would mislead them.
        *(f"{kind}_{part}" for kind in ("cr", "gi", "ag") for part in ("await", "code", "frame", "running")),
        "cr_origin", "cr_suspended", "gi_suspended", "gi_yieldfrom", "ag_suspended",
        # A coroutine's close(): a promise has it only where asyncio calls it (3.13, see
        # RpcPromise.close); elsewhere it stays absent, not a pipelined call.
        "close",
    }
)  # fmt: skip
"""Public names that stay attribute errors on a promise instead of being pipelined."""

PipelinedCall = Coroutine[Any, Any, Any] | Exception | Callable[[Any], Any]
"""What a pipelined call does: a coroutine (run by a task), an error (fails the promise at once),
or a function of the first call's result, called once that is in (returns the call's promise)."""

_new_promise: Callable[[RpcPromise, PipelinedCall], RpcPromise]
_stub_types: tuple[type, ...] = (TargetStub, CallbackStub)
"""The values whose members a pipelined name reaches as attributes (``Stub`` joins them)."""


def register_pipelining(new_promise: Callable[[RpcPromise, PipelinedCall], RpcPromise], stub_type: type) -> None:
    """Called by ``_stub``: how to make the promise of a pipelined call (given the promise it is
    pipelined on, and what the call does: ``PipelinedCall``), and the Durable Object stub type."""
    global _new_promise, _stub_types
    _new_promise = new_promise
    _stub_types = (TargetStub, CallbackStub, stub_type)


@final
class PipelinedMember:
    """``promise.name``: call it to call ``name`` on the promise's eventual result, await it to
    read that property, or take one of its own attributes to go one step further."""

    __slots__ = ("_path", "_source")

    def __init__(self, source: RpcPromise, path: tuple[str, ...]) -> None:
        self._source = source
        self._path = path

    def __repr__(self) -> str:
        return f"<durable pipelined member {'.'.join(self._path)} of {self._source!r}>"

    def __getattr__(self, name: str) -> PipelinedMember:
        # Only for names the class lacks (the dunders that copy, pickle and hasattr() probe too).
        if name.startswith("_") or name in NOT_PIPELINED:
            raise AttributeError(f"'PipelinedMember' object has no attribute '{name}'")
        return PipelinedMember(self._source, (*self._path, name))

    def __call__(self, /, *args: Any, **kwargs: Any) -> RpcPromise:
        """Call the member on the eventual result now; await the promise returned for its result.

        The arguments are copied now (workerd: a change made after the call is not seen); one that
        cannot be copied fails the promise, as it fails a call's.
        """
        received = None
        if kwargs or any(type(arg) not in ATOMIC_TYPES for arg in args):
            try:
                args, kwargs, received = copy_params(args, kwargs)
            except Exception as exc:
                return _new_promise(self._source, exc)
        path = self._path
        if len(path) == 1:  # made by a done callback of the source (see the module's docstring)
            promise = _new_promise(self._source, functools.partial(_call_member, path, args, kwargs))
        else:
            promise = _new_promise(self._source, _call(self._source, path, args, kwargs))
        if received is not None:  # disposed when the call ends, as a call's (_rpc_target)
            dispose_all(received, promise)
        return promise

    def __await__(self) -> Generator[Any, None, Any]:
        return _read_path(self._source, self._path).__await__()


async def _read_path(source: RpcPromise, path: tuple[str, ...]) -> Any:
    if not source.done() and source.get_loop() is asyncio.get_running_loop():
        # Waited for without awaiting it: a task awaiting a future cancels it when cancelled,
        # and cancelling a pipelined read (asyncio.wait_for) must not cancel the first call.
        await asyncio.wait((source,))
    value = await source
    previous = None
    for name in path:
        value = await _read(value, name, previous)
        previous = name
    return value


async def _call(source: RpcPromise, path: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = _call_member(path, args, kwargs, await _read_path(source, path[:-1]))
    return await result if inspect.isawaitable(result) else result


def _call_member(path: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any], value: Any) -> Any:
    """Call ``path[-1]`` of ``value`` (a result, not awaited, reached by the rest of ``path``):
    its promise, or workerd's TypeError. A member that is not a function is named by the whole
    path from the first call's result, as workerd names it (measured with miniflare 4.20260426,
    compatibility date 2026-04-20: ``getConfig().target.size(1)``, ``size`` a getter of an
    ``RpcTarget``, raises ``"target.size" is not a function.``; ``.nested.inner.x(1)`` on a
    plain object ``"nested.inner.x" ...``; ``getTarget().size(1)`` ``"size" ...``; found by
    ``run_rpc.py --seed 9975 --loop uvloop``)."""
    name = path[-1]
    method = _member(value, name, path[-2] if len(path) > 1 else None)
    if type(value) is TargetStub:  # named where the target lives, its error crossing back from there
        return call_target_member(value, name, ".".join(path), args, kwargs)
    if not callable(method):
        raise _remote(TypeError(f'"{".".join(path)}" is not a function.'))
    return method(*args, **kwargs)


async def _read(value: Any, name: str, previous: str | None) -> Any:
    member = _member(value, name, previous)
    if isinstance(value, _stub_types) and inspect.isawaitable(member):
        return await member  # a stub's property: read where it lives
    return member


def _member(value: Any, name: str, previous: str | None = None) -> Any:
    """What ``name`` reaches on ``value``, an RPC result (not awaited), or workerd's TypeError.

    ``previous``: the name before ``name`` in the same path (``p.a.b``, ``p.a.b()``), which
    workerd's error names instead when ``value``, what it reached, has no members to walk (a
    string, a number, ``None``, a list): ``getConfig().name.x()`` raises ``... the method
    "name".`` (measured with miniflare 4.20260426, differential seed 9701); on a ``dict`` without
    the key, or a stub without the member, the error names ``name``; this comes before ``dup``'s
    refusal (``getConfig().name.dup()`` names "name", seed 9702)."""
    walkable = isinstance(value, _stub_types) or type(value) is dict
    if previous is not None and not walkable:
        raise _remote(TypeError(f'The RPC receiver does not implement the method "{previous}".'))
    if name == "dup":
        raise _remote(TypeError("'dup' is a reserved method and cannot be called over RPC."))
    if isinstance(value, _stub_types):
        return getattr(value, name)
    if type(value) is dict and name in value:
        return value[name]
    raise _remote(TypeError(f'The RPC receiver does not implement the method "{name}".'))


def _remote(exc: TypeError) -> TypeError:
    """``exc`` marked as raised on the side of the result: workerd checks a pipelined name where
    the first call's result lives, so its TypeErrors arrive with ``remote`` true (measured with
    miniflare 4.20260426: "does not implement", "is not a function" and ``dup``, seed 9701)."""
    exc.remote = True  # type: ignore[attr-defined]
    return exc
