"""JavaScript globals Python Workers code reaches through ``js`` (``crypto.randomUUID``, ``Math``,
``TextEncoder``, ``Uint8Array``, ``btoa``, ``encodeURIComponent``, ``Error``...), the binary
message a hibernatable ``webSocketMessage`` receives, and the ``ctx`` members of workerd's
``DurableObjectState`` that ``durable.State`` lacks.

Before: every one of these globals raised ``NotImplementedError``, though Python Workers code in
the wild uses them (``from js import crypto, TextEncoder, Uint8Array``, ``js.crypto.randomUUID()``).
The expected values and error texts were measured in workerd (miniflare 4, compatibility date
2026-04-07) with the JavaScript each test names; Pyodide hands the results to Python as the
tests expect (an integral safe number as ``int``, an array as a ``list``, a thrown error as
``pyodide.ffi.JsException``).
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import pytest

import durable
import durable.testing
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def _js_error(name: str, message: str) -> Any:
    from pyodide.ffi import JsException  # type: ignore[import-not-found]

    return pytest.raises(JsException, match=f"^{re.escape(f'{name}: {message}')}$")


class TestCrypto:
    async def test_random_uuid_in_an_object(self, durable_runtime: durable.Runtime) -> None:
        """``js.crypto.randomUUID()`` as an id generator (the pattern found in Python Workers code):
        workerd's is a lower-case version 4 UUID (``bf91d48b-6187-4e08-a484-ed718ff3ad4b``)."""

        class Ids(sdk.DurableObject):
            async def new_id(self) -> str:
                import js  # type: ignore[import-not-found]

                value: str = js.crypto.randomUUID()
                await self.ctx.storage.put(value, True)
                return value

        durable_runtime.namespace(Ids, name="IDS")
        pw.serving(durable_runtime)
        stub = sdk.env.IDS.getByName("a")
        first, second = await stub.new_id(), await stub.new_id()
        pattern = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
        assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second) and first != second

    def test_get_random_values(self) -> None:
        """``crypto.getRandomValues(new Uint8Array(65536)).length`` is 65536; 65537 bytes throw
        ``QuotaExceededError: getRandomValues() only accepts buffers of size <= 64K but provided
        65537 bytes.``; a ``Float32Array`` throws ``TypeMismatchError``. workerd returns the array
        it filled; the ``Uint8Array`` stand-in is immutable, so a new one comes back (a
        ``bytearray`` is filled in place)."""
        from js import Uint8Array, crypto

        values = crypto.getRandomValues(Uint8Array.new(65536))
        assert len(values) == 65536 and values.to_bytes() != bytes(65536)
        with _js_error(
            "QuotaExceededError", "getRandomValues() only accepts buffers of size <= 64K but provided 65537 bytes."
        ):
            crypto.getRandomValues(Uint8Array.new(65537))
        with _js_error(
            "TypeMismatchError", "ArrayBufferView argument to getRandomValues() must be an integer-typed view."
        ):
            crypto.getRandomValues(1.5)
        buffer = bytearray(32)
        assert crypto.getRandomValues(buffer) is buffer and buffer != bytearray(32)

    def test_get_random_values_refuses_views_of_floats(self) -> None:
        """workerd (miniflare 4, 2026-04-07): a ``Float32Array``, ``Float64Array`` or ``DataView``
        throws ``TypeMismatchError``, an ``Int32Array`` / ``BigInt64Array`` is filled, and a
        ``Uint32Array(16385)`` throws ``QuotaExceededError ... provided 65540 bytes.``. durable
        filled a ``memoryview`` of floats."""
        import array

        from js import crypto

        for floats in (memoryview(array.array("f", [0.0, 0.0])), memoryview(array.array("d", [0.0]))):
            with _js_error(
                "TypeMismatchError", "ArrayBufferView argument to getRandomValues() must be an integer-typed view."
            ):
                crypto.getRandomValues(floats)
        ints = memoryview(array.array("i", [0] * 8))
        assert crypto.getRandomValues(ints) is ints and ints.tolist() != [0] * 8
        with _js_error(
            "QuotaExceededError", "getRandomValues() only accepts buffers of size <= 64K but provided 65540 bytes."
        ):
            crypto.getRandomValues(memoryview(array.array("I", [0] * 16385)))

    def test_subtle_beyond_digest_is_not_emulated(self) -> None:
        """``crypto.subtle``'s keys and signatures need WebCrypto: their use raises
        NotImplementedError naming them (``digest`` is emulated: test_python_workers_realworld.py)."""
        from js import crypto

        with pytest.raises(NotImplementedError, match=r"^js\.crypto\.subtle\.sign is not supported by durable"):
            crypto.subtle.sign("HMAC", None, b"")


