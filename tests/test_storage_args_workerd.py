"""Unusual and wrong arguments to the key-value storage API, answered as workerd answers them.

Every expectation here was measured in workerd (miniflare 4, compatibility date 2026-04-07) on
both backends, with the JavaScript value that a Python value stands for.
"""

from __future__ import annotations

from typing import Any

import pytest

import durable
from durable import testing

from helpers import WithAlarm, stub_on_backend

OUT_OF_RANGE = "Value out of range. Must be between -2147483648 and 2147483647 (inclusive)."


@pytest.fixture(params=["sqlite", "kv"])
def stub(request: pytest.FixtureRequest, durable_runtime: durable.Runtime) -> Any:
    """An object on each backend."""
    return stub_on_backend(request, durable_runtime)


@pytest.fixture
def sqlite_stub(durable_runtime: durable.Runtime) -> Any:
    """A SQLite-backed object (for ``ctx.storage.kv``)."""
    return durable_runtime.namespace(WithAlarm).get_by_name("a")


SEED = {"a": 1, "b": 2, "c": 3, "d": 4}


class TestFloatListLimit:
    """A float ``limit`` is read as workerd reads a number into an int32: truncated toward zero.

    workerd: ``list({limit: 1.5})`` lists one key and ``2.9`` two; ``0.5``, ``-0.5``, ``NaN``,
    ``Infinity`` and ``-Infinity`` raise ``TypeError: List limit must be positive.``;
    ``2147483647.9``, ``-2147483648.5`` and ``1e10`` raise ``TypeError: Value out of range. ...``.
    The same for ``txn.list()`` and ``kv.list()``.
    """

    LISTED = [(1.5, ["a"]), (2.9, ["a", "b"]), (3.0, ["a", "b", "c"]), (2147483647.0, ["a", "b", "c", "d"])]
    REFUSED = [
        (0.5, "List limit must be positive."),
        (-0.5, "List limit must be positive."),
        (-2147483648.0, "List limit must be positive."),
        (5e-324, "List limit must be positive."),
        (float("nan"), "List limit must be positive."),
        (float("inf"), "List limit must be positive."),
        (float("-inf"), "List limit must be positive."),
        (2147483647.9, OUT_OF_RANGE),
        (-2147483648.5, OUT_OF_RANGE),
        (1e10, OUT_OF_RANGE),
        (-1e10, OUT_OF_RANGE),
    ]

    @pytest.mark.parametrize(("limit", "expected"), LISTED)
    async def test_listed(self, stub: Any, limit: float, expected: list[str]) -> None:
        """storage.list() and txn.list() list as many keys as the truncated limit."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put(SEED)

            async def in_txn(txn: durable.Transaction) -> list[str]:
                return list(await txn.list(limit=limit))

            return list(await ctx.storage.list(limit=limit)), await ctx.storage.transaction(in_txn)

        assert await testing.run_in_object(stub, body) == (expected, expected)

    @pytest.mark.parametrize(("limit", "expected"), LISTED)
    async def test_sync_kv_listed(self, sqlite_stub: Any, limit: float, expected: list[str]) -> None:
        """kv.list() too."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put(SEED)
            return [key for key, _ in ctx.storage.kv.list(limit=limit, reverse=False)]

        assert await testing.run_in_object(sqlite_stub, body) == expected

    @pytest.mark.parametrize(("limit", "message"), REFUSED)
    async def test_refused(self, stub: Any, limit: float, message: str) -> None:
        """Past the int32 range, or zero once truncated: workerd's TypeError."""
        with pytest.raises(TypeError) as info:
            await testing.run_in_object(stub, lambda o, c: c.storage.list(limit=limit))
        assert str(info.value) == message

    @pytest.mark.parametrize(("limit", "message"), REFUSED)
    async def test_sync_kv_refused(self, sqlite_stub: Any, limit: float, message: str) -> None:
        """kv.list() refuses them the same way."""
        with pytest.raises(TypeError) as info:
            await testing.run_in_object(sqlite_stub, lambda o, c: c.storage.kv.list(limit=limit))
        assert str(info.value) == message


