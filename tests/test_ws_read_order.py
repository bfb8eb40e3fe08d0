"""The order in which hibernatable sockets' frames are read, measured against workerd.

workerd (miniflare 4.20260426, compatibility date 2026-04-20) runs one read loop per hibernatable
socket, which reads the next frame only once the event of the previous one has started, and takes
a few turns of its event loop between two frames: frames that reach several sockets at once are
read one of each socket at a time, every run (probes: a Worker sending on two or three sockets of
one object with no wait, the object logging each handler's start; 10 runs each, same order).
"""

from __future__ import annotations

import asyncio
from typing import Any

import durable
from durable.testing import websocket

ORDER: list[str] = []
STATES: list[tuple[str, int]] = []


class Room(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, [request.url.rsplit("/", 1)[1]])
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: Any) -> None:
        ORDER.append(f"{self.ctx.get_tags(ws)[0]}:{message}")
        STATES.append((message, ws.ready_state))
        if message.startswith("await"):
            await self.ctx.storage.put(message, 1)
        if message == "close me":
            ws.close(4000, "bye")

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        ORDER.append(f"{self.ctx.get_tags(ws)[0]}:close")


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_frames_of_two_sockets_sent_at_once_are_read_in_turn() -> None:
    """workerd: "a1", "a2", "a3" sent on one socket and then "b1", "b2", "b3" on another, with no
    wait between them, started the handlers a1, b1, a2, b2, a3, b3 (not in the order sent)."""
    ORDER.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Room).get_by_name("turns")
        async with websocket(stub, "http://o/s0") as s0, websocket(stub, "http://o/s1") as s1:
            for text in ("a1", "a2", "a3"):
                s0.send(text)
            for text in ("b1", "b2", "b3"):
                s1.send(text)
            await until(lambda: len(ORDER) == 6)
            assert ORDER == ["s0:a1", "s1:b1", "s0:a2", "s1:b2", "s0:a3", "s1:b3"]


async def test_three_sockets_take_turns_while_each_has_frames() -> None:
    """workerd: a1-a3 on s0, b1 on s1, c1-c2 on s2 (sent in that order at once): a1, b1, c1, a2,
    c2, a3; and with an awaited storage write in some handlers (b1, b2, a3), the same turns."""
    ORDER.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Room).get_by_name("three")
        async with (
            websocket(stub, "http://o/s0") as s0,
            websocket(stub, "http://o/s1") as s1,
            websocket(stub, "http://o/s2") as s2,
        ):
            for ws, text in ((s0, "a1"), (s0, "a2"), (s0, "a3"), (s1, "b1"), (s2, "c1"), (s2, "c2")):
                ws.send(text)
            await until(lambda: len(ORDER) == 6)
            assert ORDER == ["s0:a1", "s1:b1", "s2:c1", "s0:a2", "s2:c2", "s0:a3"]
            ORDER.clear()
            for ws, text in ((s0, "a1"), (s1, "await-b1"), (s0, "a2"), (s0, "await-a3"), (s1, "await-b2")):
                ws.send(text)
            await until(lambda: len(ORDER) == 5)
            assert ORDER == ["s0:a1", "s1:await-b1", "s0:a2", "s1:await-b2", "s0:await-a3"]


async def test_messages_read_before_the_answer_to_the_objects_close_see_closing() -> None:
    """workerd (run_ws.py 150 --seed 10042, sequence 94): the object closes the socket in the
    handler of the first message; the client's next messages and its own close(), sent at once,
    are read in order, so the handlers of those messages see CLOSING (2), not CLOSED: the
    client's Close is read after them."""
    ORDER.clear()
    STATES.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Room).get_by_name("closing")
        async with websocket(stub, "http://o/s0") as s0:
            for text in ("close me", "m2", "m3"):
                s0.send(text)
            s0.close(1000, "ok")
            await until(lambda: "s0:close" in ORDER)
        assert STATES == [("close me", 1), ("m2", 2), ("m3", 2)]


