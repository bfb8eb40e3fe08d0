"""The base class of Durable Objects, and what their handlers receive.

A Durable Object class subclasses :class:`DurableObject`; its constructor takes ``(ctx, env)``. Any
public method is reachable over RPC through a stub; ``fetch`` and ``alarm`` are handlers with
special meaning (see ``docs/guide.md`` and ``docs/api.md``). :class:`Env` (the bindings ``env``
holds) lives here too, at the bottom layer, so that what an object receives needs nothing of the runtime.
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any, cast, final

from ._aliases import camel_aliases
from ._exceptions import NoFetchHandlerError

# Imported here, not in check_response: an import statement run per fetch cost 0.8 us (timeit).
from ._http import check_response as check_response
from ._util import Handle, positional_arity

if TYPE_CHECKING:
    from ._state import State

__all__ = [
    "RESERVED_METHODS",
    "AlarmInfo",
    "DurableObject",
    "Env",
    "bind",
    "call_fetch",
    "call_method",
    "check_response",
    "read_property",
    "resolve_rpc",
    "rpc_table",
]

RESERVED_METHODS = frozenset(
    {
        "alarm",
        "webSocketMessage",
        "webSocketClose",
        "webSocketError",
        "web_socket_message",
        "web_socket_close",
        "web_socket_error",
        "dup",
        "constructor",
    }
)
"""Handler names that can never be called over RPC (Cloudflare's reserved methods)."""

RpcEntry = tuple[Any, object, "bool | None"]
"""What :func:`resolve_rpc` found for one name: the attribute RPC reaches, what ``getattr(class,
name)`` gave then (to see a later change to the class), and for a plain function whether it is
``async def`` (None for any other attribute)."""

_NOT_RPC = frozenset({"fetch", "connect"})
"""Names a stub keeps for itself (``stub.fetch``; ``stub.connect``, a socket on Cloudflare)."""

_rpc_cache: weakref.WeakKeyDictionary[type, dict[str, RpcEntry]] = weakref.WeakKeyDictionary()
"""Per class, by name: what :func:`resolve_rpc` found. Weak, so that a class dropped by its
module (one made in a test) is not kept alive by having been called."""


def rpc_table(cls: type) -> dict[str, RpcEntry]:
    """The names :func:`resolve_rpc` has resolved on ``cls`` so far (the host's fast path reads it).

    The dict stays the same for as long as ``cls`` lives; it is filled as names are resolved.
    """
    table = _rpc_cache.get(cls)
    if table is None:
        table = _rpc_cache[cls] = {}
    return table


def resolve_rpc(cls: type, name: str) -> object:
    """The class attribute ``name`` that RPC may reach on ``cls``, or raise Cloudflare's TypeError.

    Reachable: public names defined on the class or its other bases than :class:`DurableObject`
    (mixins, listed before or after it: the method resolution order decides). Not:
    names starting with ``_``, instance attributes, ``fetch`` (only through ``stub.fetch``),
    ``connect`` (on Cloudflare ``stub.connect()`` opens a socket), a property with a setter
    alone, and the reserved handler names (:data:`RESERVED_METHODS`).

    Raises:
        TypeError: ``'<name>' is a reserved method and cannot be called over RPC.``, or
            ``The RPC receiver does not implement the method "<name>".``
    """
    table = rpc_table(cls)
    found = table.get(name)
    if found is not None and getattr(cls, name, None) is found[1]:
        return found[0]  # unless the class was changed since (a test's monkeypatch.setattr)
    if name in RESERVED_METHODS:
        raise TypeError(f"'{name}' is a reserved method and cannot be called over RPC.")
    if name == "connect" and callable(getattr(cls, name, None)):
        # workerd (miniflare 4, 2026-04-07): `stub.connect(...)` is the stub's own TCP socket API
        # ("Specified address is missing port."), never a call of the object's `connect` method.
        raise TypeError(
            'The RPC receiver does not implement the method "connect". (On Cloudflare, '
            "stub.connect() opens a socket to the object and never calls its connect() method: "
            "give the method another name.)"
        )
    if not name.startswith("_") and name not in _NOT_RPC:
        for klass in cls.__mro__:
            if klass is DurableObject:
                continue  # (a mixin listed after it, ``class X(DurableObject, Mixin)``, comes later)
            if klass is object:
                break
            if name in klass.__dict__:
                attr = klass.__dict__[name]
                if type(attr) is property and attr.fget is None:
                    break  # a setter alone: workerd (miniflare 4) does not implement the method
                is_async = inspect.iscoroutinefunction(attr) if type(attr) is FunctionType else None
                table[name] = (attr, getattr(cls, name, None), is_async)
                return attr
    raise TypeError(f'The RPC receiver does not implement the method "{name}".')


def call_method(cls: type, instance: object, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the RPC method ``name`` of ``instance`` (of class ``cls``); returns what it returns.

    Raises ``TypeError`` as :func:`resolve_rpc` does, or ``"<name>" is not a function.``
    """
    attr = resolve_rpc(cls, name)  # raises for a name RPC may not reach
    # Class attributes only, as Cloudflare reaches prototype methods only.
    get = getattr(type(attr), "__get__", None)
    value = get(attr, instance, cls) if get is not None else attr
    if not callable(value):
        raise TypeError(f'"{name}" is not a function.')
    return value(*args, **kwargs)


def read_property(cls: type, instance: object, name: str) -> Any:
    """Read the property ``name`` of ``instance`` over RPC (``await stub.name``).

    Raises ``TypeError`` as :func:`resolve_rpc` does, or for a method (which must be called).
    """
    attr = resolve_rpc(cls, name)
    if inspect.isfunction(attr):
        raise TypeError(f'"{name}" is a method: call it, as `await stub.{name}(...)`.')
    return getattr(instance, name)


def call_fetch(instance: object, request: Any) -> Any:
    """Call ``instance``'s ``fetch`` handler with ``request``; ``NoFetchHandlerError`` (a
    ``DurableError`` and a ``TypeError``, with workerd's text) if it has none."""
    # getattr(instance, "fetch", None) and callable(handler), without the two builtin calls for the
    # common handler (a bound method): about 120 instructions per fetch (thirteenth pass).
    try:
        handler = instance.fetch  # type: ignore[attr-defined]
    except AttributeError:
        handler = None
    if type(handler) is not MethodType and (handler is None or not callable(handler)):
        raise NoFetchHandlerError(  # workerd's text first, so it can be searched for
            f"Handler does not export a fetch() function. (Durable Object class {type(instance).__name__} "
            "has no fetch() handler: define `async def fetch(self, request)` to receive stub.fetch() calls.)"
        )
    try:
        return handler(request)
    except TypeError:
        # `async def fetch(self)` takes no request (JavaScript drops the argument); tested only
        # on this TypeError, so the common call costs nothing more. Called outside the handler
        # of the exception, so its own errors carry no "during handling" context.
        if positional_arity(handler) != 0:
            raise
    return handler()


class DurableObject:
    """Base class of Durable Objects.

    Example::

        class Counter(durable.DurableObject):
            async def increment(self, by: int = 1) -> int:
                value = (await self.ctx.storage.get("value") or 0) + by
                await self.ctx.storage.put("value", value)
                return value

    The constructor stores ``self.ctx`` (a :class:`durable.State`) and ``self.env`` (the
    runtime's :class:`durable.Env`). Subclasses that define ``__init__`` call
    ``super().__init__(ctx, env)``. Handlers and RPC methods may be ``async def`` or plain ``def``.
    """

    ctx: State
    env: Env

    def __init__(self, ctx: State, env: Env) -> None:
        self.ctx = ctx
        self.env = env


@final
@camel_aliases
@dataclasses.dataclass(frozen=True, slots=True)
class AlarmInfo:
    """What an ``alarm(info)`` handler receives.

    Attributes:
        retry_count: 0 on the first attempt, then 1, 2, ... on retries.
        is_retry: ``retry_count > 0``.
        scheduled_time: the time the alarm was set for, in ms since the epoch.

    A test that calls a handler directly builds one as ``AlarmInfo(retry_count=0,
    scheduled_time=ms)``; ``is_retry=`` may be given too (keyword only), else it follows
    ``retry_count``.
    """

    retry_count: int
    scheduled_time: int
    is_retry: bool = dataclasses.field(default=cast(bool, None), kw_only=True)

    def __post_init__(self) -> None:
        if cast("bool | None", self.is_retry) is None:
            object.__setattr__(self, "is_retry", self.retry_count > 0)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        retryCount = retry_count  # noqa: F821 - a dataclass field
        isRetry = is_retry
        scheduledTime = scheduled_time  # noqa: F821 - a dataclass field


class Env(Handle):
    """``self.env`` of objects and Workers: the runtime's bindings.

    Every namespace registered with ``name=`` is an attribute (``env.COUNTER``), and so is every
    plain value passed as ``Runtime(vars={...})``. ``env["COUNTER"]`` and ``"COUNTER" in env``
    work too.
    """

    __slots__ = ("_bindings",)
    _unpicklable = (
        "a durable.Env cannot be pickled: its namespaces belong to their runtime; pass the plain "
        "values you need, or reach the objects through a runtime in the process that uses them"
    )

    def __init__(self) -> None:
        self._bindings: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._bindings[name]
        except KeyError:
            known = ", ".join(sorted(self._bindings)) or "none"
            raise AttributeError(
                f"env has no binding {name!r} (bindings: {known}). A namespace becomes a binding "
                f"when it is registered under that name: rt.namespace(YourClass, name={name!r}), or "
                f"in a file run by `durable serve`, bindings = {{{name!r}: YourClass}}; a plain value, "
                f"with durable.Runtime(vars={{{name!r}: value}}), or vars = {{{name!r}: value}} in a "
                "served file."
            ) from None

    def __getitem__(self, name: str) -> Any:
        return self._bindings[name]

    def __contains__(self, name: object) -> bool:
        return name in self._bindings

    def __iter__(self) -> Any:
        return iter(self._bindings)

    def __dir__(self) -> list[str]:
        return sorted(self._bindings)

    def __repr__(self) -> str:
        return f"<durable.Env {sorted(self._bindings)}>"

    def _bind(self, name: str, value: Any) -> None:
        if name in self._bindings:
            raise ValueError(f"env already has a binding named {name!r}")
        if hasattr(Env, name):  # env.__class__, env._bindings: the attribute is Env's own, never the binding
            raise ValueError(
                f"a binding cannot be named {name!r}: env.{name} is an attribute of durable.Env itself, "
                "so it would never reach the binding; choose another name"
            )
        self._bindings[name] = value


def bind(env: Env, name: str, value: Any) -> None:
    """Add the binding ``name`` to ``env`` (the runtime's namespaces and ``vars``).

    A function rather than a method, so that no method name can hide a binding of that name.

    Raises:
        ValueError: ``env`` already has a binding named ``name``.
    """
    env._bind(name, value)
