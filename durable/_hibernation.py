"""The Hibernation API: each object's accepted sockets, their events, and hibernation itself.

A :class:`HibernationManager` belongs to the runtime, not to any instance, as workerd's
hibernation manager belongs to the actor's channel and outlives its isolate state: it keeps one
:class:`SocketRegistry` per object that has sockets, holding the sockets accepted with
``ctx.accept_web_socket()`` (with their tags and auto-response timestamps; attachments live on
the sockets), the sockets accepted with ``accept()`` inside the object, the auto-response pair and
the event timeout. Dropping the instance (hibernation, eviction) leaves all of that in place; the
next frame that needs the object builds a fresh instance through the host, constructor and all.

Rules, and the Cloudflare behaviour each mirrors:

- Each frame becomes an event of the object delivered through its input gate, like a request
  (workerd's ``IoContext::run`` takes the input lock). Frames of one socket arrive in order and
  events start in arrival order (the gate is first-come, first-served).
- A text message equal to the auto-response request is answered here, with no event and without
  waking a hibernated object; the socket's timestamp is recorded.
- A socket's next frame is read only once the event of its previous one has started (workerd's
  read loop awaits each dispatch), and on a later loop turn: behind a message the object cannot
  take yet (it wakes, or ``block_concurrency_while`` holds it) frames wait, auto-response requests
  and the Close included; frames that reach several sockets at once are read one of each socket at
  a time (workerd's read loops, one per socket, take turns).
- Handlers are optional (a missing one drops the event), are called with only the parameters
  they declare (Python Workers calls them that way), and an exception in one is logged: the
  socket stays and the object is not reset (workerd's ``HibernatableWebSocketCustomEvent::run``).
- A close or error event releases the socket as it ends: it leaves ``get_web_sockets()`` before
  the next event starts.
- A reset (``abort()``, a failed commit, a throwing constructor) disconnects every socket of the
  object: clients see the connection end (1006); its auto-response and event timeout go too. Eviction, and the reset by an event timeout
  (workerd shuts the actor down but keeps its hibernation manager), close only ``accept()``
  sockets, whose listeners belonged to the dropped instance.
- ``Runtime(hibernate_after=10.0)``: an object whose only connections are hibernatable, with no
  event running, no ``wait_until`` work and no pending task it created, drops its instance after
  that many seconds idle, on the runtime's clock.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import functools
import inspect
import logging
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from ._clock import TimerHandle
from ._context import running_host, task_context
from ._exceptions import ObjectResetError, OverloadedError, RuntimeClosedError
from ._host import ObjectHost
from ._util import as_workerd_text, lone_surrogate_at, positional_arity
from ._websocket import (
    WebSocket,
    WebSocketError,
    WebSocketRequestResponsePair,
    check_owner,
    claim,
    orphan,
    set_object_hooks,
)
from ._wsbase import HibernatableEntry
from ._wsdelivery import dropped

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["HibernationManager", "SocketRegistry"]

log = logging.getLogger("durable")

MAX_SOCKETS: Final = 1024 * 32
"""workerd's ``ACTIVE_CONNECTION_LIMIT``: hibernatable sockets accepted on one object."""

MAX_TAGS: Final = 10
MAX_TAG_LENGTH: Final = 256
MAX_EVENT_TIMEOUT_MS: Final = 604_800_000

# What a caller sees: workerd's exception is "broken.dropped; jsg.Error: <this>", whose prefix it
# strips before JavaScript sees the error (an Error, retryable, durableObjectReset).
_EVENT_TIMEOUT_MESSAGE: Final = "Actor exceeded event execution time and was disconnected."

Key = tuple[str, str]


