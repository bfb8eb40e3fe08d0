"""HTTP objects compared with workerd: each expectation here was measured with miniflare 4
(compatibility date 2026-04-07); the measurement is quoted in each test's docstring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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
