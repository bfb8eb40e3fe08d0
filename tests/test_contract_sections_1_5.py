"""API.md sections 1-5, the promises the other contract tests left unasserted, pinned to workerd.

Each expected value below was measured with miniflare 4 (compatibility date 2026-04-07) on
2026-12-06, unless the docstring says otherwise; the probe ran the same calls in a Durable Object
(JavaScript spellings) and compared them with durable's answers.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing

from helpers import WithAlarm, exactly

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "kv"])


class Plain(durable.DurableObject):
    """No handler at all: RPC only."""

    def hi(self) -> str:
        return "hi"

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)


class Other(durable.DurableObject):
    pass


async def in_object(rt: durable.Runtime, fn: Any, backend: str = "sqlite") -> Any:
    """Run ``fn(ctx.storage)`` (awaited when it returns an awaitable) inside a fresh object."""

    async def body(obj: Any, ctx: durable.State) -> Any:
        result = fn(ctx.storage)
        return await result if hasattr(result, "__await__") else result

    ns = rt.namespace(WithAlarm, storage=backend)
    return await testing.run_in_object(ns.get(ns.new_unique_id()), body)


# == 2. ids and stubs ==============================================================================


class TestIds:
    async def test_an_id_rebuilt_from_its_string_has_no_name(self) -> None:
        """ ".name is the name for id_from_name ids, else None": an id (and a stub) made from the
        string of a named id has none (workerd: `idFromString(a.toString()).name` and
        `get(idFromString(...)).name` are undefined), yet equals the named id and reaches its object."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Plain)
            named = ns.id_from_name("A")
            again = ns.id_from_string(str(named))
            assert again.name is None and ns.get(again).name is None
            assert again == named and again.equals(named) and named.equals(again)
            await ns.get_by_name("A").put("k", 1)
            assert await ns.get(again).get("k") == 1

    async def test_a_stub_by_name_has_a_named_id(self) -> None:
        """`get_by_name("A").id.name` and `get(id_from_name("A")).name` are "A" (workerd: the same)."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Plain)
            assert ns.get_by_name("A").id.name == "A"
            assert ns.get(ns.id_from_name("A")).name == "A"
            assert ns.get_by_name("A").id.equals(ns.id_from_name("A"))

    async def test_the_empty_name_is_a_name(self) -> None:
        """`id_from_name("")` is an id like any other, named "" (workerd: 64 digits, name "")."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Plain)
            oid = ns.id_from_name("")
            assert len(str(oid)) == 64 and oid.name == ""
            assert ns.get_by_name("").name == ""
            assert oid != ns.id_from_name(" ")

    async def test_the_same_name_in_two_namespaces(self) -> None:
        """Ids are keyed by (namespace, name): the same name gives ids of different digits that are
        not `equals` (workerd: `env.D.idFromName("A").equals(env.C.idFromName("A"))` is false)."""
        async with durable.Runtime() as rt:
            a, b = rt.namespace(Plain).id_from_name("A"), rt.namespace(Other).id_from_name("A")
            assert str(a) != str(b) and not a.equals(b) and not b.equals(a) and a != b

    async def test_unique_ids_round_trip_through_their_string(self) -> None:
        """A new unique id is 64 lowercase hex digits that `id_from_string` turns back into an equal id."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Plain)
            uid = ns.new_unique_id()
            text = str(uid)
            assert len(text) == 64 and text == text.lower() and int(text, 16) >= 0
            assert ns.id_from_string(text).equals(uid) and ns.id_from_string(text.upper()) == uid
            assert uid.to_string() == uid.toString() == text

    @pytest.mark.parametrize("url", ["/x", "x"])
    async def test_stub_fetch_of_a_relative_url(self, url: str) -> None:
        """`stub.fetch("/x")` raises workerd's `TypeError: Invalid URL: /x`."""
        async with durable.Runtime() as rt:
            with exactly(TypeError, f"Invalid URL: {url}"):
                await rt.namespace(Plain).get_by_name("a").fetch(url)


# == 2. resets ======================================================================================


class Aborting(durable.DurableObject):
    async def abort(self) -> None:
        self.ctx.abort("why")

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("fetched")


