"""The key-value storage API: get, put, delete, delete_all, list, limits, copying, options."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

import durable
from durable import _context, testing

from helpers import as_own_code


class Obj(durable.DurableObject):
    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


Fn = Callable[[durable.DurableObject, durable.State], Any]


@pytest.fixture(params=["sqlite", "kv"])
async def run(request: pytest.FixtureRequest) -> Any:
    """Run a function inside one object, on each storage backend."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Obj, storage=request.param).get_by_name("a")

        async def call(fn: Fn) -> Any:
            return await testing.run_in_object(stub, fn)

        yield call


async def storage_of(run: Any) -> durable.Storage:
    # White-box tests: storage is driven from the test body (see helpers.as_own_code).
    return as_own_code(await run(lambda obj, ctx: ctx.storage))


class TestGetPut:
    async def test_missing_key_is_none(self, run: Any) -> None:
        """get() of a key never written gives None."""
        s = await storage_of(run)
        assert await s.get("nope") is None

    async def test_put_then_get(self, run: Any) -> None:
        """A value put is read back equal."""
        s = await storage_of(run)
        await s.put("k", {"a": [1, 2.5, None, "x"], "b": b"\x00"})
        assert await s.get("k") == {"a": [1, 2.5, None, "x"], "b": b"\x00"}

    async def test_reads_see_unawaited_writes(self, run: Any) -> None:
        """A put that is never awaited still happens, and a get right after it sees it."""

        async def body(obj: Any, ctx: durable.State) -> Any:
            ctx.storage.put("k", 1)  # not awaited on purpose
            ctx.storage.delete("gone")
            return await ctx.storage.get("k")

        assert await run(body) == 1
        s = await storage_of(run)
        assert await s.get("k") == 1

    async def test_values_are_copied_on_put_and_get(self, run: Any) -> None:
        """Mutating a value after put, or a value got, changes nothing stored."""
        s = await storage_of(run)
        value = [1, 2]
        await s.put("k", value)
        value.append(3)
        got = await s.get("k")
        got.append(4)
        assert await s.get("k") == [1, 2]

    async def test_put_many_and_get_many(self, run: Any) -> None:
        """put(dict) stores every pair; get(list) returns those that exist, sorted by key."""
        s = await storage_of(run)
        await s.put({"b": 2, "a": 1, "c": 3})
        got = await s.get(["c", "missing", "a"])
        assert got == {"a": 1, "c": 3} and list(got) == ["a", "c"]
        assert await s.get([]) == {}

    async def test_none_is_a_value(self, run: Any) -> None:
        """None can be stored: the key then exists (get-many returns it)."""
        s = await storage_of(run)
        await s.put("k", None)
        assert await s.get(["k"]) == {"k": None}

    async def test_empty_and_odd_keys(self, run: Any) -> None:
        """The empty string, NUL characters and non-ASCII text are valid keys."""
        s = await storage_of(run)
        keys = ["", "\x00", "a\x00b", "é", "日本", "\U0001f600"]
        for i, key in enumerate(keys):
            await s.put(key, i)
        assert await s.get(keys) == {k: i for i, k in enumerate(keys)}
        assert list(await s.list()) == sorted(keys)

    async def test_put_without_value(self, run: Any) -> None:
        """put(key) with no value raises Cloudflare's TypeError."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match=r"^put\(\) called with undefined value\.$"):
            s.put("k")

    async def test_put_with_bad_shape(self, run: Any) -> None:
        """put(dict, value) and put(non-str key) raise Cloudflare's TypeError."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match="may only be called with a single key-value pair"):
            s.put({"a": 1}, "x")
        with pytest.raises(TypeError, match="may only be called"):
            s.put(1, "x")  # type: ignore[arg-type]

    @pytest.mark.parametrize("key", [1, b"k", None, ("a",)])
    async def test_keys_must_be_str(self, run: Any, key: Any) -> None:
        """A key that is not a str raises TypeError naming its type."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match=type(key).__name__):
            s.get([key])

    async def test_lone_surrogate_keys_are_refused(self, run: Any) -> None:
        """Keys must be valid Unicode, since they are stored as UTF-8 text."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match="lone surrogate"):
            s.put("a\ud800", 1)

    async def test_unclonable_value_writes_nothing(self, run: Any) -> None:
        """A batch with one bad value raises DataCloneError and stores none of the batch."""
        s = await storage_of(run)
        with pytest.raises(durable.DataCloneError):
            s.put({"a": 1, "b": object()})
        assert await s.get(["a", "b"]) == {}

    async def test_unknown_option(self, run: Any) -> None:
        """An unknown keyword option raises TypeError naming it; camelCase options are accepted."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match="'bogus'"):
            s.get("k", bogus=True)
        await s.put("k", 1, allowUnconfirmed=True, noCache=True)
        assert await s.get("k", allowConcurrency=True) == 1


class TestDelete:
    async def test_delete_reports_existence(self, run: Any) -> None:
        """delete(key) is True only if the key existed."""
        s = await storage_of(run)
        await s.put("k", 1)
        assert await s.delete("k") is True
        assert await s.delete("k") is False
        assert await s.get("k") is None

    async def test_delete_many_counts(self, run: Any) -> None:
        """delete(list) returns how many of the keys existed (duplicates counted once)."""
        s = await storage_of(run)
        await s.put({"a": 1, "b": 2})
        assert await s.delete(["a", "b", "c", "a"]) == 2
        assert await s.list() == {}

    async def test_delete_all(self, run: Any) -> None:
        """delete_all removes every key and the alarm."""
        s = await storage_of(run)
        await s.put({"a": 1, "b": 2})
        await s.set_alarm(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        await s.delete_all()
        assert await s.list() == {}
        assert await s.get_alarm() is None
        await s.put("again", 1)
        assert await s.list() == {"again": 1}


class TestList:
    async def fill(self, run: Any) -> durable.Storage:
        s = await storage_of(run)
        await s.put({k: i for i, k in enumerate(["a", "ab", "abc", "b", "ba", "c", "é"])})
        return s

    async def test_ordered_by_code_point(self, run: Any) -> None:
        """list() returns every pair in code-point order."""
        s = await self.fill(run)
        assert list(await s.list()) == ["a", "ab", "abc", "b", "ba", "c", "é"]

    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ({"start": "ab"}, ["ab", "abc", "b", "ba", "c", "é"]),
            ({"start_after": "ab"}, ["abc", "b", "ba", "c", "é"]),
            ({"startAfter": "ab"}, ["abc", "b", "ba", "c", "é"]),
            ({"end": "b"}, ["a", "ab", "abc"]),
            ({"start": "ab", "end": "ba"}, ["ab", "abc", "b"]),
            ({"prefix": "a"}, ["a", "ab", "abc"]),
            ({"prefix": "ab", "start": "abb"}, ["abc"]),
            ({"prefix": "a", "end": "ab"}, ["a"]),
            ({"prefix": "b", "start": "c"}, []),
            ({"prefix": "zz"}, []),
            ({"start": "c", "end": "a"}, []),
            ({"start": "b", "end": "b"}, []),
            ({"reverse": True}, ["é", "c", "ba", "b", "abc", "ab", "a"]),
            ({"reverse": True, "limit": 2}, ["é", "c"]),
            ({"limit": 2}, ["a", "ab"]),
            ({"reverse": True, "start": "ab", "end": "ba", "limit": 2}, ["b", "abc"]),
            ({"prefix": ""}, ["a", "ab", "abc", "b", "ba", "c", "é"]),
        ],
    )
    async def test_options(self, run: Any, options: dict[str, Any], expected: list[str]) -> None:
        """list() options compile as in workerd: start inclusive, end exclusive, prefix clamps, reverse keeps bounds."""
        s = await self.fill(run)
        assert list(await s.list(**options)) == expected

    async def test_start_and_start_after(self, run: Any) -> None:
        """start with start_after raises Cloudflare's TypeError."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match=r"^list\(\) cannot be called with both start and startAfter values\.$"):
            s.list(start="a", start_after="b")

    @pytest.mark.parametrize("limit", [0, -1])
    async def test_limit_must_be_positive(self, run: Any, limit: int) -> None:
        """A limit that is not positive raises Cloudflare's TypeError."""
        s = await storage_of(run)
        with pytest.raises(TypeError, match=r"^List limit must be positive\.$"):
            s.list(limit=limit)

    async def test_prefix_with_max_code_point(self, run: Any) -> None:
        """A prefix ending in U+10FFFF still finds exactly its keys."""
        s = await storage_of(run)
        top = "\U0010ffff"
        await s.put({"a" + top: 1, "a" + top + "x": 2, "b": 3})
        assert list(await s.list(prefix="a" + top)) == ["a" + top, "a" + top + "x"]


