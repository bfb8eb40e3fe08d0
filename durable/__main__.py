"""Entry point of the ``durable`` command and of ``python -m durable``.

``durable serve FILE.py [--host 127.0.0.1] [--port 8787] [--persist DIR | --in-memory]``
serves the Worker declared in FILE.py with uvicorn (``pip install 'durable-objects[server]'``).
See :mod:`durable._cli` for the file convention.
"""

from __future__ import annotations

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
