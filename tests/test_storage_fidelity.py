"""The key-value storage API, call by call, against what workerd does (measured with miniflare 4,
compatibility date 2026-04-07, on SQLite-backed and key-value-backed objects alike)."""

from __future__ import annotations

import enum
import functools
from typing import Any

import pytest

import durable

from helpers import WithAlarm, exactly, inside, stub_on_backend


@pytest.fixture(params=["sqlite", "kv"])
def stub(request: pytest.FixtureRequest, durable_runtime: durable.Runtime) -> Any:
    """A new object of each backend."""
    return stub_on_backend(request, durable_runtime)


async def escaped_txn(ctx: durable.State, end: str) -> Any:
    """The ``txn`` of a transaction whose closure kept it, after the closure ended by ``end``:
    returning, calling ``rollback()`` then returning, or raising."""
    kept: list[Any] = []

    async def closure(txn: Any) -> None:
        kept.append(txn)
        if end == "rollback":
            txn.rollback()
        elif end == "raise":
            raise ValueError("closure failed")

    try:
        await ctx.storage.transaction(closure)
    except ValueError:
        pass
    return kept[0]


class TestTxnAfterTheClosure:
    """A txn kept past its closure says how its transaction ended."""

    @pytest.mark.parametrize("op", ["get", "put", "list", "setAlarm"])
    async def test_after_the_closure_raised(self, stub: Any, op: str) -> None:
        """A closure that raised was rolled back: workerd says ``Cannot put() on rolled back
        transaction`` (not "already committed") to the escaped txn."""

        async def body(o: Any, ctx: durable.State) -> Any:
            txn = await escaped_txn(ctx, "raise")
            calls = {
                "get": lambda: txn.get("a"),
                "put": lambda: txn.put("a", 1),
                "list": lambda: txn.list(),
                "setAlarm": lambda: txn.set_alarm(4 * 10**12),
            }
            await calls[op]()

        with exactly(durable.InvalidTransactionError, f"Cannot {op}() on rolled back transaction"):
            await inside(stub, body)

    @pytest.mark.parametrize("end", ["rollback", "raise"])
    async def test_rollback_again(self, stub: Any, end: str) -> None:
        """rollback() on a txn whose transaction ended rolled back does nothing, as in workerd
        (which returns undefined)."""

        async def body(o: Any, ctx: durable.State) -> Any:
            txn = await escaped_txn(ctx, end)
            return txn.rollback()

        assert await inside(stub, body) is None

    async def test_rollback_after_commit(self, stub: Any) -> None:
        """rollback() after a committed closure still raises workerd's "already committed" error."""

        async def body(o: Any, ctx: durable.State) -> Any:
            (await escaped_txn(ctx, "return")).rollback()

        with exactly(
            durable.InvalidTransactionError,
            "Cannot call rollback() on transaction that has already committed: did you move `txn` "
            "outside of the closure?",
        ):
            await inside(stub, body)


class Key(enum.StrEnum):
    COUNT = "count"
    OTHER = "other"


class MixinKey(str, enum.Enum):  # noqa: UP042 (the pre-3.11 spelling, whose str() differs)
    COUNT = "count"


class TestStrSubclassKeys:
    """A key that is a ``str`` subclass (a ``StrEnum`` member) is the key of its text.

    API.md: keys are ``str``, and a ``StrEnum`` member is one. (JavaScript has no such keys: its
    storage takes ``String(key)`` of a primitive key.) Before, ``put(Key.COUNT, 1)`` raised the
    message for a malformed ``put()`` call and ``get`` refused the key.
    """

    @pytest.mark.parametrize("key", [Key.COUNT, MixinKey.COUNT])
    async def test_async_api(self, stub: Any, key: str) -> None:
        """put, get (one key and a list), list bounds and delete take it; keys come back plain."""

        async def body(o: Any, ctx: durable.State) -> Any:
            s = ctx.storage
            await s.put(key, 1)
            await s.put({Key.OTHER: 2})
            listed = await s.list(start=key, prefix=Key.COUNT[:2])
            many = await s.get([key, Key.OTHER])
            got = await s.get(key)
            return got, many, listed, [type(k) for k in await s.list()], await s.delete(key), await s.get("count")

        got, many, listed, types, deleted, after = await inside(stub, body)
        assert (got, many, listed, deleted, after) == (1, {"count": 1, "other": 2}, {"count": 1}, True, None)
        assert types == [str, str]

    async def test_sync_kv(self, durable_runtime: durable.Runtime) -> None:
        """storage.kv takes it too, and stores the plain text."""
        stub = durable_runtime.namespace(WithAlarm).get_by_name("a")

        def body(o: Any, ctx: durable.State) -> Any:
            kv = ctx.storage.kv
            kv.put(Key.COUNT, 1)
            return kv.get("count"), [(type(k), k) for k, _ in kv.list(end=Key.OTHER)], kv.delete(Key.COUNT)

        assert await inside(stub, body) == (1, [(str, "count")], True)

    async def test_other_types_still_refused(self, stub: Any) -> None:
        """A key of another type is still a TypeError, with the same messages."""
        with exactly(TypeError, "get() takes a str key or a list of str keys, not bytes"):
            await inside(stub, lambda o, c: c.storage.get(b"count"))  # type: ignore[call-overload]
        with exactly(TypeError, "Storage keys must be str, not int"):
            await inside(stub, lambda o, c: c.storage.put({1: 1}))  # type: ignore[dict-item]
        with pytest.raises(TypeError, match=r"^put\(\) may only be called with a single key-value pair"):
            await inside(stub, lambda o, c: c.storage.put(5, 1))  # type: ignore[arg-type]


