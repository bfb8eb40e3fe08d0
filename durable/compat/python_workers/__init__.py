"""Run code written for Cloudflare's Python Workers unmodified on `durable`.

``install()`` makes ``import workers``, ``import js``, ``import pyodide`` and ``import pyodide.ffi``
give `durable`'s stand-ins (:mod:`.workers`, :mod:`.js`, :mod:`.pyodide`), even where Cloudflare's
SDK is installed too; ``uninstall()`` undoes it. Nothing is shadowed unless installed. The
pytest option ``--python-workers`` (ini ``durable_python_workers = true``), ``durable serve
PROJECT`` and :func:`asgi_app` install them themselves.

Example::

    import durable
    from durable.compat import python_workers

    async with durable.Runtime() as rt:
        app = python_workers.asgi_app("examples/python-workers/messages", rt)
        # serve `app` with uvicorn, or call it through httpx.ASGITransport

Strict value mode (``install(strict=True)``) makes RPC and storage refuse ``tuple`` and
``bytearray`` values with the SDK's ``TypeError``, as Cloudflare does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import durable

from ._bindings import DurableObjectAbort as DurableObjectAbort
from ._convert import JsDict as JsDict
from ._convert import is_strict as is_strict
from ._convert import set_strict as set_strict
from ._entrypoints import set_current_env
from ._finder import ALIASES as ALIASES
from ._finder import install as _install_finder
from ._finder import installed as installed
from ._finder import uninstall as _uninstall_finder
from ._jsasync import reset as _reset_timers
from ._project import Binding as Binding
from ._project import Project as Project
from ._project import ProjectError as ProjectError
from ._project import UnsupportedBinding as UnsupportedBinding
from ._project import is_project as is_project
from ._project import load_project as load_project
from ._project import parse_jsonc as parse_jsonc
from ._scheduled import ScheduledController as ScheduledController
from ._scheduled import scheduled as scheduled
from ._wsclient import route_websockets as route_websockets

__all__ = [
    "ALIASES",
    "Binding",
    "DurableObjectAbort",
    "JsDict",
    "Project",
    "ProjectError",
    "ScheduledController",
    "UnsupportedBinding",
    "asgi_app",
    "install",
    "installed",
    "is_project",
    "is_strict",
    "load_project",
    "parse_jsonc",
    "route_websockets",
    "scheduled",
    "serving",
    "set_strict",
    "uninstall",
]


def install(*, strict: bool | None = None) -> None:
    """Make ``workers``, ``js``, ``pyodide``, ``pyodide.ffi`` (and ``pyodide.http``) resolve to `durable`.

    Idempotent. Modules of those names already imported (Cloudflare's SDK, say) are set aside
    until :func:`uninstall`.

    Args:
        strict: when given, switch strict value mode on or off (see :func:`set_strict`).
    """
    if strict is not None:
        set_strict(strict)
    _install_finder()


def uninstall() -> None:
    """Undo :func:`install` (strict mode is switched off too, :func:`route_websockets`' routes
    are cleared and pending ``js.setTimeout`` timers cancelled)."""
    set_strict(False)
    route_websockets(None)
    _reset_timers()
    _uninstall_finder()


def serving(runtime: durable.Runtime) -> None:
    """Make ``runtime.env`` what the module-level ``workers.env`` returns.

    :func:`asgi_app`, :meth:`Project.bind` and ``durable serve`` call it; tests that build their
    own runtime may call it so that code reading ``workers.env`` sees that runtime's bindings.
    """
    set_current_env(runtime.env)


def asgi_app(project: str | Path | Project, runtime: durable.Runtime, **options: Any) -> Any:
    """An ASGI application serving a Python Workers project on ``runtime``.

    Loads the project (:func:`load_project`, which installs the shims) unless given a loaded
    one, registers its Durable Object bindings and vars on ``runtime``, and returns
    ``durable.asgi_app(project.worker, runtime, **options)``.

    Raises:
        ProjectError: the project cannot be loaded (the message names the file and the field).
        ValueError: ``runtime`` already has a binding of one of the project's names.
    """
    loaded = project if isinstance(project, Project) else load_project(project)
    loaded.bind(runtime)
    return durable.asgi_app(loaded.worker, runtime, **options)
