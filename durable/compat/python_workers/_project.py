"""Loading a Python Workers project: its ``wrangler.json`` / ``wrangler.jsonc`` / ``wrangler.toml``.

Read fields: ``main`` (the entry module, relative to the config file), ``durable_objects.bindings``
(``name`` -> ``class_name``), ``migrations`` (``new_sqlite_classes`` -> ``storage="sqlite"``,
``new_classes`` -> ``storage="kv"``; with no migrations at all a bound class is SQLite-backed, as
new classes are today), ``vars``, ``compatibility_date`` / ``compatibility_flags`` and, with
``env=``, an ``[env.NAME]`` section (``_wrangler.py`` applies wrangler's rules). Bindings of other
kinds become :class:`UnsupportedBinding` placeholders. An invalid field raises
:class:`ProjectError` naming the file and the field; what wrangler only warns about is in
:attr:`Project.warnings`.

The entry module is imported with its directory first on ``sys.path`` (pywrangler puts ``src/``
there too) and the shims installed; it serves its ``Default`` class, or a legacy module-level
``on_fetch(request, env, ctx)``.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import durable

from ..._object import bind
from ._devvars import dev_vars
from ._entrypoints import legacy_worker, set_current_env
from ._wrangler import (
    CONFIG_NAMES,
    Classes,
    Config,
    ProjectError,
    UnsupportedBinding,
    apply_environment,
    check_compatibility,
    check_vars,
    find_config,
    parse_jsonc,
    read_config,
    storage_kinds,
    unsupported_bindings,
)

__all__ = [
    "CONFIG_NAMES",
    "Binding",
    "Project",
    "ProjectError",
    "UnsupportedBinding",
    "load_project",
    "parse_jsonc",
    "project_of_entry",
    "register_bindings",
]

_log: Final = logging.getLogger("durable.compat.python_workers")


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
        vars: the config's ``vars``, with the local secrets of ``.dev.vars`` (or ``.env``) over them.
        compatibility_date: the config's ``compatibility_date`` (``None`` when absent).
        env: the wrangler environment applied (``--env``), ``None`` for the top level.
        warnings: what wrangler would warn about and what durable ignores (each names the field);
            :meth:`bind` logs them, ``durable serve`` prints them.
        unsupported: bindings durable does not emulate (KV, D1, R2, AI...), by ``env`` name: each
            raises ``NotImplementedError`` naming itself when used.
    """

    config: Path
    name: str | None
    main: Path
    module: ModuleType
    worker: type
    bindings: tuple[Binding, ...]
    vars: dict[str, Any] = field(default_factory=dict)
    compatibility_date: str | None = None
    env: str | None = None
    warnings: tuple[str, ...] = ()
    unsupported: dict[str, UnsupportedBinding] = field(default_factory=dict)

    def bind(self, runtime: durable.Runtime) -> None:
        """Register the bindings on ``runtime`` (``runtime.namespace(cls, name=..., storage=...)``) and the vars on its env.

        Also binds the :attr:`unsupported` placeholders, makes ``runtime.env`` what ``workers.env``
        returns and logs the :attr:`warnings` (logger ``durable.compat.python_workers``).

        Raises:
            ValueError: ``runtime.env`` already has a binding of one of these names.
        """
        for warning in self.warnings:
            _log.warning("%s", warning)
        register_bindings(runtime, [(b.name, b.cls, b.storage) for b in self.bindings])
        self.bind_env(runtime.env)
        set_current_env(runtime.env)

    def bind_env(self, env: durable.Env) -> None:
        """Add the vars and the :attr:`unsupported` placeholders to ``env`` (those it has already are kept)."""
        for key, placeholder in self.unsupported.items():
            if key not in env:
                bind(env, key, placeholder)
        for key, value in self.vars.items():
            if key in env:
                if env[key] != value:
                    raise ValueError(f"runtime env already has {key!r} with another value")
                continue
            # vars are part of the project, so the loader adds them where Runtime(vars=...) would have.
            bind(env, key, value)


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


