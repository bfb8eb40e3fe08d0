"""Many objects: touch up to 100,000 distinct persisted Durable Objects, one write each, and watch resources.

Run from the repository root::

    python benchmarks/bench_objects.py                      # stops at 100,000 objects or after 30 s
    python benchmarks/bench_objects.py --max-seconds 0      # all 100,000, however long it takes
    python benchmarks/bench_objects.py --objects 5000 [--batch 200] [--max-live 1000] [--dir /dev/shm]

It opens ``durable.Runtime(path=<temporary directory>, max_live_objects=--max-live)`` and calls
``await ns.get_by_name(f"obj-{i}").increment()`` for every ``i``, ``--batch`` calls at a time through
``asyncio.gather`` (bounded concurrency). Every object comes to life, creates its own SQLite file,
commits one write, and, once more than ``max_live_objects`` objects are live, the least recently used
idle ones are evicted and their files closed. Creating a SQLite file in WAL mode and closing it
(which checkpoints the WAL) cost several fsyncs each, so on a real disk the rate is bounded by the
disk; ``--dir /dev/shm`` (tmpfs: fsync costs nothing) shows the CPU cost instead. With the default
``--max-seconds 30`` the run stops early on a slow disk and says so: the figures then describe the
objects it did touch.

Then it prints:

- objects touched, elapsed time, objects per second, and for comparison a bare ``sqlite3`` loop on
  the same directory kind (``--floor`` objects: ``durable._sqlite.connect``, the same two tables,
  one write, commit, close), the floor of what one-file-per-object costs;
- peak resident memory of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and, with
  ``--tracemalloc``, the peak of Python allocations (tracing is slow and costs memory itself);
- the most open file descriptors seen (``len(os.listdir("/proc/self/fd"))``, sampled inside the
  object every ``--sample-every`` calls and after every batch), next to the bound: at most
  ``max_live_objects`` idle objects plus the ``--batch`` objects of the batch in flight are live,
  each holding at most three descriptors (the database, its ``-wal`` and its ``-shm``), plus a few
  for the process itself;
- the files on disk afterwards (one ``.sqlite`` per object once its database is closed), and a
  check that a sample of objects reopened from disk hold exactly one increment.

Targets: peak memory under 250 MB, open files within the bound; each is printed with "target met"
or "target missed". The script never fails on speed; it exits with status 1 if a result or a stored
count is wrong. The temporary directory is removed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
import durable.testing
from durable._sqlite import connect

MEMORY_TARGET_MB = 250
FD_SLACK = 32
"""Descriptors allowed on top of the objects' own: stdio, the event loop, the lock and meta files."""


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: no /proc
        return -1


def max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class FdSampler:
    """Counts open file descriptors every ``every`` calls, from inside the objects' own code.

    Sampling inside ``increment`` (not only between batches) catches the peak in the middle of a
    batch, when the batch's objects have opened their files and the idle ones are not yet evicted.
    """

    def __init__(self) -> None:
        self.every = 100
        self.calls = 0
        self.max = -1

    def tick(self) -> None:
        self.calls += 1
        if self.calls % self.every == 0:
            self.sample()

    def sample(self) -> None:
        self.max = max(self.max, open_fds())


SAMPLER = FdSampler()


class Counter(durable.DurableObject):
    """One key, read-modify-write in one turn."""

    async def increment(self) -> int:
        value = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", value + 1)
        SAMPLER.tick()  # after the write: this object's files are open now
        return value + 1

    async def count(self) -> int:
        return (await self.ctx.storage.get("n")) or 0


def disk_usage(root: Path) -> tuple[dict[str, int], int]:
    """Files under ``root`` by kind (``.sqlite``, ``-wal``, ...) and their total size in bytes."""
    kinds: dict[str, int] = {}
    size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(("-wal", "-shm", "-journal")):
                kind = name[name.rfind("-") :]
            else:
                kind = name[name.rfind(".") :] if "." in name else name
            kinds[kind] = kinds.get(kind, 0) + 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return kinds, size


