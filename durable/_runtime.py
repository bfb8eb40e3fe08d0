"""The runtime: where Durable Objects live, in memory or persisted under a directory.

A :class:`Runtime` registers namespaces, owns the clock, the alarm scheduler and the sockets, and
keeps the storage directory for itself: a second live runtime on the same path, in this process or
another, is refused. It opens, resets and closes all of them together.

Its live objects (one :class:`~durable._host.ObjectHost` per object, made on first use) and their
idle eviction are a :class:`~durable._hosts.HostTable`'s. The directory itself (its lock, metadata
database, alarm index and file names) is ``_directory.py``'s; an in-memory runtime gets a
:class:`~durable._directory.MemoryDirectory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from ._alarms import AlarmScheduler
from ._background import own_work
from ._clock import Clock, RealClock
from ._directory import MemoryDirectory, StorageDirectory, check_namespace_name, open_directory, storage_path
from ._exceptions import ConnectionClosedError, RuntimeClosedError
from ._hibernation import HibernationManager
from ._host import ObjectHost
from ._hosts import HostTable
from ._id import DurableObjectId
from ._limits import Limits
from ._namespace import Namespace
from ._object import DurableObject, Env, bind
from ._stub import on_runtime_loop, on_runtime_thread
from ._util import Handle, open_files_limit, shown, unbuilt_safe_repr

__all__ = ["Env", "Runtime", "default_max_live_objects"]

T = TypeVar("T", bound=DurableObject)


FDS_PER_OBJECT = 3
"""Descriptors a live persisted object may hold: its database and WAL (a transient journal
or temporary file at times)."""

FDS_RESERVED = 64
"""Descriptors kept out of the objects' share: stdio, the lock and meta files, Python's own."""

SHUTDOWN_GRACE = 5.0
"""Seconds ``aclose()`` waits for ``ctx.wait_until()`` work still running (then cancels it, logged)."""

log = logging.getLogger("durable")

_live: weakref.WeakSet[Runtime] = weakref.WeakSet()
"""Every runtime made in this process and not yet collected (marked forked in a child: ``_forked_child``)."""
_forked: weakref.WeakKeyDictionary[Runtime, int] = weakref.WeakKeyDictionary()
"""The runtimes a forked child inherited, and the pid of the parent that made them."""

_CLOSED = "this durable.Runtime is closed; create a new one to keep going"
_FORKED = (
    "this durable.Runtime belongs to process {parent}, and this process ({child}) is a copy of it made "
    "by os.fork(): a runtime (its event loop, its threads, its open databases) cannot cross a fork, and "
    "using it here would hang or damage its storage. Create the runtime in the process that uses it "
    "(gunicorn --preload: in a post_fork hook; multiprocessing: the 'spawn' start method, or create it "
    "in the worker)"
)


def _forked_child() -> None:
    """In a child process made by ``os.fork()``: every inherited runtime is closed there, for good.

    Its event loop and threads did not cross the fork (calls waited for ever for a loop that no
    thread runs) and its databases are the parent's, which goes on writing them: the child must
    never write them, nor flush or close them (``Runtime.__del__`` skips a closed runtime).
    """
    global _registering
    _registering = threading.Lock()  # (another thread of the parent may have held it at the fork)
    parent = os.getppid()
    for runtime in list(_live):
        if not runtime.closed:
            _forked[runtime] = parent
            runtime.closed = True
            runtime.loop = None  # a call does not wait for the parent's loop: it fails here (check_open)


def _closed_under_run_alarm(host: ObjectHost) -> None:
    """Raise ``ConnectionClosedError`` if ``run_alarm()``'s attempt was cancelled under its caller,
    which was not cancelled itself: the runtime's shutdown cancels deliveries, and a bare
    ``CancelledError`` read as if the awaiting test had been cancelled."""
    caller = asyncio.current_task()
    if caller is not None and not caller.cancelling():
        raise ConnectionClosedError(
            "Connection closed: the runtime was closed while run_alarm() waited for the alarm() "
            f"handler of {host.key[0]}/{host.key[1]}, which was cancelled"
        ) from None


def _enter(runtime: Runtime) -> None:
    """Open ``runtime`` on the running loop (``async with``), unless it runs on another loop, running in another thread.

    Such a runtime (a ``BlockingRuntime``'s ``runtime``, or one a server thread's loop uses)
    stays on its loop: its objects, their tasks and its timers are there, and taking it over
    sent every later call to this loop, where a call that waits (a ``BlockingRuntime``
    stub's) waited forever. It is used from here as from any other loop (calls forwarded);
    leaving the block closes it.
    """
    home = runtime.loop
    if home is None or home is asyncio.get_running_loop() or home.is_closed() or not home.is_running():
        runtime.attach_loop()


class _PostedArm:
    """A namespace's stored alarms, handed to the runtime's loop (:func:`_arm_stored_alarms`): run once,
    by that loop's callback, or by the next loop the runtime attaches if that one stopped first."""

    __slots__ = ("arm", "runtime", "taken")

    def __init__(self, runtime: Runtime, arm: Callable[[], None]) -> None:
        self.runtime = runtime
        self.arm = arm
        self.taken = threading.Lock()

    def __call__(self) -> None:
        if self.taken.acquire(blocking=False):
            with contextlib.suppress(ValueError):
                _posted_arms.get(self.runtime, []).remove(self)
            if not self.runtime.closed:
                self.arm()


_posted_arms: weakref.WeakKeyDictionary[Runtime, list[_PostedArm]] = weakref.WeakKeyDictionary()
"""The stored alarms handed to a runtime's loop from another thread and not armed yet (``Runtime.attach_loop``)."""


def _arm_stored_alarms(runtime: Runtime, arm: Callable[[], None]) -> None:
    """Call ``arm`` (a namespace's stored alarms are scheduled) where their timers belong.

    While the runtime's loop runs in another thread, it is handed to that loop and not waited for:
    called from a worker thread's own loop (``asyncio.run``) the timers were armed on that loop, and
    lost when it ended; from a thread without a loop they waited for the runtime's next event, and an
    object that only waits for its alarm got none. Waiting for the runtime's loop hung for ever when
    that loop was blocked on the registering thread (``thread.join()`` in a test, a server thread's
    startup waited for). Where no loop runs the runtime, or on its own loop, ``arm`` runs at once.
    """
    home = runtime.loop
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if home is None or home is running or home.is_closed() or not home.is_running():
        arm()
        return
    posted = _PostedArm(runtime, arm)
    _posted_arms.setdefault(runtime, []).append(posted)
    try:
        home.call_soon_threadsafe(posted)
    except RuntimeError:  # closed meanwhile: the next loop the runtime attaches arms it
        pass


def _run_posted_arms(runtime: Runtime) -> None:
    """Arm what :func:`_arm_stored_alarms` handed to a loop that stopped before it ran it."""
    for posted in list(_posted_arms.get(runtime, ()) if _posted_arms else ()):
        posted()


def _closed_message(runtime: Runtime) -> str:
    parent = _forked.get(runtime)
    return _CLOSED if parent is None else _FORKED.format(parent=parent, child=os.getpid())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_child)


