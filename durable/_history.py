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
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import re
import secrets
import sqlite3
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ._exceptions import DataCorruptionError

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

COMPACT_SLACK_MS = 3600 * 1000
"""States older than the window are dropped from the log once the oldest is this much older (an hour)."""

CHECKPOINT_FRAMES = 1000
"""WAL frames after which the history checkpoints the WAL (SQLite's own default, ``wal_autocheckpoint``)."""

NO_PITR_KV = "This Durable Object's storage back-end does not implement point-in-time recovery."
"""workerd's message for the key-value backend (``io/actor-cache.h``)."""

MAGIC = b"DOHIST01"
BASE, DELTA, MARK, REQUEST, CLOSE = 1, 2, 3, 4, 5
_STATE_KINDS = (BASE, DELTA, MARK)
_REC = struct.Struct("<IIBQq")  # payload length, crc32(kind..payload), kind, seq, time ms
_FOOT = struct.Struct("<I")  # payload length again: the log can be read backwards
_DELTA_HEAD = struct.Struct("<IIII")  # page size, WAL salt-1, salt-2, WAL frame count after the commit
_FRAME = struct.Struct(">IIIIII")  # a WAL frame header: page number, db size (commit), salts, checksums
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


# -- the log --------------------------------------------------------------------------------------


class _Store:
    """The bytes of a log: a file (appended with ``os.write``) or a ``bytearray`` in memory."""

    def __init__(self, path: Path | None, fsync: bool, *, readonly: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self.readonly = readonly
        self.mem = bytearray()
        self.fd: int | None = None
        self._size: int | None = None  # known while the file is open (only this object appends)

    def exists(self) -> bool:
        if self.path is None:
            return bool(self.mem)
        return self.fd is not None or self.path.exists()  # an open log exists: no stat per commit

    def open(self) -> None:
        if self.path is not None and self.fd is None:
            flags = os.O_RDONLY if self.readonly else os.O_RDWR | os.O_CREAT | os.O_APPEND
            if not self.readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)  # the namespace's folder may not exist yet
            self.fd = os.open(self.path, flags, 0o644)

    def size(self) -> int:
        if self.path is None:
            return len(self.mem)
        self.open()
        assert self.fd is not None
        if self._size is None:
            self._size = os.fstat(self.fd).st_size
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if self.path is None:
            return bytes(self.mem[offset : offset + length])
        self.open()
        assert self.fd is not None
        return os.pread(self.fd, length, offset)

    def append(self, data: bytes) -> None:
        if self.path is None:
            self.mem += data
            return
        self.open()
        assert self.fd is not None
        self.size()
        assert self._size is not None
        self._size += len(data)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self.fd)

    def truncate(self, size: int) -> None:
        if self.path is None:
            del self.mem[size:]
        else:
            self.open()
            assert self.fd is not None
            os.ftruncate(self.fd, size)
            self._size = size

    def replace(self, data: bytes) -> None:
        """Swap the whole log for ``data`` atomically (compaction)."""
        if self.path is None:
            self.mem = bytearray(data)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.close()
        os.replace(tmp, self.path)

    def close(self) -> None:
        self._size = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _record(kind: int, seq: int, time_ms: int, payload: bytes) -> bytes:
    head = struct.pack("<BQq", kind, seq, time_ms)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return _REC.pack(len(payload), crc, kind, seq, time_ms) + payload + _FOOT.pack(len(payload))


class _Entry:
    __slots__ = ("kind", "offset", "seq", "size", "time")

    def __init__(self, kind: int, seq: int, time_ms: int, offset: int, size: int) -> None:
        self.kind = kind
        self.seq = seq
        self.time = time_ms
        self.offset = offset  # of the payload
        self.size = size


def _header(meta: dict[str, object]) -> bytes:
    blob = json.dumps(meta, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(blob)) + blob


def _scan(store: _Store) -> tuple[dict[str, object], list[_Entry], int]:
    """Read a log: its header, its records, and the size of its valid prefix (a torn tail ends it)."""
    size = store.size()
    head = store.read(0, 12)
    if len(head) < 12 or head[:8] != MAGIC:
        raise DataCorruptionError("not a durable history log (bad magic)")
    (meta_len,) = struct.unpack("<I", head[8:12])
    meta = json.loads(store.read(12, meta_len))
    offset = 12 + meta_len
    entries: list[_Entry] = []
    while offset + _REC.size <= size:
        length, crc, kind, seq, time_ms = _REC.unpack(store.read(offset, _REC.size))
        end = offset + _REC.size + length + _FOOT.size
        if end > size or kind not in (BASE, DELTA, MARK, REQUEST, CLOSE):
            break
        payload = store.read(offset + _REC.size, length)
        if zlib.crc32(payload, zlib.crc32(struct.pack("<BQq", kind, seq, time_ms))) != crc:
            break
        entries.append(_Entry(kind, seq, time_ms, offset + _REC.size, length))
        offset = end
    return meta, entries, offset


