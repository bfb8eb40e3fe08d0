"""Value rules of the Python Workers SDK: ``JsDict``, RPC conversions, strict mode, relaxed calls.

On Cloudflare, values crossing RPC or storage go through the SDK's ``python_to_rpc`` (Python to
JavaScript) and ``python_from_rpc`` (back): dicts come back as ``JsDict`` (a ``dict`` whose keys
are attributes too), and ``tuple`` and ``bytearray`` are refused with
``TypeError("<class 'tuple'> cannot be sent over RPC.")``. `durable` accepts those types (its
values are structured-clone values), so the refusal happens only in *strict mode*, switched on
with ``install(strict=True)``, where code that would fail on Cloudflare fails in tests too.

Handlers are called *relaxed*, as pyodide's ``callRelaxed`` does for ``alarm`` and the
WebSocket handlers: arguments the function does not accept are dropped, so ``async def
alarm(self)`` works.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import math
from collections.abc import Callable, Coroutine, Generator
from decimal import Decimal
from typing import Any, Generic, TypeVar

import durable

from ..._codec import copy_as_dict, copy_as_list
from ._jsdate import JsDate
from .pyodide.ffi import ArrayBuffer, JsException, Uint8Array, jsnull

__all__ = [
    "Converted",
    "JsDate",
    "JsDict",
    "JsList",
    "JsMapDict",
    "check_rpc_value",
    "convert_to_js",
    "is_strict",
    "js_key",
    "python_from_rpc",
    "python_to_rpc",
    "relaxed",
    "set_strict",
    "to_durable",
]

T = TypeVar("T")
R = TypeVar("R")

_strict = False


def set_strict(on: bool) -> None:
    """Switch strict value mode on or off (see the module docstring).

    Raises:
        TypeError: ``on`` is not a ``bool`` (the text ``"false"`` of a setting would read as true).
    """
    global _strict
    if not isinstance(on, bool):
        raise TypeError(f"strict mode is switched with True or False, not {type(on).__name__}: {on!r:.60}")
    _strict = on


def is_strict() -> bool:
    """Whether strict value mode is on."""
    return _strict


class JsDict(dict[str, Any]):
    """A ``dict`` whose keys are attributes too: what the SDK gives for a JavaScript object.

    ``d["key"]`` and ``d.key`` both work; a key named like a ``dict`` method (``items``...) is
    reached with ``d["items"]``. Setting an attribute sets the key.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_py(self, *, depth: int = -1) -> dict[str, Any]:
        """The value as a plain ``dict``, as pyodide's ``JsProxy.to_py()``: at any depth (or
        ``depth`` levels), objects inside are plain dicts and arrays plain lists."""
        return _plain(self, depth)  # type: ignore[no-any-return]


# What storage and RPC give Python Workers code goes back in as a plain dict, as the SDK's
# python_to_rpc sends any dict: `items = await storage.get("items"); await storage.put("items", items)`.
copy_as_dict(JsDict)


class JsObject(JsDict):
    """A JavaScript object Python Workers code holds unconverted, as Pyodide's ``JsProxy``:
    what ``Object.fromEntries`` (so ``to_js(d, dict_converter=Object.fromEntries)``),
    ``Object.new()``, ``JSON.parse`` and ``structuredClone`` give. It reads as a :class:`JsDict`;
    the difference is the SDK's ``Response.json(value)``, which hands a ``JsProxy`` to
    JavaScript's ``Response.json`` (compact JSON) and writes a ``dict`` (the ``JsDict`` that
    storage, RPC and SQL rows give) with ``json.dumps``."""

    __slots__ = ()


copy_as_dict(JsObject)