class TestMath:
    def test_javascript_rules(self) -> None:
        """``[Math.round(2.5), Math.round(-2.5), Math.round(0.49999999999999994), Math.round(-0.5)]``
        is ``[3, -2, 0, -0]`` (Pyodide: ``0``); ``Math.max()`` is ``-Infinity``, ``Math.min()``
        ``Infinity``; a ``NaN`` argument gives ``NaN``; integral results are ``int``."""
        from js import Math

        assert [Math.round(2.5), Math.round(-2.5), Math.round(0.49999999999999994), Math.round(-0.5)] == [3, -2, 0, 0]
        assert (Math.max(), Math.min()) == (-math.inf, math.inf)
        assert math.isnan(Math.max(1, math.nan)) and math.isnan(Math.floor(math.nan)) and math.isnan(Math.sqrt(-1))
        floor = Math.floor(2.7)
        assert floor == 2 and type(floor) is int
        assert (Math.ceil(2.1), Math.trunc(-2.7), Math.abs(-3), Math.sign(-4), Math.max(1, 2.5)) == (3, -2, 3, -1, 2.5)
        assert (Math.pow(2, 10), Math.min(3, 1, 2), Math.PI) == (1024, 1, math.pi)
        assert (Math.exp(1000), Math.log(0)) == (math.inf, -math.inf)  # Infinity, not an OverflowError
        assert 0 <= Math.random() < 1

    def test_pow_of_zero_and_one_at_the_edges(self) -> None:
        """V8 (node, as workerd): ``Math.pow(1, Infinity)`` and ``Math.pow(-1, -Infinity)`` are
        ``NaN``, ``Math.pow(0, -1)`` / ``(-0, -2)`` / ``(-0, -0.5)`` ``Infinity``, ``Math.pow(-0, -3)``
        ``-Infinity`` (miniflare 4, 2026-04-07, the first three). durable gave 1, 1 and NaN
        (Python's pow: 1, and ValueError for zero to a negative power)."""
        from js import Math

        assert math.isnan(Math.pow(1, math.inf)) and math.isnan(Math.pow(-1, -math.inf))
        assert [Math.pow(0, -1), Math.pow(-0.0, -2), Math.pow(-0.0, -0.5), Math.pow(-0.0, -3)] == [
            math.inf,
            math.inf,
            math.inf,
            -math.inf,
        ]
        assert (Math.pow(0, -math.inf), Math.pow(-0.0, -math.inf), Math.pow(0.5, math.inf)) == (math.inf, math.inf, 0)
        assert (Math.pow(1, 5), Math.pow(-1, 3), Math.pow(0, 0)) == (1, -1, 1)