class TestNotCallableTransaction:
    """transaction() and transaction_sync() of something not callable: workerd's TypeError text."""

    @pytest.mark.parametrize(
        ("method", "name"), [("transaction", "transaction"), ("transaction_sync", "transactionSync")]
    )
    async def test_text(self, stub: Any, method: str, name: str) -> None:
        """workerd: ``transaction(5)`` raises ``TypeError: Failed to execute 'transaction' on
        'DurableObjectStorage': parameter 1 is not of type 'function'.`` (``'transactionSync'``)."""
        with pytest.raises(TypeError) as info:
            await testing.run_in_object(stub, lambda o, c: getattr(c.storage, method)(5))
        assert str(info.value) == (
            f"Failed to execute '{name}' on 'DurableObjectStorage': parameter 1 is not of type 'function'."
        )


class TestSyncKvPutWithoutValue:
    """kv.put(key) without a value: workerd's TypeError, and nothing is stored."""

    @pytest.mark.parametrize("key", ["a", {"a": 1}])
    async def test_text(self, sqlite_stub: Any, key: Any) -> None:
        """workerd: ``kv.put("a")`` and ``kv.put({a: 1})`` raise ``TypeError: Failed to execute 'put'
        on 'SyncKvStorage': parameter 2 is not of type 'JsValue'.``."""

        def body(o: Any, ctx: durable.State) -> Any:
            try:
                ctx.storage.kv.put(key)
            except TypeError as exc:
                return str(exc), list(ctx.storage.kv.list())
            return None

        message, listed = await testing.run_in_object(sqlite_stub, body)
        assert message == "Failed to execute 'put' on 'SyncKvStorage': parameter 2 is not of type 'JsValue'."
        assert listed == []


class TestEmptyEndIsAnEmptyRange:
    """``end=""`` lists nothing without reaching the database, as workerd's start defaults to ""."""

    @pytest.mark.parametrize(
        "options",
        [{"end": ""}, {"end": "", "prefix": ""}, {"end": "", "reverse": True, "limit": 1}],
    )
    async def test_live_iterator_survives(self, sqlite_stub: Any, options: dict[str, Any]) -> None:
        """workerd: a kv.list() iterator goes on after ``kv.list({end: ""})`` or ``list({end: ""})``,
        both empty (``end: "\\0"`` does reach the database and invalidates it, as here)."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put(SEED)
            kv = ctx.storage.kv
            live = kv.list()
            next(live)
            listed = list(kv.list(**options)), await ctx.storage.list(**options)
            return listed, [key for key, _ in live]

        assert await testing.run_in_object(sqlite_stub, body) == (([], {}), ["b", "c", "d"])

    async def test_nul_end_still_invalidates(self, sqlite_stub: Any) -> None:
        """``end="\\0"`` is a real (empty) range: the live iterator is invalidated, as in workerd."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put(SEED)
            live = ctx.storage.kv.list()
            next(live)
            assert list(ctx.storage.kv.list(end="\0")) == []
            return next(live)

        with pytest.raises(RuntimeError, match="invalidated"):
            await testing.run_in_object(sqlite_stub, body)


