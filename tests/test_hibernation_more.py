"""Hibernation and its interplay with the rest: close handlers, auto-responses, timing, wake-ups.

Each behaviour is measured in workerd (miniflare 4, compatibility date 2026-04-07) where the test
says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock, hibernate, run_in_object, websocket

from helpers import settle

T0 = 1_700_000_000


class Chat(durable.DurableObject):
    """A chat room: broadcasts to every socket, the closing one included, when one leaves."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(len(ctx.get_web_sockets()))

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, ["chat"])
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "close":
            ws.close(4001, "me")
            return
        ws.send(f"echo:{message!s}")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        sent = []
        for other in self.ctx.get_web_sockets():
            try:
                other.send(f"left:{code}")
            except TypeError as exc:
                sent.append((other is ws, f"TypeError: {exc}"))
            else:
                sent.append((other is ws, "sent"))
        self.env.log.append(sent)


@pytest.fixture
def clock() -> MockClock:
    return MockClock(start=T0)


@pytest.fixture
async def rt(clock: MockClock) -> AsyncIterator[durable.Runtime]:
    runtime = durable.Runtime(clock=clock, vars={"built": [], "log": []})
    async with runtime:
        yield runtime


def chat(rt: durable.Runtime) -> durable.Stub[Any]:
    return rt.namespace(Chat).get_by_name("room")