class TestEncodings:
    def test_btoa_and_atob(self) -> None:
        """``btoa("hi")`` is ``"aGk="``, ``btoa("\\u00e9")`` ``"6Q=="``; ``btoa("\\u20ac")`` throws
        ``InvalidCharacterError``; ``atob`` ignores whitespace, takes missing padding and throws
        ``InvalidCharacterError`` for ``"a"`` and ``"!!!!"`` (workerd's messages)."""
        from js import atob, btoa

        assert (btoa("hi"), btoa("\u00e9")) == ("aGk=", "6Q==")
        with _js_error(
            "InvalidCharacterError", "btoa() can only operate on characters in the Latin1 (ISO/IEC 8859-1) range."
        ):
            btoa("\u20ac")
        assert (atob("aGk="), atob("aGk"), atob(" aG k= "), atob("6Q==")) == ("hi", "hi", "hi", "\u00e9")
        message = (
            "atob() called with invalid base64-encoded data. (Only whitespace, '+', '/', alphanumeric ASCII, and "
            "up to two terminal '=' signs when the input data length is divisible by 4 are allowed.)"
        )
        for bad in ("a", "!!!!"):
            with _js_error("InvalidCharacterError", message):
                atob(bad)

    def test_uri_components(self) -> None:
        """``encodeURIComponent("a b&c/é~!*()'")`` is ``"a%20b%26c%2F%C3%A9~!*()'"``, ``encodeURI``
        keeps ``/?&=#``, ``decodeURI("%2F%20")`` is ``"%2F "``; a lone surrogate, ``"%"`` and
        ``"%C3"`` throw ``URIError: URI malformed``."""
        import js

        assert js.encodeURIComponent("a b&c/é~!*()'") == "a%20b%26c%2F%C3%A9~!*()'"
        assert js.encodeURI("http://x/a b?q=1&r=é#f") == "http://x/a%20b?q=1&r=%C3%A9#f"
        assert js.decodeURIComponent("a%20b%C3%A9") == "a bé"
        assert js.decodeURI("%2F%20") == "%2F "
        for call, value in (
            (js.encodeURIComponent, "\ud800"),
            (js.decodeURIComponent, "%"),
            (js.decodeURIComponent, "%C3"),
        ):
            with _js_error("URIError", "URI malformed"):
                call(value)

    async def test_text_encoder_decoder_and_typed_arrays(self) -> None:
        """``new TextEncoder().encode("é")`` is ``[195, 169]``; decoding ``[0xff, 0x61]`` gives
        ``"\\ufffda"``, with ``{fatal: true}`` ``TypeError: Failed to decode input.``;
        ``new Uint8Array([1, 256, -1, 3.7])`` is ``[1, 0, 255, 3]``; ``new Uint8Array(-1)`` throws
        ``RangeError: Invalid typed array length: -1``. The arrays are bodies and binary values."""
        from js import TextDecoder, TextEncoder, Uint8Array

        encoded = TextEncoder.new().encode("é")
        assert list(encoded) == [195, 169] and encoded.length == 2 and encoded.to_bytes() == b"\xc3\xa9"
        assert TextDecoder.new().decode(Uint8Array.new([0xFF, 0x61])) == "\ufffda"
        assert TextDecoder.new().decode(encoded) == "é"
        with _js_error("TypeError", "Failed to decode input."):
            TextDecoder.new("utf-8", {"fatal": True}).decode(Uint8Array.new([0xFF]))
        with pytest.raises(NotImplementedError, match="only UTF-8"):
            TextDecoder.new("latin1")
        assert list(Uint8Array.new([1, 256, -1, 3.7])) == [1, 0, 255, 3]
        assert Uint8Array.new(3).to_bytes() == bytes(3)
        values = Uint8Array.new([0, 1, 2, 3])  # the SDK's tests send `Uint8Array.new(...).subarray(1)` as a body
        assert (values.subarray(1).to_bytes(), values.subarray(-2).byteLength, values.slice(1, 3).to_bytes()) == (
            b"\x01\x02\x03",
            2,
            b"\x01\x02",
        )
        with _js_error("RangeError", "Invalid typed array length: -1"):
            Uint8Array.new(-1)
        assert await sdk.Response(TextEncoder.new().encode("body")).text() == "body"


