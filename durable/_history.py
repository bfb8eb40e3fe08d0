"""Point-in-time recovery: the history of one SQLite-backed object's committed states.

Cloudflare keeps, for every SQLite-backed Durable Object, the stream of its WAL entries for 30 days
and can rebuild the database as of any moment of that window (``getBookmarkForTime``,
``onNextSessionRestoreBookmark``). This module does the same locally, on SQLite's own page images:

- File databases run in WAL mode with ``wal_autocheckpoint=0``: after every commit the frames the
  commit appended to ``<id>.sqlite-wal`` (each a 24-byte header and one page) are copied, as they
  are, into the object's history; checkpoints happen here, after the frames were copied, so SQLite
  never overwrites a frame the history has not seen.
- In-memory databases have no WAL: after every commit the image (``Connection.serialize()``) is
  compared page by page with the previous one and the changed pages are recorded as WAL frames.

The history is an ordered, self-contained log (see ``docs/recovery.md`` for the byte layout): a
header, then records, each framed by its length and a CRC-32 so that a torn tail (``kill -9`` in
the middle of an append) is detected and dropped. State records carry a sequence number (``seq``)
that only grows and the runtime clock's time of the commit:

- ``BASE``: a whole database image (history begun on an existing database, or compacted);
- ``DELTA``: the WAL frames of one commit (pages, and the database size after it);
- ``MARK``: no change; names the state "at the end of the session" that an undo bookmark promised.

Control records (``REQUEST``: a restore asked for the next session; ``CLOSE``: the database file
was closed cleanly and is exactly the last state) have no state of their own. State ``seq = 0`` is
the empty database an object starts as. The state at ``seq`` is the last ``BASE`` at or before it
(or the empty database) with every later ``DELTA`` up to ``seq`` applied.

Bookmarks are ``"{seq >> 32:08x}-{seq & 0xffffffff:08x}-{lineage:08x}-{mac}"``: they sort as the
states they name, and the MAC binds them to one object and one history (a history wiped by
``Runtime.reset()`` starts a new lineage; seq 0, the empty state, belongs to every lineage).

Crash safety: a commit reaches SQLite before its frames reach the history, so after ``kill -9``
the WAL may hold commits the history lacks. On open they are copied from the WAL if the WAL
continues where the history left off; in every other doubtful case the database is compared with
the history's last state and, if they differ, a ``BASE`` of the real current state is appended.
Either way every state the history can restore is one the object really had.

Three classes share the work: :class:`History` (this module) is what the rest of the package
holds: the bookmarks, restore requests and the start of a session; ``_history_capture.py``'s
``HistoryCapture`` turns commits into state records; ``_history_log.py``'s ``HistoryLog`` is the
log itself (its format, loading, appending, the image of any state, compaction).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ._history_capture import HistoryCapture
from ._history_log import BASE, MARK, REQUEST, UNDERWAY, HistoryLog, unwal
from ._history_log import read_history as read_history
from ._snapshot import read_restore, restore_file

log = logging.getLogger("durable")

__all__ = [
    "NO_PITR_KV",
    "PITR_OFF",
    "RETENTION_MS",
    "History",
    "HistoryDatabase",
    "history_file",
    "read_history",
]

RETENTION_MS = 30 * 24 * 3600 * 1000
"""How far back states can be restored: 30 days, as on Cloudflare."""

NO_PITR_KV = "This Durable Object's storage back-end does not implement point-in-time recovery."
"""workerd's message for the key-value backend (``io/actor-cache.h``)."""

_BOOKMARK = re.compile(r"([0-9a-f]{8})-([0-9a-f]{8})-([0-9a-f]{8})-([0-9a-f]{32})")


PITR_OFF = (
    "Point-in-time recovery is off in this durable.Runtime: create it with "
    "durable.Runtime(point_in_time_recovery=True) to keep the history that getCurrentBookmark(), "
    "getBookmarkForTime() and onNextSessionRestoreBookmark() need"
)
"""The error of the bookmark methods on a runtime that keeps no history."""


class HistoryDatabase(Protocol):
    """What a history needs from the database it records (implemented by ``_sqlite.ObjectDatabase``)."""

    file: Path | None

    def read_conn(self) -> sqlite3.Connection | None: ...
    def load_image(self, image: bytes) -> None: ...


def _mac(namespace: str, hexid: str, seq: int, lineage: int) -> str:
    data = f"{namespace}\0{hexid}\0{seq}\0{lineage}".encode()
    return hashlib.blake2b(data, digest_size=16, key=b"durable-pitr-1").hexdigest()


def _shown(text: str) -> str:
    """``text`` as an error shows it: its repr, cut after 80 characters (a bookmark is 62)."""
    if len(text) <= 80:
        return repr(text)
    return f"{text[:80]!r}... ({len(text)} characters)"


