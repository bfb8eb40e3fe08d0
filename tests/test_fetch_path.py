"""The fast fetch path of issue 16: stub.fetch sends at once, and the shortcuts keep every behaviour."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable import Headers, Request, Response
from durable._sqlite import ObjectDatabase
from durable.asgi import _request_url, _to_request

from helpers import http_scope


class Recorder(durable.DurableObject):
    """Records every request it receives and answers with the count so far."""

    async def fetch(self, request: Request) -> Response:
        seen: int = (await self.ctx.storage.get("seen") or 0) + 1
        await self.ctx.storage.put("seen", seen)
        return Response(str(seen))

    async def seen(self) -> int:
        value: int = await self.ctx.storage.get("seen") or 0
        return value


class Echo(durable.DurableObject):
    """Answers with the method, one header and the body of the request it receives."""

    async def fetch(self, request: Request) -> Response:
        return Response(f"{request.method} {request.headers.get('x-seen')} {await request.text()}")


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
            with pytest.raises(TypeError, match="^Invalid URL: /relative$"):
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
    counter = {"path": "/increment", "raw_path": b"/increment", "query_string": b"name=A"}
    return http_scope(**{**counter, "headers": [(b"host", b"example.com:8787")], **changes})


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


class TestCommonFetchRequest:
    """``stub.fetch(url)`` builds its Request on a shorter path that gives the same request."""

    def test_same_request_as_the_general_path(self) -> None:
        """A bare URL gives the request that an explicit GET with no headers gives."""
        from durable._http import build_request

        for url in ("http://counter/increment", "HTTP://Example.COM:80", "https://a:443/x?y#z"):
            fast, general = build_request(url), build_request(url, {"method": "GET"})
            assert (fast.url, fast.method, fast.headers, fast.body_used) == (
                general.url,
                general.method,
                general.headers,
                general.body_used,
            )
            assert type(fast) is Request and fast.body is None

    def test_requests_do_not_share_headers(self) -> None:
        """Each request from the same URL has headers of its own, immutable as the object's
        request's are in workerd (``Can't modify immutable headers.``)."""
        from durable._http import build_request

        first = build_request("http://a/")
        assert first.headers is not build_request("http://a/").headers
        with pytest.raises(TypeError, match="^Can't modify immutable headers"):
            first.headers.set("x-mine", "1")

    def test_a_relative_url_fails_every_time(self) -> None:
        """The cached check refuses a relative or non-HTTP URL with workerd's text, every time."""
        from durable._http import build_request

        for _ in range(2):
            for url, message in [
                ("/increment", "Invalid URL"),
                ("http://a:99999/", "Invalid URL"),
                ("ftp://a/", "Fetch API cannot load"),
            ]:
                with pytest.raises(TypeError, match=f"^{message}: {url}$"):
                    build_request(url)

    async def test_a_forwarded_request_is_copied_and_its_body_moved(self) -> None:
        """stub.fetch(request) gives the object a copy: the same URL, method and headers (plus the
        content-length workerd adds), the body moved."""
        from durable._http import build_request

        original = Request("HTTP://A:80/x", method="POST", headers={"X-A": "1"}, body="hi")
        copy = build_request(original)
        assert (copy.url, copy.method) == ("http://a/x", "POST")
        assert copy.headers == Headers([*original.headers.multi_items(), ("content-length", "2")])
        assert copy.headers is not original.headers
        with pytest.raises(TypeError, match="^Can't modify immutable headers"):  # as in workerd
            copy.headers.set("x-b", "2")
        original.headers.set("x-b", "2")
        assert "x-b" not in copy.headers
        assert original.body_used and not copy.body_used
        assert await copy.text() == "hi"

    def test_a_forwarded_request_fails_as_before(self) -> None:
        """A used body is refused first; a URL that is not http(s) is refused after the body has moved."""
        from durable._http import build_request

        used = Request("http://a/", method="POST", body="x")
        build_request(used)
        with pytest.raises(TypeError, match="^Cannot reconstruct a Request with a used body.$"):
            build_request(used)
        not_http = Request("ftp://a/x", method="POST", body="x")
        with pytest.raises(TypeError, match="^Fetch API cannot load: ftp://a/x$"):
            build_request(not_http)
        assert not_http.body_used
        bodiless = Request("ftp://a/x")
        with pytest.raises(TypeError, match="^Fetch API cannot load: ftp://a/x$"):
            build_request(bodiless)

    async def test_forwarding_through_a_stub(self) -> None:
        """A Worker's request forwarded with stub.fetch reaches the object with its body, once."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Echo).get_by_name("a")
            request = Request("http://do/echo", method="PUT", headers={"X-Seen": "yes"}, body=b"payload")
            response = await stub.fetch(request)
            assert await response.text() == "PUT yes payload"
            assert request.body_used

    async def test_text_drops_only_one_byte_order_mark(self) -> None:
        """text() drops one leading BOM, keeps a second one, and replaces invalid bytes, as before."""
        assert await Response(b"\xef\xbb\xbf\xef\xbb\xbfa").text() == "\ufeffa"
        assert await Response(b"\xef\xbb").text() == "\ufffd"
        assert await Response(b"a\xef\xbb\xbf").text() == "a\ufeff"


class TestRequestHeadCache:
    """Request heads seen before are not checked again, and nothing cached can be changed."""

    def test_a_repeated_head_gives_independent_headers(self) -> None:
        """Headers from the same raw head are equal but separate: changing one leaves the next alone."""
        raw = [(b"Host", b"a"), (b"X-Repeat", b" v ")]
        first = Headers._from_latin1(raw)
        first.append("x-added", "1")
        second = Headers._from_latin1(raw)
        assert second.multi_items() == [("host", "a"), ("x-repeat", "v")]

    def test_bad_heads_fail_every_time(self) -> None:
        """An invalid head is never cached: it is refused on every request."""
        for _ in range(2):
            with pytest.raises(TypeError, match="Invalid header value"):
                Headers._from_latin1([(b"a", b"x\x00")])

    def test_the_cache_is_bounded(self) -> None:
        """At most _CACHED_HEADS heads are kept, and a head over _CACHED_HEAD_SIZE is not kept."""
        from durable import _http

        for i in range(_http._CACHED_HEADS + 10):
            Headers._from_latin1([(b"x-n", str(i).encode())])
        assert len(_http._head_cache) == _http._CACHED_HEADS
        big = ((b"x-big", b"v" * (_http._CACHED_HEAD_SIZE + 1)),)
        Headers._from_latin1(big)
        assert big not in _http._head_cache
        padded = ((b"x-padded", b"v" + b" " * _http._CACHED_HEAD_SIZE),)  # short once stripped, long as sent
        assert Headers._from_latin1(padded).get("x-padded") == "v"
        assert padded not in _http._head_cache

    def test_a_generator_of_pairs_is_read_once(self) -> None:
        """A one-shot iterable of pairs still gives every header."""
        pairs = iter([(b"A", b"1"), (b"B", b"2")])
        assert Headers._from_latin1(pairs).multi_items() == [("a", "1"), ("b", "2")]


class TestRequestFromServer:
    """The ASGI front's Request takes the headers it made instead of copying them."""

    def test_same_request_as_the_constructor(self) -> None:
        """The request equals Request(url, method=..., headers=..., body=...) and holds the headers given."""
        from durable._http import request_from_server

        headers = Headers({"host": "a"})
        request = request_from_server("HTTP://A:80/x", "purge", headers, None)
        assert (request.url, request.method) == ("http://a/x", "PURGE")
        assert request.headers is headers

    def test_same_errors_as_the_constructor(self) -> None:
        """A bad method, or a GET with a body, fails with the constructor's messages."""
        from durable._http import request_from_server

        async def stream() -> Any:
            yield b"x"

        with pytest.raises(TypeError, match="Invalid HTTP method string"):
            request_from_server("http://a/", "BAD METHOD", Headers(), None)
        with pytest.raises(TypeError, match="Request with a GET or HEAD method cannot have a body"):
            request_from_server("http://a/", "GET", Headers(), stream())


