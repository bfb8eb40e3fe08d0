"""HTTP objects compared with workerd: each expectation here was measured with miniflare 4
(compatibility date 2026-04-07); the measurement is quoted in each test's docstring."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import durable
from durable._http import Headers, Request, Response


class TestStatusText:
    @pytest.mark.parametrize(
        ("status", "text"),
        [
            (413, "Payload Too Large"),
            (414, "URI Too Long"),
            (416, "Range Not Satisfiable"),
            (418, "I'm a teapot"),
            (425, "Client Error"),
            (422, "Unprocessable Entity"),
            (200, "OK"),
            (299, "Successful"),
            (404, "Not Found"),
            (599, "Server Error"),
        ],
    )
    def test_default_status_text_is_workerds(self, status: int, text: str) -> None:
        """``new Response(null, {status}).statusText`` in workerd, for every status 200..599, is
        its own table: 413 "Payload Too Large", 414 "URI Too Long", 416 "Range Not Satisfiable",
        418 "I'm a teapot", and 425 (which it does not name) "Client Error"; Python's
        ``http.HTTPStatus`` phrases differ there."""
        assert Response(status=status).status_text == text

    @pytest.mark.parametrize("text", ["a\x7fb", "a\x80b", "\xff", "é", "€", "😀", " a ", ""])
    def test_status_text_accepts_del_and_non_ascii(self, text: str) -> None:
        """workerd: ``new Response(null, {statusText: "a\\x7fb"})`` (and U+0080, U+00FF, é, €, an
        emoji, spaces, "") is accepted and kept as given."""
        assert Response(status_text=text).status_text == text

    @pytest.mark.parametrize("code", [0, 1, 8, 9, 10, 13, 31])
    def test_status_text_refuses_control_characters(self, code: int) -> None:
        """workerd: a statusText holding U+0000..U+001F (tab included) raises ``TypeError: Invalid
        statusText``."""
        with pytest.raises(TypeError, match="^Invalid statusText$"):
            Response(status_text=f"a{chr(code)}b")


class TestNullBodyStatus:
    @pytest.mark.parametrize("status", [204, 205, 304])
    @pytest.mark.parametrize("body", ["", b"", bytearray(), memoryview(b"")])
    async def test_empty_body_adds_no_content_type(self, status: int, body: object) -> None:
        """workerd: ``new Response("", {status: 204}).headers`` is empty and its body null (an
        empty str adds no ``content-type`` there, unlike ``new Response("")`` with status 200)."""
        response = Response(body, status=status)  # type: ignore[arg-type]
        assert response.headers.multi_items() == []
        assert response.body is None
        assert await response.text() == ""

    def test_empty_body_keeps_a_given_content_type(self) -> None:
        """workerd: ``new Response("", {status: 204, headers: {"content-type": "x/y"}})`` keeps it."""
        response = Response("", status=204, headers={"content-type": "x/y"})
        assert response.headers.multi_items() == [("content-type", "x/y")]

    def test_empty_str_with_status_200_has_the_default_content_type(self) -> None:
        """workerd: ``new Response("", {status: 200})`` has ``content-type: text/plain;charset=UTF-8``."""
        assert Response("").headers.multi_items() == [("content-type", "text/plain;charset=UTF-8")]

    @pytest.mark.parametrize("status", [204, 205, 304])
    def test_a_body_is_refused(self, status: int) -> None:
        """workerd: ``new Response("a", {status: 204})`` raises ``TypeError: Response with null body
        status (101, 204, 205, or 304) cannot have a body.``"""
        with pytest.raises(TypeError, match=r"^Response with null body status \(101, 204, 205, or 304\)"):
            Response("a", status=status)


class TestHeaders:
    @pytest.mark.parametrize("call", ["get", "has", "get_all", "delete", "set", "append"])
    def test_invalid_name_raises(self, call: str) -> None:
        """workerd: ``new Headers().get("a b")`` (and ``has``, ``delete``, ``set``) raises
        ``TypeError: Invalid header name.``; durable's ``get_all`` checks the name the same way."""
        args = ("a b", "v") if call in ("set", "append") else ("a b",)
        with pytest.raises(TypeError, match=r"^Invalid header name\.$"):
            getattr(Headers(), call)(*args)

    def test_invalid_name_is_absent_for_the_mapping_protocol(self) -> None:
        """``in`` and subscripting stay a mapping's: a name that is not a token is absent."""
        h = Headers({"a": "1"})
        assert "a b" not in h
        with pytest.raises(KeyError):
            h["a b"]

    @pytest.mark.parametrize("pair", [("a",), ("a", "b", "c")])
    def test_init_pair_of_wrong_length(self, pair: tuple[str, ...]) -> None:
        """workerd: ``new Headers([["a"]])`` and ``new Headers([["a", "b", "c"]])`` raise ``TypeError:
        To initialize a Headers object from a sequence, each inner sequence must have exactly two
        elements.``"""
        with pytest.raises(
            TypeError,
            match=r"^To initialize a Headers object from a sequence, each inner sequence must have exactly two elements\.",
        ):
            Headers([pair])  # type: ignore[list-item]


