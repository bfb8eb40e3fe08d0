"""Random storage operation sequences for the differential test.

A sequence is ``{"backend": "sqlite" | "kv", "calls": [[op, ...], ...]}``: each call is one RPC to
the sequence's own object, each op a JSON object that ``worker.js`` and ``runner.Harness`` both
execute. A call ``[{"op": "restart"}]`` resets the object (``ctx.abort()``) between two others.
``widen`` adds, from a stream of its own, the everyday options of the asynchronous calls
(``opts``), ``await storage.sync()`` (``sync``) and calls made together (``all``: ``Promise.all``,
``asyncio.gather`` here, each call's result or error in its place).
Keys come from an alphabet chosen to break naive ordering and encoding (astral characters,
combining marks, U+FFFF, NUL and its neighbours, the surrogate boundaries); values cover every
structured-clone type both languages have (see ``codec``). The generator never produces what
``allowances.AVOIDED`` or ``allowances.OPEN`` says it must not (each entry names its reason).
"""

from __future__ import annotations

import random
import re
from typing import Any

from . import allowances
from .codec import Tagged, number_to_json

Op = dict[str, Any]
Sequence = dict[str, Any]

ALPHABET = [
    "a",
    "b",
    "z",
    "A",
    "é",
    "e\u0301",
    "\u0301",
    "\x00",
    "\x01",
    "\x7f",
    "\x80",
    "\uffff",
    "\ufffe",
    "\ufffd",
    "\ud7ff",
    "\ue000",
    "\U00010000",
    "\U0001f600",
    "\U0010ffff",
    "/",
    " ",
    "~",
]
"""Characters keys are made of: sorting by UTF-16 units, UTF-8 bytes and code points differ on them."""

LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00"]

LATE_ALARMS: list[float] = [] if allowances.is_open("alarm-time-range") else [9_223_372_036_855, 1e300]
"""Alarm times workerd refuses as too late (2**63 ns and more)."""

RESTART: Op = {"op": "restart"}

OPTIONS: dict[str, list[str]] = {
    "get": ["allowConcurrency", "noCache"],
    "get_many": ["allowConcurrency", "noCache"],
    "list": ["allowConcurrency", "noCache"],
    "put": ["allowUnconfirmed", "noCache"],
    "put_many": ["allowUnconfirmed", "noCache"],
    "delete": ["allowUnconfirmed", "noCache"],
    "delete_many": ["allowUnconfirmed", "noCache"],
    "get_alarm": ["allowConcurrency"],
    "set_alarm": ["allowUnconfirmed"],
    "delete_alarm": ["allowUnconfirmed"],
}
"""The options each asynchronous call may get (``opts``, JavaScript's names; ``runner`` passes
them as ``allow_concurrency=`` and so on)."""

CONCURRENT = {*OPTIONS, "txn", "sync", "delete_all"}
"""The ops an ``all`` op may run together (each a promise in JavaScript)."""

LIMIT = 2 * 1024 * 1024
"""The largest string, BLOB, row or key plus value of a SQLite-backed object (allowance "production-limits")."""

COLUMNS = "(id INTEGER PRIMARY KEY, b TEXT, c BLOB, d REAL)"
"""The columns of tables t1 and t2 (``CREATE TABLE IF NOT EXISTS``)."""

ALARM_BASE = 4_102_444_800_000
"""2100-01-01 in ms: alarms are set far in the future so that none fires during a run."""


def _rep_bytes(binding: Any) -> int:
    """The UTF-8 size of a long-text binding (``{"rep": [char, n]}``), 0 for any other."""
    if isinstance(binding, dict) and "rep" in binding:
        char, count = binding["rep"]
        return len(char.encode()) * int(count)
    return 0


def within_row_limit(query: str, bindings: list[Any]) -> list[Any]:
    """``bindings`` of a statement that writes rows, with at most one long text when together they
    would pass the 2 MB row limit: the others become their one character (no draw changes).

    Two long texts bound in one row made a row past production's limit, which durable refuses
    (``string or blob too big: SQLITE_TOOBIG``) and local workerd stores (allowance
    "production-limits"): ``INSERT INTO t1 (b, d) VALUES (?, ?), ...`` with 2 MiB of ``é`` and 500
    more (run.py --seed 9953, sequence 187)."""
    if re.match(r"\s*(INSERT|UPDATE|REPLACE)\b", query, re.IGNORECASE) is None:
        return bindings
    sizes = [_rep_bytes(b) for b in bindings]
    if sum(sizes) <= LIMIT - 1024 or sum(1 for n in sizes if n) < 2:
        return bindings
    kept = sizes.index(max(sizes))
    return [b["rep"][0] if n and i != kept else b for i, (b, n) in enumerate(zip(bindings, sizes))]


