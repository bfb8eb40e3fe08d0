"""The ``sys.meta_path`` finder that makes ``import workers``, ``js``, ``pyodide`` resolve to `durable`.

`durable` never installs top-level ``workers`` or ``js`` packages: PyPI's ``workers`` is an
unrelated project, and Cloudflare's SDK (``workers-runtime-sdk``) owns the name in its users'
environments, where it fails on CPython at ``import js``. Instead, :func:`install` puts a finder
first on ``sys.meta_path`` that maps those names to modules of this package, and moves aside any
of them already imported (Cloudflare's SDK included); :func:`uninstall` removes the finder and
puts back what it moved aside. Nothing is shadowed while it is not installed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Final

__all__ = ["ALIASES", "install", "installed", "uninstall"]

_PACKAGE: Final = __name__.rpartition(".")[0]

_SDK_SUBMODULES: Final = ("blob", "entrypoints", "formdata", "request", "response", "rpc", "types", "utils")

ALIASES: Final[dict[str, str]] = {
    "workers": f"{_PACKAGE}.workers",
    "js": f"{_PACKAGE}.js",
    "pyodide": f"{_PACKAGE}.pyodide",
    "pyodide.ffi": f"{_PACKAGE}.pyodide.ffi",
    "pyodide.http": f"{_PACKAGE}.pyodide.http",
    "workers.asgi": f"{_PACKAGE}.asgi",
    "workers.wsgi": f"{_PACKAGE}.wsgi",
    "workers.workflows": f"{_PACKAGE}.workflows",
    "workers.gateway": f"{_PACKAGE}.gateway",
    "asgi": f"{_PACKAGE}.asgi",  # the SDK installs it too: `import asgi` in Cloudflare's FastAPI example
    # The SDK's other submodules, imported for their names (`from workers.entrypoints import
    # DurableObjectContext`): `workers` itself has every public name they define. (`workers.fetch`
    # is left out: importing it would replace the function `workers.fetch` with a module.)
    **{f"workers.{name}": f"{_PACKAGE}.workers" for name in _SDK_SUBMODULES},
}
"""Public module name -> the `durable` module that stands in for it."""

_ROOTS: Final = frozenset(name.partition(".")[0] for name in ALIASES)
_lock = threading.Lock()


class _AliasLoader(importlib.abc.Loader):
    """Loads an alias by returning the (already imported) `durable` module that stands in for it."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set the alias's spec on the shared module: keep the module's own.
        module.__spec__ = self._spec


class PythonWorkersFinder(importlib.abc.MetaPathFinder):
    """Finds ``workers``, ``js``, ``pyodide``, ``pyodide.ffi``, ``pyodide.http`` in `durable`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        # Other submodules (`pyodide.console`, `pyodide.webloop`) are not emulated: importing one
        # fails with ModuleNotFoundError.
        alias = ALIASES.get(fullname)
        if alias is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias), is_package=fullname == "pyodide")

    def __repr__(self) -> str:
        return "<durable.compat.python_workers finder>"


_finder: PythonWorkersFinder | None = None
_moved_aside: dict[str, ModuleType] = {}


def _shadowed(name: str) -> bool:
    return name in _ROOTS or name.partition(".")[0] in _ROOTS


def installed() -> bool:
    """Whether the finder is installed."""
    return _finder is not None


def install() -> None:
    """Make ``workers``, ``js``, ``pyodide`` (and ``pyodide.ffi``, ``pyodide.http``) resolve to `durable`.

    Idempotent. Modules of those names imported before (Cloudflare's SDK, say) are moved aside
    from ``sys.modules`` and restored by :func:`uninstall`; code that kept a reference to them
    keeps it.
    """
    global _finder
    with _lock:
        if _finder is None:
            for name in [n for n in sys.modules if _shadowed(n)]:
                module = sys.modules[name]
                if not getattr(module, "__name__", "").startswith(_PACKAGE):
                    _moved_aside[name] = sys.modules.pop(name)
            _finder = PythonWorkersFinder()
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo :func:`install`: remove the finder and the aliases, restore what was moved aside."""
    global _finder
    with _lock:
        if _finder is None:
            return
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _finder = None
        for name in [n for n in sys.modules if _shadowed(n)]:
            if getattr(sys.modules[name], "__name__", "").startswith(_PACKAGE):
                del sys.modules[name]
        sys.modules.update(_moved_aside)
        _moved_aside.clear()
