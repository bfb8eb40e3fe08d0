"""Bugs a review of session 17's merges found (review-core): each test failed before its fix."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

import durable

pytest_plugins = ["pytester"]


@dataclasses.dataclass(frozen=True)
class Frozen(Exception):
    """An exception class made frozen with dataclasses (or attrs): its attributes, ``args`` too,
    cannot be assigned."""

    detail: str


class Thrower(durable.DurableObject):
    def frozen(self, message: str) -> None:
        raise Frozen(message)

    def builtin(self, cls: str, message: str) -> None:
        raise {"SyntaxError": SyntaxError, "ImportError": ImportError}[cls](message)

    def durable_error(self, cls: str, message: str) -> None:
        raise {"DurableError": durable.DurableError, "DataCloneError": durable.DataCloneError}[cls](message)

    def group(self, message: str) -> None:
        raise ExceptionGroup(message, [TypeError("x")])

    def stop(self, reason: str) -> None:
        self.ctx.abort(reason)


@pytest.fixture
def stub(durable_runtime: durable.Runtime) -> Any:
    return durable_runtime.namespace(Thrower).get_by_name("t")


class TestThrownMessages:
    """copy_remote_exception's workerd message rules (a leading space, a NUL; hunt-rpc-fuzz)."""

    @pytest.mark.parametrize("message", [" boom", "a\0b", " \0"])
    async def test_a_frozen_exception_class_arrives_as_itself(self, stub: Any, message: str) -> None:
        """Before: the copy's ``args`` was reassigned unconditionally for such a message, and a
        frozen class refuses that, so the caller got ``dataclasses.FrozenInstanceError: cannot
        assign to field 'args'`` instead of the error raised. Its message now stays whole (it
        cannot be cut), as any attribute the copy cannot take is left."""
        with pytest.raises(Frozen) as info:
            await stub.frozen(message)
        assert str(info.value) == message and info.value.args == (message,)

    @pytest.mark.parametrize("cls", [SyntaxError, ImportError])
    async def test_a_builtin_whose_str_is_its_msg_is_cut_too(self, stub: Any, cls: type[Exception]) -> None:
        """workerd cuts a thrown built-in error's message at its first NUL and drops its leading
        spaces (miniflare 4, 2026-04-07, ``throw new SyntaxError(" a\\0b")`` arrives as ``"a"``).
        Before: the copy's ``args`` said ``("a",)`` but its ``str()``, which for these two classes
        is their ``msg`` attribute, still said ``" a\\0b"``."""
        with pytest.raises(cls) as info:
            await stub.builtin(cls.__name__, " a\0b")
        assert info.value.args == ("a",)
        assert str(info.value) == "a"

    async def test_a_durable_error_is_cut_as_workerds_error(self, stub: Any) -> None:
        """A ``durable.DurableError`` stands for workerd's ``Error`` (docs/differences.md
        "error-classes"), whose thrown message loses its leading spaces and ends at its first NUL
        (measured here with miniflare 4, 2026-04-07, /tmp/contract-mf: ``throw new Error("  a\\0b")``
        in a Durable Object method arrives as ``Error`` ``"a"``; ``RangeError`` too). Before: its
        module is not ``builtins``, so it was taken for an application class and kept ``"  a"``."""
        with pytest.raises(durable.DurableError) as info:
            await stub.durable_error("DurableError", "  a\0b")
        assert type(info.value) is durable.DurableError and info.value.args == ("a",)

    async def test_a_data_clone_error_keeps_its_message_whole(self, stub: Any) -> None:
        """``durable.DataCloneError`` stands for workerd's ``DOMException`` ``DataCloneError``, whose
        thrown message arrives whole (same probe: ``throw new DOMException("  a\\0b",
        "DataCloneError")`` arrives with message ``"  a\\0b"``). Before: cut at the NUL."""
        with pytest.raises(durable.DataCloneError) as info:
            await stub.durable_error("DataCloneError", "  a\0b")
        assert info.value.args == ("  a\0b",)

    async def test_an_exception_group_is_cut_as_workerds_aggregate_error(self, stub: Any) -> None:
        """workerd (miniflare 4, 2026-04-07, /tmp/contract-mf): ``throw new AggregateError([e],
        "  a\\0b")`` in a method arrives as an ``AggregateError`` with message ``"a"``. Before: an
        ``ExceptionGroup`` (its twin, docs/differences.md) kept ``"  a\\0b"``."""
        with pytest.raises(ExceptionGroup) as info:
            await stub.group("  a\0b")
        assert info.value.message == "a"
        assert [type(e) for e in info.value.exceptions] == [TypeError]


async def test_an_abort_reason_keeps_a_surrogate_pair_as_its_character(
    stub: Any, durable_runtime: durable.Runtime
) -> None:
    """workerd carries an abort reason as UTF-8: a lone surrogate becomes three U+FFFD, and a
    surrogate pair, one character of a JavaScript string, stays that character, as a thrown
    message's does (measured with miniflare 4, 2026-04-07, /tmp/contract-mf:
    ``ctx.abort(" \\ud83d\\ude00 x\\ud800")`` fails the call with "\\ud83d\\ude00 x" and three
    U+FFFD; ``"\\udc00\\ud800"``, two lone halves, with six U+FFFD). Before: the pair became six
    U+FFFD (each half encoded alone)."""
    with pytest.raises(durable.ObjectAbortedError) as info:
        await stub.stop(" \ud83d\ude00 x\ud800")
    assert str(info.value) == "\U0001f600 x\ufffd\ufffd\ufffd"
    with pytest.raises(durable.ObjectAbortedError) as info:
        await durable_runtime.namespace(Thrower).get_by_name("other").stop("\udc00\ud800")
    assert str(info.value) == "\ufffd" * 6


def test_a_missing_module_named_like_the_sdk_gets_no_sdk_hint(pytester: pytest.Pytester) -> None:
    """The collection hint for ``import workers`` / ``js`` / ``pyodide`` (hunt-newcomer) matched
    any missing module whose name starts so: a test importing a project's own ``js_helpers``
    (or ``jsonschema``, not installed) was told that ``'js'`` is a module of the Python Workers
    SDK and to run ``pytest --python-workers``. The module's own error is reported alone now;
    ``import pyodide.ffi`` (Python says "No module named 'pyodide'") still gets the hint."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    modules = ["js_helpers", "workers_shared", "pyodide_tools", "pyodide.ffi"]
    pytester.makepyfile(**{f"test_{i}": f"import {m}\n\n\ndef test_x():\n    pass\n" for i, m in enumerate(modules)})
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines([f"*No module named '{m.partition('.')[0]}'*" for m in modules])
    assert result.stdout.str().count("Python Workers SDK") == 1
    result.stdout.fnmatch_lines(["*durable: 'pyodide' is a module of Cloudflare's Python Workers SDK*"])


def test_an_empty_blob_is_corrupt_before_any_int_was_encoded() -> None:
    """``decode(b"")`` answered ``0`` in a process that had not encoded an int yet: the first
    value of ``_codec.last_int`` was ``(b"", 0)``, and ``b""`` is CPython's one empty bytes
    object, which a zero-length blob read from a damaged database file is too, so such a value
    read as ``0`` (Storage.get's fast path too) instead of raising ``DataCorruptionError``, as it
    does once an int was encoded. Run in a fresh interpreter, where ``last_int`` is still its first
    value."""
    code = (
        "import durable\n"
        "from durable._codec import decode\n"
        "try:\n"
        "    print(repr(decode(b'')))\n"
        "except durable.DataCorruptionError:\n"
        "    print('corrupt')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "corrupt"
