"""The alarm methods of ``ctx.storage``: ``get_alarm``, ``set_alarm`` and ``delete_alarm``.

An object has at most one alarm, stored with its data (so it joins the implicit transaction, the
savepoints of ``transaction()`` and point-in-time recovery). :class:`StorageAlarm` reads and writes
it and validates the times given, with workerd's messages (a kj::Date in nanoseconds, a time in
the past clamped to now), and refuses a time plainly given in seconds. The host is told when it
changed, so that the scheduler (``_alarms.py``) re-arms it after the commit.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, final

from ._aliases import normalize_options
from ._done import NONE, Done
from ._transaction import NOW, Transactions
from ._util import shown

if TYPE_CHECKING:
    from ._storage import StorageHost

__all__ = ["StorageAlarm", "check_date_range"]

_GET_OPTIONS = frozenset({"allow_concurrency"})
_SET_OPTIONS = frozenset({"allow_concurrency", "allow_unconfirmed"})

_MAX_ALARM_NS = float(2**63)
"""workerd converts an alarm time to nanoseconds in an int64 (kj::Date): ``ms * 1e6``, computed as a
double, must lie strictly between -2**63 and 2**63 (so the latest time is in 2262, although workerd's
message says 2189)."""


_YEAR_MS = 365 * 86_400_000


def _refuse_seconds(when: int | float, host: StorageHost) -> None:
    """Refuse a time that is plainly in seconds since the epoch (``time.time() + 60``).

    Read as milliseconds, such a time is a date in January 1970, so the alarm would fire at once.
    Cloudflare accepts it silently; durable refuses a number that, read as seconds, lies within ten
    years of the clock's now while, read as milliseconds, it lies over a year in the past (so a
    mock clock started near 0 can still be given small millisecond times).
    """
    now = host.now_ms()
    if abs(when * 1000 - now) <= 10 * _YEAR_MS and when < now - _YEAR_MS:
        as_ms = _dt.datetime.fromtimestamp(when / 1000, _dt.UTC)
        raise TypeError(
            f"setAlarm() takes a time in milliseconds since the epoch, but {shown(when)} looks like "
            f"seconds (as milliseconds it is {as_ms:%Y-%m-%d %H:%M:%S} UTC). Pass "
            "int(time.time() * 1000) + delay_ms, or a datetime."
        )


def check_date_range(ms: int | float) -> None:
    """Refuse, with workerd's words, a time that is not a valid Date or does not fit a kj::Date.

    Shared by ``setAlarm`` and ``getBookmarkForTime`` (``_bookmarks.py``), which convert alike.
    """
    if ms != ms or ms in (float("inf"), float("-inf")):
        raise TypeError("The value cannot be converted because it is not a valid Date.")
    # The time in ms, as a double, times 1e6 must fit an int64 of nanoseconds.
    nanos = float(ms) * 1e6 if abs(ms) < 2**64 else (1.0 if ms > 0 else -1.0) * 2.0**64
    if nanos >= _MAX_ALARM_NS:
        raise TypeError("This API doesn't support dates after 2189.")
    if nanos <= -_MAX_ALARM_NS:
        raise TypeError("This API doesn't support dates before 1687.")


def _to_alarm_ms(when: object, host: StorageHost) -> int:
    if isinstance(when, _dt.datetime):
        stamp = when.timestamp() * 1000
        check_date_range(stamp)
        ms = int(stamp)
    elif type(when) is int or type(when) is float:
        check_date_range(when)
        ms = int(when) if when > 0 else 0  # any time <= 0 is refused below
        _refuse_seconds(when, host)
    else:
        # workerd's words for anything that is neither a number nor a Date (a string, null, a bool...).
        raise TypeError("Failed to execute 'setAlarm' on 'DurableObjectStorage': parameter 1 is not of type 'date'.")
    if ms <= 0:
        raise TypeError("setAlarm() cannot be called with an alarm time <= 0")
    if not host.has_alarm_handler:
        raise TypeError("Your Durable Object class must have an alarm() handler in order to call setAlarm()")
    return ms


@final
class StorageAlarm:
    """The object's one alarm, as ``ctx.storage`` reads and writes it (one per ``Storage``).

    Package-internal interface: :meth:`get`, :meth:`set` and :meth:`delete`, which take the
    options of ``get_alarm`` / ``set_alarm`` / ``delete_alarm`` as a dict and return what those
    return. While a ``transaction()`` runs, a call from outside it waits for it (``txns``).
    """

    __slots__ = ("_db", "_gen", "_host", "_txns")

    def __init__(self, host: StorageHost, generation: int, txns: Transactions) -> None:
        self._host = host
        self._gen = generation
        self._db = host.db
        self._txns = txns

    def get(self, options: dict[str, Any]) -> Awaitable[int | None]:
        """``get_alarm()``: the alarm's time in ms, or ``None`` (also while its handler runs)."""
        host = self._host
        host.check_live(self._gen)
        if options:
            normalize_options("get_alarm", options, _GET_OPTIONS)
        txns = self._txns
        if txns.stack and (level := txns.where()) is not NOW:
            return txns.defer(level, lambda: host.alarm_visible(self._db.meta.get_alarm()))
        return Done(host.alarm_visible(self._db.meta.get_alarm()))

    def set(self, scheduled_time: int | float | _dt.datetime, options: dict[str, Any]) -> Awaitable[None]:
        """``set_alarm(scheduled_time)``: validate the time, then store it (a past time is now)."""
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("set_alarm", options, _SET_OPTIONS) if options else {}
        # workerd clamps a time in the past to now: get_alarm() and AlarmInfo.scheduled_time read now.
        ms = max(_to_alarm_ms(scheduled_time, host), host.now_ms())
        gated = not opts.get("allow_unconfirmed", False)
        txns = self._txns
        if txns.stack and (level := txns.where()) is not NOW:
            return txns.defer(level, lambda: self._set(ms, gated=gated), write=True, gated=gated)
        self._set(ms, gated=gated)
        return NONE

    def _set(self, ms: int, *, gated: bool) -> None:
        self._db.meta.set_alarm(ms)
        self._host.alarm_written()
        self._host.wrote(gated=gated)

    def delete(self, options: dict[str, Any]) -> Awaitable[None]:
        """``delete_alarm()``: cancel the alarm, if any (a handler already running goes on)."""
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("delete_alarm", options, _SET_OPTIONS) if options else {}
        gated = not opts.get("allow_unconfirmed", False)
        txns = self._txns
        if txns.stack and (level := txns.where()) is not NOW:
            return txns.defer(level, lambda: self._delete(gated=gated), write=True, gated=gated)
        self._delete(gated=gated)
        return NONE

    def _delete(self, *, gated: bool) -> None:
        host = self._host
        if self._db.meta.get_alarm() is None and not host.alarm_visible(None):
            host.alarm_written()  # still clears a handler-set marker, see ObjectHost.alarm_written
            return
        self._db.meta.set_alarm(None)
        host.alarm_written()
        host.wrote(gated=gated)
