"""Conformance of the public surface to the contract (docs/api.md), section by section.

Every test checks one stated behaviour through the public API only (``import durable``,
``durable.testing``, the pytest plugin's fixtures), as code outside the repository would. The
docstring of each test quotes or restates the rule it checks.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import testing

from helpers import serve_and_get, settle

pytest_plugins = ["pytester"]

# -- objects used across sections ---------------------------------------------------------------


class Base(durable.DurableObject):
    async def inherited(self) -> str:
        return "base"


class Obj(Base):
    """An object with every kind of member the RPC rules talk about."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.attr = lambda: "instance attribute"

    async def echo(self, value: Any) -> Any:
        return value

    def plain(self, a: int, b: int = 2) -> int:
        return a + b

    async def mutate(self, value: list[Any]) -> list[Any]:
        value.append("changed")
        return value

    async def _private(self) -> str:
        return "private"

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass

    async def web_socket_message(self, ws: Any, message: Any) -> None:
        pass

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response(f"{request.method} {request.url}")

    async def fail(self, message: str) -> None:
        raise ValueError(message)

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def abort_now(self, reason: str | None) -> None:
        await self.ctx.storage.put("unflushed", 1)
        self.ctx.abort(reason)

    async def whoami(self) -> tuple[Any, Any, Any]:
        return (str(self.ctx.id), self.ctx.id.name, type(self.ctx.storage).__name__)


class SyncHandlers(durable.DurableObject):
    def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("sync fetch")

    def add(self, a: int, b: int) -> int:
        return a + b


# == 1. Defining an object ==========================================================================


class TestDefiningAnObject:
    """Defining an object."""

    # -- defining an object --------------------------------------------------------------------
    async def test_init_stores_ctx_and_env(self) -> None:
        """`DurableObject.__init__(ctx, env)` stores `self.ctx` and `self.env`."""
        async with durable.Runtime(vars={"X": 1}) as rt:
            stub = rt.namespace(Obj).get_by_name("a")

            def check(obj: Any, ctx: durable.State) -> tuple[bool, Any]:
                return obj.ctx is ctx, obj.env.X

            assert await testing.run_in_object(stub, check) == (True, 1)

    async def test_handlers_and_rpc_may_be_plain_def(self) -> None:
        """Handlers and RPC methods may be `async def` or plain `def`."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(SyncHandlers).get_by_name("a")
            assert await stub.add(2, 3) == 5
            assert await (await stub.fetch("http://do/")).text() == "sync fetch"

    async def test_rpc_reaches_public_methods_and_bases(self) -> None:
        """RPC reaches public methods defined on the class and its bases below `DurableObject`."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            assert await stub.echo("x") == "x"
            assert await stub.plain(1) == 3
            assert await stub.plain(1, b=5) == 6
            assert await stub.inherited() == "base"

    async def test_private_names_are_not_reachable(self) -> None:
        """Names starting with `_` raise TypeError `The RPC receiver does not implement the method "x".`"""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "_private"\.$'):
                await stub._private()

    async def test_instance_attributes_are_not_reachable(self) -> None:
        """Instance attributes are not reachable over RPC."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "attr"\.$'):
                await stub.attr()

    async def test_missing_method(self) -> None:
        """A missing method raises TypeError with Cloudflare's wording."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "nope"\.$'):
                await stub.nope()

    @pytest.mark.parametrize("name", ["ctx", "env"])
    async def test_base_attributes_are_not_rpc(self, name: str) -> None:
        """`ctx` and `env` are instance attributes set by `DurableObject`, not methods: not reachable."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=rf'^The RPC receiver does not implement the method "{name}"\.$'):
                await getattr(stub, name)()

    async def test_alarm_is_reserved(self) -> None:
        """`'alarm' is a reserved method and cannot be called over RPC.` (a TypeError)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=r"^'alarm' is a reserved method and cannot be called over RPC\.$"):
                await stub.alarm()

    @pytest.mark.parametrize(
        "name",
        [
            "web_socket_message",
            "web_socket_close",
            "web_socket_error",
            "webSocketMessage",
            "webSocketClose",
            "webSocketError",
        ],
    )
    async def test_websocket_handlers_are_reserved(self, name: str) -> None:
        """The websocket handlers cannot be called over RPC."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError, match=rf"^'{name}' is a reserved method and cannot be called over RPC\.$"):
                await getattr(stub, name)()

    async def test_fetch_only_through_stub_fetch(self) -> None:
        """`fetch` is reachable only through `stub.fetch`, which sends a Request, not RPC arguments."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(TypeError):
                await stub.fetch(42)  # type: ignore[arg-type]
            assert await (await stub.fetch("http://do/x")).text() == "GET http://do/x"


# == 2. Hosting objects: Runtime, Namespace, ids, stubs ===========================================


class KvObj(Obj):
    pass


class FailingConstructor(durable.DurableObject):
    failures = 0

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        if type(self).failures:
            type(self).failures -= 1
            raise LookupError("constructor failed")

    async def hi(self) -> str:
        return "hi"


class Uses(durable.DurableObject):
    async def read(self) -> Any:
        return (self.env.GREETING, await self.env.OTHER.get_by_name("x").echo("via env"))


