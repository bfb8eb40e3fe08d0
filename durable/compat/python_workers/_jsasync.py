"""JavaScript's timers and promises as Python Workers code reaches them through ``js``:
``setTimeout`` / ``clearTimeout``, ``setInterval`` / ``clearInterval``, ``queueMicrotask`` and
``Promise`` (``Promise.new(executor)``, ``resolve``, ``reject``, ``all``, ``allSettled``,
``race``; ``then``, ``catch``, ``finally_``, ``await``).

What workerd does (measured, miniflare 4, compatibility date 2026-04-07): ``setTimeout`` returns a
number (1, 2, ... in a fresh isolate), calls the callback with the extra arguments, treats a
negative delay as 0, runs timers due together in the order they were set, and refuses a callback
that is not a function (``TypeError: Failed to execute 'setTimeout' on
'ServiceWorkerGlobalScope': parameter 1 is not of type 'function'.``); ``clearTimeout`` of an
unknown id or ``undefined`` does nothing; at global scope, setting a timeout is workerd's
"Disallowed operation called within global scope" error.

Inside a Durable Object a timer's callback runs as an event of the object (through its input gate,
so its storage writes commit like a handler's), a pending timer keeps the object from hibernating
(Cloudflare's documentation: a pending ``setTimeout`` / ``setInterval`` prevents hibernation), and
a timer set before the object was reset never fires. A timer a Worker's ``fetch`` sets is dropped
once the request is over, its response sent and its ``waitUntil`` work done (measured: a 30 ms
timer set by a ``fetch`` that returned at once never ran; with a 100 ms ``waitUntil`` pending, or
a response body still streaming, it ran). Timers use the event loop's clock, not a
``MockClock``, as workerd's timers do not follow ``Date.now()``'s frozen clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import inspect
import itertools
import logging
import weakref
from collections.abc import Callable, Generator, Iterable
from typing import Any, Final

from durable._background import enter_own_work
from durable._context import running_host
from durable._http import ExecutionContext, at_request_end

from ._convert import JsList
from ._globals import GLOBAL_SCOPE_ERROR, current_request
from .pyodide.ffi import JsException, JsPromise

__all__ = [
    "Promise",
    "clearInterval",
    "clearTimeout",
    "pending_timers",
    "queueMicrotask",
    "reset",
    "setInterval",
    "setTimeout",
]

log = logging.getLogger("durable.js")

_NOT_FUNCTION: Final = "Failed to execute '{}' on 'ServiceWorkerGlobalScope': parameter 1 is not of type 'function'."

_ids = itertools.count(1)
_timers: dict[int, _Timer] = {}
_tasks: set[asyncio.Future[Any]] = set()  # the loop keeps tasks only weakly


def _delay(value: Any) -> float:
    """A delay in seconds from JavaScript's milliseconds: ``NaN``, negative or missing is 0;
    ``Infinity`` is never (workerd, measured: ``setTimeout(cb, Infinity)`` and ``(cb, 2**31)``
    did not fire within 100 ms, where ``-Infinity``, ``NaN`` and ``"abc"`` fired at once: no
    32-bit wrap to 0 as in browsers)."""
    try:
        ms = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        ms = 0.0
    return ms / 1000 if ms > 0 else 0.0  # inf / 1000 is inf: call_later(inf) never runs


async def _call(callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Call ``callback(*args)``, awaiting what it returns; log what it raises (an uncaught error)."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        if getattr(exc, "durable_object_reset", False):
            raise
        log.error("durable: a js timer callback raised", exc_info=exc)


def _spawn(work: Any) -> None:
    task = asyncio.ensure_future(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class _Timer:
    """One pending ``setTimeout`` / ``setInterval``: its loop handle and the object it belongs to."""

    __slots__ = ("args", "callback", "delay", "gen", "handle", "host", "id", "owner", "repeat")

    def __init__(self, callback: Callable[..., Any], delay: float, args: tuple[Any, ...], repeat: bool) -> None:
        self.id = next(_ids)
        self.callback, self.delay, self.args, self.repeat = callback, delay, args, repeat
        self.host = self.owner = running_host()  # host: while it pins the object; owner: for good
        self.gen = self.host.gen if self.host is not None else 0
        if self.host is not None:
            self.host.pins += 1  # a pending timer keeps the object from hibernating
            self.host.ending.add(self.dropped)  # and a reset or eviction drops it
        else:
            request = current_request()
            if isinstance(request, ExecutionContext):  # a Worker's: the request's end drops it
                at_request_end(request, self.cancel)
        self.handle = asyncio.get_running_loop().call_later(delay, self.fire)

    def fire(self) -> None:
        host = self.host
        if self.repeat:
            self.handle = asyncio.get_running_loop().call_later(max(self.delay, 0.001), self.fire)
        else:
            _timers.pop(self.id, None)
        if host is None:
            _spawn(_call(self.callback, self.args))
            if not self.repeat:
                self.unpin()
            return
        if host.gen != self.gen:  # the object was reset since: workerd dropped its timers
            self.cancel()
            return

        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def event(instance: Any, ctx: Any) -> None:
            enter_own_work(fut)  # a Runtime.aclose() the callback awaits does not wait for it
            await _call(self.callback, self.args)

        try:
            host.invoke("run", event, (), {}, fut)
        except Exception as exc:  # the runtime closed, or the object is overloaded
            log.warning("durable: a js timer of %r could not run: %s", host, exc)
            self.cancel()
            return
        # No caller awaits the callback's event: closing the runtime waits for it, as for
        # wait_until work, or it cut it (its writes after an await were lost).
        host.background.hold(fut)
        if not self.repeat:
            fut.add_done_callback(self.ran)

    def ran(self, fut: asyncio.Future[Any]) -> None:
        """The callback's event ended (its errors were logged in it): the object may rest."""
        if not fut.cancelled():
            fut.exception()  # retrieved: a reset ends the event with the reset's error
        self.unpin()

    def cancel(self) -> None:
        self.handle.cancel()
        _timers.pop(self.id, None)
        self.unpin()

    def unpin(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.ending.discard(self.dropped)
            host.pins -= 1
            host.maybe_idle()

    def dropped(self) -> None:
        """The object's generation ended (reset, evicted): workerd drops its timers with it, so
        the timer must not keep the next instance from resting until it would have fired."""
        host, self.host = self.host, None
        self.handle.cancel()
        _timers.pop(self.id, None)
        if host is not None:
            host.pins -= 1
            with contextlib.suppress(RuntimeError):  # no loop runs (a runtime closing): nothing to tell
                asyncio.get_running_loop().call_soon(host.maybe_idle)  # not in the middle of the reset


def _set(name: str, callback: Any, delay: Any, args: tuple[Any, ...], repeat: bool) -> int:
    if not callable(callback):
        raise JsException("TypeError", _NOT_FUNCTION.format(name))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise JsException("Error", GLOBAL_SCOPE_ERROR) from None
    if running_host() is None and current_request() is None:
        raise JsException("Error", GLOBAL_SCOPE_ERROR)
    timer = _Timer(callback, _delay(delay), args, repeat)
    _timers[timer.id] = timer
    return timer.id


def setTimeout(callback: Any, delay: Any = 0, /, *args: Any) -> int:
    """Call ``callback(*args)`` once after ``delay`` ms; returns the timer's id (a number).

    Raises:
        JsException: ``TypeError`` when ``callback`` is not callable; workerd's "Disallowed
            operation called within global scope" outside any request or object call.
    """
    return _set("setTimeout", callback, delay, args, repeat=False)


def setInterval(callback: Any, delay: Any = 0, /, *args: Any) -> int:
    """Call ``callback(*args)`` every ``delay`` ms until ``clearInterval(id)``; returns the id."""
    return _set("setInterval", callback, delay, args, repeat=True)


def clearTimeout(timer_id: Any = None, /) -> None:
    """Cancel the timer ``timer_id``; an unknown id or ``None`` does nothing, as in workerd."""
    timer = _timers.get(timer_id) if isinstance(timer_id, int) else None
    if timer is not None and timer.owner is running_host():  # workerd: another object's id does nothing
        timer.cancel()


clearInterval = clearTimeout  # noqa: N816 - JavaScript's name; as in JavaScript, either clears either


def queueMicrotask(callback: Any, /) -> None:
    """Call ``callback()`` as soon as the code running now yields (in the same object's event)."""
    if not callable(callback):
        raise JsException("TypeError", _NOT_FUNCTION.format("queueMicrotask"))
    asyncio.get_running_loop()  # no loop: RuntimeError, as before any job could run
    _enqueue(lambda: _run_job(callback))


def _run_job(callback: Callable[[], Any]) -> None:
    """A ``queueMicrotask`` job: ``callback()`` now, in the job queue's turn; what it returns, if
    awaitable, is awaited in a task (an ``async`` callback); what it raises is logged."""
    try:
        result = callback()
    except Exception as exc:
        if not getattr(exc, "durable_object_reset", False):
            log.error("durable: a js queueMicrotask callback raised", exc_info=exc)
        return
    if inspect.isawaitable(result):
        _spawn(_call(lambda: result, ()))


# ---------------------------------------------------------------------------------------------
# Promise

_PENDING, _FULFILLED, _REJECTED = "pending", "fulfilled", "rejected"
_Job = tuple[contextvars.Context, Callable[[], None]]


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, collections.deque[_Job]] = weakref.WeakKeyDictionary()
"""Each loop's job queue (JavaScript's microtask queue): one loop callback runs every job queued,
including those the jobs queue, before any other callback, timer or task step of the loop, as
JavaScript drains its microtasks before the next task (measured in workerd: a chain of three
``then`` runs before a ``setTimeout(cb, 0)`` set earlier, and a ``queueMicrotask`` callback
between the reactions queued before and after it)."""


