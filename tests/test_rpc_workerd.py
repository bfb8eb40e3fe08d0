"""Ids, namespaces and RPC where they once differed from workerd (measured with miniflare 4,
compatibility date 2026-04-07)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable


class Obj(durable.DurableObject):
    async def hi(self) -> str:
        return "hi"


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime() as runtime:
        yield runtime


class TestIds:
    @pytest.mark.parametrize("other", ["text", None, 1, b""])
    async def test_equals_refuses_what_is_not_an_id(self, rt: durable.Runtime, other: Any) -> None:
        """workerd's id.equals("...") and id.equals(null) raise TypeError: Failed to execute 'equals'
        on 'DurableObjectId': parameter 1 is not of type 'DurableObjectId'. (== stays False)."""
        oid = rt.namespace(Obj).id_from_name("a")
        message = r"^Failed to execute 'equals' on 'DurableObjectId': parameter 1 is not of type 'DurableObjectId'\.$"
        with pytest.raises(TypeError, match=message):
            oid.equals(other)
        with pytest.raises(TypeError, match=message):
            oid.equals(str(oid))  # type: ignore[arg-type]
        assert oid != str(oid)

    async def test_equals_of_ids_of_two_namespaces_is_false(self, rt: durable.Runtime) -> None:
        """workerd: O.idFromName("a").equals(P.idFromName("a")) is false."""
        a = rt.namespace(Obj).id_from_name("a")
        b = rt.namespace(Obj, name="Other").id_from_name("a")
        assert a.equals(a) and not a.equals(b) and not b.equals(a)


class TestJurisdiction:
    @pytest.mark.parametrize("name", ["eu", "fedramp", "mars"])
    async def test_namespace_jurisdiction_is_not_implemented(self, rt: durable.Runtime, name: str) -> None:
        """workerd has namespace.jurisdiction(name), which raises "Jurisdiction restrictions are not
        implemented in workerd." for any name; durable says the same of itself."""
        ns = rt.namespace(Obj)
        with pytest.raises(NotImplementedError, match=r"^Jurisdiction restrictions are not implemented in durable\.$"):
            ns.jurisdiction(name)


class TestArgumentTypes:
    @pytest.mark.parametrize("name", [123, None, b"a", 1.5])
    async def test_name_that_is_not_a_str(self, rt: durable.Runtime, name: Any) -> None:
        """workerd: idFromName() / getByName() without a string raise TypeError: Failed to execute
        'idFromName' on 'DurableObjectNamespace': parameter 1 is not of type 'string'. (workerd turns
        a number into its string; durable refuses it, in the same words)."""
        ns = rt.namespace(Obj)
        with pytest.raises(
            TypeError,
            match=r"^Failed to execute 'idFromName' on 'DurableObjectNamespace': parameter 1 is not of type 'string'\.$",
        ):
            ns.id_from_name(name)
        with pytest.raises(
            TypeError,
            match=r"^Failed to execute 'getByName' on 'DurableObjectNamespace': parameter 1 is not of type 'string'\.$",
        ):
            ns.get_by_name(name)

    @pytest.mark.parametrize("oid", ["A", None, {}, 1])
    async def test_get_of_what_is_not_an_id(self, rt: durable.Runtime, oid: Any) -> None:
        """workerd: get("A"), get(null), get({}) raise TypeError: Failed to execute 'get' on
        'DurableObjectNamespace': parameter 1 is not of type 'DurableObjectId'."""
        with pytest.raises(
            TypeError,
            match=r"^Failed to execute 'get' on 'DurableObjectNamespace': parameter 1 is not of type 'DurableObjectId'\.$",
        ):
            rt.namespace(Obj).get(oid)
