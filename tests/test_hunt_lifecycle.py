"""Bug hunt: public APIs used at the wrong time or in the wrong context.

The rule: every such use raises a clear error naming the problem or completes correctly; nothing
hangs; nothing accepted is lost. Each case runs under ``bounded`` (``asyncio.wait_for``), so a
hang fails the case that caused it instead of stalling the suite; no case asserts how long
anything took. What tests/test_hunt_blocking.py, test_threads_hostile.py, test_threads_stress.py,
test_hostile.py, test_reset.py, test_leaks.py and test_blocking.py cover already is not repeated:
this file adds the runtime's own operations (``aclose``, ``reset``, the testing hooks, the mock
clock) awaited from inside each kind of event, handles kept past their object's life, and
callers that stop waiting.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import durable
from durable import _clock, _runtime, testing

T = TypeVar("T")

HANG_SECONDS = 20.0
"""How long a case may wait before it counts as hung (each takes a few milliseconds)."""

T0 = 1_700_000_000


async def bounded(awaitable: Awaitable[T], seconds: float = HANG_SECONDS) -> T:
    """``await awaitable``, failing the test (not stalling the suite) if it never ends."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        pytest.fail(f"hung: still waiting after {seconds} s")


async def outcome(awaitable: Awaitable[Any]) -> Any:
    """The result of ``awaitable`` (bounded), or the exception it raised."""
    try:
        return await bounded(awaitable)
    except Exception as exc:
        return exc


# -- the runtime's own operations, from inside each kind of event ----------------------------------

Action = Callable[["Probe"], Awaitable[Any]]
RUNTIME: dict[str, durable.Runtime] = {}
"""The runtime of the case running (the object reaches it as a test's code would, by a global)."""


def own_stub(obj: Probe) -> durable.Stub[Any]:
    return obj.env.PROBE.get(obj.ctx.id)  # type: ignore[no-any-return]


async def evict_self(obj: Probe) -> Any:
    await testing.evict(own_stub(obj))


async def hibernate_self(obj: Probe) -> Any:
    await testing.hibernate(own_stub(obj))


async def advance(obj: Probe) -> Any:
    clock = RUNTIME["rt"].clock
    assert isinstance(clock, testing.MockClock)
    await clock.advance(5)
    return "advanced"


async def call_self(obj: Probe) -> Any:
    return await own_stub(obj).read()


async def run_in_self(obj: Probe) -> Any:
    return await testing.run_in_object(own_stub(obj), lambda instance, ctx: "ran")


async def close_runtime(obj: Probe) -> Any:
    await RUNTIME["rt"].aclose()
    return "closed"


async def reset_runtime(obj: Probe) -> Any:
    await RUNTIME["rt"].reset()
    return "reset"


ACTIONS: dict[str, Action] = {
    f.__name__: f for f in (evict_self, hibernate_self, advance, call_self, run_in_self, close_runtime, reset_runtime)
}
OUTCOMES: dict[str, Any] = {}
"""What the action returned or raised inside the object, by case (the event's own outcome may differ)."""


class Probe(durable.DurableObject):
    async def read(self) -> Any:
        return await self.ctx.storage.get("k")

    async def in_method(self, action: str) -> Any:
        return await self._record(action)

    async def in_block(self, action: str) -> Any:
        return await self.ctx.block_concurrency_while(lambda: self._record(action))

    async def in_transaction(self, action: str) -> Any:
        return await self.ctx.storage.transaction(lambda txn: self._record(action))

    async def arm(self, action: str) -> None:
        await self.ctx.storage.put("action", action)
        await self.ctx.storage.set_alarm(T0 * 1000 + 1000)

    async def alarm(self) -> None:
        action = await self.ctx.storage.get("action")
        await self.ctx.storage.delete_alarm()  # one attempt: a failure is recorded, not retried
        await self._record(action)

    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        assert isinstance(message, str)
        await self._record(message)

    async def _record(self, action: str) -> Any:
        try:
            result = OUTCOMES[action] = await ACTIONS[action](self)
        except Exception as exc:
            OUTCOMES[action] = exc
            raise
        return result


