"""Cloudflare Python Workers compatibility (durable.compat.python_workers): activation of the shims,
the project loader, and the SDK's calling shapes on top of durable's objects."""

from __future__ import annotations

import asyncio
import http
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable import _cli
from durable.compat import python_workers as pw
from durable.compat.python_workers import _convert, js
from durable.compat.python_workers import workers as sdk
from durable.compat.python_workers.pyodide import ffi
from durable.testing import MockClock

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "python_workers"
REPO = HERE.parent


pytestmark = pytest.mark.usefixtures("python_workers_shims")  # installed for every test, then uninstalled


def run_python(code: str, *, fake_sdk: bool = True) -> str:
    """Run ``code`` in a fresh interpreter (the fake Cloudflare SDK on sys.path); return its stdout."""
    paths = [str(REPO), *([str(FIXTURES / "fake_sdk")] if fake_sdk else []), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Activation


class TestActivation:
    def test_activated_imports_resolve_to_durable_over_the_sdk(self) -> None:
        """With Cloudflare's SDK on sys.path, installed shims win: workers, js, pyodide.ffi are durable's."""
        out = run_python("""
            import sys
            import durable
            assert "workers" not in sys.modules
            import workers
            assert workers.FAKE_SDK                      # nothing shadowed before install()
            from durable.compat import python_workers
            python_workers.install()
            import workers, js, pyodide, pyodide.ffi
            from workers import DurableObject, Response, WorkerEntrypoint, DurableObjectAbort
            from js import WebSocketPair
            from pyodide.ffi import to_js, create_proxy
            import durable.compat.python_workers.workers as shim
            assert workers is shim and not hasattr(workers, "FAKE_SDK")
            assert not hasattr(js, "FAKE_SDK") and not hasattr(pyodide, "FAKE_SDK")
            assert issubclass(DurableObject, durable.DurableObject)
            assert sys.modules["pyodide.ffi"].__name__ == "durable.compat.python_workers.pyodide.ffi"
            python_workers.uninstall()
            import workers
            assert workers.FAKE_SDK                      # the SDK is back
            print("ok")
        """)
        assert out.strip() == "ok"

    def test_deactivated_shadows_nothing(self) -> None:
        """Without install(), importing durable (and its compat package) leaves workers/js unresolvable."""
        out = run_python(
            """
            import importlib.util, sys
            import durable, durable.compat.python_workers, durable.pytest_plugin
            print(all(importlib.util.find_spec(n) is None for n in ("workers", "js", "pyodide")))
        """,
            fake_sdk=False,
        )
        assert out.strip() == "True"

    def test_install_is_idempotent_and_uninstall_restores(self) -> None:
        """install() twice keeps one finder first on sys.meta_path; uninstall() removes the aliases."""
        pw.install()
        finders = [f for f in sys.meta_path if "python_workers" in repr(f)]
        assert len(finders) == 1 and sys.meta_path[0] is finders[0]
        import workers  # type: ignore[import-not-found]

        assert workers is sdk
        pw.uninstall()
        assert "workers" not in sys.modules and not pw.installed()
        pw.install()


# ---------------------------------------------------------------------------------------------
# The project loader


def write_project(tmp_path: Path, config: str, entry: str = "", name: str = "wrangler.jsonc") -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / name).write_text(textwrap.dedent(config))
    (tmp_path / "src" / "entry.py").write_text(
        textwrap.dedent(
            entry
            or """
        from workers import DurableObject, Response, WorkerEntrypoint

        class Thing(DurableObject):
            pass

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
    """
        )
    )
    return tmp_path


GOOD = """{
    "main": "src/entry.py",
    "durable_objects": {"bindings": [{"name": "THINGS", "class_name": "Thing"}]},
    "migrations": [{"tag": "v1", "new_classes": ["Thing"]}],
    "vars": {"A": 1},
}"""


