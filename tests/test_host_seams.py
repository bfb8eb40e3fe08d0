"""ObjectHost's collaborators on their own: the output gate's commit, the alarm's bookkeeping, the
events in flight and the object's class (issue 12's split of ObjectHost), and the RPC promise's slots."""

from __future__ import annotations

import asyncio
import collections.abc
from typing import Any

import pytest

import durable
from durable._alarm_state import ALARM_TIME_LIMIT, AlarmState
from durable._eager import EventCall, EventCalls
from durable._object_class import ObjectClass
from durable._output_gate import OutputGate
from durable._stub import CLOSE_PER_PROMISE, RpcPromise, host_of
from durable.testing import MockClock


class FakeMeta:
    """The metadata table's alarm row."""

    def __init__(self) -> None:
        self.alarm: int | None = None

    def get_alarm(self) -> int | None:
        return self.alarm

    def set_alarm(self, when: int | None) -> None:
        self.alarm = when


class FakeDatabase:
    """The database an output gate commits: counts commits, fails one on demand."""

    def __init__(self) -> None:
        self.savepoint_depth = 0
        self.in_transaction = True
        self.commits = 0
        self.fail: BaseException | None = None
        self.meta = FakeMeta()
        self.file = None  # in memory: a scheduled snapshot restore would wait in _snapshot's table

    def commit(self) -> None:
        if self.fail is not None:
            raise self.fail
        self.commits += 1


class FakeRuntime:
    def __init__(self) -> None:
        self.announced: list[tuple[str, int | None]] = []
        self.clock = MockClock(0)

    def alarm_before_commit(self, host: Any, when_ms: int | None) -> None:
        self.announced.append(("before", when_ms))

    def alarm_after_commit(self, host: Any, when_ms: int | None, *, unwaited: bool = False) -> None:
        self.announced.append(("after", when_ms))


class FakeOwner:
    """An object as the output gate and the alarm bookkeeping see it."""

    def __init__(self) -> None:
        self.id = "fake"
        self.gen = 0
        self.db = FakeDatabase()
        self.runtime = FakeRuntime()
        self.alarms = AlarmState(self)  # type: ignore[arg-type]
        self.resets: list[BaseException] = []
        self.inside = False
        self.writes: list[bool] = []

    def reset(self, error: BaseException) -> None:
        self.resets.append(error)

    def inside_own_transaction(self) -> bool:
        return self.inside

    def wrote(self, gated: bool) -> None:
        self.writes.append(gated)


@pytest.fixture
def owner() -> FakeOwner:
    return FakeOwner()


class TestOutputGateCommits:
    """The commit of a turn, owned by the output gate."""

    async def test_flush_commits_and_releases_held_results(self, owner: FakeOwner) -> None:
        """flush() commits the owner's database, then hands held results to their callers."""
        gate = OutputGate(owner=owner)
        gate.wrote(True)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 7, False)
        assert not fut.done()
        gate.flush()
        assert owner.db.commits == 1 and fut.result() == 7 and not gate.pending

    async def test_a_failed_commit_resets_the_owner(self, owner: FakeOwner, caplog: pytest.LogCaptureFixture) -> None:
        """A commit that raises fails held results with the reset error and resets the owner with it."""
        gate = OutputGate(owner=owner)
        owner.db.fail = OSError(5, "disk I/O error")
        gate.wrote(True)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 7, False)
        gate.flush()
        (error,) = owner.resets
        assert isinstance(error, durable.ObjectResetError) and "storage commit failed: OSError" in str(error)
        held = fut.exception()
        assert isinstance(held, durable.ObjectResetError) and held is not error
        assert "the object is reset" in caplog.text

    async def test_the_commit_waits_for_an_open_transaction(self, owner: FakeOwner) -> None:
        """While a transaction() savepoint is open, flush() commits nothing and keeps the batch."""
        gate = OutputGate(owner=owner)
        gate.wrote(True)
        owner.db.savepoint_depth = 1
        gate.flush()
        assert owner.db.commits == 0 and gate.pending
        assert gate.outgoing_waiter() is None  # a call going out would deadlock waiting: it does not wait

    async def test_flush_now_waits_for_the_step_to_end(self, owner: FakeOwner) -> None:
        """Within an event's step flush_now() does nothing; the step's end schedules the commit."""
        gate = OutputGate(owner=owner)
        gate.steps += 1
        gate.wrote_in_turn(True)
        gate.flush_now()
        assert owner.db.commits == 0
        gate.step_done()
        gate.flush_now()
        assert owner.db.commits == 1 and not gate.pending

    async def test_a_write_outside_any_step_commits_at_the_end_of_the_turn(self, owner: FakeOwner) -> None:
        """wrote_in_turn() with no step running schedules the commit for the end of the loop turn."""
        gate = OutputGate(owner=owner)
        gate.wrote_in_turn(False)
        assert owner.db.commits == 0
        await asyncio.sleep(0)
        assert owner.db.commits == 1 and not gate.pending

    async def test_inside_the_owners_transaction_results_are_not_held(self, owner: FakeOwner) -> None:
        """A result of an event inside the owner's own open transaction leaves at once."""
        gate = OutputGate(owner=owner)
        gate.wrote(True)
        owner.db.savepoint_depth = 1
        owner.inside = True
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 3, False)
        assert fut.result() == 3

    async def test_a_changed_alarm_is_announced_with_its_commit(self, owner: FakeOwner) -> None:
        """The scheduler hears of a written alarm before and after the commit that makes it durable, once."""
        gate = OutputGate(owner=owner)
        owner.db.meta.alarm = 1_000
        owner.alarms.written()
        gate.wrote(True)
        gate.flush()
        gate.wrote(True)
        gate.flush()
        assert owner.runtime.announced == [("before", 1_000), ("after", 1_000)]

    def test_a_gate_needs_a_commit_or_an_owner(self) -> None:
        """OutputGate() with neither a commit callable nor an owner is refused."""
        with pytest.raises(TypeError, match="commit callable or an owner"):
            OutputGate()


