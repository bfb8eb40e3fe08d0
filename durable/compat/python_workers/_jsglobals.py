"""JavaScript globals that Python Workers code reaches through ``js`` and that need no JavaScript
heap: ``crypto.randomUUID`` / ``getRandomValues``, ``Math``, ``TextEncoder`` / ``TextDecoder``,
``Uint8Array`` / ``ArrayBuffer``, ``Array``, ``Error`` (``TypeError``, ``RangeError``), ``btoa`` /
``atob`` and ``encodeURIComponent`` / ``decodeURIComponent`` / ``encodeURI`` / ``decodeURI``.

Results are what Pyodide hands Python for the JavaScript value: a number with an integral value in
the safe range is an ``int`` (``Math.floor(2.5)`` is ``2``), a typed array is the ``Uint8Array``
stand-in of :mod:`pyodide.ffi`, an array is a ``list``, and a thrown error is a
``pyodide.ffi.JsException`` with workerd's name and message (measured, miniflare 4, compatibility
date 2026-04-07; the texts are quoted where they are raised).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import random
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ._convert import JsDate, JsList, JsMapDict, JsObject, js_key
from .pyodide.ffi import ArrayBuffer as _ArrayBuffer
from .pyodide.ffi import JsException
from .pyodide.ffi import Uint8Array as _Uint8Array

__all__ = [
    "ERRORS",
    "Array",
    "ArrayBuffer",
    "Math",
    "PartlyEmulated",
    "TextDecoder",
    "TextEncoder",
    "Uint8Array",
    "atob",
    "btoa",
    "crypto",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "isFinite",
    "isNaN",
    "parseFloat",
    "parseInt",
    "structuredClone",
]

_SAFE = 2**53 - 1


def js_number(value: float) -> int | float:
    """A JavaScript number as Pyodide converts it: an ``int`` when integral and safe, else a ``float``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) <= _SAFE:
        return int(value)  # -0 too: Number.isSafeInteger(-0) holds
    return value


# JavaScript's white space and line terminators, which Number(), parseInt and trim() skip: not
# Python's str.isspace set, which adds \x1c-\x1f and \x85 and lacks the byte order mark \ufeff
# (measured, node: parseInt("\ufeff42") is 42, parseInt("\x8542") NaN).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}
_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 8: re.compile(r"[0-7]+"), 2: re.compile(r"[01]+")}


def _string_to_number(text: str) -> float:
    """JavaScript's ``Number(text)``: decimal (``Infinity``, not Python's ``inf``, no ``_``) or
    unsigned ``0x`` / ``0o`` / ``0b``; surrounding whitespace ignored, ``""`` is 0, else ``NaN``."""
    text = text.strip(_JS_SPACE)
    if not text:
        return 0.0
    radix = _RADIX.get(text[:2])
    if radix is not None:
        return float(int(text[2:], radix)) if _DIGITS[radix].fullmatch(text[2:]) else math.nan
    return float(text.replace("Infinity", "inf")) if _DECIMAL.fullmatch(text) else math.nan


def _float(value: Any) -> float:
    """JavaScript's ``ToNumber`` for the values Python code passes (numbers, booleans, ``None``
    (``undefined``: ``NaN``), strings)."""
    if value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _string_to_number(value)
    raise TypeError(f"js.Math takes numbers, not {type(value).__name__}")


