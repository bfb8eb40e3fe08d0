"""URLs as workerd's ``Request`` and ``Response.redirect`` hold them: the WHATWG URL parser, in part.

:func:`parse_url` serializes an absolute URL as the WHATWG URL Standard (which workerd follows)
does, or returns ``None`` where that parser fails (``TypeError: Invalid URL: ...`` in workerd).
For the special schemes (``http``, ``https``, ``ws``, ``wss``, ``ftp``) it does what requests
meet: the scheme and host lower-cased, internationalized hosts in punycode, IPv4 hosts in any
notation written as four numbers, IPv6 hosts compressed, default ports dropped, ``.`` and ``..``
segments resolved, backslashes read as slashes, and the code points each part may not hold
percent-encoded (a space as ``%20``). Every case in ``tests/test_url.py`` was measured in workerd
(miniflare, 2026-12-06).

Not done in full: internationalized hosts get an approximation of UTS #46's mapping (NFKC and
case folding, the ideographic full stops as ``.``, the code points it ignores dropped, those it
disallows refused) before punycode, which gives workerd's host for every single code point that
Python's Unicode database knows, but has no bidi or CONTEXTO check; ``file:`` URLs and other
schemes are kept as given, once checked for a host workerd would refuse. Layer 0: the standard library only.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Final

__all__ = ["parse_url"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
"""The special schemes (``file`` aside) and their default ports."""

_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_C0_OR_SPACE: Final = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE: Final = str.maketrans("", "", "\t\n\r")

# Percent-encode sets (WHATWG URL, 1.3): each includes the C0 controls and everything above "~".
_FRAGMENT_SET: Final = frozenset(' "<>`')
_QUERY_SET: Final = frozenset(' "#<>')
_SPECIAL_QUERY_SET: Final = _QUERY_SET | {"'"}
_PATH_SET: Final = _QUERY_SET | frozenset("?^`{}")
_USERINFO_SET: Final = _PATH_SET | frozenset("/:;=@[\\]|")

_FORBIDDEN_HOST: Final = frozenset("\0\t\n\r #/:<>?@[\\]^|")
_FORBIDDEN_DOMAIN: Final = _FORBIDDEN_HOST | frozenset(map(chr, range(0x20))) | {"%", "\x7f"}
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS: Final = frozenset("01234567")
_DECIMAL_DIGITS: Final = frozenset("0123456789")
_SINGLE_DOT: Final = frozenset({".", "%2e"})
_DOUBLE_DOT: Final = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})
_PERCENT_BYTE: Final = re.compile(rb"%([0-9A-Fa-f]{2})")


def parse_url(url: str) -> str | None:
    """``url`` serialized as workerd's URL parser does, or ``None`` if that parser refuses it.

    A relative URL (no scheme) is refused: there is no base to resolve it against.
    """
    text = url.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE)
    match = _SCHEME.match(text)
    if match is None:
        return None
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    default_port = _DEFAULT_PORTS.get(scheme, -1)
    if default_port == -1:
        return _other_scheme(scheme, rest)
    # Special schemes: any run of slashes (either kind) leads to the authority.
    rest = rest.lstrip("/\\")
    end = len(rest)
    for i, char in enumerate(rest):
        if char in "/\\?#":
            end = i
            break
    authority, rest = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    credentials = _credentials(userinfo) if at else ""
    host_port = _host_and_port(hostport, default_port)
    if host_port is None:
        return None
    path, query, fragment = _split_tail(rest)
    return f"{scheme}://{credentials}{host_port}{_path(path)}{query}{fragment}"


def _split_tail(rest: str) -> tuple[str, str, str]:
    """The path, ``?query`` (encoded) and ``#fragment`` (encoded) of what follows the authority."""
    fragment = ""
    hash_at = rest.find("#")
    if hash_at >= 0:
        fragment = "#" + _encode(rest[hash_at + 1 :], _FRAGMENT_SET)
        rest = rest[:hash_at]
    query = ""
    question = rest.find("?")
    if question >= 0:
        query = "?" + _encode(rest[question + 1 :], _SPECIAL_QUERY_SET)
        rest = rest[:question]
    return rest, query, fragment


def _path(path: str) -> str:
    """A special URL's path: dot segments resolved, each segment percent-encoded; at least ``/``."""
    if not path:
        return "/"
    segments = re.split(r"[/\\]", path)[1:]  # the path starts with a slash of either kind
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        lowered = segment.lower()
        if lowered in _DOUBLE_DOT:
            if out:
                out.pop()
            if i == last:
                out.append("")
        elif lowered in _SINGLE_DOT:
            if i == last:
                out.append("")
        else:
            out.append(_encode(segment, _PATH_SET))
    return "/" + "/".join(out)


def _credentials(userinfo: str) -> str:
    """``user:password@`` percent-encoded, or ``""`` when both are empty."""
    user, _, password = userinfo.partition(":")
    user, password = _encode(user, _USERINFO_SET), _encode(password, _USERINFO_SET)
    if not user and not password:
        return ""
    return f"{user}:{password}@" if password else f"{user}@"