def _check_count(name: str, value: object, *, allow_none: bool) -> None:
    """Refuse ``value`` unless it is an ``int`` >= 1 (or ``None`` if allowed), naming the option."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1{' (or None)' if allow_none else ''}, not {value}")


def _check_seconds(name: str, value: object) -> float | None:
    """``value`` as seconds (a finite number >= 0, or ``None`` for never), else an error naming the option."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds >= 0):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"{name} must be a finite number of seconds >= 0 (or None for never), not {shown}")
    return seconds


def _check_vars(vars: object) -> None:
    """Refuse a ``Runtime(vars=...)`` that is not a mapping of str names, naming the type or the bad key."""
    if vars is None:
        return
    if not isinstance(vars, Mapping):
        raise TypeError(f"vars must be a mapping of str names to values, not {type(vars).__name__}")
    for key in vars:
        if not isinstance(key, str):
            raise TypeError(f"vars must be a mapping of str names to values, not one with the key {shown(key)}")


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


def _close_collected(runtime: Runtime) -> None:
    """Close a runtime garbage collected without ``aclose()`` (its ``__del__``).

    A persisted one would keep its path locked for the rest of the process (the lock is per
    process, in _held_paths, as well as a flock): it is released, with a ``ResourceWarning``, as
    files and sockets warn. The databases are committed and closed (in memory too, quietly)
    without the event loop, which may be closed or run in another thread: a runtime being
    collected has no callers left (``ObjectHost.close``'s ``collected``). The alarm timers stop
    first, so that a commit arms none on whatever loop runs here.
    """
    if getattr(runtime, "hosts", None) is None or runtime.closed:
        return  # (__init__ raised before the hosts existed: nothing is open)
    runtime.closed = True
    with contextlib.suppress(Exception):
        runtime.alarm_timers.halt()
    with contextlib.suppress(Exception):
        runtime.hibernation.shutdown()
    with contextlib.suppress(Exception):
        runtime.hosts.drop_all(keep_writes=True, collected=True)
    runtime.hosts.directory.close()  # before warning: where warnings are errors, the lock is released all the same
    if runtime.path is not None:
        warnings.warn(
            f"durable.Runtime at {str(runtime.path)!r} was never closed; its path lock was released when "
            "it was garbage collected. Close runtimes with 'async with' or 'await runtime.aclose()'",
            ResourceWarning,
            stacklevel=3,
            source=runtime,
        )