class TestWhichRangesReachTheDatabase:
    """A range is empty, and reaches no database, exactly when workerd's bytes say so.

    Lone surrogates in bounds order as workerd's bytes do; a range that no key can match (a
    prefix with a lone surrogate, two bounds between U+D7FF and U+E000) still reaches the database
    there, so it invalidates a live ``kv.list()`` iterator. Measured with miniflare 4 (2026-04-07),
    for the keys of ``KEYS``: what ``kv.list(options)`` lists, and whether the live iterator then
    goes on (its 8 remaining pairs) or is invalidated.
    """

    KEYS = {
        "a": 1,
        "\ud7ff": 2,
        "\ue000": 3,
        "\U0001f600": 4,
        "b": 5,
        "ba": 6,
        "a\ud7ff": 7,
        "a\ue000": 8,
        "\ud7ffz": 9,
    }

    @pytest.mark.parametrize(
        ("options", "listed", "invalidated"),
        [
            ({"prefix": "\ud800"}, [], True),
            ({"prefix": "a\udc00"}, [], True),
            ({"start": "\ud800", "end": "\ud801"}, [], True),
            ({"start": "a\ud800", "end": "\udbff"}, ["a\ue000", "b", "ba", "\ud7ff", "\ud7ffz"], True),
            ({"prefix": "a\ud7ff", "start": "a\ud800"}, [], False),
            ({"prefix": "\ud7ff"}, ["\ud7ff", "\ud7ffz"], True),
            ({"prefix": "\ud7ff", "end": "\ud800"}, ["\ud7ff", "\ud7ffz"], True),
            ({"start_after": "\udfff"}, ["\ue000", "\U0001f600"], True),
            ({"start_after": "\udfff", "end": "\ue000"}, [], True),
            ({"start": "\ue000", "end": "\udfff"}, [], False),
            ({"start": "", "end": ""}, [], False),
            ({"end": "\0"}, [], True),
            ({"prefix": "b", "end": "b"}, [], False),
            ({"prefix": "b", "start": "c"}, [], False),
            ({"prefix": "b", "start": "a", "end": "a\uffff"}, [], False),
            ({"prefix": "\U0010ffff"}, [], True),
            ({"start": "\ud800", "reverse": True, "limit": 1}, ["\U0001f600"], True),
        ],
    )
    async def test_kv_list(
        self, sqlite_stub: Any, options: dict[str, Any], listed: list[str], invalidated: bool
    ) -> None:
        """kv.list(options) lists what workerd lists, and invalidates the live iterator as it does."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put(self.KEYS)
            live = ctx.storage.kv.list()
            next(live)
            keys = [key for key, _ in ctx.storage.kv.list(**options)]
            try:
                rest: object = len(list(live))
            except RuntimeError:
                rest = "invalidated"
            return keys, rest

        assert await testing.run_in_object(sqlite_stub, body) == (listed, "invalidated" if invalidated else 8)


class TestDeletingAKeyTooLongForSqlite:
    """A SQLite-backed ``delete()`` of a key longer than SQLite's length limit raises, as in workerd.

    workerd (miniflare 4, 2026-04-07): ``delete(<3 MB key>)``, ``kv.delete(...)`` and
    ``delete([<3 MB key>])`` raise ``Error: string or blob too big: SQLITE_TOOBIG``;
    ``delete(["a", <3 MB key>, "b"])`` raises after deleting "a" ("b" stays); ``get`` and ``list``
    of such a key find nothing, without an error. (Its limit lies near 2.5 MB; durable's is the
    2 MB of ``Limits.sqlite_max_row_bytes``, as for ``put``.)
    """

    BIG = "x" * (3 * 1024 * 1024)
    TOOBIG = "string or blob too big: SQLITE_TOOBIG"

    async def test_delete_raises(self, sqlite_stub: Any) -> None:
        """delete(key), delete([key]) and kv.delete(key) raise SQLITE_TOOBIG."""

        async def body(o: Any, ctx: durable.State) -> Any:
            messages = []
            for call in (
                lambda: ctx.storage.delete(self.BIG),
                lambda: ctx.storage.delete([self.BIG]),
                lambda: ctx.storage.kv.delete(self.BIG),
            ):
                try:
                    call()
                except durable.StorageLimitError as exc:
                    messages.append(str(exc))
            return messages

        messages = await testing.run_in_object(sqlite_stub, body)
        assert len(messages) == 3
        assert all(message.startswith(self.TOOBIG) for message in messages)

    async def test_keys_before_it_are_deleted(self, sqlite_stub: Any) -> None:
        """delete(["a", big, "b"]) deletes "a", then raises; "b" stays."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put({"a": 1, "b": 2})
            with pytest.raises(durable.StorageLimitError, match="SQLITE_TOOBIG"):
                ctx.storage.delete(["a", self.BIG, "b"])
            return await ctx.storage.list()

        assert await testing.run_in_object(sqlite_stub, body) == {"b": 2}
        assert await testing.run_in_object(sqlite_stub, lambda o, c: c.storage.list()) == {"b": 2}

    async def test_reads_find_nothing(self, sqlite_stub: Any) -> None:
        """get, kv.get and list(start=big) answer as for any missing key."""

        async def body(o: Any, ctx: durable.State) -> Any:
            return (
                await ctx.storage.get(self.BIG),
                ctx.storage.kv.get(self.BIG),
                await ctx.storage.get([self.BIG]),
                await ctx.storage.list(start=self.BIG),
            )

        assert await testing.run_in_object(sqlite_stub, body) == (None, None, {}, {})

    async def test_unlimited(self) -> None:
        """Without the limit, such a key is deleted like any other."""
        async with durable.Runtime(limits=durable.Limits.unlimited()) as rt:
            stub = rt.namespace(WithAlarm).get_by_name("a")

            async def body(o: Any, ctx: durable.State) -> Any:
                return await ctx.storage.delete(self.BIG), ctx.storage.kv.delete(self.BIG)

            assert await testing.run_in_object(stub, body) == (False, False)


