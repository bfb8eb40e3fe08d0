"""WebSocket benchmark: messages per second through one object, and memory per hibernated socket.

Three measurements, each bounded by its own counts and timeouts:

1. In process: clients from ``durable.testing.websocket(stub, ...)`` send ``--messages`` text
   messages each to one echoing Durable Object (a hibernatable socket per client) and read every
   echo; pipelined (all sends, then all receives). Prints round trips per second at 1 and
   ``--clients`` clients, and checks that every echo came back in order.
2. Over ``durable serve`` on 127.0.0.1: the same with ``websockets``-library clients against a
   served echo app (a subprocess), 1 and ``--clients`` connections.
3. Memory: ``--sockets`` (default 10,000) sockets connected in process to one object, which then
   hibernates; prints the Python heap held per connected socket (``tracemalloc``: both in-process
   ends, the registry entry with its tags and a small attachment), and the process's RSS growth.

    python benchmarks/bench_websockets.py [--messages 2000] [--clients 10] [--sockets 10000]
                                          [--skip-serve]

The serve measurement runs client and server on the same machine, competing for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import durable  # noqa: E402
from durable.testing import hibernate, websocket  # noqa: E402

ECHO_APP = """
import durable

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ECHO.get_by_name("bench").fetch(request)

class Echo(durable.DurableObject):
    async def fetch(self, request):
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws, message):
        ws.send(message)

bindings = {"ECHO": Echo}
"""


class Echo(durable.DurableObject):
    """Accepts hibernatable sockets (tag and attachment included) and echoes every message."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server, ["room:bench"])
        server.serialize_attachment({"user": "someone"})
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        ws.send(message)


async def in_process(clients: int, messages: int) -> float:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Echo).get_by_name("bench")
        managers = [websocket(stub, "http://bench/") for _ in range(clients)]
        sockets = [await m.__aenter__() for m in managers]

        async def drive(ws: durable.WebSocket) -> None:
            sent = [f"m{i}" for i in range(messages)]
            for text in sent:
                ws.send(text)
            got = [await ws.receive() for _ in sent]
            if got != sent:
                raise SystemExit("in process: echoes out of order or missing")

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(drive(ws) for ws in sockets)), 300)
        elapsed = time.perf_counter() - start
        for manager in managers:
            await manager.__aexit__(None, None, None)
    return clients * messages / elapsed


async def over_serve(clients: int, messages: int) -> float:
    from websockets.asyncio.client import connect

    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "echo_app.py"
        app.write_text(ECHO_APP)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "serve", str(app), "--port", "0", "--in-memory",
             "--log-level", "warning", "--no-access-log"],
            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            if " on http://" not in line:
                raise SystemExit(f"durable serve did not start: {line!r}")
            url = line.split(" on ", 1)[1].split()[0].replace("http://", "ws://") + "/"
            sockets = [await connect(url, compression=None) for _ in range(clients)]

            async def drive(ws: Any) -> None:
                sent = [f"m{i}" for i in range(messages)]
                for text in sent:
                    await ws.send(text)
                got = [await ws.recv() for _ in sent]
                if got != sent:
                    raise SystemExit("over serve: echoes out of order or missing")

            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(drive(ws) for ws in sockets)), 300)
            elapsed = time.perf_counter() - start
            for ws in sockets:
                await ws.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    return clients * messages / elapsed


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def memory(count: int) -> tuple[float, float]:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Echo).get_by_name("bench")
        await stub.fetch("http://bench/", headers={"Upgrade": "websocket"})  # warm up
        gc.collect()
        rss_before = rss_kib()
        tracemalloc.start()
        base = tracemalloc.take_snapshot()
        clients = []
        for _ in range(count):
            response = await stub.fetch("http://bench/", headers={"Upgrade": "websocket"})
            client = response.web_socket
            assert client is not None
            client.accept()
            clients.append(client)
        await hibernate(stub)
        await asyncio.sleep(0)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        held = sum(stat.size_diff for stat in after.compare_to(base, "filename"))
        rss_growth = (rss_kib() - rss_before) * 1024
        sockets = await durable.testing.run_in_object(stub, lambda obj, ctx: len(ctx.get_web_sockets()))
        if sockets != count + 1:
            raise SystemExit(f"memory: expected {count + 1} sockets, found {sockets}")
        clients[0].send("still connected")
        if await clients[0].receive() != "still connected":
            raise SystemExit("memory: a socket does not echo after hibernation")
    return held / count, rss_growth / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for clients in (1, args.clients):
        rate = await in_process(clients, args.messages)
        print(f"in process, {clients:3d} client(s): {rate:10,.0f} echoed messages/s")
    if not args.skip_serve:
        for clients in (1, args.clients):
            rate = await over_serve(clients, args.messages)
            print(f"durable serve, {clients:3d} client(s): {rate:10,.0f} echoed messages/s")
    heap, rss = await memory(args.sockets)
    print(
        f"{args.sockets:,} hibernated sockets: {heap:,.0f} bytes of Python heap per socket "
        f"(both in-process ends), RSS growth {rss:,.0f} bytes per socket"
    )


if __name__ == "__main__":
    asyncio.run(main())
