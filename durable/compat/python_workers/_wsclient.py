"""Outbound WebSockets: ``js.WebSocket.new(url, protocols)``, as workerd's ``new WebSocket(url)``.

What workerd does (measured with miniflare 4, compatibility date 2026-04-07, against a local
``ws`` server, in a Worker and in a Durable Object):

- only ``ws:`` and ``wss:`` URLs; anything else, an invalid URL or a fragment is a ``SyntaxError``
  DOMException (``WebSocket Constructor: The url scheme must be ws or wss.``...), and so are
  repeated or invalid subprotocols;
- the socket starts ``CONNECTING`` (0); ``send()`` before ``open`` raises workerd's ``You must
  call one of accept() ...`` TypeError, and ``accept()`` is refused before ``open``;
- ``open``, then ``message`` events (text as ``str``; binary as a ``Blob``, or as ``bytes`` once
  ``binaryType = "arraybuffer"``), then ``close`` with the code and reason; ``protocol`` is the
  negotiated subprotocol after ``open`` (``None`` when there is none: JavaScript's ``null``);
- a Close started by the server is followed by an ``error`` event (``Network connection lost.``);
  a connection that drops gives ``close`` 1006 ``WebSocket disconnected without sending Close
  frame.``;
- a connection that cannot be established (refused, not a 101, ``close()`` while connecting)
  gives an ``error`` event, then ``close`` 1006 ``Failed to establish websocket connection``
  (``wasClean`` false).

The connection is one end of a :class:`durable.WebSocketPair`, accepted with ``accept()`` where
the socket is made: inside a Durable Object, its ``message`` and ``close`` listeners run as events
of the object (through its input gate), its sends wait behind the output gate, it keeps the object
from hibernating, and a reset of the object drops the connection, as for any socket the object
accepted. The other end is carried to the network by the ``websockets`` library's asyncio client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import durable
from durable._context import running_host
from durable._url import parse_url
from durable._util import unbuilt_safe_repr
from durable._websocket import remote_close, validate_close
from durable._wsbase import CloseEvent, ErrorEvent, MessageEvent, WebSocketClosed, WebSocketError, object_hooks

from ._forms import Blob
from .pyodide.ffi import JsException

__all__ = ["FAILED_REASON", "NOT_ACCEPTED", "JsWebSocket", "route_websockets", "routes"]

log = logging.getLogger("durable")

FAILED_REASON: Final = "Failed to establish websocket connection"
"""workerd's close reason (code 1006) when the connection could not be established."""

NOT_ACCEPTED: Final = (
    "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages."
)
_NETWORK_LOST: Final = "Network connection lost."
_INSTALL: Final = "js.WebSocket.new() needs the websockets package: pip install 'durable-objects[server]'"
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MAX_SIZE: Final = 32 << 20  # workerd's limit for a received message

_routes: dict[str, str] = {}
_tasks: set[asyncio.Task[None]] = set()  # the loop keeps tasks only weakly


def route_websockets(mapping: Mapping[str, str] | None = None) -> None:
    """Send outbound WebSockets for an origin to another one (a test hook); ``None`` clears.

    ``route_websockets({"wss://jetstream2.us-east.bsky.network": "ws://127.0.0.1:8765"})``
    makes ``js.WebSocket.new("wss://jetstream2.us-east.bsky.network/subscribe?x=1")`` connect to
    ``ws://127.0.0.1:8765/subscribe?x=1``; the socket's ``url`` stays the one given. Replaces
    the routes set before; :func:`durable.compat.python_workers.uninstall` clears them.
    """
    _routes.clear()
    for origin, target in (mapping or {}).items():
        _routes[_origin(origin)] = _origin(target)


def routes() -> dict[str, str]:
    """The routes set with :func:`route_websockets` (origin -> origin)."""
    return dict(_routes)


def _origin(url: str) -> str:
    parts = urlsplit(parse_url(url) or url)
    return f"{parts.scheme}://{parts.netloc}"


