"""An object's SQLite file: how a connection to it is opened, how the file is made and checked.

This is the lowest part of one object's database (``_sqlite.ObjectDatabase``, which re-exports
``connect``, ``wrap_error`` and ``SCHEMA_VERSION``): every pragma `durable` relies on, set in
``connect()``; the creation of an object file with its first page already written
(``create_file()``); the refusal of a file emptied behind durable's back (``check_not_emptied()``);
and the one translation of ``sqlite3`` errors met outside user SQL into durable's errors
(``wrap_error()``): :class:`~durable.DataCorruptionError` when the file is damaged,
:class:`~durable.SqlError` for anything else, raised ``from`` the ``sqlite3`` error.

It also names what the classes of the reserved tables (``_kvcache.KvCache`` for ``_cf_KV``,
``_dbmeta.MetadataTable`` for ``_cf_METADATA``) need from the database that holds them:
``Connections``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ._exceptions import DataCorruptionError, SqlError

__all__ = [
    "SCHEMA_VERSION",
    "SPARE_FILE",
    "SPARE_LOG",
    "Connections",
    "Spares",
    "check_not_emptied",
    "connect",
    "copy_image",
    "create_file",
    "drop_schema",
    "open_file",
    "schema_entries",
    "wrap_error",
]

SCHEMA_VERSION = 1
"""Version of the reserved-table layout: an object file's ``PRAGMA user_version``, and the runtime
metadata database's ``schema_version``."""


class _Connection(sqlite3.Connection):
    """A connection that only the process which opened it closes (see ``_keep_in_child``)."""

    opened_by: int

    def close(self) -> None:
        if self.opened_by == os.getpid():
            super().close()


_opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
"""The connections to files this process opened and has not collected (``_keep_in_child``)."""

_inherited: list[_Connection] = []
"""In a child made by ``os.fork()``: the parent's connections, kept from garbage collection."""

_incref: Callable[[object], object] | None = None
"""CPython's ``Py_IncRef``, looked up (``_find_incref``) in the parent at its first file connection."""

_incref_looked_up = False


def _find_incref() -> None:
    """Look up ``Py_IncRef`` now, in the parent, so that the fork hook neither imports nor fails.

    Importing ``ctypes`` in the child (loading ``_ctypes`` after a fork taken while other threads
    ran) could wait for ever for a lock a vanished thread held, and an interpreter without
    ``ctypes.pythonapi`` (PyPy, a build without ``_ctypes``) made the hook raise in every child.
    Where it is missing, the child still keeps the connections from garbage collection
    (``_inherited``); only its interpreter's own exit may then close them (``os._exit()``, as
    ``multiprocessing`` children end, does not).
    """
    global _incref, _incref_looked_up
    _incref_looked_up = True
    try:
        import ctypes

        function = ctypes.pythonapi.Py_IncRef
        function.argtypes = [ctypes.py_object]
        function.restype = None
    except (ImportError, AttributeError, OSError):
        return
    _incref = function


def _keep_in_child() -> None:
    """In a child made by ``os.fork()``: the parent's connections are never closed, only left.

    SQLite's rule is "do not carry an open database connection across a fork" (How To Corrupt An
    SQLite Database File, 2.6), and closing one is using it. The child's copy believes it holds
    the file's exclusive lock (``locking_mode=EXCLUSIVE``; the ``fcntl`` locks themselves stay the
    parent's), so closed as the last connection it checkpointed its stale log into the file and
    deleted the ``-wal`` file the parent goes on appending to: the parent's next commits were lost
    at its next crash (measured: a child that dropped its inherited runtime and loop). A copy taken
    while another thread was inside SQLite would also wait for ever for that thread's mutex.
    ``close()`` is a no-op outside the opening process; garbage collection and the interpreter's exit
    would still close the copies, so the child keeps them (``_inherited``) and each one gets a
    reference that is never released (CPython's ``Py_IncRef``, looked up in the parent:
    ``_find_incref``): the child exits with them open, and the kernel closes their descriptors.
    """
    connections = list(_opened)
    _opened.clear()
    _inherited.extend(connections)
    if _incref is not None:
        for conn in connections:
            _incref(conn)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keep_in_child)


