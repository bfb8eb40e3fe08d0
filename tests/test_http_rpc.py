"""A ``Request``, a ``Response`` or ``Headers`` as an RPC argument or result, as workerd allows.

Behaviour measured with miniflare (workerd) on 2026-12-06, compatibility date 2026-04-07: each
crosses anywhere in the value; the receiver gets its own with the same fields; the body moves
(the sender's is used afterwards); a body already read cannot be sent ("The ReadableStream has
been locked to a reader."); a Response carrying a WebSocket cannot cross; storage refuses them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.compat.python_workers.workers import Response as WorkersResponse


async def _stream() -> AsyncIterator[bytes]:
    yield b"chunk-1;"
    yield b"chunk-2"


class TaggedResponse(durable.Response):
    """A user's subclass with a slot and an attribute of its own."""

    __slots__ = ("__dict__", "tag")

    def __init__(self, body: str, tag: str) -> None:
        super().__init__(body)
        self.tag = tag
        self.note = "kept"


class Http(durable.DurableObject):
    async def response(self) -> durable.Response:
        return durable.Response("hi", status=404, status_text="Nope", headers={"x-a": "1"})

    async def streamed(self) -> durable.Response:
        return durable.Response(_stream())

    async def describe(self, request: durable.Request) -> list[Any]:
        return [request.method, request.url, request.headers.get("x-b"), await request.text()]

    async def nested(self) -> dict[str, Any]:
        return {"a": [durable.Response("n1")], "b": 2}

    async def read_both(self, first: durable.Response, second: durable.Response) -> list[Any]:
        return [first is second, await first.text()]

    async def headers(self, headers: durable.Headers) -> durable.Headers:
        headers.append("x-added", "1")
        return headers

    async def web_socket(self) -> durable.Response:
        client, _server = durable.WebSocketPair()
        return durable.Response(None, status=101, web_socket=client)

    async def store(self, value: Any) -> None:
        await self.ctx.storage.put("k", value)

    async def forward(self, name: str, request: durable.Request) -> list[Any]:
        other = self.env.HTTP.get_by_name(name)
        described: list[Any] = await other.describe(request)
        return described

    async def tagged(self) -> TaggedResponse:
        return TaggedResponse("tagged body", "t1")

    async def workers_response(self) -> durable.Response:
        return WorkersResponse("from the SDK", status=202)


@pytest.fixture
async def stub() -> AsyncIterator[Any]:
    async with durable.Runtime() as rt:
        yield rt.namespace(Http, name="HTTP").get_by_name("a")


class TestResults:
    async def test_response_result_keeps_its_fields(self, stub: Any) -> None:
        """A returned Response arrives with its status, status text, headers and body."""
        response = await stub.response()
        assert isinstance(response, durable.Response)
        assert (response.status, response.status_text, response.headers.get("x-a")) == (404, "Nope", "1")
        assert await response.text() == "hi"

    async def test_streamed_body_crosses(self, stub: Any) -> None:
        """A streamed body reaches the caller, which reads it as it comes."""
        response = await stub.streamed()
        assert await response.text() == "chunk-1;chunk-2"

    async def test_nested_response(self, stub: Any) -> None:
        """A Response inside a dict and a list crosses too."""
        value = await stub.nested()
        assert value["b"] == 2
        assert await value["a"][0].text() == "n1"

    async def test_subclass_keeps_its_type(self, stub: Any) -> None:
        """The Python Workers SDK's Response (a subclass) arrives as that class."""
        response = await stub.workers_response()
        assert type(response) is WorkersResponse
        assert response.status == 202 and await response.text() == "from the SDK"

    async def test_user_subclass_keeps_its_fields(self, stub: Any) -> None:
        """A user's Response subclass arrives as that class, with its own slots and attributes."""
        response = await stub.tagged()
        assert type(response) is TaggedResponse
        assert (response.tag, response.note, response.status) == ("t1", "kept", 200)
        assert await response.text() == "tagged body"

    async def test_web_socket_response_refused(self, stub: Any) -> None:
        """A Response that carries a WebSocket cannot cross (workerd's DataCloneError)."""
        with pytest.raises(durable.DataCloneError, match='^Could not serialize object of type "WebSocket"'):
            await stub.web_socket()


