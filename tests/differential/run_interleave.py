"""Run random interleaving cases in workerd and in ``durable`` and print every difference.

Usage: ``python tests/differential/run_interleave.py [N] [--seed S] [--repeats R] [--loop uvloop]`` (N cases,
default 200; each runs R times in workerd, default 3, and is compared only if workerd answered
alike every time), from the repository root after ``npm install --prefix tests/differential``.
The exit code is 1 if any stable case differed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
from differential.interleave import DurableSide, Generator, differences, outcome_in_workerd
from differential.runner import Workerd, add_loop_option, harness_missing, run_main

FRESH_WORKERD_EVERY = 250
"""Cases run in one workerd before the next starts afresh. Each case leaves its objects behind
(``repeats`` of them and their other objects, SQLite-backed ones each with a database), and one
workerd answered every SQLite case from about the 790th on (seed 9402, repeats 3, miniflare
4.20260426) with ``out of memory: SQLITE_NOMEM`` or ``internal error``."""


async def main(count: int, seed: int, repeats: int, show: bool) -> int:
    missing = harness_missing()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    workerd = Workerd()
    found = unstable = failed = 0
    try:
        async with durable.Runtime() as rt:
            side = DurableSide(rt)
            gen = Generator(seed)
            for number in range(count):
                if number and number % FRESH_WORKERD_EVERY == 0:
                    workerd.close()
                    workerd = Workerd()
                case = gen.case()
                name = f"case-{seed}-{number}"
                try:
                    expected, stable = await asyncio.to_thread(outcome_in_workerd, workerd, case, name, repeats)
                except RuntimeError as exc:  # workerd itself failed: say so, go on
                    failed += 1
                    print(f"--- case {number} (seed {seed}): {exc}\n  case: {json.dumps(case)}")
                    continue
                if not stable:
                    unstable += 1
                    continue
                got = await side.outcome(case, name, expected)
                diff = differences(case, expected, got)
                if diff or show:
                    found += bool(diff)
                    print(f"--- case {number} (seed {seed}): {json.dumps(case)}")
                    print("\n".join(f"  {d}" for d in diff))
    finally:
        workerd.close()
    print(
        f"{count} cases against miniflare {workerd.version}: {unstable} unstable in workerd, "
        f"{failed} failed in workerd, {found} differ"
    )
    return 1 if found or failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=200, help="how many cases (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case in workerd (default 3)")
    parser.add_argument("--show", action="store_true", help="print every case, not only those that differ")
    add_loop_option(parser)
    args = parser.parse_args()
    sys.exit(run_main(main(args.count, args.seed, args.repeats, args.show), args.loop))
