"""The exception tree of `durable`.

Every error that the runtime itself raises derives from :class:`DurableError`, and also from the
standard-library base a caller would naturally catch (``TypeError`` for bad values, ``ValueError``
for limits). Messages follow Cloudflare's wording wherever Cloudflare has one, so that people can
search for them.

    DurableError
    ├── DataCloneError            (also TypeError)   a value cannot be stored or sent over RPC
    ├── DataCorruptionError       (also ValueError)  stored bytes that the codec cannot read
    ├── StorageLimitError         (also ValueError)  a production storage limit was exceeded
    ├── SqlError                                     SQLite refused a statement (``...: SQLITE_<CODE>``)
    ├── RuntimeClosedError        (also RuntimeError) the runtime was closed, or never entered
    ├── PathLockedError           (also RuntimeError) another live runtime holds the storage path
    ├── InvalidTransactionError   (also RuntimeError) a transaction used outside its closure
    ├── ObjectResetError                             the object was reset; ``durable_object_reset``
    │   └── ObjectAbortedError                       ``ctx.abort()`` was called
    ├── OverloadedError                              the object's queue is full; ``overloaded``
    ├── ConnectionClosedError                        the instance went away mid-call; ``retryable``
    ├── WebSocketClosed                              ``ws.receive()`` on a closed socket (``_websocket``)
    └── WebSocketError                               workerd's WebSocket ``Error``/``DOMException`` cases

Errors raised by the application inside an object are not wrapped: they reach the caller as the
same class with the same message and ``remote = True`` (see :func:`copy_remote_exception`).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = [
    "ConnectionClosedError",
    "DataCloneError",
    "DataCorruptionError",
    "DurableError",
    "InvalidTransactionError",
    "NoFetchHandlerError",
    "ObjectAbortedError",
    "ObjectResetError",
    "OverloadedError",
    "PathLockedError",
    "RpcNotImplementedError",
    "RuntimeClosedError",
    "SqlError",
    "StorageLimitError",
    "copy_exception_value",
    "copy_handler_error",
    "copy_remote_exception",
    "raised_by_handler",
    "use_value_copier",
]


class DurableError(Exception):
    """Root of every error raised by `durable` itself.

    The class attributes mirror the properties Cloudflare adds to errors that cross a stub:
    ``remote`` (raised on the object's side), ``retryable`` (a transient failure, safe to retry an
    idempotent call), ``overloaded`` (do not retry) and ``durable_object_reset`` (the object was
    reset and its in-memory state is gone). The camelCase ``durableObjectReset`` reads the same flag.
    """

    remote: bool = False
    retryable: bool = False
    overloaded: bool = False
    durable_object_reset: bool = False

    @property
    def durableObjectReset(self) -> bool:  # noqa: N802 - Cloudflare's spelling
        return self.durable_object_reset


class DataCloneError(DurableError, TypeError):
    """A value is not of a type that structured clone (storage or RPC) can carry."""


class RpcNotImplementedError(DataCloneError, NotImplementedError):
    """Kept for code that catches it: nothing raises it since functions and ``RpcTarget``
    instances cross RPC as stubs. Both a ``DataCloneError`` and a ``NotImplementedError``."""


class NoFetchHandlerError(DurableError, TypeError):
    """``stub.fetch()`` reached a class that has no ``fetch`` handler.

    workerd raises a plain ``Error`` (``Handler does not export a fetch() function.``), which
    durable, as for workerd's other errors, raises as a ``DurableError``; it is a ``TypeError``
    too, as durable raised it before (measured with miniflare 4, 2026-04-07).
    """


class DataCorruptionError(DurableError, ValueError):
    """Stored bytes could not be decoded: not written by this codec, or damaged."""


class StorageLimitError(DurableError, ValueError):
    """A key, value or batch exceeded a production Cloudflare limit (see ``Runtime(limits=...)``)."""


class SqlError(DurableError):
    """SQLite refused a statement. The message ends with ``: SQLITE_<CODE>`` when SQLite gave one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RuntimeClosedError(DurableError, RuntimeError):
    """The runtime was used after ``aclose()`` (or before it was started)."""


class PathLockedError(DurableError, RuntimeError):
    """Another live runtime, in this process or another, already holds the storage path."""


class InvalidTransactionError(DurableError, RuntimeError):
    """A transaction handle was used after it committed or rolled back, or misused inside one."""


class ObjectResetError(DurableError):
    """The Durable Object was reset: in-memory state is gone and unflushed writes were dropped.

    The stub that saw this error is broken, as on Cloudflare: later calls on it raise the same
    error. Get a new stub from the namespace to reach a fresh instance.
    """

    durable_object_reset = True


