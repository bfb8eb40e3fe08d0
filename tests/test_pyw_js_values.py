"""Leftovers of the Python Workers hunts: ``js.JSON.parse`` with a reviver, ``js.Number`` /
``js.String``, and the SDK's wrapped JavaScript objects (``ctx._ctx``, ``env._env``) that Python
Workers code unwraps with ``getattr(ctx, "_ctx", ctx)``.

Expected values were measured in workerd (miniflare 4.20260426.0, compatibility date 2026-04-07)
with the JavaScript each docstring names; the Python side follows Pyodide's conversions (a
Python function called from JavaScript gets every argument; ``None`` goes to JavaScript as
``undefined``, ``null`` comes back as ``None``)."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def _js() -> Any:
    import js  # type: ignore[import-not-found]

    return js


def _ffi() -> Any:
    from pyodide import ffi  # type: ignore[import-not-found]

    return ffi


class TestJsonParseReviver:
    def test_reviver_is_called_bottom_up_with_three_arguments(self) -> None:
        """``JSON.parse('{"a":1,"b":[1,2,{"c":"x"}],"d":null}', function (k, v, ctx) {...})``
        calls it for a, 0, 1, c, 2, b, d, then "" with ``ctx`` ``{source: "1"}`` for a primitive and
        ``{}`` for an object or array. It was refused: ``JSON.parse()`` took one argument."""
        calls = []

        def revive(key: str, value: Any, context: Any) -> Any:
            calls.append((key, value.to_py() if hasattr(value, "to_py") else value, context.to_py()))
            return value

        result = _js().JSON.parse('{"a":1,"b":[1,2,{"c":"x"}],"d":null}', revive)
        assert calls == [
            ("a", 1, {"source": "1"}),
            ("0", 1, {"source": "1"}),
            ("1", 2, {"source": "2"}),
            ("c", "x", {"source": '"x"'}),
            ("2", {"c": "x"}, {}),
            ("b", [1, 2, {"c": "x"}], {}),
            ("d", None, {"source": "null"}),  # null reaches Python as None ...
            ("", {"a": 1, "b": [1, 2, {"c": "x"}]}, {}),  # ... and None goes back as undefined
        ]
        assert result.b.length == 3 and result.b[2].c == "x"

    def test_undefined_deletes_and_a_hole_stays(self) -> None:
        """``(k, v) => k === "a" ? undefined : v`` gives ``{"b":2}``; in an array the element is a
        hole (``[1,null,3]`` written back, length 3)."""
        parse = _js().JSON.parse
        assert parse('{"a":1,"b":2}', lambda k, v, c: None if k == "a" else v) == {"b": 2}
        assert parse("[1,2,3]", lambda k, v, c: None if k == "1" else v) == [1, None, 3]
        assert parse("5", lambda k, v, c: None) is None
        assert parse('{"a":1}', lambda k, v, c: v * 10 if k == "a" else v) == {"a": 10}

    def test_key_order_source_text_and_numbers(self) -> None:
        """Members come in the object's key order (array indices first); ``context.source`` is the
        text as written (``1.50``, ``"q\\"x"``); numbers are Pyodide's (a safe integer an
        ``int``, ``1e400`` infinity, ``12345678901234567890`` a ``float``)."""
        seen: list[tuple[str, str]] = []

        def revive(key: str, value: Any, context: Any) -> Any:
            seen.append((key, getattr(context, "source", "")))
            return value

        text = '{"b":1,"0":2,"s":"q\\"x","n":1.50,"e":1e400,"big":12345678901234567890}'
        result = _js().JSON.parse(text, revive)
        assert seen == [
            ("0", "2"),
            ("b", "1"),
            ("s", '"q\\"x"'),
            ("n", "1.50"),
            ("e", "1e400"),
            ("big", "12345678901234567890"),
            ("", ""),
        ]
        assert result.n == 1.5 and result.e == math.inf and type(result.big) is float

    def test_a_two_parameter_reviver_fails_as_under_pyodide(self) -> None:
        """Pyodide calls a Python function with every argument JavaScript passes: V8 passes
        three, so ``def revive(key, value)`` raises ``TypeError`` there too."""
        with pytest.raises(TypeError, match="positional argument"):
            _js().JSON.parse('{"a":1}', lambda key, value: value)

    def test_a_reviver_that_is_no_function_is_ignored(self) -> None:
        """``JSON.parse('{"a":1}', 5)`` is ``{a: 1}``; ``JSON.parse(5)`` reads ``String(5)``."""
        js = _js()
        assert js.JSON.parse('{"a":1}', 5) == {"a": 1}
        assert js.JSON.parse(5) == 5 and js.JSON.parse(True) is True

    @pytest.mark.parametrize("text", ["{bad", "", "[1,]", "NaN", None])
    def test_bad_json_is_a_syntax_error(self, text: Any) -> None:
        """workerd raises ``SyntaxError`` (``"[1,]" is not valid JSON``, ``"undefined" is not
        valid JSON``), which Pyodide raises as a ``JsException``; it was only a
        ``json.JSONDecodeError``, which it still is."""
        with pytest.raises(_ffi().JsException) as caught:
            _js().JSON.parse(text)
        assert caught.value.name == "SyntaxError" and str(caught.value).startswith("SyntaxError: ")
        assert isinstance(caught.value, json.JSONDecodeError)


class TestNumberAndString:
    def test_number_converts_as_javascript(self) -> None:
        """``Number("42")`` 42, ``(" 0x1f ")`` 31, ``("")`` 0, ``("abc")`` NaN, ``(null)`` 0,
        ``(undefined)`` NaN, ``(true)`` 1, ``("1_000")`` NaN, ``("-0x10")`` NaN, ``("0b101")`` 5,
        ``(2**53 + 1)`` 9007199254740992. It raised NotImplementedError."""
        js, ffi = _js(), _ffi()
        number = js.Number
        assert [number("42"), number(" 0x1f "), number(""), number(ffi.jsnull), number(True)] == [42, 31, 0, 0, 1]
        assert [number("0b101"), number("0o17"), number(" \n42\t"), number("+5"), number()] == [5, 15, 42, 5, 0]
        for text in ("abc", None, "1_000", "-0x10", "12px"):
            assert math.isnan(number(text))
        assert number("Infinity") == math.inf and number(2**53 + 1) == 2**53 and type(number(2**53 + 1)) is float
        assert type(number("1.0")) is int and number("1.5") == 1.5

    def test_number_statics(self) -> None:
        """``Number.isInteger(5.0)`` true, ``("5")`` false; ``isSafeInteger(2**53)`` false;
        ``Number.isNaN("abc")`` false and ``Number.isFinite("12")`` false (no conversion, unlike
        the globals); the constants; ``Number.parseFloat === parseFloat``."""
        js = _js()
        number = js.Number
        assert [number.isInteger(5), number.isInteger(5.0), number.isInteger(5.5), number.isInteger("5")] == [
            True,
            True,
            False,
            False,
        ]
        assert not number.isSafeInteger(2**53) and number.isSafeInteger(2**53 - 1)
        assert number.isNaN(math.nan) and not number.isNaN("abc") and js.isNaN("abc")
        assert not number.isFinite("12") and number.isFinite(12) and js.isFinite("12")
        assert (number.MAX_SAFE_INTEGER, number.MIN_SAFE_INTEGER) == (2**53 - 1, -(2**53 - 1))
        assert (number.EPSILON, number.MAX_VALUE, number.MIN_VALUE) == (
            2.220446049250313e-16,
            1.7976931348623157e308,
            5e-324,
        )
        assert number.parseFloat("3.5px") == 3.5 and number.parseInt("0x1f") == 31

    def test_string_converts_as_javascript(self) -> None:
        """``String(5)`` "5", ``(1.0)`` "1", ``(null)`` "null", ``(undefined)`` "undefined",
        ``(true)`` "true", ``(1e21)`` "1e+21", ``(-0)`` "0", ``(NaN)`` "NaN", ``([1,2])`` "1,2",
        ``({})`` "[object Object]"; a Python list is a ``PyProxy`` there, whose ``String()`` is
        ``str()``."""
        js, ffi = _js(), _ffi()
        string = js.String
        assert [string(5), string(1.0), string(1.5), string(ffi.jsnull), string(None), string(True)] == [
            "5",
            "1",
            "1.5",
            "null",
            "undefined",
            "true",
        ]
        assert [string(1e21), string(-0.0), string(math.nan), string(123456789012345680000)] == [
            "1e+21",
            "0",
            "NaN",
            "123456789012345680000",
        ]
        assert string(js.JSON.parse("[1,null,2]")) == "1,,2" and string(js.JSON.parse("{}")) == "[object Object]"
        assert string([1, 2]) == "[1, 2]" and string() == ""

    def test_string_statics(self) -> None:
        """``String.fromCharCode(72, 105)`` "Hi", ``(0x1F600)`` "\\uf600" (16 bits), ``(65.7)`` "A";
        ``fromCodePoint(0x1F600)`` the emoji, ``(-1)`` / ``(1.5)`` ``RangeError: Invalid code point``;
        ``String.raw({raw: ["a", "b"]}, 1)`` "a1b"."""
        js, ffi = _js(), _ffi()
        string = js.String
        assert (string.fromCharCode(72, 105), string.fromCharCode(0x1F600), string.fromCharCode(65.7)) == (
            "Hi",
            "\uf600",
            "A",
        )
        assert string.fromCharCode(0xD83D, 0xDE00) == "\U0001f600" and string.fromCodePoint(0x1F600) == "\U0001f600"
        for point, shown in ((-1, "-1"), (1.5, "1.5")):
            with pytest.raises(ffi.JsException, match=f"^RangeError: Invalid code point {shown}$"):
                string.fromCodePoint(point)
        assert string.raw({"raw": ["a", "b"]}, 1) == "a1b"

    def test_wrapper_objects_are_refused_clearly(self) -> None:
        """``new Number(5)`` / ``new String("x")`` (wrapper objects) are not emulated."""
        js = _js()
        for name in ("Number", "String"):
            with pytest.raises(NotImplementedError, match=f"js.{name}.new"):
                getattr(js, name).new(5)


class Unwrapping(sdk.DurableObject):
    """Code that unwraps the SDK's wrappers to reach workerd's objects as Pyodide proxies them."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.raw = getattr(ctx, "_ctx", ctx)
        self.raw_env = getattr(env, "_env", env)

    async def store(self) -> None:
        from js import Object
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        await self.raw.storage.put("user:1", to_js({"name": "ada", "tags": ["a"]}, dict_converter=Object.fromEntries))
        await self.raw.storage.put("user:2", to_js({"name": "bob", "tags": []}, dict_converter=Object.fromEntries))

    async def read(self) -> Any:
        from js import Object
        from pyodide.ffi import to_js

        raw = self.raw
        one = await raw.storage.get("user:1")
        listed = await raw.storage.list(to_js({"prefix": "user:"}, dict_converter=Object.fromEntries))
        some = await raw.storage.get(["user:1", "user:2"])
        return {
            "name": one.name,
            "tags": one.tags.length,
            "one": one.to_py(),
            "size": listed.size,
            "keys": list(listed),
            "listed": listed.to_py(),
            "has": some.has("user:2"),
            "some": [name for name, _ in some.entries()],
            "id": raw.id.toString() == self.ctx.id.toString(),
            "rows": raw.storage.sql.exec("SELECT 1 AS x").toArray().to_py(),
        }

    async def shapes(self) -> Any:
        from workers.entrypoints import DurableObjectContext  # type: ignore[import-not-found]
        from workers.rpc import _EnvWrapper  # type: ignore[import-not-found]

        raw, raw_env = self.raw, self.raw_env
        return {
            "ctx_wrapped": isinstance(raw, DurableObjectContext),
            "env_wrapped": isinstance(raw_env, _EnvWrapper),
            "no_ctx": getattr(raw, "_ctx", raw) is raw,
            "no_env": getattr(raw_env, "_env", None) is None,
            "rewrap": DurableObjectContext(raw) is self.ctx and _EnvWrapper(raw_env) is self.env,
            "binding": await raw_env.UNWRAP.get(raw_env.UNWRAP.idFromName("other")).echo(5),
        }

    async def echo(self, value: Any) -> Any:
        return value


