"""Cloudflare's documentation examples about storage, ported and checked against workerd.

Each scenario follows an example of Cloudflare's Durable Objects documentation
(cloudflare/cloudflare-docs, ``src/content/docs/durable-objects/`` and its partials): the SQL API
examples (``partials/durable-objects/durable-objects-sql.mdx``), the schema migrations, indexes,
write coalescing and ``init()`` examples of "Rules of Durable Objects", the key-value, synchronous
KV, alarm and transaction methods of the Storage API pages, the Batcher of "Use the Alarms API"
(its Python tab) and the Counter of the SQLite storage page (its Python tab). The same object was
written in JavaScript and run in workerd (npm's ``miniflare`` 4, compatibility date 2026-04-07,
SQLite-backed objects); every expected value below is what workerd answered. Where ``durable``
answers differently on purpose, the test says so and names the entry of ``docs/differences.md`` or
``docs/sql.md``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import durable
from durable import testing

from helpers import exactly

ONE_MANY = "Expected exactly one result from SQL query, but got multiple results."
ONE_NONE = "Expected exactly one result from SQL query, but got no results."
ARTISTS = [
    {"artistid": 123, "artistname": "Alice"},
    {"artistid": 456, "artistname": "Bob"},
    {"artistid": 789, "artistname": "Charlie"},
]
YEAR_2100_MS = 4_102_444_800_000


def dicts(rows: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def counts(cursor: durable.SqlCursor) -> tuple[int, int]:
    return cursor.rows_read, cursor.rows_written


def written(cursor: durable.SqlCursor) -> int:
    return cursor.rows_written


# -- the SQL API examples ---------------------------------------------------------------------------


class Artists(durable.DurableObject):
    """The ``artist`` schema of the SQL examples: two statements in one ``exec`` in the constructor."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        self.created = self.sql.exec(
            """CREATE TABLE IF NOT EXISTS artist(
              artistid    INTEGER PRIMARY KEY,
              artistname  TEXT
            );INSERT INTO artist (artistid, artistname) VALUES
              (123, 'Alice'),
              (456, 'Bob'),
              (789, 'Charlie');"""
        )

    def constructor_cursor(self) -> Any:
        c = self.created
        return [c.column_names, c.rows_written, dicts(c.to_array()), c.rows_written, self.sql.database_size]

    def shapes(self) -> Any:
        out: dict[str, Any] = {}
        out["iterated"] = dicts(self.sql.exec("SELECT * FROM artist;"))
        out["to_array"] = dicts(self.sql.exec("SELECT * FROM artist;").to_array())
        cursor = self.sql.exec("SELECT * FROM artist;")
        out["raw"] = cursor.raw().to_array()
        out["columns"] = cursor.column_names
        out["read"] = cursor.rows_read
        out["first"] = dict(self.sql.exec("SELECT * FROM artist ORDER BY artistname DESC;").to_array()[0])
        out["alice"] = dict(self.sql.exec("SELECT * FROM artist WHERE artistname = ?;", "Alice").one())
        return out

    def one_of(self, sql: str) -> Any:
        return dict(self.sql.exec(sql).one())

    def steps(self) -> Any:
        out: dict[str, Any] = {}
        cursor = self.sql.exec("SELECT * FROM artist ORDER BY artistname ASC;")
        out["next"] = dict(next(cursor))
        out["rest"] = dicts(cursor.to_array())
        cursor = self.sql.exec("SELECT * FROM artist ORDER BY artistname ASC;")
        out["raw_next"] = next(cursor.raw())
        out["rest_after_raw"] = dicts(cursor.to_array())
        cursor = self.sql.exec("SELECT * FROM artist ORDER BY artistname ASC;")
        raw = cursor.raw()
        out["mixed"] = [next(raw), dict(next(cursor)), raw.to_array()]
        cursor = self.sql.exec("SELECT * FROM artist;")
        cursor.to_array()
        out["drained"] = [dicts(cursor.to_array()), cursor.raw().to_array(), cursor.rows_read]
        return out

    def one_after(self, steps: int) -> Any:
        cursor = self.sql.exec("SELECT * FROM artist;")
        for _ in range(steps):
            next(cursor)
        return dict(cursor.one())


@pytest.fixture
def artists(durable_runtime: durable.Runtime) -> Any:
    return durable_runtime.namespace(Artists).get_by_name("a")