def load_project(path: str | Path, *, env: str | None = None) -> Project:
    """Read a Python Workers project's config and import its entry module.

    Args:
        path: the project folder (holding ``wrangler.json``, ``wrangler.jsonc`` or
            ``wrangler.toml``: the first found in that order is read, as wrangler does) or the
            config file itself.
        env: a wrangler environment (``wrangler dev --env NAME``): its ``[env.NAME]`` section
            applies over the top level with wrangler's inheritance rules (bindings and ``vars``
            are not inherited; ``main``, ``compatibility_*``, ``migrations`` are).

    Installs the shims (:func:`durable.compat.python_workers.install`) first.

    Raises:
        ProjectError: the config is missing or invalid, the entry module fails to import, or a
            class it names does not exist; the message names the file and the field.
    """
    from . import install

    found, ignored = find_config(Path(path))
    path_ = found.resolve()
    config = apply_environment(path_, read_config(path_), env)
    config.warnings[:0] = ignored
    data = config.data

    main_value = data.get("main")
    if not isinstance(main_value, str) or not main_value:
        raise config.error("main", 'must name the entry module, e.g. "src/entry.py"')
    main = (path_.parent / main_value).resolve()
    if main.suffix != ".py":
        raise config.error("main", f"must be a Python file (.py), not {main_value!r}")
    if not main.is_file():
        raise config.error("main", f"names {main_value!r}, which does not exist ({main})")

    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise config.error("name", "must be a string")
    date = check_compatibility(config)
    raw_vars = check_vars(config)
    try:
        secrets, _ = dev_vars(path_.parent, config.env, secrets_declared=config.data.get("secrets") is not None)
    except ValueError as exc:
        raise ProjectError(str(exc)) from None
    raw_vars.update(_required_secrets(config, secrets, raw_vars))  # wrangler dev: local secrets override vars
    unsupported = unsupported_bindings(config)
    checked = _check_bindings(config, storage_kinds(config), set(raw_vars) | set(unsupported))
    config_file = path_

    install()
    module = _import_main(config_file, main)

    bindings: list[Binding] = []
    for i, (binding_name, class_name, kind) in enumerate(checked):
        cls = getattr(module, class_name, None)
        if cls is None:
            raise config.error(
                f"durable_objects.bindings[{i}].class_name",
                f"names {class_name!r}, which {main.name} does not define{_did_you_mean(module, class_name)}",
            )
        if not (isinstance(cls, type) and issubclass(cls, durable.DurableObject)):
            raise config.error(
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
        config=config_file,
        name=name,
        main=main,
        module=module,
        worker=worker,
        bindings=tuple(bindings),
        vars=raw_vars,
        compatibility_date=date,
        env=config.env,
        warnings=tuple(config.warnings),
        unsupported=unsupported,
    )


def _required_secrets(config: Config, secrets: dict[str, str], vars: Mapping[str, Any]) -> dict[str, str]:
    """``secrets`` as wrangler dev keeps them (``getVarsForDev``): with a ``secrets`` section in
    the config, only the keys ``secrets.required`` lists and those the config's ``vars`` already
    define, and each required one that no file (nor the process environment) defines is warned
    about; without the section, all of them."""
    section = config.data.get("secrets")
    if section is None:
        return secrets
    if not isinstance(section, dict):
        raise config.error("secrets", 'must be an object, e.g. {"required": ["API_KEY"]}')
    required = section.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise config.error("secrets.required", 'must be a list of secret names, e.g. {"required": ["API_KEY"]}')
    missing = [name for name in required if name not in secrets]
    if missing:
        config.warn(
            "secrets.required",
            f"names {', '.join(missing)}, which no .dev.vars or .env file (nor the process environment)"
            " defines: env has no such binding",
        )
    return {name: value for name, value in secrets.items() if name in required or name in vars}


_BINDING_KEYS: Final = frozenset({"name", "class_name", "script_name", "environment"})


