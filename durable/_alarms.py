"""The alarm scheduler of a runtime: timers, delivery, retries, and the index that survives restarts.

Cloudflare's rules (reference section 6), as implemented here:

- An object has at most one alarm; the committed value in its ``_cf_METADATA`` is the truth. The
  scheduler learns of it after each commit that touched it, and keeps one timer per object.
- When the timer fires, the alarm is delivered as an event (through the input gate, building the
  instance if needed) with an :class:`AlarmInfo`. Success clears the alarm unless the handler set
  a new one. An exception is retried after 2 s, 4 s, 8 s, 16 s, 32 s, 64 s (no jitter, so tests can
  predict it; workerd adds up to 25 %); after the 6th retry fails the alarm is dropped (7 attempts).
  An alarm set or deleted while the handler runs replaces the retry.
- Persisted runtimes keep an index of alarms in the runtime's metadata database, written *before*
  the object's commit when an alarm is set and *after* it when one is cleared, so it always lists a
  superset of the real alarms. At start-up each entry is checked against the object's own storage,
  and alarms that fell due while the runtime was down run at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from ._object import AlarmInfo

if TYPE_CHECKING:
    from ._host import ObjectHost
    from ._runtime import Runtime

__all__ = ["MAX_RETRIES", "AlarmScheduler", "retry_delay"]

log = logging.getLogger("durable")

MAX_RETRIES = 6
"""Retries after the first attempt before an alarm is given up (Cloudflare documents 6)."""


def retry_delay(retry_count: int) -> float:
    """Seconds to wait before retry number ``retry_count`` (1-based): 2, 4, 8, 16, 32, 64."""
    return float(2 << (retry_count - 1))


Key = tuple[str, str]


class _Entry:
    __slots__ = ("handle", "retry_count", "scheduled_ms", "token")

    def __init__(self, scheduled_ms: int, retry_count: int, token: int) -> None:
        self.scheduled_ms = scheduled_ms
        self.retry_count = retry_count
        self.token = token
        self.handle: Any = None


class AlarmScheduler:
    """One per runtime. Keys are ``(namespace name, id hex)``."""

    def __init__(self, runtime: Runtime, index: sqlite3.Connection | None) -> None:
        self._runtime = runtime
        self._index = index
        self._entries: dict[Key, _Entry] = {}
        self._tokens = 0
        self._running: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._waiting: dict[str, list[tuple[str, int]]] = {}  # namespace -> [(id hex, ms)] not yet bound
        if index is not None:
            index.execute(
                "CREATE TABLE IF NOT EXISTS alarms (namespace TEXT, id TEXT, time INTEGER, PRIMARY KEY (namespace, id)) WITHOUT ROWID"
            )
            for namespace, hexid, ms in index.execute("SELECT namespace, id, time FROM alarms"):
                self._waiting.setdefault(namespace, []).append((hexid, ms))

    # -- the index -----------------------------------------------------------------------------

    def before_commit(self, key: Key, when_ms: int | None) -> None:
        if self._index is not None and when_ms is not None:
            self._index.execute("INSERT OR REPLACE INTO alarms VALUES (?, ?, ?)", (*key, when_ms))

    def after_commit(self, key: Key, when_ms: int | None) -> None:
        if self._index is not None and when_ms is None:
            self._index.execute("DELETE FROM alarms WHERE namespace = ? AND id = ?", key)
        self.schedule(key, when_ms)

    def namespace_bound(self, name: str) -> None:
        """A namespace was registered: schedule the persisted alarms of its objects."""
        for hexid, _ in self._waiting.pop(name, []):
            host = self._runtime._host_by_hex(name, hexid)
            if host is None:
                continue
            actual = host.db.get_alarm()  # the object's own storage is the truth
            if actual is None:
                if self._index is not None:
                    self._index.execute("DELETE FROM alarms WHERE namespace = ? AND id = ?", (name, hexid))
                continue
            self.schedule((name, hexid), actual)

    # -- timers --------------------------------------------------------------------------------

    def schedule(self, key: Key, when_ms: int | None, retry_count: int = 0) -> None:
        """Make ``when_ms`` the object's alarm time (``None``: no alarm), replacing any timer."""
        old = self._entries.pop(key, None)
        if old is not None and old.handle is not None:
            old.handle.cancel()
        if when_ms is None or self._stopped:
            return
        self._tokens += 1
        entry = _Entry(when_ms, retry_count, self._tokens)
        self._entries[key] = entry
        self._arm(key, entry, when_ms / 1000)

    def _arm(self, key: Key, entry: _Entry, at: float) -> None:
        entry.handle = self._runtime.clock.call_at(at, lambda: self._fire(key, entry))

    def _fire(self, key: Key, entry: _Entry) -> None:
        if self._stopped or self._entries.get(key) is not entry:
            return
        entry.handle = None
        task = asyncio.get_running_loop().create_task(self._deliver(key, entry))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        self._runtime.clock.track(task)

    async def _deliver(self, key: Key, entry: _Entry) -> None:
        host = self._runtime._host_by_hex(*key)
        if host is None:
            return
        ok = await self.run(host, entry.scheduled_ms, entry.retry_count)
        if ok or self._entries.get(key) is not entry:
            return  # success, or the handler set or deleted the alarm: that replaces any retry
        self.retry_later(key, entry)

    def retry_later(self, key: Key, entry: _Entry) -> None:
        if entry.retry_count >= MAX_RETRIES:
            log.error(
                "durable: alarm of %s/%s failed %d times; giving up", key[0], key[1], entry.retry_count + 1
            )
            self._entries.pop(key, None)
            host = self._runtime._host_by_hex(*key)
            if host is not None:
                host.drop_alarm(entry.scheduled_ms)
            return
        entry.retry_count += 1
        self._arm(key, entry, self._runtime.clock.time() + retry_delay(entry.retry_count))

    async def run(self, host: ObjectHost, scheduled_ms: int, retry_count: int) -> bool:
        """Deliver one alarm attempt to ``host``; ``True`` if the handler succeeded."""
        info = AlarmInfo(retry_count=retry_count, scheduled_time=scheduled_ms)
        try:
            await host.invoke("alarm", "alarm", (info,), {})
        except Exception as exc:
            log.warning(
                "durable: alarm of %r failed (attempt %d): %s: %s", host.id, retry_count + 1, type(exc).__name__, exc
            )
            return False
        return True

    def entry(self, key: Key) -> _Entry | None:
        return self._entries.get(key)

    # -- lifecycle -----------------------------------------------------------------------------

    def cancel_all(self) -> None:
        for entry in self._entries.values():
            if entry.handle is not None:
                entry.handle.cancel()
        self._entries.clear()
        self._waiting.clear()
        if self._index is not None:
            self._index.execute("DELETE FROM alarms")

    async def stop(self) -> None:
        self._stopped = True
        for entry in self._entries.values():
            if entry.handle is not None:
                entry.handle.cancel()
        self._entries.clear()
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
