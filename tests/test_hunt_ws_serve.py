"""Bug hunt of WebSockets served by `durable serve`, compared with workerd (miniflare 4, 2026-04-07,
on a real port, driven by the same `websockets` client and raw sockets).

One server process serves every test (CI time).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Iterator

import httpx
import pytest
from test_serve import ServerProcess
from test_serve_ws import frame
from test_websocket_asgi import upgrade

APP = """
import durable
from durable.testing import hibernate


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.ROOM.get_by_name(request.url.rsplit("/", 2)[-2])
        if request.url.endswith("/hibernate"):
            await hibernate(stub)
            return durable.Response("hibernated")
        return await stub.fetch(request)


class Room(durable.DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request):
        if request.url.endswith("/log"):
            return durable.Response.json(await self.ctx.storage.get("log") or [])
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        server.serialize_attachment({"user": "ada"})
        headers = {}
        offered = request.headers.get("Sec-WebSocket-Protocol")
        if offered:
            headers["Sec-WebSocket-Protocol"] = offered.split(",")[-1].strip()
        return durable.Response(None, status=101, web_socket=client, headers=headers)

    async def web_socket_message(self, ws, message):
        if isinstance(message, str) and message.startswith("close:"):
            _, code, reason = message.split(":", 2)
            ws.close(int(code), reason)
        elif message == "who":
            ws.send(ws.deserialize_attachment()["user"])
        else:
            ws.send(message)

    async def web_socket_close(self, ws, code, reason, was_clean):
        log = await self.ctx.storage.get("log") or []
        await self.ctx.storage.put("log", [*log, [code, reason, was_clean]])

    async def web_socket_error(self, ws, error):
        log = await self.ctx.storage.get("log") or []
        await self.ctx.storage.put("log", [*log, ["error", str(error)]])


bindings = {"ROOM": Room}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from ServerProcess.serving_source(tmp_path_factory.mktemp("hunt-ws-serve"), "hunt_ws_app.py", APP)


def close_exchange(url: str, room: str, message: bytes) -> bytes:
    """Upgrade a raw socket, send ``message``, read the server's Close frame, answer Close(1000)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head, received = upgrade(sock, f"/{room}/ws")
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(frame(0x1, message))
        while len(received) < 2 or len(received) < 2 + received[1]:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed without a Close frame: {received!r}"
            received += chunk
        sock.sendall(frame(0x8, struct.pack("!H", 1000)))
        return received


async def room_log(url: str, room: str, count: int) -> list[list[object]]:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(200):
            log: list[list[object]] = (await client.get(f"{url}/{room}/log")).json()
            if len(log) >= count:
                return log
            await asyncio.sleep(0.05)
    return log


class TestCloseCodesWebsocketsRefuses:
    async def test_close_2999_reaches_the_client(self, server: ServerProcess) -> None:
        """workerd's ``close()`` takes 1000-4999 but 1004-1006 and 1015, and sends the code:
        ``close(2999, "hi")`` put ``88 04 0b b7 "hi"`` on the wire (miniflare 4, 2026-04-07, a
        raw socket), and a `websockets` client answered Close(1002, "invalid status code"), which
        the object's close event got. `durable serve` sent nothing (`websockets` refuses to
        serialize 1016-2999 and the error was swallowed): the client waited for ever."""
        received = await asyncio.to_thread(close_exchange, server.url, "c2999", b"close:2999:hi")
        assert received == bytes([0x88, 4]) + struct.pack("!H", 2999) + b"hi"
        assert await room_log(server.url, "c2999", 1) == [[1000, "", True]]

    async def test_close_1016_without_a_reason(self, server: ServerProcess) -> None:
        received = await asyncio.to_thread(close_exchange, server.url, "c1016", b"close:1016:")
        assert received == bytes([0x88, 2]) + struct.pack("!H", 1016)

    async def test_a_websockets_client_answers_1002(self, server: ServerProcess) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(server.url.replace("http", "ws") + "/c2000/ws", compression=None) as ws:
            await ws.send("close:2000:")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        assert await room_log(server.url, "c2000", 1) == [[1002, "invalid status code", True]]

    async def test_usual_codes_unchanged(self, server: ServerProcess) -> None:
        received = await asyncio.to_thread(close_exchange, server.url, "c4999", b"close:4999:" + b"r" * 100)
        assert received == bytes([0x88, 102]) + struct.pack("!H", 4999) + b"r" * 100


class TestOverTheNetwork:
    async def test_subprotocol_auto_response_and_hibernation(self, server: ServerProcess) -> None:
        """As on workerd (miniflare 4, 2026-04-07, a `websockets` client): the subprotocol the
        object's 101 names is chosen; text and binary frames keep their type; `ping` is answered
        `pong` before and after hibernation; the attachment survives it."""
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        async with connect(
            server.url.replace("http", "ws") + "/h/ws",
            compression=None,
            subprotocols=[Subprotocol("a"), Subprotocol("b")],
        ) as ws:
            assert ws.subprotocol == "b"
            messages: list[str | bytes] = ["text", b"bin", b"", ""]
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send("ping")
            assert await ws.recv() == "pong"
            async with httpx.AsyncClient(timeout=10) as client:
                assert (await client.get(server.url + "/h/hibernate")).text == "hibernated"
            await ws.send("ping")
            assert await ws.recv() == "pong"
            await ws.send("who")
            assert await ws.recv() == "ada"
        assert json.loads(json.dumps(await room_log(server.url, "h", 1))) == [[1000, "", True]]


def refused_exchange(url: str, room: str, data: bytes) -> bytes:
    """Upgrade a raw socket, send ``data`` (frames the server refuses); the payload of its Close."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head, received = upgrade(sock, f"/{room}/ws")
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(data)
        while True:
            if len(received) >= 4:
                assert received[0] == 0x88, received
                start, size = (4, struct.unpack("!H", received[2:4])[0]) if received[1] == 126 else (2, received[1])
                if len(received) >= start + size:
                    return received[start : start + size]
            chunk = sock.recv(4096)
            assert chunk, f"connection closed without a Close frame: {received!r}"
            received += chunk