class TestArguments:
    async def test_request_argument(self, stub: Any) -> None:
        """A Request argument arrives with its method, URL, headers and body."""
        request = durable.Request("http://x/p", method="POST", body="b", headers={"x-b": "2"})
        assert await stub.describe(request) == ["POST", "http://x/p", "2", "b"]

    async def test_body_moves(self, stub: Any) -> None:
        """After the call, the sender's body is used: reading it raises workerd's TypeError."""
        request = durable.Request("http://x/", method="POST", body="z")
        await stub.describe(request)
        assert request.body_used
        with pytest.raises(TypeError, match="^Body has already been used"):
            await request.text()

    async def test_bodyless_request_stays_unused(self, stub: Any) -> None:
        """A request without a body has nothing to move: it stays unused."""
        request = durable.Request("http://x/")
        assert await stub.describe(request) == ["GET", "http://x/", None, ""]
        assert not request.body_used

    async def test_read_body_cannot_be_sent(self, stub: Any) -> None:
        """A body already read cannot cross: workerd's TypeError, with the fix."""
        request = durable.Request("http://x/", method="POST", body="z")
        await request.text()
        with pytest.raises(TypeError, match=r"^The ReadableStream has been locked to a reader\. .*clone\(\)"):
            await stub.describe(request)

    async def test_failed_copy_moves_nothing(self, stub: Any) -> None:
        """When one part of the value cannot be sent, the call fails and no other body moved."""
        fresh = durable.Response("fresh")
        used = durable.Response("used")
        await used.text()
        with pytest.raises(TypeError, match="locked to a reader"):
            await stub.read_both(fresh, used)
        assert not fresh.body_used
        assert await fresh.text() == "fresh"

    async def test_same_response_twice_is_one(self, stub: Any) -> None:
        """The same Response passed twice arrives as one object (its body read once)."""
        response = durable.Response("dup")
        assert await stub.read_both(response, response) == [True, "dup"]

    async def test_headers_are_copied(self, stub: Any) -> None:
        """Headers cross as a copy: the receiver's changes do not reach the sender's."""
        headers = durable.Headers({"x-a": "1"})
        returned = await stub.headers(headers)
        assert isinstance(returned, durable.Headers)
        assert returned.get("x-added") == "1"
        assert "x-added" not in headers

    async def test_between_objects(self, stub: Any) -> None:
        """An object can pass a Request it received on to another object."""
        request = durable.Request("http://x/q", method="PUT", body="via a")
        assert await stub.forward("b", request) == ["PUT", "http://x/q", None, "via a"]


class TestStorage:
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(lambda: durable.Response("x"), id="response"),
            pytest.param(lambda: durable.Request("http://x/"), id="request"),
            pytest.param(lambda: durable.Headers({"a": "1"}), id="headers"),
        ],
    )
    async def test_not_stored(self, stub: Any, value: Any) -> None:
        """Storage refuses them, saying they cross RPC and what to store instead."""
        with pytest.raises(durable.DataCloneError, match=r"can be an RPC argument or result but not a stored value"):
            await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.storage.put("k", value()))


class TestKeys:
    async def test_request_as_dict_key_refused(self, stub: Any) -> None:
        """A Request cannot be a dict key over RPC (it would arrive as the sender's own object); its body does not move."""
        request = durable.Request("http://x/", method="POST", body="k")
        with pytest.raises(durable.DataCloneError, match="cannot be a dict key or set member over RPC"):
            await stub.describe({request: 1})
        assert not request.body_used

    async def test_stub_in_a_set_refused(self, stub: Any) -> None:
        """Nor a stub inside a set member (a tuple)."""
        with pytest.raises(durable.DataCloneError, match="cannot be a dict key or set member over RPC"):
            await stub.describe({("a", stub)})


class Streams(durable.DurableObject):
    """Streamed bodies that wait on futures of the runtime's loop (as a real stream would)."""

    async def streamed(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.call_later(0.01, ready.set_result, None)

        async def body() -> AsyncIterator[bytes]:
            yield b"x"
            await ready  # a future of the runtime's loop: only that loop can wait for it
            yield b"y"

        return {"response": durable.Response(body())}

    async def read(self, request: durable.Request) -> str:
        return await request.text()


class TestOtherLoops:
    async def test_streamed_result_readable_on_the_callers_loop(self) -> None:
        """A streamed body in a result is read on the runtime's loop before it crosses to the caller's."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Streams).get_by_name("a")

            async def elsewhere() -> str:
                value = await stub.streamed()
                text: str = await value["response"].text()
                return text

            assert await asyncio.to_thread(lambda: asyncio.run(elsewhere())) == "xy"

    async def test_streamed_argument_read_on_the_callers_loop(self) -> None:
        """A streamed request body from another loop is read there before the call crosses."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Streams).get_by_name("a")

            async def elsewhere() -> str:
                loop = asyncio.get_running_loop()
                ready = loop.create_future()
                loop.call_later(0.01, ready.set_result, None)

                async def body() -> AsyncIterator[bytes]:
                    yield b"p"
                    await ready  # the caller's loop's future
                    yield b"q"

                return await stub.read(durable.Request("http://x/", method="POST", body=body()))  # type: ignore[no-any-return]

            assert await asyncio.to_thread(lambda: asyncio.run(elsewhere())) == "pq"

    def test_blocking_stub_result(self) -> None:
        """A BlockingStub's result arrives with its streamed bodies read."""
        with durable.BlockingRuntime() as rt:
            value = rt.namespace(Streams).get_by_name("a").streamed()
            assert asyncio.run(value["response"].text()) == "xy"
