"""Who sees what arrives on a socket: the backlog, listeners, ``receive()``, or the object's registry.

A :class:`Delivery` takes the frames its socket's :class:`~durable._wsnetwork.NetworkEnd` receives
and hands them on according to how the socket was accepted, as in workerd:

- not accepted yet: frames wait in a backlog until it is (workerd buffers until ``accept()``);
- ``accept()`` (the standard path): ``message`` / ``close`` / ``error`` listeners run, and a
  client end also offers ``await ws.receive()`` and ``async for``; inside a Durable Object the
  listeners run through the object's input gate (its :class:`~durable._wsbase.StandardOwner`);
- ``ctx.accept_web_socket()`` (the Hibernation API): frames go to the object's socket registry
  (a :class:`~durable._wsbase.Receiver`), which checks the auto-response and dispatches the
  handler events (``durable._hibernation``);
- handed over in a Response: this handle is dead, a fresh one took its place.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

from ._util import shown
from ._wsbase import (
    CLOSE,
    CLOSED,
    DISCONNECTED_REASON,
    ERROR,
    MESSAGE,
    CloseEvent,
    ErrorEvent,
    HibernatableEntry,
    MessageEvent,
    Receiver,
    StandardOwner,
    WebSocketClosed,
    WebSocketError,
    object_hooks,
    uncaught_message,
)

if TYPE_CHECKING:
    from ._websocket import WebSocket

__all__ = ["Delivery", "close_listener_raised", "dropped", "in_listener", "when_dropped"]

log = logging.getLogger("durable")

# How a socket was accepted.
_NEW = 0  # not accepted yet: frames wait in the backlog
_STANDARD = 1  # accept(): listeners / receive()
_HIBERNATABLE = 2  # ctx.accept_web_socket(): the registry's receiver
_RELEASED = 3  # handed over in a Response: this handle is dead

_HELD: Final = object()  # marks a frame in the backlog that the network end has not read yet


class Delivery:
    """Where one socket's incoming frames go (see the module docstring).

    Package-internal: ``ws.delivery`` of every ``WebSocket``; not part of the public API.
    """

    __slots__ = (
        "_backlog", "_inbox", "_listeners", "_mode", "_owner", "_raised", "_receiver", "_turns", "_waiter", "hibernation",
        "socket",
    )  # fmt: skip

    _inbox: deque[tuple[Any, ...]] | None  # made on first use: a deque costs ~600 bytes

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self._mode = _NEW
        # Made on first use, as the inbox (memory per hibernated socket, bench_websockets.py).
        self._backlog: list[tuple[Any, ...]] | None = None
        self._inbox = None
        self._waiter: asyncio.Future[None] | None = None
        self._listeners: dict[str, list[Callable[[Any], Any]]] | None = None
        self._owner: StandardOwner | None = None
        self._receiver: Receiver | None = None
        self._raised: bool | str = False  # a listener raised (its event's type): the read loop is over
        # Inside an object, on the standard path: while the listeners of the last frame read have
        # not run, the frames that arrived since, with the owner they arrived under (_read_standard).
        self._turns: deque[tuple[tuple[Any, ...], StandardOwner | None]] | None = None
        # Tags and auto-response time from ctx.accept_web_socket(), kept after the close as in workerd.
        self.hibernation: HibernatableEntry | None = None

    @property
    def accepted(self) -> bool:
        """Whether the socket was accepted, either way (and not handed over)."""
        return self._mode == _STANDARD or self._mode == _HIBERNATABLE

    @property
    def waiting(self) -> bool:
        """Whether the socket waits to be accepted (not accepted, not handed over)."""
        return self._mode == _NEW

    @property
    def standard(self) -> bool:
        """Whether the socket was accepted with ``accept()``."""
        return self._mode == _STANDARD

    @property
    def hibernatable(self) -> bool:
        """Whether the socket was accepted with ``ctx.accept_web_socket()``."""
        return self._mode == _HIBERNATABLE

    # -- accepting -----------------------------------------------------------------------------

    def accept(self) -> None:
        """``ws.accept()``: deliver to listeners and ``receive()`` (see ``WebSocket.accept``).

        Raises:
            TypeError: the socket was handed over in a Response, accepted with
                ``ctx.accept_web_socket()``, or accepted and closed both ways.
        """
        if self._mode == _RELEASED:
            raise TypeError("Can't accept() WebSocket that was already used in a response.")
        if self._mode == _HIBERNATABLE:
            raise TypeError("Can't accept() WebSocket after enabling hibernation.")
        if self._mode == _STANDARD:
            network = self.socket.network
            if network.closed_in and network.closed_out:
                # workerd releases the connection once both Closes have crossed, and accept() then fails
                # with the released state's message (miniflare 4, 2026-04-07); a 1006 leaves it accepted.
                raise TypeError("Can't accept() WebSocket that was already used in a response.")
            return
        self._mode = _STANDARD
        network = self.socket.network
        network.used = True
        owner = object_hooks().standard_owner()
        if owner is not None and network.ready_state != CLOSED:
            self._owner = owner
            owner.adopt(self.socket)
        self._replay_backlog()

    def accept_hibernatable(self, receiver: Receiver, entry: HibernatableEntry) -> None:
        """Hand the socket to an object's socket registry (``ctx.accept_web_socket``), with its
        tags and auto-response time (``entry``).

        Raises:
            durable.WebSocketError: workerd's errors for a socket already accepted, or whose
                pair was used.
        """
        if self._mode == _STANDARD or self._mode == _HIBERNATABLE:
            raise WebSocketError("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`")
        network = self.socket.network
        if self._mode == _RELEASED or (network.peer is not None and network.peer.used):
            # The boundary is the pair's use (its other end accepted, or used to send or to
            # close), not the event that made it; handing the other end over in a Response
            # first is allowed (both measured with workerd 2026-07-30).
            raise WebSocketError(
                "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been "
                "accepted or used in a Response."
            )
        self._mode = _HIBERNATABLE
        network.used = True
        self._receiver = receiver
        self.hibernation = entry
        self._replay_backlog()

    def release(self) -> list[tuple[Any, ...]] | None:
        """The socket is handed over in a Response: this handle dies; returns its backlog.

        Raises:
            TypeError: workerd's ``Can't return WebSocket ...`` messages (already handed over,
                or accepted either way).
        """
        if self._mode == _RELEASED:
            raise TypeError("Can't return WebSocket that was already used in a response.")
        if self._mode == _HIBERNATABLE:
            raise TypeError("Can't return WebSocket in a Response after calling acceptWebSocket().")
        if self._mode == _STANDARD:
            raise TypeError("Can't return WebSocket in a Response after calling accept().")
        self._mode = _RELEASED
        backlog, self._backlog = self._backlog, None
        return backlog

    def take_over(self, backlog: list[tuple[Any, ...]] | None) -> None:
        """Start with ``backlog``, the frames a handed-over handle had not delivered yet."""
        self._backlog = backlog

    def _replay_backlog(self) -> None:
        """Deliver what arrived before acceptance, on the next loop turn (as workerd dispatches
        events asynchronously), so listeners added right after ``accept()`` get it too."""
        if not self._backlog:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_backlog()
        else:
            loop.call_soon(self._flush_backlog, context=contextvars.Context())

    def _flush_backlog(self) -> None:
        backlog, self._backlog = self._backlog, None
        for frame in backlog or ():
            if frame[0] is _HELD:
                # A Close or a lost connection that waited for acceptance: the network end
                # takes it now (close state, the runtime's reply), then delivers it.
                self.socket.network.arrive(frame[1])
            else:
                self._dispatch(frame)

    # -- the owning object (sockets accepted with accept() inside one) -------------------------

    def finished(self) -> None:
        """The connection is over: the owning object, if any, stops tracking the socket."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.release(self.socket)

    def disown(self) -> None:
        """Forget the owning object without telling it (it is shutting down)."""
        self._owner = None

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """``ws.add_event_listener(type, listener)``: see there for the rules.

        Raises:
            TypeError: another event type, or a listener that is not callable.
        """
        if type not in (MESSAGE, CLOSE, ERROR):
            raise TypeError(f'WebSocket has no "{shown(type, text=True)}" event; use "message", "close" or "error".')
        if not callable(listener):
            raise TypeError(f"add_event_listener() takes a callable listener, not {listener.__class__.__name__}.")
        if self._listeners is None:
            self._listeners = {}
        listeners = self._listeners.setdefault(type, [])
        if listener not in listeners:  # added once, as to workerd's EventTarget (miniflare 4)
            listeners.append(listener)

    def remove_listener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """``ws.remove_event_listener(type, listener)``: nothing if it was not added."""
        listeners = self._listeners.get(type, []) if self._listeners is not None else []
        if listener in listeners:
            listeners.remove(listener)

    # -- frames --------------------------------------------------------------------------------

    def hold(self, frame: tuple[Any, ...]) -> None:
        """Keep a Close (or a lost connection) that reached the socket before its acceptance,
        unread: the network end takes it when the backlog is replayed (``NetworkEnd.arrive``).

        workerd reads nothing from an end not accepted yet: a Close waiting there is seen, and
        answered, only once the end is accepted, after the messages before it; until then the
        end stays OPEN and the peer CLOSING (measured with miniflare 4, 2026-04-07)."""
        if self._backlog is None:
            self._backlog = []
        self._backlog.append((_HELD, frame))

    def deliver(self, frame: tuple[Any, ...]) -> None:
        """A frame arrived (the network end has updated the close state already)."""
        if self._mode == _NEW or self._backlog:
            # Not accepted yet, or a replay is pending: keep the order.
            if self._backlog is None:
                self._backlog = []
            self._backlog.append(frame)
        else:
            self._dispatch(frame)

    def _dispatch(self, frame: tuple[Any, ...]) -> None:
        mode = self._mode
        if mode == _HIBERNATABLE:
            assert self._receiver is not None
            self._receiver.frame(self.socket, frame)
        elif mode == _STANDARD:
            self._deliver_standard(frame)

    def _deliver_standard(self, frame: tuple[Any, ...]) -> None:
        turns = self._turns
        if turns is not None:
            turns.append((frame, self._owner))
            return
        self.read_turn(frame, self._owner)

    def read_turn(self, frame: tuple[Any, ...], owner: StandardOwner | None) -> bool:
        return _read_standard(self, frame, owner, self._listeners)

    def queue_held(self, frame: tuple[Any, ...]) -> bool:
        """Keep a Close (or a lost connection) that arrives while frames wait for their turn
        (:func:`_read_standard`), to be read after them (:func:`_next_standard`); or False."""
        turns = self._turns
        if turns is None or self._mode != _STANDARD:
            return False
        turns.append(((_HELD, frame), self._owner))
        return True

    def _call_listener(self, listener: Callable[[Any], Any], event: Any) -> Any:
        """Call ``listener(event)`` unless a listener raised before (:func:`_listener_raised`) or it
        was removed since the event's dispatch began (workerd's EventTarget skips it then)."""
        listeners = self._listeners
        if self._raised or listeners is None or listener not in listeners.get(event.type, ()):
            return None
        try:
            return _listen(self.socket, listener, event)
        except Exception as exc:
            reset = getattr(exc, "durable_object_reset", False)  # (then no more of its code runs)
            self._raised = True if reset else event.type
            if event.type != ERROR and not reset:
                self._push((ERROR, exc))  # receive() learns the socket is closed
                _listener_raised(self.socket, listeners.get(ERROR, []), exc)
            raise  # to be logged

    def _push(self, frame: tuple[Any, ...]) -> None:
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- receive() and async iteration ----------------------------------------------------------

    async def receive(self) -> str | bytes:
        """``await ws.receive()``: the next message (see there for the rules).

        Raises:
            durable.WebSocketClosed: the other side closed.
            RuntimeError: the socket is not accepted with ``accept()``, or another task waits.
        """
        if self._mode != _STANDARD:
            raise RuntimeError("call ws.accept() before ws.receive() (receive() reads a socket accepted with accept())")
        network = self.socket.network
        while True:
            inbox = self._inbox
            if inbox:
                frame = inbox[0]
                if frame[0] == MESSAGE:
                    inbox.popleft()
                    data: str | bytes = frame[1]
                    return data
                raise self._closed_error()
            if (network.gone or network.closed_in) and not self._backlog:
                raise self._closed_error()
            if self._waiter is not None:
                raise RuntimeError("another task is already waiting in receive() on this WebSocket")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def _closed_error(self) -> WebSocketClosed:
        info = self.socket.network.close_info or (1006, DISCONNECTED_REASON, False)
        return WebSocketClosed(*info)

    async def iterate(self) -> AsyncIterator[str | bytes]:
        """``async for message in ws``: every message until the other side closes."""
        while True:
            try:
                message = await self.receive()
            except WebSocketClosed:
                return
            yield message


