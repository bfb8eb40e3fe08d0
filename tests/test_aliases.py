"""The camelCase aliases: one table (``durable/_aliases.py``), seen by type checkers and at run time.

``ALIASES`` is the source of truth: ``@camel_aliases`` applies it at run time, and each class listed
there ends with an ``if TYPE_CHECKING:`` block declaring the same aliases for type checkers. These
tests fail when the two differ (a renamed class or method can no longer drop its aliases silently);
the failure message shows the block to paste. ``python tests/test_aliases.py`` prints every block.

The tests at the end call the aliases with Cloudflare's spellings and no ``type: ignore``: mypy
``--strict`` checks this file in CI, so an alias missing from the declarations fails type checking.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

import durable
from durable._aliases import ALIASES

PACKAGE = Path(durable.__file__).parent


@dataclass(frozen=True)
class AliasedClass:
    """A class decorated with ``@camel_aliases``, as the source shows it."""

    module: Path
    node: ast.ClassDef


def render_block(class_name: str, node: ast.ClassDef | None = None) -> str:
    """The declaration block that ends the body of ``class_name`` (top-level class, 4-space indent).

    A target declared without a value (a dataclass field: ``retry_count: int``) is no name in the
    class body for the linter, so its line carries ``# noqa: F821``; pass the class's ``node``.
    """
    fields = set()
    if node is not None:
        fields = {
            s.target.id
            for s in node.body
            if isinstance(s, ast.AnnAssign) and s.value is None and isinstance(s.target, ast.Name)
        }
    lines = ["    if TYPE_CHECKING:  # generated from ALIASES in durable/_aliases.py (tests/test_aliases.py)"]
    for alias, target in ALIASES[class_name].items():
        noqa = "  # noqa: F821 - a dataclass field" if target in fields else ""
        lines.append(f"        {alias} = {target}{noqa}")
    return "\n".join(lines)


@functools.cache  # the package's sources, parsed once per run rather than once per test (~0.5 s each)
def aliased_classes() -> dict[str, AliasedClass]:
    """Every class of the package decorated with ``@camel_aliases``, by name."""
    found: dict[str, AliasedClass] = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "camel_aliases" for d in node.decorator_list
            ):
                assert node.name not in found, f"two classes named {node.name} use @camel_aliases"
                found[node.name] = AliasedClass(module, node)
    return found


def declared_aliases(node: ast.ClassDef) -> list[tuple[str, str]] | None:
    """The ``(alias, target)`` pairs of the ``if TYPE_CHECKING:`` block ending the class, or None."""
    last = node.body[-1]
    if not (isinstance(last, ast.If) and isinstance(last.test, ast.Name) and last.test.id == "TYPE_CHECKING"):
        return None
    pairs: list[tuple[str, str]] = []
    for stmt in last.body:
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Name)
        ):
            return None
        pairs.append((stmt.targets[0].id, stmt.value.id))
    return pairs


class TestDeclarations:
    """The type checkers' declarations and the run-time table agree."""

    def test_every_decorated_class_is_in_the_table(self) -> None:
        """Each class using ``@camel_aliases`` has a table entry, and each entry names such a class."""
        assert sorted(aliased_classes()) == sorted(ALIASES)

    @pytest.mark.parametrize("class_name", sorted(ALIASES))
    def test_class_ends_with_the_generated_block(self, class_name: str) -> None:
        """The class body ends with an ``if TYPE_CHECKING:`` block listing exactly the table's aliases."""
        found = aliased_classes()[class_name]
        expected = list(ALIASES[class_name].items())
        where = f"{found.module.relative_to(PACKAGE.parent)}, class {class_name}"
        assert declared_aliases(found.node) == expected, (
            f"{where} must end with this block:\n\n{render_block(class_name, found.node)}\n"
        )

    @pytest.mark.parametrize("class_name", sorted(ALIASES))
    def test_aliases_are_the_same_objects_at_run_time(self, class_name: str) -> None:
        """Each alias is the very function or property it names (no wrapper)."""
        found = aliased_classes()[class_name]
        module_name = ".".join(found.module.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = __import__(module_name, fromlist=[class_name])
        cls = getattr(module, class_name)
        for alias, target in ALIASES[class_name].items():
            owner = next(k for k in cls.__mro__ if target in k.__dict__)
            assert cls.__dict__[alias] is owner.__dict__[target], f"{class_name}.{alias}"

    def test_render_block_matches_the_source_text(self) -> None:
        """The block in the source is the generated text, so regenerating it changes nothing."""
        for class_name, found in aliased_classes().items():
            assert render_block(class_name, found.node) in found.module.read_text(encoding="utf-8"), class_name


class TestTypedUse:
    """Cloudflare's spellings type-check (mypy --strict runs over this file) and behave as the snake names."""

    async def test_namespace_and_id_aliases(self) -> None:
        """``idFromName``, ``idFromString``, ``newUniqueId``, ``getByName`` and ``toString`` are typed."""
        async with durable.Runtime() as runtime:
            ns = runtime.namespace(durable.Counter)
            oid = ns.idFromName("a")
            assert ns.idFromString(oid.toString()) == oid
            assert ns.newUniqueId().name is None
            assert await ns.getByName("a").getCounterValue() == 0

    async def test_storage_and_sql_aliases(self) -> None:
        """Storage, transaction and SQL aliases type-check and return what the snake names return."""
        async with durable.Runtime() as runtime:
            stub = runtime.namespace(durable.Counter).get_by_name("a")

            async def body(obj: durable.DurableObject, ctx: durable.State) -> tuple[object, ...]:
                storage = ctx.storage
                await storage.put("k", 1)
                await storage.deleteAll()
                assert await storage.getAlarm() is None
                cursor = storage.sql.exec("SELECT 1 AS x")
                names = cursor.columnNames
                rows = cursor.toArray()
                return names, rows, cursor.rowsRead >= 0, storage.sql.databaseSize == storage.sql.database_size

            assert await durable.testing.run_in_object(stub, body) == (["x"], [{"x": 1}], True, True)

    def test_blocking_namespace_aliases(self) -> None:
        """``BlockingNamespace`` has the same spellings as ``Namespace``, typed."""
        with durable.BlockingRuntime() as runtime:
            ns = runtime.namespace(durable.Counter)
            oid = ns.idFromName("a")
            assert ns.idFromString(str(oid)) == oid and ns.newUniqueId() != oid
            assert ns.getByName("a").increment(2) == 2


if __name__ == "__main__":  # print every declaration block, to paste at the end of its class
    for name, info in sorted(aliased_classes().items()):
        print(f"# {info.module.relative_to(PACKAGE.parent)}, end of class {name}:\n{render_block(name, info.node)}\n")
