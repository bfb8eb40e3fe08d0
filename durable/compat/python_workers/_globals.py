"""The SDK's module-level names that reach the running request or the served env.

``workers.wait_until`` / ``waitUntil`` (``cloudflare:workers``' ``waitUntil``: background work for
the request or Durable Object call in progress), ``workers.import_from_javascript`` (for
``"cloudflare:workers"``: ``env`` and ``waitUntil``) and ``workers.patch_env`` (a context manager
overriding names of ``workers.env``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from durable._context import running_host

from .pyodide.ffi import JsException

__all__ = [
    "GLOBAL_SCOPE_ERROR",
    "current_request",
    "import_from_javascript",
    "patch_env",
    "patched_env",
    "running_env",
    "tracks_request",
    "wait_until",
]

F = TypeVar("F", bound=Callable[..., Any])

GLOBAL_SCOPE_ERROR = (
    "Disallowed operation called within global scope. Asynchronous I/O (ex: fetch() or connect()), "
    "setting a timeout, and generating random values are not allowed within global scope. To fix this "
    "error, perform this operation within a handler. https://developers.cloudflare.com/workers/runtime-apis/handlers/"
)
"""workerd's text for ``waitUntil`` called outside any request (measured: miniflare 4, 2026-04-07)."""

_request: ContextVar[Any] = ContextVar("durable_python_workers_request", default=None)
_patch: ContextVar[Mapping[str, Any] | None] = ContextVar("durable_python_workers_env_patch", default=None)
_request_env: ContextVar[Any] = ContextVar("durable_python_workers_request_env", default=None)


def tracks_request(fetch: F) -> F:
    """Wrap a Worker's ``fetch`` so that ``wait_until`` inside it reaches the Worker's ``self.ctx``."""

    @functools.wraps(fetch)
    async def handler(self: Any, *args: Any) -> Any:
        token = _request.set(getattr(self, "ctx", None))
        env_token = _request_env.set(getattr(self, "env", None))
        try:
            result = fetch(self, *args)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            _request_env.reset(env_token)
            _request.reset(token)

    return handler  # type: ignore[return-value]


def current_request() -> Any:
    """The ``ctx`` of the Worker request in progress (``None`` outside any Worker's ``fetch``)."""
    return _request.get()


def running_env() -> Any:
    """The env of the request or Durable Object call in progress (``None`` outside any).

    Inside a Durable Object's code it is its runtime's env; inside a Worker's ``fetch``, the
    Worker's ``self.env``. On Cloudflare each Worker has its own isolate, so ``workers.env`` is
    always its own; in one process serving two projects, this is what tells them apart.
    """
    host = running_host()
    if host is not None:
        return host.runtime.env
    return _request_env.get()


def wait_until(work: Awaitable[Any]) -> None:
    """``cloudflare:workers``' ``waitUntil``: keep ``work`` running after the current call returns.

    Inside a Durable Object's code it is the object's ``ctx.waitUntil``; inside a Worker's
    ``fetch``, the Worker's.

    Raises:
        JsException: called outside any request or object call (workerd's "Disallowed operation
            called within global scope" error).
        TypeError: ``work`` is not awaitable.
    """
    host = running_host()
    if host is not None:
        host.background.wait_until(work)
        return
    ctx = _request.get()
    if ctx is None:
        if inspect.iscoroutine(work):
            work.close()  # refused: no "never awaited" warning on top of the error (as ctx.wait_until)
        raise JsException("Error", GLOBAL_SCOPE_ERROR)
    ctx.waitUntil(work)


