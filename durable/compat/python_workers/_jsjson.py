"""``js.JSON.stringify(value, replacer, space)`` with JavaScript's rules (ECMA-262
``JSON.stringify``), for the values Python Workers code hands it.

Measured in workerd (miniflare 4.20260426.0, compatibility date 2026-04-07): ``space`` a number
indents by that many spaces (at most 10; below 1 none), a string by its first 10 characters;
``replacer`` a function is called with ``(key, value)`` for the holder's ``""`` first, then each
key (array indices as strings), its result used instead; a list keeps only the object keys it
names (numbers as their strings), in its order; otherwise an object's keys come in JavaScript's
order (array indices first, ascending: ``{"b": 1, "2": 2, "1": 3}`` is ``{"1":3,"2":2,"b":1}``). Numbers are JavaScript's (``1.0`` is ``1``,
``1e16`` ``10000000000000000``, ``1e-7`` ``1e-7``; ``NaN`` and infinities ``null``); a lone
surrogate is escaped (``\\ud800``), other characters are written as they are; a ``Map`` (``to_js``
of a dict without ``dict_converter``) is ``{}``, a ``Uint8Array`` an object of its indices, a
``Date`` its ``toJSON()``; a function is left out of an object, ``null`` in an array and
``undefined`` (``None``) alone, as is a member the replacer returns ``None`` for (Pyodide hands
JavaScript a Python ``None`` as ``undefined``); an ``int`` beyond 2**53 (a ``BigInt`` there)
raises V8's ``TypeError``. ``None`` as a value is ``null`` (`durable` reads ``null`` as ``None``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._convert import JsDate, JsMapDict, js_key
from .pyodide.ffi import JsException, jsnull

__all__ = ["JsonSyntaxError", "js_json_text", "parse", "stringify"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_INDEX = re.compile("0|[1-9][0-9]*")
_OMIT: Any = object()  # JavaScript's undefined: the member is left out


def stringify(value: Any, replacer: Any = None, space: Any = None) -> str | None:
    """``JSON.stringify(value, replacer, space)``; ``None`` when the result is ``undefined``."""
    keep = None
    call = None
    if callable(replacer):
        call = replacer
    elif isinstance(replacer, (list, tuple)):
        keep = list(dict.fromkeys(str(js_key(key)) for key in replacer if isinstance(key, (str, int, float))))
    writer = _Writer(call, keep, _gap(space))
    text = writer.property({"": value}, "", value, "")
    return None if text is _OMIT else text


def js_json_text(value: Any) -> str:
    """The body JavaScript's ``Response.json(value)`` writes: ``JSON.stringify(value)``.

    Raises:
        JsException: ``TypeError: Value is not JSON serializable`` for a value ``JSON.stringify``
            leaves ``undefined`` (a function), as ``Response.json`` does (node 20's undici).
    """
    text = stringify(value)
    if text is None:
        raise JsException("TypeError", "Value is not JSON serializable")
    return text


def _gap(space: Any) -> str:
    if isinstance(space, bool):
        return ""
    if isinstance(space, (int, float)):
        return " " * max(0, min(10, int(space)))
    if isinstance(space, str):
        return space[:10]
    return ""


class _Writer:
    __slots__ = ("call", "gap", "keep", "stack")

    def __init__(self, call: Callable[..., Any] | None, keep: list[str] | None, gap: str) -> None:
        self.call, self.keep, self.gap = call, keep, gap
        self.stack: list[int] = []

    def property(self, holder: Any, key: str, value: Any, indent: str) -> Any:
        if isinstance(value, JsDate):
            value = value.toJSON()
        elif hasattr(type(value), "__js_fields__"):
            value = value.__js_fields__()  # a runtime object (AlarmInvocationInfo): its own properties
        if self.call is not None:
            value = self.call(key, value)
            if value is None:
                return _OMIT  # Pyodide gives JavaScript a Python None as undefined
        if value is None or value is jsnull:
            return "null"
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, str):
            return _quote(value)
        if isinstance(value, (int, float)):
            return _number(value)
        if callable(value):
            return _OMIT
        if isinstance(value, JsMapDict):
            return "{}"  # a Map has no enumerable own properties
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.object({str(index): byte for index, byte in enumerate(bytes(value))}, indent)
        if isinstance(value, Mapping):
            return self.object(value, indent)
        if isinstance(value, (list, tuple)):
            return self.array(value, indent)
        raise TypeError(f"JSON.stringify() cannot write a {type(value).__name__}: {value!r:.60}")

    def enter(self, value: Any) -> None:
        if id(value) in self.stack:
            raise JsException("TypeError", "Converting circular structure to JSON")
        self.stack.append(id(value))

    def object(self, value: Mapping[Any, Any], indent: str) -> str:
        self.enter(value)
        inner = indent + self.gap
        items = {str(js_key(key)): item for key, item in value.items()}
        keys = _own_keys(items) if self.keep is None else self.keep
        parts = []
        for key in keys:
            if key not in items:
                continue
            text = self.property(value, key, items[key], inner)
            if text is not _OMIT:
                parts.append(f"{_quote(key)}:{' ' if self.gap else ''}{text}")
        self.stack.pop()
        return self.join("{", parts, "}", indent, inner)

    def array(self, value: list[Any] | tuple[Any, ...], indent: str) -> str:
        self.enter(value)
        inner = indent + self.gap
        parts = []
        for index, item in enumerate(value):
            text = self.property(value, str(index), item, inner)
            parts.append("null" if text is _OMIT else text)
        self.stack.pop()
        return self.join("[", parts, "]", indent, inner)

    def join(self, start: str, parts: list[str], end: str, indent: str, inner: str) -> str:
        if not parts:
            return start + end
        if not self.gap:
            return start + ",".join(parts) + end
        return f"{start}\n{inner}" + f",\n{inner}".join(parts) + f"\n{indent}{end}"


def _own_keys(items: dict[str, Any]) -> list[str]:
    """A JavaScript object's keys in its own order: array indices (``"0"`` to ``"4294967294"``,
    as JavaScript writes them) first, ascending, then the others as inserted (node:
    ``JSON.stringify({b: 1, 2: 2, 1: 3})`` is ``{"1":3,"2":2,"b":1}``)."""
    indices = [key for key in items if _INDEX.fullmatch(key) and int(key) < 2**32 - 1]
    if not indices:
        return list(items)
    indices.sort(key=int)
    return indices + [key for key in items if key not in set(indices)]


def _quote(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    if _SURROGATE.search(quoted):
        quoted = _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", quoted)
    return quoted


def _number(number: int | float) -> str:
    if isinstance(number, float) and (number != number or number in (float("inf"), float("-inf"))):
        return "null"
    if isinstance(number, int) and abs(number) > 2**53:  # Pyodide gives JavaScript a BigInt
        raise JsException("TypeError", "Do not know how to serialize a BigInt")
    return str(js_key(number))


# ---------------------------------------------------------------------------------------------
# JSON.parse(text, reviver)
#
# Measured in workerd (miniflare 4.20260426.0, compatibility date 2026-04-07): the reviver is
# called bottom-up, an object's members in its key order (array indices first), then the holder's
# "" key last, each with THREE arguments, (key, value, context): V8 passes JSON.parse's source
# text access context, {source: "1"} for a primitive (its text as written) and {} for an object
# or array. Pyodide calls a Python function with every argument JavaScript passes, so a reviver
# written `def revive(key, value)` raises TypeError there, as here. Returning undefined (Python's
# None) deletes an object's member; an array keeps its length, the element a hole (`None`).
# Bad JSON is a SyntaxError (`"[1,]" is not valid JSON`), which reaches Python as a JsException.

_JSON_TOKEN = re.compile(r'[ \t\n\r]*(?:("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^ \t\n\r{}\[\]:,"]+))', re.DOTALL)


class JsonSyntaxError(JsException, json.JSONDecodeError):
    """``JSON.parse`` of text that is not JSON: JavaScript's ``SyntaxError`` (a
    :class:`~durable.compat.python_workers.pyodide.ffi.JsException` named ``SyntaxError``), and
    also the ``json.JSONDecodeError`` this layer raised before (``except ValueError`` keeps working).
    The message is Python's parser's, not V8's."""

    def __init__(self, error: json.JSONDecodeError) -> None:
        json.JSONDecodeError.__init__(self, error.msg, error.doc, error.pos)
        self.name = "SyntaxError"
        self.message = f"{error.msg} in JSON at position {error.pos}"
        self.args = (f"SyntaxError: {self.message}",)  # str(): JavaScript's "Name: message"

    def __reduce__(self) -> tuple[Any, ...]:
        return (json.JSONDecodeError, (self.msg, self.doc, self.pos))


