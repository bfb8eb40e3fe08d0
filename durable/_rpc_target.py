"""Functions and ``RpcTarget`` instances over RPC: the stubs their receiver calls back through.

As in workerd (measured with miniflare 4, 2026-04-07; ``tests/test_rpc_targets.py``), a function
sent over RPC, as an argument or a result, at any depth, arrives as a *callback stub*: calling it
runs the function where the sender lives and returns an awaitable of its (copied) result. An
instance of a class that extends :class:`RpcTarget` arrives as a *target stub*: ``await
t.method(...)`` calls a method on the sender's instance, ``await t.prop`` reads a property.

Where the function runs. Each stub remembers its home, taken when the value is copied: the object
whose code sent it (its host and generation), or none (plain code: a test body, a Worker). A call
on a stub whose home is an object is an event of that object, delivered through its input gate
like an incoming RPC call, and its result leaves through its output gate; once that generation is
reset, calls fail with the reset error. A call on a stub whose home is plain code runs on the
runtime's loop in a context of its own. Arguments and results are copied both ways (structured
clone), so functions in them become stubs again, homed where they were sent from. The caller's
gates apply as for a call to an object: its earlier writes commit first, and the result waits at
its input gate.

Lifetime. Stubs received as arguments of a call are disposed when that call ends (workerd: a
call on them afterwards fails with ``Error: RPC stub used after being disposed.``, from a later
request or an alarm alike); stubs received in a result stay usable.

Layer 4: beside ``_stub``, which copies the arguments of its calls with :func:`copy_params`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, NoReturn, final

from . import _context
from ._codec import ATOMIC_TYPES, Transfer, clone, register_transfer
from ._exceptions import DurableError, copy_handler_error

if TYPE_CHECKING:
    from ._host import ObjectHost

__all__ = [
    "CallbackStub",
    "RpcTarget",
    "TargetStub",
    "call_target_member",
    "copy_params",
    "dispose_all",
    "register_promise_type",
    "register_runtime_forwarding",
]

running = _context.running

DISPOSED = "RPC stub used after being disposed."
"""workerd's message (miniflare 4, 2026-04-07) for a call on a stub whose call ended."""

HOME_GONE = "The execution context which hosts this callback is no longer running."
"""workerd's message for a call on a function or RpcTarget whose home instance is gone."""

TARGET_RESERVED = frozenset({"dup", "constructor"})
"""The names an RpcTarget cannot be called by over RPC (Cloudflare's docs: only these two)."""


class RpcTarget:
    """Extend this class to send instances over RPC by reference (Cloudflare's ``RpcTarget``).

    The receiver gets a stub: ``await t.method(...)`` runs the method on this instance, where it
    was sent from; ``await t.prop`` reads a property (a ``property`` or a method-less class
    attribute). Instance attributes are not reachable, nor names starting with ``_``, nor ``dup``
    and ``constructor`` (workerd: ``The RPC receiver does not implement the method "<name>".``).
    """

    __slots__ = ()


def _home() -> tuple[ObjectHost | None, int]:
    now = running.get()
    return (None, 0) if now is None else (now.host, now.gen)


_received = threading.local()
"""``_received.stubs``: while :func:`copy_params` copies a call's arguments on this thread, the
stubs made for them (disposed with the call). Per thread: stubs another thread makes meanwhile (a
call forwarded from its loop) are not these arguments."""


def copy_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, list[_RemoteStub] | None]:
    """Copy a call's arguments as one value; also return the stubs made for functions and
    targets in them (None if none), which :func:`dispose_all` disposes when the call ends."""
    made: list[_RemoteStub] = []
    outer = getattr(_received, "stubs", None)
    _received.stubs = made
    try:
        args, kwargs = clone((args, kwargs))  # type: ignore[misc]
    finally:
        _received.stubs = outer
    return args, kwargs, made or None


def dispose_all(stubs: list[_RemoteStub], call: asyncio.Future[Any]) -> None:
    """Dispose ``stubs`` (received as arguments of ``call``) when ``call`` ends: from then on
    (not only from the done-callback's turn on: an eager task in between sees them disposed),
    calls on them fail, and they let go of what they reach."""
    for stub in stubs:
        stub._until = call

    def dispose(_: object) -> None:
        for stub in stubs:
            stub._disposed = True
            stub._value = stub._home_host = stub._until = None  # a receiver that keeps it keeps nothing of the sender

    call.add_done_callback(dispose)


