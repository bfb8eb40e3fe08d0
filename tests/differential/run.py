"""Run random storage sequences in workerd and in ``durable`` and print every difference.

Usage: ``python tests/differential/run.py [N] [--seed S] [--loop uvloop]`` (N sequences, default 200), from the
repository root after ``npm install --prefix tests/differential``. Each difference is printed with
the calls that reproduce it; the exit code is 1 if there was any. Allowed differences
(``allowances.ALLOWED``) are not printed; ``allowances.OPEN`` ones are not generated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
from differential.ops import Generator
from differential.runner import DurableSide, Workerd, add_loop_option, compare, harness_missing, run_main


async def main(count: int, seed: int) -> int:
    missing = harness_missing()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    workerd = Workerd()
    found = 0
    try:
        async with durable.Runtime() as rt:
            side = DurableSide(rt)
            gen = Generator(seed)
            for number in range(count):
                sequence = gen.sequence()
                try:
                    difference = await compare(sequence, f"seq-{seed}-{number}", workerd, side)
                except RuntimeError as exc:  # workerd itself failed: say so, go on
                    print(f"--- sequence {number} (seed {seed}): {exc}\n  sequence: {json.dumps(sequence)[:20000]}")
                    found += 1
                    continue
                if difference is not None:
                    found += 1
                    print(f"--- sequence {number} (seed {seed})\n{difference}\n  calls: {difference.reproduction()}")
    finally:
        workerd.close()
    print(f"{count} sequences against miniflare {workerd.version}: {found} with a difference")
    return 1 if found else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=200, help="how many sequences (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    add_loop_option(parser)
    args = parser.parse_args()
    sys.exit(run_main(main(args.count, args.seed), args.loop))
