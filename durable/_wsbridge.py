"""The ASGI side of a WebSocket: carry an accepted upgrade between an ASGI server and a socket.

``durable.asgi`` runs the Worker's ``fetch`` for a ``websocket`` scope. When it answers
``Response(None, status=101, web_socket=client)``, :func:`bridge` accepts the ASGI connection
and joins it to ``client``: messages from the network are sent on ``client`` (so the object's
end receives them), and what the object sends comes out of ``client`` and goes to the network.

- ``websocket.disconnect`` for a connection dropped without a Close frame (see ``bridge``) becomes
  workerd's ``(1006, "WebSocket disconnected without sending Close frame.", False)`` in the
  object; any other code (1005 for a Close without a code, 1012 when the server shuts down, the
  client's own code) arrives as a clean close with that code and reason.
- A Close from the object becomes ``websocket.close`` with its code and reason. Where the server
  passes on what the client sends until it answers that Close (:data:`CLIENT_CLOSE`: ``durable
  serve``), the client's messages still reach the object (``CLOSING`` then) and its answering
  Close gives the object's close event the client's code and reason, as on workerd; elsewhere
  the bridge answers the Close for the client, with the object's code and reason. A Close without a
  code goes out without one (the client sees 1005, as workerd's) where the server says it can
  send that (:data:`CLOSE_WITHOUT_CODE` in the scope's extensions: ``durable serve`` and
  ``durable.testing.websocket``); elsewhere as 1000, since an ASGI close carries a code.
- An object reset (or anything else that ends the socket abnormally, 1006) closes no Close frame:
  the bridge returns without ``websocket.close``, and the server drops the connection (uvicorn
  closes it), so the client sees 1006, as workerd's do, and can tell a crash from a clean close.
- A message over 32 MiB (workerd's limit for received messages) gives the object workerd's
  ``webSocketError`` (``durable._websocket.TOO_LARGE_MESSAGE``) and closes the connection with
  1009. Servers refuse those earlier when configured as ``durable serve`` configures uvicorn.

The bridge is owned by the ASGI server's connection task, not by the object's instance, so the
connection survives hibernation and evictions that keep sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._http import Headers, Response
from ._websocket import WebSocket, WebSocketClosed, WebSocketError, remote_close

__all__ = ["CLEAN_CLOSE", "CLIENT_CLOSE", "CLOSE_WITHOUT_CODE", "PROTOCOL_ERROR", "accept_headers", "bridge"]

PROTOCOL_ERROR = "durable.protocol_error"
"""A key of ``websocket.disconnect`` that ``durable serve``'s protocol adds when the client broke
the WebSocket protocol: workerd's error text, which the object gets as ``web_socket_error``."""

CLEAN_CLOSE = "durable.clean_close"
"""A key of ``websocket.disconnect`` that ``durable serve``'s protocol adds when the client's Close
frame ended the connection: a code of 1006 in it is the client's, not a lost connection."""

CLOSE_WITHOUT_CODE = "durable.websocket.close_without_code"
"""An ASGI scope extension: the server sends ``websocket.close`` with ``"code": None`` as a Close
frame without a status code (RFC 6455 5.5.1), which the client reads as 1005."""

CLIENT_CLOSE = "durable.websocket.client_close"
"""An ASGI scope extension: after the application's ``websocket.close``, the server goes on
delivering the client's messages and then its answering Close (``websocket.disconnect`` with the
client's code and reason; a connection lost first: 1005 without a reason), instead of ending the
application's side of the connection at once."""

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Headers of a 101 response that the ASGI server computes itself.
_HANDSHAKE_HEADERS = frozenset(
    {"connection", "upgrade", "sec-websocket-accept", "sec-websocket-extensions", "sec-websocket-protocol",
     "content-length", "transfer-encoding"}
)  # fmt: skip