def _host_and_port(hostport: str, default_port: int) -> str | None:
    """``host[:port]`` serialized, the default port dropped; ``None`` if either is invalid."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            return None
        host = _ipv6(hostport[1:close])
        after = hostport[close + 1 :]
        if after and not after.startswith(":"):
            return None
        port_text = after[1:] if after else ""
    else:
        raw_host, _, port_text = hostport.partition(":")
        host = _domain(raw_host)
    if host is None:
        return None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit():
            return None
        port = int(port_text)
        if port > 65535:
            return None
        if port != default_port:
            return f"{host}:{port}"
    return host


def _ipv6(text: str) -> str | None:
    if "%" in text:  # a zone id: not in URLs
        return None
    try:
        packed = ipaddress.IPv6Address(text).packed
    except ValueError:
        return None
    # WHATWG's serializer (not ipaddress's, which writes an IPv4-mapped address with dots on
    # Python 3.13): eight hex pieces, the first longest run of two or more zeros as "::".
    pieces = [packed[i] << 8 | packed[i + 1] for i in range(0, 16, 2)]
    best, best_len, run_start, run_len = -1, 1, -1, 0
    for i, piece in enumerate(pieces):
        if piece == 0:
            if run_len == 0:
                run_start = i
            run_len += 1
            if run_len > best_len:
                best, best_len = run_start, run_len
        else:
            run_len = 0
    if best < 0:
        return "[" + ":".join(f"{p:x}" for p in pieces) + "]"
    head = ":".join(f"{p:x}" for p in pieces[:best])
    tail = ":".join(f"{p:x}" for p in pieces[best + best_len :])
    return f"[{head}::{tail}]"


def _domain(raw: str) -> str | None:
    """A special URL's host: percent-decoded, lower-cased, punycode; an IPv4 address if it ends
    in a number; ``None`` for an empty host or one with a forbidden code point."""
    if not raw:
        return None
    decoded = _percent_decode(raw)
    if decoded is None:
        return None
    lowered = decoded.lower()
    if not lowered.isascii():
        mapped = _uts46_map(lowered)
        if mapped is None:
            return None
        lowered = mapped
    labels = []
    for label in lowered.split("."):
        if not label.isascii():
            # UTS #46 (non-transitional, as workerd): lower-cased, NFC, punycode; ß stays ß.
            label = unicodedata.normalize("NFC", label)
            if label.startswith("xn--") or not _valid_unicode_label(label):
                # (An "xn--" label is punycode already: one holding a non-ASCII code point is
                # invalid, as workerd measures it: "http://xn--ab\u00e9/" is an invalid URL.)
                return None
            try:
                label = "xn--" + label.encode("punycode").decode("ascii")
            except UnicodeError:
                return None
        elif label.startswith("xn--") and not _valid_punycode(label[4:]):
            return None
        labels.append(label)
    ascii_host = ".".join(labels)
    if any(char in _FORBIDDEN_DOMAIN for char in ascii_host) or not ascii_host:
        return None
    if _ends_in_a_number(ascii_host):
        return _ipv4(ascii_host)
    return ascii_host


def _valid_punycode(encoded: str) -> bool:
    """Whether an ``xn--`` label's rest is one UTS #46 accepts, approximately: it decodes, to a
    label holding a non-ASCII code point, in NFC, that UTS #46 would leave as it is, and without
    control, format, private-use or unassigned code points. Measured with miniflare 4,
    2026-04-07: ``xn--a`` (U+0080), ``xn--`` (empty), ``xn--abc-`` (ASCII only), ``xn--1ug``
    (U+200D), ``xn--a-ecp`` (U+2488, which UTS #46 maps) and ``xn--caf-yvc`` (an unassigned code
    point) make ``Invalid URL``; ``xn--ls8h``, ``xn--zca``, ``xn--hello`` are kept."""
    try:
        decoded = encoded.encode("ascii").decode("punycode")
    except (UnicodeError, IndexError):
        return False  # punycode Python cannot decode, which workerd refuses too
    if decoded.isascii() or not unicodedata.is_normalized("NFC", decoded):
        return False
    return _valid_unicode_label(decoded) and _uts46_map(decoded) == decoded


def _valid_unicode_label(label: str) -> bool:
    """UTS #46's checks of a mapped label, approximately: no control, format (U+200C and U+200D
    included), private-use or unassigned code point, no U+FFFD, and no combining mark first.
    Measured with miniflare 4, 2026-04-07: ``http://a\u200db.com/``, ``http://\u0301a.com/``,
    ``http://a\ue000.com/``, ``http://a\u0378.com/`` and ``http://\ufffd.com/`` are invalid URLs.
    (The bidi and CONTEXTO rules are not checked.)"""
    if not label:
        return True
    if unicodedata.category(label[0])[0] == "M":
        return False
    return not any(unicodedata.category(char)[0] == "C" or char == "\ufffd" for char in label)


_IGNORED: Final = dict.fromkeys(
    [
        *(0xAD, 0x34F, 0x180B, 0x180C, 0x180D, 0x180E, 0x180F, 0x200B, 0x2060, 0xFEFF),
        *(0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0),  # Hangul fillers, Khmer inherent vowels
        *range(0x2061, 0x2065),  # invisible operators
        *range(0x206A, 0x2070),  # deprecated format characters
        *range(0x1D173, 0x1D17B),  # musical beams, ties, slurs and phrases
        *range(0xFE00, 0xFE10),
        *range(0x1BCA0, 0x1BCA4),
        *range(0xE0100, 0xE01F0),
    ]
)
"""Code points UTS #46 maps to nothing (soft hyphen, zero-width space, variation selectors, Hangul
fillers...). Measured with miniflare 4, 2026-12-07, over every code point ``c`` above U+007F:
``new Request("http://a<c>b/").url`` is ``http://ab/`` for each of these."""
_FULL_STOPS: Final = str.maketrans({"\u3002": ".", "\uff61": "."})
_DEVIATIONS: Final = frozenset("\u00df\u03c2")
"""ß and ς, which non-transitional UTS #46 keeps (case folding would make them ``ss`` and sigma)."""
_DISALLOWED: Final = frozenset(map(chr, [0x1680, 0x2028, 0x2029, 0xFE12, 0xFFFC, *range(0x2FF0, 0x2FFC)]))
"""Code points UTS #46 disallows that NFKC keeps: the Ogham space mark, the line and paragraph
separators, the vertical ideographic full stop, the object replacement character and the
ideographic description characters (measured as ``_IGNORED``: an invalid URL for each). Those
whose NFKC form holds a ``.`` (U+2024 one dot leader, U+2488 digit one full stop, U+33C2 square
a.m., U+FE52 small full stop...) are disallowed too: :func:`_uts46_map` refuses them."""