class TestLimits:
    async def test_kv_backend_limits(self) -> None:
        """The key-value backend refuses big keys, big values and big batches with Cloudflare's messages."""
        async with durable.Runtime() as rt:
            s = await testing.run_in_object(rt.namespace(Obj, storage="kv").get_by_name("a"), lambda o, c: c.storage)
            _context.running.set(s._host.running)  # used from the test body below (see storage_of)
            with pytest.raises(
                durable.StorageLimitError,
                match=r"^Keys cannot be larger than 2048 bytes\. A key of size 2049 was provided\.$",
            ):
                s.put("k" * 2049, 1)
            s.put("k" * 2048, 1)
            with pytest.raises(
                durable.StorageLimitError,
                match=r"^Values cannot be larger than 131072 bytes\. A value of size \d+ was provided\.$",
            ):
                s.put("v", "x" * 131072)
            with pytest.raises(
                durable.StorageLimitError,
                match=r"^Maximum number of key value pairs is 128\. 129 pairs were provided\.$",
            ):
                s.get([str(i) for i in range(129)])
            with pytest.raises(ValueError):  # StorageLimitError is a ValueError
                s.put({str(i): i for i in range(129)})
            with pytest.raises(durable.StorageLimitError):
                s.delete([str(i) for i in range(129)])

    async def test_sqlite_backend_limit(self) -> None:
        """The SQLite backend refuses a key plus value over 2 MB, and allows big batches and keys."""
        async with durable.Runtime() as rt:
            s = await testing.run_in_object(rt.namespace(Obj).get_by_name("a"), lambda o, c: c.storage)
            _context.running.set(s._host.running)  # used from the test body below (see storage_of)
            with pytest.raises(
                durable.StorageLimitError, match=r"^string or blob too big: SQLITE_TOOBIG \(.*2 MB.*durable\.Limits"
            ):
                s.put("v", b"x" * (2 * 1024 * 1024))
            s.put({str(i): i for i in range(500)})
            s.put("k" * 5000, b"x" * 200_000)
            assert len(await s.get([str(i) for i in range(500)])) == 500

    async def test_limits_can_be_relaxed(self) -> None:
        """Runtime(limits=Limits.unlimited()) lets oversized values through."""
        async with durable.Runtime(limits=durable.Limits.unlimited()) as rt:
            s = await testing.run_in_object(rt.namespace(Obj, storage="kv").get_by_name("a"), lambda o, c: c.storage)
            _context.running.set(s._host.running)  # used from the test body below (see storage_of)
            s.put("v", "x" * 200_000)
            assert len(await s.get("v")) == 200_000

    def test_limits_type_is_checked(self) -> None:
        """Passing something that is not a Limits raises TypeError."""
        with pytest.raises(TypeError, match="durable.Limits"):
            durable.Runtime(limits={"kv_max_batch": 1})  # type: ignore[arg-type]


