"""The Hibernation API on ctx, WebSocket events through the gates, close semantics and hibernation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock, hibernate, hibernation_blockers, run_in_object, websocket

from helpers import settle

T0 = 1_700_000_000


class Room(durable.DurableObject):
    """Accepts hibernatable sockets (tags from the query), echoes, logs events in env.log."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(1)

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.headers.get("upgrade") != "websocket":
            return durable.Response(f"sockets={len(self.ctx.get_web_sockets())}")
        client, server = durable.WebSocketPair()
        query = request.url.partition("?")[2]
        tags = [t for t in query.split(",") if t] if query else None
        if "standard" in (tags or []):
            server.accept()
            server.add_event_listener("message", lambda e: server.send(f"std:{e.data}"))
        else:
            self.ctx.accept_web_socket(server, tags)
            server.serialize_attachment({"tags": tags})
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(message)
        if message == "count":
            value = (await self.ctx.storage.get("n") or 0) + 1
            await self.ctx.storage.put("n", value)
            ws.send(str(value))
        elif message == "boom":
            raise ValueError("handler failed")
        elif message == "slow":
            await asyncio.sleep(3600)
        elif message == "attachment":
            ws.send(repr(ws.deserialize_attachment()))
        elif message == "abort":
            self.ctx.abort("bye")
        elif message == "task":
            self.env.tasks.append(asyncio.get_running_loop().create_task(asyncio.sleep(3600)))
            ws.send("started")
        elif message == "wait_until":
            gate: asyncio.Event = self.env.gate
            self.ctx.wait_until(gate.wait())
            ws.send("waiting")
        elif isinstance(message, bytes):
            ws.send(message[::-1])
        else:
            ws.send(f"echo:{message}")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.env.log.append(("close", code, reason, was_clean, ws.ready_state, len(self.ctx.get_web_sockets())))

    async def web_socket_error(self, ws: durable.WebSocket, error: BaseException) -> None:
        self.env.log.append(("error", str(error)))

    async def count(self) -> int:
        return int(await self.ctx.storage.get("n") or 0)


class Bare(durable.DurableObject):
    """Accepts hibernatable sockets and defines no handler at all."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)


class Short(durable.DurableObject):
    """camelCase handlers that declare fewer parameters than the runtime passes."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: durable.WebSocket) -> None:  # noqa: N802
        ws.send("got one")

    def webSocketClose(self, ws: durable.WebSocket, code: int) -> None:  # noqa: N802
        self.env.log.append(("close", code))


class Fragile(durable.DurableObject):
    """Its constructor, on a wake with env.explode set, sends on every socket and then raises."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        if env.log and env.log[-1] == "explode":
            for ws in ctx.get_web_sockets():
                ws.send("from the constructor")
            raise RuntimeError("constructor failed")

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)


class PythonWorkersShape(durable.DurableObject):
    """workerd's tests/python/durable-object-websocket/worker.py, spelled for durable."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        web_socket_pair = durable.WebSocketPair.new()
        client, server = web_socket_pair
        self.ctx.acceptWebSocket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: durable.WebSocket, message: str | bytes) -> None:  # noqa: N802
        ws.send("hello")


@pytest.fixture
def clock() -> MockClock:
    return MockClock(start=T0)


@pytest.fixture
async def rt(clock: MockClock) -> AsyncIterator[durable.Runtime]:
    runtime = durable.Runtime(clock=clock, vars={"built": [], "log": [], "tasks": [], "gate": asyncio.Event()})
    async with runtime:
        yield runtime


def room(rt: durable.Runtime, name: str = "r") -> durable.Stub[Room]:
    return rt.namespace(Room).get_by_name(name)