class TestHosting:
    """Hosting objects: Runtime, Namespace, ids, stubs."""

    # -- runtime and namespace -----------------------------------------------------------------
    async def test_in_memory_runtime_forgets_on_close(self) -> None:
        """`durable.Runtime()` keeps storage in memory, gone when closed."""
        async with durable.Runtime() as rt:
            await rt.namespace(Obj).get_by_name("a").put("k", 1)
        async with durable.Runtime() as rt:
            assert await rt.namespace(Obj).get_by_name("a").get("k") is None

    async def test_persisted_runtime_survives_reopen(self, tmp_path: Path) -> None:
        """`Runtime(path=...)` persists storage; reopened with the same names it finds the same objects."""
        async with durable.Runtime(path=tmp_path / "state") as rt:
            ns = rt.namespace(Obj, name="OBJ")
            uid = ns.new_unique_id()
            await ns.get_by_name("a").put("k", [1, 2])
            await ns.get(uid).put("k", "unique")
        async with durable.Runtime(path=str(tmp_path / "state")) as rt:
            ns = rt.namespace(Obj, name="OBJ")
            assert await ns.get_by_name("a").get("k") == [1, 2]
            assert await ns.get(ns.id_from_string(str(uid))).get("k") == "unique"

    async def test_one_sqlite_file_per_object(self, tmp_path: Path) -> None:
        """A persisted runtime keeps one SQLite file per object under its path."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            await ns.get_by_name("a").put("k", 1)
            await ns.get_by_name("b").put("k", 1)
        files = [
            p for p in tmp_path.rglob("*.sqlite") if p.stem in {str(ns.id_from_name("a")), str(ns.id_from_name("b"))}
        ]
        assert len(files) == 2

    async def test_namespace_default_name_is_class_name(self) -> None:
        """A namespace is identified by `name`, by default the class's `__name__`."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            assert ns.name == "Obj"
            assert isinstance(ns, durable.Namespace)

    async def test_ids_are_keyed_by_namespace_name(self) -> None:
        """Ids are keyed by the namespace name: the same object name in two namespaces gives two ids."""
        async with durable.Runtime() as rt:
            a = rt.namespace(Obj, name="A")
            b = rt.namespace(Obj, name="B")
            assert str(a.id_from_name("x")) != str(b.id_from_name("x"))
            with pytest.raises(TypeError, match=r"^Durable Object ID is not valid for this namespace\.$"):
                b.id_from_string(str(a.id_from_name("x")))

    async def test_ids_are_stable_across_runtimes(self) -> None:
        """`id_from_name` is deterministic per (namespace, name), across runtimes too."""
        async with durable.Runtime() as rt1, durable.Runtime() as rt2:
            assert str(rt1.namespace(Obj).id_from_name("x")) == str(rt2.namespace(Obj).id_from_name("x"))

    async def test_kv_storage_has_no_sql(self) -> None:
        """`storage="kv"` gives a class the legacy key-value backend (no SQL)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(KvObj, storage="kv").get_by_name("a")
            await stub.put("k", 1)
            assert await stub.get("k") == 1

            def use_sql(obj: Any, ctx: durable.State) -> Any:
                return ctx.storage.sql

            with pytest.raises(Exception):  # noqa: B017 - any error will do
                await testing.run_in_object(stub, use_sql)

    async def test_bad_storage_option(self) -> None:
        """A `storage=` other than "sqlite" or "kv" is refused with an error naming it."""
        async with durable.Runtime() as rt:
            with pytest.raises(ValueError, match="storage"):
                rt.namespace(Obj, storage="redis")

    async def test_two_runtimes_on_one_path_are_refused(self, tmp_path: Path) -> None:
        """Two live runtimes on the same path are refused with a clear error, never shared."""
        async with durable.Runtime(path=tmp_path):
            with pytest.raises(durable.PathLockedError):
                async with durable.Runtime(path=tmp_path):
                    pass

    def test_runtime_in_another_process_is_refused(self, tmp_path: Path) -> None:
        """A runtime on a path held by a live runtime of another process is refused with a clear error."""
        import subprocess
        import sys

        holder = (
            "import asyncio, sys, durable\n"
            "async def main():\n"
            "    async with durable.Runtime(path=sys.argv[1]):\n"
            "        print('ready', flush=True)\n"
            "        await asyncio.to_thread(sys.stdin.readline)\n"
            "asyncio.run(main())\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", holder, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

            async def open_it() -> None:
                async with durable.Runtime(path=tmp_path):
                    pass

            with pytest.raises(durable.PathLockedError, match=str(proc.pid)):
                asyncio.run(open_it())
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=60)
            assert proc.stdout is not None
            proc.stdout.close()

    async def test_aclose_flushes(self, tmp_path: Path) -> None:
        """`await rt.aclose()` flushes everything: an un-awaited put is on disk afterwards."""
        rt = durable.Runtime(path=tmp_path)
        async with rt:
            stub = rt.namespace(Obj).get_by_name("a")

            def put(obj: Any, ctx: durable.State) -> None:
                ctx.storage.put("k", "v")  # not awaited

            await testing.run_in_object(stub, put)
        await rt.aclose()  # a second close is harmless
        async with durable.Runtime(path=tmp_path) as rt:
            assert await rt.namespace(Obj).get_by_name("a").get("k") == "v"

    async def test_aclose_stops_alarms(self) -> None:
        """`await rt.aclose()` stops alarms: one that falls due afterwards does not run."""
        Retrying.attempts = []
        Retrying.fail_times = 0
        clock = testing.MockClock(start=1000.0)
        rt = durable.Runtime(clock=clock)
        await rt.namespace(Retrying).get_by_name("a").arm(1000)
        await rt.aclose()
        await clock.advance(10)
        assert Retrying.attempts == []
        with pytest.raises(durable.RuntimeClosedError):
            await rt.namespace(Retrying).get_by_name("a").arm(1000)

    async def test_clock_option_takes_mock_clock(self) -> None:
        """`Runtime(clock=...)` takes a `durable.testing.MockClock`."""
        clock = testing.MockClock(start=1000.0)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Obj).get_by_name("a")

            def now(obj: Any, ctx: durable.State) -> Any:
                return ctx.storage.set_alarm(datetime.datetime.fromtimestamp(1001, datetime.UTC))

            await testing.run_in_object(stub, now)
            await clock.advance(2)
            assert not await testing.run_alarm(stub)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"clock": "now"}, "clock must be a durable.Clock"),
            ({"vars": ["X"]}, "vars must be a mapping"),
            ({"vars": {1: "x"}}, "vars must be a mapping of str names"),
        ],
    )
    def test_bad_runtime_options(self, kwargs: dict[str, Any], message: str) -> None:
        """Bad `Runtime(...)` options are refused at once with a TypeError naming the option."""
        with pytest.raises(TypeError, match=message):
            durable.Runtime(**kwargs)

    async def test_camel_case_namespace_aliases(self) -> None:
        """`idFromName`, `newUniqueId`, `idFromString`, `getByName` are aliases on the namespace."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.idFromName("a")
            assert oid == ns.id_from_name("a")
            assert ns.idFromString(str(oid)) == oid
            assert ns.newUniqueId().name is None
            assert ns.getByName("a").id == oid

    # -- ids -----------------------------------------------------------------------------------
    async def test_str_is_64_lowercase_hex(self) -> None:
        """`str(oid)` is 64 lowercase hex characters."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            for oid in (ns.id_from_name("a"), ns.new_unique_id()):
                text = str(oid)
                assert len(text) == 64 and text == text.lower() and int(text, 16) >= 0
                assert oid.to_string() == oid.toString() == text

    async def test_name(self) -> None:
        """`.name` is the name for `id_from_name` ids, else `None`."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            assert ns.id_from_name("a").name == "a"
            assert ns.new_unique_id().name is None
            assert ns.id_from_string(str(ns.new_unique_id())).name is None

    async def test_unique_ids_differ(self) -> None:
        """`new_unique_id()` gives a random id each time."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            assert ns.new_unique_id() != ns.new_unique_id()

    async def test_equality_and_hash(self) -> None:
        """Ids compare equal and hash by value; `.equals(other)` as well."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            a, b = ns.id_from_name("a"), ns.id_from_name("a")
            assert a == b and hash(a) == hash(b) and a.equals(b) and len({a, b}) == 1
            again = ns.id_from_string(str(a))
            assert again == a and again.equals(a) and hash(again) == hash(a)
            assert a != ns.id_from_name("b") and not a.equals(ns.id_from_name("b"))

    @pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "0" * 63, "0" * 65, " " + "0" * 64])
    async def test_id_from_string_refuses_malformed(self, bad: str) -> None:
        """`id_from_string`: TypeError for anything that is not 64 hex digits."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError, match=r"^Invalid Durable Object ID: must be 64 hex digits$"):
                rt.namespace(Obj).id_from_string(bad)

    async def test_id_from_string_refuses_non_str(self) -> None:
        """`id_from_string` refuses a non-str with a TypeError."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError):
                rt.namespace(Obj).id_from_string(12)  # type: ignore[arg-type]

    async def test_id_from_string_refuses_foreign(self) -> None:
        """`id_from_string`: TypeError for an id not of this namespace."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError, match=r"^Durable Object ID is not valid for this namespace\.$"):
                rt.namespace(Obj).id_from_string("0" * 64)

    async def test_id_from_string_accepts_uppercase(self) -> None:
        """Hex digits are accepted in either case (workerd decodes them case-insensitively)."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("a")
            assert ns.id_from_string(str(oid).upper()) == oid
            assert str(ns.id_from_string(str(oid).upper())) == str(oid)

    # -- stubs ---------------------------------------------------------------------------------
    async def test_get_is_lazy(self) -> None:
        """`namespace.get(id)` is lazy: it creates nothing."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            ns.get(ns.id_from_name("a"))
            ns.get_by_name("b")
            assert await testing.list_ids(ns) == []

    async def test_get_by_name(self) -> None:
        """`get_by_name("A")` == `get(id_from_name("A"))`."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            await ns.get_by_name("A").put("k", 1)
            assert await ns.get(ns.id_from_name("A")).get("k") == 1

    async def test_stub_id_and_name(self) -> None:
        """`Stub`: `.id`, `.name`."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            stub = ns.get_by_name("A")
            assert isinstance(stub, durable.Stub)
            assert stub.id == ns.id_from_name("A") and stub.name == "A"
            uid = ns.new_unique_id()
            assert ns.get(uid).id == uid and ns.get(uid).name is None

    async def test_get_refuses_foreign_id(self) -> None:
        """`get()` refuses an id of another namespace (TypeError, Cloudflare's text)."""
        async with durable.Runtime() as rt:
            a, b = rt.namespace(Obj, name="A"), rt.namespace(Obj, name="B")
            with pytest.raises(TypeError, match="not valid for this namespace"):
                b.get(a.id_from_name("x"))

    async def test_get_refuses_non_id(self) -> None:
        """`get()` refuses something that is not a `DurableObjectId`."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError):
                rt.namespace(Obj).get("a")  # type: ignore[arg-type]

    async def test_arguments_and_results_are_copied(self) -> None:
        """RPC: arguments and results are copied (structured clone)."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            arg: list[Any] = ["x"]
            result = await stub.mutate(arg)
            assert arg == ["x"] and result == ["x", "changed"]
            with pytest.raises(durable.DataCloneError):
                await stub.echo(object())

    async def test_one_live_instance_per_id(self) -> None:
        """`stub.<method>` calls the method on the one live instance for that id."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            s1, s2 = ns.get_by_name("a"), ns.get(ns.id_from_name("a"))

            def ident(obj: Any, ctx: durable.State) -> int:
                return id(obj)

            assert await testing.run_in_object(s1, ident) == await testing.run_in_object(s2, ident)

    async def test_fetch_with_url_and_init(self) -> None:
        """`await stub.fetch(url_or_request, **init)` returns a `durable.Response`."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            resp = await stub.fetch("http://do/path", method="POST")
            assert isinstance(resp, durable.Response)
            assert await resp.text() == "POST http://do/path"
            resp = await stub.fetch(durable.Request("http://do/r", method="PUT"))
            assert await resp.text() == "PUT http://do/r"

    async def test_fetch_without_handler(self) -> None:
        """`stub.fetch` on a class without `fetch` fails with workerd's text `Handler does not export a fetch() function.`"""
        async with durable.Runtime() as rt:
            with pytest.raises(Exception, match=r"^Handler does not export a fetch\(\) function\.") as info:
                await rt.namespace(Uses).get_by_name("a").fetch("http://do/")
            assert info.value.remote is True  # type: ignore[attr-defined]

    async def test_request_and_response_cross_rpc(self) -> None:
        """As in workerd, a `Request` may be an RPC argument and a `Response` an RPC result."""

        class Http(durable.DurableObject):
            async def resp(self) -> durable.Response:
                return durable.Response("hi", status=201)

            async def takes(self, request: durable.Request) -> str:
                return f"{request.method} {await request.text()}"

        async with durable.Runtime() as rt:
            stub = rt.namespace(Http).get_by_name("a")
            resp = await stub.resp()
            assert resp.status == 201 and await resp.text() == "hi"
            assert await stub.takes(durable.Request("http://x/", method="POST", body="b")) == "POST b"

    async def test_fetch_refuses_relative_url(self) -> None:
        """The URL must be absolute, as on Cloudflare (TypeError)."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError):
                await rt.namespace(Obj).get_by_name("a").fetch("/relative")

    async def test_stub_cannot_be_constructed(self) -> None:
        """Stubs and ids are minted by the runtime, never constructed by users."""
        with pytest.raises(TypeError):
            durable.Stub()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            durable.DurableObjectId()  # type: ignore[call-arg]

    # -- errors --------------------------------------------------------------------------------
    async def test_remote_exception(self) -> None:
        """An exception raised inside the object reaches the caller as the same class and message, `remote = True`."""
        async with durable.Runtime() as rt:
            with pytest.raises(ValueError, match="^boom$") as info:
                await rt.namespace(Obj).get_by_name("a").fail("boom")
            assert type(info.value) is ValueError
            assert info.value.remote is True  # type: ignore[attr-defined]

    async def test_plain_error_does_not_break_stub(self) -> None:
        """A plain user exception does not break the stub."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(ValueError):
                await stub.fail("boom")
            assert await stub.echo(1) == 1

    async def test_runtime_error_flags(self) -> None:
        """Errors of the runtime carry `retryable`, `overloaded`, `durable_object_reset` (all bool)."""
        async with durable.Runtime() as rt:
            with pytest.raises(durable.DurableError) as info:
                await rt.namespace(Obj).get_by_name("a").abort_now("why")
            err = info.value
            for flag in ("retryable", "overloaded", "durable_object_reset"):
                assert type(getattr(err, flag)) is bool
            assert err.durable_object_reset is True
            assert err.durableObjectReset is True
            for cls in (
                durable.ObjectResetError,
                durable.OverloadedError,
                durable.ConnectionClosedError,
                durable.DurableError,
            ):
                for flag in ("retryable", "overloaded", "durable_object_reset", "remote"):
                    assert type(getattr(cls("x"), flag)) is bool

    async def test_reset_breaks_the_stub(self) -> None:
        """After a reset error the stub is broken; `namespace.get(id)` gives a working stub, reaching a fresh instance."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            stub = ns.get_by_name("a")
            await stub.put("k", 1)
            with pytest.raises(durable.ObjectResetError, match="why") as first:
                await stub.abort_now("why")
            with pytest.raises(durable.ObjectResetError, match="why") as again:
                await stub.echo(1)
            assert type(again.value) is type(first.value)
            fresh = ns.get(stub.id)
            assert await fresh.echo(2) == 2
            assert await fresh.get("k") == 1
            assert await fresh.get("unflushed") is None

    # -- resets --------------------------------------------------------------------------------
    async def test_constructor_error_breaks_stub_with_flags(self) -> None:
        """A constructor that raises resets the object: the caller gets the error with `durable_object_reset`, and so does every later call on that stub."""
        FailingConstructor.failures = 1
        async with durable.Runtime() as rt:
            ns = rt.namespace(FailingConstructor)
            stub = ns.get_by_name("a")
            for _ in range(2):
                with pytest.raises(LookupError, match="^constructor failed$") as info:
                    await stub.hi()
                assert info.value.durable_object_reset is True  # type: ignore[attr-defined]
                assert info.value.remote is True  # type: ignore[attr-defined]
            assert await ns.get_by_name("a").hi() == "hi"

    async def test_block_concurrency_while_error_breaks_stub_with_flags(self) -> None:
        """If `fn` given to `block_concurrency_while` raises, the caller gets that error as a reset error, and the stub stays broken."""
        Blocking.release = asyncio.Event()
        Blocking.release.set()
        async with durable.Runtime() as rt:
            ns = rt.namespace(Blocking)
            stub = ns.get_by_name("a")
            with pytest.raises(KeyError, match="inside") as info:
                await stub.bcw_fail()
            assert info.value.durable_object_reset is True  # type: ignore[attr-defined]
            with pytest.raises(KeyError, match="inside") as again:
                await stub.bcw(1)
            assert again.value.durable_object_reset is True  # type: ignore[attr-defined]
            assert await ns.get_by_name("a").bcw(2) == 2

    # -- env -----------------------------------------------------------------------------------
    async def test_env_bindings(self) -> None:
        """`rt.env` gives every namespace registered with `name=` plus `Runtime(vars=...)`; objects see it as `self.env`."""
        async with durable.Runtime(vars={"GREETING": "hi"}) as rt:
            other = rt.namespace(Obj, name="OTHER")
            uses = rt.namespace(Uses, name="USES")
            assert isinstance(rt.env, durable.Env)
            assert rt.env.OTHER is other and rt.env.USES is uses
            assert rt.env.GREETING == "hi"
            assert await uses.get_by_name("a").read() == ("hi", "via env")

    async def test_unknown_binding(self) -> None:
        """A missing binding raises AttributeError naming it."""
        async with durable.Runtime() as rt:
            with pytest.raises(AttributeError, match="NOPE"):
                rt.env.NOPE


# == 3. Inside an object: State ====================================================================


class Blocking(durable.DurableObject):
    """Loads in its constructor with an un-awaited block_concurrency_while."""

    release: asyncio.Event

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.loaded = False
        ctx.block_concurrency_while(self.load)  # not awaited, as in Cloudflare's examples

    async def load(self) -> None:
        await type(self).release.wait()
        self.loaded = True

    async def is_loaded(self) -> bool:
        return self.loaded

    async def bcw(self, value: Any) -> Any:
        async def cb() -> Any:
            return value

        return await self.ctx.block_concurrency_while(cb)

    async def bcw_fail(self) -> None:
        async def cb() -> None:
            raise KeyError("inside")

        await self.ctx.blockConcurrencyWhile(cb)

    async def later(self, done: list[int]) -> str:
        async def work() -> None:
            await asyncio.sleep(0)
            await self.ctx.storage.put("later", "done")

        self.ctx.wait_until(work())
        return "returned"


class Alarmed(durable.DurableObject):
    seen: list[Any] = []
    failures = 0

    async def arm(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        type(self).seen.append(info)
        if type(self).failures:
            type(self).failures -= 1
            raise RuntimeError("fail")


class TestState:
    """Inside an object: State."""

    # -- state ---------------------------------------------------------------------------------
    async def test_id_and_storage(self) -> None:
        """`ctx.id` is the object's `DurableObjectId`, `ctx.storage` a `durable.Storage`."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")

            def look(obj: Any, ctx: durable.State) -> Any:
                return ctx.id, ctx.storage, obj.ctx is ctx

            oid, storage, same = await testing.run_in_object(stub, look)
            assert oid == stub.id and oid.name == "a" and same
            assert isinstance(storage, durable.Storage)

    async def test_block_concurrency_while_from_constructor(self) -> None:
        """A constructor can call `block_concurrency_while` without `await`; the first event still waits for it."""
        Blocking.release = asyncio.Event()
        async with durable.Runtime() as rt:
            stub = rt.namespace(Blocking).get_by_name("a")
            call = asyncio.ensure_future(stub.is_loaded())
            await settle()
            assert not call.done()
            Blocking.release.set()
            assert await call is True

    async def test_block_concurrency_while_returns_result(self) -> None:
        """`await ctx.block_concurrency_while(fn)` returns `fn()`'s result."""
        Blocking.release = asyncio.Event()
        Blocking.release.set()
        async with durable.Runtime() as rt:
            assert await rt.namespace(Blocking).get_by_name("a").bcw({"x": 1}) == {"x": 1}

    async def test_block_concurrency_while_raising_resets(self) -> None:
        """If `fn` raises, the object is reset."""
        Blocking.release = asyncio.Event()
        Blocking.release.set()
        async with durable.Runtime() as rt:
            ns = rt.namespace(Blocking)
            stub = ns.get_by_name("a")

            def instance(obj: Any, ctx: durable.State) -> Any:
                return obj  # held below, so a new instance cannot reuse its id

            before = await testing.run_in_object(stub, instance)
            with pytest.raises(BaseException):  # noqa: B017 - any error will do
                await stub.bcw_fail()
            assert await testing.run_in_object(ns.get_by_name("a"), instance) is not before

    async def test_wait_until(self) -> None:
        """`ctx.wait_until(awaitable)` keeps the work running past the response."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Blocking)
            Blocking.release = asyncio.Event()
            Blocking.release.set()
            stub = ns.get_by_name("a")
            assert await stub.later([]) == "returned"
            await settle(10)

            def read(obj: Any, ctx: durable.State) -> Any:
                return ctx.storage.get("later")

            assert await testing.run_in_object(stub, read) == "done"

    async def test_wait_until_alias(self) -> None:
        """`waitUntil` and `blockConcurrencyWhile` are aliases on `ctx`."""
        assert durable.State.waitUntil is durable.State.wait_until
        assert durable.State.blockConcurrencyWhile is durable.State.block_concurrency_while

    async def test_abort_with_reason(self) -> None:
        """`ctx.abort(reason)` resets now: pending writes dropped, the call fails with a reset error including `reason`."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            with pytest.raises(durable.DurableError, match="my reason") as info:
                await stub.abort_now("my reason")
            assert info.value.durable_object_reset is True
            assert await rt.namespace(Obj).get_by_name("a").get("unflushed") is None

    async def test_abort_default_reason(self) -> None:
        """`ctx.abort()` without a reason fails the call with Cloudflare's default text."""
        async with durable.Runtime() as rt:
            with pytest.raises(durable.DurableError, match=r"^Application called abort\(\) to reset Durable Object\.$"):
                await rt.namespace(Obj).get_by_name("a").abort_now(None)

    # -- alarm info ----------------------------------------------------------------------------
    async def test_fields(self) -> None:
        """`AlarmInfo`: `retry_count` (0 first), `is_retry` (bool), `scheduled_time` (int ms); retries count up."""
        Alarmed.seen = []
        Alarmed.failures = 1
        clock = testing.MockClock(start=1_000_000.0)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Alarmed).get_by_name("a")
            await stub.arm(1_000_000_500)
            await clock.advance(60)
        first, second = Alarmed.seen
        assert isinstance(first, durable.AlarmInfo)
        assert (first.retry_count, first.is_retry, first.scheduled_time) == (0, False, 1_000_000_500)
        assert (second.retry_count, second.is_retry) == (1, True)
        assert type(first.scheduled_time) is int and type(first.is_retry) is bool
        assert (first.retryCount, first.isRetry, first.scheduledTime) == (0, False, 1_000_000_500)