def _listener_raised(socket: WebSocket, error_listeners: list[Callable[[Any], Any]], exc: Exception) -> None:
    """A ``"message"`` or ``"close"`` listener of ``socket`` raised ``exc`` (not an ``async`` one
    whose coroutine raises later: workerd's EventTarget ignores a listener's promise).

    That ends the socket's read loop, as in workerd (measured with miniflare 4, 2026-04-07, on
    ends accepted with ``accept()``): the event's later listeners are skipped and nothing more is
    delivered (``Delivery._call_listener``); the connection is dropped (the peer sees 1006), and
    this end, ``CLOSED``, gets an ``"error"`` event with the exception and no ``"close"`` event.
    What the listener (or earlier code) sent and the output gate still holds leaves first: in
    workerd (miniflare 4.20260426, SQLite-backed) a listener that puts a key, sends a message,
    closes with 2000 and throws: its client gets the message and the clean 2000 close (durable
    dropped both and sent a 1006; found by ``run_ws.py 8 --seed 77 --resets``, sequence 5).
    """
    socket.network.disconnect(after_sent=True)
    error_event = ErrorEvent(socket, exc, uncaught_message(exc))
    for listener in list(error_listeners):
        if not _run_listener(functools.partial(_listen, socket, listener, error_event)):
            break  # an error listener that raises skips the later ones too


