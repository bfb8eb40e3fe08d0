"""``workers.Blob``, ``workers.File`` and ``workers.FormData``, and the form bodies of requests and responses.

The classes follow the SDK's Python API (``blob.content_type``, ``file.name``,
``file.last_modified``, ``form.get_all``, ``form["name"]`` giving ``None`` when absent...) over
what workerd's ``Blob``/``File``/``FormData`` do, measured with miniflare 4 (compatibility date
2026-04-07):

- a ``Blob`` type outside printable ASCII becomes ``""``, any other is lower-cased; ``endings``
  raises workerd's ``Error: The 'endings' field on 'Options' is not implemented.``;
- a ``Blob`` appended to a ``FormData`` becomes a ``File`` named after the field (workerd's
  choice; the Fetch standard says ``"blob"``), a ``File`` appended with a file name a new
  ``File`` of that name, its type kept;
- a ``FormData`` body is ``multipart/form-data`` with a 32-hex-digit boundary, a quote or line
  break in a name escaped as ``%22``/``%0D``/``%0A``, a file part's type
  ``application/octet-stream`` when it has none, and no line break after the closing boundary;
- ``form_data()`` parses ``multipart/form-data`` (a part with a non-empty ``filename`` is a
  ``File``) and ``application/x-www-form-urlencoded``, with workerd's ``TypeError`` texts.

As in the SDK, a value read from a ``FormData`` (and a ``Blob`` read from a body) goes through
its constructor again, so its type is lower-cased, and ``blob.slice()`` gives a ``Blob`` whose
``content_type`` is ``""`` (the SDK builds it from a list, which does not inherit the type).
"""

from __future__ import annotations

import builtins
import re
import secrets
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from durable._util import unbuilt_safe_repr

from .pyodide.ffi import JsException

__all__ = ["Blob", "File", "FormData", "encode_body", "mime_type", "parse_form"]

_ENDINGS = "The 'endings' field on 'Options' is not implemented."


def _now_ms() -> int:
    from .js import Date

    return Date.now()


def _normalized_type(value: str | None) -> str:
    """A Blob's type as workerd keeps it: lower-cased, or ``""`` if not printable ASCII."""
    if not value:
        return ""
    if any(not 0x20 <= ord(c) <= 0x7E for c in value):
        return ""
    return value.lower()


def _is_single(value: object) -> bool:
    """Whether the SDK takes ``value`` as one part (``str`` and ``bytes`` count as one, not as a sequence)."""
    if isinstance(value, (str, builtins.bytes)):
        return True
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return True
    return False


def _part_bytes(part: object) -> builtins.bytes:
    if isinstance(part, str):
        return part.encode("utf-8", "replace")
    if isinstance(part, Blob):
        return part._blob_data
    try:
        with memoryview(part) as view:  # type: ignore[arg-type]
            return view.tobytes()
    except TypeError:
        raise TypeError(f"Don't know how to handle {type(part)} for Blob()") from None


class Blob:
    """The SDK's ``Blob(blob_parts, content_type=None, endings=None)``: immutable bytes with a type.

    ``blob_parts`` is one part or an iterable of parts: ``str`` (UTF-8), ``bytes`` or any
    buffer, ``Blob``/``File``. A single ``Blob`` passes its type on when none is given.

    Raises:
        TypeError: a part of another type (``Don't know how to handle <class 'int'> for Blob()``).
        pyodide.ffi.JsException: ``endings`` given (workerd does not implement it).
    """

    __slots__ = ("_blob_data", "_blob_type")

    _blob_data: builtins.bytes
    _blob_type: str

    def __init__(self, blob_parts: Any, content_type: str | None = None, endings: str | None = None) -> None:
        if _is_single(blob_parts):
            if not content_type and isinstance(blob_parts, Blob):
                content_type = blob_parts._blob_type
            blob_parts = [blob_parts]
        data = b"".join([_part_bytes(part) for part in blob_parts])
        if endings:
            raise JsException("Error", _ENDINGS)
        self._blob_data = data
        self._blob_type = _normalized_type(content_type)

    @property
    def size(self) -> int:
        """The length in bytes."""
        return len(self._blob_data)

    @property
    def content_type(self) -> str:
        """The MIME type, lower-cased; ``""`` when none was given."""
        return self._blob_type

    type = content_type  # JavaScript's name

    @property
    def js_object(self) -> Blob:
        """The JavaScript ``Blob`` behind it: a :class:`JsBlob` (:class:`JsFile`) with the same
        bytes, which ``Response()`` takes as a body where it refuses the SDK's ``Blob``."""
        return js_blob(self)

    async def text(self) -> str:
        """The contents decoded as UTF-8 (invalid bytes become U+FFFD)."""
        return self._blob_data.decode("utf-8", "replace")

    async def bytes(self) -> builtins.bytes:
        """The contents."""
        return self._blob_data

    async def arrayBuffer(self) -> builtins.bytes:
        return self._blob_data

    def slice(self, start: int | None = None, end: int | None = None, content_type: str | None = None) -> Blob:
        """The bytes from ``start`` to ``end`` (negative counts from the end), as JavaScript's
        ``slice``. As the SDK rebuilds it from a list, its ``content_type`` is ``""``."""
        size = len(self._blob_data)
        lo = _clamp(start, size, 0)
        hi = _clamp(end, size, size)
        return Blob([self._blob_data[lo : max(hi, lo)]])

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, content_type={self._blob_type!r})"


