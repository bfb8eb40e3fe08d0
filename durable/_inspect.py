"""``durable inspect``: what a persisted runtime's directory holds, read without changing a byte.

It reads the on-disk layout ``_directory.py`` documents, with its naming helpers
(``docs/recovery.md`` for the history logs): one folder per namespace (``ns-<hex>`` or ``nsh-<hash>``
for names that are not safe folder names), one ``<id hex>.sqlite`` per object with its ``_cf_KV``
and ``_cf_METADATA`` tables, the objects' names in ``durable-meta.sqlite`` (in ``_cf_METADATA``
for files of an older durable), with point-in-time recovery ``<id hex>.history``, and a snapshot
restore waiting for the next start, ``<id hex>.restore`` (``_snapshot.py``).

Never changing a file is the rule everything here follows:

- a directory whose ``.lock`` is held (a live runtime, in this process or another) is reported with
  the holder's PID, and not read: its files are changing under the runtime, which holds them with
  SQLite's exclusive locking;
- a database without a WAL is opened ``mode=ro&immutable=1`` (no lock, no ``-shm``, no journal); one
  with a WAL left behind (a runtime killed before it closed) is copied with its WAL into a temporary
  directory and the copy is opened, since reading a WAL means recovering it, which writes;
- ``--sql`` runs on that connection with ``PRAGMA query_only``, so even the copy is never written.

A file that is not a readable database is reported as such, and the other objects are still listed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ._codec import decode
from ._directory import DATABASE_FILE, META_FILE, namespace_folder, namespace_of_folder
from ._history import read_history
from ._snapshot import read_restore, restore_file

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["InspectError", "holder", "inspect_directory", "inspect_object", "run"]

_HEX = frozenset("0123456789abcdef")


class InspectError(Exception):
    """What was asked cannot be shown (no such directory, namespace or object; a held directory)."""


def holder(directory: Path) -> str | None:
    """Who holds ``directory`` (``"pid N on HOST"``), or ``None`` if no live runtime does.

    The lock is probed with a shared ``flock`` that is released at once; the file is opened
    read-only and never written.
    """
    lock = directory / ".lock"
    if fcntl is None or not lock.exists():
        return None
    # (errors="replace": what another program wrote there is shown, not a UnicodeDecodeError)
    with open(lock, encoding="utf-8", errors="replace") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            return handle.read().strip() or "an unknown process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def _names(directory: Path) -> dict[tuple[str, str], str]:
    """The objects' names the runtime's metadata database records: ``(namespace, id hex) -> name``."""
    meta = directory / META_FILE
    if not meta.exists():
        return {}
    try:
        with _open(meta) as conn:
            if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'objects'").fetchone()[0]:
                return {}
            return {
                (ns, hexid): name
                for ns, hexid, name in conn.execute("SELECT namespace, id, name FROM objects")
                # (a row another program wrote with TEXT that is not UTF-8, read as bytes, names nothing)
                if type(ns) is str and type(hexid) is str and type(name) is str
            }
    except sqlite3.DatabaseError:
        return {}  # each object's own file is still read (names of an older durable are there)


def _namespaces(directory: Path, names: dict[tuple[str, str], str]) -> dict[str, Path]:
    """Each namespace's folder, by namespace name in name order."""
    by_folder = {namespace_folder(ns): ns for ns, _ in names}
    found = {}
    for entry in directory.iterdir():
        if entry.is_dir() and _objects(entry):
            name = by_folder.get(entry.name) or namespace_of_folder(entry.name) or entry.name
            found[name] = entry
    return dict(sorted(found.items()))


def _is_object_file(file: Path) -> bool:
    return DATABASE_FILE.fullmatch(file.name) is not None and file.is_file()


