"""``ctx.storage.sql`` and ``ctx.storage.kv``: the synchronous APIs of SQLite-backed objects.

:class:`SqlStorage` runs the application's SQL on the object's own connection, the one that also
holds the ``_cf_KV`` table, so SQL and key-value writes share one implicit transaction: they commit
together at the end of the turn, are held behind the output gate together, roll back together when
the commit fails, and join the savepoints of ``transaction()`` / ``transaction_sync()``.
:class:`SyncKV` is the synchronous key-value API over the same table.

What production Cloudflare refuses is refused here too, with workerd's messages (its
``util/sqlite.c++`` and ``api/sql.c++``): an SQLite authorizer, installed on every connection of the
object through ``ObjectDatabase.on_open``, applies workerd's rules while ``db.user_sql`` is set
(only around the application's statements, so durable's own statements are never affected), and
``setlimit`` applies workerd's limits.

Python's ``sqlite3`` has no "prepare without running" and no ``sqlite3_stmt_readonly``, so whether
a statement writes is learnt from the authorizer, which SQLite calls while it compiles the
statement: a statement not known to write first runs outside the implicit transaction in "probe"
mode, where the first write action makes the authorizer refuse it; it is then run again inside
the transaction, and the host is told about the write. Reads therefore never open a transaction,
never hold the output gate and never create a database file. Python's statement cache skips the
authorizer on a cache hit, so what was learnt is kept per connection (see :class:`_Connection`).
"""

from __future__ import annotations

import functools
import re
import sqlite3
import sys
import warnings
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, Union, final

from ._aliases import camel_aliases, normalize_options
from ._codec import copy_as_dict, decode
from ._exceptions import SqlError
from ._sqlite import ObjectDatabase, connect
from ._storage import check_key, compile_range, encode_checked
from ._util import lone_surrogate_at

if TYPE_CHECKING:
    from ._storage import Storage, StorageHost

__all__ = ["SqlCursor", "SqlRow", "SqlStorage", "SqlValue", "SyncKV"]

SqlValue = Union[int, float, str, bytes, None]
"""A value SQLite returns: INTEGER as ``int``, REAL as ``float``, TEXT as ``str``, BLOB as ``bytes``."""

# -- Cloudflare's messages ------------------------------------------------------------------------

TRANSACTION_MESSAGE: Final = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)
NO_STATEMENT: Final = "SQL code did not contain a statement."
MULTI_PARAMETERS: Final = (
    "When executing multiple SQL statements in a single call, only the last statement can have parameters."
)
WRONG_BINDINGS: Final = "Wrong number of parameter bindings for SQL query."
NO_RESULTS: Final = "Expected exactly one result from SQL query, but got no results."
MULTIPLE_RESULTS: Final = "Expected exactly one result from SQL query, but got multiple results."
LIST_INVALIDATED: Final = (
    "kv.list() iterator was invalidated because a new call to kv.list() was started. Only one "
    "kv.list() iterator can exist at a time."
)

# -- limits -----------------------------------------------------------------------------------------

# workerd's sqlite3_limit() settings (util/sqlite.c++ setupSecurity), which follow the advice of
# sqlite.org/security.html. FUNCTION_ARG is workerd's 127 (SQLite's default), not the 32 the docs
# list: workerd keeps the default because json_object() needs long argument lists. LENGTH comes
# from Runtime(limits=...) (see _Connection.configure).
_SQL_LENGTH: Final = 100_000
"""Bytes of SQL SQLite compiles at once; exec() checks it against all the SQL it has not run yet."""

_VARIABLE_NUMBER: Final = 100

SQL_LIMITS: Final[tuple[tuple[int, int], ...]] = (
    (sqlite3.SQLITE_LIMIT_SQL_LENGTH, _SQL_LENGTH),
    (sqlite3.SQLITE_LIMIT_COLUMN, 100),
    (sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 100),
    (sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, 5),
    (sqlite3.SQLITE_LIMIT_VDBE_OP, 25_000),
    (sqlite3.SQLITE_LIMIT_FUNCTION_ARG, 127),
    (sqlite3.SQLITE_LIMIT_ATTACHED, 0),
    (sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
    (sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, _VARIABLE_NUMBER),
    (sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    (sqlite3.SQLITE_LIMIT_WORKER_THREADS, 0),
)

_RECORD_SLACK: Final = 64
"""Bytes allowed above ``Limits.sqlite_max_row_bytes`` in SQLITE_LIMIT_LENGTH.

The limit applies to whole records, and a ``_cf_KV`` record is its key and value plus a header of
a few bytes: a pair that passes ``encode_checked`` (key + value <= the limit) must still fit."""

_WRITES_REMEMBERED: Final = 4096
"""How many writing statements a connection remembers before it forgets them all (see
:meth:`_Connection.remember`)."""

# -- the authorizer's rules (workerd util/sqlite.c++ isAuthorized) --------------------------------

ALLOWED_FUNCTIONS: Final = frozenset(
    {
        # core functions (sqlite_version, sqlite_source_id, sqlite_compileoption_*, sqlite_offset
        # are left out on purpose: they reveal build details)
        "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
        "ifnull", "iif", "instr", "last_insert_rowid", "length", "like", "likelihood", "likely",
        "load_extension", "lower", "ltrim", "max_scalar", "min_scalar", "nullif", "octet_length",
        "printf", "quote", "random", "randomblob", "replace", "round", "rtrim", "sign", "soundex",
        "substr", "substring", "total_changes", "trim", "typeof", "unhex", "unicode", "unlikely",
        "upper", "zeroblob",
        # date and time
        "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
        "current_date", "current_time", "current_timestamp",
        # aggregates
        "avg", "count", "group_concat", "max", "min", "string_agg", "sum", "total",
        # window functions
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
        "first_value", "last_value", "nth_value",
        # math
        "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "cos", "cosh",
        "degrees", "exp", "floor", "ln", "log", "log2", "mod", "pi", "pow", "radians", "sin",
        "sinh", "sqrt", "tan", "tanh", "trunc",
        # JSON, including the -> and ->> operators
        "json", "jsonb", "json_array", "jsonb_array", "json_array_length", "json_extract",
        "jsonb_extract", "->", "->>", "json_insert", "jsonb_insert", "json_object",
        "jsonb_object", "json_patch", "jsonb_patch", "json_remove", "jsonb_remove",
        "json_replace", "jsonb_replace", "json_set", "jsonb_set", "json_type", "json_valid",
        "json_quote", "json_group_array", "jsonb_group_array", "json_group_object",
        "jsonb_group_object", "json_each", "json_tree",
        # FTS5 and R*Tree
        "match", "highlight", "bm25", "snippet", "rtreecheck",
        # used internally by ALTER TABLE
        "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test",
        "sqlite_drop_column", "sqlite_rename_quotefix",
    }
)  # fmt: skip

_NO_ARG, _BOOLEAN, _OBJECT, _OPTIONAL_OBJECT, _NUMBER, _NUMBER_OR_OBJECT = range(6)

ALLOWED_PRAGMAS: Final[dict[str, int]] = {
    # read only, no argument (page_size is refused, as by workerd, except to R*Tree: see _RTREE)
    "data_version": _NO_ARG,
    # switches, read or set
    "case_sensitive_like": _BOOLEAN,
    "foreign_keys": _BOOLEAN,
    "defer_foreign_keys": _BOOLEAN,
    "ignore_check_constraints": _BOOLEAN,
    "legacy_alter_table": _BOOLEAN,
    "recursive_triggers": _BOOLEAN,
    "reverse_unordered_selects": _BOOLEAN,
    # information about a table or index the application may access
    "foreign_key_check": _OPTIONAL_OBJECT,
    "foreign_key_list": _OBJECT,
    "index_info": _OBJECT,
    "index_list": _OBJECT,
    "index_xinfo": _OBJECT,
    "quick_check": _NUMBER_OR_OBJECT,
    "optimize": _NUMBER,
}
"""PRAGMAs the application may use, with the argument each takes. Also allowed: ``table_list``
(any), ``table_info`` and ``table_xinfo`` (of a table the application may access). Names are
compared as written, as workerd does: ``PRAGMA TABLE_INFO(t)`` is refused in production too."""

_VIRTUAL_TABLE_MODULES: Final = frozenset({"fts5", "fts5vocab", "rtree", "rtree_i32"})
_RTREE: Final = re.compile(r"(?is)(?:\s|;|--[^\n]*|/\*.*?\*/)*create\s+virtual\s+table\b.*?\busing\s+[\"'`\[]?rtree(?:_i32)?\b")
"""A statement creating an R*Tree table. R*Tree's constructor runs ``PRAGMA page_size`` itself,
which workerd refuses (so its R*Tree creation fails, although the docs list R*Tree as supported);
durable lets R*Tree read it while such a statement runs, and refuses it to the application."""
_BOOLEAN_WORDS: Final = ("true", "false", "yes", "no", "on", "off", "1", "0")
_INT = re.compile(r"[ \t\n\r\f\v]*[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_WHITESPACE: Final = " \t\n\r\f\v"

_OK: Final = sqlite3.SQLITE_OK
_DENY: Final = sqlite3.SQLITE_DENY

_WRITE_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_INDEX, sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER, sqlite3.SQLITE_DROP_TEMP_VIEW, sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_REINDEX, sqlite3.SQLITE_ANALYZE,
        sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE,
    }
)  # fmt: skip
"""Authorizer actions of statements that change the database (``sqlite3_stmt_readonly`` false)."""

_NAMED_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_INSERT, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_REINDEX, sqlite3.SQLITE_READ, sqlite3.SQLITE_UPDATE,
    }
)  # fmt: skip
_TWO_NAME_ACTIONS: Final = frozenset(
    {sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER}
)