class TestAliases:
    async def test_camel_case_storage_methods(self, run: Any) -> None:
        """deleteAll, getAlarm, setAlarm and deleteAlarm are the same methods as their snake_case names."""
        s: Any = await storage_of(run)
        assert s.deleteAll == s.delete_all and s.setAlarm == s.set_alarm
        await s.setAlarm(4 * 10**12)
        assert await s.getAlarm() == 4 * 10**12
        await s.deleteAlarm()
        assert await s.getAlarm() is None


class TestReadCache:
    """Reads are served from a small in-memory cache; it must never show a value storage does not hold."""

    async def test_rolled_back_writes_are_not_read_back(self, run: Any) -> None:
        """A write undone by txn.rollback() or a failing transaction is gone from reads too."""

        async def body(obj: Any, ctx: durable.State) -> Any:
            await ctx.storage.put("k", "committed")
            assert await ctx.storage.get("k") == "committed"  # now cached

            async def undone(txn: Any) -> None:
                await txn.put("k", "rolled back")
                assert await txn.get("k") == "rolled back"
                txn.rollback()

            await ctx.storage.transaction(undone)
            after_rollback = await ctx.storage.get("k")

            async def failing(txn: Any) -> None:
                await txn.put("k", "failed")
                await txn.delete("other")
                raise ValueError("boom")

            with pytest.raises(ValueError):
                await ctx.storage.transaction(failing)
            return after_rollback, await ctx.storage.get("k")

        assert await run(body) == ("committed", "committed")

    async def test_failed_commit_is_not_read_back(self) -> None:
        """After a failed commit resets the object, reads show the last committed value."""

        class Counter(durable.DurableObject):
            async def put(self, value: int) -> None:
                await self.ctx.storage.put("n", value)

            async def get(self) -> Any:
                return await self.ctx.storage.get("n")

        async with durable.Runtime() as rt:
            ns = rt.namespace(Counter)
            await ns.get_by_name("c").put(1)
            stub = ns.get_by_name("c")
            testing.fail_next_commit(stub)
            with pytest.raises(durable.ObjectResetError):
                await stub.put(2)
            assert await ns.get_by_name("c").get() == 1

    async def test_delete_all_and_deletes_are_seen(self, run: Any) -> None:
        async def body(obj: Any, ctx: durable.State) -> Any:
            await ctx.storage.put({"a": 1, "b": 2, "c": 3})
            assert await ctx.storage.get(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
            await ctx.storage.delete("a")
            await ctx.storage.delete(["b"])
            seen = (await ctx.storage.get("a"), await ctx.storage.get("b"), await ctx.storage.get("c"))
            await ctx.storage.delete_all()
            return seen, await ctx.storage.get("c")

        assert await run(body) == ((None, None, 3), None)

    async def test_cached_values_are_copies(self, run: Any) -> None:
        async def body(obj: Any, ctx: durable.State) -> Any:
            await ctx.storage.put("k", {"items": [1]})
            first = await ctx.storage.get("k")
            first["items"].append(2)
            return await ctx.storage.get("k")

        assert await run(body) == {"items": [1]}

    async def test_cache_is_bounded(self, run: Any) -> None:
        """However many keys are read, the cache keeps at most KV_CACHE_ENTRIES, and no large value."""
        from durable._kvcache import KV_CACHE_ENTRIES, KV_CACHE_MAX_VALUE

        async def write(obj: Any, ctx: durable.State) -> None:
            await ctx.storage.put({f"k{i}": i for i in range(KV_CACHE_ENTRIES)})
            await ctx.storage.put({f"j{i}": i for i in range(KV_CACHE_ENTRIES)})
            await ctx.storage.put("big", "x" * (KV_CACHE_MAX_VALUE + 1))

        async def read(obj: Any, ctx: durable.State) -> Any:
            values = [await ctx.storage.get(f"k{i}") for i in range(KV_CACHE_ENTRIES)]
            big = await ctx.storage.get("big")
            cache = ctx.storage._db.kv.cache
            return values == list(range(KV_CACHE_ENTRIES)), len(big), len(cache), "big" in cache

        await run(write)  # committed when the call returns
        assert await run(read) == (True, KV_CACHE_MAX_VALUE + 1, KV_CACHE_ENTRIES, False)

    async def test_unrestricted_query_writing_kv_table_is_seen(self) -> None:
        """testing.query(unrestricted=True) may write _cf_KV directly; later reads see it."""
        from durable._codec import encode

        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("q")
            await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.put("k", 1))
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("k")) == 1
            await testing.query(stub, "UPDATE _cf_KV SET value = ? WHERE key = 'k'", encode(2), unrestricted=True)
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("k")) == 2


