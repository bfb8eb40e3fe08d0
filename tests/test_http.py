"""Unit tests of the HTTP types: Headers, Request, Response, build_request, Workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable._http import (
    ExecutionContext,
    Headers,
    Request,
    Response,
    WorkerEntrypoint,
    build_request,
)

BODY_USED = "Body has already been used"


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class TestHeaders:
    def test_names_are_case_insensitive(self) -> None:
        """A header set under one spelling is found under any other."""
        h = Headers({"Content-Type": "text/plain"})
        assert h.get("content-type") == "text/plain"
        assert h["CONTENT-TYPE"] == "text/plain"
        assert "Content-type" in h
        assert h.has("CONTENT-TYPE")

    def test_get_joins_repeated_values(self) -> None:
        """get() joins the values of a repeated header with a comma and a space."""
        h = Headers([("Accept", "a"), ("accept", "b")])
        assert h.get("accept") == "a, b"
        assert h.get_all("ACCEPT") == ["a", "b"]

    def test_missing_header(self) -> None:
        """A missing header reads as None, the given default, or a KeyError by subscript."""
        h = Headers()
        assert h.get("x") is None
        assert h.get("x", "d") == "d"
        assert h.get_all("x") == []
        with pytest.raises(KeyError):
            h["x"]
        assert "x" not in h
        assert 3 not in h  # type: ignore[comparison-overlap]

    def test_set_replaces_and_append_adds(self) -> None:
        """set() replaces every value of a name, append() adds one."""
        h = Headers([("x", "1"), ("X", "2")])
        h.append("x", "3")
        assert h.get_all("x") == ["1", "2", "3"]
        h.set("X", "4")
        assert h.get_all("x") == ["4"]
        h["x"] = "5"
        assert h["x"] == "5"

    def test_delete(self) -> None:
        """delete() removes every value and ignores absent names; del raises for them."""
        h = Headers([("x", "1"), ("x", "2"), ("y", "3")])
        h.delete("X")
        h.delete("absent")
        assert h.multi_items() == [("y", "3")]
        del h["Y"]
        assert len(h) == 0
        with pytest.raises(KeyError):
            del h["y"]

    def test_iteration_is_sorted_distinct_lowercase_names(self) -> None:
        """Iterating yields each lower-cased name once, sorted, as Fetch's iterator does."""
        h = Headers([("B", "1"), ("a", "2"), ("b", "3")])
        assert list(h) == ["a", "b"]
        assert len(h) == 2
        assert list(h.items()) == [("a", "2"), ("b", "1, 3")]

    def test_multi_items_keeps_insertion_order(self) -> None:
        """multi_items() gives every pair, names lower-cased, in the order added."""
        h = Headers([("Set-Cookie", "a=1"), ("X", "y"), ("set-cookie", "b=2")])
        assert h.multi_items() == [("set-cookie", "a=1"), ("x", "y"), ("set-cookie", "b=2")]
        assert h.get_set_cookie() == ["a=1", "b=2"]
        assert h.getSetCookie() == ["a=1", "b=2"]

    def test_values_are_trimmed(self) -> None:
        """Leading and trailing HTTP whitespace is stripped from values, as in Fetch."""
        assert Headers({"x": "  v \t"})["x"] == "v"

    @pytest.mark.parametrize("name", ["", "a b", "a:b", "é", "a\n"])
    def test_invalid_name(self, name: str) -> None:
        """A name that is not an HTTP token raises TypeError with Fetch's message."""
        with pytest.raises(TypeError, match=r"^Invalid header name\.$"):
            Headers({name: "v"})

    @pytest.mark.parametrize("value", ["a\r\nb", "a\x00b", "a\nb"])
    def test_invalid_value(self, value: str) -> None:
        """A value holding CR, LF or NUL raises TypeError with Fetch's message."""
        with pytest.raises(TypeError, match=r"^Invalid header value\.$"):
            Headers().append("x", value)

    def test_non_str_value_is_refused(self) -> None:
        """A non-str value raises TypeError rather than being silently stringified."""
        with pytest.raises(TypeError, match="must be str, not int"):
            Headers({"content-length": 5})  # type: ignore[arg-type]

    def test_malformed_init_is_refused(self) -> None:
        """An init that is neither a mapping nor pairs raises TypeError."""
        with pytest.raises(TypeError, match="two elements"):
            Headers([("a", "b", "c")])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            Headers("ab")  # type: ignore[arg-type]

    def test_copy_is_independent(self) -> None:
        """Copying (or building from another Headers) gives an independent object."""
        h = Headers({"x": "1"})
        c = Headers(h)
        d = h.copy()
        c.set("x", "2")
        d.delete("x")
        assert h["x"] == "1"

    def test_equality(self) -> None:
        """Headers compare equal to Headers and mappings with the same content, any case."""
        assert Headers({"A": "1"}) == Headers({"a": "1"})
        assert Headers({"A": "1"}) == {"a": "1"}
        assert Headers({"A": "1"}) != Headers({"a": "2"})
        assert Headers() != 3