class TestAccept:
    async def test_echo(self, rt: durable.Runtime) -> None:
        """A hibernatable socket gets its messages to web_socket_message; binary stays bytes."""
        async with websocket(room(rt), "http://room/") as ws:
            ws.send("hi")
            assert await ws.receive() == "echo:hi"
            ws.send(b"\x01\x02")
            assert await ws.receive() == b"\x02\x01"
        assert rt.env.log == ["hi", b"\x01\x02", ("close", 1000, "", True, durable.WebSocket.CLOSED, 1)]

    async def test_socket_limit(self, rt: durable.Runtime) -> None:
        """32,768 sockets are accepted on one object; the next raises workerd's message."""

        def fill(obj: Any, ctx: durable.State) -> str:
            for _ in range(32768):
                ctx.accept_web_socket(durable.WebSocketPair()[1])
            with pytest.raises(durable.WebSocketError) as info:
                ctx.accept_web_socket(durable.WebSocketPair()[1])
            return str(info.value)

        message = await run_in_object(room(rt), fill)
        assert message == "only 32768 websockets can be accepted on a single Durable Object instance"

    async def test_tags(self, rt: durable.Runtime) -> None:
        """Tags: duplicates collapse, get_web_sockets(tag) filters, limits raise workerd's messages."""

        def check(obj: Any, ctx: durable.State) -> None:
            a, b, c = (durable.WebSocketPair()[1] for _ in range(3))
            ctx.accept_web_socket(a, ["x", "y", "x"])
            ctx.acceptWebSocket(b, ["y"])
            ctx.accept_web_socket(c)
            assert ctx.get_tags(a) == ["x", "y"] and ctx.getTags(c) == []
            assert ctx.get_web_sockets("y") == [a, b] and ctx.getWebSockets("x") == [a]
            # All sockets newest first, a tag's oldest first (workerd, measured with miniflare 4, 2026-04-07).
            assert ctx.get_web_sockets() == [c, b, a] and ctx.get_web_sockets("none") == []
            with pytest.raises(
                durable.WebSocketError, match="^a Hibernatable WebSocket cannot have more than 10 tags$"
            ):
                ctx.accept_web_socket(durable.WebSocketPair()[1], [str(i) for i in range(11)])
            with pytest.raises(durable.WebSocketError, match="cannot have more than 10 tags"):
                ctx.accept_web_socket(durable.WebSocketPair()[1], [str(i) for i in range(10)] + ["0"])
            ctx.accept_web_socket(durable.WebSocketPair()[1], [str(i) for i in range(10)])
            long = "t" * 257
            with pytest.raises(durable.WebSocketError) as info:
                ctx.accept_web_socket(durable.WebSocketPair()[1], [long])
            assert str(info.value) == f'"{long}" is longer than the max tag length (256 characters).'
            ctx.accept_web_socket(durable.WebSocketPair()[1], ["t" * 256])

        await run_in_object(room(rt), check)

    async def test_accept_errors(self, rt: durable.Runtime) -> None:
        """Accepting twice, after accept(), or a pair already returned raises workerd's messages."""

        def check(obj: Any, ctx: durable.State) -> None:
            _client, server = durable.WebSocketPair()
            ctx.accept_web_socket(server)
            with pytest.raises(
                durable.WebSocketError,
                match=r"^Cannot call `acceptWebSocket\(\)` if the WebSocket was already accepted via `accept\(\)`$",
            ):
                ctx.accept_web_socket(server)
            with pytest.raises(TypeError, match=r"^Can't accept\(\) WebSocket after enabling hibernation.$"):
                server.accept()
            with pytest.raises(
                TypeError, match=r"^Can't return WebSocket in a Response after calling acceptWebSocket\(\).$"
            ):
                durable.Response(None, status=101, web_socket=server)._hand_over()
            _, standard = durable.WebSocketPair()
            standard.accept()
            with pytest.raises(durable.WebSocketError, match="already accepted via `accept"):
                ctx.accept_web_socket(standard)
            client2, server2 = durable.WebSocketPair()
            client2.accept()
            with pytest.raises(
                durable.WebSocketError,
                match="^Cannot call `acceptWebSocket\\(\\)` on this WebSocket because its pair has already been accepted or used in a Response.$",
            ):
                ctx.accept_web_socket(server2)
            client3, server3 = durable.WebSocketPair()
            durable.Response(None, status=101, web_socket=client3)._hand_over()
            ctx.accept_web_socket(server3)  # the client end handed over first: allowed, as in workerd
            with pytest.raises(TypeError, match="durable.WebSocket"):
                ctx.accept_web_socket("nope")  # type: ignore[arg-type]

        await run_in_object(room(rt), check)

    async def test_get_tags_errors(self, rt: durable.Runtime) -> None:
        """get_tags on a socket not accepted with accept_web_socket raises workerd's messages."""

        stash: list[durable.WebSocket] = []

        def check(obj: Any, ctx: durable.State) -> None:
            _, standard = durable.WebSocketPair()
            standard.accept()
            with pytest.raises(durable.WebSocketError, match="^only hibernatable websockets can have tags.$"):
                ctx.get_tags(standard)
            _, fresh = durable.WebSocketPair()
            with pytest.raises(durable.WebSocketError, match="^you must call 'acceptWebSocket"):
                ctx.get_tags(fresh)
            ctx.accept_web_socket(fresh)
            stash.append(fresh)

        def elsewhere(obj: Any, ctx: durable.State) -> None:
            # Another object's socket: workerd refuses the access itself (miniflare 4, 2026-04-07;
            # tests/test_hunt_ws.py).
            with pytest.raises(
                durable.WebSocketError, match="^Cannot perform I/O on behalf of a different Durable Object"
            ):
                ctx.get_tags(stash[0])

        await run_in_object(room(rt), check)
        await run_in_object(room(rt, "other"), elsewhere)

    async def test_send_behind_hibernation_accept(self, rt: durable.Runtime) -> None:
        """A hibernatable socket can send from the object right after being accepted."""

        async with websocket(room(rt), "http://room/") as ws:
            await run_in_object(room(rt), lambda obj, ctx: ctx.get_web_sockets()[0].send("pushed"))
            assert await ws.receive() == "pushed"


