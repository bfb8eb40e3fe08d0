"""``durable serve``'s WebSocket protocol: uvicorn's, with a failing connection closed without a reset.

When a client breaks the protocol (a message over ``ws_max_size``, 32 MiB as on Cloudflare; a bad
frame), uvicorn's ``websockets-sansio`` protocol writes the Close frame (1009 for a message too
large) and closes the socket at once. The client is usually still sending (the rest of the big
message), so the socket is closed with unread data and the kernel answers with a TCP reset. A
client whose write fails on that reset before it has read the Close frame drops the frame and
reports 1006 instead of 1009 (seen under load in ``tests/test_websocket_asgi.py``).

So the server reads on after its Close frame, discarding, until the client's own Close frame has
arrived (RFC 6455 5.5.1: the client answers a Close with a Close, after the message it was
sending), and only then closes the connection, with nothing left unread: no reset. The client's
frames are followed by their headers alone (:class:`FrameEnds`), as the ``websockets`` parser
stops at the header of the frame it refuses. uvicorn's close timeout (10 s) still bounds the wait.
Half-closing first (EOF after the Close frame) is what RFC 6455 7.1.7 describes, but a client on
CPython 3.11/3.12 that gets EOF while it still has data to write can fail its own close later
(``transport.abort()`` after the buffered close: ``'NoneType' object has no attribute
'call_soon'``), so the server waits for the client's Close instead.

A client's Close frame that the ``websockets`` parser refuses but workerd reads (a code such as
999 or 1006, a 1-byte payload, a long reason or one that is not UTF-8) reaches the parser as a
plain ``Close(1000)`` (:class:`CloseMender`); the application gets the client's code and reason,
and the answer echoes the client's payload, as workerd's does. A Close between the frames of a
fragmented message, which the parser refuses, is read the same way, the unfinished message dropped.

A protocol error closes the connection with 1002 and workerd's description of it
(:func:`workerd_description`), which the object's ``web_socket_error`` quotes too.

A text message that is not valid UTF-8 reaches the application with U+FFFD in place of the bad
bytes, as workerd delivers it, where uvicorn would close the connection with 1007.

The protocol also tells the bridge (``durable._wsbridge``) that it can send a Close without a
status code (uvicorn's ``send_close(None)``), so an object's ``ws.close()`` reaches the client
as 1005, as on workerd.

After the application's ``websocket.close`` (the object's ``ws.close()``), uvicorn gives the
application a ``websocket.disconnect`` at once, with its own code, and discards what the client
sends until it answers. workerd (measured with miniflare 4, 2026-04-07, hibernatable and
standard sockets) delivers those messages to the object, whose socket is ``CLOSING`` then, and
gives its close event the code and reason of the client's answering Close. So this protocol keeps
delivering the client's messages after that close, and reports the client's Close
(:data:`~durable._wsbridge.CLIENT_CLOSE`, which the bridge then waits for).

With a uvicorn whose ``auto`` WebSocket protocol is not ``websockets-sansio`` (older releases
pick the legacy ``websockets`` one), :func:`websocket_protocol` returns None and the server keeps
its default.
"""

from __future__ import annotations

from typing import Any

from ._wsbase import TOO_LARGE_MESSAGE, TOO_LARGE_PREFIX, too_large_description
from ._wsbridge import CLEAN_CLOSE, CLIENT_CLOSE, CLOSE_WITHOUT_CODE, PROTOCOL_ERROR

__all__ = [
    "CloseMender",
    "FrameEnds",
    "protocol_error",
    "send_close",
    "too_large_reason",
    "websocket_protocol",
    "workerd_description",
]

_CLOSE_OPCODE = 0x8

# What the close below reads and sets of uvicorn's WebSocketsSansIOProtocol (uvicorn 0.29-0.55).
_UVICORN_STATE = ("conn", "queue", "close_sent", "transport", "read_paused", "close_timeout", "loop")
# What its message delivery reads and sets (uvicorn 0.55).
_UVICORN_TEXT_STATE = ("frames", "curr_msg_data_type", "queue", "close_sent", "read_paused", "transport")
# What the application's close below reads and sets (uvicorn 0.55).
_UVICORN_CLOSE_STATE = (
    "conn", "queue", "close_sent", "transport", "read_paused", "close_timeout", "loop", "writable", "disconnected",
    "handshake_complete", "initial_response",
)  # fmt: skip


