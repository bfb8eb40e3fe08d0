"""Run random alarm sequences in workerd and in ``durable`` and print every difference.

Usage: ``python tests/differential/run_alarm.py [N] [--seed S] [--resets] [--loop uvloop]`` (N sequences, default
30; ``--resets`` makes handlers also reset the object, see ``AlarmGenerator``), from
the repository root after ``npm install --prefix tests/differential``. Each sequence takes up to a
few seconds (handlers that throw are retried 2 s later). Each difference is printed with the
sequence that shows it; the exit code is 1 if there was any. A sequence that differed is run again
(``_rerun``): where workerd's own reports vary and durable's is one of them, it is not counted. See
``alarm_ops``.
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

RERUNS = 3
"""How many more times a sequence that differed runs on each side (``_rerun``)."""


async def _rerun(workerd: Workerd, namespace: Any, name: str, sequence: Any, expected: Any, got: Any) -> str:
    """Run a sequence that differed :data:`RERUNS` more times on each side; what the runs show.

    ``"varies in workerd"``: workerd's reports were not all alike and every report of durable's is
    one workerd gave too, which is accepted: workerd's own timing decides there, and durable shows
    one of its outcomes. ``run_alarm.py 20 --seed 10047 --resets --loop uvloop`` (sequence 19: a
    ``transaction()`` sets the alarm 74 ms ahead and commits, then the call sleeps 50 ms) ran the
    handler before the sleep's end in 4 of 6 of workerd's runs and after it in the others (the
    commit delays the sleep's start there, by a time that depends on the machine's load), and
    after it in all 6 of durable's (miniflare 4.20260426, compatibility date 2026-04-20).
    Otherwise ``"differs every time"`` (workerd alike in every run, durable's report never
    workerd's), or ``"TIMING: not the same on a rerun"``: counted as a difference.
    """
    workerd_seen = {json.dumps(expected, sort_keys=True)}
    durable_seen = {json.dumps(got, sort_keys=True)}
    for attempt in range(RERUNS):
        again = await asyncio.to_thread(workerd.request, {"object": f"{name}-again{attempt}", **sequence})
        mine = await run_durable(namespace, f"{name}-again{attempt}", sequence)
        workerd_seen.add(json.dumps(again, sort_keys=True))
        durable_seen.add(json.dumps(mine, sort_keys=True))
    return verdict(workerd_seen, durable_seen)


def verdict(workerd_seen: set[str], durable_seen: set[str]) -> str:
    """What the reports of a sequence run a few times on each side show (``_rerun``)."""
    if len(workerd_seen) > 1 and durable_seen <= workerd_seen:
        return "varies in workerd"
    if len(workerd_seen) == 1 and not durable_seen & workerd_seen:
        return "differs every time"
    return "TIMING: not the same on a rerun"


async def main(count: int, seed: int, verbose: bool, resets: bool = False) -> int:
    missing = harness_missing()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    workerd = Workerd("alarm")
    found = steps = timing = varies = 0
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
                    kind = await _rerun(workerd, namespace, name, sequence, expected, got)
                    if kind == "varies in workerd":
                        varies += 1
                        print(f"--- sequence {number} (seed {seed}): varies in workerd, durable's report is one of its")
                        continue
                    found += 1
                    timing += kind != "differs every time"
                    print(
                        f"--- sequence {number} (seed {seed}), {kind}: {difference}\n  sequence: {json.dumps(sequence)}"
                    )
    finally:
        workerd.close()
    print(
        f"{count} sequences ({steps} steps, seed {seed}) against miniflare {workerd.version}: {found} differ "
        f"({timing} of them not on a rerun), {varies} vary in workerd (durable's report one of workerd's)"
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
