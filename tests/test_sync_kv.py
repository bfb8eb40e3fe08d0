"""The synchronous key-value API (``ctx.storage.kv``) of SQLite-backed objects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable import _storage, testing

from helpers import exactly, inside, storage_of


class Obj(durable.DurableObject):
    def items(self, **options: Any) -> list[tuple[str, Any]]:
        return list(self.ctx.storage.kv.list(**options))


async def kv_of(stub: Any) -> durable.SyncKV:
    # White-box tests: the kv API is used from the test body (see helpers.as_own_code).
    return (await storage_of(stub)).kv


class TestGetPutDelete:
    """get, put and delete."""

    async def test_missing_key(self, stub: Any) -> None:
        """get() of a key never written is None, delete() of it is False."""
        kv = await kv_of(stub)
        assert kv.get("nope") is None
        assert kv.delete("nope") is False

    async def test_put_get_delete(self, stub: Any) -> None:
        """A value put is read back equal; delete() removes it and says it existed."""
        kv = await kv_of(stub)
        kv.put("k", {"a": [1, 2.5, None], "b": b"\x00"})
        assert kv.get("k") == {"a": [1, 2.5, None], "b": b"\x00"}
        assert kv.delete("k") is True
        assert kv.get("k") is None

    async def test_values_are_copies(self, stub: Any) -> None:
        """Mutating a value after put, or a value got, changes nothing stored."""
        kv = await kv_of(stub)
        value = [1]
        kv.put("k", value)
        value.append(2)
        got = kv.get("k")
        got.append(3)
        assert kv.get("k") == [1]

    async def test_same_data_as_the_async_api(self, stub: Any) -> None:
        """kv and the asynchronous API read and write the same pairs."""

        async def body(obj: Any, ctx: durable.State) -> Any:
            await ctx.storage.put("a", 1)
            ctx.storage.kv.put("b", 2)
            return ctx.storage.kv.get("a"), await ctx.storage.get("b"), dict(await ctx.storage.list())

        assert await inside(stub, body) == (1, 2, {"a": 1, "b": 2})

    async def test_bad_keys(self, stub: Any) -> None:
        """Keys must be valid str."""
        kv = await kv_of(stub)
        with pytest.raises(TypeError, match="must be str"):
            kv.put(1, "x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be str"):
            kv.get(b"k")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="lone surrogate"):
            kv.delete("a\ud800")

    async def test_bad_values(self, stub: Any) -> None:
        """A value that cannot be stored raises DataCloneError, and nothing is written."""
        kv = await kv_of(stub)
        with pytest.raises(durable.DataCloneError, match="object"):
            kv.put("k", object())
        assert kv.get("k") is None

    async def test_limits(self, stub: Any) -> None:
        """Key plus value over 2 MB raises SQLite's TOOBIG; long keys are fine (SQLite backend)."""
        kv = await kv_of(stub)
        with pytest.raises(durable.StorageLimitError, match=r"^string or blob too big: SQLITE_TOOBIG \("):
            kv.put("v", b"x" * (2 * 1024 * 1024))
        kv.put("k" * 5000, b"x" * 200_000)
        assert len(kv.get("k" * 5000)) == 200_000

    async def test_kv_is_one_object_per_storage(self, stub: Any) -> None:
        """ctx.storage.kv is the same object every time."""
        assert await inside(stub, lambda o, c: c.storage.kv is c.storage.kv)


