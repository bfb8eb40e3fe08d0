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

pytestmark = pytest.mark.usefixtures("python_workers_shims")  # installed for every test, then uninstalled


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

    async def test_credentials_in_the_url_are_not_sent(self, server: Server, transport: str) -> None:
        """workerd (miniflare 4, 2026-04-07, a local Node server): ``fetch("http://u:p@127.0.0.1:P/x")``
        reaches the server with no ``authorization`` header and ``host: 127.0.0.1:P``, its response's
        ``url`` keeping ``http://u:p@127.0.0.1:P/x``; a relative redirect is resolved against that URL
        (``url`` ``http://u:p@127.0.0.1:P/z``), and a ``Location`` holding other credentials is followed
        without sending them (``url`` ``http://v:q@127.0.0.1:P/y``); ``Too many redirects.`` lists the
        URLs with their credentials. durable sent ``authorization: Basic dTpw`` over httpx, and over
        http.client failed to connect (``Network connection lost.``)."""
        creds = server.base.replace("http://", "http://u:p@")
        resp = await sdk.fetch(creds + "/echo")
        data = await resp.json()
        assert (resp.url, resp.redirected) == (creds + "/echo", False)
        assert "authorization" not in data["headers"] and data["headers"]["host"] == server.base[len("http://") :]
        resp = await js.fetch(creds + "/r302")
        assert (resp.url, resp.redirected) == (creds + "/echo?from=r302", True)
        other = server.base.replace("http://", "http://v:q@")
        resp = await sdk.fetch(server.base + "/elsewhere", headers={"x-target": other + "/echo"})
        assert (resp.url, resp.redirected) == (other + "/echo", True)
        assert [seen["headers"].get("authorization") for seen in server.seen] == [None] * 5
        with pytest.raises(OSError) as info:
            await sdk.fetch(creds + "/loop")
        assert str(info.value) == "Too many redirects." + ", ".join([creds + "/loop"] * 21)

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


# ---------------------------------------------------------------------------------------------
# Blob, File, FormData


MULTIPART = (
    b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nhello\r\n'
    b'--XX\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\nContent-Type: Text/Plain\r\n\r\n'
    b"file body\r\n"
    b'--XX\r\nContent-Disposition: form-data; name="g"; filename="y.bin"\r\n\r\nraw\r\n'
    b'--XX\r\nContent-Disposition: form-data; name="a"\r\nContent-Type: text/x\r\n\r\nagain\r\n--XX--\r\n'
)


def form_request(body: bytes | str, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"content-type": content_type}
    return sdk.Request("http://x/", method="POST", body=body, headers=headers)


class TestBlob:
    async def test_blob(self) -> None:
        """workerd: ``new Blob(["ab", Uint8Array[99], new Blob(["d"])], {type: "Text/Plain"})`` has
        size 4, type "text/plain"; a type outside printable ASCII becomes ""; ``endings`` raises
        ``Error: The 'endings' field on 'Options' is not implemented.``."""
        blob = sdk.Blob(["ab", b"c", bytearray(b"d"), sdk.Blob("e")], "Text/Plain")
        assert (blob.size, blob.content_type, blob.type) == (5, "text/plain", "text/plain")
        assert (await blob.text(), await blob.bytes()) == ("abcde", b"abcde")
        assert sdk.Blob("é").size == 2 and sdk.Blob(b"xyz").size == 3
        assert sdk.Blob("x", "a\u00e9b").content_type == "" and sdk.Blob("x", "a\tb").content_type == ""
        assert sdk.Blob(sdk.Blob("x", "a/b")).content_type == "a/b"  # one Blob passes its type on
        assert sdk.Blob([sdk.Blob("x", "a/b")]).content_type == ""
        with pytest.raises(ffi.JsException, match="The 'endings' field on 'Options' is not implemented."):
            sdk.Blob("x", endings="native")
        with pytest.raises(TypeError, match="^Don't know how to handle <class 'int'> for Blob\\(\\)$"):
            sdk.Blob([1])

    async def test_slice(self) -> None:
        """workerd: ``slice(-4, -1)`` of "abcdef" is "cde", ``slice(2)`` "cdef", ``slice(4, 2)``
        empty, ``slice(-100, 2)`` "ab"; the SDK rebuilds the slice from a list, so its
        ``content_type`` is ""."""
        blob = sdk.Blob("abcdef", "x/y")
        assert await blob.slice(-4, -1).text() == "cde"
        assert await blob.slice(2).text() == "cdef"
        assert blob.slice(4, 2).size == 0 and await blob.slice(-100, 2).text() == "ab"
        assert blob.slice(1, 3, "a/b").content_type == ""

    def test_file(self) -> None:
        """workerd: a File has its name, type and a lastModified of now unless given."""
        file = sdk.File(["abc"], "n.txt", "text/plain")
        assert (file.name, file.size, file.content_type, isinstance(file, sdk.Blob)) == ("n.txt", 3, "text/plain", True)
        assert file.last_modified > 1_600_000_000_000
        assert sdk.File("abc", "n.txt", last_modified=5).last_modified == 5
        again = sdk.File(sdk.File("q", "a", "a/b", last_modified=7), "b")
        assert (again.name, again.content_type, again.last_modified) == ("b", "a/b", 7)


