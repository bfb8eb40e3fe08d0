"""``console.log`` of JavaScript values, as workerd prints them (its ``inspect``, Node's rules).

Measured with miniflare 4.20260426.0 (compatibility date 2026-04-20): ``{ a: 1 }``, ``[ 1, 2 ]``,
``[]``, ``{}``, strings quoted inside (``'x'``; ``"it's"``; a backtick when both quotes occur),
keys quoted unless identifiers (``{ 'a-b': 1 }``), objects below two levels as ``[Object]`` /
``[Array]``, ``undefined`` / ``null``, ``-0``, ``1e+21``, a BigInt ``12n``, a line of at most 80
columns else one entry per line, and an array of more than six entries in aligned columns.

The values printed this way are the JavaScript ones Python Workers code holds: Python ``str``,
``int``, ``float``, ``bool`` and ``None`` (which Pyodide hands JavaScript as a string, number or
BigInt, boolean and ``undefined``), ``jsnull``, and the stand-ins of JavaScript objects
(``JSON.parse`` / ``to_js`` / ``Object.new()`` objects and arrays, a ``Map``,
``AlarmInvocationInfo``). Any other Python object (a ``dict``, a ``list``) reaches workerd as a
``PyProxy``, printed as Python's ``str()``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from ._convert import JsList, JsMapDict, JsObject, _js_number
from .pyodide.ffi import jsnull

__all__ = ["console_text"]

_DEPTH: Final = 2
_BREAK: Final = 80
_COMPACT: Final = 3
_KEY: Final = re.compile(r"^[a-zA-Z_][a-zA-Z_0-9]*$")
_ESCAPE: Final = re.compile("[\\x00-\\x1f\\x5c\\x7f-\\x9f]|[\\ud800-\\udfff]")
_NAMED: Final = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 92: "\\\\"}
_MAX_SAFE: Final = 2**53 - 1


def console_text(args: tuple[Any, ...]) -> str:
    """``console.log(*args)``'s line: strings as they are, other values inspected."""
    return " ".join(arg if isinstance(arg, str) else _Inspector().value(arg, 0, False) for arg in args)


def _quote(text: str) -> str:
    quote = "'"
    if "'" in text:
        if '"' not in text:
            quote = '"'
        elif "`" not in text and "${" not in text:
            quote = "`"

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group(0))
        if code in _NAMED:
            return _NAMED[code]
        return f"\\u{code:x}" if code >= 0xD800 else f"\\x{code:02X}"

    body = _ESCAPE.sub(escape, text)
    if quote == "'":
        body = body.replace("'", "\\'")
    return f"{quote}{body}{quote}"


class _Inspector:
    __slots__ = ("current_depth", "indentation")

    def __init__(self) -> None:
        self.current_depth = 0
        self.indentation = 0

    def value(self, value: Any, depth: int, nested: bool) -> str:
        if value is None:
            return "null" if nested else "undefined"  # None inside a parsed object was null
        if value is jsnull:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return f"{value}n" if abs(value) > _MAX_SAFE else str(value)
        if isinstance(value, float):
            return "-0" if value == 0 and math.copysign(1, value) < 0 else _js_number(value)
        if isinstance(value, str):
            return _quote(value) if nested else value
        if isinstance(value, JsList):
            return self.raw(value, depth, "", ("[", "]"), [(None, item) for item in value], array=True)
        if isinstance(value, JsMapDict):
            entries = [(self.value(k, depth + 1, True) + " =>", v) for k, v in value.items()]
            return self.raw(value, depth, f"Map({len(value)})", ("{", "}"), entries)
        if isinstance(value, JsObject):
            return self.raw(value, depth, "", ("{", "}"), [(_key(k) + ":", v) for k, v in value.items()])
        fields = getattr(type(value), "__js_fields__", None)
        if fields is not None:
            # workerd's runtime objects inspect their fields as a plain object, then prefix their
            # class name (measured: a line of 84 columns is not broken).
            items = [(_key(k) + ":", v) for k, v in fields(value).items()]
            text = self.raw(value, depth, "", ("{", "}"), items)
            return f"{type(value).__name__} {text}" if not text.startswith("[") else f"[{type(value).__name__}]"
        return str(value)  # a PyProxy: its toString() is Python's str()

    def raw(
        self, value: Any, depth: int, base: str, braces: tuple[str, str], entries: list[Any], array: bool = False
    ) -> str:
        if depth > _DEPTH:
            return f"[{base.split('(')[0] or ('Array' if array else 'Object')}]"
        if not entries:
            return f"{base} {braces[0]}{braces[1]}" if base else f"{braces[0]}{braces[1]}"
        depth += 1
        self.current_depth = depth
        output = []
        for label, item in entries:
            self.indentation += 2
            text = self.value(item, depth, True)
            self.indentation -= 2
            output.append(text if label is None else f"{label} {text}")
        return self.reduce(output, base, braces, depth, value if array else None)

    def reduce(self, output: list[str], base: str, braces: tuple[str, str], depth: int, array: Any) -> str:
        entries = len(output)
        if array is not None and entries > 6:
            output = self.group(output, array)
        prefix = f"{base} " if base else ""
        if self.current_depth - depth < _COMPACT and entries == len(output):
            start = len(output) + self.indentation + len(braces[0]) + len(base) + 10
            if self.below_break(output, start, base):
                joined = ", ".join(output)
                if "\n" not in joined:
                    return f"{prefix}{braces[0]} {joined} {braces[1]}"
        indent = "\n" + " " * self.indentation
        return f"{prefix}{braces[0]}{indent}  {(',' + indent + '  ').join(output)}{indent}{braces[1]}"

    def below_break(self, output: list[str], start: int, base: str) -> bool:
        total = len(output) + start
        if total + len(output) > _BREAK:
            return False
        for entry in output:
            total += len(entry)
            if total > _BREAK:
                return False
        return base == "" or "\n" not in base

    def group(self, output: list[str], array: list[Any]) -> list[str]:
        lengths = [len(entry) for entry in output]
        total = sum(length + 2 for length in lengths)
        longest = max(lengths)
        actual = longest + 2
        if not (actual * 3 + self.indentation < _BREAK and (total / actual > 5 or longest <= 6)):
            return output
        bias = math.sqrt(actual - total / len(output))
        biased = max(actual - 3 - bias, 1)
        columns = min(
            _js_round(math.sqrt(2.5 * biased * len(output)) / biased),
            (_BREAK - self.indentation) // actual,
            _COMPACT * 4,
            15,
        )
        if columns <= 1:
            return output
        widths = [max(lengths[j] for j in range(i, len(output), columns)) + 2 for i in range(columns)]
        numeric = all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in array)
        rows = []
        for i in range(0, len(output), columns):
            end = min(i + columns, len(output))
            line = ""
            for j in range(i, end - 1):
                cell = f"{output[j]}, "
                line += cell.rjust(widths[j - i]) if numeric else cell.ljust(widths[j - i])
            last = output[end - 1]
            line += last.rjust(widths[end - 1 - i] - 2) if numeric else last
            rows.append(line)
        return rows


def _js_round(value: float) -> int:
    """JavaScript's ``Math.round`` (halves up)."""
    return math.floor(value + 0.5)


def _key(key: Any) -> str:
    text = str(key)
    return text if _KEY.match(text) else _quote(text)
