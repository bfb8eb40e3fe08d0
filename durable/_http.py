"""HTTP types: ``Request``, ``Response``, ``Headers``, ``WorkerEntrypoint`` and ``ExecutionContext``.

These follow the Fetch API as Cloudflare's runtime (workerd) implements it, and the shape of
Cloudflare's Python Workers SDK: a body is read once (``await r.text()``, ``await r.json()``,
``await r.bytes()``), header names are case-insensitive, ``Response.json(data)`` builds a JSON
response. Error messages reuse workerd's wording so that they can be searched for.

Layering: this module knows nothing of Durable Objects, runtimes or ASGI. The core calls
:func:`build_request` from ``Stub.fetch``; the ASGI front (``durable.asgi``) translates HTTP
to and from these types.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
import json as _json
import logging
import re
import threading
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, Self, TypeVar, Union, final, overload
from urllib.parse import urljoin, urlsplit

from ._aliases import camel_aliases
from ._codec import Transfer, register_transfer
from ._exceptions import DataCloneError
from ._url import parse_url
from ._util import shown, unbuilt_safe_repr
from ._websocket import WebSocket, hand_over_end

__all__ = [
    "ExecutionContext",
    "Headers",
    "HeadersInit",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "build_request",
]

logger = logging.getLogger("durable")

#: What a ``headers=`` argument may be: a mapping, ``(name, value)`` pairs, or ``Headers``.
HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]]]

#: What a ``body=`` argument may be. An async iterable streams ``bytes`` chunks.
BodyInit = Union[str, bytes, bytearray, memoryview, AsyncIterable[bytes], None]

_TEXT_PLAIN: Final = "text/plain;charset=UTF-8"
_LAZY_TEXT_PLAIN: Final = object()
"""A ``_headers`` not made yet: ``content-type: text/plain;charset=UTF-8``, mutable (``Response(text)``)."""
_FIRST_READ: Final = threading.Lock()
"""Held while a message's headers made at their first read are stored (see ``_Body.headers``)."""

_OK: Final = 200
"""``Response``'s default status, compared by identity on its fast path (an int, never a float)."""
_APPLICATION_JSON: Final = "application/json"
_UTF8_BOM: Final = b"\xef\xbb\xbf"

# workerd's messages (src/workerd/api/http.c++, headers.c++).
_BODY_USED: Final = (
    "Body has already been used. It can only be used once. Use clone() first if you need to read it twice."
)
# workerd's guard on the headers of a request a handler receives and of a response stub.fetch
# returns (and of their clones): such headers keep their pairs in a tuple. Headers(h) and
# h.copy() are mutable, as ``new Headers(h)`` is.
_IMMUTABLE_HEADERS: Final = "Can't modify immutable headers."
_FROZEN: Final[type[object]] = tuple  # (typed as a type, so that mypy allows the check on a list)
_GET_HEAD_BODY: Final = "Request with a GET or HEAD method cannot have a body."
_STATUS_RANGE: Final = "Responses may only be constructed with status codes in the range 200 to 599, inclusive."
_NULL_BODY_STATUS: Final = "Response with null body status (101, 204, 205, or 304) cannot have a body."
_NULL_BODY_STATUSES: Final = frozenset({101, 204, 205, 304})
REDIRECT_STATUSES: Final = frozenset((301, 302, 303, 307, 308))
"""The statuses a fetch that follows redirects follows (with a ``Location``)."""
_REDIRECT_MODES: Final = ("follow", "manual")
_REDIRECT_MODE: Final = (
    'Invalid redirect value, must be one of "follow" or "manual" ("error" won\'t be implemented since it '
    'does not make sense at the edge; use "manual" and check the response status code).'
)

# RFC 9110 token characters (header names, methods) and the bytes a header value may not hold.
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_RE: Final = re.compile(r"[\r\n\x00]")
# Tokens separated by "\n" (which no token holds): every header name at once (Headers._from_latin1).
_NAMES_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*")
_HTTP_WHITESPACE: Final = " \t\r\n"
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_STANDARD_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_METHODS: Final = _STANDARD_METHODS | {
    "PURGE", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK",
    "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "MSEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
    "QUERY",
}  # fmt: skip
"""The methods workerd takes, in any case (kj's HTTP method list; measured with miniflare 2026-12-06:
``FOO``, ``CONNECT``, ``BIND``, ``M-SEARCH`` raise ``Invalid HTTP method string``)."""
# Headers._from_latin1's cache: raw pairs of a request head -> its checked (name, value) pairs.
_CACHED_HEADS: Final = 1024
_CACHED_HEAD_SIZE: Final = 2048
_head_cache: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}

_T = TypeVar("_T")

_new = object.__new__
"""``object.__new__``, read once: ``object.__new__(X)`` looks ``__new__`` up on ``object`` at every
call (a type's attributes are not specialized on 3.11), and a fetch makes five objects this way
(with ``Request._get`` a function and ``text()``'s test below: seq-fetch 108,841 -> 106,878 instructions,
callgrind, docs/performance.md, ninth pass)."""


