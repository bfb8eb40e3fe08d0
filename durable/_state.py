"""``ctx``: the :class:`State` an object is constructed with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, final

from ._aliases import camel_aliases
from ._id import DurableObjectId
from ._storage import Storage

if TYPE_CHECKING:
    import asyncio

    from ._host import ObjectHost

__all__ = ["State"]

T = TypeVar("T")


@final
@camel_aliases
class State:
    """The ``ctx`` of a Durable Object: its id, its storage, and control over its concurrency.

    Made by the runtime for each instance; never constructed by users. Camel-case aliases
    (``blockConcurrencyWhile``, ``waitUntil``) name the same methods.
    """

    __slots__ = ("_gen", "_host", "id", "storage")

    id: DurableObjectId
    storage: Storage

    def __init__(self, host: ObjectHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self.id = host.id
        self.storage = Storage(host, generation)

    def __repr__(self) -> str:
        return f"<durable.State id={self.id!r}>"

    def block_concurrency_while(self, callback: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``callback()`` while no other event is delivered to the object; return its result.

        The gate closes when this is called, so a constructor can call it without ``await`` and
        the first event still waits for the callback to finish. Calls the callback itself makes
        (even ones that come back to this object) proceed. If the callback raises, or runs longer
        than 30 seconds, the object is reset.

        Example::

            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.block_concurrency_while(self.load)
        """
        self._host.check_live(self._gen)
        return self._host.block_concurrency_while(callback)

    def now_ms(self) -> int:
        """The current time in ms since the epoch, on the runtime's clock (JavaScript's ``Date.now()``).

        Object code that reads time through this follows a ``durable.testing.MockClock`` in
        tests, as alarms do; ``time.time()`` would not.
        """
        return self._host.now_ms()

    def wait_until(self, work: Awaitable[Any]) -> None:
        """Keep ``work`` running after the current call returns (it does not delay the result).

        The object is not evicted while such work is pending. Errors it raises are logged.
        """
        self._host.wait_until(work)

    def abort(self, reason: str | None = None) -> NoReturn:
        """Reset the object now: unflushed writes are dropped and the instance discarded.

        The call in progress, and every other call held by this instance, fails with an
        :class:`durable.ObjectResetError` (``durable_object_reset = True``) whose message is
        ``reason``, or Cloudflare's default text.
        """
        self._host.abort(reason, self._gen)

    # -- not implemented: the WebSocket Hibernation API --------------------------------------

    def accept_web_socket(self, ws: object, tags: list[str] | None = None) -> NoReturn:
        """Not implemented: `durable` has no WebSocket support yet (see docs/differences.md)."""
        raise NotImplementedError(_NO_WEBSOCKETS)

    def get_web_sockets(self, tag: str | None = None) -> NoReturn:
        """Not implemented: `durable` has no WebSocket support yet (see docs/differences.md)."""
        raise NotImplementedError(_NO_WEBSOCKETS)

    def set_web_socket_auto_response(self, pair: object = None) -> NoReturn:
        """Not implemented: `durable` has no WebSocket support yet (see docs/differences.md)."""
        raise NotImplementedError(_NO_WEBSOCKETS)


_NO_WEBSOCKETS = (
    "The WebSocket Hibernation API (acceptWebSocket, getWebSockets, setWebSocketAutoResponse) is not "
    "implemented in durable; see docs/differences.md"
)