class TestUnwrappedContext:
    async def test_ctx_underscore_ctx_is_workerds_state_as_pyodide_proxies_it(self) -> None:
        """The SDK's ``DurableObjectContext`` keeps workerd's ``DurableObjectState`` in ``_ctx``;
        through it ``storage.get`` gives an object (attribute access, ``to_py()``), ``list()`` and
        ``get([keys])`` a ``Map`` (``size``, ``has``, ``entries()``, ``to_py()``). It was
        ``durable.State``: ``get`` gave a plain dict (no ``.name``) and ``list({...})`` raised
        ``TypeError``."""
        async with durable.Runtime() as runtime:
            runtime.namespace(Unwrapping, name="UNWRAP")
            pw.serving(runtime)
            stub = sdk.env.UNWRAP.getByName("a")
            await stub.store()
            result = await stub.read()
        assert result.to_py() == {
            "name": "ada",
            "tags": 1,
            "one": {"name": "ada", "tags": ["a"]},
            "size": 2,
            "keys": ["user:1", "user:2"],
            "listed": {"user:1": {"name": "ada", "tags": ["a"]}, "user:2": {"name": "bob", "tags": []}},
            "has": True,
            "some": ["user:1", "user:2"],
            "id": True,
            "rows": [{"x": 1}],
        }

    async def test_unwrapped_objects_are_not_the_wrappers(self) -> None:
        """As workers-py's own inheritance test asserts: ``ctx._ctx`` is no
        ``DurableObjectContext`` (and has no ``_ctx``), ``env._env`` no ``_EnvWrapper``; wrapping
        them again gives the wrapper back; bindings are reachable through ``env._env``."""
        async with durable.Runtime() as runtime:
            runtime.namespace(Unwrapping, name="UNWRAP")
            pw.serving(runtime)
            result = await sdk.env.UNWRAP.getByName("a").shapes()
        assert result.to_py() == {
            "ctx_wrapped": False,
            "env_wrapped": False,
            "no_ctx": True,
            "no_env": True,
            "rewrap": True,
            "binding": 5,
        }