class _Missing:
    """Sentinel type: an argument that was not given (distinct from an explicit ``None``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Final = _Missing()


# ---------------------------------------------------------------------------------------------
# Headers


def _not_headers_init(init: object) -> bool:
    """``init`` is neither ``None``, a ``Headers``, a mapping nor an iterable of pairs (a str or bytes is not one)."""
    return init is not None and (isinstance(init, (str, bytes)) or not isinstance(init, Iterable))


def _headers_field(init: HeadersInit | None, dictionary: str) -> Headers:
    """``Headers(init)`` for the ``headers=`` option of a Request or Response, named as workerd names it.

    workerd (miniflare 4, 2026-04-07): ``new Request(url, {headers: 5})`` raises ``TypeError:
    Incorrect type for the 'headers' field on 'RequestInitializerDict': the provided value is not
    of type 'Headers or Sequence or object'.`` (``'InitializerDict'`` for a Response).
    """
    if _not_headers_init(init):
        raise TypeError(
            f"Incorrect type for the 'headers' field on '{dictionary}': the provided value is not of type "
            f"'Headers or Sequence or object' (headers= takes a mapping or an iterable of (name, value) "
            f"pairs, not {type(init).__name__})."
        )
    return Headers(init)


@final
@camel_aliases
class Headers(MutableMapping[str, str]):
    """Case-insensitive, multi-valued HTTP headers, like the Fetch API's ``Headers``.

    Names are stored lower-cased (Fetch exposes them that way); each name may carry several
    values, kept in the order they were added. ``get(name)`` and ``headers[name]`` join repeated
    values with ``", "``; ``get_all(name)`` returns them one by one. Iteration yields the distinct
    names, sorted, as Fetch's iterator does; ``items()`` pairs each name with its joined value,
    ``entries()`` gives the pairs Fetch's iterator gives (each ``Set-Cookie`` on its own), and
    ``multi_items()`` gives every ``(name, value)`` pair in insertion order.

    Args:
        init: a mapping, an iterable of ``(name, value)`` pairs, or another ``Headers`` (copied).

    Raises:
        TypeError: a name that is not an HTTP token (``Invalid header name.``), a value holding
            CR, LF or NUL (``Invalid header value.``), or a name or value that is not a ``str``.
            ``get``, ``get_all``, ``has``, ``set``, ``append`` and ``delete`` check the name as
            workerd does; ``name in headers`` and ``headers[name]`` treat an invalid one as absent.

    Example::

        h = Headers({"Content-Type": "text/plain"})
        h.append("Set-Cookie", "a=1"); h.append("Set-Cookie", "b=2")
        h["content-type"]           # 'text/plain'
        h.get_all("set-cookie")     # ['a=1', 'b=2']
    """

    __slots__ = ("_items",)

    def __init__(self, init: HeadersInit | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._items = list(init._items)
            return
        if _not_headers_init(init):
            # workerd (miniflare 4, 2026-04-07): ``new Headers(5)`` and ``new Headers("x")`` raise this;
            # Request and Response name their 'headers' field instead (_headers_field() above).
            raise TypeError(
                "Failed to construct 'Headers': constructor parameter 1 is not of type "
                f"'Headers or Sequence or object' (a mapping or an iterable of (name, value) pairs, "
                f"not {type(init).__name__})."
            )
        pairs: Iterable[Any] = init.items() if isinstance(init, Mapping) else init
        for pair in pairs:
            if type(pair) is not tuple and isinstance(pair, (str, builtins.bytes, bytearray, Mapping)):
                # A string would unpack into two characters (workerd, miniflare 4, 2026-04-07:
                # ``new Headers(["ab"])`` raises this TypeError).
                raise TypeError(
                    "Incorrect type: the provided value is not of type 'Sequence'. "
                    f"(Got {shown(pair)}; each header is a (name, value) pair.)"
                )
            try:
                name, value = pair
            except (TypeError, ValueError):
                raise TypeError(  # workerd's words, then which pair
                    "To initialize a Headers object from a sequence, each inner sequence must have "
                    f"exactly two elements. (Got {shown(pair)}.)"
                ) from None
            self.append(name, value)

    @classmethod
    def _from_latin1(cls, raw: Iterable[tuple[builtins.bytes, builtins.bytes]]) -> Headers:
        """Headers from an HTTP server's ``(name, value)`` byte pairs (ASGI's ``scope["headers"]``).

        Names are latin-1 (an HTTP token is ASCII; anything else fails the check). Values are
        read as UTF-8, invalid sequences becoming U+FFFD, as workerd reads them (measured with
        miniflare 4: ``X-V: caf\\xc3\\xa9`` arrives as ``café``, ``caf\\xe9`` as ``caf\\ufffd``).
        The same result and errors as ``Headers(decoded pairs)``, checked in one pass over all
        names and one over all values instead of a regex per header (measured: with wrk's three
        headers, 2.6-3.2 us instead of 3.0-4.0 us, measured with timeit side by side).

        Raises:
            TypeError: an invalid name or value, as ``Headers`` raises it.
            AttributeError: a name or value that is not bytes.
        """
        # A client sends the same head again and again (a browser, a load generator, a proxy): the
        # checked pairs of a head are kept, keyed by its raw pairs, so a repeat costs a hash and a
        # list copy (measured with timeit, wrk's three headers: 1.8 us -> 0.35 us). Only heads of
        # at most _CACHED_HEAD_SIZE bytes as sent, and at most _CACHED_HEADS of them, are kept.
        try:
            key: tuple[Any, ...] | None = tuple(raw)
            cached = _head_cache.get(key)  # type: ignore[arg-type]
        except TypeError:  # unhashable pairs (lists from an unusual server): not cached
            key, cached = None, None
        headers = cls()
        if cached is not None:
            headers._items = list(cached)
            return headers
        items = [
            (k.decode("latin-1").lower(), v.decode("utf-8", "replace").strip(_HTTP_WHITESPACE)) for k, v in key or raw
        ]
        names = "\n".join([n for n, _ in items])
        values = "".join([v for _, v in items])
        # (A name holding the "\n" separator would pass as two tokens: the count catches it.)
        if items and (_NAMES_RE.fullmatch(names) is None or names.count("\n") != len(items) - 1):
            return cls(items)  # raises the error for the first bad pair
        if _BAD_VALUE_RE.search(values) is not None:
            return cls(items)  # raises the error for the first bad pair
        headers._items = items
        # (The size as sent, not as stripped: a value padded with spaces would make a long key.)
        if key is not None and sum(len(k) + len(v) for k, v in key) <= _CACHED_HEAD_SIZE:
            if len(_head_cache) >= _CACHED_HEADS:
                del _head_cache[next(iter(_head_cache))]  # the oldest head goes first
            _head_cache[key] = tuple(items)
        return headers

    # -- Fetch API methods ---------------------------------------------------------------------

    def append(self, name: str, value: str) -> None:
        """Add a value for ``name``, keeping the values it already has."""
        items = self._items
        if type(items) is _FROZEN:
            raise TypeError(_IMMUTABLE_HEADERS)
        items.append((_check_name(name), _normalize_value(value)))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        if type(self._items) is _FROZEN:
            raise TypeError(_IMMUTABLE_HEADERS)
        key = _check_name(name)
        value = _normalize_value(value)
        self._items = [(n, v) for n, v in self._items if n != key]
        self._items.append((key, value))

    def delete(self, name: str) -> None:
        """Remove every value of ``name``; nothing happens if it is absent."""
        if type(self._items) is _FROZEN:
            raise TypeError(_IMMUTABLE_HEADERS)
        key = _check_name(name)
        self._items = [(n, v) for n, v in self._items if n != key]

    def has(self, name: str) -> bool:
        """Whether ``name`` has at least one value (``name in headers``, which never raises).

        Raises:
            TypeError: ``name`` is not an HTTP token (``Invalid header name.``), as in workerd.
        """
        key = _check_name(name)
        return any(n == key for n, _ in self._items)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: _T) -> str | _T: ...

    def get(self, name: str, default: object = None) -> object:
        """The values of ``name`` joined with ``", "``, or ``default`` (``None``) if absent.

        Raises:
            TypeError: ``name`` is not an HTTP token (``Invalid header name.``), as in workerd.
        """
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in the order added (``[]`` if absent).

        Raises:
            TypeError: ``name`` is not an HTTP token (``Invalid header name.``).
        """
        key = _check_name(name)
        return [v for n, v in self._items if n == key]

    def get_set_cookie(self) -> list[str]:
        """The ``Set-Cookie`` values, one per cookie (Fetch's ``getSetCookie()``)."""
        return self.get_all("set-cookie")

    def entries(self) -> Iterator[tuple[str, str]]:
        """The ``(name, value)`` pairs as workerd's ``Headers`` iterates them (``headers.entries()``,
        ``[...headers]``): sorted by name, each name once with its values joined by ``", "``, but
        each ``Set-Cookie`` value a pair of its own. A snapshot: later changes do not show.

        Example::

            h = Headers([("B", "1"), ("set-cookie", "x=1"), ("b", "2"), ("Set-Cookie", "y=2")])
            list(h.entries())   # [('b', '1, 2'), ('set-cookie', 'x=1'), ('set-cookie', 'y=2')]
        """
        grouped: dict[str, list[str]] = {}
        for name, value in self._items:
            grouped.setdefault(name, []).append(value)
        pairs: list[tuple[str, str]] = []
        for name in sorted(grouped):
            values = grouped[name]
            if name == "set-cookie":
                pairs.extend((name, value) for value in values)
            else:
                pairs.append((name, ", ".join(values)))
        return iter(pairs)

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, names lower-cased, in insertion order."""
        return list(self._items)

    def copy(self) -> Self:
        """An independent copy (of the same class)."""
        return type(self)(self)

    # -- Mapping protocol ----------------------------------------------------------------------

    def __getitem__(self, name: str) -> str:
        # (Lenient, as a mapping is: a name that is not a token is simply absent.)
        key = name.lower() if isinstance(name, str) else _check_name(name)
        values = [v for n, v in self._items if n == key]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if type(self._items) is _FROZEN:
            raise TypeError(_IMMUTABLE_HEADERS)
        if name not in self:
            raise KeyError(name)
        self.delete(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n == key for n, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({n for n, _ in self._items}))

    def __len__(self) -> int:
        return len({n for n, _ in self._items})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._items) == sorted(other._items)
        if isinstance(other, Mapping):
            return dict(self.items()) == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        getAll = get_all
        getSetCookie = get_set_cookie


def _freeze(headers: Headers) -> None:
    """Make ``headers`` immutable (``_IMMUTABLE_HEADERS``): its pairs kept in a tuple."""
    headers._items = tuple(headers._items)  # type: ignore[assignment]


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"Header names must be str, not {type(name).__name__}.")
    if _TOKEN_RE.fullmatch(name) is None:
        raise TypeError("Invalid header name.")
    return name.lower()


def _normalize_value(value: object) -> str:
    # Fetch strips leading and trailing HTTP whitespace, then refuses CR, LF and NUL.
    if not isinstance(value, str):
        raise TypeError(f"Header values must be str, not {type(value).__name__}; convert it with str().")
    value = value.strip(_HTTP_WHITESPACE)
    if _BAD_VALUE_RE.search(value) is not None:
        raise TypeError("Invalid header value.")
    if not value.isascii():
        return _without_surrogates(value)
    return value


def _utf8(text: str) -> builtins.bytes:
    """``text`` as a body's bytes: UTF-8, a lone surrogate as its three WTF-8 bytes, as workerd
    sends it (measured with miniflare 4, 2026-04-07: ``new Response("a\\ud800b")`` reads as the
    bytes ``61 ED A0 80 62``; Python's strict codec would raise ``UnicodeEncodeError``)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _paired(text).encode("utf-8", "surrogatepass")


def _paired(text: str) -> str:
    """``text`` with each high surrogate followed by a low one joined into one character, as a
    JavaScript string reads them (workerd sends ``"\\ud83d\\ude00"`` as the 4 bytes of U+1F600);
    other surrogates are kept alone."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate as three U+FFFD, as workerd keeps a header value or a
    status text (measured with miniflare 4, 2026-04-07: ``new Headers({a: "\\ud800"}).get("a")``
    is ``"\\ufffd\\ufffd\\ufffd"``, its WTF-8 bytes read back as UTF-8); other text unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _paired(text).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


# ---------------------------------------------------------------------------------------------
# Bodies


@camel_aliases
class _Body:
    """The body half shared by ``Request`` and ``Response``: read once, as text, JSON or bytes.

    A body is ``None`` (no body), buffered ``bytes``, or an async iterable of ``bytes`` chunks
    (a stream). Reading a buffered or streamed body marks it used; reading it again raises
    ``TypeError`` as in Fetch. Reading a null body gives empty content and never fails.
    """

    __slots__ = ("_body", "_body_used", "_headers")

    _headers: Any
    """The ``Headers``, or what the ``headers`` property makes them of at the first read: a tuple of
    pairs (immutable headers holding them) or ``_LAZY_TEXT_PLAIN`` (the mutable headers of
    ``Response(text)``). Only a ``Headers`` is ever shared between two requests or responses."""
    _body: builtins.bytes | AsyncIterable[builtins.bytes] | None
    _body_used: bool

    @property
    def headers(self) -> Headers:
        """The headers (a :class:`Headers`; the same object at every read)."""
        # Made at the first read for the three a fetch makes that are seldom read: the object's
        # request of stub.fetch(url), the object's Response(text) and the caller's copy of it.
        # A Headers made and dropped per fetch cost about 1,400 instructions each: seq-fetch
        # 87,204 -> 82,938, conc-fetch 77,454 -> 72,253 (callgrind, fourteenth pass).
        headers = self._headers
        if type(headers) is tuple:
            made = _new(Headers)
            made._items = headers  # type: ignore[assignment]
        elif headers is _LAZY_TEXT_PLAIN:
            made = _new(Headers)
            made._items = [("content-type", _TEXT_PLAIN)]
        else:
            return headers  # type: ignore[no-any-return]
        with _FIRST_READ:  # (two threads reading them first at once get one object, as when made at once)
            if self._headers is headers:
                self._headers = made
                return made
        return self.headers  # made by another thread meanwhile: theirs

    @headers.setter
    def headers(self, headers: Headers) -> None:
        self._headers = headers

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("headers")
        if own is not None and (own.fset is not None if isinstance(own, property) else hasattr(own, "__set__")):
            # Its own settable headers (a property, a slot): the package gives and reads them there.
            setattr(cls, "_headers", _OWN_HEADERS)

    def __getstate__(self) -> object:
        """What ``copy.copy``, ``copy.deepcopy`` and ``pickle`` take: the headers made first (see
        ``headers``), so that a copy has headers as before they were made at their first read
        (shared by a shallow copy, not the marker of ``Response(text)``'s)."""
        self.headers  # noqa: B018
        return super().__getstate__()

    def _init_body(self, body: object, headers: Headers, what: str) -> None:
        self._headers = headers
        self._body_used = False
        if body is None:
            self._body = None
        elif isinstance(body, str):
            self._body = _utf8(body)
            items = headers._items
            # A constant, valid pair needs no checking (measured: append() checked it, 0.5 us).
            if not items or "content-type" not in headers:
                items.append(("content-type", _TEXT_PLAIN))
        elif isinstance(body, builtins.bytes):
            self._body = body
        elif isinstance(body, (bytearray, memoryview)):
            self._body = builtins.bytes(body)  # copied, so later mutation changes nothing
        elif isinstance(body, AsyncIterable):
            self._body = body
        else:
            hint = ""
            if isinstance(body, (int, float)):
                hint = f"; to send a number, convert it first: {what}(str(value))"
            elif isinstance(body, (dict, list)):
                hint = (
                    "; to send JSON, use durable.Response.json(value)"
                    if what == "Response"
                    else "; to send JSON, give json.dumps(value) and a content-type: application/json header"
                )
            raise TypeError(
                f"{what} body must be str, bytes, bytearray, memoryview, an async iterable "
                f"of bytes, or None, not {type(body).__name__}{hint}."
            )

    @property
    def body_used(self) -> bool:
        """Whether the body has been read (or handed to another ``Request``)."""
        return self._body_used

    @property
    def body(self) -> AsyncGenerator[builtins.bytes, None] | None:
        """The body as an async iterator of ``bytes`` chunks, or ``None`` when there is none.

        Iterating it uses the body up, like reading ``body`` in Fetch; ``aclose()`` before the end
        cancels a streamed body (closes its source).
        """
        if self._body is None:
            return None
        return self._iter_body()

    async def _iter_body(self) -> AsyncGenerator[builtins.bytes, None]:
        source = self._take_body()
        if source is not None:
            chunks = _chunks(source)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:  # a reader that stops early cancels the stream (see _chunks)
                await chunks.aclose()

    def _take_body(self) -> builtins.bytes | AsyncIterable[builtins.bytes] | None:
        """Claim the body for reading: marks it used; raises if it already was."""
        if self._body is None:
            return None
        if self._body_used:
            raise TypeError(_BODY_USED)
        self._body_used = True
        return self._body

    async def bytes(self) -> builtins.bytes:
        """Read the whole body as ``bytes``.

        Raises:
            TypeError: the body was already read (``Body has already been used. ...``).
        """
        source = self._take_body()
        if source is None:
            return b""
        if isinstance(source, builtins.bytes):
            return source
        return b"".join([chunk async for chunk in _chunks(source)])

    async def array_buffer(self) -> builtins.bytes:
        """Same as :meth:`bytes` (Fetch's ``arrayBuffer()``)."""
        return await self.bytes()

    async def text(self) -> str:
        """Read the whole body and decode it as UTF-8 (invalid bytes become U+FFFD)."""
        body = self._body
        if (
            type(body) is builtins.bytes
            and not self._body_used
            and (type(self) in _PLAIN or type(self).bytes is _Body.bytes)
        ):
            # A buffered body, read at once (measured: skips the bytes() coroutine, about 1 us).
            # (_PLAIN: the classes' own bytes(), known without reading two class attributes.)
            self._body_used = True
            data = body
        else:
            data = await self.bytes()
        # Fetch's "UTF-8 decode": drop one leading byte order mark, replace invalid sequences.
        # The "utf-8-sig" codec is written in Python (encodings/utf_8_sig.py): checking for the
        # mark here and decoding with the C "utf-8" codec gives the same text (measured with
        # timeit on a 5-byte body: 0.49 us -> 0.08 us).
        # (The first byte tested before startswith(), whose call makes an argument tuple; decoded
        # strictly first, as valid UTF-8 decodes the same either way and the C codec is then
        # called without looking up its error handler: seq-fetch 93,174 -> 92,468, conc-fetch 81,900 ->
        # 81,290 instructions, callgrind, thirteenth pass.)
        # (The first byte read as an int, not sliced off: data[:1] builds a slice object and looks
        # up the one-byte bytes, about 600 instructions, data[0] about 300; `data and` for b"", which
        # has no data[0]. A bytes-like a subclass's bytes() returns answers the same. seq-fetch
        # 82,484 -> 82,279, conc-fetch 72,338 -> 72,057 instructions, callgrind, fifteenth pass.)
        if data and data[0] == 0xEF and data.startswith(_UTF8_BOM):
            return data[3:].decode("utf-8", "replace")
        try:
            return data.decode()  # (UTF-8)
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def _clone_into(self, twin: _Body) -> None:
        """Give ``twin`` a copy of the headers and a body that reads the same bytes as this one.

        A streamed body is split in two (like JavaScript's ``ReadableStream.tee()``): each side
        reads every chunk, and chunks one side has read and the other not yet are kept in memory.
        """
        if self._body_used:
            raise TypeError(_BODY_USED.replace("Use clone() first", "Call clone() before reading"))
        if hasattr(self, "__dict__"):  # a user subclass's own attributes (first: the headers are the copy's)
            twin.__dict__.update(self.__dict__)
        twin.headers = self.headers.copy()
        if type(self.headers._items) is _FROZEN:  # immutable headers stay so in the clone (workerd)
            _freeze(twin.headers)
        twin._body_used = False
        if self._body is None or isinstance(self._body, builtins.bytes):
            twin._body = self._body  # bytes are immutable: both sides may share them
        else:
            tee = _Tee(self._body)
            self._body, twin._body = tee.branch(0), tee.branch(1)

    async def _read_json(self) -> Any:
        """Read the whole body and parse it as JSON.

        Raises:
            ValueError: the body is not valid JSON (``json.JSONDecodeError``).
        """
        return parse_json(await self.text())

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        arrayBuffer = array_buffer
        bodyUsed = body_used


def parse_json(text: str) -> Any:
    """``JSON.parse(text)``: Python's parser, without the ``NaN``, ``Infinity`` and ``-Infinity``
    it takes beyond JSON (workerd: ``await new Response("NaN").json()`` raises ``SyntaxError:
    "NaN" is not valid JSON``, measured with miniflare 4, 2026-04-07). The compat layer's
    ``js.JSON.parse`` is this too.

    Raises:
        ValueError: ``text`` is not JSON (``json.JSONDecodeError``).
    """
    return _json.loads(text, parse_constant=functools.partial(_not_json, text))


def _not_json(text: str, constant: str) -> Any:
    raise _json.JSONDecodeError(f'"{constant}" is not valid JSON', text, max(text.find(constant), 0))


class _Tee:
    """One streamed body read by two consumers, each at its own pace (``clone()`` of a stream).

    As ``ReadableStream.tee()`` in workerd: a branch whose reader stops (``aclose()``, or its
    task cancelled) stops getting chunks, the other reads on to the end; the source is closed once
    both have stopped (measured with miniflare 4, 2026-04-07: cancelling one branch left the
    other reading all five chunks, cancelling both reached the source's ``cancel()``).
    """

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = _chunks(source)
        self._pending: tuple[deque[bytes], deque[bytes]] = (deque(), deque())
        self._reading = [True, True]
        self._done = False
        self._error: BaseException | None = None
        # The pull from the source in flight, a task of its own: a branch whose reader is
        # cancelled while it waits must not cancel the source the other branch still reads.
        self._pull: asyncio.Future[None] | None = None

    async def branch(self, index: int) -> AsyncIterator[bytes]:
        pending = self._pending[index]
        try:
            while True:
                if pending:
                    yield pending.popleft()
                    continue
                if self._done:
                    if self._error is not None:
                        raise self._error
                    return
                if self._pull is None:
                    self._pull = asyncio.ensure_future(self._pull_one())
                await asyncio.shield(self._pull)
        finally:
            self._reading[index] = False
            pending.clear()
            if not self._done and not any(self._reading):
                await self._close_source()

    async def _pull_one(self) -> None:
        """Read one chunk from the source into both branches (an error or the end: for both)."""
        try:
            chunk = await anext(self._source)
        except StopAsyncIteration:
            self._done = True
        except BaseException as exc:  # (CancelledError: both branches stopped, see _close_source)
            self._done, self._error = True, exc
        else:
            for reading, queue in zip(self._reading, self._pending, strict=True):
                if reading:
                    queue.append(chunk)
        finally:
            self._pull = None

    async def _close_source(self) -> None:
        """Both branches stopped early: close the source (its pull in flight is cancelled)."""
        self._done = True
        pull = self._pull
        if pull is not None:
            pull.cancel()
            await asyncio.wait([pull])
        await self._source.aclose()


async def _chunks(source: bytes | AsyncIterable[object]) -> AsyncGenerator[bytes, None]:
    """Yield the non-empty chunks of a body, checking that a stream yields bytes."""
    if isinstance(source, bytes):
        if source:
            yield source
        return
    iterator = aiter(source)
    ended = False
    try:
        async for chunk in iterator:
            if isinstance(chunk, (bytearray, memoryview)):
                chunk = bytes(chunk)
            elif not isinstance(chunk, bytes):
                raise TypeError(f"A streamed body must yield bytes, not {type(chunk).__name__}.")
            if chunk:
                yield chunk
        ended = True
    finally:
        # A reader that stops early (``aclose()``, or a loop left before the end) closes the
        # stream it read, as cancelling a ReadableStream reaches its source's ``cancel()``, in
        # the object that made it too (workerd, the "Use ReadableStream" example). A stream read
        # to its end is not cancelled (workerd calls no ``cancel()`` then): an iterator's own
        # ``aclose()`` may mean "cancel", or fail once it is exhausted.
        aclose = None if ended else getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


_BASE_HEADERS: Final = _Body.__dict__["_headers"]
"""``_Body``'s ``_headers`` slot itself (for :class:`_OwnHeaders`)."""


class _OwnHeaders:
    """``_headers`` of a subclass defining its own ``headers``: the package's code sets and reads a
    message's ``_headers`` (see ``_Body.headers``), which such a class never reads; through this,
    it sets them through the class's ``headers`` (made first: a ``Headers``) and reads them there,
    as when ``headers`` was the base class's plain slot. Set or read again while that runs (the
    class's ``headers`` handing on to the base class's), the base slot itself."""

    __slots__ = ()
    _inside = threading.local()

    def _entered(self, message: _Body) -> set[int] | None:
        """The messages (ids) whose ``headers`` this thread runs, with ``message`` added; None if already there."""
        inside: set[int] = self._inside.__dict__.setdefault("ids", set())
        if id(message) in inside:
            return None
        inside.add(id(message))
        return inside

    def __get__(self, message: _Body | None, owner: type | None = None) -> Any:
        if message is None:
            return self
        inside = self._entered(message)
        if inside is None:
            return _BASE_HEADERS.__get__(message, owner)
        try:
            return message.headers
        finally:
            inside.discard(id(message))

    def __set__(self, message: _Body, headers: Any) -> None:
        inside = self._entered(message)
        if inside is None:
            _BASE_HEADERS.__set__(message, headers)
            return
        try:
            if type(headers) is tuple or headers is _LAZY_TEXT_PLAIN:  # (what _Body.headers makes of them)
                made = _new(Headers)
                lazy = headers is _LAZY_TEXT_PLAIN
                made._items = [("content-type", _TEXT_PLAIN)] if lazy else headers  # type: ignore[assignment]
                headers = made
            message.headers = headers
        finally:
            inside.discard(id(message))


_OWN_HEADERS: Final = _OwnHeaders()


# ---------------------------------------------------------------------------------------------
# Request


class Request(_Body):
    """An HTTP request, as a Worker or a Durable Object's ``fetch`` handler receives it.

    Args:
        url: the URL (a ``str``), or a ``Request`` to copy: its URL, method and headers are
            copied and its body is moved over (the original is then used), unless overridden.
        method: the HTTP method, upper-cased (default ``GET``, or the copied request's): one
            of those workerd takes (``GET``, ``POST``... ``PURGE``, ``PROPFIND``; not ``CONNECT``).
        headers: the headers (see :class:`Headers`); default empty, or the copied request's.
        body: ``None``, ``str`` (UTF-8, and ``content-type: text/plain;charset=UTF-8`` unless
            one is given), ``bytes``/``bytearray``/``memoryview``, or an async iterable of
            ``bytes`` (a streamed body). ``GET`` and ``HEAD`` requests cannot have one.
        redirect: ``"follow"`` (the default, or the copied request's) or ``"manual"``: whether
            ``stub.fetch`` of this request follows a redirect the object answers. A request a
            handler receives says ``"manual"``, as in workerd.
        cf: Cloudflare's request properties, a dict (default ``None``, or the copied request's):
            kept as a JSON copy in ``request.cf``, and delivered by ``stub.fetch`` to the object,
            whose ``request.cf`` is that copy (as in workerd; ``None`` when none was given).

    Raises:
        TypeError: a ``GET``/``HEAD`` request with a body (``Request with a GET or HEAD method
            cannot have a body.``), an invalid method (``Invalid HTTP method string: x``), an
            unsupported body type, invalid headers, or copying a request whose body was used.

    The URL is parsed and serialized as workerd's URL parser does (``durable._url``): scheme and
    host lower-cased, a default port dropped, ``.``/``..`` resolved, a space in the path as
    ``%20``... A relative or malformed URL raises ``TypeError: Invalid URL: <url>``.

    Example::

        req = Request("https://example.com/items", method="POST", body='{"a": 1}')
        await req.json()   # {'a': 1}
    """

    __slots__ = ("cf", "method", "redirect", "url")

    def __init__(
        self,
        url: str | Request,
        *,
        method: str | None = None,
        headers: HeadersInit | None = None,
        body: BodyInit | _Missing = _MISSING,
        redirect: str | None = None,
        cf: Mapping[str, Any] | _Missing | None = _MISSING,
    ) -> None:
        input = url  # the parameter is named `url` (docs/api.md); it also takes a Request to copy (Fetch's `input`)
        source_body: object = None
        if redirect is not None and redirect not in _REDIRECT_MODES:
            raise TypeError(_REDIRECT_MODE)
        if isinstance(input, Request):
            url = input.url
            base_method = input.method
            base_headers = input.headers
            self.redirect: str = input.redirect if redirect is None else redirect
            self.cf: Any = input.cf if cf is _MISSING else _copy_cf(cf)
            if body is _MISSING:
                if input._body is not None:
                    if input._body_used:
                        raise TypeError("Cannot reconstruct a Request with a used body.")
                    input._body_used = True  # the body moves to the new request
                    source_body = input._body
        elif isinstance(input, str):
            url = input
            base_method = "GET"
            base_headers = None
            self.redirect = "follow" if redirect is None else redirect
            self.cf = None if cf is _MISSING else _copy_cf(cf)
        else:
            raise TypeError(f"Request input must be a URL string or a Request, not {type(input).__name__}.")
        self.url: str = _normalize_url(url)
        self.method: str = base_method if method is None else _check_method(method)
        new_headers = (
            _headers_field(headers, "RequestInitializerDict") if headers is not None else Headers(base_headers)
        )
        if body is _MISSING:
            self._init_body(source_body, new_headers, "Request")
            # A copied GET request that already carried a body may pass through, as in
            # workerd; only a new method or body triggers the check.
            check = not isinstance(input, Request) or method is not None
        else:
            self._init_body(body, new_headers, "Request")
            check = True
        if check and self._body is not None and self.method in ("GET", "HEAD"):
            raise TypeError(_GET_HEAD_BODY)

    @classmethod
    def _moved_from(cls, source: Request, url: str) -> Request:
        """``Request(source)`` for ``url`` (``source.url`` normalized): the body moves over.

        Raises:
            TypeError: ``source``'s body was used (``Cannot reconstruct a Request with a used body.``).
        """
        body = source._body
        if body is not None:
            if source._body_used:
                raise TypeError("Cannot reconstruct a Request with a used body.")
            source._body_used = True  # the body moves to the new request
        request = _new(Request)
        request.url = url
        request.method = source.method
        request.redirect = source.redirect
        request.cf = source.cf
        headers = _new(Headers)
        headers._items = list(source.headers._items)
        request.headers = headers
        request._body = body
        request._body_used = False
        return request

    async def json(self) -> Any:
        """Read the whole body and parse it as JSON.

        Raises:
            ValueError: the body is not valid JSON (``json.JSONDecodeError``).
            TypeError: the body was already read.
        """
        return await self._read_json()

    def clone(self) -> Self:
        """Return a copy of this request whose body can be read independently of this one's.

        Raises:
            TypeError: the body was already read (clone before reading).

        Example::

            copy = request.clone()
            await request.text(); await copy.text()   # the same text, twice
        """
        cls = type(self)
        # (The request an object got without the credentials of its URL clones as a plain one.)
        twin: Self = _new(Request if cls is _SentWithCredentials else cls)  # type: ignore[assignment]
        self._clone_into(twin)
        twin.url, twin.method, twin.redirect, twin.cf = self.url, self.method, self.redirect, self.cf
        return twin

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"<Request [{self.method} {self.url}]>"


def _copy_cf(cf: object) -> Any:
    """``cf`` as workerd keeps it: a JSON copy of an object (measured with miniflare 4,
    2026-04-07: ``new Request(url, {cf: o}).cf`` equals ``o`` but is not ``o``; a string or
    ``null`` raises the TypeError below)."""
    if not isinstance(cf, Mapping):
        raise TypeError(
            "Incorrect type for the 'cf' field on 'RequestInitializerDict': the provided value is not of type 'Object'."
        )
    return _json.loads(_json.dumps(cf))


def _check_method(method: object) -> str:
    if type(method) is str and method in _STANDARD_METHODS:
        return method  # valid and upper-case already (measured: 0.4 us)
    if not isinstance(method, str):
        raise TypeError(f"HTTP method must be a str, not {type(method).__name__}.")
    upper = method.upper()
    if upper not in _METHODS or not method.isascii():
        raise TypeError(f"Invalid HTTP method string: {method}")
    return upper


# Measured (docs/performance.md): every Request normalizes its URL and every stub.fetch checks it, two urlsplit()
# calls and a urlunsplit() (about 2.1 us of an in-memory fetch). Both are pure functions of
# the string, and programs send the same few URLs over and over: cached, they cost a dict
# lookup. Only URLs up to CACHED_URL_LENGTH characters are cached, so the caches stay small
# (at most 1024 entries each) whatever clients send. A cache miss costs what it did before.
CACHED_URL_LENGTH: Final = 512


def _normalize_url(url: str) -> str:
    if len(url) <= CACHED_URL_LENGTH:
        return _normalize_url_cached(url)
    return _normalize_url_uncached(url)


def _normalize_url_uncached(url: str) -> str:
    # The URL as workerd's parser serializes it (durable._url), so that ``req.url`` reads as
    # JavaScript's ``request.url`` does: ``urlsplit(req.url).path`` is ``new URL(req.url).pathname``.
    parsed = parse_url(url)
    if parsed is None:
        raise TypeError(f"Invalid URL: {url}")  # workerd's words
    return parsed


_normalize_url_cached = functools.lru_cache(maxsize=1024)(_normalize_url_uncached)


_INIT_KEYS: Final = ("body", "cf", "headers", "method", "redirect")


def _plain_get(url: str, redirect: str = "follow", items: Any = None) -> Request:
    """``Request(url)`` for a ``url`` already normalized: a GET, no headers, no body. (A function,
    not a classmethod: a classmethod's lookup on its class is not specialized on 3.11.) ``items``
    are its headers' pairs: a new empty list unless given (``()``: immutable, as ``_freeze``)."""
    request = _new(Request)
    request.url = url
    request.method = "GET"
    request.redirect = redirect
    request.cf = None
    if type(items) is tuple:
        request._headers = items  # (immutable headers of these pairs, made at the first read: _Body.headers)
    else:
        headers = _new(Headers)
        headers._items = [] if items is None else items
        request._headers = headers
    request._body = None
    request._body_used = False
    return request


_PLAIN_FETCH_URLS: dict[str, str] = {}
"""The URLs ``plain_fetch_request`` took, each to the ``url`` its request holds (``_fetch_url_cached``'s
answer for a full URL without credentials). Emptied when it holds ``_PLAIN_FETCH_URLS_KEPT``."""
_PLAIN_FETCH_URLS_KEPT: Final = 1024


def plain_fetch_request(url: str) -> Request | None:
    """What ``build_request(url)`` gives for ``stub.fetch(url)``, already marked ``redirect="manual"``
    as the object sees it (``follows_redirects``); ``None`` if ``url`` needs the general path (too
    long to cache, not a full URL, or holding credentials), which gives the same or raises.

    ``Stub.fetch``'s common call in one step, not build_request's and then the redirect's
    (seq-fetch 97,238 -> 96,509, conc-fetch 91,449 -> 90,835 instructions, callgrind, eleventh pass).
    ``url`` (an exact ``str``: Stub.fetch checks) is looked up in a dict of the URLs taken before,
    not in ``_fetch_url_cached``'s ``lru_cache`` (which makes a key of its arguments at each call),
    and the request is made here, not by ``_plain_get`` (a frame less). With the promise's
    and check_response's changes of the same pass: seq-fetch 94,845 -> 93,174, conc-fetch 86,095 ->
    81,900 instructions (callgrind, thirteenth pass).
    """
    normalized = _PLAIN_FETCH_URLS.get(url)
    if normalized is None:
        if len(url) > CACHED_URL_LENGTH:
            return None
        normalized, full = _fetch_url_cached(url)
        if not full:
            return None
        if len(_PLAIN_FETCH_URLS) >= _PLAIN_FETCH_URLS_KEPT:
            _PLAIN_FETCH_URLS.clear()  # (a cache: any thread may clear it, the next call fills it again)
        _PLAIN_FETCH_URLS[url] = normalized
    # _plain_get(normalized, "manual", ()), inlined: empty headers, immutable (workerd), made at the
    # first read of request.headers (see _Body.headers).
    request = _new(Request)
    request.url = normalized
    request.method = "GET"
    request.redirect = "manual"
    request.cf = None
    request._headers = ()
    request._body = None
    request._body_used = False
    return request


def build_request(input: str | Request, init: Mapping[str, Any] | None = None) -> Request:
    """Build the ``Request`` that ``stub.fetch(input, **init)`` delivers to an object.

    As in Fetch, a new ``Request`` is always made: a ``Request`` given as ``input`` has its
    body moved to the new one. The URL must be absolute ``http:`` or ``https:`` with a host,
    as Cloudflare requires since ``durable_object_fetch_requires_full_url`` (2021-11-10). As
    workerd sends it over HTTP, the object sees no fragment (``#...``) and, for a body, a
    ``content-length`` or ``transfer-encoding`` header. Its ``redirect`` is still the sender's
    (see :func:`follows_redirects`).

    Args:
        input: a URL string or a :class:`Request`.
        init: optional ``method``, ``headers``, ``body`` and ``redirect``, as for :class:`Request`.

    Raises:
        TypeError: ``Fetch API cannot load: <url>`` for a relative, malformed or non-HTTP URL;
            an ``init`` key other than those; and whatever :class:`Request` raises.
    """
    if not init and type(input) is str and len(input) <= CACHED_URL_LENGTH:
        # The common call, ``stub.fetch(url)``: a GET with no headers and no body, made without
        # the keyword handling of Request.__init__, and with the URL normalized and checked in
        # one cached lookup (measured with timeit: 1.13 us -> 0.35 us). The same state, the
        # same errors as the general path below.
        url, full = _fetch_url_cached(input)
        if full:
            return _plain_get(url, "follow", ())  # (_freeze() of no pairs, inlined: immutable, as in workerd)
        if full is not None:
            raise TypeError(f"Fetch API cannot load: {url}")
        # (None: a URL holding credentials, sent by the general path below: see without_credentials)
    if not init and type(input) is Request and type(input.headers) is Headers and len(input.url) <= CACHED_URL_LENGTH:
        # ``stub.fetch(request)``: a Worker forwarding the request it received. The copy that
        # ``Request(request)`` makes (URL, method and headers copied, the body moved over), without
        # its keyword handling (measured with timeit: 1.16 us -> 0.45 us). The same errors, in the
        # same order: a used body first, then the URL (after the body has moved, as before).
        url, full = _fetch_url_cached(input.url)
        request = Request._moved_from(input, url)
        if not full:
            if full is not None:
                raise TypeError(f"Fetch API cannot load: {url}")
            request = without_credentials(request)
        if request._body is not None:
            _frame_body(request)
        _freeze(request.headers)
        return request
    options = dict(init) if init else {}
    unknown = sorted(k for k in options if k not in _INIT_KEYS)
    if unknown:
        raise TypeError(
            f"fetch() got an unsupported option {unknown[0]!r}; "
            "the supported options are 'body', 'cf', 'headers', 'method' and 'redirect'."
        )
    if not isinstance(input, (str, Request)):
        raise TypeError(f"fetch() input must be a URL string or a durable.Request, not {type(input).__name__}.")
    request = Request(input, **options)
    request.url = request.url.partition("#")[0]  # HTTP sends no fragment: the object sees none
    _require_full_url(request.url)
    if "@" in request.url:  # (rare: an "@" in the path or query leaves the request as it is)
        request = without_credentials(request)
    if request._body is not None:
        _frame_body(request)
    # The object's request has immutable headers, as in workerd (measured with miniflare 4,
    # 2026-04-07: ``request.headers.set("z", "1")`` there raises ``TypeError: Can't modify
    # immutable headers.``; ``new Request(request)`` has mutable ones).
    _freeze(request.headers)
    return request


def _frame_body(request: Request) -> None:
    """Add the framing header that the object sees on a request with a body, as workerd does.

    workerd sends a fetch to an object as HTTP, so its handler sees ``content-length: N`` for a
    buffered body (``0`` for an empty one) and ``transfer-encoding: chunked`` for a stream, unless
    the sender gave one of the two itself, which is kept as given (measured with miniflare 4,
    2026-04-07: ``stub.fetch(url, {method: "POST", body: "abc"})`` arrives with
    ``content-length: 3``; with ``headers: {"transfer-encoding": "chunked"}``, without it).
    """
    items = request.headers._items
    for name, _ in items:
        if name == "content-length" or name == "transfer-encoding":
            return
    body = request._body
    if isinstance(body, builtins.bytes):
        items.append(("content-length", str(len(body))))
    else:
        items.append(("transfer-encoding", "chunked"))


def _require_full_url(url: str) -> None:
    full = _is_full_url_cached(url) if len(url) <= CACHED_URL_LENGTH else _is_full_url(url)
    if not full:
        raise TypeError(f"Fetch API cannot load: {url}")


def _is_full_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


_is_full_url_cached = functools.lru_cache(maxsize=1024)(_is_full_url)  # see _normalize_url


@functools.lru_cache(maxsize=1024)  # see _normalize_url; only for URLs up to CACHED_URL_LENGTH
def _fetch_url_cached(url: str) -> tuple[str, bool | None]:
    """``url`` as a ``Request`` holds it, and whether ``stub.fetch`` may load it (build_request's fast
    path): ``None`` for a URL it may load that holds credentials (see :func:`without_credentials`)."""
    normalized = _normalize_url(url).partition("#")[0]  # HTTP sends no fragment: the object sees none
    full = _is_full_url(normalized)
    if full and "@" in normalized.partition("://")[2].partition("/")[0]:
        return normalized, None
    return normalized, full


@final
class _SentWithCredentials(Request):
    """The request an object receives for a ``stub.fetch`` whose URL held credentials: its ``url``
    has none, and the caller's response keeps the URL as sent (see :func:`without_credentials`)."""

    __slots__ = ("_caller_url",)

    _caller_url: str


def without_credentials(request: Request) -> Request:
    """``request`` (a request to send, its URL normalized and without fragment) as the
    object (or the server) receives it: without the ``user:password@`` of its URL, if it holds one.

    workerd sends the fetch to the object over HTTP, which carries no credentials (measured with
    miniflare 4, 2026-04-07: ``stub.fetch("http://u:p@a.com/echo?x#y")`` arrives with ``request.url``
    ``http://a.com/echo?x``, and no ``authorization`` header), while the caller's response keeps the
    URL as sent (``response.url`` ``http://u:p@a.com/echo?x``). The request is of a private subclass
    that keeps the caller's URL for :func:`check_response` and :func:`fetched` (plain requests, all
    others, keep their fast path there); its ``clone()`` and its copy over RPC are plain requests,
    without the caller's URL. The compat layer's outbound ``fetch`` sends its requests so too
    (workerd's ``fetch("http://u:p@host/")`` sends no ``authorization`` header, measured).
    """
    scheme, _, rest = request.url.partition("://")
    authority, slash, tail = rest.partition("/")  # (a serialized special URL's path starts with "/")
    _, at, host = authority.rpartition("@")  # (serialized credentials hold no "@" nor "/")
    if not at:
        return request
    sent = _new(_SentWithCredentials)
    sent._caller_url = request.url
    sent.url = f"{scheme}://{host}{slash}{tail}"
    sent.method, sent.redirect, sent.cf = request.method, request.redirect, request.cf
    sent.headers, sent._body, sent._body_used = request.headers, request._body, request._body_used
    return sent


def sent_url(request: Request) -> str:
    """The URL of ``request`` (from :func:`build_request` or :func:`redirected_request`) as its
    sender gave it: with the credentials :func:`without_credentials` took out of ``request.url``."""
    return request._caller_url if type(request) is _SentWithCredentials else request.url


# ---------------------------------------------------------------------------------------------
# Response

_R = TypeVar("_R", bound="Response")
_R_co = TypeVar("_R_co", bound="Response", covariant=True)


class _JsonBuilder(Protocol[_R_co]):
    """The signature of ``Response.json(...)`` used as a builder."""

    def __call__(
        self,
        data: Any,
        status: int = 200,
        headers: HeadersInit | None = None,
        *,
        status_text: str | None = None,
    ) -> _R_co: ...


class _JsonMember(Generic[_R]):
    """``Response.json``: a builder on the class, an async reader on an instance.

    ``Response.json(data)`` builds a JSON response (Fetch's static ``Response.json``) while
    ``await resp.json()`` parses a response's body, as both Fetch and Cloudflare's Python SDK
    spell them with the same name.
    """

    @overload
    def __get__(self, obj: None, objtype: type[_R]) -> _JsonBuilder[_R]: ...
    @overload
    def __get__(self, obj: _R, objtype: type[_R] | None = None) -> Callable[[], Awaitable[Any]]: ...

    def __get__(self, obj: _R | None, objtype: type[_R] | None = None) -> Callable[..., Any]:
        if obj is None:
            assert objtype is not None
            cls = objtype

            def build(
                data: Any,
                status: int = 200,
                headers: HeadersInit | None = None,
                *,
                status_text: str | None = None,
            ) -> _R:
                return cls._from_json(data, status=status, headers=headers, status_text=status_text)

            build.__doc__ = Response._from_json.__doc__
            build.__name__ = build.__qualname__ = "json"
            return build
        return obj._read_json


@camel_aliases
class Response(_Body):
    """An HTTP response, returned by a Worker's or a Durable Object's ``fetch`` handler.

    Args:
        body: ``None``, ``str`` (UTF-8, and ``content-type: text/plain;charset=UTF-8`` unless
            one is given), ``bytes``/``bytearray``/``memoryview``, or an async iterable of
            ``bytes`` (streamed). Unlike JavaScript, a number is not converted: write
            ``Response(str(value))``.
        status: 200 to 599 (default 200).
        headers: the headers (see :class:`Headers`).
        status_text: the reason phrase; by default the standard one for ``status``.
        web_socket: for a WebSocket upgrade, the client end of a :class:`durable.WebSocketPair`
            (then ``status`` must be 101 and ``body`` None).

    Raises:
        ValueError: ``status`` outside 200..599 (Fetch raises a ``RangeError``).
        TypeError: an unsupported body type, a body with status 204, 205 or 304, a status text
            holding a character below U+0020 (tab included), or invalid headers.

    ``Response.json(data, status=200, headers=None)`` builds a JSON response;
    ``await response.json()`` parses one.

    Example::

        return Response("Not found", status=404)
        return Response.json({"count": 3})
    """

    # _url and _redirected are set only on a response that stub.fetch returned (see the
    # properties): every other response, the common case, is built without them.
    __slots__ = ("_redirected", "_status_text", "_url", "_web_socket", "status")

    status: int
    _status_text: str | None
    _web_socket: WebSocket | None
    _url: str
    _redirected: bool

    json = _JsonMember["Response"]()

    def __init__(
        self,
        body: BodyInit = None,
        *,
        status: int = 200,
        headers: HeadersInit | None = None,
        status_text: str | None = None,
        web_socket: WebSocket | None = None,
    ) -> None:
        if type(body) is str and headers is None and status_text is None and web_socket is None and status is _OK:
            # The common Response(text): what the checks below would set, without them (the
            # seed counter's answer): about 90 of the ~1,350 opcodes of a sequential fetch.
            self._headers = _LAZY_TEXT_PLAIN  # (made at the first read: see _Body.headers)
            try:
                self._body = (
                    body.encode()
                )  # (UTF-8, strict: without naming it, ~200 instructions less, thirteenth pass)
            except UnicodeEncodeError:  # a lone surrogate (rare: kept off the common path)
                self._body = _utf8(body)
            self._body_used = False
            self.status = 200
            self._status_text = None
            self._web_socket = None
            return
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"Response status must be an int, not {type(status).__name__}.")
        self._web_socket = None
        if web_socket is not None:
            # A WebSocket upgrade (workerd api/http.c++): only with status 101. The end is
            # handed over when the response is returned (see _hand_over), not here: workerd
            # lets code build the response, then accept or reuse the end (measured 2026-04-26).
            if not isinstance(web_socket, WebSocket):
                raise TypeError(f"Response web_socket must be a durable.WebSocket, not {type(web_socket).__name__}.")
            if status != 101:
                raise ValueError("Responses with a WebSocket must have status code 101.")
            self._web_socket = web_socket
        elif not 200 <= status <= 599:
            raise ValueError(_STATUS_RANGE)
        if status_text is not None:
            if not isinstance(status_text, str):
                raise TypeError(f"Response status_text must be a str, not {type(status_text).__name__}.")
            if any(ord(c) < 0x20 for c in status_text):
                raise TypeError("Invalid statusText")
            if not status_text.isascii():
                status_text = _without_surrogates(status_text)
        self.status = status
        self._status_text = status_text
        if status in _NULL_BODY_STATUSES and body is not None:
            if isinstance(body, (str, builtins.bytes, bytearray, memoryview)) and len(body) == 0:
                # A zero-length body counts as none, as workerd allows; and, as there, an empty
                # str then adds no content-type (measured: new Response("", {status: 204}) has
                # no headers).
                body = None
            elif isinstance(body, (str, builtins.bytes, bytearray, memoryview, AsyncIterable)):
                raise TypeError(_NULL_BODY_STATUS)
        self._init_body(body, _headers_field(headers, "InitializerDict"), "Response")

    @property
    def ok(self) -> bool:
        """Whether the status is in the 200..299 range."""
        return 200 <= self.status <= 299

    @property
    def url(self) -> str:
        """The URL of the request this response answers, as ``stub.fetch`` returned it (the last
        one, after redirects); ``""`` for a response built here, as in workerd."""
        try:
            return self._url
        except AttributeError:
            return ""

    @property
    def redirected(self) -> bool:
        """Whether ``stub.fetch`` followed a redirect to get this response."""
        try:
            return self._redirected
        except AttributeError:
            return False

    @property
    def type(self) -> str:
        """``"error"`` for :meth:`error`'s response, else ``"default"`` (Fetch's response type)."""
        return "error" if self.status == 0 else "default"

    @classmethod
    def error(cls) -> Self:
        """A network error response (Fetch's ``Response.error()``): status 0, type ``"error"``.

        A ``fetch`` handler cannot return one: ``stub.fetch`` then raises ``TypeError: Return
        value from serve handler must not be an error response (like Response.error())``.
        """
        response = _new(cls)
        response.headers = Headers()
        response._body = None
        response._body_used = False
        response.status = 0
        response._status_text = None
        response._web_socket = None
        return response

    @property
    def web_socket(self) -> WebSocket | None:
        """The client end of a WebSocket upgrade (status 101), or ``None``; ``accept()`` it."""
        return self._web_socket

    def _hand_over(self) -> None:
        """The response leaves the ``fetch`` that returned it: hand its WebSocket end over.

        workerd couples the end when the response is sent (``WebSocket::couple``), and raises
        there for an end that was accepted or already handed over; the returned handle is
        dead afterwards and ``web_socket`` is a fresh handle joined to the same peer. Called by
        the object host for ``stub.fetch`` and by ``durable.asgi`` for the Worker's response.

        Raises:
            TypeError: workerd's ``Can't return WebSocket ...`` messages.
        """
        if self._web_socket is not None:
            self._web_socket = hand_over_end(self._web_socket)

    @property
    def status_text(self) -> str:
        """The reason phrase: as given, else the standard one (``"OK"``, ``"Not Found"``...)."""
        if self._status_text is not None:
            return self._status_text
        return _default_status_text(self.status)

    @classmethod
    def _from_json(
        cls: builtins.type[_R],
        data: Any,
        status: int = 200,
        headers: HeadersInit | None = None,
        *,
        status_text: str | None = None,
    ) -> _R:
        """Build a response whose body is ``data`` serialized as JSON.

        The content type is ``application/json`` unless ``headers`` sets one. Serialization
        is compact, like ``JSON.stringify``, and keeps non-ASCII characters as they are.

        Raises:
            TypeError: ``data`` holds something JSON cannot represent.
            ValueError: ``data`` holds a NaN or an infinity (JSON has no spelling for them).
        """
        text = _json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if not text.isascii() and _SURROGATE_RE.search(text) is not None:
            # A lone surrogate is written as an escape, as JSON.stringify does (measured with
            # miniflare 4, 2026-04-07: Response.json("\ud800") reads as the text "\ud800"); a
            # pair is one character there (Response.json("\ud83d\ude00") reads as "😀").
            text = _SURROGATE_RE.sub(_escape_surrogate, _paired(text))
        merged = _headers_field(headers, "InitializerDict")
        if "content-type" not in merged:
            merged.append("content-type", _APPLICATION_JSON)
        return cls(text, status=status, headers=merged, status_text=status_text)

    @classmethod
    def redirect(cls: builtins.type[_R], url: str, status: int = 302) -> _R:
        """Build a redirect to ``url`` (Fetch's ``Response.redirect``).

        Raises:
            ValueError: ``status`` is not 301, 302, 303, 307 or 308.
            TypeError: ``url`` is relative or malformed (workerd's ``Unable to parse URL:
                <url>``). The ``Location`` is the URL as workerd serializes it (tab, CR and LF
                dropped, NUL as ``%00``). The response's headers are immutable, as in workerd.
        """
        if status not in REDIRECT_STATUSES:
            raise ValueError(
                f"{shown(status, text=True)} is not a redirect status code. It must be one of: 301, 302, 303, 307, or 308."
            )
        # workerd checks the serialized URL for CR, LF and NUL, which its parser has already
        # dropped (CR, LF, tab) or percent-encoded (NUL): the check never fires, so none here.
        if not isinstance(url, str):
            # workerd reads String(url), which then fails to parse (miniflare 4, 2026-04-07:
            # Response.redirect(5) raises "TypeError: Unable to parse URL: 5").
            raise TypeError(f"Unable to parse URL: {shown(url, text=True)} (Response.redirect() takes a str URL)")
        location = parse_url(url)
        if location is None:
            raise TypeError(f"Unable to parse URL: {url}")  # workerd's words (a relative URL too)
        response = cls(None, status=status, headers={"location": location})
        # Immutable headers, as Fetch's guard is for a redirect (measured with miniflare 4,
        # 2026-04-07: set, append and delete raise "Can't modify immutable headers.", on a
        # clone too; ``new Headers(r.headers)`` is mutable).
        _freeze(response.headers)
        return response

    def clone(self) -> Self:
        """Return a copy of this response whose body can be read independently of this one's.

        Raises:
            TypeError: the body was already read (clone before reading).

        Example::

            copy = response.clone()
            await response.json(); await copy.text()   # the same body, twice
        """
        twin = _new(type(self))
        self._clone_into(twin)
        twin.status, twin._status_text = self.status, self._status_text
        twin._web_socket = None  # (the WebSocket end stays with the original)
        if hasattr(self, "_url"):  # stub.fetch's response: the clone keeps its URL (as in workerd)
            twin._url, twin._redirected = self._url, self.redirected
        return twin

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.status_text}]>"

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        statusText = status_text
        webSocket = web_socket


