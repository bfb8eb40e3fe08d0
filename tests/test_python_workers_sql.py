"""SQL values, JavaScript errors and small JavaScript values as Python Workers code sees them.

Each rule comes from Cloudflare's SDK (cloudflare/workers-py ``packages/runtime-sdk/src/workers/
rpc.py``: storage, ``sql`` and cursors are ``_BindingWrapper``s converting results with
``python_from_rpc``) or was measured in workerd (miniflare 4, compatibility date 2026-04-07); the
test says which.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk
from durable.compat.python_workers.pyodide import ffi

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def env_of(runtime: durable.Runtime) -> Any:
    pw.serving(runtime)
    return sdk.env


class Sql(sdk.DurableObject):
    async def numbers(self) -> Any:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE t (a TEXT, b, c INTEGER)")
        sql.exec("INSERT INTO t VALUES (?, ?, ?)", 5, 5, 5)
        row = sql.exec("SELECT ? / 2 AS half, typeof(?) AS t, CAST(? AS TEXT) AS s", 5, 1, 5).one()
        stored = sql.exec("SELECT a, typeof(a) AS ta, b, typeof(b) AS tb, c, typeof(c) AS tc FROM t").one()
        return [dict(row), dict(stored)]

    async def kinds(self) -> Any:
        row = self.ctx.storage.sql.exec(
            "SELECT 2.0 AS whole, 2.5 AS half, 1152921504606846976 AS big, 9007199254740993 AS past, x'0102' AS blob"
        ).one()
        return [[type(v).__name__ for v in row.values()], row.whole, row.big, row.past, bytes(row.blob)]

    async def rows(self) -> Any:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT)")
        for i in (1, 2, 3):
            sql.exec("INSERT INTO r VALUES (?, ?)", i, f"v{i}")
        out: dict[str, Any] = {}
        out["array"] = [[type(r).__name__, r["id"], r.v] for r in sql.exec("SELECT * FROM r").toArray()]
        out["iter"] = [type(r).__name__ for r in sql.exec("SELECT * FROM r")]
        out["one"] = sql.exec("SELECT * FROM r WHERE id = ?", 2).one().to_py()
        cursor = sql.exec("SELECT id FROM r ORDER BY id")
        out["next"] = [cursor.next(), cursor.next(), list(cursor), cursor.next()]
        raw = sql.exec("SELECT id, v FROM r ORDER BY id").raw()
        out["raw"] = [raw.next(), raw.toArray(), raw.next()]
        with pytest.raises(TypeError, match="'Cursor' object has no len()"):
            len(sql.exec("SELECT 1"))
        out["columns"] = list(sql.exec("SELECT id, v FROM r").columnNames)
        return out

    async def nulls(self) -> Any:
        from js import undefined  # type: ignore[import-not-found]

        row = self.ctx.storage.sql.exec("SELECT ? AS a, typeof(?) AS b", undefined, ffi.jsnull).one()
        return [row.a, row.b]


class TestSqlValues:
    async def test_an_int_binds_as_real(self, durable_runtime: durable.Runtime) -> None:
        """Pyodide sends a Python ``int`` as a JavaScript number, and workerd binds every number as
        ``REAL`` (measured: ``SELECT ? / 2`` with ``5`` is ``2.5``, ``typeof(?)`` of ``1`` is
        ``real``, ``CAST(5 AS TEXT)`` is ``'5.0'``, ``5`` into a ``TEXT`` column reads ``"5.0"``, into
        a column without type stays ``real``, into an ``INTEGER`` column becomes ``integer``)."""
        durable_runtime.namespace(Sql, name="SQL")
        half, stored = await env_of(durable_runtime).SQL.getByName("a").numbers()
        assert half == {"half": 2.5, "t": "real", "s": "5.0"}
        assert stored == {"a": "5.0", "ta": "text", "b": 5, "tb": "real", "c": 5, "tc": "integer"}

    async def test_values_read_as_pyodide_converts_them(self, durable_runtime: durable.Runtime) -> None:
        """workerd gives every SQL number as a JavaScript number (measured: ``SELECT
        1152921504606846976`` is ``1152921504606847000``, ``9007199254740993`` is
        ``9007199254740992``) and a ``BLOB`` as an ``ArrayBuffer``; Pyodide gives a safe integer as
        an ``int``, any other number as a ``float``, an ``ArrayBuffer`` as a ``memoryview``
        (workers-py ``tests/workerd-test/python-rpc/worker.py``)."""
        durable_runtime.namespace(Sql, name="SQL")
        kinds, whole, big, past, blob = await env_of(durable_runtime).SQL.getByName("a").kinds()
        assert kinds == ["int", "float", "float", "float", "memoryview"]
        assert (whole, big, past, blob) == (2, float(2**60), float(2**53), b"\x01\x02")

    async def test_rows_are_jsdicts_and_the_cursor_is_the_sdks(self, durable_runtime: durable.Runtime) -> None:
        """Rows go through ``python_from_rpc``: ``JsDict`` (item and attribute access);
        ``cursor.next()`` is JavaScript's iterator step (measured: ``{done: false, value: {a: 1}}``
        then ``{done: true}`` with ``value`` undefined, which Pyodide gives as ``None``); a cursor
        has no ``length``, so the SDK's ``len()`` raises ``TypeError("'Cursor' object has no
        len()")`` (rpc.py ``_BindingWrapper.__len__``; measured: the class is ``Cursor``)."""
        durable_runtime.namespace(Sql, name="SQL")
        out = await env_of(durable_runtime).SQL.getByName("a").rows()
        assert out["array"] == [["JsDict", 1, "v1"], ["JsDict", 2, "v2"], ["JsDict", 3, "v3"]]
        assert out["iter"] == ["JsDict"] * 3
        assert out["one"] == {"id": 2, "v": "v2"}
        assert out["next"] == [
            {"done": False, "value": {"id": 1}},
            {"done": False, "value": {"id": 2}},
            [{"id": 3}],
            {"done": True, "value": None},
        ]
        assert out["raw"] == [
            {"done": False, "value": [1, "v1"]},
            [[2, "v2"], [3, "v3"]],
            {"done": True, "value": None},
        ]
        assert out["columns"] == ["id", "v"]

    async def test_undefined_and_jsnull_bind_as_null(self, durable_runtime: durable.Runtime) -> None:
        """``js.undefined`` is ``None`` in Pyodide, ``pyodide.ffi.jsnull`` is ``null``; workerd binds
        both as ``NULL`` (measured: ``typeof(?)`` of ``undefined`` and ``null`` is ``null``)."""
        durable_runtime.namespace(Sql, name="SQL")
        assert await env_of(durable_runtime).SQL.getByName("a").nulls() == [None, "null"]


