"""``durable serve``'s WebSocket protocol: the frame follower that lets a refused client close cleanly.

The served end-to-end behaviour (a 1009 Close and EOF, no TCP reset) is tested with a real server
in ``tests/test_websocket_asgi.py``; here, :class:`durable._serve_ws.FrameEnds` on its own.
"""

from __future__ import annotations

import struct

import pytest

from durable._serve_ws import FrameEnds, websocket_protocol


def frame(opcode: int, payload: bytes, *, mask: bool = True) -> bytes:
    """One final frame as a client sends it (masked, with a zero mask: the payload is unchanged)."""
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head = bytes([0x80 | opcode, bit | size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x80 | opcode, bit | 127]) + struct.pack("!Q", size)
    return head + (b"\0" * 4 if mask else b"") + payload


CLOSE = frame(0x8, struct.pack("!H", 1000))
BEFORE = [frame(0x1, b"hi"), frame(0x2, b""), frame(0x2, b"x" * 126), frame(0x1, b"y" * 70_000), frame(0x9, b"")]


class TestFrameEnds:
    """FrameEnds sees the client's Close frame arrive whole, however the stream is cut."""

    @pytest.mark.parametrize("chunk", [1, 2, 3, 7, 13, 1000, 1 << 20])
    def test_close_after_other_frames(self, chunk: int) -> None:
        """A Close after frames of every length encoding is seen when its last byte arrives."""
        stream = b"".join(BEFORE) + CLOSE
        ends = FrameEnds()
        for start in range(0, len(stream) - 1, chunk):
            ends.feed(stream[start : min(start + chunk, len(stream) - 1)])
            assert not ends.closed
        ends.feed(stream[-1:])
        assert ends.closed

    def test_close_bytes_inside_a_payload_are_not_a_close(self) -> None:
        """A payload that looks like a Close frame is skipped as payload."""
        ends = FrameEnds()
        ends.feed(frame(0x2, CLOSE * 10))
        assert not ends.closed

    def test_empty_close(self) -> None:
        """A Close without a code (no payload) counts once its header is in."""
        ends = FrameEnds()
        ends.feed(frame(0x8, b""))
        assert ends.closed

    def test_refused_message_then_close(self) -> None:
        """The rest of a refused 33 MiB message is skipped, then the client's Close is seen."""
        ends = FrameEnds()
        ends.feed(frame(0x2, b"", mask=True)[:1] + bytes([0xFF]) + struct.pack("!Q", 33 << 20) + b"\0" * 4)
        for _ in range(33):
            ends.feed(b"z" * (1 << 20))
        assert not ends.closed
        ends.feed(CLOSE)
        assert ends.closed


class TestProtocol:
    """The protocol durable serve gives uvicorn."""

    def test_is_uvicorns_auto_protocol(self) -> None:
        """With this uvicorn, it is a subclass of the protocol uvicorn's "auto" would pick."""
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

        protocol = websocket_protocol()
        assert protocol is not None
        assert protocol.__mro__[1] is AutoWebSocketsProtocol

    def test_a_uvicorn_without_the_expected_state_keeps_its_own_close(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where the protocol lacks the state the graceful close reads, uvicorn's own close runs."""
        protocol = websocket_protocol()
        assert protocol is not None
        base = protocol.__mro__[1]
        calls: list[object] = []
        monkeypatch.setattr(base, "handle_parser_exception", lambda self: calls.append(self))
        instance = object.__new__(protocol)  # no __init__: none of uvicorn's state is there
        instance.handle_parser_exception()
        assert calls == [instance]
