"""Run random WebSocket sequences in workerd and in ``durable`` and print every difference.

Usage: ``python tests/differential/run_ws.py [N] [--seed S] [--resets] [--loop uvloop]`` (N sequences, default 100;
``--resets`` adds resets and ``ctx.storage.kv`` ops, see ``ws_ops.Generator``), from the
repository root after ``npm install --prefix tests/differential``. Each difference is printed with
its sequence (``ws_ops.py`` says what the steps do); the exit code is 1 if there was any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
from differential.runner import Workerd, add_loop_option, harness_missing, run_main
from differential.ws_ops import Generator
from differential.ws_runner import DurableWs, differences, run_in_workerd


async def main(count: int, seed: int, show: bool, resets: bool = False) -> int:
    missing = harness_missing()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    workerd = Workerd("ws")
    found = 0
    try:
        async with durable.Runtime() as rt:
            side = DurableWs(rt)
            gen = Generator(seed, resets=resets)
            for number in range(count):
                sequence = gen.sequence()
                expected = await asyncio.to_thread(run_in_workerd, workerd, sequence)
                got = await side.run(sequence)
                diff = differences(sequence, expected, got)
                if diff or show:
                    found += bool(diff)
                    print(f"--- sequence {number} (seed {seed}): {json.dumps(sequence)[:600]}")
                    print("\n".join(f"  {d}" for d in diff))
    finally:
        workerd.close()
    print(f"{count} sequences (seed {seed}) against miniflare {workerd.version}: {found} differ")
    return 1 if found else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100, help="how many sequences (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    parser.add_argument("--resets", action="store_true", help="also reset objects (abort) and use ctx.storage.kv")
    parser.add_argument("--show", action="store_true", help="print every sequence, not only those that differ")
    add_loop_option(parser)
    args = parser.parse_args()
    sys.exit(run_main(main(args.count, args.seed, args.show, args.resets), args.loop))
