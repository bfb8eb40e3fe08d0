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

JavaScript-only results are tagged ``undefined`` and ``other``. SQL cells and bindings use plain JSON
(numbers, strings, null) plus ``{"blob": hex}`` and ``{"num": "NaN" | "Infinity" | ...}``.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

Tagged = dict[str, Any]

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
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


def decode(v: Tagged) -> Any:
    """A Python value from its tagged form."""
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
    if tag == "buf":
        return bytearray.fromhex(v["v"])
    if tag == "date":
        return EPOCH + _dt.timedelta(milliseconds=v["v"])
    if tag == "arr":
        return [decode(x) for x in v["v"]]
    if tag == "map":
        return {decode(k): decode(x) for k, x in v["v"]}
    if tag == "set":
        return {decode(x) for x in v["v"]}
    raise ValueError(f"no Python value for tag {tag!r}")


def encode(x: Any) -> Tagged:
    """The tagged form of a Python value (``other`` for a type with no JavaScript counterpart)."""
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
    if kind is bytearray:
        return {"t": "buf", "v": x.hex()}
    if kind is _dt.datetime and x.tzinfo is _dt.timezone.utc:
        return {"t": "date", "v": (x - EPOCH) // _dt.timedelta(milliseconds=1)}
    if kind is list:
        return {"t": "arr", "v": [encode(y) for y in x]}
    if kind is dict:
        return {"t": "map", "v": [[encode(k), encode(y)] for k, y in x.items()]}
    if kind is set:
        return {"t": "set", "v": [encode(y) for y in x]}
    return {"t": "other", "v": kind.__name__}


def cell_from_json(c: Any) -> Any:
    """An SQL binding from its JSON form (JSON numbers bind as REAL, as JavaScript numbers do)."""
    if isinstance(c, dict):
        if "blob" in c:
            return bytes.fromhex(c["blob"])
        if "num" in c:
            return number_from_json(c["num"])
        if "bigint" in c:
            return int(c["bigint"])
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
