"""Review of the API fuzz fixes (5d4dc26): what the review found."""

from __future__ import annotations

from typing import Any

import pytest

from durable import Headers, Request, Response


@pytest.mark.parametrize(
    "make",
    [
        lambda: Headers(5),  # type: ignore[arg-type]
        lambda: Headers("x"),  # type: ignore[arg-type]
        lambda: Request("http://x/", headers=5),  # type: ignore[arg-type]
        lambda: Response(None, headers=5),  # type: ignore[arg-type]
        lambda: Response.json(1, headers=5),  # type: ignore[arg-type]
    ],
)
def test_a_bad_headers_init_raises_a_plain_type_error(make: Any) -> None:
    """workerd (miniflare 4, compatibility date 2026-04-07, measured for this review): ``new Headers(5)``
    raises ``TypeError: Failed to construct 'Headers': ...`` and ``new Request(url, {headers: 5})``
    ``TypeError: Incorrect type for the 'headers' field on 'RequestInitializerDict': ...``. Before the
    fix ``Headers(5)`` raised a private subclass, shown in tracebacks as
    ``durable._http._HeadersInitError``."""
    with pytest.raises(
        TypeError, match=r"^(Failed to construct 'Headers'|Incorrect type for the 'headers' field)"
    ) as info:
        make()
    assert type(info.value) is TypeError


def test_an_auto_response_pair_with_a_lone_surrogate_reads_back_as_workerd_keeps_it() -> None:
    """workerd (miniflare 4, compatibility date 2026-04-07, measured for this review):
    ``setWebSocketAutoResponse(new WebSocketRequestResponsePair("\\ud800", "a\\ud800b"))`` is accepted
    and ``getWebSocketAutoResponse()`` reads back ``"\\ufffd" * 3`` and ``"a\\ufffd\\ufffd\\ufffdb"``
    (a lone surrogate kept as its three UTF-8 bytes, as ``ws.send`` delivers it). Before the fix
    ``set_web_socket_auto_response`` raised ``UnicodeEncodeError`` from its size check."""
    from durable import WebSocketRequestResponsePair
    from durable._websocket import validate_auto_response

    pair = WebSocketRequestResponsePair("\ud800", "a\ud800b")
    validate_auto_response(pair)
    assert (pair.request, pair.response) == ("\ufffd" * 3, "a\ufffd\ufffd\ufffdb")
    joined = WebSocketRequestResponsePair("ping", "\ud83d\ude00")  # a pair of surrogates is one character
    assert joined.response == "\U0001f600"


async def test_an_auto_response_with_a_lone_surrogate_answers(durable_runtime: Any) -> None:
    """End to end: the object sets the pair, a client's ``ping`` is answered without waking it."""
    import asyncio

    import durable
    from durable.testing import websocket

    class Auto(durable.DurableObject):
        async def fetch(self, request: durable.Request) -> durable.Response:
            client, server = durable.WebSocketPair()
            self.ctx.accept_web_socket(server)
            self.ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "a\ud800b"))
            return durable.Response(None, status=101, web_socket=client)

    stub = durable_runtime.namespace(Auto).get_by_name("a")
    async with websocket(stub, "http://x/") as ws:
        ws.send("ping")
        assert await asyncio.wait_for(ws.receive(), 10) == "a\ufffd\ufffd\ufffdb"
