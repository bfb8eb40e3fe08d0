"""Keys, values, key ranges and alarm times: the checks shared by ``ctx.storage``, its
transactions and ``kv``.

A key is a ``str`` without lone surrogates, within the backend's size limit; a value is encoded by
the codec and must fit the backend's value (key-value) or row (SQLite) limit; ``list()`` options
compile to a half-open key range, as workerd compiles them; an alarm time is a number of ms or a
``datetime`` that workerd's kj::Date can hold. Errors use Cloudflare's wording.

Pure functions: the only things they read of the object are its backend, limits, clock and
whether its class has an alarm handler (the ``StorageHost`` protocol of ``_storage.py``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._aliases import normalize_options
from ._codec import encode
from ._exceptions import StorageLimitError
from ._util import lone_surrogate_at, shown
from ._v8size import V8_SIZE_FACTOR, v8_serialized_size

if TYPE_CHECKING:
    from ._storage import StorageHost

__all__ = [
    "ALARM_GET_OPTIONS",
    "ALARM_SET_OPTIONS",
    "GET_OPTIONS",
    "LIST_OPTIONS",
    "PUT_OPTIONS",
    "PUT_SHAPE",
    "KeyList",
    "alarm_time_ms",
    "as_key",
    "bindable_keys",
    "check_batch",
    "check_date_range",
    "check_key",
    "check_key_arguments",
    "check_put_arguments",
    "check_value_size",
    "checked_limit",
    "compile_range",
    "date_number",
    "datetime_ms",
    "encode_checked",
    "list_range",
]

KeyList = list[str] | tuple[str, ...]

PUT_SHAPE = (
    "put() may only be called with a single key-value pair and optional options as "
    "put(key, value, options) or with multiple key-value pairs and optional options as "
    "put(entries, options)"
)
"""workerd's TypeError for a ``put()`` call of another shape."""

GET_OPTIONS = frozenset({"allow_concurrency", "no_cache"})
"""The options of ``get()`` (workerd's ``GetOptions``)."""
PUT_OPTIONS = frozenset({"allow_concurrency", "allow_unconfirmed", "no_cache"})
"""The options of ``put()``, ``delete()`` and ``delete_all()`` (workerd's ``PutOptions``)."""
LIST_OPTIONS = frozenset({"start", "start_after", "end", "prefix", "reverse", "limit", "allow_concurrency", "no_cache"})
"""The options of ``list()`` (workerd's ``ListOptions``)."""
ALARM_GET_OPTIONS = frozenset({"allow_concurrency"})
"""The options of ``get_alarm()`` (workerd's ``GetAlarmOptions``)."""
ALARM_SET_OPTIONS = frozenset({"allow_concurrency", "allow_unconfirmed"})
"""The options of ``set_alarm()`` and ``delete_alarm()`` (workerd's ``SetAlarmOptions``)."""


def as_key(key: object, method: str) -> str:
    """``key`` as a plain ``str``: a ``str`` subclass (a ``StrEnum`` member) gives its text, as
    JavaScript's storage takes ``String(key)``; anything else raises ``TypeError``."""
    if not isinstance(key, str):
        raise TypeError(f"{method}() takes a str key or a list of str keys, not {type(key).__name__}")
    return str.__str__(key)


def check_key(key: object, host: StorageHost) -> str:
    """Return ``key`` (as a plain ``str``) if it is a valid key, else raise ``TypeError`` /
    ``StorageLimitError``."""
    if type(key) is not str:
        if not isinstance(key, str):
            raise TypeError(f"Storage keys must be str, not {type(key).__name__}")
        key = str.__str__(key)  # a str subclass, as in as_key()
    if host.kv_backed and (limit := host.limits.kv_max_key_bytes) is not None and len(key) * 4 > limit:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise StorageLimitError(f"Keys cannot be larger than {limit} bytes. A key of size {size} was provided.")
    if not key.isascii() and (index := lone_surrogate_at(key)) is not None:
        raise TypeError(f"Storage keys must be valid Unicode: {key!r} contains a lone surrogate at index {index}")
    return key


def encode_checked(key: str, value: object, host: StorageHost) -> bytes:
    """Encode ``value`` for storage under ``key``, enforcing the value limits of the backend.

    workerd checks these limits on V8's serialization of the value, so they are checked on
    :func:`v8_serialized_size`, which is measured only when it could matter: it is never more than
    ``V8_SIZE_FACTOR`` times the size of ``durable``'s encoding (tests/test_v8size.py).
    """
    blob = encode(value)
    check_value_size(key, value, blob, host)
    return blob


