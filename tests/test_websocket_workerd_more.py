"""More WebSocket behaviour measured in workerd (miniflare 4, compatibility date 2026-04-07).

Each test quotes what workerd did: a Durable Object accepting with ``ctx.acceptWebSocket`` (or
``accept()``), driven by a client end from ``mf.dispatchFetch(url, {headers: {Upgrade:
"websocket"}})``, the object logging what its handlers saw. Where the local workerd differs from
the contract because it does not answer a client's Close on a hibernatable socket (see
docs/websockets.md, "What differs from Cloudflare"), only the object's side is compared.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

import durable
from durable.testing import hibernate, run_in_object, websocket


def describe(message: str | bytes) -> str:
    return f"str:{message}" if isinstance(message, str) else f"{type(message).__name__}:{len(message)}"


class Echo(durable.DurableObject):
    """Accepts hibernatable sockets tagged with the URL's last segment; logs to env.log."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        name = request.url.rsplit("/", 1)[1]
        if name.startswith("std"):
            server.accept()

            def on_message(event: Any) -> None:
                self.env.log.append(("std", describe(event.data)))
                server.send(f"echo:{describe(event.data)}")

            server.add_event_listener("message", on_message)
        else:
            self.ctx.accept_web_socket(server, [name])
            server.serialize_attachment({"name": name})
            self.ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong"))
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(("msg", describe(message), ws.ready_state))
        if message == "close":
            ws.close(4000, "x")
        elif message == "close-no-code":
            ws.close()
        elif message == "raise":
            raise RuntimeError("boom")
        elif message == "raise-later":
            await asyncio.sleep(0)
            raise RuntimeError("boom")
        elif message == "ts":
            stamp = self.ctx.get_web_socket_auto_response_timestamp(ws)
            ws.send(f"ts:{type(stamp).__name__}")
        elif message == "count":
            ws.send(f"count:{len(self.ctx.get_web_sockets())}")
        else:
            ws.send(f"echo:{describe(message)}")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        listed = ws in self.ctx.get_web_sockets()
        self.env.log.append(("close", code, reason, was_clean, ws.ready_state, listed, ws.deserialize_attachment()))
        if ws.deserialize_attachment() == {"name": "raise-in-close"}:
            raise RuntimeError("close boom")


@pytest.fixture
async def rt() -> Any:
    async with durable.Runtime(vars={"log": []}) as runtime:
        runtime.namespace(Echo, name="ECHO")
        yield runtime


async def received(ws: durable.WebSocket, count: int) -> list[str | bytes]:
    return [await asyncio.wait_for(ws.receive(), 5) for _ in range(count)]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class TestCloseHandshake:
    async def test_messages_sent_before_the_objects_close_arrive(self, rt: durable.Runtime) -> None:
        """workerd: the client sent "close", "m2", "m3" at once; the object closed with (4000,
        "x") on the first, then got "m2" and "m3" with readyState 2 (CLOSING), then its close
        handler (4000, "x", true) with readyState 3 once the client answered."""
        async with websocket(rt.env.ECHO.get_by_name("a"), "http://a/c") as ws:
            ws.send("close")
            ws.send("m2")
            ws.send("m3")
            with pytest.raises(durable.WebSocketClosed) as info:
                await asyncio.wait_for(ws.receive(), 5)
            assert (info.value.code, info.value.reason, info.value.was_clean) == (4000, "x", True)
        await settle()
        closing, closed = durable.WebSocket.CLOSING, durable.WebSocket.CLOSED
        assert rt.env.log == [
            ("msg", "str:close", durable.WebSocket.OPEN),
            ("msg", "str:m2", closing),
            ("msg", "str:m3", closing),
            ("close", 4000, "x", True, closed, True, {"name": "c"}),
        ]

    async def test_the_objects_close_without_a_code(self, rt: durable.Runtime) -> None:
        """workerd: `ws.close()` in the object; the client's answer reached the close handler as
        (1005, "", true) with readyState 3, the socket still listed and its attachment readable."""
        async with websocket(rt.env.ECHO.get_by_name("a"), "http://a/n") as ws:
            ws.send("close-no-code")
            with pytest.raises(durable.WebSocketClosed) as info:
                await asyncio.wait_for(ws.receive(), 5)
            assert (info.value.code, info.value.reason) == (1005, "")
        await settle()
        assert rt.env.log[-1] == ("close", 1005, "", True, durable.WebSocket.CLOSED, True, {"name": "n"})

    @pytest.mark.parametrize(
        ("args", "expected"), [((), (1005, "")), ((4000,), (4000, "")), ((1000, "bye"), (1000, "bye"))]
    )
    async def test_the_clients_close(
        self, rt: durable.Runtime, args: tuple[Any, ...], expected: tuple[Any, ...]
    ) -> None:
        """workerd: `close()`, `close(4000)`, `close(1000, "bye")` from the client reached the close
        handler as (1005, ""), (4000, ""), (1000, "bye"), wasClean true, with the socket still in
        getWebSockets() and its attachment readable."""
        async with websocket(rt.env.ECHO.get_by_name("a"), "http://a/k") as ws:
            ws.close(*args)
            with pytest.raises(durable.WebSocketClosed):
                await asyncio.wait_for(ws.receive(), 5)
        await settle()
        code, reason = expected
        assert rt.env.log == [("close", code, reason, True, durable.WebSocket.CLOSED, True, {"name": "k"})]

    async def test_a_close_handler_that_raises(self, rt: durable.Runtime, caplog: pytest.LogCaptureFixture) -> None:
        """workerd: a webSocketClose that throws leaves the object serving; the next connection
        is echoed and getWebSockets() counts only it ("count:1")."""
        stub = rt.env.ECHO.get_by_name("a")
        async with websocket(stub, "http://a/raise-in-close") as ws:
            ws.close(1000, "q")
            with pytest.raises(durable.WebSocketClosed):
                await asyncio.wait_for(ws.receive(), 5)
        await settle()
        async with websocket(stub, "http://a/next") as ws:
            ws.send("count")
            assert await received(ws, 1) == ["count:1"]
        assert "close boom" in caplog.text