def connect(file: Path | str, *, synchronous: str = "NORMAL", exclusive: bool = True) -> sqlite3.Connection:
    """Open a SQLite connection with every pragma `durable` relies on, set in this one place.

    - ``isolation_level=None``: Python's sqlite3 must not open transactions behind our back; the
      storage layer issues ``BEGIN``/``COMMIT`` itself, mirroring workerd's implicit transaction.
    - ``journal_mode=WAL``: a commit is one append to the log, and a process killed at any moment
      (``kill -9``) leaves either the whole transaction or none of it.
    - ``synchronous=NORMAL`` (default): in WAL mode a commit survives the process being killed;
      only a power loss may drop the last commits. ``Runtime(synchronous="FULL")`` fsyncs every
      commit for power-loss durability, at a cost.
    - ``locking_mode=EXCLUSIVE`` (set before WAL, so the WAL index lives in process memory, not in
      a ``-shm`` file): a runtime owns its files alone (the path lock refuses a second runtime), so
      SQLite need not take and drop file locks around every transaction; that was 8 ``fcntl``
      calls per read-modify-write. Outside tools can read an object's file once the runtime has
      closed it (idle eviction or ``aclose()``).
    - ``foreign_keys=ON``: Cloudflare enforces foreign keys in Durable Object SQLite databases.
    - ``busy_timeout``: one runtime owns a path (a lock file enforces it), so contention only
      comes from outside tools reading the file; wait a little rather than fail at once.
    - ``check_same_thread=False``: the connection is only used from the event-loop thread, but a
      runtime may be closed from another thread after its loop ended.

    If a pragma fails (a damaged file: "file is not a database", "database disk image is
    malformed"), the connection is closed before the error is raised: left open, it would keep the
    file's exclusive lock, and every later attempt would wait out the busy timeout, then fail with
    "database is locked".
    """
    conn = sqlite3.connect(
        os.fspath(file), isolation_level=None, check_same_thread=False, cached_statements=256, factory=_Connection
    )
    conn.opened_by = os.getpid()
    try:
        if os.fspath(file) != ":memory:":
            if not _incref_looked_up:
                _find_incref()
            _opened.add(conn)
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            # synchronous first: switching a new file to WAL is itself a write, made at this level.
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


_CORRUPTION_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_INDEX", "SQLITE_CORRUPT_SEQUENCE"})


def wrap_error(
    exc: sqlite3.Error, file: Path | None, *, what: str = "the database of this Durable Object"
) -> DataCorruptionError | SqlError:
    """The `durable` error for a ``sqlite3`` error met outside user SQL (raise it ``from exc``).

    A damaged file (SQLite's ``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``, or a bare
    ``sqlite3.DatabaseError``) is a :class:`DataCorruptionError` naming the file; anything else
    (a full disk, an I/O error, a lock held by another program) a :class:`SqlError` with SQLite's
    code.
    """
    code = getattr(exc, "sqlite_errorname", None)
    where = "in memory" if file is None else f"at {os.fspath(file)!r}"
    if code in _CORRUPTION_CODES or type(exc) is sqlite3.DatabaseError:
        return DataCorruptionError(
            f"{what} {where} is damaged ({exc}): restore it from a backup, or delete the file to start afresh"
        )
    suffix = f": {code}" if code else ""
    return SqlError(f"{exc}{suffix} ({what} {where})", code=code)


