"""The pytest plugin, tested like a product: small test suites run through ``pytester`` in a subprocess,
under each async runner (pytest-asyncio auto and strict mode, anyio's plugin) and under none."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

OBJECTS = """
import pytest
import durable
from durable.testing import MockClock, list_ids

RAN = []
SEEN = {}


class Counter(durable.DurableObject):
    async def increment(self) -> int:
        n = (await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", n)
        return n

    async def arm(self, when: int) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        RAN.append(info.scheduled_time)
"""

SUITE = '''
async def test_first(durable_runtime, mock_clock):
    assert durable_runtime.clock is mock_clock
    stub = durable_runtime.namespace(Counter).get_by_name("a")
    assert await stub.increment() == 1
    await stub.arm(mock_clock.time_ms() + 60_000)
    SEEN.update(rt=durable_runtime, clock=mock_clock, stub=stub)


async def test_nothing_leaks(durable_runtime, mock_clock):
    old = SEEN["rt"]
    assert old is not durable_runtime and old.closed
    await SEEN["clock"].advance(3600)  # the first runtime's alarm went with it
    assert RAN == []
    ns = durable_runtime.namespace(Counter)
    assert await list_ids(ns) == []
    assert await ns.get_by_name("a").increment() == 1
    with pytest.raises(durable.RuntimeClosedError):
        await SEEN["stub"].increment()


async def test_alarm_on_mock_clock(durable_runtime, mock_clock):
    stub = durable_runtime.namespace(Counter).get_by_name("b")
    await stub.arm(mock_clock.time_ms() + 1000)
    await mock_clock.advance(1)
    assert len(RAN) == 1


async def test_real_clock_without_mock_clock(durable_runtime):
    assert not isinstance(durable_runtime.clock, MockClock)
    assert await durable_runtime.namespace(Counter).get_by_name("c").increment() == 1


async def test_left_running_is_cleaned_up(durable_runtime):
    """Leaves a call in flight and an alarm armed on the real clock; teardown must cope."""
    import asyncio
    import time

    class Waits(Counter):
        async def wait(self) -> None:
            await asyncio.Event().wait()

    stub = durable_runtime.namespace(Waits).get_by_name("w")
    await stub.arm(int(time.time() * 1000) + 3_600_000)
    SEEN["task"] = asyncio.ensure_future(stub.wait())
    await asyncio.sleep(0)
'''

ANYIO_BACKEND = """
@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

STRICT_INI = """
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

AUTO_INI = STRICT_INI + "asyncio_mode = auto\n"

PLAIN_INI = """
[pytest]
filterwarnings = error
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest on the pytester directory in a subprocess (hypothesis' slow-loading plugin off)."""
    return pytester.runpytest_subprocess("-p", "no:hypothesispytest", *args)


def write_suite(pytester: pytest.Pytester, ini: str, header: str = "") -> None:
    pytester.makeini(ini)
    pytester.makepyfile(test_suite=OBJECTS + textwrap.dedent(header) + SUITE)


class TestRunners:
    def test_pytest_asyncio_auto_mode(self, pytester: pytest.Pytester) -> None:
        """Under pytest-asyncio in auto mode, unmarked async tests get working fixtures."""
        write_suite(pytester, AUTO_INI)
        result = run(pytester, "-p", "no:anyio")
        result.assert_outcomes(passed=5)

    def test_pytest_asyncio_strict_mode(self, pytester: pytest.Pytester) -> None:
        """Under pytest-asyncio in strict mode, @pytest.mark.asyncio tests get working fixtures."""
        write_suite(pytester, STRICT_INI, "pytestmark = pytest.mark.asyncio\n")
        result = run(pytester, "-p", "no:anyio")
        result.assert_outcomes(passed=5)

    def test_pytest_asyncio_module_scoped_loop(self, pytester: pytest.Pytester) -> None:
        """With a loop shared by the module's tests, each runtime is closed on that loop, right after its test."""
        write_suite(pytester, AUTO_INI + "asyncio_default_test_loop_scope = module\n")
        pytester.makepyfile(
            test_zz_after="""
            import durable
            import test_suite

            def test_call_in_flight_was_closed_on_the_shared_loop():
                task = test_suite.SEEN["task"]
                assert task.done() and not task.cancelled()
                assert isinstance(task.exception(), durable.ConnectionClosedError)
            """
        )
        result = run(pytester, "-p", "no:anyio")
        result.assert_outcomes(passed=6)

    def test_anyio_marker(self, pytester: pytest.Pytester) -> None:
        """Under anyio's plugin alone, @pytest.mark.anyio tests get working fixtures."""
        write_suite(pytester, PLAIN_INI, "pytestmark = pytest.mark.anyio\n" + ANYIO_BACKEND)
        result = run(pytester, "-p", "no:asyncio")
        result.assert_outcomes(passed=5)

    def test_anyio_marker_next_to_strict_pytest_asyncio(self, pytester: pytest.Pytester) -> None:
        """anyio-marked tests work while pytest-asyncio is installed in strict mode."""
        write_suite(pytester, STRICT_INI, "pytestmark = pytest.mark.anyio\n" + ANYIO_BACKEND)
        result = run(pytester)
        result.assert_outcomes(passed=5)

    def test_sync_test_can_use_the_runtime(self, pytester: pytest.Pytester) -> None:
        """A synchronous test may request durable_runtime (to register namespaces); it is closed after."""
        pytester.makeini(PLAIN_INI)
        pytester.makepyfile(
            OBJECTS
            + """
def test_sync(durable_runtime):
    SEEN["ns"] = durable_runtime.namespace(Counter, name="COUNTER")
    SEEN["rt"] = durable_runtime
    assert durable_runtime.env.COUNTER is SEEN["ns"]


def test_closed_after():
    assert SEEN["rt"].closed
"""
        )
        result = run(pytester, "-p", "no:asyncio", "-p", "no:anyio")
        result.assert_outcomes(passed=2)

    def test_runtime_closed_after_failing_test(self, pytester: pytest.Pytester) -> None:
        """A test that fails still has its runtime closed."""
        pytester.makeini(AUTO_INI)
        pytester.makepyfile(
            OBJECTS
            + """
async def test_fails(durable_runtime):
    SEEN["rt"] = durable_runtime
    await durable_runtime.namespace(Counter).get_by_name("a").increment()
    assert False, "on purpose"


def test_closed_after():
    assert SEEN["rt"].closed
"""
        )
        result = run(pytester, "-p", "no:anyio")
        result.assert_outcomes(passed=1, failed=1)

    def test_fixtures_are_listed(self, pytester: pytest.Pytester) -> None:
        """The plugin is registered through its entry point: `pytest --fixtures` shows both fixtures."""
        pytester.makeini(STRICT_INI)
        pytester.makepyfile("def test_nothing(): pass\n")
        result = run(pytester, "--fixtures")
        result.stdout.fnmatch_lines(["*fixtures defined from durable.pytest_plugin*", "mock_clock -- *"])
        result.stdout.fnmatch_lines(["durable_runtime -- *", "*fresh in-memory runtime*"])

    def test_plugin_can_be_disabled(self, pytester: pytest.Pytester) -> None:
        """`-p no:durable` removes the fixtures."""
        pytester.makeini(STRICT_INI)
        pytester.makepyfile("def test_uses(durable_runtime): pass\n")
        result = run(pytester, "-p", "no:durable")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*fixture 'durable_runtime' not found*"])


class TestNoRunner:
    def test_async_test_without_runner(self, pytester: pytest.Pytester) -> None:
        """With no async plugin at all, an async durable test fails with a message naming the fix."""
        pytester.makeini(PLAIN_INI)
        pytester.makepyfile(
            """
            async def test_needs_runner(durable_runtime):
                pass
            """
        )
        result = run(pytester, "-p", "no:asyncio", "-p", "no:anyio")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*durable: test 'test_needs_runner' is async, but no plugin ran it*",
                "*pip install pytest-asyncio*",
                "*@pytest.mark.anyio*",
            ]
        )
        result.stdout.no_fnmatch_line("*not natively supported*")

    def test_unmarked_test_in_strict_mode(self, pytester: pytest.Pytester) -> None:
        """Under pytest-asyncio's strict mode, an unmarked async durable test is told to add the marker."""
        pytester.makeini(STRICT_INI)
        pytester.makepyfile(
            """
            async def test_unmarked(durable_runtime, mock_clock):
                pass
            """
        )
        result = run(pytester, "-p", "no:anyio")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*pytest-asyncio is installed but did not take it (strict mode)*"])

    def test_async_fixture_without_runner(self, pytester: pytest.Pytester) -> None:
        """An async fixture built on durable_runtime, in a run with no async plugin, errors with the fix."""
        pytester.makeini(PLAIN_INI)
        pytester.makepyfile(
            """
            import pytest

            @pytest.fixture
            async def counters(durable_runtime):
                return durable_runtime

            def test_sync_but_fixture_async(counters):
                pass
            """
        )
        result = run(pytester, "-p", "no:asyncio", "-p", "no:anyio")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            ["*durable: fixture 'counters' is async, but no plugin ran it*", "*pip install pytest-asyncio*"]
        )

    def test_other_tests_are_left_alone(self, pytester: pytest.Pytester) -> None:
        """Async tests that do not use durable's fixtures get pytest's own message, not durable's."""
        pytester.makeini(PLAIN_INI)
        pytester.makepyfile("async def test_other(): pass\n")
        result = run(pytester, "-p", "no:asyncio", "-p", "no:anyio")
        result.assert_outcomes(failed=1)
        result.stdout.no_fnmatch_line("*durable:*")

    def test_anyio_trio_backend(self, pytester: pytest.Pytester) -> None:
        """A test on anyio's trio backend is told that durable needs asyncio."""
        pytester.makeini(PLAIN_INI)
        pytester.makepyfile(
            """
            import pytest

            @pytest.fixture
            def anyio_backend():
                return "trio"

            @pytest.mark.anyio
            async def test_on_trio(durable_runtime):
                pass
            """
        )
        result = run(pytester, "-p", "no:asyncio")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*durable runs on asyncio, but this test runs on anyio's 'trio' backend*"])


