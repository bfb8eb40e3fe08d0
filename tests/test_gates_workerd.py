"""The concurrency of one object where it once differed from workerd (measured with miniflare 4,
compatibility date 2026-04-07): what opens the input gate, event order, resets of queued events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable


class Obj(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.n = 0

    async def bump(self, mode: str) -> int:
        """A read-modify-write of memory around one await: lost updates show the gate opened."""
        value = self.n
        storage = self.ctx.storage
        if mode == "sync":
            await storage.sync()
        elif mode == "sync-after-put":
            storage.put("other", 1)
            await storage.sync()
        elif mode == "bookmark":
            await storage.get_current_bookmark()
        elif mode == "get":
            await storage.get("x")
        elif mode == "sleep":
            await asyncio.sleep(0)
        self.n = value + 1
        return self.n


@pytest.fixture(params=["sqlite", "kv"])
async def ns(request: pytest.FixtureRequest) -> AsyncIterator[durable.Namespace[Obj]]:
    async with durable.Runtime() as rt:
        yield rt.namespace(Obj, storage=request.param)


class TestWhatOpensTheInputGate:
    @pytest.mark.parametrize(
        ("mode", "expected"),
        [
            ("none", [1, 2, 3]),
            ("get", [1, 2, 3]),
            ("sync", [1, 1, 1]),
            ("sync-after-put", [1, 1, 1]),
            ("sleep", [1, 1, 1]),
        ],
    )
    async def test_three_concurrent_calls(self, ns: Any, mode: str, expected: list[int]) -> None:
        """workerd, both backends: `v = this.n; await X; this.n = v + 1` from three concurrent calls
        gives [1, 2, 3] when X is a storage get (the gate stays closed) and [1, 1, 1] when X is
        `storage.sync()` (with or without writes pending) or a timer: sync() is awaited as
        outside I/O, which opens the input gate."""
        stub = ns.get_by_name(mode)
        assert list(await asyncio.gather(*(stub.bump(mode) for _ in range(3)))) == expected


async def test_current_bookmark_opens_the_input_gate() -> None:
    """workerd: two concurrent `v = await get(); await getCurrentBookmark(); await put(v + 1)`
    both read the same value: getCurrentBookmark() opens the input gate, even with nothing
    pending."""
    async with durable.Runtime(point_in_time_recovery=True) as rt:
        stub = rt.namespace(Obj).get_by_name("a")
        assert list(await asyncio.gather(stub.bump("bookmark"), stub.bump("bookmark"))) == [1, 1]