class TestCloseHandler:
    @pytest.mark.parametrize("hibernated", [False, True])
    async def test_broadcast_reaches_the_closing_socket_without_error(
        self, rt: durable.Runtime, hibernated: bool
    ) -> None:
        """send() on the socket whose client closed, from web_socket_close, raises nothing.

        workerd (miniflare 4, 2026-04-07): in the handler that socket is listed by getWebSockets()
        and `ws.send()` on it returns normally (the broadcast goes on to the other sockets); on a
        socket the object itself closed, send() raises "Can't call WebSocket send() after close()".
        """
        stub = chat(rt)
        async with websocket(stub, "http://room/") as stays:
            async with websocket(stub, "http://room/"):
                if hibernated:
                    await hibernate(stub)
            assert await stays.receive() == "left:1000"
        # (the second entry is the close of `stays` itself, alone by then)
        assert rt.env.log[0] == [(True, "sent"), (False, "sent")]
        assert rt.env.log[1] == [(True, "sent")]

    async def test_send_from_a_message_handler_overtaken_by_the_close(self, rt: durable.Runtime) -> None:
        """A message handler that awaits while the client's close arrives may still send().

        workerd (miniflare 4, 2026-04-07), client `send("m"); close(4000)`, a handler awaiting a
        put and a timer: the close handler runs during the await; back in the message handler
        `ws.send("echo")` returns normally and `getWebSockets()` is empty.
        """

        class Late(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                self.ctx.accept_web_socket(server)
                return durable.Response(None, status=101, web_socket=client)

            async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
                await self.ctx.storage.put("k", 1)
                await self.env.go.wait()
                ws.send("echo")
                self.env.log.append(("sent", len(self.ctx.get_web_sockets())))

            async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, clean: bool) -> None:
                self.env.log.append(("close", code))
                self.env.closed.set()

        async with durable.Runtime(vars={"log": [], "closed": asyncio.Event(), "go": asyncio.Event()}) as rt2:
            async with websocket(rt2.namespace(Late).get_by_name("l"), "http://l/") as ws:
                ws.send("m")
                ws.close(4000, "bye")
                await asyncio.wait_for(rt2.env.closed.wait(), 5)
                await settle()
                rt2.env.go.set()
                await settle()
            assert rt2.env.log == [("close", 4000), ("sent", 0)]

    async def test_send_after_own_close_still_raises(self, rt: durable.Runtime) -> None:
        """The object closed the socket itself: send() in its close handler raises, as workerd's."""
        stub = chat(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send("close")
            with pytest.raises(durable.WebSocketClosed):
                await ws.receive()
            await settle()
        assert rt.env.log == [[(True, "TypeError: Can't call WebSocket send() after close().")]]


class Slow(durable.DurableObject):
    """Its handler sleeps on "slow"; counts constructions in env.built."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(len(ctx.get_web_sockets()))

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        if request.url.endswith("/standard"):
            server.accept()
        else:
            self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "slow":
            ws.send("started")
            await asyncio.sleep(3600)
            ws.send("never")
        ws.send(f"echo:{message!s}")

    async def slow_call(self) -> str:
        await asyncio.sleep(3600)
        return "never"


class TestEventTimeout:
    async def test_sockets_stay_connected(
        self, rt: durable.Runtime, clock: MockClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An event over the timeout stops the handler and resets the object; hibernatable sockets stay.

        workerd (miniflare 4, 2026-04-07), timeout 500 ms, a handler awaiting 3 s: the handler's
        continuation never runs, neither the socket whose handler ran too long nor another socket
        of the object is closed, and both still get their messages handled. (workerd's
        `eventTimeoutPromise` shuts the actor down but not its hibernation manager.) Sockets
        accepted with accept() belonged to the instance and are disconnected; calls in progress
        fail with workerd's message.
        """
        stub = rt.namespace(Slow).get_by_name("s")
        await run_in_object(stub, lambda obj, ctx: ctx.set_hibernatable_web_socket_event_timeout(500))
        async with (
            websocket(stub, "http://s/") as other,
            websocket(stub, "http://s/") as slow,
            websocket(stub, "http://s/standard") as standard,
        ):
            call = asyncio.ensure_future(stub.slow_call())
            slow.send("slow")
            assert await slow.receive() == "started"
            with caplog.at_level(logging.CRITICAL, logger="durable"):
                await clock.advance(0.5)
                with pytest.raises(durable.ObjectResetError) as reset:
                    await call
            # workerd (miniflare 4, 2026-04-07) gives a caller `Error: Actor exceeded event execution
            # time and was disconnected.` with retryable true: its "broken.dropped; jsg.Error: "
            # prefix is workerd's internal tunneling, stripped before JavaScript sees the error
            # (and "broken." is what sets durableObjectReset).
            assert str(reset.value) == "Actor exceeded event execution time and was disconnected."
            assert (reset.value.retryable, reset.value.durable_object_reset) == (True, True)
            with pytest.raises(durable.WebSocketClosed) as info:
                await standard.receive()
            assert info.value.code == 1006
            slow.send("a")
            assert await slow.receive() == "echo:a"
            other.send("b")
            assert await other.receive() == "echo:b"
            assert rt.env.built == [0, 2]  # the second instance found both sockets


class Tasks(durable.DurableObject):
    """Starts a task of its own on "task" (it waits for env.release)."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(len(ctx.get_web_sockets()))

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "task":
            self.env.tasks.append(asyncio.get_running_loop().create_task(self.env.release.wait()))
        elif message == "wait_until":
            self.ctx.wait_until(self.env.release.wait())
        ws.send("ok")


class TestHibernateAfter:
    @pytest.mark.parametrize("blocker", ["task", "wait_until"])
    async def test_idle_time_counts_from_the_end_of_a_blocker(self, clock: MockClock, blocker: str) -> None:
        """An object blocked by a pending task (or wait_until work) hibernates hibernate_after
        seconds after it ends, not at the next check after it ended (the contract: "drops its
        instance after that long idle"; workerd arms its 10 s timer when the actor becomes idle)."""
        release = asyncio.Event()
        async with durable.Runtime(clock=clock, vars={"built": [], "tasks": [], "release": release}) as rt:
            stub = rt.namespace(Tasks).get_by_name("t")
            async with websocket(stub, "http://t/") as ws:
                ws.send(blocker)
                assert await ws.receive() == "ok"
                await clock.advance(15)
                assert rt.env.built == [0]  # still the first instance
                release.set()
                await settle()
                await clock.advance(9.9)
                ws_count = await run_in_object(stub, lambda obj, ctx: len(ctx.get_web_sockets()))
                assert (ws_count, rt.env.built) == (1, [0])  # not hibernated yet
                await clock.advance(9.9)  # (the call above was activity: 10 s from it)
                assert rt.env.built == [0]
                await clock.advance(0.2)
                ws.send("x")
                assert await ws.receive() == "ok"
                assert rt.env.built == [0, 1]


class Lobby(durable.DurableObject):
    """Logs what each fresh instance sees of its sockets, in env.log."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.built.append(len(ctx.get_web_sockets()))

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, ["a", "b"])
        server.serialize_attachment({"n": 1})
        return durable.Response(None, status=101, web_socket=client)

    def seen(self, ws: durable.WebSocket) -> tuple[Any, ...]:
        return (self.ctx.get_tags(ws), ws.deserialize_attachment(), len(self.ctx.get_web_sockets("a")))

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(("message", message, *self.seen(ws)))
        if message == "alarm":
            await self.ctx.storage.set_alarm(self.ctx.now_ms() + 12_000)
        ws.send(f"echo:{message!s}")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        seen = self.seen(ws)
        ws.serialize_attachment({"n": 2})  # allowed after the close, as in workerd
        self.env.log.append(("close", code, reason, was_clean, *seen, ws.deserialize_attachment()))

    async def alarm(self, info: Any = None) -> None:
        self.env.log.append(("alarm", *self.seen(self.ctx.get_web_sockets()[0])))

    async def sockets(self) -> int:
        return len(self.ctx.get_web_sockets("b"))


class TestWakeUps:
    async def test_each_wake_up_as_in_workerd(self, rt: durable.Runtime, clock: MockClock) -> None:
        """What wakes a hibernated object, and what the fresh instance sees.

        workerd (miniflare 4, 2026-04-07, 12 s idle between steps): a message, an RPC call, an
        alarm and the client's close each construct a fresh instance that finds the socket with
        its tags and attachment; an auto-response answers without constructing one; a pending
        alarm does not keep the object from hibernating; the close handler may still
        serialize an attachment; once it has run the socket is gone.
        """
        stub = rt.namespace(Lobby).get_by_name("l")
        async with websocket(stub, "http://l/") as ws:
            ws.send("hi")
            assert await ws.receive() == "echo:hi"
            await clock.advance(12)
            ws.send("hi2")
            assert await ws.receive() == "echo:hi2"
            assert rt.env.built == [0, 1]
            assert rt.env.log[-1] == ("message", "hi2", ["a", "b"], {"n": 1}, 1)
            await run_in_object(
                stub, lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("p", "q"))
            )
            await clock.advance(12)
            ws.send("p")
            assert await ws.receive() == "q"
            assert rt.env.built == [0, 1]  # not woken
            assert await stub.sockets() == 1  # an RPC call wakes it
            assert rt.env.built == [0, 1, 1]
            ws.send("alarm")
            assert await ws.receive() == "echo:alarm"
            await clock.advance(13)  # hibernates at 10 s, then the alarm wakes it
            assert rt.env.built == [0, 1, 1, 1]
            assert rt.env.log[-1] == ("alarm", ["a", "b"], {"n": 1}, 1)
            await clock.advance(11)
            ws.close(4000, "bye")
            with pytest.raises(durable.WebSocketClosed):
                await ws.receive()
            await settle()
        assert rt.env.built == [0, 1, 1, 1, 1]
        assert rt.env.log[-1] == ("close", 4000, "bye", True, ["a", "b"], {"n": 1}, 1, {"n": 2})
        assert await stub.sockets() == 0


class TestRuntimeClose:
    async def test_hibernated_sockets_close_with_1001_and_do_not_come_back(
        self, clock: MockClock, tmp_path: Any
    ) -> None:
        """rt.aclose() closes a hibernated object's sockets with 1001 (no close handler runs); the
        runtime opened again on the same path has the storage but no sockets nor auto-response."""
        vars: dict[str, list[Any]] = {"built": [], "log": []}
        rt = durable.Runtime(tmp_path, clock=clock, vars=vars)
        stub = rt.namespace(Lobby).get_by_name("l")
        async with websocket(stub, "http://l/") as ws:
            await run_in_object(stub, lambda obj, ctx: ctx.storage.put("k", 1))
            await run_in_object(
                stub, lambda obj, ctx: ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("p", "q"))
            )
            await hibernate(stub)
            await rt.aclose()
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.was_clean) == (1001, True)
        assert vars["log"] == []
        async with durable.Runtime(tmp_path, clock=clock, vars=vars) as again:

            async def look(obj: Any, ctx: durable.State) -> tuple[Any, ...]:
                return (ctx.get_web_sockets(), ctx.get_web_socket_auto_response(), await ctx.storage.get("k"))

            assert await run_in_object(again.namespace(Lobby).get_by_name("l"), look) == ([], None, 1)


class Settings(durable.DurableObject):
    """Sets the auto-response and event timeout; reports them; aborts; closes every socket."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def setup(self) -> None:
        self.ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong"))
        self.ctx.set_hibernatable_web_socket_event_timeout(5000)

    async def info(self) -> tuple[Any, ...]:
        pair = self.ctx.get_web_socket_auto_response()
        return (
            len(self.ctx.get_web_sockets()),
            (pair.request, pair.response) if pair is not None else None,
            self.ctx.get_hibernatable_web_socket_event_timeout(),
        )

    async def abort(self) -> None:
        self.ctx.abort("bye")

    async def close_all(self) -> None:
        for ws in self.ctx.get_web_sockets():
            ws.close(4001, "srv")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.env.log.append((code, reason, was_clean, ws.ready_state, len(self.ctx.get_web_sockets())))


class TestResetForgetsSettings:
    async def test_abort_forgets_auto_response_and_event_timeout(self, rt: durable.Runtime) -> None:
        """A reset drops the object's Hibernation API settings with its sockets.

        workerd (miniflare 4, 2026-04-07): after `setWebSocketAutoResponse(ping/pong)`,
        `setHibernatableWebSocketEventTimeout(5000)` and `ctx.abort()`, the fresh instance reads
        `getWebSocketAutoResponse()` null and `getHibernatableWebSocketEventTimeout()` null, with
        no socket (the client saw 1006).
        """
        stub = rt.namespace(Settings).get_by_name("s")
        async with websocket(stub, "http://s/") as ws:
            await stub.setup()
            assert await stub.info() == (1, ("ping", "pong"), 5000)
            with pytest.raises(durable.ObjectResetError):
                await stub.abort()
            with pytest.raises(durable.WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == 1006
        assert await rt.namespace(Settings).get_by_name("s").info() == (0, None, None)


class TestCloseHandlersInTurn:
    async def test_a_socket_is_gone_once_its_close_handler_ran(self, rt: durable.Runtime) -> None:
        """The object closes both of its sockets; the clients' replies run the close handlers in
        turn, and the second no longer lists the first socket.

        workerd (miniflare 4, 2026-04-07): two sockets, `close(4001, "srv")` on each: the close
        handlers got (4001, "srv", true), readyState 3, and `getWebSockets().length` 2, then 1.
        """
        stub = rt.namespace(Settings).get_by_name("c")
        async with websocket(stub, "http://s/") as a, websocket(stub, "http://s/") as b:
            await stub.close_all()
            for ws in (a, b):
                with pytest.raises(durable.WebSocketClosed) as info:
                    await ws.receive()
                assert (info.value.code, info.value.reason) == (4001, "srv")
            await settle()
        assert rt.env.log == [(4001, "srv", True, 3, 2), (4001, "srv", True, 3, 1)]
        assert (await stub.info())[0] == 0