def _allowed_name(name: str | None) -> bool:
    """Names starting ``_cf_`` (any case) are Cloudflare's own (``_cf_KV``, ``_cf_METADATA``)."""
    return name is None or len(name) < 4 or name[:4].lower() != "_cf_"


def _allowed_pragma(name: str | None, arg: str | None) -> bool:
    if name == "table_list":
        return True  # lists the reserved tables too; their existence is no secret, their data is
    if name == "table_info" or name == "table_xinfo":
        return arg is not None and _allowed_name(arg)
    sig = ALLOWED_PRAGMAS.get(name or "")
    if sig is None:
        return False
    if arg is None:
        return sig != _OBJECT
    if sig == _NO_ARG:
        return False
    if sig == _BOOLEAN:
        if len(arg) >= 2 and arg[0] in "'\"" and arg[-1] == arg[0]:
            arg = arg[1:-1]
        return arg.lower().startswith(_BOOLEAN_WORDS)  # workerd compares prefixes (strncasecmp)
    if sig == _OBJECT or sig == _OPTIONAL_OBJECT:
        return _allowed_name(arg)
    if sig == _NUMBER:
        number = _parse_int(arg)
        return number is not None and -(2**31) <= number < 2**31
    number = _parse_int(arg)  # _NUMBER_OR_OBJECT
    return (number is not None and 0 <= number < 2**32) or _allowed_name(arg)


def _parse_int(text: str) -> int | None:
    """The integer ``text`` spells in decimal or ``0x`` hex (kj's ``tryParseAs``), else ``None``."""
    if _INT.fullmatch(text) is None:
        return None
    text = text.strip(_WHITESPACE)
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    return sign * int(digits, 16 if digits[:2].lower() == "0x" else 10)


def authorized(action: int, arg1: str | None, arg2: str | None, dbname: str | None) -> bool:
    """Whether production Cloudflare lets application SQL perform ``action`` (workerd's rules).

    Transactions and savepoints are handled by the caller (they are refused with a message of
    their own).
    """
    if action == sqlite3.SQLITE_ALTER_TABLE or action == sqlite3.SQLITE_DETACH:
        # SQLite passes the database name first for these two; workerd swaps it back.
        arg1, arg2, dbname = arg2, None, arg1
    if dbname == "temp":
        return (action == sqlite3.SQLITE_READ or action == sqlite3.SQLITE_UPDATE) and _allowed_name(arg1)
    if dbname is not None and dbname != "main":
        return False  # attached databases
    if action == sqlite3.SQLITE_SELECT or action == sqlite3.SQLITE_RECURSIVE or action == sqlite3.SQLITE_ANALYZE:
        return True  # ANALYZE of everything (PRAGMA optimize) only writes statistics
    if action in _NAMED_ACTIONS or action == sqlite3.SQLITE_ALTER_TABLE:
        return _allowed_name(arg1)
    if action in _TWO_NAME_ACTIONS:
        return _allowed_name(arg1) and _allowed_name(arg2)
    if action == sqlite3.SQLITE_PRAGMA:
        return _allowed_pragma(arg1, arg2)
    if action == sqlite3.SQLITE_FUNCTION:
        return arg2 in ALLOWED_FUNCTIONS
    if action == sqlite3.SQLITE_CREATE_VTABLE or action == sqlite3.SQLITE_DROP_VTABLE:
        return arg2 is not None and arg2.lower() in _VIRTUAL_TABLE_MODULES and _allowed_name(arg1)
    # ATTACH, DETACH, TEMP objects (SQLite would put them in a second file), and anything else.
    return False


# -- a tokenizer, for what Python's sqlite3 does not expose ----------------------------------------

_ID: Final = r"A-Za-z0-9_$\u0080-\U0010ffff"
_TOKEN = re.compile(
    rf"""
      (?P<space>[ \t\n\f\r\v]+)
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<semi>;)
    | (?P<string>'[^']*(?:''[^']*)*(?:'|\Z))
    | (?P<quoted>"[^"]*(?:""[^"]*)*(?:"|\Z)|`[^`]*(?:``[^`]*)*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
    | (?P<blob>[xX]'[^']*(?:'|\Z))
    | (?P<variable>\?[0-9]*|[:@#][{_ID}]+|\$[{_ID}]+(?:::[{_ID}]+)*(?:\([^)]*\))?)
    | (?P<number>(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)[{_ID}]*)
    | (?P<word>[A-Za-z_\u0080-\U0010ffff][{_ID}]*)
    | (?P<op>->>|->|\|\||<=|>=|<>|!=|==|<<|>>|.)
    """,
    re.VERBOSE | re.DOTALL,
)
"""SQLite's tokens, as far as durable needs them: where statements end, where an error is."""

