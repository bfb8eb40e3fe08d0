"""``js.Date`` as Python Workers code reaches it: :class:`JsDate` (what Pyodide hands Python for a
JavaScript ``Date``) and the parsing and field arithmetic of ``Date.new(...)``, ``Date.parse``
and ``Date.UTC``.

workerd runs in UTC, so local time is UTC: ``new Date(2024, 0, 2)`` is ``Date.UTC(2024, 0, 2)``
and ``getHours()`` is ``getUTCHours()``. Measured (miniflare 4, compatibility date 2026-04-07):
``Date.parse("2024-01-02T03:04:05Z")`` is 1704164645000, as are the same without ``Z`` and with a
space for ``T``; ``"2024-01-02"``, ``"2024-01"``, ``"2024"`` are midnight UTC; an offset
(``+02:00``) is applied; ``"Tue, 02 Jan 2024 03:04:05 GMT"`` parses; ``"2024-13-01"`` and
``"garbage"`` are ``NaN``; ``"2024-02-30"`` rolls over to March 1; a year 0-99 given as a field is
1900 + year; a time beyond 8.64e15 ms is ``NaN``; ``toString()`` is ``Tue Jan 02 2024 03:04:05
GMT+0000 (Coordinated Universal Time)``, ``toUTCString()`` ``Tue, 02 Jan 2024 03:04:05 GMT``; an
invalid date's ``toISOString()`` raises ``RangeError: Invalid time value`` and ``toJSON()`` gives
``null``.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from typing import Any, NamedTuple

from durable._util import unbuilt_safe_repr

from .pyodide.ffi import JsException

__all__ = ["JsDate", "date_fields", "parse_date"]

_MS_PER_DAY = 86_400_000
_LIMIT = 8.64e15
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ISO = re.compile(
    r"([+-]\d{6}|\d{4})(?:-(\d\d)(?:-(\d\d))?)?"
    r"(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d\d:\d\d)?"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (month 1-12; day may overflow)."""
    year -= month <= 2
    era = year // 400  # Python's // floors: no C-style adjustment for negative years
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 + day - 1


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian ``(year, month 1-12, day)`` of a day since 1970-01-01 (any year
    a ``Date`` holds: ``datetime`` stops at years 1 and 9999)."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, doy - (153 * mp + 2) // 5 + 1


def _clip(ms: float) -> float:
    """JavaScript's TimeClip: whole milliseconds (``new Date(1.5).getTime()`` is 1), ``NaN`` beyond 8.64e15."""
    return float(math.trunc(ms)) + 0.0 if math.isfinite(ms) and abs(ms) <= _LIMIT else math.nan


def _make(year: int, month0: int, day: int, hours: int, minutes: int, seconds: int, ms: int) -> float:
    year, month0 = year + month0 // 12, month0 % 12
    days = _days_from_civil(year, month0 + 1, 1) + day - 1
    return _clip(float(days * _MS_PER_DAY + ((hours * 60 + minutes) * 60 + seconds) * 1000 + ms))


def date_fields(*fields: Any) -> float:
    """``Date.UTC(year, month0, day=1, hours=0, minutes=0, seconds=0, ms=0)``: months and days
    roll over, a year 0-99 is 1900 + year, ``NaN`` beyond the range of dates."""
    if not fields:
        return math.nan  # Date.UTC(): NaN (node)
    values = [float(f) for f in fields] + [0.0] * (7 - len(fields))
    if len(fields) < 3:
        values[2] = 1.0
    if not all(math.isfinite(v) for v in values):
        return math.nan
    year, month0, day, hours, minutes, seconds, ms = (int(v) for v in values)
    if 0 <= year <= 99:
        year += 1900
    return _make(year, month0, day, hours, minutes, seconds, ms)


_RFC1123 = re.compile(r"[A-Za-z]{3}, ")