class TestClosureWithoutTxn:
    """``transaction(closure)`` with a closure of no argument calls it without ``txn``.

    JavaScript's ``ctx.storage.transaction(async () => { ... })`` ignores the argument (workerd,
    measured with miniflare: such a closure's writes straight on ``ctx.storage`` commit, or roll
    back when it throws); its Python port is a closure of no parameter.
    """

    async def test_coroutine_function(self, stub: Any) -> None:
        """Its writes commit with the transaction, and its value is the transaction's."""

        async def body(o: Any, ctx: durable.State) -> Any:
            async def work() -> int:
                await ctx.storage.put("a", 1)
                return 7

            return await ctx.storage.transaction(work), await ctx.storage.get("a")

        assert await inside(stub, body) == (7, 1)

    async def test_raises_rolls_back(self, stub: Any) -> None:
        """An error rolls its writes back, as for any closure."""

        async def body(o: Any, ctx: durable.State) -> Any:
            async def work() -> None:
                await ctx.storage.put("a", 1)
                raise ValueError("no")

            with pytest.raises(ValueError, match="^no$"):
                await ctx.storage.transaction(work)
            return await ctx.storage.list()

        assert await inside(stub, body) == {}

    async def test_other_callables(self, stub: Any) -> None:
        """A lambda of nothing, a bound method and a partial of no argument left; callables that
        take txn (a method, a partial, *args) still get it."""

        class Holder:
            async def without(self) -> str:
                return "method"

            async def with_txn(self, txn: Any) -> bool:
                return isinstance(txn, durable.Transaction)

        async def of(*args: Any) -> int:
            return len(args)

        async def pair(a: int, txn: Any) -> bool:
            return a == 1 and isinstance(txn, durable.Transaction)

        async def body(o: Any, ctx: durable.State) -> Any:
            t = ctx.storage.transaction
            return [
                await t(lambda: 5),
                await t(Holder().without),
                await t(functools.partial(pair, 1, None)),
                await t(Holder().with_txn),
                await t(of),
                await t(functools.partial(pair, 1)),
            ]

        assert await inside(stub, body) == [5, "method", False, True, 1, True]


class TestListOptionsNone:
    """Every ``list()`` option may be ``None``, meaning "not given": ``reverse=None`` raised
    ``TypeError`` where ``start=None`` and ``limit=None`` did not. (workerd, measured with miniflare:
    ``list({reverse: null})`` and ``kv.list({reverse: null})`` list ascending.)"""

    async def test_reverse_none(self, stub: Any) -> None:
        """reverse=None lists ascending, on storage.list, txn.list and (SQLite-backed) kv.list."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put({"a": 1, "b": 2})
            none: dict[str, Any] = {"reverse": None, "start": None, "limit": None, "prefix": None}
            in_txn = await ctx.storage.transaction(lambda txn: txn.list(**none))
            listed = [list(await ctx.storage.list(**none)), list(in_txn)]
            if "kv" not in repr(ctx.storage):  # storage.kv: SQLite-backed objects only
                listed.append([k for k, _ in ctx.storage.kv.list(**none)])
            return listed

        assert await inside(stub, body) in ([["a", "b"]] * 2, [["a", "b"]] * 3)