class TestConstructorErrors:
    """workers-py's ``Response.__init__`` and ``Request.__init__`` call ``js.Response.new`` /
    ``js.Request.new`` without converting their errors (only ``from_json``, ``redirect`` and
    ``form_data`` go through ``_to_python_exception``), so workerd's ``RangeError`` / ``TypeError``
    reach Python as ``pyodide.ffi.JsException``. They were plain ``ValueError`` / ``TypeError``,
    which they remain too. Messages measured in workerd (miniflare 4.20260426.0)."""

    @pytest.mark.parametrize(
        ("build", "name", "message"),
        [
            (
                lambda: sdk.Response("x", status=99),
                "RangeError",
                "Responses may only be constructed with status codes in the range 200 to 599, inclusive.",
            ),
            (
                lambda: sdk.Response("x", status=204),
                "TypeError",
                "Response with null body status (101, 204, 205, or 304) cannot have a body.",
            ),
            (lambda: sdk.Response("x", status_text="a\nb"), "TypeError", "Invalid statusText"),
            (
                lambda: sdk.Request("https://example.com/", body="x"),
                "TypeError",
                "Request with a GET or HEAD method cannot have a body.",
            ),
            (lambda: sdk.Request("/x"), "TypeError", "Invalid URL: /x"),
        ],
    )
    def test_javascript_errors(self, build: Any, name: str, message: str) -> None:
        with pytest.raises(_ffi().JsException) as caught:
            build()
        assert (caught.value.name, caught.value.message) == (name, message)
        assert isinstance(caught.value, ValueError if name == "RangeError" else TypeError)

    def test_the_sdks_own_errors_stay_python_ones(self) -> None:
        """``Unsupported type in Response: dict`` is the SDK's ``TypeError``; ``Response.redirect``
        converts workerd's ``RangeError`` to ``ValueError`` (``_to_python_exception``)."""
        with pytest.raises(TypeError) as caught:
            sdk.Response({"a": 1})
        assert not isinstance(caught.value, _ffi().JsException)
        with pytest.raises(ValueError) as redirect:
            sdk.Response.redirect("https://example.com/", 200)
        assert not isinstance(redirect.value, _ffi().JsException)

    def test_status_zero_is_the_default(self) -> None:
        """The SDK sends a status only ``if status:``, so ``status=0`` makes workerd's default 200;
        it raised ``ValueError``."""
        assert sdk.Response("x", status=0).status == 200


