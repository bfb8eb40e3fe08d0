"""WebSocket details measured in workerd (miniflare 4, compatibility date 2026-04-07).

Each test names what workerd did. The probes ran in a Durable Object (``new WebSocketPair()``,
``ctx.acceptWebSocket``) and in a Worker that connected to it with ``stub.fetch``.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

import durable
from durable.testing import run_in_object


class Obj(durable.DurableObject):
    """Answers every fetch with a hibernatable socket; ``/count`` (an upgrade) lists them first."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/count"):
            states = [ws.ready_state for ws in self.ctx.get_web_sockets()]
            return durable.Response(",".join(map(str, states)))
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def ask(self, url: str, upgrade: str | None) -> str:
        """Fetch another object from inside this one (the stub's slower path)."""
        headers = {"Upgrade": upgrade} if upgrade is not None else {}
        stub = self.env.OBJ.get_by_name("other")
        try:
            response = await stub.fetch(url, headers=headers)
        except TypeError as exc:
            return f"TypeError: {exc}"
        return f"{response.status} {response.web_socket is not None}"


@pytest.fixture
async def rt() -> Any:
    async with durable.Runtime() as runtime:
        runtime.namespace(Obj, name="OBJ")
        yield runtime


NOT_AN_UPGRADE = 'Worker tried to return a WebSocket in a response to a request which did not contain the header "Upgrade: websocket".'


class TestClose:
    def test_close_before_accept(self) -> None:
        """close() on an end not accepted raises send()'s TypeError; the arguments are checked
        first (workerd: close(999) there raises "Invalid WebSocket close code: 999.")."""
        client, server = durable.WebSocketPair()
        message = (
            r"^You must call one of accept\(\) or state.acceptWebSocket\(\) on this WebSocket before sending messages.$"
        )
        with pytest.raises(TypeError, match=message):
            server.close(1000)
        with pytest.raises(TypeError, match=message):
            client.close()
        with pytest.raises(durable.WebSocketError, match="^Invalid WebSocket close code: 999.$"):
            server.close(999)
        assert server.ready_state == client.ready_state == durable.WebSocket.OPEN

    def test_reason_without_code(self) -> None:
        """A reason without a code, even "", raises workerd's DOMException (InvalidAccessError):
        a durable.WebSocketError here, and still a TypeError."""
        client, _server = durable.WebSocketPair()
        client.accept()
        for reason in ("why", ""):
            with pytest.raises(
                durable.WebSocketError, match="^If you specify a WebSocket close reason, you must also specify a code.$"
            ) as info:
                client.close(None, reason)
            assert isinstance(info.value, TypeError)
        assert client.ready_state == durable.WebSocket.OPEN


