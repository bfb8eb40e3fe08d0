"""The SDK's ``workers.asgi`` (also the top-level ``asgi``): serve an ASGI application (FastAPI,
Starlette...) from a Worker's ``fetch``, as Cloudflare's FastAPI example does::

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            import asgi

            return await asgi.fetch(app, request, self.env)

As workers-py ``asgi.py`` does: each call runs the app's lifespan startup (when it has one),
the request, then its shutdown; the scope has ``type``, ``asgi``, ``http_version`` ``"1.1"``,
``method``, ``scheme``, ``path`` (percent-decoded), ``raw_path``, ``query_string``, ``headers``
(lower-cased names) and ``env`` (the bindings, read by ``asgi.env`` as a FastAPI dependency),
and ``state`` (a copy of the lifespan state) when there is a lifespan; a body sent in several
parts (``more_body``) is streamed.

``Default = asgi.entrypoint(app)`` makes the Worker's ``Default`` class doing both (workers-runtime-sdk
1.9.5). ``asgi.websocket(app, request, env)`` serves a WebSocket upgrade as workers-py's
``process_websocket`` does, on `durable`'s ``WebSocketPair``: the server end is accepted at once
and the 101 with the client end returned while the app runs in the background; ``websocket.accept``
is a no-op (its subprotocol is dropped), frames and closes map to ``send``/``close`` and the
socket's events to ``websocket.receive`` / ``websocket.disconnect`` (see :func:`websocket`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import durable
from durable._wsdelivery import when_dropped

from ._entrypoints import WorkerEntrypoint
from ._globals import wait_until
from ._http import Response, unwrap_request
from .gateway import BaseOptions, refuse_manual_encoding
from .pyodide.ffi import JsException

__all__ = ["Options", "entrypoint", "fetch", "websocket"]


@dataclass(frozen=True, kw_only=True)
class Options(BaseOptions):
    """The ASGI adapter's options (workers-runtime-sdk 1.9.5): ``encode_body`` (see ``workers.gateway``)."""


ASGI = {"spec_version": "2.0", "version": "3.0"}
NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})
_log = logging.getLogger("asgi")
_background: set[asyncio.Task[Any]] = set()


