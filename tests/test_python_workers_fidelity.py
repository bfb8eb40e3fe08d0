"""Python Workers compatibility, measured against Cloudflare's SDK (cloudflare/workers-py,
``packages/runtime-sdk``) and workerd: names and behaviours the SDK's users rely on."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")  # installed for every test, then uninstalled


def env_of(runtime: durable.Runtime) -> Any:
    """``runtime.env`` as Python Workers code sees it (``self.env`` / ``workers.env``)."""
    pw.serving(runtime)
    return sdk.env


# ---------------------------------------------------------------------------------------------
# RPC arguments


class Mixin:
    async def mixed(self, value: Any) -> Any:
        return type(value).__name__, value.key


class Inbox(Mixin, sdk.DurableObject):
    async def take(self, message: Any, extra: Any = None) -> Any:
        # workerd passes RPC arguments through python_from_rpc: a JS object arrives as a JsDict.
        kinds = [type(message).__name__, type(message["items"][0]).__name__]
        if extra is not None:
            kinds.append(type(extra).__name__)
        return kinds, message.text, message["items"][0].n

    async def local(self) -> Any:
        # A call from the object's own code passes its argument untouched (no conversion, no copy).
        value = {"a": 1}
        return await self.keep(value), value.get("seen")

    async def keep(self, value: Any) -> Any:
        value["seen"] = True
        return type(value).__name__

    def sync_take(self, value: Any) -> Any:
        return type(value).__name__


class InboxAfter(sdk.DurableObject, Mixin):
    """The mixin listed after DurableObject: later in the method resolution order."""


class InboxChild(Inbox):
    async def child_take(self, value: Any) -> Any:
        return type(value).__name__


class TestRpcArguments:
    async def test_mixin_after_durable_object(self, durable_runtime: durable.Runtime) -> None:
        """`class X(DurableObject, Mixin)`: the mixin's methods are reachable over RPC and get
        their arguments converted as the class's own do (workers-py reaches any attribute)."""
        durable_runtime.namespace(InboxAfter, name="AFTER")
        stub = env_of(durable_runtime).AFTER.getByName("a")
        assert await stub.mixed({"key": 5}) == ("JsDict", 5)

    async def test_dict_arguments_arrive_as_js_dicts(self, durable_runtime: durable.Runtime) -> None:
        """A dict sent over RPC arrives as the SDK's JsDict (attribute access), at any depth.

        workers-py ``introspection.py`` (workerd ``pyodide/internal``) calls RPC methods with
        ``python_from_rpc(arg)``, which gives ``JsDict`` for a JavaScript object.
        """
        durable_runtime.namespace(Inbox, name="INBOX")
        stub = env_of(durable_runtime).INBOX.getByName("a")
        kinds, text, n = await stub.take({"text": "hi", "items": [{"n": 3}]})
        assert (kinds, text, n) == (["JsDict", "JsDict"], "hi", 3)
        assert (await stub.take({"text": "x", "items": [{"n": 1}]}, {"a": 1}))[0][2] == "JsDict"
        assert await stub.sync_take({"a": 1}) == "JsDict"

    async def test_plain_durable_stub_and_mixins(self, durable_runtime: durable.Runtime) -> None:
        """Whoever the caller is (a plain durable stub too), mixin and inherited methods included."""
        durable_runtime.namespace(InboxChild, name="INBOX")
        stub = durable_runtime.env.INBOX.get_by_name("a")
        assert await stub.mixed({"key": 5}) == ("JsDict", 5)
        assert await stub.child_take({"a": 1}) == "JsDict"
        assert (await stub.take({"text": "t", "items": [{"n": 2}]}))[0] == ["JsDict", "JsDict"]

    async def test_local_calls_are_not_converted(self, durable_runtime: durable.Runtime) -> None:
        """The object's own calls to its methods keep their arguments as they are."""
        durable_runtime.namespace(Inbox, name="INBOX")
        stub = env_of(durable_runtime).INBOX.getByName("a")
        assert list(await stub.local()) == ["dict", True]


# ---------------------------------------------------------------------------------------------
# Module-level names: wait_until, import_from_javascript, patch_env