def _routed(url: str) -> str:
    parts = urlsplit(url)
    target = _routes.get(f"{parts.scheme}://{parts.netloc}")
    if target is None:
        return url
    new = urlsplit(target)
    return urlunsplit((new.scheme, new.netloc, parts.path, parts.query, ""))


def _syntax_error(message: str) -> JsException:
    return JsException("SyntaxError", f"WebSocket Constructor: {message}")


def _check(url: object, protocols: object) -> tuple[str, list[str]]:
    parsed = parse_url(str(url))
    if parsed is None:
        raise _syntax_error("The url is invalid.")
    parts = urlsplit(parsed)
    if parts.scheme not in ("ws", "wss"):
        raise _syntax_error("The url scheme must be ws or wss.")
    if "#" in parsed:
        raise _syntax_error("The url fragment must be empty.")
    if protocols is None:
        names: list[str] = []
    elif isinstance(protocols, str):
        names = [protocols]
    elif isinstance(protocols, Iterable):
        names = [str(name) for name in protocols]
    else:
        names = [str(protocols)]
    for name in names:
        if not _TOKEN.fullmatch(name):
            raise _syntax_error("One of the protocol header tokens is invalid.")
    if len(set(names)) != len(names):
        raise _syntax_error("The protocols header cannot have repeating values.")
    return parsed, names


def _js_error(exc: Exception) -> JsException:
    """A `durable.WebSocket` error as the JavaScript exception Pyodide raises for workerd's."""
    if isinstance(exc, WebSocketError) and not isinstance(exc, TypeError):
        return JsException("InvalidAccessError", str(exc))
    return JsException(type(exc).__name__, str(exc))


class _Event:
    """An event with only a type (``open``)."""

    __slots__ = ("target", "type")

    def __init__(self, target: JsWebSocket, type: str) -> None:
        self.target = target
        self.type = type

    def __repr__(self) -> str:
        return f"<Event {self.type}>"


