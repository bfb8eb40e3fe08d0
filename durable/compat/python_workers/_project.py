"""Loading a Python Workers project: its ``wrangler.jsonc`` / ``wrangler.json`` / ``wrangler.toml``.

Read fields: ``main`` (the entry module, relative to the config file), ``durable_objects.bindings``
(``name`` -> ``class_name``), ``migrations`` (``new_sqlite_classes`` -> ``storage="sqlite"``,
``new_classes`` -> ``storage="kv"``; a bound class no migration mentions is SQLite-backed, as
new classes are today), ``vars`` and ``compatibility_date``. Other fields are ignored. An invalid
field raises :class:`ProjectError` naming the file and the field.

The entry module is imported with its directory first on ``sys.path`` (pywrangler puts ``src/``
there too) and the shims installed; it serves its ``Default`` class, or a legacy module-level
``on_fetch(request, env, ctx)``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import re
import sys
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import durable

from ..._object import bind
from ._entrypoints import legacy_worker, set_current_env

__all__ = ["Binding", "Project", "ProjectError", "load_project", "parse_jsonc", "register_bindings"]

CONFIG_NAMES: Final = ("wrangler.jsonc", "wrangler.json", "wrangler.toml")


class ProjectError(ValueError):
    """A Python Workers project cannot be loaded: the message names the file and the field."""


@dataclass(frozen=True)
class Binding:
    """One Durable Object binding: ``env.<name>`` reaches the namespace of ``cls``."""

    name: str
    class_name: str
    cls: type
    storage: str


@dataclass
class Project:
    """A loaded Python Workers project.

    Attributes:
        config: the config file read.
        name: the config's ``name`` (``None`` when absent).
        main: the entry module's path.
        module: the imported entry module.
        worker: the class that serves HTTP (``Default``, or one made around ``on_fetch``).
        bindings: the Durable Object bindings, in config order.
        vars: the config's ``vars``.
        compatibility_date: the config's ``compatibility_date`` (``None`` when absent).
    """

    config: Path
    name: str | None
    main: Path
    module: ModuleType
    worker: type
    bindings: tuple[Binding, ...]
    vars: dict[str, Any] = field(default_factory=dict)
    compatibility_date: str | None = None

    def bind(self, runtime: durable.Runtime) -> None:
        """Register the bindings on ``runtime`` (``runtime.namespace(cls, name=..., storage=...)``) and the vars on its env.

        Also makes ``runtime.env`` what ``workers.env`` returns.

        Raises:
            ValueError: ``runtime.env`` already has a binding of one of these names.
        """
        register_bindings(runtime, [(b.name, b.cls, b.storage) for b in self.bindings])
        env = runtime.env
        for key, value in self.vars.items():
            if key in env:
                if env[key] != value:
                    raise ValueError(f"runtime env already has {key!r} with another value")
                continue
            # vars are part of the project, so the loader adds them where Runtime(vars=...) would have.
            bind(env, key, value)
        set_current_env(env)


def register_bindings(runtime: durable.Runtime, bindings: list[tuple[str, type, str | None]]) -> None:
    """Register ``(name, class, storage)`` bindings on ``runtime``, as wrangler binds them.

    Each class gets one namespace, keyed by the first name that binds it; a class bound under
    several names has them all on ``env`` for that one namespace, as in workerd, where bindings
    of one ``class_name`` are the same namespace (the same ids and the same objects: measured with
    miniflare 4, 2026-04-07, ``env.A.idFromName("x").equals(env.B.idFromName("x"))`` is true).
    ``storage`` ``None`` is the default (``"sqlite"``). A class bound again with another storage
    (which wrangler cannot express: a migration gives a class one backend) gets a namespace of
    its own under that name.

    Raises:
        ValueError: a name ``env`` already has.
    """
    namespaces: dict[tuple[type, str], durable.Namespace[Any]] = {}
    for name, cls, storage in bindings:
        key = (cls, storage or "sqlite")
        ns = namespaces.get(key)
        if ns is None:
            namespaces[key] = runtime.namespace(cls, name=name, storage=key[1])
        else:
            bind(runtime.env, name, ns)


# -- config files ---------------------------------------------------------------------------------


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
    return json.loads(stripped)


def _find_config(path: Path) -> Path:
    if path.is_dir():
        for name in CONFIG_NAMES:
            if (path / name).is_file():
                return path / name
        raise ProjectError(f"{path}: no wrangler.jsonc, wrangler.json or wrangler.toml in this folder")
    if not path.is_file():
        raise ProjectError(f"{path}: no such file or folder")
    if path.name.endswith((".jsonc", ".json", ".toml")):
        return path
    raise ProjectError(f"{path}: not a wrangler config (expected wrangler.jsonc, wrangler.json or wrangler.toml)")


def _read_config(config: Path) -> dict[str, Any]:
    text = config.read_text(encoding="utf-8-sig")  # a BOM is whitespace to wrangler
    try:
        data = tomllib.loads(text) if config.suffix == ".toml" else parse_jsonc(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{config}: invalid {config.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{config}: the top level must be an object")
    return data


def _field(config: Path, field_name: str, message: str) -> ProjectError:
    return ProjectError(f"{config}: `{field_name}` {message}")


def _storage_kinds(config: Path, data: dict[str, Any]) -> dict[str, str]:
    migrations = data.get("migrations", [])
    if not isinstance(migrations, list):
        raise _field(config, "migrations", "must be a list of migrations")
    kinds: dict[str, str] = {}
    for i, migration in enumerate(migrations):
        where = f"migrations[{i}]"
        if not isinstance(migration, dict):
            raise _field(config, where, "must be an object with a tag and new_sqlite_classes / new_classes")
        for key, kind in (("new_sqlite_classes", "sqlite"), ("new_classes", "kv")):
            names = migration.get(key, [])
            if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                raise _field(config, f"{where}.{key}", "must be a list of class names")
            for class_name in names:
                kinds[class_name] = kind
        renamed = migration.get("renamed_classes", [])
        if not isinstance(renamed, list):
            raise _field(config, f"{where}.renamed_classes", "must be a list of {from, to} objects")
        for j, item in enumerate(renamed):
            if not (isinstance(item, dict) and isinstance(item.get("from"), str) and isinstance(item.get("to"), str)):
                raise _field(config, f"{where}.renamed_classes[{j}]", "must be an object with string `from` and `to`")
            if item["from"] in kinds:
                kinds[item["to"]] = kinds.pop(item["from"])
        deleted = migration.get("deleted_classes", [])
        if not isinstance(deleted, list) or not all(isinstance(x, str) for x in deleted):
            raise _field(config, f"{where}.deleted_classes", "must be a list of class names")
        for class_name in deleted:
            kinds.pop(class_name, None)
    return kinds


def _import_main(config: Path, main: Path) -> ModuleType:
    name = main.stem if main.stem.isidentifier() else "durable_worker_entry"
    directory = str(main.parent)
    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, main)
    if spec is None or spec.loader is None:
        raise ProjectError(f"{config}: `main` {main} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module  # a fresh import: two projects may both have src/entry.py
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        details = "".join(traceback.format_exception(exc)).rstrip()
        raise ProjectError(f"{main} (the `main` of {config}) raised while loading:\n{details}") from exc
    return module


def load_project(path: str | Path) -> Project:
    """Read a Python Workers project's config and import its entry module.

    Args:
        path: the project folder (holding ``wrangler.jsonc``, ``wrangler.json`` or
            ``wrangler.toml``, looked for in that order) or the config file itself.

    Installs the shims (:func:`durable.compat.python_workers.install`) first.

    Raises:
        ProjectError: the config is missing or invalid, the entry module fails to import, or a
            class it names does not exist; the message names the file and the field.
    """
    from . import install

    config = _find_config(Path(path)).resolve()
    data = _read_config(config)

    main_value = data.get("main")
    if not isinstance(main_value, str) or not main_value:
        raise _field(config, "main", 'must name the entry module, e.g. "src/entry.py"')
    main = (config.parent / main_value).resolve()
    if main.suffix != ".py":
        raise _field(config, "main", f"must be a Python file (.py), not {main_value!r}")
    if not main.is_file():
        raise _field(config, "main", f"names {main_value!r}, which does not exist ({main})")

    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise _field(config, "name", "must be a string")

    date = data.get("compatibility_date")
    if date is not None:
        if isinstance(date, _dt.date):  # TOML parses an unquoted date
            date = date.isoformat()
        if not isinstance(date, str) or re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) is None:
            raise _field(config, "compatibility_date", f"must be a date as YYYY-MM-DD, not {date!r}")

    raw_vars = data.get("vars", {})
    if not isinstance(raw_vars, dict):
        raise _field(config, "vars", "must be an object of names to values")
    for key in raw_vars:
        if not key.isidentifier():
            raise _field(config, f"vars.{key}", "must be a name usable as an attribute (env.NAME)")

    durable_objects = data.get("durable_objects", {})
    if not isinstance(durable_objects, dict):
        raise _field(config, "durable_objects", "must be an object with a `bindings` list")
    raw_bindings = durable_objects.get("bindings", [])
    if not isinstance(raw_bindings, list):
        raise _field(config, "durable_objects.bindings", "must be a list of {name, class_name} objects")
    kinds = _storage_kinds(config, data)

    checked: list[tuple[str, str, str]] = []
    seen: set[str] = set(raw_vars)
    for i, item in enumerate(raw_bindings):
        where = f"durable_objects.bindings[{i}]"
        if not isinstance(item, dict):
            raise _field(config, where, "must be an object with `name` and `class_name`")
        binding_name = item.get("name")
        class_name = item.get("class_name")
        if not isinstance(binding_name, str) or not binding_name.isidentifier():
            raise _field(
                config, f"{where}.name", f"must be a name usable as an attribute (env.NAME), not {binding_name!r}"
            )
        if binding_name in seen:
            raise _field(config, f"{where}.name", f"{binding_name!r} is bound twice (bindings and vars share env)")
        seen.add(binding_name)
        if not isinstance(class_name, str) or not class_name.isidentifier():
            raise _field(config, f"{where}.class_name", f"must be a class name, not {class_name!r}")
        if item.get("script_name") is not None:
            raise _field(
                config,
                f"{where}.script_name",
                "names another Worker; durable serves one project, so bind classes of this one",
            )
        checked.append((binding_name, class_name, kinds.get(class_name, "sqlite")))

    install()
    module = _import_main(config, main)

    bindings: list[Binding] = []
    for i, (binding_name, class_name, kind) in enumerate(checked):
        cls = getattr(module, class_name, None)
        if cls is None:
            raise _field(
                config,
                f"durable_objects.bindings[{i}].class_name",
                f"names {class_name!r}, which {main.name} does not define",
            )
        if not (isinstance(cls, type) and issubclass(cls, durable.DurableObject)):
            raise _field(
                config,
                f"durable_objects.bindings[{i}].class_name",
                f"names {class_name!r}, which is not a DurableObject subclass (from workers import DurableObject)",
            )
        bindings.append(Binding(binding_name, class_name, cls, kind))

    worker = getattr(module, "Default", None)
    if worker is None:
        on_fetch = getattr(module, "on_fetch", None)
        if on_fetch is None:
            raise ProjectError(
                f"{main} (the `main` of {config}) defines neither a `Default` class "
                "(class Default(WorkerEntrypoint)) nor an `on_fetch` handler"
            )
        if not callable(on_fetch):
            raise ProjectError(f"{main}: `on_fetch` must be a function, not {type(on_fetch).__name__}")
        worker = legacy_worker(on_fetch)
    elif not (isinstance(worker, type) and issubclass(worker, durable.WorkerEntrypoint)):
        # workerd serves only the WorkerEntrypoint subclasses its introspection collects from the
        # main module (python-entrypoint-helper.ts): a plain class named Default serves nothing.
        raise ProjectError(
            f"{main}: `Default` must be a class with a fetch method (a WorkerEntrypoint subclass: "
            f"from workers import WorkerEntrypoint; class Default(WorkerEntrypoint)), not {worker!r}"
        )

    return Project(
        config=config,
        name=name,
        main=main,
        module=module,
        worker=worker,
        bindings=tuple(bindings),
        vars=dict(raw_vars),
        compatibility_date=date,
    )


def is_project(path: str | Path) -> bool:
    """Whether ``path`` is a Python Workers project folder or a wrangler config file."""
    p = Path(path)
    if p.is_dir():
        return any((p / name).is_file() for name in CONFIG_NAMES)
    return p.name.startswith("wrangler.") and p.name.endswith((".jsonc", ".json", ".toml"))
