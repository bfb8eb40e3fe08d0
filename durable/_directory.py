"""The storage directory of a persisted runtime: its lock, its metadata database, its file names.

Layout of a persisted runtime's directory::

    PATH/
      .lock                        held (flock) by the live runtime; records its pid
      durable-meta.sqlite          schema version, the alarm index and the objects' names
      <namespace>/<id hex>.sqlite  one database per object that ever wrote anything

``<namespace>`` is the namespace's name when it is 1-100 of ``[A-Za-z0-9_.-]`` and cannot be
mistaken for a file of the runtime's own or another namespace's folder (see
:func:`namespace_folder`); otherwise ``ns-`` and the hex of its UTF-8 bytes, or for a name of more
than 120 bytes (whose hex would exceed the 255-byte limit of file names) ``nsh-`` and the SHA-256
of them. :meth:`Directory.remove_object_files` removes only files of this layout.

With ``point_in_time_recovery=True``, ``<namespace>/<id hex>.history`` beside each database holds its
commits (docs/recovery.md). ``<namespace>/<id hex>.restore`` holds a snapshot restore scheduled
for the object's next start (``ctx.on_next_session_restore``), until it is applied.
``<namespace>/.durable-spare`` is the next new object's file, made ahead while the runtime runs
(``_dbfile.Spares``); the runtime deletes it when it closes, and one a killed runtime left when
the path is opened again.

The metadata database holds, besides its schema version, three tables: ``alarms`` (the alarm index of
``_alarms.py``: a superset of the objects' alarms, so a restarted runtime finds them),
``objects`` (namespace, id hex, name: the name an object was reached by when its file was created,
so that ``ctx.id.name`` survives eviction and restarts, as Cloudflare keeps it) and ``namespaces``
(namespace, storage: the backend its objects were written by, which Cloudflare never converts). workerd keeps
neither in the object's own database, so user SQL never sees them.

An in-memory runtime uses :class:`MemoryDirectory`, which has no files and remembers nothing:
its objects' databases live as long as the runtime, and so do their ids with their names.
This module knows nothing of objects, hosts or the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ._dbfile import SPARE_FILE, SPARE_LOG, Spares
from ._exceptions import PathLockedError
from ._sqlite import SCHEMA_VERSION, ObjectDatabase, connect, wrap_error
from ._util import shown

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "OBJECT_FILE",
    "Directory",
    "MemoryDirectory",
    "StorageDirectory",
    "check_namespace_name",
    "namespace_folder",
    "namespace_of_folder",
    "open_directory",
    "storage_path",
]

Key = tuple[str, str]

_SAFE_DIR = re.compile(r"[A-Za-z0-9_.-]{1,100}")
HEX_FOLDER = re.compile(r"ns-(?:[0-9a-f]{2})+|nsh-[0-9a-f]{64}")
"""Folders of encoded namespace names (see :func:`namespace_folder`)."""
# Point-in-time history (docs/recovery.md): <hex>.history, its rewrite <hex>.history.tmp, and a
# damaged log set aside as <hex>.history.damaged-<ms>. A scheduled snapshot restore: <hex>.restore (and .tmp).
OBJECT_FILE = re.compile(
    r"[0-9a-f]{64}\.(?:sqlite(?:-wal|-shm|-journal|-new)?|history(?:\.tmp|\.damaged-\d+)?|restore(?:\.tmp)?)"
)
"""Every file of an object's under its namespace folder: its database, SQLite's files, its history."""
DATABASE_FILE = re.compile(r"[0-9a-f]{64}\.sqlite")
"""An object's database."""
META_FILE = "durable-meta.sqlite"
# The runtime's own files, and SQLite's beside its metadata database: these names get encoded folders.
_RESERVED_NAMES = frozenset({".", "..", ".lock", META_FILE} | {f"{META_FILE}-{s}" for s in ("wal", "shm", "journal")})
_MAX_HEX_NAME_BYTES = 120


