"""Tests of the ASGI front, in-process, with Workers that do not touch Durable Objects."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from durable._http import Request, Response, WorkerEntrypoint
from durable.asgi import DEFAULT_MAX_BODY_SIZE, WorkerApp, asgi_app

from helpers import http_scope

Message = MutableMapping[str, Any]


class Echo(WorkerEntrypoint):
    """Answers with a JSON description of the request it received."""

    async def fetch(self, request: Request) -> Response:
        body = await request.text()
        return Response.json(
            {
                "method": request.method,
                "url": request.url,
                "headers": request.headers.multi_items(),
                "body": body,
                "env": getattr(self.env, "GREETING", None),
            }
        )


class FakeRuntime:
    """Stands in for durable.Runtime: only env is used; aclose must never be called."""

    def __init__(self) -> None:
        self.env = SimpleNamespace(GREETING="hello")
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def client_for(app: WorkerApp, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def app_for(worker: type[WorkerEntrypoint], **kwargs: Any) -> WorkerApp:
    return asgi_app(worker, FakeRuntime(), **kwargs)


class RawCall:
    """Drives the app with a hand-made scope, recording what it sends."""

    def __init__(self, incoming: list[Message]) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        assert self.incoming, "the app read more messages than the test provided"
        return self.incoming.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def raw_call(app: WorkerApp, scope: dict[str, Any], incoming: list[Message] | None = None) -> RawCall:
    call = RawCall(incoming if incoming is not None else [{"type": "http.request", "body": b""}])
    await app(scope, call.receive, call.send)
    return call


class TestRequestTranslation:
    async def test_get(self) -> None:
        """A GET becomes a Request with the absolute URL, the method and the headers."""
        async with client_for(app_for(Echo)) as client:
            resp = await client.get("/a/b?x=1", headers={"X-Custom": "v"})
        data = resp.json()
        assert resp.status_code == 200
        assert data["method"] == "GET"
        assert data["url"] == "http://testserver/a/b?x=1"
        assert ["x-custom", "v"] in data["headers"]
        assert data["body"] == ""

    async def test_env_is_the_runtime_env(self) -> None:
        """The Worker sees runtime.env as self.env."""
        async with client_for(app_for(Echo)) as client:
            assert (await client.get("/")).json()["env"] == "hello"

    async def test_post_body(self) -> None:
        """A request body reaches the Worker."""
        async with client_for(app_for(Echo)) as client:
            resp = await client.post("/p", content="é body")
        assert resp.json()["method"] == "POST"
        assert resp.json()["body"] == "é body"

    async def test_streamed_request_body(self) -> None:
        """A chunked request body is streamed into the Request."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b"one,"
            yield b"two"

        async with client_for(app_for(Echo)) as client:
            resp = await client.post("/", content=chunks())
        assert resp.json()["body"] == "one,two"

    async def test_raw_query_string_is_kept(self) -> None:
        """The query string reaches the Worker percent-encoded exactly as the client sent it."""
        async with client_for(app_for(Echo)) as client:
            resp = await client.get("/?name=%C3%A9%20x&a=+b&name=B")
        assert resp.json()["url"] == "http://testserver/?name=%C3%A9%20x&a=+b&name=B"

    async def test_raw_path_is_kept(self) -> None:
        """An encoded slash or space in the path stays encoded as received."""
        call = await raw_call(app_for(Echo), http_scope(path="/a/b c", raw_path=b"/a%2Fb%20c", query_string=b"q=%2F"))
        assert json.loads(call.body)["url"] == "http://example.com/a%2Fb%20c?q=%2F"

    async def test_unencoded_bytes_are_percent_encoded(self) -> None:
        """Raw bytes that cannot appear in a URL are percent-encoded, the rest kept."""
        call = await raw_call(
            app_for(Echo), http_scope(path="/é", raw_path="/é".encode(), query_string='a=é "'.encode())
        )
        assert json.loads(call.body)["url"] == "http://example.com/%C3%A9?a=%C3%A9%20%22"

    async def test_decoded_path_without_raw_path(self) -> None:
        """Without raw_path the decoded path is encoded, a literal % included."""
        scope = http_scope(path="/100% é?")
        del scope["raw_path"]
        call = await raw_call(app_for(Echo), scope)
        assert json.loads(call.body)["url"] == "http://example.com/100%25%20%C3%A9%3F"

    async def test_root_path_is_encoded(self) -> None:
        """A root_path holding characters that need it is percent-encoded in the URL."""
        scope = http_scope(root_path="/my api", path="/x", raw_path=b"/x")
        call = await raw_call(app_for(Echo), scope)
        assert json.loads(call.body)["url"] == "http://example.com/my%20api/x"

    @pytest.mark.parametrize("path", ["/api/items", "/items"])
    async def test_root_path(self, path: str) -> None:
        """The URL includes root_path whether or not the server already put it in path."""
        scope = http_scope(root_path="/api", path=path, raw_path=path.encode())
        call = await raw_call(app_for(Echo), scope)
        assert json.loads(call.body)["url"] == "http://example.com/api/items"

    @pytest.mark.parametrize(
        ("host", "expected"),
        [(b"[::1]:8000", "http://[::1]:8000/"), (b"h.example:8080", "http://h.example:8080/"), (b"H", "http://h/")],
    )
    async def test_host_forms(self, host: bytes, expected: str) -> None:
        """Names, ports and bracketed IPv6 addresses in the Host header are accepted."""
        call = await raw_call(app_for(Echo), http_scope(headers=[(b"host", host)]))
        assert json.loads(call.body)["url"] == expected

    async def test_host_header_wins_and_is_lower_cased(self) -> None:
        """The URL's host comes from the Host header, lower-cased, default port dropped."""
        scope = http_scope(scheme="https", headers=[(b"host", b"Example.COM:443")])
        call = await raw_call(app_for(Echo), scope)
        assert json.loads(call.body)["url"] == "https://example.com/"

    @pytest.mark.parametrize(
        ("server", "expected"),
        [
            (("10.0.0.1", 8000), "http://10.0.0.1:8000/"),
            (("::1", 8000), "http://[::1]:8000/"),
            (("/tmp/sock", None), "http://localhost/"),
            (None, "http://localhost/"),
            (("h", 80), "http://h/"),
        ],
    )
    async def test_no_host_header(self, server: tuple[str, int | None] | None, expected: str) -> None:
        """Without a Host header the URL's host comes from the server address."""
        call = await raw_call(app_for(Echo), http_scope(headers=[], server=server))
        assert json.loads(call.body)["url"] == expected

    async def test_head_has_no_body(self) -> None:
        """A HEAD response keeps its headers and Content-Length but sends no body."""
        async with client_for(app_for(Echo)) as client:
            resp = await client.head("/")
        assert resp.status_code == 200
        assert resp.content == b""
        assert int(resp.headers["content-length"]) > 0

    async def test_get_with_a_body_reaches_the_worker_without_it(self) -> None:
        """A GET sent with a body reaches the Worker as a body-less Request."""
        scope = http_scope(headers=[(b"host", b"h"), (b"content-length", b"3")])
        call = await raw_call(app_for(Echo), scope, [{"type": "http.request", "body": b"abc"}])
        assert call.status == 200
        assert json.loads(call.body)["body"] == ""

    async def test_sync_fetch_is_accepted(self) -> None:
        """A Worker whose fetch is a plain def works too."""

        class Sync(WorkerEntrypoint):
            def fetch(self, request: Request) -> Response:  # type: ignore[override]
                return Response("sync")

        async with client_for(app_for(Sync)) as client:
            assert (await client.get("/")).text == "sync"