class TestBrokenStub:
    async def test_fetch_on_a_broken_stub_raises_the_same_error(self) -> None:
        """ "After a reset error, the stub that saw it is broken: later calls on it raise the same
        error"; `stub.fetch` is such a call. A fresh stub fetches from a fresh instance."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Aborting)
            stub = ns.get_by_name("a")
            with pytest.raises(durable.ObjectResetError, match="^why$") as first:
                await stub.abort()
            with pytest.raises(durable.ObjectResetError, match="^why$") as again:
                await stub.fetch("http://do/")
            assert type(again.value) is type(first.value) and again.value.durable_object_reset is True
            assert await (await ns.get(stub.id).fetch("http://do/")).text() == "fetched"


# == 4. storage ====================================================================================

SIX = {"a": 0, "b": 1, "ba": 2, "bb": 3, "c": 4, "d": 5}

# (options, keys listed): workerd's answers, the same on both backends and for `kv.list`.
LIST_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"start": "b", "end": "b"}, []),
    ({"start": "c", "end": "a"}, []),
    ({"start": "c", "end": "a", "reverse": True}, []),
    ({"prefix": ""}, ["a", "b", "ba", "bb", "c", "d"]),
    ({"prefix": "b", "start": "bb"}, ["bb"]),
    ({"prefix": "b", "start": "a"}, ["b", "ba", "bb"]),
    ({"prefix": "b", "start_after": "b"}, ["ba", "bb"]),
    ({"prefix": "b", "end": "bb"}, ["b", "ba"]),
    ({"prefix": "b", "end": "z"}, ["b", "ba", "bb"]),
    ({"prefix": "b", "reverse": True, "limit": 2}, ["bb", "ba"]),
    ({"start_after": "b", "reverse": True}, ["d", "c", "bb", "ba"]),
    ({"start_after": "a", "end": "c", "reverse": True, "limit": 2}, ["bb", "ba"]),
    ({"limit": 1.5}, ["a"]),
    ({"start_after": "d"}, []),
    ({"start_after": ""}, ["a", "b", "ba", "bb", "c", "d"]),
    ({"start": ""}, ["a", "b", "ba", "bb", "c", "d"]),
    ({"end": ""}, []),
    ({"prefix": "x"}, []),
    ({"prefix": "ba"}, ["ba"]),
    ({"start": "bb"}, ["bb", "c", "d"]),
    ({"end": "bb"}, ["a", "b", "ba"]),
]


def _ids(cases: list[tuple[dict[str, Any], Any]]) -> list[str]:
    return [",".join(f"{k}={v!r}" for k, v in options.items()) or "none" for options, _ in cases]


class TestListBounds:
    @BACKENDS
    async def test_list_bounds_combine_as_in_workerd(self, backend: str) -> None:
        """`list(start=, start_after=, end=, prefix=, reverse=, limit=)`: every combination in
        LIST_CASES lists what workerd lists (a bound past another gives nothing, "" bounds, a
        fractional limit rounded down)."""

        async def body(s: durable.Storage) -> Any:
            await s.put(SIX)
            return [list(await s.list(**options)) for options, _ in LIST_CASES]

        async with durable.Runtime() as rt:
            got = await in_object(rt, body, backend)
        assert dict(zip(_ids(LIST_CASES), got, strict=True)) == dict(
            zip(_ids(LIST_CASES), [keys for _, keys in LIST_CASES], strict=True)
        )

    async def test_kv_list_takes_the_same_bounds(self) -> None:
        """ "`kv.list(...)` takes the same options as `list`": the same cases give the same keys
        (workerd's `ctx.storage.kv.list(options)` gave them), as `(key, value)` pairs."""

        def body(s: durable.Storage) -> Any:
            for key, value in SIX.items():
                s.kv.put(key, value)
            return [list(s.kv.list(**options)) for options, _ in LIST_CASES]

        async with durable.Runtime() as rt:
            got = await in_object(rt, body)
        expected = [[(k, SIX[k]) for k in keys] for _, keys in LIST_CASES]
        assert dict(zip(_ids(LIST_CASES), got, strict=True)) == dict(zip(_ids(LIST_CASES), expected, strict=True))

    @BACKENDS
    @pytest.mark.parametrize("limit", [0.5, math.nan, math.inf, 0, -1])
    async def test_a_limit_below_one_or_not_finite(self, backend: str, limit: float) -> None:
        """workerd: `list({limit})` for 0.5, NaN, Infinity, 0 and -1 raises `TypeError: List limit
        must be positive.` (on both backends, and `kv.list` too)."""

        async def body(s: durable.Storage) -> Any:
            with exactly(TypeError, "List limit must be positive."):
                await s.list(limit=limit)
            if backend == "sqlite":
                with exactly(TypeError, "List limit must be positive."):
                    list(s.kv.list(limit=limit))
            return True

        async with durable.Runtime() as rt:
            assert await in_object(rt, body, backend)


class TestBatches:
    @BACKENDS
    async def test_empty_batches(self, backend: str) -> None:
        """`get([])` is an empty dict, `delete([])` is 0 and `put({})` is None (workerd: an empty
        Map, 0, undefined)."""

        async def body(s: durable.Storage) -> Any:
            return await s.get([]), await s.delete([]), await s.put({})  # type: ignore[func-returns-value]

        async with durable.Runtime() as rt:
            assert await in_object(rt, body, backend) == ({}, 0, None)

    @BACKENDS
    async def test_repeated_keys(self, backend: str) -> None:
        """A key repeated in a batch counts once: `get(["b", "a", "b"])` gives `{"a", "b"}` in key
        order, `delete(["a", "a", "zz"])` gives 1 (workerd: the same)."""

        async def body(s: durable.Storage) -> Any:
            await s.put(SIX)
            got = await s.get(["b", "a", "b"])
            return list(got.items()), await s.delete(["a", "a", "zz"]), await s.get("a")

        async with durable.Runtime() as rt:
            assert await in_object(rt, body, backend) == ([("a", 0), ("b", 1)], 1, None)

    @BACKENDS
    async def test_the_empty_key(self, backend: str) -> None:
        """ "Keys are `str`", the empty one too: workerd stores, reads and deletes the key ""."""

        async def body(s: durable.Storage) -> Any:
            await s.put("", 1)
            found = await s.get(""), list(await s.list())
            return found, await s.delete(""), await s.get("")

        async with durable.Runtime() as rt:
            assert await in_object(rt, body, backend) == ((1, [""]), True, None)


SYNC_THEN_DIE = """
import asyncio, os, sys
import durable
from durable import testing

class Synced(durable.DurableObject):
    pass

async def main():
    rt = durable.Runtime(sys.argv[1])
    await rt.__aenter__()
    stub = rt.namespace(Synced).get_by_name("a")

    async def body(obj, ctx):
        ctx.storage.put("k", "kept")  # not awaited
        await ctx.storage.sync()
        print("synced", flush=True)
        os._exit(0)  # gone at once: no close, no end of the event, no later commit

    await testing.run_in_object(stub, body)

asyncio.run(main())
"""


class Synced(durable.DurableObject):
    pass


class TestSync:
    def test_a_synced_write_survives_the_process_dying(self, tmp_path: Path) -> None:
        """ "`sync()`: awaitable that completes when every earlier write is durable": a process that
        dies the moment `sync()` returned (`os._exit`, inside the event) has the write on disk."""
        result = subprocess.run(
            [sys.executable, "-c", SYNC_THEN_DIE, str(tmp_path)], capture_output=True, text=True, timeout=120
        )
        assert result.stdout.strip() == "synced", result.stderr

        async def read() -> Any:
            async with durable.Runtime(tmp_path) as rt:
                return await testing.run_in_object(
                    rt.namespace(Synced).get_by_name("a"), lambda obj, ctx: ctx.storage.get("k")
                )

        assert asyncio.run(read()) == "kept"


# == 1. / 2. a class without fetch ===================================================================


class TestNoFetchHandler:
    async def test_fetch_of_a_class_without_fetch_is_a_durable_error(self) -> None:
        """workerd answers `stub.fetch()` of a class without `fetch` with a plain `Error` (not a
        `TypeError`): `Error: Handler does not export a fetch() function.`, `remote` true. durable's
        rule for workerd's other errors is a `durable.DurableError`; it stays a `TypeError` too (as
        docs/api.md has said), and the stub keeps working, as after any error of a call."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Plain).get_by_name("a")
            with pytest.raises(
                durable.NoFetchHandlerError, match=r"^Handler does not export a fetch\(\) function\."
            ) as info:
                await stub.fetch("http://do/")
            assert isinstance(info.value, durable.DurableError) and isinstance(info.value, TypeError)
            assert info.value.remote is True and info.value.durable_object_reset is False
            assert await stub.hi() == "hi"


# == 5. HTTP ==========================================================================================


class TestResponseJson:
    async def test_numbers_are_spelled_as_pythons_json_spells_them(self) -> None:
        """docs/http.md: `Response.json()` writes a float with its point and sign and an int with
        every digit (workerd's `JSON.stringify` wrote `[1,0,0.1,1e+21]` and `1152921504606847000`)."""
        assert await durable.Response.json([1.0, -0.0, 0.1, 1e21]).text() == "[1.0,-0.0,0.1,1e+21]"
        assert await durable.Response.json(2**60).text() == "1152921504606846976"

    async def test_what_workerd_writes_alike(self) -> None:
        """workerd: `Response.json({a:[1,"é"], b:null})` is `{"a":[1,"é"],"b":null}` with
        `content-type: application/json`; `{status: 201}` and extra headers are kept, a given
        content type wins; `Response.json("x")` is `"x"` and `Response.json(null)` is `null`."""
        resp = durable.Response.json({"a": [1, "é"], "b": None})
        assert await resp.text() == '{"a":[1,"é"],"b":null}'
        assert list(resp.headers.entries()) == [("content-type", "application/json")]
        resp = durable.Response.json({"a": 1}, status=201, headers={"X-A": "1"})
        assert resp.status == 201 and list(resp.headers.entries()) == [
            ("content-type", "application/json"),
            ("x-a", "1"),
        ]
        resp = durable.Response.json({"a": 1}, headers={"Content-Type": "text/x"})
        assert list(resp.headers.entries()) == [("content-type", "text/x")]
        assert await durable.Response.json("x").text() == '"x"'
        assert await durable.Response.json(None).text() == "null"