def namespace_folder(namespace: str) -> str:
    """The folder, under a runtime's path, of the objects of the namespace named ``namespace``.

    Names that are safe as they are keep them (so existing directories stay readable); every
    other name is encoded, so that each name gets a folder of its own that the file system
    accepts. ``namespace`` has no lone surrogates (``Runtime.namespace`` refuses them).
    """
    if _SAFE_DIR.fullmatch(namespace) and namespace not in _RESERVED_NAMES and not HEX_FOLDER.fullmatch(namespace):
        return namespace
    raw = namespace.encode()
    if len(raw) <= _MAX_HEX_NAME_BYTES:
        return "ns-" + raw.hex()
    return "nsh-" + hashlib.sha256(raw).hexdigest()


def namespace_of_folder(folder: str) -> str | None:
    """The namespace name whose folder is ``folder``, if the folder's name alone tells it.

    ``None`` for an ``nsh-`` folder (a hash: the metadata database's ``objects`` table names it)
    and for a name that is no namespace's folder.
    """
    if folder.startswith("ns-") and HEX_FOLDER.fullmatch(folder):
        try:
            name = bytes.fromhex(folder[3:]).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return name if namespace_folder(name) == folder else None
    if folder.startswith("nsh-") or namespace_folder(folder) != folder:
        return None
    return folder


def is_namespace_folder(folder: str) -> bool:
    """Whether ``folder`` may be the folder of some namespace (an encoded one or a safe name)."""
    return bool(HEX_FOLDER.fullmatch(folder)) or namespace_folder(folder) == folder


def check_namespace_name(name: object) -> str:
    """Return ``name`` if it can name a namespace, else raise TypeError or ValueError saying why."""
    if not isinstance(name, str):
        raise TypeError(f"a namespace name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("a namespace name must be a non-empty str, not ''")
    try:
        name.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"a namespace name must be valid Unicode text: {name!r} holds a lone surrogate at index "
            f"{exc.start}, which cannot be stored"
        ) from None
    if HEX_FOLDER.fullmatch(name):
        raise ValueError(
            f"the namespace name {name!r} is reserved: names made of 'ns-' and hex digits, or 'nsh-' "
            "and 64 hex digits, are the folders of encoded namespace names"
        )
    return name


_held_paths: dict[Path, str] = {}
_held_paths_lock = threading.RLock()
"""Reentrant: a collection that an allocation starts while a thread holds it may run the
finalizer of a dropped runtime (``Runtime.__del__``), which takes it to release its own path."""
_lock_files: dict[Path, IO[str]] = {}
"""The open ``.lock`` file of every path in ``_held_paths`` (closed in a forked child: ``_forget_in_child``)."""


