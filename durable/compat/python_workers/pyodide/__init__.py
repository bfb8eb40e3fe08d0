"""The ``pyodide`` package, as far as Python Workers code uses it (``pyodide.ffi``, ``pyodide.http``).

Given by ``import pyodide`` while :func:`durable.compat.python_workers.install` is in effect.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.28.0"