_LISTENING: set[int] = set()
"""``id()`` of each socket one of whose listeners is running (:func:`in_listener`)."""


def _read_standard(
    delivery: Delivery,
    frame: tuple[Any, ...],
    owner: StandardOwner | None,
    all_listeners: dict[str, list[Callable[[Any], Any]]] | None,
) -> bool:
    """Hand ``frame`` to ``delivery``'s listeners (through ``owner``'s gate, if any).

    Inside an object the next frame is read only once this one's listeners have run, on a later
    loop turn (:func:`_next_standard`): workerd's read loop of a socket accepted with
    ``accept()`` awaits each frame's event, and frames that reach several such sockets at once
    are read one of each socket at a time (miniflare 4.20260426: "a1", "a2", "a3" on one socket
    and then "b1", "b2", "b3" on another, sent with no wait, ran the listeners a1, b1, a2, b2,
    a3, b3, every run). Returns whether an event was dispatched.
    """
    if delivery._raised:
        return False  # a listener raised: nothing more is read
    kind = frame[0]
    listeners = (all_listeners or {}).get(kind)
    if not listeners:
        if kind != ERROR or not (all_listeners or {}).get(CLOSE):
            delivery._push(frame)
        return False
    socket = delivery.socket
    event = _make_event(socket, frame)
    if kind != MESSAGE:
        delivery._push(frame)  # receive() still learns the socket is closed
    call = delivery._call_listener
    if owner is None:
        for listener in list(listeners):
            if not _run_listener(functools.partial(call, listener, event)):
                return False  # it raised: the later listeners are skipped (see _listener_raised)
        return False
    *first, final = listeners
    for listener in first:
        owner.dispatch(socket, functools.partial(call, listener, event))
    read_next = _ReadNext(delivery)
    fut = owner.dispatch(socket, functools.partial(read_next.after, call, final, event))
    if fut is None:
        return False
    if delivery._turns is None:
        delivery._turns = deque()
    if not read_next.done:  # (the listener ran eagerly, in dispatch: no callback, a loop turn less)
        fut.add_done_callback(read_next)  # (an event that never ran: the object was reset first)
    return True