async def deliver(stub: durable.Stub[Any], where: str, action: str) -> Any:
    """Run ``action`` inside the object, in an event of kind ``where``; the event's own outcome."""
    if where == "method":
        return await outcome(stub.in_method(action))
    if where == "block_concurrency_while":
        return await outcome(stub.in_block(action))
    if where == "transaction":
        return await outcome(stub.in_transaction(action))
    if where == "alarm":
        await stub.arm(action)
        return await outcome(testing.run_alarm(stub))
    assert where == "web_socket_message"

    async def chat() -> None:
        async with testing.websocket(stub, "http://probe/") as ws:
            ws.send(action)
            while action not in OUTCOMES:
                await asyncio.sleep(0.001)

    return await outcome(chat())


WHERE = ["method", "block_concurrency_while", "transaction", "alarm", "web_socket_message"]


class TestRuntimeOperationsFromInsideAnEvent:
    """``aclose()``, ``reset()``, ``evict``, ``hibernate``, ``run_in_object``, ``MockClock.advance``
    and a call to the object itself, awaited from each kind of event of that object."""

    @pytest.fixture(autouse=True)
    async def runtime(self) -> Any:
        OUTCOMES.clear()
        async with durable.Runtime(clock=testing.MockClock(T0)) as rt:
            RUNTIME["rt"] = rt
            rt.namespace(Probe, name="PROBE")
            yield rt
        RUNTIME.clear()

    def stub(self, rt: durable.Runtime) -> durable.Stub[Any]:
        return rt.env.PROBE.get_by_name("a")  # type: ignore[no-any-return]

    @pytest.mark.parametrize("where", WHERE)
    async def test_evicting_or_hibernating_itself_is_refused(self, runtime: durable.Runtime, where: str) -> None:
        await deliver(self.stub(runtime), where, "evict_self")
        await deliver(self.stub(runtime), where, "hibernate_self")  # (a fresh stub: the first may be reset)
        assert isinstance(OUTCOMES["evict_self"], RuntimeError)
        assert "evict() was called from the code of the object it evicts" in str(OUTCOMES["evict_self"])
        assert isinstance(OUTCOMES["hibernate_self"], RuntimeError)
        assert "cannot hibernate" in str(OUTCOMES["hibernate_self"])
        assert await bounded(self.stub(runtime).read()) is None  # the object still serves

    @pytest.mark.parametrize("where", WHERE)
    async def test_calls_into_itself_complete(self, runtime: durable.Runtime, where: str) -> None:
        """A call to its own stub and ``run_in_object`` of itself get in (see docs/differences.md
        for the call from inside ``block_concurrency_while()``, which workerd holds)."""
        stub = self.stub(runtime)
        await deliver(stub, where, "call_self")
        await deliver(stub, where, "run_in_self")
        assert OUTCOMES == {"call_self": None, "run_in_self": "ran"}

    @pytest.mark.parametrize("where", WHERE)
    async def test_advancing_the_mock_clock(self, runtime: durable.Runtime, where: str) -> None:
        """From an alarm handler, ``advance()`` would wait for that handler (it waits for the work
        its timers start): it raises, naming the fix. It hung for good when the alarm was run by
        ``testing.run_alarm``. Elsewhere it completes."""
        await deliver(self.stub(runtime), where, "advance")
        if where == "alarm":
            assert isinstance(OUTCOMES["advance"], RuntimeError)
            assert "advance the clock from the test body" in str(OUTCOMES["advance"])
        else:
            assert OUTCOMES["advance"] == "advanced"

    @pytest.mark.parametrize("where", WHERE)
    async def test_closing_the_runtime(
        self, runtime: durable.Runtime, where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The runtime closes; the event that closed it ends (its caller: the "no longer
        active" error any call in flight gets). From a ``block_concurrency_while()`` callback,
        ``aclose()`` waited for that callback, which waited for it, for the whole shutdown grace
        (5 s), then cancelled it and logged so."""
        monkeypatch.setattr(_runtime, "SHUTDOWN_GRACE", 60.0)  # a stall shows as a hang
        with caplog.at_level(logging.WARNING, logger="durable"):
            await deliver(self.stub(runtime), where, "close_runtime")
            while not runtime.closed:  # (run_alarm's attempt is cancelled while the close goes on)
                await bounded(asyncio.sleep(0.001))
        assert OUTCOMES["close_runtime"] == "closed"
        assert "unfinished task" not in caplog.text
        with pytest.raises(durable.RuntimeClosedError):
            await self.stub(runtime).read()

    @pytest.mark.parametrize("where", WHERE)
    async def test_resetting_the_runtime(self, runtime: durable.Runtime, where: str) -> None:
        """The storage is wiped and the runtime serves on; the event that reset it may fail with
        the "no longer active" error, never hang."""
        stub = self.stub(runtime)
        await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.put("k", 1))
        await deliver(stub, where, "reset_runtime")
        assert OUTCOMES["reset_runtime"] == "reset"
        assert await bounded(runtime.env.PROBE.get_by_name("a").read()) is None


# -- work that closes the runtime it runs in --------------------------------------------------------


class Closer(durable.DurableObject):
    async def ping(self) -> None:
        async def work() -> None:
            await asyncio.sleep(0.01)

        self.ctx.wait_until(work())

    async def close_later(self) -> None:
        async def close() -> None:
            await RUNTIME["rt"].aclose()
            OUTCOMES["closed"] = True

        self.ctx.wait_until(close())


async def test_wait_until_work_that_closes_the_runtime(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``aclose()`` awaited by ``ctx.wait_until()`` work does not wait for that work (which waits
    for it): it waited the whole shutdown grace, then logged that it cancelled it."""
    monkeypatch.setattr(_runtime, "SHUTDOWN_GRACE", 60.0)
    OUTCOMES.clear()
    rt = RUNTIME["rt"] = durable.Runtime()
    try:
        with caplog.at_level(logging.WARNING, logger="durable"):
            await rt.namespace(Closer).get_by_name("a").close_later()
            while not rt.closed:
                await bounded(asyncio.sleep(0.001))
        assert "unfinished task" not in caplog.text
    finally:
        await rt.aclose()
        RUNTIME.clear()


class IndirectCloser(durable.DurableObject):
    async def close_later(self, how: str) -> None:
        async def close() -> None:
            closing = RUNTIME["rt"].aclose()
            if how == "gather":
                await asyncio.gather(closing)
            elif how == "wait_for":  # a task of its own on Python 3.11
                await asyncio.wait_for(closing, HANG_SECONDS)
            else:
                await asyncio.shield(closing)
            OUTCOMES["closed"] = True

        if how == "callback":  # a block_concurrency_while() callback, not awaited by the event
            self.ctx.block_concurrency_while(close)
        else:
            self.ctx.wait_until(close())


@pytest.mark.parametrize("how", ["gather", "wait_for", "shield", "callback"])
async def test_background_work_that_closes_the_runtime_from_a_task_it_awaits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """The same when the work awaits ``aclose()`` through a task of its own (``gather``,
    ``shield``, ``wait_for`` on Python 3.11): ``aclose()`` runs in that task, not in the work's,
    and waited for the work the whole grace (5 s), then cancelled it and logged so."""
    monkeypatch.setattr(_runtime, "SHUTDOWN_GRACE", 60.0)
    OUTCOMES.clear()
    rt = RUNTIME["rt"] = durable.Runtime()

    async def closed() -> None:
        while not rt.closed:
            await asyncio.sleep(0.001)

    try:
        with caplog.at_level(logging.WARNING, logger="durable"):
            await rt.namespace(IndirectCloser).get_by_name("a").close_later(how)
            await bounded(closed())
        assert "unfinished task" not in caplog.text
    finally:
        await rt.aclose()
        RUNTIME.clear()


class Ticker(durable.DurableObject):
    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(T0 * 1000 + 1000)

    async def alarm(self) -> None:
        async def later() -> None:
            await asyncio.sleep(0)
            try:
                await RUNTIME["rt"].clock.advance(1)  # type: ignore[attr-defined]
            except RuntimeError as exc:
                OUTCOMES["later"] = exc

        self.ctx.wait_until(later())


async def test_advance_from_wait_until_work_an_alarm_started() -> None:
    """Work an alarm passed to ``ctx.wait_until()`` is work ``advance()`` waits for, too."""
    OUTCOMES.clear()
    async with durable.Runtime(clock=testing.MockClock(T0)) as rt:
        RUNTIME["rt"] = rt
        stub = rt.namespace(Ticker).get_by_name("a")
        await stub.arm()
        await bounded(testing.run_alarm(stub))
        while "later" not in OUTCOMES:
            await bounded(asyncio.sleep(0.001))
        assert "advance the clock from the test body" in str(OUTCOMES["later"])
    RUNTIME.clear()


class Caller(durable.DurableObject):
    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(T0 * 1000 + 1000)

    async def alarm(self) -> None:
        OUTCOMES["called"] = await self.env.TICK.get_by_name("b").advance()


class Advancer(durable.DurableObject):
    async def advance(self) -> str:
        try:
            await RUNTIME["rt"].clock.advance(1)  # type: ignore[attr-defined]
        except RuntimeError as exc:
            return str(exc)
        return "advanced"


async def test_advance_from_a_call_an_alarm_handler_awaits() -> None:
    """Another object's method that the handler awaits is part of the handler's work too."""
    OUTCOMES.clear()
    async with durable.Runtime(clock=testing.MockClock(T0)) as rt:
        RUNTIME["rt"] = rt
        rt.namespace(Advancer, name="TICK")
        stub = rt.namespace(Caller).get_by_name("a")
        await stub.arm()
        await bounded(testing.run_alarm(stub))
        assert "advance the clock from the test body" in OUTCOMES["called"]
    RUNTIME.clear()


# -- handles kept past their object's life ---------------------------------------------------------

KEPT: list[Any] = []


class Tabled(durable.DurableObject):
    async def fill(self) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (a)")
        for i in range(5):
            self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", i)

    async def keep_cursor(self, how: str) -> None:
        cursor = self.ctx.storage.sql.exec("SELECT a FROM t")
        if how == "started":
            next(cursor)
        KEPT.append(cursor.raw() if how == "raw" else cursor)

    async def write(self) -> int:
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (99)")
        await self.ctx.storage.put("k", 1)
        return int(self.ctx.storage.sql.exec("SELECT count(*) AS n FROM t").one()["n"])


class TestACursorKeptPastItsInstance:
    """A cursor with rows left, kept after its object was evicted (in a global, in an instance a
    test holds, in a traceback), left its statement alive on the closed connection: Python's
    ``sqlite3`` then leaves the connection open (``sqlite3_close_v2``) with its read lock, and
    every write of the next instance failed with ``SqlError: database is locked: SQLITE_BUSY``,
    for as long as the cursor lived. Reading the kept cursor raises the ended instance's error."""

    @pytest.mark.parametrize("how", ["unread", "started", "raw"])
    async def test_after_eviction(self, tmp_path: Path, how: str) -> None:
        KEPT.clear()
        async with durable.Runtime(tmp_path) as rt:
            stub = rt.namespace(Tabled).get_by_name("a")
            await stub.fill()
            await stub.keep_cursor(how)
            await testing.evict(stub)
            assert await bounded(stub.write()) == 6
            with pytest.raises(durable.ConnectionClosedError):
                next(iter(KEPT[0]))
        KEPT.clear()

    async def test_after_the_runtime_closed(self, tmp_path: Path) -> None:
        KEPT.clear()
        async with durable.Runtime(tmp_path) as rt:
            stub = rt.namespace(Tabled).get_by_name("a")
            await stub.fill()
            await stub.keep_cursor("started")
        async with durable.Runtime(tmp_path) as rt:
            assert await bounded(rt.namespace(Tabled).get_by_name("a").write()) == 6
        with pytest.raises(durable.ConnectionClosedError):
            next(KEPT[0])
        KEPT.clear()


class Dropping(Tabled):
    async def abort(self) -> None:
        self.ctx.abort("reset")

    async def drop(self) -> str:
        self.ctx.storage.sql.exec("DROP TABLE t")
        return "dropped"


@pytest.mark.parametrize(("where", "end"), [("memory", "evict"), ("memory", "abort"), ("file", "abort")])
async def test_a_cursor_kept_past_a_reset_that_keeps_the_connection(tmp_path: Path, where: str, end: str) -> None:
    """An ended instance whose database stays open (an in-memory one; ``ctx.abort()``, which
    ends the instance but not the connection) kept a kept cursor's statement alive on that same
    connection: the next instance's ``DROP TABLE`` of the table it read failed with ``SqlError:
    database table is locked: SQLITE_LOCKED``. workerd (miniflare 4, a cursor kept in a module
    global, one row read, ``ctx.abort()``): the next instance's ``DROP TABLE t`` succeeds."""
    KEPT.clear()
    async with durable.Runtime(tmp_path if where == "file" else None) as rt:
        ns = rt.namespace(Dropping)
        stub = ns.get_by_name("a")
        await stub.fill()
        await stub.keep_cursor("started")
        if end == "evict":
            await testing.evict(stub)
        else:
            with pytest.raises(durable.ObjectAbortedError):
                await stub.abort()
            stub = ns.get_by_name("a")  # the aborted stub stays broken, as in workerd
        assert await bounded(stub.drop()) == "dropped"
        with pytest.raises(durable.ConnectionClosedError if end == "evict" else durable.ObjectAbortedError):
            next(KEPT[0])
    KEPT.clear()


class TabledRoom(Tabled):
    async def fetch(self, request: durable.Request) -> durable.Response:
        client, server = durable.WebSocketPair()
        self.ctx.accept_web_socket(server)
        return durable.Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws: durable.WebSocket, message: str | bytes) -> None:
        if message == "keep":
            await self.fill()
            await self.keep_cursor("started")
            ws.send("kept")
        else:
            ws.send(str(await self.write()))


async def test_a_cursor_kept_past_hibernation(tmp_path: Path) -> None:
    """The same after hibernation, which closes the database too: the woken instance's write
    failed with SQLITE_BUSY."""
    KEPT.clear()
    async with durable.Runtime(tmp_path) as rt:
        stub = rt.namespace(TabledRoom).get_by_name("a")
        async with testing.websocket(stub, "http://room/") as ws:
            ws.send("keep")
            assert await bounded(ws.receive()) == "kept"
            await testing.hibernate(stub)
            ws.send("write")
            assert await bounded(ws.receive()) == "6"
    KEPT.clear()


# -- callers that stop waiting ---------------------------------------------------------------------


class Tally(durable.DurableObject):
    async def add(self, pause: float) -> int:
        value: int = (await self.ctx.storage.get("n")) or 0
        await asyncio.sleep(pause)
        await self.ctx.storage.put("n", value + 1)
        return value + 1

    async def pending_then_sleep(self) -> None:
        self.ctx.storage.put("pending", True)  # not awaited: accepted all the same
        await asyncio.sleep(3600)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)


