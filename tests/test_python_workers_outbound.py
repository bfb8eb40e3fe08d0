"""Python Workers outbound HTTP (``workers.fetch``, ``js.fetch``, ``pyodide.http.pyfetch``) and the SDK's
``Blob``, ``File`` and ``FormData``, against a local server: no test needs the internet.

What workerd does was measured with miniflare 4 (compatibility date 2026-04-07) fetching a local
Node server with the same routes as :class:`Handler` below; each test's docstring says what.
"""

from __future__ import annotations

import gzip
import http.server
import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import _fetch, js
from durable.compat.python_workers import workers as sdk
from durable.compat.python_workers.pyodide import ffi
from durable.compat.python_workers.pyodide import http as pyodide_http


@pytest.fixture(autouse=True)
def shims() -> Iterator[None]:
    """Every test here runs with the shims installed and leaves them uninstalled."""
    pw.install()
    try:
        yield
    finally:
        pw.uninstall()


class Handler(http.server.BaseHTTPRequestHandler):
    """The routes the tests fetch; ``/echo`` answers what it received as JSON."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        received = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.server.seen.append(received)  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        if path in ("/r301", "/r302", "/r303", "/r307", "/r308"):
            self._reply(int(path[2:]), b"moved", [("Location", "/echo?from=" + path[1:])])
        elif path == "/loop":
            self._reply(302, b"", [("Location", "/loop")])
        elif path == "/elsewhere":
            self._reply(302, b"", [("Location", self.headers["x-target"])])
        elif path == "/gz":
            self._reply(200, gzip.compress(b"zipped"), [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")])
        elif path == "/cookies":
            self._reply(200, b"c", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Multi", "p"), ("X-Multi", "q")])
        elif path == "/teapot":
            self._reply(418, b"tea", [], reason="Teapot Custom")
        elif path == "/form":
            body = b"a=1&b=x+y%21&a=2"
            self._reply(200, body, [("Content-Type", "application/x-www-form-urlencoded")])
        else:
            self._reply(200, json.dumps(received).encode(), [("Content-Type", "application/json")])

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]], reason: str | None = None) -> None:
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer


class Server:
    def __init__(self) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.httpd.seen  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(params=["httpx", "stdlib"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each fetch test runs over httpx and over the standard library's fallback."""
    if request.param == "stdlib":
        monkeypatch.setattr(_fetch, "_transport", lambda: _fetch._send_stdlib)
    return str(request.param)


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# workers.fetch / js.fetch / pyfetch


