"""Transactions interleaved with other events, checked against a serial model (Hypothesis, stateful).

Each step of the state machine runs a batch of events at once in one object. An event is a random
program: plain puts, deletes and reads, sleeps (the await points where other events get in), and
transactions (that commit, raise or roll back) holding the same kinds of steps, nested
transactions, and pairs of nested transactions gathered together. Whatever the interleaving:

- every write lands or not exactly as a serial run says: a plain write always (nothing accepted
  is lost), a transaction's write only if it and every transaction around it committed;
- every read sees only what a serial order allows: never the write of a transaction that did not
  commit (up to the transaction both share), so no dirty read;
- a write is read back at once by the code that made it;
- nothing wedges: every batch ends, no savepoint is left open, and the object keeps committing,
  across evictions, in memory and on disk, on both backends.

A longer run: ``DURABLE_TXN_EXAMPLES=1000 pytest tests/test_transaction_model.py`` (the default, 80,
keeps the file to a few seconds in CI: most of its time is Hypothesis drawing the nested programs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

import durable
from durable import testing

from helpers import settle

EXAMPLES = int(os.environ.get("DURABLE_TXN_EXAMPLES", "80"))
SHARED = "s"
"""The key every writer writes (with a value naming the writer), so that reads can be judged."""


class Boom(Exception):
    """Raised by a transaction's closure whose outcome is "raise"."""


leaf = st.one_of(
    st.tuples(st.just("sleep"), st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("put"), st.booleans()),
    st.tuples(st.just("get")),
)


def transaction_of(body: Any) -> Any:
    return st.tuples(st.just("txn"), st.sampled_from(["commit", "raise", "rollback"]), st.lists(body, max_size=4))


body = st.recursive(
    leaf,
    lambda inner: st.one_of(
        transaction_of(inner),
        st.tuples(st.just("gather"), st.lists(transaction_of(leaf), min_size=2, max_size=2)),
    ),
    max_leaves=8,
)
program = st.lists(st.one_of(leaf, st.tuples(st.just("delete")), transaction_of(body)), max_size=5)


def path_name(path: tuple[int, ...]) -> str:
    return ".".join(map(str, path))


class Obj(durable.DurableObject):
    """Runs one event's program and reports what it did and saw."""

    async def run(self, batch: int, event: int, steps: list[Any]) -> dict[str, Any]:
        storage = self.ctx.storage
        report: dict[str, Any] = {"reads": [], "txns": {}, "puts": []}
        plain_keys: list[str] = []

        async def run_steps(steps: list[Any], path: tuple[int, ...], txn: Any, txn_path: str | None) -> None:
            for i, step in enumerate(steps):
                here = (*path, i)
                kind = step[0]
                if kind == "sleep":
                    await settle(step[1])
                elif kind == "put":
                    key = f"e{event}.{path_name(here)}"
                    value = f"{batch}:{key}"
                    target = txn if (txn is not None and step[1]) else storage
                    target.put(key, value)  # not awaited: it applies all the same
                    await target.put(SHARED, value)
                    report["puts"].append((key, value, txn_path))
                    seen = await storage.get(key)
                    assert seen == value, f"{key}: wrote {value!r}, read back {seen!r}"
                    if txn is None:
                        plain_keys.append(key)
                elif kind == "get":
                    report["reads"].append((txn_path, await storage.get(SHARED)))
                elif kind == "delete":
                    if plain_keys:
                        key = plain_keys.pop()
                        assert await storage.delete(key) is True
                        report["puts"].append((key, None, None))
                elif kind == "txn":
                    await run_transaction(step, here, txn_path)
                elif kind == "gather":
                    await asyncio.gather(*(run_transaction(t, (*here, j), txn_path) for j, t in enumerate(step[1])))

        async def run_transaction(step: Any, here: tuple[int, ...], parent: str | None) -> None:
            _, outcome, steps = step
            name = f"e{event}.{path_name(here)}"
            report["txns"][name] = (parent, outcome)

            async def closure(txn: Any) -> str:
                await run_steps(steps, here, txn, name)
                if outcome == "raise":
                    raise Boom(name)
                if outcome == "rollback":
                    txn.rollback()
                return name

            try:
                assert await storage.transaction(closure) == name
            except Boom:
                assert outcome == "raise"

        await run_steps(steps, (), None, None)
        return report