@pytest.mark.parametrize("turns", [0, 1, 5])
async def test_a_cancelled_caller_leaves_the_call_to_finish_once(tmp_path: Path, turns: int) -> None:
    """Cancelling the task awaiting a call (a timeout, a client gone) does not cancel the
    call: the object's method runs to its end and its write is committed exactly once (a
    JavaScript caller cannot cancel a promise; the callee's event goes on without it)."""
    async with durable.Runtime(tmp_path) as rt:
        stub = rt.namespace(Tally).get_by_name("a")
        waiting = asyncio.ensure_future(stub.add(0.01))
        for _ in range(turns):
            await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        while await bounded(stub.get("n")) is None:
            await asyncio.sleep(0.001)
    async with durable.Runtime(tmp_path) as rt:
        assert await rt.namespace(Tally).get_by_name("a").get("n") == 1


async def test_a_write_accepted_before_the_runtime_closed_is_kept(tmp_path: Path) -> None:
    """A put accepted (not awaited) by a call still running when the runtime closes is
    committed; the caller gets the retryable "no longer active" error."""
    async with durable.Runtime(tmp_path) as rt:
        stub = rt.namespace(Tally).get_by_name("a")
        call = asyncio.ensure_future(stub.pending_then_sleep())
        await testing.run_in_object(stub, lambda obj, ctx: None)  # the call has started
    error = await outcome(call)
    assert isinstance(error, durable.ConnectionClosedError) and error.retryable
    async with durable.Runtime(tmp_path) as rt:
        assert await rt.namespace(Tally).get_by_name("a").get("pending") is True