class TestRequest:
    async def test_defaults(self) -> None:
        """A Request defaults to GET, empty headers and no body."""
        req = Request("http://example.com/a?b=1")
        assert req.method == "GET"
        assert req.url == "http://example.com/a?b=1"
        assert len(req.headers) == 0
        assert req.body is None
        assert not req.body_used
        assert await req.text() == ""
        assert await req.bytes() == b""

    def test_method_is_upper_cased(self) -> None:
        """The method is upper-cased."""
        assert Request("http://x/", method="post").method == "POST"
        assert Request("http://x/", method="patch").method == "PATCH"

    def test_invalid_method(self) -> None:
        """A method that is not an HTTP token raises TypeError with workerd's message."""
        with pytest.raises(TypeError, match="^Invalid HTTP method string: GE T$"):
            Request("http://x/", method="GE T")

    @pytest.mark.parametrize("method", ["purge", "PROPFIND", "msearch", "Trace", "QUERY", "unsubscribe"])
    def test_workerds_other_methods(self, method: str) -> None:
        """workerd takes kj's methods beyond the common ones, in any case (measured with miniflare)."""
        assert Request("http://x/", method=method).method == method.upper()

    @pytest.mark.parametrize("method", ["FOO", "foo", "CONNECT", "connect", "M-SEARCH", "BIND", "LINK", "po\u017ft"])
    def test_methods_workerd_refuses(self, method: str) -> None:
        """A token workerd does not know as a method is refused as workerd does (CONNECT included)."""
        with pytest.raises(TypeError, match=f"^Invalid HTTP method string: {method}$"):
            Request("http://x/", method=method)

    @pytest.mark.parametrize("method", ["GET", "HEAD", "get"])
    def test_get_or_head_with_body(self, method: str) -> None:
        """A GET or HEAD request with a body raises TypeError with workerd's message."""
        with pytest.raises(TypeError, match=r"^Request with a GET or HEAD method cannot have a body\.$"):
            Request("http://x/", method=method, body="x")

    async def test_str_body(self) -> None:
        """A str body is UTF-8 encoded and gets a text/plain content type."""
        req = Request("http://x/", method="POST", body="é")
        assert req.headers["content-type"] == "text/plain;charset=UTF-8"
        assert await req.bytes() == "é".encode()

    async def test_explicit_content_type_is_kept(self) -> None:
        """A content type given in the headers is not replaced for a str body."""
        req = Request("http://x/", method="POST", body="{}", headers={"Content-Type": "application/json"})
        assert req.headers.get_all("content-type") == ["application/json"]
        assert await req.json() == {}

    async def test_bytes_like_bodies(self) -> None:
        """bytes, bytearray and memoryview bodies read back as bytes, copied at construction."""
        buf = bytearray(b"abc")
        req = Request("http://x/", method="PUT", body=buf)
        buf[0] = ord("z")
        assert await req.bytes() == b"abc"
        assert "content-type" not in req.headers
        assert await Request("http://x/", method="PUT", body=memoryview(b"mv")).bytes() == b"mv"

    async def test_streamed_body(self) -> None:
        """An async iterable of bytes is read as the concatenation of its chunks."""
        req = Request("http://x/", method="POST", body=_stream(b"a", b"", b"bc"))
        assert await req.text() == "abc"

    async def test_streamed_body_must_yield_bytes(self) -> None:
        """A stream that yields something other than bytes raises TypeError when read."""

        async def bad() -> AsyncIterator[Any]:
            yield "text"

        req = Request("http://x/", method="POST", body=bad())
        with pytest.raises(TypeError, match="must yield bytes, not str"):
            await req.bytes()

    async def test_body_iterator(self) -> None:
        """The body property iterates the chunks and uses the body up."""
        req = Request("http://x/", method="POST", body=_stream(b"a", b"b"))
        body = req.body
        assert body is not None
        assert [c async for c in body] == [b"a", b"b"]
        assert req.body_used

    @pytest.mark.parametrize("reader", ["text", "json", "bytes", "array_buffer", "arrayBuffer"])
    async def test_body_reads_once(self, reader: str) -> None:
        """A second read raises TypeError with Fetch's 'Body has already been used' message."""
        req = Request("http://x/", method="POST", body="1")
        await getattr(req, reader)()
        assert req.body_used and req.bodyUsed
        with pytest.raises(TypeError, match=BODY_USED):
            await getattr(req, reader)()

    async def test_invalid_json(self) -> None:
        """json() on a body that is not JSON raises ValueError."""
        with pytest.raises(ValueError):
            await Request("http://x/", method="POST", body="{").json()

    async def test_text_decoding_replaces_invalid_utf8_and_drops_bom(self) -> None:
        """text() decodes UTF-8, drops a leading BOM and replaces invalid bytes."""
        req = Request("http://x/", method="POST", body=b"\xef\xbb\xbfa\xffb")
        assert await req.text() == "a\ufffdb"

    def test_unsupported_body_type(self) -> None:
        """A body of another type raises TypeError naming the type."""
        with pytest.raises(TypeError, match="not dict"):
            Request("http://x/", method="POST", body={"a": 1})  # type: ignore[arg-type]

    def test_invalid_input(self) -> None:
        """An input that is neither a str nor a Request raises TypeError."""
        with pytest.raises(TypeError, match="URL string or a Request"):
            Request(b"http://x/")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("http://x", "http://x/"),
            ("HTTP://EXAMPLE.com:80/A?Q", "http://example.com/A?Q"),
            ("https://h:443", "https://h/"),
            ("https://h:8443/p", "https://h:8443/p"),
            ("http://User:Pw@H/", "http://User:Pw@h/"),
            ("http://x?", "http://x/?"),
            ("http://x/#frag", "http://x/#frag"),
            ("mailto:a@b", "mailto:a@b"),
        ],
    )
    def test_url_normalization(self, given: str, expected: str) -> None:
        """Absolute http(s) URLs are normalized like Fetch's parser; others are kept as given."""
        assert Request(given).url == expected

    async def test_copy_moves_the_body(self) -> None:
        """Request(other) copies URL, method and headers and moves the body over."""
        src = Request("http://x/a", method="POST", headers={"h": "1"}, body="data")
        copy = Request(src)
        assert (copy.url, copy.method, copy.headers["h"]) == ("http://x/a", "POST", "1")
        assert src.body_used
        assert await copy.text() == "data"
        copy.headers.set("h", "2")
        assert src.headers["h"] == "1"

    async def test_copy_with_overrides(self) -> None:
        """Overrides replace the copied method, headers or body; the source body is left alone."""
        src = Request("http://x/a", method="POST", body="data")
        copy = Request(src, method="PUT", headers={"k": "v"}, body="new")
        assert (copy.method, copy.headers["k"]) == ("PUT", "v")
        assert await copy.text() == "new"
        assert not src.body_used
        assert await src.text() == "data"

    def test_copy_of_a_used_body(self) -> None:
        """Copying a request whose body was used raises TypeError with workerd's message."""
        src = Request("http://x/", method="POST", body="d")
        Request(src)
        with pytest.raises(TypeError, match="^Cannot reconstruct a Request with a used body.$"):
            Request(src)

    def test_copy_to_get_with_a_body(self) -> None:
        """Changing a copied request with a body to GET raises TypeError."""
        src = Request("http://x/", method="POST", body="d")
        with pytest.raises(TypeError, match="GET or HEAD"):
            Request(src, method="GET")

    def test_repr(self) -> None:
        """The repr shows the method and URL."""
        assert repr(Request("http://x/")) == "<Request [GET http://x/]>"