def check_value_size(key: str, value: object, blob: bytes, host: StorageHost) -> None:
    """:func:`encode_checked`'s limits, on ``blob`` (``encode(value)``): raises ``StorageLimitError``
    past a limit. ``Storage.put`` calls it only where it could raise (see there)."""
    limits = host.limits
    if host.kv_backed:
        limit = limits.kv_max_value_bytes
        if limit is not None and len(blob) * V8_SIZE_FACTOR > limit:
            if (size := v8_serialized_size(value)) > limit:
                raise StorageLimitError(
                    f"Values cannot be larger than {limit} bytes. A value of size {size} was provided."
                )
    else:
        limit = limits.sqlite_max_row_bytes
        # len(key) * 4 bounds its UTF-8 size: measure exactly only when it could matter. The row
        # must hold durable's encoding here, and V8's in workerd: it is refused if either is over.
        if limit is not None and (len(blob) + len(key)) * V8_SIZE_FACTOR > limit:
            size = max(len(blob), v8_serialized_size(value)) + len(key.encode("utf-8"))
            if size > limit:
                raise StorageLimitError(
                    "string or blob too big: SQLITE_TOOBIG (in a SQLite-backed object a key plus "
                    f"its value may take at most {limit} bytes (2 MB), as on Cloudflare; this one "
                    f"takes {size}. Split the value over several "
                    "keys, or relax the limit where production is not the target with "
                    "durable.Runtime(limits=durable.Limits(sqlite_max_row_bytes=...)).)"
                )


def bindable_keys(keys: KeyList, host: StorageHost) -> tuple[KeyList, StorageLimitError | None]:
    """The keys a SQLite-backed ``delete()`` deletes, and the error it then raises, if any.

    workerd's SQLite cannot bind a key longer than its length limit, so deleting one raises
    ``string or blob too big: SQLITE_TOOBIG``; the keys before it in a list are deleted all the
    same (measured with miniflare 4, 2026-04-07: ``delete(["a", <3 MB key>, "b"])`` raises and
    leaves only "b"). ``get()`` and ``list()`` of such a key find nothing there, without an error.
    """
    limit = host.limits.sqlite_max_row_bytes
    if host.kv_backed or limit is None:
        return keys, None
    for index, key in enumerate(keys):
        # len(key) * 4 bounds its UTF-8 size: measure exactly only when it could matter.
        if len(key) * 4 > limit and (size := len(key.encode("utf-8"))) > limit:
            return keys[:index], StorageLimitError(
                "string or blob too big: SQLITE_TOOBIG (in a SQLite-backed object a key may take at "
                f"most {limit} bytes (2 MB), as on Cloudflare; this one takes {size}. Relax the "
                "limit where production is not the target with "
                "durable.Runtime(limits=durable.Limits(sqlite_max_row_bytes=...)).)"
            )
    return keys, None


