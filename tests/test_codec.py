"""Tests of the value codec (``durable._codec``): round trips, identity, errors and format guarantees."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import functools
import math
import struct
import subprocess
import sys
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from durable._codec import FORMAT_VERSION, clone, decode, encode
from durable._exceptions import DataCloneError, DataCorruptionError, DurableError, RpcNotImplementedError

# -- comparing values exactly ------------------------------------------------------------------------

_MUTABLE = (list, dict, set, bytearray)
_CONTAINERS = (list, tuple, dict, set, frozenset, bytearray)


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _canon(x: object) -> object:
    """A hashable key that is equal for two hashable values exactly when they are the same value.

    Unlike ``==``, it tells 1, 1.0 and True apart, NaN equals NaN (with the same payload), -0.0 is
    not 0.0, and Decimal("1.0") is not Decimal("1.00").
    """
    t = type(x)
    if t is float:
        return (t, _float_bits(x))  # type: ignore[arg-type]
    if t is Decimal:
        return (t, x.as_tuple())  # type: ignore[attr-defined]
    if t is tuple:
        return (t, tuple(map(_canon, x)))  # type: ignore[call-overload]
    if t is frozenset:
        return (t, frozenset(collections.Counter(map(_canon, x)).items()))  # type: ignore[call-overload]
    if t is dt.datetime or t is dt.time:
        naive = x.replace(tzinfo=None)  # type: ignore[attr-defined]
        return (t, naive, x.fold, type(x.tzinfo), repr(x.tzinfo))  # type: ignore[attr-defined]
    return (t, x)


class _Comparer:
    """Compares an original value with a copy: exact types, float bits, and the same sharing.

    Containers are paired as they are visited: a container met again in the original must be
    paired with the same object in the copy (shared references and cycles kept), and a mutable
    container of the copy must not stand for two different containers of the original.
    """

    def __init__(self) -> None:
        self.pairs: dict[int, int] = {}  # id(original container) -> id(copy)
        self.claimed: set[int] = set()  # ids of the copy's mutable containers already paired

    def same(self, a: Any, b: Any) -> bool:
        t = type(a)
        if t is not type(b):
            return False
        if t is float:
            return _float_bits(a) == _float_bits(b)
        if t is Decimal:
            return bool(a.as_tuple() == b.as_tuple())
        if t is dt.datetime or t is dt.time:
            return bool(_canon(a) == _canon(b))
        if t not in _CONTAINERS:
            return bool(a == b)
        if id(a) in self.pairs:
            return self.pairs[id(a)] == id(b)
        if t in _MUTABLE:
            if id(b) in self.claimed:
                return False
            self.claimed.add(id(b))
        self.pairs[id(a)] = id(b)
        if len(a) != len(b):
            return False
        if t is list or t is tuple:
            return all(self.same(x, y) for x, y in zip(a, b))
        if t is dict:
            return all(self.same(ka, kb) and self.same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items()))
        if t is bytearray:
            return bool(a == b)
        # set or frozenset: pair the members by exact value, then compare the pairs (which also
        # registers the sharing of the tuples and frozensets among the members).
        by_key: dict[object, list[object]] = collections.defaultdict(list)
        for y in b:
            by_key[_canon(y)].append(y)
        for x in a:
            candidates = by_key.get(_canon(x))
            if not candidates or not self.same(x, candidates.pop()):
                return False
        return True


def assert_same(original: object, copy: object) -> None:
    assert _Comparer().same(original, copy), f"{copy!r} is not an exact copy of {original!r}"


def _walk(value: object) -> Iterator[object]:
    """Every container reachable from value, once each (iteratively, so any depth works)."""
    seen: set[int] = set()
    todo: list[Any] = [value]
    while todo:
        v = todo.pop()
        if type(v) not in _CONTAINERS or id(v) in seen:
            continue
        seen.add(id(v))
        yield v
        if type(v) is dict:
            todo.extend(v.keys())
            todo.extend(v.values())
        elif type(v) is not bytearray:
            todo.extend(v)


def _mutable_ids(value: object) -> set[int]:
    return {id(v) for v in _walk(value) if type(v) in _MUTABLE}


# -- strategies -------------------------------------------------------------------------------------

_MAX_OFFSET_US = 24 * 3600 * 1_000_000 - 1
offsets = st.integers(-_MAX_OFFSET_US, _MAX_OFFSET_US).map(lambda us: dt.timedelta(microseconds=us))
tzinfos = st.one_of(
    st.none(),
    st.just(dt.UTC),
    st.builds(dt.timezone, offsets),
    st.builds(dt.timezone, offsets, st.text(max_size=8)),
    st.timezones(),
)
folds = st.integers(0, 1)
datetimes = st.builds(lambda d, f: d.replace(fold=f), st.datetimes(timezones=tzinfos), folds)
times = st.builds(lambda t, f: t.replace(fold=f), st.times(timezones=tzinfos), folds)


def _nan(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


nan_payloads = st.integers(1, 2**52 - 1)  # 0 would be an infinity
special_floats = st.one_of(
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324, 1.7976931348623157e308]),
    nan_payloads.map(lambda payload: _nan(0x7FF0_0000_0000_0000 | payload)),
    nan_payloads.map(lambda payload: _nan(0xFFF0_0000_0000_0000 | payload)),
)
special_decimals = st.sampled_from(
    [Decimal(s) for s in ["NaN", "-NaN", "NaN123", "sNaN", "-sNaN42", "Infinity", "-Infinity", "0", "-0",
                          "-0E+5", "1.0", "1.00", "1E+999999999999999999", "1E-999999999999999999"]]
)  # fmt: skip
texts = (
    st.text()
    | st.text(st.characters(exclude_categories=()))
    | st.lists(st.sampled_from(["\ud800", "\udfff", "\udc80", "a", "é", "€", "\U0001f600", "\x00"])).map("".join)
)
INT_BOUNDARIES = [0, 127, 128, -1, -128, -129, 2**15 - 1, 2**15, -(2**15) - 1, 2**31, -(2**31) - 1,
                  2**63 - 1, 2**63, -(2**63), -(2**63) - 1]  # fmt: skip
ints = st.integers() | st.integers(-(2**300), 2**300) | st.sampled_from(INT_BOUNDARIES)

decimals = st.decimals(allow_nan=True, allow_infinity=True) | special_decimals


def _hashable_decimal(d: Decimal) -> bool:
    return not d.is_snan()  # hash(Decimal("sNaN")) raises: it cannot be a key or a set member


def _scalars(decimals: st.SearchStrategy[Decimal]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        ints,
        st.floats() | special_floats,
        texts,
        st.binary(),
        datetimes,
        st.dates(),
        times,
        st.timedeltas(),
        decimals,
        st.uuids(),
    )


hashable_scalars = _scalars(decimals.filter(_hashable_decimal))
scalars = _scalars(decimals) | st.binary().map(bytearray)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)
number_lists = st.one_of(
    st.lists(ints, min_size=6, max_size=20),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=6, max_size=20),
    st.lists(st.floats() | special_floats, min_size=6, max_size=20),
    st.lists(st.integers(0, 3) | st.booleans(), min_size=6, max_size=20),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashables, inner, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
        inner.map(lambda x: [x, x]),  # shared references
        inner.map(lambda x: (x, {"again": x})),
    )


values = st.recursive(scalars | number_lists, _containers, max_leaves=25)

hypothesis_settings = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _roundtrip(v: object) -> object:
    return decode(encode(v))


COPIERS: list[Callable[[object], object]] = [_roundtrip, clone]
copier = pytest.mark.parametrize("copy", COPIERS, ids=["decode(encode())", "clone"])


# -- tests ------------------------------------------------------------------------------------------


class TestRoundTrip:
    @hypothesis_settings
    @given(values)
    def test_decode_encode_is_exact(self, value: object) -> None:
        """decode(encode(v)) has the same types, values, float bits and sharing as v."""
        assert_same(value, decode(encode(value)))

    @hypothesis_settings
    @given(values)
    def test_clone_is_exact(self, value: object) -> None:
        """clone(v) has the same types, values, float bits and sharing as v."""
        assert_same(value, clone(value))

    @hypothesis_settings
    @given(values)
    def test_copies_share_no_mutable_container_with_the_original(self, value: object) -> None:
        """No list, dict, set or bytearray of the original appears in a decoded or cloned copy."""
        original = _mutable_ids(value)
        assert not original & _mutable_ids(decode(encode(value)))
        assert not original & _mutable_ids(clone(value))

    @pytest.mark.parametrize("value", [*INT_BOUNDARIES, 10**1000, -(10**1000)])
    def test_int_boundaries(self, value: int) -> None:
        """Ints at every width boundary, and huge ones, come back equal and of type int."""
        assert_same(value, decode(encode(value)))

    @copier
    def test_floats_keep_their_bits(self, copy: Callable[[object], object]) -> None:
        """-0.0, infinities, quiet and signalling NaNs with payloads keep their exact bits."""
        for bits in [0x8000_0000_0000_0000, 0x7FF0_0000_0000_0000, 0x7FF8_0000_0000_0001,
                     0x7FF0_0000_0000_0001, 0xFFF4_0000_0000_1234]:  # fmt: skip
            value = _nan(bits)
            out = copy([value])
            assert isinstance(out, list)
            assert struct.pack("<d", out[0]) == struct.pack("<Q", bits)

    def test_bool_int_and_float_stay_distinct(self) -> None:
        """True, 1 and 1.0 come back as bool, int and float, also as dict keys."""
        out = decode(encode([True, 1, 1.0, {True: "b"}, {1: "i"}, {1.0: "f"}]))
        assert_same([True, 1, 1.0, {True: "b"}, {1: "i"}, {1.0: "f"}], out)

    @copier
    def test_strings_with_lone_surrogates(self, copy: Callable[[object], object]) -> None:
        """Strings with lone surrogates, astral characters and NULs round-trip."""
        for s in ["\ud800", "a\udfffb", "\U0001f600\x00", "x" * 63, "x" * 64, "é" * 200]:
            assert copy(s) == s

    @copier
    def test_decimals_keep_sign_digits_and_exponent(self, copy: Callable[[object], object]) -> None:
        """Decimals keep sign, exponent and NaN payloads: 1.0 is not 1.00, -0 is not 0."""
        for s in ["1.0", "1.00", "-0", "0E+7", "-0E-7", "NaN12", "-sNaN", "Infinity", "-Infinity",
                  "123456789012345678901234567890.123456789"]:  # fmt: skip
            out = copy(Decimal(s))
            assert isinstance(out, Decimal)
            assert out.as_tuple() == Decimal(s).as_tuple()

    @copier
    def test_timezone_name_is_kept(self, copy: Callable[[object], object]) -> None:
        """A fixed-offset timezone keeps its explicit name, or lack of one, as repr shows."""
        for tz in [
            dt.timezone(dt.timedelta(hours=2)),
            dt.timezone(dt.timedelta(hours=-3, seconds=1), "X"),
            dt.timezone(dt.timedelta(0), "UTC"),
        ]:
            out = copy(dt.datetime(2024, 1, 1, tzinfo=tz))
            assert isinstance(out, dt.datetime)
            assert repr(out.tzinfo) == repr(tz)

    def test_utc_and_zoneinfo_come_back_as_the_shared_instances(self) -> None:
        """timezone.utc decodes to timezone.utc, and a ZoneInfo to ZoneInfo(key) itself."""
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        out = decode(encode([dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.time(1, tzinfo=paris)]))
        assert isinstance(out, list)
        assert out[0].tzinfo is dt.UTC
        assert out[1].tzinfo is paris

    @copier
    def test_fold_is_kept(self, copy: Callable[[object], object]) -> None:
        """The fold of an ambiguous local time is kept (it changes the UTC offset)."""
        ny = zoneinfo.ZoneInfo("America/New_York")
        value = dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ny)
        out = copy(value)
        assert isinstance(out, dt.datetime)
        assert out.fold == 1 and out.utcoffset() == value.utcoffset() == dt.timedelta(hours=-5)

    @copier
    def test_dict_order_is_kept(self, copy: Callable[[object], object]) -> None:
        """Dicts come back in insertion order, whatever the keys."""
        value = {"b": 1, 3: 2, "a": 3, (1, "x"): 4, None: 5, frozenset({2}): 6}
        out = copy(value)
        assert isinstance(out, dict)
        assert list(out) == list(value)

    @copier
    def test_number_lists(self, copy: Callable[[object], object]) -> None:
        """Long lists of ints (any width) or floats, and of bools, keep every item's type and value."""
        for value in [
            list(range(-5, 200)), [2**40, -1] * 10, [2**64] * 9, [0.5, -0.0, math.nan] * 4,
            [True, False] * 8, [1, True] * 8, [1, 1.0] * 8, list(range(7)), list(range(8)),
        ]:  # fmt: skip
            assert_same(value, copy(value))


