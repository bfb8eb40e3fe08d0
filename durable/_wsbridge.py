"""The ASGI side of a WebSocket: carry an accepted upgrade between an ASGI server and a socket.

``durable.asgi`` runs the Worker's ``fetch`` for a ``websocket`` scope. When it answers
``Response(None, status=101, web_socket=client)``, :func:`bridge` accepts the ASGI connection
and joins it to ``client``: messages from the network are sent on ``client`` (so the object's
end receives them), and what the object sends comes out of ``client`` and goes to the network.

- ``websocket.disconnect`` for a connection dropped without a Close frame (see ``bridge``) becomes
  workerd's ``(1006, "WebSocket disconnected without sending Close frame.", False)`` in the
  object; any other code (1005 for a Close without a code, 1012 when the server shuts down, the
  client's own code) arrives as a clean close with that code and reason.
- A Close from the object becomes ``websocket.close`` with its code and reason (1000 when it had
  no code: ASGI cannot send a Close without one).
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
from ._websocket import WebSocket, WebSocketClosed, remote_close

__all__ = ["accept_headers", "bridge"]

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


async def bridge(ws: WebSocket, response: Response, receive: Receive, send: Send) -> None:
    """Accept the ASGI connection and carry messages between it and ``ws`` until both close."""
    protocol, extra = accept_headers(response)
    message: Message = {"type": "websocket.accept", "headers": extra}
    if protocol:
        message["subprotocol"] = protocol
    ws.accept()
    ws.network.mark_remote()
    await send(message)
    outgoing = asyncio.ensure_future(_pump_out(ws, send))
    try:
        while True:
            event = await receive()
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
                code = int(event.get("code", 1005))
                reason = str(event.get("reason") or "")
                # ASGI has no separate signal for a connection that ended without a Close
                # frame. uvicorn reports it as 1006 (its legacy `websockets` implementation) or
                # as 1005 with no "reason" key (its sans-I/O and wsproto implementations), while
                # the disconnect made from a received Close frame always carries its reason.
                if code == 1006 or (code == 1005 and "reason" not in event):
                    remote_close(ws, 1006, None, False)
                else:
                    remote_close(ws, code, reason, True)
                return
    finally:
        if not outgoing.done():
            outgoing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await outgoing


async def _pump_out(ws: WebSocket, send: Send) -> None:
    while True:
        try:
            data = await ws.receive()
        except WebSocketClosed as closed:
            code = closed.code if closed.code not in (1005, 1006) else 1000
            with contextlib.suppress(Exception):
                await send(
                    {"type": "websocket.close", "code": code, "reason": closed.reason if code == closed.code else ""}
                )
            return
        if isinstance(data, str):
            await send({"type": "websocket.send", "text": data})
        else:
            await send({"type": "websocket.send", "bytes": data})