class ObjectAbortedError(ObjectResetError):
    """The object called ``ctx.abort(reason)``.

    ``retry_alarm`` is False when the abort asked that an ``alarm()`` it interrupts not be retried
    (``ctx.abort(reason, retry_alarm=False)``).
    """

    retry_alarm: bool = True


class OverloadedError(DurableError):
    """The object has too many calls queued; Cloudflare advises not to retry."""

    overloaded = True


class ConnectionClosedError(DurableError):
    """The instance that was serving the call is no longer active (evicted or shut down)."""

    retryable = True


_FLAGS: Final = ("retryable", "overloaded", "durable_object_reset")


def copy_remote_exception(exc: BaseException, *, flags: bool = True) -> BaseException:
    """Return a copy of an exception raised inside an object, as the caller should see it.

    Like Cloudflare, the class and the message travel: the traceback and ``__cause__`` stay
    behind, and the copy has ``remote = True``. Its arguments are copies (structured clone), so
    the caller cannot reach the object's values through them; arguments that cannot be copied
    travel as the message. The copy says what the original says: ``cls(*args)`` is used if it
    gives the same message (a class that formats its message in ``__init__`` would format it
    again); else the instance is made without running ``__init__``, with copies of the
    attributes it had (its ``__str__`` may read them).
    A ``StopIteration`` (which no future may hold) arrives as a ``RuntimeError`` naming it.

    Errors of the runtime itself keep their flags (``durable_object_reset``, ``overloaded``,
    ``retryable``); with ``flags=False`` (an error that an object received from another call and
    let through, as workerd does) the copy carries none of them.
    """
    if isinstance(exc, (StopIteration, StopAsyncIteration)):
        said = _message(exc)
        copy: BaseException = RuntimeError(f"the handler raised {type(exc).__name__}{': ' if said else ''}{said}")
    elif isinstance(exc, BaseExceptionGroup):
        copy = _copy_group(exc, lambda e: copy_remote_exception(e, flags=flags), thrown=True)
    else:
        with _copying(exc) as existing:
            copy = existing if existing is not None else _copy_plain(exc)
        args = copy.args
        if len(args) == 1 and type(args[0]) is str and _odd_message(args[0]):
            # (rare: only an odd message takes this path) A thrown error, which may have reset
            # the object too (a blockConcurrencyWhile() callback, a constructor); not an abort()
            # reason, whose NUL stays in workerd (State.abort drops its leading spaces).
            if not isinstance(exc, ObjectResetError):
                _message_as_thrown(copy, args[0])
    for flag in _FLAGS:
        # Flags the runtime set on an application error (a constructor that raised, say) travel
        # too, so a broken stub raises "the same error" with them.
        try:
            if not flags:
                if getattr(copy, flag, False):
                    setattr(copy, flag, False)
            elif getattr(exc, flag, False) is True and getattr(copy, flag, False) is not True:
                setattr(copy, flag, True)
        except AttributeError:  # pragma: no cover - a class with __slots__ and no __dict__
            pass
    try:
        copy.remote = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - a class with __slots__ and no __dict__
        pass
    return copy


def copy_handler_error(exc: BaseException) -> BaseException:
    """The copy of an error that an object's handler raised, as the caller of that event sees it.

    As workerd does (measured with miniflare 4, 2026-04-07, flags set on a thrown ``Error``, and on
    one the handler got from another object's call and let through or rethrew): an error of the
    handler is an error of the call, not a reset of the object, so a ``durable_object_reset`` it
    carries stays behind; the ``retryable`` and ``overloaded`` it carries when raised travel
    (``overloaded`` alone when both do), whoever set them.
    """
    copy = copy_remote_exception(exc)
    if isinstance(exc, ObjectResetError) and len(copy.args) == 1 and type(copy.args[0]) is str:
        if _odd_message(copy.args[0]):
            # A reset error the handler got from another object's call and let through: thrown on,
            # its message travels as any thrown error's (an abort() reason's NUL stays only on the
            # hop from the reset object: workerd, miniflare 4.20260426, A relaying B's
            # ctx.abort("x\0y") failed A's caller with "x"; run_rpc.py 250 --seed 9747).
            _message_as_thrown(copy, copy.args[0])
    with contextlib.suppress(AttributeError):  # a class with __slots__ and no __dict__
        for flag in ("retryable", "overloaded"):
            # What the raised error says now: a flag the handler cleared on an error it caught
            # (a runtime error's class sets it) stays cleared.
            if getattr(exc, flag, False) is not True and getattr(copy, flag, False):
                setattr(copy, flag, False)
        if getattr(copy, "durable_object_reset", False):
            copy.durable_object_reset = False  # type: ignore[attr-defined]
        if getattr(copy, "overloaded", False) and getattr(copy, "retryable", False):
            copy.retryable = False  # type: ignore[attr-defined]
        if isinstance(copy, DurableError):  # (the only errors a flag makes break a stub)
            setattr(copy, _HANDLER_MARK, True)
    return copy


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _odd_message(message: str) -> bool:
    """Whether workerd would change ``message`` when it carries it as text (see below)."""
    return "\0" in message or message[:1] == " " or (not message.isascii() and _SURROGATE.search(message) is not None)


