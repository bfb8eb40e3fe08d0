"""What an HTTP client sees from ``asgi_app`` / ``durable serve`` compared with workerd serving the
same Worker over HTTP (miniflare 4's HTTP front, compatibility date 2026-04-07, probed with raw
sockets and httpx). Each test quotes the workerd bytes it follows."""

from __future__ import annotations

import gzip
import importlib.util
import json
import socket
import sys
import zlib
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
import pytest
from test_serve import serve, write_app  # noqa: F401 - the fixture, shared

import durable
from durable.asgi import asgi_app

HANG_GUARD = 10.0
TEXT = "hello world " * 200
HAVE_FAST_STACK = all(importlib.util.find_spec(m) is not None for m in ("uvloop", "httptools"))
STACKS = [
    ("asyncio", "h11"),
    pytest.param("uvloop", "httptools", marks=pytest.mark.skipif(not HAVE_FAST_STACK, reason="no uvloop/httptools")),
]


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request: durable.Request) -> durable.Response:
        path = request.url.split("/", 3)[3].split("?")[0]
        if path.startswith("echo"):
            body = None if request.body is None else await request.text()
            return durable.Response.json({"url": request.url, "method": request.method, "body": body})
        if path == "gzip":
            return durable.Response(TEXT, headers={"content-encoding": "gzip", "content-type": "text/plain"})
        if path == "gzip-stream":

            async def chunks() -> AsyncIterator[bytes]:
                yield b"hello "
                yield b"world"

            return durable.Response(chunks(), headers={"content-encoding": "gzip"})
        if path == "gzip-none":
            return durable.Response(None, headers={"content-encoding": "gzip"})
        if path.startswith("coding/"):  # coding/<content-encoding>/<content-type>
            _, coding, kind = path.split("/", 2)
            return durable.Response("abc", headers={"content-encoding": coding, "content-type": kind.replace("_", "/")})
        if path == "none":
            return durable.Response(None)
        return durable.Response("hello")