_registering = threading.Lock()
"""Held while ``Runtime.namespace()`` looks a name up and registers it (never while it waits for a loop)."""


_UNPICKLABLE = (
    "a durable.Runtime cannot be pickled: its event loop, objects and storage belong to this process; "
    "create one in the process that uses it (with path=, on the same directory once this one is closed)"
)


class Runtime(Handle):
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

    _unpicklable = _UNPICKLABLE

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
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {shown(synchronous)}")
        if max_live_objects is None:
            max_live_objects = default_max_live_objects()
        _check_count("max_live_objects", max_live_objects, allow_none=False)
        _check_count("max_queued_calls", max_queued_calls, allow_none=True)
        idle_timeout = _check_seconds("idle_timeout", idle_timeout)
        hibernate_after = _check_seconds("hibernate_after", hibernate_after)
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a durable.Limits, not {type(limits).__name__}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(
                f"clock must be a durable.Clock (durable.testing.MockClock in tests), not {type(clock).__name__}"
            )
        _check_vars(vars)
        self.clock: Clock = clock if clock is not None else RealClock()
        self.limits = limits if limits is not None else Limits()
        self.idle_timeout = idle_timeout
        self.max_live_objects = max_live_objects
        self.max_queued_calls = max_queued_calls
        self.synchronous = synchronous
        self.point_in_time_recovery = point_in_time_recovery
        self.hibernation = HibernationManager(self, hibernate_after)
        """The WebSockets of every object and their hibernation (``durable._hibernation``)."""
        self.env = Env()
        for key, value in (vars or {}).items():
            bind(self.env, key, value)
        self._namespaces: dict[str, Namespace[Any]] = {}
        # Attributes, not properties: read for every call (a property costs ~650 instructions).
        self.closed = False
        """Whether the runtime is closed (``aclose()`` ran, or it was garbage collected)."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the runtime was opened or last used on (calls on others are forwarded)."""
        where = None if path is None else storage_path(path)
        self._directory: StorageDirectory = MemoryDirectory() if where is None else open_directory(where, synchronous)
        self.hosts = HostTable(self, self._namespaces, self._directory)
        """The live objects' hosts and their idle eviction (``durable._hosts``)."""
        self.path: Path | None = self._directory.path
        self._alarms = AlarmScheduler(self.clock, self._directory, self.hosts.host_by_key, self.hosts.stored_alarm)
        self.alarm_timers = self._alarms
        """The alarm timers: hosts read ``alarm_timers.armed`` (every timer armed on the attached loop)
        for every call, an attribute (the property was 640 instructions a call: seq-noop
        34,367 -> 33,727, callgrind, docs/performance.md, ninth pass)."""
        _live.add(self)

    def __del__(self) -> None:
        _close_collected(self)

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"<durable.Runtime {self.path or 'in memory'}{' closed' if self.closed else ''}>"  # (a Path is true)

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
            storage: ``"sqlite"`` (default, Cloudflare's recommended, with ``sql`` and ``kv``) or ``"kv"`` (legacy).

        Raises ``TypeError`` for a non-DurableObject class, ``ValueError`` for an unknown backend, objects on disk
        of the other (never converted), a name taken, ``""``, a lone surrogate, ``ns-<hex>``, ``nsh-<64 hex>``."""
        self.check_open()
        if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
            raise TypeError(f"namespace() takes a durable.DurableObject subclass, not {shown(cls)}")
        if storage not in ("sqlite", "kv"):
            raise ValueError(f"storage must be 'sqlite' or 'kv', not {shown(storage)}")
        # A str subclass (a StrEnum member) names the namespace by its text, as an id's name does.
        ns_name = str.__str__(check_namespace_name(cls.__name__ if name is None else name))
        with _registering:  # (threads registering one class at once: one registers, the others get it)
            existing = self._namespaces.get(ns_name)
            if existing is not None:
                if existing.cls is not cls or existing.storage != storage:
                    was = f"{existing.cls.__name__}, storage={existing.storage!r}"
                    raise ValueError(f"namespace {ns_name!r} is already registered (for {was}); give another name=")
                if name is not None and getattr(self.env, name, None) is not existing:
                    bind(self.env, name, existing)  # registered before without name=: bound on env now
                return existing
            ns = Namespace._create(self, cls, ns_name, storage)
            self._directory.fix_backend(ns_name, storage)
            if name is not None:
                bind(self.env, name, ns)  # first: a name env already has refuses the whole registration
            self._namespaces[ns_name] = ns
        _arm_stored_alarms(self, lambda: self._alarms.namespace_bound(ns_name))
        return ns

    # -- hosts (the table in _hosts.py) -----------------------------------------------------

    def host_for(self, ns: Namespace[Any], oid: DurableObjectId) -> ObjectHost:
        """The host of object ``oid`` of ``ns``, made if it is not live (``Namespace.get``'s stubs)."""
        return self.hosts.host_for(ns, oid)

    def host_for_key(self, key: tuple[str, str]) -> ObjectHost:
        """The host of object ``key`` (namespace name, id hex), made if it is not live."""
        return self.hosts.host_for_key(key)

    def live_host(self, key: tuple[str, str]) -> ObjectHost | None:
        """The host of object ``key`` if the runtime has one now, else None."""
        return self.hosts.live.get(key)

    def host_busy(self, host: ObjectHost) -> None:
        """A host starts an event: the runtime is in use on the running loop."""
        if not self._alarms.armed:
            self.attach_loop()  # arms alarms registered before a loop ran; records the loop
        # A busy host may stay in the idle map: eviction skips busy hosts, and host_idle moves
        # it to the end with a fresh time when it is idle again.

    def host_idle(self, host: ObjectHost) -> None:
        """A host has no event left: it joins the idle objects (``_host._event_ended`` inlines it)."""
        if self.closed or host.detached:
            return
        if self.hibernation.registries:
            self.hibernation.host_idle(host)
        self.hosts.idle(host)

    # -- hooks used by hosts -------------------------------------------------------------------

    def attach_loop(self) -> None:
        """Make the running loop the runtime's loop, and arm timers set while none ran."""
        self._alarms.attach_loop()
        self.loop = self._alarms.loop
        _run_posted_arms(self)  # (handed to a loop that stopped before it ran them)

    async def run_alarm(self, host: ObjectHost) -> bool:
        """Run ``host``'s stored alarm now, as its timer would (``durable.testing.run_alarm``)."""
        try:
            return await self._alarms.run_now(host.key, host)
        except asyncio.CancelledError:
            _closed_under_run_alarm(host)
            raise  # this caller was cancelled (the attempt goes on)

    def check_open(self) -> None:
        """Raise ``RuntimeClosedError`` if the runtime is closed."""
        if self.closed:
            raise RuntimeClosedError(_closed_message(self))

    def alarm_before_commit(self, host: ObjectHost, when_ms: int | None) -> None:
        """``host`` is about to commit ``when_ms`` as its alarm (``None``: none)."""
        self._alarms.before_commit(host.key, when_ms)

    def alarm_after_commit(self, host: ObjectHost, when_ms: int | None, *, unwaited: bool = False) -> None:
        """``host`` committed ``when_ms`` as its alarm (``None``: none); ``unwaited``: nothing waited for that commit."""
        self._alarms.after_commit(host.key, when_ms, host.alarms if unwaited else None)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        self.check_open()
        _enter(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Flush every object's writes, stop alarms, close every database, on the runtime's loop. Idempotent."""
        if self.closed:
            return
        try:
            await on_runtime_loop(self, self._close)
        except asyncio.CancelledError:  # from another loop, the close went on there (for up to the grace)
            on_runtime_thread(self, self._close_now)
            raise

    async def _close(self) -> None:
        if self.closed:
            return
        try:
            await self._alarms.stop()
            await self._finish_background_work()
            await asyncio.sleep(0)  # let commits scheduled for the end of this turn run before closing
        finally:  # cancelled too (a timeout around aclose()): stopped halfway, it served on with no alarms
            self._close_now()

    def _close_now(self) -> None:  # without waiting: commit every object's writes, close every database
        if not self.closed:
            self.closed = True
            self._drop_all_hosts(keep_writes=True)
            self._directory.close()

    async def _finish_background_work(self) -> None:
        """Let ``ctx.wait_until()`` work (and ``block_concurrency_while`` callbacks) end before closing.

        Nobody waits for such work, so closing under it would lose it silently (a write it had
        yet to make). It gets up to ``SHUTDOWN_GRACE`` seconds (real time), as Cloudflare keeps an
        object alive for its ``waitUntil`` work; what is still running then is cancelled, and
        logged. Work started meanwhile is waited for too; not the work that awaits ``aclose()``
        (``own_work``): it waits for this.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        closing = {asyncio.current_task(), *own_work()}  # such work, when it closes the runtime
        while True:
            work = {task for host in list(self.hosts.live.values()) for task in host.background.unfinished()}
            work -= closing
            if not work:
                return
            left = deadline - loop.time()
            if left <= 0:
                log.warning(
                    "durable: closing the runtime cancels %d unfinished task(s) passed to ctx.wait_until() "
                    "or block_concurrency_while() (or js timer callbacks) after waiting %.0f s for them",
                    len(work),
                    SHUTDOWN_GRACE,
                )
                return
            await asyncio.wait(work, timeout=left)

    def _drop_all_hosts(self, *, keep_writes: bool) -> None:
        """End every instance and close every database and socket, committing pending writes or not."""
        self.hibernation.shutdown()
        self.hosts.drop_all(keep_writes=keep_writes)

    async def reset(self) -> None:
        """Wipe all storage and alarms and drop every instance (a clean slate for the next test).

        On disk it removes only durable's own object files (``<namespace folder>/<64 hex
        digits>.sqlite`` and SQLite's files beside them), never following a symbolic link: other
        files under the path are left alone. Awaited on another loop than the runtime's (another
        thread's), it runs on the runtime's.
        """
        self.check_open()
        await on_runtime_loop(self, self._reset)

    async def _reset(self) -> None:
        self.check_open()
        self._alarms.cancel_all()
        self._drop_all_hosts(keep_writes=False)
        self._directory.remove_object_files()

    async def list_ids(self, ns: Namespace[Any]) -> list[DurableObjectId]:
        """Ids of the objects of ``ns`` that have storage, sorted by their hex form."""
        self.check_open()
        return self.hosts.ids_with_storage(ns)
