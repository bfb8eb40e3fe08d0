"""Small helpers shared by several layers."""

from __future__ import annotations

import asyncio
import copyreg
import functools
import inspect
from collections.abc import Callable
from typing import Any, NoReturn, Self, TypeVar

__all__ = [
    "NoPublicConstructor",
    "as_usv_string",
    "as_workerd_text",
    "lone_surrogate_at",
    "open_files_limit",
    "positional_arity",
    "running_loop",
    "shown",
    "unbuilt_safe_repr",
]

T = TypeVar("T")

NOT_ASYNCIO = (
    "{what} needs a running asyncio event loop, and none runs in this thread: durable runs on asyncio, "
    "not on trio (anyio's trio backend, pytest's anyio plugin with anyio_backend='trio') or another "
    "event loop. Run it under asyncio (asyncio.run(main()), anyio.run(main, backend='asyncio'), an "
    "anyio_backend fixture returning 'asyncio'), or from trio use a durable.BlockingRuntime, whose "
    "calls block: await trio.to_thread.run_sync(stub.method, ...)"
)


def running_loop(what: str) -> asyncio.AbstractEventLoop:
    """The running asyncio loop; where none runs (a coroutine driven by trio), ``RuntimeError``
    naming the problem and the fix instead of asyncio's bare "no running event loop"."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(NOT_ASYNCIO.format(what=what)) from None


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


def as_workerd_text(text: str) -> str:
    """``text`` as workerd reads a string it encodes to UTF-8: each lone surrogate becomes U+FFFD per byte.

    workerd writes a lone surrogate as its three-byte form (as Python's ``surrogatepass`` does)
    and decodes with replacement, so ``"\\ud800"`` arrives as three U+FFFD (measured with
    miniflare 4, 2026-04-07: ``ws.send("\\ud800")`` reaches the peer as ``"\\ufffd" * 3``).
    A high surrogate followed by a low one is one character there (a JavaScript string is UTF-16),
    so such a pair is joined first. Returns ``text`` itself when it has no surrogate.
    """
    if lone_surrogate_at(text) is None:
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return joined.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def as_usv_string(text: str) -> str:
    """``text`` as a WebIDL ``USVString``: a surrogate pair joins, each lone surrogate becomes one U+FFFD.

    workerd converts such arguments this way (measured with miniflare 4, 2026-04-07:
    ``ws.close(1000, "\\ud800")`` reaches the peer with reason ``"\\ufffd"``).
    """
    if lone_surrogate_at(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def unbuilt_safe_repr(method: Callable[[T], str]) -> Callable[[T], str]:
    """Wrap a ``__repr__`` so that an instance whose ``__init__`` raised still has a repr.

    pytest shows each argument of the frames of a traceback, ``self`` included: a constructor that
    refuses its input (``Response(status=99)``, ``MockClock("x")``) left ``self`` without the
    fields its ``__repr__`` reads, and the report said ``self = <[AttributeError("'Response'
    object has no attribute 'status'") raised in repr()] ...>`` beside the real error. Such an
    instance now reads ``<Response (not constructed: its __init__ raised)>``.
    """

    @functools.wraps(method)
    def wrapper(self: T) -> str:
        try:
            return method(self)
        except AttributeError:
            return f"<{type(self).__qualname__} (not constructed: its __init__ raised)>"

    return wrapper


def shown(value: object, limit: int = 60, *, text: bool = False) -> str:
    """``repr(value)`` for an error message: cut to ``limit`` characters, and never raising.

    A caller's bad argument can be a list nested 100,000 deep (``repr`` raises RecursionError),
    an int past ``sys.get_int_max_str_digits()`` (ValueError), a 1 MB string, or an object whose
    ``__repr__`` raises; the error that names it must still be the one raised. ``text=True`` shows
    ``str(value)`` instead, for messages that quote workerd's (which shows JavaScript's ``String(v)``).
    """
    try:
        out = str(value) if text else repr(value)
    except Exception:  # any failure of a foreign __repr__ / __str__ falls back to the type
        return f"<{type(value).__name__} object>"
    return out if len(out) <= limit else out[: limit - 3] + "..."


class Handle:
    """Copying a handle (``copy.copy``, ``copy.deepcopy``, ``dataclasses.asdict`` of a structure
    holding one) gives the handle itself; pickling it raises ``TypeError`` naming the fix.

    For what belongs to one runtime: a ``Runtime``, its ``Env``, ``Namespace``, and the blocking
    API's handles. A copy of a runtime was a second ``Runtime`` sharing the first's objects and
    files; a deep copy (or ``asdict``) of the others recursed into the runtime until a
    ``RecursionError``, and pickling failed on a lock, naming nothing of durable's.
    """

    __slots__ = ()
    _unpicklable = ""
    """Why the class's instances cannot be pickled, and what to send instead."""

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: object) -> Self:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError(self._unpicklable)


def rebuilt_exception(exc: BaseException) -> tuple[Any, ...]:
    """``__reduce__`` of an exception whose constructor does not take its ``args`` back.

    BaseException's own reduce calls the class with ``exc.args`` (the message alone), which such a
    constructor refuses or misreads. This one makes the instance with ``__new__``, without calling
    ``__init__``, then sets ``args`` and its attributes (notes included): a subclass with a
    constructor of its own copies and pickles too (``__cause__`` and ``__traceback__`` are dropped,
    as for any exception). For ``WebSocketClosed``, ``JsException`` and ``FetchError``.
    """
    return (copyreg.__newobj__, (type(exc), *exc.args), exc.__dict__)  # type: ignore[attr-defined]  # (not in typeshed)


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
