"""``StorageAwaitable``: the already-resolved awaitable that every storage call returns.

Cloudflare's storage promises run whether or not they are awaited, and durable's storage is local,
so every call applies its effect at once and hands back a :class:`Done`: awaiting it returns the
value without suspending, so writes made with or without ``await`` between them coalesce into one
commit. Using it as a value instead (a forgotten ``await``) raises an error that says so.

This module knows nothing of objects or storage; ``_storage``, its collaborators and ``_host``
use it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, NoReturn, TypeVar, final

__all__ = ["NONE", "Done", "after", "next_turn"]

T = TypeVar("T")


async def after(waiter: Awaitable[None], then: Callable[[], T]) -> T:
    """Await ``waiter``, then return ``then()`` (a storage result that needs a commit first)."""
    await waiter
    return then()


def next_turn(value: T) -> asyncio.Future[T]:
    """A future that resolves to ``value`` on the event loop's next iteration.

    For the storage calls that workerd awaits as outside I/O (``sync()``, ``getCurrentBookmark()``):
    awaiting them suspends, so the input gate opens and other events may run meanwhile, even when
    the result is known at once.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    loop.call_soon(_settle, fut, value)
    return fut


def _settle(fut: asyncio.Future[T], value: T) -> None:
    if not fut.done():
        fut.set_result(value)


@final
class Done(Generic[T]):
    """An awaitable that is already resolved: ``await`` returns its value without suspending.

    Storage calls return these, so awaiting a storage call never yields to the event loop, and
    writes made with or without ``await`` between them coalesce into one commit.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        # Storage.get of one key makes its Done without this (object.__new__, then the store):
        # type_call, slot_tp_init and a frame less, seq-increment 76,461 -> 76,238 (tenth pass,
        # continued). Keep them alike.
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        # A generator that returns at its first step: awaiting it does not suspend. The ``yield``
        # the compiler drops makes it a generator without the ``yield from ()`` it had (a tuple
        # iterator per await): seq-increment 83,348 -> 82,443 instructions (callgrind, tenth pass).
        if False:
            yield  # type: ignore[unreachable]
        return self.value

    def __repr__(self) -> str:
        return f"<StorageAwaitable {self.value!r}>"  # the name users see (set below)


# A storage call used without `await` hands its caller this awaitable instead of the value. Its
# name says what it is, and using it as a value (arithmetic, comparison, truth, indexing,
# iteration, attributes) raises an error that asks "did you forget await?" instead of Python's
# "unsupported operand type(s) for +: 'Done' and 'int'".
Done.__name__ = Done.__qualname__ = "StorageAwaitable"
_FORGOT_AWAIT = (
    "a storage call's result (a StorageAwaitable) was used as a value: did you forget await? "
    "Write `value = await ctx.storage.get(key)`, not `value = ctx.storage.get(key)`."
)


def _forgot_await(self: Done[Any], *args: object) -> NoReturn:
    raise TypeError(_FORGOT_AWAIT)


def _forgot_await_attribute(self: Done[Any], name: str) -> NoReturn:
    if name.startswith("__"):  # a protocol probe (copy, pickle, asyncio...), not a user's mistake
        raise AttributeError(name)
    raise AttributeError(f"'StorageAwaitable' object has no attribute {name!r}: {_FORGOT_AWAIT}")


for _method in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
    "__neg__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__iter__",
    "__contains__", "__getitem__", "__setitem__", "__int__", "__float__", "__index__",
):  # fmt: skip
    setattr(Done, _method, _forgot_await)
Done.__getattr__ = _forgot_await_attribute  # type: ignore[attr-defined]
del _method


def _finished() -> Generator[None, None, None]:
    yield


_FINISHED = _finished()
for _ in _FINISHED:  # run to its end: from now on every send(None) or next() ends it at once, with None
    pass


class _DoneNone(Done[None]):  # type: ignore[misc]  # (Done is final for everything else)
    """The class of :data:`NONE` alone: a ``Done`` whose ``await`` runs no Python.

    Its ``__await__`` is a C callable (an ``itertools.repeat``'s ``__next__``) that hands out
    ``_FINISHED``, one generator already run to its end and shared: an ``await`` (or a ``yield
    from``, or ``send(None)``) of it ends at once with the value None, as Done's generator does,
    and nothing is made. A write's ``await storage.put(...)`` then costs no generator and no frame:
    1,719 -> 608 instructions per await (callgrind, a loop of awaits), about 1,150 fewer per
    ``seq-increment`` (thirteenth pass, docs/performance.md). Everything else (the name, the "did
    you forget await?" errors, repr, ``isinstance(x, Done)``) is Done's.
    """

    __slots__ = ()

    __await__ = itertools.repeat(_FINISHED).__next__


_DoneNone.__name__ = _DoneNone.__qualname__ = "StorageAwaitable"

NONE: Done[None] = _DoneNone(None)
"""The result of every write: shared, as it carries nothing."""
