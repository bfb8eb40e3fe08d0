"""What the WebSocket modules share: workerd's limits, the frames, the errors, the listener events
and the seam to the object layer.

A frame is a tuple whose first item is its kind: ``("message", data)``, ``("close", code, reason,
was_clean)`` or ``("error", exception)``. Frames travel between the :class:`~durable._wsnetwork.
NetworkEnd` of two joined sockets and are delivered by each socket's :class:`~durable._wsdelivery.
Delivery`; :mod:`durable._websocket` puts the two together behind the public ``WebSocket``.

The object layer plugs in here: ``durable._hibernation`` registers its :class:`ObjectHooks` with
:func:`set_object_hooks` when it is imported, the way an anyio backend is plugged in behind one
abstract class, so that no WebSocket module knows of objects, hosts or runtimes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from ._exceptions import DurableError
from ._util import rebuilt_exception

if TYPE_CHECKING:
    from ._websocket import WebSocket

__all__ = [
    "CLOSE",
    "CLOSED",
    "CLOSING",
    "DISCONNECTED_REASON",
    "ERROR",
    "MAX_MESSAGE_SIZE",
    "MESSAGE",
    "OPEN",
    "OTHER_OBJECT",
    "TOO_LARGE_MESSAGE",
    "TOO_LARGE_PREFIX",
    "CloseEvent",
    "ErrorEvent",
    "HibernatableEntry",
    "MessageEvent",
    "ObjectHooks",
    "Receiver",
    "StandardOwner",
    "WebSocketClosed",
    "WebSocketError",
    "check_io",
    "object_hooks",
    "set_object_hooks",
    "too_large",
    "too_large_description",
    "uncaught_message",
]

MAX_MESSAGE_SIZE: Final = 32 << 20
"""workerd's ``WEBSOCKET_MAX_MESSAGE_SIZE``: the largest message a Durable Object receives."""

DISCONNECTED_REASON: Final = "WebSocket disconnected without sending Close frame."
"""workerd's close reason when a connection ends without a Close frame (code 1006)."""

TOO_LARGE_PREFIX: Final = "WebSocket protocol error; protocolError.statusCode = 1009; protocolError.description = "
"""The start of the error workerd's ``webSocketError`` handler receives for a message over 32 MiB
from the network (measured with workerd 2026-04-26 under miniflare); the description follows
(:func:`too_large_description`), and the client's connection is closed with 1009 and that
description as the reason."""

TOO_LARGE_MESSAGE: Final = TOO_LARGE_PREFIX + "Message is too large"
"""That error where the sizes are not known (a compressed message refused as it inflates)."""


def too_large_description(size: int | str | bytes, limit: int = MAX_MESSAGE_SIZE) -> str:
    """workerd's description of a frame of ``size`` bytes (or a message: its UTF-8 bytes for text)
    refused when the message may hold ``limit`` more.

    ``Message is too large: 33554433 > 33554432`` for a 32 MiB + 1 message; for a later fragment,
    ``limit`` is what the earlier fragments left (measured with miniflare 4, 2026-04-07:
    ``Message is too large: 20971520 > 12582912`` for a second 20 MiB fragment).
    """
    if not isinstance(size, int):
        size = len(size.encode("utf-8", "surrogatepass") if isinstance(size, str) else size)
    return f"Message is too large: {size} > {limit}"


OTHER_OBJECT: Final = (
    "Cannot perform I/O on behalf of a different Durable Object. I/O objects (such as streams, "
    "request/response bodies, and others) created in the context of one Durable Object cannot be "
    "accessed from a different Durable Object in the same isolate. This is a limitation of "
    "Cloudflare Workers which allows us to improve overall performance. (I/O type: Native)"
)
"""workerd's error for a WebSocket of one Durable Object used by another (its ``send``, ``close``,
``accept``, ``readyState``, ``ctx.acceptWebSocket`` and ``ctx.getTags``; measured with miniflare 4,
2026-04-07)."""


# The kinds of frame.
MESSAGE: Final = "message"
CLOSE: Final = "close"
ERROR: Final = "error"

# Ready states (``WebSocket.OPEN``...).
OPEN: Final = 1
CLOSING: Final = 2
CLOSED: Final = 3


def too_large(data: str | bytes) -> bool:
    """Whether ``data`` is over workerd's 32 MiB limit (UTF-8 bytes for text)."""
    if isinstance(data, str):
        # A str of n characters is n to 4n bytes in UTF-8: encode only when it can matter.
        return len(data) > MAX_MESSAGE_SIZE // 4 and len(data.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_SIZE
    return len(data) > MAX_MESSAGE_SIZE


class WebSocketClosed(DurableError):
    """The other side closed: raised by ``await ws.receive()`` on a closed socket.

    Attributes:
        code: the close code (1005 when the Close frame had none, 1006 when the connection was
            lost without one).
        reason: the close reason (``""`` if none).
        was_clean: ``False`` when the connection was lost without a Close frame.
    """

    def __init__(self, code: int, reason: str, was_clean: bool) -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason
        self.was_clean = was_clean
        self.wasClean = was_clean

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException's own reduce rebuilds from ``args`` (the message alone), which this
        # constructor refuses: copy.copy, copy.deepcopy and pickle (a process pool) raised
        # TypeError. The attributes (``remote`` on one raised over RPC) come back as state.
        return rebuilt_exception(self)


class WebSocketError(DurableError):
    """workerd's DOMException and ``Error`` cases for WebSockets (invalid close code, too-long
    reason, a second ``accept_web_socket``, an attachment over 16,384 bytes...)."""