def _uts46_map(host: str) -> str | None:
    """A lower-cased, non-ASCII host as UTS #46 maps it, approximately, or ``None`` if it holds a
    code point UTS #46 disallows: the ignored code points dropped, each other one as NFKC and case
    folding make it (full-width ``ABC`` is ``abc``, U+2168 (Roman numeral nine) is ``ix``, Cherokee
    small letters are the capitals, U+0345 is iota), U+3002, U+FF0E and U+FF61 (full stops) as
    ``.``. Measured with miniflare 4, 2026-04-07:
    ``new Request("http://\uff21\uff22\uff23\u3002de/").url`` is ``http://abc.de/``;
    ``ß``, ``ς`` stay (non-transitional). The labels are put in NFC afterwards (``_domain``)."""
    host = host.translate(_IGNORED).translate(_FULL_STOPS)
    mapped = []
    for char in host:
        if char.isascii() or char in _DEVIATIONS:
            mapped.append(char)
            continue
        if char in _DISALLOWED:
            return None
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", char).casefold())
        if "." in folded and folded != ".":
            return None  # U+2488 "1." and the like (measured: invalid URLs)
        if folded == "." and char != "\uff0e":
            return None  # U+2024 one dot leader, U+FE52 small full stop (measured: invalid URLs)
        mapped.append(folded)
    return "".join(mapped)


def _percent_decode(text: str) -> str | None:
    if "%" not in text:
        return text
    raw = _PERCENT_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _ends_in_a_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return bool(last) and (last.isdigit() or _ipv4_number(last) is not None)


def _ipv4_number(part: str) -> int | None:
    if not part:
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if not part:
        return 0
    digits = _HEX_DIGITS if base == 16 else _OCTAL_DIGITS if base == 8 else _DECIMAL_DIGITS
    if not set(part) <= digits:
        return None  # (int() would also take "0x", "0o", "_"... which WHATWG does not)
    return int(part, base)


def _ipv4(host: str) -> str | None:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        return None
    numbers = []
    for part in parts:
        number = _ipv4_number(part)
        if number is None:
            return None
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    address = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        address += n * 256 ** (3 - i)
    return ".".join(str((address >> shift) & 255) for shift in (24, 16, 8, 0))


def _encode(text: str, encode_set: frozenset[str]) -> str:
    """``text`` with the code points of ``encode_set``, the C0 controls and all above ``~``
    percent-encoded as UTF-8 (``%`` itself and what is already encoded are kept)."""
    if text.isascii() and text.isprintable() and not any(char in encode_set for char in text):
        return text  # the common case: nothing to encode
    out = []
    for char in text:
        if char in encode_set or not (" " <= char <= "~"):
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
        else:
            out.append(char)
    return "".join(out)


def _other_scheme(scheme: str, rest: str) -> str | None:
    """A URL of another scheme (``mailto:``, ``data:``, ``foo://...``): refused only if its host
    would be; otherwise kept as given (after the scheme is lower-cased)."""
    if rest.startswith("//"):
        authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
        host = authority.rpartition("@")[2]
        if not host.startswith("["):
            host = host.partition(":")[0]
            if any(char in _FORBIDDEN_HOST for char in host):
                return None
    return f"{scheme}:{rest}"
