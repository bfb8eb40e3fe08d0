"""A Worker mounted under a prefix in FastAPI / Starlette: ``asgi_app(..., strip_root_path=True)``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import durable
from durable.asgi import WorkerApp


class Worker(durable.WorkerEntrypoint):
    """The seed's front, reduced: the counter named by ?name= gets the request's URL."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        name = request.url.rsplit("name=", 1)[1] if "name=" in request.url else "A"
        resp = await self.env.COUNTER.get_by_name(name).fetch(request.url)
        return durable.Response(f"{resp.status} {await resp.text()}")


class Echo(durable.WorkerEntrypoint):
    """Answers the URL it was given."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response.json({"url": request.url})


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime() as runtime:
        runtime.namespace(durable.Counter, name="COUNTER")
        yield runtime


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def call(app: WorkerApp, **scope: Any) -> Any:
    """Drive the app with one raw HTTP scope and return the JSON it answers."""
    full: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "query_string": b"", "headers": [(b"host", b"h")], **scope,
    }  # fmt: skip
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(full, receive, send)
    return json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


class TestFastAPIMount:
    async def test_stripped_prefix_reaches_the_counter(self, rt: durable.Runtime) -> None:
        """Mounted with strip_root_path=True, /counter/increment reaches the object as /increment."""
        app = FastAPI()
        app.mount("/counter", durable.asgi_app(Worker, rt, strip_root_path=True))
        async with client_for(app) as client:
            assert (await client.get("/counter/increment?name=A")).text == "200 1"
            assert (await client.get("/counter/?name=A")).text == "200 1"
            assert (await client.get("/counter/nope?name=A")).text == "404 Not found"

    async def test_bare_prefix_redirects_to_the_slash(self, rt: durable.Runtime) -> None:
        """Starlette redirects the bare prefix to prefix + '/', which a client can follow."""
        app = FastAPI()
        app.mount("/counter", durable.asgi_app(Worker, rt, strip_root_path=True))
        async with client_for(app) as client:
            assert (await client.get("/counter")).status_code == 307
            resp = await client.get("/counter", follow_redirects=True)
            assert resp.text == "200 0"

    async def test_default_keeps_the_full_url(self, rt: durable.Runtime) -> None:
        """Without the option the Worker sees the full URL, as on a Cloudflare route."""
        app = FastAPI()
        app.mount("/counter", durable.asgi_app(Echo, rt))
        async with client_for(app) as client:
            assert (await client.get("/counter/x?y=1")).json() == {"url": "http://test/counter/x?y=1"}


class TestStripRootPath:
    @pytest.mark.parametrize("path", ["/api/items", "/items"])
    async def test_root_path_left_out(self, rt: durable.Runtime, path: str) -> None:
        """root_path is left out whether or not the server included it in path."""
        app = durable.asgi_app(Echo, rt, strip_root_path=True)
        body = await call(app, root_path="/api", path=path, raw_path=path.encode())
        assert body == {"url": "http://h/items"}

    async def test_encoding_is_kept(self, rt: durable.Runtime) -> None:
        """The rest of the path keeps the client's percent-encoding."""
        app = durable.asgi_app(Echo, rt, strip_root_path=True)
        body = await call(app, root_path="/api", path="/api/a b", raw_path=b"/api/a%20b", query_string=b"q=1")
        assert body == {"url": "http://h/a%20b?q=1"}

    async def test_prefix_alone_is_the_root(self, rt: durable.Runtime) -> None:
        """A request for the prefix itself reads as '/'."""
        app = durable.asgi_app(Echo, rt, strip_root_path=True)
        assert await call(app, root_path="/api", path="/api", raw_path=b"/api") == {"url": "http://h/"}

    async def test_option_is_checked(self, rt: durable.Runtime) -> None:
        """A non-bool strip_root_path raises TypeError naming it."""
        with pytest.raises(TypeError, match="strip_root_path must be True or False"):
            durable.asgi_app(Echo, rt, strip_root_path="yes")  # type: ignore[arg-type]
