"""``ctx.storage.sql`` as Python Workers code sees it through Cloudflare's SDK and Pyodide.

Sources: workers-py ``packages/runtime-sdk/src/workers/rpc.py`` (``_BindingWrapper``: the storage,
its ``sql`` and every cursor are wrapped, each call's arguments go through ``python_to_rpc`` and
its result through ``python_from_rpc``), Pyodide's type conversions (a Python ``int`` within
2**53 becomes a JavaScript number, a number that ``Number.isSafeInteger()`` comes back as an
``int``, any other as a ``float``, a JavaScript object's ``to_py()`` is a ``dict``, an
``ArrayBuffer`` a ``memoryview``: workers-py ``tests/workerd-test/python-rpc/worker.py``), and
workerd's ``SqlStorage``, which binds every JavaScript number as ``REAL``.

Measured in workerd (miniflare 4, compatibility date 2026-04-07): ``SELECT ? / 2`` with ``5`` is
``2.5``, ``typeof(?)`` of ``1`` is ``real``, ``5`` inserted into a ``TEXT`` column reads ``"5.0"``;
``cursor.next()`` gives ``{done: false, value: row}`` then ``{done: true, value: undefined}``;
the cursor's class is ``Cursor``, which has no ``length``. A refused statement throws a plain
``Error`` (``name`` ``"Error"``, the message SQLite's, as `durable`'s :class:`durable.SqlError`
gives it), which Pyodide raises as ``pyodide.ffi.JsException``: here a :class:`SqlJsException`,
both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import durable

from ._convert import JsDict, JsList, to_durable
from .pyodide.ffi import JsException

__all__ = ["SqlAdapter", "SqlCursorAdapter", "SqlJsException", "sql_binding", "sql_value"]

_T = TypeVar("_T")


class SqlJsException(JsException, durable.SqlError):
    """A statement SQLite refused, as Python Workers code catches it: workerd throws an ``Error``
    and Pyodide raises it as ``pyodide.ffi.JsException`` (``except JsException:``, ``name``
    ``"Error"``, ``str()`` ``"Error: <message>"``); it is a :class:`durable.SqlError` too, with
    its ``code``."""

    def __init__(self, name: str = "", message: str | None = None, *, code: str | None = None) -> None:
        JsException.__init__(self, name, message)
        self.code = code


def _sql_call(call: Callable[[], _T]) -> _T:
    """``call()``, a :class:`durable.SqlError` it raises raised as a :class:`SqlJsException`."""
    try:
        return call()
    except SqlJsException:
        raise
    except durable.SqlError as exc:
        raise SqlJsException("Error", str(exc), code=exc.code) from None


_MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER


def sql_binding(value: Any) -> Any:
    """A parameter of ``sql.exec`` as workerd receives it from Python Workers code.

    ``True`` / ``False`` are JavaScript booleans, which workerd binds as the text ``'true'`` /
    ``'false'``; an ``int`` is a JavaScript number, bound as ``REAL`` (``5`` binds as ``5.0``);
    an ``int`` beyond 2**53 is a ``BigInt``, refused with workerd's ``TypeError``; ``js.undefined``
    (``None``) and ``jsnull`` bind as ``NULL``; a ``memoryview`` is a ``Uint8Array`` (a ``BLOB``).
    """
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**53) <= value <= 2**53:
            raise JsException("TypeError", "Cannot convert a BigInt value to a number")
        return float(value)
    return to_durable(value)


def sql_value(value: Any) -> Any:
    """A value of a result row as Python Workers code reads it: a ``BLOB`` (an ``ArrayBuffer``)
    is a ``memoryview``; a number (every SQL number is a JavaScript number) is an ``int`` when it
    is a safe integer (``REAL`` ``2.0`` reads ``2``), else a ``float`` (``INTEGER`` 2**60 reads
    ``1.152921504606847e+18``, as workerd gives it as a double)."""
    kind = type(value)
    if kind is float:
        if value.is_integer() and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return int(value)
        return value
    if kind is int:
        return value if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER else float(value)
    if kind is bytes:
        return memoryview(value)
    return value


def _row(row: Any) -> JsDict:
    """A row as the SDK gives it: ``python_from_rpc`` of a JavaScript object, a ``JsDict``."""
    converted = JsDict()
    for name, value in row.items():
        dict.__setitem__(converted, name, sql_value(value))
    return converted


def _raw_row(values: Any) -> list[Any]:
    return [sql_value(value) for value in values]


_END: Any = object()


def _done() -> JsDict:
    done = JsDict()
    dict.update(done, {"done": True, "value": None})  # value: undefined, which Pyodide gives as None
    return done


def _step(value: Any) -> JsDict:
    step = JsDict()
    dict.update(step, {"done": False, "value": value})
    return step


class SqlCursorAdapter:
    """What ``sql.exec()`` returns to Python Workers code: the SDK's wrapper over workerd's
    ``Cursor``.

    Rows (``for row in cursor``, ``toArray()``, ``one()``) are ``JsDict``s (``row["id"]``,
    ``row.id``) with values as :func:`sql_value` gives them; ``raw()`` gives lists;
    ``next()`` is JavaScript's iterator step, a ``JsDict`` with ``done`` and ``value``;
    ``columnNames``, ``rowsRead``, ``rowsWritten`` pass through. ``len(cursor)`` raises the
    SDK's ``TypeError`` (a cursor has no ``length``).
    """

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def __repr__(self) -> str:
        return f"<workers Cursor {self._cursor!r}>"

    def __iter__(self) -> Iterator[JsDict]:
        rows = iter(self._cursor)
        while (row := _sql_call(lambda: next(rows, _END))) is not _END:
            yield _row(row)

    def __len__(self) -> int:
        raise TypeError("'Cursor' object has no len()")  # workers-py rpc.py _BindingWrapper.__len__

    def __bool__(self) -> bool:
        return True

    def toArray(self) -> JsList:
        """Every remaining row, in an array (a list with ``to_py()`` and ``length``: code reading
        workerd's cursor itself, as a class without an ``__init__`` of its own gets it from the
        SDK, writes ``cursor.toArray().to_py()``)."""
        return JsList(_row(row) for row in _sql_call(self._cursor.to_array))

    def one(self) -> JsDict:
        """The one row of the result (workerd's error when there are none or several)."""
        return _row(_sql_call(self._cursor.one))

    def next(self) -> JsDict:
        """JavaScript's ``cursor.next()``: ``{"done": False, "value": row}``, then
        ``{"done": True, "value": None}``."""
        for row in self:
            return _step(row)
        return _done()

    def raw(self) -> SqlRawIteratorAdapter:
        """The remaining rows as lists of values."""
        return SqlRawIteratorAdapter(self._cursor.raw())

    to_array = toArray

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._cursor, name)


