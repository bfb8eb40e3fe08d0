"""Wrappers giving `durable`'s objects the calling shapes of the Python Workers SDK.

The SDK passes attribute names through to the JavaScript objects, so code calls camelCase
methods with options as a *positional dict*: ``storage.list({"prefix": "a", "limit": 2})``,
``storage.get("k", {"allowConcurrency": True})``. `durable`'s objects already have the camelCase
names; these wrappers add the positional options, convert results as ``python_from_rpc`` does
(dicts with attribute access), apply the strict value check, and make ``ctx.abort()`` raise
:class:`DurableObjectAbort`. As in the SDK, wrapping is idempotent: ``ContextAdapter(a) is a``.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, NoReturn

import durable
from durable._util import shown

from ._convert import Converted, JsDate, JsDict, JsList, check_rpc_value, js_key, python_from_rpc, to_durable
from ._http import FetchResponse, Request, as_fetch_response, unwrap_request
from ._rawctx import RawContext, RawEnv
from ._sdksocket import sdk_socket
from ._sql import SqlAdapter

__all__ = [
    "ContextAdapter",
    "DurableObjectAbort",
    "EnvAdapter",
    "NamespaceAdapter",
    "SqlAdapter",
    "StorageAdapter",
    "StubAdapter",
    "TransactionAdapter",
]


class DurableObjectAbort(BaseException):
    """Raised inside a Durable Object by ``ctx.abort()``, as the SDK does.

    A ``BaseException``, so ``except Exception`` in user code cannot swallow it. The object is
    reset; the caller gets an ordinary reset error (:class:`durable.ObjectResetError`).
    """


_NOT_GIVEN: Any = object()


def _options(name: str, options: object, kwargs: dict[str, Any]) -> dict[str, Any]:
    if options is None:
        merged = kwargs
    elif not isinstance(options, Mapping):
        raise TypeError(
            f'{name}() options must be a dict such as {{"allowConcurrency": True}}, not {type(options).__name__}'
        )
    else:
        merged = {**options, **kwargs}
    for field in _KEY_OPTIONS.intersection(merged):
        merged[field] = js_key(merged[field])
    return merged


def list_options(options: object, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``list()``'s options, given as a positional dict and/or keywords."""
    return _options("list", options, kwargs)