class Errors(sdk.DurableObject):
    async def give(self, message: str) -> Any:
        return {"err": ValueError(message), "list": [KeyError("k")]}

    async def take(self, value: Any) -> Any:
        return [type(value).__name__, str(value)]

    async def store(self) -> Any:
        await self.ctx.storage.put("e", RuntimeError("boom"))
        self.ctx.storage.kv.put("k", Exception())
        got = await self.ctx.storage.get("e")
        return [type(got).__name__, str(got), str(self.ctx.storage.kv.get("k"))]


class TestErrorsAsValues:
    async def test_an_exception_crosses_rpc_as_a_javascript_error(self, durable_runtime: durable.Runtime) -> None:
        """The SDK sends an ``Exception`` as ``js.Error.new(str(exc))`` and gives a JavaScript
        ``Error`` back as ``Exception(error.toString())`` (workers-py rpc.py
        ``_python_to_rpc_default_converter`` / ``_python_from_rpc_default_converter``), so the class
        is lost and the text is ``"Error: message"`` (``"Error"`` when the message is empty)."""
        durable_runtime.namespace(Errors, name="ERR")
        stub = env_of(durable_runtime).ERR.getByName("a")
        got = await stub.give("bad")
        assert type(got["err"]) is Exception and str(got["err"]) == "Error: bad"
        assert str(got.list[0]) == "Error: 'k'"
        assert await stub.take(ValueError("x")) == ["Exception", "Error: x"]
        assert await stub.take(ValueError()) == ["Exception", "Error"]

    async def test_an_exception_can_be_stored(self, durable_runtime: durable.Runtime) -> None:
        """workerd stores an ``Error`` (measured: ``put("e", new Error("boom"))`` then ``get``
        gives an ``Error``, ``String(e)`` ``"Error: boom"``; ``storage.kv`` too)."""
        durable_runtime.namespace(Errors, name="ERR")
        assert await env_of(durable_runtime).ERR.getByName("a").store() == ["Exception", "Error: boom", "Error"]


class Dates(sdk.DurableObject):
    async def make(self) -> Any:
        import js

        date = js.Date.new(1_700_000_000_123)
        await self.ctx.storage.put("d", date)
        return [date.getTime(), date.toISOString(), await self.ctx.storage.get("d"), js.Date.new().getTime()]


class TestJsValues:
    async def test_js_date_new(self, durable_runtime: durable.Runtime) -> None:
        """``js.Date.new(ms)`` is a JavaScript ``Date``; the SDK gives a stored or received ``Date``
        back as ``datetime.fromtimestamp(ms / 1000)`` (workers-py rpc.py)."""
        durable_runtime.namespace(Dates, name="D")
        ms, iso, stored, now = await env_of(durable_runtime).D.getByName("a").make()
        assert (ms, iso) == (1_700_000_000_123, "2023-11-14T22:13:20.123Z")
        assert stored == datetime.datetime.fromtimestamp(1_700_000_000.123)
        assert isinstance(now, int) and now > 1_700_000_000_000

    def test_js_date_new_with_a_lenient_string_is_not_emulated(self) -> None:
        """ISO 8601 and RFC 2822 parse (tests/test_python_workers_realworld.py); V8's other formats do not."""
        import js

        with pytest.raises(NotImplementedError, match="js.Date cannot parse 'January 1st'"):
            js.Date.new("January 1st")

    def test_undefined_and_jsnull(self) -> None:
        """Pyodide converts ``undefined`` to ``None``; ``jsnull`` is falsy and becomes ``None``
        through ``python_from_rpc``'s counterpart (the SDK sends ``None`` as ``jsnull``)."""
        import js

        assert js.undefined is None
        assert not ffi.jsnull and isinstance(ffi.jsnull, ffi.JsProxy)
        assert sdk.python_to_rpc({"a": ffi.jsnull}) == {"a": None}
