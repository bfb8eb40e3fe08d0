"""The base class of Durable Objects, and what their handlers receive.

A Durable Object class subclasses :class:`DurableObject`; its constructor takes ``(ctx, env)``. Any
public method is reachable over RPC through a stub; ``fetch`` and ``alarm`` are handlers with
special meaning (see ``API.md`` section 1). :class:`Env` (the bindings ``env`` holds) lives here
too, at the bottom layer, so that what an object receives needs nothing of the runtime.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, final

from ._aliases import camel_aliases

if TYPE_CHECKING:
    from ._state import State

__all__ = ["RESERVED_METHODS", "AlarmInfo", "DurableObject", "Env", "bind"]

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
    """

    retry_count: int
    scheduled_time: int

    @property
    def is_retry(self) -> bool:
        return self.retry_count > 0


class Env:
    """``self.env`` of objects and Workers: the runtime's bindings.

    Every namespace registered with ``name=`` is an attribute (``env.COUNTER``), and so is every
    plain value passed as ``Runtime(vars={...})``. ``env["COUNTER"]`` and ``"COUNTER" in env``
    work too.
    """

    __slots__ = ("_bindings",)

    def __init__(self) -> None:
        self._bindings: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._bindings[name]
        except KeyError:
            known = ", ".join(sorted(self._bindings)) or "none"
            raise AttributeError(
                f"env has no binding {name!r} (bindings: {known}). A namespace becomes a binding "
                f"when it is registered under that name: rt.namespace(YourClass, name={name!r}); "
                f"a plain value, with durable.Runtime(vars={{{name!r}: value}})."
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
        self._bindings[name] = value


def bind(env: Env, name: str, value: Any) -> None:
    """Add the binding ``name`` to ``env`` (the runtime's namespaces and ``vars``).

    A function rather than a method, so that no method name can hide a binding of that name.

    Raises:
        ValueError: ``env`` already has a binding named ``name``.
    """
    env._bind(name, value)
