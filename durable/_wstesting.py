"""The WebSocket helpers of :mod:`durable.testing` (re-exported there; see ``docs/websockets.md``).

``websocket()`` connects an in-process client end to a stub or an ASGI application, without
sockets or threads; ``hibernate()`` and ``hibernation_blockers()`` hibernate an object on demand and
say why it cannot; ``disconnect()`` drops a connection without a Close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ._blocking import BlockingStub
from ._http import Headers, Request
from ._stub import Stub, host_of, on_runtime_loop, on_runtime_thread, runtime_of
from ._util import shown
from ._websocket import WebSocket, WebSocketClosed, WebSocketError, WebSocketPair, remote_close
from ._wsbridge import CLOSE_WITHOUT_CODE

__all__ = ["disconnect", "hibernate", "hibernation_blockers", "websocket"]


def _check_stub(stub: object, func: str) -> Stub[Any]:
    if isinstance(stub, BlockingStub):
        return stub.stub
    if not isinstance(stub, Stub):
        raise TypeError(f"{func}() takes a durable.Stub (namespace.get(id)), not {type(stub).__name__}")
    return stub


def hibernation_blockers(stub: Stub[Any] | BlockingStub[Any]) -> list[str]:
    """Why the object cannot hibernate now; an empty list when it can.

    The reasons: ``"standard websocket"`` (a socket accepted with ``accept()``),
    ``"event in progress"`` (a request, message or other event runs or waits, or the input gate
    is closed), ``"wait_until"`` (work passed to ``ctx.wait_until`` or a
    ``block_concurrency_while`` callback), ``"pending task created by the object"`` (an
    ``asyncio`` task started by the object's code, its constructor included, that has not
    finished; tracked from the loop's first ``accept_web_socket``, and on Python 3.12+ also the
    tasks already running then), ``"pending timer"`` (a ``setTimeout`` / ``setInterval`` of
    Python Workers code, ``js.setTimeout``, not yet run or cleared). Callbacks scheduled directly
    with ``loop.call_later()`` are not seen (see docs/websockets.md).

    Example::

        assert durable.testing.hibernation_blockers(stub) == []
    """
    target = _check_stub(stub, "hibernation_blockers")

    def blockers() -> list[str]:
        host = host_of(target)
        return host.runtime.hibernation.blockers(host)

    # Called from another thread than the runtime's, it asks there (and waits for the answer).
    return on_runtime_thread(runtime_of(target), blockers)


async def hibernate(stub: Stub[Any] | BlockingStub[Any]) -> None:
    """Hibernate the object now, as ``Runtime(hibernate_after=...)`` would once it is idle.

    The instance is dropped; hibernatable sockets, their tags and attachments, and the
    auto-response stay. The next message (or any other event) constructs a fresh instance.

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub`` (or ``durable.BlockingStub``).
        RuntimeError: the object is not eligible; the message names the blockers (see
            :func:`hibernation_blockers`).
    """
    target = _check_stub(stub, "hibernate")

    async def drop() -> None:
        host = host_of(target)
        blockers = host.runtime.hibernation.blockers(host)
        if blockers:
            raise RuntimeError(
                f"the Durable Object cannot hibernate: {', '.join(blockers)} (see durable.testing.hibernation_blockers)"
            )
        host.evict()

    # On the runtime's loop, as evict() does: awaited on another thread's loop, it ran there,
    # racing the object's calls on its database ("Recursive use of cursors not allowed").
    await on_runtime_loop(runtime_of(target), drop)


def disconnect(ws: WebSocket) -> None:
    """Drop ``ws``'s connection without a Close frame, as a client losing its network would.

    The other end gets ``(1006, "WebSocket disconnected without sending Close frame.", False)``.
    """
    if not isinstance(ws, WebSocket):
        raise TypeError(f"disconnect() takes a durable.WebSocket, not {type(ws).__name__}")
    remote_close(ws, 1006, None, False)


@contextlib.asynccontextmanager
async def websocket(
    target: Any,
    url: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    protocols: str | Sequence[str] | None = None,
) -> AsyncIterator[WebSocket]:
    """Connect an accepted client end to ``target``, in process (no sockets, no threads).

    ``target`` is a :class:`durable.Stub` or ``BlockingStub`` (the upgrade request goes to ``stub.fetch``) or an ASGI
    application (e.g. ``durable.asgi_app(Worker, runtime)``). ``url`` is an ``http://`` or
    ``https://`` URL; the request carries ``Upgrade: websocket``, ``headers`` (a mapping, pairs or
    a ``durable.Headers``, as ``Request`` takes them) and, with ``protocols`` (one name or a
    sequence of names, as JavaScript's ``new WebSocket(url, protocols)``), a
    ``Sec-WebSocket-Protocol`` header. Leaving the block closes the socket (code 1000) and waits
    for the answer (from an end accepted with ``allow_half_open=True``, which answers only with
    its own ``close()``, until that end has read the Close).

    Raises:
        durable.WebSocketError: the upgrade was refused (its ``response`` attribute holds the
            answer for a stub; ``status`` holds the status).
        TypeError: ``target`` is neither a stub nor an ASGI application, or ``url`` is not http(s).

    Example::

        async with durable.testing.websocket(stub, "http://room/ws") as ws:
            ws.send("hello")
            assert await ws.receive() == "echo: hello"
    """
    if not isinstance(url, str) or not url[:8].lower().startswith(("http://", "https://")):
        raise TypeError(f"websocket() takes an http:// or https:// URL, not {shown(url)}")
    all_headers: dict[str, str] = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13"}
    all_headers.update(Headers(headers).items() if headers is not None else ())
    if isinstance(protocols, str):
        protocols = [protocols]
    chosen: object = protocols  # (typed as str or names; anything may come)
    if chosen is not None and (isinstance(chosen, (bytes, bytearray)) or not isinstance(chosen, Iterable)):
        raise TypeError(
            f"websocket() protocols takes a subprotocol name or a sequence of names, not {type(chosen).__name__}"
        )
    if protocols:
        names = list(protocols)
        for name in names:
            if not isinstance(name, str) or not name or any(c in name for c in ' ,"\t'):
                raise TypeError(f"websocket() takes subprotocol names (tokens), not {shown(name)}")
        all_headers["sec-websocket-protocol"] = ", ".join(names)
    task: asyncio.Task[None] | None = None
    if isinstance(target, BlockingStub):
        target = target.stub
    if isinstance(target, Stub):
        response = await target.fetch(Request(url, headers=all_headers))
        client = response.web_socket
        if response.status != 101 or client is None:
            error = WebSocketError(f"the WebSocket upgrade was refused with status {response.status}")
            error.response = response  # type: ignore[attr-defined]
            error.status = response.status  # type: ignore[attr-defined]
            raise error
        # The client end stands for the connecting client: its url is the one it connected to and
        # its protocol the one the object chose (the 101's Sec-WebSocket-Protocol), as over ASGI.
        client.url = url
        client.protocol = response.headers.get("sec-websocket-protocol") or ""
        client.accept()
        client.network.mark_remote()  # it stands for a client beyond the runtime: the 32 MiB limit applies
    elif callable(target):
        client, task = await _asgi_connect(target, url, all_headers)
    else:
        raise TypeError(f"websocket() takes a durable.Stub or an ASGI application, not {type(target).__name__}")
    try:
        yield client
    finally:
        if client.ready_state != WebSocket.CLOSED:
            with contextlib.suppress(Exception):
                client.close(1000)
            # Wait for the other side's reply, so its close handler has started on return.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_drain(client), 5.0)
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 1.0)
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _drain(ws: WebSocket) -> None:
    """Read until the other side's Close arrives. An end accepted with
    ``accept(allow_half_open=True)`` answers only with its object's own ``close()``, perhaps
    never (workerd's client would wait for ever): there, only until it has read this end's Close."""
    other = ws.network.peer
    if other is not None and other.half_open:
        while not (other.closed_in or other.gone or ws.network.closed_in):
            await asyncio.sleep(0)  # (it arrives a loop turn or two after the close())
        return
    with contextlib.suppress(WebSocketClosed):
        while True:
            await ws.receive()


async def _asgi_connect(app: Any, url: str, headers: dict[str, str]) -> tuple[WebSocket, asyncio.Task[None]]:
    """Run ``app`` for a websocket scope; the returned end talks to it through ASGI messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "wss" if parts.scheme == "https" else "ws",
        "server": (host, port),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": unquote(parts.path or "/"),
        "raw_path": (parts.path or "/").encode("ascii", "replace"),
        "query_string": parts.query.encode("ascii", "replace"),
        "headers": [(b"host", (parts.netloc or host).encode("latin-1"))]
        + [(k.encode("latin-1"), v.encode("utf-8")) for k, v in headers.items()],
        "subprotocols": [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()],
        "extensions": {"websocket.http.response": {}, CLOSE_WITHOUT_CODE: {}},
    }
    user, app_side = WebSocketPair()
    app_side.accept()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    denial: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if not outcome.done():
                outcome.set_result(dict(message))
        elif kind == "websocket.send":
            text = message.get("text")
            app_side.send(text if text is not None else message.get("bytes") or b"")
        elif kind == "websocket.close":
            if not outcome.done():
                outcome.set_result(dict(message))
            else:
                code = message.get("code", 1000)
                code = 1005 if code is None else int(code)  # (None: a Close without a code, CLOSE_WITHOUT_CODE)
                remote_close(app_side, code, message.get("reason") or "", True)
                inbox.put_nowait({"type": "websocket.disconnect", "code": code})
        elif kind == "websocket.http.response.start":
            denial.update(message)
        elif kind == "websocket.http.response.body":
            denial["body"] = denial.get("body", b"") + message.get("body", b"")
            if not message.get("more_body") and not outcome.done():
                outcome.set_result({"type": "denied"})

    async def pump() -> None:
        # What the user sends reaches the app as websocket.receive; its close as a disconnect.
        try:
            while True:
                data = await app_side.receive()
                if isinstance(data, str):
                    inbox.put_nowait({"type": "websocket.receive", "text": data})
                else:
                    inbox.put_nowait({"type": "websocket.receive", "bytes": data})
        except WebSocketClosed as closed:
            inbox.put_nowait({"type": "websocket.disconnect", "code": closed.code, "reason": closed.reason})

    async def run() -> None:
        pumping = asyncio.ensure_future(pump())
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            if not outcome.done():
                outcome.set_exception(exc)
            raise
        finally:
            pumping.cancel()
            if not outcome.done():
                outcome.set_result({"type": "websocket.close", "code": 1006})
            remote_close(app_side, 1006, None, False)

    task = asyncio.ensure_future(run())
    try:
        result = await outcome
    except BaseException:
        # The app raised before answering (its task holds the same error: retrieved here, so
        # asyncio does not log it as never retrieved), or the caller was cancelled (the app is).
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        if task.done() and not task.cancelled():
            task.exception()
        raise
    if result["type"] != "websocket.accept":
        status = denial.get("status", 403)
        error = WebSocketError(f"the WebSocket upgrade was refused with status {status}")
        error.status = status  # type: ignore[attr-defined]
        error.body = denial.get("body", b"")  # type: ignore[attr-defined]
        with contextlib.suppress(BaseException):
            await task
        raise error
    user.protocol = result.get("subprotocol") or ""
    user.url = url
    user.accept()
    return user, task


for _func in (disconnect, hibernate, hibernation_blockers, websocket):
    _func.__module__ = "durable.testing"
del _func