class TestArrayObjectError:
    def test_arrays_and_objects(self) -> None:
        """``Array.from("ab")`` is ``["a", "b"]``; ``Object.entries({a: 1, b: 2})`` is
        ``[["a", 1], ["b", 2]]``; ``Object.assign({a: 1}, {b: 2})`` is ``{a: 1, b: 2}``."""
        from js import Array, Object

        assert getattr(Array, "from")("ab") == Array.from_("ab") == ["a", "b"]
        assert (Array.new(), Array.new(2), Array.new(1, 2), Array.isArray([])) == ([], [None, None], [1, 2], True)
        assert Object.entries({"a": 1, "b": 2}) == [["a", 1], ["b", 2]]
        assert Object.assign({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}
        made = Object.new()
        made.name = "x"  # a JavaScript object: attribute access, as through Pyodide
        assert made["name"] == "x" and made.to_py() == {"name": "x"}

    def test_error_new_raises_as_a_js_exception(self) -> None:
        """``String(new Error("boom"))`` is ``"Error: boom"``; in Pyodide a JavaScript error is a
        ``JsException``, so ``raise js.Error.new("boom")`` works."""
        import js
        from pyodide.ffi import JsException

        with pytest.raises(JsException, match="^Error: boom$") as caught:
            raise js.Error.new("boom")
        assert (caught.value.name, caught.value.message) == ("Error", "boom")
        assert js.TypeError.new("x").name == "TypeError" and js.RangeError("y").message == "y"


class TestDurableObjectContext:
    async def test_members_durable_lacks(self, durable_runtime: durable.Runtime) -> None:
        """A Durable Object's ``ctx.props`` is ``{}`` and ``ctx.container`` ``undefined`` (no
        container); ``ctx.exports`` and ``ctx.facets`` exist in workerd but are not emulated:
        NotImplementedError naming them, instead of an AttributeError that reads as a typo."""

        class Probe(sdk.DurableObject):
            async def read(self) -> Any:
                failures = []
                for name in ("exports", "facets"):
                    try:
                        getattr(self.ctx, name)
                    except NotImplementedError as exc:
                        failures.append(str(exc))
                return [self.ctx.props.to_py(), self.ctx.container, failures]

        durable_runtime.namespace(Probe, name="PROBE")
        pw.serving(durable_runtime)
        props, container, failures = await sdk.env.PROBE.getByName("a").read()
        assert (props, container) == ({}, None)
        assert [f.split(":")[0] for f in failures] == [
            "ctx.exports is not emulated by durable",
            "ctx.facets is not emulated by durable",
        ]


class EchoRoom(sdk.DurableObject):
    """The hibernation example of cloudflare-docs ``durable-objects/best-practices/websockets``
    (Python tab), echoing binary messages as the SDK's users read them."""

    def __init__(self, state: Any, env: Any) -> None:
        super().__init__(state, env)
        self.ctx = state

    async def fetch(self, request: Any) -> Any:
        from js import WebSocketPair

        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return sdk.Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:  # noqa: N802 - the SDK's handler name
        if isinstance(message, str):
            ws.send(f"[Durable Object] message: {message}, connections: {len(self.ctx.get_websockets())}")
        else:
            ws.send(f"{message.byteLength} {message.to_bytes().hex()} {bytes(message.to_py()).hex()}")
            ws.send(message)


async def test_binary_websocket_message_is_an_array_buffer(durable_runtime: durable.Runtime) -> None:
    """workerd passes a binary message to ``webSocketMessage`` as an ``ArrayBuffer`` (measured:
    ``message instanceof ArrayBuffer``), and Python Workers handlers get raw JavaScript arguments,
    so Pyodide hands over a buffer proxy: ``to_bytes()``, ``to_py()``, ``byteLength``. Before,
    durable passed ``bytes``, on which ``message.to_bytes()`` raised AttributeError."""
    durable_runtime.namespace(EchoRoom, name="ROOMS")
    stub = durable_runtime.env.ROOMS.get_by_name("a")
    async with durable.testing.websocket(stub, "http://w/ws") as ws:
        ws.send("hi")
        assert await ws.receive() == "[Durable Object] message: hi, connections: 1"
        ws.send(b"\x01\x02")
        assert await ws.receive() == "2 0102 0102"
        assert await ws.receive() == b"\x01\x02"  # the buffer is sent back as binary data


class Lobby(sdk.DurableObject):
    """Per-connection state in a hibernatable socket's attachment, written and read the way Python
    Workers code must (an SDK user's dict goes through ``to_js(..., dict_converter=Object.fromEntries)``)."""

    async def fetch(self, request: Any) -> Any:
        from js import Object, WebSocketPair
        from pyodide.ffi import to_js

        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        server.serializeAttachment(to_js({"name": "ada", "seat": 3}, dict_converter=Object.fromEntries))
        return sdk.Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:  # noqa: N802 - the SDK handler name
        attachment = ws.deserializeAttachment()
        (listed,) = self.ctx.getWebSockets()
        ws.send(f"{attachment.name} {attachment.to_py()['seat']} {listed.deserializeAttachment().seat} {listed is ws}")


async def test_attachments_read_as_javascript_objects(durable_runtime: durable.Runtime) -> None:
    """Through Pyodide, ``ws.deserializeAttachment()`` is a JavaScript object: ``att.name`` and
    ``att.to_py()`` (as Python Workers code reads it, e.g. the agents SDK's tests:
    ``socket.deserializeAttachment().to_py()``). durable gave the plain dict it stored, on which
    both raised AttributeError. The handler's ``ws`` and ``getWebSockets()``'s are the same socket."""
    durable_runtime.namespace(Lobby, name="LOBBY")
    stub = durable_runtime.env.LOBBY.get_by_name("a")
    async with durable.testing.websocket(stub, "http://w/ws") as ws:
        ws.send("hi")
        assert await ws.receive() == "ada 3 3 True"


async def test_buffer_is_a_javascript_array_buffer() -> None:
    """The SDK's ``buffer()`` returns the JavaScript ``ArrayBuffer`` of ``arrayBuffer()`` (workers-py
    ``request.py`` / Pyodide's ``FetchResponse.buffer``), and its own ``bytes()`` is
    ``(await self.buffer()).to_bytes()``: code reads ``byteLength`` and ``to_bytes()`` on it
    (workers-py ``workerd-test/sdk``: ``int(buffer.byteLength)``). durable gave ``bytes``, which
    has neither."""
    for body in (sdk.Response("abc"), sdk.Request("https://x.example/", method="POST", body="abc")):
        buffer = await body.buffer()
        assert (buffer.byteLength, buffer.to_bytes(), bytes(buffer.to_py())) == (3, b"abc", b"abc")
        assert await sdk.Response(buffer).text() == "abc"  # an ArrayBuffer is a body


class Counter(sdk.DurableObject):
    """The standard-API example of cloudflare-docs ``durable-objects/best-practices/websockets``
    (Python tab: ``server.accept()``, ``server.addEventListener("message", create_proxy(...))``),
    reading binary messages."""

    async def fetch(self, request: Any) -> Any:
        from js import WebSocketPair
        from pyodide.ffi import create_proxy

        client, server = WebSocketPair.new().object_values()
        server.accept()

        async def on_message(event: Any) -> None:
            data = event.data
            if isinstance(data, str):
                if data == "arraybuffer":
                    server.binaryType = "arraybuffer"
                elif data == "stop":
                    server.removeEventListener("message", listener)
                server.send(f"text {data} {event.target is server}")
            elif server.binaryType == "blob":
                server.send(f"blob {data.size} {(await data.bytes()).hex()}")
            else:
                server.send(f"arraybuffer {data.byteLength} {data.to_bytes().hex()}")

        listener = create_proxy(on_message)
        server.addEventListener("message", listener)
        return sdk.Response(None, status=101, web_socket=client)


async def test_binary_message_events_as_workerd_hands_them(durable_runtime: durable.Runtime) -> None:
    """A WebSocketPair end's ``"message"`` listener gets a binary message as a ``Blob`` (measured,
    miniflare 4, 2026-04-07: ``event.data`` is ``[object Blob]``), or as an ``ArrayBuffer`` after
    ``binaryType = "arraybuffer"``. durable passed ``bytes``, on which ``await data.bytes()`` and
    ``data.to_bytes()`` raised AttributeError. ``removeEventListener`` finds the listener."""
    durable_runtime.namespace(Counter, name="COUNTERS")
    stub = durable_runtime.env.COUNTERS.get_by_name("a")
    async with durable.testing.websocket(stub, "http://w/ws") as ws:
        ws.send(b"\x01\x02")
        assert await ws.receive() == "blob 2 0102"
        ws.send("arraybuffer")
        assert await ws.receive() == "text arraybuffer True"
        ws.send(b"\x03")
        assert await ws.receive() == "arraybuffer 1 03"
        ws.send("stop")
        assert await ws.receive() == "text stop True"
        ws.send("after")  # no listener any more: nothing comes back
        ws.send(b"")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), 0.2)


