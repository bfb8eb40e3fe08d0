"""Python Workers code written against the SDK Cloudflare ships today, run unmodified on durable.

The patterns come from Cloudflare's current Python Workers SDK (``workers-runtime-sdk`` 1.9.5 on
PyPI, the version ``pywrangler`` installs; durable's layer followed workers-py ``b00837d4``,
1.6.15) and from Cloudflare's examples and Python Workers projects that use it. Each test
rewrites the pattern in a few lines and names its source.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
import durable.testing
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def project(root: Path, entry_name: str, source: str, config: str = "") -> Path:
    """A Python Workers project in ``root``: ``src/<entry_name>.py`` and its wrangler.jsonc."""
    (root / "src").mkdir()
    (root / "src" / f"{entry_name}.py").write_text(textwrap.dedent(source))
    (root / "wrangler.jsonc").write_text(
        f'{{"main": "src/{entry_name}.py", "compatibility_date": "2026-04-07",'
        f' "compatibility_flags": ["python_workers"]{config}}}'
    )
    return root


async def get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        return await client.request(kwargs.pop("method", "GET"), path, **kwargs)


# ---------------------------------------------------------------------------------------------
# asgi.entrypoint / wsgi.entrypoint: `Default = asgi.entrypoint(app)`

ASGI_ENTRY = '''
from workers import DurableObject, asgi


class Room(DurableObject):
    async def bump(self, by):
        n = (await self.ctx.storage.get("n") or 0) + by
        await self.ctx.storage.put("n", n)
        return {"n": n}


async def app(scope, receive, send):
    """A bare ASGI app: HTTP answers from the object named in the path, WebSockets echo."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        message = await receive()
        await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})
        return
    rooms = scope["env"].ROOMS
    result = await rooms.getByName(scope["path"].strip("/")).bump(2)
    body = f"{scope['method']} {result.n}".encode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-room", b"1")]})
    await send({"type": "http.response.body", "body": body})


