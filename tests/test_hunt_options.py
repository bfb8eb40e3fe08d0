"""Bugs found hunting through the options and entry points of ``Runtime``, ``BlockingRuntime``,
``durable.testing`` and the pytest plugin (API.md sections 2, 6 and 8) with wrong inputs.

These are durable's own helpers (nothing in workerd to measure): the rule is API.md's, every bad
input gets a clear error naming the problem, and what a helper returns is what the object's own
code would see.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import durable
from durable import testing


class Thing(durable.DurableObject):
    async def put(self) -> int:
        await self.ctx.storage.put("k", 1)
        return 1


async def test_unrestricted_query_keeps_the_column_names() -> None:
    """``query(..., unrestricted=True)`` marked the SQL with a trailing comment, and SQLite names a
    result column by its expression's text up to the next token: ``SELECT 1`` came back as
    ``{'1\\n-- durable.testing.query <tag>': 1}`` instead of ``{'1': 1}``."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Thing).get_by_name("a")
        for unrestricted in (False, True):
            assert await testing.query(stub, "SELECT 1, 2 AS two", unrestricted=unrestricted) == [{"1": 1, "two": 2}]
            # A comment of the user's own stays part of the name, as SQLite (and workerd) give it.
            assert await testing.query(stub, "SELECT 3 -- c", unrestricted=unrestricted) == [{"3 -- c": 3}]
        assert await testing.query(stub, "PRAGMA user_version", unrestricted=True) == [{"user_version": 0}]


async def test_query_unrestricted_must_be_a_bool() -> None:
    """``unrestricted="no"`` lifted Cloudflare's SQL rules (a truthy str)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Thing).get_by_name("a")
        for value in ("no", 1, None):
            with pytest.raises(TypeError, match=f"unrestricted must be a bool, not {type(value).__name__}"):
                await testing.query(stub, "PRAGMA user_version", unrestricted=value)  # type: ignore[arg-type]


async def test_fail_next_commit_with_a_class_that_needs_arguments() -> None:
    """An exception class that cannot be called without arguments gave Python's own
    ``TypeError: function takes exactly 5 arguments (0 given)``, naming neither the helper nor the
    fix; the next commit stays as it was."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Thing).get_by_name("a")
        with pytest.raises(TypeError, match=r"fail_next_commit\(\) could not make a UnicodeDecodeError without"):
            testing.fail_next_commit(stub, UnicodeDecodeError)
        assert await stub.put() == 1  # nothing was armed


async def test_websocket_protocols_of_a_wrong_type() -> None:
    """``protocols=3`` failed with ``'int' object is not iterable``; bytes were split into ints."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Thing).get_by_name("a")
        for value in (3, b"chat"):
            with pytest.raises(TypeError, match="protocols takes a subprotocol name or a sequence of names"):
                async with testing.websocket(stub, "http://x/", protocols=value):  # type: ignore[arg-type]
                    pass  # pragma: no cover


async def test_websocket_app_raising_is_not_logged_as_never_retrieved() -> None:
    """An ASGI app that raises before answering: the caller gets its error, and asyncio no longer
    logs "Task exception was never retrieved" for the app's task when it is collected."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise LookupError("app broke")

    try:
        with pytest.raises(LookupError, match="app broke"):
            async with testing.websocket(app, "http://x/"):
                pass  # pragma: no cover
        await asyncio.sleep(0)
        gc.collect()
        assert reported == []
    finally:
        loop.set_exception_handler(None)


def test_path_under_a_file(tmp_path: Any) -> None:
    """A path whose parent is a file gave mkdir's bare ``[Errno 20] Not a directory``, naming
    neither ``path=`` nor the file in the way (a path that is a file itself was explained)."""
    (tmp_path / "state").write_text("")
    with pytest.raises(NotADirectoryError, match=r"path= cannot be created, as '.*state' on its way is a file"):
        durable.Runtime(tmp_path / "state" / "sub" / "dir")
