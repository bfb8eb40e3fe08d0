"""The fast fetch path of issue 16: stub.fetch sends at once, and the shortcuts keep every behaviour."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable import Headers, Request, Response
from durable._sqlite import ObjectDatabase
from durable.asgi import _request_url, _to_request


class Recorder(durable.DurableObject):
    """Records every request it receives and answers with the count so far."""

    async def fetch(self, request: Request) -> Response:
        seen: int = (await self.ctx.storage.get("seen") or 0) + 1
        await self.ctx.storage.put("seen", seen)
        return Response(str(seen))

    async def seen(self) -> int:
        value: int = await self.ctx.storage.get("seen") or 0
        return value


class TestStubFetchIsSentAtOnce:
    async def test_a_fetch_nobody_awaits_still_runs(self) -> None:
        """As on Cloudflare, stub.fetch() sends the request when called, awaited or not."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Recorder).get_by_name("a")
            _ = stub.fetch("http://do/")  # not awaited
            await asyncio.sleep(0)
            assert await stub.seen() == 1

    async def test_gathered_fetches_share_one_commit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Fetches gathered at once write in one turn and are made durable by a single commit."""
        commits = 0
        original = ObjectDatabase.commit

        def counting(self: ObjectDatabase) -> None:
            nonlocal commits
            commits += 1
            original(self)

        monkeypatch.setattr(ObjectDatabase, "commit", counting)
        async with durable.Runtime() as rt:
            stub = rt.namespace(Recorder).get_by_name("a")
            await stub.seen()  # the object exists before counting starts
            commits = 0
            responses = await asyncio.gather(*(stub.fetch("http://do/") for _ in range(100)))
            texts = sorted([int(await r.text()) for r in responses])
            assert texts == list(range(1, 101))
            assert commits == 1

    async def test_a_bad_url_rejects_the_promise(self) -> None:
        """A relative URL does not raise at the call: awaiting the fetch raises Cloudflare's TypeError."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Recorder).get_by_name("a")
            pending = stub.fetch("/relative")
            with pytest.raises(TypeError, match="Fetch API cannot load: /relative"):
                await pending
            assert await stub.seen() == 0

    async def test_a_closed_runtime_rejects_the_promise(self) -> None:
        """A fetch through a closed runtime fails when awaited, with RuntimeClosedError."""
        rt = durable.Runtime()
        stub = rt.namespace(Recorder).get_by_name("a")
        await stub.seen()
        await rt.aclose()
        with pytest.raises(durable.RuntimeClosedError):
            await stub.fetch("http://do/")

    def test_where_no_loop_runs_it_is_a_coroutine(self) -> None:
        """Called outside any event loop, stub.fetch() returns a coroutine that asyncio.run() runs."""
        rt = durable.Runtime()
        stub = rt.namespace(Recorder).get_by_name("a")
        response = asyncio.run(stub.fetch("http://do/"))
        assert isinstance(response, Response)

        async def close() -> None:
            assert await response.text() == "1"
            assert await stub.seen() == 1
            await rt.aclose()

        asyncio.run(close())


class TestHeadersFromServer:
    @pytest.mark.parametrize(
        "raw",
        [
            [],
            [(b"Host", b"example.com"), (b"X-A", b" padded\t"), (b"x-a", b"two")],
            [(b"accept", b"*/*"), (b"user-agent", b"wrk")],
        ],
    )
    def test_same_as_the_constructor(self, raw: list[tuple[bytes, bytes]]) -> None:
        """Headers._from_latin1 gives exactly what Headers() gives for the decoded pairs."""
        decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        assert Headers._from_latin1(raw).multi_items() == Headers(decoded).multi_items()

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ([(b"ok", b"1"), (b"bad name", b"x")], "Invalid header name."),
            ([(b"ok", b"1"), (b"", b"x")], "Invalid header name."),
            ([(b"a", b"1"), (b"b", b"x\x00y")], "Invalid header value."),
            ([(b"a\nb", b"1")], "Invalid header name."),
        ],
    )
    def test_same_errors_as_the_constructor(self, raw: list[tuple[bytes, bytes]], message: str) -> None:
        """An invalid name or value raises the constructor's TypeError."""
        with pytest.raises(TypeError, match=message):
            Headers._from_latin1(raw)