# == 4. Storage =====================================================================================


class Store(durable.DurableObject):
    """Runs a storage scenario given as a function name, so every test reaches storage from inside."""

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


class KvStore(Store):
    pass


async def inside(fn: Any, *, storage: str = "sqlite", runtime: durable.Runtime | None = None, name: str = "a") -> Any:
    """Run ``fn(ctx.storage)`` inside an object of a fresh runtime (or ``runtime``) and return its result."""

    async def body(obj: Any, ctx: durable.State) -> Any:
        result = fn(ctx.storage)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        return result

    if runtime is not None:
        ns = runtime.namespace(KvStore if storage == "kv" else Store, storage=storage)
        return await testing.run_in_object(ns.get_by_name(name), body)
    async with durable.Runtime() as rt:
        ns = rt.namespace(KvStore if storage == "kv" else Store, storage=storage)
        return await testing.run_in_object(ns.get_by_name(name), body)


BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "kv"])


class TestStorage:
    """Storage."""

    # -- storage key value ---------------------------------------------------------------------
    @BACKENDS
    async def test_unawaited_put_happens(self, backend: str) -> None:
        """Every method applies its effect when called and returns an awaitable: an un-awaited `put` still happens."""

        async def body(s: durable.Storage) -> Any:
            result = s.put("k", 1)
            assert hasattr(result, "__await__")
            s.delete("gone")
            return await s.get("k")

        assert await inside(body, storage=backend) == 1

    @BACKENDS
    async def test_get_single_and_many(self, backend: str) -> None:
        """`get(key)` gives the value or None; `get([keys])` a dict of the keys that exist, sorted by key."""

        async def body(s: durable.Storage) -> Any:
            await s.put({"b": 2, "a": 1, "c": 3})
            many = await s.get(["c", "missing", "a"])
            return await s.get("a"), await s.get("missing"), many, list(many)

        one, missing, many, order = await inside(body, storage=backend)
        assert one == 1 and missing is None
        assert many == {"a": 1, "c": 3} and order == ["a", "c"] and type(many) is dict

    @BACKENDS
    async def test_put_returns_none(self, backend: str) -> None:
        """`put(key, value)` / `put({k: v})` return None."""

        async def body(s: durable.Storage) -> Any:
            return await s.put("k", 1), await s.put({"a": 1})  # type: ignore[func-returns-value]

        assert await inside(body, storage=backend) == (None, None)

    @BACKENDS
    async def test_delete_returns_bool_and_int(self, backend: str) -> None:
        """`delete(key)` returns bool (existed); `delete([keys])` an int (how many existed)."""

        async def body(s: durable.Storage) -> Any:
            await s.put({"a": 1, "b": 2})
            return await s.delete("a"), await s.delete("a"), await s.delete(["b", "c"])

        first, second, count = await inside(body, storage=backend)
        assert first is True and second is False
        assert count == 1 and type(count) is int

    @BACKENDS
    async def test_delete_all(self, backend: str) -> None:
        """`delete_all()` returns None and also removes the alarm."""

        async def body(s: durable.Storage) -> Any:
            await s.put("a", 1)
            await s.set_alarm(4 * 10**12)
            result = await s.delete_all()  # type: ignore[func-returns-value]
            return result, await s.list(), await s.get_alarm()

        assert await inside(body, storage=backend) == (None, {}, None)

    async def test_delete_all_drops_sql_tables(self) -> None:
        """`delete_all()` on a SQLite-backed object removes all SQL tables."""

        async def body(s: durable.Storage) -> Any:
            s.sql.exec("CREATE TABLE t (x)")
            s.sql.exec("INSERT INTO t VALUES (1)")
            await s.delete_all()
            return s.sql.exec("SELECT name FROM sqlite_master WHERE name = 't'").to_array()

        assert await inside(body) == []

    @BACKENDS
    async def test_list_options(self, backend: str) -> None:
        """`list(start=, start_after=, end=, prefix=, reverse=, limit=)` returns an ordered dict."""

        async def body(s: durable.Storage) -> Any:
            await s.put({k: i for i, k in enumerate(["a", "b", "ba", "bb", "c", "d"])})
            return [
                list(await s.list()),
                list(await s.list(start="b")),
                list(await s.list(start_after="b")),
                list(await s.list(startAfter="b")),
                list(await s.list(end="c")),
                list(await s.list(prefix="b")),
                list(await s.list(reverse=True)),
                list(await s.list(reverse=True, limit=2)),
                list(await s.list(limit=2)),
                list(await s.list(start="b", end="c", reverse=True)),
                type(await s.list()),
            ]

        got = await inside(body, storage=backend)
        assert got == [
            ["a", "b", "ba", "bb", "c", "d"],
            ["b", "ba", "bb", "c", "d"],
            ["ba", "bb", "c", "d"],
            ["ba", "bb", "c", "d"],
            ["a", "b", "ba", "bb"],
            ["b", "ba", "bb"],
            ["d", "c", "bb", "ba", "b", "a"],
            ["d", "c"],
            ["a", "b"],
            ["bb", "ba", "b"],
            dict,
        ]

    @BACKENDS
    async def test_list_code_point_order(self, backend: str) -> None:
        """`list()` orders keys by code point."""
        keys = ["z", "é", "\uffff", "\U0001f600", "A", "", "a\x00"]

        async def body(s: durable.Storage) -> Any:
            await s.put({k: 1 for k in keys})
            return list(await s.list()), list(await s.get(keys))

        listed, got = await inside(body, storage=backend)
        assert listed == sorted(keys) and got == sorted(keys)

    @BACKENDS
    async def test_list_errors(self, backend: str) -> None:
        """`list()` refuses both start and start_after, and a limit that is not positive, with Cloudflare's texts."""

        async def body(s: durable.Storage) -> Any:
            errors = []
            for kwargs in ({"start": "a", "start_after": "b"}, {"limit": 0}, {"limit": -1}):
                try:
                    await s.list(**kwargs)
                except TypeError as exc:
                    errors.append(str(exc))
            return errors

        assert await inside(body, storage=backend) == [
            "list() cannot be called with both start and startAfter values.",
            "List limit must be positive.",
            "List limit must be positive.",
        ]

    @BACKENDS
    async def test_keyword_options(self, backend: str) -> None:
        """Keyword options `allow_concurrency=`, `allow_unconfirmed=`, `no_cache=` (and camelCase) are accepted."""

        async def body(s: durable.Storage) -> Any:
            await s.put("k", 1, allow_unconfirmed=True, no_cache=True, allow_concurrency=True)
            await s.put("j", 2, allowUnconfirmed=True, noCache=True, allowConcurrency=True)
            a = await s.get("k", allow_concurrency=True, no_cache=True)
            b = await s.get("j", allowConcurrency=True, noCache=True)
            c = await s.list(allow_concurrency=True, no_cache=True)
            d = await s.delete("k", allow_unconfirmed=True)
            await s.delete_all(allow_unconfirmed=True)
            await s.set_alarm(4 * 10**12, allow_concurrency=True, allow_unconfirmed=True)
            e = await s.get_alarm(allow_concurrency=True)
            await s.delete_alarm(allow_concurrency=True, allow_unconfirmed=True)
            return a, b, c, d, e

        assert await inside(body, storage=backend) == (1, 2, {"j": 2, "k": 1}, True, 4 * 10**12)

    @BACKENDS
    async def test_unknown_option(self, backend: str) -> None:
        """An unknown keyword option is a TypeError naming it."""

        async def body(s: durable.Storage) -> Any:
            with pytest.raises(TypeError, match="bogus"):
                await s.get("k", bogus=True)
            return True

        assert await inside(body, storage=backend)

    @BACKENDS
    async def test_keys_are_str(self, backend: str) -> None:
        """Keys are `str`: another type is refused with a TypeError."""

        async def body(s: durable.Storage) -> Any:
            for call in (lambda: s.get(1), lambda: s.put(1, "v"), lambda: s.delete(1), lambda: s.put({1: "v"})):  # type: ignore[arg-type,call-overload,dict-item]
                with pytest.raises(TypeError):
                    await call()
            return True

        assert await inside(body, storage=backend)

    @BACKENDS
    async def test_sync(self, backend: str) -> None:
        """`sync()` returns an awaitable that completes when every earlier write is durable."""

        async def body(s: durable.Storage) -> Any:
            s.put("k", 1)
            return await s.sync()

        assert await inside(body, storage=backend) is None

    async def test_camel_case_storage_aliases(self) -> None:
        """`deleteAll`, `getAlarm`, `setAlarm`, `deleteAlarm`, `transactionSync` are aliases."""
        s = durable.Storage
        assert s.deleteAll is s.delete_all and s.getAlarm is s.get_alarm and s.setAlarm is s.set_alarm
        assert s.deleteAlarm is s.delete_alarm and s.transactionSync is s.transaction_sync

    # -- storage values ------------------------------------------------------------------------
    @BACKENDS
    async def test_structured_clone_types(self, backend: str) -> None:
        """Every listed structured-clone type round-trips, NaN, infinities and -0.0 kept."""
        value = {
            "none": None,
            "bools": [True, False],
            "big": 2**200,
            "neg": -(2**70),
            "floats": [1.5, math.inf, -math.inf],
            "str": "héllo\U0001f600",
            "bytes": b"\x00\xff",
            "bytearray": bytearray(b"ab"),
            "tuple": (1, "a"),
            "set": {1, 2},
            "frozenset": frozenset({"x"}),
            "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
            "naive": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "date": datetime.date(2024, 1, 2),
            "time": datetime.time(3, 4, 5),
            "timedelta": datetime.timedelta(days=1, microseconds=3),
            "decimal": decimal.Decimal("1.10"),
            "uuid": uuid.UUID(int=5),
            1: "int key",
            (1, 2): "tuple key",
            None: "none key",
        }

        async def body(s: durable.Storage) -> Any:
            await s.put("v", value)
            await s.put("nan", math.nan)
            await s.put("negzero", -0.0)
            return await s.get("v"), await s.get("nan"), await s.get("negzero")

        got, nan, negzero = await inside(body, storage=backend)
        assert got == value
        for key in value:
            assert type(got[key]) is type(value[key]), key
        assert math.isnan(nan) and math.copysign(1.0, negzero) == -1.0

    @BACKENDS
    async def test_shared_references_and_cycles(self, backend: str) -> None:
        """Shared references and cycles are preserved."""

        async def body(s: durable.Storage) -> Any:
            shared: list[Any] = [1]
            cyclic: list[Any] = []
            cyclic.append(cyclic)
            d: dict[str, Any] = {}
            d["self"] = d
            await s.put("v", {"a": shared, "b": shared, "c": cyclic, "d": d})
            return await s.get("v")

        got = await inside(body, storage=backend)
        assert got["a"] is got["b"]
        assert got["c"][0] is got["c"]
        assert got["d"]["self"] is got["d"]

    @BACKENDS
    async def test_values_are_copied(self, backend: str) -> None:
        """A value is copied on `put` and on `get`: mutating it afterwards changes nothing stored."""

        async def body(s: durable.Storage) -> Any:
            value: dict[str, Any] = {"list": [1]}
            await s.put("v", value)
            value["list"].append(2)
            first = await s.get("v")
            first["list"].append(3)
            return await s.get("v")

        assert await inside(body, storage=backend) == {"list": [1]}

    @BACKENDS
    @pytest.mark.parametrize("bad", [object(), lambda: 1, {"nested": [object()]}, Path("/x")])
    async def test_unsupported_values(self, backend: str, bad: Any) -> None:
        """Anything else raises `durable.DataCloneError` (a TypeError) naming the type."""

        async def body(s: durable.Storage) -> Any:
            with pytest.raises(durable.DataCloneError) as info:
                await s.put("v", bad)
            assert isinstance(info.value, TypeError)
            return str(info.value), await s.get("v")

        message, stored = await inside(body, storage=backend)
        inner = bad["nested"][0] if isinstance(bad, dict) else bad
        assert type(inner).__name__ in message
        assert stored is None

    # -- storage limits ------------------------------------------------------------------------
    async def test_kv_key_limit(self) -> None:
        """KV classes: keys at most 2048 UTF-8 bytes, else StorageLimitError with Cloudflare's message."""

        async def body(s: durable.Storage) -> Any:
            await s.put("é" * 1024, 1)  # 2048 bytes: allowed
            with pytest.raises(durable.StorageLimitError) as info:
                await s.put("é" * 1024 + "x", 1)
            assert isinstance(info.value, ValueError)
            return str(info.value)

        assert (
            await inside(body, storage="kv")
            == "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."
        )

    async def test_kv_value_limit(self) -> None:
        """KV classes: values at most 131072 bytes encoded."""

        async def body(s: durable.Storage) -> Any:
            with pytest.raises(
                durable.StorageLimitError,
                match=r"^Values cannot be larger than 131072 bytes\. A value of size \d+ was provided\.$",
            ):
                await s.put("k", b"x" * 131073)
            return await s.get("k")

        assert await inside(body, storage="kv") is None

    @pytest.mark.parametrize("op", ["get", "put", "delete"])
    async def test_kv_batch_limit(self, op: str) -> None:
        """KV classes: at most 128 keys per `get`/`put`/`delete` call."""

        async def body(s: durable.Storage) -> Any:
            keys = [f"k{i}" for i in range(129)]
            call = {
                "get": lambda: s.get(keys),
                "put": lambda: s.put(dict.fromkeys(keys, 1)),
                "delete": lambda: s.delete(keys),
            }[op]
            with pytest.raises(
                durable.StorageLimitError,
                match=r"^Maximum number of key value pairs is 128\. 129 pairs were provided\.$",
            ):
                await call()  # type: ignore[no-untyped-call]
            return True

        assert await inside(body, storage="kv")

    async def test_sqlite_size_limit(self) -> None:
        """SQLite-backed classes: key plus value at most 2 MB."""

        async def body(s: durable.Storage) -> Any:
            await s.put("k", b"x" * 1_000_000)
            with pytest.raises(durable.StorageLimitError):
                await s.put("k", b"x" * 2_100_000)
            return len(await s.get("k"))

        assert await inside(body) == 1_000_000

    async def test_limits_can_be_relaxed(self) -> None:
        """`Runtime(limits=...)` can relax the limits."""
        async with durable.Runtime(limits=durable.Limits.unlimited()) as rt:

            async def body(s: durable.Storage) -> Any:
                await s.put("k" * 3000, b"x" * 200_000)
                return len(await s.get("k" * 3000))

            assert await inside(body, storage="kv", runtime=rt) == 200_000

    # -- transactions --------------------------------------------------------------------------
    @BACKENDS
    async def test_transaction(self, backend: str) -> None:
        """`transaction(fn)` returns `await fn(txn)`'s result; txn has get/put/delete/list/rollback and alarm methods."""

        async def body(s: durable.Storage) -> Any:
            async def fn(txn: Any) -> Any:
                await txn.put("a", 1)
                await txn.put({"b": 2})
                got = await txn.get("a"), await txn.list()
                assert await txn.delete("b") is True
                await txn.set_alarm(4 * 10**12)
                alarm = await txn.get_alarm()
                await txn.delete_alarm()
                await txn.setAlarm(4 * 10**12)
                return got, alarm

            result = await s.transaction(fn)
            return result, await s.list(), await s.get_alarm()

        assert await inside(body, storage=backend) == (((1, {"a": 1, "b": 2}), 4 * 10**12), {"a": 1}, 4 * 10**12)

    @BACKENDS
    async def test_rollback(self, backend: str) -> None:
        """`txn.rollback()` discards the transaction's writes; the closure's result is still returned."""

        async def body(s: durable.Storage) -> Any:
            async def fn(txn: Any) -> str:
                await txn.put("a", 1)
                txn.rollback()
                return "result"

            return await s.transaction(fn), await s.get("a")

        assert await inside(body, storage=backend) == ("result", None)

    @BACKENDS
    async def test_raising_closure_rolls_back(self, backend: str) -> None:
        """A closure that raises rolls back, and the error reaches the caller."""

        async def body(s: durable.Storage) -> Any:
            async def fn(txn: Any) -> None:
                await txn.put("a", 1)
                raise LookupError("no")

            with pytest.raises(LookupError, match="no"):
                await s.transaction(fn)
            return await s.get("a")

        assert await inside(body, storage=backend) is None

    @BACKENDS
    async def test_txn_misuse(self, backend: str) -> None:
        """`txn` refuses `delete_all`, use after `rollback()` and use after the closure, with workerd's texts."""

        async def body(s: durable.Storage) -> Any:
            kept: list[Any] = []
            errors: list[str] = []

            async def fn(txn: Any) -> None:
                kept.append(txn)
                try:
                    txn.delete_all()
                except RuntimeError as exc:
                    errors.append(str(exc))
                txn.rollback()
                txn.rollback()  # may be called more than once
                try:
                    await txn.put("a", 1)
                except RuntimeError as exc:
                    errors.append(str(exc))

            await s.transaction(fn)
            try:
                await kept[0].get("a")
            except RuntimeError as exc:
                errors.append(str(exc))

            async def fn2(txn: Any) -> None:
                kept.append(txn)

            await s.transaction(fn2)
            try:
                await kept[1].get("a")
            except RuntimeError as exc:
                errors.append(str(exc))
            return errors

        assert await inside(body, storage=backend) == [
            "Cannot call deleteAll() within a transaction",
            "Cannot put() on rolled back transaction",
            "Cannot get() on rolled back transaction",
            "Cannot call get() on transaction that has already committed: did you move `txn` outside of the closure?",
        ]

    async def test_transaction_sync(self) -> None:
        """`transaction_sync(fn)` returns `fn()`'s result (SQLite-backed only)."""

        async def body(s: durable.Storage) -> Any:
            def fn() -> int:
                s.sql.exec("CREATE TABLE t (x)")
                s.kv.put("k", 1)
                return 7

            return s.transaction_sync(fn), s.kv.get("k")

        assert await inside(body) == (7, 1)

    # -- alarm methods -------------------------------------------------------------------------
    @BACKENDS
    async def test_alarm_methods(self, backend: str) -> None:
        """`get_alarm()` returns int ms or None; `set_alarm(when)` takes ms or a datetime; all return None."""

        async def body(s: durable.Storage) -> Any:
            out = [await s.get_alarm(), await s.set_alarm(2_000_000_000_000), await s.get_alarm()]  # type: ignore[func-returns-value]
            when = datetime.datetime(2040, 1, 1, tzinfo=datetime.UTC)
            await s.set_alarm(when)
            out.append(await s.get_alarm())
            out.append(await s.delete_alarm())  # type: ignore[func-returns-value]
            out.append(await s.get_alarm())
            return out

        got = await inside(body, storage=backend)
        assert got == [None, None, 2_000_000_000_000, 2208988800000, None, None]
        assert type(got[2]) is int

    async def test_past_alarm_is_clamped_to_now(self) -> None:
        """A time in the past is clamped to now, as workerd does: `get_alarm()` and `scheduled_time` read now."""
        Alarmed.seen = []
        Alarmed.failures = 0
        clock = testing.MockClock(start=5_000.0)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Alarmed).get_by_name("a")

            async def body(obj: Any, ctx: durable.State) -> Any:
                await ctx.storage.set_alarm(1_000)
                return await ctx.storage.get_alarm()

            assert await testing.run_in_object(stub, body) == 5_000_000
            await clock.advance(0)
        assert [info.scheduled_time for info in Alarmed.seen] == [5_000_000]

    @BACKENDS
    async def test_set_alarm_refuses_nonpositive(self, backend: str) -> None:
        """`set_alarm` refuses a time <= 0 (TypeError, Cloudflare's text)."""

        async def body(s: durable.Storage) -> Any:
            with pytest.raises(TypeError, match=r"^setAlarm\(\) cannot be called with an alarm time <= 0$"):
                await s.set_alarm(0)
            return True

        assert await inside(body, storage=backend)

    async def test_set_alarm_without_handler(self) -> None:
        """A class without `alarm()` cannot set an alarm (TypeError, Cloudflare's text)."""
        async with durable.Runtime() as rt:

            async def body(obj: Any, ctx: durable.State) -> Any:
                await ctx.storage.set_alarm(4 * 10**12)

            with pytest.raises(
                TypeError,
                match=r"^Your Durable Object class must have an alarm\(\) handler in order to call setAlarm\(\)$",
            ):
                await testing.run_in_object(rt.namespace(SyncHandlers).get_by_name("a"), body)

    # -- sql -----------------------------------------------------------------------------------
    async def test_exec_and_cursor(self) -> None:
        """`sql.exec(query, *bindings) -> SqlCursor`: iterable rows (mapping and attribute access), to_array, one, raw, columns, counts."""

        async def body(s: durable.Storage) -> Any:
            sql = s.sql
            assert isinstance(sql, durable.SqlStorage)
            sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            write = sql.exec("INSERT INTO t (name) VALUES (?), (?)", "a", "b")
            assert isinstance(write, durable.SqlCursor)
            written = write.rows_written
            rows = list(sql.exec("SELECT * FROM t ORDER BY id"))
            arr = sql.exec("SELECT name FROM t ORDER BY id").to_array()
            one = sql.exec("SELECT name FROM t WHERE id = ?", 1).one()
            raw = list(sql.exec("SELECT id, name FROM t ORDER BY id").raw())
            cur = sql.exec("SELECT id, name FROM t")
            cur.to_array()
            return (
                written,
                [(r["id"], r.name) for r in rows],
                [dict(r) for r in arr],
                one["name"],
                [list(r) for r in raw],
                cur.column_names,
                cur.rows_read,
                cur.columnNames,
                cur.rowsRead,
            )

        got = await inside(body)
        assert got == (
            2,
            [(1, "a"), (2, "b")],
            [{"name": "a"}, {"name": "b"}],
            "a",
            [[1, "a"], [2, "b"]],
            ["id", "name"],
            2,
            ["id", "name"],
            2,
        )

    async def test_to_array_alias(self) -> None:
        """`toArray` is an alias of `to_array`, `databaseSize` of `database_size`."""

        async def body(s: durable.Storage) -> Any:
            s.sql.exec("CREATE TABLE t (x)")
            return s.sql.exec("SELECT 1 AS x").toArray()[0]["x"], s.sql.databaseSize == s.sql.database_size

        assert await inside(body) == (1, True)

    async def test_database_size(self) -> None:
        """`database_size` is an int number of bytes that grows with data."""

        async def body(s: durable.Storage) -> Any:
            before = s.sql.database_size
            s.sql.exec("CREATE TABLE t (x)")
            s.sql.exec("INSERT INTO t VALUES (?)", b"x" * 100_000)
            return before, s.sql.database_size

        before, after = await inside(body)
        assert type(before) is int and after > before

    async def test_one_errors(self) -> None:
        """`one()` raises unless exactly one row."""

        async def body(s: durable.Storage) -> Any:
            s.sql.exec("CREATE TABLE t (x)")
            errors = []
            with pytest.raises(durable.DurableError) as info:
                s.sql.exec("SELECT * FROM t").one()
            errors.append(str(info.value))
            s.sql.exec("INSERT INTO t VALUES (1), (2)")
            with pytest.raises(durable.DurableError) as info:
                s.sql.exec("SELECT * FROM t").one()
            errors.append(str(info.value))
            return errors

        assert await inside(body) == [
            "Expected exactly one result from SQL query, but got no results.",
            "Expected exactly one result from SQL query, but got multiple results.",
        ]

    async def test_sql_error_code(self) -> None:
        """SQL failures raise `durable.SqlError` (a DurableError) whose message ends with `: SQLITE_<CODE>`."""

        async def body(s: durable.Storage) -> Any:
            s.sql.exec("CREATE TABLE t (x PRIMARY KEY)")
            s.sql.exec("INSERT INTO t VALUES (1)")
            with pytest.raises(durable.SqlError) as info:
                s.sql.exec("INSERT INTO t VALUES (1)")
            assert isinstance(info.value, durable.DurableError)
            return str(info.value)

        assert (await inside(body)).endswith(": SQLITE_CONSTRAINT")

    async def test_no_sql_on_kv(self) -> None:
        """A KV-backed class has no SQL: using `sql` raises a clear error."""

        async def body(s: durable.Storage) -> Any:
            with pytest.raises(Exception, match="SQL"):
                s.sql.exec("SELECT 1")
            return True

        assert await inside(body, storage="kv")

    # -- sync kv -------------------------------------------------------------------------------
    async def test_sync_kv(self) -> None:
        """`kv` has synchronous get/put/delete/list on the same data; `kv.list` yields (key, value) pairs."""

        async def body(s: durable.Storage) -> Any:
            kv = s.kv
            assert isinstance(kv, durable.SyncKV)
            assert kv.put("b", 2) is None  # type: ignore[func-returns-value]
            await s.put("a", 1)
            await s.put("c", 3)
            out = [kv.get("a"), await s.get("b"), kv.get("missing")]
            out.append(list(kv.list()))
            out.append(list(kv.list(prefix="b")))
            out.append(list(kv.list(start_after="a", reverse=True, limit=1)))
            out.append(list(kv.list(startAfter="b")))
            out.append(kv.delete("a"))
            out.append(kv.delete("a"))
            return out

        assert await inside(body) == [
            1,
            2,
            None,
            [("a", 1), ("b", 2), ("c", 3)],
            [("b", 2)],
            [("c", 3)],
            [("c", 3)],
            True,
            False,
        ]

    async def test_kv_list_is_an_iterator(self) -> None:
        """`kv.list(...)` returns an iterator of `(key, value)` pairs, taking the options of `list`."""

        async def body(s: durable.Storage) -> Any:
            s.kv.put("a", 1)
            s.kv.put("b", 2)
            it = s.kv.list(end="b")
            assert iter(it) is it
            first = next(it)
            with pytest.raises(StopIteration):
                next(it)
            with pytest.raises(TypeError, match=r"^List limit must be positive\.$"):
                list(s.kv.list(limit=0))
            return first

        assert await inside(body) == ("a", 1)

    async def test_no_kv_on_kv_backend(self) -> None:
        """`kv` exists on SQLite-backed classes only."""

        async def body(s: durable.Storage) -> Any:
            with pytest.raises(Exception, match="only available for SQLite-backed"):
                s.kv.get("a")
            return True

        assert await inside(body, storage="kv")