def _serialize(conn: sqlite3.Connection) -> bytes:
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


def _unwal(image: bytes) -> bytes:
    """An image with the header's WAL flag cleared (bytes 18-19), so it deserializes in memory."""
    if len(image) >= 20 and image[18:20] == b"\x02\x02":
        return image[:18] + b"\x01\x01" + image[20:]
    return image


def _apply_frames(image: bytearray, payload: bytes) -> None:
    page_size, _, _, _ = _DELTA_HEAD.unpack_from(payload, 0)
    offset = _DELTA_HEAD.size
    step = _FRAME.size + page_size
    while offset + step <= len(payload):
        pgno, commit = _FRAME.unpack_from(payload, offset)[:2]
        start = (pgno - 1) * page_size
        if len(image) < start + page_size:
            image.extend(bytes(start + page_size - len(image)))
        image[start : start + page_size] = payload[offset + _FRAME.size : offset + step]
        if commit:
            del image[commit * page_size :]
        offset += step


def _mac(namespace: str, hexid: str, seq: int, lineage: int) -> str:
    data = f"{namespace}\0{hexid}\0{seq}\0{lineage}".encode()
    return hashlib.blake2b(data, digest_size=16, key=b"durable-pitr-1").hexdigest()


def _to_ms(when: object) -> int:
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            when = when.astimezone()
        return int(when.timestamp() * 1000)
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(f"getBookmarkForTime() takes ms since the epoch (int) or a datetime, not {type(when).__name__}")
    if when != when or when in (float("inf"), float("-inf")):
        raise ValueError(f"getBookmarkForTime() got an invalid time: {when!r}")
    return int(when)


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

    The database calls :meth:`opened`, :meth:`committed`, :meth:`closing` and :meth:`closed`; the
    host calls :meth:`begin_session` before it builds an instance; storage calls the bookmark
    methods.
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
        self.retention_ms = retention_ms
        self._store = _Store(path, fsync)
        self._loaded = False
        self._entries: list[_Entry] = []
        self.lineage = 0
        self.created_ms = 0
        self.last_seq = 0
        self._pending: tuple[int, int] | None = None  # (target seq, undo seq)
        self._anchor = 0  # last seq when the current session began
        # Where the next commit's frames start in the WAL (file databases).
        self._wal_fd: int | None = None
        self._salt: bytes | None = None
        self._frame = 0
        self._check_header = True
        self._page_size = 0
        self._image: bytes | None = None  # the last image (in-memory databases)
        self._compact_due = float("inf")  # the clock time after which the oldest state can go

    # -- loading --

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        store = self._store
        if not store.exists():
            return
        try:
            meta, entries, valid = _scan(store)
        except (DataCorruptionError, ValueError, struct.error) as exc:
            # A log that cannot be read must not make the object unusable: keep it aside for a
            # human, and start a new history (a new lineage: older bookmarks are refused).
            assert store.path is not None  # a log in memory is never damaged
            aside = store.path.with_name(f"{store.path.name}.damaged-{self.now_ms()}")
            store.close()
            os.replace(store.path, aside)
            log.error(
                "durable: the history log %s cannot be read (%s); moved to %s, a new one starts",
                store.path,
                exc,
                aside.name,
            )
            return
        if valid < store.size():
            store.truncate(valid)  # a torn append: the commit is still in the WAL (see opened())
        self.lineage = int(meta.get("lineage", 0))  # type: ignore[call-overload]
        self.created_ms = int(meta.get("created_ms", 0))  # type: ignore[call-overload]
        self._entries = entries
        self._update_compact_due()
        for entry in entries:
            if entry.kind in _STATE_KINDS:
                self.last_seq = entry.seq
                if self._pending is not None and entry.kind == MARK and entry.seq == self._pending[1]:
                    self._pending = None
            elif entry.kind == REQUEST:
                target, undo = struct.unpack("<QQ", store.read(entry.offset, 16))
                self._pending = (target, undo)
        self._anchor = self.last_seq

    def _create(self) -> None:
        self.lineage = secrets.randbits(32) or 1
        self.created_ms = self.now_ms()
        self._store.append(
            _header(
                {"namespace": self.namespace, "id": self.hexid, "lineage": self.lineage, "created_ms": self.created_ms}
            )
        )

    def _append(self, kind: int, seq: int, time_ms: int, payload: bytes) -> None:
        store = self._store
        if not store.exists():
            self._create()
        size = store.size()
        try:
            store.append(_record(kind, seq, time_ms, payload))
        except BaseException:
            with contextlib.suppress(OSError):
                store.truncate(size)  # never leave half a record in the middle of the log
            raise
        self._entries.append(_Entry(kind, seq, time_ms, size + _REC.size, len(payload)))
        if kind in _STATE_KINDS:
            self.last_seq = seq
            if self._compact_due == float("inf"):
                self._update_compact_due()

    def _update_compact_due(self) -> None:
        """The oldest state can be dropped once the state after it is older than the window (and the slack)."""
        states = (e for e in self._entries if e.kind in _STATE_KINDS)
        next(states, None)
        second = next(states, None)
        self._compact_due = float("inf") if second is None else second.time + self.retention_ms + COMPACT_SLACK_MS

    def _state_time(self) -> int:
        """The time of the next state record: the clock, never earlier than the last record."""
        now = self.now_ms()
        if self._entries and self._entries[-1].time > now:
            return self._entries[-1].time
        return now

    # -- the database's hooks --

    def opened(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """The database was opened: recover what a crash left in the WAL, then record from here."""
        self._load()
        if file is None:
            self._image = _serialize(conn)
            if self.last_seq and self._image != self.image_at(self.last_seq):
                self._append(BASE, self.last_seq + 1, self._state_time(), self._image)
            return
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints happen in committed(), after the copy
        self._wal_fd = None
        self._salt, self._frame, self._check_header = None, 0, True
        trusted = not self._store.exists()
        last = self._last_state_entry()
        wal = Path(os.fspath(file) + "-wal")
        nlog = 0
        if wal.exists() and wal.stat().st_size > 32:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            nlog = int(row[1]) if row is not None and row[1] > 0 else 0
        if last is not None and last.kind == DELTA and nlog:
            _, salt1, salt2, frames = _DELTA_HEAD.unpack(self._store.read(last.offset, _DELTA_HEAD.size))
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
        if not trusted and self._entries and self._entries[-1].kind == CLOSE and not nlog:
            size, crc = struct.unpack("<qq", self._store.read(self._entries[-1].offset, 16))
            trusted = file.exists() and _file_crc(file) == (size, crc)
        if not trusted or (not self._store.exists() and self._has_content(conn)):
            current = _serialize(conn)
            known = self.image_at(self.last_seq) if self._store.exists() else b""
            if _unwal(current) != _unwal(known):
                self._append(BASE, self.last_seq + 1, self._state_time(), current)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._salt, self._frame, self._check_header = None, 0, True

    @staticmethod
    def _has_content(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0  # type: ignore[no-any-return]

    def _last_state_entry(self) -> _Entry | None:
        for entry in reversed(self._entries):
            if entry.kind in _STATE_KINDS:
                return entry
        return None

    def committed(self, conn: sqlite3.Connection, file: Path | None) -> None:
        """A transaction committed: copy its pages into the history.

        The commit stands whatever happens here: if the log cannot be written (a full disk), the
        error is logged and the pages are copied at the next commit (they stay in the WAL).
        """
        try:
            if file is None:
                self._capture_image(conn)
            else:
                self._capture_wal(conn, file)
            if self.now_ms() > self._compact_due:
                self.compact()
        except OSError as exc:
            log.error(
                "durable: the point-in-time history of %s/%s could not be written: %s", self.namespace, self.hexid, exc
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
        if file is not None and self._store.exists() and file.exists():
            self._append(CLOSE, 0, self._state_time(), struct.pack("<qq", *_file_crc(file)))
        self._store.close()

    # -- capture --

    def _capture_image(self, conn: sqlite3.Connection) -> None:
        image = _serialize(conn)
        old = self._image or b""
        if image == old:
            return
        if not image:  # no page left: no frame can say so, a BASE of nothing does
            self._append(BASE, self.last_seq + 1, self._state_time(), b"")
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
        parts = [_DELTA_HEAD.pack(page_size, 0, 0, 0)]
        for index, p in enumerate(changed):
            commit = pages if index == len(changed) - 1 else 0
            parts.append(_FRAME.pack(p + 1, commit, 0, 0, 0, 0))
            parts.append(image[p * page_size : (p + 1) * page_size])
        self._append(DELTA, self.last_seq + 1, self._state_time(), b"".join(parts))
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
        step = _FRAME.size + page_size
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
                if _FRAME.unpack_from(data, at)[1]:  # a commit frame ends a transaction
                    groups.append((group_start, frame))
                    group_start = frame
            if stop or not full:
                break
            want *= 2
        if not groups:
            return
        time_ms = self._state_time()
        assert salt is not None
        salt1, salt2 = struct.unpack(">II", salt)
        for first, end in groups:
            payload = (
                _DELTA_HEAD.pack(page_size, salt1, salt2, end) + data[(first - start) * step : (end - start) * step]
            )
            self._append(DELTA, self.last_seq + 1, time_ms, payload)
            self._frame = end  # as each is logged: a failure in between never logs a commit twice
        if self._frame >= CHECKPOINT_FRAMES:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._check_header = True  # the next write starts a new WAL generation (new salts)

    # -- states --

    def image_at(self, seq: int) -> bytes:
        """The database image of state ``seq`` (``b""``: the empty database)."""
        self._load()
        entries = [e for e in self._entries if e.kind in _STATE_KINDS and e.seq <= seq]
        start = 0
        for index in range(len(entries) - 1, -1, -1):
            if entries[index].kind == BASE:
                start = index
                break
        image = bytearray()
        for entry in entries[start:]:
            payload = self._store.read(entry.offset, entry.size)
            if entry.kind == BASE:
                image = bytearray(payload)
            elif entry.kind == DELTA:
                _apply_frames(image, payload)
        return bytes(image)

    def states(self) -> list[tuple[int, int]]:
        """(seq, time in ms) of every state the log can restore, oldest first."""
        self._load()
        found = [(e.seq, e.time) for e in self._entries if e.kind in _STATE_KINDS]
        if self._earliest() is None:
            found.insert(0, (0, self.created_ms))
        return found

    def _earliest(self) -> tuple[int, int] | None:
        """(seq, time) of the earliest state the log can rebuild; ``None`` when it starts empty."""
        for entry in self._entries:
            if entry.kind == BASE:
                return entry.seq, entry.time
            if entry.kind in _STATE_KINDS:
                return None
        return None

    def _seq_at(self, time_ms: int) -> int:
        seq = 0
        for entry in self._entries:
            if entry.kind in _STATE_KINDS:
                if entry.time > time_ms:
                    break
                seq = entry.seq
        return seq

    # -- bookmarks --

    def bookmark(self, seq: int) -> str:
        lineage = 0 if seq == 0 else self.lineage
        return f"{seq >> 32:08x}-{seq & 0xFFFFFFFF:08x}-{lineage:08x}-{_mac(self.namespace, self.hexid, seq, lineage)}"

    def current_bookmark(self) -> str:
        """The bookmark of the last committed state."""
        self._load()
        return self.bookmark(self.last_seq)

    def bookmark_for_time(self, when: object) -> str:
        """The bookmark of the state current at ``when`` (ms since the epoch or a datetime)."""
        self._load()
        ms = _to_ms(when)
        now = self.now_ms()
        if ms > now:
            raise ValueError(f"getBookmarkForTime(): {ms} is in the future (the runtime clock says {now})")
        if ms < now - self.retention_ms:
            raise ValueError(
                f"getBookmarkForTime(): {ms} is more than 30 days ago; point-in-time recovery reaches back "
                f"to {now - self.retention_ms} (the runtime clock minus 30 days)"
            )
        earliest = self._earliest()
        if earliest is not None and ms < earliest[1]:
            raise ValueError(
                f"getBookmarkForTime(): no history of this object before {earliest[1]} (its history starts there)"
            )
        return self.bookmark(self._seq_at(ms))

    def parse(self, bookmark: object) -> int:
        """The seq a bookmark of this object names; ``ValueError`` for anything else."""
        if not isinstance(bookmark, str):
            raise TypeError(f"a bookmark is a str, not {type(bookmark).__name__}")
        match = _BOOKMARK.fullmatch(bookmark)
        if match is None:
            raise ValueError(
                f"Invalid bookmark: {bookmark!r} (expected a string like those getCurrentBookmark() returns)"
            )
        seq = (int(match[1], 16) << 32) | int(match[2], 16)
        lineage = int(match[3], 16)
        if match[4] != _mac(self.namespace, self.hexid, seq, lineage):
            raise ValueError(f"Invalid bookmark: {bookmark!r} is not a bookmark of this Durable Object")
        self._load()
        if seq != 0 and lineage != self.lineage:
            raise ValueError(f"Invalid bookmark: {bookmark!r} belongs to an earlier, wiped history of this object")
        return seq

    def request_restore(self, bookmark: object) -> str:
        """Restore ``bookmark`` when the object next starts; return the bookmark that undoes it."""
        seq = self.parse(bookmark)
        if seq > self.last_seq:
            raise ValueError(f"Invalid bookmark: {bookmark!r} names a state this object has not reached")
        states = {e.seq: e for e in self._entries if e.kind in _STATE_KINDS}
        earliest = self._earliest()
        if (earliest is not None and seq < earliest[0]) or self._too_old(seq):
            raise ValueError(
                f"Bookmark {bookmark!r} is older than 30 days (or than the start of this object's history, "
                "when point-in-time recovery was turned on later); it can no longer be restored"
            )
        if seq != 0 and seq not in states:
            raise ValueError(f"Invalid bookmark: {bookmark!r} names no state in this object's history")
        undo = ((self._anchor >> 32) + 1) << 32
        self._pending = (seq, undo)
        self._append(REQUEST, 0, self._state_time(), struct.pack("<QQ", seq, undo))
        return self.bookmark(undo)

    def _too_old(self, seq: int) -> bool:
        """Whether state ``seq`` ended more than the retention window ago."""
        cutoff = self.now_ms() - self.retention_ms
        following = [e.time for e in self._entries if e.kind in _STATE_KINDS and e.seq > seq]
        return bool(following) and following[0] < cutoff

    def begin_session(self, db: HistoryDatabase) -> bool:
        """A new instance is about to be built: apply a requested restore. True if one was applied."""
        self._load()
        # Open the database now: opening brings the history up to date with the file (commits a
        # crash left in the WAL, writes made while the history was off) before any bookmark is given.
        db.read_conn()
        if self._pending is None:
            self._anchor = self.last_seq
            return False
        target, undo = self._pending
        image = self.image_at(target)
        self._append(MARK, undo, self._state_time(), b"")
        self._pending = None
        db.load_image(_unwal(image))
        self._anchor = self.last_seq
        return True

    # -- retention --

    def compact(self) -> None:
        """Forget states that ended more than the retention window ago (rewrites the log)."""
        self._load()
        now = self.now_ms()
        cutoff = now - self.retention_ms
        if self._pending is not None:
            target_time = next(
                (e.time for e in self._entries if e.kind in _STATE_KINDS and e.seq == self._pending[0]), None
            )
            if target_time is not None:
                cutoff = min(cutoff, target_time)
        keep_seq = self._seq_at(cutoff)
        first = next((i for i, e in enumerate(self._entries) if e.kind in _STATE_KINDS and e.seq > keep_seq), None)
        base_entry = next((e for e in self._entries if e.kind in _STATE_KINDS and e.seq == keep_seq), None)
        if first is None or (base_entry is not None and base_entry is self._entries[0]):
            self._update_compact_due()
            return
        image = self.image_at(keep_seq)
        base_time = base_entry.time if base_entry is not None else self.created_ms
        out = io.BytesIO()
        out.write(
            _header(
                {"namespace": self.namespace, "id": self.hexid, "lineage": self.lineage, "created_ms": self.created_ms}
            )
        )
        if keep_seq or image:
            out.write(_record(BASE, keep_seq, base_time, image))
        if self._pending is not None:
            out.write(_record(REQUEST, 0, base_time, struct.pack("<QQ", *self._pending)))
        for entry in self._entries[first:]:
            out.write(_record(entry.kind, entry.seq, entry.time, self._store.read(entry.offset, entry.size)))
        self._store.replace(out.getvalue())
        self._loaded = False
        self._entries = []
        pending, anchor = self._pending, self._anchor
        self._pending = None
        self._load()
        self._pending, self._anchor = pending, anchor

    def size(self) -> int:
        """Bytes the log takes."""
        return self._store.size() if self._store.exists() else 0


def history_file(database: Path | None) -> Path | None:
    """Where the history of the database file ``database`` lives (``None``: in memory)."""
    return None if database is None else database.with_suffix(".history")


def read_history(path: Path) -> dict[str, object]:
    """A summary of a history log file, read without changing it (``durable inspect``)."""
    store = _Store(path, False, readonly=True)
    try:
        meta, entries, valid = _scan(store)
        states = [e for e in entries if e.kind in _STATE_KINDS]
        return {
            "bytes": store.size(),
            "states": len(states),
            "first_ms": states[0].time if states else None,
            "last_ms": states[-1].time if states else None,
            "torn_tail_bytes": store.size() - valid,
            "lineage": meta.get("lineage"),
        }
    finally:
        store.close()
