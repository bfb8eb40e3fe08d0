"""Which uncommitted writes a reset drops: the rule measured on workerd (miniflare 4.20260426,
compatibility date 2026-04-20, SQLite-backed and key-value-backed objects alike; probes in the
round's notes). workerd commits a turn's writes on the next turn of its event loop, before it runs
the next event: a reset (``ctx.abort()``) made by a later event keeps them, though the results
they held fail with the reset error; the writes of the turn that resets are dropped.

Found by differential fuzzing: ``gather(stub.put(), stub.abort())`` kept the put in workerd and
dropped it here, where events started in the same loop turn share one commit that was still
pending when the second one aborted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import durable

LOOPS = ["asyncio", "uvloop"]
BACKENDS = ["sqlite", "kv"]


class Obj(durable.DurableObject):
    def put_sync(self) -> str:
        self.ctx.storage.put("n", 9)
        return "put"

    async def put_awaited(self) -> str:
        await self.ctx.storage.put("n", 7)
        return "put"

    async def bump(self) -> int:
        value = await self.ctx.storage.get("n") or 0
        await self.ctx.storage.put("n", value + 1)
        return int(value)

    def set_alarm(self) -> str:
        self.ctx.storage.set_alarm(self.ctx.now_ms() + 600_000)
        return "set"

    def noop(self) -> str:
        return "noop"

    def abort(self) -> None:
        self.ctx.abort("x")

    def put_abort(self) -> None:
        self.ctx.storage.put("m", 1)
        self.ctx.abort("x")

    async def put_get_abort(self) -> None:
        self.ctx.storage.put("m", 1)
        await self.ctx.storage.get("other")  # no turn ends (workerd: a cached get resolves at once)
        self.ctx.abort("x")

    async def sleep_put_abort(self) -> None:
        await asyncio.sleep(0)
        self.put_abort()

    async def later_put(self) -> str:
        await asyncio.sleep(0)
        self.ctx.storage.put("n", 9)
        return "put"

    async def later_abort(self) -> None:
        await asyncio.sleep(0)
        self.ctx.abort("x")

    async def put_sleep_abort(self) -> None:
        self.ctx.storage.put("m", 1)
        await asyncio.sleep(0)  # the turn ends: its write commits
        self.ctx.abort("x")

    def put_throw(self) -> None:
        self.ctx.storage.put("m", 1)
        raise ValueError("boom")

    async def bcw_throw(self) -> str:
        async def callback() -> None:
            self.ctx.storage.put("b", 1)
            raise ValueError("bcw")

        try:
            await self.ctx.block_concurrency_while(callback)
        except ValueError as exc:
            return f"caught {exc}"
        return "not raised"

    async def txn_abort(self) -> None:
        async def closure(txn: Any) -> None:
            await txn.put("b", 1)
            await asyncio.sleep(0.001)  # (a timer: workerd's probe waited 10 ms)
            self.ctx.abort("x")

        await self.ctx.storage.transaction(closure)

    async def txn_abort_sync(self) -> None:
        async def closure(txn: Any) -> None:
            await txn.put("b", 1)
            self.ctx.abort("x")

        await self.ctx.storage.transaction(closure)

    async def put_txn_abort(self) -> None:
        self.ctx.storage.put("x", 1)
        await self.txn_abort()

    async def put_nested_txn_abort(self) -> None:
        self.ctx.storage.put("x", 1)

        async def outer(txn: Any) -> None:
            await txn.put("c", 1)
            await self.txn_abort()

        await self.ctx.storage.transaction(outer)

    async def put_txn_alarm_abort(self) -> None:
        self.ctx.storage.put("x", 1)

        async def closure(txn: Any) -> None:
            await txn.set_alarm(self.ctx.now_ms() + 600_000)
            self.ctx.abort("x")

        await self.ctx.storage.transaction(closure)

    async def put_txn_abort_sync(self) -> None:
        self.ctx.storage.put("x", 1)
        await self.txn_abort_sync()

    async def alarm(self) -> None:
        pass

    async def stored(self) -> dict[str, Any]:
        return dict(await self.ctx.storage.list())

    async def has_alarm(self) -> bool:
        return await self.ctx.storage.get_alarm() is not None


def run(loop: str, main: Callable[[], Awaitable[Any]]) -> Any:
    factory: Any = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def outcome(value: Any) -> Any:
    if isinstance(value, BaseException):
        reset = getattr(value, "durable_object_reset", False)
        return f"{type(value).__name__}: {value}" + (" (reset)" if reset else "")
    return value


async def calls(storage: str, *methods: str, read: str = "stored") -> tuple[list[Any], Any]:
    """Call ``methods`` on one object at the same time; their outcomes, and what a new instance reads."""
    async with durable.Runtime() as rt:
        ns = rt.namespace(Obj, storage=storage)
        stub = ns.get_by_name("a")
        results = await asyncio.gather(*(getattr(stub, m)() for m in methods), return_exceptions=True)
        return [outcome(r) for r in results], await getattr(ns.get_by_name("a"), read)()


ABORTED = "ObjectAbortedError: x (reset)"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize(("first", "kept"), [("put_sync", {"n": 9}), ("put_awaited", {"n": 7}), ("bump", {"n": 1})])
def test_an_earlier_events_writes_survive_an_abort(loop: str, storage: str, first: str, kept: Any) -> None:
    """workerd: ``[put(), abort()]`` sent at the same time: both callers get the abort error, and
    the put is kept (a get-then-put counter too). durable dropped it: both events ran in one loop
    turn, whose commit was still pending at the abort."""
    assert run(loop, lambda: calls(storage, first, "abort")) == ([ABORTED, ABORTED], kept)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
def test_writes_after_an_await_survive_an_abort_after_an_await(loop: str, storage: str) -> None:
    """workerd: two calls that each wait on a timer, then one puts and the other aborts: the put is
    kept. Here both resume in one loop turn; on Python 3.12+ an event's later steps run in its
    eager task, outside the steps the gate counts, and the put was dropped there."""
    assert run(loop, lambda: calls(storage, "later_put", "later_abort")) == ([ABORTED, ABORTED], {"n": 9})


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
def test_an_earlier_events_alarm_survives_an_abort(loop: str, storage: str) -> None:
    """workerd: ``[setAlarm(), abort()]``: both fail with the abort error, and the alarm is set."""
    assert run(loop, lambda: calls(storage, "set_alarm", "abort", read="has_alarm")) == ([ABORTED, ABORTED], True)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize("order", [("put_sync", "abort", "stored"), ("put_sync", "stored", "abort")])
def test_a_third_call_at_the_same_time(loop: str, storage: str, order: tuple[str, ...]) -> None:
    """workerd: a third call sent with them, before or after the aborting one, gets the abort error."""
    assert run(loop, lambda: calls(storage, *order)) == ([ABORTED] * 3, {"n": 9})


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
def test_results_held_by_the_kept_writes_still_fail(loop: str, storage: str) -> None:
    """workerd: ``[put(), noop(), abort()]``: noop's result waited for the put's commit; it fails
    with the abort error though the put is kept. ``[noop(), abort()]``: nothing held it, it returns."""
    assert run(loop, lambda: calls(storage, "put_sync", "noop", "abort")) == ([ABORTED] * 3, {"n": 9})
    assert run(loop, lambda: calls(storage, "noop", "abort")) == (["noop", ABORTED], {})


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize(("method", "kept"), [("put_abort", {}), ("put_get_abort", {}), ("put_sleep_abort", {"m": 1})])
def test_the_aborting_turns_own_writes_are_dropped(loop: str, storage: str, method: str, kept: Any) -> None:
    """workerd: a put then ``abort()`` in the same turn (a storage get between them ends no turn)
    leaves nothing; with a timer between them, the put's turn ended and it is kept."""
    assert run(loop, lambda: calls(storage, method)) == ([ABORTED], kept)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