_SLOW_START: Final = frozenset([*" \t\n\r\f\v;-/", ""])
"""First characters that may start a comment, an empty statement or spaces (and the empty string)."""
_VACUUM_OR_OPTIMIZE = re.compile(r"(?is)[\s;]*(?:vacuum\b|pragma\s+(?:main\s*\.\s*)?optimize\b)")
_ALTER = re.compile(r"(?is)(?:\s|;|--[^\n]*|/\*.*?\*/)*alter\b")


def tokens(sql: str) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` for every token of ``sql``, spaces and comments included."""
    pos, n, match = 0, len(sql), _TOKEN.match
    while pos < n:
        m = match(sql, pos)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup
        assert kind is not None
        yield kind, pos, m.end()
        pos = m.end()


def first_statement(code: str) -> tuple[int, int] | None:
    """Where the first statement of ``code`` starts and ends, as ``sqlite3_prepare`` would see it.

    Returns ``(start of its first token, end)``, where ``end`` is just after the semicolon that
    ends it (``sqlite3.complete_statement`` decides, so a semicolon inside a ``CREATE TRIGGER``
    body does not end it) or the end of ``code``; ``None`` when ``code`` holds no statement
    (only spaces, comments and semicolons).
    """
    if code[:1] not in _SLOW_START:
        # The common case: one statement, with or without a final ";".
        semi = code.find(";")
        if semi < 0 or semi == len(code.rstrip(_WHITESPACE)) - 1:
            return 0, len(code)
    first = -1
    for kind, start, end in tokens(code):
        if kind == "space" or kind == "comment":
            continue
        if kind == "semi":
            if first >= 0 and sqlite3.complete_statement(code[:end]):
                return first, end
            continue  # a leading ";" (an empty statement), or one inside a trigger body
        if first < 0:
            first = start
    return None if first < 0 else (first, len(code))


def _unquote(text: str) -> str:
    if text[:1] in ("'", '"', "`") and len(text) >= 2 and text[-1] == text[0]:
        return text[1:-1].replace(text[0] * 2, text[0])
    if text[:1] == "[" and text[-1:] == "]":
        return text[1:-1]
    return text


def _words(sql: str) -> list[tuple[str, int, int]]:
    return [(sql[s:e], s, e) for kind, s, e in tokens(sql) if kind != "space" and kind != "comment"]


def _renames_to_reserved(sql: str) -> bool:
    """Whether ``sql`` is ``ALTER TABLE ... RENAME TO _cf_...``.

    workerd's patched SQLite shows the new name to the authorizer; stock SQLite does not, so
    the one refusal that needs it is checked here, from the tokens.
    """
    words = [_unquote(w) for w, _, _ in _words(sql)]
    upper = [w.upper() for w in words]
    for i in range(len(upper) - 2):
        if upper[i] == "RENAME" and upper[i + 1] == "TO":
            return not _allowed_name(words[i + 2])
    return False


def _utf8_offset(sql: str, index: int) -> int:
    return len(sql[:index].encode("utf-8", "surrogatepass"))


_SYNTAX = re.compile(r'near "(.*)": syntax error|unrecognized token: "(.*)"', re.DOTALL)
_NAMED_ERROR = re.compile(
    r"no such column: (?P<col>.+)|ambiguous column name: (?P<amb>.+)|no such function: (?P<fn>.+)"
    r"|not authorized to use function: (?P<auth>.+)|wrong number of arguments to function (?P<args>.+)\(\)"
    r"|misuse of aggregate function (?P<agg>.+)\(\)|table (?P<table>.+) already exists",
    re.DOTALL,
)


def error_offset(sql: str, message: str) -> int | None:
    """The byte offset SQLite's ``sqlite3_error_offset`` would give for ``message``, if any.

    Python's sqlite3 does not expose it. Syntax errors are located exactly: the error token is
    the last token of the shortest prefix of ``sql`` that fails the same way, found by binary
    search, compiling prefixes under ``EXPLAIN`` (so nothing runs) on an empty database. The
    first parameter past the limit is found by numbering parameters as SQLite does. Errors that name a
    column, function or table point, as SQLite's do, at the first token with that name (SQLite
    records the exact expression; the first occurrence is nearly always it).
    """
    m = _SYNTAX.fullmatch(message)
    if m is not None:
        return _syntax_error_offset(sql, message, m.group(1) if m.group(1) is not None else m.group(2))
    if message == "too many SQL variables" or message.startswith("variable number must be between ?1 and ?"):
        return _variable_error_offset(sql, message)
    m = _NAMED_ERROR.fullmatch(message)
    if m is None:
        return None
    kind = m.lastgroup
    name = m.group(kind or 0)
    if kind == "col" and "." in name:
        name = name.split(".")[0]
    words = _words(sql)
    if kind == "col" and words and words[0][0].upper() == "UPDATE":
        return None  # an unknown column assigned by SET has no offset in SQLite
    for word, start, _ in words:
        if _unquote(word).lower() == name.lower():
            return _utf8_offset(sql, start)
    return None


def _numbered_variables(sql: str) -> Iterator[tuple[str, int, int]]:
    """Each parameter of ``sql`` as SQLite numbers them: ``(text, start offset, count so far)``.

    ``?`` takes the next number; ``?NNN`` takes NNN (the count becomes the largest number seen);
    a name (``:x``, ``@x``, ``$x``) takes the next number where it first appears and is not
    yielded again after that.
    """
    seen: set[str] = set()
    count = 0
    for kind, start, end in tokens(sql):
        if kind != "variable":
            continue
        text = sql[start:end]
        if text == "?":
            count += 1
        elif text[0] == "?":
            count = max(count, int(text[1:]))
        elif text in seen:
            continue
        else:
            seen.add(text)
            count += 1
        yield text, start, count


def _variable_error_offset(sql: str, message: str) -> int | None:
    """The first parameter SQLite numbers past the limit (or, for ``?NNN``, out of range)."""
    limit = _VARIABLE_NUMBER
    for text, start, count in _numbered_variables(sql):
        if text != "?" and text[0] == "?":
            if not 1 <= int(text[1:]) <= limit:
                return _utf8_offset(sql, start) if message != "too many SQL variables" else None
            continue
        if count > limit and message == "too many SQL variables":
            return _utf8_offset(sql, start)
    return None


def _syntax_error_offset(sql: str, message: str, token: str) -> int | None:
    spans = [(s, e) for _, s, e in _words(sql)]
    if not spans:
        return None

    # Compile only, on an empty database: under EXPLAIN a statement is compiled and its program
    # listed, never run. (A statement that is an EXPLAIN already runs nothing either.)
    explain = "" if sql[spans[0][0] : spans[0][1]].upper() == "EXPLAIN" else "EXPLAIN "
    probe = sqlite3.connect(":memory:", isolation_level=None)

    def fails(k: int) -> bool:
        try:
            probe.execute(explain + sql[: spans[k - 1][1]]).close()
        except (sqlite3.Error, sqlite3.Warning) as exc:
            return str(exc) == message
        return False

    try:
        lo, hi = 1, len(spans)
        if not fails(hi):
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if fails(mid):
                hi = mid
            else:
                lo = mid + 1
    finally:
        probe.close()
    start, end = spans[lo - 1]
    if sql[start:end] != token and not sql[start:].startswith(token):
        return None
    return _utf8_offset(sql, start)


