"""The Durable Object checks of Cloudflare's workers-py bindings test (storage, SQL, alarms,
transactions, RPC, ids), run in process against durable's Python Workers shims.

The object under test is tests/python_workers/bindings/src/worker.py; each `check_*` method
there asserts one behaviour in the SDK's calling shapes. Upstream runs these inside workerd
through pywrangler; here each runs in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk
from durable.compat.python_workers.pyodide import ffi

PROJECT = Path(__file__).resolve().parent / "python_workers" / "bindings"


@pytest.fixture
def env(durable_runtime: durable.Runtime) -> Iterator[Any]:
    """The project's env as its Worker sees it (the SDK's wrappers over durable's env)."""
    pw.install()
    try:
        pw.load_project(PROJECT).bind(durable_runtime)
        yield sdk.env
    finally:
        pw.uninstall()


def stub_of(env: Any, name: str = "test") -> Any:
    return env.TEST_DO.get(env.TEST_DO.idFromName(name))


CHECKS = [
    "check_put_get",
    "check_multi",
    "check_list",
    "check_value_types",
    "check_sql",
    "check_alarm",
    "check_transaction",
    "check_ctx_id",
    "check_block_concurrency_while",
    "check_sync",
]


class TestObjectChecks:
    @pytest.mark.parametrize("check", CHECKS)
    async def test_check(self, env: Any, check: str) -> None:
        """Each storage, SQL, alarm, transaction and ctx check passes inside the object."""
        await getattr(stub_of(env), check)()

    async def test_checks_share_one_object(self, env: Any) -> None:
        """All checks pass one after the other on the same object, as upstream runs them."""
        stub = stub_of(env, "shared")
        for check in CHECKS:
            await getattr(stub, check)()


class TestRpc:
    async def test_echo(self, env: Any) -> None:
        """Strings, ints and booleans come back as they were sent."""
        stub = stub_of(env)
        assert await stub.echo("hello") == "hello"
        assert await stub.echo(42) == 42
        assert await stub.echo(True) is True

    async def test_dict_result(self, env: Any) -> None:
        """A dict result is a real dict (not a proxy), with item and attribute access."""
        result = await stub_of(env).wrap({"key": "value"})
        assert result["received"]["key"] == "value" and result["added"] is True
        assert result.received.key == "value"
        assert isinstance(result, dict) and not isinstance(result, ffi.JsProxy)

    async def test_mixin_method(self, env: Any) -> None:
        """A method defined on a mixin base class is reachable over RPC."""
        assert await stub_of(env).from_mixin() == "mixin"

    async def test_fetch(self, env: Any) -> None:
        """stub.fetch reaches the object's fetch and returns the SDK's FetchResponse."""
        resp = await stub_of(env, "fetch_test").fetch("http://fake-host/ping")
        assert isinstance(resp, sdk.FetchResponse)
        assert await resp.text() == "pong from DO"

    async def test_tuple_refused_in_strict_mode(self, env: Any) -> None:
        """In strict mode a tuple result fails as the SDK's python_to_rpc does."""
        pw.set_strict(True)
        try:
            with pytest.raises(TypeError, match="<class 'tuple'> cannot be sent over RPC."):
                await stub_of(env).pair()
        finally:
            pw.set_strict(False)


class TestIds:
    def test_id_from_name(self, env: Any) -> None:
        """idFromName is deterministic and keeps the name."""
        first = env.TEST_DO.idFromName("deterministic")
        assert first.toString() == env.TEST_DO.idFromName("deterministic").toString()
        assert first.name == "deterministic"

    def test_new_unique_id(self, env: Any) -> None:
        """newUniqueId gives distinct 64-character hex ids."""
        a, b = env.TEST_DO.newUniqueId(), env.TEST_DO.newUniqueId()
        assert a.toString() != b.toString() and len(a.toString()) == 64

    def test_id_from_string(self, env: Any) -> None:
        """idFromString round-trips toString."""
        original = env.TEST_DO.idFromName("roundtrip")
        assert env.TEST_DO.idFromString(original.toString()).toString() == original.toString()

    def test_id_equals(self, env: Any) -> None:
        """Ids of one name are equal; of two names, not."""
        ns = env.TEST_DO
        assert ns.idFromName("e").equals(ns.idFromName("e"))
        assert not ns.idFromName("e").equals(ns.idFromName("f"))

    def test_stub_id_and_name(self, env: Any) -> None:
        """A stub carries its id and name."""
        oid = env.TEST_DO.idFromName("stub_test")
        stub = env.TEST_DO.get(oid)
        assert stub.id.toString() == oid.toString() and stub.name == "stub_test"
