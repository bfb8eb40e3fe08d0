"""The history log of one object: its byte format, its records, the states it can rebuild.

The log is the file ``<id>.history`` (or a ``bytearray`` for an in-memory database): a header
(``MAGIC``, then the object and its lineage as JSON), then records, each framed by its length
and a CRC-32 and followed by its length again, so that a torn tail (``kill -9`` in the middle of
an append) is detected and dropped on load, and the log can be read backwards. See
``docs/recovery.md`` for the byte layout and ``_history.py`` for what the kinds of record mean.

A :class:`HistoryLog` loads the log lazily, appends records (never leaving half of one behind),
rebuilds the image of any state it holds, and compacts itself: states that ended more than the
retention window ago (30 days, as on Cloudflare) are folded into one ``BASE`` record. It knows
nothing of SQLite connections or bookmarks: ``_history_capture.py`` writes its states,
``_history.History`` reads them.
"""

from __future__ import annotations

import array
import contextlib
import io
import json
import logging
import os
import secrets
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ._exceptions import DataCorruptionError

log = logging.getLogger("durable")

__all__ = [
    "BASE",
    "CLOSE",
    "DELTA",
    "DELTA_HEAD",
    "FRAME",
    "MARK",
    "REQUEST",
    "STATE_KINDS",
    "UNDERWAY",
    "Entry",
    "HistoryLog",
    "read_history",
    "unwal",
]

COMPACT_SLACK_MS = 3600 * 1000
"""States older than the window are dropped from the log once the oldest is this much older (an hour)."""

MAGIC = b"DOHIST01"
BASE, DELTA, MARK, REQUEST, CLOSE = 1, 2, 3, 4, 5
UNDERWAY = 1
"""The seq field of a ``REQUEST`` written by the start that applies it, just before the restored state."""
STATE_KINDS = (BASE, DELTA, MARK)
"""The kinds of record that are states (the others, ``REQUEST`` and ``CLOSE``, are control records)."""
_REC = struct.Struct("<IIBQq")  # payload length, crc32(kind..payload), kind, seq, time ms
_FOOT = struct.Struct("<I")  # payload length again: the log can be read backwards
DELTA_HEAD = struct.Struct("<IIII")  # page size, WAL salt-1, salt-2, WAL frame count after the commit
FRAME = struct.Struct(">IIIIII")  # a WAL frame header: page number, db size (commit), salts, checksums


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


class Entry:
    """One record of a log, as loaded: its kind, seq and time, and where its payload is."""

    __slots__ = ("kind", "offset", "seq", "size", "time")

    def __init__(self, kind: int, seq: int, time_ms: int, offset: int, size: int) -> None:
        self.kind = kind
        self.seq = seq
        self.time = time_ms
        self.offset = offset  # of the payload
        self.size = size


class Entries:
    """The records of a loaded log, in five packed columns, read back as :class:`Entry` values.

    A log keeps one record per commit for the retention window (30 days), and the records of a
    live object stay loaded: as objects, each took about 200 bytes of memory (20,000 commits, 4 MB);
    packed, 33 bytes. Supports ``append``, ``len``, indexing (a new ``Entry`` each time: compare
    offsets, not identity) and iteration, forwards and reversed.
    """

    __slots__ = ("_kind", "_offset", "_seq", "_size", "_time")

    def __init__(self) -> None:
        self._kind = array.array("B")
        self._seq = array.array("Q")
        self._time = array.array("q")
        self._offset = array.array("Q")
        self._size = array.array("Q")

    def append(self, kind: int, seq: int, time_ms: int, offset: int, size: int) -> None:
        self._kind.append(kind)
        self._seq.append(seq)
        self._time.append(time_ms)
        self._offset.append(offset)
        self._size.append(size)

    def __len__(self) -> int:
        return len(self._kind)

    def pop(self) -> None:
        """Drop the last record."""
        for column in (self._kind, self._seq, self._time, self._offset, self._size):
            column.pop()

    def last_time(self) -> int | None:
        """The time of the last record (``None`` if there is none), without making an ``Entry``."""
        return self._time[-1] if self._time else None

    def __getitem__(self, index: int) -> Entry:
        return Entry(self._kind[index], self._seq[index], self._time[index], self._offset[index], self._size[index])

    def __iter__(self) -> Iterator[Entry]:
        for kind, seq, time_ms, offset, size in zip(self._kind, self._seq, self._time, self._offset, self._size):
            yield Entry(kind, seq, time_ms, offset, size)

    def __reversed__(self) -> Iterator[Entry]:
        for index in range(len(self._kind) - 1, -1, -1):
            yield self[index]


