"""Edge cases of exceptions crossing RPC as values (``durable._exceptions.copy_exception_value``).

workerd (miniflare 4, 2026-04-07, see tests/test_errors_crossing_workerd.py) sends an ``Error``
argument or result with its class, message and cause, and none of the flags; these tests hold
durable to that for the shapes Python adds: groups, long or looping cause chains, exceptions
whose arguments hold themselves, and durable's own classes with extra state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable._codec import clone


class Echo(durable.DurableObject):
    async def echo(self, value: Any) -> Any:
        return value

    async def raise_holding_itself(self) -> None:
        error = ValueError()
        error.args = (error,)
        raise error


@pytest.fixture
async def stub() -> AsyncIterator[Any]:
    async with durable.Runtime() as runtime:
        yield runtime.namespace(Echo).get_by_name("a")


async def test_the_members_of_a_group_sent_as_a_value_carry_no_flags_and_keep_their_causes(stub: Any) -> None:
    """A group is a value as a whole: its members, at any depth, arrive like any exception sent
    as a value, without ``remote`` and with their ``__cause__`` (before: members were copied as
    raised errors, ``remote = True`` and the cause left behind)."""
    inner = KeyError("k")
    inner.__cause__ = OSError("disk")
    group = ExceptionGroup("outer", [ValueError("v"), ExceptionGroup("inner", [inner])])
    got = await stub.echo(group)
    assert type(got) is ExceptionGroup and str(got) == "outer (2 sub-exceptions)"
    first, nested = got.exceptions
    assert type(first) is ValueError and not hasattr(first, "remote")
    (key_error,) = nested.exceptions
    assert type(key_error) is KeyError and not hasattr(key_error, "remote") and not hasattr(nested, "remote")
    assert type(key_error.__cause__) is OSError and str(key_error.__cause__) == "disk"


async def test_a_sql_error_sent_as_a_value_keeps_its_code(stub: Any) -> None:
    """``SqlError.code`` is part of what the error says; a raised one keeps it, and (before: not)
    so does one sent as a value."""
    got = await stub.echo({"errors": [durable.SqlError("no such table: t: SQLITE_ERROR", code="SQLITE_ERROR")]})
    (error,) = got["errors"]
    assert type(error) is durable.SqlError and error.code == "SQLITE_ERROR"


def test_a_long_cause_chain_is_copied_whole() -> None:
    """A chain longer than the recursion limit is copied (before: DataCloneError saying the value
    held "a Request, Response, Headers or stub")."""
    error = ValueError("0")
    for i in range(1, 3000):
        nxt = ValueError(str(i))
        nxt.__cause__ = error
        error = nxt
    copy = clone(error)
    assert isinstance(copy, ValueError)
    count = 0
    cause: BaseException | None = copy
    while cause is not None:
        assert str(cause) == str(2999 - count)
        count += 1
        cause = cause.__cause__
    assert count == 3000


def test_an_exception_whose_arguments_hold_itself_is_copied_once() -> None:
    """Before: each level copied the arguments again, a ValueError nested about a thousand deep
    (until RecursionError), which the receiver could not even print."""
    error = ValueError()
    error.args = (error,)
    copy = clone([error, error])
    assert isinstance(copy, list) and copy[0] is copy[1]
    assert type(copy[0]) is ValueError and not isinstance(copy[0].args[0], BaseException)
    repr(copy[0])  # printable


async def test_a_raised_exception_whose_arguments_hold_itself_reaches_the_caller(stub: Any) -> None:
    with pytest.raises(ValueError) as info:
        await stub.raise_holding_itself()
    assert not isinstance(info.value.args[0], BaseException)
    repr(info.value)


def test_a_cause_chain_that_loops_back_loops_back_in_the_copy() -> None:
    """workerd (miniflare 4, 2026-04-07): an Error ``a`` whose cause ``b`` has cause ``a``
    returned from a method arrives with ``r.cause.cause === r``, and one that is its own cause
    with ``r.cause === r``. Before, the copy's chain ended where it would repeat."""
    a, b = ValueError("a"), KeyError("b")
    a.__cause__, b.__cause__ = b, a
    copy = clone(a)
    assert isinstance(copy, ValueError) and type(copy.__cause__) is KeyError
    assert copy.__cause__.__cause__ is copy
    alone = ValueError("alone")
    alone.__cause__ = alone
    copy = clone(alone)
    assert isinstance(copy, ValueError) and copy.__cause__ is copy


def test_an_exception_as_a_dict_key_is_refused_naming_it() -> None:
    """An exception crosses as a new object, so it cannot key a dict or be a set member (its copy
    would not find the entry). Before, the message said the key "holds a Request, Response,
    Headers or stub"."""
    for value in ({ValueError("k"): 1}, {KeyError("k")}):
        with pytest.raises(durable.DataCloneError) as info:
            clone(value)
        assert "cannot be a dict key or set member over RPC: it is or holds an exception" in str(info.value)
        assert "that holds a Request" not in str(info.value)


def test_an_exception_nested_too_deep_is_refused_naming_exceptions() -> None:
    """Past the recursion limit the RPC copy gives up; the message said the value held "a
    Request, Response, Headers or stub" when it held an exception."""
    value: Any = ValueError("x")
    for _ in range(3000):
        value = [value]
    with pytest.raises(durable.DataCloneError, match="a value that holds an exception, Request, Response"):
        clone(value)
