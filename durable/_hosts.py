"""The live objects of one runtime: a host per object, made on first use, evicted when idle.

A :class:`HostTable` belongs to one :class:`~durable.Runtime`. It makes an object's
:class:`~durable._host.ObjectHost` the first time the object is used (opening its database, and
its history with point-in-time recovery), finds hosts by key for the alarm scheduler and the
socket registry, answers which objects of a namespace have storage, and evicts idle objects:
those idle for ``idle_timeout`` seconds (one sweep timer on the runtime's clock) and, least
recently idle first, those beyond ``max_live_objects``. Eviction mirrors Cloudflare's (an idle
object is evicted after 70-140 s): the instance and its in-memory state go, the storage stays.

The runtime keeps its namespaces, its alarms, its sockets and its lifecycle; the table reads its
settings through :class:`TableRuntime`, so that they stay the runtime's attributes.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._exceptions import DurableError, RuntimeClosedError
from ._history import History, history_file
from ._host import HostRuntime, ObjectHost
from ._id import DurableObjectId
from ._limits import Limits
from ._namespace import name_reaches_object
from ._sqlite import ObjectDatabase

if TYPE_CHECKING:
    from ._directory import StorageDirectory
    from ._namespace import Namespace

__all__ = ["HostTable", "TableRuntime"]

Key = tuple[str, str]
"""An object's key: its namespace's name and the hex of its id."""


class TableRuntime(HostRuntime, Protocol):
    """What the table needs of its runtime beyond what hosts need (implemented by ``Runtime``)."""

    @property
    def limits(self) -> Limits:
        """The storage limits every object's storage enforces."""

    @property
    def idle_timeout(self) -> float | None:
        """Seconds after which an idle object is evicted; ``None``: never."""

    @property
    def max_live_objects(self) -> int:
        """Idle objects beyond this many are evicted, least recently idle first."""

    @property
    def synchronous(self) -> str:
        """The databases' ``PRAGMA synchronous`` (``"NORMAL"`` or ``"FULL"``)."""

    @property
    def point_in_time_recovery(self) -> bool:
        """Whether SQLite-backed objects keep a history of their commits."""


def _stored_name(
    directory: StorageDirectory, ns: Namespace[Any], oid: DurableObjectId, db: ObjectDatabase
) -> str | None:
    """The name recorded for object ``oid`` of ``ns``: in the directory, else in its file (an older durable's).

    ``""`` is a name (``get_by_name("")``): tested against ``None``, not for truth, or an object
    named ``""`` came back nameless after a restart (``ctx.id.name`` and ``list_ids`` gave ``None``).

    A name longer than workerd passes to the object (1,024 UTF-8 bytes, ``name_reaches_object``)
    is ignored: ``None``. This version never records one, but an earlier one did, and the object
    would have seen it as ``ctx.id.name`` after a restart, where workerd's is ``undefined``.
    """
    key = (ns.name, str(oid))
    name = directory.stored_name(key)
    if name is None:
        name = db.stored_name()
    if name is not None and not name_reaches_object(ns.ids, oid, name):
        return None
    return name


def _has_history(db: ObjectDatabase) -> bool:
    """Whether ``db`` has a point-in-time history log: bookmarks were handed out, even with no write.

    Forgetting such an in-memory object would start a new log (a new lineage): the bookmarks
    handed out would be refused, and the next ones would sort before them.
    """
    return isinstance(db.history, History) and db.history.log.exists()


