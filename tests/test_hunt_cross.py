"""Where features meet: point-in-time restores, WebSockets (hibernatable and ``accept()``ed),
alarms, hibernation, eviction and resets.

workerd's local back-end implements no restore (``onNextSessionRestoreBookmark`` throws "This
Durable Object's storage back-end does not implement point-in-time recovery.", also inside a
``webSocketMessage`` handler, where the object is not reset and the socket stays open), so the
restore itself follows docs/recovery.md: it happens at the object's next start, before the
constructor runs. What surrounds it was measured in workerd (miniflare 4.20260426, compatibility
date 2026-04-07, SQLite-backed classes, probes with node clients and with sockets between two
objects), and each test below names what workerd did:

- ``ctx.abort()`` and a ``blockConcurrencyWhile()`` callback that throws disconnect every socket of
  the object, hibernatable or ``accept()``ed: the client gets a 1006 close, no ``webSocketClose``
  handler and no ``"close"`` listener runs in either instance, and the next instance's
  ``getWebSockets()`` is empty; a socket the object opened to another object is dropped too (that
  object's handler gets ``(1006, "WebSocket disconnected without sending Close frame.", false)``);
- a message the client sent while a ``blockConcurrencyWhile()`` callback held the object, which
  then called ``abort()``, is delivered to neither instance;
- ``abort()`` in an ``alarm()`` handler disconnects the sockets too; the retry (``retryCount`` 1)
  runs in a new instance with no socket, and a write the handler awaited just before ``abort()``
  is lost;
- ``getCurrentBookmark()`` works inside ``webSocketMessage``.

Sockets kept through a hibernation live outside storage (in workerd's hibernation manager), so a
restore applied when a hibernated object wakes leaves them, their tags and their attachments as
they were: the woken instance reads the restored storage with the same sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from differential.alarm_ops import AlarmFuzz, Sequence, first_difference, run_durable
from differential.runner import Workerd, started_or_skipped
from differential.ws_ops import Generator
from differential.ws_runner import DurableWs, differences, run_in_workerd

import durable
from durable.testing import MockClock, evict, fail_next_commit, hibernate, websocket

T0 = 1_700_000_000
LOST = (1006, "WebSocket disconnected without sending Close frame.", False)


class Room(durable.DurableObject):
    """Accepts sockets (``/std`` with ``accept()``, else hibernatable with a tag and an
    attachment); restores on request; logs its events to ``env.log``."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        sockets = ctx.get_web_sockets()
        env.log.append(("ctor", [(ctx.get_tags(ws), ws.deserialize_attachment()) for ws in sockets]))

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        if request.url.endswith("/std"):
            server.accept()
            server.add_event_listener("message", lambda event: self.env.log.append(("std-message", event.data)))
            server.add_event_listener("close", lambda event: self.env.log.append(("std-close", event.code)))
        else:
            self.ctx.accept_web_socket(server, ["room"])
            server.serialize_attachment({"seat": 1})
        return durable.Response(None, status=101, web_socket=client)

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str, abort: bool = True) -> str:
        undo = await self.ctx.storage.on_next_session_restore_bookmark(bookmark)
        if abort:
            self.ctx.abort("restoring")
        return undo

    async def sockets(self) -> list[Any]:
        return [(self.ctx.get_tags(ws), ws.deserialize_attachment()) for ws in self.ctx.get_web_sockets()]

    async def hold_then_restore(self, bookmark: str) -> None:
        """Holds the object in block_concurrency_while() until ``env.go``, then restores."""

        async def hold() -> None:
            self.env.log.append(("held",))
            await self.env.go.wait()

        await self.ctx.block_concurrency_while(hold)
        await self.restore(bookmark)

    async def fail_in_bcw(self) -> None:
        async def boom() -> None:
            raise ValueError("bcw boom")

        await self.ctx.block_concurrency_while(boom)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        self.env.log.append(("message", message, await self.ctx.storage.get("k"), ws.deserialize_attachment()))
        if message == "reseat":
            ws.serialize_attachment({"seat": 2})
        elif message == "bookmark":
            await self.ctx.storage.put("k", "in handler")
            pending = self.ctx.storage.get_current_bookmark()
            self.ctx.storage.put("k", "same batch")
            ws.send(await pending)
            return
        elif isinstance(message, str) and message.startswith("restore:"):
            await self.restore(message.removeprefix("restore:"))
        ws.send(f"echo:{message!s}")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.env.log.append(("close", code))


