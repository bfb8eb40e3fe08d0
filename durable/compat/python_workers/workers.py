"""The ``workers`` module of Cloudflare's Python Workers SDK, as `durable` provides it.

While :func:`durable.compat.python_workers.install` is in effect, ``import workers`` gives this
module. Its names follow the SDK's ``workers.__all__``; ``env`` is the served project's env
(through the same wrappers as ``self.env``). What `durable` does not emulate (``Blob``,
``FormData``, outbound ``fetch``, Workflows) raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

from typing import Any

from durable import Headers as Headers

from ._bindings import ContextAdapter as DurableObjectContext  # noqa: F401 - the SDK's name
from ._bindings import DurableObjectAbort as DurableObjectAbort
from ._convert import JsDict as JsDict
from ._convert import python_from_rpc as python_from_rpc
from ._convert import python_to_rpc as python_to_rpc
from ._entrypoints import DurableObject as DurableObject
from ._entrypoints import WorkerEntrypoint as WorkerEntrypoint
from ._entrypoints import WorkflowEntrypoint as WorkflowEntrypoint
from ._entrypoints import current_env
from ._entrypoints import handler as handler
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
BlobEnding = str
FormDataValue = Any


class _NotEmulated:
    """A name of the SDK that `durable` does not emulate: using it raises ``NotImplementedError``."""

    def __init__(self, name: str, hint: str) -> None:
        self._name = name
        self._hint = hint

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"workers.{self._name} is not supported by durable; {self._hint}")

    def __repr__(self) -> str:
        return f"<workers.{self._name}: not supported by durable>"


Blob = _NotEmulated("Blob", "use bytes")
File = _NotEmulated("File", "use bytes")
FormData = _NotEmulated("FormData", "parse the body yourself")
fetch = _NotEmulated("fetch", "outbound HTTP is not emulated; call another Durable Object through its stub")
import_from_javascript = _NotEmulated("import_from_javascript", "there is no JavaScript runtime")


def patch_env(*args: Any, **kwargs: Any) -> Any:
    """Not supported: ``workers.env`` is the served project's env."""
    raise NotImplementedError("workers.patch_env() is not supported by durable")


def __getattr__(name: str) -> Any:
    if name == "env":
        return current_env()
    if name in ("wait_until", "waitUntil"):
        raise NotImplementedError(
            "the module-level workers.wait_until is not supported by durable; "
            "use self.ctx.waitUntil(...) in the Worker or Durable Object"
        )
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
