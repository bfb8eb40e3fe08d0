"""hibernation_blockers(): tasks an object started before it accepted a socket, and what is not seen.

Cloudflare keeps an object awake while a setTimeout/setInterval is pending (its lifecycle docs);
the Python spelling of those is a task that sleeps, which `durable` attributes to the object that
created it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock, hibernation_blockers, websocket

from helpers import settle


class Ticker(durable.DurableObject):
    """Starts a heartbeat task in its constructor (like setInterval in a dependency)."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(1)
        self.heartbeat = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        env.heartbeats.append(self.heartbeat)

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "timer":
            handle = asyncio.get_running_loop().call_later(3600, lambda: None)
            self.env.handles.append(handle)
        ws.send(f"echo:{message!r}")


class Plain(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    env: dict[str, Any] = {"built": [], "heartbeats": [], "handles": []}
    async with durable.Runtime(clock=MockClock(start=1_700_000_000), vars=env) as runtime:
        yield runtime


class TestTasksStartedBeforeAccepting:
    async def test_constructor_task_of_a_later_object(self, rt: durable.Runtime) -> None:
        """A task started in a constructor, before that object's first accept, blocks hibernation."""
        first = rt.namespace(Plain).get_by_name("p")
        ticker = rt.namespace(Ticker).get_by_name("t")
        async with websocket(first, "http://p/"), websocket(ticker, "http://t/") as ws:
            ws.send("hi")
            assert await ws.receive() == "echo:'hi'"
            assert hibernation_blockers(ticker) == ["pending task created by the object"]
            clock: Any = rt.clock
            await clock.advance(10)
            assert rt.env.built == [1]  # still awake
            rt.env.heartbeats[0].cancel()
            await settle()
            assert hibernation_blockers(ticker) == []
            await clock.advance(10)
            ws.send("again")
            assert await ws.receive() == "echo:'again'"
            assert len(rt.env.built) == 2  # hibernated, then woken by the message
            for task in rt.env.heartbeats:
                task.cancel()

    async def test_constructor_task_before_the_first_accept_on_the_loop(self, rt: durable.Runtime) -> None:
        """Even the loop's first accepting object is attributed its earlier tasks (on Python 3.11
        too since ``_context.task_context`` reads a task's context there: it was skipped)."""
        ticker = rt.namespace(Ticker).get_by_name("t")
        async with websocket(ticker, "http://t/"):
            assert hibernation_blockers(ticker) == ["pending task created by the object"]
            rt.env.heartbeats[0].cancel()
            await settle()
            assert hibernation_blockers(ticker) == []


class TestNotSeen:
    async def test_call_later_handles(self, rt: durable.Runtime) -> None:
        """A raw loop.call_later() handle is not attributed to the object (documented limit)."""
        ticker = rt.namespace(Ticker).get_by_name("t")
        async with websocket(ticker, "http://t/") as ws:
            rt.env.heartbeats[0].cancel()
            ws.send("timer")
            assert await ws.receive() == "echo:'timer'"
            await settle()
            assert hibernation_blockers(ticker) == []
            rt.env.handles[0].cancel()
