"""The pytest plugin of `durable`, registered through the ``pytest11`` entry point (installing the
package is enough; disable it with ``-p no:durable``).

Fixtures:
    durable_runtime: a fresh in-memory :class:`durable.Runtime` per test, closed afterwards, so no
        storage, instance or alarm leaks from one test to the next. It runs on the clock of the
        ``mock_clock`` fixture when the test also asks for ``mock_clock``. Parametrized
        indirectly, it takes a dict of ``Runtime`` keyword options.
    mock_clock: a :class:`durable.testing.MockClock` for the test, starting at the real time
        (to the millisecond), or at its parameter when parametrized indirectly.

Design: both fixtures are *synchronous*. A ``Runtime`` needs no event loop to be built, so a sync
fixture works unchanged under every async runner: pytest-asyncio in auto or strict mode, and anyio's
plugin (which only runs async fixtures for tests marked ``@pytest.mark.anyio``); an async fixture
would need a different decorator for each. Closing is async, so the teardown runs
``runtime.aclose()`` on the loop the test used if that loop is still open (a module- or
session-scoped loop), and otherwise on a private loop: by then the test's runner has closed its
loop and cancelled whatever was still running on it.

The plugin also explains a missing runner: an async test (or an async fixture) that uses these
fixtures while no plugin runs coroutines fails with a message naming the fix, instead of pytest's
generic one.

Example::

    async def test_counter(durable_runtime, mock_clock):
        counters = durable_runtime.namespace(Counter)
        stub = counters.get_by_name("a")
        assert await stub.increment() == 1
        await mock_clock.advance(60)          # alarms due within the minute have run
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import pytest

from ._clock import MockClock
from ._runtime import Runtime

__all__ = ["durable_runtime", "mock_clock"]

_FIXTURES = ("durable_runtime", "mock_clock")


_ENTRY_POINT = "durable"
"""The plugin's name as the ``pytest11`` entry point registers it (``-p no:durable``)."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Let the plugin be named both ways, by its entry point and by its module.

    Installed, the plugin is loaded through its entry point, as ``durable``; a project that also
    names the module (``pytest_plugins = ["durable.pytest_plugin"]`` in conftest.py, or
    ``-p durable.pytest_plugin``) had pytest stop with "Plugin already registered under a
    different name". The other name is blocked once the plugin is registered under one, so that
    naming it again does nothing (called by pytest when it registers this module).
    """
    name = pluginmanager.get_name(sys.modules[__name__])
    other = {_ENTRY_POINT: __name__, __name__: _ENTRY_POINT}.get(name or "")
    if other is not None and pluginmanager.get_plugin(other) is None and not pluginmanager.is_blocked(other):
        pluginmanager.set_blocked(other)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--python-workers`` / ini ``durable_python_workers``: install the Python Workers shims."""
    group = parser.getgroup("durable")
    group.addoption(
        "--python-workers",
        action="store_true",
        default=False,
        help="make `import workers`, `js`, `pyodide` resolve to durable's stand-ins "
        "(durable.compat.python_workers.install()) before collection",
    )
    group.addoption(
        "--python-workers-strict",
        action="store_true",
        default=False,
        help="as --python-workers, and refuse tuple/bytearray over RPC and storage as the SDK does",
    )
    parser.addini(
        "durable_python_workers",
        type="bool",
        default=False,
        help="install durable's Python Workers shims (workers, js, pyodide) before collection",
    )
    parser.addini(
        "durable_python_workers_strict",
        type="bool",
        default=False,
        help="with durable_python_workers: strict value mode (the SDK's RPC refusals)",
    )


def _install_python_workers(config: pytest.Config, strict_option: object, option: object) -> None:
    strict = bool(strict_option or config.getini("durable_python_workers_strict"))
    if strict or option or config.getini("durable_python_workers"):
        from .compat import python_workers

        if not python_workers.installed():
            config.add_cleanup(python_workers.uninstall)
        python_workers.install(strict=strict)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Install the Python Workers shims before the first conftest.py is imported, when asked to.

    A project's conftest.py may import its entry module, which imports ``workers``.
    """
    known = early_config.known_args_namespace
    _install_python_workers(
        early_config, getattr(known, "python_workers_strict", False), getattr(known, "python_workers", False)
    )


def pytest_configure(config: pytest.Config) -> None:
    """Install the Python Workers shims when asked to (if not done already), before collection."""
    _install_python_workers(config, config.getoption("python_workers_strict"), config.getoption("python_workers"))


@pytest.fixture
def mock_clock(request: pytest.FixtureRequest) -> MockClock:
    """A mock clock, starting at the real time now (to the millisecond); move it with ``await mock_clock.advance(s)``.

    Parametrized indirectly, it starts at the parameter (seconds since the epoch), as
    ``MockClock(start)``: ``@pytest.mark.parametrize("mock_clock", [1_700_000_000], indirect=True)``.
    """
    if hasattr(request, "param"):
        return MockClock(request.param)  # (its TypeError or ValueError names what it takes)
    return MockClock()


@pytest.fixture
def durable_runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """A fresh in-memory runtime for one test, closed when the test ends.

    It uses the ``mock_clock`` fixture's clock if the test requests ``mock_clock`` too. Parametrized
    indirectly, it takes ``durable.Runtime`` keyword options: ``@pytest.mark.parametrize(
    "durable_runtime", [{"point_in_time_recovery": True}], indirect=True)``.
    """
    _check_anyio_backend(request)
    options = _runtime_options(request)
    if "mock_clock" in request.fixturenames:
        if "clock" in options:
            pytest.fail(
                "durable_runtime was given clock= as an option and the test requests mock_clock, "
                "which the runtime would use: leave one out",
                pytrace=False,
            )
        options["clock"] = request.getfixturevalue("mock_clock")
    runtime = Runtime(**options)
    try:
        yield runtime
    finally:
        _close(runtime)


def _runtime_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``Runtime`` options of an indirectly parametrized ``durable_runtime`` (else none)."""
    if not hasattr(request, "param"):
        return {}
    param: object = request.param
    if not isinstance(param, Mapping) or not all(isinstance(key, str) for key in param):
        pytest.fail(
            "durable_runtime parametrized indirectly takes a dict of durable.Runtime keyword options "
            f"(such as {{'idle_timeout': 5}}), not {type(param).__name__}",
            pytrace=False,
        )
    return dict(param)