class FrameEnds:
    """Follows the frames of a byte stream by their headers, to see when a Close frame arrives.

    Feed it every byte the client sends, in order; :attr:`closed` turns True once a Close frame
    has arrived whole.
    """

    __slots__ = ("_close", "_head", "_skip", "closed", "high_rsv")

    def __init__(self) -> None:
        self._head = bytearray()  # an incomplete header
        self._skip = 0  # payload bytes of the current frame still to come
        self._close = False  # the current frame is a Close
        self.closed = False
        self.high_rsv = False  # a frame had RSV2 or RSV3 set (which no extension here uses)

    def feed(self, data: bytes | bytearray) -> None:
        """Account for ``data``, the next bytes of the stream."""
        pos, end = 0, len(data)
        while pos < end and not self.closed:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                if not self._skip and self._close:
                    self.closed = True
                continue
            head = self._head
            if len(head) < 2:
                take = min(2 - len(head), end - pos)
                head += data[pos : pos + take]
                pos += take
                if len(head) < 2:
                    return
            length = head[1] & 0x7F
            size = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if head[1] & 0x80 else 0)
            if len(head) < size:
                take = min(size - len(head), end - pos)
                head += data[pos : pos + take]
                pos += take
                if len(head) < size:
                    return
            if length == 126:
                length = int.from_bytes(head[2:4], "big")
            elif length == 127:
                length = int.from_bytes(head[2:10], "big")
            self._close = head[0] & 0x0F == _CLOSE_OPCODE
            if head[0] & 0x30:
                self.high_rsv = True
            self._head = bytearray()
            self._skip = length
            if not length and self._close:
                self.closed = True


_SUBSTITUTE_CLOSE = bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])  # a masked Close(1000), zero mask
_MENDED_ECHO = bytes([0x88, 0x02, 0x03, 0xE8])  # the server's answer to it
_OK_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})  # websockets'


class CloseMender:
    """Rewrites the client's Close frames that ``websockets`` refuses but workerd reads.

    workerd takes any code in a client's Close (1004-1006, 1015, 1016-2999, 999, 5000 and up), a
    1-byte payload (as no code: 1005), a reason over 123 bytes and one that is not UTF-8 (with
    U+FFFD for the bad bytes), gives them to the object's close event and echoes the payload
    (measured with miniflare 4, 2026-04-07, raw frames on its port). The ``websockets`` parser
    fails the connection with 1002 or 1007 instead. Such a frame reaches the parser as a plain
    ``Close(1000)``; :attr:`mended` keeps what the object gets and what the echo must carry.

    Feed it every byte the client sends, in order: :meth:`feed` returns the bytes to parse (a
    masked, final Close frame is held until it is whole; after the first Close everything passes
    as it is, as the parser discards it).
    """

    __slots__ = ("_closed", "_head", "_partial_close", "_skip", "mended")

    def __init__(self) -> None:
        self._head = bytearray()  # an incomplete header
        self._skip = 0  # payload bytes of the current frame still to come
        self._partial_close: bytearray | None = None  # the Close frame read so far
        self._closed = False  # a Close frame went to the parser: the rest passes as it is
        self.mended: tuple[int, str, bytes] | None = None  # (code, reason, echoed payload)

    def feed(self, data: bytes) -> bytes:
        """The bytes to hand to the parser for ``data``, the next bytes of the stream."""
        if self._closed:
            # The parser reads the first Close and discards the rest; so does workerd (a second
            # Close in the same write: the object got the first one's code, miniflare 4,
            # 2026-04-07). The rest must not be mended over the first one's code and echo.
            return data
        if self._skip >= len(data) and self._partial_close is None:
            self._skip -= len(data)  # the middle of a big frame: as it is, not copied
            return data
        if (
            not self._head
            and not self._skip
            and self._partial_close is None
            and data
            and data[0] & 0x0F != _CLOSE_OPCODE
        ):
            if _whole_frames_without_close(data):
                return data  # the common case: whole frames, no Close
        out = bytearray()
        pos, end = 0, len(data)
        while pos < end:
            if self._closed:
                out += data[pos:]
                break
            if self._skip:
                step = min(self._skip, end - pos)
                if self._partial_close is not None:
                    self._partial_close += data[pos : pos + step]
                else:
                    out += data[pos : pos + step]
                self._skip -= step
                pos += step
                if not self._skip and self._partial_close is not None:
                    out += self._mend(bytes(self._partial_close))
                    self._partial_close = None
                continue
            head = self._head
            need = 2 if len(head) < 2 else _header_size(head)
            while len(head) < need and pos < end:
                head.append(data[pos])
                pos += 1
                if len(head) == 2:
                    need = _header_size(head)
            if len(head) < need:
                break
            length = _payload_length(head)
            self._head = bytearray()
            self._skip = length
            if head[0] & 0x0F != _CLOSE_OPCODE:
                out += head
            elif head[0] != 0x88 or not head[1] & 0x80 or length > 0xFFFF:
                # fragmented, reserved bits, unmasked or too long: the parser's error stands, at
                # once (it refuses an unmasked frame from its header)
                out += head
                self._closed = True
            else:
                self._partial_close = head
                if not length:
                    out += self._mend(bytes(head))
                    self._partial_close = None
        return bytes(out)

    def _mend(self, frame: bytes) -> bytes:
        self._closed = True
        start = _header_size(frame)
        key = frame[start - 4 : start]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(frame[start:]))
        if not payload:
            return frame
        if len(payload) == 1:
            code, reason, echo = 1005, "", b""
        else:
            code = int.from_bytes(payload[:2], "big")
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                reason = payload[2:].decode("utf-8", "replace")
            else:
                if len(payload) <= 125 and (code in _OK_CODES or 3000 <= code < 5000):
                    return frame  # websockets reads it as it is
            echo = b"" if code == 1005 else payload
        self.mended = (code, reason, echo)
        return _SUBSTITUTE_CLOSE