class _Echo(durable.DurableObject):
    async def fetch(self, request: Request) -> Response:
        return Response.json(
            {
                "url": request.url,
                "method": request.method,
                "headers": request.headers.multi_items(),
                "body": await request.text(),
            }
        )


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class TestWhatTheObjectSees:
    """workerd (miniflare 4, 2026-04-07): an object's ``fetch`` handler echoing ``[...request.headers]``."""

    @pytest.mark.parametrize(
        ("init", "headers"),
        [
            ({}, []),
            (
                {"method": "POST", "body": "abc"},
                [("content-length", "3"), ("content-type", "text/plain;charset=UTF-8")],
            ),
            ({"method": "PUT", "body": b"hi"}, [("content-length", "2")]),
            ({"method": "POST", "body": ""}, [("content-length", "0"), ("content-type", "text/plain;charset=UTF-8")]),
            ({"method": "POST", "body": b""}, [("content-length", "0")]),
            (
                {"method": "POST", "body": "abc", "headers": {"content-length": "5"}},
                [("content-length", "5"), ("content-type", "text/plain;charset=UTF-8")],
            ),
            (
                {"method": "POST", "body": "abc", "headers": {"transfer-encoding": "chunked"}},
                [("content-type", "text/plain;charset=UTF-8"), ("transfer-encoding", "chunked")],
            ),
            ({"headers": {"content-length": "0"}}, [("content-length", "0")]),
        ],
    )
    async def test_framing_headers(self, init: dict[str, Any], headers: list[tuple[str, str]]) -> None:
        """A body arrives with ``content-length`` (``0`` when empty), unless the sender set
        ``content-length`` or ``transfer-encoding`` itself: workerd measured ``[["content-length",
        "3"], ["content-type", "text/plain;charset=UTF-8"]]`` for ``{method: "POST", body: "abc"}``,
        and keeps a given ``content-length: 5`` as it is."""
        async with durable.Runtime() as rt:
            seen = await (await rt.namespace(_Echo).get_by_name("a").fetch("http://h/echo", **init)).json()
        assert sorted(map(tuple, seen["headers"])) == headers

    async def test_streamed_body_is_chunked(self) -> None:
        """workerd: a ``ReadableStream`` body arrives with ``transfer-encoding: chunked``."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(_Echo).get_by_name("a")
            seen = await (await stub.fetch("http://h/echo", method="POST", body=_stream(b"a"))).json()
        assert seen["headers"] == [["transfer-encoding", "chunked"]]
        assert seen["body"] == "a"

    async def test_forwarded_request(self) -> None:
        """workerd: ``stub.fetch(new Request(url, {method: "PATCH", body: "z", headers:
        {"Content-Type": "a/b"}}))`` arrives with ``content-length: 1`` and ``content-type: a/b``;
        the sender's request keeps its own headers."""
        request = Request("http://h/echo?q=1", method="PATCH", body="z", headers={"Content-Type": "a/b"})
        async with durable.Runtime() as rt:
            seen = await (await rt.namespace(_Echo).get_by_name("a").fetch(request)).json()
        assert sorted(map(tuple, seen["headers"])) == [("content-length", "1"), ("content-type", "a/b")]
        assert request.headers.multi_items() == [("content-type", "a/b")]


class TestResponseAttributes:
    def test_a_built_response(self) -> None:
        """workerd: ``new Response("x")`` has ``redirected`` false, ``type`` "default", ``url`` ""."""
        response = Response("x")
        assert (response.redirected, response.type, response.url) == (False, "default", "")

    def test_error(self) -> None:
        """workerd: ``Response.error()`` has status 0, type "error", ok false, statusText "", no
        headers, a null body; its clone too."""
        for response in (Response.error(), Response.error().clone()):
            assert (response.status, response.type, response.ok, response.status_text) == (0, "error", False, "")
            assert response.headers.multi_items() == []
            assert response.body is None

    async def test_a_clone_has_no_web_socket(self) -> None:
        """A clone's ``web_socket`` is None (it raised AttributeError), and an object may return it."""
        assert Response("x").clone().web_socket is None

        class Cloner(durable.DurableObject):
            async def fetch(self, request: Request) -> Response:
                return Response("x").clone()

        async with durable.Runtime() as rt:
            assert await (await rt.namespace(Cloner).get_by_name("a").fetch("http://h/")).text() == "x"

    async def test_an_object_cannot_return_an_error_response(self) -> None:
        """workerd: an object's fetch returning ``Response.error()`` makes ``stub.fetch`` raise
        ``TypeError: Return value from serve handler must not be an error response (like
        Response.error())``."""

        class Failing(durable.DurableObject):
            async def fetch(self, request: Request) -> Response:
                return Response.error()

        async with durable.Runtime() as rt:
            with pytest.raises(
                TypeError,
                match=r"^Return value from serve handler must not be an error response \(like Response\.error\(\)\)$",
            ):
                await rt.namespace(Failing).get_by_name("a").fetch("http://h/")


class TestRequestRedirect:
    def test_modes(self) -> None:
        """workerd: ``new Request(url).redirect`` is "follow"; "manual" is kept; a copy keeps the
        mode unless given (``new Request(manual).redirect`` "manual", ``clone()`` "manual",
        ``new Request(manual, {redirect: "follow"})`` "follow")."""
        assert Request("http://h/").redirect == "follow"
        manual = Request("http://h/", redirect="manual")
        assert (manual.redirect, manual.clone().redirect) == ("manual", "manual")
        assert Request(manual, redirect="follow").redirect == "follow"
        assert Request(Request("http://h/", redirect="manual")).redirect == "manual"

    @pytest.mark.parametrize("mode", ["error", "foo", "FOLLOW"])
    def test_other_modes_are_refused(self, mode: str) -> None:
        """workerd: ``new Request(url, {redirect: "error"})`` raises ``TypeError: Invalid redirect
        value, must be one of "follow" or "manual" ("error" won't be implemented since it does not
        make sense at the edge; use "manual" and check the response status code).``"""
        with pytest.raises(
            TypeError,
            match=r'^Invalid redirect value, must be one of "follow" or "manual" \("error" won\'t be implemented',
        ):
            Request("http://h/", redirect=mode)


class _Redirector(durable.DurableObject):
    """The object of workerd's measurement: ``/r<status>?to=<location>`` answers that redirect."""

    async def fetch(self, request: Request) -> Response:
        parts = urlsplit(request.url)
        query = parse_qs(parts.query)
        if parts.path == "/echo":
            return Response.json(
                {
                    "url": request.url,
                    "method": request.method,
                    "headers": sorted(request.headers.multi_items()),
                    "body": await request.text(),
                    "redirect": request.redirect,
                }
            )
        if parts.path.startswith("/r"):
            return Response("moved", status=int(parts.path[2:]), headers={"location": query.get("to", ["/echo"])[0]})
        if parts.path == "/again":
            return Response(None, status=302, headers={"location": "/again"})
        if parts.path == "/loop":
            n = int(query.get("n", ["0"])[0])
            return Response.redirect(f"http://h/loop?n={n + 1}", 302)
        if parts.path == "/noloc":
            return Response(None, status=302)
        if parts.path == "/emptyloc":
            return Response(None, status=302, headers={"location": ""})
        if parts.path == "/badloc":
            return Response(None, status=302, headers={"location": "http://[x"})
        return Response("body!", headers={"x-a": "1"})