class TestTxnDeleteAll:
    """``txn.deleteAll`` exists, as on workerd's transaction object, and always raises.

    workerd (miniflare 4, 2026-04-07), both backends: the txn's prototype has ``get``, ``list``,
    ``put``, ``delete``, ``deleteAll``, ``rollback`` and the alarm methods; ``txn.deleteAll()``
    throws ``Error: Cannot call deleteAll() within a transaction``, inside the closure and on a txn
    kept past it (committed or rolled back). durable had ``delete_all`` but not its camelCase name.
    """

    @pytest.mark.parametrize("end", ["inside", "return", "rollback"])
    async def test_raises(self, stub: Any, end: str) -> None:
        """deleteAll() and delete_all() raise workerd's error; nothing is deleted."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put("a", 1)
            kept: list[Any] = []
            messages = []

            async def closure(txn: Any) -> None:
                kept.append(txn)
                if end == "inside":
                    for call in (txn.deleteAll, txn.delete_all):
                        try:
                            call()
                        except durable.InvalidTransactionError as exc:
                            messages.append(str(exc))
                elif end == "rollback":
                    txn.rollback()

            await ctx.storage.transaction(closure)
            if end != "inside":
                for call in (kept[0].deleteAll, kept[0].delete_all):
                    try:
                        call()
                    except durable.InvalidTransactionError as exc:
                        messages.append(str(exc))
            return messages, await ctx.storage.get("a")

        assert await testing.run_in_object(stub, body) == (["Cannot call deleteAll() within a transaction"] * 2, 1)


class TestPutEntriesWithNone:
    """``put(entries, None)`` is ``put(entries)``: workerd reads a null second argument as no options.

    workerd (miniflare 4, 2026-04-07), both backends: ``put({a: 1}, null)``, ``put({a: 1},
    undefined)`` and ``put({}, null)`` store the entries; ``put({a: 1}, v)`` for ``v`` of ``5``,
    ``"x"``, ``0`` and ``false`` raises ``TypeError: put() may only be called with a single key-value pair and optional
    options as put(key, value, options) or ...``, also on ``txn``. durable raised that for ``None``.
    """

    async def test_stores_the_entries(self, stub: Any) -> None:
        """storage.put(dict, None) and txn.put(dict, None) store every pair; put({}, None) nothing."""

        async def body(o: Any, ctx: durable.State) -> Any:
            await ctx.storage.put({"a": 1, "b": 2}, None)
            await ctx.storage.put({}, None)

            async def closure(txn: durable.Transaction) -> None:
                await txn.put({"c": 3}, None)

            await ctx.storage.transaction(closure)
            return await ctx.storage.list()

        assert await testing.run_in_object(stub, body) == {"a": 1, "b": 2, "c": 3}

    @pytest.mark.parametrize("value", [5, "x", 0, False])
    async def test_other_values_still_refused(self, stub: Any, value: Any) -> None:
        """Any other second argument is still workerd's TypeError, and nothing is stored."""

        async def body(o: Any, ctx: durable.State) -> Any:
            try:
                ctx.storage.put({"a": 1}, value)
            except TypeError as exc:
                return str(exc).startswith(
                    "put() may only be called with a single key-value pair"
                ), await ctx.storage.list()
            return None

        assert await testing.run_in_object(stub, body) == (True, {})


