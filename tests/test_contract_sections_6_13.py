"""Promises of API.md sections 6 to 13 that no other test asserted directly.

The contract audit of those sections found a test for every other sentence; these close the gaps.
Each test quotes the line it checks.
"""

from __future__ import annotations

import gc
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import durable
from durable import testing

from helpers import REPO, serve_and_get

# == 8. Threads, other event loops, and blocking code ===============================================


class Tally(durable.Counter):
    """The reference counter, under a name of its own."""


class TestBlockingRuntimeFromThreads:
    def test_every_method_from_many_threads_at_once(self) -> None:
        """API.md 8, "Every method may be called from many threads at once": namespace(), the id
        methods, get() and get_by_name() stubs, their RPC methods and fetch(), and run() all do."""

        async def double(value: int) -> int:
            return value * 2

        with durable.BlockingRuntime() as rt:

            def work(index: int) -> tuple[int, int, int]:
                ns = rt.namespace(Tally, name="TALLY")  # registered again by every thread
                oid = ns.id_from_name("shared")
                assert ns.id_from_string(str(oid)) == oid and ns.new_unique_id().name is None
                by_id, by_name = ns.get(oid), ns.get_by_name("shared")
                assert by_id.id == by_name.id == oid
                by_id.increment()
                response = by_name.fetch("http://tally/increment")
                assert response.status == 200
                own = ns.get_by_name(f"own-{index}").increment(index)
                return own, int(rt.run(response.text)), rt.run(double, index)

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(work, range(200)))

            assert [own for own, _, _ in results] == list(range(200))
            assert [doubled for _, _, doubled in results] == [2 * i for i in range(200)]
            assert len({seen for _, seen, _ in results}) == 200  # each fetch saw its own increment
            assert rt.namespace(Tally, name="TALLY").get_by_name("shared").get_counter_value() == 400


# == 9. WebSockets: hibernation on the MockClock ====================================================


class Echo(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send(message)


class TestHibernationOnTheMockClock:
    async def test_advance_returns_after_the_hibernation_that_fell_due(self) -> None:
        """API.md 9, "10.0 is the default ... `MockClock.advance()` returns after every hibernation
        that fell due has happened": the instance lives at 9.9 s idle and is gone when advance(0.1) returns."""
        clock = testing.MockClock(start=1_000_000.0)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Echo).get_by_name("r")
            async with testing.websocket(stub, "http://room/") as ws:
                instance = weakref.ref(await testing.run_in_object(stub, lambda obj, ctx: obj))
                await clock.advance(9.9)
                gc.collect()
                assert instance() is not None
                await clock.advance(0.1)  # nothing else runs before the check
                gc.collect()
                assert instance() is None
                ws.send("still connected")
                assert await ws.receive() == "still connected"


# == 10. Python Workers compatibility ===============================================================


ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint


class Notes(DurableObject):
    async def fetch(self, request):
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (n)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
        rows = self.ctx.storage.sql.exec("SELECT count(*) AS n FROM t").one()
        return Response(f"{self.env.GREETING} {rows.n}")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.NOTES.getByName("a").fetch(request.url)
"""

CONFIG = """
// given to `durable serve` as the file itself
{
  "main": "src/entry.py",
  "compatibility_flags": ["python_workers"],
  "vars": {"GREETING": "hello"},
  "durable_objects": {"bindings": [{"name": "NOTES", "class_name": "Notes"}]},
  "migrations": [{"tag": "v1", "new_sqlite_classes": ["Notes"]}],
}
"""


class TestServeTheWranglerFile:
    async def test_wrangler_jsonc_given_as_the_project(self, tmp_path: Path) -> None:
        """API.md 10, "`durable serve PROJECT` where `PROJECT` is a Python Workers project folder (or
        its `wrangler.jsonc` ...)": the file itself on the command line, with its vars and bindings."""
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "entry.py").write_text(ENTRY)
        (tmp_path / "wrangler.jsonc").write_text(CONFIG)
        argv = ["-m", "durable", "serve", str(tmp_path / "wrangler.jsonc"), "--port", "{port}", "--in-memory"]
        assert await serve_and_get(argv, ["/a", "/b"]) == ["hello 2", "hello 3"]  # the readiness GET made 1

    async def test_wrangler_toml_given_as_the_project(self) -> None:
        """API.md 10, "(or its ... `wrangler.toml`)": a TOML project with a legacy `on_fetch` is served."""
        toml = REPO / "tests" / "python_workers" / "legacy" / "wrangler.toml"
        argv = ["-m", "durable", "serve", str(toml), "--port", "{port}", "--in-memory"]
        assert await serve_and_get(argv, ["/", "/count", "/count"]) == ["Hello, World!", "1", "2"]
