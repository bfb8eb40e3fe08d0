"""Outbound HTTP: ``workers.fetch``, ``js.fetch`` and ``pyodide.http.pyfetch``, as workerd's ``fetch``.

A Worker or a Durable Object reaches the network the way workerd's ``fetch`` does (measured with
miniflare 4, compatibility date 2026-04-07, against a local server):

- only ``http:`` and ``https:`` URLs (``TypeError: Fetch API cannot load: ftp://...``);
- no headers but the caller's (no ``User-Agent``, ``Accept`` or ``Accept-Encoding``), and
  ``content-type: text/plain;charset=UTF-8`` for a ``str`` body;
- redirects followed by default (``redirect="manual"`` returns the 3xx), at most 20 of them
  (``TypeError: Too many redirects.`` and the URLs), a 303, or a 301/302 after a ``POST``,
  turning into a body-less ``GET``; the response's ``url`` is the last URL, ``redirected`` true;
- a URL's credentials (``http://user:pw@host/``) not sent (no ``authorization`` header), but kept in
  the response's ``url``;
- a compressed (``gzip``/``deflate``) body decoded, its ``content-encoding`` header kept;
- no body for a ``HEAD``; a failed connection raises ``Error: Network connection lost.``.

Inside a Durable Object, the request leaves only once the object's earlier writes are durable,
as its calls to other objects do (the output gate). The transport is ``httpx`` when it is
importable, else the standard library's ``http.client`` on a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import durable
from durable._context import running_host
from durable._http import (
    MAX_REDIRECTS,
    buffer_body,
    fetched,
    headers_from_server,
    held_body,
    redirect_target,
    redirected_request,
    sent_url,
    without_credentials,
)
from durable._util import rebuilt_exception

from ._http import Request, Response, request_from
from .pyodide.ffi import JsException

__all__ = ["NETWORK_LOST", "fetch", "js_fetch", "pyfetch"]

NETWORK_LOST = "Network connection lost."
"""workerd's message for a connection that failed (measured: ``fetch("http://127.0.0.1:1/")``)."""

# Init fields of fetch() that a Request takes; the others (signal, mode, credentials...) are
# ignored, as JavaScript ignores a field it does not read, and the SDK's ``fetcher`` too.
_REQUEST_FIELDS = ("method", "headers", "body", "redirect", "cache", "integrity", "keepalive", "cf")

_Hop = tuple[int, str, list[tuple[bytes, bytes]], bytes]
"""One exchange: status, reason phrase, raw header pairs, the (decoded) body."""


