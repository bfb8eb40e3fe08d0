"""What crosses a stub when a call fails, where durable once differed from workerd (measured with
miniflare 4, compatibility date 2026-04-07, a Worker calling a Durable Object's methods)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable


class Flags(durable.DurableObject):
    async def ok(self) -> str:
        return "ok"

    async def raise_with(self, flags: dict[str, bool]) -> None:
        error = ValueError("m")
        for name, value in flags.items():
            setattr(error, name, value)
        raise error


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime() as runtime:
        yield runtime


def flags_of(error: BaseException) -> dict[str, Any]:
    return {
        "remote": getattr(error, "remote", None),
        "retryable": bool(getattr(error, "retryable", False)),
        "overloaded": bool(getattr(error, "overloaded", False)),
        "durable_object_reset": bool(getattr(error, "durable_object_reset", False)),
    }


class TestFlagsSetByTheApplication:
    """workerd, for `const e = new Error("m"); Object.assign(e, flags); throw e;` in a method: the caller
    gets `remote: true`, `retryable` and `overloaded` as set (only `overloaded` when both are), never
    `durableObjectReset`, and the same stub answers the next call ("ok")."""

    @pytest.mark.parametrize(
        ("flags", "seen"),
        [
            ({"retryable": True}, {"retryable": True}),
            ({"overloaded": True}, {"overloaded": True}),
            ({"durable_object_reset": True}, {}),
            ({"retryable": True, "overloaded": True}, {"overloaded": True}),
            ({"remote": False}, {}),
            ({"overloaded": True, "durable_object_reset": True}, {"overloaded": True}),
            ({"retryable": True, "durable_object_reset": True}, {"retryable": True}),
        ],
    )
    async def test_flags_and_the_stub(self, rt: durable.Runtime, flags: dict[str, bool], seen: dict[str, bool]) -> None:
        stub = rt.namespace(Flags).get_by_name("a")
        with pytest.raises(ValueError, match="^m$") as info:
            await stub.raise_with(flags)
        expected = {"remote": True, "retryable": False, "overloaded": False, "durable_object_reset": False}
        assert flags_of(info.value) == expected | seen
        assert await stub.ok() == "ok"  # the stub is not broken

    async def test_an_unawaited_call_does_not_break_the_stub(self, rt: durable.Runtime) -> None:
        stub = rt.namespace(Flags).get_by_name("a")
        stub.raise_with({"overloaded": True, "durable_object_reset": True})
        stub.raise_with({"retryable": True})
        assert await stub.ok() == "ok"