DOCS = Path(__file__).resolve().parent.parent / "docs"
FILE_BLOCK = re.compile(r"^```\w+\n# (\S+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def doc_files(doc: str) -> dict[str, str]:
    """The files a doc page shows: code blocks whose first line is ``# <file name>``."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    return {name: f"# {name}\n{body}" for name, body in FILE_BLOCK.findall(text)}


class TestDocs:
    @pytest.mark.parametrize("doc", ["testing.md", "alarms.md"])
    def test_every_code_block_is_a_file(self, doc: str) -> None:
        """Every code block of the page names its file, so that the test below runs all of them."""
        text = (DOCS / doc).read_text(encoding="utf-8")
        assert text.count("```python") + text.count("```toml") == len(FILE_BLOCK.findall(text))

    @pytest.mark.parametrize("doc", ["testing.md", "alarms.md"])
    def test_examples_pass(self, pytester: pytest.Pytester, doc: str) -> None:
        """The page's example project passes its own tests."""
        files = doc_files(doc)
        for name, body in files.items():
            (pytester.path / name).write_text(body, encoding="utf-8")
        if "pyproject.toml" not in files:
            pytester.makeini(AUTO_INI)
        tests = sum(body.count("def test_") for name, body in files.items() if name.startswith("test_"))
        result = run(pytester)
        result.assert_outcomes(passed=tests)


# ---------------------------------------------------------------------------------------------
# The --python-workers option (durable.compat.python_workers): its shims installed in a pytest run
# (moved from test_python_workers.py: pytest subprocesses, the same on every loop and Python)


class TestPytestOption:
    TEST = """
        def test_imports():
            import workers, js
            from pyodide.ffi import to_js
            assert workers.DurableObject.__module__.startswith("durable.compat")
    """

    def test_option_installs_the_shims(self, pytester: pytest.Pytester) -> None:
        """--python-workers makes `import workers` work in a test file."""
        pytester.makepyfile(self.TEST)
        result = pytester.runpytest_subprocess("--python-workers", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)

    def test_conftest_may_import_the_sdk(self, pytester: pytest.Pytester) -> None:
        """The shims are installed before conftest.py is imported, so it may import workers."""
        pytester.makeconftest("from workers import DurableObject\n")
        pytester.makepyfile(self.TEST)
        result = pytester.runpytest_subprocess("--python-workers", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)

    def test_ini_key_installs_the_shims(self, pytester: pytest.Pytester) -> None:
        """The ini key durable_python_workers = true does the same."""
        pytester.makeini("[pytest]\ndurable_python_workers = true\n")
        pytester.makepyfile(self.TEST)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)

    def test_strict_option(self, pytester: pytest.Pytester) -> None:
        """--python-workers-strict installs the shims in strict value mode."""
        pytester.makepyfile("""
            import pytest

            def test_strict():
                from workers import python_to_rpc
                with pytest.raises(TypeError, match="cannot be sent over RPC"):
                    python_to_rpc([(1, 2)])
        """)
        result = pytester.runpytest_subprocess("--python-workers-strict", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)

    def test_without_option_nothing_is_installed(self, pytester: pytest.Pytester) -> None:
        """Without the option, `import workers` fails as it would without durable."""
        pytester.makepyfile(self.TEST)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*ModuleNotFoundError: No module named 'workers'*"])


