"""The floor for the served counter: the same work as ``examples/counter.py``, with nothing else.

A plain ASGI callable, served by uvicorn exactly as ``durable serve`` is, that answers the seed's
routes (``/increment``, ``/decrement`` and ``/`` with ``?name=``) with the seed's text. Each
request reads and writes one row of one SQLite table keyed by name (WAL, ``synchronous=NORMAL``,
the pragmas ``durable`` uses for object files) and commits, so it does what one ``durable``
request does to storage, minus objects, gates, the Worker and the Request/Response layers.
``benchmarks/bench_http_floor.py`` serves it next to ``durable serve examples/counter.py``.

    python -m uvicorn bare_counter:app --app-dir benchmarks      # BARE_COUNTER_DB=path (default: memory)
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

_db = sqlite3.connect(os.environ.get("BARE_COUNTER_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")

_STEP = {"/increment": 1, "/decrement": -1, "/": 0}
_NO_NAME = b"Select a Durable Object to contact by using the `name` URL query string parameter. e.g. ?name=A"


async def app(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] == "lifespan":  # nothing to set up or tear down
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    name = query.get("name", [""])[0]
    status, body = 200, _NO_NAME
    if name:
        step = _STEP.get(scope["path"])
        if step is None:
            status, body = 404, b"Not found"
        else:
            row = _db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            value = (row[0] if row else 0) + step
            _db.execute("BEGIN")
            _db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
            _db.execute("COMMIT")
            body = f"Durable Object '{name}' count: {value}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain;charset=UTF-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