class HostTable:
    """The hosts of one runtime's live objects, by key ``(namespace name, id hex)``.

    Args:
        runtime: the runtime the hosts belong to: each host is given it, and the table reads its
            settings (``limits``, ``synchronous``, ``idle_timeout``...) and whether it is closed.
        namespaces: the runtime's namespaces by name (read, never changed here).
        directory: the runtime's storage directory (object files, names, databases kept in memory).
    """

    def __init__(
        self, runtime: TableRuntime, namespaces: Mapping[str, Namespace[Any]], directory: StorageDirectory
    ) -> None:
        self.runtime = runtime
        self.namespaces = namespaces
        self.directory = directory
        self._hosts: dict[Key, ObjectHost] = {}
        self._idle: OrderedDict[Key, float] = OrderedDict()  # key -> when it became idle
        self._idle_newest: Key | None = None  # the key last put at the end of _idle
        self._sweep_timer: Any = None

    @property
    def live(self) -> Mapping[Key, ObjectHost]:
        """The hosts the runtime has now, by key (a live view: do not change it)."""
        return self._hosts

    # -- finding and making hosts ------------------------------------------------------------

    def host_for(self, ns: Namespace[Any], oid: DurableObjectId) -> ObjectHost:
        """The host of object ``oid`` of ``ns``, made if it is not live (``Namespace.get``'s stubs).

        Raises ``RuntimeClosedError`` to make one in a closed runtime, and ``DurableError`` for a
        damaged database file.
        """
        key = (ns.name, str(oid))
        host = self._hosts.get(key)
        if host is not None:
            return host
        runtime = self.runtime
        runtime.check_open()
        directory = self.directory
        db = directory.kept(key)
        if db is None:
            db = ObjectDatabase(directory.object_file(*key), name=oid.name, synchronous=runtime.synchronous)
            db.name_sink = functools.partial(directory.record_name, key)
            if runtime.point_in_time_recovery and ns.storage == "sqlite":
                db.history = History(
                    history_file(db.file),
                    namespace=key[0],
                    hexid=key[1],
                    now_ms=runtime.clock.time_ms,
                    fsync=runtime.synchronous == "FULL",
                )
            directory.keep(key, db)
        try:
            if oid.name is None and (stored := _stored_name(directory, ns, oid, db)) is not None:
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
        host = ObjectHost(runtime, ns.cls, oid, db, kv_backed=ns.storage == "kv", limits=runtime.limits)
        self._hosts[key] = host
        return host

    def host_by_key(self, key: Key) -> ObjectHost | None:
        """The host of object ``key`` (namespace name, id hex); None if the namespace is not bound.

        Raises ``TypeError`` if the hex is not an id of that namespace. The scheduler's lookup.
        """
        ns = self.namespaces.get(key[0])
        if ns is None:
            return None
        return self.host_for(ns, ns.ids.from_string(key[1]))

    def host_for_key(self, key: Key) -> ObjectHost:
        """The host of object ``key`` (namespace name, id hex), made if it is not live.

        Raises ``RuntimeClosedError`` to make one in a closed runtime.
        """
        host = self._hosts.get(key)
        if host is None:
            self.runtime.check_open()
            host = self.host_by_key(key)
            if host is None:  # pragma: no cover - registries exist only for bound namespaces
                raise RuntimeClosedError(f"namespace {key[0]!r} is not bound in this runtime")
        return host

    def stored_alarm(self, key: Key) -> int | None:
        """The alarm object ``key``'s storage holds (the scheduler's probe at start).

        An object that is not live has its file closed again after the read: it is reopened by
        the alarm's delivery, not held open until then. Raises as :meth:`host_by_key` does, and
        ``DurableError`` for a damaged file.
        """
        host = self.host_by_key(key)
        if host is None:
            return None
        try:
            return host.db.meta.get_alarm()
        finally:
            if not host.busy and host.instance is None and host.db.file is not None:
                host.db.close()

    # -- idle objects ------------------------------------------------------------------------

    def idle(self, host: ObjectHost) -> None:
        """``host`` has no event left: it joins the idle objects (evicted after ``idle_timeout``)."""
        # Idle objects are kept in least-recently-idle order with the time they became idle. One
        # sweep timer per runtime evicts those idle longer than idle_timeout (a timer per call
        # would cost more than the call); the oldest go first when max_live_objects is exceeded.
        runtime = self.runtime
        key = host.key
        idle = self._idle
        now = runtime.clock.time()
        if key is not self._idle_newest:
            # Moved to the end. The newest key, if still in the map, is already last (every
            # insertion updates it), so calls that keep coming to one object skip this.
            idle.pop(key, None)
            self._idle_newest = key
        idle[key] = now
        while len(self._hosts) > runtime.max_live_objects and idle:
            victim_key, _ = idle.popitem(last=False)
            victim = self._hosts.get(victim_key)
            if victim is not None and not victim.busy:
                self._drop(victim_key, victim)
        if runtime.idle_timeout is not None and self._sweep_timer is None and idle:
            self._sweep_timer = runtime.clock.call_at(now + runtime.idle_timeout, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Evict objects idle for ``idle_timeout`` seconds or more; re-arm for the next oldest."""
        self._sweep_timer = None
        runtime = self.runtime
        timeout = runtime.idle_timeout
        if runtime.closed or timeout is None:
            return
        deadline = runtime.clock.time() - timeout
        idle = self._idle
        while idle:
            key, since = next(iter(idle.items()))
            if since > deadline:
                self._sweep_timer = runtime.clock.call_at(since + timeout, self._sweep_idle)
                return
            del idle[key]
            host = self._hosts.get(key)
            if host is not None and not host.busy:
                self._drop(key, host)

    def _drop(self, key: Key, host: ObjectHost) -> None:
        """Evict an idle object: drop its instance, close its file, forget the host."""
        host.evict()
        if not host.db.in_transaction:
            del self._hosts[key]
            host.detached = True
            if not host.db.exists() and not _has_history(host.db):
                self.directory.forget(key)  # an in-memory object that never wrote leaves nothing

    def drop_all(self, *, keep_writes: bool, collected: bool = False) -> None:
        """End every instance and close every database, committing pending writes or not.

        ``collected``: the runtime was garbage collected (``ObjectHost.close``'s ``collected``)."""
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        self._idle.clear()
        hosts = list(self._hosts.values())
        self._hosts.clear()
        for host in hosts:
            host.detached = True
            if not keep_writes:
                host.db.rollback()
            with contextlib.suppress(Exception):
                host.close(collected=collected)
        self.directory.close_kept()

    # -- storage -----------------------------------------------------------------------------

    def ids_with_storage(self, ns: Namespace[Any]) -> list[DurableObjectId]:
        """Ids of the objects of ``ns`` that have storage, sorted by their hex form.

        An object that is not live is looked at without being brought to life (its file is
        opened and closed again); a damaged file counts as storage.
        """
        found: dict[str, DurableObjectId] = {}
        candidates: set[str] = set()
        directory = self.directory
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
                db = ObjectDatabase(directory.object_file(*key), synchronous=self.runtime.synchronous)
                db.name_sink = functools.partial(directory.record_name, key)
            try:
                if db.has_data():
                    name = oid.name if oid.name is not None else _stored_name(directory, ns, oid, db)
                    found[hexid] = ns.ids.from_string(hexid, name=name) if name is not None else oid
            except DurableError:
                found[hexid] = oid  # a damaged file still holds storage; its calls report the damage
            finally:
                if probing:
                    db.close()
        return [found[h] for h in sorted(found)]
