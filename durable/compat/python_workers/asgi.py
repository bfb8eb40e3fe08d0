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
parts (``more_body``) is streamed. ``asgi.websocket`` is not emulated (``NotImplementedError``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import durable

from ._http import Response, unwrap_request

__all__ = ["fetch", "websocket"]

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


async def _process(app: Any, req: durable.Request, env: Any, state: dict[str, Any] | None) -> Response:
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
        return await result
    except asyncio.CancelledError:
        task.cancel()  # the caller gave up on the response: stop the app's work for it
        raise


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None) -> Response:
    """Serve ``req`` (a ``workers.Request``) with the ASGI application ``app``; ``env`` is the
    scope's ``"env"``. Returns the response (streamed when the app sends its body in parts).

    Raises:
        Exception: what the app raised before it started its response, or ``RuntimeError("The
            application did not generate a response")``.
    """
    shutdown, state = await _lifespan(app)
    try:
        response = await _process(app, unwrap_request(req), env, state)
    except Exception:
        _log.exception("ASGI request failed")
        await shutdown()  # the lifespan still ends (its task would otherwise wait forever)
        raise
    except BaseException:
        _spawn(shutdown())  # cancelled: the lifespan ends in the background
        raise
    await shutdown()
    return response


async def websocket(app: Any, req: Any, env: Any = None) -> Any:
    """Not emulated: WebSockets into an ASGI application."""
    raise NotImplementedError(
        "asgi.websocket() is not supported by durable; accept the WebSocket in a Durable Object "
        "(js.WebSocketPair) instead"
    )


def __getattr__(name: str) -> Any:
    if name == "env":  # the SDK's FastAPI dependency giving scope["env"]
        from fastapi import Depends, Request

        async def env(request: Request) -> Any:
            return request.scope["env"]

        return Depends(env)
    raise AttributeError(f"module 'asgi' has no attribute {name!r}")