def _text(value: Any) -> str:
    """JavaScript's ``String(value)`` for what a Python Worker passes: ``None`` is ``undefined`` (Pyodide
    converts ``None`` to ``undefined``), a number or boolean its JavaScript text."""
    if value is None:
        return "undefined"
    text = js_key(value)
    if not isinstance(text, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return text


def _to_index(value: Any) -> int | None:
    """JavaScript's ``ToIndex`` of a length: truncated (``1.5`` -> 1, ``NaN`` -> 0); ``None`` when
    out of range (negative, infinite, past 2**53 - 1)."""
    number = _float(value)
    if math.isnan(number):
        return 0
    if not math.isfinite(number) or number <= -1 or number > _SAFE:
        return None
    return int(number)


def _buffer(value: Any, where: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{where} takes a Uint8Array, an ArrayBuffer or bytes, not {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# crypto


_INTEGER_FORMATS = frozenset("bBhHiIlLqQnN")
"""The ``memoryview`` formats of JavaScript's integer-typed arrays (``getRandomValues`` refuses a
``Float32Array``, ``Float64Array`` or ``DataView``)."""


class PartlyEmulated:
    """A JavaScript global of which `durable` emulates some members (a subclass's): reading any
    other raises ``NotImplementedError`` naming it, as ``js``'s globals that are not emulated do."""

    __slots__ = ()
    path = ""
    """The global's name as JavaScript code reads it (``"js.crypto"``)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from .js import _NotEmulated

        return getattr(_NotEmulated(self.path), name)

    def __repr__(self) -> str:
        return f"<{self.path}>"


class _Crypto(PartlyEmulated):
    """``js.crypto``: ``randomUUID()``, ``getRandomValues(array)``, ``subtle.digest()``."""

    __slots__ = ()
    path = "js.crypto"

    @staticmethod
    def randomUUID() -> str:
        """A random (version 4) UUID, lower-case with dashes, as workerd's."""
        return str(uuid.uuid4())

    @staticmethod
    def getRandomValues(array: Any) -> Any:
        """``array`` filled with random bytes, returned.

        A mutable buffer (``bytearray``, a writable ``memoryview``) is filled in place; the
        ``Uint8Array`` stand-in (immutable ``bytes``) cannot be, so a new one of the same length
        is returned: use the return value, ``crypto.getRandomValues(Uint8Array.new(16))``.

        Raises:
            pyodide.ffi.JsException: ``QuotaExceededError`` over 65,536 bytes, with workerd's
                message; ``TypeMismatchError`` for anything but bytes or a view of integers.
        """
        if not isinstance(array, (bytes, bytearray, memoryview)) or (
            isinstance(array, memoryview) and array.format.lstrip("@=<>!") not in _INTEGER_FORMATS
        ):
            raise JsException(
                "TypeMismatchError", "ArrayBufferView argument to getRandomValues() must be an integer-typed view."
            )
        size = memoryview(array).nbytes
        if size > 65536:
            raise JsException(
                "QuotaExceededError",
                f"getRandomValues() only accepts buffers of size <= 64K but provided {size} bytes.",
            )
        data = secrets.token_bytes(size)
        if isinstance(array, bytearray) or (isinstance(array, memoryview) and not array.readonly):
            memoryview(array).cast("B")[:] = data
            return array
        return _Uint8Array(data)

    @property
    def subtle(self) -> Any:
        """``crypto.subtle``: ``digest`` only; any other method raises ``NotImplementedError``
        naming it (use ``hashlib``, ``hmac``)."""
        return _SUBTLE


crypto = _Crypto()

_DIGESTS = {"sha-1": "sha1", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512", "md5": "md5"}


class _Subtle(PartlyEmulated):
    """``js.crypto.subtle``: ``digest``; the rest is not emulated."""

    __slots__ = ()
    path = "js.crypto.subtle"

    @staticmethod
    def digest(algorithm: Any, data: Any, /) -> Any:
        """A ``Promise`` of the digest of ``data`` (bytes, a ``Uint8Array``, an ``ArrayBuffer``), an
        ``ArrayBuffer``: ``bytes(await crypto.subtle.digest("SHA-256", data))``. ``algorithm`` is
        ``"SHA-1"``, ``"SHA-256"``, ``"SHA-384"``, ``"SHA-512"`` or ``"MD5"`` (any case, as workerd
        takes them), or a dict with that ``name``.

        Rejects (measured, workerd): an unknown algorithm with ``NotSupportedError: Unrecognized or
        unimplemented digest algorithm requested.``; a string as ``data`` with workerd's ``TypeError``.
        """
        from ._jsasync import Promise

        name = algorithm.get("name") if isinstance(algorithm, Mapping) else algorithm
        method = _DIGESTS.get(name.lower()) if isinstance(name, str) else None
        if method is None:
            return Promise.reject(
                JsException("NotSupportedError", "Unrecognized or unimplemented digest algorithm requested.")
            )
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return Promise.reject(
                JsException(
                    "TypeError", "Failed to execute 'digest' on 'SubtleCrypto': parameter 2 is not of type 'Array'."
                )
            )
        return Promise.resolve(_ArrayBuffer(hashlib.new(method, memoryview(data).cast("B")).digest()))


_SUBTLE = _Subtle()


def structuredClone(value: Any, options: Any = None, /) -> Any:
    """A deep copy of ``value``, as JavaScript's ``structuredClone``: objects (dicts) come back as
    ``JsObject``, arrays (lists, tuples) as arrays (``JsList``), binary data as a ``Uint8Array``
    (an ``ArrayBuffer`` stays one), a ``Date`` as a ``Date``; shared and circular references are
    kept. Python values are taken as ``to_js`` would give them (under `durable` it is an identity).

    Raises:
        pyodide.ffi.JsException: ``DataCloneError: ... could not be cloned.`` for a function or
            any other value structured clone refuses (workerd's message names the value).
    """
    return _clone(value, {})


def _clone(value: Any, memo: dict[int, Any]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    seen = memo.get(id(value))
    if seen is not None:
        return seen
    copy: Any
    if isinstance(value, JsMapDict):  # a Map (to_js of a dict) clones to a Map, keys as they are
        copy = memo[id(value)] = JsMapDict()
        for key, item in value.items():
            copy[key] = _clone(item, memo)
    elif isinstance(value, Mapping):
        copy = memo[id(value)] = JsObject()
        for key, item in value.items():
            copy[str(js_key(key))] = _clone(item, memo)
    elif isinstance(value, (list, tuple)):
        copy = memo[id(value)] = JsList()
        copy.extend(_clone(item, memo) for item in value)
    elif isinstance(value, _ArrayBuffer) and not isinstance(value, _Uint8Array):
        copy = _ArrayBuffer(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        copy = _Uint8Array(value)
    elif isinstance(value, JsDate):
        copy = JsDate(value.getTime())
    else:
        raise JsException("DataCloneError", f"{value!r} could not be cloned.")
    memo[id(value)] = copy
    return copy


# ---------------------------------------------------------------------------------------------
# Math


def _unary(func: Any) -> Any:
    def call(x: Any = None) -> int | float:
        value = _float(x)
        if math.isnan(value):
            return math.nan
        try:
            return js_number(func(value))
        except (ValueError, OverflowError):
            return math.nan

    return staticmethod(call)


def _round(x: float) -> float:
    """JavaScript's ``Math.round``: halves go up (``2.5`` -> 3, ``-2.5`` -> -2, and
    ``0.49999999999999994`` -> 0, where ``floor(x + 0.5)`` would give 1)."""
    if not math.isfinite(x):
        return x
    low = math.floor(x)
    return float(low + 1) if x - low >= 0.5 else float(low)


def _integral(func: Any) -> Any:
    def call(x: float) -> float:
        return x if not math.isfinite(x) else float(func(x))

    return call


class Math:
    """``js.Math``: the constants and functions of JavaScript's ``Math``, with its rules
    (``round`` takes halves up, ``max()`` is ``-Infinity``, a ``NaN`` argument gives ``NaN``)."""

    PI = math.pi
    E = math.e
    LN2 = math.log(2)
    LN10 = math.log(10)
    LOG2E = 1 / math.log(2)
    LOG10E = 1 / math.log(10)
    SQRT2 = math.sqrt(2)
    SQRT1_2 = math.sqrt(0.5)

    floor = _unary(_integral(math.floor))
    ceil = _unary(_integral(math.ceil))
    trunc = _unary(_integral(math.trunc))
    round = _unary(_round)
    abs = _unary(abs)
    sqrt = _unary(math.sqrt)
    cbrt = _unary(lambda x: math.copysign(abs(x) ** (1 / 3), x))
    exp = _unary(lambda x: math.exp(x) if x < 710 else math.inf)  # math.exp overflows; JavaScript gives Infinity
    log = _unary(lambda x: -math.inf if x == 0 else math.log(x))
    log2 = _unary(lambda x: -math.inf if x == 0 else math.log2(x))
    log10 = _unary(lambda x: -math.inf if x == 0 else math.log10(x))
    sin = _unary(math.sin)
    cos = _unary(math.cos)
    tan = _unary(math.tan)
    asin = _unary(math.asin)
    acos = _unary(math.acos)
    atan = _unary(math.atan)
    sign = _unary(lambda x: x if x == 0 else math.copysign(1.0, x))

    @staticmethod
    def random() -> float:
        """A float in [0, 1)."""
        return random.random()

    @staticmethod
    def max(*values: Any) -> int | float:
        numbers = [_float(v) for v in values]
        if any(math.isnan(n) for n in numbers):
            return math.nan
        return js_number(max(numbers, default=-math.inf))

    @staticmethod
    def min(*values: Any) -> int | float:
        numbers = [_float(v) for v in values]
        if any(math.isnan(n) for n in numbers):
            return math.nan
        return js_number(min(numbers, default=math.inf))

    @staticmethod
    def pow(base: Any, exponent: Any) -> int | float:
        b, e = _float(base), _float(exponent)
        if math.isnan(e) or (math.isnan(b) and e != 0):
            return math.nan
        if math.isinf(e) and abs(b) == 1:
            return math.nan  # JavaScript's rule (Python's pow gives 1)
        if b == 0 and e < 0:  # Python's pow raises ValueError; JavaScript divides by zero
            odd = math.isfinite(e) and e == int(e) and int(e) % 2 == 1
            return -math.inf if odd and math.copysign(1.0, b) < 0 else math.inf
        try:
            return js_number(math.pow(b, e))
        except OverflowError:
            return math.inf if b > 0 or e % 2 == 0 else -math.inf
        except ValueError:
            return math.nan

    @staticmethod
    def atan2(y: Any, x: Any) -> int | float:
        return js_number(math.atan2(_float(y), _float(x)))

    @staticmethod
    def hypot(*values: Any) -> int | float:
        return js_number(math.hypot(*(_float(v) for v in values)))


# ---------------------------------------------------------------------------------------------
# Typed arrays, TextEncoder, TextDecoder


def _uint8(value: Any) -> int:
    """JavaScript's ``ToUint8``: truncate, then modulo 256 (``3.7`` -> 3, ``-1`` -> 255, ``NaN`` -> 0)."""
    number = _float(value)
    if not math.isfinite(number):
        return 0
    return int(number) % 256


class Uint8Array:
    """``js.Uint8Array``: ``Uint8Array.new(length)``, ``.new(bytes_or_buffer)``, ``.new([numbers])``
    give the ``Uint8Array`` stand-in of ``pyodide.ffi`` (``bytes`` with ``to_bytes()``,
    ``to_py()``, ``buffer``, ``length``), which is immutable here.

    Raises:
        pyodide.ffi.JsException: ``RangeError: Invalid typed array length: -1`` (workerd's).
    """

    @staticmethod
    def new(source: Any = 0, /) -> _Uint8Array:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return _Uint8Array(bytes(source))
        if isinstance(source, (int, float)) and not isinstance(source, bool):
            length = _to_index(source)  # workerd: new Uint8Array(1.5) has length 1, (NaN) 0
            if length is None:
                raise JsException("RangeError", f"Invalid typed array length: {js_key(source)}")
            return _Uint8Array(bytes(length))
        if isinstance(source, Iterable) and not isinstance(source, str):
            return _Uint8Array(bytes(_uint8(item) for item in source))
        raise TypeError(f"Uint8Array.new() takes a length, bytes or a list of numbers, not {type(source).__name__}")

    @staticmethod
    def of(*items: Any) -> _Uint8Array:
        return _Uint8Array(bytes(_uint8(item) for item in items))


class ArrayBuffer:
    """``js.ArrayBuffer``: ``ArrayBuffer.new(length)`` is a zero-filled buffer (the stand-in's ``buffer`` type)."""

    @staticmethod
    def new(length: Any = 0, /) -> _ArrayBuffer:
        size = _to_index(length)  # workerd: new ArrayBuffer(2.0) has 2 bytes, (1.5) 1, (NaN) 0
        if size is None:
            raise JsException("RangeError", "Invalid array buffer length")
        return _ArrayBuffer(bytes(size))


def _usv(text: str) -> str:
    """``text`` as a JavaScript USVString: a lone surrogate becomes U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class _Encoder:
    __slots__ = ()

    encoding = "utf-8"

    def encode(self, text: Any = "") -> _Uint8Array:
        """The UTF-8 bytes of ``text`` (a lone surrogate is encoded as U+FFFD, as JavaScript does)."""
        if not isinstance(text, str):
            text = "" if text is None else _text(text)  # encode(undefined) is encode("")
        return _Uint8Array(_usv(text).encode("utf-8"))


class TextEncoder:
    """``js.TextEncoder``: ``TextEncoder.new().encode(text)`` gives a ``Uint8Array``."""

    @staticmethod
    def new() -> _Encoder:
        return _Encoder()


_UTF8_LABELS = frozenset({"utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"})


class _Decoder:
    __slots__ = ("fatal", "ignoreBOM")

    encoding = "utf-8"

    def __init__(self, fatal: bool, ignore_bom: bool) -> None:
        self.fatal = fatal
        self.ignoreBOM = ignore_bom

    def decode(self, data: Any = None, options: Any = None, /) -> str:
        """The text of UTF-8 ``data``; invalid bytes are U+FFFD unless ``fatal``.

        Raises:
            pyodide.ffi.JsException: ``TypeError: Failed to decode input.`` with ``fatal`` (workerd's).
        """
        raw = b"" if data is None else _buffer(data, "TextDecoder.decode()")
        if not self.ignoreBOM and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode("utf-8", "strict" if self.fatal else "replace")
        except UnicodeDecodeError:
            raise JsException("TypeError", "Failed to decode input.") from None


class TextDecoder:
    """``js.TextDecoder``: ``TextDecoder.new()`` (UTF-8; ``{"fatal": True}``, ``{"ignoreBOM": True}``)
    and ``.decode(buffer)``.

    Raises:
        NotImplementedError: a label other than UTF-8's (workerd decodes others; durable does not).
    """

    @staticmethod
    def new(label: str | None = "utf-8", options: Any = None, /, **fields: Any) -> _Decoder:
        if label is None:  # Pyodide passes None as undefined: the default label
            label = "utf-8"
        if label.strip().lower() not in _UTF8_LABELS:
            raise NotImplementedError(f"js.TextDecoder.new({label!r}) is not supported by durable: only UTF-8 is")
        init = {**(options or {}), **fields}
        return _Decoder(bool(init.get("fatal", False)), bool(init.get("ignoreBOM", False)))


# ---------------------------------------------------------------------------------------------
# Array, Error


class Array:
    """``js.Array``: ``Array.new()``, ``Array.new(length)`` (``None`` items: ``undefined``),
    ``Array.new(a, b)``, ``Array.from_(iterable)`` (also ``getattr(Array, "from")``), ``Array.of``,
    ``Array.isArray``; arrays are Python lists with what Pyodide's proxy of an array adds
    (``to_py()``, ``length``): ``getattr(Array, "from")(cursor).to_py()`` works."""

    @staticmethod
    def new(*items: Any) -> list[Any]:
        if len(items) == 1 and isinstance(items[0], (int, float)) and not isinstance(items[0], bool):
            length = items[0]
            if not math.isfinite(length) or length < 0 or length != int(length) or length >= 2**32:
                raise JsException("RangeError", "Invalid array length")
            return JsList([None] * int(length))
        return JsList(items)

    @staticmethod
    def from_(items: Iterable[Any], mapper: Any = None, /) -> list[Any]:
        values = list(items)
        return JsList([mapper(value, index) for index, value in enumerate(values)] if mapper else values)

    @staticmethod
    def of(*items: Any) -> list[Any]:
        return JsList(items)

    @staticmethod
    def isArray(value: Any) -> bool:
        return isinstance(value, list)


setattr(Array, "from", Array.from_)


class _ErrorClass:
    """A JavaScript error constructor: ``Error.new(message)`` (or ``Error(message)``) is a
    ``pyodide.ffi.JsException`` (Pyodide's proxy of a JavaScript error is one), to raise or send."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def new(self, message: Any = "", /, *args: Any) -> JsException:
        return JsException(self.name, message if isinstance(message, str) else js_key(message))

    __call__ = new

    def __repr__(self) -> str:
        return f"<js.{self.name}>"


# js.Error, js.TypeError, js.RangeError (js.py gives them those names; here they would shadow Python's).
ERRORS = {name: _ErrorClass(name) for name in ("Error", "TypeError", "RangeError")}


# ---------------------------------------------------------------------------------------------
# btoa, atob, URI encoding

_ATOB_ERROR = (
    "atob() called with invalid base64-encoded data. (Only whitespace, '+', '/', alphanumeric ASCII, and up to "
    "two terminal '=' signs when the input data length is divisible by 4 are allowed.)"
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")


def btoa(data: Any) -> str:
    """Base64 of a string of Latin-1 characters.

    Raises:
        pyodide.ffi.JsException: ``InvalidCharacterError`` for a character above U+00FF (workerd's message).
    """
    text = _text(data)
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raise JsException(
            "InvalidCharacterError", "btoa() can only operate on characters in the Latin1 (ISO/IEC 8859-1) range."
        ) from None
    return base64.b64encode(raw).decode("ascii")


def atob(data: Any) -> str:
    """The Latin-1 string a base64 text encodes (whitespace ignored, padding optional).

    Raises:
        pyodide.ffi.JsException: ``InvalidCharacterError`` for invalid data (workerd's message).
    """
    text = _text(data)
    text = re.sub(r"[\t\n\f\r ]", "", text)
    if len(text) % 4 == 0 and text.endswith("="):
        text = text[:-2] if text.endswith("==") else text[:-1]
    if len(text) % 4 == 1 or not _BASE64.fullmatch(text):
        raise JsException("InvalidCharacterError", _ATOB_ERROR)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise JsException("InvalidCharacterError", _ATOB_ERROR) from None
    return raw.decode("latin-1")


_URI_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_URI_RESERVED = frozenset(";/?:@&=+$,#")


def _uri_error() -> JsException:
    return JsException("URIError", "URI malformed")


def _encode(data: Any, keep: frozenset[str]) -> str:
    text = _text(data)
    out: list[str] = []
    for char in text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass"):
        if char in keep:
            out.append(char)
            continue
        try:
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8")))
        except UnicodeEncodeError:  # a lone surrogate
            raise _uri_error() from None
    return "".join(out)


def _decode(data: Any, keep: frozenset[str]) -> str:
    text = _text(data)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "%":
            out.append(text[i])
            i += 1
            continue
        start = i
        raw = bytearray()
        while True:
            escape = text[i + 1 : i + 3]
            if len(escape) < 2 or not all(c in "0123456789abcdefABCDEF" for c in escape):
                raise _uri_error()
            raw.append(int(escape, 16))
            i += 3
            lead = raw[0]
            need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
            if len(raw) == need:
                break
            if i >= len(text) or text[i] != "%":
                raise _uri_error()
        try:
            char = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _uri_error() from None
        out.append(text[start:i] if char in keep else char)
    return "".join(out)


def encodeURIComponent(data: Any) -> str:
    """Percent-encode everything but ``A-Z a-z 0-9 - _ . ! ~ * ' ( )`` (UTF-8).

    Raises:
        pyodide.ffi.JsException: ``URIError: URI malformed`` for a lone surrogate.
    """
    return _encode(data, _URI_UNRESERVED)


def encodeURI(data: Any) -> str:
    """As :func:`encodeURIComponent`, keeping the URI's reserved characters and ``#``."""
    return _encode(data, _URI_UNRESERVED | _URI_RESERVED)


def decodeURIComponent(data: Any) -> str:
    """Undo percent-encoding (UTF-8).

    Raises:
        pyodide.ffi.JsException: ``URIError: URI malformed`` for a bad escape or invalid UTF-8.
    """
    return _decode(data, frozenset())


def decodeURI(data: Any) -> str:
    """As :func:`decodeURIComponent`, leaving escapes of reserved characters (``%2F``) as they are."""
    return _decode(data, _URI_RESERVED)


# ---------------------------------------------------------------------------------------------
# Number parsing: parseInt, parseFloat, isNaN, isFinite (measured in workerd, miniflare 4:
# parseInt("  42px") 42, ("0x1f") 31, ("1f", 16) 31, ("z", 36) 35, ("") NaN, ("10", 1) NaN,
# ("10", 37) NaN, ("10", 0) 10, ("-0x10") -16, ("0x") NaN, ("\uff19", a full-width 9) NaN; parseFloat("3.14abc")
# 3.14, (".5") 0.5, ("-Infinityx") -Infinity, ("1e3x") 1000, ("e3") NaN, ("inf") NaN,
# ("0x10") 0, ("1_000") 1; isNaN("abc") true, ("") false, (undefined) true; isFinite("12") true,
# ("1e400") false)

_RADIX_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_FLOAT_PREFIX = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")


def parseInt(string: Any, radix: Any = None, /) -> int | float:
    """JavaScript's ``parseInt``: the integer at the start of ``String(string)``, or ``NaN``."""
    text = _text(string).lstrip(_JS_SPACE)
    sign = -1 if text[:1] == "-" else 1
    if text[:1] in ("+", "-"):
        text = text[1:]
    number = 0.0 if radix is None else _float(radix)
    base = 0 if math.isnan(number) or math.isinf(number) else int(number) % 2**32
    base = base - 2**32 if base >= 2**31 else base
    if base != 0 and not 2 <= base <= 36:
        return math.nan
    if base in (0, 16) and text[:2] in ("0x", "0X"):
        text, base = text[2:], 16
    base = base or 10
    allowed = _RADIX_DIGITS[:base]
    end = 0
    while end < len(text) and text[end].isascii() and text[end].lower() in allowed:  # not the Kelvin sign's "k"
        end += 1
    if end == 0:
        return math.nan
    return js_number(sign * float(int(text[:end], base)))


def parseFloat(string: Any, /) -> int | float:
    """JavaScript's ``parseFloat``: the decimal number at the start of ``String(string)``, or ``NaN``."""
    m = _FLOAT_PREFIX.match(_text(string).lstrip(_JS_SPACE))
    if m is None:
        return math.nan
    return js_number(float(m.group().replace("Infinity", "inf")))


def isNaN(value: Any, /) -> bool:
    """JavaScript's global ``isNaN``: whether ``Number(value)`` is ``NaN`` (``isNaN("abc")`` is true)."""
    return math.isnan(_float(value))


def isFinite(value: Any, /) -> bool:
    """JavaScript's global ``isFinite``: whether ``Number(value)`` is finite."""
    return math.isfinite(_float(value))