class TestBufferedWrites:
    """Key-value writes wait in memory until the commit; every read and the file must agree with them."""

    async def test_mixed_writes_in_one_turn_reach_the_file(self, tmp_path: Any) -> None:
        """Puts, deletes and batches in one turn: reads see them at once, the file after reopening."""

        async def body(obj: Any, ctx: durable.State) -> Any:
            s = ctx.storage
            s.put("a", 1)
            s.put({"b": 2, "c": 3, "d": 4})
            first = s.delete("a"), s.delete("a"), s.delete("never")
            s.delete(["b", "x"])
            s.put("c", "changed")
            s.put("a", "again")
            return first, await s.get(["a", "b", "c", "d"]), await s.list()

        async with durable.Runtime(tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("w")
            (deleted, got, listed) = await testing.run_in_object(stub, body)
        assert [await d for d in deleted] == [True, False, False]
        expected = {"a": "again", "c": "changed", "d": 4}
        assert got == expected and listed == expected
        async with durable.Runtime(tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("w")
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.list()) == expected

    async def test_lazy_sync_list_sees_later_writes(self) -> None:
        """kv.list() reads as it goes: a key deleted after it started is not returned when reached."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("l")

            def body(obj: Any, ctx: durable.State) -> Any:
                kv = ctx.storage.kv
                for key in "abcde":
                    kv.put(key, key)
                it = kv.list()
                first = next(it)
                kv.delete("e")
                ctx.storage.delete("d")  # the asynchronous API writes the same table
                return first, list(it)

            assert await testing.run_in_object(stub, body) == (("a", "a"), [("b", "b"), ("c", "c")])

    async def test_database_size_counts_buffered_writes(self) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("s")

            def body(obj: Any, ctx: durable.State) -> Any:
                before = ctx.storage.sql.database_size
                ctx.storage.put({f"k{i}": "x" * 1000 for i in range(50)})
                return before, ctx.storage.sql.database_size

            before, after = await testing.run_in_object(stub, body)
            assert after > before + 50_000


class TestStorageAwaitableWithAsyncio:
    async def test_asyncio_helpers_take_it_and_create_task_names_it(self) -> None:
        """A storage call's awaitable goes to gather, wait_for, ensure_future and shield; asyncio's
        create_task refuses it (not a coroutine), and its message names it as users know it."""

        class Obj(durable.DurableObject):
            async def go(self) -> list[Any]:
                storage = self.ctx.storage
                out: list[Any] = [await asyncio.gather(storage.put("a", 1), storage.get("a"))]
                out.append(await asyncio.wait_for(storage.get("a"), 5))
                out.append(await asyncio.ensure_future(storage.get("a")))
                out.append(await asyncio.shield(storage.get("a")))
                try:
                    asyncio.create_task(storage.get("a"))  # type: ignore[arg-type]  # noqa: RUF006
                except TypeError as exc:
                    out.append(str(exc))
                return out

        async with durable.Runtime() as rt:
            result = await rt.namespace(Obj).get_by_name("x").go()
        assert result[:4] == [[None, 1], 1, 1, 1]
        assert result[4] == "a coroutine was expected, got <StorageAwaitable 1>"
