"""Values end to end: every listed type through storage (in memory, persisted and reopened, ``kv``,
transactions), RPC and ``durable inspect``; refusals that store nothing.

``tests/test_codec.py`` covers the codec itself; these tests go through the public API.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import decimal
import enum
import json
import math
import uuid
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import durable
from durable._cli import main


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def _depth(value: list[Any]) -> int:
    n = 0
    while value:
        value = value[0]
        n += 1
    return n


VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "int": -5,
    "huge_int": 10**10000,
    "nan": float("nan"),
    "inf": float("-inf"),
    "negative_zero": -0.0,
    "str": "héllo \ud800",
    "bytes": b"\x00\xff",
    "bytearray": bytearray(b"xy"),
    "list": [1, [2.0]],
    "tuple": (1, (2,)),
    "dict": {(1, 2): "a", frozenset({1}): "b", 3: "c", None: 1, True: 2, 1.5: 3, b"x": 4, dt.date(2020, 1, 1): 5},
    "set": {1, (2, 3), frozenset({4})},
    "frozenset": frozenset({"a"}),
    "datetime": dt.datetime(2020, 1, 2, 3, 4, 5, 6),
    "datetime_utc": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    "datetime_offset": dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")),
    "datetime_zoneinfo": dt.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    "date": dt.date(2020, 1, 1),
    "time": dt.time(1, 2, 3, 4, tzinfo=dt.UTC),
    "timedelta": dt.timedelta(days=-3, microseconds=5),
    "decimal_nan": Decimal("-NaN123"),
    "decimal_snan": Decimal("sNaN"),
    "decimal_negative_zero": Decimal("-0"),
    "decimal_huge": Decimal("1.0E+999999999"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (floats and Decimals by their exact text)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b) and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and type(a.tzinfo) is type(b.tzinfo) and a.tzinfo == b.tzinfo and str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


Pair = collections.namedtuple("Pair", "a b")


class Level(enum.IntEnum):
    LOW = 1


class Box(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    def kv_put(self, key: str, value: Any) -> None:
        self.ctx.storage.kv.put(key, value)

    def kv_get(self, key: str) -> Any:
        return self.ctx.storage.kv.get(key)

    async def in_transaction(self, key: str, value: Any) -> Any:
        async def body(txn: Any) -> Any:
            await txn.put(key, value)
            return await txn.get(key)

        return await self.ctx.storage.transaction(body)

    async def echo(self, value: Any) -> Any:
        return value

    async def identities(self, a: Any, b: Any = None, *, c: Any = None, d: Any = None) -> list[bool]:
        return [a is b, a is c, c is d, a[0] is c]

    async def put_with_a_bad_value(self) -> tuple[str, dict[str, Any]]:
        try:
            await self.ctx.storage.put({"a": 1, "b": object(), "c": 3})
        except durable.DataCloneError as exc:
            return str(exc), await self.ctx.storage.list()
        return "stored", await self.ctx.storage.list()

    async def store_awkward(self) -> None:
        cycle: list[Any] = [1]
        cycle.append(cycle)
        node: dict[str, Any] = {}
        node["self"] = node
        await self.ctx.storage.put(
            {"cycle": cycle, "node": node, "deep": _nested(100_000), "huge": 10**10000, "in_list": [-(10**5000)]}
        )


class TestRoundTrips:
    @pytest.mark.parametrize("storage", ["sqlite", "kv"])
    async def test_every_type_through_storage_rpc_and_transactions(self, tmp_path: Path, storage: str) -> None:
        """Each listed type comes back exactly: put/get, RPC, transaction(), kv; then after reopening."""
        async with durable.Runtime(tmp_path) as rt:
            box = rt.namespace(Box, storage=storage).get_by_name("b")
            for key, value in VALUES.items():
                await box.put(key, value)
                assert same(await box.get(key), value), key
                assert same(await box.echo(value), value), key
                assert same(await box.in_transaction("t-" + key, value), value), key
                if storage == "sqlite":
                    await box.kv_put("kv-" + key, value)
                    assert same(await box.kv_get("kv-" + key), value), key
        async with durable.Runtime(tmp_path) as rt:
            box = rt.namespace(Box, storage=storage).get_by_name("b")
            for key, value in VALUES.items():
                assert same(await box.get(key), value), key

    async def test_a_refused_value_stores_nothing_of_a_multi_put(self) -> None:
        """workerd (miniflare 4, 2026-04-07): put({a: 1, b: () => 1, c: 3}) raises DataCloneError and
        list() is then empty."""
        async with durable.Runtime() as rt:
            message, stored = await rt.namespace(Box).get_by_name("b").put_with_a_bad_value()
        assert message.startswith('Could not serialize object of type "object".') and stored == {}

    @pytest.mark.parametrize(
        "value",
        [
            collections.OrderedDict(),
            collections.defaultdict(list),
            Pair(1, 2),
            Level.LOW,
            1j,
            memoryview(b"x"),
        ],
        ids=lambda v: type(v).__name__,
    )
    async def test_refusals_name_the_type(self, value: Any) -> None:
        async with durable.Runtime() as rt:
            box = rt.namespace(Box).get_by_name("b")
            with pytest.raises(durable.DataCloneError, match=f'of type "{type(value).__qualname__}"'):
                await box.put("k", value)
            with pytest.raises(durable.DataCloneError, match=f'of type "{type(value).__qualname__}"'):
                await box.echo(value)


class Moment(dt.datetime):
    """A datetime subclass with a tzinfo of its own class, as pendulum's DateTime has."""


