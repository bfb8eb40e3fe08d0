"""The key-value write buffer and read cache (``KvCache``) against a dict model (a Hypothesis state machine).

``KvCache`` (``ObjectDatabase.kv``) buffers key-value writes in memory (``dirty``), caches what it
read (``_cache``), and writes the buffer through to SQLite when SQL, a savepoint, a scan or
the commit needs it. Key-value operations go to the ``KvCache`` directly, transaction operations
and the alarm to the ``ObjectDatabase`` that holds it, as the storage layer uses them.
The machine runs random sequences of writes, reads, scans, kv.list() steps, savepoints
(``release`` / ``rollback_to``), commits, failed commits, rollbacks and reopenings, and checks
every read against a model: the committed dict, the current dict, and a stack of snapshots, one
per open savepoint. A new database opened on the same file must see exactly what committed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from durable import _kvcache
from durable._kvcache import KvCache
from durable._sqlite import ObjectDatabase

keys = st.sampled_from(["a", "b", "c", "d", "é", "a\x00", "\U0001f600"])
values = st.one_of(
    st.binary(max_size=6),
    st.binary(min_size=_kvcache.KV_CACHE_MAX_VALUE + 1, max_size=_kvcache.KV_CACHE_MAX_VALUE + 2),  # never cached
)
bounds = st.one_of(st.none(), keys)
alarms = st.one_of(st.none(), st.integers(min_value=0, max_value=2**40))


class CommitFailed(Exception):
    """The failure injected into a commit (``db.fail_next``)."""


class DatabaseMachine(RuleBasedStateMachine):
    """One object's database, used as the storage layer uses it, checked against dicts."""

    in_memory = False

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="durable-model-"))
        self.file: Path | None = None if self.in_memory else self.dir / "object.sqlite"
        self.db = ObjectDatabase(self.file, name="model")
        self.committed: dict[str, bytes] = {}
        self.current: dict[str, bytes] = {}
        self.committed_alarm: int | None = None
        self.alarm: int | None = None
        self.savepoints: list[tuple[str, dict[str, bytes], int | None]] = []

    @property
    def kv(self) -> KvCache:
        """The key-value table under test (the database's; a restart makes a new one)."""
        return self.db.kv

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- writes ------------------------------------------------------------------------------

    @rule(key=keys, value=values)
    def put(self, key: str, value: bytes) -> None:
        self.kv.put(key, value)
        self.current[key] = value

    @rule(items=st.lists(st.tuples(keys, values), max_size=4))
    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        self.kv.put_many(items)
        self.current.update(items)

    @rule(key=keys)
    def delete(self, key: str) -> None:
        assert self.kv.delete(key) == (key in self.current)
        self.current.pop(key, None)

    @rule(keys_=st.lists(keys, max_size=4))
    def delete_many(self, keys_: list[str]) -> None:
        assert self.kv.delete_many(keys_) == len(set(keys_) & self.current.keys())
        for key in keys_:
            self.current.pop(key, None)

    @rule()
    def clear(self) -> None:
        self.db.kv_clear()
        self.current.clear()
        self.alarm = None

    @rule(when=alarms)
    def set_alarm(self, when: int | None) -> None:
        self.db.meta.set_alarm(when)
        self.alarm = when

    # -- reads -------------------------------------------------------------------------------

    @rule(key=keys)
    def get(self, key: str) -> None:
        assert self.kv.get(key) == self.current.get(key)

    @rule(keys_=st.lists(keys, max_size=4))
    def get_many(self, keys_: list[str]) -> None:
        expected = sorted((key, self.current[key]) for key in set(keys_) if key in self.current)
        assert self.kv.get_many(keys_) == expected

    @rule(
        start=bounds,
        end=bounds,
        reverse=st.booleans(),
        limit=st.one_of(st.none(), st.integers(1, 4)),
    )
    def scan(self, start: str | None, end: str | None, reverse: bool, limit: int | None) -> None:
        expected = sorted(
            (k, v) for k, v in self.current.items() if (start is None or k >= start) and (end is None or k < end)
        )
        if reverse:
            expected.reverse()
        if limit is not None:
            expected = expected[:limit]
        rows = self.kv.scan(start, end, reverse=reverse, limit=limit)
        assert list(rows) == expected

    @rule(start=bounds, end=bounds, after=bounds, reverse=st.booleans())
    def step(self, start: str | None, end: str | None, after: str | None, reverse: bool) -> None:
        """kv.list()'s step: the first pair of the range past ``after``, as stored now."""
        pairs = sorted(
            (k, v)
            for k, v in self.current.items()
            if (start is None or k >= start)
            and (end is None or k < end)
            and (after is None or (k < after if reverse else k > after))
        )
        expected = (pairs[-1] if reverse else pairs[0]) if pairs else None
        assert self.kv.step(start, end, after, reverse=reverse) == expected

    @rule()
    def count(self) -> None:
        assert self.kv.count() == len(self.current)

    @rule()
    def get_alarm(self) -> None:
        assert self.db.meta.get_alarm() == self.alarm

    @rule()
    def drop_caches(self) -> None:
        self.kv.drop_caches()

    @rule()
    def spill(self) -> None:
        self.kv.spill()

    # -- savepoints (transaction() closures) -------------------------------------------------

    @rule()
    def savepoint(self) -> None:
        name = self.db.savepoint()
        self.savepoints.append((name, dict(self.current), self.alarm))
        assert self.db.savepoint_depth == len(self.savepoints)

    @precondition(lambda self: bool(self.savepoints))
    @rule()
    def release(self) -> None:
        name, _, _ = self.savepoints.pop()
        self.db.release(name)
        assert self.db.savepoint_depth == len(self.savepoints)

    @precondition(lambda self: bool(self.savepoints))
    @rule()
    def rollback_to(self) -> None:
        name, snapshot, alarm = self.savepoints.pop()
        self.db.rollback_to(name)
        self.current, self.alarm = snapshot, alarm
        assert self.db.savepoint_depth == len(self.savepoints)

    # -- the end of a turn -------------------------------------------------------------------

    @precondition(lambda self: not self.savepoints)
    @rule()
    def commit(self) -> None:
        self.db.commit()
        self.committed, self.committed_alarm = dict(self.current), self.alarm
        assert not self.db.in_transaction

    @precondition(lambda self: not self.savepoints)
    @rule()
    def failed_commit(self) -> None:
        failed = self.db.in_transaction
        self.db.fail_next = CommitFailed("injected")
        if failed:
            with pytest.raises(CommitFailed):
                self.db.commit()
            self.current, self.alarm = dict(self.committed), self.committed_alarm
        else:
            self.db.commit()  # nothing to commit: the failure waits for the next commit
            self.db.fail_next = None
        assert not self.db.in_transaction

    @rule()
    def rollback(self) -> None:
        self.db.rollback()
        self.current, self.alarm = dict(self.committed), self.committed_alarm
        self.savepoints.clear()

    @precondition(lambda self: not self.in_memory)
    @rule()
    def reopen(self) -> None:
        """An eviction: the connection closes (dropping what did not commit) and opens again."""
        self.db.close()
        self.current, self.alarm = dict(self.committed), self.committed_alarm
        self.savepoints.clear()

    @precondition(lambda self: not self.in_memory)
    @rule()
    def restart(self) -> None:
        """A new process: a fresh database on the same file sees exactly what committed."""
        self.db.close()  # the file is locked by its connection (one process per directory)
        self.db = ObjectDatabase(self.file, name="model")
        self.current, self.alarm = dict(self.committed), self.committed_alarm
        self.savepoints.clear()
        assert list(self.kv.scan(None, None)) == sorted(self.committed.items())
        assert self.db.meta.get_alarm() == self.committed_alarm

    @invariant()
    def savepoint_depth(self) -> None:
        assert self.db.savepoint_depth == len(self.savepoints)


class InMemoryDatabaseMachine(DatabaseMachine):
    """The same machine over an in-memory database (``Runtime()`` without a path)."""

    in_memory = True


_SETTINGS = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class TestDatabaseModel:
    @pytest.mark.parametrize("machine", [DatabaseMachine, InMemoryDatabaseMachine], ids=["file", "memory"])
    def test_matches_the_model(self, machine: type[DatabaseMachine]) -> None:
        """Every read, scan and reopening agrees with the dict model, with a small read cache."""
        from hypothesis.stateful import run_state_machine_as_test

        with mock.patch.object(_kvcache, "KV_CACHE_ENTRIES", 3):  # evictions happen often
            run_state_machine_as_test(machine, settings=_SETTINGS)
