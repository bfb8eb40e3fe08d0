"""A Cron Trigger, run by hand: :func:`scheduled` calls a Worker's ``scheduled(controller, env,
ctx)`` handler once, as workerd does when a cron fires (``durable`` runs no cron schedule).

What workerd does (measured with miniflare 4's ``worker.scheduled({cron, scheduledTime})``,
compatibility date 2026-04-07): the controller has ``cron`` (``""`` when not given),
``scheduledTime`` (ms since the epoch, now when not given) and ``noRetry()``; the result is
``{"outcome": "ok" | "exception", "noRetry": bool}`` once the handler and its ``waitUntil`` work
are done; an exception of the handler is logged and gives ``"exception"``; a Worker without a
``scheduled`` handler logs ``Received a ScheduledEvent but we lack a handler for ScheduledEvents
(a.k.a. Cron Triggers). Did you remember to export a scheduled() function?`` and gives
``{"outcome": "exception", "noRetry": true}``.
"""

from __future__ import annotations

import datetime
import inspect
import logging
from typing import Any, Final

import durable
from durable._http import drain

from ._convert import JsDict
from ._entrypoints import fit_args
from ._globals import tracks_request
from ._project import Project

__all__ = ["NO_HANDLER", "ScheduledController", "scheduled"]

log = logging.getLogger("durable.compat.python_workers")

NO_HANDLER: Final = (
    "Received a ScheduledEvent but we lack a handler for ScheduledEvents (a.k.a. Cron Triggers). "
    "Did you remember to export a scheduled() function?"
)
"""workerd's log line for a Worker without a ``scheduled`` handler."""


class ScheduledController:
    """The ``controller`` a ``scheduled`` handler receives: ``cron``, ``scheduledTime`` (ms since
    the epoch), ``noRetry()``."""

    __slots__ = ("cron", "no_retry", "scheduledTime")

    def __init__(self, cron: str, scheduled_time: int | float) -> None:
        self.cron = cron
        self.scheduledTime = scheduled_time
        self.no_retry = False

    def noRetry(self) -> None:
        """Ask Cloudflare not to retry this run if it fails (reported as ``noRetry``)."""
        self.no_retry = True

    def __repr__(self) -> str:
        return f"<ScheduledController cron={self.cron!r} scheduledTime={self.scheduledTime}>"


def _time(scheduled_time: Any) -> int | float:
    if scheduled_time is None:
        from .js import Date

        return Date.now()
    if isinstance(scheduled_time, datetime.datetime):
        return int(scheduled_time.timestamp() * 1000)
    if isinstance(scheduled_time, (int, float)) and not isinstance(scheduled_time, bool):
        return scheduled_time
    raise TypeError(f"scheduled_time must be ms since the epoch or a datetime, not {type(scheduled_time).__name__}")


async def scheduled(
    worker: Project | type, runtime: durable.Runtime, *, cron: str = "", scheduled_time: Any = None
) -> JsDict:
    """Run the Worker's ``scheduled(controller, env, ctx)`` handler once, as a Cron Trigger would.

    ``worker`` is a loaded :class:`Project` (bound to ``runtime`` with ``project.bind(runtime)``
    or :func:`asgi_app`), whose ``Default`` class (or module-level ``on_scheduled(event, env,
    ctx)``) handles it, or a ``WorkerEntrypoint`` subclass. The handler is called with the
    parameters it declares; ``env`` is ``runtime.env``; ``self.ctx.waitUntil`` work is awaited.

    Returns:
        ``{"outcome": "ok" | "exception", "noRetry": bool}`` (a ``JsDict``: ``result.outcome``),
        as workerd reports a run; the handler's exception is logged, not raised.

    Raises:
        TypeError: ``worker`` is neither, or ``scheduled_time`` is not ms or a ``datetime``.
    """
    module_handler = None
    if isinstance(worker, Project):
        module_handler = getattr(worker.module, "on_scheduled", None)
        worker = worker.worker
    if not isinstance(worker, type):
        raise TypeError(f"scheduled() takes a Project or a WorkerEntrypoint class, not {worker!r}")
    controller = ScheduledController(cron, _time(scheduled_time))
    ctx = durable.ExecutionContext()
    instance = worker(ctx, runtime.env)
    handler = getattr(instance, "scheduled", None)
    if handler is None and callable(module_handler):
        handler = module_handler
    if handler is None:
        log.error("%s", NO_HANDLER)
        return JsDict(outcome="exception", noRetry=True)
    args = fit_args(handler, (controller, instance.env, ctx))

    async def run(self: Any) -> None:
        result = handler(*args)
        if inspect.isawaitable(result):
            await result

    outcome = "ok"
    try:
        await tracks_request(run)(instance)
    except Exception:
        log.exception("durable: the scheduled() handler raised")
        outcome = "exception"
    await drain(ctx)
    return JsDict(outcome=outcome, noRetry=controller.no_retry)
