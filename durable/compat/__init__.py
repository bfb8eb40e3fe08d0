"""Compatibility layers that let code written for other Durable Objects SDKs run on `durable`.

- :mod:`durable.compat.python_workers`: Cloudflare's Python Workers SDK (``workers``, ``js``,
  ``pyodide``), switched on with ``install()``.

Layering: these modules sit beside ``durable.asgi`` and ``durable.testing`` (layer 5 in
``durable/__init__.py``) and use the public API of ``durable``.
"""
