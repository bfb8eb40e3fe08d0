"""Throughput of the value codec (``durable._codec``) next to pickle, on typical values.

Run from the repository root::

    python benchmarks/bench_codec.py

For each value it prints operations per second of ``encode``, ``decode`` and ``clone``, and of their
pickle counterparts (``pickle.dumps``, ``pickle.loads``, ``pickle.loads(pickle.dumps(v))``, highest
protocol), with the ratio durable / pickle (above 1 means durable is faster). ``clone`` is also set
against ``copy.deepcopy``, the other obvious way to copy. Each figure is the best of three runs of
about 0.1 s; the whole script takes about 15 seconds. Figures vary between machines and runs: compare
them with each other, not with another machine's.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import pickle
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from durable._codec import clone, decode, encode

TARGET_SECONDS = 0.1
REPEATS = 3


def _document() -> dict[str, object]:
    """A nested document of about 1 KB: what an app might keep under one storage key."""
    return {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "created": dt.datetime(2024, 5, 17, 12, 30, 5, tzinfo=dt.UTC),
        "active": True,
        "balance": Decimal("1234.50"),
        "tags": ["admin", "beta", "math"],
        "address": {"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH"},
        "orders": [
            {"sku": f"SKU-{i:04d}", "qty": i % 5 + 1, "price": 9.99 + i, "shipped": i % 2 == 0} for i in range(10)
        ],
        "history": [(2020 + i, i * 1.5) for i in range(5)],
        "notes": None,
    }


VALUES: dict[str, object] = {
    "small int": 42,
    "short str": "hello, world",
    "10-field dict": {
        "id": 12345,
        "name": "Alice",
        "active": True,
        "score": 98.6,
        "email": "alice@example.com",
        "age": 31,
        "balance": -42.5,
        "tag": None,
        "count": 7,
        "note": "short note",
    },
    "1000-int list": list(range(1000)),
    "~1 KB document": _document(),
}


def ops_per_second(fn: Callable[[], object]) -> float:
    """Best-of-REPEATS throughput of fn, each run lasting about TARGET_SECONDS."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= TARGET_SECONDS / 4:
            break
        number *= 4
    number = max(1, int(number * TARGET_SECONDS / elapsed))
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return number / best


def _fmt(ops: float) -> str:
    if ops >= 1e6:
        return f"{ops / 1e6:6.2f} M/s"
    if ops >= 1e3:
        return f"{ops / 1e3:6.1f} k/s"
    return f"{ops:6.0f}  /s"


def main() -> None:
    protocol = pickle.HIGHEST_PROTOCOL
    print(f"Python {sys.version.split()[0]}, pickle protocol {protocol}; ratio = durable / pickle")
    print(f"{'value':<16} {'op':<7} {'durable':>11} {'pickle':>11} {'ratio':>6}   size durable / pickle")
    for label, value in VALUES.items():
        data = encode(value)
        pdata = pickle.dumps(value, protocol)
        assert decode(data) == value and clone(value) == value
        rows = [
            ("encode", lambda: encode(value), lambda: pickle.dumps(value, protocol)),
            ("decode", lambda: decode(data), lambda: pickle.loads(pdata)),
            ("clone", lambda: clone(value), lambda: pickle.loads(pickle.dumps(value, protocol))),
        ]
        ours = 0.0
        for i, (op, run_ours, run_pickle) in enumerate(rows):
            ours = ops_per_second(run_ours)
            theirs = ops_per_second(run_pickle)
            size = f"  {len(data)} / {len(pdata)} bytes" if i == 0 else ""
            name = label if i == 0 else ""
            print(f"{name:<16} {op:<7} {_fmt(ours):>11} {_fmt(theirs):>11} {ours / theirs:6.2f}{size}")
        deepcopy = ops_per_second(lambda: copy.deepcopy(value))
        print(f"{'':<16} {'':<7} {'':>11} {_fmt(deepcopy):>11} {ours / deepcopy:6.2f}   (clone / copy.deepcopy)")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