class Caller(durable.DurableObject):
    """Opens a socket to a Room and keeps it; can abort itself."""

    async def link(self, name: str) -> None:
        response = await self.env.ROOM.get_by_name(name).fetch("http://room/", headers={"Upgrade": "websocket"})
        ws = response.web_socket
        assert ws is not None
        ws.accept()
        ws.send("hello")
        self.ws = ws

    async def abort(self) -> None:
        self.ctx.abort("restoring")


class Timer(durable.DurableObject):
    """An alarm whose handler does what ``mode`` says; logs to ``env.log``."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        env.log.append("ctor")

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def arm(self, at_ms: int, mode: str | None = None) -> None:
        if mode is not None:
            await self.ctx.storage.put("mode", mode)
        await self.ctx.storage.set_alarm(at_ms)

    async def get_alarm(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str, abort: bool = True) -> None:
        await self.ctx.storage.on_next_session_restore_bookmark(bookmark)
        if abort:
            self.ctx.abort("restoring")

    async def alarm(self, info: durable.AlarmInfo) -> None:
        mode = await self.ctx.storage.get("mode")
        self.env.log.append(("alarm", mode, info.retry_count, len(self.ctx.get_web_sockets())))
        self.env.names.append(self.ctx.id.name)
        if mode == "abort":
            await self.ctx.storage.put("mode", "done")  # awaited, and lost all the same
            self.ctx.abort("alarm abort")
        elif mode == "fail":
            raise RuntimeError("alarm failed")
        elif mode == "bookmark":
            await self.ctx.storage.put("mode", await self.ctx.storage.get_current_bookmark())
        elif mode == "wait":
            await self.env.go.wait()
        elif isinstance(mode, str) and mode.startswith("restore:"):
            await self.restore(mode.removeprefix("restore:"))


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    env = {"log": [], "go": asyncio.Event(), "names": []}
    async with durable.Runtime(clock=MockClock(start=T0), point_in_time_recovery=True, vars=env) as runtime:
        runtime.namespace(Room, name="ROOM")
        yield runtime


async def until(condition: Callable[[], bool]) -> None:
    """Returns once ``condition()`` holds (polled; fails after 5 s of real time)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


def mock(rt: durable.Runtime) -> MockClock:
    clock = rt.clock
    assert isinstance(clock, MockClock)
    return clock


async def closed(ws: durable.WebSocket) -> tuple[Any, ...]:
    """Reads ``ws`` to its end: what it received, then ``(code, reason, was_clean)``."""
    got: list[Any] = []
    try:
        while True:
            got.append(await asyncio.wait_for(ws.receive(), 5))
    except durable.WebSocketClosed as exc:
        return (*got, (exc.code, exc.reason, exc.was_clean))


async def two_states(rt: durable.Runtime, name: str = "room") -> tuple[durable.Stub[Room], str]:
    """An object with ``k`` 1 at the bookmark returned and 2 now."""
    stub = rt.namespace(Room).get_by_name(name)
    await stub.put("k", 1)
    bookmark = await stub.bookmark()
    await stub.put("k", 2)
    return stub, bookmark


