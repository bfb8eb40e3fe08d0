"""Small helpers shared by several layers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

__all__ = ["NoPublicConstructor", "lone_surrogate_at", "open_files_limit", "positional_arity"]

T = TypeVar("T")


def open_files_limit() -> int | None:
    """The soft limit on open files (``RLIMIT_NOFILE``), or None where there is none or no way to tell.

    The defaults that must fit under it (``default_max_live_objects``, ``durable serve``'s
    ``default_max_connections``) derive from it.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def lone_surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (which UTF-8 cannot carry), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


class NoPublicConstructor(type):
    """Metaclass for types the runtime mints and users never construct (trio's pattern).

    ``Cls(...)`` raises ``TypeError``; the library builds instances with ``Cls._create(...)``.
    """

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor{getattr(cls, '_how_to_get', '')}"
        )

    def _create(cls: type[T], *args: Any, **kwargs: Any) -> T:
        return super().__call__(*args, **kwargs)  # type: ignore[misc, no-any-return]


_arities: dict[Any, int | None] = {}


def positional_arity(func: Callable[..., Any]) -> int | None:
    """How many positional arguments ``func`` takes (None: any number), remembered per function.

    Handlers may declare fewer parameters than the runtime passes (``async def alarm(self)``,
    ``web_socket_close(self, ws)``): JavaScript drops extra arguments, and so does durable.
    """
    key = getattr(func, "__func__", func)
    try:
        return _arities[key]
    except KeyError:
        pass
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        count: int | None = None
    else:
        count = 0
        for param in params:
            if param.kind is param.VAR_POSITIONAL:
                count = None
                break
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                count += 1
    _arities[key] = count
    return count