def _message_as_thrown(copy: BaseException, message: str) -> None:
    """Give ``copy`` (a thrown error's copy whose message is its one argument) the message the
    caller gets in workerd, which carries a thrown error's message as text: it ends at the first NUL
    character, and a built-in class's loses its leading spaces (measured with miniflare 4,
    2026-04-07: ``throw new TypeError(" a\\0b")`` in a method, an ``RpcTarget``'s method, a
    callback or a ``blockConcurrencyWhile()`` callback (which resets the object) arrives as
    ``TypeError: a``; tabs, newlines and trailing spaces stay; an ``Error``
    sent as a value keeps its message whole). The message of another class arrives in workerd as
    ``"Name: message"``, whose spaces after the colon stay, so only the NUL cuts it here."""
    if _message(copy) != message or type(copy) is DataCloneError:
        # A __str__ of its own says something else: leave it. A DataCloneError stands for a
        # DOMException, whose thrown message workerd carries whole (miniflare 4, 2026-04-07).
        return
    said = _thrown_text(message, type(copy))
    if said == message:
        return
    before = copy.args
    try:
        copy.args = (said,)
        if getattr(copy, "msg", None) == message:
            copy.msg = said  # type: ignore[attr-defined]  # SyntaxError, ImportError: their str() is .msg
    except Exception:  # a class that refuses it (a frozen dataclass): the message stays whole
        with contextlib.suppress(Exception):
            copy.args = before


def _thrown_text(message: str, cls: type) -> str:
    """``message``, of an error of class ``cls``, as workerd carries a thrown one (see above)."""
    said = message.split("\0", 1)[0]
    if _SURROGATE.search(said):
        # Text is UTF-8 there: a lone surrogate becomes U+FFFD (miniflare 4, 2026-04-07:
        # "a\ud800b" arrives as "a\ufffdb"), a pair of surrogates is one character.
        said = said.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if str(cls.__module__).partition(".")[0] in ("builtins", "durable"):
        # durable's own classes stand for workerd's built-in Error (docs/differences.md
        # "error-classes"): throw new Error("  a") arrives as "a" (miniflare 4, 2026-04-07).
        said = said.lstrip(" ")
    return said


def copy_exception_value(exc: BaseException) -> BaseException:
    """The copy of an exception sent as a *value* (an RPC argument or result, not raised).

    As workerd does for an ``Error`` in an argument or result (measured with miniflare 4,
    2026-04-07): the class and message travel as for a raised error, and so does the cause
    (``__cause__``, copied the same way), which a raised error leaves behind; the traceback and
    ``__context__`` stay behind, and the copy carries none of the flags (``remote``,
    ``retryable``, ``overloaded``, ``durable_object_reset``), even when it was received from
    another call. A cause chain that loops back loops back in the copy too (as in workerd); a chain of any
    length is copied. The members of an ``ExceptionGroup`` are copied the same way (with their
    causes).
    """
    copies: dict[int, BaseException] = {}
    first: BaseException | None = None
    last: BaseException | None = None
    current: BaseException | None = exc
    while current is not None:  # (a loop, not recursion: a chain of any length)
        copy = copies.get(id(current))
        looped = copy is not None
        if copy is None:
            copy = copies[id(current)] = _copy_value_one(current)
        if last is None:
            first = copy
        else:
            last.__cause__ = copy
        if looped:
            break
        last = copy
        current = current.__cause__
    assert first is not None
    return first


def _copy_value_one(exc: BaseException) -> BaseException:
    with _copying(exc) as existing:
        if existing is not None:
            return existing  # an attribute of the exception being copied holds it: the same copy
        copy = _copy_group(exc, copy_exception_value) if isinstance(exc, BaseExceptionGroup) else _copy_plain(exc)
    with contextlib.suppress(AttributeError):  # a class with __slots__ and no __dict__
        for flag in ("remote", *_FLAGS):
            if getattr(copy, flag, False):
                setattr(copy, flag, False)
    return copy


class _Copying(threading.local):
    """The exceptions being copied in this thread, each with its copy once it is built (``None``
    before): an exception whose arguments or attributes hold itself is copied once."""

    def __init__(self) -> None:
        self.copies: dict[int, BaseException | None] = {}


