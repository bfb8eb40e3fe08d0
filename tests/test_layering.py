"""The layer table at the top of ``durable/__init__.py`` is true: every import follows it.

The table is parsed from the package docstring and every module's imports from its source (with
``ast``, so imports inside functions count; those under ``if TYPE_CHECKING:`` do not).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import durable

PACKAGE = Path(durable.__file__).parent

_LAYER_START = re.compile(r"^\s+(\d+)\s{2,}(.*)$")


def layer_table(doc: str) -> dict[str, int]:
    """The layer of every unit the table names (``durable``, ``compat``, ``_sql``...)."""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Layering."))
    table: dict[str, int] = {}
    layer: int | None = None
    in_modules = False
    for line in lines[start + 1 :]:
        if layer is not None and not line.strip():
            break  # the blank line after the table
        m = _LAYER_START.match(line)
        if m is not None:
            layer, text, in_modules = int(m.group(1)), m.group(2), True
        elif layer is None or not in_modules:
            continue  # the introduction, or a role's continuation
        else:
            text = line
        modules, arrow, _ = text.partition("--")
        for name in modules.split(","):
            if name.strip():
                assert name.strip() not in table, f"{name.strip()} is listed twice in the layer table"
                table[name.strip()] = layer
        if arrow:
            in_modules = False
    return table


def unit_of(module: str) -> str:
    """The table's name for a dotted module name: ``durable._sql`` -> ``_sql``."""
    parts = module.split(".")
    assert parts[0] == "durable", module
    if len(parts) == 1:
        return "durable"
    return parts[1]  # durable.compat.python_workers.js -> compat


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """The dotted name of the module at ``path`` in the package at ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path, root: Path = PACKAGE) -> Iterator[tuple[str, list[str], int]]:
    """``(module, names, line)`` for every import in ``path`` that runs, however deeply nested."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, list[str], int]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                yield from visit(branch)
            return
        if isinstance(node, ast.Import):
            for imported in node.names:
                yield imported.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [imported.name for imported in node.names]
            if node.module is None:  # from . import testing: each name is a module
                for submodule in names:
                    yield f"{module}.{submodule}", [], node.lineno
            else:
                yield module, names, node.lineno
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(encoding="utf-8")))


def package_graph(root: Path = PACKAGE) -> dict[str, dict[str, str]]:
    """unit -> {imported unit: where (file:line)}, for imports of the package's own modules."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(root.rglob("*.py")):
        unit = unit_of(module_name(path, root))
        edges = graph.setdefault(unit, {})
        for module, _, line in runtime_imports(path, root):
            if module != "durable" and not module.startswith("durable."):
                continue
            target = unit_of(module)
            if target != unit:
                edges.setdefault(target, f"{path.relative_to(root.parent)}:{line}")
    return graph


def find_cycles(graph: dict[str, dict[str, str]]) -> list[str]:
    """The import cycles of ``graph``, each as ``a -> b -> a (at file:line)``."""
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for target in graph.get(unit, {}):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]) + f" (at {graph[unit][target]})")
            elif target not in state:
                walk(target, [*path, target])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            walk(unit, [unit])
    return cycles


TABLE = layer_table(durable.__doc__ or "")


class TestTheTable:
    def test_the_table_is_parsed(self) -> None:
        """The table names the lowest and the highest layers' modules."""
        assert TABLE["_sqlite"] == 0 and TABLE["_sql"] == 1 and TABLE["durable"] == 7
        assert TABLE["compat"] == max(TABLE.values())

    def test_every_module_is_in_the_table_once(self) -> None:
        """Every module of the package has a layer, and the table names no module that does not exist."""
        units = {unit_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
        assert sorted(units - TABLE.keys()) == [], "modules missing from the layer table"
        assert sorted(TABLE.keys() - units) == [], "the layer table names modules that do not exist"


class TestImports:
    def test_no_module_imports_a_higher_layer(self) -> None:
        """A module imports only from its own layer or lower ones."""
        upward = [
            f"{where}: {unit} (layer {TABLE[unit]}) imports {target} (layer {TABLE[target]})"
            for unit, edges in package_graph().items()
            for target, where in edges.items()
            if TABLE[target] > TABLE[unit]
        ]
        assert upward == []

    def test_no_import_cycles(self) -> None:
        """Imports between modules of one layer form no cycle (so the layers order every import)."""
        assert find_cycles(package_graph()) == []

    @pytest.mark.parametrize(
        ("unit", "forbidden"),
        [
            ("_sqlite", {"asyncio", "durable._object", "durable._storage", "durable._host"}),
            ("_kvcache", {"asyncio", "durable._object", "durable._storage", "durable._host"}),
            ("_dbmeta", {"asyncio", "durable._object", "durable._storage", "durable._host"}),
            ("_dbfile", {"asyncio", "durable._object", "durable._storage", "durable._host"}),
            ("_http", {"durable._object", "durable._host", "durable._state"}),
            ("_websocket", {"durable._object", "durable._host", "durable._state"}),
        ],
    )
    def test_what_the_notes_say(self, unit: str, forbidden: set[str]) -> None:
        """_sqlite knows nothing of objects or the event loop; _http and _websocket nothing of objects."""
        found = {module for module, _, _ in runtime_imports(PACKAGE / f"{unit}.py")} & forbidden
        assert found == set()


class TestTheChecks:
    def test_in_function_imports_count_and_type_checking_ones_do_not(self, tmp_path: Path) -> None:
        """The import reader sees imports inside functions, and skips those under TYPE_CHECKING."""
        source = tmp_path / "durable" / "_x.py"
        source.parent.mkdir()
        source.write_text(
            "from typing import TYPE_CHECKING\n"
            "from ._a import b\n"
            "if TYPE_CHECKING:\n    from ._storage import Storage\n"
            "def f() -> None:\n    from ._sql import SqlStorage\n    from . import testing\n"
        )
        found = [(module, names) for module, names, _ in runtime_imports(source, source.parent)]
        assert found == [
            ("typing", ["TYPE_CHECKING"]),
            ("durable._a", ["b"]),
            ("durable._sql", ["SqlStorage"]),
            ("durable.testing", []),
        ]

    def test_a_cycle_is_found(self) -> None:
        """Two modules importing each other (as _sql and _storage once did) make a cycle."""
        graph = {"_sql": {"_storage": "durable/_sql.py:39"}, "_storage": {"_sql": "durable/_storage.py:891"}}
        assert find_cycles(graph) == ["_sql -> _storage -> _sql (at durable/_storage.py:891)"]


class TestAsgiUsesSupportedNames:
    def test_no_private_names(self) -> None:
        """durable.asgi imports no private name and reads no private member of another object."""
        tree = ast.parse((PACKAGE / "asgi.py").read_text(encoding="utf-8"))
        private: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                private += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    private.append(f"line {node.lineno}: reads .{node.attr}")
        assert private == []