class Sleeper(durable.DurableObject):
    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(T0 * 1000 + 1000)

    async def alarm(self) -> None:
        OUTCOMES["alarm"] = True
        await asyncio.sleep(3600)


async def test_run_alarm_when_the_runtime_closes_under_it() -> None:
    """``run_alarm()`` awaited while the runtime closes gets the retryable "Connection closed"
    error a call in flight gets. It raised a bare ``asyncio.CancelledError`` (the shutdown
    cancels the attempt), which reads as if the awaiting test itself had been cancelled."""
    OUTCOMES.clear()
    rt = durable.Runtime(clock=testing.MockClock(T0))
    stub = rt.namespace(Sleeper).get_by_name("a")
    await stub.arm()
    running = asyncio.ensure_future(testing.run_alarm(stub))
    while "alarm" not in OUTCOMES:
        await bounded(asyncio.sleep(0.001))
    await bounded(rt.aclose())
    error = await outcome(running)
    assert isinstance(error, durable.ConnectionClosedError), error
    assert error.retryable
    assert "the runtime was closed while run_alarm() waited" in str(error)


class Busy(durable.DurableObject):
    async def start(self) -> None:
        self.ctx.storage.put("kept", True)  # accepted, not awaited

        async def work() -> None:
            await asyncio.sleep(3600)

        self.ctx.wait_until(work())

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)


