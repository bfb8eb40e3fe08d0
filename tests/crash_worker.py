"""Load generator for the crash test (``tests/test_crash.py``): run it, kill it with SIGKILL, check.

Usage::

    python tests/crash_worker.py DIR [--seed N] [--tasks 8] [--lifetime 60]

It opens ``durable.Runtime(path=DIR)``, prints ``READY`` and runs ``--tasks`` client loops over the
objects named in :data:`OBJECTS` (two loops per object by default). Each loop calls one of the
:class:`Ledger` methods that write a multi-key batch in one turn, and after every result it received
prints ``ACK <object> <value>`` and flushes stdout. A printed line therefore means "the caller got
this result": the crash test holds the storage to every such line after a ``kill -9``.

The worker stops by itself after ``--lifetime`` seconds (or when its stdout is closed), so that it
never outlives a test that failed to kill it. It is also importable: the test uses :class:`Ledger`
and :data:`OBJECTS` to read the state back.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable

OBJECTS = ("alpha", "beta", "gamma", "delta")
"""Names of the objects the clients write to (``Ledger`` namespace)."""

PAYLOAD = "x" * 200
"""Padding stored with every log entry, so a batch spans more than a few bytes of the WAL."""


class Ledger(durable.DurableObject):
    """A counter with a copy and a log: every append writes three keys that must commit together.

    Invariant after any crash: ``n_copy == n`` and the log keys are exactly ``log:1`` ..
    ``log:{n}``, each holding its own number. The three methods write the same batch in three
    ways (separate puts coalesced by the implicit transaction, one multi-key put, and an explicit
    ``transaction()``), all within one turn.
    """

    async def append(self) -> int:
        storage = self.ctx.storage
        n = ((await storage.get("n")) or 0) + 1
        await storage.put("n", n)
        storage.put(f"log:{n}", {"n": n, "pad": PAYLOAD})  # not awaited: it happens all the same
        await storage.put("n_copy", n)
        return n

    async def append_batch(self) -> int:
        storage = self.ctx.storage
        n = ((await storage.get("n")) or 0) + 1
        await storage.put({"n": n, "n_copy": n, f"log:{n}": {"n": n, "pad": PAYLOAD}})
        return n

    async def append_txn(self) -> int:
        async def body(txn: durable.Transaction) -> int:
            n = ((await txn.get("n")) or 0) + 1
            await txn.put("n", n)
            await txn.put(f"log:{n}", {"n": n, "pad": PAYLOAD})
            await txn.put("n_copy", n)
            return n

        return await self.ctx.storage.transaction(body)

    async def bump(self) -> int:
        """A second counter, written alone: a batch of one key commits as a single SQLite statement."""
        storage = self.ctx.storage
        solo = ((await storage.get("solo")) or 0) + 1
        await storage.put("solo", solo)
        return solo

    async def snapshot(self) -> dict[str, object]:
        """Everything the crash test checks: ``n``, ``n_copy`` and ``{log number: stored number}``."""
        storage = self.ctx.storage
        log = await storage.list(prefix="log:")
        return {
            "n": await storage.get("n"),
            "n_copy": await storage.get("n_copy"),
            "solo": await storage.get("solo"),
            "log": {int(key[4:]): value["n"] for key, value in log.items()},
        }


async def client(ns: durable.Namespace[Ledger], name: str, rng: random.Random, deadline: float) -> None:
    stub = ns.get_by_name(name)
    methods = ((name, stub.append), (name, stub.append_batch), (name, stub.append_txn), (f"{name}:solo", stub.bump))
    while time.monotonic() < deadline:
        label, method = rng.choice(methods)
        value = await method()
        sys.stdout.write(f"ACK {label} {value}\n")
        sys.stdout.flush()


async def main_async(directory: str, *, seed: int, tasks: int, lifetime: float, pitr: bool = False) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + lifetime
    async with durable.Runtime(path=directory, point_in_time_recovery=pitr) as rt:
        ns = rt.namespace(Ledger)
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await asyncio.gather(
            *(client(ns, OBJECTS[i % len(OBJECTS)], random.Random(rng.random()), deadline) for i in range(tasks))
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=2 * len(OBJECTS))
    parser.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument(
        "--pitr", action="store_true", help="keep point-in-time recovery history (tests/test_recovery.py)"
    )
    args = parser.parse_args()
    try:
        asyncio.run(
            main_async(args.directory, seed=args.seed, tasks=args.tasks, lifetime=args.lifetime, pitr=args.pitr)
        )
    except BrokenPipeError:
        return 0  # the test stopped reading: nothing left to report to
    return 0


if __name__ == "__main__":
    sys.exit(main())