class JsList(list[Any]):
    """A ``list`` with what Pyodide's proxy of a JavaScript array adds: ``to_py()`` and
    ``length``. What the ``js`` globals give for an array (``Array.from(cursor)``,
    ``JSON.parse("[...]")``, ``Object.keys(obj)``...), which Python Workers code reads with
    ``.to_py()``; stored or sent it is a plain list, as structured clone copies an array."""

    __slots__ = ()

    def to_py(self, *, depth: int = -1) -> list[Any]:
        """The value as a plain ``list``, as pyodide's ``JsProxy.to_py()``: at any depth (or
        ``depth`` levels), arrays inside are plain lists and objects plain dicts
        (``cursor.raw().toArray().to_py()`` is a list of lists). It converted one level only."""
        return _plain(self, depth)  # type: ignore[no-any-return]

    @property
    def length(self) -> int:
        """JavaScript's ``array.length``."""
        return len(self)


copy_as_list(JsList)


def _plain(value: Any, depth: int) -> Any:
    """``value``'s JavaScript arrays and objects as plain lists and dicts, ``depth`` levels down
    (``-1``: all), as Pyodide's ``to_py(depth=...)``."""
    if depth == 0:
        return value
    if isinstance(value, list):
        return [_plain(item, depth - 1) for item in value]
    if isinstance(value, JsDict):
        return {key: _plain(item, depth - 1) for key, item in value.items()}
    return value


class JsMapDict(dict[Any, Any]):
    """What Pyodide's ``to_js(a_dict)`` gives without a ``dict_converter``: a JavaScript ``Map``,
    which Python reads as a mapping (``m["k"]``, ``m.get("k")``, ``len(m)``, ``in``, ``keys()``,
    ``items()``) with the ``Map``'s own ``size``, ``has``, ``set``, ``delete`` and ``entries()``
    (``Object.fromEntries(to_js(d).entries())``), and ``to_py()``. Stored or sent it is a plain
    dict (workerd stores the ``Map``; the SDK reads a ``Map`` back as a dict)."""

    __slots__ = ()

    @property
    def size(self) -> int:
        """``map.size``."""
        return len(self)

    def has(self, key: Any) -> bool:
        return key in self

    def set(self, key: Any, value: Any) -> JsMapDict:
        """``map.set(key, value)``: returns the map, as JavaScript's."""
        self[key] = value
        return self

    def delete(self, key: Any) -> bool:
        """``map.delete(key)``: whether it was there."""
        return self.pop(key, _ABSENT) is not _ABSENT

    def entries(self) -> Any:
        """An iterator of ``[key, value]`` arrays, as JavaScript's ``map.entries()``."""
        return (JsList((key, value)) for key, value in self.items())

    def to_py(self) -> dict[Any, Any]:
        """The value as a plain ``dict`` (as pyodide's ``JsProxy.to_py()``)."""
        return dict(self)


_ABSENT = object()
copy_as_dict(JsMapDict)


