"""WebSockets: ``WebSocketPair``, ``WebSocket`` and the frames that travel between the two ends.

A :class:`WebSocketPair` is two :class:`WebSocket` ends joined in process. What one end sends
arrives at the other on a later turn of the event loop (``loop.call_soon``, first in, first out),
as over a network: a sender never runs the receiver's code inside its own call.

What an end does with what arrives depends on how it was accepted, as in workerd:

- not accepted yet: frames wait in a backlog until it is (workerd buffers until ``accept()``);
- ``accept()`` (the standard path): ``message`` / ``close`` / ``error`` listeners run, and a
  client end also offers ``await ws.receive()`` and ``async for``; inside a Durable Object the
  listeners run through the object's input gate (see :class:`ObjectHooks`);
- ``ctx.accept_web_socket()`` (the Hibernation API): frames go to the object's socket registry,
  which checks the auto-response and dispatches the handler events (``durable._hibernation``).

Layering: this module knows nothing of objects, hosts or runtimes. Where a socket needs its
object (the output gate, the input gate for listeners), it asks the :class:`ObjectHooks` that
``durable._hibernation`` registers with :func:`set_object_hooks` when it is imported, the way an
anyio backend is plugged in behind one abstract class.

Close semantics are Cloudflare's from compatibility date 2026-04-07
(``web_socket_auto_reply_to_close``): a Close frame is answered by the runtime itself, so the
receiving end is already ``CLOSED`` when its close event runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from ._aliases import camel_aliases
from ._codec import decode, encode
from ._exceptions import DurableError

__all__ = [
    "DISCONNECTED_REASON",
    "MAX_ATTACHMENT_SIZE",
    "MAX_MESSAGE_SIZE",
    "TOO_LARGE_MESSAGE",
    "CloseEvent",
    "ErrorEvent",
    "MessageEvent",
    "ObjectHooks",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "remote_close",
    "set_object_hooks",
    "validate_close",
]

log = logging.getLogger("durable")

MAX_ATTACHMENT_SIZE: Final = 16 * 1024
"""workerd's ``MAX_ATTACHMENT_SIZE``: bytes of a serialized attachment (here: durable's codec)."""

MAX_MESSAGE_SIZE: Final = 32 << 20
"""workerd's ``WEBSOCKET_MAX_MESSAGE_SIZE``: the largest message a Durable Object receives."""

DISCONNECTED_REASON: Final = "WebSocket disconnected without sending Close frame."
"""workerd's close reason when a connection ends without a Close frame (code 1006)."""

TOO_LARGE_MESSAGE: Final = (
    "WebSocket protocol error; protocolError.statusCode = 1009; protocolError.description = Message is too large"
)
"""The error workerd's ``webSocketError`` handler receives for a message over 32 MiB from the
network (measured with workerd 2026-04-26 under miniflare); the client's connection is closed
with 1009."""

_MAX_REASON_BYTES: Final = 123
_RESERVED_CODES: Final = frozenset({1004, 1005, 1006, 1015})


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


class WebSocketError(DurableError):
    """workerd's DOMException and ``Error`` cases for WebSockets (invalid close code, too-long
    reason, a second ``accept_web_socket``, an attachment over 16,384 bytes...)."""


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

    def __init__(self, target: WebSocket, error: BaseException) -> None:
        self.target = target
        self.error = error
        self.message = str(error)


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