class Generator:
    """Draws sequences from a seeded ``random.Random`` (the same seed gives the same sequences)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ended = random.Random(f"ended-{seed}")
        """The stream of the calls on ended transactions (``ended_txn_calls``)."""
        self.more = random.Random(f"more-{seed}")
        """The stream of ``widen``'s everyday shapes (options, ``sync()``, ``Promise.all``)."""
        self.counted = random.Random(f"counted-{seed}")
        """The stream of ``counted_sql``'s statements (those whose rowsRead durable counts as workerd)."""
        self.keyed = random.Random(f"keyed-{seed}")
        """The stream of ``hashable``'s Date and Uint8Array keys and members."""
        self.edge = random.Random(f"edges-{seed}")
        """The stream of ``edges``' shapes (deletes not awaited, lists right after them, keys and
        values at the key-value backend's limits), so that the other streams draw what they drew."""
        self.references = False
        """Whether the sequence drawn so far created a table with a ``REFERENCES`` clause."""
        self.triggers: set[str] = set()
        """The tables the sequence drawn so far created a trigger on."""
        self.unique: set[str] = {"k"}
        """The tables the sequence drawn so far may have created with a UNIQUE column."""
        self.made: set[str] = set()
        """The tables t1 and t2 the sequence drawn so far created (and did not drop since)."""
        """Whether the sequence drawn so far put no entries (``put({})``)."""
        self.keys: list[str] = []
        self.backend = "sqlite"

    # -- keys and values --

    def key(self) -> str:
        rng = self.rng
        if self.keys and rng.random() < 0.7:
            return rng.choice(self.keys)
        if self.backend == "sqlite" and rng.random() < 0.02:
            # Long keys (no key limit of its own on SQLite-backed classes; see allowance
            # "production-limits" for the key-value backend's).
            key = rng.choice(["k", "\u00e9", "\U0001f600"]) * rng.choice([512, 1024, 2048, 2049, 4096])
            self.keys.append(key)
            return key
        key = "".join(rng.choice(ALPHABET) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])))
        self.keys.append(key)
        return key

    def bound(self) -> str:
        """A list() bound: a key, a prefix of one, or (when allowed) a string with a lone surrogate."""
        rng = self.rng
        if not allowances.is_open("lone-surrogate-bounds") and rng.random() < 0.05:
            return rng.choice(LONE_SURROGATES)
        key = self.key()
        return key[: rng.randint(0, len(key))]

    def scalar(self) -> Tagged:
        rng = self.rng
        kind = rng.choice(["null", "bool", "num", "num", "big", "str", "str", "bytes", "buf", "date"])
        if kind == "null":
            return {"t": "null"}
        if kind == "bool":
            return {"t": "bool", "v": rng.random() < 0.5}
        if kind == "num":
            x = rng.choice(
                [
                    0.0,
                    -0.0,
                    1.0,
                    -1.5,
                    0.1,
                    1e300,
                    -1e-300,
                    5e-324,
                    2.0**53,
                    float("nan"),
                    float("inf"),
                    float("-inf"),
                    rng.uniform(-1e6, 1e6),
                ]
            )
            return {"t": "num", "v": number_to_json(x)}
        if kind == "big":
            n = rng.choice([0, 1, -1, 127, 2**53 + 1, 2**63, -(2**64) - 1, 10**40, rng.randint(-(10**9), 10**9)])
            return {"t": "big", "v": str(n)}
        if kind == "str":
            text = "".join(rng.choice(ALPHABET + LONE_SURROGATES) for _ in range(rng.randint(0, 5)))
            return {"t": "str", "v": text}
        if kind in ("bytes", "buf"):
            return {"t": kind, "v": rng.randbytes(rng.randint(0, 6)).hex()}
        # Dates inside Python's datetime range (years 1 to 9999), whole milliseconds.
        ms = rng.choice([0, -1, 1, 253_402_300_799_999, -62_135_596_800_000, rng.randint(-(10**13), 10**13)])
        return {"t": "date", "v": ms}

    def hashable(self, used: set[str]) -> Tagged:
        """A Map key or Set member that no other in the same container equals on either side.

        Python merges ``1``, ``1.0`` and ``True`` and never matches NaN; JavaScript's SameValueZero
        merges ``0`` and ``-0``. Drawing from strings, BigInts, non-integral finite numbers, null,
        Dates and Uint8Arrays, and skipping repeats (equal Dates or Uint8Arrays are two members in
        JavaScript, one here), keeps both sides with the same members.
        """
        rng = self.rng
        while True:
            kind = rng.choice(["str", "str", "big", "num", "null"])
            if kind == "str":
                item: Tagged = {"t": "str", "v": "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 3)))}
            elif kind == "big":
                item = {"t": "big", "v": str(rng.randint(-5, 5))}
            elif kind == "num":
                item = {"t": "num", "v": rng.choice([0.5, -2.25, 1e-9, 3.75])}
            else:
                item = {"t": "null"}
            ident = repr(sorted(item.items()))
            if ident not in used:
                used.add(ident)
                break
        keyed = self.keyed
        if keyed.random() >= 0.1:
            return item
        # In its place (from a stream of its own: the main one draws what it drew before) a Date
        # or a Uint8Array, a Map key or Set member by identity in JavaScript, by value here.
        while True:
            if keyed.random() < 0.5:
                other: Tagged = {"t": "date", "v": keyed.choice([0, -1, 5, 253_402_300_799_999])}
            else:
                other = {"t": "bytes", "v": keyed.randbytes(keyed.randint(0, 2)).hex()}
            ident = repr(sorted(other.items()))
            if ident not in used:
                used.add(ident)
                return other

    def value(self) -> Tagged:
        """A stored value: a scalar or containers up to 3 deep, sometimes shared or cyclic.

        Rarely a long string near the SQLite-backed 2 MB limit of a key and its value, or a deeply
        nested array.
        """
        rng = self.rng
        self._labels: list[int] = []
        if self.backend == "sqlite" and rng.random() < 0.01:
            # At most 2 MB with its key (allowance "production-limits").
            return {"t": "str", "v": "x" * (LIMIT - rng.choice([32768, 20000]))}
        if rng.random() < 0.01:
            nested: Tagged = self.scalar()
            for _ in range(rng.choice([30, 100, 150])):
                nested = {"t": "arr", "v": [nested]}
            return nested
        return self._value(0)

    def _container(self, tag: str, items: Any) -> Tagged:
        label = len(self._labels)
        self._labels.append(label)
        return {"t": tag, "id": label, "v": items}

    def _value(self, depth: int) -> Tagged:
        rng = self.rng
        if depth and self._labels and rng.random() < 0.08:
            # A container met before or an enclosing one (a cycle): structured clone keeps both.
            return {"t": "ref", "v": rng.choice(self._labels)}
        kind = rng.random()
        if depth >= 3 or kind < 0.55:
            scalar = self.scalar()
            if scalar["t"] == "buf":
                return self._container("buf", scalar["v"])
            return scalar
        size = rng.randint(0, 4)
        if kind < 0.75:
            arr = self._container("arr", [])
            arr["v"].extend(self._value(depth + 1) for _ in range(size))
            return arr
        used: set[str] = set()
        if kind < 0.9:
            mapping = self._container("map", [])
            mapping["v"].extend([self.hashable(used), self._value(depth + 1)] for _ in range(size))
            return mapping
        return self._container("set", [self.hashable(used) for _ in range(size)])

    # -- operations --

    def list_options(self) -> dict[str, Any]:
        rng = self.rng
        options: dict[str, Any] = {}
        for name in ("start", "start_after", "end", "prefix"):
            if rng.random() < 0.25:
                options[name] = self.bound()
        if "start" in options and "start_after" in options and rng.random() < 0.7:
            del options["start_after"]  # keep most lists valid; the rest check the error
        if rng.random() < 0.3:
            options["reverse"] = True
        if rng.random() < 0.3:
            options["limit"] = rng.choice([1, 2, 3, 10, 0, -1]) if rng.random() < 0.9 else 1000
        return options

    def kv_op(self) -> Op:
        """An operation of the asynchronous key-value API (usable on ``storage`` and ``txn``)."""
        rng = self.rng
        kind = rng.choice(
            [
                "get",
                "get",
                "get_many",
                "put",
                "put",
                "put",
                "put_many",
                "delete",
                "delete_many",
                "list",
                "list",
                "get_alarm",
                "set_alarm",
                "delete_alarm",
            ]
        )
        if kind == "get":
            return {"op": "get", "key": self.key()}
        if kind in ("get_many", "delete_many"):
            count = rng.randint(0, 4)
            if self.backend == "sqlite" and rng.random() < 0.1:
                count = rng.choice([127, 128, 129, 300])  # duplicates too, as keys repeat
            return {"op": kind, "keys": [self.key() for _ in range(count)]}
        if kind == "put":
            if rng.random() < 0.2:
                return {"op": "put", "key": self.key(), "value": self.value(), "wait": False}
            return {"op": "put", "key": self.key(), "value": self.value()}
        if kind == "put_many":
            count = rng.randint(0, 4)
            if self.backend == "sqlite" and rng.random() < 0.1:
                count = rng.choice([128, 129, 200])
            keys = {self.key() for _ in range(count)}
            return {"op": "put_many", "entries": [[k, self.value()] for k in sorted(keys)]}
        if kind == "delete":
            return {"op": "delete", "key": self.key()}
        if kind == "list":
            return {"op": "list", "options": self.list_options()}
        if kind == "set_alarm":
            time: float = ALARM_BASE + rng.randint(0, 10**6)
            if rng.random() < 0.3:
                # Fractions of a ms, the latest time workerd takes, times <= 0 (refused) and later ones.
                time = rng.choice([time + 0.5, time + 0.999, 0, -1000, -0.5, 9_223_372_036_854.7, *LATE_ALARMS])
            return {"op": "set_alarm", "time": time}
        return {"op": kind}

    def sync_op(self, backend: str) -> Op:
        """An operation of the synchronous APIs: ``storage.kv`` and ``storage.sql``."""
        rng = self.rng
        if rng.random() < 0.5:
            op = self.sql_op()
            if rng.random() < 0.4:
                modes = ["toArray", "one", "unread", "next", "twice"]
                if "RETURNING" in op["query"]:
                    # workerd fails the whole call ("internal error; reference = ...", miniflare
                    # 4.20260426) when an INSERT ... RETURNING cursor is left unread.
                    modes.remove("unread")
                op = {**op, "op": "sql_cursor", "mode": rng.choice(modes)}
            return op
        kind = rng.choice(["kv_get", "kv_put", "kv_put", "kv_delete", "kv_list"])
        if kind == "kv_get" or kind == "kv_delete":
            return {"op": kind, "key": self.key()}
        if kind == "kv_put":
            return {"op": kind, "key": self.key(), "value": self.value()}
        return {"op": kind, "options": self.list_options()}

    def text(self) -> str:
        rng = self.rng
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4)))

    def binding(self) -> Any:
        rng = self.rng
        kind = rng.random()
        if kind < 0.15:
            return None
        if kind < 0.45:
            # JavaScript numbers bind as REAL: integral values stay integral on both sides.
            return rng.choice([0, 1, -7, 2.5, 1e100, 0.1, rng.randint(-1000, 1000)])
        if kind < 0.75:
            return self.text()
        if kind < 0.85:
            return {"blob": rng.randbytes(rng.randint(0, 4)).hex()}
        return self.odd_binding()

    def odd_binding(self) -> Any:
        """A binding of a rarer kind: a special double or long text (up to the 2 MB limit).

        No BigInt or boolean (allowance "types"), no lone surrogate (allowance
        "lone-surrogate-keys"), nothing past 2 MB (allowance "production-limits").
        """
        rng = self.rng
        if rng.random() < 0.6:
            return {"num": rng.choice(["NaN", "Infinity", "-Infinity", "-0"])}
        char = rng.choice(["x", "\u00e9"])
        size = rng.choice([1000, LIMIT // 4, LIMIT // 2 - 1, LIMIT - 64, LIMIT])
        return {"rep": [char, size // len(char.encode())]}

    def code_point(self) -> int:
        """An argument for SQL's ``char()``: a surrogate makes text that is not valid UTF-8."""
        point = self.rng.randint(0, 0x10FFFF)
        if allowances.is_open("invalid-utf8-text") and 0xD800 <= point <= 0xDFFF:
            point -= 0x800
        return point

    def sql_op(self) -> Op:
        rng = self.rng
        table = rng.choice(["t1", "t1", "t2"])
        b = self.binding
        # A BLOB made text by a function may not be valid UTF-8 (an open item while it fails here).
        text = self.text if allowances.is_open("invalid-utf8-text") else self.binding
        unique = "" if allowances.is_open("rows-written-indexes") else " UNIQUE"
        choices: list[tuple[str, list[Any]]] = [
            (f"CREATE TABLE IF NOT EXISTS {table} {COLUMNS}", []),
            (f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, b{unique}, c, d)", []),
            (f"INSERT INTO {table} (b, c, d) VALUES (?, ?, ?)", [b(), b(), b()]),
            (f"INSERT INTO {table} (id, b) VALUES (?, ?)", [rng.randint(1, 4), b()]),
            (f"INSERT INTO {table} (b) VALUES (?), (?) RETURNING id, b", [b(), b()]),
            (f"SELECT * FROM {table} ORDER BY id", []),
            (f"SELECT id, b, typeof(b), length(b), hex(c), d FROM {table} WHERE id >= ? ORDER BY id DESC", [b()]),
            (f"SELECT count(*) AS n, total(d), max(b) FROM {table}", []),
            (f"UPDATE {table} SET d = coalesce(d, 0) + ? WHERE id % 2 = 1", [b()]),
            (f"DELETE FROM {table} WHERE id > ?", [rng.randint(0, 4)]),
            (f"DROP TABLE {table}", []),
            ("SELECT ? AS x, typeof(?) AS y", [b(), b()]),
            ("SELECT ?, ?", [b()]),
            ("SELECT 1", [b()]),
            ("SELEC 1", []),
            ("SELECT * FROM nowhere", []),
            ("", []),
            # A text of its own each time: see allowance "workerd-statement-cache".
            (f"SELECT {rng.randint(0, 10**9)} AS one; SELECT 2 AS two", []),
            ("SELECT upper(?), lower(?), unicode(?), char(?)", [text(), text(), text(), self.code_point()]),
            # No BLOB, no long fraction: see allowance "sqlite-version".
            (
                "SELECT json_object('k', ?), json_array(?, ?)",
                [self.text(), self.text(), rng.choice([0.5, 0.1, -2.25, 1e100])],
            ),
            ("SELECT 9007199254740993 AS big, 1e308 * 10 AS inf, -0.0 AS z, 10 / 4, 10 / 4.0, 7 % 3", []),
            ("BEGIN", []),
            ("SELECT ?2 AS second, ?1 AS first", [b(), b()]),
            ("SELECT :a AS a, @b AS b, $c AS c", [b(), b(), b()]),
            (
                f"INSERT INTO {table} (id, b) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET b = excluded.b",
                [rng.randint(1, 4), b()],
            ),
            (f"ALTER TABLE {table} ADD COLUMN e DEFAULT 7", []),
            (f"SELECT * FROM {table} ORDER BY id LIMIT ?", [b()]),
            (f"PRAGMA table_info({table})", []),
            (
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) SELECT sum(x) FROM n",
                [rng.randint(0, 50)],
            ),
            (
                "SELECT zeroblob(3), x'00' || 'a', quote(?), printf('%.3f|%5s|%x', ?, ?, ?)",
                [self.text(), 2.5, self.text(), 255],  # no infinity: allowance "sqlite-version"
            ),
            ("SELECT 1 / 0, 5 % 0, abs(-9223372036854775808)", []),
            (f"SELECT b FROM {table} ORDER BY b COLLATE BINARY", []),
            *self.more_sql(table),
            *self.everyday_sql(table),
        ]
        query, bindings = rng.choice(choices)
        if self.counted.random() < 0.5:
            query, bindings = self.counted_draw(table)
            if missing := [t for t in ("t1", "t2") if re.search(rf"\b{t}\b", query) and t not in self.made]:
                # (a statement on a table that is not there counts nothing: make it first)
                query, bindings = f"CREATE TABLE IF NOT EXISTS {missing[0]} {COLUMNS}", []
        op: Op = {"op": "sql", "query": query, "bindings": within_row_limit(query, bindings)}
        uncounted = self.uncounted(query)
        if uncounted:
            op["uncounted"] = uncounted
        return op

    def uncounted(self, query: str) -> list[str]:
        """The counts of ``query`` that durable counts otherwise than workerd in the schema the
        sequence drew so far (docs/sql.md; compared for neither side, ``allowances.normalize``),
        and the schema ``query`` adds to:

        - a statement that fires a trigger (an INSERT into a table with one): its rows read and
          written (``trigger-counts``);
        - in a schema with a ``REFERENCES`` clause, a DROP or a DELETE from the parent table: its
          rows read (``rows-read``);
        - ``INSERT OR REPLACE`` and ``ON CONFLICT DO NOTHING`` into a table with a UNIQUE column
          other than the rowid: its rows read (``rows-read``);
        - after a ``put({})`` (which makes workerd's ``_cf_KV`` table, not durable's), a DROP or
          ALTER TABLE, which count ``sqlite_master``'s rows: its rows read.
        """
        if "REFERENCES" in query:
            self.references = True
        if match := re.match(r"\s*CREATE TABLE (?:IF NOT EXISTS )?(t[12]) ", query):
            self.made.add(match.group(1))
        if match := re.match(r"\s*DROP TABLE (?:IF EXISTS )?(t[12])", query):
            self.made.discard(match.group(1))
        if match := re.match(r"\s*CREATE TRIGGER IF NOT EXISTS \w+ AFTER INSERT ON (\w+)", query):
            self.triggers.add(match.group(1))
        if match := re.match(r"\s*CREATE TABLE (\w+) \([^)]*UNIQUE", query):
            self.unique.add(match.group(1))
        if any(re.search(rf"\bINTO {t}\b", query) for t in self.triggers):
            return ["rowsRead", "rowsWritten"]
        if self.references and re.match(r"\s*(DROP|DELETE FROM p\b)", query):
            return ["rowsRead"]
        replaces = re.match(r"\s*INSERT OR REPLACE INTO (\w+)", query) or re.match(
            r"\s*INSERT INTO (\w+) .* ON CONFLICT DO NOTHING", query
        )
        if replaces and replaces.group(1) in self.unique:
            return ["rowsRead"]
        return []

    def counted_draw(self, table: str) -> tuple[str, list[Any]]:
        """One of ``counted_sql``'s statements, drawn from a stream of its own (so that the main
        stream draws what it drew before they were added)."""
        main, keys = self.rng, list(self.keys)
        self.rng = self.counted
        try:
            return self.rng.choice(self.counted_sql(table))
        finally:
            self.rng, self.keys = main, keys

    def counted_sql(self, table: str) -> list[tuple[str, list[Any]]]:
        """Statements of the shapes whose rowsRead durable counts as workerd does (docs/sql.md):
        joins on a rowid, ``IN (SELECT ...)``, aggregates over a range, ranges with another test
        and ranges fed to a sorter, GROUP BY of a whole table, INSERT ... SELECT from another table,
        writes with RETURNING, CREATE INDEX, DROP and ALTER TABLE ... ADD COLUMN; their
        ``rowsRead`` is compared (``allowances._READS_UNCOUNTED`` leaves them out)."""
        rng = self.rng
        b = self.binding
        other = "t2" if table == "t1" else "t1"
        low, high = rng.randint(-1, 4), rng.randint(0, 6)
        column = rng.randint(0, 3)
        return [
            # (x.c, not x.b: with an index on b, SQLite's outer loop scans it, a join durable counts
            # otherwise; nor an IN of another table's rowid, ORDER BY id DESC, or a key of the REAL
            # column d on an empty table, an expression in the subquery: durable counts them otherwise)
            (f"SELECT x.id, x.c, y.d FROM {table} AS x JOIN {other} AS y ON y.id = x.id", []),
            (f"SELECT x.id, y.b FROM {table} AS x LEFT JOIN {other} AS y ON y.id = x.c", []),
            (f"SELECT id, b FROM {table} WHERE id IN (SELECT c FROM {other})", []),
            (f"SELECT id, d FROM {table} WHERE id IN (SELECT c FROM {other})", []),
            (f"SELECT count(*) AS n, total(d) FROM {table} WHERE id > ?", [low]),
            (f"SELECT count(*) AS n, max(d) FROM {table} WHERE id BETWEEN ? AND ?", [low, high]),
            (f"SELECT count(*) AS n, min(id) FROM {table} WHERE b BETWEEN ? AND ?", [b(), b()]),
            (f"SELECT id, b FROM {table} WHERE id >= ? AND d IS NOT NULL", [low]),
            (f"SELECT id, d FROM {table} WHERE b = ? AND d IS NOT ?", [b(), b()]),
            (f"UPDATE {table} SET d = ? WHERE id > ? AND b IS NOT NULL", [b(), low]),
            (f"DELETE FROM {table} WHERE id >= ? AND d < ?", [low, b()]),
            (f"SELECT id, d FROM {table} WHERE id > ? ORDER BY d", [low]),
            (f"SELECT id, d FROM {table} WHERE b = ? ORDER BY d DESC, id", [b()]),
            (f"SELECT d, count(*) AS n FROM {table} GROUP BY d", []),
            (
                f"SELECT typeof(b) AS k, count(*) AS n FROM {table} GROUP BY typeof(b) HAVING count(*) > ? ORDER BY k",
                [rng.randint(0, 2)],
            ),
            (f"INSERT INTO {other} (b, d) SELECT b, d FROM {table}", []),
            (f"INSERT INTO {table} (b, c, d) VALUES {', '.join(['(?, ?, ?)'] * 4)}", [b() for _ in range(12)]),
            (f"INSERT INTO {table} (b, c, d) VALUES {', '.join(['(?, ?, ?)'] * 4)}", [b() for _ in range(12)]),
            (f"INSERT INTO {table} (b, d) VALUES (?, ?), (?, ?), (?, ?) RETURNING id, d", [b() for _ in range(6)]),
            (f"UPDATE {table} SET d = ? WHERE d IS NOT NULL RETURNING id, d", [b()]),
            (f"DELETE FROM {table} WHERE id > ? RETURNING id", [low]),
            (f"UPDATE {table} SET b = ? WHERE id BETWEEN ? AND ? RETURNING b", [b(), low, high]),
            (f"CREATE INDEX IF NOT EXISTS i_{table} ON {table} (b)", []),
            (f"DROP INDEX IF EXISTS i_{table}", []),
            (f"DROP TRIGGER IF EXISTS g_{table}", []),
            (f"DROP TABLE IF EXISTS {other}", []),
            # (no CHECK: SQLite's check of the table is a statement whose text, and so the columns
            # exec() reports, depend on the SQLite version: allowance "sqlite-version")
            (f"ALTER TABLE {table} ADD COLUMN x{column} DEFAULT {rng.randint(0, 9)}", []),
        ]

    def everyday_sql(self, table: str) -> list[tuple[str, list[Any]]]:
        """The queries applications write most: aggregates and GROUP BY, joins, IN and LIKE filters,
        CTEs, window functions, paging, JSON paths, upserts and writes with RETURNING, INSERT ...
        SELECT, and string and date functions over the alphabet's text (NUL, astral characters)."""
        rng = self.rng
        b = self.binding
        text = self.text
        json_text = rng.choice(['{"a": 1, "b": [2, "x"]}', "[1, 2.5, null]", '{"a": {"c": "é"}}', "x", "", "[]"])
        # Well-formed paths only: a malformed one's message depends on the SQLite version (allowance
        # "sqlite-version": "bad JSON path: 'a'" in workerd, "JSON path error near 'a'" in 3.40).
        path = rng.choice(["$.a", "$.b[1]", "$[1]", "$.a.c", "$", "$.nope", "$[#-1]"])
        date = rng.choice(["2024-02-29", "2024-02-29 23:59:59", "2024-13-01", "", "now-ish", "1970-01-01T00:00:00Z"])
        other = "t2" if table == "t1" else "t1"
        return [
            (
                f"SELECT b, count(*) AS n, total(d) AS s FROM {table} GROUP BY b HAVING count(*) >= ?",
                [rng.randint(0, 2)],
            ),
            (f"SELECT x.id, x.c, y.d FROM {table} AS x JOIN {other} AS y ON y.id = x.id", []),
            (f"SELECT x.id, y.b FROM {table} AS x LEFT JOIN {other} AS y ON y.b = x.b", []),
            # On d, which no statement here indexes: an IN list on an index (b UNIQUE, CREATE INDEX
            # ... (b)) counts the rows returned (docs/sql.md), a difference of rows-read that
            # run.py --seed 9681 met (sequence 71: workerd 3, durable 0).
            (f"SELECT id FROM {table} WHERE d IN (?, ?, ?)", [b(), b(), b()]),
            # (text only: allowance "like-blobs")
            (
                f"SELECT id, b FROM {table} WHERE typeof(b) = 'text' AND b LIKE ?",
                [rng.choice(["%", "a%", "_", "%é%", "A%", text()])],
            ),
            (f"WITH w AS (SELECT id, b FROM {table} WHERE d IS NOT NULL) SELECT count(*) AS n FROM w", []),
            (f"SELECT id, row_number() OVER (ORDER BY d DESC, id) AS r FROM {table}", []),
            (f"SELECT id, b FROM {table} ORDER BY id LIMIT ? OFFSET ?", [rng.randint(-1, 3), rng.randint(0, 3)]),
            (f"SELECT count(DISTINCT b) AS n, group_concat(b, ?) AS g FROM {table}", [text()]),
            (f"SELECT coalesce(max(id), 0) + 1 AS next, min(b), avg(d) FROM {table}", []),
            (f"UPDATE {table} SET b = ? WHERE id = ? RETURNING id, b", [b(), rng.randint(1, 4)]),
            (f"DELETE FROM {table} WHERE b IS ? RETURNING *", [b()]),
            (
                f"INSERT INTO {table} (id, b) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id",
                [rng.randint(1, 4), b()],
            ),
            (f"INSERT INTO {other} (b, c, d) SELECT b, c, d FROM {table} WHERE d IS NOT ?", [b()]),
            ("SELECT ? ->> ?, json_extract(?, ?), json_valid(?)", [json_text, path, json_text, path, json_text]),
            ("SELECT substr(?, 2, 2), instr(?, ?), replace(?, ?, 'R'), trim(?), hex(?)", [text() for _ in range(7)]),
            (
                "SELECT date(?), strftime('%Y-%m-%d %H:%M', ?, '+1 day'), julianday(?) - julianday('2000-01-01')",
                [date] * 3,
            ),
            (
                f"SELECT CASE WHEN d > ? THEN 'hi' ELSE 'lo' END AS k, iif(b IS NULL, 1, 0) FROM {table} WHERE id = ?",
                [b(), rng.randint(1, 4)],
            ),
            # Ranges of the rowid and of an index (more_sql's i_<table> on b), IN lists and sorted
            # scans: the shapes whose rowsRead durable counts by cursor steps (docs/sql.md; the
            # ones it does not, aggregates over a range, a range with another test, are strict
            # xfails in tests/test_sql_rows_counted.py).
            (f"SELECT id, b FROM {table} WHERE id BETWEEN ? AND ?", [rng.randint(-1, 5), rng.randint(-1, 5)]),
            (f"SELECT id FROM {table} WHERE id < ? ORDER BY id DESC", [rng.randint(0, 5)]),
            (f"SELECT id FROM {table} WHERE id < ? ORDER BY id DESC LIMIT ?", [rng.randint(0, 5), rng.randint(-1, 3)]),
            (f"SELECT id, b FROM {table} WHERE b > ? ORDER BY b", [b()]),
            (f"SELECT id FROM {table} WHERE id IN (?, ?) ORDER BY id DESC", [rng.randint(0, 5), rng.randint(0, 5)]),
            (f"SELECT id FROM {table} WHERE id > ? AND id <= ?", [rng.randint(0, 3), rng.randint(1, 5)]),
            (f"SELECT id, b FROM {table} WHERE b <= ? ORDER BY b DESC", [b()]),
        ]

    def more_sql(self, table: str) -> list[tuple[str, list[Any]]]:
        """Constraints, transaction statements, the authorizer and SQLite's limits as workerd sets them."""
        rng = self.rng
        b = self.binding
        n = rng.choice([4, 5, 6])
        depth = rng.choice([98, 99, 100, 101])
        args = rng.choice([126, 127, 128])
        columns = rng.choice([99, 100, 101])
        pattern = rng.choice([49, 50, 51])
        length = 100_000 + rng.choice([-30, -20, -19, -18, -1, 0, 1])
        variable = rng.choice([99, 100, 101, 999])
        blob = LIMIT + rng.choice([-1, 0])
        return [
            ("CREATE TABLE IF NOT EXISTS k (a INTEGER NOT NULL, b TEXT CHECK (length(b) < 3), c UNIQUE)", []),
            ("INSERT INTO k (a, b, c) VALUES (?, ?, ?)", [b(), b(), b()]),
            ("INSERT OR REPLACE INTO k (a, b, c) VALUES (?, ?, ?) RETURNING *", [b(), b(), b()]),
            ("INSERT OR IGNORE INTO k (a, c) VALUES (1, ?)", [b()]),
            ("UPDATE k SET c = ? RETURNING c", [b()]),
            ("CREATE TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)", []),
            ("CREATE TABLE IF NOT EXISTS f (p INTEGER REFERENCES p(id))", []),
            ("INSERT INTO f VALUES (?)", [b()]),
            ("INSERT INTO p VALUES (?)", [rng.randint(1, 3)]),
            ("DELETE FROM p", []),
            ("CREATE TABLE IF NOT EXISTS s (a INTEGER, b TEXT, c BLOB, d ANY) STRICT", []),
            ("INSERT INTO s VALUES (?, ?, ?, ?)", [b(), b(), b(), b()]),
            (f"CREATE INDEX IF NOT EXISTS i_{table} ON {table} (b)", []),
            (
                f"CREATE TRIGGER IF NOT EXISTS g_{table} AFTER INSERT ON {table} BEGIN "
                f"UPDATE {table} SET d = 1 WHERE id = new.id; END",
                [],
            ),
            (f"INSERT INTO {table} (b) VALUES (?); SELECT changes() AS n; SELECT * FROM nowhere", [b()]),
            (f"INSERT INTO {table} (b) VALUES ({rng.randint(0, 10**9)}); SELEC 1", []),
            (rng.choice(["SAVEPOINT a", "RELEASE a", "ROLLBACK", "COMMIT", "END", "ROLLBACK TO a"]), []),
            # No ANALYZE: its rows_written is approximate (docs/sql.md, "Differences from Cloudflare").
            (rng.choice(["VACUUM", "ATTACH DATABASE ':memory:' AS x", "DETACH x", "REINDEX"]), []),
            (
                "PRAGMA "
                + rng.choice(
                    [
                        "foreign_keys",
                        "foreign_keys = OFF",
                        "foreign_key_check",
                        "defer_foreign_keys = ON",
                        "quick_check",
                        "integrity_check",
                        "journal_mode",
                        "user_version",
                        "page_size",
                        "case_sensitive_like = 1",
                        "legacy_alter_table",
                        f"index_list({table})",
                        f"table_xinfo({table})",
                        "reverse_unordered_selects = 1",
                        "recursive_triggers = ON",
                        "max_page_count",
                        "compile_options",
                    ]
                ),
                [],
            ),
            ("SELECT " + " UNION ALL ".join(["SELECT 1"] * n)[7:], []),
            ("SELECT " + "+".join(["1"] * depth), []),
            ("SELECT max(" + ", ".join(["1"] * args) + ")", []),
            ("SELECT " + ", ".join(["1"] * columns), []),
            ("SELECT 'a' LIKE ?", ["a" * pattern]),
            (f"SELECT length('{'y' * (length - 17)}')", []),
            (f"SELECT ?{variable}", []),
            ("SELECT " + ", ".join("?" * variable), [1] * variable),
            (f"SELECT length(zeroblob({blob}))", []),
            ("SELECT length(?), typeof(?)", [b(), b()]),
            ("SELECT ? = ?, ? IS NULL", [self.odd_binding(), self.odd_binding(), self.odd_binding()]),
            ('SELECT 1 AS x, 2 AS x, 3 AS "1", 4 AS "0", 5 AS "-1", 6 AS "01"', []),
            ("SELECT * FROM (VALUES (1), (2)) WHERE column1 > ?", [b()]),
            ("SELECT 1 WHERE 0", []),
        ]

    @staticmethod
    def _concurrent(ops: list[Op]) -> bool:
        """Whether ``ops`` may run together in an ``all``: asynchronous calls."""
        return all(o["op"] in CONCURRENT for o in ops)

    def transaction(self, backend: str, depth: int) -> Op:
        rng = self.rng
        inner = [self.op(backend, depth + 1, in_txn=True) for _ in range(rng.randint(0, 4))]
        end = rng.choice(["commit", "commit", "throw", "rollback"])
        op = {"op": "txn", "via": rng.choice(["txn", "txn", "storage"]), "end": end, "ops": inner}
        if end != "throw" and (after := self.ended_txn_calls()):
            op["after"] = after
        return op

    def ended_txn_calls(self) -> list[Op]:
        """Calls on a txn once it has ended (after ``rollback()``, or kept past its commit), if any:
        workerd checks their arguments (list options and empty ranges, alarm times) before the
        transaction. They are drawn from a stream of their own, with the keys drawn restored, so
        that the rest of a seed's sequences stayed what it was before they were added."""
        if self.ended.random() >= 0.3:
            return []
        main, keys = self.rng, list(self.keys)
        self.rng = self.ended
        try:
            return [self.awaited(self.kv_op()) for _ in range(self.rng.randint(1, 3))]
        finally:
            self.rng, self.keys = main, keys

    @staticmethod
    def awaited(op: Op) -> Op:
        """``op``, awaited: an un-awaited put on an ended txn rejects its promise in workerd but
        raises at the call in durable (docs/differences.md)."""
        return {k: v for k, v in op.items() if k != "wait"}

    def transaction_sync(self, backend: str, depth: int = 0) -> Op:
        rng = self.rng
        inner = [
            self.transaction_sync(backend, depth + 1) if depth < 1 and rng.random() < 0.15 else self.sync_op(backend)
            for _ in range(rng.randint(0, 4))
        ]
        return {"op": "txn_sync", "end": rng.choice(["commit", "commit", "throw"]), "ops": inner}

    def op(self, backend: str, depth: int = 0, *, in_txn: bool = False) -> Op:
        rng = self.rng
        sqlite = backend == "sqlite" or not allowances.is_open("kv-class-sql-error")
        roll = rng.random()
        if roll < 0.08 and depth < 2:
            return self.transaction(backend, depth)
        if roll < 0.13 and (backend == "sqlite" or not allowances.is_open("transaction-sync-kv")):
            if backend == "sqlite":
                return self.transaction_sync(backend)
            return {"op": "txn_sync", "end": "commit", "ops": []}
        if roll < 0.15:
            self.made = set()
            return {"op": "delete_all"}
        if roll < 0.45 and sqlite:
            return self.sync_op(backend)
        return self.kv_op()

    def sequence(self) -> Sequence:
        rng = self.rng
        self.keys = []
        self.references, self.triggers, self.unique, self.made = False, set(), {"k"}, set()
        backend = self.backend = rng.choice(["sqlite", "sqlite", "kv"])
        calls: list[list[Op]] = []
        for index in range(rng.randint(1, 4)):
            call = [self.op(backend) for _ in range(rng.randint(1, 8))]
            if rng.random() < 0.3:
                call.insert(0, {"op": "calls"})
            if index == 0 and allowances.is_open("delete-all-first-turn"):
                # A first call that commits a write, so that delete_all never runs before it.
                calls.append([{"op": "put", "key": "seed", "value": {"t": "null"}}])
            calls.append(call)
            if rng.random() < 0.25:
                # ctx.abort(): the next call reaches a new instance, which reads what was committed.
                calls.append([{"op": "restart"}])
        return {
            "backend": backend,
            "calls": [call if call == [RESTART] else self.edges(self.widen(call)) for call in calls],
        }

    def widen(self, ops: list[Op], *, in_txn: bool = False) -> list[Op]:
        """``ops`` with shapes applications write every day, drawn from a stream of their own (so
        that the main stream draws what it drew before they were added): the read and write options
        (``allowConcurrency``, ``noCache``, ``allowUnconfirmed``: ``OPTIONS``), ``await
        storage.sync()``, and two or three storage calls made together and awaited with
        ``Promise.all`` (``asyncio.gather`` here), transactions among them."""
        more = self.more
        out: list[Op] = []
        for op in ops:
            if op["op"] == "txn":
                op = {**op, "ops": self.widen(op["ops"], in_txn=True)}
            if op["op"] in OPTIONS and more.random() < 0.15:
                names = OPTIONS[op["op"]]
                op = {**op, "opts": {n: True for n in more.sample(names, more.randint(1, len(names)))}}
            out.append(op)
        if more.random() < (0.04 if in_txn else 0.12):
            out.insert(more.randint(0, len(out)), {"op": "sync"})
        if more.random() < 0.25:
            size = more.choice([2, 2, 3])
            starts = [i for i in range(len(out) - size + 1) if self._concurrent(out[i : i + size])]
            if starts:
                at = more.choice(starts)
                out[at : at + size] = [{"op": "all", "ops": out[at : at + size]}]
        return out

    # -- edges: drawn from a stream of their own, after widen --

    def edges(self, ops: list[Op], *, in_txn: bool = False) -> list[Op]:
        """``ops`` with, from ``self.edge``: a txn's calls after its end made on ``storage``
        (``afterVia``), deletes not awaited (``"wait": False``, the write applied
        at the call in both), followed sometimes by lists of bounds, prefixes, ``reverse`` and
        ``limit`` in the same turn; and, outside transactions, a run of calls on a key at the
        key-value backend's 2,048-byte limit or a value at its 128 KiB one (``LONG_KEYS``,
        ``big_value``), which ``durable`` must accept as workerd does."""
        edge = self.edge
        out: list[Op] = []
        for op in ops:
            if op["op"] == "txn":
                op = {**op, "ops": self.edges(op["ops"], in_txn=True)}
                if "after" in op and edge.random() < 0.4:
                    # The calls after the end made on ``storage``, not on the txn: inside the
                    # closure after ``rollback()`` (they write and read outside the txn), or after
                    # the commit.
                    op["afterVia"] = "storage"
                    if self.backend == "sqlite" and edge.random() < 0.5:
                        key = edge.choice(self.keys or ["k"])
                        sync = [
                            {"op": "kv_put", "key": key, "value": {"t": "str", "v": "after"}},
                            {"op": "kv_get", "key": key},
                        ]
                        op["after"] = [*op["after"], *sync]
            if op["op"] in ("delete", "delete_many") and edge.random() < 0.2:
                out.append({**op, "wait": False})
                if edge.random() < 0.6:
                    out.extend(self._edge_lists(edge.randint(1, 3)))
                continue
            out.append(op)
        if not in_txn and edge.random() < 0.12:
            run = self._long_key_run() if self.backend == "sqlite" or edge.random() < 0.5 else self._big_value_run()
            at = edge.randint(0, len(out))
            out[at:at] = run
        return out

    def _edge_lists(self, count: int) -> list[Op]:
        """``count`` list ops with options drawn by ``list_options`` from the edge stream (the keys
        it draws are forgotten, so that the main stream goes on as before)."""
        main, keys = self.rng, list(self.keys)
        self.rng = self.edge
        try:
            return [{"op": "list", "options": self.list_options()} for _ in range(count)]
        finally:
            self.rng, self.keys = main, keys

    def _long_key_run(self) -> list[Op]:
        """Calls on a key of up to 2,048 UTF-8 bytes (production's limit for the key-value backend,
        which durable enforces and local workerd does not: allowance "production-limits"): a put,
        lists bounded by its prefixes, a get, a delete (awaited or not) and a list after it."""
        edge = self.edge
        char, count = edge.choice(LONG_KEYS)
        key = char * count
        prefix = key[: edge.choice([0, 1, count // 2, count - 1, count])]
        value: Tagged = {"t": "str", "v": "v"} if edge.random() < 0.7 else {"t": "big", "v": "7"}
        run: list[Op] = [
            {"op": "put", "key": key, "value": value},
            {"op": "list", "options": {"prefix": prefix}},
            {"op": "list", "options": {"start": prefix, "reverse": edge.random() < 0.5, "limit": edge.choice([1, 2])}},
            {"op": "get", "key": key},
        ]
        if edge.random() < 0.6:
            run.append({"op": "delete", "key": key, **({"wait": False} if edge.random() < 0.5 else {})})
            run.append({"op": "list", "options": {"end": key + "a", "start": prefix}})
        return run

    def _big_value_run(self) -> list[Op]:
        """Calls on a value of up to 131,072 bytes in V8's serialization (production's limit for the
        key-value backend, allowance "production-limits"): a put, then a get and a list of it."""
        edge = self.edge
        key = edge.choice(self.keys) if self.keys and edge.random() < 0.5 else "big"
        under = edge.choice([0, 0, 1, 2, 1000])
        return [
            {"op": "put", "key": key, "value": big_value(edge.choice(list(BIG_SHAPES)), under)},
            {"op": "get", "key": key},
            {"op": "list", "options": {"start": key, "limit": 1}},
        ]


LONG_KEYS: list[tuple[str, int]] = [("k", 2048), ("k", 2047), ("\u00e9", 1024), ("\U0001f600", 512), ("\uffff", 682)]
"""Keys at (or one byte under) the key-value backend's 2,048-byte limit: 1-, 2-, 4- and 3-byte characters."""

VALUE_LIMIT = 131072
"""The key-value backend's value limit, in bytes of V8's serialization (docs/values.md, "Size")."""

BIG_SHAPES: dict[str, int] = {"one-byte": 6, "two-byte": 6, "bytes": 13}
"""The V8 bytes a value of each shape takes beyond its content near 128 KiB: a string a header of 2,
a tag and a 3-byte varint of its byte length (two-byte strings: content at an even offset, no
padding byte); a Uint8Array (``bytes``) that, its ArrayBuffer's tag and length, and a view's tag,
subtag and three varints (offset, 3-byte length, flags): tests/test_v8size.py's boundaries."""


def big_value(shape: str, under: int) -> Tagged:
    """A value of ``shape`` (``BIG_SHAPES``) that takes ``VALUE_LIMIT - under`` bytes in V8."""
    room = VALUE_LIMIT - BIG_SHAPES[shape] - under
    if shape == "one-byte":
        return {"t": "str", "v": "x" * room}
    if shape == "two-byte":
        return {"t": "str", "v": "\u0101" * (room // 2)}
    return {"t": "bytes", "v": "ab" * room}
