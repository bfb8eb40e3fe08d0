"""``workers.DurableObject``, ``workers.WorkerEntrypoint`` and ``@handler``, over `durable`'s classes.

As the SDK does (``__init_subclass__`` rewriting each subclass), the constructor's ``ctx`` and
``env`` are wrapped (:class:`ContextAdapter`, :class:`EnvAdapter`), and the handlers workerd calls
*relaxed* (``fetch``, ``alarm``, the WebSocket handlers) drop the arguments the function does
not declare; ``fetch`` receives a :class:`workers.Request`. Legacy handler names (``on_fetch``,
``on_alarm``...) serve as the handler when the modern name is absent.

Every ``DurableObject`` here has an ``alarm`` handler (a no-op unless the class defines one), as
every Python Workers class has on Cloudflare, so ``setAlarm`` is accepted on any of them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import durable
from durable._object import RESERVED_METHODS

from ._alarminfo import alarm_info
from ._bindings import ContextAdapter, EnvAdapter
from ._convert import python_from_rpc, relaxed, to_durable
from ._globals import patched_env, running_env, tracks_request
from ._http import Request
from ._sdksocket import sdk_socket
from .pyodide.ffi import ArrayBuffer

__all__ = [
    "LIVE_ENV",
    "DurableObject",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "current_env",
    "handler",
    "legacy_worker",
    "set_current_env",
]

F = TypeVar("F", bound=Callable[..., Any])

# Handlers workerd calls relaxed (pyodide's callRelaxed), in both spellings.
_RELAXED = (
    "alarm",
    "webSocketMessage",
    "webSocketClose",
    "webSocketError",
    "web_socket_message",
    "web_socket_close",
    "web_socket_error",
)

# Handlers (and their legacy ``on_`` names): called by the runtime with raw arguments, never over RPC.
_NOT_RPC = frozenset({"fetch", *RESERVED_METHODS} | {f"on_{name}" for name in ("fetch", *RESERVED_METHODS)})

_current_env: Any = None


def set_current_env(env: Any) -> None:
    """Make ``env`` what ``workers.env`` returns (the served project's runtime env)."""
    global _current_env
    _current_env = env


def current_env() -> EnvAdapter:
    """The env of the project being served, as ``workers.env`` gives it.

    Inside a request or a Durable Object call, the env of the runtime running it
    (:func:`~._globals.running_env`: two projects served in one process each see their own);
    elsewhere (a module's top level, a test), the env of the runtime bound last.

    Raises:
        RuntimeError: no project has been loaded onto a runtime yet.
    """
    base = running_env()
    if base is None:
        base = _current_env
    elif isinstance(base, EnvAdapter):
        base = base.js_object
    patched = patched_env(base)
    if patched is not None:
        return EnvAdapter(patched)
    raise RuntimeError(
        "workers.env is not bound yet: serve the project with `durable serve`, "
        "durable.compat.python_workers.asgi_app(PROJECT, runtime) or "
        "load_project(PROJECT).bind(runtime) first"
    )


class LiveEnv:
    """``workers.env`` (and ``cloudflare:workers``' ``env``): the served project's env, looked up at each use.

    As on Cloudflare, where ``from workers import env`` at a module's top level works and the
    bindings are read when used, the module-level name can be taken before a project is bound
    (``from workers import env``, ``from workers import *``); reading a binding through it then
    needs one (:func:`current_env` raises ``RuntimeError`` saying how to bind it).
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(current_env(), name)

    def __getitem__(self, name: str) -> Any:
        return current_env()[name]

    def __contains__(self, name: object) -> bool:
        return name in current_env()

    def __iter__(self) -> Iterator[str]:
        return iter(current_env())

    def __dir__(self) -> list[str]:
        return dir(current_env())

    @property
    def js_object(self) -> Any:
        """The underlying :class:`durable.Env` of the served project."""
        return current_env().js_object

    def __repr__(self) -> str:
        return "<workers env (the served project's)>"


LIVE_ENV = LiveEnv()


def _socket_first(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The WebSocket handlers' ``ws`` as an :class:`SdkWebSocket` (attachments read as the SDK's)."""
    if args:
        sdk_socket(args[0])
    return args


def _message_buffer(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``webSocketMessage(ws, message)``: a binary message as Pyodide hands over the JavaScript
    ``ArrayBuffer`` workerd passes (the handler gets raw JavaScript arguments): an object with
    ``to_bytes()``, ``to_py()`` (a ``memoryview``) and ``byteLength``; a text message stays a ``str``."""
    args = _socket_first(args)
    if len(args) > 1 and isinstance(args[1], (bytes, bytearray, memoryview)) and not isinstance(args[1], ArrayBuffer):
        return (args[0], ArrayBuffer(bytes(args[1])), *args[2:])
    return args


def _request_first(args: tuple[Any, ...]) -> tuple[Any, ...]:
    if args and isinstance(args[0], durable.Request):
        return (Request(args[0]), *args[1:])
    return args


def _rpc_arguments(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the RPC method ``func`` so that arguments arriving over RPC are converted as the SDK's
    ``python_from_rpc`` converts them (dicts become :class:`JsDict`, at any depth), and its result
    as the SDK's ``python_to_rpc`` sends it (a ``memoryview`` as binary data).

    workerd converts the arguments of calls that come over RPC only (``introspection.py``); a call
    from the object's own code (``await self.add(item)``) passes its arguments untouched, so the
    wrapper converts only when it is called by `durable`'s runtime.
    """

    @functools.wraps(func)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is None or not caller.f_globals.get("__name__", "").startswith("durable._"):
            return func(self, *args, **kwargs)
        args = tuple(map(python_from_rpc, args))
        if kwargs:
            kwargs = {key: python_from_rpc(value) for key, value in kwargs.items()}
        result = func(self, *args, **kwargs)
        if inspect.iscoroutine(result):
            return _sent(result)
        return to_durable(result)

    method.__durable_rpc_wrapped__ = True  # type: ignore[attr-defined]
    return method


async def _sent(result: Awaitable[Any]) -> Any:
    return to_durable(await result)


def _wrap_rpc_methods(cls: type) -> None:
    """Wrap the public plain functions RPC may reach on ``cls`` with :func:`_rpc_arguments`: those
    defined on ``cls`` or on a mixin (a base that is no Durable Object class, whose own hook would
    have wrapped them), as ``durable._object.resolve_rpc`` finds them."""
    # Every base but the SDK's and durable's own DurableObject (and object): a mixin may come
    # before or after them in the method resolution order.
    bases = [klass for klass in cls.__mro__ if klass not in (DurableObject, durable.DurableObject, object)]
    names = {name for klass in bases for name in vars(klass)}
    for name in names:
        if name.startswith("_") or name in _NOT_RPC:
            continue
        owner = next(klass for klass in bases if name in vars(klass))
        func = vars(owner)[name]
        if owner is not cls and issubclass(owner, durable.DurableObject):
            continue  # that Durable Object class's own hook wrapped it
        if inspect.isfunction(func) and not getattr(func, "__durable_rpc_wrapped__", False):
            setattr(cls, name, _rpc_arguments(func))


def _wrap_init(cls: type, context: bool) -> None:
    init = cls.__dict__.get("__init__") or _mixin_init(cls)
    if init is None or getattr(init, "__durable_wrapped__", False):
        return

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            args = (ContextAdapter(args[0]) if context else args[0], *args[1:])
        if len(args) > 1:
            args = (args[0], EnvAdapter(args[1]), *args[2:])
        init(self, *args, **kwargs)

    __init__.__durable_wrapped__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


def _mixin_init(cls: type) -> Any:
    """The ``__init__`` ``cls`` inherits from a mixin listed before the Durable Object or
    entrypoint class (django-cf's ``class DjangoDO(DjangoCFDurableObject, DurableObject)``), or
    ``None``.

    The SDK wraps only a class's own ``__init__``, so there such a mixin gets workerd's
    JavaScript ``ctx`` and ``env`` as Pyodide proxies them; `durable` wraps it as any other, since
    its adapters read as those proxies do (``cursor.raw().toArray().to_py()``, ``row.name``,
    ``rowsRead``) where `durable`'s own objects would not."""
    for base in cls.__mro__[1:]:
        init = base.__dict__.get("__init__")
        if init is not None:
            if base is object or issubclass(base, (durable.DurableObject, durable.WorkerEntrypoint)):
                return None
            return init
    return None


def _wrap_handlers(cls: type, names: tuple[str, ...]) -> None:
    for name in names:
        func = cls.__dict__.get(name)
        if func is None:
            # Defined on a mixin (a base that is no Durable Object class, so never wrapped by this
            # hook): workerd finds handlers along the whole class hierarchy, and calls them so.
            for base in cls.__mro__[1:]:
                if name in base.__dict__:
                    if not issubclass(base, durable.DurableObject):
                        func = base.__dict__[name]
                    break
        legacy = cls.__dict__.get(f"on_{name}")
        inherited = getattr(cls, name, None)
        if (
            func is None
            and legacy is not None
            and (inherited is None or getattr(inherited, "__durable_default__", False))
        ):
            func = legacy
        if func is None or not inspect.isfunction(func) or getattr(func, "__durable_relaxed__", False):
            continue
        setattr(cls, name, relaxed(func, _CONVERT_ARGUMENTS.get(name)))


_CONVERT_ARGUMENTS: dict[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]] = {
    "fetch": _request_first,
    "alarm": alarm_info,
    "webSocketMessage": _message_buffer,
    "web_socket_message": _message_buffer,
    "webSocketClose": _socket_first,
    "web_socket_close": _socket_first,
    "webSocketError": _socket_first,
    "web_socket_error": _socket_first,
}


class DurableObject(durable.DurableObject):
    """Base class of a Python Workers Durable Object (``from workers import DurableObject``).

    Example::

        class List(DurableObject):
            async def add(self, item):
                items = await self.ctx.storage.get("items") or []
                await self.ctx.storage.put("items", [*items, item])
    """

    ctx: Any
    env: Any

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ContextAdapter(ctx), EnvAdapter(env))  # type: ignore[arg-type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_init(cls, context=True)
        _wrap_handlers(cls, ("fetch", *_RELAXED))
        _wrap_rpc_methods(cls)

    if not TYPE_CHECKING:  # hidden from type checkers: subclasses define alarm with any parameters

        def alarm(self, *args):
            """The default alarm handler: does nothing (every Python Workers class has one)."""

        alarm.__durable_default__ = True