class TestSqlExamples:
    async def test_the_constructors_cursor_is_the_last_statements(self, artists: Any) -> None:
        """workerd: the cursor of ``CREATE TABLE ...; INSERT ... (3 rows)`` has ``columnNames`` ``[]``,
        ``rowsWritten`` 3 (the INSERT's), ``toArray()`` ``[]``; ``databaseSize`` is 8192 then."""
        assert await artists.constructor_cursor() == [[], 3, [], 3, 8192]

    async def test_rows_raw_rows_and_column_names(self, artists: Any) -> None:
        """workerd: iteration and ``toArray()`` give the three row objects, ``raw().toArray()`` the
        arrays ``[[123, "Alice"], ...]``, ``columnNames`` ``["artistid", "artistname"]`` and
        ``rowsRead`` 3 once drained; ORDER BY DESC's first row is Charlie; ``one()`` with the
        binding ``"Alice"`` is Alice's row."""
        assert await artists.shapes() == {
            "iterated": ARTISTS,
            "to_array": ARTISTS,
            "raw": [[123, "Alice"], [456, "Bob"], [789, "Charlie"]],
            "columns": ["artistid", "artistname"],
            "read": 3,
            "first": ARTISTS[2],
            "alice": ARTISTS[0],
        }

    @pytest.mark.parametrize(
        ("sql", "message"),
        [
            ("SELECT * FROM artist ORDER BY artistname ASC;", ONE_MANY),
            ("SELECT * FROM artist WHERE artistid = 1;", ONE_NONE),
        ],
    )
    async def test_one_refuses_other_than_one_row(self, artists: Any, sql: str, message: str) -> None:
        """workerd: ``Error: Expected exactly one result from SQL query, but got multiple results.``
        (three rows) and ``... but got no results.`` (none)."""
        with exactly(durable.SqlError, message):
            await artists.one_of(sql)

    async def test_cursor_and_raw_iterator_share_one_position(self, artists: Any) -> None:
        """workerd: ``next()`` gives Alice, then ``toArray()`` Bob and Charlie; ``raw().next()`` gives
        ``[123, "Alice"]`` and the cursor's ``toArray()`` goes on with Bob; alternating raw, row, raw
        gives Alice (raw), Bob (row), ``[[789, "Charlie"]]``; a drained cursor gives ``[]`` again
        (rows and raw) and keeps ``rowsRead`` 3."""
        assert await artists.steps() == {
            "next": ARTISTS[0],
            "rest": ARTISTS[1:],
            "raw_next": [123, "Alice"],
            "rest_after_raw": ARTISTS[1:],
            "mixed": [[123, "Alice"], ARTISTS[1], [[789, "Charlie"]]],
            "drained": [[], [], 3],
        }

    @pytest.mark.parametrize(("steps", "message"), [(1, ONE_MANY), (3, ONE_NONE)])
    async def test_one_counts_the_rows_left(self, artists: Any, steps: int, message: str) -> None:
        """workerd: ``one()`` after one ``next()`` (two rows left) says "multiple results"; on a
        drained cursor it says "no results"."""
        with exactly(durable.SqlError, message):
            await artists.one_after(steps)


# -- "Rules of Durable Objects": migrations, RETURNING, indexes, coalesced writes -------------------


class Migrated(durable.DurableObject):
    """The hand-written ``_sql_schema_migrations`` example, run in ``block_concurrency_while``."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)

        async def migrate() -> None:
            self.log = self.migrate()

        ctx.block_concurrency_while(migrate)

    def migrate(self) -> list[Any]:
        sql = self.ctx.storage.sql
        log: list[Any] = []
        c = sql.exec(
            """CREATE TABLE IF NOT EXISTS _sql_schema_migrations (
                id INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT (datetime('now'))
            );"""
        )
        log.append(written(c))
        c = sql.exec("SELECT COALESCE(MAX(id), 0) as version FROM _sql_schema_migrations")
        version = c.one()["version"]
        log.append(version)
        if version < 1:
            c = sql.exec(
                """CREATE TABLE IF NOT EXISTS messages (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id TEXT NOT NULL,
                    content TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                );
                CREATE INDEX IF NOT EXISTS idx_messages_created_at ON messages(created_at);
                INSERT INTO _sql_schema_migrations (id) VALUES (1);"""
            )
            log.append([c.column_names, written(c)])
        if version < 2:
            c = sql.exec(
                """ALTER TABLE messages ADD COLUMN edited_at INTEGER;
                INSERT INTO _sql_schema_migrations (id) VALUES (2);"""
            )
            log.append(written(c))
        return log

    def schema(self) -> Any:
        sql = self.ctx.storage.sql
        return [
            self.log,
            dicts(sql.exec("SELECT id, typeof(applied_at) AS t, length(applied_at) AS l FROM _sql_schema_migrations")),
            [r["name"] for r in sql.exec("SELECT name FROM pragma_table_info('messages')")],
            [
                r["name"]
                for r in sql.exec("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name")
            ],
        ]

    def pragma(self, sql: str) -> Any:
        return dicts(self.ctx.storage.sql.exec(sql))

    def send(self, user: str, content: str, at: int) -> Any:
        cursor = self.ctx.storage.sql.exec(
            "INSERT INTO messages (user_id, content, created_at) VALUES (?, ?, ?) RETURNING id", user, content, at
        )
        return [cursor.rows_written, cursor.one().id, cursor.rows_written]

    def edit_and_delete(self) -> Any:
        sql = self.ctx.storage.sql
        update = sql.exec("UPDATE messages SET edited_at = ? WHERE user_id = ?", 5, "u1")
        delete = sql.exec("DELETE FROM messages WHERE id = ?", 2)
        return [
            dicts(update),
            update.rows_written,
            delete.rows_written,
            dict(sql.exec("SELECT COUNT(*) as count FROM messages").one()),
            dicts(sql.exec("SELECT name, seq FROM sqlite_sequence")),
        ]


class TestMigrationsExample:
    async def test_each_step_writes_what_workerd_counts(self, durable_runtime: durable.Runtime) -> None:
        """workerd: CREATE TABLE writes 2 rows, the version is 0, the v1 step's cursor (its last
        statement, the INSERT) has no columns and wrote 1 row, the v2 step's wrote 1; both
        migrations are recorded with a 19-character text ``applied_at``; ``messages`` gained
        ``edited_at``; the tables and index are those of the example."""
        stub = durable_runtime.namespace(Migrated).get_by_name("a")
        assert await stub.schema() == [
            [2, 0, [[], 1], 1],
            [{"id": 1, "t": "text", "l": 19}, {"id": 2, "t": "text", "l": 19}],
            ["id", "user_id", "content", "created_at", "edited_at"],
            ["_sql_schema_migrations", "idx_messages_created_at", "messages", "sqlite_sequence"],
        ]

    @pytest.mark.parametrize("sql", ["PRAGMA user_version", "PRAGMA user_version = 3"])
    async def test_user_version_is_refused(self, durable_runtime: durable.Runtime, sql: str) -> None:
        """The page says ``PRAGMA user_version`` is not supported; workerd: ``Error: not authorized:
        SQLITE_AUTH`` for reading and for setting it."""
        stub = durable_runtime.namespace(Migrated).get_by_name("a")
        with exactly(durable.SqlError, "not authorized: SQLITE_AUTH"):
            await stub.pragma(sql)

    async def test_insert_returning_and_later_writes(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``INSERT ... RETURNING id`` writes 3 rows (the row, its index entry and the
        AUTOINCREMENT counter) before and after ``one()``, which gives ids 1 and 2; the UPDATE of
        an unindexed column writes 1 row and returns no rows, the DELETE writes 1; one message
        is left and ``sqlite_sequence`` keeps 2."""
        stub = durable_runtime.namespace(Migrated).get_by_name("a")
        assert await stub.send("u1", "hi", 1000) == [3, 1, 3]
        assert await stub.send("u2", "yo", 2000) == [3, 2, 3]
        assert await stub.edit_and_delete() == [[], 1, 1, {"count": 1}, [{"name": "messages", "seq": 2}]]


