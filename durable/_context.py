"""Which object's code is running: the context variable behind the ownership rule of ``ctx``.

``ctx``, ``ctx.storage`` and what they return (transactions, SQL cursors, ``storage.kv``) belong
to their object (``docs/threads.md``): used from code that is not running inside that object (the
test body, another object, another thread), they raise ``RuntimeError`` naming the fix. The host
sets :data:`current_host` for every event it delivers (and tasks the object starts inherit it);
:func:`check_owner` compares. It is one context-variable read on the hot path.

Layer 0: knows nothing of hosts beyond identity.
"""

from __future__ import annotations

from asyncio import _get_running_loop
from contextvars import ContextVar
from typing import Any, NoReturn

__all__ = ["check_owner", "current_generation", "current_host", "not_owner"]

current_host: ContextVar[Any] = ContextVar("durable_current_host", default=None)
"""The object (its host) whose code is running in the current task; None outside any object."""

current_generation: ContextVar[int | None] = ContextVar("durable_current_generation", default=None)
"""The generation (instance) of :data:`current_host` whose code runs in the current task; None if
not known. Tasks that the instance starts inherit it, so code left running by an instance that was
reset (a task it created) is told apart from the next instance's (``ObjectHost.before_outgoing``)."""


def check_owner(host: object) -> None:
    """Raise ``RuntimeError`` unless the code running now is ``host``'s object's own.

    An object's code always runs on an event loop; a thread the object started (``to_thread``)
    inherits its context but runs no loop, so it is told apart by that.
    """
    if current_host.get() is not host or _get_running_loop() is None:
        not_owner(host)


def not_owner(host: object) -> NoReturn:
    """Raise the ``RuntimeError`` for storage or ``ctx`` used from outside its object."""
    oid = getattr(host, "id", None)
    running = current_host.get()
    if _get_running_loop() is None:
        where = "a thread that runs no event loop (a thread the object started, or any other)"
    elif running is not None and running is not host:
        where = "code running in another Durable Object"
    else:
        where = "code that is not running inside it (the test body, a stashed reference, another thread)"
    raise RuntimeError(
        f"ctx and ctx.storage of Durable Object {oid!r} belong to that object and were used from {where}. "
        "From a test, run the code inside the object with "
        "`await durable.testing.run_in_object(stub, lambda obj, ctx: ...)`; from anywhere else, "
        "call one of the object's methods over RPC (`await stub.method()`)."
    )
