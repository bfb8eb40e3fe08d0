"""``js.Number`` and ``js.String`` as Python Workers code calls them through Pyodide.

Pyodide hands Python a proxy of each JavaScript function: ``js.Number("42")`` calls JavaScript's
``Number`` (a conversion, not a constructor) with the Python value converted (``str`` a string,
``int`` / ``float`` a number, ``bool`` a boolean, ``None`` ``undefined``, ``jsnull`` ``null``,
anything else a ``PyProxy``, whose ``String()`` is Python's ``str()``), and converts the result
back (a safe integral number an ``int``, else a ``float``). Measured in workerd (miniflare
4.20260426.0, compatibility date 2026-04-07): ``Number(" 0x1f ")`` 31, ``Number("")`` 0,
``Number("12px")`` NaN, ``Number(null)`` 0, ``Number(undefined)`` NaN, ``Number("-0x10")`` NaN,
``Number(2**53 + 1)`` 9007199254740992; ``Number.isInteger(5.0)`` true, ``("5")`` false;
``Number.isSafeInteger(2**53)`` false; ``Number.parseFloat === parseFloat``;
``String(1e21)`` ``"1e+21"``, ``String(null)`` ``"null"``, ``String([1, 2])`` ``"1,2"``,
``String({})`` ``"[object Object]"``; ``String.fromCharCode(0x1F600)`` ``"\\uf600"`` (16 bits),
``String.fromCodePoint(-1)`` and ``(1.5)`` ``RangeError: Invalid code point -1``.
``Number.new`` / ``String.new`` (wrapper objects) are not emulated: ``NotImplementedError``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from ._convert import JsDict, JsList, JsMapDict, js_key
from ._jsdate import JsDate
from ._jsglobals import _SAFE, _string_to_number, isFinite, isNaN, js_number, parseFloat, parseInt
from .pyodide.ffi import JsException, jsnull

__all__ = ["Number", "String", "js_string", "to_number"]


def js_string(value: Any) -> str:
    """JavaScript's ``String(value)`` of a Python value as Pyodide hands it over."""
    if value is None:
        return "undefined"
    if value is jsnull:
        return "null"
    if isinstance(value, (str, bool, int, float)):
        return str(js_key(value))
    if isinstance(value, JsDate):
        return value.toString()
    if isinstance(value, JsMapDict):
        return "[object Map]"
    if isinstance(value, JsDict):
        return "[object Object]"
    if isinstance(value, JsList):  # Array.prototype.join: null and undefined are ""
        return ",".join("" if item is None or item is jsnull else js_string(item) for item in value)
    return str(value)  # a PyProxy: its toString() is Python's str()


def to_number(value: Any) -> int | float:
    """JavaScript's ``Number(value)`` of a Python value, as Pyodide gives the result back."""
    if value is None:
        return math.nan
    if value is jsnull:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return js_number(float(value))  # an int past 2**53 is a BigInt there: Number() rounds it
    if isinstance(value, JsDate):
        return value.getTime()
    return js_number(_string_to_number(js_string(value)))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_constructed(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"js.{name}.new() (a {name} wrapper object) is not supported by durable; call js.{name}(value) "
        "for the primitive, as JavaScript code almost always does"
    )


class _Number:
    """``js.Number``: callable (``Number(value)``), with JavaScript's constants and static methods."""

    __slots__ = ()

    MAX_SAFE_INTEGER = _SAFE
    MIN_SAFE_INTEGER = -_SAFE
    EPSILON = sys.float_info.epsilon
    MAX_VALUE = sys.float_info.max
    MIN_VALUE = 5e-324
    POSITIVE_INFINITY = math.inf
    NEGATIVE_INFINITY = -math.inf
    NaN = math.nan
    parseFloat = staticmethod(parseFloat)
    parseInt = staticmethod(parseInt)

    def __call__(self, value: Any = 0, /) -> int | float:
        return to_number(value)

    @staticmethod
    def isInteger(value: Any, /) -> bool:
        return _is_number(value) and math.isfinite(value) and value == int(value)

    @staticmethod
    def isSafeInteger(value: Any, /) -> bool:
        return _is_number(value) and math.isfinite(value) and value == int(value) and abs(value) <= _SAFE

    @staticmethod
    def isNaN(value: Any, /) -> bool:
        """Unlike the global ``isNaN``, no conversion: only the number ``NaN``."""
        return _is_number(value) and isNaN(value)

    @staticmethod
    def isFinite(value: Any, /) -> bool:
        """Unlike the global ``isFinite``, no conversion: ``Number.isFinite("12")`` is false."""
        return _is_number(value) and isFinite(value)

    @staticmethod
    def new(*args: Any) -> Any:
        raise _not_constructed("Number")

    def __repr__(self) -> str:
        return "<js.Number>"


def _code_unit(value: Any) -> int:
    number = to_number(value)
    return 0 if not math.isfinite(number) else int(number) % 0x10000


class _String:
    """``js.String``: callable (``String(value)``), with ``fromCharCode``, ``fromCodePoint``, ``raw``."""

    __slots__ = ()

    def __call__(self, *value: Any) -> str:
        return js_string(value[0]) if value else ""

    @staticmethod
    def fromCharCode(*codes: Any) -> str:
        """Each code as a UTF-16 code unit (``ToUint16``: ``0x1F600`` is ``0xF600``); a pair of
        surrogates becomes the character they encode, as a JavaScript string read by Pyodide."""
        units = [_code_unit(code) for code in codes]
        return b"".join(unit.to_bytes(2, "little") for unit in units).decode("utf-16-le", "surrogatepass")

    @staticmethod
    def fromCodePoint(*points: Any) -> str:
        text = []
        for point in points:
            number = to_number(point)
            if not (isinstance(number, int) and 0 <= number <= 0x10FFFF):
                raise JsException("RangeError", f"Invalid code point {js_string(number)}")
            text.append(chr(number))
        return "".join(text)

    @staticmethod
    def raw(template: Any, *substitutions: Any) -> str:
        """``String.raw({"raw": [...]}, ...)``: the raw parts with the substitutions between."""
        parts = template["raw"] if isinstance(template, dict) else template.raw
        out = []
        for index, part in enumerate(parts):
            out.append(js_string(part))
            if index + 1 < len(parts) and index < len(substitutions):
                out.append(js_string(substitutions[index]))
        return "".join(out)

    @staticmethod
    def new(*args: Any) -> Any:
        raise _not_constructed("String")

    def __repr__(self) -> str:
        return "<js.String>"


Number = _Number()
String = _String()
