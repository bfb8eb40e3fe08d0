"""Differences from workerd found by the random WebSocket differential test
(``tests/differential/run_ws.py``), each measured in workerd (miniflare 4).
"""

from __future__ import annotations

import pytest

import durable
from durable.testing import run_in_object

TOO_LONG = "WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded."
NO_CODE = "If you specify a WebSocket close reason, you must also specify a code."


class TestCloseChecksOrder:
    """workerd checks ``close(code, reason)`` in this order: the code, then the reason's length, then
    a reason without a code (miniflare 4.20260426, 2026-04-07, on a hibernatable, an accepted and
    a not-yet-accepted end alike): ``close(undefined, "é".repeat(62))`` raised the length error,
    ``close(undefined, "fine")`` the missing code, ``close(999, "é".repeat(62))`` ``Invalid
    WebSocket close code: 999.``. durable raised the missing code for the first (run_ws.py seed 8)."""

    @pytest.mark.parametrize("accepted", [True, False])
    def test_long_reason_without_code(self, accepted: bool) -> None:
        _client, server = durable.WebSocketPair()
        if accepted:
            server.accept()
        with pytest.raises(durable.WebSocketError, match=f"^{TOO_LONG}$"):
            server.close(None, "é" * 62)
        with pytest.raises(durable.WebSocketError, match=f"^{TOO_LONG}$"):
            server.close(None, "a" * 124)
        assert server.ready_state == durable.WebSocket.OPEN

    def test_short_reason_without_code(self) -> None:
        _client, server = durable.WebSocketPair()
        server.accept()
        for reason in ("fine", "", "a" * 123):
            with pytest.raises(durable.WebSocketError, match=f"^{NO_CODE}$") as info:
                server.close(None, reason)
            assert isinstance(info.value, TypeError)

    def test_code_first(self) -> None:
        _client, server = durable.WebSocketPair()
        server.accept()
        for code in (999, 1005):
            with pytest.raises(durable.WebSocketError, match=f"^Invalid WebSocket close code: {code}.$"):
                server.close(code, "é" * 62)
        with pytest.raises(durable.WebSocketError, match=f"^{TOO_LONG}$"):
            server.close(1000, "é" * 62)

    async def test_in_an_object(self, durable_runtime: durable.Runtime) -> None:
        """The same on a hibernatable socket, in the object."""

        async def check(obj: durable.DurableObject, ctx: durable.State) -> list[str]:
            _client, server = durable.WebSocketPair()
            ctx.accept_web_socket(server)
            out = []
            for reason in ("é" * 62, "fine"):
                try:
                    server.close(None, reason)
                except durable.WebSocketError as exc:
                    out.append(str(exc))
            return out

        stub = durable_runtime.namespace(Obj).get_by_name("a")
        assert await run_in_object(stub, check) == [TOO_LONG, NO_CODE]


class Obj(durable.DurableObject):
    pass
