"""Input-gate orderings found in review8 with the interleaving differential test
(tests/differential/run_interleave.py 300 --seed 8101, case 220) and measured with miniflare
4.20260426 (compatibility date 2026-04-07, three runs alike)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable


class Obj(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.log: list[Any] = []

    def other(self) -> Any:
        return self.env.OBJ.get_by_name("other")

    async def ping(self, n: int) -> str:
        return f"pong {n}"

    async def fail(self, n: int) -> None:
        raise ValueError(f"failed {n}")

    async def section_after_two_calls(self) -> None:
        for _ in range(2):
            try:
                await self.other().fail(0)
            except ValueError as exc:
                self.log.append(f"caught {exc}")

        async def section() -> str:
            self.log.append("section")
            self.log.append(await self.ctx.storage.get("c"))
            return "bcw-done"

        self.log.append(await self.ctx.block_concurrency_while(section))

    async def two_calls_with_a_write(self) -> None:
        self.log.append(await self.other().ping(1))
        self.log.append("y1")
        self.ctx.storage.put("a", 1)  # not awaited: the next call waits for its commit (output gate)
        self.log.append(await self.other().ping(1))
        self.log.append("y3")

    async def get_log(self) -> list[Any]:
        return self.log


@pytest.mark.parametrize("backend", ["sqlite", "kv"])
async def test_a_result_that_came_back_during_a_section_waits_for_the_sections_caller(backend: str) -> None:
    """A result that came back while a block_concurrency_while() callback ran reaches its code
    after the code that awaited the section has resumed: workerd logs [..., "section", None,
    "bcw-done", "pong 1", "y3"] (blockConcurrencyWhile()'s promise resolves under the input
    lock). On Python 3.11 durable ran "pong 1" and "y3" before "bcw-done": the result's code was
    woken while the gate was closed and resumed after the lock ended but before the section's
    caller, where its gate check found the gate open and nobody queued."""
    async with durable.Runtime() as rt:
        ns = rt.namespace(Obj, name="OBJ", storage=backend)
        stub = ns.get_by_name("a")
        await asyncio.gather(stub.section_after_two_calls(), stub.two_calls_with_a_write())
        assert await stub.get_log() == [
            "caught failed 0",
            "pong 1",
            "y1",
            "caught failed 0",
            "section",
            None,
            "bcw-done",
            "pong 1",
            "y3",
        ]