# == 5. HTTP ==========================================================================================


class EchoWorker(durable.WorkerEntrypoint):
    instances: list[Any] = []

    async def fetch(self, request: durable.Request) -> durable.Response:
        type(self).instances.append(self)
        count = await self.env.COUNTER.get_by_name("a").increment()
        return durable.Response.json({"count": count, "method": request.method, "greeting": self.env.GREETING})


REPO = Path(__file__).resolve().parent.parent


class TestHttp:
    """HTTP."""

    # -- request response ----------------------------------------------------------------------
    async def test_request(self) -> None:
        """`Request(url, *, method="GET", headers=None, body=None)`: `.url`, `.method`, `.headers` (case-insensitive), text/json/bytes."""
        req = durable.Request("http://x/a", method="POST", headers={"X-Thing": "1"}, body='{"a": 1}')
        assert (req.url, req.method) == ("http://x/a", "POST")
        assert req.headers["x-thing"] == "1" and req.headers["X-THING"] == "1" and "x-Thing" in req.headers
        assert await req.json() == {"a": 1}
        assert await durable.Request("http://x/", method="PUT", body=b"raw").bytes() == b"raw"
        assert await durable.Request("http://x/", method="PUT", body="t").text() == "t"
        default = durable.Request("http://x/")
        assert default.method == "GET" and len(default.headers) == 0
        assert await default.text() == "" and await durable.Request("http://x/").bytes() == b""

    async def test_request_url_keyword(self) -> None:
        """The URL parameter of `Request` is named `url`, as docs/api.md spells it."""
        req = durable.Request(url="http://x/k", method="DELETE")
        assert (req.url, req.method) == ("http://x/k", "DELETE")

    async def test_response(self) -> None:
        """`Response(body=None, *, status=200, headers=None)`: `.status`, `.ok`, `.headers`, text/json/bytes."""
        resp = durable.Response('{"b": 2}', status=201, headers={"Content-Type": "application/json"})
        assert resp.status == 201 and resp.ok is True
        assert resp.headers["content-type"] == "application/json"
        assert await resp.json() == {"b": 2}
        empty = durable.Response()
        assert empty.status == 200 and await empty.bytes() == b""
        assert durable.Response(body="x", status=404).ok is False
        assert await durable.Response(b"\xff").bytes() == b"\xff"
        assert await durable.Response("é").text() == "é"

    async def test_response_json_builder(self) -> None:
        """`durable.Response.json(data, status=200)` builds a JSON response."""
        resp = durable.Response.json({"a": [1, 2]})
        assert resp.status == 200 and resp.headers["content-type"].startswith("application/json")
        assert await resp.json() == {"a": [1, 2]}
        assert durable.Response.json([], status=418).status == 418
        assert durable.Response.json([], 202).status == 202

    async def test_bad_status(self) -> None:
        """A status outside 200..599 is refused with an error naming it."""
        with pytest.raises(ValueError):
            durable.Response("x", status=99)

    # -- worker entrypoint ---------------------------------------------------------------------
    async def test_asgi_app_serves_worker(self) -> None:
        """`asgi_app(worker, runtime)` serves the Worker with `runtime.env`; the Worker is constructed per request as `Worker(ctx, env)`."""
        import httpx

        EchoWorker.instances = []
        async with durable.Runtime(vars={"GREETING": "hi"}) as rt:
            rt.namespace(durable.Counter, name="COUNTER")
            app = durable.asgi_app(EchoWorker, rt)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                first = await client.post("/x")
                second = await client.get("/y")
        assert first.json() == {"count": 1, "method": "POST", "greeting": "hi"}
        assert second.json()["count"] == 2
        a, b = EchoWorker.instances
        assert a is not b and a.env is rt.env

    async def test_worker_entrypoint_init(self) -> None:
        """`WorkerEntrypoint(ctx, env)` stores `self.ctx` and `self.env`."""
        ctx, env = durable.ExecutionContext(), durable.Env()
        worker = EchoWorker(ctx, env)
        assert worker.ctx is ctx and worker.env is env

    # -- serve ---------------------------------------------------------------------------------
    async def test_python_m_durable_serve(self) -> None:
        """`python -m durable serve FILE.py --port N --in-memory` serves the file's Worker with its bindings."""
        texts = await serve_and_get(
            ["-m", "durable", "serve", "examples/counter.py", "--host", "127.0.0.1", "--port", "{port}", "--in-memory"],
            ["/increment?name=A", "/increment?name=A", "/?name=B"],
        )
        assert texts == ["Durable Object 'A' count: 1", "Durable Object 'A' count: 2", "Durable Object 'B' count: 0"]

    async def test_persistence_defaults_to_dot_durable(self, tmp_path: Path) -> None:
        """`durable serve` persists to `./.durable` by default."""
        import shutil

        app = tmp_path / "counter.py"
        shutil.copy(REPO / "examples" / "counter.py", app)
        argv = ["-m", "durable", "serve", str(app), "--port", "{port}"]
        texts = await serve_and_get(argv, ["/increment?name=A"], cwd=tmp_path)
        assert texts == ["Durable Object 'A' count: 1"]
        assert (tmp_path / ".durable").is_dir()
        assert await serve_and_get(argv, ["/increment?name=A"], cwd=tmp_path) == ["Durable Object 'A' count: 2"]

    async def test_example_counter_runs_directly(self, tmp_path: Path) -> None:
        """`python examples/counter.py [--port N] [--persist DIR]` serves the seed's counter."""
        argv = ["examples/counter.py", "--port", "{port}", "--persist", str(tmp_path / "state")]
        assert await serve_and_get(argv, ["/increment?name=A"]) == ["Durable Object 'A' count: 1"]
        assert await serve_and_get(argv, ["/increment?name=A"]) == ["Durable Object 'A' count: 2"]


