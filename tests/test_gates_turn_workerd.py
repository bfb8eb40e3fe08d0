"""Events of every kind (RPC call, fetch, hibernatable WebSocket message) around the end of a
``block_concurrency_while()`` or ``transaction()`` callback, against the code that awaited it.

Measured in workerd (miniflare 4.20260426, compatibility date 2026-04-07, both backends, five
runs of each probe, the same result every time): a method awaits ``blockConcurrencyWhile()`` (or
``transaction()``) whose callback waits 50 ms; a Worker sends other events to the object meanwhile.

- Events queued while the callback ran start after it ends, once the code that awaited it has run
  up to its next suspension: ``cb-end a-cont b-1``; storage ``get`` / ``put`` awaits there do not
  let them in (``a-cont a-get a-get2 b-1``), ``sync()`` and a timer do (``a-cont b-1 a-sync``);
  a second section it starts at once runs first (``a-cont cb2-start cb2-end a-cont2 b-1``).
- Among themselves they start in arrival order, whatever their kinds (sent 3 ms apart:
  ``b-1 f-1 ws-1 b-2``, ``ws-1 f-1 b-1 ws-2``).
- The same for a section the constructor starts: its ``.then()`` runs before the first event.
- An event sent at any moment from 44 to 59 ms after the section started (1 ms steps, RPC and
  fetch, 3 runs each) never ran between ``cb-end`` and ``a-cont``: the awaiting code's next step
  always comes first, also for an event that arrives as the section ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable import _host
from durable.testing import websocket


class Section(durable.DurableObject):
    """``a`` holds the object in a section until ``env.release`` is set; the rest log to ``env.log``."""

    async def a(self, lock: str, then: str = "") -> None:
        log = self.env.log
        log.append("a-start")

        async def callback(*_: Any) -> None:
            log.append("cb-start")
            await self.env.release.wait()
            log.append("cb-end")
            for ended in self.env.ended:
                ended.set_result(None)  # wakes the test in the loop turn the section ends

        if lock == "bcw":
            await self.ctx.block_concurrency_while(callback)
        else:
            await self.ctx.storage.transaction(callback)
        log.append("a-cont")
        storage = self.ctx.storage
        if then == "get":
            await storage.get("y")
            log.append("a-get")
            await storage.get("z")
            log.append("a-get2")
        elif then == "put":
            await storage.put("y", 1)
            log.append("a-put")
        elif then == "sync":
            storage.put("y", 1)
            await storage.sync()
            log.append("a-sync")
        elif then == "sleep":
            await asyncio.sleep(0)
            log.append("a-sleep")
        elif then in ("bcw", "txn"):

            async def again(*_: Any) -> None:
                log.append("cb2-start")
                await asyncio.sleep(0)
                log.append("cb2-end")

            if then == "bcw":
                await self.ctx.block_concurrency_while(again)
            else:
                await storage.transaction(again)
            log.append("a-cont2")

    def b(self, tag: str) -> None:
        self.env.log.append(f"b-{tag}")

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.headers.get("upgrade") == "websocket":
            client, server = durable.WebSocketPair()
            self.ctx.accept_web_socket(server)
            return durable.Response(None, status=101, web_socket=client)
        self.env.log.append("f-" + request.url.rsplit("/", 1)[1])
        return durable.Response("f")

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(f"ws-{message!s}")


class BuiltInASection(durable.DurableObject):
    """Its constructor starts a section and logs when the code awaiting it goes on."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        log = env.log
        log.append("ctor")

        async def callback() -> None:
            log.append("cb-start")
            await env.release.wait()
            log.append("cb-end")

        section = ctx.block_concurrency_while(callback)

        async def then() -> None:  # (JavaScript: blockConcurrencyWhile(cb).then(...))
            await section
            log.append("ctor-then")

        self.then = asyncio.get_running_loop().create_task(then())

    def b(self, tag: str) -> None:
        self.env.log.append(f"b-{tag}")

    async def fetch(self, request: durable.Request) -> durable.Response:
        self.env.log.append("f-" + request.url.rsplit("/", 1)[1])
        return durable.Response("f")


