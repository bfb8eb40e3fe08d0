"""Run random RPC interactions in workerd and in ``durable`` and print every difference.

Usage: ``python tests/differential/run_rpc.py [N] [--seed S] [--loop uvloop]`` (N interactions, default 100), from
the repository root after ``npm install --prefix tests/differential``. Each difference is printed
with the steps that reproduce it; the exit code is 1 if there was any. See ``rpc_ops``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import durable
from differential.rpc_ops import RpcGenerator, RpcSide, first_difference
from differential.runner import Workerd, add_loop_option, harness_missing, run_main


async def main(count: int, seed: int, verbose: bool) -> int:
    missing = harness_missing()
    if missing is not None:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    workerd = Workerd()
    found = steps = 0
    try:
        async with durable.Runtime() as rt:
            side = RpcSide(rt)
            gen = RpcGenerator(seed)
            for number in range(count):
                interaction = gen.interaction()
                steps += len(interaction)
                name = f"rpc-{seed}-{number}"
                expected = await asyncio.to_thread(workerd.request, {"object": name, "rpc": interaction})
                got = await side.run(name, interaction)
                if verbose:
                    print(json.dumps({"steps": interaction, "workerd": expected, "durable": got}))
                difference = first_difference(interaction, expected, got)
                if difference is not None:
                    found += 1
                    print(f"--- interaction {number} (seed {seed}) {difference}\n  steps: {json.dumps(interaction)}")
    finally:
        workerd.close()
    print(f"{count} interactions ({steps} steps, seed {seed}) against miniflare {workerd.version}: {found} differ")
    return 1 if found else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100, help="how many interactions (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    parser.add_argument("--verbose", action="store_true", help="print every interaction and both observations")
    add_loop_option(parser)
    args = parser.parse_args()
    sys.exit(run_main(main(args.count, args.seed, args.verbose), args.loop))