class TestBuildRequest:
    async def test_from_url_and_init(self) -> None:
        """A URL and init options build a new Request."""
        req = build_request("http://counter/increment", {"method": "POST", "headers": {"a": "b"}, "body": "x"})
        assert (req.url, req.method, req.headers["a"]) == ("http://counter/increment", "POST", "b")
        assert await req.text() == "x"

    def test_without_init(self) -> None:
        """init may be None or empty."""
        assert build_request("http://x/", None).method == "GET"
        assert build_request("https://x/y", {}).url == "https://x/y"

    async def test_from_request_makes_a_new_one(self) -> None:
        """A Request input is copied, its body moved, as Fetch does in fetch()."""
        src = Request("http://x/", method="POST", body="b")
        req = build_request(src, {})
        assert req is not src
        assert src.body_used
        assert await req.text() == "b"

    @pytest.mark.parametrize(
        "url", ["/increment", "increment", "", "counter/increment", "http://", "http://[::1", "http://x:port/", "//x/y"]
    )
    def test_relative_or_malformed_url(self, url: str) -> None:
        """A relative or malformed URL raises workerd's TypeError 'Invalid URL: <url>' (measured)."""
        for init in ({}, {"method": "POST"}):
            with pytest.raises(TypeError) as info:
                build_request(url, init)
            assert str(info.value) == f"Invalid URL: {url}"

    @pytest.mark.parametrize("url", ["ftp://x/", "ws://x/", "mailto:a@b"])
    def test_non_http_url(self, url: str) -> None:
        """A URL workerd parses but cannot fetch raises TypeError 'Fetch API cannot load: <url>'."""
        with pytest.raises(TypeError) as info:
            build_request(url, {})
        assert str(info.value) == f"Fetch API cannot load: {url}"

    def test_http_url_with_an_empty_authority(self) -> None:
        """``http:///p``: as in workerd, the slashes are skipped and ``p`` is the host."""
        assert build_request("http:///p", {}).url == "http://p/"

    def test_relative_url_inside_a_request(self) -> None:
        """A Request cannot hold a relative URL at all (workerd's 'Invalid URL')."""
        with pytest.raises(TypeError, match="^Invalid URL: /x$"):
            Request("/x")

    def test_unknown_init_key(self) -> None:
        """An unknown init key raises TypeError naming it."""
        with pytest.raises(TypeError, match="'signal'"):
            build_request("http://x/", {"method": "GET", "signal": None})

    def test_invalid_input_type(self) -> None:
        """An input that is neither a str nor a Request raises TypeError."""
        with pytest.raises(TypeError, match="URL string or a durable.Request"):
            build_request(42, {})  # type: ignore[arg-type]

    def test_get_with_body(self) -> None:
        """A GET with a body is refused as the Request constructor does."""
        with pytest.raises(TypeError, match="GET or HEAD"):
            build_request("http://x/", {"body": "x"})