def _header(meta: dict[str, object]) -> bytes:
    blob = json.dumps(meta, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(blob)) + blob


def _scan(store: _Store) -> tuple[dict[str, object], Entries, int]:
    """Read a log: its header, its records, and the size of its valid prefix (a torn tail ends it)."""
    size = store.size()
    head = store.read(0, 12)
    if len(head) < 12 or head[:8] != MAGIC:
        raise DataCorruptionError("not a durable history log (bad magic)")
    (meta_len,) = struct.unpack("<I", head[8:12])
    meta = json.loads(store.read(12, meta_len))
    offset = 12 + meta_len
    entries = Entries()
    while offset + _REC.size <= size:
        length, crc, kind, seq, time_ms = _REC.unpack(store.read(offset, _REC.size))
        end = offset + _REC.size + length + _FOOT.size
        if end > size or kind not in (BASE, DELTA, MARK, REQUEST, CLOSE):
            break
        payload = store.read(offset + _REC.size, length)
        if zlib.crc32(payload, zlib.crc32(struct.pack("<BQq", kind, seq, time_ms))) != crc:
            break
        entries.append(kind, seq, time_ms, offset + _REC.size, length)
        offset = end
    return meta, entries, offset


def _pending_restore(store: _Store, entries: Entries) -> tuple[int, int] | None:
    """(target seq, undo seq) of the restore the log asks for at the next start, if any.

    A ``REQUEST`` asks for it; the ``MARK`` of its undo bookmark, written with the restored state,
    says it was done.
    """
    pending: tuple[int, int] | None = None
    for entry in entries:
        if entry.kind == REQUEST:
            target, undo = struct.unpack("<QQ", store.read(entry.offset, 16))
            pending = (target, undo)
        elif pending is not None and entry.kind == MARK and entry.seq == pending[1]:
            pending = None
    return pending


def _distinct_states(entries: Entries) -> Iterator[Entry]:
    """The state records of ``entries``, a checkpoint left out (a ``BASE`` of the seq just before it)."""
    last = None
    for entry in entries:
        if entry.kind in STATE_KINDS and entry.seq != last:
            last = entry.seq
            yield entry


def _last_state(entries: Entries) -> Entry | None:
    """The last state record of ``entries``; of a checkpoint (a ``BASE`` after the ``DELTA`` of its seq),
    the ``DELTA``, which says where the WAL stood (``HistoryCapture.opened`` copies the rest from there)."""
    found = None
    for entry in reversed(entries):
        if entry.kind in STATE_KINDS:
            if found is not None and (entry.seq != found.seq or entry.kind != DELTA):
                return found
            found = entry
    return found


def _replayed(entries: Entries) -> int:
    total = 0
    for entry in reversed(entries):
        if entry.kind == BASE:
            break
        if entry.kind == DELTA:
            total += entry.size
    return total


def _apply_frames(image: bytearray, payload: bytes) -> None:
    page_size, _, _, _ = DELTA_HEAD.unpack_from(payload, 0)
    offset = DELTA_HEAD.size
    step = FRAME.size + page_size
    while offset + step <= len(payload):
        pgno, commit = FRAME.unpack_from(payload, offset)[:2]
        start = (pgno - 1) * page_size
        if len(image) < start + page_size:
            image.extend(bytes(start + page_size - len(image)))
        image[start : start + page_size] = payload[offset + FRAME.size : offset + step]
        if commit:
            del image[commit * page_size :]
        offset += step


