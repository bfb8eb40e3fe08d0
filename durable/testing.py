"""Testing helpers for Durable Object code (see ``docs/testing.md``).

Everything here reaches into a live runtime the way a test needs and production never allows:
running code inside an object, firing its alarm now, evicting it, injecting a commit failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ._clock import MockClock
from ._id import DurableObjectId
from ._namespace import Namespace
from ._object import DurableObject
from ._state import State
from ._stub import Stub
from ._http import Request
from ._websocket import WebSocket, WebSocketClosed, WebSocketError, WebSocketPair, remote_close

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "MockClock",
    "disconnect",
    "evict",
    "fail_next_commit",
    "hibernate",
    "hibernation_blockers",
    "list_ids",
    "query",
    "run_alarm",
    "run_in_object",
    "websocket",
]


def _check_stub(stub: object, func: str) -> Stub[Any]:
    if not isinstance(stub, Stub):
        raise TypeError(f"{func}() takes a durable.Stub (namespace.get(id)), not {type(stub).__name__}")
    return stub


async def run_in_object(stub: Stub[Any], fn: Callable[[DurableObject, State], Any]) -> Any:
    """Run ``fn(instance, ctx)`` inside the live object, through its input gate; return the result.

    The instance is constructed first if it is not live. ``fn`` may be async (it is awaited). The
    result is returned as is, not copied. Writes ``fn`` makes are committed before this returns.

    Example::

        count = await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("count"))
    """
    _check_stub(stub, "run_in_object")
    if not callable(fn):
        raise TypeError(f"run_in_object() takes a callable fn(instance, ctx), not {type(fn).__name__}")

    async def call(instance: DurableObject, ctx: State) -> Any:
        result = fn(instance, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    return await stub._call("run", call, (), {})


async def run_alarm(stub: Stub[Any]) -> bool:
    """Run the object's pending alarm now, whatever its time; ``False`` if none is set.

    Unlike the JavaScript ``runDurableObjectAlarm``, the attempt follows every rule of a timed
    alarm: the handler gets a real :class:`durable.AlarmInfo` (``retry_count`` counts the attempts
    already failed), success clears the alarm (unless the handler set a new one), and failure
    schedules the retry as the runtime would (2 s, 4 s, ..., then gives up after 6 retries). The
    handler's exception is then raised here, so a test sees it.

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub``.
        RuntimeError: the object's ``alarm()`` is already running.
        Exception: whatever the handler raised (with ``remote = True``), after the retry is set.

    Example::

        await stub.schedule_cleanup()                 # sets an alarm an hour ahead
        assert await durable.testing.run_alarm(stub)  # runs it now
        assert not await durable.testing.run_alarm(stub)  # nothing left
    """
    _check_stub(stub, "run_alarm")
    host = stub._host()
    runtime: Any = host.runtime
    return await runtime._alarms.run_now((host.id._namespace, str(host.id)), host)  # type: ignore[no-any-return]


async def evict(stub: Stub[Any], *, web_sockets: str = "hibernate") -> None:
    """Drop the live instance but keep its storage; the next call constructs a fresh instance.

    Writes not yet committed are committed first. Calls still running in the instance fail with
    ``durable.ConnectionClosedError``. WebSockets accepted with ``accept()`` are disconnected;
    hibernatable ones stay connected (``web_sockets="hibernate"``, the default, as
    ``evictDurableObject`` in Cloudflare's vitest pool) or are disconnected too
    (``web_sockets="close"``: clients see the connection end, 1006).
    """
    _check_stub(stub, "evict")
    if web_sockets not in ("hibernate", "close"):
        raise ValueError(f'evict() web_sockets must be "hibernate" or "close", not {web_sockets!r}')
    host = stub._host()
    host.evict()
    if web_sockets == "close":
        _runtime_of(host).hibernation.object_reset(host)


async def list_ids(namespace: Namespace[Any]) -> list[DurableObjectId]:
    """Ids of the objects of ``namespace`` that have storage (key-value data, SQL tables or an alarm)."""
    if not isinstance(namespace, Namespace):
        raise TypeError(f"list_ids() takes a durable.Namespace, not {type(namespace).__name__}")
    return await namespace._runtime._list_ids(namespace)


def fail_next_commit(stub: Stub[Any], exc: BaseException | None = None) -> None:
    """Make the object's next storage commit fail with ``exc`` (default: ``OSError``).

    As a disk failure would, the failed commit rolls back the batch, resets the object, and turns
    the results it held into ``durable.ObjectResetError`` (``durable_object_reset = True``).
    """
    _check_stub(stub, "fail_next_commit")
    if exc is not None and not isinstance(exc, BaseException):
        raise TypeError(f"fail_next_commit() takes an exception instance, not {type(exc).__name__}")
    stub._host().db.fail_next = exc if exc is not None else OSError(5, "disk I/O error (injected by durable.testing)")


async def query(stub: Stub[Any], sql: str, *bindings: Any, unrestricted: bool = False) -> list[dict[str, Any]]:
    """Run SQL in the object's database from a test (to seed or inspect it); rows come back as dicts.

    The statements run inside the live object, through its input gate, exactly as
    ``ctx.storage.sql.exec(sql, *bindings)`` would there: their writes join the object's implicit
    transaction and are committed before this returns, so the object's transaction model holds
    (there is no second connection that could see uncommitted data or write behind its back).

    With ``unrestricted=True`` Cloudflare's restrictions on names, PRAGMAs and functions are
    lifted (``PRAGMA user_version``, ``sqlite_version()``, ``SELECT * FROM _cf_KV``...). Transactions
    (``BEGIN``, ``SAVEPOINT``) stay refused, and limits still apply. Writing durable's own ``_cf_``
    tables this way can leave the object inconsistent: inspect them, do not change them.

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub``, or the object is not SQLite-backed.
        durable.SqlError: SQLite (or, unless ``unrestricted``, Cloudflare's rules) refused it.

    Example::

        await durable.testing.query(stub, "INSERT INTO users (name) VALUES (?)", "Ada")
        assert await durable.testing.query(stub, "SELECT name FROM users") == [{"name": "Ada"}]
    """
    _check_stub(stub, "query")

    def body(instance: DurableObject, ctx: State) -> list[dict[str, Any]]:
        cursor = ctx.storage.sql._exec(sql, bindings, trusted=unrestricted)
        rows = [row.to_py() for row in cursor]
        if unrestricted:
            ctx.storage._db.drop_caches()  # the SQL may have touched _cf_KV behind the cache
        return rows

    result: list[dict[str, Any]] = await run_in_object(stub, body)
    return result


# ---------------------------------------------------------------------------------------------
# WebSockets and hibernation


def _runtime_of(host: Any) -> Runtime:
    runtime: Runtime = host.runtime
    return runtime


def hibernation_blockers(stub: Stub[Any]) -> list[str]:
    """Why the object cannot hibernate now; an empty list when it can.

    The reasons: ``"standard websocket"`` (a socket accepted with ``accept()``),
    ``"event in progress"`` (a request, message or other event runs or waits, or the input gate
    is closed), ``"wait_until"`` (work passed to ``ctx.wait_until`` or a
    ``block_concurrency_while`` callback), ``"pending task created by the object"`` (an
    ``asyncio`` task started by the object's code that has not finished; tracked once the object
    has accepted a hibernatable WebSocket).

    Example::

        assert durable.testing.hibernation_blockers(stub) == []
    """
    _check_stub(stub, "hibernation_blockers")
    host = stub._host()
    return _runtime_of(host).hibernation.blockers(host)


async def hibernate(stub: Stub[Any]) -> None:
    """Hibernate the object now, as ``Runtime(hibernate_after=...)`` would once it is idle.

    The instance is dropped; hibernatable sockets, their tags and attachments, and the
    auto-response stay. The next message (or any other event) constructs a fresh instance.

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub``.
        RuntimeError: the object is not eligible; the message names the blockers (see
            :func:`hibernation_blockers`).
    """
    _check_stub(stub, "hibernate")
    host = stub._host()
    blockers = _runtime_of(host).hibernation.blockers(host)
    if blockers:
        raise RuntimeError(
            f"the Durable Object cannot hibernate: {', '.join(blockers)} "
            "(see durable.testing.hibernation_blockers)"
        )
    host.evict()


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
    headers: Mapping[str, str] | None = None,
    protocols: Sequence[str] | None = None,
) -> AsyncIterator[WebSocket]:
    """Connect an accepted client end to ``target``, in process (no sockets, no threads).

    ``target`` is a :class:`durable.Stub` (the upgrade request goes to ``stub.fetch``) or an ASGI
    application (e.g. ``durable.asgi_app(Worker, runtime)``). ``url`` is an ``http://`` or
    ``https://`` URL; the request carries ``Upgrade: websocket`` and, with ``protocols``, a
    ``Sec-WebSocket-Protocol`` header. Leaving the block closes the socket (code 1000).

    Raises:
        durable.WebSocketError: the upgrade was refused (its ``response`` attribute holds the
            answer for a stub; ``status`` holds the status).
        TypeError: ``target`` is neither a stub nor an ASGI application, or ``url`` is not http(s).

    Example::

        async with durable.testing.websocket(stub, "http://room/ws") as ws:
            ws.send("hello")
            assert await ws.receive() == "echo: hello"
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise TypeError(f"websocket() takes an http:// or https:// URL, not {url!r}")
    all_headers: dict[str, str] = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13"}
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    if protocols:
        all_headers["sec-websocket-protocol"] = ", ".join(protocols)
    task: asyncio.Task[None] | None = None
    if isinstance(target, Stub):
        response = await target.fetch(Request(url, headers=all_headers))
        client = response.web_socket
        if response.status != 101 or client is None:
            error = WebSocketError(f"the WebSocket upgrade was refused with status {response.status}")
            error.response = response  # type: ignore[attr-defined]
            error.status = response.status  # type: ignore[attr-defined]
            raise error
        client.accept()
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
        + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "subprotocols": [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()],
        "extensions": {"websocket.http.response": {}},
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
                remote_close(app_side, int(message.get("code", 1000)), message.get("reason") or "", True)
                inbox.put_nowait({"type": "websocket.disconnect", "code": int(message.get("code", 1000))})
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
    result = await outcome
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