def _clamp(index: int | None, size: int, default: int) -> int:
    if index is None:
        return default
    index = int(index)
    return max(size + index, 0) if index < 0 else min(index, size)


class File(Blob):
    """The SDK's ``File(blob_parts, filename, content_type=None, endings=None, last_modified=None)``.

    A :class:`Blob` with a ``name`` and ``last_modified`` (ms since the epoch; by default now, on
    the object's clock inside a Durable Object). A single ``File`` part passes on its type and
    ``last_modified``.
    """

    __slots__ = ("_file_modified", "_file_name")

    _file_modified: int
    _file_name: str

    def __init__(
        self,
        blob_parts: Any,
        filename: str,
        content_type: str | None = None,
        endings: str | None = None,
        last_modified: int | None = None,
    ) -> None:
        if not last_modified and isinstance(blob_parts, File):
            last_modified = blob_parts._file_modified
        super().__init__(blob_parts, content_type, endings)
        self._file_name = str(filename)
        self._file_modified = _now_ms() if last_modified is None else int(last_modified)

    @property
    def name(self) -> str:
        """The file name."""
        return self._file_name

    @property
    def last_modified(self) -> int:
        """When the file was last modified, in ms since the epoch."""
        return self._file_modified

    lastModified = last_modified

    @unbuilt_safe_repr
    def __repr__(self) -> str:
        return f"File(name={self._file_name!r}, size={self.size}, content_type={self._blob_type!r})"


class JsBlob(Blob):
    """A JavaScript ``Blob`` held by Python code (``js.Blob.new(...)``, ``blob.js_object``): the
    same API; ``Response(body)`` accepts it (its constructor name is in the SDK's
    ``RESPONSE_ACCEPTED_TYPES``) and refuses the SDK's own ``workers.Blob``."""

    __slots__ = ()

    @property
    def js_object(self) -> Blob:
        return self


class JsFile(File, JsBlob):
    """A JavaScript ``File`` held by Python code (``js.File.new(...)``, ``file.js_object``);
    ``Response(body)`` refuses it, as the SDK does (``File`` is not in its accepted types)."""

    __slots__ = ()


def js_blob(blob: Blob) -> JsBlob:
    """``blob`` as the JavaScript object it wraps (the same bytes, not copied)."""
    if isinstance(blob, JsBlob):
        return blob
    view: JsBlob
    if isinstance(blob, File):
        view = JsFile.__new__(JsFile)
        view._file_name, view._file_modified = blob._file_name, blob._file_modified
    else:
        view = JsBlob.__new__(JsBlob)
    view._blob_data, view._blob_type = blob._blob_data, blob._blob_type
    return view