async def call(
    method: str = "GET",
    raw_path: bytes = b"/",
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    http_version: str = "1.1",
    with_raw_path: bool = True,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Drive the app with one HTTP request as a server would; return status, headers and body
    (``with_raw_path=False``: as a server that gives no ``raw_path``, which ASGI leaves optional)."""
    sent: list[MutableMapping[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("utf-8"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"h"), *(headers or [])],
        "server": ("127.0.0.1", 8787),
        "client": ("127.0.0.1", 5000),
    }
    if not with_raw_path:
        del scope["raw_path"]
    async with durable.Runtime() as rt:
        await asgi_app(Worker, rt)(scope, receive, send)
    start = sent[0]
    return start["status"], list(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    values = [value for key, value in headers if key == name]
    assert len(values) <= 1
    return values[0] if values else None


class TestContentEncoding:
    async def test_gzip_is_compressed_by_the_server(self) -> None:
        """workerd: ``new Response(text, {headers: {"content-encoding": "gzip"}})`` goes out
        compressed (``Content-Encoding: gzip``, a gzip body: encodeBody "automatic"); durable
        sent the text as it was under that header, which clients fail to decode."""
        status, headers, body = await call("GET", b"/gzip")
        assert status == 200
        assert header(headers, b"content-encoding") == b"gzip"
        assert gzip.decompress(body).decode() == TEXT
        assert header(headers, b"content-length") == str(len(body)).encode()

    async def test_a_streamed_body_is_compressed_chunk_by_chunk(self) -> None:
        """workerd: a ReadableStream under ``content-encoding: gzip`` goes out chunked and gzipped."""
        _, headers, body = await call("GET", b"/gzip-stream", headers=[(b"accept-encoding", b"gzip")])
        assert header(headers, b"content-encoding") == b"gzip"
        assert header(headers, b"content-length") is None
        assert gzip.decompress(body) == b"hello world"

    @pytest.mark.parametrize("accept", [b"identity", b"deflate", b"br;q=0, identity"])
    async def test_a_client_that_refuses_gzip_gets_the_text_without_the_header(self, accept: bytes) -> None:
        """miniflare 4 with ``Accept-Encoding: identity`` (or ``deflate``): ``200``,
        ``Content-Type: text/plain`` and no Content-Encoding, the body as given."""
        _, headers, body = await call("GET", b"/gzip", headers=[(b"accept-encoding", accept)])
        assert header(headers, b"content-encoding") is None
        assert body.decode() == TEXT

    async def test_weights_pick_the_coding(self) -> None:
        """miniflare 4: ``Accept-Encoding: identity;q=0.5, gzip;q=0.9`` gets gzip."""
        _, headers, body = await call("GET", b"/gzip", headers=[(b"accept-encoding", b"identity;q=0.5, gzip;q=0.9")])
        assert header(headers, b"content-encoding") == b"gzip"
        assert gzip.decompress(body).decode() == TEXT

    @pytest.mark.parametrize(("accept", "sent"), [(b"gzip", b"gzip"), (b"br, gzip", b"gzip"), (b"br", None)])
    async def test_br_goes_out_as_gzip_or_plain(self, accept: bytes, sent: bytes | None) -> None:
        """workerd compresses ``content-encoding: br`` with Brotli, and miniflare turns it into gzip
        for a client that takes only gzip (``Accept-Encoding: gzip`` gets ``Content-Encoding:
        gzip``). Without a Brotli encoder, durable sends gzip wherever the client takes it, else
        the plain body without the header."""
        _, headers, body = await call("GET", b"/coding/br/text_plain", headers=[(b"accept-encoding", accept)])
        assert header(headers, b"content-encoding") == sent
        assert (gzip.decompress(body) if sent else body) == b"abc"

    @pytest.mark.parametrize("coding", ["deflate", "zstd", "GZIP", "x-gzip", "identity", "foo"])
    async def test_other_codings_go_out_as_given(self, coding: str) -> None:
        """workerd: ``content-encoding`` ``deflate``, ``zstd``, ``GZIP``, ``x-gzip``, ``identity``
        or ``foo`` is sent with the body as given (``Content-Length: 23``), whatever the client accepts."""
        _, headers, body = await call(
            "GET", f"/coding/{coding}/text_plain".encode(), headers=[(b"accept-encoding", b"gzip")]
        )
        assert header(headers, b"content-encoding") == coding.encode()
        assert body == b"abc"

    async def test_a_type_the_edge_does_not_compress_keeps_gzip(self) -> None:
        """miniflare negotiates only the types Cloudflare compresses: an ``image/png`` labelled gzip
        is compressed by workerd even for ``Accept-Encoding: identity``."""
        _, headers, body = await call("GET", b"/coding/gzip/image_png", headers=[(b"accept-encoding", b"identity")])
        assert header(headers, b"content-encoding") == b"gzip"
        assert zlib.decompress(body, wbits=31) == b"abc"

    async def test_head_sends_no_body(self) -> None:
        """workerd: a HEAD's answer has the headers and no body."""
        _, headers, body = await call("HEAD", b"/gzip")
        assert header(headers, b"content-encoding") == b"gzip"
        assert body == b""


class TestFraming:
    async def test_head_of_no_body_gives_no_length(self) -> None:
        """workerd: ``HEAD`` of ``new Response(null)`` answers ``HTTP/1.1 200 OK`` with no
        Content-Length. durable said ``content-length: 0``, which through ``stub.fetch`` (whose
        HEAD response has no body) was wrong for every object: ``HEAD /str`` said 0, ``GET`` 5."""
        status, headers, body = await call("HEAD", b"/none")
        assert (status, header(headers, b"content-length"), body) == (200, None, b"")

    async def test_get_of_no_body_gives_length_zero(self) -> None:
        """workerd: ``GET`` of ``new Response(null)`` answers ``Content-Length: 0``."""
        _, headers, _ = await call("GET", b"/none")
        assert header(headers, b"content-length") == b"0"

    async def test_post_without_length_or_chunked_has_no_body(self) -> None:
        """workerd: ``POST /echo HTTP/1.1`` with neither Content-Length nor Transfer-Encoding
        reaches the object with ``body`` null. durable gave it an empty streamed body, which
        ``stub.fetch`` forwarded with a made-up ``transfer-encoding: chunked``."""
        _, _, body = await call("POST", b"/echo")
        assert json.loads(body)["body"] is None

    async def test_chunked_post_keeps_its_body(self) -> None:
        """A chunked request body (Transfer-Encoding, no length) reaches the Worker."""
        _, _, body = await call("POST", b"/echo", headers=[(b"transfer-encoding", b"chunked")], body=b"abc")
        assert json.loads(body)["body"] == "abc"

    @pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"GZIP, Chunked"])
    async def test_a_body_in_another_transfer_coding_is_refused(self, coding: bytes) -> None:
        """workerd refuses ``POST`` with ``Transfer-Encoding: gzip, chunked`` (or ``deflate,chunked``):
        ``500`` (miniflare 4, 2026-12-07). httptools decodes the chunks of ``gzip, chunked`` and
        uvicorn passed the body on still gzipped, so the Worker read gzip bytes as the body; now
        ``501`` (RFC 9112 6.1) and the Worker is not called."""
        status, _, body = await call("POST", b"/echo", headers=[(b"transfer-encoding", coding)], body=b"abc")
        assert status == 501
        assert body.startswith(b"Not Implemented: Transfer-Encoding ")
        assert b"accepted only in the chunked coding" in body

    @pytest.mark.parametrize("coding", [b"chunked, gzip", b"gzip", b"identity"])
    async def test_a_coding_not_ending_in_chunked_is_a_bad_request(self, coding: bytes) -> None:
        """``Transfer-Encoding: chunked, gzip`` or ``gzip`` leaves the length unknown: both of
        uvicorn's parsers answer ``400`` (RFC 9112 6.3), workerd ``500`` (miniflare 4,
        2026-12-07); an ASGI server that passed one on got ``400`` here too."""
        status, _, body = await call("POST", b"/echo", headers=[(b"transfer-encoding", coding)], body=b"abc")
        assert status == 400
        assert body.endswith(b"does not end in chunked: the body has no length")

    @pytest.mark.parametrize("coding", [b"Chunked", b"chunked, chunked"])
    async def test_chunked_in_any_case_is_accepted(self, coding: bytes) -> None:
        """workerd serves ``Transfer-Encoding: Chunked`` and ``chunked, chunked`` (miniflare 4, 2026-12-07)."""
        _, _, body = await call("POST", b"/echo", headers=[(b"transfer-encoding", coding)], body=b"abc")
        assert json.loads(body)["body"] == "abc"

    async def test_transfer_encoding_overrides_a_zero_length(self) -> None:
        """workerd reads ``Content-Length: 0`` with ``Transfer-Encoding: chunked`` and the chunked
        body ``abc`` as ``abc`` (miniflare 4, 2026-12-07; RFC 9112 6.3: Transfer-Encoding wins).
        h11 passes both headers on and reads the chunks, and the Worker got ``body`` None: the
        body was lost. (httptools refuses the pair with 400.)"""
        headers = [(b"content-length", b"0"), (b"transfer-encoding", b"chunked")]
        _, _, body = await call("POST", b"/echo", headers=headers, body=b"abc")
        assert json.loads(body)["body"] == "abc"

    async def test_transfer_encoding_overrides_a_length_over_the_limit(self) -> None:
        """workerd reads ``Content-Length: 999999999999`` with ``Transfer-Encoding: chunked`` and
        the chunked body ``abc`` as ``abc`` (200, miniflare 4, 2026-12-07); uvicorn's h11 protocol
        passes both on and reads the chunks, but the length alone got ``413`` here. The chunks
        are counted against ``max_body_size`` as they come; without Transfer-Encoding the length
        still gets ``413`` at once."""
        headers = [(b"content-length", b"999999999999"), (b"transfer-encoding", b"chunked")]
        status, _, body = await call("POST", b"/echo", headers=headers, body=b"abc")
        assert (status, json.loads(body)["body"]) == (200, "abc")
        status, _, _ = await call("POST", b"/echo", headers=headers[:1], body=b"abc")
        assert status == 413

    async def test_http2_without_length_keeps_its_body(self) -> None:
        """HTTP/2 announces no length: the body is read from the stream (nothing is lost)."""
        _, _, body = await call("POST", b"/echo", body=b"abc", http_version="2")
        assert json.loads(body)["body"] == "abc"


