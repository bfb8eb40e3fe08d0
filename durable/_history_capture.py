"""Capturing an object's committed states into its history log, from SQLite's own pages.

A :class:`HistoryCapture` is told by the database when it opens, commits and closes (through
``_history.History``, which holds one), and appends a state record to the log for every commit:

- File databases run in WAL mode with ``wal_autocheckpoint=0``: after every commit the frames the
  commit appended to ``<id>.sqlite-wal`` (each a 24-byte header and one page) are copied, as they
  are, into the log as a ``DELTA``; checkpoints happen here, after the frames were copied, so
  SQLite never overwrites a frame the history has not seen.
- In-memory databases have no WAL: after every commit the image (``Connection.serialize()``) is
  compared page by page with the previous one and the changed pages are recorded as WAL frames.

Crash safety: a commit reaches SQLite before its frames reach the log, so after ``kill -9`` the WAL
may hold commits the log lacks. :meth:`HistoryCapture.opened` copies them from the WAL if the WAL
continues where the log left off; in every other doubtful case the database is compared with the
log's last state and, if they differ, a ``BASE`` of the real current state is appended. A clean
close appends a ``CLOSE`` record holding the file's size and CRC, which lets the next open trust
the file without reading it whole.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import zlib
from pathlib import Path

from ._history_log import BASE, CLOSE, DELTA, DELTA_HEAD, FRAME, HistoryLog, unwal

log = logging.getLogger("durable")

__all__ = ["CHECKPOINTFRAMES", "REBUILD_MIN_BYTES", "REBUILD_RATIO", "HistoryCapture", "serialize_image"]

CHECKPOINTFRAMES = 1000
"""WAL frames after which the history checkpoints the WAL (SQLite's own default, ``wal_autocheckpoint``)."""


REBUILD_MIN_BYTES = 8 << 20
REBUILD_RATIO = 4
"""A ``BASE`` of the state just committed follows its ``DELTA`` once the ``DELTA`` records since the last
``BASE`` (what rebuilding the state replays) exceed ``REBUILD_RATIO`` times the database or 8 MB: a rebuild
reads at most about that much, however long the object has lived (see docs/recovery.md)."""


def serialize_image(conn: sqlite3.Connection) -> bytes:
    """The database's image; ``b""`` for a database without a single page (SQLite refuses those)."""
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        return b""
    return conn.serialize()


def _file_crc(file: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file's bytes: a CLOSE record holds it; a file changed since fails the match.

    Sizes and times of modification are not enough: the kernel's file times are coarse (a write a
    few milliseconds after the close can keep the same time), and a write keeps the size.
    """
    crc = 0
    size = 0
    with open(file, "rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


class HistoryCapture:
    """Records the commits of one database into ``history_log``: the database hooks' side of a history.

    It remembers where the next commit's frames start in the WAL (file databases) or the last
    image (in-memory databases); the log holds everything else.
    """

    def __init__(self, history_log: HistoryLog) -> None:
        self.history_log = history_log
        # Where the next commit's frames start in the WAL (file databases).
        self._wal_fd: int | None = None
        self._salt: bytes | None = None
        self._frame = 0
        self._check_header = True
        self._page_size = 0
        self._image: bytes | None = None  # the last image (in-memory databases)
        self._rebuild_due = 0  # the log size at which the DELTAs to replay are measured again
        self._log_seen = 0  # the log size last seen (smaller now: compacted, measure again)

    def opened(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """The database was opened: recover what a crash left in the WAL, then record from here."""
        history = self.history_log
        history.load()
        self._rebuild_due = 0
        if file is None:
            self._image = serialize_image(conn)
            if history.last_seq and self._image != history.image_at(history.last_seq):
                history.append(BASE, history.last_seq + 1, history.state_time(), self._image)
            return
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints happen in committed(), after the copy
        self._wal_fd = None
        self._salt, self._frame, self._check_header = None, 0, True
        trusted = not history.exists()
        last = history.last_state_entry()
        wal = Path(os.fspath(file) + "-wal")
        nlog = 0
        if wal.exists() and wal.stat().st_size > 32:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            nlog = int(row[1]) if row is not None and row[1] > 0 else 0
        if last is not None and last.kind == DELTA and nlog:
            _, salt1, salt2, frames = DELTA_HEAD.unpack(history.read(last, DELTA_HEAD.size))
            fd = os.open(wal, os.O_RDONLY)
            try:
                header = os.pread(fd, 32, 0)
            finally:
                os.close(fd)
            if header[16:24] == struct.pack(">II", salt1, salt2) and frames <= nlog:
                # The WAL continues the generation the history last copied from: copy the rest.
                self._salt, self._frame, self._check_header = header[16:24], frames, False
                self._page_size = struct.unpack(">I", header[8:12])[0]
                self._capture_wal(conn, file, limit=nlog)
                trusted = True
        closed = history.last_entry()
        if not trusted and closed is not None and closed.kind == CLOSE and not nlog:
            size, crc = struct.unpack("<qq", history.read(closed, 16))
            trusted = file.exists() and _file_crc(file) == (size, crc)
        if not trusted or (not history.exists() and self._has_content(conn)):
            current = serialize_image(conn)
            known = history.image_at(history.last_seq) if history.exists() else b""
            # A database without a table is the empty state (a new file has a page all the same).
            if unwal(current) != unwal(known) and (known or self._has_content(conn)):
                history.append(BASE, history.last_seq + 1, history.state_time(), current)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._salt, self._frame, self._check_header = None, 0, True

    @staticmethod
    def image(conn: sqlite3.Connection) -> bytes:
        """The database's current image, as a restore compares it (``unwal``: the WAL flag cleared)."""
        return unwal(serialize_image(conn))

    @staticmethod
    def _has_content(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0  # type: ignore[no-any-return]

    def committed(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """A transaction committed: copy its pages into the history.

        The commit stands whatever happens here: if the log cannot be written (a full disk), the
        error is logged and the pages are copied at the next commit (they stay in the WAL).
        """
        try:
            before = self.history_log.size()
            if file is None:
                self._capture_image(conn)
            else:
                self._capture_wal(conn, file)
            self._bound_rebuild(conn, before)
            self.history_log.compact_if_due()
        except OSError as exc:
            log.error(
                "durable: the point-in-time history of %s/%s could not be written: %s",
                self.history_log.namespace,
                self.history_log.hexid,
                exc,
            )

    def closing(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """The database is about to close (SQLite then checkpoints and deletes the WAL)."""
        if file is not None:
            self._capture_wal(conn, file)
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def closed(self, file: Path | None) -> None:
        """The database file was closed cleanly: it now holds exactly the last state."""
        history = self.history_log
        try:
            if file is not None and history.exists() and file.exists():
                history.control(CLOSE, 0, struct.pack("<qq", *_file_crc(file)))
        except OSError as exc:  # (a full disk): only a shortcut is lost, the next open compares file and log
            log.error(
                "durable: the point-in-time history of %s/%s could not record its clean close: %s",
                history.namespace,
                history.hexid,
                exc,
            )
        finally:
            history.close()

    def _bound_rebuild(self, conn: sqlite3.Connection, before: int) -> None:
        """Append a ``BASE`` of the state just committed (the seq of its ``DELTA``) once rebuilding it
        replays more than ``REBUILD_RATIO`` times the database (or ``REBUILD_MIN_BYTES``) of ``DELTA``s.

        ``before``: the log's size before this commit was captured. Only a ``DELTA`` appended now is
        followed (the database holds its state): none, and the commit waits in the WAL for the next.
        """
        history = self.history_log
        size = history.size()
        if size < self._log_seen:
            self._rebuild_due = 0  # compacted: the records before the last state moved
        self._log_seen = size
        if size < self._rebuild_due:
            return  # (the fast path: a comparison per commit)
        last = history.last_entry()
        if last is None or last.kind != DELTA or size == before:
            return
        database = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
        limit = max(REBUILD_MIN_BYTES, REBUILD_RATIO * database)
        replayed = history.replayed_bytes()
        if replayed < limit:
            self._rebuild_due = size + limit - replayed  # (the log grows at least as fast as its DELTAs)
            return
        image = self._image if self._image is not None else serialize_image(conn)
        history.append(BASE, last.seq, last.time, image)
        self._log_seen = history.size()
        self._rebuild_due = self._log_seen + limit

    # -- capture --

    def _capture_image(self, conn: sqlite3.Connection) -> None:
        image = serialize_image(conn)
        old = self._image or b""
        if image == old:
            return
        if not image:  # no page left: no frame can say so, a BASE of nothing does
            self.history_log.append(BASE, self.history_log.last_seq + 1, self.history_log.state_time(), b"")
            self._image = image
            return
        page_size = struct.unpack(">H", image[16:18])[0] if len(image) >= 100 else 4096
        page_size = 65536 if page_size == 1 else page_size
        pages = len(image) // page_size
        changed = [
            p
            for p in range(pages)
            if image[p * page_size : (p + 1) * page_size] != old[p * page_size : (p + 1) * page_size]
        ]
        if not changed:
            changed = [0]  # the database shrank: one frame carries the new size
        parts = [DELTA_HEAD.pack(page_size, 0, 0, 0)]
        for index, p in enumerate(changed):
            commit = pages if index == len(changed) - 1 else 0
            parts.append(FRAME.pack(p + 1, commit, 0, 0, 0, 0))
            parts.append(image[p * page_size : (p + 1) * page_size])
        self.history_log.append(DELTA, self.history_log.last_seq + 1, self.history_log.state_time(), b"".join(parts))
        self._image = image

    def _capture_wal(self, conn: sqlite3.Connection, file: Path, limit: int | None = None) -> None:
        fd = self._wal_fd
        if fd is None:
            try:
                fd = self._wal_fd = os.open(os.fspath(file) + "-wal", os.O_RDONLY)
            except FileNotFoundError:
                return
        if self._check_header:
            header = os.pread(fd, 32, 0)
            if len(header) < 32:
                return
            if header[16:24] != self._salt:
                self._salt, self._frame = header[16:24], 0
            self._page_size = struct.unpack(">I", header[8:12])[0]
            self._check_header = False
        salt = self._salt
        page_size = self._page_size
        step = FRAME.size + page_size
        start = self._frame
        offset = 32 + start * step
        want = 2
        groups: list[tuple[int, int]] = []  # (first frame, frame after the commit frame)
        data = b""
        frame = start
        group_start = start
        while True:
            chunk = os.pread(fd, want * step, offset + len(data))
            data += chunk
            full = len(chunk) == want * step
            stop = False
            while (frame - start + 1) * step <= len(data):
                at = (frame - start) * step
                if data[at + 8 : at + 16] != salt or (limit is not None and frame >= limit):
                    stop = True
                    break
                frame += 1
                if FRAME.unpack_from(data, at)[1]:  # a commit frame ends a transaction
                    groups.append((group_start, frame))
                    group_start = frame
            if stop or not full:
                break
            want *= 2
        if not groups:
            return
        history = self.history_log
        time_ms = history.state_time()
        assert salt is not None
        salt1, salt2 = struct.unpack(">II", salt)
        for first, end in groups:
            payload = (
                DELTA_HEAD.pack(page_size, salt1, salt2, end) + data[(first - start) * step : (end - start) * step]
            )
            history.append(DELTA, history.last_seq + 1, time_ms, payload)
            self._frame = end  # as each is logged: a failure in between never logs a commit twice
        if self._frame >= CHECKPOINTFRAMES:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._check_header = True  # the next write starts a new WAL generation (new salts)
