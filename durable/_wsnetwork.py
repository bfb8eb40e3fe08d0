"""One socket's end of the connection: the peer, the close handshake, and the frames in flight.

A :class:`NetworkEnd` is what the other end of a pair (or the ASGI bridge, or
``durable.testing``) sees of a ``WebSocket``. It sends frames to its peer after the output gate,
one loop turn later (``loop.call_soon``, first in, first out), as over a network: a sender never
runs the receiver's code inside its own call. It receives the peer's frames (:meth:`arrive`),
keeps the state of the close handshake, and hands every frame to its socket's
:class:`~durable._wsdelivery.Delivery`, which decides who sees it.

Close semantics are Cloudflare's from compatibility date 2026-04-07
(``web_socket_auto_reply_to_close``): a Close frame is answered by the runtime itself, so the
receiving end is already ``CLOSED`` when its close event runs (unless it was accepted with
``allow_half_open=True``: then only its own ``close()`` answers).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._wsbase import (
    CLOSE,
    CLOSED,
    CLOSING,
    DISCONNECTED_REASON,
    ERROR,
    MESSAGE,
    OPEN,
    TOO_LARGE_PREFIX,
    WebSocketError,
    object_hooks,
    too_large,
    too_large_description,
)

if TYPE_CHECKING:
    from ._wsdelivery import Delivery

__all__ = ["NetworkEnd"]

_Pending = deque[tuple[tuple[Any, ...], asyncio.Future[None] | None, Callable[[], bool] | None]]


class NetworkEnd:
    """One socket's end of the connection (see the module docstring).

    Package-internal: ``ws.network`` of every ``WebSocket``; not part of the public API.

    Attributes:
        delivery: where the frames that arrive go (the socket's :class:`Delivery`).
        peer: the other end's :class:`NetworkEnd` (None once handed over).
        closed_in: a Close (or an error) arrived from the peer.
        closed_out: this end sent its Close.
        replied: that Close was the runtime's answer to the peer's (and the object's ``close()`` came not since).
        began_close: this end's ``close()`` sent its Close before the peer's arrived.
        close_due: ``(code, reason, was_clean)`` of a close that arrived on a hibernatable end
            and waits for its close event (:meth:`take_close`); until then the object sees the
            end ``OPEN`` (or ``CLOSING`` after its own ``close()``), as in workerd.
        gone: the connection is lost; nothing is sent or received any more.
        close_info: ``(code, reason, was_clean)`` of the close that arrived, once one did.
        used: the end was accepted, or used to send or to close (``accept_web_socket`` on the
            other end of the pair is refused from then on).
        half_open: accepted with ``accept(allow_half_open=True)``: a Close that arrives is not
            answered; the end stays ``CLOSING``, and may still send, until its ``close()``.
        unread: a client's end that sent a message over 32 MiB (:func:`_refuse_too_large`): the
            other side reads nothing more from it, so what it sends (its Close too) is dropped.
    """

    __slots__ = (
        "_beyond", "_last_words", "_pending", "began_close", "close_due", "close_info", "closed_in", "closed_out",
        "delivery", "error_due", "gone", "half_open", "peer", "replied", "unread", "used",
    )  # fmt: skip

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.peer: NetworkEnd | None = None
        self.closed_in = self.closed_out = self.replied = self.gone = self.used = self._last_words = False
        self.half_open = self.unread = self.began_close = False
        self.close_info: tuple[int, str, bool] | None = None
        self.close_due: tuple[int, str, bool] | None = None
        self.error_due: tuple[Any, ...] | None = None  # the error frame behind close_due, if any
        self._beyond: str | None = None  # a client beyond the runtime: who answers its Close
        self._pending: _Pending | None = None

    @property
    def ready_state(self) -> int:
        """``OPEN`` (1), ``CLOSING`` (2: one side sent its Close) or ``CLOSED`` (3)."""
        if self.close_due is not None:
            return CLOSING if self.closed_out else OPEN  # the object has not seen the close yet
        if self.gone or (self.closed_in and self.closed_out):
            return CLOSED
        if self.closed_in or self.closed_out:
            return CLOSING
        return OPEN

    def mark_remote(self, *, answers_close: bool = False) -> None:
        """Mark this end as a client beyond the runtime (by the ASGI bridge and ``durable.testing``).

        What it sends, the object receives: workerd's 32 MiB limit applies (:func:`_refuse_too_large`).
        Ends of a pair made in process have none (workerd 2026-04-26 passes 32 MiB + 1 between them).
        ``answers_close``: the client answers a Close itself (``durable serve``), not this end.
        """
        self._beyond = "client" if answers_close else "runtime"

    def move_to(self, other: NetworkEnd) -> None:
        """Hand this end's connection over to ``other`` (a fresh handle's end, in a Response):
        ``other`` takes the peer and the state of the close handshake; this end is detached
        (what it still sends goes nowhere, and nothing arrives at it any more)."""
        other.peer = self.peer
        if self.peer is not None:
            self.peer.peer = other
        other.closed_in, other.closed_out, other.gone = self.closed_in, self.closed_out, self.gone
        other.replied, other.close_due, other.began_close = self.replied, self.close_due, self.began_close
        other.error_due = self.error_due
        other.close_info, other._beyond = self.close_info, self._beyond
        self.peer = None

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """Send a message (``WebSocket.send`` has checked the end is accepted and ``data``'s type).

        A hibernatable end whose peer closed drops it silently until the object calls ``close()``: workerd
        runs the close handler before its reply goes out and lets it send there, e.g. a broadcast (miniflare
        4, 2026-04-07), not after a ``close()``; here the runtime has replied already, so nothing leaves.

        Raises:
            TypeError: this end was closed with ``close()`` (or, on the standard path, the runtime
                answered the peer's Close: workerd's ``close`` listener gets the same error).
        """
        self.used = True
        if self.closed_out:
            if self.replied and self.delivery.hibernatable:
                return
            raise TypeError("Can't call WebSocket send() after close().")
        if self.gone:
            return  # the connection is gone: silently dropped, as workerd does
        if self._beyond and too_large(data):
            _refuse_too_large(self, data)
            return
        self.emit((MESSAGE, data))

    def close(self, code: int, reason: str) -> None:
        """Send a Close frame (already validated), unless this end closed or is gone."""
        if self.closed_out:
            self.replied = False  # (a send() after it is refused, as in workerd: miniflare 4.20260426)
            return
        if self.gone:
            if self.close_due is not None:
                self.closed_out = True  # CLOSING until the close event, as in workerd
            return
        self.closed_out, self.began_close = True, not self.closed_in
        self.emit((CLOSE, code, reason, True))
        if self.closed_in:
            self.delivery.finished()

    def emit(self, frame: tuple[Any, ...]) -> None:
        """Send a frame to the peer, after the output gate; frames stay in order.

        Each frame waits for the commit of the writes made before it (its barrier) and for the
        frames sent before it; a frame whose commit failed is dropped (workerd's output gate).
        """
        if self.unread:
            return  # the other side's read loop failed: nothing more is read (even held in its backlog)
        barrier, alive = object_hooks().output_barrier()
        pending = self._pending
        if pending is not None:
            pending.append((frame, barrier, alive))
            return
        if barrier is None:
            if self.peer is not None and not self.gone:
                self._post(frame, alive)
            return
        self._pending = deque([(frame, barrier, alive)])
        barrier.add_done_callback(self._drain)

    def _drain(self, _: object = None) -> None:
        pending = self._pending
        while pending:
            frame, barrier, alive = pending[0]
            if barrier is not None:
                if not barrier.done():
                    barrier.add_done_callback(self._drain)
                    return
                if barrier.cancelled() or barrier.exception() is not None:
                    pending.popleft()
                    continue  # its commit failed: it never leaves
            pending.popleft()
            if self.peer is not None and (not self.gone or self._last_words):
                self._post(frame, None if barrier is not None else alive)  # (see Released frames, below)
        self._pending, self._last_words = None, False

    def auto_respond(self, data: str) -> None:
        """Send an auto-response: after the frames this end sent that still wait for the output
        gate, before any sent later, and never after this end's Close has gone out (workerd's
        ``sendAutoResponse``: a message the object sent after a write, still held by the output
        gate, reaches the client before the auto-response to a later request; measured with
        miniflare 4, 2026-04-07)."""
        if self.peer is None or self.gone:
            return
        pending = self._pending
        if pending:
            pending.append(((MESSAGE, data), None, None))
        elif not self.closed_out:
            self._post((MESSAGE, data))

    def take_close(self) -> None:
        """The close event of a close kept by :meth:`arrive` starts: the end takes it, and the
        runtime answers a Close (after the frames this end sent that still wait for the output
        gate), so the close handler sees ``CLOSED``."""
        due = self.close_due
        if due is None:
            return
        error = self.error_due
        self._settle_due()
        if error is not None:
            return _take_error(self, error)
        if not self.closed_out and not self.gone:
            self.closed_out = self.replied = True
            frame = (CLOSE, due[0], due[1], True)
            if self._pending:
                self._pending.append((frame, None, None))
            elif self.peer is not None:
                self._post(frame)
        self.delivery.finished()

    def _settle_due(self) -> None:
        due = self.close_due
        if due is not None:
            self.close_due = self.error_due = None
            self.closed_in = True
            self.close_info = due

    def transmit(self, frame: tuple[Any, ...]) -> None:
        """Send ``frame`` now, bypassing the output gate (the runtime's own answers: the reply to
        a Close, an auto-response, the close at shutdown)."""
        if self.peer is None or self.gone:
            return
        self._post(frame)

    def _post(self, frame: tuple[Any, ...], alive: Callable[[], bool] | None = None) -> None:
        # The peer is looked up on arrival: an end handed over in a Response meanwhile has a new handle.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._forward(frame, alive)
        else:
            loop.call_soon(self._forward, frame, alive, context=contextvars.Context())

    def _forward(self, frame: tuple[Any, ...], alive: Callable[[], bool] | None) -> None:
        if alive is not None and not alive():
            # The object that sent it was reset before it left (a constructor that sends and
            # then throws, abort() right after send()): workerd drops it with the broken actor.
            return
        peer = self.peer
        if peer is not None:
            peer.arrive(frame)

    # -- the connection ends -------------------------------------------------------------------

    def disconnect(self, code: int = 1006, reason: str = DISCONNECTED_REASON, *, after_sent: bool = False) -> None:
        """The connection is lost: the peer gets an unclean close, this end dies (``after_sent``: after held frames)."""
        self._settle_due()
        if self.gone:
            return
        if self._pending and not after_sent:
            self._drain()  # what passed the output gate already leaves first (see Released frames, below)
        self.gone = True
        frame = (CLOSE, code, reason, False)
        if after_sent and self._pending and self.peer is not None:  # (_listener_raised)
            self._last_words = True  # gone, but the frames the output gate held leave first (_drain)
            self._pending.append((frame, None, None))
        elif self.peer is not None:
            self._post(frame)
        self.delivery.finished()

    def fail(self, error: BaseException) -> None:
        """The connection failed with ``error``: the other end gets an error event and dies."""
        self._settle_due()
        if self.gone:
            return
        self.gone = True
        if self.peer is not None:
            self._post((ERROR, error))
        self.delivery.finished()

    def shut_down(self, code: int, reason: str) -> None:
        """The runtime closes: send a Close with ``code`` now (unless this end sent one) and die.

        The owning object is forgotten without being told (it is going away too).
        """
        self.delivery.disown()
        self._settle_due()
        if not self.closed_out:
            self.closed_out = True
            self.transmit((CLOSE, code, reason, True))
        self.gone = True

    # -- receiving -----------------------------------------------------------------------------

    def arrive(self, frame: tuple[Any, ...]) -> None:
        """A frame from the peer (or from the network, through the ASGI bridge)."""
        if self.gone or self.closed_in:
            return
        kind = frame[0]
        if kind != MESSAGE and self.delivery.waiting:
            self.delivery.hold(frame)  # read once the end is accepted, as in workerd
            return
        if kind != MESSAGE and self.delivery.queue_held(frame):
            return  # read after the frames before it (Delivery.queue_held)
        if self.close_due is not None:
            # A Close is waiting for its close event: the peer sends nothing after it, but the
            # connection may still be lost before the event runs (then no reply can go out).
            if kind != MESSAGE and not (kind == CLOSE and frame[3]):
                self.gone = True
            return
        if kind != MESSAGE and self.delivery.hibernatable:
            return _read_later(self, frame)
        if kind == CLOSE:
            self.closed_in = True
            self.close_info = (frame[1], frame[2], frame[3])
            if frame[3]:
                if not self.closed_out and self._beyond != "client":
                    if self.half_open:  # no answer: CLOSING, and may send, until close()
                        return self.delivery.deliver(frame)
                    # The runtime answers a Close itself (web_socket_auto_reply_to_close).
                    self.closed_out = self.replied = True
                    self.transmit((CLOSE, frame[1], frame[2], True))
            else:
                self.gone = True
        elif kind == ERROR:
            if len(frame) > 2:
                self.transmit(frame[2])  # the 1009 of _refuse_too_large: sent as the error is read
            self.closed_in = True
            self.gone = True
            self.close_info = (1006, DISCONNECTED_REASON, False)
        delivery = self.delivery
        delivery.deliver(frame)
        if kind != MESSAGE:
            delivery.finished()


def _read_later(end: NetworkEnd, frame: tuple[Any, ...]) -> None:
    """A Close or an error that arrived on a hibernatable ``end``: kept in ``end.close_due`` (and
    ``end.error_due``) until its event starts (:meth:`NetworkEnd.take_close`).

    workerd's hibernation manager reads a frame only once the previous one's event has started:
    a Close is seen (and answered), or a lost connection noticed, when its close event starts,
    after the message events before it, whose handlers see OPEN and whose sends reach the client
    (measured with miniflare 4, 2026-04-07). The client's answer to the object's close() too:
    those handlers see CLOSING, not CLOSED (run_ws.py 150 --seed 10042 --loop uvloop, sequence
    94). An error (a message over 32 MiB) likewise (miniflare 4.20260426, a dispatchFetch client
    sending "m1" and 33 MiB: the handler of m1 saw OPEN and its echo arrived).
    """
    if frame[0] == ERROR:
        end.close_due = (1006, DISCONNECTED_REASON, False)
        end.error_due = frame
    else:
        end.close_due = (frame[1], frame[2], frame[3])
        if not frame[3]:
            end.gone = True  # what the object sends meanwhile goes nowhere
    end.delivery.deliver(frame)


def _take_error(end: NetworkEnd, error: tuple[Any, ...]) -> None:
    """The error event of an error kept by :func:`_read_later` starts: the connection is over
    (the 1009 Close of :func:`_refuse_too_large` leaves now)."""
    if len(error) > 2:
        end.transmit(error[2])
    end.gone = True
    end.delivery.finished()


# Released frames: a frame whose barrier (the commit of the writes before it) succeeded has left
# the object. NetworkEnd._drain sends it even if the object was reset since, and a disconnect (the
# reset's) sends such frames before its 1006. workerd (miniflare 4.20260426): a call that writes
# then sends, and once it returned a call that aborts the object: the client got the message, then
# 1006 (run_ws.py 100 --seed 10403 --resets --loop uvloop, sequence 12). A frame sent with no
# write before it is still dropped by a reset before it crosses.


def _refuse_too_large(end: NetworkEnd, data: str | bytes) -> None:
    """A message over 32 MiB from the network, sent by ``end``: workerd's read loop fails with a
    protocol error. The object's end gets its error event and is released; ``end``, the client's,
    gets a Close with 1009 and workerd's reason, ``Message is too large: <size> > 33554432``.

    Until that Close arrives ``end`` stays ``OPEN``, and what it sends is dropped (workerd,
    miniflare 4.20260426: a client's ``send("after")`` right after its 33 MiB message raised
    nothing, and the object never got it, nor the client's ``close()`` after it). The Close
    leaves the object's end as it reads the error, so only once that end is accepted (workerd
    reads nothing before: its client got the 1009 only after the object's ``accept()``).
    """
    description = too_large_description(data)
    end.unread = True
    frame = (CLOSE, 1009, description, True)
    if end.peer is not None:
        end._post((ERROR, WebSocketError(TOO_LARGE_PREFIX + description), frame))
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        end.arrive(frame)
    else:
        loop.call_soon(end.arrive, frame, context=contextvars.Context())