def _objects(folder: Path) -> list[Path]:
    """The database of each object in ``folder``: those that exist, and those a snapshot restore
    (``<hex>.restore``) waits for, of objects that have never written (the restore creates them)."""
    found = set()
    for entry in folder.iterdir():
        if _is_object_file(entry):
            found.add(entry)
        elif entry.suffix == ".restore" and DATABASE_FILE.fullmatch(entry.stem + ".sqlite") and entry.is_file():
            found.add(entry.with_suffix(".sqlite"))
    return sorted(found)


@contextlib.contextmanager
def _open(file: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``file`` that cannot change it (see the module docstring)."""
    wal = Path(os.fspath(file) + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        with tempfile.TemporaryDirectory(prefix="durable-inspect-") as tmp:
            copy = Path(tmp) / file.name
            shutil.copyfile(file, copy)
            shutil.copyfile(wal, Path(os.fspath(copy) + "-wal"))
            conn = sqlite3.connect(copy)
            conn.text_factory = _text
            try:
                conn.execute("PRAGMA query_only=ON")
                yield conn
            finally:
                conn.close()
        return
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    conn.text_factory = _text
    try:
        conn.execute("PRAGMA query_only=ON")
        yield conn
    finally:
        conn.close()


def _text(data: bytes) -> str | bytes:
    """How TEXT is read: as ``str``, or, when it is not valid UTF-8 (written by another program, or
    ``CAST(x'ff' AS TEXT)``), as its ``bytes``, shown as a BLOB is. With sqlite3's own decoding such
    a key ended ``durable inspect DIR NS NAME`` in a traceback (``--json`` printed nothing), and
    ``--sql`` refused the whole query."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _tables(conn: sqlite3.Connection) -> dict[str, int | None]:
    """Each SQL table's row count, by name; a name that is not UTF-8 is shown by its ``repr()``
    with no count (``None``: a statement cannot name it)."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT IN ('_cf_KV', '_cf_METADATA') ORDER BY name"
        )
    ]
    tables: dict[str, int | None] = {}
    for name in names:
        if type(name) is str:
            tables[name] = conn.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
        else:
            tables[repr(name)] = None
    return tables


def _meta(conn: sqlite3.Connection, key: str) -> Any:
    if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = '_cf_METADATA'").fetchone()[0]:
        return None
    row = conn.execute("SELECT value FROM _cf_METADATA WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _has_kv(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT count(*) FROM sqlite_master WHERE name = '_cf_KV'").fetchone()[0])


def _alarm(ms: Any) -> dict[str, Any] | None:
    """The stored alarm as ``{"ms", "utc"}`` (``utc`` is ``None`` past what a datetime holds), or
    ``{"error"}`` for a value of another type than INTEGER (written by another program)."""
    if ms is None:
        return None
    if type(ms) is not int:
        kind = {bytes: "a BLOB", float: "a REAL", str: "TEXT"}.get(type(ms), type(ms).__name__)
        return {"error": f"the stored alarm is {kind}, not an INTEGER (milliseconds)"}
    try:
        utc: str | None = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError, OSError):
        utc = None
    return {"ms": ms, "utc": utc}


def _summary(file: Path, name: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"id": file.name[:64], "name": name, "keys": None, "tables": None, "alarm": None}
    _pending_snapshot(file, info)
    if not file.exists():  # only a snapshot restore waits for this object: it has no storage yet
        return dict(info, keys=0, tables={}, bytes=0)
    wal = Path(os.fspath(file) + "-wal")
    info["bytes"] = file.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    try:
        with _open(file) as conn:
            legacy = _meta(conn, "name") if name is None else None
            info["name"] = name if name is not None else legacy if type(legacy) is str else None
            info["keys"] = conn.execute("SELECT count(*) FROM _cf_KV").fetchone()[0] if _has_kv(conn) else 0
            info["tables"] = _tables(conn)
            info["alarm"] = _alarm(_meta(conn, "alarm"))
    except sqlite3.DatabaseError as exc:
        info["error"] = f"cannot read {file.name}: {exc}"
    history = file.with_suffix(".history")
    if history.exists():
        try:
            info["history"] = read_history(history)
        except Exception as exc:  # a damaged log is reported like a damaged database
            info["history"] = {"error": f"cannot read {history.name}: {exc}"}
    return info


def _pending_snapshot(file: Path, info: dict[str, Any]) -> None:
    """Note in ``info`` the snapshot restore scheduled for the database ``file`` (its size, or why it cannot be read)."""
    try:
        waiting = read_restore(restore_file(file))
    except Exception as exc:  # a damaged restore file is reported, as a damaged log is
        info["snapshot_restore"] = {"error": str(exc)}
        return
    if waiting is not None:
        info["snapshot_restore"] = {"bytes": len(waiting[0])}


def inspect_directory(directory: Path, namespace: str | None = None) -> dict[str, Any]:
    """Every namespace (or only ``namespace``) and its objects under a runtime's ``directory``.

    Raises ``InspectError``.
    """
    _check_directory(directory)
    names = _names(directory)
    spaces = _namespaces(directory, names)
    if namespace is not None:
        namespace, folder = _namespace(directory, spaces, namespace)
        spaces = {namespace: folder}
    return {
        "directory": str(directory),
        "namespaces": {
            ns: [_summary(f, names.get((ns, f.name[:64]))) for f in _objects(folder)] for ns, folder in spaces.items()
        },
    }


def _namespace(directory: Path, spaces: dict[str, Path], namespace: str) -> tuple[str, Path]:
    """The namespace named ``namespace``, or whose folder is named so (``ns-...``, ``nsh-...``)."""
    for name, folder in spaces.items():
        if namespace in (name, folder.name):
            return name, folder
    known = ", ".join(sorted(spaces)) or "none"
    raise InspectError(f"no namespace {namespace!r} in {str(directory)!r} (namespaces: {known})")


def _check_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise InspectError(f"{str(directory)!r} is not a directory{_object_file(directory)}")
    if not (directory / META_FILE).is_file():
        raise InspectError(
            f"{str(directory)!r} is not a durable storage directory (it has no {META_FILE}): give the "
            "directory a persisted runtime was opened on (durable serve --persist DIR, Runtime(path=DIR))"
            + _nearby(directory)
        )
    held = holder(directory)
    if held is not None:
        raise InspectError(
            f"{str(directory)!r} is held by a live durable.Runtime ({held}); its files change while it runs, "
            "so they are not read: close that runtime first, or inspect a copy of the directory"
        )


def _object_file(path: Path) -> str:
    """The command that shows ``path``, when it is one object's file in a storage directory."""
    if path.suffix != ".sqlite" or not re.fullmatch("[0-9a-f]{64}", path.stem) or not path.is_file():
        return ""
    folder = path.resolve().parent
    if not (folder.parent / META_FILE).is_file():
        return ""
    name = namespace_of_folder(folder.name) or folder.name
    root = os.path.relpath(folder.parent)
    return (
        f"; it is the file of one object of the namespace {name!r}: show it with "
        f"`durable inspect {shlex.quote(root)} {shlex.quote(name)} {shlex.quote(path.stem)}`"
    )


def _nearby(directory: Path) -> str:
    """Where the storage directory is, when ``directory`` is one of its namespace folders or holds it."""
    here = directory.resolve()
    if (here.parent / META_FILE).is_file():
        name = namespace_of_folder(here.name) or here.name
        return f"; it is the folder of the namespace {name!r} in {str(here.parent)!r}"
    with contextlib.suppress(OSError):
        inside = sorted(str(d) for d in directory.iterdir() if (d / META_FILE).is_file())
        if inside:
            return f"; the storage directory {inside[0]!r} is in it"
    return ""


def _find(directory: Path, namespace: str, name_or_id: str, names: dict[tuple[str, str], str]) -> tuple[str, Path]:
    """The namespace's name and the object's file: by id (an upper-case one too), else by name."""
    namespace, folder = _namespace(directory, _namespaces(directory, names), namespace)
    hexid = name_or_id.lower()  # as id_from_string, which accepts upper-case hex
    if len(hexid) == 64 and set(hexid) <= _HEX and _is_object_file(folder / f"{hexid}.sqlite"):
        return namespace, folder / f"{hexid}.sqlite"
    for (ns, named), name in sorted(names.items()):
        if ns == namespace and name == name_or_id and _is_object_file(folder / f"{named}.sqlite"):
            return namespace, folder / f"{named}.sqlite"
    for file in sorted(folder.iterdir()):
        if _is_object_file(file):
            with contextlib.suppress(sqlite3.DatabaseError), _open(file) as conn:
                if _meta(conn, "name") == name_or_id:
                    return namespace, file
    raise InspectError(
        f"no object named or with id {name_or_id!r} in namespace {namespace!r}"
        + _elsewhere(directory, namespace, name_or_id, names)
    )


def _elsewhere(directory: Path, namespace: str, name_or_id: str, names: dict[tuple[str, str], str]) -> str:
    """Which other namespace has an object of that id or name: ids and names are per namespace,
    so the same 64 digits or the same name reach no object in ``namespace``."""
    hexid = name_or_id.lower()
    spaces = _namespaces(directory, names)
    if len(hexid) == 64 and set(hexid) <= _HEX:
        for ns, folder in spaces.items():
            if ns != namespace and _is_object_file(folder / f"{hexid}.sqlite"):
                return f" (that id is an object of namespace {ns!r})"
    for (ns, named), name in sorted(names.items()):
        if ns != namespace and name == name_or_id and ns in spaces and _is_object_file(spaces[ns] / f"{named}.sqlite"):
            return f" (namespace {ns!r} has an object of that name)"
    return ""


class _Text(str):
    """Internal: literal output queued on :func:`show`'s stack (decoded values are never of this type)."""


class _Leave(int):
    """Internal: the id of a container :func:`show` has finished writing."""


_OPEN: dict[type, tuple[str, str, str]] = {
    # type: (opening, closing, what repr() writes for a reference back to a container being written)
    list: ("[", "]", "[...]"),
    tuple: ("(", ")", "(...)"),
    dict: ("{", "}", "{...}"),
    set: ("{", "}", "{...}"),
    frozenset: ("frozenset({", "})", "frozenset(...)"),
}
_EMPTY: dict[type, str] = {list: "[]", tuple: "()", dict: "{}", set: "set()", frozenset: "frozenset()"}


def _int_repr(value: int) -> str:
    # repr() of an int of more than sys.get_int_max_str_digits() digits raises ValueError (a
    # guard against quadratic conversion); hexadecimal has no such limit and is just as exact.
    try:
        return repr(value)
    except ValueError:
        return hex(value)


def show(value: Any) -> str:
    """``repr(value)`` for a decoded value, written without recursion.

    ``repr`` recurses (a value nested 100,000 deep, which storage accepts, raises RecursionError)
    and refuses ints of more than 4,300 digits; this writes the same text, with such ints in
    hexadecimal, and a reference back to a container being written as ``repr`` does (``[...]``).
    """
    parts: list[str] = []
    active: set[int] = set()
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is _Text:
            parts.append(v)
        elif t is _Leave:
            active.discard(v)
        elif t is int:
            parts.append(_int_repr(v))
        elif t not in _OPEN:
            parts.append(repr(v))
        elif not v:
            parts.append(_EMPTY[t])
        elif id(v) in active:
            parts.append(_OPEN[t][2])
        else:
            opening, closing, _ = _OPEN[t]
            active.add(id(v))
            parts.append(opening)
            todo: list[Any] = []
            if t is dict:
                for key, item in v.items():
                    todo += (key, _Text(": "), item, _Text(", "))
            else:
                for item in v:
                    todo += (item, _Text(", "))
            todo[-1] = _Text("," + closing if t is tuple and len(v) == 1 else closing)
            todo.append(_Leave(id(v)))
            todo.reverse()
            stack += todo
    return "".join(parts)


_JSON_DEPTH = 100
"""Containers nested deeper than this are shown as ``{"repr": ...}`` (json.dumps recurses)."""


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: bytes as ``{"bytes": hex}``, what JSON cannot hold as ``{"repr": ...}``.

    Built without recursion; a reference back to a list or dict being converted (a cycle), or a
    container nested more than ``_JSON_DEPTH`` deep, is shown as ``{"repr": ...}`` too.
    """
    root: list[Any] = [None]
    active: set[int] = set()
    # (value, where to put its conversion, index or key there, depth); a _Leave pops a container.
    stack: list[Any] = [(value, root, 0, 0)]
    while stack:
        entry = stack.pop()
        if type(entry) is _Leave:
            active.discard(entry)
            continue
        v, target, slot, depth = entry
        t = type(v)
        if v is None or t is bool or t is str:
            target[slot] = v
        elif t is int:
            text = _int_repr(v)
            target[slot] = {"repr": text} if "x" in text else v
        elif t is float:
            target[slot] = v if math.isfinite(v) else repr(v)  # "nan", "inf", "-inf" (docs/guide.md)
        elif t is bytes or t is bytearray:
            target[slot] = {"bytes": bytes(v).hex()}
        elif (t is list or t is tuple or (t is dict and all(type(k) is str for k in v))) and depth < _JSON_DEPTH:
            if id(v) in active:
                target[slot] = {"repr": _OPEN[t][2]}
                continue
            active.add(id(v))
            stack.append(_Leave(id(v)))
            if t is dict:
                out: Any = dict.fromkeys(v)
                stack += [(item, out, key, depth + 1) for key, item in reversed(v.items())]
            else:
                out = [None] * len(v)
                stack += [(item, out, i, depth + 1) for i, item in reversed(list(enumerate(v)))]
            target[slot] = out
        else:
            target[slot] = {"repr": show(v)}
    return root[0]


def _read_only_authorizer(refused: list[str], action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
    """Deny what ``PRAGMA query_only`` lets through and would still write: a file made by
    ``ATTACH`` or ``VACUUM INTO`` (both authorized as ``SQLITE_ATTACH``), or turning ``query_only`` off.
    """
    if action == sqlite3.SQLITE_ATTACH and not arg1:  # VACUUM attaches a temporary database, ''
        refused.append(
            "VACUUM and ATTACH are refused: durable inspect runs one read-only query and never changes a file"
        )
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_ATTACH:
        refused.append(
            f"ATTACH and VACUUM INTO are refused: they would create or change the file {arg1!r}, "
            "and durable inspect never changes a file"
        )
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_DETACH:
        refused.append("DETACH is refused: durable inspect runs one read-only query")
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "query_only" and arg2 is not None:
        refused.append("PRAGMA query_only cannot be changed: durable inspect runs the query read-only")
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _no_op() -> int:
    return 0


_NO_STATEMENT = re.compile(r"(?:\s|;|--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/|\Z))*+")
"""Blanks, semicolons and comments only: SQLite runs no statement (and ``--sql`` would print "(0 rows)").
A block comment ends at its first ``*/`` (or the end of the query, as SQLite reads an unclosed one):
with ``.*?`` and ``\\Z`` the match could stretch a leading ``/* */`` over the statement after it,
and ``/* note */ SELECT 1`` was refused as having no statement."""


def inspect_object(directory: Path, namespace: str, name_or_id: str, sql: str | None = None) -> dict[str, Any]:
    """One object: its decoded key-value entries, tables, alarm; or the rows of one read-only query."""
    _check_directory(directory)
    names = _names(directory)
    namespace, file = _find(directory, namespace, name_or_id, names)
    info = _summary(file, names.get((namespace, file.name[:64])))
    if "error" in info:
        raise InspectError(info["error"])
    with _open(file) as conn:
        if sql is not None:
            if _NO_STATEMENT.fullmatch(sql):
                raise InspectError(f"--sql needs one SQL statement, not {sql!r}")
            refused: list[str] = []
            conn.set_authorizer(functools.partial(_read_only_authorizer, refused))
            # SQLite's loop runs no Python code, so Ctrl-C could not stop a query: this handler
            # runs some, where KeyboardInterrupt is raised; sqlite3 then aborts with "interrupted".
            conn.set_progress_handler(_no_op, 10_000)
            try:
                cursor = conn.execute(sql)
                columns = [d[0] for d in cursor.description or ()]
                rows = [list(row) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                if str(exc) == "interrupted":
                    raise KeyboardInterrupt from exc
                if refused:
                    raise InspectError(f"query refused: {refused[0]}") from exc
                why = " (the query runs read-only: PRAGMA query_only)" if "readonly" in str(exc) else ""
                raise InspectError(f"query failed: {exc}{why}") from exc
            info["query"] = {"sql": sql, "columns": columns, "rows": rows}
            return info
        entries: dict[str, Any] = {}
        if _has_kv(conn):
            for key, blob in conn.execute("SELECT key, value FROM _cf_KV ORDER BY key"):
                try:
                    entries[key] = decode(blob)
                except Exception as exc:  # a value this durable cannot decode is shown, not fatal
                    entries[key] = _Undecodable(f"<undecodable value: {exc}>")
        info["entries"] = entries
    return info


class _Undecodable(str):
    def __repr__(self) -> str:
        return str(self)


# -- output -------------------------------------------------------------------------------------


def _as_json(info: dict[str, Any]) -> dict[str, Any]:
    out = dict(info)
    if "entries" in out:
        # A key is TEXT; one another program stored as a BLOB is shown by its repr.
        out["entries"] = {k if type(k) is str else repr(k): _jsonable(v) for k, v in out["entries"].items()}
    if "query" in out:
        out["query"] = dict(out["query"], rows=[[_jsonable(v) for v in row] for row in out["query"]["rows"]])
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _show_alarm(alarm: dict[str, Any] | None) -> str:
    if alarm is None:
        return "-"
    if "error" in alarm:
        return f"ERROR: {alarm['error']}"
    return alarm["utc"] or f"{alarm['ms']} ms (beyond the year 9999)"


def _label(text: str) -> str:
    """A table or column name (or the directory) as printed: as it is, or by its ``repr()`` when it
    holds a character that is not printable. A name is any string in SQLite, and one with a newline
    or a terminal escape (``"a\\nb"``, ``"\\x1b[31m"``) printed raw broke the listing's lines and
    drove the terminal (keys, values and object names were already shown by ``repr()``)."""
    return text if text.isprintable() else repr(text)


def _print_object(info: dict[str, Any], out: TextIO, indent: str = "") -> None:
    if "error" in info:
        name = f"  name={info['name']!r}" if info["name"] is not None else ""
        out.write(f"{indent}{info['id']}{name}  ERROR: {info['error']}\n")
        return
    tables = (
        ", ".join(
            f"{_label(name)} ({'? rows' if rows is None else _count(rows, 'row')})"
            for name, rows in info["tables"].items()
        )
        or "-"
    )
    alarm = _show_alarm(info["alarm"])
    name = repr(info["name"]) if info["name"] is not None else "-"
    out.write(
        f"{indent}{info['id']}  name={name}  keys={info['keys']}  tables={tables}  bytes={info['bytes']}  alarm={alarm}"
    )
    if "history" in info:
        history = info["history"]
        if "error" in history:
            out.write(f"  history=ERROR: {history['error']}")
        else:
            out.write(f"  history={_count(history['states'], 'state')}, {history['bytes']} bytes")
            if history["restore_pending"]:
                out.write(", restore pending")
    if "snapshot_restore" in info:
        restore = info["snapshot_restore"]
        if "error" in restore:
            out.write(f"  snapshot restore=ERROR: {restore['error']}")
        else:
            out.write(f"  snapshot restore pending ({restore['bytes']} bytes)")
    out.write("\n")


def _print(info: dict[str, Any], out: TextIO) -> None:
    if "namespaces" in info:
        out.write(f"{_label(info['directory'])}\n")
        if not info["namespaces"]:
            out.write("  (no objects)\n")
        for name, objects in info["namespaces"].items():
            out.write(f"namespace {name!r}: {len(objects)} object{'s' if len(objects) != 1 else ''}\n")
            for obj in objects:
                _print_object(obj, out, "  ")
        return
    _print_object(info, out)
    if "query" in info:
        query = info["query"]
        out.write(" | ".join(_label(column) for column in query["columns"]) + "\n")
        for row in query["rows"]:
            out.write(" | ".join(repr(v) if isinstance(v, (bytes, str)) else str(v) for v in row) + "\n")
        out.write(f"({len(query['rows'])} row{'s' if len(query['rows']) != 1 else ''})\n")
        return
    out.write(f"{len(info['entries'])} key-value entr{'ies' if len(info['entries']) != 1 else 'y'}\n")
    for key, value in info["entries"].items():
        out.write(f"  {key!r}: {show(value)}\n")


def run(
    directory: str,
    namespace: str | None = None,
    name_or_id: str | None = None,
    *,
    sql: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``durable inspect`` command: print, return the exit code (0, or 1 with a message on stderr)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    with _escaping(out, err):
        return _run(directory, namespace, name_or_id, sql, as_json, out, err)


@contextlib.contextmanager
def _escaping(*streams: TextIO) -> Iterator[None]:
    """While the command prints, a character the terminal's encoding lacks (a cp1252 console,
    PYTHONIOENCODING=ascii) on sys.stdout or sys.stderr is escaped as repr() escapes it, instead of
    ending the command in UnicodeEncodeError; the streams' error handlers are restored after."""
    changed = []
    for stream in {id(s): s for s in streams if s is sys.stdout or s is sys.stderr}.values():
        with contextlib.suppress(AttributeError, ValueError, OSError):
            errors = stream.errors
            stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
            changed.append((stream, errors))
    try:
        yield
    finally:
        for stream, errors in changed:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.reconfigure(errors=errors)  # type: ignore[attr-defined]


def _run(
    directory: str,
    namespace: str | None,
    name_or_id: str | None,
    sql: str | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        if sql is not None and name_or_id is None:
            raise InspectError("--sql needs an object: durable inspect DIR NAMESPACE NAME_OR_ID --sql QUERY")
        if namespace is not None and name_or_id is None:
            info = inspect_directory(Path(directory), namespace)
        elif namespace is not None and name_or_id is not None:
            info = inspect_object(Path(directory), namespace, name_or_id, sql)
        else:
            info = inspect_directory(Path(directory))
    except InspectError as exc:
        if as_json:
            held = holder(Path(directory)) if Path(directory).is_dir() else None
            out.write(json.dumps({"error": str(exc), "held_by": held}) + "\n")
        err.write(f"durable inspect: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("durable inspect: interrupted\n")
        return 130  # as a shell reports a command stopped by SIGINT
    try:
        if as_json:
            out.write(json.dumps(_as_json(info), indent=2, sort_keys=True) + "\n")
        else:
            _print(info, out)
        out.flush()
    except BrokenPipeError:
        # The reader stopped early (``durable inspect DIR | head``): not an error. Python would
        # report the pipe again when it flushes stdout at exit, so stdout goes to devnull.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return 0
