"""``pyodide.ffi``: the conversions between Python and JavaScript, which are identities here.

There is no JavaScript heap under `durable`: ``to_js`` returns its argument (binary data gives a
``Uint8Array`` stand-in, as Pyodide does), ``create_proxy`` a function calling the one given with
Pyodide's ``destroy()`` and ``unwrap()``, ``create_once_callable`` one that works once (and its
``destroy()``),
``JsProxy`` is a class no other value is an instance of, and ``run_sync`` runs a coroutine to
completion on a helper event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...._codec import copy_as_bytes

__all__ = [
    "IN_BROWSER",
    "ConversionError",
    "JsArray",
    "JsAsyncGenerator",
    "JsAsyncIterable",
    "JsAsyncIterator",
    "JsBuffer",
    "JsCallable",
    "JsDomElement",
    "JsDoubleProxy",
    "JsException",
    "JsFetchResponse",
    "JsGenerator",
    "JsIterable",
    "JsIterator",
    "JsMap",
    "JsMutableMap",
    "JsNull",
    "JsPromise",
    "JsProxy",
    "JsTypedArray",
    "can_run_sync",
    "create_once_callable",
    "create_proxy",
    "destroy_proxies",
    "jsnull",
    "run_sync",
    "to_js",
]

T = TypeVar("T")


class JsProxy:
    """Pyodide's proxy of a JavaScript value. Under `durable` no value is one."""

    def __init__(self) -> None:
        raise TypeError("JsProxy cannot be constructed (there is no JavaScript runtime under durable)")


class JsArray(JsProxy):
    """Pyodide's proxy of a JavaScript array. Under `durable` no value is one."""


# Pyodide's other proxy types, for isinstance checks and annotations: no value is one.
class JsBuffer(JsProxy):
    """Pyodide's proxy of a JavaScript buffer. Under `durable` no value is one."""


class JsCallable(JsProxy):
    """Pyodide's proxy of a JavaScript function. Under `durable` no value is one."""


class JsPromise(JsProxy):
    """Pyodide's proxy of a JavaScript promise. Under `durable` no value is one."""


class JsIterable(JsProxy):
    """Pyodide's proxy of a JavaScript iterable. Under `durable` no value is one."""


class JsIterator(JsProxy):
    """Pyodide's proxy of a JavaScript iterator. Under `durable` no value is one."""


class JsAsyncIterable(JsProxy):
    """Pyodide's proxy of a JavaScript async iterable. Under `durable` no value is one."""


class JsAsyncIterator(JsProxy):
    """Pyodide's proxy of a JavaScript async iterator. Under `durable` no value is one."""


class JsGenerator(JsIterator):
    """Pyodide's proxy of a JavaScript generator. Under `durable` no value is one."""


class JsAsyncGenerator(JsAsyncIterator):
    """Pyodide's proxy of a JavaScript async generator. Under `durable` no value is one."""


class JsMap(JsProxy):
    """Pyodide's proxy of a JavaScript Map (or object used as one). Under `durable` no value is one."""


class JsMutableMap(JsMap):
    """Pyodide's proxy of a mutable JavaScript Map. Under `durable` no value is one."""


class JsTypedArray(JsBuffer):
    """Pyodide's proxy of a JavaScript typed array. Under `durable` no value is one."""


class JsDoubleProxy(JsProxy):
    """Pyodide's proxy of a proxy made by ``create_proxy``. Under `durable` no value is one."""


class JsFetchResponse(JsProxy):
    """Pyodide's proxy of a JavaScript ``Response``. Under `durable` no value is one."""


class JsDomElement(JsProxy):
    """Pyodide's proxy of a DOM element. Under `durable` no value is one."""


class JsNull(JsProxy):
    """The type of :data:`jsnull`, Pyodide's proxy of JavaScript's ``null``."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "null"


jsnull: JsNull = object.__new__(JsNull)
"""JavaScript's ``null`` (Pyodide converts ``undefined`` to ``None`` but gives ``null`` as this
value). Sent over RPC, stored or bound in SQL it is ``null`` and comes back as ``None``, as the
SDK's ``python_from_rpc`` turns ``jsnull`` into ``None`` (workers-py rpc.py)."""


