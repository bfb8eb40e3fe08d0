"""Serve a Worker over HTTP as an ASGI application (uvicorn, Hypercorn, Starlette, FastAPI).

``asgi_app(Worker, runtime)`` turns each HTTP request into a :class:`durable.Request`, runs
``Worker(ctx, runtime.env).fetch(request)`` and sends back the :class:`durable.Response` it
returns. It plays the part of Cloudflare's edge in front of a Worker:

- request bodies stream into ``request`` as they arrive, up to ``max_body_size`` bytes
  (default 100 MB, Cloudflare's limit on the Free and Pro plans); more gives ``413``;
- a request this front cannot translate (bad ``Host``, bad ``Content-Length``) gives ``400``;
- a Worker that raises, or returns something that is not a ``Response``, gives ``500`` with a
  short text body, and the error is logged on the ``durable.asgi`` logger;
- ``lifespan`` events are acknowledged; the runtime is **not** opened or closed by this app:
  whoever created the runtime owns it (``durable serve`` does);
- WebSocket connections go to the Worker's ``fetch`` as ``GET`` requests with the
  ``Upgrade: websocket`` header (and an ``http``/``https`` URL, as on Cloudflare); a
  ``Response(None, status=101, web_socket=client)`` accepts the connection and bridges it to
  ``client`` (``durable._wsbridge``); any other response is sent as the handshake's answer
  (through the ``websocket.http.response`` extension, else a 403 close).

The app works the same with or without lifespan events, so it can be driven directly by
``httpx.ASGITransport`` in tests. This module uses only the public API of ``durable``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import zlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, MutableMapping
from types import CoroutineType
from typing import Any, Final, Protocol
from urllib.parse import unquote_to_bytes

from ._exceptions import DurableError
from ._http import (
    NOT_AN_UPGRADE,
    ExecutionContext,
    Headers,
    Request,
    Response,
    WorkerEntrypoint,
    body_chunks,
    drain,
    hand_over,
    headers_from_server,
    request_from_server,
    take_body,
)
from ._object import DurableObject
from ._util import shown

__all__ = ["WorkerApp", "asgi_app", "worker_class_problem"]

logger = logging.getLogger("durable.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Cloudflare's request body limit on the Free and Pro plans.
DEFAULT_MAX_BODY_SIZE: Final = 100 * 1024 * 1024

_TEXT_PLAIN: Final = (b"content-type", b"text/plain;charset=UTF-8")
# Headers the server computes from the body it is given, and the hop-by-hop headers of the
# connection: a Worker's values are dropped, as workerd drops them (measured with miniflare 4,
# 2026-12-07: a Worker's Connection, Keep-Alive, Upgrade, Trailer, TE, Transfer-Encoding and
# Content-Length never reach the client; Proxy-Connection, Alt-Svc, Via... do).
_FRAMING_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "te"}
)
_NO_BODY_STATUSES: Final = frozenset({204, 304})
# Bytes kept as they are when rebuilding the URL from what the client sent: printable ASCII
# except the characters the WHATWG URL parser percent-encodes in paths and in queries.
_PRINTABLE: Final = frozenset(range(0x21, 0x7F))
_PATH_KEEP: Final = _PRINTABLE - frozenset(b'"#<>?`{}')
_QUERY_KEEP: Final = _PRINTABLE - frozenset(b'"#<>')
# A decoded path (no raw_path to go by) has its literal "%" encoded too.
_DECODED_KEEP: Final = _PATH_KEEP - frozenset(b"%")
_KEEP_BYTES: Final = {keep: bytes(sorted(keep)) for keep in (_PATH_KEEP, _QUERY_KEEP, _DECODED_KEEP)}
# A Host header: a registered name (RFC 3986 unreserved and sub-delims) or a bracketed IPv6
# address, then an optional numeric port, which may be empty (``Host: h:``, the URL ``http://h/``,
# as workerd serves it: measured with miniflare 4, 2026-12-07).
_AUTHORITY_RE: Final = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9\-._~!$&'()*+,;=]+)(?::[0-9]{0,5})?")


class _HasEnv(Protocol):
    """What ``asgi_app`` needs from a runtime: its ``env`` (a ``durable.Runtime`` has one)."""

    @property
    def env(self) -> Any: ...


class _BadRequest(Exception):
    """The request cannot be translated into a ``durable.Request``: answered with 400."""

    status = 400
    reason = "Bad Request"


class _UnknownTransferCoding(_BadRequest):
    """The request body comes in a transfer coding other than ``chunked``: answered with 501.

    RFC 9112 6.1 asks for 501 for a coding the server does not understand; workerd refuses such
    a request too (500: measured with miniflare 4, 2026-12-07).
    """

    status = 501
    reason = "Not Implemented"


class _BodyTooLarge(DurableError):
    """The request body exceeded ``max_body_size``: answered with 413.

    A :class:`durable.DurableError`, as the Worker (or an object it forwards the request to)
    may see it: its ``await request.text()`` raises it, and ``except durable.DurableError``
    catches it. (It was a bare ``Exception`` of this private module.) Cloudflare refuses a body
    over its limit at its edge, so no Worker there reads one: there is no workerd error to
    follow.
    """


class _ClientDisconnected(Exception):
    """The client went away while its body was being read: nothing is answered."""


def worker_class_problem(worker: object, *, how_to_bind: str = 'runtime.namespace({cls}, name="NAME")') -> str | None:
    """What ``worker`` is, if it cannot be served as a Worker (to end "... not "), else ``None``.

    A Worker is a :class:`durable.WorkerEntrypoint` subclass, constructed per request as
    ``Worker(ctx, env)``. A Durable Object class in its place (a common slip: ``asgi_app(Counter,
    rt)``) would be built with the request's ``ExecutionContext`` as its ``ctx`` and fail on every
    request, so it is refused with the fix (``how_to_bind``, formatted with ``cls``, says how to
    bind it instead); so is any other class, an instance or a function.
    """
    if isinstance(worker, type) and issubclass(worker, WorkerEntrypoint):
        return None
    if isinstance(worker, type) and issubclass(worker, DurableObject):
        bind = how_to_bind.format(cls=worker.__qualname__)
        return (
            f"the Durable Object class {worker.__qualname__}: bind it with {bind} and serve a Worker "
            "whose fetch forwards to it (self.env.NAME.get_by_name(...).fetch(request))."
        )
    if isinstance(worker, type):
        return f"{shown(worker)}: declare it as class {worker.__name__}(durable.WorkerEntrypoint)."
    return f"{shown(worker)}."


def asgi_app(
    worker: type[WorkerEntrypoint],
    runtime: _HasEnv,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    strip_root_path: bool = False,
) -> WorkerApp:
    """Make an ASGI application that serves ``worker`` with ``runtime.env`` as its env.

    Args:
        worker: the Worker class (a :class:`durable.WorkerEntrypoint` subclass, not an
            instance); one is constructed per request as ``worker(ctx, runtime.env)``.
        runtime: the :class:`durable.Runtime` whose namespaces the Worker reaches through
            ``self.env``. The app does not open or close it.
        max_body_size: the largest request body accepted, in bytes; larger gives ``413``.
        strip_root_path: leave the ASGI ``root_path`` (the prefix the app is mounted under in
            Starlette or FastAPI, or a server's ``--root-path``) out of ``request.url``, so that
            a Worker written for the root (``/increment``) works under a prefix
            (``/counter/increment``). By default the Worker sees the full URL, as a Worker on a
            Cloudflare route does.

    Raises:
        TypeError: ``worker`` is not a :class:`durable.WorkerEntrypoint` subclass (a Durable
            Object class, an instance, a function or another class).
        ValueError: ``max_body_size`` is negative.

    Example::

        async with durable.Runtime(path="state") as rt:
            rt.namespace(Counter, name="COUNTER")
            app = durable.asgi_app(Worker, rt)
            await uvicorn.Server(uvicorn.Config(app)).serve()

    Mounted in Starlette or FastAPI:
    ``app.mount("/counter", durable.asgi_app(Worker, rt, strip_root_path=True))``.
    """
    return WorkerApp(worker, runtime, max_body_size=max_body_size, strip_root_path=strip_root_path)


class WorkerApp:
    """The ASGI application made by :func:`asgi_app`; see there."""

    def __init__(
        self,
        worker: type[WorkerEntrypoint],
        runtime: _HasEnv,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        strip_root_path: bool = False,
    ) -> None:
        problem = worker_class_problem(worker)
        if problem is not None:
            raise TypeError(
                f"asgi_app() expects the Worker class (a durable.WorkerEntrypoint subclass with a fetch method), not {problem}"
            )
        if not hasattr(runtime, "env"):
            # Checked here: otherwise every request would answer 500 with an AttributeError.
            raise TypeError(
                "asgi_app() takes the runtime whose env the Worker sees (an open durable.Runtime; "
                f"with a BlockingRuntime, its .runtime) as its second argument, not {shown(runtime)}."
            )
        if not isinstance(max_body_size, int) or isinstance(max_body_size, bool):
            raise TypeError(f"max_body_size must be a non-negative int, not {type(max_body_size).__name__}.")
        if max_body_size < 0:
            raise ValueError(f"max_body_size must be a non-negative int, not {max_body_size}.")
        if not isinstance(strip_root_path, bool):
            raise TypeError(f"strip_root_path must be True or False, not {shown(strip_root_path)}.")
        self.worker = worker
        self.runtime = runtime
        self.max_body_size = max_body_size
        self.strip_root_path = strip_root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (``http``, ``lifespan`` or ``websocket``)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            raise ValueError(f"durable.asgi_app cannot handle ASGI scope type {kind!r}.")

    # -- HTTP ----------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _RequestBody(receive, self.max_body_size)
        try:
            request = _to_request(_without_root_path(scope) if self.strip_root_path else scope, body)
        except _BadRequest as exc:
            await _send_text(send, exc.status, f"{exc.reason}: {exc}")
            return
        except _BodyTooLarge:
            await _send_text(send, 413, self._too_large_text())
            return

        ctx = ExecutionContext()
        try:
            response = await self._call_worker(request, ctx, body)
            if response is not None and response.web_socket is not None:
                # An HTTP request is no upgrade (those come as "websocket" scopes): workerd's
                # TypeError, a 500 for the client (measured with miniflare 4, 2026-04-07).
                logger.error(
                    "Worker %s raised while handling %s %s: TypeError: %s",
                    self.worker.__qualname__,
                    request.method,
                    request.url,
                    NOT_AN_UPGRADE,
                )
                response = _text_response(500, "Worker threw exception")
            if response is not None:
                await _send_response(
                    send,
                    response,
                    head=request.method == "HEAD",
                    too_large=self._too_large_text,
                    body=body,
                    accept=request.headers,
                )
        finally:
            await drain(ctx)

    async def _call_worker(self, request: Request, ctx: ExecutionContext, body: _RequestBody) -> Response | None:
        """Run the Worker; return the Response to send, or None when nothing should be sent."""
        try:
            instance = self.worker(ctx, self.runtime.env)
            result: object = instance.fetch(request)
            if type(result) is CoroutineType or inspect.isawaitable(result):  # an async def first, cheaply
                result = await result
        except KeyboardInterrupt:  # Ctrl-C
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # the server stopping (or the client gone)
                raise
            # The Worker's own CancelledError (it awaited a task cancelled elsewhere), with no
            # cancellation of this request: a thrown value like any other. It went to the
            # server, which logged "the server stopped before it finished" and answered its own 500.
            return self._worker_threw(request, body)
        except BaseException:  # also sys.exit() or a BaseException of the Worker's own: workerd
            # answers any thrown value (`throw 42`) with its 500 (miniflare 4, 2026-04-07)
            return self._worker_threw(request, body)
        if body.too_large:
            # The Worker swallowed the error: the client still learns its body was refused.
            return _text_response(413, self._too_large_text())
        if not isinstance(result, Response):
            logger.error(
                "Worker %s returned %s from fetch() while handling %s %s; it must return a durable.Response.",
                self.worker.__qualname__,
                type(result).__name__,
                request.method,
                request.url,
            )
            return _text_response(500, "Worker threw exception")
        if result.body_used:
            logger.error(
                "Worker %s returned a Response whose body was already used, for %s %s.",
                self.worker.__qualname__,
                request.method,
                request.url,
            )
            return _text_response(500, "Worker threw exception")
        return result

    def _worker_threw(self, request: Request, body: _RequestBody) -> Response | None:
        """The answer to a Worker that raised (called in its ``except`` block, to log the error)."""
        if body.disconnected:
            return None
        if body.too_large:
            return _text_response(413, self._too_large_text())
        logger.exception(
            "Worker %s raised while handling %s %s",
            self.worker.__qualname__,
            request.method,
            request.url,
        )
        return _text_response(500, "Worker threw exception")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ._wsbridge import bridge

        message = await receive()
        if message["type"] != "websocket.connect":
            return
        http_scope = dict(scope)
        http_scope["scheme"] = "https" if scope.get("scheme") == "wss" else "http"
        http_scope["method"] = "GET"
        body = _RequestBody(receive, 0)
        try:
            request = _to_request(http_scope, body)
        except (_BadRequest, _BodyTooLarge) as exc:
            await _deny_websocket(scope, send, _text_response(400, f"Bad Request: {exc}"))
            return
        ctx = ExecutionContext()
        try:
            response = await self._call_worker(request, ctx, body)
            if response is None:
                return
            if response.status == 101 and response.web_socket is not None:
                try:
                    hand_over(response)  # workerd checks the end when the response is returned
                except TypeError:
                    logger.exception(
                        "Worker %s returned a WebSocket it cannot hand over, for %s",
                        self.worker.__qualname__,
                        request.url,
                    )
                    await _deny_websocket(scope, send, _text_response(500, "Worker threw exception"))
                    return
                socket = response.web_socket
                assert socket is not None
                await bridge(socket, response, receive, send, scope)
            else:
                await _deny_websocket(scope, send, response)
        finally:
            await drain(ctx)

    def _too_large_text(self) -> str:
        return f"Payload Too Large: the request body exceeds {self.max_body_size} bytes."


# ---------------------------------------------------------------------------------------------
# ASGI scope -> durable.Request


class _RequestBody:
    """The request body as an async iterator over ``http.request`` messages, with a size cap."""

    # While a response streams, the disconnect watch may receive for the reader (see _pump).
    # Class-level defaults: set per request only when a watch runs.
    _watch_held: deque[Message] | None = None  # messages it received that the reader has not taken yet
    _watch_held_size = 0
    _watch_pumping = False
    _reader_receiving = False  # the reader is in receive()
    _watch_changed: asyncio.Event | None = None  # set when either side's state changes

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._size = 0
        self._done = False
        self.too_large = False
        self.disconnected = False
        self.attached = False  # the Worker's Request reads it (else nothing does)

    def check_declared_length(self, value: str) -> bool:
        """Validate a Content-Length header; return whether the request has a body at all.

        Without one, an HTTP/1 request has a body only under ``Transfer-Encoding`` (RFC 9112
        6.3, as in workerd); elsewhere (HTTP/2, an unknown server) the stream tells.
        """
        if not (value.isascii() and value.isdigit()):
            raise _BadRequest("invalid Content-Length header")
        length = int(value)
        if length > self._limit:
            self.too_large = True
            raise _BodyTooLarge
        return length > 0

    async def wait_disconnected(self) -> bool:
        """Return True once the client has gone (what is left of a body no one reads is discarded).

        Return False, watching no more, if a message follows the end of the body: ASGI has
        ``receive()`` wait for the disconnect there, and a driver that answers at once instead
        (the same ``http.request`` again) would make this loop spin without ever suspending.
        """
        if self.attached and not self._done:
            return await self._pump()
        ended = self._done
        while True:
            message = await self._receive()
            if message.get("type") == "http.disconnect":
                self.disconnected = True
                return True
            if ended:
                return False
            ended = not message.get("more_body", False)

    async def _pump(self) -> bool:
        """:meth:`wait_disconnected` while the Worker's request may still read the body.

        Only one side may call ``receive()`` (httpx's ``ASGITransport`` fails on two at once, and
        a body message taken by one is lost to the other), so the watch receives for the
        reader: it holds the messages until the reader takes them, and watches for the
        disconnect meanwhile. Without it, a response streamed while the request's body was
        unread (a ``POST`` answered with server-sent events) went on forever after its client
        left; workerd stops pulling it (miniflare 4, 2026-04-07).

        It holds up to ``max_body_size`` bytes of body, the most a Worker may read anyway (as
        ``await request.text()`` holds it): it cannot wait for the reader to take some, as it
        learns of the disconnect only by receiving. (It waited past 1 MiB, so a Worker streaming
        events without reading a larger body ran forever after its client left.) Body past the
        limit is dropped: the reader stops with 413's error at the message that crossed it.
        """
        changed = self._watch_changed = self._watch_changed or asyncio.Event()
        held = self._watch_held = self._watch_held if self._watch_held is not None else deque()
        self._watch_pumping = True
        try:
            while self._reader_receiving:
                changed.clear()
                await changed.wait()  # the reader's receive() returns
            ended = self._done or any(not m.get("more_body", False) for m in held if m.get("type") == "http.request")
            while not self.disconnected:
                message = await self._receive()
                size = len(message.get("body", b""))
                if self._size + self._watch_held_size <= self._limit or message.get("type") != "http.request":
                    held.append(message)
                    self._watch_held_size += size
                    changed.set()
                if message.get("type") == "http.disconnect":
                    self.disconnected = True
                    return True
                if ended:
                    return False  # a message after the end: see wait_disconnected
                ended = message.get("type") == "http.request" and not message.get("more_body", False)
            return True
        finally:
            self._watch_pumping = False
            changed.set()  # a reader waiting for a message receives on its own again

    async def _next_message(self) -> Message:
        """The reader's next message: one the watch holds, else one from ``receive()``."""
        while True:
            if self._watch_held:
                message = self._watch_held.popleft()
                self._watch_held_size -= len(message.get("body", b""))
                if self._watch_changed is not None:
                    self._watch_changed.set()
                return message
            if not self._watch_pumping:
                self._reader_receiving = True
                try:
                    return await self._receive()
                finally:
                    self._reader_receiving = False
                    if self._watch_changed is not None:
                        self._watch_changed.set()
            assert self._watch_changed is not None
            self._watch_changed.clear()
            await self._watch_changed.wait()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._done:
            message = await self._next_message()
            kind = message.get("type")
            if kind == "http.disconnect":
                self.disconnected = True
                self._done = True
                raise _ClientDisconnected("the client disconnected before sending its whole body")
            if kind != "http.request":
                continue
            chunk = bytes(message.get("body", b""))
            self._done = not message.get("more_body", False)
            self._size += len(chunk)
            if self._size > self._limit:
                self.too_large = True
                self._done = True
                raise _BodyTooLarge(
                    f"the request body exceeds {self._limit} bytes, the server's max_body_size: it is refused with 413"
                )
            if chunk:
                yield chunk


def _to_request(scope: Scope, body: _RequestBody) -> Request:
    method = scope.get("method", "GET")
    if not method.isupper():
        # On the wire a method is case-sensitive: workerd answers "get" 501 and httptools 400;
        # h11 passes it on, and Fetch would upper-case it into a GET.
        raise _BadRequest(f"Invalid HTTP method string: {method}")
    try:
        headers = headers_from_server(scope.get("headers", ()))
    except (TypeError, ValueError, AttributeError) as exc:
        raise _BadRequest(f"invalid header ({exc})") from None
    url = _request_url(scope, headers)
    # workerd's front (miniflare, as wrangler dev runs it) adds the client's address as
    # CF-Connecting-IP when the request has none, as Cloudflare's edge always does: code reads
    # the client's IP there.
    client = scope.get("client")
    if client and isinstance(client[0], str) and client[0] and not headers.has("cf-connecting-ip"):
        headers.append("cf-connecting-ip", client[0])
    lengths = headers.get_all("content-length")
    if len(set(lengths)) > 1:
        raise _BadRequest("conflicting Content-Length headers")
    # HTTP/1 without Content-Length or Transfer-Encoding has no body: workerd (miniflare 4,
    # 2026-04-07) hands such a POST over with body null; it used to become an empty stream here,
    # which stub.fetch then forwarded with a made-up "transfer-encoding: chunked".
    # (Looked up only for a request that could have a body: headers.has cost 0.6 us a GET.)
    if lengths:
        # Transfer-Encoding overrides Content-Length (RFC 9112 6.3): h11 passes both on and reads
        # the chunked body, as workerd does (miniflare 4, 2026-12-07: "Content-Length: 0" with a
        # chunked "abc" reads as "abc"). Looked up only when the length says no body.
        try:
            has_body = body.check_declared_length(lengths[0]) or _chunked(headers)
        except _BodyTooLarge:
            # A length over the limit does not count under Transfer-Encoding either: the chunks
            # are counted as they come (workerd reads "Content-Length: 999999999999" with a
            # chunked "abc" as "abc", 200: miniflare 4, 2026-12-07; h11 passes both on).
            if not _chunked(headers):
                raise
            body.too_large = False
            has_body = True
    elif method in ("GET", "HEAD"):
        has_body = False
    else:
        has_body = _chunked(headers) or scope.get("http_version") not in ("1.1", "1.0")
    # A GET or HEAD request may arrive with a body over HTTP; Fetch cannot represent it, so
    # (as on Cloudflare) the Worker sees none.
    with_body = has_body and method not in ("GET", "HEAD")
    body.attached = with_body
    try:
        return request_from_server(url, method, headers, body if with_body else None)
    except TypeError as exc:
        raise _BadRequest(str(exc)) from None


def _chunked(headers: Headers) -> bool:
    """Whether the request has a ``Transfer-Encoding`` (checked: only ``chunked`` is accepted)."""
    codings = headers.get_all("transfer-encoding")
    if not codings:
        return False
    if codings != ["chunked"]:
        _check_transfer_codings(codings)
    return True


def _check_transfer_codings(values: list[str]) -> None:
    """Refuse a request body in a transfer coding other than ``chunked`` (``gzip, chunked``).

    httptools decodes the chunks of ``Transfer-Encoding: gzip, chunked`` and passes the body on
    still gzipped, under a header that says so; workerd refuses the request (500: measured with
    miniflare 4, 2026-12-07) and accepts only ``chunked`` (in any case, even ``chunked, chunked``).
    A coding that does not end in ``chunked`` leaves the body's length unknown: ``400`` (RFC 9112
    6.3, as both of uvicorn's parsers answer it); one that does, ``501`` (RFC 9112 6.1).
    """
    codings = [coding.strip().lower() for value in values for coding in value.split(",")]
    if codings[-1] != "chunked":
        raise _BadRequest(f"Transfer-Encoding {', '.join(values)!r} does not end in chunked: the body has no length")
    if any(coding != "chunked" for coding in codings):
        raise _UnknownTransferCoding(
            f"Transfer-Encoding {', '.join(values)!r}: request bodies are accepted only in the chunked coding"
        )


def _without_root_path(scope: Scope) -> Scope:
    """The scope as the app would see it mounted at ``/``: ``root_path`` taken out of the path."""
    root_path: str = scope.get("root_path", "")
    if not root_path:
        return scope
    path: str = scope.get("path", "/")
    # Starlette and recent uvicorn include root_path in path; the ASGI spec says not to.
    relative = path[len(root_path) :] if path.startswith(root_path) else path
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path is not None:
        encoded_root = root_path.encode("utf-8")
        if raw_path.startswith(encoded_root) and path.startswith(root_path):
            raw_path = raw_path[len(encoded_root) :]
        elif path.startswith(root_path):
            raw_path = None  # the prefix is percent-encoded in raw_path: use the decoded path
    return {**scope, "root_path": "", "path": relative or "/", "raw_path": raw_path or None}


def _request_url(scope: Scope, headers: Headers) -> str:
    """Rebuild the absolute URL the client asked for, keeping its percent-encoding."""
    host = headers.get_all("host")
    server = scope.get("server")
    # Measured (docs/performance.md): the URL is a pure function of these parts, and clients ask for the same few
    # URLs again and again: cached, it costs a lookup instead of 3.7 us a request. Only short
    # targets are cached (_CACHED_LENGTH), so 1024 entries stay small whatever clients send.
    parts = (
        scope.get("scheme", "http"),
        host[0] if host else None,
        None if server is None else tuple(server),
        scope.get("root_path", ""),
        scope.get("path", "/"),
        scope.get("raw_path"),
        scope.get("query_string", b""),
    )
    # The size is spelled out: a generator over the parts cost 0.5 us a request (timeit). A part
    # of an unexpected type counts as long, so the URL takes the uncached path, as before.
    scheme, host_name, _, root_path, path, raw_path, query = parts
    try:
        size = len(scheme) + len(root_path) + len(path) + len(query)
        size += (len(host_name) if host_name is not None else 0) + (len(raw_path) if raw_path is not None else 0)
    except TypeError:
        size = _CACHED_LENGTH + 1
    if size <= _CACHED_LENGTH:
        try:
            return _url_from_parts_cached(*parts)
        except TypeError:  # an unhashable part (a bytearray from an unusual server): not cached
            pass
    return _url_from_parts(*parts)


def _url_from_parts(
    scheme: str,
    host: str | None,
    server: tuple[Any, ...] | None,
    root_path: str,
    path: str,
    raw_path: bytes | None,
    query: bytes,
) -> str:
    """The URL of :func:`_request_url` (raises ``_BadRequest`` for an invalid ``Host``)."""
    if host is not None:
        authority = host.strip().lower()
        if _AUTHORITY_RE.fullmatch(authority) is None:
            raise _BadRequest("invalid Host header")
    else:
        if server is None:
            authority = "localhost"
        elif server[1] is None:  # a Unix socket: no host to speak of
            authority = "localhost"
        else:
            name, port = server[0], server[1]
            authority = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and authority.endswith(default_port):
        authority = authority[: -len(default_port)]

    if raw_path is not None and (b"#" in raw_path or b"#" in query or not raw_path.startswith(b"/")):
        raw_path, path, query = _origin_form(raw_path, path, query)
        if raw_path == b"*":  # (after _origin_form: "*#x", which h11 passes on whole, too)
            raise _BadRequest(_ASTERISK)
    elif raw_path is None and path == "*":  # (a server that gives no raw_path: the ASGI path alone)
        raise _BadRequest(_ASTERISK)
    # Starlette and recent uvicorn include root_path in path; the ASGI spec says not to.
    full_path = path if path.startswith(root_path) else root_path + path
    if raw_path is not None and not raw_path.startswith(b"/"):
        raw_path = None  # an absolute-form or '*' target: fall back on the decoded path
    if raw_path is not None:
        decoded = _decoded_like(raw_path, full_path, root_path)
        if decoded == full_path:
            encoded_path = _encode(raw_path)
        elif root_path + decoded == full_path:
            encoded_path = _encode(root_path.encode("utf-8"), _DECODED_KEEP) + _encode(raw_path)
        else:
            encoded_path = _encode(full_path.encode("utf-8", "surrogateescape"), _DECODED_KEEP)
    else:
        encoded_path = _encode(full_path.encode("utf-8", "surrogateescape"), _DECODED_KEEP)
    if not encoded_path.startswith("/"):
        encoded_path = "/" + encoded_path
    url = f"{scheme}://{authority}{encoded_path}"
    return f"{url}?{_encode(query, _QUERY_KEEP)}" if query else url


def _decoded_like(raw_path: bytes, full_path: str, root_path: str) -> str:
    """``raw_path`` percent-decoded as the server decoded it into ``path``, if it can be told.

    A percent-encoded byte sequence that is not UTF-8 (``/caf%E9``, a Latin-1 URL) is decoded by
    uvicorn, httpx and Hypercorn with ``urllib.parse.unquote``, which puts U+FFFD in its place;
    compared with that, ``raw_path`` is seen to be the target the client sent, and its
    ``%E9`` reaches the Worker as sent, as in workerd. Taken for another path, it was rebuilt
    from the decoded one, ``/caf%EF%BF%BD`` (miniflare 4, 2026-12-07: ``/caf%E9``).
    """
    raw = unquote_to_bytes(raw_path)
    decoded = raw.decode("utf-8", "surrogateescape")
    if decoded != full_path and root_path + decoded != full_path:
        replaced = raw.decode("utf-8", "replace")
        if replaced != decoded and (replaced == full_path or root_path + replaced == full_path):
            return replaced
    return decoded


_ASTERISK: Final = "the request target * (asterisk form) names no resource to hand a Worker"
"""Why ``OPTIONS * HTTP/1.1`` (RFC 9112 3.2.4, a question about the server, not a resource) is
refused: workerd cannot make it a URL (500, "invalid URL; url = *": miniflare 4, 2026-12-07); it
reached the Worker as "/*", a request for a path no client asked for."""


def _origin_form(raw_path: bytes, path: str, query: bytes) -> tuple[bytes, str, bytes]:
    """The path and query of a request target that h11 passes on as sent (httptools parses it).

    A fragment (``/a?b#c``) is dropped, as workerd and httptools drop it (h11 left it in, so
    ``/echo#x`` reached the Worker as ``/echo%23x``); an absolute-form target
    (``http://host/a``, RFC 9112 3.2.2) gives its path, as under httptools (h11 gave ``/http://host/a``).
    """
    if b"#" in raw_path:
        raw_path, query = raw_path.partition(b"#")[0], b""  # the '?' came after the '#'
    else:
        query = query.partition(b"#")[0]
    absolute = _ABSOLUTE_FORM_RE.match(raw_path)
    if absolute is not None:
        raw_path = raw_path[absolute.end() :] or b"/"
    return raw_path, unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape"), query


_ABSOLUTE_FORM_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://[^/]*")
_CACHED_LENGTH: Final = 512
"""The longest request target (host, path and query together) whose URL is cached."""
_url_from_parts_cached = functools.lru_cache(maxsize=1024)(_url_from_parts)


def _encode(raw: bytes, keep: frozenset[int] = _PATH_KEEP) -> str:
    """Percent-encode the bytes of a path or query that cannot appear in a URL as they are."""
    # Measured (docs/performance.md): deleting the kept bytes in C tells whether any is left to encode; the generator
    # over every byte that did it cost 1.5-4 us a request.
    if not raw.translate(None, _KEEP_BYTES[keep]):
        return raw.decode("ascii")
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in raw)