class TestAlarmState:
    """What get_alarm() shows, and what the handler's end does."""

    async def test_the_running_handler_sees_no_alarm(self, owner: FakeOwner) -> None:
        """While the handler runs the stored alarm is hidden, unless the handler wrote one."""
        alarms = owner.alarms
        alarms.running = True
        assert alarms.visible(5) is None
        alarms.written()
        assert alarms.visible(5) == 5

    async def test_success_clears_the_alarm_it_ran_for(self, owner: FakeOwner) -> None:
        """A handler that returns deletes the alarm it ran for, as a gated write."""

        class Handler:
            async def alarm(self, info: Any) -> None:
                pass

        owner.db.meta.alarm = 1_000
        info = durable.AlarmInfo(retry_count=0, scheduled_time=1_000)
        await owner.alarms.run(Handler(), info)  # type: ignore[arg-type]
        assert owner.db.meta.get_alarm() is None and owner.writes == [True] and owner.alarms.changed
        assert not owner.alarms.running

    async def test_a_handler_whose_object_was_reset_clears_nothing(self, owner: FakeOwner) -> None:
        """A handler that returns after its object was reset (a new generation) leaves the alarm
        stored and writes nothing: the event fails with the reset error and the alarm is retried."""

        class Handler:
            async def alarm(self, info: Any) -> None:
                owner.gen += 1  # what ObjectHost.reset does

        owner.db.meta.alarm = 1_000
        info = durable.AlarmInfo(retry_count=0, scheduled_time=1_000)
        await owner.alarms.run(Handler(), info)  # type: ignore[arg-type]
        assert owner.db.meta.get_alarm() == 1_000 and owner.writes == [] and not owner.alarms.changed
        assert not owner.alarms.running

    async def test_a_handler_past_its_time_limit_resets_the_object(self, owner: FakeOwner) -> None:
        """At ALARM_TIME_LIMIT (15 min of the runtime's clock) after it started, a handler still
        running resets its object with workerd's error; a handler that ended cancelled its limit."""
        started = asyncio.Event()

        class Handler:
            async def alarm(self, info: Any) -> None:
                started.set()
                await asyncio.Event().wait()

        owner.db.meta.alarm = 0
        info = durable.AlarmInfo(retry_count=0, scheduled_time=0)
        task = asyncio.ensure_future(owner.alarms.run(Handler(), info))  # type: ignore[arg-type]
        await started.wait()
        await owner.runtime.clock.advance(ALARM_TIME_LIMIT - 1)
        assert owner.resets == []
        await owner.runtime.clock.advance(1)
        assert [str(e) for e in owner.resets] == ["Alarm exceeded its allowed execution time"]
        assert owner.resets[0].overloaded and owner.resets[0].durable_object_reset  # type: ignore[attr-defined]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await owner.runtime.clock.advance(2 * ALARM_TIME_LIMIT)  # the next run's limit was cancelled
        assert len(owner.resets) == 1

    async def test_a_given_up_alarm_is_dropped_if_still_stored(self, owner: FakeOwner) -> None:
        """drop() deletes the alarm only if it is still the one that was given up on."""
        owner.db.meta.alarm = 2_000
        owner.alarms.drop(1_000)
        assert owner.db.meta.get_alarm() == 2_000 and owner.writes == []
        owner.alarms.drop(2_000)
        assert owner.db.meta.get_alarm() is None and owner.writes == [False]


