"""Value limits are measured on V8's serialization, as workerd measures them (durable/_v8size.py).

The boundaries below were measured in workerd (miniflare 4, compatibility date 2026-04-07) by
bisecting, for each JavaScript shape, the largest size that ``ws.serializeAttachment(value)``
accepts (its limit is 16384 bytes of V8's serialization, and its error gives the size: "A WebSocket
'attachment' cannot be larger than 16384 bytes.'attachment' was N bytes."), and the largest that
``ctx.storage.put("k", value)`` accepts in local workerd, whose only limit there is SQLite's
2,200,000-byte record (a header of 6 bytes, the key "k" and V8's bytes: V8's size at most
2,199,993). Local workerd does not enforce production's 128 KiB value limit; production checks it
on the same bytes (workerd's ``ActorStorageLimits::checkMaxValueSize``).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

import durable
from durable import _keys
from durable._codec import encode
from durable._v8size import V8_SIZE_FACTOR, v8_serialized_size

UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SHARED = [1]

# name: (the Python twin of the JavaScript shape, largest n accepted as an attachment, largest n
# accepted by local workerd's storage)
SHAPES: dict[str, tuple[Callable[[int], object], int, int]] = {
    "one-byte string 'a'*n": (lambda n: "a" * n, 16379, 2199986),
    "one-byte string '\\xe9'*n": (lambda n: "\xe9" * n, 16379, 2199986),
    "two-byte string, even start": (lambda n: "\u0100" + "a" * n, 8188, 1099991),
    "two-byte string, one more": (lambda n: "\u0100" + "a" * (n + 1), 8187, 1099990),
    "astral characters": (lambda n: "\U0001f600" * n, 4094, 549996),
    "Uint8Array (bytes)": (lambda n: bytes(n), 16373, 2199978),
    "ArrayBuffer (bytearray)": (lambda n: bytearray(n), 16379, 2199986),
    "array of 1": (lambda n: [1] * n, 8187, 1099991),
    "array of 1000000": (lambda n: [1000000] * n, 4093, 549995),
    "array of 2**30 (a double)": (lambda n: [2**30] * n, 1819, 244442),
    "array of 2**30-1 (a Smi)": (lambda n: [2**30 - 1] * n, 2729, 366663),
    "array of -2**30 (a Smi)": (lambda n: [-(2**30)] * n, 2729, 366663),
    "array of 1.5": (lambda n: [1.5] * n, 1819, 244442),
    "array of 2.0**53": (lambda n: [2.0**53] * n, 1819, 244442),
    # only numbers, one of them not a Smi: a PACKED_DOUBLE_ELEMENTS array, every item a double
    "array of 0.5 then 1s (all doubles)": (lambda n: [0.5] + [1] * n, 1818, 244441),
    "array of 2**40 then -3s (all doubles)": (lambda n: [2**40] + [-3] * n, 1818, 244441),
    "array of 2**64 (BigInt)": (lambda n: [2**64] * n, 909, 122221),
    "array of -2**63 (BigInt)": (lambda n: [-(2**63)] * n, 1637, 219998),
    "array of null": (lambda n: [None] * n, 16375, 2199980),
    "array of true": (lambda n: [True] * n, 16375, 2199980),
    "array of Date": (lambda n: [UTC_EPOCH] * n, 1819, 244442),
    "array of 'xy'": (lambda n: ["xy"] * n, 4093, 549995),
    "array of []": (lambda n: [[] for _ in range(n)], 3275, 439996),
    "array of Uint8Array(1)": (lambda n: [bytes(1) for _ in range(n)], 2046, 274997),
    "array of one shared array": (lambda n: [SHARED] * n, 8185, 1099988),
    "object {k<i>: i}": (lambda n: {f"k{i}": i for i in range(n)}, 1755, 178411),
    "object {'<i>': 0} (index keys)": (lambda n: {str(i): 0 for i in range(n)}, 3288, 368040),
    "Set of 0..n-1": (lambda n: set(range(n)), 5480, 552060),
    "nested mix": (
        lambda n: {
            "a": [1, 2.5, "x\u0101"],
            "b": {1: {None, True}},
            "c": dt.datetime(1970, 1, 1, 0, 0, 0, 5000),
            "d": bytes(3),
            "s": "z" * n,
        },
        16309,
        2199916,
    ),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_sizes_match_workerds_boundaries(name: str) -> None:
    """For every shape, V8's size crosses both measured limits exactly where workerd's did."""
    make, attachment_n, storage_n = SHAPES[name]
    assert v8_serialized_size(make(attachment_n)) <= 16384 < v8_serialized_size(make(attachment_n + 1))
    assert v8_serialized_size(make(storage_n)) <= 2199993 < v8_serialized_size(make(storage_n + 1))


def test_small_values() -> None:
    """Sizes of single values, header (2 bytes) included, as V8 writes them."""
    assert v8_serialized_size(None) == 3
    assert v8_serialized_size(False) == 3
    assert v8_serialized_size(0) == 4
    assert v8_serialized_size(-(2**30)) == 8
    assert v8_serialized_size(2**53 - 1) == 11  # a double
    assert v8_serialized_size(2**53) == 12  # a BigInt: tag, bitfield, one digit
    assert v8_serialized_size(-0.0) == 11
    assert v8_serialized_size(3.0) == 4  # an integral number is a Smi
    assert v8_serialized_size("") == 4
    assert v8_serialized_size("\u0100") == 6  # a padding byte, then 'c', length 2, 2 bytes
    assert v8_serialized_size(b"") == 9
    assert v8_serialized_size({}) == 5
    assert v8_serialized_size({1: 2}) == 9  # a Map: its keys are not all str
    assert v8_serialized_size({"4294967294": 1}) == 16  # the largest index key, as a number
    assert v8_serialized_size({"4294967295": 1}) == 19  # not an index: a string key
    loop: list[Any] = []
    loop.append(loop)
    assert v8_serialized_size(loop) == 2 + 2 + 2 + 3  # the array, a back-reference, its trailer


def test_arrays_of_only_numbers_with_a_non_smi_are_all_doubles() -> None:
    """An array whose items are all numbers, one of them not a Smi, is written item by item as doubles.

    workerd (miniflare 4, 2026-04-07) reports these sizes for ``[items, "x" * 16384]`` as an
    attachment: V8 keeps such an array as PACKED_DOUBLE_ELEMENTS and writes every item, even ``1``,
    as a tag and 8 bytes. Any other item (a string, null, a BigInt) makes the numbers Smis again.
    """
    pad = "x" * 16384
    measured: list[tuple[Any, int]] = [
        ([0.5, 1, 1, 1, 1], 16445),
        ([2, 1, 1, 1, 1], 16410),
        ([-0.0, 1, 1, 1, 1], 16445),
        ([math.nan, 1, 1, 1, 1], 16445),
        ([2**40, 1], 16418),
        ([math.inf, 1], 16418),
        ([1.0, 2.0], 16404),
        ([0.5, 1, 1, 1, 1, "a"], 16420),
        ([0.5, 1, 1, 1, 1, None], 16418),
        ([[0.5, 1], 1], 16425),
        ([UTC_EPOCH, 1], 16411),
        ({"0": 0.5, "1": 1, "2": 1}, 16417),  # an Object's items are not an array's
    ]
    for items, size in measured:
        assert v8_serialized_size([items, pad]) == size, items
        assert v8_serialized_size([tuple(items) if isinstance(items, list) else items, pad]) == size, items


def test_types_without_a_javascript_twin_count_as_their_text() -> None:
    """``time``, ``timedelta``, ``Decimal`` and ``UUID`` count as the string ``str(value)``."""
    for value in (dt.time(1, 2), dt.timedelta(days=3), Decimal("1.50"), uuid.UUID(int=5)):
        assert v8_serialized_size(value) == v8_serialized_size(str(value))


def test_deep_values_are_measured() -> None:
    """No recursion: a value nested 100,000 levels deep is measured."""
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    assert v8_serialized_size(value) == 2 + 100_001 * 5


BOUND_CASES: list[object] = [
    b"",
    0,
    64,
    127,
    -128,
    -32768,
    2**31,
    2**64,
    -0.0,
    "",
    "\u0100",
    "\xe9",
    "\U0001f600",
    [],
    {},
    set(),
    (),
    bytearray(),
    UTC_EPOCH,
    dt.date(2020, 1, 1),
    dt.time(23, 59, 59, 999999),
    dt.timedelta(days=-999_999_999, microseconds=1),
    Decimal("-1E+999999999"),
    Decimal("-sNaN123"),
    uuid.UUID(int=0),
    None,
    True,
]


@pytest.mark.parametrize("item", BOUND_CASES, ids=repr)
def test_v8_size_is_bounded_by_the_encoded_size(item: object) -> None:
    """The bound the limit checks rely on: V8's size is at most 4 times durable's encoding's.

    Empty ``bytes`` comes closest (a Uint8Array takes 7 bytes, the codec 2): 3.5 in a long list.
    """
    for value in (item, [item] * 1000, {str(i): item for i in range(1000)}, {i: item for i in range(300)}):
        assert v8_serialized_size(value) <= V8_SIZE_FACTOR * len(encode(value))


@pytest.mark.parametrize("item", [0, 1, -1, 127, -128, 32767], ids=repr)
def test_the_bound_holds_for_small_ints_that_v8_writes_as_doubles(item: int) -> None:
    """A small int takes 1 byte in a list the codec cannot pack (ints and floats mixed), and 9 in
    V8 when the list is a double array: the bound is 9."""
    for value in ([0.5] + [item] * 1000, [item] * 1000 + [-0.0], ([item] * 1000 + [2**40],)):
        assert v8_serialized_size(value) <= V8_SIZE_FACTOR * len(encode(value))


def _host(kv_backed: bool = True) -> Any:
    return SimpleNamespace(kv_backed=kv_backed, limits=durable.Limits())


class TestStorageLimit:
    """A key-value-backed object's value limit counts V8's bytes (the contract's 131072)."""

    def test_small_ints_count_as_v8_numbers(self) -> None:
        """A list of small ints takes 2 bytes an item in V8, 1 in durable's codec.

        V8's size of [1] * n is 2 (header) + 'A' and the length + 2n + '$', 0 and the length:
        131071 bytes for n = 65530. So production (limit 131072 + 34 on these bytes) refuses
        [1] * 70000 (140011 bytes), which durable's codec takes in about 70 KB and used to store.
        """
        assert len(encode([1] * 70000)) < 71000
        _keys.encode_checked("k", [1] * 65530, _host())
        with pytest.raises(
            durable.StorageLimitError,
            match=r"^Values cannot be larger than 131072 bytes\. A value of size 131073 was provided\.$",
        ):
            _keys.encode_checked("k", [1] * 65531, _host())
        with pytest.raises(durable.StorageLimitError, match=r"A value of size 140011 was provided\.$"):
            _keys.encode_checked("k", [1] * 70000, _host())

    def test_small_ints_beside_a_float_count_as_doubles(self) -> None:
        """[0.5] + [1] * n is a double array in V8, 9 bytes an item, 1 in durable's codec: n = 14,561
        is 131,067 bytes in V8 and fits, one more does not (workerd: see test_sizes_match_workerds_boundaries)."""
        assert len(encode([0.5] + [1] * 14562)) < 15000
        _keys.encode_checked("k", [0.5] + [1] * 14561, _host())
        with pytest.raises(durable.StorageLimitError, match=r"A value of size 131076 was provided\.$"):
            _keys.encode_checked("k", [0.5] + [1] * 14562, _host())

    def test_the_size_in_the_message_is_v8s(self) -> None:
        """'x' * 140000 is 140006 bytes in V8 (header, tag, 3 bytes of length), as workerd reports."""
        with pytest.raises(durable.StorageLimitError, match=r"A value of size 140006 was provided\.$"):
            _keys.encode_checked("k", "x" * 140000, _host())

    def test_two_byte_text_counts_two_bytes_a_character(self) -> None:
        """CJK text takes 3 UTF-8 bytes a character in durable's codec, 2 in V8: 65,000 fit."""
        assert len(encode("\u4e2d" * 65000)) > 131072
        _keys.encode_checked("k", "\u4e2d" * 65000, _host())
        with pytest.raises(durable.StorageLimitError, match=r"A value of size 131078 was provided\.$"):
            _keys.encode_checked("k", "\u4e2d" * 65536, _host())

    def test_sqlite_rows_count_v8s_bytes_too(self) -> None:
        """In a SQLite-backed object, a value over 2 MB in V8 is refused, though the codec's is less."""
        value = [1] * 1_048_576  # 2 bytes a number in V8, 1 in durable's codec
        assert len(encode(value)) < 1_100_000
        with pytest.raises(
            durable.StorageLimitError, match=r"^string or blob too big: SQLITE_TOOBIG \(.*takes 2097164"
        ):
            _keys.encode_checked("k", value, _host(kv_backed=False))
        _keys.encode_checked("k", [1] * 1_048_000, _host(kv_backed=False))

    async def test_put_in_an_object(self) -> None:
        """storage.put refuses with the V8 size, and stores what fits."""

        class Kv(durable.DurableObject):
            async def fill(self, n: int) -> int:
                await self.ctx.storage.put("k", [7] * n)
                return len(await self.ctx.storage.get("k"))

        async with durable.Runtime() as rt:
            ns = rt.namespace(Kv, storage="kv")
            stub = ns.get(ns.id_from_name("a"))
            assert await stub.fill(65530) == 65530
            with pytest.raises(durable.StorageLimitError, match="A value of size 131073 was provided"):
                await stub.fill(65531)


class TestAttachmentLimit:
    """serialize_attachment refuses where workerd does (measured above)."""

    @pytest.mark.parametrize(
        "name",
        [
            "one-byte string 'a'*n",
            "two-byte string, even start",
            "array of 1",
            "object {k<i>: i}",
            "array of 0.5 then 1s (all doubles)",
        ],
    )
    def test_boundary(self, name: str) -> None:
        """The largest accepted value is accepted, one more refused with workerd's size."""
        make, n, _ = SHAPES[name]
        _, server = durable.WebSocketPair()
        server.serialize_attachment(make(n))
        with pytest.raises(durable.WebSocketError) as info:
            server.serialize_attachment(make(n + 1))
        size = v8_serialized_size(make(n + 1))
        assert str(info.value) == (
            f"A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was {size} bytes."
        )

    def test_previous_helpers_measurement(self) -> None:
        """workerd: 'a' * 16380 is 16,385 bytes and refused (durable's codec took 16,384)."""
        _, server = durable.WebSocketPair()
        with pytest.raises(durable.WebSocketError, match="'attachment' was 16385 bytes"):
            server.serialize_attachment("a" * 16380)


class TestDurablesOwnSubclasses:
    """The ``dict`` subclasses the codec copies as plain dicts (``copy_as_dict``: ``durable.SqlRow``,
    the Python Workers ``JsDict`` of a value read back) are measured as the objects they stand for.
    Before, a value large enough to be measured raised ``TypeError: no JavaScript twin for SqlRow``."""

    def test_a_sql_row_as_an_attachment(self) -> None:
        from durable._sql import SqlRow

        row = SqlRow.__new__(SqlRow)
        dict.update(row, {"x": "a" * 16000})
        assert v8_serialized_size(row) == v8_serialized_size({"x": "a" * 16000})
        _, server = durable.WebSocketPair()
        server.serialize_attachment(row)
        assert server.deserialize_attachment() == {"x": "a" * 16000}
        dict.update(row, {"x": "a" * 17000})
        with pytest.raises(durable.WebSocketError, match="cannot be larger than 16384 bytes"):
            server.serialize_attachment(row)
