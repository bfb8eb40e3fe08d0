"""The parts ``ctx.storage`` is made of (issue 12): each one works through its own small interface.

``_keys`` (key, value, range and alarm-time checks) is pure: its checks run
here without a runtime, on a stand-in for the host. ``SyncKV`` and ``Storage`` reach the
transaction machinery only through ``Transactions``' named interface, and the unrestricted SQL of
``durable.testing.query`` is a package function, not a method applications could find.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

import durable
from durable import _keys, _sql, _transaction
from durable._done import NONE, Done

from helpers import exactly, inside


def host(*, kv_backed: bool = True, now_ms: int = 1_700_000_000_000, alarm: bool = True) -> Any:
    """A stand-in for the ``StorageHost`` protocol, with what the pure checks read of it."""
    return SimpleNamespace(kv_backed=kv_backed, limits=durable.Limits(), now_ms=lambda: now_ms, has_alarm_handler=alarm)


class Obj(durable.DurableObject):
    async def alarm(self) -> None:
        pass


class TestKeys:
    """Keys, values and ranges are checked by ``_keys`` alone, with Cloudflare's texts."""

    def test_a_key_is_a_str_within_the_limit(self) -> None:
        """A str key passes; another type and an oversized key of a key-value object are refused."""
        assert _keys.check_key("a", host()) == "a"
        with exactly(TypeError, "Storage keys must be str, not int"):
            _keys.check_key(1, host())
        with exactly(
            durable.StorageLimitError, "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."
        ):
            _keys.check_key("k" * 2049, host())
        assert _keys.check_key("k" * 2049, host(kv_backed=False)) == "k" * 2049

    def test_a_key_with_a_lone_surrogate_is_refused(self) -> None:
        """No key may hold a lone surrogate."""
        with pytest.raises(TypeError, match="lone surrogate at index 1"):
            _keys.check_key("a\ud800", host())

    def test_values_and_batches_have_their_backend_limits(self) -> None:
        """The key-value backend limits values and batches; the SQLite one limits key plus value."""
        assert isinstance(_keys.encode_checked("k", "v", host()), bytes)
        with pytest.raises(durable.StorageLimitError, match=r"^Values cannot be larger than 131072 bytes\."):
            _keys.encode_checked("k", "x" * 131072, host())
        _keys.check_batch(129, host(kv_backed=False))
        with exactly(durable.StorageLimitError, "Maximum number of key value pairs is 128. 129 pairs were provided."):
            _keys.check_batch(129, host())

    @pytest.mark.parametrize(
        ("options", "bounds"),
        [
            ({}, (None, None)),
            ({"start": "b", "end": "d"}, ("b", "d")),
            ({"start_after": "b"}, ("b\0", None)),
            ({"prefix": "ab"}, ("ab", "ac")),
            ({"prefix": "a\U0010ffff"}, ("a\U0010ffff", "b")),
            ({"start": "d", "end": "b"}, None),
            ({"end": ""}, None),
            ({"prefix": "\ud800"}, ("\ue000", "\ue000")),  # no key, but it reaches the database
            ({"prefix": "a\ud7ff", "start": "a\ud800"}, None),
        ],
    )
    def test_list_options_compile_to_a_half_open_range(
        self, options: dict[str, Any], bounds: tuple[str | None, str | None] | None
    ) -> None:
        """``list()`` options become ``[lo, hi)`` as workerd compiles them, or None when empty."""
        assert _keys.compile_range(**options) == bounds


class TestAlarmTimes:
    """``set_alarm``'s time checks need only the host's clock and whether the class has ``alarm()``."""

    def test_milliseconds_and_datetimes(self) -> None:
        """A time in ms is kept as an int; a datetime becomes its ms since the epoch."""
        assert _keys.alarm_time_ms(1_700_000_060_000.5, host()) == 1_700_000_060_000
        when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        assert _keys.alarm_time_ms(when, host()) == int(when.timestamp() * 1000)

    def test_seconds_are_refused(self) -> None:
        """A time that is plainly seconds since the epoch is refused, saying so."""
        with pytest.raises(TypeError, match=r"looks like seconds"):
            _keys.alarm_time_ms(1_700_000_060, host())

    def test_workerd_refusals(self) -> None:
        """Times <= 0, out of a kj::Date, and classes without ``alarm()`` get workerd's texts."""
        with exactly(TypeError, "setAlarm() cannot be called with an alarm time <= 0"):
            _keys.alarm_time_ms(0, host())
        with exactly(TypeError, "This API doesn't support dates after 2189."):
            _keys.alarm_time_ms(2.0**63, host())
        with exactly(TypeError, "Your Durable Object class must have an alarm() handler in order to call setAlarm()"):
            _keys.alarm_time_ms(1_700_000_060_000, host(alarm=False))


