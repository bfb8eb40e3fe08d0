"""WebSocketPair, WebSocket and Response(web_socket=): the standard API, with workerd's validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable.testing import run_in_object

from helpers import settle


def accepted_pair() -> tuple[durable.WebSocket, durable.WebSocket]:
    client, server = durable.WebSocketPair()
    client.accept()
    server.accept()
    return client, server


class TestPair:
    def test_unpacks_and_indexes(self) -> None:
        """A pair unpacks as (client, server) and indexes as pair[0], pair[1]."""
        pair = durable.WebSocketPair()
        client, server = pair
        assert pair[0] is client and pair[1] is server
        assert isinstance(client, durable.WebSocket) and len(pair) == 2
        assert durable.WebSocketPair.new().object_values()[0] is not client

    def test_no_public_constructor(self) -> None:
        """WebSocket ends come from WebSocketPair only."""
        with pytest.raises(TypeError, match="WebSocketPair"):
            durable.WebSocket()

    def test_ready_state_constants(self) -> None:
        """ready_state uses the standard constants and starts OPEN; readyState is an alias."""
        client, _ = durable.WebSocketPair()
        assert (
            durable.WebSocket.CONNECTING,
            durable.WebSocket.OPEN,
            durable.WebSocket.CLOSING,
            durable.WebSocket.CLOSED,
        ) == (0, 1, 2, 3)
        assert client.ready_state == client.readyState == durable.WebSocket.OPEN

    async def test_messages_both_ways(self) -> None:
        """Text arrives as str and binary as bytes, in order, on the other end."""
        client, server = accepted_pair()
        client.send("one")
        client.send(b"\x00two")
        server.send(bytearray(b"three"))
        assert await server.receive() == "one"
        assert await server.receive() == b"\x00two"
        assert await client.receive() == b"three"

    async def test_messages_wait_for_accept(self) -> None:
        """Messages sent before the other end accepts are delivered once it does."""
        client, server = durable.WebSocketPair()
        client.accept()
        client.send("early")
        await asyncio.sleep(0)
        server.accept()
        assert await server.receive() == "early"

    async def test_backlog_reaches_listeners_added_after_accept(self) -> None:
        """Messages and a close sent before accept() reach listeners added right after it, in order."""
        client, server = durable.WebSocketPair()
        client.accept()
        client.send("one")
        client.send("two")
        client.close(1000, "done")
        await asyncio.sleep(0)
        seen: list[Any] = []
        server.accept()
        server.add_event_listener("message", lambda e: seen.append(e.data))
        server.add_event_listener("close", lambda e: seen.append((e.code, e.reason)))
        await settle(3)
        assert seen == ["one", "two", (1000, "done")]

    async def test_backlog_before_closed_for_receive(self) -> None:
        """receive() returns what arrived before acceptance before it reports the close."""
        client, server = durable.WebSocketPair()
        server.accept()
        server.send("a")
        server.close(1000)
        await asyncio.sleep(0)
        client.accept()
        assert [m async for m in client] == ["a"]

    async def test_close_waits_for_acceptance(self) -> None:
        """A Close sent to an end not accepted yet is read (and answered) only once it is: until
        then that end is OPEN and the closer CLOSING, without a close event; then the messages
        before the Close arrive with the end OPEN. workerd (miniflare 4, 2026-04-07): [c.send("m");
        c.close(4000, "r")], 50 ms later c 2 and s 1; s.accept() leaves s 1 and c 2; then s
        "message" (readyState 1), s "close" (3), c "close" (3)."""
        client, server = durable.WebSocketPair()
        seen: list[Any] = []
        client.accept()
        client.add_event_listener("close", lambda e: seen.append(("client close", e.code, client.ready_state)))
        client.send("m")
        client.close(4000, "r")
        await settle(50)
        assert (client.ready_state, server.ready_state) == (durable.WebSocket.CLOSING, durable.WebSocket.OPEN)
        assert seen == []
        server.accept()
        server.add_event_listener("message", lambda e: seen.append(("message", e.data, server.ready_state)))
        server.add_event_listener("close", lambda e: seen.append(("close", e.code, e.reason, server.ready_state)))
        assert (client.ready_state, server.ready_state) == (durable.WebSocket.CLOSING, durable.WebSocket.OPEN)
        await settle(10)
        assert seen == [("message", "m", 1), ("close", 4000, "r", 3), ("client close", 4000, 3)]

    async def test_hibernatable_close_waits_for_the_client(self) -> None:
        """The same for a hibernatable end that closes towards a client end not accepted yet: it
        stays listed by get_web_sockets(), CLOSING, until the client accepts. workerd (miniflare 4,
        2026-04-07): 50 ms after s.send("m"); s.close(4000, "r"), s 2, listed, the client 1; once
        the client accepts, it gets "m" (readyState 1) and the close, and the list is empty."""

        class Obj(durable.DurableObject):
            pass

        async def scenario(obj: durable.DurableObject, ctx: durable.State) -> list[Any]:
            client, server = durable.WebSocketPair()
            ctx.accept_web_socket(server)
            server.send("m")
            server.close(4000, "r")
            await settle(50)
            seen: list[Any] = [(server.ready_state, len(ctx.get_web_sockets()), client.ready_state)]
            client.accept()
            client.add_event_listener("message", lambda e: seen.append((e.data, client.ready_state)))
            client.add_event_listener("close", lambda e: seen.append((e.code, client.ready_state)))
            await settle(10)
            seen.append((server.ready_state, len(ctx.get_web_sockets())))
            return seen

        async with durable.Runtime() as rt:
            seen = await run_in_object(rt.namespace(Obj).get_by_name("a"), scenario)
        assert seen == [(2, 1, 1), ("m", 1), (4000, 3), (3, 0)]

    async def test_listeners(self) -> None:
        """Listeners get message and close events with data, code, reason and was_clean."""
        client, server = accepted_pair()
        seen: list[Any] = []
        server.addEventListener("message", lambda e: seen.append(("message", e.data)))
        server.add_event_listener("close", lambda e: seen.append(("close", e.code, e.reason, e.was_clean, e.wasClean)))
        client.send("hi")
        client.close(4000, "done")
        await settle(3)
        assert seen == [("message", "hi"), ("close", 4000, "done", True, True)]

    async def test_async_for_ends_on_close(self) -> None:
        """async for over a client end yields messages and stops when the other side closes."""
        client, server = accepted_pair()
        server.send("a")
        server.send("b")
        server.close(1000)
        assert [m async for m in client] == ["a", "b"]

    async def test_receive_raises_closed(self) -> None:
        """receive() raises WebSocketClosed with the code, reason and was_clean of the close."""
        client, server = accepted_pair()
        server.close(3001, "bye")
        with pytest.raises(durable.WebSocketClosed) as info:
            await client.receive()
        assert (info.value.code, info.value.reason, info.value.was_clean) == (3001, "bye", True)
        assert isinstance(info.value, durable.DurableError)

    async def test_one_receiver_at_a_time(self) -> None:
        """A second concurrent receive() raises instead of waiting forever."""
        client, _ = accepted_pair()
        first = asyncio.ensure_future(client.receive())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already waiting"):
            await client.receive()
        first.cancel()

    async def test_close_without_code_is_1005(self) -> None:
        """close() without a code arrives as 1005 with an empty reason."""
        client, server = accepted_pair()
        server.close()
        with pytest.raises(durable.WebSocketClosed) as info:
            await client.receive()
        assert (info.value.code, info.value.reason) == (1005, "")

    async def test_auto_reply_to_close(self) -> None:
        """The receiving end answers a Close itself: both ends are CLOSED afterwards."""
        client, server = accepted_pair()
        states: list[int] = []
        server.add_event_listener("close", lambda e: states.append(e.target.ready_state))
        client.close(1000)
        assert client.ready_state == durable.WebSocket.CLOSING
        with pytest.raises(durable.WebSocketClosed):
            await client.receive()
        assert states == [durable.WebSocket.CLOSED]
        assert client.ready_state == server.ready_state == durable.WebSocket.CLOSED
        server.close(1000)  # allowed, changes nothing

    async def test_disconnect_is_1006(self) -> None:
        """A connection lost without a Close frame gives workerd's 1006 close."""
        client, server = accepted_pair()
        durable.testing.disconnect(client)
        with pytest.raises(durable.WebSocketClosed) as info:
            await server.receive()
        assert (info.value.code, info.value.reason, info.value.was_clean) == (
            1006, "WebSocket disconnected without sending Close frame.", False,
        )  # fmt: skip
        server.send("ignored")  # the connection is gone: silently dropped


