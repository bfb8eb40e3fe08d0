"""Python Workers compatibility, measured against Cloudflare's SDK (cloudflare/workers-py,
``packages/runtime-sdk``) and workerd: names and behaviours the SDK's users rely on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