class TestSharingAndCycles:
    @copier
    @pytest.mark.parametrize(
        "make",
        [list, dict, set, bytearray, tuple, frozenset, lambda: [1, 2, 3] * 4, lambda: (1, [2])],
        ids=["list", "dict", "set", "bytearray", "tuple", "frozenset", "number list", "tuple with list"],
    )
    def test_shared_container_stays_shared(self, copy: Callable[[object], object], make: Callable[[], Any]) -> None:
        """A container that appears twice in the value appears twice, as one object, in the copy."""
        shared = make()
        out = copy([shared, {"k": shared}])
        assert isinstance(out, list)
        assert out[0] is out[1]["k"]
        if type(shared) in _MUTABLE:
            assert out[0] is not shared

    @copier
    def test_equal_containers_stay_distinct(self, copy: Callable[[object], object]) -> None:
        """Two equal but distinct lists come back as two distinct lists."""
        out = copy([[1], [1], {}, {}])
        assert isinstance(out, list)
        assert out[0] is not out[1] and out[2] is not out[3]

    @copier
    def test_list_containing_itself(self, copy: Callable[[object], object]) -> None:
        """A list that contains itself comes back as a new list that contains itself."""
        value: list[Any] = [1]
        value.append(value)
        out = copy(value)
        assert isinstance(out, list)
        assert out is not value and out[1] is out and out[0] == 1

    @copier
    def test_dict_cycle_through_list(self, copy: Callable[[object], object]) -> None:
        """A cycle dict -> list -> dict is kept."""
        d: dict[str, Any] = {}
        d["children"] = [d, {"parent": d}]
        out = copy(d)
        assert isinstance(out, dict)
        assert out["children"][0] is out and out["children"][1]["parent"] is out

    @copier
    def test_cycle_through_a_tuple(self, copy: Callable[[object], object]) -> None:
        """l = []; t = (l,); l.append(t): copies of l and of t keep the cycle."""
        lst: list[Any] = []
        tup = (lst,)
        lst.append(tup)
        out_list = copy(lst)
        assert isinstance(out_list, list)
        assert type(out_list[0]) is tuple and out_list[0][0] is out_list
        out_tuple = copy(tup)
        assert isinstance(out_tuple, tuple)
        assert out_tuple[0][0] is out_tuple and out_tuple[0] is not lst

    @copier
    def test_cycle_through_nested_tuples(self, copy: Callable[[object], object]) -> None:
        """A cycle through two tuples and two lists, entered at a tuple, is kept."""
        inner_list: list[Any] = []
        inner = (inner_list,)
        outer_list: list[Any] = []
        outer = (inner, outer_list, inner)
        inner_list.append(outer)
        outer_list.append(outer)
        out = copy([outer, inner])
        assert isinstance(out, list)
        o, i = out
        assert type(o) is tuple and type(i) is tuple
        assert o[0] is i and o[2] is i and i[0][0] is o and o[1][0] is o

    @copier
    def test_frozenset_shared_between_set_and_dict(self, copy: Callable[[object], object]) -> None:
        """A frozenset that is a set member, a dict key and a list item is one object in the copy."""
        fs = frozenset({1, (2, 3)})
        out = copy([fs, {fs}, {fs: fs}])
        assert isinstance(out, list)
        member = next(iter(out[1]))
        key, val = next(iter(out[2].items()))
        assert out[0] is member is key is val

    def test_deep_nesting_of_lists(self) -> None:
        """100000 nested lists encode, decode and clone without RecursionError."""
        value: list[Any] = []
        cur = value
        for _ in range(100_000):
            nxt: list[Any] = []
            cur.append(nxt)
            cur = nxt
        for out in (decode(encode(value)), clone(value)):
            depth = 0
            while out:
                assert isinstance(out, list) and len(out) == 1
                out = out[0]
                depth += 1
            assert depth == 100_000

    def test_deep_nesting_of_dicts_and_tuples(self) -> None:
        """100000 alternately nested dicts and tuples survive decode(encode()) and clone."""
        value: Any = "leaf"
        for i in range(50_000):
            value = ({"k": value},) if i % 2 else {"k": (value,)}
        out: Any
        for out in (decode(encode(value)), clone(value)):
            depth = 0
            while out != "leaf":
                out = out["k"] if type(out) is dict else out[0]
                depth += 1
            assert depth == 100_000

    def test_deep_nesting_with_a_cycle(self) -> None:
        """A cycle at the bottom of 10000 nested lists is kept."""
        top: list[Any] = []
        cur = top
        for _ in range(10_000):
            nxt: list[Any] = []
            cur.append(nxt)
            cur = nxt
        cur.append(top)
        for out in (decode(encode(top)), clone(top)):
            node = out
            for _ in range(10_001):
                assert isinstance(node, list)
                node = node[0]
            assert node is out