DONE: list[str] = []


async def _note(what: str) -> None:
    await asyncio.sleep(0.01)
    DONE.append(what)


class Background(sdk.DurableObject):
    async def go(self) -> str:
        sdk.wait_until(_note("object"))  # cloudflare:workers' waitUntil, inside an object
        return "returned"


class BackgroundWorker(sdk.WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        from workers import waitUntil  # type: ignore[import-not-found]

        waitUntil(_note("worker"))
        cloudflare_workers = sdk.import_from_javascript("cloudflare:workers")
        cloudflare_workers.waitUntil(_note("imported"))
        return sdk.Response(f"{cloudflare_workers.env.GREETING} {await self.env.BG.getByName('a').go()}")


class TestModuleLevelNames:
    async def test_wait_until_in_a_worker_and_an_object(self) -> None:
        """``workers.wait_until`` is ``cloudflare:workers``' ``waitUntil``: the work of the request
        (or object call) in progress continues after the response.

        workerd (miniflare 4, 2026-04-07): ``waitUntil`` imported from ``cloudflare:workers`` runs
        its promise to completion after the response, in a Worker's fetch and in an object.
        """
        DONE.clear()
        async with durable.Runtime(vars={"GREETING": "hello"}) as rt:
            rt.namespace(Background, name="BG")
            pw.serving(rt)
            app = durable.asgi_app(BackgroundWorker, rt)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
                response = await client.get("/")
            assert response.text == "hello returned"
            for _ in range(100):
                if len(DONE) == 3:
                    break
                await asyncio.sleep(0.01)
        assert sorted(DONE) == ["imported", "object", "worker"]

    def test_wait_until_outside_a_request(self) -> None:
        """Outside any request: workerd's "Disallowed operation called within global scope" error.

        workerd (miniflare 4, 2026-04-07), ``waitUntil(p)`` at module level: ``Error: Disallowed
        operation called within global scope. Asynchronous I/O ...``.
        """
        from pyodide.ffi import JsException  # type: ignore[import-not-found]

        work = _note("never")
        with pytest.raises(JsException, match="Disallowed operation called within global scope") as caught:
            sdk.wait_until(work)
        # The refused coroutine is closed, as ctx.wait_until's is (review-r2): it was left for
        # Python's "coroutine '_note' was never awaited" warning, an error under -W error.
        assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED
        assert caught.value.name == "Error" and caught.value.message.startswith("Disallowed operation")

    async def test_import_from_javascript(self) -> None:
        """The docs' ``import_from_javascript("cloudflare:workers").env.MY_VARIABLE``; other modules fail clearly."""
        async with durable.Runtime(vars={"MY_VARIABLE": "value"}) as rt:
            pw.serving(rt)
            cloudflare_workers = sdk.import_from_javascript("cloudflare:workers")
            assert cloudflare_workers.env.MY_VARIABLE == "value"
        assert cloudflare_workers.waitUntil is sdk.wait_until
        with pytest.raises(NotImplementedError, match="cloudflare:sockets"):
            sdk.import_from_javascript("cloudflare:sockets")
        with pytest.raises(ImportError, match="Failed to import 'left-pad'"):
            sdk.import_from_javascript("left-pad")
        with pytest.raises(NotImplementedError, match="RpcTarget"):
            cloudflare_workers.RpcTarget

    async def test_patch_env(self) -> None:
        """``with patch_env(NAME=value)`` overrides names of ``workers.env`` inside the block, nested
        blocks included (the SDK's ``patch_env``: dict, pairs or keywords)."""
        async with durable.Runtime(vars={"KEEP": "kept", "NAME": "original"}) as rt:
            pw.serving(rt)
            with sdk.patch_env({"NAME": "patched"}):
                assert (sdk.env.NAME, sdk.env.KEEP) == ("patched", "kept")
                with sdk.patch_env([("OTHER", 1)], NAME="inner"):
                    assert (sdk.env.NAME, sdk.env.OTHER) == ("inner", 1)
                assert sdk.env.NAME == "patched" and "OTHER" not in sdk.env
            assert sdk.env.NAME == "original"


# ---------------------------------------------------------------------------------------------
# Request and Response


class TestRequestResponse:
    def test_request_properties_and_options(self) -> None:
        """The SDK's Request properties read workerd's values; its options are checked as workerd checks them.

        workerd (miniflare 4, 2026-04-07), ``new Request("https://x.com/a")``: ``cache`` undefined,
        ``redirect`` "follow", ``integrity`` "", ``keepalive`` false (also when given true);
        ``{cache: "no-store"}`` reads back; ``{redirect: "bogus"}`` and ``{integrity: "sha256-abc"}``
        raise TypeError with the texts matched below.
        """
        req = sdk.Request("https://x.com/a")
        assert (req.cache, req.redirect, req.integrity, req.keepalive) == (None, "follow", "", False)
        assert repr(req) == "Request(method='GET', url='https://x.com/a')"
        req = sdk.Request("https://x.com/a", redirect="manual", cache="no-store", keepalive=True, cf={"cacheTtl": 5})
        assert (req.redirect, req.cache, req.keepalive, req.cf.cacheTtl) == ("manual", "no-store", False, 5)
        assert sdk.Request(req).redirect == "manual" and req.clone().cache == "no-store"
        with pytest.raises(TypeError, match=r'^Invalid redirect value, must be one of "follow" or "manual"'):
            sdk.Request("https://x.com/a", redirect="bogus")
        with pytest.raises(TypeError, match="^Subrequest integrity checking is not implemented"):
            sdk.Request("https://x.com/a", integrity="sha256-abc")
        import http

        assert sdk.Request("https://x.com/a", method=http.HTTPMethod.PUT).method == "PUT"

    def test_response_body_types(self) -> None:
        """workers-py ``Response.__init__`` accepts str, bytes, None (and JavaScript bodies) and says
        ``Unsupported type in Response: <type>`` for anything else."""
        for body in ({"a": 1}, 5, bytearray(b"x"), [b"x"]):
            with pytest.raises(TypeError, match=rf"^Unsupported type in Response: {type(body).__name__}$"):
                sdk.Response(body)
        assert sdk.Response(b"x").status == 200 and sdk.Response(None).status == 200

    async def test_fetch_response_extras(self) -> None:
        """pyodide's FetchResponse API: url, redirected, type, string(), memoryview(), raise_for_status()."""
        resp = sdk.Response("gone", 404)
        assert (resp.url, resp.redirected, resp.type, resp.js_object is resp) == ("", False, "default", True)
        with pytest.raises(OSError, match=r"^404 Client Error: Not Found for url: $"):
            resp.raise_for_status()
        with pytest.raises(OSError, match=r"^503 Server Error: Service Unavailable for url: $"):
            sdk.Response("x", 503).raise_for_status()
        sdk.Response("fine").raise_for_status()
        assert await resp.clone().string() == "gone"
        assert bytes(await resp.memoryview()) == b"gone"

    def test_response_repr(self) -> None:
        """As workers-py's ``Response.__repr__``."""
        assert (
            repr(sdk.Response("x")) == "Response(status=200, status_text='OK', content_type='text/plain;charset=UTF-8')"
        )
        assert repr(sdk.Response(None, 204)) == "Response(status=204, status_text='No Content')"

    async def test_js_response_keyword_init(self) -> None:
        """Pyodide passes keyword arguments of a JavaScript call as its trailing object:
        ``js.Response.new("x", status=404, headers=...)`` is ``new Response("x", {status: 404, ...})``,
        as the SDK itself calls it."""
        import js  # type: ignore[import-not-found]

        resp = js.Response.new("missing", status=404, headers={"x-a": "1"})
        assert (resp.status, resp.headers["x-a"], await resp.text()) == (404, "1", "missing")
        moved = js.Response.redirect("https://a.example/", 301)
        assert (moved.status, moved.headers["location"]) == (301, "https://a.example/")
        data = js.Response.json({"a": 1}, status=201)
        assert (data.status, await data.text()) == (201, '{"a":1}')
        assert (await js.Response.new(bytearray(b"buf")).bytes()) == b"buf"


# ---------------------------------------------------------------------------------------------
# js and pyodide.ffi


class TestJsAndFfi:
    async def test_js_headers_and_request(self) -> None:
        """``js.Headers.new(init)`` and ``js.Request.new(url, init)`` (as the SDK builds them)."""
        import js

        headers = js.Headers.new({"X-A": "1"}.items())
        assert headers["x-a"] == "1"
        req = js.Request.new("https://x.example/p", method="POST", body="hi")
        assert (req.method, req.url, await req.text()) == ("POST", "https://x.example/p", "hi")

    def test_unemulated_globals_import_and_fail_clearly(self) -> None:
        """Globals of the Workers runtime that durable lacks import (a module's ``from js import
        HTMLRewriter`` loads) and raise NotImplementedError naming them when used; a name that is
        no global stays an AttributeError. (``js.WebSocket`` is emulated: see
        tests/test_python_workers_websocket_client.py.)"""
        from js import AbortController, HTMLRewriter

        with pytest.raises(NotImplementedError, match=r"^js\.AbortController\.new is not supported by durable"):
            AbortController.new()
        with pytest.raises(NotImplementedError, match=r"^js\.HTMLRewriter\(\) is not supported by durable"):
            HTMLRewriter()
        import js

        with pytest.raises(AttributeError, match="js.NoSuchGlobal is not emulated"):
            js.NoSuchGlobal

    def test_ffi_names(self) -> None:
        """pyodide.ffi's proxy types exist for isinstance checks (nothing is one) with IN_BROWSER etc."""
        import pyodide.ffi as ffi  # type: ignore[import-not-found]

        for name in ("JsBuffer", "JsCallable", "JsPromise", "JsMap", "JsIterable", "JsGenerator", "JsDoubleProxy"):
            kind = getattr(ffi, name)
            assert issubclass(kind, ffi.JsProxy) and not isinstance({}, kind)
        assert ffi.IN_BROWSER is False and ffi.can_run_sync() is True
        assert issubclass(ffi.ConversionError, Exception)


class Mover(sdk.DurableObject):
    async def fetch(self, request: Any) -> Any:
        if request.url.endswith("/old"):
            return sdk.Response.redirect("https://o.example/new", 302)
        return sdk.Response(f"{request.url} {request.redirect}")


class TestRedirectMode:
    """The SDK Request's ``redirect`` and durable.Request's ``redirect`` (which stub.fetch follows)
    are one field: two helpers added one each, and they disagreed."""

    async def test_manual_request_is_not_followed(self, durable_runtime: durable.Runtime) -> None:
        """``stub.fetch(Request(url, redirect="manual"))`` returns the 302 itself, as workerd does
        (miniflare 4, 2026-04-07: a DO stub's fetch with redirect "manual" answers 302; the
        default "follow" reaches the target); the handler's request says "manual"."""
        durable_runtime.namespace(Mover, name="MOVER")
        stub = env_of(durable_runtime).MOVER.getByName("a")
        moved = await stub.fetch(sdk.Request("https://o.example/old", redirect="manual"))
        assert (moved.status, moved.headers["location"]) == (302, "https://o.example/new")
        followed = await stub.fetch(sdk.Request("https://o.example/old"))
        assert (followed.status, await followed.text()) == (200, "https://o.example/new manual")
        assert followed.redirected

    def test_redirect_mode_reads_the_request(self) -> None:
        """A request a handler receives (durable.Request with redirect "manual") reads "manual"
        through the SDK wrapper, as ``request.redirect`` does in workerd; copies keep the mode."""
        inner = durable.Request("https://x.com/a", redirect="manual")
        assert sdk.Request(inner).redirect == "manual"
        assert sdk.Request(inner).clone().redirect == "manual"
        assert (
            sdk.Request(sdk.Request(inner), redirect="follow").redirect == "follow"
        )  # (a js.Request takes no options)
        assert inner.redirect == "manual"  # the received request itself is not changed
        assert sdk.Request("https://x.com/a", redirect="manual").js_object.redirect == "manual"
