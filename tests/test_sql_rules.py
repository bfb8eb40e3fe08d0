"""The rules of ``ctx.storage.sql`` (``durable._sql_rules``), tested without a runtime.

``tests/test_sql.py`` checks the same rules through ``sql.exec()`` on a live object; these tests
pin the pure functions down one by one.
"""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from durable import SqlError
from durable._sql_rules import (
    ALLOWED_PRAGMAS,
    ALTER,
    BOOLEAN,
    COUNTED_ACTIONS,
    DML_ACTIONS,
    SCHEMA_ACTIONS,
    SQL_LIMITS,
    VACUUM_OR_OPTIMIZE,
    WRITE_ACTIONS,
    authorized,
    check_binding,
    error_offset,
    first_statement,
    named_parameters,
    renames_to_reserved,
    sql_error,
    tokens,
)


class TestAuthorizer:
    @pytest.mark.parametrize("table", ["_cf_KV", "_cf_METADATA", "_cf_anything"])
    def test_reserved_tables_are_refused(self, table: str) -> None:
        """Reading or writing a table whose name starts with _cf_ is refused."""
        assert not authorized(sqlite3.SQLITE_READ, table, "key", "main")
        assert not authorized(sqlite3.SQLITE_INSERT, table, None, "main")

    def test_application_tables_are_allowed(self) -> None:
        """Reading, writing and indexing the application's own tables is allowed."""
        assert authorized(sqlite3.SQLITE_READ, "users", "name", "main")
        assert authorized(sqlite3.SQLITE_UPDATE, "users", "name", "main")
        assert authorized(sqlite3.SQLITE_CREATE_INDEX, "by_name", "users", "main")
        assert not authorized(sqlite3.SQLITE_CREATE_INDEX, "by_name", "_cf_KV", "main")

    def test_pragmas_follow_the_allow_list(self) -> None:
        """A switch PRAGMA takes a boolean word; other PRAGMAs are refused."""
        assert authorized(sqlite3.SQLITE_PRAGMA, "foreign_keys", "ON", None)
        assert authorized(sqlite3.SQLITE_PRAGMA, "foreign_keys", "'yes'", None)
        assert not authorized(sqlite3.SQLITE_PRAGMA, "foreign_keys", "maybe", None)
        assert not authorized(sqlite3.SQLITE_PRAGMA, "journal_mode", None, None)
        assert ALLOWED_PRAGMAS["recursive_triggers"] == BOOLEAN

    def test_pragma_names_are_compared_as_written(self) -> None:
        """table_info is allowed on an application table, TABLE_INFO is not (as in workerd)."""
        assert authorized(sqlite3.SQLITE_PRAGMA, "table_info", "t", None)
        assert not authorized(sqlite3.SQLITE_PRAGMA, "table_info", "_cf_KV", None)
        assert not authorized(sqlite3.SQLITE_PRAGMA, "TABLE_INFO", "t", None)

    def test_numeric_pragma_arguments(self) -> None:
        """PRAGMA optimize takes a 32-bit number, in decimal or 0x hex."""
        assert authorized(sqlite3.SQLITE_PRAGMA, "optimize", "0x10", None)
        assert authorized(sqlite3.SQLITE_PRAGMA, "optimize", "-5", None)
        assert not authorized(sqlite3.SQLITE_PRAGMA, "optimize", "99999999999", None)
        assert not authorized(sqlite3.SQLITE_PRAGMA, "optimize", "many", None)

    def test_functions_follow_the_allow_list(self) -> None:
        """Allow-listed functions are allowed; others are refused."""
        assert authorized(sqlite3.SQLITE_FUNCTION, None, "abs", None)
        assert authorized(sqlite3.SQLITE_FUNCTION, None, "json_object", None)
        assert not authorized(sqlite3.SQLITE_FUNCTION, None, "fts3_tokenizer", None)

    def test_attach_and_temp_objects_are_refused(self) -> None:
        """ATTACH, TEMP tables and other databases are refused."""
        assert not authorized(sqlite3.SQLITE_ATTACH, "x.db", None, None)
        assert not authorized(sqlite3.SQLITE_CREATE_TEMP_TABLE, "t", None, "temp")
        assert not authorized(sqlite3.SQLITE_READ, "t", "x", "other")

    def test_virtual_tables(self) -> None:
        """FTS5 and R*Tree virtual tables are allowed, other modules are not."""
        assert authorized(sqlite3.SQLITE_CREATE_VTABLE, "docs", "fts5", "main")
        assert authorized(sqlite3.SQLITE_CREATE_VTABLE, "boxes", "RTREE", "main")
        assert not authorized(sqlite3.SQLITE_CREATE_VTABLE, "t", "csv", "main")

    def test_alter_table_names_the_table(self) -> None:
        """ALTER TABLE is checked against the table altered (SQLite passes the database first)."""
        assert authorized(sqlite3.SQLITE_ALTER_TABLE, "main", "users", None)
        assert not authorized(sqlite3.SQLITE_ALTER_TABLE, "main", "_cf_KV", None)

    def test_renames_to_reserved_names(self) -> None:
        """ALTER TABLE ... RENAME TO _cf_... is recognised, quoted or not."""
        assert renames_to_reserved("ALTER TABLE t RENAME TO _cf_X")
        assert not renames_to_reserved("ALTER TABLE t RENAME TO _CF_x")  # workerd: allowed (as written)
        assert renames_to_reserved('ALTER TABLE t RENAME TO "_cf_x"')
        assert not renames_to_reserved("ALTER TABLE t RENAME TO u")
        assert ALTER.match("/* c */ ALTER TABLE t RENAME TO u")

    def test_action_sets(self) -> None:
        """DML and schema actions split the write actions; every counted action writes."""
        assert DML_ACTIONS | SCHEMA_ACTIONS == WRITE_ACTIONS
        assert not DML_ACTIONS & SCHEMA_ACTIONS
        assert COUNTED_ACTIONS <= WRITE_ACTIONS
        assert sqlite3.SQLITE_READ not in WRITE_ACTIONS

    def test_limits_apply_to_a_connection(self) -> None:
        """Every limit is one sqlite3 accepts, and setting them makes workerd's bounds hold."""
        conn = sqlite3.connect(":memory:")
        try:
            for limit, value in SQL_LIMITS:
                conn.setlimit(limit, value)
            assert conn.getlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT) == 5
            assert conn.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED) == 0
        finally:
            conn.close()


