"""Ids: workerd's derivation, validation, value semantics, stability across restarts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import durable


class Obj(durable.DurableObject):
    async def whoami(self) -> list[str | None]:
        return [str(self.ctx.id), self.ctx.id.name]

    async def touch(self) -> None:
        await self.ctx.storage.put("k", 1)


class Other(durable.DurableObject):
    pass


class TestIdFromName:
    async def test_is_64_lowercase_hex(self) -> None:
        """str(id) is 64 lowercase hex digits."""
        async with durable.Runtime() as rt:
            oid = rt.namespace(Obj).id_from_name("A")
            assert re.fullmatch(r"[0-9a-f]{64}", str(oid))

    async def test_same_name_same_id(self) -> None:
        """The same name in the same namespace always gives an equal id with the same hash."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            a, b = ns.id_from_name("A"), ns.id_from_name("A")
            assert a == b and a.equals(b) and hash(a) == hash(b)
            c = ns.id_from_string(str(a))  # another object with the same value
            assert a == c and a.equals(c) and hash(a) == hash(c) and a is not c

    async def test_minted_ids_are_remembered_within_a_bound(self) -> None:
        """Ids of recent names are reused (a served request derives one each time); the memory is bounded."""
        from durable import _id

        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            assert ns.id_from_name("A") is ns.id_from_name("A")
            for i in range(_id._NAME_CACHE_SIZE + 10):
                ns.id_from_name(f"n{i}")
            assert len(ns.ids._by_name) <= _id._NAME_CACHE_SIZE
            long = "x" * (_id._NAME_CACHE_MAX_LENGTH + 1)
            assert ns.id_from_name(long) == ns.id_from_name(long) and long not in ns.ids._by_name

    async def test_different_names_and_namespaces_differ(self) -> None:
        """Different names, or the same name in different namespaces, give different ids."""
        async with durable.Runtime() as rt:
            ns, other = rt.namespace(Obj), rt.namespace(Other)
            assert ns.id_from_name("A") != ns.id_from_name("B")
            assert str(ns.id_from_name("A")) != str(other.id_from_name("A"))

    async def test_name_is_kept(self) -> None:
        """An id from a name remembers it, and so does the object's ctx.id."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("room-42")
            assert oid.name == "room-42"
            assert await ns.get(oid).whoami() == [str(oid), "room-42"]

    async def test_ids_are_stable_across_runtimes(self, tmp_path: Path) -> None:
        """A persisted runtime reopened with the same namespace names mints the same ids."""
        async with durable.Runtime(path=tmp_path) as rt:
            first = str(rt.namespace(Obj, name="OBJ").id_from_name("A"))
        async with durable.Runtime(path=tmp_path) as rt:
            assert str(rt.namespace(Obj, name="OBJ").id_from_name("A")) == first
        async with durable.Runtime() as rt:  # in memory too: keys derive from the namespace name
            assert str(rt.namespace(Obj, name="OBJ").id_from_name("A")) == first

    async def test_name_must_be_str(self) -> None:
        """id_from_name refuses a name that is not a str."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError, match="str"):
                rt.namespace(Obj).id_from_name(42)  # type: ignore[arg-type]


class TestUniqueIds:
    async def test_unique_ids_are_random_and_nameless(self) -> None:
        """new_unique_id gives a fresh id each time, with name None."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            a, b = ns.new_unique_id(), ns.new_unique_id()
            assert a != b and a.name is None

    async def test_jurisdiction_is_not_implemented(self) -> None:
        """A jurisdiction raises NotImplementedError, as workerd's local runtime does."""
        async with durable.Runtime() as rt:
            with pytest.raises(NotImplementedError, match="Jurisdiction"):
                rt.namespace(Obj).new_unique_id(jurisdiction="eu")