class TestValidation:
    def test_send_before_accept(self) -> None:
        """send() before any accept raises workerd's TypeError."""
        client, _ = durable.WebSocketPair()
        with pytest.raises(
            TypeError,
            match=r"^You must call one of accept\(\) or state.acceptWebSocket\(\) on this WebSocket before sending messages.$",
        ):
            client.send("x")

    def test_send_after_close(self) -> None:
        """send() after close() raises workerd's TypeError."""
        client, _ = accepted_pair()
        client.close()
        with pytest.raises(TypeError, match=r"^Can't call WebSocket send\(\) after close\(\).$"):
            client.send("x")

    def test_send_wrong_type(self) -> None:
        """send() takes str or bytes only."""
        client, _ = accepted_pair()
        with pytest.raises(TypeError, match="str or bytes"):
            client.send(3)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("code", "valid"),
        [(999, False), (1000, True), (1004, False), (1005, False), (1006, False), (1015, False),
         (2999, True), (3000, True), (4999, True), (5000, False), (1012, True)],
    )  # fmt: skip
    def test_close_code_matrix(self, code: int, valid: bool) -> None:
        """Close codes follow workerd's non-pedantic rule: 1000-4999 except 1004, 1005, 1006, 1015."""
        client, _ = accepted_pair()
        if valid:
            client.close(code)
        else:
            with pytest.raises(durable.WebSocketError, match=rf"^Invalid WebSocket close code: {code}.$"):
                client.close(code)

    def test_reason_without_code(self) -> None:
        """A reason without a code raises workerd's TypeError."""
        client, _ = accepted_pair()
        with pytest.raises(TypeError, match="^If you specify a WebSocket close reason, you must also specify a code.$"):
            client.close(reason="why")

    def test_reason_length_in_bytes(self) -> None:
        """A reason of 123 UTF-8 bytes is accepted; 124 raises."""
        client, _ = accepted_pair()
        with pytest.raises(
            durable.WebSocketError,
            match="^WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.$",
        ):
            client.close(1000, "é" * 62)
        client.close(1000, "x" * 123)

    def test_second_close_ignored(self) -> None:
        """A second close() is ignored."""
        client, _ = accepted_pair()
        client.close(1000)
        client.close(1001)

    def test_accept_twice_allowed(self) -> None:
        """accept() twice is allowed, as in workerd."""
        client, _ = durable.WebSocketPair()
        client.accept()
        client.accept()

    async def test_accept_after_the_close_handshake(self) -> None:
        """accept() again once both Closes have crossed raises workerd's TypeError, on the end
        that closed and on the one that answered; while only this end's Close is out it is still
        allowed (workerd, miniflare 4, 2026-04-07: "Can't accept() WebSocket that was already used
        in a response." after the handshake, undefined right after close())."""
        client, server = accepted_pair()
        server.close(1000)
        server.accept()
        await settle()
        assert server.ready_state == client.ready_state == durable.WebSocket.CLOSED
        message = r"^Can't accept\(\) WebSocket that was already used in a response.$"
        for end in (server, client):
            with pytest.raises(TypeError, match=message):
                end.accept()

    def test_event_type_checked(self) -> None:
        """add_event_listener refuses an unknown event type."""
        client, _ = durable.WebSocketPair()
        with pytest.raises(TypeError, match='no "open" event'):
            client.add_event_listener("open", print)