# workerd's reason phrases (measured with miniflare 4, 2026-04-07, for every status 200..599).
# Python's http.HTTPStatus differs for some (413 "Request Entity Too Large", 418 "I'm a Teapot",
# 425 "Too Early"...) and changes between Python versions, so the table is workerd's own.
_PLAIN: Final = frozenset({Request, Response})
"""The message classes whose ``bytes()`` is ``_Body.bytes`` (``text()``'s shortcut)."""

_STATUS_TEXTS: Final = {
    101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information", 204: "No Content",
    205: "Reset Content", 206: "Partial Content", 207: "Multi-Status", 208: "Already Reported", 226: "IM Used",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Payload Too Large", 414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    417: "Expectation Failed", 418: "I'm a teapot", 421: "Misdirected Request", 422: "Unprocessable Entity",
    423: "Locked", 424: "Failed Dependency", 426: "Upgrade Required", 428: "Precondition Required",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported", 506: "Variant Also Negotiates",
    507: "Insufficient Storage", 508: "Loop Detected", 510: "Not Extended", 511: "Network Authentication Required",
}  # fmt: skip


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _default_status_text(status: int) -> str:
    text = _STATUS_TEXTS.get(status)
    if text is not None:
        return text
    # workerd falls back to the status class named by RFC 9110 section 15 (425 too).
    return {2: "Successful", 3: "Redirection", 4: "Client Error", 5: "Server Error"}.get(status // 100, "")


# ---------------------------------------------------------------------------------------------
# Workers


@camel_aliases
class ExecutionContext:
    """The ``ctx`` a Worker receives: work that may outlive the response.

    ``wait_until(awaitable)`` starts the work at once (a coroutine becomes a task) and the
    server waits for it after the response has been sent; an exception in it is logged and
    does not affect the response. ``pass_through_on_exception()`` is accepted for
    compatibility and does nothing: there is no origin server to fall back to.
    """

    __slots__ = ("_ending", "_tasks")

    def __init__(self) -> None:
        self._tasks: list[asyncio.Future[Any]] = []
        self._ending: list[Callable[[], None]] | None = None

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Keep ``awaitable`` running after the response is sent.

        Raises:
            TypeError: ``awaitable`` is not awaitable.
        """
        if not inspect.isawaitable(awaitable):
            raise TypeError(f"wait_until() expects an awaitable, not {type(awaitable).__name__}.")
        self._tasks.append(asyncio.ensure_future(awaitable))

    def pass_through_on_exception(self) -> None:
        """Accepted for compatibility; does nothing (there is no origin to pass through to)."""

    async def _drain(self) -> None:
        """Wait for every ``wait_until`` task, including ones added while waiting; log failures."""
        while self._tasks:
            tasks, self._tasks = self._tasks, []
            for task, result in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True)):
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    logger.error("A wait_until() task failed: %r", task, exc_info=result)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        waitUntil = wait_until
        passThroughOnException = pass_through_on_exception


class WorkerEntrypoint:
    """Base class of a stateless Worker: the front that receives HTTP requests.

    Subclass it and define ``async def fetch(self, request) -> Response``. A new instance is
    made for every request as ``Worker(ctx, env)``: ``self.env`` holds the bindings (for
    example ``self.env.COUNTER``, a Durable Object namespace) and ``self.ctx`` is the
    request's :class:`ExecutionContext`.

    Example::

        class Worker(WorkerEntrypoint):
            async def fetch(self, request):
                stub = self.env.COUNTER.get_by_name("A")
                return await stub.fetch(request.url)
    """

    def __init__(self, ctx: ExecutionContext, env: Any) -> None:
        self.ctx = ctx
        self.env = env

    async def fetch(self, request: Request) -> Response:
        """Handle one request. Subclasses override this; the base raises.

        Raises:
            NotImplementedError: the subclass did not define ``fetch``.
        """
        raise NotImplementedError("Handler does not export a fetch() function.")


# -- for the package's own fronts (durable.asgi) ------------------------------------------------
# Module functions rather than public methods, so that Request, Response and ExecutionContext keep
# Cloudflare's API and nothing more; durable.asgi uses these names, never the private members.


def headers_from_server(raw: Iterable[tuple[builtins.bytes, builtins.bytes]]) -> Headers:
    """``Headers`` from a server's raw byte pairs (values read as UTF-8), checked in one pass (the ASGI front's path)."""
    return Headers._from_latin1(raw)


def request_from_server(url: str, method: str, headers: Headers, body: AsyncIterable[builtins.bytes] | None) -> Request:
    """``Request(url, method=method, headers=headers, body=body)`` for a request a server received.

    The same request and errors, but ``headers`` is taken as it is, not copied: the front made
    it for this request and keeps no other use of it (measured with timeit: 0.73 us -> 0.4 us).

    Raises:
        TypeError: an invalid method, or a ``GET``/``HEAD`` request with a body.
    """
    request = _new(Request)
    request.url = _normalize_url(url)
    request.method = _check_method(method)
    request.redirect = "manual"  # what a Worker's fetch handler sees in workerd
    request.cf = None  # (no edge here to fill it: docs/differences.md)
    request._init_body(body, headers, "Request")
    _freeze(headers)  # immutable, as a Worker's request is in workerd
    if body is not None and request.method in ("GET", "HEAD"):
        raise TypeError(_GET_HEAD_BODY)
    return request


def take_body(message: Request | Response) -> bytes | AsyncIterable[bytes] | None:
    """Claim ``message``'s body for sending: ``None`` (no body), ``bytes``, or a stream (see
    :func:`body_chunks`). Marks the body used.

    Raises:
        TypeError: the body was already read (``Body has already been used. ...``).
    """
    return message._take_body()


def body_chunks(source: bytes | AsyncIterable[object]) -> AsyncIterator[bytes]:
    """The non-empty chunks of a body taken with :func:`take_body`.

    Raises (while iterating):
        TypeError: a streamed body yielded something other than bytes.
    """
    return _chunks(source)


NOT_AN_UPGRADE: Final = 'Worker tried to return a WebSocket in a response to a request which did not contain the header "Upgrade: websocket".'
"""workerd's TypeError for a Response with a WebSocket answering a request that is not an upgrade."""


