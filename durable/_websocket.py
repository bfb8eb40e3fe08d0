"""WebSockets: ``WebSocketPair``, ``WebSocket`` and ``WebSocketRequestResponsePair``.

A :class:`WebSocketPair` is two :class:`WebSocket` ends joined in process. What one end sends
arrives at the other on a later turn of the event loop, as over a network.

A ``WebSocket`` is the user's handle; it holds two collaborators, each with its own state and a
small named interface that the rest of the package uses (never the socket's private names):

- ``ws.network``, a :class:`~durable._wsnetwork.NetworkEnd`: this end of the connection, as the
  peer, the ASGI bridge and ``durable.testing`` see it: the close handshake, the frames sent
  through the output gate, the 32 MiB limit of a network end, a lost connection;
- ``ws.delivery``, a :class:`~durable._wsdelivery.Delivery`: who sees what arrives, according
  to how the end was accepted: the backlog before acceptance, ``accept()``'s listeners and
  ``receive()``, or the object's socket registry for ``ctx.accept_web_socket()``.

The socket itself keeps what the user sees: the checks of ``send``/``close``, the attachment,
``url`` and ``protocol``, and the hand-over of an end in a Response (:func:`hand_over_end`).

Layering: this module and its collaborators know nothing of objects, hosts or runtimes. Where a
socket needs its object (the output gate, the input gate for listeners), it asks the
:class:`ObjectHooks` that ``durable._hibernation`` registers with :func:`set_object_hooks`
(:mod:`durable._wsbase`) when it is imported.

Close semantics are Cloudflare's from compatibility date 2026-04-07
(``web_socket_auto_reply_to_close``): a Close frame is answered by the runtime itself, so the
receiving end is already ``CLOSED`` when its close event runs (unless it was accepted with
``allow_half_open=True``: then only its own ``close()`` answers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, final

from typing_extensions import Buffer

from ._aliases import camel_aliases
from ._codec import decode, encode
from ._util import as_usv_string, as_workerd_text, unbuilt_safe_repr
from ._v8size import V8_SIZE_FACTOR, v8_serialized_size
from ._wsbase import DISCONNECTED_REASON, MAX_MESSAGE_SIZE, TOO_LARGE_MESSAGE, TOO_LARGE_PREFIX, check_io, object_hooks
from ._wsbase import CloseEvent as CloseEvent
from ._wsbase import ErrorEvent as ErrorEvent
from ._wsbase import MessageEvent as MessageEvent
from ._wsbase import ObjectHooks as ObjectHooks
from ._wsbase import WebSocketClosed as WebSocketClosed
from ._wsbase import WebSocketError as WebSocketError
from ._wsbase import set_object_hooks as set_object_hooks
from ._wsdelivery import Delivery
from ._wsnetwork import NetworkEnd

__all__ = [
    "DISCONNECTED_REASON",
    "MAX_ATTACHMENT_SIZE",
    "MAX_MESSAGE_SIZE",
    "TOO_LARGE_MESSAGE",
    "TOO_LARGE_PREFIX",
    "CloseEvent",
    "ErrorEvent",
    "MessageEvent",
    "ObjectHooks",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "check_owner",
    "claim",
    "hand_over_end",
    "orphan",
    "remote_close",
    "set_object_hooks",
    "validate_auto_response",
    "validate_close",
]

MAX_ATTACHMENT_SIZE: Final = 16 * 1024
"""workerd's ``MAX_ATTACHMENT_SIZE``: bytes of an attachment's V8 serialization (``_v8size``)."""

_MAX_REASON_BYTES: Final = 123
_RESERVED_CODES: Final = frozenset({1004, 1005, 1006, 1015})
_NOT_ACCEPTED: Final = (
    "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages."
)


class ReasonWithoutCodeError(WebSocketError, TypeError):
    """``close(reason=...)`` without a code: workerd's DOMException (``InvalidAccessError``), so a
    :class:`durable.WebSocketError`; also a ``TypeError``, as ``durable`` raised it before."""


# ---------------------------------------------------------------------------------------------
# Validation shared with the ASGI bridge


def validate_close(code: int | None, reason: str | None) -> tuple[int | None, str]:
    """Check ``close(code, reason)`` as workerd does (non-pedantic mode); return them normalized.

    In workerd's order (measured with miniflare 4, 2026-04-07): the code, then the reason's length,
    then a reason without a code, so ``close(None, "é" * 62)`` is refused for its length."""
    if code is not None:
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"WebSocket close code must be an int, not {type(code).__name__}.")
        if not (1000 <= code <= 4999) or code in _RESERVED_CODES:
            raise WebSocketError(f"Invalid WebSocket close code: {code}.")
    if reason is None:
        return code, ""
    if not isinstance(reason, str):
        raise TypeError(f"WebSocket close reason must be a str, not {type(reason).__name__}.")
    reason = as_usv_string(reason)  # a lone surrogate arrives as one U+FFFD, as from workerd
    if len(reason.encode("utf-8")) > _MAX_REASON_BYTES:
        raise WebSocketError("WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.")
    if code is None:
        # Even an empty reason (workerd, measured with miniflare 4, 2026-04-07).
        raise ReasonWithoutCodeError("If you specify a WebSocket close reason, you must also specify a code.")
    return code, reason


def _check_message(message: object) -> str | bytes:
    if isinstance(message, str):
        return as_workerd_text(message)  # a lone surrogate arrives as U+FFFD per UTF-8 byte, as from workerd
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    # Any other bytes-like value (array.array, a NumPy array...) is sent as its bytes, as workerd
    # sends an ArrayBufferView's (measured with miniflare 4, 2026-04-07: Int32Array [1, 258]
    # arrives as the 8 bytes 1,0,0,0,2,1,0,0; a DataView over 2 of 3 bytes as those 2).
    try:
        view = memoryview(message)  # type: ignore[arg-type]  # anything: the caller's mistakes too
    except TypeError:
        raise TypeError(f"WebSocket send() takes a str or bytes, not {type(message).__name__}.") from None
    with view:
        return view.tobytes()


# ---------------------------------------------------------------------------------------------
# The socket


@final
@camel_aliases
class WebSocket:
    """One end of a :class:`WebSocketPair` (see the module docstring).

    Attributes:
        url: the URL of the upgrade request, when the socket came from one (else None).
        protocol: the negotiated subprotocol (``""`` if none).
        extensions: the negotiated extensions (always ``""``: no compression, as workerd).

    ``network`` and ``delivery`` are the package's own collaborators (see the module docstring),
    not part of the public API.

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

    __slots__ = ("__weakref__", "_attachment", "_home", "_io", "delivery", "extensions", "network", "protocol", "url")

    network: NetworkEnd
    delivery: Delivery
    _attachment: bytes | None
    _io: object | None  # the key of the object it belongs to (see check_owner), or None
    _home: asyncio.AbstractEventLoop | None  # the loop it was made on (see _away)
    url: str | None
    protocol: str
    extensions: str

    def __init__(self) -> None:
        raise TypeError("WebSocket ends are made by durable.WebSocketPair(), not constructed directly.")

    @classmethod
    def _make(cls) -> WebSocket:
        self = object.__new__(cls)
        self.delivery = delivery = Delivery(self)
        self.network = NetworkEnd(delivery)
        self._attachment = None
        self._io = object_hooks().made(self)
        try:
            self._home = asyncio.get_running_loop()
        except RuntimeError:
            self._home = None
        self.url = None
        self.protocol = ""
        self.extensions = ""
        return self

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        states = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")
        return f"<durable.WebSocket {states[self.network.ready_state]}>"

    # -- state ---------------------------------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """``OPEN`` (1), ``CLOSING`` (2: one side sent its Close) or ``CLOSED`` (3).

        Raises ``durable.WebSocketError`` in another Durable Object than the socket's (see
        :func:`check_owner`), as workerd does.
        """
        check_io(self._io)
        return self.network.ready_state

    @property
    def hibernatable(self) -> bool:
        """Whether this end was accepted with ``ctx.accept_web_socket()``."""
        return self.delivery.hibernatable

    @property
    def standard(self) -> bool:
        """Whether this end was accepted with ``accept()`` (the standard, non-hibernatable path)."""
        return self.delivery.standard

    def _away(self) -> asyncio.AbstractEventLoop | None:
        """The loop this end was made on, when that loop is running and the caller is not on it.

        An end returned by ``stub.fetch`` of a :class:`durable.BlockingRuntime` (or used from a
        worker thread of an async runtime) lives on the runtime's loop, where its peer's events
        run: its methods called from another thread run there (:func:`run_at_home`) instead of
        delivering frames to the object from a thread that has no loop, or the wrong one.
        """
        home = self._home
        if home is None:
            return None
        try:
            if asyncio.get_running_loop() is home:
                return None
        except RuntimeError:
            pass
        return home if home.is_running() else None

    # -- accepting -----------------------------------------------------------------------------

    def accept(self, allow_half_open: bool = False) -> None:
        """Accept this end on the standard path: events go to ``add_event_listener`` listeners.

        Inside a Durable Object the listeners run through the object's input gate and the socket
        keeps the object from hibernating. Accepting twice is allowed (as in workerd).

        By default the runtime answers the peer's Close itself, so the end is ``CLOSED`` when
        its ``"close"`` listeners run. With ``allow_half_open=True`` it does not: the end is
        ``CLOSING`` there, may still send, and the peer's connection ends with the Close of
        this end's own ``close()`` (as workerd's ``accept({allowHalfOpen: true})``).

        Raises:
            TypeError: the end was handed over in a Response, accepted with
                ``ctx.accept_web_socket()``, or accepted already and closed both ways (workerd's
                ``Can't accept() WebSocket that was already used in a response.``), or
                ``allow_half_open`` is not a ``bool`` (workerd's options object, such as
                ``{"allowHalfOpen": True}``, is spelled ``allow_half_open=True`` here).
            durable.WebSocketError: the end belongs to another Durable Object (:func:`check_owner`).
        """
        if not isinstance(allow_half_open, bool):
            raise TypeError(f"accept() allow_half_open must be a bool, not {type(allow_half_open).__name__}")
        check_io(self._io)
        if (home := self._away()) is not None:
            return run_at_home(home, self.accept, allow_half_open)
        if self.delivery.waiting:  # (set first: the Close of the backlog is read in accept())
            self.network.half_open = allow_half_open
        self.delivery.accept()
        claim(self)

    # -- listeners -----------------------------------------------------------------------------

    def add_event_listener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """Call ``listener(event)`` for each ``"message"``, ``"close"`` or ``"error"`` event.

        The listener may be a plain or an ``async`` function; one added twice runs once. A
        listener that raises ends the connection, as in workerd: the event's later listeners
        are skipped, this end gets an ``"error"`` event and the other end a 1006 close (an
        ``async`` listener whose coroutine raises is only logged). A listener removed while an
        event is dispatched does not see that event; one added then sees the next. Raises ``TypeError`` for
        another event type or a listener that is not callable.
        """
        self.delivery.add_listener(type, listener)

    def remove_event_listener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """Remove a listener added with :meth:`add_event_listener` (nothing if it was not added)."""
        self.delivery.remove_listener(type, listener)

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: str | Buffer) -> None:
        """Send a text (``str``) or binary message to the other end.

        A binary message is any bytes-like value (``bytes``, ``bytearray``, ``memoryview``,
        ``array.array``...), sent as its bytes, as workerd sends an ``ArrayBufferView``'s.

        Inside a Durable Object the message waits behind the output gate: it leaves once the
        writes made before it are durable, and never if their commit fails.

        Raises:
            TypeError: the end is not accepted yet, was closed with ``close()``, or ``message``
                is neither ``str`` nor bytes-like.
            durable.WebSocketError: the end belongs to another Durable Object (:func:`check_owner`).
        """
        check_io(self._io)
        if not self.delivery.accepted:
            raise TypeError(_NOT_ACCEPTED)
        if (home := self._away()) is not None:
            return run_at_home(home, self.send, message)
        self.network.send(_check_message(message))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send a Close frame (``code`` 1000-4999 except 1004/1005/1006/1015; ``reason`` <= 123 bytes).

        A second call, or a call after the other side closed, changes nothing (except on an end
        accepted with ``allow_half_open=True``, whose ``close()`` after the other side's is the
        answer that side gets). Waits behind the output gate like :meth:`send`.

        Raises:
            durable.WebSocketError: an invalid close code, a reason over 123 UTF-8 bytes, or a
                reason (even ``""``) without a code (that one is also a ``TypeError``).
            TypeError: the end is not accepted yet (workerd's message, as for :meth:`send`).
            durable.WebSocketError: the end belongs to another Durable Object (:func:`check_owner`).
        """
        check_io(self._io)
        if (home := self._away()) is not None:
            return run_at_home(home, self.close, code, reason)
        code, reason = validate_close(code, reason)
        if not self.delivery.accepted:
            # workerd checks the arguments first, then this (measured with miniflare 4, 2026-04-07).
            raise TypeError(_NOT_ACCEPTED)
        network = self.network
        network.used = True
        network.close(1005 if code is None else code, reason)

    # -- receiving -----------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """Wait for the next message (``str`` or ``bytes``) on an accepted end.

        Messages are queued here when no ``"message"`` listener is registered.

        Raises:
            durable.WebSocketClosed: the other side closed (``code``, ``reason``, ``was_clean``).
            RuntimeError: the end is not accepted with ``accept()``, or another task is already
                waiting in ``receive()`` on it.
        """
        if (home := self._away()) is not None:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.delivery.receive(), home))
        return await self.delivery.receive()

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        if self._away() is not None:
            return _iterate_away(self)
        return self.delivery.iterate()

    # -- attachments ---------------------------------------------------------------------------

    def serialize_attachment(self, value: object) -> None:
        """Keep a copy of ``value`` (a structured-clone value) with the socket; survives hibernation.

        Raises:
            durable.DataCloneError: ``value`` cannot be cloned.
            durable.WebSocketError: its V8 serialization, which workerd measures, takes more than
                16,384 bytes (``"a" * 16379`` is accepted, ``"a" * 16380`` is not).
        """
        data = encode(value)
        if len(data) * V8_SIZE_FACTOR > MAX_ATTACHMENT_SIZE:  # V8's size is at most that
            if (size := v8_serialized_size(value)) > MAX_ATTACHMENT_SIZE:
                raise WebSocketError(
                    f"A WebSocket 'attachment' cannot be larger than {MAX_ATTACHMENT_SIZE} bytes."
                    f"'attachment' was {size} bytes."
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


def run_at_home(home: asyncio.AbstractEventLoop, method: Callable[..., None], *args: Any) -> None:
    """Run ``method(*args)`` on ``home`` and wait for it, raising what it raises; a loop that
    stops meanwhile raises ``RuntimeError`` instead of waiting forever."""

    async def call() -> None:
        method(*args)

    done = asyncio.run_coroutine_threadsafe(call(), home)
    while True:
        try:
            return done.result(timeout=0.2)
        except concurrent.futures.TimeoutError:
            if not home.is_running():
                done.cancel()
                raise RuntimeError(
                    "The event loop this WebSocket belongs to (its runtime's) has stopped; "
                    "use the socket while the runtime is open."
                ) from None


async def _iterate_away(ws: WebSocket) -> AsyncIterator[str | bytes]:
    """``async for message in ws`` on another loop than the end's: :meth:`WebSocket.receive` each."""
    while True:
        try:
            message = await ws.receive()
        except WebSocketClosed:
            return
        yield message


def hand_over_end(ws: WebSocket) -> WebSocket:
    """Hand ``ws`` over in a Response: a fresh handle takes over, ``ws`` is dead from now on.

    The fresh handle gets the peer, the close state, the frames not delivered yet, ``url`` and
    ``protocol``. Called by ``Response`` when it leaves the ``fetch`` that returned it.

    Raises:
        TypeError: workerd's ``Can't return WebSocket ...`` messages (``ws`` was accepted or
            already handed over).
    """
    backlog = ws.delivery.release()
    other = WebSocket._make()
    ws.network.move_to(other.network)
    other.delivery.take_over(backlog)
    other.url, other.protocol = ws.url, ws.protocol
    other._io = None  # whoever receives the Response may use it (the caller's object, a Worker)
    # Handing an end over does not count as using the pair: workerd lets the object accept
    # the server end after building the Response (measured with workerd 2026-07-30).
    return other


def check_owner(ws: WebSocket) -> None:
    """Raise workerd's error when ``ws`` belongs to another Durable Object than the one running.

    A socket belongs to the object whose code made its pair, or, when made outside any object (a
    test body, a Worker) or received in a Response, to the object that accepts it (either way).
    workerd refuses ``send``, ``close``, ``accept``, ``readyState``, ``ctx.acceptWebSocket`` and
    ``ctx.getTags`` on it from another object with "Cannot perform I/O on behalf of a different
    Durable Object. ..." (measured with miniflare 4, 2026-04-07: a socket kept in a module global
    by one object and used by another); its attachment methods still work. Code outside any
    object may use any socket.

    Raises:
        durable.WebSocketError: workerd's message.
    """
    check_io(ws._io)


def claim(ws: WebSocket) -> None:
    """``ws`` was accepted: a socket that belongs to no object yet now belongs to the running one."""
    if ws._io is None:
        ws._io = object_hooks().io_owner()


_RESET: Final = object()
"""The owner of a socket whose object was reset (:func:`orphan`): the key of no object."""


def orphan(ws: WebSocket, made_by: object | None) -> None:
    """``ws`` was disconnected by a reset of its object, or (``made_by``: the object's key) made by
    its code and not handed over: no object's code may use it any more.

    workerd (measured with miniflare 4.20260426) refuses ``send``, ``close``, ``readyState`` and
    ``ctx.getTags`` with "Cannot perform I/O on behalf of a different Durable Object. ..." when
    the object's next instance reaches a socket of its reset one (kept in a module global), as
    for another object's socket; its attachment methods still work. Code outside any object may
    still use it.
    """
    if made_by is None or ws._io == made_by:
        ws._io = _RESET


@final
class WebSocketPair:
    """Two joined :class:`WebSocket` ends: ``client, server = durable.WebSocketPair()``.

    Also indexable (``pair[0]`` is the client end, ``pair[1]`` the server end), and
    ``WebSocketPair.new()`` (the Python Workers spelling) makes one too.
    """

    __slots__ = ("_ends",)

    def __init__(self) -> None:
        client, server = WebSocket._make(), WebSocket._make()
        client.network.peer, server.network.peer = server.network, client.network
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
        # workerd keeps both as UTF-8 (kj::String): a lone surrogate reads back as three U+FFFD
        # (miniflare 4, 2026-04-07: getWebSocketAutoResponse() after a pair ("ping", "a\ud800b")
        # gives the response "a\ufffd\ufffd\ufffdb"), as a sent message arrives.
        self._request = as_workerd_text(request)
        self._response = as_workerd_text(response)

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

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"WebSocketRequestResponsePair({self._request!r}, {self._response!r})"

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        getRequest = get_request
        getResponse = get_response


def validate_auto_response(pair: WebSocketRequestResponsePair) -> None:
    """Check ``ctx.set_web_socket_auto_response(pair)``'s sizes, as workerd does when it is set.

    Raises:
        ValueError: the request or the response is over 2,048 bytes (UTF-8).
    """
    for what, value in (("Request", pair.request), ("Response", pair.response)):
        size = len(value.encode("utf-8"))
        if size > _MAX_AUTO_RESPONSE:
            raise ValueError(
                f"{what} cannot be larger than {_MAX_AUTO_RESPONSE} bytes. "
                f"A {what.lower()} of size {size} was provided."
            )


def remote_close(ws: WebSocket, code: int, reason: str | None, was_clean: bool) -> None:
    """The network beyond ``ws`` closed: pass it on to the other end (no validation of ``code``).

    ``was_clean=False`` is a connection lost without a Close frame: the other end sees workerd's
    ``(1006, "WebSocket disconnected without sending Close frame.", False)``. Used by the ASGI
    bridge and by ``durable.testing``.
    """
    if not was_clean:
        ws.network.disconnect()
        return
    ws.network.close(code, reason or "")
