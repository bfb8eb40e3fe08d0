"""Hostile and broken clients against `durable.asgi_app` and `durable serve`: nothing hangs the
server, every bad input gets a clear answer. Timeouts here are hang guards, never measurements."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve import ServerProcess, serve, write_app  # noqa: F401 - the fixture, shared

import durable
from durable.asgi import asgi_app

HANG_GUARD = 10.0

STREAMS_APP = """
import asyncio
import durable

state = {"pulls": 0, "closed": 0}

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[3]
        if path == "state":
            return durable.Response.json(state)
        if path == "endless":  # never waits: a send to a gone client must not spin the loop
            async def endless():
                try:
                    while True:
                        state["pulls"] += 1
                        yield b"x" * 65536
                finally:
                    state["closed"] += 1
            return durable.Response(endless())
        if path == "events":  # server-sent events, one every 10 ms
            async def events():
                try:
                    while True:
                        state["pulls"] += 1
                        yield b"data: tick\\n\\n"
                        await asyncio.sleep(0.01)
                finally:
                    state["closed"] += 1
            return durable.Response(events(), headers={"content-type": "text/event-stream"})
        return durable.Response("ok")
"""


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _poll_state(base: str, closed: int) -> dict[str, int]:
    """The app's counters once `closed` streams have been closed (bounded by the hang guard)."""
    deadline = time.monotonic() + HANG_GUARD
    with httpx.Client(timeout=HANG_GUARD) as client:
        while True:
            state: dict[str, int] = client.get(base + "/state").json()
            if state["closed"] >= closed or time.monotonic() > deadline:
                return state
            time.sleep(0.02)


def _get_scope() -> dict[str, Any]:
    """The ASGI scope of `GET /`, for driving an app by hand."""
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"host", b"x")],
    }


