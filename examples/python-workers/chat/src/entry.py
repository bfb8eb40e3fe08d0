"""Chat rooms over WebSockets with the Hibernation API: a Python Workers project.

Connect to /room/<name> with a WebSocket, then send JSON messages:

    {"type": "join", "name": "ada"}      -> you get {"type": "history", "messages": [...]},
                                            everyone gets {"type": "joined", "name": "ada"}
    {"type": "say", "text": "hello"}     -> everyone gets {"type": "said", "name": ..., "text": ...}

The room keeps its last env.HISTORY messages in SQLite and each socket's name in its attachment,
so the object can hibernate between messages and wake up with everything it needs.
"""

import json
from urllib.parse import urlparse

from js import WebSocketPair
from workers import DurableObject, Response, WorkerEntrypoint


class ChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS said (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, text TEXT)"
        )

    async def fetch(self, request):
        if (request.headers.get("Upgrade") or "").lower() != "websocket":
            return Response("Expected a WebSocket upgrade", status=426)
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    def history(self):
        rows = self.ctx.storage.sql.exec(
            "SELECT name, text FROM (SELECT * FROM said ORDER BY id DESC LIMIT ?) ORDER BY id",
            int(self.env.HISTORY),
        )
        return [{"name": row.name, "text": row.text} for row in rows]

    def broadcast(self, message):
        text = json.dumps(message)
        for ws in self.ctx.getWebSockets():
            if ws.deserializeAttachment():  # only sockets that have joined
                ws.send(text)

    async def webSocketMessage(self, ws, message):
        try:
            data = json.loads(message)
        except ValueError:
            ws.send(json.dumps({"type": "error", "error": "messages are JSON"}))
            return
        if data.get("type") == "join":
            name = str(data.get("name") or "anonymous")[:32]
            ws.serializeAttachment({"name": name})
            ws.send(json.dumps({"type": "history", "messages": self.history()}))
            self.broadcast({"type": "joined", "name": name})
        elif data.get("type") == "say":
            joined = ws.deserializeAttachment()
            if not joined:
                ws.send(json.dumps({"type": "error", "error": "join first"}))
                return
            text = str(data.get("text", ""))
            self.ctx.storage.sql.exec("INSERT INTO said (name, text) VALUES (?, ?)", joined["name"], text)
            self.broadcast({"type": "said", "name": joined["name"], "text": text})
        else:
            ws.send(json.dumps({"type": "error", "error": "unknown message type"}))

    async def webSocketClose(self, ws, code, reason):
        # Three parameters (no wasClean): Python Workers calls handlers with what they declare.
        joined = ws.deserializeAttachment()
        ws.serializeAttachment(None)
        if joined:
            self.broadcast({"type": "left", "name": joined["name"]})

    async def count(self):
        return len(self.ctx.getWebSockets())


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path.startswith("/room/") and len(path) > len("/room/"):
            room = self.env.ROOMS.getByName(path[len("/room/") :])
            return await room.fetch(request)
        return Response("Connect a WebSocket to /room/<name>", status=404)
