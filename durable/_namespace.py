"""Namespaces: one per Durable Object class binding, minting ids and stubs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from ._aliases import camel_aliases
from ._id import DurableObjectId, IdFactory
from ._stub import Stub
from ._util import Handle, NoPublicConstructor, shown

if TYPE_CHECKING:
    from ._host import ObjectHost
    from ._runtime import Runtime

__all__ = ["Namespace"]

T = TypeVar("T")


@final
@camel_aliases
class Namespace(Handle, Generic[T], metaclass=NoPublicConstructor):
    """The binding of one Durable Object class in a runtime (Cloudflare's ``DurableObjectNamespace``).

    Made by ``runtime.namespace(cls)``. Ids and stubs are cheap and create nothing: an object
    comes to life on its first call, and has storage only once it writes.

    Example::

        counters = rt.namespace(Counter)
        stub = counters.get(counters.id_from_name("A"))     # or counters.get_by_name("A")
        await stub.increment()
    """

    __slots__ = ("cls", "ids", "name", "runtime", "storage")

    _how_to_get = ": use runtime.namespace(cls)"

    cls: type[T]
    name: str
    storage: str
    runtime: Runtime
    """The runtime that hosts the namespace's objects (for the package: stubs reach hosts through it)."""
    ids: IdFactory
    """Mints and checks the namespace's ids (for the package: the runtime rebuilds ids from file names)."""

    def __init__(self, runtime: Runtime, cls: type[T], name: str, storage: str) -> None:
        self.runtime = runtime
        self.cls = cls
        self.name = name
        self.storage = storage
        self.ids = IdFactory(name)

    _unpicklable = (
        "a durable.Namespace cannot be pickled: it belongs to its runtime; call "
        "runtime.namespace(cls) (or use the object's env binding) where it is needed"
    )

    def __repr__(self) -> str:
        return f"<durable.Namespace {self.name!r} of {self.cls.__name__} ({self.storage})>"

    def id_from_name(self, name: str) -> DurableObjectId:
        """The id for ``name``: always the same for the same name in this namespace.

        A name with a lone surrogate (``"\\ud800"``) works as in workerd: the id is derived from
        its UTF-8 bytes (the surrogate encoded as if it were a character), and ``id.name`` reads
        those bytes back with U+FFFD for each byte that is not valid UTF-8 (``"\\ufffd" * 3``).

        A ``str`` subclass (a ``StrEnum`` member) is taken as its text: ``id.name`` is a plain
        ``str``, as workerd's is always a string (a member kept there could not cross RPC, and
        came back a ``str`` from a persisted runtime).

        Raises ``TypeError`` for a name that is not a ``str``.
        """
        return self._from_name(name, "idFromName")

    def _from_name(self, name: str, caller: str) -> DurableObjectId:
        """``id_from_name`` for ``caller`` (the camelCase name its ``TypeError`` gives)."""
        oid = self.ids.from_name(name, caller)
        if type(name) is not str or not name.isascii():  # (an ASCII str: no work added)
            text = str.__str__(name)  # a str subclass's text; a str itself
            readable = _as_workerd_reads(text)
            if readable is not name:
                oid = self.ids.from_string(oid.to_string(), name=readable)
        return oid

    def new_unique_id(self, **options: Any) -> DurableObjectId:
        """A new random id, whose ``name`` is ``None``. Keep ``str(id)`` to reach it again.

        Raises ``NotImplementedError`` for the ``jurisdiction`` option (any value but ``None``),
        which `durable` does not implement (workerd does not either). Other options are ignored,
        as workerd ignores them (``newUniqueId({foo: 1})`` makes an id, miniflare 4) and as
        :meth:`get` does.
        """
        if options and options.get("jurisdiction") is not None:
            raise NotImplementedError("Jurisdiction restrictions are not implemented in durable.")
        return self.ids.unique()

    def jurisdiction(self, name: str | None = None) -> Namespace[T]:
        """Cloudflare's namespace restricted to a jurisdiction (``"eu"``, ``"fedramp"``): not implemented.

        Raises ``NotImplementedError`` for any ``name`` (``""`` too), as workerd's local runtime
        raises ``Error: Jurisdiction restrictions are not implemented in workerd.``; with no name
        (``None``) it is this namespace, as workerd's ``ns.jurisdiction()`` (``undefined``) is a
        namespace (miniflare 4, 2026-04-07), and as ``new_unique_id(jurisdiction=None)`` is an id.
        """
        if name is None:
            return self
        raise NotImplementedError("Jurisdiction restrictions are not implemented in durable.")

    def id_from_string(self, id: str | DurableObjectId) -> DurableObjectId:
        """Rebuild an id from ``str(id)``.

        Raises ``TypeError`` for anything that is not 64 hex digits (``Invalid Durable Object ID:
        must be 64 hex digits``) and for an id of another namespace (``Durable Object ID is not
        valid for this namespace.``). An id itself is read as its text, as workerd reads
        ``idFromString(id)`` (measured with miniflare 4, 2026-04-07): the same id, without a name.
        """
        if isinstance(id, DurableObjectId):  # (rare: a str is the common case)
            id = str(id)
        return self.ids.from_string(id)

    def get(self, id: DurableObjectId, **options: Any) -> Stub[Any]:
        """A stub for ``id``. Lazy: creates nothing.

        Options are accepted and ignored (``location_hint``, any value, as workerd does), except
        that ``routing_mode`` (``routingMode``) may only be ``"primary-only"``: anything else
        raises ``ValueError: unknown routingMode: <x>`` (workerd's ``RangeError``).
        """
        oid = self.ids.check(id)
        if options:
            _check_options(options)
        return Stub._create(self, oid)

    def get_by_name(self, name: str, **options: Any) -> Stub[Any]:
        """Shorthand for ``get(id_from_name(name))``, with the same options."""
        oid = self._from_name(name, "getByName")
        if options:
            _check_options(options)
        return Stub._create(self, oid)

    def host(self, oid: DurableObjectId) -> ObjectHost:
        """The host of object ``oid``, made if it is not live (for the package's stubs).

        A name of more than 1,024 UTF-8 bytes does not reach the object: its ``ctx.id.name`` is
        ``None``, as workerd's is ``undefined`` there (the caller's ``id.name`` and ``stub.name``
        keep it; measured with miniflare 4.20260426, both backends: 1,024 bytes arrive, 1,025 do
        not). A lone surrogate counts its three bytes, as in workerd, though ``id.name`` shows it as
        three U+FFFD (nine bytes): ``"\\ud800" * 150`` arrives as ``"\\ufffd" * 450``, ``* 342`` does
        not (measured there too).
        """
        name = oid.name
        if name is not None and not name_reaches_object(self.ids, oid, name):
            oid = self.ids.from_string(oid.to_string())
        return self.runtime.host_for(self, oid)

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        idFromName = id_from_name
        newUniqueId = new_unique_id
        idFromString = id_from_string
        getByName = get_by_name


_NAME_IN_OBJECT_MAX = 1024
"""The longest name (UTF-8 bytes) that workerd passes to the object as ``ctx.id.name``."""


def name_reaches_object(ids: IdFactory, oid: DurableObjectId, name: str) -> bool:
    """Whether workerd passes ``name`` (as ``oid.name`` reads it) to the object as ``ctx.id.name``.

    It does up to ``_NAME_IN_OBJECT_MAX`` UTF-8 bytes of the name ``oid`` was derived from (see
    :meth:`Namespace.host`). Each U+FFFD that stands for one byte of a lone surrogate
    (``_as_workerd_reads``) counts one byte: told apart by the id, which is not that of ``name``
    itself then. (A name holding both lone surrogates and U+FFFD of its own has each of these
    counted as one byte too.) ``ids`` is the namespace's id factory.
    """
    if len(name) <= _NAME_IN_OBJECT_MAX // 4:
        return True
    size = len(name.encode())
    if "\ufffd" in name and ids.from_name(name) != oid:
        size -= 2 * name.count("\ufffd")
    return size <= _NAME_IN_OBJECT_MAX


def _check_options(options: dict[str, Any]) -> None:
    """Refuse a ``routing_mode`` other than ``"primary-only"``, as workerd does.

    workerd (miniflare 4, 2026-04-07): ``get(id, {routingMode: "x"})`` raises ``RangeError:
    unknown routingMode: x``; ``locationHint`` takes any value, and unknown options are ignored.
    """
    for key in ("routing_mode", "routingMode"):
        mode = options.get(key)
        if mode is not None and mode != "primary-only":
            raise ValueError(f"unknown routingMode: {shown(mode, text=True)}")


def _as_workerd_reads(name: str) -> str:
    """``name`` as workerd's ``id.name`` shows it: lone surrogates become U+FFFD per UTF-8 byte.

    workerd encodes the name to UTF-8 with each lone surrogate as its three-byte form (as Python's
    ``surrogatepass`` does), derives the id from those bytes, and decodes them back with
    replacement. Doing the same behaves as workerd does, and gives a name that SQLite can
    store (it has no encoding for a lone surrogate). Returns ``name`` itself when it has none.
    """
    try:
        name.encode()
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return name