class TestIdFromString:
    async def test_round_trip(self) -> None:
        """id_from_string(str(id)) gives an equal id, without the name."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            for oid in (ns.id_from_name("A"), ns.new_unique_id()):
                back = ns.id_from_string(str(oid))
                assert back == oid and back.name is None

    async def test_uppercase_hex_accepted(self) -> None:
        """Hex digits are accepted in either case."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("A")
            assert ns.id_from_string(str(oid).upper()) == oid

    @pytest.mark.parametrize("bad", ["", "abc", "g" * 64, "0" * 63, "0" * 65, " " + "0" * 63])
    async def test_malformed_strings_are_refused(self, bad: str) -> None:
        """Anything but 64 hex digits raises workerd's TypeError."""
        async with durable.Runtime() as rt:
            with pytest.raises(TypeError, match="^Invalid Durable Object ID: must be 64 hex digits$"):
                rt.namespace(Obj).id_from_string(bad)

    async def test_id_of_another_namespace_is_refused(self) -> None:
        """An id minted by another namespace fails the MAC check with workerd's TypeError."""
        async with durable.Runtime() as rt:
            foreign = str(rt.namespace(Other).id_from_name("A"))
            with pytest.raises(TypeError, match=r"^Durable Object ID is not valid for this namespace\.$"):
                rt.namespace(Obj).id_from_string(foreign)

    async def test_tampered_id_is_refused(self) -> None:
        """Changing one digit of an id breaks its MAC."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            text = str(ns.id_from_name("A"))
            tampered = ("1" if text[0] != "1" else "2") + text[1:]
            with pytest.raises(TypeError, match="not valid for this namespace"):
                ns.id_from_string(tampered)

    async def test_get_refuses_foreign_ids(self) -> None:
        """namespace.get() refuses an id of another namespace and things that are not ids."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            with pytest.raises(TypeError, match="not valid for this namespace"):
                ns.get(rt.namespace(Other).id_from_name("A"))
            with pytest.raises(TypeError, match="DurableObjectId"):
                ns.get("A")  # type: ignore[arg-type]

    async def test_get_options(self) -> None:
        """``location_hint`` takes any value; ``routing_mode`` only ``"primary-only"``.

        workerd (miniflare 4, 2026-04-07): ``get(id, {locationHint: "bogus"})`` and
        ``getByName("q", {locationHint: "bogus"})`` give working stubs, an unknown option is
        ignored, and ``get(id, {routingMode: "x"})`` raises ``RangeError: unknown routingMode: x``.
        """
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("A")
            assert ns.get(oid, location_hint="bogus").id == oid
            assert ns.get(oid, locationHint="weur", routing_mode="primary-only").id == oid
            assert ns.get_by_name("A", location_hint="bogus").id == oid
            for spelling in ("routing_mode", "routingMode"):
                with pytest.raises(ValueError, match="^unknown routingMode: x$"):
                    ns.get(oid, **{spelling: "x"})
                with pytest.raises(ValueError, match="^unknown routingMode: x$"):
                    ns.get_by_name("A", **{spelling: "x"})

    async def test_stored_name_comes_back_inside_the_object(self, tmp_path: Path) -> None:
        """An object reached through id_from_string still knows its name once it has storage."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            oid = ns.id_from_name("named")
            await ns.get(oid).touch()
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            assert await ns.get(ns.id_from_string(str(oid))).whoami() == [str(oid), "named"]


class TestIdObject:
    def test_no_public_constructor(self) -> None:
        """Ids are minted by namespaces only."""
        with pytest.raises(TypeError, match="no public constructor"):
            durable.DurableObjectId()  # type: ignore[call-arg]

    async def test_immutable(self) -> None:
        """Ids cannot be changed."""
        async with durable.Runtime() as rt:
            oid = rt.namespace(Obj).id_from_name("A")
            with pytest.raises(AttributeError):
                oid.name = "B"  # type: ignore[misc]

    async def test_camel_case_aliases(self) -> None:
        """Cloudflare's spellings work on namespaces and ids."""
        async with durable.Runtime() as rt:
            ns = rt.namespace(Obj)
            oid = ns.idFromName("A")
            assert oid.toString() == str(oid)
            assert ns.idFromString(str(oid)) == oid
            assert ns.getByName("A").id == oid
            assert ns.newUniqueId().name is None
