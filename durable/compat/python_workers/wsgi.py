"""The SDK's ``workers.wsgi``: serve a WSGI application (Flask, Django...) from a Worker's
``fetch``, as Cloudflare's Django example does::

    from workers import WorkerEntrypoint, wsgi

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await wsgi.fetch(application, request, self.env)

or, with workers-runtime-sdk 1.9.5's shortcut, ``Default = wsgi.entrypoint(application)``.

As workers-py ``wsgi.py`` builds it, the environ has ``REQUEST_METHOD``, ``SCRIPT_NAME`` ``""``,
``PATH_INFO`` (percent-decoded, a WSGI native string), ``QUERY_STRING``, ``SERVER_NAME``,
``SERVER_PORT``, ``SERVER_PROTOCOL`` ``"HTTP/1.1"``, ``CONTENT_TYPE`` / ``CONTENT_LENGTH``, one
``HTTP_*`` per header (repeated ones joined with ``,``), the ``wsgi.*`` keys and ``workers.env``
(the bindings). The app runs on the event loop's thread, as there; its body is sent as it
produces it, and its iterable's ``close()`` is called once it is done.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import durable

from ._entrypoints import WorkerEntrypoint
from ._http import Response, unwrap_request
from .gateway import BaseOptions, refuse_manual_encoding

__all__ = ["Options", "build_environ", "entrypoint", "fetch"]


@dataclass(frozen=True, kw_only=True)
class Options(BaseOptions):
    """The WSGI adapter's options (workers-runtime-sdk 1.9.5): ``encode_body`` (see ``workers.gateway``)."""


NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})
_log = logging.getLogger("wsgi")


def build_environ(req: Any, env: Any, body: bytes) -> dict[str, Any]:
    """The WSGI environ for ``req`` (a ``workers.Request`` or its ``js_object``) and ``body``."""
    req = unwrap_request(req)
    url = urlsplit(req.url)
    if not url.scheme:
        raise ValueError(f"Request URL is not absolute: {req.url!r}")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(req.method),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(url.path or "/").decode("latin-1"),  # PEP 3333: bytes as latin-1
        "QUERY_STRING": url.query,
        "SERVER_NAME": url.hostname,
        "SERVER_PORT": str(url.port) if url.port else ("443" if url.scheme == "https" else "80"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "workers.env": env,
    }
    for key, value in req.headers.items():
        name = key.upper().replace("-", "_")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
        elif "HTTP_" + name in environ:
            environ["HTTP_" + name] += "," + value
        else:
            environ["HTTP_" + name] = value
    if "CONTENT_LENGTH" not in environ and body:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _process(app: Any, environ: dict[str, Any]) -> Response:
    state: dict[str, Any] = {}
    written: list[bytes] = []

    def write(chunk: bytes) -> None:
        if "status" not in state:
            raise AssertionError("write() called before start_response()")
        if chunk:
            written.append(chunk)

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None:
            if "sent" in state:  # PEP 3333: too late to replace the status once the body started
                raise exc_info[1].with_traceback(exc_info[2])
        elif "status" in state:
            raise AssertionError("start_response() called more than once")
        state["status"], state["headers"] = status, headers
        return write

    result = app(environ, start_response)
    chunks: Iterator[bytes] = iter(result)

    def close() -> None:
        close_result = getattr(result, "close", None)
        if close_result is not None:
            close_result()

    first = b""
    try:
        first = b"".join(written) or next((chunk for chunk in chunks if chunk), b"")
        written.clear()
    except Exception:
        close()
        raise
    if "status" not in state:
        close()
        raise RuntimeError("The WSGI application did not call start_response()")

    state["sent"] = True
    code, _, reason = state["status"].partition(" ")
    headers = durable.Headers()
    for key, value in state["headers"]:
        headers.append(key, value)

    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            for chunk in chunks:
                if written:  # write() called while the iterable runs: its data goes first
                    yield b"".join(written)
                    written.clear()
                if chunk:
                    yield chunk
            if written:
                yield b"".join(written)
        finally:
            close()

    status = int(code)
    if status in NULL_BODY_STATUSES:
        close()
        content: Any = None
    else:
        content = body()
    return Response(durable.Response(content, status=status, headers=headers, status_text=reason or None))


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None, *, options: Options | None = None) -> Response:
    """Serve ``req`` (a ``workers.Request``) with the WSGI application ``app``; ``env`` is the
    environ's ``"workers.env"``.

    Raises:
        Exception: what the app raised before its first body chunk, or ``RuntimeError("The WSGI
            application did not call start_response()")``.
        NotImplementedError: ``options`` asks for ``encode_body="manual"`` (see ``workers.gateway``).
    """
    refuse_manual_encoding(options, "wsgi")
    body = await unwrap_request(req).bytes()
    try:
        return _process(app, build_environ(req, env, body))
    except Exception:
        _log.exception("WSGI request failed")
        raise


def entrypoint(app: Any, *, options: Options | None = None) -> type[WorkerEntrypoint]:
    """A Worker's ``Default`` class serving the WSGI application ``app`` with the Worker's ``env``,
    as workers-runtime-sdk 1.9.5's ``wsgi.entrypoint`` makes it (``Default = wsgi.entrypoint(app)``)."""

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Response:
            return await fetch(app, request, self.env, options=options)

    return Default
