"""The client side of WebSockets as tests use it: ``durable.testing.websocket`` (API.md section 9).

Every case runs against both kinds of ``target``: a stub (the upgrade goes through ``stub.fetch``)
and an ASGI application (``durable.asgi_app(Worker, rt)``, whose Worker forwards to the stub).

workerd's values were measured with miniflare 4 (compatibility date 2026-04-07), a Worker holding the
client end returned by ``stub.fetch`` (/tmp/contract-mf/h4ws1.mjs): the object's
``ws.close(4000, "bye")`` reaches the client as ``(4000, "bye", wasClean true)``, ``ws.close()`` as
``(1005, "", true)``; ``ctx.abort()`` as ``(1006, "WebSocket disconnected without sending Close
frame.", false)``; after the server's close the client's ``send()`` raises ``TypeError: Can't call
WebSocket send() after close().`` and after an abort it is ignored; a second ``close()`` is ignored.
The client's ``close(4001, "client bye")`` reaches ``webSocketClose`` as ``(4001, "client bye",
true)`` and its ``close()`` as ``(1005, "", true)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import hibernate, websocket

DISCONNECTED = "WebSocket disconnected without sending Close frame."

log: list[Any] = []


class Room(durable.DurableObject):
    """Echoes; a few messages are commands (close, abort); records what it sees."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        log.append("constructed")

    async def fetch(self, request: durable.Request) -> durable.Response:
        url = request.url
        if "/ok" in url:
            return durable.Response("not a websocket", status=200)
        if "/raise" in url:
            raise ValueError("refused by the object")
        log.append(
            (
                "upgrade",
                url,
                request.headers.get("upgrade"),
                request.headers.get("sec-websocket-protocol"),
                request.headers.get("x-test"),
            )
        )
        client, server = durable.WebSocketPair()
        if "/standard" in url:
            server.accept()
            server.add_event_listener("message", lambda event: server.send(event.data))
            server.add_event_listener("close", lambda e: log.append(("close", e.code, e.reason, e.was_clean)))
        else:
            self.ctx.accept_web_socket(server)
        if "/early" in url:
            for i in range(5):
                server.send(f"early {i}")
            server.send(b"\x00early")
        headers = {"Sec-WebSocket-Protocol": "chat.v2"} if "/choose" in url else {}
        return durable.Response(None, status=101, web_socket=client, headers=headers)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "close 1000":
            ws.close(1000, "done")
        elif message == "close 4000":
            ws.close(4000, "bye")
        elif message == "close":
            ws.close()
        elif message == "abort":
            self.ctx.abort("reset")
        else:
            ws.send(message)

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        log.append(("close", code, reason, was_clean))


class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request: durable.Request) -> durable.Response:
        response: durable.Response = await self.env.ROOM.get_by_name("r").fetch(request)
        return response


@pytest.fixture(params=["stub", "asgi"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, durable.Stub[Any]]]:
    """(target, stub of the object behind it)."""
    log.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Room, name="ROOM").get_by_name("r")
        yield (stub if request.param == "stub" else durable.asgi_app(Worker, rt)), stub


async def recv(ws: durable.WebSocket) -> str | bytes:
    return await asyncio.wait_for(ws.receive(), 5)


async def closed_with(ws: durable.WebSocket) -> tuple[int, str, bool]:
    with pytest.raises(durable.WebSocketClosed) as info:
        await recv(ws)
    return info.value.code, info.value.reason, info.value.was_clean


async def until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)


def closes() -> list[Any]:
    return [entry for entry in log if isinstance(entry, tuple) and entry[0] == "close"]