class TestJavaScriptConversions:
    """Review of the js globals against V8 (node) and workerd (miniflare 4, 2026-04-07)."""

    def test_lengths_are_to_index(self) -> None:
        """``new Uint8Array(1.5).length`` is 1, ``(NaN)`` 0, ``(-0.5)`` 0, ``(Infinity)`` throws
        ``RangeError: Invalid typed array length: Infinity``; ``new ArrayBuffer(2.0)`` has 2 bytes,
        ``(1.5)`` 1, ``(-1)`` / ``(Infinity)`` throw ``RangeError: Invalid array buffer length``;
        ``new Array(NaN)`` / ``(Infinity)`` / ``(1.5)`` throw ``RangeError: Invalid array length``.
        durable refused 1.5 and 2.0, and raised ValueError / OverflowError for NaN and Infinity."""
        from js import Array, ArrayBuffer, Uint8Array

        assert [len(Uint8Array.new(n)) for n in (1.5, math.nan, -0.5)] == [1, 0, 0]
        with _js_error("RangeError", "Invalid typed array length: Infinity"):
            Uint8Array.new(math.inf)
        with _js_error("RangeError", "Invalid typed array length: -1"):
            Uint8Array.new(-1)
        assert [ArrayBuffer.new(n).byteLength for n in (2.0, 1.5, math.nan)] == [2, 1, 0]
        for bad in (-1, math.inf):
            with _js_error("RangeError", "Invalid array buffer length"):
                ArrayBuffer.new(bad)
        for bad in (math.nan, math.inf, 1.5):
            with _js_error("RangeError", "Invalid array length"):
                Array.new(bad)

    def test_strings_to_numbers_as_javascript(self) -> None:
        """``Math.floor("0x10")`` is 16, ``("0b11")`` 3, ``(" 12 ")`` 12, ``("-Infinity")``
        -Infinity, ``("inf")`` / ``("1_000")`` / ``("+0x10")`` NaN. durable parsed with ``float()``."""
        from js import Math

        assert [Math.floor(t) for t in ("0x10", "0b11", " 12 ", ".5e1", "-Infinity", "")] == [
            16,
            3,
            12,
            5,
            -math.inf,
            0,
        ]
        assert all(math.isnan(Math.floor(t)) for t in ("inf", "1_000", "+0x10", "nan", "0x"))

    def test_none_is_undefined(self) -> None:
        """Pyodide passes ``None`` as ``undefined``: ``new TextEncoder().encode(undefined)`` is empty,
        ``btoa(undefined)`` is ``"dW5kZWZpbmVk"``, ``encodeURIComponent(undefined)`` ``"undefined"``,
        ``new TextDecoder(undefined)`` is UTF-8. durable encoded ``"undefined"``, used ``"null"``
        for the others and raised AttributeError for the decoder."""
        from js import TextDecoder, TextEncoder, btoa, encodeURIComponent

        assert TextEncoder.new().encode(None).to_bytes() == b""
        assert (btoa(None), encodeURIComponent(None)) == ("dW5kZWZpbmVk", "undefined")
        assert TextDecoder.new(None).decode(b"ok") == "ok"
