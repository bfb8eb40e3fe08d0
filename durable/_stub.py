"""Stubs: the client side of a Durable Object, through which RPC calls and fetches are sent.

``await stub.increment(5)`` calls ``increment`` on the one live instance for the stub's id. Arguments
and results cross by copy (structured clone), as on Cloudflare. A stub that saw a reset error is
broken: later calls raise the same error, and ``namespace.get(id)`` gives a working stub.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, final

from ._codec import clone
from ._exceptions import DurableError, copy_remote_exception
from ._host import ObjectHost, current_host
from ._id import DurableObjectId
from ._util import NoPublicConstructor

if TYPE_CHECKING:
    from ._http import Request, Response
    from ._namespace import Namespace
    from ._object import DurableObject

__all__ = ["RpcMethod", "Stub"]

T = TypeVar("T", bound="DurableObject")


def _breaks_stub(exc: BaseException) -> bool:
    return bool(getattr(exc, "durable_object_reset", False) or getattr(exc, "overloaded", False)) or (
        isinstance(exc, DurableError) and exc.retryable
    )


@final
class Stub(Generic[T], metaclass=NoPublicConstructor):
    """A client for one Durable Object. Made by ``namespace.get(id)``; creates nothing by itself.

    Example::

        stub = counters.get_by_name("A")
        await stub.increment(5)                          # RPC
        resp = await stub.fetch("http://do/increment")   # HTTP handler
    """

    __slots__ = ("_broken", "_host_cache", "_methods", "_namespace", "id")

    _how_to_get = ": use namespace.get(id) or namespace.get_by_name(name)"

    id: DurableObjectId
    _namespace: Namespace[Any]
    _broken: BaseException | None
    _host_cache: ObjectHost | None
    _methods: dict[str, RpcMethod]

    def __init__(self, namespace: Namespace[Any], oid: DurableObjectId) -> None:
        object.__setattr__(self, "_namespace", namespace)
        object.__setattr__(self, "id", oid)
        object.__setattr__(self, "_broken", None)
        object.__setattr__(self, "_host_cache", None)
        object.__setattr__(self, "_methods", {})

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"cannot set attribute {name!r} on a Durable Object stub")

    def __repr__(self) -> str:
        return f"<durable.Stub {self.id!r}>"

    @property
    def name(self) -> str | None:
        """The name the id was derived from, or ``None``."""
        return self.id.name

    def __getattr__(self, name: str) -> RpcMethod:
        method = self._methods.get(name)
        if method is None:
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            method = self._methods[name] = RpcMethod(self, name)
        return method

    def _host(self) -> ObjectHost:
        host = self._host_cache
        if host is None or host.detached:
            host = self._namespace._host(self.id)
            object.__setattr__(self, "_host_cache", host)
        return host

    async def _call(self, kind: str, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        broken = self._broken
        if broken is not None:
            raise copy_remote_exception(broken)
        caller = current_host.get()
        if caller is not None:
            await caller.before_outgoing()
        try:
            result = await self._host().invoke(kind, name, args, kwargs)
        except BaseException as exc:
            if _breaks_stub(exc):
                object.__setattr__(self, "_broken", exc)
            if caller is not None:
                await caller.gate.wait()
            raise
        if caller is not None and not caller.gate.is_open():
            # A result is an event for the caller: it waits while the caller's gate is closed.
            await caller.gate.wait()
        return result

    async def fetch(self, input: str | Request, **init: Any) -> Response:
        """Send an HTTP request to the object's ``fetch`` handler and return its ``Response``.

        ``input`` is an absolute URL or a ``durable.Request``; ``init`` takes ``method``,
        ``headers`` and ``body``. Raises ``TypeError`` for a relative URL, as Cloudflare does.
        """
        from ._http import build_request

        request = build_request(input, init)
        return await self._call("fetch", "fetch", (request,), {})  # type: ignore[no-any-return]


@final
class RpcMethod:
    """``stub.name``: call it to invoke the method, or await it to read a property."""

    __slots__ = ("_name", "_stub")

    def __init__(self, stub: Stub[Any], name: str) -> None:
        self._stub = stub
        self._name = name

    def __repr__(self) -> str:
        return f"<durable.RpcMethod {self._name} of {self._stub!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        # Copy the arguments (structured clone) now, as the call is made; an empty call has
        # nothing to copy. Returns the call's coroutine directly (one frame less per call).
        if args:
            args = clone(args)  # type: ignore[assignment]
        if kwargs:
            kwargs = clone(kwargs)  # type: ignore[assignment]
        return self._stub._call("rpc", self._name, args, kwargs)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._stub._call("get", self._name, (), {}).__await__()
