"""WebSocket edge cases measured against workerd (miniflare 4, compatibility date 2026-04-07).

The probes ran in a Durable Object: two ends of a ``new WebSocketPair()`` both accepted with
``accept()`` and driven from the object, and a server end returned to ``mf.dispatchFetch`` with
``Upgrade: websocket`` and accepted in node (``resp.webSocket.accept()``). Each test names what
workerd did.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import durable
from durable.testing import hibernation_blockers, run_in_object, websocket

DISCONNECTED = (1006, "WebSocket disconnected without sending Close frame.", False)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def accepted_pair() -> tuple[durable.WebSocket, durable.WebSocket]:
    client, server = durable.WebSocketPair()
    client.accept()
    server.accept()
    return client, server


class Plain(durable.DurableObject):
    pass


class TestGetWebSocketsTag:
    async def test_a_tag_that_is_not_a_str_is_refused(self) -> None:
        """workerd converts the tag with String(): getWebSockets(1) found the socket accepted with
        the tag 1 (stored as "1"). Here tags are str, so a non-str tag raises instead of finding
        nothing."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Plain).get_by_name("a")

            def probe(obj: Any, ctx: durable.State) -> Any:
                _, server = durable.WebSocketPair()
                ctx.accept_web_socket(server, ["1"])
                with pytest.raises(TypeError, match="^get_web_sockets\\(\\) tag must be a str, not int$"):
                    ctx.get_web_sockets(1)  # type: ignore[arg-type]
                return len(ctx.get_web_sockets("1")), len(ctx.get_web_sockets("nope"))

            assert await run_in_object(stub, probe) == (1, 0)


class TestListeners:
    async def test_a_listener_added_twice_runs_once(self) -> None:
        """workerd (an EventTarget): a listener added twice was called once per message, and one
        removal removed it."""
        client, server = accepted_pair()
        seen: list[str] = []

        def listener(event: Any) -> None:
            seen.append(str(event.data))

        server.add_event_listener("message", listener)
        server.add_event_listener("message", listener)
        client.send("1")
        await settle()
        server.remove_event_listener("message", listener)
        client.send("2")
        await settle()
        assert seen == ["1"]

    async def test_a_raising_message_listener_drops_the_connection(self, caplog: pytest.LogCaptureFixture) -> None:
        """workerd, two accepted ends of a pair: a "message" listener that throws skipped the
        listeners after it, its end got an "error" event (readyState 3 there) and no "close"
        event, and the other end a close (1006, "WebSocket disconnected without sending Close
        frame.", false); a message sent afterwards was not delivered, and send()/close() on the
        failed end returned without error."""
        client, server = accepted_pair()
        seen: list[Any] = []

        def first(event: Any) -> None:
            seen.append(("first", event.data))
            if event.data == "boom":
                raise ValueError("listener failed")

        server.add_event_listener("message", first)
        server.add_event_listener("message", lambda e: seen.append(("second", e.data)))
        server.add_event_listener("close", lambda e: seen.append(("close", e.code)))
        server.add_event_listener(
            "error", lambda e: seen.append(("error", type(e.error).__name__, str(e.error), server.ready_state))
        )
        client.add_event_listener("close", lambda e: seen.append(("peer close", e.code, e.reason, e.was_clean)))
        client.send("ok")
        await settle()
        with caplog.at_level(logging.ERROR, logger="durable"):
            client.send("boom")
            await settle()
        client.send("after")  # the peer does not know yet: no error, and it goes nowhere
        server.send("ignored")
        server.close(1000)
        await settle()
        assert seen == [
            ("first", "ok"),
            ("second", "ok"),
            ("first", "boom"),
            ("error", "ValueError", "listener failed", durable.WebSocket.CLOSED),
            ("peer close", *DISCONNECTED),
        ]
        assert server.ready_state == client.ready_state == durable.WebSocket.CLOSED
        assert "listener failed" in caplog.text

    async def test_an_async_listener_that_raises_keeps_the_connection(self) -> None:
        """workerd ignores what a listener returns: a listener whose promise rejected left the
        socket open and the next message was delivered (probed over dispatchFetch)."""
        client, server = accepted_pair()
        seen: list[str] = []

        async def listener(event: Any) -> None:
            seen.append(str(event.data))
            raise ValueError("later")

        server.add_event_listener("message", listener)
        client.send("1")
        await settle()
        client.send("2")
        await settle()
        assert seen == ["1", "2"]
        assert server.ready_state == client.ready_state == durable.WebSocket.OPEN

    async def test_a_raising_close_listener(self) -> None:
        """workerd: a "close" listener that throws skipped the later "close" listeners and was
        followed by an "error" event; the peer had its clean close already (4000, true)."""
        client, server = accepted_pair()
        seen: list[Any] = []

        def first(event: Any) -> None:
            seen.append(("close", event.code))
            raise ValueError("close listener failed")

        server.add_event_listener("close", first)
        server.add_event_listener("close", lambda e: seen.append(("second close", e.code)))
        server.add_event_listener("error", lambda e: seen.append(("error", str(e.error))))
        client.add_event_listener("close", lambda e: seen.append(("peer close", e.code, e.was_clean)))
        client.close(4000, "x")
        await settle()
        assert seen == [("close", 4000), ("error", "close listener failed"), ("peer close", 4000, True)]


class Standard(durable.DurableObject):
    """Answers an upgrade with an end accepted with accept(), whose first listener raises on "boom"."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.seen: list[Any] = []

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        server.accept()

        def first(event: Any) -> None:
            self.seen.append(("first", event.data))
            if event.data == "boom":
                raise ValueError("listener failed")
            server.send(f"echo:{event.data}")

        server.add_event_listener("message", first)
        server.add_event_listener("message", lambda e: self.seen.append(("second", e.data)))
        server.add_event_listener("close", lambda e: self.seen.append(("close", e.code)))
        server.add_event_listener("error", lambda e: self.seen.append(("error", str(e.error), server.ready_state)))
        return durable.Response(None, status=101, web_socket=client)


class TestRaisingListenerInAnObject:
    async def test_the_client_sees_1006_and_the_object_lives_on(self) -> None:
        """workerd, a server end accepted with accept() in the object and a client over
        dispatchFetch: after "x" (echoed), "boom" made the first listener throw; the second did not
        run for it, the object's "error" listener saw readyState 3, the client got a 1006 close
        and "y", sent right after, was never delivered. The object was not reset (the next
        request reached the same instance)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Standard).get_by_name("a")
            async with websocket(stub, "http://a/") as ws:
                ws.send("x")
                assert await ws.receive() == "echo:x"
                ws.send("boom")
                ws.send("y")
                with pytest.raises(durable.WebSocketClosed) as info:
                    await ws.receive()
                assert (info.value.code, info.value.reason, info.value.was_clean) == DISCONNECTED
            seen = await run_in_object(stub, lambda obj, ctx: obj.seen)  # type: ignore[attr-defined]
            assert seen == [
                ("first", "x"),
                ("second", "x"),
                ("first", "boom"),
                ("error", "listener failed", durable.WebSocket.CLOSED),
            ]
            assert hibernation_blockers(stub) == []  # the socket no longer pins the object