def _header_size(head: bytes | bytearray) -> int:
    length = head[1] & 0x7F
    return 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if head[1] & 0x80 else 0)


def _payload_length(head: bytes | bytearray) -> int:
    length = head[1] & 0x7F
    if length == 126:
        return int.from_bytes(head[2:4], "big")
    if length == 127:
        return int.from_bytes(head[2:10], "big")
    return length


def _whole_frames_without_close(data: bytes | bytearray) -> bool:
    """``data`` is whole frames, none of them a Close (so :class:`CloseMender` passes it as is)."""
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 2 or data[pos] & 0x0F == _CLOSE_OPCODE:
            return False
        size = _header_size(data[pos : pos + 2])
        if end - pos < size:
            return False
        pos += size + _payload_length(data[pos : pos + size])
    return pos == end


# workerd's descriptions of the protocol errors the `websockets` parser also refuses, by the
# parser's reason (measured with miniflare 4, 2026-04-07, raw frames on its port: the client's
# Close frame carries the description and the object's error event quotes it).
_WORKERD_DESCRIPTIONS = {
    "expected a continuation frame": "Missing continuation frame",
    "fragmented control frame": "Received fragmented control frame",
    "reserved bits must be 0": (
        "Received a WebSocket frame whose compression bit was set, but the compression extension was not "
        "negotiated for this connection."
    ),
}
_HIGH_RSV = "Received frame had RSV bits 2 or 3 set"


def workerd_description(reason: str, exc: BaseException | None, *, high_rsv: bool = False) -> str:
    """workerd's description of the protocol error the ``websockets`` parser reports as ``reason``.

    ``exc`` is the parser's exception (an invalid opcode names the opcode in its cause);
    ``high_rsv``: a frame had RSV2 or RSV3 set (workerd words that apart from RSV1).
    A reason workerd words the same way comes back capitalized.
    """
    if reason == "invalid opcode":
        cause = getattr(exc, "__cause__", None)
        number = str(cause).split(" ", 1)[0] if cause is not None else ""
        if number.isdigit():
            return f"Unknown opcode {number}"
    if reason == "reserved bits must be 0" and high_rsv:
        return _HIGH_RSV
    known = _WORKERD_DESCRIPTIONS.get(reason)
    return known if known is not None else reason[:1].upper() + reason[1:]