async def _fetch(url: str | Request, **init: Any) -> tuple[int, str, bool, Any]:
    async with durable.Runtime() as rt:
        response = await rt.namespace(_Redirector).get_by_name("a").fetch(url, **init)
        text = await response.text()
        return response.status, response.url, response.redirected, (json.loads(text) if text.startswith("{") else text)


class TestStubFetchRedirects:
    """workerd (miniflare 4, 2026-04-07) follows a redirect an object answers to ``stub.fetch``,
    sending the next request to the same object."""

    async def test_the_object_and_the_caller_see(self) -> None:
        """workerd: the object sees ``redirect`` "manual" and no fragment; the caller's response has
        ``url`` its request's (``http://h/echo``), ``redirected`` false."""
        status, url, redirected, seen = await _fetch("http://h/echo?a#frag")
        assert (status, url, redirected) == (200, "http://h/echo?a", False)
        assert (seen["url"], seen["redirect"]) == ("http://h/echo?a", "manual")

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    async def test_get_is_followed(self, status: int) -> None:
        """workerd: a GET answered 301, 302, 303, 307 or 308 with ``location: /echo`` ends at
        ``/echo``: status 200, ``url`` "http://h/echo", ``redirected`` true."""
        code, url, redirected, seen = await _fetch(f"http://h/r{status}")
        assert (code, url, redirected) == (200, "http://h/echo", True)
        assert (seen["method"], seen["headers"], seen["body"]) == ("GET", [], "")

    @pytest.mark.parametrize("status", [301, 302, 303])
    async def test_post_becomes_get(self, status: int) -> None:
        """workerd: a POST answered 301, 302 or 303 is followed by a GET without body nor
        content-length, other headers (content-type too) kept."""
        _, _, _, seen = await _fetch(
            f"http://h/r{status}", method="POST", body="B", headers={"x-k": "1", "content-type": "a/b"}
        )
        assert (seen["method"], seen["body"]) == ("GET", "")
        assert seen["headers"] == [["content-type", "a/b"], ["x-k", "1"]]

    @pytest.mark.parametrize("status", [307, 308])
    async def test_post_is_sent_again(self, status: int) -> None:
        """workerd: a POST answered 307 or 308 is sent again, body and content-length included."""
        _, _, _, seen = await _fetch(
            f"http://h/r{status}", method="POST", body="B", headers={"x-k": "1", "content-type": "a/b"}
        )
        assert (seen["method"], seen["body"]) == ("POST", "B")
        assert seen["headers"] == [["content-length", "1"], ["content-type", "a/b"], ["x-k", "1"]]

    async def test_other_methods(self) -> None:
        """workerd: PUT answered 303 becomes GET (content-type kept); PUT answered 301 stays PUT
        with its body; HEAD answered 303 stays HEAD (and gets no body); DELETE answered 303 is GET."""
        _, _, _, seen = await _fetch("http://h/r303", method="PUT", body="B")
        assert (seen["method"], seen["headers"]) == ("GET", [["content-type", "text/plain;charset=UTF-8"]])
        _, _, _, seen = await _fetch("http://h/r301", method="PUT", body="B")
        assert (seen["method"], seen["body"]) == ("PUT", "B")
        assert await _fetch("http://h/r303", method="HEAD") == (200, "http://h/echo", True, "")
        _, _, _, seen = await _fetch("http://h/r303", method="DELETE")
        assert seen["method"] == "GET"

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/r300", (300, "http://h/r300", False, "moved")),
            ("/noloc", (302, "http://h/noloc", False, "")),
            ("/emptyloc", (302, "http://h/emptyloc", False, "")),
        ],
    )
    async def test_not_followed(self, path: str, expected: tuple[Any, ...]) -> None:
        """workerd: 300, and a redirect without a Location (or an empty one), are returned as they are."""
        assert await _fetch("http://h" + path) == expected

    async def test_manual(self) -> None:
        """workerd: ``redirect: "manual"`` (in the init or on the Request) returns the redirect."""
        assert await _fetch("http://h/r301", redirect="manual") == (301, "http://h/r301", False, "moved")
        assert await _fetch(Request("http://h/r302", redirect="manual")) == (302, "http://h/r302", False, "moved")

    @pytest.mark.parametrize(
        ("to", "url"),
        [
            ("echo?z=1", "http://h/echo?z=1"),
            ("https://other.example/echo", "https://other.example/echo"),
            ("ftp://x/echo", "ftp://x/echo"),
        ],
    )
    async def test_location_is_resolved(self, to: str, url: str) -> None:
        """workerd: a relative Location is resolved against the request's URL; any absolute one is
        followed (to the same object), an ``ftp:`` one too."""
        _, final, redirected, seen = await _fetch(f"http://h/r302?to={quote(to)}")
        assert (final, redirected, seen["url"]) == (url, True, url)

    async def test_invalid_location(self) -> None:
        """workerd: ``location: http://[x`` raises ``TypeError: Invalid Location header; unable to
        follow redirect.``"""
        with pytest.raises(TypeError, match=r"^Invalid Location header; unable to follow redirect\.$"):
            await _fetch("http://h/badloc")

    async def test_too_many_redirects(self) -> None:
        """workerd: after 20 redirects, the 21st raises ``TypeError: Too many redirects.`` followed
        by the 21 URLs requested, joined with ", "."""
        urls = ["http://h/loop"] + [f"http://h/loop?n={n}" for n in range(1, 21)]
        with pytest.raises(TypeError) as caught:
            await _fetch("http://h/loop")
        assert str(caught.value) == "Too many redirects." + ", ".join(urls)

    async def test_streamed_body_cannot_be_sent_again(self) -> None:
        """workerd: a ReadableStream body answered 307 raises ``TypeError: A request with a
        one-time-use body (it was initialized from a stream, not a buffer) encountered a redirect
        requiring the body to be retransmitted. ...``"""
        with pytest.raises(TypeError, match=r"^A request with a one-time-use body \(it was initialized from a stream"):
            await _fetch("http://h/r307", method="POST", body=_stream(b"a"))

    async def test_head_response_has_no_body(self) -> None:
        """workerd: ``stub.fetch(url, {method: "HEAD"})`` of an object answering "body!" gives a
        response whose body is null, headers kept."""
        async with durable.Runtime() as rt:
            response = await rt.namespace(_Redirector).get_by_name("a").fetch("http://h/x", method="HEAD")
            assert response.body is None
            assert response.headers.multi_items() == [("x-a", "1"), ("content-type", "text/plain;charset=UTF-8")]
            assert await response.text() == ""

    async def test_clone_keeps_url(self) -> None:
        """workerd: the clone of a redirected response keeps ``url`` and ``redirected``."""
        async with durable.Runtime() as rt:
            response = await rt.namespace(_Redirector).get_by_name("a").fetch("http://h/r302")
            copy = response.clone()
        assert (copy.url, copy.redirected) == ("http://h/echo", True)

    async def test_from_an_object_and_from_a_thread(self) -> None:
        """The same from inside an object (the call goes through the caller's gates) and from a
        BlockingRuntime on another thread."""

        class Caller(durable.DurableObject):
            async def go(self, url: str) -> list[Any]:
                stub = self.env.REDIRECTOR.get_by_name("a")
                response = await stub.fetch(url)
                return [response.status, response.url, response.redirected]

        async with durable.Runtime() as rt:
            rt.namespace(_Redirector, name="REDIRECTOR")
            caller = rt.namespace(Caller).get_by_name("c")
            assert await caller.go("http://h/r307") == [200, "http://h/echo", True]
            assert await caller.go("http://h/r300") == [300, "http://h/r300", False]

        with durable.BlockingRuntime() as brt:
            response = brt.namespace(_Redirector).get_by_name("a").fetch("http://h/r308", method="PUT", body="b")
            assert (response.status, response.url, response.redirected) == (200, "http://h/echo", True)
            assert json.loads(brt.run(response.text))["body"] == "b"

    async def test_a_workers_request_forwarded_is_not_followed(self) -> None:
        """workerd: a Worker's own request says ``redirect`` "manual", so ``stub.fetch(request)``
        returns the object's redirect (302, ``url`` the request's, ``redirected`` false), while
        ``stub.fetch(request.url)`` follows it (200, ``redirected`` true)."""
        import httpx

        class Worker(durable.WorkerEntrypoint):
            async def fetch(self, request: Request) -> Response:
                stub = self.env.REDIRECTOR.get_by_name("a")
                forwarded = await stub.fetch(request)
                by_url = await stub.fetch(request.url)
                return Response.json(
                    [
                        request.redirect,
                        forwarded.status,
                        forwarded.url,
                        forwarded.redirected,
                        by_url.status,
                        by_url.redirected,
                    ]
                )

        async with durable.Runtime() as rt:
            rt.namespace(_Redirector, name="REDIRECTOR")
            transport = httpx.ASGITransport(app=durable.asgi_app(Worker, rt))
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                answer = (await client.get("/r302")).json()
        assert answer == ["manual", 302, "http://h/r302", False, 200, True]


