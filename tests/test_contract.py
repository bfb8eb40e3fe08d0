"""Conformance of the public surface to the contract in API.md, section by section.

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
        ["web_socket_message", "web_socket_close", "web_socket_error", "webSocketMessage", "webSocketClose", "webSocketError"],
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


class TestRuntimeAndNamespace:
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
        files = [p for p in tmp_path.rglob("*.sqlite") if p.stem in {str(ns.id_from_name("a")), str(ns.id_from_name("b"))}]
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

            with pytest.raises(Exception):
                await testing.run_in_object(stub, use_sql)

    async def test_bad_storage_option(self) -> None:
        """A `storage=` other than "sqlite" or "kv" is refused with an error naming it."""
        async with durable.Runtime() as rt:
            with pytest.raises(ValueError, match="storage"):
                rt.namespace(Obj, storage="redis")  # type: ignore[call-overload]

    async def test_two_runtimes_on_one_path_are_refused(self, tmp_path: Path) -> None:
        """Two live runtimes on the same path are refused with a clear error, never shared."""
        async with durable.Runtime(path=tmp_path):
            with pytest.raises(durable.PathLockedError):
                async with durable.Runtime(path=tmp_path):
                    pass

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

    async def test_clock_option_takes_mock_clock(self) -> None:
        """`Runtime(clock=...)` takes a `durable.testing.MockClock`."""
        clock = testing.MockClock(start=1000.0)
        async with durable.Runtime(clock=clock) as rt:
            stub = rt.namespace(Obj).get_by_name("a")

            def now(obj: Any, ctx: durable.State) -> Any:
                return ctx.storage.set_alarm(datetime.datetime.fromtimestamp(1001, datetime.timezone.utc))

            await testing.run_in_object(stub, now)
            await clock.advance(2)
            assert not await testing.run_alarm(stub)

    async def test_camel_case_namespace_aliases(self) -> None:
        """`idFromName`, `newUniqueId`, `idFromString`, `getByName` are aliases on the namespace."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.idFromName("a")
            assert oid == ns.id_from_name("a")
            assert ns.idFromString(str(oid)) == oid
            assert ns.newUniqueId().name is None
            assert ns.getByName("a").id == oid


class TestIds:
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


class TestStubs:
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


class TestErrors:
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
            for cls in (durable.ObjectResetError, durable.OverloadedError, durable.ConnectionClosedError, durable.DurableError):
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


class Uses(durable.DurableObject):
    async def read(self) -> Any:
        return (self.env.GREETING, await self.env.OTHER.get_by_name("x").echo("via env"))


class TestEnv:
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
