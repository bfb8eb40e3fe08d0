"""The type-tagged JSON form in which values cross between the two sides of the differential test.

A stored value is ``{"t": TAG, "v": ...}``; ``worker.js`` reads and writes the same form. Tags and
the types they stand for (the structured-clone types that exist on both sides):

    null   None                       null
    bool   bool                       boolean
    num    float                      number     ("NaN", "Infinity", "-Infinity", "-0" as strings)
    big    int                        BigInt     (decimal string)
    str    str                        string
    bytes  bytes                      Uint8Array (hex)
    buf    bytearray                  ArrayBuffer (hex)
    date   datetime (UTC, whole ms)   Date       (ms since the epoch)
    arr    list                       Array
    map    dict                       Map        (list of [key, value] pairs, in order)
    set    set                        Set        (list of members)

A container (``arr``, ``map``, ``set``, ``buf``) that occurs more than once in a value carries an
``"id"`` where it first occurs (depth first) and is ``{"t": "ref", "v": id}`` wherever it occurs
again, cycles included: shared references and cycles are compared too. JavaScript-only results are
tagged ``undefined`` and ``other``. SQL cells and bindings use plain JSON
(numbers, strings, booleans, null) plus ``{"blob": hex}``, ``{"num": "NaN" | "Infinity" | ...}``,
``{"bigint": decimal}`` (a BigInt binding) and ``{"rep": [text, n]}`` (``text`` repeated ``n`` times).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from typing import Any

Tagged = dict[str, Any]

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}


def number_from_json(v: float | int | str) -> float:
    """A float from its JSON form (special values as strings)."""
    return _SPECIAL[v] if isinstance(v, str) else float(v)


def number_to_json(x: float) -> float | str:
    """A float's JSON form: itself, or a string for NaN, the infinities and -0."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0 and math.copysign(1.0, x) < 0:
        return "-0"
    return x


def decode(
    v: Tagged, defined: dict[int, Any] | None = None, extra: Callable[[Tagged, dict[int, Any]], Any] | None = None
) -> Any:
    """A Python value from its tagged form (containers with an ``id`` may be ``ref``-ed again).

    ``extra`` decodes the tags this module does not know (``rpc_ops``' errors and the like).
    """
    if defined is None:
        defined = {}
    tag = v["t"]
    if tag == "null":
        return None
    if tag == "bool":
        return bool(v["v"])
    if tag == "num":
        return number_from_json(v["v"])
    if tag == "big":
        return int(v["v"])
    if tag == "str":
        return str(v["v"])
    if tag == "bytes":
        return bytes.fromhex(v["v"])
    if tag == "date":
        return EPOCH + _dt.timedelta(milliseconds=v["v"])
    if tag == "ref":
        return defined[v["v"]]
    out: Any
    if tag == "buf":
        out = bytearray.fromhex(v["v"])
    elif tag == "arr":
        out = []
    elif tag == "map":
        out = {}
    elif tag == "set":
        out = set()
    elif extra is not None:
        return extra(v, defined)
    else:
        raise ValueError(f"no Python value for tag {tag!r}")
    if "id" in v:
        defined[v["id"]] = out  # before the contents, which may refer to it (a cycle)
    if tag == "arr":
        out.extend(decode(x, defined, extra) for x in v["v"])
    elif tag == "map":
        for k, x in v["v"]:
            key = decode(k, defined, extra)
            out[key] = decode(x, defined, extra)
    elif tag == "set":
        out.update(decode(x, defined, extra) for x in v["v"])
    return out


_CONTAINERS = (list, dict, set, bytearray)
"""The types whose sharing is visible on both sides (JavaScript's Array, Map, Set, ArrayBuffer)."""


def _count(x: Any, counts: dict[int, int]) -> None:
    if type(x) not in _CONTAINERS:
        return
    counts[id(x)] = counts.get(id(x), 0) + 1
    if counts[id(x)] > 1:
        return
    if type(x) is dict:
        for k, y in x.items():
            _count(k, counts)
            _count(y, counts)
    elif type(x) is not bytearray:
        for y in x:
            _count(y, counts)


Other = Callable[[Any, Any], "Tagged | None"]
"""Encodes what is not one of the types above (``rpc_ops``' errors and stubs); it gets the value and
the encoder's state, to encode what the value holds, and returns ``None`` to leave it ``other``."""


def encode(x: Any, state: tuple[dict[int, int], dict[int, int], Other | None] | None = None) -> Tagged:
    """The tagged form of a Python value (``other`` for a type with no JavaScript counterpart).

    Containers that occur more than once get an ``id`` in the order they are first met (depth
    first), and ``ref``s after that, numbered as ``worker.js`` numbers them.
    """
    if state is None:
        state = ({}, {}, None)
        _count(x, state[0])
    counts, ids, other = state
    kind = type(x)
    if x is None:
        return {"t": "null"}
    if kind is bool:
        return {"t": "bool", "v": x}
    if kind is float:
        return {"t": "num", "v": number_to_json(x)}
    if kind is int:
        return {"t": "big", "v": str(x)}
    if kind is str:
        return {"t": "str", "v": x}
    if kind is bytes:
        return {"t": "bytes", "v": x.hex()}
    if kind is _dt.datetime and x.tzinfo is _dt.UTC:
        return {"t": "date", "v": (x - EPOCH) // _dt.timedelta(milliseconds=1)}
    if kind not in _CONTAINERS:
        tagged = None if other is None else other(x, state)
        return {"t": "other", "v": kind.__name__} if tagged is None else tagged
    if id(x) in ids:
        return {"t": "ref", "v": ids[id(x)]}
    out: Tagged = {}
    if counts[id(x)] > 1:
        out["id"] = ids[id(x)] = len(ids)
    if kind is bytearray:
        out.update(t="buf", v=x.hex())
    elif kind is list:
        out.update(t="arr", v=[encode(y, state) for y in x])
    elif kind is dict:
        out.update(t="map", v=[[encode(k, state), encode(y, state)] for k, y in x.items()])
    else:
        out.update(t="set", v=[encode(y, state) for y in x])
    return out


def encode_with(x: Any, other: Other) -> Tagged:
    """``encode(x)``, with ``other`` encoding the values of types it does not know."""
    state: tuple[dict[int, int], dict[int, int], Other | None] = ({}, {}, other)
    _count(x, state[0])
    return encode(x, state)


def cell_from_json(c: Any) -> Any:
    """An SQL binding from its JSON form (JSON numbers bind as REAL, as JavaScript numbers do)."""
    if isinstance(c, dict):
        if "blob" in c:
            return bytes.fromhex(c["blob"])
        if "num" in c:
            return number_from_json(c["num"])
        if "bigint" in c:
            return int(c["bigint"])
        if "rep" in c:
            return str(c["rep"][0]) * int(c["rep"][1])
    if type(c) is int:
        return float(c)
    return c


def cell_to_json(c: Any) -> Any:
    """An SQL result cell's JSON form."""
    if isinstance(c, (bytes, bytearray, memoryview)):
        return {"blob": bytes(c).hex()}
    if type(c) is float and isinstance(number_to_json(c), str):
        return {"num": number_to_json(c)}
    return c