def _close(runtime: Runtime) -> None:
    """Run ``runtime.aclose()`` to completion from synchronous teardown code."""
    if runtime.closed:
        return
    loop = runtime.loop
    if loop is not None and not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(runtime.aclose())
        return
    # The test's loop is gone (its runner closed it after cancelling what still ran), or the
    # runtime was never used on a loop: nothing is left on a loop, a private one does the rest.
    own = asyncio.new_event_loop()
    try:
        own.run_until_complete(runtime.aclose())
    finally:
        own.close()


def _check_anyio_backend(request: pytest.FixtureRequest) -> None:
    if "anyio_backend" not in request.fixturenames:
        return
    backend: Any = request.getfixturevalue("anyio_backend")
    name = backend[0] if isinstance(backend, tuple) else backend
    if name != "asyncio":
        pytest.fail(
            f"durable runs on asyncio, but this test runs on anyio's {name!r} backend. Define an "
            '`anyio_backend` fixture that returns "asyncio" (in conftest.py, for example).',
            pytrace=False,
        )


def _uses_durable(names: object) -> bool:
    return isinstance(names, list | tuple) and any(name in names for name in _FIXTURES)


def _failure(message: str) -> BaseException:
    """pytest's failure outcome, without traceback (what ``pytest.fail(..., pytrace=False)`` raises)."""
    return pytest.fail.Exception(message, pytrace=False)


def _no_runner_message(config: pytest.Config, what: str) -> str:
    lines = [f"durable: {what} is async, but no plugin ran it: async tests need an async test runner."]
    if config.pluginmanager.has_plugin("asyncio"):
        lines.append(
            "pytest-asyncio is installed but did not take it (strict mode): mark the test "
            "@pytest.mark.asyncio and async fixtures @pytest_asyncio.fixture, or set "
            'asyncio_mode = "auto" in your pytest configuration.'
        )
    else:
        lines.append(
            'Install pytest-asyncio (`pip install pytest-asyncio`) and set asyncio_mode = "auto" in '
            "your pytest configuration (or mark tests @pytest.mark.asyncio)."
        )
    lines.append(
        "Or use anyio's pytest plugin (installed with anyio): mark the test @pytest.mark.anyio, "
        'with an `anyio_backend` fixture returning "asyncio".'
    )
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Explain pytest's failure for an async fixture no plugin took, when a durable test needs it.

    pytest-asyncio and anyio take async fixtures in their own hook wrappers; when neither does,
    pytest fails the setup. The failure is replaced by one that names the fix.
    """
    try:
        return (yield)
    except pytest.fail.Exception as exc:
        func = fixturedef.func
        unhandled = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        if unhandled and "async fixture" in str(exc) and _uses_durable(request.fixturenames):
            raise _failure(_no_runner_message(request.config, f"fixture {fixturedef.argname!r}")) from None
        raise


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Explain pytest's failure for an async test no plugin ran, when it uses durable's fixtures.

    Runners either run the test in their own implementation of this hook (anyio) or replace the
    test function by a synchronous one (pytest-asyncio); when none does, pytest fails the test
    with a generic message, replaced here by one that names the fix.
    """
    try:
        return (yield)
    except pytest.fail.Exception as exc:
        unhandled = inspect.iscoroutinefunction(pyfuncitem.obj) and "not natively supported" in str(exc)
        if unhandled and _uses_durable(pyfuncitem.fixturenames):
            raise _failure(_no_runner_message(pyfuncitem.config, f"test {pyfuncitem.name!r}")) from None
        raise


_SDK_MODULES = ("workers", "js", "pyodide")
"""The Python Workers SDK's modules, which exist only while durable.compat.python_workers is installed."""


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Name the switch when a test module fails to import the Python Workers SDK (``import workers``
    in a test file, with neither ``--python-workers`` nor ``durable_python_workers = true``): Python
    says only "No module named 'workers'"."""
    report = yield
    if report.failed and report.longrepr is not None:
        text = str(report.longrepr)
        missing = next((m for m in _SDK_MODULES if re.search(rf"No module named '{m}[.']", text)), None)
        if missing is not None:
            from .compat import python_workers

            if not python_workers.installed():
                hint = (
                    f"\ndurable: '{missing}' is a module of Cloudflare's Python Workers SDK, which durable "
                    "provides once switched on: run `pytest --python-workers`, or set "
                    "`durable_python_workers = true` in the pytest configuration (docs/python-workers.md)."
                )
                longrepr = report.longrepr
                if isinstance(longrepr, str):
                    report.longrepr = longrepr + hint
                elif isinstance(getattr(longrepr, "longrepr", None), str):
                    longrepr.longrepr += hint  # type: ignore[union-attr]
                else:
                    report.sections.append(("durable", hint.strip()))
    return report