# ---------------------------------------------------------------------------------------------
# durable.Response -> ASGI messages


def _text_response(status: int, text: str) -> Response:
    return Response(text, status=status)


async def _send_text(send: Send, status: int, text: str) -> None:
    data = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_TEXT_PLAIN, (b"content-length", str(len(data)).encode("ascii"))],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _send_response(
    send: Send,
    response: Response,
    *,
    head: bool,
    too_large: Callable[[], str],
    body: _RequestBody | None = None,
    accept: Headers | None = None,
) -> None:
    # too_large makes the 413 text only when it is sent (made for every request, it cost 0.2 us).
    status = response.status
    headers = [
        (name.encode("latin-1"), value.encode("utf-8"))
        for name, value in response.headers.multi_items()
        if name not in _FRAMING_HEADERS
    ]
    source: bytes | AsyncIterable[object] | None = take_body(response)
    if status not in _NO_BODY_STATUSES:
        for name, _ in headers:  # a plain loop: any() over a generator cost 0.4 us a response
            if name == b"content-encoding":
                source = _encode_body(source, headers, None if accept is None else accept.get("accept-encoding"), head)
                break
    if status in _NO_BODY_STATUSES or source is None:
        # A HEAD's answer has no length to give: the body it would have (through stub.fetch,
        # none at all) is unknown here; workerd sends none either (miniflare 4, 2026-04-07).
        if status not in _NO_BODY_STATUSES and not head:
            headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return

    if isinstance(source, bytes):
        headers.append((b"content-length", str(len(source)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else source})
        return

    if head:
        await _close(source)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return

    # A client that goes away stops the stream, as in workerd (measured with miniflare 4,
    # 2026-04-07: a ReadableStream is pulled no more once its client disconnects). Servers
    # (uvicorn) drop what is sent after a disconnect without a word, so without this watch a
    # stream that never ends (server-sent events) would run, or spin, forever.
    task = asyncio.current_task()
    watch = _DisconnectWatch(body, task) if task is not None and body is not None else None
    try:
        await _send_stream(send, source, status, headers, too_large)
    except asyncio.CancelledError:
        if watch is None or not watch.stopped():
            raise
        await _close(source)
    finally:
        if watch is not None:
            watch.cancel()


async def _send_stream(
    send: Send,
    source: AsyncIterable[object],
    status: int,
    headers: list[tuple[bytes, bytes]],
    too_large: Callable[[], str],
) -> None:
    # Read the first chunk before committing to the status, so that a stream failing at once
    # still gives a clean 500.
    chunks = body_chunks(source)
    try:
        first = await anext(chunks, b"")
    except _ClientDisconnected:
        return
    except _BodyTooLarge:  # the Worker streams the request body back
        await _send_text(send, 413, too_large())
        return
    except Exception:
        logger.exception("The response body stream failed before its first chunk")
        await _close(source)
        await _send_text(send, 500, "Worker threw exception")
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if first:
        await send({"type": "http.response.body", "body": first, "more_body": True})
    # If the stream fails now, the status line is gone: the exception propagates so that the
    # server aborts the connection and the client sees a truncated response, not a
    # complete-looking one.
    try:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            # A send to a client that has gone returns at once: let the loop run, so that the
            # disconnect is seen even when the stream never waits.
            await asyncio.sleep(0)
    except _ClientDisconnected:
        # The stream read the request's body (an echo) and its client went away: nothing to
        # abort, nobody to tell. It propagated to the server, which logged "Exception in ASGI
        # application" with a traceback for a client closing its connection.
        await _close(source)
        return
    await send({"type": "http.response.body", "body": b""})


# ---------------------------------------------------------------------------------------------
# Content-Encoding: workerd encodes the body the Worker gives


# The content types Cloudflare's edge compresses (miniflare 4 copies the list from Cloudflare's
# "Content compression" page and negotiates the encoding of these only).
_COMPRESSIBLE: Final = frozenset(
    {
        "text/html", "text/richtext", "text/plain", "text/css", "text/x-script", "text/x-component",
        "text/x-java-source", "text/x-markdown", "application/javascript", "application/x-javascript",
        "text/javascript", "text/js", "image/x-icon", "image/vnd.microsoft.icon", "application/x-perl",
        "application/x-httpd-cgi", "text/xml", "application/xml", "application/rss+xml",
        "application/vnd.api+json", "application/x-protobuf", "application/json", "multipart/bag",
        "multipart/mixed", "application/xhtml+xml", "font/ttf", "font/otf", "font/x-woff", "image/svg+xml",
        "application/vnd.ms-fontobject", "application/ttf", "application/x-ttf", "application/otf",
        "application/x-otf", "application/truetype", "application/opentype", "application/x-opentype",
        "application/font-woff", "application/eot", "application/font", "application/font-sfnt",
        "application/wasm", "application/javascript-binast", "application/manifest+json",
        "application/ld+json", "application/graphql+json", "application/geo+json",
    }
)  # fmt: skip
_GZIP_WBITS: Final = 31  # zlib's gzip container
_ACCEPT_ELEMENT_RE: Final = re.compile(r"(?P<coding>[a-z]+|\*)(?:\s*;\s*q=(?P<weight>\d+(?:.\d+)?))?")


def _encode_body(
    source: bytes | AsyncIterable[object] | None, headers: list[tuple[bytes, bytes]], accept: str | None, head: bool
) -> bytes | AsyncIterable[object] | None:
    """The body as it goes out for a response with a ``Content-Encoding`` (``headers`` is updated).

    workerd compresses the body itself when the Worker's ``Content-Encoding`` is exactly
    ``gzip`` or ``br`` (``encodeBody: "automatic"``, the default), and sends any other coding
    (``deflate``, ``GZIP``, ``gzip, br``) as given. In front of it, miniflare (as Cloudflare's
    edge does) picks the coding the client's ``Accept-Encoding`` prefers for the content types
    it compresses: ``identity`` drops the header and sends the body as it is. Measured with
    miniflare 4, 2026-04-07. Python has no Brotli encoder of its own, so ``br`` goes out as
    gzip where the client takes gzip, else uncompressed.

    No body stays no body and an empty one stays empty (workerd: ``Response(null)`` under gzip
    goes out with ``Content-Length: 0``, ``Response("")`` or an empty stream as an empty chunked
    body, never a gzip member of nothing); a ``HEAD``'s body, never sent, is not compressed and
    its answer has no length, as workerd's (miniflare 4, 2026-04-07).
    """
    values = [value for name, value in headers if name == b"content-encoding"]
    if len(values) != 1 or values[0] not in (b"gzip", b"br"):
        return source
    wanted: str | None = values[0].decode("ascii")
    codings = _accepted_codings(accept)
    content_type = next((value for name, value in headers if name == b"content-type"), None)
    if codings and (not content_type or content_type.split(b";")[0].decode("latin-1") in _COMPRESSIBLE):
        wanted = None
        for coding, weight in codings:
            if weight == 0:
                continue
            if coding in ("gzip", "br"):
                wanted = coding
                break
            if coding == "identity":
                break
    if wanted == "br":
        wanted = "gzip" if any(coding in ("gzip", "*") and weight > 0 for coding, weight in codings) else None
    headers[:] = [(name, value) for name, value in headers if name != b"content-encoding"]
    if wanted is None:
        return source
    headers.append((b"content-encoding", b"gzip"))
    if source is None or (head and isinstance(source, bytes)):
        return None
    if head:
        return source  # closed unread, as for any HEAD
    if isinstance(source, bytes):
        # zlib's gzip wrapper, as workerd's: default level, no timestamp (the same body gives the
        # same bytes); gzip.compress took level 9 and the current time.
        return zlib.compress(source, wbits=_GZIP_WBITS) if source else source
    return _gzipped(source)


def _accepted_codings(accept: str | None) -> list[tuple[str, float]]:
    """``Accept-Encoding``'s codings, highest weight first (miniflare's parse: bad elements are skipped)."""
    if accept is None:
        return []
    codings = []
    for element in accept.split(","):
        match = _ACCEPT_ELEMENT_RE.fullmatch(element.strip())
        if match is not None:
            weight = match["weight"]
            try:
                codings.append((match["coding"], 1.0 if weight is None else float(weight)))
            except ValueError:  # "1x5": the pattern's "." is any character, as in miniflare's
                continue
    codings.sort(key=lambda coding: -coding[1])
    return codings


async def _gzipped(source: AsyncIterable[object]) -> AsyncIterator[bytes]:
    """``source`` gzip-compressed, each chunk flushed so that a slow stream is not held back."""
    compressor = zlib.compressobj(wbits=_GZIP_WBITS)
    empty = True
    try:
        async for chunk in body_chunks(source):
            empty = False
            yield compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if not empty:  # an empty stream stays empty, as in workerd
            yield compressor.flush()
    finally:
        await _close(source)


class _DisconnectWatch:
    """Cancels the current task (streaming a response) when the client disconnects."""

    __slots__ = ("_stopped", "_task", "_watcher")

    def __init__(self, body: _RequestBody, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._stopped = False
        self._watcher = asyncio.ensure_future(body.wait_disconnected())
        self._watcher.add_done_callback(self._on_done)

    def _on_done(self, watcher: asyncio.Future[bool]) -> None:
        if not watcher.cancelled() and watcher.exception() is None and watcher.result():
            self._stopped = True
            self._task.cancel()

    def stopped(self) -> bool:
        """Whether the watch cancelled the task (then takes that cancellation back)."""
        if self._stopped:
            self._stopped = False
            return self._task.uncancel() == 0
        return False

    def cancel(self) -> None:
        """End the watch (the stream ended); a cancellation it made that the stream swallowed is taken back."""
        self._watcher.remove_done_callback(self._on_done)
        self._watcher.cancel()
        if self._stopped:
            self._stopped = False
            self._task.uncancel()


async def _close(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


# ---------------------------------------------------------------------------------------------
# lifespan and websocket


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start or stop: the runtime belongs to whoever created it.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _deny_websocket(scope: Scope, send: Send, response: Response) -> None:
    """Answer a WebSocket handshake with the Worker's own (non-101) response."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        try:
            text = await response.bytes() if not response.body_used else b""
        except Exception:
            # A streamed body that fails: the server takes the answer whole, so nothing has
            # gone out yet and the client gets a clean 500, as for a stream failing before its
            # first chunk over HTTP. It escaped to the server, which logged "Exception in ASGI
            # application" and answered its own "Internal Server Error". (workerd sends the
            # status and what the stream gave before failing: miniflare 4, 2026-12-07.)
            logger.exception("The body of the answer to a WebSocket handshake failed")
            response = _text_response(500, "Worker threw exception")
            text = await response.bytes()
        headers = [
            (name.encode("latin-1"), value.encode("utf-8"))
            for name, value in response.headers.multi_items()
            if name not in _FRAMING_HEADERS
        ]
        headers.append((b"content-length", str(len(text)).encode("ascii")))
        await send({"type": "websocket.http.response.start", "status": response.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": text})
    else:
        # Closing before accepting makes the server answer the handshake with 403. The body,
        # never sent, is closed (a generator behind it gets GeneratorExit), as for a HEAD.
        await _close(take_body(response))
        await send({"type": "websocket.close", "code": 1011})
