"""Point-in-time recovery as ``ctx.storage`` offers it: bookmarks and the restore on next start.

:class:`Bookmarks` is the storage's side of ``_history.History`` (see ``docs/recovery.md``): it
checks that the object may use it (SQLite-backed, on a runtime that keeps a history) and waits for
the commit a current bookmark names. Its refusals say how to turn recovery on.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable
from typing import TYPE_CHECKING, final

from ._done import Done, after, next_turn
from ._history import NO_PITR_KV, PITR_OFF, History

if TYPE_CHECKING:
    from ._storage import StorageHost

__all__ = ["Bookmarks"]


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
            return next_turn(history.current_bookmark())
        return after(waiter, history.current_bookmark)

    def for_time(self, timestamp: int | float | _dt.datetime) -> Done[str]:
        """The bookmark of the state at ``timestamp`` (ms since the epoch, or a datetime)."""
        return Done(self._history().bookmark_for_time(timestamp))

    def restore_next(self, bookmark: str) -> Done[str]:
        """Ask for the restore of ``bookmark`` when the object next starts; the undo bookmark."""
        return Done(self._history().request_restore(bookmark))