def _comparable(image: bytes) -> bytes:
    """An image without the header fields a copy through SQLite's backup API changes.

    The WAL flag (bytes 18-19), the file change counter (24-27), the schema cookie (40-43) and
    the "version valid for" number (92-95): the copy of an image is then equal to the image.
    """
    image = unwal(image)
    if len(image) < 100:
        return image
    return image[:24] + bytes(4) + image[28:40] + bytes(4) + image[44:92] + bytes(4) + image[96:]


def _snapshot_written(history: HistoryLog, capture: HistoryCapture, conn: sqlite3.Connection, file: Path) -> int | None:
    """The undo seq of a snapshot restore the database holds but ``history`` does not record yet.

    The start copies the snapshot into the database, then logs it (the ``MARK`` of its undo
    bookmark and the restored state), then removes ``<id>.restore``: a process killed between the
    copy and the log leaves a database equal to the waiting snapshot. The start applies the
    snapshot again afterwards, which changes no data.
    """
    try:
        waiting = read_restore(restore_file(file))
    except (OSError, ValueError):  # a damaged file (DataCorruptionError): the start refuses it by name
        return None
    if waiting is None:
        return None
    image, undo = waiting
    history.load()
    current = _comparable(capture.image(conn))
    if image:
        restored = current == _comparable(image)
    else:  # an empty snapshot: the restore leaves a database with a page but no schema
        restored = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    if not restored or current == _comparable(history.image_at(history.last_seq)):
        return None  # not written yet, or nothing to tell apart
    if undo is None or undo <= history.last_seq:
        undo = ((history.last_seq >> 32) + 1) << 32  # as History.apply_image() chooses
    return undo


# -- the history of one object --------------------------------------------------------------------


