"""``asgi.websocket(app, request, env)``: WebSockets into an ASGI application (FastAPI's
``@app.websocket``) from a Python Worker, in process and under ``durable serve``.

What Cloudflare does is read from the SDK's own code and tests (workers-py
``packages/runtime-sdk/src/workers/asgi.py`` ``process_websocket`` and
``tests/workerd-test/asgi-ws-disconnect``): the ``WebSocketPair``'s server end is accepted at
once and the ``101`` with the client end returned before the app runs; the app gets
``websocket.connect``, then ``websocket.receive`` with ``text`` or ``bytes``, and
``websocket.disconnect`` with the client's ``code`` and ``reason``; ``websocket.accept`` is a
no-op (its ``subprotocol`` is dropped), ``websocket.close`` closes with ``code`` (1000 by
default) and ``reason``; the scope has ``env`` (``{}`` by default) and no ``subprotocols``; an
exception of the app is logged by the ``asgi`` logger ("Unhandled exception in background task"),
and a socket the app leaves open is closed for it (1011 after an exception, 1000 after a return;
workers-runtime-sdk 1.9.5).
"""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_python_workers_examples import Server

import durable
import durable.testing
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytest.importorskip("fastapi")
pytestmark = pytest.mark.usefixtures("python_workers_shims")


