"""Testing helpers for Durable Object code (see ``docs/testing.md``).

Everything here reaches into a live runtime the way a test needs and production never allows:
running code inside an object, firing its alarm now, evicting it, injecting a commit failure.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ._blocking import BlockingNamespace, BlockingStub
from ._clock import MockClock
from ._context import running_host
from ._id import DurableObjectId
from ._namespace import Namespace
from ._object import DurableObject
from ._sql import exec_unrestricted
from ._state import State
from ._stub import Stub, deliver, host_of, on_runtime_loop, on_runtime_thread, runtime_of
from ._util import shown
from ._wstesting import disconnect, hibernate, hibernation_blockers, websocket

__all__ = [
    "MockClock",
    "disconnect",
    "evict",
    "fail_next_commit",
    "hibernate",
    "hibernation_blockers",
    "list_ids",
    "query",
    "run_alarm",
    "run_in_object",
    "websocket",
]


def _check_stub(stub: object, func: str) -> Stub[Any]:
    """``stub`` as a ``Stub`` (a ``BlockingStub``'s own, for a test of synchronous code)."""
    if isinstance(stub, BlockingStub):
        return stub.stub
    if not isinstance(stub, Stub):
        raise TypeError(f"{func}() takes a durable.Stub (namespace.get(id)), not {type(stub).__name__}")
    return stub


async def run_in_object(stub: Stub[Any] | BlockingStub[Any], fn: Callable[[DurableObject, State], Any]) -> Any:
    """Run ``fn(instance, ctx)`` inside the live object, through its input gate; return the result.

    The instance is constructed first if it is not live. ``fn`` may be async (it is awaited). The
    result is returned as is, not copied. Writes ``fn`` makes are committed before this returns.

    Example::

        count = await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("count"))
    """
    target = _check_stub(stub, "run_in_object")
    if not callable(fn):
        raise TypeError(f"run_in_object() takes a callable fn(instance, ctx), not {type(fn).__name__}")

    async def call(instance: DurableObject, ctx: State) -> Any:
        result = fn(instance, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    return await deliver(target, "run", call, (), {})


async def run_alarm(stub: Stub[Any] | BlockingStub[Any]) -> bool:
    """Run the object's pending alarm now, whatever its time; ``False`` if none is set.

    Unlike the JavaScript ``runDurableObjectAlarm``, the attempt follows every rule of a timed
    alarm: the handler gets a real :class:`durable.AlarmInfo` (``retry_count`` counts the attempts
    already failed, except those that failed before their handler started, as in workerd),
    success clears the alarm (unless the handler set a new one), and failure schedules the retry
    as the runtime would (2 s, 4 s, ..., then gives up after 6 retries). The handler's exception
    is then raised here, so a test sees it.

    One ``alarm()`` runs at a time: if the object's handler is running (its timer started it),
    this waits for that run to end, then runs the alarm still set (a retry, an alarm the handler
    set) or returns ``False``. An alarm due now may so have been run by its timer already.

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub`` (or ``durable.BlockingStub``).
        RuntimeError: called from the object's own code while its ``alarm()`` runs, or from a
            call that handler awaits (it would wait for itself); or the handler sets the alarm to
            now on every run, and 1,000 runs in a row went by.
        durable.ConnectionClosedError: the runtime was closed before the handler ended (its
            shutdown cancels the attempt).
        Exception: whatever the handler raised (with ``remote = True``), after the retry is set.

    Example::

        await stub.schedule_cleanup()                 # sets an alarm an hour ahead
        assert await durable.testing.run_alarm(stub)  # runs it now
        assert not await durable.testing.run_alarm(stub)  # nothing left
    """
    target = _check_stub(stub, "run_alarm")
    runtime = runtime_of(target)
    return await on_runtime_loop(runtime, lambda: runtime.run_alarm(host_of(target)))


_EVICT_TIMEOUT = 30.0
"""How long (real seconds) ``evict()`` waits for the object's work to end: workerd's limit."""


async def evict(stub: Stub[Any] | BlockingStub[Any], *, web_sockets: str = "hibernate") -> None:
    """Drop the live instance but keep its storage; the next call constructs a fresh instance.

    As workerd's ``evict`` (behind ``evictDurableObject`` in Cloudflare's vitest pool), it first
    waits for the object's work to end: calls in flight (and calls that arrive meanwhile), a
    running alarm handler, ``ctx.wait_until()`` work. They complete in the old instance. Writes
    not yet committed are then committed. WebSockets accepted with ``accept()`` are disconnected;
    hibernatable ones stay connected (``web_sockets="hibernate"``, the default, as
    ``evictDurableObject`` in Cloudflare's vitest pool) or are disconnected too
    (``web_sockets="close"``: clients see the connection end, 1006).

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub`` (or ``durable.BlockingStub``).
        ValueError: ``web_sockets`` is neither ``"hibernate"`` nor ``"close"``.
        TimeoutError: the work did not end within 30 s (real time), workerd's limit and message;
            the instance is left as it was.
    """
    target = _check_stub(stub, "evict")
    if web_sockets not in ("hibernate", "close"):
        raise ValueError(f'evict() web_sockets must be "hibernate" or "close", not {shown(web_sockets)}')

    async def drop() -> None:
        host = host_of(target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _EVICT_TIMEOUT
        if running_host() is host and (host.events_running or host.background_work):
            # The object's own code (an event, or a task it started) would wait for the object's
            # events to end, its own among them: that could only end in the 30 s timeout.
            raise RuntimeError(
                "evict() was called from the code of the object it evicts, and waits for that "
                "object's calls to end: call it from outside the object (the test body)"
            )
        while host.events_running or host.background_work:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("Timed out waiting to evict Durable Object: it still has active references.")
            tasks = host.event_tasks()
            if tasks:
                await asyncio.wait(tasks, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            else:  # events admitted but not yet running (at the input gate): a turn lets them go on
                await asyncio.sleep(min(left, 0.001))
        host.evict()
        if web_sockets == "close":
            host.runtime.hibernation.object_reset(host, reset=False)  # (no reset: the sockets stay usable)

    await on_runtime_loop(runtime_of(target), drop)


async def list_ids(namespace: Namespace[Any] | BlockingNamespace[Any]) -> list[DurableObjectId]:
    """Ids of the objects of ``namespace`` that have storage (key-value data, SQL tables or an alarm)."""
    if isinstance(namespace, BlockingNamespace):
        namespace = namespace.namespace
    if not isinstance(namespace, Namespace):
        raise TypeError(f"list_ids() takes a durable.Namespace, not {type(namespace).__name__}")
    target = namespace
    runtime = target.runtime
    return await on_runtime_loop(runtime, lambda: runtime.list_ids(target))


def fail_next_commit(
    stub: Stub[Any] | BlockingStub[Any], exc: BaseException | type[BaseException] | None = None
) -> None:
    """Make the object's next storage commit fail with ``exc`` (default: ``OSError``).

    ``exc`` is an exception, or an exception class (called without arguments, as ``raise`` does;
    ``TypeError`` if it cannot be).

    As a disk failure would, the failed commit rolls back the batch, resets the object, and turns
    the results it held into ``durable.ObjectResetError`` (``durable_object_reset = True``).
    """
    target = _check_stub(stub, "fail_next_commit")
    if isinstance(exc, type) and issubclass(exc, BaseException):
        cls = exc
        try:
            exc = cls()  # a class, as `raise` takes one
        except Exception as error:
            raise TypeError(
                f"fail_next_commit() could not make a {cls.__name__} without arguments ({error}): "
                f"pass an exception instead, as fail_next_commit(stub, {cls.__name__}(...))"
            ) from error
    if exc is not None and not isinstance(exc, BaseException):
        raise TypeError(f"fail_next_commit() takes an exception or an exception class, not {type(exc).__name__}")
    failure = exc if exc is not None else OSError(5, "disk I/O error (injected by durable.testing)")

    def arm() -> None:
        host_of(target).db.fail_next = failure

    # From another thread than the runtime's, on its loop: the host may have to be made.
    on_runtime_thread(runtime_of(target), arm)


async def query(
    stub: Stub[Any] | BlockingStub[Any], sql: str, *bindings: Any, unrestricted: bool = False
) -> list[dict[str, Any]]:
    """Run SQL in the object's database from a test (to seed or inspect it); rows come back as dicts.

    The statements run inside the live object, through its input gate, exactly as
    ``ctx.storage.sql.exec(sql, *bindings)`` would there: their writes join the object's implicit
    transaction and are committed before this returns, so the object's transaction model holds
    (there is no second connection that could see uncommitted data or write behind its back).

    With ``unrestricted=True`` Cloudflare's restrictions on names, PRAGMAs and functions are
    lifted (``PRAGMA user_version``, ``sqlite_version()``, ``SELECT * FROM _cf_KV``...). Transactions
    (``BEGIN``, ``SAVEPOINT``) stay refused, and limits still apply. Writing durable's own ``_cf_``
    tables this way can leave the object inconsistent: inspect them, do not change them.

    Raises:
        TypeError: ``stub`` is not a ``durable.Stub`` (or ``durable.BlockingStub``), or
            ``unrestricted`` is not a bool.
        durable.DurableError: the object is not SQLite-backed (Cloudflare's "SQL is not enabled
            for this Durable Object class" text).
        durable.SqlError: SQLite (or, unless ``unrestricted``, Cloudflare's rules) refused it.

    Example::

        await durable.testing.query(stub, "INSERT INTO users (name) VALUES (?)", "Ada")
        assert await durable.testing.query(stub, "SELECT name FROM users") == [{"name": "Ada"}]
    """
    target = _check_stub(stub, "query")
    if not isinstance(unrestricted, bool):
        raise TypeError(f"query() unrestricted must be a bool, not {type(unrestricted).__name__}")

    def body(instance: DurableObject, ctx: State) -> list[dict[str, Any]]:
        api = ctx.storage.sql
        cursor = exec_unrestricted(api, sql, bindings) if unrestricted else api.exec(sql, *bindings)
        rows = [row.to_py() for row in cursor]
        if unrestricted:
            host_of(target).db.kv.drop_caches()  # the SQL may have touched _cf_KV behind the cache
        return rows

    result: list[dict[str, Any]] = await run_in_object(target, body)
    return result