# == 6. Testing: durable.testing and the pytest plugin ==============================================


class Retrying(durable.DurableObject):
    attempts: list[int] = []
    fail_times = 0

    async def arm(self, delay_ms: int) -> int:
        when: int = self.ctx.now_ms() + delay_ms
        await self.ctx.storage.set_alarm(when)
        return when

    async def alarm(self, info: durable.AlarmInfo) -> None:
        type(self).attempts.append(info.retry_count)
        if len(type(self).attempts) <= type(self).fail_times:
            raise RuntimeError("try again")


class TestTesting:
    """Testing: durable.testing and the pytest plugin."""

    # -- testing -------------------------------------------------------------------------------
    async def test_mock_clock_start_and_time(self) -> None:
        """`MockClock(start)` starts at `start` seconds; `clock.time()` reads it; the default is the real time."""
        import time

        assert testing.MockClock(start=123.5).time() == 123.5
        before = time.time()
        clock = testing.MockClock()
        assert before - 1 <= clock.time() <= time.time() + 1
        assert testing.MockClock(None).time() >= before - 1

    async def test_mock_clock_bad_input(self) -> None:
        """`MockClock` refuses a start that is not a finite number, and `advance()` a non-number or negative.

        A non-number is a TypeError; a float that is no time (NaN, infinities) a ValueError, as
        `advance()` raises for the same values."""
        for bad in ("0", True):
            with pytest.raises(TypeError, match="MockClock"):
                testing.MockClock(bad)  # type: ignore[arg-type]
        for not_finite in (math.nan, math.inf):
            with pytest.raises(ValueError, match="MockClock"):
                testing.MockClock(not_finite)
        clock = testing.MockClock(start=0)
        with pytest.raises(TypeError, match="advance"):
            await clock.advance("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="backwards"):
            await clock.advance(-1)
        assert clock.time() == 0

    async def test_advance_moves_time_and_runs_alarms_with_retries(self) -> None:
        """`await clock.advance(seconds)` moves time and runs every alarm that falls due, retries included."""
        Retrying.attempts = []
        Retrying.fail_times = 2
        clock = testing.MockClock(start=1000.0)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Retrying).get_by_name("a")
            await stub.arm(5000)
            await clock.advance(4.9)
            assert Retrying.attempts == [] and clock.time() == pytest.approx(1004.9)
            await clock.advance(0.1)
            assert Retrying.attempts == [0]
            await clock.advance(120)  # retry backoff is 2 s then 4 s, with jitter
            assert Retrying.attempts == [0, 1, 2]

    async def test_run_in_object(self) -> None:
        """`run_in_object(stub, fn)` runs `fn(instance, ctx)` inside the live object and returns the result, awaited if async."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            await stub.put("k", 5)

            def sync_fn(obj: Any, ctx: durable.State) -> Any:
                return type(obj).__name__, ctx.id

            async def async_fn(obj: Any, ctx: durable.State) -> Any:
                return await ctx.storage.get("k")

            assert await testing.run_in_object(stub, sync_fn) == ("Obj", stub.id)
            assert await testing.run_in_object(stub, async_fn) == 5

    async def test_run_alarm(self) -> None:
        """`run_alarm(stub)` runs the pending alarm now and returns True; False if none."""
        Retrying.attempts = []
        Retrying.fail_times = 0
        async with durable.Runtime() as rt:
            stub = rt.namespace(Retrying).get_by_name("a")
            assert await testing.run_alarm(stub) is False
            await stub.arm(3_600_000)
            assert await testing.run_alarm(stub) is True
            assert Retrying.attempts == [0]
            assert await testing.run_alarm(stub) is False

    async def test_evict(self) -> None:
        """`evict(stub)` drops the live instance, keeps storage; the next call constructs a fresh instance."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("a")
            await stub.put("k", 1)

            def ident(obj: Any, ctx: durable.State) -> int:
                return id(obj)

            before = await testing.run_in_object(stub, ident)
            holder = await testing.run_in_object(stub, lambda obj, ctx: obj)
            assert await testing.evict(stub) is None  # type: ignore[func-returns-value]
            after = await testing.run_in_object(stub, lambda obj, ctx: obj)
            assert after is not holder and before == id(holder)
            assert await stub.get("k") == 1

    async def test_list_ids(self) -> None:
        """`list_ids(namespace)` returns the ids of objects that have storage."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            await ns.get_by_name("a").put("k", 1)
            await ns.get_by_name("b").echo(1)  # no storage
            uid = ns.new_unique_id()
            await ns.get(uid).put("k", 1)
            ids = await testing.list_ids(ns)
            assert isinstance(ids, list) and all(isinstance(i, durable.DurableObjectId) for i in ids)
            assert set(ids) == {ns.id_from_name("a"), uid}

    async def test_fail_next_commit_default(self) -> None:
        """`fail_next_commit(stub)` (a plain call) makes the next commit fail as a disk failure would (default OSError)."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            stub = ns.get_by_name("a")
            await stub.put("k", 1)
            assert testing.fail_next_commit(stub) is None  # type: ignore[func-returns-value]
            with pytest.raises(BaseException) as info:
                await stub.put("k", 2)
            assert isinstance(info.value, (OSError, durable.DurableError))
            assert await ns.get_by_name("a").get("k") == 1
            await ns.get_by_name("a").put("k", 3)
            assert await ns.get_by_name("a").get("k") == 3

    async def test_fail_next_commit_custom(self) -> None:
        """`fail_next_commit(stub, exc)` makes the next commit fail with `exc`; the write is lost."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            testing.fail_next_commit(ns.get_by_name("a"), RuntimeError("disk gone"))
            with pytest.raises(BaseException, match="disk gone"):
                await ns.get_by_name("a").put("k", 2)
            assert await ns.get_by_name("a").get("k") is None

    async def test_reset(self) -> None:
        """`await rt.reset()` wipes all storage and alarms and drops every instance."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Retrying)
            stub = ns.get_by_name("a")
            await stub.arm(3_600_000)
            holder = await testing.run_in_object(stub, lambda obj, ctx: obj)
            await rt.reset()
            assert await testing.list_ids(ns) == []
            fresh = ns.get_by_name("a")
            assert await testing.run_alarm(fresh) is False
            assert await testing.run_in_object(fresh, lambda obj, ctx: obj) is not holder

    # -- pytest plugin -------------------------------------------------------------------------
    def test_fixtures(self, pytester: pytest.Pytester) -> None:
        """The plugin (a `pytest11` entry point) gives `durable_runtime` (fresh, in memory) and `mock_clock`."""
        pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
        pytester.makepyfile(
            """
            import durable

            class C(durable.DurableObject):
                async def put(self):
                    await self.ctx.storage.put("k", 1)
                async def get(self):
                    return await self.ctx.storage.get("k")
                async def now(self):
                    return self.ctx.now_ms()

            async def test_one(durable_runtime):
                assert isinstance(durable_runtime, durable.Runtime)
                await durable_runtime.namespace(C).get_by_name("a").put()

            async def test_two_is_fresh(durable_runtime):
                assert await durable_runtime.namespace(C).get_by_name("a").get() is None

            async def test_clock(durable_runtime, mock_clock):
                assert isinstance(mock_clock, durable.testing.MockClock)
                stub = durable_runtime.namespace(C).get_by_name("a")
                start = await stub.now()
                await mock_clock.advance(10)
                assert await stub.now() == start + 10_000
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
        result.assert_outcomes(passed=3)

    def test_entry_point(self) -> None:
        """The plugin is registered through the `pytest11` entry point."""
        from importlib.metadata import entry_points

        assert any(ep.value == "durable.pytest_plugin" for ep in entry_points(group="pytest11"))


# == 7. The reference object: durable.Counter =======================================================


class Doubling(durable.Counter):
    """A subclass that overrides one method and adds another."""

    async def increment(self, amount: int = 1) -> int:
        return await super().increment(amount * 2)

    async def reset_to(self, value: int) -> int:
        await self.ctx.storage.put("value", value)
        return value


class TestCounter:
    """The reference object: durable.Counter."""

    # -- counter -------------------------------------------------------------------------------
    async def test_rpc(self) -> None:
        """`increment`/`decrement` return the new value; `get_counter_value` (alias `getCounterValue`) is 0 when never set."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(durable.Counter).get_by_name("a")
            assert await stub.get_counter_value() == 0
            assert await stub.getCounterValue() == 0
            assert await stub.increment() == 1
            assert await stub.increment(5) == 6
            assert await stub.decrement() == 5
            assert await stub.decrement(amount=10) == -5
            assert await stub.get_counter_value() == -5 and await stub.getCounterValue() == -5

    async def test_storage_key_value(self) -> None:
        """One count per object, in storage key `"value"`; RPC and `fetch` read and write the same key."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(durable.Counter)
            stub = ns.get_by_name("a")
            await stub.increment(3)
            assert await testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("value")) == 3
            assert await (await stub.fetch("http://c/increment")).text() == "4"
            assert await stub.get_counter_value() == 4
            assert await ns.get_by_name("b").get_counter_value() == 0

    async def test_fetch(self) -> None:
        """`fetch`: `/increment`, `/decrement`, `/` answer the new value as text; any other path is `404` `Not found`."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(durable.Counter).get_by_name("a")
            texts = []
            for path in ("/", "/increment", "/increment", "/decrement", "/", "/increment?x=1"):
                resp = await stub.fetch(f"http://counter{path}")
                assert resp.status == 200
                texts.append(await resp.text())
            assert texts == ["0", "1", "2", "1", "1", "2"]
            missing = await stub.fetch("http://counter/nope")
            assert missing.status == 404 and await missing.text() == "Not found"
            assert await stub.get_counter_value() == 2

    async def test_subclass(self) -> None:
        """A subclass that adds or overrides methods works through RPC and `fetch`; `super()` reaches the reference behaviour."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(Doubling).get_by_name("a")
            assert await stub.increment() == 2
            assert await stub.reset_to(10) == 10
            assert await (await stub.fetch("http://c/decrement")).text() == "9"
            assert await stub.getCounterValue() == 9

    async def test_is_durable_object(self) -> None:
        """`durable.Counter` is a `DurableObject` subclass shipped in the package."""
        assert issubclass(durable.Counter, durable.DurableObject)
        assert durable.Counter.__module__ == "durable"

    async def test_bad_amount(self) -> None:
        """A bad amount is refused with a TypeError naming it, and changes nothing."""
        async with durable.Runtime() as rt:
            stub = rt.namespace(durable.Counter).get_by_name("a")
            with pytest.raises(TypeError, match="str"):
                await stub.increment("5")
            assert await stub.get_counter_value() == 0


# == 10. Python Workers compatibility ===============================================================


PROJECT_ENTRY = """
from workers import DurableObject, Response, WorkerEntrypoint
from js import Date
from pyodide.ffi import to_js


class Notes(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.ctx.blockConcurrencyWhile(self.setup)

    async def setup(self):
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)")

    async def add(self, text):
        self.ctx.storage.sql.exec("INSERT INTO notes (text) VALUES (?)", text)
        await self.ctx.storage.put("note:" + text, to_js({"text": text}))
        rows = self.ctx.storage.sql.exec("SELECT text FROM notes ORDER BY id").toArray()
        listed = await self.ctx.storage.list({"prefix": "note:"})
        return {"sql": [row.text for row in rows], "items": [row["text"] for row in rows], "kv": list(listed)}

    async def arm(self):
        self.ctx.storage.setAlarm(Date.now() + 1000)
        return await self.ctx.storage.getAlarm() is not None

    async def alarm(self):
        await self.ctx.storage.put("alarmed", True)

    async def fetch(self, request):
        return Response(f"notes {self.env.GREETING}")


class Legacy(DurableObject):
    async def put(self, value):
        await self.ctx.storage.put("v", value)
        return await self.ctx.storage.get("v")

    async def arm(self):
        await self.ctx.storage.setAlarm(Date.now() + 1000)
        return True

    async def boom(self):
        self.ctx.abort("gone")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.NOTES.get(self.env.NOTES.idFromName("a"))
        resp = await stub.fetch(request.url)
        return Response(await resp.text() + " via worker", status=200)
"""


PROJECT_CONFIG = """
// a Python Workers project, as wrangler writes it
{
  "name": "notes",
  "main": "src/entry.py",
  "compatibility_flags": ["python_workers"],
  "vars": {"GREETING": "hello"},
  "durable_objects": {"bindings": [
    {"name": "NOTES", "class_name": "Notes"},
    {"name": "LEGACY", "class_name": "Legacy"},
  ]},
  "migrations": [{"tag": "v1", "new_sqlite_classes": ["Notes"], "new_classes": ["Legacy"]}],
}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small Python Workers project folder (a unique module name per test)."""
    folder = tmp_path / "proj"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "entry.py").write_text(PROJECT_ENTRY)
    (folder / "wrangler.jsonc").write_text(PROJECT_CONFIG)
    return folder


@pytest.fixture
def shims() -> Any:
    """Install the Python Workers shims for one test, uninstalling afterwards."""
    from durable.compat import python_workers

    python_workers.install()
    try:
        yield python_workers
    finally:
        python_workers.uninstall()


class TestPythonWorkers:
    """Python Workers compatibility."""

    # -- python workers ------------------------------------------------------------------------
    def test_install_uninstall(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """While installed, `workers`, `js`, `pyodide`, `pyodide.ffi` resolve to durable's, even over Cloudflare's SDK; nothing is shadowed otherwise."""
        import importlib
        import sys

        from durable.compat import python_workers

        # Start uninstalled: `durable serve PROJECT` and `asgi_app(PROJECT)` install the shims for
        # the rest of the process, and other tests call them in this one.
        python_workers.uninstall()
        monkeypatch.syspath_prepend(str(REPO / "tests" / "python_workers" / "fake_sdk"))
        for name in ("workers", "js", "pyodide", "pyodide.ffi"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        assert getattr(importlib.import_module("workers"), "FAKE_SDK", False)
        python_workers.install()
        try:
            workers = importlib.import_module("workers")
            assert not getattr(workers, "FAKE_SDK", False)
            assert (
                issubclass(workers.DurableObject, durable.DurableObject)
                or workers.DurableObject is durable.DurableObject
            )
            for name in ("WorkerEntrypoint", "Response"):
                assert hasattr(workers, name)
            assert hasattr(importlib.import_module("js"), "WebSocketPair")
            assert callable(importlib.import_module("pyodide.ffi").to_js)
            importlib.import_module("pyodide")
        finally:
            python_workers.uninstall()
        assert getattr(importlib.import_module("workers"), "FAKE_SDK", False)
        for name in ("workers", "js", "pyodide", "pyodide.ffi"):
            sys.modules.pop(name, None)

    async def test_asgi_app(self, project: Path) -> None:
        """`python_workers.asgi_app(PROJECT, runtime)` installs the shims itself and serves the entry module's `Default`."""
        import httpx

        from durable.compat import python_workers

        try:
            async with durable.Runtime() as rt:
                app = python_workers.asgi_app(project, rt)
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                    resp = await client.get("/x")
                assert resp.text == "notes hello via worker"
                assert rt.env.GREETING == "hello"
        finally:
            python_workers.uninstall()

    async def test_wrangler_file_and_migrations(self, project: Path) -> None:
        """The project may be given as its `wrangler.jsonc`; `new_sqlite_classes` → sqlite, `new_classes` → kv."""
        from durable.compat import python_workers

        try:
            async with durable.Runtime() as rt:
                python_workers.asgi_app(project / "wrangler.jsonc", rt)
                assert rt.env.NOTES.storage == "sqlite" and rt.env.LEGACY.storage == "kv"
        finally:
            python_workers.uninstall()

    async def test_calling_shapes(self, project: Path) -> None:
        """Positional option dicts, camelCase, rows with item and attribute access, relaxed `alarm(self)`, setAlarm on a class without alarm()."""
        from durable.compat import python_workers

        clock = testing.MockClock(start=1000.0)
        try:
            async with durable.Runtime(clock=clock) as rt:
                python_workers.asgi_app(project, rt)
                notes = rt.env.NOTES.getByName("a")
                got = await notes.add("x")
                assert (got["sql"], got["items"], got["kv"]) == (["x"], ["x"], ["note:x"])
                assert await notes.arm() is True
                await clock.advance(2)
                assert await testing.run_in_object(notes, lambda obj, ctx: ctx.storage.get("alarmed")) is True
                legacy = rt.env.LEGACY.getByName("a")
                assert await legacy.put(1) == 1
                assert await legacy.arm() is True
                await clock.advance(2)
        finally:
            python_workers.uninstall()

    async def test_storage_call_shapes(self, shims: Any) -> None:
        """Options as positional dicts on every storage call (`kv.list` too); what storage returns can be stored and returned again."""
        from workers import DurableObject  # type: ignore[import-not-found]  # the shim, installed by the fixture

        class Shapes(DurableObject):  # type: ignore[misc]
            async def alarm(self) -> None:
                pass

            async def run(self) -> Any:
                s = self.ctx.storage
                await s.put("a", {"n": 1}, {"allowUnconfirmed": True})
                await s.put({"b": [{"n": 2}]}, {"noCache": True})
                got = await s.get(["a", "b"], {"allowConcurrency": True})
                assert got.a.n == 1 and got["b"][0].n == 2
                await s.put("copy", got)  # values read back (JsDict) can be stored again
                listed = await s.list({"prefix": "a", "limit": 1, "reverse": True})
                await s.setAlarm(4 * 10**12, {"allowUnconfirmed": True})
                alarm = await s.getAlarm({"allowConcurrency": True})
                await s.deleteAlarm({})
                s.kv.put("kv1", 1)
                kv = list(s.kv.list({"prefix": "kv"}))
                deleted = await s.delete(["a"], {})
                return {
                    "listed": list(listed),
                    "alarm": alarm,
                    "kv": kv,
                    "deleted": deleted,
                    "copy": await s.get("copy"),
                }

        async with durable.Runtime() as rt:
            result = await rt.namespace(Shapes).get_by_name("a").run()  # a JsDict result crosses RPC too
        assert result["listed"] == ["a"] and result["alarm"] == 4 * 10**12
        assert [tuple(pair) for pair in result["kv"]] == [("kv1", 1)] and result["deleted"] == 1
        assert result["copy"] == {"a": {"n": 1}, "b": [{"n": 2}]}

    async def test_abort_is_ordinary_reset_for_caller(self, project: Path) -> None:
        """`ctx.abort()` raises a BaseException inside the object; the caller gets an ordinary reset error."""
        from durable.compat import python_workers

        try:
            async with durable.Runtime() as rt:
                python_workers.asgi_app(project, rt)
                with pytest.raises(durable.ObjectResetError, match="gone") as info:
                    await rt.env.LEGACY.getByName("a").boom()
                assert isinstance(info.value, Exception) and info.value.durable_object_reset
        finally:
            python_workers.uninstall()

    async def test_wrangler_toml_and_legacy_on_fetch(self) -> None:
        """A `wrangler.toml` project with a legacy module-level `on_fetch(request, env)` is served too."""
        import httpx

        from durable.compat import python_workers

        try:
            async with durable.Runtime() as rt:
                app = python_workers.asgi_app(REPO / "tests" / "python_workers" / "legacy" / "wrangler.toml", rt)
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                    assert (await client.get("/")).text == "Hello, World!"
                    assert (await client.get("/count")).text == "1"
                assert rt.env.COUNTER.storage == "kv"
        finally:
            python_workers.uninstall()

    def test_pytest_option(self, pytester: pytest.Pytester) -> None:
        """The pytest option `--python-workers` (or ini `durable_python_workers = true`) installs the shims before collection."""
        pytester.makepyfile(
            test_a="""
            from workers import DurableObject
            import durable

            def test_shim():
                assert issubclass(DurableObject, durable.DurableObject) or DurableObject is durable.DurableObject
            """
        )
        pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--python-workers"
        ).assert_outcomes(passed=1)
        pytester.makeini("[pytest]\ndurable_python_workers = true\n")
        pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest").assert_outcomes(passed=1)

    async def test_durable_serve_project(self, project: Path) -> None:
        """`durable serve PROJECT` serves a Python Workers project folder."""
        texts = await serve_and_get(["-m", "durable", "serve", str(project), "--port", "{port}", "--in-memory"], ["/a"])
        assert texts == ["notes hello via worker"]


# == 13. Distribution ================================================================================


class TestDistribution:
    """Distribution."""

    # -- distribution --------------------------------------------------------------------------
    def test_distribution_name(self) -> None:
        """The distribution is `durable-objects`; the import name stays `durable`."""
        from importlib.metadata import distribution

        dist = distribution("durable-objects")
        assert dist.metadata["Name"] == "durable-objects"
        assert any(ep.name == "durable" and ep.value.startswith("durable.") for ep in dist.entry_points)
        assert durable.__name__ == "durable"

    def test_server_extra(self) -> None:
        """`durable-objects[server]` installs what `durable serve` needs for HTTP and WebSockets."""
        import tomllib

        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        server = " ".join(extras["server"])
        assert "uvicorn" in server
        assert "websockets" in server or "wsproto" in server
