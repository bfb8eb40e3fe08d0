"""Review of the serve-diff branch: a Worker's ``Content-Encoding: gzip`` with no body, an empty
body, a ``HEAD``, and what gzip bytes go out, compared with workerd behind miniflare 4
(compatibility date 2026-04-07, raw HTTP/1.1 sockets)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from test_serve_diff import call, header

import durable
from durable.asgi import asgi_app

GZIP = {"content-encoding": "gzip", "content-type": "text/plain"}


class TestNoBodyUnderGzip:
    async def test_no_body_stays_no_body(self) -> None:
        """workerd: ``new Response(null, {headers: {"content-encoding": "gzip"}})`` answers
        ``Content-Length: 0``, ``Content-Encoding: gzip`` and no body (with or without
        ``Accept-Encoding: gzip``, from a Worker or through ``stub.fetch``). durable sent a
        20-byte gzip member of nothing."""
        _, headers, body = await call("GET", b"/gzip-none", headers=[(b"accept-encoding", b"gzip")])
        assert header(headers, b"content-encoding") == b"gzip"
        assert header(headers, b"content-length") == b"0"
        assert body == b""

    async def test_head_of_no_body_has_no_length(self) -> None:
        """workerd: ``HEAD`` of that response has no Content-Length (durable said 20)."""
        _, headers, body = await call("HEAD", b"/gzip-none")
        assert header(headers, b"content-encoding") == b"gzip"
        assert header(headers, b"content-length") is None
        assert body == b""

    async def test_an_empty_body_stays_empty(self) -> None:
        """workerd: ``new Response("", gzip)`` goes out as an empty chunked body (``0\\r\\n\\r\\n``)
        under ``Content-Encoding: gzip``."""

        class W(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                return durable.Response("", headers=GZIP)

        async with durable.Runtime() as rt:
            transport = httpx.ASGITransport(app=asgi_app(W, rt))
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                response = await client.get("/")
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-length"] == "0"
        assert response.content == b""  # and a client decodes it

    async def test_an_empty_stream_stays_empty(self) -> None:
        """workerd: a ReadableStream that closes at once, under gzip: an empty chunked body."""

        async def nothing() -> AsyncIterator[bytes]:
            chunks: list[bytes] = []
            for chunk in chunks:
                yield chunk

        class W(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                return durable.Response(nothing(), headers=GZIP)

        async with durable.Runtime() as rt:
            transport = httpx.ASGITransport(app=asgi_app(W, rt))
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                response = await client.get("/", headers={"accept-encoding": "gzip"})
                raw = await client.get("/", headers={"accept-encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == b""
        assert raw.num_bytes_downloaded == 0


class TestHead:
    async def test_head_sends_no_length_and_compresses_nothing(self) -> None:
        """workerd: ``HEAD`` of ``new Response(text, gzip)`` answers ``Content-Encoding: gzip``
        with no Content-Length. durable compressed the whole body to give its length."""
        _, headers, body = await call("HEAD", b"/gzip")
        assert header(headers, b"content-encoding") == b"gzip"
        assert header(headers, b"content-length") is None
        assert body == b""

    async def test_head_closes_the_worker_s_stream(self) -> None:
        """A ``HEAD``'s streamed body is closed unread, as without a Content-Encoding; under gzip
        the compressing wrapper was closed before it started, so the Worker's stream never was."""
        closed = []

        async def gen() -> AsyncIterator[bytes]:
            try:
                yield b"a"
                yield b"b"
            finally:
                closed.append(True)

        class W(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                stream = gen()
                await anext(stream)  # started, so that closing it runs the finally
                return durable.Response(stream, headers=GZIP)

        async with durable.Runtime() as rt:
            transport = httpx.ASGITransport(app=asgi_app(W, rt))
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                response = await client.head("/", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert closed == [True]


class TestGzipBytes:
    async def test_the_gzip_header_has_no_timestamp(self) -> None:
        """workerd's gzip member starts ``1f8b 08 00 00000000 00 03``: no modification time,
        default level, so the same body gives the same bytes. durable's gzip.compress wrote the
        current time (and took level 9, slow on large bodies)."""
        _, _, body = await call("GET", b"/gzip")
        assert body[:10] == bytes.fromhex("1f8b0800000000000003")
        assert zlib.decompress(body, wbits=31) == ("hello world " * 200).encode()


class TestNegotiation:
    @pytest.mark.parametrize("content_type", ["", None])
    async def test_an_empty_content_type_is_negotiated(self, content_type: str | None) -> None:
        """miniflare negotiates a response whose Content-Type is missing or empty (``!header``):
        ``content-type: ""`` under gzip for ``Accept-Encoding: identity`` goes out plain without
        the header. durable kept gzip for the empty one."""
        headers = {"content-encoding": "gzip"}
        if content_type is not None:
            headers["content-type"] = content_type

        class W(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                response = durable.Response("abc", headers=headers)
                if content_type is None:
                    response.headers.delete("content-type")
                return response

        async with durable.Runtime() as rt:
            transport = httpx.ASGITransport(app=asgi_app(W, rt))
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                response = await client.get("/", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in response.headers
        assert response.content == b"abc"