def _js_string(value: object) -> str:
    """A FormData value that is not a Blob, as JavaScript's ``String(value)`` makes it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _entry_value(name: str, value: object, filename: str | None = None) -> str | File:
    if not isinstance(value, Blob):
        return _js_string(value)
    if filename is None:
        if isinstance(value, File):
            return value
        filename = name  # workerd names a Blob after its field (measured)
    return File([value], filename, value._blob_type)


def _out(value: str | File) -> str | File:
    # What the SDK hands out: a File rebuilt around the stored one (its type lower-cased again).
    if isinstance(value, File):
        return File(value, value._file_name)
    return value


class FormData(MutableMapping[str, Any]):
    """The SDK's ``FormData``: ordered ``(name, value)`` entries, a value being a ``str`` or a :class:`File`.

    ``FormData()``, ``FormData({"name": value})`` or ``FormData(other_form_data)`` (sharing its
    entries, as the SDK wraps the same JavaScript object). ``form["name"]`` is the first value
    (``None`` when there is none, so ``form.get(name, default)`` gives ``None`` too, as in the
    SDK); ``get_all``, ``append(name, value, filename=None)``, ``form[name] = value`` (replaces
    every value), ``delete``/``del``, ``in``; ``keys()``, ``values()``, ``items()`` and
    iteration go over every entry, a repeated name as often as it appears.

    Raises:
        TypeError: an initializer other than a dict or a FormData (``Expected form_data to be a
            dict or an instance of FormData``).
    """

    __slots__ = ("_form_entries",)

    _form_entries: list[tuple[str, str | File]]

    def __init__(self, form_data: Any = None) -> None:
        if isinstance(form_data, FormData):
            self._form_entries = form_data._form_entries
            return
        self._form_entries = []
        if not form_data:
            return
        if not isinstance(form_data, dict):
            raise TypeError("Expected form_data to be a dict or an instance of FormData")
        for key, value in form_data.items():
            self.append(key, value)

    def __getitem__(self, key: str) -> Any:
        for name, value in self._form_entries:
            if name == key:
                return _out(value)
        return None

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, list):
            raise TypeError("Expected single item in arguments to FormData.__setitem__")
        self.set(key, value)

    def set(self, key: str, value: Any, filename: str | None = None) -> None:
        """Replace every value of ``key`` with ``value``, where the first one was (JavaScript's ``set``)."""
        entry = (key, _entry_value(key, value, filename))
        at = next((i for i, (name, _) in enumerate(self._form_entries) if name == key), None)
        if at is None:
            self._form_entries.append(entry)
            return
        kept = [entry if i == at else e for i, e in enumerate(self._form_entries) if i == at or e[0] != key]
        self._form_entries[:] = kept

    def append(self, key: str, value: Any, filename: str | None = None) -> None:
        """Add a value for ``key`` (a ``Blob`` becomes a ``File`` named ``filename``, or after the field)."""
        self._form_entries.append((key, _entry_value(key, value, filename)))

    def delete(self, key: str) -> None:
        """Remove every value of ``key`` (nothing happens when there is none)."""
        self._form_entries[:] = [e for e in self._form_entries if e[0] != key]

    def __delitem__(self, key: str) -> None:
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self._form_entries)

    has = __contains__

    def get_all(self, key: str) -> list[Any]:
        """Every value of ``key``, in order."""
        return [_out(value) for name, value in self._form_entries if name == key]

    getAll = get_all

    def keys(self) -> Iterator[str]:  # type: ignore[override]
        for name, _ in list(self._form_entries):
            yield name

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for _, value in list(self._form_entries):
            yield _out(value)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for name, value in list(self._form_entries):
            yield name, _out(value)

    entries = items

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __len__(self) -> int:
        return len(self._form_entries)

    @property
    def js_object(self) -> FormData:
        """The form itself (there is no separate JavaScript object)."""
        return self

    def __repr__(self) -> str:
        return f"FormData({[(name, value) for name, value in self._form_entries]!r})"


# -- bodies ----------------------------------------------------------------------------------