class TestEvents:
    async def test_order_100_messages_5_times(self, rt: durable.Runtime) -> None:
        """100 messages are echoed in order, 5 times, and the object saw them in that order (workers-sdk websockets.test.ts)."""
        async with websocket(room(rt), "http://room/") as ws:
            for round_ in range(5):
                sent = [f"{round_}-{i}" for i in range(100)]
                for message in sent:
                    ws.send(message)
                assert [await ws.receive() for _ in sent] == [f"echo:{m}" for m in sent]
        assert [m for m in rt.env.log if isinstance(m, str)] == [f"{r}-{i}" for r in range(5) for i in range(100)]

    async def test_input_gate_50_sockets(self, rt: durable.Runtime) -> None:
        """50 sockets incrementing through get/put end exact: each message is an event through the input gate."""
        stub = room(rt)
        async with contextlib_stack(stub, 50) as sockets:
            for ws in sockets:
                for _ in range(4):
                    ws.send("count")
            replies = [[await ws.receive() for _ in range(4)] for ws in sockets]
        assert await stub.count() == 200
        assert sorted(int(r) for rs in replies for r in rs) == list(range(1, 201))

    async def test_output_gate(self, rt: durable.Runtime) -> None:
        """A client never receives a send() made after a put() whose commit failed."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send("count")
            assert await ws.receive() == "1"
            durable.testing.fail_next_commit(stub)
            ws.send("count")
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()  # the reset disconnects the socket; "2" never arrives
            assert info.value.code == 1006
        # The stub's fetch reached the instance that was reset: it is broken, as in workerd
        # (measured with miniflare 4, 2026-04-07, after an abort() in webSocketMessage).
        with pytest.raises(durable.ObjectResetError):
            await stub.count()
        assert await room(rt).count() == 1

    async def test_throwing_handler(self, rt: durable.Runtime, caplog: pytest.LogCaptureFixture) -> None:
        """A handler that raises is logged; the socket stays and the object is not reset."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            with caplog.at_level(logging.ERROR, logger="durable"):
                ws.send("boom")
                ws.send("after")
                assert await ws.receive() == "echo:after"
            assert "handler failed" in caplog.text
            assert len(await run_in_object(stub, lambda obj, ctx: ctx.get_web_sockets())) == 1
        assert rt.env.built == [1]

    async def test_handlers_optional(self, rt: durable.Runtime) -> None:
        """An object without handlers drops the events silently."""
        stub = rt.namespace(Bare).get_by_name("b")
        async with websocket(stub, "http://bare/") as ws:
            ws.send("nobody listens")
            await settle()
        await stub.fetch("http://bare/", headers={"Upgrade": "websocket"})  # still alive

    async def test_fewer_parameters_and_camel_case(self, rt: durable.Runtime) -> None:
        """camelCase handlers declaring fewer parameters are called with only those."""
        stub = rt.namespace(Short).get_by_name("s")
        async with websocket(stub, "http://short/") as ws:
            ws.send("x")
            assert await ws.receive() == "got one"
        await settle()
        assert rt.env.log == [("close", 1000)]

    async def test_python_workers_shape(self, rt: durable.Runtime) -> None:
        """The Python Workers spelling (WebSocketPair.new(), acceptWebSocket, webSocketMessage) works."""
        async with websocket(rt.namespace(PythonWorkersShape).get_by_name("p"), "http://p/") as ws:
            ws.send("hi")
            assert await ws.receive() == "hello"

    async def test_handlers_not_rpc(self, rt: durable.Runtime) -> None:
        """Handlers stay unreachable over RPC."""
        with pytest.raises(TypeError, match="reserved method"):
            await room(rt).web_socket_message(None, "x")


