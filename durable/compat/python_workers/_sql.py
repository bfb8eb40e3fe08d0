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
the cursor's class is ``Cursor``, which has no ``length``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._convert import JsDict, to_durable
from .pyodide.ffi import JsException

__all__ = ["SqlAdapter", "SqlCursorAdapter", "sql_binding", "sql_value"]

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
        for row in self._cursor:
            yield _row(row)

    def __len__(self) -> int:
        raise TypeError("'Cursor' object has no len()")  # workers-py rpc.py _BindingWrapper.__len__

    def __bool__(self) -> bool:
        return True

    def toArray(self) -> list[JsDict]:
        """Every remaining row."""
        return [_row(row) for row in self._cursor.to_array()]

    def one(self) -> JsDict:
        """The one row of the result (workerd's error when there are none or several)."""
        return _row(self._cursor.one())

    def next(self) -> JsDict:
        """JavaScript's ``cursor.next()``: ``{"done": False, "value": row}``, then
        ``{"done": True, "value": None}``."""
        for row in self._cursor:
            return _step(_row(row))
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
        for values in self._raw:
            yield _raw_row(values)

    def __len__(self) -> int:
        raise TypeError("'RawIterator' object has no len()")

    def __bool__(self) -> bool:
        return True

    def toArray(self) -> list[list[Any]]:
        """Every remaining row, as lists of values."""
        return [_raw_row(values) for values in self._raw.to_array()]

    def next(self) -> JsDict:
        """JavaScript's ``next()``: ``{"done": False, "value": [...]}``, then ``{"done": True, "value": None}``."""
        for values in self._raw:
            return _step(_raw_row(values))
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
        """Run ``query`` with ``bindings``."""
        return SqlCursorAdapter(self._target.exec(query, *map(sql_binding, bindings)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
