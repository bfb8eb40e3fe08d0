"""The reference Durable Object: Cloudflare's "Build a counter" example, as ``durable.Counter``.

One count per object, kept in the storage key ``"value"``. It is reachable over RPC with the
method names of Cloudflare's current counter example (``increment``, ``decrement``,
``get_counter_value``, alias ``getCounterValue``) and over HTTP with the seed's ``fetch``
(``/increment``, ``/decrement``, ``/``), and both read and write the same key. Users serve it
as is (``examples/counter.py``) or subclass it; every method is an ordinary method, so
``super()`` in a subclass reaches this behaviour.
"""

from __future__ import annotations

from inspect import isawaitable
from types import CoroutineType
from typing import Any, Final
from urllib.parse import urlsplit

from ._http import CACHED_URL_LENGTH, Request, Response
from ._object import DurableObject
from ._util import shown

__all__ = ["Counter"]

_PATHS: dict[str, str] = {}
"""``urlsplit(url).path`` of the URLs ``Counter.fetch`` answered, by URL (see ``_path``)."""
_PATHS_KEPT: Final = 1024


def _path(url: str) -> str:
    """``urlsplit(url).path``, kept in ``_PATHS`` for an exact ``str`` of at most
    ``CACHED_URL_LENGTH`` characters, as the URL caches of ``_http`` (emptied when it holds
    ``_PATHS_KEPT``). ``urlsplit``'s own ``lru_cache`` makes a key of its arguments at each call,
    a dict lookup in ``Counter.fetch`` does not (thirteenth pass, docs/performance.md). (Without the
    length bound, 1,024 URLs of any length were held: 1,024 fetches of 1 MB paths kept about 2 GB.)"""
    path: str = urlsplit(url).path
    if type(url) is str and len(url) <= CACHED_URL_LENGTH:
        if len(_PATHS) >= _PATHS_KEPT:
            _PATHS.clear()  # (a cache: any thread may clear it, the next call fills it again)
        _PATHS[url] = path
    return path


def _check_amount(method: str, amount: object) -> int:
    # bool is an int subclass, but increment(True) is almost certainly a mistake.
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"Counter.{method}() takes an int amount, not {type(amount).__name__}: {shown(amount)}")
    return amount


class Counter(DurableObject):
    """A counter: Cloudflare's reference Durable Object.

    Example::

        async with durable.Runtime() as rt:
            counters = rt.namespace(durable.Counter, name="COUNTER")
            await counters.get_by_name("A").increment()      # 1
            await counters.get_by_name("A").get_counter_value()  # 1

    Subclass it to add or change methods; ``super().increment(amount)`` and
    ``super().fetch(request)`` keep the reference behaviour.
    """

    async def get_counter_value(self) -> int:
        """Return the current count (0 when never set)."""
        value: int = await self.ctx.storage.get("value") or 0
        return value

    async def getCounterValue(self) -> int:  # noqa: N802 - Cloudflare's spelling
        """Alias of :meth:`get_counter_value` (Cloudflare's name); follows overrides of it."""
        return await self.get_counter_value()

    async def increment(self, amount: int = 1) -> int:
        """Add ``amount`` (default 1) to the count and return the new value.

        Raises:
            TypeError: ``amount`` is not an int.
        """
        if type(amount) is not int:  # (an exact int passes _check_amount: a call less)
            amount = _check_amount("increment", amount)
        value: int = (await self.ctx.storage.get("value") or 0) + amount
        await self.ctx.storage.put("value", value)
        return value

    async def decrement(self, amount: int = 1) -> int:
        """Subtract ``amount`` (default 1) from the count and return the new value.

        Raises:
            TypeError: ``amount`` is not an int.
        """
        if type(amount) is not int:  # (an exact int passes _check_amount: a call less)
            amount = _check_amount("decrement", amount)
        value: int = (await self.ctx.storage.get("value") or 0) - amount
        await self.ctx.storage.put("value", value)
        return value

    async def fetch(self, request: Request) -> Response:
        """The seed's HTTP handler: ``/increment``, ``/decrement`` or ``/`` answer the count as text.

        They call :meth:`increment`, :meth:`decrement` and :meth:`get_counter_value` as
        ``stub.increment()`` does (no argument; a plain ``def`` override works too), so a
        subclass's overrides apply to both paths. Any other path answers ``404`` with the body
        ``Not found`` and changes nothing.
        """
        # Each path goes through the object's own method, so a subclass that overrides
        # increment(), decrement() or get_counter_value() answers fetch and RPC alike. Those read
        # and write one key: storage is cached in memory, and the input gate holds other events
        # while it is read, so the read-modify-write is safe.
        # (The same answers, computed with fewer calls: a dict lookup for a URL seen before, no call
        # of isawaitable() for a coroutine, no _check_amount() for an exact int: /increment 99,755 -> 94,229
        # (sequential) and 89,305 -> 81,275 (1000 gathered) instructions per fetch, callgrind,
        # thirteenth pass, docs/performance.md.)
        url = request.url
        try:
            path = _PATHS[url]
        except (KeyError, TypeError):  # (TypeError: an unhashable url, which urlsplit() judges)
            path = _path(url)
        match path:
            case "/increment":
                value: Any = self.increment()
            case "/decrement":
                value = self.decrement()
            case "/":
                # The seed writes the stored count back on every path, so "/" stores 0 on a new object.
                await self.ctx.storage.put("value", await self.ctx.storage.get("value") or 0)
                value = self.get_counter_value()
            case _:
                return Response("Not found", status=404)
        if type(value) is CoroutineType or isawaitable(value):  # an override may be a plain def, which RPC accepts too
            value = await value
        return Response(str(value))