class TestClose:
    async def test_client_close(self, rt: durable.Runtime) -> None:
        """A client close reaches web_socket_close already CLOSED, still listed; then it leaves get_web_sockets."""
        async with websocket(room(rt), "http://room/") as ws:
            ws.close(4001, "leaving")
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.reason) == (4001, "leaving")
        await settle()
        assert rt.env.log == [("close", 4001, "leaving", True, durable.WebSocket.CLOSED, 1)]
        assert await run_in_object(room(rt), lambda obj, ctx: ctx.get_web_sockets()) == []

    async def test_lost_connection(self, rt: durable.Runtime) -> None:
        """A client that drops its connection produces workerd's 1006 close in the object."""
        async with websocket(room(rt), "http://room/") as ws:
            durable.testing.disconnect(ws)
            await settle()
        assert rt.env.log == [
            ("close", 1006, "WebSocket disconnected without sending Close frame.", False, durable.WebSocket.CLOSED, 1)
        ]

    async def test_error_event(self, rt: durable.Runtime) -> None:
        """A connection failure other than a close reaches web_socket_error and releases the socket."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.network.fail(OSError("network broke"))
            await settle()
        assert rt.env.log == [("error", "network broke")]
        assert await run_in_object(stub, lambda obj, ctx: ctx.get_web_sockets()) == []

    async def test_server_close(self, rt: durable.Runtime) -> None:
        """The object closing a socket gives the client its code and reason."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            await run_in_object(stub, lambda obj, ctx: ctx.get_web_sockets()[0].close(1000, "done"))
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.reason, info.value.was_clean) == (1000, "done", True)

    async def test_abort_disconnects(self, rt: durable.Runtime) -> None:
        """ctx.abort() disconnects the object's sockets: the client sees the connection end."""
        async with websocket(room(rt), "http://room/") as ws:
            ws.send("abort")
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.was_clean) == (1006, False)

    async def test_runtime_close_closes_sockets(self, clock: MockClock) -> None:
        """Closing the runtime closes every socket with 1001."""
        async with durable.Runtime(clock=clock, vars={"built": [], "log": []}) as rt:
            async with websocket(room(rt), "http://room/") as ws:
                await rt.aclose()
                with pytest.raises(durable.WebSocketClosed) as info:
                    await ws.receive()
                assert info.value.code == 1001