async def test_a_cancelled_aclose_still_closes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``aclose()`` cancelled while it waits for ``wait_until()`` work (a timeout around it)
    closes at once, as when the shutdown grace runs out: the work is cancelled, the writes
    already made are kept. It stopped halfway: its alarms stopped for good, but the runtime open
    and serving, so an alarm set then was accepted and never ran."""
    rt = durable.Runtime(tmp_path)
    stub = rt.namespace(Busy).get_by_name("a")
    await stub.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(rt.aclose(), 0.001)
    assert rt.closed
    with pytest.raises(durable.RuntimeClosedError):
        await stub.get("kept")
    await bounded(rt.aclose())  # idempotent
    async with durable.Runtime(tmp_path) as again:
        assert await again.namespace(Busy).get_by_name("a").get("kept") is True


async def test_a_cancelled_aclose_from_another_thread_closes_at_once(tmp_path: Path) -> None:
    """The same for ``aclose()`` awaited on another loop than the runtime's (a thread's): the
    close runs on the runtime's loop and went on waiting for the work when its caller was
    cancelled, so the runtime stayed open and served calls for up to the whole grace (5 s)."""
    home = asyncio.new_event_loop()
    thread = threading.Thread(target=home.run_forever, daemon=True)
    thread.start()
    try:

        async def start() -> durable.Runtime:
            rt = durable.Runtime(tmp_path)
            await rt.namespace(Busy).get_by_name("a").start()
            return rt

        rt = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(start(), home))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rt.aclose(), 0.001)
        assert rt.closed

        async def settled() -> None:  # the close that went on there ends too
            if others := asyncio.all_tasks() - {asyncio.current_task()}:
                await asyncio.wait(others)

        await bounded(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(settled(), home)))
    finally:
        home.call_soon_threadsafe(home.stop)
        thread.join()
        home.close()
    async with durable.Runtime(tmp_path) as again:
        assert await again.namespace(Busy).get_by_name("a").get("kept") is True


async def test_concurrent_acloses_wait_for_one_close(tmp_path: Path) -> None:
    """Two ``aclose()`` calls at once both return once the runtime is closed."""
    rt = durable.Runtime(tmp_path)
    await rt.namespace(Closer).get_by_name("a").ping()
    first, second = asyncio.ensure_future(rt.aclose()), asyncio.ensure_future(rt.aclose())
    await bounded(asyncio.gather(first, second))
    assert rt.closed


# -- everything after the runtime closed -------------------------------------------------------------

AFTER_CLOSE: dict[str, Callable[[durable.Runtime, durable.Stub[Any]], Any]] = {
    "call": lambda rt, stub: stub.get("k"),
    "fetch": lambda rt, stub: stub.fetch("http://a/"),
    "namespace": lambda rt, stub: rt.namespace(Busy, name="OTHER"),
    "reset": lambda rt, stub: rt.reset(),
    "evict": lambda rt, stub: testing.evict(stub),
    "hibernate": lambda rt, stub: testing.hibernate(stub),
    "hibernation_blockers": lambda rt, stub: testing.hibernation_blockers(stub),
    "run_in_object": lambda rt, stub: testing.run_in_object(stub, lambda obj, ctx: None),
    "run_alarm": lambda rt, stub: testing.run_alarm(stub),
    "list_ids": lambda rt, stub: testing.list_ids(rt.env.BUSY),
    "fail_next_commit": lambda rt, stub: testing.fail_next_commit(stub),
}


@pytest.mark.parametrize("use", list(AFTER_CLOSE))
async def test_after_close_every_entry_point_names_the_closed_runtime(use: str) -> None:
    rt = durable.Runtime()
    stub = rt.namespace(Busy, name="BUSY").get_by_name("a")
    await stub.get("k")
    await rt.aclose()
    with pytest.raises(durable.RuntimeClosedError, match="this durable.Runtime is closed"):
        made = AFTER_CLOSE[use](rt, stub)
        if inspect.isawaitable(made):
            await bounded(made)


class Rearming(durable.DurableObject):
    async def arm(self) -> None:
        await self.ctx.storage.set_alarm(time.time() * 1000 + 1)

    async def alarm(self) -> None:
        CHAIN.append(len(_clock._timer_work.get()))
        if len(CHAIN) < 8:
            await self.ctx.storage.set_alarm(time.time() * 1000 + 1)


CHAIN: list[int] = []


async def test_a_self_rearming_alarm_keeps_no_chain_of_ended_runs() -> None:
    """What marks an alarm's delivery for ``advance()`` (above) holds only deliveries still
    running: on the real clock a timer set from a delivery starts the next one in a copy of its
    context, and a list of every earlier run grew by one per run (and kept their tasks)."""
    CHAIN.clear()
    async with durable.Runtime() as rt:
        await rt.namespace(Rearming).get_by_name("a").arm()
        while len(CHAIN) < 8:
            await bounded(asyncio.sleep(0.002))
    assert CHAIN == [1] * 8