def _scope(**changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/increment",
        "raw_path": b"/increment",
        "query_string": b"name=A",
        "root_path": "",
        "headers": [(b"host", b"example.com:8787")],
        "server": ("127.0.0.1", 8787),
    }
    scope.update(changes)
    return scope


class TestCachedRequestUrl:
    def test_the_same_parts_give_the_same_url(self) -> None:
        """A repeated request gets the same URL as the first, from the cache."""
        scope = _scope()
        first = _request_url(scope, Headers._from_latin1(scope["headers"]))
        second = _request_url(scope, Headers._from_latin1(scope["headers"]))
        assert first == second == "http://example.com:8787/increment?name=A"

    def test_a_bad_host_is_refused_every_time(self) -> None:
        """An invalid Host header is answered 400 on every request, not only the first."""

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        from durable.asgi import _BadRequest, _RequestBody

        scope = _scope(headers=[(b"host", b"bad host")])
        for _ in range(2):
            with pytest.raises(_BadRequest, match="invalid Host header"):
                _to_request(scope, _RequestBody(receive, 10))

    def test_unhashable_parts_still_work(self) -> None:
        """A server giving a bytearray query string and a list for server still gets its URL."""
        scope = _scope(
            raw_path=b"/a%20b", path="/a b", headers=[], server=["10.0.0.1", 80], query_string=bytearray(b"name=A")
        )
        assert _request_url(scope, Headers()) == "http://10.0.0.1/a%20b?name=A"


class TestBodyShortcuts:
    async def test_text_reads_a_buffered_body_once(self) -> None:
        """text() on a buffered body marks it used, so a second read raises as in Fetch."""
        response = Response("hi")
        assert await response.text() == "hi"
        assert response.body_used
        with pytest.raises(TypeError, match="Body has already been used"):
            await response.text()

    async def test_text_follows_an_overridden_bytes(self) -> None:
        """A subclass that overrides bytes() still has text() go through it."""

        class Upper(Response):
            async def bytes(self) -> bytes:
                return (await super().bytes()).upper()

        assert await Upper("hi").text() == "HI"

    def test_a_str_body_keeps_a_given_content_type(self) -> None:
        """A str body adds text/plain only when no content-type was given."""
        assert Response("x").headers.get_all("content-type") == ["text/plain;charset=UTF-8"]
        given = Response("x", headers={"Content-Type": "text/html"})
        assert given.headers.get_all("content-type") == ["text/html"]

    def test_standard_methods_and_others(self) -> None:
        """Standard methods pass as they are; others are checked and upper-cased as before."""
        assert Request("http://a/", method="POST").method == "POST"
        assert Request("http://a/", method="purge").method == "PURGE"
        with pytest.raises(TypeError, match="Invalid HTTP method string"):
            Request("http://a/", method="BAD METHOD")


class TestCacheBounds:
    def test_long_urls_are_not_cached(self) -> None:
        """URLs longer than the cached length are normalized and checked without entering a cache."""
        from durable import _http

        long_url = "HTTP://Example.COM:80/" + "a" * 600
        before = (_http._normalize_url_cached.cache_info().currsize, _http._is_full_url_cached.cache_info().currsize)
        assert durable.Request(long_url).url == "http://example.com/" + "a" * 600
        _http.build_request(long_url)
        after = (_http._normalize_url_cached.cache_info().currsize, _http._is_full_url_cached.cache_info().currsize)
        assert after == before

    def test_long_targets_are_not_cached(self) -> None:
        """A long request target from a client gets its URL without entering the cache."""
        from durable import asgi

        before = asgi._url_from_parts_cached.cache_info().currsize
        scope = _scope(query_string=b"q=" + b"x" * 600)
        assert _request_url(scope, Headers._from_latin1(scope["headers"])).endswith("x" * 600)
        assert asgi._url_from_parts_cached.cache_info().currsize == before

    def test_a_method_that_is_not_a_str(self) -> None:
        """A method that is not a str is refused with the constructor's message, even unhashable."""
        with pytest.raises(TypeError, match="HTTP method must be a str, not list"):
            Request("http://a/", method=["GET"])  # type: ignore[arg-type]