class TestList:
    """list() options and order."""

    KEYS = ["a", "ab", "abc", "b", "ba", "c", "é", "\U0001f600"]

    @pytest.fixture
    async def filled(self, stub: Any) -> Any:
        def fill(obj: Any, ctx: durable.State) -> None:
            for i, k in enumerate(self.KEYS):
                ctx.storage.kv.put(k, i)

        await inside(stub, fill)
        return stub

    @pytest.mark.parametrize(
        ("options", "keys"),
        [
            ({}, KEYS),
            ({"start": "b"}, ["b", "ba", "c", "é", "\U0001f600"]),
            ({"start_after": "b"}, ["ba", "c", "é", "\U0001f600"]),
            ({"startAfter": "b"}, ["ba", "c", "é", "\U0001f600"]),
            ({"end": "b"}, ["a", "ab", "abc"]),
            ({"prefix": "a"}, ["a", "ab", "abc"]),
            ({"prefix": "a", "start": "ab"}, ["ab", "abc"]),
            ({"reverse": True}, list(reversed(KEYS))),
            ({"reverse": True, "limit": 2}, ["\U0001f600", "é"]),
            ({"limit": 2}, ["a", "ab"]),
            ({"start": "c", "end": "b"}, []),
            ({"prefix": "z"}, []),
        ],
    )
    async def test_options(self, filled: Any, options: dict[str, Any], keys: list[str]) -> None:
        """Options compile as for storage.list(); pairs come in code-point order."""
        got = await filled.items(**options)
        assert [k for k, _ in got] == keys
        assert all(v == self.KEYS.index(k) for k, v in got)

    async def test_refused_options(self, stub: Any) -> None:
        """start with start_after, a limit that is not positive and unknown options raise TypeError."""
        kv = await kv_of(stub)
        with exactly(TypeError, "list() cannot be called with both start and startAfter values."):
            kv.list(start="a", start_after="b")
        with exactly(TypeError, "List limit must be positive."):
            kv.list(limit=0)
        with pytest.raises(TypeError, match="allow_concurrency"):
            kv.list(allow_concurrency=True)

    async def test_is_a_lazy_iterator(self, stub: Any) -> None:
        """list() returns an iterator of (key, value) pairs, read as it is advanced."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            for i in range(3):
                kv.put(f"k{i}", i)
            it = kv.list()
            first = next(it)
            kv.delete("k2")  # not yet read: the iterator does not return it
            return iter(it) is it, first, list(it)

        assert await inside(stub, body) == (True, ("k0", 0), [("k1", 1)])

    @pytest.mark.parametrize("reverse", [False, True])
    async def test_sees_writes_ahead_of_it(self, stub: Any, reverse: bool) -> None:
        """Each step reads the next pair as stored then, as workerd's cursor does (measured with
        miniflare: ``[a, b]`` after ``b`` is put and ``c`` deleted once ``a`` was read); a
        sqlite3 cursor would have read ``c`` already."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put("a", 1)
            kv.put("c", 3)
            if reverse:
                kv.put("e", 5)
            it = kv.list(reverse=reverse)
            out = [next(it)]
            kv.put("b", 2)
            kv.delete("c")
            kv.put("f" if reverse else "0", 0)  # behind the iterator: not seen
            out += list(it)
            return out

        expected = [("e", 5), ("b", 2), ("a", 1)] if reverse else [("a", 1), ("b", 2)]
        assert await inside(stub, body) == expected

    async def test_limit_counts_the_pairs_returned(self, stub: Any) -> None:
        """``limit`` bounds the pairs the iterator returns, whatever is written meanwhile."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            for key in "acegi":
                kv.put(key, key)
            it = kv.list(limit=3)
            out = [next(it)[0]]
            kv.put("b", "b")
            out += [key for key, _ in it]
            return out

        assert await inside(stub, body) == ["a", "b", "c"]


class TestOneLiveIterator:
    """Only one kv.list() iterator lives at a time."""

    async def test_new_list_invalidates_the_old_one(self, stub: Any) -> None:
        """The previous iterator's next step raises RuntimeError with Cloudflare's message."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put("a", 1)
            kv.put("b", 2)
            old = kv.list()
            first = next(old)
            new = kv.list()
            with exactly(RuntimeError, _storage.LIST_INVALIDATED):
                next(old)
            with exactly(RuntimeError, _storage.LIST_INVALIDATED):
                next(old)
            return first, list(new)

        assert await inside(stub, body) == (("a", 1), [("a", 1), ("b", 2)])

    async def test_storage_list_invalidates_it(self, stub: Any) -> None:
        """An async ``storage.list()`` started meanwhile invalidates it too (workerd, measured)."""

        async def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put("a", 1)
            kv.put("b", 2)
            it = kv.list()
            first = next(it)
            listed = await ctx.storage.list()
            with exactly(RuntimeError, _storage.LIST_INVALIDATED):
                next(it)
            return first, listed

        assert await inside(stub, body) == (("a", 1), {"a": 1, "b": 2})

    async def test_invalidated_before_its_first_step(self, stub: Any) -> None:
        """An iterator never advanced is invalidated too."""

        def body(obj: Any, ctx: durable.State) -> None:
            kv = ctx.storage.kv
            kv.put("a", 1)
            old = kv.list()
            kv.list(prefix="a")
            with exactly(RuntimeError, _storage.LIST_INVALIDATED):
                list(old)

        await inside(stub, body)

    async def test_finished_iterator_is_not_invalidated(self, stub: Any) -> None:
        """An iterator that already ended just stays ended."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put("a", 1)
            done = kv.list()
            assert list(done) == [("a", 1)]
            kv.list()
            return list(done)

        assert await inside(stub, body) == []

    async def test_empty_range_does_not_invalidate(self, stub: Any) -> None:
        """A list() whose range is empty never reaches the database, so the live iterator stays valid."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put("a", 1)
            kv.put("b", 2)
            live = kv.list()
            next(live)
            empty = kv.list(start="z", end="a")
            return list(empty), list(live)

        assert await inside(stub, body) == ([], [("b", 2)])


