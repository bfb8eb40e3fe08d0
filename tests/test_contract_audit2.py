"""A line-by-line audit of sections 8 to 13 of the contract (API.md): threads, WebSockets and
hibernation, Python Workers compatibility, point-in-time recovery, ``durable inspect``.

Each test quotes the line it checks and calls the API exactly as the contract spells it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import durable
from durable import testing

FIX = r"durable\.testing\.run_in_object"


class Sockets(durable.DurableObject):
    async def ping(self) -> int:
        return 1


class TestCtxOwnership:
    """ "`ctx`, `ctx.storage` and the values they return belong to their object: used from code that
    is not running inside that object (another object, the test body, another thread), they raise
    `RuntimeError` with a message that names the fix (`durable.testing.run_in_object`, RPC)."

    The Hibernation API methods of ``ctx`` read and change the object's socket settings, so they
    follow the rule too (they did not: ``get_web_sockets()`` answered ``[]`` and
    ``set_web_socket_auto_response()`` changed the object from the test body).
    """

    CALLS: dict[str, Callable[[Any], Any]] = {
        "get_web_sockets": lambda ctx: ctx.get_web_sockets(),
        "getWebSockets": lambda ctx: ctx.getWebSockets("tag"),
        "get_tags": lambda ctx: ctx.get_tags(durable.WebSocketPair()[1]),
        "set_web_socket_auto_response": lambda ctx: ctx.set_web_socket_auto_response(
            durable.WebSocketRequestResponsePair("ping", "pong")
        ),
        "setWebSocketAutoResponse": lambda ctx: ctx.setWebSocketAutoResponse(),
        "get_web_socket_auto_response": lambda ctx: ctx.get_web_socket_auto_response(),
        "get_web_socket_auto_response_timestamp": lambda ctx: ctx.get_web_socket_auto_response_timestamp(
            durable.WebSocketPair()[1]
        ),
        "set_hibernatable_web_socket_event_timeout": lambda ctx: ctx.set_hibernatable_web_socket_event_timeout(5),
        "get_hibernatable_web_socket_event_timeout": lambda ctx: ctx.get_hibernatable_web_socket_event_timeout(),
    }

    @pytest.mark.parametrize("name", sorted(CALLS))
    async def test_hibernation_api_from_the_test_body(self, name: str) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Sockets).get_by_name("a")
            ctx = await testing.run_in_object(stub, lambda obj, ctx: ctx)
            with pytest.raises(RuntimeError, match=FIX):
                self.CALLS[name](ctx)
            # nothing changed: inside the object the settings are still unset
            settings = await testing.run_in_object(
                stub,
                lambda obj, ctx: (
                    ctx.get_web_socket_auto_response(),
                    ctx.get_hibernatable_web_socket_event_timeout(),
                    ctx.get_web_sockets(),
                ),
            )
            assert settings == (None, None, [])
