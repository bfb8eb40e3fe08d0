"""Python Workers projects served by durable: the project's own examples/python-workers/ and,
when a checkout of cloudflare/python-workers-examples is given, Cloudflare's own examples.

Set DURABLE_PYTHON_WORKERS_EXAMPLES to the checkout's path to run Cloudflare's examples
unmodified; their expectations are those of the checkout's tests/test_examples.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.testing import MockClock

REPO = Path(__file__).resolve().parent.parent
MESSAGES = REPO / "examples" / "python-workers" / "messages"
CHAT = REPO / "examples" / "python-workers" / "chat"
CHECKOUT = os.environ.get("DURABLE_PYTHON_WORKERS_EXAMPLES")
needs_checkout = pytest.mark.skipif(
    not CHECKOUT, reason="set DURABLE_PYTHON_WORKERS_EXAMPLES to a checkout of cloudflare/python-workers-examples"
)


@pytest.fixture(autouse=True)
def shims() -> Iterator[None]:
    """Loading a project installs the shims; they are removed after each test."""
    try:
        yield
    finally:
        pw.uninstall()


@pytest.fixture
async def messages(durable_runtime: durable.Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the messages example, served in process."""
    app = pw.asgi_app(MESSAGES, durable_runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://messages") as client:
        yield client


class TestMessagesInProcess:
    async def test_post_and_list(self, messages: httpx.AsyncClient) -> None:
        """Posted messages are listed per board, in order, with their ids."""
        first = await messages.post("/lobby/messages", json={"author": "ada", "text": "hello"})
        assert first.status_code == 201 and first.json()["id"] == 1
        await messages.post("/lobby/messages", json={"text": "again"})
        await messages.post("/other/messages", json={"author": "bob", "text": "elsewhere"})
        listed = (await messages.get("/lobby/messages")).json()
        assert [(m["author"], m["text"]) for m in listed] == [("ada", "hello"), ("anonymous", "again")]
        assert (await messages.get("/other/stats")).json()["count"] == 1

    async def test_errors_and_clear(self, messages: httpx.AsyncClient) -> None:
        """An empty text is a 400 (the object's ValueError); clear empties the board; bad routes 404/405."""
        bad = await messages.post("/lobby/messages", json={"text": " "})
        assert bad.status_code == 400 and bad.text == "a message needs a non-empty text"
        await messages.post("/lobby/messages", json={"text": "x"})
        assert (await messages.post("/lobby/clear")).status_code == 204
        assert (await messages.get("/lobby/messages")).json() == []
        assert (await messages.get("/")).status_code == 404
        assert (await messages.delete("/lobby/messages")).status_code == 405

    async def test_retention_alarm(
        self, durable_runtime: durable.Runtime, mock_clock: MockClock, messages: httpx.AsyncClient
    ) -> None:
        """The board's alarm (declared without parameters) deletes messages older than RETENTION_SECONDS."""
        await messages.post("/lobby/messages", json={"text": "old"})
        await mock_clock.advance(43200)
        await messages.post("/lobby/messages", json={"text": "new"})
        stats = (await messages.get("/lobby/stats")).json()
        assert stats["count"] == 2 and stats["expires_at"] is not None
        await mock_clock.advance(43200)
        assert [m["text"] for m in (await messages.get("/lobby/messages")).json()] == ["new"]
        await mock_clock.advance(43200)
        assert (await messages.get("/lobby/stats")).json() == {"count": 0, "expires_at": None}

    async def test_max_messages_var(self, durable_runtime: durable.Runtime, messages: httpx.AsyncClient) -> None:
        """The MAX_MESSAGES var from wrangler.jsonc bounds the board."""
        assert durable_runtime.env.MAX_MESSAGES == 100
        for i in range(102):
            await messages.post("/big/messages", json={"text": str(i)})
        listed = (await messages.get("/big/messages")).json()
        assert len(listed) == 100 and listed[0]["text"] == "2"


needs_websockets = pytest.mark.skipif(not hasattr(durable, "WebSocketPair"), reason="needs durable's WebSocket support")


async def receive(ws: Any) -> Any:
    """The next JSON message on a client end."""
    return json.loads(await ws.receive())


@needs_websockets
class TestChatInProcess:
    def connect(self, app: Any, room: str = "a") -> Any:
        websocket: Any = getattr(durable.testing, "websocket")
        return websocket(app, f"http://chat/room/{room}")

    async def test_broadcast_history_and_leaving(self, durable_runtime: durable.Runtime) -> None:
        """Two members see each other's messages, a later one gets the history, leaving is announced."""
        app = pw.asgi_app(CHAT, durable_runtime)
        async with self.connect(app) as a, self.connect(app) as b:
            a.send(json.dumps({"type": "join", "name": "ada"}))
            assert await receive(a) == {"type": "history", "messages": []}
            assert await receive(a) == {"type": "joined", "name": "ada"}
            b.send(json.dumps({"type": "join", "name": "bob"}))
            assert (await receive(b))["type"] == "history"
            assert await receive(a) == await receive(b) == {"type": "joined", "name": "bob"}
            a.send(json.dumps({"type": "say", "text": "hi"}))
            said = {"type": "said", "name": "ada", "text": "hi"}
            assert await receive(a) == await receive(b) == said
            async with self.connect(app) as c:
                c.send(json.dumps({"type": "join", "name": "cy"}))
                assert await receive(c) == {"type": "history", "messages": [{"name": "ada", "text": "hi"}]}
            for ws in (a, b):
                assert await receive(ws) == {"type": "joined", "name": "cy"}
                assert await receive(ws) == {"type": "left", "name": "cy"}
            assert await durable_runtime.env.ROOMS.get_by_name("a").count() == 2

    async def test_hibernation_keeps_names_and_history(self, durable_runtime: durable.Runtime) -> None:
        """After the room hibernates, a message wakes it and the sender's name comes from its attachment."""
        app = pw.asgi_app(CHAT, durable_runtime)
        room = durable_runtime.env.ROOMS.get_by_name("h")
        async with self.connect(app, "h") as a:
            a.send(json.dumps({"type": "join", "name": "ada"}))
            await receive(a)
            await receive(a)
            await getattr(durable.testing, "hibernate")(room)
            a.send(json.dumps({"type": "say", "text": "awake"}))
            assert await receive(a) == {"type": "said", "name": "ada", "text": "awake"}

    async def test_errors(self, durable_runtime: durable.Runtime) -> None:
        """A plain request is refused with 426; saying before joining is an error message."""
        app = pw.asgi_app(CHAT, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as client:
            assert (await client.get("/room/a")).status_code == 426
            assert (await client.get("/")).status_code == 404
        async with self.connect(app) as a:
            a.send(json.dumps({"type": "say", "text": "x"}))
            assert await receive(a) == {"type": "error", "error": "join first"}
            a.send("not json")
            assert await receive(a) == {"type": "error", "error": "messages are JSON"}


class Server:
    """`python -m durable serve PROJECT --in-memory --port 0` in a subprocess; killed on close()."""

    def __init__(self, project: Path) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "serve", str(project), "--in-memory", "--port", "0", "--no-access-log"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                self.close()
                raise AssertionError("durable serve did not start in 60 s") from None
            if line is None:
                self.close()
                raise AssertionError("durable serve exited before serving")
            if line.startswith("durable: serving"):
                self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
                return

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def serve() -> Iterator[type[Server]]:
    """Start `durable serve` on a project; every server started is stopped at teardown."""
    started: list[Server] = []

    class Started(Server):
        def __init__(self, project: Path) -> None:
            super().__init__(project)
            started.append(self)

    try:
        yield Started
    finally:
        for server in started:
            server.close()


class TestOverHttp:
    def test_messages_served_by_durable_serve(self, serve: type[Server]) -> None:
        """`durable serve examples/python-workers/messages` answers over HTTP."""
        server = serve(MESSAGES)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.post("/lobby/messages", json={"author": "ada", "text": "hi"}).status_code == 201
            assert [m["text"] for m in client.get("/lobby/messages").json()] == ["hi"]

    @needs_websockets
    def test_chat_over_websockets(self, serve: type[Server]) -> None:
        """`durable serve examples/python-workers/chat` carries a real WebSocket chat between two clients."""
        client_module: Any = pytest.importorskip("websockets.sync.client")
        server = serve(CHAT)
        url = server.url.replace("http://", "ws://") + "/room/lobby"
        with client_module.connect(url) as a, client_module.connect(url) as b:
            a.send(json.dumps({"type": "join", "name": "ada"}))
            assert json.loads(a.recv(timeout=10))["type"] == "history"
            assert json.loads(a.recv(timeout=10)) == {"type": "joined", "name": "ada"}
            b.send(json.dumps({"type": "join", "name": "bob"}))
            assert json.loads(b.recv(timeout=10))["type"] == "history"
            a.send(json.dumps({"type": "say", "text": "over the wire"}))
            for ws in (a, b):
                messages = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
                assert messages[-1] == {"type": "said", "name": "ada", "text": "over the wire"}

    def test_chat_served_by_durable_serve(self, serve: type[Server]) -> None:
        """`durable serve examples/python-workers/chat` loads the project and answers plain HTTP."""
        server = serve(CHAT)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/").status_code == 404
            assert client.get("/room/a").status_code == 426


def check_07(get: object) -> None:
    """The four expectations of the upstream test_07_durable_objects."""
    assert callable(get)
    for path, text in [
        ("/room-1/show", "No messages"),
        ("/room-1/add/hi", "Message sent"),
        ("/room-1/show", "hi"),
        ("/room-2/show", "No messages"),
    ]:
        status, body = get(path)
        assert (status, body) == (200, text), path


@needs_checkout
class TestCloudflareExamples:
    async def test_07_durable_objects_in_process(self, durable_runtime: durable.Runtime) -> None:
        """Cloudflare's 07-durable-objects, unmodified, passes its upstream expectations in process."""
        app = pw.asgi_app(Path(str(CHECKOUT)) / "07-durable-objects", durable_runtime)
        results = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
            for path in ("/room-1/show", "/room-1/add/hi", "/room-1/show", "/room-2/show"):
                resp = await client.get(path)
                results.append((resp.status_code, resp.text))
        replies = iter(results)
        check_07(lambda path: next(replies))

    @needs_websockets
    async def test_15_chatroom_in_process(self, durable_runtime: durable.Runtime) -> None:
        """Cloudflare's 15-chatroom, unmodified: welcome, broadcast to both members, history for a later one."""
        app = pw.asgi_app(Path(str(CHECKOUT)) / "15-chatroom", durable_runtime)
        websocket: Any = getattr(durable.testing, "websocket")
        async with websocket(app, "http://x/room/a") as a, websocket(app, "http://x/room/a") as b:
            assert (await receive(a))["type"] == (await receive(b))["type"] == "system"
            a.send(json.dumps({"username": "u", "text": "hi"}))
            for ws in (a, b):
                message = await receive(ws)
                assert (message["type"], message["username"], message["text"]) == ("message", "u", "hi")
            async with websocket(app, "http://x/room/a") as c:
                history = await receive(c)
                assert history["type"] == "history" and [m["text"] for m in history["messages"]] == ["hi"]
            room = durable_runtime.env.CHATROOM.get_by_name("a")
            count = await durable.testing.run_in_object(room, lambda obj, ctx: len(ctx.getWebSockets()))
            assert count == 2  # c left: its close handler ran and released it
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
            assert (await client.get("/room/a")).text == "Expected WebSocket upgrade"
            assert "<html" in (await client.get("/")).text.lower()

    def test_07_durable_objects_over_http(self, serve: type[Server]) -> None:
        """Cloudflare's 07-durable-objects, unmodified, passes its upstream expectations under durable serve."""
        server = serve(Path(str(CHECKOUT)) / "07-durable-objects")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            check_07(lambda path: (lambda r: (r.status_code, r.text))(client.get(path)))

    @needs_websockets
    def test_15_chatroom_over_websockets(self, serve: type[Server]) -> None:
        """Cloudflare's 15-chatroom, unmodified, under durable serve with a real WebSocket client."""
        client_module: Any = pytest.importorskip("websockets.sync.client")
        server = serve(Path(str(CHECKOUT)) / "15-chatroom")
        url = server.url.replace("http://", "ws://") + "/room/lobby"
        with client_module.connect(url) as a, client_module.connect(url) as b:
            for ws in (a, b):
                assert json.loads(ws.recv(timeout=10))["type"] == "system"  # sent before the 101
            a.send(json.dumps({"username": "u", "text": "over the wire"}))
            for ws in (a, b):
                message = json.loads(ws.recv(timeout=10))
                assert (message["type"], message["username"], message["text"]) == ("message", "u", "over the wire")
            with client_module.connect(url) as c:
                history = json.loads(c.recv(timeout=10))
                assert history["type"] == "history" and [m["text"] for m in history["messages"]] == ["over the wire"]
                assert json.loads(c.recv(timeout=10))["type"] == "system"
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/room/lobby").text == "Expected WebSocket upgrade"
            assert "<html" in client.get("/").text.lower()


@needs_checkout
async def test_14_websocket_stream_consumer_in_process(durable_runtime: durable.Runtime) -> None:
    """Cloudflare's 14-websocket-stream-consumer, unmodified, against a local stand-in for Bluesky's
    Jetstream (``route_websockets`` sends its ``wss://`` origin there): it connects, consumes posts,
    keeps the cursor, and is reset by its close listener's ``ctx.abort()``; then reconnects from the
    cursor."""
    server_module: Any = pytest.importorskip("websockets.asyncio.server")
    paths: list[str] = []
    # The server closes once the test has seen the consumer connected (a fixed 0.3 s could pass
    # between two status polls on a loaded machine); the 60 s bound only keeps a failure from hanging.
    seen_connected = asyncio.Event()

    async def jetstream(conn: Any) -> None:
        paths.append(conn.request.path)
        for i in range(3):
            commit = {"collection": "app.bsky.feed.post", "record": {"text": f"post {i}"}}
            await conn.send(json.dumps({"kind": "commit", "time_us": 1000 + i, "commit": commit}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen_connected.wait(), 60)
        await conn.close(1000, "bye")

    async with server_module.serve(jetstream, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        pw.route_websockets({"wss://jetstream2.us-east.bsky.network": f"ws://127.0.0.1:{port}"})
        app = pw.asgi_app(Path(str(CHECKOUT)) / "14-websocket-stream-consumer", durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
            assert (await client.get("/status")).text == "Firehose status: disconnected"  # open comes later
            texts = []
            deadline = asyncio.get_running_loop().time() + 60  # a hang guard: breaks out far sooner
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
                texts.append((await client.get("/status")).text)
                if texts[-1] == "Firehose status: connected":
                    seen_connected.set()
                if any(path.endswith("&cursor=1002") for path in paths):
                    break
            # Connected; the close listener's abort() reset the object; the next fetch reconnected
            # from the cursor its message listener stored.
            assert "Firehose status: connected" in texts
            assert paths[0] == "/subscribe?wantedCollections=app.bsky.feed.post"
            assert paths[-1] == "/subscribe?wantedCollections=app.bsky.feed.post&cursor=1002"


# The upstream expectations (the checkout's tests/test_examples.py, plus 12 and 13, which it does
# not test) of Cloudflare's examples that need no Cloudflare-only service: example, the modules it
# needs beyond durable's own, and (path, status, content-type, body check) for each request.
UPSTREAM: dict[str, tuple[tuple[str, ...], list[tuple[str, int, str, str]]]] = {
    "01-hello": ((), [("/", 200, "text/plain;charset=UTF-8", "Hello world!")]),
    "03-fastapi": (
        ("fastapi", "jinja2"),
        [
            (
                "/",
                200,
                "application/json",
                '{"message":"This is an example of FastAPI with Jinja2 - go to /hi/<name> to see a template rendered"}',
            ),
            ("/hi/Dominik", 200, "application/json", '{"message":"Hello, Dominik!"}'),
            (
                "/env",
                200,
                "application/json",
                '{"message":"Here is an example of getting an environment variable: My env var"}',
            ),
        ],
    ),
    "08-cron": ((), [("/", 200, "text/plain;charset=UTF-8", "Hello from Cron Worker*")]),
    "12-image-gen": (
        ("PIL",),
        [("/gradient?width=40&height=20", 200, "image/png", "\x89PNG*"), ("/chart", 200, "image/png", "\x89PNG*")],
    ),
    "13-js-api-pygments/py": (
        ("pygments",),
        [("/", 200, "text/plain;charset=UTF-8", "Python RPC server is running. Use RPC to call methods.")],
    ),
    "18-django": (
        ("django",),
        [("/", 200, "application/json", '{"message": "Hello from Django on Cloudflare Workers!"}')],
    ),
}


def check_upstream(example: str, get: Any) -> None:
    """Each request of ``UPSTREAM[example]`` answered as upstream expects (``*`` ends a prefix)."""
    for path, status, content_type, body in UPSTREAM[example][1]:
        code, headers, content = get(path)
        assert (code, headers["content-type"]) == (status, content_type), path
        text = content.decode("latin-1")
        assert text.startswith(body[:-1]) if body.endswith("*") else text == body, path


def needs_modules(example: str) -> None:
    for module in UPSTREAM[example][0]:
        pytest.importorskip(module, reason=f"{example} needs {module!r} (not installed)")


@needs_checkout
@pytest.mark.parametrize("example", list(UPSTREAM))
async def test_upstream_example_in_process(example: str, durable_runtime: durable.Runtime) -> None:
    """Cloudflare's examples that need no Cloudflare-only service run unmodified in process and
    pass their upstream expectations (skipped when the example's own dependency is missing)."""
    needs_modules(example)
    app = pw.asgi_app(Path(str(CHECKOUT)) / example, durable_runtime)
    replies = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        for path, *_ in UPSTREAM[example][1]:
            resp = await client.get(path)
            replies[path] = (resp.status_code, resp.headers, resp.content)
    check_upstream(example, replies.__getitem__)


@needs_checkout
@pytest.mark.parametrize("example", ["03-fastapi", "12-image-gen", "18-django"])
def test_upstream_example_over_http(example: str, serve: type[Server]) -> None:
    """The same under ``durable serve`` (the web-framework and binary-body examples)."""
    needs_modules(example)
    server = serve(Path(str(CHECKOUT)) / example)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        check_upstream(example, lambda path: (lambda r: (r.status_code, r.headers, r.content))(client.get(path)))
