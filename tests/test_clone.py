"""``Request.clone()`` and ``Response.clone()``: a body read twice, as in Fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import durable


async def stream(*chunks: bytes, fail: bool = False) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk
    if fail:
        raise OSError("stream broke")


class TestClone:
    async def test_response_buffered(self) -> None:
        """A cloned response keeps status, status text and headers, and both bodies read in full."""
        resp = durable.Response("hi", status=201, headers={"x-a": "1"}, status_text="Made")
        twin = resp.clone()
        assert (twin.status, twin.status_text, twin.headers["x-a"]) == (201, "Made", "1")
        assert await resp.text() == "hi" and await twin.text() == "hi"

    async def test_headers_are_copied(self) -> None:
        """Changing the clone's headers leaves the original's alone."""
        req = durable.Request("http://h/x", method="POST", headers={"a": "1"}, body="b")
        twin = req.clone()
        twin.headers["a"] = "2"
        assert req.headers["a"] == "1"
        assert (twin.url, twin.method) == ("http://h/x", "POST")

    async def test_request_stream_read_by_both(self) -> None:
        """Both sides of a cloned streamed body see every chunk, whichever reads first."""
        req = durable.Request("http://h/", method="PUT", body=stream(b"a", b"b", b"c"))
        twin = req.clone()
        assert await twin.bytes() == b"abc"
        assert await req.bytes() == b"abc"

    async def test_stream_read_concurrently(self) -> None:
        """The two sides may be read at the same time."""
        resp = durable.Response(stream(*(bytes([i]) for i in range(50))))
        twin = resp.clone()
        first, second = await asyncio.gather(resp.bytes(), twin.bytes())
        assert first == second == bytes(range(50))

    async def test_stream_error_reaches_both(self) -> None:
        """A stream that fails fails on both sides."""
        resp = durable.Response(stream(b"a", fail=True))
        twin = resp.clone()
        for side in (resp, twin):
            with pytest.raises(OSError, match="stream broke"):
                await side.bytes()

    async def test_null_body(self) -> None:
        """A response without a body clones to one without a body."""
        twin = durable.Response(None, status=204).clone()
        assert twin.body is None and await twin.text() == ""

    async def test_clone_after_read_is_refused(self) -> None:
        """Cloning a used body raises TypeError naming clone()."""
        resp = durable.Response("x")
        await resp.text()
        with pytest.raises(TypeError, match=r"Body has already been used.*clone\(\)"):
            resp.clone()

    async def test_second_read_names_clone(self) -> None:
        """The 'Body has already been used' error tells the user to call clone() first."""
        req = durable.Request("http://h/", method="POST", body="x")
        await req.text()
        with pytest.raises(TypeError, match=r"Use clone\(\) first"):
            await req.text()

    async def test_clone_through_stub_fetch(self, durable_runtime: durable.Runtime) -> None:
        """An object may clone the request it receives and read the body twice."""

        class Echo(durable.DurableObject):
            async def fetch(self, request: durable.Request) -> durable.Response:
                copy = request.clone()
                return durable.Response(await request.text() + await copy.text())

        stub = durable_runtime.namespace(Echo).get_by_name("e")
        resp = await stub.fetch("http://e/", method="POST", body="ab")
        assert await resp.text() == "abab"