def _scope(req: durable.Request, env: Any, state: dict[str, Any] | None) -> dict[str, Any]:
    url = urlsplit(req.url)
    raw_path = url.path or "/"
    scope: dict[str, Any] = {
        "asgi": ASGI,
        "headers": [(k.lower().encode(), v.encode()) for k, v in req.headers.items()],
        "http_version": "1.1",
        "method": req.method,
        "scheme": url.scheme,
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": url.query.encode(),
        "type": "http",
        "env": env,
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


async def _lifespan(app: Any) -> tuple[Any, dict[str, Any] | None]:
    """Run the lifespan startup; return the shutdown coroutine function and the state (``None``
    when the app has no lifespan)."""
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    started: asyncio.Future[bool] = loop.create_future()
    stopped: asyncio.Future[None] = loop.create_future()
    messages.put_nowait({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        failed = RuntimeError(message.get("message") or f"ASGI lifespan {kind.split('.')[1]} failed")
        target: asyncio.Future[Any] = started if kind.startswith("lifespan.startup") else stopped
        if target.done():
            return
        if kind.endswith(".failed"):
            target.set_exception(failed)
        else:
            target.set_result(True if target is started else None)

    async def run() -> None:
        try:
            await app({"asgi": ASGI, "state": state, "type": "lifespan"}, messages.get, send)
        except Exception:
            if not started.done():
                started.set_result(False)  # no lifespan support: serve without it
                return
            _log.exception("Exception in ASGI lifespan application")
        if not started.done():
            started.set_result(False)
        if not stopped.done():
            stopped.set_result(None)

    task = _spawn(run())
    try:
        supported = await started
    except BaseException:
        task.cancel()  # a failed startup: the app is not waiting for a shutdown of ours
        raise
    if not supported:

        async def nothing() -> None:
            return None

        return nothing, None

    async def shutdown() -> None:
        messages.put_nowait({"type": "lifespan.shutdown"})
        await stopped

    return shutdown, state


def _spawn(coro: Any) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def _process(
    app: Any, req: durable.Request, env: Any, state: dict[str, Any] | None
) -> tuple[Response, asyncio.Task[Any]]:
    """The app's response, and its task: still running when the body is streamed (or the app
    works on after sending a whole body)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Response] = loop.create_future()
    finished = asyncio.Event()
    incoming: list[dict[str, Any]] = []
    body = await req.bytes()
    if body:
        incoming.append({"type": "http.request", "body": body, "more_body": True})
    incoming.append({"type": "http.request", "body": b"", "more_body": False})
    chunks: asyncio.Queue[bytes | None] | None = None
    start: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await finished.wait()
        return {"type": "http.disconnect"}

    async def stream(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    def respond(content: Any) -> None:
        headers = durable.Headers([(k.decode(), v.decode()) for k, v in start.get("headers", [])])
        result.set_result(Response(durable.Response(content, status=start["status"], headers=headers)))

    async def send(message: dict[str, Any]) -> None:
        nonlocal chunks
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            return
        if "status" not in start:
            raise RuntimeError("The application sent 'http.response.body' before 'http.response.start'")
        data, more = bytes(message.get("body", b"")), message.get("more_body", False)
        if chunks is not None:
            if data:
                chunks.put_nowait(data)
            if not more:
                chunks.put_nowait(None)
                finished.set()
        elif more:
            chunks = asyncio.Queue()
            if data:
                chunks.put_nowait(data)
            respond(stream(chunks))
        else:
            respond(None if start["status"] in NULL_BODY_STATUSES else data)
            finished.set()

    async def run() -> None:
        try:
            await app(_scope(req, env, state), receive, send)
            if not result.done():
                raise RuntimeError("The application did not generate a response")
        except Exception as exc:
            if not result.done():
                result.set_exception(exc)
            else:
                _log.exception("Exception in ASGI application after response started")
            if chunks is not None:
                chunks.put_nowait(None)
            finished.set()

    task = _spawn(run())
    try:
        response = await result
    except asyncio.CancelledError:
        task.cancel()  # the caller gave up on the response: stop the app's work for it
        raise
    except Exception:
        await task  # as the SDK: the app's task ends before its error reaches the caller
        raise
    if chunks is None:
        await task  # a whole body: the app's work after sending it is done before the response
    return response, task


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None, *, options: Options | None = None) -> Response:
    """Serve ``req`` (a ``workers.Request``) with the ASGI application ``app``; ``env`` is the
    scope's ``"env"``. Returns the response (streamed when the app sends its body in parts).

    Raises:
        Exception: what the app raised before it started its response, or ``RuntimeError("The
            application did not generate a response")``.
        NotImplementedError: ``options`` asks for ``encode_body="manual"`` (see ``workers.gateway``).
    """
    refuse_manual_encoding(options, "asgi")
    shutdown, state = await _lifespan(app)
    try:
        response, task = await _process(app, unwrap_request(req), env, state)
    except Exception:
        _log.exception("ASGI request failed")
        await shutdown()  # the lifespan still ends (its task would otherwise wait forever)
        raise
    except BaseException:
        _spawn(shutdown())  # cancelled: the lifespan ends in the background
        raise
    if task.done():
        await shutdown()
        return response

    async def finish() -> None:
        # A streamed body: the lifespan ends once the app has sent all of it, as
        # workers-runtime-sdk 1.9.5 does (through waitUntil), not while it still streams.
        try:
            await asyncio.shield(task)
        finally:
            await shutdown()

    ending = _spawn(finish())
    with contextlib.suppress(JsException):  # outside any request (a direct call in a test): no waitUntil
        wait_until(ending)
    return response


_WS_MESSAGES = "'websocket.accept', 'websocket.send' or 'websocket.close'"


def _log_failure(task: asyncio.Task[Any]) -> None:
    """As the SDK's background tasks: an app's exception is logged (it has no caller to reach)."""
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _log.error("Unhandled exception in background task", exc_info=task.exception())


def _payload(message: Any) -> str | bytes:
    """The one frame a ``websocket.send`` message carries (``text`` ``str`` or ``bytes`` bytes-like)."""
    text, data = message.get("text"), message.get("bytes")
    if (text is None) == (data is None):
        raise ValueError(
            "asgi.websocket: a 'websocket.send' message needs exactly one of 'text' and 'bytes' "
            f"(got {'both' if text is not None else 'neither'})"
        )
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"asgi.websocket: 'websocket.send' 'text' must be str, not {type(text).__name__}")
        return text
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise TypeError(
            f"asgi.websocket: 'websocket.send' 'bytes' must be bytes-like, not {type(data).__name__}"
        ) from None


async def websocket(app: Any, req: Any, env: Any = None) -> Response:
    """Serve a WebSocket upgrade ``req`` (a ``workers.Request`` or its ``js_object``) with the ASGI
    application ``app``, as the SDK's ``asgi.websocket`` does: a ``WebSocketPair`` is made and
    its server end accepted at once, the app runs in the background with a ``"websocket"``
    scope (``env`` is its ``"env"``, ``{}`` when ``None``; no lifespan, no ``subprotocols``), and
    the answer is ``101`` with the client end, returned before the app has run.

    The app receives ``websocket.connect``, then ``websocket.receive`` (``text`` or ``bytes``)
    per message and ``websocket.disconnect`` (``code``, ``reason``) when the client closes (1006
    for a failed read: an ``error`` event; again on a later ``receive()``); in an object that is
    reset, evicted or closed with the runtime, the app's task is cancelled. Of
    what it sends, ``websocket.accept`` does nothing (the socket is accepted already; a
    ``subprotocol`` or ``headers`` in it are dropped, as by the SDK), ``websocket.send`` sends a
    frame and ``websocket.close`` closes with its ``code`` (1000 by default) and ``reason``.

    When the app ends without sending ``websocket.close``, the socket is closed for it, as
    workers-runtime-sdk 1.9.5 does (``_close_transport``): with 1011 when the app raised (the
    exception is logged, logger ``asgi``), 1000 when it returned; an error of that close (the
    client closed first) is ignored.
    The app's ``send`` raises ``RuntimeError`` for another message type, ``ValueError`` /
    ``TypeError`` for a ``websocket.send`` without exactly one ``str`` ``text`` or bytes-like
    ``bytes`` (the SDK drops these; see docs/differences.md), and what ``WebSocket.send`` /
    ``close`` raise (a send after the close, an invalid close code).
    """
    from . import js

    request = unwrap_request(req)
    client, server = js.WebSocketPair.new().object_values()
    server.accept()
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})

    ended: dict[str, Any] = {}
    closed_by_app: list[bool] = []

    def on_message(event: Any) -> None:
        data = event.data
        key = "text" if isinstance(data, str) else "bytes"
        incoming.put_nowait({"type": "websocket.receive", key: data})

    def on_end(code: int, reason: str) -> None:
        if not ended:
            ended.update(type="websocket.disconnect", code=code, reason=reason)
            incoming.put_nowait(dict(ended))

    server.add_event_listener("message", on_message)
    server.add_event_listener("close", lambda event: on_end(event.code, event.reason))
    # A read that fails (a message over 32 MiB from the client) gives an "error" event and no
    # "close": the app is told of an abnormal closure, as ASGI servers report one (1006).
    server.add_event_listener("error", lambda event: on_end(1006, ""))

    async def receive() -> dict[str, Any]:
        if ended and incoming.empty():
            return dict(ended)  # again, as uvicorn does: waiting would never end
        return await incoming.get()

    async def send(message: Any) -> None:
        kind = message.get("type") if isinstance(message, Mapping) else None
        if kind == "websocket.accept":
            return
        if kind == "websocket.send":
            server.send(_payload(message))
        elif kind == "websocket.close":
            code, reason = message.get("code"), message.get("reason")
            closed_by_app.append(True)
            server.close(1000 if code is None else code, reason or "")
        elif isinstance(message, Mapping):
            raise RuntimeError(f"asgi.websocket: unsupported ASGI message type {kind!r} (expected {_WS_MESSAGES})")
        else:
            raise TypeError(f"asgi.websocket: an ASGI message is a mapping with a 'type', not {type(message).__name__}")

    scope = _scope(request, {} if env is None else env, None)
    scope["type"] = "websocket"
    task: asyncio.Task[Any] = asyncio.ensure_future(app(scope, receive, send))
    _background.add(task)
    task.add_done_callback(_log_failure)

    def close_transport(done: asyncio.Task[Any]) -> None:
        # The SDK closes a socket its app left open, so that the client does not hang: 1011 after
        # an exception, 1000 after a return. A task cancelled here was cancelled because the
        # socket was dropped already (below): there is nothing to close.
        if closed_by_app or done.cancelled():
            return
        try:
            server.close(1000 if done.exception() is None else 1011, "")
        except Exception:  # as the SDK: the peer may have closed the socket already
            pass

    task.add_done_callback(close_transport)
    # The object reset or evicted, or the runtime closing, drops the server end with no event:
    # the app, code of that instance, is cancelled instead of waiting for ever.
    when_dropped(server, task.cancel)
    task.add_done_callback(lambda _: when_dropped(server, None))
    return Response(None, status=101, web_socket=client)


def entrypoint(app: Any, *, options: Options | None = None) -> type[WorkerEntrypoint]:
    """A Worker's ``Default`` class serving the ASGI application ``app``, as workers-runtime-sdk
    1.9.5's ``asgi.entrypoint`` makes it (``Default = asgi.entrypoint(app)``): a request asking
    for a WebSocket upgrade (``Upgrade: websocket``, in any case) goes to :func:`websocket`,
    any other to :func:`fetch`, with the Worker's ``env`` (and ``options``)."""

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Response:
            if (request.headers.get("upgrade") or "").lower() == "websocket":
                return await websocket(app, request, self.env)
            return await fetch(app, request, self.env, self.ctx, options=options)

    return Default


def __getattr__(name: str) -> Any:
    if name == "env":  # the SDK's FastAPI dependency giving scope["env"]
        from fastapi import Depends, Request

        async def env(request: Request) -> Any:
            return request.scope["env"]

        return Depends(env)
    raise AttributeError(f"module 'asgi' has no attribute {name!r}")