class _RemoteStub:
    """What callback and target stubs share: the value they reach, its home, and disposal."""

    __slots__ = ("_disposed", "_home_gen", "_home_host", "_until", "_value")

    def __init__(self, value: Any, home: ObjectHost | None, gen: int) -> None:
        self._value = value
        self._home_host = home
        self._home_gen = gen
        self._disposed = False
        self._until: asyncio.Future[Any] | None = None  # the call this stub is an argument of
        received = getattr(_received, "stubs", None)
        if received is not None:
            received.append(self)

    def _start_call(self, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call ``call(*args, **kwargs)`` at home; the awaitable of its copied result."""
        received = None
        coro: Coroutine[Any, Any, Any] | None = None
        if args or kwargs:
            if kwargs or any(type(arg) not in ATOMIC_TYPES for arg in args):
                try:
                    args, kwargs, received = copy_params(args, kwargs)
                except Exception as exc:  # fails the call's promise, as workerd rejects it (_stub._refused)
                    coro = _raise(exc)
        if coro is None:
            coro = _call_home(self, call, args, kwargs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return coro  # no loop runs: the call is made when awaited
        outcome = _new_outcome(loop)  # (an RpcPromise: calls and reads pipeline on it, see _pipeline)
        task = loop.create_task(_settle(coro, outcome))
        _calls.add(task)  # (a call nobody awaits still runs to its end)
        task.add_done_callback(_calls.discard)
        outcome.add_done_callback(_retrieve)  # an un-awaited call's error is dropped, as on Cloudflare
        if received is not None:
            dispose_all(received, outcome)
        return outcome


_calls: set[asyncio.Task[None]] = set()
"""The tasks of calls on callback and target stubs still running."""


async def _settle(call: Coroutine[Any, Any, Any], outcome: asyncio.Future[Any]) -> None:
    """Await ``call`` and settle ``outcome`` with its result or exception. A ``KeyboardInterrupt``
    or ``SystemExit`` (raised by the function) reaches the caller, as from a stub's call: raised
    by the task, asyncio would re-raise it out of the loop, stopping the runtime."""
    try:
        value = await call
    except asyncio.CancelledError:
        outcome.cancel()
        raise
    except BaseException as exc:
        if not outcome.done():
            outcome.set_exception(exc)
    else:
        if not outcome.done():
            outcome.set_result(value)


async def _raise(exc: Exception) -> NoReturn:
    raise exc


def _is_disposed(stub: _RemoteStub) -> bool:
    return stub._disposed or (stub._until is not None and stub._until.done())


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _call_home(stub: _RemoteStub, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if _is_disposed(stub):
        raise DurableError(DISPOSED)
    now = running.get()
    caller = None if now is None else now.host
    if caller is not None:
        held = caller.before_outgoing()
        if held is not None:
            await held  # the caller's earlier writes are durable first, as for a call to an object
    try:
        home = stub._home_host
        if home is None:
            loop = asyncio.get_running_loop()
            result = await loop.create_task(_run_plain(call, args, kwargs), context=contextvars.Context())
            if type(result) is _Raised:
                raise result.exc
            return result
        if asyncio.get_running_loop() is home.runtime.loop or _on_runtime_loop is None:
            return await _call_object(stub, home, call, args, kwargs)
        # Called on another thread's loop (a BlockingRuntime's caller, asyncio.run() in a worker
        # thread), the event is started on the runtime's loop, where the object's code runs.
        return await _on_runtime_loop(home.runtime, lambda: _call_object(stub, home, call, args, kwargs))
    finally:
        if caller is not None and caller.gate.must_wait():
            await caller.gate.wait()  # the result is an event for the caller: it waits at its gate


async def _call_object(
    stub: _RemoteStub, home: ObjectHost, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if home.gen != stub._home_gen:
        # The instance that sent it was reset or evicted: workerd (miniflare 4, 2026-04-07, a
        # function and an RpcTarget returned by an object that then called ctx.abort()) raises
        # this Error, without remote or durableObjectReset, not the reset error.
        raise DurableError(HOME_GONE)
    fut = home.invoke("run", _InObject(call, args, kwargs), (), {})
    home.output.flush_for(asyncio.current_task())
    return await fut


_on_runtime_loop: Callable[[Any, Callable[[], Awaitable[Any]]], Awaitable[Any]] | None = None
"""``_stub.on_runtime_loop``, which ``_stub`` registers (it imports this module, not the reverse)."""


def _create_future(loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    return loop.create_future()


_new_outcome: Callable[[asyncio.AbstractEventLoop], asyncio.Future[Any]] = _create_future
"""Makes the promise of a call on a callback or target stub: ``_stub`` registers one that makes an
``RpcPromise`` (``register_promise_type``), as this module may not import it."""


def register_promise_type(new_outcome: Callable[[asyncio.AbstractEventLoop], asyncio.Future[Any]]) -> None:
    """Called by ``_stub``: how to make the promise of a call on a callback or target stub."""
    global _new_outcome
    _new_outcome = new_outcome


def register_runtime_forwarding(on_runtime_loop: Callable[[Any, Callable[[], Awaitable[Any]]], Awaitable[Any]]) -> None:
    """Called by ``_stub``: how a call on a stub homed in an object reaches the runtime's loop."""
    global _on_runtime_loop
    _on_runtime_loop = on_runtime_loop


async def _run(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = call(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result if type(result) in ATOMIC_TYPES else clone(result)  # copied at home: functions get that home


async def _run_plain(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return await _run(call, args, kwargs)
    except Exception as exc:
        raise copy_handler_error(exc) from None  # crosses back as an object's error does
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Raised(exc)  # kept from the task (see _settle), raised in the caller


@final
class _Raised:
    """A ``KeyboardInterrupt`` or ``SystemExit`` a plain function raised, carried out of its task."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


@final
class _InObject:
    """The ``run`` event of a call on a stub whose home is an object: ``name(instance, state)``."""

    __slots__ = ("args", "call", "kwargs")

    def __init__(self, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.call, self.args, self.kwargs = call, args, kwargs

    def __call__(self, instance: object, state: object) -> Coroutine[Any, Any, Any]:
        return _run(self.call, self.args, self.kwargs)


@final
class CallbackStub(_RemoteStub):
    """What the receiver of a function gets: call it (``await cb(...)``) to run the function at its home."""

    __slots__ = ()

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._start_call(self._value, args, kwargs)

    def __getattr__(self, name: str) -> _NoMember:
        # Only for names the class lacks: calling the stub never comes here.
        if name.startswith("_"):
            raise AttributeError(name)
        return _NoMember(self, name)

    def __repr__(self) -> str:
        if _is_disposed(self):
            return "<durable callback stub (disposed)>"
        return f"<durable callback stub of {getattr(self._value, '__qualname__', type(self._value).__name__)}>"


@final
class TargetStub(_RemoteStub):
    """What the receiver of an :class:`RpcTarget` gets: ``await t.method(...)``, ``await t.prop``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> _TargetMember:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _TargetMember(self, (name,))

    def __repr__(self) -> str:
        if _is_disposed(self):
            return "<durable RpcTarget stub (disposed)>"
        return f"<durable RpcTarget stub of {type(self._value).__qualname__}>"


@final
class _TargetMember:
    """``t.name`` on a target stub: call it to call the method, or await it to read the property.

    Members chain (``t.child.size``, ``t.config.f(1)``): the path is walked where the target lives,
    as in workerd (measured with miniflare 4.20260426, compatibility date 2026-04-20; a held
    ``RpcTarget`` stub ``t``): through an ``RpcTarget``'s members and a dict's keys; a name missing
    on the way, or walked on from a function, raises ``The RPC receiver does not implement the
    method "name".``, one walked on from another value (a number, ``None``, a list) names the
    member before it; a member called at the end that is not a function raises ``"child.size" is
    not a function.``, naming the path."""

    __slots__ = ("_path", "_target_stub")

    def __init__(self, stub: TargetStub, path: tuple[str, ...]) -> None:
        self._target_stub = stub
        self._path = path

    def __getattr__(self, name: str) -> _TargetMember:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _TargetMember(self._target_stub, (*self._path, name))

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        path = self._path
        return call_target_member(self._target_stub, path[-1], ".".join(path), args, kwargs, path[:-1])

    def __await__(self) -> Generator[Any, None, Any]:
        awaitable = self._target_stub._start_call(
            functools.partial(_read_member, self._target_stub._value, self._path), (), {}
        )
        return awaitable.__await__()  # type: ignore[no-any-return]


@final
class _NoMember:
    """``cb.name`` on a callback stub. A function has no members over RPC: as in workerd (measured
    with miniflare 4, 2026-04-07: ``await cb.nope()``, ``await cb.size`` on a function's stub),
    calling or awaiting it raises ``TypeError: The RPC receiver does not implement the method
    "name".`` from the function's side (``remote``; arguments are copied first)."""

    __slots__ = ("_callback_stub", "_name")

    def __init__(self, stub: CallbackStub, name: str) -> None:
        self._callback_stub = stub
        self._name = name

    def __getattr__(self, name: str) -> _NoMember:
        # ``cb.a.b()``: workerd names the first member, the one the function lacks. (As on the
        # stub: names starting with ``_`` are Python's protocols.)
        if name.startswith("_"):
            raise AttributeError(name)
        return self

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._callback_stub._start_call(functools.partial(_no_member, self._name), args, kwargs)

    def __await__(self) -> Generator[Any, None, Any]:
        awaitable = self._callback_stub._start_call(functools.partial(_no_member, self._name), (), {})
        return awaitable.__await__()  # type: ignore[no-any-return]


def call_target_member(
    stub: TargetStub,
    name: str,
    label: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    walk: tuple[str, ...] = (),
) -> Any:
    """Call the method ``name`` of what the target ``stub`` reaches by the names ``walk`` (``await
    t.name(*args, **kwargs)``, ``await t.a.b.name(...)``); ``label``, the path that reached it,
    names it in workerd's ``"<label>" is not a function.`` (``_pipeline``: a call at the end of a
    longer path, as ``p.target.size()``)."""
    return stub._start_call(functools.partial(_call_member, stub._value, walk, name, label), args, kwargs)


def _no_member(name: str, /, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f'The RPC receiver does not implement the method "{name}".')


def _resolve(target: RpcTarget, name: str) -> Any:
    """The class attribute of ``target`` that RPC reaches as ``name``, or workerd's TypeError."""
    if name not in TARGET_RESERVED and not name.startswith("_"):
        for klass in type(target).__mro__:
            if klass is RpcTarget or klass is object:
                break
            if name in klass.__dict__:
                return klass.__dict__[name]
    raise TypeError(f'The RPC receiver does not implement the method "{name}".')


def _call_member(target: RpcTarget, walk: tuple[str, ...], name: str, label: str, /, *args: Any, **kwargs: Any) -> Any:
    # (Positional-only: the method's own keyword arguments may be called ``name`` or ``target``.)
    holder = target if not walk else _walk(target, walk)
    _, value = _step(holder, name, walk[-1] if walk else None)
    if not callable(value):
        raise TypeError(f'"{label}" is not a function.')
    return value(*args, **kwargs)


def _read_member(target: RpcTarget, path: tuple[str, ...]) -> Any:
    return _walk(target, path)


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    """What ``path`` reaches from ``value`` (an ``RpcTarget`` at home), read as a property."""
    previous = None
    for name in path:
        attr, value = _step(value, name, previous)
        if inspect.isfunction(attr):
            raise TypeError(f'"{name}" is a method: call it, as `await stub.{name}(...)`.')
        previous = name
    return value


def _step(value: Any, name: str, previous: str | None) -> tuple[Any, Any]:
    """The class attribute (or None) and the value that ``name`` reaches on ``value``, a member
    reached by ``previous`` (None: the target itself), or workerd's TypeError."""
    if isinstance(value, RpcTarget):
        attr = _resolve(value, name)
        get = getattr(type(attr), "__get__", None)
        return attr, (get(attr, value, type(value)) if get is not None else attr)
    if type(value) is dict and name in value:
        return None, value[name]
    if type(value) is dict or callable(value) or previous is None:
        raise TypeError(f'The RPC receiver does not implement the method "{name}".')
    raise TypeError(f'The RPC receiver does not implement the method "{previous}".')


def _callback_for_rpc(fn: Callable[..., Any]) -> CallbackStub:
    return CallbackStub(fn, *_home())


def _target_for_rpc(target: RpcTarget) -> TargetStub:
    return TargetStub(target, *_home())


def _forwarded(stub: _RemoteStub) -> _RemoteStub:
    """A stub sent on: the receiver's own stub to the same value and home. A disposed one is sent
    too, and stays disposed (workerd, measured with miniflare 4, 2026-04-07: returning or passing
    on a kept callback works; calling what arrives fails with ``RPC stub used after being disposed.``)."""
    if _is_disposed(stub):
        new = type(stub)(None, None, 0)
        new._disposed = True
        return new
    return type(stub)(stub._value, stub._home_host, stub._home_gen)


_NOT_STORED_FN = (
    "A function can be an RPC argument or result (the receiver gets a callback stub) but not a stored value"
)
_NOT_STORED_TARGET = "An RpcTarget can be an RPC argument or result (the receiver gets a stub) but not a stored value"

for _type in (
    types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.BuiltinMethodType,
    types.MethodWrapperType, functools.partial,
):  # fmt: skip
    register_transfer(_type, Transfer(_callback_for_rpc, _NOT_STORED_FN))
register_transfer(RpcTarget, Transfer(_target_for_rpc, _NOT_STORED_TARGET))
register_transfer(CallbackStub, Transfer(_forwarded, _NOT_STORED_FN))
register_transfer(TargetStub, Transfer(_forwarded, _NOT_STORED_TARGET))