class TestResponseTranslation:
    async def test_text_response(self) -> None:
        """Status, body and headers of the Worker's Response reach the client."""

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response("nope", status=404, headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])

        async with client_for(app_for(W)) as client:
            resp = await client.get("/")
        assert resp.status_code == 404
        assert resp.text == "nope"
        assert resp.headers["content-type"] == "text/plain;charset=UTF-8"
        assert resp.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert resp.headers["content-length"] == "4"

    async def test_framing_headers_are_computed(self) -> None:
        """A Content-Length set by the Worker is replaced by the real one."""

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(b"abc", headers={"content-length": "99"})

        call = await raw_call(app_for(W), http_scope())
        assert call.sent[0]["headers"] == [(b"content-length", b"3")]
        assert call.body == b"abc"

    async def test_no_content(self) -> None:
        """A 204 is sent without a body or a Content-Length; an empty 200 has length 0."""

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(status=204 if request.url.endswith("/204") else 200)

        async with client_for(app_for(W)) as client:
            r204 = await client.get("/204")
            r200 = await client.get("/200")
        assert (r204.status_code, r204.content, "content-length" in r204.headers) == (204, b"", False)
        assert (r200.status_code, r200.headers["content-length"]) == (200, "0")

    async def test_streamed_response(self) -> None:
        """A streamed Response body is sent chunk by chunk without a Content-Length."""

        async def gen() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(gen())

        call = await raw_call(app_for(W), http_scope())
        assert call.status == 200
        assert call.sent[0]["headers"] == []
        chunks = [m["body"] for m in call.sent[1:]]
        assert chunks == [b"a", b"b", b""]

    async def test_echo_streamed_request_body(self) -> None:
        """A Worker may stream the request body straight back."""

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(request.body)

        async with client_for(app_for(W)) as client:
            resp = await client.put("/", content=b"x" * 5000)
        assert resp.content == b"x" * 5000

    async def test_head_with_a_streamed_body(self) -> None:
        """A HEAD response with a streamed body sends no body and closes the stream."""
        closed = []

        async def gen() -> AsyncIterator[bytes]:
            try:
                yield b"a"
            finally:
                closed.append(True)

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                stream = gen()
                await anext(stream)  # started, so that closing it runs the finally
                return Response(stream)

        call = await raw_call(app_for(W), http_scope(method="HEAD"))
        assert call.status == 200 and call.body == b""
        assert closed == [True]


