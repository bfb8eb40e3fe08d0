"""Review of the merged fork, Python Workers surface and PITR work (review3): regression tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw

SHIMS = pytest.mark.usefixtures("python_workers_shims")

TWO_PROJECTS_ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint, env


class Counter(DurableObject):
    async def greeting(self):
        return env.GREETING


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        stub = env.COUNTERS.getByName("a")
        return Response(f"{env.GREETING} {await stub.greeting()}")
"""


def _project(root: Path, greeting: str) -> Path:
    root.mkdir()
    (root / "src").mkdir()
    (root / "src" / "entry.py").write_text(TWO_PROJECTS_ENTRY)
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "main": "src/entry.py",
                "compatibility_date": "2026-04-07",
                "durable_objects": {"bindings": [{"name": "COUNTERS", "class_name": "Counter"}]},
                "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}],
                "vars": {"GREETING": greeting},
            }
        )
    )
    return root


async def _get(app: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
        return await client.get(path)


@SHIMS
class TestEnvOfTheRunningCall:
    async def test_two_projects_served_in_one_process_each_read_their_own_env(self, tmp_path: Path) -> None:
        """``workers.env`` read inside a request or a Durable Object call is the env of the runtime
        running it. On Cloudflare each Worker has its own isolate and its own ``env``; durable's
        module-level ``env`` named the runtime bound last, so a process serving two projects (two
        apps in one test session, or two runtimes in one server) read the other project's vars and
        bindings: the first app answered "two two"."""
        async with durable.Runtime() as rt1, durable.Runtime() as rt2:
            app1 = pw.asgi_app(_project(tmp_path / "one", "one"), rt1)
            app2 = pw.asgi_app(_project(tmp_path / "two", "two"), rt2)
            assert (await _get(app1, "/")).text == "one one"
            assert (await _get(app2, "/")).text == "two two"


def _sdk_message(iterated: list[tuple[str, str]], cookies: list[str]) -> Any:
    """An ``http.client.HTTPMessage`` built as workers-py's ``_js_headers_to_http_message`` builds
    it (``python_request_headers_preserve_commas``): ``getSetCookie()`` first, then the rest of
    workerd's iteration."""
    import http.client

    message = http.client.HTTPMessage()
    for value in cookies:
        message.add_header("Set-Cookie", value)
    for name, value in iterated:
        if name != "set-cookie":
            message.add_header(name, value)
    return message


@SHIMS
class TestSetCookieRead:
    def test_a_set_cookie_header_reads_as_its_first_cookie(self) -> None:
        """The SDK's ``HTTPMessage`` holds one ``Set-Cookie`` entry per cookie, and
        ``message["Set-Cookie"]`` / ``.get()`` give the first one. workerd's Headers (miniflare 4,
        2026-04-07) iterate ``[["accept","a, b"],["set-cookie","x=1"],["set-cookie","y=2"]]`` and
        ``getSetCookie()`` is ``["x=1","y=2"]``. durable joined the cookies: ``"x=1, y=2"``."""
        from durable.compat.python_workers import workers as sdk

        sdk_message = _sdk_message([("accept", "a, b"), ("set-cookie", "x=1"), ("set-cookie", "y=2")], ["x=1", "y=2"])
        request = sdk.Request(
            "https://x.com/", headers=[("Accept", "a"), ("accept", "b"), ("Set-Cookie", "x=1"), ("set-cookie", "y=2")]
        )
        response = sdk.Response("", headers=[("Set-Cookie", "x=1"), ("Set-Cookie", "y=2"), ("Accept", "a, b")])
        for headers in (request.headers, response.headers):
            for name in ("set-cookie", "Set-Cookie", "accept", "missing"):
                assert headers[name] == sdk_message[name], name
                assert headers.get(name) == sdk_message.get(name), name
                assert headers.get(name, "d") == sdk_message.get(name, "d"), name
                assert headers.get_all(name) == sdk_message.get_all(name), name


NO_PYTHONAPI_FORK_SCRIPT = """
import asyncio, ctypes, gc, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
del ctypes.pythonapi  # as on an interpreter without it (PyPy)
import durable

class Tally(durable.DurableObject):
    async def inc(self):
        n = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", n + 1)
        return n + 1

loop = asyncio.new_event_loop()
rt = loop.run_until_complete(durable.Runtime(sys.argv[1]).__aenter__())
stub = rt.namespace(Tally).get_by_name("a")
assert loop.run_until_complete(stub.inc()) == 1
pid = os.fork()
if pid == 0:  # a multiprocessing-style child: drops what it inherited, ends with os._exit()
    del rt, stub, loop
    gc.collect()
    sys.stderr.flush()
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert loop.run_until_complete(stub.inc()) == 2
os._exit(0)  # the parent is killed: its commits are in its write-ahead logs
"""


class Tally(durable.DurableObject):
    async def inc(self) -> int:
        n = (await self.ctx.storage.get("n")) or 0
        await self.ctx.storage.put("n", n + 1)
        return int(n) + 1


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork() is POSIX only")
class TestForkWithoutPythonApi:
    def test_a_child_without_py_incref_still_leaves_the_parents_connections_open(self, tmp_path: Path) -> None:
        """Where ``ctypes.pythonapi`` is missing (PyPy; simulated here), the fork hook of 1929a74
        raised ``AttributeError`` in every child ("Exception ignored in: <function _keep_in_child>")
        and kept nothing, so garbage collection in the child closed the parent's connections: each
        copy checkpointed its stale log and deleted the ``-wal`` file, and the parent's next commit
        was lost when it was killed (the count read 2, not 3). Now ``Py_IncRef`` is looked up in
        the parent and the child keeps the connections from collection either way."""
        import subprocess
        import sys
        import textwrap

        script = tmp_path / "fork.py"
        script.write_text(textwrap.dedent(NO_PYTHONAPI_FORK_SCRIPT))
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "state")], capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Exception ignored" not in done.stderr, done.stderr
        with durable.BlockingRuntime(tmp_path / "state") as rt:
            assert rt.namespace(Tally).get_by_name("a").inc() == 3
