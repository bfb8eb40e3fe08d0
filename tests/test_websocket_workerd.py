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