class ConversionError(Exception):
    """Raised by Pyodide when a value cannot be converted between Python and JavaScript."""


IN_BROWSER = False
"""Whether the code runs in a browser (Pyodide's flag): never under `durable`."""


def can_run_sync() -> bool:
    """Whether :func:`run_sync` may be called here: always (see its restrictions)."""
    return True


class JsException(Exception):
    """A JavaScript error as Pyodide raises it: ``name`` (``"Error"``, ``"TypeError"``...) and
    ``message``; ``str()`` is JavaScript's ``"Name: message"``.

    ``JsException(message)`` or ``JsException(name, message)``.
    """

    def __init__(self, name: str = "", message: str | None = None) -> None:
        if message is None:
            name, message = "Error", name
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    def __reduce__(self) -> tuple[type[JsException], tuple[str, str], dict[str, Any]]:
        # (BaseException's reduce gives the constructor ``"Name: message"`` as one argument:
        # a copy or an unpickled one said ``Error: TypeError: x``.)
        return (type(self), (self.name, self.message), self.__dict__)


class ArrayBuffer(bytes, JsBuffer):
    """What ``to_js(data).buffer`` gives: JavaScript's ``ArrayBuffer`` of a ``Uint8Array``, here
    ``bytes`` (so it is accepted wherever a body or binary value is) with ``byteLength``."""

    def __init__(self, *args: Any) -> None:
        pass  # bytes.__new__ made the value; JsProxy.__init__ refuses to run

    @property
    def byteLength(self) -> int:
        return len(self)

    def to_py(self, *args: Any, **kwargs: Any) -> memoryview:
        """Pyodide's ``to_py()`` of a buffer: a ``memoryview``."""
        return memoryview(builtins.bytes(self))

    def to_bytes(self) -> builtins.bytes:
        return builtins.bytes(self)


class Uint8Array(ArrayBuffer, JsTypedArray):
    """What ``to_js(bytes)`` gives (Pyodide copies binary data into a new ``Uint8Array``): its
    ``buffer`` (an :class:`ArrayBuffer`), ``length``, ``byteLength``, ``to_py()``, ``to_bytes()``."""

    @property
    def buffer(self) -> ArrayBuffer:
        return ArrayBuffer(self)

    @property
    def length(self) -> int:
        return len(self)

    def subarray(self, begin: int = 0, end: int | None = None) -> Uint8Array:
        """The bytes from ``begin`` to ``end`` (negative counts from the end), as JavaScript's
        ``subarray``; a copy here, where the array is immutable."""
        return Uint8Array(builtins.bytes(self)[begin:end])

    def slice(self, begin: int = 0, end: int | None = None) -> Uint8Array:
        """A copy of the bytes from ``begin`` to ``end``, as JavaScript's ``slice``."""
        return Uint8Array(builtins.bytes(self)[begin:end])


# Sent, stored or attached, they are binary data (structured clone copies a Uint8Array): bytes.
copy_as_bytes(ArrayBuffer)
copy_as_bytes(Uint8Array)


def to_js(value: T, *args: Any, dict_converter: Callable[[Any], Any] | None = None, **kwargs: Any) -> T:
    """``value`` as Pyodide converts it, at any depth, into what Python then reads through a
    proxy: a ``dict`` becomes ``dict_converter(entries)`` (``dict_converter=Object.fromEntries``
    gives an object: a ``JsDict``, with attribute access and ``to_py()``), or without one a
    ``Map`` (a dict with ``size``, ``has``, ``entries()``, ``to_py()``); a ``list`` or ``tuple``
    an array (a list with ``to_py()`` and ``length``); binary data (``bytes``, ``bytearray``,
    ``memoryview``) a :class:`Uint8Array` (``to_js(data).buffer`` is its ``ArrayBuffer``).
    Anything else is returned itself: `durable` stores and sends Python values as they are."""
    if isinstance(value, (bytes, bytearray, memoryview, dict, list, tuple)):
        from .._convert import convert_to_js

        converted: T = convert_to_js(value, dict_converter, {})
        return converted
    return value