def protocol_error(code: int, reason: str) -> str | None:
    """workerd's ``webSocketError`` text for a connection the client broke (``None``: not one).

    workerd's read loop fails the object's end with ``WebSocket protocol error;
    protocolError.statusCode = N; protocolError.description = ...`` (measured with miniflare: 1009
    for a message too large, 1002 "Unexpected continuation frame"); the description here is the
    ``websockets`` parser's reason, capitalized, which matches workerd's for the common cases.
    """
    if code == 1009:
        # The reason is workerd's description when the sizes are known (see too_large_reason).
        return TOO_LARGE_PREFIX + reason if reason.startswith("Message is too large") else TOO_LARGE_MESSAGE
    if code == 1002:
        description = reason[:1].upper() + reason[1:]  # (workerd's wording: workerd_description)
        return f"WebSocket protocol error; protocolError.statusCode = 1002; protocolError.description = {description}"
    return None


def too_large_reason(exc: BaseException | None) -> str | None:
    """workerd's close reason for the ``websockets`` parser's refusal ``exc`` of a message too large.

    ``PayloadTooBig`` knows the frame's size, the limit and what earlier fragments took; workerd
    says ``Message is too large: <frame> > <what the message may still hold>``. None when the
    sizes are not known (a compressed message refused as it inflates).
    """
    size = getattr(exc, "size", None)
    limit = getattr(exc, "max_size", None)
    if not isinstance(size, int) or not isinstance(limit, int):
        return None
    current = getattr(exc, "current_size", None)
    return too_large_description(size, limit - (current if isinstance(current, int) else 0))


def _with_close(output: list[bytes], old: Any, code: int, reason: str) -> list[bytes]:
    """``output`` (the parser's pending writes) with the Close frame for ``old`` replaced by ``code`` and ``reason``.

    The payload is built here, not by ``websockets``' ``Close``, which refuses codes that workerd
    sends (1016-2999) and reasons over 123 bytes.
    """
    sent = _close_frame(old.serialize())
    wanted = _close_frame(code.to_bytes(2, "big") + reason.encode())
    return [wanted if chunk == sent else chunk for chunk in output]


def _close_frame(payload: bytes) -> bytes:
    """A server's (unmasked) Close frame with ``payload``, built here: ``websockets`` refuses
    control frames over 125 bytes, and workerd's description of an RSV1 frame makes one (its
    Close frame says it whole: measured with miniflare 4, 2026-04-07)."""
    size = len(payload)
    head = (
        bytes([0x80 | _CLOSE_OPCODE, size])
        if size < 126
        else bytes([0x80 | _CLOSE_OPCODE, 126]) + size.to_bytes(2, "big")
    )
    return head + payload


def send_close(conn: Any, code: int | None, reason: str) -> list[bytes]:
    """``conn.send_close(code, reason)`` (a ``websockets`` protocol); what it has to write.

    workerd's ``close()`` takes any code from 1000 to 4999 but 1004-1006 and 1015 and sends it
    (measured with miniflare 4, 2026-04-07, on a real port: ``close(2999, "hi")`` put
    ``Close(2999, "hi")`` on the wire). ``websockets`` refuses to send 1016-2999 (and a few
    others), which left the client waiting for a Close that never came: those are sent as 1000
    and the frame's code rewritten.
    """
    from websockets.exceptions import ProtocolError
    from websockets.frames import Close

    try:
        if code is not None:
            Close(code, reason).check()
    except ProtocolError:  # a code websockets will not send
        assert code is not None
        conn.send_close(1000, reason)
        sent = conn.close_sent
        conn.close_sent = Close(code, reason)
        return _with_close(conn.data_to_send(), sent, code, reason)
    conn.send_close(code, reason)
    return list(conn.data_to_send())