class TestLoader:
    def test_reads_every_field(self, tmp_path: Path) -> None:
        """main, bindings, migrations (new_classes -> kv), vars and compatibility_date are read."""
        project = pw.load_project(
            write_project(tmp_path, GOOD.replace("{\n", '{"compatibility_date": "2025-01-02",\n', 1))
        )
        assert project.config == (tmp_path / "wrangler.jsonc").resolve()
        assert [(b.name, b.class_name, b.storage) for b in project.bindings] == [("THINGS", "Thing", "kv")]
        assert project.vars == {"A": 1} and project.compatibility_date == "2025-01-02"
        assert project.worker.__name__ == "Default"

    def test_jsonc_comments_and_trailing_commas(self) -> None:
        """Comments and trailing commas are accepted; // inside strings is kept."""
        text = '{\n  // a comment\n  "url": "http://x//y", /* block */ "list": [1, 2,],\n}'
        assert pw.parse_jsonc(text) == {"url": "http://x//y", "list": [1, 2]}

    def test_jsonc_commas_inside_strings_are_kept(self) -> None:
        """Only a trailing comma outside strings is dropped: a var whose value is "a,}" keeps it,
        as wrangler's JSONC parser (jsonc-parser, allowTrailingComma) reads it."""
        text = '{"vars": {"A": "a,}", "B": "[x, ]", "C": [1, /* c */ 2, // d\n],},}'
        assert pw.parse_jsonc(text) == {"vars": {"A": "a,}", "B": "[x, ]", "C": [1, 2]}}

    def test_config_with_a_byte_order_mark(self, tmp_path: Path) -> None:
        """A wrangler.jsonc saved with a UTF-8 BOM (Windows editors) loads: wrangler's JSONC parser
        (jsonc-parser) reads U+FEFF as whitespace; it was a JSONDecodeError."""
        write_project(tmp_path, '\ufeff{"main": "src/entry.py", "vars": {"A": "1"}}')
        assert pw.load_project(tmp_path).vars == {"A": "1"}

    def test_config_file_path_and_toml(self) -> None:
        """A wrangler.toml given by path works (an unquoted TOML date is refused, as wrangler does:
        tests/test_wrangler_config.py)."""
        project = pw.load_project(FIXTURES / "legacy" / "wrangler.toml")
        assert project.compatibility_date == "2024-04-01"
        assert project.bindings[0].storage == "kv" and project.vars == {"GREETING": "Hello"}

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            ("{", "wrangler.jsonc: invalid JSONC"),
            ("{}", "wrangler.jsonc: `main` must name the entry module"),
            ('{"main": "src/other.py"}', "`main` names 'src/other.py', which does not exist"),
            ('{"main": "wrangler.jsonc"}', "`main` must be a Python file"),
            ('{"main": "src/entry.py", "vars": []}', "`vars` must be an object"),
            (
                '{"main": "src/entry.py", "durable_objects": {"bindings": {}}}',
                "`durable_objects.bindings` must be a list",
            ),
            (
                '{"main": "src/entry.py", "durable_objects": {"bindings": [{"name": "X"}]}}',
                "`durable_objects.bindings[0].class_name` must be a class name",
            ),
            (
                '{"main": "src/entry.py", "durable_objects": {"bindings": [{"name": "", "class_name": "Thing"}]}}',
                "`durable_objects.bindings[0].name` must be a non-empty string",
            ),
            (
                '{"main": "src/entry.py", "durable_objects": {"bindings": [{"name": "X", "class_name": "Nope"}]}}',
                "`durable_objects.bindings[0].class_name` names 'Nope', which entry.py does not define",
            ),
            (
                '{"main": "src/entry.py", "durable_objects": {"bindings": [{"name": "X", "class_name": "Default"}]}}',
                "which is not a DurableObject subclass",
            ),
            (
                '{"main": "src/entry.py", "durable_objects": {"bindings": [{"name": "X", "class_name": "Thing", "script_name": "o"}]}}',
                "`durable_objects.bindings[0].script_name` names another Worker",
            ),
            (
                '{"main": "src/entry.py", "migrations": [{"tag": "v1", "new_sqlite_classes": "Thing"}]}',
                "`migrations[0].new_sqlite_classes` must be a list",
            ),
            ('{"main": "src/entry.py", "compatibility_date": "soon"}', "`compatibility_date` must be a date"),
        ],
    )
    def test_errors_name_the_file_and_the_field(self, tmp_path: Path, config: str, message: str) -> None:
        """Every invalid field raises ProjectError naming the config file and the field."""
        write_project(tmp_path, config)
        with pytest.raises(pw.ProjectError) as info:
            pw.load_project(tmp_path)
        assert message in str(info.value) and "wrangler.jsonc" in str(info.value)

    def test_cli_reports_a_bad_project_as_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`durable serve PROJECT` with an invalid config exits 2 naming the file and the field."""
        write_project(tmp_path, '{"main": 3}')
        assert _cli.main(["serve", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "wrangler.jsonc" in err and "`main` must name the entry module" in err

    def test_missing_config_and_missing_default(self, tmp_path: Path) -> None:
        """A folder without config, and an entry module without Default or on_fetch, are refused clearly."""
        with pytest.raises(pw.ProjectError, match="no wrangler.json, wrangler.jsonc or wrangler.toml"):
            pw.load_project(tmp_path)
        write_project(tmp_path, '{"main": "src/entry.py"}', "X = 1\n")
        with pytest.raises(pw.ProjectError, match="defines neither a `Default` class"):
            pw.load_project(tmp_path)

    def test_entry_module_that_raises(self, tmp_path: Path) -> None:
        """An entry module that raises on import is reported with its traceback."""
        write_project(tmp_path, '{"main": "src/entry.py"}', "raise RuntimeError('boom')\n")
        with pytest.raises(pw.ProjectError, match="raised while loading:(.|\n)*RuntimeError: boom"):
            pw.load_project(tmp_path)

    def test_cli_loads_a_project(self, tmp_path: Path) -> None:
        """`durable serve PROJECT` loads a project folder into the app it serves, errors as usage errors."""
        app = _cli.load_app(write_project(tmp_path, GOOD))
        assert app.worker.__name__ == "Default" and app.vars == {"A": 1}
        assert [(b.name, b.storage) for b in app.bindings] == [("THINGS", "kv")]
        (tmp_path / "wrangler.jsonc").write_text("{}")
        with pytest.raises(_cli.AppLoadError, match="`main`"):
            _cli.load_app(tmp_path)


# ---------------------------------------------------------------------------------------------
# Calling shapes


SWALLOWED: list[bool] = []


class Shapes(sdk.DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx  # assigned without super(), as Cloudflare's changelog example does
        self.env = env

    async def options(self) -> list[Any]:
        storage = self.ctx.storage
        storage.put("k", 1, {"allowUnconfirmed": True})  # not awaited: the write still happens
        await storage.put({"a": {"x": 1}, "b": 2}, {"noCache": True})
        got = await storage.get("a", {"allowConcurrency": True})
        listed = await storage.list({"start": "a", "limit": 1})
        return [await storage.get("k"), got.x, list(listed), type(got).__name__]

    async def bad_options(self) -> str:
        try:
            await self.ctx.storage.list("prefix")
        except TypeError as exc:
            return str(exc)
        return "accepted"

    async def arm(self, when: Any) -> None:
        await self.ctx.storage.setAlarm(when)

    async def swallow_abort(self) -> str:
        await self.ctx.storage.put("unflushed", 1)
        try:
            self.ctx.abort("stop here")
        except Exception:  # the point: DurableObjectAbort is not an Exception
            SWALLOWED.append(True)
            return "swallowed"
        return "not reached"

    async def abort_with_exception(self) -> None:
        self.ctx.abort(IndexError("x"))

    async def abort_with_options(self, options: Any) -> str:
        try:
            self.ctx.abort("stop here", options)
        except TypeError as exc:
            return f"TypeError: {exc}"
        return "not reached"

    async def record(self) -> dict[str, Any]:
        return {"nested": {"value": [1, {"deep": True}]}}

    async def in_tasks(self) -> list[Any]:
        await asyncio.create_task(self.ctx.storage.put("t", {"a": 1}))
        got = await asyncio.create_task(self.ctx.storage.get("t"))
        other = self.env.SHAPES.getByName("other")
        echoed = await asyncio.create_task(other.echo({"b": 2}))
        both = await asyncio.gather(self.ctx.storage.get("t"), other.echo(3))
        return [type(got).__name__, got.a, type(echoed).__name__, echoed.b, both[1]]

    async def echo(self, value: Any) -> Any:
        return value

    async def fetch(self, request: Any) -> Any:
        if request.url.endswith("/twice"):
            await request.text()
            try:
                await request.text()
            except OSError as exc:
                return sdk.Response(str(exc), 409)
        body = await request.json() if request.method == http.HTTPMethod.POST else None
        return sdk.Response.from_json(
            {
                "method": request.method,
                "is_enum": isinstance(request.method, http.HTTPMethod),
                "body": body,
                "cf": request.cf,
                "ctx": type(self.ctx).__name__,
            }
        )


ALARMS: list[str] = []


class Relaxed(sdk.DurableObject):
    async def arm(self, when: int) -> None:
        await self.ctx.storage.setAlarm(when)

    def arm_soon(self) -> None:
        self.ctx.storage.setAlarm(js.Date.now() + 100)  # not awaited, as workerd's own test does

    async def alarm(self) -> None:  # no alarm_info parameter, as Python Workers allows
        ALARMS.append("fired")


class Converts(sdk.DurableObject):
    """Values as the SDK converts them: sync KV reads, JSON vars."""

    async def kv_values(self) -> list[Any]:
        kv = self.ctx.storage.kv
        kv.put("s", {"a": 1})
        got = kv.get("s")
        listed = list(kv.list({"prefix": "s"}))
        return [type(got).__name__, got.a, type(listed[0][1]).__name__]

    async def strict_kv_put(self) -> str:
        try:
            self.ctx.storage.kv.put("t", (1, 2))
        except TypeError as exc:
            return str(exc)
        return "stored"

    async def config(self) -> list[Any]:
        config = self.env.CONFIG
        return [type(config).__name__, config.limit, config.to_py() == {"limit": 3}]


class HandlersMixin:
    """Handlers on a plain mixin, as workerd finds them along the class hierarchy."""

    async def alarm(self) -> None:  # no info parameter
        ALARMS.append("mixin")

    async def fetch(self, request: Any) -> Any:
        return sdk.Response(f"{type(request).__module__}.{type(request).__name__} {request.method!r}")


class Mixed(HandlersMixin, sdk.DurableObject):
    async def arm(self, when: int) -> None:
        await self.ctx.storage.setAlarm(when)


class LegacyAlarm(sdk.DurableObject):
    async def arm(self, when: int) -> None:
        await self.ctx.storage.setAlarm(when)

    async def on_alarm(self) -> None:  # the legacy handler name
        ALARMS.append("legacy")


class TestCallingShapes:
    async def test_positional_option_dicts(self, durable_runtime: durable.Runtime) -> None:
        """Options as positional dicts work on get/put/list; an un-awaited put still happens; dicts read back as JsDict."""
        stub = durable_runtime.namespace(Shapes).get_by_name("a")
        assert await stub.options() == [1, 1, ["a"], "JsDict"]

    async def test_calls_go_into_tasks(self, durable_runtime: durable.Runtime) -> None:
        """As the SDK's coroutines do, storage calls and stub calls may be handed to
        ``asyncio.create_task()`` and ``gather()``, results converted (``JsDict``)."""
        stub = durable_runtime.namespace(Shapes, name="SHAPES").get_by_name("a")
        assert await stub.in_tasks() == ["JsDict", 1, "JsDict", 2, 3]

    async def test_options_must_be_a_dict(self, durable_runtime: durable.Runtime) -> None:
        """An options argument that is not a dict is refused with a TypeError saying so."""
        stub = durable_runtime.namespace(Shapes).get_by_name("a")
        assert "list() options must be a dict" in await stub.bad_options()

    async def test_relaxed_alarm_fires(self, durable_runtime: durable.Runtime, mock_clock: MockClock) -> None:
        """`async def alarm(self)` without the info parameter is called when the alarm fires."""
        ALARMS.clear()
        stub = durable_runtime.namespace(Relaxed).get_by_name("a")
        await stub.arm(int(mock_clock.time() * 1000) + 1000)
        await mock_clock.advance(2)
        assert ALARMS == ["fired"]

    async def test_unawaited_set_alarm_on_runtime_clock(
        self, durable_runtime: durable.Runtime, mock_clock: MockClock
    ) -> None:
        """An un-awaited setAlarm(Date.now() + 100) from a plain method is set, on the runtime's clock, and fires."""
        ALARMS.clear()
        stub = durable_runtime.namespace(Relaxed).get_by_name("b")
        await stub.arm_soon()
        await mock_clock.advance(1)
        assert ALARMS == ["fired"]

    async def test_sync_kv_and_json_vars_convert_as_the_sdk(self) -> None:
        """storage.kv reads give JsDict, strict mode checks its writes, and a JSON object var
        reads as a JsDict (a JsProxy on Cloudflare: attribute access, to_py())."""
        async with durable.Runtime(vars={"CONFIG": {"limit": 3}}) as rt:
            stub = rt.namespace(Converts).get_by_name("c")
            assert await stub.kv_values() == ["JsDict", 1, "JsDict"]
            assert await stub.config() == ["JsDict", 3, True]
            pw.set_strict(True)
            try:
                assert await stub.strict_kv_put() == "<class 'tuple'> cannot be sent over RPC."
            finally:
                pw.set_strict(False)

    def test_strict_mode_refuses_awaitables(self) -> None:
        """As workers-py's rpc.py: an awaitable (a missing await) cannot be sent."""

        async def later() -> int:
            return 1

        pending = later()
        pw.set_strict(True)
        try:
            with pytest.raises(TypeError, match=r"^Awaitable <class 'coroutine'> cannot be sent over RPC\.$"):
                _convert.python_to_rpc([pending])
        finally:
            pw.set_strict(False)
            pending.close()

    async def test_handlers_on_a_mixin(self, durable_runtime: durable.Runtime, mock_clock: MockClock) -> None:
        """alarm() and fetch() defined on a mixin are called as Python Workers calls them: the
        alarm without its info, fetch with the SDK's Request (they were called as durable's)."""
        ALARMS.clear()
        stub = durable_runtime.namespace(Mixed).get_by_name("m")
        response = await stub.fetch("http://do/")
        assert await response.text() == "durable.compat.python_workers._http.Request <HTTPMethod.GET>"
        await stub.arm(int(mock_clock.time() * 1000) + 1000)
        await mock_clock.advance(2)
        assert ALARMS == ["mixin"]

    async def test_legacy_on_alarm_fires(self, durable_runtime: durable.Runtime, mock_clock: MockClock) -> None:
        """A class that names its handler on_alarm (the legacy prefix) gets it called as its alarm."""
        ALARMS.clear()
        stub = durable_runtime.namespace(LegacyAlarm).get_by_name("a")
        await stub.arm(int(mock_clock.time() * 1000) + 1000)
        await mock_clock.advance(2)
        assert ALARMS == ["legacy"]

    async def test_set_alarm_without_alarm_handler(
        self, durable_runtime: durable.Runtime, mock_clock: MockClock
    ) -> None:
        """setAlarm (with a datetime) is accepted on a class without alarm(), and firing it does nothing."""
        import datetime as dt

        stub = durable_runtime.namespace(Shapes).get_by_name("a")
        await stub.arm(dt.datetime.fromtimestamp(mock_clock.time() + 5, dt.UTC))
        await mock_clock.advance(10)

    async def test_abort_raises_base_exception(self, durable_runtime: durable.Runtime) -> None:
        """ctx.abort() cannot be swallowed by `except Exception`; the caller gets an ordinary reset error."""
        ns = durable_runtime.namespace(Shapes)
        with pytest.raises(durable.ObjectResetError, match="stop here") as info:
            await ns.get_by_name("a").swallow_abort()
        assert isinstance(info.value, Exception) and info.value.durable_object_reset
        assert SWALLOWED == []
        assert not issubclass(pw.DurableObjectAbort, Exception)

    async def test_abort_with_an_exception_shows_its_str(self, durable_runtime: durable.Runtime) -> None:
        """A Python Worker's ctx.abort(IndexError("x")) hands workerd a PyProxy, whose String() is
        Python's str(): the caller's message is "x" (durable.State.abort shows "IndexError: x", as
        workerd shows a JavaScript Error: measured, abort(new TypeError("x")) gives "TypeError: x")."""
        ns = durable_runtime.namespace(Shapes)
        with pytest.raises(durable.ObjectAbortedError) as info:
            await ns.get_by_name("a").abort_with_exception()
        assert str(info.value) == "x" and info.value.durable_object_reset

    async def test_abort_with_bad_options_raises_type_error(self, durable_runtime: durable.Runtime) -> None:
        """ctx.abort(reason, 5) raises durable.State.abort's TypeError, which the object can catch:
        nothing was reset, so it is no DurableObjectAbort (which escaped `except TypeError` and reached
        the caller as a bare BaseException). {"retryAlarm": False} aborts as usual."""
        ns = durable_runtime.namespace(Shapes)
        got = await ns.get_by_name("a").abort_with_options(5)
        assert got == "TypeError: abort() options must be a dict such as {'retryAlarm': False}, not int"
        with pytest.raises(durable.ObjectResetError, match="stop here"):
            await ns.get_by_name("a").abort_with_options({"retryAlarm": False})

    async def test_rpc_results_have_attribute_access(self, durable_runtime: durable.Runtime) -> None:
        """Results through an env binding are dicts with attribute access, at any depth."""
        durable_runtime.namespace(Shapes, name="SHAPES")
        stub = pw._bindings.EnvAdapter(durable_runtime.env).SHAPES.getByName("a")
        record: Any = await stub.record()
        assert isinstance(record, pw.JsDict)
        assert record["nested"]["value"][1]["deep"] is record.nested.value[1].deep

    async def test_stub_fetch_returns_fetch_response(self, durable_runtime: durable.Runtime) -> None:
        """stub.fetch gives a FetchResponse; the object sees an HTTPMethod, cf None and the SDK's ctx."""
        durable_runtime.namespace(Shapes, name="SHAPES")
        stub = pw._bindings.EnvAdapter(durable_runtime.env).SHAPES.getByName("a")
        resp = await stub.fetch("http://do/x", {"method": "POST", "body": '{"n": 1}'})
        assert isinstance(resp, sdk.FetchResponse) and resp.status == 200
        assert await resp.json() == {
            "method": "POST",
            "is_enum": True,
            "body": {"n": 1},
            "cf": None,
            "ctx": "ContextAdapter",
        }
        with pytest.raises(OSError, match="Body already used"):
            await resp.text()
        conflict = await stub.fetch(sdk.Request("http://do/twice", method="POST", body="x"))
        assert conflict.status == 409 and await conflict.text() == "Body already used"

    async def test_stub_fetch_passes_cf_through(self, durable_runtime: durable.Runtime) -> None:
        """workerd (miniflare 4, 2026-04-07): ``stub.fetch(url, {cf: {a: 1}})``, and a Request
        built with ``cf``, arrive with the object's ``request.cf`` equal to it."""
        durable_runtime.namespace(Shapes, name="SHAPES")
        stub = pw._bindings.EnvAdapter(durable_runtime.env).SHAPES.getByName("a")
        resp = await stub.fetch("http://do/x", {"cf": {"a": 1}})
        assert (await resp.json())["cf"] == {"a": 1}
        resp = await stub.fetch(sdk.Request("http://do/x", cf={"b": {"c": 2}}))
        assert (await resp.json())["cf"] == {"b": {"c": 2}}

    async def test_strict_mode_refuses_tuples(self, durable_runtime: durable.Runtime) -> None:
        """In strict mode tuples and bytearrays are refused with the SDK's TypeError; not otherwise."""
        durable_runtime.namespace(Shapes, name="SHAPES")
        stub = pw._bindings.EnvAdapter(durable_runtime.env).SHAPES.getByName("a")
        assert await stub.echo((1, 2)) == (1, 2)
        pw.install(strict=True)
        with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
            await stub.echo((1, 2))
        with pytest.raises(TypeError, match=r"^<class 'bytearray'> cannot be sent over RPC\.$"):
            await stub.echo({"k": [bytearray(b"x")]})
        assert await stub.echo([1, {"a": None}]) == [1, {"a": None}]
        pw.set_strict(False)