@final
class HibernatableEntry:
    """What ``ctx.accept_web_socket()`` keeps with a socket: the object that accepted it (its
    key, opaque here), its tags and the time (ms since the epoch) of its last auto-response, or None.

    It lives on the socket (``ws.delivery.hibernation``), as workerd keeps both on its WebSocket:
    ``get_tags()`` and ``get_web_socket_auto_response_timestamp()`` still answer for a socket
    that has closed and left ``get_web_sockets()`` (measured with miniflare 4, 2026-04-07).
    """

    __slots__ = ("owner", "tags", "timestamp")

    def __init__(self, owner: object, tags: tuple[str, ...]) -> None:
        self.owner = owner
        self.tags = tags
        self.timestamp: int | None = None


# ---------------------------------------------------------------------------------------------
# Events given to listeners


@final
class MessageEvent:
    """What a ``"message"`` listener receives: ``data`` is the message, ``str`` or ``bytes``."""

    __slots__ = ("data", "target")
    type = "message"

    def __init__(self, target: WebSocket, data: str | bytes) -> None:
        self.target = target
        self.data = data

    def __repr__(self) -> str:
        return f"<MessageEvent data={self.data!r:.60}>"


@final
class CloseEvent:
    """What a ``"close"`` listener receives: ``code``, ``reason`` and ``was_clean`` (``wasClean``)."""

    __slots__ = ("code", "reason", "target", "was_clean")
    type = "close"

    def __init__(self, target: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.target = target
        self.code = code
        self.reason = reason
        self.was_clean = was_clean

    @property
    def wasClean(self) -> bool:  # noqa: N802 - Cloudflare's spelling
        return self.was_clean

    def __repr__(self) -> str:
        return f"<CloseEvent code={self.code} reason={self.reason!r} was_clean={self.was_clean}>"


@final
class ErrorEvent:
    """What an ``"error"`` listener receives: ``error``, the exception, and its ``message``."""

    __slots__ = ("error", "message", "target")
    type = "error"

    def __init__(self, target: WebSocket, error: BaseException, message: str | None = None) -> None:
        self.target = target
        self.error = error
        self.message = str(error) if message is None else message


def uncaught_message(error: BaseException) -> str:
    """The ``message`` of the ``"error"`` event of a socket whose listener raised ``error``.

    workerd words it ``"Uncaught " + String(error)`` (measured with miniflare 4, 2026-04-07, on a
    socket accepted with ``accept()``: ``throw new TypeError("x")`` gives ``"Uncaught TypeError:
    x"``, ``throw new Error("")`` ``"Uncaught Error"``); the class is named by its Python name, as
    ``ctx.abort(IndexError("x"))`` gives ``"IndexError: x"``.
    """
    name = type(error).__name__
    try:
        said = str(error)
    except Exception:
        said = ""  # a __str__ that fails: the class alone
    return f"Uncaught {name}: {said}" if said else f"Uncaught {name}"


# ---------------------------------------------------------------------------------------------
# The seam to the object layer


class ObjectHooks(Protocol):
    """What a socket needs from the Durable Object running the current code, if any.

    Implemented by ``durable._hibernation`` and registered with :func:`set_object_hooks`; with
    none registered (or outside any object) sockets behave as plain in-process sockets.
    """

    def output_barrier(self) -> tuple[asyncio.Future[None] | None, Callable[[], bool] | None]:
        """What a frame sent now must wait for (the commit of earlier writes, or None), and a
        check that the sender is still alive when the frame leaves (None outside any object)."""

    def standard_owner(self) -> StandardOwner | None:
        """The object code runs in now, for a socket accepted with ``accept()``; None outside."""

    def io_owner(self) -> object | None:
        """The key of the object whose code runs now (opaque here), or None outside any object."""

    def made(self, ws: WebSocket) -> object | None:
        """``io_owner()``, for ``ws`` just made: the object's reset will orphan it."""


class StandardOwner(Protocol):
    """An object that owns sockets accepted with ``accept()``: runs their listeners in its gate."""

    def adopt(self, ws: WebSocket) -> None:
        """Track ``ws`` (it keeps the object from hibernating) until it is closed."""

    def release(self, ws: WebSocket) -> None:
        """``ws`` is closed: stop tracking it."""

    def dispatch(self, ws: WebSocket, callback: Callable[[], Any]) -> asyncio.Future[Any] | None:
        """Run ``callback()`` as an event of the object (through its input gate); the event's
        future (None if the runtime is closed)."""


class Receiver(Protocol):
    """Where the frames of a socket accepted with ``ctx.accept_web_socket()`` go."""

    def frame(self, ws: WebSocket, frame: tuple[Any, ...]) -> None:
        """Handle ``frame``, which arrived on ``ws`` (the registry dispatches the handler event)."""


class _NoHooks:
    def output_barrier(self) -> tuple[asyncio.Future[None] | None, Callable[[], bool] | None]:
        return None, None

    def standard_owner(self) -> StandardOwner | None:
        return None

    def io_owner(self) -> object | None:
        return None

    def made(self, ws: WebSocket) -> object | None:
        return None


_hooks: ObjectHooks = _NoHooks()


def set_object_hooks(hooks: ObjectHooks) -> None:
    """Register the object layer (``durable._hibernation`` does this once, when imported)."""
    global _hooks
    _hooks = hooks


def object_hooks() -> ObjectHooks:
    """The object layer registered with :func:`set_object_hooks` (a no-op one until then)."""
    return _hooks


def check_io(owner: object | None) -> None:
    """Raise workerd's :data:`OTHER_OBJECT` error when code of another object than ``owner`` (the
    key of the object a socket belongs to, None for a socket that belongs to none) runs now.

    Code outside any object (a test body, a Worker) may use any socket, as before.
    """
    if owner is not None:
        now = _hooks.io_owner()
        if now is not None and now != owner:
            raise WebSocketError(OTHER_OBJECT)
