"""How errors cross from a Durable Object to its caller, case by case, as measured in workerd.

Measured with miniflare 4 (compatibility date 2026-04-07), a Worker calling a Durable Object's
methods and ``stub.fetch()``, on KV-backed and SQLite-backed classes alike (the probe wrote the
same table for both; each row notes what the caller saw, and whether the object kept its
in-memory state, read through the same stub and through a new one):

- ``throw new Error / TypeError / RangeError`` in a method: the same class and message,
  ``remote: true``, no other own property; the object is not reset (the same stub and a new one
  reach the same instance, its in-memory counter intact).
- an ``Error`` with a ``cause``: the cause stays behind. The caller's ``stack`` names the
  caller's frames only.
- ``storage.transaction(async txn => { await txn.put(...); throw ... })``: the error crosses as
  above, the write is rolled back, no reset.
- a method that does not exist, or a name that is an instance field: ``TypeError: The RPC
  receiver does not implement the method "<name>".`` with ``remote: true``, no reset.
- SQL errors: ``near "SELEC": syntax error at offset 0: SQLITE_ERROR``, ``no such table: nope:
  SQLITE_ERROR``; on a KV-backed class, ``SQL is not enabled for this Durable Object class. ...``;
  no reset.
- ``ctx.abort(reason)``: ``reason`` (``Application called abort() to reset Durable Object.``
  without one), ``durableObjectReset: true``; the same stub keeps failing with it, a new stub
  reaches a fresh instance. A call in flight from another stub fails with the same error.
- ``blockConcurrencyWhile`` whose callback throws, even when the method catches the rejection:
  the caller gets the callback's error with ``durableObjectReset``; a call queued meanwhile from
  another stub fails with it too; the stubs stay broken, a new one reaches a fresh instance.
- a constructor that throws: every call on that stub gets the first error (with
  ``durableObjectReset``); a new stub runs the constructor again, and once it succeeds works.
- ``fetch()`` that throws: the error crosses as from a method (a custom class as described in
  docs/differences.md), no reset; a returned 500 ``Response`` is a response.
- an argument that cannot be serialized (a class instance): ``DataCloneError: Could not
  serialize object of type "Plain". This type does not support serialization.``, raised in the
  caller, without ``remote``; a result that cannot be: the same, with ``remote: true``. A
  function inside a plain object crosses as a stub. The object is not reset.
- an ``Error`` as an argument or result (not thrown): its class, message and cause arrive,
  without ``remote``; it can be stored too.

Differences kept on purpose (docs/differences.md: "Errors", "Exceptions are not stored"): a
subclass keeps its class here, ``remote`` is set on reset errors of RPC calls here, a SQL
message ends at the primary code, an exception cannot be stored.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable

_serial = itertools.count()


class Plain:
    pass


class CodedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 42


class Obj(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.instance = next(_serial)
        self.calls = 0
        self.field = 5

    async def state(self) -> tuple[int, int]:
        self.calls += 1
        return self.instance, self.calls

    async def raise_exception(self) -> None:
        raise Exception("boom")

    async def raise_type_error(self) -> None:
        raise TypeError("bad type")

    async def raise_value_error(self) -> None:
        raise ValueError("bad range")

    async def raise_coded(self) -> None:
        raise CodedError("custom msg")

    async def raise_with_cause(self) -> None:
        raise Exception("outer") from Exception("inner")

    async def raise_in_transaction(self) -> None:
        async def body(txn: Any) -> None:
            await txn.put("k", 1)
            raise Exception("tx boom")

        await self.ctx.storage.transaction(body)

    async def stored(self) -> Any:
        return await self.ctx.storage.get("k")

    async def bad_sql(self) -> None:
        self.ctx.storage.sql.exec("SELEC 1")

    async def abort(self) -> None:
        self.ctx.abort("my reason")

    async def abort_later(self) -> None:
        await asyncio.sleep(0.01)
        self.ctx.abort("slow abort")

    async def slow(self) -> str:
        await asyncio.sleep(0.2)
        return "done"

    async def bcw_caught(self) -> str:
        async def body() -> None:
            await asyncio.sleep(0.01)
            raise Exception("bcw boom")

        try:
            await self.ctx.block_concurrency_while(body)
        except Exception as exc:
            return f"caught {exc}"
        return "not raised"

    async def echo(self, value: Any) -> str:
        return type(value).__name__

    async def plain_result(self) -> Plain:
        return Plain()

    async def describe(self, error: BaseException) -> list[Any]:
        cause = error.__cause__
        return [
            type(error).__name__,
            str(error),
            None if cause is None else type(cause).__name__,
            None if cause is None else str(cause),
            bool(getattr(error, "remote", False)),
        ]

    async def returned_error(self) -> ValueError:
        error = ValueError("returned")
        error.__cause__ = KeyError("k")
        return error

    async def store_error(self) -> None:
        await self.ctx.storage.put("e", ValueError("stored"))

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/raise"):
            raise Exception("fetch boom")
        return durable.Response("oops", status=500)


class Failing(durable.DurableObject):
    built = 0

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        type(self).built += 1
        if type(self).built == 1:
            raise TypeError(f"constructor failed {type(self).built}")

    async def ping(self) -> str:
        return f"pong {type(self).built}"


@pytest.fixture(params=["kv", "sqlite"])
async def ns(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async with durable.Runtime() as runtime:
        yield runtime.namespace(Obj, storage=request.param)


async def raised(call: Any) -> BaseException:
    """The exception that ``await call()`` raises (at the call or when awaited)."""
    try:
        await call()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize(
    ("method", "cls", "message"),
    [
        ("raise_exception", Exception, "boom"),
        ("raise_type_error", TypeError, "bad type"),
        ("raise_value_error", ValueError, "bad range"),
        ("raise_with_cause", Exception, "outer"),
        ("raise_in_transaction", Exception, "tx boom"),
        ("missing", TypeError, 'The RPC receiver does not implement the method "missing".'),
        ("field", TypeError, 'The RPC receiver does not implement the method "field".'),
    ],
)
async def test_an_error_of_the_call_does_not_reset_the_object(ns: Any, method: str, cls: type, message: str) -> None:
    stub = ns.get_by_name(method)
    instance, _ = await stub.state()
    error = await raised(getattr(stub, method))
    assert type(error) is cls
    assert str(error) == message
    assert error.remote is True  # type: ignore[attr-defined]
    assert not getattr(error, "durable_object_reset", False)
    assert error.__cause__ is None  # workerd: the cause stays behind
    assert await stub.state() == (instance, 2)  # same instance, memory kept
    assert await ns.get_by_name(method).state() == (instance, 3)


async def test_a_custom_class_keeps_what_its_constructor_sets(ns: Any) -> None:
    error = await raised(ns.get_by_name("a").raise_coded)
    assert type(error) is CodedError and str(error) == "custom msg" and error.code == 42


async def test_a_transaction_that_raises_is_rolled_back(ns: Any) -> None:
    stub = ns.get_by_name("a")
    await raised(stub.raise_in_transaction)
    assert await stub.stored() is None


async def test_sql_errors_cross_with_sqlites_text(ns: Any) -> None:
    stub = ns.get_by_name("a")
    instance, _ = await stub.state()
    error = await raised(stub.bad_sql)
    if ns.storage == "sqlite":
        assert type(error) is durable.SqlError
        assert str(error) == 'near "SELEC": syntax error at offset 0: SQLITE_ERROR'
    else:
        assert type(error) is durable.DurableError
        assert str(error).startswith("SQL is not enabled for this Durable Object class.")
    assert error.remote is True
    assert await stub.state() == (instance, 2)  # not reset


async def test_abort_breaks_the_stubs_that_reached_the_instance(ns: Any) -> None:
    stub, other = ns.get_by_name("a"), ns.get_by_name("a")
    instance, _ = await stub.state()
    await other.state()
    caller, in_flight = await asyncio.gather(raised(stub.abort_later), raised(other.slow))
    for error in (caller, in_flight, await raised(stub.state), await raised(other.state)):
        assert type(error) is durable.ObjectAbortedError and str(error) == "slow abort"
        assert error.durable_object_reset is True
    assert (await ns.get_by_name("a").state())[0] != instance  # a fresh instance


async def test_a_failing_block_concurrency_while_resets_even_if_caught(ns: Any) -> None:
    stub, other = ns.get_by_name("a"), ns.get_by_name("a")
    instance, _ = await stub.state()
    await other.state()

    async def queued() -> BaseException:
        await asyncio.sleep(0.001)  # after the callback started, before it raises
        return await raised(other.state)

    caller, waiting = await asyncio.gather(raised(stub.bcw_caught), queued())
    for error in (caller, waiting, await raised(stub.state)):
        assert type(error) is Exception and str(error) == "bcw boom"
        assert error.durable_object_reset is True  # type: ignore[attr-defined]
    assert (await ns.get_by_name("a").state())[0] != instance


async def test_a_failing_constructor_breaks_its_stub_and_runs_again_for_a_new_one() -> None:
    Failing.built = 0
    async with durable.Runtime() as runtime:
        stub = runtime.namespace(Failing).get_by_name("a")
        for _ in range(2):
            error = await raised(stub.ping)
            assert type(error) is TypeError and str(error) == "constructor failed 1"
            assert error.durable_object_reset is True  # type: ignore[attr-defined]
        assert await runtime.namespace(Failing).get_by_name("a").ping() == "pong 2"


async def test_fetch_that_raises_and_fetch_that_answers_500(ns: Any) -> None:
    stub = ns.get_by_name("a")
    instance, _ = await stub.state()
    error = await raised(lambda: stub.fetch("http://x/raise"))
    assert type(error) is Exception and str(error) == "fetch boom" and error.remote is True  # type: ignore[attr-defined]
    response = await stub.fetch("http://x/500")
    assert response.status == 500 and await response.text() == "oops"
    assert await stub.state() == (instance, 2)


async def test_values_that_cannot_be_sent(ns: Any) -> None:
    stub = ns.get_by_name("a")
    instance, _ = await stub.state()
    message = 'Could not serialize object of type "Plain". This type does not support serialization.'
    argument = await raised(lambda: stub.echo(Plain()))
    assert type(argument) is durable.DataCloneError and str(argument) == message
    assert not getattr(argument, "remote", False)  # raised in the caller
    result = await raised(stub.plain_result)
    assert type(result) is durable.DataCloneError and str(result) == message
    assert result.remote is True
    assert await stub.echo({"f": lambda: 1}) == "dict"  # a function inside crosses as a stub
    assert await stub.state() == (instance, 2)


async def test_an_exception_is_a_value_over_rpc(ns: Any) -> None:
    """workerd (miniflare 4, 2026-04-07) sends an Error as an argument or result: the receiver
    gets its class, message and cause (`new TypeError("t", {cause: new Error("inner")})` arrives
    as a TypeError "t" whose cause is an Error "inner"), without `remote`; an error received from
    a failed call and passed on arrives without its `remote` too. durable raised DataCloneError."""
    stub = ns.get_by_name("a")
    sent = TypeError("t")
    sent.__cause__ = Exception("inner")
    assert await stub.describe(sent) == ["TypeError", "t", "Exception", "inner", False]
    failed = await raised(stub.missing)
    assert await stub.describe(failed) == ["TypeError", str(failed), None, None, False]
    returned = await stub.returned_error()
    assert type(returned) is ValueError and str(returned) == "returned"
    assert type(returned.__cause__) is KeyError and not getattr(returned, "remote", False)
    instance, calls = await stub.state()
    assert calls == 1 and await stub.state() == (instance, 2)  # not reset


async def test_an_exception_is_not_a_stored_value(ns: Any) -> None:
    """workerd stores an Error; durable refuses it (docs/differences.md, "Exceptions are not
    stored values"), with a message that says what to store instead."""
    error = await raised(ns.get_by_name("a").store_error)
    assert type(error) is durable.DataCloneError
    assert str(error).startswith(
        'Could not serialize object of type "ValueError". This type does not support serialization. '
        "(An exception can be an RPC argument or result"
    )
