"""Bounds for ``durable serve``: a header timeout and a connection cap on top of uvicorn's HTTP protocols.

uvicorn (0.29 to at least 0.55) bounds a connection only between requests (``timeout_keep_alive``,
armed when a response completes): a connection that never sends a byte, or sends its request
head one byte at a time, stays open forever, and its ``limit_concurrency`` answers 503 to the
requests of connections already open instead of refusing new ones. So ``durable serve`` uses
:func:`guarded_protocol`: a subclass of uvicorn's ``H11Protocol`` or, with the fast parser,
``HttpToolsProtocol``, that adds:

- a header timeout: a request head (request line and headers) must arrive completely within
  ``header_timeout`` seconds of the connection opening, or of the first byte after a response;
  otherwise the connection is closed (what Node's ``headersTimeout`` and nginx's
  ``client_header_timeout`` do);
- a connection cap: a connection beyond ``max_connections`` open at once is answered ``503``
  and closed at once, so idle connections cannot hold every descriptor;
- a request head limit: a request line and headers over ``MAX_HEAD_BYTES`` (128 KiB, workerd's
  limit) get workerd's ``431`` and the connection is closed. uvicorn's httptools protocol has no
  limit at all (a 30 MB header was read whole), and its h11 one answers ``400`` beyond 16 KiB.

The httptools protocol also ignores ``Expect: 100-continue`` in an HTTP/1.0 request, as RFC 9110
requires (uvicorn's sent that client ``100 Continue``; h11's does not).

Layer 5: imported by ``_cli`` only, and only once uvicorn is known to be installed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from ._util import open_files_limit

__all__ = ["MAX_HEAD_BYTES", "default_max_connections", "guarded_h11_protocol", "guarded_protocol"]

#: The largest request head (request line, headers and the blank line) accepted: workerd's
#: (measured with miniflare 4, 2026-04-07: a head of 131072 bytes is served, one more byte gets
#: ``431 Request Header Fields Too Large`` with the body ``ERROR: header too large.``).
MAX_HEAD_BYTES: Final = 128 * 1024

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 21\r\n"
    b"\r\n"
    b"Too many connections\n"
)

_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain\r\n"
    b"connection: close\r\n"
    b"content-length: 24\r\n"
    b"\r\n"
    b"ERROR: header too large."
)


# A timer may fire this much before its deadline (an event loop runs the handles due within its
# clock resolution): closer than this, a deadline counts as reached.
_EARLY = 0.001


def default_max_connections() -> int:
    """The default connection cap: 1000, or a quarter of the limit on open files if lower.

    A quarter leaves the runtime's live objects their half (``default_max_live_objects``) and
    the rest to the process. Under a 1024-descriptor limit this is 240. Never less than 8.
    """
    soft = open_files_limit()
    if soft is None:
        return 1000
    return max(8, min(1000, (soft - 64) // 4))


def guarded_protocol(http: str, header_timeout: float | None, max_connections: int | None) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class for ``http`` with a header timeout and a connection cap.

    ``http`` is ``"h11"``, ``"httptools"`` or ``"auto"`` (httptools where installed, as uvicorn
    chooses); ``None`` for a bound means none.
    """
    if http == "auto":
        try:
            import httptools  # noqa: F401 - only checked
        except ImportError:
            http = "h11"
        else:
            http = "httptools"
    if http == "httptools":
        return _guarded_httptools_protocol(header_timeout, max_connections)
    return guarded_h11_protocol(header_timeout, max_connections)


class _Guard:
    """What both guarded protocols add: the connection cap and the header timer.

    The protocol calls ``_admit`` from ``connection_made``, ``_head_expected`` when a request head
    may start (data arriving while none is in progress), ``_head_complete`` once a head is parsed,
    and ``_disarm_header_timer`` when the connection is lost.

    One timer per connection, not one per request: a head being timed has a deadline
    (``_head_deadline``); completing the head only clears it, and the next head sets a new one
    without touching the timer. When the timer fires it closes the connection if the head it
    finds is past its deadline, re-arms itself for a later deadline, and lapses if no head is
    being timed (the next head arms it again). Arming and cancelling a ``call_later`` for every
    request cost about 1-1.5 us of each (asyncio; 0.9 us on uvloop); now a keep-alive
    connection under load arms about one timer per ``header_timeout``.
    """

    header_timeout: float | None = None
    max_connections: int | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _head_deadline: float | None = None
    _awaiting_head = True
    connections: set[Any]
    loop: asyncio.AbstractEventLoop
    logger: Any
    transport: asyncio.Transport

    def _admit(self, transport: asyncio.Transport) -> bool:
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self.logger.warning("Refused a connection: %d connections are open already.", self.max_connections)
            transport.write(_REFUSED)
            transport.close()
            return False
        self._time_head()
        return True

    def _head_expected(self) -> None:
        if self._head_deadline is None and self._awaiting_head:
            self._time_head()  # the first byte of the next request: its head is timed too

    def _head_complete(self) -> None:
        self._awaiting_head = False
        self._head_deadline = None  # the timer, if armed, lapses or serves the next head

    def _time_head(self) -> None:
        timeout = self.header_timeout
        if timeout is not None:
            self._head_deadline = deadline = self.loop.time() + timeout
            if self._header_timer is None:
                self._header_timer = self.loop.call_at(deadline, self._header_timed_out)

    def _refuse_large_head(self) -> None:
        """Answer workerd's 431 to a request head over ``MAX_HEAD_BYTES`` and close."""
        self.logger.warning("Refused a request whose head exceeds %d bytes.", MAX_HEAD_BYTES)
        self._disarm_header_timer()
        if not self.transport.is_closing():
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()

    def _disarm_header_timer(self) -> None:
        self._head_deadline = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        deadline = self._head_deadline
        if deadline is None or self.transport.is_closing() or not self._awaiting_head:
            return  # no head is being timed: the next one arms the timer again
        if deadline - self.loop.time() > _EARLY:
            # A later head than the one this timer was armed for: wait for its own deadline.
            self._header_timer = self.loop.call_at(deadline, self._header_timed_out)
            return
        self._head_deadline = None
        self.logger.debug("Closed a connection that sent no complete request head in %ss.", self.header_timeout)
        self.transport.close()


