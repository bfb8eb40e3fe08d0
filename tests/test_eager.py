"""Eager start of events (durable._eager): asyncio's eager tasks on 3.12+, the hand stepper on 3.11.

Every behaviour test runs twice: once as this Python does it, once with the hand-written stepper
forced (``EAGER_TASKS = False``), so the 3.11 path is proven on every Python in CI.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

import durable
from durable import _eager

SEEN: list[object] = []
"""The current tasks that ``Probe.current_task_of_plain`` saw (objects and test share the process)."""


class Probe(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.log: list[str] = []
        self.release = asyncio.Event()

    def plain(self) -> str:
        self.log.append("plain")
        return "done"

    async def until_released(self) -> str:
        self.log.append("started")
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise
        self.log.append("resumed")
        return "released"

    async def write_then_wait(self) -> int:
        await self.ctx.storage.put("k", 1)
        await asyncio.sleep(0)
        value: int = await self.ctx.storage.get("k")
        return value

    def release_all(self) -> None:
        self.release.set()

    def read_log(self) -> list[str]:
        return self.log

    async def task_after_suspension(self) -> str:
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        return str(task.get_coro().__qualname__)  # type: ignore[union-attr]

    def abort(self) -> None:
        self.ctx.abort("stop")

    async def times_out(self, how: str) -> str:
        try:
            if how == "timeout":
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(5)
            else:
                await asyncio.wait_for(asyncio.sleep(5), 0.01)
        except TimeoutError:
            return "timed out inside"
        return "no timeout"

    async def task_group(self, fail: bool) -> list[int]:
        """A TaskGroup entered before the first suspension; a child fails if ``fail``."""

        async def child(n: int) -> int:
            await asyncio.sleep(0)
            if fail and n == 1:
                raise ValueError("child 1 failed")
            await asyncio.sleep(0.01 * n)
            return n

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(child(n)) for n in range(3)]
        return [task.result() for task in tasks]

    async def current_tasks(self) -> bool:
        """Whether the current task is the same object, with the same name, before and after suspensions."""
        first = asyncio.current_task()
        assert first is not None
        name = first.get_name()
        await asyncio.sleep(0)
        second = asyncio.current_task()
        await asyncio.sleep(0.001)
        return first is second is asyncio.current_task() and asyncio.current_task().get_name() == name  # type: ignore[union-attr]

    def current_task_of_plain(self) -> None:
        SEEN.append(asyncio.current_task())

    async def cancel_itself(self) -> str:
        """Cancel the current task in the first step: the first await raises CancelledError."""
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        self.log.append(f"cancelling {task.cancelling()}")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.log.append(f"cancelled {task.cancelling()}")
            task.uncancel()
            self.log.append(f"uncancelled {task.cancelling()}")
            return "cancelled at the first await"
        return "not cancelled"

    async def anyio_deadline(self) -> str:
        """anyio's cancel scope with a deadline, entered before the first suspension."""
        try:
            with anyio.fail_after(0.01):
                await anyio.sleep(5)
        except TimeoutError:
            return "timed out inside"
        return "no timeout"

    async def anyio_group(self, fail: bool) -> list[int]:
        """anyio's task group, entered before the first suspension; a child fails if ``fail``."""
        done: list[int] = []

        async def child(n: int) -> None:
            await anyio.sleep(0.01 * n)
            if fail and n == 1:
                raise ValueError("child 1 failed")
            done.append(n)

        async with anyio.create_task_group() as group:
            for n in range(3):
                group.start_soon(child, n)
        return done

    async def get_url(self, url: str) -> str:
        """An outbound request with httpx (anyio underneath), made in the first step."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url)
        return response.text

    async def fetch(self, request: durable.Request) -> Any:
        if request.url.endswith(("/timeout", "/wait_for")):
            return durable.Response(await self.times_out(request.url.rsplit("/", 1)[1]))
        self.log.append("fetch")
        if request.url.endswith("/wait"):
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.log.append("fetch cancelled")
                raise
        if request.url.endswith("/wrong"):
            await asyncio.sleep(0)
            return "not a response"
        return durable.Response("fetched")

    def later(self, value: str | None) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if value is None:
            asyncio.get_running_loop().call_soon(future.set_exception, ValueError("failed later"))
        else:
            asyncio.get_running_loop().call_soon(future.set_result, value)
        return future

    async def fail_after_suspension(self) -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")


@pytest.fixture(params=["native", "hand-stepped"])
def stepping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test as this Python starts events, then with the hand-written stepper forced."""
    if request.param == "hand-stepped":
        monkeypatch.setattr(_eager, "EAGER_TASKS", False)
    yield request.param


@pytest.fixture
async def probe(stepping: str) -> Any:
    async with durable.Runtime() as rt:
        yield rt.namespace(Probe).get_by_name("p")


