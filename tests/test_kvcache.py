"""``KvCache`` on its own: the key-value table behind the write buffer and the read cache.

The class meets its database only through ``_dbfile.Connections`` (``read_conn``, ``write_conn``,
``tagged``, ``file``), so these tests give it a bare in-memory connection instead of an
``ObjectDatabase``, and look at SQLite directly to see what reached it. The model test
(``tests/test_database_model.py``) runs it with the database against a dict.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable import SqlError
from durable._kvcache import KV_CACHE_ENTRIES, KV_CACHE_MAX_VALUE, KvCache


class Connections:
    """A bare ``Connections``: one in-memory connection, ``BEGIN`` on the first write, as the database does."""

    file: Path | None = None

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        self.opened = 0
        self.is_open = False
        self.kv: KvCache | None = None

    def read_conn(self) -> sqlite3.Connection | None:
        if not self.is_open and self.kv is not None:  # "opened": the cursor is attached
            self.opened += 1
            self.is_open = True
            self.kv.attach(self.conn.cursor())
        return self.conn

    def close(self) -> None:
        assert self.kv is not None
        self.kv.detach()
        self.is_open = False

    def write_conn(self) -> sqlite3.Connection:
        self.read_conn()
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        return self.conn

    def tagged(self, sql: str) -> str:
        return f"{sql} -- test"

    def rows(self) -> list[tuple[str, bytes]]:
        """What SQLite holds, read past the cache."""
        return self.conn.execute("SELECT key, value FROM _cf_KV ORDER BY key").fetchall()


@pytest.fixture
def conns() -> Iterator[Connections]:
    conns = Connections()
    yield conns
    conns.conn.close()  # an unclosed connection is a ResourceWarning when collected (3.13)


@pytest.fixture
def kv(conns: Connections) -> KvCache:
    kv = KvCache(conns)
    conns.kv = kv
    return kv


class TestBuffer:
    """Writes wait in memory until something must see them in SQLite."""

    def test_writes_reach_sqlite_only_when_spilled(self, conns: Connections, kv: KvCache) -> None:
        """A put is read back from the buffer; SQLite has no table until ``spill()`` writes it there."""
        kv.put("a", b"1")
        assert kv.get("a") == b"1"
        assert (kv.buffered, kv.pending) == (True, True)
        assert conns.conn.execute("SELECT name FROM sqlite_master").fetchall() == []
        kv.spill()
        assert conns.rows() == [("a", b"1")]
        assert (kv.buffered, kv.exists) == (False, True)

    def test_a_lone_write_is_one_autocommit_statement(self, conns: Connections, kv: KvCache) -> None:
        """``write_alone()`` commits one buffered write without ``BEGIN``, and refuses two."""
        kv.put("a", b"1")
        kv.spill()
        conns.conn.execute("COMMIT")
        kv.put("b", b"2")
        assert kv.write_alone() is True
        assert not conns.conn.in_transaction and conns.rows() == [("a", b"1"), ("b", b"2")]
        kv.put_many([("c", b"3"), ("d", b"4")])
        assert kv.write_alone() is False and kv.buffered

    def test_a_lone_write_waits_for_the_table(self, kv: KvCache) -> None:
        """Before ``_cf_KV`` exists, ``write_alone()`` declines: the table must be created in a transaction."""
        kv.put("a", b"1")
        with contextlib.closing(sqlite3.connect(":memory:")) as other:
            kv.attach(other.cursor())
            assert kv.write_alone() is False and kv.buffered

    def test_discard_forgets_buffer_and_cache(self, conns: Connections, kv: KvCache) -> None:
        """After ``discard()`` (a rollback), reads go to SQLite again and see no buffered write."""
        kv.put("a", b"1")
        kv.spill()
        conns.conn.execute("ROLLBACK")
        kv.put("b", b"2")
        kv.discard()
        kv.exists = False  # the rollback dropped the table, as the database would learn
        assert kv.get("a") is None and kv.get("b") is None and not kv.pending

    def test_a_delete_of_nothing_creates_the_table_in_the_transaction(self, conns: Connections, kv: KvCache) -> None:
        """As in workerd, a key-value delete of a missing key creates ``_cf_KV``, in the implicit
        transaction, so that it is committed with the turn and a new instance still has it
        (tests/test_storage_order.py). It waited for a spill, which a reset or restart never
        reached; a rollback still drops it (the database then learns that it is gone)."""
        assert kv.delete("a") is False and not kv.pending and not kv.buffered
        assert conns.conn.in_transaction and kv.exists
        assert conns.conn.execute("SELECT name FROM sqlite_master").fetchall() == [("_cf_KV",)]
        assert conns.rows() == []
        kv.touch()  # (the table exists: nothing more to do)
        conns.conn.execute("ROLLBACK")
        assert conns.conn.execute("SELECT name FROM sqlite_master").fetchall() == []


class TestCache:
    """Reads are cached, within bounds, and the cache follows the connection."""

    def test_cached_reads_run_no_sql(self, conns: Connections, kv: KvCache) -> None:
        """A pair written then read again is served from memory, even once SQLite changed behind it."""
        kv.put("a", b"1")
        kv.spill()
        conns.conn.execute("UPDATE _cf_KV SET value = x'32'")
        assert kv.get("a") == b"1"
        kv.drop_caches()
        assert kv.get("a") == b"2"

    def test_bounded(self, conns: Connections, kv: KvCache) -> None:
        """At most ``KV_CACHE_ENTRIES`` pairs are kept, oldest out first, and no large value."""
        kv.put_many(
            [(f"k{i:03}", b"v") for i in range(KV_CACHE_ENTRIES + 1)] + [("big", b"x" * (KV_CACHE_MAX_VALUE + 1))]
        )
        kv.spill()
        conns.conn.execute("UPDATE _cf_KV SET value = x'77'")
        assert kv.get("k000") == b"w"  # evicted: read from SQLite
        assert kv.get(f"k{KV_CACHE_ENTRIES:03}") == b"v"  # still cached
        assert kv.get("big") == b"w"

    def test_detach_reads_through_a_new_connection(self, conns: Connections, kv: KvCache) -> None:
        """After ``detach()`` (the connection closed), a read asks the database for a connection again."""
        kv.put("a", b"1")
        kv.spill()
        conns.close()
        before = conns.opened
        assert kv.get("a") == b"1" and conns.opened == before + 1

    def test_errors_are_wrapped(self, conns: Connections, kv: KvCache) -> None:
        """A ``sqlite3`` error met by a read reaches the caller as durable's error, not raw."""
        kv.put("a", b"1")
        kv.spill()
        kv.drop_caches()
        conns.conn.close()
        with pytest.raises(SqlError) as info:
            kv.get("a")
        assert isinstance(info.value.__cause__, sqlite3.Error)
