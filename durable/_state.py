"""``ctx``: the :class:`State` an object is constructed with."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, final, overload

from ._aliases import camel_aliases
from ._bookmarks import Bookmarks
from ._id import DurableObjectId
from ._storage import Storage
from ._util import as_workerd_text, shown
from ._websocket import WebSocket, WebSocketError, WebSocketRequestResponsePair, check_owner, validate_auto_response
from ._wsdelivery import close_listener_raised, in_listener

if TYPE_CHECKING:
    import asyncio
    from datetime import datetime

    from ._hibernation import SocketRegistry
    from ._host import ObjectHost
    from ._snapshot import DurableObjectSnapshot

__all__ = ["State"]

T = TypeVar("T")


@final
@camel_aliases
class State:
    """The ``ctx`` of a Durable Object: its id, its storage, and control over its concurrency.

    Made by the runtime for each instance; never constructed by users. Camel-case aliases
    (``blockConcurrencyWhile``, ``waitUntil``) name the same methods.
    """

    __slots__ = ("_gen", "_host", "id", "storage")

    id: DurableObjectId
    storage: Storage

    def __init__(self, host: ObjectHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self.id = host.id
        self.storage = Storage(host, generation)

    def __repr__(self) -> str:
        return f"<durable.State id={self.id!r}>"

    @overload
    def block_concurrency_while(self, fn: Callable[[], Awaitable[T]]) -> asyncio.Task[T]: ...
    @overload
    def block_concurrency_while(self, fn: Callable[[], T]) -> asyncio.Task[T]: ...
    def block_concurrency_while(self, fn: Callable[[], Any]) -> asyncio.Task[Any]:
        """Run ``fn()`` while no other event is delivered to the object; return its result.

        ``fn`` is an async function, or a plain one (workerd takes either); it starts on the next
        loop iteration, as in workerd.

        The gate closes when this is called, so a constructor can call it without ``await`` and
        the first event still waits for ``fn`` to finish. Calls ``fn`` itself makes
        (even ones that come back to this object) proceed. If ``fn`` raises, or runs longer
        than 30 seconds, the object is reset.

        Example::

            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                ctx.block_concurrency_while(self.load)
        """
        self._host.check_live(self._gen)
        return self._host.background.block_concurrency_while(fn)

    def now_ms(self) -> int:
        """The current time in ms since the epoch, on the runtime's clock (JavaScript's ``Date.now()``).

        Object code that reads time through this follows a ``durable.testing.MockClock`` in
        tests, as alarms do; ``time.time()`` would not.
        """
        return self._host.now_ms()

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Keep ``awaitable`` running after the current call returns (it does not delay the result).

        The object is not evicted while such work is pending. Errors it raises are logged.
        """
        self._host.background.wait_until(awaitable)

    def abort(
        self, reason: object = None, options: Mapping[str, Any] | None = None, *, retry_alarm: bool | None = None
    ) -> NoReturn:
        """Reset the object now: unflushed writes are dropped and the instance discarded.

        The call in progress, and every other call held by this instance, fails with an
        :class:`durable.ObjectResetError` (``durable_object_reset = True``) whose message is
        ``reason`` as text (``str(reason)``; an exception as ``"IndexError: x"``, as workerd shows
        an ``Error``), or Cloudflare's default text.

        An ``alarm()`` handler this abort interrupts (the one calling it, or one running
        alongside) is retried as any failed alarm is, unless ``retry_alarm=False`` (or
        Cloudflare's options shape, ``{"retryAlarm": False}``): then its alarm is deleted.

        Raises:
            TypeError: ``options`` is not a mapping, holds another key than ``retryAlarm`` /
                ``retry_alarm``, or ``retry_alarm`` is not a ``bool``.
        """
        retry = _retry_alarm(options, retry_alarm)
        text: str | None = reason if reason is None or isinstance(reason, str) else None
        if reason is not None and text is None:
            # workerd converts the reason to a string (miniflare 4, 2026-04-07: abort(5) fails the
            # call with "Error: 5", abort({a: 1}) with "[object Object]"); a value whose str()
            # fails or never ends (a list nested 100,000 deep) is named by its type instead.
            text = shown(reason, limit=10_000, text=True)
            if isinstance(reason, BaseException):
                # An exception is shown as JavaScript's String(error), "Name: message" or "Name"
                # (measured: abort(new TypeError("x")) fails the call with a plain Error whose
                # message is "TypeError: x"; abort(new TypeError()) with "TypeError").
                name = type(reason).__name__
                text = f"{name}: {text}" if text else name
        if text is not None and (text[:1] == " " or not text.isascii()):
            # The message loses its leading spaces, as a thrown error's does (miniflare 4,
            # 2026-04-07: abort("  ") fails the call with "", abort(" a\0b") with "a\0b": a NUL
            # stays), and each UTF-8 byte of a lone surrogate becomes U+FFFD ("x\ud800" gives
            # "x" and three U+FFFD).
            text = as_workerd_text(text.lstrip(" "))  # (a surrogate pair is one character there)
        self._host.abort(text, self._gen, retry_alarm=retry)

    def on_next_session_restore(self, snapshot: DurableObjectSnapshot) -> Awaitable[str]:
        """Replace this object's whole storage with ``snapshot`` (from ``ctx.storage.snapshot()`` of
        any SQLite-backed object) when it next starts; call ``ctx.abort()`` right after to start it.

        Its alarm is cleared (alarms are not carried over). Returns a bookmark of this session's
        end, which undoes the restore with point-in-time recovery (a placeholder without it).
        See ``docs/recovery.md``.
        """
        return Bookmarks(self._host, self._gen).restore_snapshot(snapshot)

    # -- the WebSocket Hibernation API (durable._hibernation keeps the sockets) ----------------

    def accept_web_socket(self, ws: WebSocket, tags: list[str] | None = None) -> None:
        """Accept the server end ``ws`` as a hibernatable WebSocket, with up to 10 ``tags``.

        Its events go to the object's ``web_socket_message`` / ``web_socket_close`` /
        ``web_socket_error`` handlers (never to listeners), and the object may hibernate while
        it stays connected. Duplicate tags are dropped.

        Raises:
            durable.WebSocketError: the socket was already accepted, its pair was used in a
                Response, more than 10 tags, a tag over 256 characters, or 32,768 sockets
                already accepted on this object.
            TypeError: ``ws`` is not a ``durable.WebSocket`` or a tag is not a ``str``.
        """
        self._host.check_live(self._gen)
        self._registry().accept(ws, tags)

    def get_web_sockets(self, tag: str | None = None) -> list[WebSocket]:
        """The connected hibernatable sockets of this object, or those with ``tag``.

        Raises ``TypeError`` when ``tag`` is not a ``str`` (workerd would look up ``String(tag)``).
        """
        self._host.check_live(self._gen)
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"get_web_sockets() tag must be a str, not {type(tag).__name__}")
        registry = self._host.socket_registry(create=False)
        return registry.get_web_sockets(tag) if registry is not None else []

    def get_tags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with.

        Raises ``durable.WebSocketError`` for a socket not accepted with ``accept_web_socket``.
        """
        self._host.check_live(self._gen)
        return tags_of(self._host.key, ws)

    def set_web_socket_auto_response(self, pair: WebSocketRequestResponsePair | None = None) -> None:
        """Answer a text message equal to ``pair.request`` with ``pair.response``, without an event.

        Applies to every hibernatable socket of the object and does not wake a hibernated one.
        No argument (or ``None``) removes it.

        Raises:
            ValueError: the request or the response is over 2,048 bytes (UTF-8).
            TypeError: ``pair`` is not a ``durable.WebSocketRequestResponsePair``.
        """
        self._host.check_live(self._gen)
        if pair is not None:
            if not isinstance(pair, WebSocketRequestResponsePair):
                raise TypeError(
                    "set_web_socket_auto_response() takes a durable.WebSocketRequestResponsePair, "
                    f"not {type(pair).__name__}"
                )
            validate_auto_response(pair)
        registry = self._host.socket_registry(create=pair is not None)
        if registry is not None:
            registry.auto_response = pair
            registry.manager.maybe_forget(registry)

    def get_web_socket_auto_response(self) -> WebSocketRequestResponsePair | None:
        """The auto-response pair set on this object, or ``None``."""
        self._host.check_live(self._gen)
        registry = self._host.socket_registry(create=False)
        return registry.auto_response if registry is not None else None

    def get_web_socket_auto_response_timestamp(self, ws: WebSocket) -> datetime | None:
        """When the runtime last auto-responded on ``ws`` (UTC), or ``None``; survives hibernation,
        and the socket's close (as workerd keeps it on the socket).

        Raises ``TypeError`` when ``ws`` is not a ``durable.WebSocket``.
        """
        self._host.check_live(self._gen)
        if not isinstance(ws, WebSocket):
            # workerd: "Failed to execute 'getWebSocketAutoResponseTimestamp' on
            # 'DurableObjectState': parameter 1 is not of type 'WebSocket'." (miniflare 4, 2026-04-07)
            raise TypeError(
                f"get_web_socket_auto_response_timestamp() takes a durable.WebSocket, not {type(ws).__name__}"
            )
        entry = ws.delivery.hibernation
        if entry is None or entry.timestamp is None or entry.owner != self._host.key:
            return None
        return _dt.datetime.fromtimestamp(entry.timestamp / 1000, tz=_dt.UTC)

    def set_hibernatable_web_socket_event_timeout(
        self, ms: float | None = None, *, timeout_ms: float | None = None
    ) -> None:
        """Limit each WebSocket handler event to ``ms`` milliseconds (0 or None: no limit).

        ``timeout_ms=`` is the keyword's earlier spelling, still accepted.

        An event that runs longer resets the object (workerd's "Actor exceeded event execution
        time"); its hibernatable sockets stay connected. A fraction of a ms is dropped, as workerd converts to an integer.

        Raises:
            TypeError: ``ms`` is not a number, is negative, not finite, or over
                4,294,967,295 (workerd's conversion errors).
            durable.WebSocketError: over 604,800,000 ms (7 days); also a ``ValueError``.
        """
        self._host.check_live(self._gen)
        if timeout_ms is not None:
            if ms is not None:
                raise TypeError("set_hibernatable_web_socket_event_timeout() takes ms or timeout_ms, not both")
            ms = timeout_ms
        ms = check_event_timeout(ms)
        registry = self._host.socket_registry(create=bool(ms))
        if registry is not None:
            registry.event_timeout_ms = ms or None
            registry.manager.maybe_forget(registry)

    def _registry(self) -> SocketRegistry:
        registry = self._host.socket_registry()
        assert registry is not None
        return registry

    def get_hibernatable_web_socket_event_timeout(self) -> int | None:
        """The event timeout in ms, or ``None`` when unset."""
        self._host.check_live(self._gen)
        registry = self._host.socket_registry(create=False)
        return registry.event_timeout_ms if registry is not None else None

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        blockConcurrencyWhile = block_concurrency_while
        waitUntil = wait_until
        acceptWebSocket = accept_web_socket
        getWebSockets = get_web_sockets
        getTags = get_tags
        setWebSocketAutoResponse = set_web_socket_auto_response
        getWebSocketAutoResponse = get_web_socket_auto_response
        getWebSocketAutoResponseTimestamp = get_web_socket_auto_response_timestamp
        setHibernatableWebSocketEventTimeout = set_hibernatable_web_socket_event_timeout
        getHibernatableWebSocketEventTimeout = get_hibernatable_web_socket_event_timeout
        onNextSessionRestore = on_next_session_restore


class EventTimeoutError(WebSocketError, ValueError):
    """``set_hibernatable_web_socket_event_timeout()`` over 7 days: workerd's plain ``Error``, so
    a :class:`durable.WebSocketError`; also a ``ValueError``, as ``durable`` raised it before."""


def check_event_timeout(timeout_ms: object) -> int:
    """``timeout_ms`` as workerd converts it (an unsigned 32-bit integer, fractions dropped); 0
    for none. Raises workerd's errors (messages measured with miniflare 4, 2026-04-07)."""
    if timeout_ms is None:
        return 0
    if not isinstance(timeout_ms, (int, float)):
        raise TypeError(
            f"The value cannot be converted because it is not an integer. (the event timeout is a number "
            f"of ms, not {type(timeout_ms).__name__})"
        )
    if timeout_ms != timeout_ms or timeout_ms in (float("inf"), float("-inf")):
        raise TypeError("The value cannot be converted because it is not an integer.")
    if timeout_ms < 0:
        raise TypeError("The value cannot be converted because it is negative and this API expects a positive number.")
    if timeout_ms > 4_294_967_295:
        raise TypeError("Value out of range. Must be less than or equal to 4294967295.")
    ms = int(timeout_ms)
    if ms > 604_800_000:
        raise EventTimeoutError("Event timeout should not exceed 604800000 ms.")
    return ms


def tags_of(owner: object, ws: WebSocket) -> list[str]:
    """``ctx.get_tags(ws)`` in the object whose key is ``owner``: the tags, or workerd's error
    for a socket that has none (or that another object accepted).

    The tags stay with the socket after it closed (workerd keeps them on the socket: measured
    with miniflare 4, 2026-04-07).
    """
    if not isinstance(ws, WebSocket):
        raise TypeError(f"get_tags() takes a durable.WebSocket, not {type(ws).__name__}")
    check_owner(ws)
    entry = ws.delivery.hibernation
    if entry is None or entry.owner != owner:
        # An end accepted with accept() gets this until it is CLOSED and its listeners are done,
        # then the other message (workerd, measured with miniflare 4.20260426: OPEN and CLOSING
        # ends, and CLOSED ones inside their "close" or "error" listener, then CLOSED ones), or
        # for good once a "close" listener raised (asked in a later event: run_ws.py --seed 9638).
        if ws.standard and (ws.network.ready_state != WebSocket.CLOSED or in_listener(ws) or close_listener_raised(ws)):
            raise WebSocketError("only hibernatable websockets can have tags.")
        raise WebSocketError("you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket.")
    # A lone surrogate reads back as U+FFFD per UTF-8 byte (see _hibernation.tag_form).
    return [as_workerd_text(tag) for tag in entry.tags]


def _retry_alarm(options: Mapping[str, Any] | None, retry_alarm: bool | None) -> bool:
    """The ``retryAlarm`` choice of ``ctx.abort(reason, options, retry_alarm=...)`` (default True).

    Cloudflare's ``DurableObjectAbortOptions`` has one member, ``retryAlarm``; the local workerd
    measured (miniflare 4.20260426, compatibility date 2026-04-07) accepts the argument and
    retries the alarm anyway (docs/differences.md).
    """
    given: list[object] = []
    if options is not None:
        if not isinstance(options, Mapping):
            raise TypeError(
                f"abort() options must be a dict such as {{'retryAlarm': False}}, not {type(options).__name__}"
            )
        for key, value in options.items():
            if key not in ("retryAlarm", "retry_alarm"):
                raise TypeError(f"abort() got an unknown option {key!r} (its only option is 'retryAlarm')")
            given.append(value)
    if retry_alarm is not None:
        given.append(retry_alarm)
    for value in given:
        if type(value) is not bool:
            raise TypeError(f"abort() option retryAlarm must be a bool, not {type(value).__name__}")
    return all(given)