class FetchError(Exception):
    """A failure of workerd's ``fetch``: ``name`` is the JavaScript error's class, ``message`` its text."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # (BaseException's reduce passes the message alone, which this constructor refuses.)
        return rebuilt_exception(self)


async def fetch(resource: Any, /, **options: Any) -> Response:
    """``workers.fetch(resource, **options)``: the response as the SDK's :class:`Response`.

    The options are keywords only, as in the SDK: an init dict, JavaScript's way
    (``fetch(url, {"headers": ...})``), raises the SDK's ``TypeError: fetch() takes 1 positional
    argument but 2 were given`` (its own tests check for that error), so code that would fail on
    Cloudflare fails here too. ``js.fetch`` takes the dict.

    Raises:
        OSError: anything ``fetch`` rejects with (an invalid URL or option, a failed connection,
            too many redirects), with workerd's message, as Pyodide's ``pyfetch`` raises it.
    """
    try:
        return await _fetch(resource, options)
    except FetchError as exc:
        raise OSError(exc.message) from None


async def pyfetch(url: Any, **options: Any) -> Response:
    """``pyodide.http.pyfetch(url, **options)``: as :func:`fetch` (a ``FetchResponse``)."""
    return await fetch(url, **options)


async def js_fetch(resource: Any, init: Mapping[str, Any] | None = None, /, **fields: Any) -> Response:
    """``js.fetch(resource, init)`` (or keyword init fields, as Pyodide passes them).

    Raises:
        JsException: what workerd's ``fetch`` rejects with (``TypeError: Invalid URL: /x``,
            ``Error: Network connection lost.``...).
    """
    try:
        return await _fetch(resource, {**(init or {}), **fields})
    except FetchError as exc:
        raise JsException(exc.name, exc.message) from None


async def _fetch(resource: Any, options: dict[str, Any]) -> Response:
    try:
        request, follow = _outbound_request(resource, options)
    except JsException as exc:  # the Request constructor's (a JsException that is a TypeError too)
        raise FetchError(exc.name, exc.message) from None
    except (TypeError, ValueError) as exc:
        raise FetchError("TypeError" if isinstance(exc, TypeError) else "RangeError", str(exc)) from None
    host = running_host()
    held = host.before_outgoing() if host is not None else None
    if held is not None:
        await held  # the object's earlier writes are durable (the output gate)
    urls = [sent_url(request)]
    while True:
        status, reason, raw, data = await _send(request)
        response = Response(None if request.method == "HEAD" else data, status, reason, headers_from_server(raw))
        target = redirect_target(request, response) if follow else None
        if target is None:
            fetched(response, request, redirected=len(urls) > 1)
            return response
        if len(urls) > MAX_REDIRECTS:
            raise FetchError("TypeError", "Too many redirects." + ", ".join(urls))
        try:
            request = redirected_request(request, status, target)
        except TypeError as exc:
            raise FetchError("TypeError", str(exc)) from None
        urls.append(target)


def _outbound_request(resource: Any, options: dict[str, Any]) -> tuple[durable.Request, bool]:
    """The request to send, and whether to follow redirects (``redirect != "manual"``)."""
    fields = {name: options[name] for name in _REQUEST_FIELDS if name in options}
    sdk_request = request_from(resource, fields)
    request = sdk_request.js_object
    if request is resource or (isinstance(resource, Request) and request is resource.js_object):
        request = durable.Request(request)  # fetch sends a copy: the body moves over
    request.url = request.url.partition("#")[0]  # HTTP sends no fragment
    if urlsplit(request.url).scheme not in ("http", "https"):
        raise TypeError(f"Fetch API cannot load: {request.url}")
    # Sent without the URL's credentials, which the response's url keeps (measured with miniflare 4,
    # 2026-04-07: fetch("http://u:p@127.0.0.1:P/x") reaches the server with no authorization
    # header, its url is http://u:p@127.0.0.1:P/x). httpx made them an authorization header, and
    # http.client failed to connect to the "u:p@127.0.0.1:P" it was given.
    sent = without_credentials(request)
    return sent, sent.redirect != "manual"  # the SDK Request keeps its mode on durable.Request


async def _body_bytes(request: durable.Request) -> bytes | None:
    """The request's body as bytes (a stream is read first; it stays unread for a redirect)."""
    await buffer_body(request)
    body = held_body(request)
    return body if body is None or isinstance(body, bytes) else None


async def _send(request: durable.Request) -> _Hop:
    body = await _body_bytes(request)
    headers = [(name, value) for name, value in request.headers.multi_items()]
    try:
        return await _transport()(request.method, request.url, headers, body)
    except FetchError:
        raise
    except Exception as exc:  # a connection refused, reset or timed out, a bad host name, a TLS failure
        raise FetchError("Error", NETWORK_LOST) from exc


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _transport() -> Callable[[str, str, list[tuple[str, str]], bytes | None], Awaitable[_Hop]]:
    try:
        import httpx  # noqa: F401 - only whether it is there
    except ImportError:
        return _send_stdlib
    return _send_httpx


async def _send_httpx(method: str, url: str, headers: list[tuple[str, str]], body: bytes | None) -> _Hop:
    import httpx

    # No proxy from the environment, no time limit, no default headers: what workerd sends.
    # (One TLS context for every fetch: making one costs tens of milliseconds.)
    async with httpx.AsyncClient(
        verify=_tls_context(), trust_env=False, timeout=None, follow_redirects=False
    ) as client:
        client.headers.clear()
        request = client.build_request(method, url, headers=headers, content=body)
        response = await client.send(request)
        try:
            data = await response.aread()  # decoded, as workerd decodes gzip/deflate/br
        finally:
            await response.aclose()
        return response.status_code, response.reason_phrase, list(response.headers.raw), data


async def _send_stdlib(method: str, url: str, headers: list[tuple[str, str]], body: bytes | None) -> _Hop:
    return await asyncio.to_thread(_exchange, method, url, headers, body)


def _exchange(method: str, url: str, headers: list[tuple[str, str]], body: bytes | None) -> _Hop:
    """One request over ``http.client`` (blocking: run on a worker thread)."""
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.netloc, context=_tls_context())
    else:
        connection = http.client.HTTPConnection(parts.netloc)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, target, skip_accept_encoding=True)
        names = {name for name, _ in headers}
        for name, value in headers:
            connection.putheader(name, value.encode("utf-8"))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            connection.putheader("content-length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()]
        encoding = (response.getheader("content-encoding") or "").strip().lower()
        if data and encoding in ("gzip", "x-gzip"):
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
        elif data and encoding == "deflate":
            try:
                data = zlib.decompress(data)
            except zlib.error:
                data = zlib.decompress(data, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
        return response.status, response.reason, raw, data
    finally:
        connection.close()