class SocketRegistry:
    """One object's sockets and Hibernation API settings (see the module docstring)."""

    __slots__ = (
        "auto_response", "backlog", "event_timeout_ms", "idle_since", "key", "manager", "reading", "seq", "sockets",
        "standard", "timer",
    )  # fmt: skip

    def __init__(self, manager: HibernationManager, key: Key) -> None:
        self.manager = manager
        self.key = key
        self.sockets: dict[WebSocket, HibernatableEntry] = {}
        self.standard: set[WebSocket] = set()
        self.auto_response: WebSocketRequestResponsePair | None = None
        self.event_timeout_ms: int | None = None
        self.timer: TimerHandle | None = None
        self.idle_since = 0.0
        # The sockets whose last event has not started yet (the value names the event; 0: its
        # next frames are about to be read), and the frames that arrived since.
        self.reading: dict[WebSocket, int] = {}
        self.backlog: dict[WebSocket, deque[tuple[Any, ...]]] = {}
        self.seq = 0

    # -- the Hibernation API (called through ctx) ----------------------------------------------

    def accept(self, ws: WebSocket, tags: list[str] | tuple[str, ...] | None) -> None:
        if not isinstance(ws, WebSocket):
            raise TypeError(f"accept_web_socket() takes a durable.WebSocket, not {type(ws).__name__}")
        check_owner(ws)
        unique: list[str] = []
        if tags is not None:
            if not isinstance(tags, (list, tuple)):
                raise TypeError(f"accept_web_socket() tags must be a list of str, not {type(tags).__name__}")
            for tag in tags:
                # workerd checks the count before each element, duplicates included.
                if len(unique) >= MAX_TAGS:
                    raise WebSocketError("a Hibernatable WebSocket cannot have more than 10 tags")
                if not isinstance(tag, str):
                    raise TypeError(f"accept_web_socket() tags must be str, not {type(tag).__name__}")
                tag = tag_form(tag)
                # Counted in UTF-8 bytes, whatever the message says ("é" * 129 is refused; measured
                # with miniflare 4, 2026-04-07), a lone surrogate as 3 ("\ud800" * 85 is accepted).
                if len(tag) > MAX_TAG_LENGTH // 4 and len(tag.encode("utf-8", "surrogatepass")) > MAX_TAG_LENGTH:
                    text = as_workerd_text(tag)
                    raise WebSocketError(f'"{text}" is longer than the max tag length ({MAX_TAG_LENGTH} characters).')
                if tag not in unique:
                    unique.append(tag)
        if len(self.sockets) >= MAX_SOCKETS:
            raise WebSocketError(f"only {MAX_SOCKETS} websockets can be accepted on a single Durable Object instance")
        entry = HibernatableEntry(self.key, tuple(unique))
        ws.delivery.accept_hibernatable(self, entry)
        claim(ws)
        if ws.ready_state == WebSocket.CLOSED:
            return  # closed while waiting for acceptance: its close event went out already
        self.sockets[ws] = entry
        self.manager.track_tasks()

    def get_web_sockets(self, tag: str | None) -> list[WebSocket]:
        if tag is None:
            # Newest first, while a tag lists its sockets oldest first: workerd's hibernation
            # manager puts each socket at the front of its list of all sockets and at the back of
            # each tag's (measured with miniflare 4, 2026-04-07).
            return list(reversed(self.sockets))
        tag = tag_form(tag)
        return [ws for ws, entry in self.sockets.items() if tag in entry.tags]

    # -- frames from the sockets (the Receiver protocol) ---------------------------------------

    def frame(self, ws: WebSocket, frame: tuple[Any, ...]) -> None:
        if ws in self.reading:
            # workerd's hibernation manager reads a socket's next frame only once the event of
            # the previous one has started (its read loop awaits each dispatch): until then it
            # waits, auto-response requests included (measured with miniflare 4, 2026-04-07: to
            # an object held by blockConcurrencyWhile, "m1", "ping" gets "echo:m1" then "pong").
            self.backlog.setdefault(ws, deque()).append(frame)
            return
        self._read(ws, frame)
        self._next_turn(ws)

    def _read(self, ws: WebSocket, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind == "message":
            data = frame[1]
            pair = self.auto_response
            if pair is not None and isinstance(data, str) and data == pair.request:
                entry = ws.delivery.hibernation
                if entry is not None:
                    entry.timestamp = self.manager.runtime.clock.time_ms()
                ws.network.auto_respond(pair.response)  # bypasses the object and its input gate
                return
            self._dispatch("web_socket_message", "webSocketMessage", (ws, data))
            return
        # The socket is released once its close (or error) event has run: during the handler
        # it is still listed by get_web_sockets(), as in workerd.
        if kind == "close":
            self._dispatch("web_socket_close", "webSocketClose", (ws, frame[1], frame[2], frame[3]), True)
        else:
            self._dispatch("web_socket_error", "webSocketError", (ws, frame[1]), True)

    def _dispatch(self, name: str, camel: str, args: tuple[Any, ...], last: bool = False) -> None:
        ws: WebSocket = args[0]
        token = self.seq = self.seq + 1
        self.reading[ws] = token
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._invoke(name, camel, args, token, last)
        else:
            loop.call_soon(self._invoke, name, camel, args, token, last, context=contextvars.Context())

    def _invoke(self, name: str, camel: str, args: tuple[Any, ...], token: int, last: bool) -> None:
        """Start the event, a loop turn after its frame was read: workerd's hibernatable event
        starts a turn after the read, where a listener of an ``accept()``ed socket runs at once
        (miniflare 4.20260426: "c1"-"c3" on a hibernatable socket and then "d1"-"d4" on an
        ``accept()``ed one, sent at once, ran d1, c1, d2, d3, c2, d4, c3, every run)."""
        ws: WebSocket = args[0]
        if self.reading.get(ws) != token:
            return  # (released, or disconnected, meanwhile)
        try:
            host = self.manager.runtime.host_for_key(self.key)
            fut = host.invoke("run", _handler_event(self, name, camel, args, token), (), {})
        except (RuntimeClosedError, OverloadedError) as exc:
            if isinstance(exc, OverloadedError):
                # The object refuses the event (Runtime(max_queued_calls=...)): the frame is
                # dropped, logged, and the socket's next frames are still read (they waited
                # behind it for good).
                log.warning("durable: a WebSocket %s event was dropped: %s", camel, exc)
            self.reading.pop(ws, None)
            if last:
                ws.network.take_close()
                self._release(ws)
            elif ws in self.backlog:
                self._next_turn(ws)
            return
        if self.reading.get(ws) == token:
            # Not started yet (most events start inside invoke): one that never starts (its
            # object reset first) lets the next frames be read too.
            fut.add_done_callback(functools.partial(self._ended, ws, token))
        else:
            fut.add_done_callback(_retrieve)
        if last:
            fut.add_done_callback(lambda _: self._release(ws))

    def started(self, ws: WebSocket, token: int) -> None:
        """The event ``token`` of ``ws`` starts: the next frame is read on a later turn."""
        if self.reading.get(ws) != token:
            return
        # After the handler's first step (workerd's dispatch returns once the handler is
        # running), in a context of its own.
        self.reading[ws] = 0
        asyncio.get_running_loop().call_soon(self._drain, ws, context=contextvars.Context())

    def _next_turn(self, ws: WebSocket) -> None:
        """A frame of ``ws`` was read and no event waits to start (an auto-response, or an event
        that started at once): its next frame is read on a later loop turn, not at once.

        workerd's read loop takes a few turns of its event loop between two frames of a socket,
        and each socket has its own loop: frames that reach several sockets at once are read
        in turn, one of each socket at a time, not in the order they arrived (miniflare
        4.20260426, 2026-04-20: a client sending "a1", "a2", "a3" on one socket and then "b1",
        "b2", "b3" on another, with no wait, had the handlers start a1, b1, a2, b2, a3, b3,
        every run; with three sockets and a1-a3, b1, c1-c2: a1, b1, c1, a2, c2, a3)."""
        if ws in self.reading or ws not in self.sockets:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # (no loop runs: nothing else is read meanwhile either)
        self.reading[ws] = 0
        loop.call_soon(self._drain, ws, context=contextvars.Context())

    def _drain(self, ws: WebSocket) -> None:
        """Read the next frame of ``ws`` that waited, if any (one per turn, see :meth:`_next_turn`)."""
        if self.reading.get(ws) != 0:
            return
        del self.reading[ws]
        backlog = self.backlog.get(ws)
        if not backlog:
            self.backlog.pop(ws, None)
            return
        frame = backlog.popleft()
        if not backlog:
            del self.backlog[ws]
        self._read(ws, frame)
        self._next_turn(ws)

    def _ended(self, ws: WebSocket, token: int, fut: asyncio.Future[Any]) -> None:
        _retrieve(fut)
        self.started(ws, token)

    def release_after_event(self, ws: WebSocket) -> None:
        """The close (or error) event of ``ws`` ended: it leaves ``get_web_sockets()``."""
        self._release(ws)

    def _release(self, ws: WebSocket) -> None:
        self.reading.pop(ws, None)
        self.backlog.pop(ws, None)
        if self.sockets.pop(ws, None) is not None:
            self.manager.maybe_forget(self)

    # -- sockets accepted with accept() inside the object (the StandardOwner protocol) ---------

    def adopt(self, ws: WebSocket) -> None:
        self.standard.add(ws)
        host = self.manager.runtime.host_for_key(self.key)
        host.pins += 1

    def release(self, ws: WebSocket) -> None:
        if ws in self.standard:
            self.standard.discard(ws)
            host = self.manager.live_host(self.key)
            if host is not None:
                host.pins -= 1
                host.maybe_idle()
            self.manager.maybe_forget(self)

    def dispatch(self, ws: WebSocket, callback: Callable[[], Any]) -> asyncio.Future[Any] | None:
        try:
            host = self.manager.runtime.host_for_key(self.key)
            fut = host.invoke("run", _listener_event(callback), (), {})
        except RuntimeClosedError:
            return None
        except OverloadedError as exc:
            # Refused (Runtime(max_queued_calls=...)): this listener call is dropped and logged;
            # the socket's next frames are still read.
            log.warning("durable: a WebSocket listener call was dropped: %s", exc)
            return None
        fut.add_done_callback(_retrieve)
        return fut

    # -- hibernation -----------------------------------------------------------------------------

    def disconnect_all(self, *, standard_only: bool = False, reset: bool = False) -> None:
        """Disconnect the sockets (clients see 1006): those accepted with ``accept()``, and the
        hibernatable ones unless ``standard_only``. ``reset``: the object was reset, and its
        next instance may not use them (:func:`~durable._websocket.orphan`)."""
        for ws in list(self.standard):
            ws.network.disconnect()  # releases it (and its pin on the host) through release()
            dropped(ws)
            if reset:
                orphan(ws, None)
        if not standard_only:
            self.reading.clear()
            self.backlog.clear()
            sockets, self.sockets = self.sockets, {}
            for ws in sockets:
                ws.network.disconnect()
                if reset:
                    orphan(ws, None)


def tag_form(tag: str) -> str:
    """``tag`` as workerd keeps and compares it: a surrogate pair joined, a lone surrogate kept.

    workerd stores a tag as UTF-8 with a lone surrogate in its three-byte form: ``get_tags()``
    reads each of those bytes back as U+FFFD (:func:`~durable._util.as_workerd_text`), while
    ``get_web_sockets("a\\ud800b")`` still finds the socket and ``get_web_sockets("a\\ufffdb")``
    does not (measured with miniflare 4, 2026-04-07). A JavaScript string is UTF-16, so a pair
    written as two surrogates is the one character it stands for there.
    """
    if lone_surrogate_at(tag) is None:
        return tag
    return tag.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


# The WebSocket handlers, under both spellings: none is a misspelling of another.
_HANDLER_NAMES: Final = frozenset(
    {
        "web_socket_message",
        "web_socket_close",
        "web_socket_error",
        "webSocketMessage",
        "webSocketClose",
        "webSocketError",
    }
)
_warned_handlers: weakref.WeakKeyDictionary[type, set[str]] = weakref.WeakKeyDictionary()


def warn_misnamed_handler(cls: type, name: str, camel: str) -> None:
    """Log, once per class and handler, that a dropped event's handler looks misspelled.

    A class without ``web_socket_message`` drops messages silently, as workerd does; when it has
    a method whose name is that one give or take underscores, case or a letter
    (``websocket_message``, ``web_socket_messages``), the drop is almost certainly a typo, which
    this warning names. It runs only when an event is dropped, never on the delivery path.
    """
    seen = _warned_handlers.setdefault(cls, set())
    if name in seen:
        return
    seen.add(name)
    wanted = name.replace("_", "")
    for attr in dir(cls):
        if attr in _HANDLER_NAMES or attr.startswith("__") or not _is_method(cls, attr):
            continue
        flat = attr.lower().replace("_", "")
        if flat == wanted or difflib.SequenceMatcher(None, flat, wanted).ratio() >= 0.9:
            log.warning(
                "durable: %s has no %s handler, so a WebSocket event was dropped; did you mean to name "
                "its method %s as %s (or %s)?",
                cls.__qualname__,
                name,
                attr,
                name,
                camel,
            )
            return


def _is_method(cls: type, attr: str) -> bool:
    # Read without running the class's code (a descriptor that raises must not break the event
    # that drops): a function, static or class method. A nested class, such as a message type
    # named WebSocketMessage, is callable but no method, so it is never named as a misspelling.
    value = inspect.getattr_static(cls, attr, None)
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    return callable(value) and not isinstance(value, type)


def _handler_event(
    registry: SocketRegistry, name: str, camel: str, args: tuple[Any, ...], token: int
) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
    async def event(instance: Any, ctx: Any) -> None:
        registry.started(args[0], token)
        if name != "web_socket_message":
            args[0].network.take_close()  # a client's Close is answered now, an error taken (see NetworkEnd.arrive)
        handler = getattr(instance, name, None)
        if handler is None:
            handler = getattr(instance, camel, None)
        if handler is None or not callable(handler):
            if name != "web_socket_message":
                registry.release_after_event(args[0])
            warn_misnamed_handler(type(instance), name, camel)
            return  # all three handlers are optional: the event is dropped
        arity = positional_arity(handler)
        call_args = args if arity is None else args[:arity]
        timeout_ms = registry.event_timeout_ms
        timer: TimerHandle | None = None
        if timeout_ms:
            host = running_host()
            clock = registry.manager.runtime.clock
            gen = host.gen if host is not None else 0
            timer = clock.call_at(clock.time() + timeout_ms / 1000, lambda: _event_timed_out(host, gen))
        try:
            result = handler(*call_args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            if isinstance(exc, ObjectResetError) or getattr(exc, "durable_object_reset", False):
                raise
            log.error("durable: %s.%s raised; the socket stays open", type(instance).__name__, name, exc_info=exc)
        finally:
            if timer is not None:
                timer.cancel()
        if name != "web_socket_message":
            # Released as the event ends, before the next event starts: a second socket's close
            # handler no longer lists the first (measured with miniflare 4, 2026-04-07).
            registry.release_after_event(args[0])

    return event


def _event_timed_out(host: ObjectHost | None, gen: int) -> None:
    # The timer is cancelled when the event ends, so firing means it still runs.
    if host is None or host.gen != gen:
        return
    error = ObjectResetError(_EVENT_TIMEOUT_MESSAGE)
    error.retryable = True  # a DISCONNECTED exception in workerd (measured: retryable true)
    log.error("durable: a WebSocket event of %r exceeded its timeout; the object is reset", host.id)
    # workerd cancels the event and shuts the actor down (``eventTimeoutPromise``), which leaves
    # the hibernation manager and its sockets alone: the sockets stay connected and the next
    # message is delivered (measured with miniflare 4, 2026-04-07).
    host.reset(error, keep_hibernatable=True)


def _listener_event(callback: Callable[[], Any]) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
    async def event(instance: Any, ctx: Any) -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            if isinstance(exc, ObjectResetError) or getattr(exc, "durable_object_reset", False):
                raise
            log.error("durable: a WebSocket listener raised", exc_info=exc)

    return event


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class HibernationManager:
    """The runtime's sockets, per object, and the hibernation timer (see the module docstring).

    The runtime calls :meth:`host_idle` when an object becomes idle, :meth:`object_reset` and
    :meth:`object_evicted` from the host, and :meth:`shutdown` when it closes.
    """

    def __init__(self, runtime: Runtime, hibernate_after: float | None) -> None:
        self.runtime = runtime
        self.hibernate_after = hibernate_after
        self.registries: dict[Key, SocketRegistry] = {}
        # The socket ends each live object's code made (WebSocketPair()), orphaned by its reset.
        self.made: dict[Key, weakref.WeakSet[WebSocket]] = {}
        # The tasks each live host's objects created (entries go with their host).
        self._tasks: weakref.WeakKeyDictionary[ObjectHost, weakref.WeakSet[asyncio.Task[Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self._factory_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        # The pending tasks that blocked a hibernation: when one ends, the object may be idle.
        self._watched: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def registry(self, key: Key) -> SocketRegistry:
        """The registry of the object ``key``, made on first use."""
        registry = self.registries.get(key)
        if registry is None:
            registry = self.registries[key] = SocketRegistry(self, key)
        return registry

    def live_host(self, key: Key) -> ObjectHost | None:
        return self.runtime.live_host(key)

    def maybe_forget(self, registry: SocketRegistry) -> None:
        if not (registry.sockets or registry.standard or registry.auto_response or registry.event_timeout_ms):
            if registry.timer is not None:
                registry.timer.cancel()
            self.registries.pop(registry.key, None)

    # -- hooks called by the runtime and hosts --------------------------------------------------

    def host_idle(self, host: ObjectHost) -> None:
        """``host`` became idle: arm its hibernation, if it has hibernatable sockets."""
        registry = self.registries.get(host.key)
        if registry is None or not registry.sockets or self.hibernate_after is None:
            return
        clock = self.runtime.clock
        registry.idle_since = clock.time()
        if registry.timer is None:
            # One timer per object, not one per event: when it fires early (the object was
            # busy since), it is set again for the time the object last became idle plus the delay.
            registry.timer = clock.call_at(registry.idle_since + self.hibernate_after, lambda: self._due(registry))

    def _due(self, registry: SocketRegistry) -> None:
        registry.timer = None
        if self.hibernate_after is None:
            return
        clock = self.runtime.clock
        due = registry.idle_since + self.hibernate_after
        if clock.time() < due:
            registry.timer = clock.call_at(due, lambda: self._due(registry))
            return
        host = self.live_host(registry.key)
        if host is None or not host.has_instance or self.registries.get(registry.key) is not registry:
            return
        if self.blockers(host):
            # Not eligible now: look again later (a timer finishing does not tell us), and when
            # a pending task ends, count the idle time from then (as an event ending does).
            self._watch_tasks(host)
            if self.hibernate_after is not None and registry.sockets:
                clock = self.runtime.clock
                registry.timer = clock.call_at(clock.time() + self.hibernate_after, lambda: self._due(registry))
            return
        host.evict()

    def _watch_tasks(self, host: ObjectHost) -> None:
        running = host.event_tasks()
        for task in self._tasks.get(host, ()):
            if not task.done() and task not in running and task not in self._watched:
                self._watched.add(task)
                task.add_done_callback(functools.partial(self._task_ended, host))

    def _task_ended(self, host: ObjectHost, _: object = None) -> None:
        if self.live_host(host.key) is host and host.has_instance and not self.blockers(host):
            self.host_idle(host)

    def object_reset(self, host: ObjectHost, keep_hibernatable: bool = False, *, reset: bool = True) -> None:
        """The object was reset: every socket it had is disconnected (clients see 1006), or with
        ``keep_hibernatable`` (an event timeout) only those accepted with ``accept()``. Not
        ``reset``: ``testing.evict(web_sockets="close")``, which disconnects them alike but leaves
        them usable by the next instance, as an eviction leaves the sockets it disconnects.

        The ends its code made and did not hand over (in a ``Response``) are orphaned too,
        accepted or not: workerd (miniflare 4.20260426) refuses ``readyState``, ``accept()``,
        ``send()`` and ``ctx.acceptWebSocket()`` on a ``WebSocketPair`` the reset instance made
        and kept in a module global, with "Cannot perform I/O on behalf of a different Durable
        Object. ..."."""
        made = self.made.pop(host.key, None)
        registry = self.registries.get(host.key)
        if made is not None and reset:
            kept = registry.sockets if registry is not None and keep_hibernatable else {}
            for ws in list(made):
                if ws not in kept:
                    orphan(ws, host.key)
        if registry is not None:
            registry.disconnect_all(standard_only=keep_hibernatable, reset=reset)
            if not keep_hibernatable:
                # The settings go with the sockets: after ctx.abort() the fresh instance reads no
                # auto-response and no event timeout (measured with miniflare 4, 2026-04-07).
                registry.auto_response = None
                registry.event_timeout_ms = None
            self.maybe_forget(registry)

    def object_evicted(self, host: ObjectHost) -> None:
        """The instance was dropped: sockets accepted with ``accept()`` go with it."""
        self.made.pop(host.key, None)  # (not orphaned: an eviction is no reset)
        registry = self.registries.get(host.key)
        if registry is not None and registry.standard:
            registry.disconnect_all(standard_only=True)
            self.maybe_forget(registry)

    def shutdown(self, code: int = 1001, reason: str = "") -> None:
        """The runtime closes: every socket is closed with ``code``."""
        registries, self.registries = self.registries, {}
        self.made.clear()
        for registry in registries.values():
            if registry.timer is not None:
                registry.timer.cancel()
            for ws in [*registry.sockets, *registry.standard]:
                ws.network.shut_down(code, reason)
                dropped(ws)

    # -- eligibility -----------------------------------------------------------------------------

    def blockers(self, host: ObjectHost) -> list[str]:
        """Why ``host`` cannot hibernate now (empty: it can)."""
        found: list[str] = []
        registry = self.registries.get(host.key)
        if registry is not None and registry.standard:
            found.append("standard websocket")
        if host.pins > (len(registry.standard) if registry is not None else 0):
            found.append("pending timer")  # pins not held by standard sockets: a js.setTimeout (compat)
        if host.events_running:
            found.append("event in progress")
        if host.background_work:
            found.append("wait_until")
        tasks = self._tasks.get(host)
        if tasks is not None:
            running = host.event_tasks()
            if any(not t.done() and t not in running for t in tasks):
                found.append("pending task created by the object")
        # Not found here: callbacks scheduled with loop.call_later()/call_at() directly (asyncio
        # offers no public way to attribute a TimerHandle to the code that made it). The
        # Python spelling of setTimeout/setInterval, a task that sleeps, is found above.
        return found

    def track_tasks(self) -> None:
        """Attribute tasks created inside objects to them (for ``pending task`` blockers).

        A task factory records the object running when each task is made (Python 3.11 has no
        public way to ask a task which context created it). It is installed on the running loop
        when the first hibernatable socket is accepted, wrapping any factory already there, and
        records the tasks of every object from then on, so a task started in a constructor
        before the object's own first accept counts. The tasks already running at that moment are
        attributed too, through the context they run in (:func:`~durable._context.task_context`).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop in self._factory_loops:
            return
        self._factory_loops.add(loop)
        previous = loop.get_task_factory()
        manager_ref = weakref.ref(self)
        for task in asyncio.all_tasks(loop):
            context = task_context(task)
            if context is not None:
                owner = running_host(context)
                if owner is not None and owner.runtime is self.runtime:
                    self._tasks.setdefault(owner, weakref.WeakSet()).add(task)

        def factory(
            loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None = None, **kwargs: Any
        ) -> asyncio.Future[Any]:
            if previous is not None:
                make: Any = previous
                task: Any = (
                    make(loop, coro, context=context, **kwargs) if context is not None else make(loop, coro, **kwargs)
                )
            else:
                task = asyncio.Task(coro, loop=loop, context=context, **kwargs)
            host = running_host(context)
            manager = manager_ref()
            if host is not None and manager is not None and host.runtime is manager.runtime:
                manager._tasks.setdefault(host, weakref.WeakSet()).add(task)
            return task  # type: ignore[no-any-return]

        loop.set_task_factory(factory)


class _Hooks:
    """The object layer as :mod:`durable._websocket` sees it (see ``ObjectHooks``)."""

    def output_barrier(self) -> tuple[asyncio.Future[None] | None, Callable[[], bool] | None]:
        host = running_host()
        if host is None:
            return None, None
        gen = host.gen
        return host.before_outgoing(), lambda: host.gen == gen

    def standard_owner(self) -> SocketRegistry | None:
        host = running_host()
        if host is None:
            return None
        manager: HibernationManager = host.runtime.hibernation
        return manager.registry(host.key)

    def io_owner(self) -> object | None:
        host = running_host()
        return None if host is None else host.key

    def made(self, ws: WebSocket) -> object | None:
        host = running_host()
        if host is None:
            return None
        manager: HibernationManager = host.runtime.hibernation
        key: Key = host.key
        pairs = manager.made.get(key)
        if pairs is None:
            pairs = manager.made[key] = weakref.WeakSet()
        pairs.add(ws)
        return key


set_object_hooks(_Hooks())
