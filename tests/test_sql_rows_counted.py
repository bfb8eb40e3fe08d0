"""``rows_read`` and ``rows_written`` against workerd, statement shape by statement shape.

Every expected count below was measured in workerd (npm's ``miniflare`` 4, compatibility date
2026-04-07, a SQLite-backed object; 2026-12-07): each shape ran in a fresh object after its setup
statements, and ``cursor.rowsRead`` / ``cursor.rowsWritten`` were read after ``toArray()``.

workerd's counts come from its patch to SQLite (``patches/sqlite/0001-row-counts-plain.patch``):
rows written are b-tree rows inserted or deleted, which ``durable`` derives (``_Connection.
_rows_written``); rows read are cursor steps of SQLite's virtual machine, which Python's unpatched
SQLite does not count: ``durable`` reads them off the statement's program where its shape decides
them (``durable/_sql_reads.py``) and counts the rows returned elsewhere (docs/sql.md, "Differences
from Cloudflare"; the open item ``rows-read`` of tests/differential/allowances.py). The shapes where
``durable`` still differs are strict xfails: one starting to pass means it came closer, and its
mark goes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tracemalloc
from typing import Any

import pytest

import durable
from durable import _sql_multi, _sql_reads, testing

_T = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)",
    "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z'), (4, 'w'), (5, 'v')",
)
_I = ("CREATE INDEX ta ON t(a)",)
_P = (
    "CREATE TABLE p (id INTEGER PRIMARY KEY, tid INTEGER, c TEXT)",
    "INSERT INTO p (tid, c) VALUES (1, 'x'), (3, 'z'), (3, 'q')",
)
_NAMED = {"S": _T, "I": _I, "P": _P}

# (shape, setup, statement, workerd's rowsRead, workerd's rowsWritten, durable's rows_read: one that
# differs from workerd's makes the shape a strict xfail of test_rows_read_as_workerd_counts)
SHAPES: tuple[tuple[str, tuple[str, ...], str, int, int, int], ...] = (
    ("empty-select", ("CREATE TABLE e (a)",), "SELECT * FROM e", 1, 0, 1),
    ("empty-count", ("CREATE TABLE e (a)",), "SELECT count(*) FROM e", 0, 0, 0),
    ("select-1", (), "SELECT 1", 0, 0, 0),
    ("full-scan", ("S",), "SELECT * FROM t", 5, 0, 5),
    ("where-eq-noindex", ("S",), "SELECT * FROM t WHERE a = 3", 5, 0, 5),
    ("where-gt-noindex", ("S",), "SELECT * FROM t WHERE a > 4", 5, 0, 5),
    ("where-none-noindex", ("S",), "SELECT * FROM t WHERE a > 99", 5, 0, 5),
    ("count", ("S",), "SELECT count(*) FROM t", 5, 0, 5),
    # (an IN list's values go to an ephemeral index built once inside the scan, which counts nothing)
    ("in-list", ("S",), "SELECT * FROM t WHERE b IN ('x', 'z', 'q')", 5, 0, 5),
    ("in-subquery-constant", ("S",), "SELECT * FROM t WHERE a IN (SELECT 3)", 5, 0, 5),
    ("update-in-list", ("S",), "UPDATE t SET b = 'u' WHERE a IN (1, 2, 9)", 5, 2, 5),
    ("delete-in-list", ("S",), "DELETE FROM t WHERE a IN (4, 5, 9)", 5, 2, 5),
    ("count-where", ("S",), "SELECT count(*) FROM t WHERE a > 2", 5, 0, 5),
    ("count-index", ("S", "I"), "SELECT count(*) FROM t", 5, 0, 5),
    ("pk-eq", ("S",), "SELECT * FROM t WHERE id = 3", 1, 0, 1),
    ("pk-miss", ("S",), "SELECT * FROM t WHERE id = 99", 1, 0, 1),
    ("pk-gt", ("S",), "SELECT * FROM t WHERE id > 2", 3, 0, 3),
    ("pk-lt", ("S",), "SELECT * FROM t WHERE id < 3", 3, 0, 3),
    ("pk-between", ("S",), "SELECT * FROM t WHERE id BETWEEN 2 AND 3", 3, 0, 3),
    ("pk-in", ("S",), "SELECT * FROM t WHERE id IN (1, 3, 5)", 6, 0, 6),
    ("idx-eq", ("S", "I"), "SELECT * FROM t WHERE a = 3", 2, 0, 2),
    ("idx-eq-last", ("S", "I"), "SELECT * FROM t WHERE a = 5", 1, 0, 1),
    ("idx-miss", ("S", "I"), "SELECT * FROM t WHERE a = 99", 0, 0, 0),
    ("idx-miss-mid", ("S", "I"), "SELECT * FROM t WHERE a = 2.5", 0, 0, 0),
    ("idx-gt", ("S", "I"), "SELECT * FROM t WHERE a > 2", 3, 0, 3),
    ("idx-covering", ("S", "I"), "SELECT a FROM t WHERE a = 3", 2, 0, 2),
    (
        "idx-dup",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'zz'), (3, 'zzz')"),
        "SELECT * FROM t WHERE a = 3",
        4,
        0,
        4,
    ),
    ("order-noindex", ("S",), "SELECT * FROM t ORDER BY b", 10, 0, 10),
    ("order-index", ("S", "I"), "SELECT * FROM t ORDER BY a", 5, 0, 5),
    ("order-desc-pk", ("S",), "SELECT * FROM t ORDER BY id DESC", 5, 0, 5),
    ("order-limit", ("S",), "SELECT * FROM t ORDER BY b LIMIT 2", 10, 0, 10),
    ("limit", ("S",), "SELECT * FROM t LIMIT 2", 2, 0, 2),
    ("limit-0", ("S",), "SELECT * FROM t LIMIT 0", 0, 0, 0),
    ("limit-offset", ("S",), "SELECT * FROM t LIMIT 2 OFFSET 2", 4, 0, 4),
    ("max-pk", ("S",), "SELECT max(id) FROM t", 1, 0, 1),
    ("min-pk", ("S",), "SELECT min(id) FROM t", 1, 0, 1),
    ("max-noindex", ("S",), "SELECT max(a) FROM t", 5, 0, 5),
    ("max-index", ("S", "I"), "SELECT max(a) FROM t", 1, 0, 1),
    ("join-pk", ("S", "P"), "SELECT * FROM p JOIN t ON t.id = p.tid", 6, 0, 6),
    ("join-noindex", ("S", "P"), "SELECT * FROM t JOIN p ON p.c = t.b", 14, 0, 2),
    ("join-cross", ("S", "P"), "SELECT * FROM t, p", 20, 0, 15),
    ("left-join", ("S", "P"), "SELECT * FROM t LEFT JOIN p ON p.tid = t.id", 12, 0, 6),
    ("in-subquery", ("S", "P"), "SELECT * FROM t WHERE id IN (SELECT tid FROM p)", 7, 0, 7),
    ("scalar-subquery", ("S", "P"), "SELECT (SELECT count(*) FROM p), a FROM t", 8, 0, 5),
    ("exists", ("S", "P"), "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM p WHERE p.tid = t.id)", 17, 0, 2),
    ("group-by", ("S",), "SELECT a % 2, count(*) FROM t GROUP BY a % 2", 10, 0, 10),
    ("distinct", ("S",), "SELECT DISTINCT a % 2 FROM t", 5, 0, 5),
    ("union", ("S", "P"), "SELECT a FROM t UNION SELECT tid FROM p", 13, 0, 5),
    ("union-all", ("S", "P"), "SELECT a FROM t UNION ALL SELECT tid FROM p", 8, 0, 8),
    ("like", ("S",), "SELECT * FROM t WHERE b LIKE 'z%'", 5, 0, 5),
    ("json-each", (), "SELECT * FROM json_each('[1,2,3]')", 3, 0, 3),
    ("cte", ("S",), "WITH x AS (SELECT a FROM t WHERE a > 2) SELECT * FROM x", 5, 0, 5),
    (
        "recursive-cte",
        (),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT x FROM c",
        6,
        0,
        5,
    ),
    ("window", ("S",), "SELECT a, sum(a) OVER (ORDER BY id) FROM t", 16, 0, 5),
    ("insert-1", ("S",), "INSERT INTO t (a, b) VALUES (6, 'u')", 0, 1, 0),
    ("insert-3", ("S",), "INSERT INTO t (a, b) VALUES (6, 'u'), (7, 't'), (8, 's')", 0, 3, 0),
    ("insert-empty", ("CREATE TABLE e (a)",), "INSERT INTO e VALUES (1)", 0, 1, 0),
    ("insert-index", ("S", "I"), "INSERT INTO t (a, b) VALUES (6, 'u')", 0, 2, 0),
    ("insert-explicit-pk", ("S",), "INSERT INTO t (id, a, b) VALUES (10, 6, 'u')", 1, 1, 1),
    ("insert-select", ("S", "CREATE TABLE c (a, b)"), "INSERT INTO c SELECT a, b FROM t", 5, 5, 5),
    ("insert-select-where", ("S", "CREATE TABLE c (a, b)"), "INSERT INTO c SELECT a, b FROM t WHERE a > 3", 5, 2, 5),
    (
        "insert-unique",
        ("CREATE TABLE u (k TEXT UNIQUE, v)", "INSERT INTO u VALUES ('a', 1), ('b', 2)"),
        "INSERT INTO u VALUES ('c', 3)",
        0,
        2,
        0,
    ),
    ("insert-returning", ("S",), "INSERT INTO t (a, b) VALUES (6, 'u') RETURNING id", 1, 1, 1),
    (
        "insert-autoinc",
        ("CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)", "INSERT INTO ai (v) VALUES (1)"),
        "INSERT INTO ai (v) VALUES (2)",
        1,
        2,
        1,
    ),
    ("insert-or-replace-hit", ("S",), "INSERT OR REPLACE INTO t (id, a, b) VALUES (2, 9, 'r')", 1, 1, 1),
    ("insert-or-replace-miss", ("S",), "INSERT OR REPLACE INTO t (id, a, b) VALUES (20, 9, 'r')", 1, 1, 1),
    ("insert-or-replace-idx", ("S", "I"), "INSERT OR REPLACE INTO t (id, a, b) VALUES (2, 9, 'r')", 1, 2, 1),
    (
        "insert-or-replace-unique",
        ("CREATE TABLE u (k TEXT UNIQUE, v)", "INSERT INTO u VALUES ('a', 1), ('b', 2)"),
        "INSERT OR REPLACE INTO u VALUES ('a', 3)",
        1,
        2,
        0,
    ),
    ("insert-or-ignore-hit", ("S",), "INSERT OR IGNORE INTO t (id, a, b) VALUES (2, 9, 'r')", 1, 0, 1),
    (
        "upsert-hit",
        ("S",),
        "INSERT INTO t (id, a, b) VALUES (2, 9, 'r') ON CONFLICT (id) DO UPDATE SET b = excluded.b",
        1,
        1,
        1,
    ),
    (
        "upsert-miss",
        ("S",),
        "INSERT INTO t (id, a, b) VALUES (20, 9, 'r') ON CONFLICT (id) DO UPDATE SET b = excluded.b",
        1,
        1,
        1,
    ),
    (
        "upsert-unique-hit",
        ("CREATE TABLE u (k TEXT UNIQUE, v)", "INSERT INTO u VALUES ('a', 1), ('b', 2)"),
        "INSERT INTO u VALUES ('a', 3) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        1,
        1,
        0,
    ),
    ("update-pk", ("S",), "UPDATE t SET b = 'q' WHERE id = 2", 1, 1, 1),
    ("update-pk-miss", ("S",), "UPDATE t SET b = 'q' WHERE id = 99", 1, 0, 1),
    ("update-noindex", ("S",), "UPDATE t SET b = 'q' WHERE a = 3", 5, 1, 5),
    ("update-none", ("S",), "UPDATE t SET b = 'q' WHERE a = 99", 5, 0, 5),
    ("update-all", ("S",), "UPDATE t SET b = 'q'", 5, 5, 5),
    ("update-idx-col", ("S", "I"), "UPDATE t SET a = a + 10 WHERE id = 2", 1, 2, 1),
    ("update-via-idx", ("S", "I"), "UPDATE t SET b = 'q' WHERE a = 3", 2, 1, 2),
    ("update-returning", ("S",), "UPDATE t SET b = 'q' WHERE a > 3 RETURNING id", 11, 2, 11),
    ("delete-pk", ("S",), "DELETE FROM t WHERE id = 2", 1, 1, 1),
    ("delete-pk-miss", ("S",), "DELETE FROM t WHERE id = 99", 1, 0, 1),
    ("delete-noindex", ("S",), "DELETE FROM t WHERE a = 3", 5, 1, 5),
    ("delete-none", ("S",), "DELETE FROM t WHERE a = 99", 5, 0, 5),
    ("delete-all", ("S",), "DELETE FROM t", 0, 5, 0),
    ("delete-all-where", ("S",), "DELETE FROM t WHERE a > 0", 5, 5, 5),
    ("delete-idx", ("S", "I"), "DELETE FROM t WHERE a = 3", 2, 1, 2),
    ("delete-all-idx", ("S", "I"), "DELETE FROM t", 0, 5, 0),
    (
        "trigger-insert",
        ("S", "CREATE TABLE log (x)", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END"),
        "INSERT INTO t (a, b) VALUES (6, 'u')",
        0,
        2,
        0,
    ),
    (
        "trigger-update",
        ("S", "CREATE TABLE log (x)", "CREATE TRIGGER tr AFTER UPDATE ON t BEGIN INSERT INTO log VALUES (new.a); END"),
        "UPDATE t SET b = 'q' WHERE a > 3",
        9,
        4,
        9,
    ),
    ("create-table", (), "CREATE TABLE x (a)", 1, 2, 1),
    ("create-table-2", ("S",), "CREATE TABLE x (a)", 1, 2, 1),
    ("create-table-pk", (), "CREATE TABLE x (a TEXT PRIMARY KEY, b UNIQUE)", 1, 4, 1),
    ("create-index", ("S",), "CREATE INDEX tb ON t(b)", 12, 6, 12),
    ("create-index-empty", ("CREATE TABLE e (a)",), "CREATE INDEX ea ON e(a)", 2, 1, 2),
    ("create-view", ("S",), "CREATE VIEW v AS SELECT * FROM t", 1, 2, 1),
    ("select-view", ("S", "CREATE VIEW v AS SELECT * FROM t WHERE a > 2"), "SELECT * FROM v", 5, 0, 5),
    ("drop-table", ("S",), "DROP TABLE t", 2, 0, 2),
    ("drop-index", ("S", "I"), "DROP INDEX ta", 3, 0, 3),
    # (What the DROPs measured so far fit: each of SQLite's nested DELETEs from sqlite_master (or
    # sqlite_sequence) scans it as it is then, and each b-tree dropped counts 1; run.py --seed 9651.)
    ("drop-view", ("CREATE TABLE a (x)", "CREATE VIEW v AS SELECT * FROM a"), "DROP VIEW v", 2, 0, 2),
    (
        "drop-trigger",
        (
            "CREATE TABLE a (x)",
            "CREATE TABLE l (y)",
            "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO l VALUES (1); END",
        ),
        "DROP TRIGGER tr",
        3,
        0,
        3,
    ),
    (
        "drop-table-trigger",
        (
            "CREATE TABLE a (x)",
            "CREATE TABLE l (y)",
            "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO l VALUES (1); END",
        ),
        "DROP TABLE a",
        6,
        0,
        6,
    ),
    ("drop-table-unique", ("CREATE TABLE a (x UNIQUE, y UNIQUE)",), "DROP TABLE a", 6, 0, 6),
    (
        "drop-table-autoinc",
        ("CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, x)", "INSERT INTO a (x) VALUES (1)"),
        "DROP TABLE a",
        4,
        0,
        4,
    ),
    ("alter-add", ("S",), "ALTER TABLE t ADD COLUMN c", 3, 1, 3),
    ("alter-rename", ("S",), "ALTER TABLE t RENAME TO t2", 10, 2, 10),
    ("multi", ("S",), "SELECT * FROM t; SELECT * FROM t WHERE id = 1", 1, 0, 1),
    (
        "multi-write",
        ("S",),
        "INSERT INTO t (a, b) VALUES (6, 'u'); UPDATE t SET b = 'q' WHERE id = 1; SELECT count(*) FROM t",
        6,
        0,
        6,
    ),
    (
        "without-rowid-eq",
        ("CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID", "INSERT INTO w VALUES ('a', 1), ('b', 2), ('c', 3)"),
        "SELECT * FROM w WHERE k = 'b'",
        1,
        0,
        1,
    ),
    (
        "without-rowid-scan",
        ("CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID", "INSERT INTO w VALUES ('a', 1), ('b', 2), ('c', 3)"),
        "SELECT * FROM w",
        3,
        0,
        3,
    ),
    (
        "without-rowid-miss",
        ("CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID", "INSERT INTO w VALUES ('a', 1), ('b', 2), ('c', 3)"),
        "SELECT * FROM w WHERE k = 'bb'",
        0,
        0,
        0,
    ),
    (
        "text-pk-eq",
        ("CREATE TABLE k (k TEXT PRIMARY KEY, v)", "INSERT INTO k VALUES ('a', 1), ('b', 2), ('c', 3)"),
        "SELECT * FROM k WHERE k = 'b'",
        1,
        0,
        1,
    ),
    (
        "text-pk-miss",
        ("CREATE TABLE k (k TEXT PRIMARY KEY, v)", "INSERT INTO k VALUES ('a', 1), ('b', 2), ('c', 3)"),
        "SELECT * FROM k WHERE k = 'bb'",
        0,
        0,
        0,
    ),
    (
        "big-scan",
        (
            "CREATE TABLE g (a)",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO g SELECT x FROM c",
        ),
        "SELECT * FROM g WHERE a % 100 = 0",
        1000,
        0,
        1000,
    ),
    (
        "big-count",
        (
            "CREATE TABLE g (a)",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO g SELECT x FROM c",
        ),
        "SELECT count(*) FROM g",
        1000,
        0,
        1000,
    ),
    (
        "big-insert",
        ("CREATE TABLE g (a)",),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO g SELECT x FROM c",
        1001,
        1000,
        0,
    ),
    ("pragma-table-info", ("S",), "PRAGMA table_info(t)", 0, 0, 0),
    ("sqlite-master", ("S",), "SELECT name FROM sqlite_master", 1, 0, 1),
    (
        "upsert-unique-miss",
        ("CREATE TABLE u (k TEXT UNIQUE, v)", "INSERT INTO u VALUES ('a', 1), ('b', 2)"),
        "INSERT INTO u VALUES ('c', 3) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        0,
        2,
        0,
    ),
    (
        "replace-unique-miss",
        ("CREATE TABLE u (k TEXT UNIQUE, v)", "INSERT INTO u VALUES ('a', 1), ('b', 2)"),
        "INSERT OR REPLACE INTO u VALUES ('c', 3)",
        0,
        2,
        0,
    ),
    ("insert-3-explicit", ("S",), "INSERT INTO t (id, a, b) VALUES (10, 1, 'a'), (11, 2, 'b'), (12, 3, 'c')", 3, 3, 3),
    # (miniflare 4.20260426, 2026-12-07: a multi-row VALUES with the rowid given looks each row's
    # key up once, whatever happens to the row; with RETURNING, inside the loop over the rows
    # buffered, which counts them too)
    (
        "insert-2-explicit",
        ("CREATE TABLE k (id INTEGER PRIMARY KEY, b TEXT)",),
        "INSERT INTO k (id, b) VALUES (10,'a'), (11,'b')",
        2,
        2,
        2,
    ),
    (
        "insert-2-explicit-unique",
        ("CREATE TABLE k (id INTEGER PRIMARY KEY, b TEXT UNIQUE)",),
        "INSERT INTO k (id, b) VALUES (10,'a'), (11,'b')",
        2,
        4,
        2,
    ),
    (
        "insert-2-explicit-ignore-hit",
        ("CREATE TABLE k (id INTEGER PRIMARY KEY, b TEXT)", "INSERT INTO k VALUES (10, 'z')"),
        "INSERT OR IGNORE INTO k (id, b) VALUES (10,'a'), (11,'b')",
        2,
        1,
        2,
    ),
    (
        "insert-2-explicit-replace-hit",
        ("CREATE TABLE k (id INTEGER PRIMARY KEY, b TEXT)", "INSERT INTO k VALUES (10, 'z')"),
        "INSERT OR REPLACE INTO k (id, b) VALUES (10,'a'), (11,'b')",
        2,
        2,
        2,
    ),
    # (an INSERT into an AUTOINCREMENT table first scans sqlite_sequence for the table's row, up
    # to it: miniflare 4.20260426, 2026-12-07)
    (
        "insert-autoinc-2-returning",
        ("CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",),
        "INSERT INTO ai (v) VALUES ('x'), ('y') RETURNING id",
        5,
        3,
        5,
    ),
    (
        "insert-autoinc-2-explicit",
        ("CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",),
        "INSERT INTO ai (id, v) VALUES (5, 'x'), (6, 'y')",
        3,
        3,
        3,
    ),
    (
        "insert-autoinc-select",
        ("S", "CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)"),
        "INSERT INTO ai (v) SELECT b FROM t",
        6,
        6,
        6,
    ),
    (
        "insert-autoinc-first-of-2",
        (
            "CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
            "CREATE TABLE ai2 (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
            "INSERT INTO ai (v) VALUES ('w')",
            "INSERT INTO ai2 (v) VALUES ('w')",
        ),
        "INSERT INTO ai (v) VALUES ('x')",
        1,
        2,
        1,
    ),
    (
        "insert-autoinc-last-of-2",
        (
            "CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
            "CREATE TABLE ai2 (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
            "INSERT INTO ai (v) VALUES ('w')",
            "INSERT INTO ai2 (v) VALUES ('w')",
        ),
        "INSERT INTO ai2 (v) VALUES ('x')",
        2,
        2,
        0,  # (its row last of two: found there, or added by the INSERT after a scan of 1? unknown)
    ),
    (
        "insert-2-explicit-returning",
        ("CREATE TABLE k (id INTEGER PRIMARY KEY, b TEXT)",),
        "INSERT INTO k (id, b) VALUES (10,'a'), (11,'b') RETURNING id",
        6,
        2,
        6,
    ),
    ("pk-null", ("S",), "SELECT * FROM t WHERE id = NULL", 0, 0, 0),
    ("pk-text", ("S",), "SELECT * FROM t WHERE id = 'abc'", 0, 0, 0),
    ("pk-textnum", ("S",), "SELECT * FROM t WHERE id = '3'", 1, 0, 1),
    ("update-pk-null", ("S",), "UPDATE t SET b = 'q' WHERE id = NULL", 0, 0, 0),
    ("create-if-not-exists", ("S",), "CREATE TABLE IF NOT EXISTS t (a)", 0, 0, 0),
    ("create-as-select", ("S",), "CREATE TABLE c AS SELECT * FROM t", 6, 7, 0),
    (
        "create-trigger",
        ("S", "CREATE TABLE log (x)"),
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END",
        0,
        1,
        0,
    ),
    ("create-view-empty", (), "CREATE VIEW v AS SELECT 1", 1, 2, 1),
    ("create-table-many", ("S", "P", "I", "CREATE TABLE q (a)"), "CREATE TABLE x (a)", 1, 2, 1),
    ("scan-covering", ("S", "I"), "SELECT a FROM t", 5, 0, 5),
    ("scan-covering-where", ("S", "I"), "SELECT a FROM t WHERE a % 2 = 0", 5, 0, 5),
    ("scan-partial-index", ("S", "CREATE INDEX tp ON t(a) WHERE a > 2"), "SELECT a FROM t WHERE a > 2", 3, 0, 3),
    (
        "delete-where-trigger",
        ("S", "CREATE TABLE log (x)", "CREATE TRIGGER tr AFTER DELETE ON t BEGIN INSERT INTO log VALUES (old.a); END"),
        "DELETE FROM t WHERE a > 3",
        7,
        4,
        7,
    ),
    ("update-where-idx-col", ("S", "I"), "UPDATE t SET a = a + 10 WHERE b = 'x'", 5, 2, 5),
    ("delete-noindex-empty", ("CREATE TABLE e (a)",), "DELETE FROM e WHERE a = 1", 1, 0, 1),
    ("update-all-empty", ("CREATE TABLE e (a)",), "UPDATE e SET a = 1", 1, 0, 1),
    (
        "without-rowid-filter",
        ("CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID", "INSERT INTO w VALUES ('a', 1), ('b', 2), ('c', 3)"),
        "SELECT * FROM w WHERE v = 2",
        3,
        0,
        3,
    ),
    ("count-expr", ("S",), "SELECT count(*) + 1 FROM t", 5, 0, 5),
    ("count-param-table", ("S",), "SELECT count(*) AS n FROM t", 5, 0, 5),
    (
        "update-autoinc",
        ("CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)", "INSERT INTO ai (v) VALUES (1)"),
        "UPDATE ai SET v = 2 WHERE id = 1",
        1,
        1,
        1,
    ),
    (
        "insert-autoinc-empty",
        ("CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",),
        "INSERT INTO ai (v) VALUES (2)",
        1,
        2,
        1,
    ),
    ("select-where-false", ("S",), "SELECT * FROM t WHERE 0", 0, 0, 0),
    ("scan-then-partial-2", ("S",), "SELECT * FROM t WHERE a > 0", 5, 0, 5),
    # These two were measured by the differential test (tests/differential/run.py 200 --seed 9621,
    # with rows-read lifted): a CREATE ... IF NOT EXISTS that creates, and SQL near the length limit.
    ("create-if-not-exists-new", (), "CREATE TABLE IF NOT EXISTS x (a INTEGER PRIMARY KEY, b TEXT)", 1, 2, 1),
    ("long-sql", (), "SELECT length('" + "y" * 99982 + "')", 0, 0, 0),
    # Measured 2026-12-07 (miniflare 4) for durable._sql_loops: ranges of a rowid or an index, LIMIT and
    # OFFSET on a scan, sorts of a scan, UPDATE/DELETE through a range.
    ("idx-gt-none", ("S", "I"), "SELECT * FROM t WHERE a > 99", 1, 0, 1),
    ("idx-lt", ("S", "I"), "SELECT * FROM t WHERE a < 3", 3, 0, 3),
    ("idx-lt-none", ("S", "I"), "SELECT * FROM t WHERE a < 0", 1, 0, 1),
    ("idx-between", ("S", "I"), "SELECT * FROM t WHERE a BETWEEN 2 AND 3", 3, 0, 3),
    ("idx-eq-filter", ("S", "I"), "SELECT * FROM t WHERE a = 3 AND b = 'q'", 2, 0, 2),
    (
        "idx-eq-empty",
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)", "I"),
        "SELECT * FROM t WHERE a = 3",
        0,
        0,
        0,
    ),
    (
        "idx-gt-empty",
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)", "I"),
        "SELECT * FROM t WHERE a > 3",
        1,
        0,
        1,
    ),
    ("idx-text-eq", ("S", "CREATE INDEX tb ON t(b)"), "SELECT * FROM t WHERE b = 'w'", 2, 0, 2),
    ("idx-text-eq-last", ("S", "CREATE INDEX tb ON t(b)"), "SELECT * FROM t WHERE b = 'z'", 1, 0, 1),
    ("idx-2col-eq", ("S", "CREATE INDEX tab ON t(a, b)"), "SELECT * FROM t WHERE a = 3 AND b = 'z'", 2, 0, 2),
    ("idx-2col-prefix", ("S", "CREATE INDEX tab ON t(a, b)"), "SELECT * FROM t WHERE a = 3", 2, 0, 2),
    ("idx-eq-desc", ("S", "I"), "SELECT * FROM t WHERE a > 2 ORDER BY a DESC", 4, 0, 4),
    ("pk-gt-none", ("S",), "SELECT * FROM t WHERE id > 99", 1, 0, 1),
    ("pk-lt-none", ("S",), "SELECT * FROM t WHERE id < 0", 1, 0, 1),
    ("pk-lt-all", ("S",), "SELECT * FROM t WHERE id < 99", 5, 0, 5),
    ("pk-le", ("S",), "SELECT * FROM t WHERE id <= 3", 4, 0, 4),
    ("pk-between-none", ("S",), "SELECT * FROM t WHERE id BETWEEN 7 AND 9", 1, 0, 1),
    ("pk-gt-text", ("S",), "SELECT * FROM t WHERE id > 'abc'", 0, 0, 0),
    ("pk-gt-real", ("S",), "SELECT * FROM t WHERE id > 2.5", 3, 0, 3),
    ("pk-lt-desc", ("S",), "SELECT * FROM t WHERE id < 4 ORDER BY id DESC", 3, 0, 3),
    ("pk-in-2", ("S",), "SELECT * FROM t WHERE id IN (2, 3)", 4, 0, 4),
    ("pk-in-dup", ("S",), "SELECT * FROM t WHERE id IN (3, 3, 1)", 4, 0, 4),
    ("pk-in-miss", ("S",), "SELECT * FROM t WHERE id IN (7, 8)", 4, 0, 4),
    ("pk-in-text", ("S",), "SELECT * FROM t WHERE id IN (1, 'x', 2.5)", 4, 0, 4),
    # (differential run.py seed 9710's range queries, measured with miniflare 4.20260426 on
    # 2026-12-07: ORDER BY id DESC walks the IN list's index with Last and Prev, counted the same)
    ("pk-in-desc", ("S",), "SELECT * FROM t WHERE id IN (2, 3) ORDER BY id DESC", 4, 0, 4),
    ("pk-in-desc-mixed", ("S",), "SELECT * FROM t WHERE id IN (3, 3, 1, 'x', 9) ORDER BY id DESC", 7, 0, 7),
    ("pk-lt-desc-limit-none", ("S",), "SELECT * FROM t WHERE id < 0 ORDER BY id DESC LIMIT 3", 1, 0, 1),
    ("pk-gt-limit-none", ("S",), "SELECT * FROM t WHERE id > 9 LIMIT 3", 1, 0, 1),
    # (a range with a LIMIT: the LIMIT's rows when it stops the loop, else as without it)
    ("pk-gt-limit-reached", ("S", "I"), "SELECT * FROM t WHERE id > 1 LIMIT 2", 2, 0, 2),
    ("pk-lt-limit-unreached", ("S", "I"), "SELECT * FROM t WHERE id < 3 LIMIT 5", 3, 0, 3),
    ("pk-between-limit", ("S", "I"), "SELECT * FROM t WHERE id BETWEEN 2 AND 3 LIMIT 5", 3, 0, 3),
    ("pk-gt-limit-0", ("S", "I"), "SELECT * FROM t WHERE id > 2 LIMIT 0", 0, 0, 0),
    ("pk-gt-limit-all", ("S", "I"), "SELECT * FROM t WHERE id > 1 LIMIT -1", 4, 0, 4),
    ("idx-gt-limit", ("S", "I"), "SELECT * FROM t WHERE a > 2 ORDER BY a LIMIT 2", 2, 0, 2),
    ("idx-lt-desc-limit", ("S", "I"), "SELECT * FROM t WHERE a < 4 ORDER BY a DESC LIMIT 9", 3, 0, 3),
    ("idx-eq-limit-miss", ("S", "I"), "SELECT * FROM t WHERE a = 9 LIMIT 1", 0, 0, 0),
    ("count-pk-range", ("S",), "SELECT count(*) FROM t WHERE id > 2", 3, 0, 3),
    ("pk-range-filter", ("S",), "SELECT * FROM t WHERE id > 1 AND a > 3", 4, 0, 4),
    ("update-via-idx-last", ("S", "I"), "UPDATE t SET b = 'q' WHERE a = 5", 1, 1, 1),
    ("update-via-idx-miss", ("S", "I"), "UPDATE t SET b = 'q' WHERE a = 9", 0, 0, 0),
    (
        "update-via-idx-dup",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'zz'), (3, 'zzz')"),
        "UPDATE t SET b = 'q' WHERE a = 3",
        4,
        3,
        4,
    ),
    ("delete-idx-last", ("S", "I"), "DELETE FROM t WHERE a = 5", 1, 1, 1),
    ("delete-idx-miss", ("S", "I"), "DELETE FROM t WHERE a = 9", 0, 0, 0),
    (
        "delete-idx-dup",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'zz'), (3, 'zzz')"),
        "DELETE FROM t WHERE a = 3",
        4,
        3,
        4,
    ),
    ("update-pk-range", ("S",), "UPDATE t SET b = 'q' WHERE id > 3", 2, 2, 2),
    ("delete-pk-range", ("S",), "DELETE FROM t WHERE id < 3", 3, 2, 3),
    ("update-idx-gt", ("S", "I"), "UPDATE t SET b = 'q' WHERE a > 3", 2, 2, 2),
    ("update-idx-2idx", ("S", "I", "CREATE INDEX tb ON t(b)"), "UPDATE t SET b = 'q' WHERE a = 3", 2, 2, 2),
    ("limit-offset-past", ("S",), "SELECT * FROM t LIMIT 2 OFFSET 4", 5, 0, 5),
    ("limit-offset-end", ("S",), "SELECT * FROM t LIMIT 10 OFFSET 1", 5, 0, 5),
    ("limit-offset-beyond", ("S",), "SELECT * FROM t LIMIT 2 OFFSET 9", 5, 0, 5),
    ("limit-neg", ("S",), "SELECT * FROM t LIMIT -1 OFFSET 2", 5, 0, 5),
    ("limit-empty", ("CREATE TABLE e (a)",), "SELECT * FROM e LIMIT 2 OFFSET 1", 1, 0, 1),
    ("limit-where", ("S",), "SELECT * FROM t WHERE a > 1 LIMIT 2", 3, 0, 2),
    ("order-noindex-empty", ("CREATE TABLE e (a)",), "SELECT * FROM e ORDER BY a", 2, 0, 2),
    ("order-noindex-where", ("S",), "SELECT * FROM t WHERE a > 2 ORDER BY b", 8, 0, 8),
    ("order-limit-3", ("S",), "SELECT * FROM t ORDER BY b LIMIT 3", 10, 0, 10),
    ("order-limit-10", ("S",), "SELECT * FROM t ORDER BY b LIMIT 10", 10, 0, 10),
    ("order-limit-offset", ("S",), "SELECT * FROM t ORDER BY b LIMIT 2 OFFSET 1", 10, 0, 10),
    ("order-limit-1", ("S",), "SELECT * FROM t ORDER BY b LIMIT 1", 10, 0, 10),
    ("order-desc-noindex", ("S",), "SELECT * FROM t ORDER BY b DESC", 10, 0, 10),
    ("order-index-where", ("S", "I"), "SELECT * FROM t WHERE a > 2 ORDER BY a", 3, 0, 3),
    ("in-null", ("S",), "SELECT * FROM t WHERE id IN (1, NULL, 7)", 5, 0, 5),
    ("in-textnum", ("S",), "SELECT * FROM t WHERE id IN (3, '3', 3.0, ' 4 ')", 4, 0, 4),
    ("in-filter", ("S",), "SELECT * FROM t WHERE id IN (1, 3, 5) AND b = 'z'", 6, 0, 6),
    ("in-one", ("S",), "SELECT * FROM t WHERE id IN (4)", 1, 0, 1),
    ("in-big", ("S",), "SELECT * FROM t WHERE id IN (1e30, -5, 9223372036854775807)", 5, 0, 5),
    ("delete-in", ("S",), "DELETE FROM t WHERE id IN (1, 3)", 4, 2, 4),
    (
        "idx-2col-null",
        ("S", "CREATE INDEX tab ON t(a, b)", "INSERT INTO t (a, b) VALUES (3, NULL), (NULL, 'n')"),
        "SELECT * FROM t WHERE a = 3 AND b = 'z'",
        2,
        0,
        2,
    ),
    (
        "idx-nocase",
        ("S", "CREATE INDEX tbn ON t(b COLLATE NOCASE)", "INSERT INTO t (a, b) VALUES (9, 'Z')"),
        "SELECT * FROM t WHERE b = 'z' COLLATE NOCASE",
        2,
        0,
        2,
    ),
    ("idx-desc-col", ("S", "CREATE INDEX tad ON t(a DESC)"), "SELECT * FROM t WHERE a = 3", 2, 0, 1),
    (
        "idx-lt-nulls",
        ("S", "I", "INSERT INTO t (a, b) VALUES (NULL, 'n')"),
        "SELECT * FROM t WHERE a < 3 ORDER BY a DESC",
        3,
        0,
        3,
    ),
    (
        "idx-le-desc-nulls",
        ("S", "I", "INSERT INTO t (a, b) VALUES (NULL, 'n')"),
        "SELECT * FROM t WHERE a <= 1 ORDER BY a DESC",
        2,
        0,
        2,
    ),
    ("order-where-limit", ("S",), "SELECT * FROM t WHERE a > 1 ORDER BY b LIMIT 2", 9, 0, 2),
    ("order-limit-0", ("S",), "SELECT * FROM t ORDER BY b LIMIT 0", 0, 0, 0),
    ("count-idx-range", ("S", "I"), "SELECT count(*) FROM t WHERE a > 2", 3, 0, 3),
    # A DELETE through a rowid range or IN list with an index to update (its cursor opened once, in the
    # loop): tests/differential/run.py, seed 0, sequence 80 found the first (workerd 1, durable 0).
    ("delete-pk-range-idx", ("S", "I"), "DELETE FROM t WHERE id > 3", 2, 2, 2),
    ("delete-pk-range-idx-none", ("S", "I"), "DELETE FROM t WHERE id > 9", 1, 0, 1),
    ("delete-in-idx", ("S", "I"), "DELETE FROM t WHERE id IN (1, 3)", 4, 2, 4),
    ("update-in", ("S",), "UPDATE t SET b = 'q' WHERE id IN (2, 4, 9)", 6, 2, 6),
    ("update-pk-range-idx", ("S", "I"), "UPDATE t SET a = 0 WHERE id < 3", 3, 4, 3),
    # Measured with miniflare 4.20260426 (compatibility date 2026-04-07) on 2026-12-07 for
    # durable._sql_multi: joins on a rowid, IN (SELECT ...), CREATE INDEX.
    (
        "join-pk-keys",
        ("S", "P", "INSERT INTO p (tid, c) VALUES (NULL, 'n'), (99, 'm'), ('abc', 'k')"),
        "SELECT * FROM p JOIN t ON t.id = p.tid",
        10,
        0,
        10,
    ),
    (
        "join-pk-mixed",
        ("S", "P", "INSERT INTO p (tid, c) VALUES ('3', 'n'), (2.0, 'm'), (2.5, 'k'), (x'01', 'b')"),
        "SELECT * FROM p JOIN t ON t.id = p.tid",
        12,
        0,
        12,
    ),
    (
        "join-pk-empty",
        ("S", "CREATE TABLE p (id INTEGER PRIMARY KEY, tid INTEGER, c TEXT)"),
        "SELECT * FROM p JOIN t ON t.id = p.tid",
        1,
        0,
        1,
    ),
    ("join-pk-cols", ("S", "P"), "SELECT p.c, t.b FROM p JOIN t ON t.id = p.tid", 6, 0, 6),
    ("join-pk-where-inner", ("S", "P"), "SELECT * FROM p JOIN t ON t.id = p.tid WHERE t.b = 'z'", 6, 0, 6),
    ("join-pk-where-outer", ("S", "P"), "SELECT * FROM p JOIN t ON t.id = p.tid WHERE p.c = 'z'", 4, 0, 1),
    ("join-pk-order", ("S", "P"), "SELECT p.c, t.b FROM p JOIN t ON p.tid = t.id ORDER BY p.id", 6, 0, 6),
    ("left-join-pk", ("S", "P"), "SELECT * FROM p LEFT JOIN t ON t.id = p.tid", 6, 0, 6),
    ("join-idx", ("S", "P", "CREATE INDEX ptid ON p(tid)"), "SELECT * FROM t JOIN p ON p.tid = t.id", 6, 0, 6),
    (
        "in-subquery-keys",
        ("S", "P", "INSERT INTO p (tid, c) VALUES (5, 'a'), (NULL, 'b'), (99, 'c')"),
        "SELECT * FROM t WHERE id IN (SELECT tid FROM p)",
        15,
        0,
        15,
    ),
    (
        "in-subquery-empty",
        ("S", "CREATE TABLE p (id INTEGER PRIMARY KEY, tid INTEGER, c TEXT)"),
        "SELECT * FROM t WHERE id IN (SELECT tid FROM p)",
        2,
        0,
        2,
    ),
    # (workerd's SQLite deletes or updates through such a subquery in two passes: 9 and 11, not
    # the 7 of one pass that Python's SQLite 3.40's program has; counted as the rows returned)
    # (miniflare 4.20260426, 2026-12-07: workerd's SQLite writes in two passes where the WHERE has a
    # subquery: the SELECT's reads, then a lookup per row deleted; an UPDATE also loops over the
    # rowids it kept, at least 1)
    ("in-subquery-delete", ("S", "P"), "DELETE FROM t WHERE id IN (SELECT tid FROM p)", 9, 2, 9),
    ("in-subquery-update", ("S", "P"), "UPDATE t SET b = 'q' WHERE id IN (SELECT tid FROM p)", 11, 2, 11),
    ("in-subquery-rowid-update", ("S", "P"), "UPDATE t SET b = 'q' WHERE id IN (SELECT id FROM p)", 12, 3, 12),
    ("in-subquery-rowid-delete", ("S", "P"), "DELETE FROM t WHERE id IN (SELECT id FROM p)", 9, 3, 9),
    (
        "in-subquery-update-empty",
        ("S", "CREATE TABLE p (id INTEGER PRIMARY KEY, tid INTEGER, c TEXT)"),
        "UPDATE t SET b = 'q' WHERE id IN (SELECT tid FROM p)",
        3,
        0,
        3,
    ),
    (
        "in-subquery-delete-empty",
        ("S", "CREATE TABLE p (id INTEGER PRIMARY KEY, tid INTEGER, c TEXT)"),
        "DELETE FROM t WHERE id IN (SELECT tid FROM p)",
        2,
        0,
        2,
    ),
    (
        "in-subquery-delete-keys",
        ("S", "P", "INSERT INTO p (tid, c) VALUES (99, 'a'), (NULL, 'b'), (2.5, 'c'), (4, 'd')"),
        "DELETE FROM t WHERE id IN (SELECT tid FROM p)",
        20,
        3,
        20,
    ),
    (
        "in-subquery-update-keys",
        ("S", "P", "INSERT INTO p (tid, c) VALUES (99, 'a'), (NULL, 'b'), (2.5, 'c'), (4, 'd')"),
        "UPDATE t SET b = 'q' WHERE id IN (SELECT tid FROM p)",
        23,
        3,
        23,
    ),
    # (a test of a column other than the rowid: a scan of t checking each row; still the rows returned)
    ("in-subquery-delete-scan", ("S", "P"), "DELETE FROM t WHERE a IN (SELECT tid FROM p)", 10, 2, 0),
    ("in-subquery-update-scan", ("S", "P"), "UPDATE t SET b = 'q' WHERE a IN (SELECT tid FROM p)", 12, 2, 0),
    ("in-subquery-filter", ("S", "P"), "SELECT * FROM t WHERE id IN (SELECT tid FROM p) AND b <> 'x'", 7, 0, 7),
    ("join-self", ("P",), "SELECT * FROM p AS x JOIN p AS y ON y.id = x.tid", 6, 0, 6),
    # (miniflare 4.20260426, 2026-12-07: `IN (SELECT id ...)` of the rowid is a loop over `u`
    # looking each rowid up; a REAL column's key passes through RealAffinity; DESC loops backwards)
    ("in-subquery-rowid", ("S", "P"), "SELECT * FROM t WHERE id IN (SELECT id FROM p)", 6, 0, 6),
    ("in-subquery-rowid-desc", ("S", "P"), "SELECT * FROM t WHERE id IN (SELECT id FROM p) ORDER BY id DESC", 6, 0, 6),
    (
        "in-subquery-rowid-empty",
        ("S", "CREATE TABLE p (id INTEGER PRIMARY KEY)"),
        "SELECT * FROM t WHERE id IN (SELECT id FROM p)",
        1,
        0,
        1,
    ),
    (
        "in-subquery-real",
        ("S", "CREATE TABLE u (d REAL)", "INSERT INTO u VALUES (1.0), (3.0), (2.5), (NULL)"),
        "SELECT * FROM t WHERE id IN (SELECT d FROM u)",
        10,
        0,
        10,
    ),
    (
        "in-subquery-real-desc",
        ("S", "CREATE TABLE u (d REAL)", "INSERT INTO u VALUES (1.0), (3.0), (2.5), (NULL)"),
        "SELECT * FROM t WHERE id IN (SELECT d FROM u) ORDER BY id DESC",
        10,
        0,
        10,
    ),
    # (a subquery of arithmetic: SQLite fills its temporary index with the values computed;
    # miniflare 4.20260426, 2026-12-07; a function's falls back)
    (
        "in-subquery-expression",
        (
            "S",
            "CREATE TABLE u (id INTEGER PRIMARY KEY, d REAL, n INTEGER)",
            "INSERT INTO u VALUES (1, 1.0, 3), (3, 3.0, 3), (4, 2.5, 7), (6, NULL, 8)",
        ),
        "SELECT * FROM t WHERE id IN (SELECT id + 0 FROM u)",
        12,
        0,
        12,
    ),
    (
        "in-subquery-expression-real",
        (
            "S",
            "CREATE TABLE u (id INTEGER PRIMARY KEY, d REAL, n INTEGER)",
            "INSERT INTO u VALUES (1, 1.0, 3), (3, 3.0, 3), (4, 2.5, 7), (6, NULL, 8)",
        ),
        "SELECT * FROM t WHERE id IN (SELECT d * 2 - 1 FROM u)",
        11,
        0,
        11,
    ),
    (
        "in-subquery-expression-div",
        (
            "S",
            "CREATE TABLE u (id INTEGER PRIMARY KEY, d REAL, n INTEGER)",
            "INSERT INTO u VALUES (1, 1.0, 3), (3, 3.0, 3), (4, 2.5, 7), (6, NULL, 8)",
        ),
        "SELECT * FROM t WHERE id IN (SELECT d / 2 FROM u)",
        8,
        0,
        8,
    ),
    (
        "in-subquery-function",
        (
            "S",
            "CREATE TABLE u (id INTEGER PRIMARY KEY, d REAL, n INTEGER)",
            "INSERT INTO u VALUES (1, 1.0, 3), (3, 3.0, 3), (4, 2.5, 7), (6, NULL, 8)",
        ),
        "SELECT * FROM t WHERE id IN (SELECT abs(n) FROM u)",
        10,
        0,
        1,
    ),
    (
        "in-subquery-real-empty",
        ("S", "CREATE TABLE u (d REAL)"),
        "SELECT * FROM t WHERE id IN (SELECT d FROM u)",
        2,
        0,
        2,
    ),
    (
        "left-join-real",
        ("S", "CREATE TABLE x (d REAL)", "INSERT INTO x VALUES (1.0), (3.0), (4.0), (2.5), (NULL), ('abc')"),
        "SELECT * FROM x LEFT JOIN t ON t.id = x.d",
        9,
        0,
        9,
    ),
    # (the outer loop a scan of a covering index on `b`, each entry's rowid looked up; miniflare
    # 4.20260426: the index's 6 entries, NULL `b` included, and 6 lookups)
    (
        "join-covering-index",
        (
            "CREATE TABLE x (id INTEGER PRIMARY KEY, b TEXT)",
            "INSERT INTO x VALUES (1, 'p'), (2, 'q'), (3, 'r'), (4, 's'), (5, 't'), (9, NULL)",
            "CREATE INDEX xb ON x(b)",
            "CREATE TABLE u (id INTEGER PRIMARY KEY, b TEXT)",
            "INSERT INTO u VALUES (1, 'x'), (3, 'y'), (4, 'z')",
        ),
        "SELECT x.b, u.b FROM x, u WHERE u.id = x.id ORDER BY x.b DESC",
        12,
        0,
        12,
    ),
    (
        "join-covering-index-empty",
        ("CREATE TABLE x (id INTEGER PRIMARY KEY, b TEXT)", "CREATE INDEX xb ON x(b)", "S"),
        "SELECT x.b, t.b FROM x, t WHERE t.id = x.id ORDER BY x.b",
        1,
        0,
        1,
    ),
    ("left-join-real-empty", ("S", "CREATE TABLE x (d REAL)"), "SELECT * FROM x LEFT JOIN t ON t.id = x.d", 1, 0, 1),
    ("join-count", ("S", "P"), "SELECT count(*) FROM p JOIN t ON t.id = p.tid", 6, 0, 6),
    ("join-limit", ("S", "P"), "SELECT * FROM p JOIN t ON t.id = p.tid LIMIT 1", 2, 0, 1),
    # (INSERT ... SELECT fed by a full scan of another table: that table's rows)
    (
        "insert-select-empty",
        ("CREATE TABLE e (a, b)", "CREATE TABLE c (a, b)"),
        "INSERT INTO c SELECT a, b FROM e",
        1,
        0,
        1,
    ),
    (
        "insert-select-index",
        ("S", "CREATE TABLE c (a, b)", "CREATE INDEX ca ON c(a)"),
        "INSERT INTO c SELECT a, b FROM t",
        5,
        10,
        5,
    ),
    (
        "insert-select-unique",
        ("S", "CREATE TABLE c (a UNIQUE, b)", "INSERT INTO c VALUES (1, 'q')"),
        "INSERT OR IGNORE INTO c SELECT a, b FROM t",
        5,
        8,
        5,
    ),
    ("insert-select-cols", ("S", "CREATE TABLE c (a, b)"), "INSERT INTO c (a) SELECT a FROM t WHERE b <> 'x'", 5, 4, 5),
    ("insert-select-covering", ("S", "I", "CREATE TABLE c (a, b)"), "INSERT INTO c (a) SELECT a FROM t", 5, 5, 5),
    ("insert-select-same", ("S",), "INSERT INTO t (a, b) SELECT a, b FROM t", 10, 5, 0),
    (
        "insert-select-rowid",
        ("S", "CREATE TABLE c (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)"),
        "INSERT INTO c SELECT * FROM t WHERE a > 2",
        8,
        3,
        0,
    ),
    ("create-index-1", ("CREATE TABLE e (a)", "INSERT INTO e VALUES (1)"), "CREATE INDEX ea ON e(a)", 3, 2, 3),
    ("create-index-2", ("CREATE TABLE e (a)", "INSERT INTO e VALUES (1), (2)"), "CREATE INDEX ea ON e(a)", 6, 3, 6),
    ("create-index-more", ("S", "P", "I"), "CREATE INDEX tb ON t(b)", 12, 6, 12),
    ("create-index-unique", ("S",), "CREATE UNIQUE INDEX tb ON t(b)", 12, 6, 12),
    ("create-index-2col", ("S",), "CREATE INDEX tab ON t(a, b)", 12, 6, 12),
    ("create-index-partial", ("S",), "CREATE INDEX tp ON t(a) WHERE a > 2", 10, 4, 10),
    ("create-index-if-not-exists", ("S",), "CREATE INDEX IF NOT EXISTS tb ON t(b)", 12, 6, 12),
    # (an aggregate over a range: the range's entries, plus the one past its end, as a SELECT of them)
    ("count-pk-between", ("S",), "SELECT count(*) FROM t WHERE id BETWEEN 2 AND 3", 3, 0, 3),
    ("count-pk-range-none", ("S",), "SELECT count(*) FROM t WHERE id > 9", 1, 0, 1),
    ("count-idx-between", ("S", "I"), "SELECT count(*) FROM t WHERE a BETWEEN 2 AND 3", 3, 0, 3),
    ("count-idx-eq", ("S", "I"), "SELECT count(*) FROM t WHERE a = 3", 2, 0, 2),
    ("sum-idx-between", ("S", "I"), "SELECT sum(b) FROM t WHERE a BETWEEN 2 AND 4", 4, 0, 4),
    ("sum-pk-lt", ("S",), "SELECT sum(a) FROM t WHERE id < 3", 3, 0, 3),
    (
        "agg-idx-lt-nulls",
        ("S", "I", "INSERT INTO t (a, b) VALUES (NULL, 'n'), (NULL, 'm')"),
        "SELECT count(*) FROM t WHERE a < 3",
        3,
        0,
        3,
    ),
    (
        "agg-idx-le-nulls",
        ("S", "I", "INSERT INTO t (a, b) VALUES (NULL, 'n'), (NULL, 'm')"),
        "SELECT sum(a) FROM t WHERE a <= 3",
        4,
        0,
        4,
    ),
    (
        "agg-idx-gt-nulls",
        ("S", "I", "INSERT INTO t (a, b) VALUES (NULL, 'n'), (NULL, 'm')"),
        "SELECT count(*) FROM t WHERE a > 3",
        2,
        0,
        2,
    ),
    ("agg-idx-text", ("S", "CREATE INDEX tb ON t(b)"), "SELECT count(*) FROM t WHERE b >= 'w'", 4, 0, 4),
    (
        "agg-idx-nocase",
        ("S", "CREATE INDEX tbn ON t(b COLLATE NOCASE)", "INSERT INTO t (a, b) VALUES (9, 'X')"),
        "SELECT count(*) FROM t WHERE b = 'x' COLLATE NOCASE",
        3,
        0,
        3,
    ),
    ("agg-pk-between-empty", ("S",), "SELECT count(*) FROM t WHERE id BETWEEN 4 AND 2", 1, 0, 1),
    ("agg-idx-lt-max", ("S", "I"), "SELECT max(b) FROM t WHERE a < 3", 3, 0, 3),
    ("agg-avg-pk-ge-real", ("S",), "SELECT avg(a) FROM t WHERE id >= 2.5", 3, 0, 3),
    # (a write with RETURNING: its first pass, the loops over its temporary tables, its second pass's
    # lookups, and its loop over the rows it returns)
    ("insert-returning-3", ("S",), "INSERT INTO t (a, b) VALUES (6, 'u'), (7, 'v'), (8, 'w') RETURNING id", 6, 3, 6),
    ("insert-returning-pk", ("S",), "INSERT INTO t (id, a, b) VALUES (10, 6, 'u') RETURNING id", 2, 1, 2),
    ("insert-returning-idx", ("S", "I"), "INSERT INTO t (a, b) VALUES (6, 'u') RETURNING *", 1, 2, 1),
    (
        "insert-select-returning",
        ("S", "CREATE TABLE c (a, b)"),
        "INSERT INTO c SELECT a, b FROM t RETURNING a",
        15,
        5,
        5,
    ),
    (
        "upsert-returning",
        ("S",),
        "INSERT INTO t (id, a, b) VALUES (2, 9, 'r') ON CONFLICT (id) DO UPDATE SET b = excluded.b RETURNING id",
        2,
        1,
        2,
    ),
    ("update-returning-none", ("S",), "UPDATE t SET b = 'q' WHERE a > 9 RETURNING id", 7, 0, 7),
    ("update-returning-pk", ("S",), "UPDATE t SET b = 'q' WHERE id = 2 RETURNING id", 2, 1, 2),
    ("update-returning-all", ("S",), "UPDATE t SET b = 'q' RETURNING id", 20, 5, 20),
    ("update-returning-idx", ("S", "I"), "UPDATE t SET b = 'q' WHERE a = 3 RETURNING id", 5, 1, 5),
    ("update-returning-range", ("S",), "UPDATE t SET b = 'q' WHERE id > 3 RETURNING id", 8, 2, 8),
    ("update-returning-in", ("S",), "UPDATE t SET b = 'q' WHERE id IN (1, 3) RETURNING id", 10, 2, 10),
    ("delete-returning", ("S",), "DELETE FROM t WHERE a > 3 RETURNING id", 9, 2, 9),
    ("delete-returning-pk", ("S",), "DELETE FROM t WHERE id = 2 RETURNING id", 2, 1, 2),
    ("delete-returning-all", ("S",), "DELETE FROM t RETURNING id", 15, 5, 15),
    ("delete-returning-idx", ("S", "I"), "DELETE FROM t WHERE a = 3 RETURNING id", 4, 1, 4),
    ("delete-returning-range", ("S",), "DELETE FROM t WHERE id > 3 RETURNING id", 6, 2, 6),
    # (a range with another test: the range's entries, whichever rows the test let through)
    ("filter-idx-gt", ("S", "I"), "SELECT * FROM t WHERE a > 2 AND b = 'w'", 3, 0, 3),
    ("filter-idx-lt-desc", ("S", "I"), "SELECT * FROM t WHERE a < 4 AND b <> 'x' ORDER BY a DESC", 3, 0, 3),
    ("filter-update-idx", ("S", "I"), "UPDATE t SET b = 'q' WHERE a > 2 AND b = 'w'", 3, 1, 3),
    ("filter-delete-pk", ("S",), "DELETE FROM t WHERE id > 1 AND a > 3", 4, 2, 4),
    ("filter-pk-between", ("S",), "SELECT * FROM t WHERE id BETWEEN 2 AND 4 AND b <> 'y'", 4, 0, 4),
    (
        "filter-idx-dup",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'zz'), (3, 'zzz')"),
        "SELECT * FROM t WHERE a = 3 AND b = 'zz'",
        4,
        0,
        4,
    ),
    ("filter-count", ("S",), "SELECT count(*) FROM t WHERE id > 1 AND a > 3", 4, 0, 4),
    ("filter-idx-miss", ("S", "I"), "SELECT * FROM t WHERE a = 9 AND b = 'z'", 0, 0, 0),
    ("filter-update-returning", ("S", "I"), "UPDATE t SET b = 'q' WHERE a > 2 AND b = 'w' RETURNING id", 6, 1, 6),
    # (a range fed to a sorter: the range's count, then one per row sorted, at least 1)
    (
        "range-sorted-idx-eq",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'a'), (3, 'c')"),
        "SELECT * FROM t WHERE a = 3 ORDER BY b",
        7,
        0,
        7,
    ),
    ("range-sorted-idx-gt", ("S", "I"), "SELECT * FROM t WHERE a > 2 ORDER BY b", 6, 0, 6),
    ("range-sorted-pk-gt", ("S",), "SELECT * FROM t WHERE id > 2 ORDER BY b", 6, 0, 6),
    ("range-sorted-idx-miss", ("S", "I"), "SELECT * FROM t WHERE a = 9 ORDER BY b", 1, 0, 1),
    (
        "range-sorted-desc",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'a'), (3, 'c')"),
        "SELECT * FROM t WHERE a = 3 ORDER BY b DESC",
        7,
        0,
        7,
    ),
    (
        "range-sorted-filter",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'a'), (3, 'c')"),
        "SELECT * FROM t WHERE a = 3 AND b <> 'a' ORDER BY b",
        6,
        0,
        6,
    ),
    (
        "range-sorted-limit",
        ("S", "I", "INSERT INTO t (a, b) VALUES (3, 'a'), (3, 'c')"),
        "SELECT * FROM t WHERE a = 3 ORDER BY b LIMIT 1",
        7,
        0,
        1,
    ),
    # (miniflare 4.20260426, 2026-12-07: the scan, then the sorter's loop over the rows the WHERE kept,
    # at least 1)
    ("group-by-where", ("S",), "SELECT a % 2, count(*) FROM t WHERE a > 1 GROUP BY a % 2", 9, 0, 9),
    ("group-by-where-none", ("S",), "SELECT a % 2, count(*) FROM t WHERE a > 99 GROUP BY a % 2", 6, 0, 6),
    (
        "group-by-where-having",
        ("S",),
        "SELECT a % 2, count(*) FROM t WHERE a > 1 GROUP BY a % 2 HAVING count(*) > 1",
        9,
        0,
        9,
    ),
    ("group-by-where-and", ("S",), "SELECT b, sum(a) FROM t WHERE b <> 'x' AND a < 5 GROUP BY b", 8, 0, 8),
    (
        "group-by-where-empty",
        ("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)",),
        "SELECT a % 2, count(*) FROM t WHERE a > 1 GROUP BY a % 2",
        2,
        0,
        2,
    ),
    ("group-by-empty", ("CREATE TABLE e (a)",), "SELECT a, count(*) FROM e GROUP BY a", 2, 0, 2),
    ("group-by-having", ("S",), "SELECT a % 2, count(*) FROM t GROUP BY a % 2 HAVING count(*) > 2", 10, 0, 10),
    ("group-by-2col", ("S",), "SELECT a % 2, b, count(*) FROM t GROUP BY a % 2, b", 10, 0, 10),
    ("group-by-order", ("S",), "SELECT a % 2 AS k, count(*) FROM t GROUP BY k ORDER BY k DESC", 10, 0, 10),
    ("group-by-sum", ("S",), "SELECT b, sum(a) FROM t GROUP BY b", 10, 0, 10),
    ("group-by-order-count", ("S",), "SELECT a % 2 AS k, count(*) AS n FROM t GROUP BY k ORDER BY n", 12, 0, 2),
    (
        "group-by-big",
        (
            "CREATE TABLE g (a, b)",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO g SELECT x % 7, 'row ' || x FROM c",
        ),
        "SELECT a, count(*), max(b) FROM g GROUP BY a",
        2000,
        0,
        2000,
    ),
    ("group-by-index", ("S", "I"), "SELECT a, count(*) FROM t GROUP BY a", 5, 0, 5),
    # (DROP, counted before it runs; ALTER TABLE ... ADD COLUMN)
    ("drop-table-idx", ("S", "I"), "DROP TABLE t", 4, 0, 4),
    ("drop-table-more", ("S", "P"), "DROP TABLE t", 3, 0, 3),
    ("drop-index-more", ("S", "P", "I"), "DROP INDEX ta", 4, 0, 4),
    ("drop-table-2idx", ("S", "I", "CREATE INDEX tb ON t(b)", "CREATE TABLE z (q)"), "DROP TABLE t", 7, 0, 7),
    ("drop-table-if", ("S",), "DROP TABLE IF EXISTS t", 2, 0, 2),
    ("drop-index-3", ("S", "I", "CREATE INDEX tb ON t(b)", "CREATE TABLE z (q)"), "DROP INDEX tb", 5, 0, 5),
    (
        "drop-table-triggers",
        (
            "S",
            "CREATE TABLE l (y)",
            "CREATE TRIGGER tr1 AFTER INSERT ON t BEGIN INSERT INTO l VALUES (1); END",
            "CREATE TRIGGER tr2 AFTER DELETE ON t BEGIN INSERT INTO l VALUES (2); END",
        ),
        "DROP TABLE t",
        10,
        0,
        10,
    ),
    (
        "drop-trigger-more",
        ("S", "I", "CREATE TABLE l (y)", "CREATE TRIGGER tr1 AFTER INSERT ON t BEGIN INSERT INTO l VALUES (1); END"),
        "DROP TRIGGER tr1",
        4,
        0,
        4,
    ),
    ("alter-rename-col", ("S",), "ALTER TABLE t RENAME COLUMN b TO bb", 14, 2, 14),
    ("alter-drop-col", ("S",), "ALTER TABLE t DROP COLUMN b", 17, 7, 17),
    ("alter-rename-more", ("S", "P", "I"), "ALTER TABLE t RENAME TO t2", 22, 5, 22),
    ("alter-add-2", ("S", "CREATE TABLE z (q)"), "ALTER TABLE t ADD COLUMN c", 4, 1, 4),
    # (a CREATE of an AUTOINCREMENT table reads 2 when it creates sqlite_sequence too, 1 after:
    # miniflare 4.20260426.0, compatibility date 2026-04-20; durable read 2 for both)
    ("create-autoinc-first", ("S",), "CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)", 2, 4, 2),
    (
        "create-autoinc-second",
        ("CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v)", "CREATE TABLE x (y)"),
        "CREATE TABLE ai2 (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        1,
        2,
        1,
    ),
    ("alter-add-idx", ("S", "I"), "ALTER TABLE t ADD COLUMN c", 4, 1, 4),
    ("alter-add-3", ("S", "P", "CREATE TABLE z (q)"), "ALTER TABLE t ADD COLUMN c", 5, 1, 5),
    ("alter-add-empty", ("CREATE TABLE e (a)",), "ALTER TABLE e ADD COLUMN c", 3, 1, 3),
    ("alter-add-default", ("S",), "ALTER TABLE t ADD COLUMN c DEFAULT 3", 3, 1, 3),
    ("alter-add-notnull", ("S",), "ALTER TABLE t ADD COLUMN c NOT NULL DEFAULT 3", 3, 1, 3),
    ("alter-add-check", ("S",), "ALTER TABLE t ADD COLUMN c CHECK (c > 0)", 4, 1, 4),
    (
        "create-index-100",
        (
            "CREATE TABLE g (a, b)",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) INSERT INTO g SELECT x, 'row ' || x FROM c",
        ),
        "CREATE INDEX ga ON g(a)",
        202,
        101,
        202,
    ),
)

WRITTEN_DIFFERS = {
    # workerd: 1 (the DO UPDATE path rewrites the row only: v has no index); durable counts an
    # upsert as an INSERT, whose every index is written, whichever path SQLite took (docs/sql.md).
    "upsert-unique-hit",
}


class Shapes(durable.DurableObject):
    pass


def _run(setup: tuple[str, ...], statement: str) -> Any:
    def body(obj: Any, ctx: durable.State) -> tuple[int, int]:
        sql = ctx.storage.sql
        for step in setup:
            for s in _NAMED.get(step, (step,)):
                sql.exec(s).to_array()
        cursor = sql.exec(statement)
        cursor.to_array()
        return cursor.rows_read, cursor.rows_written

    return body


def _params(which: str) -> list[Any]:
    out = []
    for name, setup, statement, read, written, durable_read in SHAPES:
        differs = name in WRITTEN_DIFFERS if which == "written" else read != durable_read
        marks = [pytest.mark.xfail(strict=True, reason="workerd counts differently (docs/sql.md)")] if differs else []
        out.append(pytest.param(setup, statement, read if which == "read" else written, id=name, marks=marks))
    return out


@pytest.mark.parametrize(("setup", "statement", "expected"), _params("written"))
async def test_rows_written_as_workerd_counts(
    durable_runtime: durable.Runtime, setup: tuple[str, ...], statement: str, expected: int
) -> None:
    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert (await testing.run_in_object(stub, _run(setup, statement)))[1] == expected


@pytest.mark.parametrize(("setup", "statement", "expected"), _params("read"))
async def test_rows_read_as_workerd_counts(
    durable_runtime: durable.Runtime, setup: tuple[str, ...], statement: str, expected: int
) -> None:
    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert (await testing.run_in_object(stub, _run(setup, statement)))[0] == expected


def _read_counts(sql: Any, cases: Any) -> list[int]:
    """``rows_read`` of each ``(statement, bindings, read)`` of ``cases``, run in order: its cursor
    read to the end (``to_array()``) when ``read`` is None, else that many rows with ``next()``."""
    counts = []
    for statement, bindings, read in cases:
        cursor = sql.exec(statement, *bindings)
        if read is None:
            cursor.to_array()
        else:
            for _ in range(read):
                next(cursor)
        counts.append(cursor.rows_read)
    return counts


async def test_rows_read_while_a_scan_is_read(durable_runtime: durable.Runtime) -> None:
    """A scan counts the rows SQLite stepped to: the first one once ``exec()`` returns, one more
    per row read (SQLite steps to the next row as a row is read), the table's rows at the end.
    workerd (measured): 1 after ``exec()``, 2 after one ``next()``, 5 once read to the end; an
    empty table's scan reads 1 (its ``Rewind``)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        sql.exec("CREATE TABLE e (a)")
        cursor = sql.exec("SELECT * FROM t")
        counts = [cursor.rows_read]
        next(cursor)
        counts.append(cursor.rows_read)
        cursor.to_array()
        counts.append(cursor.rows_read)
        empty = sql.exec("SELECT * FROM e")
        counts.append(empty.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [1, 2, 5, 1]


async def test_rowid_lookups_by_binding(durable_runtime: durable.Runtime) -> None:
    """A rowid lookup reads 1 whatever it finds, but none when its key is not an integer (SQLite
    jumps past the lookup). workerd (measured with the same bindings): 1, 1, 1, 0, 0, 1, 0, 0, and
    1 for the UPDATE by ``:id``."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        keys = (3, 99, "3", "abc", None, 2.0, 2.5, b"3")
        counts = _read_counts(sql, [("SELECT * FROM t WHERE id = ?", (key,), None) for key in keys])
        named = sql.exec("UPDATE t SET b = 'q' WHERE id = :id", 2)
        counts.append(named.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [1, 1, 1, 0, 0, 1, 0, 0, 1]


async def test_rows_read_falls_back_to_rows_returned(durable_runtime: durable.Runtime) -> None:
    """A scan's count is taken when ``rows_read`` is read; if its table is gone by then, the
    cursor counts the rows it returned (no error). workerd (measured) says 5 here: it counted as
    the statement ran (docs/sql.md)."""

    def body(obj: Any, ctx: durable.State) -> int:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        cursor = sql.exec("SELECT * FROM t WHERE a > 3")
        cursor.to_array()
        sql.exec("DROP TABLE t")
        return cursor.rows_read

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == 2


def test_an_unknown_instruction_leaves_the_count_unknown() -> None:
    """A program with an instruction ``_sql_reads`` does not know (a later SQLite's) has no shape."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (a)")
        program = conn.execute("EXPLAIN SELECT * FROM t").fetchall()
        assert _sql_reads.classify(conn, "SELECT * FROM t", (), "x") == ("scan", "t", False, False)
        program.insert(len(program) - 1, (len(program) - 1, "SomeFutureOp", 0, 0, 0, None, 0, None))
        assert _sql_reads._shape(conn, program, "x") is None


async def test_rows_read_after_later_writes(durable_runtime: durable.Runtime) -> None:
    """A table's rows are counted when ``rows_read`` is read; after later writes they are not the
    rows the statement saw, so the cursor counts the rows it returned, as before ``_sql_reads``
    (it counted the table as it was then: 8, 5 and 1). workerd (miniflare 4, 2026-12-07) counts
    as the statement ran: 5 for the scan read after 3 inserts, 8 for the ``count(*)`` read
    after a delete, 5 for the filtered scan read after ``DELETE FROM t``."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        scan = sql.exec("SELECT * FROM t")
        scan.to_array()
        sql.exec("INSERT INTO t (a) VALUES (9), (9), (9)")
        count = sql.exec("SELECT count(*) FROM t")  # read after the delete, before its row
        sql.exec("DELETE FROM t WHERE a = 9")
        counts = [scan.rows_read, count.rows_read]
        filtered = sql.exec("SELECT * FROM t WHERE a > 3")
        filtered.to_array()
        sql.exec("DELETE FROM t")
        counts.append(filtered.rows_read)
        fresh = sql.exec("SELECT * FROM t WHERE a > 3")  # nothing written since: counted
        fresh.to_array()
        sql.exec("SELECT 1")
        counts.append(fresh.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [5, 0, 2, 1]


async def test_rowid_lookup_of_a_key_past_64_bits(durable_runtime: durable.Runtime) -> None:
    """A real key reads as a rowid only strictly between -2**63 and 2**63 - 1, and text such as
    ``'1_000'`` not at all (Python's ``float()`` reads it): SQLite then skips the lookup. workerd
    (miniflare 4, 2026-12-07) read 0 rows for each key below but ``' 2 '`` (1), and for the
    bindings 0, 0, 0, 1 (``'9223372036854775807'``), 0 (an Arabic-Indic digit); durable counted
    1 for each but the last (``1e30`` is a whole number to Python)."""
    keys = ("1e30", "'1_000'", "'1e30'", "9.3e18", "-9.2233720368547758e18", "'-1e19'", "' 2 '")

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        counts = []
        for key in keys:
            cursor = sql.exec(f"SELECT * FROM t WHERE id = {key}")
            cursor.to_array()
            counts.append(cursor.rows_read)
        for value in ("1_000", 1e30, "9.3e18", "9223372036854775807", "٣"):
            cursor = sql.exec("UPDATE t SET a = 1 WHERE id = ?", value)
            counts.append(cursor.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0]


async def test_ranges_by_binding_and_while_read(durable_runtime: durable.Runtime) -> None:
    """Ranges, LIMITs and sorts (``durable._sql_loops``) with bound keys, and read in part.
    workerd (miniflare 4, 2026-12-07), in order: ``a = ?`` on an index with 3, NULL and '3':
    2, 0, 2; ``id >= ?`` with 4: 2; ``id BETWEEN ? AND ?`` with 2 and 3: 3; ``id > ?`` with
    NULL: 0; ``LIMIT ? OFFSET ?`` with 2 and 1: 3; ``id IN (?, ?, ?)`` with 2, 'x', 2: 3 (the
    list's two values, one rowid lookup); then two rows read of ``id > 1``: 3, two of
    ``ORDER BY b``: 8 (the scan's 5, then the sorter's rows stepped to), and, once 3 rows have
    ``a = 3``, one row of ``a = 3``: 2."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in (*_T, *_I):
            sql.exec(s)
        return _read_counts(
            sql,
            (
                ("SELECT * FROM t WHERE a = ?", (3,), None),
                ("SELECT * FROM t WHERE a = ?", (None,), None),
                ("SELECT * FROM t WHERE a = ?", ("3",), None),
                ("SELECT * FROM t WHERE id >= ?", (4,), None),
                ("SELECT * FROM t WHERE id BETWEEN ? AND ?", (2, 3), None),
                ("SELECT * FROM t WHERE id > ?", (None,), None),
                ("SELECT * FROM t LIMIT ? OFFSET ?", (2, 1), None),
                ("SELECT * FROM t WHERE id IN (?, ?, ?)", (2, "x", 2), None),
                ("SELECT * FROM t WHERE id > 1", (), 2),
                ("SELECT * FROM t ORDER BY b", (), 2),
                ("INSERT INTO t (a, b) VALUES (3, 'zz'), (3, 'zzz')", (), 0),
                ("SELECT * FROM t WHERE a = 3", (), 1),
            ),
        )

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [2, 0, 2, 2, 3, 0, 3, 3, 3, 8, 0, 2]


async def test_range_with_a_limit_bound_and_read_in_part(durable_runtime: durable.Runtime) -> None:
    """A rowid range with a LIMIT (differential run.py seed 9710's range queries). workerd
    (miniflare 4.20260426, 2026-12-07), in order: ``id > 1 LIMIT ?`` with 3 and '2': 3, 2;
    ``id < 0 ORDER BY id DESC LIMIT ?`` with 3: 1; then read in part: two rows of ``id > 1
    LIMIT 2``: 2 (no row waits past the LIMIT's last), one of it: 2, two of ``id > 1 LIMIT 3``:
    3, two of ``id < 3 LIMIT 5``: 3 (the entry past the range waits)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        return _read_counts(
            sql,
            (
                ("SELECT * FROM t WHERE id > 1 LIMIT ?", (3,), None),
                ("SELECT * FROM t WHERE id > 1 LIMIT ?", ("2",), None),
                ("SELECT * FROM t WHERE id < 0 ORDER BY id DESC LIMIT ?", (3,), None),
                ("SELECT * FROM t WHERE id > 1 LIMIT 2", (), 2),
                ("SELECT * FROM t WHERE id > 1 LIMIT 2", (), 1),
                ("SELECT * FROM t WHERE id > 1 LIMIT 3", (), 2),
                ("SELECT * FROM t WHERE id < 3 LIMIT 5", (), 2),
            ),
        )

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [3, 2, 1, 2, 2, 3, 3]


async def test_rows_read_of_a_statement_written_to_while_it_ran(durable_runtime: durable.Runtime) -> None:
    """A statement read in part, then its table written to, then read to its end: the table's
    rows when it ended are not those it counted, so the cursor counts the rows it returned. workerd
    (miniflare 4, 2026-12-07): 10 for ``ORDER BY b`` (5 scanned, 5 sorted) after 3 inserts or 4
    deletes between its first row and the rest, 2 for ``LIMIT 4`` after 4 deletes; durable counted
    the table as it was at the end: 16, 2 and 1 (now 5, 5 and 2: the rows returned)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        counts = []
        for statement, write in (
            ("SELECT * FROM t ORDER BY b", "INSERT INTO t (a) VALUES (9), (9), (9)"),
            ("SELECT * FROM t ORDER BY b", "DELETE FROM t WHERE id > 1"),
            ("SELECT * FROM t LIMIT 4", "DELETE FROM t WHERE id > 1"),
        ):
            for s in ("DROP TABLE IF EXISTS t", *_T):  # each from the same 5 rows
                sql.exec(s)
            cursor = sql.exec(statement)
            next(cursor)
            sql.exec(write)
            cursor.to_array()
            counts.append(cursor.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [5, 5, 2]


async def test_a_partial_index_written_without_a_space(durable_runtime: durable.Runtime) -> None:
    """A range over a partial index is not counted as a range over the table, however its
    ``WHERE`` is spelled. workerd (miniflare 4, 2026-12-07) read 2 rows for ``a <= 2 AND a < 3``
    over ``CREATE INDEX tp ON t(a) WHERE(a<3)`` (the index holds no entry past the range);
    durable asked the table for one and counted 3."""

    def body(obj: Any, ctx: durable.State) -> int:
        sql = ctx.storage.sql
        for s in (*_T, "CREATE INDEX tp ON t(a) WHERE(a<3)"):
            sql.exec(s)
        cursor = sql.exec("SELECT * FROM t WHERE a <= 2 AND a<3")
        cursor.to_array()
        return cursor.rows_read

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == 2


async def test_a_limit_bound_as_a_real_or_text(durable_runtime: durable.Runtime) -> None:
    """SQLite reads a LIMIT or OFFSET of ``2.0`` or ``'2'`` as 2. workerd (miniflare 4,
    2026-12-07) read 3 rows for ``LIMIT ? OFFSET ?`` with 2.0, 1.0 and with '2', '1'; durable
    counted 3.0 (a float) and 2 (the rows returned)."""

    def body(obj: Any, ctx: durable.State) -> list[Any]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        statement = "SELECT * FROM t LIMIT ? OFFSET ?"
        return _read_counts(sql, ((statement, (2.0, 1.0), None), (statement, ("2", "1"), None)))

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    counts = await testing.run_in_object(stub, body)
    assert counts == [3, 3]
    assert [type(c) for c in counts] == [int, int]


async def test_rows_read_of_cursors_read_in_part(durable_runtime: durable.Runtime) -> None:
    """A cursor read in part counts the rows stepped to only where they are known. workerd
    (miniflare 4, 2026-12-07), 5 rows: ``SELECT * FROM t`` and ``... ORDER BY b`` read to their
    last row with ``next()`` (sqlite3 has stepped past it, nothing waits): 5 and 10, where durable
    counted 6 and 11; ``WHERE a > 3`` (no index) read 0 or 1 rows: 4 and 5 (the scan steps over
    the rows its filter skips), and ``id IN (1, 9, 3)`` read 1 row: 4, where durable counted 1, 2
    and 6 (the whole list); these now count the rows returned."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in _T:
            sql.exec(s)
        return _read_counts(
            sql,
            (
                ("SELECT * FROM t", (), 5),
                ("SELECT * FROM t ORDER BY b", (), 5),
                ("SELECT * FROM t ORDER BY b", (), 2),
                ("SELECT * FROM t WHERE a > 3", (), 0),
                ("SELECT * FROM t WHERE a > 3", (), 1),
                ("SELECT * FROM t WHERE id IN (1, 9, 3)", (), 1),
            ),
        )

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [5, 10, 8, 0, 1, 1]


async def test_a_range_read_in_part_up_to_its_last_row(durable_runtime: durable.Runtime) -> None:
    """A range read in part up to its last row: nothing waits past it unless an entry lies past
    the range's end (the cursor stepped to it). workerd (miniflare 4.20260426, 2026-12-07), on
    ids and ``a`` 1-5: four rows of ``id > 1``: 4; of ``id > 1 LIMIT 5`` (fuzz-15's LIMIT, bound
    larger than the range): 4; of ``id > 1 ORDER BY id DESC``: 5 (id 1 waits); five of
    ``id < 6``: 5; four of ``id < 5``: 5; two of ``a >= 4`` (index): 2; one of ``a = 5``: 1;
    one of ``id > ?`` with 4: 1; three of ``id BETWEEN 2 AND 4``: 4; three of ``id > 1``: 4.
    durable counted one more for each range read to its last row (the row it took as waiting)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for s in (*_T, *_I):
            sql.exec(s)
        return _read_counts(
            sql,
            (
                ("SELECT * FROM t WHERE id > 1", (), 4),
                ("SELECT * FROM t WHERE id > 1 LIMIT ?", (5,), 4),
                ("SELECT * FROM t WHERE id > 1 ORDER BY id DESC", (), 4),
                ("SELECT * FROM t WHERE id < 6", (), 5),
                ("SELECT * FROM t WHERE id < 5", (), 4),
                ("SELECT * FROM t WHERE a >= 4", (), 2),
                ("SELECT * FROM t WHERE a = 5", (), 1),
                ("SELECT * FROM t WHERE id > ?", (4,), 1),
                ("SELECT * FROM t WHERE id BETWEEN 2 AND 4", (), 3),
                ("SELECT * FROM t WHERE id > 1", (), 3),
            ),
        )

    stub = durable_runtime.namespace(Shapes).get_by_name("a")
    assert await testing.run_in_object(stub, body) == [4, 4, 5, 5, 5, 2, 1, 1, 4, 4]


def _has_dbstat() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("SELECT count(*) FROM dbstat").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return True


@pytest.mark.skipif(not _has_dbstat(), reason="this SQLite has no dbstat table: the leaf pages are not known")
async def test_create_index_over_several_pages(durable_runtime: durable.Runtime) -> None:
    """``CREATE INDEX`` on a table whose index spans leaf pages: workerd's ``OP_SeekEnd`` counts
    again each time the index grows a page. Measured with miniflare 4.20260426 (2026-12-07): 2005
    for 1000 integers, 2007 for 1000 texts ``'row N'``, 10025 for 5000 integers."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        counts = []
        for rows, column in ((1000, "a"), (1000, "b"), (5000, "a")):
            sql.exec("DROP TABLE IF EXISTS g")
            sql.exec("CREATE TABLE g (a, b)")
            sql.exec(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
                "INSERT INTO g SELECT x, 'row ' || x FROM c",
                rows,
            )
            counts.append(sql.exec(f"CREATE INDEX g{column} ON g({column})").rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("pages")
    assert await testing.run_in_object(stub, body) == [2005, 2007, 10025]


async def test_aggregate_over_a_range_by_binding(durable_runtime: durable.Runtime) -> None:
    """An aggregate over a range bound by a parameter: workerd (miniflare 4.20260426, 2026-12-07)
    reads 3 for ``count(*) ... WHERE id > ?`` with 2, 0 for ``a = ?`` (index) with 9 (no equal
    key) and 0 for ``a > ?`` with NULL (SQLite skips the loop)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for statement in (*_T, *_I):
            sql.exec(statement)
        return _read_counts(
            sql,
            (
                ("SELECT count(*) FROM t WHERE id > ?", (2,), None),
                ("SELECT count(*) FROM t WHERE a = ?", (9,), None),
                ("SELECT count(*) FROM t WHERE a > ?", (None,), None),
                ("SELECT count(*) FROM t WHERE id > ?", (2,), 0),  # not read: its loop ran whole
            ),
        )

    stub = durable_runtime.namespace(Shapes).get_by_name("agg")
    assert await testing.run_in_object(stub, body) == [3, 0, 0, 3]


async def test_a_write_with_returning_read_in_part(durable_runtime: durable.Runtime) -> None:
    """A write with ``RETURNING`` made all its changes on its first step; its loop over the rows
    it returns counts those stepped to. workerd (miniflare 4.20260426, 2026-12-07): 12 for an
    UPDATE of 3 rows not read yet (14 once read), 10 for a DELETE of 3 with one read (11), 5 for an
    INSERT of 3 with one read (6)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        counts = []
        for statement, read in (
            ("UPDATE t SET b = 'q' WHERE a > 2 RETURNING id", 0),
            ("DELETE FROM t WHERE a > 2 RETURNING id", 1),
            ("INSERT INTO t (a, b) VALUES (6, 'u'), (7, 'v'), (8, 'w') RETURNING id", 1),
        ):
            sql.exec("DROP TABLE IF EXISTS t")
            for setup in _T:
                sql.exec(setup)
            cursor = sql.exec(statement)
            for _ in range(read):
                next(cursor)
            counts.append(cursor.rows_read)
            cursor.to_array()
            counts.append(cursor.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("returning")
    assert await testing.run_in_object(stub, body) == [12, 14, 10, 11, 5, 6]


def test_returning_found_outside_strings_and_names() -> None:
    """Only a ``RETURNING`` clause of the statement itself is taken off (``durable._sql_multi``)."""
    strip = _sql_multi.without_returning
    assert strip("UPDATE t SET b = 'returning' WHERE id = 1") is None
    assert strip('UPDATE t SET "returning" = 1 -- returning') is None
    assert strip("UPDATE t SET b = 'x' WHERE id = 1 RETURNING *") == "UPDATE t SET b = 'x' WHERE id = 1"
    assert strip("INSERT INTO t VALUES ((SELECT 1)) /* returning */ returning id") == (
        "INSERT INTO t VALUES ((SELECT 1)) /* returning */"
    )
    assert strip("DELETE FROM t WHERE b = 'it''s' RETURNING id, b") == "DELETE FROM t WHERE b = 'it''s'"
    assert strip("SELECT returning_x FROM t") is None


async def test_a_range_with_another_test_by_binding_and_in_part(durable_runtime: durable.Runtime) -> None:
    """A range with another test steps over the range's entries whichever rows pass the test.
    workerd (miniflare 4.20260426, 2026-12-07): 2 for ``a = ? AND b = ?`` with 3 and 'z'; 3 for
    ``id > 1 AND a > 2`` after one row read, 4 once read, where durable counts the rows returned
    while it is read in part (the entries stepped over so far are not known)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for statement in (*_T, *_I):
            sql.exec(statement)
        counts = _read_counts(sql, (("SELECT * FROM t WHERE a = ? AND b = ?", (3, "z"), None),))
        cursor = sql.exec("SELECT * FROM t WHERE id > 1 AND a > 2")
        next(cursor)
        counts.append(cursor.rows_read)
        cursor.to_array()
        return [*counts, cursor.rows_read]

    stub = durable_runtime.namespace(Shapes).get_by_name("filter")
    assert await testing.run_in_object(stub, body) == [2, 1, 4]


async def test_a_sorted_range_by_binding_and_in_part(durable_runtime: durable.Runtime) -> None:
    """A range fed to a sorter, its rows read in part or bound: workerd (miniflare 4.20260426,
    2026-12-07) reads 5 after ``exec()`` (the range's 4, the sorter's first), 6 after one row, 7
    once read, 7 bound to 3, and 1 bound to NULL (the range skipped, the sorter's SorterSort)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for statement in (*_T, *_I, "INSERT INTO t (a, b) VALUES (3, 'a'), (3, 'c')"):
            sql.exec(statement)
        statement = "SELECT * FROM t WHERE a = 3 ORDER BY b"
        return _read_counts(
            sql,
            (
                (statement, (), 0),
                (statement, (), 1),
                (statement, (), None),
                ("SELECT * FROM t WHERE a = ? ORDER BY b", (3,), None),
                ("SELECT * FROM t WHERE a = ? ORDER BY b", (None,), None),
            ),
        )

    stub = durable_runtime.namespace(Shapes).get_by_name("sorted-range")
    assert await testing.run_in_object(stub, body) == [5, 6, 7, 7, 1]


async def test_a_sorted_rowid_range_bound_to_null(durable_runtime: durable.Runtime) -> None:
    """A rowid range fed to a sorter, bound to a key that is no number: the seek jumps past the
    loop, nothing is sorted, and only the sorter's ``SorterSort`` counts. workerd (miniflare
    4.20260426, 2026-12-07): 1 for NULL and for ``'x'``, 6 for 2 (3 entries, 3 sorted)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for statement in _T:
            sql.exec(statement)
        statement = "SELECT * FROM t WHERE id > ? ORDER BY b"
        return _read_counts(sql, ((statement, (None,), None), (statement, ("x",), None), (statement, (2,), None)))

    stub = durable_runtime.namespace(Shapes).get_by_name("sorted-rowid-null")
    assert await testing.run_in_object(stub, body) == [1, 1, 6]


async def test_a_drop_keeps_its_count(durable_runtime: durable.Runtime) -> None:
    """A ``DROP``'s ``rows_read`` is counted before it runs, and stays: read after later writes, or
    after the same text ran again (dropping nothing), it is still what workerd reads (miniflare
    4.20260426, 2026-12-07): 2 for a table alone in the schema (``drop-table``), 3 beside another
    (``drop-table-more``: ``u``, made by the second round)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        counts = []
        for later in ("DROP TABLE IF EXISTS t", "CREATE TABLE u (x)", "INSERT INTO u VALUES (1)"):
            sql.exec("CREATE TABLE t (a)")
            cursor = sql.exec("DROP TABLE IF EXISTS t")
            sql.exec(later)
            counts.append(cursor.rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("drop-kept")
    assert await testing.run_in_object(stub, body) == [2, 2, 3]


def test_a_count_below_zero_falls_back() -> None:
    """A shape whose parts add up below zero (a program misread) leaves the count unknown: the
    cursor then counts the rows returned, never a negative ``rows_read``."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (a)")
        sql = "INSERT INTO t VALUES (1) RETURNING a"
        cache: dict[str, Any] = {sql: (0, ("returning", ("none",), "INSERT INTO t VALUES (1)", -3, 0))}
        counted = _sql_reads.rows_read(
            conn, cache, 0, sql, (), tag="x", returned=1, finished=True, written=1, changes=1
        )
        assert counted is None


async def test_add_column_with_check_only_in_a_string(durable_runtime: durable.Runtime) -> None:
    """``ALTER TABLE ... ADD COLUMN``'s ``CHECK`` costs one more read only as a constraint, not in
    a default's string, a quoted name or a comment. workerd (miniflare 4.20260426, 2026-12-07),
    four schema rows: 6 for ``DEFAULT 'CHECK'`` as for a plain column (``ADD e``), 7 for
    ``CHECK (f > 0)``."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for statement in (*_T, *_I, "CREATE TABLE s (a INTEGER) STRICT", 'CREATE TABLE "Mixed Case" (a)'):
            sql.exec(statement)
        counts = []
        for statement in (
            "ALTER TABLE t ADD COLUMN c DEFAULT 'CHECK'",
            'ALTER TABLE t ADD COLUMN "check" /* CHECK */',
            "ALTER TABLE t ADD COLUMN f INTEGER CHECK (f > 0) DEFAULT 1",
        ):
            counts.append(sql.exec(statement).rows_read)
        return counts

    stub = durable_runtime.namespace(Shapes).get_by_name("add-column-check")
    assert await testing.run_in_object(stub, body) == [6, 6, 7]


async def test_drop_with_keywords_only_in_strings(durable_runtime: durable.Runtime) -> None:
    """A ``DROP``'s count reads ``AUTOINCREMENT`` and ``REFERENCES`` in the schema as SQL, not in
    a default's string. workerd (miniflare 4.20260426, 2026-12-07), beside an AUTOINCREMENT table
    with one row: 5 for ``DROP TABLE y`` (4 schema rows, then its b-tree), 4 for ``x`` (durable
    said 5, taking it for AUTOINCREMENT), 4 for ``g`` (2 schema rows, its b-tree, its
    ``sqlite_sequence`` row's scan)."""

    def body(obj: Any, ctx: durable.State) -> list[int]:
        sql = ctx.storage.sql
        for statement in (
            "CREATE TABLE g (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
            "INSERT INTO g (v) VALUES (1)",
            "CREATE TABLE x (a DEFAULT 'AUTOINCREMENT')",
            "CREATE TABLE y (a DEFAULT 'REFERENCES')",
        ):
            sql.exec(statement)
        return [sql.exec(f"DROP TABLE {name}").rows_read for name in ("y", "x", "g")]

    stub = durable_runtime.namespace(Shapes).get_by_name("drop-strings")
    assert await testing.run_in_object(stub, body) == [5, 4, 4]


async def test_rows_read_of_an_in_subquery_of_large_values(durable_runtime: durable.Runtime) -> None:
    """``id IN (SELECT s || s FROM u)`` counts the distinct values of ``s || s`` when
    ``rows_read`` is read: streamed, a long one kept by its digest, never all of them held in
    memory at once (here 100 of 200 KB, 20 MB: the read stays well under that)."""

    def body(obj: Any, ctx: durable.State) -> tuple[int, int, int]:
        sql = ctx.storage.sql
        sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, a)")
        sql.exec("CREATE TABLE u (id INTEGER PRIMARY KEY, s TEXT)")
        for n in range(100):
            sql.exec("INSERT INTO u (s) VALUES (?)", f"{n}:" + "x" * 100_000)
        cursor = sql.exec("SELECT * FROM t WHERE id IN (SELECT s || s FROM u)")
        cursor.to_array()
        tracemalloc.start()
        try:
            read = cursor.rows_read
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return read, peak, cursor.rows_written

    stub = durable_runtime.namespace(Shapes).get_by_name("large-values")
    read, peak, written = await testing.run_in_object(stub, body)
    assert (read, written) == (200, 0)  # u's 100 rows, its 100 distinct values, no integer
    assert peak < 5_000_000
