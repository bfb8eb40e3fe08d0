"""The public surface: __all__ matches what durable exports, and exports present as durable.X."""

from __future__ import annotations

import durable

CONTRACT = {
    # Names that docs/api.md promises; dropping or renaming one breaks users' code.
    "AlarmInfo", "DataCloneError", "DurableError", "DurableObject", "DurableObjectId", "Env", "Namespace",
    "Request", "Response", "Runtime", "SqlCursor", "SqlError", "SqlStorage", "State", "Storage",
    "StorageLimitError", "Stub", "WorkerEntrypoint", "asgi_app",
}  # fmt: skip


class TestExports:
    def test_all_is_sorted_and_unique(self) -> None:
        """__all__ is sorted and lists each name once."""
        assert durable.__all__ == sorted(set(durable.__all__))

    def test_all_matches_public_attributes(self) -> None:
        """Every public attribute of the package is in __all__ (except submodules), and vice versa."""
        public = {
            name
            for name, value in vars(durable).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == "durable"
        }
        assert public == set(durable.__all__)

    def test_contract_names_are_exported(self) -> None:
        """Every name the API contract promises is exported."""
        assert set(durable.__all__) >= CONTRACT

    def test_exports_present_as_durable(self) -> None:
        """Exported classes and functions show the public module, not the private one."""
        for name in durable.__all__:
            assert getattr(durable, name).__module__ == "durable", name

    def test_public_submodules_import(self) -> None:
        """durable.testing and durable.pytest_plugin are importable and list their names."""
        from durable import pytest_plugin, testing

        for module in (testing, pytest_plugin):
            assert all(hasattr(module, name) for name in module.__all__)

    def test_testing_reachable_from_the_package(self) -> None:
        """durable.testing works after a plain `import durable`, as the contract spells it."""
        import subprocess
        import sys

        code = "import durable; print(durable.testing.MockClock(start=5).time())"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "5.0"