def create_file(
    file: Path,
    *,
    synchronous: str,
    defer: Callable[[Callable[[], None]], None] | None = None,
    log: bool = True,
) -> None:
    """Create an object's file, already in WAL mode, in one step (a rename).

    SQLite creates an empty file at connect and writes its first page when WAL mode is set; a
    process killed between the two would leave an empty file, which durable refuses as damaged
    (see ``check_not_emptied``). So the file is made under a temporary name and renamed once it
    has its first page. The namespace's folder is made here, on its first object's first write.

    The first file a process creates is made by SQLite (``_create_with_sqlite``); its bytes (one
    page, the same for every new object: WAL mode, ``user_version``, no tables) are kept and every
    later file is a copy of them, written and synced once before the rename. SQLite's own way
    costs ten ``fdatasync`` calls per file (a rollback journal, then a write-ahead log, each
    created, synced and deleted, and the directory synced for each); the copy costs one.
    Measured with ``strace`` and ``benchmarks/bench_storage.py``: the first call to a new
    persisted object went from about 4 ms to about 1 ms on the shared VM's disk (see
    ``docs/performance.md``). Under a runtime's path, the file is the folder's spare when one is
    ready (``Spares``: written and synced ahead by a thread), and the next spare is asked for:
    at once, or by the call ``defer`` is handed (the database runs it after the new object's first
    commit, so that the spare's write and sync do not run beside the commit's own: see ``Spares``).
    """
    global _first_page, _first_log
    # A spare made ahead in the folder, if the runtime owning the path keeps them (Spares).
    spares = _spares_at.get(file.parent.parent) if _spares_at else None
    # A log without its file (a file deleted with its log left, a power loss that kept a spare log's
    # rename but not the file's, on a file system that reorders renames) belongs to no file: SQLite
    # would replay it into this one. Deleted before any file takes the name, a spare too (one taken
    # without a log, or killed between its two renames, would have found it beside it).
    with contextlib.suppress(OSError):
        os.unlink(_log_of(file))
    if spares is not None and spares.take(file, defer, log=log):
        return
    temp = file.with_name(file.name + "-new")
    image = _first_page
    if image is None:
        image, first_log = _create_with_sqlite(temp, synchronous=synchronous)
        if _is_first_page(image):
            _first_page = image
            _first_log = first_log if first_log is not None and _is_first_log(first_log, image) else None
    else:
        _write_synced(temp, image)
    os.replace(temp, file)
    if spares is not None:
        spares.ask(file.parent, defer)


_first_page: bytes | None = None
"""The bytes of a new object file, made once per process by SQLite itself (``create_file``)."""

_first_log: bytes | None = None
"""The write-ahead log SQLite wrote while making ``_first_page``: its header and one frame, the
page itself, committed (``Spares`` puts a copy beside each spare; ``None``: no log is made ahead)."""

_WAL_MAGIC = (0x377F0682, 0x377F0683)
"""A write-ahead log header's first four bytes (SQLite's file format, 4.1)."""


def _log_of(file: Path) -> str:
    return os.fspath(file) + "-wal"


def _is_first_log(log: bytes, image: bytes) -> bool:
    """Whether ``log`` is a write-ahead log of exactly one committed frame holding ``image``.

    SQLite's file format (4.1 and 4.2): a 32-byte header (magic, version, page size, ...), then
    frames of a 24-byte header (page number, the database's size in pages after a commit frame,
    the header's salts, checksums) and the page. Replayed into any new object file, such a log
    leaves it as it is: it holds the very page the file holds.
    """
    page_size = len(image)
    if len(log) != 32 + 24 + page_size or int.from_bytes(log[0:4], "big") not in _WAL_MAGIC:
        return False
    if int.from_bytes(log[8:12], "big") != page_size or log[16:24] != log[40:48]:
        return False
    page, size_after = int.from_bytes(log[32:36], "big"), int.from_bytes(log[36:40], "big")
    return page == 1 and size_after == 1 and log[56:] == image