class TestRestoreWithSockets:
    @pytest.mark.parametrize("path", ["/", "/std"])
    async def test_restore_and_abort_drops_every_socket(self, rt: durable.Runtime, path: str) -> None:
        """workerd: abort() with a hibernatable or an accept()ed socket: the client got a 1006
        close, no webSocketClose handler or "close" listener ran, and the next instance's
        getWebSockets() was empty."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, f"http://room{path}") as ws:
            with pytest.raises(durable.ObjectResetError, match="restoring"):
                await stub.restore(bookmark)
            assert await closed(ws) == (LOST,)
        stub = rt.namespace(Room).get_by_name("room")
        assert await stub.get("k") == 1
        assert await stub.sockets() == []
        assert not [e for e in rt.env.log if e[0] in ("close", "std-close")]
        assert [e for e in rt.env.log if e[0] == "ctor"] == [("ctor", []), ("ctor", [])]

    async def test_restore_from_a_message_handler(self, rt: durable.Runtime) -> None:
        """A restore asked for and forced (abort) in web_socket_message: the socket is dropped as
        by any abort there, and the next instance has the bookmark's data and no socket."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send(f"restore:{bookmark}")
            assert await closed(ws) == (LOST,)
        stub = rt.namespace(Room).get_by_name("room")
        assert (await stub.get("k"), await stub.sockets()) == (1, [])

    async def test_a_hibernated_object_wakes_restored_with_its_sockets(self, rt: durable.Runtime) -> None:
        """Without abort(), the restore waits for the next start: here the wake after a
        hibernation. The sockets, their tags and their attachments live outside storage (workerd's
        hibernation manager), so they are as the last instance left them; the storage is the
        bookmark's, in the constructor and in the handler of the message that woke it."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send("reseat")  # the attachment changes after the bookmark: it stays changed
            assert await ws.receive() == "echo:reseat"
            await stub.restore(bookmark, abort=False)
            await stub.put("k", 3)  # in the session the restore undoes
            await hibernate(stub)
            ws.send("after")
            assert await ws.receive() == "echo:after"
            assert await stub.sockets() == [(["room"], {"seat": 2})]
        assert rt.env.log[-4:] == [
            ("message", "reseat", 2, {"seat": 1}),
            ("ctor", [(["room"], {"seat": 2})]),
            ("message", "after", 1, {"seat": 2}),
            ("close", 1000),
        ]
        assert await stub.get("k") == 1

    async def test_the_undo_bookmark_of_a_restore_applied_at_a_wake(self, rt: durable.Runtime) -> None:
        """The undo bookmark names the state the hibernated session ended with, writes after the
        request included; restoring it from a handler brings it back."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            undo = await stub.restore(bookmark, abort=False)
            await stub.put("k", 3)
            await hibernate(stub)
            ws.send("wake")
            assert await ws.receive() == "echo:wake"
            assert await stub.get("k") == 1
            ws.send(f"restore:{undo}")
            assert await closed(ws) == (LOST,)
        assert await rt.namespace(Room).get_by_name("room").get("k") == 3

    async def test_a_woken_object_that_restores_and_aborts_drops_hibernated_sockets(self, rt: durable.Runtime) -> None:
        """workerd: abort() on an object woken from hibernation disconnects even its hibernated
        sockets (its server test "Durable Objects websocket hibernation")."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            await hibernate(stub)
            with pytest.raises(durable.ObjectResetError):
                await stub.restore(bookmark)
            assert await closed(ws) == (LOST,)
        stub = rt.namespace(Room).get_by_name("room")
        assert (await stub.get("k"), await stub.sockets()) == (1, [])

    async def test_a_message_held_behind_block_concurrency_while_is_dropped(self, rt: durable.Runtime) -> None:
        """workerd: a message sent while a blockConcurrencyWhile() callback held the object,
        which then called abort(), reached neither instance; the client got a 1006 close."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            call = asyncio.ensure_future(stub.hold_then_restore(bookmark))
            await until(lambda: ("held",) in rt.env.log)
            ws.send("held")
            for _ in range(20):
                await asyncio.sleep(0)  # (the message reaches the object's gate)
            rt.env.go.set()
            with pytest.raises(durable.ObjectResetError):
                await call
            assert await closed(ws) == (LOST,)
        assert not [e for e in rt.env.log if e[0] == "message"]
        assert await rt.namespace(Room).get_by_name("room").get("k") == 1

    async def test_a_socket_to_another_object_is_dropped(self, rt: durable.Runtime) -> None:
        """workerd: an object that opened a socket to another object and then aborted: the other
        object's webSocketClose got (1006, "WebSocket disconnected without sending Close
        frame.", false) and its getWebSockets() was empty."""
        caller = rt.namespace(Caller).get_by_name("caller")
        await caller.link("far")
        for _ in range(20):
            await asyncio.sleep(0)
        with pytest.raises(durable.ObjectResetError):
            await caller.abort()
        await until(lambda: ("close", 1006) in rt.env.log)
        assert await rt.namespace(Room).get_by_name("far").sockets() == []

    @pytest.mark.parametrize("how", ["block_concurrency_while", "failed commit", "evict"])
    async def test_other_restarts_apply_a_pending_restore(self, rt: durable.Runtime, how: str) -> None:
        """workerd: a blockConcurrencyWhile() callback that throws resets the object and drops
        every socket (1006), as abort() does; a failed commit resets it too (docs/concurrency.md),
        and eviction with web_sockets="close" drops the sockets. Each starts a new session, which
        applies the restore asked for."""
        stub, bookmark = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            await stub.restore(bookmark, abort=False)
            if how == "block_concurrency_while":
                with pytest.raises(ValueError, match="bcw boom"):
                    await stub.fail_in_bcw()
            elif how == "failed commit":
                fail_next_commit(stub)
                with pytest.raises(durable.ObjectResetError):
                    await stub.put("k", 3)
            else:
                await evict(stub, web_sockets="close")
            assert (await closed(ws))[-1][0] == 1006
        stub = rt.namespace(Room).get_by_name("room")
        assert (await stub.get("k"), await stub.sockets()) == (1, [])

    async def test_runtime_reset_drops_a_pending_restore(self, rt: durable.Runtime) -> None:
        """Runtime.reset() wipes the data with the history: the restore asked for goes with it."""
        stub, bookmark = await two_states(rt)
        await stub.restore(bookmark, abort=False)
        await rt.reset()
        stub = rt.namespace(Room).get_by_name("room")
        assert await stub.get("k") is None
        await stub.put("k", 5)
        await evict(stub)
        assert await rt.namespace(Room).get_by_name("room").get("k") == 5

    async def test_a_bookmark_taken_in_a_message_handler(self, rt: durable.Runtime) -> None:
        """workerd answers getCurrentBookmark() inside webSocketMessage. The bookmark includes the
        writes of the handler's batch, one made after the call included (docs/recovery.md)."""
        stub, _ = await two_states(rt)
        async with websocket(stub, "http://room/") as ws:
            ws.send("bookmark")
            bookmark = await ws.receive()
            assert isinstance(bookmark, str)
            await stub.put("k", "later")
            with pytest.raises(durable.ObjectResetError):
                await stub.restore(bookmark)
        assert await rt.namespace(Room).get_by_name("room").get("k") == "same batch"