def guarded_h11_protocol(header_timeout: float | None, max_connections: int | None) -> type[asyncio.Protocol]:
    """uvicorn's ``H11Protocol`` with a header timeout and a connection cap (``None``: none)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(_Guard, H11Protocol):
        """H11Protocol that closes connections slow to send a request head, and refuses extra ones."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._admit(transport)

        _head_bytes = 0  # bytes of an incomplete request head received so far
        _head_tail = b""  # its last 3 bytes: the blank line ending it may be split across reads

        def data_received(self, data: bytes) -> None:
            self._awaiting_head = self.conn.their_state is h11.IDLE
            self._head_expected()
            if self._awaiting_head and self._head_too_large(data):
                self._refuse_large_head()
                return
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._head_bytes = 0
                self._head_tail = b""
                self._head_complete()

        def _head_too_large(self, data: bytes) -> bool:
            # h11 ends a head at a blank line, with or without its CR; searched for in the end
            # of the previous read and this one, so one split across two reads is found.
            tail = self._head_tail
            seen = tail + data
            ends = [i for i in (seen.find(b"\n\r\n"), seen.find(b"\n\n")) if i >= 0]
            if not ends:
                self._head_bytes += len(data)
                self._head_tail = seen[-3:]
                return self._head_bytes > MAX_HEAD_BYTES
            end = min(ends)
            end += (3 if seen[end + 1 : end + 2] == b"\r" else 2) - len(tail)  # in this read
            return self._head_bytes + end > MAX_HEAD_BYTES

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

    return _configured(GuardedH11Protocol, header_timeout, max_connections)


def _guarded_httptools_protocol(header_timeout: float | None, max_connections: int | None) -> type[asyncio.Protocol]:
    """uvicorn's ``HttpToolsProtocol`` (the fast parser) with the same two bounds."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
        """HttpToolsProtocol that closes connections slow to send a request head, and refuses extra ones."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._admit(transport)

        _in_head = False  # between the start of a request and the end of its head
        _head_bytes = 0  # bytes received while a head was incomplete
        _head_fields = 0  # the size of the head being parsed, from its parts
        _refused = False
        _ended_here = False  # a request ended in the chunk being parsed

        def data_received(self, data: bytes) -> None:
            self._head_expected()
            self._ended_here = False
            super().data_received(data)
            if self._in_head and not self._refused:
                if self._ended_here:
                    # The head began in this chunk after the end of the request before it
                    # (pipelined), whose body may fill most of the chunk: only the head's parts
                    # parsed so far count (a header line in progress counts with the next
                    # chunk). The whole chunk counted, a 150 KB body followed by the next
                    # request's first bytes got 431 and the connection closed, the first
                    # request's response unsent.
                    self._head_bytes = self._head_fields
                else:
                    # A head still incomplete: it grows by (at most) this chunk. Bounding it
                    # here bounds what the parser buffers of one huge header or URL.
                    self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refused = True
                    self._refuse_large_head()

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            self._head_fields = 14  # " HTTP/1.1\r\n" after the target, the blank line
            super().on_message_begin()

        def on_message_complete(self) -> None:
            self._ended_here = True
            super().on_message_complete()

        def on_url(self, url: bytes) -> None:
            self._head_fields += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_fields += len(name) + len(value) + 4
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_fields + len(self.parser.get_method()) > MAX_HEAD_BYTES:
                self._refused = True  # the parser stops on this error; uvicorn answers below
                raise ValueError("request head too large")
            self._head_complete()
            if self.expect_100_continue and self.parser.get_http_version() == "1.0":
                # RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request MUST be
                # ignored (the client cannot read a 1xx response, and sends the body anyway).
                # uvicorn's httptools protocol sent "HTTP/1.1 100 Continue" to it before the
                # response; h11 and workerd send none (miniflare 4, 2026-12-07).
                self.expect_100_continue = False
            super().on_headers_complete()
            # The request's scope holds self.headers; llhttp reports a chunked body's trailer
            # fields through on_header too, which would add them to the request's headers after
            # the fact (a trailer "cf-connecting-ip: ..." read as a header). Trailers go to a
            # copy the request does not see (uvicorn still reads it for the upgrade check), as
            # h11 drops them; workerd does not take them (measured: a chunked body with a
            # trailer fails to read there, miniflare 4, 2026-04-07).
            self.headers = list(self.headers)

        def send_400_response(self, msg: str) -> None:
            if self._refused:
                self._refuse_large_head()
            else:
                super().send_400_response(msg)

        def on_response_complete(self) -> None:
            self._awaiting_head = True  # the next request's head is timed from its first byte
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

    return _configured(GuardedHttpToolsProtocol, header_timeout, max_connections)


def _configured(cls: type[Any], header_timeout: float | None, max_connections: int | None) -> type[asyncio.Protocol]:
    cls.header_timeout = header_timeout
    cls.max_connections = max_connections
    cls.__qualname__ = cls.__name__
    protocol: type[asyncio.Protocol] = cls
    return protocol