class StandardOwner(Protocol):
    """An object that owns sockets accepted with ``accept()``: runs their listeners in its gate."""

    def adopt(self, ws: WebSocket) -> None:
        """Track ``ws`` (it keeps the object from hibernating) until it is closed."""

    def release(self, ws: WebSocket) -> None:
        """``ws`` is closed: stop tracking it."""

    def dispatch(self, ws: WebSocket, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` as an event of the object (through its input gate)."""


class Receiver(Protocol):
    """Where the frames of a socket accepted with ``ctx.accept_web_socket()`` go."""

    def frame(self, ws: WebSocket, frame: tuple[Any, ...]) -> None: ...


class _NoHooks:
    def output_barrier(self) -> tuple[asyncio.Future[None] | None, Callable[[], bool] | None]:
        return None, None

    def standard_owner(self) -> StandardOwner | None:
        return None


_hooks: ObjectHooks = _NoHooks()


def set_object_hooks(hooks: ObjectHooks) -> None:
    """Register the object layer (``durable._hibernation`` does this once, when imported)."""
    global _hooks
    _hooks = hooks


# ---------------------------------------------------------------------------------------------
# Validation shared with the ASGI bridge


def validate_close(code: int | None, reason: str | None) -> tuple[int | None, str]:
    """Check ``close(code, reason)`` as workerd does (non-pedantic mode); return them normalized."""
    if code is None:
        if reason:
            raise TypeError("If you specify a WebSocket close reason, you must also specify a code.")
        return None, ""
    if not isinstance(code, int) or isinstance(code, bool):
        raise TypeError(f"WebSocket close code must be an int, not {type(code).__name__}.")
    if not (1000 <= code <= 4999) or code in _RESERVED_CODES:
        raise WebSocketError(f"Invalid WebSocket close code: {code}.")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise TypeError(f"WebSocket close reason must be a str, not {type(reason).__name__}.")
    if len(reason.encode("utf-8")) > _MAX_REASON_BYTES:
        raise WebSocketError("WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.")
    return code, reason


def _too_large(data: str | bytes) -> bool:
    """Whether ``data`` is over workerd's 32 MiB limit (UTF-8 bytes for text)."""
    if isinstance(data, str):
        # A str of n characters is n to 4n bytes in UTF-8: encode only when it can matter.
        return len(data) > MAX_MESSAGE_SIZE // 4 and len(data.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_SIZE
    return len(data) > MAX_MESSAGE_SIZE


def _check_message(message: object) -> str | bytes:
    if isinstance(message, str):
        return message
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    raise TypeError(f"WebSocket send() takes a str or bytes, not {type(message).__name__}.")


# ---------------------------------------------------------------------------------------------
# The socket

_MESSAGE = "message"
_CLOSE = "close"
_ERROR = "error"

# How an end was accepted.
_NEW = 0  # not accepted yet: frames wait in the backlog
_STANDARD = 1  # accept(): listeners / receive()
_HIBERNATABLE = 2  # ctx.accept_web_socket(): the registry's receiver
_RELEASED = 3  # handed over in a Response: this handle is dead


@final
@camel_aliases
class WebSocket:
    """One end of a :class:`WebSocketPair` (see the module docstring).

    Attributes:
        url: the URL of the upgrade request, when the socket came from one (else None).
        protocol: the negotiated subprotocol (``""`` if none).
        extensions: the negotiated extensions (always ``""``: no compression, as workerd).

    Example::

        client, server = durable.WebSocketPair()
        server.accept()
        client.accept()
        client.send("hi")
        # the server's "message" listeners see it on a later loop turn
    """

    CONNECTING: Final = 0
    OPEN: Final = 1
    CLOSING: Final = 2
    CLOSED: Final = 3

    __slots__ = (
        "__weakref__",
        "_attachment",
        "_backlog",
        "_close_info",
        "_closed_in",
        "_closed_out",
        "_gone",
        "_inbox",
        "_listeners",
        "_mode",
        "_network",
        "_out_pending",
        "_owner",
        "_peer",
        "_receiver",
        "_used",
        "_waiter",
        "extensions",
        "protocol",
        "url",
    )

    _peer: WebSocket | None
    _mode: int
    _network: bool
    _closed_in: bool
    _closed_out: bool
    _gone: bool
    _used: bool
    _close_info: tuple[int, str, bool] | None
    _backlog: list[tuple[Any, ...]]
    _inbox: deque[tuple[Any, ...]] | None  # made on first use: a deque costs ~600 bytes
    _waiter: asyncio.Future[None] | None
    _listeners: dict[str, list[Callable[[Any], Any]]] | None
    _attachment: bytes | None
    _out_pending: deque[tuple[tuple[Any, ...], asyncio.Future[None] | None, Callable[[], bool] | None]] | None
    _owner: StandardOwner | None
    _receiver: Receiver | None
    url: str | None
    protocol: str
    extensions: str

    def __init__(self) -> None:
        raise TypeError("WebSocket ends are made by durable.WebSocketPair(), not constructed directly.")

    @classmethod
    def _make(cls) -> WebSocket:
        self = object.__new__(cls)
        self._peer = None
        self._mode = _NEW
        self._network = False
        self._closed_in = False
        self._closed_out = False
        self._gone = False
        self._used = False
        self._close_info = None
        self._backlog = []
        self._inbox = None
        self._waiter = None
        self._listeners = None
        self._attachment = None
        self._out_pending = None
        self._owner = None
        self._receiver = None
        self.url = None
        self.protocol = ""
        self.extensions = ""
        return self

    def __repr__(self) -> str:
        states = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")
        return f"<durable.WebSocket {states[self.ready_state]}>"

    # -- state ---------------------------------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """``OPEN`` (1), ``CLOSING`` (2: one side sent its Close) or ``CLOSED`` (3)."""
        if self._gone or (self._closed_in and self._closed_out):
            return WebSocket.CLOSED
        if self._closed_in or self._closed_out:
            return WebSocket.CLOSING
        return WebSocket.OPEN

    @property
    def hibernatable(self) -> bool:
        """Whether this end was accepted with ``ctx.accept_web_socket()``."""
        return self._mode == _HIBERNATABLE

    @property
    def standard(self) -> bool:
        """Whether this end was accepted with ``accept()`` (the standard, non-hibernatable path)."""
        return self._mode == _STANDARD

    # -- accepting -----------------------------------------------------------------------------

    def accept(self, allow_half_open: bool = False) -> None:
        """Accept this end on the standard path: events go to ``add_event_listener`` listeners.

        Inside a Durable Object the listeners run through the object's input gate and the socket
        keeps the object from hibernating. Accepting twice is allowed (as in workerd).
        ``allow_half_open`` is accepted for compatibility; the runtime always answers a Close.

        Raises:
            TypeError: the end was handed over in a Response, or accepted with
                ``ctx.accept_web_socket()``.
        """
        if self._mode == _RELEASED:
            raise TypeError("Can't accept() WebSocket that was already used in a response.")
        if self._mode == _HIBERNATABLE:
            raise TypeError("Can't accept() WebSocket after enabling hibernation.")
        if self._mode == _STANDARD:
            return
        self._mode = _STANDARD
        self._used = True
        owner = _hooks.standard_owner()
        if owner is not None and not self._gone and not (self._closed_in and self._closed_out):
            self._owner = owner
            owner.adopt(self)
        self._replay_backlog()

    def _accept_hibernatable(self, receiver: Receiver) -> None:
        """Hand this end to an object's socket registry (``ctx.accept_web_socket``)."""
        if self._mode == _STANDARD or self._mode == _HIBERNATABLE:
            raise WebSocketError("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`")
        if self._mode == _RELEASED or (self._peer is not None and self._peer._used):
            # The boundary is the pair's use (its other end accepted, or used to send or to
            # close), not the event that made it; handing the other end over in a Response
            # first is allowed (both measured with workerd 2026-07-30).
            raise WebSocketError(
                "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been "
                "accepted or used in a Response."
            )
        self._mode = _HIBERNATABLE
        self._used = True
        self._receiver = receiver
        self._replay_backlog()

    def _replay_backlog(self) -> None:
        """Deliver what arrived before acceptance, on the next loop turn (as workerd dispatches
        events asynchronously), so listeners added right after ``accept()`` get it too."""
        if not self._backlog:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_backlog()
        else:
            loop.call_soon(self._flush_backlog, context=contextvars.Context())

    def _flush_backlog(self) -> None:
        backlog, self._backlog = self._backlog, []
        for frame in backlog:
            self._dispatch(frame)

    def _release(self) -> WebSocket:
        """Hand this end over in a Response: a fresh handle takes over, this one is dead."""
        if self._mode == _RELEASED:
            raise TypeError("Can't return WebSocket that was already used in a response.")
        if self._mode == _HIBERNATABLE:
            raise TypeError("Can't return WebSocket in a Response after calling acceptWebSocket().")
        if self._mode == _STANDARD:
            raise TypeError("Can't return WebSocket in a Response after calling accept().")
        other = WebSocket._make()
        other._peer = self._peer
        if self._peer is not None:
            self._peer._peer = other
        other._backlog, self._backlog = self._backlog, []
        other.url, other.protocol = self.url, self.protocol
        other._closed_in, other._closed_out, other._gone = self._closed_in, self._closed_out, self._gone
        other._close_info, other._network = self._close_info, self._network
        self._mode = _RELEASED
        # Handing an end over does not count as using the pair: workerd lets the object accept
        # the server end after building the Response (measured with workerd 2026-07-30).
        self._peer = None
        return other

    # -- listeners -----------------------------------------------------------------------------

    def add_event_listener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """Call ``listener(event)`` for each ``"message"``, ``"close"`` or ``"error"`` event.

        The listener may be a plain or an ``async`` function. Raises ``TypeError`` for another
        event type or a listener that is not callable.
        """
        if type not in (_MESSAGE, _CLOSE, _ERROR):
            raise TypeError(f'WebSocket has no "{type}" event; use "message", "close" or "error".')
        if not callable(listener):
            raise TypeError(f"add_event_listener() takes a callable listener, not {listener.__class__.__name__}.")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(type, []).append(listener)

    def remove_event_listener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """Remove a listener added with :meth:`add_event_listener` (nothing if it was not added)."""
        listeners = self._listeners.get(type, []) if self._listeners is not None else []
        if listener in listeners:
            listeners.remove(listener)

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary (``bytes``) message to the other end.

        Inside a Durable Object the message waits behind the output gate: it leaves once the
        writes made before it are durable, and never if their commit fails.

        Raises:
            TypeError: the end is not accepted yet, was closed with ``close()``, or ``message``
                is neither ``str`` nor ``bytes``.
        """
        if self._mode == _NEW or self._mode == _RELEASED:
            raise TypeError(
                "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages."
            )
        data = _check_message(message)
        self._used = True
        if self._closed_out:
            raise TypeError("Can't call WebSocket send() after close().")
        if self._gone:
            return  # the connection is gone: silently dropped, as workerd does
        if self._network and _too_large(data):
            self._refuse_too_large()
            return
        self._emit((_MESSAGE, data))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send a Close frame (``code`` 1000-4999 except 1004/1005/1006/1015; ``reason`` <= 123 bytes).

        A second call, or a call after the other side closed, changes nothing. Waits behind the
        output gate like :meth:`send`.

        Raises:
            TypeError: a reason without a code.
            durable.WebSocketError: an invalid close code, or a reason over 123 UTF-8 bytes.
        """
        code, reason = validate_close(code, reason)
        self._used = True
        if self._closed_out or self._gone:
            return
        self._closed_out = True
        self._emit((_CLOSE, 1005 if code is None else code, reason, True))
        if self._closed_in:
            self._finished()

    def _network_end(self) -> None:
        """Mark this end as the network side of a connection (a client beyond the runtime).

        What it sends is what the object *receives*, so workerd's 32 MiB limit on received
        messages applies to it (see :meth:`_refuse_too_large`). Ends of a pair made in process
        have no limit: workerd passes a message of 32 MiB + 1 between two such ends (measured
        with workerd 2026-04-26 under miniflare). Set by the ASGI bridge and ``durable.testing``.
        """
        self._network = True

    def _refuse_too_large(self) -> None:
        """A message over 32 MiB from the network: workerd's read loop fails with a protocol
        error. The object's end gets an error event (:data:`TOO_LARGE_MESSAGE`) and is released;
        this end, the client's, is closed with 1009 ``Message is too large``."""
        self._closed_out = True
        if self._peer is not None:
            self._post((_ERROR, WebSocketError(TOO_LARGE_MESSAGE)))
        frame = (_CLOSE, 1009, "Message is too large", True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._arrive(frame)
        else:
            loop.call_soon(self._arrive, frame, context=contextvars.Context())

    def _emit(self, frame: tuple[Any, ...]) -> None:
        """Send a frame to the peer, after the output gate; frames stay in order.

        Each frame waits for the commit of the writes made before it (its barrier) and for the
        frames sent before it; a frame whose commit failed is dropped (workerd's output gate).
        """
        barrier, alive = _hooks.output_barrier()
        pending = self._out_pending
        if pending is not None:
            pending.append((frame, barrier, alive))
            return
        if barrier is None:
            if self._peer is not None and not self._gone:
                self._post(frame, alive)
            return
        self._out_pending = deque([(frame, barrier, alive)])
        barrier.add_done_callback(self._drain)

    def _drain(self, _: object = None) -> None:
        pending = self._out_pending
        while pending:
            frame, barrier, alive = pending[0]
            if barrier is not None:
                if not barrier.done():
                    barrier.add_done_callback(self._drain)
                    return
                if barrier.cancelled() or barrier.exception() is not None:
                    pending.popleft()
                    continue  # its commit failed: it never leaves
            pending.popleft()
            if self._peer is not None and not self._gone:
                self._post(frame, alive)
        self._out_pending = None

    def _transmit(self, frame: tuple[Any, ...]) -> None:
        if self._peer is None or self._gone:
            return
        self._post(frame)

    def _post(self, frame: tuple[Any, ...], alive: Callable[[], bool] | None = None) -> None:
        # The peer is looked up when the frame arrives: an end handed over in a Response in
        # the meantime has a new handle, which gets it.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._forward(frame, alive)
        else:
            loop.call_soon(self._forward, frame, alive, context=contextvars.Context())

    def _forward(self, frame: tuple[Any, ...], alive: Callable[[], bool] | None) -> None:
        if alive is not None and not alive():
            # The object that sent it was reset before it left (a constructor that sends and
            # then throws, abort() right after send()): workerd drops it with the broken actor.
            return
        peer = self._peer
        if peer is not None:
            peer._arrive(frame)

    def _disconnect(self, code: int = 1006, reason: str = DISCONNECTED_REASON) -> None:
        """The connection is lost: the other end gets a close (``was_clean`` False) and this end dies."""
        if self._gone:
            return
        self._gone = True
        if self._peer is not None:
            self._post((_CLOSE, code, reason, False))
        self._finished()

    def _fail(self, error: BaseException) -> None:
        """The connection failed with ``error``: the other end gets an error event and dies."""
        if self._gone:
            return
        self._gone = True
        if self._peer is not None:
            self._post((_ERROR, error))
        self._finished()

    def _finished(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.release(self)

    # -- receiving -----------------------------------------------------------------------------

    def _arrive(self, frame: tuple[Any, ...]) -> None:
        """A frame from the peer (or from the network, through the ASGI bridge)."""
        if self._gone or self._closed_in:
            return
        kind = frame[0]
        if kind == _CLOSE:
            self._closed_in = True
            self._close_info = (frame[1], frame[2], frame[3])
            if frame[3]:
                if not self._closed_out:
                    # The runtime answers a Close itself (web_socket_auto_reply_to_close).
                    self._closed_out = True
                    self._transmit((_CLOSE, frame[1], frame[2], True))
            else:
                self._gone = True
        elif kind == _ERROR:
            self._closed_in = True
            self._gone = True
            self._close_info = (1006, DISCONNECTED_REASON, False)
        if self._mode == _NEW or self._backlog:
            self._backlog.append(frame)  # not accepted yet, or a replay is pending: keep the order
        else:
            self._dispatch(frame)
        if kind != _MESSAGE:
            self._finished()

    def _dispatch(self, frame: tuple[Any, ...]) -> None:
        mode = self._mode
        if mode == _HIBERNATABLE:
            assert self._receiver is not None
            self._receiver.frame(self, frame)
        elif mode == _STANDARD:
            self._deliver_standard(frame)

    def _deliver_standard(self, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        all_listeners = self._listeners or {}
        listeners = all_listeners.get(kind)
        if not listeners:
            if kind != _ERROR or not all_listeners.get(_CLOSE):
                self._push(frame)
            return
        if kind == _MESSAGE:
            event: Any = MessageEvent(self, frame[1])
        elif kind == _CLOSE:
            event = CloseEvent(self, frame[1], frame[2], frame[3])
        else:
            event = ErrorEvent(self, frame[1])
        if kind != _MESSAGE:
            self._push(frame)  # receive() still learns the socket is closed
        owner = self._owner
        for listener in list(listeners):
            if owner is not None:
                owner.dispatch(self, _bind(listener, event))
            else:
                _run_listener(listener, event)

    def _push(self, frame: tuple[Any, ...]) -> None:
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> str | bytes:
        """Wait for the next message (``str`` or ``bytes``) on an accepted end.

        Messages are queued here when no ``"message"`` listener is registered.

        Raises:
            durable.WebSocketClosed: the other side closed (``code``, ``reason``, ``was_clean``).
            RuntimeError: the end is not accepted with ``accept()``, or another task is already
                waiting in ``receive()`` on it.
        """
        if self._mode != _STANDARD:
            raise RuntimeError("call ws.accept() before ws.receive() (receive() reads a socket accepted with accept())")
        while True:
            inbox = self._inbox
            if inbox:
                frame = inbox[0]
                if frame[0] == _MESSAGE:
                    inbox.popleft()
                    data: str | bytes = frame[1]
                    return data
                raise self._closed_error()
            if (self._gone or self._closed_in) and not self._backlog:
                raise self._closed_error()
            if self._waiter is not None:
                raise RuntimeError("another task is already waiting in receive() on this WebSocket")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def _closed_error(self) -> WebSocketClosed:
        info = self._close_info or (1006, DISCONNECTED_REASON, False)
        return WebSocketClosed(*info)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                message = await self.receive()
            except WebSocketClosed:
                return
            yield message

    # -- attachments ---------------------------------------------------------------------------

    def serialize_attachment(self, value: object) -> None:
        """Keep a copy of ``value`` (a structured-clone value) with the socket; survives hibernation.

        Raises:
            durable.DataCloneError: ``value`` cannot be cloned.
            durable.WebSocketError: it encodes to more than 16,384 bytes (durable's codec size).
        """
        data = encode(value)
        if len(data) > MAX_ATTACHMENT_SIZE:
            raise WebSocketError(
                f"A WebSocket 'attachment' cannot be larger than {MAX_ATTACHMENT_SIZE} bytes."
                f"'attachment' was {len(data)} bytes."
            )
        self._attachment = data

    def deserialize_attachment(self) -> Any:
        """A copy of the last value given to :meth:`serialize_attachment`, or ``None``."""
        if self._attachment is None:
            return None
        return decode(self._attachment)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        readyState = ready_state
        addEventListener = add_event_listener
        removeEventListener = remove_event_listener
        serializeAttachment = serialize_attachment
        deserializeAttachment = deserialize_attachment


def _bind(listener: Callable[[Any], Any], event: Any) -> Callable[[], Any]:
    def run() -> Any:
        return listener(event)

    return run


def _run_listener(listener: Callable[[Any], Any], event: Any) -> None:
    try:
        result = listener(event)
    except Exception:
        log.exception("durable: a WebSocket %s listener raised", event.type)
        return
    if asyncio.iscoroutine(result):
        task = asyncio.ensure_future(result)
        task.add_done_callback(_log_listener_error)


def _log_listener_error(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("durable: a WebSocket listener raised", exc_info=exc)


@final
class WebSocketPair:
    """Two joined :class:`WebSocket` ends: ``client, server = durable.WebSocketPair()``.

    Also indexable (``pair[0]`` is the client end, ``pair[1]`` the server end), and
    ``WebSocketPair.new()`` (the Python Workers spelling) makes one too.
    """

    __slots__ = ("_ends",)

    def __init__(self) -> None:
        client, server = WebSocket._make(), WebSocket._make()
        client._peer, server._peer = server, client
        self._ends = (client, server)

    @classmethod
    def new(cls) -> WebSocketPair:
        """A new pair (Python Workers: ``client, server = WebSocketPair.new().object_values()``)."""
        return cls()

    def object_values(self) -> tuple[WebSocket, WebSocket]:
        """``(client, server)``: Pyodide's ``Object.values(pair)``."""
        return self._ends

    def __iter__(self) -> Iterator[WebSocket]:
        return iter(self._ends)

    def __getitem__(self, index: int) -> WebSocket:
        return self._ends[index]

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return "<durable.WebSocketPair>"


_MAX_AUTO_RESPONSE: Final = 2048


@final
@camel_aliases
class WebSocketRequestResponsePair:
    """An auto-response for ``ctx.set_web_socket_auto_response``: a text message equal to
    ``request`` is answered with ``response`` by the runtime, without waking the object.

    Raises:
        TypeError: ``request`` or ``response`` is not a ``str``.
    """

    __slots__ = ("_request", "_response")

    def __init__(self, request: str, response: str) -> None:
        for what, value in (("request", request), ("response", response)):
            if not isinstance(value, str):
                raise TypeError(f"WebSocketRequestResponsePair {what} must be a str, not {type(value).__name__}.")
        self._request = request
        self._response = response

    @property
    def request(self) -> str:
        """The text message that triggers the auto-response."""
        return self._request

    @property
    def response(self) -> str:
        """The text the runtime answers with."""
        return self._response

    def get_request(self) -> str:
        """``request`` (the spelling of Cloudflare's docs)."""
        return self._request

    def get_response(self) -> str:
        """``response`` (the spelling of Cloudflare's docs)."""
        return self._response

    def _check(self) -> None:
        for what, value in (("Request", self._request), ("Response", self._response)):
            size = len(value.encode("utf-8"))
            if size > _MAX_AUTO_RESPONSE:
                raise ValueError(
                    f"{what} cannot be larger than {_MAX_AUTO_RESPONSE} bytes. "
                    f"A {what.lower()} of size {size} was provided."
                )

    def __repr__(self) -> str:
        return f"WebSocketRequestResponsePair({self._request!r}, {self._response!r})"

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        getRequest = get_request
        getResponse = get_response


def remote_close(ws: WebSocket, code: int, reason: str | None, was_clean: bool) -> None:
    """The network beyond ``ws`` closed: pass it on to the other end (no validation of ``code``).

    ``was_clean=False`` is a connection lost without a Close frame: the other end sees workerd's
    ``(1006, "WebSocket disconnected without sending Close frame.", False)``. Used by the ASGI
    bridge and by ``durable.testing``.
    """
    if not was_clean:
        ws._disconnect()
        return
    if ws._closed_out or ws._gone:
        return
    ws._closed_out = True
    ws._emit((_CLOSE, code, reason or "", True))
    if ws._closed_in:
        ws._finished()
