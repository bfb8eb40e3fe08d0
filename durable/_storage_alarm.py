"""The alarm methods of ``ctx.storage``: ``get_alarm``, ``set_alarm`` and ``delete_alarm``.

An object has at most one alarm, stored with its data (so it joins the implicit transaction, the
savepoints of ``transaction()`` and point-in-time recovery). :class:`StorageAlarm` reads and writes
it; the times given are validated by ``_keys.alarm_time_ms`` (workerd's messages, a kj::Date in
nanoseconds; a time plainly given in seconds is refused), and a time in the past is clamped to
now. The host is told when it
changed, so that the scheduler (``_alarms.py``) re-arms it after the commit.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, final

from ._aliases import normalize_options
from ._done import NONE, Done
from ._exceptions import DataCorruptionError
from ._keys import ALARM_GET_OPTIONS, ALARM_SET_OPTIONS, alarm_time_ms
from ._transaction import NOW, Transactions

if TYPE_CHECKING:
    from ._sqlite import ObjectDatabase
    from ._storage import StorageHost

__all__ = ["StorageAlarm", "alarm_stored"]


def alarm_stored(db: ObjectDatabase) -> bool:
    """Whether an alarm is stored; a damaged one (not an INTEGER) counts: a set, a delete or a
    ``delete_all()`` overwrites it."""
    try:
        return db.meta.get_alarm() is not None
    except DataCorruptionError:
        return True


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
            normalize_options("get_alarm", options, ALARM_GET_OPTIONS)
        txns = self._txns
        self._db.meta.wiped = False  # (workerd's alarm cache is known again: see MetadataTable.wiped)
        if txns.stack and (level := txns.where()) is not NOW:
            return txns.defer(level, lambda: host.alarm_visible(self._db.meta.get_alarm()))
        return Done(host.alarm_visible(self._db.meta.get_alarm()))

    def set(self, scheduled_time: int | float | _dt.datetime, options: dict[str, Any]) -> Awaitable[None]:
        """``set_alarm(scheduled_time)``: validate the time, then store it (a past time is now)."""
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("set_alarm", options, ALARM_SET_OPTIONS) if options else {}
        # workerd clamps a time in the past to now: get_alarm() and AlarmInfo.scheduled_time read now.
        ms = max(alarm_time_ms(scheduled_time, host), host.now_ms())
        gated = not opts.get("allow_unconfirmed", False)
        txns = self._txns
        if txns.stack and (level := txns.where()) is not NOW:
            return txns.defer(level, lambda: self._set(ms, gated=gated), write=True, gated=gated)
        self._set(ms, gated=gated)
        return NONE

    def _set(self, ms: int, *, gated: bool) -> None:
        was_none = not alarm_stored(self._db)
        self._db.meta.set_alarm(ms)
        self._host.alarm_written(from_none=was_none)
        self._host.wrote(gated=gated)

    def delete(self, options: dict[str, Any]) -> Awaitable[None]:
        """``delete_alarm()``: cancel the alarm, if any (a handler already running goes on)."""
        host = self._host
        host.check_live(self._gen)
        opts = normalize_options("delete_alarm", options, ALARM_SET_OPTIONS) if options else {}
        gated = not opts.get("allow_unconfirmed", False)
        txns = self._txns
        if txns.stack and (level := txns.where()) is not NOW:
            return txns.defer(level, lambda: self._delete(gated=gated), write=True, gated=gated)
        self._delete(gated=gated)
        return NONE

    def _delete(self, *, gated: bool) -> None:
        host = self._host
        if not alarm_stored(self._db) and not host.alarm_visible(None):
            # No alarm stored: nothing for the scheduler (a pending retry goes on, as in workerd),
            # but still a handler-set marker, see AlarmState.written.
            host.alarm_written(stored_changed=False)
            meta = self._db.meta
            if meta.wiped and not meta.exists:  # after delete_all(): workerd's DELETE creates the table
                meta.create()
                host.wrote(gated=gated)
            return
        self._db.meta.set_alarm(None)
        host.alarm_written()
        host.wrote(gated=gated)
