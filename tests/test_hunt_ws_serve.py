"""Bug hunt of WebSockets served by `durable serve`, compared with workerd (miniflare 4, 2026-04-07,
on a real port, driven by the same `websockets` client and raw sockets).

One server process serves every test (CI time).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
from test_serve import ServerProcess
from test_serve_ws import frame
from test_websocket_asgi import upgrade

APP = """
import asyncio

import durable
from durable.testing import hibernate


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.ROOM.get_by_name(request.url.rsplit("/", 2)[-2])
        if request.url.endswith("?slow"):
            await asyncio.sleep(0.4)
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


def first_close(url: str, room: str, data: bytes) -> bytes:
    """Upgrade a raw socket, send ``data``; the payload of the server's Close, the first frame it sends."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head, received = upgrade(sock, f"/{room}/ws")
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(data)
        while True:
            if len(received) >= 2 and (received[1] != 126 or len(received) >= 4):
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
        payload = await asyncio.to_thread(first_close, server.url, room, data)
        assert payload == struct.pack("!H", 1002) + description.encode()
        error = f"WebSocket protocol error; protocolError.statusCode = 1002; protocolError.description = {description}"
        assert await room_log(server.url, room, 1) == [["error", error]]


class TestClientClosesWorkerdReads:
    """A client's Close that the `websockets` parser refuses but workerd reads: any code (1004-1006,
    1015, 1016-2999, 999, 5000), a 1-byte payload, a 124-byte reason, a reason that is not
    UTF-8. workerd gives the object's close event the code and the reason (U+FFFD for bad bytes;
    1005 for no code) and echoes the payload (miniflare 4, 2026-04-07, raw frames on its port,
    a standard socket: e.g. ``Close(1000, b"a\\xff")`` answered ``88 04 03 e8 61 ff``, a 1-byte
    payload answered ``88 00``). `durable serve` failed the connection with Close(1002) (or 1007)
    and the object got a `web_socket_error` instead."""

    @pytest.mark.parametrize(
        ("payload", "echo", "logged"),
        [
            (struct.pack("!H", 1004), struct.pack("!H", 1004), [1004, "", True]),
            (struct.pack("!H", 999) + b"r", struct.pack("!H", 999) + b"r", [999, "r", True]),
            (struct.pack("!H", 5000), struct.pack("!H", 5000), [5000, "", True]),
            (struct.pack("!H", 1006) + b"r", struct.pack("!H", 1006) + b"r", [1006, "r", True]),
            (struct.pack("!H", 1015), struct.pack("!H", 1015), [1015, "", True]),
            (struct.pack("!H", 2999), struct.pack("!H", 2999), [2999, "", True]),
            (struct.pack("!H", 1005), b"", [1005, "", True]),
            (b"\x03", b"", [1005, "", True]),
            (struct.pack("!H", 1000) + b"r" * 124, struct.pack("!H", 1000) + b"r" * 124, [1000, "r" * 124, True]),
            (struct.pack("!H", 1000) + b"a\xff", struct.pack("!H", 1000) + b"a\xff", [1000, "a\ufffd", True]),
        ],
        ids=["1004", "999", "5000", "1006", "1015", "2999", "1005", "one-byte", "reason-124", "reason-not-utf8"],
    )
    async def test_close(self, server: ServerProcess, payload: bytes, echo: bytes, logged: list[object]) -> None:
        room = f"k{payload[:2].hex()}{len(payload)}"
        assert await asyncio.to_thread(first_close, server.url, room, frame(0x8, payload)) == echo
        assert await room_log(server.url, room, 1) == [logged]

    async def test_a_close_cut_in_pieces(self, server: ServerProcess) -> None:
        """A Close that arrives in pieces is held until whole, then read (999 passed on, as above)."""
        data = frame(0x8, struct.pack("!H", 999) + b"bye")

        def exchange() -> bytes:
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                head, received = upgrade(sock, "/kcut/ws")
                assert head.startswith(b"HTTP/1.1 101"), head
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for piece in (data[:1], data[1:3], data[3:7], data[7:]):
                    sock.sendall(piece)
                    time.sleep(0.02)  # (pieces, most likely read apart; the result is the same if not)
                while not received.endswith(b"EOF"):
                    received += sock.recv(4096) or b"EOF"
                return received

        assert await asyncio.to_thread(exchange) == bytes([0x88, 5]) + struct.pack("!H", 999) + b"byeEOF"
        assert await room_log(server.url, "kcut", 1) == [[999, "bye", True]]

    async def test_the_answer_to_the_objects_close(self, server: ServerProcess) -> None:
        """The client answers the object's ``close()`` with a code workerd passes on (999): the
        object's close event gets it (workerd gives it the code and reason of the client's
        answering Close, measured as above)."""

        def exchange() -> None:
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                head, received = upgrade(sock, "/kanswer/ws")
                assert head.startswith(b"HTTP/1.1 101"), head
                sock.sendall(frame(0x1, b"close:4000:bye"))
                while len(received) < 7:
                    received += sock.recv(4096)
                assert received[:7] == bytes([0x88, 5]) + struct.pack("!H", 4000) + b"bye"
                sock.sendall(frame(0x8, struct.pack("!H", 999) + b"ans"))
                while sock.recv(4096):
                    pass

        await asyncio.to_thread(exchange)
        assert await room_log(server.url, "kanswer", 1) == [[999, "ans", True]]

    async def test_two_closes_in_one_write(self, server: ServerProcess) -> None:
        """The first Close is the one read: workerd's object got ``(999, "first", True)`` for
        ``Close(999, "first")`` then ``Close(998, "second")`` in one write, and a standard socket
        echoed the first (miniflare 4, 2026-04-07, raw socket). `durable serve` gave the object
        the second's code and reason and echoed the second's payload."""
        data = frame(0x8, struct.pack("!H", 999) + b"first") + frame(0x8, struct.pack("!H", 998) + b"second")
        assert await asyncio.to_thread(first_close, server.url, "ktwo", data) == struct.pack("!H", 999) + b"first"
        assert await room_log(server.url, "ktwo", 1) == [[999, "first", True]]


class TestACloseInsideAFragmentedMessage:
    """A client's Close between the frames of a fragmented message: workerd reads it as the
    client's close, the unfinished message dropped (miniflare 4, 2026-04-07, raw socket,
    hibernatable and standard sockets: a text frame without FIN, then ``Close(999, "mid")``: the
    object's close event got ``(999, "mid", True)`` and no message, and a standard socket echoed
    ``Close(999, "mid")``; as the answer to the object's ``close(4000, "bye")``, ``(4001, "ans",
    True)``). `durable serve` failed the connection with ``Close(1002, "Incomplete fragmented
    message")`` and gave the object a `web_socket_error`: the `websockets` parser refuses it."""

    async def test_the_clients_close(self, server: ServerProcess) -> None:
        data = bytes([0x01]) + frame(0x1, b"ab")[1:] + frame(0x8, struct.pack("!H", 999) + b"mid")
        assert await asyncio.to_thread(first_close, server.url, "fmid", data) == struct.pack("!H", 999) + b"mid"
        assert await room_log(server.url, "fmid", 1) == [[999, "mid", True]]

    async def test_the_answer_to_the_objects_close(self, server: ServerProcess) -> None:
        def exchange() -> None:
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                head, received = upgrade(sock, "/fanswer/ws")
                assert head.startswith(b"HTTP/1.1 101"), head
                sock.sendall(frame(0x1, b"close:4000:bye"))
                while len(received) < 7:
                    received += sock.recv(4096)
                assert received[:7] == bytes([0x88, 5]) + struct.pack("!H", 4000) + b"bye"
                sock.sendall(bytes([0x01]) + frame(0x1, b"ab")[1:] + frame(0x8, struct.pack("!H", 4001) + b"ans"))
                while sock.recv(4096):
                    pass

        await asyncio.to_thread(exchange)
        assert await room_log(server.url, "fanswer", 1) == [[4001, "ans", True]]


async def test_frames_sent_before_the_101(server: ServerProcess) -> None:
    """A client that sends frames before the server's 101 has them read as sent (workerd read a
    message and a Close sent in the request's own write: miniflare 4, 2026-04-07, raw socket).
    The Close frames are followed from the end of the request, not from the 101: a message cut
    across it had bytes that look like a refused Close rewritten (CloseMender followed the
    stream from the middle of the message)."""
    # (the frame helper's mask is zero): read from its 7th byte, the payload is an empty frame and
    # a Close(999), which the mender took for the client's
    payload = b"y" * 6 + bytes([0x82, 0]) + frame(0x8, struct.pack("!H", 999))
    data = frame(0x2, payload)

    def exchange() -> bytes:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /kearly/ws?slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            time.sleep(0.1)  # (the Worker answers after 0.4 s: this part arrives before the 101)
            sock.sendall(data[:12])
            received = b""
            while b"\r\n\r\n" not in received:
                received += sock.recv(4096)
            assert received.startswith(b"HTTP/1.1 101"), received
            sock.sendall(data[12:])
            received = received.split(b"\r\n\r\n", 1)[1]
            while len(received) < 2 + len(payload):
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
            return received[: 2 + len(payload)]

    assert await asyncio.to_thread(exchange) == bytes([0x82, len(payload)]) + payload
