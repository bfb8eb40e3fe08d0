"""WebSocket behaviours found by the second review of the per-turn read loops, and probes of
workerd's WebSocket limits and errors (miniflare 4.20260426.0, compatibility date 2026-04-20).
"""

from __future__ import annotations

import asyncio
from typing import Any

import durable
from durable.testing import websocket

LOG: list[Any] = []
GO: list[asyncio.Event] = []


async def turns(count: int = 30) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


class Held(durable.DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        LOG.append("constructed")

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/hold"):

            async def hold() -> None:
                LOG.append("holding")
                await GO[0].wait()
                raise RuntimeError("the callback fails: the object is reset")

            await self.ctx.block_concurrency_while(hold)
            return durable.Response("never")
        client, server = durable.WebSocketPair()
        server.accept()
        server.add_event_listener("message", lambda event: LOG.append(event.data))
        return durable.Response(None, status=101, web_socket=client)


async def test_frames_waiting_for_their_turn_die_with_a_reset_object() -> None:
    """Frames of an ``accept()``ed socket that wait for their turn (behind a message whose event
    the object's held input gate has not run) are never read once the object is reset: they used
    to be handed to the object's next instance, constructing it and running the dead socket's
    listeners there."""
    LOG.clear()
    GO[:] = [asyncio.Event()]
    async with durable.Runtime() as rt:
        stub = rt.namespace(Held).get_by_name("reset")
        async with websocket(stub, "http://o/") as ws:
            hold = asyncio.ensure_future(stub.fetch("http://o/hold"))
            while "holding" not in LOG:
                await asyncio.sleep(0)
            for text in ("m1", "m2", "m3", "m4"):
                ws.send(text)
            await turns()
            GO[0].set()
            try:
                await hold
            except RuntimeError:
                pass
            try:
                await ws.receive()
            except durable.WebSocketClosed as closed:
                assert closed.code == 1006
            await turns()
    assert LOG == ["constructed", "holding"]


class Swapping(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        server.accept()

        def second(event: Any) -> None:
            LOG.append(("second", event.data))

        def first(event: Any) -> None:
            LOG.append(("first", event.data))
            server.remove_event_listener("message", first)
            server.add_event_listener("message", second)

        server.add_event_listener("message", first)
        server.add_event_listener("close", lambda event: LOG.append(("close", event.code, server.ready_state)))
        return durable.Response(None, status=101, web_socket=client)


async def test_a_listener_added_by_the_previous_frames_listener_gets_the_next_frame() -> None:
    """workerd reads a frame once the listeners of the one before have run, so a listener that
    swaps itself for another hands it the frames sent with no wait behind its own (miniflare
    4.20260426: "m1", "m2", "m3" and a Close sent at once ran first(m1), second(m2), second(m3),
    then the close listener, the socket CLOSED there)."""
    LOG.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Swapping).get_by_name("swap")
        async with websocket(stub, "http://o/") as ws:
            for text in ("m1", "m2", "m3"):
                ws.send(text)
            ws.close(3000, "done")
            while len(LOG) < 4:
                await asyncio.sleep(0)
    assert LOG == [("first", "m1"), ("second", "m2"), ("second", "m3"), ("close", 3000, durable.WebSocket.CLOSED)]


class Crowded(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/hold"):

            async def hold() -> None:
                LOG.append("holding")
                await GO[0].wait()

            await self.ctx.block_concurrency_while(hold)
            return durable.Response("held")
        client, server = durable.WebSocketPair()
        if request.url.endswith("/standard"):
            server.accept()
            server.add_event_listener("message", lambda event: server.send(f"echo:{event.data}"))
        else:
            self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: Any) -> None:
        ws.send(f"echo:{message}")


async def _crowded(path: str) -> list[str | bytes]:
    """Messages sent while the object's queue is full (``max_queued_calls``) are dropped and
    logged; the socket's later messages are still read."""
    LOG.clear()
    GO[:] = [asyncio.Event()]
    async with durable.Runtime(max_queued_calls=3) as rt:
        stub = rt.namespace(Crowded).get_by_name(path)
        async with websocket(stub, f"http://o/{path}") as ws:
            holds = [asyncio.ensure_future(stub.fetch("http://o/hold")) for _ in range(3)]
            while "holding" not in LOG:
                await asyncio.sleep(0)
            await turns()
            for text in ("m1", "m2"):
                ws.send(text)
            await turns()
            GO[0].set()
            await asyncio.gather(*holds)
            ws.send("after")
            return [await asyncio.wait_for(ws.receive(), 5)]


async def test_a_hibernatable_message_refused_as_overloaded_does_not_stop_the_socket(caplog: Any) -> None:
    """The refused event used to leave the socket waiting for it to start: nothing more was ever
    read from it (``"after"`` got no answer)."""
    assert await _crowded("hibernatable") == ["echo:after"]
    assert "event was dropped: Durable Object is overloaded" in caplog.text


async def test_a_listener_call_refused_as_overloaded_is_logged_and_the_socket_goes_on(caplog: Any) -> None:
    assert await _crowded("standard") == ["echo:after"]
    assert "listener call was dropped: Durable Object is overloaded" in caplog.text


class Large(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: Any) -> None:
        LOG.append(("message", message[:2], ws.ready_state))
        ws.send(f"echo:{message[:2]}")

    async def web_socket_error(self, ws: durable.WebSocket, error: Exception) -> None:
        LOG.append(("error", ws.ready_state))


async def test_a_too_large_message_is_read_after_the_messages_before_it_on_a_hibernatable_socket() -> None:
    """workerd (miniflare 4.20260426, a dispatchFetch client sending "m1" and then 33 MiB at once
    to a hibernatable socket): the handler of m1 sees OPEN and its echo reaches the client; the
    error comes after. Here the error used to close the end on arrival: m1's handler saw CLOSED
    and its echo was lost."""
    LOG.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Large).get_by_name("large")
        async with websocket(stub, "http://o/") as ws:
            ws.send("m1")
            ws.send("x" * (32 * 1024 * 1024 + 1))
            assert await ws.receive() == "echo:m1"
            try:
                await ws.receive()
            except durable.WebSocketClosed as closed:
                assert closed.code == 1009
            while len(LOG) < 2:
                await asyncio.sleep(0)
    assert LOG == [("message", "m1", durable.WebSocket.OPEN), ("error", durable.WebSocket.CLOSED)]


class Gated(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    def put_and_send(self) -> str:
        self.ctx.storage.kv.put("k", 1)
        for ws in self.ctx.get_web_sockets():
            ws.send("ping")
        return "sent"

    def boom(self) -> None:
        self.ctx.abort("reset by the test")


async def test_a_message_that_passed_the_output_gate_leaves_before_a_later_reset() -> None:
    """workerd (miniflare 4.20260426): a call that writes and then sends, and, once it returned,
    a call that aborts the object: the client gets the message, then 1006. Here the message still
    waited for its turn to leave when the reset came, and was dropped (run_ws.py 100 --seed 10403
    --resets --loop uvloop, sequence 12)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Gated).get_by_name("gated")
        async with websocket(stub, "http://o/") as ws:
            assert await stub.put_and_send() == "sent"
            try:
                await stub.boom()
            except durable.ObjectResetError:
                pass
            assert await ws.receive() == "ping"
            try:
                await ws.receive()
            except durable.WebSocketClosed as closed:
                assert closed.code == 1006