# ---------------------------------------------------------------------------------------------
# Found hunting through the plugin's options (moved from test_hunt_options.py: pytest
# subprocesses, the same on every loop and Python)


def test_plugin_named_by_its_module_too(pytester: pytest.Pytester) -> None:
    """The installed plugin is registered through its entry point as ``durable``; naming its module
    as well, as conftest.py's ``pytest_plugins = ["durable.pytest_plugin"]`` or
    ``-p durable.pytest_plugin``, stopped pytest with "ValueError: Plugin already registered under
    a different name" before any test ran. Naming it again now does nothing."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest('pytest_plugins = ["durable.pytest_plugin"]\n')
    pytester.makepyfile(
        "async def test_uses(durable_runtime, mock_clock):\n    assert durable_runtime.clock is mock_clock\n"
    )
    pytester.runpytest_subprocess("-p", "no:hypothesispytest").assert_outcomes(passed=1)
    (pytester.path / "conftest.py").unlink()
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "durable.pytest_plugin")
    result.assert_outcomes(passed=1)


def test_durable_runtime_parametrized_indirectly(pytester: pytest.Pytester) -> None:
    """``parametrize("durable_runtime", [{...}], indirect=True)`` was accepted and ignored: the
    test ran on a default runtime (here: no point-in-time recovery, the default idle timeout).
    The dict is now the runtime's options; what cannot be options is refused, naming the problem,
    and so is ``clock=`` next to ``mock_clock`` (two clocks for one runtime). ``mock_clock``
    parametrized indirectly ignored its parameter too: it is now the clock's start."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest
        from durable.testing import MockClock

        @pytest.mark.parametrize("durable_runtime", [{"idle_timeout": 5, "point_in_time_recovery": True}], indirect=True)
        async def test_options(durable_runtime, mock_clock):
            assert (durable_runtime.idle_timeout, durable_runtime.point_in_time_recovery) == (5, True)
            assert durable_runtime.clock is mock_clock

        @pytest.mark.parametrize("durable_runtime", [{"idle_timout": 5}, ["x"]], indirect=True)
        def test_refused(durable_runtime):
            pass

        @pytest.mark.parametrize("durable_runtime", [{"clock": MockClock(0)}], indirect=True)
        def test_two_clocks(durable_runtime, mock_clock):
            pass

        @pytest.mark.parametrize("mock_clock", [1_700_000_000], indirect=True)
        def test_clock_start(durable_runtime, mock_clock):
            assert durable_runtime.clock.time() == 1_700_000_000

        @pytest.mark.parametrize("mock_clock", ["soon"], indirect=True)
        def test_clock_start_refused(mock_clock):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2, errors=4)
    result.stdout.fnmatch_lines_random(
        [
            "*unexpected keyword argument 'idle_timout'*",
            "*takes a dict of durable.Runtime keyword options (such as {'idle_timeout': 5}), not list*",
            "*given clock= as an option and the test requests mock_clock*",
            "*MockClock(start) takes seconds since the epoch (an int or a float) or None, not 'soon'*",
        ]
    )
