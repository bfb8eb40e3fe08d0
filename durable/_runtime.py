"""The runtime: where Durable Objects live, in memory or persisted under a directory.

A :class:`Runtime` registers namespaces, hosts one :class:`~durable._host.ObjectHost` per live object,
owns the clock and the alarm scheduler, evicts idle objects, and keeps the storage directory for
itself: a second live runtime on the same path, in this process or another, is refused.

Layout of a persisted runtime's directory::

    PATH/
      .lock                        held (flock) by the live runtime; records its pid
      durable-meta.sqlite          schema version and the alarm index
      <namespace>/<id hex>.sqlite  one database per object that ever wrote anything

``<namespace>`` is the namespace's name when it is 1-100 of ``[A-Za-z0-9_.-]`` and cannot be
mistaken for a file of the runtime's own or another namespace's folder (see
:func:`namespace_folder`); otherwise ``ns-`` and the hex of its UTF-8 bytes, or for a name of more
than 120 bytes (whose hex would exceed the 255-byte limit of file names) ``nsh-`` and the SHA-256
of them. :meth:`Runtime.reset` removes only files of this layout.

With ``point_in_time_recovery=True``, ``<namespace>/<id hex>.history`` beside each database holds its
commits (docs/recovery.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import socket
import sqlite3
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar, overload

from ._alarms import AlarmScheduler
from ._clock import Clock, RealClock
from ._exceptions import DurableError, PathLockedError, RuntimeClosedError
from ._hibernation import HibernationManager
from ._history import History, history_file
from ._host import ObjectHost
from ._id import DurableObjectId
from ._limits import Limits
from ._namespace import Namespace
from ._object import DurableObject, Env, bind
from ._sqlite import SCHEMA_VERSION, ObjectDatabase

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["Env", "Runtime", "default_max_live_objects"]

T = TypeVar("T", bound=DurableObject)

_SAFE_DIR = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_HEX_FOLDER = re.compile(r"ns-(?:[0-9a-f]{2})+|nsh-[0-9a-f]{64}")
# Point-in-time history (docs/recovery.md): <hex>.history, its rewrite <hex>.history.tmp, and a
# damaged log set aside as <hex>.history.damaged-<ms>.
_OBJECT_FILE = re.compile(r"[0-9a-f]{64}\.(?:sqlite(?:-wal|-shm|-journal|-new)?|history(?:\.tmp|\.damaged-\d+)?)")
# The runtime's own files, and SQLite's beside its metadata database: these names get encoded folders.
_RESERVED_NAMES = frozenset(
    {".", "..", ".lock", "durable-meta.sqlite"} | {f"durable-meta.sqlite-{s}" for s in ("wal", "shm", "journal")}
)
_MAX_HEX_NAME_BYTES = 120


def namespace_folder(namespace: str) -> str:
    """The folder, under a runtime's path, of the objects of the namespace named ``namespace``.

    Names that are safe as they are keep them (so existing directories stay readable); every
    other name is encoded, so that each name gets a folder of its own that the file system
    accepts. ``namespace`` has no lone surrogates (``Runtime.namespace`` refuses them).
    """
    if (
        _SAFE_DIR.fullmatch(namespace)
        and namespace not in _RESERVED_NAMES
        and not _HEX_FOLDER.fullmatch(namespace)
    ):
        return namespace
    raw = namespace.encode()
    if len(raw) <= _MAX_HEX_NAME_BYTES:
        return "ns-" + raw.hex()
    return "nsh-" + hashlib.sha256(raw).hexdigest()


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
    if _HEX_FOLDER.fullmatch(name):
        raise ValueError(
            f"the namespace name {name!r} is reserved: names made of 'ns-' and hex digits, or 'nsh-' "
            "and 64 hex digits, are the folders of encoded namespace names"
        )
    return name
_held_paths: dict[Path, str] = {}
_held_paths_lock = threading.Lock()


FDS_PER_OBJECT = 3
"""Descriptors a live persisted object may hold: its database and WAL (a transient journal
or temporary file at times)."""

FDS_RESERVED = 64
"""Descriptors kept out of the objects' share: stdio, the lock and meta files, Python's own."""


def default_max_live_objects() -> int:
    """The default ``max_live_objects``: 1000, or less where the limit on open files requires.

    Live objects may use half of ``RLIMIT_NOFILE`` (the soft limit) beyond ``FDS_RESERVED``, at
    ``FDS_PER_OBJECT`` descriptors each; the other half is left to sockets (``durable serve``'s
    connections) and the application. Under the common limit of 1024 that is 160 objects;
    from a limit of about 6,100 it is 1000. Never less than 8.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 1000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(8, min(1000, (soft - FDS_RESERVED) // (2 * FDS_PER_OBJECT)))


class Runtime:
    """Hosts Durable Objects. Use it as an async context manager, or call ``aclose()``.

    Args:
        path: a directory to persist storage in (created if missing); ``None`` keeps everything
            in memory, gone when the runtime closes.
        clock: the clock for alarms and timeouts; ``durable.testing.MockClock`` in tests.
        limits: storage limits (default: production Cloudflare's); ``Limits.unlimited()`` relaxes.
        vars: plain values to expose on ``env`` next to the namespaces.
        idle_timeout: seconds after which an idle object is evicted (its in-memory state is lost,
            its database closed); Cloudflare evicts after 70-140 s. ``None``: never.
        max_live_objects: idle objects beyond this many are evicted, least recently used first,
            which bounds memory and open files when many objects are touched. Default
            (``None``): :func:`default_max_live_objects`, derived from the process's limit on
            open files, so that the default always fits it.
        max_queued_calls: calls waiting or running in one object beyond which new calls fail
            with ``OverloadedError`` (``Durable Object is overloaded. Too many requests queued.``);
            ``None`` (default) never refuses.
        synchronous: ``"NORMAL"`` (default: a commit survives the process being killed) or
            ``"FULL"`` (also survives power loss; every commit waits for the disk).
        point_in_time_recovery: keep a 30-day history of every SQLite-backed object's commits, so
            that ``ctx.storage.get_bookmark_for_time()`` and ``on_next_session_restore_bookmark()``
            work (see ``docs/recovery.md``; it costs time on every commit, see
            ``docs/performance.md``).
        hibernate_after: seconds after which an idle object whose only connections are
            hibernatable WebSockets drops its instance (Cloudflare: 10 s); ``None``: never.

    Raises:
        PathLockedError: another live runtime holds ``path``.

    Example::

        async with durable.Runtime(path="state") as rt:
            counters = rt.namespace(Counter, name="COUNTER")
            print(await counters.get_by_name("A").increment())
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        limits: Limits | None = None,
        vars: Mapping[str, Any] | None = None,
        idle_timeout: float | None = 70.0,
        max_live_objects: int | None = None,
        max_queued_calls: int | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        point_in_time_recovery: bool = False,
        hibernate_after: float | None = 10.0,
    ) -> None:
        if not isinstance(point_in_time_recovery, bool):
            raise TypeError(f"point_in_time_recovery must be a bool, not {type(point_in_time_recovery).__name__}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if max_live_objects is None:
            max_live_objects = default_max_live_objects()
        if max_live_objects < 1:
            raise ValueError("max_live_objects must be at least 1")
        if max_queued_calls is not None and max_queued_calls < 1:
            raise ValueError("max_queued_calls must be at least 1 (or None)")
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a durable.Limits, not {type(limits).__name__}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a durable.Clock (durable.testing.MockClock in tests), not {type(clock).__name__}")
        if vars is not None and (not isinstance(vars, Mapping) or not all(isinstance(k, str) for k in vars)):
            raise TypeError(f"vars must be a mapping of str names to values, not {vars!r}")
        self.clock: Clock = clock if clock is not None else RealClock()
        self.limits = limits if limits is not None else Limits()
        self.idle_timeout = idle_timeout
        self.max_live_objects = max_live_objects
        self.max_queued_calls = max_queued_calls
        self.synchronous = synchronous
        self.point_in_time_recovery = point_in_time_recovery
        if hibernate_after is not None and not hibernate_after >= 0:
            raise ValueError(f"hibernate_after must be a number of seconds >= 0 (or None), not {hibernate_after!r}")
        self.hibernation = HibernationManager(self, hibernate_after)
        """The WebSockets of every object and their hibernation (``durable._hibernation``)."""
        self.env = Env()
        for key, value in (vars or {}).items():
            bind(self.env, key, value)
        self._namespaces: dict[str, Namespace[Any]] = {}
        self._hosts: dict[tuple[str, str], ObjectHost] = {}
        self._memory: dict[tuple[str, str], ObjectDatabase] = {}
        self._idle: OrderedDict[tuple[str, str], float] = OrderedDict()  # key -> when it became idle
        self._idle_newest: tuple[str, str] | None = None  # the key last put at the end of _idle
        self._sweep_timer: Any = None
        self._closed = False
        self._lock_file: IO[str] | None = None
        self.path: Path | None = None
        meta: sqlite3.Connection | None = None
        if path is not None:
            self.path = Path(path).resolve()
            self._acquire(self.path)
            try:
                meta = self._open_meta(self.path)
            except BaseException:
                self._release()
                raise
        self._meta = meta
        self._alarms = AlarmScheduler(self, meta)

    def __del__(self) -> None:
        # A runtime dropped without aclose() would keep its path locked for the rest of the process
        # (the lock is per process, in _held_paths, as well as a flock): release it when collected,
        # and say so, as files and sockets do. The databases are closed as aclose() would, without
        # the event loop: a runtime that is being collected has no events left to run.
        if getattr(self, "_lock_file", None) is None or self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._drop_all_hosts(keep_writes=True)
        with contextlib.suppress(Exception):
            if self._meta is not None:
                self._meta.close()
        self._release()  # before warning: where warnings are errors, the lock is released all the same
        warnings.warn(
            f"durable.Runtime at {str(self.path)!r} was never closed; its path lock was released when "
            "it was garbage collected. Close runtimes with 'async with' or 'await runtime.aclose()'",
            ResourceWarning,
            stacklevel=2,
            source=self,
        )

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "in memory"
        return f"<durable.Runtime {where}{' closed' if self._closed else ''}>"

    # -- the storage directory -----------------------------------------------------------------

    def _acquire(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        holder = f"pid {os.getpid()} on {socket.gethostname()}"
        with _held_paths_lock:
            if path in _held_paths:
                raise PathLockedError(
                    f"storage path {str(path)!r} is already used by another live durable.Runtime in this "
                    f"process ({_held_paths[path]}); close it first (await runtime.aclose())"
                )
            lock_path = path / ".lock"
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the runtime's life
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.seek(0)
                    other = handle.read().strip() or "an unknown process"
                    handle.close()
                    raise PathLockedError(
                        f"storage path {str(path)!r} is locked by another durable.Runtime ({other}); "
                        "two runtimes never share a path"
                    ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(holder + "\n")
            handle.flush()
            self._lock_file = handle
            _held_paths[path] = holder

    def _release(self) -> None:
        if self.path is not None:
            with _held_paths_lock:
                _held_paths.pop(self.path, None)
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file releases the flock
            self._lock_file = None

    @staticmethod
    def _open_meta(path: Path) -> sqlite3.Connection:
        from ._sqlite import connect, wrap_error

        file = path / "durable-meta.sqlite"
        try:
            meta = connect(file)
        except sqlite3.Error as exc:
            raise wrap_error(exc, file, what="the runtime's metadata database") from exc
        try:
            meta.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
            row = meta.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.Error as exc:
            meta.close()
            raise wrap_error(exc, file, what="the runtime's metadata database") from exc
        if row is None:
            meta.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif int(row[0]) > SCHEMA_VERSION:
            meta.close()
            raise RuntimeError(
                f"storage at {str(path)!r} was written by a newer durable (schema {row[0]}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade durable to open it"
            )
        return meta

    def _object_file(self, namespace: str, hexid: str) -> Path | None:
        if self.path is None:
            return None
        return self.path / namespace_folder(namespace) / f"{hexid}.sqlite"

    # -- namespaces ----------------------------------------------------------------------------

    @overload
    def namespace(self, cls: type[T], *, name: str | None = None, storage: Literal["sqlite", "kv"] = "sqlite") -> Namespace[T]: ...
    @overload
    def namespace(self, cls: type[Any], *, name: str | None = None, storage: str = "sqlite") -> Namespace[Any]: ...
    def namespace(self, cls: type[Any], *, name: str | None = None, storage: str = "sqlite") -> Namespace[Any]:
        """Register ``cls`` and return its namespace.

        Args:
            cls: a :class:`durable.DurableObject` subclass.
            name: identifies the namespace (default: ``cls.__name__``); ids and stored data are keyed
                by it. Given explicitly, it is also bound on ``env`` (``env.COUNTER``).
            storage: ``"sqlite"`` (default, Cloudflare's recommended backend, with ``sql`` and
                ``kv``) or ``"kv"`` (the legacy key-value backend, with its stricter limits).

        Raises ``TypeError`` for a class that is not a DurableObject, ``ValueError`` for an unknown
        backend, a name registered twice, an empty name, a name with a lone surrogate, or a name
        of the form ``ns-<hex>`` or ``nsh-<64 hex digits>`` (the folders of encoded names).
        """
        self._check_open()
        if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
            raise TypeError(f"namespace() takes a durable.DurableObject subclass, not {cls!r}")
        if storage not in ("sqlite", "kv"):
            raise ValueError(f"storage must be 'sqlite' or 'kv', not {storage!r}")
        ns_name = check_namespace_name(cls.__name__ if name is None else name)
        existing = self._namespaces.get(ns_name)
        if existing is not None:
            if existing.cls is cls and existing.storage == storage:
                return existing
            raise ValueError(f"namespace {ns_name!r} is already registered for {existing.cls.__name__}")
        ns = Namespace._create(self, cls, ns_name, storage)
        self._namespaces[ns_name] = ns
        if name is not None:
            bind(self.env, name, ns)
        self._alarms.namespace_bound(ns_name)
        return ns

    # -- hosts ---------------------------------------------------------------------------------

    def _host(self, ns: Namespace[Any], oid: DurableObjectId) -> ObjectHost:
        key = (ns.name, str(oid))
        host = self._hosts.get(key)
        if host is not None:
            return host
        self._check_open()
        db = self._memory.get(key)
        if db is None:
            db = ObjectDatabase(self._object_file(*key), name=oid.name, synchronous=self.synchronous)
            if self.point_in_time_recovery and ns.storage == "sqlite":
                db.history = History(
                    history_file(db.file), namespace=key[0], hexid=key[1], now_ms=self.clock.time_ms,
                    fsync=self.synchronous == "FULL",
                )
            if self.path is None:
                self._memory[key] = db
        if oid.name is None and (stored := db.stored_name()) is not None:
            oid = ns._ids.from_string(str(oid), name=stored)
        elif db.name is None and oid.name is not None:
            db.name = oid.name
        host = ObjectHost(self, ns.cls, oid, db, kv_backed=ns.storage == "kv", limits=self.limits)
        self._hosts[key] = host
        return host

    def _host_by_hex(self, namespace: str, hexid: str) -> ObjectHost | None:
        ns = self._namespaces.get(namespace)
        if ns is None:
            return None
        return self._host(ns, ns._ids.from_string(hexid))

    def host_for_key(self, key: tuple[str, str]) -> ObjectHost:
        """The host of object ``key`` (namespace name, id hex), made if it is not live."""
        host = self._hosts.get(key)
        if host is None:
            self._check_open()
            host = self._host_by_hex(*key)
            if host is None:  # pragma: no cover - registries exist only for bound namespaces
                raise RuntimeClosedError(f"namespace {key[0]!r} is not bound in this runtime")
        return host

    def live_host(self, key: tuple[str, str]) -> ObjectHost | None:
        """The host of object ``key`` if the runtime has one now, else None."""
        return self._hosts.get(key)

    def _host_busy(self, host: ObjectHost) -> None:
        alarms = self._alarms
        if alarms.loop is None or alarms._unarmed:
            alarms.attach_loop()  # arms alarms registered before a loop ran; records the loop
        # A busy host may stay in the idle map: eviction skips busy hosts, and _host_idle moves
        # it to the end with a fresh time when it is idle again.

    def _host_idle(self, host: ObjectHost) -> None:
        # Idle objects are kept in least-recently-idle order with the time they became idle. One
        # sweep timer per runtime evicts those idle longer than idle_timeout (a timer per call
        # would cost more than the call); the oldest go first when max_live_objects is exceeded.
        if self._closed or host.detached:
            return
        if self.hibernation.registries:
            self.hibernation.host_idle(host)
        key = host.key
        idle = self._idle
        now = self.clock.time()
        if key is not self._idle_newest:
            # Moved to the end. The newest key, if still in the map, is already last (every
            # insertion updates it), so calls that keep coming to one object skip this.
            idle.pop(key, None)
            self._idle_newest = key
        idle[key] = now
        while len(self._hosts) > self.max_live_objects and idle:
            victim_key, _ = idle.popitem(last=False)
            victim = self._hosts.get(victim_key)
            if victim is not None and not victim.busy:
                self._drop(victim_key, victim)
        if self.idle_timeout is not None and self._sweep_timer is None and idle:
            self._sweep_timer = self.clock.call_at(now + self.idle_timeout, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Evict objects idle for ``idle_timeout`` seconds or more; re-arm for the next oldest."""
        self._sweep_timer = None
        if self._closed or self.idle_timeout is None:
            return
        deadline = self.clock.time() - self.idle_timeout
        idle = self._idle
        while idle:
            key, since = next(iter(idle.items()))
            if since > deadline:
                self._sweep_timer = self.clock.call_at(since + self.idle_timeout, self._sweep_idle)
                return
            del idle[key]
            host = self._hosts.get(key)
            if host is not None and not host.busy:
                self._drop(key, host)

    def _drop(self, key: tuple[str, str], host: ObjectHost) -> None:
        """Evict an idle object: drop its instance, close its file, forget the host."""
        host.evict()
        if not host.db.in_transaction:
            del self._hosts[key]
            host.detached = True
            if not host.db.exists():
                self._memory.pop(key, None)  # an in-memory object that never wrote leaves nothing

    # -- hooks used by hosts -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("this durable.Runtime is closed; create a new one to keep going")

    def _alarm_before_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        self._alarms.before_commit(host.key, when_ms)

    def _alarm_after_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        self._alarms.after_commit(host.key, when_ms)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        self._check_open()
        self._alarms.attach_loop()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Flush every object's writes, stop alarms and close every database. Idempotent."""
        if self._closed:
            return
        await self._alarms.stop()
        # Let commits scheduled for the end of this turn run before closing.
        await asyncio.sleep(0)
        self._closed = True
        self._drop_all_hosts(keep_writes=True)
        if self._meta is not None:
            self._meta.close()
        self._release()

    def _drop_all_hosts(self, *, keep_writes: bool) -> None:
        """End every instance and close every database, committing pending writes or not."""
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        self._idle.clear()
        self.hibernation.shutdown()
        hosts = list(self._hosts.values())
        self._hosts.clear()
        for host in hosts:
            host.detached = True
            if not keep_writes:
                host.db.rollback()
            with contextlib.suppress(Exception):
                host.close()
        for db in self._memory.values():
            db.close()
        self._memory.clear()

    async def reset(self) -> None:
        """Wipe all storage and alarms and drop every instance (a clean slate for the next test).

        On disk it removes only durable's own object files (``<namespace folder>/<64 hex
        digits>.sqlite`` and SQLite's files beside them), never following a symbolic link: other
        files under the path are left alone.
        """
        self._check_open()
        self._alarms.cancel_all()
        self._drop_all_hosts(keep_writes=False)
        if self.path is not None:
            _remove_object_files(self.path)

    async def _list_ids(self, ns: Namespace[Any]) -> list[DurableObjectId]:
        """Ids of the objects of ``ns`` that have storage, sorted by their hex form."""
        self._check_open()
        found: dict[str, DurableObjectId] = {}
        candidates: set[str] = set()
        if self.path is not None:
            probe = self._object_file(ns.name, "0" * 64)
            assert probe is not None
            if probe.parent.is_dir():
                candidates.update(p.name[: -len(".sqlite")] for p in probe.parent.glob("*.sqlite"))
        candidates.update(h for (n, h) in self._memory if n == ns.name)
        candidates.update(h for (n, h) in self._hosts if n == ns.name)
        for hexid in sorted(candidates):
            try:
                oid = ns._ids.from_string(hexid)
            except TypeError:
                continue  # not an object file of this namespace
            key = (ns.name, hexid)
            host = self._hosts.get(key)
            db = host.db if host is not None else self._memory.get(key)
            probing = db is None
            if db is None:  # look at the file without bringing the object to life
                db = ObjectDatabase(self._object_file(*key), synchronous=self.synchronous)
            try:
                if db.has_data():
                    name = oid.name if oid.name is not None else db.stored_name()
                    found[hexid] = ns._ids.from_string(hexid, name=name) if name is not None else oid
            except DurableError:
                found[hexid] = oid  # a damaged file still holds storage; its calls report the damage
            finally:
                if probing:
                    db.close()
        return [found[h] for h in sorted(found)]


def _remove_object_files(root: Path) -> None:
    """Delete the object files under ``root`` (see the layout above), following no symbolic link."""
    with os.scandir(root) as folders:
        for folder in folders:
            if not folder.is_dir(follow_symlinks=False):
                continue  # files of the runtime's own, symbolic links, anything else
            if not (_HEX_FOLDER.fullmatch(folder.name) or namespace_folder(folder.name) == folder.name):
                continue
            with os.scandir(folder.path) as files:
                for file in files:
                    if _OBJECT_FILE.fullmatch(file.name) and file.is_file(follow_symlinks=False):
                        os.unlink(file.path)
