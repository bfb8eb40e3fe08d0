"""Helpers shared by the test modules (import them: ``from helpers import exactly, settle``).

Fixtures live in ``tests/conftest.py``; plain functions live here, so a test module names what it
uses. Every helper reaches the runtime through the public API, except :func:`as_own_code`, which
white-box tests use to drive storage from the test body.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import _context, testing

Fn = Callable[[Any, durable.State], Any]
"""A function run inside an object: ``fn(instance, ctx)``, sync or async."""


class WithAlarm(durable.DurableObject):
    """An object with nothing but an alarm handler (so ``set_alarm`` is allowed on it)."""

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


def stub_on_backend(request: pytest.FixtureRequest, rt: durable.Runtime) -> Any:
    """For a fixture parametrized with ``"sqlite"`` and ``"kv"``: a ``WithAlarm`` object of that backend."""
    return rt.namespace(WithAlarm, storage=request.param).get_by_name("a")


def exactly(cls: type[BaseException], message: str) -> AbstractContextManager[pytest.ExceptionInfo[BaseException]]:
    """``pytest.raises`` for ``cls`` with exactly this message (no regular expression)."""
    return pytest.raises(cls, match="^" + re.escape(message) + "$")


async def inside(stub: Any, fn: Fn) -> Any:
    """Run ``fn(instance, ctx)`` inside the object behind ``stub`` and return its result."""
    return await testing.run_in_object(stub, fn)


def as_own_code(storage: durable.Storage) -> durable.Storage:
    """Mark the running test body as the object's own code, so it may drive ``storage`` directly.

    Storage refuses code that is not its object's (durable/_context.py); white-box tests of storage
    call it from the test body instead, bypassing the input gate. Returns ``storage``. The test
    body then counts as code of that instance: a reset of the object cancels its
    task, as it cancels every task the reset instance made.
    """
    _context.running.set(storage._host.running)
    return storage


async def storage_of(stub: Any) -> durable.Storage:
    """The storage of the object behind ``stub``, usable from the test body (see :func:`as_own_code`)."""
    storage: durable.Storage = await inside(stub, lambda obj, ctx: ctx.storage)
    return as_own_code(storage)


async def settle(turns: int = 5) -> None:
    """Give the event loop ``turns`` turns, so that work already scheduled runs.

    For steps that take a known, small number of turns (a frame delivered, a task started). Prefer
    waiting on an event where the test can name one; use many turns (50) before asserting that
    something has *not* happened.
    """
    for _ in range(turns):
        await asyncio.sleep(0)


@contextmanager
def eager_tasks() -> Iterator[None]:
    """The running loop's task factory is ``asyncio.eager_task_factory`` (Python 3.12+) meanwhile,
    as an application may make it: tasks then start running inside ``create_task()``."""
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        _check_eager_factory(loop)
        yield
    finally:
        loop.set_task_factory(previous)


def _check_eager_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Skip the test where the loop cannot run ``asyncio.eager_task_factory`` at all.

    uvloop 0.23's ``create_task`` passes ``eager_start`` to the task factory on Python 3.13, whose
    ``eager_task_factory`` did not take it in 3.13.0 (CPython gh-128307; MagicStack/uvloop#746):
    there every ``create_task`` raises ``TypeError``, with or without durable, so there is
    nothing of durable's to test. Found by probing, so a fixed pairing runs the test.
    """

    async def nothing() -> None:
        pass

    coro = nothing()
    try:
        loop.create_task(coro)
    except TypeError as exc:
        coro.close()
        if "eager_start" not in str(exc):
            raise
        pytest.skip(f"this loop cannot use asyncio.eager_task_factory on this Python: {exc}")


needs_eager_tasks = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.eager_task_factory is new in Python 3.12"
)


async def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "the condition") -> None:
    """Poll ``condition`` every 10 ms until it holds; ``AssertionError`` after ``timeout`` seconds.

    For what happens on real time (a real clock's alarm, another thread, a subprocess): the limit
    is a hang guard, generous enough for a loaded machine (CI runs several suites on two cores).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.01)


def resolve_durable_name(dotted: str) -> object:
    """The object ``durable.<dotted>`` names, importing submodules on the way; AttributeError if none."""
    import importlib

    obj: object = durable
    path = "durable"
    for part in dotted.split("."):
        path = f"{path}.{part}"
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(path)
        except ImportError:
            raise AttributeError(f"{path} does not exist") from None
    return obj


REPO = Path(__file__).resolve().parent.parent
"""The checkout the tests run from."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve_and_get(argv: list[str], paths: list[str], cwd: Path = REPO) -> list[str]:
    """Start a server with ``argv`` (which serves on 127.0.0.1 and a port given as {port}), GET ``paths``."""
    import subprocess

    import httpx

    port = free_port()
    # A script (examples/counter.py) imports this checkout's durable, whatever is installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, *[a.format(port=port) for a in argv]],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):  # up to ~30 s for the interpreter and uvicorn to start
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited")
                try:
                    await client.get("/")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            return [(await client.get(p)).text for p in paths]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def http_scope(**overrides: Any) -> dict[str, Any]:
    """An ASGI HTTP scope for `GET /` with `Host: example.com`, updated with ``overrides``."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "server": ("127.0.0.1", 8787),
        "client": ("127.0.0.1", 5000),
    }
    scope.update(overrides)
    return scope