def bare_sqlite_floor(root: Path, objects: int, max_live: int) -> float:
    """Objects per second of bare sqlite3 doing what one object's first write does; files closed LRU."""
    root.mkdir(parents=True)
    live: collections.deque[sqlite3.Connection] = collections.deque()
    start = time.perf_counter()
    for i in range(objects):
        conn = connect(root / f"{i}.sqlite")
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE IF NOT EXISTS _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        conn.execute("CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
        conn.execute("SELECT value FROM _cf_KV WHERE key = 'n'").fetchone()
        conn.execute("INSERT OR REPLACE INTO _cf_KV VALUES ('n', ?)", (b"\x01",))
        conn.execute("COMMIT")
        live.append(conn)
        if len(live) > max_live:
            live.popleft().close()
    while live:
        live.popleft().close()
    return objects / (time.perf_counter() - start)


async def run(root: Path, args: argparse.Namespace) -> bool:
    SAMPLER.every = args.sample_every
    fds_before = open_fds()
    SAMPLER.max = fds_before
    rss_before = max_rss_mb()
    failures: list[str] = []
    live_peak = 0
    touched = 0
    budget = args.max_seconds if args.max_seconds > 0 else float("inf")
    start = time.perf_counter()
    async with durable.Runtime(path=root, max_live_objects=args.max_live) as rt:
        ns = rt.namespace(Counter)
        for base in range(0, args.objects, args.batch):
            if time.perf_counter() - start >= budget:
                break
            names = [f"obj-{i}" for i in range(base, min(base + args.batch, args.objects))]
            results = await asyncio.gather(*(ns.get_by_name(n).increment() for n in names))
            touched += len(names)
            if results != [1] * len(names):
                failures.append(f"batch at {base}: results {sorted(set(results))}, expected all 1")
            SAMPLER.sample()
            live_peak = max(live_peak, len(rt.hosts.live))  # diagnostic only: package-internal, may change
            if args.progress and (base // args.batch) % 20 == 0:
                print(
                    f"  {touched:>7} objects  {time.perf_counter() - start:6.1f} s  "
                    f"fds {SAMPLER.max}  rss {max_rss_mb():.0f} MB",
                    flush=True,
                )
    elapsed = time.perf_counter() - start
    fds_after = open_fds()
    rss_peak = max_rss_mb()
    traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else 0

    # Acknowledged writes are on disk: reopen and read a sample back.
    sample = random.Random(0).sample(range(touched), min(200, touched))
    async with durable.Runtime(path=root, max_live_objects=args.max_live) as rt:
        ns = rt.namespace(Counter)
        counts = await asyncio.gather(*(ns.get_by_name(f"obj-{i}").count() for i in sample))
    wrong = [(i, c) for i, c in zip(sample, counts) if c != 1]
    if wrong:
        failures.append(f"{len(wrong)} of {len(sample)} sampled objects hold a count other than 1: {wrong[:5]}")
    kinds, size = disk_usage(root)
    if kinds.get(".sqlite", 0) != touched + 1:  # + durable-meta.sqlite
        failures.append(f"{kinds.get('.sqlite', 0)} .sqlite files on disk, expected {touched} objects + 1 meta")

    floor = bare_sqlite_floor(root.parent / "floor", args.floor, args.max_live) if args.floor else None

    fd_bound = (args.max_live + args.batch) * 3 + FD_SLACK
    print()
    stopped = (
        "" if touched == args.objects else f" (stopped at the {args.max_seconds:g} s budget; --max-seconds 0 runs all)"
    )
    print(f"objects touched      {touched:,} of {args.objects:,}{stopped}")
    print(f"                     one write each, batches of {args.batch}, max_live_objects={args.max_live}")
    print(f"elapsed              {elapsed:.1f} s")
    print(f"objects per second   {touched / elapsed:,.0f}")
    if floor is not None:
        print(
            f"bare sqlite3 floor   {floor:,.0f} objects/s ({args.floor} files: create, write, commit, close); "
            f"durable / floor = {touched / elapsed / floor:.2f}"
        )
    print(f"live objects, peak   {live_peak:,} (between batches)")
    print(
        f"peak RSS             {rss_peak:.0f} MB (before the run: {rss_before:.0f} MB)   "
        f"target < {MEMORY_TARGET_MB} MB: {'target met' if rss_peak < MEMORY_TARGET_MB else 'target missed'}"
    )
    if args.tracemalloc:
        print(f"tracemalloc peak     {traced_peak / 2**20:.0f} MB of Python allocations")
    print(
        f"open fds, max seen   {SAMPLER.max:,} (before: {fds_before}, after closing: {fds_after})   "
        f"bound ({args.max_live} + {args.batch}) x 3 + {FD_SLACK} = {fd_bound:,}: "
        f"{'target met' if 0 <= SAMPLER.max <= fd_bound else 'target missed'}"
    )
    print(
        "files on disk        "
        + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items()))
        + f"; {size / 2**20:.0f} MB in all"
    )
    if failures:
        for failure in failures:
            print(f"CORRECTNESS FAILURE: {failure}", file=sys.stderr)
        return False
    print(f"correctness          every result was 1; {len(sample)} objects reopened from disk hold 1")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000, help="distinct objects to touch (default 100000)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="stop starting batches after this long; 0: no limit (default 30)",
    )
    parser.add_argument("--batch", type=int, default=200, help="calls gathered at once (default 200)")
    parser.add_argument("--max-live", type=int, default=1000, help="Runtime(max_live_objects=...) (default 1000)")
    parser.add_argument("--sample-every", type=int, default=100, help="count open fds every N calls (default 100)")
    parser.add_argument(
        "--floor", type=int, default=500, help="objects for the bare sqlite3 floor; 0: skip (default 500)"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--progress", action="store_true", help="print progress every 20 batches")
    parser.add_argument("--dir", help="parent of the temporary directory (default: the system's; try /dev/shm)")
    args = parser.parse_args()
    if args.objects < 1 or args.batch < 1 or args.sample_every < 1:
        parser.error("--objects, --batch and --sample-every must be positive")
    if args.tracemalloc:
        tracemalloc.start()
    tmp = Path(tempfile.mkdtemp(prefix="durable-bench-objects-", dir=args.dir))
    print(f"durable many-objects benchmark in {tmp} (Python {sys.version.split()[0]})", flush=True)
    try:
        ok = asyncio.run(run(tmp / "state", args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