class Returning(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS m(id INTEGER PRIMARY KEY AUTOINCREMENT, u TEXT, at INTEGER);"
            "CREATE INDEX IF NOT EXISTS i ON m(at); CREATE TABLE IF NOT EXISTS p(id INTEGER PRIMARY KEY, v)"
        )

    def before_reading(self, sql: str) -> int:
        cursor = self.ctx.storage.sql.exec(sql)
        count = cursor.rows_written
        cursor.to_array()
        return count


class TestReturningRunAgain:
    @pytest.mark.parametrize(
        ("sql", "written"),
        [
            ("INSERT INTO m (u, at) VALUES ('u', 1) RETURNING id", 3),
            ("INSERT INTO m (u, at) VALUES ('x', 1), ('y', 2), ('z', 3) RETURNING id", 7),
            ("INSERT INTO p (v) VALUES (1) RETURNING id, v", 1),
        ],
    )
    async def test_rows_written_is_whole_before_any_row_is_read(
        self, durable_runtime: durable.Runtime, sql: str, written: int
    ) -> None:
        """workerd reports a ``RETURNING`` write's ``rowsWritten`` in full right after ``exec()``,
        every time the same statement runs (measured: ``[0, 3]`` as ``[rowsRead, rowsWritten]``
        before ``one()`` for the first, second and third run of one INSERT; 7 for a three-row
        INSERT into a table with an index and AUTOINCREMENT; 1 for a table without either).
        durable reported 0 from the second run on, when Python's statement cache ran the statement
        without compiling it (its authorizer, which saw the write the first time, was not asked)."""
        stub = durable_runtime.namespace(Returning).get_by_name("a")
        assert [await stub.before_reading(sql) for _ in range(3)] == [written] * 3

    async def test_update_returning(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``UPDATE m SET at = at + 1 RETURNING id`` over six rows reports 12 rows
        written (each row and its index entry) before its first row is read."""
        stub = durable_runtime.namespace(Returning).get_by_name("a")
        await stub.before_reading("INSERT INTO m (u, at) VALUES ('x', 1), ('y', 2), ('z', 3) RETURNING id")
        await stub.before_reading("INSERT INTO m (u, at) VALUES ('x', 1), ('y', 2), ('z', 3) RETURNING id")
        update = "UPDATE m SET at = at + 1 RETURNING id"
        assert [await stub.before_reading(update) for _ in range(2)] == [12, 12]


class Indexed(durable.DurableObject):
    """The indexes example: a table and three indexes created by one ``exec``."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)

        async def create() -> None:
            self.created = self.ctx.storage.sql.exec(
                """CREATE TABLE IF NOT EXISTS messages (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id TEXT NOT NULL,
                    content TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                );

                -- Index for queries filtering by user
                CREATE INDEX IF NOT EXISTS idx_messages_user_id ON messages(user_id);

                -- Index for time-based queries (recent messages)
                CREATE INDEX IF NOT EXISTS idx_messages_created_at ON messages(created_at);

                -- Composite index for user + time queries
                CREATE INDEX IF NOT EXISTS idx_messages_user_time ON messages(user_id, created_at);
            """
            ).rows_written

        ctx.block_concurrency_while(create)

    def run(self) -> Any:
        sql = self.ctx.storage.sql
        insert = "INSERT INTO messages (user_id, content, created_at) VALUES (?, ?, ?)"
        first = sql.exec(insert, "u1", "a", 10).rows_written
        sql.exec(insert, "u1", "b", 20)
        sql.exec(insert, "u2", "c", 30)
        query = "SELECT * FROM messages WHERE user_id = ? AND created_at > ? ORDER BY created_at"
        return [
            self.created,
            first,
            dicts(sql.exec(query, "u1", 5)),
            sql.exec("UPDATE messages SET created_at = created_at + 1 WHERE user_id = ?", "u1").rows_written,
            sql.exec("UPDATE messages SET content = 'z' WHERE user_id = ?", "u1").rows_written,
            sql.exec("DELETE FROM messages WHERE user_id = ?", "u2").rows_written,
            sql.database_size,
        ]


class TestIndexesExample:
    async def test_rows_written_count_index_entries(self, durable_runtime: durable.Runtime) -> None:
        """workerd: the constructor's cursor (the last CREATE INDEX, on an empty table) wrote 1 row;
        an INSERT writes 5 (row, three index entries, the AUTOINCREMENT counter); the query finds
        u1's two messages; moving ``created_at`` of two rows writes 6 (each row and its two
        indexes on that column), changing ``content`` writes 2, the DELETE 1; ``databaseSize``
        is 24576 (six pages: schema, sqlite_sequence, the table and three indexes)."""
        stub = durable_runtime.namespace(Indexed).get_by_name("a")
        assert await stub.run() == [
            1,
            5,
            [
                {"id": 1, "user_id": "u1", "content": "a", "created_at": 10},
                {"id": 2, "user_id": "u1", "content": "b", "created_at": 20},
            ],
            6,
            2,
            1,
            24576,
        ]


class Account(durable.DurableObject):
    """The write-coalescing example, with a CHECK constraint so that a transfer can fail."""

    def setup(self) -> list[int]:
        sql = self.ctx.storage.sql
        sql.exec(
            "CREATE TABLE accounts(id TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));"
            "CREATE TABLE transfers(from_id, to_id, amount, created_at)"
        )
        sql.exec("INSERT INTO accounts VALUES ('a', 100), ('b', 0)")
        return [
            sql.exec("UPDATE accounts SET balance = balance - ? WHERE id = ?", 30, "a").rows_written,
            sql.exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", 30, "b").rows_written,
            sql.exec("INSERT INTO transfers VALUES (?, ?, ?, ?)", "a", "b", 30, 1).rows_written,
        ]

    def transfer_sync(self, amount: int) -> Any:
        sql = self.ctx.storage.sql

        def move() -> str:
            sql.exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, "b")
            sql.exec("UPDATE accounts SET balance = balance - ? WHERE id = ?", amount, "a")
            return "done"

        return self.ctx.storage.transaction_sync(move)

    def balances(self) -> Any:
        return dicts(self.ctx.storage.sql.exec("SELECT * FROM accounts ORDER BY id"))

    def run(self, sql: str) -> None:
        self.ctx.storage.sql.exec(sql)

    async def transfer_kv(self) -> Any:
        storage = self.ctx.storage
        await storage.put("balance:a", 100)
        debit = (await storage.get("balance:a")) or 0
        await storage.put("balance:a", debit - 30)
        credit = (await storage.get("balance:b")) or 0
        await storage.put("balance:b", credit + 30)
        return await storage.list(prefix="balance:")


