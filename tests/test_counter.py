"""The seed counter (examples/counter.py), in-process through the ASGI front.

Each row of the behaviour table measured on Cloudflare's workerd has a test here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import durable
from durable._cli import LoadedApp, load_app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "counter.py"
SELECT = "Select a Durable Object to contact by using the `name` URL query string parameter. e.g. ?name=A"


@pytest.fixture(scope="module")
def counter_app() -> LoadedApp:
    return load_app(EXAMPLE)


def _register(rt: durable.Runtime, app: LoadedApp) -> None:
    for binding in app.bindings:
        rt.namespace(binding.cls, name=binding.name)


@pytest.fixture
async def client(counter_app: LoadedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with durable.Runtime() as rt:
        _register(rt, counter_app)
        transport = httpx.ASGITransport(app=durable.asgi_app(counter_app.worker, rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787") as c:
            yield c


async def text_of(client: httpx.AsyncClient, url: str, method: str = "GET") -> str:
    resp = await client.request(method, url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/plain;charset=UTF-8"
    return resp.text


class TestDeclaration:
    def test_file_declares_worker_and_counter_binding(self, counter_app: LoadedApp) -> None:
        """The example declares a Worker and binds Counter as COUNTER."""
        assert issubclass(counter_app.worker, durable.WorkerEntrypoint)
        assert [(b.name, b.cls.__name__) for b in counter_app.bindings] == [("COUNTER", "Counter")]


class TestCounterTable:
    @pytest.mark.parametrize("url", ["/", "/increment", "/?name=", "/?other=A", "/?name=&name=B"])
    async def test_no_name(self, client: httpx.AsyncClient, url: str) -> None:
        """Without a non-empty first `name` the Worker answers with the instructions."""
        assert await text_of(client, url) == SELECT

    async def test_fresh_object(self, client: httpx.AsyncClient) -> None:
        """A fresh object counts 0."""
        assert await text_of(client, "/?name=A") == "Durable Object 'A' count: 0"

    async def test_increment_three_times_then_decrement(self, client: httpx.AsyncClient) -> None:
        """Three increments count 1, 2, 3; a decrement then gives 2."""
        assert [await text_of(client, "/increment?name=A") for _ in range(3)] == [
            "Durable Object 'A' count: 1",
            "Durable Object 'A' count: 2",
            "Durable Object 'A' count: 3",
        ]
        assert await text_of(client, "/decrement?name=A") == "Durable Object 'A' count: 2"
        assert await text_of(client, "/?name=A") == "Durable Object 'A' count: 2"

    async def test_decrement_fresh_goes_negative(self, client: httpx.AsyncClient) -> None:
        """Decrementing a fresh object twice gives -1 then -2."""
        assert await text_of(client, "/decrement?name=B") == "Durable Object 'B' count: -1"
        assert await text_of(client, "/decrement?name=B") == "Durable Object 'B' count: -2"

    async def test_objects_are_independent(self, client: httpx.AsyncClient) -> None:
        """Each name has its own count."""
        await text_of(client, "/increment?name=A")
        assert await text_of(client, "/?name=B") == "Durable Object 'B' count: 0"

    @pytest.mark.parametrize("path", ["/foo", "/increment/", "/INCREMENT", "/%69ncrement"])
    async def test_unknown_path(self, client: httpx.AsyncClient, path: str) -> None:
        """An unknown path reads 'Not found' (the object's 404 body) and changes nothing."""
        await text_of(client, "/increment?name=A")
        assert await text_of(client, f"{path}?name=A") == "Durable Object 'A' count: Not found"
        assert await text_of(client, "/?name=A") == "Durable Object 'A' count: 1"

    async def test_first_name_wins(self, client: httpx.AsyncClient) -> None:
        """With two `name` values the first one is used."""
        assert await text_of(client, "/?name=A&name=B") == "Durable Object 'A' count: 0"

    @pytest.mark.parametrize(("query", "name"), [("name=%C3%A9%20x", "é x"), ("name=a+b", "a b")])
    async def test_name_is_decoded(self, client: httpx.AsyncClient, query: str, name: str) -> None:
        """The name is percent-decoded and '+' reads as a space, as URLSearchParams does."""
        assert await text_of(client, f"/?{query}") == f"Durable Object '{name}' count: 0"

    async def test_encoded_and_plain_names_are_the_same_object(self, client: httpx.AsyncClient) -> None:
        """'%41' and 'A' name the same object."""
        await text_of(client, "/increment?name=%41")
        assert await text_of(client, "/?name=A") == "Durable Object 'A' count: 1"

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
    async def test_method_is_ignored(self, client: httpx.AsyncClient, method: str) -> None:
        """Any method increments: the Worker forwards only the URL."""
        assert await text_of(client, "/increment?name=A", method) == "Durable Object 'A' count: 1"

    async def test_concurrent_increments_are_serialized(self, client: httpx.AsyncClient) -> None:
        """Concurrent increments of one object each see a distinct count: no update is lost."""
        texts = await asyncio.gather(*(text_of(client, "/increment?name=C") for _ in range(40)))
        counts = sorted(int(t.rsplit(" ", 1)[1]) for t in texts)
        assert counts == list(range(1, 41))
        assert await text_of(client, "/?name=C") == "Durable Object 'C' count: 40"


class TestPersistence:
    async def test_count_survives_a_runtime_restart(self, counter_app: LoadedApp, tmp_path: Path) -> None:
        """Counts persisted under a path are found again by a new runtime on the same path."""
        for expected in ("1", "2"):
            async with durable.Runtime(path=tmp_path / "state") as rt:
                _register(rt, counter_app)
                transport = httpx.ASGITransport(app=durable.asgi_app(counter_app.worker, rt))
                async with httpx.AsyncClient(transport=transport, base_url="http://h") as c:
                    assert await text_of(c, "/increment?name=A") == f"Durable Object 'A' count: {expected}"


class TestReferenceCounter:
    def test_example_serves_the_package_counter(self, counter_app: LoadedApp) -> None:
        """examples/counter.py binds durable.Counter itself as COUNTER."""
        assert counter_app.bindings[0].cls is durable.Counter

    async def test_rpc_methods(self, durable_runtime: durable.Runtime) -> None:
        """increment, decrement and get_counter_value return the new and current count."""
        stub = durable_runtime.namespace(durable.Counter).get_by_name("A")
        assert await stub.get_counter_value() == 0
        assert await stub.increment() == 1
        assert await stub.increment(5) == 6
        assert await stub.decrement() == 5
        assert await stub.decrement(amount=7) == -2
        assert await stub.get_counter_value() == -2
        assert await stub.getCounterValue() == -2

    async def test_rpc_and_fetch_share_the_count(self, durable_runtime: durable.Runtime) -> None:
        """RPC and fetch read and write the same storage key, "value"."""
        stub = durable_runtime.namespace(durable.Counter).get_by_name("A")
        await stub.increment(10)
        assert await (await stub.fetch("http://c/increment")).text() == "11"
        assert await stub.get_counter_value() == 11
        assert await durable.testing.run_in_object(stub, lambda obj, ctx: ctx.storage.get("value")) == 11
        resp = await stub.fetch("http://c/other")
        assert (resp.status, await resp.text()) == (404, "Not found")

    @pytest.mark.parametrize("amount", ["1", 1.5, True, None])
    async def test_bad_amount_is_refused(self, durable_runtime: durable.Runtime, amount: object) -> None:
        """A non-int amount raises TypeError naming the method and the type, and changes nothing."""
        stub = durable_runtime.namespace(durable.Counter).get_by_name("A")
        with pytest.raises(TypeError, match=r"Counter\.increment\(\) takes an int amount"):
            await stub.increment(amount)
        assert await stub.get_counter_value() == 0


class Tally(durable.Counter):
    """A subclass that adds a method and overrides RPC and fetch, reaching the base through super()."""

    async def increment(self, amount: int = 1) -> int:
        value = await super().increment(amount)
        await self.ctx.storage.put("calls", await self.calls() + 1)
        return value

    async def calls(self) -> int:
        calls: int = await self.ctx.storage.get("calls") or 0
        return calls

    async def reset(self) -> None:
        await self.ctx.storage.put("value", 0)

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/calls"):
            return durable.Response(str(await self.calls()))
        return await super().fetch(request)


class TestSubclass:
    async def test_override_and_added_methods_over_rpc(self, durable_runtime: durable.Runtime) -> None:
        """An overriding method reaches the base through super(); an added method is reachable by RPC."""
        stub = durable_runtime.namespace(Tally).get_by_name("A")
        assert await stub.increment(2) == 2
        assert await stub.increment() == 3
        assert await stub.calls() == 2
        assert await stub.decrement() == 2
        await stub.reset()
        assert await stub.getCounterValue() == 0

    async def test_override_of_fetch(self, durable_runtime: durable.Runtime) -> None:
        """An overriding fetch answers its own paths and hands the rest to the reference handler,
        whose paths go through the (overridden) methods: fetch and RPC alike (API.md section 7)."""
        stub = durable_runtime.namespace(Tally).get_by_name("A")
        assert await (await stub.fetch("http://t/increment")).text() == "1"
        await stub.increment()
        assert await (await stub.fetch("http://t/calls")).text() == "2"
        assert await (await stub.fetch("http://t/")).text() == "2"
        assert (await stub.fetch("http://t/nope")).status == 404

    async def test_overrides_apply_to_fetch_as_to_rpc(self, durable_runtime: durable.Runtime) -> None:
        """A subclass that changes increment/decrement/get_counter_value answers fetch the same way."""

        class Double(durable.Counter):
            async def increment(self, amount: int = 1) -> int:
                return await super().increment(2 * amount)

            async def decrement(self, amount: int = 1) -> int:
                return await super().decrement(2 * amount)

            async def get_counter_value(self) -> int:
                return 100 + await super().get_counter_value()

        stub = durable_runtime.namespace(Double).get_by_name("A")
        assert await stub.increment() == 2
        assert await (await stub.fetch("http://d/increment")).text() == "4"
        assert await (await stub.fetch("http://d/decrement")).text() == "2"
        assert await (await stub.fetch("http://d/")).text() == "102"
        assert await stub.get_counter_value() == 102

    async def test_fetch_calls_overrides_as_rpc_does(self, durable_runtime: durable.Runtime) -> None:
        """``/increment`` calls the override as ``stub.increment()`` does: with no argument, and a
        plain ``def`` override (which RPC accepts) works too (it raised TypeError: fetch awaited
        ``self.increment(1)``)."""

        class NoAmount(durable.Counter):
            async def increment(self) -> int:  # type: ignore[override]
                return await super().increment(10)

        class Plain(durable.Counter):
            def decrement(self, amount: int = 1) -> int:  # type: ignore[override]
                return -7

            def get_counter_value(self) -> int:  # type: ignore[override]
                return 5

        stub = durable_runtime.namespace(NoAmount).get_by_name("A")
        assert await stub.increment() == 10
        assert await (await stub.fetch("http://n/increment")).text() == "20"
        plain = durable_runtime.namespace(Plain).get_by_name("A")
        assert await plain.decrement() == -7
        assert await (await plain.fetch("http://p/decrement")).text() == "-7"
        assert await (await plain.fetch("http://p/")).text() == "5"

    async def test_root_path_stores_the_count_as_the_seed_does(self, durable_runtime: durable.Runtime) -> None:
        """The seed's handler writes the count back on every path: "/" on a new object stores 0."""
        stub = durable_runtime.namespace(durable.Counter).get_by_name("fresh")
        assert await (await stub.fetch("http://c/")).text() == "0"
        assert await durable.testing.list_ids(durable_runtime.namespace(durable.Counter)) == [stub.id]
