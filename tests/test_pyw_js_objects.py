"""JavaScript objects held by Python Workers code against the SDK's own wrappers: what
``workers.Response()`` and ``workers.Request()`` accept (workers-py ``response.py``,
``request.py``, ``utils.py``'s ``RESPONSE_ACCEPTED_TYPES``)."""

from __future__ import annotations

import pytest

import durable
from durable.compat.python_workers import js
from durable.compat.python_workers import workers as sdk
from durable.testing import MockClock

pytestmark = pytest.mark.usefixtures("python_workers_shims")


class TestResponseBodies:
    async def test_the_sdks_blob_is_refused_a_javascript_blob_is_not(self) -> None:
        """The SDK's ``Response`` takes a JavaScript body only by its constructor name (``Blob``
        is in ``RESPONSE_ACCEPTED_TYPES``, ``File`` is not) and otherwise only ``str``, ``bytes``
        and ``FormData``: its own ``workers.Blob`` / ``File`` raise ``TypeError("Unsupported type
        in Response: Blob")``. ``workers.Blob`` was accepted."""
        blob = sdk.Blob(["hi"], "text/x")
        with pytest.raises(TypeError, match="^Unsupported type in Response: Blob$"):
            sdk.Response(blob)
        with pytest.raises(TypeError, match="^Unsupported type in Response: File$"):
            sdk.Response(sdk.File(["hi"], "f.txt"))
        with pytest.raises(TypeError, match="^Unsupported type in Response: File$"):
            sdk.Response(js.File.new(["hi"], "f.txt"))
        response = sdk.Response(blob.js_object)
        assert (await response.text(), response.headers["content-type"]) == ("hi", "text/x")
        assert await sdk.Response(js.Blob.new(["a", "b"])).text() == "ab"
        read = await sdk.Response("x").blob()  # a workers.Blob, as the SDK's blob() returns
        with pytest.raises(TypeError, match="^Unsupported type in Response: Blob$"):
            sdk.Response(read)
        assert (type(read), read.js_object.size, js.Blob.new(["z"]).js_object.size) == (sdk.Blob, 1, 1)


class TestRequestFromAJavaScriptRequest:
    async def test_options_with_a_javascript_request_are_refused(self) -> None:
        """``Request(js_request, method="POST")`` raises the SDK's ``ValueError("Expected no
        options when constructing Request from a js.Request")`` (it built a new request); a
        ``workers.Request`` still takes options, and ``js.Request.new`` / ``fetch`` /
        ``clone()`` still accept a request with an init."""
        message = "^Expected no options when constructing Request from a js.Request$"
        raw = js.Request.new("https://x.example/p")
        with pytest.raises(ValueError, match=message):
            sdk.Request(raw, method="POST")
        with pytest.raises(ValueError, match=message):
            sdk.Request(durable.Request("https://x.example/"), {"method": "POST"})
        wrapped = sdk.Request(raw)
        assert wrapped.js_object is raw.js_object and wrapped.method == "GET"
        posted = sdk.Request(wrapped, method="POST", body="b")
        assert sdk.Request(posted.clone()).method == "POST"
        assert (posted.method, await posted.text()) == ("POST", "b")
        again = js.Request.new(raw, {"method": "PUT"})
        assert (again.method, again.url) == ("PUT", "https://x.example/p")


ALARM_SEEN: list[dict[str, object]] = []


class Alarmed(sdk.DurableObject):
    async def arm(self, at: int) -> None:
        await self.ctx.storage.setAlarm(at)

    async def alarm(self, info: object) -> None:
        seen: dict[str, object] = {"str": str(info), "json": js.JSON.stringify(info)}
        seen["fields"] = [getattr(info, name, "missing") for name in ("retryCount", "isRetry", "retry_count")]
        try:
            await self.ctx.storage.put("info", info)
        except durable.DataCloneError as exc:
            seen["put"] = str(exc)
        ALARM_SEEN.append(seen)


class TestAlarmInvocationInfo:
    async def test_the_alarm_argument_is_workerds_object(
        self, durable_runtime: durable.Runtime, mock_clock: MockClock
    ) -> None:
        """workerd calls ``alarm(info)`` with an ``AlarmInvocationInfo`` (miniflare 4.20260426.0,
        compatibility date 2026-04-20): own properties ``scheduledTime``, ``retryCount``,
        ``isRetry`` (Pyodide's proxy has no snake_case names), ``String()`` ``[object
        AlarmInvocationInfo]``, ``JSON.stringify`` its three fields, and storing it raises
        ``DataCloneError: Could not serialize object of type "AlarmInvocationInfo". This type does
        not support serialization.``. It was durable's ``AlarmInfo`` (``retry_count`` too, a
        dataclass's repr, JSON.stringify refused it)."""
        ALARM_SEEN.clear()
        at = int(mock_clock.time() * 1000) + 1000
        await durable_runtime.namespace(Alarmed).get_by_name("a").arm(at)
        await mock_clock.advance(2)
        assert [
            {
                "str": "[object AlarmInvocationInfo]",
                "json": f'{{"scheduledTime":{at},"retryCount":0,"isRetry":false}}',
                "fields": [0, False, "missing"],
                "put": 'Could not serialize object of type "AlarmInvocationInfo". This type does not support serialization.',
            }
        ] == ALARM_SEEN