class Point(NamedTuple):
    x: int
    y: int


class Color(enum.IntEnum):
    RED = 1


class Plain:
    pass


class Text(str):
    pass


class Number(int):
    pass


class FixedTz(dt.tzinfo):
    def utcoffset(self, d: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(hours=1)

    def dst(self, d: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, d: dt.datetime | None) -> str:
        return "FIXED"


def _cycle_holding(item: object) -> list[Any]:
    """l = [(l, item)]: a cycle through a tuple that also holds item."""
    lst: list[Any] = []
    lst.append((lst, item))
    return lst


def _generator() -> Iterator[int]:
    yield 1


def _nested_bad() -> dict[str, Any]:
    return {"a": [1, {"b": ({"c": [2, 3, {"d": Plain()}]},)}]}


UNSUPPORTED: list[tuple[str, Callable[[], object], str]] = [
    ("object", object, "object"),
    ("object holding a function", lambda: [Plain(), len], "Plain"),
    ("class instance", Plain, "Plain"),
    ("class", lambda: Plain, "type"),
    ("OrderedDict", lambda: collections.OrderedDict(a=1), "OrderedDict"),
    ("defaultdict", lambda: collections.defaultdict(list), "defaultdict"),
    ("IntEnum member", lambda: Color.RED, "Color"),
    ("namedtuple", lambda: Point(1, 2), "Point"),
    ("str subclass", lambda: Text("x"), "Text"),
    ("int subclass", lambda: Number(3), "Number"),
    ("complex", lambda: 1j, "complex"),
    ("generator", _generator, "generator"),
    ("range", lambda: range(3), "range"),
    ("memoryview", lambda: memoryview(b"x"), "memoryview"),
    ("set of unsupported", lambda: {1, object()}, "object"),
    ("unsupported dict key", lambda: {Plain(): 1}, "Plain"),
    ("deeply nested value", _nested_bad, "Plain"),
    ("inside a tuple cycle", lambda: _cycle_holding(1j), "complex"),
    ("custom tzinfo", lambda: dt.datetime(2024, 1, 1, tzinfo=FixedTz()), "FixedTz"),
    ("custom tzinfo on time", lambda: [dt.time(1, tzinfo=FixedTz())], "FixedTz"),
]


UNSUPPORTED_IDS = [name for name, _, _ in UNSUPPORTED]


class TestUnsupported:
    @pytest.mark.parametrize("make, type_name", [(m, n) for _, m, n in UNSUPPORTED], ids=UNSUPPORTED_IDS)
    @pytest.mark.parametrize("operation", [encode, clone], ids=["encode", "clone"])
    def test_raises_data_clone_error_naming_the_type(
        self, operation: Callable[[object], object], make: Callable[[], object], type_name: str
    ) -> None:
        """An unsupported type anywhere in the value raises DataCloneError (a TypeError) naming it."""
        with pytest.raises(DataCloneError) as info:
            operation(make())
        assert isinstance(info.value, TypeError) and isinstance(info.value, DurableError)
        assert str(info.value).startswith(
            f'Could not serialize object of type "{type_name}". This type does not support serialization.'
        )

    @pytest.mark.parametrize("make", [m for _, m, _ in UNSUPPORTED], ids=UNSUPPORTED_IDS)
    def test_clone_and_encode_raise_the_same_message(self, make: Callable[[], object]) -> None:
        """clone raises exactly the error that encode raises."""
        value = make()
        with pytest.raises(DataCloneError) as from_encode:
            encode(value)
        with pytest.raises(DataCloneError) as from_clone:
            clone(value)
        assert str(from_clone.value) == str(from_encode.value)

    @pytest.mark.parametrize(
        "make",
        [lambda: lambda: None, lambda: len, lambda: [].append, lambda: (1).__add__, lambda: functools.partial(len)],
        ids=["lambda", "builtin", "bound builtin", "method-wrapper", "partial"],
    )
    def test_functions_are_not_stored_but_sent_over_rpc_as_stubs(self, make: Callable[[], object]) -> None:
        """A function cannot be stored (workerd neither: DataCloneError); over RPC it crosses as a
        callback stub, as in workerd (tests/test_rpc_targets.py). RpcNotImplementedError, which
        nothing raises any more, stays a DataCloneError and a NotImplementedError."""
        value = {"callback": make()}
        with pytest.raises(
            DataCloneError, match=r"This type does not support serialization\. \(A function can be an RPC"
        ) as stored:
            encode(value)
        assert not isinstance(stored.value, NotImplementedError)
        copied = clone(value)
        assert isinstance(copied, dict) and callable(copied["callback"])
        assert issubclass(RpcNotImplementedError, DataCloneError) and issubclass(
            RpcNotImplementedError, NotImplementedError
        )

    def test_exceptions_are_not_stored_but_copied_over_rpc(self) -> None:
        """An exception cannot be stored (workerd can store an Error: docs/differences.md); over RPC
        it crosses as a copy of its class, message and cause, as an Error does in workerd (measured
        with miniflare 4, 2026-04-07: `stub.echo(new TypeError("t", {cause: new Error("inner")}))`
        arrives as a TypeError "t" whose cause is an Error "inner", without `remote`)."""
        error = ValueError("x")
        error.__cause__ = KeyError("k")
        with pytest.raises(
            DataCloneError,
            match=r'"ValueError"\. This type does not support serialization\. \(An exception can be an RPC',
        ):
            encode({"error": error})
        copied = clone({"error": error})
        assert isinstance(copied, dict)
        copy = copied["error"]
        assert type(copy) is ValueError and copy is not error and copy.args == ("x",)
        assert type(copy.__cause__) is KeyError and copy.__cause__.args == ("k",)
        assert copy.__traceback__ is None and copy.__context__ is None

    def test_an_awaitable_says_to_await_it(self) -> None:
        """A coroutine sent or stored by mistake (a missing await) gets the fix in its message."""

        async def later() -> int:
            return 1

        coroutine = later()
        try:
            for operation in (encode, clone):
                with pytest.raises(DataCloneError, match=r'"coroutine".*It is an awaitable: await it first'):
                    operation([coroutine])
        finally:
            coroutine.close()

    def test_subclass_message_says_to_convert(self) -> None:
        """Refusing a subclass of a supported type says which base to convert to."""
        with pytest.raises(DataCloneError, match=r"subclass of dict;"):
            encode(collections.OrderedDict())

    def test_keyless_zoneinfo_is_refused(self, tmp_path: Path) -> None:
        """A ZoneInfo made from a file has no key, so it cannot be stored."""
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        assert paris.key is not None
        with open(_tzfile(paris.key), "rb") as f:
            keyless = zoneinfo.ZoneInfo.from_file(f)
        for operation in (encode, clone):
            with pytest.raises(DataCloneError, match="ZoneInfo"):
                operation(dt.datetime(2024, 1, 1, tzinfo=keyless))

    def test_deep_unsupported_value_raises_data_clone_error(self) -> None:
        """An unsupported value at the bottom of 100000 nested lists still raises DataCloneError."""
        value: list[Any] = []
        cur = value
        for _ in range(100_000):
            nxt: list[Any] = []
            cur.append(nxt)
            cur = nxt
        cur.append(Plain())
        for operation in (encode, clone):
            with pytest.raises(DataCloneError, match='"Plain"'):
                operation(value)


def _tzfile(key: str) -> Path:
    for root in zoneinfo.TZPATH:
        candidate = Path(root) / key
        if candidate.is_file():
            return candidate
    pytest.skip("no system time zone database")


SAMPLE: list[Any] = [
    None, True, False, 0, 300, -70000, 2**40, 2**100, 1.5, "héllo", "x" * 100, b"\x00\xff",
    bytearray(b"ab"),
    (1, "a"), {"k": [1, 2]}, {3}, frozenset({4}), list(range(20)), [0.5] * 10,
    dt.datetime(2024, 5, 17, 12, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    dt.date(2024, 5, 17), dt.time(8, tzinfo=dt.timezone(dt.timedelta(hours=2), "CEST")),
    dt.timedelta(days=-1, seconds=5), Decimal("-12.340"), uuid.UUID(int=12345),
]  # fmt: skip


class TestDecodeErrors:
    def test_empty_input(self) -> None:
        """Empty input raises DataCorruptionError (a ValueError) that says it is empty."""
        with pytest.raises(DataCorruptionError, match="empty") as info:
            decode(b"")
        assert isinstance(info.value, ValueError) and isinstance(info.value, DurableError)

    @pytest.mark.parametrize("version", [0, 2, 0x80, 0xFF])
    def test_wrong_version_byte(self, version: int) -> None:
        """A first byte other than FORMAT_VERSION raises DataCorruptionError naming the version."""
        data = bytes([version]) + encode([1, "a"])[1:]
        with pytest.raises(DataCorruptionError, match=f"format version {version}"):
            decode(data)

    def test_truncated_at_every_position(self) -> None:
        """Every strict prefix of a real encoding raises DataCorruptionError."""
        lst: list[Any] = []
        lst.append((lst,))
        data = encode([SAMPLE, lst, SAMPLE])
        for i in range(len(data)):
            with pytest.raises(DataCorruptionError):
                decode(data[:i])

    def test_truncation_message(self) -> None:
        """A truncated value says that the data is truncated."""
        with pytest.raises(DataCorruptionError, match="truncated"):
            decode(encode("a long enough string")[:-3])

    @pytest.mark.parametrize("extra", [b"\x00", b"\x81", b"garbage"])
    def test_trailing_bytes(self, extra: bytes) -> None:
        """Bytes after a complete value raise DataCorruptionError that says so."""
        for value in [1, "abc", [1, 2], {"a": None}]:
            with pytest.raises(DataCorruptionError, match="after the end of the value"):
                decode(encode(value) + extra)

    @pytest.mark.parametrize(
        "data, message",
        [
            (b"\x01\x11", "unknown type tag 0x11"),
            (b"\x01\x3f\x00", "unknown type tag 0x3f"),
            (b"\x01\x20\x01\x26\x05", "back-reference #5"),
            (b"\x01\x42\xff\xfe", "UTF-8"),
            (b"\x01\x0c\xe8\x07\x0d\x01", "invalid value"),  # month 13
            (b"\x01\x0f\x00\x00\x01\x0a", "Decimal digit"),
            (b"\x01\x20\xff\xff\xff\xff\x0f\x80", "claims"),  # a huge count, refused before allocating
            (b"\x01\x28\x04\x07", "width"),
            (b"\x01\x20\x02\x20\x00\x23\x01\x26\x01", "unhashable"),  # a set holding a list
            (b"\x01\x27\x01\x00\x80", "superseded"),
            (b"\x01\x0b\xe8\x07\x01\x01\x00\x00\x00\x00\x00\x00\x00\x10", "datetime/time flags"),
            (
                b"\x01\x0b\xe8\x07\x01\x01\x00\x00\x00\x00\x00\x00\x00\x06\x10Nowhere/Atlantis",
                "Nowhere/Atlantis",  # a ZoneInfo key unknown here
            ),
            (b"\x01\x07\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint"),
        ],
    )
    def test_invalid_data_says_what_is_wrong(self, data: bytes, message: str) -> None:
        """Invalid tags, references, text, fields and counts raise DataCorruptionError saying which."""
        with pytest.raises(DataCorruptionError, match=message):
            decode(data)

    @hypothesis_settings
    @given(st.binary(max_size=64))
    def test_garbage_raises_only_data_corruption_error(self, garbage: bytes) -> None:
        """Random bytes after the version byte decode or raise DataCorruptionError, nothing else."""
        try:
            decode(bytes([FORMAT_VERSION]) + garbage)
        except DataCorruptionError:
            pass

    @hypothesis_settings
    @given(values, st.data())
    def test_damaged_encodings_raise_only_data_corruption_error(self, value: object, data: st.DataObject) -> None:
        """A real encoding with one byte changed decodes or raises DataCorruptionError, nothing else."""
        encoded = bytearray(encode(value))
        i = data.draw(st.integers(1, len(encoded) - 1)) if len(encoded) > 1 else 0
        encoded[i] = data.draw(st.integers(0, 255))
        try:
            decode(bytes(encoded))
        except DataCorruptionError:
            pass

    def test_memoryview_and_bytearray_input(self) -> None:
        """decode reads a memoryview or a bytearray like bytes."""
        data = encode(SAMPLE)
        assert_same(SAMPLE, decode(memoryview(data)))
        assert_same(SAMPLE, decode(bytearray(data)))
        assert_same(SAMPLE, decode(memoryview(b"xx" + data)[2:]))


# Encodings of version 1, fixed forever: stored data must stay readable.
GOLDEN: list[tuple[object, str]] = [
    (None, "0100"),
    (False, "0101"),
    (True, "0102"),
    (5, "0185"),
    (-1, "0103ff"),
    (1000, "0104e803"),
    (2**64, "0107090000000000000000" + "01"),
    (1.5, "0108000000000000f83f"),
    ("hi", "01426869"),
    (b"hi", "010a026869"),
    (bytearray(b"hi"), "0125026869"),
    ([1, (2,), {"a": {3}}, frozenset()], "01200481210182220141612301832400"),
    (list(range(8)), "01280800" + "0001020304050607"),
    ([0.5] * 8, "012908" + "000000000000e03f" * 8),
    (dt.datetime(2024, 5, 17, 1, 2, 3, 4, tzinfo=dt.UTC), "010be8070511010203040000000200"),
    (dt.date(2024, 5, 17), "010ce8070511"),
    (dt.time(1, 2, 3, 4, fold=1), "010d0102030400000001"),
    (dt.timedelta(days=-1, seconds=2, microseconds=3), "010effffffff0200000003000000"),
    (Decimal("-1.50"), "010f0103" + "03010500"),
    (uuid.UUID(int=1), "0110" + "00" * 15 + "01"),
]


def _cycle() -> list[Any]:
    lst: list[Any] = []
    lst.append((lst,))
    return lst


class TestFormat:
    def test_version_byte(self) -> None:
        """Every encoding starts with FORMAT_VERSION, which is 1."""
        assert FORMAT_VERSION == 1
        for value in SAMPLE:
            assert encode(value)[0] == FORMAT_VERSION

    @pytest.mark.parametrize("value, hex_", GOLDEN, ids=[type(v).__name__ for v, _ in GOLDEN])
    def test_golden_encodings(self, value: object, hex_: str) -> None:
        """Version 1 encodings are fixed: these bytes encode and decode as they always did."""
        assert encode(value).hex() == hex_
        assert_same(value, decode(bytes.fromhex(hex_)))

    def test_cycle_through_tuple_encoding(self) -> None:
        """A cycle through a tuple writes the tuple once more, then marks the outer copy superseded."""
        assert encode(_cycle()).hex() == "01200121012600"
        assert encode(_cycle()[0]).hex() == "01270101200121012600"

    @hypothesis_settings
    @given(values)
    def test_deterministic(self, value: object) -> None:
        """Encoding the same value twice gives the same bytes."""
        assert encode(value) == encode(value)

    @hypothesis_settings
    @given(values)
    def test_reencoding_a_decoded_value_gives_the_same_bytes(self, value: object) -> None:
        """Without sets (whose order may change when rebuilt), encode(decode(b)) == b."""
        assume(not any(type(v) in (set, frozenset) for v in _walk(value)))
        data = encode(value)
        assert encode(decode(data)) == data

    def test_same_bytes_in_another_process(self) -> None:
        """A value without sets encodes to the same bytes under another hash seed."""
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); from tests.test_codec import SAMPLE, encode; "
            "print(encode([v for v in SAMPLE if type(v) not in (set, frozenset)]).hex())"
        )
        root = str(Path(__file__).resolve().parent.parent)
        expected = encode([v for v in SAMPLE if type(v) not in (set, frozenset)]).hex()
        for seed in ("1", "2"):
            result = subprocess.run(
                [sys.executable, "-c", code, root],
                capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}, timeout=60,
            )  # fmt: skip
            assert result.stdout.strip() == expected

    @pytest.mark.parametrize(
        "value, size",
        [(None, 2), (True, 2), (1, 2), (127, 2), (-1, 3), (1000, 4), (1.0, 10), ("", 2), ("abc", 5),
         ("x" * 63, 65), (b"abc", 6), ([], 3), ({"a": 1}, 6), (list(range(100)), 104)],
    )  # fmt: skip
    def test_small_values_are_small(self, value: object, size: int) -> None:
        """Small values take a few bytes: a small int or an empty string is 2 bytes in all."""
        assert len(encode(value)) == size
        assert len(encode(1)) <= 3

    def test_decoded_values_hold_only_supported_types(self) -> None:
        """The format cannot name a class or a function: decoding builds only the supported types."""
        allowed = {type(None), bool, int, float, str, bytes, bytearray, list, tuple, dict, set,
                   frozenset, dt.datetime, dt.date, dt.time, dt.timedelta, Decimal, uuid.UUID}  # fmt: skip
        out = decode(encode(SAMPLE))
        assert {type(v) for v in _walk(out)} <= allowed
        assert isinstance(out, list)
        assert {type(v) for v in out} <= allowed