class TestAttachment:
    def test_round_trip_copies(self) -> None:
        """An attachment is a copy: changing the value afterwards changes nothing."""
        _, server = durable.WebSocketPair()
        assert server.deserialize_attachment() is None
        value: dict[str, Any] = {"name": "ada", "n": [1]}
        server.serializeAttachment(value)
        value["n"].append(2)
        assert server.deserializeAttachment() == {"name": "ada", "n": [1]}

    def test_size_limit(self) -> None:
        """16,384 bytes of V8's serialization are accepted, 16,385 refused with workerd's message.

        workerd (miniflare 4, 2026-04-07): ``serializeAttachment(new Uint8Array(16373))`` works,
        ``new Uint8Array(16374)`` raises "...'attachment' was 16385 bytes."
        """
        _, server = durable.WebSocketPair()
        server.serialize_attachment(b"x" * 16373)
        with pytest.raises(durable.WebSocketError) as info:
            server.serialize_attachment(b"x" * 16374)
        assert (
            str(info.value)
            == "A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was 16385 bytes."
        )

    def test_not_cloneable(self) -> None:
        """A value the codec cannot clone raises DataCloneError."""
        _, server = durable.WebSocketPair()
        with pytest.raises(durable.DataCloneError):
            server.serialize_attachment(object())


