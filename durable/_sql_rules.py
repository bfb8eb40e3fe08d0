"""The rules of ``ctx.storage.sql``, as pure functions: what workerd allows and how it words errors.

Everything here works on SQL text, authorizer actions and ``sqlite3`` exceptions, never on an
object's database, so it is tested on its own (``tests/test_sql_rules.py``) and read without the
runtime open. :mod:`durable._sql` applies these rules to a connection:

- Cloudflare's messages, and workerd's limits (``SQL_LIMITS``; util/sqlite.c++ setupSecurity);
- the authorizer's rules (:func:`authorized`, the function and PRAGMA allow-lists);
- a tokenizer (:func:`tokens`), where a statement ends (:func:`first_statement`), where an error
  is (:func:`error_offset`) and how it is worded (:func:`sql_error`);
- how bindings are checked (:func:`check_binding`) and passed to ``sqlite3`` (:func:`named_parameters`);
- what an authorizer action says about a statement (``WRITE_ACTIONS``, ``COUNTED_ACTIONS``...).
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Union

from ._exceptions import SqlError
from ._util import lone_surrogate_at

__all__ = [
    "ABSENT_FUNCTIONS", "ALLOWED_FUNCTIONS", "ALLOWED_PRAGMAS", "ALTER", "BOOLEAN", "COUNTED_ACTIONS", "DENY",
    "DML_ACTIONS", "MULTIPLE_RESULTS", "MULTI_PARAMETERS", "NAMED_NEED_A_DICT", "NATIVE", "NO_RESULTS", "NO_STATEMENT",
    "NUMBERED_PARAMETER", "OK", "PRINTF_LIMIT", "RECORD_SLACK", "RTREE", "SCHEMA_ACTIONS", "SHADOW_ACTIONS",
    "SHADOW_HINT", "SQL_LENGTH", "SQL_LIMITS", "TRANSACTION_MESSAGE", "VACUUM_OR_OPTIMIZE", "VARIABLE_NUMBER",
    "WHITESPACE", "WRITE_ACTIONS", "WRONG_BINDINGS", "SqlValue", "alter_kind", "authorized", "check_binding",
    "error_offset", "first_statement", "named_parameters", "printf_clamped", "renames_to_reserved", "shadow_refusal",
    "shadow_tables", "sql_error", "tokens",
]  # fmt: skip

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

# -- limits -----------------------------------------------------------------------------------------

# workerd's sqlite3_limit() settings (util/sqlite.c++ setupSecurity), which follow the advice of
# sqlite.org/security.html. FUNCTION_ARG is workerd's 127 (SQLite's default), not the 32 the docs
# list: workerd keeps the default because json_object() needs long argument lists. LENGTH comes
# from Runtime(limits=...) (see RECORD_SLACK, and _Connection.configure in _sql.py).
SQL_LENGTH: Final = 100_000
"""Bytes of SQL SQLite compiles at once; exec() checks it against all the SQL it has not run yet."""

VARIABLE_NUMBER: Final = 100

SQL_LIMITS: Final[tuple[tuple[int, int], ...]] = (
    (sqlite3.SQLITE_LIMIT_SQL_LENGTH, SQL_LENGTH),
    (sqlite3.SQLITE_LIMIT_COLUMN, 100),
    (sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 100),
    (sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, 5),
    (sqlite3.SQLITE_LIMIT_VDBE_OP, 25_000),
    (sqlite3.SQLITE_LIMIT_FUNCTION_ARG, 127),
    (sqlite3.SQLITE_LIMIT_ATTACHED, 0),
    (sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
    (sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, VARIABLE_NUMBER),
    (sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    (sqlite3.SQLITE_LIMIT_WORKER_THREADS, 0),
)

PRINTF_LIMIT: Final = 100_000
"""The largest width or precision ``printf()``/``format()`` use: workerd's SQLite is built with
SQLITE_PRINTF_PRECISION_LIMIT=100000, so ``printf('%.*c', 200000, 'x')`` gives 100,000 characters
and ``printf('%200000d', 1)`` 100,000 (measured with miniflare 4.20260426). See :func:`printf_clamped`."""

_PRINTF_FLAGS: Final = frozenset("-+ #!0,")
_DIGITS: Final = frozenset("0123456789")
_NO_ARGUMENT: Final = frozenset("%n")  # conversions that take no argument from the list


_PRINTF_TEXT: Final = (
    "printf() and format() take TEXT that is valid UTF-8 in durable (Cloudflare reads invalid bytes "
    "as U+FFFD); CAST the BLOB to TEXT after formatting it, or pass it as a BLOB"
)


def printf_clamped(arguments: tuple[SqlValue, ...], to_int: Callable[[SqlValue], int]) -> tuple[SqlValue, ...]:
    """``printf()``'s arguments with every width and precision past ``PRINTF_LIMIT`` brought down to it.

    Widths and precisions written in the format, and those taken from the argument list (``*``),
    as SQLite reads them: ``to_int`` turns an argument into SQLite's 64-bit integer, which printf
    then takes as a C int; a negative width left-justifies. The format is walked as SQLite's
    printf walks it (flags, width, ``.precision``, ``l`` modifiers, the conversion).
    """
    if not arguments or not isinstance(arguments[0], str):
        return arguments
    fmt = arguments[0]
    if "%" not in fmt:
        return arguments
    args = list(arguments)
    parts: list[str] = []
    at = 0  # the next character of fmt not yet copied to parts
    used = 1  # the next argument
    i = fmt.find("%")
    while i >= 0:
        k = i + 1
        while k < len(fmt) and fmt[k] in _PRINTF_FLAGS:
            k += 1
        for precision in (False, True):
            if precision:
                if k >= len(fmt) or fmt[k] != ".":
                    break
                k += 1
            if k < len(fmt) and fmt[k] == "*":
                if used < len(args):
                    args[used] = _clamped_star(to_int(args[used]), precision=precision)
                used += 1
                k += 1
                continue
            start = k
            while k < len(fmt) and fmt[k] in _DIGITS:
                k += 1
            if k > start and int(fmt[start:k]) & 0x7FFFFFFF > PRINTF_LIMIT:
                parts.append(fmt[at:start])
                parts.append(str(PRINTF_LIMIT))
                at = k
        while k < len(fmt) and fmt[k] == "l":
            k += 1
        if k >= len(fmt):
            break
        if fmt[k] not in _NO_ARGUMENT:
            used += 1
        i = fmt.find("%", k + 1)
    if at:
        parts.append(fmt[at:])
        args[0] = "".join(parts)
    return tuple(args)


def _clamped_star(value: int, *, precision: bool) -> int:
    """A ``*`` width or precision as printf reads it (a C int; a negative width left-justifies,
    a negative precision is its absolute value), brought down to ``PRINTF_LIMIT``."""
    value = (value + 2**31) % 2**32 - 2**31
    if value < 0 and value != -(2**31):
        magnitude = min(-value, PRINTF_LIMIT)
        return magnitude if precision else -magnitude
    return min(value, PRINTF_LIMIT)


RECORD_SLACK: Final = 64
"""Bytes allowed above ``Limits.sqlite_max_row_bytes`` in SQLITE_LIMIT_LENGTH.