def _is_first_page(image: bytes) -> bool:
    """Whether ``image`` is a one-page SQLite database in WAL mode with durable's ``user_version``.

    Checked before it is reused (SQLite's file format: the header string, read and write
    versions 2 for WAL at offsets 18 and 19, the page size at 16, ``user_version`` at 60).
    """
    if len(image) < 100 or not image.startswith(b"SQLite format 3\x00") or image[18:20] != b"\x02\x02":
        return False
    page_size = int.from_bytes(image[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    return len(image) == page_size and int.from_bytes(image[60:64], "big") == SCHEMA_VERSION


def _create_with_sqlite(temp: Path, *, synchronous: str) -> tuple[bytes, bytes | None]:
    """Make ``temp`` a new object file with SQLite (WAL mode, ``user_version``).

    Returns its bytes, and those of the log SQLite wrote for ``user_version`` (read before the close
    checkpoints it into the file and deletes it; ``None`` if it could not be read).
    """
    try:
        conn = connect(temp, synchronous=synchronous)
    except sqlite3.OperationalError:
        if temp.parent.is_dir():
            raise
        temp.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(temp, synchronous=synchronous)
    log: bytes | None = None
    try:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        with contextlib.suppress(OSError):
            log = Path(_log_of(temp)).read_bytes()
    finally:
        conn.close()  # checkpoints the log into the file, syncs it and deletes the log
    return temp.read_bytes(), log


def _write_synced(temp: Path, image: bytes, *, make_folder: bool = True) -> None:
    """Write ``image`` as ``temp`` (replacing a leftover of a crash) and sync it before it is renamed.

    The sync keeps the rename from reaching the disk before the bytes do: a power loss must not
    leave an empty file under the object's name. The rename itself is made durable by SQLite,
    which syncs the directory at the first sync of the file's write-ahead log (the first commit
    that makes one, or with a log made ahead, ``Spares``, the first commit under ``FULL`` and the
    first checkpoint under ``NORMAL``, before any page of the log reaches the file).
    Its folder (and the folders above) is made if missing, unless ``make_folder`` is false.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, 0o644)
    except FileNotFoundError:
        if not make_folder:
            raise
        temp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, flags, 0o644)
    try:
        view = memoryview(image)
        while view:
            view = view[os.write(fd, view) :]
        getattr(os, "fdatasync", os.fsync)(fd)
    finally:
        os.close(fd)


SPARE_FILE = ".durable-spare"
"""A new object file made ahead in a namespace folder (``Spares``), renamed when an object needs one."""

SPARE_LOG = SPARE_FILE + "-wal"
"""The spare's write-ahead log, made ahead with it (``Spares``), renamed after it."""


class Spares:
    """New object files made ahead by a thread of their own, one per namespace folder of ``path``.

    A new persisted object's file cost its first call a write and an ``fdatasync`` of its first
    page (``create_file``), about half a millisecond of the ~1.7 ms that making a new object
    added to 1000 concurrent calls on it (``benchmarks/bench_storage.py``'s (b), on this VM's
    disk; docs/performance.md, tenth pass). Once a runtime has made a file in a folder, this
    thread makes the next one there (``SPARE_FILE``: the same bytes, written and synced), so the
    next new object's file is a rename: the sync runs while the loop goes on. The rename is made
    durable as a created file's is: SQLite syncs the folder at the first sync of the file's log.
    A spare the thread is writing when the next new object of its folder needs a file is waited
    for (the rest of its writes and syncs costs less than the file made on the loop's thread, a
    write and a sync, and the first commit's two), but only as long as making the file would take:
    twice what the thread took for the last spare (at least 1 ms, at most 0.5 s), so neither a
    stalled write (each new object waited 0.5 s for it) nor a folder on tmpfs (a write with no
    sync, where the wait was for the thread to get a core) costs more than it saves. One only
    queued is not waited for (the file is made as before).

    Its log is made ahead too (``SPARE_LOG``: a copy of ``_first_log``, SQLite's header and one
    committed frame holding the very page the file holds, written and synced), and renamed after
    the file to the file's log, so the object's first commit appends to a log that already has a
    frame. Measured at 7464b29 (``strace -ff -tt -T``): that commit was the rest of the cost, two
    syncs on the loop's thread, about 1 ms on this VM's disk. SQLite writes a log's header only
    at frame 0 and syncs it there (``sqlite3WalFrames``: ``if( iFrame==0 )`` ... ``if(
    pWal->syncHeader )``; only a file system reporting ``SQLITE_IOCAP_SEQUENTIAL`` skips it), and
    syncs the folder at the first sync of a log it opened with ``SQLITE_OPEN_CREATE``
    (``unixOpen``'s ``UNIXFILE_DIRSYNC``, set whether or not the file already existed). With the
    frame there, ``synchronous=NORMAL`` makes no sync at that commit (the log and the folder are
    synced at the first checkpoint, before any page reaches the file, as every later commit's
    frames are); ``FULL`` makes two (the commit's own, then the folder: the file's and the log's
    renames are durable when the commit returns), against three before. Replayed into the file,
    the frame leaves it as it is. Not for an object with a history (``log=False``): the history
    checkpoints a log it finds at open (three syncs), so the spare's log is deleted.

    The next spare is asked for after the new object's first commit (``ask`` with the database's
    ``after_commit``), not when its file is taken: made at once, its syncs ran beside the
    commit's (the file system serialises them), and the thread's start and its Python steps took
    the GIL from the loop's thread in the middle of the new connection's first statements
    (per-part timers, 200 new objects 2 ms apart, medians: the first call took 2.06 ms with the
    spare made at once, 1.80 ms with no spare at all). The thread then waits ``_LINGER`` seconds
    for the next request before it ends, so a run of new objects starts it once (a thread start
    blocks the caller until the new thread runs: 80 us median, over 1 ms on the loaded VM).

    Crash-safe: a spare and its log are complete, synced files before they are marked ready, and
    their names are no object's; the file is renamed before its log, so a process killed between
    the two leaves the file without a log (SQLite then makes one, as for a file made without a
    spare), never a log without its file (``create_file`` deletes such a log before it makes or
    takes the file: a power loss on a file system that reorders renames could leave one). A leftover of a
    killed process is deleted when a runtime opens the path
    (``_directory._remove_spares``), and ``close()`` deletes this runtime's. The thread never
    makes a folder (one removed while the runtime runs stays removed), and writes nothing once
    ``close()`` has begun. A child made by ``os.fork()`` never closes an inherited runtime's
    spares (``_runtime._forked_child`` marks the runtime closed), so the parent's stay its own.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        _spares_at[path] = self  # (one runtime per path: its lock)
        self._lock = threading.RLock()  # (close() may run under it: a collected runtime's finalizer, on the thread)
        self._wake = threading.Condition(self._lock)
        self._made = threading.Condition(self._lock)
        self._making: Path | None = None
        """The folder whose spare the thread is writing now (``take`` waits for it)."""
        self._took: float | None = None
        """Seconds the thread took to write and sync the last spare and its log (``take``'s wait)."""
        self._ready: set[Path] = set()
        self._logged: set[Path] = set()
        """The folders whose ready spare has its log beside it (``SPARE_LOG``)."""
        self._wanted: set[Path] = set()
        self._made_in: set[Path] = set()
        self._pending: collections.deque[Path] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def take(self, file: Path, defer: Callable[[Callable[[], None]], None] | None = None, *, log: bool = True) -> bool:
        """Rename the spare of ``file``'s folder to ``file``, if one is ready; whether it was.

        Its log (``SPARE_LOG``) is renamed after it, to ``file``'s log, if ``log`` (else deleted):
        a process killed between the two leaves the file without a log, as a spare without one
        is. The next spare is then asked for (``ask``, with ``defer``).
        """
        folder = file.parent
        with self._lock:
            thread = self._thread
            if self._making == folder and folder not in self._ready and thread is not None and thread.is_alive():
                # The rest of its writes and syncs is less than what making the file here costs (a write
                # and a sync, then the first commit's two): waited for, as long as making the file
                # here would take (twice what the last spare took, _WAIT at most: a stalled write
                # is not waited for object after object; on tmpfs, a write, not a sync).
                took = self._took
                wait = _WAIT if took is None else min(_WAIT, max(_WAIT_LEAST, 2 * took))
                self._made.wait_for(lambda: self._making != folder, wait)
            if folder not in self._ready:
                return False
            self._ready.discard(folder)
            logged = folder in self._logged
            self._logged.discard(folder)
        try:
            os.replace(folder / SPARE_FILE, file)
        except OSError:
            return False  # (deleted behind durable's back): made as before
        if logged:
            with contextlib.suppress(OSError):  # (deleted behind durable's back: SQLite makes the log)
                if log:
                    os.replace(folder / SPARE_LOG, _log_of(file))
                else:
                    os.unlink(folder / SPARE_LOG)
        self.ask(folder, defer)
        return True

    def ask(self, folder: Path, defer: Callable[[Callable[[], None]], None] | None) -> None:
        """``want(folder)``, now (``defer`` is ``None``) or when ``defer`` calls it back."""
        if defer is None:
            self.want(folder)
        else:
            defer(functools.partial(self.want, folder))

    def want(self, folder: Path) -> None:
        """Have a spare made in ``folder`` (once the first file of the process gave its bytes)."""
        if _first_page is None:
            return
        with self._lock:
            if self._closed or folder in self._wanted or folder in self._ready:
                return
            self._wanted.add(folder)
            self._made_in.add(folder)
            self._pending.append(folder)
            if self._thread is None:
                # The thread lives only while spares are wanted, and _LINGER seconds after: an idle
                # runtime keeps no thread, so a process that forks (gunicorn --preload,
                # multiprocessing) is not multi-threaded because of it (Python 3.12+ warns then).
                thread = threading.Thread(target=self._make, name="durable-spare-files", daemon=True)
                try:
                    thread.start()
                except RuntimeError:
                    # "can't start new thread" (the process is at its thread limit): a spare only
                    # saves time, and this runs after a commit that succeeded, which must not fail
                    # for it. The folder's next object makes its own file.
                    self._wanted.discard(folder)
                    self._pending.pop()  # (the folder appended above: no thread runs to take it)
                    return
                self._thread = thread
            else:
                self._wake.notify()

    def _make(self) -> None:
        while True:
            with self._lock:  # (queued before close(): not written, so close() waits for one write at most)
                if not self._closed and not self._pending:
                    self._wake.wait(_LINGER)  # (want() and close() notify)
                if self._closed or not self._pending:
                    if self._thread is threading.current_thread():
                        self._thread = None
                    self._wanted.difference_update(self._pending)
                    self._pending.clear()
                    return
                folder = self._making = self._pending.popleft()
                image, log = _first_page, _first_log
            started = time.monotonic()
            spare = folder / SPARE_FILE
            try:
                if image is not None:
                    # Never makes the folder: one removed meanwhile (the path deleted while the
                    # runtime runs) stays removed.
                    _write_synced(spare, image, make_folder=False)
            except OSError:
                image = None  # (a folder removed meanwhile, a full disk): no spare there
            if image is not None and log is not None and not self._closing():
                try:
                    _write_synced(folder / SPARE_LOG, log, make_folder=False)
                except OSError:
                    log = None  # (the spare goes without its log)
                    with contextlib.suppress(OSError):
                        os.unlink(folder / SPARE_LOG)
            with self._lock:
                self._wanted.discard(folder)
                self._making = None
                self._made.notify_all()
                made = image is not None
                if made:
                    self._took = time.monotonic() - started
                closed = self._closing()  # (read again: close() may have run during the write)
                if made and not closed:
                    self._ready.add(folder)
                    if log is not None:
                        self._logged.add(folder)
            if made and closed:  # (close() ran during the write: from this thread, a collected runtime's finalizer)
                for name in (SPARE_FILE, SPARE_LOG):
                    with contextlib.suppress(OSError):
                        os.unlink(folder / name)

    def _closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the thread and delete the spares it made. Idempotent."""
        if _spares_at.get(self._path) is self:
            del _spares_at[self._path]
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():  # (a collected runtime's finalizer)
            thread.join()
        for folder in self._made_in:
            for name in (SPARE_FILE, SPARE_LOG):
                with contextlib.suppress(OSError):
                    os.unlink(folder / name)
        self._made_in.clear()
        self._ready.clear()
        self._logged.clear()
        self._wanted.clear()


_LINGER = 1.0
"""Seconds the spare thread waits for the next request before it ends (``Spares``)."""

_WAIT = 0.5
"""Seconds ``Spares.take`` waits at most for the spare the thread is writing in that folder."""

_WAIT_LEAST = 0.001
"""Seconds ``Spares.take`` may wait for it whatever the last spare took (its thread may wait for a core)."""

_spares_at: dict[Path, Spares] = {}
"""The open ``Spares`` by runtime path: ``create_file`` takes a spare for a file of ``path/<folder>``."""


def check_not_emptied(file: Path) -> None:
    """Refuse an object file that was emptied (truncated to zero bytes) after durable wrote it.

    durable never leaves an empty file (``create_file``), and committed data lives in the file or
    in its write-ahead log. An empty file with no log is damage: reading it as an object without
    data would silently lose everything it held.

    Raises:
        DataCorruptionError: the file is empty and has no write-ahead log with data.
    """
    if file.stat().st_size == 0:
        wal = file.with_name(file.name + "-wal")
        if not wal.exists() or wal.stat().st_size == 0:
            raise DataCorruptionError(
                f"the database of this Durable Object at {os.fspath(file)!r} is damaged: the file "
                "is empty (it was truncated); restore it from a backup, or delete it to start "
                "the object afresh"
            )


def open_file(
    file: Path | None,
    synchronous: str,
    creating: Callable[[], None],
    defer: Callable[[Callable[[], None]], None] | None = None,
    log: bool = True,
) -> sqlite3.Connection:
    """A new connection to an object's database: in memory (``file`` is ``None``), or its file.

    A file that does not exist is created (``creating`` is called first, so no crash leaves a
    file without its name recorded; ``defer`` and ``log`` as ``create_file`` takes them); one
    that exists is checked (``check_not_emptied``).
    ``sqlite3`` errors are raised as they are (the database wraps them).
    """
    if file is None:
        return connect(":memory:")
    if not file.exists():
        creating()
        create_file(file, synchronous=synchronous, defer=defer, log=log)
    else:
        check_not_emptied(file)
    return connect(file, synchronous=synchronous)


def copy_image(image: bytes, conn: sqlite3.Connection) -> None:
    """Make ``conn``'s database exactly ``image`` (a serialized database; empty: no tables).

    SQLite's backup API copies the image's pages over the live database through its own journal,
    so a crash leaves the old or the new state, never a mix.
    """
    source = sqlite3.connect(":memory:")
    try:
        if image:
            source.deserialize(image)
        source.backup(conn)
    finally:
        source.close()


def schema_entries(conn: sqlite3.Connection | sqlite3.Cursor, tag: str) -> list[tuple[str, str]]:
    """Every table, index, view and trigger but SQLite's own, as ``(type, name)``.

    The one scan of ``sqlite_master`` the database makes: which reserved tables exist (when a
    connection opens, an image is loaded or a rollback may have dropped tables), what
    ``delete_all`` drops, and whether the object has SQL data. ``tag`` marks the statement as
    durable's own (``ObjectDatabase.tagged``).
    """
    return conn.execute(f"SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' -- {tag}").fetchall()


def drop_schema(conn: sqlite3.Connection, tag: str) -> None:
    """Drop every table and view (their indexes and triggers go with them) and ``sqlite_sequence``.

    ``delete_all`` of a SQLite-backed object, inside the implicit transaction: workerd resets the
    whole database, so afterwards ``sqlite_master`` is empty and ``database_size`` is one page, even
    when an ``AUTOINCREMENT`` table had made ``sqlite_sequence`` (measured with miniflare 4,
    2026-04-07). SQLite refuses to drop that table, so once every other table is gone it is renamed
    in ``sqlite_master`` (the schema's version moves on, so SQLite reads the schema again) and
    dropped under its new name, which frees its pages; SQLite makes a new one when the next
    ``AUTOINCREMENT`` table is created.

    Foreign-key checks are deferred for the drop (dropping a referenced table first would fail
    otherwise; once every table is gone no violation can remain), then set back to off, which is
    where workerd's new database has them.
    """
    conn.execute(f"PRAGMA defer_foreign_keys=ON -- {tag}")
    for kind, name in schema_entries(conn, tag):
        if kind in ("table", "view"):
            quoted = '"' + name.replace('"', '""') + '"'
            conn.execute(f"DROP {kind.upper()} IF EXISTS {quoted} -- {tag}")
    if conn.execute(f"SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence' -- {tag}").fetchone():
        version = conn.execute(f"PRAGMA schema_version -- {tag}").fetchone()[0]
        conn.execute(f"PRAGMA writable_schema=ON -- {tag}")
        try:
            conn.execute(
                "UPDATE sqlite_master SET name = '_cf_sequence', tbl_name = '_cf_sequence', "
                f"sql = 'CREATE TABLE _cf_sequence(name,seq)' WHERE name = 'sqlite_sequence' -- {tag}"
            )
        finally:
            conn.execute(f"PRAGMA writable_schema=OFF -- {tag}")
        conn.execute(f"PRAGMA schema_version={int(version) + 1} -- {tag}")
        conn.execute(f"DROP TABLE _cf_sequence -- {tag}")
    conn.execute(f"PRAGMA defer_foreign_keys=OFF -- {tag}")


class Connections(Protocol):
    """What a reserved table's class needs from the database that holds it (``ObjectDatabase``)."""

    file: Path | None
    """The database file (``None``: in memory), named by the errors of ``wrap_error``."""

    def read_conn(self) -> sqlite3.Connection | None:
        """The connection for reading, or ``None`` if the object has no storage at all yet."""
        ...

    def write_conn(self) -> sqlite3.Connection:
        """The connection for writing, inside the implicit transaction (opened if needed)."""
        ...

    def tagged(self, sql: str) -> str:
        """``sql`` marked as durable's own statement (so the SQL authorizer never applies to it)."""
        ...
