"""The ``workers`` module of Cloudflare's Python Workers SDK, as `durable` provides it.

While :func:`durable.compat.python_workers.install` is in effect, ``import workers`` gives this
module. Its names follow the SDK's ``workers.__all__``; ``env`` is the served project's env
(through the same wrappers as ``self.env``, with ``patch_env``'s overrides), ``wait_until`` the
running request's or object's ``waitUntil``; ``fetch`` reaches the network (see ``_fetch``).
``Blob``, ``File`` and ``FormData`` are in ``_forms``. What `durable` does not emulate
(Workflows) raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from durable import Headers as Headers

from ._bindings import ContextAdapter as DurableObjectContext  # noqa: F401 - the SDK's name
from ._bindings import DurableObjectAbort as DurableObjectAbort
from ._bindings import EnvAdapter as _EnvWrapper  # noqa: F401 - workers.rpc's name, for isinstance(env, _EnvWrapper)
from ._convert import JsDict as JsDict
from ._convert import python_from_rpc as python_from_rpc
from ._convert import python_to_rpc as python_to_rpc
from ._entrypoints import LIVE_ENV
from ._entrypoints import DurableObject as DurableObject
from ._entrypoints import WorkerEntrypoint as WorkerEntrypoint
from ._entrypoints import WorkflowEntrypoint as WorkflowEntrypoint
from ._entrypoints import handler as handler
from ._fetch import fetch as fetch
from ._forms import Blob as Blob
from ._forms import File as File
from ._forms import FormData as FormData
from ._globals import import_from_javascript as import_from_javascript
from ._globals import patch_env as patch_env
from ._globals import wait_until as _wait_until
from ._http import FetchResponse as FetchResponse
from ._http import Request as Request
from ._http import Response as Response

__all__ = [
    "Blob",
    "BlobEnding",
    "BlobValue",
    "Body",
    "Context",
    "DurableObject",
    "FetchKwargs",
    "FetchResponse",
    "File",
    "FormData",
    "FormDataValue",
    "Headers",
    "JSBody",
    "Request",
    "RequestInitCfProperties",
    "Response",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "env",
    "fetch",
    "handler",
    "import_from_javascript",
    "patch_env",
    "python_from_rpc",
    "python_to_rpc",
    "waitUntil",
    "wait_until",
]

# Type names the SDK exports for annotations; plain aliases here.
Body = Any
JSBody = Any
Context = Any
FetchKwargs = dict
RequestInitCfProperties = dict
BlobValue = Any


class BlobEnding(StrEnum):
    """The SDK's ``endings`` values (workerd implements neither: passing one raises)."""

    TRANSPARENT = "transparent"
    NATIVE = "native"


FormDataValue = Any

# A package to the import system, so that `import workers.asgi` / `workers.wsgi` (the SDK's
# submodules, given by durable's import hook) work; it holds no files of its own.
__path__: list[str] = []


wait_until = waitUntil = _wait_until  # noqa: N816 - the SDK's names


def __getattr__(name: str) -> Any:
    if name == "env":  # bound or not: bindings are looked up when used, as on Cloudflare
        return LIVE_ENV
    if name in ("asgi", "wsgi", "workflows", "gateway"):  # the SDK's submodules: `from workers import wsgi`
        import importlib

        return importlib.import_module(f"{__name__.rpartition('.')[0]}.{name}")
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