The limit applies to whole records, and a ``_cf_KV`` record is its key and value plus a header of
a few bytes: a pair that passes ``encode_checked`` (key + value <= the limit) must still fit."""

# -- the authorizer's rules (workerd util/sqlite.c++ isAuthorized) --------------------------------

ALLOWED_FUNCTIONS: Final = frozenset(
    {
        # core functions (sqlite_version, sqlite_source_id, sqlite_compileoption_*, sqlite_offset
        # are left out on purpose: they reveal build details)
        "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
        "ifnull", "iif", "instr", "last_insert_rowid", "length", "like", "likelihood", "likely",
        "load_extension", "lower", "ltrim", "max_scalar", "min_scalar", "nullif", "octet_length",
        "printf", "quote", "random", "randomblob", "replace", "round", "rtrim", "sign", "substr", "substring", "total_changes", "trim", "typeof", "unhex", "unicode", "unlikely",
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
        "match", "highlight", "bm25", "snippet",
        # used internally by ALTER TABLE
        "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test",
        "sqlite_drop_column", "sqlite_rename_quotefix",
    }
)  # fmt: skip

_NO_ARG, BOOLEAN, _OBJECT, _OPTIONAL_OBJECT, _NUMBER, _NUMBER_OR_OBJECT = range(6)

ALLOWED_PRAGMAS: Final[dict[str, int]] = {
    # read only, no argument (page_size is refused, as by workerd, except to R*Tree: see RTREE)
    "data_version": _NO_ARG,
    # switches, read or set
    "case_sensitive_like": BOOLEAN,
    "foreign_keys": BOOLEAN,
    "defer_foreign_keys": BOOLEAN,
    "ignore_check_constraints": BOOLEAN,
    "legacy_alter_table": BOOLEAN,
    "recursive_triggers": BOOLEAN,
    "reverse_unordered_selects": BOOLEAN,
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
RTREE: Final = re.compile(
    r"(?is)(?:\s|;|--[^\n]*|/\*.*?\*/)*+create\s+virtual\s+table\b.*?\busing\s+[\"'`\[]?rtree(?:_i32)?\b"
)
"""A statement creating an R*Tree table. R*Tree's constructor runs ``PRAGMA page_size`` itself,
which workerd refuses (so its R*Tree creation fails, although the docs list R*Tree as supported);
durable lets R*Tree read it while such a statement runs, and refuses it to the application."""
_BOOLEAN_WORDS: Final = ("true", "false", "yes", "no", "on", "off", "1", "0")
_INT = re.compile(r"[ \t\n\r\f\v]*[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
WHITESPACE: Final = " \t\n\r\f\v"

OK: Final = sqlite3.SQLITE_OK
DENY: Final = sqlite3.SQLITE_DENY

WRITE_ACTIONS: Final = frozenset(
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


ABSENT_FUNCTIONS: Final = frozenset(
    {"soundex", "rtreecheck", "rtreedepth", "rtreenode", "fts3_tokenizer", "matchinfo", "offsets", "optimize"}
)
"""Functions that Python's SQLite may be built with (SQLITE_SOUNDEX, R*Tree's checks, FTS3's
auxiliaries) and workerd's is not: calling one fails there as an unknown function (``no such
function: soundex at offset 7: SQLITE_ERROR``, measured with miniflare 4.20260730), whatever
its arguments, so it does here. (``rtreecheck`` would also run a transaction of its own.)"""

NEWER_REFUSED_FUNCTIONS: Final = frozenset({"json_pretty", "json_error_position", "fts5_get_locale", "fts5_locale"})
"""Functions of SQLite versions newer than Python's that workerd's SQLite has but its allow-list
refuses: calling one there is ``not authorized to use function: json_pretty at offset 7:
SQLITE_ERROR`` (measured with miniflare 4, 2026-04-07), where an older SQLite says ``no such
function``."""

ABSENT_TABLES: Final = frozenset({"dbstat", "sqlite_dbpage", "sqlite_stmt"})
"""Eponymous virtual tables that Python's SQLite may be built with and workerd's is not: reading
one fails as a missing table there (``no such table: dbstat: SQLITE_ERROR``, measured with
miniflare), so it does here. (A table of the application's own with one of these names is
refused too; SQLite's authorizer cannot tell the two apart.)"""


def _allowed_name(name: str | None) -> bool:
    """Names starting ``_cf_`` are Cloudflare's own (``_cf_KV``, ``_cf_METADATA``).

    The prefix is compared as written: workerd lets ``_CF_x`` or ``_Cf_x`` be created (it only
    logs "SQL identifier matches reserved _cf_ prefix case-insensitively"; measured with miniflare
    4.20260426). Its own tables stay out of reach in any spelling: SQLite names the table as
    created (``_cf_KV``) to the authorizer when a statement uses it.
    """
    return name is None or not name.startswith("_cf_")


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
    if sig == BOOLEAN:
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
    text = text.strip(WHITESPACE)
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
      (?P<space>[ \t\n\f\r][ \t\n\f\r\v]*)
    | (?P<comment>--[^\n]*|/\*(?:.*?\*/|.+))
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
"""SQLite's tokens, as far as durable needs them: where statements end, where an error is.

As in SQLite's tokenizer, a vertical tab continues a run of spaces but cannot start one (alone it
is an unrecognized token), and ``/*`` with nothing after it is a slash and a star, not a comment."""

_SLOW_START: Final = frozenset([*" \t\n\r\f\v;-/", ""])
"""First characters that may start a comment, an empty statement or spaces (and the empty string)."""
VACUUM_OR_OPTIMIZE = re.compile(r"(?is)[\s;]*(?:vacuum\b|pragma\s+(?:main\s*\.\s*)?optimize\b)")
ALTER = re.compile(r"(?is)(?:\s|;|--[^\n]*|/\*.*?\*/)*+alter\b")


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


HEAD_START: Final = frozenset(" \t\n\r\f\v-/")
"""First characters of SQL whose :func:`statement_head` may start later (spaces, comments)."""


def statement_head(sql: str) -> str:
    """``sql`` from its first token on: without the spaces and comments SQLite skips before it
    (``-- c\nINSERT ...`` is an ``INSERT``), for the checks that read what a statement is.
    Callers on a hot path test ``sql[:1] in HEAD_START`` first."""
    if sql[:1] not in HEAD_START:
        return sql
    for kind, start, _ in tokens(sql):
        if kind != "space" and kind != "comment":
            return sql[start:]
    return ""


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
        if semi < 0:
            return 0, len(code)
        if semi == len(code.rstrip(WHITESPACE)) - 1:
            return 0, semi + 1  # (what follows holds only spaces, which exec() skips)
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


def renames_to_reserved(sql: str) -> bool:
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


def alter_kind(sql: str) -> tuple[str, str | None]:
    """What ``ALTER TABLE`` statement ``sql`` does: ``("rename", new name)``, ``("column", None)``
    (RENAME COLUMN), ``("drop", None)`` (DROP COLUMN) or ``("add", None)``."""
    words = [w for w, _, _ in _words(sql)]
    at = 5 if len(words) > 3 and words[3] == "." else 3
    upper = [w.upper() for w in words[at:]]
    if upper[:1] == ["RENAME"]:
        if upper[1:2] == ["TO"] and len(upper) > 2:
            return "rename", _unquote(words[at + 2])
        return "column", None
    return ("drop" if upper[:1] == ["DROP"] else "add"), None


def altered_table(sql: str) -> tuple[str | None, str | None]:
    """The schema named (if any) and the table of ``ALTER TABLE`` statement ``sql``, unquoted."""
    words = [w for w, _, _ in _words(sql)]
    if len(words) > 3 and words[3] == ".":
        return _unquote(words[2]), _unquote(words[4]) if len(words) > 4 else None
    return None, _unquote(words[2]) if len(words) > 2 else None


def _utf8_offset(sql: str, index: int) -> int:
    return len(sql[:index].encode("utf-8", "surrogatepass"))


_SYNTAX = re.compile(r'near "(.*)": syntax error|unrecognized token: "(.*)"', re.DOTALL)
_NAMED_ERROR = re.compile(
    r"no such column: (?P<col>.+)|ambiguous column name: (?P<amb>.+)|no such function: (?P<fn>.+)"
    r"|not authorized to use function: (?P<auth>.+)|wrong number of arguments to function (?P<args>.+)\(\)"
    r"|misuse of aggregate function (?P<agg>.+)\(\)|misuse of aggregate: (?P<aggr>.+)\(\)"
    r"|misuse of window function (?P<win>.+)\(\)|too many arguments on function (?P<many>.+)"
    r"|table (?P<table>.+) already exists",
    re.DOTALL,
)


_PLACED_ERROR = re.compile(
    r'no such column: "(?P<quoted>.+)"|hex literal too big: -?(?P<hex>.+)'
    r"|second argument to (?P<likelihood>.+)\(\) must be a constant between 0\.0 and 1\.0"
    r"|non-deterministic functions prohibited in (?P<nondeterministic>.+)|subqueries prohibited in (?P<subquery>.+)"
    r"|(?P<ordinal>[0-9]+)(?:st|nd|rd|th) (?P<clause>ORDER|GROUP) BY term out of range - should be between 1 and"
    r" (?P<columns>[0-9]+)",
    re.DOTALL,
)
"""Errors whose offset is a token durable finds from what the message says (see _placed_error_token)."""

_BELOW_IN: Final = frozenset(
    {
        ",", "=", "==", "!=", "<>", "AND", "OR", "NOT", "IS", "LIKE", "GLOB", "MATCH", "REGEXP", "BETWEEN", "IN",
        "ISNULL", "NOTNULL", "ESCAPE", "CHECK", "WHERE", "WHEN", "THEN", "ELSE", "CASE", "ON", "SELECT", "AS",
        "DEFAULT", "HAVING", "BY", "SET", "RETURNING", "VALUES",
    }
)  # fmt: skip
"""Tokens that end, going leftwards, the left operand of IN (operators that bind less or as tightly)."""
_NON_DETERMINISTIC: Final = frozenset({"random", "randomblob", "changes", "total_changes", "last_insert_rowid"})
_FLOAT = re.compile(r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")


def _arguments(words: list[tuple[str, int, int]], at: int) -> list[list[tuple[str, int, int]]]:
    """The comma-separated parts of the parenthesized list that opens at ``words[at]``."""
    parts: list[list[tuple[str, int, int]]] = [[]]
    depth = 0
    for word in words[at + 1 :]:
        if word[0] == "(":
            depth += 1
        elif word[0] == ")":
            if depth == 0:
                break
            depth -= 1
        elif word[0] == "," and depth == 0:
            parts.append([])
            continue
        parts[-1].append(word)
    return parts


def _integer_term(term: list[tuple[str, int, int]]) -> tuple[int, int] | None:
    """``(value, start of its number)`` of an ORDER BY / GROUP BY term that is an integer literal
    (perhaps signed, perhaps followed by ``ASC``, ``COLLATE x``, ``LIMIT n``...)."""
    at = 0
    while at < len(term) and term[at][0] in ("+", "-"):
        at += 1
    if at >= len(term) or not term[at][0].isdigit():
        return None
    if at + 1 < len(term) and not term[at + 1][0][:1].isalpha() and term[at + 1][0] != ";":
        return None  # an expression
    sign = -1 if [w for w, _, _ in term[:at]].count("-") % 2 else 1
    return sign * int(term[at][0]), term[at][1]


def _placed_error_token(words: list[tuple[str, int, int]], m: re.Match[str]) -> int | None:
    """Where (a character index) the token of a ``_PLACED_ERROR`` is, as workerd reports it
    (measured with miniflare 4, 2026-04-07):

    - ``no such column: "x"`` (ALTER TABLE's DROP / RENAME COLUMN): the column's token, as written;
    - ``hex literal too big: 0x...``: that literal;
    - ``second argument to likelihood() ...``: the first call whose second argument is not a REAL
      literal of at most 1.0 (SQLite's rule);
    - ``non-deterministic functions prohibited in ...``: the first call of such a function;
    - ``subqueries prohibited in ...``: when the first subquery is ``x IN (SELECT ...)``, its ``x``;
    - ``Nth ORDER BY term out of range``: the term's number, when it is below 1 or the SELECT is
      compound (SQLite gives none for a simple SELECT's term past the last column).
    """
    kind = m.lastgroup if m.lastgroup != "columns" else "ordinal"
    upper = [w.upper() for w, _, _ in words]
    if kind == "quoted":
        after = next((i for i, w in enumerate(upper) if w in ("DROP", "RENAME")), len(words))
        return next((s for w, s, _ in words[after:] if w == m.group("quoted")), None)
    if kind == "hex":
        return next((s for w, s, _ in words if w == m.group("hex")), None)
    calls = [i for i in range(len(words) - 1) if words[i + 1][0] == "("]
    if kind == "likelihood":
        for i in calls:
            if words[i][0] == m.group("likelihood"):
                args = _arguments(words, i + 1)
                second = args[1] if len(args) == 2 else []
                if len(second) != 1 or not _FLOAT.fullmatch(second[0][0]) or float(second[0][0]) > 1.0:
                    return words[i][1]
        return None
    if kind == "nondeterministic":
        return next(
            (words[i][1] for i in calls if upper[i].lower() in _NON_DETERMINISTIC and (i == 0 or upper[i - 1] != "ON")),
            None,
        )
    if kind == "subquery":
        # SQLite gives an offset only when the first subquery is IN's: the operand on its left.
        first = next((i for i in range(1, len(words)) if upper[i] in ("SELECT", "VALUES", "WITH")), None)
        at = first - 2 if first is not None and upper[first - 1] == "(" else -1
        if at < 1 or upper[at] != "IN":
            return None
        at -= 2 if upper[at - 1] == "NOT" else 1
        # IN's left operand: back to an operator that binds less tightly (or an open bracket), then
        # its leftmost leaf, as SQLite's offset of an expression is (brackets and signs skipped).
        depth = 0
        while at >= 0:
            word = upper[at]
            if word == ")":
                depth += 1
            elif word == "(":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and word in _BELOW_IN:
                break
            at -= 1
        at += 1
        while at < len(words) - 1 and words[at][0] in ("(", "+", "-", "~"):
            at += 1
        return words[at][1]
    compound = any(w in ("UNION", "INTERSECT", "EXCEPT") for w in upper)
    ordinal, columns = int(m.group("ordinal")), int(m.group("columns"))
    for i in range(len(words) - 1):
        if upper[i] == m.group("clause") and upper[i + 1] == "BY":
            terms = _arguments([("(", 0, 0), *words[i + 2 :]], 0)
            if len(terms) >= ordinal:
                term = _integer_term(terms[ordinal - 1])
                if term is not None and (term[0] < 1 or (term[0] > columns and compound)):
                    return term[1]
    return None


def error_offset(sql: str, message: str) -> int | None:
    """The byte offset SQLite's ``sqlite3_error_offset`` would give for ``message``, if any.

    Python's sqlite3 does not expose it. Syntax errors are located exactly: the error token is
    the last token of the shortest prefix of ``sql`` that fails the same way, found by binary
    search, compiling prefixes under ``EXPLAIN`` (so nothing runs) on an empty database. The
    first parameter past the limit is found by numbering parameters as SQLite does. Errors that name a
    column, function or table point, as SQLite's do, at the first token with that name (SQLite
    records the exact expression; the first occurrence is nearly always it), but a misused
    aggregate or window function at the call SQLite reports (:func:`_misused_function_offset`).
    """
    m = _SYNTAX.fullmatch(message)
    if m is not None:
        return _syntax_error_offset(sql, message, m.group(1) if m.group(1) is not None else m.group(2))
    if message == "too many SQL variables" or message.startswith("variable number must be between ?1 and ?"):
        return _variable_error_offset(sql, message)
    m = _PLACED_ERROR.fullmatch(message)
    if m is not None:
        index = _placed_error_token(_words(sql), m)
        return None if index is None else _utf8_offset(sql, index)
    m = _NAMED_ERROR.fullmatch(message)
    if m is None:
        return None
    kind = m.lastgroup or ""
    name = m.group(kind or 0)
    words = _words(sql)
    if kind == "agg" or kind == "aggr" or kind == "win":
        return _misused_function_offset(sql, words, name, kind)
    index = _named_token(words, kind, name)
    return None if index is None else _utf8_offset(sql, index)


_FUNCTION_ERRORS: Final = frozenset({"fn", "auth", "args", "many"})


def _named_token(words: list[tuple[str, int, int]], kind: str, name: str) -> int | None:
    """Where (a character index) the token an error of ``_NAMED_ERROR`` names is: the first
    token spelling the name in a place that can hold it (measured with miniflare 4, 2026-04-07).

    Never a string literal (``SELECT 'b', b FROM t`` is at the bare ``b``, offset 12). A function
    is a name followed by ``(``. A qualified column (``t.b``) is its whole spelling, not the first
    token naming its table. An unqualified column is not a qualifier, an alias (with or without
    ``AS``), a common table expression's name or a double-quoted word (which SQLite, failing to
    find the column, reads as a string). In an UPDATE (``WITH ... UPDATE`` too), a missing column
    assigned by SET has no offset; one elsewhere in it has. A call with a wrong number of
    arguments is the one SQLite refuses (:func:`_miscounted_call`). An expression in a join's ON clause keeps no offset, and
    SQLite resolves the WHERE clause's columns before it.
    """
    parts = name.split(".") if kind == "col" else [_unquote(name)]
    upper = [w.upper() for w, _, _ in words]
    update = kind == "col" and _verb(upper) == "UPDATE"
    clause = ""
    governing = _governing_clauses(upper)
    if kind == "args" or kind == "many":
        calls = [i for i in range(len(words)) if _names_it(words, upper, i, parts, kind)]
        wrong = _miscounted_call(words, calls, kind)
        return words[wrong][1] if wrong is not None else words[calls[0]][1] if calls else None
    for i, (_, start, _) in enumerate(words):
        if upper[i] in ("SET", "FROM", "WHERE", "RETURNING"):
            clause = upper[i]
        if not _names_it(words, upper, i, parts, kind):
            continue
        if (
            kind in ("col", "amb")
            and len(parts) == 1
            and governing[i] in ("SELECT", "FROM", "RETURNING")
            and _bare_alias(upper, i)
        ):
            continue  # SELECT a zz, zz: an alias declared without AS
        if kind == "col" and len(parts) == 1 and update and clause == "SET" and _set_target(upper, i):
            # SQLite resolves each SET value before looking up its column, and an unknown column
            # assigned has no offset.
            return _set_value_token(words, upper, i, parts)
        if governing[i] == "ON" and kind != "table":
            return _later_in_where(words, upper, i, parts) if kind == "col" or kind == "amb" else None
        return start
    return None


_BEFORE_EXPRESSION: Final = frozenset(
    {
        "SELECT", "DISTINCT", "ALL", "AND", "OR", "NOT", "IS", "IN", "BETWEEN", "LIKE", "GLOB", "MATCH", "REGEXP",
        "ESCAPE", "CASE", "WHEN", "THEN", "ELSE", "BY", "ON", "USING", "FROM", "JOIN", "WHERE", "HAVING", "ROWS",
        "RANGE", "GROUPS", "EXISTS", "OVER", "FILTER", "AS", "COLLATE", "LIMIT", "OFFSET", "RETURNING", "SET",
        "VALUES", "DEFAULT", "WITH", "RECURSIVE", "UNION", "INTERSECT", "EXCEPT",
    }
)  # fmt: skip
"""Keywords a column can follow; any other word before a name in a result list makes it an alias."""


def _bare_alias(upper: list[str], i: int) -> bool:
    """Whether word ``i`` (in a result list, RETURNING or FROM) is an alias declared without ``AS``:
    it follows the end of an expression (a parameter too) or a table's name (``SELECT a zz, zz
    FROM t`` is at the second ``zz``, offset 13, in workerd (miniflare 4, 2026-04-07))."""
    before = upper[i - 1] if i > 0 else ""
    if before == ")":
        return True
    return (before[:1].isalnum() or before[:1] in ("_", "'", '"', "`", "[", "?", ":", "@", "$")) and (
        before not in _BEFORE_EXPRESSION
    )


def _verb(upper: list[str]) -> str:
    """The statement's kind: its first word, or the first after a ``WITH`` clause's tables."""
    if upper[:1] != ["WITH"]:
        return upper[0] if upper else ""
    depth = 0
    for word in upper[1:]:
        depth += (word == "(") - (word == ")")
        if depth == 0 and word in ("SELECT", "INSERT", "REPLACE", "UPDATE", "DELETE", "VALUES"):
            return word
    return ""


def _brackets(words: list[tuple[str, int, int]]) -> dict[int, tuple[int, int | None]]:
    """For each ``(`` of ``words`` (its index): the index of the ``)`` closing it (``len(words)``
    when none does) and how many arguments a call with that bracket passes (``None`` for
    ``f(*)``; an aggregate's ``ORDER BY`` ends them), in one pass however long the statement."""
    shapes: dict[int, tuple[int, int | None]] = {}
    open_: list[list[int]] = []  # per open bracket: [its index, commas before any ORDER BY, ORDER BY seen]
    for j, (word, _, _) in enumerate(words):
        if word == "(":
            open_.append([j, 0, 0])
        elif word == ")" and open_:
            at, commas, _ = open_.pop()
            count = None if j == at + 2 and words[at + 1][0] == "*" else 0 if j == at + 1 else commas + 1
            shapes[at] = (j, count)
        elif open_ and word == "," and not open_[-1][2]:
            open_[-1][1] += 1
        elif open_ and word.upper() == "ORDER" and j + 1 < len(words) and words[j + 1][0].upper() == "BY":
            open_[-1][2] = 1
    for at, commas, _ in open_:
        shapes[at] = (len(words), commas + 1)
    return shapes


def _miscounted_call(words: list[tuple[str, int, int]], calls: list[int], kind: str) -> int | None:
    """Which call (an index into ``words``) of ``calls``, all of one function, passes a number of
    arguments SQLite refuses, as workerd reports it (miniflare 4, 2026-04-07: ``SELECT abs(1),
    abs(1, 2)`` is at offset 15): for ``too many arguments on function`` (found while parsing, so
    an inner call before the call holding it), the first to close with more than 127; for
    ``wrong number of arguments`` (found while resolving names, outer calls first), the first
    that SQLite's own functions refuse. ``None`` when none can be told apart."""
    shapes = _brackets(words)
    if kind == "many":
        over = [(shapes[i + 1][0], i) for i in calls if (shapes[i + 1][1] or 0) > 127]
        return min(over)[1] if over else None
    refused: dict[int | None, bool] = {}
    check = sqlite3.connect(":memory:")
    try:
        for i in calls:
            n = shapes[i + 1][1]
            if n not in refused:
                try:
                    check.execute(f"SELECT {words[i][0]}({'*' if n is None else ', '.join(['NULL'] * n)})")
                    refused[n] = False
                except sqlite3.Error as exc:
                    refused[n] = str(exc).startswith("wrong number of arguments")
            if refused[n]:
                return i
    finally:
        check.close()
    return None


def _names_it(words: list[tuple[str, int, int]], upper: list[str], i: int, parts: list[str], kind: str) -> bool:
    """Whether word ``i`` is a use of the name (``parts``: split at dots) an error of ``kind`` names."""
    word = words[i][0]
    if word[:1] == "'" or _unquote(word).lower() != parts[0].lower():
        return False
    after = upper[i + 1] if i + 1 < len(words) else ""
    before = upper[i - 1] if i > 0 else ""
    if after == "AS" and i + 2 < len(words) and upper[i + 2] in ("(", "MATERIALIZED", "NOT"):
        return False  # a common table expression's name (WITH zz AS (...))
    if kind in _FUNCTION_ERRORS:
        return after == "("
    if len(parts) > 1:
        spelled = [_unquote(w).lower() for w, _, _ in words[i : i + 2 * len(parts) - 1 : 2]]
        dots = [w for w, _, _ in words[i + 1 : i + 2 * len(parts) - 1 : 2]]
        return spelled == [p.lower() for p in parts] and all(d == "." for d in dots)
    if kind == "col" or kind == "amb":
        return not (after in (".", "(") or before in (".", "AS") or (word[:1] == '"' and kind == "col"))
    return True


def _later_in_where(words: list[tuple[str, int, int]], upper: list[str], i: int, parts: list[str]) -> int | None:
    """The first use of the column after word ``i`` (in a join's ON clause) in the WHERE clause
    of the same SELECT, subqueries included; ``None`` when there is none."""
    depth = 0  # brackets open at word i, counted from the ON clause's level
    closed = 0
    for j in range(i - 1, -1, -1):
        if upper[j] == ")":
            closed += 1
        elif upper[j] == "(":
            if closed:
                closed -= 1
            else:
                depth += 1
        elif upper[j] == "ON" and not closed:
            break
    in_where = False
    for k in range(i + 1, len(words)):
        depth += (upper[k] == "(") - (upper[k] == ")")
        if depth < 0:
            return None
        if depth == 0 and upper[k] in _CLAUSES and upper[k] != "ON":
            if in_where:
                return None
            in_where = upper[k] == "WHERE"
        elif in_where and _names_it(words, upper, k, parts, "col"):
            return words[k][1]
    return None


def _governing_clauses(upper: list[str]) -> list[str | None]:
    """For each word, the clause keyword (``_CLAUSES``) it is in, brackets of calls included."""
    clauses: list[str | None] = [None]  # per bracket depth: the clause keyword seen last
    governing: list[str | None] = []
    for word in upper:
        if word == "(":
            clauses.append(None)
        elif word == ")":
            if len(clauses) > 1:
                clauses.pop()
        elif word in _CLAUSES and (word != "ON" or clauses[-1] in ("FROM", "ON")):
            clauses[-1] = word  # (ON: a join's, not ON CONFLICT, CREATE INDEX ... ON...)
        governing.append(next((c for c in reversed(clauses) if c is not None), None))
    return governing


def _set_target(upper: list[str], i: int) -> bool:
    """Whether word ``i`` of an UPDATE's SET clause is a column assigned (``a = ``, ``(a, b) = ``)."""
    if upper[i - 1] in ("SET", ",") and i + 1 < len(upper) and upper[i + 1] == "=":
        return True
    j = i
    while j >= 2 and upper[j - 1] == ",":
        j -= 2  # back over "x ," pairs to the list's "("
    if j < 2 or upper[j - 1] != "(" or upper[j - 2] not in ("SET", ","):
        return False
    k = i
    while k + 2 < len(upper) and upper[k + 1] == ",":
        k += 2
    return k + 2 < len(upper) and upper[k + 1] == ")" and upper[k + 2] == "="


def _set_value_token(words: list[tuple[str, int, int]], upper: list[str], i: int, parts: list[str]) -> int | None:
    """The first bare use of column ``name`` in the value assigned after word ``i`` (a SET target)."""
    j = i + 1
    while j < len(words) and upper[j] != "=":
        j += 1
    depth = 0
    for k in range(j + 1, len(words)):
        word = words[k][0]
        if word == "(":
            depth += 1
        elif word == ")":
            depth -= 1
        if depth < 0 or (depth == 0 and (word == "," or upper[k] in ("FROM", "WHERE", "RETURNING"))):
            return None
        if _names_it(words, upper, k, parts, "col"):
            return words[k][1]
    return None


_CLAUSES: Final = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "HAVING",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "ON",
        "SET",
        "VALUES",
        "RETURNING",
        "WINDOW",
    }
)
_AGGREGATE_CLAUSES: Final = frozenset({"SELECT", "HAVING", "ORDER"})
"""Clauses of a SELECT whose expressions may hold aggregate functions."""
_WINDOW_CLAUSES: Final = frozenset({"SELECT", "ORDER"})
"""Clauses of a SELECT whose expressions may hold window functions."""


