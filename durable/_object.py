"""The base class of Durable Objects, and what their handlers receive.

A Durable Object class subclasses :class:`DurableObject`; its constructor takes ``(ctx, env)``. Any
public method is reachable over RPC through a stub; ``fetch`` and ``alarm`` are handlers with
special meaning (see ``docs/guide.md`` and ``docs/api.md``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, final

from ._aliases import camel_aliases

if TYPE_CHECKING:
    from ._runtime import Env
    from ._state import State

__all__ = ["RESERVED_METHODS", "AlarmInfo", "DurableObject"]

RESERVED_METHODS = frozenset(
    {
        "alarm",
        "webSocketMessage",
        "webSocketClose",
        "webSocketError",
        "web_socket_message",
        "web_socket_close",
        "web_socket_error",
        "dup",
        "constructor",
    }
)
"""Handler names that can never be called over RPC (Cloudflare's reserved methods)."""


class DurableObject:
    """Base class of Durable Objects.

    Example::

        class Counter(durable.DurableObject):
            async def increment(self, by: int = 1) -> int:
                value = (await self.ctx.storage.get("value") or 0) + by
                await self.ctx.storage.put("value", value)
                return value

    The constructor stores ``self.ctx`` (a :class:`durable.State`) and ``self.env`` (the
    runtime's :class:`durable.Env`). Subclasses that define ``__init__`` call
    ``super().__init__(ctx, env)``. Handlers and RPC methods may be ``async def`` or plain ``def``.
    """

    ctx: State
    env: Env

    def __init__(self, ctx: State, env: Env) -> None:
        self.ctx = ctx
        self.env = env


@final
@camel_aliases
@dataclasses.dataclass(frozen=True, slots=True)
class AlarmInfo:
    """What an ``alarm(info)`` handler receives.

    Attributes:
        retry_count: 0 on the first attempt, then 1, 2, ... on retries.
        is_retry: ``retry_count > 0``.
        scheduled_time: the time the alarm was set for, in ms since the epoch.
    """

    retry_count: int
    scheduled_time: int

    @property
    def is_retry(self) -> bool:
        return self.retry_count > 0

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        retryCount = retry_count  # noqa: F821 - a dataclass field
        isRetry = is_retry
        scheduledTime = scheduled_time  # noqa: F821 - a dataclass field