def convert_to_js(value: Any, dict_converter: Callable[[Any], Any] | None, memo: dict[int, Any]) -> Any:
    """Pyodide's ``to_js`` at any depth: a ``dict`` becomes ``dict_converter(entries)`` (each
    entry a ``[key, value]`` array), or a ``Map`` (:class:`JsMapDict`) without one; a ``list`` or
    ``tuple`` an array (:class:`JsList`); binary data a ``Uint8Array``; anything else stays."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value if isinstance(value, ArrayBuffer) else Uint8Array(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    done = memo.get(id(value))
    if done is _CONVERTING:
        raise ValueError(
            "to_js() of a dict that contains itself, with a dict_converter: the converter needs the dict's "
            "entries before the dict exists (without dict_converter, or in lists, a cycle is kept)"
        )
    if done is not None:
        return done
    # Made and remembered before its items are converted, as Pyodide caches them: a value that
    # contains itself (a cycle) or one list twice gives one converted value, not a RecursionError.
    converted: Any
    if isinstance(value, dict) and dict_converter is not None:
        memo[id(value)] = _CONVERTING
        entries = JsList(JsList((key, convert_to_js(item, dict_converter, memo))) for key, item in value.items())
        converted = memo[id(value)] = dict_converter(entries)
    elif isinstance(value, dict):
        converted = memo[id(value)] = JsMapDict()
        for key, item in value.items():
            converted[key] = convert_to_js(item, dict_converter, memo)
    else:
        converted = memo[id(value)] = JsList()
        converted.extend([convert_to_js(item, dict_converter, memo) for item in value])
    return converted


_CONVERTING = object()


def js_arrays(value: Any) -> Any:
    """``value`` with its lists, at any depth inside lists and dicts, as :class:`JsList`, and its
    ``JsDict`` objects as :class:`JsObject` (a value Pyodide hands out as a JavaScript value,
    such as ``JSON.parse``'s)."""
    if isinstance(value, list):
        return JsList(js_arrays(item) for item in value)
    if type(value) is JsDict:
        object.__setattr__(value, "__class__", JsObject)  # (JsDict.__setattr__ sets a key)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (list, dict)):
                dict.__setitem__(value, key, js_arrays(item))
    return value


def python_from_rpc(value: Any) -> Any:
    """Convert a value received over RPC or read from storage the way the SDK does.

    Dicts (at any depth inside dicts and lists) become :class:`JsDict`; ``bytes`` (a
    JavaScript ``Uint8Array`` or ``ArrayBuffer`` there, which Pyodide's ``to_py()`` gives as a
    ``memoryview``) become ``memoryview``; a ``float`` with an integral value in JavaScript's safe
    integer range becomes an ``int`` (Python floats and ints are both JavaScript numbers there,
    and Pyodide converts a number that ``Number.isSafeInteger()`` to an ``int``: ``1.0`` comes
    back as ``1``); a JavaScript ``Error`` (what the SDK sends for a Python exception) becomes
    ``Exception("Error: message")``; a ``durable.Request`` (a JavaScript ``Request`` there) the
    SDK's ``Request``; a ``datetime`` (a JavaScript ``Date`` there) a naive local one, to the
    millisecond, as the SDK reads a ``Date``. Everything else is returned as it is.
    """
    return _from_rpc(value, {})


def _from_rpc(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind is dict or kind is JsDict or kind is list:
        if kind is dict and len(value) == 1 and _JS_ERROR in value:
            return _error_from_js(value[_JS_ERROR])
        done = memo.get(id(value))
        if done is not None:
            return done  # a value that contains itself (structured clone keeps the cycle)
        if kind is list:
            items: list[Any] = []
            memo[id(value)] = items
            items.extend(_from_rpc(item, memo) for item in value)
            return items
        converted = JsDict()
        memo[id(value)] = converted
        for key, item in value.items():
            dict.__setitem__(converted, key, _from_rpc(item, memo))
        return converted
    if kind is bytes:
        return memoryview(value)
    if kind is float and value.is_integer() and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return int(value)  # a JavaScript number: Pyodide gives an int when Number.isSafeInteger()
    if isinstance(value, durable.Request):
        return sdk_request()(value)  # the SDK's python_from_rpc wraps a JavaScript Request
    if kind is datetime.datetime:
        # The SDK sends js.Date.new(dt.timestamp() * 1000) (milliseconds, the rest truncated) and
        # reads a Date back as datetime.fromtimestamp(ms / 1000): naive, local time.
        return datetime.datetime.fromtimestamp(int(value.timestamp() * 1000) / 1000)
    return value


@functools.cache
def sdk_request() -> type[Any]:
    """The SDK's ``Request`` (``_http`` imports this module, so it is read once both are loaded)."""
    from ._http import Request

    return Request


_MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER


def to_durable(value: Any) -> Any:
    """``value`` as `durable` can store or send it: a ``memoryview`` (what the SDK gives for binary
    data, and sends as a ``Uint8Array``) becomes ``bytes``, an ``Exception`` the stand-in of the
    JavaScript ``Error`` the SDK sends for it (``js.Error.new(str(exc))``, which
    :func:`python_from_rpc` gives back as ``Exception("Error: message")``), ``jsnull`` ``None``, at
    any depth inside dicts and lists.

    A ``str``, ``int`` or ``float`` of a subclass (``http.HTTPMethod``, ``request.method``'s type,
    ``HTTPStatus``, an ``IntEnum``...) becomes the plain value, as Pyodide converts any of them to
    a JavaScript string or number.

    ``value`` itself when it holds none of these.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if (
        kind is memoryview
        or isinstance(value, (Exception, JsDate, ArrayBuffer, sdk_request(), str, int, float))
        or value is jsnull
    ):
        return _with_bytes(value, {})
    if isinstance(value, (dict, list)) and _holds_view(value, set()):
        return _with_bytes(value, {})
    return value


_PLAIN = frozenset({str, int, float, bool, type(None)})


_JS_ERROR = "\x00durable.python_workers:Error"
"""The one key of the dict that stands for a JavaScript ``Error`` in storage and over RPC (`durable`'s
values have no error type): its value is the message. Only ``python_from_rpc`` reads it."""


def _error_to_js(exc: Exception) -> dict[str, str]:
    """The SDK's ``js.Error.new(str(exc))`` (workers-py rpc.py ``_python_to_rpc_default_converter``);
    a JavaScript ``Error`` itself (``js.Error.new("m")``, a ``JsException`` here) goes as it is,
    with its own message, not its ``str()`` (``"Error: m"``)."""
    if isinstance(exc, JsException) and exc.name == "Error":
        return {_JS_ERROR: exc.message}
    return {_JS_ERROR: str(exc)}


def _error_from_js(message: Any) -> Exception:
    """The SDK's ``Exception(value.toString())`` for a JavaScript ``Error`` (workers-py rpc.py
    ``_python_from_rpc_default_converter``): ``Error: message``, or ``Error`` for an empty message
    (``Error.prototype.toString``)."""
    return Exception(f"Error: {message}" if message else "Error")


def _holds_view(value: Any, seen: set[int]) -> bool:
    if type(value) in _PLAIN:
        return False
    if (
        type(value) is memoryview
        or isinstance(value, (Exception, JsDate, ArrayBuffer, sdk_request(), str, int, float))
        or value is jsnull
    ):
        return True
    if not isinstance(value, (dict, list)) or id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, dict) and any(type(key) not in _PLAIN and isinstance(key, (str, int, float)) for key in value):
        return True  # a key of a str or int subclass
    return any(_holds_view(item, seen) for item in (value.values() if isinstance(value, dict) else value))


def _with_bytes(value: Any, memo: dict[int, Any]) -> Any:
    if type(value) is memoryview:
        return value.tobytes()
    if isinstance(value, ArrayBuffer):  # to_js(data): a Uint8Array, sent and stored as bytes
        return bytes(value)
    if isinstance(value, Exception):
        return _error_to_js(value)
    if isinstance(value, sdk_request()):
        return value.js_object  # the SDK sends a Request's js_object, the JavaScript Request
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)  # Pyodide: a str subclass (a StrEnum) is a JavaScript string
    if isinstance(value, (int, float)) and type(value) not in _PLAIN:
        # An IntEnum: a number. Pyodide reads the number itself, not what ``__int__`` makes of it.
        return float.__float__(value) if isinstance(value, float) else int.__int__(value)
    if value is jsnull:
        return None
    if isinstance(value, JsDate):
        return value.to_py()
    if not isinstance(value, (dict, list)):
        return value
    done = memo.get(id(value))
    if done is not None:
        return done
    if isinstance(value, list):
        items: list[Any] = []
        memo[id(value)] = items
        items.extend(_with_bytes(item, memo) for item in value)
        return items
    converted: dict[Any, Any] = {}
    memo[id(value)] = converted
    for key, item in value.items():
        # A key of a str or int subclass (``{HTTPStatus.OK: ...}``): the plain value, as Pyodide
        # converts keys as it converts values.
        plain = key if type(key) in _PLAIN or not isinstance(key, (str, int, float)) else _with_bytes(key, memo)
        converted[plain] = _with_bytes(item, memo)
    return converted


def check_rpc_value(value: Any) -> None:
    """In strict mode, raise the SDK's ``TypeError`` for values it cannot send over RPC.

    Raises:
        TypeError: ``<class 'tuple'> cannot be sent over RPC.`` (or ``bytearray``; for an
            awaitable, ``Awaitable <class 'coroutine'> cannot be sent over RPC.``), for such a
            value at any depth inside lists, dicts and sets. Nothing is raised outside strict mode.
    """
    if not _strict:
        return
    _check(value, set())


def _check(value: Any, seen: set[int]) -> None:
    if isinstance(value, (tuple, bytearray)):
        raise TypeError(f"{type(value)} cannot be sent over RPC.")
    if inspect.isawaitable(value):
        raise TypeError(f"Awaitable {type(value)} cannot be sent over RPC.")  # workers-py rpc.py's words
    if isinstance(value, (dict, list, set, frozenset)):
        if id(value) in seen:
            return
        seen.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            _check(item, seen)


def python_to_rpc(value: T) -> T:
    """The SDK's conversion before sending: the value itself, after the strict-mode check.

    Raises:
        TypeError: in strict mode, a value the SDK refuses (see :func:`check_rpc_value`).
    """
    check_rpc_value(value)
    converted: T = to_durable(value)
    return converted


def _js_number(value: float) -> str:
    """JavaScript's ``String(value)`` for a number: ``1`` for ``1.0``, ``1e+21``, ``1e-7``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _js_number(-value)
    # repr() gives the shortest digits that round-trip, as JavaScript's Number::toString does.
    _, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)  # a finite number
    point = exponent + len(digit_tuple)  # value = 0.DIGITS x 10**point
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        return digits + "0" * (point - k)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    e = point - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def js_key(key: Any) -> Any:
    """A storage key as workerd receives it from Python Workers code: a number, boolean or ``None``
    becomes its JavaScript string (``1`` -> ``"1"``, ``2.5`` -> ``"2.5"``, ``1.0`` -> ``"1"``,
    ``True`` -> ``"true"``, ``None`` -> ``"null"``), as workerd's storage converts any key with
    ``String(key)``; anything else is returned as it is.
    """
    if type(key) is str:
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _js_number(key)
    return key


