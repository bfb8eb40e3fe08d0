"""WebSocket edges found by comparing with workerd (miniflare 4, compatibility date 2026-04-07).

Each test quotes the measurement: a Durable Object that kept WebSockets in a module global or
accepted them with odd tags, driven with ``mf.dispatchFetch(url, {headers: {Upgrade:
"websocket"}})``.
"""

from __future__ import annotations

import array
import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import durable
from durable.testing import run_in_object

OTHER_OBJECT = (
    "Cannot perform I/O on behalf of a different Durable Object. I/O objects (such as streams, "
    "request/response bodies, and others) created in the context of one Durable Object cannot be "
    "accessed from a different Durable Object in the same isolate. This is a limitation of "
    "Cloudflare Workers which allows us to improve overall performance. (I/O type: Native)"
)


class Keeper(durable.DurableObject):
    """Keeps the sockets it makes in ``env.kept`` (a module global in the workerd probe)."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        kind = request.url.rsplit("/", 1)[1]
        client, server = durable.WebSocketPair()
        if kind == "raw":  # neither end accepted
            self.env.kept["raw"] = (client, server)
            return durable.Response("ok")
        if kind == "hib":
            self.ctx.accept_web_socket(server, ["t"])
        else:
            server.accept()
        self.env.kept[kind] = server
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send(f"echo:{message!s}")


@pytest.fixture
async def rt() -> Any:
    async with durable.Runtime(vars={"kept": {}}) as runtime:
        runtime.namespace(Keeper, name="KEEPER")
        yield runtime


def stub(rt: durable.Runtime, name: str) -> Any:
    ns = rt.namespace(Keeper, name="KEEPER")
    return ns.get(ns.id_from_name(name))


async def connect_both(a: Any) -> list[Any]:
    """The clients of a hibernatable socket and of a standard one that ``a`` accepted and keeps."""
    clients = []
    for kind in ("hib", "std"):
        response = await a.fetch(f"http://x/{kind}", headers={"Upgrade": "websocket"})
        response.web_socket.accept()
        clients.append(response.web_socket)
    return clients


class TestAnotherObjectsSocket:
    async def test_io_is_refused(self, rt: durable.Runtime) -> None:
        """A socket of object A used by object B: workerd refuses its I/O, not its attachment.

        workerd (miniflare 4, 2026-04-07), A keeping its sockets in a module global and B using
        them: ``send``, ``close``, ``readyState``, ``ctx.getTags``, ``ctx.acceptWebSocket`` (of
        a raw end of A's) and ``accept()`` all throw ``Error: Cannot perform I/O on behalf of a
        different Durable Object. ...``; ``serializeAttachment``/``deserializeAttachment`` work,
        ``getWebSocketAutoResponseTimestamp`` returns null, and B's ``getWebSockets()`` is empty.
        Before, durable let B send on A's socket (the client got "from-b") and read its state.
        """
        a = stub(rt, "a")
        clients = await connect_both(a)
        await a.fetch("http://x/raw")
        kept = rt.env.kept

        def use(obj: Any, ctx: durable.State) -> dict[str, Any]:
            hib, std, (raw_client, raw_server) = kept["hib"], kept["std"], kept["raw"]
            calls: dict[str, Callable[[], object]] = {
                "send": lambda: hib.send("from-b"),
                "close": lambda: hib.close(4000, "b"),
                "ready_state": lambda: hib.ready_state,
                "get_tags": lambda: ctx.get_tags(hib),
                "standard send": lambda: std.send("from-b"),
                "accept_web_socket": lambda: ctx.accept_web_socket(raw_server),
                "accept": lambda: raw_client.accept(),
            }
            refused = {}
            for name, call in calls.items():
                with pytest.raises(durable.WebSocketError) as info:
                    call()
                refused[name] = str(info.value)
            hib.serialize_attachment(1)
            return {
                "refused": refused,
                "attachment": hib.deserialize_attachment(),
                "timestamp": ctx.get_web_socket_auto_response_timestamp(hib),
                "listed": len(ctx.get_web_sockets()),
            }

        seen = await run_in_object(stub(rt, "b"), use)
        assert seen["refused"] == dict.fromkeys(seen["refused"], OTHER_OBJECT) and len(seen["refused"]) == 7
        assert (seen["attachment"], seen["timestamp"], seen["listed"]) == (1, None, 0)

        # Nothing left, nothing closed: A still uses its socket, the client gets only A's message.
        await run_in_object(a, lambda obj, ctx: ctx.get_web_sockets()[0].send("from-a"))
        assert await clients[0].receive() == "from-a"
        assert clients[0].ready_state == durable.WebSocket.OPEN
        assert kept["hib"].ready_state == durable.WebSocket.OPEN  # outside any object: allowed

    async def test_ends_handed_over_or_made_outside(self, rt: durable.Runtime) -> None:
        """The client end returned to a caller belongs to the caller; an end made outside any
        object belongs to the object that accepts it.

        workerd (miniflare 4, 2026-04-07): object B calling ``A.fetch`` with an upgrade can
        ``accept()`` and ``send`` on the returned end, and reads its ``readyState`` (1).
        """

        async def call_a(obj: Any, ctx: durable.State) -> int:
            response = await stub(rt, "a").fetch("http://x/hib", headers={"Upgrade": "websocket"})
            ws = response.web_socket
            ws.accept()
            ws.send("hi")
            obj.env.kept["handed"] = ws
            return int(ws.ready_state)

        assert await run_in_object(stub(rt, "b"), call_a) == 1
        kept = rt.env.kept
        # Accepted in B, so C may not use it.
        with pytest.raises(durable.WebSocketError, match="^Cannot perform I/O on behalf of a different"):
            await run_in_object(stub(rt, "c"), lambda obj, ctx: kept["handed"].send("x"))

        # Made in the test body: whoever accepts it owns it.
        client, server = durable.WebSocketPair()
        await run_in_object(stub(rt, "b"), lambda obj, ctx: ctx.accept_web_socket(server))
        with pytest.raises(durable.WebSocketError, match="^Cannot perform I/O on behalf of a different"):
            await run_in_object(stub(rt, "c"), lambda obj, ctx: server.send("x"))
        await run_in_object(stub(rt, "b"), lambda obj, ctx: server.send("from-b"))
        client.accept()
        assert await client.receive() == "from-b"


class TestAResetInstancesSocket:
    async def test_the_next_instance_may_not_use_it(self, rt: durable.Runtime) -> None:
        """Sockets of an instance reset by ``ctx.abort()``, reached by its next instance.

        workerd (miniflare 4.20260426, compatibility date 2026-04-07, clients made with
        ``mf.dispatchFetch``): an object accepts a hibernatable socket (tag, attachment ``{a: 1}``)
        and a standard one, keeps both in a module global, then calls ``ctx.abort()``. Both clients
        get a 1006 close. The next instance's ``getWebSockets()`` is empty; its ``readyState``,
        ``send()`` and ``close()`` on either throw "Cannot perform I/O on behalf of a different
        Durable Object. ..."; ``deserializeAttachment()`` reads ``{a: 1}`` and
        ``serializeAttachment()`` works. durable let the next instance use them as its own
        (``ready_state`` CLOSED, ``send()`` and ``close()`` did nothing).
        """
        a = stub(rt, "a")
        clients = await connect_both(a)
        kept = rt.env.kept
        await run_in_object(a, lambda obj, ctx: kept["hib"].serialize_attachment({"a": 1}))

        def abort(obj: Any, ctx: durable.State) -> None:
            ctx.abort("bye")

        with pytest.raises(durable.ObjectAbortedError, match="^bye$"):
            await run_in_object(a, abort)
        for client in clients:
            with pytest.raises(durable.WebSocketClosed) as closed:
                await client.receive()
            assert closed.value.code == 1006

        def use(obj: Any, ctx: durable.State) -> dict[str, Any]:
            hib, std = kept["hib"], kept["std"]
            calls: dict[str, Callable[[], object]] = {
                "ready_state": lambda: hib.ready_state,
                "send": lambda: hib.send("x"),
                "close": lambda: hib.close(1000, "x"),
                "get_tags": lambda: ctx.get_tags(hib),
                "standard ready_state": lambda: std.ready_state,
                "standard send": lambda: std.send("x"),
                "standard close": lambda: std.close(1000, "x"),
            }
            refused = {}
            for name, call in calls.items():
                with pytest.raises(durable.WebSocketError) as info:
                    call()
                refused[name] = str(info.value)
            attachment = hib.deserialize_attachment()
            hib.serialize_attachment({"b": 2})
            return {"refused": refused, "attachment": attachment, "listed": len(ctx.get_web_sockets())}

        seen = await run_in_object(stub(rt, "a"), use)
        assert seen["refused"] == dict.fromkeys(seen["refused"], OTHER_OBJECT) and len(seen["refused"]) == 7
        assert (seen["attachment"], seen["listed"]) == ({"a": 1}, 0)
        assert kept["hib"].ready_state == durable.WebSocket.CLOSED  # outside any object: allowed

    async def test_a_pair_it_made(self, rt: durable.Runtime) -> None:
        """A ``WebSocketPair`` the reset instance made and kept, neither end accepted.

        workerd (miniflare 4.20260426, compatibility date 2026-04-07; the pair in a module global,
        then ``ctx.abort()``): the next instance's ``readyState``, ``accept()``, ``send()`` and
        ``ctx.acceptWebSocket()`` on its server end throw "Cannot perform I/O on behalf of a
        different Durable Object. ..."; a pair made by the same instance works. durable let the
        next instance use it as its own (only sockets the reset disconnected were refused). An
        eviction is no reset: after one, the pair stays usable, as before."""
        a = stub(rt, "a")
        assert await (await a.fetch("http://x/raw")).text() == "ok"

        def abort(obj: Any, ctx: durable.State) -> None:
            ctx.abort("bye")

        with pytest.raises(durable.ObjectAbortedError, match="^bye$"):
            await run_in_object(a, abort)
        kept = rt.env.kept

        def use(obj: Any, ctx: durable.State) -> dict[str, str]:
            server = kept["raw"][1]
            calls: dict[str, Callable[[], object]] = {
                "ready_state": lambda: server.ready_state,
                "accept": server.accept,
                "send": lambda: server.send("x"),
                "accept_web_socket": lambda: ctx.accept_web_socket(server),
            }
            refused = {}
            for name, call in calls.items():
                with pytest.raises(durable.WebSocketError) as info:
                    call()
                refused[name] = str(info.value)
            return refused

        assert await run_in_object(stub(rt, "a"), use) == dict.fromkeys(
            ["ready_state", "accept", "send", "accept_web_socket"], OTHER_OBJECT
        )

        b = stub(rt, "b")
        assert await (await b.fetch("http://x/raw")).text() == "ok"
        await durable.testing.evict(b)

        def accept(obj: Any, ctx: durable.State) -> object:
            server = kept["raw"][1]
            server.accept()
            server.send("x")
            return server.ready_state

        assert await run_in_object(stub(rt, "b"), accept) == durable.WebSocket.OPEN

    async def test_an_eviction_is_no_reset(self, rt: durable.Runtime) -> None:
        """``testing.evict(web_sockets="close")`` disconnects every socket, as a reset does, but
        ends no instance by error: the next instance uses a socket the evicted one kept as it uses
        one that a plain eviction disconnected (``ready_state`` ``CLOSED``, ``ctx.get_tags()``), with
        no "different Durable Object" error. The hibernatable one was refused since the reset
        change, which marked every socket disconnected through ``object_reset`` as orphaned."""
        a = stub(rt, "a")
        clients = await connect_both(a)
        await durable.testing.evict(a, web_sockets="close")
        for client in clients:
            with pytest.raises(durable.WebSocketClosed) as closed:
                await client.receive()
            assert closed.value.code == 1006
        kept = rt.env.kept

        def use(obj: Any, ctx: durable.State) -> list[object]:
            hib, std = kept["hib"], kept["std"]
            return [hib.ready_state, std.ready_state, ctx.get_tags(hib)]

        assert await run_in_object(stub(rt, "a"), use) == [durable.WebSocket.CLOSED, durable.WebSocket.CLOSED, ["t"]]


class TestTagsWithSurrogates:
    async def test_lone_and_paired_surrogates(self, rt: durable.Runtime) -> None:
        """Tags are kept as workerd keeps them: in UTF-8 with a lone surrogate's three bytes.

        workerd (miniflare 4, 2026-04-07), ``acceptWebSocket(s, ["a\\ud800b", "\\ud83d\\ude00"])``:
        ``getTags(s)`` is ``["a\\ufffd\\ufffd\\ufffdb", "😀"]``; ``getWebSockets("a\\ud800b")``
        finds the socket, ``getWebSockets("a\\ufffdb")`` and ``getWebSockets("a\\ufffd\\ufffd
        \\ufffdb")`` do not, ``getWebSockets("😀")`` does; ``"a\\ud800b"`` and ``"a\\ufffdb"`` are
        two tags. Before, durable's ``get_tags`` gave the lone surrogate back, and a pair written as
        two surrogates was neither found by its character nor counted as its 4 UTF-8 bytes.
        """

        def check(obj: Any, ctx: durable.State) -> list[Any]:
            _, server = durable.WebSocketPair()
            ctx.accept_web_socket(server, ["a\ud800b", "\ud83d\ude00", "a\ufffdb"])
            found = [len(ctx.get_web_sockets(tag)) for tag in ("a\ud800b", "a\ufffdb", "a\ufffd\ufffd\ufffdb", "😀")]
            return [ctx.get_tags(server), found]

        tags, found = await run_in_object(stub(rt, "a"), check)
        assert tags == ["a\ufffd\ufffd\ufffdb", "😀", "a\ufffdb"]
        assert found == [1, 1, 0, 1]

    async def test_lengths_count_utf8_bytes(self, rt: durable.Runtime) -> None:
        """A lone surrogate is 3 bytes of the 256, a pair 4, and the error shows U+FFFD.

        workerd (miniflare 4, 2026-04-07): ``"\\ud800".repeat(85)`` is accepted (``getTags`` gives
        255 U+FFFD), ``"\\ud800".repeat(86)`` raises ``"<258 U+FFFD>" is longer than the max tag
        length (256 characters).``; ``"😀".repeat(64)`` is accepted, 65 refused.
        """

        def check(obj: Any, ctx: durable.State) -> list[Any]:
            out: list[Any] = []
            _, server = durable.WebSocketPair()
            ctx.accept_web_socket(server, ["\ud800" * 85, "\ud83d\ude00" * 64])
            out.append([len(tag) for tag in ctx.get_tags(server)])
            for too_long in ("\ud800" * 86, "\ud83d\ude00" * 65):
                with pytest.raises(durable.WebSocketError) as info:
                    ctx.accept_web_socket(durable.WebSocketPair()[1], [too_long])
                out.append(str(info.value))
            return out

        lengths, lone, paired = await run_in_object(stub(rt, "a"), check)
        assert lengths == [255, 64]
        assert lone == '"' + "\ufffd" * 258 + '" is longer than the max tag length (256 characters).'
        assert paired == '"' + "😀" * 65 + '" is longer than the max tag length (256 characters).'


class TestSendBytesLike:
    async def test_any_bytes_like_value_is_sent_as_its_bytes(self) -> None:
        """``send()`` takes any bytes-like value, as workerd takes any ``ArrayBufferView``.

        workerd (miniflare 4, 2026-04-07): ``send(new Int32Array([1, 258]))`` arrives as the 8
        bytes ``1,0,0,0,2,1,0,0``, a ``DataView`` over 2 of 3 bytes as those 2, and a
        ``Uint16Array`` slice as its own bytes. Before, durable raised ``TypeError`` for an
        ``array.array`` although docs/websockets.md says ``send()`` takes bytes-like values.
        """
        client, server = durable.WebSocketPair()
        client.accept()
        server.accept()
        server.send(array.array("i", [1, 258]))
        server.send(memoryview(b"\x09\x08\x07")[1:])
        server.send(memoryview(array.array("H", [1, 2, 3]))[1:])
        received = [await client.receive() for _ in range(3)]
        assert received == [
            array.array("i", [1, 258]).tobytes(),
            b"\x08\x07",
            array.array("H", [2, 3]).tobytes(),
        ]
        assert isinstance(received[0], bytes)
        with pytest.raises(TypeError, match=r"^WebSocket send\(\) takes a str or bytes, not int\.$"):
            server.send(5)  # type: ignore[arg-type]


class Listeners(durable.DurableObject):
    """Runs the listener-removal scenario of the workerd probe inside the object."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response(repr(await removal_scenario()))


async def removal_scenario() -> list[str]:
    client, server = durable.WebSocketPair()
    client.accept()
    server.accept()
    log: list[str] = []

    def second(event: Any) -> None:
        log.append(f"second {event.data}")

    def late(event: Any) -> None:
        log.append(f"late {event.data}")

    def first(event: Any) -> None:
        log.append(f"first {event.data}")
        if event.data == "1":
            server.remove_event_listener("message", second)
            server.add_event_listener("message", late)

    def close_second(event: Any) -> None:
        log.append(f"close_second {event.code}")

    def close_first(event: Any) -> None:
        log.append(f"close_first {event.code}")
        server.remove_event_listener("close", close_second)

    server.add_event_listener("message", first)
    server.add_event_listener("message", second)
    server.add_event_listener("close", close_first)
    server.add_event_listener("close", close_second)
    client.send("1")
    client.send("2")
    client.close(1000)
    for _ in range(10):
        await asyncio.sleep(0)
    return log


class TestListenerRemovedDuringDispatch:
    """workerd (miniflare 4, 2026-04-07): listener A of "message" removes listener B and adds C
    while handling "1"; a "close" listener removes the next one. The log is ``["A 1", "A 2",
    "late 2", "close1 1000"]``: B never sees "1", C first sees "2", the second close listener
    never runs (the DOM's "removed" flag). Before, durable still called B for "1" and the
    second close listener."""

    EXPECTED = ["first 1", "first 2", "late 2", "close_first 1000"]

    async def test_outside_an_object(self) -> None:
        assert await removal_scenario() == self.EXPECTED

    async def test_inside_an_object(self) -> None:
        async with durable.Runtime() as rt:
            response = await rt.namespace(Listeners).get_by_name("a").fetch("http://x/")
            assert await response.text() == repr(self.EXPECTED)