class TestResponse:
    async def test_defaults(self) -> None:
        """A Response defaults to 200 OK with no body and no content type."""
        resp = Response()
        assert (resp.status, resp.ok, resp.status_text, resp.statusText) == (200, True, "OK", "OK")
        assert "content-type" not in resp.headers
        assert await resp.text() == ""

    async def test_str_body(self) -> None:
        """A str body gets text/plain;charset=UTF-8, the type the seed counter answers with."""
        resp = Response("3")
        assert resp.headers["content-type"] == "text/plain;charset=UTF-8"
        assert await resp.text() == "3"

    async def test_status_and_headers(self) -> None:
        """Status, status text and headers are kept as given; ok is false outside 2xx."""
        resp = Response(b"nf", status=404, headers={"X-A": "b"}, status_text="Nope")
        assert (resp.status, resp.ok, resp.status_text, resp.headers["x-a"]) == (404, False, "Nope", "b")
        assert await resp.bytes() == b"nf"

    @pytest.mark.parametrize(("status", "text"), [(299, "Successful"), (599, "Server Error"), (418, "I'm a teapot")])
    def test_default_status_text(self, status: int, text: str) -> None:
        """The default status text is the standard phrase, else the status class as in workerd."""
        assert Response(status=status).status_text.lower() == text.lower()

    @pytest.mark.parametrize("value", [3, 1.5])
    def test_number_body_is_refused(self, value: float) -> None:
        """A number body raises TypeError telling to convert it with str() first."""
        with pytest.raises(TypeError, match=r"Response\(str\(value\)\)"):
            Response(value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("status", [0, 100, 101, 199, 600, 1000])
    def test_status_out_of_range(self, status: int) -> None:
        """A status outside 200..599 raises ValueError with workerd's RangeError message."""
        with pytest.raises(ValueError, match="range 200 to 599, inclusive"):
            Response(status=status)

    def test_status_must_be_int(self) -> None:
        """A status that is not an int raises TypeError."""
        with pytest.raises(TypeError):
            Response(status="200")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Response(status=True)
        with pytest.raises(TypeError):
            Response("text", status=200.0)  # type: ignore[arg-type]  # (a str body has a fast path)

    async def test_str_body_fast_path_builds_the_same_response(self) -> None:
        """Response(text) (its fast path) equals one built through every check (a header given)."""
        fast = Response("é", status=200)
        checked = Response("é", headers={"content-type": "text/plain;charset=UTF-8"})
        assert list(fast.headers.multi_items()) == list(checked.headers.multi_items())
        assert (fast.status, fast.status_text, fast.web_socket, fast.body_used) == (200, "OK", None, False)
        assert await fast.bytes() == await checked.bytes() == "é".encode()

    @pytest.mark.parametrize("status", [204, 205, 304])
    def test_null_body_status(self, status: int) -> None:
        """204, 205 and 304 refuse a body but accept an empty one, as workerd does."""
        with pytest.raises(TypeError, match="null body status"):
            Response("x", status=status)
        assert Response(b"", status=status).body is None

    def test_invalid_status_text(self) -> None:
        """A status text with control characters raises TypeError (header injection)."""
        with pytest.raises(TypeError, match="Invalid statusText"):
            Response(status_text="a\r\nb")

    @pytest.mark.parametrize("reader", ["text", "json", "bytes"])
    async def test_body_reads_once(self, reader: str) -> None:
        """A second read of a response body raises TypeError."""
        resp = Response("1")
        await getattr(resp, reader)()
        with pytest.raises(TypeError, match=BODY_USED):
            await getattr(resp, reader)()

    async def test_streamed_body(self) -> None:
        """A streamed response body reads back as its chunks joined."""
        assert await Response(_stream(b"x", b"y")).text() == "xy"

    async def test_json_builder_and_reader(self) -> None:
        """Response.json(data) builds a compact application/json response; await r.json() parses it."""
        resp = Response.json({"a": [1, "é"]}, status=201, headers={"X": "1"})
        assert (resp.status, resp.headers["content-type"], resp.headers["x"]) == (201, "application/json", "1")
        assert await Response.json({"a": [1, "é"]}).text() == '{"a":[1,"é"]}'
        assert await resp.json() == {"a": [1, "é"]}

    def test_json_keeps_a_given_content_type(self) -> None:
        """Response.json keeps a content type given in its headers."""
        resp = Response.json([], headers={"Content-Type": "application/vnd.x+json"})
        assert resp.headers.get_all("content-type") == ["application/vnd.x+json"]

    def test_json_builder_on_a_subclass(self) -> None:
        """Response.json on a subclass builds an instance of the subclass."""

        class MyResponse(Response):
            pass

        assert type(MyResponse.json(1)) is MyResponse

    def test_json_refuses_what_json_cannot_spell(self) -> None:
        """Response.json raises for values JSON cannot represent."""
        with pytest.raises(TypeError):
            Response.json({1, 2})
        with pytest.raises(ValueError):
            Response.json(float("nan"))

    async def test_redirect(self) -> None:
        """Response.redirect builds a bodiless redirect with a Location header."""
        resp = Response.redirect("https://example.com/", 301)
        assert (resp.status, resp.headers["location"]) == (301, "https://example.com/")
        assert Response.redirect("https://example.com/a b").headers["location"] == "https://example.com/a%20b"
        assert Response.redirect("http://x/").status == 302
        with pytest.raises(ValueError, match="200 is not a redirect status code"):
            Response.redirect("http://x/", 200)
        with pytest.raises(TypeError, match="^Unable to parse URL: /x$"):  # workerd's, for a relative URL
            Response.redirect("/x")
        # No header injection: the URL parser drops CR and LF (see test_http_workerd.TestRedirectUrl).
        assert Response.redirect("http://x/\r\nSet-Cookie: a=b").headers["location"] == "http://x/Set-Cookie:%20a=b"

    def test_repr(self) -> None:
        """The repr shows the status and its text."""
        assert repr(Response(status=404)) == "<Response [404 Not Found]>"


class TestWorkers:
    def test_entrypoint_stores_ctx_and_env(self) -> None:
        """WorkerEntrypoint(ctx, env) keeps both as attributes."""
        ctx, env = ExecutionContext(), object()
        worker = WorkerEntrypoint(ctx, env)
        assert worker.ctx is ctx and worker.env is env

    async def test_base_fetch_raises(self) -> None:
        """A Worker that does not define fetch raises Cloudflare's 'Handler does not export' error."""
        with pytest.raises(NotImplementedError, match=r"does not export a fetch\(\) function"):
            await WorkerEntrypoint(ExecutionContext(), None).fetch(Request("http://x/"))

    async def test_wait_until_runs_to_completion(self) -> None:
        """wait_until starts the work at once and _drain waits for it, including work it adds."""
        ctx = ExecutionContext()
        done: list[str] = []
        gate = asyncio.Event()

        async def second() -> None:
            done.append("second")

        async def first() -> None:
            await gate.wait()
            ctx.waitUntil(second())
            done.append("first")

        ctx.wait_until(first())
        gate.set()
        await ctx._drain()
        assert done == ["first", "second"]

    async def test_wait_until_failure_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """An exception in a wait_until task is logged, not raised."""
        ctx = ExecutionContext()

        async def boom() -> None:
            raise RuntimeError("late failure")

        ctx.wait_until(boom())
        with caplog.at_level(logging.ERROR, logger="durable"):
            await ctx._drain()
        assert "wait_until() task failed" in caplog.text
        assert "late failure" in caplog.text

    def test_wait_until_needs_an_awaitable(self) -> None:
        """wait_until refuses something that is not awaitable."""
        with pytest.raises(TypeError, match="expects an awaitable"):
            ExecutionContext().wait_until(3)  # type: ignore[arg-type]

    def test_pass_through_on_exception_is_a_no_op(self) -> None:
        """pass_through_on_exception is accepted and does nothing."""
        ctx = ExecutionContext()
        ctx.pass_through_on_exception()
        ctx.passThroughOnException()
        assert ctx._tasks == []