class SqlRawIteratorAdapter:
    """``cursor.raw()`` through the SDK: iteration gives lists of values (converted as
    :func:`sql_value`), ``toArray()`` all of them, ``next()`` JavaScript's iterator step."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[list[Any]]:
        rows = iter(self._raw)
        while (values := _sql_call(lambda: next(rows, _END))) is not _END:
            yield _raw_row(values)

    def __len__(self) -> int:
        raise TypeError("'RawIterator' object has no len()")

    def __bool__(self) -> bool:
        return True

    def toArray(self) -> JsList:
        """Every remaining row, as arrays of values, in an array (lists with ``to_py()`` and
        ``length``: ``cursor.raw().toArray().to_py()``, as django-cf's Durable Objects backend reads
        them)."""
        return JsList(JsList(_raw_row(values)) for values in _sql_call(self._raw.to_array))

    def next(self) -> JsDict:
        """JavaScript's ``next()``: ``{"done": False, "value": [...]}``, then ``{"done": True, "value": None}``."""
        for values in self:
            return _step(values)
        return _done()

    to_array = toArray


class SqlAdapter:
    """``storage.sql`` with the SDK's conversions: ``exec(query, *bindings)`` binds parameters as
    :func:`sql_binding` says and returns a :class:`SqlCursorAdapter`. ``databaseSize`` and the
    rest pass through to :class:`durable.SqlStorage`."""

    __slots__ = ("_target",)

    def __init__(self, sql: Any) -> None:
        self._target = sql

    def exec(self, query: str, *bindings: Any) -> SqlCursorAdapter:
        """Run ``query`` with ``bindings`` (a statement SQLite refuses raises :class:`SqlJsException`)."""
        values = [sql_binding(value) for value in bindings]
        return SqlCursorAdapter(_sql_call(lambda: self._target.exec(query, *values)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