_PRIMARY_CODES: Final[dict[int, str]] = {
    1: "SQLITE_ERROR", 2: "SQLITE_INTERNAL", 3: "SQLITE_PERM", 4: "SQLITE_ABORT", 5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY", 9: "SQLITE_INTERRUPT",
    10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND", 13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN", 15: "SQLITE_PROTOCOL", 16: "SQLITE_EMPTY", 17: "SQLITE_SCHEMA",
    18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH", 21: "SQLITE_MISUSE",
    22: "SQLITE_NOLFS", 23: "SQLITE_AUTH", 24: "SQLITE_FORMAT", 25: "SQLITE_RANGE",
    26: "SQLITE_NOTADB", 27: "SQLITE_NOTICE", 28: "SQLITE_WARNING",
}  # fmt: skip
"""SQLite's primary result codes, which Cloudflare names at the end of its messages."""


def sql_error(exc: BaseException, sql: str) -> SqlError:
    """Wrap an ``sqlite3`` error as Cloudflare words it: ``<message>[ at offset N]: SQLITE_<CODE>``.

    The code is the primary one (``FOREIGN KEY constraint failed: SQLITE_CONSTRAINT``, not
    ``SQLITE_CONSTRAINT_FOREIGNKEY``); it is also the error's ``code``.
    """
    extended = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(extended, int):
        return SqlError(str(exc))
    primary = extended & 0xFF
    name = _PRIMARY_CODES.get(primary, f"SQLITE_UNKNOWN_ERROR_CODE({primary})")
    message = str(exc)
    offset = error_offset(sql, message) if primary == 1 else None
    if offset is not None:
        message = f"{message} at offset {offset}"
    return SqlError(f"{message}: {name}", code=name)


# -- bindings ---------------------------------------------------------------------------------------

_NATIVE: Final = frozenset({int, float, str, bytes, type(None)})
"""Binding types sqlite3 binds as they are (out-of-range ints and lone surrogates it refuses)."""

_NAMED_NEED_A_DICT: bool = sys.version_info >= (3, 12)
"""Python 3.12 deprecates (3.14 refuses) binding named placeholders from a sequence."""

