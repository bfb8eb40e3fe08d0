"""Bugs found reviewing the perf-hot, review1 and ws-edges merges, each with the workerd
measurement it follows (miniflare 4, compatibility date 2026-04-07)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import durable

pytestmark = pytest.mark.timeout(60)


def nested(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


def depth(value: Any) -> int:
    levels = 0
    while isinstance(value, list):
        value, levels = value[0], levels + 1
    return levels


class Receiver(durable.DurableObject):
    async def pair(self, first: Any, deep: Any) -> list[Any]:
        return [first.url if isinstance(first, durable.Request) else type(first).__name__, depth(deep)]

    async def depth(self, value: Any) -> list[Any]:
        first = value
        while isinstance(first, list):
            first = first[0]
        return [depth(value), type(first).__name__]


class TestTransfersBesideDeepValues:
    """A Request, Response, Headers or stub is copied for RPC by the recursive clone(), which
    went to the stored encoding for any value deeper than 100 levels; that encoding has no place
    for them, so a Request at the top of the arguments was refused as "deeper than 100 levels"
    because another argument was. workerd (miniflare 4, 2026-04-07): `pair(new Request(...),
    [[...150 deep...]])` and `depth([request, [[...150...]]])` cross, and so does a Request nested
    900, 1,000, 2,000 and 3,000 deep."""

    async def test_a_request_beside_a_deep_argument(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(Receiver).get_by_name("a")
        assert await stub.pair(durable.Request("http://x/"), nested(1, 150)) == ["http://x/", 150]

    async def test_a_stub_and_headers_beside_deep_data(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(Receiver).get_by_name("a")
        assert await stub.pair(stub, nested(1, 150)) == ["Stub", 150]
        assert await stub.depth([durable.Headers({"a": "b"}), nested(1, 150)]) == [1, "Headers"]

    @pytest.mark.parametrize("levels", [150, 500])
    async def test_a_request_nested_deeper_than_100(self, durable_runtime: durable.Runtime, levels: int) -> None:
        stub = durable_runtime.namespace(Receiver).get_by_name("a")
        assert await stub.depth(nested(durable.Request("http://x/"), levels)) == [levels, "Request"]

    async def test_past_the_recursion_limit_the_error_says_so(self, durable_runtime: durable.Runtime) -> None:
        stub = durable_runtime.namespace(Receiver).get_by_name("a")
        levels = sys.getrecursionlimit() + 100
        for value in (durable.Request("http://x/"), stub):
            with pytest.raises(durable.DataCloneError, match="recursion limit") as info:
                await stub.depth(nested(value, levels))
            assert "stored value" not in str(info.value)
        # Plain data that deep still crosses (the stored encoding has no depth limit).
        assert await stub.depth(nested(1, levels)) == [levels, "int"]