class History:
    """The history of one object's database: capture at each commit, bookmarks, restore.

    Args:
        path: the log file (``<id>.history`` next to ``<id>.sqlite``), or ``None`` to keep it in
            memory (for in-memory databases; it lives as long as this object).
        namespace, hexid: the object, written into the log and bound into its bookmarks.
        now_ms: the runtime clock, in ms since the epoch.
        fsync: fsync every append (the runtime's ``synchronous="FULL"``).
        retention_ms: how far back states stay restorable.

    The database calls :meth:`opened`, :meth:`committed`, :meth:`closing` and :meth:`closed`
    (handed to its :class:`~durable._history_capture.HistoryCapture`); the host calls
    :meth:`begin_session` before it builds an instance; storage calls the bookmark methods.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        namespace: str,
        hexid: str,
        now_ms: Callable[[], int],
        fsync: bool = False,
        retention_ms: int = RETENTION_MS,
    ) -> None:
        self.namespace = namespace
        self.hexid = hexid
        self.now_ms = now_ms
        self.log = HistoryLog(
            path, namespace=namespace, hexid=hexid, now_ms=now_ms, fsync=fsync, retention_ms=retention_ms
        )
        """The log: its records, the states it can rebuild, compaction."""
        self.capture = HistoryCapture(self.log)
        """What turns the database's commits into the log's state records."""
        self._given: int | None = None  # the seq of the last current bookmark handed out

    # -- the database's hooks (see _history_capture.py) --

    def opened(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """The database was opened: recover what a crash left in the WAL, then record from here.

        A restored state (bookmark or snapshot) SQLite held but the log not, when a process died, is
        logged as the restore, after its undo ``MARK``. A ``MARK`` waiting: a never-written object's.
        """
        self._note_given()
        undo = None if self.log.lead is not None else self._restore_written(conn)
        if undo is None and self.log.lead is None and file is not None:
            undo = _snapshot_written(self.log, self.capture, conn, file)
        if undo is None:
            self.capture.opened(conn, file)
            return
        self.log.lead_with_mark(undo)
        try:
            self.capture.opened(conn, file)
        finally:
            if self.log.settle_mark(done=False):
                self.log.pending = None

    def _restore_written(self, conn: sqlite3.Connection) -> int | None:
        """The undo seq of a restore the database holds but the log does not record as done yet."""
        history = self.log
        history.load()
        last = history.last_entry()
        if last is None or last.kind != REQUEST or last.seq != UNDERWAY or history.pending is None:
            return None  # the log does not end with the request of a start that was applying it
        target, undo = history.pending
        current = _comparable(self.capture.image(conn))
        image = history.image_at(target)
        if image:
            restored = current == _comparable(image)
        else:  # the empty state: the restore leaves a database with a page but no schema
            restored = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if not restored or current == _comparable(history.image_at(history.last_seq)):
            return None  # not written (the restore happens again at this start), or nothing to tell apart
        return undo

    def committed(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """A transaction committed: copy its pages into the history (a failure to write is logged)."""
        self.capture.committed(conn, file)

    def closing(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """The database is about to close (SQLite then checkpoints and deletes the WAL)."""
        self.capture.closing(conn, file)

    def closed(self, file: Path | None) -> None:
        """The database file was closed cleanly: it now holds exactly the last state."""
        self.capture.closed(file)

    # -- states (see _history_log.py) --

    def image_at(self, seq: int) -> bytes:
        """The database image of state ``seq`` (``b""``: the empty database)."""
        return self.log.image_at(seq)

    def states(self) -> list[tuple[int, int]]:
        """(seq, time in ms) of every state the log can restore, oldest first."""
        return self.log.states()

    def compact(self) -> None:
        """Forget states that ended more than the retention window ago (rewrites the log)."""
        self.log.compact()

    def size(self) -> int:
        """Bytes the log takes."""
        return self.log.size()

    # -- bookmarks --

    def bookmark(self, seq: int) -> str:
        """The bookmark of state ``seq`` of this object."""
        lineage = 0 if seq == 0 else self.log.lineage
        return f"{seq >> 32:08x}-{seq & 0xFFFFFFFF:08x}-{lineage:08x}-{_mac(self.namespace, self.hexid, seq, lineage)}"

    def current_bookmark(self) -> str:
        """The bookmark of the last committed state, sorting after every one handed out before.

        As in workerd (whose local bookmarks count the calls, "Later bookmarks sort after earlier
        bookmarks"; its ``sql-test.js`` asserts that each call's bookmark is larger, with no
        write in between), a call that finds the state already named by an earlier bookmark
        records a ``MARK``: a new state, equal to the last one, with the next seq. A log written
        by an earlier session counts as handed out, so a new session's bookmarks sort after it.
        """
        history = self.log
        self._note_given()
        if history.last_seq == self._given:
            history.append(MARK, history.last_seq + 1, history.state_time(), b"")
            self._prune()
        elif not history.exists():
            history.begin()  # the empty state's, of a new object: the next session counts it too
        self._given = history.last_seq
        return self.bookmark(history.last_seq)

    def _prune(self) -> None:
        """Compact the log if its oldest state left the window, as a commit does (a failure is logged)."""
        try:
            self.log.compact_if_due()
        except OSError as exc:
            log.error(
                "durable: the point-in-time history of %s/%s could not be compacted: %s",
                self.namespace,
                self.hexid,
                exc,
            )

    def _note_given(self) -> None:
        """On first use: count the last state of a log written before as handed out as a bookmark."""
        if self._given is None:
            self.log.load()
            self._given = self.log.last_seq if self.log.exists() else -1

    def bookmark_for_time(self, ms: int) -> str:
        """The bookmark of the state current at ``ms`` (ms since the epoch, already checked); ``ValueError``
        for a time in the future, more than 30 days ago, or before the object's history starts."""
        history = self.log
        history.load()
        now = self.now_ms()
        if ms > now:
            raise ValueError(f"getBookmarkForTime(): {ms} is in the future (the runtime clock says {now})")
        if ms < now - history.retention_ms:
            seconds = now - history.retention_ms <= ms * 1000 <= now
            raise ValueError(
                f"getBookmarkForTime(): {ms} is more than 30 days ago; point-in-time recovery reaches back "
                f"to {now - history.retention_ms} (the runtime clock minus 30 days)"
                + (" -- it looks like seconds: pass milliseconds since the epoch, or a datetime" if seconds else "")
            )
        ms = _on_log_clock(history, ms, now)
        earliest = history.earliest()
        if earliest is not None and ms < earliest[1]:
            raise ValueError(
                f"getBookmarkForTime(): no history of this object before {earliest[1]} (its history starts there)"
            )
        return self.bookmark(history.seq_at(ms))

    def parse(self, bookmark: object) -> int:
        """The seq a bookmark of this object names; ``ValueError`` for anything else."""
        if not isinstance(bookmark, str):
            raise TypeError(f"a bookmark is a str, not {type(bookmark).__name__}")
        match = _BOOKMARK.fullmatch(bookmark)
        if match is None:
            raise ValueError(
                f"Invalid bookmark: {_shown(bookmark)} (expected a string like those getCurrentBookmark() returns)"
            )
        seq = (int(match[1], 16) << 32) | int(match[2], 16)
        lineage = int(match[3], 16)
        if match[4] != _mac(self.namespace, self.hexid, seq, lineage):
            raise ValueError(f"Invalid bookmark: {bookmark!r} is not a bookmark of this Durable Object")
        self.log.load()
        if seq != 0 and lineage != self.log.lineage:
            raise ValueError(
                f"Invalid bookmark: {bookmark!r} belongs to another history of this object: another runtime's, "
                "or an earlier, wiped history (Runtime.reset(), or a damaged log set aside)"
            )
        return seq

    # -- restores --

    def _restorable(self, bookmark: object) -> int:
        """The seq of ``bookmark``, a state this object's history can still rebuild.

        Raises ``ValueError`` for a bookmark :meth:`parse` refuses, or that names a state this
        object has not reached, one too old to restore, or one its history does not hold.
        """
        seq = self.parse(bookmark)
        history = self.log
        if seq > history.last_seq:
            raise ValueError(f"Invalid bookmark: {bookmark!r} names a state this object has not reached")
        earliest = history.earliest()
        if (earliest is not None and seq < earliest[0]) or history.too_old(seq):
            raise ValueError(
                f"Bookmark {bookmark!r} is older than 30 days (or than the start of this object's history, "
                "when point-in-time recovery was turned on later); it can no longer be restored"
            )
        if seq != 0 and not history.has_state(seq):
            raise ValueError(f"Invalid bookmark: {bookmark!r} names no state in this object's history")
        return seq

    def request_restore(self, bookmark: object) -> str:
        """Restore ``bookmark`` when the object next starts; return the bookmark that undoes it.

        Raises ``ValueError`` as :meth:`_restorable` does.
        """
        seq = self._restorable(bookmark)
        undo = self.next_undo()
        self.log.request(seq, undo)
        return self.bookmark(undo)

    def next_undo(self) -> int:
        """The seq an undo bookmark asked for in this session names: the state it ends with."""
        return ((self.log.anchor >> 32) + 1) << 32

    def image_for(self, bookmark: object) -> tuple[bytes, int]:
        """The database image of the state ``bookmark`` names, and its time (``snapshot(bookmark)``)."""
        seq = self._restorable(bookmark)
        when = next((ms for s, ms in self.log.states() if s == seq), None)
        return self.log.image_at(seq), self.now_ms() if when is None else when

    def apply_image(self, db: HistoryDatabase, image: bytes, undo: int | None) -> None:
        """Start this session on ``image`` (a snapshot restore), after a ``MARK`` naming the state before.

        ``undo`` is the seq the undo bookmark handed out names (a fresh one if it is ``None`` or
        already passed). As for a bookmark restore, the ``MARK`` reaches the log with the
        restored state, once the database holds it.
        """
        history = self.log
        history.load()
        if undo is None or undo <= history.last_seq:
            undo = ((history.last_seq >> 32) + 1) << 32
        history.lead_with_mark(undo)
        try:
            db.load_image(image)
        except BaseException:
            history.settle_mark(done=False)
            raise
        history.settle_mark(done=True)
        history.anchor = history.last_seq

    def begin_session(self, db: HistoryDatabase, before_restore: Callable[[], None]) -> bool:
        """A new instance is about to be built: apply a requested restore (True if one was applied),
        calling ``before_restore`` first (``AlarmState.restoring``)."""
        history = self.log
        history.load()
        # Open the database now: opening brings the history up to date with the file (commits a
        # crash left in the WAL, writes made while the history was off) before any bookmark is given.
        if db.read_conn() is None:
            self._note_missing_file(db)
        if history.pending is None:
            history.anchor = history.last_seq
            self._prune()  # an object no longer written to forgets old states too
            return False
        target, undo = history.pending
        image = history.image_at(target)
        before_restore()
        history.request(target, undo, underway=True)
        # The MARK naming the state before the restore is written with the restored state's record,
        # once the database holds it: a restore failed or killed before then happens at the next start.
        history.lead_with_mark(undo)
        try:
            db.load_image(unwal(image))
        except BaseException:
            history.settle_mark(done=False)
            raise
        history.settle_mark(done=True)
        history.pending, history.anchor = None, history.last_seq
        self._prune()
        return True

    def _note_missing_file(self, db: HistoryDatabase) -> None:
        """The database file is gone (deleted by hand) but the log's last state is not empty.

        The object starts empty: that is a state of its own, recorded as an empty ``BASE``, so that a
        bookmark taken now names it and not the data of the deleted file.
        """
        history = self.log
        if db.file is None or db.file.exists() or not history.exists() or history.last_seq == 0:
            return
        if history.image_at(history.last_seq):
            history.append(BASE, history.last_seq + 1, history.state_time(), b"")


def _on_log_clock(history: HistoryLog, ms: int, now: int) -> int:
    """``ms``, a time on the runtime clock (which says ``now``), as a time of ``history``'s records.

    The log's times never go back (``HistoryLog.state_time``): after the clock did (a persisted runtime
    reopened with an earlier ``MockClock``, a wall clock stepped back), the records written since are
    stamped ahead of it, and its now named an older state than the current one (the empty one, whose
    restore lost every write). A time is read as so long before the log's own now: now is the latest state.
    """
    return ms + history.state_time(now) - now  # the clock read once: a second read may have moved on


def history_file(database: Path | None) -> Path | None:
    """Where the history of the database file ``database`` lives (``None``: in memory)."""
    return None if database is None else database.with_suffix(".history")
