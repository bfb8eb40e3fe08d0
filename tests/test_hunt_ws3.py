"""WebSocket edges found by comparing with workerd (miniflare 4.20260426, compatibility date
2026-04-07), third hunt.

Each test quotes its measurement: a Durable Object whose ``fetch`` made a ``WebSocketPair`` and
drove both ends, or a client from ``mf.dispatchFetch(url, {headers: {Upgrade: "websocket"}})``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

import durable

from helpers import settle


def _catch(f: Any) -> str:
    try:
        f()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _record(seen: list[Any], name: str, end: durable.WebSocket) -> None:
    """Note ``end``'s messages and its close event, each with its ``ready_state`` then."""
    end.add_event_listener("message", lambda e: seen.append((f"{name} got", e.data, end.ready_state)))
    end.add_event_listener(
        "close", lambda e: seen.append((f"{name} close", e.code, e.reason, e.was_clean, end.ready_state))
    )


class TestAllowHalfOpen:
    """``accept(allow_half_open=True)``: the runtime does not answer the peer's Close.

    workerd (miniflare 4.20260426, 2026-04-07), an in-process pair, ``server.accept({allowHalfOpen:
    true})``, ``client.accept()``, ``client.close(4000, "r")``: the server's ``"close"`` listener
    gets ``(4000, "r", true)`` with the server ``CLOSING`` (2) and its ``send("late")`` there
    succeeds; the client gets ``"late"`` (itself ``CLOSING``), and later sends too; both stay
    ``CLOSING`` until ``server.close(4001, "s")``, when the client's close event gets ``(4001,
    "s", true)`` and both are ``CLOSED``. Before, durable answered the Close anyway (both
    ``CLOSED`` at once, the server's ``send`` raising ``Can't call WebSocket send() after
    close().``).
    """

    async def test_the_peer_is_answered_by_close_only(self) -> None:
        client, server = durable.WebSocketPair()
        server.accept(allow_half_open=True)
        client.accept()
        seen: list[Any] = []

        def on_server_close(event: Any) -> None:
            seen.append(("server close", event.code, event.reason, event.was_clean, server.ready_state))
            seen.append(("send", _catch(lambda: server.send("late"))))

        server.add_event_listener("close", on_server_close)
        _record(seen, "client", client)
        client.close(4000, "r")
        await settle()
        assert (client.ready_state, server.ready_state) == (2, 2)
        server.send("later")
        await settle()
        server.close(4001, "s")
        await settle()
        assert seen == [
            ("server close", 4000, "r", True, 2),
            ("send", "ok"),
            ("client got", "late", 2),
            ("client got", "later", 2),
            ("client close", 4001, "s", True, 3),
        ]
        assert (client.ready_state, server.ready_state) == (3, 3)

    async def test_the_server_closes_first(self) -> None:
        """workerd, the same pair with both ends half-open and ``server.close(4000, "r")``: the
        client's close listener sees ``CLOSING`` and may still send (the server gets ``"late"``);
        the client's ``close(4002, "c")`` gives the server's listener ``(4002, "c", true)``."""
        client, server = durable.WebSocketPair()
        server.accept(allow_half_open=True)
        client.accept(allow_half_open=True)
        seen: list[Any] = []

        def on_client_close(event: Any) -> None:
            seen.append(("client close", event.code, event.reason, event.was_clean, client.ready_state))
            client.send("late")

        client.add_event_listener("close", on_client_close)
        _record(seen, "server", server)
        server.close(4000, "r")
        await settle()
        assert (client.ready_state, server.ready_state) == (2, 2)
        client.close(4002, "c")
        await settle()
        assert seen == [
            ("client close", 4000, "r", True, 2),
            ("server got", "late", 2),
            ("server close", 4002, "c", True, 3),
        ]

    async def test_inside_an_object_the_socket_keeps_it_awake(self) -> None:
        """A half-open socket whose peer closed is still in use until the object closes it: it
        keeps the object from hibernating, and its messages still leave.

        workerd, a ``dispatchFetch`` client closing with ``(4000, "r")``: the object's listener
        saw ``CLOSING`` and its ``send`` reached the client (``CLOSING``), whose close event came
        only with the object's later ``close(4001, "s")``."""

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                server.accept(allow_half_open=True)
                server.add_event_listener("close", lambda e: server.send(f"bye after {e.code}"))
                self.env.kept.append(server)
                return durable.Response(None, status=101, web_socket=client)

        async with durable.Runtime(vars={"kept": []}) as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/") as ws:
                ws.close(4000, "r")
                assert await ws.receive() == "bye after 4000"
                assert durable.testing.hibernation_blockers(stub) == ["standard websocket"]
                server = rt.env.kept[0]
                await durable.testing.run_in_object(stub, lambda obj, ctx: server.close(4001, "s"))
                await settle()
                assert ws.ready_state == 3
                assert durable.testing.hibernation_blockers(stub) == []

    async def test_a_close_that_arrived_before_accept(self) -> None:
        """workerd: ``client.send("m"); client.close(4000, "r")`` before ``server.accept({allowHalfOpen:
        true})``: the server gets ``"m"`` (``OPEN``), then its close (``CLOSING``), may send; the
        client gets ``"late"`` and, after ``server.close(4001, "s")``, its close (4001)."""
        client, server = durable.WebSocketPair()
        client.accept()
        seen: list[Any] = []
        _record(seen, "client", client)
        client.send("m")
        client.close(4000, "r")
        await settle()
        server.accept(allow_half_open=True)
        server.add_event_listener("message", lambda e: seen.append(("server got", e.data, server.ready_state)))

        def on_server_close(event: Any) -> None:
            seen.append(("server close", server.ready_state))
            server.send("late")

        server.add_event_listener("close", on_server_close)
        await settle()
        server.close(4001, "s")
        await settle()
        assert seen == [
            ("server got", "m", 1),
            ("server close", 2),
            ("client got", "late", 2),
            ("client close", 4001, "s", True, 3),
        ]

    async def test_a_second_accept_keeps_the_first_choice(self) -> None:
        """workerd: ``accept({allowHalfOpen: true}); accept()`` leaves the socket half-open
        (``CLOSING`` in its close listener); ``accept(); accept({allowHalfOpen: true})`` does not."""
        states: list[int] = []
        for first, second in ((True, False), (False, True)):
            client, server = durable.WebSocketPair()
            server.accept(allow_half_open=first)
            server.accept(allow_half_open=second)
            client.accept()
            server.add_event_listener("close", functools.partial(lambda end, e: states.append(end.ready_state), server))
            client.close(4000, "r")
            await settle()
        assert states == [2, 3]

    def test_the_flag_must_be_a_bool(self) -> None:
        """Not workerd's options object: ``{"allowHalfOpen": False}`` would have been truthy."""
        _client, server = durable.WebSocketPair()
        with pytest.raises(TypeError, match="allow_half_open must be a bool, not dict"):
            server.accept({"allowHalfOpen": False})  # type: ignore[arg-type]
        assert not server.standard

    async def test_default_still_answers(self) -> None:
        client, server = durable.WebSocketPair()
        server.accept()
        client.accept()
        client.close(4000, "r")
        await settle()
        assert (client.ready_state, server.ready_state) == (3, 3)


