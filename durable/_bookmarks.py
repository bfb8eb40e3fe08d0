"""Point-in-time recovery as ``ctx.storage`` offers it: bookmarks and the restore on next start.

:class:`Bookmarks` is the storage's side of ``_history.History`` (see ``docs/recovery.md``): it
checks that the object may use it (SQLite-backed, on a runtime that keeps a history) and waits for
the commit a current bookmark names. Its refusals say how to turn recovery on.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, final

from ._done import Done, after, next_turn
from ._gates import GatedIO, through_gate
from ._history import NO_PITR_KV, PITR_OFF, RETENTION_MS, History
from ._history_capture import serialize_image
from ._keys import check_date_range, date_number, datetime_ms
from ._snapshot import NO_SNAPSHOT_KV, DurableObjectSnapshot, PendingRestore, portable_image, snapshot_image

if TYPE_CHECKING:
    from ._storage import StorageHost

__all__ = ["PLACEHOLDER_BOOKMARK", "Bookmarks"]

PLACEHOLDER_BOOKMARK = "00000000-00000000-00000000-" + "0" * 32
"""The undo bookmark of a snapshot restore on a runtime that keeps no history: the shape of workerd's
local placeholder bookmarks (``%08x-%08x-00000000-`` and 32 zeros); no call accepts it."""

_SNAPSHOT_PITR_OFF = (
    "snapshot(bookmark) needs point-in-time recovery, which is off in this durable.Runtime: create it with "
    "durable.Runtime(point_in_time_recovery=True) to keep the history a bookmark names "
    "(snapshot() without a bookmark works without it)"
)

_MIXED = (
    "A restore {other} is already scheduled for this object's next session: a session schedules restores "
    "of one kind (the last one of that kind wins); call ctx.abort() to apply it first"
)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: a bookmark never awaited fails with its commit silently (the reset says why)."""
    if not task.cancelled():
        task.exception()


def _not_a_str(bookmark: object) -> str:
    """Why ``bookmark`` is refused: not a str, or the bookmark call's result not awaited yet.

    Cloudflare's own example passes ``getBookmarkForTime(...)`` on without ``await``
    (docs ``api/sqlite-storage-api.mdx``); what arrives then is the awaitable.
    """
    text = f"a bookmark is a str, not {type(bookmark).__name__}"
    if inspect.isawaitable(bookmark):
        text += "; await get_bookmark_for_time() or get_current_bookmark() to get the bookmark itself"
    return text