def kept(txn: str | None, txns: dict[str, tuple[str | None, str]], upto: str | None = None) -> bool:
    """Whether the writes of ``txn`` survive up to ``upto`` (an enclosing transaction, or None: the end)."""
    while txn is not None and txn != upto:
        parent, outcome = txns[txn]
        if outcome != "commit":
            return False
        txn = parent
    return True


def ancestors(txn: str | None, txns: dict[str, tuple[str | None, str]]) -> list[str | None]:
    chain: list[str | None] = []
    while txn is not None:
        chain.append(txn)
        txn = txns[txn][0]
    chain.append(None)
    return chain


class TransactionMachine(RuleBasedStateMachine):
    """Batches of concurrent events on one object, against the serial model."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp: str | None = None
        self.rt: durable.Runtime | None = None
        self.model: dict[str, str] = {}
        self.shared_values: set[str] = set()
        """Values of the shared key that a serial run may leave or show outside any transaction."""
        self.batch = 0

    @initialize(on_disk=st.booleans(), backend=st.sampled_from(["sqlite", "kv"]))
    def open(self, on_disk: bool, backend: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix="durable-txn-model-") if on_disk else None
        self.rt = durable.Runtime(path=self.tmp)
        self.loop.run_until_complete(self.rt.__aenter__())
        self.ns = self.rt.namespace(Obj, storage=backend)

    def run(self, make: Any) -> Any:
        """Run ``make()``'s awaitable on the machine's loop; a wedge fails the test instead of hanging."""

        async def main() -> Any:
            return await asyncio.wait_for(make(), 30)

        return self.loop.run_until_complete(main())

    @precondition(lambda self: self.rt is not None)
    @rule(programs=st.lists(program, min_size=1, max_size=4))
    def batch_of_events(self, programs: list[list[Any]]) -> None:
        self.batch += 1
        stub = self.ns.get_by_name("m")
        reports = self.run(lambda: asyncio.gather(*(stub.run(self.batch, e, p) for e, p in enumerate(programs))))
        txns: dict[str, tuple[str | None, str]] = {}
        for report in reports:
            txns.update({name: tuple(v) for name, v in report["txns"].items()})
        before = set(self.shared_values)
        for report in reports:
            for key, value, txn in report["puts"]:
                if not kept(txn, txns):
                    continue
                if value is None:
                    del self.model[key]
                else:
                    self.model[key] = value
                    self.shared_values.add(value)
        writer = {value: txn for report in reports for _, value, txn in report["puts"] if value is not None}
        for report in reports:
            for reader, value in report["reads"]:
                if value is None:
                    assert not before, "the shared key was written before this batch, but read as missing"
                    continue
                if value in before:
                    continue
                # The writer's transactions must have committed up to the one the reader is in.
                chain = ancestors(reader, txns)
                source = writer[value]
                common = next(t for t in ancestors(source, txns) if t in chain)
                assert kept(source, txns, common), f"dirty read of {value!r} in {reader!r}"

        async def look(o: Any, c: durable.State) -> tuple[dict[str, Any], int]:
            return await c.storage.list(), c.storage._db.savepoint_depth

        contents, depth = self.run(lambda: testing.run_in_object(stub, look))
        assert depth == 0
        shared = contents.pop(SHARED, None)
        assert contents == self.model
        assert (shared is None) == (not self.shared_values)
        if shared is not None:
            assert shared in self.shared_values

    @precondition(lambda self: self.rt is not None)
    @rule()
    def evict(self) -> None:
        self.run(lambda: testing.evict(self.ns.get_by_name("m")))

    def teardown(self) -> None:
        try:
            if self.rt is not None:
                self.loop.run_until_complete(self.rt.aclose())
        finally:
            self.loop.close()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)


TestTransactionModel = TransactionMachine.TestCase
TestTransactionModel.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