class TestRestoreWithAlarms:
    async def test_abort_in_an_alarm_drops_the_sockets(self, rt: durable.Runtime) -> None:
        """workerd: abort() in alarm() with a hibernatable socket connected: the client got a 1006
        close; the retry (retryCount 1) ran in a new instance with no socket and read the mode the
        handler had overwritten (an awaited put() before abort() is lost)."""
        stub = rt.namespace(Timer).get_by_name("timer")
        async with websocket(stub, "http://timer/") as ws:
            await stub.arm(T0 * 1000 + 50, "abort")
            await mock(rt).advance(3)
            assert await closed(ws) == (LOST,)
        assert [e for e in rt.env.log if e != "ctor"][:2] == [("alarm", "abort", 0, 1), ("alarm", "abort", 1, 0)]

    async def test_a_restore_while_the_alarm_runs_follows_the_bookmark(self, rt: durable.Runtime) -> None:
        """A restore forced (abort) while the handler waits: the attempt fails (abort() by another
        event fails it, as in workerd), and the retry finds the bookmark's storage, which holds no
        alarm: the object is woken and no handler runs (as for an alarm deleted before its
        retry, docs/alarms.md)."""
        stub = rt.namespace(Timer).get_by_name("timer")
        bookmark = await stub.bookmark()
        await stub.arm(T0 * 1000 + 50, "wait")
        advance = asyncio.ensure_future(mock(rt).advance(300))
        await until(lambda: ("alarm", "wait", 0, 0) in rt.env.log)
        with pytest.raises(durable.ObjectResetError):
            await stub.restore(bookmark)
        rt.env.go.set()
        await advance
        stub = rt.namespace(Timer).get_by_name("timer")
        assert (await stub.get_alarm(), await stub.get("mode")) == (None, None)
        assert [e for e in rt.env.log if e != "ctor"] == [("alarm", "wait", 0, 0)]

    async def test_a_restore_asked_for_in_the_handler_runs_in_its_retry(self, rt: durable.Runtime) -> None:
        """alarm() restores a state that has its alarm and aborts: the attempt fails (abort() in
        the handler is retried, as in workerd), and the retry, retry_count 1, runs on the restored
        storage."""
        stub = rt.namespace(Timer).get_by_name("timer")
        await stub.arm(T0 * 1000 + 5_000)
        bookmark = await stub.bookmark()
        await stub.arm(T0 * 1000 + 5_000, f"restore:{bookmark}")
        await mock(rt).advance(10)
        log = [e for e in rt.env.log if e != "ctor"]
        assert log == [("alarm", f"restore:{bookmark}", 0, 0), ("alarm", None, 1, 0)]
        stub = rt.namespace(Timer).get_by_name("timer")
        assert (await stub.get_alarm(), await stub.get("mode")) == (None, None)

    async def test_a_restore_to_before_the_first_write_keeps_the_name(self, rt: durable.Runtime) -> None:
        """The bookmark of an object never written names the empty state; restored to it, the
        object still knows its name (``ctx.id.name``) when its alarm wakes it after an eviction."""
        stub = rt.namespace(Timer).get_by_name("timer")
        empty = await stub.bookmark()
        await stub.arm(T0 * 1000 + 5_000, "named")
        with pytest.raises(durable.ObjectResetError):
            await stub.restore(empty)
        stub = rt.namespace(Timer).get_by_name("timer")
        assert (await stub.get("mode"), await stub.get_alarm()) == (None, None)
        await stub.arm(T0 * 1000 + 5_000)
        await evict(stub)
        await mock(rt).advance(10)
        assert rt.env.log[-1] == ("alarm", None, 0, 0)
        assert rt.env.names[-1] == "timer"

    async def test_a_restore_while_a_retry_waits_runs_the_bookmarks_alarm(self, rt: durable.Runtime) -> None:
        """The alarm failed and waits for its retry (2 s later); a restore to a state whose alarm is
        later replaces it: no handler at the retry's time, the bookmark's alarm at its own time,
        as attempt 0 (as a set_alarm() to a later time does, measured in workerd, docs/alarms.md)."""
        stub = rt.namespace(Timer).get_by_name("timer")
        await stub.arm(T0 * 1000 + 100_000)
        bookmark = await stub.bookmark()
        await stub.arm(T0 * 1000 + 5_000, "fail")
        await mock(rt).advance(6)
        assert await stub.get_alarm() == T0 * 1000 + 5_000  # (kept until the retry)
        with pytest.raises(durable.ObjectResetError):
            await stub.restore(bookmark)
        assert await rt.namespace(Timer).get_by_name("timer").get_alarm() == T0 * 1000 + 100_000
        await mock(rt).advance(10)
        assert [e for e in rt.env.log if e != "ctor"] == [("alarm", "fail", 0, 0)]
        await mock(rt).advance(100)
        assert [e for e in rt.env.log if e != "ctor"] == [("alarm", "fail", 0, 0), ("alarm", None, 0, 0)]

    async def test_an_alarm_that_wakes_a_restoring_object_follows_the_restored_alarm(self, rt: durable.Runtime) -> None:
        """An evicted object with a restore pending, woken by its alarm: the restore runs first and
        moves the alarm later, so that handler is cancelled and the alarm runs at its new time, as
        when a constructor moves it (measured in workerd, docs/alarms.md)."""
        stub = rt.namespace(Timer).get_by_name("timer")
        await stub.arm(T0 * 1000 + 100_000)
        bookmark = await stub.bookmark()
        await stub.arm(T0 * 1000 + 5_000)
        await stub.restore(bookmark, abort=False)
        await evict(stub)
        await mock(rt).advance(10)
        assert [e for e in rt.env.log if e != "ctor"] == []
        assert await stub.get_alarm() == T0 * 1000 + 100_000
        await mock(rt).advance(100)
        assert [e for e in rt.env.log if e != "ctor"] == [("alarm", None, 0, 0)]

    async def test_a_bookmark_taken_in_the_handler_holds_the_alarm(self, rt: durable.Runtime) -> None:
        """The alarm is cleared when its handler returns, so a bookmark taken inside the handler
        names a state that still has it: restoring that state runs the alarm again."""
        stub = rt.namespace(Timer).get_by_name("timer")
        await stub.arm(T0 * 1000 + 5_000, "bookmark")
        await mock(rt).advance(6)
        bookmark = await stub.get("mode")
        assert await stub.get_alarm() is None
        with pytest.raises(durable.ObjectResetError):
            await stub.restore(bookmark)
        stub = rt.namespace(Timer).get_by_name("timer")
        assert await stub.get_alarm() == T0 * 1000 + 5_000
        await mock(rt).advance(1)
        assert [e for e in rt.env.log if e != "ctor"] == [("alarm", "bookmark", 0, 0)] * 2