class TestDone:
    """The resolved awaitable lives in ``_done`` and keeps its public name and its errors."""

    async def test_await_returns_the_value(self) -> None:
        """Awaiting a Done returns its value; the shared NONE carries None."""
        assert await Done(3) == 3
        assert NONE.value is None
        assert Done.__name__ == "StorageAwaitable"

    def test_used_as_a_value_it_asks_for_await(self) -> None:
        """Arithmetic on it raises the "did you forget await?" TypeError."""
        with pytest.raises(TypeError, match="did you forget await"):
            Done(1) + 1  # type: ignore[operator]

    async def test_the_shared_none_awaits_without_python_and_is_a_done_in_every_other_way(self) -> None:
        """NONE's class awaits through C (thirteenth pass: one finished generator, shared): an
        await (again and again), a ``yield from`` of its ``__await__()``, its ``send(None)`` and
        asyncio's wrappers all give None; a Done with a value still awaits through Done's
        generator; NONE keeps Done's name, repr and errors."""
        none: Any = NONE
        for _ in range(3):
            assert await none is None
        for _ in range(2):
            with pytest.raises(StopIteration) as stop:
                NONE.__await__().send(None)
            assert stop.value.value is None

        def by_hand() -> Any:
            return (yield from NONE.__await__())

        with pytest.raises(StopIteration) as stop:
            by_hand().send(None)
        assert stop.value.value is None
        assert await asyncio.ensure_future(none) is None
        assert list(await asyncio.gather(none, Done(2))) == [None, 2]
        assert await Done[Any](None) is None and await Done(0) == 0
        assert isinstance(NONE, Done) and type(NONE).__name__ == "StorageAwaitable" and repr(NONE) == repr(Done(None))
        with pytest.raises(TypeError, match="did you forget await"):
            NONE + 1  # type: ignore[operator]
        with pytest.raises(AttributeError, match="'StorageAwaitable' object has no attribute 'items'.*forget await"):
            NONE.items  # type: ignore[attr-defined]


class TestSeams:
    """Storage's parts meet through named interfaces."""

    def test_public_classes_keep_their_names(self) -> None:
        """``Transaction`` and ``SyncKV`` moved modules but are still ``durable.X``."""
        assert durable.Transaction is _transaction.Transaction
        assert f"{durable.Transaction.__module__}.{durable.Transaction.__qualname__}" == "durable.Transaction"
        assert f"{durable.SyncKV.__module__}.{durable.SyncKV.__qualname__}" == "durable.SyncKV"

    def test_unrestricted_sql_is_not_on_the_sql_api(self) -> None:
        """Applications cannot find a way around the SQL rules on ``ctx.storage.sql``."""
        assert not [name for name in dir(durable.SqlStorage) if "unrestricted" in name or "trusted" in name]
        assert callable(_sql.exec_unrestricted)

    async def test_exec_unrestricted_lifts_the_rules(self, durable_runtime: durable.Runtime) -> None:
        """``exec_unrestricted`` runs a PRAGMA that ``sql.exec`` refuses, on the same connection."""
        stub = durable_runtime.namespace(Obj, storage="sqlite").get_by_name("a")

        def body(obj: Any, ctx: durable.State) -> tuple[list[Any], str]:
            rows = [row.to_py() for row in _sql.exec_unrestricted(ctx.storage.sql, "PRAGMA user_version", ())]
            try:
                ctx.storage.sql.exec("PRAGMA user_version")
            except durable.SqlError as exc:
                return rows, str(exc)
            return rows, "accepted"

        rows, refusal = await inside(stub, body)
        assert rows == [{"user_version": 0}]
        assert refusal.startswith("not authorized")

    async def test_a_transaction_holds_off_other_code_through_transactions(
        self, durable_runtime: durable.Runtime
    ) -> None:
        """While one event's transaction runs, ``kv`` and ``sql`` of another event refuse, by ``check_sync``."""
        stub = durable_runtime.namespace(Obj, storage="sqlite").get_by_name("a")

        async def body(obj: Any, ctx: durable.State) -> list[str]:
            import asyncio

            started, release = asyncio.Event(), asyncio.Event()

            async def closure(txn: durable.Transaction) -> None:
                started.set()
                await release.wait()

            task = ctx.storage.transaction(closure)
            await started.wait()
            refused = []
            for call in (lambda: ctx.storage.kv.get("k"), lambda: ctx.storage.sql.exec("SELECT 1")):
                try:
                    call()
                except durable.InvalidTransactionError as exc:
                    refused.append(str(exc).split(" while ")[0])
            release.set()
            await task
            return refused

        assert await inside(stub, body) == ["Cannot call kv.get()", "Cannot call sql.exec()"]
