"""Durable Objects from synchronous code: ``durable.BlockingRuntime`` and a pool of threads.

Run it as ``python examples/blocking.py [--persist DIR] [--threads 8] [--calls 250]``. Eight
threads (think of a Flask or Django app's request threads) each add to a shared counter and to
their own; every call blocks until its result is there, and no increment is lost. With
``--persist`` the counts survive the script: run it twice and they double.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

import durable


class Counter(durable.DurableObject):
    """One count per object, in storage."""

    async def increment(self, amount: int = 1) -> int:
        value: int = (await self.ctx.storage.get("value")) or 0
        await self.ctx.storage.put("value", value + amount)
        return value + amount

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response(str((await self.ctx.storage.get("value")) or 0))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persist", metavar="DIR", default=None, help="keep storage under DIR (default: memory)")
    parser.add_argument("--threads", type=_positive, default=8, help="worker threads (default 8)")
    parser.add_argument("--calls", type=_positive, default=250, help="calls per thread (default 250)")
    args = parser.parse_args(argv)

    with durable.BlockingRuntime(args.persist) as rt:
        counters = rt.namespace(Counter, name="COUNTER")

        def work(worker: int) -> int:
            shared = counters.get_by_name("shared")
            own = counters.get_by_name(f"worker-{worker}")
            for _ in range(args.calls):
                shared.increment()  # blocks; returns the new value
            return int(own.increment(args.calls))

        with ThreadPoolExecutor(args.threads) as pool:
            own_counts = list(pool.map(work, range(args.threads)))

        response = counters.get_by_name("shared").fetch("http://counter/")
        print(f"shared: {rt.run(response.text)} (each worker: {own_counts})")


if __name__ == "__main__":
    main()