_NUMBERED_PARAMETER: Final = re.compile(r"\?[0-9]")
"""``?NNN``, which early Python 3.12 releases took for a named placeholder (and warned about)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _binding(value: object, position: int) -> SqlValue:
    t = type(value)
    if t is str:
        assert isinstance(value, str)
        if not value.isascii() and (index := lone_surrogate_at(value)) is not None:
            raise TypeError(
                f"sql.exec() binding {position} is a str with a lone surrogate at index {index}; "
                "SQL text must be valid Unicode"
            )
        return value
    if t is float or t is bytes or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, int):
        # bool binds as INTEGER 1 / 0: SQLite has no boolean type (JavaScript true would not bind).
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise OverflowError(f"sql.exec() binding {position}: {value} does not fit in a 64-bit SQLite INTEGER")
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return _binding(str(value), position)
    if isinstance(value, float):
        return float(value)
    raise TypeError(
        f"sql.exec() binding {position} is of type {t.__qualname__}, which SQL cannot bind: "
        "use None, int, float, str or bytes (bool binds as 1 or 0)"
    )


def _named_parameters(sql: str, params: tuple[SqlValue, ...]) -> tuple[SqlValue, ...] | dict[str, SqlValue] | None:
    """On Python 3.12+, the bindings for ``sql`` in the form ``sqlite3`` accepts without warning.

    Cloudflare binds by position, also to ``:name``, ``@name`` and ``$name`` parameters. Python
    3.12 deprecates a sequence for named placeholders (3.14 refuses it), so when every parameter
    has a name the bindings are passed as a dict keyed by SQLite's numbering. ``None``: pass the
    sequence, with the deprecation warning silenced.
    """
    names: dict[int, str] = {}
    named = False
    count = 0
    for text, _, count in _numbered_variables(sql):
        if text == "?":
            continue
        if text[0] == "?":
            names.setdefault(int(text[1:]), text)
        else:
            named = True
            names[count] = text
    if not named:
        return params
    keys = {index: name[1:] for index, name in names.items()}
    if count != len(params) or len(keys) != count or len(set(keys.values())) != count:
        return None
    return {keys[i + 1]: value for i, value in enumerate(params)}


# -- one connection's SQL state ---------------------------------------------------------------------


_COUNTED_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_ALTER_TABLE,
    }
)  # fmt: skip
"""Authorizer actions that decide how many b-tree rows a statement writes (see ``rows_written``)."""

_DML_ACTIONS: Final = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
_SCHEMA_ACTIONS: Final = _WRITE_ACTIONS - _DML_ACTIONS

_AUTOINCREMENT = re.compile(r"(?i)\bautoincrement\b")
_ROWID_NAMES: Final = frozenset({"rowid", "oid", "_rowid_"})
_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_PARTIAL = re.compile(r"(?is)\)\s*WHERE\b(.*)$")


@final
class _TableShape:
    """What decides a table's index writes: its secondary indexes and its key columns.

    ``indexes`` holds, per index, the columns it covers (lower case; for an index on an
    expression, every word of its definition); a WITHOUT ROWID table's primary key is the table
    itself, not an index. ``key``: the columns whose change rewrites every index (the
    rowid, its alias, a WITHOUT ROWID table's primary key).
    """

    __slots__ = ("autoincrement", "indexes", "key")

    def __init__(self, indexes: list[frozenset[str]], key: frozenset[str], autoincrement: bool) -> None:
        self.indexes = indexes
        self.key = key
        self.autoincrement = autoincrement

    @classmethod
    def read(cls, conn: sqlite3.Connection, table: str, tag: str) -> _TableShape:
        row = conn.execute(
            f"SELECT sql FROM sqlite_master WHERE type = 'table' AND lower(name) = ? -- {tag}", (table,)
        ).fetchone()
        autoincrement = row is not None and row[0] is not None and _AUTOINCREMENT.search(row[0]) is not None
        without_rowid = conn.execute(
            f"SELECT wr FROM pragma_table_list WHERE lower(name) = ? AND schema = 'main' -- {tag}", (table,)
        ).fetchone()
        pk = [
            (r[1].lower(), r[2].upper())
            for r in conn.execute(f"SELECT pk, name, type FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk -- {tag}", (table,))
        ]
        wr = bool(without_rowid and without_rowid[0])
        key = set(_ROWID_NAMES) if not wr else set()
        if wr or (len(pk) == 1 and pk[0][1] == "INTEGER"):
            key.update(name for name, _ in pk)  # the rowid's alias, or the WITHOUT ROWID key
        indexes: list[frozenset[str]] = []
        for _, name, _, origin, _ in conn.execute(f"SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?) -- {tag}", (table,)):
            if wr and origin == "pk":
                continue
            columns = [r[0] for r in conn.execute(f"SELECT name FROM pragma_index_info(?) -- {tag}", (name,))]
            if any(c is None for c in columns):
                # An index on an expression: SQLite rewrites it when a column it names changes.
                row = conn.execute(f"SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ? -- {tag}", (name,)).fetchone()
                words = _WORD.findall(row[0]) if row is not None and row[0] is not None else []
                indexes.append(frozenset(w.lower() for w in words))
            else:
                indexes.append(frozenset(c.lower() for c in columns))
        return cls(indexes, frozenset(key), autoincrement)


class _ProbeHit(Exception):
    """A statement run as a read turned out to write (its first write action was refused)."""


class _Connection:
    """The SQL side of one object's database: its authorizer, limits and what it learnt.

    One instance per :class:`ObjectDatabase`, kept in ``db.on_open`` (so every connection the
    database opens is configured) and found there again by :func:`_state_of`.
    """

    def __init__(self, db: ObjectDatabase, row_limit: int | None) -> None:
        self.db = db
        self.row_limit = row_limit
        self.writes: set[str] = set()
        """Texts of the statements seen writing on the current connection (see remember())."""
        self._conn: sqlite3.Connection | None = None
        self.probe = False
        self.trusted = False
        self.saw_write = False
        self.probe_hit = False
        self.transaction = False
        self.statement = ""
        """The application's statement being run (R*Tree may read ``page_size`` while it creates one)."""
        self.compiled = False
        """Whether SQLite compiled the current statement (so the authorizer saw its actions)."""
        self.targets: list[tuple[int, str | None, str | None, str | None]] = []
        """The writes the authorizer saw while compiling the current statement (for rows_written)."""
        self.plans: dict[str, tuple[tuple[int, str | None, str | None, str | None], ...]] = {}
        """Those writes, per statement text, for when the statement runs again from the cache."""
        self.tables: dict[str, _TableShape] = {}
        """Index shapes of tables, valid for ``tables_epoch``."""
        self.tables_epoch = -1
        self.costs: dict[str, tuple[int, int, int]] = {}
        """Per DML statement text: (schema epoch, rows per changed row, extra rows when any changed)."""
        self.per_row = 1
        """b-tree rows the last statement writes per changed row (the row and its index entries)."""
        self.switches: list[tuple[str, str]] = []
        """Switch PRAGMAs (``foreign_keys = OFF``...) the current statement sets."""
        self.replay: list[tuple[str, str]] = []
        """Switches set on the scratch database, to set again on the real one when it opens."""
        self._scratch: sqlite3.Connection | None = None

    def __call__(self, conn: sqlite3.Connection) -> None:
        """The ``on_open`` hook: configure a connection the database just opened."""
        self.configure(conn)
        self.writes.clear()
        self._conn = conn
        replay, self.replay = self.replay, []
        for name, value in replay:  # names come from ALLOWED_PRAGMAS: safe to splice
            quoted = value.replace("'", "''")
            conn.execute(f"PRAGMA {name} = '{quoted}' -- {self.db._tag}")

    def configure(self, conn: sqlite3.Connection) -> None:
        """Install workerd's authorizer and limits on ``conn``."""
        conn.set_authorizer(self.authorize)
        for limit, value in SQL_LIMITS:
            conn.setlimit(limit, value)
        if self.row_limit is not None:
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.row_limit + _RECORD_SLACK)

    def scratch(self) -> sqlite3.Connection:
        """An empty in-memory database standing in for one that does not exist yet.

        Reading an object that has no database file must not create one; a read of an empty
        database gives the same result on any empty database. A statement that writes is refused
        here (probe mode) and then run on the real database, which creates it. Switches set here
        (``PRAGMA recursive_triggers = ON``...) are set again on the real database when it opens.
        """
        if self._scratch is None:
            conn = connect(":memory:")  # the same pragmas as the real database (foreign_keys...)
            self.configure(conn)
            weakref.finalize(self, conn.close)
            self._scratch = conn
        return self._scratch

    def authorize(self, action: int, arg1: str | None, arg2: str | None, dbname: str | None, source: str | None) -> int:
        """The SQLite authorizer: workerd's rules for the application's statements only."""
        if not self.db.user_sql:
            return _OK  # durable's own statements
        self.compiled = True
        if action in _COUNTED_ACTIONS:
            self.targets.append((action, arg1, arg2, source))
        if action in _SCHEMA_ACTIONS:
            self.db.schema_epoch += 1  # the index shapes cached for rows_written may change
        try:
            if action == sqlite3.SQLITE_TRANSACTION or action == sqlite3.SQLITE_SAVEPOINT:
                self.transaction = True
                return _DENY
            if action == sqlite3.SQLITE_PRAGMA and arg1 == "page_size" and arg2 is None and _RTREE.match(self.statement):
                return _OK  # R*Tree's own read, while a CREATE VIRTUAL TABLE ... USING rtree runs
            if not self.trusted and not authorized(action, arg1, arg2, dbname):
                return _DENY
            if action == sqlite3.SQLITE_PRAGMA and arg1 is not None and arg2 is not None:
                if ALLOWED_PRAGMAS.get(arg1) == _BOOLEAN:
                    self.switches.append((arg1, arg2))
            if action in _WRITE_ACTIONS:
                self.saw_write = True
                if self.probe:
                    self.probe_hit = True
                    return _DENY
            return _OK
        except Exception:  # pragma: no cover - an exception would be swallowed by sqlite3 anyway
            return _DENY

    def rows_written(
        self, conn: sqlite3.Connection, text: str, plan: tuple[tuple[int, str | None, str | None, str | None], ...], changes: int
    ) -> int:
        """b-tree rows a statement wrote (see ``_rows_written``), from a per-statement cache for DML."""
        cost = self.costs.get(text)
        if cost is not None and cost[0] == self.db.schema_epoch:
            self.per_row = cost[1]
            return changes * cost[1] + (cost[2] if changes else 0)
        written = self._rows_written(conn, plan, changes)
        if changes and self.per_row >= 1 and plan and all(a[0] in _DML_ACTIONS for a in plan):
            if len(self.costs) > _WRITES_REMEMBERED:
                self.costs.clear()
            self.costs[text] = (self.db.schema_epoch, self.per_row, written - changes * self.per_row)
        return written

    def _rows_written(self, conn: sqlite3.Connection, plan: tuple[tuple[int, str | None, str | None, str | None], ...], changes: int) -> int:
        """b-tree rows a statement wrote, as workerd counts them (its patched SQLite counts every
        row and index entry inserted, every row deleted, and the rows of ``sqlite_master``).

        Python's sqlite3 only reports changed rows (``total_changes``), so the rest is derived
        from what the statement does (``plan``, the authorizer's actions) and the table's indexes:
        an INSERT also writes one entry per index, an UPDATE one per index on a changed column
        (every index when the rowid or primary key changes), a DELETE none. CREATE TABLE and
        CREATE VIEW write 2 rows of ``sqlite_master``, CREATE INDEX 1 and an entry per row
        indexed, CREATE TRIGGER and ALTER TABLE 1, DROP 0; an AUTOINCREMENT table's counter is
        one more row. Statements that fire triggers or write several tables count changed rows
        only, and partial indexes count as full ones (see docs/sql.md).
        """
        fixed = 0
        tables: dict[str, tuple[bool, set[str]]] = {}
        mixed = False
        for action, arg1, arg2, source in plan:
            if action == sqlite3.SQLITE_CREATE_TABLE or action == sqlite3.SQLITE_CREATE_VIEW:
                fixed += 2
            elif action == sqlite3.SQLITE_CREATE_INDEX:
                if arg1 is not None and arg1.lower().startswith("sqlite_autoindex_"):
                    continue  # a UNIQUE or PRIMARY KEY constraint's index, made with its table
                fixed += 1 + (self._count(conn, arg1, arg2) if arg1 is not None and arg2 is not None else 0)
            elif action == sqlite3.SQLITE_CREATE_TRIGGER or action == sqlite3.SQLITE_ALTER_TABLE:
                fixed += 1
            elif arg1 is not None and not arg1.lower().startswith("sqlite_"):
                if source is not None:
                    mixed = True  # written by a trigger
                inserted, columns = tables.setdefault(arg1.lower(), (False, set()))
                if action == sqlite3.SQLITE_INSERT:
                    tables[arg1.lower()] = (True, columns)
                elif action == sqlite3.SQLITE_UPDATE and arg2 is not None:
                    columns.add(arg2.lower())
        if fixed or mixed or len(tables) != 1 or not changes:
            return changes + fixed
        ((table, (inserted, columns)),) = tables.items()
        shape = self._shape(conn, table)
        if shape is None:
            return changes
        if inserted:
            entries = len(shape.indexes)
        elif columns:
            if columns & shape.key:
                entries = len(shape.indexes)
            else:
                entries = sum(1 for index in shape.indexes if index & columns)
        else:
            entries = 0  # DELETE: workerd does not count the index entries removed
        self.per_row = 1 + entries
        return changes * (1 + entries) + (1 if inserted and shape.autoincrement else 0)

    def _count(self, conn: sqlite3.Connection, index: str, table: str) -> int:
        """Entries of a new index: the table's rows (those its WHERE selects, for a partial index)."""
        quoted = '"' + table.replace('"', '""') + '"'
        tag = self.db._tag
        try:
            row = conn.execute(f"SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ? -- {tag}", (index,)).fetchone()
            where = _PARTIAL.search(row[0]) if row is not None and row[0] is not None else None
            condition = f" WHERE {where.group(1)}" if where is not None else ""
            count = conn.execute(f"SELECT count(*) FROM {quoted}{condition} -- {tag}").fetchone()
        except sqlite3.Error:
            return 0
        return int(count[0])

    def _shape(self, conn: sqlite3.Connection, table: str) -> _TableShape | None:
        """The indexes of ``table`` (cached until the schema may have changed)."""
        if self.tables_epoch != self.db.schema_epoch:
            self.tables.clear()
            self.tables_epoch = self.db.schema_epoch
        shape = self.tables.get(table)
        if shape is None:
            try:
                shape = _TableShape.read(conn, table, self.db._tag)
            except sqlite3.Error:
                return None
            self.tables[table] = shape
        return shape

    def remember(self, sql: str) -> None:
        """Record that ``sql`` writes, if the authorizer saw it write.

        Python's statement cache runs a statement again without compiling it, so without calling
        the authorizer: a writing statement run again in probe mode would not be caught, and would
        run outside the implicit transaction. Every statement that compiled while writing is
        therefore remembered, and goes straight to the transaction the next time. (Reads need no
        record: a read run again is still a read.) Past the bound the record is dropped and every
        compiled statement of the connection is expired (setting the authorizer does that), so
        each is compiled, and authorized, again before it next runs.
        """
        if not self.saw_write:
            return
        writes = self.writes
        writes.add(sql)
        if len(writes) > _WRITES_REMEMBERED:
            writes.clear()
            if self._conn is not None:
                self._conn.set_authorizer(self.authorize)


