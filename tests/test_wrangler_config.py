"""What real Python Workers projects put in their wrangler config, handled as wrangler does.

Rules and messages come from wrangler 4's config code (workers-sdk
``packages/workers-utils/src/config/validation.ts`` and ``config-helpers.ts``,
``packages/wrangler/src/dev/class-names-sqlite.ts``, read 2026-08): which file wins, what an
``[env.NAME]`` section inherits, how ``migrations`` apply, what is only a warning.
"""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable import _cli
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")

ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint

class Thing(DurableObject):
    async def fetch(self, request):
        n = (await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", n)
        return Response(str(n))

class Other(DurableObject):
    pass

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/kv"):
            await self.env.MY_KV.get("k")
        stub = self.env.THING.get(self.env.THING.idFromName("a"))
        return await stub.fetch(request)
"""

FLAGS: dict[str, Any] = {"compatibility_date": "2026-04-07", "compatibility_flags": ["python_workers"]}


def project(tmp_path: Path, config: dict[str, Any] | str, name: str = "wrangler.jsonc", entry: str = ENTRY) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(entry))
    text = config if isinstance(config, str) else json.dumps({"main": "src/entry.py", **FLAGS, **config})
    (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def bound(kind: str = "new_sqlite_classes", cls: str = "Thing") -> dict[str, Any]:
    return {
        "durable_objects": {"bindings": [{"name": "THING", "class_name": cls}]},
        "migrations": [{"tag": "v1", kind: [cls]}],
    }


async def get(app: Any, path: str = "/") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        return await client.get(path)


class TestFiles:
    def test_wrangler_json_wins_over_jsonc_and_toml(self, tmp_path: Path) -> None:
        """wrangler reads wrangler.json, then wrangler.jsonc, then wrangler.toml (findWranglerConfig); durable
        read wrangler.jsonc first. The others are named in a warning."""
        project(tmp_path, {"vars": {"FROM": "jsonc"}})
        project(tmp_path, {"vars": {"FROM": "json"}}, name="wrangler.json")
        project(tmp_path, 'main = "src/entry.py"\nvars = { FROM = "toml" }\n', name="wrangler.toml")
        loaded = pw.load_project(tmp_path)
        assert loaded.config.name == "wrangler.json" and loaded.vars == {"FROM": "json"}
        ignored = [w for w in loaded.warnings if "ignored: wrangler.json is read instead" in w]
        assert len(ignored) == 2 and "wrangler.jsonc" in ignored[0] and "wrangler.toml" in ignored[1]

    def test_toml_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        """A TOML error names its line, even one tomllib reports only as 'at end of document'."""
        project(tmp_path, 'main = "src/entry.py"\nvars = { A = 1\n', name="wrangler.toml")
        with pytest.raises(pw.ProjectError, match=r"invalid TOML: .*line 2"):
            pw.load_project(tmp_path)
        project(tmp_path, 'main = "src/entry.py"\nvars = [\n', name="wrangler.toml")
        with pytest.raises(pw.ProjectError, match=r"invalid TOML: .*\(line 3: something is left open\)"):
            pw.load_project(tmp_path)

    def test_unquoted_toml_compatibility_date_is_refused(self, tmp_path: Path) -> None:
        """wrangler: 'Expected "compatibility_date" to be of type string' (smol-toml gives a Date); durable took it."""
        project(tmp_path, 'main = "src/entry.py"\ncompatibility_date = 2026-04-07\n', name="wrangler.toml")
        with pytest.raises(
            pw.ProjectError, match='`compatibility_date` must be a string: quote it, compatibility_date = "2026-04-07"'
        ):
            pw.load_project(tmp_path)

    def test_impossible_compatibility_date_is_refused(self, tmp_path: Path) -> None:
        """wrangler checks the date parses (isValidDateTimeStringFormat: `new Date(value)`): month 13 does not
        (2026-02-30 does, and workerd runs it: tests/test_review6.py); 2026-13-01 passed durable's pattern."""
        project(tmp_path, {"compatibility_date": "2026-13-01"})
        with pytest.raises(
            pw.ProjectError, match="`compatibility_date` must be a date as YYYY-MM-DD, not '2026-13-01'"
        ):
            pw.load_project(tmp_path)


class TestWarnings:
    def test_missing_python_workers_flag_is_a_warning(self, tmp_path: Path) -> None:
        """wrangler refuses a .py main without the flag ("The `python_workers` compatibility flag is required to
        use Python.", applyPythonConfig); durable says so and runs the project."""
        project(tmp_path, {"compatibility_flags": []})
        (warning,) = pw.load_project(tmp_path).warnings
        assert '`compatibility_flags` lacks "python_workers"' in warning and "is required to use Python" in warning
        project(tmp_path, {})
        assert pw.load_project(tmp_path).warnings == ()

    def test_unknown_fields_warn_known_deploy_fields_do_not(self, tmp_path: Path) -> None:
        """wrangler warns 'Unexpected fields found in top-level field: "x"'; deploy-only fields are known."""
        project(
            tmp_path,
            {
                "name": "w",
                "workers_dev": True,
                "routes": ["example.com/*"],
                "observability": {"enabled": True},
                "$schema": "x",
                "mian": "typo",
            },
        )
        (warning,) = pw.load_project(tmp_path).warnings
        assert 'Unexpected fields found in top-level field: "mian" (ignored)' in warning

    def test_crons_warn_once(self, tmp_path: Path) -> None:
        """triggers.crons are not run: one warning naming the field."""
        project(tmp_path, {"triggers": {"crons": ["* * * * *", "0 0 * * *"]}})
        (warning,) = pw.load_project(tmp_path).warnings
        assert "`triggers.crons` is not run by durable" in warning

    async def test_bind_logs_the_warnings(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """Project.bind (what asgi_app calls) logs each warning once."""
        project(tmp_path, {"compatibility_flags": []})
        loaded = pw.load_project(tmp_path)
        with caplog.at_level(logging.WARNING, logger="durable.compat.python_workers"):
            async with durable.Runtime() as rt:
                loaded.bind(rt)
        assert [r.getMessage() for r in caplog.records] == list(loaded.warnings)


class TestDurableObjectBindings:
    def test_environment_without_script_name_is_refused(self, tmp_path: Path) -> None:
        """wrangler: 'binding should have a "script_name" field if "environment" is present.' durable ignored it."""
        config = bound()
        config["durable_objects"]["bindings"][0]["environment"] = "staging"
        project(tmp_path, config)
        with pytest.raises(pw.ProjectError, match=r'bindings\[0\].environment` needs a "script_name"'):
            pw.load_project(tmp_path)

    def test_class_name_typo_suggests_the_class(self, tmp_path: Path) -> None:
        """A misspelt class_name names the class, the module and the closest Durable Object class."""
        project(tmp_path, {**bound(cls="Thign")})
        with pytest.raises(
            pw.ProjectError, match="names 'Thign', which entry.py does not define; did you mean 'Thing'"
        ):
            pw.load_project(tmp_path)

    def test_unexpected_binding_fields_warn(self, tmp_path: Path) -> None:
        config = bound()
        config["durable_objects"]["bindings"][0]["clas_name"] = "x"
        project(tmp_path, config)
        (warning,) = pw.load_project(tmp_path).warnings
        assert '`durable_objects.bindings[0]` has unexpected fields: "clas_name"' in warning


class TestMigrations:
    def test_tags_apply_in_order(self, tmp_path: Path) -> None:
        """A class deleted by one tag and created again by a later one has the later backend."""
        project(
            tmp_path,
            {
                **bound(),
                "migrations": [
                    {"tag": "v1", "new_classes": ["Thing"]},
                    {"tag": "v2", "deleted_classes": ["Thing"]},
                    {"tag": "v3", "new_sqlite_classes": ["Thing"]},
                ],
            },
        )
        assert pw.load_project(tmp_path).bindings[0].storage == "sqlite"

    def test_delete_and_create_in_one_migration(self, tmp_path: Path) -> None:
        """wrangler applies deleted_classes before new_classes within a migration; durable deleted last,
        which left the class unmigrated."""
        project(tmp_path, {**bound(), "migrations": [
            {"tag": "v1", "new_sqlite_classes": ["Thing"]},
            {"tag": "v2", "deleted_classes": ["Thing"], "new_classes": ["Thing"]},
        ]})  # fmt: skip
        assert pw.load_project(tmp_path).bindings[0].storage == "kv"

    def test_rename_carries_the_backend(self, tmp_path: Path) -> None:
        project(tmp_path, {
            "durable_objects": {"bindings": [{"name": "THING", "class_name": "Thing"}]},
            "migrations": [
                {"tag": "v1", "new_classes": ["OldThing"]},
                {"tag": "v2", "renamed_classes": [{"from": "OldThing", "to": "Thing"}]},
            ],
        })  # fmt: skip
        assert pw.load_project(tmp_path).bindings[0].storage == "kv"

    @pytest.mark.parametrize(
        ("migrations", "message"),
        [
            (
                [{"tag": "v1", "deleted_classes": ["Thing"]}],
                "Cannot apply deleted_classes migration to non-existent class Thing",
            ),
            (
                [{"tag": "v1", "renamed_classes": [{"from": "Nope", "to": "Thing"}]}],
                "Cannot apply renamed_classes migration to non-existent class Nope",
            ),
            (
                [{"tag": "v1", "new_classes": ["Thing"], "new_sqlite_classes": ["Thing"]}],
                "Cannot apply new_sqlite_classes migration to existing class Thing",
            ),
            (
                [{"tag": "v1", "new_sqlite_classes": ["Thing"]}, {"tag": "v2", "new_sqlite_classes": ["Thing"]}],
                "Cannot apply new_sqlite_classes migration to existing class Thing",
            ),
            ([{"new_sqlite_classes": ["Thing"]}], r"`migrations\[0\].tag` is required"),
            (
                [{"tag": "v1", "renamed_classes": [{"from": "Thing"}]}],
                r"`migrations\[0\].renamed_classes\[0\]` must be an object \{from: string, to: string\}",
            ),
        ],
    )
    def test_wrangler_refuses(self, tmp_path: Path, migrations: list[Any], message: str) -> None:
        """Migrations wrangler dev refuses (class-names-sqlite.ts, validateMigrations); durable took them all,
        a class in both lists ending up with the last list's backend."""
        project(tmp_path, {**bound(), "migrations": migrations})
        with pytest.raises(pw.ProjectError, match=message):
            pw.load_project(tmp_path)

    @pytest.mark.parametrize(
        ("migrations", "message"),
        [
            (
                [{"tag": "v1", "new_sqlite_classes": ["Thing"]}, {"tag": "v2", "deleted_classes": ["Thing"]}],
                "names 'Thing', which was deleted by migrations\\[1\\] \\(tag 'v2'\\)",
            ),
            (
                [{"tag": "v1", "new_sqlite_classes": ["Thing"]}, {"tag": "v2", "renamed_classes": [{"from": "Thing", "to": "Other"}]}],
                "names 'Thing', which was renamed to Other by migrations\\[1\\]",
            ),
            (
                [{"tag": "v1", "new_sqlite_classes": ["Other"]}],
                "names 'Thing', which no migration creates: add a migration with new_sqlite_classes",
            ),
        ],
    )  # fmt: skip
    def test_binding_to_a_class_no_migration_keeps_is_refused(
        self, tmp_path: Path, migrations: list[Any], message: str
    ) -> None:
        """Cloudflare refuses a binding to a class that no migration (still) creates; durable served it as a
        fresh SQLite-backed class, with none of the objects the rename kept."""
        project(tmp_path, {**bound(), "migrations": migrations})
        with pytest.raises(pw.ProjectError, match=message):
            pw.load_project(tmp_path)

    def test_no_migrations_warns_and_stays_sqlite(self, tmp_path: Path) -> None:
        """With no migrations at all wrangler warns (the deploy would be refused); durable keeps SQLite."""
        project(tmp_path, {"durable_objects": bound()["durable_objects"]})
        loaded = pw.load_project(tmp_path)
        assert loaded.bindings[0].storage == "sqlite"
        (warning,) = loaded.warnings
        assert "`durable_objects` binds Thing but there are no `migrations`" in warning
        assert '"new_sqlite_classes": ["Thing"]' in warning

    def test_transferred_classes_warn(self, tmp_path: Path) -> None:
        project(tmp_path, {**bound(), "migrations": [
            {"tag": "v1", "transferred_classes": [{"from": "Thing", "from_script": "old-worker", "to": "Thing"}]},
        ]})  # fmt: skip
        loaded = pw.load_project(tmp_path)
        assert loaded.bindings[0].storage == "sqlite"
        assert "from the Worker 'old-worker', which durable does not have" in loaded.warnings[0]

    def test_exports_give_the_backend(self, tmp_path: Path) -> None:
        """wrangler's experimental `exports` map: storage "legacy-kv" is the key-value backend."""
        project(tmp_path, {
            "durable_objects": bound()["durable_objects"],
            "exports": {"Thing": {"type": "durable-object", "storage": "legacy-kv"}},
        })  # fmt: skip
        assert pw.load_project(tmp_path).bindings[0].storage == "kv"

    async def test_storage_follows_a_class_rename(self, tmp_path: Path) -> None:
        """renamed_classes keeps the objects (Cloudflare moves the namespace to the new name); the binding
        name is unchanged, so durable's namespace, keyed by it, is the same one."""
        project(tmp_path, bound())
        async with durable.Runtime(path=tmp_path / "data") as rt:
            assert (await get(pw.asgi_app(tmp_path, rt))).text == "1"
        project(tmp_path, {
            "durable_objects": {"bindings": [{"name": "THING", "class_name": "Renamed"}]},
            "migrations": [
                {"tag": "v1", "new_sqlite_classes": ["Thing"]},
                {"tag": "v2", "renamed_classes": [{"from": "Thing", "to": "Renamed"}]},
            ],
        }, entry=ENTRY.replace("class Thing(", "class Renamed("))  # fmt: skip
        async with durable.Runtime(path=tmp_path / "data") as rt:
            assert (await get(pw.asgi_app(tmp_path, rt))).text == "2"


class TestVars:
    async def test_json_types_as_python_workers_sees_them(self, tmp_path: Path) -> None:
        """vars reach a Python Worker as JavaScript values: a number that Number.isSafeInteger() is an int
        (1.0 arrives as 1; durable gave 1.0 at the top level and in arrays), objects take attribute access."""
        values = {"S": "x", "I": 3, "F": 1.5, "W": 1.0, "B": True, "O": {"a": 2.0, "b": [1.0]}, "A": [1.0, "y"]}
        project(tmp_path, {"vars": values})
        async with durable.Runtime() as rt:
            pw.asgi_app(tmp_path, rt)
            env = sdk.env
            assert (env.S, env.I, env.F, env.B) == ("x", 3, 1.5, True)
            assert type(env.W) is int and env.W == 1
            assert env.O.a == 2 and type(env.O.a) is int and env.O.b == [1]
            assert env.A == [1, "y"] and type(env.A[0]) is int

    def test_toml_date_var_is_refused(self, tmp_path: Path) -> None:
        """wrangler: 'The field "vars.X" is a TOML date, which is not supported. Please use a string instead';
        durable put a datetime.date on env."""
        project(tmp_path, 'main = "src/entry.py"\n[vars]\nSINCE = 2025-12-19\n', name="wrangler.toml")
        with pytest.raises(
            pw.ProjectError,
            match='`vars.SINCE` is a TOML date, which is not supported: use a string instead, e.g. "2025-12-19"',
        ):
            pw.load_project(tmp_path)

    def test_nan_var_is_refused(self, tmp_path: Path) -> None:
        project(tmp_path, 'main = "src/entry.py"\n[vars]\nX = { y = nan }\n', name="wrangler.toml")
        with pytest.raises(pw.ProjectError, match="`vars.X.y` is nan, which wrangler dev refuses"):
            pw.load_project(tmp_path)

    def test_any_key_wrangler_accepts(self, tmp_path: Path) -> None:
        """wrangler takes any var name (JavaScript reads env["API-KEY"]); durable refused a non-identifier."""
        project(tmp_path, {"vars": {"API-KEY": "k"}})
        assert pw.load_project(tmp_path).vars == {"API-KEY": "k"}


STAGED = {
    "name": "app",
    "vars": {"LEVEL": "top", "ONLY_TOP": "1"},
    **bound(),
    "env": {
        "staging": {
            "vars": {"LEVEL": "staging"},
            "durable_objects": {"bindings": [{"name": "STAGED", "class_name": "Thing"}]},
        },
        "bare": {},
    },
}


class TestEnvironments:
    def test_env_section_applies_with_wrangler_inheritance(self, tmp_path: Path) -> None:
        """An environment inherits main, compatibility_* and migrations, not vars or bindings; its name is
        <name>-<env>. durable ignored `env` and had no --env."""
        project(tmp_path, STAGED)
        loaded = pw.load_project(tmp_path, env="staging")
        assert loaded.env == "staging" and loaded.name == "app-staging"
        assert loaded.vars == {"LEVEL": "staging"}
        assert [(b.name, b.storage) for b in loaded.bindings] == [("STAGED", "sqlite")]
        vars_warning, bindings_warning = loaded.warnings
        assert 'vars ONLY_TOP exist at the top level, but not on "env.staging.vars"' in vars_warning
        assert 'bindings THING are at the top level, but not on "env.staging"' in bindings_warning
        top = pw.load_project(tmp_path)
        assert top.env is None and top.vars == STAGED["vars"] and top.bindings[0].name == "THING"

    def test_empty_env_section_has_no_bindings(self, tmp_path: Path) -> None:
        project(tmp_path, STAGED)
        loaded = pw.load_project(tmp_path, env="bare")
        assert loaded.vars == {} and loaded.bindings == ()

    def test_errors_name_the_env_section(self, tmp_path: Path) -> None:
        project(tmp_path, {**STAGED, "env": {"staging": {"vars": []}}})
        with pytest.raises(pw.ProjectError, match="`env.staging.vars` must be an object"):
            pw.load_project(tmp_path, env="staging")

    def test_unknown_env(self, tmp_path: Path) -> None:
        """wrangler: 'No environment found in configuration with name "x".' An error when the config has
        environments (listing them), a warning when it has none (the top level is used)."""
        project(tmp_path, STAGED)
        with pytest.raises(pw.ProjectError, match='name "prod".*environment names are: bare, staging'):
            pw.load_project(tmp_path, env="prod")
        project(tmp_path, {"vars": {"A": "1"}})
        loaded = pw.load_project(tmp_path, env="prod")
        assert loaded.vars == {"A": "1"}
        assert 'No environment found in configuration with name "prod"' in loaded.warnings[0]

    def test_cli_env_option(self, tmp_path: Path) -> None:
        """`durable serve PROJECT --env NAME` (and -e) loads that environment; a plain file has none."""
        project(tmp_path, STAGED)
        args = _cli.build_parser().parse_args(["serve", str(tmp_path), "-e", "staging"])
        assert args.env == "staging"
        app = _cli.load_app(tmp_path, env="staging")
        assert [b.name for b in app.bindings] == ["STAGED"] and app.vars == {"LEVEL": "staging"}
        assert len(app.warnings) == 2
        (tmp_path / "app.py").write_text("")
        with pytest.raises(_cli.AppLoadError, match="only a Python Workers project"):
            _cli.load_app(tmp_path / "app.py", env="staging")


class TestUnsupportedBindings:
    async def test_kv_binding_fails_at_use_and_the_rest_runs(self, tmp_path: Path) -> None:
        """A KV namespace (not emulated) does not stop the project: env.MY_KV raises NotImplementedError
        naming itself and its field when used; durable ignored it, so env.MY_KV was an AttributeError."""
        project(tmp_path, {**bound(), "kv_namespaces": [{"binding": "MY_KV", "id": "abc"}], "ai": {"binding": "AI"}})
        loaded = pw.load_project(tmp_path)
        assert sorted(loaded.unsupported) == ["AI", "MY_KV"]
        assert any("`kv_namespaces[0]`: env.MY_KV is a KV namespace: not emulated" in w for w in loaded.warnings)
        async with durable.Runtime() as rt:
            app = pw.asgi_app(loaded, rt)
            assert (await get(app)).text == "1"
            assert "MY_KV" in rt.env
            with pytest.raises(NotImplementedError, match=r"env.MY_KV is a KV namespace \(`kv_namespaces\[0\]` in"):
                rt.env.MY_KV.get("k")

    async def test_cli_binds_the_placeholders(self, tmp_path: Path) -> None:
        project(tmp_path, {**bound(), "d1_databases": [{"binding": "DB", "database_id": "x"}]})
        app = _cli.load_app(tmp_path)
        async with durable.Runtime() as rt:
            assert app.on_runtime is not None
            app.on_runtime(rt)
            with pytest.raises(NotImplementedError, match="env.DB is a D1 database"):
                rt.env.DB.prepare("SELECT 1")
