"""Run random alarm sequences in workerd and in ``durable`` and print every difference.

Usage: ``python tests/differential/run_alarm.py [N] [--seed S] [--resets] [--loop uvloop]`` (N sequences, default
30; ``--resets`` makes handlers also reset the object, see ``AlarmGenerator``), from
the repository root after ``npm install --prefix tests/differential``. Each sequence takes up to a
few seconds (handlers that throw are retried 2 s later). Each difference is printed with the
sequence that shows it; the exit code is 1 if there was any. See ``alarm_ops``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
from differential.alarm_ops import AlarmFuzz, AlarmGenerator, first_difference, run_durable
from differential.runner import Workerd, add_loop_option, harness_missing, run_main


async def _again(workerd: Workerd, namespace: Any, name: str, sequence: Any, expected: Any) -> bool:
    """Whether ``sequence`` differs twice more, with workerd's report the same each time."""
    for attempt in range(2):
        again = await asyncio.to_thread(workerd.request, {"object": f"{name}-again{attempt}", **sequence})
        got = await run_durable(namespace, f"{name}-again{attempt}", sequence)
        if first_difference(again, expected) is not None or first_difference(again, got) is None:
            return False
    return True


async def main(count: int, seed: int, verbose: bool, resets: bool = False) -> int:
    missing = harness_missing()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    workerd = Workerd("alarm")
    found = steps = timing = 0
    try:
        async with durable.Runtime() as rt:
            namespace = rt.namespace(AlarmFuzz, storage="sqlite")
            gen = AlarmGenerator(seed, resets=resets)
            for number in range(count):
                sequence = gen.sequence()
                steps += len(sequence["steps"])
                name = f"alarm-{seed}-{number}"
                expected, got = await asyncio.gather(
                    asyncio.to_thread(workerd.request, {"object": name, **sequence}),
                    run_durable(namespace, name, sequence),
                )
                if verbose:
                    print(json.dumps({"sequence": sequence, "workerd": expected, "durable": got}))
                difference = first_difference(expected, got)
                if difference is not None:
                    stable = await _again(workerd, namespace, name, sequence, expected)
                    found += 1
                    timing += not stable
                    kind = "differs every time" if stable else "TIMING: not the same on a rerun"
                    print(
                        f"--- sequence {number} (seed {seed}), {kind}: {difference}\n  sequence: {json.dumps(sequence)}"
                    )
    finally:
        workerd.close()
    print(
        f"{count} sequences ({steps} steps, seed {seed}) against miniflare {workerd.version}: {found} differ ({timing} of them not on a rerun)"
    )
    return 1 if found else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=30, help="how many sequences (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    parser.add_argument("--resets", action="store_true", help="handlers may also reset the object (ctx.abort())")
    parser.add_argument("--verbose", action="store_true", help="print every sequence and both reports")
    add_loop_option(parser)
    args = parser.parse_args()
    sys.exit(run_main(main(args.count, args.seed, args.verbose, args.resets), args.loop))