def unwal(image: bytes) -> bytes:
    """An image with the header's WAL flag cleared (bytes 18-19), so it deserializes in memory."""
    if len(image) >= 20 and image[18:20] == b"\x02\x02":
        return image[:18] + b"\x01\x01" + image[20:]
    return image


_DAMAGED = "durable: the history log %s cannot be read (%s); moved to %s, a new one starts"


class HistoryLog:
    """The log of one object's states, loaded lazily from ``path`` (``None``: kept in memory).

    Args:
        path: the log file, or ``None`` to keep it in memory (it lives as long as this object).
        namespace, hexid: the object, written into the log's header.
        now_ms: the runtime clock, in ms since the epoch.
        fsync: fsync every append.
        retention_ms: how far back states stay restorable (compaction keeps them).

    ``lineage``, ``created_ms`` and ``last_seq`` describe the log once loaded; ``pending`` is the
    restore requested for the next session (``(target seq, undo seq)``), ``anchor`` the last seq
    when the current session began, ``lead`` the MARK waiting to lead the next append (see
    :meth:`lead_with_mark`). They are read and set by ``_history.History``.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        namespace: str,
        hexid: str,
        now_ms: Callable[[], int],
        fsync: bool,
        retention_ms: int,
    ) -> None:
        self.namespace = namespace
        self.hexid = hexid
        self.now_ms = now_ms
        self.retention_ms = retention_ms
        self._store = _Store(path, fsync)
        self._loaded = False
        self._entries = Entries()
        self.lineage = 0
        self.created_ms = 0
        self.last_seq = 0
        self.pending: tuple[int, int] | None = None  # (target seq, undo seq)
        self.anchor = 0  # last seq when the current session began
        self.lead: tuple[int, int] | None = None  # (seq, last seq before) of a MARK the next append leads with
        self._compact_due = float("inf")  # the clock time after which the oldest state can go

    # -- loading and appending --

    def load(self) -> None:
        """Read the log once: its header, its records, the pending restore; a torn tail is cut off.

        A log that cannot be read is moved aside (``<id>.history.damaged-<ms>``) and a new one
        starts, with a new lineage.
        """
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
            log.error(_DAMAGED, store.path, exc, aside.name)
            return
        if valid < store.size():
            store.truncate(valid)  # a torn append: the commit is still in the WAL (see opened())
        self.lineage = int(meta.get("lineage", 0))  # type: ignore[call-overload]
        self.created_ms = int(meta.get("created_ms", 0))  # type: ignore[call-overload]
        self._entries = entries
        self._update_compact_due()
        for entry in entries:
            if entry.kind in STATE_KINDS:
                self.last_seq = entry.seq
        self.pending = _pending_restore(store, entries)
        self.anchor = self.last_seq

    def begin(self) -> None:
        """Start the log, if it does not exist yet: its header, with a new lineage."""
        if self._store.exists():
            return
        self.lineage = secrets.randbits(32) or 1
        self.created_ms = self.now_ms()
        self._store.append(
            _header(
                {"namespace": self.namespace, "id": self.hexid, "lineage": self.lineage, "created_ms": self.created_ms}
            )
        )

    def append(self, kind: int, seq: int, time_ms: int, payload: bytes) -> None:
        """Append one record (the log starts with its header if it did not exist).

        Raises ``OSError`` if it cannot be written; the log is then cut back to where it was.
        """
        store = self._store
        self.begin()
        size = store.size()
        data = _record(kind, seq, time_ms, payload)
        lead, self.lead = self.lead, None
        if lead is not None:
            data = _record(MARK, lead[0], time_ms, b"") + data
        try:
            store.append(data)
        except BaseException:
            with contextlib.suppress(OSError):
                store.truncate(size)  # never leave half a record in the middle of the log
            self.lead = lead  # the next append (or settle_mark) still writes it
            raise
        if lead is not None:
            self._entries.append(MARK, lead[0], time_ms, size + _REC.size, 0)
            size += _REC.size + _FOOT.size
        self._entries.append(kind, seq, time_ms, size + _REC.size, len(payload))
        if kind in STATE_KINDS:
            self.last_seq = seq
            if self._compact_due == float("inf"):
                self._update_compact_due()

    def lead_with_mark(self, seq: int) -> None:
        """Make the next append lead with a ``MARK seq``, in the same write (a restore's undo state).

        ``last_seq`` is ``seq`` from now on, so the state appended next follows it. The MARK then
        reaches the log only with the restored state, and the restore it ends is never taken as
        done while the database still holds the state before it. :meth:`settle_mark` ends this.
        """
        self.lead = (seq, self.last_seq)
        self.last_seq = seq

    def settle_mark(self, *, done: bool) -> bool:
        """End :meth:`lead_with_mark`: if no append took the MARK, write it alone (``done``) or drop it; True if logged."""
        lead, self.lead = self.lead, None
        if lead is None:
            return True
        if done:
            self.append(MARK, lead[0], self.state_time(), b"")
            return True
        self.last_seq = lead[1]
        return False

    def _update_compact_due(self) -> None:
        """The oldest state can be dropped once the state after it is older than the window (and the slack)."""
        states = _distinct_states(self._entries)
        next(states, None)
        second = next(states, None)
        self._compact_due = float("inf") if second is None else second.time + self.retention_ms + COMPACT_SLACK_MS

    def state_time(self, now: int | None = None) -> int:
        """The time of the next state record: the clock (or ``now``, read), never earlier than the last record."""
        if now is None:
            now = self.now_ms()
        last = self._entries.last_time()
        return last if last is not None and last > now else now

    # -- reading records --

    def exists(self) -> bool:
        """Whether the log has been written (a file, or bytes in memory)."""
        return self._store.exists()

    def read(self, entry: Entry, length: int | None = None) -> bytes:
        """The payload of ``entry``, or its first ``length`` bytes."""
        return self._store.read(entry.offset, entry.size if length is None else length)

    def last_entry(self) -> Entry | None:
        """The last record of the log (state or control); ``None`` for an empty log."""
        return self._entries[-1] if self._entries else None

    def last_state_entry(self) -> Entry | None:
        """The last state record of the log (a checkpoint's ``DELTA``, not its ``BASE``); ``None`` if none."""
        return _last_state(self._entries)

    def control(self, kind: int, seq: int, payload: bytes) -> None:
        """Append a control record unless the log ends with it (a ``CLOSE`` replaces one there): no endless growth."""
        self.load()  # (unloaded, the log looked empty: the record was repeated)
        last = self.last_entry()
        if last is not None and last.kind == kind and last.seq == seq:
            if self.read(last) == payload:
                return
            if kind == CLOSE:
                self._store.truncate(last.offset - _REC.size)  # killed now: the next open reads the file
                self._entries.pop()
        self.append(kind, seq, self.state_time(), payload)

    def request(self, target: int, undo: int, *, underway: bool = False) -> None:
        """Record a restore of ``target`` for the next session (``undo``: the state before it); ``underway``:
        written by the start applying it, just before the restored state (seq ``UNDERWAY``)."""
        self.load()  # before pending is set: loading reads it from the log
        self.pending = (target, undo)
        self.control(REQUEST, UNDERWAY if underway else 0, struct.pack("<QQ", target, undo))

    def replayed_bytes(self) -> int:
        """The bytes of ``DELTA`` records that rebuilding the last state replays (after the last ``BASE``)."""
        return _replayed(self._entries)

    def has_state(self, seq: int) -> bool:
        """Whether the log holds a state record ``seq``."""
        return any(e.kind in STATE_KINDS and e.seq == seq for e in self._entries)

    def close(self) -> None:
        """Close the log's file (reopened on the next read or append)."""
        self._store.close()

    # -- states --

    def image_at(self, seq: int) -> bytes:
        """The database image of state ``seq`` (``b""``: the empty database)."""
        self.load()
        entries = [e for e in self._entries if e.kind in STATE_KINDS and e.seq <= seq]
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
        self.load()
        found = [(e.seq, e.time) for e in _distinct_states(self._entries)]
        if self.earliest() is None:
            found.insert(0, (0, self.created_ms))
        return found

    def earliest(self) -> tuple[int, int] | None:
        """(seq, time) of the earliest state the log can rebuild; ``None`` when it starts empty."""
        for entry in self._entries:
            if entry.kind == BASE:
                return entry.seq, entry.time
            if entry.kind in STATE_KINDS:
                return None
        return None

    def seq_at(self, time_ms: int) -> int:
        """The seq of the state current at ``time_ms`` (0: the empty database)."""
        seq = 0
        for entry in self._entries:
            if entry.kind in STATE_KINDS:
                if entry.time > time_ms:
                    break
                seq = entry.seq
        return seq

    def too_old(self, seq: int) -> bool:
        """Whether state ``seq`` ended more than the retention window ago."""
        cutoff = self.now_ms() - self.retention_ms
        following = [e.time for e in self._entries if e.kind in STATE_KINDS and e.seq > seq]
        return bool(following) and following[0] < cutoff

    # -- retention --

    def compact_if_due(self) -> None:
        """Compact when the oldest state has been out of the window for the slack (an hour)."""
        if self.now_ms() > self._compact_due:
            self.compact()

    def compact(self) -> None:
        """Forget states that ended more than the retention window ago (rewrites the log)."""
        self.load()
        now = self.now_ms()
        cutoff = now - self.retention_ms
        if self.pending is not None:
            target_time = next(
                (e.time for e in self._entries if e.kind in STATE_KINDS and e.seq == self.pending[0]), None
            )
            if target_time is not None:
                cutoff = min(cutoff, target_time)
        keep_seq = self.seq_at(cutoff)
        first = next((i for i, e in enumerate(self._entries) if e.kind in STATE_KINDS and e.seq > keep_seq), None)
        base_entry = next((e for e in self._entries if e.kind in STATE_KINDS and e.seq == keep_seq), None)
        if (base_entry is None and first is None) or (
            base_entry is not None and base_entry.offset == self._entries[0].offset
        ):
            self._update_compact_due()  # no state at all, or nothing before the state to keep
            return
        if first is None:
            first = len(self._entries)  # the last state is older than the window: it alone stays
        base_time = base_entry.time if base_entry is not None else self.created_ms
        out = _compacted(self, self._entries, (self.image_at(keep_seq), keep_seq, base_time), first)
        self._store.replace(out)
        self._loaded = False
        self._entries = Entries()
        pending, anchor = self.pending, self.anchor
        self.pending = None
        self.load()
        self.pending, self.anchor = pending, anchor

    def size(self) -> int:
        """Bytes the log takes."""
        return self._store.size() if self._store.exists() else 0


def _compacted(history: HistoryLog, entries: Entries, base: tuple[bytes, int, int], first: int) -> bytes:
    """``history`` compacted (:meth:`HistoryLog.compact`): a ``BASE`` of ``base`` (image, seq, time),
    the pending restore's ``REQUEST``, then the records of ``entries`` from index ``first`` on."""
    image, keep_seq, base_time = base
    meta = {"namespace": history.namespace, "id": history.hexid, "lineage": history.lineage}
    out = io.BytesIO()
    out.write(_header({**meta, "created_ms": history.created_ms}))
    if keep_seq or image:
        out.write(_record(BASE, keep_seq, base_time, image))
    if history.pending is not None:
        out.write(_record(REQUEST, 0, base_time, struct.pack("<QQ", *history.pending)))
    for index in range(first, len(entries)):
        entry = entries[index]
        out.write(_record(entry.kind, entry.seq, entry.time, history.read(entry)))
    return out.getvalue()


def read_history(path: Path) -> dict[str, object]:
    """A summary of a history log file, read without changing it (``durable inspect``)."""
    store = _Store(path, False, readonly=True)
    try:
        meta, entries, valid = _scan(store)
        states = list(_distinct_states(entries))
        return {
            "bytes": store.size(),
            "states": len(states),
            "first_ms": states[0].time if states else None,
            "last_ms": states[-1].time if states else None,
            "torn_tail_bytes": store.size() - valid,
            "lineage": meta.get("lineage"),
            "restore_pending": _pending_restore(store, entries) is not None,
        }
    finally:
        store.close()
