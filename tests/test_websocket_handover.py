"""The 101 handover: messages sent before the Response is returned, and workerd's 32 MiB limit.

workerd's behaviour was measured with miniflare (workerd 2026-04-26): messages the object sends on
the server end before returning the 101 reach the client in order, including ones sent after an
awaited storage write or timer; two ends of a pair made in process exchange 32 MiB + 1 bytes; a
network client's message over 32 MiB reaches the object as an error event.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable._websocket import MAX_MESSAGE_SIZE, TOO_LARGE_PREFIX
from durable.testing import websocket

from helpers import settle

errors: list[str] = []


class Greeter(durable.DurableObject):
    """Sends a welcome and a history before returning the 101, the way Cloudflare's 15-chatroom does."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        if "standard" in request.url:
            server.accept()
            server.add_event_listener("message", lambda e: server.send("echo " + e.data))
        else:
            self.ctx.accept_web_socket(server)
        server.send("welcome")
        await self.ctx.storage.put("seen", True)  # output gate: "history" waits for this commit
        server.send("history")
        await settle(3)  # frames sent so far reach the client end before the handover
        server.send(b"\x00binary")
        if "close" in request.url:
            server.close(4000, "bye")
            await settle(3)  # the close reaches the client end before the handover
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send(f"echo {message!s:.20}")

    async def web_socket_error(self, ws: durable.WebSocket, error: BaseException) -> None:
        errors.append(str(error))


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request: durable.Request) -> durable.Response:
        response: durable.Response = await self.env.GREETER.get_by_name("g").fetch(request)
        return response


EARLY = ["welcome", "history", b"\x00binary"]


async def recv(ws: durable.WebSocket) -> str | bytes:
    """The next message, failing (not hanging) when a lost frame never comes."""
    return await asyncio.wait_for(ws.receive(), 10)


class TestSentBeforeTheResponse:
    async def test_stub_fetch(self) -> None:
        """The caller of stub.fetch receives what the object sent before returning, in order."""
        async with durable.Runtime() as rt:
            response = await rt.namespace(Greeter).get_by_name("g").fetch("http://g/", headers={"Upgrade": "websocket"})
            ws = response.web_socket
            assert ws is not None
            ws.accept()
            assert [await recv(ws) for _ in EARLY] == EARLY
            ws.send("hi")
            assert await recv(ws) == "echo hi"

    @pytest.mark.parametrize("path", ["/", "/standard"])
    async def test_testing_websocket_stub(self, path: str) -> None:
        """durable.testing.websocket on a stub gets the early messages, hibernatable or standard socket."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Greeter).get_by_name("g")
            async with websocket(stub, "http://g" + path) as ws:
                assert [await recv(ws) for _ in EARLY] == EARLY
                ws.send("hi")
                assert await recv(ws) == "echo hi"

    async def test_testing_websocket_asgi(self) -> None:
        """Through a Worker served by asgi_app, the early messages come first, in order."""
        async with durable.Runtime() as rt:
            rt.namespace(Greeter, name="GREETER")
            async with websocket(durable.asgi_app(Worker, rt), "http://g/") as ws:
                assert [await recv(ws) for _ in EARLY] == EARLY
                ws.send("hi")
                assert await recv(ws) == "echo hi"

    async def test_close_before_the_response(self) -> None:
        """A close sent before the 101 reaches the client after the messages, with its code and reason."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Greeter).get_by_name("g")
            response = await stub.fetch("http://g/close", headers={"Upgrade": "websocket"})
            ws = response.web_socket
            assert ws is not None
            ws.accept()
            assert [await recv(ws) for _ in EARLY] == EARLY
            with pytest.raises(durable.WebSocketClosed) as closed:
                await recv(ws)
            assert (closed.value.code, closed.value.reason, closed.value.was_clean) == (4000, "bye", True)


class TestMessageLimit:
    async def test_in_process_pair_has_no_limit(self) -> None:
        """Two ends made in process pass a message over 32 MiB, as workerd does."""
        client, server = durable.WebSocketPair()
        client.accept()
        server.accept()
        client.send(b"x" * (MAX_MESSAGE_SIZE + 1))
        assert len(await server.receive()) == MAX_MESSAGE_SIZE + 1

    @pytest.mark.parametrize("through", ["stub", "asgi"])
    async def test_network_client_over_32_mib(self, through: str) -> None:
        """A client's message over 32 MiB gives the object workerd's error event and the client a 1009 close."""
        errors.clear()
        async with durable.Runtime() as rt:
            rt.namespace(Greeter, name="GREETER")
            stub = rt.env.GREETER.get_by_name("g")
            target: Any = stub if through == "stub" else durable.asgi_app(Worker, rt)
            async with websocket(target, "http://g/") as ws:
                for _ in EARLY:
                    await recv(ws)
                ws.send("y" * MAX_MESSAGE_SIZE)  # exactly 32 MiB passes
                assert await recv(ws) == "echo " + "y" * 20
                ws.send("z" * MAX_MESSAGE_SIZE + "é")
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await recv(ws)
                # workerd (miniflare 4, 2026-04-07) names the sizes, in the close reason and the
                # error: "Message is too large: 33554433 > 33554432" for a 32 MiB + 1 message.
                description = f"Message is too large: {MAX_MESSAGE_SIZE + 2} > {MAX_MESSAGE_SIZE}"
                assert (closed.value.code, closed.value.reason) == (1009, description)
                assert ws.ready_state == durable.WebSocket.CLOSED
                await settle()
                sockets = await durable.testing.run_in_object(stub, lambda obj, ctx: len(ctx.get_web_sockets()))
        assert errors == [TOO_LARGE_PREFIX + description]
        assert sockets == 0


class TestReturnedOnce:
    async def test_worker_returning_an_accepted_end(self, caplog: pytest.LogCaptureFixture) -> None:
        """A Worker returning an end it accepted is refused with 500 and workerd's message logged."""

        class Bad(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, _server = durable.WebSocketPair()
                client.accept()
                return durable.Response(None, status=101, web_socket=client)

        async with durable.Runtime() as rt:
            with pytest.raises(durable.WebSocketError) as info:
                async with websocket(durable.asgi_app(Bad, rt), "http://x/"):
                    pass
        assert info.value.status == 500  # type: ignore[attr-defined]
        assert "Can't return WebSocket in a Response after calling accept()." in caplog.text