ROLLED_BACK = "Cannot {op}() on rolled back transaction"
COMMITTED = "Cannot call {op}() on transaction that has already committed: did you move `txn` outside of the closure?"


async def _on_ended_txn(stub: Any, end: str, call: Any) -> Any:
    """``call(txn)`` on a transaction rolled back inside its closure, or kept past its commit:
    its result, or ``(exception class name, message)``; and what storage then lists."""

    def outcome(fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            return type(exc).__name__, str(exc)

    async def body(o: Any, ctx: durable.State) -> Any:
        await ctx.storage.put("z", 0)
        kept: list[Any] = []

        async def closure(txn: durable.Transaction) -> Any:
            kept.append(txn)
            if end == "rollback":
                txn.rollback()
                return outcome(lambda: call(txn))
            return None

        result = await ctx.storage.transaction(closure)
        if end == "commit":
            result = outcome(lambda: call(kept[0]))
        if hasattr(result, "__await__"):
            result = await result
        return result, await ctx.storage.list()

    return await testing.run_in_object(stub, body)


class TestEndedTransactionReadsItsArgumentsFirst:
    """A call on a rolled-back or committed ``txn`` raises what its arguments raise, before the
    transaction's own error, and ``list()`` of an empty range answers ``{}``.

    workerd (miniflare 4, 2026-04-07), both backends, on a txn after ``txn.rollback()`` and on one
    kept past its closure: ``list({end: ""})``, ``list({start: "b", end: "a"})`` and ``list({prefix:
    "a", start: "b"})`` resolve to an empty Map; ``list({start, startAfter})`` and ``list({limit:
    0})`` raise their TypeErrors, ``put("a", undefined)`` ``put() called with undefined value.``,
    ``put("a", Symbol())`` a DataCloneError, ``setAlarm(0)`` ``setAlarm() cannot be called with an
    alarm time <= 0``; only then ``put({})``, ``get([])``, ``delete([])``, ``list({start: "a"})``
    and ``put("a", 1)`` raise ``Cannot put() on rolled back transaction`` (or ``Cannot call put()
    on transaction that has already committed: ...``). (workerd's DurableObjectTransaction reads
    the arguments before its ``getCache()``, which checks the transaction.) durable raised the
    transaction's error for all of them.
    """

    EMPTY_RANGES = [{"end": ""}, {"start": "b", "end": "a"}, {"prefix": "a", "start": "b"}, {"prefix": "b", "end": "b"}]

    @pytest.mark.parametrize("end", ["rollback", "commit"])
    @pytest.mark.parametrize("options", EMPTY_RANGES)
    async def test_empty_range_lists_nothing(self, stub: Any, end: str, options: dict[str, Any]) -> None:
        """list() of an empty range answers {} without the transaction's error."""
        assert await _on_ended_txn(stub, end, lambda txn: txn.list(**options)) == ({}, {"z": 0})

    @pytest.mark.parametrize("end", ["rollback", "commit"])
    @pytest.mark.parametrize(
        ("call", "error"),
        [
            (
                lambda txn: txn.list(start="a", start_after="b"),
                "list() cannot be called with both start and startAfter values.",
            ),
            (lambda txn: txn.list(limit=0), "List limit must be positive."),
            (lambda txn: txn.list(startAfter="a", limit=-1), "List limit must be positive."),
            (lambda txn: txn.put("a"), "put() called with undefined value."),
            (lambda txn: txn.set_alarm(0), "setAlarm() cannot be called with an alarm time <= 0"),
            (lambda txn: txn.setAlarm(-5), "setAlarm() cannot be called with an alarm time <= 0"),
        ],
    )
    async def test_bad_arguments_raise_their_error(self, stub: Any, end: str, call: Any, error: str) -> None:
        """Bad list() options, put() without a value and a time <= 0: workerd's TypeError."""
        assert await _on_ended_txn(stub, end, call) == (("TypeError", error), {"z": 0})

    @pytest.mark.parametrize("end", ["rollback", "commit"])
    @pytest.mark.parametrize("call", [lambda txn: txn.put("a", object()), lambda txn: txn.put({"a": 1, "b": object()})])
    async def test_a_value_that_cannot_be_stored(self, stub: Any, end: str, call: Any) -> None:
        """put() of a value that cannot be serialized: DataCloneError, as workerd serializes first."""
        (name, _), listed = await _on_ended_txn(stub, end, call)
        assert (name, listed) == ("DataCloneError", {"z": 0})

    @pytest.mark.parametrize("end", ["rollback", "commit"])
    @pytest.mark.parametrize(
        ("call", "op"),
        [
            (lambda txn: txn.put({}), "put"),
            (lambda txn: txn.put("a", 1), "put"),
            (lambda txn: txn.get([]), "get"),
            (lambda txn: txn.get("z"), "get"),
            (lambda txn: txn.delete([]), "delete"),
            (lambda txn: txn.list(start="a"), "list"),
            (lambda txn: txn.list(), "list"),
            (lambda txn: txn.set_alarm(4_102_444_800_000), "setAlarm"),
            (lambda txn: txn.get_alarm(), "getAlarm"),
            (lambda txn: txn.delete_alarm(), "deleteAlarm"),
        ],
    )
    async def test_good_arguments_get_the_transactions_error(self, stub: Any, end: str, call: Any, op: str) -> None:
        """Arguments that pass: the transaction's own error, as before; nothing is written."""
        message = (ROLLED_BACK if end == "rollback" else COMMITTED).format(op=op)
        assert await _on_ended_txn(stub, end, call) == (("InvalidTransactionError", message), {"z": 0})

    @pytest.mark.parametrize("end", ["rollback", "commit"])
    @pytest.mark.parametrize(
        "call",
        [
            lambda txn: txn.get(5),
            lambda txn: txn.get(["a", 5]),
            lambda txn: txn.delete(5),
            lambda txn: txn.get("a", bogus=1),
            lambda txn: txn.put("a", 1, bogus=1),
            lambda txn: txn.put({"a": 1}, 5),
            lambda txn: txn.put({5: 1}),
            lambda txn: txn.list(bogus=1),
            lambda txn: txn.get_alarm(no_cache=True),
            lambda txn: txn.delete_alarm(no_cache=True),
            lambda txn: txn.set_alarm("x"),
        ],
    )
    async def test_wrong_types_raise_type_error(self, stub: Any, end: str, call: Any) -> None:
        """A key, option or time of the wrong type is a TypeError first too (workerd's argument
        conversion runs before the method: ``get("a", 5)`` on a rolled-back txn is ``parameter 2 is
        not of type 'GetOptions'``)."""
        (name, _), listed = await _on_ended_txn(stub, end, call)
        assert (name, listed) == ("TypeError", {"z": 0})


class TestTxnSetAlarmNamesTheTransaction:
    """``txn.setAlarm(x)`` of something that is not a time names ``DurableObjectTransaction``.

    workerd (miniflare 4, 2026-04-07): ``txn.setAlarm("x")`` and ``txn.setAlarm(null)`` raise
    ``TypeError: Failed to execute 'setAlarm' on 'DurableObjectTransaction': parameter 1 is not of
    type 'date'.``, inside the closure and on a rolled-back txn (``storage.setAlarm("x")`` names
    ``DurableObjectStorage``). durable named ``DurableObjectStorage`` for both.
    """

    @pytest.mark.parametrize("when", ["x", None, True])
    async def test_text(self, stub: Any, when: Any) -> None:
        """txn.set_alarm(when) and storage.set_alarm(when): each object's name."""

        async def body(o: Any, ctx: durable.State) -> Any:
            messages = []

            async def closure(txn: durable.Transaction) -> None:
                for call in (txn.set_alarm, ctx.storage.set_alarm):
                    try:
                        call(when)
                    except TypeError as exc:
                        messages.append(str(exc))

            await ctx.storage.transaction(closure)
            return messages

        text = "Failed to execute 'setAlarm' on '{}': parameter 1 is not of type 'date'."
        assert await testing.run_in_object(stub, body) == [
            text.format("DurableObjectTransaction"),
            text.format("DurableObjectStorage"),
        ]