def _forget_in_child() -> None:
    """In a child process made by ``os.fork()``: drop the paths this process's runtimes held.

    Their runtimes stay the parent's (``durable._runtime`` marks them forked). The child's copy of
    each ``.lock`` file is closed (closing it, unlike unlocking it, leaves the parent's flock in
    place): kept open, it held the lock for as long as the child lived, so that the parent could
    not open its path again after closing it. A lock that another thread held at the fork would
    stay held for good in the child: it is made anew.
    """
    global _held_paths_lock
    _held_paths_lock = threading.RLock()
    for handle in _lock_files.values():
        with contextlib.suppress(OSError):
            handle.close()
    _lock_files.clear()
    _held_paths.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class StorageDirectory:
    """Where a runtime's objects are stored: the interface :class:`Runtime` and the scheduler use.

    This base class is the in-memory directory (:class:`MemoryDirectory`): no files, an alarm
    index and name table that keep nothing (a runtime that is not persisted never restarts).
    :class:`Directory` is the persisted one.
    """

    path: Path | None = None
    spares: Spares | None = None
    """New object files made ahead (persisted runtimes: ``_dbfile.Spares``)."""

    def object_file(self, namespace: str, hexid: str) -> Path | None:
        """The database file of object ``(namespace, hexid)``; ``None`` in memory."""
        return None

    def object_hexes(self, namespace: str) -> set[str]:
        """The id hexes of the objects of ``namespace`` that have a database file."""
        return set()

    def alarm_rows(self) -> list[tuple[str, str, int]]:
        """Every row of the alarm index: ``(namespace, id hex, ms)``."""
        return []

    def index_alarm(self, key: Key, when_ms: int) -> None:
        """Record that object ``key`` has an alarm at ``when_ms`` (written before its commit)."""

    def unindex_alarm(self, key: Key) -> None:
        """Forget the alarm of object ``key`` in the index (written after its commit)."""

    def clear_alarms(self) -> None:
        """Empty the alarm index (``Runtime.reset``)."""

    def record_name(self, key: Key, name: str) -> None:
        """Remember that object ``key`` is named ``name`` (its file is being created)."""

    def stored_name(self, key: Key) -> str | None:
        """The name recorded for object ``key``, if any."""
        return None

    def fix_backend(self, namespace: str, storage: str) -> None:
        """Record ``storage`` as the backend of ``namespace``; raise ``ValueError`` if it has objects of another."""

    def remove_object_files(self) -> None:
        """Delete every object's files and forget their names (``Runtime.reset``)."""

    def keep(self, key: Key, db: ObjectDatabase) -> None:
        """Hold ``db`` for the runtime's life when it has no file (it is the object's storage)."""

    def kept(self, key: Key) -> ObjectDatabase | None:
        """The database ``keep`` holds for object ``key``, if any."""
        return None

    def forget(self, key: Key) -> None:
        """Stop holding object ``key``'s database (it never wrote: nothing to keep)."""

    def close_kept(self) -> None:
        """Close and forget every held database (``Runtime.reset`` and shutdown)."""

    def close(self) -> None:
        """Close the metadata database and release the path. Idempotent."""


class MemoryDirectory(StorageDirectory):
    """The directory of an in-memory runtime: no files; it holds the objects' databases instead."""

    def __init__(self) -> None:
        self._databases: dict[Key, ObjectDatabase] = {}

    def object_hexes(self, namespace: str) -> set[str]:
        return {hexid for (name, hexid) in self._databases if name == namespace}

    def keep(self, key: Key, db: ObjectDatabase) -> None:
        self._databases[key] = db

    def kept(self, key: Key) -> ObjectDatabase | None:
        return self._databases.get(key)

    def forget(self, key: Key) -> None:
        self._databases.pop(key, None)

    def close_kept(self) -> None:
        for db in self._databases.values():
            db.close()
        self._databases.clear()


