"""The header timer of ``durable serve`` (durable/_serve_limits.py), on a clock the test moves.

The subprocess tests in ``test_serve.py`` prove the bounds against real sockets; these drive the
guard's hooks directly, in the order uvicorn's protocols call them, to pin down when a connection
is closed and how many timers it arms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from durable._serve_limits import _Guard


class FakeHandle:
    """A timer handle: when it is due, and whether it was cancelled."""

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback: Callable[[], None] | None = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The two loop methods the guard uses, on a clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0
        self.armed: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.armed.append(handle)
        return handle

    def advance(self, seconds: float) -> None:
        """Move the clock and run every timer that came due, in order."""
        self.now += seconds
        while due := [h for h in self.armed if h.when <= self.now and not h.cancelled and h.callback is not None]:
            handle = min(due, key=lambda h: h.when)
            callback, handle.callback = handle.callback, None
            assert callback is not None
            callback()


class FakeTransport:
    """A transport that only records being closed."""

    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        pass


class Connection(_Guard):
    """One connection's guard, with a 10-second header timeout."""

    header_timeout = 10.0

    def __init__(self) -> None:
        self.clock = FakeLoop()
        self.fake = FakeTransport()
        loop: Any = self.clock  # stands in for the asyncio loop
        transport: Any = self.fake  # and for the asyncio.Transport
        self.loop = loop
        self.transport = transport
        self.connections = {self}
        self.logger = logging.getLogger("test")
        self._admit(transport)

    def request(self) -> None:
        """A whole request: its head arrives and parses, then its response completes."""
        self._head_expected()
        self._head_complete()
        self._awaiting_head = True


class TestHeaderTimer:
    """A request head must arrive within the timeout; the timer is not re-armed per request."""

    def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(self) -> None:
        """A silent connection stays open until the timeout, and is closed then."""
        conn = Connection()
        conn.clock.advance(9.9)
        assert not conn.fake.closed
        conn.clock.advance(0.1)
        assert conn.fake.closed

    def test_many_requests_arm_one_timer(self) -> None:
        """A thousand quick requests on one connection arm a single timer, never cancelled."""
        conn = Connection()
        for _ in range(1000):
            conn.request()
        assert len(conn.clock.armed) == 1
        assert not conn.clock.armed[0].cancelled

    def test_a_head_started_later_gets_its_own_deadline(self) -> None:
        """A head that starts 8 s in is closed 10 s after its first byte, not when the first timer fires."""
        conn = Connection()
        conn.request()
        conn.clock.advance(8)
        conn._head_expected()  # the first byte of a head that never completes
        conn.clock.advance(2)  # the connection's first timer fires: this head has 8 s left
        assert not conn.fake.closed
        conn.clock.advance(7.9)
        assert not conn.fake.closed
        conn.clock.advance(0.1)
        assert conn.fake.closed

    def test_an_idle_keep_alive_connection_is_left_to_uvicorn(self) -> None:
        """Between requests no head is timed: the timer lapses (keep-alive is uvicorn's), and re-arms."""
        conn = Connection()
        conn.request()
        conn.clock.advance(60)
        assert not conn.fake.closed
        conn._head_expected()
        assert len(conn.clock.armed) == 2
        conn.clock.advance(10)
        assert conn.fake.closed

    def test_a_completed_head_is_never_closed(self) -> None:
        """A request whose head completed in time is not cut off while its body or response runs."""
        conn = Connection()
        conn._head_expected()
        conn._head_complete()  # a long upload or a slow handler follows
        conn.clock.advance(30)
        assert not conn.fake.closed

    def test_a_lost_connection_cancels_its_timer(self) -> None:
        """When the connection goes, its timer is cancelled."""
        conn = Connection()
        conn._disarm_header_timer()
        assert conn.clock.armed[0].cancelled
        conn.clock.advance(30)
        assert not conn.fake.closed

    def test_no_timeout_arms_nothing(self) -> None:
        """With no header timeout, no timer is armed at all."""

        class Untimed(Connection):
            header_timeout = None  # type: ignore[assignment]

        conn = Untimed()
        conn.request()
        assert conn.clock.armed == []