class TestAutoResponse:
    async def test_active(self, rt: durable.Runtime) -> None:
        """A matching text is answered without an event; the timestamp is the runtime's clock."""
        stub = room(rt)
        pair = durable.WebSocketRequestResponsePair("ping", "pong")
        await run_in_object(stub, lambda obj, ctx: ctx.set_web_socket_auto_response(pair))
        assert await run_in_object(stub, lambda obj, ctx: ctx.get_web_socket_auto_response()) is pair
        async with websocket(stub, "http://room/") as ws:
            ws.send("ping")
            assert await ws.receive() == "pong"
            ws.send(b"ping")
            assert await ws.receive() == b"gnip"
            stamp = await run_in_object(
                stub, lambda obj, ctx: ctx.getWebSocketAutoResponseTimestamp(ctx.get_web_sockets()[0])
            )
            assert stamp is not None and stamp.timestamp() == T0
        assert rt.env.log[0] == b"ping"  # the text "ping" never reached the handler

    async def test_hibernated(self, rt: durable.Runtime, clock: MockClock) -> None:
        """While hibernated, the auto-response answers without constructing the object."""
        stub = room(rt)
        await run_in_object(
            stub,
            lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong")),
        )
        async with websocket(stub, "http://room/") as ws:
            await hibernate(stub)
            await clock.advance(5)
            ws.send("ping")
            assert await ws.receive() == "pong"
            assert rt.env.built == [1]
            stamp = await run_in_object(
                stub, lambda obj, ctx: ctx.get_web_socket_auto_response_timestamp(ctx.get_web_sockets()[0])
            )
            assert stamp.timestamp() == T0 + 5
            await run_in_object(stub, lambda obj, ctx: ctx.set_web_socket_auto_response())
            assert await run_in_object(stub, lambda obj, ctx: ctx.get_web_socket_auto_response()) is None

    async def test_size_limit(self, rt: durable.Runtime) -> None:
        """Request and response over 2,048 bytes raise workerd's RangeError (ValueError)."""

        def check(obj: Any, ctx: durable.State) -> None:
            ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("x" * 2048, "y" * 2048))
            with pytest.raises(
                ValueError, match="^Request cannot be larger than 2048 bytes. A request of size 2049 was provided.$"
            ):
                ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("x" * 2049, "y"))
            with pytest.raises(
                ValueError, match="^Response cannot be larger than 2048 bytes. A response of size 2050 was provided.$"
            ):
                ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("x", "é" * 1025))

        await run_in_object(room(rt), check)


