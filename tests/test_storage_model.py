"""Storage against a plain dict model, under random sequences of operations (Hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable
from durable import testing

keys = st.text(alphabet=st.sampled_from(["a", "b", "c", "é", "\x00", "\U0001f600"]), max_size=3)
values = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))
list_options = st.fixed_dictionaries(
    {},
    optional={
        "start": keys,
        "end": keys,
        "prefix": keys,
        "reverse": st.booleans(),
        "limit": st.integers(min_value=1, max_value=5),
    },
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, values),
        st.tuples(st.just("put_many"), st.dictionaries(keys, values, max_size=4)),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("get_many"), st.lists(keys, max_size=4)),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("delete_many"), st.lists(keys, max_size=4)),
        st.tuples(st.just("list"), list_options),
        st.tuples(st.just("list_after"), keys),
        st.tuples(st.just("evict")),
    ),
    max_size=30,
)


def model_list(model: dict[str, Any], opts: dict[str, Any]) -> list[tuple[str, Any]]:
    items = sorted(model.items())
    if "start" in opts:
        items = [kv for kv in items if kv[0] >= opts["start"]]
    if "end" in opts:
        items = [kv for kv in items if kv[0] < opts["end"]]
    if "prefix" in opts:
        items = [kv for kv in items if kv[0].startswith(opts["prefix"])]
    if opts.get("reverse"):
        items.reverse()
    if "limit" in opts:
        items = items[: opts["limit"]]
    return items


class Obj(durable.DurableObject):
    pass


class TestStorageModel:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=operations)
    def test_matches_dict_model(self, ops: list[tuple[Any, ...]]) -> None:
        """Every operation's result, and the final contents, match a dict under the same operations."""
        asyncio.run(self.check(ops))

    async def check(self, ops: list[tuple[Any, ...]]) -> None:
        model: dict[str, Any] = {}
        async with durable.Runtime() as rt:
            stub = rt.namespace(Obj).get_by_name("m")

            async def inside(op: tuple[Any, ...]) -> Any:
                async def body(obj: Any, ctx: durable.State) -> Any:
                    s = ctx.storage
                    kind = op[0]
                    if kind == "put":
                        return await s.put(op[1], op[2])
                    if kind == "put_many":
                        return await s.put(op[1])
                    if kind == "get":
                        return await s.get(op[1])
                    if kind == "get_many":
                        return list((await s.get(op[1])).items())
                    if kind == "delete":
                        return await s.delete(op[1])
                    if kind == "delete_many":
                        return await s.delete(op[1])
                    if kind == "list":
                        return list((await s.list(**op[1])).items())
                    if kind == "list_after":
                        return list((await s.list(start_after=op[1])).items())
                    raise AssertionError(kind)

                return await testing.run_in_object(stub, body)

            for op in ops:
                kind = op[0]
                if kind == "evict":
                    await testing.evict(stub)
                    continue
                got = await inside(op)
                if kind == "put":
                    model[op[1]] = op[2]
                    expected: Any = None
                elif kind == "put_many":
                    model.update(op[1])
                    expected = None
                elif kind == "get":
                    expected = model.get(op[1])
                elif kind == "get_many":
                    expected = sorted((k, model[k]) for k in set(op[1]) if k in model)
                elif kind == "delete":
                    expected = model.pop(op[1], ...) is not ...
                elif kind == "delete_many":
                    expected = sum(model.pop(k, ...) is not ... for k in set(op[1]))
                elif kind == "list":
                    expected = model_list(model, op[1])
                else:
                    expected = [kv for kv in sorted(model.items()) if kv[0] > op[1]]
                assert got == expected, (op, got, expected)
            final = await testing.run_in_object(stub, lambda o, c: c.storage.list())
            assert list(final.items()) == sorted(model.items())