class TestFetch:
    async def test_get(self, server: Server, transport: str) -> None:
        """workerd: a plain fetch sends only Host (no User-Agent, Accept or Accept-Encoding); the
        response has status 200, ``url`` the URL fetched, ``redirected`` false, ``type`` "default"."""
        resp = await sdk.fetch(server.base + "/echo")
        assert isinstance(resp, sdk.Response)
        assert (resp.status, resp.ok, resp.status_text, resp.url, resp.redirected, resp.type) == (
            200,
            True,
            "OK",
            server.base + "/echo",
            False,
            "default",
        )
        assert resp.headers["content-type"] == "application/json"
        data = await resp.json()
        assert (data["method"], data["path"]) == ("GET", "/echo")
        sent = {k for k in data["headers"] if k not in ("host", "connection")}
        assert sent == set(), data["headers"]

    async def test_method_headers_body(self, server: Server, transport: str) -> None:
        """workerd: a str body is sent with ``content-type: text/plain;charset=UTF-8`` and its
        length; bytes without a content-type; the method is upper-cased; headers as given
        (a dict, pairs, or an http.HTTPMethod method as the SDK takes them)."""
        import http as std_http

        resp = await sdk.fetch(server.base + "/echo", method="post", headers={"X-A": "1"}, body="hi")
        data = await resp.json()
        assert (data["method"], data["body"], data["headers"]["x-a"]) == ("POST", "hi", "1")
        assert data["headers"]["content-type"] == "text/plain;charset=UTF-8"
        assert data["headers"]["content-length"] == "2"
        resp = await sdk.fetch(
            server.base + "/echo", method=std_http.HTTPMethod.PUT, headers=[("x-b", "2")], body=b"AB"
        )
        data = await resp.json()
        assert (data["method"], data["body"], data["headers"]["x-b"]) == ("PUT", "AB", "2")
        assert "content-type" not in data["headers"]

    async def test_request_object(self, server: Server, transport: str) -> None:
        """fetch(Request) sends the request's method, headers and body, and uses its body up."""
        req = sdk.Request(server.base + "/echo", method="PATCH", headers={"x-r": "q"}, body="payload")
        data = await (await sdk.fetch(req)).json()
        assert (data["method"], data["body"], data["headers"]["x-r"]) == ("PATCH", "payload", "q")
        assert req.body_used
        plain = durable.Request(server.base + "/echo?x=1#frag")
        data = await (await sdk.fetch(plain)).json()
        assert data["path"] == "/echo?x=1"

    async def test_redirects(self, server: Server, transport: str) -> None:
        """workerd follows redirects: the last URL, ``redirected`` true; a 302 after a POST, and a
        303, become a GET without body (other headers, content-type too, are kept); a 307
        sends the method and body again."""
        resp = await sdk.fetch(server.base + "/r302", method="POST", body="b", headers={"x-a": "1"})
        data = await resp.json()
        assert (resp.url, resp.redirected) == (server.base + "/echo?from=r302", True)
        assert (data["method"], data["body"], data["headers"]["x-a"]) == ("GET", "", "1")
        assert data["headers"]["content-type"] == "text/plain;charset=UTF-8"
        data = await (await sdk.fetch(server.base + "/r303", method="PUT", body="b")).json()
        assert (data["method"], data["body"]) == ("GET", "")
        data = await (await sdk.fetch(server.base + "/r307", method="POST", body="b")).json()
        assert (data["method"], data["body"]) == ("POST", "b")

    async def test_manual_redirect(self, server: Server, transport: str) -> None:
        """workerd: ``redirect: "manual"`` returns the 3xx itself, with its Location and body."""
        resp = await sdk.fetch(server.base + "/r302", redirect="manual")
        assert (resp.status, resp.ok, resp.url, resp.redirected) == (302, False, server.base + "/r302", False)
        assert resp.headers["location"] == "/echo?from=r302"
        assert await resp.text() == "moved"

    async def test_too_many_redirects(self, server: Server, transport: str) -> None:
        """workerd: ``TypeError: Too many redirects.`` and the 21 URLs requested; through the SDK's
        fetch (Pyodide's pyfetch) an OSError with that message."""
        url = server.base + "/loop"
        with pytest.raises(OSError) as info:
            await sdk.fetch(url)
        assert str(info.value) == "Too many redirects." + ", ".join([url] * 21)
        with pytest.raises(ffi.JsException) as js_info:
            await js.fetch(url)
        assert js_info.value.name == "TypeError" and js_info.value.message.startswith("Too many redirects.")

    async def test_response_shapes(self, server: Server, transport: str) -> None:
        """workerd: a gzip body arrives decoded with its content-encoding header; set-cookie values
        stay apart, other repeated headers are joined; the reason phrase is the server's; a
        HEAD response has no body."""
        resp = await sdk.fetch(server.base + "/gz")
        assert (await resp.text(), resp.headers["content-encoding"]) == ("zipped", "gzip")
        resp = await sdk.fetch(server.base + "/cookies")
        assert resp.headers.get_all("set-cookie") == ["a=1", "b=2"]
        assert resp.js_object.headers.get("x-multi") == "p, q"
        resp = await sdk.fetch(server.base + "/teapot")
        assert (resp.status, resp.status_text, resp.ok, await resp.text()) == (418, "Teapot Custom", False, "tea")
        with pytest.raises(OSError, match="^418 Client Error: Teapot Custom for url: http://127"):
            resp.raise_for_status()
        resp = await sdk.fetch(server.base + "/echo", method="HEAD")
        assert (resp.status, resp.headers["content-type"], await resp.bytes()) == (200, "application/json", b"")

    async def test_errors(self, server: Server, transport: str) -> None:
        """workerd: a refused connection is ``Error: Network connection lost.``; a non-HTTP URL
        ``TypeError: Fetch API cannot load: ftp://...``; a relative one ``TypeError: Invalid URL:
        /x``; ``redirect: "error"`` and a GET with a body are refused with its TypeErrors. The
        SDK's fetch raises each as an OSError with the message (Pyodide's pyfetch), js.fetch as a
        JsException."""
        refused = f"http://127.0.0.1:{closed_port()}/"
        cases = [
            (refused, {}, "Error", "Network connection lost."),
            ("ftp://127.0.0.1/", {}, "TypeError", "Fetch API cannot load: ftp://127.0.0.1/"),
            ("/x", {}, "TypeError", "Invalid URL: /x"),
            (server.base, {"body": "x"}, "TypeError", "Request with a GET or HEAD method cannot have a body."),
            (server.base, {"redirect": "error"}, "TypeError", 'Invalid redirect value, must be one of "follow"'),
        ]
        for url, options, name, message in cases:
            with pytest.raises(OSError) as info:
                await sdk.fetch(url, **options)
            assert str(info.value).startswith(message), (url, info.value)
            with pytest.raises(ffi.JsException) as js_info:
                await js.fetch(url, options)
            assert (js_info.value.name, js_info.value.message[: len(message)]) == (name, message)

    async def test_js_fetch_and_pyfetch(self, server: Server, transport: str) -> None:
        """``from js import fetch`` takes an init dict (or keyword fields, as Pyodide passes them);
        ``pyodide.http.pyfetch`` takes keyword options; both give a FetchResponse."""
        from js import fetch  # type: ignore[import-not-found]

        resp = await fetch(server.base + "/echo", {"method": "POST", "body": "1", "headers": {"x-k": "v"}})
        data = await resp.json()
        assert (data["method"], data["body"], data["headers"]["x-k"]) == ("POST", "1", "v")
        resp = await fetch(server.base + "/echo", method="DELETE")
        assert (await resp.json())["method"] == "DELETE"
        resp = await pyodide_http.pyfetch(server.base + "/echo", method="PUT", body=b"z")
        assert isinstance(resp, pyodide_http.FetchResponse)
        assert (await resp.json())["body"] == "z"


