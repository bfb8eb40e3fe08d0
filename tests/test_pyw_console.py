"""``js.console.log`` of JavaScript values prints as workerd prints them (its ``inspect``).

Expected lines measured with miniflare 4.20260426.0 (compatibility date 2026-04-20): a
JavaScript Worker calling ``console.log`` on the same values. Before, Python's ``str()`` was
printed (``{'a': 1}``, ``True``, ``None``, ``1.0``)."""

from __future__ import annotations

import json

import pytest

from durable.compat.python_workers import js
from durable.compat.python_workers.pyodide.ffi import jsnull

pytestmark = pytest.mark.usefixtures("python_workers_shims")

CASES = [
    ('{"a": 1}', "{ a: 1 }"),
    ("[1, 2]", "[ 1, 2 ]"),
    ("[]", "[]"),
    ("{}", "{}"),
    ('{"s": "x", "n": {"d": [1, "y", null, true]}, "f": 1.5}', "{ s: 'x', n: { d: [ 1, 'y', null, true ] }, f: 1.5 }"),
    ("[1, 2, 3, 4, 5, 6, 7]", "[\n  1, 2, 3, 4,\n  5, 6, 7\n]"),
    ('{"a-b": 1, "c": [[1, [2, [3]]]]}', "{ 'a-b': 1, c: [ [ 1, [Array] ] ] }"),
    ('{"a": {"b": {"c": {"d": 1}}}}', "{ a: { b: { c: [Object] } } }"),
    ('["it\'s", "say \\"hi\\"", "both \' \\""]', '[ "it\'s", \'say "hi"\', `both \' "` ]'),
    ('{"k": "a\\nb"}', "{ k: 'a\\nb' }"),
    (
        json.dumps({"long": "a" * 60, "other": "b" * 20}),
        "{\n  long: '" + "a" * 60 + "',\n  other: '" + "b" * 20 + "'\n}",
    ),
    (
        json.dumps(list(range(30))),
        "[\n   0,  1,  2,  3,  4,  5,  6,  7,  8,\n   9, 10, 11, 12, 13, 14, 15, 16, 17,\n"
        "  18, 19, 20, 21, 22, 23, 24, 25, 26,\n  27, 28, 29\n]",
    ),
    ('{"1": 1, "valid_id": 2, "$d": 3, "with space": 4}', "{ '1': 1, valid_id: 2, '$d': 3, 'with space': 4 }"),
    ("[[1, 2], [3, 4]]", "[ [ 1, 2 ], [ 3, 4 ] ]"),
]


@pytest.mark.parametrize(("source", "printed"), CASES)
def test_objects_and_arrays_print_as_workerd_prints_them(
    source: str, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    js.console.log(js.JSON.parse(source))
    assert capsys.readouterr().out == printed + "\n"


def test_primitives_print_as_javascript_values(capsys: pytest.CaptureFixture[str]) -> None:
    """A top-level string as it is, Python values as Pyodide hands them over (``None`` is
    ``undefined``, an int past 2**53 a BigInt) and JavaScript prints them (``-0``, ``1e+21``)."""
    js.console.log("it's", "top", 3, js.JSON.parse('{"k": "v"}'), True, None, jsnull)
    js.console.log(1.0, -0.0, 1e21, float("nan"), float("inf"), 12345678901234567890)
    assert capsys.readouterr().out == (
        "it's top 3 { k: 'v' } true undefined null\n1 -0 1e+21 NaN Infinity 12345678901234567890n\n"
    )


def test_the_alarm_argument_prints_with_its_class_name(capsys: pytest.CaptureFixture[str]) -> None:
    """workerd: ``AlarmInvocationInfo { scheduledTime: 1796690954277, retryCount: 0, isRetry: false }``."""
    import durable
    from durable.compat.python_workers._alarminfo import AlarmInvocationInfo

    js.console.log(AlarmInvocationInfo(durable.AlarmInfo(retry_count=0, scheduled_time=1796690954277)))
    assert (
        capsys.readouterr().out
        == "AlarmInvocationInfo { scheduledTime: 1796690954277, retryCount: 0, isRetry: false }\n"
    )
