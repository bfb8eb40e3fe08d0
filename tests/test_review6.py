"""Review of the wrangler-config merge: configs wrangler accepts load, and what they give the Worker.

Checked against workers-sdk at f830836 (2026-08-22: ``packages/workers-utils/src/config/validation.ts``,
``validation-helpers.ts``, ``packages/wrangler/src/dev/miniflare/index.ts``) and measured with
miniflare 4 (the ``bindings`` option ``wrangler dev`` passes the vars to, compatibility date
2026-04-07).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")

ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint

class Thing(DurableObject):
    async def fetch(self, request):
        return Response("thing")

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("hi")
"""

FLAGS: dict[str, Any] = {"compatibility_date": "2026-04-07", "compatibility_flags": ["python_workers"]}


def project(tmp_path: Path, config: dict[str, Any] | str, name: str = "wrangler.jsonc") -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(ENTRY))
    text = config if isinstance(config, str) else json.dumps({"main": "src/entry.py", **FLAGS, **config})
    (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def toml(tmp_path: Path, body: str) -> Path:
    head = 'main = "src/entry.py"\ncompatibility_date = "2026-04-07"\ncompatibility_flags = ["python_workers"]\n'
    return project(tmp_path, head + textwrap.dedent(body), name="wrangler.toml")


class TestKnownFields:
    def test_access_and_cache_are_known(self, tmp_path: Path) -> None:
        """wrangler 4 knows `access` and `cache` (inheritable, validation.ts normalizeAndValidateEnvironment):
        no 'Unexpected fields' warning for them, at the top level or in an environment; durable warned."""
        project(
            tmp_path,
            {
                "access": {"enabled": True},
                "cache": {"enabled": True},
                "env": {"staging": {"access": {"enabled": False}, "cache": {"enabled": False}}},
            },
        )
        assert pw.load_project(tmp_path).warnings == ()
        assert pw.load_project(tmp_path, env="staging").warnings == ()

    def test_every_deploy_setting_of_a_real_config_is_known(self, tmp_path: Path) -> None:
        """A config using the deployment settings wrangler knows gets no warning (a wrangler.toml as the
        docs write it, with `"$schema"` as a quoted TOML key)."""
        toml(
            tmp_path,
            """
            "$schema" = "./node_modules/wrangler/config-schema.json"
            name = "w"
            keep_vars = true
            send_metrics = false
            upload_source_maps = true
            no_bundle = true
            minify = true
            logpush = true
            find_additional_modules = true
            python_modules = { exclude = ["**/*.pyc"] }
            tail_consumers = [{ service = "tail" }]
            rules = [{ type = "Data", globs = ["**/*.bin"] }]
            alias = { foo = "bar" }
            observability = { enabled = true }
            limits = { cpu_ms = 100 }
            placement = { mode = "smart" }
            build = { command = "true" }
            access = { enabled = true }
            cache = { enabled = true }
            """,
        )
        assert pw.load_project(tmp_path).warnings == ()


class TestCompatibilityDate:
    def test_a_day_past_the_month_end_loads(self, tmp_path: Path) -> None:
        """wrangler checks the date with `new Date(value)` (isValidDateTimeStringFormat), which takes day 01-31 in
        any month (2026-02-30 is 2026-03-02 to V8), and workerd runs it (miniflare 4 serves with
        compatibilityDate "2024-02-30"); durable refused it."""
        project(tmp_path, {"compatibility_date": "2026-02-30"})
        assert pw.load_project(tmp_path).compatibility_date == "2026-02-30"

    @pytest.mark.parametrize("date", ["2026-13-01", "2026-02-32", "2026-02-00", "2026-1-1"])
    def test_what_wrangler_or_workerd_refuses_is_refused(self, tmp_path: Path, date: str) -> None:
        """`new Date()` gives NaN for month 13, day 32, day 0 (wrangler's error); workerd refuses 2026-1-1
        ("Invalid compatibility date")."""
        project(tmp_path, {"compatibility_date": date})
        with pytest.raises(pw.ProjectError, match=f"`compatibility_date` must be a date as YYYY-MM-DD, not '{date}'"):
            pw.load_project(tmp_path)


class TestVars:
    async def test_infinity_reaches_the_worker_as_none(self, tmp_path: Path) -> None:
        """miniflare 4 (what `wrangler dev` passes vars to) takes Infinity at any depth and the Worker reads
        null (JSON); durable refused `inf`. A warning names the field."""
        toml(tmp_path, "[vars]\nTOP = inf\nNESTED = { low = -inf, ok = 1.5 }\n")
        loaded = pw.load_project(tmp_path)
        assert loaded.vars == {"TOP": None, "NESTED": {"low": None, "ok": 1.5}}
        assert any("`vars.TOP` is inf" in w and "None" in w for w in loaded.warnings)
        assert any("`vars.NESTED.low` is -inf" in w for w in loaded.warnings)
        async with durable.Runtime() as rt:
            pw.asgi_app(loaded, rt)
            assert sdk.env.TOP is None and sdk.env.NESTED.low is None and sdk.env.NESTED.ok == 1.5

    def test_nan_is_still_refused(self, tmp_path: Path) -> None:
        """miniflare 4 refuses NaN at any depth ("Expected number, received nan"): `wrangler dev` does not start."""
        toml(tmp_path, "[vars]\nX = { y = nan }\n")
        with pytest.raises(pw.ProjectError, match="`vars.X.y` is nan"):
            pw.load_project(tmp_path)

    async def test_an_integer_past_2_53_is_a_float_as_in_javascript(self, tmp_path: Path) -> None:
        """JSON vars are JavaScript numbers: 12345678901234567890 arrives as 12345678901234567000 (miniflare 4),
        which Pyodide gives as a float (not Number.isSafeInteger); durable gave the exact int."""
        project(tmp_path, {"vars": {"BIG": 12345678901234567890, "IN": {"big": -(2**60)}, "SAFE": 2**53 - 1}})
        loaded = pw.load_project(tmp_path)
        async with durable.Runtime() as rt:
            pw.asgi_app(loaded, rt)
            assert type(sdk.env.BIG) is float and sdk.env.BIG == 1.2345678901234567e19
            assert type(sdk.env.IN.big) is float and sdk.env.IN.big == -(2.0**60)
            assert type(sdk.env.SAFE) is int and sdk.env.SAFE == 2**53 - 1

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_json_has_no_nan_or_infinity_literal(self, tmp_path: Path, literal: str) -> None:
        """wrangler's JSONC parser refuses `NaN` / `Infinity` (not JSON); Python's json module took them."""
        project(tmp_path, '{"main": "src/entry.py", "vars": {"X": ' + literal + "}}")
        with pytest.raises(pw.ProjectError, match=f"invalid JSONC: .*{literal}"):
            pw.load_project(tmp_path)


class TestDurableObjectBindingNames:
    async def test_any_name_wrangler_accepts(self, tmp_path: Path) -> None:
        """wrangler takes any string as a Durable Object binding name (validateDurableObjectBinding: "name" a
        string), as it does for vars; the Worker reads getattr(self.env, "MY-THING"). durable refused it."""
        project(
            tmp_path,
            {
                "durable_objects": {"bindings": [{"name": "MY-THING", "class_name": "Thing"}]},
                "migrations": [{"tag": "v1", "new_sqlite_classes": ["Thing"]}],
            },
        )
        loaded = pw.load_project(tmp_path)
        assert [b.name for b in loaded.bindings] == ["MY-THING"]
        async with durable.Runtime() as rt:
            pw.asgi_app(loaded, rt)
            ns = getattr(sdk.env, "MY-THING")
            stub = ns.get(ns.idFromName("a"))
            assert await (await stub.fetch("http://x/")).text() == "thing"

    @pytest.mark.parametrize("name", ["", 3, None])
    def test_a_missing_or_empty_name_is_refused(self, tmp_path: Path, name: object) -> None:
        project(
            tmp_path,
            {
                "durable_objects": {"bindings": [{"name": name, "class_name": "Thing"}]},
                "migrations": [{"tag": "v1", "new_sqlite_classes": ["Thing"]}],
            },
        )
        with pytest.raises(pw.ProjectError, match=r"durable_objects.bindings\[0\].name` must be a non-empty string"):
            pw.load_project(tmp_path)


class TestUnsupportedBinding:
    def test_probing_it_does_not_raise(self) -> None:
        """Passing a placeholder around must not raise: the checks libraries make (asyncio/inspect
        iscoroutinefunction read `_is_coroutine` / `_is_coroutine_marker`, getattr(x, "_private", None))
        raised NotImplementedError; names starting with `_` are not a binding's API."""
        placeholder = pw.UnsupportedBinding("env.KV is a KV namespace")
        assert not asyncio.iscoroutinefunction(placeholder)
        assert not inspect.iscoroutinefunction(placeholder)
        assert getattr(placeholder, "_private", None) is None
        assert not hasattr(placeholder, "_anything")
        assert bool(placeholder) and "env.KV is a KV namespace" in repr(placeholder)
        with pytest.raises(NotImplementedError, match="env.KV is a KV namespace"):
            placeholder.get("k")

    def test_warning_names_the_assets_binding_once(self, tmp_path: Path) -> None:
        project(tmp_path, {"assets": {"directory": "./public", "binding": "ASSETS"}})
        (warning,) = pw.load_project(tmp_path).warnings
        assert "binding binding" not in warning and "ASSETS" in warning
