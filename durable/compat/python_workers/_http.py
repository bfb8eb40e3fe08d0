"""``workers.Request``, ``workers.FetchResponse`` and ``workers.Response``, over `durable`'s types.

The SDK's shapes differ from `durable`'s (and from Fetch) in a few places, reproduced here:

- ``Response(body=None, status=None, status_text="", headers=None, web_socket=None)`` takes
  ``status`` positionally and ``None`` means 200; ``Response.from_json(data, status=200, ...)``
  builds a JSON response; ``Response.json`` is that builder on the class and parses on an instance.
- a body read twice raises ``OSError("Body already used")`` (pyodide's ``FetchResponse``);
- ``request.method`` is an ``http.HTTPMethod`` (a ``str`` enum, so ``== "GET"`` holds);
- ``stub.fetch()`` returns a :class:`FetchResponse`, the base class of :class:`Response`.

Both response classes subclass :class:`durable.Response`, so a handler may return either.
"""

from __future__ import annotations

import builtins
import contextlib
import http
import json as _json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, NoReturn, overload

import durable
from durable._util import unbuilt_safe_repr

from ._convert import JsDate, JsDict, JsList, JsMapDict, JsObject
from ._forms import Blob, File, FormData, JsBlob, encode_body, mime_type, parse_form
from ._jsjson import js_json_text
from .pyodide.ffi import ArrayBuffer, JsException, JsProxy

__all__ = ["FetchResponse", "Request", "Response", "as_fetch_response", "unwrap_request"]

_BODY_USED = "Body already used"


class _SdkJson:
    """``Response.json``: the JSON builder on the class (the SDK's alias of ``from_json``), the
    body parser on an instance, as `durable.Response.json` is."""

    @overload
    def __get__(self, obj: None, objtype: type[FetchResponse]) -> Callable[..., Response]: ...
    @overload
    def __get__(
        self, obj: FetchResponse, objtype: type[FetchResponse] | None = None
    ) -> Callable[..., Awaitable[Any]]: ...

    def __get__(self, obj: FetchResponse | None, objtype: type[FetchResponse] | None = None) -> Callable[..., Any]:
        if obj is None:
            return FetchResponse.from_json

        async def parse(**kwargs: Any) -> Any:
            # pyodide's FetchResponse.json: ``json.loads(await self.string(), **kwargs)``, Python's
            # parser (so NaN and Infinity are read, and keyword arguments reach json.loads).
            return _json.loads(await obj.text(), **kwargs)

        return parse


