"""Point-in-time recovery as ``ctx.storage`` offers it: bookmarks and the restore on next start.

:class:`Bookmarks` is the storage's side of ``_history.History`` (see ``docs/recovery.md``): it
checks that the object may use it (SQLite-backed, on a runtime that keeps a history) and waits for
the commit a current bookmark names. Its refusals say how to turn recovery on.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections.abc import Awaitable
from typing import TYPE_CHECKING, final

from ._done import Done, after, next_turn
from ._gates import through_gate
from ._history import NO_PITR_KV, PITR_OFF, History
from ._storage_alarm import check_date_range

if TYPE_CHECKING:
    from ._storage import StorageHost

__all__ = ["Bookmarks"]


def _retrieved(task: asyncio.Future[str]) -> None:
    """Mark a failure as seen: a bookmark never awaited fails with its commit silently (the reset says why)."""
    if not task.cancelled():
        task.exception()


def _time_ms(when: object) -> int:
    """``getBookmarkForTime``'s argument in ms since the epoch, refused with workerd's TypeErrors.

    workerd converts it to a kj::Date before anything else (so these come first, even where
    point-in-time recovery is unavailable): a value that is neither a number nor a Date, NaN or
    an infinity, and a time outside kj::Date's range are ``TypeError`` (miniflare 4, 2026-04-07).
    """
    if isinstance(when, _dt.datetime):
        stamp: int | float = when.timestamp() * 1000  # a naive datetime is local time, as in timestamp()
    elif isinstance(when, (int, float)) and not isinstance(when, bool):
        stamp = when
    else:
        raise TypeError(
            "Failed to execute 'getBookmarkForTime' on 'DurableObjectStorage': parameter 1 is not of type 'date'."
        )
    check_date_range(stamp)
    return int(stamp)


@final
class Bookmarks:
    """The bookmark methods of one ``Storage``.

    Package-internal interface: :meth:`current`, :meth:`for_time` and :meth:`restore_next`,
    behind ``get_current_bookmark``, ``get_bookmark_for_time`` and
    ``on_next_session_restore_bookmark``.
    """

    __slots__ = ("_db", "_gen", "_host")

    def __init__(self, host: StorageHost, generation: int) -> None:
        self._host = host
        self._gen = generation
        self._db = host.db

    def _history(self) -> History:
        host = self._host
        host.check_live(self._gen)
        if host.kv_backed:
            raise NotImplementedError(NO_PITR_KV)
        history = self._db.history
        if not isinstance(history, History):
            # NotImplementedError (a RuntimeError), as when this runtime had no history at all.
            raise NotImplementedError(PITR_OFF)
        return history

    def current(self) -> Awaitable[str]:
        """A bookmark of the state once the writes made so far have committed."""
        history = self._history()
        if self._db.savepoint_depth:
            # The commit it would wait for happens when the transaction ends: waiting here would hang.
            raise RuntimeError(
                "get_current_bookmark() cannot be awaited inside transaction(): the commit it names happens "
                "when the transaction ends; call it after the transaction returns"
            )
        waiter = self._host.commit_waiter()
        if isinstance(waiter, Done):
            # Suspends all the same: workerd awaits it as outside I/O, which opens the input gate
            # (measured with miniflare 4, 2026-04-07, as for sync()).
            return through_gate(next_turn(history.current_bookmark()), self._host.gate)
        # A task, so that the result may be awaited twice, or not at all, as a Promise.
        task = asyncio.ensure_future(after(waiter, history.current_bookmark))
        task.add_done_callback(_retrieved)
        return through_gate(task, self._host.gate)

    def for_time(self, timestamp: int | float | _dt.datetime) -> Done[str]:
        """The bookmark of the state at ``timestamp`` (ms since the epoch, or a datetime)."""
        ms = _time_ms(timestamp)
        return Done(self._history().bookmark_for_time(ms))

    def restore_next(self, bookmark: str) -> Done[str]:
        """Ask for the restore of ``bookmark`` when the object next starts; the undo bookmark."""
        if not isinstance(bookmark, str):
            # workerd's words for a missing bookmark (JavaScript would turn a number into a string).
            raise TypeError(
                "Failed to execute 'onNextSessionRestoreBookmark' on 'DurableObjectStorage': "
                f"parameter 1 is not of type 'string' (a bookmark is a str, not {type(bookmark).__name__})."
            )
        return Done(self._history().request_restore(bookmark))