def is_websocket_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket: an ``Upgrade: websocket`` header, in any case
    (workerd refuses a returned WebSocket otherwise, ``Upgrade: h2c`` included)."""
    value = request.headers.get("upgrade")
    return value is not None and value.strip(_HTTP_WHITESPACE).lower() == "websocket"


def hand_over(response: Response) -> None:
    """``response`` leaves the ``fetch`` that returned it: hand its WebSocket end over.

    Raises:
        TypeError: workerd's ``Can't return WebSocket ...`` messages (an end that was accepted
            or already handed over).
    """
    response._hand_over()


async def drain(ctx: ExecutionContext) -> None:
    """Wait for every ``ctx.wait_until`` task, including ones added while waiting; log failures.
    Then the request is over: call what :func:`at_request_end` registered."""
    if ctx._tasks:  # most requests start none: no second coroutine for them
        await ctx._drain()
    if ctx._ending is not None:  # rare (a js timer of the compat layer): off the common path
        ending, ctx._ending = ctx._ending, None
        for callback in ending:
            callback()


def at_request_end(ctx: ExecutionContext, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once the request ``ctx`` belongs to is over (its response sent and its
    ``wait_until`` work done: :func:`drain`); a ``ctx`` no server drains never calls it."""
    if ctx._ending is None:
        ctx._ending = []
    ctx._ending.append(callback)


