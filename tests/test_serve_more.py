"""More of `durable serve` and `durable.asgi_app`, checked against what workerd does.

Measurements cited here were made with miniflare 4 (workerd, compatibility date 2026-04-07)
serving the seed's counter and a probe Worker on a real port, and curl against it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable._cli import AppLoadError, load_app, main


class Probe(durable.WorkerEntrypoint):
    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response.json(dict(request.headers.items()))


class NotAWorker:
    """Has fetch and takes (ctx, env), but is no WorkerEntrypoint subclass."""

    def __init__(self, ctx: Any, env: Any) -> None:
        pass

    async def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("x")


class TestWorkerClassChecked:
    async def test_durable_object_class_refused(self, durable_runtime: durable.Runtime) -> None:
        """A Durable Object class given as the Worker is refused at once, with the fix.

        Before, asgi_app(Counter, rt) was accepted and every request answered 500
        (AttributeError: 'ExecutionContext' object has no attribute 'storage').
        """
        with pytest.raises(TypeError, match=r"not the Durable Object class Counter: bind it with runtime\.namespace"):
            durable.asgi_app(durable.Counter, durable_runtime)  # type: ignore[arg-type]

    async def test_class_not_a_worker_entrypoint_refused(self, durable_runtime: durable.Runtime) -> None:
        """Any class that is no WorkerEntrypoint subclass is refused (API.md section 5: the subclass itself)."""
        with pytest.raises(TypeError, match=r"declare it as class NotAWorker\(durable\.WorkerEntrypoint\)"):
            durable.asgi_app(NotAWorker, durable_runtime)  # type: ignore[arg-type]

    async def test_worker_entrypoint_subclass_accepted(self, durable_runtime: durable.Runtime) -> None:
        app = durable.asgi_app(Probe, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/")).status_code == 200

    def test_serve_refuses_a_durable_object_as_worker(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`Worker = Counter` in a served file exits 2 naming the mistake and the `bindings` fix."""
        path = tmp_path / "app.py"
        path.write_text("import durable\nWorker = durable.Counter\nbindings = {'COUNTER': durable.Counter}\n")
        with pytest.raises(AppLoadError, match=r"not the Durable Object class Counter: bind it with bindings = "):
            load_app(path)
        assert main(["serve", str(path), "--in-memory"]) == 2
        assert "must be a class with a fetch method" in capsys.readouterr().err


class TestRequestHeaders:
    """What a Worker finds in `request.headers` of a request that came over HTTP."""

    async def test_cf_connecting_ip_added(self, durable_runtime: durable.Runtime) -> None:
        """The client's address arrives as CF-Connecting-IP, as in workerd behind miniflare's front.

        Measured (miniflare 4, curl to 127.0.0.1): the Worker sees `cf-connecting-ip: 127.0.0.1`
        beside the client's own headers; a CF-Connecting-IP the client sends is kept as it is.
        """
        app = durable.asgi_app(Probe, durable_runtime)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5)), base_url="http://t"
        ) as c:
            seen = (await c.get("/")).json()
            assert seen["cf-connecting-ip"] == "10.1.2.3"
            kept = (await c.get("/", headers={"CF-Connecting-IP": "1.2.3.4"})).json()
            assert kept["cf-connecting-ip"] == "1.2.3.4"

    async def test_no_client_address_no_header(self, durable_runtime: durable.Runtime) -> None:
        """A server that knows no client address (a Unix socket) adds nothing."""
        app = durable.asgi_app(Probe, durable_runtime)
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"h")], "client": None}
        await app(scope, receive, send)
        assert "cf-connecting-ip" not in sent[1]["body"].decode()

    @pytest.mark.parametrize(
        ("raw", "seen"),
        [
            (b"caf\xc3\xa9", "café"),
            (b"\xe6\x97\xa5\xe6\x9c\xac", "日本"),
            (b"\xf0\x9f\x98\x80", "\U0001f600"),
            (b"caf\xe9", "caf\ufffd"),
            (b"\xc3", "\ufffd"),
            (b"plain ascii", "plain ascii"),
        ],
    )
    async def test_header_values_read_as_utf8(self, durable_runtime: durable.Runtime, raw: bytes, seen: str) -> None:
        """Header bytes are read as UTF-8, invalid sequences as U+FFFD, as workerd reads them.

        Measured (miniflare 4, raw HTTP/1.1 to its port): `X-V: caf\\xc3\\xa9` arrives as `café`,
        `\\xe6\\x97\\xa5\\xe6\\x9c\\xac` as `日本`, `caf\\xe9` as `caf\\ufffd`, `\\xc3` as `\\ufffd`.
        Before, durable read them as latin-1 (`cafÃ©`).
        """
        app = durable.asgi_app(Probe, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/", headers={b"X-V": raw})).json()["x-v"] == seen

    async def test_websocket_helper_sends_utf8_headers(self, durable_runtime: durable.Runtime) -> None:
        """durable.testing.websocket sends header values as UTF-8, so the Worker sees them as given."""

        class Upgrade(durable.WorkerEntrypoint):
            async def fetch(self, request: durable.Request) -> durable.Response:
                client, server = durable.WebSocketPair()
                server.accept()
                server.send(request.headers.get("x-name") or "")
                return durable.Response(None, status=101, web_socket=client)

        app = durable.asgi_app(Upgrade, durable_runtime)
        async with durable.testing.websocket(app, "http://t/", headers={"X-Name": "José 日本"}) as ws:
            assert await ws.receive() == "José 日本"


class TestPythonWorkersDefault:
    def test_plain_default_class_refused(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A project whose `Default` is no WorkerEntrypoint subclass exits 2 naming the fix.

        workerd serves only the WorkerEntrypoint subclasses its introspection collects from the
        main module (src/pyodide/python-entrypoint-helper.ts), so such a class serves nothing
        there. Before, `durable serve` died with exit code 1 and a bare TypeError from asgi_app.
        """
        (tmp_path / "src").mkdir()
        (tmp_path / "wrangler.jsonc").write_text('{"main": "src/entry.py"}')
        (tmp_path / "src" / "entry.py").write_text(
            "from workers import Response\n\nclass Default:\n    async def fetch(self, request):\n"
            "        return Response('hi')\n"
        )
        assert main(["serve", str(tmp_path), "--in-memory"]) == 2
        err = capsys.readouterr().err
        assert "`Default` must be a class with a fetch method (a WorkerEntrypoint subclass" in err
        assert "class Default(WorkerEntrypoint)" in err
