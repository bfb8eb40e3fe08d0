"""Claims of the documentation pages that no other test asserted, each checked here.

tests/test_docs.py runs the pages' code; these tests check their prose. Each docstring quotes the
claim and names its page.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

import durable
from durable.testing import MockClock, run_alarm, run_in_object

pytestmark = pytest.mark.timeout(30)

T0 = 1_800_000_000


class Echo(durable.DurableObject):
    async def depth(self, value: Any) -> int:
        depth = 0
        while isinstance(value, list):
            value, depth = value[0], depth + 1
        return depth


def nested(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


class TestRequestsOverRpc:
    @pytest.mark.parametrize("levels", [99, 150])
    async def test_a_request_crosses_deep(self, durable_runtime: durable.Runtime, levels: int) -> None:
        """docs/values.md: "a `durable.Request`, a `durable.Response` ... and `durable.Headers` may be
        RPC arguments and results, anywhere in the value (in a value nested less deep than Python's
        recursion limit lets, a little under 1,000 levels by default)"."""
        stub = durable_runtime.namespace(Echo).get_by_name("a")
        assert await stub.depth(nested(durable.Request("http://x/"), levels)) == levels

    async def test_deeper_the_error_names_the_limit(self, durable_runtime: durable.Runtime) -> None:
        """docs/values.md: deeper "`DataCloneError` says so". It used to give storage's hint ("not a
        stored value: store what you need of it"), which was not what the call did. (workerd
        carries a Request nested 3,000 deep, measured with miniflare 4, 2026-04-07: a difference
        kept, docs/differences.md.)"""
        stub = durable_runtime.namespace(Echo).get_by_name("a")
        for value in (durable.Request("http://x/"), stub):
            with pytest.raises(durable.DataCloneError, match="deeper than Python's recursion limit") as info:
                await stub.depth(nested(value, sys.getrecursionlimit() + 10))
            assert "stored value" not in str(info.value)

    async def test_deep_values_without_requests_still_cross(self, durable_runtime: durable.Runtime) -> None:
        """docs/values.md: "There is no depth limit": a deep value of plain types is unaffected."""
        stub = durable_runtime.namespace(Echo).get_by_name("a")
        assert await stub.depth(nested(1, 5000)) == 5000

    async def test_deep_unsupported_type_keeps_its_message(self, durable_runtime: durable.Runtime) -> None:
        """docs/values.md: an unsupported type raises `Could not serialize object of type "..."`,
        wherever it is in the value, deep ones included."""
        stub = durable_runtime.namespace(Echo).get_by_name("a")
        with pytest.raises(durable.DataCloneError, match=r'^Could not serialize object of type "complex"\. '):
            await stub.depth(nested(1j, 150))


class SelfRun(durable.DurableObject):
    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        me = self.env.SELF.get(self.ctx.id)
        try:
            await run_alarm(me)
        except RuntimeError as exc:
            await self.ctx.storage.put("error", str(exc))


async def test_run_alarm_from_the_objects_own_alarm_raises() -> None:
    """docs/testing.md: "Called from the object's own code while its `alarm()` runs, `run_alarm`
    raises `RuntimeError` (it would wait for itself)."""
    clock = MockClock(start=T0)
    async with durable.Runtime(clock=clock) as rt:
        stub = rt.namespace(SelfRun, name="SELF").get_by_name("a")
        await stub.arm(T0 * 1000 + 1000)
        await clock.advance(1)
        error = await run_in_object(stub, lambda obj, ctx: ctx.storage.get("error"))
        assert error is not None and "would wait" in error


class Plain(durable.DurableObject):
    async def ping(self) -> str:
        return "pong"


async def test_only_named_namespaces_are_on_env() -> None:
    """docs/guide.md: "The name keys ids and stored data (default: the class name); given
    explicitly, it also appears on `rt.env`"."""
    async with durable.Runtime(vars={"V": 1}) as rt:
        unnamed = rt.namespace(Plain)
        assert unnamed.name == "Plain"
        assert "Plain" not in rt.env
        named = rt.namespace(Plain, name="PLAIN")
        assert rt.env.PLAIN is named and rt.env["PLAIN"] is named
        assert sorted(rt.env) == ["PLAIN", "V"]


class Gate(durable.DurableObject):
    async def run(self) -> tuple[bool, int]:
        result = self.ctx.block_concurrency_while(lambda: 5)
        return isinstance(result, asyncio.Task), await result


async def test_block_concurrency_while_returns_a_task(durable_runtime: durable.Runtime) -> None:
    """docs/api.md: "`block_concurrency_while(fn)` | runs `fn()` with the input gate closed;
    returns a task (await it for the result)"."""
    assert await durable_runtime.namespace(Gate).get_by_name("a").run() == (True, 5)