class TestEagerStart:
    async def test_an_event_that_never_suspends_is_done_when_the_call_returns(self, probe: Any) -> None:
        """A call whose handler never suspends is settled before the call returns: no loop turn."""
        assert await probe.read_log() == []  # the instance exists
        promise = probe.plain()
        assert promise.done()
        assert await promise == "done"

    async def test_an_event_runs_up_to_its_first_suspension_inside_the_call(self, probe: Any) -> None:
        """A handler runs in the caller's call until it first suspends; then a task continues it."""
        assert await probe.read_log() == []
        promise = probe.until_released()
        assert not promise.done()
        assert await probe.read_log() == ["started"]
        await probe.release_all()
        assert await promise == "released"
        assert await probe.read_log() == ["started", "resumed"]

    async def test_a_suspended_event_runs_on_when_the_caller_stops_waiting(self, probe: Any) -> None:
        """Cancelling the wait does not cancel the event (Cloudflare does not cancel an object's work)."""
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(probe.until_released(), timeout=0)
        await probe.release_all()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert await probe.read_log() == ["started", "resumed"]

    @pytest.mark.parametrize(
        ("kind", "expected"),
        [("rpc", ["started", "cancelled"]), ("fetch", ["fetch", "fetch cancelled"])],
    )
    async def test_a_reset_cancels_a_suspended_event(self, probe: Any, kind: str, expected: list[str]) -> None:
        """A reset cancels the task that continues a suspended call or fetch where it waits, and
        its caller gets the reset error."""
        logs: list[list[str]] = []
        await durable.testing.run_in_object(probe, lambda obj, ctx: logs.append(obj.log))  # type: ignore[attr-defined]
        pending = probe.until_released() if kind == "rpc" else probe.fetch("http://do/wait")
        await asyncio.sleep(0)  # the continuing task has begun
        with pytest.raises(durable.ObjectAbortedError):
            await probe.abort()
        with pytest.raises(durable.ObjectAbortedError):
            await pending
        for _ in range(3):
            await asyncio.sleep(0)
        assert logs[0] == expected

    async def test_a_reset_before_the_task_begins_cancels_the_event(self, probe: Any) -> None:
        """An event reset between its first suspension and its task's first step is cancelled, not resumed."""
        assert await probe.read_log() == []
        first = probe.until_released()
        logs: list[list[str]] = []

        def release_and_abort(obj: Any, ctx: durable.State) -> None:
            logs.append(obj.log)
            obj.release.set()  # would resume the event, were it not cancelled first
            ctx.abort("stop")

        with pytest.raises(durable.ObjectAbortedError):
            await durable.testing.run_in_object(probe, release_and_abort)
        with pytest.raises(durable.ObjectAbortedError):
            await first
        for _ in range(3):
            await asyncio.sleep(0)  # the continuing task runs its first step
        assert logs[0] == ["started", "cancelled"]

    async def test_a_method_returning_an_awaitable_that_is_not_a_coroutine(self, probe: Any) -> None:
        """A plain method may return a future: the call's outcome is the future's, once it settles."""
        assert await probe.read_log() == []  # the instance exists, the fast path is taken next
        assert await probe.later("value") == "value"
        with pytest.raises(ValueError, match="^failed later$"):
            await probe.later(None)

    async def test_a_suspended_method_that_fails_fails_its_call(self, probe: Any) -> None:
        """An exception raised after the method's first suspension reaches the caller."""
        assert await probe.read_log() == []
        with pytest.raises(KeyError):
            await probe.fail_after_suspension()
        assert await probe.read_log() == []  # the object was not reset

    async def test_a_fetch_runs_up_to_its_first_suspension_inside_the_call(self, probe: Any) -> None:
        """A fetch on a live object starts inside the call too, and a task continues it."""
        assert await probe.read_log() == []
        promise = probe.fetch("http://do/wait")
        assert not promise.done()
        assert await probe.read_log() == ["fetch"]
        await probe.release_all()
        assert await (await promise).text() == "fetched"

    async def test_a_fetch_that_returns_no_response_after_suspending(self, probe: Any) -> None:
        """The handler's result is checked after a suspension as well (workerd's TypeError)."""
        assert await probe.read_log() == []
        with pytest.raises(TypeError, match="^Incorrect type for Promise"):
            await probe.fetch("http://do/wrong")

    async def test_writes_before_and_after_a_suspension_commit(self, probe: Any) -> None:
        """Writes made in the eager step and in later steps are both committed and readable."""
        assert await probe.write_then_wait() == 1

    async def test_the_eager_step_runs_in_the_task_that_continues_it(self, probe: Any, stepping: str) -> None:
        """On 3.12+ an event's own coroutine is an asyncio task's (no hand stepping); on 3.11 `_drive` steps it.

        On 3.11 ``call_rpc``'s shorter path steps the method's own coroutine (no wrapper), and
        `_drive` continues it if it suspends (no task is made for a call that does not).
        """
        first = await probe.task_after_suspension()  # through invoke(): builds the instance, resolves the name
        second = await probe.task_after_suspension()  # through call_rpc()'s shorter path
        if _eager.EAGER_TASKS:
            assert (first, second) == ("ObjectHost._event", "_fast_event")
        else:
            assert (first, second) == ("_drive", "_drive")

    @pytest.mark.parametrize("path", ["invoke", "shorter"])
    @pytest.mark.parametrize("how", ["timeout", "wait_for"])
    async def test_a_timeout_in_the_first_step_belongs_to_the_event(
        self, probe: Any, stepping: str, how: str, path: str
    ) -> None:
        """`asyncio.timeout()` or `wait_for()` entered before the first suspension times out the
        event, not its caller: the event is the current task from its first step, an eager task's
        own on 3.12+, its ``EventCall`` where it is stepped by hand (3.11).

        ``path``: the first call to an object goes through ``invoke()`` (``start_eagerly``); the
        next ones through ``call_rpc``/``call_fetch``'s shorter path.
        """
        if path == "shorter":
            assert await probe.read_log() == []  # the instance exists: the next calls take the shorter path
        assert await asyncio.wait_for(probe.times_out(how), 5) == "timed out inside"
        response = await asyncio.wait_for(probe.fetch(f"http://do/{how}"), 5)
        assert await response.text() == "timed out inside"

    @pytest.mark.parametrize("path", ["invoke", "shorter"])
    async def test_a_task_group_in_the_first_step_belongs_to_the_event(
        self, probe: Any, stepping: str, path: str
    ) -> None:
        """A TaskGroup entered before the first suspension: its children's results, or their
        error for the caller (the group cancels the event, not the caller)."""
        if path == "shorter":
            assert await probe.read_log() == []
        with pytest.raises(ExceptionGroup) as raised:
            await asyncio.wait_for(probe.task_group(True), 5)
        assert [str(error) for error in raised.value.exceptions] == ["child 1 failed"]
        assert await asyncio.wait_for(probe.task_group(False), 5) == [0, 1, 2]

    async def test_the_current_task_is_the_events_own_in_every_step(self, probe: Any, stepping: str) -> None:
        """The event's code sees one current task, from its first step to its last, not the caller's."""
        caller = asyncio.current_task()
        assert await probe.current_tasks() is True
        assert await probe.current_tasks() is True  # the shorter path too
        await probe.current_task_of_plain()
        assert SEEN[-1] is not None and SEEN[-1] is not caller
        assert asyncio.current_task() is caller  # given back to the caller after the first step

    async def test_a_cancellation_asked_for_in_the_first_step_reaches_the_first_await(
        self, probe: Any, stepping: str
    ) -> None:
        """As an eager task's: ``cancel()`` on the current task in the first step cancels what
        the event next waits on; ``cancelling()`` and ``uncancel()`` count as a task's do."""
        assert await probe.read_log() == []
        assert await asyncio.wait_for(probe.cancel_itself(), 5) == "cancelled at the first await"
        assert await probe.read_log() == ["cancelling 1", "cancelled 1", "uncancelled 0"]

    @pytest.mark.parametrize("path", ["invoke", "shorter"])
    async def test_anyio_scopes_and_groups_in_the_first_step(self, probe: Any, stepping: str, path: str) -> None:
        """anyio (which httpx runs on) keys its cancel scopes by the current task: a deadline or
        a failed child in a group entered before the first suspension acts on the event."""
        if path == "shorter":
            assert await probe.read_log() == []
        assert await asyncio.wait_for(probe.anyio_deadline(), 5) == "timed out inside"
        assert await asyncio.wait_for(probe.anyio_group(False), 5) == [0, 1, 2]
        with pytest.raises(ExceptionGroup) as raised:
            await asyncio.wait_for(probe.anyio_group(True), 5)
        assert [str(error) for error in raised.value.exceptions] == ["child 1 failed"]

    async def test_an_httpx_request_in_the_first_step(self, probe: Any, stepping: str) -> None:
        """An object's handler makes an outbound HTTP request with httpx before anything else."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            for _ in range(2):  # through invoke(), then the shorter path
                assert await asyncio.wait_for(probe.get_url(f"http://127.0.0.1:{port}/"), 10) == "hello"

    async def test_task_methods_before_the_first_suspension(self) -> None:
        """Hand-stepped, the current task's other methods wait for the task that continues the
        event, and say so if called before it exists."""
        loop = asyncio.get_running_loop()
        call = _eager.EventCall(loop.create_future())
        with pytest.raises(RuntimeError, match=r"get_context\(\) is not available before the event's first suspension"):
            call.get_context()
        assert call.get_coro() is None  # (the event's coroutine, once one is stepped)
        assert call.get_loop() is loop and not call.done() and not call.cancelled()
        assert "first step" in repr(call) and call.get_name().startswith("durable event")
        assert call.get_name() == call.get_name()  # the same name in every step
        call.set_name("mine")
        assert call.get_name() == "mine"


class TestVersions:
    def test_eager_tasks_on_312_and_later(self) -> None:
        """asyncio's eager tasks are used exactly where Python has them (3.12+)."""
        assert (sys.version_info >= (3, 12)) == _eager.EAGER_TASKS