class TestErrors:
    async def test_worker_raises(self, caplog: pytest.LogCaptureFixture) -> None:
        """A Worker that raises gives 500 with a short text body, and the error is logged."""

        class Boom(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                raise RuntimeError("kaput")

        with caplog.at_level(logging.ERROR, logger="durable.asgi"):
            async with client_for(app_for(Boom)) as client:
                resp = await client.get("/x")
        assert resp.status_code == 500
        assert resp.text == "Worker threw exception"
        assert resp.headers["content-type"] == "text/plain;charset=UTF-8"
        assert "kaput" in caplog.text and "Boom" in caplog.text

    async def test_worker_returns_a_non_response(self, caplog: pytest.LogCaptureFixture) -> None:
        """A Worker returning something else than a Response gives 500, logged with the type."""

        class Bad(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return "text"  # type: ignore[return-value]

        with caplog.at_level(logging.ERROR, logger="durable.asgi"):
            async with client_for(app_for(Bad)) as client:
                resp = await client.get("/")
        assert resp.status_code == 500
        assert "returned str" in caplog.text

    async def test_worker_without_fetch(self, caplog: pytest.LogCaptureFixture) -> None:
        """A WorkerEntrypoint subclass without fetch gives 500 ('Handler does not export...')."""

        class Empty(WorkerEntrypoint):
            pass

        with caplog.at_level(logging.ERROR, logger="durable.asgi"):
            async with client_for(app_for(Empty)) as client:
                assert (await client.get("/")).status_code == 500
        assert "does not export a fetch() function" in caplog.text

    async def test_response_with_a_used_body(self, caplog: pytest.LogCaptureFixture) -> None:
        """Returning a Response whose body was read gives 500."""

        class Used(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                resp = Response("x")
                await resp.text()
                return resp

        with caplog.at_level(logging.ERROR, logger="durable.asgi"):
            async with client_for(app_for(Used)) as client:
                assert (await client.get("/")).status_code == 500

    async def test_stream_failing_before_first_chunk(self, caplog: pytest.LogCaptureFixture) -> None:
        """A response stream that fails before its first chunk still gives a clean 500."""

        fail = True

        async def gen() -> AsyncIterator[bytes]:
            if fail:
                raise OSError("disk gone")
            yield b""

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(gen(), status=201)

        with caplog.at_level(logging.ERROR, logger="durable.asgi"):
            call = await raw_call(app_for(W), http_scope())
        assert call.status == 500
        assert "disk gone" in caplog.text

    async def test_stream_failing_midway_aborts(self) -> None:
        """A response stream failing after the status was sent propagates, aborting the connection."""

        async def gen() -> AsyncIterator[bytes]:
            yield b"partial"
            raise OSError("midway")

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(gen())

        call = RawCall([{"type": "http.request", "body": b""}])
        with pytest.raises(OSError, match="midway"):
            await app_for(W)(http_scope(), call.receive, call.send)
        assert call.status == 200
        assert all(m.get("more_body") for m in call.sent[1:])

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"host", b"h"), (b"content-length", b"abc")],
            [(b"host", b"h"), (b"content-length", b"-1")],
            [(b"host", b"h"), (b"content-length", "²".encode("latin-1"))],
            [(b"host", b"h:port")],
            [(b"host", b"user@h")],
            [(b"host", b"h"), (b"content-length", b"1"), (b"content-length", b"2")],
            [(b"host", b"a b")],
            [(b"host", b"a/b")],
            [(b"host", b"")],
            [(b"host", "é".encode())],
            [(b"host", b"h"), (b"bad header", b"v")],
            [(b"host", b"h"), (b"x", b"a\nb")],
        ],
    )
    async def test_malformed_request(self, headers: list[tuple[bytes, bytes]]) -> None:
        """A request this front cannot translate gets 400 and the Worker is not called."""
        called = []

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                called.append(request)
                return Response("ok")

        call = await raw_call(app_for(W), http_scope(method="POST", headers=headers))
        assert call.status == 400
        assert call.body.startswith(b"Bad Request")
        assert called == []

    async def test_invalid_method(self) -> None:
        """A method that is not an HTTP token gets 400."""
        call = await raw_call(app_for(Echo), http_scope(method="GE T"))
        assert call.status == 400


