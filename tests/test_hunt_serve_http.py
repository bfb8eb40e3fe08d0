"""`durable serve`'s HTTP protocols over a real socket, compared with miniflare 4's HTTP server.

The differential hunt behind these (2026-12-07) sent the same raw requests to miniflare 4 serving
an echo Worker and Durable Object and to `durable serve` serving the same in Python, under both of
uvicorn's parsers. The differences durable cannot change (uvicorn's parsers decide) are in
docs/differences.md; the request-target and transfer-coding fixes are tested in process in
test_serve_diff.py. Here: what needs the protocol class, run in process on an ephemeral port (one
server for the module, so each test costs one connection).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import durable
from durable._serve_limits import guarded_protocol

uvicorn = pytest.importorskip("uvicorn")
HANG_GUARD = 10.0
pytestmark = pytest.mark.skipif(importlib.util.find_spec("httptools") is None, reason="no httptools")


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request: durable.Request) -> durable.Response:
        body = None if request.body is None else await request.text()
        return durable.Response.json({"method": request.method, "body": body})


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    """`durable serve`'s httptools protocol serving ``Worker`` in a thread; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    started = threading.Event()
    servers: list[Any] = []

    async def serve() -> None:
        async with durable.Runtime() as rt:
            config = uvicorn.Config(
                durable.asgi_app(Worker, rt),
                http=guarded_protocol("httptools", None, None),
                lifespan="off",
                log_level="warning",
            )
            server = uvicorn.Server(config)
            servers.append(server)
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            started.set()
            await task

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert started.wait(HANG_GUARD) and servers[0].started
        yield sock.getsockname()[1]
    finally:
        if servers:
            servers[0].should_exit = True
        thread.join(HANG_GUARD)
        sock.close()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


class TestExpectContinue:
    def test_http10_expectation_is_ignored(self, server_port: int) -> None:
        """RFC 9110 10.1.1: a server MUST ignore ``Expect: 100-continue`` in an HTTP/1.0 request.
        miniflare 4 (2026-12-07) and uvicorn's h11 protocol answer it with the response alone;
        uvicorn's httptools protocol sent ``HTTP/1.1 100 Continue`` first, which an HTTP/1.0
        client reads as the response."""
        answer = exchange(
            server_port,
            b"POST /echo HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        )
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100]
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"method": "POST", "body": "abc"}

    def test_http11_expectation_still_gets_100_continue(self, server_port: int) -> None:
        """HTTP/1.1 keeps uvicorn's ``100 Continue`` when the Worker reads the body (workerd sends
        none: docs/differences.md)."""
        answer = exchange(
            server_port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nabc",
        )
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), answer[:100]