def test_a_thrown_error_resets_nothing(loop: str, storage: str) -> None:
    """workerd: a handler that throws after a put (even an error marked ``durableObjectReset``)
    fails its call only; the put and an earlier call's put are kept, and that call returns."""
    result = run(loop, lambda: calls(storage, "put_sync", "put_throw"))
    assert result == (["put", "ValueError: boom"], {"m": 1, "n": 9})


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
def test_block_concurrency_while_throwing(loop: str, storage: str) -> None:
    """workerd: a ``blockConcurrencyWhile()`` callback that throws right after a put resets the
    object: the call fails with its error (a reset), the callback's put is dropped; an earlier
    call's put is kept and that call returns its result."""
    result = run(loop, lambda: calls(storage, "put_sync", "bcw_throw"))
    assert result == (["put", "ValueError: bcw (reset)"], {"n": 9})


@pytest.mark.parametrize("storage", BACKENDS)
def test_writes_of_both_turns_in_one_loop_turn_are_dropped(storage: str) -> None:
    """A difference kept (docs/differences.md): ``[put(), put-then-abort()]``. workerd keeps the
    first put (its commit ran before the second event) and drops the second; here both events
    ran in one loop turn and their writes share one implicit transaction, so both are dropped."""
    assert run("asyncio", lambda: calls(storage, "put_sync", "put_abort")) == ([ABORTED, ABORTED], {})


@pytest.mark.parametrize("storage", BACKENDS)
def test_a_loop_turn_before_the_resetting_turns_writes_keeps_the_earlier_ones(storage: str) -> None:
    """The way around that difference: the second event lets a loop turn pass before it writes and
    aborts, and what is stored is workerd's (the first put kept, the second dropped). The first
    put's commit ran before the abort here, so its result was released."""
    assert run("asyncio", lambda: calls(storage, "put_sync", "sleep_put_abort")) == (["put", ABORTED], {"n": 9})