@pytest.fixture(params=["sqlite", "kv"])
async def rt(request: pytest.FixtureRequest) -> AsyncIterator[durable.Runtime]:
    env = {"log": [], "release": asyncio.Event(), "ended": []}
    async with durable.Runtime(vars=env) as runtime:
        runtime.backend = request.param  # type: ignore[attr-defined]
        yield runtime


async def turns(n: int = 20) -> None:
    """Let ``n`` loop turns pass: an event sent before has reached the object's gate."""
    for _ in range(n):
        await asyncio.sleep(0)


def send(stub: Any, ws: durable.WebSocket | None, event: str) -> Any:
    """Send ``kind:tag`` to the object: ``b`` an RPC call, ``f`` a fetch, ``ws`` a message."""
    kind, tag = event.split(":")
    if kind == "b":
        return asyncio.ensure_future(stub.b(tag))
    if kind == "f":
        return asyncio.ensure_future(stub.fetch(f"http://x/{tag}"))
    assert ws is not None
    ws.send(tag)
    return None


async def run_section(rt: durable.Runtime, lock: str, events: list[str], then: str = "") -> list[str]:
    """``a(lock, then)`` holds the object while ``events`` are sent one by one; the log at the end."""
    stub = rt.namespace(Section, storage=rt.backend).get_by_name("a")  # type: ignore[attr-defined]
    async with websocket(stub, "http://x/") as ws:
        calls = [asyncio.ensure_future(stub.a(lock, then))]
        await turns()
        for event in events:
            calls.append(send(stub, ws, event))
            await turns()
        rt.env.release.set()
        await asyncio.gather(*(call for call in calls if call is not None))
        for _ in range(100):  # the messages' handlers end after the calls
            if sum(entry.startswith("ws-") for entry in rt.env.log) == sum(e.startswith("ws:") for e in events):
                break
            await asyncio.sleep(0.001)
    return list(rt.env.log)


class TestEventsQueuedBehindASection:
    @pytest.mark.parametrize("lock", ["bcw", "txn"])
    @pytest.mark.parametrize("events", [["b:1", "f:1", "ws:1", "b:2"], ["ws:1", "f:1", "b:1", "ws:2"]])
    async def test_start_after_the_awaiting_code_in_arrival_order(
        self, rt: durable.Runtime, lock: str, events: list[str]
    ) -> None:
        """workerd: cb-end a-cont, then the queued events in the order they arrived, whatever
        their kinds (RPC, fetch, WebSocket message)."""
        expected = ["a-start", "cb-start", "cb-end", "a-cont"] + [e.replace(":", "-") for e in events]
        assert await run_section(rt, lock, events) == expected

    @pytest.mark.parametrize(
        ("then", "expected"),
        [
            ("get", ["a-cont", "a-get", "a-get2", "b-1"]),
            ("put", ["a-cont", "a-put", "b-1"]),
            ("sync", ["a-cont", "b-1", "a-sync"]),
            ("sleep", ["a-cont", "b-1", "a-sleep"]),
            ("bcw", ["a-cont", "cb2-start", "cb2-end", "a-cont2", "b-1"]),
            ("txn", ["a-cont", "cb2-start", "cb2-end", "a-cont2", "b-1"]),
        ],
    )
    async def test_what_the_awaiting_code_does_next(self, rt: durable.Runtime, then: str, expected: list[str]) -> None:
        """workerd: after the section, the awaiting code's storage get()s and put() run before a
        queued event (they hold the input gate); its sync() and a timer let the event in; a
        second section it starts at once (blockConcurrencyWhile() or transaction(), its callback
        awaiting a timer) runs, and the code after it, before the event."""
        log = await run_section(rt, "bcw", ["b:1"], then)
        assert log[log.index("a-cont") :] == expected

    async def test_a_section_the_constructor_started(self, rt: durable.Runtime) -> None:
        """workerd: ctor cb-start cb-end ctor-then b-1 f-1 b-2 (the section's .then() first)."""
        stub = rt.namespace(BuiltInASection, storage=rt.backend).get_by_name("a")  # type: ignore[attr-defined]
        calls = []
        for event in ["b:1", "f:1", "b:2"]:
            calls.append(send(stub, None, event))
            await turns()
        rt.env.release.set()
        await asyncio.gather(*calls)
        assert rt.env.log == ["ctor", "cb-start", "cb-end", "ctor-then", "b-1", "f-1", "b-2"]


