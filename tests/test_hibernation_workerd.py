"""The hibernation lifecycle, measured in workerd (miniflare 4, compatibility date 2026-04-07).

The probes ran a Worker that forwarded WebSocket upgrades to a Durable Object accepting them
with ``ctx.acceptWebSocket``, and node ``ws`` clients connected over HTTP; "hibernated" means
12 s idle there, ``durable.testing.hibernate`` here. Each test names what workerd did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock, disconnect, hibernate, run_in_object, websocket

T0 = 1_700_000_000


class Echo(durable.DurableObject):
    """Echoes messages; "block" holds the object for a while first. Logs to env.log."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.log.append(("ctor", len(ctx.get_web_sockets())))
        if env.flags["slow_start"]:
            ctx.block_concurrency_while(self._warm_up)

    async def _warm_up(self) -> None:
        await self.env.go.wait()

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(("message", message, ws.ready_state))
        if message == "block":
            await self.ctx.block_concurrency_while(self._warm_up)
        if message == "put":
            await self.ctx.storage.put("k", 1)
        ws.send(f"echo:{message!s}")
        if message in ("block", "m2") and self.env.flags.get("log_sent"):
            self.env.log.append(("sent", message, ws.ready_state))

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.env.log.append(("close", code, reason, was_clean, ws.ready_state))


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    env = {"log": [], "go": asyncio.Event(), "flags": {"slow_start": False}}
    async with durable.Runtime(clock=MockClock(start=T0), vars=env) as runtime:
        yield runtime


async def read_all(ws: durable.WebSocket) -> list[Any]:
    got: list[Any] = []
    try:
        while True:
            got.append(await asyncio.wait_for(ws.receive(), 5))
    except durable.WebSocketClosed as closed:
        got.append((closed.code, closed.reason, closed.was_clean))
    return got


async def release_and_read(
    rt: durable.Runtime, ws: durable.WebSocket, *, close_after: float | None = None
) -> list[Any]:
    """Read everything ``ws`` receives while the object, held until now, is let go (``env.go``);
    with ``close_after``, the client closes (1000) that many seconds after the release."""
    reader = asyncio.ensure_future(read_all(ws))
    for _ in range(5):
        await asyncio.sleep(0)
    rt.env.go.set()
    if close_after is not None:
        await asyncio.sleep(close_after)
        ws.close(1000)
    return await reader


class TestCloseAfterMessages:
    """A client that sends messages and then closes, to an object that cannot take them at once.

    workerd's hibernation manager reads a socket's frames one at a time and reads the next only
    once the event of the previous one has started, so the Close is read (and answered) after
    the message events queued before it: their handlers see the socket OPEN and their replies
    reach the client before the close.
    """

    async def test_to_a_busy_object(self, rt: durable.Runtime) -> None:
        """workerd: `send("block"); send("m2"); send("put"); send("m3"); close(4000, "bye")`, the
        first handler holding the object in blockConcurrencyWhile: the client got the four
        echoes; the handlers saw readyState 1; the close handler ran after them."""
        stub = rt.namespace(Echo).get_by_name("busy")
        async with websocket(stub, "http://echo/") as ws:
            for message in ("block", "m2", "put", "m3"):
                ws.send(message)
            ws.close(4000, "bye")
            got = await release_and_read(rt, ws)
        assert got == ["echo:block", "echo:m2", "echo:put", "echo:m3", (4000, "bye", True)]
        assert rt.env.log[1:] == [
            ("message", "block", 1),
            ("message", "m2", 1),
            ("message", "put", 1),
            ("message", "m3", 1),
            ("close", 4000, "bye", True, 3),
        ]

    async def test_to_a_hibernated_object(self, rt: durable.Runtime) -> None:
        """workerd: to a hibernated object whose constructor holds it in blockConcurrencyWhile,
        `send("m1"); send("m2"); close(4000, "bye")`: the constructor ran, then both message
        handlers (readyState 1) and the close handler; the client got both echoes first."""
        stub = rt.namespace(Echo).get_by_name("asleep")
        async with websocket(stub, "http://echo/") as ws:
            await hibernate(stub)
            rt.env.flags["slow_start"] = True
            ws.send("m1")
            ws.send("m2")
            ws.close(4000, "bye")
            got = await release_and_read(rt, ws)
        assert got == ["echo:m1", "echo:m2", (4000, "bye", True)]
        assert rt.env.log == [
            ("ctor", 0),
            ("ctor", 1),
            ("message", "m1", 1),
            ("message", "m2", 1),
            ("close", 4000, "bye", True, 3),
        ]

    async def test_connection_lost_behind_messages(self, rt: durable.Runtime) -> None:
        """workerd: `send("block"); send("m2")`, then the client's connection dropped (node
        `ws.terminate()`) while the first handler held the object in blockConcurrencyWhile:
        both handlers saw readyState 1 to their end (their sends raised nothing), then the close
        handler got (1006, "WebSocket disconnected without sending Close frame.", false)."""
        rt.env.flags["log_sent"] = True
        stub = rt.namespace(Echo).get_by_name("lost")
        async with websocket(stub, "http://echo/") as ws:
            ws.send("block")
            ws.send("m2")
            for _ in range(5):
                await asyncio.sleep(0)
            disconnect(ws)
            for _ in range(5):
                await asyncio.sleep(0)
            rt.env.go.set()
            for _ in range(20):
                await asyncio.sleep(0)
        assert rt.env.log[1:] == [
            ("message", "block", 1),
            ("sent", "block", 1),
            ("message", "m2", 1),
            ("sent", "m2", 1),
            ("close", 1006, "WebSocket disconnected without sending Close frame.", False, 3),
        ]


class TestAutoResponseBehindMessages:
    """workerd reads a socket's next frame only once the previous message's event has started,
    so an auto-response request waits behind a message the object cannot take yet."""

    async def test_to_a_busy_object(self, rt: durable.Runtime) -> None:
        """workerd: `send("block"); send("ping"); send("m2"); send("ping")` (auto-response
        ping/pong), the first handler holding the object in blockConcurrencyWhile: the client
        got "pong", "echo:block", "echo:m2", "pong" (the first ping was read once the block
        handler had started, the second only once m2's had)."""
        stub = rt.namespace(Echo).get_by_name("busy")
        await run_in_object(
            stub,
            lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong")),
        )
        async with websocket(stub, "http://echo/") as ws:
            for message in ("block", "ping", "m2", "ping"):
                ws.send(message)
            got = await release_and_read(rt, ws, close_after=0.05)
        assert got == ["pong", "echo:block", "echo:m2", "pong", (1000, "", True)]

    async def test_to_a_hibernated_object(self, rt: durable.Runtime) -> None:
        """workerd: to a hibernated object whose constructor holds it in blockConcurrencyWhile,
        `send("m1"); send("ping"); send("m2"); send("ping")`: the client got "echo:m1", "pong",
        "echo:m2", "pong" (a ping to a hibernated object with nothing before it is answered at
        once, without waking it)."""
        stub = rt.namespace(Echo).get_by_name("asleep")
        await run_in_object(
            stub,
            lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong")),
        )
        async with websocket(stub, "http://echo/") as ws:
            await hibernate(stub)
            rt.env.flags["slow_start"] = True
            ws.send("ping")
            assert await ws.receive() == "pong"
            for message in ("m1", "ping", "m2", "ping"):
                ws.send(message)
            got = await release_and_read(rt, ws, close_after=0.05)
        assert got == ["echo:m1", "pong", "echo:m2", "pong", (1000, "", True)]
        assert [entry[0] for entry in rt.env.log] == ["ctor", "ctor", "message", "message", "close"]
