"""A Durable Object with a SQL schema, an index, and migrations run in its constructor.

The constructor runs the migrations under ``block_concurrency_while``, so no call reaches the object
before its schema is current. Each migration runs in ``transaction_sync`` together with the row that
records it, so a migration is applied completely, once, or not at all. Run it::

    python examples/sql_schema.py
"""

from __future__ import annotations

import argparse
import asyncio

import durable

MIGRATIONS = [
    # 1: the table, and an index for the query pending() makes
    """
    CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, created INTEGER NOT NULL);
    CREATE INDEX todos_by_created ON todos (created);
    """,
    # 2: a column added later; existing rows get the default
    "ALTER TABLE todos ADD COLUMN done INTEGER NOT NULL DEFAULT 0",
]
SCHEMA_VERSION = len(MIGRATIONS)


class TodoList(durable.DurableObject):
    """A to-do list stored in the object's own SQLite database."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        ctx.block_concurrency_while(self._migrate)  # not awaited: the first call still waits for it

    async def _migrate(self) -> None:
        sql = self.sql
        sql.exec("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        current = sql.exec("SELECT coalesce(max(version), 0) AS v FROM migrations").one().v
        for version in range(current + 1, SCHEMA_VERSION + 1):

            def apply(version: int = version) -> None:
                sql.exec(MIGRATIONS[version - 1])
                sql.exec("INSERT INTO migrations VALUES (?, datetime('now'))", version)

            self.ctx.storage.transaction_sync(apply)

    def add(self, title: str) -> int:
        """Add a to-do; returns its id."""
        row = self.sql.exec("INSERT INTO todos (title, created) VALUES (?, unixepoch()) RETURNING id", title).one()
        return int(row.id)

    def done(self, todo_id: int) -> bool:
        """Mark a to-do done; False if there is no such to-do."""
        cursor = self.sql.exec("UPDATE todos SET done = 1 WHERE id = ?", todo_id)
        return cursor.rows_written == 1

    def pending(self) -> list[str]:
        """Titles of the to-dos not done, oldest first."""
        return [str(row.title) for row in self.sql.exec("SELECT title FROM todos WHERE NOT done ORDER BY created, id")]

    def schema_version(self) -> int:
        return int(self.sql.exec("SELECT max(version) AS v FROM migrations").one().v)


async def main() -> None:
    async with durable.Runtime() as rt:
        todos = rt.namespace(TodoList).get_by_name("demo")
        first = await todos.add("write the docs")
        await todos.add("ship the release")
        await todos.done(first)
        print("pending:", await todos.pending())
        print("schema version:", await todos.schema_version())


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None).parse_args()
    asyncio.run(main())
