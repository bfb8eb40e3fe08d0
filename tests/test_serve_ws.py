"""``durable serve``'s WebSocket protocol: the frame follower that lets a refused client close cleanly.

The served end-to-end behaviour (a 1009 Close and EOF, no TCP reset) is tested with a real server
in ``tests/test_websocket_asgi.py``; here, :class:`durable._serve_ws.FrameEnds` on its own.
"""

from __future__ import annotations

import struct

import pytest

from durable._serve_ws import CloseMender, FrameEnds, websocket_protocol


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


class TestCloseMender:
    """CloseMender hands a Close that `websockets` refuses to the parser as Close(1000), and keeps
    what workerd reads of it (see tests/test_hunt_ws_serve.py for the served behaviour)."""

    @pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
    def test_a_refused_close_cut_anywhere(self, chunk: int) -> None:
        data = b"".join(BEFORE) + frame(0x8, struct.pack("!H", 999) + b"r" * 124)
        mender = CloseMender()
        out = b"".join(mender.feed(data[i : i + chunk]) for i in range(0, len(data), chunk))
        assert out == b"".join(BEFORE) + bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])
        assert mender.mended == (999, "r" * 124, struct.pack("!H", 999) + b"r" * 124)

    @pytest.mark.parametrize("chunk", [1, 3, 1000])
    def test_frames_websockets_reads_pass_unchanged(self, chunk: int) -> None:
        data = b"".join(BEFORE) + CLOSE
        mender = CloseMender()
        assert b"".join(mender.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)) == data
        assert mender.mended is None

    def test_a_masked_payload(self) -> None:
        payload = struct.pack("!H", 1000) + b"a\xff"
        key = b"\x01\x02\x03\x04"
        masked = bytes([0x88, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        mender = CloseMender()
        mender.feed(masked)
        assert mender.mended == (1000, "a\ufffd", payload)

    @pytest.mark.parametrize(
        "data",
        [frame(0x8, b"\x03", mask=False), bytes([0x08]) + frame(0x8, b"\x03")[1:]],
        ids=["unmasked", "not-final"],
    )
    def test_frames_left_to_the_parsers_error(self, data: bytes) -> None:
        mender = CloseMender()
        assert mender.feed(data) == data
        assert mender.mended is None
