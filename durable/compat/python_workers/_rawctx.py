"""``ctx._ctx``: workerd's ``DurableObjectState`` as Pyodide proxies it, under the SDK's wrapper.

The SDK's ``DurableObjectContext`` keeps the JavaScript object it wraps in ``_ctx``, and Python
Workers code reaches for it (``getattr(ctx, "_ctx", ctx)``) to use workerd's object as it is:
camelCase methods, results as Pyodide hands JavaScript values to Python (an object has attribute
access and ``to_py()``, an array ``length`` and ``to_py()``, and ``storage.list()`` or
``storage.get([keys])`` give a JavaScript ``Map``, read as a mapping with ``size``, ``has()``,
``entries()`` and ``to_py()``). :class:`RawContext` is that object here: it is not a
``DurableObjectContext`` (``DurableObjectContext(raw)`` wraps it again) and has no ``_ctx``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from ._convert import Converted, JsMapDict, js_arrays

__all__ = ["RawContext", "RawEnv", "RawStorage"]


def _as_js(value: Any) -> Any:
    """A value read from storage as Pyodide's proxy of the JavaScript value reads."""
    return js_arrays(value)


def _as_map(entries: Any) -> JsMapDict:
    """``storage.list()`` / ``get([keys])``: workerd gives a ``Map``."""
    result = JsMapDict()
    for key, value in entries.items() if isinstance(entries, Mapping) else entries:
        result[key] = _as_js(value)
    return result


class RawStorage:
    """``ctx._ctx.storage``: workerd's ``DurableObjectStorage`` as Pyodide proxies it.

    Options are given as a dict (JavaScript code's object; Pyodide would hand workerd a
    ``PyProxy`` of a plain ``dict``, whose fields workerd does not see: write
    ``to_js(options, dict_converter=Object.fromEntries)`` there, which this takes too)."""

    __slots__ = ("_storage",)

    def __init__(self, storage: Any) -> None:
        self._storage = storage  # the SDK-shaped StorageAdapter

    def get(self, keys: Any, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[Any]:
        """``get(key)``: the value (an object as a ``JsProxy`` reads); ``get([keys])``: a ``Map``."""
        convert = _as_map if isinstance(keys, list) else _as_js
        return Converted(self._storage.get(keys, options, **kwargs), convert)

    def list(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[JsMapDict]:
        """``list({...})``: a ``Map`` of the keys in order."""
        from ._bindings import storage_list

        return Converted(storage_list(self._storage, options, kwargs), _as_map)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._storage, name)

    def __repr__(self) -> str:
        return f"<JsProxy DurableObjectStorage {self._storage!r}>"


class RawContext:
    """``ctx._ctx``: the ``DurableObjectState`` itself (``id``, ``storage``, ``blockConcurrencyWhile``,
    ``acceptWebSocket``, ``getWebSockets``, ``waitUntil``, ``abort``...), as Pyodide proxies it."""

    __slots__ = ("_storage", "wrapper")

    def __init__(self, adapter: Any) -> None:
        self.wrapper = adapter
        """The ContextAdapter (the SDK's DurableObjectContext) holding it."""
        self._storage: RawStorage | None = None

    @property
    def storage(self) -> RawStorage:
        if self._storage is None:
            self._storage = RawStorage(self.wrapper.storage)
        return self._storage

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # a JavaScript object has no _ctx: getattr(raw, "_ctx", raw) is raw
            raise AttributeError(name)
        return getattr(self.wrapper, name)

    def __repr__(self) -> str:
        return f"<JsProxy DurableObjectState {self.wrapper.js_object!r}>"


class RawEnv:
    """``env._env``: the Worker's env as Pyodide proxies workerd's object (the SDK's
    ``_EnvWrapper`` keeps it in ``_env``): its bindings and vars, read as through ``self.env``
    (``idFromName``, ``get``, ``getByName``; a JSON var an object with attribute access and
    ``to_py()``). It is not an ``_EnvWrapper`` and has no ``_env``."""

    __slots__ = ("wrapper",)

    def __init__(self, adapter: Any) -> None:
        self.wrapper = adapter
        """The EnvAdapter (the SDK's _EnvWrapper) holding it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.wrapper, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawEnv) and other.wrapper is self.wrapper

    def __hash__(self) -> int:
        return hash(id(self.wrapper))

    def __repr__(self) -> str:
        return f"<JsProxy env {self.wrapper.js_object!r}>"
