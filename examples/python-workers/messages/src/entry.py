"""A message board per name: a Python Workers project (Cloudflare's SDK), also served by durable.

Routes (the Worker forwards to the board's Durable Object over RPC):

    GET  /<board>/messages         -> JSON list of {"id", "author", "text", "at"}
    POST /<board>/messages         -> body {"author": ..., "text": ...}; 201 with the message
    POST /<board>/clear            -> 204
    GET  /<board>/stats            -> {"count": ..., "expires_at": ...}

Each board keeps at most env.MAX_MESSAGES messages in SQLite and an alarm that deletes the ones
older than env.RETENTION_SECONDS.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

from js import Date
from workers import DurableObject, Response, WorkerEntrypoint


class Board(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS messages ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, text TEXT NOT NULL,"
            " at INTEGER NOT NULL)"
        )

    async def add(self, author, text):
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a message needs a non-empty text")
        at = Date.now()
        row = self.sql.exec(
            "INSERT INTO messages (author, text, at) VALUES (?, ?, ?) RETURNING id",
            author or "anonymous",
            text,
            at,
        ).one()
        limit = int(self.env.MAX_MESSAGES)
        self.sql.exec(
            "DELETE FROM messages WHERE id NOT IN (SELECT id FROM messages ORDER BY id DESC LIMIT ?)",
            limit,
        )
        if await self.ctx.storage.getAlarm() is None:
            retention = timedelta(seconds=int(self.env.RETENTION_SECONDS))
            await self.ctx.storage.setAlarm(datetime.fromtimestamp(at / 1000, UTC) + retention)
        return {"id": row.id, "author": author or "anonymous", "text": text, "at": at}

    async def messages(self):
        cursor = self.sql.exec("SELECT id, author, text, at FROM messages ORDER BY id")
        return [{"id": r.id, "author": r.author, "text": r.text, "at": r.at} for r in cursor]

    async def clear(self):
        await self.ctx.storage.deleteAll()
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS messages ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, text TEXT NOT NULL,"
            " at INTEGER NOT NULL)"
        )

    async def stats(self):
        count = self.sql.exec("SELECT count(*) AS n FROM messages").one().n
        return {"count": count, "expires_at": await self.ctx.storage.getAlarm()}

    async def alarm(self):
        # Called without arguments: Python Workers calls handlers with the parameters they declare.
        cutoff = Date.now() - int(self.env.RETENTION_SECONDS) * 1000
        self.sql.exec("DELETE FROM messages WHERE at <= ?", cutoff)
        oldest = self.sql.exec("SELECT min(at) AS at FROM messages").one().at
        if oldest is not None:
            await self.ctx.storage.setAlarm(oldest + int(self.env.RETENTION_SECONDS) * 1000)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlparse(request.url).path.strip("/").split("/")
        if len(parts) != 2 or not parts[0]:
            return Response("Use /<board>/messages, /<board>/clear or /<board>/stats", status=404)
        board = self.env.BOARDS.getByName(parts[0])
        action = parts[1]
        if action == "messages" and request.method == "GET":
            return Response.from_json(await board.messages())
        if action == "messages" and request.method == "POST":
            try:
                body = await request.json()
                message = await board.add(body.get("author"), body.get("text"))
            except ValueError as exc:
                return Response(str(exc), status=400)
            return Response.from_json(message, status=201)
        if action == "clear" and request.method == "POST":
            await board.clear()
            return Response(None, status=204)
        if action == "stats" and request.method == "GET":
            return Response.from_json(await board.stats())
        return Response("Method not allowed", status=405)