class TestBodyLimit:
    async def test_default_limit(self) -> None:
        """The default limit is Cloudflare's 100 MB."""
        assert app_for(Echo).max_body_size == DEFAULT_MAX_BODY_SIZE == 100 * 1024 * 1024

    async def test_declared_length_over_the_limit(self) -> None:
        """A Content-Length over the limit gets 413 before the Worker is called."""
        called = []

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                called.append(request)
                return Response("ok")

        async with client_for(app_for(W, max_body_size=10)) as client:
            resp = await client.post("/", content=b"x" * 11)
            ok = await client.post("/", content=b"x" * 10)
        assert resp.status_code == 413
        assert "10 bytes" in resp.text
        assert ok.status_code == 200
        assert len(called) == 1

    async def test_streamed_body_over_the_limit(self) -> None:
        """A chunked body that grows past the limit while the Worker reads it gets 413."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"x" * 4

        async with client_for(app_for(Echo, max_body_size=10)) as client:
            resp = await client.post("/", content=chunks())
        assert resp.status_code == 413

    async def test_limit_holds_when_the_worker_swallows_the_error(self) -> None:
        """A Worker that catches the overflow and answers still yields 413."""

        class Swallow(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                try:
                    await request.bytes()
                except Exception:
                    pass
                return Response("fine")

        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * 20

        async with client_for(app_for(Swallow, max_body_size=10)) as client:
            assert (await client.post("/", content=chunks())).status_code == 413

    async def test_echoed_stream_over_the_limit(self) -> None:
        """A Worker streaming an oversized body straight back gets 413 if nothing was sent yet."""

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                return Response(request.body)

        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * 20

        async with client_for(app_for(W, max_body_size=10)) as client:
            assert (await client.post("/", content=chunks())).status_code == 413

    def test_invalid_limit(self) -> None:
        """A negative limit raises ValueError."""
        with pytest.raises(ValueError):
            app_for(Echo, max_body_size=-1)

    async def test_client_disconnect_while_reading(self) -> None:
        """A client that disconnects mid-body gets nothing sent and does not crash the app."""
        call = await raw_call(
            app_for(Echo),
            http_scope(method="POST", headers=[(b"host", b"h"), (b"transfer-encoding", b"chunked")]),
            [{"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"}],
        )
        assert call.sent == []


class TestWaitUntil:
    async def test_wait_until_finishes_after_the_response(self) -> None:
        """Work passed to ctx.wait_until completes after the response is sent, within the call."""
        events: list[str] = []

        class W(WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                async def later() -> None:
                    events.append("later")

                self.ctx.wait_until(later())
                return Response("now")

        call = RawCall([{"type": "http.request", "body": b""}])

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body":
                events.append("sent")
            await call.send(message)

        await app_for(W)(http_scope(), call.receive, send)
        assert call.body == b"now"
        assert events == ["sent", "later"]


class TestLifespanAndOtherScopes:
    async def test_lifespan_does_not_close_the_runtime(self) -> None:
        """Startup and shutdown are acknowledged; the runtime the app did not create stays open."""
        runtime = FakeRuntime()
        app = asgi_app(Echo, runtime)
        call = RawCall([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, call.receive, call.send)
        assert [m["type"] for m in call.sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert not runtime.closed

    async def test_requests_after_lifespan_startup(self) -> None:
        """The app serves requests the same way after a lifespan startup."""
        app = app_for(Echo)
        call = RawCall([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        await app({"type": "lifespan"}, call.receive, call.send)
        async with client_for(app) as client:
            assert (await client.get("/")).status_code == 200

    async def test_websocket_refused_with_http_response_extension(self) -> None:
        """A handshake the Worker answers without 101 gets the Worker's response when the server supports it."""
        call = RawCall([{"type": "websocket.connect"}])
        scope = {"type": "websocket", "path": "/", "headers": [], "extensions": {"websocket.http.response": {}}}
        await app_for(Echo)(scope, call.receive, call.send)
        assert call.sent[0]["type"] == "websocket.http.response.start"
        assert call.sent[0]["status"] == 200
        assert b'"method":"GET"' in call.sent[1]["body"]

    async def test_websocket_refused_with_close(self) -> None:
        """Without that extension a handshake the Worker does not accept is closed before being accepted."""
        call = RawCall([{"type": "websocket.connect"}])
        await app_for(Echo)({"type": "websocket", "path": "/", "headers": []}, call.receive, call.send)
        assert call.sent == [{"type": "websocket.close", "code": 1011}]

    async def test_unknown_scope_type(self) -> None:
        """An unknown scope type raises ValueError."""
        call = RawCall([])
        with pytest.raises(ValueError, match="scope type 'weird'"):
            await app_for(Echo)({"type": "weird"}, call.receive, call.send)


class TestAsgiAppArguments:
    @pytest.mark.parametrize("worker", [Echo(None, None), object, 3])  # type: ignore[arg-type]
    def test_worker_must_be_a_class_with_fetch(self, worker: Any) -> None:
        """asgi_app refuses an instance or a class without fetch."""
        with pytest.raises(TypeError, match="expects the Worker class"):
            asgi_app(worker, FakeRuntime())
