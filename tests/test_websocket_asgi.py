"""WebSockets through durable.asgi_app in process, and over a real `durable serve` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable.testing import MockClock, hibernate, websocket

from helpers import settle

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "chat.py"

sys.path.insert(0, str(REPO / "examples"))
import chat  # noqa: E402

ECHO_APP = """
import durable

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/log"):
            return await self.env.ECHO.get_by_name("e").fetch(request)
        if request.headers.get("upgrade") != "websocket":
            return durable.Response("no upgrade here", status=404)
        if "/nows" in request.url:
            return durable.Response("not a socket", status=403, headers={"x-why": "test"})
        return await self.env.ECHO.get_by_name("e").fetch(request)

class Echo(durable.DurableObject):
    async def fetch(self, request):
        if request.url.endswith("/log"):
            return durable.Response.json(await self.ctx.storage.get("log") or [])
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        headers = {}
        if request.headers.get("sec-websocket-protocol"):
            headers["sec-websocket-protocol"] = request.headers["sec-websocket-protocol"].split(",")[0].strip()
        return durable.Response(None, status=101, web_socket=client, headers=headers)

    async def web_socket_message(self, ws, message):
        if message == "abort":
            self.ctx.abort("asked to")
        elif message == "close":
            ws.close()
        elif isinstance(message, bytes):
            ws.send(f"bytes:{len(message)}")
        else:
            ws.send(f"text:{message[:20]}")

    async def web_socket_close(self, ws, code, reason, was_clean):
        log = await self.ctx.storage.get("log") or []
        log.append([code, reason, was_clean])
        await self.ctx.storage.put("log", log)

    async def web_socket_error(self, ws, error):
        log = await self.ctx.storage.get("log") or []
        log.append(["error", str(error)])
        await self.ctx.storage.put("log", log)

bindings = {"ECHO": Echo}
"""

GREETER_APP = """
import asyncio
import durable

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.GREETER.get_by_name("g").fetch(request)

class Greeter(durable.DurableObject):
    async def fetch(self, request):
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        server.send("welcome")
        await self.ctx.storage.put("seen", True)
        server.send("history")
        await asyncio.sleep(0)
        server.send(b"bin")
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws, message):
        ws.send("echo " + message)

bindings = {"GREETER": Greeter}
"""


CLOSING_APP = """
import durable

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOM.get_by_name("r").fetch(request)