class TestAfterAMessageOver32MiB:
    async def test_the_client_may_still_send_until_the_1009_arrives(self) -> None:
        """workerd (miniflare 4.20260426, 2026-04-07), a client from ``dispatchFetch`` sending
        ``"small"``, a 32 MiB + 1 message and ``"after"`` in one go: no ``send()`` raised; the
        object got ``"small"`` and its error event, never ``"after"``. Before, durable's client
        end raised ``TypeError: Can't call WebSocket send() after close().`` at ``"after"``
        though the client never called ``close()``."""
        got: list[Any] = []

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                self.ctx.accept_web_socket(server)
                return durable.Response(None, status=101, web_socket=client)

            def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
                got.append(message)

            def web_socket_error(self, ws: durable.WebSocket, error: Exception) -> None:
                got.append("error")

        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/") as ws:
                ws.send("small")
                ws.send(b"\0" * ((32 << 20) + 1))
                assert ws.ready_state == durable.WebSocket.OPEN
                ws.send("after")
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert (closed.value.code, closed.value.reason) == (1009, "Message is too large: 33554433 > 33554432")
                assert ws.ready_state == durable.WebSocket.CLOSED
                await settle()
        assert got == ["small", "error"]

    @pytest.mark.parametrize("then", ["send", "close"])
    async def test_nothing_after_it_reaches_an_end_accepted_later(self, then: str) -> None:
        """workerd's read loop fails at the big message and reads nothing after it. An object
        end accepted after the client sent ``"small"``, the big message and then ``"after"`` got
        its error event and then ``"after"`` (found in review: the client's later message waited
        in the unaccepted end's backlog, behind the error). The client's ``close()`` there is
        not read either (no close event after the error). And the 1009 reaches the client only
        once the object's end is accepted and reads the error: workerd's client got it 118 ms
        after the object's ``accept()``, which came 1 s after the big message; here it got it at
        once (found in review, measured with miniflare 4.20260426)."""
        seen: list[Any] = []

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                self.env.kept.append(server)
                return durable.Response(None, status=101, web_socket=client)

        def accept(server: durable.WebSocket) -> None:
            server.accept()
            server.add_event_listener("message", lambda e: seen.append(("message", e.data[:5])))
            server.add_event_listener("error", lambda e: seen.append("error"))
            server.add_event_listener("close", lambda e: seen.append(("close", e.code)))

        async with durable.Runtime(vars={"kept": []}) as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            async with durable.testing.websocket(stub, "http://o/") as ws:
                ws.send("small")
                ws.send(b"\0" * ((32 << 20) + 1))
                if then == "send":
                    ws.send("after")
                else:
                    ws.close(4000, "c")
                await settle()
                assert ws.ready_state == (durable.WebSocket.OPEN if then == "send" else durable.WebSocket.CLOSING)
                await durable.testing.run_in_object(stub, lambda obj, ctx: accept(rt.env.kept[0]))
                with pytest.raises(durable.WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1009
                assert seen == [("message", "small"), "error"]
                assert ws.ready_state == durable.WebSocket.CLOSED


class TestHalfOpenBeyondTheRuntime:
    """A half-open end whose client is beyond the runtime (found in review)."""

    async def test_leaving_the_testing_block_does_not_wait_for_a_close_that_never_comes(self) -> None:
        """``durable.testing.websocket``'s exit closes the client and waited (5 s) for the
        answer; a half-open end answers only with its object's ``close()`` (workerd's client
        stays ``CLOSING`` until then), here never. It waits now until the Close was read."""
        seen: list[Any] = []

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                server.accept(allow_half_open=True)
                server.add_event_listener("close", lambda e: seen.append((e.code, server.ready_state)))
                return durable.Response(None, status=101, web_socket=client)

        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            block = durable.testing.websocket(stub, "http://o/")
            ws = await block.__aenter__()
            # (a hang guard, not a timing: the exit takes a few loop turns, and waited 5 s)
            await asyncio.wait_for(block.__aexit__(None, None, None), 4.0)
            await settle()
            assert ws.ready_state == durable.WebSocket.CLOSING
            assert seen == [(1000, durable.WebSocket.CLOSING)]
            assert durable.testing.hibernation_blockers(stub) == ["standard websocket"]

    async def test_after_an_asgi_clients_close_what_the_object_sends_is_not_kept(self) -> None:
        """Through ASGI the server answers the client's Close and the connection ends; what a
        half-open end sends after that (no client receives it: docs/websockets.md) was kept,
        unread, in the bridge's end for as long as the object held its socket."""

        class Obj(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                server.accept(allow_half_open=True)
                self.env.kept.append(server)
                return durable.Response(None, status=101, web_socket=client)

        class Worker(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                response: durable.Response = await self.env.OBJ.get_by_name("a").fetch(request)
                return response

        async with durable.Runtime(vars={"kept": []}) as rt:
            rt.namespace(Obj, name="OBJ")
            async with durable.testing.websocket(durable.asgi_app(Worker, rt), "http://o/") as ws:
                ws.close(4000, "r")
            server = rt.env.kept[0]
            stub = rt.env.OBJ.get_by_name("a")
            for _ in range(3):
                await durable.testing.run_in_object(stub, lambda obj, ctx: server.send("m"))
            await settle()
            assert server.ready_state == durable.WebSocket.CLOSING
            bridged = server.network.peer
            assert bridged is not None
            assert bridged.ready_state == durable.WebSocket.CLOSED
            assert not bridged.delivery._inbox  # nothing piles up there
            await durable.testing.run_in_object(stub, lambda obj, ctx: server.close(4001, "s"))
            assert durable.testing.hibernation_blockers(stub) == []
