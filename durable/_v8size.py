"""The size of a value in V8's serialization, the bytes on which workerd checks its value limits.

workerd serializes a stored value, or a WebSocket attachment, with V8's ``ValueSerializer`` and
checks the limits (131072 + 34 bytes for a key-value-backed object's value, 16384 for an
attachment) on those bytes. ``durable`` stores its own encoding (``_codec``), whose size differs,
so the checks that must refuse exactly where workerd refuses measure this instead.

A Python value is measured as its JavaScript twin (see docs/values.md, "Size"): ``None`` null,
``bool`` a boolean, an ``int`` within JavaScript's safe range (and a ``float``) a number, a larger
``int`` a BigInt, ``str`` a string, ``bytes`` a Uint8Array, ``bytearray`` an ArrayBuffer, ``list``
and ``tuple`` an Array, a ``dict`` whose keys are all ``str`` an Object (any other ``dict`` a Map),
``set`` and ``frozenset`` a Set, ``datetime`` and ``date`` a Date; ``time``, ``timedelta``,
``Decimal`` and ``UUID``, which JavaScript lacks, count as the string ``str(value)``.

The facts of V8's format used here (checked against workerd, miniflare 4, 2026-04-07, in
tests/test_v8size.py): a two-byte header (0xFF, version 15); null, true and false one tag byte; a
number that is a small integer (31 bits: V8 compresses pointers) a tag and its zigzag varint,
any other number a tag and 8 bytes (in an array of only numbers, one of them not a Smi, every
item is a tag and 8 bytes: V8 keeps it as a double array); a BigInt a tag, a varint of (byte length << 1 | sign) and its
64-bit digits; a string a tag, a varint byte length and its Latin-1 bytes if every character is
below U+0100, else its UTF-16 code units, preceded by a padding byte when they would otherwise
start at an odd offset; an Array a tag, its length, its items, a tag and two varints (0 and the
length); an Object a tag, its keys and values (keys that are array indices, first and in numeric
order, as numbers) and a tag with the count; a Map or Set a tag, its contents, a tag and the
count (of keys and values for a Map); a Date a tag and 8 bytes; an ArrayBuffer a tag, its length
and its bytes; a Uint8Array its ArrayBuffer then a tag, a subtag and three varints (offset, length,
flags). Every object gets the next id as it is written, a Uint8Array two (itself, then its
buffer), and an object met again is a tag and the varint of its id.
"""

from __future__ import annotations

import datetime as _dt
import math
import uuid
from decimal import Decimal
from typing import Final

__all__ = ["V8_SIZE_FACTOR", "v8_serialized_size"]

V8_SIZE_FACTOR: Final = 9
"""``v8_serialized_size(v) <= V8_SIZE_FACTOR * len(encode(v))`` for every value: the limit checks
measure V8's size only for values whose encoding is at least ``limit / V8_SIZE_FACTOR`` bytes.

The largest ratio is that of a small int in a list of ints and floats, which the codec cannot
pack: 1 byte there, and 9 in V8 when the list is a double array (``[0.5, 1, 1, ...]``). Empty
``bytes`` (7 bytes as a Uint8Array, 2 in ``durable``'s codec, so 3.5 in a long list of them),
small ints in a packed list (1 byte, up to 3 in V8) and a ``timedelta`` (13 bytes, up to 34 as
text) follow. tests/test_v8size.py checks these."""

_SMI_MIN: Final = -(1 << 30)
_SMI_MAX: Final = (1 << 30) - 1
_SAFE_MAX: Final = (1 << 53) - 1
_INDEX_MAX: Final = (1 << 32) - 2  # the largest array index
_TEXT_TYPES: Final = (_dt.time, _dt.timedelta, Decimal, uuid.UUID)