# ---------------------------------------------------------------------------------------------
# From a Worker and a Durable Object of a project


PROJECT_ENTRY = """
from js import fetch as js_fetch
from workers import DurableObject, Response, WorkerEntrypoint, fetch


class Proxy(DurableObject):
    async def fetch(self, request):
        await self.ctx.storage.put("n", 1)  # the fetch below leaves once this write is durable
        upstream = await js_fetch(self.env.UPSTREAM + "/echo?from=object", {"method": "POST", "body": "o"})
        data = await upstream.json()
        return Response.json({"object": data["path"], "body": data["body"]})


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/object"):
            return await self.env.PROXY.getByName("p").fetch(request.url)
        upstream = await fetch(self.env.UPSTREAM + "/echo?from=worker", headers={"x-via": "worker"})
        data = await upstream.json()
        return Response.json({"worker": data["path"], "via": data["headers"]["x-via"]})
"""


def write_project(tmp_path: Path, upstream: str) -> Path:
    (tmp_path / "src").mkdir()
    config = {
        "main": "src/entry.py",
        "durable_objects": {"bindings": [{"name": "PROXY", "class_name": "Proxy"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Proxy"]}],
        "vars": {"UPSTREAM": upstream},
    }
    (tmp_path / "wrangler.jsonc").write_text(json.dumps(config))
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(PROJECT_ENTRY))
    return tmp_path


async def test_worker_and_object_fetch(tmp_path: Path, server: Server, durable_runtime: durable.Runtime) -> None:
    """A Python Worker (``workers.fetch``) and a Durable Object (``js.fetch``) reach the network."""
    app = pw.asgi_app(write_project(tmp_path, server.base), durable_runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        resp = await client.get("/")
        assert resp.json() == {"worker": "/echo?from=worker", "via": "worker"}
        resp = await client.get("/object")
        assert resp.json() == {"object": "/echo?from=object", "body": "o"}
