"""The public surface of Cloudflare's Python Workers SDK (cloudflare/workers-py, ``packages/runtime-sdk``
at b00837d4) against durable's ``workers`` module: names the SDK's users (and its own tests) rely on
that durable lacked or answered differently. The comparison table is in docs/python-workers.md."""

from __future__ import annotations

import http
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def _project(root: Path, entry: str) -> Path:
    (root / "src").mkdir()
    (root / "src" / "entry.py").write_text(entry)
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "main": "src/entry.py",
                "compatibility_date": "2026-04-07",
                "durable_objects": {"bindings": [{"name": "COUNTERS", "class_name": "Counter"}]},
                "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}],
                "vars": {"GREETING": "hi"},
            }
        )
    )
    return root


async def _get(app: Any, path: str, headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        return await client.get(path, headers=headers)


TOP_LEVEL_ENV = """
from workers import *  # env is in the SDK's __all__
from workers import env as top_level_env


class Counter(DurableObject):
    async def bump(self):
        n = (await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", n)
        return n


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        n = await top_level_env.COUNTERS.getByName("a").bump()
        return Response(f"{env.GREETING} {n}")
"""


class TestTopLevelEnv:
    async def test_env_imported_at_the_top_of_the_entry_module(
        self, durable_runtime: durable.Runtime, tmp_path: Path
    ) -> None:
        """The SDK's own tests do ``from workers import env`` at module level (workers-py
        ``tests/bindings-test/src/test_do.py``, ``workerd-test/sdk/tests/test_sdk.py``): on
        Cloudflare ``env`` is there at import time and its bindings are read when used. durable
        raised ``RuntimeError: workers.env is not bound yet`` while loading such a module (its
        project is imported before it is bound), so the project did not load; ``from workers
        import *`` failed the same way."""
        app = pw.asgi_app(_project(tmp_path, TOP_LEVEL_ENV), durable_runtime)
        assert (await _get(app, "/")).text == "hi 1"
        assert (await _get(app, "/")).text == "hi 2"

    def test_reading_a_binding_before_one_is_bound_says_how(self) -> None:
        """Taking ``workers.env`` never fails; reading a binding through it with no project bound
        raises the error that says how to bind one."""
        from durable.compat.python_workers import _entrypoints

        saved = _entrypoints._current_env
        _entrypoints.set_current_env(None)
        try:
            env = sdk.env
            with pytest.raises(RuntimeError, match="load_project"):
                env.COUNTERS
            with pytest.raises(RuntimeError, match="not bound yet"):
                "COUNTERS" in env  # noqa: B015 - the lookup is what is tested
        finally:
            _entrypoints.set_current_env(saved)

    async def test_env_follows_the_runtime_served_last(self) -> None:
        """The name taken once sees the bindings of whichever runtime is served when it is used."""
        env = sdk.env
        async with durable.Runtime(vars={"NAME": "first"}) as rt:
            pw.serving(rt)
            assert env.NAME == "first" and "NAME" in env and env["NAME"] == "first"
        async with durable.Runtime(vars={"NAME": "second"}) as rt:
            pw.serving(rt)
            assert env.NAME == "second" and env.js_object is rt.env


WORKFLOW_MODULE = """
from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint
from workers.workflows import NonRetryableError


class Counter(DurableObject):
    pass


class Sync(WorkflowEntrypoint):
    async def run(self, event, step):
        raise NonRetryableError("give up")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        try:
            raise NonRetryableError("stop")
        except Exception as exc:
            return Response(f"{type(exc).__name__}: {exc}")
"""


class TestWorkflowsModule:
    async def test_non_retryable_error_imports_and_raises(
        self, durable_runtime: durable.Runtime, tmp_path: Path
    ) -> None:
        """``from workers.workflows import NonRetryableError`` (workers-py ``workflows.py``, the
        name Cloudflare's Workflows docs use) failed with ModuleNotFoundError, so a module that
        defines a Workflow next to its Worker could not load. It is an ``Exception``."""
        app = pw.asgi_app(_project(tmp_path, WORKFLOW_MODULE), durable_runtime)
        assert (await _get(app, "/")).text == "NonRetryableError: stop"
        from workers import workflows  # type: ignore[import-not-found]

        assert workflows is sdk.workflows and issubclass(workflows.NonRetryableError, Exception)

    def test_workflow_entrypoint_says_what_to_do(self) -> None:
        """Running a Workflow is not emulated: the error names what to use instead."""

        class Flow(sdk.WorkflowEntrypoint):
            async def run(self, event: Any, step: Any) -> None:
                pass

        with pytest.raises(NotImplementedError, match="pywrangler dev"):
            Flow(None, None)


class TestRequestProperties:
    @pytest.mark.parametrize(
        ("name", "js_name"),
        [
            ("credentials", "credentials"),
            ("destination", "destination"),
            ("is_history_navigation", "isHistoryNavigation"),
            ("mode", "mode"),
            ("referrer", "referrer"),
            ("referrer_policy", "referrerPolicy"),
        ],
    )
    def test_fetch_properties_workerd_lacks_raise_attribute_error(self, name: str, js_name: str) -> None:
        """workers-py ``request.py`` reads ``self.js_object.<field>`` for ``credentials``,
        ``destination``, ``is_history_navigation``, ``mode``, ``referrer``, ``referrer_policy``;
        workerd's Request has none of them (miniflare 4, 2026-04-07: ``"mode" in request`` is
        false, received or constructed), and Pyodide's JsProxy raises ``AttributeError`` for a
        name the object lacks (``JsProxy_GetAttr``: undefined and not ``in`` the object), so on
        Cloudflare each raises. durable answered ``None`` (review3), so code reading them worked
        here and failed there."""
        req = sdk.Request("https://x.com/")
        with pytest.raises(AttributeError, match=f"^{js_name}: workerd's Request has no"):
            getattr(req, name)
        assert getattr(req, name, None) is None and not hasattr(req, name)

    async def test_browser_init_options_are_accepted_and_ignored(self) -> None:
        """workerd constructs ``new Request(url, {mode: "cors"})``, ``{credentials: "include"}``,
        ``{referrer: ...}`` (miniflare 4, 2026-04-07) and ignores them; durable refused them as
        unsupported options. An unknown option is still refused."""
        req = sdk.Request(
            "https://x.com/",
            method=http.HTTPMethod.POST,
            body="b",
            mode="cors",
            credentials="include",
            referrer="https://y.com/",
            referrerPolicy="no-referrer",
        )
        assert await req.text() == "b" and not hasattr(req, "mode") and not hasattr(req, "credentials")
        with pytest.raises(TypeError, match="unsupported option 'colour'"):
            sdk.Request("https://x.com/", colour="red")


class TestHeaderReading:
    def test_repeated_header_is_one_joined_value(self) -> None:
        """workerd's Headers iterate a repeated header as one ``", "``-joined value, Set-Cookie as
        one entry per cookie (miniflare 4, 2026-04-07: ``[["accept-encoding", "deflate, gzip"],
        ["set-cookie", "a=b"], ["set-cookie", "c=d"]]``), and the SDK builds its HTTPMessage from
        that: its own test expects ``get_all("Accept-encoding") == ["deflate, gzip"]``. durable
        gave ``["deflate", "gzip"]``; and ``get_all`` of an absent name is HTTPMessage's
        ``failobj`` (``None``), where durable gave ``[]``."""
        req = sdk.Request(
            "https://x.com/",
            headers=[
                ("Accept-encoding", "deflate"),
                ("Accept-encoding", "gzip"),
                ("Set-Cookie", "a=b, c=d"),
                ("Set-Cookie", "e=f"),
            ],
        )
        assert req.headers.get_all("Accept-encoding") == ["deflate, gzip"]
        assert req.headers.get_all("set-cookie") == ["a=b, c=d", "e=f"]
        assert req.headers.get_all("x-missing") is None
        assert req.headers.get_all("x-missing", []) == []
        assert req.headers.get("accept-encoding") == "deflate, gzip" and req.headers["x-missing"] is None
        assert sdk.Response("x").headers.get_set_cookie() == []

    async def test_incoming_repeated_header(self, durable_runtime: durable.Runtime) -> None:
        """The SDK's ``test_can_use_event_decorator``: a Worker reading a header the client sent
        twice finds ``"some_value, some_other_value"`` in ``get_all``."""

        class Default(sdk.WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                return sdk.Response(json.dumps(request.headers.get_all("X-Custom-Header")))

        app = durable.asgi_app(Default, durable_runtime)
        resp = await _get(
            app, "/", headers=[("X-Custom-Header", "some_value"), ("X-Custom-Header", "some_other_value")]
        )
        assert resp.json() == ["some_value, some_other_value"]


class TestFetchSignature:
    def test_init_dict_is_refused_as_in_the_sdk(self) -> None:
        """workers-py's ``fetch(resource, **other_options)`` takes keywords only; its test
        ``test_gets_nice_error_on_jsism`` expects ``fetch(url, {"headers": ...})`` to raise
        ``TypeError: fetch() takes 1 positional argument but 2 were given``. durable accepted the
        dict, so code that fails on Cloudflare passed its tests. (Nothing is sent: the call
        itself raises.)"""
        with pytest.raises(TypeError) as caught:
            sdk.fetch("https://example.com/sub", {"headers": {"Custom-Req-Header": 123}})  # type: ignore[call-arg, unused-coroutine]
        assert str(caught.value) == "fetch() takes 1 positional argument but 2 were given"


class TestImportFromJavascript:
    def test_sockets_names_what_to_use(self) -> None:
        """``cloudflare:sockets`` is not emulated; the error says what to use on CPython instead."""
        with pytest.raises(NotImplementedError, match=r"asyncio\.open_connection"):
            sdk.import_from_javascript("cloudflare:sockets")
        with pytest.raises(NotImplementedError, match="hashlib"):
            sdk.import_from_javascript("node:crypto")


class TestSdkSubmodules:
    def test_names_import_from_the_sdk_submodules(self) -> None:
        """SDK users import names from its submodules (workers-py ``src/workers/*.py``; its
        ``workerd-test/durable-object-inheritance`` worker does ``from workers.entrypoints import
        DurableObjectContext`` and ``from workers.rpc import _EnvWrapper``). durable's ``workers``
        had no submodules but ``asgi``, ``wsgi`` and ``workflows``: ModuleNotFoundError."""
        from workers.blob import Blob, File  # type: ignore[import-not-found]
        from workers.entrypoints import DurableObject, DurableObjectContext, WorkerEntrypoint, handler  # type: ignore[import-not-found]
        from workers.formdata import FormData  # type: ignore[import-not-found]
        from workers.request import Request  # type: ignore[import-not-found]
        from workers.response import FetchResponse, Response  # type: ignore[import-not-found]
        from workers.rpc import _EnvWrapper, python_from_rpc, python_to_rpc  # type: ignore[import-not-found]
        from workers.types import Headers  # type: ignore[import-not-found]
        from workers.utils import import_from_javascript, patch_env  # type: ignore[import-not-found]

        assert (DurableObject, WorkerEntrypoint, handler, Request, Response) == (
            sdk.DurableObject,
            sdk.WorkerEntrypoint,
            sdk.handler,
            sdk.Request,
            sdk.Response,
        )
        assert (Blob, File, FormData, FetchResponse, Headers) == (
            sdk.Blob,
            sdk.File,
            sdk.FormData,
            sdk.FetchResponse,
            sdk.Headers,
        )
        assert (python_from_rpc, python_to_rpc, import_from_javascript, patch_env) == (
            sdk.python_from_rpc,
            sdk.python_to_rpc,
            sdk.import_from_javascript,
            sdk.patch_env,
        )
        assert callable(sdk.fetch)  # `workers.fetch` stays the function (its module is not aliased)

        class Bare:
            pass

        env = _EnvWrapper(Bare)  # the SDK wraps idempotently, and lazily: any object is taken
        assert _EnvWrapper(env) is env
        ctx = DurableObjectContext(Bare)
        assert DurableObjectContext(ctx) is ctx

    async def test_inherited_classes_are_wrapped_once(self, durable_runtime: durable.Runtime) -> None:
        """A Durable Object two levels below ``DurableObject`` whose constructors both wrap: its
        ``ctx`` and ``env`` are the SDK's wrappers, once (workers-py issue 125)."""
        from workers.entrypoints import DurableObjectContext
        from workers.rpc import _EnvWrapper

        class Base(sdk.DurableObject):
            def __init__(self, ctx: Any, env: Any) -> None:
                assert isinstance(ctx, DurableObjectContext) and isinstance(env, _EnvWrapper)
                super().__init__(ctx, env)

        class Leaf(Base):
            def __init__(self, ctx: Any, env: Any) -> None:
                super().__init__(ctx, env)
                self.flag = "leaf"

            async def check(self) -> str:
                assert isinstance(self.ctx, DurableObjectContext) and isinstance(self.env, _EnvWrapper)
                assert not isinstance(self.ctx.js_object, DurableObjectContext)
                assert not isinstance(self.env.js_object, _EnvWrapper)
                return self.flag

        durable_runtime.namespace(Leaf, name="LEAF")
        pw.serving(durable_runtime)
        assert await sdk.env.LEAF.getByName("a").check() == "leaf"


async def test_a_missing_binding_names_the_wrangler_config(durable_runtime: durable.Runtime) -> None:
    """`self.env.X` for a binding the project lacks kept durable.Env's message, which names only
    rt.namespace() and a served file's `bindings`/`vars` dicts, none of them how a Python Workers
    project binds: it names the wrangler config too, and is still an AttributeError (`getattr(env,
    "X", None)` reads None, as on Cloudflare, where env is a JsProxy)."""
    env = pw._bindings.EnvAdapter(durable_runtime.env)
    with pytest.raises(AttributeError) as info:
        env.ROOMS
    text = str(info.value)
    assert text.startswith("env has no binding 'ROOMS'")
    assert 'name = "ROOMS" and its class_name ([[durable_objects.bindings]] in wrangler.toml)' in text
    assert "ROOMS under [vars]" in text
    assert getattr(env, "ROOMS", None) is None
    with pytest.raises(KeyError):
        env["ROOMS"]