class JsWebSocket:
    """A WebSocket opened with ``js.WebSocket.new(url, protocols)`` (see the module docstring).

    The JavaScript API with Pyodide's spellings: ``addEventListener``/``removeEventListener``
    (``"open"``, ``"message"``, ``"close"``, ``"error"``; plain or ``async`` listeners),
    ``send``, ``close``, ``accept``, ``readyState``, ``url``, ``protocol``, ``extensions``,
    ``binaryType``. Errors are ``pyodide.ffi.JsException`` with workerd's name and message.
    """

    CONNECTING: Final = 0
    OPEN: Final = 1
    CLOSING: Final = 2
    CLOSED: Final = 3

    def __init__(self, url: object, protocols: object = None) -> None:
        self.url, names = _check(url, protocols)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("js.WebSocket.new() is called from async code (a handler or a listener)") from None
        try:
            from websockets.asyncio.client import connect
        except ImportError:
            raise ModuleNotFoundError(_INSTALL) from None
        self.extensions = ""
        self._protocol: str | None = ""
        self._binary_type = "blob"
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._state = self.CONNECTING  # until open; then the socket's own
        self.server_closed = False
        self._connected = False
        local, remote = durable.WebSocketPair()
        self._socket, self._remote = local, remote
        # Accepted here, in the code that made it: inside a Durable Object the object owns it.
        local.accept()
        local.add_event_listener("message", self._on_message)
        local.add_event_listener("close", self._on_close)
        self._owner = object_hooks().standard_owner()
        host = running_host()
        gen = host.gen if host is not None else 0
        # Whether the object that made the socket still runs (not reset since).
        self._alive: Callable[[], bool] = lambda: host is None or host.gen == gen
        task = loop.create_task(self._run(connect, _routed(self.url), names), context=contextvars.Context())
        _tasks.add(task)
        task.add_done_callback(self._done)
        self._task = task

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        states = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")
        return f"<js.WebSocket {self.url} {states[self.readyState]}>"

    # -- state ---------------------------------------------------------------------------------

    @property
    def readyState(self) -> int:
        """``CONNECTING`` (0) until ``open``, then ``OPEN``, ``CLOSING``, ``CLOSED``."""
        if self._state != self.OPEN:
            return self._state
        return self._socket.ready_state

    @property
    def protocol(self) -> str | None:
        """The negotiated subprotocol: ``""`` before ``open``, ``None`` after it if there is none."""
        return self._protocol

    @property
    def binaryType(self) -> str:
        """``"blob"`` (binary messages as a ``Blob``) or ``"arraybuffer"`` (as ``bytes``)."""
        return self._binary_type

    @binaryType.setter
    def binaryType(self, value: str) -> None:
        if value in ("blob", "arraybuffer"):
            self._binary_type = value  # another value is ignored, as in workerd

    # -- listeners -----------------------------------------------------------------------------

    def addEventListener(self, type: str, listener: Callable[[Any], Any], options: Any = None) -> None:
        """Call ``listener(event)`` for each event of ``type`` (a listener is added once)."""
        listeners = self._listeners.setdefault(str(type), [])
        if listener not in listeners:
            listeners.append(listener)

    def removeEventListener(self, type: str, listener: Callable[[Any], Any], options: Any = None) -> None:
        """Remove a listener (nothing if it was not added)."""
        listeners = self._listeners.get(str(type), [])
        if listener in listeners:
            listeners.remove(listener)

    # -- sending -------------------------------------------------------------------------------

    def accept(self) -> None:
        """Nothing once open (the socket is accepted already); refused before ``open``."""
        if self._state == self.CONNECTING:
            raise JsException(
                "TypeError", "Websockets obtained from the 'new WebSocket()' constructor cannot call accept"
            )

    def send(self, message: Any) -> None:
        """Send a text (``str``) or binary (``bytes``, a buffer) message.

        Raises:
            pyodide.ffi.JsException: ``TypeError`` before ``open`` or after ``close()``.
        """
        if self._state == self.CONNECTING:
            raise JsException("TypeError", NOT_ACCEPTED)
        try:
            self._socket.send(message)
        except (TypeError, WebSocketError) as exc:
            raise _js_error(exc) from None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close with ``code`` and ``reason`` (the checks of ``durable.WebSocket.close``).

        While connecting, the connection attempt is abandoned: ``error``, then ``close`` 1006.
        """
        try:
            if self._state != self.CONNECTING:
                self._socket.close(code, reason)
                return
            validate_close(code, reason)
        except (TypeError, WebSocketError) as exc:
            raise _js_error(exc) from None
        self._state = self.OPEN  # workerd reports OPEN until the error event (measured)
        self._task.cancel()

    # -- events --------------------------------------------------------------------------------

    @property
    def _target(self) -> Any:
        """The events' ``target``: this socket (the event classes are durable's)."""
        return self

    def _fire(self, type: str, event: Any) -> None:
        """Deliver ``event`` to the listeners of ``type``: one event of the owning object, if any."""
        if not self._listeners.get(type) or not self._alive():
            return
        run = self._listeners_of(type, event)
        if self._owner is not None:
            self._owner.dispatch(self._socket, run)
        else:
            task = asyncio.ensure_future(run())
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)

    def _listeners_of(self, type: str, event: Any) -> Callable[[], Any]:
        async def run() -> None:
            for listener in list(self._listeners.get(type, ())):
                try:
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("durable: a WebSocket %s listener raised", type)

        return run

    async def _on_message(self, event: MessageEvent) -> None:
        data: Any = event.data
        if isinstance(data, bytes) and self._binary_type == "blob":
            data = Blob([data])
        await self._listeners_of("message", MessageEvent(self._target, data))()

    async def _on_close(self, event: CloseEvent) -> None:
        close = CloseEvent(self._target, event.code, event.reason, event.was_clean)
        await self._listeners_of("close", close)()
        if self.server_closed:
            self._fire("error", self._error_event("Error", _NETWORK_LOST))

    def _error_event(self, name: str, message: str) -> ErrorEvent:
        event = ErrorEvent(self._target, JsException(name, message))
        event.message = f"Uncaught {name}: {message}"
        return event

    def _failed(self, name: str, message: str) -> None:
        """The connection could not be established: ``error``, then ``close`` 1006."""
        self._connected = True  # it is over: only once
        self._state = self.CLOSED
        self._fire("error", self._error_event(name, message))
        self._fire("close", CloseEvent(self._target, 1006, FAILED_REASON, False))
        self._socket.network.disconnect()  # the object stops tracking the socket

    # -- the connection ------------------------------------------------------------------------

    def _done(self, task: asyncio.Task[None]) -> None:
        _tasks.discard(task)
        if task.cancelled() and not self._connected:
            self._failed("Error", _NETWORK_LOST)  # close() while connecting

    async def _run(self, connect: Any, url: str, protocols: list[str]) -> None:
        options: dict[str, Any] = {"compression": None, "max_size": _MAX_SIZE, "user_agent_header": None}
        if "proxy" in inspect.signature(connect).parameters:
            options["proxy"] = None
        try:
            conn = await connect(url, subprotocols=protocols or None, **options)
        except Exception as exc:
            self._failed(*_failure(exc))
            return
        if self._state != self.CONNECTING:  # close() raced with the handshake
            conn.transport.abort()
            self._failed("Error", _NETWORK_LOST)
            return
        self._connected = True
        self._protocol = conn.subprotocol
        self._state = self.OPEN
        self._fire("open", _Event(self, "open"))
        await _carry(conn, self._remote, self)


def _failure(exc: BaseException) -> tuple[str, str]:
    """workerd's error for a connection that could not be established."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return (
            "TypeError",
            "Failed to establish the WebSocket connection: expected server to reply with HTTP status code 101 "
            f"(switching protocols), but received {status} instead.",
        )
    if isinstance(exc, socket.gaierror):
        return "Error", f"internal error; reference = {secrets.token_hex(12)}"  # a DNS failure
    return "Error", _NETWORK_LOST


