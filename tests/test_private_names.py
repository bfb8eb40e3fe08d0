"""No module of ``durable`` uses another module's ``_private`` names (issue 12, ../shared/STYLE.md).

Each module parses with ``ast``. A private name (``_x``, not a dunder) belongs to the modules whose
classes define it (``self._x = ...``, ``def _x``, a class attribute, a ``__slots__`` entry). An
access ``x._name`` is fine when ``x`` is ``self`` or ``cls``, or when ``_name`` belongs to this
module and to no other. Everything else must go through a named interface (``runtime.loop``,
``gate.idle``, ``env.bind``, ``_stub.host_of``...), or be listed in ``ALLOWED`` with its reason.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "durable"

# (module path under durable/, attribute): why it stays. Keep it short; shrink it when you can.
ALLOWED: dict[tuple[str, str], str] = {
    # The NoPublicConstructor pattern (_util.py): the library mints instances with Cls._create.
    ("_namespace.py", "_create"): "NoPublicConstructor",
    ("_runtime.py", "_create"): "NoPublicConstructor",
    # asyncio internals reproduced on purpose (issue 12 item 6 keeps them in one place).
    ("_eager.py", "_asyncio_future_blocking"): "asyncio's Task stepping protocol",
    ("_stub.py", "_log_destroy_pending"): "asyncio.Task's flag for tasks ended with their loop",
    ("_stub.py", "_format_coroutine"): "asyncio's task repr of its coroutine, wrapped to show a promise",
    ("_eager.py", "_swap_current_task"): "asyncio's current task, set for a hand-stepped event (3.12+)",
    ("_eager.py", "_current_tasks"): "asyncio's current task, set for a hand-stepped event (3.11)",
    ("_output_gate.py", "_callbacks"): "a C Future's done callbacks, run in one loop callback (_release_together)",
    # Names that this module defines too, on another instance of its own class (the static rule
    # cannot tell them from another module's names of the same spelling).
    ("_id.py", "_namespace"): "DurableObjectId's own field (equality, factory checks)",
    ("_stub.py", "_host"): "RpcPromise/Stub fields of this module",
    ("_stub.py", "_stub"): "RpcPromise's own field",
    ("_http.py", "_drain"): "ExecutionContext's own method, behind _http.drain()",
    ("_http.py", "_tasks"): "ExecutionContext's own field, read by _http.drain() (also a field of _hibernation)",
    ("_hibernation.py", "_tasks"): "HibernationManager's own field, from a closure of this module",
}


def _modules() -> dict[str, ast.Module]:
    return {
        p.relative_to(PACKAGE).as_posix(): ast.parse(p.read_text(encoding="utf-8"))
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _owners(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Private name -> the modules whose classes define it."""
    owners: dict[str, set[str]] = defaultdict(set)
    for module, tree in modules.items():
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for node in ast.walk(cls):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not cls:
                    owners[node.name].add(module)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                        owners[node.attr].add(module)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    owners[node.id].add(module)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _private(node.value):
                    owners[node.value].add(module)  # __slots__, object.__setattr__(self, "_x", ...)
    return owners


def violations(modules: dict[str, ast.Module], allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Every access of another module's private name, as ``module:line: expression``."""
    allowed = ALLOWED if allowed is None else allowed
    owners = _owners(modules)
    found = []
    for module, tree in modules.items():
        own_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            base = node.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or base.id in own_classes):
                continue
            if owners.get(node.attr) == {module} or (module, node.attr) in allowed:
                continue
            found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    return found


def _entry(found: str) -> tuple[str, str]:
    """``("_host.py", "_hex")`` from ``"_host.py:12: oid._hex"``."""
    module, _, expression = found.split(":", 2)
    return module, expression.rsplit(".", 1)[1]


class TestPrivateNames:
    """Modules meet through named interfaces, never through each other's private names."""

    def test_no_module_uses_another_modules_private_names(self) -> None:
        """No ``x._name`` reaches a private name another module defines, outside the allow-list."""
        assert violations(_modules()) == []

    def test_every_allowed_entry_is_still_needed(self) -> None:
        """An allow-list entry whose access is gone is dropped, so the list only shrinks."""
        modules = _modules()
        needed = {_entry(found) for found in violations(modules, allowed={})}
        assert sorted(set(ALLOWED) - needed) == []

    def test_the_check_finds_a_reach_into_the_runtime(self) -> None:
        """The rule flags ``runtime._closed`` read from another module, as the host did before."""
        modules = {
            "_runtime.py": ast.parse("class Runtime:\n    def __init__(self):\n        self._closed = False\n"),
            "_host.py": ast.parse(
                "class Host:\n    def f(self, runtime):\n        return runtime._closed or self._own\n"
            ),
        }
        assert violations(modules) == ["_host.py:3: runtime._closed"]

    def test_the_runtime_seams_are_not_allow_listed(self) -> None:
        """Runtime, scheduler, namespace and env privates never appear in the allow-list."""
        forbidden = {
            "_alarms",
            "_closed",
            "_check_open",
            "_host_busy",
            "_host_idle",
            "_unarmed",
            "_locks",
            "_waiters",
            "_bind",
            "_ids",
            "_list_ids",
            "_host_by_hex",
        }
        assert not {attr for (_, attr) in ALLOWED} & forbidden