class TestRequestTarget:
    @pytest.mark.parametrize("method", ["get", "Post", "delete"])
    async def test_a_lower_case_method_is_refused(self, method: str) -> None:
        """workerd: ``get /echo HTTP/1.1`` answers ``501 ERROR: Unrecognized request method.``;
        httptools answers 400. h11 passed it on, and the Worker saw a ``GET``."""
        status, _, body = await call(method, b"/echo")
        assert status == 400
        assert body == f"Bad Request: Invalid HTTP method string: {method}".encode()

    @pytest.mark.parametrize(
        ("raw_path", "query", "url"),
        [
            (b"/echo#frag", b"", "http://h/echo"),
            (b"/echo", b"x=1#frag", "http://h/echo?x=1"),
            (b"/echo#frag", b"x=1", "http://h/echo"),  # "/echo#frag?x=1": the '?' is in the fragment
            (b"/echo%23b#c", b"", "http://h/echo%23b"),
        ],
    )
    async def test_a_fragment_is_dropped(self, raw_path: bytes, query: bytes, url: str) -> None:
        """workerd: ``GET /echo?x=1#frag`` reaches the Worker as ``/echo?x=1``; h11 passes the
        fragment on, and durable encoded it into the path (``/echo%23frag``)."""
        _, _, body = await call("GET", raw_path, query=query)
        assert json.loads(body)["url"] == url

    @pytest.mark.parametrize("method", ["OPTIONS", "GET"])
    async def test_the_asterisk_target_is_refused(self, method: str) -> None:
        """workerd cannot make ``OPTIONS * HTTP/1.1`` a URL: ``500`` and the log line "invalid URL;
        url = *" (miniflare 4, 2026-12-07; ``GET *`` too). Under uvicorn (either parser) it
        reached the Worker as ``http://h/*``, a path no client asked for; now ``400``."""
        status, _, body = await call(method, b"*")
        assert status == 400
        assert body == b"Bad Request: the request target * (asterisk form) names no resource to hand a Worker"

    @pytest.mark.parametrize(("raw_path", "with_raw_path"), [(b"*#x", True), (b"*", False)])
    async def test_the_asterisk_target_is_refused_with_a_fragment_or_without_raw_path(
        self, raw_path: bytes, with_raw_path: bool
    ) -> None:
        """``OPTIONS *#x HTTP/1.1``: uvicorn's h11 protocol passes the target on whole as
        ``raw_path``, and it still reached the Worker as ``http://h/*`` (a real server, 200); so
        did ``*`` from a server that gives no ``raw_path`` (the ASGI path alone). Refused as
        ``*`` is (workerd: 500, "invalid URL", miniflare 4, 2026-12-07)."""
        status, _, body = await call("OPTIONS", raw_path, with_raw_path=with_raw_path)
        assert status == 400
        assert body == b"Bad Request: the request target * (asterisk form) names no resource to hand a Worker"

    async def test_an_absolute_form_target_gives_its_path(self) -> None:
        """``GET http://other.example/echo?q=1`` (absolute form) under httptools reaches the Worker
        as ``http://<Host>/echo?q=1``; h11 passed the target as the path (``/http://other...``).
        (workerd behind miniflare answers 500.)"""
        _, _, body = await call("GET", b"http://other.example/echo", query=b"q=1")
        assert json.loads(body)["url"] == "http://h/echo?q=1"