Default = asgi.entrypoint(app)
'''

ROOMS = (
    ', "durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},'
    ' "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}]'
)


class TestEntrypoint:
    async def test_asgi_entrypoint_serves_http_and_websockets(
        self, tmp_path: Path, durable_runtime: durable.Runtime
    ) -> None:
        """``Default = asgi.entrypoint(app)`` is how workers-runtime-sdk 1.9.5 serves an ASGI app
        (``workers/asgi.py`` ``entrypoint``: a ``WorkerEntrypoint`` whose ``fetch`` sends an
        ``Upgrade: websocket`` request to ``asgi.websocket`` and any other to ``asgi.fetch`` with
        ``self.env``), and Cloudflare's ``batched-counter`` example ends with it
        (cloudflare/python-workers-examples ``batched-counter/src/entry.py``), as do many public
        FastAPI Workers. durable's ``asgi`` had no ``entrypoint``: the module failed to load
        (``AttributeError: module 'asgi' has no attribute 'entrypoint'``)."""
        root = project(tmp_path, "pyw2_asgi_entry", ASGI_ENTRY, ROOMS)
        app = pw.asgi_app(root, durable_runtime)
        first = await get(app, "/lobby", method="POST")
        assert (first.status_code, first.text, first.headers["x-room"]) == (201, "POST 2", "1")
        assert (await get(app, "/lobby")).text == "GET 4"
        async with durable.testing.websocket(app, "http://w/ws", headers={"Upgrade": "WebSocket"}) as ws:
            ws.send("hi")
            assert await ws.receive() == "echo:hi"
            with pytest.raises(durable.WebSocketClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4000, "done")

    async def test_wsgi_entrypoint(self, tmp_path: Path, durable_runtime: durable.Runtime) -> None:
        """``Default = wsgi.entrypoint(application)`` (workers-runtime-sdk 1.9.5
        ``workers/wsgi.py`` ``entrypoint``) serves a WSGI app with the Worker's ``env`` in
        ``environ["workers.env"]``; durable's ``wsgi`` had no ``entrypoint``."""
        source = """
        from workers import wsgi


        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{environ['PATH_INFO']} {environ['workers.env'].GREETING}".encode()]


        Default = wsgi.entrypoint(application)
        """
        root = project(tmp_path, "pyw2_wsgi_entry", source, ', "vars": {"GREETING": "hello"}')
        app = pw.asgi_app(root, durable_runtime)
        response = await get(app, "/a/b")
        assert (response.status_code, response.text) == (200, "/a/b hello")

    def test_entrypoint_is_a_worker_entrypoint_class(self) -> None:
        """Each call makes a new ``WorkerEntrypoint`` subclass named ``Default`` (the module's
        default export on Cloudflare), as the SDK's does."""
        from workers import asgi, wsgi  # type: ignore[import-not-found]

        for adapter in (asgi, wsgi):
            made = adapter.entrypoint(lambda *args: None)
            assert issubclass(made, sdk.WorkerEntrypoint) and made.__name__ == "Default"
            assert made is not adapter.entrypoint(lambda *args: None)


class TestOptions:
    def test_options_as_the_sdk_defines_them(self) -> None:
        """workers-runtime-sdk 1.9.5 adds ``asgi.Options`` / ``wsgi.Options`` (frozen keyword-only
        dataclasses over ``workers.gateway.BaseOptions``, one field ``encode_body``, checked in
        ``__post_init__`` with the message below) and an ``options=`` keyword to ``asgi.fetch``,
        ``wsgi.fetch`` and ``entrypoint``. durable had none of these names."""
        from workers import asgi, wsgi
        from workers.gateway import BaseOptions, EncodeBody  # type: ignore[import-not-found]

        assert EncodeBody.__args__ == ("automatic", "manual")
        for adapter in (asgi, wsgi):
            options = adapter.Options()
            assert isinstance(options, BaseOptions) and options.encode_body == "automatic"
            assert options.response_init() == {}
            assert adapter.Options(encode_body="manual").response_init() == {"encodeBody": "manual"}
            with pytest.raises(ValueError, match=r"^encode_body must be one of \('automatic', 'manual'\), got 'gzip'$"):
                adapter.Options(encode_body="gzip")
            with pytest.raises(TypeError):
                adapter.Options("automatic")  # keyword only, as the SDK's

    async def test_automatic_is_served_and_manual_is_refused_by_name(self) -> None:
        """``encode_body="automatic"`` is what durable's server does already; ``"manual"`` (a body
        compressed already, sent as it is) has no counterpart (docs/http.md), so the adapter
        refuses it with ``NotImplementedError`` naming the option instead of sending the body
        compressed twice."""
        from workers import asgi, wsgi

        async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})

        def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [])
            return [b"ok"]

        request = sdk.Request("https://w/")
        automatic = await asgi.fetch(asgi_app, request, {}, options=asgi.Options(encode_body="automatic"))
        assert await automatic.text() == "ok"
        assert await (await wsgi.fetch(wsgi_app, sdk.Request("https://w/"), {}, options=None)).text() == "ok"
        with pytest.raises(NotImplementedError, match=r"asgi\.Options\(encode_body='manual'\) is not emulated"):
            await asgi.fetch(asgi_app, request, {}, options=asgi.Options(encode_body="manual"))
        with pytest.raises(NotImplementedError, match=r"wsgi\.Options\(encode_body='manual'\) is not emulated"):
            await wsgi.fetch(wsgi_app, request, {}, options=wsgi.Options(encode_body="manual"))


# ---------------------------------------------------------------------------------------------
# asgi.websocket: a socket the app leaves open is closed for it


class TestWebSocketAppEnds:
    async def _client_after(self, app: Any) -> durable.WebSocketClosed:
        from workers import asgi

        response = await asgi.websocket(app, sdk.Request("http://w/", headers={"Upgrade": "websocket"}))
        client = response.web_socket
        assert client is not None
        client.accept()
        with pytest.raises(durable.WebSocketClosed) as closed:
            while True:
                await asyncio.wait_for(client.receive(), 5)
        return closed.value

    async def test_an_app_returning_without_close_closes_with_1000(self) -> None:
        """workers-runtime-sdk 1.9.5 closes the socket of an app that ends without sending
        ``websocket.close`` (``process_websocket``'s ``_close_transport``: "a half-open connection
        would leave the client hanging"), with 1000 when it returned. durable (following 1.6.15)
        left it open, so the client waited for ever."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.send", "text": "bye"})

        closed = await self._client_after(app)
        assert (closed.code, closed.reason) == (1000, "")

    async def test_an_app_raising_closes_with_1011(self, caplog: pytest.LogCaptureFixture) -> None:
        """The same with 1011 when the app raised; the exception is still logged by the ``asgi``
        logger ("Unhandled exception in background task")."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            raise ValueError("broken")

        closed = await self._client_after(app)
        assert closed.code == 1011
        assert any(r.name == "asgi" and r.exc_info and str(r.exc_info[1]) == "broken" for r in caplog.records)

    async def test_an_app_closing_itself_is_not_closed_again(self) -> None:
        """An app that sent ``websocket.close`` keeps its own code: the SDK closes only what the
        app left open."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.close", "code": 4321, "reason": "mine"})

        closed = await self._client_after(app)
        assert (closed.code, closed.reason) == (4321, "mine")


# ---------------------------------------------------------------------------------------------
# asgi.fetch: the lifespan ends once the app is done with the request


def lifespan_app(events: list[str], body: Any) -> Any:
    """An ASGI app with a lifespan (logged in ``events``) whose request handler is ``body``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].split(".")[1]
                events.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await body(send)

    return app


class TestLifespanAroundTheRequest:
    async def test_the_lifespan_ends_after_a_streamed_body(self) -> None:
        """workers-runtime-sdk 1.9.5's ``asgi.fetch`` runs the lifespan shutdown once the app's
        request task is done, through ``waitUntil`` when the body is still streaming
        (``finalize_request``). durable shut the lifespan down as soon as the response started,
        while the app still streamed its body: a FastAPI lifespan that closes what the stream
        reads from (a client, a database connection) broke it."""
        from workers import asgi

        events: list[str] = []
        go = asyncio.Event()

        async def stream(send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await go.wait()
            await send({"type": "http.response.body", "body": b"b", "more_body": False})
            events.append("sent")

        response = await asgi.fetch(lifespan_app(events, stream), sdk.Request("https://w/"), {})
        assert events == ["startup"]  # still streaming: no shutdown yet
        go.set()
        assert await response.text() == "ab"
        for _ in range(100):
            if "shutdown" in events:
                break
            await asyncio.sleep(0.005)
        assert events == ["startup", "sent", "shutdown"]

    async def test_work_after_a_whole_body_ends_before_the_response(self) -> None:
        """With a whole body the SDK awaits the app's task before it returns the response (work
        the app does after sending it, such as Starlette's background tasks, is done first),
        then shuts the lifespan down; durable returned at once."""
        from workers import asgi

        events: list[str] = []

        async def whole(send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
            await asyncio.sleep(0.01)
            events.append("after the body")

        response = await asgi.fetch(lifespan_app(events, whole), sdk.Request("https://w/"), {})
        assert events == ["startup", "after the body", "shutdown"]
        assert await response.text() == "done"

    async def test_a_streamed_body_through_a_served_worker(
        self, tmp_path: Path, durable_runtime: durable.Runtime
    ) -> None:
        """The same inside a Worker's ``fetch``, where the shutdown is the request's ``waitUntil``
        work: the whole body arrives and the lifespan ends after it."""
        source = """
        from workers import asgi

        EVENTS = []


        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    kind = (await receive())["type"].split(".")[1]
                    EVENTS.append(kind)
                    await send({"type": f"lifespan.{kind}.complete"})
                    if kind == "shutdown":
                        return
            if scope["path"] == "/events":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": ",".join(EVENTS).encode()})
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"x", b"y", b"z"):
                await send({"type": "http.response.body", "body": part, "more_body": part != b"z"})
            EVENTS.append("streamed")


        Default = asgi.entrypoint(app)
        """
        app = pw.asgi_app(project(tmp_path, "pyw2_asgi_stream", source), durable_runtime)
        assert (await get(app, "/")).text == "xyz"
        events = (await get(app, "/events")).text.split(",")
        assert events[:3] == ["startup", "streamed", "shutdown"]


# ---------------------------------------------------------------------------------------------
# Values over RPC, as workerd's own Python RPC test sends them
# (cloudflare/workerd src/workerd/server/tests/python/python-rpc/worker.py)


class Echo(sdk.DurableObject):
    async def identity(self, value: Any) -> Any:
        return value

    async def handle_request(self, request: Any) -> Any:
        assert isinstance(request, sdk.Request), type(request)
        return request

    async def describe(self, request: Any) -> Any:
        return {"method": str(request.method), "body": await request.text(), "a": request.headers.get("x-a")}

    async def store(self, value: Any) -> Any:
        await self.ctx.storage.put("k", value)
        self.ctx.storage.kv.put("kv", value)
        return [await self.ctx.storage.get("k"), self.ctx.storage.kv.get("kv")]


def echo_stub(runtime: durable.Runtime) -> Any:
    runtime.namespace(Echo, name="ECHO")
    pw.serving(runtime)
    return sdk.env.ECHO.getByName("a")


class TestRpcValues:
    async def test_a_request_crosses_rpc_both_ways(self, durable_runtime: durable.Runtime) -> None:
        """workerd's Python RPC test sends the SDK's ``Request`` to a Python entrypoint and gets it
        back: the callee receives a ``workers.Request``, the caller one with ``method`` ``POST``
        (the SDK sends ``request.js_object`` and ``python_from_rpc`` wraps a JavaScript
        ``Request``). durable refused it: ``DataCloneError: Could not serialize object of type
        "Request"``, as its ``Request`` wraps a ``durable.Request`` instead of being one."""
        from http import HTTPMethod

        stub = echo_stub(durable_runtime)
        back = await stub.handle_request(sdk.Request("https://test.com", method=HTTPMethod.POST))
        assert isinstance(back, sdk.Request) and back.method == "POST" and back.url == "https://test.com/"
        sent = sdk.Request("https://t/", method="PUT", body="hi", headers={"x-a": "1"})
        assert dict(await stub.describe(sent)) == {"method": "PUT", "body": "hi", "a": "1"}
        nested = await stub.identity({"requests": [sdk.Request("https://n/")]})
        assert isinstance(nested.requests[0], sdk.Request) and nested.requests[0].url == "https://n/"

    async def test_a_javascript_error_goes_with_its_own_message(self, durable_runtime: durable.Runtime) -> None:
        """``js.Error.new("message")`` is a JavaScript ``Error``, which the SDK sends as it is: the
        callee's ``python_from_rpc`` gives ``Exception("Error: message")``, and that exception sent
        back is ``js.Error.new(str(exc))``, so the caller reads ``Error: Error: message``. durable
        sent the stand-in's ``str()`` (``Error: message``) as the message: one prefix too many."""
        import js  # type: ignore[import-not-found]

        stub = echo_stub(durable_runtime)
        back = await stub.identity(js.Error.new("message"))
        assert type(back) is Exception and str(back) == "Error: Error: message"
        assert str(await stub.identity(ValueError("plain"))) == "Error: Error: plain"

    async def test_str_and_int_subclasses_go_as_javascript_strings_and_numbers(
        self, durable_runtime: durable.Runtime
    ) -> None:
        """The SDK's ``request.method`` is an ``http.HTTPMethod`` (a ``StrEnum``); Pyodide converts
        any ``str`` / ``int`` / ``float`` subclass to a JavaScript string or number, so
        ``{"method": request.method}`` or an ``HTTPStatus`` goes over RPC and into storage and
        comes back as the plain value. durable refused them: ``DataCloneError: Could not
        serialize object of type "HTTPMethod"``."""
        import enum
        from http import HTTPMethod, HTTPStatus

        class Level(enum.IntEnum):
            HIGH = 3

        stub = echo_stub(durable_runtime)
        assert await stub.identity(HTTPMethod.GET) == "GET"
        back = await stub.identity({"method": HTTPMethod.POST, "codes": [HTTPStatus.NOT_FOUND, Level.HIGH]})
        assert back == {"method": "POST", "codes": [404, 3]}
        assert [type(back["method"]), type(back["codes"][0])] == [str, int]
        assert list(await stub.store(HTTPMethod.PUT)) == ["PUT", "PUT"]
        assert list(await stub.store({"status": HTTPStatus.OK})) == [{"status": 200}, {"status": 200}]

    async def test_subclass_keys_and_overridden_conversions_go_as_plain_values(
        self, durable_runtime: durable.Runtime
    ) -> None:
        """Pyodide converts a dict's keys as it converts its values (the SDK's ``to_js(...,
        dict_converter=Object.fromEntries)``), and reads a ``str`` / ``int`` / ``float``
        subclass's own value, not what its ``__int__`` / ``__float__`` return. durable raised
        ``DataCloneError: Could not serialize object of type "HTTPStatus"`` for
        ``{HTTPStatus.OK: 1}`` (a key of a subclass, at any depth) and sent 99 for an ``int``
        subclass holding 5 whose ``__int__`` returns 99."""
        from http import HTTPMethod, HTTPStatus

        class Odd(int):
            def __int__(self) -> int:
                return 99

        class Odder(float):
            def __float__(self) -> float:
                return 9.5

        stub = echo_stub(durable_runtime)
        assert await stub.identity({HTTPStatus.OK: 1}) == {200: 1}
        stored = list(await stub.store({"x": {HTTPMethod.GET: [Odd(5)]}}))
        assert stored == [{"x": {"GET": [5]}}] * 2 and type(next(iter(stored[0]["x"]))) is str
        assert [await stub.identity(Odd(5)), await stub.identity(Odder(1.5))] == [5, 1.5]