class TestWriteCoalescingExample:
    async def test_a_failed_transfer_changes_nothing(self, durable_runtime: durable.Runtime) -> None:
        """workerd: each UPDATE and the INSERT write 1 row; a ``transactionSync`` whose second
        UPDATE breaks the CHECK raises ``CHECK constraint failed: balance >= 0: SQLITE_CONSTRAINT``
        and its first UPDATE is rolled back; one that succeeds returns its callback's result.

        workerd's message goes on with `` (extended: SQLITE_CONSTRAINT_CHECK)``; durable's stops
        at the code (docs/differences.md, ``constraint-extended-code``)."""
        stub = durable_runtime.namespace(Account).get_by_name("a")
        assert await stub.setup() == [1, 1, 1]
        with pytest.raises(durable.SqlError, match=r"^CHECK constraint failed: balance >= 0: SQLITE_CONSTRAINT"):
            await stub.transfer_sync(1000)
        assert await stub.balances() == [{"id": "a", "balance": 70}, {"id": "b", "balance": 30}]
        assert await stub.transfer_sync(10) == "done"
        assert await stub.balances() == [{"id": "a", "balance": 60}, {"id": "b", "balance": 40}]

    @pytest.mark.parametrize("sql", ["BEGIN TRANSACTION", "SAVEPOINT x"])
    async def test_sql_transactions_point_to_the_api(self, durable_runtime: durable.Runtime, sql: str) -> None:
        """workerd: ``BEGIN TRANSACTION`` and ``SAVEPOINT`` raise the message that names
        ``transaction()`` / ``transactionSync()``."""
        stub = durable_runtime.namespace(Account).get_by_name("a")
        with pytest.raises(durable.SqlError, match=r"^To execute a transaction, please use the state\.storage"):
            await stub.run(sql)

    async def test_the_awaited_kv_transfer(self, durable_runtime: durable.Runtime) -> None:
        """workerd: the "broken" key-value transfer still ends with ``{"balance:a": 70, "balance:b": 30}``."""
        stub = durable_runtime.namespace(Account).get_by_name("a")
        assert await stub.transfer_kv() == {"balance:a": 70, "balance:b": 30}