class Converted(Generic[T, R]):
    """An awaitable that awaits ``inner`` and returns ``convert(result)``: the SDK's
    ``await_and_convert()`` coroutine (workers-py ``rpc.py``), minus its warning when it is
    never awaited.

    The call behind ``inner`` has already happened when this is made (as a JavaScript promise's
    has), so a write that is never awaited still takes effect, and says nothing (Python Workers
    code often leaves ``setAlarm`` or a fire-and-forget call un-awaited). ``asyncio.create_task()``
    and ``ensure_future()`` take it too: it steps like a coroutine (``send``/``throw``/``close``) and
    is registered as ``collections.abc.Coroutine``, as the SDK's real coroutine is one.
    """

    __slots__ = ("_convert", "_inner", "_steps")

    def __init__(self, inner: Any, convert: Callable[[T], R]) -> None:
        self._inner = inner
        self._convert = convert
        self._steps: Generator[Any, None, R] | None = None

    def __await__(self) -> Generator[Any, None, R]:
        result: T = yield from self._inner.__await__()
        return self._convert(result)

    def send(self, value: Any, /) -> Any:
        """Step it as a task steps a coroutine."""
        if self._steps is None:
            self._steps = self.__await__()
        return self._steps.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        """Raise into it where it waits, as a task does to cancel a coroutine."""
        if self._steps is None:
            self._steps = self.__await__()
        return self._steps.throw(typ if val is None else val)

    def close(self) -> None:
        """Stop stepping it (its call has happened: nothing is undone)."""
        if self._steps is not None:
            self._steps.close()


Coroutine.register(Converted)


def _positional_arity(func: Callable[..., Any]) -> int | None:
    """How many positional arguments ``func`` accepts (``self`` included); ``None``: any number."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def relaxed(
    func: Callable[..., T], convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
) -> Callable[..., T]:
    """Wrap ``func`` (a function defined in a class) so that extra positional arguments are dropped.

    ``convert``, when given, rewrites the arguments (``self`` excluded) before the call.
    """
    arity = _positional_arity(func)

    @functools.wraps(func)
    def call(self: Any, *args: Any) -> T:
        if convert is not None:
            args = convert(args)
        if arity is not None:
            args = args[: max(arity - 1, 0)]
        return func(self, *args)

    call.__durable_relaxed__ = True  # type: ignore[attr-defined]
    return call
