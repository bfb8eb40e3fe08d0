"""Review of this session's WebSocket changes (s17): ``asgi.websocket`` of the Python Workers
layer (workers-py ``process_websocket``) and the WebSocket core's error event and listener flag.

The SDK's app task waits on its queue for events of the server end; an end that dies without an
event (the object reset or evicted, the runtime closing) or that gets an ``error`` event instead
of a ``close`` one (a message over 32 MiB from the client) left it waiting for ever, and an app
that called ``receive()`` again after ``websocket.disconnect`` hung.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
import durable.testing
from durable.compat.python_workers import asgi

pytestmark = pytest.mark.usefixtures("python_workers_shims")


async def settle(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


def recorder(seen: list[Any], *, again: bool = False) -> Any:
    """An ASGI app that records what it receives until a disconnect (then once more with
    ``again``), and ``"end"`` or ``"cancelled"`` when it stops."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            while True:
                message = await receive()
                seen.append({k: v for k, v in message.items() if k != "bytes"})
                if message["type"] == "websocket.disconnect":
                    if again:
                        seen.append(await receive())
                    break
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("end")

    return app


class Obj(durable.DurableObject):
    seen: list[Any] = []

    async def fetch(self, request: durable.Request) -> Any:
        return await asgi.websocket(recorder(Obj.seen), request)

    async def boom(self) -> None:
        self.ctx.abort("reset")


def pending_apps() -> list[asyncio.Task[Any]]:
    return [t for t in asgi._background if not t.done()]


CONNECT = {"type": "websocket.connect"}
X = {"type": "websocket.receive", "text": "x"}


class TestAppTaskLifetime:
    async def test_receive_after_disconnect_gives_the_disconnect_again(self) -> None:
        """A second ``receive()`` after ``websocket.disconnect`` returns it again, as uvicorn's and
        hypercorn's do, instead of waiting for ever (the SDK's queue has nothing more)."""
        seen: list[Any] = []
        response = await asgi.websocket(recorder(seen, again=True), durable.Request("http://w/"))
        client = response.web_socket
        assert client is not None
        client.accept()
        client.close(1001, "bye")
        await settle()
        disconnect = {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}
        assert seen == [CONNECT, disconnect, disconnect, "end"]

    async def test_an_error_event_reaches_the_app_as_disconnect(self) -> None:
        """A message over 32 MiB from the client gives the server end an ``error`` event and no
        ``close`` (workerd's read loop fails; see _wsnetwork._refuse_too_large): the app gets
        ``websocket.disconnect`` with 1006, as an ASGI server reports an abnormal closure."""
        Obj.seen = []
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/ws") as ws:
                ws.send(b"\0" * ((32 << 20) + 1))
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1009
                await settle()
                assert Obj.seen == [CONNECT, {"type": "websocket.disconnect", "code": 1006, "reason": ""}, "end"]

    async def test_a_reset_ends_the_app(self) -> None:
        """``ctx.abort()`` drops the object's sockets accepted with ``accept()`` (the client sees
        1006) with no event on the object's end: the app's task, code of the reset instance, is
        cancelled instead of waiting for ever."""
        Obj.seen = []
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/ws") as ws:
                ws.send("x")
                await settle()
                with pytest.raises(Exception, match="reset"):
                    await stub.boom()
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1006
                await settle()
                assert Obj.seen == [CONNECT, X, "cancelled"]
                assert pending_apps() == []

    async def test_an_eviction_ends_the_app(self) -> None:
        """``durable.testing.evict()`` disconnects the sockets accepted with ``accept()`` (1006 at
        the client) with no event on the object's end: the app is cancelled, as for a reset."""
        Obj.seen = []
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/ws") as ws:
                ws.send("x")
                await settle()
                await durable.testing.evict(stub)
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1006
                await settle()
                assert Obj.seen == [CONNECT, X, "cancelled"]
                assert pending_apps() == []

    async def test_closing_the_runtime_ends_the_app(self) -> None:
        """The runtime's close sends the client 1001 from the object's end and gives that end no
        event: the app's task is cancelled (quietly) rather than left pending."""
        Obj.seen = []
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            connection = durable.testing.websocket(stub, "http://o/ws")
            ws = await connection.__aenter__()
            ws.send("x")
            await settle()
        await settle()
        assert Obj.seen == [CONNECT, X, "cancelled"]
        assert pending_apps() == []
        await connection.__aexit__(None, None, None)


class Listened(durable.DurableObject):
    seen: list[Any] = []

    async def fetch(self, request: durable.Request) -> Any:
        client, server = durable.WebSocketPair()
        server.accept()
        seen = Listened.seen
        server.add_event_listener("message", lambda e: seen.append(["message", len(e.data)]))
        server.add_event_listener("close", lambda e: seen.append(["close", e.code]))
        server.add_event_listener("error", lambda e: seen.append(["error", e.message, server.ready_state]))
        return durable.Response(None, status=101, web_socket=client)


class TestErrorEventMessage:
    async def test_a_message_over_32_mib_gives_uncaught_error(self) -> None:
        """The ``"error"`` event of an ``accept()``ed end whose read fails (a message over 32 MiB
        from the client) has workerd's ``message``, ``"Uncaught Error: "`` and the error's text;
        ``message``, then ``error`` with the end CLOSED, and no ``close`` event. Measured with
        miniflare 4 (compatibility date 2026-04-07; /tmp probe review-ws-toolarge.mjs): after a
        small message, ``["error", "Uncaught Error: WebSocket protocol error; protocolError.
        statusCode = 1009; protocolError.description = Message is too large", 3]`` (the client's
        compressed message, so no sizes: see ``_wsbase.TOO_LARGE_MESSAGE``); the client got 1009."""
        Listened.seen = []
        async with durable.Runtime() as rt:
            stub = rt.namespace(Listened).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/ws") as ws:
                ws.send("small")
                ws.send(b"\0" * ((32 << 20) + 1))
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1009
                await settle()
        text = "WebSocket protocol error; protocolError.statusCode = 1009; protocolError.description = "
        assert Listened.seen == [
            ["message", 5],
            ["error", "Uncaught Error: " + text + "Message is too large: 33554433 > 33554432", 3],
        ]