def parse_date(text: str) -> float:
    """``Date.parse(text)``: ms since the epoch, or ``NaN``.

    Raises:
        NotImplementedError: a string that is neither ISO 8601 (as JavaScript writes it) nor RFC
            2822 (``Tue, 02 Jan 2024 03:04:05 GMT``): V8's lenient parser reads more formats.
    """
    text = str(text).strip()
    m = _ISO.fullmatch(text)
    if m is not None:
        year, month, day, hour, minute, second, fraction, zone = m.groups()
        month_n, day_n, hour_n, minute_n = int(month or 1), int(day or 1), int(hour or 0), int(minute or 0)
        second_n, ms_n = int(second or 0), int((fraction or "0")[:3].ljust(3, "0"))
        # node: seconds 60, 24:00:01, 24:30, an offset +25:00 or +02:60, and year -000000 are NaN
        valid_time = (
            minute_n <= 59 and second_n <= 59 and (hour_n < 24 or hour_n == 24 == 24 + minute_n + second_n + ms_n)
        )
        valid_zone = not zone or zone == "Z" or (int(zone[1:3]) <= 23 and int(zone[4:6]) <= 59)
        if not (1 <= month_n <= 12 and 1 <= day_n <= 31 and valid_time and valid_zone) or year == "-000000":
            return math.nan
        ms = _make(int(year), month_n - 1, day_n, hour_n, minute_n, second_n, ms_n)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            ms -= sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000
        return _clip(ms)
    parsed = email.utils.parsedate_tz(text) if _RFC1123.match(text) else None
    if parsed is not None:
        year, _, day, hour, minute, second = parsed[:6]
        if not (1 <= day <= 31 and hour <= 24 and minute <= 59 and second <= 59):
            return math.nan  # node: "Tue, 32 Jan 2024 ..." and "... 25:04:05 GMT" are NaN
        if re.match(r"[A-Za-z]{3}, *\d{1,2} +[A-Za-z]{3} +\d\d ", text):  # a two-digit year: V8's
            two_digits = int(text.split()[3])  # 00-49 are 20xx, 50-99 19xx (email.utils splits at 68)
            parsed = (two_digits + (2000 if two_digits < 50 else 1900), *parsed[1:])
        return _clip(float(email.utils.mktime_tz(parsed) * 1000))
    if text in ("", "Invalid Date"):
        return math.nan
    raise NotImplementedError(
        f"js.Date cannot parse {text!r} under durable: only ISO 8601 (2024-01-02T03:04:05Z) and RFC 2822 "
        "(Tue, 02 Jan 2024 03:04:05 GMT) date strings are supported"
    )