class Room(durable.DurableObject):
    """The ``init()`` example: the object learns its identity from its first caller."""

    room_id: str | None = None

    async def init(self, room_id: str, created_by: str) -> None:
        if await self.ctx.storage.get("roomId"):
            return
        await self.ctx.storage.put("roomId", room_id)
        await self.ctx.storage.put("createdBy", created_by)
        self.room_id = room_id

    async def get_room_id(self) -> str:
        if self.room_id:
            return self.room_id
        stored: str | None = await self.ctx.storage.get("roomId")
        if not stored:
            raise Exception("ChatRoom not initialized. Call init() first.")
        self.room_id = stored
        return stored


class TestInitExample:
    async def test_identity_is_stored_once(self, durable_runtime: durable.Runtime) -> None:
        """workerd: before ``init()`` the error reaches the caller with its message and
        ``remote`` true; ``init()`` returns nothing, a second ``init()`` changes nothing; after an
        eviction the id is read back from storage."""
        stub = durable_runtime.namespace(Room).get_by_name("lobby")
        with exactly(Exception, "ChatRoom not initialized. Call init() first.") as caught:
            await stub.get_room_id()
        assert caught.value.remote is True  # type: ignore[attr-defined]
        assert await stub.init("lobby", "system") is None
        assert await stub.init("other", "x") is None
        assert await stub.get_room_id() == "lobby"
        await testing.evict(stub)
        assert await stub.get_room_id() == "lobby"


# -- the key-value, synchronous KV, alarm and transaction methods -----------------------------------


class Kv(durable.DurableObject):
    async def fill(self) -> None:
        await self.ctx.storage.put("b", 2)
        await self.ctx.storage.put({"a": 1, "c": 3, "aa": 11, "é": 5, "z": 26, "B": 0})

    async def read(self, keys: Any) -> Any:
        return await self.ctx.storage.get(keys)

    async def list(self, **options: Any) -> Any:
        return list((await self.ctx.storage.list(**options)).items())

    async def delete(self, keys: Any) -> Any:
        return await self.ctx.storage.delete(keys)

    async def put_without_value(self) -> None:
        await self.ctx.storage.put("x")

    async def wipe(self) -> Any:
        await self.ctx.storage.delete_all()
        return await self.ctx.storage.list()


@pytest.fixture
async def kv(durable_runtime: durable.Runtime) -> Any:
    stub = durable_runtime.namespace(Kv).get_by_name("a")
    await stub.fill()
    return stub


class TestAsyncKvApi:
    async def test_get(self, kv: Any) -> None:
        """workerd: ``get("b")`` is 2, a missing key undefined; ``get([...])`` a Map of the keys that
        exist in key order (``B``, ``a``, ``z``, ``é``), ``get([])`` an empty Map."""
        assert await kv.read("b") == 2
        assert await kv.read("nope") is None
        assert list((await kv.read(["z", "a", "nope", "é", "B"])).items()) == [("B", 0), ("a", 1), ("z", 26), ("é", 5)]
        assert await kv.read([]) == {}

    @pytest.mark.parametrize(
        ("options", "keys"),
        [
            ({}, ["B", "a", "aa", "b", "c", "z", "é"]),
            ({"start": "aa"}, ["aa", "b", "c", "z", "é"]),
            ({"start_after": "aa"}, ["b", "c", "z", "é"]),
            ({"end": "b"}, ["B", "a", "aa"]),
            ({"prefix": "a"}, ["a", "aa"]),
            ({"reverse": True, "limit": 2}, ["é", "z"]),
            ({"start": "a", "end": "c", "reverse": True}, ["b", "aa", "a"]),
            ({"prefix": "a", "reverse": True, "limit": 1}, ["aa"]),
            ({"limit": 1.5}, ["B"]),
            ({"start": "z", "end": "a"}, []),
            ({"prefix": "a", "end": "aa"}, ["a"]),
            ({"prefix": "a", "start": "ab"}, []),
        ],
    )
    async def test_list_options(self, kv: Any, options: dict[str, Any], keys: list[str]) -> None:
        """workerd's answers for each option set of the Storage API page, over the keys
        ``B a aa b c z é`` (``limit`` 1.5 lists one key; ``start`` past ``end`` lists nothing)."""
        assert [key for key, _ in await kv.list(**options)] == keys

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"start": "a", "start_after": "b"}, "list() cannot be called with both start and startAfter values."),
            ({"limit": 0}, "List limit must be positive."),
            ({"limit": -1}, "List limit must be positive."),
        ],
    )
    async def test_list_refusals(self, kv: Any, options: dict[str, Any], message: str) -> None:
        """workerd: ``TypeError`` with these messages."""
        with exactly(TypeError, message):
            await kv.list(**options)

    async def test_delete_put_and_delete_all(self, kv: Any) -> None:
        """workerd: ``delete("b")`` true then false; ``delete(["a", "nope", "c", "a"])`` 2 (a key
        named twice counts once); ``delete([])`` 0; ``put("x")`` without a value raises
        ``TypeError: put() called with undefined value.``; ``deleteAll()`` leaves nothing."""
        assert await kv.delete("b") is True
        assert await kv.delete("b") is False
        assert await kv.delete(["a", "nope", "c", "a"]) == 2
        assert await kv.delete([]) == 0
        assert [key for key, _ in await kv.list()] == ["B", "aa", "z", "é"]
        with exactly(TypeError, "put() called with undefined value."):
            await kv.put_without_value()
        assert await kv.wipe() == {}


