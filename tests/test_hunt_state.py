"""Edges of API.md sections 1 and 3 (defining an object, ``ctx``) and of the alarm API, found by
comparing with workerd (miniflare 4, compatibility date 2026-04-07).

Each test quotes its measurement: a Worker calling a Durable Object through ``env.C`` in a probe
driven with ``mf.dispatchFetch(url)``.
"""

from __future__ import annotations

import asyncio

import pytest

import durable
from durable.testing import MockClock

T0 = 1_700_000_000
T0_MS = T0 * 1000


class CancelledInConstructor(durable.DurableObject):
    """Its constructor raises ``asyncio.CancelledError`` (as ``fut.result()`` of a cancelled future
    would) on the first instance only."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(ctx.id.name)
        if len(env.built) == 1:
            raise asyncio.CancelledError

    async def ok(self) -> str:
        return "ok"


class TestAConstructorThatRaisesCancelledError:
    """A constructor that throws resets the object and fails the call with its error, marked
    ``durableObjectReset`` (workerd: ``RangeError: ctor boom``, ``durableObjectReset`` true; a new
    stub reaches a fresh instance whose constructor runs again). A handler that raises
    ``CancelledError`` already reached its caller as a ``DurableError`` ("so that the caller does
    not take it for its own cancellation"); a constructor's ``CancelledError`` reached the caller
    as a bare ``CancelledError``, which ``asyncio`` takes for the caller's own cancellation."""

    async def test_the_caller_gets_a_reset_error(self) -> None:
        async with durable.Runtime(vars={"built": [], "alarms": []}) as rt:
            ns = rt.namespace(CancelledInConstructor)
            stub = ns.get_by_name("a")
            with pytest.raises(
                durable.ObjectResetError, match="CancelledInConstructor raised asyncio.CancelledError"
            ) as info:
                await stub.ok()  # raised asyncio.CancelledError
            assert not isinstance(info.value, asyncio.CancelledError)
            assert info.value.durable_object_reset
            with pytest.raises(durable.ObjectResetError):
                await stub.ok()  # the stub that saw the reset stays broken, as on Cloudflare
            assert await ns.get_by_name("a").ok() == "ok"
            assert rt.env.built == ["a", "a"]

    async def test_gather_and_task_group_see_an_error(self) -> None:
        async with durable.Runtime(vars={"built": [], "alarms": []}) as rt:
            stub = rt.namespace(CancelledInConstructor).get_by_name("a")
            results: list[object] = await asyncio.gather(stub.ok(), return_exceptions=True)
            assert isinstance(results[0], durable.ObjectResetError)
            with pytest.raises(ExceptionGroup) as group:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(stub.ok())
            assert isinstance(group.value.exceptions[0], durable.ObjectResetError)

    async def test_an_alarm_whose_retry_it_failed_is_retried(self) -> None:
        """workerd (SQLite- and KV-backed): an alarm at 0.2 s whose handler aborts is retried at
        ~2.4 s; that retry's constructor throws; the next attempt runs at ~6.7 s with
        ``retryCount`` 1, ``isRetry`` true (the failed build is not counted)."""
        clock = MockClock(T0)
        async with durable.Runtime(clock=clock, vars={"built": [], "alarms": []}) as rt:
            ns = rt.namespace(AbortsThenCancelled)
            await ns.get_by_name("a").arm(T0_MS + 200)
            for _ in range(70):
                await clock.advance(0.1)
            assert rt.env.alarms == [(200, 0), (6200, 1)]
            assert rt.env.built == [0, 2200, 6200]


class AbortsThenCancelled(durable.DurableObject):
    """Its alarm aborts the object on the first attempt; the next constructor raises CancelledError."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(ctx.now_ms() - T0_MS)
        if len(env.alarms) == 1 and len(env.built) == 2:
            raise asyncio.CancelledError

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        self.env.alarms.append((self.ctx.now_ms() - T0_MS, info.retry_count))
        if info.retry_count == 0:
            self.ctx.abort("first attempt")


class CancelledInACallback(durable.DurableObject):
    """The first instance's constructor starts a ``block_concurrency_while()`` callback that raises
    ``asyncio.CancelledError``; ``section()`` does the same from a call."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(ctx.id.name)
        self.built_as = len(env.built)
        if ctx.id.name == "constructor" and self.built_as == 1:
            ctx.block_concurrency_while(self.cancelled)

    async def cancelled(self) -> None:
        raise asyncio.CancelledError

    async def number(self) -> int:
        return self.built_as

    async def section(self) -> str:
        try:
            await self.ctx.block_concurrency_while(self.cancelled)
        except durable.ObjectResetError as exc:
            return f"caught {exc}"
        return "not raised"


class TestABlockConcurrencyWhileCallbackThatRaisesCancelledError:
    """workerd: a callback that throws (from the constructor or a call) resets the object; the
    calls waiting for it fail with its error, marked ``durableObjectReset``, and the next stub
    reaches a fresh instance (``bcwCtorRpc ["err","RangeError","bcw ctor boom",..., true]``,
    ``bcwThrow_after ["ok",6]`` with the constructor run twice). durable re-raised a callback's
    own ``CancelledError`` as if its task had been cancelled: the constructor's callback failed
    nobody (the first instance lived on), and a call's surfaced as "the object was not reset"."""

    async def test_from_the_constructor(self) -> None:
        async with durable.Runtime(vars={"built": []}) as rt:
            ns = rt.namespace(CancelledInACallback)
            with pytest.raises(durable.ObjectResetError, match=r"blockConcurrencyWhile\(\) callback raised"):
                await ns.get_by_name("constructor").number()  # answered 1
            assert await ns.get_by_name("constructor").number() == 2

    async def test_from_a_call(self) -> None:
        async with durable.Runtime(vars={"built": []}) as rt:
            ns = rt.namespace(CancelledInACallback)
            stub = ns.get_by_name("call")
            assert await stub.number() == 1
            with pytest.raises(durable.ObjectResetError, match="the object was reset") as info:
                await stub.section()  # DurableError: "... the object was not reset."
            assert info.value.durable_object_reset
            assert await ns.get_by_name("call").number() == 2


class KeepsItsContext(durable.DurableObject):
    """Keeps its ``ctx`` in ``env.kept`` and aborts; the next instance uses the kept one."""

    async def keep_and_abort(self) -> None:
        self.env.kept.append(self.ctx)
        await self.ctx.storage.put("k", "v1")
        self.ctx.abort("bye")

    async def use_the_kept_one(self) -> list[str]:
        old: durable.State = self.env.kept[0]

        async def section() -> str:
            return "ran"

        seen = [str(old.id.name)]
        for attempt in (
            lambda: old.storage.get("k"),
            lambda: old.block_concurrency_while(section),
            lambda: old.get_web_sockets(),
            lambda: old.abort("again"),
        ):
            try:
                await attempt()  # type: ignore[misc]
            except durable.ObjectAbortedError as exc:
                seen.append(str(exc))
        return seen


async def test_a_reset_instances_ctx_kept_by_the_next_raises_its_reset() -> None:
    """workerd: the kept ``ctx``'s storage and ``abort()`` raise "Cannot perform I/O on behalf of a
    different Durable Object"; durable raises the reset (docs/differences.md, Concurrency)."""
    async with durable.Runtime(vars={"kept": []}) as rt:
        ns = rt.namespace(KeepsItsContext)
        with pytest.raises(durable.ObjectAbortedError, match="bye"):
            await ns.get_by_name("a").keep_and_abort()
        assert await ns.get_by_name("a").use_the_kept_one() == ["a", "bye", "bye", "bye", "bye"]


class GivesUpOnASection(durable.DurableObject):
    """``give_up()`` waits for a long ``block_concurrency_while()`` callback under a short
    ``asyncio.timeout()``: the timeout cancels the handler, which cancels the callback's task."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(ctx.id.name)

    async def long(self) -> None:
        await asyncio.Event().wait()

    async def give_up(self) -> str:
        try:
            async with asyncio.timeout(0.05):
                await self.ctx.block_concurrency_while(self.long)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    async def ok(self) -> str:
        return "ok"


async def test_a_callback_cancelled_by_its_awaiting_handler_is_no_reset(caplog: pytest.LogCaptureFixture) -> None:
    """A real cancellation of the callback's task (its awaiting handler's timeout cancels it,
    ``task.cancelling()`` counts it) is not the callback's own ``CancelledError`` (review of
    hunt-state): the object lives on, its gate reopens, nothing is logged as a callback that
    raised. Only a ``CancelledError`` the callback's code raised with its task not cancelled, in
    the live generation, resets the object (``BackgroundWork._run``)."""
    async with durable.Runtime(vars={"built": []}) as rt:
        stub = rt.namespace(GivesUpOnASection).get_by_name("a")
        assert await asyncio.wait_for(stub.give_up(), 10) == "timed out"
        assert await asyncio.wait_for(stub.ok(), 10) == "ok"
        assert rt.env.built == ["a"]
    assert not [r for r in caplog.records if "callback raised" in r.getMessage()]