class _Fields(NamedTuple):
    """A time's UTC fields (workerd's local time is UTC); ``weekday`` 0 is Sunday."""

    year: int
    month: int
    day: int
    weekday: int
    hour: int
    minute: int
    second: int
    ms: int

    @property
    def hms(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"

    @property
    def year_text(self) -> str:
        """The year as ``toUTCString()`` / ``toString()`` write it (node: ``-0001``, ``275760``)."""
        return f"-{-self.year:04d}" if self.year < 0 else f"{self.year:04d}"


_SETTABLE = {
    "year": ("year", "month", "day"),
    "month": ("month", "day"),
    "day": ("day",),
    "hour": ("hour", "minute", "second", "ms"),
    "minute": ("minute", "second", "ms"),
    "second": ("second", "ms"),
    "ms": ("ms",),
}


def _en_us(name: str, locales: Any, options: Any) -> None:
    """Refuse what ``Date.prototype.<name>`` would format with ICU data `durable` does not have."""
    if locales not in (None, "en-US") or options is not None:
        raise NotImplementedError(
            f"Date.{name}() is emulated for workerd's default locale and time zone only (en-US, UTC): "
            f"not {locales!r:.40} with options {options!r:.60}; format the date in Python (datetime) instead"
        )


class JsDate:
    """What ``js.Date.new()`` gives: a JavaScript ``Date`` (ms since the epoch, or ``NaN``).

    Sent over RPC or stored it goes as a ``Date``, and the SDK gives a ``Date`` back as
    ``datetime.datetime.fromtimestamp(ms / 1000)`` (naive, local time: workers-py rpc.py).
    Its getters read UTC, which is workerd's local time.
    """

    __slots__ = ("_ms",)

    def __init__(self, ms: float) -> None:
        self._ms = _clip(float(ms))

    def getTime(self) -> int | float:
        """Milliseconds since the epoch (an ``int`` when whole, as Pyodide converts numbers)."""
        return int(self._ms) if self._ms.is_integer() else self._ms

    valueOf = getTime

    def _utc(self) -> _Fields:
        if math.isnan(self._ms):
            raise JsException("RangeError", "Invalid time value")
        days, ms = divmod(int(self._ms), _MS_PER_DAY)
        year, month, day = _civil_from_days(days)
        seconds, milli = divmod(ms, 1000)
        return _Fields(year, month, day, (days + 4) % 7, seconds // 3600, seconds // 60 % 60, seconds % 60, milli)

    def toISOString(self) -> str:
        """``2026-04-07T12:00:00.000Z`` (``+010000-01-01...``, ``-000001-...`` beyond years 0-9999);
        an invalid date raises ``RangeError: Invalid time value``."""
        m = self._utc()
        year = f"{m.year:04d}" if 0 <= m.year <= 9999 else f"{m.year:+07d}"
        return f"{year}-{m.month:02d}-{m.day:02d}T{m.hms}.{m.ms:03d}Z"

    def toJSON(self) -> str | None:
        """``toISOString()``, or ``None`` (``null``) for an invalid date."""
        return None if math.isnan(self._ms) else self.toISOString()

    def toUTCString(self) -> str:
        """``Tue, 02 Jan 2024 03:04:05 GMT`` (``Invalid Date`` for an invalid one)."""
        if math.isnan(self._ms):
            return "Invalid Date"
        m = self._utc()
        return f"{_DAYS[m.weekday]}, {m.day:02d} {_MONTHS[m.month - 1]} {m.year_text} {m.hms} GMT"

    toGMTString = toUTCString

    def toString(self) -> str:
        """``Tue Jan 02 2024 03:04:05 GMT+0000 (Coordinated Universal Time)``, as workerd writes it."""
        if math.isnan(self._ms):
            return "Invalid Date"
        return f"{self.toDateString()} {self._utc().hms} GMT+0000 (Coordinated Universal Time)"

    def toDateString(self) -> str:
        if math.isnan(self._ms):
            return "Invalid Date"
        m = self._utc()
        return f"{_DAYS[m.weekday]} {_MONTHS[m.month - 1]} {m.day:02d} {m.year_text}"

    def _field(self, name: str) -> int | float:
        if math.isnan(self._ms):
            return math.nan
        m = self._utc()
        return {
            "FullYear": m.year,
            "Month": m.month - 1,
            "Date": m.day,
            "Day": m.weekday,
            "Hours": m.hour,
            "Minutes": m.minute,
            "Seconds": m.second,
            "Milliseconds": m.ms,
        }[name]

    def getFullYear(self) -> int | float:
        return self._field("FullYear")

    def getMonth(self) -> int | float:
        """The month, 0 (January) to 11."""
        return self._field("Month")

    def getDate(self) -> int | float:
        return self._field("Date")

    def getDay(self) -> int | float:
        """The day of the week, 0 (Sunday) to 6."""
        return self._field("Day")

    def getHours(self) -> int | float:
        return self._field("Hours")

    def getMinutes(self) -> int | float:
        return self._field("Minutes")

    def getSeconds(self) -> int | float:
        return self._field("Seconds")

    def getMilliseconds(self) -> int | float:
        return self._field("Milliseconds")

    def getTimezoneOffset(self) -> int | float:
        """0: workerd runs in UTC."""
        return math.nan if math.isnan(self._ms) else 0

    def toTimeString(self) -> str:
        """``15:04:05 GMT+0000 (Coordinated Universal Time)``."""
        if math.isnan(self._ms):
            return "Invalid Date"
        return f"{self._utc().hms} GMT+0000 (Coordinated Universal Time)"

    def toLocaleDateString(self, locales: Any = None, options: Any = None, /) -> str:
        """``1/2/2024``: workerd's default locale (``en-US``) and time zone (UTC)."""
        _en_us("toLocaleDateString", locales, options)
        if math.isnan(self._ms):
            return "Invalid Date"
        m = self._utc()
        return f"{m.month}/{m.day}/{m.year}"

    def toLocaleTimeString(self, locales: Any = None, options: Any = None, /) -> str:
        """``3:04:05 PM``, as ``toLocaleDateString``."""
        _en_us("toLocaleTimeString", locales, options)
        if math.isnan(self._ms):
            return "Invalid Date"
        m = self._utc()
        return f"{m.hour % 12 or 12}:{m.minute:02d}:{m.second:02d} {'AM' if m.hour < 12 else 'PM'}"

    def toLocaleString(self, locales: Any = None, options: Any = None, /) -> str:
        """``1/2/2024, 3:04:05 PM``, as ``toLocaleDateString``."""
        _en_us("toLocaleString", locales, options)
        if math.isnan(self._ms):
            return "Invalid Date"
        return f"{self.toLocaleDateString()}, {self.toLocaleTimeString()}"

    def setTime(self, ms: Any) -> int | float:
        """Set the time (ms since the epoch, whole, ``NaN`` beyond the range) and return it."""
        self._ms = _clip(float(ms))
        return self.getTime()

    def _set(self, first: str, values: tuple[Any, ...]) -> int | float:
        """JavaScript's ``setFullYear`` ... ``setMilliseconds`` (local time is UTC): the fields
        from ``first`` on take ``values``, which roll over; returns the new time."""
        if not values:
            values = (math.nan,)
        if math.isnan(self._ms) and first != "year":
            return math.nan  # only setFullYear starts an invalid date again (from +0)
        m = JsDate(0)._utc() if math.isnan(self._ms) else self._utc()
        fields = {"year": m.year, "month": m.month - 1, "day": m.day, "hour": m.hour}
        fields.update(minute=m.minute, second=m.second, ms=m.ms)
        names = list(fields)
        given = [float(value) for value in values[: len(_SETTABLE[first])]]
        if not all(math.isfinite(value) for value in given):
            self._ms = math.nan
            return math.nan
        for name, value in zip(_SETTABLE[first], given):
            fields[name] = math.trunc(value)
        self._ms = _make(*(fields[name] for name in names))
        return self.getTime()

    def setFullYear(self, *values: Any) -> int | float:
        """``setFullYear(year, month0?, day?)``."""
        return self._set("year", values)

    def setMonth(self, *values: Any) -> int | float:
        """``setMonth(month0, day?)``."""
        return self._set("month", values)

    def setDate(self, *values: Any) -> int | float:
        return self._set("day", values)

    def setHours(self, *values: Any) -> int | float:
        """``setHours(hours, minutes?, seconds?, ms?)``."""
        return self._set("hour", values)

    def setMinutes(self, *values: Any) -> int | float:
        return self._set("minute", values)

    def setSeconds(self, *values: Any) -> int | float:
        return self._set("second", values)

    def setMilliseconds(self, *values: Any) -> int | float:
        return self._set("ms", values)

    setUTCFullYear = setFullYear
    setUTCMonth = setMonth
    setUTCDate = setDate
    setUTCHours = setHours
    setUTCMinutes = setMinutes
    setUTCSeconds = setSeconds
    setUTCMilliseconds = setMilliseconds

    getUTCFullYear = getFullYear
    getUTCMonth = getMonth
    getUTCDate = getDate
    getUTCDay = getDay
    getUTCHours = getHours
    getUTCMinutes = getMinutes
    getUTCSeconds = getSeconds
    getUTCMilliseconds = getMilliseconds

    def to_py(self) -> datetime.datetime:
        """The ``datetime`` the SDK makes of it."""
        return datetime.datetime.fromtimestamp(self._ms / 1000)

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"[object Date {self.toJSON() or 'Invalid Date'}]"
