"""Reading a wrangler config as wrangler does: which file, which environment, which storage per class.

The rules (which file wins, what an ``[env.NAME]`` section inherits, how ``migrations`` apply,
which fields are bindings durable does not emulate) follow wrangler 4's config validation
(workers-sdk ``packages/workers-utils/src/config/validation.ts``, ``config-helpers.ts`` and
``packages/wrangler/src/dev/class-names-sqlite.ts``); messages quoted from there say so.
What wrangler only warns about is collected in :attr:`Config.warnings`; what it refuses raises
:class:`ProjectError`, whose message names the file and the field.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CONFIG_NAMES",
    "Config",
    "ProjectError",
    "UnsupportedBinding",
    "find_config",
    "parse_jsonc",
    "read_config",
    "storage_kinds",
]

#: Looked for in this order, as wrangler does (``findWranglerConfig``: json, then jsonc, then toml).
CONFIG_NAMES: Final = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")


class ProjectError(ValueError):
    """A Python Workers project cannot be loaded: the message names the file and the field."""


# Fields that are bindings of kinds durable does not emulate: field -> (what it is, key naming the binding).
_LIST_BINDINGS: Final = {
    "kv_namespaces": ("a KV namespace", "binding"),
    "d1_databases": ("a D1 database", "binding"),
    "r2_buckets": ("an R2 bucket", "binding"),
    "services": ("a service binding (another Worker)", "binding"),
    "hyperdrive": ("a Hyperdrive configuration", "binding"),
    "vectorize": ("a Vectorize index", "binding"),
    "analytics_engine_datasets": ("an Analytics Engine dataset", "binding"),
    "workflows": ("a Workflow", "binding"),
    "dispatch_namespaces": ("a dispatch namespace", "binding"),
    "mtls_certificates": ("an mTLS certificate", "binding"),
    "secrets_store_secrets": ("a Secrets Store secret", "binding"),
    "pipelines": ("a Pipeline", "binding"),
    "worker_loaders": ("a Worker Loader", "binding"),
    "vpc_services": ("a VPC service", "binding"),
    "send_email": ("an Email binding", "name"),
    "ratelimits": ("a Rate Limiting binding", "name"),
}
_OBJECT_BINDINGS: Final = {
    "ai": "Workers AI",
    "browser": "Browser Rendering",
    "images": "the Images binding",
    "version_metadata": "the Version metadata binding",
    "assets": "the static assets binding",
    "media": "the Media binding",
    "stream": "the Stream binding",
}
# Inheritable fields an environment may override (wrangler's `inheritable(...)`); all others but
# the top-level-only ones are bindings and alike, which an environment must repeat.
_INHERITABLE: Final = frozenset(
    [
        "account_id",
        "compatibility_date",
        "compatibility_flags",
        "jsx_factory",
        "jsx_fragment",
        "rules",
        "build",
        "no_bundle",
        "minify",
        "keep_names",
        "first_party_worker",
        "logpush",
        "upload_source_maps",
        "observability",
        "compliance_region",
        "python_modules",
        "name",
        "main",
        "find_additional_modules",
        "preserve_file_names",
        "base_dir",
        "tsconfig",
        "route",
        "routes",
        "triggers",
        "assets",
        "limits",
        "placement",
        "workers_dev",
        "preview_urls",
        "migrations",
        "exports",
        "zone_id",
        "logfwdr",
        "legacy_env",
        "usage_model",
        "node_compat",
        "previews",
        "access",
        "cache",
    ]
)
_NOT_INHERITABLE: Final = (
    frozenset(
        [
            "vars",
            "secrets",
            "define",
            "durable_objects",
            "queues",
            "unsafe",
            "containers",
            "cloudchamber",
            "tail_consumers",
            "streaming_tail_consumers",
            "ai_search",
            "ai_search_namespaces",
            "websearch",
            "agent_memory",
            "artifacts",
            "connect",
            "flagship",
            "unsafe_hello_world",
            "vpc_networks",
        ]
    )
    | frozenset(_LIST_BINDINGS)
    | frozenset(_OBJECT_BINDINGS)
)
_TOP_LEVEL_ONLY: Final = frozenset(
    [
        "$schema",
        "env",
        "keep_vars",
        "send_metrics",
        "site",
        "dev",
        "alias",
        "wasm_modules",
        "text_blobs",
        "data_blobs",
        "pages_build_output_dir",
        "dependencies_instrumentation",
        "addresses",
    ]
)
# What tools write into the configs they generate (wrangler's redirected configs): known, not warned about.
_GENERATED: Final = frozenset(
    ["configPath", "userConfigPath", "topLevelName", "definedEnvironments", "targetEnvironment"]
)
_KNOWN: Final = _INHERITABLE | _NOT_INHERITABLE | _TOP_LEVEL_ONLY | _GENERATED


class UnsupportedBinding:
    """What ``env.NAME`` is for a binding durable does not emulate (a KV namespace, D1, R2, AI...).

    The project loads and everything else runs; using this binding raises ``NotImplementedError``
    with the message, which names the binding and the config field.
    """

    __slots__ = ("_message",)

    def __init__(self, message: str) -> None:
        object.__setattr__(self, "_message", message)

    def __repr__(self) -> str:
        return f"<unsupported binding: {self._message}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            # not a binding's API: what libraries probe (asyncio.iscoroutinefunction reads
            # `_is_coroutine`, getattr(x, "_private", None)) must not raise.
            raise AttributeError(name)
        raise NotImplementedError(self._message)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(self._message)


@dataclass
class Config:
    """A wrangler config with one environment applied.

    Attributes:
        path: the config file.
        data: the fields in effect: the top level, or an ``[env.NAME]`` section over it.
        env: the environment chosen (``None``: the top level).
        warnings: what wrangler would warn about, and what durable ignores; each names the field.
    """

    path: Path
    data: dict[str, Any]
    env: str | None = None
    warnings: list[str] = field(default_factory=list)
    env_fields: frozenset[str] = frozenset()  # the fields the environment's section set

    def error(self, field_name: str, message: str) -> ProjectError:
        """A :class:`ProjectError` naming the file and ``field_name`` (prefixed ``env.NAME.`` where it came from there)."""
        return ProjectError(f"{self.path}: `{self.where(field_name)}` {message}")

    def warn(self, field_name: str, message: str) -> None:
        """Record a warning naming the file and ``field_name``."""
        self.warnings.append(f"{self.path}: `{self.where(field_name)}` {message}")

    def where(self, field_name: str) -> str:
        """``field_name`` as written in the file: under ``env.NAME`` when the environment set it."""
        head = field_name.split(".", 1)[0].split("[", 1)[0]
        if head in self.env_fields:
            return f"env.{self.env}.{field_name}"
        return field_name


# -- files --------------------------------------------------------------------------------------------


def parse_jsonc(text: str) -> Any:
    """Parse JSON with comments (``//``, ``/* */``) and trailing commas, as wrangler accepts.

    Raises:
        ValueError: the text is not valid JSONC (``json.JSONDecodeError``).
    """
    out: list[str] = []
    comma = -1  # index in out of a comma that only whitespace or comments follow so far
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            comma = -1
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise json.JSONDecodeError("unterminated comment", text, i)
            out.append(" " * (j + 2 - i))  # keep positions for error messages
            i = j + 2
        else:
            if c in "}]" and comma >= 0:
                out[comma] = " "  # a trailing comma (outside strings only: "a,}" stays as it is)
            if not c.isspace():
                comma = len(out) if c == "," else -1
            out.append(c)
            i += 1
    stripped = "".join(out)
    return json.loads(stripped, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    # Python's json takes NaN and Infinity; JSON has no such literal and wrangler's parser refuses them.
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN or Infinity literal)")


def find_config(path: Path) -> tuple[Path, list[str]]:
    """The config file of ``path`` (a folder or the file itself), and warnings about others ignored."""
    if path.is_dir():
        found = [path / name for name in CONFIG_NAMES if (path / name).is_file()]
        if not found:
            raise ProjectError(f"{path}: no wrangler.json, wrangler.jsonc or wrangler.toml in this folder")
        ignored = [
            f"{other}: ignored: {found[0].name} is read instead (wrangler reads wrangler.json, then "
            "wrangler.jsonc, then wrangler.toml, and only the first it finds)"
            for other in found[1:]
        ]
        return found[0], ignored
    if not path.is_file():
        raise ProjectError(f"{path}: no such file or folder")
    if path.name.endswith((".jsonc", ".json", ".toml")):
        return path, []
    raise ProjectError(f"{path}: not a wrangler config (expected wrangler.json, wrangler.jsonc or wrangler.toml)")


def read_config(path: Path) -> dict[str, Any]:
    """The parsed config file; a syntax error names the line and column."""
    text = path.read_text(encoding="utf-8-sig")  # a BOM is whitespace to wrangler
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else parse_jsonc(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if "at end of document" in message:  # tomllib gives no line there
            message += f" (line {text.count(chr(10)) + 1}: something is left open)"
        raise ProjectError(f"{path}: invalid TOML: {message}") from None
    except ValueError as exc:
        raise ProjectError(f"{path}: invalid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: the top level must be an object")
    return data


# -- environments ---------------------------------------------------------------------------------------


def apply_environment(path: Path, raw: dict[str, Any], env: str | None) -> Config:
    """The fields in effect under environment ``env`` (``None``: the top level), as wrangler merges them.

    An environment inherits the top level's inheritable fields (``main``, ``compatibility_date``,
    ``compatibility_flags``, ``triggers``, ``migrations``...) unless it sets them, and never its
    bindings or ``vars``; its ``name`` is ``<name>-<env>``.
    """
    config = Config(path=path, data=dict(raw), env=None)
    _warn_unknown(config, raw, "top-level", top=True)
    envs = raw.get("env")
    if envs is not None and not isinstance(envs, dict):
        raise config.error("env", "must be an object of environment names to their configuration")
    if env is None:
        return config
    section = (envs or {}).get(env)
    if section is None:
        available = sorted(envs or {})
        # wrangler: "No environment found in configuration with name ..." (an error when there are
        # environments, a warning when there are none, and then the top level is used).
        message = f'No environment found in configuration with name "{env}".'
        if available:
            raise ProjectError(
                f"{path}: {message} The configured environment names are: {', '.join(available)} "
                f"(add an [env.{env}] section, or pick one of those)"
            )
        config.warnings.append(f"{path}: {message} The top-level configuration is used.")
        config.env = env
        return config
    if not isinstance(section, dict):
        raise config.error(f"env.{env}", "must be an object")
    config.env = env
    _warn_unknown(config, section, f'"env.{env}"', top=False)
    data = {key: value for key, value in raw.items() if key in _INHERITABLE or key in _TOP_LEVEL_ONLY}
    data.update({key: value for key, value in section.items() if key not in _TOP_LEVEL_ONLY})
    name = section.get("name")
    if name is None and isinstance(raw.get("name"), str) and raw.get("legacy_env", True) is not False:
        data["name"] = f"{raw['name']}-{env}"
    config.env_fields = frozenset(key for key in section if key not in _TOP_LEVEL_ONLY)
    config.data = data
    _warn_not_inherited(config, raw, section)
    return config


def _warn_unknown(config: Config, section: dict[str, Any], label: str, *, top: bool) -> None:
    unknown = [key for key in section if key not in _KNOWN]
    if unknown:
        fields = ",".join(f'"{key}"' for key in unknown)
        # wrangler: `Unexpected fields found in ${fieldPath} field: ${fields}` (a warning).
        config.warnings.append(f"{config.path}: Unexpected fields found in {label} field: {fields} (ignored)")
    if not top:
        misplaced = [key for key in section if key in _TOP_LEVEL_ONLY]
        for key in misplaced:
            config.warnings.append(
                f"{config.path}: `{label.strip(chr(34))}.{key}` is a top-level-only field: ignored here"
            )


def _warn_not_inherited(config: Config, raw: dict[str, Any], section: dict[str, Any]) -> None:
    top_vars = raw.get("vars")
    env_vars = section.get("vars") or {}
    if isinstance(top_vars, dict) and isinstance(env_vars, dict):
        missing = [name for name in top_vars if name not in env_vars]
        if missing:
            # wrangler's warning, in substance: vars are not inherited by environments.
            config.warnings.append(
                f'{config.path}: vars {", ".join(missing)} exist at the top level, but not on "env.{config.env}.vars"; '
                f'"vars" configuration is not inherited by environments: add them to "env.{config.env}.vars"'
            )
    top_do = raw.get("durable_objects")
    env_do = section.get("durable_objects") or {}
    if isinstance(top_do, dict) and isinstance(env_do, dict):
        names = {b.get("name") for b in env_do.get("bindings") or [] if isinstance(b, dict)}
        missing = [
            b["name"] for b in top_do.get("bindings") or [] if isinstance(b, dict) and b.get("name") not in names
        ]
        if missing:
            config.warnings.append(
                f"{config.path}: Durable Object bindings {', '.join(map(str, missing))} are at the top level, but not "
                f'on "env.{config.env}"; "durable_objects" configuration is not inherited by environments: add them '
                f'to "env.{config.env}.durable_objects.bindings"'
            )


# -- fields --------------------------------------------------------------------------------------------


def check_vars(config: Config) -> dict[str, Any]:
    """``vars`` as the Worker sees them: JSON values, as ``wrangler dev`` passes them to miniflare.

    A TOML date or ``nan`` is refused (miniflare refuses them, so ``wrangler dev`` does not start);
    ``inf`` becomes ``None`` with a warning (miniflare gives the Worker ``null``); an integer past
    2**53 becomes the ``float`` a JavaScript number is.
    """
    raw = config.data.get("vars", {})
    if not isinstance(raw, dict):
        raise config.error("vars", "must be an object of names to values")
    return {key: _var_value(config, f"vars.{key}", value) for key, value in raw.items()}


_MAX_SAFE_INTEGER: Final = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER


def _var_value(config: Config, where: str, value: Any) -> Any:
    if isinstance(value, (_dt.date, _dt.time)):
        # wrangler: 'The field "vars.X" is a TOML date, which is not supported. Please use a string instead'
        # (at the top of vars; deeper, miniflare 4 refuses the Date: "Expected string, received object").
        raise config.error(where, f'is a TOML date, which is not supported: use a string instead, e.g. "{value}"')
    if isinstance(value, float) and math.isnan(value):
        # miniflare 4: 'Expected number, received nan', at any depth.
        raise config.error(where, "is nan, which wrangler dev refuses (vars reach the Worker as JSON)")
    if isinstance(value, float) and math.isinf(value):
        config.warn(where, f"is {value}: the Worker reads null (None), as vars reach it as JSON")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_SAFE_INTEGER:
        return float(value)  # a JavaScript number: JSON.parse rounds it, Pyodide gives a float
    if isinstance(value, dict):
        return {key: _var_value(config, f"{where}.{key}", item) for key, item in value.items()}
    if isinstance(value, list):
        return [_var_value(config, f"{where}[{i}]", item) for i, item in enumerate(value)]
    return value


def check_compatibility(config: Config) -> str | None:
    """The ``compatibility_date`` (``None`` when absent); warns when ``python_workers`` is not a flag."""
    date = config.data.get("compatibility_date")
    if isinstance(date, _dt.date):
        # wrangler: 'Expected "compatibility_date" to be of type string' (TOML parses an unquoted date).
        raise config.error("compatibility_date", f'must be a string: quote it, compatibility_date = "{date}"')
    if date is not None and not _is_date(date):
        raise config.error("compatibility_date", f"must be a date as YYYY-MM-DD, not {date!r}")
    flags = config.data.get("compatibility_flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise config.error("compatibility_flags", "must be a list of strings")
    if "python_workers" not in flags:
        config.warn(
            "compatibility_flags",
            'lacks "python_workers": wrangler refuses the project ("The `python_workers` compatibility flag '
            'is required to use Python."); add compatibility_flags = ["python_workers"]',
        )
    return date


def _is_date(value: object) -> bool:
    # wrangler checks `new Date(value)`, which takes month 01-12 and day 01-31 whatever the month
    # (2026-02-30 is March 2nd to V8), and workerd runs such a date (miniflare 4 serves with
    # compatibilityDate "2024-02-30"); workerd refuses any other form than YYYY-MM-DD ("2024-1-1").
    match = re.fullmatch(r"\d{4}-(\d{2})-(\d{2})", value) if isinstance(value, str) else None
    return match is not None and 1 <= int(match[1]) <= 12 and 1 <= int(match[2]) <= 31


def unsupported_bindings(config: Config) -> dict[str, UnsupportedBinding]:
    """``env`` names of bindings durable does not emulate, each with what using it raises; warns once each."""
    found: dict[str, UnsupportedBinding] = {}

    def add(name: object, what: str, where: str) -> None:
        if not isinstance(name, str) or not name:
            return
        message = (
            f"env.{name} is {what} (`{config.where(where)}` in {config.path.name}), which durable does not "
            "emulate; run this part with `pywrangler dev`, or replace env." + name + " in tests"
        )
        found[name] = UnsupportedBinding(message)
        config.warnings.append(
            f"{config.path}: `{config.where(where)}`: env.{name} is {what}: not emulated; using it raises"
        )

    for key, (what, name_key) in _LIST_BINDINGS.items():
        items = config.data.get(key)
        if isinstance(items, dict) and key == "send_email":
            items = [items]
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    add(item.get(name_key), what, f"{key}[{i}]")
    for key, what in _OBJECT_BINDINGS.items():
        item = config.data.get(key)
        if isinstance(item, dict):
            if item.get("binding") is not None:
                add(item.get("binding"), what, key)
            elif key == "assets":
                config.warn("assets", "is not served by durable: requests all go to the Worker")
    queues = config.data.get("queues")
    if isinstance(queues, dict):
        for i, item in enumerate(queues.get("producers") or []):
            if isinstance(item, dict):
                add(item.get("binding"), "a Queue producer", f"queues.producers[{i}]")
        if queues.get("consumers"):
            config.warn("queues.consumers", "is not run by durable: no queue() handler is called")
    triggers = config.data.get("triggers")
    if isinstance(triggers, dict) and triggers.get("crons"):
        config.warn(
            "triggers.crons",
            "is not run by durable: no scheduled() handler is called on a schedule "
            "(run it from a test with python_workers.scheduled(project, runtime, cron=...))",
        )
    return found


# -- migrations -----------------------------------------------------------------------------------------


@dataclass
class Classes:
    """What the migrations leave: each live class's backend, and the classes they retired."""

    kinds: dict[str, str] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)  # class name -> how (deleted in / renamed to)
    any_migration: bool = False