COMPRESSION_BIT = (
    "Received a WebSocket frame whose compression bit was set, but the compression extension was not "
    "negotiated for this connection."
)


class TestProtocolErrorsInWorkerdsWords:
    """A client that breaks the protocol gets a Close(1002) with workerd's description, and the
    object's ``web_socket_error`` quotes it (measured with miniflare 4, 2026-04-07, raw frames on
    its port, hibernatable and standard sockets alike). `durable serve` said it in the
    `websockets` parser's words ("expected a continuation frame", "invalid opcode", ...)."""

    @pytest.mark.parametrize(
        ("data", "description"),
        [
            (frame(0x1, b"a")[:1].replace(b"\x81", b"\x01") + frame(0x1, b"a")[1:] + frame(0x1, b"b"),
             "Missing continuation frame"),
            (frame(0x9, b"a")[:1].replace(b"\x89", b"\x09") + frame(0x9, b"a")[1:], "Received fragmented control frame"),
            (frame(0x3, b"a"), "Unknown opcode 3"),
            (frame(0xB, b"a"), "Unknown opcode 11"),
            (bytes([0xC1]) + frame(0x1, b"a")[1:], COMPRESSION_BIT),
            (bytes([0xA1]) + frame(0x1, b"a")[1:], "Received frame had RSV bits 2 or 3 set"),
            (frame(0x0, b"x"), "Unexpected continuation frame"),
        ],
        ids=["new-message-inside-fragmented", "fragmented-ping", "opcode-3", "opcode-11", "rsv1", "rsv2", "continuation"],
    )  # fmt: skip
    async def test_description(self, server: ServerProcess, data: bytes, description: str) -> None:
        room = f"p{abs(hash(description)) % 10**8}"
        payload = await asyncio.to_thread(refused_exchange, server.url, room, data)
        assert payload == struct.pack("!H", 1002) + description.encode()
        error = f"WebSocket protocol error; protocolError.statusCode = 1002; protocolError.description = {description}"
        assert await room_log(server.url, room, 1) == [["error", error]]