class TestFormData:
    def test_entries(self) -> None:
        """workerd: ``get`` is the first value (null when none: the SDK's ``form[name]`` is None),
        ``getAll`` every one, ``set`` replaces all where the first was; a Blob becomes a File named
        after its field, a File appended with a name a new File of that name, its type kept; a
        number is its text."""
        form = sdk.FormData({"z": "0"})
        form.append("a", "1")
        form.append("a", "2")
        form.append("b", sdk.Blob("x", "t/x"))
        form.append("c", sdk.Blob("y"), "c.bin")
        form.append("d", sdk.File("q", "orig.txt", "a/b"), "new.txt")
        form.append("n", 5)
        assert (form["a"], form.get_all("a"), form["missing"], form.get("missing")) == ("1", ["1", "2"], None, None)
        b, c, d = form["b"], form["c"], form["d"]
        assert isinstance(b, sdk.File) and (b.name, b.content_type) == ("b", "t/x")
        assert (c.name, c.content_type, d.name, d.content_type, form["n"]) == ("c.bin", "", "new.txt", "a/b", "5")
        assert "b" in form and "q" not in form
        assert list(form.keys()) == ["z", "a", "a", "b", "c", "d", "n"]
        form["a"] = "9"
        assert [(k, v) for k, v in form.items() if isinstance(v, str)] == [("z", "0"), ("a", "9"), ("n", "5")]
        del form["a"]
        form.delete("nope")
        assert "a" not in form and len(form) == 5
        with pytest.raises(TypeError, match="^Expected single item in arguments to FormData.__setitem__$"):
            form["x"] = ["a", "b"]
        with pytest.raises(TypeError, match="^Expected form_data to be a dict or an instance of FormData$"):
            sdk.FormData([("a", "b")])

    async def test_multipart_body(self) -> None:
        """workerd: a FormData body is multipart/form-data with a 32-hex-digit boundary, a quote in a
        name as %22, a Blob part typed application/octet-stream when it has none, and no line break
        after the closing boundary; a Content-Type given is kept."""
        form = sdk.FormData()
        form.append("a", "1\r\n2")
        form.append('q"x', "v")
        form.append("file", sdk.Blob("DATA", "image/png"), 'p"ic.png')
        form.append("e", sdk.Blob("E"))
        resp = sdk.Response(form)
        content_type = resp.headers["content-type"]
        assert content_type.startswith("multipart/form-data; boundary=")
        boundary = content_type.split("=", 1)[1]
        assert len(boundary) == 32 and int(boundary, 16) >= 0
        expected = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n2\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="q%22x"\r\n\r\nv\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p%22ic.png"\r\n'
            "Content-Type: image/png\r\n\r\nDATA\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="e"; filename="e"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\nE\r\n--{boundary}--"
        )
        assert await resp.text() == expected
        kept = sdk.Request("http://x/", method="POST", body=form, headers={"content-type": "text/plain"})
        assert kept.headers["content-type"] == "text/plain"
        parsed = await sdk.Response(form).form_data()
        # (workerd does not decode %22 when parsing: the name comes back as sent)
        assert parsed["a"] == "1\r\n2" and parsed["q%22x"] == "v" and await parsed["file"].bytes() == b"DATA"
        assert sdk.Request("http://x/", method="POST", body=sdk.Blob("z", "q/r")).headers["content-type"] == "q/r"
        assert sdk.Request("http://x/", method="POST", body=sdk.Blob("z")).headers["content-type"] is None

    async def test_parse_multipart(self) -> None:
        """workerd: a part with a file name is a File (its type the part's, "" if none), one without
        is text, in order; the SDK's File lower-cases the type."""
        form = await form_request(MULTIPART, "multipart/form-data; boundary=XX").form_data()
        assert isinstance(form, sdk.FormData)
        assert [k for k in form] == ["a", "f", "g", "a"] and form.get_all("a") == ["hello", "again"]
        f, g = form["f"], form["g"]
        assert (f.name, f.content_type, await f.text()) == ("x.txt", "text/plain", "file body")
        assert (g.name, g.content_type, await g.bytes()) == ("y.bin", "", b"raw")
        quoted = 'multipart/form-data; boundary="a b"'
        body = '--a b\r\nContent-Disposition: form-data; name="k"\r\n\r\nv\r\n--a b--'
        assert list((await form_request(body, quoted).form_data()).items()) == [("k", "v")]
        lf = '--XX\nContent-Disposition: form-data; name="a"; filename=""\n\nv\n--XX--'
        assert list((await form_request("pre\r\n" + lf, "multipart/form-data; boundary=XX").form_data()).items()) == [
            ("a", "v")
        ]

    async def test_parse_urlencoded(self) -> None:
        """workerd: ``+`` is a space, ``%`` takes up to two hex digits (``%zz`` -> "zz", ``%4`` ->
        U+0004, ``%`` dropped), invalid UTF-8 becomes U+FFFD, a charset parameter is fine."""
        body = "a=1&b=x+y%21&a=2&c&=e&d=%zz&f=%&g=%4g&h=%%41&i=%C3%A9&j=%FF&k=a=b"
        form = await form_request(body, "application/x-www-form-urlencoded; charset=UTF-8").form_data()
        assert list(form.items()) == [
            ("a", "1"),
            ("b", "x y!"),
            ("a", "2"),
            ("c", ""),
            ("", "e"),
            ("d", "zz"),
            ("f", ""),
            ("g", "\x04g"),
            ("h", "A"),
            ("i", "é"),
            ("j", "\ufffd"),
            ("k", "a=b"),
        ]

    async def test_parse_errors(self) -> None:
        """workerd's TypeErrors for a body that is no form; a second read is the SDK's OSError."""
        multipart = "multipart/form-data; boundary=XX"
        part = '--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n'
        cases: list[tuple[str | bytes, str | None, str]] = [
            ("a=1", "text/plain", "Unrecognized Content-Type header value. FormData can only parse the following"),
            (b"a=1", None, "Parsing a Body as FormData requires a Content-Type header."),
            ("x", "multipart/form-data", "No boundary string in Content-Type header."),
            ("garbage", multipart, "No initial boundary string (or you have a truncated message)."),
            (part, multipart, "No subsequent boundary string after multipart message."),
            (part + "--XX", multipart, "No subsequent boundary string after multipart message."),
            ("--XX   \r\n", multipart, "Boundary string was not succeeded by CRLF, LF, or '--'."),
            ("--XX\r\nContent-Type: a/b\r\n\r\nv\r\n--XX--", multipart, "No valid Content-Disposition header found"),
            (
                "--XX\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--XX--",
                multipart,
                "Content-Disposition header in FormData part is missing a name.",
            ),
        ]
        for body, content_type, message in cases:
            with pytest.raises(TypeError) as info:
                await form_request(body, content_type).form_data()
            assert str(info.value).startswith(message), (body, info.value)
        assert list((await form_request("--XX--\r\n", multipart).form_data()).items()) == []
        resp = sdk.Response("a=1", headers={"content-type": "application/x-www-form-urlencoded"})
        assert (await resp.form_data())["a"] == "1"
        with pytest.raises(OSError, match="^Body already used$"):
            await resp.form_data()

    async def test_body_blob(self) -> None:
        """workerd: ``body.blob()`` is typed with the Content-Type as a MIME type serialized
        (``Text/Weird; A=B`` -> ``text/weird;a=B``, quotes dropped), which the SDK's Blob then
        lower-cases; "" without one."""
        blob = await form_request("hey", "Text/Weird; A=B").blob()
        assert (type(blob), blob.content_type, blob.size) == (sdk.Blob, "text/weird;a=b", 3)
        blob = await form_request("hey", 'text/plain;charset="UTF-8"; x').blob()
        assert blob.content_type == "text/plain;charset=utf-8"
        assert (await form_request("hey", "garbage").blob()).content_type == ""
        assert (await sdk.Response(b"\x00").blob()).content_type == ""

    def test_js_constructors(self) -> None:
        """``js.Blob.new``, ``js.File.new`` and ``js.FormData.new`` make the same objects."""
        blob = js.Blob.new(["a", "b"], {"type": "A/B"})
        file = js.File.new(["c"], "f.txt", type="t/t", lastModified=3)
        form = js.FormData.new()
        form.append("b", blob)
        form.set("f", file)
        assert (blob.size, blob.type, file.name, file.lastModified) == (2, "a/b", "f.txt", 3)
        assert form.has("f") and form.getAll("b")[0].name == "b"

    async def test_fetch_form(self, server: Server, transport: str) -> None:
        """A FormData body sent with fetch arrives as multipart/form-data; a form body read back."""
        form = sdk.FormData({"a": "1"})
        form.append("up", sdk.File("data", "d.txt", "text/plain"))
        data = await (await sdk.fetch(server.base + "/echo", method="POST", body=form)).json()
        assert data["headers"]["content-type"].startswith("multipart/form-data; boundary=")
        assert 'name="up"; filename="d.txt"\r\nContent-Type: text/plain\r\n\r\ndata\r\n' in data["body"]
        form = await (await sdk.fetch(server.base + "/form")).form_data()
        assert form.get_all("a") == ["1", "2"] and form["b"] == "x y!"


