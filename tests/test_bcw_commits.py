"""Which writes around a ``block_concurrency_while()`` callback commit together.

Measured with miniflare 4.20260426 (compatibility date 2026-04-07), SQLite- and KV-backed alike,
every run the same: a fetch makes writes around callbacks, then something drops what is not
committed yet (``ctx.abort()`` right after, with no await, loses the writes of the current turn;
a callback that raises resets the object and loses its own), and a later call lists the keys.
The rule: the writes of a turn commit together; a callback's writes are committed by the time
its caller goes on (even with no await between), and the writes made before a callback starts
commit before it runs, so neither joins the other's fate. Only the alarm scheduler hears of a
deletion later (tests/test_alarm_fuzz_found.py, ``test_a_delete_and_a_set_around_a_section``).
"""

from __future__ import annotations

import asyncio

import pytest

import durable

from helpers import settle


class Writes(durable.DurableObject):
    """``run(case)`` writes around callbacks as ``case`` says (see ``KEPT``)."""

    async def keys(self) -> list[str]:
        return list(await self.ctx.storage.list())

    async def run(self, case: str) -> None:  # one branch per measured case
        storage = self.ctx.storage
        section = self.ctx.block_concurrency_while

        async def put_a() -> None:
            await storage.put("a", 1)

        async def fails() -> None:
            raise RuntimeError("the callback fails")

        async def put_a_then_wait_then_fail() -> None:
            await storage.put("a", 1)
            await asyncio.sleep(0)
            raise RuntimeError("the callback fails")

        async def put_a_then_read_then_fail() -> None:
            await storage.put("a", 1)
            await storage.get("q")
            raise RuntimeError("the callback fails")

        async def nested_then_fail() -> None:
            await section(put_a)
            raise RuntimeError("the callback fails")

        async def nested_put_then_failing_section() -> None:
            await section(put_a)
            storage.put("b", 1)
            await section(fails)

        if case == "put, abort":
            storage.put("b", 1)
            self.ctx.abort("dropped")
        elif case == "section, put, abort":
            await section(put_a)
            storage.put("b", 1)
            self.ctx.abort("dropped")
        elif case == "section, read, abort":
            await section(put_a)
            await storage.get("q")
            self.ctx.abort("dropped")
        elif case == "section, sleep, abort":
            await section(put_a)
            await asyncio.sleep(0)
            self.ctx.abort("dropped")
        elif case == "section, failing section":
            await section(put_a)
            await section(fails)
        elif case == "section, put, failing section":
            await section(put_a)
            storage.put("b", 1)
            await section(fails)
        elif case == "put, wait, fail":
            await section(put_a_then_wait_then_fail)
        elif case == "put, read, fail":
            await section(put_a_then_read_then_fail)
        elif case == "nested, fail":
            await section(nested_then_fail)
        elif case == "nested, put, failing section":
            await section(nested_put_then_failing_section)
        elif case == "section, put, raise":
            await section(put_a)
            storage.put("b", 1)
            raise RuntimeError("the method raises")  # (no reset: every write stays)
        else:
            raise AssertionError(case)


KEPT = {
    "put, abort": [],
    "section, put, abort": ["a"],
    "section, read, abort": ["a"],
    "section, sleep, abort": ["a"],
    "section, failing section": ["a"],
    "section, put, failing section": ["a", "b"],
    "put, wait, fail": ["a"],
    "put, read, fail": [],
    "nested, fail": ["a"],
    "nested, put, failing section": ["a", "b"],
    "section, put, raise": ["a", "b"],
}


@pytest.mark.parametrize("backend", ["sqlite", "kv"])
@pytest.mark.parametrize("awaited", [True, False], ids=["awaited", "not-awaited"])
@pytest.mark.parametrize("case", list(KEPT))
async def test_what_a_reset_right_after_keeps(case: str, awaited: bool, backend: str) -> None:
    """The keys left after ``case`` (see the module docstring), whether or not its caller awaits
    the call meanwhile (a caller that awaits makes the commit at once in durable)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Writes, storage=backend).get_by_name(case)
        call = asyncio.ensure_future(stub.run(case))
        if not awaited:
            await settle(20)
        with pytest.raises(Exception):  # noqa: B017 (the abort, the callback's error or the method's)
            await call
        assert await rt.namespace(Writes, storage=backend).get_by_name(case).keys() == KEPT[case]
