"""Snapshots of SQLite-backed objects (``ctx.storage.snapshot()``) and their restore into another object.

Cloudflare's snapshot API (docs ``durable-objects/api/sqlite-storage-api`` "Snapshot API",
``api/state`` ``onNextSessionRestore``, ``best-practices/snapshot-and-restore-durable-object-storage``):
an object captures its whole SQLite database as an opaque ``DurableObjectSnapshot``, passes it over
RPC to another SQLite-backed object (of any namespace), which calls ``ctx.onNextSessionRestore(snapshot)``
and ``ctx.abort()``; its next session starts on the copied storage. Scheduled alarms are not carried
over. workerd's snapshot handle is serializable over RPC only: structured clone and storage refuse
it with ``DurableObjectSnapshots cannot be cloned or stored. They can only be transferred over RPC.``
(``api/actor-snapshot.c++``).

Here a snapshot holds the database image itself (``Connection.serialize()``), with the alarm row
taken out, so it is complete on its own: :func:`register_transfer` lets RPC carry it (as the same
immutable object) and storage refuse it. A scheduled restore waits in ``<id hex>.restore`` beside
the database (written to a temporary file, fsynced and renamed into place, so a crash leaves it
whole or absent), or on the database object for in-memory runtimes; the next start loads it with
one atomic copy (``ObjectDatabase.load_image``) and only then removes it, so a process killed at
any point leaves the restore either applied or still pending, never half done. See
``docs/recovery.md``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import weakref
import zlib
from pathlib import Path
from typing import Any, Protocol, final

from ._codec import Transfer, register_transfer
from ._exceptions import DataCorruptionError
from ._history_log import unwal

__all__ = [
    "NO_SNAPSHOT_KV",
    "DurableObjectSnapshot",
    "PendingRestore",
    "portable_image",
    "read_restore",
    "restore_file",
    "snapshot_image",
]

NO_SNAPSHOT_KV = (
    "This Durable Object is not backed by SQLite storage: snapshot() and onNextSessionRestore() work only "
    "for SQLite-backed Durable Objects (rt.namespace(cls, storage='sqlite'), the default)"
)
"""The refusal for a key-value-backed class (source or destination); the docs: "Snapshots work only
for SQLite-backed Durable Objects"."""

NOT_STORED = "DurableObjectSnapshots cannot be cloned or stored. They can only be transferred over RPC."
"""workerd's DataCloneError text (``api/actor-snapshot.c++``), appended to storage's refusal."""

_MAGIC = b"DOSNAP02"
_HEADER = struct.Struct("<8sqqI")  # magic, undo seq (-1: none), image length, image CRC-32


@final
class DurableObjectSnapshot:
    """An opaque copy of one SQLite-backed object's whole storage, from ``ctx.storage.snapshot()``.

    Pass it over RPC to another SQLite-backed object, which restores it with
    ``ctx.on_next_session_restore(snapshot)`` followed by ``ctx.abort()``. It cannot be stored
    (``DataCloneError``), and it has nothing to inspect. Never constructed by users.
    """

    __slots__ = ("_db_image", "_source", "_taken_ms")

    def __init__(self, image: bytes, source: str, taken_ms: int) -> None:
        self._db_image = image
        self._source = source
        self._taken_ms = taken_ms

    def __repr__(self) -> str:
        return f"<durable.DurableObjectSnapshot of {self._source}>"

    def __reduce__(self) -> str:
        raise TypeError(NOT_STORED)


def snapshot_image(snapshot: DurableObjectSnapshot) -> tuple[bytes, int]:
    """The database image a snapshot holds (without the alarm) and the time of its state (ms)."""
    return snapshot._db_image, snapshot._taken_ms


register_transfer(DurableObjectSnapshot, Transfer(lambda snapshot: snapshot, NOT_STORED))


def portable_image(image: bytes) -> bytes:
    """``image`` (a serialized database; ``b""``: empty) as a snapshot carries it: no alarm.

    The alarm row of ``_cf_METADATA`` is deleted, and the table with it once empty (as on an
    object that never set an alarm), and the WAL flag of the header is cleared.
    """
    if not image:
        return b""
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(unwal(image))
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_cf_METADATA'").fetchone():
            conn.execute("DELETE FROM _cf_METADATA WHERE key = 'alarm'")
            if conn.execute("SELECT count(*) FROM _cf_METADATA").fetchone()[0] == 0:
                conn.execute("DROP TABLE _cf_METADATA")
            conn.commit()
        return conn.serialize()
    finally:
        conn.close()


def restore_file(database: Path) -> Path:
    """Where the restore scheduled for the database file ``database`` waits."""
    return database.with_suffix(".restore")


class RestoreTarget(Protocol):
    """What a pending restore needs from the database it replaces (``_sqlite.ObjectDatabase``)."""

    file: Path | None


_IN_MEMORY: weakref.WeakKeyDictionary[Any, tuple[bytes, int | None]] = weakref.WeakKeyDictionary()
"""The restores scheduled for in-memory databases (which live as long as their runtime), by database."""


@final
class PendingRestore:
    """The snapshot restore one database waits for: scheduled, read at the next start, then done."""

    __slots__ = ("_db", "_path")

    def __init__(self, db: RestoreTarget) -> None:
        self._db = db
        self._path = None if db.file is None else restore_file(db.file)

    def schedule(self, image: bytes, undo: int | None) -> None:
        """Wait for ``image`` (replacing any earlier one); ``undo``: the seq its undo bookmark names.

        A file is written whole to ``.restore.tmp``, fsynced, then renamed over ``.restore``. Its
        header holds the image's length and CRC-32, so a damaged file is refused by name at the
        next start rather than read as a malformed database.
        """
        path = self._path
        if path is None:
            _IN_MEMORY[self._db] = (image, undo)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(_HEADER.pack(_MAGIC, -1 if undo is None else undo, len(image), zlib.crc32(image)))
            handle.write(image)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def scheduled(self) -> bool:
        """Whether a restore waits (without reading it)."""
        return self._db in _IN_MEMORY if self._path is None else self._path.exists()

    def waiting(self) -> tuple[bytes, int | None] | None:
        """The image and undo seq of the scheduled restore, or ``None``."""
        path = self._path
        if path is None:
            return _IN_MEMORY.get(self._db)
        return read_restore(path)

    def done(self) -> None:
        """The restore was applied: forget it."""
        path = self._path
        if path is None:
            _IN_MEMORY.pop(self._db, None)
            return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(path.parent)


def read_restore(path: Path) -> tuple[bytes, int | None] | None:
    """The image and undo seq of the restore file ``path``; ``None`` if there is none.

    Raises ``DataCorruptionError`` naming the file when it is not one this durable wrote whole.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER.size or data[:8] != _MAGIC:
        raise DataCorruptionError(
            f"{path} is not a snapshot restore written by this durable: the restore that "
            "on_next_session_restore() scheduled cannot be applied; the object's own storage is untouched "
            "(remove the file to start the object on it, then schedule the restore again)"
        )
    _, undo, size, crc = _HEADER.unpack_from(data)
    image = data[_HEADER.size :]
    if len(image) != size or zlib.crc32(image) != crc:
        why = f"{len(image)} of its {size} bytes" if len(image) != size else "its checksum does not match"
        raise DataCorruptionError(
            f"{path} is damaged ({why}): the snapshot restore that on_next_session_restore() scheduled "
            "cannot be applied; the object's own storage is untouched (remove the file to start the "
            "object on it, then schedule the restore again)"
        )
    return image, None if undo < 0 else undo


def _fsync_dir(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