def _misused_function_offset(sql: str, words: list[tuple[str, int, int]], name: str, kind: str) -> int | None:
    """Where SQLite places a misused aggregate or window function ``name()`` (measured with
    miniflare 4, 2026-04-07), which is often not its first call.

    ``misuse of aggregate function f()`` and ``misuse of window function f()`` (found while
    SQLite resolves names, which stops at the first): the first call in a clause that may not
    hold one, where aggregates may be in a result list, ``HAVING`` and ``ORDER BY``, window
    functions in a result list and ``ORDER BY`` (``SELECT count(*) FROM t ORDER BY count(*)
    LIMIT count(*)`` is at the third call). ``misuse of aggregate: f()`` (found while SQLite
    generates the code of an aggregate query, where each call found records its offset over the
    last): the last call in the outermost ``WHERE`` holding one (``SELECT count(*) FROM t WHERE
    count(*) > 1 OR count(*) < 0`` is at offset 45), and none when a join's ``ON`` clause holds
    one. Otherwise (a result column's alias used in ``WHERE``, a window function without
    ``OVER``...) the first call.
    """
    clauses: list[str | None] = [None]  # per bracket depth: the clause keyword seen last
    first: int | None = None
    where: tuple[int, int] | None = None  # (depth of its WHERE, offset) of the call to report
    allowed = _WINDOW_CLAUSES if kind == "win" else _AGGREGATE_CLAUSES
    for i, (word, start, _) in enumerate(words):
        upper = word.upper()
        if word == "(":
            clauses.append(None)
        elif word == ")":
            if len(clauses) > 1:
                clauses.pop()
        elif upper in _CLAUSES and (upper != "ON" or clauses[-1] in ("FROM", "ON")):
            clauses[-1] = upper
        elif i + 1 < len(words) and words[i + 1][0] == "(" and _unquote(word).lower() == name.lower():
            depth = next((d for d in range(len(clauses) - 1, -1, -1) if clauses[d] is not None), 0)
            clause = clauses[depth]
            if first is None:
                first = start
            if kind != "aggr":
                if clause not in allowed:
                    return _utf8_offset(sql, start)
            elif clause == "ON":
                return None
            elif clause == "WHERE" and (where is None or depth <= where[0]):
                where = (depth, start)
    if where is not None:
        return _utf8_offset(sql, where[1])
    return None if first is None else _utf8_offset(sql, first)


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
    limit = VARIABLE_NUMBER
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
    # listed, never run. (A statement that is an EXPLAIN already runs nothing either.) EXPLAIN
    # goes after the empty statements before it, and ends with a comment, not a space: a space
    # would swallow a vertical tab that follows, which SQLite refuses at the start of a token.
    lead, first = next(((s, e) for s, e in spans if sql[s:e] != ";"), spans[0])
    head = sql[:lead]
    explain = "" if sql[lead:first].upper() == "EXPLAIN" else "EXPLAIN/**/"
    probe = sqlite3.connect(":memory:", isolation_level=None)

    def fails(k: int) -> bool:
        try:
            probe.execute(head + explain + sql[lead : max(lead, spans[k - 1][1])]).close()
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


