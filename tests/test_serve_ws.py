"""``durable serve``'s WebSocket protocol: the frame follower that lets a refused client close cleanly.

The served end-to-end behaviour (a 1009 Close and EOF, no TCP reset) is tested with a real server
in ``tests/test_websocket_asgi.py``; here, :class:`durable._serve_ws.FrameEnds` on its own.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

    def test_only_the_first_close_is_read(self) -> None:
        """A second Close after the first (in the same write) is not mended over the first: the
        parser reads the first and discards the rest, and workerd's object got the first one's
        code (``Close(999, "first")`` then ``Close(998, "second")`` in one write: ``(999,
        "first", True)``, and ``Close(1000, "first")`` then ``Close(999, ...)``: ``(1000, "first",
        True)``; miniflare 4, 2026-04-07, raw socket). The mender took the last refused one."""
        second = frame(0x8, struct.pack("!H", 998) + b"second")
        mender = CloseMender()
        assert mender.feed(frame(0x8, struct.pack("!H", 1000) + b"first") + second).endswith(second)
        assert mender.mended is None
        mender = CloseMender()
        out = mender.feed(frame(0x8, struct.pack("!H", 999) + b"first") + second)
        assert out == bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]) + second
        assert mender.mended == (999, "first", struct.pack("!H", 999) + b"first")

    def test_an_unmasked_close_goes_to_the_parser_at_once(self) -> None:
        """The parser refuses an unmasked frame from its header: a Close it could not mend is
        not held back until its payload is in (the client would wait for its 1002)."""
        head = frame(0x8, struct.pack("!H", 999) + b"r" * 200, mask=False)[:4]
        assert CloseMender().feed(head) == head


def _mask(payload: bytes, key: bytes) -> bytes:
    keys = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(len(payload), "big")


@st.composite
def _frames(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A client's frame (any opcode, bits, mask and length encoding, minimal or not), and the
    same frame as the parser must get it from CloseMender (a refused Close becomes Close(1000))."""
    close = draw(st.booleans())
    opcode = 0x8 if close else draw(st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x9, 0xA, 0xB]))
    first = draw(st.sampled_from([0x80, 0x80, 0x80, 0x00, 0xC0, 0xA0, 0x90])) | opcode
    if close:
        payload = draw(
            st.one_of(
                st.just(b""),
                st.binary(min_size=1, max_size=1),
                st.builds(
                    lambda code, reason: struct.pack("!H", code) + reason,
                    st.one_of(st.sampled_from([999, 1000, 1001, 1004, 1005, 1006, 1015, 2999, 3000, 4999, 5000]),
                              st.integers(0, 0xFFFF)),
                    st.one_of(st.text(max_size=130).map(str.encode), st.binary(max_size=130)),
                ),
            )
        )  # fmt: skip
    else:
        payload = draw(
            st.one_of(st.binary(max_size=300), st.just(b"d" * draw(st.sampled_from([125, 126, 65535, 65536]))))
        )
    masked = draw(st.integers(0, 9)) > 0
    size = len(payload)
    encoding = (
        draw(st.sampled_from([7, 16, 64])) if size < 126 else draw(st.sampled_from([16, 64])) if size < 65536 else 64
    )
    bit = 0x80 if masked else 0
    if encoding == 7:
        head = bytes([first, bit | size])
    elif encoding == 16:
        head = bytes([first, bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", size)
    key = draw(st.binary(min_size=4, max_size=4)) if masked else b""
    sent = head + key + (_mask(payload, key) if masked else payload)
    if first == 0x88 and masked and len(payload) != 0 and _refused(payload):
        return sent, bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])
    return sent, sent


def _refused(payload: bytes) -> bool:
    """The `websockets` parser refuses this Close payload (its own check, not the mender's)."""
    from websockets.exceptions import ProtocolError
    from websockets.frames import Close

    try:
        Close.parse(payload)
    except (ProtocolError, UnicodeDecodeError):
        return True
    return len(payload) > 125  # (a control frame too long, refused by Frame.check)


class TestCloseMenderOverRandomStreams:
    """Random frame sequences cut at random points: the parser gets the frames as sent, but the
    first Close, if `websockets` refuses it and it is masked, final and without reserved bits,
    becomes Close(1000); everything after the first Close passes as it is."""

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames=st.lists(_frames(), max_size=8), tail=st.binary(max_size=20), data=st.data())
    def test_frames_pass_as_sent(self, frames: list[tuple[bytes, bytes]], tail: bytes, data: st.DataObject) -> None:
        sent, expected, mended = b"", b"", None
        closed = False
        for original, parsed in frames:
            sent += original
            expected += original if closed else parsed
            if not closed and original[0] & 0x0F == 0x8:
                closed = True
                if parsed != original:
                    mended = original
        if closed:  # (bytes of any kind after the Close: the parser discards them)
            sent += tail
            expected += tail
        cuts = sorted(data.draw(st.lists(st.integers(0, len(sent)), max_size=12)))
        mender = CloseMender()
        out = b"".join(mender.feed(sent[a:b]) for a, b in zip([0, *cuts], [*cuts, len(sent)], strict=True))
        assert out == expected
        assert (mender.mended is not None) == (mended is not None)
        if mended is not None:
            assert mender.mended is not None
            start = 2 + {126: 2, 127: 8}.get(mended[1] & 0x7F, 0)
            payload = _mask(mended[start + 4 :], mended[start : start + 4])
            code = 1005 if len(payload) == 1 else struct.unpack("!H", payload[:2])[0]
            assert mender.mended == (code, payload[2:].decode("utf-8", "replace"), b"" if code == 1005 else payload)
