"""Python Workers compatibility, measured against Cloudflare's SDK (cloudflare/workers-py,
``packages/runtime-sdk``) and workerd: names and behaviours the SDK's users rely on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk


@pytest.fixture(autouse=True)
def shims() -> Iterator[None]:
    """Every test here runs with the shims installed and leaves them uninstalled."""
    pw.install()
    try:
        yield
    finally:
        pw.uninstall()


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
    async def take(self, message: Any, *, extra: Any = None) -> Any:
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


class InboxChild(Inbox):
    async def child_take(self, value: Any) -> Any:
        return type(value).__name__


class TestRpcArguments:
    async def test_dict_arguments_arrive_as_js_dicts(self, durable_runtime: durable.Runtime) -> None:
        """A dict sent over RPC arrives as the SDK's JsDict (attribute access), at any depth.

        workers-py ``introspection.py`` (workerd ``pyodide/internal``) calls RPC methods with
        ``python_from_rpc(arg)``, which gives ``JsDict`` for a JavaScript object.
        """
        durable_runtime.namespace(Inbox, name="INBOX")
        stub = env_of(durable_runtime).INBOX.getByName("a")
        kinds, text, n = await stub.take({"text": "hi", "items": [{"n": 3}]})
        assert (kinds, text, n) == (["JsDict", "JsDict"], "hi", 3)
        assert (await stub.take({"text": "x", "items": [{"n": 1}]}, extra={"a": 1}))[0][2] == "JsDict"
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
        work.close()
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