def _enqueue(job: Callable[[], None]) -> None:
    """Run ``job`` as a JavaScript promise job: after the code running now yields, in order."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        job()  # no loop in this thread: nothing else could run it
        return
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = collections.deque()
    if not queue:
        loop.call_soon(_drain, loop, queue)
    queue.append((contextvars.copy_context(), job))  # each job in the context that queued it


def _drain(loop: asyncio.AbstractEventLoop, queue: collections.deque[_Job]) -> None:
    try:
        while queue:
            context, job = queue[0]
            try:
                context.run(job)
            except Exception as exc:  # a reaction catches its handler's errors: this is a bug
                loop.call_exception_handler({"message": "durable: a js promise job raised", "exception": exc})
            finally:
                queue.popleft()
    finally:
        if queue:  # a BaseException left jobs: they run in the next turn
            loop.call_soon(_drain, loop, queue)


def pending_timers() -> int:
    """How many ``setTimeout`` / ``setInterval`` timers are pending (for tests)."""
    return len(_timers)


def reset() -> None:
    """Cancel every pending timer (``uninstall()``: a test's loop is gone, and its timers with it)."""
    for timer in _timers.values():
        timer.handle.cancel()  # its object went with its runtime: nothing to unpin
    _timers.clear()


class _PromiseType(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError(f"js.Promise.{name} is not supported by durable (there is no JavaScript runtime)")


class Promise(JsPromise, metaclass=_PromiseType):
    """``js.Promise``: a JavaScript promise as Pyodide hands it to Python (a ``JsPromise``):
    awaitable, with ``then(on_fulfilled, on_rejected)``, ``catch(on_rejected)`` and
    ``finally_(callback)`` (Pyodide's spelling). A callback may be ``async``; its coroutine is
    awaited, as Pyodide turns it into a promise. Awaiting a rejected promise raises the reason
    when it is an exception, else a ``JsException`` carrying it."""

    def __init__(self) -> None:
        self._p_state = _PENDING
        self._p_value: Any = None
        self._p_reactions: list[Callable[[], None]] = []
        self._p_resolved = False  # resolve() or reject() was called: later calls do nothing

    def __repr__(self) -> str:
        return f"<js.Promise {self._p_state}>"

    # -- settling ------------------------------------------------------------------------------

    def _p_resolve(self, value: Any = None) -> None:
        if self._p_resolved:
            return
        self._p_resolved = True  # even while it follows another promise, as JavaScript's
        if value is self:
            self._p_settle(_REJECTED, JsException("TypeError", "Chaining cycle detected for promise #<Promise>"))
        elif isinstance(value, Promise):
            # JavaScript adopts a promise in a job of its own (NewPromiseResolveThenableJob), whose
            # then() queues the settling: two jobs later, not one (node: p2 = new Promise(r =>
            # r(p1)) settles after p1.then(a).then(b)'s b, before its c).
            _enqueue(lambda: value._p_react(lambda: self._p_settle(value._p_state, value._p_value)))
        elif inspect.isawaitable(value):
            future = asyncio.ensure_future(value)
            future.add_done_callback(self._p_from_future)
        else:
            self._p_settle(_FULFILLED, value)

    def _p_reject(self, reason: Any = None) -> None:
        if not self._p_resolved:
            self._p_resolved = True
            self._p_settle(_REJECTED, reason)

    def _p_from_future(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self._p_settle(_REJECTED, asyncio.CancelledError())
        elif future.exception() is not None:
            self._p_settle(_REJECTED, future.exception())
        else:
            self._p_settle(_FULFILLED, future.result())

    def _p_settle(self, state: str, value: Any) -> None:
        if self._p_state is not _PENDING:
            return
        self._p_state, self._p_value = state, value
        reactions, self._p_reactions = self._p_reactions, []
        for reaction in reactions:
            _enqueue(reaction)

    def _p_react(self, reaction: Callable[[], None]) -> None:
        if self._p_state is _PENDING:
            self._p_reactions.append(reaction)
        else:
            _enqueue(reaction)

    def _p_error(self) -> BaseException:
        value = self._p_value
        return value if isinstance(value, BaseException) else JsException("Error", str(value))

    # -- the JavaScript API --------------------------------------------------------------------

    @staticmethod
    def new(executor: Callable[..., Any], /) -> Promise:
        """``new Promise(executor)``: ``executor(resolve, reject)`` runs now; what it raises rejects."""
        if not callable(executor):
            raise JsException("TypeError", "Promise resolver is not a function")
        promise = Promise()
        try:
            executor(promise._p_resolve, promise._p_reject)
        except Exception as exc:
            promise._p_reject(exc)
        return promise

    @staticmethod
    def resolve(value: Any = None, /) -> Promise:
        """A promise fulfilled with ``value`` (``value`` itself if it is a promise; an awaitable is awaited)."""
        if isinstance(value, Promise):
            return value
        promise = Promise()
        promise._p_resolve(value)
        return promise

    @staticmethod
    def reject(reason: Any = None, /) -> Promise:
        """A promise rejected with ``reason``."""
        promise = Promise()
        promise._p_reject(reason)
        return promise

    @staticmethod
    def all(values: Iterable[Any], /) -> Promise:
        """Fulfilled with the list of results (an array) once all are; rejected with the first rejection."""
        items = [Promise.resolve(value) for value in values]
        result = Promise()
        results: list[Any] = [None] * len(items)
        left = len(items)
        if not items:
            result._p_resolve(JsList())

        def fulfil(i: int, value: Any) -> None:
            nonlocal left
            results[i], left = value, left - 1
            if left == 0:
                result._p_resolve(JsList(results))

        for i, item in enumerate(items):
            item.then(lambda value, i=i: fulfil(i, value), result._p_reject)
        return result

    @staticmethod
    def allSettled(values: Iterable[Any], /) -> Promise:
        """Fulfilled, once all settle, with ``{"status": "fulfilled", "value": v}`` or
        ``{"status": "rejected", "reason": r}`` for each."""
        from ._convert import JsDict

        def outcome(item: Promise) -> Promise:
            return item.then(
                lambda value: JsDict(status="fulfilled", value=value),
                lambda reason: JsDict(status="rejected", reason=reason),
            )

        return Promise.all([outcome(Promise.resolve(value)) for value in values])

    @staticmethod
    def race(values: Iterable[Any], /) -> Promise:
        """Settled as the first of ``values`` to settle."""
        result = Promise()
        for value in values:
            Promise.resolve(value).then(result._p_resolve, result._p_reject)
        return result

    def then(self, on_fulfilled: Any = None, on_rejected: Any = None, /) -> Promise:
        """A promise of what ``on_fulfilled(value)`` / ``on_rejected(reason)`` return (or raise)."""
        derived = Promise()

        def reaction() -> None:
            handler = on_fulfilled if self._p_state is _FULFILLED else on_rejected
            if not callable(handler):
                derived._p_settle(self._p_state, self._p_value)
                return
            try:
                derived._p_resolve(handler(self._p_value))
            except Exception as exc:
                derived._p_reject(exc)

        self._p_react(reaction)
        return derived

    def catch(self, on_rejected: Any = None, /) -> Promise:
        """``then(None, on_rejected)``."""
        return self.then(None, on_rejected)

    def finally_(self, on_finally: Any = None, /) -> Promise:
        """Call ``on_finally()`` when settled; the result keeps this promise's outcome."""
        derived = Promise()

        def reaction() -> None:
            try:
                result = on_finally() if callable(on_finally) else None
            except Exception as exc:
                derived._p_reject(exc)
                return
            if isinstance(result, Promise) or inspect.isawaitable(result):
                # JavaScript waits for the promise on_finally returns (an async callback's), and
                # rejects with its reason if it rejects; else the outcome is this promise's.
                Promise.resolve(result).then(
                    lambda _: derived._p_settle(self._p_state, self._p_value), derived._p_reject
                )
                return
            derived._p_settle(self._p_state, self._p_value)

        self._p_react(reaction)
        return derived

    def __await__(self) -> Generator[Any, None, Any]:
        if self._p_state is _PENDING:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()

            def done() -> None:
                if not waiter.done():
                    waiter.set_result(None)

            def wake() -> None:
                loop.call_soon_threadsafe(done)

            self._p_react(wake)
            yield from waiter.__await__()
        if self._p_state is _REJECTED:
            raise self._p_error()
        return self._p_value

    @property
    def pending(self) -> bool:
        """Whether the promise is not settled yet (for ``run_sync``; not a JavaScript name)."""
        return self._p_state is _PENDING
