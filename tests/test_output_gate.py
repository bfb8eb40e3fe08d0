"""The output gate (durable._output_gate) on its own: batches, held results, reset copies."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import durable
from durable._background import BackgroundWork
from durable._gates import InputGate
from durable._output_gate import OutputGate, commit_failed, reset_copy


class AppError(Exception):
    pass


class TestOutputGate:
    async def test_a_result_after_a_gated_write_waits_for_the_commit(self) -> None:
        """A result that follows a confirmed write leaves only when the commit succeeds."""
        commits: list[int] = []
        gate = OutputGate(lambda: commits.append(1))
        gate.wrote(True)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 5, False)
        assert not fut.done()
        batch = gate.take()
        assert batch is not None and not gate.pending
        batch.succeed()
        assert fut.result() == 5

    async def test_unconfirmed_writes_hold_nothing(self) -> None:
        """Writes made with allow_unconfirmed do not hold results, nor calls going out."""
        gate = OutputGate(lambda: None)
        gate.wrote(False)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 1, False)
        assert fut.result() == 1
        assert gate.outgoing_waiter() is None
        assert gate.commit_waiter() is not None  # sync() still waits for the commit

    async def test_not_held_inside_the_objects_own_transaction(self) -> None:
        """hold=False (an event inside the object's own open transaction) lets a result leave at once."""
        gate = OutputGate(lambda: None)
        gate.wrote(True)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 2, False, hold=False)
        assert fut.result() == 2

    async def test_a_failed_batch_fails_held_results_and_waiters_with_reset_copies(self) -> None:
        """When the writes are lost, every held result and waiter gets its own copy of the reset error."""
        gate = OutputGate(lambda: None)
        gate.wrote(True)
        loop = asyncio.get_running_loop()
        held: asyncio.Future[int] = loop.create_future()
        gate.deliver(held, 3, False)
        waiter = gate.outgoing_waiter()
        assert waiter is not None
        error = durable.ObjectResetError("boom")
        gate.fail(error)
        assert not gate.pending
        for fut in (held, waiter):
            exc = fut.exception()
            assert isinstance(exc, durable.ObjectResetError) and exc is not error
            assert str(exc) == "boom"

    async def test_a_waiter_left_behind_by_a_reset_is_not_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """A durability waiter whose awaiter was cancelled by the reset does not log "never retrieved"."""
        gate = OutputGate(lambda: None)
        gate.wrote(True)
        waiter = gate.commit_waiter()
        gate.fail(durable.ObjectResetError("boom"))
        del waiter
        gc.collect()
        assert "never retrieved" not in caplog.text

    async def test_the_commit_runs_once_at_the_end_of_the_turn(self) -> None:
        """schedule_commit() called many times in one turn commits once, when the turn ends."""
        commits: list[int] = []
        gate = OutputGate(lambda: commits.append(1))
        for _ in range(3):
            gate.schedule_commit()
        assert commits == []
        await asyncio.sleep(0)
        assert commits == [1]