def accept_headers(response: Response) -> tuple[str | None, list[tuple[bytes, bytes]]]:
    """The subprotocol and the extra headers of ``websocket.accept`` for a 101 ``response``."""
    headers: Headers = response.headers
    protocol = headers.get("sec-websocket-protocol")
    extra = [
        (name.encode("latin-1"), value.encode("utf-8"))
        for name, value in headers.multi_items()
        if name not in _HANDSHAKE_HEADERS
    ]
    return protocol, extra


async def bridge(ws: WebSocket, response: Response, receive: Receive, send: Send, scope: Message | None = None) -> None:
    """Accept the ASGI connection and carry messages between it and ``ws`` until both close.

    Returns without a ``websocket.close`` if ``ws`` ends abnormally (1006): the server then drops
    the connection (see the module docstring). ``scope``'s extensions tell whether the server can
    send a Close without a code (:data:`CLOSE_WITHOUT_CODE`) and passes on the client's answer to
    a Close (:data:`CLIENT_CLOSE`).
    """
    extensions = (scope.get("extensions") or {}) if scope is not None else {}
    no_code = CLOSE_WITHOUT_CODE in extensions
    protocol, extra = accept_headers(response)
    message: Message = {"type": "websocket.accept", "headers": extra}
    if protocol:
        message["subprotocol"] = protocol
    ws.accept()
    ws.network.mark_remote(answers_close=CLIENT_CLOSE in extensions)
    await send(message)
    # "receiving": this task waits on receive(), where _pump_out may cancel it to drop the
    # connection ("dropped"), when the object's end fails (1006).
    state: set[str] = set()
    outgoing = asyncio.ensure_future(_pump_out(ws, send, no_code, asyncio.current_task(), state))
    try:
        while True:
            state.add("receiving")
            try:
                event = await receive()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if "dropped" in state and task is not None and task.uncancel() == 0:
                    return  # the object's end failed: no Close frame, the server drops the connection
                raise
            finally:
                state.discard("receiving")
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                data: str | bytes | None = text if text is not None else event.get("bytes")
                if data is None:
                    continue
                # A message over 32 MiB is refused by ws itself (a network end): the object
                # gets workerd's error event and the close (1009) goes out through _pump_out.
                with contextlib.suppress(TypeError):  # closed from our side meanwhile: dropped
                    ws.send(data)
            elif kind == "websocket.disconnect":
                error = event.get(PROTOCOL_ERROR)
                if error is not None:
                    ws.network.fail(WebSocketError(str(error)))  # as workerd: an error event, no close
                    return
                code = int(event.get("code") or 1005)
                reason = str(event.get("reason") or "")
                # ASGI has no separate signal for a connection that ended without a Close
                # frame. uvicorn reports it as 1006 (its legacy `websockets` implementation) or
                # as 1005 with no "reason" key (its sans-I/O and wsproto implementations), while
                # the disconnect made from a received Close frame always carries its reason.
                if (code == 1006 and not event.get(CLEAN_CLOSE)) or (code == 1005 and "reason" not in event):
                    remote_close(ws, 1006, None, False)
                else:
                    remote_close(ws, code, reason, True)
                    # The server answered that Close: the connection is over. What the object
                    # still sends (an end accepted with allow_half_open=True) is dropped here,
                    # not kept unread in ws for as long as the object holds its end.
                    ws.network.gone = True
                return
    finally:
        if not outgoing.done():
            outgoing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await outgoing


async def _pump_out(ws: WebSocket, send: Send, no_code: bool, bridging: Any, state: set[str]) -> None:
    while True:
        try:
            data = await ws.receive()
        except WebSocketClosed as closed:
            if closed.code == 1006:
                # Ended abnormally (the object was reset): the connection is dropped, not closed.
                if "receiving" in state and bridging is not None:
                    state.add("dropped")
                    bridging.cancel()
                return
            code: int | None = closed.code
            if code == 1005:
                code = None if no_code else 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": closed.reason if code else ""})
            return
        if isinstance(data, str):
            await send({"type": "websocket.send", "text": data})
        else:
            await send({"type": "websocket.send", "bytes": data})