class TestAnEventArrivingAsTheSectionEnds:
    @pytest.mark.parametrize("lock", ["bcw", "txn"])
    @pytest.mark.parametrize("kind", ["b", "f"])
    async def test_waits_for_the_awaiting_code(self, rt: durable.Runtime, lock: str, kind: str) -> None:
        """An event sent in the loop turn the callback ends (the callback's last act wakes the
        sender) starts after the code awaiting the section goes on, as in workerd, where no event
        sent around the section's end ran before it (see the module's docstring). durable's RPC
        and fetch fast paths let it in at once when no lock was held and nothing waited
        (cb-end b-1 a-cont), ignoring the turn the lock ended in (``InputGate.reopening``). (A
        WebSocket message sent then reaches the object turns later, after the awaiting code.)"""
        stub = rt.namespace(Section, storage=rt.backend).get_by_name("a")  # type: ignore[attr-defined]
        await stub.b("0")  # (the instance is built: the fast paths need one)
        ended = asyncio.get_running_loop().create_future()
        rt.env.ended.append(ended)
        call = asyncio.ensure_future(stub.a(lock))
        await turns()
        rt.env.release.set()
        await ended
        await asyncio.gather(call, send(stub, None, f"{kind}:1"))
        assert rt.env.log == ["b-0", "a-start", "cb-start", "cb-end", "a-cont", f"{kind}-1"]


class Sections(durable.DurableObject):
    """``run(how)`` ends a section in one of the ways a section ends."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        if env.how == "ctor":

            async def callback() -> None:
                await asyncio.sleep(0)

            ctx.block_concurrency_while(callback)

    async def run(self) -> None:
        how = self.env.how

        async def callback(*_: Any) -> None:
            await asyncio.sleep(0)
            if how == "raises":
                raise ValueError(how)
            if how == "nested":
                await self.ctx.block_concurrency_while(inner)
            if how == "dropped":
                await asyncio.get_running_loop().create_future()  # (never done: rt.reset() ends it)

        async def inner() -> None:
            await asyncio.sleep(0)

        if how == "txn":
            await self.ctx.storage.transaction(callback)
        else:
            await self.ctx.block_concurrency_while(callback)

    def b(self) -> str:
        return "b"

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("f")


class TestTheFastPathsAfterASection:
    @pytest.mark.parametrize("how", ["ends", "raises", "nested", "txn", "ctor", "caller-cancelled", "dropped"])
    async def test_are_taken_again_a_turn_later(self, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
        """``InputGate.reopening`` sends RPC calls and fetches down the general path in the turn
        a section ends; it is cleared a turn later however the section ended (it raised and reset
        the object, nested, a transaction, a section the constructor started, the awaiting
        call cancelled by its caller, every object dropped meanwhile), and the fast paths serve
        calls again: none goes through ``ObjectHost.invoke``."""
        async with durable.Runtime(vars={"how": how}) as rt:
            namespace = rt.namespace(Sections)
            stub = namespace.get_by_name("a")
            await stub.b()
            call = asyncio.ensure_future(stub.run())
            await turns(5)
            if how == "caller-cancelled":
                call.cancel()
            elif how == "dropped":
                await rt.reset()
            with contextlib.suppress(BaseException):
                await call
            stub = namespace.get_by_name("a")  # (a reset breaks the stub, as in workerd)
            await stub.b()
            await turns(5)
            slow: list[str] = []
            invoke = _host.ObjectHost.invoke

            def counted(host: _host.ObjectHost, kind: Any, *rest: Any) -> Any:
                slow.append(kind)
                return invoke(host, kind, *rest)

            monkeypatch.setattr(_host.ObjectHost, "invoke", counted)
            assert await stub.b() == "b"
            assert await (await stub.fetch("http://x/")).text() == "f"
            assert slow == []