class TestWrites:
    """kv writes join the implicit transaction with every other write."""

    async def test_commit_with_sql(self, stub: Any) -> None:
        """kv and SQL writes of a turn are durable after it (they survive eviction)."""

        def body(obj: Any, ctx: durable.State) -> None:
            ctx.storage.kv.put("k", 1)
            ctx.storage.sql.exec("CREATE TABLE t (a); INSERT INTO t VALUES (1)")
            ctx.storage.kv.put("j", 2)
            ctx.storage.kv.delete("k")

        await inside(stub, body)
        await testing.evict(stub)
        assert await stub.items() == [("j", 2)]
        assert await testing.query(stub, "SELECT a FROM t") == [{"a": 1}]

    async def test_failed_commit_rolls_back(self, durable_runtime: durable.Runtime) -> None:
        """When the commit fails, the caller sees a reset error and the kv writes are gone."""
        ns = durable_runtime.namespace(Obj)
        stub = ns.get_by_name("a")
        await inside(stub, lambda o, c: c.storage.kv.put("keep", 1))
        testing.fail_next_commit(stub)

        def body(obj: Any, ctx: durable.State) -> None:
            ctx.storage.kv.put("new", 2)
            ctx.storage.kv.delete("keep")

        with pytest.raises(durable.ObjectResetError):
            await inside(stub, body)
        assert await ns.get_by_name("a").items() == [("keep", 1)]

    async def test_transaction_sync_rollback(self, stub: Any) -> None:
        """A failing transaction_sync undoes its kv writes."""

        def body(obj: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put("a", 1)

            def work() -> None:
                kv.put("a", 2)
                kv.put("b", 3)
                kv.delete("a")
                raise ValueError("undo")

            with pytest.raises(ValueError):
                ctx.storage.transaction_sync(work)
            return list(kv.list())

        assert await inside(stub, body) == [("a", 1)]

    async def test_reads_create_no_file(self, tmp_path: Path) -> None:
        """Reading and listing on a new persisted object create no database file; a delete, even of
        a missing key, does: workerd creates ``_cf_KV`` for it and a new instance still lists the
        table (tests/test_storage_order.py)."""
        async with durable.Runtime(path=tmp_path) as rt:
            stub = rt.namespace(Obj).get_by_name("fresh")
            assert await inside(stub, lambda o, c: (c.storage.kv.get("a"), list(c.storage.kv.list()))) == (None, [])
            assert not list(tmp_path.glob("Obj/*"))
            assert await inside(stub, lambda o, c: c.storage.kv.delete("a")) is False
            assert len(list(tmp_path.glob("Obj/*.sqlite"))) == 1

    async def test_used_after_reset(self, stub: Any) -> None:
        """A kv handle kept past a reset raises the reset error.

        (Not :func:`kv_of`, which marks the test body as the object's code: the
        reset would cancel the test's task as a task of the reset instance.)"""
        kv = await inside(stub, lambda o, c: c.storage.kv)
        with pytest.raises(durable.ObjectAbortedError):
            await inside(stub, lambda o, c: c.abort("bye"))
        with pytest.raises(durable.ObjectResetError):
            kv.get("a")

    async def test_kv_backed_namespace_has_no_sync_kv(self, durable_runtime: durable.Runtime) -> None:
        """On a storage="kv" namespace, storage.kv raises Cloudflare's error."""
        stub = durable_runtime.namespace(Obj, storage="kv").get_by_name("a")
        with pytest.raises(
            durable.DurableError, match=r"^The storage\.kv \(synchronous KV\) API is only available for SQLite-backed"
        ):
            await inside(stub, lambda o, c: c.storage.kv)


keys = st.text(alphabet=st.sampled_from(["a", "b", "é", "\x00", "\U0001f600"]), max_size=3)
list_options = st.fixed_dictionaries(
    {},
    optional={
        "start": keys,
        "start_after": keys,
        "end": keys,
        "prefix": keys,
        "reverse": st.booleans(),
        "limit": st.integers(min_value=1, max_value=4),
    },
)


class TestAgainstAsyncList:
    """kv.list() and storage.list() agree."""

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.dictionaries(keys, st.integers(), max_size=8), options=list_options)
    def test_same_pairs(self, data: dict[str, int], options: dict[str, Any]) -> None:
        """For random data and options, both give the same pairs in the same order, or the same error."""
        asyncio.run(self.check(data, options))

    async def check(self, data: dict[str, int], options: dict[str, Any]) -> None:
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("m")

            async def body(obj: Any, ctx: durable.State) -> Any:
                if data:
                    await ctx.storage.put(data)
                try:
                    expected: Any = list((await ctx.storage.list(**options)).items())
                except TypeError as exc:
                    expected = str(exc)
                try:
                    got: Any = list(ctx.storage.kv.list(**options))
                except TypeError as exc:
                    got = str(exc)
                return expected, got

            expected, got = await inside(stub, body)
            assert got == expected