_COPYING: Final = _Copying()


@contextlib.contextmanager
def _copying(exc: BaseException) -> Iterator[BaseException | None]:
    """Mark ``exc`` as being copied; yield its copy if it already is (a cycle through it).

    A cycle through its arguments, which ``cls(*args)`` needs before the copy exists, raises
    ``TypeError``: the arguments then travel as the message, as any that cannot be copied do.
    """
    copies = _COPYING.copies
    key = id(exc)
    if key in copies:
        existing = copies[key]
        if existing is None:
            raise TypeError(f"the arguments of a {type(exc).__name__} hold the exception itself")
        yield existing
        return
    copies[key] = None
    try:
        yield None
    finally:
        del copies[key]


def _built(exc: BaseException, copy: BaseException) -> BaseException:
    """Record ``copy`` as the copy of ``exc`` (see :func:`_copying`), with what ``cls(*args)``
    does not set: a ``SqlError``'s ``code``."""
    if id(exc) in _COPYING.copies:
        _COPYING.copies[id(exc)] = copy
    if isinstance(exc, SqlError) and isinstance(copy, SqlError):
        copy.code = exc.code
    return copy


_HANDLER_MARK: Final = "_durable_raised_by_handler"


def raised_by_handler(exc: BaseException) -> bool:
    """Whether ``exc`` is a :func:`copy_handler_error` copy: an error of the call, which breaks no
    stub whatever its flags (workerd: an overloaded error an object let through leaves the caller's
    stub to it working), unlike the runtime's own reset, overload and lost-connection errors."""
    return getattr(exc, _HANDLER_MARK, False) is True


def _as_it_is(value: Any) -> Any:
    return value


_copy_value: Callable[[Any], Any] = _as_it_is
"""How an exception's arguments are copied: ``_codec.clone``, which the codec installs when it is
imported (with :func:`use_value_copier`; the codec imports this module, not the reverse)."""


def use_value_copier(copier: Callable[[Any], Any]) -> None:
    """Copy exceptions' arguments with ``copier`` (structured clone; ``durable._codec`` sets it)."""
    global _copy_value
    _copy_value = copier


def _copy_plain(exc: BaseException) -> BaseException:
    cls = type(exc)
    message = _message(exc)
    args: tuple[Any, ...]
    files: tuple[Any, ...] = ()
    try:
        args = _copy_value(exc.args)
        if isinstance(exc, OSError) and len(args) == 2 and (exc.filename is not None or exc.filename2 is not None):
            # OSError(errno, strerror, filename, winerror, filename2) keeps only (errno, strerror)
            # in args; its message names the files, so they travel too.
            files = _copy_value((exc.filename, None, exc.filename2))
    except Exception:
        args = (message,)  # what cannot be copied travels as the message
    try:
        copy = cls(*args, *files)
        if _message(copy) == message:
            return _built(exc, copy)
    except Exception:
        pass
    # A constructor with another signature, or one that would say something else: build the
    # instance without running it, as structured clone does for error types, with the arguments
    # and the attributes that can be copied (a __str__ may read them).
    try:
        copy = cls.__new__(cls, *args)
    except Exception:
        copy = cls.__new__(cls)
    BaseException.__init__(copy, *args)
    _built(exc, copy)
    if isinstance(exc, OSError):
        # What an OSError's message is made of: a subclass with its own __init__ leaves it unset.
        for name in ("errno", "strerror", "filename", "filename2"):
            if (value := getattr(exc, name)) is not None:  # (a filename2 of None would be shown)
                with contextlib.suppress(Exception):
                    setattr(copy, name, _copy_value(value))
    for name, value in getattr(exc, "__dict__", {}).items():
        if name == _HANDLER_MARK:
            continue  # says how this copy was made, not what the error says
        try:
            setattr(copy, name, _copy_value(value))
        except Exception:
            continue
    return copy


def _message(exc: BaseException) -> str:
    """``str(exc)``, or what can be said of it if its ``__str__`` fails (copying never raises)."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message could not be read>"


def _copy_group(
    exc: BaseExceptionGroup[Any], copy_member: Callable[[BaseException], BaseException], *, thrown: bool = False
) -> BaseException:
    inner = [copy_member(e) for e in exc.exceptions]
    cls = type(exc)
    message = exc.message
    if thrown and type(message) is str and _odd_message(message):
        # Raised, its message travels as a thrown error's (workerd, miniflare 4, 2026-04-07:
        # throw new AggregateError([e], "  a\0b") arrives with message "a").
        message = _thrown_text(message, cls)
    try:
        return cls.__new__(cls, message, inner)  # (no __init__: a subclass may take other arguments)
    except Exception:
        return BaseExceptionGroup(message, inner)
