"""Which object's code is running: the context variable behind the ownership rule of ``ctx``.

``ctx``, ``ctx.storage`` and what they return (transactions, SQL cursors, ``storage.kv``) belong
to their object (``docs/threads.md``): used from code that is not running inside that object (the
test body, another object, another thread), they raise ``RuntimeError`` naming the fix. The host
sets :data:`running` for every event it delivers (and tasks the object starts inherit it);
:func:`check_owner` compares. It is one context-variable read on the hot path. A reset cancels
the tasks whose context holds an ended generation (:func:`cancel_left_over`).

Layer 0: knows nothing of hosts beyond identity.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from asyncio import _get_running_loop
from contextvars import Context, ContextVar
from typing import Any, NoReturn

__all__ = ["Running", "cancel_left_over", "check_owner", "not_owner", "running", "running_host", "task_context"]


class Running:
    """Whose code runs in a task: an object's host and its generation (instance).

    The host keeps one per generation (``ObjectHost.running``), which every event of that
    generation sets in :data:`running`. Tasks the instance starts inherit it, so code left running
    by an instance that was reset (a task it created) is told apart from the next instance's
    (``ObjectHost.before_outgoing``). One context variable for both: setting a second one per
    event cost about 1,100 instructions (docs/performance.md, eighth pass).
    """

    __slots__ = ("gen", "host")

    def __init__(self, host: Any, gen: int) -> None:
        self.host = host
        self.gen = gen


running: ContextVar[Running | None] = ContextVar("durable_running", default=None)
"""Whose code runs in the current task (host and generation); None outside any object."""


def running_host(context: Context | None = None) -> Any:
    """The host whose object's code runs in the current task (or in ``context``); None outside any object."""
    now = running.get() if context is None else context.get(running)
    return None if now is None else now.host


def check_owner(host: object) -> None:
    """Raise ``RuntimeError`` unless the code running now is ``host``'s object's own.

    An object's code always runs on an event loop; a thread the object started (``to_thread``)
    inherits its context but runs no loop, so it is told apart by that.
    """
    now = running.get()
    if now is None or now.host is not host or _get_running_loop() is None:
        not_owner(host)


def not_owner(host: object) -> NoReturn:
    """Raise the ``RuntimeError`` for storage or ``ctx`` used from outside its object."""
    oid = getattr(host, "id", None)
    other = running_host()
    if _get_running_loop() is None:
        where = "a thread that runs no event loop (a thread the object started, or any other)"
    elif other is not None and other is not host:
        where = "code running in another Durable Object"
    else:
        where = "code that is not running inside it (the test body, a stashed reference, another thread)"
    raise RuntimeError(
        f"ctx and ctx.storage of Durable Object {oid!r} belong to that object and were used from {where}. "
        "From a test, run the code inside the object with "
        "`await durable.testing.run_in_object(stub, lambda obj, ctx: ...)`; from anywhere else, "
        "call one of the object's methods over RPC (`await stub.method()`)."
    )


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
"""Where the package's own code lives: its tasks are not the object's (see :func:`cancel_left_over`)."""


if sys.version_info >= (3, 12):

    def task_context(task: asyncio.Task[Any]) -> Context | None:
        """The context ``task`` runs its code in (``Task.get_context()``)."""
        return task.get_context()

else:

    def task_context(task: asyncio.Task[Any]) -> Context | None:
        """The context ``task`` runs its code in, on Python 3.11, which has no ``Task.get_context()``.

        asyncio's pure-Python task keeps it in ``_context``. Its C task (asyncio's and uvloop's)
        keeps it where Python code cannot read it, but hands it to the garbage collector:
        ``TaskObj_traverse`` in 3.11's ``Modules/_asynciomodule.c`` visits ``task_context`` just
        before ``task_coro`` (3.11 takes security fixes only, so that code no longer changes;
        a subclass's ``__dict__`` and slots come first). Anything but a context found there
        answers None: the task is left alone.
        """
        context = getattr(task, "_context", None)
        if context is None:
            referents = gc.get_referents(task)
            coro = task.get_coro()
            for i, referent in enumerate(referents):
                if referent is coro:
                    context = referents[i - 1] if i else None
                    break
        return context if type(context) is Context else None


def cancel_left_over(host: object, gen: int) -> int:
    """Cancel the tasks that instances of ``host`` older than generation ``gen`` created: code of a
    reset instance, which stops at its next ``await`` (returns how many).

    workerd runs none of a reset instance's code any more (measured with miniflare
    4.20260426: a timer, an un-awaited promise chain and ``waitUntil`` work of an instance reset
    by ``abort()`` or a throwing ``blockConcurrencyWhile()`` never run again). A task is told
    apart by the :data:`running` its context holds (:func:`task_context`). The package's own
    tasks (an event, ``wait_until`` work, a call's delivery) are left to the code that ends
    them, and so is the task running now (the one that resets the object).
    """
    loop = _get_running_loop()
    if loop is None:
        return 0
    current = asyncio.current_task(loop)
    cancelled = 0
    for task in asyncio.all_tasks(loop):
        if task is current:
            continue
        context = task_context(task)
        owner = None if context is None else context.get(running)
        if owner is None or owner.host is not host or owner.gen >= gen:
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and code.co_filename.startswith(_PACKAGE):
            continue
        task.cancel()
        cancelled += 1
    return cancelled