class TestRequestResponse:
    async def test_headers_read_as_an_http_message(self) -> None:
        """As the SDK's HTTPMessage: a missing header is None (so `headers["Upgrade"] != ...`
        works), names are case-insensitive, get_content_type() is there; durable's own Headers
        still raise KeyError."""
        request = sdk.Request("http://x/", headers={"Content-Type": "Application/JSON; charset=utf-8", "X-A": "1"})
        assert request.headers["upgrade"] is None and request.headers["x-a"] == "1"
        assert request.headers.get_content_type() == "application/json"
        assert sdk.Request("http://x/").headers.get_content_type() == "text/plain"
        response = sdk.Response("body", headers={"X-B": "2"})
        headers: Any = response.headers  # (typed as durable.Headers: an HTTPMessage-like reading of it)
        assert headers["missing"] is None and headers["X-B"] == "2"
        cloned: Any = response.clone().headers
        assert cloned["missing"] is None
        with pytest.raises(KeyError):
            durable.Headers()["missing"]

    async def test_js_response_json_and_auto_response_pair(self) -> None:
        """``js.Response.json`` is JavaScript's (compact JSON); ``js.WebSocketRequestResponsePair``
        makes durable's auto-response pair."""
        built = js.Response.json({"a": [1, 2]}, {"status": 201})
        assert built.status == 201 and await built.text() == '{"a":[1,2]}'
        pair = js.WebSocketRequestResponsePair.new("ping", "pong")
        assert isinstance(pair, durable.WebSocketRequestResponsePair)
        assert (pair.request, pair.response) == ("ping", "pong")

    async def test_response_shapes(self) -> None:
        """Response takes status positionally, None means 200; from_json, replace_body and clone work."""
        assert sdk.Response("x").status == 200 and sdk.Response("x", None).status == 200
        resp = sdk.Response("gone", 404, "Gone!", {"x-a": "1"})
        assert (resp.status, resp.status_text, resp.headers["x-a"]) == (404, "Gone!", "1")
        built = sdk.Response.json({"a": 1}, 201)
        assert built.status == 201 and built.headers["content-type"] == "application/json"
        copy = built.clone()
        # The SDK writes Python data with json.dumps(data), spaces and ASCII escapes included.
        assert await copy.json() == {"a": 1} and await built.text() == '{"a": 1}'
        assert await sdk.Response.json({"é": [1, 2]}).text() == '{"\\u00e9": [1, 2]}'
        replaced = sdk.Response.from_json([1]).replace_body("other")
        assert await replaced.text() == "other" and replaced.headers["content-type"] == "application/json"
        with pytest.raises(OSError, match="Body already used"):
            built.clone()
        assert sdk.Response.redirect("http://x/", 301).headers["location"] == "http://x/"

    def test_redirect_keeps_workerds_immutable_headers(self) -> None:
        """The SDK's ``Response.redirect`` returns ``js.Response.redirect(url, code)`` itself
        (workers-py ``_workers.py``), whose headers workerd (miniflare 4, 2026-04-07) refuses to
        change: ``TypeError: Can't modify immutable headers.``. durable copied them into a new
        response, with mutable headers."""
        for resp in (sdk.Response.redirect("http://x/", 301), js.Response.redirect("http://x/")):
            assert resp.headers["location"] == "http://x/" and resp.status in (301, 302)
            with pytest.raises(TypeError, match=r"^Can't modify immutable headers\.$"):
                resp.headers.set("x-a", "1")
            assert "x-a" not in resp.headers

    async def test_response_json_is_pyodides_python_parser(self) -> None:
        """An SDK response's ``json()`` is pyodide's ``FetchResponse.json``: ``json.loads(await
        self.string(), **kwargs)`` (workers-py inherits it), so NaN is read, as ``Request.json()``
        reads it, and keyword arguments reach ``json.loads``; a second read is "Body already used"."""
        resp = sdk.Response('{"a": NaN, "b": 1.5}')
        got = await resp.json(parse_float=str)
        assert got["b"] == "1.5" and got["a"] != got["a"]  # NaN
        with pytest.raises(OSError, match="Body already used"):
            await resp.json()
        assert sdk.Response.json({"x": 1}).status == 200  # on the class: the builder, as before

    async def test_request_shapes(self) -> None:
        """Request exposes method as HTTPMethod, clone(), and OSError on a second read."""
        req = sdk.Request("http://x/a", {"method": "put", "body": "hi", "headers": {"A": "b"}})
        assert req.method == "PUT" and req.method is http.HTTPMethod.PUT and req.headers["a"] == "b"
        twin = req.clone()
        assert await twin.text() == "hi" and await req.bytes() == b"hi"
        with pytest.raises(OSError, match="Body already used"):
            await req.json()
        with pytest.raises(TypeError, match="unsupported option 'colour'"):
            sdk.Request("http://x/", colour={})

    async def test_clone_of_a_streamed_body(self) -> None:
        """workerd (miniflare 4, 2026-04-07): cloning a Response or Request with a ReadableStream
        body, and cloning the clone, gives copies that each read the whole body ("abcd");
        durable raised NotImplementedError for the SDK's clone() of a stream."""

        async def stream() -> Any:
            yield b"ab"
            yield b"cd"

        resp = pw._http.as_fetch_response(durable.Response(stream()))  # as a stub.fetch gives it
        copy = resp.clone()
        second = copy.clone()
        assert [await copy.text(), await resp.text(), await second.text()] == ["abcd"] * 3
        req = sdk.Request("http://x/", method="POST", body=stream(), cf={"a": 1})
        twin = req.clone()
        assert [await twin.text(), await req.text()] == ["abcd", "abcd"]
        assert twin.cf.a == 1

    def test_js_and_ffi(self) -> None:
        """js.Object/JSON/Date and pyodide.ffi's conversions behave as identities where Python needs nothing."""
        assert ffi.to_js([1]) == [1] and ffi.create_proxy(len)([1]) == 1
        assert js.Object.fromEntries([("a", 1)]) == {"a": 1}
        assert js.JSON.parse(js.JSON.stringify({"a": [1]})) == {"a": [1]}
        assert js.Date.now() > 0 and not isinstance([], ffi.JsProxy)
        with pytest.raises(NotImplementedError, match=r"js\.HTMLRewriter\.new is not supported by durable"):
            js.HTMLRewriter.new()
        with pytest.raises(AttributeError, match="js.no_such_global is not emulated"):
            js.no_such_global

    @pytest.mark.parametrize("text", ["NaN", "Infinity", "[1, -Infinity]", '{"a": NaN}'])
    def test_js_json_parse_refuses_what_javascript_json_does_not_have(self, text: str) -> None:
        """``js.JSON.parse`` is JavaScript's: workerd (miniflare 4, 2026-04-07) raises ``SyntaxError:
        "NaN" is not valid JSON`` (likewise ``Infinity``, ``-Infinity``, inside arrays and objects)
        where Python's ``json.loads`` gave ``nan`` and ``inf``. The error is the ``JSONDecodeError``
        every other invalid text gets here."""
        with pytest.raises(json.JSONDecodeError):
            js.JSON.parse(text)
        with pytest.raises(json.JSONDecodeError):
            js.JSON.parse("{bad")

    def test_run_sync(self) -> None:
        """pyodide.ffi.run_sync runs a coroutine to completion from synchronous code."""

        async def seven() -> int:
            return 7

        assert ffi.run_sync(seven()) == 7


