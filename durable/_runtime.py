"""The runtime: where Durable Objects live, in memory or persisted under a directory.

A :class:`Runtime` registers namespaces, hosts one :class:`~durable._host.ObjectHost` per live object,
owns the clock and the alarm scheduler, evicts idle objects, and keeps the storage directory for
itself: a second live runtime on the same path, in this process or another, is refused.

The directory itself (its lock, metadata database, alarm index and file names) is
``_directory.py``'s; an in-memory runtime gets a :class:`~durable._directory.MemoryDirectory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from ._alarms import AlarmScheduler
from ._clock import Clock, RealClock
from ._directory import MemoryDirectory, StorageDirectory, check_namespace_name, open_directory
from ._exceptions import DurableError, RuntimeClosedError
from ._hibernation import HibernationManager
from ._history import History, history_file
from ._host import ObjectHost
from ._id import DurableObjectId
from ._limits import Limits
from ._namespace import Namespace
from ._object import DurableObject, Env, bind
from ._sqlite import ObjectDatabase
from ._util import open_files_limit

__all__ = ["Env", "Runtime", "default_max_live_objects"]

T = TypeVar("T", bound=DurableObject)


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
    soft = open_files_limit()
    if soft is None:
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
            raise TypeError(
                f"clock must be a durable.Clock (durable.testing.MockClock in tests), not {type(clock).__name__}"
            )
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
        self._idle: OrderedDict[tuple[str, str], float] = OrderedDict()  # key -> when it became idle
        self._idle_newest: tuple[str, str] | None = None  # the key last put at the end of _idle
        self._sweep_timer: Any = None
        self._closed = False
        self._directory: StorageDirectory = MemoryDirectory() if path is None else open_directory(Path(path).resolve())
        self.path: Path | None = self._directory.path
        self._alarms = AlarmScheduler(self.clock, self._directory, self._host_by_key, self._stored_alarm)

    def __del__(self) -> None:
        # A runtime dropped without aclose() would keep its path locked for the rest of the process
        # (the lock is per process, in _held_paths, as well as a flock): release it when collected,
        # and say so, as files and sockets do. The databases are closed as aclose() would, without
        # the event loop: a runtime that is being collected has no events left to run.
        if getattr(self, "path", None) is None or self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._drop_all_hosts(keep_writes=True)
        self._directory.close()  # before warning: where warnings are errors, the lock is released all the same
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

    # -- namespaces ----------------------------------------------------------------------------

    @overload
    def namespace(
        self, cls: type[T], *, name: str | None = None, storage: Literal["sqlite", "kv"] = "sqlite"
    ) -> Namespace[T]: ...
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
        self.check_open()
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

    def host_for(self, ns: Namespace[Any], oid: DurableObjectId) -> ObjectHost:
        """The host of object ``oid`` of ``ns``, made if it is not live (``Namespace.get``'s stubs)."""
        key = (ns.name, str(oid))
        host = self._hosts.get(key)
        if host is not None:
            return host
        self.check_open()
        directory = self._directory
        db = directory.kept(key)
        if db is None:
            db = ObjectDatabase(directory.object_file(*key), name=oid.name, synchronous=self.synchronous)
            db.name_sink = functools.partial(directory.record_name, key)
            if self.point_in_time_recovery and ns.storage == "sqlite":
                db.history = History(
                    history_file(db.file),
                    namespace=key[0],
                    hexid=key[1],
                    now_ms=self.clock.time_ms,
                    fsync=self.synchronous == "FULL",
                )
            directory.keep(key, db)
        try:
            if oid.name is None and (stored := directory.stored_name(key) or db.stored_name()) is not None:
                oid = ns.ids.from_string(str(oid), name=stored)
            elif db.name is None and oid.name is not None:
                db.name = oid.name
        except BaseException:
            # A damaged file (reading its legacy name opened it): close it now rather than leave
            # an open connection to the garbage collector. A database the directory keeps (in
            # memory) is the object's storage and stays.
            if directory.kept(key) is not db:
                db.close()
            raise
        host = ObjectHost(self, ns.cls, oid, db, kv_backed=ns.storage == "kv", limits=self.limits)
        self._hosts[key] = host
        return host

    def _host_by_key(self, key: tuple[str, str]) -> ObjectHost | None:
        """The host of object ``key`` (namespace name, id hex); None if the namespace is not bound.

        Raises ``TypeError`` if the hex is not an id of that namespace. The scheduler's lookup.
        """
        ns = self._namespaces.get(key[0])
        if ns is None:
            return None
        return self.host_for(ns, ns.ids.from_string(key[1]))

    def _stored_alarm(self, key: tuple[str, str]) -> int | None:
        """The alarm object ``key``'s storage holds (the scheduler's probe at start).

        An object that is not live has its file closed again after the read: it is reopened by
        the alarm's delivery, not held open until then. Raises as ``_host_by_key`` does, and
        ``DurableError`` for a damaged file.
        """
        host = self._host_by_key(key)
        if host is None:
            return None
        try:
            return host.db.meta.get_alarm()
        finally:
            if not host.busy and host.instance is None and host.db.file is not None:
                host.db.close()

    def host_for_key(self, key: tuple[str, str]) -> ObjectHost:
        """The host of object ``key`` (namespace name, id hex), made if it is not live."""
        host = self._hosts.get(key)
        if host is None:
            self.check_open()
            host = self._host_by_key(key)
            if host is None:  # pragma: no cover - registries exist only for bound namespaces
                raise RuntimeClosedError(f"namespace {key[0]!r} is not bound in this runtime")
        return host

    def live_host(self, key: tuple[str, str]) -> ObjectHost | None:
        """The host of object ``key`` if the runtime has one now, else None."""
        return self._hosts.get(key)

    def host_busy(self, host: ObjectHost) -> None:
        """A host starts an event: the runtime is in use on the running loop."""
        if not self._alarms.armed:
            self._alarms.attach_loop()  # arms alarms registered before a loop ran; records the loop
        # A busy host may stay in the idle map: eviction skips busy hosts, and _host_idle moves
        # it to the end with a fresh time when it is idle again.

    def host_idle(self, host: ObjectHost) -> None:
        """A host has no event left: it joins the idle objects (evicted after ``idle_timeout``)."""
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
                self._directory.forget(key)  # an in-memory object that never wrote leaves nothing

    # -- hooks used by hosts -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the runtime is closed (``aclose()`` ran, or it was garbage collected)."""
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the runtime was opened or last used on (calls on others are forwarded)."""
        return self._alarms.loop

    @property
    def armed(self) -> bool:
        """Whether the runtime is attached to a loop with every alarm timer armed on it."""
        return self._alarms.armed

    def attach_loop(self) -> None:
        """Make the running loop the runtime's loop, and arm timers set while none ran."""
        self._alarms.attach_loop()

    async def run_alarm(self, host: ObjectHost) -> bool:
        """Run ``host``'s stored alarm now, as its timer would (``durable.testing.run_alarm``)."""
        return await self._alarms.run_now(host.key, host)

    def check_open(self) -> None:
        """Raise ``RuntimeClosedError`` if the runtime is closed."""
        if self._closed:
            raise RuntimeClosedError("this durable.Runtime is closed; create a new one to keep going")

    def alarm_before_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        """``host`` is about to commit ``when_ms`` as its alarm (``None``: none)."""
        self._alarms.before_commit(host.key, when_ms)

    def alarm_after_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        """``host`` committed ``when_ms`` as its alarm (``None``: none)."""
        self._alarms.after_commit(host.key, when_ms)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        self.check_open()
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
        self._directory.close()

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
        self._directory.close_kept()

    async def reset(self) -> None:
        """Wipe all storage and alarms and drop every instance (a clean slate for the next test).

        On disk it removes only durable's own object files (``<namespace folder>/<64 hex
        digits>.sqlite`` and SQLite's files beside them), never following a symbolic link: other
        files under the path are left alone.
        """
        self.check_open()
        self._alarms.cancel_all()
        self._drop_all_hosts(keep_writes=False)
        self._directory.remove_object_files()

    async def list_ids(self, ns: Namespace[Any]) -> list[DurableObjectId]:
        """Ids of the objects of ``ns`` that have storage, sorted by their hex form."""
        self.check_open()
        found: dict[str, DurableObjectId] = {}
        candidates: set[str] = set()
        directory = self._directory
        candidates.update(directory.object_hexes(ns.name))
        candidates.update(h for (n, h) in self._hosts if n == ns.name)
        for hexid in sorted(candidates):
            try:
                oid = ns.ids.from_string(hexid)
            except TypeError:
                continue  # not an object file of this namespace
            key = (ns.name, hexid)
            host = self._hosts.get(key)
            db = host.db if host is not None else directory.kept(key)
            probing = db is None
            if db is None:  # look at the file without bringing the object to life
                db = ObjectDatabase(directory.object_file(*key), synchronous=self.synchronous)
                db.name_sink = functools.partial(directory.record_name, key)
            try:
                if db.has_data():
                    name = oid.name if oid.name is not None else directory.stored_name(key) or db.stored_name()
                    found[hexid] = ns.ids.from_string(hexid, name=name) if name is not None else oid
            except DurableError:
                found[hexid] = oid  # a damaged file still holds storage; its calls report the damage
            finally:
                if probing:
                    db.close()
        return [found[h] for h in sorted(found)]
