"""Shared test configuration.

``DURABLE_TEST_LOOP=uvloop`` runs every asyncio test on uvloop's event loop instead of asyncio's
own (``.ci/run`` does, once): ``durable serve`` runs the runtime on uvloop where it is installed,
and the eager event start in ``durable/_host.py`` must behave the same on both loops.
"""

from __future__ import annotations

import asyncio
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