class SyncKv(durable.DurableObject):
    def run(self) -> Any:
        kv = self.ctx.storage.kv
        out: dict[str, Any] = {}
        out["put"] = kv.put("b", {"n": 2})  # type: ignore[func-returns-value]  # (workerd: undefined)
        kv.put("a", 1)
        kv.put("c", [3])
        kv.put("ab", "x")
        out["get"] = [kv.get("b"), kv.get("zz")]
        out["list"] = list(kv.list())
        out["options"] = [list(kv.list(prefix="a", reverse=True)), list(kv.list(start="ab", limit=2))]
        out["delete"] = [kv.delete("a"), kv.delete("a")]
        for key, value in (("m1", 1), ("m2", 2), ("m3", 3)):
            kv.put(key, value)
        entries = kv.list(prefix="m")
        first = next(entries)
        kv.put("m25", 25)
        kv.delete("m3")
        out["during"] = [first, *entries]
        return out

    async def seen_by_async_get(self) -> Any:
        return await self.ctx.storage.get("b")

    def refused(self, **options: Any) -> Any:
        return list(self.ctx.storage.kv.list(**options))


class TestSyncKvApi:
    async def test_the_sequence(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``kv.put`` returns undefined; ``get`` gives the value and undefined for a missing
        key; ``list()`` iterates ``[key, value]`` pairs in key order; ``prefix`` + ``reverse`` and
        ``start`` + ``limit`` as for the async ``list``; ``delete`` true then false; and an
        iterator still open sees a key written after it started (``m25``) and not one deleted
        (``m3``). The async ``get`` reads what ``kv.put`` wrote."""
        stub = durable_runtime.namespace(SyncKv).get_by_name("a")
        assert await stub.run() == {
            "put": None,
            "get": [{"n": 2}, None],
            "list": [("a", 1), ("ab", "x"), ("b", {"n": 2}), ("c", [3])],
            "options": [[("ab", "x"), ("a", 1)], [("ab", "x"), ("b", {"n": 2})]],
            "delete": [True, False],
            "during": [("m1", 1), ("m2", 2), ("m25", 25)],
        }
        assert await stub.seen_by_async_get() == {"n": 2}

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"start": "a", "start_after": "a"}, "list() cannot be called with both start and startAfter values."),
            ({"limit": 0}, "List limit must be positive."),
        ],
    )
    async def test_refusals(self, durable_runtime: durable.Runtime, options: dict[str, Any], message: str) -> None:
        """workerd: ``kv.list`` raises the async ``list``'s ``TypeError``s."""
        stub = durable_runtime.namespace(SyncKv).get_by_name("a")
        with exactly(TypeError, message):
            await stub.refused(**options)


class Alarmed(durable.DurableObject):
    async def set(self, when: Any) -> Any:
        await self.ctx.storage.set_alarm(when)
        return await self.ctx.storage.get_alarm()

    async def delete(self) -> Any:
        await self.ctx.storage.delete_alarm()
        await self.ctx.storage.delete_alarm()
        return await self.ctx.storage.get_alarm()

    async def wipe(self) -> Any:
        await self.ctx.storage.set_alarm(YEAR_2100_MS)
        await self.ctx.storage.put("k", 1)
        await self.ctx.storage.delete_all()
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


class Unalarmed(durable.DurableObject):
    async def set(self) -> Any:
        try:
            await self.ctx.storage.set_alarm(YEAR_2100_MS)
        finally:
            self.after = await self.ctx.storage.get_alarm()

    def seen(self) -> Any:
        return self.after


class TestAlarmMethods:
    async def test_set_get_and_delete(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``setAlarm(new Date(ms))`` reads back as ``ms``; a fractional time is truncated;
        ``deleteAlarm()`` twice is fine and leaves ``null``; ``deleteAll()`` removes the alarm
        (compatibility date 2026-04-07, after 2026-02-24)."""
        import datetime

        stub = durable_runtime.namespace(Alarmed).get_by_name("a")
        assert await stub.set(datetime.datetime.fromtimestamp(YEAR_2100_MS / 1000, datetime.UTC)) == YEAR_2100_MS
        assert await stub.set(YEAR_2100_MS + 0.7) == YEAR_2100_MS
        assert await stub.delete() is None
        assert await stub.wipe() is None

    @pytest.mark.parametrize(
        ("when", "message"),
        [
            (-1, "setAlarm() cannot be called with an alarm time <= 0"),
            (0, "setAlarm() cannot be called with an alarm time <= 0"),
            (float("nan"), "The value cannot be converted because it is not a valid Date."),
            (
                "4102444800000",
                "Failed to execute 'setAlarm' on 'DurableObjectStorage': parameter 1 is not of type 'date'.",
            ),
        ],
    )
    async def test_refused_times_keep_the_alarm(
        self, durable_runtime: durable.Runtime, when: Any, message: str
    ) -> None:
        """workerd: ``TypeError`` with these messages, and the alarm set before stays."""
        stub = durable_runtime.namespace(Alarmed).get_by_name("a")
        await stub.set(YEAR_2100_MS)
        with exactly(TypeError, message):
            await stub.set(when)
        assert await stub.set(YEAR_2100_MS) == YEAR_2100_MS

    async def test_a_class_without_handler(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``TypeError: Your Durable Object class must have an alarm() handler in order to
        call setAlarm()``, and ``getAlarm()`` stays ``null``."""
        stub = durable_runtime.namespace(Unalarmed).get_by_name("a")
        with exactly(TypeError, "Your Durable Object class must have an alarm() handler in order to call setAlarm()"):
            await stub.set()
        assert await stub.seen() is None


class Transactions(durable.DurableObject):
    async def run(self) -> Any:
        storage = self.ctx.storage
        out: dict[str, Any] = {}
        await storage.put("a", 1)

        async def commit(txn: Any) -> Any:
            await txn.put("b", 2)
            value = await txn.get("a")
            await txn.delete("a")
            return [value, list((await txn.list()).items())]

        out["commit"] = [await storage.transaction(commit), list((await storage.list()).items())]

        async def rollback(txn: Any) -> str:
            await txn.put("c", 3)
            txn.rollback()
            txn.rollback()
            return "rolled"

        out["rollback"] = [await storage.transaction(rollback), list(await storage.list())]

        async def alarm(txn: Any) -> Any:
            await txn.set_alarm(YEAR_2100_MS)
            return await txn.get_alarm()

        async def undone(txn: Any) -> None:
            await txn.delete_alarm()
            txn.rollback()

        out["alarm"] = [await storage.transaction(alarm), await storage.transaction(undone), await storage.get_alarm()]

        async def inner(txn: Any) -> str:
            await txn.put("n", 1)
            return "inner"

        out["nested"] = await storage.transaction(lambda txn: storage.transaction(inner))

        def nested_sync() -> Any:
            def put() -> int:
                storage.kv.put("ts2", 2)
                return 5

            return storage.transaction_sync(put)

        out["nested_sync"] = storage.transaction_sync(nested_sync)
        return out

    async def after_rollback(self, method: str) -> Any:
        async def closure(txn: Any) -> Any:
            txn.rollback()
            return await (txn.get("b") if method == "get" else txn.put("z", 1))

        return await self.ctx.storage.transaction(closure)

    async def throwing(self) -> Any:
        async def closure(txn: Any) -> None:
            await txn.put("d", 4)
            raise ValueError("boom")

        def sync() -> None:
            self.ctx.storage.kv.put("ts", 1)
            raise RuntimeError("no")

        errors = []
        try:
            await self.ctx.storage.transaction(closure)
        except ValueError as exc:
            errors.append([type(exc).__name__, str(exc)])
        try:
            self.ctx.storage.transaction_sync(sync)
        except RuntimeError as exc:
            errors.append([type(exc).__name__, str(exc)])
        return [errors, list(await self.ctx.storage.list())]

    async def delete_all_inside(self) -> None:
        async def closure(txn: Any) -> None:
            await txn.delete_all()

        await self.ctx.storage.transaction(closure)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


class TestTransactions:
    async def test_the_sequence(self, durable_runtime: durable.Runtime) -> None:
        """workerd: a committed closure's ``txn.get`` sees the earlier put and its ``txn.list`` its
        own writes (``[["b", 2]]``); ``rollback()`` (twice is fine) keeps the closure's result and
        undoes its put; an alarm set in a transaction reads back inside it, a rolled-back
        ``deleteAlarm`` leaves it; a transaction inside a transaction's closure commits its
        put; ``transactionSync`` inside ``transactionSync`` returns the inner result."""
        stub = durable_runtime.namespace(Transactions).get_by_name("a")
        assert await stub.run() == {
            "commit": [[1, [("b", 2)]], [("b", 2)]],
            "rollback": ["rolled", ["b"]],
            "alarm": [YEAR_2100_MS, None, YEAR_2100_MS],
            "nested": "inner",
            "nested_sync": 5,
        }

    @pytest.mark.parametrize("method", ["get", "put"])
    async def test_a_rolled_back_txn_refuses_calls(self, durable_runtime: durable.Runtime, method: str) -> None:
        """workerd: ``Error: Cannot get() on rolled back transaction`` (``put()`` likewise)."""
        stub = durable_runtime.namespace(Transactions).get_by_name("a")
        with exactly(durable.DurableError, f"Cannot {method}() on rolled back transaction"):
            await stub.after_rollback(method)

    async def test_errors_roll_back(self, durable_runtime: durable.Runtime) -> None:
        """workerd: the closure's own error (``RangeError: boom``; ``Error: no`` from
        ``transactionSync``) reaches the caller and neither ``d`` nor ``ts`` is stored."""
        stub = durable_runtime.namespace(Transactions).get_by_name("a")
        assert await stub.throwing() == [[["ValueError", "boom"], ["RuntimeError", "no"]], []]

    async def test_delete_all_inside_is_refused(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``Error: Cannot call deleteAll() within a transaction``."""
        stub = durable_runtime.namespace(Transactions).get_by_name("a")
        with exactly(durable.DurableError, "Cannot call deleteAll() within a transaction"):
            await stub.delete_all_inside()


# -- the alarms examples ------------------------------------------------------------------------------


class NoResponse(durable.DurableObject):
    """The Alarms API page's example: its ``fetch`` sets the alarm and returns nothing."""

    async def fetch(self, request: durable.Request) -> Any:
        if await self.ctx.storage.get_alarm() is None:
            self.ctx.storage.set_alarm(self.ctx.now_ms() + 10_000)

    async def armed(self) -> bool:
        return await self.ctx.storage.get_alarm() is not None

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


class TestAlarmsPageExample:
    async def test_fetch_that_returns_nothing(self, durable_runtime: durable.Runtime) -> None:
        """workerd: the caller of ``stub.fetch`` gets ``TypeError: Incorrect type for Promise: the
        Promise did not resolve to 'Response'.``, and the alarm the handler set is kept."""
        stub = durable_runtime.namespace(NoResponse).get_by_name("a")
        # durable's message goes on with what fetch() returned and what to return instead.
        with pytest.raises(
            TypeError, match=r"^Incorrect type for Promise: the Promise did not resolve to 'Response'\."
        ):
            await stub.fetch("http://x/")
        assert await stub.armed() is True


# -- the Python tabs: the Batcher of "Use the Alarms API" and the Counter of the SQLite storage page ---


@pytest.fixture
def sdk(python_workers_shims: None) -> Any:
    """The ``workers`` module of the Python Workers SDK, as durable provides it."""
    import workers  # type: ignore[import-not-found]

    return workers


def batcher_class(sdk: Any) -> Any:
    class Batcher(sdk.DurableObject):  # type: ignore[misc]
        """The Python tab, without its upstream ``fetch`` (the alarm records the batch instead)."""

        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.storage = ctx.storage

            @self.ctx.blockConcurrencyWhile  # type: ignore[untyped-decorator]  # (the page's own shape)
            async def initialize() -> None:
                vals = await self.storage.list(reverse=True, limit=1)
                self.count = 0
                if len(vals) > 0:
                    # The page writes vals.keys().next().value: the SDK gives list() as a dict.
                    self.count = int(next(iter(vals)))

        async def fetch(self, request: Any) -> Any:
            self.count += 1
            current_alarm = await self.storage.getAlarm()
            if current_alarm is None:
                self.storage.setAlarm(int(time.time() * 1000) + 1000 * 10)
            await self.storage.put(self.count, await request.text())
            return sdk.Response.json({"queued": self.count, "had": current_alarm is not None})

        async def alarm(self) -> None:
            self.sent = list((await self.storage.list()).values())
            await self.storage.deleteAll()
            self.count = 0

        async def state(self) -> Any:
            vals = await self.storage.list()
            return [self.count, list(vals), await self.storage.getAlarm() is not None]

    return Batcher


class TestBatcherExample:
    async def test_batching_with_number_keys(self, durable_runtime: durable.Runtime, sdk: Any) -> None:
        """workerd (the JavaScript tab, 11 POSTs): ``queued`` 1 to 11, the alarm set by the first
        request only (not awaited, it is set all the same); the number keys are stored as strings,
        so they list as ``1, 10, 11, 2, ... 9`` and ``list({reverse: true, limit: 1})`` gives
        ``"9"``: a fresh instance starts counting at 9, as on Cloudflare. The alarm handler's
        ``deleteAll()`` leaves neither keys nor alarm."""
        stub = durable_runtime.namespace(batcher_class(sdk)).get_by_name("foo")
        answers = []
        for i in range(11):
            response = await stub.fetch("http://batcher/", method="POST", body=f"m{i}")
            answers.append(await response.json())
        assert answers == [{"queued": n, "had": n > 1} for n in range(1, 12)]
        keys = ["1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9"]
        assert await stub.state() == [11, keys, True]
        await testing.evict(stub)
        assert await stub.state() == [9, keys, True]
        assert await testing.run_alarm(stub) is True
        assert await stub.state() == [0, [], False]


class TestCounterExample:
    async def test_increment(self, durable_runtime: durable.Runtime, sdk: Any) -> None:
        """The Python tab of the SQLite storage page's Counter: 1, 2, 3 (workerd's JavaScript tab
        answers the same), and the value survives eviction."""

        class Counter(sdk.DurableObject):  # type: ignore[misc]
            async def increment(self) -> int:
                value: int = (await self.ctx.storage.get("value")) or 0
                value += 1
                await self.ctx.storage.put("value", value)
                return value

        stub = durable_runtime.namespace(Counter).get_by_name("a")
        assert [await stub.increment(), await stub.increment()] == [1, 2]
        await testing.evict(stub)
        assert await stub.increment() == 3