class Standard(durable.DurableObject):
    """Accepts each socket with ``accept()`` and logs its messages from a listener."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        name = request.url.rsplit("/", 1)[1]
        server.accept()
        server.add_event_listener("message", lambda e: ORDER.append(f"{name}:{e.data}"))
        return durable.Response(None, status=101, web_socket=client)


async def test_frames_of_two_standard_sockets_sent_at_once_are_read_in_turn() -> None:
    """workerd: on two sockets accepted with accept() in one object, "a1", "a2", "a3" on one and
    then "b1", "b2", "b3" on the other, sent with no wait, ran the listeners a1, b1, a2, b2, a3,
    b3, every run."""
    ORDER.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Standard).get_by_name("standard")
        async with websocket(stub, "http://o/s0") as s0, websocket(stub, "http://o/s1") as s1:
            for text in ("a1", "a2", "a3"):
                s0.send(text)
            for text in ("b1", "b2", "b3"):
                s1.send(text)
            await until(lambda: len(ORDER) == 6)
            assert ORDER == ["s0:a1", "s1:b1", "s0:a2", "s1:b2", "s0:a3", "s1:b3"]


async def test_a_standard_listener_awaiting_the_next_message_does_not_block_it() -> None:
    """workerd's read loop does not wait for a listener's promise: an async listener that waits
    for the socket's next message gets it."""
    got: list[str] = []

    class Waits(durable.DurableObject):
        async def fetch(self, request: durable.Request) -> durable.Response:
            client, server = durable.WebSocketPair()
            server.accept()
            second = asyncio.get_running_loop().create_future()

            async def on_message(e: Any) -> None:
                if e.data == "first":
                    got.append(await second)
                elif not second.done():
                    second.set_result(e.data)

            server.add_event_listener("message", on_message)
            return durable.Response(None, status=101, web_socket=client)

    async with durable.Runtime() as rt:
        stub = rt.namespace(Waits).get_by_name("w")
        async with websocket(stub, "http://o/w") as ws:
            ws.send("first")
            ws.send("second")
            await until(lambda: got == ["second"])


async def test_standard_messages_read_before_the_clients_close_see_open() -> None:
    """workerd (run_ws.py 100 --seed 10353 --resets --loop uvloop, sequence 4): on a socket
    accepted with accept(), messages and then the client's close(), sent at once, are read in
    order: the listeners of the messages see OPEN (1), not CLOSED; the close comes after."""
    seen: list[Any] = []

    class Listens(durable.DurableObject):
        async def fetch(self, request: durable.Request) -> durable.Response:
            client, server = durable.WebSocketPair()
            server.accept()
            server.add_event_listener("message", lambda e: seen.append((e.data, server.ready_state)))
            server.add_event_listener("close", lambda e: seen.append(("close", e.code)))
            return durable.Response(None, status=101, web_socket=client)

    async with durable.Runtime() as rt:
        stub = rt.namespace(Listens).get_by_name("l")
        async with websocket(stub, "http://o/l") as ws:
            for text in ("m1", "m2", "m3"):
                ws.send(text)
            ws.close(4000)
            await until(lambda: ("close", 4000) in seen)
        assert seen == [("m1", 1), ("m2", 1), ("m3", 1), ("close", 4000)]


class Both(durable.DurableObject):
    """Accepts ``/std...`` sockets with ``accept()`` and the others with ``ctx.accept_web_socket()``."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        name = request.url.rsplit("/", 1)[1]
        if name.startswith("std"):
            server.accept()
            server.add_event_listener("message", lambda e: ORDER.append(f"{name}:{e.data}"))
        else:
            self.ctx.accept_web_socket(server, [name])
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: Any) -> None:
        ORDER.append(f"{self.ctx.get_tags(ws)[0]}:{message}")


async def test_a_hibernatable_event_starts_a_turn_after_its_frame_is_read() -> None:
    """workerd: "c1"-"c3" on a hibernatable socket and then "d1"-"d4" on an accept()ed one of the
    same object, sent at once, ran d1, c1, d2, d3, c2, d4, c3 (a hibernatable event starts a turn
    of the loop after its frame is read, a listener at once); "c1", "d1", "c2", "d2", "c3", "d3"
    alternating ran d1, c1, d2, d3, c2, c3 (every run)."""
    ORDER.clear()
    async with durable.Runtime() as rt:
        stub = rt.namespace(Both).get_by_name("both")
        async with websocket(stub, "http://o/s0") as hib, websocket(stub, "http://o/std1") as std:
            for ws, text in ((hib, "c1"), (hib, "c2"), (hib, "c3"), (std, "d1"), (std, "d2"), (std, "d3"), (std, "d4")):
                ws.send(text)
            await until(lambda: len(ORDER) == 7)
            assert ORDER == ["std1:d1", "s0:c1", "std1:d2", "std1:d3", "s0:c2", "std1:d4", "s0:c3"]
            ORDER.clear()
            for ws, text in ((hib, "c1"), (std, "d1"), (hib, "c2"), (std, "d2"), (hib, "c3"), (std, "d3")):
                ws.send(text)
            await until(lambda: len(ORDER) == 6)
            assert ORDER == ["std1:d1", "s0:c1", "std1:d2", "std1:d3", "s0:c2", "s0:c3"]