def _next_standard(delivery: Delivery) -> None:
    """The listeners of the last frame read have run: read the next frame that waited. A Close
    kept by :meth:`Delivery.queue_held` is read then: the network end takes it (and answers it),
    so the listeners of the frames before it saw the socket ``OPEN``, as in workerd, whose read
    loop reads the Close after them (run_ws.py 100 --seed 10353 --resets --loop uvloop, sequence 4)."""
    turns = delivery._turns
    if not turns or delivery.socket.network.gone:
        # (gone: the object was reset or shut down, or a listener raised: what waited is never
        # read, and must not reach the object's next instance through its owner)
        delivery._turns = None
        return
    frame, owner = turns.popleft()
    if frame[0] is not _HELD:
        if not delivery.read_turn(frame, owner):
            _later(functools.partial(_next_standard, delivery))  # no listener: the next frame next turn
        return
    delivery._turns = None
    delivery.socket.network.arrive(frame[1])  # the close state, the reply, then delivered
    if turns:  # (what arrived after it)
        _resume(delivery, turns)


def _resume(delivery: Delivery, turns: deque[tuple[tuple[Any, ...], StandardOwner | None]]) -> None:
    """Put back ``turns``, the frames that waited behind a Close just read."""
    if delivery._turns is None:
        delivery._turns = turns
        _later(functools.partial(_next_standard, delivery))
    else:
        delivery._turns.extend(turns)