class TestHibernationApi:
    async def test_tag_length_in_utf8_bytes(self, rt: durable.Runtime) -> None:
        """workerd measures a tag in UTF-8 bytes ("é" * 128 passes, "é" * 129 is refused, "😀" *
        64 passes and * 65 is refused), with the message's "256 characters" all the same."""

        def check(obj: Any, ctx: durable.State) -> None:
            for tag, ok in (("é" * 128, True), ("é" * 129, False), ("😀" * 64, True), ("😀" * 65, False)):
                server = durable.WebSocketPair()[1]
                if ok:
                    ctx.accept_web_socket(server, [tag])
                    assert ctx.get_tags(server) == [tag]
                else:
                    with pytest.raises(durable.WebSocketError) as info:
                        ctx.accept_web_socket(server, [tag])
                    assert str(info.value) == f'"{tag}" is longer than the max tag length (256 characters).'

        await run_in_object(rt.env.OBJ.get_by_name("tags"), check)

    async def test_get_web_sockets_order(self, rt: durable.Runtime) -> None:
        """get_web_sockets() lists the newest socket first; get_web_sockets(tag) the oldest first
        (workerd: "5,4,3,2,1,0" and "0,1,2,3,4,5", the odd ones "1,3,5"); closing one keeps the
        order of the rest."""

        def check(obj: Any, ctx: durable.State) -> None:
            for i in range(6):
                server = durable.WebSocketPair()[1]
                ctx.accept_web_socket(server, ["odd", "x"] if i % 2 else ["x", "even"])
                server.serialize_attachment(i)

            def order(tag: str | None = None) -> list[int]:
                return [ws.deserialize_attachment() for ws in ctx.get_web_sockets(tag)]

            assert order() == [5, 4, 3, 2, 1, 0]
            assert order("x") == [0, 1, 2, 3, 4, 5]
            assert order("odd") == [1, 3, 5]
            assert ctx.getWebSockets() == ctx.get_web_sockets()

        await run_in_object(rt.env.OBJ.get_by_name("order"), check)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (-1, "The value cannot be converted because it is negative and this API expects a positive number."),
            (-0.5, "The value cannot be converted because it is negative and this API expects a positive number."),
            (math.nan, "The value cannot be converted because it is not an integer."),
            (math.inf, "The value cannot be converted because it is not an integer."),
            (2**32, "Value out of range. Must be less than or equal to 4294967295."),
        ],
    )
    async def test_event_timeout_conversion_errors(self, rt: durable.Runtime, value: float, message: str) -> None:
        """Values workerd cannot convert to an unsigned 32-bit integer raise its TypeErrors."""

        def check(obj: Any, ctx: durable.State) -> None:
            with pytest.raises(TypeError) as info:
                ctx.set_hibernatable_web_socket_event_timeout(value)
            assert str(info.value) == message
            assert ctx.get_hibernatable_web_socket_event_timeout() is None

        await run_in_object(rt.env.OBJ.get_by_name("timeout"), check)

    async def test_event_timeout_values(self, rt: durable.Runtime) -> None:
        """The parameter is ``ms``; fractions are dropped (0.5 unsets, 1.5 is 1), True is 1, and over 7 days (up to
        4,294,967,295) raises workerd's plain Error: a durable.WebSocketError, still a ValueError."""

        def check(obj: Any, ctx: durable.State) -> None:
            ctx.set_hibernatable_web_socket_event_timeout(ms=250)  # the contract's parameter name
            assert ctx.get_hibernatable_web_socket_event_timeout() == 250
            ctx.set_hibernatable_web_socket_event_timeout(1.5)
            assert ctx.get_hibernatable_web_socket_event_timeout() == 1
            ctx.set_hibernatable_web_socket_event_timeout(True)
            assert ctx.get_hibernatable_web_socket_event_timeout() == 1
            ctx.set_hibernatable_web_socket_event_timeout(604_800_000.5)
            assert ctx.get_hibernatable_web_socket_event_timeout() == 604_800_000
            ctx.set_hibernatable_web_socket_event_timeout(0.5)
            assert ctx.get_hibernatable_web_socket_event_timeout() is None
            ctx.set_hibernatable_web_socket_event_timeout(timeout_ms=300)  # the earlier spelling still works
            assert ctx.get_hibernatable_web_socket_event_timeout() == 300
            with pytest.raises(TypeError, match="takes ms or timeout_ms, not both"):
                ctx.set_hibernatable_web_socket_event_timeout(1, timeout_ms=2)
            for value in (604_800_001, 4_294_967_295):
                with pytest.raises(
                    durable.WebSocketError, match="^Event timeout should not exceed 604800000 ms.$"
                ) as info:
                    ctx.set_hibernatable_web_socket_event_timeout(value)
                assert isinstance(info.value, ValueError)

        await run_in_object(rt.env.OBJ.get_by_name("timeout"), check)


