"""`durable`'s WebSockets as Python Workers code holds them: JavaScript ``WebSocket`` objects
seen through Pyodide.

:func:`sdk_socket` makes a :class:`durable.WebSocket` an :class:`SdkWebSocket` in place (the
same object, the same layout: ``ws`` in a handler is the ``server`` accepted earlier, and
`durable`'s own snake_case API is unchanged). The SDK's spellings then read as workerd's values
reach Python through Pyodide: ``deserializeAttachment()`` gives a dict as a ``JsDict``, and a
``"message"`` listener added with ``addEventListener`` gets a binary message as a ``Blob`` (or,
after ``ws.binaryType = "arraybuffer"``, an ``ArrayBuffer``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import durable

from ._convert import js_arrays, python_from_rpc
from ._forms import Blob
from .pyodide.ffi import ArrayBuffer

__all__ = ["SdkWebSocket", "sdk_socket"]

# Per socket (SdkWebSocket adds no slots): its binaryType when set, and the wrappers of its
# "message" listeners (listener -> wrapper, so that removeEventListener finds them).
_binary_types: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_wrappers: weakref.WeakKeyDictionary[Any, dict[Callable[[Any], Any], Callable[[Any], Any]]] = (
    weakref.WeakKeyDictionary()
)


class SdkMessageEvent:
    """A ``"message"`` event as a Python Workers listener receives it: ``data`` (``str``, or a
    ``Blob`` / ``ArrayBuffer`` for a binary message), ``target``, ``type``."""

    __slots__ = ("data", "target")
    type = "message"

    def __init__(self, target: Any, data: Any) -> None:
        self.target = target
        self.data = data

    def __repr__(self) -> str:
        return f"<MessageEvent data={self.data!r:.60}>"


class SdkWebSocket(durable.WebSocket):  # type: ignore[misc]  # (final to users; the SDK reading, as MessageHeaders)
    """A `durable` WebSocket as Python Workers code holds it (see the module docstring)."""

    __slots__ = ()

    def deserializeAttachment(self) -> Any:
        """The attachment as the SDK's users read it, Pyodide's proxy of workerd's value (objects
        with attribute access and ``to_py()``, arrays with ``to_py()`` and ``length``)."""
        return js_arrays(python_from_rpc(self.deserialize_attachment()))

    @property
    def binaryType(self) -> str:
        """``"blob"`` (the default at compatibility date 2026-04-07) or ``"arraybuffer"``: what a
        ``"message"`` listener gets for a binary message."""
        return _binary_types.get(self, "blob")

    @binaryType.setter
    def binaryType(self, value: str) -> None:
        if value in ("blob", "arraybuffer"):
            _binary_types[self] = value  # another value is ignored, as in workerd

    def addEventListener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """``add_event_listener``; a ``"message"`` listener gets a binary message as workerd hands
        it over (measured, miniflare 4, 2026-04-07: a WebSocketPair end's ``event.data`` for a
        binary message is a ``Blob``)."""
        if type != "message" or not callable(listener):
            self.add_event_listener(type, listener)
            return
        wrappers = _wrappers.setdefault(self, {})
        wrapper = wrappers.get(listener)
        if wrapper is None:
            socket = self

            def wrapper(event: Any) -> Any:
                data = event.data
                if isinstance(data, bytes):
                    data = Blob([data]) if socket.binaryType == "blob" else ArrayBuffer(data)
                return listener(SdkMessageEvent(socket, data))

            wrappers[listener] = wrapper
        self.add_event_listener("message", wrapper)

    def removeEventListener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """``remove_event_listener``, for a listener added with :meth:`addEventListener`."""
        if type == "message":
            listener = _wrappers.get(self, {}).get(listener, listener)
        self.remove_event_listener(type, listener)


def sdk_socket(ws: Any) -> Any:
    """``ws`` (a :class:`durable.WebSocket`) made an :class:`SdkWebSocket`; anything else as it is."""
    if type(ws) is durable.WebSocket:
        ws.__class__ = SdkWebSocket
    return ws
