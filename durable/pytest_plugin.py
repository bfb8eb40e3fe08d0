"""The pytest plugin of `durable`, registered through the ``pytest11`` entry point.

Fixtures:
    durable_runtime: a fresh in-memory :class:`durable.Runtime` per test, closed afterwards (so
        no storage or alarm leaks from one test to the next). It uses the ``mock_clock`` fixture's
        clock when the test also asks for ``mock_clock``.
    mock_clock: a :class:`durable.testing.MockClock` for the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._clock import MockClock
from ._runtime import Runtime

__all__ = ["durable_runtime", "mock_clock"]


@pytest.fixture
def mock_clock() -> MockClock:
    """A mock clock, starting at the real time now; move it with ``await mock_clock.advance(s)``."""
    return MockClock()


@pytest.fixture
async def durable_runtime(request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    """A fresh in-memory runtime for one test, closed when the test ends."""
    clock = request.getfixturevalue("mock_clock") if "mock_clock" in request.fixturenames else None
    runtime = Runtime(clock=clock)
    try:
        yield runtime
    finally:
        await runtime.aclose()