_ABSENT_FUNCTION = re.compile(
    r"not authorized to use function: (.+)|wrong number of arguments to function (.+)\(\)", re.DOTALL
)


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
    if primary == 1 and message.startswith("no such function: "):
        if message[18:].lower() in NEWER_REFUSED_FUNCTIONS:
            message = f"not authorized to use function: {message[18:]}"
    elif primary == 1 and message == "user-defined function raised exception":
        # durable's printf()/format() (PRINTF_LIMIT) are the only functions it defines: sqlite3
        # could not hand one of them a TEXT argument that is not valid UTF-8.
        message = _PRINTF_TEXT
    elif primary == 1:
        m = _ABSENT_FUNCTION.fullmatch(message)
        if m is not None:
            function = m.group(1) if m.group(1) is not None else m.group(2)
            if function.lower() in ABSENT_FUNCTIONS:
                message = f"no such function: {function}"
    offset = error_offset(sql, message) if primary == 1 else None
    if offset is not None:
        message = f"{message} at offset {offset}"
    return SqlError(f"{message}: {name}", code=name)


# -- bindings ---------------------------------------------------------------------------------------

NATIVE: Final = frozenset({int, float, str, bytes, type(None)})
"""Binding types sqlite3 binds as they are (out-of-range ints and lone surrogates it refuses)."""