class TestMessages:
    @pytest.mark.parametrize("name", ["h", "std"])
    async def test_empty_text_and_binary(self, rt: durable.Runtime, name: str) -> None:
        """workerd: "" arrives as an empty string and an empty binary frame as an empty
        ArrayBuffer (bytes here), on both paths; 3 bytes as 3 bytes."""
        async with websocket(rt.env.ECHO.get_by_name("a"), f"http://a/{name}") as ws:
            ws.send("")
            ws.send(b"")
            ws.send(b"\x01\x02\x03")
            assert await received(ws, 3) == ["echo:str:", "echo:bytes:0", "echo:bytes:3"]

    async def test_auto_response_matches_the_whole_text_only(self, rt: durable.Runtime) -> None:
        """workerd, pair ("ping", "pong"): "PING", " ping" and the bytes of "ping" reached the
        handler; "ping" got "pong"; the timestamp was null before and a Date after."""
        async with websocket(rt.env.ECHO.get_by_name("a"), "http://a/auto") as ws:
            for message in ("ts", "PING", " ping", b"ping", "ping"):
                ws.send(message)
            got = await received(ws, 5)
            ws.send("ts")
            got += await received(ws, 1)
        assert got == ["ts:NoneType", "echo:str:PING", "echo:str: ping", "echo:bytes:4", "pong", "ts:datetime"]

    async def test_no_auto_response_on_the_standard_path(self, rt: durable.Runtime) -> None:
        """workerd: with an auto-response pair set, "ping" on a socket accepted with accept()
        reached its message listener ("echo:ping"); a hibernatable socket got "pong"."""
        stub = rt.env.ECHO.get_by_name("a")
        async with websocket(stub, "http://a/h") as ws:  # sets the pair
            ws.send("ping")
            assert await received(ws, 1) == ["pong"]
        async with websocket(stub, "http://a/std") as ws:
            ws.send("ping")
            assert await received(ws, 1) == ["echo:str:ping"]

    async def test_handlers_that_raise_keep_the_socket(
        self, rt: durable.Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """workerd: a webSocketMessage that throws at once, and one that throws after an await,
        left the socket open; the next messages were echoed and the object kept its one socket."""
        async with websocket(rt.env.ECHO.get_by_name("a"), "http://a/r") as ws:
            ws.send("raise")
            ws.send("after")
            ws.send("raise-later")
            ws.send("after2")
            ws.send("count")
            assert await received(ws, 3) == ["echo:str:after", "echo:str:after2", "count:1"]
        assert caplog.text.count("RuntimeError: boom") == 2


class Listened(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        server.add_event_listener("message", lambda event: self.env.log.append(("listener", event.data)))
        server.add_event_listener("close", lambda event: self.env.log.append(("listener close", event.code)))
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(("handler", message))

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.env.log.append(("handler close", code))


async def test_listeners_on_a_hibernatable_socket_never_run() -> None:
    """workerd: addEventListener on a socket accepted with acceptWebSocket() succeeded, and only
    the handlers ran ("handler msg x", "handler close 1000"), never the listeners."""
    async with durable.Runtime(vars={"log": []}) as rt:
        async with websocket(rt.namespace(Listened).get_by_name("a"), "http://a/") as ws:
            ws.send("x")
            ws.close(1000)
            with pytest.raises(durable.WebSocketClosed):
                await asyncio.wait_for(ws.receive(), 5)
        await settle()
        assert rt.env.log == [("handler", "x"), ("handler close", 1000)]


class TestTagsAsWorkerdStoresThem:
    async def test_duplicates_keep_the_first_position(self, rt: durable.Runtime) -> None:
        """workerd: tags ["b", "a", "b"] read back ["b", "a"]; eleven "a" then "b" (two distinct)
        are accepted as ["a", "b"]; [""] keeps the empty tag; [] and no tags give []."""

        def check(obj: Any, ctx: durable.State) -> list[list[str]]:
            out = []
            for tags in (["b", "a", "b"], ["a"] * 11 + ["b"], [""], [], None):
                server = durable.WebSocketPair()[1]
                ctx.accept_web_socket(server, tags)
                out.append(ctx.get_tags(server))
            return out

        assert await run_in_object(rt.env.ECHO.get_by_name("t"), check) == [["b", "a"], ["a", "b"], [""], [], []]


class Lobby(durable.DurableObject):
    """Socket i: tags ["t", "o<i>"] (odd) or ["e<i>", "t"]; attachment None, none, or {"i": i}."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        env.built.append(1)

    async def fetch(self, request: durable.Request) -> durable.Response:
        i = int(request.url.rsplit("/", 1)[1])
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, ["t", f"o{i}"] if i % 2 else [f"e{i}", "t"])
        if i == 0:
            server.serialize_attachment(None)
        elif i > 1:
            server.serialize_attachment({"i": i})
        self.ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong"))
        self.ctx.set_hibernatable_web_socket_event_timeout(5000)
        return durable.Response(None, status=101, web_socket=client)

    async def report(self) -> dict[str, Any]:
        every = self.ctx.get_web_sockets()
        pair = self.ctx.get_web_socket_auto_response()
        return {
            "all": [ws.deserialize_attachment() for ws in every],
            "tagged": [ws.deserialize_attachment() for ws in self.ctx.get_web_sockets("t")],
            "tags": [self.ctx.get_tags(ws) for ws in every],
            "stamps": [isinstance(self.ctx.get_web_socket_auto_response_timestamp(ws), datetime) for ws in every],
            "pair": pair and (pair.request, pair.response),
            "timeout": self.ctx.get_hibernatable_web_socket_event_timeout(),
            "states": [ws.ready_state for ws in every],
        }


async def test_hibernation_keeps_order_tags_attachments_and_settings() -> None:
    """workerd, four sockets (the fourth closed), "ping" answered on the second,
    then 11 s idle: after the wake (constructor run again) getWebSockets() still lists the newest
    first, getWebSockets("t") the oldest first, with the same attachments, tags, auto-response
    timestamps, auto-response pair and event timeout (5000)."""
    async with durable.Runtime(vars={"built": []}) as rt:
        stub = rt.namespace(Lobby).get_by_name("h")
        blocks = [websocket(stub, f"http://h/{i}") for i in range(4)]
        ends = [await block.__aenter__() for block in blocks]
        try:
            ends[1].send("ping")
            assert await received(ends[1], 1) == ["pong"]
            await blocks[3].__aexit__(None, None, None)
            await settle()
            before = await stub.report()
            await hibernate(stub)
            after = await stub.report()
        finally:
            for block in blocks[:3]:
                await block.__aexit__(None, None, None)
        expected = {
            "all": [{"i": 2}, None, None],
            "tagged": [None, None, {"i": 2}],
            "tags": [["e2", "t"], ["t", "o1"], ["e0", "t"]],
            "stamps": [False, True, False],
            "pair": ("ping", "pong"),
            "timeout": 5000,
            "states": [1, 1, 1],
        }
        assert before == after == expected
        assert rt.env.built == [1, 1]
