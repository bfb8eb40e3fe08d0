"""The in-process RPC path on its own: CPU time per call, and a fixed workload for instruction counts.

Run from the repository root::

    python benchmarks/bench_rpc.py [--calls 20000] [--repeats 5]
    python benchmarks/bench_rpc.py --only seq-increment --calls 2000 --repeats 1   # under callgrind

Each workload runs on an in-memory runtime (no disk: what is left is the emulator's own Python and
SQLite's in-memory statements), or with ``--persisted`` on a temporary directory, on one object:

- ``seq-increment``: ``await stub.increment()`` in a loop (read, add one, write; one commit each);
- ``conc-increment``: ``asyncio.gather`` of 1000 increments at a time (one commit per 1000);
- ``seq-noop``: ``await stub.noop()`` of an ``async def`` that touches no storage (the RPC
  machinery alone: stub, promise, host, gates, eager start, result copy, delivery);
- ``seq-args``: the same with two arguments, ``await stub.first(1, "x")`` (their copy);
- ``seq-fetch``, ``conc-fetch``: the increment through ``fetch``, ``await (await
  stub.fetch(url)).text()`` in a loop, or 1000 fetches gathered at a time;
- ``fan-in``: 50 objects at once, each awaiting its share of the calls to one counter's
  ``increment()`` (calls between objects; those that reach the counter in one turn share a commit).

It prints ``time.process_time()`` per call (best and median of ``--repeats``), which a busy shared
machine disturbs less than wall-clock time. For a figure that does not move at all, count
instructions with valgrind, at two sizes, and divide the difference by the difference in calls::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/bench_rpc.py --only seq-increment --calls 2000 --repeats 1
    # ... again with --calls 6000; (Collected 6000 - Collected 2000) / 4000 = instructions per call

Results are checked (every increment's count); the script exits with status 1 if one is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_storage import INCREMENT
from bench_storage import Counter as StorageCounter

import durable


class Counter(StorageCounter):
    """The counter of ``bench_storage.py``, a method that does nothing, one with two arguments, and
    the seed counter's ``fetch`` increment (the same key, answered as text)."""

    async def noop(self) -> int:
        return 1

    async def fetch(self, request: durable.Request) -> durable.Response:
        value = ((await self.ctx.storage.get("n")) or 0) + 1
        await self.ctx.storage.put("n", value)
        return durable.Response(str(value))

    async def first(self, a: int, b: str) -> int:
        return a


class Caller(durable.DurableObject):
    """An object that increments the counter named ``"fan-in"`` (namespace ``COUNTER``), awaiting each call."""

    async def increment_counter(self, times: int) -> int:
        counter = self.env.COUNTER.get_by_name("fan-in")
        for _ in range(times):
            await counter.increment()
        return times


FAN_IN_CALLERS = 50


@dataclass
class FanInTarget:
    """What ``fan-in`` works on: the callers' namespace, the counter they all call, its count so far."""

    callers: Any
    counter: Any
    before: int = 0


async def fan_in(target: FanInTarget, calls: int) -> None:
    """``FAN_IN_CALLERS`` objects at once, each awaiting its share of ``calls`` increments of one counter."""
    share = max(1, calls // FAN_IN_CALLERS)
    callers = [target.callers.get_by_name(f"caller-{i}") for i in range(FAN_IN_CALLERS)]
    await asyncio.gather(*(caller.increment_counter(share) for caller in callers))
    expected = target.before + share * FAN_IN_CALLERS
    count = await target.counter.count()
    if count != expected:
        raise SystemExit(f"fan-in: the counter reads {count}, expected {expected}")
    target.before = count


async def seq_increment(stub: Any, calls: int) -> None:
    last = 0
    for _ in range(calls):
        last = await stub.increment()
    if last != calls:
        raise SystemExit(f"seq-increment: last result {last}, expected {calls}")


async def conc_increment(stub: Any, calls: int) -> None:
    done = 0
    while done < calls:
        size = min(1000, calls - done)
        results = await asyncio.gather(*(stub.increment() for _ in range(size)))
        if sorted(results) != list(range(done + 1, done + size + 1)):
            raise SystemExit("conc-increment: results are not exactly the next increments")
        done += size


async def seq_fetch(stub: Any, calls: int) -> None:
    text = ""
    for _ in range(calls):
        text = await (await stub.fetch(INCREMENT)).text()
    if text != str(calls):
        raise SystemExit(f"seq-fetch: last answer {text!r}, expected {calls}")


async def conc_fetch(stub: Any, calls: int) -> None:
    done = 0
    while done < calls:
        size = min(1000, calls - done)
        responses = await asyncio.gather(*(stub.fetch(INCREMENT) for _ in range(size)))
        answers = sorted([int(await response.text()) for response in responses])
        if answers != list(range(done + 1, done + size + 1)):
            raise SystemExit("conc-fetch: answers are not exactly the next increments")
        done += size


async def seq_noop(stub: Any, calls: int) -> None:
    for _ in range(calls):
        await stub.noop()


async def seq_args(stub: Any, calls: int) -> None:
    for _ in range(calls):
        await stub.first(1, "x")


WORKLOADS: dict[str, Callable[[Any, int], Awaitable[None]]] = {
    "seq-increment": seq_increment,
    "conc-increment": conc_increment,
    "seq-noop": seq_noop,
    "seq-args": seq_args,
    "seq-fetch": seq_fetch,
    "conc-fetch": conc_fetch,
    "fan-in": fan_in,
}


async def measure(name: str, calls: int, repeats: int, path: Path | None = None) -> list[float]:
    """Microseconds of CPU time per call, one figure per repeat (each on a fresh object)."""
    figures = []
    async with durable.Runtime(path=path) as rt:
        ns = rt.namespace(Counter, name="COUNTER")
        fan_in_target = FanInTarget(rt.namespace(Caller, name="CALLER"), ns.get_by_name("fan-in"))
        for repeat in range(repeats):
            stub = ns.get_by_name(f"{name}-{repeat}")
            await stub.noop()  # builds the instance and resolves the name: not part of the figure
            target: Any = fan_in_target if name == "fan-in" else stub
            gc.collect()
            start = time.process_time()
            await WORKLOADS[name](target, calls)
            figures.append((time.process_time() - start) / calls * 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per repeat (default 20000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each workload (default 5)")
    parser.add_argument("--only", choices=sorted(WORKLOADS), help="run one workload only")
    parser.add_argument(
        "--persisted", action="store_true", help="a runtime on a temporary directory (WAL, NORMAL) instead of in memory"
    )
    args = parser.parse_args()
    names = [args.only] if args.only else list(WORKLOADS)
    print(f"durable RPC path: {args.calls} calls per repeat, {args.repeats} repeats (Python {sys.version.split()[0]})")
    print(f"CPU time per call (time.process_time), {'persisted' if args.persisted else 'in-memory'} runtime:")
    with tempfile.TemporaryDirectory(prefix="durable-bench-rpc-") as tmp:
        for name in names:
            figures = asyncio.run(measure(name, args.calls, args.repeats, Path(tmp) / name if args.persisted else None))
            print(f"  {name:16} best {min(figures):6.2f} us   median {statistics.median(figures):6.2f} us")


if __name__ == "__main__":
    main()