NAMED_NEED_A_DICT: bool = sys.version_info >= (3, 12)
"""Python 3.12 deprecates (3.14 refuses) binding named placeholders from a sequence."""

NUMBERED_PARAMETER: Final = re.compile(r"\?[0-9]")
"""``?NNN``, which early Python 3.12 releases took for a named placeholder (and warned about)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def check_binding(value: object, position: int) -> SqlValue:
    """``value`` as SQLite binds it at ``position`` (1-based): ``bytearray`` and ``memoryview`` as
    ``bytes``, ``bool`` and int subclasses as ``int``, str and float subclasses as their base.

    ``-0.0`` keeps its sign, as in workerd (measured with miniflare 4, compatibility date
    2026-04-07: ``SELECT ? AS x`` bound to ``-0`` reads back ``-0``, and so does a column it was
    inserted into).

    Raises:
        TypeError: a type SQL cannot bind, or a ``str`` with a lone surrogate.
        OverflowError: an ``int`` outside SQLite's 64-bit INTEGER.
    """
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
        return check_binding(str(value), position)
    if isinstance(value, float):
        return float(value)
    hint = ""
    if isinstance(value, (list, tuple, dict)):
        # sqlite3's execute(sql, (a, b)) / execute(sql, {"a": ...}) habit.
        hint = (
            "; bindings are separate arguments, in order (named parameters too): "
            "sql.exec(query, a, b) or sql.exec(query, *values), not a "
            f"{t.__qualname__} of them as sqlite3's execute() takes"
        )
    raise TypeError(
        f"sql.exec() binding {position} is of type {t.__qualname__}, which SQL cannot bind: "
        f"use None, int, float, str or bytes (bool binds as 1 or 0){hint}"
    )


def named_parameters(sql: str, params: tuple[SqlValue, ...]) -> tuple[SqlValue, ...] | dict[str, SqlValue] | None:
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


# -- what the authorizer's actions say about a statement ---------------------------------------

COUNTED_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_REINDEX,
    }
)  # fmt: skip
"""Authorizer actions that decide how many b-tree rows a statement writes (see ``rows_written``)."""

DML_ACTIONS: Final = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
SCHEMA_ACTIONS: Final = WRITE_ACTIONS - DML_ACTIONS


# -- shadow tables: read-only to the application, as in SQLite's defensive mode --------------------

_SHADOW_SUFFIXES: Final = {
    "fts5": frozenset({"config", "content", "data", "docsize", "idx"}),
    "rtree": frozenset({"node", "parent", "rowid"}),
    "rtree_i32": frozenset({"node", "parent", "rowid"}),
}
"""The shadow tables each allowed module keeps (its ``xShadowName``): ``<table>_<suffix>``."""

SHADOW_HINT: Final = re.compile(r"(?i)_(?:config|content|data|docsize|idx|node|parent|rowid)(?![A-Za-z0-9_$])")
"""A statement that may name a shadow table (only those are checked against the schema)."""

_MODULE: Final = re.compile(r"(?is).*?\busing\s+([A-Za-z0-9_]+)")

SHADOW_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_TRIGGER,
    }
)  # fmt: skip

_CHANGE_VERBS: Final = {"INSERT": "INTO", "REPLACE": "INTO", "DELETE": "FROM", "UPDATE": ""}


def shadow_tables(virtual_tables: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The shadow tables (lowercase names) of the virtual tables ``(name, CREATE statement)``."""
    names: set[str] = set()
    for name, sql in virtual_tables:
        m = _MODULE.match(sql or "")
        for suffix in _SHADOW_SUFFIXES.get(m.group(1).lower() if m else "", ()):
            names.add(f"{name}_{suffix}".lower())
    return frozenset(names)


