"""Interleavings where durable differed from workerd, found by the interleaving differential test
(tests/differential/interleave.py) and measured with miniflare 4.20260426 (compatibility date
2026-04-07, three runs alike)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable


class Obj(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.log: list[str] = []

    def other(self) -> Any:
        return self.env.OBJ.get_by_name("other")

    async def ping(self, n: int) -> str:
        return f"pong {n}"

    async def boom(self) -> None:
        raise ValueError("boom")

    async def close_gate(self) -> None:
        async def section() -> None:
            self.ctx.storage.list()  # not awaited: the callback never suspends

        await self.ctx.block_concurrency_while(section)

    async def call_other(self) -> None:
        self.log.append(await self.other().ping(1))

    async def nothing(self) -> None:
        pass

    async def transaction_calling_other(self) -> None:
        async def body(txn: durable.Transaction) -> str:
            self.log.append(await self.other().ping(3))
            return "txn-done"

        self.log.append(await self.ctx.storage.transaction(body))

    async def failing_call_in_section(self) -> None:
        async def section() -> None:
            await asyncio.sleep(0)
            try:
                await self.other().boom()
            except ValueError:
                self.log.append("caught")

        await self.ctx.block_concurrency_while(section)

    async def note(self) -> None:
        self.log.append("note")

    async def get_log(self) -> list[str]:
        return self.log


@pytest.fixture(params=["sqlite", "kv"])
async def ns(request: pytest.FixtureRequest) -> AsyncIterator[durable.Namespace[Obj]]:
    async with durable.Runtime() as rt:
        yield rt.namespace(Obj, name="OBJ", storage=request.param)


async def test_a_result_waits_behind_events_queued_at_the_gate(ns: durable.Namespace[Obj]) -> None:
    """Calls queued behind a block_concurrency_while() enter before the result of a call that one
    of them made once the gate opened: workerd logs ["pong 3", "txn-done", "pong 1"] (call 1's
    result arrives while the queued call 3's transaction holds the gate, and waits for its end).
    durable delivered call 1's result before call 3 had entered: ["pong 1", "pong 3", "txn-done"]."""
    stub = ns.get_by_name("queued")
    await asyncio.gather(stub.close_gate(), stub.call_other(), stub.nothing(), stub.transaction_calling_other())
    assert await stub.get_log() == ["pong 3", "txn-done", "pong 1"]


async def test_an_error_inside_a_section_while_an_event_waits(ns: durable.Namespace[Obj]) -> None:
    """A call made inside a block_concurrency_while() callback that raises, while another event
    waits at the gate, reaches the callback: workerd logs ["caught", "note"]. durable queued the
    error behind the waiting event, which waited for the callback: both hung."""
    stub = ns.get_by_name("error")
    await asyncio.wait_for(asyncio.gather(stub.failing_call_in_section(), stub.note()), 10)
    assert await stub.get_log() == ["caught", "note"]


class Racer(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.log: list[str] = []

    async def ping(self, n: int) -> str:
        return f"pong {n}"

    async def ping_then_section(self) -> None:
        self.log.append(await self.env.RACER.get_by_name("other").ping(0))

        async def section() -> None:
            self.log.append(f"section saw {await self.ctx.storage.get('a')}")

        await self.ctx.block_concurrency_while(section)
        self.log.append("section done")

    async def fail(self) -> None:
        raise ValueError("failed")

    async def ping_only(self, fails: bool) -> None:
        other = self.env.RACER.get_by_name("other")
        try:
            self.log.append(await (other.fail() if fails else other.ping(1)))
        except ValueError:
            self.log.append("caught")

    async def get_log(self) -> list[str]:
        return self.log


@pytest.mark.parametrize("fails", [False, True], ids=["result", "error"])
@pytest.mark.parametrize("backend", ["sqlite", "kv"])
async def test_a_result_waits_for_a_section_started_after_it_arrived(backend: str, fails: bool) -> None:
    """Two calls each await a call to another object; the first, once resumed, starts a
    block_concurrency_while(). workerd logs ["pong 0", "section saw None", "section done",
    "pong 1"]: the second result waits for the section, though it came back in the same turn as
    the first; so does an error ("caught" last; measured with a transaction() too). durable let
    the result through (its call's own task had checked the gate, still open, before the first
    call resumed), and on Python 3.12 and later the error as well."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Racer, name="RACER", storage=backend).get_by_name("race")
        await asyncio.gather(stub.ping_then_section(), stub.ping_only(fails))
        last = "caught" if fails else "pong 1"
        assert await stub.get_log() == ["pong 0", "section saw None", "section done", last]