def parse(text: Any, reviver: Any = None) -> Any:
    """``JSON.parse(text, reviver)``: the value as Pyodide hands it to Python (objects
    :class:`JsObject`, arrays :class:`JsList`, safe integral numbers ``int``); ``text`` that is
    not a ``str`` is read as JavaScript's ``String(text)`` (``None`` is ``"undefined"``).

    Raises:
        JsonSyntaxError: the text is not JSON.
    """
    from durable._http import parse_json

    from ._convert import js_arrays, python_from_rpc

    source = "undefined" if text is None else "null" if text is jsnull else js_key(text)
    if not isinstance(source, str):
        source = str(source)  # Pyodide hands JavaScript a PyProxy, whose String() is str()
    try:
        plain = parse_json(source)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(exc) from None
    if not callable(reviver):
        return js_arrays(python_from_rpc(plain))
    tokens = [m.group(m.lastindex or 0) for m in _JSON_TOKEN.finditer(source) if m.lastindex]
    tree, _ = _node(tokens, 0)
    return _Reviver(reviver).walk("", tree)


def _node(tokens: list[str], at: int) -> tuple[Any, int]:
    """The JSON value starting at ``tokens[at]`` (already valid JSON), as a tree keeping each
    primitive's source text: ``("=", value, text)``, ``("{", [(key, node)...])``, ``("[", [node...])``."""
    token = tokens[at]
    if token not in ("{", "["):
        value = json.loads(token)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            from ._jsglobals import js_number

            value = js_number(float(value))  # a JavaScript number, as Pyodide converts it
        return ("=", value, token), at + 1
    members: list[Any] = []
    at += 1
    while tokens[at] not in ("}", "]"):
        if tokens[at] == ",":
            at += 1
        if token == "{":
            key = json.loads(tokens[at])
            child, at = _node(tokens, at + 2)  # past the key and its ':'
            members.append((key, child))
        else:
            child, at = _node(tokens, at)
            members.append(child)
    return (token, members), at + 1


class _Reviver:
    __slots__ = ("call",)

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call

    def walk(self, key: str, node: Any) -> Any:
        from ._convert import JsList, JsObject

        if node[0] == "=":
            return self.call(key, node[1], JsObject(source=node[2]))
        value: Any
        if node[0] == "[":
            value = JsList(self.walk(str(index), child) for index, child in enumerate(node[1]))
        else:
            children = dict(node[1])  # a repeated key: the last one, as JavaScript's object keeps
            value = JsObject()
            for name in _own_keys(dict.fromkeys(children)):
                revived = self.walk(name, children[name])
                if revived is not None:  # undefined: the member is deleted
                    dict.__setitem__(value, name, revived)
        return self.call(key, value, JsObject())
