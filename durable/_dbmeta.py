"""One object's metadata table (``_cf_METADATA``): its alarm row, and what older files kept there.

``_cf_METADATA(key TEXT PRIMARY KEY, value) WITHOUT ROWID`` holds the object's alarm (milliseconds
since the epoch, an INTEGER). As in workerd, it is created by the first ``set_alarm`` only, so user
SQL sees no such table before (``no such table: _cf_METADATA``), and ``delete_all`` drops it with
every other table.

Files written by an older durable kept the schema version and the object's name there too;
``clean_legacy()`` moves them out when such a file is opened: the version to ``PRAGMA
user_version``, the name to whoever records names (the runtime's directory).

A stored value of the wrong type (written by another program) is damage:
:class:`~durable.DataCorruptionError` naming the file and the value's type.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from ._dbfile import SCHEMA_VERSION, Connections, wrap_error
from ._exceptions import DataCorruptionError

__all__ = ["MetadataTable"]

_LEGACY_KEYS = "('name', 'schema_version')"


class MetadataTable:
    """The ``_cf_METADATA`` table of one object's database (``ObjectDatabase.meta``).

    Args:
        db: the database that holds the table, for its connections and statement tag.
    """

    def __init__(self, db: Connections) -> None:
        self._conns = db
        self.exists = False
        """Whether ``_cf_METADATA`` exists in SQLite's current view (set by the database as it learns)."""
        self.wiped = False
        """``delete_all()`` ran in the transaction not committed yet, and no ``get_alarm()`` read the
        alarm since: workerd's alarm cache is unknown then, and a ``delete_alarm()`` runs its
        ``DELETE``, which creates the table (see :meth:`create`)."""

    def get_alarm(self) -> int | None:
        """The stored alarm time (milliseconds), or ``None``.

        Raises:
            DataCorruptionError: the stored alarm is not an INTEGER.
        """
        conn = self._conns.read_conn()
        if conn is None or not self.exists:
            return None
        try:
            row = conn.execute(self._conns.tagged("SELECT value FROM _cf_METADATA WHERE key = 'alarm'")).fetchone()
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._conns.file) from exc
        if row is None or row[0] is None:
            return None
        if type(row[0]) is not int:
            raise self._bad_value("alarm", row[0], "an INTEGER (milliseconds)")
        return row[0]

    def set_alarm(self, when_ms: int | None) -> None:
        """Store the alarm time (``None``: delete it), inside the implicit transaction.

        Deleting creates nothing; the first alarm set creates the table, as in workerd.
        """
        tagged = self._conns.tagged
        if when_ms is None and (self._conns.read_conn() is None or not self.exists):
            return
        conn = self._conns.write_conn()
        try:
            if when_ms is None:
                conn.execute(tagged("DELETE FROM _cf_METADATA WHERE key = 'alarm'"))
            else:
                if not self.exists:  # workerd creates it with the first alarm
                    self.create()
                conn.execute(tagged("INSERT OR REPLACE INTO _cf_METADATA VALUES ('alarm', ?)"), (when_ms,))
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._conns.file) from exc

    def create(self) -> None:
        """Create the (empty) table: the first ``set_alarm``, or a ``delete_alarm()`` after a
        ``delete_all()`` of the same transaction (:attr:`wiped`; workerd, miniflare 4.20260426.0,
        compatibility date 2026-04-20: ``deleteAll(); deleteAlarm()`` in one call leaves
        ``_cf_METADATA`` in ``sqlite_master``, which user SQL sees (``ALTER`` reads one schema row
        more); not with a ``getAlarm()`` between them, nor once the ``deleteAll()`` committed)."""
        try:
            self._conns.write_conn().execute(
                self._conns.tagged(
                    "CREATE TABLE IF NOT EXISTS _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID"
                )
            )
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._conns.file) from exc
        self.exists = True

    def clean_legacy(self, conn: sqlite3.Connection, found_name: Callable[[str], None]) -> bool:
        """Move what an older durable kept in ``_cf_METADATA`` out of it; True if the table is gone.

        Its ``name`` row goes to ``found_name``, its ``schema_version`` row to ``PRAGMA
        user_version``; the rows are deleted, and the table too if no alarm is left in it, in one
        autocommit transaction outside the object's implicit one. ``sqlite3`` errors are raised as
        they are (the database, opening, wraps them).

        Raises:
            DataCorruptionError: the stored name is not TEXT.
        """
        tagged = self._conns.tagged
        rows = dict(conn.execute(tagged(f"SELECT key, value FROM _cf_METADATA WHERE key IN {_LEGACY_KEYS}")))
        if not rows:
            return False
        legacy = rows.get("name")
        if legacy is not None and type(legacy) is not str:
            raise self._bad_value("name", legacy, "TEXT")
        if legacy is not None:
            found_name(legacy)
        conn.execute(tagged("BEGIN"))
        try:
            conn.execute(tagged(f"DELETE FROM _cf_METADATA WHERE key IN {_LEGACY_KEYS}"))
            left = conn.execute(tagged("SELECT count(*) FROM _cf_METADATA")).fetchone()[0]
            if not left:
                conn.execute(tagged("DROP TABLE _cf_METADATA"))
            conn.execute(tagged(f"PRAGMA user_version = {SCHEMA_VERSION}"))
            conn.execute(tagged("COMMIT"))
        except BaseException:
            conn.execute(tagged("ROLLBACK"))
            raise
        return not left

    def _bad_value(self, key: str, value: object, expected: str) -> DataCorruptionError:
        file = self._conns.file
        where = "in memory" if file is None else f"at {os.fspath(file)!r}"
        kind = {bytes: "a BLOB", int: "an INTEGER", float: "a REAL", str: "TEXT"}.get(type(value), type(value).__name__)
        return DataCorruptionError(
            f"the database of this Durable Object {where} is damaged: its stored {key} is {kind}, not {expected}"
        )
