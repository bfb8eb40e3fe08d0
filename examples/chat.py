"""A chat server on one Durable Object, with WebSocket hibernation.

The Worker serves a small HTML page at ``/`` and sends WebSocket upgrades on ``/ws`` to the
``ChatServer`` object. The object accepts each socket with the Hibernation API, tagged with its
room (``room:<name>``) so that a broadcast reaches exactly that room's sockets, keeps the user's
name in the socket's attachment, and stores every message in SQL. Between messages the object
hibernates: its instance is dropped while the sockets stay connected, and the next message
builds a fresh instance that finds the user's name in the attachment and the history in SQL.
``ping`` is answered by the runtime itself (the auto-response), without waking the object.

Run it with either of::

    durable serve examples/chat.py
    python examples/chat.py [--host H] [--port N] [--persist DIR | --in-memory]

then open http://127.0.0.1:8787/ in two browser tabs.

A client connects to ``/ws?room=<room>&user=<name>`` (defaults ``lobby`` and ``anonymous``);
``/history?room=<room>`` answers the room's last messages as JSON.

Protocol (JSON text messages): the client sends ``{"text": "..."}``; the server sends
``{"type": "history", "messages": [...]}`` on connect, then ``{"type": "message", "user",
"text", "at"}``, ``{"type": "join", "user"}``, ``{"type": "leave", "user"}`` and
``{"type": "error", "error"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import durable
from durable import Request, Response

HISTORY = 50
"""Messages sent to a client when it connects."""

MAX_TEXT = 1000
"""Longest message accepted, in characters."""


def _query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


class Worker(durable.WorkerEntrypoint):
    """The front: the page at ``/``, WebSocket upgrades at ``/ws``, history at ``/history``."""

    async def fetch(self, request: Request) -> Response:
        path = urlsplit(request.url).path
        if path == "/":
            return Response(PAGE, headers={"content-type": "text/html;charset=UTF-8"})
        if path in ("/ws", "/history"):
            stub: durable.Stub[ChatServer] = self.env.CHAT.get_by_name("chat")
            return await stub.fetch(request)
        return Response("Not found", status=404)


class ChatServer(durable.DurableObject):
    """All rooms: sockets tagged by room, user names in attachments, messages in SQL."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        # Runs again after each hibernation: nothing here may depend on in-memory state.
        ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS messages ("
            " id INTEGER PRIMARY KEY, room TEXT NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL)"
        )
        ctx.set_web_socket_auto_response(durable.WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        query = _query(request)
        room = query.get("room", "lobby")[:64] or "lobby"
        if urlsplit(request.url).path == "/history":
            return Response.json(self._history(room))
        if request.headers.get("upgrade", "").lower() != "websocket":
            return Response("Expected Upgrade: websocket", status=426)
        user = query.get("user", "anonymous")[:32] or "anonymous"
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, [f"room:{room}"])
        server.serialize_attachment({"user": user, "room": room})
        server.send(json.dumps({"type": "history", "messages": self._history(room)}))
        self._broadcast(room, {"type": "join", "user": user}, skip=server)
        return Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        who: dict[str, Any] = ws.deserialize_attachment()
        try:
            text = json.loads(message)["text"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            ws.send(json.dumps({"type": "error", "error": 'send {"text": "..."}'}))
            return
        if not text.strip() or len(text) > MAX_TEXT:
            ws.send(json.dumps({"type": "error", "error": f"a message has 1 to {MAX_TEXT} characters"}))
            return
        at = self.ctx.now_ms()
        self.ctx.storage.sql.exec(
            "INSERT INTO messages (room, user, text, at) VALUES (?, ?, ?, ?)", who["room"], who["user"], text, at
        )
        # send() waits behind the output gate: nobody sees the message before it is stored.
        self._broadcast(who["room"], {"type": "message", "user": who["user"], "text": text, "at": at})

    async def web_socket_close(self, ws: durable.WebSocket, code: int, reason: str, was_clean: bool) -> None:
        who = ws.deserialize_attachment()
        if who is not None:
            self._broadcast(who["room"], {"type": "leave", "user": who["user"]})

    def _history(self, room: str) -> list[dict[str, Any]]:
        rows = self.ctx.storage.sql.exec(
            "SELECT user, text, at FROM (SELECT * FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            room, HISTORY,
        )  # fmt: skip
        return [{"user": row["user"], "text": row["text"], "at": row["at"]} for row in rows]

    def _broadcast(self, room: str, data: dict[str, Any], skip: durable.WebSocket | None = None) -> None:
        text = json.dumps(data)
        for ws in self.ctx.get_web_sockets(f"room:{room}"):
            if ws is not skip and ws.ready_state == durable.WebSocket.OPEN:
                ws.send(text)


# What `durable serve` binds: the Worker reaches the chat server as self.env.CHAT.
bindings = {"CHAT": ChatServer}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>durable chat</title>
<style>
body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
#log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
.meta { color: #888; } input { font: inherit; }
</style></head><body>
<h1>durable chat</h1>
<p><label>Name <input id="user" value="guest"></label>
<label>Room <input id="room" value="lobby"></label> <button id="join">Join</button></p>
<div id="log"></div>
<form id="form"><input id="text" size="50" autocomplete="off" disabled> <button disabled id="send">Send</button></form>
<script>
let ws = null;
const $ = (id) => document.getElementById(id);
function line(text, cls) {
  const p = document.createElement("div"); p.textContent = text; if (cls) p.className = cls;
  $("log").appendChild(p); $("log").scrollTop = $("log").scrollHeight;
}
$("join").onclick = () => {
  if (ws) ws.close(1000, "switching rooms");
  $("log").textContent = "";
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams({ user: $("user").value, room: $("room").value });
  ws = new WebSocket(`${scheme}//${location.host}/ws?${q}`);
  ws.onopen = () => { $("text").disabled = $("send").disabled = false; $("text").focus(); };
  ws.onclose = () => { $("text").disabled = $("send").disabled = true; line("disconnected", "meta"); };
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === "history") m.messages.forEach((h) => line(`${h.user}: ${h.text}`));
    else if (m.type === "message") line(`${m.user}: ${m.text}`);
    else if (m.type === "join") line(`${m.user} joined`, "meta");
    else if (m.type === "leave") line(`${m.user} left`, "meta");
    else if (m.type === "error") line(m.error, "meta");
  };
};
$("form").onsubmit = (event) => {
  event.preventDefault();
  if (ws && $("text").value) { ws.send(JSON.stringify({ text: $("text").value })); $("text").value = ""; }
};
</script></body></html>
"""


if __name__ == "__main__":
    from durable.__main__ import serve_file

    sys.exit(serve_file(__file__))  # as `durable serve` this file, with the same options