class FetchResponse(durable.Response):
    """A response as the SDK returns it from ``fetch`` and ``stub.fetch`` (pyodide's ``FetchResponse``).

    A :class:`durable.Response` with the SDK's extras: ``status_text``, ``from_json``,
    ``replace_body``, ``clone``, ``buffer()``, and ``OSError("Body already used")`` on a second
    read.
    """

    json = _SdkJson()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        as_message(self.headers)  # read as the SDK's HTTPMessage (a missing name is None)

    def _check_unused(self) -> None:
        if self.body_used:
            raise OSError(_BODY_USED)

    async def bytes(self) -> builtins.bytes:
        """Read the whole body as ``bytes``. Raises ``OSError("Body already used")`` the second time."""
        self._check_unused()
        return await super().bytes()

    async def text(self) -> str:
        """Read the whole body as text. Raises ``OSError("Body already used")`` the second time."""
        self._check_unused()
        return await super().text()

    async def buffer(self) -> ArrayBuffer:
        """Read the whole body as the SDK gives it, a JavaScript ``ArrayBuffer`` (``byteLength``,
        ``to_bytes()``, ``to_py()``; it is ``bytes`` too)."""
        return ArrayBuffer(await self.bytes())

    async def string(self) -> str:
        """Read the whole body as text (pyodide's ``FetchResponse.string``)."""
        return await self.text()

    async def memoryview(self) -> builtins.memoryview:
        """Read the whole body as a ``memoryview``."""
        return builtins.memoryview(await self.bytes())

    @property
    def type(self) -> str:
        """The response type: ``"default"``."""
        return "default"

    @property
    def js_object(self) -> durable.Response:
        """The response itself (there is no separate JavaScript object)."""
        return self

    js_response = js_object

    def raise_for_status(self) -> None:
        """Raise ``OSError`` for a 4xx or 5xx status, in pyodide's words
        (``"404 Client Error: Not Found for url: "``)."""
        kind = "Client" if 400 <= self.status < 500 else "Server" if 500 <= self.status < 600 else None
        if kind is not None:
            raise OSError(f"{self.status} {kind} Error: {self.status_text} for url: {self.url}")

    async def blob(self) -> Blob:
        """Read the whole body as a :class:`Blob` typed with the ``Content-Type`` (``""`` if none)."""
        return Blob(await self.bytes(), mime_type(self.headers.get("content-type")))

    async def form_data(self) -> FormData:
        """Read the body as a :class:`FormData` (``multipart/form-data`` or
        ``application/x-www-form-urlencoded``).

        Raises:
            OSError: the body was already read (``Body already used``).
            TypeError: another content type, or a malformed body (workerd's messages).
        """
        self._check_unused()
        return parse_form(self.headers.get("content-type"), await self.bytes())

    formData = form_data

    @classmethod
    def from_json(
        cls,
        data: Any,
        status: int = 200,
        status_text: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Build a JSON response (``application/json``), as the SDK's ``Response.from_json``.

        As there, Python data is written with ``json.dumps(data)`` (its default spacing and
        ASCII escapes: ``{"a": 1, "\\u00e9": 2}``), the ``JsDict`` that storage, RPC and SQL give
        too (the SDK converts those to a ``dict``); a JavaScript object held unconverted (a
        ``JsObject``: ``to_js(d, dict_converter=Object.fromEntries)``, ``JSON.parse``'s, Pyodide's
        ``JsProxy``), or a JavaScript array (a ``JsList``: ``JSON.parse("[...]")``, ``Array.from``),
        goes through ``Response.json``: ``JSON.stringify``'s text, compact, ``1.0`` written ``1``
        and ``NaN`` ``null`` (it was ``json.dumps``'s: ``1.0``, and ``NaN``, which is not JSON).
        """
        if isinstance(data, (JsObject, JsList, JsMapDict, JsDate, JsProxy)):
            text = js_json_text(data)
        else:
            text = _json.dumps(data)
        merged = durable.Headers(headers)
        if "content-type" not in merged:
            merged["content-type"] = "application/json"
        return Response(text, status, status_text, merged)

    def replace_body(self, body: Any) -> Response:
        """A new response with this one's status and headers and ``body``."""
        return Response(body, self.status, self.status_text, durable.Headers(self.headers))

    def clone(self) -> FetchResponse:
        """A copy that can be read independently. Raises ``OSError`` if the body was read."""
        self._check_unused()
        # durable's clone: a streamed body is split so that each copy reads every chunk (the
        # SDK's clone is JavaScript's, which tees the stream).
        return durable.Response.clone(self)


def _check_returnable(web_socket: Any) -> None:
    """Refuse an outbound socket as a Response's ``web_socket``, naming it.

    workerd takes one (measured, miniflare 4, 2026-04-07: ``new Response(null, {status: 101,
    webSocket: new WebSocket(url)})`` is a 101, and returning it answers the client with a 101,
    the runtime relaying between the two); durable does not relay an outbound socket.

    Raises:
        NotImplementedError: ``web_socket`` was made by ``js.WebSocket.new``.
    """
    from ._wsclient import JsWebSocket

    if isinstance(web_socket, JsWebSocket):
        raise NotImplementedError(
            "Response(web_socket=js.WebSocket.new(...)) is not supported by durable: it does not relay an outbound "
            "WebSocket to the client; return the client end of a js.WebSocketPair instead"
        )


class JsTypeError(JsException, TypeError):
    """workerd's ``TypeError`` as Pyodide raises it (a ``JsException`` named ``TypeError``), and a
    Python ``TypeError`` too, as `durable` raised before."""


class JsRangeError(JsException, ValueError):
    """workerd's ``RangeError`` as Pyodide raises it, and the ``ValueError`` `durable` raised before."""


@contextlib.contextmanager
def js_errors() -> Iterator[None]:
    """Errors of a JavaScript constructor the SDK calls without converting them (``js.Response.new``,
    ``js.Request.new``, ``js.Headers.new`` in workers-py ``Response.__init__`` / ``Request.__init__``):
    workerd's ``TypeError`` / ``RangeError`` reach the code as ``pyodide.ffi.JsException``."""
    try:
        yield
    except JsException:
        raise
    except TypeError as exc:
        raise JsTypeError("TypeError", str(exc)) from exc
    except ValueError as exc:
        raise JsRangeError("RangeError", str(exc)) from exc


class Response(FetchResponse):
    """The SDK's ``Response``: ``Response(body=None, status=None, status_text="", headers=None, web_socket=None)``.

    Args:
        body: ``str``, ``bytes``, ``None``... as for :class:`durable.Response`.
        status: the status code; ``None`` means 200.
        status_text: the reason phrase; empty means the standard one.
        headers: a mapping or :class:`durable.Headers`.
        web_socket: the client end of a WebSocket pair, with ``status=101`` (needs `durable`'s
            WebSocket support).

    Raises:
        TypeError, ValueError: as :class:`durable.Response` does for a bad body, status or header.
    """

    def __init__(
        self,
        body: Any = None,
        status: int | None = None,
        status_text: str = "",
        headers: Any = None,
        web_socket: Any = None,
    ) -> None:
        if isinstance(body, durable.Response):
            # workers-py response.py: Response(js_response) wraps that JavaScript response (the
            # same body), and takes no options with it.
            if status is not None or status_text or headers is not None:
                raise ValueError("Expected no options when constructing Response from a js.Response")
            _share(body, self)
            return
        if body is not None and (
            not isinstance(body, (str, builtins.bytes, FormData, JsBlob)) or isinstance(body, File)
        ):
            # workers-py response.py: only str, bytes, FormData and JavaScript bodies of the types in
            # RESPONSE_ACCEPTED_TYPES (a js.Blob, not a js.File nor the SDK's own Blob / File).
            kind = "File" if isinstance(body, File) else "Blob" if isinstance(body, Blob) else type(body).__name__
            raise TypeError(f"Unsupported type in Response: {kind}")
        options: dict[str, Any] = {}
        if web_socket is not None:
            _check_returnable(web_socket)
            options["web_socket"] = web_socket  # accepted by durable.Response where WebSockets exist
        with js_errors():
            body, headers = with_form_body(body, headers)
            super().__init__(
                body,
                status=int(status) if status else 200,  # the SDK passes no status for 0 (`if status:`)
                headers=headers,
                status_text=status_text or None,
                **options,
            )

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        """As the SDK's: ``Response(status=200, status_text='OK', content_type='text/plain;charset=UTF-8')``."""
        parts = [f"status={self.status}"]
        if self.status_text:
            parts.append(f"status_text={self.status_text!r}")
        content_type = self.headers.get("content-type")
        if content_type is not None:
            parts.append(f"content_type={content_type!r}")
        return f"Response({', '.join(parts)})"

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        """A redirect to ``url`` (status 301, 302, 303, 307 or 308), with workerd's immutable
        headers: the SDK returns ``js.Response.redirect(url, code)`` itself."""
        return super().redirect(url, int(status))


def with_form_body(body: Any, headers: Any) -> tuple[Any, Any]:
    """A ``FormData`` or ``Blob`` body as bytes, and ``headers`` with its ``Content-Type`` when they
    have none (workerd keeps a given one, measured); any other body and ``headers`` as they are."""
    data, content_type = encode_body(body)
    if content_type is None:
        return data, headers
    merged = durable.Headers(headers)
    if "content-type" not in merged:
        merged["content-type"] = content_type
    return data, merged


def as_fetch_response(response: durable.Response) -> FetchResponse:
    """The same response (same body, not read) as a :class:`FetchResponse`."""
    if isinstance(response, FetchResponse):
        return response
    copy = FetchResponse.__new__(FetchResponse)
    _share(response, copy)
    return copy


def _share(response: durable.Response, copy: durable.Response) -> None:
    """Make ``copy`` another view of ``response``: same status, headers and body (one stream)."""
    response.headers  # noqa: B018 - made now if not yet (see _Body.headers), so that both share them
    for klass in type(response).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if hasattr(response, slot):
                setattr(copy, slot, getattr(response, slot))
    if hasattr(response, "__dict__"):
        copy.__dict__.update(vars(response))
    as_message(copy.headers)


class MessageHeaders(durable.Headers):  # type: ignore[misc]  # (Headers is final to users; this is its reading for the SDK)
    """Headers as the SDK hands them out, an ``http.client.HTTPMessage`` (workers-py
    ``_js_headers_to_http_message``): a missing name reads as ``None``, not ``KeyError``, so
    ``if request.headers["Upgrade"] != "websocket"`` works as on Cloudflare; and
    ``get_content_type()`` is there. Otherwise a :class:`durable.Headers` (case-insensitive,
    ``get``, ``items``...).
    """

    __slots__ = ()

    def __getitem__(self, name: str) -> str | None:  # type: ignore[override]
        value: str | None = self.get(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """``HTTPMessage.get``: the first value of ``name`` as :meth:`get_all` gives them, else
        ``default``. A repeated header is one value joined with ``", "``; ``Set-Cookie`` is the
        first cookie only, as the SDK's ``HTTPMessage`` holds one entry per cookie (durable joined
        the cookies into one value, which no cookie parser reads back)."""
        values = self.get_all(name)
        return values[0] if values else default

    def _values(self, name: str) -> list[str]:
        key = name.lower() if isinstance(name, str) else name
        return [v for n, v in self.multi_items() if n == key]

    def get_all(self, name: str, failobj: Any = None) -> Any:
        """``HTTPMessage.get_all`` over workerd's ``Headers``, as the SDK builds it: a repeated
        header is one value joined with ``", "`` (``["deflate, gzip"]``: workerd's Headers
        iterate so, measured with miniflare 4, 2026-04-07, and the SDK's own test expects it),
        ``Set-Cookie`` one value per cookie; ``failobj`` (``None``) when absent, and for a name
        that is not a token (``HTTPMessage`` never raises)."""
        values = self._values(name)
        if not values:
            return failobj
        if isinstance(name, str) and name.lower() == "set-cookie":
            return values
        return [", ".join(values)]

    def get_set_cookie(self) -> list[str]:
        """The ``Set-Cookie`` values, one per cookie (``[]`` when there is none)."""
        return self._values("set-cookie")

    def get_content_type(self) -> str:
        """The ``Content-Type``'s ``maintype/subtype``, lower-cased; ``text/plain`` if there is none."""
        value = (self.get("content-type") or "").split(";", 1)[0].strip().lower()
        return value if value.count("/") == 1 else "text/plain"

    def get_content_maintype(self) -> str:
        """The part of :meth:`get_content_type` before the slash."""
        return self.get_content_type().split("/", 1)[0]

    def get_content_subtype(self) -> str:
        """The part of :meth:`get_content_type` after the slash."""
        return self.get_content_type().split("/", 1)[1]


def as_message(headers: durable.Headers) -> MessageHeaders:
    """``headers`` itself, read as the SDK's ``HTTPMessage`` is (see :class:`MessageHeaders`)."""
    if type(headers) is durable.Headers:
        headers.__class__ = MessageHeaders
    return headers  # type: ignore[return-value]


def _method(name: str) -> http.HTTPMethod | str:
    try:
        return http.HTTPMethod(name)
    except ValueError:
        return name


def _absent_in_workerd(name: str, js_name: str) -> property:
    """A property of the SDK's ``Request`` that reads a ``Request`` field workerd does not have."""

    def absent(self: Request) -> NoReturn:
        raise AttributeError(
            f"{js_name}: workerd's Request has no {js_name!r} property, so the SDK's Request.{name} "
            "raises AttributeError on Cloudflare (getattr(request, name, None) reads None)"
        )

    return property(absent, doc=f"Raises ``AttributeError``: workerd's ``Request`` has no ``{js_name}``.")


class Request:
    """The SDK's ``Request``, wrapping a :class:`durable.Request` (``request.js_object``).

    ``Request(url_or_request, method=..., headers=..., body=...)``, or with the options as a
    positional dict. ``method`` is an ``http.HTTPMethod``; ``headers`` is case-insensitive; the
    body is read once with ``text()``, ``json()``, ``bytes()`` or ``buffer()`` and a second read
    raises ``OSError("Body already used")``.

    Raises:
        TypeError: as :class:`durable.Request` does for a bad URL, method, header or body.
    """

    __slots__ = ("_extra", "_req")

    _req: durable.Request
    _extra: dict[str, Any]

    def __init__(self, input: Any, init: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        if (init or kwargs) and isinstance(input, (JsRequest, durable.Request)):
            # workers-py request.py: a js.Request (request.js_object, js.Request.new(...)) is
            # wrapped as it is; options with it are refused (a workers.Request takes them).
            raise ValueError("Expected no options when constructing Request from a js.Request")
        self._setup(input, {**(init or {}), **kwargs})

    def _setup(self, input: Any, options: dict[str, Any]) -> None:
        extra: dict[str, Any] = {}
        if isinstance(input, Request):
            extra = input.init_options()
            input = input.js_object
        for name in _EXTRA_OPTIONS:
            if name in options:
                extra[name] = _extra_option(name, options.pop(name))
        for name in _IGNORED_OPTIONS:
            options.pop(name, None)
        # redirect is durable.Request's own field (stub.fetch follows it): kept there, not here,
        # so that the mode stub.fetch and fetch() obey is the one this wrapper reports.
        redirect = extra.pop("redirect", None)
        self._extra = extra
        if redirect is not None and not (isinstance(input, durable.Request) and input.redirect == redirect):
            options["redirect"] = redirect
        if isinstance(input, durable.Request) and not options:
            self._req = input
            return
        if isinstance(options.get("method"), http.HTTPMethod):
            options["method"] = options["method"].value
        unknown = sorted(set(options) - {"method", "headers", "body", "redirect"})
        if unknown:
            raise TypeError(f"Request() got an unsupported option {unknown[0]!r}")
        with js_errors():
            if "body" in options:
                options["body"], options["headers"] = with_form_body(options["body"], options.get("headers"))
                if options["headers"] is None:
                    del options["headers"]
            self._req = durable.Request(input, **options)

    def init_options(self) -> dict[str, Any]:
        """The constructor's options that live on this wrapper (``cache``, ``cf``...) and ``redirect``."""
        return {**self._extra, "redirect": self._req.redirect}

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"Request(method={self._req.method!r}, url={self._req.url!r})"

    @property
    def redirect(self) -> str:
        """The redirect mode: ``"follow"`` unless constructed with ``redirect="manual"``, or
        ``"manual"`` for a request a handler received (durable.Request's ``redirect``, as workerd)."""
        return self._req.redirect

    @property
    def cache(self) -> str | None:
        """The cache mode given to the constructor (``"no-store"``), else ``None`` (workerd: undefined)."""
        return self._extra.get("cache")

    @property
    def integrity(self) -> str:
        """Always ``""`` (workerd implements no subrequest integrity checking)."""
        return ""

    @property
    def keepalive(self) -> bool:
        """Always ``False``, as workerd reads it whatever the constructor was given."""
        return False

    # workerd implements none of these Fetch properties: `"mode" in request` is false on a
    # constructed and on a received Request (measured: miniflare 4, 2026-04-07), and Pyodide's
    # JsProxy raises AttributeError for a name the object lacks (only a present property that is
    # undefined reads None), so the SDK's properties raise AttributeError on Cloudflare.
    credentials = _absent_in_workerd("credentials", "credentials")
    destination = _absent_in_workerd("destination", "destination")
    is_history_navigation = _absent_in_workerd("is_history_navigation", "isHistoryNavigation")
    mode = _absent_in_workerd("mode", "mode")
    referrer = _absent_in_workerd("referrer", "referrer")
    referrer_policy = _absent_in_workerd("referrer_policy", "referrerPolicy")

    @property
    def js_object(self) -> durable.Request:
        """The underlying :class:`durable.Request`."""
        return self._req

    @property
    def url(self) -> str:
        return self._req.url

    @property
    def method(self) -> http.HTTPMethod | str:
        return _method(self._req.method)

    @property
    def headers(self) -> MessageHeaders:
        """The headers, read as the SDK's ``HTTPMessage`` is (a missing name is ``None``)."""
        return as_message(self._req.headers)

    @property
    def cf(self) -> Any:
        """Cloudflare's request properties: those given to the constructor (``cf={...}``, with
        attribute access), else those ``stub.fetch`` delivered with the request (workerd hands
        the sender's ``cf`` to the object), else ``None`` (there is no edge to fill them)."""
        if "cf" in self._extra:
            return self._extra["cf"]
        cf = self._req.cf
        return None if cf is None else JsDict(cf)

    @property
    def body(self) -> Any:
        return self._req.body

    @property
    def body_used(self) -> bool:
        return self._req.body_used

    bodyUsed = body_used

    def _check_unused(self) -> None:
        if self._req.body_used:
            raise OSError(_BODY_USED)

    async def text(self) -> str:
        self._check_unused()
        return await self._req.text()

    async def json(self, **kwargs: Any) -> Any:
        self._check_unused()
        return _json.loads(await self._req.text(), **kwargs)

    async def bytes(self) -> builtins.bytes:
        self._check_unused()
        return await self._req.bytes()

    async def buffer(self) -> ArrayBuffer:
        """Read the whole body as a JavaScript ``ArrayBuffer`` (see :meth:`FetchResponse.buffer`)."""
        return ArrayBuffer(await self.bytes())

    async def blob(self) -> Blob:
        """Read the whole body as a :class:`Blob` typed with the ``Content-Type`` (``""`` if none)."""
        return Blob(await self.bytes(), mime_type(self._req.headers.get("content-type")))

    async def form_data(self) -> FormData:
        """Read the body as a :class:`FormData` (see :meth:`FetchResponse.form_data`)."""
        self._check_unused()
        return parse_form(self._req.headers.get("content-type"), await self._req.bytes())

    formData = form_data

    def clone(self) -> Request:
        """A copy that can be read independently. Raises ``OSError`` if the body was read."""
        self._check_unused()
        return request_from(self._req.clone(), self._extra)


class JsRequest(Request):
    """A JavaScript ``Request`` held by Python code (``js.Request.new(...)``): the same API; the
    SDK's ``Request(it)`` wraps it and refuses options with it."""

    __slots__ = ()


def request_from(input: Any, options: Mapping[str, Any], kind: type[Request] = Request) -> Request:
    """``new Request(input, options)`` as JavaScript makes it (options with a JavaScript request
    allowed), as ``kind``: what ``fetch()``, ``clone()`` and ``js.Request.new`` build."""
    request = kind.__new__(kind)
    request._setup(input, dict(options))
    return request


_EXTRA_OPTIONS = ("redirect", "cache", "integrity", "keepalive", "cf")
# RequestInit members workerd accepts and ignores (measured: miniflare 4, 2026-04-07,
# `new Request(url, {mode: "cors"})`, `{credentials: "include"}`, `{referrer: ...}` construct, and
# the properties read undefined): code written for the browser's fetch passes them.
_IGNORED_OPTIONS = ("mode", "credentials", "referrer", "referrerPolicy")

_BAD_REDIRECT = (
    'Invalid redirect value, must be one of "follow" or "manual" ("error" won\'t be implemented since it '
    'does not make sense at the edge; use "manual" and check the response status code).'
)
_NO_INTEGRITY = (
    "Subrequest integrity checking is not implemented. The integrity option must be either undefined or an "
    "empty string."
)


def _extra_option(name: str, value: Any) -> Any:
    """A Request option `durable.Request` does not take, checked as workerd checks it (measured:
    miniflare 4, 2026-04-07)."""
    if name == "redirect" and value not in ("follow", "manual"):
        raise TypeError(_BAD_REDIRECT)
    if name == "integrity" and value not in (None, ""):
        raise TypeError(_NO_INTEGRITY)
    if name == "cf" and type(value) is dict:
        return JsDict(value)
    return value


def unwrap_request(value: Any) -> Any:
    """The :class:`durable.Request` inside a :class:`Request`; anything else unchanged."""
    return value._req if isinstance(value, Request) else value