class TestClientGoneMidResponse:
    """workerd (miniflare 4, 2026-04-07) pulls a streamed body no more once its client has
    disconnected: a stream pulled every 20 ms was pulled 3 times, and still 3 times 0.5 s later."""

    async def test_stream_is_closed_when_the_client_disconnects(self) -> None:
        closed = asyncio.Event()

        class Worker(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                async def events() -> Any:
                    try:
                        while True:
                            yield b"data: tick\n\n"
                            await asyncio.sleep(0.001)
                    finally:
                        closed.set()

                return durable.Response(events())

        sent: list[MutableMapping[str, Any]] = []
        gone = asyncio.Event()
        incoming = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)  # like uvicorn: a send after the disconnect returns silently
            if len(sent) == 3:
                gone.set()

        class Env:
            env = None

        app = asgi_app(Worker, Env())
        await asyncio.wait_for(app(_get_scope(), receive, send), HANG_GUARD)
        assert closed.is_set()
        assert sent[0]["status"] == 200
        assert sent[-1].get("more_body") is True  # no complete-looking end for a gone client

    async def test_receive_that_never_blocks_does_not_hang_a_stream(self) -> None:
        """A driver whose receive() answers at once after the body (the same `http.request` again,
        where ASGI says it should wait for the disconnect) must not make the disconnect watch spin:
        it read receive() in a loop that never suspended, and the event loop hung for ever."""

        class Worker(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                async def chunks() -> Any:
                    for i in range(3):
                        yield b"x%d" % i
                        await asyncio.sleep(0.001)

                return durable.Response(chunks())

        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        class Env:
            env = None

        async def call() -> None:
            await asgi_app(Worker, Env())(_get_scope(), receive, send)

        # In a daemon thread: a loop that spins lets no timeout fire, and must not hang the run.
        thread = threading.Thread(target=asyncio.run, args=(call(),), daemon=True)
        thread.start()
        thread.join(HANG_GUARD)
        assert not thread.is_alive()
        assert b"".join(m.get("body", b"") for m in sent[1:]) == b"x0x1x2"

    @pytest.mark.slow
    @pytest.mark.parametrize("path", ["endless", "events"])
    def test_server_still_answers_after_a_client_leaves_a_stream(self, serve: Any, tmp_path: Path, path: str) -> None:  # noqa: F811
        """A stream whose client left is closed, and the server goes on answering (an endless
        stream that never awaits used to spin the event loop forever: the server hung)."""
        app = write_app(tmp_path, STREAMS_APP)
        server = serve("--in-memory", command=[sys.executable, "-m", "durable", "serve", str(app)])
        with socket.create_connection(_address(server.url), timeout=HANG_GUARD) as sock:
            sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert _read_head(sock).startswith(b"HTTP/1.1 200 ")
        state = _poll_state(server.url, 1)
        assert state["closed"] == 1
        pulls = state["pulls"]
        time.sleep(0.1)
        assert _poll_state(server.url, 1)["pulls"] == pulls  # pulled no more


def _exchange(url: str, data: bytes) -> bytes:
    """Send `data`, then read until the server closes (bounded by the hang guard)."""
    with socket.create_connection(_address(url), timeout=HANG_GUARD) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # closed while sending: what it answered is still to be read
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
            if b"connection: close" not in received.lower() and b"\r\n\r\n" in received:
                return received  # a keep-alive answer: all we need


def _head_of(size: int, *, headers: int = 1) -> bytes:
    """A GET whose head (request line, headers, blank line) is exactly `size` bytes."""
    start = b"GET /ok HTTP/1.1\r\nHost: x\r\n"
    fields = b"".join(b"X-F%05d: v\r\n" % i for i in range(headers - 1))
    pad = size - len(start) - len(fields) - len(b"X-Pad: \r\n\r\n")
    assert pad >= 0
    return start + fields + b"X-Pad: " + b"a" * pad + b"\r\n\r\n"


@pytest.fixture(scope="class")
def head_server(http: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One in-memory server per parser for all of TestRequestHeadLimit (a server start is most of
    each test's time): every test opens its own connection, and a request that broke the server
    would fail the tests after it as well as its own."""
    server = ServerProcess(tmp_path_factory.mktemp("head-limit"), "--in-memory", "--http", http)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.parametrize("http", ["h11", "httptools"], scope="class")  # both of uvicorn's parsers are guarded
class TestRequestHeadLimit:
    """workerd (miniflare 4, 2026-04-07) serves a request head of 131072 bytes and answers one of
    131073 bytes, or 10,000 headers, or a 2 MB header, with ``431 Request Header Fields Too
    Large`` (body ``ERROR: header too large.``) and closes the connection. uvicorn's httptools
    protocol had no limit (a 30 MB header was read whole) and h11 answered 400 above 16 KiB."""

    def test_head_at_the_limit_is_served(self, head_server: ServerProcess) -> None:
        server = head_server
        answer = _exchange(server.url, _head_of(131072))
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]

    @pytest.mark.parametrize(
        "head",
        [
            _head_of(131073),
            _head_of(131073, headers=9000),
            _head_of(2 << 20),
            b"GET /ok?" + b"q" * 131072 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        ],
        ids=["one-byte-over", "many-headers", "2MB-header", "long-url"],
    )
    def test_head_over_the_limit_gets_431(self, head_server: ServerProcess, head: bytes) -> None:
        server = head_server
        answer = _exchange(server.url, head)
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
        assert answer.endswith(b"\r\n\r\nERROR: header too large.")
        with httpx.Client(timeout=HANG_GUARD) as client:  # and the server goes on
            assert client.get(server.url + "/?name=A").status_code == 200

    @pytest.mark.parametrize("cut", [1, 2, 3], ids=["cr-lf-cr|lf", "cr-lf|cr-lf", "cr|lf-cr-lf"])
    def test_head_whose_blank_line_is_split_across_reads_is_not_counted_with_its_body(
        self, head_server: ServerProcess, cut: int
    ) -> None:
        """A head of exactly 131072 bytes is served (workerd, above), whatever its body: the h11
        guard found the blank line ending a head within one read only, so a head whose last
        ``cut`` bytes came in the next read (with the body) had that whole read counted as head
        and got a 431."""
        body = b"b" * 4096
        start = b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
        head = start + b"X-Pad: " + b"a" * (131072 - len(start) - len(b"X-Pad: \r\n\r\n")) + b"\r\n\r\n"
        assert len(head) == 131072
        server = head_server
        with socket.create_connection(_address(server.url), timeout=HANG_GUARD) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(head[:-cut])
            time.sleep(0.3)  # read apart: the blank line is split across two reads
            sock.sendall(head[-cut:] + body)
            answer = _read_head(sock)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


ECHO_WS_APP = """
import durable

class Echo(durable.DurableObject):
    async def fetch(self, request):
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws, message):
        ws.send(repr(message))

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ECHO.get_by_name("e").fetch(request)

bindings = {"ECHO": Echo}
"""


def _ws_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame (a zero mask keeps the payload as it is)."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def _ws_read_text(sock: socket.socket) -> bytes:
    head = sock.recv(2)
    assert head[0] == 0x81 and head[1] < 126, head  # one short text frame from the server
    payload = b""
    while len(payload) < head[1]:
        payload += sock.recv(head[1] - len(payload))
    return payload


@pytest.mark.slow
class TestWebSocketInvalidUtf8:
    @pytest.mark.parametrize(
        ("frames", "expected"),
        [
            ([_ws_frame(1, b"a\xffb")], "a\ufffdb"),
            ([_ws_frame(1, b"x\xed\xa0\x80y")], "x\ufffd\ufffd\ufffdy"),
            ([_ws_frame(1, b"\xc0\xafz")], "\ufffd\ufffdz"),
            ([_ws_frame(1, b"\xf0\x9f\x98")], "\ufffd"),
            ([_ws_frame(1, b"\xe2", fin=False), _ws_frame(0, b"\x82\xac!")], "\u20ac!"),
        ],
        ids=["bad-byte", "surrogate", "overlong", "truncated", "split-across-frames"],
    )
    def test_text_that_is_not_utf8_is_delivered_with_replacements(
        self,
        serve: Any,  # noqa: F811
        tmp_path: Path,
        frames: list[bytes],
        expected: str,
    ) -> None:
        """workerd (miniflare 4, 2026-04-07) delivers a text frame that is not UTF-8 with U+FFFD
        for each maximal bad subsequence (the same replacements for these five payloads);
        uvicorn closed the connection with 1007 and the object got web_socket_close(1007)."""
        app = write_app(tmp_path, ECHO_WS_APP)
        server = serve("--in-memory", command=[sys.executable, "-m", "durable", "serve", str(app)])
        with socket.create_connection(_address(server.url), timeout=HANG_GUARD) as sock:
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert _read_head(sock).startswith(b"HTTP/1.1 101 ")
            sock.sendall(b"".join(frames))
            assert _ws_read_text(sock).decode() == repr(expected)
            sock.sendall(_ws_frame(1, b"after"))  # the connection is still open
            assert _ws_read_text(sock).decode() == repr("after")