def websocket_protocol() -> type[Any] | None:
    """uvicorn's ``auto`` WebSocket protocol with a close that leaves nothing unread, or None."""
    try:
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - uvicorn before the Sans-I/O protocol, or no websockets
        return None
    if AutoWebSocketsProtocol is not WebSocketsSansIOProtocol:  # pragma: no cover - older uvicorn
        return None

    class GracefulWebSocketProtocol(WebSocketsSansIOProtocol):
        """uvicorn's protocol; a connection the client broke closes once the client's Close is read."""

        durable_frames: FrameEnds | None = None  # uvicorn has its own `frames`
        durable_mender: CloseMender | None = None
        durable_failed = False
        durable_app_closed = False  # the application closed; the client's answer is still to come

        def data_received(self, data: bytes) -> None:
            if self.durable_failed:
                self.durable_discard(data)
                return
            if getattr(self, "handshake_initiated", False):
                # From the first byte after the request (uvicorn hands the request over on its own),
                # not from the 101: a client may send frames before it, which the parser reads.
                if self.durable_frames is None or self.durable_mender is None:
                    self.durable_frames, self.durable_mender = FrameEnds(), CloseMender()
                self.durable_frames.feed(data)
                data = self.durable_mender.feed(data)  # (a Close frame is held until whole)
                if not data:
                    return
            super().data_received(data)

        def durable_discard(self, data: bytes) -> None:
            assert self.durable_frames is not None
            self.durable_frames.feed(data)
            if self.durable_frames.closed:
                self.transport.close()  # everything the client sent is read: no reset

        def handle_parser_exception(self) -> None:
            if not all(hasattr(self, name) for name in _UVICORN_STATE):
                # A uvicorn release whose protocol keeps other state: its own close, unchanged.
                super().handle_parser_exception()
                return
            if self.durable_close_in_message():
                return
            close = self.conn.close_sent
            assert close is not None  # the parser failed the connection: it sent a Close
            output = self.conn.data_to_send()
            reason = close.reason
            if close.code == 1009:
                workerd_reason = too_large_reason(getattr(self.conn, "parser_exc", None))
                if workerd_reason is not None:  # workerd's reason in the Close frame too
                    output, reason = _with_close(output, close, 1009, workerd_reason), workerd_reason
            elif close.code == 1002:  # workerd's description, in the Close frame and the error event
                frames = self.durable_frames
                exc = getattr(self.conn, "parser_exc", None)
                described = workerd_description(reason, exc, high_rsv=frames is not None and frames.high_rsv)
                if described != reason:
                    output, reason = _with_close(output, close, 1002, described), described
            event: dict[str, Any] = {"type": "websocket.disconnect", "code": close.code, "reason": reason}
            error = protocol_error(close.code, reason)
            if error is not None:
                event[PROTOCOL_ERROR] = error  # the object gets workerd's error event, not a close
            self.queue.put_nowait(event)  # type: ignore[arg-type]  # (a key of durable's own added)
            self.durable_failed = self.close_sent = True
            self.transport.write(b"".join(output))  # the Close frame
            if self.durable_frames is None or self.durable_frames.closed:
                self.transport.close()
                return
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

        def durable_close_in_message(self) -> bool:
            """The client's Close inside a fragmented message, which the parser refuses
            (``incomplete fragmented message``), read as workerd reads it: the client's close, the
            unfinished message dropped, the payload echoed (miniflare 4, 2026-04-07, raw socket:
            a text frame without FIN, then ``Close(1000, "mid")``: the object's close event got
            ``(1000, "mid", True)`` and no message, and a standard socket echoed the payload).
            True: done."""
            from websockets.exceptions import ProtocolError

            exc, received = getattr(self.conn, "parser_exc", None), getattr(self.conn, "close_rcvd", None)
            if received is None or not isinstance(exc, ProtocolError) or str(exc) != "incomplete fragmented message":
                return False
            mended = self.durable_mender.mended if self.durable_mender is not None else None
            if self.durable_app_closed and not self.durable_failed:
                self.durable_app_closed = False  # the client's answer to the application's close
                echo = b""
            elif not self.close_sent:
                payload = mended[2] if mended is not None else b"" if received.code == 1005 else received.serialize()
                echo = _close_frame(payload)
            else:
                return False
            code, reason = (mended[0], mended[1]) if mended is not None else (received.code, received.reason)
            closed: dict[str, Any] = {"type": "websocket.disconnect", "code": code, "reason": reason, CLEAN_CLOSE: True}
            self.queue.put_nowait(closed)  # type: ignore[arg-type]  # (a key of durable's own added)
            self.conn.data_to_send()  # (the parser's Close(1002), which the echo replaces)
            self.close_sent = True
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self.transport.write(echo)
            self.transport.close()
            return True

        def send_receive_event_to_app(self) -> None:
            if not all(hasattr(self, name) for name in _UVICORN_TEXT_STATE):
                super().send_receive_event_to_app()
                return
            # uvicorn's, but a text message that is not UTF-8 is delivered with U+FFFD in place
            # of the bad bytes, as workerd does, instead of closing the connection with 1007;
            # and a message after the application's close still reaches it (see the module docstring).
            frames = self.frames
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            self.frames = []
            if self.close_sent and (self.durable_failed or not self.durable_app_closed):
                return  # the connection failed, or uvicorn closed it: discarded, as uvicorn does
            event: dict[str, Any] = {"type": "websocket.receive"}
            if self.curr_msg_data_type == "text":
                event["text"] = data.decode("utf-8", "replace")
            else:
                event["bytes"] = data
            self.queue.put_nowait(event)  # type: ignore[arg-type]
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()

        def handle_close(self, event: Any) -> None:
            received = getattr(getattr(self, "conn", None), "close_rcvd", None)
            mended = self.durable_mender.mended if self.durable_mender is not None else None
            if received is not None:
                code, reason = (mended[0], mended[1]) if mended is not None else (received.code, received.reason)
                closed: dict[str, Any] = {"type": "websocket.disconnect", "code": code, "reason": reason}
                closed[CLEAN_CLOSE] = True
                if self.durable_app_closed and not self.durable_failed:
                    # The client's answer to the application's close: the application gets its code and reason.
                    self.durable_app_closed = False
                    self.queue.put_nowait(closed)  # type: ignore[arg-type]  # (a key of durable's own added)
                elif mended is not None and not self.close_sent and not self.transport.is_closing():
                    # uvicorn's answer to a client's Close, with the client's own code and reason
                    # (CloseMender), and its payload echoed, as workerd does.
                    self.queue.put_nowait(closed)  # type: ignore[arg-type]
                    output = self.conn.data_to_send()
                    self.transport.write(b"".join(_close_frame(mended[2]) if c == _MENDED_ECHO else c for c in output))
                    self.transport.close()
                    return
            super().handle_close(event)

        async def send(self, message: Any) -> None:
            if message["type"] != "websocket.close" or not self.durable_can_close():
                await super().send(message)
                return
            # uvicorn's close of an open connection, without the websocket.disconnect it gives
            # the application at once: the client's messages and its Close are still to come.
            await self.writable.wait()
            if self.disconnected or self.close_sent or self.transport.is_closing():
                await super().send(message)  # uvicorn's answer to a close it cannot send
                return
            from uvicorn.protocols.utils import ClientDisconnected
            from websockets.exceptions import InvalidState

            try:
                output = send_close(self.conn, message.get("code", 1000), message.get("reason", "") or "")
            except InvalidState:  # pragma: no cover - as uvicorn: the connection is closing
                raise ClientDisconnected() from None
            self.transport.write(b"".join(output))
            self.close_sent = self.durable_app_closed = True
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

        def durable_can_close(self) -> bool:
            """The connection is open and uvicorn keeps the state the close above uses."""
            if not all(hasattr(self, name) for name in _UVICORN_CLOSE_STATE):
                return False  # pragma: no cover - a uvicorn release with other state
            return bool(self.handshake_complete and self.initial_response is None and not self.close_sent)

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)  # (none if the handshake was refused)
            if isinstance(scope, dict):
                # uvicorn's send_close(None) writes a Close without a code: the bridge may ask for it.
                extensions = scope.setdefault("extensions", {})
                extensions[CLOSE_WITHOUT_CODE] = {}
                if all(hasattr(self, name) for name in _UVICORN_CLOSE_STATE):
                    extensions[CLIENT_CLOSE] = {}  # the close above passes the client's answer on

    return GracefulWebSocketProtocol