class TestStatements:
    def test_tokens_cover_the_text(self) -> None:
        """Tokens are contiguous, and a semicolon inside a string is part of the string."""
        found = list(tokens("SELECT 'a;b' -- x\n;"))
        assert [kind for kind, _, _ in found] == ["word", "space", "string", "space", "comment", "space", "semi"]
        assert next((start, end) for _, start, end in found) == (0, 6)
        assert all(a[2] == b[1] for a, b in itertools.pairwise(found))

    @pytest.mark.parametrize(
        ("code", "bounds"),
        [
            ("SELECT 1", (0, 8)),
            ("SELECT 1;", (0, 9)),
            ("SELECT 1; SELECT 2", (0, 9)),
            (";SELECT 1", (1, 9)),
            ("  ;; -- only a comment\n", None),
            ("", None),
            ("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END; SELECT 2", (0, 55)),
        ],
    )
    def test_first_statement(self, code: str, bounds: tuple[int, int] | None) -> None:
        """The first statement ends after its semicolon (not one inside a trigger body)."""
        assert first_statement(code) == bounds

    def test_vacuum_and_optimize(self) -> None:
        """VACUUM and PRAGMA optimize are recognised after spaces and semicolons."""
        assert VACUUM_OR_OPTIMIZE.match(" ; vacuum")
        assert VACUUM_OR_OPTIMIZE.match("PRAGMA main . optimize")
        assert not VACUUM_OR_OPTIMIZE.match("SELECT 'vacuum'")


class TestErrors:
    @pytest.mark.parametrize(
        ("sql", "message", "offset"),
        [
            ("SELEC 1", 'near "SELEC": syntax error', 0),
            ("SELECT nope FROM (SELECT 1)", "no such column: nope", 7),
            ("SELECT 'é', nope", "no such column: nope", 13),  # bytes, not characters
            ("SELECT ?101", "variable number must be between ?1 and ?100", 7),
            ("SELECT " + ",".join("?" * 101), "too many SQL variables", 207),
            ("SELECT * FROM", "incomplete input", None),
        ],
    )
    def test_error_offset(self, sql: str, message: str, offset: int | None) -> None:
        """The byte offset SQLite's sqlite3_error_offset would give, or None."""
        assert error_offset(sql, message) == offset

    def test_sql_error_names_the_primary_code(self) -> None:
        """An sqlite3 error becomes Cloudflare's '<message>[ at offset N]: SQLITE_<CODE>'."""
        conn = sqlite3.connect(":memory:")
        try:
            with pytest.raises(sqlite3.Error) as syntax:
                conn.execute("SELEC 1")
            conn.execute("CREATE TABLE t (x UNIQUE)")
            conn.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(sqlite3.Error) as unique:
                conn.execute("INSERT INTO t VALUES (1)")
        finally:
            conn.close()
        error = sql_error(syntax.value, "SELEC 1")
        assert isinstance(error, SqlError)
        assert (str(error), error.code) == ('near "SELEC": syntax error at offset 0: SQLITE_ERROR', "SQLITE_ERROR")
        error = sql_error(unique.value, "INSERT INTO t VALUES (1)")
        assert (str(error), error.code) == ("UNIQUE constraint failed: t.x: SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT")

    def test_an_error_without_a_code_keeps_its_message(self) -> None:
        """An exception without an SQLite code becomes an SqlError with its message and no code."""
        error = sql_error(ValueError("boom"), "SELECT 1")
        assert (str(error), error.code) == ("boom", None)


class TestBindings:
    def test_values_sqlite_binds(self) -> None:
        """bool binds as an int, bytearray and memoryview as bytes; native values are kept."""
        assert check_binding(True, 1) == 1 and type(check_binding(True, 1)) is int
        assert check_binding(bytearray(b"a"), 1) == b"a"
        assert check_binding(memoryview(b"ab"), 2) == b"ab"
        assert check_binding(None, 1) is None
        assert check_binding(1.5, 1) == 1.5

    def test_values_sqlite_cannot_bind(self) -> None:
        """Other types, lone surrogates and ints past 64 bits are refused, naming the binding."""
        with pytest.raises(TypeError, match="binding 3 is of type object"):
            check_binding(object(), 3)
        with pytest.raises(TypeError, match="binding 2 is a str with a lone surrogate at index 1"):
            check_binding("a\ud800", 2)
        with pytest.raises(OverflowError, match="binding 1: 9223372036854775808 does not fit"):
            check_binding(2**63, 1)
        assert check_binding(-(2**63), 1) == -(2**63)

    def test_named_parameters(self) -> None:
        """Named parameters bind by position, as a dict keyed by name; mixed ones stay a sequence."""
        assert named_parameters("SELECT ?, ?", (1, 2)) == (1, 2)
        assert named_parameters("SELECT :a, @b, :a, $c", (1, 2, 3)) == {"a": 1, "b": 2, "c": 3}
        assert named_parameters("SELECT :a, ?", (1, 2)) is None