# -- across RPC -----------------------------------------------------------------------------------
# workerd lets a Request, a Response or Headers be an RPC argument or result, anywhere in the
# value (measured with miniflare 2026-12-06; tests/test_http_rpc.py). The receiver gets its own,
# with the same URL, method, status, status text and headers, and the body moves: the sender's is
# used afterwards (reading it raises "Body has already been used..."), and a body already read
# cannot be sent (workerd's TypeError: "The ReadableStream has been locked to a reader."). A
# Response that carries a WebSocket cannot cross. Storage refuses all three (_codec.encode).

_LOCKED = "The ReadableStream has been locked to a reader."

_NOT_STORED = (
    "A Request, Response or Headers can be an RPC argument or result but not a stored value: "
    "store what you need of it, such as its URL, status, dict(headers) or await .text()"
)


_M = TypeVar("_M", bound=_Body)


def _message_for_rpc(source: _M) -> _M:
    """The receiver's copy of a ``Request`` or ``Response`` (a subclass's own fields too)."""
    if source._body is not None and source._body_used:
        raise TypeError(
            f"{_LOCKED} (This {type(source).__name__}'s body was already read; a body crosses RPC "
            "once, unread: send it before reading it, or send a clone().)"
        )
    if isinstance(source, Response) and source._web_socket is not None:
        raise DataCloneError(
            'Could not serialize object of type "WebSocket". This type does not support serialization.'
        )
    cls = type(source)
    # (The request an object got without the credentials of its URL arrives as a plain one: the
    # receiver has no more of its URL than workerd's has, measured: ``http://a/rpc``.)
    twin: _M = _new(Request if cls is _SentWithCredentials else cls)  # type: ignore[assignment]
    for klass in type(twin).__mro__:  # every slot: the URL, method, status... and a subclass's
        for slot in klass.__dict__.get("__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(source, slot):
                setattr(twin, slot, getattr(source, slot))
    if hasattr(source, "__dict__"):  # a user subclass's own attributes
        twin.__dict__.update(source.__dict__)
    twin.headers = source.headers.copy()
    twin._body_used = False  # the body moves: the sender's is marked used once the whole value is copied
    return twin


def _body_moved(source: _Body) -> None:
    if source._body is not None:
        source._body_used = True


register_transfer(Request, Transfer(_message_for_rpc, _NOT_STORED, _body_moved))
register_transfer(Response, Transfer(_message_for_rpc, _NOT_STORED, _body_moved))
register_transfer(Headers, Transfer(Headers.copy, _NOT_STORED))  # a copy: nothing moves


# -- for the package's stubs and compat layer (durable._stub, durable._blocking, compat) ---------

MAX_REDIRECTS: Final = 20
"""How many redirects ``stub.fetch`` follows; the next one raises ``Too many redirects.`` (workerd)."""

_ONE_TIME_BODY: Final = (
    "A request with a one-time-use body (it was initialized from a stream, not a buffer) encountered a "
    "redirect requiring the body to be retransmitted. To avoid this error in the future, construct this "
    "request from a buffer-like body initializer."
)


def follows_redirects(request: Request) -> bool:
    """Whether ``stub.fetch`` of ``request`` (from :func:`build_request`) follows redirects.

    The request then says ``redirect == "manual"``: what the object sees in workerd.
    """
    follow = request.redirect == "follow"
    request.redirect = "manual"
    return follow


_TEXT_PLAIN_ITEMS: Final = (("content-type", _TEXT_PLAIN),)
"""The caller's copy of the headers of ``Response(text)`` (see check_response)."""
_TEXT_PLAIN_LIST: Final = list(_TEXT_PLAIN_ITEMS)
"""What the headers of ``Response(text)`` hold (compared with, never changed)."""


def check_response(result: Any, request: Any = None) -> Response:  # (Any: the types are tested as ``type(x)``)
    """Check that a ``fetch`` handler returned a ``durable.Response`` (workerd's TypeError if not).

    The response's WebSocket end, if any, leaves the object now (workerd: when returned), if
    ``request`` (the request it answers, when known) asked for one with ``Upgrade: websocket``.
    Given the request, the response is also made what ``stub.fetch`` gives back (as
    :func:`fetched` does): its ``url``, and no body for a ``HEAD``. (Done here, on the object's
    side, rather than by the promise when it settles: with the fields set directly, no call
    to ``fetched`` nor to the ``web_socket`` property. conc-fetch 101,892 -> 100,890 and seq-fetch
    111,213 -> 110,153 instructions per fetch, callgrind, benchmarks/instructions.sh, bench_rpc.py.)

    Returns the response the caller gets: a copy, the body moved to it (the object's response
    then says ``body_used``), as workerd sends the response over HTTP.

    Raises:
        TypeError: the response's body was already read, or sent by an earlier fetch.
    """
    cls = type(result)
    if cls is not Response and not isinstance(result, Response):  # (the type first: a call less)
        raise TypeError(
            "Incorrect type for Promise: the Promise did not resolve to 'Response'. "
            f"(fetch() returned {type(result).__name__}; return a durable.Response)"
        )
    if result.status == 0:  # Response.error() (no other response has status 0)
        raise TypeError("Return value from serve handler must not be an error response (like Response.error())")
    if result._web_socket is not None:
        result._hand_over()
        if isinstance(request, Request) and not is_websocket_upgrade(request):
            # Raised to the caller, who never gets the end; the object's end stays open
            # (measured with miniflare 4, 2026-04-07: its getWebSockets() still lists it, OPEN).
            raise TypeError(NOT_AN_UPGRADE)
    body = result._body
    if body is not None:
        if result._body_used:
            # workerd (miniflare 4, 2026-04-07): an object returning a Response whose body it read,
            # or the same Response a second time (its body went to the first caller), makes
            # stub.fetch raise "TypeError: Body has already been used. ..." (workerd says tee()).
            raise TypeError(_BODY_USED)
        result._body_used = True  # the body leaves with the response, a HEAD's too (as in workerd)
    elif result.status not in _NULL_BODY_STATUSES:
        # Over HTTP a null body arrives as an empty one (measured with miniflare 4, 2026-04-07:
        # the caller's body is not null, reads as "" once, then "Body has already been used");
        # a HEAD's is dropped below (or by fetched()).
        body = b""
    # The caller gets a response of its own (workerd sends it over HTTP): the object's keeps its
    # headers, its url "", and sees its body used (measured: bodyUsed true, url "").
    # (Kept lean, each fetch runs it: the headers' tuple made at once, not a list then _freeze(),
    # and hasattr(result, "__dict__") asked of subclasses only, as a plain Response has none and
    # hasattr would raise and catch AttributeError: seq-fetch 116,475 -> 115,041 instructions, callgrind.)
    twin: Response = _new(cls)
    if cls is not Response and hasattr(result, "__dict__"):  # a user subclass's own attributes
        twin.__dict__.update(result.__dict__)  # (first: headers the subclass keeps there are the copy's)
    headers = result._headers
    if headers is _LAZY_TEXT_PLAIN or type(headers) is tuple:
        # Headers not made yet (Response(text)'s, or a response the object got from a fetch): the
        # caller's are made of the same pairs, immutable, at their first read (see _Body.headers).
        twin._headers = _TEXT_PLAIN_ITEMS if headers is _LAZY_TEXT_PLAIN else headers
    else:
        copied = _new(type(headers))
        items = headers._items
        # Immutable for the caller (workerd). The headers of Response(text), the common answer, are one
        # constant pair: the caller's get one shared tuple of it (a tuple is immutable), not a new one
        # per fetch (a tuple the garbage collector tracks while the response is held): part of
        # conc-fetch 86,095 -> 81,900 instructions (callgrind, thirteenth pass, with plain_fetch_request's).
        copied._items = _TEXT_PLAIN_ITEMS if items == _TEXT_PLAIN_LIST else tuple(items)
        twin._headers = copied
    twin._body = body
    twin._body_used = False
    twin.status = result.status
    twin._status_text = result._status_text
    twin._web_socket = result._web_socket
    sent = type(request)
    if sent is Request or isinstance(request, Request):  # (the type first: a call less)
        # (answered at the URL as sent: _SentWithCredentials's own)
        twin._url = request.url if sent is Request else sent_url(request)
        twin._redirected = False
        if request.method == "HEAD":
            twin._body = None
    elif hasattr(result, "_url"):
        twin._url, twin._redirected = result._url, result._redirected
    return twin


def fetched(response: Response, request: Request | str, redirected: bool = False) -> None:
    """``response`` is what ``stub.fetch`` of ``request`` gives back: its ``url`` is the
    request's and, as workerd sends no body in answer to ``HEAD``, a ``HEAD`` gets none.
    (``request`` may be only the URL of a ``GET``: see ``Stub.fetch``.)"""
    if isinstance(request, str):
        response._url = request
        response._redirected = redirected
        return
    response._url = sent_url(request)
    response._redirected = redirected
    if request.method == "HEAD" and response._body is not None and not response._body_used:
        response._body = None


def redirect_target(request: Request, response: Response) -> str | None:
    """Where a ``stub.fetch`` that follows redirects goes next after ``response``, or ``None``.

    As workerd does: statuses 301, 302, 303, 307 and 308 with a non-empty ``Location``, resolved
    against the request's URL (a relative one too), fragment dropped.

    Raises:
        TypeError: the ``Location`` is not a URL (``Invalid Location header; unable to follow
            redirect.``).
    """
    if response.status not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if not location:
        return None
    # (Against the URL as the caller sent it, credentials included: workerd, measured with miniflare 4,
    # 2026-04-07: "http://u:p@a.com/r" redirected to "/echo" answers with url "http://u:p@a.com/echo".)
    try:
        target = parse_url(urljoin(sent_url(request), location))
    except ValueError:  # urljoin's own refusal ("Invalid IPv6 URL")
        target = None
    if target is None:
        raise TypeError("Invalid Location header; unable to follow redirect.")
    return target.partition("#")[0]


def redirected_request(request: Request, status: int, url: str) -> Request:
    """The request ``stub.fetch`` sends to ``url`` after ``request`` was answered ``status``.

    As measured in workerd: 303 (but for ``HEAD``), and 301 or 302 after a ``POST``, turn it into
    a ``GET`` without body or framing headers (other headers, ``content-type`` too, are kept);
    otherwise the method, headers and body are sent again, which a streamed body cannot be.

    Raises:
        TypeError: a streamed body to send again (workerd's ``A request with a one-time-use
            body ...`` message).
    """
    method, body = request.method, request._body
    items = request.headers._items
    if (status == 303 and method not in ("GET", "HEAD")) or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        items = [(n, v) for n, v in items if n != "content-length" and n != "transfer-encoding"]
    elif body is not None and not isinstance(body, builtins.bytes):
        raise TypeError(_ONE_TIME_BODY)
    new = _new(Request)
    new.url = url
    new.method = method
    new.redirect = "manual"
    new.cf = request.cf
    headers = _new(Headers)
    headers._items = list(items)
    _freeze(headers)  # the object's request: immutable headers (workerd)
    new.headers = headers
    new._body = body
    new._body_used = False
    return without_credentials(new) if "@" in url else new


def held_body(message: Request | Response) -> bytes | AsyncIterable[bytes] | None:
    """``message``'s body as it is held, without reading it or marking it used.

    ``None`` (no body), ``bytes`` (buffered) or an async iterable (streamed, not yet read). The
    compat layer's ``clone()`` copies a buffered body this way; ``stub.fetch`` of a
    ``BlockingRuntime`` tells a streamed body from a buffered one.
    """
    return message._body


async def buffer_body(message: Request | Response) -> None:
    """Read a streamed, unread body into ``bytes``, so that another loop can read it later.

    The body stays unused: reading it afterwards gives the same bytes. A buffered, absent or
    used body is left as it is.

    Raises:
        TypeError: a streamed body yielded something other than bytes.
    """
    body = message._body
    if body is not None and not isinstance(body, builtins.bytes) and not message._body_used:
        data = await message.bytes()
        message._body = data
        message._body_used = False


def _messages(value: object) -> Iterator[Request | Response]:
    """The ``Request`` and ``Response`` objects in ``value``, through lists, tuples, dicts and sets."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, (Request, Response)):
            yield item
        elif isinstance(item, (list, tuple, dict, set, frozenset)) and id(item) not in seen:
            seen.add(id(item))  # (exact types only reach here: clone() refuses subclasses)
            stack.extend(item.values() if isinstance(item, dict) else item)


def has_streamed_body(value: object) -> bool:
    """Whether ``value`` holds a ``Request`` or ``Response`` whose streamed body :func:`buffer_bodies`
    would read (through lists, tuples, dicts and sets)."""
    for message in _messages(value):
        body = message._body
        if body is not None and not isinstance(body, builtins.bytes) and not message._body_used:
            return True
    return False


async def buffer_bodies(value: object) -> None:
    """:func:`buffer_body` for every ``Request`` and ``Response`` in ``value`` (an RPC argument
    or result about to cross to another event loop), through lists, tuples, dicts and sets."""
    for message in _messages(value):
        await buffer_body(message)