def _escape(name: str) -> str:
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_body(body: object) -> tuple[object, str | None]:
    """A ``FormData`` or ``Blob`` body as ``(bytes, content type to set if none is)``; any other body as it is."""
    if isinstance(body, Blob):
        return body._blob_data, body._blob_type or None
    if not isinstance(body, FormData):
        return body, None
    boundary = secrets.token_hex(16)
    out: list[builtins.bytes] = []
    for name, value in body._form_entries:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_escape(name)}"'
        if isinstance(value, File):
            head += f'; filename="{_escape(value._file_name)}"\r\nContent-Type: {value._blob_type or "application/octet-stream"}'
            data = value._blob_data
        else:
            data = value.encode("utf-8", "replace")
        out.append(head.encode("utf-8") + b"\r\n\r\n" + data + b"\r\n")
    out.append(f"--{boundary}--".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _params(text: str) -> tuple[str, list[tuple[str, str]]]:
    """A MIME type's essence (lower-cased, ``""`` if invalid) and its parameters (names lower-cased)."""
    essence, _, rest = text.partition(";")
    essence = essence.strip().lower()
    kind, slash, sub = essence.partition("/")
    if not slash or not kind or not sub or any(c in essence for c in ' \t"(),:<=>?@[\\]{}'):
        return "", []
    params: list[tuple[str, str]] = []
    while rest:
        part, rest = _param(rest)
        if part is not None:
            params.append(part)
    return essence, params


def _param(rest: str) -> tuple[tuple[str, str] | None, str]:
    rest = rest.lstrip(" \t")
    name, eq, rest = rest.partition("=")
    if not eq:
        _, _, rest = name.partition(";")
        return None, rest
    name = name.strip().lower()
    if rest.startswith('"'):
        value, i = [], 1
        while i < len(rest) and rest[i] != '"':
            if rest[i] == "\\" and i + 1 < len(rest):
                i += 1
            value.append(rest[i])
            i += 1
        _, _, rest = rest[i + 1 :].partition(";")
        return (name, "".join(value)) if name and ";" not in name else None, rest
    value_text, _, rest = rest.partition(";")
    value_text = value_text.strip()
    return ((name, value_text) if name and value_text else None), rest


def mime_type(content_type: str | None) -> str:
    """``content_type`` as workerd serializes it for ``body.blob()``'s type: ``text/plain;charset=UTF-8``."""
    essence, params = _params(content_type or "")
    if not essence:
        return ""
    return essence + "".join(f";{name}={value}" for name, value in params)


def parse_form(content_type: str | None, data: builtins.bytes) -> FormData:
    """A body as ``await request.form_data()`` reads it (workerd's parsing and errors).

    Raises:
        TypeError: no or another Content-Type, no boundary, or a malformed multipart body.
    """
    if content_type is None:
        raise TypeError("Parsing a Body as FormData requires a Content-Type header.")
    essence, params = _params(content_type)
    form = FormData()
    if essence == "application/x-www-form-urlencoded":
        for piece in data.split(b"&"):
            if piece:
                name, _, value = piece.partition(b"=")
                form._form_entries.append((_unquote(name), _unquote(value)))
        return form
    if essence != "multipart/form-data":
        raise TypeError(
            "Unrecognized Content-Type header value. FormData can only parse the following MIME types: "
            "multipart/form-data, application/x-www-form-urlencoded"
        )
    boundary = next((value for name, value in params if name == "boundary"), None)
    if not boundary:
        raise TypeError(
            "No boundary string in Content-Type header. The multipart/form-data MIME type requires a boundary "
            "parameter, e.g. 'Content-Type: multipart/form-data; boundary=\"abcd\"'. See RFC 7578, section 4."
        )
    form._form_entries.extend(_multipart(data, b"--" + boundary.encode("utf-8")))
    return form


def _unquote(raw: builtins.bytes) -> str:
    """workerd's form-urlencoded decoding: ``+`` is a space, ``%`` takes up to two hex digits (none: dropped)."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x2B:
            out.append(0x20)
        elif c == 0x25:
            digits = b""
            while len(digits) < 2 and i + 1 < n and raw[i + 1 : i + 2] in b"0123456789abcdefABCDEF":
                digits += raw[i + 1 : i + 2]
                i += 1
            if digits:
                out.append(int(digits, 16))
        else:
            out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


def _multipart(data: builtins.bytes, delimiter: builtins.bytes) -> Iterable[tuple[str, str | File]]:
    at = data.find(delimiter)
    if at < 0:
        raise TypeError("No initial boundary string (or you have a truncated message).")
    at += len(delimiter)
    entries: list[tuple[str, str | File]] = []
    while True:
        if at >= len(data):
            raise TypeError("No subsequent boundary string after multipart message.")
        if data.startswith(b"--", at):
            return entries
        if data.startswith(b"\r\n", at):
            at += 2
        elif data.startswith(b"\n", at):
            at += 1
        else:
            raise TypeError("Boundary string was not succeeded by CRLF, LF, or '--'.")
        ends = [i for i in (data.find(b"\r\n" + delimiter, at), data.find(b"\n" + delimiter, at)) if i >= 0]
        if not ends:
            raise TypeError("No subsequent boundary string after multipart message.")
        end = min(ends)
        entries.append(_part(data[at:end]))
        at = end + (2 if data.startswith(b"\r\n", end) else 1) + len(delimiter)


_DISPOSITION_FIELD = re.compile(r'(?:^|;)[ \t]*(name|filename)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)


def _part(raw: builtins.bytes) -> tuple[str, str | File]:
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        head, content = raw[:crlf], raw[crlf + 4 :]
    elif lf >= 0:
        head, content = raw[:lf], raw[lf + 2 :]
    else:
        head, content = raw, b""
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    disposition = headers.get("content-disposition", "")
    kind, _, rest = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise TypeError("No valid Content-Disposition header found in FormData part.")
    fields: dict[str, str] = {}
    for match in _DISPOSITION_FIELD.finditer(rest):
        fields.setdefault(match[1].lower(), re.sub(r"\\(.)", r"\1", match[2]))
    if "name" not in fields:
        raise TypeError("Content-Disposition header in FormData part is missing a name.")
    name, filename = fields["name"], fields.get("filename")
    if filename:
        return name, File(content, filename, headers.get("content-type"))
    return name, content.decode("utf-8", "replace")