class Directory(StorageDirectory):
    """A persisted runtime's directory, locked for the runtime's life (see the module docstring).

    Made by :func:`open_directory`.
    """

    path: Path

    def __init__(self, path: Path, lock: IO[str], meta: sqlite3.Connection) -> None:
        self.path = path
        self._lock: IO[str] | None = lock
        self._meta = meta
        self.spares: Spares = Spares(path)

    def _execute(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        try:
            return self._meta.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise wrap_error(exc, self.path / META_FILE, what="the runtime's metadata database") from exc

    def object_file(self, namespace: str, hexid: str) -> Path:
        return self.path / namespace_folder(namespace) / f"{hexid}.sqlite"

    def object_hexes(self, namespace: str) -> set[str]:
        folder = self.path / namespace_folder(namespace)
        if not folder.is_dir():
            return set()
        return {p.name[: -len(".sqlite")] for p in folder.glob("*.sqlite") if DATABASE_FILE.fullmatch(p.name)}

    def alarm_rows(self) -> list[tuple[str, str, int]]:
        return [(ns, hexid, ms) for ns, hexid, ms in self._execute("SELECT namespace, id, time FROM alarms")]

    def index_alarm(self, key: Key, when_ms: int) -> None:
        self._execute("INSERT OR REPLACE INTO alarms VALUES (?, ?, ?)", (*key, when_ms))

    def unindex_alarm(self, key: Key) -> None:
        self._execute("DELETE FROM alarms WHERE namespace = ? AND id = ?", key)

    def clear_alarms(self) -> None:
        self._execute("DELETE FROM alarms")

    def record_name(self, key: Key, name: str) -> None:
        self._execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", (*key, name))

    def stored_name(self, key: Key) -> str | None:
        row = self._execute("SELECT name FROM objects WHERE namespace = ? AND id = ?", key).fetchone()
        return row[0] if row is not None and isinstance(row[0], str) else None

    def fix_backend(self, namespace: str, storage: str) -> None:
        # Cloudflare fixes a class's backend when the class is created (a migration's new_classes or
        # new_sqlite_classes) and cannot convert it later: objects written by one backend are never
        # reopened by the other. A namespace without objects (none yet, or reset) may change.
        row = self._execute("SELECT storage FROM namespaces WHERE namespace = ?", (namespace,)).fetchone()
        if row is not None and row[0] != storage and self.object_hexes(namespace):
            raise ValueError(
                f"namespace {namespace!r} at {str(self.path)!r} holds objects of storage={row[0]!r}, not "
                f"storage={storage!r}: as on Cloudflare, a Durable Object class cannot be converted between the "
                f"SQLite and key-value backends; register it with storage={row[0]!r}, or under another name="
            )
        if row is None or row[0] != storage:
            self._execute("INSERT OR REPLACE INTO namespaces VALUES (?, ?)", (namespace, storage))

    def remove_object_files(self) -> None:
        """Delete the object files (see the layout above), following no symbolic link."""
        with os.scandir(self.path) as folders:
            for folder in folders:
                if not folder.is_dir(follow_symlinks=False):
                    continue  # files of the runtime's own, symbolic links, anything else
                if not is_namespace_folder(folder.name):
                    continue
                with os.scandir(folder.path) as files:
                    for file in files:
                        if OBJECT_FILE.fullmatch(file.name) and file.is_file(follow_symlinks=False):
                            os.unlink(file.path)
        self._execute("DELETE FROM objects")

    def close(self) -> None:
        if self._lock is None:
            return
        try:
            self.spares.close()
            self._meta.close()
        finally:
            with _held_paths_lock:
                _held_paths.pop(self.path, None)
                _lock_files.pop(self.path, None)
            self._lock.close()  # closing the file releases the flock
            self._lock = None


def storage_path(path: object) -> Path:
    """``Runtime(path=...)`` as an absolute path, or an error naming the option.

    pathlib's own errors (``expected str, bytes or os.PathLike object``, ``embedded null byte``)
    do not say which argument was wrong, and ``Path("")`` is the current directory: an empty
    string (an unset environment variable, typically) would persist there silently.
    """
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(name, str):
        raise TypeError(
            "Runtime(path=...): path= takes a str or os.PathLike naming a directory "
            f"(or None to keep storage in memory), not {type(name).__name__}"
        )
    if not name:
        raise ValueError(
            "Runtime(path=''): path='' is empty: pass None to keep storage in memory, "
            "or '.' to persist it in the current directory"
        )
    if "\0" in name:
        raise ValueError(f"Runtime(path={shown(name)}): path= contains a NUL character, which no file name can hold")
    try:
        os.fsencode(name)
    except UnicodeEncodeError as exc:  # a lone surrogate: pathlib's error would not name the option
        raise ValueError(
            f"Runtime(path={shown(name)}): path= holds {name[exc.start]!r} at index {exc.start}, which the file "
            "system's encoding cannot write (a lone surrogate)"
        ) from None
    return Path(name).resolve()


def open_directory(path: Path, synchronous: str = "NORMAL") -> Directory:
    """Lock ``path`` (created if missing) for this runtime and open its metadata database.

    The metadata database is written at the runtime's ``synchronous`` level (``"NORMAL"`` or
    ``"FULL"``): its alarm index row and an object's name are written before the object's commit
    or file that relies on them, so they must survive whatever that commit survives.

    Raises:
        PathLockedError: another live runtime, in this process or another, holds ``path``.
        NotADirectoryError: ``path``, or a directory on its way, is a file (or some other non-directory).
        DataCorruptionError: the metadata database cannot be read.
        RuntimeError: the directory was written by a newer durable.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # (mkdir's error when path is a file: "File exists")
        raise NotADirectoryError(
            errno.ENOTDIR,
            "Runtime(path=...): path= must be a directory, and this is a file (or another non-directory); "
            "give the directory to keep the storage in",
            str(path),
        ) from None
    except NotADirectoryError:  # (mkdir's error when a parent is a file: "Not a directory")
        parent = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"Runtime(path=...): path= cannot be created, as {str(parent)!r} on its way is a file "
            "(or another non-directory)",
            str(path),
        ) from None
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    if path in _held_paths:
        # A runtime dropped without aclose() that only a reference cycle keeps (one used with
        # asyncio.run, a notebook variable bound again) holds the path until the collector runs:
        # run it now, so that its finalizer releases the path (with its ResourceWarning).
        gc.collect()
    with _held_paths_lock:
        # (read once: a collection while the message is built can run a dropped runtime's
        # finalizer on this thread, which the reentrant lock lets release its path meanwhile)
        if (held := _held_paths.get(path)) is not None:
            raise PathLockedError(
                f"storage path {str(path)!r} is already used by another live durable.Runtime in this "
                f"process ({held}); close it first (await runtime.aclose(), or rt.close() for a "
                "durable.BlockingRuntime), or keep using it. In a notebook, a cell that opens the path run "
                "again makes the new runtime while its variable still holds the previous one: close that "
                "one first (`await rt.aclose()`), or open the runtime in a cell of its own"
            )
        handle = open(path / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 - held for the runtime's life
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                other = handle.read().strip() or "an unknown process"
                handle.close()
                raise PathLockedError(
                    f"storage path {str(path)!r} is locked by another durable.Runtime ({other}); "
                    "two runtimes never share a path, so two processes cannot use one directory (a server's "
                    "--workers N starts N processes): run one process, or give each process a path of its own"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder + "\n")
        handle.flush()
        try:
            meta = _open_meta(path, synchronous)
            _remove_spares(path)
        except BaseException:
            handle.close()
            raise
        _held_paths[path] = holder
        _lock_files[path] = handle
    return Directory(path, handle, meta)


def _remove_spares(path: Path) -> None:
    """Delete the spare files and logs (``_dbfile.SPARE_FILE``, ``SPARE_LOG``) a killed runtime left
    in its namespace folders."""
    with os.scandir(path) as folders:
        for folder in folders:
            if folder.is_dir(follow_symlinks=False) and is_namespace_folder(folder.name):
                # (one that cannot be deleted is left: no spare is taken unless this runtime made it)
                for name in (SPARE_FILE, SPARE_LOG):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder.path, name))


def _open_meta(path: Path, synchronous: str) -> sqlite3.Connection:
    file = path / META_FILE
    try:
        meta = connect(file, synchronous=synchronous)
    except sqlite3.Error as exc:
        raise wrap_error(exc, file, what="the runtime's metadata database") from exc
    try:
        meta.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        row = meta.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            meta.close()
            raise RuntimeError(
                f"storage at {str(path)!r} was written by a newer durable (schema {row[0]}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade durable to open it"
            )
        if row is None:
            meta.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        meta.execute(
            "CREATE TABLE IF NOT EXISTS alarms (namespace TEXT, id TEXT, time INTEGER, PRIMARY KEY (namespace, id)) WITHOUT ROWID"
        )
        meta.execute("CREATE TABLE IF NOT EXISTS namespaces (namespace TEXT PRIMARY KEY, storage TEXT) WITHOUT ROWID")
        meta.execute(
            "CREATE TABLE IF NOT EXISTS objects (namespace TEXT, id TEXT, name, PRIMARY KEY (namespace, id)) WITHOUT ROWID"
        )
    except sqlite3.Error as exc:
        meta.close()
        raise wrap_error(exc, file, what="the runtime's metadata database") from exc
    return meta
