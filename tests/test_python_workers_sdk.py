"""Python Workers code in the style of Cloudflare's docs and of the SDK's own tests
(cloudflare/workers-py ``packages/runtime-sdk``, cloudflare-docs ``workers/languages/python`` and
the Python tabs of ``durable-objects/examples``), run unmodified on durable.

Each divergence fixed here was measured in workerd (miniflare 4, compatibility date 2026-04-07)
or read in the SDK's source; the test says which.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")  # installed for every test, then uninstalled


def env_of(runtime: durable.Runtime) -> Any:
    """``runtime.env`` as Python Workers code sees it (``workers.env``)."""
    pw.serving(runtime)
    return sdk.env


# ---------------------------------------------------------------------------------------------
# Storage keys: workerd reads every key as String(key)


class TestStorageKeys:
    async def test_docs_batcher_stores_under_an_int_key(self, durable_runtime: durable.Runtime) -> None:
        """The Python tab of cloudflare-docs ``durable-objects/examples/alarms-api`` stores each
        request under ``self.count`` (an int): ``await self.storage.put(self.count, text)``.

        The SDK sends the int as a JavaScript number and workerd's storage takes any key as
        ``String(key)`` (measured, miniflare 4, 2026-04-07: ``put(1, "x")`` then ``list()`` gives
        key ``"1"``, and ``get("1")`` finds it).
        """

        class Batcher(sdk.DurableObject):
            def __init__(self, ctx: Any, env: Any) -> None:
                super().__init__(ctx, env)
                self.storage = ctx.storage
                self.count = 0

            async def fetch(self, request: Any) -> Any:
                self.count += 1
                await self.storage.put(self.count, await request.text())
                return sdk.Response.json({"queued": self.count})

            async def batch(self) -> Any:
                return await self.storage.list()

        durable_runtime.namespace(Batcher, name="BATCHER")
        stub = env_of(durable_runtime).BATCHER.getByName("foo")
        for body in ("a", "b"):
            await stub.fetch("https://w/", method="POST", body=body)
        assert await stub.batch() == {"1": "a", "2": "b"}

    async def test_numbers_booleans_and_none_become_javascript_strings(self, durable_runtime: durable.Runtime) -> None:
        """Keys as workerd writes them (measured, miniflare 4, 2026-04-07: the keys of
        ``put(k, 1)`` for ``1e21, 0.1+0.2, -0, NaN, Infinity, -Infinity, 1e-7, 2**53+2, 1.5e300,
        5e-324`` are ``"1e+21"``, ``"0.30000000000000004"``, ``"0"``, ``"NaN"``, ``"Infinity"``,
        ``"-Infinity"``, ``"1e-7"``, ``"9007199254740994"``, ``"1.5e+300"``, ``"5e-324"``;
        ``true`` is ``"true"``, ``null`` is ``"null"``). A Python ``1.0`` is the number 1."""

        class Keys(sdk.DurableObject):
            async def keys(self, values: list[Any]) -> Any:
                for value in values:
                    await self.ctx.storage.put(value, 1)
                return sorted(await self.ctx.storage.list())

        durable_runtime.namespace(Keys, name="KEYS")
        stub = env_of(durable_runtime).KEYS.getByName("a")
        values: list[Any] = [1e21, 0.1 + 0.2, -0.0, float("nan"), float("inf"), float("-inf"), 1e-7, float(2**53 + 2)]
        values += [1.5e300, 5e-324, 1.0, 2.5, 1e-6, 7, True, False, None]
        assert await stub.keys(values) == sorted(
            [
                "1e+21", "0.30000000000000004", "0", "NaN", "Infinity", "-Infinity", "1e-7",
                "9007199254740994", "1.5e+300", "5e-324", "1", "2.5", "0.000001", "7", "true", "false", "null",
            ]
        )  # fmt: skip

    async def test_every_key_taking_call_converts(self, durable_runtime: durable.Runtime) -> None:
        """get / get([...]) / delete / delete([...]) / put({...}) / list's start, startAfter, end,
        prefix / a transaction's calls / storage.kv: each reads a number key as its string
        (measured, miniflare 4, 2026-04-07: ``list({start: 2})`` over keys 1, 2, 3, 10 gives
        ``2, 3``; ``list({prefix: 1})`` gives ``1, 10``; ``list({startAfter: 1, end: 3})`` gives
        ``10, 2``; ``get([1, true])`` finds ``"1"`` and ``"true"``; ``delete([1, null])`` counts
        2; ``kv.put(5, 1)``, ``kv.get(5)``, ``kv.delete(5)`` give ``1``, ``true``)."""

        class Keys(sdk.DurableObject):
            async def run(self) -> Any:
                storage = self.ctx.storage
                await storage.put({1: 1, 2: 2, 3: 3, 10: 4, None: 6})
                await storage.put(True, 5)  # (a separate put: True == 1 as a dict key)
                out: dict[str, Any] = {
                    "start": list(await storage.list({"start": 2, "end": "null"})),
                    "prefix": list(await storage.list({"prefix": 1})),
                    "after": list(await storage.list(startAfter=1, end=3)),
                    "get": await storage.get(3),
                    "get_many": dict(await storage.get([1, True])),
                    "delete_many": await storage.delete([1, None]),
                    "delete": await storage.delete(2),
                }

                async def body(txn: Any) -> Any:
                    await txn.put(9, "t")
                    return await txn.get(9)

                out["txn"] = await storage.transaction(body)
                storage.kv.put(5, 1)
                out["kv"] = [storage.kv.get(5), storage.kv.delete(5), storage.kv.get("5")]
                return out

        durable_runtime.namespace(Keys, name="KEYS")
        out = await env_of(durable_runtime).KEYS.getByName("a").run()
        assert out == {
            "start": ["2", "3"],
            "prefix": ["1", "10"],
            "after": ["10", "2"],
            "get": 3,
            "get_many": {"1": 1, "true": 5},
            "delete_many": 2,
            "delete": True,
            "txn": "t",
            "kv": [1, True, None],
        }


# ---------------------------------------------------------------------------------------------
# Namespace calls


class Ping(sdk.DurableObject):
    async def ping(self) -> str:
        return "pong"


class TestNamespace:
    async def test_names_are_read_as_javascript_strings(self, durable_runtime: durable.Runtime) -> None:
        """``idFromName(123)`` and ``getByName(5)`` name the objects ``"123"`` and ``"5"`` (measured,
        miniflare 4, 2026-04-07: ``idFromName(123).name == "123"`` and equals
        ``idFromName("123")``; ``idFromName(null).name == "null"``; ``getByName(5).name == "5"``)."""
        durable_runtime.namespace(Ping, name="NS")
        ns = env_of(durable_runtime).NS
        assert ns.idFromName(123).name == "123"
        assert ns.idFromName(123) == ns.idFromName("123")
        assert ns.idFromName(None).name == "null"
        stub = ns.getByName(5)
        assert (stub.name, await stub.ping()) == ("5", "pong")
        assert ns.getByName(5).id == ns.idFromName("5")

    async def test_new_unique_id_takes_an_options_dict(self, durable_runtime: durable.Runtime) -> None:
        """``newUniqueId({})`` makes an id; ``newUniqueId({"jurisdiction": "eu"})`` is refused
        (measured, miniflare 4, 2026-04-07: ``Error: Jurisdiction restrictions are not implemented
        in workerd.``, for any jurisdiction). Pyodide passes keywords as that dict too."""
        durable_runtime.namespace(Ping, name="NS")
        ns = env_of(durable_runtime).NS
        assert len(ns.newUniqueId({}).toString()) == 64
        assert ns.newUniqueId({}).name is None
        with pytest.raises(NotImplementedError, match="Jurisdiction restrictions are not implemented"):
            ns.newUniqueId({"jurisdiction": "eu"})
        with pytest.raises(NotImplementedError, match="Jurisdiction restrictions are not implemented"):
            ns.newUniqueId(jurisdiction="eu")

    async def test_get_options_as_keywords(self, durable_runtime: durable.Runtime) -> None:
        """``get(id, locationHint="enam")`` / ``getByName(name, locationHint="enam")``: Pyodide
        passes the keywords as the options object, which only places the object (measured,
        miniflare 4, 2026-04-07: ``get(id, {locationHint: "enam"})`` gives a working stub)."""
        durable_runtime.namespace(Ping, name="NS")
        ns = env_of(durable_runtime).NS
        assert await ns.get(ns.idFromName("a"), locationHint="enam").ping() == "pong"
        assert await ns.getByName("a", locationHint="enam").ping() == "pong"


# ---------------------------------------------------------------------------------------------
# Binary values: memoryview, as Pyodide's to_py() gives a Uint8Array


class Binary(sdk.DurableObject):
    async def identity(self, value: Any) -> Any:
        return value

    async def kind(self, value: Any) -> str:
        return type(value).__name__

    def sync_identity(self, value: Any) -> Any:
        return value

    async def roundtrip(self) -> Any:
        storage = self.ctx.storage
        await storage.put("b", b"xy")
        read = await storage.get("b")
        await storage.put("again", read)  # what was read goes back in as it is
        await storage.put({"nested": [read, {"e": read}]})
        storage.kv.put("kv", read)
        return [
            type(read).__name__,
            bytes(read),
            type(await storage.get("again")).__name__,
            [type(v).__name__ for v in (await storage.get("nested"))],
            type(storage.kv.get("kv")).__name__,
            type((await storage.list())["b"]).__name__,
        ]

    async def cycle(self) -> bool:
        items: list[Any] = [1]
        items.append(items)
        await self.ctx.storage.put("cycle", items)
        read = await self.ctx.storage.get("cycle")
        return bool(read[1] is read)


class TestBinaryValues:
    async def test_bytes_over_rpc_come_back_as_memoryview(self, durable_runtime: durable.Runtime) -> None:
        """workers-py ``tests/workerd-test/python-rpc/worker.py``: ``identity(b"binary")`` and
        ``identity(memoryview(b"abcefg"))`` both come back as ``memoryview`` (``python_to_rpc``
        sends a ``Uint8Array``, ``python_from_rpc``'s ``to_py()`` gives a ``memoryview``), and
        the object receives a ``memoryview`` too. Before, a ``memoryview`` could not be sent
        (``DataCloneError``) and ``bytes`` came back as ``bytes``."""
        durable_runtime.namespace(Binary, name="BIN")
        stub = env_of(durable_runtime).BIN.getByName("a")
        for value in (b"binary", memoryview(b"abcefg")):
            received = await stub.identity(value)
            assert isinstance(received, memoryview) and received == bytes(value)
            assert await stub.kind(value) == "memoryview"
        received = await stub.sync_identity({"a": memoryview(b"q"), "l": [b"z"]})
        assert isinstance(received["a"], memoryview) and isinstance(received.l[0], memoryview)
        assert (bytes(received["a"]), bytes(received.l[0])) == (b"q", b"z")

    async def test_storage_reads_binary_as_memoryview(self, durable_runtime: durable.Runtime) -> None:
        """``ctx.storage`` is an SDK ``_BindingWrapper``: what it reads goes through
        ``python_from_rpc``, so stored binary data is a ``memoryview`` (in ``get``, ``list`` and
        ``storage.kv``), and a ``memoryview`` can be stored back."""
        durable_runtime.namespace(Binary, name="BIN")
        stub = env_of(durable_runtime).BIN.getByName("a")
        assert await stub.roundtrip() == [
            "memoryview",
            b"xy",
            "memoryview",
            ["memoryview", "JsDict"],
            "memoryview",
            "memoryview",
        ]

    async def test_a_value_that_contains_itself(self, durable_runtime: durable.Runtime) -> None:
        """A stored list that contains itself is read back with its cycle (structured clone
        keeps it; Pyodide's ``to_py()`` too), not with a ``RecursionError``."""
        durable_runtime.namespace(Binary, name="BIN")
        assert await env_of(durable_runtime).BIN.getByName("a").cycle() is True

    def test_python_to_rpc_and_from_rpc(self) -> None:
        """The SDK's functions: ``python_from_rpc(b"x")`` is a ``memoryview``; ``python_to_rpc``
        gives what durable sends (binary data as ``bytes``)."""
        assert isinstance(sdk.python_from_rpc(b"x"), memoryview)
        assert sdk.python_to_rpc({"a": [memoryview(b"x")]}) == {"a": [b"x"]}


# ---------------------------------------------------------------------------------------------
# Numbers: a JavaScript number comes back as an int when it is a safe integer


class Numbers(sdk.DurableObject):
    async def identity(self, value: Any) -> Any:
        return value

    async def kind(self, value: Any) -> str:
        return type(value).__name__

    async def stored(self, value: Any) -> Any:
        await self.ctx.storage.put("n", value)
        self.ctx.storage.kv.put("kv", value)
        return [await self.ctx.storage.get("n"), self.ctx.storage.kv.get("kv")]


class TestNumbers:
    async def test_integral_floats_come_back_as_ints(self, durable_runtime: durable.Runtime) -> None:
        """Python ``int`` and ``float`` are both a JavaScript number once sent (``to_js``), and
        Pyodide converts a number back to ``int`` when ``Number.isSafeInteger()`` holds, else to
        ``float``: ``identity(1.0)`` is ``1``, ``identity(2.5)`` is ``2.5``, ``-0.0`` is ``0``;
        2**53 (no safe integer) stays a ``float``. The same holds for storage reads, at any depth,
        and for the arguments the object receives."""
        durable_runtime.namespace(Numbers, name="NUM")
        stub = env_of(durable_runtime).NUM.getByName("a")
        for value, expected in [(1.0, 1), (-0.0, 0), (3.0e15, 3 * 10**15), (2.5, 2.5), (float(2**53), float(2**53))]:
            received = await stub.identity(value)
            assert (type(received), received) == (type(expected), expected)
        assert await stub.kind(4.0) == "int"
        assert await stub.identity({"avg": 3.0, "l": [1.0, 1.5]}) == {"avg": 3, "l": [1, 1.5]}
        assert [type(v) for v in (await stub.identity({"avg": 3.0, "l": [1.0]})).values()] == [int, list]
        stored = await stub.stored(7.0)
        assert stored == [7, 7] and all(type(v) is int for v in stored)
        assert sdk.python_from_rpc(float("inf")) == float("inf") and sdk.python_from_rpc(True) is True


# ---------------------------------------------------------------------------------------------
# SQL parameters


class Sql(sdk.DurableObject):
    async def run(self) -> Any:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE t (f)")
        sql.exec("INSERT INTO t VALUES (?)", True)
        row = sql.exec("SELECT ? AS a, typeof(?) AS b, ? AS c", False, True, memoryview(b"\x01")).one()
        return [
            sql.exec("SELECT COUNT(*) AS n FROM t WHERE f = 1").one().n,
            sql.exec("SELECT f FROM t").one()["f"],
            [row.a, row.b, bytes(row.c)],
        ]

    async def big(self, value: int) -> Any:
        return self.ctx.storage.sql.exec("SELECT ? AS v", value).one().v


class TestSqlParameters:
    async def test_booleans_bind_as_text(self, durable_runtime: durable.Runtime) -> None:
        """The SDK sends ``True`` as a JavaScript boolean, which workerd binds as the text
        ``'true'`` (measured, miniflare 4, 2026-04-07: after ``INSERT INTO t VALUES (?)`` with
        ``true``, ``WHERE f = 1`` counts 0 and ``f`` reads ``"true"``; ``typeof(?)`` of ``false``
        is ``text``). `durable`'s own ``sql.exec`` binds 1 / 0 (docs/sql.md)."""
        durable_runtime.namespace(Sql, name="SQL")
        assert await env_of(durable_runtime).SQL.getByName("a").run() == [0, "true", ["false", "text", b"\x01"]]

    async def test_an_int_beyond_2_53_is_refused(self, durable_runtime: durable.Runtime) -> None:
        """Pyodide sends an ``int`` beyond 2**53 as a ``BigInt``, which workerd's ``sql.exec``
        refuses (measured, miniflare 4, 2026-04-07: ``TypeError: Cannot convert a BigInt value to
        a number``, for ``5n`` and ``-(2n**60n)`` alike); ``time.time_ns()`` is such an int."""
        from durable.compat.python_workers.pyodide.ffi import JsException

        durable_runtime.namespace(Sql, name="SQL")
        stub = env_of(durable_runtime).SQL.getByName("a")
        assert await stub.big(2**53) == 2**53
        with pytest.raises(JsException, match="TypeError: Cannot convert a BigInt value to a number"):
            await stub.big(2**60)


# ---------------------------------------------------------------------------------------------
# js.URL / js.URLSearchParams, js.JSON.parse, Response(js.Response)


class TestJsUrl:
    """``js.URL.new(request.url)`` is how much Python Workers code reads a URL (cloudflare-docs'
    Python examples: ``URL.new(request.url).pathname``, ``url.searchParams``, ``"tags" in params``).
    Every expectation below was measured in workerd (miniflare 4, 2026-04-07)."""

    def test_attributes(self) -> None:
        from durable.compat.python_workers import js

        url = js.URL.new("HTTPS://u:p@Example.COM:443/a/../b c?x=1&y=a+b&x=2#frag")
        assert (url.href, url.origin, url.protocol, url.username, url.password) == (
            "https://u:p@example.com/b%20c?x=1&y=a+b&x=2#frag",
            "https://example.com",
            "https:",
            "u",
            "p",
        )
        assert (url.host, url.hostname, url.port, url.pathname, url.search, url.hash) == (
            "example.com",
            "example.com",
            "",
            "/b%20c",
            "?x=1&y=a+b&x=2",
            "#frag",
        )
        assert str(url) == url.toString() == url.toJSON() == url.href
        port = js.URL.new("http://e.com:8080")
        assert (port.href, port.host, port.port, port.origin) == (
            "http://e.com:8080/",
            "e.com:8080",
            "8080",
            "http://e.com:8080",
        )
        empty = js.URL.new("http://e.com/p?#")
        assert (empty.href, empty.search, empty.hash) == ("http://e.com/p?#", "", "")
        assert js.URL.new("../c?q", "https://e.com/a/b/").href == "https://e.com/a/c?q"
        assert js.URL.new("mailto:a@b.c").origin == "null"
        assert [js.URL.canParse("http://x"), js.URL.canParse("/x"), js.URL.canParse("/x", "http://e.com")] == [
            True,
            False,
            True,
        ]

    def test_invalid_urls_raise_workerds_type_error(self) -> None:
        from durable.compat.python_workers import js
        from durable.compat.python_workers.pyodide.ffi import JsException

        for args in [("/x",), ("x", "nope")]:
            with pytest.raises(JsException, match=r"^TypeError: Invalid URL string\.$"):
                js.URL.new(*args)
        url = js.URL.new("http://e.com/")
        with pytest.raises(JsException, match="Failed to set the 'href' property on 'URL'"):
            url.href = "nope"

    def test_search_params(self) -> None:
        from durable.compat.python_workers import js
        from durable.compat.python_workers.pyodide.ffi import jsnull

        params = js.URL.new("http://e.com/?a=1&b=x+y&a=2&c=%20z&d").searchParams
        assert [
            params.get("a"),
            params.getAll("a"),
            params.has("d"),
            params.get("d"),
            params.get("b"),
            params.get("c"),
        ] == [
            "1",
            ["1", "2"],
            True,
            "",
            "x y",
            " z",
        ]
        assert params.get("missing") is jsnull  # JavaScript's null
        assert (params.size, params.toString()) == (5, "a=1&b=x+y&a=2&c=+z&d=")
        assert list(params) == [["a", "1"], ["b", "x y"], ["a", "2"], ["c", " z"], ["d", ""]]
        # As Pyodide proxies an object with get/has: item access is get(), `in` is has().
        assert (params["a"], "a" in params, "q" in params, len(params)) == ("1", True, False, 5)

    def test_search_params_write_through_to_the_url(self) -> None:
        from durable.compat.python_workers import js

        url = js.URL.new("http://e.com/p?a=1")
        url.searchParams.set("b", "x y")
        url.searchParams.append("a", "&")
        assert (url.href, url.search) == ("http://e.com/p?a=1&b=x+y&a=%26", "?a=1&b=x+y&a=%26")
        url.searchParams.delete("a")
        url.searchParams.delete("b")
        assert (url.href, url.search) == ("http://e.com/p", "")
        url.search = "?z=9"
        assert url.searchParams.get("z") == "9"
        params = js.URLSearchParams.new()
        params.set("k", "a b&c=d/é~*'()!")
        assert params.toString() == "k=a+b%26c%3Dd%2F%C3%A9%7E*%27%28%29%21"
        assert js.URLSearchParams.new({"x": "1", "y": "2"}).toString() == "x=1&y=2"
        params = js.URLSearchParams.new("b=2&a=1&b=0")
        params.sort()
        assert params.toString() == "a=1&b=2&b=0"

    def test_setters(self) -> None:
        from durable.compat.python_workers import js

        url = js.URL.new("http://e.com:81/p?q#h")
        seen = []
        url.hostname = "Other.org"
        seen.append(url.href)
        url.pathname = "x y"
        seen.append(url.href)
        url.search = "k=v"
        seen.append(url.href)
        url.hash = "z"
        seen.append(url.href)
        url.port = "443"
        seen.append(url.href)
        url.host = "h.com:90"
        seen.append(url.href)
        url.search = ""
        url.hash = ""
        seen.append(url.href)
        assert seen == [
            "http://other.org:81/p?q#h",
            "http://other.org:81/x%20y?q#h",
            "http://other.org:81/x%20y?k=v#h",
            "http://other.org:81/x%20y?k=v#z",
            "http://other.org:443/x%20y?k=v#z",
            "http://h.com:90/x%20y?k=v#z",
            "http://h.com:90/x%20y",
        ]
        url.href = "https://f.com/x"
        assert url.href == "https://f.com/x"


class TestJsUrlHostileSetters:
    """Setters and relative URLs that the first js.URL read through urllib (a hostname holding
    ``/`` moved text into the path, ``a@b`` became credentials, ``host = "x.com"`` dropped the
    port, ``search = "a#b"`` made a fragment, protocol/username/password had no setter).
    Every expectation measured in workerd (miniflare 4, 2026-04-07; the same in Node's URL)."""

    CASES: ClassVar[list[tuple[tuple[str, ...], str]]] = [
        (("new", "http:foo", "http://e.com/a/"), "http://e.com/a/foo"),
        (("new", "HTTP:foo", "http://e.com/a/"), "http://e.com/a/foo"),
        (("new", "https:foo", "http://e.com/a/"), "https://foo/"),
        (("new", "http:/foo", "http://e.com/a/"), "http://e.com/foo"),
        (("new", "", "http://e.com/a?b#c"), "http://e.com/a?b"),
        (("new", "\\x?a\\b#c\\d", "http://e.com/a/b"), "http://e.com/x?a\\b#c\\d"),
        (("new", "\\\\h2\\p", "http://e.com/a/b"), "http://h2/p"),
        (("new", "  ?q  ", "http://e.com/a/b"), "http://e.com/a/b?q"),
        (("set", "http://e.com:81/p?q#h", "hostname", "a/b"), "http://a:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "hostname", "a@b"), "http://e.com:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "hostname", "a?x"), "http://a:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "hostname", "a\\b"), "http://a:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "hostname", "[::1]"), "http://[::1]:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "hostname", "x:1"), "http://e.com:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "host", "x.com"), "http://x.com:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "host", "x.com:"), "http://x.com:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "host", "x.com:90abc"), "http://x.com:90/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "host", "[::1]"), "http://[::1]:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "host", ""), "http://e.com:81/p?q#h"),
        (("set", "http://u:p@e.com:81/p?q#h", "host", "münchen.de:80"), "http://u:p@xn--mnchen-3ya.de/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "port", "8080abc"), "http://e.com:8080/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "port", "99999"), "http://e.com:81/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "port", "0080"), "http://e.com/p?q#h"),
        (("set", "http://e.com:81/p?q#h", "search", "a#b"), "http://e.com:81/p?a%23b#h"),
        (("set", "http://e.com:81/p?q#h", "search", "?"), "http://e.com:81/p?#h"),
        (("set", "http://e.com:81/p?q#h", "search", ""), "http://e.com:81/p#h"),
        (("set", "http://e.com:81/p?q#h", "hash", "#"), "http://e.com:81/p?q#"),
        (("set", "http://e.com:81/p?q#h", "hash", ""), "http://e.com:81/p?q"),
        (("set", "mailto:a@b.c", "hostname", "h"), "mailto:a@b.c"),
        (("set", "mailto:a@b.c", "host", "h"), "mailto:a@b.c"),
        (("set", "mailto:a@b.c", "port", "1"), "mailto:a@b.c"),
        (("set", "mailto:a@b.c", "pathname", "x"), "mailto:a@b.c"),
        (("set", "mailto:a@b.c", "username", "x"), "mailto:a@b.c"),
        (("set", "mailto:a@b.c", "protocol", "news"), "news:a@b.c"),
        (("set", "http://e.com/p", "protocol", "https"), "https://e.com/p"),
        (("set", "http://e.com:443/p", "protocol", "WSS:"), "wss://e.com/p"),
        (("set", "http://e.com/p", "protocol", "foo"), "http://e.com/p"),
        (("set", "http://e.com/p", "protocol", "1x"), "http://e.com/p"),
        (("set", "http://e.com/p", "username", "a b:@/"), "http://a%20b%3A%40%2F@e.com/p"),
        (("set", "http://e.com/p", "password", "p@ss%41é"), "http://:p%40ss%41%C3%A9@e.com/p"),
        (("set", "http://u:p@e.com/p", "username", ""), "http://:p@e.com/p"),
        (("set", "http://u:p@e.com/p", "password", ""), "http://u@e.com/p"),
    ]

    def test_cases(self) -> None:
        from durable.compat.python_workers import js

        seen = []
        for case, _ in self.CASES:
            if case[0] == "new":
                seen.append(js.URL.new(*case[1:]).href)
            else:
                url = js.URL.new(case[1])
                setattr(url, case[2], case[3])
                seen.append(url.href)
        assert seen == [expected for _, expected in self.CASES]

    def test_lone_surrogates_serialize_as_u_fffd(self) -> None:
        from durable.compat.python_workers import js

        params = js.URLSearchParams.new()
        params.set("k", "\ud800x")
        assert params.toString() == "k=%EF%BF%BDx"


class TestJsValues:
    def test_json_parse_gives_objects_with_attribute_access(self) -> None:
        """Pyodide hands out ``JSON.parse``'s object as a ``JsProxy``, read by attribute
        (``JSON.parse(text).name``); a safe integral number is an ``int``."""
        from durable.compat.python_workers import js

        parsed = js.JSON.parse('{"a": {"b": [{"c": 1.0}]}}')
        assert parsed.a.b[0].c == 1 and type(parsed.a.b[0].c) is int
        assert parsed.to_py() == {"a": {"b": [{"c": 1}]}}
        assert js.JSON.parse("[1, 2]") == [1, 2]

    async def test_response_wraps_a_js_response(self) -> None:
        """workers-py response.py: ``Response(js_response)`` wraps that JavaScript response, and
        with any option raises ``ValueError("Expected no options when constructing Response from
        a js.Response")``."""
        from durable.compat.python_workers import js

        wrapped = sdk.Response(js.Response.new("hello", status=404, headers={"x-a": "1"}))
        assert isinstance(wrapped, sdk.Response)
        assert (wrapped.status, wrapped.headers["x-a"], await wrapped.text()) == (404, "1", "hello")
        with pytest.raises(ValueError, match="^Expected no options when constructing Response from a js.Response$"):
            sdk.Response(js.Response.new("x"), status=200)


class TestToJsBinary:
    async def test_to_js_bytes_is_a_uint8array_with_its_buffer(self, durable_runtime: durable.Runtime) -> None:
        """Pyodide's ``to_js(bytes)`` is a ``Uint8Array`` (a ``JsTypedArray``) whose ``buffer`` is
        an ``ArrayBuffer``; the SDK's ``Response`` accepts both as a body (workers-py utils.py
        ``RESPONSE_ACCEPTED_TYPES``), as Cloudflare's 12-image-gen does with
        ``Response(to_js(image_bytes).buffer, headers=...)``. Before, ``to_js`` returned the
        ``bytes`` itself, which has no ``buffer``. Sent or stored, the array is binary data (read
        back as a ``memoryview``)."""
        from durable.compat.python_workers.pyodide import ffi

        to_js: Any = ffi.to_js  # typed as an identity
        array = to_js(b"\x89PNG")
        assert all(isinstance(array, kind) for kind in (ffi.JsTypedArray, ffi.JsBuffer))
        assert (array.length, array.byteLength, array.to_bytes()) == (4, 4, b"\x89PNG")
        assert isinstance(array.to_py(), memoryview) and array.to_py() == b"\x89PNG"
        assert all(isinstance(array.buffer, kind) for kind in (ffi.JsBuffer,)) and array.buffer.byteLength == 4
        assert to_js(bytearray(b"ab")).to_bytes() == to_js(memoryview(b"ab")).to_bytes() == b"ab"
        for body in (array.buffer, array):
            response = sdk.Response(body, headers={"Content-Type": "image/png"})
            assert (await response.bytes(), response.headers["content-type"]) == (b"\x89PNG", "image/png")
        durable_runtime.namespace(Binary, name="BIN")
        stub = env_of(durable_runtime).BIN.getByName("a")
        assert await stub.kind(to_js(b"q")) == "memoryview"
        received = await stub.identity({"a": to_js(b"q"), "b": to_js(b"r").buffer})
        assert type(received["a"]) is type(received["b"]) is memoryview and bytes(received["b"]) == b"r"
        assert to_js([1]) == [1] and to_js("s") == "s"

    async def test_a_uint8array_as_an_attachment(self) -> None:
        """``ws.serializeAttachment(to_js(data))`` keeps the data, as workerd's structured clone keeps
        a ``Uint8Array``; it comes back as ``bytes`` (as ``serializeAttachment(data)`` does). The
        WebSocket is durable's own (no SDK wrapper converts it). Before, the stand-in, a ``bytes``
        subclass, was refused with ``DataCloneError`` (it worked while ``to_js`` returned the bytes)."""
        from durable.compat.python_workers.pyodide import ffi

        to_js: Any = ffi.to_js
        _, server = durable.WebSocketPair()
        for value, expected in (
            (to_js(b"ab"), b"ab"),
            (to_js(b"ab").buffer, b"ab"),
            ({"k": [to_js(b"c")]}, {"k": [b"c"]}),
            ({"k": to_js(b"a" * 17000)}, None),
        ):
            if expected is None:
                with pytest.raises(durable.WebSocketError, match="cannot be larger than 16384 bytes"):
                    server.serializeAttachment(value)
                continue
            server.serializeAttachment(value)
            read = server.deserializeAttachment()
            assert read == expected and type(read) is type(expected)
            if isinstance(read, dict):
                assert type(read["k"][0]) is bytes
        from durable._codec import clone

        assert type(clone(to_js(b"x"))) is bytes and type(clone([to_js(b"x").buffer])[0]) is bytes  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# workers.asgi / asgi / workers.wsgi: web frameworks behind a Worker's fetch


async def _lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app with a lifespan, echoing its scope."""
    import json

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "ready"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = {k: scope[k] for k in ("method", "scheme", "path", "query_string", "http_version", "type")}
    seen["raw_path"] = scope["raw_path"].decode()
    seen["query_string"] = scope["query_string"].decode()
    seen["env"] = scope["env"].NAME
    seen["state"] = scope["state"]
    seen["x-a"] = dict(scope["headers"])[b"x-a"].decode()
    seen["body"] = body.decode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("202 Accepted", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    keys = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "CONTENT_LENGTH", "HTTP_X_A")
    return [
        " ".join(str(environ.get(k)) for k in keys).encode(),
        b" ",
        environ["wsgi.input"].read(),
        b" ",
        environ["workers.env"].NAME.encode(),
    ]


class TestWebFrameworks:
    """The SDK ships ``workers.asgi`` (also installed as the top-level ``asgi``) and
    ``workers.wsgi``; Cloudflare's FastAPI example calls ``import asgi; await asgi.fetch(app,
    request, self.env)`` and its Django example ``from workers import wsgi; await
    wsgi.fetch(application, request, self.env)`` (python-workers-examples 03-fastapi, 18-django).
    The scope and environ are the ones workers-py ``asgi.py`` / ``wsgi.py`` build."""

    def test_the_modules_import_as_in_the_sdk(self) -> None:
        import importlib

        top = importlib.import_module("asgi")
        sub = importlib.import_module("workers.asgi")
        shim = importlib.import_module("workers")
        asgi, wsgi = shim.asgi, shim.wsgi  # `from workers import asgi, wsgi`

        assert top is sub is asgi
        assert wsgi is importlib.import_module("workers.wsgi")
        assert callable(asgi.fetch) and callable(wsgi.fetch)

    async def test_asgi_fetch(self) -> None:
        from durable.compat.python_workers import asgi

        request = sdk.Request("https://w.example/a%20b/c?q=1", method="POST", body="hello", headers={"X-A": "1"})
        response = await asgi.fetch(_lifespan_app, request, sdk.JsDict(NAME="v"))
        assert isinstance(response, sdk.Response)
        assert (response.status, response.headers["content-type"]) == (201, "application/json")
        assert await response.json() == {
            "method": "POST",
            "scheme": "https",
            "path": "/a b/c",
            "raw_path": "/a%20b/c",
            "query_string": "q=1",
            "http_version": "1.1",
            "type": "http",
            "env": "v",
            "state": {"db": "ready"},
            "x-a": "1",
            "body": "hello",
        }

    async def test_asgi_errors(self) -> None:
        from durable.compat.python_workers import asgi

        async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                raise RuntimeError("no lifespan")

        with pytest.raises(RuntimeError, match="^The application did not generate a response$"):
            await asgi.fetch(silent, sdk.Request("http://w/"), None)

    async def test_fastapi_through_a_served_worker(self, durable_runtime: durable.Runtime, tmp_path: Any) -> None:
        pytest.importorskip("fastapi")
        import httpx

        (tmp_path / "src").mkdir()
        (tmp_path / "wrangler.jsonc").write_text('{"main": "src/h10pw_fastapi_entry.py", "vars": {"NAME": "v"}}')
        (tmp_path / "src" / "h10pw_fastapi_entry.py").write_text(
            "from fastapi import FastAPI, Request\n"
            "from fastapi.responses import StreamingResponse\n"
            "from workers import WorkerEntrypoint\n"
            "app = FastAPI()\n"
            "@app.get('/')\n"
            "async def root(request: Request):\n"
            "    return {'env': request.scope['env'].NAME, 'q': request.query_params.get('q')}\n"
            "@app.post('/items/{item_id}')\n"
            "async def items(item_id: int, request: Request):\n"
            "    return {'id': item_id, 'body': await request.json()}\n"
            "@app.get('/stream')\n"
            "async def stream():\n"
            "    async def parts():\n"
            "        for i in range(3):\n"
            "            yield f'{i};'\n"
            "    return StreamingResponse(parts(), media_type='text/plain')\n"
            "class Default(WorkerEntrypoint):\n"
            "    async def fetch(self, request):\n"
            "        import asgi\n"
            "        return await asgi.fetch(app, request, self.env)\n"
        )
        app = pw.asgi_app(tmp_path, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            assert (await client.get("/?q=1")).json() == {"env": "v", "q": "1"}
            assert (await client.post("/items/5", json={"a": 1})).json() == {"id": 5, "body": {"a": 1}}
            assert (await client.get("/stream")).text == "0;1;2;"
            assert (await client.get("/missing")).status_code == 404

    async def test_wsgi_fetch(self) -> None:
        wsgi = sdk.wsgi

        request = sdk.Request("http://w.example/a%20b?x=1", method="PUT", body="body", headers={"X-A": "1"})
        response = await wsgi.fetch(_wsgi_app, request, sdk.JsDict(NAME="v"))
        assert (response.status, response.status_text) == (202, "Accepted")
        assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
        assert await response.text() == "PUT /a b x=1 w.example 80 4 1 body v"


class TestWebFrameworksHostile:
    """Apps that misbehave behind ``asgi.fetch`` / ``wsgi.fetch``: clear errors, no task left
    pending (a pending task at loop close is 'Task was destroyed but it is pending!'), and
    PEP 3333's ``start_response`` / ``write`` rules."""

    @staticmethod
    async def _settle() -> set[Any]:
        from durable.compat.python_workers import asgi

        for _ in range(5):
            await asyncio.sleep(0)
        return {t for t in asgi._background if not t.done()}

    async def test_asgi_failed_startup_leaves_no_task(self) -> None:
        from durable.compat.python_workers import asgi

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "db down"})
            await receive()  # a raw app waiting for a shutdown that never comes

        with pytest.raises(RuntimeError, match="^db down$"):
            await asgi.fetch(app, sdk.Request("http://w/"), None)
        assert await self._settle() == set()

    async def test_asgi_failed_or_cancelled_request_shuts_the_lifespan_down(self) -> None:
        from durable.compat.python_workers import asgi

        events: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    events.append(message["type"])
                    kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
                    await send({"type": f"lifespan.{kind}.complete"})
                    if kind == "shutdown":
                        return
            if scope["path"] == "/fail":
                raise ValueError("boom")
            await asyncio.sleep(3600)

        with pytest.raises(ValueError, match="^boom$"):
            await asgi.fetch(app, sdk.Request("http://w/fail"), None)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asgi.fetch(app, sdk.Request("http://w/slow"), None), 0.05)
        assert await self._settle() == set()
        assert events == ["lifespan.startup", "lifespan.shutdown"] * 2

    async def test_asgi_body_before_start_is_a_clear_error(self) -> None:
        from durable.compat.python_workers import asgi

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await send({"type": "http.response.body", "body": b"x"})

        with pytest.raises(RuntimeError, match="'http.response.body' before 'http.response.start'"):
            await asgi.fetch(app, sdk.Request("http://w/"), None)

    async def test_wsgi_start_response_with_exc_info_replaces_an_unsent_status(self) -> None:
        """PEP 3333: with ``exc_info``, ``start_response`` may be called again while no body has
        been sent; it re-raises only once the headers have gone out."""
        import sys

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [("x-a", "1")])
            try:
                raise ValueError("x")
            except ValueError:
                start_response("500 Internal Server Error", [("x-b", "2")], sys.exc_info())
            return [b"error page"]

        response = await sdk.wsgi.fetch(app, sdk.Request("http://w/"), None)
        assert (response.status, response.headers.get("x-a"), response.headers.get("x-b")) == (500, None, "2")
        assert await response.text() == "error page"

        def late(environ: dict[str, Any], start_response: Any) -> Any:
            start_response("200 OK", [])
            yield b"sent"
            try:
                raise ValueError("after the headers")
            except ValueError:
                start_response("500 Internal Server Error", [], sys.exc_info())

        response = await sdk.wsgi.fetch(late, sdk.Request("http://w/"), None)
        with pytest.raises(ValueError, match="after the headers"):
            await response.text()

    async def test_wsgi_write_from_the_iterable_keeps_its_order(self) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            write = start_response("200 OK", [])
            write(b"1")

            def body() -> Any:
                yield b"2"
                write(b"3")
                yield b"4"

            return body()

        response = await sdk.wsgi.fetch(app, sdk.Request("http://w/"), None)
        assert await response.text() == "1234"

    async def test_wsgi_path_info_holds_the_raw_bytes_as_latin_1(self) -> None:
        """PEP 3333: a native string whose characters are the path's bytes (``%E4`` is ``ä`` in
        ISO-8859-1, ``%C3%A4`` two characters), as every WSGI server gives it."""
        environ = sdk.wsgi.build_environ(sdk.Request("http://w/%E4/%C3%A4"), None, b"")
        assert environ["PATH_INFO"] == "/\xe4/\xc3\xa4"
