"""An object's class as its host sees it: how an instance is built, and how each event calls into it.

:class:`ObjectClass` is the seam between an :class:`~durable._host.ObjectHost` (which orders events,
commits and resets) and the application's class: it constructs the instance (after applying the
point-in-time or snapshot restore the last instance asked for), resolves what RPC may reach (Cloudflare's
rules live in ``durable._object``), dispatches each kind of event, and checks what an event
returns (a structured-clone copy of an RPC result; a ``Response`` from ``fetch``).

Layer 0: it knows the host only through the arguments of its methods.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ._codec import clone
from ._exceptions import ObjectResetError
from ._history import History
from ._object import call_fetch, call_method, check_response, read_property, rpc_table
from ._output_gate import reset_copy
from ._snapshot import PendingRestore

if TYPE_CHECKING:
    from ._alarm_state import AlarmState
    from ._object import DurableObject
    from ._sqlite import ObjectDatabase
    from ._state import State

__all__ = ["EventKind", "ObjectClass"]

log = logging.getLogger("durable")

_CONSTRUCTOR_CANCELLED = (
    "The constructor of Durable Object class {} raised asyncio.CancelledError (a future it read was "
    "cancelled). durable reports it as this error, so that the caller does not take it for its own "
    "cancellation; the object was reset."
)

EventKind = Literal["rpc", "get", "fetch", "alarm", "run"]
"""What an event is: an RPC call, a property read over RPC, a fetch, an alarm, or test code run in the object."""


def _apply_snapshot(db: ObjectDatabase) -> bool:
    """Replace the storage with the snapshot ``ctx.on_next_session_restore()`` scheduled, if any.

    The pending restore is removed only once the database holds the image (one atomic copy): a
    crash in between applies it again at the next start, never half of it.
    """
    pending = PendingRestore(db)
    waiting = pending.waiting()
    if waiting is None:
        return False
    image, undo = waiting
    history = db.history
    if isinstance(history, History):
        history.apply_image(db, image, undo)
    else:
        db.load_image(image)
    pending.done()
    return True


_warned_init: weakref.WeakSet[type] = weakref.WeakSet()
"""The classes whose constructor was found to skip ``super().__init__`` (each is named once)."""
_UNSET: Any = object()


def _has_ctx(instance: object) -> bool:
    """Whether ``instance.ctx`` may be read, found without running the class's code.

    A ``ctx`` property or a ``__getattr__`` that raises must not fail a constructor that ran
    (``hasattr`` ran them, and raised their error out of the construction); a class with its own
    ``__getattr__`` may well answer ``ctx``, so it counts as having one.
    """
    try:
        if "ctx" in object.__getattribute__(instance, "__dict__"):
            return True  # the usual case, in 50 ns (the static lookup takes ~10 us)
    except AttributeError:
        pass  # no __dict__
    if inspect.getattr_static(instance, "ctx", _UNSET) is not _UNSET:
        return True
    return inspect.getattr_static(type(instance), "__getattr__", None) is not None


class ObjectClass:
    """The class of one hosted object, with what its host needs to build and call its instances."""

    __slots__ = ("_alarms", "_reset", "cls", "has_alarm_handler", "rpc")

    def __init__(self, cls: type[DurableObject], alarms: AlarmState, reset: Callable[[BaseException], None]) -> None:
        self.cls = cls
        self._reset = reset
        self.has_alarm_handler = callable(getattr(cls, "alarm", None))
        """Whether the class defines ``alarm()`` (``set_alarm`` needs one)."""
        self._alarms = alarms
        self.rpc = rpc_table(cls)
        """``name -> (function, class attribute, plain?)`` for the names RPC has resolved on ``cls``
        (``durable._object.rpc_table``); :meth:`plain_method` reads it, and so does the host's fast
        path, inlined (with the host's inlined end of an event: 720 of ~96,000 instructions per
        sequential increment, see docs/performance.md)."""

    def construct(self, state: State, env: Any, db: ObjectDatabase) -> DurableObject:
        """A new instance, ``cls(state, env)``.

        Before it starts, the restore the last instance asked for (PITR) is applied; the alarm
        returns with the rest of the storage, so the scheduler learns of it as of a commit. If the
        constructor (or the restore) raises, the object is reset with a copy of the error marked
        ``durable_object_reset``, and that copy is raised (workerd resets an object whose
        constructor throws).
        """
        try:
            history = db.history
            restored = isinstance(history, History) and history.begin_session(db, self._alarms.restoring)
            if _apply_snapshot(db):
                restored = True
            if restored:
                self._alarms.restored()
            instance = self.cls(state, env)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                # Raised by the constructor's own code (it cannot await, so nothing cancelled it):
                # the caller must not take it for its own cancellation, as for a handler's.
                error: BaseException = ObjectResetError(_CONSTRUCTOR_CANCELLED.format(self.cls.__name__))
            else:
                error = reset_copy(exc, keep_cause=False)
            log.warning("durable: constructor of %s raised; the object is reset", self.cls.__name__, exc_info=exc)
            self._reset(error)
            raise error from None
        if not _has_ctx(instance) and self.cls not in _warned_init:
            # A subclass __init__ that skipped super().__init__(ctx, env): self.ctx fails later with
            # Python's bare AttributeError, so say why now, once per class (a class that keeps the
            # state as self.state works, and would log it for every object it makes). Not a
            # __getattr__ on DurableObject: on 3.11 that makes every attribute read ~3x slower.
            _warned_init.add(self.cls)
            log.warning(
                "durable: %s.__init__ did not call super().__init__(ctx, env), so self.ctx and "
                "self.env are not set and reading them raises AttributeError",
                self.cls.__qualname__,
            )
        return instance

    def plain_method(self, name: str) -> Any:
        """The plain function RPC reaches for ``name``, if it was resolved before; else None.

        None as well for anything but a plain function, or one replaced on the class since it
        was resolved (a test's monkeypatch): the host then takes its general path (``dispatch``).
        """
        entry = self.rpc.get(name)
        if entry is None or entry[2] is None or getattr(self.cls, name, None) is not entry[1]:
            return None
        return entry[0]

    def dispatch(
        self,
        instance: DurableObject,
        state: State | None,
        kind: EventKind,
        name: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Start the event on ``instance``: what the handler returns (maybe an awaitable)."""
        if kind == "rpc":
            return call_method(self.cls, instance, name, args, kwargs)
        if kind == "get":
            return read_property(self.cls, instance, name)
        if kind == "fetch":
            return call_fetch(instance, args[0])
        if kind == "alarm":
            return self._alarms.run(instance, args[0])
        if kind == "run":
            return name(instance, state)
        raise AssertionError(kind)  # pragma: no cover

    @staticmethod
    def result(kind: EventKind, value: Any, args: tuple[Any, ...] = ()) -> Any:
        """What the event's caller gets for ``value``: a copy over RPC, a checked ``Response`` from
        ``fetch`` (whose request is ``args[0]``)."""
        if kind == "rpc" or kind == "get":
            return clone(value)
        if kind == "fetch":
            return check_response(value, args[0] if args else None)
        return value