class Room(durable.DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.log = []

    async def fetch(self, request):
        if request.url.endswith("/log"):
            return durable.Response.json(self.log)
        client, server = durable.WebSocketPair()
        if request.url.endswith("?std"):
            server.accept()
            server.add_event_listener("message", lambda event: self.web_socket_message(server, event.data))
            server.add_event_listener(
                "close", lambda event: self.web_socket_close(server, event.code, event.reason, event.was_clean)
            )
        else:
            self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    def web_socket_message(self, ws, message):
        self.log.append(["msg", message, ws.ready_state])
        if message == "close":
            ws.close(4000, "server")

    def web_socket_close(self, ws, code, reason, was_clean):
        self.log.append(["close", code, reason, was_clean])

bindings = {"ROOM": Room}
"""


def chat_app(rt: durable.Runtime) -> Any:
    rt.namespace(chat.ChatServer, name="CHAT")
    return durable.asgi_app(chat.Worker, rt)


class TestInProcess:
    async def test_chat_two_clients(self) -> None:
        """Two in-process clients of the chat example see each other's messages and history."""
        async with durable.Runtime() as rt:
            app = chat_app(rt)
            async with websocket(app, "http://chat/ws?room=a&user=ada") as ada:
                assert json.loads(await ada.receive()) == {"type": "history", "messages": []}
                async with websocket(app, "http://chat/ws?room=a&user=bob") as bob:
                    assert json.loads(await bob.receive())["type"] == "history"
                    assert json.loads(await ada.receive()) == {"type": "join", "user": "bob"}
                    bob.send(json.dumps({"text": "hello"}))
                    for ws in (ada, bob):
                        got = json.loads(await ws.receive())
                        assert (got["type"], got["user"], got["text"]) == ("message", "bob", "hello")
                assert json.loads(await ada.receive()) == {"type": "leave", "user": "bob"}
                ada.send("ping")
                assert await ada.receive() == "pong"
                ada.send("not json")
                assert json.loads(await ada.receive())["type"] == "error"
            async with websocket(app, "http://chat/ws?room=a&user=cy") as cy:
                history = json.loads(await cy.receive())["messages"]
                assert [(m["user"], m["text"]) for m in history] == [("bob", "hello")]
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as client:
                page = await client.get("/")
                assert page.status_code == 200 and "new WebSocket" in page.text
                assert (await client.get("/ws")).status_code == 426
                assert [m["text"] for m in (await client.get("/history?room=a")).json()] == ["hello"]

    async def test_chat_rooms_are_tags(self) -> None:
        """A message reaches only the sockets tagged with its room."""
        async with durable.Runtime() as rt:
            app = chat_app(rt)
            async with (
                websocket(app, "http://chat/ws?room=a&user=ada") as ada,
                websocket(app, "http://chat/ws?room=b&user=bob") as bob,
            ):
                await ada.receive()
                await bob.receive()
                bob.send(json.dumps({"text": "only b"}))
                assert json.loads(await bob.receive())["text"] == "only b"
                ada.send(json.dumps({"text": "only a"}))
                assert json.loads(await ada.receive())["text"] == "only a"

    async def test_chat_survives_hibernation(self) -> None:
        """After hibernation the user's name comes back from the attachment and history from SQL."""
        clock = MockClock(start=1_700_000_000)
        async with durable.Runtime(clock=clock) as rt:
            app = chat_app(rt)
            stub = rt.env.CHAT.get_by_name("chat")
            async with websocket(app, "http://chat/ws?room=a&user=ada") as ada:
                await ada.receive()
                await clock.advance(10)  # hibernated
                await hibernate(stub)  # (already hibernated: nothing left to drop)
                ada.send(json.dumps({"text": "still here"}))
                got = json.loads(await ada.receive())
                assert (got["user"], got["text"], got["at"]) == ("ada", "still here", 1_700_000_010_000)

    async def test_subprotocol_and_refusal(self, tmp_path: Path) -> None:
        """The 101's Sec-WebSocket-Protocol is the accepted subprotocol; a non-101 answer refuses."""
        namespace: dict[str, Any] = {}
        exec(compile(ECHO_APP, "echo_app", "exec"), namespace)
        async with durable.Runtime() as rt:
            rt.namespace(namespace["Echo"], name="ECHO")
            app = durable.asgi_app(namespace["Worker"], rt)
            async with websocket(app, "http://echo/", protocols=["chat.v1", "chat.v0"]) as ws:
                assert ws.protocol == "chat.v1"
                ws.send(b"abc")
                assert await ws.receive() == "bytes:3"
            # One name may be given as a string (as JavaScript's new WebSocket(url, "chat")), and
            # headers as pairs, as Request takes them.
            async with websocket(app, "http://echo/", protocols="chat", headers=[("X-Extra", "1")]) as ws:
                assert ws.protocol == "chat"
            with pytest.raises(TypeError, match="subprotocol names"):
                async with websocket(app, "http://echo/", protocols=["two words"]):
                    pass
            with pytest.raises(durable.WebSocketError) as info:
                async with websocket(app, "http://echo/nows"):
                    pass
            assert info.value.status == 403  # type: ignore[attr-defined]
            assert info.value.body == b"not a socket"  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("disconnect", "expected"),
        [
            ({"code": 1006}, [1006, "WebSocket disconnected without sending Close frame.", False]),
            ({"code": 1005}, [1006, "WebSocket disconnected without sending Close frame.", False]),
            ({"code": 1005, "reason": ""}, [1005, "", True]),
            ({"code": 4000, "reason": "done"}, [4000, "done", True]),
            ({"code": 1012}, [1012, "", True]),
        ],
    )
    async def test_disconnect_codes(self, disconnect: dict[str, Any], expected: list[Any]) -> None:
        """ASGI disconnects map to the object's close: a drop (1006, or 1005 without a reason key) is workerd's 1006."""
        namespace: dict[str, Any] = {}
        exec(compile(ECHO_APP, "echo_app", "exec"), namespace)
        async with durable.Runtime() as rt:
            rt.namespace(namespace["Echo"], name="ECHO")
            app = durable.asgi_app(namespace["Worker"], rt)
            inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            sent: list[dict[str, Any]] = []
            for message in ({"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}):
                inbox.put_nowait(message)

            async def send(message: Any) -> None:
                sent.append(dict(message))
                if message["type"] == "websocket.send":
                    inbox.put_nowait({"type": "websocket.disconnect", **disconnect})

            scope = {
                "type": "websocket",
                "scheme": "ws",
                "path": "/",
                "headers": [(b"host", b"echo"), (b"upgrade", b"websocket")],
            }
            await asyncio.wait_for(app(scope, inbox.get, send), 5)
            await settle()
            log = await (await rt.env.ECHO.get_by_name("e").fetch("http://echo/log")).json()
        assert [m["type"] for m in sent[:2]] == ["websocket.accept", "websocket.send"]
        assert log == [expected]

    async def test_reset_drops_the_connection_and_close_without_code_is_1005(self, tmp_path: Path) -> None:
        """Through asgi_app, as on workerd: a reset object's socket ends the connection without a
        Close frame (1006, not clean), and ``ws.close()`` without a code reaches the client as 1005."""
        namespace: dict[str, Any] = {}
        exec(compile(ECHO_APP, "echo_app", "exec"), namespace)
        async with durable.Runtime() as rt:
            rt.namespace(namespace["Echo"], name="ECHO")
            app = durable.asgi_app(namespace["Worker"], rt)
            for message, expected in [("abort", (1006, False)), ("close", (1005, True))]:
                async with websocket(app, "http://echo/") as ws:
                    ws.send(message)
                    with pytest.raises(durable.WebSocketClosed) as closed:
                        await ws.receive()
                    assert (closed.value.code, closed.value.was_clean) == expected
                    if message == "abort":
                        assert closed.value.reason == "WebSocket disconnected without sending Close frame."

    async def test_worker_raising_on_upgrade(self, caplog: pytest.LogCaptureFixture) -> None:
        """A Worker that raises on an upgrade refuses it with 500 (and the error is logged)."""

        class Broken(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                raise ValueError("no sockets today")

        async with durable.Runtime() as rt:
            with pytest.raises(durable.WebSocketError) as info:
                async with websocket(durable.asgi_app(Broken, rt), "http://x/"):
                    pass
        assert info.value.status == 500  # type: ignore[attr-defined]
        assert "no sockets today" in caplog.text


# ---------------------------------------------------------------------------------------------
# A real server


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.ws_url = url.replace("http://", "ws://")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(app: Path) -> Server:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "serve", str(app), "--port", "0", "--in-memory", "--log-level", "warning"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http://" in line, line
        return Server(proc, line.split(" on ", 1)[1].split()[0])

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def upgrade(sock: socket.socket, path: str = "/") -> tuple[bytes, bytes]:
    """Send a WebSocket upgrade request for ``path`` on a raw socket; the response's head, and
    what the server sent after it."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, rest = received.split(b"\r\n\r\n", 1)
    return head, rest


def echo_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo_app.py"
    path.write_text(ECHO_APP)
    return path


async def wait_for_log(url: str, count: int) -> list[Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.monotonic() + 10
        while True:
            log: list[Any] = (await client.get(url + "/log")).json()
            if len(log) >= count or time.monotonic() > deadline:
                return log
            await asyncio.sleep(0.05)


class TestServe:
    async def test_chat_over_a_real_server(self, serve: Any) -> None:
        """Two websockets-library clients chat through `durable serve examples/chat.py`."""
        from websockets.asyncio.client import connect

        server = serve(CHAT)
        async with (
            connect(server.ws_url + "/ws?room=r&user=ada") as ada,
            connect(server.ws_url + "/ws?room=r&user=bob") as bob,
        ):
            assert json.loads(await ada.recv())["type"] == "history"
            assert json.loads(await bob.recv())["type"] == "history"
            assert json.loads(await ada.recv()) == {"type": "join", "user": "bob"}
            await ada.send(json.dumps({"text": "hi bob"}))
            for ws in (ada, bob):
                got = json.loads(await ws.recv())
                assert (got["user"], got["text"]) == ("ada", "hi bob")
            await bob.send("ping")
            assert await bob.recv() == "pong"
            # workerd negotiates permessage-deflate from compatibility date 2023-08-15 (measured
            # with miniflare 4, 2026-04-07: "permessage-deflate; client_max_window_bits=15" for
            # the websockets client's offer), and the messages above went compressed.
            assert ada.response is not None
            assert "permessage-deflate" in (ada.response.headers.get("sec-websocket-extensions") or "")

    async def test_large_messages_and_lost_connection(self, serve: Any, tmp_path: Path) -> None:
        """A 20 MiB message passes, 33 MiB is refused with 1009, and a dropped TCP connection gives 1006."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        server = serve(echo_file(tmp_path))
        async with connect(server.ws_url + "/", max_size=None, compression=None) as ws:
            await ws.send(b"x" * (20 << 20))
            assert await ws.recv() == "bytes:20971520"
            await ws.send("y" * (20 << 20))
            assert await ws.recv() == "text:" + "y" * 20
        # workerd (miniflare 4, 2026-04-07) names the sizes in the close reason and the error:
        # the frame's and what the message may still hold ("20971520 > 12582912" for a second
        # 20 MiB fragment).
        too_large = "Message is too large: 34603008 > 33554432"
        async with connect(server.ws_url + "/", max_size=None, compression=None) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(b"x" * (33 << 20))
                await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1009, too_large)
        async with connect(server.ws_url + "/", max_size=None, compression=None) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send([b"x" * (20 << 20), b"y" * (20 << 20)])  # two fragments
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.reason == "Message is too large: 20971520 > 12582912"
        ws = await connect(server.ws_url + "/", compression=None)
        await ws.send("hello")
        assert await ws.recv() == "text:hello"
        ws.transport.abort()  # the TCP connection drops without a Close frame
        # Four entries by then: the 1000 close, the errors of the messages too large (as workerd's
        # webSocketError, not a close), and this one, logged a little later.
        log = await wait_for_log(server.url, 4)
        assert [1006, "WebSocket disconnected without sending Close frame.", False] in log
        assert ["error", durable._websocket.TOO_LARGE_PREFIX + too_large] in log
        assert ["error", durable._websocket.TOO_LARGE_PREFIX + "Message is too large: 20971520 > 12582912"] in log
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.ws_url + "/nows")
        assert refused.value.response.status_code == 403
        assert refused.value.response.body == b"not a socket"

    async def test_reset_drops_the_connection_and_close_without_code_is_1005(self, serve: Any, tmp_path: Path) -> None:
        """As on workerd: an object reset drops its clients' connections (no Close frame: 1006),
        and ``ws.close()`` without a code sends a Close without a code (1005), not 1000."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        server = serve(echo_file(tmp_path))
        async with connect(server.ws_url + "/", compression=None) as ws:
            await ws.send("close")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1005
        log = await wait_for_log(server.url, 1)
        assert log == [[1005, "", True]]  # the client's answering Close, without a code too
        async with connect(server.ws_url + "/", compression=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "text:hello"
            await ws.send("abort")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is None and closed.value.sent is None  # no Close frame either way
            assert ws.close_code == 1006

    async def test_a_broken_protocol_is_an_error_event(self, serve: Any, tmp_path: Path) -> None:
        """A client that breaks the protocol (a continuation frame with nothing to continue):
        the object gets workerd's webSocketError (measured with miniflare), not a close."""
        from websockets.asyncio.client import connect

        server = serve(echo_file(tmp_path))
        async with connect(server.ws_url + "/", compression=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "text:hello"
            # A masked continuation frame (opcode 0, FIN) with no message before it.
            ws.transport.write(bytes([0x80, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2]))
            with pytest.raises(Exception):  # noqa: B017 - the server closes with 1002
                await asyncio.wait_for(ws.recv(), 10)
        log = await wait_for_log(server.url, 1)
        assert log == [
            [
                "error",
                "WebSocket protocol error; protocolError.statusCode = 1002; "
                "protocolError.description = Unexpected continuation frame",
            ]
        ]

    async def test_too_large_message_closes_without_a_reset(self, serve: Any, tmp_path: Path) -> None:
        """A client still sending a message over 32 MiB gets the 1009 Close, then EOF: no TCP reset."""
        server = serve(echo_file(tmp_path))
        host, port = server.url.removeprefix("http://").rsplit(":", 1)

        def exchange() -> bytes:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                head, _ = upgrade(sock)
                assert head.startswith(b"HTTP/1.1 101"), head
                # A client sending a 33 MiB message: the server refuses it at the header, while
                # the client is still sending; the client answers the Close after its message.
                mask = b"\0" * 4  # payload bytes stay as they are
                sock.sendall(bytes([0x82, 0xFF]) + struct.pack("!Q", 33 << 20) + mask + b"x" * (33 << 20))
                received = sock.recv(2 + 125)  # ConnectionResetError here (or in sendall) was the bug
                sock.sendall(bytes([0x88, 0x82]) + mask + struct.pack("!H", 1009))
                while chunk := sock.recv(65536):
                    received += chunk
                return received

        received = await asyncio.to_thread(exchange)
        assert received[:2] == bytes([0x88, len(received) - 2])  # one Close frame, then EOF
        assert struct.unpack("!H", received[2:4]) == (1009,)

    @pytest.mark.parametrize("path", ["/", "/?std"])
    async def test_the_clients_answer_to_a_server_close(self, serve: Any, tmp_path: Path, path: str) -> None:
        """After the object's ``close()``, what the client sends until it answers still reaches the
        object (its socket ``CLOSING``), and the close event gets the client's own code and reason.

        Measured with miniflare 4 (compatibility date 2026-04-07) on a real port, hibernatable and
        standard sockets alike: messages sent after the client read the server's Close(4000,
        "srv") reached ``webSocketMessage`` with ``readyState`` 2, then ``webSocketClose`` got the
        client's Close(4000, "") as ``(4000, "", true)``. uvicorn alone discards those messages
        and reports the object's own code and reason at once.
        """
        app = tmp_path / "closing_app.py"
        app.write_text(CLOSING_APP)
        server = serve(app)
        host, port = server.url.removeprefix("http://").rsplit(":", 1)

        def frame(opcode: int, payload: bytes) -> bytes:  # one masked frame (a zero mask)
            return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0" * 4 + payload

        def exchange() -> bytes:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                head, received = upgrade(sock, path)
                assert head.startswith(b"HTTP/1.1 101"), head
                sock.sendall(frame(0x1, b"close") + frame(0x1, b"m2"))
                while len(received) < 2 or len(received) < 2 + received[1]:
                    received += sock.recv(4096)  # the server's Close
                sock.sendall(frame(0x1, b"m3"))  # sent after the client read that Close
                sock.sendall(frame(0x8, struct.pack("!H", 4001) + b"mine"))
                while chunk := sock.recv(4096):
                    received += chunk
                return received

        received = await asyncio.to_thread(exchange)
        assert received == bytes([0x88, 8]) + struct.pack("!H", 4000) + b"server"  # then EOF
        log = await wait_for_log(server.url, 4)
        assert log == [["msg", "close", 1], ["msg", "m2", 2], ["msg", "m3", 2], ["close", 4001, "mine", True]]

    async def test_a_client_gone_instead_of_answering_a_server_close(self, serve: Any, tmp_path: Path) -> None:
        """A client that reads the object's Close and drops the connection without answering:
        the object's close event gets 1006, not its own code back (measured with miniflare 4,
        2026-04-07, on a real port: ``(1006, "WebSocket disconnected without sending Close
        frame.", false)`` for hibernatable and standard sockets)."""
        app = tmp_path / "closing_app.py"
        app.write_text(CLOSING_APP)
        server = serve(app)
        host, port = server.url.removeprefix("http://").rsplit(":", 1)

        def exchange() -> bytes:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                _, received = upgrade(sock)
                sock.sendall(bytes([0x81, 0x85]) + b"\0" * 4 + b"close")
                while len(received) < 2 or len(received) < 2 + received[1]:
                    received += sock.recv(4096)  # the server's Close; then the socket closes unanswered
                return received

        assert await asyncio.to_thread(exchange) == bytes([0x88, 8]) + struct.pack("!H", 4000) + b"server"
        log = await wait_for_log(server.url, 2)
        assert log == [
            ["msg", "close", 1],
            ["close", 1006, "WebSocket disconnected without sending Close frame.", False],
        ]

    async def test_messages_sent_before_the_101(self, serve: Any, tmp_path: Path) -> None:
        """What the object sends before returning the 101 reaches a real client first, in order."""
        from websockets.asyncio.client import connect

        app = tmp_path / "greeter_app.py"
        app.write_text(GREETER_APP)
        server = serve(app)
        async with connect(server.ws_url + "/", compression=None) as ws:
            assert [await ws.recv() for _ in range(3)] == ["welcome", "history", b"bin"]
            await ws.send("hi")
            assert await ws.recv() == "echo hi"

    async def test_shutdown_closes_with_1012(self, serve: Any, tmp_path: Path) -> None:
        """SIGTERM stops the server; open sockets are closed with 1012."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        server = serve(echo_file(tmp_path))
        async with connect(server.ws_url + "/", compression=None) as ws:
            await ws.send("hi")
            assert await ws.recv() == "text:hi"
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert await asyncio.to_thread(server.proc.wait, 15) == 0