def _state_of(db: ObjectDatabase, row_limit: int | None) -> _Connection:
    for hook in db.on_open:
        if isinstance(hook, _Connection):
            return hook
    state = _Connection(db, row_limit)
    db.on_open.append(state)
    if db.is_open:
        conn = db.read_conn()
        assert conn is not None
        state(conn)
    return state


# -- rows and cursors -------------------------------------------------------------------------------

_lenient_text: Final = functools.partial(str, encoding="utf-8", errors="replace")
"""How the application's SQL reads TEXT: bytes that are not valid UTF-8 (``CAST(x'ff' AS TEXT)``,
text written by another tool) read back with U+FFFD in their place, as in workerd, instead of
making the row unreadable. Set on the connection only while the application's SQL runs or is
read, so durable's own statements keep sqlite3's fast path."""


@final
class SqlRow(dict[str, Any]):
    """One result row: a ``dict`` of column name to value, whose columns are also attributes.

    ``row["x"]``, ``row.x``, ``dict(row)`` and ``row.to_py()`` (a plain ``dict``) all work. When
    column names repeat (``SELECT *`` over a join) the last column wins, as on Cloudflare. A
    column named like a ``dict`` method (``keys``, ``items``...) is reached as ``row["keys"]``.
    Values are typed ``Any`` for convenience; at run time they are ``SqlValue`` values. Rows cross
    RPC and storage as plain dicts (structured clone drops the class, as Cloudflare's does).
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the row has no column {name!r}") from None

    def to_py(self) -> dict[str, Any]:
        """The row as a plain ``dict``."""
        return dict(self)

    def __repr__(self) -> str:
        return f"SqlRow({dict.__repr__(self)})"


copy_as_dict(SqlRow)


@final
@camel_aliases
class SqlCursor:
    """The result of ``sql.exec()``: an iterator over the rows of its (last) statement.

    The statement's first step already ran inside ``exec()``; the rest runs as rows are taken.
    ``for row in cursor``, ``next(cursor)``, ``to_array()``, ``one()`` and ``raw()`` all consume
    the same stream, each continuing where another stopped. Consume a cursor before the next
    ``await``: like Cloudflare's, it gives no snapshot isolation across other events.
    """

    __slots__ = ("_cur", "_names", "_per_row", "_read", "_sql", "_storage", "_written")

    def __init__(self, storage: SqlStorage, cur: sqlite3.Cursor | None, sql: str, written: int) -> None:
        self._storage = storage
        self._cur = cur
        self._sql = sql
        self._names: list[str] = [d[0] for d in cur.description] if cur is not None and cur.description else []
        self._read = 0
        self._written = written
        self._per_row = storage._state.per_row

    def __repr__(self) -> str:
        state = "done" if self._cur is None else "open"
        return f"<durable.SqlCursor {state} columns={self._names!r} rows_read={self._read} rows_written={self._written}>"

    @property
    def column_names(self) -> list[str]:
        """The result's column names, in order (repeats included)."""
        return list(self._names)

    @property
    def rows_read(self) -> int:
        """Rows read so far. Python's sqlite3 cannot see rows SQLite scanned, so this counts the
        rows returned (Cloudflare counts every row scanned, for billing)."""
        return self._read

    @property
    def rows_written(self) -> int:
        """Rows inserted, updated or deleted so far by the statement, triggers included."""
        return self._written

    def _fetch(self, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` more rows (all of them for -1); the cursor closes once they run out."""
        cur = self._cur
        if cur is None:
            return []
        storage = self._storage
        storage._host.check_live(storage._gen)
        db = storage._db
        conn = cur.connection
        before = conn.total_changes
        db.user_sql = True
        conn.text_factory = _lenient_text
        try:
            if limit == 1:
                row = cur.fetchone()
                rows: list[tuple[Any, ...]] = [] if row is None else [row]
            elif limit < 0:
                rows = cur.fetchall()
            else:
                rows = cur.fetchmany(limit)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            self._close()
            raise sql_error(exc, self._sql) from exc
        except MemoryError as exc:
            self._close()
            raise SqlError("out of memory: SQLITE_NOMEM", code="SQLITE_NOMEM") from exc
        finally:
            db.user_sql = False
            conn.text_factory = str
            self._written += (conn.total_changes - before) * self._per_row
        if len(rows) != limit:
            self._close()
        self._read += len(rows)
        return rows

    def _close(self) -> None:
        cur, self._cur = self._cur, None
        if cur is not None:
            cur.close()

    def __iter__(self) -> SqlCursor:
        return self

    def __next__(self) -> SqlRow:
        rows = self._fetch(1)
        if not rows:
            raise StopIteration
        return SqlRow(zip(self._names, rows[0]))

    def to_array(self) -> list[SqlRow]:
        """Every remaining row, as a list."""
        names = self._names
        return [SqlRow(zip(names, row)) for row in self._fetch(-1)]

    def one(self) -> SqlRow:
        """The one row of the result; raises ``SqlError`` if there are none or several.

        It consumes the cursor.
        """
        rows = self._fetch(2)
        if not rows:
            raise SqlError(NO_RESULTS)
        if len(rows) > 1:
            self._close()
            raise SqlError(MULTIPLE_RESULTS)
        return SqlRow(zip(self._names, rows[0]))

    def raw(self) -> Iterator[list[SqlValue]]:
        """An iterator of rows as lists of values, over the same stream as the cursor."""
        return _RawIterator(self)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        toArray = to_array
        columnNames = column_names
        rowsRead = rows_read
        rowsWritten = rows_written


@final
class _RawIterator:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: SqlCursor) -> None:
        self._cursor = cursor

    def __iter__(self) -> _RawIterator:
        return self

    def __next__(self) -> list[SqlValue]:
        rows = self._cursor._fetch(1)
        if not rows:
            raise StopIteration
        return list(rows[0])

    def to_array(self) -> list[list[SqlValue]]:
        """Every remaining row, as lists of values."""
        return [list(row) for row in self._cursor._fetch(-1)]


# -- the SQL API ------------------------------------------------------------------------------------


@final
@camel_aliases
class SqlStorage:
    """``ctx.storage.sql``: SQL on the object's private SQLite database (SQLite-backed objects).

    Example::

        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)")
        sql.exec("INSERT INTO users (name) VALUES (?)", "Ada")
        for row in sql.exec("SELECT id, name FROM users"):
            print(row.id, row["name"])
    """

    __slots__ = ("_db", "_gen", "_host", "_state", "_storage")

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._host: StorageHost = storage._host
        self._gen: int = storage._gen
        self._db: ObjectDatabase = storage._db
        self._state = _state_of(self._db, self._host.limits.sqlite_max_row_bytes)

    def __repr__(self) -> str:
        return "<durable.SqlStorage>"

    def exec(self, query: str, /, *bindings: Any) -> SqlCursor:
        """Run ``query`` now and return a cursor over the results of its last statement.

        ``query`` may hold several statements separated by ``;``: each runs in turn (earlier ones
        to their first step, which completes any write), and only the last may have parameters.
        ``bindings`` fill its ``?`` (or ``?NNN``, ``:name``...) parameters by position: ``None``,
        ``int``, ``float``, ``str``, ``bytes``/``bytearray``/``memoryview``; ``bool`` binds as 1 or 0.

        Writes join the object's implicit transaction: they commit at the end of the turn with
        every other write, whether or not the cursor is read.

        Raises:
            SqlError: SQLite refused the statement (``...: SQLITE_<CODE>``), or Cloudflare would:
                empty SQL, a wrong number of bindings, parameters before the last statement,
                ``BEGIN``/``SAVEPOINT``, reserved ``_cf_`` names, PRAGMAs and functions outside
                the allow-lists, ATTACH, TEMP objects, most virtual tables.
            TypeError: a binding of another type; OverflowError: an int outside 64 bits.
        """
        return self._exec(query, bindings, trusted=False)

    def _exec(self, query: str, bindings: tuple[Any, ...], *, trusted: bool) -> SqlCursor:
        self._host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("sql.exec()")  # another event's transaction() is running
        if type(query) is not str:
            raise TypeError(f"sql.exec() takes the SQL as a str, not {type(query).__name__}")
        if (index := lone_surrogate_at(query)) is not None:
            raise TypeError(f"sql.exec() SQL has a lone surrogate at index {index}; it must be valid Unicode")
        db = self._db
        if trusted or db.kv_pending:
            # SQL without the rules may read _cf_KV, and any SQL may list it in sqlite_master: as
            # in workerd, it exists from the first key-value write on. Buffered writes go there.
            db.spill()
            if db.in_transaction:
                self._host.wrote(True)  # the table may be new: commit it at the end of the turn
        params: tuple[SqlValue, ...] = bindings  # checked by sqlite3 as it binds (see _attempt)
        for value in bindings:
            if type(value) not in _NATIVE:
                params = tuple(_binding(value, i) for i, value in enumerate(bindings, 1))
                break
        code = query
        while True:
            # workerd hands SQLite all the SQL not yet run, so the length limit applies to it.
            if len(code) > _SQL_LENGTH // 4 and len(code.encode("utf-8", "surrogatepass")) > _SQL_LENGTH:
                raise SqlError("statement too long: SQLITE_TOOBIG", code="SQLITE_TOOBIG")
            bounds = first_statement(code)
            if bounds is None:
                raise SqlError(NO_STATEMENT)
            end = bounds[1]
            sql = code[:end]
            rest = code[end:].lstrip(_WHITESPACE)
            if not rest:
                cur, written = self._run(sql, params, True, trusted)
                return SqlCursor(self, cur, sql, written)
            cur, _ = self._run(sql, (), False, trusted)
            cur.close()
            code = rest

    def _run(self, sql: str, params: tuple[SqlValue, ...], last: bool, trusted: bool) -> tuple[sqlite3.Cursor, int]:
        """Prepare ``sql`` and take its first step, on the right connection, in the right mode."""
        db = self._db
        state = self._state
        if trusted:
            # A statement authorized without the rules must never be reused, from Python's
            # statement cache, by the application: give it a text of its own.
            text = f"{sql}\n-- durable.testing.query {db._tag}"
        else:
            text = sql
            if _ALTER.match(sql) and _renames_to_reserved(sql):
                raise SqlError("not authorized: SQLITE_AUTH", code="SQLITE_AUTH")
        if text in state.writes or _VACUUM_OR_OPTIMIZE.match(sql):
            # (VACUUM and PRAGMA optimize write while they run, where the authorizer cannot stop them)
            conn = db.write_conn()
            self._host.wrote(True)
            return self._attempt(conn, sql, text, params, last, False, trusted)
        if db.in_transaction:
            return self._attempt(db.write_conn(), sql, text, params, last, False, trusted)
        conn = db.read_conn() or state.scratch()
        try:
            return self._attempt(conn, sql, text, params, last, True, trusted)
        except _ProbeHit:
            conn = db.write_conn()
            self._host.wrote(True)
            return self._attempt(conn, sql, text, params, last, False, trusted)

    def _attempt(
        self, conn: sqlite3.Connection, sql: str, text: str, params: tuple[SqlValue, ...], last: bool, probe: bool, trusted: bool
    ) -> tuple[sqlite3.Cursor, int]:
        """Run ``text`` (``sql``, perhaps marked) to its first step; ``probe``: refuse any write."""
        db = self._db
        state = self._state
        bound: tuple[SqlValue, ...] | dict[str, SqlValue] | None = params
        if params and _NAMED_NEED_A_DICT and ("$" in sql or ":" in sql or "@" in sql):
            bound = _named_parameters(sql, params)
        scratch = conn is state._scratch
        before = conn.total_changes
        state.probe = probe
        state.trusted = trusted
        state.saw_write = state.probe_hit = state.transaction = False
        state.statement = sql
        state.compiled = False
        if state.targets:
            state.targets = []
        if state.switches:
            state.switches = []
        db.user_sql = True
        conn.text_factory = _lenient_text
        if bound is params and _NAMED_NEED_A_DICT and "?" in sql and _NUMBERED_PARAMETER.search(sql):
            bound = None  # ?NNN binds by position; Python 3.12.0-3.12.x warns that it is "named"
        try:
            if bound is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    cur = conn.execute(text, params)
            else:
                cur = conn.execute(text, bound)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            if state.probe_hit:
                raise _ProbeHit from None
            if state.transaction:
                raise SqlError(TRANSACTION_MESSAGE) from exc
            if isinstance(exc, sqlite3.ProgrammingError) and str(exc).startswith("Incorrect number of bindings"):
                raise SqlError(WRONG_BINDINGS if last else MULTI_PARAMETERS) from exc
            raise sql_error(exc, sql) from exc
        except MemoryError as exc:
            # sqlite3 turns SQLITE_NOMEM into MemoryError. It is what SQLite returns for a
            # statement past SQLITE_LIMIT_VDBE_OP, as well as for a real shortage.
            raise SqlError("out of memory: SQLITE_NOMEM", code="SQLITE_NOMEM") from exc
        except (OverflowError, UnicodeEncodeError):
            # sqlite3 refused a value while binding it: say which, as _binding words it.
            for i, value in enumerate(params, 1):
                _binding(value, i)
            raise  # pragma: no cover - _binding refuses whatever sqlite3 refuses
        finally:
            db.user_sql = False
            conn.text_factory = str
            state.probe = False
            if state.saw_write:
                if not scratch and not state.probe_hit:
                    state.remember(text)
                if not probe:
                    self._host.wrote(True)
        if scratch and state.switches:
            state.replay.extend(state.switches)
        written = conn.total_changes - before
        state.per_row = 1
        if not probe:
            if state.compiled:
                plan = tuple(state.targets)
                if plan or text in state.plans:
                    if len(state.plans) > _WRITES_REMEMBERED:
                        state.plans.clear()
                    state.plans[text] = plan
            else:
                plan = state.plans.get(text, ())
            if plan:
                written = state.rows_written(conn, text, plan, written)
        return cur, written

    @property
    def database_size(self) -> int:
        """The database's size in bytes: (pages in use) x (page size), as Cloudflare computes it."""
        self._host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("sql.database_size")
        db = self._db
        db.spill()  # buffered key-value writes count too
        conn = db.read_conn()
        if conn is None:
            return 0
        row = conn.execute(
            "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM "
            f"pragma_freelist_count()), (SELECT page_size FROM pragma_page_size()) -- {db._tag}"
        ).fetchone()
        return int(row[0]) * int(row[1])

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        databaseSize = database_size


# -- the synchronous key-value API ------------------------------------------------------------------

_SYNC_LIST_OPTIONS: Final = frozenset({"start", "start_after", "end", "prefix", "reverse", "limit"})


@final
class SyncKV:
    """``ctx.storage.kv``: synchronous ``get``/``put``/``delete``/``list`` (SQLite-backed objects).

    The same data as the asynchronous API (the ``_cf_KV`` table), with the same keys, values and
    limits; writes join the implicit transaction like every other write. Example::

        kv = self.ctx.storage.kv
        kv.put("count", (kv.get("count") or 0) + 1)
        for key, value in kv.list(prefix="user:"):
            ...
    """

    __slots__ = ("_db", "_gen", "_host", "_live", "_storage")

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._host: StorageHost = storage._host
        self._gen: int = storage._gen
        self._db: ObjectDatabase = storage._db
        self._live: _KvListIterator | None = None

    def __repr__(self) -> str:
        return "<durable.SyncKV>"

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (a fresh copy), or ``None``."""
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.get()")
        blob = self._db.kv_get(check_key(key, host))
        return None if blob is None else decode(blob)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``.

        Raises ``DataCloneError`` for a value that cannot be stored and ``StorageLimitError`` for
        a key plus value over the limit.
        """
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.put()")
        blob = encode_checked(check_key(key, host), value, host)
        self._db.kv_put(key, blob)
        host.wrote(True)

    def delete(self, key: str) -> bool:
        """Delete ``key``; ``True`` if it existed."""
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.delete()")
        existed = self._db.kv_delete(check_key(key, host))
        if self._db.in_transaction:
            host.wrote(True)
        return existed

    def list(self, **options: Any) -> Iterator[tuple[str, Any]]:
        """A lazy iterator of ``(key, value)`` pairs in key order.

        Options as ``storage.list()``: ``start``, ``start_after``, ``end``, ``prefix``,
        ``reverse`` and ``limit`` (camelCase accepted). Only one such iterator lives at a time:
        calling ``list()`` again invalidates the previous one, whose next step raises
        ``RuntimeError`` with Cloudflare's message.
        """
        host = self._host
        host.check_live(self._gen)
        if self._storage._stack:
            self._storage._check_sync("kv.list()")
        opts = normalize_options("list", options, _SYNC_LIST_OPTIONS) if options else {}
        bounds = compile_range(**opts)
        if bounds is None:
            # An empty range never reaches the database, so (as in workerd) it does not
            # invalidate the live iterator.
            return _KvListIterator(self, None)
        rows = self._db.kv_scan(
            bounds[0], bounds[1], reverse=opts.get("reverse", False), limit=opts.get("limit"), lazy=True
        )
        if self._live is not None:
            self._live._invalidate()
        it = self._live = _KvListIterator(self, rows)
        return it


@final
class _KvListIterator:
    """The iterator ``kv.list()`` returns."""

    __slots__ = ("_invalid", "_kv", "_rows")

    def __init__(self, kv: SyncKV, rows: Iterator[tuple[str, bytes]] | None) -> None:
        self._kv = kv
        self._rows = rows
        self._invalid = False

    def __iter__(self) -> _KvListIterator:
        return self

    def __next__(self) -> tuple[str, Any]:
        if self._invalid:
            raise RuntimeError(LIST_INVALIDATED)
        rows = self._rows
        if rows is None:
            raise StopIteration
        kv = self._kv
        kv._host.check_live(kv._gen)
        if kv._storage._stack:
            kv._storage._check_sync("next() on a kv.list() iterator")
        item = next(rows, None)
        if item is None:
            self._finish()
            raise StopIteration
        return item[0], decode(item[1])

    def _finish(self) -> None:
        rows, self._rows = self._rows, None
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        if self._kv._live is self:
            self._kv._live = None

    def _invalidate(self) -> None:
        self._finish()
        self._invalid = True
