"""The argument of a Python Workers ``alarm(self, info)`` handler, as Pyodide hands it over.

workerd calls ``alarm`` with an ``AlarmInvocationInfo`` (measured with miniflare 4.20260426.0,
compatibility date 2026-04-20): a runtime object whose own properties are ``scheduledTime`` (ms
since the epoch), ``retryCount`` and ``isRetry``; ``String(info)`` is ``[object
AlarmInvocationInfo]``, ``JSON.stringify`` writes the three fields, and storing or cloning it
raises ``DataCloneError: Could not serialize object of type "AlarmInvocationInfo". This type does
not support serialization.`` Python code gets Pyodide's proxy of it: the camelCase attributes
only (``info.retry_count`` is an ``AttributeError``, as it is there), read-only.
"""

from __future__ import annotations

from typing import Any, NoReturn

import durable

__all__ = ["AlarmInvocationInfo", "alarm_info"]


class AlarmInvocationInfo:
    """workerd's ``AlarmInvocationInfo`` as Python Workers code reads it."""

    __slots__ = ("isRetry", "retryCount", "scheduledTime")

    scheduledTime: int
    retryCount: int
    isRetry: bool

    def __init__(self, info: durable.AlarmInfo) -> None:
        object.__setattr__(self, "scheduledTime", info.scheduled_time)
        object.__setattr__(self, "retryCount", info.retry_count)
        object.__setattr__(self, "isRetry", info.is_retry)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"AlarmInvocationInfo.{name} is read-only")

    def __repr__(self) -> str:
        return "[object AlarmInvocationInfo]"  # a JsProxy's repr and str are JavaScript's String()

    def __js_fields__(self) -> dict[str, Any]:
        """Its own enumerable properties, in workerd's order (``JSON.stringify``, ``console.log``)."""
        return {"scheduledTime": self.scheduledTime, "retryCount": self.retryCount, "isRetry": self.isRetry}

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise durable.DataCloneError(
            'Could not serialize object of type "AlarmInvocationInfo". This type does not support serialization.'
        )


def alarm_info(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``alarm``'s arguments: a :class:`durable.AlarmInfo` as workerd's ``AlarmInvocationInfo``."""
    if args and isinstance(args[0], durable.AlarmInfo):
        return (AlarmInvocationInfo(args[0]), *args[1:])
    return args
