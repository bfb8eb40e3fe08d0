"""Where a served request's time goes: the ASGI app called directly, one part of the Worker at a time.

Run from the repository root::

    python benchmarks/bench_asgi_split.py [--requests 5000] [--repeats 5] [--in-memory]

Calls ``durable.asgi_app(...)`` directly (no server, no sockets) with the scope uvicorn gives
``GET /increment?name=A`` from wrk (three headers), on a persisted runtime (``--in-memory`` for
``Runtime()``), and prints the process CPU time per request, the least over ``--repeats``, for
Workers that each add one part of ``examples/counter.py``:

- ``front``: a Worker that returns ``Response("x")``: the ASGI front's own cost (scope to
  ``Request``, the Worker instance, ``Response`` to ASGI messages);
- ``routing``: + ``parse_qs``, ``id_from_name``, ``namespace.get`` and the reply's ``Response``;
- ``fetch``: a Worker that sends ``stub.fetch(request.url)`` on one long-lived stub, reads the
  text and answers;
- ``counter``: ``examples/counter.py``'s Worker as it is;
- ``stub.fetch``: ``await (await stub.fetch(url)).text()`` in a loop, without ASGI.

CPU time (``time.process_time``) rather than wall time, so that other work on a shared machine
moves the figures less. Checks that every count answered is right (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
from durable import Request, Response

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "counter.py"
URL = "http://127.0.0.1:8787/increment?name=A"
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/increment",
    "raw_path": b"/increment",
    "query_string": b"name=A",
    "root_path": "",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8787),
    "headers": [(b"host", b"127.0.0.1:8787"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
}


def load_example() -> type[durable.WorkerEntrypoint]:
    spec = importlib.util.spec_from_file_location("counter_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    worker: type[durable.WorkerEntrypoint] = module.Worker
    return worker


class Front(durable.WorkerEntrypoint):
    async def fetch(self, request: Request) -> Response:
        return Response("x")


class Routing(durable.WorkerEntrypoint):
    async def fetch(self, request: Request) -> Response:
        query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
        name = query.get("name", [""])[0]
        self.env.COUNTER.get(self.env.COUNTER.id_from_name(name))
        return Response(f"Durable Object '{name}' count: x")


class Fetch(durable.WorkerEntrypoint):
    stub: durable.Stub[durable.Counter]  # set by run(): one stub for every request

    async def fetch(self, request: Request) -> Response:
        resp = await self.stub.fetch(request.url)
        count = await resp.text()
        return Response(f"Durable Object 'A' count: {count}")


async def run(args: argparse.Namespace, path: str | None) -> int:
    async with durable.Runtime(path=path) as rt:
        counters = rt.namespace(durable.Counter, name="COUNTER")
        Fetch.stub = counters.get_by_name("B")
        direct = rt.namespace(durable.Counter, name="DIRECT").get_by_name("A")
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        workers: dict[str, type[durable.WorkerEntrypoint]] = {
            "front": Front,
            "routing": Routing,
            "fetch": Fetch,
            "counter": load_example(),
        }
        apps = {label: durable.asgi_app(worker, rt) for label, worker in workers.items()}
        served = dict.fromkeys(apps, 0)
        direct_count = 0
        figures: dict[str, list[float]] = {}

        async def measure(label: str, n: int) -> None:
            nonlocal direct_count
            start = time.process_time()
            if label == "stub.fetch":
                for _ in range(n):
                    await (await direct.fetch(URL)).text()
                direct_count += n
            else:
                app = apps[label]
                for _ in range(n):
                    await app(dict(SCOPE), receive, send)
                served[label] += n
            figures.setdefault(label, []).append((time.process_time() - start) / n * 1e6)

        for label in [*apps, "stub.fetch"]:
            await measure(label, 500)  # warm-up
        figures.clear()
        for _ in range(args.repeats):
            for label in [*apps, "stub.fetch"]:
                sent.clear()
                await measure(label, args.requests)
        print(
            f"CPU time per request, least of {args.repeats} x {args.requests} "
            f"({'in memory' if path is None else 'persisted'}):"
        )
        for label, values in figures.items():
            print(f"  {label:<11} {min(values):7.2f} us")
        ok = (
            await counters.get_by_name("A").get_counter_value() == served["counter"]
            and await Fetch.stub.get_counter_value() == served["fetch"]
            and await direct.get_counter_value() == direct_count
        )
        if not ok:
            print("CORRECTNESS FAILURE: a count does not match the requests answered", file=sys.stderr)
            return 1
        print("correctness: every count matches the requests answered")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="requests per measurement (default 5000)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (default 5)")
    parser.add_argument("--in-memory", action="store_true", help="use Runtime() instead of a temporary directory")
    args = parser.parse_args()
    if min(args.requests, args.repeats) < 1:
        parser.error("--requests and --repeats must be positive")
    if args.in_memory:
        return asyncio.run(run(args, None))
    with tempfile.TemporaryDirectory(prefix="durable-split-") as tmp:
        return asyncio.run(run(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