class TestConnecting:
    async def test_the_object_sees_the_upgrade(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "https://room.example/ws?x=1", headers={"X-Test": "yes"}) as ws:
            assert ws.ready_state == durable.WebSocket.OPEN
        assert log[1] == ("upgrade", "https://room.example/ws?x=1", "websocket", None, "yes")

    @pytest.mark.parametrize(
        ("protocols", "header"), [("chat.v1", "chat.v1"), (["chat.v1", "chat.v2"], "chat.v1, chat.v2"), ([], None)]
    )
    async def test_protocols_become_the_header(self, target: Any, protocols: Any, header: str | None) -> None:
        app, _ = target
        async with websocket(app, "http://r/", protocols=protocols, headers=[("X-Test", "list")]):
            pass
        assert log[1] == ("upgrade", "http://r/", "websocket", header, "list")

    async def test_protocol_and_url_of_the_client_end(self, target: Any) -> None:
        """``protocol`` is the one the object chose (its Sec-WebSocket-Protocol), for both targets."""
        app, _ = target
        async with websocket(app, "http://r/choose", protocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.protocol == "chat.v2"
            assert ws.url == "http://r/choose"
        async with websocket(app, "http://r/") as ws:
            assert ws.protocol == ""

    @pytest.mark.parametrize("url", ["ws://r/", "wss://r/", "/relative", "r/x", "", "ftp://r/"])
    async def test_bad_urls(self, target: Any, url: str) -> None:
        app, _ = target
        with pytest.raises(TypeError, match="http:// or https://"):
            async with websocket(app, url):
                pass
        assert log == []

    async def test_upper_case_scheme(self, target: Any) -> None:
        """URL schemes are case-insensitive (WHATWG URL): ``HTTP://`` is an http URL."""
        app, _ = target
        async with websocket(app, "HTTP://r/") as ws:
            ws.send("hi")
            assert await recv(ws) == "hi"

    @pytest.mark.parametrize("bad", [object(), None, 42, "http://r/"])
    async def test_a_target_that_is_neither(self, bad: Any) -> None:
        with pytest.raises(TypeError, match="durable.Stub or an ASGI application"):
            async with websocket(bad, "http://r/"):
                pass

    async def test_an_object_answering_200(self, target: Any) -> None:
        app, _ = target
        with pytest.raises(durable.WebSocketError, match="refused with status 200") as info:
            async with websocket(app, "http://r/ok"):
                pass
        assert info.value.status == 200  # type: ignore[attr-defined]

    async def test_an_object_that_raises(self, target: Any, caplog: pytest.LogCaptureFixture) -> None:
        """Through a stub the object's exception propagates (as stub.fetch); through ASGI it is a 500."""
        app, stub = target
        if app is stub:
            with pytest.raises(ValueError, match="refused by the object"):
                async with websocket(app, "http://r/raise"):
                    pass
        else:
            with pytest.raises(durable.WebSocketError) as info:
                async with websocket(app, "http://r/raise"):
                    pass
            assert info.value.status == 500  # type: ignore[attr-defined]


class TestMessages:
    async def test_text_and_bytes_round_trip(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            ws.send("text")
            ws.send(b"\x00\xffbytes")
            ws.send(bytearray(b"ba"))
            first, second, third = await recv(ws), await recv(ws), await recv(ws)
        assert (first, second, third) == ("text", b"\x00\xffbytes", b"ba")
        assert type(first) is str and type(second) is bytes and type(third) is bytes

    @pytest.mark.parametrize("path", ["/early", "/early/standard"])
    async def test_messages_sent_before_the_block(self, target: Any, path: str) -> None:
        app, _ = target
        async with websocket(app, "http://r" + path) as ws:
            got = [await recv(ws) for _ in range(6)]
        assert got == [f"early {i}" for i in range(5)] + [b"\x00early"]

    async def test_many_messages_in_order(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            for i in range(300):
                ws.send(str(i) if i % 2 else str(i).encode())
            got = [await recv(ws) for _ in range(300)]
        assert got == [str(i) if i % 2 else str(i).encode() for i in range(300)]


class TestServerCloses:
    @pytest.mark.parametrize(
        ("command", "expected"),
        [("close 1000", (1000, "done", True)), ("close 4000", (4000, "bye", True)), ("close", (1005, "", True))],
    )
    async def test_receive_raises_with_the_close(self, target: Any, command: str, expected: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            ws.send(command)
            assert await closed_with(ws) == expected
            assert await closed_with(ws) == expected  # again, the same values
            assert ws.ready_state == durable.WebSocket.CLOSED
            assert [m async for m in ws] == []
            with pytest.raises(TypeError, match=r"^Can't call WebSocket send\(\) after close\(\)\.$"):
                ws.send("late")
            ws.close(1000, "ignored")  # a second close changes nothing
            assert await closed_with(ws) == expected

    async def test_async_for_ends_at_the_close(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            for text in ("a", "b", "close 4000"):
                ws.send(text)
            got = [message async for message in ws]
        assert got == ["a", "b"]

    async def test_a_reset_object_is_1006(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            ws.send("abort")
            assert await closed_with(ws) == (1006, DISCONNECTED, False)
            assert await closed_with(ws) == (1006, DISCONNECTED, False)
            ws.send("ignored")  # workerd: no error once the connection is gone
        assert closes() == []

    async def test_websocket_closed_is_a_durable_error(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            ws.send("close 4000")
            with pytest.raises(durable.DurableError):
                await recv(ws)


class TestClientCloses:
    @pytest.mark.parametrize(
        ("args", "expected"),
        [((4001, "client bye"), (4001, "client bye", True)), ((1000,), (1000, "", True)), ((), (1005, "", True))],
    )
    @pytest.mark.parametrize("path", ["/", "/standard"])
    async def test_the_object_gets_code_and_reason(self, target: Any, args: Any, expected: Any, path: str) -> None:
        app, _ = target
        async with websocket(app, "http://r" + path) as ws:
            ws.close(*args)
            assert ws.ready_state in (durable.WebSocket.CLOSING, durable.WebSocket.CLOSED)
            with pytest.raises(TypeError, match=r"Can't call WebSocket send\(\) after close\(\)\."):
                ws.send("x")
            with pytest.raises(durable.WebSocketClosed):
                await recv(ws)
            await until(closes)
        assert closes() == [("close", *expected)]

    async def test_leaving_the_block_closes(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            ws.send("x")
            assert await recv(ws) == "x"
        assert ws.ready_state == durable.WebSocket.CLOSED
        await until(closes)
        assert closes() == [("close", 1000, "", True)]

    async def test_leaving_the_block_by_an_exception_closes(self, target: Any) -> None:
        app, _ = target
        with pytest.raises(KeyError):
            async with websocket(app, "http://r/") as ws:
                raise KeyError("x")
        assert ws.ready_state == durable.WebSocket.CLOSED
        await until(closes)
        assert len(closes()) == 1

    async def test_leaving_after_the_server_closed(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            ws.send("close 4000")
            await closed_with(ws)
        assert closes() == [("close", 4000, "bye", True)]

    async def test_invalid_close_codes(self, target: Any) -> None:
        app, _ = target
        async with websocket(app, "http://r/") as ws:
            with pytest.raises(durable.WebSocketError, match="Invalid WebSocket close code: 1006."):
                ws.close(1006)
            assert ws.ready_state == durable.WebSocket.OPEN
            ws.send("still open")
            assert await recv(ws) == "still open"


class TestHibernation:
    async def test_the_test_client_wakes_a_hibernated_object(self, target: Any) -> None:
        app, stub = target
        async with websocket(app, "http://r/") as ws:
            ws.send("before")
            assert await recv(ws) == "before"
            await hibernate(stub)
            log.clear()
            ws.send("after")
            assert await recv(ws) == "after"
            assert log == ["constructed"]
            ws.close(4002, "gone")
            await until(closes)
        assert closes() == [("close", 4002, "gone", True)]


class TestStubFetchCaller:
    async def test_the_caller_accepts_the_client_end(self) -> None:
        """``response.web_socket`` from ``stub.fetch`` is the client end; the caller ``accept()``s it."""
        log.clear()
        async with durable.Runtime() as rt:
            stub = rt.namespace(Room, name="ROOM").get_by_name("r")
            response = await stub.fetch("http://r/early", headers={"Upgrade": "websocket"})
            assert response.status == 101
            ws = response.web_socket
            assert isinstance(ws, durable.WebSocket)
            assert response.webSocket is ws
            # workerd: the end is OPEN (1) before accept() (miniflare 4, 2026-04-07, h4ws5.mjs)
            assert ws.ready_state == durable.WebSocket.OPEN
            with pytest.raises(TypeError, match=r"You must call one of accept\(\)"):
                ws.send("too early")
            ws.accept()
            assert ws.ready_state == durable.WebSocket.OPEN
            assert [await recv(ws) for _ in range(6)][-1] == b"\x00early"
            ws.send("hi")
            assert await recv(ws) == "hi"
            ws.close(4003, "caller")
            await until(closes)
        assert closes() == [("close", 4003, "caller", True)]

    async def test_a_200_answer_has_no_web_socket(self) -> None:
        async with durable.Runtime() as rt:
            response = await rt.namespace(Room).get_by_name("r").fetch("http://r/ok", headers={"Upgrade": "websocket"})
            assert response.status == 200
            assert response.web_socket is None
