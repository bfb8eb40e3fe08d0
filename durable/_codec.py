"""The value codec: structured-clone values to bytes, back, and deep copies with the same rules.

Storage stores every value as ``encode(value)`` and reads it back with ``decode``; RPC arguments and
results are copied with ``clone``. All three accept exactly the types listed in ``docs/values.md``
(``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``bytearray``, ``list``, ``tuple``, ``dict``,
``set``, ``frozenset``, the ``datetime`` types, ``Decimal`` and ``UUID``), exact types only, and keep
shared references and cycles. Anything else raises :class:`~durable.DataCloneError` with Cloudflare's
wording. The format is this module's own tagged binary format, versioned by its first byte; reading
it only ever builds the listed built-in types, so no code from the data can run (the lesson of
python-diskcache, whose default pickling became a CVE).

Format (version 1). A value is one tag byte and a payload:

====================  ===========================================================================
tag                   payload
====================  ===========================================================================
``0x80 + n``          ``int`` ``n`` for 0 <= n < 128 (no payload)
``0x40 + n``          ``str`` of ``n`` < 64 UTF-8 bytes, then those bytes
``0x00`` ``0x01``     ``None``, ``False``
``0x02``              ``True``
``0x03``-``0x06``     ``int`` as signed little-endian 1, 2, 4 or 8 bytes (the smallest that fits)
``0x07``              ``int`` of any size: byte count (varint), signed little-endian bytes
``0x08``              ``float``: IEEE 754 binary64, little-endian (NaN payload and -0.0 kept)
``0x09`` / ``0x0a``   ``str`` (UTF-8, surrogates passed through) / ``bytes``: length (varint), data
``0x0b``              ``datetime``: year u16, month, day, hour, minute, second, microsecond u32,
                      flags (bit 0 fold, bits 1-2 time zone kind), time zone
``0x0c``              ``date``: year u16, month, day
``0x0d``              ``time``: hour, minute, second, microsecond u32, flags, time zone
``0x0e``              ``timedelta``: days i32, seconds u32, microseconds u32
``0x0f``              ``Decimal``: flags (bit 0 sign, bits 1-2 finite/NaN/sNaN/Infinity), exponent
                      (zigzag varint, finite only), digit count (varint), one byte per digit
``0x10``              ``UUID``: 16 bytes, big-endian
``0x20`` ``0x21``     ``list`` / ``tuple``: item count (varint), items
``0x22``              ``dict``: pair count (varint), key, value, key, value, ...
``0x23`` ``0x24``     ``set`` / ``frozenset``: member count (varint), members
``0x25``              ``bytearray``: length (varint), data
``0x26``              back-reference: index (varint) of an earlier container
``0x27``              superseded tuple: item count, index (varints), items; see below
``0x28``              ``list`` of ints: count (varint), width code (0-3 for 1, 2, 4, 8 bytes),
                      the ints, signed little-endian of that width
``0x29``              ``list`` of floats: count (varint), the floats (binary64, little-endian)
====================  ===========================================================================

Multi-byte integers are little-endian; a varint is unsigned LEB128. Time zone kinds: 0 none, 1 a
``datetime.timezone`` made without a name (offset in microseconds, zigzag varint), 2 one made with
a name (offset, then the name as length and UTF-8), 3 a ``zoneinfo.ZoneInfo`` (its key, as length
and UTF-8). A list of at least 8 items that are all ints within 64 bits or all floats is written
packed (tags ``0x28``, ``0x29``; ints in the narrowest width that holds them all): struct packs and
unpacks it in C, many times faster than item by item.

Shared references and cycles. Containers (``list``, ``tuple``, ``dict``, ``set``, ``frozenset``,
``bytearray``) are numbered in the order in which they become available while reading: a mutable
one when its header is read (so that its items can refer to it), a ``tuple`` or ``frozenset`` when it
is complete (it cannot be built before its items). A container met a second time is written as a
back-reference to its number. A cycle through a tuple (``l = []; t = (l,); l.append(t)``) is
handled as pickle handles it: while the tuple's items are written, the path back to the tuple
passes through a mutable container that already has a number, so the tuple is written again in
full at that point, with the container as a back-reference, and gets its number there. When the
outer copy completes, its header is rewritten to "superseded": the reader reads its items (they may
define containers used later) and then uses the inner copy instead. A ``frozenset`` can never be on
a cycle: its members are hashable, and hashable values here contain only immutable ones.

Encoding and decoding walk the value with an explicit stack, so nesting depth is limited only by
memory. The encoding of a given value is the same every time; a ``set``'s members are written in
its iteration order, so two equal sets built in different orders may encode differently.

Limits. A tuple that contains itself with no mutable container on the way cannot be built in
Python (only through the C API) and would make ``encode`` run until memory runs out. Everything
else is bounded, so that bytes crafted by hand (a damaged or hostile database file) are refused
with :class:`~durable.DataCorruptionError` in time and memory proportional to their length:

- Hashing a tuple visits every item of every nested tuple, without caching, and recurses in C. A
  chain of 64 tuples, each the pair of the previous one, is 261 bytes with back-references but
  takes 2**64 steps to hash; a tuple nested a million deep overflows the C stack. So a dict key or
  a set or frozenset member that is a tuple may nest at most ``MAX_HASHED_TUPLE_DEPTH`` (10,000)
  tuples deep and hold at most ``MAX_HASHED_TUPLE_SIZE`` (1,000,000) items counted through its
  nested tuples (a shared tuple counts each time it appears). Both are checked, once per tuple,
  before anything is hashed. A frozenset caches its hash, so it does not count through.
- Python's dicts and sets insert n keys that share a hash value in n**2 / 2 steps, and the hashes
  of ints, floats, Decimals, UUIDs and tuples of them are not randomized (``k * (2**61 - 1)`` all
  hash to 0). So a dict, set or frozenset of at least 256 items may have at most
  ``MAX_EQUAL_HASHES`` (32) of them share a hash value; a big dict is filled once it is complete
  and checked (smaller ones cost at most 256**2 / 2 steps each, in all bounded by the length).
- A set or frozenset costs 216 bytes in memory and 2 bytes in the format: one value may hold at most
  ``MAX_SETS`` (250,000) of them, so that 2 MB cannot decode to 235 MB. Other containers cost at
  most about 32 times their encoded size.

``encode`` refuses values beyond these limits with :class:`~durable.DataCloneError` (no real
program reaches them), so that whatever it accepts can be read back. ``clone`` does not apply them:
an RPC copy stays in memory, and storing it is checked by ``encode``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import inspect
import struct
import sys
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from itertools import chain
from typing import Any, Final, NamedTuple

from ._exceptions import DataCloneError, DataCorruptionError, copy_exception_value, use_value_copier

__all__ = [
    "ATOMIC_TYPES",
    "FORMAT_VERSION",
    "MAX_EQUAL_HASHES",
    "MAX_HASHED_TUPLE_DEPTH",
    "MAX_HASHED_TUPLE_SIZE",
    "MAX_SETS",
    "Transfer",
    "clone",
    "copy_as_dict",
    "copy_as_list",
    "decode",
    "encode",
    "register_transfer",
]

FORMAT_VERSION: Final[int] = 1
"""The first byte of every encoding. Bump it, and keep reading the old one, if the format changes."""

_DICT_LIKE: set[type] = set()
"""dict subclasses of durable itself that are copied as plain dicts (see :func:`copy_as_dict`)."""

_BYTES_LIKE: set[type] = set()
"""bytes subclasses of durable itself that are copied as plain bytes (see :func:`copy_as_bytes`)."""

_LIST_LIKE: set[type] = set()
"""list subclasses of durable itself that are copied as plain lists (see :func:`copy_as_list`)."""


def copy_as_dict(cls: type[dict[Any, Any]]) -> None:
    """Copy instances of ``cls``, a ``dict`` subclass of `durable`'s own, as plain dicts.

    Structured clone drops the prototype of what it copies; `durable` refuses subclasses instead,
    so that no user type is silently lost, except for its own result types registered here, such
    as SQL rows (``durable.SqlRow``), which are plain data with attribute access added.
    """
    if not (isinstance(cls, type) and issubclass(cls, dict)):
        raise TypeError(f"copy_as_dict() takes a dict subclass, not {cls!r}")
    _DICT_LIKE.add(cls)


def copy_as_list(cls: type[list[Any]]) -> None:
    """Copy instances of ``cls``, a ``list`` subclass of `durable`'s own, as plain lists.

    As :func:`copy_as_dict`: for its stand-ins of JavaScript arrays (the Python Workers
    ``js.Array`` results, which have Pyodide's ``to_py()``), which structured clone copies as arrays.
    """
    if not (isinstance(cls, type) and issubclass(cls, list)):
        raise TypeError(f"copy_as_list() takes a list subclass, not {cls!r}")
    _LIST_LIKE.add(cls)


def copy_as_bytes(cls: type[bytes]) -> None:
    """Copy instances of ``cls``, a ``bytes`` subclass of `durable`'s own, as plain ``bytes``.

    As :func:`copy_as_dict`: for its stand-ins of binary JavaScript values (the Python Workers
    ``Uint8Array`` of ``to_js(data)``), which structured clone copies as binary data.
    """
    if not (isinstance(cls, type) and issubclass(cls, bytes)):
        raise TypeError(f"copy_as_bytes() takes a bytes subclass, not {cls!r}")
    _SCALAR_ENCODERS[cls] = _enc_bytes
    _BYTES_LIKE.add(cls)


# -- tags -------------------------------------------------------------------------------------------

_NONE: Final = 0x00
_FALSE: Final = 0x01
_TRUE: Final = 0x02
_INT8: Final = 0x03
_INT16: Final = 0x04
_INT32: Final = 0x05
_INT64: Final = 0x06
_BIGINT: Final = 0x07
_FLOAT: Final = 0x08
_STR: Final = 0x09
_BYTES: Final = 0x0A
_DATETIME: Final = 0x0B
_DATE: Final = 0x0C
_TIME: Final = 0x0D
_TIMEDELTA: Final = 0x0E
_DECIMAL: Final = 0x0F
_UUID: Final = 0x10
# 0x11-0x1f: reserved for more scalar types.
_LIST: Final = 0x20
_TUPLE: Final = 0x21
_DICT: Final = 0x22
_SET: Final = 0x23
_FROZENSET: Final = 0x24
_BYTEARRAY: Final = 0x25
_REF: Final = 0x26
_SUPERSEDED: Final = 0x27
_INT_ARRAY: Final = 0x28
_FLOAT_ARRAY: Final = 0x29
_LAST_TAG: Final = _FLOAT_ARRAY
# 0x2a-0x3f: reserved for more containers.
_SHORT_STR: Final = 0x40  # 0x40-0x7f: str of 0-63 UTF-8 bytes
_SMALL_INT: Final = 0x80  # 0x80-0xff: int 0-127

_TZ_NONE: Final = 0
_TZ_OFFSET: Final = 1
_TZ_NAMED_OFFSET: Final = 2
_TZ_ZONEINFO: Final = 3

# Lists of at least this many numbers, all ints or all floats, are written packed.
_ARRAY_MIN_LEN: Final = 8

# Limits on what a value may hold, enforced alike by encode (DataCloneError) and decode
# (DataCorruptionError), so that crafted bytes cannot make decoding run or allocate without bound
# and nothing encode accepts is ever refused by decode. See "Limits" in the module docstring.
MAX_HASHED_TUPLE_DEPTH: Final = 10_000
"""Deepest nesting of tuples in a dict key or a set or frozenset member."""
MAX_HASHED_TUPLE_SIZE: Final = 1_000_000
"""Most items, counted through nested tuples as hashing counts them, of a dict key or set member."""
MAX_SETS: Final = 250_000
"""Most sets and frozensets (empty ones included) in one value."""
MAX_EQUAL_HASHES: Final = 32
"""Most keys of one big dict, or members of one big set or frozenset, that share a hash value."""
_BIG_CONTAINER: Final = 256  # dicts, sets and frozensets from this size on are checked for that

_DECIMAL_KINDS: Final = ("n", "N", "F")  # as_tuple() exponents of NaN, sNaN, Infinity (kinds 1-3)

_BYTE: Final = tuple(bytes((i,)) for i in range(256))
_VERSION_PREFIX: Final = _BYTE[FORMAT_VERSION]
_SMALL_INTS: Final = tuple(_BYTE[_SMALL_INT + i] for i in range(128))
_SHORT_STR_HEADERS: Final = tuple(_BYTE[_SHORT_STR + i] for i in range(64))


def _headers(tag: int) -> tuple[bytes, ...]:
    """Precomputed ``tag + varint(n)`` for n < 128, the common case for lengths and counts."""
    return tuple(bytes((tag, n)) for n in range(128))


_LIST_HEADERS: Final = _headers(_LIST)
_TUPLE_HEADERS: Final = _headers(_TUPLE)
_DICT_HEADERS: Final = _headers(_DICT)
_SET_HEADERS: Final = _headers(_SET)
_FROZENSET_HEADERS: Final = _headers(_FROZENSET)
_REF_HEADERS: Final = _headers(_REF)

_pack_float = struct.Struct("<Bd").pack
_pack_i8 = struct.Struct("<Bb").pack
_pack_i16 = struct.Struct("<Bh").pack
_pack_i32 = struct.Struct("<Bi").pack
_pack_i64 = struct.Struct("<Bq").pack
_pack_versioned_i16 = struct.Struct("<BBh").pack  # (encode() of an int: the version byte too)
_VERSIONED_SMALL_INTS: Final = tuple(_VERSION_PREFIX + small for small in _SMALL_INTS)
_S_DATETIME: Final = struct.Struct("<BHBBBBBIB")
_S_DATE: Final = struct.Struct("<BHBB")
_S_TIME: Final = struct.Struct("<BBBBIB")
_S_TIMEDELTA: Final = struct.Struct("<BiII")
_unpack_float = struct.Struct("<d").unpack_from
_unpack_i8 = struct.Struct("<b").unpack_from
_unpack_i16 = struct.Struct("<h").unpack_from
_unpack_i32 = struct.Struct("<i").unpack_from
_unpack_i64 = struct.Struct("<q").unpack_from
# The readers see the payload only (the tag byte is already consumed).
_S_DATETIME_BODY: Final = struct.Struct("<HBBBBBIB")
_S_DATE_BODY: Final = struct.Struct("<HBB")
_S_TIME_BODY: Final = struct.Struct("<BBBIB")
_S_TIMEDELTA_BODY: Final = struct.Struct("<iII")

_NoneType: Final = type(None)


# -- errors -----------------------------------------------------------------------------------------

_SUPPORTED_BASES: Final = (
    bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset,
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta, Decimal, uuid.UUID,
)  # fmt: skip


_CONVERSIONS: Final[dict[type, str]] = {
    # How to make the exact type from a subclass, where calling the base on the value fails
    # (datetime.datetime(value) raises TypeError). fromisoformat keeps the UTC offset of an aware
    # value, whatever its tzinfo class (pendulum's, pytz's), as a datetime.timezone.
    _dt.datetime: "datetime.datetime.fromisoformat(value.isoformat())",
    _dt.date: "datetime.date.fromordinal(value.toordinal())",
    _dt.time: "datetime.time.fromisoformat(value.isoformat())",
    _dt.timedelta: "datetime.timedelta(value.days, value.seconds, value.microseconds)",
    uuid.UUID: "uuid.UUID(int=value.int)",
}
"""Subclass conversions named in DataCloneError messages, for bases whose constructor takes no instance."""


def _clone_error(value: object) -> DataCloneError:
    """The DataCloneError for a value of an unsupported type, in Cloudflare's words."""
    cls = type(value)
    message = f'Could not serialize object of type "{cls.__name__}". This type does not support serialization.'
    if inspect.isawaitable(value):
        return DataCloneError(f"{message} (It is an awaitable: await it first, and send or store its result.)")
    if isinstance(value, Iterator):  # a generator, a SQL cursor, kv.list(): the values were meant
        fix = "its rows, cursor.to_array()," if hasattr(value, "to_array") else "list(value)"
        return DataCloneError(f"{message} (It is an iterator: send or store {fix} instead.)")
    # The two user types people most often try to store get the fix spelled out.
    if isinstance(value, enum.Enum):
        return DataCloneError(
            f"{message} (It is an Enum member: store its .value (or .name) and rebuild the member "
            f"with {cls.__qualname__}(value) (or {cls.__qualname__}[name]) after reading it.)"
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return DataCloneError(
            f"{message} (It is a dataclass instance: store dataclasses.asdict(value) and rebuild "
            f"it with {cls.__qualname__}(**data) after reading it.)"
        )
    transfer = _transfer_for(cls)
    if transfer is not None:
        return DataCloneError(f"{message} ({transfer.hint})")
    for base in _SUPPORTED_BASES:
        if isinstance(value, base):
            # The exact type is what round-trips; a subclass would come back as its base and lose
            # whatever the subclass adds (OrderedDict's methods, an enum's name, a namedtuple's
            # fields), so it is refused rather than silently changed.
            name = base.__qualname__
            if base.__module__ != "builtins":
                name = f"{base.__module__}.{name}"
            message += (
                f" (It is a subclass of {name}; only the exact type can be stored: convert it "
                f"first, e.g. with {_CONVERSIONS.get(base, f'{name}(value)')}.)"
            )
            break
    return DataCloneError(message)


def _tz_error(tz: object) -> DataCloneError:
    return DataCloneError(
        f'Could not serialize object of type "{type(tz).__qualname__}". '
        "This type does not support serialization. (The tzinfo of a datetime or time must be "
        "None, a datetime.timezone or a zoneinfo.ZoneInfo.)"
    )


class _Truncated(Exception):
    """Internal: the data ended inside a value (turned into a DataCorruptionError by ``decode``)."""


def _dicts_in(value: object) -> list[Any]:
    """Every dict (and dict-like) reachable from ``value``, once each, found without recursion."""
    found: list[Any] = []
    seen: set[int] = set()
    todo: list[Any] = [value]
    while todo:
        v = todo.pop()
        t = type(v)
        if t is dict or t in _DICT_LIKE:
            if id(v) not in seen:
                seen.add(id(v))
                found.append(v)
                todo.extend(chain.from_iterable(v.items()))
        elif t is list or t is tuple or t is set or t is frozenset or t in _LIST_LIKE:
            if id(v) not in seen:
                seen.add(id(v))
                todo.extend(v)
    return found


def _too_many_equal_hashes(items: Any) -> bool:
    """Whether more than MAX_EQUAL_HASHES of ``items`` share a hash value.

    Python's dicts and sets probe past every entry with the same hash: n keys with one hash take
    n**2 / 2 steps to insert. ``str`` and ``bytes`` hashes are randomized per process, so only the
    other types (ints, floats, Decimals, UUIDs, tuples of them...) can be made to collide on
    purpose, as in ``k * (2**61 - 1)``, which all hash to 0.
    """
    try:
        "".join(items)  # the fastest test, in C, that every item is a str: the common case
        return False
    except TypeError:
        pass
    if len(items) - len(set(map(hash, items))) < MAX_EQUAL_HASHES:
        return False  # fewer repeats in all than the limit allows for one hash value
    return max(Counter(map(hash, items)).values()) > MAX_EQUAL_HASHES


class _HashLimit(Exception):
    """Internal: a dict key or set member is beyond the hashing limits (the message says which)."""


def _check_hashed_tuple(root: tuple[Any, ...], memo: dict[int, tuple[int, int]]) -> None:
    """Raise _HashLimit if hashing ``root`` would go too deep or visit too many items.

    Computes, without hashing and without recursion, each nested tuple's size (its items, counted
    through nested tuples as ``hash`` visits them) and depth, once per tuple: ``memo`` maps the id
    of every tuple checked so far to its (size, depth), so shared tuples cost nothing the second
    time. The caller keeps every tuple in ``memo`` alive, so ids are not reused meanwhile.
    """
    if id(root) in memo:
        return
    stack = [root]
    while stack:
        node = stack[-1]
        waiting = False
        for item in node:
            if type(item) is tuple and id(item) not in memo:
                stack.append(item)
                waiting = True
        if waiting:
            continue  # its nested tuples first
        stack.pop()
        if id(node) in memo:
            continue  # pushed more than once (shared by siblings): done already
        size = len(node)
        depth = 1
        for item in node:
            if type(item) is tuple:
                item_size, item_depth = memo[id(item)]
                size += item_size
                if item_depth >= depth:
                    depth = item_depth + 1
        if depth > MAX_HASHED_TUPLE_DEPTH:
            raise _HashLimit(f"tuples nested more than {MAX_HASHED_TUPLE_DEPTH} deep")
        if size > MAX_HASHED_TUPLE_SIZE:
            raise _HashLimit(f"a tuple of more than {MAX_HASHED_TUPLE_SIZE} items counted through its nested tuples")
        memo[id(node)] = (size, depth)


def _check_hashed(items: Any, memo: dict[int, tuple[int, int]]) -> None:
    """Check every tuple among ``items`` (dict keys or set members) with _check_hashed_tuple."""
    for item in items:
        if type(item) is tuple:
            _check_hashed_tuple(item, memo)


def _hash_clone_error(exc: _HashLimit, where: str) -> DataCloneError:
    return DataCloneError(
        f"Could not serialize a {where}: it holds {exc}, beyond what durable stores in a dict key "
        "or a set member (hashing it back would be too costly)."
    )


def _spread_clone_error(kind: str) -> DataCloneError:
    return DataCloneError(
        f"Could not serialize a {kind} in which more than {MAX_EQUAL_HASHES} keys or members share "
        "a hash value: durable refuses to read such data back, since building it takes time "
        "quadratic in its size."
    )


def _sets_clone_error() -> DataCloneError:
    return DataCloneError(
        f"Could not serialize a value holding more than {MAX_SETS} sets and frozensets: durable "
        "stores at most that many in one value (each takes about 216 bytes when read back)."
    )


# -- encoding ---------------------------------------------------------------------------------------


def _uvarint(n: int) -> bytes:
    if n < 0x80:
        return _BYTE[n]
    buf = bytearray()
    while n >= 0x80:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)
    return bytes(buf)


def _svarint(n: int) -> bytes:
    """Zigzag-encoded signed varint: 0, -1, 1, -2, ... become 0, 1, 2, 3, ..."""
    return _uvarint(n << 1 if n >= 0 else (-n << 1) - 1)


def _header(tag: int, n: int) -> bytes:
    return _BYTE[tag] + _uvarint(n)


def _text(s: str) -> bytes:
    """Length-prefixed UTF-8, as used inside other payloads (time zone names and keys)."""
    b = _utf8(s)
    return _uvarint(len(b)) + b


def _enc_none(v: None) -> bytes:
    return b"\x00"


def _enc_bool(v: bool) -> bytes:
    return b"\x02" if v else b"\x01"


def _enc_int(v: int) -> bytes:
    if 0 <= v < 0x80:
        return _SMALL_INTS[v]
    if -0x80 <= v < 0x80:
        return _pack_i8(_INT8, v)
    if -0x8000 <= v < 0x8000:
        return _pack_i16(_INT16, v)
    if -0x8000_0000 <= v < 0x8000_0000:
        return _pack_i32(_INT32, v)
    if -0x8000_0000_0000_0000 <= v < 0x8000_0000_0000_0000:
        return _pack_i64(_INT64, v)
    n = ((v if v >= 0 else ~v).bit_length() + 8) >> 3  # magnitude bits plus a sign bit
    return _header(_BIGINT, n) + v.to_bytes(n, "little", signed=True)


def _utf8(v: str) -> bytes:
    # 'surrogatepass' keeps lone surrogates ("\ud800"), which are valid Python strings. Strict
    # encoding gives the same bytes for every other string and is faster, so it is tried first.
    try:
        return v.encode()
    except UnicodeEncodeError:
        return v.encode("utf-8", "surrogatepass")


def _enc_str(v: str) -> bytes:
    b = _utf8(v)
    n = len(b)
    if n < 64:
        return _SHORT_STR_HEADERS[n] + b
    return _header(_STR, n) + b


def _enc_bytes(v: bytes) -> bytes:
    return _header(_BYTES, len(v)) + v


def _enc_tz(tz: object) -> tuple[int, bytes]:
    """The time zone kind and payload of a tzinfo, or DataCloneError if it cannot be stored."""
    cls = type(tz)
    if cls is _dt.timezone:
        # __getinitargs__ is what pickle uses: (offset,) or (offset, name), telling a name given
        # to the constructor from the generated one ("UTC+01:00"), so that repr() round-trips too.
        args = getattr(tz, "__getinitargs__")()
        offset: _dt.timedelta = args[0]
        us = (offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds
        if len(args) == 1:
            return _TZ_OFFSET, _svarint(us)
        return _TZ_NAMED_OFFSET, _svarint(us) + _text(args[1])
    if cls is zoneinfo.ZoneInfo:
        key: str | None = getattr(tz, "key")
        if key is None:
            raise DataCloneError(
                'Could not serialize object of type "ZoneInfo". This type does not support '
                "serialization. (A ZoneInfo made with ZoneInfo.from_file() has no key; only "
                'zones made with ZoneInfo("Area/City") can be stored.)'
            )
        return _TZ_ZONEINFO, _text(key)
    raise _tz_error(tz)


def _enc_datetime(v: _dt.datetime) -> bytes:
    tz = v.tzinfo
    if tz is None:
        kind, payload = _TZ_NONE, b""
    else:
        kind, payload = _enc_tz(tz)
    head = _S_DATETIME.pack(
        _DATETIME, v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond,
        v.fold | kind << 1,
    )  # fmt: skip
    return head + payload


def _enc_date(v: _dt.date) -> bytes:
    return _S_DATE.pack(_DATE, v.year, v.month, v.day)


def _enc_time(v: _dt.time) -> bytes:
    tz = v.tzinfo
    if tz is None:
        kind, payload = _TZ_NONE, b""
    else:
        kind, payload = _enc_tz(tz)
    head = _S_TIME.pack(_TIME, v.hour, v.minute, v.second, v.microsecond, v.fold | kind << 1)
    return head + payload


def _enc_timedelta(v: _dt.timedelta) -> bytes:
    return _S_TIMEDELTA.pack(_TIMEDELTA, v.days, v.seconds, v.microseconds)


def _enc_decimal(v: Decimal) -> bytes:
    # as_tuple() is exact: sign, every digit of the coefficient and the exponent, so 1.0 and 1.00,
    # -0 and 0, NaN payloads and sNaN all come back as they were.
    sign, digits, exponent = v.as_tuple()
    if isinstance(exponent, int):
        return _BYTE[_DECIMAL] + _BYTE[sign] + _svarint(exponent) + _uvarint(len(digits)) + bytes(digits)
    kind = _DECIMAL_KINDS.index(exponent) + 1
    return _BYTE[_DECIMAL] + _BYTE[sign | kind << 1] + _uvarint(len(digits)) + bytes(digits)


def _enc_uuid(v: uuid.UUID) -> bytes:
    return _BYTE[_UUID] + v.bytes


# Immutable scalar types: one call returns their whole encoding. Containers are walked by
# _encode_container. Exact types only: dispatch is on type(v), so subclasses miss and are refused.
_SCALAR_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    str: _enc_str,
    int: _enc_int,
    float: lambda v: _pack_float(_FLOAT, v),
    bool: _enc_bool,
    _NoneType: _enc_none,
    bytes: _enc_bytes,
    _dt.datetime: _enc_datetime,
    _dt.date: _enc_date,
    _dt.time: _enc_time,
    _dt.timedelta: _enc_timedelta,
    Decimal: _enc_decimal,
    uuid.UUID: _enc_uuid,
}


last_int: tuple[bytes, int] = (_VERSIONED_SMALL_INTS[0], 0)  # (not b"": a zero-length blob read is that object)
"""The last ``int`` :func:`encode` encoded, as ``(its bytes, the int)``: :func:`decode` of that very
``bytes`` object answers the int without parsing it. An increment reads back the bytes the
previous call's ``put`` encoded (from the write buffer, or the key-value cache after the commit),
so the read costs one identity test. Only an ``int``: it is immutable, so handing back the same
object is no copy to make (a mutable value must come back as a new object). One tuple, replaced
whole and read once by :func:`decode`, so a thread never sees one call's bytes with another's
int; it keeps that one int and its bytes alive until the next int is encoded. seq-increment 76,156 -> 74,334, conc-increment
65,249 -> 63,418 instructions (callgrind, twelfth pass, docs/performance.md)."""


def encode(value: object) -> bytes:
    """Serialize a structured-clone value to bytes.

    The result starts with :data:`FORMAT_VERSION` and is read back by :func:`decode`. The same value
    gives the same bytes every time.

    >>> decode(encode({"n": 1, "tags": ("a", "b")}))
    {'n': 1, 'tags': ('a', 'b')}

    Args:
        value: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``bytearray``, ``list``,
            ``tuple``, ``dict``, ``set``, ``frozenset``, ``datetime``/``date``/``time``/``timedelta``,
            ``decimal.Decimal`` or ``uuid.UUID`` (exact types, nested to any depth, shared references
            and cycles allowed).

    Raises:
        DataCloneError: the value, or something inside it, is of another type (subclasses
            included), or a ``datetime``/``time`` has a tzinfo other than ``datetime.timezone`` or
            a keyed ``zoneinfo.ZoneInfo``.
    """
    if type(value) is int:
        global last_int
        # _VERSION_PREFIX + _enc_int(value), with neither the call nor the concatenation for
        # 0 <= value < 0x8000 (the same bytes; a small int's are made once): conc-increment
        # 58,378 -> 57,340, seq-increment 71,848 -> 70,784 instructions (callgrind, thirteenth
        # pass, docs/performance.md).
        if 0 <= value < 0x8000:
            blob = _VERSIONED_SMALL_INTS[value] if value < 0x80 else _pack_versioned_i16(FORMAT_VERSION, _INT16, value)
        else:
            blob = _VERSION_PREFIX + _enc_int(value)
        last_int = (blob, value)  # for decode() (see last_int)
        return blob
    f = _SCALAR_ENCODERS.get(type(value))
    if f is not None:
        return _VERSION_PREFIX + f(value)
    out = [_VERSION_PREFIX]
    _encode_container(value, out)
    return b"".join(out)


def _pack_array(v: list[Any], n: int) -> bytes | None:
    """The packed encoding of a list of only ints (that fit in 64 bits) or only floats, else None.

    Lists of numbers are common (series, vectors, ids). Ints take the narrowest width that holds
    them all; bools are not ints here (their type must survive), so a list holding one is not packed.
    """
    first = type(v[0])
    if first is int:
        if len(set(map(type, v))) == 1:
            for code, letter in enumerate("bhiq"):
                try:
                    packed = struct.pack(f"<{n}{letter}", *v)
                except struct.error:  # a value out of range for this width: try the next one
                    continue
                return _header(_INT_ARRAY, n) + _BYTE[code] + packed
    elif first is float:
        if len(set(map(type, v))) == 1:
            return _header(_FLOAT_ARRAY, n) + struct.pack(f"<{n}d", *v)
    return None


def _encode_container(value: object, out: list[bytes]) -> None:
    """Append the encoding of ``value`` to ``out``, walking containers with an explicit stack."""
    append = out.append
    scalar_encoder = _SCALAR_ENCODERS.get
    small_ints = _SMALL_INTS
    short_str_headers = _SHORT_STR_HEADERS
    pack_float = _pack_float
    memo: dict[int, int] = {}  # id(container) -> its number (see the module docstring)
    memo_get = memo.get
    count = 0  # containers numbered so far
    sets = 0  # sets and frozensets so far (at most MAX_SETS)
    hashed: dict[int, tuple[int, int]] = {}  # tuples in keys and members checked (_check_hashed)
    # Dict keys are checked at the end, and only if a tuple was met inside a dict (as a key or a
    # value; the iterator of a dict's items is a chain): scanning every dict's keys as it is
    # written would slow down the common case (str keys, no tuples).
    tuple_in_dict = False
    # Each stack entry is the parent's iterator and its pending tuple/frozenset (or None).
    stack: list[tuple[Any, Any]] = []
    it: Any = iter((value,))
    pending: tuple[Any, int] | None = None  # (tuple or frozenset being written, index of its header)
    while True:
        for v in it:
            t = type(v)
            # str and small ints are most of the items in real documents: inline them.
            if t is str:
                try:
                    b = v.encode()
                except UnicodeEncodeError:
                    b = v.encode("utf-8", "surrogatepass")
                n = len(b)
                append((short_str_headers[n] if n < 64 else _header(_STR, n)) + b)
                continue
            if t is int and 0 <= v < 0x80:
                append(small_ints[v])
                continue
            if t is float:
                append(pack_float(_FLOAT, v))
                continue
            if v is None:
                append(b"\x00")
                continue
            if t is bool:
                append(b"\x02" if v else b"\x01")
                continue
            f = scalar_encoder(t)
            if f is not None:
                append(f(v))
                continue
            oid = id(v)
            ref = memo_get(oid)
            if ref is not None:
                append(_REF_HEADERS[ref] if ref < 128 else _header(_REF, ref))
                continue
            if t is dict or t in _DICT_LIKE:
                memo[oid] = count
                count += 1
                n = len(v)
                if n >= _BIG_CONTAINER and _too_many_equal_hashes(v):
                    raise _spread_clone_error("dict")
                append(_DICT_HEADERS[n] if n < 128 else _header(_DICT, n))
                if n:
                    stack.append((it, pending))
                    it = chain.from_iterable(v.items())
                    pending = None
                    break
            elif t is list or t in _LIST_LIKE:
                memo[oid] = count
                count += 1
                n = len(v)
                if n >= _ARRAY_MIN_LEN:
                    packed = _pack_array(v, n)
                    if packed is not None:
                        append(packed)
                        continue
                append(_LIST_HEADERS[n] if n < 128 else _header(_LIST, n))
                if n:
                    stack.append((it, pending))
                    it = iter(v)
                    pending = None
                    break
            elif t is tuple or t is frozenset:
                # Numbered only once complete (the reader can only build it then): see the
                # `else` clause below.
                n = len(v)
                if t is tuple:
                    if type(it) is chain:
                        tuple_in_dict = True
                else:
                    sets += 1
                    if sets > MAX_SETS:
                        raise _sets_clone_error()
                    if n and tuple in map(type, v):
                        try:
                            _check_hashed(v, hashed)
                        except _HashLimit as exc:
                            raise _hash_clone_error(exc, "frozenset member") from None
                    if n >= _BIG_CONTAINER and _too_many_equal_hashes(v):
                        raise _spread_clone_error("frozenset")
                if n:
                    stack.append((it, pending))
                    pending = (v, len(out))
                    if t is tuple:
                        append(_TUPLE_HEADERS[n] if n < 128 else _header(_TUPLE, n))
                    else:
                        append(_FROZENSET_HEADERS[n] if n < 128 else _header(_FROZENSET, n))
                    it = iter(v)
                    break
                memo[oid] = count
                count += 1
                append(_TUPLE_HEADERS[0] if t is tuple else _FROZENSET_HEADERS[0])
            elif t is set:
                memo[oid] = count
                count += 1
                sets += 1
                if sets > MAX_SETS:
                    raise _sets_clone_error()
                n = len(v)
                if n and tuple in map(type, v):
                    try:
                        _check_hashed(v, hashed)
                    except _HashLimit as exc:
                        raise _hash_clone_error(exc, "set member") from None
                if n >= _BIG_CONTAINER and _too_many_equal_hashes(v):
                    raise _spread_clone_error("set")
                append(_SET_HEADERS[n] if n < 128 else _header(_SET, n))
                if n:
                    stack.append((it, pending))
                    it = iter(v)
                    pending = None
                    break
            elif t is bytearray:
                memo[oid] = count
                count += 1
                append(_header(_BYTEARRAY, len(v)))
                append(bytes(v))
            else:
                raise _clone_error(v)
        else:
            # `it` is exhausted: the container on top of the stack is complete.
            if pending is not None:
                obj, header_index = pending
                oid = id(obj)
                ref = memo_get(oid)
                if ref is None:
                    memo[oid] = count
                    count += 1
                else:
                    # The tuple was written again, complete, inside its own items (a cycle through
                    # a mutable container): the reader uses that copy and drops this one.
                    out[header_index] = _header(_SUPERSEDED, len(obj)) + _uvarint(ref)
            if not stack:
                if tuple_in_dict:
                    for d in _dicts_in(value):
                        if tuple in map(type, d):
                            try:
                                _check_hashed(d, hashed)
                            except _HashLimit as exc:
                                raise _hash_clone_error(exc, "dict key") from None
                return
            it, pending = stack.pop()


# -- decoding ---------------------------------------------------------------------------------------

# Frame kinds of the decoder. Kinds below _K_DICT collect their items with list.append.
_K_LIST: Final = 0
_K_TUPLE: Final = 1
_K_FROZENSET: Final = 2
_K_SUPERSEDED: Final = 3
_K_DICT: Final = 4
_K_SET: Final = 5
_K_BIG_DICT: Final = 6  # a dict of at least _BIG_CONTAINER pairs: items collected, checked, then added


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    return _read_uvarint_tail(data, pos, b)


def _read_uvarint_tail(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """Continue a varint whose first byte, ``first``, had the continuation bit set."""
    result = first & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DataCorruptionError(f"varint longer than 10 bytes at offset {pos}")


def _read_svarint(data: bytes, pos: int) -> tuple[int, int]:
    z, pos = _read_uvarint(data, pos)
    return (z >> 1) ^ -(z & 1), pos


def _take(data: bytes, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if end > len(data):
        raise _Truncated
    return data[pos:end], end


def _read_text(data: bytes, pos: int) -> tuple[str, int]:
    n, pos = _read_uvarint(data, pos)
    b, pos = _take(data, pos, n)
    try:
        return b.decode(), pos
    except UnicodeDecodeError:  # lone surrogates (see _utf8), or damage
        return b.decode("utf-8", "surrogatepass"), pos


def _r_none(data: bytes, pos: int) -> tuple[object, int]:
    return None, pos


def _r_false(data: bytes, pos: int) -> tuple[object, int]:
    return False, pos


def _r_true(data: bytes, pos: int) -> tuple[object, int]:
    return True, pos


def _r_int8(data: bytes, pos: int) -> tuple[object, int]:
    return _unpack_i8(data, pos)[0], pos + 1


def _r_int16(data: bytes, pos: int) -> tuple[object, int]:
    return _unpack_i16(data, pos)[0], pos + 2


def _r_int32(data: bytes, pos: int) -> tuple[object, int]:
    return _unpack_i32(data, pos)[0], pos + 4


def _r_int64(data: bytes, pos: int) -> tuple[object, int]:
    return _unpack_i64(data, pos)[0], pos + 8


def _r_bigint(data: bytes, pos: int) -> tuple[object, int]:
    n, pos = _read_uvarint(data, pos)
    b, pos = _take(data, pos, n)
    return int.from_bytes(b, "little", signed=True), pos


def _r_float(data: bytes, pos: int) -> tuple[object, int]:
    return _unpack_float(data, pos)[0], pos + 8


def _r_str(data: bytes, pos: int) -> tuple[object, int]:
    return _read_text(data, pos)


def _r_bytes(data: bytes, pos: int) -> tuple[object, int]:
    n, pos = _read_uvarint(data, pos)
    return _take(data, pos, n)


def _read_tz(kind: int, data: bytes, pos: int) -> tuple[_dt.tzinfo | None, int]:
    if kind == _TZ_NONE:
        return None, pos
    if kind == _TZ_ZONEINFO:
        key, pos = _read_text(data, pos)
        try:
            return zoneinfo.ZoneInfo(key), pos
        except (KeyError, ValueError, OSError) as exc:
            raise DataCorruptionError(
                f"time zone {key!r} is not available on this system (install the tzdata "
                "package?) or is not a valid zone key"
            ) from exc
    us, pos = _read_svarint(data, pos)
    offset = _dt.timedelta(microseconds=us)
    if kind == _TZ_NAMED_OFFSET:
        name, pos = _read_text(data, pos)
        return _dt.timezone(offset, name), pos
    return _dt.timezone(offset), pos


def _check_flags(flags: int) -> None:
    if flags > 7:
        raise DataCorruptionError(f"invalid datetime/time flags 0x{flags:02x}")


def _r_datetime(data: bytes, pos: int) -> tuple[object, int]:
    y, mo, d, h, mi, s, us, flags = _S_DATETIME_BODY.unpack_from(data, pos)
    _check_flags(flags)
    tz, pos = _read_tz(flags >> 1, data, pos + _S_DATETIME_BODY.size)
    return _dt.datetime(y, mo, d, h, mi, s, us, tz, fold=flags & 1), pos


def _r_date(data: bytes, pos: int) -> tuple[object, int]:
    y, mo, d = _S_DATE_BODY.unpack_from(data, pos)
    return _dt.date(y, mo, d), pos + _S_DATE_BODY.size


def _r_time(data: bytes, pos: int) -> tuple[object, int]:
    h, mi, s, us, flags = _S_TIME_BODY.unpack_from(data, pos)
    _check_flags(flags)
    tz, pos = _read_tz(flags >> 1, data, pos + _S_TIME_BODY.size)
    return _dt.time(h, mi, s, us, tz, fold=flags & 1), pos


def _r_timedelta(data: bytes, pos: int) -> tuple[object, int]:
    days, seconds, us = _S_TIMEDELTA_BODY.unpack_from(data, pos)
    if not (0 <= seconds < 86400 and 0 <= us < 1_000_000):
        raise DataCorruptionError("invalid timedelta fields")
    return _dt.timedelta(days, seconds, us), pos + _S_TIMEDELTA_BODY.size


def _r_decimal(data: bytes, pos: int) -> tuple[object, int]:
    flags = data[pos]
    pos += 1
    sign = flags & 1
    kind = flags >> 1
    exponent: int | str
    if kind == 0:
        exponent, pos = _read_svarint(data, pos)
    elif kind <= 3:
        exponent = _DECIMAL_KINDS[kind - 1]
    else:
        raise DataCorruptionError(f"invalid Decimal flags 0x{flags:02x}")
    n, pos = _read_uvarint(data, pos)
    digits, pos = _take(data, pos, n)
    if digits and max(digits) > 9:
        raise DataCorruptionError("invalid Decimal digit")
    # typeshed declares only int exponents; the constructor also takes as_tuple()'s "n", "N", "F".
    return Decimal((sign, tuple(digits), exponent)), pos  # type: ignore[arg-type]


def _r_uuid(data: bytes, pos: int) -> tuple[object, int]:
    b, pos = _take(data, pos, 16)
    return uuid.UUID(bytes=b), pos


def _r_unknown(data: bytes, pos: int) -> tuple[object, int]:
    raise DataCorruptionError(f"unknown type tag 0x{data[pos - 1]:02x} at offset {pos - 1}")


_Reader = Callable[[bytes, int], tuple[object, int]]
_SCALAR_READERS: Final[tuple[_Reader, ...]] = (
    _r_none, _r_false, _r_true, _r_int8, _r_int16, _r_int32, _r_int64, _r_bigint,
    _r_float, _r_str, _r_bytes, _r_datetime, _r_date, _r_time, _r_timedelta, _r_decimal,
    _r_uuid,
) + (_r_unknown,) * (0x20 - 0x11)  # fmt: skip


_FIXED_SCALARS: Final[dict[int, tuple[int, Callable[[bytes, int], tuple[Any, ...]]]]] = {
    _INT8: (3, _unpack_i8),
    _INT16: (4, _unpack_i16),
    _INT32: (6, _unpack_i32),
    _INT64: (10, _unpack_i64),
    _FLOAT: (10, _unpack_float),
}
"""Lone fixed-size scalars, for the fast path of :func:`decode`: tag -> (whole length, reader)."""


def decode(data: bytes | bytearray | memoryview) -> object:
    """Rebuild the value that :func:`encode` serialized.

    Every mutable container in the result is a new object; shared references and cycles come back
    as they were. Decoding builds only the supported built-in types and never runs code named by
    the data.

    >>> decode(encode([1.5, None, b"x"]))
    [1.5, None, b'x']

    Args:
        data: bytes produced by :func:`encode` (a ``memoryview`` or ``bytearray`` is read as bytes).

    Raises:
        DataCorruptionError: the data is not bytes (a value SQLite stored as TEXT, INTEGER or
            REAL), is empty, has an unknown format version, is truncated, contains an invalid tag,
            reference or field, has bytes after the value, or is beyond the limits in the module
            docstring (tuples too deep or too large to hash as keys, too many sets).
    """
    # The very bytes encode() made last for an int (see last_int; read once: a thread may replace it).
    if data is (last := last_int)[0]:
        return last[1]
    if type(data) is not bytes:
        if not isinstance(data, (bytearray, memoryview)):
            # What SQLite hands back for a value stored as TEXT, INTEGER or REAL (or NULL): durable
            # only ever writes BLOBs, so the database was written by something else, or damaged.
            raise DataCorruptionError(
                f"a stored value must be the bytes (a BLOB) written by durable's codec, not "
                f"{type(data).__name__} {_preview(data)}: the database was changed by another "
                "program, or is damaged"
            )
        data = bytes(memoryview(data))
    end = len(data)
    if end < 2:
        if not data:
            raise DataCorruptionError("cannot decode empty data: there is no format version byte")
    elif data[0] == FORMAT_VERSION:
        # Fast paths for a lone small int or short str; anything else takes the general path.
        tag = data[1]
        if tag >= _SMALL_INT:
            if end == 2:
                return tag - _SMALL_INT
        elif tag >= _SHORT_STR:
            if end == tag - _SHORT_STR + 2:
                try:
                    return data[2:].decode()
                except UnicodeDecodeError:
                    pass  # surrogates or damage: the general path tells them apart
        elif (fixed := _FIXED_SCALARS.get(tag)) is not None and end == fixed[0]:
            return fixed[1](data, 2)[0]
    if data[0] != FORMAT_VERSION:
        raise DataCorruptionError(
            f"unsupported format version {data[0]} (this version of durable reads version "
            f"{FORMAT_VERSION}): the data was not written by this codec, or is damaged"
        )
    try:
        return _decode_body(data)
    except DataCorruptionError:
        raise
    except (_Truncated, IndexError, struct.error) as exc:
        raise DataCorruptionError(f"truncated data: the {end} bytes end in the middle of a value") from exc
    except UnicodeDecodeError as exc:
        raise DataCorruptionError(f"invalid UTF-8 in a string: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, KeyError, RecursionError) as exc:
        # Out-of-range datetime fields, an unhashable set member or dict key, a bad Decimal, keys
        # nested too deeply to compare (only crafted data gets there), ...
        raise DataCorruptionError(f"invalid value in data: {exc}") from exc


def _decode_body(data: bytes) -> object:
    """Decode the value after the version byte, with an explicit stack of open containers.

    The open container is described by four variables: ``kind``; ``target``, the list or dict being
    filled (for a tuple, frozenset or set: the list of its items so far); ``left``, how many items
    it still expects (a dict expects a key and a value per pair); and ``aux``: a dict's pending key,
    a set's set object, or a superseded tuple's reference. The root is a list of one item.
    """
    end = len(data)
    pos = 1
    readers = _SCALAR_READERS
    constants = _CONSTANTS
    unpack_float = _unpack_float
    refs: list[Any] = []  # containers, by number (which also keeps alive the tuples in `hashed`)
    stack: list[tuple[int, Any, int, Any]] = []
    sets = 0  # sets and frozensets so far (at most MAX_SETS)
    hashed: dict[int, tuple[int, int]] = {}  # tuples in keys and members checked (_check_hashed)
    kind = _K_LIST
    target: Any = []
    left = 1
    aux: Any = None
    v: Any
    while True:
        # Read scalar items into the open container until it is full or a container tag comes.
        # The two loops differ only in how they store v: keep them in step.
        if kind == _K_DICT:
            while left:
                tag = data[pos]
                pos += 1
                if tag >= _SHORT_STR:
                    if tag >= _SMALL_INT:
                        v = tag - _SMALL_INT
                    else:
                        e = pos + tag - _SHORT_STR
                        if e > end:
                            raise _Truncated
                        try:
                            v = data[pos:e].decode()
                        except UnicodeDecodeError:
                            v = data[pos:e].decode("utf-8", "surrogatepass")
                        pos = e
                elif tag <= _TRUE:
                    v = constants[tag]
                elif tag == _FLOAT:
                    v = unpack_float(data, pos)[0]
                    pos += 8
                elif tag < _LIST:
                    v, pos = readers[tag](data, pos)
                else:
                    break
                if left & 1:
                    target[aux] = v
                else:
                    aux = v
                left -= 1
        else:
            append = target.append
            while left:
                tag = data[pos]
                pos += 1
                if tag >= _SHORT_STR:
                    if tag >= _SMALL_INT:
                        v = tag - _SMALL_INT
                    else:
                        e = pos + tag - _SHORT_STR
                        if e > end:
                            raise _Truncated
                        try:
                            v = data[pos:e].decode()
                        except UnicodeDecodeError:
                            v = data[pos:e].decode("utf-8", "surrogatepass")
                        pos = e
                elif tag <= _TRUE:
                    v = constants[tag]
                elif tag == _FLOAT:
                    v = unpack_float(data, pos)[0]
                    pos += 8
                elif tag < _LIST:
                    v, pos = readers[tag](data, pos)
                else:
                    break
                append(v)
                left -= 1

        if left:
            # `tag`, just read, starts a container or a back-reference.
            if tag > _LAST_TAG:
                raise DataCorruptionError(f"unknown type tag 0x{tag:02x} at offset {pos - 1}")
            n = data[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _read_uvarint_tail(data, pos, n)
            # Most common first. A container's items take at least one byte each, so a count
            # larger than what is left is refused before anything is allocated.
            if tag == _DICT:
                if 2 * n > end - pos:
                    raise _bad_count(n, pos, end)
                v = {}
                refs.append(v)
                if n:
                    stack.append((kind, target, left, aux))
                    if n < _BIG_CONTAINER:
                        kind, target, left, aux = _K_DICT, v, 2 * n, None
                    else:
                        kind, target, left, aux = _K_BIG_DICT, [], 2 * n, v
                    continue
            elif tag == _LIST:
                if n > end - pos:
                    raise _bad_count(n, pos, end)
                v = []
                refs.append(v)
                if n:
                    stack.append((kind, target, left, aux))
                    kind, target, left, aux = _K_LIST, v, n, None
                    continue
            elif tag == _REF:
                if n >= len(refs):
                    raise DataCorruptionError(
                        f"invalid back-reference #{n} before offset {pos} ({len(refs)} containers so far)"
                    )
                v = refs[n]
            elif tag == _TUPLE or tag == _FROZENSET:
                # Numbered when complete, like the encoder does.
                if n > end - pos:
                    raise _bad_count(n, pos, end)
                if tag == _FROZENSET:
                    sets += 1
                    if sets > MAX_SETS:
                        raise _too_many_sets()
                if n:
                    stack.append((kind, target, left, aux))
                    kind, target, left, aux = (_K_TUPLE if tag == _TUPLE else _K_FROZENSET, [], n, None)
                    continue
                v = () if tag == _TUPLE else frozenset()
                refs.append(v)
            elif tag == _SET:
                # Numbered now, filled when complete: its members are hashable, so none of them
                # can refer back to it.
                if n > end - pos:
                    raise _bad_count(n, pos, end)
                sets += 1
                if sets > MAX_SETS:
                    raise _too_many_sets()
                v = set()
                refs.append(v)
                if n:
                    stack.append((kind, target, left, aux))
                    kind, target, left, aux = _K_SET, [], n, v
                    continue
            elif tag == _INT_ARRAY:
                code = data[pos]
                pos += 1
                if code > 3:
                    raise DataCorruptionError(f"invalid int array width code {code}")
                e = pos + (n << code)
                if e > end:
                    raise _Truncated
                v = list(struct.unpack_from(f"<{n}{'bhiq'[code]}", data, pos))
                pos = e
                refs.append(v)
            elif tag == _FLOAT_ARRAY:
                e = pos + 8 * n
                if e > end:
                    raise _Truncated
                v = list(struct.unpack_from(f"<{n}d", data, pos))
                pos = e
                refs.append(v)
            elif tag == _BYTEARRAY:
                e = pos + n
                if e > end:
                    raise _Truncated
                v = bytearray(data[pos:e])
                pos = e
                refs.append(v)
            else:  # _SUPERSEDED
                index, pos = _read_uvarint(data, pos)
                if n > end - pos:
                    raise _bad_count(n, pos, end)
                if n:
                    stack.append((kind, target, left, aux))
                    kind, target, left, aux = _K_SUPERSEDED, [], n, index
                    continue
                v = _superseded(refs, index)
        else:
            # The open container is complete: build it and return to its parent.
            if not stack:
                if pos != end:
                    raise DataCorruptionError(
                        f"{end - pos} unexpected bytes after the end of the value (at offset {pos})"
                    )
                return target[0]
            if kind == _K_LIST or kind == _K_DICT:
                v = target
            elif kind == _K_BIG_DICT:
                keys = target[::2]
                if tuple in map(type, keys):
                    _check_members(keys, hashed)
                _check_spread(keys)
                aux.update(zip(keys, target[1::2]))
                v = aux
            elif kind == _K_TUPLE:
                v = tuple(target)
                refs.append(v)
            elif kind == _K_SET:
                if tuple in map(type, target):
                    _check_members(target, hashed)
                if len(target) >= _BIG_CONTAINER:
                    _check_spread(target)
                aux.update(target)
                v = aux
            elif kind == _K_FROZENSET:
                if tuple in map(type, target):
                    _check_members(target, hashed)
                if len(target) >= _BIG_CONTAINER:
                    _check_spread(target)
                v = frozenset(target)
                refs.append(v)
            else:
                v = _superseded(refs, aux)
            kind, target, left, aux = stack.pop()

        # Store v, a container or reference, in the open container.
        if kind == _K_DICT:
            if left & 1:
                target[aux] = v
            else:
                aux = v
                if type(v) is tuple:
                    _check_members((v,), hashed)
        else:
            target.append(v)
        left -= 1


_CONSTANTS: Final = (None, False, True)  # tags 0x00-0x02


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_members(items: Any, hashed: dict[int, tuple[int, int]]) -> None:
    """Refuse, before they are hashed, dict keys or set members beyond the hashing limits."""
    try:
        _check_hashed(items, hashed)
    except _HashLimit as exc:
        raise DataCorruptionError(
            f"a dict key or set member holds {exc}: refused, since hashing it would take too long "
            "or overflow the stack (only crafted data gets there)"
        ) from None


def _check_spread(items: Any) -> None:
    """Refuse the keys or members of one big container if too many of them share a hash value."""
    if _too_many_equal_hashes(items):
        raise DataCorruptionError(
            f"more than {MAX_EQUAL_HASHES} keys or members of one dict, set or frozenset share a hash "
            "value: refused, since building it would take time quadratic in its size (only crafted "
            "data gets there)"
        )


def _too_many_sets() -> DataCorruptionError:
    return DataCorruptionError(
        f"the value holds more than {MAX_SETS} sets and frozensets, more than durable ever writes "
        "in one value (only crafted data gets there)"
    )


def _bad_count(n: int, pos: int, end: int) -> DataCorruptionError:
    return DataCorruptionError(f"container before offset {pos} claims {n} items, but only {end - pos} bytes follow")


def _superseded(refs: list[Any], index: int) -> Any:
    if index >= len(refs) or type(refs[index]) is not tuple:
        raise DataCorruptionError(f"a superseded tuple refers to #{index}, which is not a tuple")
    return refs[index]


# -- clone ------------------------------------------------------------------------------------------

# Values that are immutable and contain nothing: clone returns them as they are. datetime and time
# are immutable too but their tzinfo must be checked; tuple and frozenset may contain mutables.
_ATOMIC: Final = frozenset({_NoneType, bool, int, float, str, bytes, _dt.date, _dt.timedelta, Decimal, uuid.UUID})

ATOMIC_TYPES: Final = _ATOMIC
"""The exact types :func:`clone` returns as they are. A hot path may test ``type(v) in ATOMIC_TYPES``
and skip the call (an RPC result is most often one of them; see docs/performance.md)."""

# Depth up to which clone recurses; deeper values go through encode/decode, which use an explicit
# stack. Real documents are far shallower, and this stays well inside the interpreter's limit.
_CLONE_MAX_DEPTH: Final = 100


class _TooDeep(Exception):
    pass


class Transfer(NamedTuple):
    """How :func:`clone` carries instances of a type that crosses RPC but is never stored."""

    copy: Callable[[Any], Any]
    """Make the receiver's object from the sender's; raise ``TypeError`` if it cannot be sent."""
    hint: str
    """Appended to the ``DataCloneError`` that storage raises for it."""
    moved: Callable[[Any], None] | None = None
    """Called on each sender's object once the whole value is copied (its body moved); ``None``:
    the sender keeps all of it."""


_TRANSFERS: dict[type, Transfer] = {}
"""Types that cross RPC but not storage (``register_transfer``): workerd's ``Request``,
``Response`` and ``Headers``. Only :func:`clone` (RPC's copy) consults it; :func:`encode`
(storage's) refuses them, with the hint."""

_MOVED: Final = -1
"""The key in a clone's memo under which the originals that give something up wait, with their
``Transfer.moved`` (no ``id()`` is negative)."""


def register_transfer(cls: type, transfer: Transfer) -> None:
    """Let :func:`clone` carry ``cls`` and its subclasses, as ``transfer`` says (layer 0 knows no HTTP)."""
    _TRANSFERS[cls] = transfer


def _transfer_for(t: type) -> Transfer | None:
    if not _TRANSFERS:
        return None
    found = _TRANSFERS.get(t)
    if found is None:
        found = next((_TRANSFERS[base] for base in t.__mro__ if base in _TRANSFERS), None)
    return found


def clone(value: object) -> object:
    """Return a structured-clone copy of ``value``: the same result as ``decode(encode(value))``.

    Used for RPC arguments and results, which may also hold the types registered with
    :func:`register_transfer` (workerd's ``Request``, ``Response``, ``Headers``, stubs) in a value
    nested less deep than the recursion limit lets; storage refuses those. Mutable containers are copied, shared references and
    cycles are kept; immutable values (including tuples and frozensets that hold only immutable
    values) may be returned as they are, which no caller can tell from a copy.

    >>> doc = {"items": [1, 2]}
    >>> copy = clone(doc)
    >>> copy == doc and copy["items"] is not doc["items"]
    True

    Raises:
        DataCloneError: exactly when :func:`encode` would for an unsupported type. The limits
            on crafted values (see the module docstring) are not applied: a copy stays in memory.
    """
    t = type(value)
    if t in _ATOMIC:
        return value
    memo: dict[int, Any] = {}
    try:
        copy = _clone(value, memo, 0)
    except (_TooDeep, RecursionError):
        # Too deep to recurse: take the iterative path. Nothing was modified, so starting over is
        # safe, and it raises the same DataCloneError if the value holds an unsupported type.
        try:
            return decode(encode(value))
        except DataCloneError as exc:
            if not _refuses_transfer(exc):
                raise
            refused = exc
        # The value holds a Request, Response, Headers or stub, for which the stored encoding has
        # no place: copy it recursively after all, as deep as the recursion limit lets (a depth
        # that never reaches _CLONE_MAX_DEPTH). workerd carries one 3,000 deep (miniflare 4).
        memo = {}
        try:
            copy = _clone(value, memo, -sys.getrecursionlimit())
        except RecursionError:
            raise _too_deep_transfer_error(refused) from None
    moved = memo.get(_MOVED)
    if moved is not None:
        # Every part was copied: only now do the originals give up what moved (a failed copy
        # leaves the sender's requests and responses as they were).
        for give_up, original in moved:
            give_up(original)
    return copy


def _refuses_transfer(exc: DataCloneError) -> bool:
    """Whether :func:`encode` raised ``exc`` for a type that crosses RPC (``register_transfer``)."""
    said = str(exc)
    return any(transfer.hint in said for transfer in _TRANSFERS.values())


def _too_deep_transfer_error(exc: DataCloneError) -> DataCloneError:
    """``exc``, raised by :func:`encode` for a type that crosses RPC (a Request, a stub) in a
    value too deep for :func:`clone` to recurse into, as RPC should say it: refused for its depth,
    not with storage's hint."""
    said = str(exc)
    name = said.split('"')[1] if said.count('"') >= 2 else "value"
    return DataCloneError(
        f'Could not serialize object of type "{name}": a value that holds an exception, Request, Response, '
        "Headers or stub is copied for RPC recursively, and this one is nested deeper than Python's recursion limit "
        f"lets (sys.getrecursionlimit() is {sys.getrecursionlimit()}). Send a shallower value, or raise the limit."
    )


def _key_transfer_error(key: object) -> DataCloneError:
    """A dict key or set member that is or holds a type that crosses RPC by being copied (``register_transfer``)."""
    return DataCloneError(
        f"A {type(key).__qualname__} cannot be a dict key or set member over RPC: it is or holds an exception, "
        "Request, Response, Headers, stub or function, which crosses as a new object. Send it as a dict value "
        "or list item."
    )


def _clone(v: Any, memo: dict[int, Any], depth: int) -> Any:
    t = type(v)
    if t in _ATOMIC:
        return v
    if t is _dt.datetime or t is _dt.time:
        tz = v.tzinfo
        if tz is not None:
            _enc_tz(tz)  # raises DataCloneError exactly when encode would
        return v
    oid = id(v)
    if oid in memo:
        return memo[oid]
    if depth > _CLONE_MAX_DEPTH:
        raise _TooDeep
    depth += 1
    atomic = _ATOMIC
    new: Any
    if t is dict or t in _DICT_LIKE:
        new = dict.copy(v)
        memo[oid] = new
        for key, item in v.items():
            if type(key) not in atomic:
                # A key is hashable, and every hashable supported value clones to itself, so the
                # key in the copy is already right: this only checks what it holds.
                if _clone(key, memo, depth) is not key:
                    raise _key_transfer_error(key)
            if type(item) not in atomic:
                new[key] = _clone(item, memo, depth)
        return new
    if t is list or t in _LIST_LIKE:
        new = v.copy()  # a plain list, also for a list subclass
        memo[oid] = new
        if len(v) >= _ARRAY_MIN_LEN and set(map(type, v)) <= atomic:
            return new  # a list of numbers or strings: checked in C
        for i, item in enumerate(v):
            if type(item) not in atomic:
                new[i] = _clone(item, memo, depth)
        return new
    if t is tuple:
        items: list[Any] | None = None
        for i, item in enumerate(v):
            if type(item) not in atomic:
                c = _clone(item, memo, depth)
                if c is not item:
                    if items is None:
                        items = list(v)
                    items[i] = c
        if oid in memo:
            # A cycle through this tuple was closed while its items were copied: the copy made
            # there is the one the rest of the value refers to (as in encode).
            return memo[oid]
        new = v if items is None else tuple(items)
        memo[oid] = new
        return new
    if t is set or t is frozenset:
        for item in v:
            if type(item) not in atomic:
                if _clone(item, memo, depth) is not item:  # members are hashable: they clone to themselves
                    raise _key_transfer_error(item)
        new = v.copy() if t is set else v
        memo[oid] = new
        return new
    if t is bytearray:
        new = bytearray(v)
        memo[oid] = new
        return new
    if t in _BYTES_LIKE:
        return bytes(v)
    transfer = _transfer_for(t)
    if transfer is None:
        raise _clone_error(v)
    new = transfer.copy(v)
    memo[oid] = new
    if transfer.moved is not None:
        memo.setdefault(_MOVED, []).append((transfer.moved, v))
    return new


use_value_copier(clone)  # exceptions crossing RPC have their arguments copied like any value

_EXCEPTION_NOT_STORED: Final = (
    "An exception can be an RPC argument or result (the receiver gets a copy: its class, message "
    "and cause) but not a stored value: store what you need of it, such as str(exc)"
)
register_transfer(BaseException, Transfer(copy_exception_value, _EXCEPTION_NOT_STORED))