def _names(sql: str) -> set[str]:
    return {_unquote(w).lower() for w, _, _ in _words(sql)}


def _trigger_targets(sql: str) -> Iterator[str]:
    """The tables a ``CREATE TRIGGER`` body's steps change, as written (unquoted)."""
    words = [w for w, _, _ in _words(sql)]
    upper = [w.upper() for w in words]
    if "BEGIN" not in upper:
        return
    for i in range(upper.index("BEGIN") + 1, len(words)):
        if upper[i] not in _CHANGE_VERBS or (i > 0 and upper[i - 1] not in ("BEGIN", ";")):
            continue
        j = i + 1
        if upper[i] != "REPLACE" and j + 1 < len(words) and upper[j] == "OR":
            j += 2
        if _CHANGE_VERBS[upper[i]]:
            if j >= len(words) or upper[j] != _CHANGE_VERBS[upper[i]]:
                continue
            j += 1
        if j < len(words):
            yield _unquote(words[j])


def shadow_refusal(
    action: int, arg1: str | None, arg2: str | None, source: str | None, shadow: frozenset[str], statement: str
) -> str | None:
    """SQLite's message (without its code) when ``statement`` changes a shadow table, else ``None``.

    workerd runs SQLite in defensive mode, where the application's statements may read a
    virtual table's shadow tables (``f_data``, ``f_config``...) but not change them (measured
    with miniflare 4, 2026-04-07: ``DELETE FROM f_data`` raises ``table f_data may not be
    modified: SQLITE_ERROR``). The virtual table's own statements, which SQLite runs while the
    application's statement runs, may: they are told apart by not being named in ``statement``.
    """
    if action == sqlite3.SQLITE_CREATE_TRIGGER:
        if arg2 is not None and arg2.lower() in shadow:
            return "cannot create triggers on shadow tables"
        for target in _trigger_targets(statement):
            if target.lower() in shadow:
                return f'trigger "{arg1}" may not write to shadow table "{target}"'
        return None
    table = arg2 if action == sqlite3.SQLITE_ALTER_TABLE else arg1
    if source is not None or table is None or table.lower() not in shadow:
        return None
    if table.lower() not in _names(statement):
        return None  # the virtual table's own statement
    if action == sqlite3.SQLITE_DROP_TABLE:
        return f"table {table} may not be dropped"
    if action == sqlite3.SQLITE_ALTER_TABLE:
        return f"table {table} may not be altered"
    return f"table {table} may not be modified"