class TestClone:
    @pytest.mark.parametrize(
        "value",
        [None, True, 7, 2**100, 1.5, "s", b"b", Decimal("1.5"), uuid.UUID(int=3), dt.date(2024, 1, 1),
         dt.timedelta(1), dt.datetime(2024, 1, 1, tzinfo=dt.UTC), (1, "a", (2.5,)),
         frozenset({1, 2})],
    )  # fmt: skip
    def test_immutable_values_are_returned_as_they_are(self, value: object) -> None:
        """Immutable values, including tuples and frozensets of immutable values, are not copied."""
        assert clone(value) is value

    def test_tuple_holding_a_list_is_copied(self) -> None:
        """A tuple that holds a mutable container is a new tuple holding a copy."""
        value = (1, [2])
        out = clone(value)
        assert isinstance(out, tuple)
        assert out is not value and out[1] is not value[1] and out == value

    @copier
    def test_mutating_the_copy_leaves_the_original_alone(self, copy: Callable[[object], object]) -> None:
        """Changing every mutable container of the copy changes nothing in the original."""
        value: dict[str, Any] = {
            "l": [1, [2]], "s": {3}, "b": bytearray(b"x"), "t": ([4],), "n": list(range(10))
        }  # fmt: skip
        snapshot = encode(value)
        out = copy(value)
        assert isinstance(out, dict)
        out["l"][1].append(5)
        out["l"].append(6)
        out["s"].add(7)
        out["b"] += b"y"
        out["t"][0].clear()
        out["n"][0] = -1
        out["new"] = 1
        assert encode(value) == snapshot

    def test_mutating_the_original_leaves_the_copy_alone(self) -> None:
        """Changing the original after clone changes nothing in the copy."""
        value: dict[str, Any] = {"l": [1, [2]], "s": {3}}
        out = clone(value)
        value["l"][1].append(9)
        value["s"].clear()
        assert out == {"l": [1, [2]], "s": {3}}