class TestEventTimeout:
    async def test_limit_and_get(self, rt: durable.Runtime) -> None:
        """The timeout is read back; over 7 days raises workerd's message; 0 unsets."""

        def check(obj: Any, ctx: durable.State) -> None:
            assert ctx.get_hibernatable_web_socket_event_timeout() is None
            ctx.setHibernatableWebSocketEventTimeout(5000)
            assert ctx.getHibernatableWebSocketEventTimeout() == 5000
            with pytest.raises(ValueError, match="^Event timeout should not exceed 604800000 ms.$"):
                ctx.set_hibernatable_web_socket_event_timeout(604_800_001)
            ctx.set_hibernatable_web_socket_event_timeout(0)
            assert ctx.get_hibernatable_web_socket_event_timeout() is None

        await run_in_object(room(rt), check)

    async def test_timeout_resets(
        self, rt: durable.Runtime, clock: MockClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A handler running past the event timeout resets the object; its socket stays connected.

        workerd (miniflare 4, 2026-04-07): the socket stays open and its next message is handled.
        """
        stub = room(rt)
        await run_in_object(stub, lambda obj, ctx: ctx.set_hibernatable_web_socket_event_timeout(1000))
        async with websocket(stub, "http://room/") as ws:
            ws.send("slow")
            await settle()
            with caplog.at_level(logging.ERROR, logger="durable"):
                await clock.advance(1)
            ws.send("after")
            assert await ws.receive() == "echo:after"
            assert rt.env.built == [1, 1]  # a fresh instance handled it
        assert "exceeded its timeout" in caplog.text


class TestHibernation:
    async def test_workerd_hibernation_steps(self, rt: durable.Runtime, clock: MockClock) -> None:
        """workerd server-test "Durable Objects websocket hibernation", on a MockClock instead of 10 s."""
        stub = room(rt)
        async with websocket(stub, "http://room/?a") as ws:
            ws.send("hi")
            assert await ws.receive() == "echo:hi"
            await clock.advance(10)  # hibernates
            rt.env.built.clear()
            resp = await stub.fetch("http://room/")  # an HTTP request wakes it
            assert await resp.text() == "sockets=1"
            assert rt.env.built == [1]  # the constructor ran again
            await clock.advance(10)
            ws.send("attachment")  # a message wakes it; the attachment is intact
            assert await ws.receive() == "{'tags': ['a']}"
            assert rt.env.built == [1, 1]
            ws.send("abort")  # abort disconnects
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == 1006

    async def test_constructor_throws_after_send(self, rt: durable.Runtime, caplog: pytest.LogCaptureFixture) -> None:
        """A constructor re-run on wake that sends and then throws: the connection ends, nothing is delivered (workerd server-test)."""
        stub = rt.namespace(Fragile).get_by_name("f")
        async with websocket(stub, "http://f/") as ws:
            await hibernate(stub)
            rt.env.log.append("explode")
            with caplog.at_level(logging.CRITICAL, logger="durable"):
                ws.send("wake up")
                with pytest.raises(durable.WebSocketClosed) as info:
                    await ws.receive()
            assert info.value.code == 1006

    async def test_reading_creates_nothing(self, rt: durable.Runtime) -> None:
        """get_web_sockets() on an object that never accepted one returns [] and keeps no registry."""
        stub = room(rt)
        assert await run_in_object(stub, lambda obj, ctx: ctx.get_web_sockets()) == []
        assert rt.hibernation.registries == {}

    async def test_hibernate_now(self, rt: durable.Runtime) -> None:
        """testing.hibernate drops the instance; tags, sockets and attachments stay."""
        stub = room(rt)
        async with websocket(stub, "http://room/?x,y") as ws:
            await hibernate(stub)
            assert await run_in_object(stub, lambda obj, ctx: ctx.get_tags(ctx.get_web_sockets("x")[0])) == ["x", "y"]
            assert rt.env.built == [1, 1]
            ws.send("ok")
            assert await ws.receive() == "echo:ok"

    async def test_persisted_object_wakes_with_its_storage(self, clock: MockClock, tmp_path: Any) -> None:
        """A persisted object hibernates (its database closed) and wakes with its storage on the next message."""
        async with durable.Runtime(tmp_path, clock=clock, vars={"built": [], "log": []}) as rt:
            stub = room(rt)
            async with websocket(stub, "http://room/") as ws:
                ws.send("count")
                assert await ws.receive() == "1"
                await clock.advance(10)
                ws.send("count")
                assert await ws.receive() == "2"
                assert rt.env.built == [1, 1]

    async def test_sockets_survive_idle_eviction(self, clock: MockClock) -> None:
        """Idle eviction (idle_timeout) keeps hibernatable sockets; the next message reaches a fresh instance."""
        async with durable.Runtime(
            clock=clock, idle_timeout=20, hibernate_after=None, vars={"built": [], "log": []}
        ) as rt:
            stub = room(rt)
            async with websocket(stub, "http://room/?t") as ws:
                await clock.advance(21)
                assert rt.live_host(("Room", str(stub.id))) is None  # the runtime forgot the object
                ws.send("attachment")
                assert await ws.receive() == "{'tags': ['t']}"
                assert rt.env.built == [1, 1]

    async def test_auto_response_interleaved_with_sends(self, rt: durable.Runtime) -> None:
        """Auto-responses and the object's own sends reach the client in the order they were made."""
        stub = room(rt)
        await run_in_object(
            stub,
            lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong")),
        )
        async with websocket(stub, "http://room/") as ws:
            for i in range(3):
                ws.send(f"m{i}")
                ws.send("ping")
            assert [await ws.receive() for _ in range(6)] == ["echo:m0", "pong", "echo:m1", "pong", "echo:m2", "pong"]

    async def test_not_before_the_delay(self, rt: durable.Runtime, clock: MockClock) -> None:
        """Nothing hibernates before hibernate_after seconds idle."""
        async with websocket(room(rt), "http://room/") as ws:
            await clock.advance(9.5)
            ws.send("x")
            assert await ws.receive() == "echo:x"
            await clock.advance(9.5)
            assert rt.env.built == [1]

    async def test_off(self, clock: MockClock) -> None:
        """hibernate_after=None never hibernates."""
        async with durable.Runtime(clock=clock, hibernate_after=None, vars={"built": [], "log": []}) as rt:
            async with websocket(room(rt), "http://room/") as ws:
                await clock.advance(60)
                ws.send("x")
                assert await ws.receive() == "echo:x"
                assert rt.env.built == [1]

    async def test_bad_value(self) -> None:
        """A negative hibernate_after is refused."""
        with pytest.raises(ValueError, match="hibernate_after"):
            durable.Runtime(hibernate_after=-1)

    async def test_standard_socket_blocks(self, rt: durable.Runtime, clock: MockClock) -> None:
        """A socket accepted with accept() keeps the object from hibernating; evict closes it."""
        stub = room(rt)
        async with websocket(stub, "http://room/?standard") as ws:
            ws.send("m")
            assert await ws.receive() == "std:m"
            assert hibernation_blockers(stub) == ["standard websocket"]
            with pytest.raises(RuntimeError, match="cannot hibernate: standard websocket"):
                await hibernate(stub)
            await clock.advance(200)
            assert rt.env.built == [1]
            ws.send("n")  # still echoes after the wait (workerd server-test "Durable Objects websocket")
            assert await ws.receive() == "std:n"
            await durable.testing.evict(stub)
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == 1006

    async def test_reset_releases_standard_sockets(self, rt: durable.Runtime, clock: MockClock) -> None:
        """A reset disconnects accept() sockets and they stop pinning the object (idle eviction applies again)."""
        stub = room(rt)
        async with websocket(stub, "http://room/?standard") as ws:
            assert hibernation_blockers(stub) == ["standard websocket"]
            with pytest.raises(durable.ObjectResetError):
                await run_in_object(stub, lambda obj, ctx: ctx.abort("reset"))
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == 1006
            assert hibernation_blockers(stub) == []
        await room(rt).fetch("http://room/")  # (the stub that saw the reset is broken)
        await clock.advance(71)
        assert rt.live_host(("Room", str(stub.id))) is None

    async def test_task_blocks(self, rt: durable.Runtime, clock: MockClock) -> None:
        """A pending task the object created blocks hibernation; once cancelled it hibernates."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send("task")
            assert await ws.receive() == "started"
            assert hibernation_blockers(stub) == ["pending task created by the object"]
            await clock.advance(10)
            assert rt.env.built == [1]
            rt.env.tasks[0].cancel()
            await settle()
            assert hibernation_blockers(stub) == []
            await clock.advance(10)
            ws.send("x")
            assert await ws.receive() == "echo:x"
            assert rt.env.built == [1, 1]

    async def test_wait_until_blocks(self, rt: durable.Runtime) -> None:
        """Work passed to wait_until blocks hibernation."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send("wait_until")
            assert await ws.receive() == "waiting"
            assert hibernation_blockers(stub) == ["wait_until"]
            rt.env.gate.set()
            await settle()
            assert hibernation_blockers(stub) == []

    async def test_evict_close(self, rt: durable.Runtime) -> None:
        """evict(web_sockets="close") disconnects hibernatable sockets too."""
        stub = room(rt)
        async with websocket(stub, "http://room/") as ws:
            await durable.testing.evict(stub, web_sockets="close")
            with pytest.raises(durable.WebSocketClosed):
                await ws.receive()
        with pytest.raises(ValueError, match="hibernate"):
            await durable.testing.evict(stub, web_sockets="keep")

    async def test_refused_upgrade(self, rt: durable.Runtime) -> None:
        """testing.websocket raises WebSocketError when the object does not answer 101."""

        class Plain(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                return durable.Response("no", status=426)

        with pytest.raises(durable.WebSocketError, match="status 426"):
            async with websocket(rt.namespace(Plain).get_by_name("p"), "http://p/"):
                pass


class contextlib_stack:  # noqa: N801 - used like contextlib's helpers
    """Open n in-process sockets to one stub."""

    def __init__(self, stub: durable.Stub[Any], n: int) -> None:
        self.stub = stub
        self.n = n
        self.managers: list[Any] = []

    async def __aenter__(self) -> list[durable.WebSocket]:
        sockets = []
        for _ in range(self.n):
            manager = websocket(self.stub, "http://room/")
            self.managers.append(manager)
            sockets.append(await manager.__aenter__())
        return sockets

    async def __aexit__(self, *exc: Any) -> None:
        for manager in reversed(self.managers):
            await manager.__aexit__(None, None, None)


class TestPytestPlugin:
    async def test_fixtures(self, durable_runtime: durable.Runtime, mock_clock: MockClock) -> None:
        """The plugin's isolated runtime and mock clock drive WebSockets and hibernation."""
        stub = durable_runtime.namespace(Bare).get_by_name("b")
        async with websocket(stub, "http://bare/") as ws:
            await mock_clock.advance(10)
            assert hibernation_blockers(stub) == []
            ws.send("still connected")
            await settle()
            assert await run_in_object(stub, lambda obj, ctx: len(ctx.get_web_sockets())) == 1
