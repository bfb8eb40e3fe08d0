"""The runtime's table of live hosts (``durable/_hosts.py``): made on first use, found by key, evicted when idle."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable
from durable._hosts import HostTable
from durable.testing import MockClock


class Obj(durable.DurableObject):
    """Keeps one value in storage."""

    async def write(self, value: int) -> None:
        await self.ctx.storage.put("v", value)

    async def read(self) -> int | None:
        value: int | None = await self.ctx.storage.get("v")
        return value

    async def nothing(self) -> None:
        return None


class TestHostTable:
    """``Runtime.hosts`` is a :class:`HostTable` that owns the live objects."""

    async def test_one_host_per_object_made_on_first_use(self) -> None:
        """An object's host is made by its first call and found again by id, by key and by the runtime."""
        async with durable.Runtime() as rt:
            assert isinstance(rt.hosts, HostTable)
            ns = rt.namespace(Obj)
            assert rt.hosts.live == {}
            oid = ns.id_from_name("a")
            await ns.get(oid).write(1)
            key = ("Obj", str(oid))
            host = rt.hosts.live[key]
            assert rt.hosts.host_for(ns, oid) is host
            assert rt.hosts.host_for_key(key) is host
            assert rt.host_for(ns, oid) is host
            assert rt.live_host(key) is host
            assert list(rt.hosts.live) == [key]

    async def test_lookup_by_key(self) -> None:
        """A key of an unbound namespace finds nothing; a hex that is not an id of the namespace is a TypeError."""
        async with durable.Runtime() as rt:
            rt.namespace(Obj)
            assert rt.hosts.host_by_key(("Other", "00" * 32)) is None
            with pytest.raises(TypeError):
                rt.hosts.host_by_key(("Obj", "00" * 32))

    async def test_idle_objects_are_evicted_on_the_runtime_clock(self) -> None:
        """An object idle for ``idle_timeout`` leaves the table; its storage stays."""
        clock = MockClock()
        async with durable.Runtime(clock=clock, idle_timeout=30) as rt:
            ns = rt.namespace(Obj)
            await ns.get_by_name("a").write(7)
            assert len(rt.hosts.live) == 1
            await clock.advance(29)
            assert len(rt.hosts.live) == 1
            await clock.advance(2)
            assert rt.hosts.live == {}
            assert await ns.get_by_name("a").read() == 7

    async def test_beyond_max_live_objects_the_oldest_idle_goes(self) -> None:
        """The table never keeps more idle objects than ``max_live_objects``."""
        async with durable.Runtime(max_live_objects=2) as rt:
            ns = rt.namespace(Obj)
            for name in ("a", "b", "c"):
                await ns.get_by_name(name).nothing()
            assert sorted(host.id.name or "" for host in rt.hosts.live.values()) == ["b", "c"]

    async def test_ids_with_storage_does_not_bring_objects_to_life(self, tmp_path: Path) -> None:
        """Objects with storage on disk are listed without being made live; objects without storage are not listed."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            await ns.get_by_name("kept").write(1)
            await ns.get_by_name("empty").nothing()
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            ids = rt.hosts.ids_with_storage(ns)
            assert [oid.name for oid in ids] == ["kept"]
            assert rt.hosts.live == {}
            assert await rt.list_ids(ns) == ids

    async def test_drop_all_forgets_every_host(self, tmp_path: Path) -> None:
        """``drop_all`` ends every instance and empties the table; the next call makes a new host on the same file."""
        async with durable.Runtime(path=tmp_path) as rt:
            ns = rt.namespace(Obj)
            stub = ns.get_by_name("a")
            await stub.write(3)
            host = rt.hosts.live[("Obj", str(stub.id))]
            rt.hosts.drop_all(keep_writes=True)
            assert rt.hosts.live == {}
            assert host.detached
            assert await stub.read() == 3
            assert rt.hosts.live[("Obj", str(stub.id))] is not host

    async def test_closed_runtime_makes_no_host(self) -> None:
        """After ``aclose()`` the table refuses to make a host, with the runtime's error."""
        rt = durable.Runtime()
        ns = rt.namespace(Obj)
        await rt.aclose()
        with pytest.raises(durable.RuntimeClosedError, match="this durable.Runtime is closed"):
            rt.hosts.host_for(ns, ns.id_from_name("a"))