class Keywords(sdk.DurableObject):
    async def seen(self, *args: Any, **kwargs: Any) -> Any:
        return (
            [type(arg).__name__ for arg in args],
            [arg.to_py() if hasattr(arg, "to_py") else arg for arg in args],
            kwargs,
        )

    async def strict(self, a: Any, *, b: Any = None) -> Any:
        return a, b


class TestRpcKeywordArguments:
    async def test_keywords_arrive_as_one_trailing_object(self) -> None:
        """The SDK's stub calls ``fn(*js_args, **js_kwargs)`` on workerd's RPC stub, and Pyodide
        passes a JavaScript function's keyword arguments as one object after the positional ones
        (``JsProxy.__call__``), so ``await stub.seen(1, b=2)`` runs ``seen(1, {"b": 2})`` (the object
        converted by ``python_from_rpc``: a ``JsDict``). They arrived as keyword arguments."""
        async with durable.Runtime() as runtime:
            runtime.namespace(Keywords, name="KW")
            pw.serving(runtime)
            stub = sdk.env.KW.getByName("a")
            assert list(await stub.seen(1, b=2)) == [
                ["int", "JsDict"],
                [1, {"b": 2}],
                {},
            ]
            assert list(await stub.seen(1, 2)) == [["int", "int"], [1, 2], {}]
            with pytest.raises(TypeError, match="positional argument"):
                await stub.strict(1, b=2)  # strict(1, {"b": 2}): b is keyword-only


