"""Edge cases of API.md section 5 (HTTP) found by comparing durable with workerd.

Each expected value was measured with miniflare 4 (compatibility date 2026-04-07, 2026-12-07):
``new Request("http://a" + c + "b/").url`` for every code point ``c`` from U+0080 to U+2FFFF (or
``None`` where it raised ``TypeError: Invalid URL: ...``); ``Response.redirect(url)`` gave the
same URL as its ``Location`` (or raised ``TypeError: Unable to parse URL: ...``).
"""

from __future__ import annotations

from typing import Any

import pytest

import durable

from helpers import http_scope

# UTS #46 maps a code point with NFKC and case folding, not with lower case alone: Cherokee small
# letters fold to the capitals, U+0345 to iota, the lunate sigma to sigma, a capital with
# prosgegrammeni to its letter and iota. The deviations ß and ς stay as they are.
FOLDED: list[tuple[str, str]] = [
    ("\u13f8", "http://xn--ab-tgm/"),  # Cherokee small letter ye
    ("\uab70", "http://xn--ab-y8l/"),  # Cherokee small letter a (as U+13A0, the capital)
    ("\u13a0", "http://xn--ab-y8l/"),  # Cherokee letter a
    ("\u0345", "http://xn--ab-09b/"),  # combining Greek ypogegrammeni: iota
    ("\u03f2", "http://xn--ab-vbc/"),  # Greek lunate sigma symbol: sigma (as U+03A3)
    ("\u03a3", "http://xn--ab-vbc/"),
    ("\u1f88", "http://xn--ab-09b540z/"),  # alpha with psili and prosgegrammeni
    ("\u00df", "http://xn--ab-gia/"),  # ß kept
    ("\u1e9e", "http://xn--ab-gia/"),  # capital sharp s: ß
    ("\u03c2", "http://xn--ab-sbc/"),  # final sigma kept
    ("\ufb01", "http://afib/"),  # the fi ligature
    ("\u0130", "http://xn--aib-9dc/"),  # capital I with dot above
    ("\uff0e", "http://a.b/"),  # the full-width full stop separates labels
]

# Code points UTS #46 ignores: the URL is as if they were not there.
IGNORED = ["\u3164", "\u115f", "\u1160", "\uffa0", "\u17b4", "\u17b5", "\u180e", "\u2061", "\u206a", "\U0001d173"]

# Code points UTS #46 disallows (NFKC keeps them, or makes a "." of them): an invalid URL.
DISALLOWED = [
    "\u2024",  # one dot leader (NFKC: ".")
    "\ufe52",  # small full stop (NFKC: ".")
    "\u2488",  # digit one full stop ("1.")
    "\u33c2",  # square a.m.
    "\U0001f100",  # digit zero full stop
    "\u1680",  # Ogham space mark
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\u2ff0",  # ideographic description character
    "\ufe12",  # vertical ideographic full stop
    "\ufffc",  # object replacement character
]


@pytest.mark.parametrize(("char", "expected"), FOLDED)
def test_a_host_is_case_folded_as_uts46_maps_it(char: str, expected: str) -> None:
    """Before: lower case only, so Cherokee, U+0345, U+03F2 and U+1F88 were punycode of other text."""
    url = f"http://a{char}b/"
    assert durable.Request(url).url == expected
    assert durable.Response.redirect(url).headers["location"] == expected


@pytest.mark.parametrize("char", IGNORED)
def test_code_points_uts46_ignores_are_dropped(char: str) -> None:
    """Before: the Hangul fillers and Khmer inherent vowels were kept (punycode), the invisible
    operators and musical beams refused as format characters."""
    assert durable.Request(f"http://a{char}b/").url == "http://ab/"


@pytest.mark.parametrize("char", DISALLOWED)
def test_code_points_uts46_disallows_make_an_invalid_url(char: str) -> None:
    """Before: U+2024 gave ``http://a.b/``, U+2488 ``http://a1.b/``, U+1680 punycode..."""
    url = f"http://a{char}b/"
    with pytest.raises(TypeError, match=r"^Invalid URL: "):
        durable.Request(url)
    with pytest.raises(TypeError, match=r"^Unable to parse URL: "):
        durable.Response.redirect(url)


def test_an_xn_label_with_a_non_ascii_code_point_is_invalid() -> None:
    """workerd: ``new Request("http://xn--ab\\u00e9/")`` raises ``TypeError: Invalid URL``; durable
    gave ``http://xn--xn--ab-gva/`` (the label encoded as punycode a second time)."""
    with pytest.raises(TypeError, match=r"^Invalid URL: "):
        durable.Request("http://xn--ab\u00e9/")
    with pytest.raises(TypeError, match=r"^Invalid URL: "):
        durable.Request("http://a.XN--\u00e9.com/")
    assert durable.Request("http://xn--ab-gia.com/").url == "http://xn--ab-gia.com/"  # punycode as such is kept


class _Runtime:
    env = None


async def _serve(worker: type[durable.WorkerEntrypoint], host: bytes = b"h") -> list[dict[str, Any]]:
    """The ASGI messages ``asgi_app(worker)`` sends for ``GET /`` with ``Host: host``."""
    sent: list[dict[str, Any]] = []
    scope = http_scope(headers=[(b"host", host)])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await durable.asgi_app(worker, _Runtime())(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def _served_url(host: bytes) -> tuple[int, str]:
    """The status and the ``request.url`` that ``asgi_app`` gives a Worker for ``Host: host``."""

    class Echo(durable.WorkerEntrypoint):
        async def fetch(self, request: durable.Request) -> durable.Response:
            return durable.Response(request.url)

    sent = await _serve(Echo, host)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), body.decode()


@pytest.mark.parametrize(
    ("host", "expected"),
    [(b"h:", "http://h/"), (b"H:", "http://h/"), (b"[::1]:", "http://[::1]/"), (b"h:080", "http://h/")],
)
async def test_a_host_header_with_an_empty_port_is_served(host: bytes, expected: str) -> None:
    """workerd (miniflare 4, 2026-12-07, raw HTTP/1.1 with ``Host: h:``) serves it as ``http://h/``;
    durable answered ``400 Bad Request: invalid Host header``."""
    assert await _served_url(host) == (200, expected)


async def test_hop_by_hop_headers_a_worker_gives_are_dropped() -> None:
    """workerd (miniflare 4, 2026-12-07, a Worker answering ``new Response("abc", {headers})`` over
    raw HTTP/1.1) drops a Worker's Connection, Keep-Alive, Upgrade, Trailer and TE, and keeps
    Proxy-Connection, Alt-Svc and Via; durable sent them all."""
    given = ["Connection", "Keep-Alive", "Upgrade", "Trailer", "TE", "Proxy-Connection", "Alt-Svc", "Via"]

    class Hops(durable.WorkerEntrypoint):
        async def fetch(self, request: durable.Request) -> durable.Response:
            return durable.Response("abc", headers=[(name, "v1") for name in given])

    start = (await _serve(Hops))[0]
    assert start["status"] == 200
    names = sorted(name for name, _ in start["headers"])
    assert names == [b"alt-svc", b"content-length", b"content-type", b"proxy-connection", b"via"]
