"""``js.URL`` and ``js.URLSearchParams``: JavaScript's URL API, as Python Workers code reaches it.

``URL.new(request.url)`` (then ``.pathname``, ``.searchParams.get("q")``...) is how much
Python Workers code reads a request's URL. The parsing is `durable`'s WHATWG parser
(:func:`durable._url.parse_url`, what ``durable.Request`` uses); the attributes and the
``application/x-www-form-urlencoded`` reading and writing of the query are JavaScript's, as
measured in workerd (miniflare 4, compatibility date 2026-04-07). A ``URLSearchParams`` reads as
Pyodide proxies an object with ``get`` / ``has`` / ``size``: ``params["q"]`` is ``params.get("q")``,
``"q" in params`` is ``params.has("q")``, ``len(params)`` its size, iteration gives ``[name,
value]`` pairs. A missing value is ``jsnull`` (JavaScript's ``null``, falsy).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from durable._url import parse_url
from durable._util import unbuilt_safe_repr

from .pyodide.ffi import JsException, jsnull

__all__ = ["URL", "URLSearchParams"]

_INVALID = "Invalid URL string."
_BAD_HREF = "Failed to set the 'href' property on 'URL': the provided value is not of type 'valid URL string'."
_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp"})
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_USERINFO_KEPT = frozenset(map(chr, range(0x21, 0x7F))) - frozenset(' "#<>?`{}/:;=@[\\]^|')


def _userinfo(text: str) -> str:
    """A username or password as WHATWG's setters percent-encode it (the userinfo set)."""
    return "".join(c if c in _USERINFO_KEPT else urllib.parse.quote(c, safe="") for c in text)


def _resolve(url: Any, base: Any = None) -> str | None:
    url = str(url)
    if base is None:
        return parse_url(url)
    base_href = parse_url(str(base))
    if base_href is None:
        return None
    text = url.strip("".join(map(chr, range(0x21)))).translate(_TAB_OR_NEWLINE)
    base_scheme = base_href.partition(":")[0]
    special = base_scheme in _SPECIAL
    if special and text[: len(base_scheme) + 1].lower() == base_scheme + ":":
        rest = text[len(base_scheme) + 1 :]
        if not (rest[:1] in ("/", "\\") and rest[1:2] in ("/", "\\")):
            text = rest  # "http:foo" against an http base is relative (WHATWG's special-relative state)
    absolute = parse_url(text)
    if absolute is not None and urllib.parse.urlsplit(text).scheme:
        return absolute
    if not text:
        return base_href.partition("#")[0]  # the base without its fragment
    if special:  # a backslash is a slash before the query
        end = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
        text = text[:end].replace("\\", "/") + text[end:]
    return parse_url(urllib.parse.urljoin(base_href, text))


def _encode(text: str) -> str:
    """The application/x-www-form-urlencoded byte serializer (``*-._`` and alphanumerics kept)."""
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")  # lone surrogates: U+FFFD
    return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")


class URLSearchParams:
    """``js.URLSearchParams``: ``URLSearchParams.new("a=1&b=2")`` (or a dict, or pairs)."""

    __slots__ = ("_owner", "_pairs")

    _owner: URL | None
    _pairs: list[tuple[str, str]]

    def __init__(self, init: Any = "", owner: URL | None = None) -> None:
        self._owner = owner
        if isinstance(init, URLSearchParams):
            self._pairs = list(init._pairs)
        elif isinstance(init, Mapping):
            self._pairs = [(str(k), str(v)) for k, v in init.items()]
        elif isinstance(init, str) or init is None:
            text = (init or "").removeprefix("?")
            self._pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
        else:
            self._pairs = [(str(k), str(v)) for k, v in init]

    @staticmethod
    def new(init: Any = "", /) -> URLSearchParams:
        return URLSearchParams(init)

    def _changed(self) -> None:
        if self._owner is not None:
            self._owner.set_query(self.toString())

    def get(self, name: str) -> Any:
        """The first value of ``name``; ``jsnull`` when there is none."""
        return next((v for k, v in self._pairs if k == name), jsnull)

    def getAll(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def has(self, name: str, value: Any = None) -> bool:
        return any(k == name and (value is None or v == str(value)) for k, v in self._pairs)

    def set(self, name: str, value: Any) -> None:
        """Replace every value of ``name`` by one ``value`` (at the first one's place)."""
        value = str(value)
        index = next((i for i, (k, _) in enumerate(self._pairs) if k == name), None)
        if index is None:
            self._pairs.append((name, value))
        else:
            self._pairs[index] = (name, value)
            self._pairs[index + 1 :] = [(k, v) for k, v in self._pairs[index + 1 :] if k != name]
        self._changed()

    def append(self, name: str, value: Any) -> None:
        self._pairs.append((str(name), str(value)))
        self._changed()

    def delete(self, name: str, value: Any = None) -> None:
        self._pairs = [(k, v) for k, v in self._pairs if not (k == name and (value is None or v == str(value)))]
        self._changed()

    def sort(self) -> None:
        """Sort by name (UTF-16 code units, stable)."""
        self._pairs.sort(key=lambda pair: pair[0].encode("utf-16-be"))
        self._changed()

    @property
    def size(self) -> int:
        return len(self._pairs)

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def values(self) -> list[str]:
        return [v for _, v in self._pairs]

    def entries(self) -> list[list[str]]:
        return [[k, v] for k, v in self._pairs]

    def forEach(self, callback: Any) -> None:
        for k, v in list(self._pairs):
            callback(v, k, self)

    def toString(self) -> str:
        return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in self._pairs)

    __str__ = toString

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.entries())

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"URLSearchParams({self.toString()!r})"


