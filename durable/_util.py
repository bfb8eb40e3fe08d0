"""Small helpers shared by several layers."""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

__all__ = ["NoPublicConstructor", "lone_surrogate_at"]

T = TypeVar("T")


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
