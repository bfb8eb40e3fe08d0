"""Messages of the ``durable`` command that explain what a file declares instead of what it should.

``durable serve FILE.py`` needs a ``Worker`` class; when it finds none, the message names what the
file does define (a Worker class under another name, Durable Object classes, an ASGI application
such as a FastAPI app) and the fix for each case. Kept apart from ``_cli`` so that the command's
control flow stays short; it uses only the public API of ``durable``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

__all__ = ["RELOAD_UNSUPPORTED", "no_worker_message"]

RELOAD_UNSUPPORTED = (
    "--reload is not supported: the server keeps each Durable Object live in this one process and "
    "holds the storage directory's lock, so a reloading server would run two copies of every "
    "object. Stop the command (Ctrl-C; storage is flushed) and start it again after a change, or "
    "let a file watcher do it, e.g. `watchfiles 'durable serve FILE.py'` (pip install watchfiles)."
)


def _defined_here(module: ModuleType) -> list[tuple[str, object]]:
    """The module's public names, those it defines itself first."""
    items = [(name, value) for name, value in vars(module).items() if not name.startswith("_")]
    return sorted(items, key=lambda item: getattr(item[1], "__module__", None) != module.__name__)


def _is_asgi_app(value: object) -> bool:
    """An application object (FastAPI, Starlette, any ASGI callable instance), not a class."""
    if isinstance(value, type) or inspect.isroutine(value) or inspect.ismodule(value):
        return False
    call = getattr(type(value), "__call__", None)  # noqa: B004 - the class's __call__: is calling it async?
    return call is not None and inspect.iscoroutinefunction(call)


def no_worker_message(path: str | Path, module: ModuleType) -> str:
    """Explain that ``path`` defines no ``Worker``: what it defines instead, and what to do."""
    import durable

    workers: list[str] = []
    objects: list[str] = []
    apps: list[str] = []
    for name, value in _defined_here(module):
        if isinstance(value, type) and issubclass(value, durable.WorkerEntrypoint):
            if value is not durable.WorkerEntrypoint:
                workers.append(name)
        elif isinstance(value, type) and issubclass(value, durable.DurableObject):
            if value is not durable.DurableObject:
                objects.append(name)
        elif _is_asgi_app(value):
            apps.append(f"{name} ({type(value).__name__})")

    message = f"{path} defines no `Worker`"
    if len(workers) == 1:
        return (
            f"{message}, but it defines the Worker class {workers[0]}: "
            f"name it Worker, or add `Worker = {workers[0]}` at the end of the file"
        )
    if workers:
        return (
            f"{message}, but it defines the Worker classes {', '.join(workers)}: `durable serve` serves "
            f"one; name it Worker, or add `Worker = {workers[0]}` (or another) at the end of the file"
        )
    if apps:
        return (
            f"{message}; it defines the ASGI application {', '.join(apps)}. `durable serve` serves "
            "a durable.WorkerEntrypoint subclass named Worker, not an ASGI app: serve your app with "
            "uvicorn (`uvicorn module:app`) and mount durable.asgi_app(Worker, runtime, "
            'strip_root_path=True) in it (see docs/http.md, "Mounting in Starlette or FastAPI"), '
            "or define a Worker class in this file"
        )
    found = f" (it defines the Durable Object classes {', '.join(objects)})" if objects else ""
    return (
        f"{message}{found}: define a durable.WorkerEntrypoint subclass named Worker whose "
        "fetch(request) forwards to your objects through self.env.<BINDING>, as examples/counter.py does"
    )