ECHO_APP = """
import durable


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/gzip"):
            return durable.Response("hello world " * 200, headers={"content-encoding": "gzip", "content-type": "text/plain"})
        body = None if request.body is None else await request.text()
        return durable.Response.json({"headers": request.headers.multi_items(), "body": body})
"""


def _exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.slow
class TestServed:
    @pytest.mark.parametrize(("loop", "http"), STACKS)
    def test_trailers_are_not_request_headers(self, serve: Any, tmp_path: Path, loop: str, http: str) -> None:  # noqa: F811
        """A chunked request's trailer fields are not headers: under httptools, uvicorn added
        them to the request's headers (a trailer ``x-trailer: t`` reached the Worker as a
        header); h11 drops them. workerd fails to read such a body (``internal error``)."""
        app = write_app(tmp_path, ECHO_APP)
        server = serve(
            "--in-memory", "--loop", loop, "--http", http, command=[sys.executable, "-m", "durable", "serve", str(app)]
        )
        reply = _exchange(
            server.url,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Trailer: t\r\nCF-Connecting-IP: 6.6.6.6\r\n\r\n",
        )
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        echoed = json.loads(body)
        assert echoed["body"] == "abc"
        names = [name for name, _ in echoed["headers"]]
        assert "x-trailer" not in names
        assert dict(echoed["headers"])["cf-connecting-ip"] == "127.0.0.1"

    @pytest.mark.parametrize(("loop", "http"), STACKS)
    def test_wire_has_no_server_header_and_gzip_decodes(self, serve: Any, tmp_path: Path, loop: str, http: str) -> None:  # noqa: F811
        """workerd sends no ``Server`` header (uvicorn sent ``server: uvicorn``); a Worker's
        ``content-encoding: gzip`` response decodes in httpx (it raised ``DecodingError`` on the
        plain text)."""
        app = write_app(tmp_path, ECHO_APP)
        server = serve(
            "--in-memory", "--loop", loop, "--http", http, command=[sys.executable, "-m", "durable", "serve", str(app)]
        )
        with httpx.Client(timeout=HANG_GUARD) as client:
            response = client.get(server.url + "/gzip")
        assert response.status_code == 200
        assert "server" not in response.headers
        assert response.headers["content-encoding"] == "gzip"
        assert response.text == "hello world " * 200