class TestUpgradeHeader:
    async def test_fetch_without_upgrade(self, rt: durable.Runtime) -> None:
        """A Response with a WebSocket answering a request without "Upgrade: websocket" raises
        workerd's TypeError for the caller; the object's end stays accepted and OPEN."""
        stub = rt.env.OBJ.get_by_name("a")
        for headers in ({}, {"Upgrade": "h2c"}):
            with pytest.raises(TypeError) as info:
                await stub.fetch("http://a/", headers=headers)
            assert str(info.value) == NOT_AN_UPGRADE
        response = await stub.fetch("http://a/count", headers={"upgrade": "WebSocket"})
        assert await response.text() == "1,1"  # the two refused ends, listed and OPEN

    async def test_fetch_with_upgrade_in_any_case(self, rt: durable.Runtime) -> None:
        """workerd takes "Upgrade: WebSocket" (any case), with any method."""
        stub = rt.env.OBJ.get_by_name("b")
        response = await stub.fetch("http://a/", headers={"upgrade": "WebSocket"})
        assert response.status == 101 and response.web_socket is not None
        response = await stub.fetch("http://a/", method="POST", headers={"Upgrade": "websocket"})
        assert response.status == 101 and response.web_socket is not None

    async def test_fetch_from_an_object(self, rt: durable.Runtime) -> None:
        """The same from inside another object (the stub's other path)."""
        stub = rt.env.OBJ.get_by_name("asker")
        assert await stub.ask("http://a/", None) == f"TypeError: {NOT_AN_UPGRADE}"
        assert await stub.ask("http://a/", "websocket") == "101 True"

    async def test_asgi_http_request(self, rt: durable.Runtime, caplog: pytest.LogCaptureFixture) -> None:
        """A Worker answering a plain HTTP request with a WebSocket: workerd's TypeError, so a 500
        for the client (miniflare: 500 with that TypeError), never a 101 over HTTP."""

        class Worker(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                server.accept()
                return durable.Response(None, status=101, web_socket=client)

        app = durable.asgi_app(Worker, rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
            response = await http.get("/")
        assert response.status_code == 500
        assert NOT_AN_UPGRADE in caplog.text


class AutoObj(durable.DurableObject):
    """Auto-responds "pong" to "ping"; keeps every socket it accepted (tag "t") in ``kept``."""

    def __init__(self, ctx: durable.State, env: Any) -> None:
        super().__init__(ctx, env)
        self.kept: list[durable.WebSocket] = []

    async def fetch(self, request: durable.Request) -> durable.Response:
        self.ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong"))
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, ["t"])
        self.kept.append(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "put":
            self.ctx.storage.put("k", "v")  # not awaited: the send below waits for its commit
            ws.send("after-put")
        elif message == "close":
            ws.close(4001, "srv")
        else:
            ws.send(f"echo:{message!s}")

    def kept_state(self) -> list[Any]:
        out: list[Any] = []
        for ws in self.kept:
            stamp = self.ctx.get_web_socket_auto_response_timestamp(ws)
            out.append((self.ctx.get_tags(ws), stamp is not None, len(self.ctx.get_web_sockets())))
        return out


@pytest.fixture
async def art() -> Any:
    async with durable.Runtime() as runtime:
        runtime.namespace(AutoObj, name="AUTO")
        yield runtime


class TestAutoResponseDetails:
    async def test_waits_for_sends_behind_the_output_gate(self, art: durable.Runtime) -> None:
        """A message the object sent after a write, still held by the output gate, reaches the
        client before the auto-response to a later "ping" (workerd queues auto-responses behind
        the socket's pending sends: the client got "after-put" then "pong"); a send made after
        an await is overtaken (workerd: "pong" before "late")."""
        from durable.testing import websocket

        async with websocket(art.env.AUTO.get_by_name("a"), "http://a/") as ws:
            ws.send("put")
            ws.send("ping")
            assert [await ws.receive(), await ws.receive()] == ["after-put", "pong"]
            ws.send("x")
            ws.send("ping")
            assert {await ws.receive(), await ws.receive()} == {"echo:x", "pong"}

    async def test_no_auto_response_after_the_objects_close(self, art: durable.Runtime) -> None:
        """A "ping" that reaches the object after it closed the socket gets no "pong" (workerd:
        the client sees only the close, 4001 "srv"), though the timestamp is still recorded."""
        from durable.testing import websocket

        stub = art.env.AUTO.get_by_name("b")
        async with websocket(stub, "http://a/") as ws:
            ws.send("close")
            ws.send("ping")
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.reason) == (4001, "srv")
        assert [state[:2] for state in await stub.kept_state()] == [(["t"], True)]

    async def test_tags_and_timestamp_outlive_the_close(self, art: durable.Runtime) -> None:
        """After a socket closed and left get_web_sockets(), get_tags() and
        get_web_socket_auto_response_timestamp() still answer for it (workerd keeps both on the
        socket: ["t"] and a Date, with getWebSockets().length 0)."""
        from durable.testing import websocket

        stub = art.env.AUTO.get_by_name("c")
        async with websocket(stub, "http://a/") as ws:
            ws.send("ping")
            assert await ws.receive() == "pong"
        async with websocket(stub, "http://a/") as ws:
            pass
        assert await stub.kept_state() == [(["t"], True, 0), (["t"], False, 0)]

    async def test_timestamp_of_something_else(self, rt: durable.Runtime) -> None:
        """workerd: TypeError "Failed to execute 'getWebSocketAutoResponseTimestamp' on
        'DurableObjectState': parameter 1 is not of type 'WebSocket'."; None for a socket never
        accepted, or accepted with accept()."""

        def check(obj: Any, ctx: durable.State) -> None:
            with pytest.raises(TypeError):
                ctx.get_web_socket_auto_response_timestamp({})  # type: ignore[arg-type]
            pair = durable.WebSocketPair()
            assert ctx.get_web_socket_auto_response_timestamp(pair[1]) is None
            pair[1].accept()
            assert ctx.get_web_socket_auto_response_timestamp(pair[1]) is None

        await run_in_object(rt.env.OBJ.get_by_name("ts"), check)
