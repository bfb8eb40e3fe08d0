"""Durable Object ids, derived as workerd derives them.

An id is 32 bytes, shown as 64 lowercase hex digits. For a name, the first 16 bytes are a keyed hash
of the name; for a unique id they are random. The last 16 bytes are a keyed MAC of the first 16, so
``id_from_string`` can tell a forged or foreign id from one of this namespace without any lookup.
The key of a namespace is derived deterministically from the namespace's name, which keeps ids
stable across restarts of a persisted runtime (workerd derives it from the namespace's unique key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import TYPE_CHECKING, Any, NoReturn, final

from ._aliases import camel_aliases
from ._util import NoPublicConstructor

__all__ = ["DurableObjectId", "IdFactory"]

_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()[:16]


@final
@camel_aliases
class DurableObjectId(metaclass=NoPublicConstructor):
    """The identity of one Durable Object within a namespace.

    Minted by a namespace (``id_from_name``, ``new_unique_id``, ``id_from_string``), never
    constructed directly. Ids compare equal and hash by value; ``str(oid)`` gives the 64-digit
    lowercase hex form that ``id_from_string`` accepts.
    """

    __slots__ = ("_bytes", "_hex", "_name", "_namespace")

    _bytes: bytes
    _hex: str
    _name: str | None
    _namespace: str

    _how_to_get = ": use namespace.id_from_name(), namespace.new_unique_id() or namespace.id_from_string()"

    def __init__(self, raw: bytes, name: str | None, namespace: str) -> None:
        object.__setattr__(self, "_bytes", raw)
        object.__setattr__(self, "_hex", raw.hex())
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_namespace", namespace)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("DurableObjectId is immutable")

    @property
    def name(self) -> str | None:
        """The name given to ``id_from_name``, or ``None`` for unique and string-derived ids."""
        return self._name

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace name, hex id)``: the object's key in a runtime (its hosts, files and alarms).

        Package-internal (not in ``durable.__all__``'s documented API): the runtime's maps use it.
        """
        return (self._namespace, self._hex)

    def equals(self, other: DurableObjectId) -> bool:
        """Whether ``other`` is the same id (Cloudflare's ``id.equals(other)``).

        An id of another namespace is not equal. Raises ``TypeError`` (workerd's words) if
        ``other`` is not a ``DurableObjectId`` (a string, ``None``): compare ``str(id)`` for that.
        """
        if not isinstance(other, DurableObjectId):
            raise TypeError(
                "Failed to execute 'equals' on 'DurableObjectId': parameter 1 is not of type 'DurableObjectId'."
            )
        return self._bytes == other._bytes and self._namespace == other._namespace

    def to_string(self) -> str:
        """The 64-digit lowercase hex form (Cloudflare's ``toString()``)."""
        return self._hex

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        if self._name is not None:
            return f"<DurableObjectId {self._namespace}:{self._name!r} {self._hex[:12]}…>"
        return f"<DurableObjectId {self._namespace}:{self._hex}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DurableObjectId):
            return NotImplemented
        return self._bytes == other._bytes and self._namespace == other._namespace

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __reduce__(self) -> Any:
        raise TypeError("DurableObjectId cannot be pickled; send str(id) and use id_from_string()")

    # An id is an immutable value: a copy is the id itself (copy.deepcopy, dataclasses.asdict and
    # replace() of a structure holding one went through __reduce__ and its pickling error).
    def __copy__(self) -> DurableObjectId:
        return self

    def __deepcopy__(self, memo: object) -> DurableObjectId:
        return self

    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)
        toString = to_string


_NAME_CACHE_SIZE = 4096
_NAME_CACHE_MAX_LENGTH = 256


class IdFactory:
    """Mints and checks the ids of one namespace."""

    __slots__ = ("_by_name", "_key", "namespace")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._key = hashlib.sha256(b"durable/namespace-id-key/v1\0" + namespace.encode()).digest()
        self._by_name: dict[str, DurableObjectId] = {}
        """Ids minted from names lately. A served request derives its object's id from a name
        (two HMACs, about 3.7 us of the ~120 us a served counter request costs); ids are
        immutable values, so a repeated name gets the same id object back in ~0.1 us."""

    def from_name(self, name: str, caller: str = "idFromName") -> DurableObjectId:
        """The id of ``name``; ``TypeError`` (workerd's words, naming ``caller``) if it is not a ``str``.

        (workerd turns a number into its string; durable, in Python, refuses it.)
        """
        if type(name) is str and (cached := self._by_name.get(name)) is not None:
            return cached
        if not isinstance(name, str):
            raise TypeError(
                f"Failed to execute '{caller}' on 'DurableObjectNamespace': parameter 1 is not of type 'string'."
            )
        head = _mac(self._key, name.encode("utf-8", "surrogatepass"))
        oid = DurableObjectId._create(head + _mac(self._key, head), name, self.namespace)
        if type(name) is str and len(name) <= _NAME_CACHE_MAX_LENGTH:
            if len(self._by_name) >= _NAME_CACHE_SIZE:
                self._by_name.clear()  # bounded: a stream of distinct names cannot grow it
            self._by_name[name] = oid
        return oid

    def unique(self) -> DurableObjectId:
        head = os.urandom(16)
        return DurableObjectId._create(head + _mac(self._key, head), None, self.namespace)

    def from_string(self, text: str, name: str | None = None) -> DurableObjectId:
        if not isinstance(text, str) or not _HEX_ID.fullmatch(text):
            raise TypeError("Invalid Durable Object ID: must be 64 hex digits")
        raw = bytes.fromhex(text)
        if not hmac.compare_digest(raw[16:], _mac(self._key, raw[:16])):
            raise TypeError("Durable Object ID is not valid for this namespace.")
        return DurableObjectId._create(raw, name, self.namespace)

    def check(self, oid: object) -> DurableObjectId:
        """Return ``oid`` if it is an id of this namespace, else raise ``TypeError``."""
        if not isinstance(oid, DurableObjectId):
            raise TypeError(  # workerd's words
                "Failed to execute 'get' on 'DurableObjectNamespace': parameter 1 is not of type 'DurableObjectId'."
            )
        if oid._namespace != self.namespace:
            raise TypeError("Durable Object ID is not valid for this namespace.")
        return oid