def _check_bindings(config: Config, classes: Classes, taken: set[str]) -> list[tuple[str, str, str]]:
    """``(name, class_name, storage)`` of each Durable Object binding, checked as wrangler does."""
    durable_objects = config.data.get("durable_objects", {})
    if not isinstance(durable_objects, dict):
        raise config.error("durable_objects", "must be an object with a `bindings` list")
    raw_bindings = durable_objects.get("bindings", [])
    if not isinstance(raw_bindings, list):
        raise config.error("durable_objects.bindings", "must be a list of {name, class_name} objects")
    checked: list[tuple[str, str, str]] = []
    seen = set(taken)
    unmigrated: list[str] = []
    for i, item in enumerate(raw_bindings):
        where = f"durable_objects.bindings[{i}]"
        if not isinstance(item, dict):
            raise config.error(where, "must be an object with `name` and `class_name`")
        binding_name = item.get("name")
        class_name = item.get("class_name")
        if not isinstance(binding_name, str) or not binding_name:
            # wrangler takes any string, as for vars (the Worker reads getattr(self.env, "MY-DO")).
            raise config.error(f"{where}.name", f"must be a non-empty string naming the binding, not {binding_name!r}")
        if binding_name in seen:
            raise config.error(f"{where}.name", f"{binding_name!r} is bound twice (all bindings and vars share env)")
        seen.add(binding_name)
        if not isinstance(class_name, str) or not class_name.isidentifier():
            raise config.error(f"{where}.class_name", f"must be a class name, not {class_name!r}")
        if item.get("script_name") is not None:
            raise config.error(
                f"{where}.script_name",
                "names another Worker; durable serves one project, so bind classes of this one",
            )
        if "environment" in item:
            # wrangler: 'binding should have a "script_name" field if "environment" is present.'
            raise config.error(
                f"{where}.environment",
                'needs a "script_name" (it names an environment of another Worker): remove it to bind a class of this Worker',
            )
        extra = sorted(set(item) - _BINDING_KEYS)
        if extra:
            config.warn(where, "has unexpected fields: " + ", ".join(f'"{k}"' for k in extra) + " (ignored)")
        kind = classes.kinds.get(class_name)
        if kind is None:
            retired = classes.retired.get(class_name)
            if retired is not None:
                raise config.error(
                    f"{where}.class_name",
                    f"names {class_name!r}, which was {retired}: bind the class that holds those objects now, "
                    "or remove the binding (Cloudflare refuses a binding to a class no migration keeps)",
                )
            close = difflib.get_close_matches(class_name, list(classes.kinds), n=1)
            if close:  # a misspelt class_name, rather than a missing migration
                raise config.error(
                    f"{where}.class_name",
                    f"names {class_name!r}, which no migration creates; did you mean {close[0]!r} (which one does)?",
                )
            if classes.any_migration:
                raise config.error(
                    f"{where}.class_name",
                    f"names {class_name!r}, which no migration creates: add a migration with "
                    f'new_sqlite_classes = ["{class_name}"] (Cloudflare refuses a binding to a class no migration '
                    "created)",
                )
            unmigrated.append(class_name)
            kind = "sqlite"
        checked.append((binding_name, class_name, kind))
    if unmigrated:
        # wrangler warns: "you have configured `durable_objects` exported by this Worker (...), but no
        # `migrations` for them" (and `wrangler deploy` is then refused by Cloudflare).
        config.warn(
            "durable_objects",
            f"binds {', '.join(dict.fromkeys(unmigrated))} but there are no `migrations`: durable makes them "
            f'SQLite-backed; add a migration, e.g. {{"tag": "v1", "new_sqlite_classes": '
            f"{list(dict.fromkeys(unmigrated))}}} (Cloudflare needs one to deploy)".replace("'", '"'),
        )
    return checked


def _did_you_mean(module: ModuleType, class_name: str) -> str:
    names = [
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, durable.DurableObject) and value.__module__ == module.__name__
    ]
    close = difflib.get_close_matches(class_name, names, n=1) or difflib.get_close_matches(
        class_name.lower(), [n.lower() for n in names], n=1
    )
    if not close:
        return f" (its Durable Object classes: {', '.join(names)})" if names else ""
    match = next(n for n in names if n == close[0] or n.lower() == close[0])
    return f"; did you mean {match!r}?"


def is_project(path: str | Path) -> bool:
    """Whether ``path`` is a Python Workers project folder or a wrangler config file."""
    p = Path(path)
    if p.is_dir():
        return any((p / name).is_file() for name in CONFIG_NAMES)
    return p.name.startswith("wrangler.") and p.name.endswith((".jsonc", ".json", ".toml"))


def project_of_entry(file: str | Path, env: str | None = None) -> Path | None:
    """The wrangler config whose ``main`` is ``file``, looked for from its folder upwards; or None.

    ``wrangler dev src/entry.py`` in a project serves that project; so does ``durable serve``
    given a project's entry module. A config that cannot be read is passed over: the file is
    then served as a plain module, which names its own problem.
    """
    target = Path(file).resolve()
    for folder in target.parents:
        for name in CONFIG_NAMES:
            config = folder / name
            if not config.is_file():
                continue
            try:
                data = apply_environment(config, read_config(config), env).data
            except (ProjectError, OSError, UnicodeError):
                return None
            main = data.get("main")
            if isinstance(main, str) and main and (folder / main).resolve() == target:
                return config
            return None  # the nearest config is the project's, as wrangler finds it
    return None