class _PatchedEnv:
    """An env with some names overridden (``patch_env``); ``base`` may be ``None`` (nothing bound)."""

    __slots__ = ("_base", "_patch")

    def __init__(self, base: Any, patch: Mapping[str, Any]) -> None:
        self._base = base
        self._patch = patch

    def __getattr__(self, name: str) -> Any:
        if name in self._patch:
            return self._patch[name]
        if self._base is None:
            raise AttributeError(name)
        return getattr(self._base, name)

    def __contains__(self, name: object) -> bool:
        return name in self._patch or (self._base is not None and name in self._base)

    def __iter__(self) -> Iterator[str]:
        seen = dict.fromkeys(self._patch)
        if self._base is not None:
            seen.update(dict.fromkeys(self._base))
        return iter(seen)

    def __dir__(self) -> list[str]:
        return list(self)


def patched_env(base: Any) -> Any:
    """``base`` (the served env, or ``None``) with the overrides of the enclosing ``patch_env``, if any."""
    patch = _patch.get()
    return base if patch is None else _PatchedEnv(base, patch)


@contextlib.contextmanager
def patch_env(d: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None, **kwds: Any) -> Iterator[None]:
    """Override names of ``workers.env`` inside the ``with`` block (the SDK's ``patch_env``).

    ``patch_env({"NAME": value})``, ``patch_env([("NAME", value)])`` or ``patch_env(NAME=value)``;
    blocks nest, and the overrides are seen by the code of this task (and tasks it starts).
    """
    overrides = {**(dict(d) if d else {}), **kwds}
    outer = _patch.get()
    token = _patch.set({**(outer or {}), **overrides})
    try:
        yield
    finally:
        _patch.reset(token)


_NOT_EMULATED_EXPORTS = frozenset(
    {
        "DurableObject",
        "WorkerEntrypoint",
        "WorkflowEntrypoint",
        "RpcTarget",
        "RpcStub",
        "RpcPromise",
        "RpcProperty",
        "ServiceStub",
        "exports",
        "withEnv",
        "withExports",
        "withEnvAndExports",
    }
)


class CloudflareWorkersModule:
    """What ``import_from_javascript("cloudflare:workers")`` gives: ``env`` and ``waitUntil``."""

    __slots__ = ()

    @property
    def env(self) -> Any:
        """The served project's env, as ``workers.env`` gives it."""
        from ._entrypoints import LIVE_ENV

        return LIVE_ENV

    @property
    def waitUntil(self) -> Callable[[Awaitable[Any]], None]:
        """:func:`wait_until`."""
        return wait_until

    def __getattr__(self, name: str) -> Any:
        if name in _NOT_EMULATED_EXPORTS:
            raise NotImplementedError(
                f"cloudflare:workers' {name} is not emulated by durable: use the workers module's classes"
            )
        raise AttributeError(f"module 'cloudflare:workers' has no export {name!r}")

    def __repr__(self) -> str:
        return "<JavaScript module 'cloudflare:workers' (durable)>"


_MODULE = CloudflareWorkersModule()


# What to use instead of a JavaScript module durable does not emulate (CPython has its own).
_INSTEAD = {
    "cloudflare:sockets": "open TCP connections with asyncio.open_connection()",
    "node:crypto": "use hashlib, hmac and secrets",
    "node:buffer": "use bytes",
    "node:path": "use posixpath",
}


def import_from_javascript(module_name: str) -> Any:
    """The SDK's ``import_from_javascript``: ``"cloudflare:workers"`` gives its ``env`` and ``waitUntil``.

    Raises:
        NotImplementedError: a module of the Workers runtime that `durable` does not emulate
            (``cloudflare:sockets``, ``node:...``).
        ImportError: any other name (there are no JavaScript modules), as the SDK raises for a
            module that cannot be imported.
    """
    if module_name == "cloudflare:workers":
        return _MODULE
    if module_name.startswith(("cloudflare:", "node:")):
        instead = _INSTEAD.get(module_name, "use a Python library for it")
        raise NotImplementedError(
            f"import_from_javascript({module_name!r}) is not supported by durable; "
            f"only 'cloudflare:workers' (env, waitUntil) is emulated: {instead}"
        )
    raise ImportError(f"Failed to import '{module_name}': there are no JavaScript modules under durable")
