"""A game leaderboard on the SQL API, one Durable Object per board, served over HTTP.

Each board is a ``Leaderboard`` object with two tables in its own SQLite database: ``players`` (one
row per player, upserted with their best score) and ``scores`` (every submission, the last
``HISTORY_KEPT`` per player). The constructor creates the schema under ``block_concurrency_while``,
so no call runs before the tables exist. The ``Worker`` routes HTTP requests to the board named in
the path and calls its RPC methods:

    POST /boards/<board>/scores            {"player": "ada", "score": 420}  -> the player's best and rank
    GET  /boards/<board>/top?n=10          the first n players, ranked (ties share a rank)
    GET  /boards/<board>/ranking?limit=20&after=<cursor>   every player, a page at a time
    GET  /boards/<board>/players/<player>  best, rank, games played and recent scores

Serve it with ``durable serve examples/leaderboard.py``, or run ``python examples/leaderboard.py``
for a short demo that sends a few requests in-process (it needs ``httpx``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import durable

HISTORY_KEPT = 50  # scores kept per player
MAX_PAGE = 100  # largest page or top-n a request may ask for

SCHEMA = """
CREATE TABLE IF NOT EXISTS players (
    name TEXT PRIMARY KEY,
    best INTEGER NOT NULL,
    games INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS players_by_best ON players (best DESC, name);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY,
    player TEXT NOT NULL REFERENCES players (name),
    score INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_by_player ON scores (player, id);
"""


class Leaderboard(durable.DurableObject):
    """One board: the best score of each player, their history, and rankings."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        ctx.block_concurrency_while(lambda: self.sql.exec(SCHEMA))

    def submit(self, player: str, score: int) -> dict[str, Any]:
        """Record a score; returns ``{"player", "best", "rank"}`` after it.

        Raises ``ValueError`` for an empty or over-long player name or a score that is not an int.
        """
        if not isinstance(player, str) or not 1 <= len(player) <= 64:
            raise ValueError("player must be a name of 1 to 64 characters")
        if not isinstance(score, int) or isinstance(score, bool):
            raise ValueError(f"score must be an integer, not {score!r}")
        now = self.ctx.now_ms()
        # One turn, no await: the upsert, the history row and the trim commit together.
        best = self.sql.exec(
            """INSERT INTO players (name, best, games, updated_ms) VALUES (?, ?, 1, ?)
               ON CONFLICT (name) DO UPDATE SET
                   best = max(best, excluded.best), games = games + 1, updated_ms = excluded.updated_ms
               RETURNING best""",
            player,
            score,
            now,
        ).one()["best"]
        self.sql.exec("INSERT INTO scores (player, score, at_ms) VALUES (?, ?, ?)", player, score, now)
        self.sql.exec(
            """DELETE FROM scores WHERE player = ?1 AND id <=
                   (SELECT id FROM scores WHERE player = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)""",
            player,
            HISTORY_KEPT,
        )
        return {"player": player, "best": best, "rank": self._rank(best)}

    def top(self, n: int = 10) -> list[dict[str, Any]]:
        """The first ``n`` players by best score; players with equal scores share a rank."""
        rows = self.sql.exec(
            """SELECT name AS player, best, rank() OVER (ORDER BY best DESC) AS rank
               FROM players ORDER BY best DESC, name LIMIT ?""",
            _bounded("n", n),
        )
        return [row.to_py() for row in rows]  # plain dicts: what the caller receives anyway

    def ranking(self, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """One page of all players, best first: ``{"players": [...], "next": cursor or None}``.

        ``after`` is the ``next`` of the previous page. The cursor names a position (a score and a
        name), not an offset, so a page never repeats or skips a player because scores changed
        between requests. Raises ``ValueError`` for a malformed cursor.
        """
        limit = _bounded("limit", limit)
        if after is None:
            rows = self.sql.exec("SELECT name, best FROM players ORDER BY best DESC, name LIMIT ?", limit + 1)
        else:
            best, name = _parse_cursor(after)
            rows = self.sql.exec(
                """SELECT name, best FROM players WHERE best < ?1 OR (best = ?1 AND name > ?2)
                   ORDER BY best DESC, name LIMIT ?3""",
                best,
                name,
                limit + 1,
            )
        page = [{"player": row["name"], "best": row["best"]} for row in rows]
        more = len(page) > limit
        page = page[:limit]
        return {"players": page, "next": f"{page[-1]['best']}:{page[-1]['player']}" if more else None}

    def player(self, name: str, recent: int = 10) -> dict[str, Any] | None:
        """A player's best, rank, games and most recent scores (newest first), or None if unknown."""
        found = self.sql.exec("SELECT best, games FROM players WHERE name = ?", name).to_array()
        if not found:
            return None
        history = self.sql.exec(
            "SELECT score, at_ms FROM scores WHERE player = ? ORDER BY id DESC LIMIT ?",
            name,
            _bounded("recent", recent),
        )
        return {
            "player": name,
            "best": found[0]["best"],
            "rank": self._rank(found[0]["best"]),
            "games": found[0]["games"],
            "history": history.to_array(),
        }

    def _rank(self, best: int) -> int:
        return int(self.sql.exec("SELECT count(*) + 1 AS r FROM players WHERE best > ?", best).one()["r"])


def _bounded(what: str, value: int) -> int:
    if not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise ValueError(f"{what} must be an integer from 1 to {MAX_PAGE}, not {value!r}")
    return value


def _parse_cursor(cursor: str) -> tuple[int, str]:
    best, sep, name = cursor.partition(":")
    if not sep or not best.removeprefix("-").isdigit():
        raise ValueError(f"invalid cursor {cursor!r}: pass the 'next' of the previous page")
    return int(best), name


class Worker(durable.WorkerEntrypoint):
    """The stateless front: ``/boards/<board>/...`` goes to the ``Leaderboard`` named ``<board>``."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        url = urlsplit(request.url)
        parts = [unquote(part) for part in url.path.split("/")[1:]]
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if len(parts) < 3 or parts[0] != "boards" or not parts[1]:
            return _error(404, "not found: use /boards/<board>/...")
        board = self.env.BOARDS.get_by_name(parts[1])
        route = (request.method, *parts[2:])
        try:
            match route:
                case ("POST", "scores"):
                    body = await request.json()
                    if not isinstance(body, dict):
                        raise ValueError('the body must be a JSON object: {"player": ..., "score": ...}')
                    return durable.Response.json(await board.submit(body.get("player"), body.get("score")), status=201)
                case ("GET", "top"):
                    return durable.Response.json({"top": await board.top(_int(query.get("n", "10")))})
                case ("GET", "ranking"):
                    return durable.Response.json(
                        await board.ranking(_int(query.get("limit", "20")), query.get("after"))
                    )
                case ("GET", "players", name):
                    found = await board.player(name)
                    return durable.Response.json(found) if found else _error(404, f"no player {name!r}")
        except ValueError as exc:  # bad JSON, a bad number, or what the object refused
            return _error(400, str(exc))
        return _error(404 if request.method in ("GET", "POST") else 405, f"no route for {request.method} {url.path}")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, not {text!r}") from None


def _error(status: int, message: str) -> durable.Response:
    return durable.Response.json({"error": message}, status=status)


# What `durable serve` binds: the Worker reaches the boards as self.env.BOARDS.
bindings = {"BOARDS": Leaderboard}


async def demo() -> None:
    """Submit a few scores over HTTP, in-process, and print the answers."""
    import httpx

    async with durable.Runtime() as rt:
        rt.namespace(Leaderboard, name="BOARDS")
        transport = httpx.ASGITransport(app=durable.asgi_app(Worker, rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://game") as client:
            for player, score in [("ada", 420), ("bob", 380), ("cy", 420), ("bob", 515), ("dee", 90)]:
                await client.post("/boards/weekly/scores", json={"player": player, "score": score})
            print("top 3:", json.dumps((await client.get("/boards/weekly/top?n=3")).json()["top"]))
            page = (await client.get("/boards/weekly/ranking?limit=2")).json()
            print("page 1:", page["players"], "next:", page["next"])
            page = (await client.get("/boards/weekly/ranking", params={"limit": 2, "after": page["next"]})).json()
            print("page 2:", page["players"], "next:", page["next"])
            print("bob:", (await client.get("/boards/weekly/players/bob")).json())


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None).parse_args()
    try:
        import httpx  # noqa: F401 - the demo's client; `durable serve` does not need it
    except ImportError:
        sys.exit(
            "examples/leaderboard.py: the demo sends its requests with httpx, which is not installed: "
            "pip install httpx (or serve the leaderboard instead: durable serve examples/leaderboard.py)"
        )
    asyncio.run(demo())