# ---------------------------------------------------------------------------------------------
# Serving projects in process


class TestServing:
    async def test_legacy_on_fetch_project(self, durable_runtime: durable.Runtime) -> None:
        """A module-level @handler on_fetch(request, env) serves; a DO's on_fetch is its fetch; vars reach env."""
        app = pw.asgi_app(FIXTURES / "legacy", durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            assert (await client.get("/")).text == "Hello, World!"
            assert (await client.get("/count")).text == "1"
            assert (await client.get("/count")).text == "2"

    async def test_changelog_style_project(self, durable_runtime: durable.Runtime, tmp_path: Path) -> None:
        """The style of Cloudflare's 2025 announcement: ctx/env assigned without super(), a SQL row read
        by attribute in a sync on_fetch, a @handler on_fetch(request, env, ctx) returning the stub's response."""
        write_project(
            tmp_path,
            """{
            "main": "src/entry.py",
            "durable_objects": {"bindings": [{"name": "GREETER", "class_name": "Greeter"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Greeter"]}],
        }""",
            """
            from workers import DurableObject, Response, handler

            class Greeter(DurableObject):
                def __init__(self, ctx, env):
                    self.ctx = ctx
                    self.env = env

                def on_fetch(self, request):
                    row = self.ctx.storage.sql.exec("SELECT 'Hello, World!' AS greeting").one()
                    return Response(row.greeting)

            @handler
            async def on_fetch(request, env, ctx):
                stub = env.GREETER.get(env.GREETER.idFromName("foo"))
                return await stub.fetch(request.url)
        """,
        )
        app = pw.asgi_app(tmp_path, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            resp = await client.get("/")
            assert (resp.status_code, resp.text) == (200, "Hello, World!")

    async def test_two_bindings_of_one_class_share_its_namespace(
        self, durable_runtime: durable.Runtime, tmp_path: Path
    ) -> None:
        """Two bindings naming one class_name are one namespace: the same ids, the same objects.

        workerd (miniflare 4, 2026-04-07) with durableObjects {A: "Counter", B: "Counter"}:
        env.A.idFromName("x").equals(env.B.idFromName("x")) is true, and an increment through A
        is seen through B (1, then 2, then 3 with env.B.get(idFromA))."""
        write_project(
            tmp_path,
            """{
            "main": "src/entry.py",
            "durable_objects": {"bindings": [{"name": "A", "class_name": "Counter"},
                                              {"name": "B", "class_name": "Counter"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}],
        }""",
            """
            from workers import DurableObject, Response, WorkerEntrypoint

            class Counter(DurableObject):
                async def inc(self):
                    v = ((await self.ctx.storage.get("v")) or 0) + 1
                    await self.ctx.storage.put("v", v)
                    return v

            class Default(WorkerEntrypoint):
                async def fetch(self, request):
                    a, b = self.env.A.idFromName("x"), self.env.B.idFromName("x")
                    r1 = await self.env.A.get(a).inc()
                    r2 = await self.env.B.get(b).inc()
                    r3 = await self.env.B.get(a).inc()
                    return Response(f"{a.equals(b)} {r1} {r2} {r3}")
        """,
        )
        app = pw.asgi_app(tmp_path, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            assert (await client.get("/")).text == "True 1 2 3"
        assert durable_runtime.env.A is durable_runtime.env.B

    async def test_workers_env(self, durable_runtime: durable.Runtime) -> None:
        """workers.env is the env of the project bound last, with the SDK's wrappers."""
        pw.load_project(FIXTURES / "bindings").bind(durable_runtime)
        stub = sdk.env.TEST_DO.getByName("x")
        assert await stub.wrap({"k": 1}) == {"received": {"k": 1}, "added": True}

    def test_workers_env_unbound(self) -> None:
        """Reading a binding through workers.env before any project is bound says how to bind one
        (taking the name itself works, as ``from workers import env`` does on Cloudflare)."""
        from durable.compat.python_workers import _entrypoints

        saved = _entrypoints._current_env
        _entrypoints.set_current_env(None)
        try:
            env = sdk.env
            with pytest.raises(RuntimeError, match="workers.env is not bound yet"):
                env.ANYTHING
        finally:
            _entrypoints.set_current_env(saved)

    def test_json_dumps_http_method(self) -> None:
        """An HTTPMethod serializes as its text in JSON (it is a str enum)."""
        assert json.dumps(http.HTTPMethod.GET) == '"GET"'