async def _after_a_reset(storage: str, first: str) -> tuple[list[Any], Any]:
    async with durable.Runtime() as rt:
        ns = rt.namespace(Obj, storage=storage)
        await asyncio.gather(getattr(ns.get_by_name("a"), first)(), return_exceptions=True)
        stub = ns.get_by_name("a")  # (the first stub is broken by the reset, as in workerd)
        results = await asyncio.gather(stub.later_put(), stub.later_abort(), return_exceptions=True)
        return [outcome(r) for r in results], await ns.get_by_name("a").stored()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize("first", ["abort", "put_abort", "put_get_abort"])
def test_the_rule_holds_after_a_reset_by_a_turn_that_wrote(loop: str, storage: str, first: str) -> None:
    """The rule of ``test_writes_after_an_await_survive_an_abort_after_an_await`` on a new instance,
    after a reset by a turn that wrote: that turn's mark (it wrote) outlived it, as no batch was
    left when its step ended, and the next reset dropped the put made after an await (3.12+,
    where the later steps of an event are not counted)."""
    result = run(loop, lambda: _after_a_reset(storage, first))
    assert result == ([ABORTED, ABORTED], {"n": 9})


async def _kept_commit_fails(storage: str) -> tuple[list[Any], Any, Any]:
    from durable.testing import fail_next_commit

    async with durable.Runtime() as rt:
        ns = rt.namespace(Obj, storage=storage)
        stub = ns.get_by_name("a")
        fail_next_commit(stub)
        results = await asyncio.gather(stub.put_sync(), stub.abort(), return_exceptions=True)
        stored = await ns.get_by_name("a").stored()
        return [outcome(r) for r in results], stored, await ns.get_by_name("a").put_awaited()


@pytest.mark.parametrize("storage", BACKENDS)
def test_a_failed_commit_of_the_ended_turns_keeps_the_resets_error(storage: str) -> None:
    """The commit made before the reset fails (a full disk): it is logged, the writes are lost, and
    the reset goes on with its own error, once (no second reset for the failed commit); the next
    instance works."""
    assert run("asyncio", lambda: _kept_commit_fails(storage)) == ([ABORTED, ABORTED], {}, "put")


class Bookmarked(Obj):
    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> None:
        await self.ctx.storage.on_next_session_restore_bookmark(bookmark)
        self.ctx.abort("restore")


async def _restore_to_kept(path: Any) -> Any:
    async with durable.Runtime(path, point_in_time_recovery=True) as rt:
        ns = rt.namespace(Bookmarked)
        stub = ns.get_by_name("a")
        await stub.put_awaited()
        await asyncio.gather(stub.put_sync(), stub.abort(), return_exceptions=True)
        stub = ns.get_by_name("a")
        bookmark = await stub.bookmark()
        await stub.bump()  # 9 -> 10
        with pytest.raises(durable.ObjectAbortedError):
            await stub.restore(bookmark)
        return await ns.get_by_name("a").stored()


def test_the_kept_commit_is_in_the_point_in_time_history(tmp_path: Any) -> None:
    """The commit made before a reset is recorded as any commit is: a bookmark taken after it
    restores the kept put (9), not the state before it (7)."""
    assert run("asyncio", lambda: _restore_to_kept(tmp_path)) == {"n": 9}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize(
    ("methods", "results", "kept"),
    [
        (("put_txn_abort",), [ABORTED], {"x": 1}),
        (("put_txn_abort_sync",), [ABORTED], {"x": 1}),
        (("put_sync", "put_txn_abort"), ["put", ABORTED], {"n": 9, "x": 1}),
        (("put_sync", "txn_abort_sync"), ["put", ABORTED], {"n": 9}),
        (("txn_abort", "put_sync"), [ABORTED, ABORTED], {}),  # the put waits for the transaction
        (("put_nested_txn_abort",), [ABORTED], {"x": 1}),
        (("put_txn_alarm_abort",), [ABORTED], {"x": 1}),  # and no alarm (has_alarm below)
    ],
)
def test_an_abort_inside_a_transaction_keeps_the_writes_before_it(
    loop: str, storage: str, methods: tuple[str, ...], results: list[Any], kept: Any
) -> None:
    """workerd (miniflare 4.20260426, compatibility date 2026-04-20, SQLite- and KV-backed):
    ``put("x"); await transaction(async txn => { await txn.put("b"); abort() })`` keeps ``x`` and
    drops ``b``, with or without a timer before the abort, and an earlier call's put too; a call
    sent after the transaction's waits for it and never runs. durable dropped ``x``: the closure
    opened its savepoint before the commit of the calling turn ran, and a reset with a savepoint
    open kept nothing."""
    assert run(loop, lambda: calls(storage, *methods)) == (results, kept)


@pytest.mark.parametrize("storage", BACKENDS)
def test_an_alarm_set_in_the_aborting_transaction_is_dropped(storage: str) -> None:
    """workerd: ``put("x"); transaction(async txn => { await txn.setAlarm(later); abort() })``
    keeps ``x`` and stores no alarm (miniflare 4.20260426, both backends)."""
    assert run("asyncio", lambda: calls(storage, "put_txn_alarm_abort", read="has_alarm")) == ([ABORTED], False)
