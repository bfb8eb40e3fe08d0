"""Entry point of the ``durable`` command and of ``python -m durable``.

``durable serve FILE.py [--host 127.0.0.1] [--port 8787] [--persist DIR | --in-memory]``
serves the Worker declared in FILE.py with uvicorn (``pip install 'durable-objects[server]'``).
See :mod:`durable._cli` for the file convention. A served file can serve itself when run as a
script: ``if __name__ == "__main__": sys.exit(serve_file(__file__))`` (``examples/counter.py``).
"""

from __future__ import annotations

from ._cli import main, serve_file

__all__ = ["main", "serve_file"]

if __name__ == "__main__":
    raise SystemExit(main())