def check_batch(count: int, host: StorageHost) -> None:
    """Refuse a batch of ``count`` keys past the key-value backend's limit (Cloudflare's text)."""
    limit = host.limits.kv_max_batch
    if host.kv_backed and limit is not None and count > limit:
        raise StorageLimitError(f"Maximum number of key value pairs is {limit}. {count} pairs were provided.")


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (None: none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1  # after U+D7FF: U+D800, which sorts as workerd's bytes do
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def _past_surrogates(bound: str, index: int) -> str:
    """A bound without lone surrogates that orders every valid key as ``bound`` does.

    workerd compares keys as UTF-8 bytes and encodes a lone surrogate as its 3-byte form, which
    sorts between U+D7FF and U+E000. No key holds one, so a key is above ``bound`` exactly when it
    is at or above ``bound[:index] + "\\uE000"``, and below it otherwise.
    """
    return bound[:index] + "\ue000"


def _as_int32(limit: object) -> int:
    """``limit`` read as workerd reads a JavaScript number into an int32 (``jsg::Optional<int>``).

    A float is truncated toward zero (``1.5`` lists one key) once it is within the int32 range, and
    NaN and the infinities read as 0; past the range either way, workerd's ``TypeError``. Measured
    with miniflare 4 (2026-04-07): ``limit: 2.9`` lists 2, ``0.5``, ``NaN`` and ``Infinity`` are
    "List limit must be positive.", ``2147483647.9`` and ``1e10`` are out of range.
    """
    if type(limit) is float:
        if limit != limit or limit in (float("inf"), float("-inf")):
            return 0
        if not -(2.0**31) <= limit <= 2.0**31 - 1:
            raise TypeError(_OUT_OF_RANGE)
        return int(limit)
    if type(limit) is not int:
        raise TypeError(f"list() option limit must be an int, not {type(limit).__name__}")
    if not -(2**31) <= limit < 2**31:
        raise TypeError(_OUT_OF_RANGE)
    return limit


def checked_limit(limit: int | float | None) -> int | None:
    """The ``limit`` of a ``list()`` whose options ``compile_range()`` accepted, as an ``int``."""
    return None if limit is None else int(limit)  # checked: finite, an int32 once truncated


_OUT_OF_RANGE = "Value out of range. Must be between -2147483648 and 2147483647 (inclusive)."
"""workerd's TypeError for a number that does not fit the int32 it reads ``limit`` as."""


def compile_range(
    *,
    start: str | None = None,
    start_after: str | None = None,
    end: str | None = None,
    prefix: str | None = None,
    reverse: bool | None = False,
    limit: int | float | None = None,
) -> tuple[str | None, str | None] | None:
    """Turn ``list()`` options into a half-open key range ``[lo, hi)``, as workerd compiles them.

    ``start`` is inclusive, ``start_after`` exclusive (it becomes ``start_after + "\\0"``), ``end``
    exclusive; ``prefix`` clamps the range to the keys that start with it. ``reverse`` does not
    swap the bounds. Returns ``None`` when the range is empty. Raises ``TypeError`` for options
    Cloudflare refuses. Bounds may hold lone surrogates (keys may not): they order keys as in
    workerd.
    """
    if start is not None and start_after is not None:
        raise TypeError("list() cannot be called with both start and startAfter values.")
    for label, bound in (("start", start), ("startAfter", start_after), ("end", end), ("prefix", prefix)):
        if bound is not None and not isinstance(bound, str):
            raise TypeError(f"list() option {label} must be a str, not {type(bound).__name__}")
    start, start_after, end, prefix = (
        None if bound is None else str.__str__(bound) for bound in (start, start_after, end, prefix)
    )
    if reverse is not None and type(reverse) is not bool:  # None: not given, as for the other options
        raise TypeError(f"list() option reverse must be a bool, not {type(reverse).__name__}")
    if limit is not None:
        limit = _as_int32(limit)
        if limit <= 0:
            raise TypeError("List limit must be positive.")
    lo = start if start_after is None else start_after + "\0"
    hi = end
    if prefix:
        if lo is None or lo < prefix:
            lo = prefix
        succ = _successor(prefix)
        if succ is not None and (hi is None or succ < hi):
            hi = succ
    # Whether the range is empty is decided on the bounds as given, as workerd decides it on their
    # bytes (code-point order is that order, lone surrogates included). workerd's start defaults to
    # "", so end="" is an empty range too. An empty range never reaches the database, so it does
    # not invalidate a live kv.list() iterator; any other range does, even one no key can match.
    if hi is not None and hi <= ("" if lo is None else lo):
        return None
    if lo is not None and (index := lone_surrogate_at(lo)) is not None:
        lo = _past_surrogates(lo, index)
    if hi is not None and (index := lone_surrogate_at(hi)) is not None:
        hi = _past_surrogates(hi, index)
    if prefix and lone_surrogate_at(prefix) is not None:
        return lo, lo  # no key holds a lone surrogate, so none starts with this prefix
    return lo, hi


# -- the arguments of a call on an ended transaction --------------------------------------------
# workerd reads (and serializes) a call's arguments before it looks at the transaction, so a call
# on a rolled-back or committed ``txn`` raises what its arguments alone would raise, and a list()
# of an empty range answers an empty Map (measured with miniflare 4, 2026-04-07). These repeat the
# checks ``Storage`` makes, without the limits (workerd checks those past the transaction).


def _key_text(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"Storage keys must be str, not {type(key).__name__}")
    if not key.isascii() and (index := lone_surrogate_at(key)) is not None:
        raise TypeError(f"Storage keys must be valid Unicode: {key!r} contains a lone surrogate at index {index}")


def check_key_arguments(method: str, key: object, options: dict[str, Any], allowed: frozenset[str]) -> None:
    """Raise what ``get(key, **options)`` or ``delete(...)`` (``method``) raises for its arguments."""
    if options:
        normalize_options(method, options, allowed)
    if isinstance(key, (list, tuple)):
        for item in key:
            _key_text(item)
    else:
        _key_text(as_key(key, method))


def check_put_arguments(key: object, value: object, options: dict[str, Any]) -> None:
    """Raise what ``put(key, value, **options)`` raises for its arguments: a malformed call, a key
    of another type, a value that cannot be stored (``DataCloneError``)."""
    if options:
        normalize_options("put", options, PUT_OPTIONS)
    if isinstance(key, str):
        if value is ...:
            raise TypeError("put() called with undefined value.")
        _key_text(key)
        encode(value)
    elif isinstance(key, Mapping) and (value is ... or value is None):
        for item, item_value in key.items():
            _key_text(item)
            encode(item_value)
    else:
        raise TypeError(PUT_SHAPE)


def list_range(options: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """The key range of ``list(**options)`` (``None``: empty), or the ``TypeError`` it raises."""
    opts = normalize_options("list", options, LIST_OPTIONS) if options else {}
    opts.pop("allow_concurrency", None)
    opts.pop("no_cache", None)
    return compile_range(**opts)


# -- alarm times ----------------------------------------------------------------------------------

_MAX_ALARM_NS = float(2**63)
"""workerd converts an alarm time to nanoseconds in an int64 (kj::Date): ``ms * 1e6``, computed as a
double, must lie strictly between -2**63 and 2**63 (so the latest time is in 2262, although workerd's
message says 2189)."""


_YEAR_MS = 365 * 86_400_000


def _refuse_seconds(when: int | float, host: StorageHost) -> None:
    """Refuse a time that is plainly in seconds since the epoch (``time.time() + 60``).

    Read as milliseconds, such a time is a date in January 1970, so the alarm would fire at once.
    Cloudflare accepts it silently; durable refuses a number that, read as seconds, lies within ten
    years of the clock's now while, read as milliseconds, it lies over a year in the past (so a
    mock clock started near 0 can still be given small millisecond times).
    """
    now = host.now_ms()
    if abs(when * 1000 - now) <= 10 * _YEAR_MS and when < now - _YEAR_MS:
        as_ms = _dt.datetime.fromtimestamp(when / 1000, _dt.UTC)
        raise TypeError(
            f"setAlarm() takes a time in milliseconds since the epoch, but {shown(when)} looks like "
            f"seconds (as milliseconds it is {as_ms:%Y-%m-%d %H:%M:%S} UTC). Pass "
            "int(time.time() * 1000) + delay_ms, or a datetime."
        )


def check_date_range(ms: int | float) -> None:
    """Refuse, with workerd's words, a time that is not a valid Date or does not fit a kj::Date.

    Shared by ``setAlarm`` and ``getBookmarkForTime`` (``_bookmarks.py``), which convert alike.
    """
    if ms != ms or ms in (float("inf"), float("-inf")):
        raise TypeError("The value cannot be converted because it is not a valid Date.")
    # The time in ms, as a double, times 1e6 must fit an int64 of nanoseconds.
    nanos = float(ms) * 1e6 if abs(ms) < 2**64 else (1.0 if ms > 0 else -1.0) * 2.0**64
    if nanos >= _MAX_ALARM_NS:
        raise TypeError("This API doesn't support dates after 2189.")
    if nanos <= -_MAX_ALARM_NS:
        raise TypeError("This API doesn't support dates before 1687.")


def datetime_ms(when: _dt.datetime) -> float:
    """``when`` in ms since the epoch (a naive datetime is local time, as in ``timestamp()``),
    refused with workerd's words if it is outside kj::Date's range.

    Python cannot convert a naive datetime within a day of year 1 or year 9999 from local time
    (``ValueError: year 0 is out of range``, depending on the machine's time zone): such a
    datetime is far outside the range either way.
    """
    try:
        stamp = when.timestamp() * 1000
    except (ValueError, OverflowError, OSError):
        raise TypeError(
            f"This API doesn't support dates {'before 1687' if when.year < 1970 else 'after 2189'}."
        ) from None
    check_date_range(stamp)
    return stamp


def date_number(when: object) -> int | float | None:
    """``when`` as the plain ``int`` or ``float`` a Date-taking call reads, or ``None`` if it is no number.

    Pyodide passes any ``int`` or ``float`` subclass (an ``IntEnum``, ``numpy.float64``) to
    JavaScript as a number, reading its own value, not what an overridden ``__int__`` or
    ``__float__`` returns; a ``bool`` becomes a boolean, which ``setAlarm`` refuses.
    """
    if isinstance(when, bool):
        return None
    if isinstance(when, int):
        return when if type(when) is int else int.__int__(when)
    if isinstance(when, float):
        return when if type(when) is float else float.__float__(when)
    return None


def alarm_time_ms(when: object, host: StorageHost, interface: str = "DurableObjectStorage") -> int:
    """``set_alarm(when)``'s time in ms, or workerd's ``TypeError`` (``interface`` names the object
    in the one for a ``when`` of another type: ``DurableObjectTransaction`` for ``txn``'s)."""
    if isinstance(when, _dt.datetime):
        ms = int(datetime_ms(when))
    elif (number := date_number(when)) is not None:
        when = number
        check_date_range(when)
        ms = int(when) if when > 0 else 0  # any time <= 0 is refused below
        _refuse_seconds(when, host)
    else:
        # workerd's words for anything that is neither a number nor a Date (a string, null, a bool...).
        raise TypeError(f"Failed to execute 'setAlarm' on '{interface}': parameter 1 is not of type 'date'.")
    if ms <= 0:
        raise TypeError("setAlarm() cannot be called with an alarm time <= 0")
    if not host.has_alarm_handler:
        raise TypeError("Your Durable Object class must have an alarm() handler in order to call setAlarm()")
    return ms
