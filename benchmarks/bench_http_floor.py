"""The served counter against the floor Python allows: the same work as a bare ASGI app.

Serves, side by side on 127.0.0.1, ``durable serve examples/counter.py`` and
``benchmarks/bare_counter.py`` (a plain ASGI callable doing the same SQLite read, write and commit
per request), both persisted to a temporary directory and both under uvicorn with the same
stack, and drives ``/increment?name=...`` at 1, 16 and 64 keep-alive connections. Levels are
interleaved (floor, durable, durable, floor, ...) so that a change in the machine's speed
shows in both columns. Prints requests per second and the ratio durable / floor per level
(median over ``--repeats``), and checks that each counter's final value matches the requests
answered (exit code 1 if not).

    python benchmarks/bench_http_floor.py [--duration 3] [--repeats 3] [--concurrency 1 16 64]
                                          [--stack fast pure] [--client wrk|raw]

``--stack fast`` is uvloop + httptools (what ``durable-objects[server]`` installs), ``pure`` is
asyncio + h11 (uvicorn's pure-Python parser). The load generator is ``wrk`` where it is
installed (one thread: the machine's other core is the server's), else the bounded raw-socket
client of ``bench_http.py``, which costs more CPU per request, so its figures are lower for both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_http import run_level, stop_process

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "counter.py"
BENCHMARKS = REPO / "benchmarks"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
STACKS = {"fast": ("uvloop", "httptools"), "pure": ("asyncio", "h11")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A uvicorn server in a subprocess, ready once it answers ``/``; stopped in close()."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.label = label
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise RuntimeError(f"{label} exited at start: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"{label} did not start within {STARTUP_TIMEOUT:g} s") from None
                time.sleep(0.1)

    def close(self) -> None:
        stop_process(self.proc)


def start_servers(stack: str, tmp: Path) -> tuple[Server, Server]:
    loop, http = STACKS[stack]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    floor = Server(
        "floor",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_counter:app",
            "--app-dir",
            str(BENCHMARKS),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--loop",
            loop,
            "--http",
            http,
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        dict(env, BARE_COUNTER_DB=str(tmp / f"bare-{stack}.sqlite")),
        str(tmp),
    )
    try:
        served = Server(
            "durable",
            [
                sys.executable,
                "-m",
                "durable",
                "serve",
                str(EXAMPLE),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--loop",
                loop,
                "--http",
                http,
                "--persist",
                str(tmp / f"state-{stack}"),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            str(tmp),
        )
    except BaseException:
        floor.close()
        raise
    return floor, served


def final_count(url: str, name: str) -> int:
    with urllib.request.urlopen(f"{url}/?name={name}", timeout=10) as resp:
        return int(resp.read().decode().rsplit(" ", 1)[1])


def measure(server: Server, connections: int, duration: float, client: str, tag: str) -> tuple[float, bool]:
    """Requests per second at ``connections``, and whether the final count matches."""
    if client == "wrk":
        name = f"{server.label}-{tag}-{connections}"
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration:g}s",
                "--timeout",
                "10s",
                f"{server.url}/increment?name={name}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
        answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        failed = "Non-2xx" in out or "Socket errors" in out
        # wrk stops with up to one request per connection in flight; the server may have
        # counted those without wrk counting their answers.
        count = final_count(server.url, name)
        return rate, not failed and answered <= count <= answered + connections
    result = asyncio.run(run_level(server.url, f"{server.label}-{tag}", connections, duration, 10**7, "raw"))
    return result.ok / result.seconds, result.consistent and result.errors == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per level (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per level (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--stack", nargs="+", choices=sorted(STACKS), default=["fast", "pure"])
    parser.add_argument("--client", choices=["wrk", "raw"], default="wrk" if shutil.which("wrk") else "raw")
    args = parser.parse_args()
    if args.client == "wrk" and (args.duration < 1 or args.duration != int(args.duration)):
        parser.error(f"--duration {args.duration:g}: wrk takes whole seconds (1 or more); use --client raw for less")
    if args.duration <= 0 or args.repeats < 1 or min(args.concurrency) < 1:
        parser.error("--duration must be positive, --repeats and --concurrency at least 1")

    print(
        f"served counter vs bare ASGI floor, persisted, {args.duration:g} s per level, "
        f"{args.repeats} interleaved repeats, client {args.client}"
    )
    print(f"{'stack':<6} {'conns':>5} {'floor req/s':>12} {'durable req/s':>14} {'ratio':>7}  ratios per repeat")
    ok = True
    with tempfile.TemporaryDirectory(prefix="durable-floor-") as tmp_name:
        tmp = Path(tmp_name)
        for stack in args.stack:
            try:
                floor, served = start_servers(stack, tmp)
            except RuntimeError as exc:
                print(f"{stack:<6} skipped: {exc}")
                continue
            try:
                for connections in args.concurrency:
                    floors: list[float] = []
                    serveds: list[float] = []
                    for repeat in range(args.repeats):
                        order = (floor, served) if repeat % 2 == 0 else (served, floor)
                        for server in order:
                            rate, consistent = measure(server, connections, args.duration, args.client, f"r{repeat}")
                            ok &= consistent
                            if not consistent:
                                print(f"  MISMATCH: {server.label} at {connections} connections, repeat {repeat}")
                            (floors if server is floor else serveds).append(rate)
                    ratios = [s / f for s, f in zip(serveds, floors)]
                    print(
                        f"{stack:<6} {connections:>5} {statistics.median(floors):>12.0f} "
                        f"{statistics.median(serveds):>14.0f} {statistics.median(ratios):>7.2f}  "
                        + " ".join(f"{r:.2f}" for r in ratios),
                        flush=True,
                    )
            finally:
                served.close()
                floor.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