@pytest.fixture(scope="module")
def workerd() -> Iterator[Workerd]:
    yield from started_or_skipped("ws")


@pytest.fixture(scope="module")
def workerd_alarms() -> Iterator[Workerd]:
    yield from started_or_skipped("alarm")


class TestResetsAgainstWorkerd:
    async def test_random_sequences_with_resets(self, workerd: Workerd) -> None:
        """Random WebSocket sequences whose calls and commands also write and read ctx.storage.kv
        and reset the object (abort), run in workerd and in durable: every result, message,
        close and handler event alike, after the normalizing of the WebSocket differential
        (``ws_runner.normalize``: a client whose connection a reset dropped is CLOSING there)."""
        async with durable.Runtime() as runtime:
            side = DurableWs(runtime)
            gen = Generator(3, resets=True)
            found = []
            for number in range(6):
                sequence = gen.sequence()
                diff = differences(sequence, run_in_workerd(workerd, sequence), await side.run(sequence))
                if diff:
                    found.append(f"sequence {number}: " + "\n".join(diff))
        assert not found, "\n".join(found)


ABORTED_ALARM: Sequence = {
    # The handler writes and then resets the object while a call sleeps: the call fails with the
    # reset, the write is lost, and the next call and the retry (retryCount 1, 2 s later) reach a
    # new instance, which reads nothing.
    "steps": [
        {"rpc": [{"op": "set", "d": 20, "id": "s1"}, {"op": "sleep", "ms": 400}, {"op": "put", "k": "b", "v": 1}]},
        {"wait": 250},
        {"rpc": [{"op": "read", "k": "a"}, {"op": "read", "k": "b"}, {"op": "get"}]},
    ],
    "handlers": [[{"op": "put", "k": "a", "v": 11}, {"op": "abort"}], [{"op": "read", "k": "a"}, {"op": "get"}]],
}


class TestAlarmResetsAgainstWorkerd:
    async def test_a_handler_that_aborts(self, workerd_alarms: Workerd) -> None:
        """An alarm handler that calls ctx.abort() (alarm_ops.py; ``run_alarm.py --resets``, seeds 6
        and 8, 100 sequences of which 38 abort, agree too): the call it interrupts, the log of every
        op, retryCount/isRetry, the final alarm and storage alike in workerd and in durable. Takes
        ~2.5 s: the retry comes 2 s later on the real clock, as in workerd."""
        async with durable.Runtime() as runtime:  # the real clock, as workerd's
            namespace = runtime.namespace(AlarmFuzz, storage="sqlite")
            expected, got = await asyncio.gather(
                asyncio.to_thread(workerd_alarms.request, {"object": "hunt-cross", **ABORTED_ALARM}),
                run_durable(namespace, "hunt-cross", ABORTED_ALARM),
            )
        assert expected["quiet"], expected
        assert expected["returned"][0] == {"failed": "alarm abort"}, expected
        assert first_difference(expected, got) is None, first_difference(expected, got)
