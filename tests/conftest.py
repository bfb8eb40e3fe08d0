"""Shared test configuration.

``DURABLE_TEST_LOOP=uvloop`` runs every asyncio test on uvloop's event loop instead of asyncio's
own (``.ci/run`` does, once): ``durable serve`` runs the runtime on uvloop where it is installed,
and the eager event start in ``durable/_host.py`` must behave the same on both loops. That pass
runs only the tests that run on pytest-asyncio's loop (async tests, and tests with an async
fixture): the others (sync tests, subprocesses, tests that make their own loop with
``asyncio.run`` or ``asyncio.new_event_loop``) never touch the loop it changes, so on the same
interpreter they would repeat the README pass's run exactly; they are deselected, not skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

if os.environ.get("DURABLE_TEST_LOOP") == "uvloop":

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        """uvloop's loop for every asyncio test (pytest-asyncio's loop-factory hook)."""
        import uvloop

        return {"uvloop": uvloop.new_event_loop}

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        """Deselect the tests that do not run on pytest-asyncio's loop (see the module docstring)."""
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            (kept if _runs_on_the_test_loop(item) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept


def _runs_on_the_test_loop(item: pytest.Item) -> bool:
    """Whether pytest-asyncio runs ``item`` or one of its fixtures on its event loop."""
    import pytest_asyncio

    if pytest_asyncio.is_async_test(item):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # not a function item: keep it
        return True
    return any(
        inspect.iscoroutinefunction(definition.func) or inspect.isasyncgenfunction(definition.func)
        for definitions in info.name2fixturedefs.values()
        for definition in definitions
    )


@pytest.fixture
def stub(durable_runtime: Any, request: pytest.FixtureRequest) -> Any:
    """A stub of the test module's ``Obj`` class, named "a", in the in-memory ``durable_runtime``."""
    return durable_runtime.namespace(request.module.Obj).get_by_name("a")


@pytest.fixture
def python_workers_shims() -> Iterator[None]:
    """The Python Workers shims installed for one test, uninstalled afterwards (the modules of
    that layer use it for every test: ``pytestmark = pytest.mark.usefixtures(...)``)."""
    from durable.compat import python_workers

    python_workers.install()
    try:
        yield
    finally:
        python_workers.uninstall()