class Zone(zoneinfo.ZoneInfo):
    pass


class Day(dt.date):
    pass


class Clock(dt.time):
    pass


class Span(dt.timedelta):
    pass


class Ident(uuid.UUID):
    pass


class Amount(Decimal):
    pass


class TestSubclassMessages:
    @pytest.mark.parametrize(
        "value",
        [
            Moment(2020, 1, 2, 3, 4, 5, 6, tzinfo=Zone("Europe/Paris")),
            Moment(2020, 1, 2),
            Day(2020, 1, 2),
            Clock(1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            Span(days=-5, microseconds=3),
            Ident(int=12345),
            Amount("1.50"),
            collections.OrderedDict(a=1),
        ],
        ids=lambda v: type(v).__name__,
    )
    async def test_the_suggested_conversion_works(self, value: Any) -> None:
        """The message of a refused subclass names a conversion that gives a storable, equal value.
        It said ``datetime.datetime(value)`` (and the same for date, time, timedelta, UUID), which
        raises TypeError."""
        async with durable.Runtime() as rt:
            box = rt.namespace(Box).get_by_name("b")
            with pytest.raises(durable.DataCloneError, match="It is a subclass of") as caught:
                await box.put("k", value)
            expression = str(caught.value).split("e.g. with ", 1)[1].removesuffix(".)")
            converted = eval(expression, {"datetime": dt, "uuid": uuid, "decimal": decimal}, {"value": value})
            assert type(converted) in {dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID, Decimal, dict}
            await box.put("k", converted)
            assert await box.get("k") == value


class TestSharedArguments:
    """workerd (miniflare 4, 2026-04-07) copies all the arguments of a call as one value:
    ``stub.same(x, x, {k: x})`` receives ``a === b``, ``a === c.k``. A value passed positionally and
    by keyword arrived as two copies (args and kwargs were copied separately)."""

    async def test_stub(self) -> None:
        x: list[Any] = [1]
        async with durable.Runtime() as rt:
            box = rt.namespace(Box).get_by_name("b")
            assert await box.identities(x, x, c=x, d=x) == [True, True, True, False]
            assert await box.identities([x], c=x, d=x) == [False, False, True, True]

    def test_blocking_stub(self) -> None:
        x: list[Any] = [1]
        with durable.BlockingRuntime() as rt:
            box = rt.namespace(Box).get_by_name("b")
            assert box.identities(x, x, c=x, d=x) == [True, True, True, False]
            assert box.identities([x], c=x, d=x) == [False, False, True, True]


class TestInspect:
    """``durable inspect`` shows every value storage accepts, in text and in JSON."""

    @pytest.fixture
    def directory(self, tmp_path: Path) -> Path:
        async def body() -> None:
            async with durable.Runtime(tmp_path) as rt:
                box = rt.namespace(Box).get_by_name("b")
                await box.store_awkward()
                for key, value in VALUES.items():
                    await box.put(key, value)

        asyncio.run(body())
        return tmp_path

    def test_text(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Cycles as repr writes them, a value nested 100,000 deep, ints beyond Python's 4,300-digit
        str() limit in hexadecimal (these raised RecursionError and ValueError)."""
        assert main(["inspect", str(directory), "Box", "b"]) == 0
        lines = {
            line.split(": ", 1)[0].strip(): line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines()[2:]
        }
        assert lines["'cycle'"] == "[1, [...]]" and lines["'node'"] == "{'self': {...}}"
        assert lines["'deep'"] == "[" * 100_001 + "]" * 100_001
        assert lines["'huge'"] == hex(10**10000) and lines["'in_list'"] == f"[{hex(-(10**5000))}]"
        for key, value in VALUES.items():
            if key != "huge_int":
                assert lines[repr(key)] == repr(value), key

    def test_json(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """JSON holds the same: a reference back as {"repr": "[...]"}, nesting beyond 100 levels and
        huge ints as {"repr": ...}."""
        assert main(["inspect", str(directory), "Box", "b", "--json"]) == 0
        entries = json.loads(capsys.readouterr().out)["entries"]
        assert entries["cycle"] == [1, {"repr": "[...]"}] and entries["node"] == {"self": {"repr": "{...}"}}
        assert entries["huge"] == {"repr": hex(10**10000)} and entries["in_list"] == [{"repr": hex(-(10**5000))}]
        deep = entries["deep"]
        for _ in range(100):
            deep = deep[0]
        assert deep == {"repr": "[" * 99_901 + "]" * 99_901}
        assert entries["int"] == -5 and entries["list"] == [1, [2.0]] and entries["tuple"] == [1, [2]]
        assert entries["nan"] == "nan" and entries["bytearray"] == {"bytes": "7879"}
        assert entries["set"] == {"repr": repr(VALUES["set"])} and entries["uuid"] == {"repr": repr(VALUES["uuid"])}
