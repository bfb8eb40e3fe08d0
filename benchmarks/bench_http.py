"""HTTP benchmark of the served counter (examples/counter.py), over loopback.

Starts ``python -m durable serve examples/counter.py`` on a free port of 127.0.0.1, in memory
and then persisted to a temporary directory, and drives ``/increment?name=...`` with an
``httpx.AsyncClient`` at 1, 16 and 64 concurrent connections for about 3 s each. Prints
requests per second and p50/p90/p99 latency, and checks that each counter's final value equals
the number of increments that succeeded (exit code 1 if not).

Bounded: every level stops after ``--duration`` seconds or ``--max-requests`` requests, every
wait has a timeout, and the server is stopped (killed if need be) whatever happens.

    python benchmarks/bench_http.py [--duration 3] [--concurrency 1 16 64] [--modes memory persist]
                                    [--client httpx|raw]

The client runs on the same machine as the server and competes with it for CPU, so the figures
are a floor for what the server alone could do. httpx is itself costly per request; ``--client
raw`` drives the same keep-alive HTTP/1.1 requests over bare asyncio streams instead, which
shows more of the server's own capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "counter.py"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


@dataclass
class Result:
    mode: str
    connections: int
    ok: int
    errors: int
    seconds: float
    latencies: list[float]
    final_count: int

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    @property
    def consistent(self) -> bool:
        return self.final_count == self.ok


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Stop a server subprocess: SIGTERM, then kill if it has not exited within STOP_TIMEOUT."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=STOP_TIMEOUT)


class Server:
    """The counter served by `durable serve` in a subprocess; stopped in close()."""

    def __init__(self, *storage_args: str, cwd: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "durable",
                "serve",
                str(EXAMPLE),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-access-log",
                "--log-level",
                "warning",
                *storage_args,
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def url(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the server did not start in time") from None
            if line is None:
                raise RuntimeError(f"the server exited with code {self.proc.wait(STOP_TIMEOUT)}")
            if line.startswith("durable: serving"):
                return line.split(" on ", 1)[1].split(" ", 1)[0]

    def close(self) -> None:
        stop_process(self.proc)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


async def run_level(
    url: str, mode: str, connections: int, duration: float, max_requests: int, client_kind: str
) -> Result:
    name = f"bench-{mode}-{connections}-{os.getpid()}"
    latencies: list[float] = []
    ok = errors = started = 0
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        await client.get("/")  # warm up the connection and the server
        begin = loop.time()
        deadline = begin + duration

        async def httpx_connection() -> None:
            nonlocal ok, errors, started
            while loop.time() < deadline and started < max_requests:
                started += 1
                t0 = time.perf_counter()
                try:
                    resp = await client.get(f"/increment?name={name}")
                except httpx.HTTPError:
                    errors += 1
                    continue
                if resp.status_code == 200:
                    ok += 1
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        async def raw_connection() -> None:
            # One keep-alive HTTP/1.1 connection, one request at a time, no client library.
            nonlocal ok, errors, started
            host, port = url.removeprefix("http://").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            request = f"GET /increment?name={name} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            try:
                while loop.time() < deadline and started < max_requests:
                    started += 1
                    t0 = time.perf_counter()
                    writer.write(request)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    await asyncio.wait_for(reader.readexactly(length), 10)
                    if head.startswith(b"HTTP/1.1 200 "):
                        ok += 1
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1
            finally:
                writer.close()
                await writer.wait_closed()

        one_connection = raw_connection if client_kind == "raw" else httpx_connection
        await asyncio.wait_for(asyncio.gather(*(one_connection() for _ in range(connections))), timeout=duration + 60)
        elapsed = loop.time() - begin
        text = (await client.get(f"/?name={name}")).text
    return Result(mode, connections, ok, errors, elapsed, latencies, int(text.rsplit(" ", 1)[1]))


def report(result: Result) -> None:
    print(
        f"{result.mode:<8} {result.connections:>5} {result.ok:>9} {result.ok / result.seconds:>9.0f} "
        f"{result.percentile(50):>8.2f} {result.percentile(90):>8.2f} {result.percentile(99):>8.2f} "
        f"{result.errors:>6}  {'ok' if result.consistent else 'MISMATCH'} ({result.final_count})",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per level (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", choices=["memory", "persist"], default=["memory", "persist"])
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per level")
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="httpx.AsyncClient (default) or bare asyncio streams",
    )
    args = parser.parse_args()

    print(
        f"durable HTTP benchmark: examples/counter.py over 127.0.0.1, {args.duration:g} s per level, "
        f"client {args.client}"
    )
    print(
        f"{'storage':<8} {'conns':>5} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6}  final count"
    )
    all_consistent = True
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as tmp:
        for mode in args.modes:
            storage = ["--in-memory"] if mode == "memory" else ["--persist", str(Path(tmp) / "state")]
            server = Server(*storage, cwd=tmp)
            try:
                url = server.url()
                for connections in args.concurrency:
                    result = asyncio.run(
                        run_level(url, mode, connections, args.duration, args.max_requests, args.client)
                    )
                    report(result)
                    all_consistent &= result.consistent and result.errors == 0
            finally:
                server.close()
    return 0 if all_consistent else 1


if __name__ == "__main__":
    sys.exit(main())
