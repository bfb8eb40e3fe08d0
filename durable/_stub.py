"""Stubs: the client side of a Durable Object, through which RPC calls and fetches are sent.

``await stub.increment(5)`` calls ``increment`` on the one live instance for the stub's id. Arguments
and results cross by copy (structured clone), as on Cloudflare. A stub that saw a reset error is
broken: later calls raise the same error, and ``namespace.get(id)`` gives a working stub.

Threads and other event loops: a runtime's objects run on one loop, the runtime's (the loop it
was opened or first used on). A call made on any other loop (``asyncio.run(stub.increment())``
in a worker thread) is forwarded to the runtime's loop, and its outcome comes back to the
caller's loop (:func:`_forward`). A call made where no loop runs returns a coroutine, which is
routed when it is awaited. If the runtime's loop has stopped or closed, the caller's loop becomes
the runtime's loop (it "adopts" the runtime), so a runtime used by one ``asyncio.run`` after
another keeps working; a forwarded call that had not started when the runtime's loop stopped is
withdrawn and routed again, so it is neither lost nor left waiting forever. A loop that took a
runtime over finishes, as its ``asyncio.run`` ends, the calls it runs for other threads
(:class:`_Forwarded`), and starts none after that (:class:`_LoopGuard`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import os
import sys
import threading
import time
import weakref
from asyncio import _get_running_loop
from asyncio import current_task as _current_task
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, final

from . import _context
from ._codec import ATOMIC_TYPES, Transfer, register_transfer
from ._context import running_host
from ._eager import CURRENT_TASKS
from ._exceptions import ConnectionClosedError, DurableError, copy_remote_exception, raised_by_handler
from ._gates import InputGate
from ._host import EventKind, ObjectHost, call_rpc, start_fetch
from ._http import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    Response,
    buffer_bodies,
    buffer_body,
    build_request,
    fetched,
    follows_redirects,
    has_streamed_body,
    plain_fetch_request,
    redirect_target,
    redirected_request,
    sent_url,
)
from ._id import DurableObjectId
from ._output_gate import PLAIN_FUTURES, reset_copy
from ._pipeline import NOT_PIPELINED, PipelinedCall, PipelinedMember, register_pipelining
from ._rpc_target import copy_params, dispose_all, register_promise_type, register_runtime_forwarding
from ._util import NoPublicConstructor, running_loop

if TYPE_CHECKING:
    from ._http import Request
    from ._namespace import Namespace
    from ._object import DurableObject
    from ._runtime import Runtime

__all__ = [
    "RpcMethod",
    "RpcPromise",
    "Stub",
    "call_forwarded",
    "deliver",
    "fetch_forwarded",
    "host_of",
    "on_runtime_loop",
    "on_runtime_thread",
    "pin_runtime_loop",
    "runtime_of",
]

T = TypeVar("T", bound="DurableObject")
T_co = TypeVar("T_co")

running = _context.running
"""The context variable of ``_context``, assigned, not imported, as in ``_storage`` (an imported
name's ``running.get()`` makes a bound method per call on CPython 3.11: about 480 instructions)."""


def _breaks_stub(exc: BaseException) -> bool:
    """Whether ``exc``, failing a call, breaks the stub that made it: a reset of the object, or
    durable's own overload or lost-connection error. Flags that the object's code set on an error
    of its own do not (workerd, measured: the same stub answers the next call), nor durable's errors
    that the object's code let through from its own calls (``raised_by_handler``)."""
    if raised_by_handler(exc):
        return False
    return bool(getattr(exc, "durable_object_reset", False)) or (
        isinstance(exc, DurableError) and (exc.overloaded or exc.retryable)
    )


def _check_bound(state: _StubState, host: ObjectHost) -> None:
    """Bind a stub (``state``, its state) to the generation its call reaches now, or raise if the one it reached before
    was reset.

    As in workerd (measured with miniflare 4, 2026-04-07): a stub that made a call to an instance
    stays bound to it, and once that instance is reset (``abort()`` from a timer or the alarm
    handler, a failed commit) every later call on the stub fails with the reset error, although
    none of its calls saw it. An eviction or a hibernation is not a reset: the stub goes on to the
    next instance.
    """
    bound = state.bound
    if bound is not None and (error := bound.broken_by) is not None and not isinstance(error, ConnectionClosedError):
        broken = state.broken = reset_copy(error)
        raise copy_remote_exception(broken)
    state.bound = host.gate


@final
class _StubState:
    """A stub's own state, in an object of its own, shared with the stub's ``RpcMethod`` objects.

    ``Stub`` has a ``__getattr__`` (the RPC method names), which puts every attribute read of a
    stub on CPython's slow path (``slot_tp_getattr_hook``, about 270 instructions a read on 3.11);
    reads of this object are specialized. An RPC call reads four of these fields, a fetch five:
    seq-noop 33,727 -> 32,623, seq-fetch 106,878 -> 106,140 instructions (callgrind, docs/performance.md,
    ninth pass).
    """

    __slots__ = ("bound", "broken", "host", "runtime")

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.broken: BaseException | None = None
        """The error that broke the stub (a reset, an overload): every later call raises a copy of it."""
        self.host: ObjectHost | None = None
        """The host its calls went to (a cache: replaced once detached)."""
        self.bound: InputGate | None = None
        """The gate of the generation the stub's last call reached (see ``_check_bound``)."""


@final
class Stub(Generic[T], metaclass=NoPublicConstructor):
    """A client for one Durable Object. Made by ``namespace.get(id)``; creates nothing by itself.

    Example::

        stub = counters.get_by_name("A")
        await stub.increment(5)                          # RPC
        resp = await stub.fetch("http://do/increment")   # HTTP handler
    """

    __slots__ = ("__dict__", "_link", "_namespace", "id")

    _how_to_get = ": use namespace.get(id) or namespace.get_by_name(name)"

    id: DurableObjectId
    _namespace: Namespace[Any]
    _link: _StubState

    def __init__(self, namespace: Namespace[Any], oid: DurableObjectId) -> None:
        object.__setattr__(self, "_namespace", namespace)
        object.__setattr__(self, "_link", _StubState(namespace.runtime))
        object.__setattr__(self, "id", oid)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"cannot set attribute {name!r} on a Durable Object stub")

    # A stub is a handle to one object: copying it (copy.deepcopy, dataclasses.asdict and replace()
    # of a structure holding one) gives the stub itself; copy's default, through __reduce_ex__,
    # failed in __setattr__ above. It cannot be pickled: it belongs to its runtime.
    def __copy__(self) -> Stub[T]:
        return self

    def __deepcopy__(self, memo: object) -> Stub[T]:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a Durable Object stub cannot be pickled: it belongs to its runtime; send str(stub.id) "
            "and use namespace.get(namespace.id_from_string(...)) on the other side"
        )

    def __repr__(self) -> str:
        return f"<durable.Stub {self.id!r}>"

    def __eq__(self, other: object) -> bool:
        # `counters.get_by_name("A") == counters.get(counters.id_from_name("A"))` (docs/api.md): stubs
        # of the same object compare equal (and hash alike); each keeps its own state (a broken one stays broken).
        if type(other) is not Stub:
            return NotImplemented
        return self.id == other.id and self._link.runtime is other._link.runtime  # ids carry the namespace

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def name(self) -> str | None:
        """The name the id was derived from, or ``None``."""
        return self.id.name

    def __getattr__(self, name: str) -> RpcMethod:
        # Called only for names the stub does not have. The RpcMethod made is kept in the
        # instance dict, where the next lookup finds it without coming here.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        method = self.__dict__[name] = RpcMethod(self, name)
        return method

    def _for_rpc(self) -> Stub[T]:
        """The receiver's stub when this one crosses RPC (as workerd allows): a fresh stub for the
        same object, so a reset that broke this one does not break it."""
        return Stub._create(self._namespace, self.id)

    def _host(self) -> ObjectHost:
        state = self._link
        host = state.host
        if host is None or host.detached:
            host = state.host = self._namespace.host(self.id)
        return host

    def _call(
        self, kind: EventKind, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        """The call as a coroutine; a call made by an object takes its output gate now.

        Made on another loop than the runtime's, or where no loop runs, the coroutine forwards
        the call to the runtime's loop when awaited.
        """
        loop = _get_running_loop()
        if loop is None or loop is not self._link.runtime.loop:
            if kind == "rpc":
                return _forward_rpc(RpcMethod(self, name), args, kwargs)
            return _forward(self._link.runtime, lambda: self._call(kind, name, args, kwargs), withdraw=False)
        caller = running_host()
        held = caller.before_outgoing() if caller is not None else None
        return self._send(caller, held, kind, name, args, kwargs)

    async def _send(
        self,
        caller: ObjectHost | None,
        held: asyncio.Future[None] | None,
        kind: EventKind,
        name: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        state = self._link
        if state.broken is not None:
            raise copy_remote_exception(state.broken)
        if held is not None:
            await held  # the caller's earlier writes are durable (raises the reset error if not)
        try:
            host = self._host()
            if host.gate is not state.bound:
                _check_bound(state, host)
            fut = host.invoke(kind, name, args, kwargs)
            host.output.flush_for(_current_task())  # the caller waits: its turn ends (OutputGate.flush_for)
            if fut.done() and _due_to_yield():
                await asyncio.sleep(0)  # settled at once: yield now and then (see _due_to_yield)
            result = await fut
        except BaseException as exc:
            if _breaks_stub(exc):
                state.broken = exc
            if caller is not None and caller.gate.must_wait():
                await caller.gate.wait()
            raise
        if caller is not None and caller.gate.must_wait():
            # A result is an event for the caller: it waits while the caller's gate is closed,
            # and behind the events that queued there first.
            await caller.gate.wait()
        return result

    def fetch(self, url_or_request: str | Request, **init: Any) -> Coroutine[Any, Any, Response]:
        """Send an HTTP request to the object's ``fetch`` handler; await it for the ``Response``.

        ``url_or_request`` is an absolute URL or a ``durable.Request``; ``init`` takes ``method``,
        ``headers`` and ``body``. A relative URL fails with ``TypeError``, as on Cloudflare.

        On the runtime's loop the request is sent at once, like an RPC call (Cloudflare's
        ``fetch`` promise): what is returned is a promise like an RPC call's (a
        :class:`_FetchPromise`, on which nothing pipelines, as workerd's fetch promise is no RPC
        promise), so ``asyncio.gather`` of many fetches makes no task per fetch and their writes share one commit (measured: 1000
        concurrent fetches of the seed counter went from about 24,000/s, one commit each, to
        the figure in docs/performance.md). A bad argument fails the promise, as a rejected
        fetch promise does. Called on another thread's loop, it forwards the request now and
        returns a promise too (as an RPC call there does: one never awaited runs, without a
        "never awaited" warning). Where no loop runs, it returns a coroutine that forwards the
        request when awaited. (Typed as a coroutine, as before: ``asyncio.create_task``,
        ``gather`` and ``run`` take either.)
        """
        state = self._link  # (read once: see _StubState)
        loop = _get_running_loop()
        if loop is None or loop is not state.runtime.loop:
            if loop is not None and (home := _runtime_loop(state.runtime, loop)) is not None:
                return _forwarded(loop, self, self._fetch_forwarded(url_or_request, init, home), fetch=True)
            coro = self._fetch_elsewhere(url_or_request, init)
            return coro if loop is not None else _named_for_no_loop(coro, "stub.fetch(...)")
        # Made without loop=: the running loop is the one a Future takes when given none, and the
        # keyword made a dict and its parsing at each call (2,651 -> 1,852 instructions
        # per construction, callgrind, thirteenth pass).
        promise = _FetchPromise()
        promise._stub = self
        promise._host = None
        if CLOSE_PER_PROMISE:  # (as RpcMethod.__call__'s promise)
            promise.close = _close
        # stub.fetch(url), a GET with no header nor body, keeps only its URL (a str, which the
        # garbage collector does not track) until the response is in: holding the Request, its
        # Headers and their list until the commit that releases the response (one per 1000 fetches
        # gathered) made the garbage collector walk them at each collection: conc-fetch
        # 102,408 -> 101,596 instructions per fetch (callgrind, benchmarks/instructions.sh, bench_rpc.py).
        plain = not init and type(url_or_request) is str
        try:
            if plain and (request := plain_fetch_request(url_or_request)) is not None:  # type: ignore[arg-type]
                promise._sent = url_or_request  # (the common call: it follows redirects)
                promise._follows = True
            else:
                request = build_request(url_or_request, init)
                promise._sent = url_or_request if plain else request
                # follows_redirects(request), inlined (a call is ~500 of a fetch's ~110,000 instructions)
                promise._follows = request.redirect == "follow"
                request.redirect = "manual"  # what the object sees in workerd
        except Exception as exc:  # a relative URL, a bad option: the promise is rejected
            promise.set_exception(exc)
            return promise  # a promise is taken as a coroutine (_let_tasks_take_promises)
        broken = state.broken
        if broken is not None:
            promise.set_exception(copy_remote_exception(broken))
        elif running.get() is not None:
            # Sent by an object: its output gate and input gate apply (Stub._call), so the fetch
            # runs as a task of its own, which the promise follows (as RpcMethod.__call__ does).
            promise._follow(loop.create_task(self._call("fetch", "fetch", (request,), {})))
        else:
            # From outside any object (a Worker, the ASGI front, a test): the event starts here
            # (ObjectHost.invoke), and awaiting the promise commits at once (RpcPromise.__await__).
            # This skips the _call/_send coroutines: about 2 us of the 26 us an in-memory fetch took.
            try:
                host = state.host
                if host is None or host.detached:
                    host = self._host()
                if host.gate is not state.bound:
                    _check_bound(state, host)
                start_fetch(host, request, promise)  # (host.call_fetch(request, promise), a frame less)
                promise._host = host
            except Exception as exc:  # a closed runtime, an overloaded object
                promise.set_exception(exc)
        return promise

    def _fetch_forwarded(
        self, input: str | Request, init: dict[str, Any], home: asyncio.AbstractEventLoop
    ) -> Coroutine[Any, Any, Response]:
        """``fetch`` made on a loop of another thread than the runtime's (``home``): sent now, as
        on the runtime's loop, so that a caller that stops waiting does not withdraw it; one
        whose body streams on this loop is sent once it is read (``_send_from``)."""
        try:
            request = build_request(input, init)
        except Exception:
            return self._fetch_elsewhere(input, init)  # (raises the same when awaited)

        def make() -> Awaitable[Response]:
            return self._fetch_buffered(request)

        return _send_from(self._link.runtime, make, home, request if has_streamed_body(request) else None)

    async def _fetch_elsewhere(self, input: str | Request, init: dict[str, Any]) -> Response:
        """``fetch`` made on another loop than the runtime's, or where no loop ran when it was called."""
        request = build_request(input, init)
        if running_loop("stub.fetch()") is not self._link.runtime.loop:
            # Forwarded to the runtime's loop: bodies are read on the loop that streams them.
            await buffer_body(request)
            return await _forward(self._link.runtime, lambda: self._fetch_buffered(request), withdraw=False)  # type: ignore[no-any-return]
        return await self._fetch_following(request)

    async def _fetch_buffered(self, request: Request) -> Response:
        """``fetch`` on the runtime's loop, with the response body read there (for another loop)."""
        response = await self._fetch_following(request)
        await buffer_body(response)
        return response

    async def _fetch_following(self, request: Request) -> Response:
        """Send ``request`` (from ``build_request``) and follow the redirects it answers, if it may."""
        follow = follows_redirects(request)
        response: Response = await self._call("fetch", "fetch", (request,), {})
        target = redirect_target(request, response) if follow else None
        if target is None:
            fetched(response, request)
            return response
        return await _follow_redirects(self, request, response, target)


register_transfer(
    Stub,
    Transfer(
        Stub._for_rpc,
        "A stub can be an RPC argument or result but not a stored value: store str(stub.id) and get it "
        "back with namespace.get(namespace.id_from_string(text))",
    ),
)


@final
class RpcMethod:
    """``stub.name``: call it to invoke the method, or await it to read a property."""

    __slots__ = ("_link", "_name", "_stub")

    def __init__(self, stub: Stub[Any], name: str) -> None:
        self._stub = stub
        self._name = name
        self._link = stub._link  # (read per call: see _StubState)

    def __repr__(self) -> str:
        return f"<durable.RpcMethod {self._name} of {self._stub!r}>"

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # (a keyword named self reaches the method)
        """Make the call now and return its :class:`RpcPromise` (await it for the result).

        Arguments are copied (structured clone) at once. As on Cloudflare, the call runs whether
        or not the promise is awaited. Called where no event loop runs, it returns a coroutine
        instead, which makes the call when awaited (``asyncio.run(stub.increment())``). Arguments
        that cannot be copied (``DataCloneError``) fail the promise, not the call itself, as
        workerd rejects the call's promise: the method does not run.
        """
        received = None  # stubs made for functions and RpcTargets in the arguments (_rpc_target)
        if kwargs:
            # One copy of all the arguments, as workerd makes, so that a value passed both
            # positionally and by keyword arrives as one object.
            try:
                args, kwargs, received = copy_params(args, kwargs)
            except Exception as exc:
                return _refused(self._stub, exc)
        elif args:
            # clone() returns a tuple of atomic values as it is: tested here first, without its
            # two calls and memo dict (docs/performance.md: a call with two such arguments).
            for arg in args:
                if type(arg) not in ATOMIC_TYPES:
                    try:
                        args, kwargs, received = copy_params(args, kwargs)
                    except Exception as exc:
                        return _refused(self._stub, exc)
                    break
        stub = self._stub
        state = self._link
        loop = _get_running_loop()
        if loop is None:
            return _named_for_no_loop(stub._call("rpc", self._name, args, kwargs), f"stub.{self._name}(...)")
        if loop is not state.runtime.loop and (home := _runtime_loop(state.runtime, loop)) is not None:
            # Another thread's loop runs the runtime: forwarded, see the module docstring.
            return _forwarded(loop, stub, _forward_rpc(self, args, kwargs, home))
        # Made without loop=, as Stub.fetch's promise is: the running loop is the one a Future
        # takes when given none, and the keyword costs a dict and its parsing per call.
        promise = RpcPromise()
        promise._stub = stub
        promise._host = None
        if CLOSE_PER_PROMISE:
            promise.close = _close
        if received is not None:  # workerd disposes them when the call ends (_rpc_target)
            dispose_all(received, promise)
        broken = state.broken
        if broken is not None:
            promise.set_exception(copy_remote_exception(broken))
        elif running.get() is not None:
            # A call made by an object: its output gate and input gate apply (Stub._call), so it
            # runs as a task of its own, which the promise follows.
            promise._follow(loop.create_task(stub._call("rpc", self._name, args, kwargs)))
        else:
            try:
                host = state.host
                if host is None or host.detached:
                    host = stub._host()
                if host.gate is not state.bound:
                    _check_bound(state, host)
                call_rpc(host, self._name, args, kwargs, promise)  # (not the method: a frame less, see there)
                promise._host = host
            except Exception as exc:  # a closed runtime, an overloaded object
                promise.set_exception(exc)
        return promise

    def _start_forwarded(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RpcPromise:
        """Make the call on the runtime's loop for a caller on another loop, which waits: commit at once."""
        promise: RpcPromise = self(*args, **kwargs)
        if (host := promise._host) is not None:
            host.output.flush_now()
        return promise

    def __await__(self) -> Generator[Any, None, Any]:
        return self._stub._call("get", self._name, (), {}).__await__()


YIELD_EVERY = 64
"""Awaits of already-settled calls in a row after which the awaiting task yields to the loop once."""

_unyielded = 0
"""Awaits of already-settled calls since the last suspension (any thread: it only paces yields)."""

_tasks_get = CURRENT_TASKS.get if CURRENT_TASKS is not None else None
"""Python 3.11: the current task in two C calls (``_tasks_get(_get_running_loop())``), where its
``asyncio.current_task()`` is a Python function; None on 3.12+, whose ``current_task()`` is C.
Only with a running loop: without one, ``current_task()`` raises ``RuntimeError``, and so must
the await (``_tasks_get(None)`` would answer None)."""

_unyielded_by: object = None
"""The task seen at the last YIELD_EVERY-th await. There the running task yields only if it is
that task too; otherwise it becomes that task, and the count goes on from YIELD_EVERY minus
_RECHECK_AFTER. So tasks that each await one settled call in the same loop turn
(``asyncio.gather`` of calls) do not yield: the one that did would see its result after the calls
made after it, where workerd delivers the results of concurrent calls in call order. A task
awaiting call after call still yields once every YIELD_EVERY awaits (the first time after at most
YIELD_EVERY + _RECHECK_AFTER). Asking for the task only there keeps the usual await as cheap as
before (asking at every await cost about 570 instructions per call, callgrind, ``bench_rpc.py
--only seq-noop``)."""

_RECHECK_AFTER = 8


def _due_to_yield() -> bool:
    """Count an await of a call that settled without suspending; True when it is time to yield.

    A loop of such awaits (``for ...: await stub.increment()`` on an object that only uses
    storage) would otherwise never let another task run: no request, timer or alarm of the
    runtime's loop, and no eviction's cleanup. Yielding once every YIELD_EVERY calls keeps the
    loop fair for a cost of about one loop turn per YIELD_EVERY calls (measured with
    ``benchmarks/bench_storage.py``'s sequential figure; tests/test_threads.py proves the
    fairness).
    """
    global _unyielded
    _unyielded += 1
    return _unyielded >= YIELD_EVERY and _same_task()


def _same_task() -> bool:
    """At the YIELD_EVERY-th await in a row: whether the running task should yield (see
    ``_unyielded_by``); restarts the count."""
    global _unyielded, _unyielded_by
    task = _current_task() if _tasks_get is None or (loop := _get_running_loop()) is None else _tasks_get(loop)
    if task is _unyielded_by:
        _unyielded = 0
        return True
    _unyielded_by = task
    _unyielded = YIELD_EVERY - _RECHECK_AFTER
    return False


_future_done = asyncio.Future.done
"""``Future.done``, called as a function on a promise (``RpcPromise`` does not override it): a
promise's own method lookups are not specialized by CPython 3.11 (an instance whose ``__dict__`` slot
is empty), so ``promise.done()`` took about 80 instructions more (a loop of calls, callgrind)."""

_future_result = asyncio.Future.result
"""``Future.result`` as a function: a promise's own attribute reads go through its ``__getattr__``
hook (promise pipelining), which on CPython 3.11 costs a bound method per method read."""

_future_get_loop = asyncio.Future.get_loop

_future_await = asyncio.Future.__await__
"""asyncio's ``Future.__await__`` (C): an iterator of the future, finished at once when it is settled."""


class _Promise(asyncio.Future[Any]):
    """What the promises of calls and fetches share (:class:`RpcPromise`, :class:`_FetchPromise`):
    the awaiting, settling and coroutine protocol, without promise pipelining's ``__getattr__``.

    A fetch's promise is not an ``RpcPromise`` since it stopped inheriting that ``__getattr__``
    (workerd's ``stub.fetch()`` returns a plain Promise: nothing pipelines on it). On CPython 3.11
    a class-level ``__getattr__`` puts every attribute read of an instance on the slow path
    (``slot_tp_getattr_hook``: no specialized ``LOAD_ATTR``/``LOAD_METHOD``, a bound method per
    method read), the ``asyncio.gather`` reads of each fetch's promise too: without it, conc-fetch
    74,273 -> 70,712 instructions per fetch, seq-fetch 81,790 -> 81,478 (callgrind,
    ``benchmarks/instructions.sh``, docs/performance.md, "Promise pipelining").

    Its methods are copied into both classes (``_share_promise_methods``), which derive from
    ``asyncio.Future`` directly (``_PromiseBase``): type checkers see ``_Promise`` as their base,
    the runtime does not. A class more in ``RpcPromise``'s MRO cost about 105 instructions per
    concurrent call (conc-increment 58,265 -> 58,370, main with an empty base added; 58,382 with
    this class as a real base, 58,297 flat), so the methods use no ``super()``
    (``_future_set_exception``).
    """

    __slots__ = ()  # (the two fields are slots of each class: see RpcPromise)

    _stub: Stub[Any] | None
    """The stub that made the call (None for a call on a callback or target stub)."""
    _host: ObjectHost | None
    """The object the call went to directly (not set for calls made by an object)."""

    def __await__(self) -> Generator[Any, None, Any]:
        if (host := self._host) is not None and (output := host.output).batch is not None:
            # The caller waits for the result, so the call's turn is over: its writes commit now,
            # not a loop turn later, and a failed commit is seen before the caller goes on;
            # unless other tasks wait on the object in this turn too: then they share the commit
            # at the end of the turn (OutputGate.flush_for).
            # The current task in two C calls on 3.11, whose asyncio.current_task() is a Python
            # function (_tasks_get): seq-increment 82,443 -> 81,458 instructions (callgrind, tenth pass).
            # Without a running loop (a thread driving the await by hand), current_task() raises
            # "no running event loop", as it does on 3.12+; _tasks_get(None) would answer None and
            # commit the object's writes from that thread (review-perf).
            # On another thread's loop (a settled promise handed there: a pending one fails
            # there anyway, "attached to a different loop"), nothing is committed: the commit
            # stays the runtime's loop's, at the end of its turn (step_done scheduled it), and
            # the database is not used from two threads. One identity test, on this path only
            # (after the batch check), true first in the common case.
            loop = _get_running_loop()
            if loop is host.runtime.loop or loop is None:
                output.flush_for(_current_task() if _tasks_get is None or loop is None else _tasks_get(loop))
        if _future_done(self):
            # Settled without suspending (no I/O in the call): the caller goes on without
            # yielding to the loop, except now and then (_due_to_yield, inlined).
            global _unyielded
            _unyielded += 1
            if _unyielded >= YIELD_EVERY and _same_task():
                return self._result_next_turn()
            # asyncio's own iterator of a settled future, which the await finishes at once with
            # result() (or its error), where this method was a generator stepped to its return:
            # seq-noop 28,184 -> 27,815 instructions (callgrind, thirteenth pass, docs/performance.md).
            return _future_await(self)
        return _Promise._result_when_settled(self)  # (through the class: see RpcPromise.__getattr__)

    def _result_next_turn(self) -> Generator[Any, None, Any]:
        yield None  # what asyncio.sleep(0) yields: the task runs again on the next turn
        return _future_result(self)

    def _result_when_settled(self) -> Generator[Any, None, Any]:
        self._asyncio_future_blocking = True
        try:
            yield self  # as Future.__await__: the task waits for this future
        except BaseException as exc:
            # The task throws a failed future's error in here (Python 3.12's eager event tasks):
            # the error is a result too, and waits at the gate below. Anything else (the awaiting
            # task cancelled) goes on at once.
            if not self.done() or self.cancelled() or self.exception() is not exc:
                raise
        if (caller := running_host()) is not None and caller.gate.must_wait():
            # Awaited in an object: the result reaches its code as an event, which waits at the
            # gate now, when the code would resume. The call's own task checked the gate when
            # the call ended, but another event of the object may have closed it since (found
            # by tests/differential/interleave.py, measured with miniflare 4.20260426).
            yield from caller.gate.wait().__await__()
        return _future_result(self)

    def set_exception(self, exception: type | BaseException, /) -> None:
        # A reset or overload error breaks the stub that made the call, awaited or not.
        if isinstance(exception, BaseException) and _breaks_stub(exception) and (stub := self._stub) is not None:
            state = stub._link
            if state.broken is None:
                state.broken = exception
        _future_set_exception(self, exception)  # (no super(): see _Promise)
        self._log_traceback = False  # an un-awaited call's error is dropped, as on Cloudflare

    def _follow(self, task: asyncio.Future[Any]) -> None:
        """Settle with ``task``'s outcome (a task's, or a pipelined call's promise); cancelling
        this promise cancels it."""
        task.add_done_callback(self._settle_from)
        self.add_done_callback(lambda promise: task.cancel() if promise.cancelled() else None)

    def _settle_from(self, task: asyncio.Future[Any]) -> None:
        if self.done():
            return
        if task.cancelled():
            self.cancel()
        elif (exc := task.exception()) is not None:
            _future_set_exception(self, exc)  # Stub._call already marked the stub broken if it must be
            self._log_traceback = False
        else:
            self.set_result(task.result())

    # -- the coroutine protocol, so that create_task() and TaskGroup take a promise ---------------
    # asyncio.Task steps what it runs with send() and throw(), defined here. close() is not in
    # the class: a class that defines send, throw and close is a collections.abc.Coroutine, and
    # asyncio.wait() refuses coroutines. Each promise gets its close() as an instance attribute
    # instead, where that check does not look (TaskGroup.create_task of Python 3.13 closes a
    # coroutine it refuses). These were all reached through a class-level __getattr__ before,
    # which put every attribute read of a promise, asyncio's too, on CPython's slow path:
    # 82,879 -> 80,354 instructions per concurrent increment (callgrind, docs/performance.md).

    close: Callable[[], None]
    """Does nothing (set on each promise where asyncio may call it: see CLOSE_PER_PROMISE); the
    call goes on, as an un-awaited call does."""

    def send(self, value: Any, /) -> Any:
        """Step the promise as a coroutine (``asyncio.Task``): wait for it, or return its result."""
        if not self.done():
            self._asyncio_future_blocking = True
            return self  # what Future.__await__ yields: the task waits for this future
        raise StopIteration(self.result())

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        """Raise what a task throws in (its cancellation) out of the promise's "coroutine"."""
        raise typ if val is None else val


_future_set_exception = asyncio.Future.set_exception

if TYPE_CHECKING:
    _PromiseBase = _Promise
else:
    _PromiseBase = asyncio.Future  # (see _Promise)


_CLASS_RECORDS = frozenset(
    {"__module__", "__qualname__", "__doc__", "__annotations__", "__orig_bases__", "__slots__", "__dict__"}
    | {"__weakref__", "__firstlineno__", "__static_attributes__", "__annotate__", "__annotate_func__"}
    | {"__annotations_cache__"}
)
"""What a ``class`` statement records in the class's namespace about the class itself: not shared."""


def _share_promise_methods(cls: type, shared: type = _Promise) -> None:
    """Give ``cls`` (a direct subclass of ``asyncio.Future``) what ``shared`` (:class:`_Promise`)
    defines and ``cls`` does not: its methods (dunders such as ``__await__`` too), properties,
    class attributes. ``tests/test_fast_paths.py`` checks that both promise classes hold the same
    objects, with one override (``_FetchPromise._settle_from``).

    Raises:
        TypeError: ``shared`` has slots (their descriptors would not apply to ``cls``'s instances),
            or a method of it uses ``super()`` (its ``__class__`` would be ``shared``, not ``cls``,
            failing only when that method runs).
    """
    if vars(shared).get("__slots__", ()):
        raise TypeError(f"{shared.__name__} may have no slots: they would not be {cls.__name__}'s")
    for name, value in vars(shared).items():
        if name in _CLASS_RECORDS or name in vars(cls):
            continue
        function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if "__class__" in getattr(getattr(function, "__code__", None), "co_freevars", ()):
            raise TypeError(f"{shared.__name__}.{name} uses super() or __class__: not shareable with {cls.__name__}")
        setattr(cls, name, value)


class RpcPromise(_PromiseBase):
    """The pending result of an RPC call: what ``stub.method(...)`` returns (Cloudflare's "RPC promise").

    The call is already made when you get it; ``await`` it for the result, or hand it to
    ``asyncio.gather``, ``asyncio.wait``, ``asyncio.wait_for``, ``asyncio.create_task`` or a
    ``TaskGroup``: it is an ``asyncio.Future`` that ``asyncio.Task`` also takes as a coroutine (see
    ``_let_tasks_take_promises``). A call nobody awaits still runs to completion, and its error,
    if any, is dropped, as on Cloudflare. Calls and property reads pipeline on it (``__getattr__``).
    """

    # Slots for the two fields, set by whoever makes a promise: about 740 of the ~99,000
    # instructions of a sequential in-memory increment against an instance dict (callgrind,
    # docs/performance.md). The dict every Future can have holds only close() (see _Promise).
    __slots__ = ("_host", "_stub")

    def __getattr__(self, name: str) -> PipelinedMember:
        """``promise.name``: ``name`` of the call's eventual result, pipelined (see ``_pipeline``):
        call it (``await stub.get_counter(5).inc(1)``) or await it (``await stub.get_config().name``).

        Only for names the promise lacks: a Future's own (``result``, ``done``, ``add_done_callback``,
        ``_asyncio_future_blocking``...) keep their meaning, and names starting with ``_`` (the
        dunders that copy, pickle and ``hasattr()`` probe) and those in ``NOT_PIPELINED`` (what
        asyncio and inspect probe a coroutine for) stay attribute errors.
        """
        if name.startswith("_") or name in NOT_PIPELINED:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return PipelinedMember(self, (name,))


def _close() -> None:
    pass


def _promise_on(loop: asyncio.AbstractEventLoop) -> RpcPromise:
    """The promise of a call on a callback or target stub (``_rpc_target``): an ``RpcPromise``,
    so that calls and reads pipeline on it (workerd: ``cb(5).inc(2)`` in the receiver)."""
    promise = RpcPromise(loop=loop)
    promise._stub = None
    promise._host = None
    if CLOSE_PER_PROMISE:
        promise.close = _close
    return promise


def _pipelined_promise(source: RpcPromise, call: PipelinedCall) -> RpcPromise:
    """The promise of a call pipelined on ``source`` (``_pipeline``), on the running loop: it
    follows a task that runs ``call``, or fails with it (an argument that cannot be copied), or
    follows what ``call`` returns once called with ``source``'s result (see ``_dispatch``)."""
    loop = _get_running_loop()
    if loop is None:
        if isinstance(call, Coroutine):
            call.close()
        raise RuntimeError(
            "a pipelined call (promise.name(...)) needs a running event loop: make it where the "
            "promise was made, or await the promise and call its result"
        )
    promise = RpcPromise()
    promise._stub = source._stub
    promise._host = None
    if CLOSE_PER_PROMISE:
        promise.close = _close
    if isinstance(call, Exception):
        promise.set_exception(call)
    elif isinstance(call, Coroutine):
        promise._follow(loop.create_task(call))
    elif _future_get_loop(source) is not loop:  # (awaiting it raises asyncio's "different loop")
        promise._follow(loop.create_task(_call_when_in(source, call)))
    elif _future_done(source):
        _dispatch(promise, call, source)
    else:
        source.add_done_callback(functools.partial(_dispatch, promise, call))
    return promise


def _dispatch(promise: RpcPromise, call: Callable[[Any], Any], source: asyncio.Future[Any]) -> None:
    """Make a pipelined call on ``source``'s result, now that it is in: in the order the calls
    were pipelined, before the code that awaited ``source`` resumes (workerd, miniflare
    4.20260426: ``q = p.inc(1); c = await p; c.inc(10)`` runs inc1 then inc10), and without a
    task awaiting ``source``, whose cancellation would cancel it."""
    if _future_done(promise):
        return  # cancelled before the first call's result came
    if source.cancelled():
        promise.cancel()
        return
    if (exc := source.exception()) is not None:
        promise.set_exception(exc)  # (the same error: see _pipeline)
        return
    try:
        result = call(_future_result(source))
    except StopIteration as stop:
        # A Future refuses it, and raised here (a done callback) it would only be logged, the
        # promise left pending: it fails as a longer path's task does (PEP 479).
        error = RuntimeError("pipelined call raised StopIteration")
        error.__cause__ = stop
        promise.set_exception(error)
        return
    except Exception as error:
        promise.set_exception(error)
        return
    except asyncio.CancelledError:
        promise.cancel()  # as a longer path's task is, where asyncio would log it and go on
        return
    if isinstance(result, asyncio.Future):
        promise._follow(result)
    elif inspect.isawaitable(result):
        promise._follow(_future_get_loop(promise).create_task(_awaited(result)))
    else:
        promise.set_result(result)


async def _call_when_in(source: RpcPromise, call: Callable[[Any], Any]) -> Any:
    result = call(await source)
    return await result if inspect.isawaitable(result) else result


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _refused(stub: Stub[Any], exc: Exception) -> Any:
    """The promise of a call whose arguments could not be copied: failed with ``exc``.

    workerd (miniflare 4, 2026-04-07) rejects the promise: ``stub.echo(Symbol())`` returns, and
    awaiting it raises ``DataCloneError`` (as a call over 32 MiB raises its ``Error``).
    """
    if _get_running_loop() is None:
        return _raise(exc)
    promise = RpcPromise()
    promise._stub = stub
    promise._host = None
    if CLOSE_PER_PROMISE:
        promise.close = _close
    promise.set_exception(exc)
    return promise


async def _raise(exc: Exception) -> NoReturn:
    raise exc


CLOSE_PER_PROMISE = sys.version_info >= (3, 13)
"""Whether a call's promise gets its ``close()``: only where asyncio calls it (3.13's
``TaskGroup.create_task`` closes a coroutine it refuses; 3.11's and 3.12's asyncio never call
``close()`` on what a task runs). Setting it makes each promise's instance dict: on 3.11 it cost
about 1,200 instructions per call (``seq-noop`` 31,798 -> 30,615, callgrind, tenth pass)."""


_future_set_result = asyncio.Future.set_result


class _FetchPromise(_PromiseBase):
    """The promise ``stub.fetch`` returns: the response says which URL it answers, and a redirect
    is followed when the request's ``redirect`` is ``"follow"``, as workerd's fetch does.

    A response that is no redirect settles it with asyncio's own ``set_result``: only one with a
    redirect status makes it a :class:`_RedirectedFetch` first (``_redirecting``), whose
    ``set_result`` may follow it. Without a Python ``set_result`` on every promise: seq-fetch
    96,509 -> 95,586 and conc-fetch 90,835 -> 89,962 instructions (callgrind, eleventh pass).

    Not an :class:`RpcPromise`: nothing pipelines on it, as workerd's ``stub.fetch()`` returns a
    plain Promise (measured with miniflare 4.20260426: ``stub.fetch(url).status`` is undefined),
    and it has no ``__getattr__`` (see :class:`_Promise`). A ``Response``'s names read on it
    (``promise.status``, forgetting the ``await``) say so (``_NotOnFetchPromise``); other names
    are Python's usual ``AttributeError``.
    """

    __slots__ = ("_follows", "_host", "_sent", "_stub")

    _sent: Request | str | None
    """The request sent (only the URL given to a plain ``stub.fetch(url)``, see Stub.fetch), until a
    redirect's response is in (``None`` once it settles the promise)."""
    _follows: bool

    def _redirecting(self) -> None:
        """The response about to settle this promise has a redirect status: it settles through
        ``_RedirectedFetch.set_result``, which follows it if it may. Called by the host that
        delivers the response (``_host._redirect_answered``), or by ``_settle_from``.

        (The class changes, not a flag tested at every settle: both classes have the same slots.)
        Named with a ``_``: ``redirected`` is a ``Response``'s, and ``stub.fetch(url).redirected``
        (the ``await`` forgotten) was this bound method, always true, not the "await it first"
        ``AttributeError`` of the other names.
        """
        self.__class__ = _RedirectedFetch

    def _settle_from(self, task: asyncio.Future[Any]) -> None:
        # A fetch made by an object: its response comes from the task that sent it.
        if not self.done() and not task.cancelled() and task.exception() is None:
            result = task.result()
            if isinstance(result, Response) and result.status in REDIRECT_STATUSES:
                self._redirecting()
        _Promise._settle_from(self, task)  # (no super(): see _Promise)


_share_promise_methods(RpcPromise)
_share_promise_methods(_FetchPromise)


class _NotOnFetchPromise:
    """A ``Response``'s attribute name (``status``, ``text``...) on the promise of ``stub.fetch()``:
    reading it raises an ``AttributeError`` that says to await the promise first.

    The error ``_FetchPromise.__getattr__`` gave for every public name, given by a descriptor per
    name instead: a class with a ``__getattr__`` has every attribute read on CPython 3.11's slow
    path, asyncio's reads of the promise too (see :class:`_Promise`)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        name = self._name
        raise AttributeError(
            f"the promise of stub.fetch() has no attribute '{name}': it is not an RPC promise (as "
            f"on Cloudflare, where fetch() returns a plain Promise), so nothing is pipelined on it: "
            f"await it first, (await stub.fetch(...)).{name}"
        )


for _name in dir(Response):
    if not _name.startswith("_") and not hasattr(_FetchPromise, _name):  # (a Future's own names stay)
        setattr(_FetchPromise, _name, _NotOnFetchPromise(_name))
del _name


@final
class _RedirectedFetch(_FetchPromise):
    """A :class:`_FetchPromise` whose response has a redirect status (see ``_redirecting``)."""

    __slots__ = ()

    def set_result(self, result: Any, /) -> None:
        # Future.set_result called directly, not through super(). With follows_redirects inlined
        # in Stub.fetch, this took seq-fetch from 113,438 to 110,804 instructions (callgrind, bench_rpc.py, docs/performance.md).
        request = self._sent
        if request is not None and isinstance(result, Response):
            self._sent = None
            if self._follows and result.status in REDIRECT_STATUSES:
                if isinstance(request, str):  # stub.fetch(url): the same GET, built again to resend
                    request = build_request(request)
                    request.redirect = "manual"
                try:
                    target = redirect_target(request, result)
                except TypeError as exc:
                    self.set_exception(exc)
                    return
                if target is not None:  # the rest is a task of its own, which the promise follows
                    stub = self._stub
                    assert stub is not None  # (a fetch's promise has its stub)
                    self._follow(self.get_loop().create_task(_follow_redirects(stub, request, result, target)))
                    return
            # (its url was set on the object's side, by check_response, which had the request)
        _future_set_result(self, result)


async def _follow_redirects(stub: Stub[Any], request: Request, response: Response, target: str) -> Response:
    """Follow ``response``, a redirect to ``target`` answering ``request``, to the final response.

    As workerd does: every hop goes to the same object (a stub's fetch always does), up to
    MAX_REDIRECTS of them; the final response has ``redirected`` set and ``url`` its request's.

    Raises:
        TypeError: ``Too many redirects.`` and the URLs requested (workerd's text); an invalid
            ``Location``; a streamed body to send again.
    """
    urls = [sent_url(request)]  # (workerd lists the first URL with its credentials too)
    while True:
        if len(urls) > MAX_REDIRECTS:
            raise TypeError("Too many redirects." + ", ".join(urls))
        request = redirected_request(request, response.status, target)
        urls.append(target)
        response = await stub._call("fetch", "fetch", (request,), {})
        next_target = redirect_target(request, response)
        if next_target is None:
            fetched(response, request, redirected=True)
            return response
        target = next_target


def _let_tasks_take_promises(promise_type: type[_Promise] = RpcPromise) -> bool:
    """Make ``asyncio.Task`` take a ``promise_type`` (a :class:`_Promise` class) as its
    coroutine; True if it now does. The C ``Task``'s cache holds exact types: each class of
    promise (``_FetchPromise`` too) is introduced on its own.

    ``asyncio.wait()`` refuses what ``asyncio.coroutines.iscoroutine()`` accepts, and
    ``asyncio.Task`` (``create_task``, ``TaskGroup``) requires it, so one type cannot please both
    through that function. But CPython's C ``Task`` (``Modules/_asynciomodule.c``,
    ``is_coroutine()``, 3.11 to 3.13) first looks the type up in a cache of its own, to which it
    adds every type that ``iscoroutine()`` accepted once. So ``iscoroutine()`` is told, for the
    making of one throwaway task, that ``RpcPromise`` is a coroutine type (through its own type
    cache), and then told no longer. Where that does not take (a pure-Python ``Task``), the type
    is registered as a ``Coroutine`` instead: ``create_task`` keeps working and ``asyncio.wait``
    refuses promises. ``tests/test_threads.py::TestAsyncioInterop`` proves both behaviours.
    """
    cache: set[type] | None = getattr(asyncio.coroutines, "_iscoroutine_typecache", None)
    loop = asyncio.new_event_loop()
    try:
        if isinstance(cache, set):
            cache.add(promise_type)
            try:
                with contextlib.suppress(TypeError):
                    _throwaway_task(loop, promise_type)
            finally:
                cache.discard(promise_type)
        try:
            _throwaway_task(loop, promise_type)  # taken without iscoroutine()'s help?
        except TypeError:
            Coroutine.register(promise_type)
            return False
        return not asyncio.iscoroutine(promise_type(loop=loop))
    finally:
        loop.close()


def _throwaway_task(loop: asyncio.AbstractEventLoop, promise_type: type[_Promise]) -> None:
    promise = promise_type(loop=loop)
    promise._host = None
    promise.close = _close
    task = asyncio.Task(promise, loop=loop)
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # never run: its loop closes next
    promise.cancel()


# (and stub.fetch's promises, refused by create_task() before: "a coroutine was expected")
TASKS_TAKE_PROMISES = (
    _let_tasks_take_promises() & _let_tasks_take_promises(_FetchPromise) & _let_tasks_take_promises(_RedirectedFetch)
)
"""Whether asyncio.Task takes promises while asyncio.wait does too (see _let_tasks_take_promises)."""


def _show_promises_in_tasks() -> None:
    """Let asyncio show a task that runs a promise: its repr (and so its "Task exception was never
    retrieved" and "Task was destroyed but it is pending!" messages) names the coroutine through
    ``asyncio.coroutines._format_coroutine``, which asserts ``iscoroutine()``, false for a promise
    (see ``_let_tasks_take_promises``): ``repr(asyncio.create_task(promise))`` raised
    ``AssertionError`` on 3.11 to 3.13. Its module attribute (read by ``base_tasks`` at each repr)
    is wrapped to show a promise as ``RpcPromise()``, as asyncio shows a coroutine without code;
    only task reprs go through it."""
    format_coroutine = getattr(asyncio.coroutines, "_format_coroutine", None)
    if format_coroutine is None or getattr(format_coroutine, "shows_promises", False):
        return  # (another asyncio, or durable imported twice)

    def _format_coroutine(coro: Any) -> str:
        if isinstance(coro, (RpcPromise, _FetchPromise)):
            return f"{type(coro).__name__}()"
        return format_coroutine(coro)  # type: ignore[no-any-return]

    _format_coroutine.shows_promises = True  # type: ignore[attr-defined]
    asyncio.coroutines._format_coroutine = _format_coroutine  # type: ignore[attr-defined]


if TASKS_TAKE_PROMISES:
    _show_promises_in_tasks()


# -- calls from other threads and event loops ---------------------------------------------------

_route_lock = threading.Lock()
"""Serializes the choice of a runtime's loop between threads (``_runtime_loop``)."""


def _new_route_lock() -> None:
    """In a child made by ``os.fork()``: a lock another thread held at the fork would stay held for good."""
    global _route_lock
    _route_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_route_lock)
_pinned: weakref.WeakSet[Runtime] = weakref.WeakSet()
"""Runtimes whose loop is never taken over (``BlockingRuntime``'s): their thread runs it again."""


def pin_runtime_loop(runtime: Runtime) -> None:
    """Keep ``runtime`` on its loop for good, even while that loop is stopped for a moment.

    A ``BlockingRuntime``'s thread stops its loop and runs it again (an object's code stopped
    it; the shutdown runs next): a call made from another thread's loop in that moment must wait
    for the loop, not take the runtime over (it would run on two threads at once).
    """
    _pinned.add(runtime)


POLL_SECONDS = 0.25
"""How often a forwarded call that has not started checks that the runtime's loop still runs."""


def _runtime_loop(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop | None:
    """The loop a call made on ``loop`` must be forwarded to; ``None``: run it here.

    The runtime's loop is the one it was opened or last used on. If that loop no longer runs
    (closed, or stopped), ``loop`` takes the runtime over: nothing of the runtime can be running
    on a loop that does not run.
    """
    with _route_lock:
        home = runtime.loop
        if home is loop:
            return None
        if home is None or home.is_closed() or not home.is_running():
            if home is not None and not home.is_closed() and runtime in _pinned:
                return home  # stopped between two runs of its thread: the call waits for it there
            if not runtime.closed:  # (a closed one is not taken over: the call fails here)
                runtime.attach_loop()  # the runtime's loop is now `loop` (and its timers are armed there)
                _ending.discard(loop)  # (a loop run again by hand after a shutdown)
                _taken.add(loop)
                _guard_loop(loop, runtime)  # (calls other threads forward here must not start as it ends)
            return None
        return home


async def _forward(
    runtime: Runtime,
    make: Callable[[], Awaitable[Any]],
    home: asyncio.AbstractEventLoop | None = None,
    outcome: concurrent.futures.Future[Any] | None = None,
    *,
    withdraw: bool = True,
) -> Any:
    """Run ``make()`` on the runtime's loop and return its outcome on the running (caller's) loop.

    ``make()`` is called on the runtime's loop, in an empty context (no object's identity
    leaks in from the caller's thread); ``outcome`` is its future if it was submitted already
    (to ``home``). While the call has not started, the caller checks every ``POLL_SECONDS``
    that the runtime's loop still runs; if it stopped, the call is withdrawn and routed again.
    Once started, the call runs to its end even if the caller stops waiting (as on Cloudflare);
    a call cancelled there (its loop shutting down) fails with ``ConnectionClosedError``. With
    ``withdraw=False`` (a stub's call, made when the caller made it), a caller that stops
    waiting before the call started does not withdraw it either.
    """
    loop = running_loop("a durable.Runtime")
    while True:
        if outcome is None:
            if home is None and (home := _runtime_loop(runtime, loop)) is None:
                if runtime.loop is not loop:  # closed, so not taken over: made here, the call
                    runtime.check_open()  # would be forwarded again (Stub._call), for ever
                return await make()
            try:
                outcome = submit(home, make, runtime=runtime)
            except RuntimeError:
                home = None
                continue  # the loop closed meanwhile: route again
        assert home is not None
        waiter = _waiter(outcome, loop)
        try:
            while True:
                done, _ = await asyncio.wait((waiter,), timeout=POLL_SECONDS)
                if done:
                    if outcome.cancelled():  # refused by its loop, which is ending (submit)
                        await _ended(home)
                        home = outcome = None
                        break  # route it again
                    return waiter.result()
                if home.is_closed() or not home.is_running():
                    if outcome.cancel():
                        home = outcome = None
                        break  # withdrawn before it started: route it again
                    if home.is_closed() and not outcome.done():
                        # Started on a loop that closed before it ended: it can never finish.
                        with contextlib.suppress(concurrent.futures.InvalidStateError):
                            outcome.set_exception(ConnectionClosedError(_LOOP_CLOSED))
        except asyncio.CancelledError:
            waiter.cancel()
            if withdraw and outcome is not None:
                outcome.cancel()  # a call that has not started never will; a started one runs on
            raise


async def _ended(loop: asyncio.AbstractEventLoop) -> None:
    """Wait until ``loop``, whose ``asyncio.run`` is ending (``_ending``), no longer runs: its
    shutdown (the calls it finishes, then its async generators and executor) takes a few turns.
    One that still runs long after (run again by hand after its tasks were cancelled) is no
    longer taken for ending: the call is forwarded there again."""
    delay = 0.001
    deadline = time.monotonic() + 2 * SHUTDOWN_GRACE_SECONDS
    while loop.is_running() and not loop.is_closed():
        if time.monotonic() > deadline:
            _ending.discard(loop)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL_SECONDS)


def _waiter(outcome: concurrent.futures.Future[Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """A future of ``loop`` that takes ``outcome``'s outcome; cancelling it leaves ``outcome`` alone
    (``asyncio.wrap_future`` would cancel it)."""
    waiter = loop.create_future()

    def settle(done: concurrent.futures.Future[Any]) -> None:
        if not waiter.done() and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the caller's loop closed meanwhile
                loop.call_soon_threadsafe(_settle_waiter, done, waiter)

    outcome.add_done_callback(settle)
    return waiter


def _settle_waiter(done: concurrent.futures.Future[Any], waiter: asyncio.Future[Any]) -> None:
    if waiter.done():
        return
    if done.cancelled():
        waiter.cancel()
    elif (exc := done.exception()) is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(done.result())


def submit(
    loop: asyncio.AbstractEventLoop,
    make: Callable[[], Awaitable[T_co]],
    outcome: concurrent.futures.Future[T_co] | None = None,
    cancelled: str = "",
    runtime: Runtime | None = None,
) -> concurrent.futures.Future[T_co]:
    """Call ``make()`` on ``loop`` (running in another thread); its outcome settles the future returned
    (``outcome`` if given: a caller may add its callbacks before the loop's thread can settle it).
    A call cancelled there (its loop shutting down) fails with ``ConnectionClosedError(cancelled)``
    (``_LOOP_CLOSED`` by default).

    ``make()`` runs in an empty context, so no object's identity leaks in from the caller's
    thread. Cancelling the future before ``make()`` was called withdraws the call. Raises
    ``RuntimeError`` if ``loop`` is closed. ``KeyboardInterrupt`` and ``SystemExit`` raised by
    the call (an object's code raising them) settle the future like any exception
    (``_contained``): they never escape to ``loop``.
    """
    if outcome is None:
        outcome = concurrent.futures.Future()

    def start() -> None:
        if runtime is not None and loop in _taken and not _guard_loop(loop, runtime):
            outcome.cancel()  # its loop is ending (asyncio.run returned): the caller routes it again
            return
        if not outcome.set_running_or_notify_cancel():
            return  # withdrawn before it started
        inner: asyncio.Future[Any]
        try:
            made = make()
            if not inspect.iscoroutine(made):
                inner = asyncio.ensure_future(made)
            elif runtime is None or runtime in _pinned:
                inner = asyncio.ensure_future(_contained(made))
            else:
                inner = _Forwarded(_contained(made), loop=loop)
                inner.runtime = runtime
        except BaseException as exc:
            outcome.set_exception(exc)
            return
        if inner.done():
            _pass_outcome(inner, outcome, cancelled=cancelled)  # now: the loop may stop after this turn
        else:
            inner.add_done_callback(lambda done: _pass_outcome(done, outcome, made, cancelled))

    loop.call_soon_threadsafe(start, context=contextvars.Context())
    return outcome


SHUTDOWN_GRACE_SECONDS = 5.0
"""How long a forwarded call still running when its loop's ``asyncio.run`` ends may go on (``_Forwarded``)."""


_ending: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
"""Loops that took a runtime over and whose ``asyncio.run`` is ending: no forwarded call starts there."""

_taken: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
"""Loops that took a runtime over (``_runtime_loop``): the ones ``_LoopGuard`` watches, not the
loop a runtime was opened on (a task waiting for ever there would make code that waits for all its
loop's tasks wait for ever)."""

_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Any]] = weakref.WeakKeyDictionary()
"""The :class:`_LoopGuard` of each loop that runs forwarded calls of a runtime it took over."""


def _guard_loop(loop: asyncio.AbstractEventLoop, runtime: Runtime) -> bool:
    """Watch ``loop`` (the running one), which holds ``runtime``, for the end of its ``asyncio.run``;
    False if it is ending."""
    if loop in _ending:
        return False
    if loop not in _guards:
        guard = _LoopGuard(_watch(loop, weakref.ref(runtime)), loop=loop)
        guard._log_destroy_pending = False  # type: ignore[attr-defined]  # (a loop closed by hand)
        _guards[loop] = guard
    return True


async def _watch(loop: asyncio.AbstractEventLoop, runtime: weakref.ref[Runtime]) -> None:
    """The guard's work: wait while ``loop`` holds the runtime (until it is closed, moves, or is
    collected: held weakly, so that a runtime dropped without ``aclose()`` is still collected)."""
    try:
        while (held := runtime()) is not None and held.loop is loop and not held.closed:
            del held
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if _guards.get(loop) is asyncio.current_task():
            del _guards[loop]


class _LoopGuard(asyncio.Task):  # type: ignore[type-arg]
    """A task on a loop that took a runtime over (``_taken``, made then), which may run calls
    forwarded from other threads, for as long as the loop holds the runtime (``_watch``: code
    that closes the runtime, then waits for all its loop's tasks, does not wait for ever).

    ``asyncio.run`` ends by cancelling every task of its loop while the loop is stopped: this
    task's cancellation then marks the loop as ending (``_ending``), so that no forwarded call
    starts there any more (it would be cut off by the loop's close): their callers route them
    again, to the loop that takes the runtime over next. Cancelled while its loop runs (code
    cancelling every task), it ends, and the next forwarded call makes another.
    """

    def cancel(self, msg: Any = None) -> bool:
        loop = self.get_loop()
        if not loop.is_running() and not loop.is_closed():
            _ending.add(loop)
        if _guards.get(loop) is self:
            del _guards[loop]
        return super().cancel(msg)


class _Forwarded(asyncio.Task):  # type: ignore[type-arg]
    """The task of a call forwarded to a loop that is not the runtime's own (one it took over).

    ``asyncio.run`` ends by cancelling every task of its loop (with the loop stopped), then runs
    the loop until they end. A call another thread forwarded there would fail with
    ``ConnectionClosedError`` though its object did (most of) its work: instead it goes on, and
    the shutdown waits for it, up to ``SHUTDOWN_GRACE_SECONDS`` (then it is cancelled after all).
    """

    runtime: Runtime

    def cancel(self, msg: Any = None) -> bool:
        loop = self.get_loop()
        if loop.is_running() or loop.is_closed() or self.runtime.closed or self.done():
            return super().cancel(msg)
        _ending.add(loop)
        loop.call_later(SHUTDOWN_GRACE_SECONDS, super().cancel, msg)
        return False


_LOOP_CLOSED = (
    "Connection closed: the runtime's event loop stopped before the call ended (the runtime was "
    "closed, or the loop it runs on ended: open a runtime on a loop that outlives the calls made from "
    "other threads, or use durable.BlockingRuntime)."
)


@final
class _Raised:
    """What a forwarded call raised (but a cancellation), carried as its task's result (``_contained``)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _contained(call: Coroutine[Any, Any, T_co]) -> T_co | _Raised:
    """Await ``call``, a forwarded call, keeping a ``KeyboardInterrupt`` or ``SystemExit`` it raises.

    asyncio re-raises those two out of ``run_forever()`` when a task raises them: an object
    raising ``SystemExit`` in a call made from another thread stopped the runtime's loop (the
    application's, or a ``BlockingRuntime``'s thread, whose callers then waited forever), where the
    same call made on that loop raises it in its caller only. They reach the caller's thread.
    """
    try:
        return await call
    except (KeyboardInterrupt, SystemExit, Exception) as exc:
        # (Exception too: a task of a loop's asyncio.run shutdown that ends with an error is
        # logged as "unhandled exception during asyncio.run() shutdown", see _Forwarded.)
        return _Raised(exc)


def _pass_outcome(
    inner: asyncio.Future[Any], outcome: concurrent.futures.Future[Any], made: object = None, cancelled: str = ""
) -> None:
    """Copy a finished future's outcome (on the runtime's loop) to the caller's future.

    ``made`` is what ``make()`` returned: a coroutine that a task cancelled before its first
    step never ran is closed, so that it is not reported as "never awaited".
    """
    if inner.cancelled() and inspect.iscoroutine(made):
        made.close()
    if outcome.done():
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # failed meanwhile by _forward
        if inner.cancelled():
            outcome.set_exception(ConnectionClosedError(cancelled or _LOOP_CLOSED))
        elif (exc := inner.exception()) is not None:
            outcome.set_exception(exc)
        elif type(result := inner.result()) is _Raised:
            outcome.set_exception(result.exc)
        else:
            outcome.set_result(result)


# -- for the package's test helpers -----------------------------------------------------------
# A stub's public attributes are its object's RPC methods, so its own state stays `_private`:
# durable.testing and the WebSocket test client reach it through these functions.


def host_of(stub: Stub[Any]) -> ObjectHost:
    """The host of ``stub``'s object, made if it is not live."""
    return stub._host()


def runtime_of(stub: Stub[Any]) -> Runtime:
    """The runtime that hosts ``stub``'s object."""
    return stub._link.runtime


async def on_runtime_loop(runtime: Runtime, make: Callable[[], Awaitable[T_co]]) -> T_co:
    """Await ``make()`` on the runtime's loop, from any loop or thread, as a stub call is run there.

    For the runtime's own operations that touch its objects (``reset()``, ``aclose()``, the
    testing hooks): run from another thread's loop, they would run objects' code, or cancel their
    tasks, off the thread that runs them.
    """
    return await _forward(runtime, make)  # type: ignore[no-any-return]


def on_runtime_thread(runtime: Runtime, fn: Callable[[], T_co]) -> T_co:
    """``fn()`` run on the runtime's loop, the calling thread waiting for it there if it runs elsewhere.

    For the plain (not awaited) testing hooks that touch an object (``fail_next_commit``,
    ``hibernation_blockers``): called from another thread while the runtime's loop runs, they
    would make or change its objects' hosts under its feet. Where no loop runs the runtime, or
    on its own loop, ``fn()`` is called at once.
    """
    home = runtime.loop
    if home is None or home is _get_running_loop() or home.is_closed() or not home.is_running():
        return fn()

    async def call() -> T_co:
        return fn()

    try:
        outcome = submit(home, call)
    except RuntimeError:  # closed meanwhile: no loop runs the runtime any more
        return fn()
    while not concurrent.futures.wait((outcome,), POLL_SECONDS).done:
        if not home.is_running() and outcome.cancel():
            return fn()  # the loop stopped before it ran: none runs the runtime now
    return outcome.result()


def deliver(
    stub: Stub[Any], kind: EventKind, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Coroutine[Any, Any, Any]:
    """Deliver an event of ``kind`` to ``stub``'s object as a call of the stub would (``Stub._call``)."""
    return stub._call(kind, name, args, kwargs)


def call_forwarded(
    stub: Stub[Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Coroutine[Any, Any, Any]:
    """Call ``stub.name(*args, **kwargs)`` on the runtime's loop for a caller on another thread, which waits.

    ``args`` and ``kwargs`` are copies already. The caller waits, so the call's writes commit at
    once; streamed bodies in the result are read on the runtime's loop. For ``durable.BlockingStub``.
    """
    return _readable_elsewhere(RpcMethod(stub, name)._start_forwarded(args, kwargs))


def _named_for_no_loop(coro: Coroutine[Any, Any, Any], call: str) -> Coroutine[Any, Any, Any]:
    """Name the coroutine that a call made where no event loop runs returns after the mistake it
    usually is: a synchronous caller (a plain thread, a Flask view) that drops it never makes the
    call, and Python's "coroutine ... was never awaited" warning and the coroutine's repr show
    this name (its ``__qualname__``) instead of an internal function's. Off the common path: only
    a call made with no running loop gets here."""
    name = (
        f"{call} (called where no event loop runs, so the call is made only when this is awaited: "
        f"asyncio.run({call}), or durable.BlockingRuntime for synchronous code)"
    )
    if isinstance(coro, CoroutineType):  # (a native coroutine: its __qualname__ is writable)
        coro.__qualname__ = name
    return coro


def _forward_rpc(
    method: RpcMethod, args: tuple[Any, ...], kwargs: dict[str, Any], home: asyncio.AbstractEventLoop | None = None
) -> Coroutine[Any, Any, Any]:
    """Forward an RPC call made on another loop than the runtime's (``_forward``); await the
    coroutine returned for its outcome.

    Given the runtime's loop (``home``), the call is made now, as a call on the runtime's loop
    is: a caller that stops waiting (``asyncio.wait_for``, a cancelled task, the end of
    ``asyncio.run``) does not withdraw it. Streamed bodies cross with it read: those of the
    arguments here, on the loop that streams them (then the call is made once they are read),
    and those of the result on the runtime's loop, as ``stub.fetch`` does for its request and
    response: a stream may wait on its own loop's futures, which another loop cannot.
    """
    runtime = method._link.runtime

    def make() -> Awaitable[Any]:
        return _readable_elsewhere(method._start_forwarded(args, kwargs))

    streamed = (any(type(arg) not in ATOMIC_TYPES for arg in args) or kwargs) and has_streamed_body((args, kwargs))
    if home is None:  # no loop runs: the call is made when awaited
        return (
            _buffer_then_forward(runtime, make, (args, kwargs)) if streamed else _forward(runtime, make, withdraw=False)
        )
    return _send_from(runtime, make, home, (args, kwargs) if streamed else None)


def _send_from(
    runtime: Runtime, make: Callable[[], Awaitable[Any]], home: asyncio.AbstractEventLoop, streamed: object
) -> Coroutine[Any, Any, Any]:
    """Make the call ``make()`` on the runtime's loop (``home``) now, for a caller on this (another
    thread's) loop; await the coroutine returned for its outcome. A caller that stops waiting does
    not withdraw it.

    ``streamed``, if not None, holds bodies streamed on this loop, to read here first (a stream
    may wait on its own loop's futures): the call is made once they are read, by a task that the
    caller's cancellation does not reach (only the end of this loop, which ends the streams).
    """
    if streamed is not None:
        task = asyncio.get_running_loop().create_task(_buffer_then_forward(runtime, make, streamed, home))
        _reading.add(task)
        task.add_done_callback(_read_done)
        return _shielded(task)
    outcome = None
    with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: _forward routes it again
        outcome = submit(home, make, runtime=runtime)
    return _forward(runtime, make, home if outcome is not None else None, outcome, withdraw=False)


def _forwarded(
    loop: asyncio.AbstractEventLoop, stub: Stub[Any], forwarding: Coroutine[Any, Any, Any], fetch: bool = False
) -> _Promise:
    """The promise, on the caller's (another thread's) loop, of a call or fetch sent now by ``forwarding``.

    A fetch's is a :class:`_FetchPromise`, as on the runtime's loop: nothing pipelines on it (an
    ``RpcPromise`` made ``stub.fetch(url).status`` a pipelined member there). Its redirects were
    followed where it was sent: with nothing recorded to send again, a redirect answered settles
    it as it is (``_RedirectedFetch.set_result``).
    """
    promise: _Promise
    if fetch:
        promise = _FetchPromise(loop=loop)
        promise._sent = None
        promise._follows = False
    else:
        promise = RpcPromise(loop=loop)
    promise._stub = stub
    promise._host = None
    promise.close = _close
    promise._follow(_waiting_task(loop, forwarding))
    return promise


def _waiting_task(loop: asyncio.AbstractEventLoop, forwarding: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """The task of the caller's (another thread's) loop that waits for a call it sent (``_send_from``).

    The call is made whether or not anyone waits, so a loop closed while this task still waits
    (``run_until_complete`` of code that did not await its calls, then ``close()``) loses
    nothing: its destruction is not logged as "Task was destroyed but it is pending!".
    """
    task = loop.create_task(forwarding)
    with contextlib.suppress(AttributeError):  # (a task factory's own kind of task may lack it)
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # (asyncio.Task's own flag)
    return task


_reading: set[asyncio.Task[Any]] = set()
"""Calls whose streamed bodies are being read before they are sent (``_send_from``): held here, as
the loop keeps only weak references to its tasks."""


def _read_done(task: asyncio.Task[Any]) -> None:
    _reading.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a caller that stopped waiting does not get it logged


async def _shielded(task: asyncio.Task[Any]) -> Any:
    return await asyncio.shield(task)


async def _buffer_then_forward(
    runtime: Runtime,
    make: Callable[[], Awaitable[Any]],
    value: object,
    home: asyncio.AbstractEventLoop | None = None,
) -> Any:
    await buffer_bodies(value)
    return await _forward(runtime, make, home, withdraw=False)


async def _readable_elsewhere(promise: RpcPromise) -> Any:
    """The call's result, its Requests' and Responses' streamed bodies read on this (the runtime's) loop."""
    result = await promise
    if type(result) not in ATOMIC_TYPES:
        await buffer_bodies(result)
    return result


def fetch_forwarded(stub: Stub[Any], request: Request) -> Coroutine[Any, Any, Response]:
    """``stub.fetch(request)`` on the runtime's loop, the response body read there (for another thread)."""
    return stub._fetch_buffered(request)


register_runtime_forwarding(on_runtime_loop)
register_pipelining(_pipelined_promise, Stub)
register_promise_type(_promise_on)
PLAIN_FUTURES.update((RpcPromise, _FetchPromise))  # (not _RedirectedFetch: its set_result follows redirects)