ENTRY = '''
import json

import asgi
from fastapi import FastAPI, WebSocket
from workers import DurableObject, Response, WorkerEntrypoint

app = FastAPI()
events = []


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept(subprotocol=websocket.query_params.get("proto"))
    scope = websocket.scope
    await websocket.send_json({
        "type": scope["type"], "scheme": scope["scheme"], "path": scope["path"],
        "query": scope["query_string"].decode(), "env": scope["env"].NAME,
        "subprotocols": scope.get("subprotocols"),
        "offered": websocket.headers.get("sec-websocket-protocol"),
    })
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            events.append({"code": message["code"], "reason": message["reason"]})
            return
        if message.get("bytes") is not None:
            await websocket.send_bytes(b"bytes=" + message["bytes"])
        elif message["text"] == "close":
            await websocket.close(4001, "application-close")
        elif message["text"] == "empty":
            await websocket.send_text("")
            await websocket.send_bytes(b"")
        else:
            await websocket.send_text("text=" + message["text"])


@app.websocket("/raises")
async def raises(websocket: WebSocket):
    raise ValueError("broken before accept")


async def bad(scope, receive, send):
    """Sends each message the client names, answering with the error it raised."""
    assert (await receive())["type"] == "websocket.connect"
    messages = {
        "unknown": {"type": "websocket.http.response.start", "status": 403},
        "neither": {"type": "websocket.send"},
        "both": {"type": "websocket.send", "text": "a", "bytes": b"b"},
        "int-text": {"type": "websocket.send", "text": 5},
        "str-bytes": {"type": "websocket.send", "bytes": "x"},
        "no-type": {"text": "x"},
        "not-a-dict": "websocket.send",
        "bad-code": {"type": "websocket.close", "code": 1005},
    }
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            await send(messages[message["text"]])
        except Exception as exc:
            await send({"type": "websocket.send", "text": f"{type(exc).__name__}: {exc}"})


counter = FastAPI()


@counter.websocket("/do/ws")
async def count(websocket: WebSocket):
    await websocket.accept()
    storage = websocket.scope["env"].storage
    while (message := await websocket.receive())["type"] != "websocket.disconnect":
        n = (await storage.get("n") or 0) + 1
        await storage.put("n", n)
        await websocket.send_text(f"{n}:{message['text']}")


class Counter(DurableObject):
    async def fetch(self, request):
        return await asgi.websocket(counter, request, self.ctx)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if "/do/" in request.url:
            return await self.env.COUNTER.getByName("a").fetch(request)
        if (request.headers.get("upgrade") or "").lower() != "websocket":
            return Response(json.dumps(events), headers={"content-type": "application/json"})
        if request.url.endswith("/bad"):
            return await asgi.websocket(bad, request)
        return await asgi.websocket(app, request.js_object, self.env)
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyw_asgi_ws")
    (root / "src").mkdir()
    (root / "wrangler.jsonc").write_text(
        '{"main": "src/pyw_asgi_ws_entry.py", "compatibility_flags": ["python_workers"], "vars": {"NAME": "v"},'
        ' "durable_objects": {"bindings": [{"name": "COUNTER", "class_name": "Counter"}]},'
        ' "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}]}'
    )
    (root / "src" / "pyw_asgi_ws_entry.py").write_text(textwrap.dedent(ENTRY))
    return root


async def events(app: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        return list((await client.get("/events")).json())


class TestInProcess:
    async def test_scope_text_and_bytes_both_ways(self, project: Path, durable_runtime: durable.Runtime) -> None:
        """The scope is the SDK's (``type`` websocket, the URL's ``scheme``, ``env``, no
        ``subprotocols``); a text frame reaches the app as ``text`` and a binary one as ``bytes``
        (workers-py asgi-ws-disconnect ``test_text_frame_arrives_as_asgi_text`` /
        ``test_binary_frame_arrives_as_asgi_bytes``); empty frames reach the client."""
        app = pw.asgi_app(project, durable_runtime)
        async with durable.testing.websocket(app, "http://w/ws?a=1") as ws:
            assert json.loads(await ws.receive()) == {
                "type": "websocket",
                "scheme": "http",
                "path": "/ws",
                "query": "a=1",
                "env": "v",
                "subprotocols": None,
                "offered": None,
            }
            ws.send("hello")
            assert await ws.receive() == "text=hello"
            ws.send(b"\x00\x01binary")
            assert await ws.receive() == b"bytes=\x00\x01binary"
            ws.send("empty")
            assert [await ws.receive(), await ws.receive()] == ["", b""]

    async def test_app_close_reaches_the_client(self, project: Path, durable_runtime: durable.Runtime) -> None:
        """``websocket.close`` closes with the app's code and reason (workers-py
        ``test_application_close_reaches_client_with_code_and_reason``: 4001 ``application-close``)."""
        app = pw.asgi_app(project, durable_runtime)
        async with durable.testing.websocket(app, "http://w/ws") as ws:
            await ws.receive()
            ws.send("close")
            with pytest.raises(durable.WebSocketClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4001, "application-close")

    async def test_client_close_reaches_the_app_as_disconnect(
        self, project: Path, durable_runtime: durable.Runtime
    ) -> None:
        """The client's Close reaches the app as ``websocket.disconnect`` with its code and reason
        (workers-py ``test_client_close_reaches_app_as_disconnect``)."""
        app = pw.asgi_app(project, durable_runtime)
        before = len(await events(app))
        async with durable.testing.websocket(app, "http://w/ws") as ws:
            await ws.receive()
            ws.close(1001, "bye")
        for _ in range(20):
            seen = await events(app)
            if len(seen) > before:
                break
            await asyncio.sleep(0.01)
        assert seen[before:] == [{"code": 1001, "reason": "bye"}]

    async def test_the_apps_subprotocol_is_not_negotiated(
        self, project: Path, durable_runtime: durable.Runtime
    ) -> None:
        """The SDK answers ``websocket.accept`` by nothing: the 101 carries no
        ``Sec-WebSocket-Protocol`` even when the app picks one of the client's; the app sees the
        offer in its headers only (the scope has no ``subprotocols``)."""
        app = pw.asgi_app(project, durable_runtime)
        async with durable.testing.websocket(app, "http://w/ws?proto=chat", protocols=["chat", "v2"]) as ws:
            assert json.loads(await ws.receive())["offered"] == "chat, v2"
            assert ws.protocol == ""
            ws.send("still open")
            assert await ws.receive() == "text=still open"

    async def test_an_app_raising_before_accept(
        self, project: Path, durable_runtime: durable.Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The SDK has answered 101 before the app runs: its exception is logged by the ``asgi``
        logger and the (already accepted) socket is closed with 1011, as workers-runtime-sdk
        1.9.5 closes a socket its app left open (1.6.15 left it open; tests/test_hunt_pyw2.py)."""
        app = pw.asgi_app(project, durable_runtime)
        with caplog.at_level(logging.ERROR, logger="asgi"):
            async with durable.testing.websocket(app, "http://w/raises") as ws:
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1011
        [record] = [r for r in caplog.records if r.name == "asgi"]
        assert record.getMessage() == "Unhandled exception in background task"
        assert record.exc_info is not None and str(record.exc_info[1]) == "broken before accept"
        assert ws.ready_state == durable.WebSocket.CLOSED

    @pytest.mark.parametrize(
        ("name", "error"),
        [
            ("unknown", "RuntimeError: asgi.websocket: unsupported ASGI message type 'websocket.http.response.start'"),
            ("neither", "ValueError: asgi.websocket: a 'websocket.send' message needs exactly one of 'text' and"),
            ("both", "ValueError: asgi.websocket: a 'websocket.send' message needs exactly one of 'text' and"),
            ("int-text", "TypeError: asgi.websocket: 'websocket.send' 'text' must be str, not int"),
            ("str-bytes", "TypeError: asgi.websocket: 'websocket.send' 'bytes' must be bytes-like, not str"),
            ("no-type", "RuntimeError: asgi.websocket: unsupported ASGI message type None"),
            ("not-a-dict", "TypeError: asgi.websocket: an ASGI message is a mapping with a 'type', not str"),
            ("bad-code", "WebSocketError: "),
        ],
    )
    async def test_bad_messages_from_the_app_are_clear_errors(
        self, project: Path, durable_runtime: durable.Runtime, name: str, error: str
    ) -> None:
        """A message the SDK drops (it logs " == Not implemented" for another type, and sends
        nothing for a ``websocket.send`` without a frame) raises in the app's ``send`` instead
        (docs/differences.md); an invalid close code raises as ``WebSocket.close`` does."""
        app = pw.asgi_app(project, durable_runtime)
        async with durable.testing.websocket(app, "http://w/bad") as ws:
            ws.send(name)
            answer = await ws.receive()
            assert isinstance(answer, str) and answer.startswith(error)
            ws.send("neither")  # the socket still works
            assert str(await ws.receive()).startswith("ValueError")

    async def test_in_a_durable_object(self, project: Path, durable_runtime: durable.Runtime) -> None:
        """A Durable Object's ``fetch`` may answer with ``asgi.websocket`` too (the SDK's code
        is the same there): the app's storage calls and sends run as the object's."""
        app = pw.asgi_app(project, durable_runtime)
        async with durable.testing.websocket(app, "http://w/do/ws") as ws:
            ws.send("a")
            assert await ws.receive() == "1:a"
        async with durable.testing.websocket(app, "http://w/do/ws") as ws:
            ws.send("b")
            assert await ws.receive() == "2:b"

    async def test_returns_101_before_the_app_runs(self) -> None:
        """``asgi.websocket`` answers at once (the SDK runs the app in the background): the
        response is the SDK's ``Response`` with status 101 and the client end; the app has not
        started yet, and ``env`` defaults to ``{}``."""
        from durable.compat.python_workers import asgi

        started: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            started.append(scope["env"])
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.send", "text": "before accept"})  # the SDK allows it
            await send({"type": "websocket.close"})

        response = await asgi.websocket(app, sdk.Request("http://w/", headers={"Upgrade": "websocket"}))
        assert isinstance(response, sdk.Response) and response.status == 101 and started == []
        client = response.web_socket
        assert client is not None
        client.accept()
        assert await client.receive() == "before accept"
        with pytest.raises(durable.WebSocketClosed) as closed:
            await client.receive()
        assert (closed.value.code, started) == (1000, [{}])


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Server]:
    server = Server(project)
    try:
        yield server
    finally:
        server.close()


class TestServed:
    def test_fastapi_websocket_over_durable_serve(self, served: Server) -> None:
        """The same Worker under ``durable serve`` with a real WebSocket client: frames both ways,
        no subprotocol negotiated, the app's close code and reason, the client's close seen by
        the app as ``websocket.disconnect``."""
        client_module: Any = pytest.importorskip("websockets.sync.client")
        closed_module: Any = pytest.importorskip("websockets.exceptions")
        url = served.url.replace("http://", "ws://") + "/ws?proto=chat"
        with client_module.connect(url, subprotocols=["chat"]) as ws:
            assert json.loads(ws.recv(timeout=10))["offered"] == "chat"
            assert ws.subprotocol is None
            ws.send("hello")
            assert ws.recv(timeout=10) == "text=hello"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=10) == b"bytes=\x00\x01"
            ws.send("close")
            with pytest.raises(closed_module.ConnectionClosed):
                ws.recv(timeout=10)
            assert ws.close_code == 4001 and ws.close_reason == "application-close"
        with httpx.Client(base_url=served.url, timeout=10) as http:
            before = len(http.get("/events").json())
            with client_module.connect(served.url.replace("http://", "ws://") + "/ws") as ws:
                ws.recv(timeout=10)
                ws.close(1001, "bye")
            for _ in range(200):
                seen = http.get("/events").json()
                if len(seen) > before:
                    break
            assert seen[before:] == [{"code": 1001, "reason": "bye"}]