def storage_kinds(config: Config) -> Classes:
    """Apply ``migrations`` in order, as wrangler dev does (class-names-sqlite.ts).

    Within one migration: ``deleted_classes``, then ``renamed_classes``, then ``new_classes``
    (key-value), then ``new_sqlite_classes``. Deleting or renaming a class that does not exist,
    or creating one that does, is an error with wrangler's message.
    """
    migrations = config.data.get("migrations", [])
    if not isinstance(migrations, list):
        raise config.error("migrations", "must be a list of migrations")
    classes = Classes(any_migration=bool(migrations))
    kinds = classes.kinds
    for i, migration in enumerate(migrations):
        where = f"migrations[{i}]"
        if not isinstance(migration, dict):
            raise config.error(where, "must be an object with a tag and new_sqlite_classes / new_classes")
        if not isinstance(migration.get("tag"), str):
            # wrangler: '"migrations[0]" should have a string "tag" field.'
            raise config.error(f"{where}.tag", 'is required: a string naming the migration, e.g. "v1"')
        extra = sorted(
            set(migration)
            - {"tag", "new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", "transferred_classes"}
        )
        if extra:
            config.warn(where, "has unexpected fields: " + ", ".join(f'"{k}"' for k in extra) + " (ignored)")
        deleted = _names(config, migration, f"{where}.deleted_classes")
        for name in deleted:
            if kinds.pop(name, None) is None:
                raise config.error(
                    f"{where}.deleted_classes",
                    f"Cannot apply deleted_classes migration to non-existent class {name} (wrangler's error)",
                )
            classes.retired[name] = f"deleted by {where} (tag {migration['tag']!r})"
        for j, item in enumerate(_pairs(config, migration, f"{where}.renamed_classes", ("from", "to"))):
            old, new = item["from"], item["to"]
            if old not in kinds:
                raise config.error(
                    f"{where}.renamed_classes[{j}]",
                    f"Cannot apply renamed_classes migration to non-existent class {old} (wrangler's error)",
                )
            kinds[new] = kinds.pop(old)
            classes.retired[old] = f"renamed to {new} by {where} (tag {migration['tag']!r})"
            classes.retired.pop(new, None)
        for j, item in enumerate(
            _pairs(config, migration, f"{where}.transferred_classes", ("from", "from_script", "to"))
        ):
            config.warn(
                f"{where}.transferred_classes[{j}]",
                f"moves the objects of {item['from']} from the Worker {item['from_script']!r}, which durable does "
                f"not have: {item['to']} starts empty, SQLite-backed",
            )
            kinds.setdefault(item["to"], "sqlite")
        for key, kind in (("new_classes", "kv"), ("new_sqlite_classes", "sqlite")):
            for name in _names(config, migration, f"{where}.{key}"):
                if name in kinds:
                    raise config.error(
                        f"{where}.{key}", f"Cannot apply {key} migration to existing class {name} (wrangler's error)"
                    )
                kinds[name] = kind
                classes.retired.pop(name, None)
    exports = config.data.get("exports")
    if isinstance(exports, dict):  # wrangler's experimental declarative alternative to migrations
        for name, entry in exports.items():
            if isinstance(entry, dict) and entry.get("type") == "durable-object":
                if entry.get("state", "created") in ("created", "expecting-transfer"):
                    kinds[name] = "sqlite" if entry.get("storage") == "sqlite" else "kv"
                    classes.any_migration = True
    return classes


def _names(config: Config, migration: dict[str, Any], where: str) -> list[str]:
    names = migration.get(where.rsplit(".", 1)[1], [])
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise config.error(where, "must be a list of class names")
    return names


def _pairs(config: Config, migration: dict[str, Any], where: str, keys: tuple[str, ...]) -> list[dict[str, str]]:
    items = migration.get(where.rsplit(".", 1)[1], [])
    shape = "{" + ", ".join(f"{k}: string" for k in keys) + "}"
    if not isinstance(items, list):
        raise config.error(where, f"must be a list of {shape} objects")
    for j, item in enumerate(items):
        if not (isinstance(item, dict) and all(isinstance(item.get(k), str) for k in keys)):
            raise config.error(f"{where}[{j}]", f"must be an object {shape}")
    return items