class Dates(sdk.DurableObject):
    async def echo(self, value: Any) -> Any:
        return value

    async def stored(self, value: Any) -> Any:
        await self.ctx.storage.put("when", value)
        return await self.ctx.storage.get("when")


class TestDatetimes:
    async def test_a_datetime_comes_back_as_the_sdk_reads_a_date(self) -> None:
        """workers-py sends a ``datetime`` as ``js.Date.new(dt.timestamp() * 1000)`` and reads a
        ``Date`` as ``datetime.fromtimestamp(ms / 1000)``: naive local time, to the millisecond,
        over RPC and from storage, at any depth. It came back as it was sent (aware, microseconds)."""
        aware = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        expected = datetime.datetime.fromtimestamp(int(aware.timestamp() * 1000) / 1000)
        async with durable.Runtime() as runtime:
            runtime.namespace(Dates, name="DATES")
            pw.serving(runtime)
            stub = sdk.env.DATES.getByName("a")
            assert await stub.echo(aware) == expected and (await stub.echo(aware)).tzinfo is None
            assert await stub.stored(aware) == expected
            assert (await stub.echo({"at": [aware]})).at[0] == expected
            naive = datetime.datetime(2024, 1, 2, 3, 4, 5, 999999)
            assert await stub.echo(naive) == naive.replace(microsecond=999000)