class TestResponse:
    def test_web_socket_needs_101(self) -> None:
        """A Response with a WebSocket must have status 101 (a RangeError, so ValueError)."""
        client, _ = durable.WebSocketPair()
        with pytest.raises(ValueError, match="^Responses with a WebSocket must have status code 101.$"):
            durable.Response(None, status=200, web_socket=client)

    def test_101_without_socket_refused(self) -> None:
        """101 without a socket keeps raising, as before."""
        with pytest.raises(ValueError, match="200 to 599"):
            durable.Response(None, status=101)

    def test_building_hands_nothing_over(self) -> None:
        """Building a Response checks only the status: the end stays usable, as in workerd."""
        client, _ = durable.WebSocketPair()
        resp = durable.Response(None, status=101, web_socket=client)
        again = durable.Response(None, status=101, web_socket=client)
        assert resp.status == 101 and resp.webSocket is resp.web_socket is again.web_socket is client
        client.accept()  # allowed after building (workerd measured); returning it would now fail
        assert durable.Response(None, status=200).web_socket is None

    async def test_handover_when_returned(self) -> None:
        """Returning the Response from fetch hands the end over: the caller gets a fresh handle."""
        kept: list[Any] = []

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                server.accept()
                server.add_event_listener("message", lambda e: server.send("echo " + e.data))
                first = durable.Response(None, status=101, web_socket=client)
                second = durable.Response(None, status=101, web_socket=client)
                kept.extend([client, first])
                return second  # workerd returns whichever of the two is returned

        async with durable.Runtime() as rt:
            resp = await rt.namespace(Obj).get_by_name("a").fetch("http://a/", headers={"Upgrade": "websocket"})
            ws = resp.web_socket
            assert ws is not None and ws is not kept[0]
            with pytest.raises(TypeError, match=r"^Can't accept\(\) WebSocket that was already used in a response.$"):
                kept[0].accept()
            with pytest.raises(TypeError, match="^Can't return WebSocket that was already used in a response.$"):
                kept[1]._hand_over()
            ws.accept()
            ws.send("hi")
            assert await ws.receive() == "echo hi"

    @pytest.mark.parametrize(
        ("how", "message"),
        [
            ("accept", r"^Can't return WebSocket in a Response after calling accept\(\).$"),
            ("hibernate", r"^Can't return WebSocket in a Response after calling acceptWebSocket\(\).$"),
            ("twice", "^Can't return WebSocket that was already used in a response.$"),
        ],
    )
    async def test_return_errors(self, how: str, message: str) -> None:
        """Returning an accepted or already returned end raises workerd's TypeError for the caller."""

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, _server = durable.WebSocketPair()
                if how == "accept":
                    client.accept()
                elif how == "hibernate":
                    self.ctx.accept_web_socket(client)
                else:
                    durable.Response(None, status=101, web_socket=client)._hand_over()
                return durable.Response(None, status=101, web_socket=client)

        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=message):
                await stub.fetch("http://a/")
            assert stub.id is not None  # a plain TypeError: the object is not reset

    def test_body_refused(self) -> None:
        """A 101 response cannot have a body."""
        client, _ = durable.WebSocketPair()
        with pytest.raises(TypeError, match="null body status"):
            durable.Response("x", status=101, web_socket=client)

    async def test_handed_over_end_talks_to_server(self) -> None:
        """The handle from the Response is joined to the server end."""
        client, server = durable.WebSocketPair()
        server.accept()
        resp = durable.Response(None, status=101, web_socket=client)
        ws = resp.web_socket
        assert ws is not None
        ws.accept()
        server.send("from server")
        ws.send("from client")
        assert await ws.receive() == "from server"
        assert await server.receive() == "from client"


class TestRequestResponsePair:
    def test_properties(self) -> None:
        """The pair exposes request and response (also getRequest()/getResponse())."""
        pair = durable.WebSocketRequestResponsePair("ping", "pong")
        assert (pair.request, pair.response, pair.getRequest(), pair.getResponse()) == ("ping", "pong", "ping", "pong")

    def test_types(self) -> None:
        """Request and response must be str."""
        with pytest.raises(TypeError, match="request must be a str"):
            durable.WebSocketRequestResponsePair(b"ping", "pong")  # type: ignore[arg-type]