class WorkerEntrypoint(durable.WorkerEntrypoint):
    """Base class of a Python Workers entrypoint; the module's ``Default`` class serves HTTP.

    Example::

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("Hello")
    """

    ctx: Any
    env: Any

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, EnvAdapter(env))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_init(cls, context=False)
        _wrap_handlers(cls, ("fetch",))
        fetch = cls.__dict__.get("fetch")
        if inspect.isfunction(fetch) and not getattr(fetch, "__durable_tracked__", False):
            tracked = tracks_request(fetch)
            tracked.__durable_tracked__ = True  # type: ignore[attr-defined]
            cls.fetch = tracked  # type: ignore[method-assign]


class WorkflowEntrypoint:
    """Not emulated: Workflows are not part of `durable`. Subclassing works; running raises."""

    def __init__(self, ctx: Any, env: Any) -> None:
        raise NotImplementedError(
            "Workflows (WorkflowEntrypoint) are not emulated by durable: run the Workflow with "
            "`pywrangler dev`, and test what its steps do by calling your own functions directly"
        )


def handler(func: F) -> F:
    """The SDK's ``@handler`` for legacy module-level handlers such as ``on_fetch(request, env, ctx)``.

    The request becomes a :class:`workers.Request` and ``env`` an :class:`EnvAdapter`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = _request_first(args)
        if len(args) > 1:
            args = (args[0], EnvAdapter(args[1]), *args[2:])
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def legacy_worker(on_fetch: Callable[..., Any]) -> type[WorkerEntrypoint]:
    """A Worker class whose ``fetch`` calls a module-level ``on_fetch(request, env, ctx)``, relaxed."""

    class LegacyWorker(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Any:
            args = fit_args(on_fetch, (request, self.env, self.ctx))
            result = on_fetch(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

    LegacyWorker.__name__ = LegacyWorker.__qualname__ = "on_fetch"
    return LegacyWorker


def fit_args(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The first of ``args`` that ``func`` accepts (all for ``*args``), as workerd's relaxed calls pass them."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return args
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return args
    count = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    return args[:count]