class TestBodyInterface:
    """The package-internal body functions used by stubs and the compat layer (issue 12)."""

    async def test_held_body_does_not_read(self) -> None:
        """held_body shows the body without marking it used."""
        from durable._http import held_body

        response = Response(b"abc")
        assert held_body(response) == b"abc"
        assert not response.body_used
        assert held_body(Response()) is None

    async def test_buffer_body_keeps_a_stream_unread(self) -> None:
        """buffer_body turns a stream into bytes that can still be read once."""
        from durable._http import buffer_body, held_body

        async def stream() -> Any:
            yield b"a"
            yield bytearray(b"b")

        response = Response(stream())
        await buffer_body(response)
        assert held_body(response) == b"ab"
        assert not response.body_used
        assert await response.text() == "ab"

    async def test_compat_json_reads_once(self) -> None:
        """The SDK's response.json() parses the body, and a second read raises its OSError."""
        from durable.compat.python_workers import _http as sdk

        response = sdk.as_fetch_response(Response('{"a": 1}'))
        assert await response.json() == {"a": 1}
        with pytest.raises(OSError, match="Body already used"):
            await response.json()


class NoRequest(durable.DurableObject):
    """``fetch`` handlers that take no request, as a port of ``async fetch() {...}`` would."""

    async def fetch(self) -> Response:
        return Response("no request needed")


class PlainNoRequest(durable.DurableObject):
    def fetch(self) -> Response:
        return Response("plain")


class RaisesTypeError(durable.DurableObject):
    async def fetch(self, request: Request) -> Response:
        raise TypeError("the handler's own TypeError")


@pytest.mark.parametrize(("cls", "text"), [(NoRequest, "no request needed"), (PlainNoRequest, "plain")])
async def test_a_fetch_handler_may_take_no_request(cls: type[durable.DurableObject], text: str) -> None:
    """docs/api.md: handlers "may declare fewer parameters", as JavaScript drops the argument."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(cls).get_by_name("a")
        for _ in range(2):  # the first call, then the shorter path of a live object
            response = await stub.fetch("http://do/")
            assert (response.status, await response.text()) == (200, text)


async def test_a_type_error_raised_by_a_fetch_handler_reaches_the_caller() -> None:
    async with durable.Runtime() as rt:
        with pytest.raises(TypeError, match="the handler's own TypeError"):
            await rt.namespace(RaisesTypeError).get_by_name("a").fetch("http://do/")
