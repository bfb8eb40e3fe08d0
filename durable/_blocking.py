"""``durable.BlockingRuntime``: a runtime for synchronous code (Flask, Django, scripts, the REPL).

It opens a :class:`durable.Runtime` on an event loop of its own, running in a background thread,
until it is closed. Its namespaces hand out stubs whose methods block the calling thread until
the result is there; any number of threads may call at once. Each call is made on the runtime's
loop through the same forwarding as a call from another event loop (``_stub.submit``), so
objects keep Cloudflare's semantics: one instance per id, gates, coalesced commits.

This module sits beside the command line in the layering (layer 5): it uses the runtime and
stubs, and only ``_stub``'s forwarding helpers beyond the public API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from ._aliases import camel_aliases
from ._codec import ATOMIC_TYPES, Transfer, clone, register_transfer
from ._exceptions import ConnectionClosedError, RuntimeClosedError
from ._http import Request, Response, buffer_body, build_request, held_body
from ._id import DurableObjectId
from ._namespace import Namespace
from ._runtime import SHUTDOWN_GRACE, Runtime
from ._stub import Stub, call_forwarded, fetch_forwarded, pin_runtime_loop, submit
from ._util import Handle, unbuilt_safe_repr

__all__ = ["BlockingNamespace", "BlockingRuntime", "BlockingStub"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("durable")

_CLOSED = "this durable.BlockingRuntime is closed; create a new one to keep going"
_SAME_THREAD = (
    "{what} was called on the runtime's own event-loop thread (from inside a Durable Object, "
    "a coroutine passed to rt.run(), or a function sent over RPC, which runs there), where it "
    "would wait for itself: await the stub's method there instead (`await stub.method()`, "
    "with stub.stub for a BlockingStub)"
)

_CLOSED_DURING = (
    "Connection closed: the durable.BlockingRuntime was closed before this call ended (for "
    "stub.fetch(), before its response's body was read). Reconnect or retry the request."
)

_RUN_CANCELLED = (
    "the coroutine given to rt.run() raised asyncio.CancelledError (its task, or a task or future it "
    "awaited, was cancelled); the runtime is still open"
)

_FORKED = (
    "this durable.BlockingRuntime belongs to process {parent}, and this process ({child}) is a copy of "
    "it made by os.fork(): its thread did not cross the fork, so calls would wait for ever. Create the "
    "BlockingRuntime in the process that uses it (gunicorn --preload: in a post_fork hook; "
    "multiprocessing: the 'spawn' start method, or create it in the worker)"
)


_live: weakref.WeakSet[BlockingRuntime] = weakref.WeakSet()
"""Every BlockingRuntime of this process not yet collected (see ``_forked_child``)."""


def _forked_child() -> None:
    """In a child process made by ``os.fork()``: every inherited BlockingRuntime is closed there.

    Its thread is the parent's: calls fail at once (naming the fix) instead of waiting for a loop
    that nothing runs, and ``close()`` (an ``atexit`` hook) returns at once: the runtime and its
    storage stay the parent's.
    """
    global _waits
    _waits = threading.Lock()  # (a runtime's thread of the parent may have held it at the fork)
    message = _FORKED.format(parent=os.getppid(), child=os.getpid())
    for runtime in list(_live):
        runtime._forget_in_child(message)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_child)


@final
class BlockingRuntime(Handle):
    """A :class:`durable.Runtime` for synchronous code: its stubs' methods block and return results.

    Args:
        path: as for ``Runtime``: a directory to persist storage in, or ``None`` for memory.
        **runtime_options: any other ``Runtime`` keyword option (``clock``, ``limits``,
            ``vars``, ``idle_timeout``, ``max_live_objects``, ...).

    The runtime runs on an event loop in a background thread from construction until
    :meth:`close` (or the end of the ``with`` block), which flushes storage. Every method may be
    called from many threads at once.

    Raises:
        PathLockedError: another live runtime holds ``path``.

    Example::

        with durable.BlockingRuntime() as rt:
            counters = rt.namespace(durable.Counter)
            counters.get_by_name("A").increment(5)       # blocks, returns 5
    """

    _unpicklable = (
        "a durable.BlockingRuntime cannot be pickled: its thread and storage belong to this process; "
        "create one in the process that uses it"
    )

    def __init__(self, path: str | os.PathLike[str] | None = None, **runtime_options: Any) -> None:
        self._lock = threading.RLock()
        """Held while a call is sent and while close() marks the runtime closed. Reentrant: a signal
        handler runs in the main thread between two bytecodes, maybe while it holds the lock, and
        may call or close too. Only the threads that call take it, never the runtime's own."""
        self._closed = False
        self._closed_message = _CLOSED
        """What calls raise once closed (another text in a forked child: ``_forget_in_child``)."""
        self._forked = False
        self._stopping = False
        """Whether the loop is to stop (``_stop_loop``): until then ``_serve`` keeps it running."""
        self._stopped = threading.Event()
        """Set when the runtime's thread has shut it down and ended (``_serve``)."""
        self._error: BaseException | None = None
        """What the shutdown raised, for the close() that asked for it."""
        self._abandoned: set[asyncio.Task[Any]] = set()
        """Tasks that did not end when cancelled at the shutdown (``_end_tasks``)."""
        self._pending: set[concurrent.futures.Future[Any]] = set()
        """Calls submitted and not settled: failed with RuntimeClosedError if the loop stops first."""
        self._drained = False
        """Set once the loop is closed and ``_pending`` refused: a call recorded later refuses itself."""
        self._loop = asyncio.new_event_loop()
        self._thread = _RuntimeThread(self._serve)
        self._thread.start()
        _live.add(self)
        try:
            self.runtime: Runtime = Runtime(path, **runtime_options)
            """The underlying :class:`durable.Runtime` (use it on its loop, through :meth:`run`)."""
            self.run(self.runtime.__aenter__)  # opened on its loop: the runtime's loop from now on
            pin_runtime_loop(self.runtime)
        except BaseException:
            self._stop_loop()
            raise

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"<durable.BlockingRuntime {self.runtime!r}>"

    def __enter__(self) -> BlockingRuntime:
        if self._closed:  # as `async with` on a closed Runtime: not a block whose every call fails
            raise RuntimeClosedError(self._closed_message)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close the runtime (flushing every object's writes) and stop its thread. Idempotent.

        Raises ``RuntimeError`` when called from the runtime's own thread (inside an object).
        """
        self._check_thread("BlockingRuntime.close()")
        if self._forked:
            return  # the parent's runtime: nothing of it runs here, it is not this process's to close
        with self._lock:
            first, self._closed = not self._closed, True
        self._stop_loop()
        if first and self._error is not None:
            error, self._error = self._error, None
            raise error

    def _stop_loop(self) -> None:
        """Have the runtime's thread shut the runtime down and end; return once it has.

        The shutdown runs on that thread (``_serve``), so that Ctrl-C here (a ``KeyboardInterrupt``
        while this waits) cannot stop it halfway, which left the runtime half closed, its path
        locked for the rest of the process: the interrupt is raised once the shutdown has ended
        (a second one stops waiting). A ``close()`` made while another thread closes waits too.
        """
        with self._lock:
            self._closed = self._stopping = True
        try:
            with contextlib.suppress(RuntimeError):  # (the loop is closed: the thread has ended)
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._stopped.wait()
        finally:
            self._stopped.wait()
        # Its thread only returns now: once close() returns, no thread of this runtime is left
        # (bounded: a signal handler's close() may interrupt the main thread holding a lock that a
        # thread's end takes, threading's own).
        self._thread.join(SHUTDOWN_GRACE)

    def _serve(self) -> None:
        """The runtime's thread: runs its loop until ``_stop_loop``, whatever an object's code
        does, then shuts the runtime down.

        A task that raises ``KeyboardInterrupt`` or ``SystemExit`` (a task an object started)
        makes asyncio re-raise it out of ``run_forever()``, and an object's code may stop the
        loop: either would end the thread and leave every caller waiting for ever. The loop
        runs on (the exception stays the task's).
        """
        loop = self._loop
        try:
            while True:
                with contextlib.suppress(KeyboardInterrupt, SystemExit):
                    loop.run_forever()
                if self._stopping:
                    break
            shutdown = self._run_to_end(self._shutdown())
            if not shutdown.cancelled():
                self._error = shutdown.exception()
            # Calls forwarded from other threads' loops (not through _run_blocking) may have started in
            # the loop's last turns: they end (refused) before it closes, not destroyed pending.
            # The loop runs nothing between the last look and close(): what is queued never starts.
            for _ in range(10):
                if not asyncio.all_tasks(loop) - self._abandoned:
                    break
                self._run_to_end(self._end_tasks())
        finally:
            loop.close()
            # A call whose start never ran, or whose task the loop's end cut short, would leave its
            # thread waiting forever: it fails instead, as every call after close() does. Without
            # the lock: a thread holding it may be waiting for this one (a signal handler that
            # closes the runtime, run while the main thread was sending a call); a call recorded
            # after this look sees _drained and refuses itself (_run_blocking).
            self._drained = True
            for fut in list(self._pending):
                _refuse(fut)
            self._stopped.set()

    def _forget_in_child(self, message: str) -> None:
        """Close this runtime in a child made by ``os.fork()`` without touching it (``_forked_child``)."""
        self._lock = threading.RLock()  # (held by another thread at the fork, it would stay held)
        self._closed = self._forked = True
        self._closed_message = message
        self._pending = set()

    def _run_to_end(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` on the (stopped) loop until it ends, whatever stops the loop meanwhile."""
        loop = self._loop
        task = loop.create_task(coro)
        task.add_done_callback(lambda _: loop.stop())
        while not task.done():  # (a close() made meanwhile stops the loop too: it runs on)
            with contextlib.suppress(KeyboardInterrupt, SystemExit):
                loop.run_forever()
        return task

    async def _shutdown(self) -> None:
        runtime: Runtime | None = self.__dict__.get("runtime")  # (None: Runtime() failed)
        try:
            if runtime is not None:
                await runtime.aclose()
            # Calls the closing failed ("no longer active", as aclose() fails them on any loop)
            # pass that on before what is left is cancelled (a cancelled call fails differently):
            for _ in range(8):
                if not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]:
                    break
                await asyncio.sleep(0)
        finally:
            await self._end_tasks()

    async def _end_tasks(self) -> None:
        """Cancel the loop's other tasks and wait for them (bounded), then close async generators.

        Calls submitted just before close(), or forwarded from other threads' loops, may start
        after the first tasks are cancelled: cancel until none is left (bounded: a task that
        starts others as it is cancelled). A task that ignores its cancellation (an object's
        code catching CancelledError) is left after SHUTDOWN_GRACE seconds, logged: close()
        never waits for ever.
        """
        deadline = self._loop.time() + SHUTDOWN_GRACE
        for _ in range(10):
            others = asyncio.all_tasks() - self._abandoned - {asyncio.current_task()}
            if not others:
                break
            for task in others:
                task.cancel()
            _, pending = await asyncio.wait(others, timeout=max(0.0, deadline - self._loop.time()))
            if pending:
                log.warning(
                    "durable: closing the BlockingRuntime leaves %d task(s) that did not end when cancelled",
                    len(pending),
                )
                self._abandoned |= pending  # (not waited for again)
                for fut in list(self._pending):  # their callers wait no longer (their calls run on)
                    if fut.running():
                        fut.set_exception(ConnectionClosedError(_CLOSED_DURING))
                break
            await asyncio.sleep(0)  # the calls whose start was queued meanwhile
        await self._loop.shutdown_asyncgens()

    # -- running code on the runtime's loop ---------------------------------------------------

    def run(self, async_fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        """Call ``async_fn(*args)`` on the runtime's loop, wait for its result and return it.

        As anyio's blocking portal: ``async_fn`` is a coroutine function (a plain function is
        called there too). Its exception is raised here. Raises ``RuntimeClosedError`` once the
        runtime is closed, ``RuntimeError`` when called from the runtime's own thread.

        Example::

            response = stub.fetch("http://do/")
            text = rt.run(response.text)
        """
        self._check_thread("BlockingRuntime.run()")
        target: object = async_fn
        if not callable(target):
            if inspect.iscoroutine(target):
                target.close()  # never awaited on purpose: no "never awaited" warning
            raise TypeError(
                "rt.run() takes a coroutine function and its arguments, as rt.run(fn, *args), "
                f"not {type(async_fn).__name__}"
            )
        return self._run_blocking(lambda: self._run_here(async_fn, args))

    async def _run_here(self, async_fn: Callable[..., Awaitable[R]], args: tuple[Any, ...]) -> R:
        """``run()``'s call, on the runtime's loop. Its own ``CancelledError`` (not the shutdown's)
        reaches the caller as ``concurrent.futures.CancelledError``, as from anyio's portal."""
        try:
            return await _awaitable(async_fn(*args))
        except asyncio.CancelledError as exc:
            if self._stopping:
                raise  # the shutdown's: the caller learns that the runtime closed (_CLOSED_DURING)
            raise concurrent.futures.CancelledError(_RUN_CANCELLED) from exc

    def _run_blocking(self, make: Callable[[], Awaitable[R]]) -> R:
        """Run ``make()`` on the runtime's loop; wait for its outcome and return (or raise) it.

        The calling thread never holds a lock that the runtime's thread takes: a signal handler
        may run in it at any bytecode, and make a blocking call or close the runtime, which the
        runtime's thread must then serve. So the call's future gets its callbacks before that
        thread knows it, and the caller waits on a queue, touching the future once settled.
        """
        fut: concurrent.futures.Future[R] = concurrent.futures.Future()
        settled: queue.SimpleQueue[object] = queue.SimpleQueue()
        fut.add_done_callback(self._pending.discard)
        fut.add_done_callback(settled.put)
        with self._lock:  # (close() sets _closed under it: no call is submitted after that)
            if self._closed or self._loop.is_closed():
                raise RuntimeClosedError(self._closed_message)
            self._pending.add(fut)
            try:
                # A call the shutdown cancels tells its caller why in this runtime's words: only
                # once cancelled (a call whose task ended may not have passed its outcome on yet).
                submit(self._loop, make, fut, _CLOSED_DURING)
            except RuntimeError:
                self._pending.discard(fut)
                if not self._loop.is_closed():
                    raise  # (not the loop's: a RecursionError, say)
                raise RuntimeClosedError(self._closed_message) from None  # closed meanwhile
        if self._drained:  # the loop closed as it was sent: its start never runs (_serve)
            _refuse(fut)
        _wait(self._thread, fut, settled)
        return fut.result()

    def _check_thread(self, what: str) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError(_SAME_THREAD.format(what=what))

    # -- namespaces ---------------------------------------------------------------------------

    def namespace(self, cls: type[T], **options: Any) -> BlockingNamespace[T]:
        """Register ``cls`` as ``Runtime.namespace`` does, and return its blocking namespace.

        Options as for ``Runtime.namespace`` (``name=``, ``storage=``), with the same errors.
        """
        self._check_thread("BlockingRuntime.namespace()")
        if self._closed:
            raise RuntimeClosedError(self._closed_message)

        async def register() -> Namespace[T]:
            return self.runtime.namespace(cls, **options)

        namespace = self.run(register)
        return BlockingNamespace(self, namespace)


class _RuntimeThread(threading.Thread):
    """A BlockingRuntime's thread, which says what it waits for while an object's code makes a
    blocking call on it (to another BlockingRuntime: on its own, the call is refused)."""

    def __init__(self, serve: Callable[[], None]) -> None:
        super().__init__(target=serve, name="durable-runtime", daemon=True)
        self.waiting: tuple[_RuntimeThread, concurrent.futures.Future[Any]] | None = None
        """The runtime (its thread) and the call that this thread waits for, if it does."""


_CYCLE = (
    "a blocking call made inside an object of one durable.BlockingRuntime reached another whose "
    "thread was itself blocked, waiting (through blocking calls made inside objects) for the first "
    "one: each would have waited for the other for ever, and this call was withdrawn before it "
    "started. Inside an object, await the async stub instead of blocking its runtime's thread: "
    "`await blocking_stub.stub.method(...)`"
)


def _wait(target: _RuntimeThread, fut: concurrent.futures.Future[Any], settled: queue.SimpleQueue[object]) -> None:
    """Wait until ``fut`` (a call sent to the loop of ``target``, a runtime's thread) has settled.

    On a runtime's own thread (an object's code making a blocking call to another runtime), the
    thread is marked as waiting meanwhile. When the marks make a cycle (runtime A's thread waits
    for B's, which waits for A's), no thread of it would ever run again: one call of the cycle
    has not started (its runtime's thread was blocked already), and it is withdrawn; its caller
    raises ``RuntimeError`` naming the fix, which unblocks the others.
    """
    me = threading.current_thread()
    if type(me) is not _RuntimeThread:
        settled.get()
        return
    try:
        with _waits:
            me.waiting = (target, fut)
            _break_cycle(me)
        settled.get()
    finally:
        with _waits:
            me.waiting = None
    if fut.cancelled():  # (only _break_cycle cancels a call)
        raise RuntimeError(_CYCLE)


_waits = threading.Lock()
"""Held by a runtime's thread while it records what it waits for and looks for a cycle, or clears
that record: the records it reads then stay as they are, and those of a cycle hold for good (each
thread of it is blocked, and the call it waits for runs on the next one's loop). Without it, two
threads closing one cycle at once both withdrew their calls, and records read one after the other
could make a cycle that never existed at any one moment (three runtimes: B's wait for C ended and
C started waiting for A between two reads), failing a call that would have ended. Only runtime
threads take it, never while blocked (``_forked_child`` makes a new one in a forked child)."""


def _break_cycle(me: _RuntimeThread) -> None:
    """Withdraw a call that has not started, if ``me``'s wait closes a cycle of waiting threads
    (under ``_waits``)."""
    futures: list[concurrent.futures.Future[Any]] = []
    seen: set[_RuntimeThread] = set()
    thread = me
    while thread not in seen:  # (a cycle that does not pass through me was broken as it closed)
        seen.add(thread)
        waiting = thread.waiting
        if waiting is None or waiting[1].done():  # (done: that thread is no longer blocked)
            return
        futures.append(waiting[1])
        thread = waiting[0]
        if thread is me:
            for fut in futures:
                if fut.cancel():  # (not started: it never would)
                    return
            return


def _refuse(fut: concurrent.futures.Future[Any]) -> None:
    """Fail a call that the runtime's loop will never run (it is closed), unless it has ended."""
    if not fut.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            fut.set_exception(RuntimeClosedError(_CLOSED))


async def _awaitable(value: Awaitable[R]) -> R:
    if isinstance(value, Awaitable):
        return await value
    made: object = value  # type: ignore[unreachable]  # (what a plain function returned)
    if inspect.isasyncgen(made):  # its items would be made on the runtime's loop, and read on none
        await made.aclose()
        raise TypeError(
            "rt.run() takes a coroutine function, not an async generator function: iterate it in one, "
            "as rt.run(collect) with `async def collect(): return [item async for item in gen()]`"
        )
    return value  # a plain function's result (tolerated, as anyio's portal does)


@final
@camel_aliases
class BlockingNamespace(Handle, Generic[T]):
    """A namespace of a :class:`BlockingRuntime`: the id methods of ``Namespace``, blocking stubs.

    ``namespace`` is the underlying :class:`durable.Namespace` (for use on the runtime's loop).
    """

    __slots__ = ("_runtime", "namespace")
    _unpicklable = (
        "a durable.BlockingNamespace cannot be pickled: it belongs to its runtime; "
        "call rt.namespace(cls) where it is needed"
    )

    def __init__(self, runtime: BlockingRuntime, namespace: Namespace[T]) -> None:
        self._runtime = runtime
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"<durable.BlockingNamespace {self.namespace.name!r}>"

    @property
    def name(self) -> str:
        """The namespace's name."""
        return self.namespace.name

    def id_from_name(self, name: str) -> DurableObjectId:
        """As ``Namespace.id_from_name``."""
        return self.namespace.id_from_name(name)

    def new_unique_id(self, **options: Any) -> DurableObjectId:
        """As ``Namespace.new_unique_id``."""
        return self.namespace.new_unique_id(**options)

    def id_from_string(self, id: str | DurableObjectId) -> DurableObjectId:
        """As ``Namespace.id_from_string``."""
        return self.namespace.id_from_string(id)

    def get(self, id: DurableObjectId, **options: Any) -> BlockingStub[T]:
        """A blocking stub for ``id`` (lazy: creates nothing)."""
        return BlockingStub(self._runtime, self.namespace.get(id, **options))

    def get_by_name(self, name: str, **options: Any) -> BlockingStub[T]:
        """Shorthand for ``get(id_from_name(name))``."""
        return BlockingStub(self._runtime, self.namespace.get_by_name(name, **options))

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        idFromName = id_from_name
        newUniqueId = new_unique_id
        idFromString = id_from_string
        getByName = get_by_name


@final
class BlockingStub(Handle, Generic[T]):
    """A stub whose methods block until the result is there: ``stub.increment(5)`` returns ``5``.

    Arguments and results are copied as for any RPC call; an exception raised in the object is
    raised here. ``stub.fetch(...)`` returns a ``durable.Response`` whose body is already read.
    ``stub.stub`` is the underlying async :class:`durable.Stub`.
    """

    __slots__ = ("__dict__", "_runtime", "stub")
    _unpicklable = (
        "a durable.BlockingStub cannot be pickled: it belongs to its runtime; send str(stub.id) "
        "and use namespace.get(namespace.id_from_string(...)) on the other side"
    )

    def __init__(self, runtime: BlockingRuntime, stub: Stub[Any]) -> None:
        self._runtime = runtime
        self.stub = stub

    def __repr__(self) -> str:
        return f"<durable.BlockingStub {self.stub.id!r}>"

    def __eq__(self, other: object) -> bool:
        """Stubs of the same object compare equal, as :class:`durable.Stub` does."""
        if type(other) is not BlockingStub:
            return NotImplemented
        return self.stub == other.stub

    def __hash__(self) -> int:
        return hash(self.stub)

    @property
    def id(self) -> DurableObjectId:
        """The object's id."""
        return self.stub.id

    @property
    def name(self) -> str | None:
        """The name the id was derived from, or ``None``."""
        return self.stub.name

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        stub = self.stub
        runtime = self._runtime

        def call(*args: Any, **kwargs: Any) -> Any:
            runtime._check_thread(f"stub.{name}() of a BlockingRuntime")
            copied: tuple[Any, ...]
            kw: dict[str, Any]
            # One copy of all the arguments, as workerd makes (a value passed twice arrives as one).
            copied, kw = clone((args, kwargs)) if args or kwargs else (args, kwargs)  # type: ignore[misc]
            result = runtime._run_blocking(lambda: call_forwarded(stub, name, copied, kw))
            return result if type(result) in ATOMIC_TYPES else _for_sync_code(runtime, result)

        call.__name__ = call.__qualname__ = name
        self.__dict__[name] = call
        return call

    def fetch(self, url_or_request: str | Request, **init: Any) -> Response:
        """Send an HTTP request to the object's ``fetch`` handler; returns its (read) ``Response``.

        ``rt.run(response.text)`` (or ``.json``, ``.bytes``) gives its body.
        """
        runtime = self._runtime
        runtime._check_thread("stub.fetch() of a BlockingRuntime")
        request = build_request(url_or_request, init)
        body = held_body(request)
        if body is not None and not isinstance(body, bytes):
            # A streamed body is read on the loop that owns it... here, none runs: read it there.
            runtime.run(buffer_body, request)
        stub = self.stub
        return runtime._run_blocking(lambda: fetch_forwarded(stub, request))


def _for_sync_code(runtime: BlockingRuntime, value: Any) -> Any:
    """``value`` (a blocking call's copied result) with the stubs in it made blocking.

    An object may return stubs (``return self.env.ROOMS.get_by_name(room)``); the async ``Stub``
    it would get is of no use to synchronous code (its calls return coroutines), so it becomes a
    :class:`BlockingStub`, at the top and inside lists, tuples and dict values, at any depth (as
    deep as RPC carried them). The result is the caller's own copy: lists and dicts are changed in
    place, tuples holding a stub are made anew; shared references and cycles stay (one stub shared
    is one ``BlockingStub``). Stubs are never dict keys or set members: RPC refuses them there.
    Functions and ``RpcTarget`` stubs stay as they are: ``asyncio.run(fn(x))`` or ``rt.run(fn, x)``
    calls them (on the runtime's thread), as before.

    Each container is a generator that yields what it holds and receives its conversion, driven
    from an explicit stack: as :func:`clone`, which carries a value as deep as the recursion limit
    lets, whatever the caller's own depth.
    """
    memo: dict[int, Any] = {}
    stack: list[Generator[Any, Any, Any]] = []

    def convert(item: Any) -> Any:
        """``item`` converted, or ``stack`` when a generator for it was pushed (its result comes later)."""
        kind = type(item)
        if kind in ATOMIC_TYPES:
            return item
        key = id(item)
        if key in memo:
            return memo[key]
        if kind is Stub:
            made = memo[key] = BlockingStub(runtime, item)
            return made
        if kind is list or kind is dict or kind is tuple:
            if ATOMIC_TYPES.issuperset(map(type, item.values() if kind is dict else item)):
                return item  # (a row of plain values, the common case: no generator for it)
            stack.append(_contents(item, memo))
            return stack
        return item

    top = convert(value)
    sent = None
    while stack:
        try:
            item = stack[-1].send(sent)
        except StopIteration as ended:
            stack.pop()
            sent = ended.value
            continue
        sent = convert(item)
        if sent is stack:
            sent = None  # (a generator starts with None)
    return sent if top is stack else top


def _contents(value: list[Any] | dict[Any, Any] | tuple[Any, ...], memo: dict[int, Any]) -> Generator[Any, Any, Any]:
    """Yield each item of ``value`` that may hold a stub, receive it converted; return ``value``
    converted (see :func:`_for_sync_code`)."""
    atomic = ATOMIC_TYPES
    key = id(value)
    if type(value) is list:
        memo[key] = value
        for i, item in enumerate(value):
            if type(item) not in atomic:
                value[i] = yield item
        return value
    if type(value) is dict:
        memo[key] = value
        for k, item in value.items():  # (setting a key it has: the dict keeps its size and order)
            if type(item) not in atomic:
                value[k] = yield item
        return value
    items: list[Any] | None = None
    for i, item in enumerate(value):
        if type(item) not in atomic:
            made = yield item
            if made is not item:
                if items is None:
                    items = list(value)
                items[i] = made
    if key in memo:
        # A cycle through this tuple (by way of a list or dict in it) was closed while its items
        # were converted: the tuple made there is the one the rest of the value refers to (as clone).
        return memo[key]
    made = memo[key] = value if items is None else tuple(items)
    return made


register_transfer(
    BlockingStub,
    Transfer(
        lambda stub: clone(stub.stub),  # the receiver gets a stub of the same object, as for a Stub
        "A stub can be an RPC argument or result but not a stored value: store str(stub.id) and get it "
        "back with namespace.get(namespace.id_from_string(text))",
    ),
)