UPLOAD_ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint


class Store(DurableObject):
    async def fetch(self, request):
        form = await request.form_data()
        upload = form["file"]
        await self.ctx.storage.put(upload.name, await upload.bytes())
        return Response.json({"name": upload.name, "type": upload.content_type, "title": form["title"]})


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.STORE.getByName("s").fetch(request)
"""


async def test_upload_through_worker_and_object(tmp_path: Path, durable_runtime: durable.Runtime) -> None:
    """A multipart upload reaches a Durable Object through a Worker and is read with form_data()."""
    (tmp_path / "src").mkdir()
    config = {
        "main": "src/entry.py",
        "durable_objects": {"bindings": [{"name": "STORE", "class_name": "Store"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Store"]}],
    }
    (tmp_path / "wrangler.jsonc").write_text(json.dumps(config))
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(UPLOAD_ENTRY))
    app = pw.asgi_app(tmp_path, durable_runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        resp = await client.post("/", data={"title": "T"}, files={"file": ("a.png", b"\x89PNG", "image/png")})
        assert resp.json() == {"name": "a.png", "type": "image/png", "title": "T"}


class Echo(sdk.DurableObject):
    async def fetch(self, request: Any) -> Any:
        return sdk.Response("hi")


async def test_stub_fetch_url(durable_runtime: durable.Runtime) -> None:
    """The SDK reads ``url`` from workerd's response: ``stub.fetch``'s says the URL requested (as
    JavaScript's ``response.url`` does), not ``""``."""
    durable_runtime.namespace(Echo, name="ECHO")
    pw.serving(durable_runtime)
    resp = await sdk.env.ECHO.getByName("e").fetch("http://o/path?q=1")
    assert isinstance(resp, sdk.FetchResponse)
    assert (resp.url, resp.redirected) == ("http://o/path?q=1", False)
