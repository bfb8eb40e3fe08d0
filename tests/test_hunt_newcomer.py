"""What a new user installing the package and following the documentation ran into (hunt-newcomer)."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing
from durable._cli import EXIT_USAGE, main

pytest_plugins = ["pytester"]


class Limiter(durable.DurableObject):
    async def take(self) -> bool:
        n: int = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", n + 1)
        return n < 3

    async def count(self) -> int:
        n: int = (await self.ctx.storage.get("n")) or 0
        return n

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("ok")


def _from_plain_thread(fn: Any) -> Any:
    """What ``fn()`` returns in a thread that runs no event loop (a Flask view, a script's pool)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


async def test_a_call_dropped_in_a_plain_thread_is_named_with_the_fix() -> None:
    """``stub.take()`` in a thread with no event loop returns a coroutine that makes the call only
    when awaited (docs/api.md). Dropped, the call never happens and Python warns: the warning used
    to read "coroutine '_forward' was never awaited", naming an internal function; it now names
    the call and the two ways to make it."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Limiter).get_by_name("a")
        for call in (lambda: stub.take(), lambda: stub.fetch("http://x/")):
            coro = _from_plain_thread(call)
            assert "asyncio.run(stub." in repr(coro)
            assert "durable.BlockingRuntime" in repr(coro)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del coro
                gc.collect()
            texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            assert len(texts) == 1, texts
            assert "stub." in texts[0] and "was never awaited" in texts[0]
            assert "_forward" not in texts[0] and "_fetch_elsewhere" not in texts[0]
        assert await stub.count() == 0  # the dropped call was never made
        # Awaited as the message says, it is made.
        assert await asyncio.to_thread(lambda: asyncio.run(_from_plain_thread(lambda: stub.take()))) is True
        assert await stub.count() == 1


APP = """
import durable


class Hello(durable.WorkerEntrypoint):
    async def fetch(self, request):
        return durable.Response("hi")
"""


def test_a_misspelt_option_names_the_command_and_the_option_meant(capsys: pytest.CaptureFixture[str]) -> None:
    """`durable serve app.py --persit x` was reported by the top-level parser, with the usage
    `durable [-h] [--version] COMMAND ...`, which lists none of serve's options. Now the command's
    own parser reports it, with its usage and the closest option."""
    assert main(["serve", "app.py", "--persit", "x"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "usage: durable serve" in err
    assert "durable serve: error: unrecognized arguments: --persit x (did you mean --persist?)" in err
    assert main(["inspect", "state", "--jsn"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "durable inspect: error: unrecognized arguments: --jsn (did you mean --json?)" in err
    assert main(["inspect", "state", "NS", "obj", "extra"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.endswith("durable inspect: error: unrecognized arguments: extra\n")  # nothing to suggest


def test_uvicorn_style_module_attribute_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`durable serve app:Hello` (uvicorn's spelling) said only "file not found: app:Hello"."""
    (tmp_path / "app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    for spelling in ("app:Hello", "app.py:Hello"):
        assert main(["serve", spelling]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"file not found: {spelling}; durable serve takes a file, not uvicorn's MODULE:ATTRIBUTE" in err
        assert (
            "`durable serve app.py` serves the class named Worker in it (add `Worker = Hello` at the end of app.py)"
            in err
        )
    assert main(["serve", "app"]) == EXIT_USAGE
    assert "file not found: app; did you mean `durable serve app.py`?" in capsys.readouterr().err
    assert main(["serve", "nothing:Worker"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip().endswith("file not found: nothing:Worker")  # no guess without a file


ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint


class Limiter(DurableObject):
    async def take(self):
        return True


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
"""


def test_a_misspelt_class_name_in_wrangler_gets_the_class_meant(tmp_path: Path) -> None:
    """A binding's `class_name` misspelt ('Limitr') in a project whose migrations create 'Limiter'
    was refused with "which no migration creates: add a migration with new_sqlite_classes =
    ["Limitr"]", advice that leads to a second error; now it names the class meant."""
    from durable.compat import python_workers

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "entry.py").write_text(ENTRY)
    config = {
        "name": "w",
        "main": "src/entry.py",
        "compatibility_date": "2025-11-01",
        "compatibility_flags": ["python_workers"],
        "durable_objects": {"bindings": [{"name": "LIMITER", "class_name": "Limitr"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Limiter"]}],
    }
    (tmp_path / "wrangler.json").write_text(json.dumps(config))
    with pytest.raises(python_workers.ProjectError) as caught:
        python_workers.load_project(tmp_path)
    assert "`durable_objects.bindings[0].class_name` names 'Limitr', which no migration creates" in str(caught.value)
    assert "did you mean 'Limiter'" in str(caught.value)
    assert "new_sqlite_classes" not in str(caught.value)


class Table(durable.DurableObject):
    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (a, b)")


@pytest.mark.parametrize("values", [[1, 2], (1, 2), {"a": 1, "b": 2}])
async def test_bindings_given_as_one_collection_say_to_spread_them(values: Any) -> None:
    """`sql.exec(query, [1, 2])`, as sqlite3's execute() takes them, said only "binding 1 is of
    type list, which SQL cannot bind"; it now says that bindings are separate arguments."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Table).get_by_name("a")
        with pytest.raises(TypeError, match=r"binding 1 is of type \w+, which SQL cannot bind") as caught:
            await testing.run_in_object(
                stub, lambda obj, ctx: ctx.storage.sql.exec("INSERT INTO t VALUES (?, ?)", values)
            )
        assert "bindings are separate arguments" in str(caught.value)
        assert "sql.exec(query, *values)" in str(caught.value)
        rows = await testing.query(stub, "INSERT INTO t VALUES (?, ?) RETURNING a, b", *[1, 2])
        assert rows == [{"a": 1, "b": 2}]


def _any(value: Any) -> Any:
    """``value``, typed as ``Any`` (the mistake under test does not type-check)."""
    return value


def test_a_dict_body_points_to_response_json() -> None:
    """`durable.Response({"a": 1})` (a JSON body given as a dict, a natural first try) said only
    that a body must be str, bytes...; it now names `durable.Response.json(value)`."""
    with pytest.raises(
        TypeError, match=r"body must be str, .* not dict; to send JSON, use durable\.Response\.json\(value\)\."
    ):
        durable.Response(_any({"a": 1}))
    with pytest.raises(TypeError, match=r"not list; to send JSON, use durable\.Response\.json\(value\)\."):
        durable.Response(_any([1]))
    with pytest.raises(TypeError, match=r"not dict; to send JSON, give json\.dumps\(value\)"):
        durable.Request("http://x/", method="POST", body=_any({"a": 1}))
    assert durable.Response.json({"a": 1}).headers["content-type"] == "application/json"


async def test_inspect_given_an_object_file_gives_the_command_that_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`durable inspect state/COUNTER/<id>.sqlite` (the file, where the command takes the runtime's
    directory) said only "... is not a directory"; it now gives the command for that object."""
    async with durable.Runtime(path=tmp_path / "state") as rt:
        stub = rt.namespace(Limiter, name="LIMITER").get_by_name("a")
        await stub.take()
        oid = str(stub.id)
    monkeypatch.chdir(tmp_path)
    file = f"state/LIMITER/{oid}.sqlite"
    assert Path(file).is_file()
    assert main(["inspect", file]) == 1
    err = capsys.readouterr().err
    assert f"'{file}' is not a directory; it is the file of one object of the namespace 'LIMITER'" in err
    assert f"`durable inspect state LIMITER {oid}`" in err
    assert main(["inspect", "state", "LIMITER", oid]) == 0  # the command given works
    assert "1 key-value entry" in capsys.readouterr().out


def test_a_test_module_importing_the_sdk_without_the_switch_is_told_the_switch(pytester: pytest.Pytester) -> None:
    """A test file of a Python Workers project that does `import workers` at its top, run with
    plain `pytest`, failed to collect with only "No module named 'workers'"; the report now names
    `--python-workers` and the ini setting."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_sdk="import workers\n\n\ndef test_x():\n    assert workers.DurableObject\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*No module named 'workers'*",
            "*durable: 'workers' is a module of Cloudflare's Python Workers SDK*--python-workers*",
        ]
    )
    result = pytester.runpytest_inprocess("--python-workers")
    result.assert_outcomes(passed=1)