class URL:
    """``js.URL``: ``URL.new(url)`` or ``URL.new(url, base)``.

    Raises:
        pyodide.ffi.JsException: ``TypeError: Invalid URL string.`` (workerd's message) for a
            URL that does not parse.
    """

    __slots__ = ("_href", "_params")

    _href: str
    _params: URLSearchParams | None

    def __init__(self, url: Any, base: Any = None) -> None:
        href = _resolve(url, base)
        if href is None:
            raise JsException("TypeError", _INVALID)
        self._href = href
        self._params = None

    @staticmethod
    def new(url: Any, base: Any = None, /) -> URL:
        return URL(url, base)

    @staticmethod
    def canParse(url: Any, base: Any = None, /) -> bool:
        return _resolve(url, base) is not None

    @staticmethod
    def parse(url: Any, base: Any = None, /) -> Any:
        """The URL, or ``jsnull`` when it does not parse."""
        href = _resolve(url, base)
        return jsnull if href is None else URL(href)

    # -- reading -----------------------------------------------------------------------------

    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self._href)

    def _authority(self) -> tuple[str, str, str, str]:
        """(username, password, hostname, port) of the serialized URL."""
        netloc = self._parts().netloc
        userinfo, _, hostport = netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        if hostport.startswith("["):
            end = hostport.find("]") + 1
            hostname, port = hostport[:end], hostport[end + 1 :]
        else:
            hostname, _, port = hostport.partition(":")
        return username, password, hostname, port

    @property
    def href(self) -> str:
        return self._href

    @href.setter
    def href(self, value: str) -> None:
        href = parse_url(str(value))
        if href is None:
            raise JsException("TypeError", _BAD_HREF)
        self._href = href
        self._sync_params()

    @property
    def protocol(self) -> str:
        return self._parts().scheme + ":"

    @protocol.setter
    def protocol(self, value: str) -> None:
        scheme, current = str(value).partition(":")[0].lower(), self._parts().scheme
        if (
            not _SCHEME.fullmatch(scheme)
            or (scheme in _SPECIAL) != (current in _SPECIAL)
            or "file" in (scheme, current)
        ):
            return  # WHATWG: a special scheme is not swapped for another kind (nor file: here)
        self._assign(scheme + self._href[len(current) :])

    @property
    def username(self) -> str:
        return self._authority()[0]

    @username.setter
    def username(self, value: str) -> None:
        if self._has_host():
            _, password, hostname, port = self._authority()
            self._set_authority(_userinfo(str(value)), password, hostname, port)

    @property
    def password(self) -> str:
        return self._authority()[1]

    @password.setter
    def password(self, value: str) -> None:
        if self._has_host():
            username, _, hostname, port = self._authority()
            self._set_authority(username, _userinfo(str(value)), hostname, port)

    @property
    def hostname(self) -> str:
        return self._authority()[2]

    @hostname.setter
    def hostname(self, value: str) -> None:
        hostname, port = self._host_input(str(value))
        if port is None:  # WHATWG: a ':' outside brackets leaves the hostname unchanged
            username, password, _, port = self._authority()
            self._set_host(username, password, hostname, port)

    @property
    def port(self) -> str:
        return self._authority()[3]

    @port.setter
    def port(self, value: Any) -> None:
        text = str(value)
        digits = re.match(r"[0-9]*", text).group()  # type: ignore[union-attr]  # (always matches)
        if self._has_host() and (digits or not text):  # "8080abc" is 8080; "abc" changes nothing
            username, password, hostname, _ = self._authority()
            self._set_authority(username, password, hostname, digits)

    @property
    def host(self) -> str:
        _, _, hostname, port = self._authority()
        return f"{hostname}:{port}" if port else hostname

    @host.setter
    def host(self, value: str) -> None:
        hostname, port_text = self._host_input(str(value))
        username, password, _, port = self._authority()
        digits = re.match(r"[0-9]*", port_text or "").group()  # type: ignore[union-attr]  # (always matches)
        self._set_host(username, password, hostname, digits or port)  # "h" / "h:" keep the port

    @property
    def origin(self) -> str:
        scheme = self._parts().scheme
        return f"{scheme}://{self.host}" if scheme in _SPECIAL else "null"

    @property
    def pathname(self) -> str:
        return self._parts().path

    @pathname.setter
    def pathname(self, value: str) -> None:
        if self._opaque():
            return
        path = str(value)
        if self._parts().scheme in _SPECIAL and not path.startswith("/"):
            path = "/" + path
        self._replace(path=path.replace("?", "%3F").replace("#", "%23"))

    @property
    def search(self) -> str:
        query = self._parts().query
        return f"?{query}" if query else ""

    @search.setter
    def search(self, value: str) -> None:
        text = str(value)  # "" removes the query; "?" leaves an empty one
        self._set_query(text.removeprefix("?").replace("#", "%23"), keep_empty=bool(text))

    @property
    def hash(self) -> str:
        fragment = self._parts().fragment
        return f"#{fragment}" if fragment else ""

    @hash.setter
    def hash(self, value: str) -> None:
        text = str(value)  # "" removes the fragment; "#" leaves an empty one
        base = self._href.partition("#")[0]
        self._assign(f"{base}#{text.removeprefix('#')}" if text else base)

    @property
    def searchParams(self) -> URLSearchParams:
        if self._params is None:
            self._params = URLSearchParams(self._parts().query, owner=self)
        return self._params

    def toString(self) -> str:
        return self._href

    toJSON = toString
    __str__ = toString

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"URL({self._href!r})"

    # -- writing -----------------------------------------------------------------------------

    def _assign(self, candidate: str) -> None:
        """Take ``candidate`` if it parses; a setter given a value that does not fit is ignored
        (JavaScript's URL setters never throw)."""
        href = parse_url(candidate)
        if href is not None:
            self._href = href
            self._sync_params()

    def _replace(self, **parts: str) -> None:
        base, sep, fragment = self._href.partition("#")
        self._assign(urllib.parse.urlsplit(base)._replace(**parts).geturl() + sep + fragment)

    def _set_authority(self, username: str, password: str, hostname: str, port: str) -> None:
        userinfo = f"{username}:{password}@" if password else f"{username}@" if username else ""
        self._replace(netloc=f"{userinfo}{hostname}{':' + port if port else ''}")

    def set_query(self, query: str) -> None:
        """Set the query (without ``?``; empty removes it). Used by :attr:`searchParams`."""
        self._set_query(query)

    def _set_query(self, query: str, keep_empty: bool = False) -> None:
        base, sep, fragment = self._href.partition("#")
        base = base.partition("?")[0]
        self._assign(f"{base}{'?' + query if query or keep_empty else ''}{sep}{fragment}")

    def _opaque(self) -> bool:
        """A URL such as ``mailto:a@b.c``: no ``/`` after the scheme, so no host, port or path
        to set (WHATWG's opaque path; those setters change nothing)."""
        return not self._href.partition(":")[2].startswith("/")

    def _has_host(self) -> bool:
        return not self._opaque() and bool(self._authority()[2]) and self._parts().scheme != "file"

    def _host_input(self, value: str) -> tuple[str, str | None]:
        """The host and the text after its ``:`` (``None`` without one) that a host setter reads:
        the value up to a ``/``, ``?`` or ``#`` (or ``\\`` for http and the like)."""
        stops = "/?#\\" if self._parts().scheme in _SPECIAL else "/?#"
        end = min((i for i in map(value.find, stops) if i >= 0), default=len(value))
        value = value[:end]
        close = value.find("]") if value.startswith("[") else -1
        colon = value.find(":", close + 1)
        return (value, None) if colon < 0 else (value[:colon], value[colon + 1 :])

    def _set_host(self, username: str, password: str, hostname: str, port: str) -> None:
        if self._opaque() or "@" in hostname or (not hostname and self._parts().scheme in _SPECIAL):
            return  # '@' is not a host's; an http URL's host may not be empty
        self._set_authority(username, password, hostname, port)

    def _sync_params(self) -> None:
        if self._params is not None:
            self._params._pairs = urllib.parse.parse_qsl(self._parts().query, keep_blank_values=True)
