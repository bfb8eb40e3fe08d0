"""Python Workers outbound WebSockets: ``js.WebSocket.new(url, protocols)``, against a local server.

What workerd does was measured with miniflare 4 (compatibility date 2026-04-07): a Worker and a
Durable Object opening ``new WebSocket(url)`` to a local Node ``ws`` server with the routes of
:func:`handler` below (``/echo``, ``/close``, ``/n``, ``/drop``, ``/reject``); each test's
docstring says what it saw. No test needs the internet.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import _wsclient, js
from durable.compat.python_workers import workers as sdk
from durable.compat.python_workers.pyodide.ffi import JsException

server_module: Any = pytest.importorskip("websockets.asyncio.server")
http11: Any = pytest.importorskip("websockets.http11")


pytestmark = pytest.mark.usefixtures("python_workers_shims")  # installed for every test, then uninstalled


async def handler(conn: Any) -> None:
    path = conn.request.path
    if path.startswith("/close"):
        await conn.close(4001, "bye now")
    elif path.startswith("/drop"):
        conn.transport.abort()
    elif path.startswith("/n"):
        count = int(parse_qs(urlsplit(path).query).get("count", ["3"])[0])
        for i in range(count):
            await conn.send(json.dumps({"kind": "commit", "time_us": 1000 + i}))
        await conn.send(b"\x01\x02")
        if "then=close" in path:
            await asyncio.sleep(0.3)
            await conn.close(1000, "enough")
        else:
            await conn.wait_closed()
    else:  # /echo
        async for message in conn:
            await conn.send(message if isinstance(message, bytes) else "echo:" + message)


def process_request(conn: Any, request: Any) -> Any:
    if request.path.startswith("/reject"):
        return conn.respond(403, "no\n")
    return None


@pytest.fixture
async def base() -> AsyncIterator[str]:
    """``ws://127.0.0.1:PORT`` of a local WebSocket server (see :func:`handler`)."""

    def select(conn: Any, offered: list[str]) -> str | None:
        return "p2" if "p2" in offered else None

    async with server_module.serve(
        handler, "127.0.0.1", 0, process_request=process_request, select_subprotocol=select
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def record(ws: Any, log: list[Any]) -> None:
    def on_open(event: Any) -> None:
        log.append(("open", event.type, ws.readyState, ws.protocol))

    def on_message(event: Any) -> None:
        log.append(("message", event.data))

    def on_error(event: Any) -> None:
        log.append(("error", event.message, ws.readyState))

    async def on_close(event: Any) -> None:  # an async listener runs too
        log.append(("close", event.code, event.reason, event.wasClean, ws.readyState))

    for kind, listener in (("open", on_open), ("message", on_message), ("error", on_error), ("close", on_close)):
        ws.addEventListener(kind, listener)


async def until(predicate: Any, timeout: float = 60.0) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


def close_code_watcher() -> tuple[asyncio.Future[int | None], Any]:
    """A server handler that waits for its connection to end, and the future of its close code."""
    closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def watch(conn: Any) -> None:
        try:
            await conn.wait_closed()
        finally:
            if not closed.done():
                closed.set_result(conn.close_code)

    return closed, watch


class TestApi:
    async def test_echo_and_client_close(self, base: str) -> None:
        """workerd: readyState 0 and protocol "" at first; open (readyState 1, protocol null: None);
        text echoed as a string, binary as a Blob by default; close(4000, "done") makes it CLOSING (2),
        then the close event has the server's echo, 4000 "done", clean, readyState 3."""
        ws = js.WebSocket.new(base + "/echo")
        assert (ws.readyState, ws.url, ws.protocol, ws.extensions, ws.binaryType) == (0, base + "/echo", "", "", "blob")
        log: list[Any] = []
        record(ws, log)
        targets: list[Any] = []
        for kind in ("open", "message", "close"):
            ws.addEventListener(kind, lambda event: targets.append(event.target))
        await until(lambda: ws.readyState == 1)
        ws.send("hi")
        ws.send(b"\x09\x08")
        await until(lambda: len(log) == 3)
        ws.close(4000, "done")
        assert ws.readyState == 2
        await until(lambda: len(log) == 4)
        assert log[:2] == [("open", "open", 1, None), ("message", "echo:hi")]
        assert ws.readyState == 3
        blob = log[2][1]
        assert isinstance(blob, pw.workers.Blob) and await blob.bytes() == b"\x09\x08"
        assert log[3] == ("close", 4000, "done", True, 3)
        assert len(targets) == 4 and all(target is ws for target in targets)

    async def test_protocols_and_close_without_code(self, base: str) -> None:
        """workerd: the negotiated subprotocol after open (a list or one string); close() -> 1005."""
        ws = js.WebSocket.new(base + "/echo", ["p1", "p2"])
        log: list[Any] = []
        record(ws, log)
        await until(lambda: ws.readyState == 1)
        assert ws.protocol == "p2"
        ws.close()
        await until(lambda: len(log) == 2)
        assert log[1] == ("close", 1005, "", True, 3)
        one = js.WebSocket.new(base + "/echo", "p2")
        await until(lambda: one.readyState == 1)
        assert one.protocol == "p2"
        one.close(1000)

    async def test_server_close_then_error(self, base: str) -> None:
        """workerd: a Close from the server: close 4001 "bye now" (clean), then an error event
        ``Uncaught Error: Network connection lost.`` (seen every time)."""
        ws = js.WebSocket.new(base + "/close")
        log: list[Any] = []
        record(ws, log)
        await until(lambda: len(log) == 3)
        assert log == [
            ("open", "open", 1, None),
            ("close", 4001, "bye now", True, 3),
            ("error", "Uncaught Error: Network connection lost.", 3),
        ]

    async def test_messages_in_order_and_arraybuffer(self, base: str) -> None:
        """Messages arrive in order; ``binaryType = "arraybuffer"`` gives bytes (workerd: ArrayBuffer)."""
        ws = js.WebSocket.new(base + "/n?count=5")
        ws.binaryType = "nonsense"  # ignored, as workerd does
        assert ws.binaryType == "blob"
        ws.binaryType = "arraybuffer"
        log: list[Any] = []
        record(ws, log)
        await until(lambda: len(log) == 7)
        assert [json.loads(data)["time_us"] for _, data in log[1:6]] == [1000, 1001, 1002, 1003, 1004]
        assert log[6] == ("message", b"\x01\x02")
        ws.close(1000)

    async def test_dropped_connection(self, base: str) -> None:
        """workerd: a connection dropped without a Close: close 1006, workerd's reason, not clean."""
        ws = js.WebSocket.new(base + "/drop")
        log: list[Any] = []
        record(ws, log)
        await until(lambda: any(entry[0] == "close" for entry in log))
        assert log[-1][:4] == ("close", 1006, "WebSocket disconnected without sending Close frame.", False)

    async def test_loop_ending_closes_the_connection(self) -> None:
        """An open socket whose event loop ends (``asyncio.run`` returning, which cancels its task)
        drops its connection then, not when the garbage collector finds it ("unclosed transport"
        ResourceWarning): the server sees the connection end at once."""
        import gc
        import threading

        ended, watch = close_code_watcher()
        async with server_module.serve(watch, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            opened: list[Any] = []

            async def open_one() -> None:
                ws = js.WebSocket.new(url)
                await until(lambda: ws.readyState == 1)
                opened.append(ws)

            gc.disable()  # (what the collector would close must be closed already)
            try:
                thread = threading.Thread(target=lambda: asyncio.run(open_one()))
                thread.start()
                await asyncio.to_thread(thread.join, 10)
                assert opened and opened[0]._task.done()
                assert await asyncio.wait_for(ended, 30) == 1006
            finally:
                gc.enable()

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("ws://127.0.0.1:1/x", "Uncaught Error: Network connection lost."),
            (
                "/reject",
                "Uncaught TypeError: Failed to establish the WebSocket connection: expected server to reply with "
                "HTTP status code 101 (switching protocols), but received 403 instead.",
            ),
        ],
    )
    async def test_connection_failure(self, base: str, path: str, message: str) -> None:
        """workerd: a refused connection or a non-101 answer: an error event, then close 1006
        "Failed to establish websocket connection" (not clean), readyState 3 in both."""
        ws = js.WebSocket.new(path if path.startswith("ws:") else base + path)
        log: list[Any] = []
        record(ws, log)
        await until(lambda: len(log) == 2)
        assert log == [("error", message, 3), ("close", 1006, "Failed to establish websocket connection", False, 3)]
        assert ws.readyState == 3

    async def test_close_while_connecting(self, base: str) -> None:
        """workerd: close() before open leaves readyState 1 (!), then error and close 1006."""
        ws = js.WebSocket.new(base + "/echo")
        ws.close(1000, "early")
        assert ws.readyState == 1
        log: list[Any] = []
        record(ws, log)
        await until(lambda: len(log) == 2)
        assert log == [
            ("error", "Uncaught Error: Network connection lost.", 3),
            ("close", 1006, "Failed to establish websocket connection", False, 3),
        ]

    async def test_errors(self, base: str) -> None:
        """workerd's errors (DOMException SyntaxError from the constructor; TypeError before open;
        InvalidAccessError for a bad close code), as Pyodide raises them: ``JsException``."""
        for url, protocols, text in [
            ("http://127.0.0.1/", None, "The url scheme must be ws or wss."),
            ("ftp://127.0.0.1/", None, "The url scheme must be ws or wss."),
            ("not a url", None, "The url is invalid."),
            ("/x", None, "The url is invalid."),
            ("ws://127.0.0.1/#f", None, "The url fragment must be empty."),
            ("ws://127.0.0.1/", ["a", "a"], "The protocols header cannot have repeating values."),
            ("ws://127.0.0.1/", ["a b"], "One of the protocol header tokens is invalid."),
        ]:
            with pytest.raises(JsException) as info:
                js.WebSocket.new(url, protocols)
            assert (info.value.name, info.value.message) == ("SyntaxError", "WebSocket Constructor: " + text)
        ws = js.WebSocket.new(base + "/echo")
        with pytest.raises(JsException, match="^TypeError: You must call one of accept"):
            ws.send("early")
        with pytest.raises(JsException, match="cannot call accept"):
            ws.accept()
        await until(lambda: ws.readyState == 1)
        ws.accept()  # allowed once open
        with pytest.raises(JsException, match="^InvalidAccessError: Invalid WebSocket close code: 999."):
            ws.close(999)
        ws.close(1000)
        with pytest.raises(JsException, match=r"^TypeError: Can't call WebSocket send\(\) after close\(\)."):
            ws.send("x")

    async def test_without_websockets(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the ``websockets`` package the error says what to install."""
        monkeypatch.setitem(sys.modules, "websockets.asyncio.client", None)
        with pytest.raises(ModuleNotFoundError, match=r"pip install 'durable-objects\[server\]'"):
            js.WebSocket.new("ws://127.0.0.1:1/")

    async def test_routes(self, base: str) -> None:
        """``route_websockets`` sends an origin to another; ``url`` stays the one given."""
        pw.route_websockets({"wss://firehose.example:443": base})
        ws = js.WebSocket.new("wss://firehose.example/echo")
        assert ws.url == "wss://firehose.example/echo"
        log: list[Any] = []
        record(ws, log)
        await until(lambda: ws.readyState == 1)
        ws.send("routed")
        await until(lambda: len(log) == 2)
        assert log[1] == ("message", "echo:routed")
        ws.close(1000)
        pw.uninstall()
        pw.install()
        assert _wsclient.routes() == {}


# ---------------------------------------------------------------------------------------------
# From a Durable Object


OBJECT_ENTRY = """
import json

import js
from pyodide.ffi import create_proxy
from workers import DurableObject, Response, WorkerEntrypoint


class Consumer(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.connected = False
        self.seen = 0

    async def fetch(self, request):
        if request.url.endswith("/connect"):
            cursor = self.ctx.storage.kv.get("cursor")
            ws = js.WebSocket.new(self.env.UPSTREAM + ("&cursor=%s" % cursor if cursor else ""))
            ws.addEventListener("open", create_proxy(self.on_open))
            ws.addEventListener("message", create_proxy(self.on_message))
            ws.addEventListener("close", create_proxy(self.on_close))
            self.ws = ws
        state = "connected" if self.connected else "disconnected"
        return Response.json({"state": state, "seen": self.seen, "cursor": self.ctx.storage.kv.get("cursor")})

    async def on_open(self, event):
        self.connected = True
        await self.ctx.storage.put("opened", True)

    def on_message(self, event):
        data = json.loads(event.data) if isinstance(event.data, str) else None
        if data:
            self.seen += 1
            self.ctx.storage.kv.put("cursor", data["time_us"])

    async def on_close(self, event):
        self.ctx.storage.kv.put("closed", [event.code, event.reason])
        self.ctx.abort("WebSocket closed")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.CONSUMER.getByName("c").fetch(request.url)
"""


def write_project(tmp_path: Path, upstream: str) -> Path:
    (tmp_path / "src").mkdir()
    config = {
        "main": "src/entry.py",
        "durable_objects": {"bindings": [{"name": "CONSUMER", "class_name": "Consumer"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Consumer"]}],
        "vars": {"UPSTREAM": upstream},
    }
    (tmp_path / "wrangler.jsonc").write_text(json.dumps(config))
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(OBJECT_ENTRY))
    return tmp_path


async def test_object_consumes_a_stream(tmp_path: Path, base: str, durable_runtime: durable.Runtime) -> None:
    """A Durable Object opens a socket in ``fetch``; its listeners (sync and async) run as events of
    the object and their storage writes persist; ``ctx.abort()`` in the close listener resets it."""
    app = pw.asgi_app(write_project(tmp_path, base + "/n?count=4&then=close"), durable_runtime)
    stub = durable_runtime.env.CONSUMER.get_by_name("c")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        first = (await client.get("/connect")).json()
        assert first == {"state": "disconnected", "seen": 0, "cursor": None}  # open comes later

        statuses: list[Any] = []
        for _ in range(500):
            await asyncio.sleep(0.01)
            statuses.append((await client.get("/status")).json())
            if statuses[-1]["cursor"] == 1003 and statuses[-1]["seen"] == 0:
                break
        # Connected, then the four messages (the sync listener's kv.put persisted each cursor)...
        assert {"state": "connected", "seen": 4, "cursor": 1003} in statuses
        # ...then the close listener's abort() reset the object: a fresh instance answers.
        assert statuses[-1] == {"state": "disconnected", "seen": 0, "cursor": 1003}
        opened = await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.storage.kv.get("opened"))
        assert opened is True  # the async open listener's write went through the object's gates


class Opener(sdk.DurableObject):
    async def fetch(self, request: Any) -> Any:
        if request.url.endswith("/abort"):
            self.ctx.abort("bye")
        self.ws = js.WebSocket.new(request.url.partition("?to=")[2])
        return sdk.Response("opening")


async def test_object_reset_drops_the_connection(durable_runtime: durable.Runtime) -> None:
    """A reset of the object that opened the socket drops the connection (no Close frame: the
    server sees 1006), as any socket the object accepted."""
    closed, watch = close_code_watcher()
    async with server_module.serve(watch, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        durable_runtime.namespace(Opener, name="OPENER")
        pw.serving(durable_runtime)
        stub = sdk.env.OPENER.getByName("o")
        await stub.fetch("http://o/open?to=" + url)
        await until(lambda: len(server.connections) == 1)
        with pytest.raises(Exception, match="bye"):
            await stub.fetch("http://o/abort")
        assert await asyncio.wait_for(closed, 5) == 1006


async def test_an_outbound_socket_in_a_response_is_refused_by_name() -> None:
    """workers-py's ``workerd-test/sdk`` builds ``Response(None, status=101,
    web_socket=js.WebSocket.new("ws://example.com/ignore"))``; workerd takes it (measured, miniflare
    4, 2026-04-07: the Response is a 101, and returned it answers 101, the runtime relaying).
    durable does not relay an outbound socket: NotImplementedError saying so, where it raised
    ``TypeError: Response web_socket must be a durable.WebSocket, not JsWebSocket.``"""
    ws = js.WebSocket.new("ws://127.0.0.1:9/ignore")
    try:
        with pytest.raises(NotImplementedError, match=r"^Response\(web_socket=js\.WebSocket\.new\(\.\.\.\)\) is not"):
            sdk.Response(None, status=101, web_socket=ws)
        with pytest.raises(NotImplementedError, match="return the client end of a js.WebSocketPair"):
            js.Response.new(None, status=101, webSocket=ws)
    finally:
        ws.close()