def storage_list(storage: StorageAdapter, options: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> Awaitable[Any]:
    """``await storage.list(options)`` of the storage under ``storage``, as workerd's promise gives
    it (``StorageAdapter.list`` itself gives the SDK's iterator of pairs)."""
    return _StorageCalls.list(storage, options, **kwargs)


# list()'s options that workerd reads as strings (String(value), as its keys).
_KEY_OPTIONS = frozenset({"start", "startAfter", "end", "prefix"})


def _keys(keys: Any) -> Any:
    """A key, or a list of keys, with numbers, booleans and ``None`` as workerd's strings."""
    if type(keys) is list:
        return [js_key(key) for key in keys]
    return js_key(keys)


class _StorageCalls:
    """The storage methods shared by ``ctx.storage`` and a transaction's ``txn``."""

    __slots__ = ("_target",)

    _target: Any

    def get(self, keys: Any, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[Any]:
        """``get(key)`` / ``get([keys])``, options as a positional dict; dicts come back as ``JsDict``."""
        return Converted(self._target.get(_keys(keys), **_options("get", options, kwargs)), python_from_rpc)

    def list(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[Any]:
        """``list({"prefix": ..., "start": ..., "end": ..., "reverse": ..., "limit": ...})``."""
        return Converted(self._target.list(**_options("list", options, kwargs)), python_from_rpc)

    def put(
        self, key: Any, value: Any = _NOT_GIVEN, options: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Awaitable[None]:
        """``put(key, value[, options])`` or ``put({key: value, ...}[, options])``."""
        if isinstance(key, Mapping):
            if value is not _NOT_GIVEN:
                if options is not None:
                    raise TypeError("put() with a dict of entries takes at most one options dict")
                options = value
            entries = {js_key(name): to_durable(entry) for name, entry in key.items()}
            check_rpc_value(entries)
            return Converted(self._target.put(entries, **_options("put", options, kwargs)), python_from_rpc)
        if value is _NOT_GIVEN:
            raise TypeError("put() needs a value: put(key, value) or put({key: value, ...})")
        check_rpc_value(value)
        return Converted(
            self._target.put(js_key(key), to_durable(value), **_options("put", options, kwargs)), python_from_rpc
        )

    def delete(self, keys: Any, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[Any]:
        """``delete(key)`` -> bool, ``delete([keys])`` -> count."""
        return Converted(self._target.delete(_keys(keys), **_options("delete", options, kwargs)), python_from_rpc)

    def deleteAll(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[None]:
        """Delete every key (and, for storage, the alarm and SQL tables)."""
        return Converted(self._target.delete_all(**_options("deleteAll", options, kwargs)), python_from_rpc)

    def getAlarm(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[int | None]:
        """The alarm time in ms since the epoch, or ``None``."""
        return Converted(self._target.get_alarm(**_options("getAlarm", options, kwargs)), python_from_rpc)

    def setAlarm(self, when: Any, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[None]:
        """Set the alarm to ``when`` (ms since the epoch or a ``datetime``)."""
        return Converted(self._target.set_alarm(when, **_options("setAlarm", options, kwargs)), python_from_rpc)

    def deleteAlarm(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Awaitable[None]:
        """Remove the alarm."""
        return Converted(self._target.delete_alarm(**_options("deleteAlarm", options, kwargs)), python_from_rpc)

    delete_all = deleteAll
    get_alarm = getAlarm
    set_alarm = setAlarm
    delete_alarm = deleteAlarm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class StorageAdapter(_StorageCalls):
    """``ctx.storage`` as the SDK shows it (a ``_BindingWrapper`` over ``DurableObjectStorage``)."""

    __slots__ = ()

    def __new__(cls, storage: Any) -> StorageAdapter:
        if isinstance(storage, StorageAdapter):
            return storage
        self = super().__new__(cls)
        self._target = storage
        return self

    def __repr__(self) -> str:
        return f"<workers storage {self._target!r}>"

    def transaction(self, closure: Callable[[TransactionAdapter], Any]) -> Awaitable[Any]:
        """Run ``closure(txn)`` in a transaction; ``txn`` takes the same call shapes."""
        result: Awaitable[Any] = self._target.transaction(lambda txn: closure(TransactionAdapter(txn)))
        return result

    def sync(self) -> Awaitable[None]:
        """Completes when every earlier write is durable."""
        result: Awaitable[None] = self._target.sync()
        return result

    @property
    def sql(self) -> SqlAdapter:
        """``storage.sql``, binding parameters as workerd receives them from Python Workers code."""
        return SqlAdapter(self._target.sql)

    @property
    def kv(self) -> SyncKVAdapter:
        """``storage.kv``, whose ``list`` also takes its options as a positional dict."""
        return SyncKVAdapter(self._target.kv)


class SyncKVAdapter:
    """``storage.kv`` with the SDK's call shapes and conversions: ``kv.list({"prefix": "a"})``;
    values read come back as the SDK gives them (dicts as ``JsDict``), values written are checked
    in strict mode (workers-py wraps ``storage.kv`` as it wraps ``storage``)."""

    __slots__ = ("_target",)

    def __init__(self, kv: Any) -> None:
        self._target = kv

    def get(self, key: str) -> Any:
        """The value under ``key`` (dicts as ``JsDict``), or ``None``."""
        return python_from_rpc(self._target.get(js_key(key)))

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (strict mode refuses what the SDK cannot send)."""
        check_rpc_value(value)
        self._target.put(js_key(key), to_durable(value))

    def delete(self, key: str) -> bool:
        """Delete ``key``; whether it existed."""
        deleted: bool = self._target.delete(js_key(key))
        return deleted

    def list(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """An iterator of ``(key, value)`` pairs (dicts as ``JsDict``); options as a positional
        dict or keywords."""
        return ((key, python_from_rpc(value)) for key, value in self._target.list(**list_options(options, kwargs)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class TransactionAdapter(_StorageCalls):
    """The ``txn`` of ``storage.transaction(closure)``, with the SDK's call shapes; ``rollback()`` too."""

    __slots__ = ()

    def __new__(cls, txn: Any) -> TransactionAdapter:
        if isinstance(txn, TransactionAdapter):
            return txn
        self = super().__new__(cls)
        self._target = txn
        return self

    def rollback(self) -> None:
        """Roll the transaction back when the closure returns."""
        self._target.rollback()


def _not_emulated(name: str, why: str) -> Callable[[], Any]:
    def refuse() -> Any:
        raise NotImplementedError(f"ctx.{name} is not emulated by durable: {why}")

    return refuse


# Members of workerd's DurableObjectState that durable.State lacks (measured, miniflare 4,
# 2026-04-07: a Durable Object's `ctx.props` is `{}`, `ctx.container` is `undefined` without a
# container, `ctx.exports` holds the module's exports `default` and the classes' namespaces,
# `ctx.facets` is an object).
_STATE_EXTRAS: dict[str, Callable[[], Any]] = {
    "props": JsDict,
    "container": lambda: None,
    "exports": _not_emulated("exports", "reach other objects through the bindings on self.env"),
    "facets": _not_emulated("facets", "durable has no Durable Object facets"),
}


class ContextAdapter:
    """The ``self.ctx`` a Python Workers Durable Object sees (the SDK's ``DurableObjectContext``).

    Every attribute passes through to the :class:`durable.State` (``id``, ``blockConcurrencyWhile``,
    ``waitUntil``, ``acceptWebSocket``...); ``storage`` takes the SDK's call shapes and ``abort()``
    raises :class:`DurableObjectAbort`. ``_ctx`` is what the SDK's ``_ctx`` holds, workerd's
    ``DurableObjectState`` as Pyodide proxies it (:class:`~._rawctx.RawContext`).
    """

    __slots__ = ("_raw", "_state", "storage")

    _raw: RawContext | None
    _state: Any
    storage: StorageAdapter

    def __new__(cls, ctx: Any) -> ContextAdapter:
        if isinstance(ctx, ContextAdapter):
            return ctx
        if isinstance(ctx, RawContext):  # DurableObjectContext(ctx._ctx): the same object again
            return ctx.wrapper  # type: ignore[no-any-return]
        self = super().__new__(cls)
        self._state = ctx
        self._raw = None
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "_ctx":  # the SDK's wrapped JavaScript DurableObjectState, which code unwraps
            if self._raw is None:
                self._raw = RawContext(self)
            return self._raw
        if name == "storage":  # made at first use, as the SDK wraps it (DurableObjectContext(x) takes any x)
            self.storage = StorageAdapter(self._state.storage)
            return self.storage
        if name in ("getWebSockets", "get_websockets"):  # the latter: the docs' Python spelling
            return self._get_websockets
        if name == "getWebSocketAutoResponseTimestamp":
            return self._auto_response_timestamp
        if name == "getTags":
            return self._get_tags
        try:
            return getattr(self._state, name)
        except AttributeError:
            if name in _STATE_EXTRAS:
                return _STATE_EXTRAS[name]()
            raise

    def __repr__(self) -> str:
        return f"<workers DurableObjectContext {self._state!r}>"

    def _get_websockets(self, tag: str | None = None) -> list[Any]:
        """``getWebSockets(tag)``: the accepted sockets, as :class:`SdkWebSocket`, in a JavaScript
        array's stand-in (``to_py()``, ``length``)."""
        sockets: list[Any] = self._state.getWebSockets(tag)
        return JsList(sdk_socket(ws) for ws in sockets)

    def _get_tags(self, ws: Any) -> list[str]:
        """``getTags(ws)``: the socket's tags, in a JavaScript array's stand-in."""
        return JsList(self._state.getTags(ws))

    def _auto_response_timestamp(self, ws: Any) -> JsDate | None:
        """``getWebSocketAutoResponseTimestamp(ws)``: a JavaScript ``Date`` in workerd, which the
        SDK's context passes through unconverted (Pyodide's proxy of it: ``getTime()``,
        ``toISOString()``, ``to_py()``): a :class:`JsDate`; ``None`` (``null``) before any
        auto-response."""
        when: datetime.datetime | None = self._state.getWebSocketAutoResponseTimestamp(ws)
        return None if when is None else JsDate(round(when.timestamp() * 1000))

    @property
    def js_object(self) -> Any:
        """The underlying :class:`durable.State`."""
        return self._state

    def abort(self, reason: object = None, options: Any = None, **kwargs: Any) -> NoReturn:
        """Reset the object and raise :class:`DurableObjectAbort` to stop the running code.

        Unflushed writes are dropped; the caller gets a reset error whose message is ``reason``.
        ``options`` (``{"retryAlarm": False}``) and ``retry_alarm=`` are :meth:`durable.State.abort`'s.
        """
        if isinstance(reason, BaseException):
            # Pyodide hands workerd a PyProxy of the exception, whose String() is Python's str()
            # (PyProxy.toString: str(o) by default): the caller sees "x", not "IndexError: x".
            reason = shown(reason, limit=10_000, text=True)
        try:
            self._state.abort(reason, options, **kwargs)
        except BaseException as exc:
            if isinstance(exc, TypeError) and not getattr(exc, "durable_object_reset", False):
                raise  # options that are not {"retryAlarm": bool}: nothing was reset
            raise DurableObjectAbort(reason or "Durable Object abort requested") from exc
        raise DurableObjectAbort(reason or "Durable Object abort requested")  # pragma: no cover


class StubAdapter:
    """A Durable Object stub with the SDK's conversions.

    ``await stub.method(*args)`` sends the arguments (strict-mode checked) and gives the result
    converted as ``python_from_rpc`` does; ``await stub.fetch(url_or_request, {options})``
    returns a :class:`FetchResponse`. ``id`` and ``name`` pass through.
    """

    __slots__ = ("_stub",)

    _stub: Any

    def __new__(cls, stub: Any) -> StubAdapter:
        if isinstance(stub, StubAdapter):
            return stub
        self = super().__new__(cls)
        self._stub = stub
        return self

    def __repr__(self) -> str:
        return f"<workers stub {self._stub!r}>"

    @property
    def id(self) -> durable.DurableObjectId:
        stub_id: durable.DurableObjectId = self._stub.id
        return stub_id

    @property
    def name(self) -> str | None:
        name: str | None = self._stub.name
        return name

    async def fetch(self, input: Any, init: Mapping[str, Any] | None = None, /, **kwargs: Any) -> FetchResponse:
        """Send an HTTP request to the object's ``fetch`` handler; returns a :class:`FetchResponse`."""
        options = {**(init or {}), **kwargs}
        if "body" in options:
            options["body"] = unwrap_request(options["body"])
        if "cf" not in options and isinstance(input, Request) and input.cf is not None:
            options["cf"] = input.cf  # the object sees it as request.cf, as in workerd
        response = await self._stub.fetch(unwrap_request(input), **options)
        return as_fetch_response(response)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._stub, name)

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            if kwargs:
                # Pyodide calls a JavaScript function's keyword arguments as one object after the
                # others (the SDK's stub calls fn(*js_args, **js_kwargs)): the method gets a dict.
                args = (*args, kwargs)
            check_rpc_value(list(args))
            return Converted(method(*map(to_durable, args)), _from_rpc_result)

        call.__name__ = call.__qualname__ = name
        return call


def _from_rpc_result(value: Any) -> Any:
    check_rpc_value(value)
    return python_from_rpc(value)


class NamespaceAdapter:
    """A Durable Object namespace binding (``env.LISTS``) whose stubs use the SDK's conversions.

    ``idFromString`` passes through; ``idFromName(name)`` and ``getByName(name)`` read a number,
    boolean or ``None`` name as its JavaScript string, as workerd does; ``newUniqueId`` takes its
    options as a positional dict; ``get(id)`` and ``getByName(name)`` return :class:`StubAdapter`
    stubs (options, as a dict or keywords, are accepted and ignored where they only place
    objects, as ``locationHint`` does).
    """

    __slots__ = ("_ns",)

    _ns: Any

    def __new__(cls, namespace: Any) -> NamespaceAdapter:
        if isinstance(namespace, NamespaceAdapter):
            return namespace
        self = super().__new__(cls)
        self._ns = namespace
        return self

    def __repr__(self) -> str:
        return f"<workers namespace {self._ns!r}>"

    def idFromName(self, name: str) -> durable.DurableObjectId:
        """The id for ``name`` (``idFromName(7)`` is ``idFromName("7")``, as in workerd)."""
        oid: durable.DurableObjectId = self._ns.id_from_name(js_key(name))
        return oid

    def newUniqueId(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> durable.DurableObjectId:
        """A new random id; ``{"jurisdiction": ...}`` raises ``NotImplementedError``, as in workerd."""
        oid: durable.DurableObjectId = self._ns.new_unique_id(**_options("newUniqueId", options, kwargs))
        return oid

    def get(self, id: Any, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> StubAdapter:
        """The stub for ``id``."""
        return StubAdapter(self._ns.get(id))

    def getByName(self, name: str, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> StubAdapter:
        """The stub for ``idFromName(name)``."""
        return StubAdapter(self._ns.get_by_name(js_key(name)))

    id_from_name = idFromName
    new_unique_id = newUniqueId
    get_by_name = getByName

    def jurisdiction(self, name: str | None = None) -> NamespaceAdapter:
        """This namespace for no name (``None`` is ``undefined``), as workerd's ``jurisdiction()``
        is; a name raises ``NotImplementedError`` (workerd: ``Jurisdiction restrictions are not
        implemented in workerd.``)."""
        return NamespaceAdapter(self._ns.jurisdiction(name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ns, name)


class EnvAdapter:
    """``self.env`` as the SDK shows it: namespaces wrapped as :class:`NamespaceAdapter`, vars as they are.

    ``_env`` is what the SDK's ``_EnvWrapper._env`` holds, workerd's env as Pyodide proxies it
    (:class:`~._rawctx.RawEnv`)."""

    __slots__ = ("_cache", "_target")

    _cache: dict[str, Any]
    _target: Any

    def __new__(cls, env: Any) -> EnvAdapter:
        if isinstance(env, EnvAdapter):
            return env
        if isinstance(env, RawEnv):  # _EnvWrapper(env._env): the same object again
            return env.wrapper  # type: ignore[no-any-return]
        self = super().__new__(cls)
        self._target = env
        self._cache = {}
        return self

    def __repr__(self) -> str:
        return f"<workers env {self._target!r}>"

    @property
    def js_object(self) -> Any:
        """The underlying :class:`durable.Env`."""
        return self._target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "_env":  # the SDK's wrapped JavaScript env, which code unwraps
            return RawEnv(self)
        try:
            return self._cache[name]
        except KeyError:
            pass
        try:
            value = getattr(self._target, name)
        except AttributeError as exc:
            if not isinstance(self._target, durable.Env):
                raise
            # durable.Env names rt.namespace() and a served file's dicts; a Python Workers
            # project declares its bindings in its wrangler config, which it names too.
            raise AttributeError(
                f"{exc} In a Python Workers project, declare it in the wrangler config: a Durable "
                f'Object binding with name = "{name}" and its class_name ([[durable_objects.bindings]] '
                f"in wrangler.toml), or {name} under [vars].",
                name=name,
                obj=self,
            ) from None
        if isinstance(value, durable.Namespace):
            value = NamespaceAdapter(value)
        elif type(value) in (dict, list, float):
            # A JSON var is a JavaScript value there: an object a JsProxy (attribute access,
            # to_py()), and a number an int when Number.isSafeInteger() (1.0 arrives as 1).
            value = python_from_rpc(value)
        self._cache[name] = value
        return value

    def __getitem__(self, name: str) -> Any:
        try:
            return self.__getattr__(name)
        except AttributeError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._target

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __dir__(self) -> list[str]:
        return dir(self._target)