def create_proxy(obj: T, *args: Any, **kwargs: Any) -> T:
    """A callable ``obj`` wrapped as Pyodide's proxy of it is used: called, it calls ``obj``
    (an ``async`` function stays one), and it has ``destroy()`` and ``unwrap()`` (the code
    written for Pyodide frees its proxies with ``proxy.destroy()``, often in a ``finally``);
    calling it after ``destroy()`` raises Pyodide's ``Error: Object has already been destroyed``
    (a :class:`JsException`). Anything else is returned itself (no JavaScript heap to proxy into).
    """
    if not callable(obj):
        return obj
    proxy: T = _double_proxy(obj)
    return proxy


def _double_proxy(target: Any) -> Any:
    """A function standing for Pyodide's ``create_proxy(target)``."""
    destroyed = False

    def check() -> None:
        if destroyed:
            raise JsException("Error", "Object has already been destroyed")

    async def async_proxy(*args: Any, **kwargs: Any) -> Any:
        check()
        return await target(*args, **kwargs)

    def sync_proxy(*args: Any, **kwargs: Any) -> Any:
        check()
        return target(*args, **kwargs)

    proxy: Callable[..., Any] = async_proxy if inspect.iscoroutinefunction(target) else sync_proxy

    def destroy() -> None:
        nonlocal destroyed
        destroyed = True

    functools.update_wrapper(proxy, target)  # its signature, for calls with what it accepts
    attributes = vars(proxy)
    attributes["destroy"] = destroy
    attributes["unwrap"] = lambda: target
    return proxy


def create_once_callable(obj: T, *args: Any, **kwargs: Any) -> T:
    """A callable ``obj`` wrapped as Pyodide's once-callable proxy: the first call calls ``obj``
    (an ``async`` function's call returns its coroutine) and uses the proxy up, even if ``obj``
    raises; a second call raises Pyodide's ``Error: OnceProxy can only be called once`` (a
    :class:`JsException`). ``destroy()`` uses it up without calling it; after a call or another
    ``destroy()`` it raises ``Error: OnceProxy has already been destroyed``. Anything else is
    returned itself (no JavaScript heap to proxy into)."""
    if not callable(obj):
        return obj
    proxy: T = _once_proxy(obj)
    return proxy


def _once_proxy(target: Any) -> Any:
    """A function standing for Pyodide's ``create_once_callable(target)`` (its ``pyproxy.c``)."""
    used = False

    def once(*args: Any, **kwargs: Any) -> Any:
        if used:
            raise JsException("Error", "OnceProxy can only be called once")
        try:
            return target(*args, **kwargs)
        finally:
            # As Pyodide's wrapper: used up once the call ends, even if it raised; a call made
            # from inside it (or a destroy()) went through, and this destroy() raises then.
            destroy()

    def destroy() -> None:
        nonlocal used
        if used:
            raise JsException("Error", "OnceProxy has already been destroyed")
        used = True

    functools.update_wrapper(once, target)  # its signature, for calls with what it accepts
    mark = getattr(inspect, "markcoroutinefunction", None)  # Python 3.12+
    if mark is not None and inspect.iscoroutinefunction(target):
        mark(once)  # checked at the call, as Pyodide does, yet still seen as async (transactionSync)
    vars(once)["destroy"] = destroy
    return once


def destroy_proxies(proxies: Any) -> None:
    """Nothing to destroy."""


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion and return its result, from synchronous code.

    With no loop running in this thread it runs on a new loop; inside a running loop it runs on
    a helper thread's loop (so it must not need the calling loop). A settled ``js.Promise`` gives
    its outcome (``run_sync(Promise.resolve())``, the test for stack switching, returns ``None``).

    Raises:
        NotImplementedError: inside a running loop, for a ``js.Promise`` still pending: only the
            loop this call blocks could settle it (Pyodide suspends the WebAssembly stack and
            lets the loop run; CPython cannot), so it would wait for ever.
    """

    async def main() -> T:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    from .._jsasync import Promise

    if isinstance(awaitable, Promise) and awaitable.pending:
        raise NotImplementedError(
            "pyodide.ffi.run_sync() of a pending js.Promise inside a running event loop is not supported by "
            "durable: the loop it blocks is the one that would settle it; await the promise instead"
        )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