async def _carry(conn: Any, remote: durable.WebSocket, owner: JsWebSocket) -> None:
    """Carry messages between the network connection and ``remote``, the pair's network end."""
    from websockets.exceptions import ConnectionClosed

    remote.accept()
    remote.network.mark_remote()
    outgoing = asyncio.ensure_future(_send_out(conn, remote))
    try:
        while True:
            try:
                data = await conn.recv()
            except ConnectionClosed as closed:
                rcvd = closed.rcvd
                if rcvd is None:
                    remote_close(remote, 1006, None, False)
                else:
                    owner.server_closed = bool(closed.rcvd_then_sent)
                    remote_close(remote, int(rcvd.code), rcvd.reason, True)
                return
            with contextlib.suppress(TypeError):  # the object closed meanwhile: dropped
                remote.send(data)
    except BaseException:
        # Cancelled (its event loop ending: asyncio.run returning) or failed: the connection is
        # dropped now, not left to the garbage collector ("unclosed transport").
        conn.transport.abort()
        raise
    finally:
        await asyncio.sleep(0)  # let a Close the object just sent go out first
        if not outgoing.done():
            outgoing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await outgoing


async def _send_out(conn: Any, remote: durable.WebSocket) -> None:
    while True:
        try:
            data = await remote.receive()
        except WebSocketClosed as closed:
            if closed.code == 1006:
                conn.transport.abort()  # the object was reset: the connection is dropped
            else:
                with contextlib.suppress(Exception):
                    # 1005: a Close without a code, as the object sent it
                    await conn.close(None if closed.code == 1005 else closed.code, closed.reason)
            return
        try:
            await conn.send(data)
        except Exception:
            return