def _varint(n: int) -> int:
    """Bytes of ``n`` (>= 0) as an unsigned LEB128 varint."""
    return max(1, (n.bit_length() + 6) // 7)


def _number(v: float) -> int:
    """Bytes of a JavaScript number from a float: a Smi tag and zigzag varint, or a tag and a double."""
    if not v.is_integer() or (v == 0.0 and math.copysign(1.0, v) < 0):
        return 9
    n = int(v)
    if _SMI_MIN <= n <= _SMI_MAX:
        return 1 + _varint((n << 1) ^ (n >> 31))
    return 9


def _string(s: str, size: int) -> int:
    """Bytes of string ``s`` written at offset ``size`` (a two-byte one may need a padding byte)."""
    n = len(s)
    if s.isascii() or max(s) <= "\xff":
        return 1 + _varint(n) + n
    units = n + sum(c > "\uffff" for c in s)
    head = 1 + _varint(2 * units)
    return ((size + head) & 1) + head + 2 * units  # the padding byte keeps the code units even


def _index_key(key: str) -> int | None:
    """The array index a JavaScript object key stands for, or None (an ordinary name)."""
    if not key.isdigit() or not key.isascii() or (key[0] == "0" and len(key) > 1) or len(key) > 10:
        return None
    index = int(key)
    return index if index <= _INDEX_MAX else None


def _is_double_array(items: list[object] | tuple[object, ...]) -> bool:
    """Whether the Array twin of ``items`` holds only numbers, one of them not a Smi.

    V8 keeps such an array as PACKED_DOUBLE_ELEMENTS and writes each item, even ``1``, as a tag
    and a double (9 bytes). A string, null, boolean, BigInt or object among the items makes the
    numbers ordinary elements again, each written as itself.
    """
    double = False
    for item in items:
        kind = type(item)
        if kind is int:
            if _SMI_MIN <= item <= _SMI_MAX:  # type: ignore[operator]
                continue
            if not -_SAFE_MAX <= item <= _SAFE_MAX:  # type: ignore[operator]
                return False  # a BigInt
            double = True
        elif kind is float:
            if not double and _number(item) != 9:  # type: ignore[arg-type]
                continue
            double = True
        else:
            return False
    return double


class _Trailer:
    """Bytes written after a container's items (the work stack's marker)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def v8_serialized_size(value: object) -> int:
    """The length of V8's serialization of ``value``'s JavaScript twin, header included.

    ``value`` must be a structured-clone value (one that ``durable``'s codec accepts). Iterative,
    so that values nested to any depth are measured.
    """
    size = 2  # 0xFF and the version
    ids: dict[int, int] = {}
    next_id = 0
    stack: list[object] = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        v = pop()
        kind = type(v)
        if kind is str:
            size += _string(v, size)  # type: ignore[arg-type]
        elif kind is int:
            if _SMI_MIN <= v <= _SMI_MAX:  # type: ignore[operator]
                size += 1 + _varint((v << 1) ^ (v >> 31))  # type: ignore[operator]
            elif -_SAFE_MAX <= v <= _SAFE_MAX:  # type: ignore[operator]
                size += 9
            else:
                length = 8 * ((abs(v).bit_length() + 63) // 64)  # type: ignore[arg-type]
                size += 1 + _varint(length << 1) + length
        elif kind is _Trailer:
            size += v.n  # type: ignore[attr-defined]
        elif v is None or kind is bool:
            size += 1
        elif kind is float:
            size += _number(v)  # type: ignore[arg-type]
        elif kind is bytes or kind is memoryview or isinstance(v, bytes):  # bytes: or copy_as_bytes's
            n = len(v)  # type: ignore[arg-type]
            next_id += 2  # the Uint8Array, then its ArrayBuffer
            size += n + 2 * _varint(n) + 5  # B, length, data; V, subtag, offset 0, length, flags
        elif kind is _dt.datetime or kind is _dt.date:
            next_id += 1
            size += 9
        elif kind in _TEXT_TYPES:
            push(str(v))
        else:
            seen = ids.get(id(v))
            if seen is not None:
                size += 1 + _varint(seen)
                continue
            ids[id(v)] = next_id
            next_id += 1
            if kind is list or kind is tuple or isinstance(v, list):  # or one of copy_as_list's
                n = len(v)  # type: ignore[arg-type]
                size += 1 + _varint(n)
                push(_Trailer(2 + _varint(n)))
                if _is_double_array(v):  # type: ignore[arg-type]
                    size += 9 * n
                else:
                    extend(reversed(v))  # type: ignore[call-overload]
            elif isinstance(v, dict):  # dict or one of copy_as_dict's (the codec refused the others)
                n = len(v)
                size += 1
                if all(type(k) is str for k in v):
                    push(_Trailer(1 + _varint(n)))
                    indexed: list[tuple[int, object]] = []
                    named: list[object] = []
                    for k, item in v.items():
                        index = _index_key(k)
                        if index is None:
                            named += (k, item)
                        else:
                            indexed.append((index, item))
                    indexed.sort(key=lambda pair: pair[0])
                    pairs: list[object] = []
                    for index, item in indexed:
                        pairs += (index, item)  # an index key is written as a number
                    pairs += named
                else:
                    push(_Trailer(1 + _varint(2 * n)))
                    pairs = [x for pair in v.items() for x in pair]
                extend(reversed(pairs))
            elif kind is set or kind is frozenset:
                size += 1
                push(_Trailer(1 + _varint(len(v))))  # type: ignore[arg-type]
                extend(reversed(list(v)))  # type: ignore[call-overload]
            elif kind is bytearray:
                n = len(v)  # type: ignore[arg-type]
                size += 1 + _varint(n) + n
            else:
                raise TypeError(f"no JavaScript twin for {kind.__name__}")
    return size
