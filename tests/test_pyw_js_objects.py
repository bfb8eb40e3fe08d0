"""JavaScript objects held by Python Workers code against the SDK's own wrappers: what
``workers.Response()`` and ``workers.Request()`` accept (workers-py ``response.py``,
``request.py``, ``utils.py``'s ``RESPONSE_ACCEPTED_TYPES``)."""

from __future__ import annotations

import pytest

import durable
from durable.compat.python_workers import js
from durable.compat.python_workers import workers as sdk

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