def _later(callback: Callable[[], None]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        callback()
    else:
        loop.call_soon(callback, context=contextvars.Context())


class _ReadNext:
    """Reads a socket's next frame once, on the turn after its last listener's call returned
    (workerd's read loop does not wait for a listener's promise), or after the event ended
    without running it."""

    __slots__ = ("delivery", "done")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.done = False

    def after(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        finally:
            self(None)

    def __call__(self, _: object) -> None:
        if not self.done:
            self.done = True
            _later(functools.partial(_next_standard, self.delivery))


def in_listener(socket: WebSocket) -> bool:
    """Whether a listener of ``socket`` is running: ``ctx.get_tags()`` words its error for an end
    accepted with ``accept()`` by it, as workerd does (see ``_state.tags_of``)."""
    return id(socket) in _LISTENING


def close_listener_raised(socket: WebSocket) -> bool:
    """Whether a ``"close"`` listener of ``socket`` raised on a close the peer began: ``ctx.get_tags()``
    words its error for an end accepted with ``accept()`` as for an open one from then on
    (``_state.tags_of``). Not when the close event answered this end's own ``close()``: workerd
    (miniflare 4.20260426, compatibility date 2026-04-20) then says "you must call
    'acceptWebSocket()' ..." as for any CLOSED end (``run_ws.py 100 --seed 10031 --resets``,
    sequence 91); a listener that calls ``close()`` on the peer's close, then raises, still
    gets "only hibernatable ..."."""
    return socket.delivery._raised == CLOSE and not socket.network.began_close


def _listen(socket: WebSocket, listener: Callable[[Any], Any], event: Any) -> Any:
    _LISTENING.add(id(socket))
    try:
        return listener(event)
    finally:
        _LISTENING.discard(id(socket))


_DROPPED: weakref.WeakKeyDictionary[WebSocket, Callable[[], object]] = weakref.WeakKeyDictionary()
"""The callbacks of :func:`when_dropped`, by socket."""


def when_dropped(socket: WebSocket, callback: Callable[[], object] | None) -> None:
    """Call ``callback()`` once if the object ``socket`` belongs to drops it while it is still
    open there (:func:`dropped`): the object is reset or evicted, or the runtime closes.
    Its listeners get no event then (workerd runs no more of that object's code), so code that
    waits for one (``asgi.websocket``'s app) learns it here. ``None`` forgets the callback."""
    if callback is None:
        _DROPPED.pop(socket, None)
    else:
        _DROPPED[socket] = callback


def dropped(socket: WebSocket) -> None:
    """The object ``socket`` belongs to dropped it (a reset, an eviction, the runtime's close):
    call its :func:`when_dropped` callback, if any."""
    if _DROPPED:
        callback = _DROPPED.pop(socket, None)
        if callback is not None:
            callback()


def _make_event(socket: WebSocket, frame: tuple[Any, ...]) -> Any:
    kind = frame[0]
    if kind == MESSAGE:
        return MessageEvent(socket, frame[1])
    if kind == CLOSE:
        return CloseEvent(socket, frame[1], frame[2], frame[3])
    error = frame[1]
    # A failed read (a message over 32 MiB from the client): workerd's "error" listeners get
    # "Uncaught " + String(error), its error an Error (measured with miniflare 4, 2026-04-07:
    # "Uncaught Error: WebSocket protocol error; protocolError.statusCode = 1009; ...").
    message = f"Uncaught Error: {error}" if isinstance(error, WebSocketError) else uncaught_message(error)
    return ErrorEvent(socket, error, message)


def _run_listener(call: Callable[[], Any]) -> bool:
    """Call a listener outside any object; False if it raised (logged)."""
    try:
        result = call()
    except Exception:
        log.exception("durable: a WebSocket listener raised")
        return False
    if asyncio.iscoroutine(result):
        task = asyncio.ensure_future(result)
        task.add_done_callback(_log_listener_error)
    return True


def _log_listener_error(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("durable: a WebSocket listener raised", exc_info=exc)