class _CfEcho(durable.DurableObject):
    async def fetch(self, request: Request) -> Response:
        return Response.json({"cf": request.cf})


class TestCf:
    """workerd (miniflare 4, 2026-04-07): ``cf`` in a RequestInit."""

    def test_request_keeps_a_copy(self) -> None:
        """workerd: ``new Request(url, {cf: o}).cf`` equals ``o`` but is not ``o`` (a later change
        to ``o`` is not seen); without ``cf`` it is undefined; a copy and a clone keep it, a copy
        given ``cf`` takes the new one."""
        given = {"a": {"b": [1, 2]}, "c": "s"}
        request = Request("http://h/", cf=given)
        given["c"] = "changed"
        assert request.cf == {"a": {"b": [1, 2]}, "c": "s"}
        assert Request("http://h/").cf is None
        assert Request(request).cf == request.cf
        assert request.clone().cf == request.cf
        assert Request(request, cf={"b": 2}).cf == {"b": 2}

    @pytest.mark.parametrize("value", ["x", None, 3])
    def test_not_an_object(self, value: Any) -> None:
        """workerd: ``{cf: "x"}`` and ``{cf: null}`` raise ``TypeError: Incorrect type for the 'cf'
        field on 'RequestInitializerDict': the provided value is not of type 'Object'.``"""
        with pytest.raises(TypeError, match=r"^Incorrect type for the 'cf' field on 'RequestInitializerDict'"):
            Request("http://h/", cf=value)

    async def test_stub_fetch_delivers_it(self) -> None:
        """workerd: ``stub.fetch(url, {cf: {a: 1, b: "x"}})`` -> the object's ``request.cf`` is
        ``{a: 1, b: "x"}``; without it, undefined; ``stub.fetch(new Request(url, {cf: {a: 1}}))``
        -> ``{a: 1}``, and a ``cf`` in the init wins over the request's."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(_CfEcho).get_by_name("a")
            assert await (await stub.fetch("http://h/", cf={"a": 1, "b": "x"})).json() == {"cf": {"a": 1, "b": "x"}}
            assert await (await stub.fetch("http://h/")).json() == {"cf": None}
            assert await (await stub.fetch(Request("http://h/", cf={"a": 1}))).json() == {"cf": {"a": 1}}
            seen = await (await stub.fetch(Request("http://h/", cf={"a": 1}), cf={"z": 9})).json()
            assert seen == {"cf": {"z": 9}}
            with pytest.raises(TypeError, match=r"^Incorrect type for the 'cf' field"):
                await stub.fetch("http://h/", cf="str")


class _Cached(durable.DurableObject):
    response: Response | None = None

    async def fetch(self, request: Request) -> Response:
        path = urlsplit(request.url).path
        if path == "/state":
            assert self.response is not None
            kept = self.response
            return Response.json({"used": kept.body_used, "url": kept.url, "headers": kept.headers.multi_items()})
        if path == "/read-first":
            response = Response("x")
            await response.text()
            return response
        if path == "/null":
            if self.response is None:
                self.response = Response(None, status=204)
            return self.response
        if self.response is None:
            self.response = Response("x", headers={"a": "b"})
        return self.response


class TestReturnedResponse:
    """workerd (miniflare 4, 2026-04-07): an object caching ``this.r = new Response("x", {headers:
    {a: "b"}})`` and returning it to every ``stub.fetch``."""

    async def test_the_same_response_twice(self) -> None:
        """workerd: the first caller gets "x"; afterwards the object's response has ``bodyUsed``
        true, ``url`` "" and its own headers (the caller's are immutable: ``TypeError: Can't
        modify immutable headers.``, and ``new Headers(r.headers)`` is not); the second
        ``stub.fetch`` rejects with ``TypeError: Body has already been used. It can only be used
        once. Use tee() first if you need to read it twice.`` (durable says clone())."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(_Cached).get_by_name("a")
            first = await stub.fetch("http://h/cached")
            with pytest.raises(TypeError, match=r"^Can't modify immutable headers\.$"):
                first.headers.set("z", "1")
            Headers(first.headers).set("z", "1")
            assert (first.url, await first.text()) == ("http://h/cached", "x")
            state = await (await stub.fetch("http://h/state")).json()
            assert state == {
                "used": True,
                "url": "",
                "headers": [["a", "b"], ["content-type", "text/plain;charset=UTF-8"]],
            }
            with pytest.raises(TypeError, match=r"^Body has already been used\. It can only be used once\."):
                await stub.fetch("http://h/cached")

    async def test_a_head_uses_the_body_too(self) -> None:
        """workerd: a HEAD answered with the cached response gets no body, and a GET after it
        rejects with ``TypeError: Body has already been used. ...`` (the HEAD used it)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(_Cached).get_by_name("a")
            head = await stub.fetch("http://h/cached", method="HEAD")
            assert (head.status, await head.text()) == (200, "")
            with pytest.raises(TypeError, match=r"^Body has already been used\."):
                await stub.fetch("http://h/cached")

    async def test_a_body_the_object_read(self) -> None:
        """workerd: returning ``r`` after ``await r.text()`` makes ``stub.fetch`` reject with
        ``TypeError: Body has already been used. ...`` (durable raised only on the caller's read)."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError, match=r"^Body has already been used\."):
                await rt.namespace(_Cached).get_by_name("a").fetch("http://h/read-first")

    async def test_a_null_body_may_be_returned_again(self) -> None:
        """workerd: a cached ``new Response(null, {status: 204})`` answers every fetch (204, "")."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(_Cached).get_by_name("a")
            for _ in range(3):
                response = await stub.fetch("http://h/null")
                assert (response.status, await response.text()) == (204, "")


class _Touch(durable.DurableObject):
    async def fetch(self, request: Request) -> Response:
        seen = {}
        changes: list[tuple[str, Callable[[], None]]] = [
            ("set", lambda: request.headers.set("z", "1")),
            ("clone", lambda: request.clone().headers.append("z", "1")),
            ("del", lambda: request.headers.__delitem__("nope")),
        ]
        for name, change in changes:
            try:
                change()
                seen[name] = "ok"
            except TypeError as exc:
                seen[name] = str(exc)
        copy = Request(request)
        copy.headers.set("z", "1")
        seen["copy"] = copy.headers.get("z") or ""
        return Response.json(seen, headers={"a": "b"})


class TestImmutableHeaders:
    """workerd (miniflare 4, 2026-04-07): the headers of the request an object receives, and of
    the response ``stub.fetch`` returns, and of their clones, raise ``TypeError: Can't modify
    immutable headers.`` on set, append and delete (even of an absent name); ``new
    Request(request)`` and ``new Headers(h)`` have mutable ones."""

    async def test_the_objects_request(self) -> None:
        async with durable.Runtime() as rt:
            response = await rt.namespace(_Touch).get_by_name("a").fetch("http://h/", headers={"x": "1"})
            message = "Can't modify immutable headers."
            assert await response.clone().json() == {"set": message, "clone": message, "del": message, "copy": "1"}
            changes: list[Callable[[], None]] = [
                lambda: response.headers.append("z", "1"),
                lambda: response.headers.delete("nope"),
                lambda: response.clone().headers.set("z", "1"),
            ]
            _all_refused(changes)
            mutable = response.headers.copy()
            mutable.set("z", "1")
            assert mutable.get("z") == "1"

    def test_a_workers_request(self) -> None:
        """workerd: a Worker's incoming ``request.headers.set(...)`` raises the same TypeError."""
        from durable._http import headers_from_server, request_from_server

        request = request_from_server("http://h/", "GET", headers_from_server([(b"x", b"1")]), None)
        with pytest.raises(TypeError, match=r"^Can't modify immutable headers\.$"):
            request.headers["z"] = "1"


def _all_refused(changes: list[Callable[[], None]]) -> None:
    """Each change of immutable headers raises workerd's TypeError."""
    for change in changes:
        with pytest.raises(TypeError, match=r"^Can't modify immutable headers\.$"):
            change()


class TestRedirectHeaders:
    """workerd (miniflare 4, 2026-04-07): ``Response.redirect(url, 301).headers`` is immutable:
    ``set``, ``append`` and ``delete`` raise ``TypeError: Can't modify immutable headers.``, and so
    do those of its ``clone()``; ``new Headers(r.headers)`` is mutable, and ``Response.json(...)``
    has mutable headers."""

    def test_redirect_headers_are_immutable(self) -> None:
        response = Response.redirect("http://a/", 301)
        changes: list[Callable[[], None]] = [
            lambda: response.headers.set("x", "1"),
            lambda: response.headers.append("x", "1"),
            lambda: response.headers.delete("location"),
            lambda: response.clone().headers.set("x", "1"),
        ]
        _all_refused(changes)
        assert list(response.headers.items()) == [("location", "http://a/")]
        copy = Headers(response.headers)
        copy.set("y", "1")
        assert copy.get("y") == "1"

    def test_json_response_headers_stay_mutable(self) -> None:
        response = Response.json(1)
        response.headers.set("x", "1")
        assert response.headers.get("x") == "1"


class TestJsonBody:
    """workerd (miniflare 4, 2026-04-07): ``await new Response("NaN").json()`` raises ``SyntaxError:
    "NaN" is not valid JSON``, ``"Infinity"`` likewise, ``"-Infinity"`` ``SyntaxError: No number
    after minus sign ...``, ``"[1, NaN]"`` ``SyntaxError: Unexpected token 'N' ...``; a Request's
    ``json()`` the same. Python's parser takes these constants; durable raises ``ValueError``
    (``json.JSONDecodeError``), as for any other invalid JSON."""

    @pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[1, NaN]", '{"a": -Infinity}'])
    async def test_non_json_constants_are_refused(self, text: str) -> None:
        with pytest.raises(json.JSONDecodeError, match="is not valid JSON"):
            await Response(text).json()
        with pytest.raises(ValueError, match="is not valid JSON"):
            await Request("http://a/", method="POST", body=text).json()

    async def test_json_still_parses(self) -> None:
        """workerd: ``" 1 "`` parses as 1; an empty body raises ``SyntaxError: Unexpected end of JSON input``."""
        assert await Response(' {"a": [1, 2.5, null, true, "NaN"]} ').json() == {"a": [1, 2.5, None, True, "NaN"]}
        with pytest.raises(json.JSONDecodeError):
            await Response("").json()


class TestLoneSurrogates:
    """workerd (miniflare 4, 2026-04-07) sends a string holding a lone surrogate as WTF-8:
    ``new Response("a\\ud800b")`` reads as the bytes ``61 ED A0 80 62`` (a Request's body too);
    ``Response.json("\\ud800")`` escapes it (the text ``"\\ud800"``, as ``JSON.stringify`` does);
    a header value or status text ``"\\ud800"`` reads back as three U+FFFD. Python's strict
    UTF-8 codec raised ``UnicodeEncodeError`` for the bodies."""

    async def test_text_bodies(self) -> None:
        assert await Response("a\ud800b").bytes() == b"a\xed\xa0\x80b"
        assert await Response("a\ud800b", status=201).bytes() == b"a\xed\xa0\x80b"
        assert await Request("http://a/", method="POST", body="a\udc00").bytes() == b"a\xed\xb0\x80"
        assert await Response("é").bytes() == "é".encode()

    async def test_json_escapes_them(self) -> None:
        response = Response.json({"k\ud800": "\ud800é"})
        assert await response.text() == '{"k\\ud800":"\\ud800é"}'

    def test_header_values_and_status_text(self) -> None:
        assert Headers({"a": "\ud800"}).get("a") == "\ufffd" * 3
        headers = Headers()
        headers.append("b", "x\udfffy")
        assert headers.get("b") == "x" + "\ufffd" * 3 + "y"
        assert Headers({"a": "é€"}).get("a") == "é€"
        assert Response(status_text="\ud800").status_text == "\ufffd" * 3


class TestHeadersInit:
    @pytest.mark.parametrize("pair", ["ab", b"ab", {"a": 1, "b": 2}])
    def test_a_string_is_not_a_pair(self, pair: object) -> None:
        """workerd (miniflare 4, 2026-04-07): ``new Headers(["ab"])`` raises ``TypeError: Incorrect
        type: the provided value is not of type 'Sequence'.`` (a string is not a pair); durable
        unpacked it into the header ``a: b``."""
        with pytest.raises(TypeError, match=r"^Incorrect type: the provided value is not of type 'Sequence'\."):
            Headers([pair])  # type: ignore[list-item]
        assert Headers([["a", "b"]]).get("a") == "b"  # type: ignore[list-item]  # a list pair is still a pair


class TestSurrogatePairs:
    """A Python str may hold a high and a low surrogate side by side ("\\ud83d\\ude00"), which a
    JavaScript string reads as one character: workerd (miniflare 4, 2026-04-07) sends
    ``new Response("a\\ud83d\\ude00b")`` as ``61 F0 9F 98 80 62`` (WTF-8 joins a pair), a header
    value ``"x\\ud83d\\ude00"`` reads back as ``"x😀"``, and ``Response.json("\\ud83d\\ude00")``
    as the text ``"😀"``; a low surrogate before a high one stays two lone ones
    (``61 ED B8 80 ED A0 BD 62``). durable encoded each half on its own (six bytes of CESU-8)."""

    async def test_bodies(self) -> None:
        assert await Response("a\ud83d\ude00b").bytes() == b"a\xf0\x9f\x98\x80b"
        assert await Response("a\ud83d\ude00b", status=201).bytes() == b"a\xf0\x9f\x98\x80b"
        assert await Response("a\ude00\ud83db").bytes() == b"a\xed\xb8\x80\xed\xa0\xbdb"

    async def test_json_and_headers(self) -> None:
        assert await Response.json("\ud83d\ude00").text() == '"\U0001f600"'
        assert await Response.json("\ud800\ud83d\ude00").text() == '"\\ud800\U0001f600"'
        assert Headers({"a": "x\ud83d\ude00"}).get("a") == "x\U0001f600"
        assert Response(status_text="\ud83d\ude00").status_text == "\U0001f600"


class TestRedirectUrl:
    @pytest.mark.parametrize(
        ("url", "location"),
        [
            ("http://x/a\nb", "http://x/ab"),
            ("http://x/a\rb", "http://x/ab"),
            ("http://x/a\tb", "http://x/ab"),
            ("\nhttp://x/", "http://x/"),
            ("http://x/a\x00b", "http://x/a%00b"),
            ("http://x/é?é#é", "http://x/%C3%A9?%C3%A9#%C3%A9"),
        ],
    )
    def test_the_url_parser_cleans_it(self, url: str, location: str) -> None:
        """workerd (miniflare 4, 2026-04-07): ``Response.redirect("http://x/a\\nb").headers.get(
        "location")`` is ``http://x/ab`` (the URL parser drops tab, CR and LF; NUL becomes
        ``%00``): its ``Redirect URL cannot contain '\\r', '\\n', or '\\0'`` check runs on the
        serialized URL, which never holds them. durable checked the given string and raised."""
        assert Response.redirect(url).headers.get("location") == location


class _NullBody(durable.DurableObject):
    async def fetch(self, request: Request) -> Response:
        path = urlsplit(request.url).path
        if path == "/404":
            return Response(None, status=404)
        if path == "/204":
            return Response(None, status=204)
        return Response(None)


class TestANullBodyArrives:
    """workerd (miniflare 4, 2026-04-07): an object answering ``new Response(null)`` (or ``new
    Response(null, {status: 404})``, a cached one, after a POST or a followed redirect) gives the
    caller of ``stub.fetch`` a response whose ``body`` is not null, as it comes over HTTP: the
    first ``text()`` is "", the second raises ``TypeError: Body has already been used. ...``, and
    ``bodyUsed`` is then true. A HEAD's response, and a 204, keep a null body. durable handed the
    null body on, readable any number of times."""

    @pytest.mark.parametrize(("path", "status"), [("/null", 200), ("/404", 404)])
    async def test_an_empty_body(self, path: str, status: int) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(_NullBody).get_by_name("a")
            for method in ("GET", "POST"):
                response = await stub.fetch("http://h" + path, method=method)
                assert (response.status, response.body is None, response.body_used) == (status, False, False)
                assert await response.text() == ""
                assert response.body_used
                with pytest.raises(TypeError, match=r"^Body has already been used\."):
                    await response.text()

    async def test_head_and_null_body_statuses_keep_none(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(_NullBody).get_by_name("a")
            for response in (await stub.fetch("http://h/404", method="HEAD"), await stub.fetch("http://h/204")):
                assert response.body is None
                assert (await response.text(), await response.text(), response.body_used) == ("", "", False)


class TestPunycodeHosts:
    @pytest.mark.parametrize(
        "label", ["xn--a", "xn--", "xn--abc-", "xn--ba", "xn--aa", "xn--1ug", "xn--a-ecp", "xn--xn--a", "xn--caf-yvc"]
    )
    def test_an_invalid_label_is_refused(self, label: str) -> None:
        """workerd (miniflare 4, 2026-04-07): ``new Request("http://xn--a.com/")`` raises
        ``TypeError: Invalid URL: http://xn--a.com/``, as for every label here (one decoding to a
        control character, to nothing, to ASCII only, to U+200D, to a code point UTS #46 maps, to
        an unassigned one). durable kept any label Python's punycode codec could decode."""
        url = f"http://{label}.com/"
        with pytest.raises(TypeError, match=rf"^Invalid URL: {url}$"):
            Request(url)

    @pytest.mark.parametrize(
        ("label", "host"),
        [
            ("xn--ls8h", "xn--ls8h"),
            ("XN--MNCHEN-3YA", "xn--mnchen-3ya"),
            ("xn--zca", "xn--zca"),
            ("xn--hello", "xn--hello"),
            ("xn--caf-dma", "xn--caf-dma"),
            ("xn--nxasmq6b", "xn--nxasmq6b"),
        ],
    )
    def test_a_valid_label_is_kept(self, label: str, host: str) -> None:
        """workerd: these are kept, lower-cased (``http://xn--ls8h.com/``...)."""
        assert Request(f"http://{label}.com/").url == f"http://{host}.com/"

    @pytest.mark.parametrize("host", ["a\u200db", "a\u200cb", "\u0301a", "a\ue000", "a\u0378", "\ufffd"])
    def test_an_invalid_unicode_label_is_refused(self, host: str) -> None:
        """workerd (miniflare 4, 2026-04-07): a host holding U+200D or U+200C (between two
        letters), starting with a combining mark, or holding a private-use, unassigned or U+FFFD
        code point is an ``Invalid URL``; durable encoded it in punycode. Kept as before:
        ``é\\u0301`` (NFC), ``ä\\u00ad`` (the soft hyphen dropped), ``-é``."""
        url = f"http://{host}.com/"
        with pytest.raises(TypeError, match="^Invalid URL: "):
            Request(url)
        assert Request("http://\u00e9\u0301.com/").url == "http://xn--9ca68h.com/"
        assert Request("http://\u00e4\u00ad.com/").url == "http://xn--4ca.com/"
        assert Request("http://-\u00e9.com/").url == "http://xn----bga.com/"


class TestCredentialsInTheUrl:
    """workerd (miniflare 4, 2026-04-07) sends ``stub.fetch`` to the object over HTTP, which carries
    no credentials: ``stub.fetch("http://u:p@a.com/echo")`` arrives with ``request.url``
    ``http://a.com/echo`` (``http://u@a.com/echo`` and ``new Request("http://u:p@a.com/echo?x#y",
    {method: "POST", body: "b"})`` likewise: ``http://a.com/echo``, ``http://a.com/echo?x``) and no
    ``authorization`` header, while the caller's ``response.url`` keeps them
    (``http://u:p@a.com/echo``, ``http://u:p@a.com/echo?x``). durable's object saw the credentials."""

    @pytest.mark.parametrize(
        ("url", "init", "seen", "answered"),
        [
            ("http://u:p@h/echo", {}, "http://h/echo", "http://u:p@h/echo"),
            ("http://u@h/echo", {}, "http://h/echo", "http://u@h/echo"),
            ("https://u:p%20q@h:8443/echo?a@b#f", {}, "https://h:8443/echo?a@b", "https://u:p%20q@h:8443/echo?a@b"),
            ("http://u:p@h/echo", {"method": "POST", "body": "b"}, "http://h/echo", "http://u:p@h/echo"),
            ("http://h/echo/a@b?c@d", {}, "http://h/echo/a@b?c@d", "http://h/echo/a@b?c@d"),
        ],
    )
    async def test_the_object_sees_none(self, url: str, init: dict[str, Any], seen: str, answered: str) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(_Echo).get_by_name("a")
            for request in (url, Request(url, **init)):  # a URL, and a Request forwarded (its own path)
                response = await (stub.fetch(request, **init) if isinstance(request, str) else stub.fetch(request))
                echoed = await response.json()
                assert (echoed["url"], response.url) == (seen, answered)
                assert [n for n, _ in echoed["headers"]] == (["content-type", "content-length"] if init else [])

    async def test_a_request_with_new_options(self) -> None:
        """The general path (a Request with options): the same."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(_Echo).get_by_name("a")
            response = await stub.fetch(Request("http://u:p@h/echo#f"), headers={"x": "1"})
            assert ((await response.json())["url"], response.url) == ("http://h/echo", "http://u:p@h/echo")

    async def test_from_another_thread(self) -> None:
        """``stub.fetch`` from a thread's loop (``_fetch_following``, ``fetched()``): the same."""
        import threading

        async with durable.Runtime() as rt:
            stub = rt.namespace(_Echo).get_by_name("a")
            out: list[tuple[str, str]] = []

            async def there() -> None:
                response = await stub.fetch("http://u:p@h/echo")
                out.append(((await response.json())["url"], response.url))

            thread = threading.Thread(target=asyncio.run, args=(there(),))
            thread.start()
            await asyncio.to_thread(thread.join)
        assert out == [("http://h/echo", "http://u:p@h/echo")]

    @pytest.mark.parametrize(
        ("url", "answered", "seen"),
        [
            ("http://u:p@h/r302", "http://u:p@h/echo", "http://h/echo"),
            ("http://h/r302?to=http://v:q@h/echo", "http://v:q@h/echo", "http://h/echo"),
            ("http://u:p@h/r302?to=http://b/echo", "http://b/echo", "http://b/echo"),
        ],
    )
    async def test_redirects(self, url: str, answered: str, seen: str) -> None:
        """workerd: ``http://u:p@a.com/r`` answered ``302`` to ``/echo`` ends with ``url``
        ``http://u:p@a.com/echo`` (the Location resolved against the URL as sent), the object seeing
        ``http://a.com/echo``; a Location ``http://v:q@a.com/echo`` likewise; one without
        credentials drops them."""
        for request in (url, Request(url)):
            status, final, redirected, echoed = await _fetch(request)
            assert (status, final, redirected, echoed["url"]) == (200, answered, True, seen)
        async with durable.Runtime() as rt:  # redirect="manual": the redirect itself, as sent
            response = await rt.namespace(_Redirector).get_by_name("a").fetch(url, redirect="manual")
            assert (response.status, response.url) == (302, url)

    async def test_too_many_redirects_lists_the_urls_as_sent(self) -> None:
        """workerd: ``stub.fetch("http://u:p@a/loop")`` answered ``302`` to ``/loop`` every time raises
        ``TypeError: Too many redirects.`` and 21 times ``http://u:p@a/loop``. durable listed the
        first one without its credentials (``http://h/again, http://u:p@h/again, ...``)."""
        for request in ("http://u:p@h/again", Request("http://u:p@h/again")):
            with pytest.raises(TypeError) as caught:
                await _fetch(request)
            assert str(caught.value) == "Too many redirects." + ", ".join(["http://u:p@h/again"] * 21)

    async def test_passed_on_over_rpc_or_cloned_it_holds_none(self) -> None:
        """workerd: an object passing the request it got from ``stub.fetch("http://u:p@a/rpc")`` to
        another object's RPC method (``await other.seen(request)``, or ``request.clone()``) gives it a
        request whose ``url`` is ``http://a/rpc``: the credentials are not to be found. durable's
        receiver got the handler's private subclass, its public ``caller_url`` the caller's URL;
        a clone was of that class too."""

        def holds_credentials(request: Request) -> bool:
            return type(request) is not Request or any("u:p" in repr(getattr(request, n, "")) for n in dir(request))

        class Receiver(durable.DurableObject):
            async def seen(self, request: Request) -> list[Any]:
                return [request.url, holds_credentials(request)]

        class Passer(durable.DurableObject):
            async def fetch(self, request: Request) -> Response:
                other = self.env.RECEIVER.get_by_name("b")
                clone = request.clone()
                seen = [*await other.seen(request), *await other.seen(request.clone())]
                return Response.json([*seen, clone.url, holds_credentials(clone)])

        async with durable.Runtime() as rt:
            rt.namespace(Receiver, name="RECEIVER")
            response = await rt.namespace(Passer).get_by_name("a").fetch("http://u:p@h/rpc")
            assert await response.json() == ["http://h/rpc", False, "http://h/rpc", False, "http://h/rpc", False]
            assert response.url == "http://u:p@h/rpc"


class TestHeadersEntries:
    def test_workerds_iteration(self) -> None:
        """workerd (miniflare 4, 2026-04-07): ``[...new Headers([["Set-Cookie", "c=1"], ["b", "1"],
        ["X-1", "q"], ["set-cookie", "d=2"], ["A", "2"], ["a", "3"], ["set-cookie2", "z"], ["~", "t"],
        ["0", "n"]]).entries()]`` (and ``[...h]``, and ``forEach``'s visits) is ``[["0","n"],
        ["a","2, 3"], ["b","1"], ["set-cookie","c=1"], ["set-cookie","d=2"], ["set-cookie2","z"],
        ["x-1","q"], ["~","t"]]``. durable had no ``entries()`` (``AttributeError``)."""
        h = Headers(
            [
                ("Set-Cookie", "c=1"),
                ("b", "1"),
                ("X-1", "q"),
                ("set-cookie", "d=2"),
                ("A", "2"),
                ("a", "3"),
                ("set-cookie2", "z"),
                ("~", "t"),
                ("0", "n"),
            ]
        )
        assert list(h.entries()) == [
            ("0", "n"),
            ("a", "2, 3"),
            ("b", "1"),
            ("set-cookie", "c=1"),
            ("set-cookie", "d=2"),
            ("set-cookie2", "z"),
            ("x-1", "q"),
            ("~", "t"),
        ]
        assert list(Headers().entries()) == []

    def test_a_snapshot(self) -> None:
        """workerd: setting ``c`` while iterating ``a``, ``b`` does not add it to the iteration."""
        h = Headers([("a", "1"), ("b", "2")])
        seen = []
        for name, _ in h.entries():
            seen.append(name)
            if name == "a":
                h.set("c", "3")
        assert seen == ["a", "b"]