def _time_ms(when: object) -> int:
    """``getBookmarkForTime``'s argument in ms since the epoch, refused with workerd's TypeErrors.

    workerd converts it to a kj::Date before anything else (so these come first, even where
    point-in-time recovery is unavailable): a value that is neither a number nor a Date, NaN or
    an infinity, and a time outside kj::Date's range are ``TypeError`` (miniflare 4, 2026-04-07).
    """
    if isinstance(when, _dt.datetime):
        return int(datetime_ms(when))  # a naive datetime is local time, as in timestamp()
    number = date_number(when)
    if number is None:
        text = "Failed to execute 'getBookmarkForTime' on 'DurableObjectStorage': parameter 1 is not of type 'date'."
        if isinstance(when, _dt.date):  # a Python date (no time of day) reads as a JavaScript Date only in name
            text += " (a datetime.date has no time of day: pass a datetime.datetime, or ms since the epoch)"
        raise TypeError(text)
    check_date_range(number)
    return int(number)


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
            # Called inside transaction_sync() or a transaction() closure: as in workerd, the result
            # may be awaited once the transaction has ended (miniflare 4, 2026-04-07). It waits for
            # the commit of the writes made so far from the call on, as outside a transaction: a
            # bookmark asked for after this one sorts after it (workerd: the one taken inside
            # transactionSync() is the smaller, whichever is awaited first).
            return _AfterTransaction(self._in_transaction, self._current_now(history))
        return self._current_now(history)

    def _in_transaction(self) -> bool:
        return bool(self._db.savepoint_depth)

    def _current_now(self, history: History) -> GatedIO[str]:
        """:meth:`current`: wait for the commit of the writes made so far, then name the state."""
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
                f"parameter 1 is not of type 'string' ({_not_a_str(bookmark)})."
            )
        if PendingRestore(self._db).scheduled():
            raise RuntimeError(_MIXED.format(other="from a snapshot (onNextSessionRestore)"))
        return Done(self._history().request_restore(bookmark))

    # -- the snapshot API (_snapshot.py) --

    def snapshot(self, bookmark: str | None) -> Awaitable[DurableObjectSnapshot]:
        """A snapshot of the state at ``bookmark``, or of the state once the writes made so far commit."""
        host = self._host
        host.check_live(self._gen)
        if host.kv_backed:
            raise NotImplementedError(NO_SNAPSHOT_KV)
        file = self._db.file
        source = repr(self._db.name) if self._db.name is not None else file.stem if file else "an unnamed object"
        if bookmark is not None:
            if not isinstance(bookmark, str):
                raise TypeError(
                    "Failed to execute 'snapshot' on 'DurableObjectStorage': parameter 1 is not of type "
                    f"'string' ({_not_a_str(bookmark)})."
                )
            history = self._db.history
            if not isinstance(history, History):
                raise NotImplementedError(_SNAPSHOT_PITR_OFF)
            image, when = history.image_for(bookmark)
            return Done(DurableObjectSnapshot(portable_image(image), source, when))
        if self._db.savepoint_depth:
            raise RuntimeError(
                "snapshot() cannot be awaited inside transaction(): the state it copies is committed when the "
                "transaction ends; call it after the transaction returns"
            )
        db = self._db
        captured: list[bytes] = []
        waiter = host.commit_waiter()

        def made() -> DurableObjectSnapshot:
            image = captured[0] if captured else _committed_image(self._db)
            return DurableObjectSnapshot(portable_image(image), source, host.now_ms())

        if isinstance(waiter, Done):
            return through_gate(next_turn(made()), host.gate)
        # The image of exactly the commit that holds the writes made so far, taken as it commits.
        db.after_commit.append(lambda: captured.append(_committed_image(db)))
        task = asyncio.ensure_future(after(waiter, made))
        task.add_done_callback(_retrieved)
        return through_gate(task, host.gate)

    def restore_snapshot(self, snapshot: DurableObjectSnapshot) -> Done[str]:
        """Schedule ``snapshot`` to replace this object's storage at its next start; the undo bookmark."""
        host = self._host
        host.check_live(self._gen)
        if not isinstance(snapshot, DurableObjectSnapshot):
            raise TypeError(
                "Failed to execute 'onNextSessionRestore' on 'DurableObjectState': parameter 1 is not of type "
                f"'DurableObjectSnapshot' (got {type(snapshot).__name__}; make one with ctx.storage.snapshot())."
            )
        if host.kv_backed:
            raise NotImplementedError(NO_SNAPSHOT_KV)
        image, taken_ms = snapshot_image(snapshot)
        if host.now_ms() - taken_ms > RETENTION_MS:
            raise ValueError(
                "This snapshot is of a state more than 30 days old: snapshots follow point-in-time recovery's "
                "30-day window, so it can no longer be restored (restore soon after creating a snapshot)"
            )
        history = self._db.history
        undo: int | None = None
        if isinstance(history, History):
            history.log.load()
            if history.log.pending is not None:
                raise RuntimeError(_MIXED.format(other="to a bookmark (onNextSessionRestoreBookmark)"))
            # The undo bookmark names the log's lineage: an object never written has no log yet, and
            # one begun only at the restore would have another lineage, refusing the bookmark.
            history.log.begin()
            undo = history.next_undo()
        PendingRestore(self._db).schedule(image, undo)
        return Done(
            PLACEHOLDER_BOOKMARK if undo is None or not isinstance(history, History) else history.bookmark(undo)
        )


@final
class _AfterTransaction:
    """``get_current_bookmark()`` called inside a transaction: its bookmark, awaited after it ends.

    workerd returns the Promise there (miniflare 4, 2026-04-07: a ``getCurrentBookmark()`` called in
    a ``transactionSync()`` closure, or in a ``transaction()`` closure without ``await``, resolves
    when awaited after the transaction, also inside a later ``transaction()`` once the first one's
    writes have committed). The bookmark names the commit of the writes made by the call (the
    transaction's, unless it was rolled back). Awaited inside a transaction before that commit, it
    raises: the commit happens only once the transaction ends, so waiting there would hang (workerd
    hangs until its 30 s limit resets the object).
    """

    __slots__ = ("_bookmark_io", "_inside")

    def __init__(self, inside: Callable[[], bool], bookmark_io: GatedIO[str]) -> None:
        self._inside = inside
        self._bookmark_io = bookmark_io

    def __await__(self) -> Generator[Any, None, str]:
        io = self._bookmark_io
        if self._inside() and not (isinstance(io.io, asyncio.Future) and io.io.done()):
            raise RuntimeError(
                "get_current_bookmark() cannot be awaited inside transaction(): the commit it names happens "
                "when the transaction ends; await it after the transaction returns"
            )
        return io.__await__()


def _committed_image(db: Any) -> bytes:
    """The committed image of ``db`` now (``b""``: nothing was ever written)."""
    conn = db.read_conn()
    return b"" if conn is None else serialize_image(conn)
