"""The ``js`` module of Pyodide (JavaScript globals), as far as Python Workers code uses it.

While :func:`durable.compat.python_workers.install` is in effect, ``import js`` gives this
module: ``WebSocketPair`` (``WebSocketPair.new().object_values()``), ``Date.now()``, ``Object``,
``JSON``, ``console``, ``Response``, ``Request``, ``Headers``, ``WebSocketRequestResponsePair``,
``URL``, ``URLSearchParams``, ``fetch`` (outbound HTTP), ``WebSocket`` (outbound WebSockets:
``WebSocket.new(url, protocols)``), and the globals of ``_jsglobals`` (``crypto.randomUUID``,
``Math``, ``TextEncoder``, ``Uint8Array``, ``btoa``, ``encodeURIComponent``, ``structuredClone``,
``crypto.subtle.digest``...), ``Number`` and ``String`` (``_jsnumber``), ``performance.now()``, ``globalThis`` / ``self`` (this module), and
the timers and promises of ``_jsasync`` (``setTimeout``, ``clearTimeout``, ``setInterval``,
``queueMicrotask``, ``Promise``). Other globals of the Workers runtime (``HTMLRewriter``,
``AbortController``, ``Map``...) can be imported, and raise ``NotImplementedError`` naming
them when used; any other name raises ``AttributeError``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, ClassVar

from ._jsasync import Promise as Promise
from ._jsasync import clearInterval as clearInterval
from ._jsasync import clearTimeout as clearTimeout
from ._jsasync import queueMicrotask as queueMicrotask
from ._jsasync import setInterval as setInterval
from ._jsasync import setTimeout as setTimeout
from ._jsglobals import ERRORS as _ERRORS
from ._jsglobals import Array as Array
from ._jsglobals import ArrayBuffer as ArrayBuffer
from ._jsglobals import Math as Math
from ._jsglobals import PartlyEmulated as _PartlyEmulated
from ._jsglobals import TextDecoder as TextDecoder
from ._jsglobals import TextEncoder as TextEncoder
from ._jsglobals import Uint8Array as Uint8Array
from ._jsglobals import atob as atob
from ._jsglobals import btoa as btoa
from ._jsglobals import crypto as crypto
from ._jsglobals import decodeURI as decodeURI
from ._jsglobals import decodeURIComponent as decodeURIComponent
from ._jsglobals import encodeURI as encodeURI
from ._jsglobals import encodeURIComponent as encodeURIComponent
from ._jsglobals import isFinite as isFinite
from ._jsglobals import isNaN as isNaN
from ._jsglobals import parseFloat as parseFloat
from ._jsglobals import parseInt as parseInt
from ._jsglobals import structuredClone as structuredClone
from ._jsnumber import Number as Number
from ._jsnumber import String as String
from ._jsurl import URL as URL
from ._jsurl import URLSearchParams as URLSearchParams

__all__ = [
    "JSON",
    "URL",
    "Array",
    "ArrayBuffer",
    "Blob",
    "Date",
    "Error",
    "File",
    "FormData",
    "Headers",
    "Math",
    "Number",
    "Object",
    "Promise",
    "RangeError",
    "Request",
    "Response",
    "String",
    "TextDecoder",
    "TextEncoder",
    "TypeError",
    "URLSearchParams",
    "Uint8Array",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "atob",
    "btoa",
    "clearInterval",
    "clearTimeout",
    "console",
    "crypto",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "fetch",
    "isFinite",
    "isNaN",
    "parseFloat",
    "parseInt",
    "performance",
    "queueMicrotask",
    "setInterval",
    "setTimeout",
    "structuredClone",
    "undefined",
]


class _Pair:
    """A ``WebSocketPair`` as Python code sees it through Pyodide: ``object_values()``, ``[0]``, ``[1]``."""

    def __init__(self, pair: Any) -> None:
        from ._sdksocket import sdk_socket

        client, server = pair
        self._ends = (sdk_socket(client), sdk_socket(server))

    def object_values(self) -> list[Any]:
        """``[client, server]`` (JavaScript's ``Object.values(pair)``)."""
        return list(self._ends)

    def __iter__(self) -> Any:
        return iter(self._ends)

    def __getitem__(self, index: int) -> Any:
        return self._ends[index]


class WebSocketPair:
    """``js.WebSocketPair``: ``WebSocketPair.new()`` makes a joined pair of `durable` WebSockets."""

    @staticmethod
    def new() -> _Pair:
        """A new pair; ``client, server = WebSocketPair.new().object_values()``.

        Raises:
            NotImplementedError: this `durable` has no WebSocket support.
        """
        import durable

        factory = getattr(durable, "WebSocketPair", None)
        if factory is None:
            raise NotImplementedError("WebSockets are not supported by this version of durable")
        return _Pair(factory())


class WebSocket:
    """``js.WebSocket``: ``WebSocket.new(url)`` / ``WebSocket.new(url, protocols)`` opens an outbound
    WebSocket, as workerd's ``new WebSocket(url, protocols)`` (see ``_wsclient``'s docstring).

    The connection is made by the ``websockets`` package (``pip install 'durable-objects[server]'``).
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3

    @staticmethod
    def new(url: Any, protocols: Any = None, /) -> Any:
        """A new socket, ``CONNECTING``; ``open`` (or ``error`` and ``close``) follows.

        Raises:
            pyodide.ffi.JsException: ``SyntaxError`` for a URL that is not ``ws:``/``wss:``, has a
                fragment, or invalid or repeated subprotocols (workerd's messages).
            ModuleNotFoundError: the ``websockets`` package is not installed.
        """
        from ._wsclient import JsWebSocket

        return JsWebSocket(url, protocols)


class Date:
    """``js.Date``: ``Date.now()`` in ms since the epoch, ``Date.new(...)``, ``Date.parse(text)``,
    ``Date.UTC(year, month0, ...)`` (workerd runs in UTC: local time is UTC)."""

    @staticmethod
    def new(*args: Any) -> Any:
        """A JavaScript ``Date``: now (the object's clock inside an object), ``ms`` since the
        epoch, a date string (ISO 8601 or RFC 2822, see ``parse``), another ``Date``, or fields
        ``(year, month0, day=1, hours=0, minutes=0, seconds=0, ms=0)``. It has ``getTime()``,
        ``toISOString()``, ``toUTCString()``, ``getFullYear()``...; sent over RPC or stored it is
        a ``Date``, which the SDK gives back as a naive local ``datetime``
        (``datetime.fromtimestamp(ms / 1000)``, workers-py rpc.py).

        Raises:
            NotImplementedError: a date string in another format (see ``parse``).
        """
        from ._jsdate import JsDate, date_fields, parse_date

        if not args:
            return JsDate(Date.now())
        if len(args) > 1:
            return JsDate(date_fields(*args))
        (value,) = args
        if value is None:  # undefined (Pyodide's None): an invalid date, as new Date(undefined)
            return JsDate(math.nan)
        if isinstance(value, JsDate):
            return JsDate(value.getTime())
        if isinstance(value, str):
            return JsDate(parse_date(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return JsDate(value)
        raise NotImplementedError(f"js.Date.new() of a {type(value).__name__} is not supported by durable")

    @staticmethod
    def parse(text: str) -> int | float:
        """Ms since the epoch of a date string, or ``NaN`` (``2024-01-13`` is ``NaN``, as in workerd).

        Raises:
            NotImplementedError: a string that is neither ISO 8601 (``2024-01-02T03:04:05Z``,
                ``2024-01-02``; without an offset it is UTC, workerd's local time) nor RFC 2822
                (``Tue, 02 Jan 2024 03:04:05 GMT``): V8 reads more formats.
        """
        from ._jsdate import parse_date
        from ._jsglobals import js_number

        return js_number(parse_date(text))

    @staticmethod
    def UTC(*fields: Any) -> int | float:
        """Ms since the epoch of UTC fields ``(year, month0=0, day=1, ...)``; months and days roll over."""
        from ._jsdate import date_fields
        from ._jsglobals import js_number

        return js_number(date_fields(*fields))

    @staticmethod
    def now() -> int:
        """The current time in ms since the epoch.

        Inside a Durable Object this is the runtime's clock (``ctx.now_ms()``), so code that reads
        time with ``Date.now()`` follows a ``durable.testing.MockClock`` as alarms do; elsewhere
        it is the real clock.
        """
        from durable._context import running_host  # the object whose code is running, if any

        host = running_host()
        if host is not None:
            return int(host.now_ms())
        return int(time.time() * 1000)


class _Performance(_PartlyEmulated):
    """``js.performance``: ``now()`` and ``timeOrigin``, as workerd gives them (measured, miniflare
    4): ``timeOrigin`` is 0 and ``now()`` is ``Date.now()`` (so inside a Durable Object it is the
    object's clock, which a ``MockClock`` moves). Other members raise ``NotImplementedError``."""

    __slots__ = ()
    path = "js.performance"

    timeOrigin = 0

    @staticmethod
    def now() -> int:
        return Date.now()


performance = _Performance()


undefined = None
"""JavaScript's ``undefined``, which Pyodide converts to ``None``."""


class Object:
    """``js.Object``: ``Object.fromEntries`` (used as ``to_js(..., dict_converter=Object.fromEntries)``),
    ``keys``, ``values``, ``entries``, ``assign``, ``new()``."""

    @staticmethod
    def new() -> Any:
        """An empty JavaScript object: a ``JsObject`` (attribute and item access, ``to_py()``)."""
        from ._convert import JsObject

        return JsObject()

    @staticmethod
    def fromEntries(entries: Any) -> dict[Any, Any]:
        """A JavaScript object from ``(key, value)`` pairs: a ``JsObject`` (attribute and item
        access, ``to_py()``, as Pyodide's proxy of the object)."""
        from ._convert import JsObject

        return JsObject(entries)

    @staticmethod
    def entries(obj: Any) -> list[list[Any]]:
        """``[[key, value], ...]`` of a dict (arrays with ``to_py()``, as Pyodide's)."""
        from ._convert import JsList

        return JsList(JsList([key, value]) for key, value in dict(obj).items())

    @staticmethod
    def assign(target: Any, *sources: Any) -> Any:
        """Copy the entries of each source into ``target`` (a dict) and return it."""
        for source in sources:
            if source is not None:
                target.update(source)
        return target

    @staticmethod
    def keys(obj: Any) -> list[Any]:
        from ._convert import JsList

        return JsList(obj)

    @staticmethod
    def values(obj: Any) -> list[Any]:
        from ._convert import JsList

        return JsList(obj.values() if isinstance(obj, dict) else obj)


class JSON:
    """``js.JSON``: ``stringify`` and ``parse``."""

    @staticmethod
    def stringify(value: Any, replacer: Any = None, space: Any = None, /) -> Any:
        """JavaScript's, with its ``replacer`` (a function or a list of keys) and ``space``
        (``JSON.stringify(data, None, 2)`` indents by 2): a ``str``, or ``None`` for JavaScript's
        ``undefined`` (a function alone); see :mod:`._jsjson`."""
        from ._jsjson import stringify

        return stringify(value, replacer, space)

    @staticmethod
    def parse(text: Any, reviver: Any = None, /) -> Any:
        """JavaScript's, with its ``reviver``: called bottom-up with ``(key, value, context)``
        (V8's three arguments: ``context.source`` is a primitive's text as written), its
        ``None`` (``undefined``) deleting the member. Text that is not JSON (``NaN``,
        ``Infinity``, ``[1,]``) raises ``SyntaxError`` as a ``pyodide.ffi.JsException`` (also a
        ``json.JSONDecodeError``).

        An object comes back as Pyodide hands out a JavaScript object, with attribute access
        (``JSON.parse(text).name``): a :class:`~durable.compat.python_workers.JsDict`, at any
        depth, and an array with ``to_py()`` and ``length`` (a ``JsList``); a number with an
        integral value is an ``int`` (``1.0`` is ``1``), as Pyodide converts a safe integer.
        """
        from ._jsjson import parse

        return parse(text, reviver)


class console:  # noqa: N801 - the JavaScript global's name
    """``js.console``: ``log``, ``info`` and ``debug`` print to standard output, ``warn`` and
    ``error`` to standard error, as workerd prints them (miniflare 4.20260426.0: workerd's stdout
    and stderr); they went to the ``durable.js`` logger at ``INFO`` and so were shown nowhere
    unless logging was configured, where ``print()`` (which a Python Worker's ``console.log``
    is too) showed. ``trace``, ``dir``, ``table`` print as ``log``, and so do ``count`` / ``countReset``,
    ``time`` / ``timeLog`` / ``timeEnd`` (``label: 1.5ms``), ``group`` / ``groupCollapsed`` /
    ``groupEnd`` (indenting by two spaces) and ``assert_`` (Pyodide's name for
    ``console.assert``: ``Assertion failed`` at ``error`` when its first argument is falsy)."""

    _counts: ClassVar[dict[str, int]] = {}
    _timers: ClassVar[dict[str, float]] = {}
    _depth: ClassVar[list[int]] = [0]

    @staticmethod
    def _text(args: tuple[Any, ...]) -> str:
        from ._jsinspect import console_text

        return "  " * console._depth[0] + console_text(args)

    @staticmethod
    def log(*args: Any) -> None:
        print(console._text(args), file=sys.stdout, flush=True)

    info = log
    debug = log
    trace = log
    dir = log
    table = log

    @staticmethod
    def warn(*args: Any) -> None:
        print(console._text(args), file=sys.stderr, flush=True)

    error = warn

    @staticmethod
    def assert_(condition: Any = False, *args: Any) -> None:
        if not condition:
            console.error(*("Assertion failed" + (":" if args else ""), *args))

    @staticmethod
    def count(label: str = "default") -> None:
        console._counts[label] = console._counts.get(label, 0) + 1
        console.log(f"{label}: {console._counts[label]}")

    @staticmethod
    def countReset(label: str = "default") -> None:
        console._counts.pop(label, None)

    @staticmethod
    def time(label: str = "default") -> None:
        console._timers[label] = time.perf_counter()

    @staticmethod
    def timeLog(label: str = "default", *args: Any) -> None:
        started = console._timers.get(label)
        if started is None:
            console.warn(f"Timer '{label}' does not exist")
            return
        console.log(f"{label}: {(time.perf_counter() - started) * 1000:.3f}ms", *args)

    @staticmethod
    def timeEnd(label: str = "default") -> None:
        console.timeLog(label)
        console._timers.pop(label, None)

    @staticmethod
    def group(*args: Any) -> None:
        if args:
            console.log(*args)
        console._depth[0] += 1

    groupCollapsed = group

    @staticmethod
    def groupEnd() -> None:
        console._depth[0] = max(0, console._depth[0] - 1)


class Response:
    """``js.Response``: ``Response.new(body, {"status": ...})``, ``Response.json(data)``,
    ``Response.redirect(url, status)``.

    As Pyodide passes them, keyword arguments are the init object's fields:
    ``Response.new("x", status=404, headers={...})`` is ``new Response("x", {status: 404, ...})``.
    """

    @staticmethod
    def new(body: Any = None, init: dict[str, Any] | None = None, /, **fields: Any) -> Any:
        from ._http import Response as SdkResponse

        options = {**(init or {}), **fields}
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)  # a JavaScript buffer
        return SdkResponse(
            body,
            options.get("status"),
            options.get("statusText", ""),
            options.get("headers"),
            options.get("webSocket"),
        )

    @staticmethod
    def json(data: Any, init: dict[str, Any] | None = None, /, **fields: Any) -> Any:
        """JavaScript's ``Response.json``: the body is ``JSON.stringify(data)`` (compact: ``1.0``
        is ``1``, ``NaN`` ``null``); a value ``JSON.stringify`` leaves ``undefined`` (a function)
        raises ``TypeError: Value is not JSON serializable``."""
        from ._http import Response as SdkResponse
        from ._jsjson import js_json_text

        options = {**(init or {}), **fields}
        headers = durable_headers(options.get("headers"))
        if "content-type" not in headers:
            headers["content-type"] = "application/json"
        text = js_json_text(data)
        return SdkResponse(text, options.get("status", 200), options.get("statusText", ""), headers)

    @staticmethod
    def redirect(url: str, status: int = 302) -> Any:
        """JavaScript's ``Response.redirect``: an empty response with ``Location: url``."""
        from ._http import Response as SdkResponse

        return SdkResponse.redirect(url, status)


async def fetch(resource: Any, init: dict[str, Any] | None = None, /, **fields: Any) -> Any:
    """``js.fetch(url_or_request, init)``: outbound HTTP, as workerd's ``fetch`` (the SDK's ``Response``).

    Raises:
        pyodide.ffi.JsException: what workerd's ``fetch`` rejects with (``TypeError: Invalid
            URL: /x``, ``Error: Network connection lost.``, ``TypeError: Too many redirects....``).
    """
    from ._fetch import js_fetch

    return await js_fetch(resource, init, **fields)


class Blob:
    """``js.Blob``: ``Blob.new(parts, {"type": ...})`` (or ``type=`` as a keyword) is a JavaScript ``Blob`` (a ``workers.Blob`` subclass)."""

    @staticmethod
    def new(parts: Any = (), options: dict[str, Any] | None = None, /, **fields: Any) -> Any:
        from ._forms import Blob as SdkBlob
        from ._forms import js_blob

        init = {**(options or {}), **fields}
        return js_blob(SdkBlob(list(parts), init.get("type"), init.get("endings")))


class File:
    """``js.File``: ``File.new(parts, name, {"type": ..., "lastModified": ...})`` is a JavaScript ``File`` (a ``workers.File`` subclass)."""

    @staticmethod
    def new(parts: Any, name: str, options: dict[str, Any] | None = None, /, **fields: Any) -> Any:
        from ._forms import File as SdkFile
        from ._forms import js_blob

        init = {**(options or {}), **fields}
        return js_blob(SdkFile(list(parts), name, init.get("type"), init.get("endings"), init.get("lastModified")))


class FormData:
    """``js.FormData``: ``FormData.new()`` is an empty ``workers.FormData`` (``append``, ``get``, ``getAll``...)."""

    @staticmethod
    def new() -> Any:
        from ._forms import FormData as SdkFormData

        return SdkFormData()


class WebSocketRequestResponsePair:
    """``js.WebSocketRequestResponsePair``: ``WebSocketRequestResponsePair.new(request, response)``,
    for ``ctx.setWebSocketAutoResponse``."""

    @staticmethod
    def new(request: str, response: str) -> Any:
        """The auto-response pair: ``request`` answered with ``response``."""
        import durable

        return durable.WebSocketRequestResponsePair(request, response)


def durable_headers(init: Any) -> Any:
    """``init`` (a mapping, pairs, or nothing) as ``durable.Headers``."""
    import durable

    return durable.Headers(init)


class Headers:
    """``js.Headers``: ``Headers.new(init)`` is a :class:`durable.Headers` (a mapping or pairs)."""

    @staticmethod
    def new(init: Any = None, /) -> Any:
        return durable_headers(init)


class Request:
    """``js.Request``: ``Request.new(url, init)`` (or keyword init fields) is a JavaScript ``Request`` (the SDK's ``Request`` API)."""

    @staticmethod
    def new(input: Any, init: dict[str, Any] | None = None, /, **fields: Any) -> Any:
        from ._http import JsRequest, request_from

        return request_from(input, {**(init or {}), **fields}, JsRequest)


# JavaScript globals of the Workers runtime that `durable` does not emulate: reading them works
# (``from js import fetch`` at module level), using them raises NotImplementedError naming them.
_NOT_EMULATED = frozenset(
    {
        "HTMLRewriter", "caches", "scheduler",
        "navigator", "ReadableStream", "WritableStream", "TransformStream",
        "CompressionStream", "DecompressionStream",
        "FixedLengthStream", "IdentityTransformStream", "AbortController", "AbortSignal", "URLPattern", "EventTarget", "Event",
        "CustomEvent", "MessageChannel", "Promise", "DataView", "Int8Array", "Uint16Array", "Int16Array",
        "Uint32Array", "Int32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
        "Map", "Set", "WeakMap", "WeakRef", "SyntaxError", "DOMException",
        "Boolean", "Symbol", "Reflect", "Proxy", "BigInt", "Intl",
    }
)  # fmt: skip


class _NotEmulated:
    """A JavaScript global `durable` does not emulate: any use raises ``NotImplementedError``."""

    __slots__ = ("_path",)

    def __init__(self, path: str) -> None:
        self._path = path

    def _refuse(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"{what} is not supported by durable (there is no JavaScript runtime); "
            "the emulated js names are " + ", ".join(__all__)
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._refuse(f"{self._path}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse(f"{self._path}()")

    def __repr__(self) -> str:
        return f"<{self._path}: not supported by durable>"


Error = _ERRORS["Error"]
TypeError = _ERRORS["TypeError"]
RangeError = _ERRORS["RangeError"]


def __getattr__(name: str) -> Any:
    if name in ("globalThis", "self"):
        return sys.modules[__name__]  # the global object: js.globalThis.fetch is js.fetch
    if name in _NOT_EMULATED:
        return _NotEmulated(f"js.{name}")
    raise AttributeError(
        f"js.{name} is not emulated by durable (there is no JavaScript runtime); "
        "the supported names are " + ", ".join(__all__)
    )