class TestFlushFor:
    """flush_for(): an awaited result commits at once, unless several tasks await in one turn."""

    @staticmethod
    def gate_and_commits() -> tuple[OutputGate, list[int]]:
        """A gate whose commit records how many held results each commit released."""
        commits: list[int] = []

        def commit() -> None:
            batch = gate.take()
            commits.append(0 if batch is None else len(batch.held))
            if batch is not None:
                batch.succeed()

        gate = OutputGate(commit)
        return gate, commits

    @staticmethod
    def call(gate: OutputGate, value: int) -> asyncio.Future[int]:
        """A write outside any event step (its commit is scheduled), and a result it holds."""
        gate.wrote(True)
        gate.schedule_commit()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, value, False)
        return fut

    async def test_one_task_commits_at_once_each_time(self) -> None:
        """Calls awaited one after the other by one task each commit at once, within one turn."""
        gate, commits = self.gate_and_commits()
        task = object()
        for value in range(3):
            fut = self.call(gate, value)
            gate.flush_for(task)
            assert fut.result() == value
        assert commits == [1, 1, 1]

    async def test_tasks_awaiting_in_one_turn_share_the_scheduled_commit(self) -> None:
        """The first task commits at once; the others in the same turn wait for one commit together."""
        gate, commits = self.gate_and_commits()
        first = self.call(gate, 1)
        gate.flush_for(object())
        assert first.result() == 1 and commits == [1]
        others = []
        for value in (2, 3):
            others.append(self.call(gate, value))
            gate.flush_for(object())
        assert not any(fut.done() for fut in others) and commits == [1]
        await asyncio.sleep(0)  # the end of the turn: the scheduled commit
        assert [fut.result() for fut in others] == [2, 3] and commits == [1, 2]

    async def test_contention_is_remembered_for_one_turn(self) -> None:
        """After a shared commit the next awaiter waits for the turn's commit too; alone, it stops."""
        gate, commits = self.gate_and_commits()
        task = object()
        self.call(gate, 1)
        gate.flush_for(task)
        for value in (2, 3):
            self.call(gate, value)
            gate.flush_for(object())
        await asyncio.sleep(0)
        assert commits == [1, 2]
        alone = self.call(gate, 4)
        gate.flush_for(task)
        assert not alone.done()  # the last commit was shared: this one waits for the end of the turn
        await asyncio.sleep(0)
        assert alone.result() == 4 and commits == [1, 2, 1]
        again = self.call(gate, 5)
        gate.flush_for(task)
        assert again.result() == 5 and commits == [1, 2, 1, 1]  # alone last time: at once again

    async def test_nothing_waits_without_a_scheduled_commit(self) -> None:
        """Without a commit scheduled on this loop, every awaiter commits at once."""
        gate, commits = self.gate_and_commits()
        gate.wrote(True)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(fut, 7, False)
        gate.flush_for(object())
        gate.wrote(True)
        other: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gate.deliver(other, 8, False)
        gate.flush_for(object())
        assert fut.result() == 7 and other.result() == 8 and commits == [1, 1]


class TestResetCopy:
    def test_an_application_error_is_marked_as_a_reset(self) -> None:
        """A copy of an application's exception carries durable_object_reset, not its cause."""
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise AppError("outer") from inner
        except AppError as exc:
            copy = reset_copy(exc, keep_cause=False)
        assert type(copy) is AppError and str(copy) == "outer"
        assert getattr(copy, "durable_object_reset", False) is True
        assert copy.__cause__ is None

    def test_a_runtime_error_keeps_its_class_flags_and_cause(self) -> None:
        """A copy of a runtime reset error keeps its class, overloaded flag and cause."""
        error = durable.ObjectResetError("too long")
        error.overloaded = True
        error.__cause__ = OSError("disk")
        copy = reset_copy(error)
        assert type(copy) is durable.ObjectResetError and copy is not error
        assert copy.overloaded is True
        assert copy.__cause__ is error.__cause__

    def test_a_failed_commit_words_the_reset_as_workerd_does(self) -> None:
        """A commit that raised becomes workerd's reset error, caused by the original exception."""
        exc = OSError("disk full")
        error = commit_failed(exc)
        assert str(error) == "Durable Object reset because its storage commit failed: OSError: disk full"
        assert error.__cause__ is exc


class TestInputGateIdle:
    async def test_idle_until_a_lock_or_a_waiter(self) -> None:
        """InputGate.idle is True only while no lock holds the gate and no event waits at it."""
        gate = InputGate()

        def idle() -> bool:
            return gate.idle  # read anew each time (mypy would narrow the property)

        assert idle()
        lock, _ = gate.close_for("test")
        assert not idle()
        waiting = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0)
        gate.unlock(lock)
        assert not idle()  # the woken waiter has not entered yet
        await waiting
        assert idle()


class TestBackgroundWork:
    def test_a_callback_must_be_callable(self) -> None:
        """block_concurrency_while() names the type it was given instead of a callable."""
        work = BackgroundWork(None, None)  # type: ignore[arg-type]
        callback: Any = 5
        with pytest.raises(TypeError, match="block_concurrency_while\\(\\) takes a callable, not int"):
            work.block_concurrency_while(callback)