class TestEventCalls:
    """The events in flight in one object."""

    def test_the_queue_limit_is_workerds(self) -> None:
        """admit() refuses an event once the limit is reached, with workerd's overload text."""
        events = EventCalls()
        events.admit(1)
        with pytest.raises(durable.OverloadedError, match="Too many requests queued"):
            events.admit(1)
        assert events.admitted == 1

    async def test_a_reset_fails_running_events_with_copies(self) -> None:
        """fail_running() gives each running event's caller its own copy of the error."""
        events = EventCalls()
        loop = asyncio.get_running_loop()
        calls = [EventCall(loop.create_future()) for _ in range(2)]
        events.running.update(calls)
        error = durable.ObjectResetError("gone")
        events.fail_running(error)
        copies = [call.fut.exception() for call in calls]
        assert all(isinstance(c, durable.ObjectResetError) and c is not error for c in copies)
        assert not events.running


class TestObjectClass:
    """The object's class as the host sees it."""

    def test_a_throwing_constructor_resets_the_object(self, owner: FakeOwner) -> None:
        """construct() resets with a marked copy of the constructor's error, and raises that copy."""

        class Broken(durable.DurableObject):
            def __init__(self, ctx: Any, env: Any) -> None:
                raise ValueError("no")

        resets: list[BaseException] = []
        kind = ObjectClass(Broken, owner.alarms, resets.append)
        owner.db.history = None  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="no") as info:
            kind.construct(None, None, owner.db)  # type: ignore[arg-type]
        assert resets == [info.value] and info.value.durable_object_reset is True  # type: ignore[attr-defined]

    def test_rpc_results_are_copies(self, owner: FakeOwner) -> None:
        """result() copies what RPC returns, and passes atomic values as they are."""
        kind = ObjectClass(durable.DurableObject, owner.alarms, owner.reset)
        value = {"a": [1]}
        copy = kind.result("rpc", value)
        assert copy == value and copy is not value and kind.result("rpc", 5) == 5


class TestSeams:
    async def test_the_object_key_is_a_named_accessor(self) -> None:
        """DurableObjectId.key is (namespace, hex id), what the runtime keys its hosts by."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(durable.Counter, name="C")
            stub = ns.get_by_name("a")
            assert stub.id.key == ("C", str(stub.id))
            assert host_of(stub).key == stub.id.key

    async def test_a_promise_keeps_its_fields_in_slots(self) -> None:
        """RpcPromise keeps its two fields in slots; its one class-level __getattr__ is promise
        pipelining's (durable._pipeline), whose cost the host keeps off its own reads of promises
        (``_future_done``, docs/performance.md, "Promise pipelining").

        Its only instance attribute is ``close`` (kept out of the class so that it is no
        ``collections.abc.Coroutine``), set only where asyncio calls it (3.13+): elsewhere a
        promise has no instance dict at all (docs/performance.md, tenth pass).
        """
        async with durable.Runtime() as rt:
            stub = rt.namespace(durable.Counter, name="C").get_by_name("a")
            promise = stub.increment()
            assert set(RpcPromise.__slots__) == {"_host", "_stub"}
            assert [klass for klass in RpcPromise.__mro__ if "__getattr__" in klass.__dict__] == [RpcPromise]
            assert promise._host is host_of(stub) and promise._stub is stub
            assert all("close" not in klass.__dict__ for klass in RpcPromise.__mro__)
            if CLOSE_PER_PROMISE:  # 3.13's TaskGroup.create_task closes a coroutine it refuses
                assert promise.close() is None  # found on the promise itself
            else:
                assert not hasattr(promise, "close")
            assert not isinstance(promise, collections.abc.Coroutine)
            assert await promise == 1


class TestArgumentCopies:
    async def test_atomic_arguments_skip_clone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A call whose arguments are all atomic values passes them on without a clone() call; others are copied."""
        import durable._stub
        from durable._rpc_target import copy_params as original

        calls: list[object] = []

        def counting(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            calls.append(args)
            return original(args, kwargs)

        # (RpcMethod copies non-atomic arguments with copy_params, which clones them and collects
        # the stubs made for functions in them)
        monkeypatch.setattr(durable._stub, "copy_params", counting)

        class Echo(durable.DurableObject):
            async def echo(self, *args: Any) -> Any:
                return list(args)

        async with durable.Runtime() as rt:
            stub = rt.namespace(Echo).get_by_name("e")
            assert await stub.echo(1, "x", None) == [1, "x", None]
            assert calls == []
            items = [1, 2]
            copied = await stub.echo(items)
            assert copied == [[1, 2]] and len(calls) == 1
