"""JavaScript globals that real Python Workers code uses beyond Cloudflare's examples: timers
(``setTimeout`` / ``clearTimeout`` / ``setInterval`` with ``create_once_callable`` or
``create_proxy``), ``Promise`` (``Promise.new(lambda resolve, reject: setTimeout(resolve, ms))``
to sleep, ``run_sync(Promise.resolve())`` to test for stack switching), ``performance.now()``,
``structuredClone``, ``crypto.subtle.digest``, ``globalThis``.

Before: each of these raised ``NotImplementedError`` under durable. The usages were collected from
public Python Workers projects (a Durable Object keeping itself resident with a pending timer, a
retry helper sleeping through a ``Promise``, Cloudflare's Batcher example initialising in
``@self.ctx.blockConcurrencyWhile``...); the tests exercise the same API calls in their own code.
Expected values and error texts were measured in workerd (miniflare 4, compatibility date
2026-04-07) with the JavaScript each test names.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

import httpx
import pytest

import durable
import durable.testing
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def _js() -> Any:
    import js  # type: ignore[import-not-found]

    return js


def _ffi() -> Any:
    from pyodide import ffi  # type: ignore[import-not-found]

    return ffi


def _js_error(name: str, message: str) -> Any:
    return pytest.raises(_ffi().JsException, match=f"^{re.escape(f'{name}: {message}')}$")


FIRED: list[Any] = []
RUNTIMES: list[durable.Runtime] = []  # the running test's, for code in an object


class Resident(sdk.DurableObject):
    """Timers inside an object: the callback writes storage; the caller waits on a Promise."""

    async def arm(self, ms: int) -> list[Any]:
        js, ffi = _js(), _ffi()
        ids = []

        def write(label: str) -> None:
            self.ctx.storage.kv.put(label, True)  # sync KV write, inside the timer's event

        ids.append(js.setTimeout(ffi.create_once_callable(write), ms, "first"))
        cancelled = js.setTimeout(ffi.create_once_callable(write), ms, "cancelled")
        js.clearTimeout(cancelled)
        js.clearTimeout(None)  # undefined: nothing, as in workerd
        js.clearTimeout(987654)  # an unknown id: nothing
        await js.Promise.new(lambda resolve, reject: js.setTimeout(resolve, ms + 5))
        ids.append(cancelled)
        return ids

    async def keys(self) -> list[str]:
        return sorted(key for key, _ in self.ctx.storage.kv.list())

    async def leave_timer(self) -> None:
        _js().setTimeout(lambda: FIRED.append("after reset"), 20)
        self.ctx.abort("reset")

    async def arm_slow_write(self) -> None:
        js = _js()

        async def later() -> None:
            FIRED.append("started")
            await js.Promise.new(lambda resolve, _reject: js.setTimeout(resolve, 20))
            self.ctx.storage.kv.put("late", True)  # after an await: the runtime may be closing

        js.setTimeout(later, 0)

    async def arm_close(self) -> None:
        async def close() -> None:
            await asyncio.sleep(0)  # the event's own task goes on from here (not the timer's start)
            await RUNTIMES[0].aclose()
            FIRED.append("closed")

        _js().setTimeout(close, 0)

    async def sleep_then(self, ms: int) -> str:
        js = _js()
        await js.Promise.new(lambda resolve, _reject: js.setTimeout(resolve, ms))
        return "slept"


class TestTimers:
    async def test_timer_in_an_object_runs_as_its_event(self, durable_runtime: durable.Runtime) -> None:
        """``setTimeout(create_once_callable(cb), ms, arg)``: ``cb(arg)`` runs later, in the object
        (its storage writes are kept); ``clearTimeout`` cancels, and ignores ``undefined`` and
        unknown ids. workerd: ``typeof setTimeout(...)`` is ``"number"``, ids count up from 1."""
        durable_runtime.namespace(Resident, name="RESIDENT")
        pw.serving(durable_runtime)
        stub = sdk.env.RESIDENT.getByName("a")
        first, cancelled = await stub.arm(1)
        assert isinstance(first, int) and cancelled == first + 1
        assert await stub.keys() == ["first"]

    async def test_a_timer_of_a_reset_object_never_fires(self, durable_runtime: durable.Runtime) -> None:
        """workerd drops an aborted object's timers: the callback set before ``ctx.abort()`` does
        not run (the next instance sleeps past its time first)."""
        FIRED.clear()
        durable_runtime.namespace(Resident, name="RESIDENT")
        pw.serving(durable_runtime)
        stub = sdk.env.RESIDENT.getByName("a")
        with pytest.raises(Exception, match="reset"):
            await stub.leave_timer()
        assert await sdk.env.RESIDENT.getByName("a").sleep_then(40) == "slept"
        assert FIRED == []

    async def test_closing_waits_for_a_running_timer_callback(self, tmp_path: Any) -> None:
        """A timer's callback is work no caller awaits, as ``wait_until`` work: ``aclose()`` lets it
        end (its writes after an await are kept). Before, it cut the callback's event and its write
        was lost."""
        FIRED.clear()
        async with durable.Runtime(path=tmp_path) as rt:
            rt.namespace(Resident, name="RESIDENT")
            pw.serving(rt)
            await sdk.env.RESIDENT.getByName("a").arm_slow_write()
            while FIRED != ["started"]:
                await asyncio.sleep(0.001)
        async with durable.Runtime(path=tmp_path) as rt:
            rt.namespace(Resident, name="RESIDENT")
            pw.serving(rt)
            assert await sdk.env.RESIDENT.getByName("a").keys() == ["late"]

    async def test_a_timer_callback_may_close_the_runtime(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """``aclose()`` awaited by a timer's callback does not wait for that callback (which waits
        for it), as from ``wait_until`` work: it closes, the callback goes on."""
        from durable import _runtime

        monkeypatch.setattr(_runtime, "SHUTDOWN_GRACE", 60.0)  # a stall shows as a hang
        FIRED.clear()
        RUNTIMES[:] = [rt := durable.Runtime()]
        rt.namespace(Resident, name="RESIDENT")
        pw.serving(rt)
        with caplog.at_level("WARNING", logger="durable"):
            await sdk.env.RESIDENT.getByName("a").arm_close()
            async with asyncio.timeout(10):
                while FIRED != ["closed"]:
                    await asyncio.sleep(0.001)
        assert rt.closed and "unfinished task" not in caplog.text

    async def test_order_arguments_and_intervals(self, durable_runtime: durable.Runtime) -> None:
        """workerd: timers run by due time, those due together in the order they were set; a
        negative delay is 0 (a timer set last with -5 ms runs before earlier 40 ms ones); extra
        arguments reach the callback. ``setInterval`` repeats until ``clearInterval``."""
        js = _js()
        order: list[str] = []

        class Worker(sdk.WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                # workerd reads the clock at each call (measured: with 20 ms of work between
                # setTimeout(b, 5) and setTimeout(a, 0), b ran first), so the 0 ms timers come
                # first and the others wait long enough for a loaded machine's pauses.
                js.setTimeout(order.append, 0, "a")
                js.setTimeout(order.append, 40, "b")
                js.setTimeout(order.append, 40, "c")
                js.setTimeout(order.append, -5, "negative")
                ticks: list[int] = []

                def tick() -> None:
                    ticks.append(1)
                    if len(ticks) == 3:
                        js.clearInterval(interval)

                interval = js.setInterval(tick, 1)
                await js.Promise.new(lambda resolve, reject: js.setTimeout(resolve, 120))
                return sdk.Response(f"{len(ticks)}")

        app = durable.asgi_app(Worker, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            response = await client.get("/")
        assert response.text == "3"
        assert order == ["a", "negative", "b", "c"]

    async def test_refusals(self) -> None:
        """workerd: a callback that is not a function is ``TypeError: Failed to execute 'setTimeout'
        on 'ServiceWorkerGlobalScope': parameter 1 is not of type 'function'.``; outside any
        request, setting a timeout is the "Disallowed operation called within global scope" error."""
        js = _js()
        with _js_error(
            "TypeError",
            "Failed to execute 'setTimeout' on 'ServiceWorkerGlobalScope': parameter 1 is not of type 'function'.",
        ):
            js.setTimeout("code", 1)
        with pytest.raises(_ffi().JsException, match="^Error: Disallowed operation called within global scope"):
            js.setTimeout(lambda: None, 1)


class TestPromise:
    async def test_then_catch_finally_and_await(self) -> None:
        """``then`` callbacks run after the code that added them (a promise job), ``catch`` gets
        the reason, ``finally_`` keeps the outcome, an ``async`` callback is awaited; awaiting a
        rejected promise raises its reason. A ``js.Promise`` is a ``JsPromise``."""
        js, ffi = _js(), _ffi()
        seen: list[Any] = []
        resolved = js.Promise.resolve(2)
        chained = resolved.then(lambda v: v * 10)
        seen.append("sync")
        assert isinstance(resolved, ffi.JsPromise) and await chained == 20 and seen == ["sync"]

        async def double(v: int) -> int:
            await asyncio.sleep(0)
            return v * 2

        assert await js.Promise.resolve(4).then(double) == 8
        boom = ValueError("boom")
        assert await js.Promise.reject(boom).catch(lambda e: f"caught {e}") == "caught boom"
        finals: list[str] = []
        with pytest.raises(ValueError, match="boom"):
            await js.Promise.reject(boom).finally_(lambda: finals.append("ran"))
        assert finals == ["ran"]
        with pytest.raises(KeyError):
            await js.Promise.new(lambda resolve, reject: (_ for _ in ()).throw(KeyError("x")))
        assert await js.Promise.resolve(double(5)) == 10  # an awaitable is adopted

    async def test_combinators(self) -> None:
        """workerd: ``await Promise.all([1, Promise.resolve(2)])`` is ``[1, 2]`` (an array);
        ``allSettled`` gives ``{status, value | reason}``; ``race`` the first to settle."""
        js = _js()
        both = await js.Promise.all([1, js.Promise.resolve(2)])
        assert both == [1, 2] and both.to_py() == [1, 2]
        assert await js.Promise.all([]) == []
        error = RuntimeError("no")
        with pytest.raises(RuntimeError, match="no"):
            await js.Promise.all([js.Promise.resolve(1), js.Promise.reject(error)])
        settled = await js.Promise.allSettled([1, js.Promise.reject(error)])
        assert settled[0].status == "fulfilled" and settled[0].value == 1
        assert settled[1].status == "rejected" and settled[1].reason is error
        never = js.Promise.new(lambda resolve, reject: None)
        assert await js.Promise.race([never, js.Promise.resolve("first")]) == "first"
        with pytest.raises(NotImplementedError, match=r"js\.Promise\.withResolvers"):
            js.Promise.withResolvers()

    def test_run_sync_of_a_settled_promise(self) -> None:
        """``run_sync(Promise.resolve())`` is how Python Workers code tests for stack switching:
        on Workers it returns (``None``)."""
        js, ffi = _js(), _ffi()
        assert ffi.run_sync(js.Promise.resolve()) is None
        assert ffi.run_sync(js.Promise.resolve(3)) == 3

    async def test_run_sync_of_a_pending_promise_inside_a_loop_is_refused(self) -> None:
        """Pyodide lets the loop settle it while the stack is suspended; here the loop is the one
        blocked, so it would hang: refused with a clear error instead."""
        js, ffi = _js(), _ffi()
        pending = js.Promise.new(lambda resolve, reject: None)
        with pytest.raises(NotImplementedError, match=r"run_sync\(\) of a pending js\.Promise"):
            ffi.run_sync(pending)
        assert ffi.run_sync(js.Promise.resolve("ready")) == "ready"


class Clock(sdk.DurableObject):
    async def times(self) -> list[int]:
        js = _js()
        return [js.performance.now(), js.Date.now(), js.performance.timeOrigin, js.globalThis.Date.now()]


class TestGlobals:
    async def test_performance_now_is_date_now(
        self, durable_runtime: durable.Runtime, mock_clock: durable.testing.MockClock
    ) -> None:
        """workerd: ``performance.now()`` equals ``Date.now()`` and ``performance.timeOrigin`` is
        0; inside an object both follow the runtime's clock. ``globalThis`` is the global scope."""
        durable_runtime.namespace(Clock, name="CLOCK")
        pw.serving(durable_runtime)
        now, date, origin, through_global = await sdk.env.CLOCK.getByName("a").times()
        assert now == date == through_global and origin == 0
        await mock_clock.advance(10)
        later = (await sdk.env.CLOCK.getByName("a").times())[0]
        assert later - now == 10_000
        js = _js()
        assert js.self is js.globalThis and js.globalThis.fetch is js.fetch
        with pytest.raises(NotImplementedError, match=r"js\.performance\.mark"):
            js.performance.mark("x")

    def test_structured_clone(self) -> None:
        """workerd: ``structuredClone({a: [1, {b: 2}]})`` is an equal, separate copy; a function
        throws ``DataCloneError: ... could not be cloned.``"""
        js, ffi = _js(), _ffi()
        inner = {"b": 2}
        value = {"a": [1, inner], "same": inner, "data": b"\x01", "when": js.Date.new(5)}
        copy = js.structuredClone(ffi.to_js(value, dict_converter=js.Object.fromEntries))
        assert copy["a"] == [1, {"b": 2}] and copy.a[1].b == 2
        assert copy.a[1] is not inner and copy.a[1] is copy.same  # shared references stay shared
        assert isinstance(copy.data, ffi.JsTypedArray) and copy.data.to_bytes() == b"\x01"
        assert copy.when.getTime() == 5 and copy.when is not value["when"]
        with pytest.raises(ffi.JsException, match="^DataCloneError: .* could not be cloned.$"):
            js.structuredClone({"f": lambda: 1})

    async def test_subtle_digest(self) -> None:
        """workerd: ``crypto.subtle.digest("SHA-256", new TextEncoder().encode("x"))`` resolves to a
        32-byte ``ArrayBuffer``; the name is case-insensitive and ``MD5`` is accepted; an unknown
        algorithm rejects with ``NotSupportedError: Unrecognized or unimplemented digest algorithm
        requested.``; a string as data with ``TypeError: Failed to execute 'digest' on
        'SubtleCrypto': parameter 2 is not of type 'Array'.``"""
        js = _js()
        data = js.TextEncoder.new().encode("x")
        digest = await js.crypto.subtle.digest("SHA-256", data)
        assert digest.byteLength == 32 and digest.to_bytes() == hashlib.sha256(b"x").digest()
        assert bytes(js.Uint8Array.new(digest)) == hashlib.sha256(b"x").digest()
        assert bytes(await js.crypto.subtle.digest({"name": "sha-1"}, b"abc"))[:3] == bytes([169, 153, 62])
        assert (await js.crypto.subtle.digest("MD5", b"abc")).byteLength == 16
        with _js_error("NotSupportedError", "Unrecognized or unimplemented digest algorithm requested."):
            await js.crypto.subtle.digest("SHA-3", b"a")
        with _js_error(
            "TypeError", "Failed to execute 'digest' on 'SubtleCrypto': parameter 2 is not of type 'Array'."
        ):
            await js.crypto.subtle.digest("SHA-1", "abc")
        with pytest.raises(NotImplementedError, match=r"js\.crypto\.subtle\.importKey"):
            js.crypto.subtle.importKey("raw", b"k", {"name": "HMAC"}, False, ["sign"])


class Batcher(sdk.DurableObject):
    """Cloudflare's Batcher example's constructor: ``@self.ctx.blockConcurrencyWhile`` as a
    decorator, ``storage.list`` with keyword options as Pyodide passes them."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)

        @self.ctx.blockConcurrencyWhile  # type: ignore[untyped-decorator]
        async def initialize() -> None:
            last = await self.ctx.storage.list(reverse=True, limit=1)
            self.count = int(next(iter(last))) if len(last) > 0 else 0

    async def add(self) -> int:
        self.count += 1
        await self.ctx.storage.put(f"{self.count:04}", "x")
        return self.count

    async def restart(self) -> None:
        self.ctx.abort("restart")


class TestConstructorPatterns:
    async def test_block_concurrency_while_as_a_decorator(self, durable_runtime: durable.Runtime) -> None:
        """The decorated initialiser runs before the first call; a new instance reads its state
        back with ``list(reverse=True, limit=1)``."""
        durable_runtime.namespace(Batcher, name="BATCHER")
        pw.serving(durable_runtime)
        stub = sdk.env.BATCHER.getByName("foo")
        assert [await stub.add(), await stub.add()] == [1, 2]
        with pytest.raises(Exception, match="restart"):
            await stub.restart()
        assert await sdk.env.BATCHER.getByName("foo").add() == 3


class Sleeper(sdk.DurableObject):
    async def fetch(self, request: Any) -> Any:
        js = _js()
        client, server = js.WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return sdk.Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:  # noqa: N802 - the SDK's name
        js = _js()
        if message == "arm":
            self.timer = js.setTimeout(lambda: None, 3_600_000)
        else:
            js.clearTimeout(self.timer)
        ws.send(message)


class TestHibernation:
    async def test_a_pending_timer_blocks_hibernation(self) -> None:
        """Cloudflare's lifecycle documentation: a pending ``setTimeout`` / ``setInterval`` keeps an
        object from hibernating. ``hibernation_blockers`` names it until it is cleared."""
        from durable.testing import hibernation_blockers, websocket

        async with durable.Runtime() as rt:
            stub = rt.namespace(Sleeper, name="SLEEPER").get_by_name("a")
            pw.serving(rt)
            async with websocket(stub, "http://s/") as ws:
                ws.send("arm")
                assert await ws.receive() == "arm"
                assert hibernation_blockers(stub) == ["pending timer"]
                ws.send("clear")
                assert await ws.receive() == "clear"
                assert hibernation_blockers(stub) == []


class Keeper(sdk.DurableObject):
    async def keep(self, value: Any) -> Any:
        await self.ctx.storage.put("v", value)
        return await self.ctx.storage.get("v")


class TestToJs:
    async def test_dict_converter_and_maps(self, durable_runtime: durable.Runtime) -> None:
        """Pyodide's ``to_js`` converts at any depth and Python reads the result through a proxy:
        with ``dict_converter=Object.fromEntries`` an object (attribute access, ``to_py()``), else a
        ``Map`` (``size``, ``has``, ``entries()``; ``Object.fromEntries(to_js(d).entries())`` is
        how browser-style code builds a headers object); arrays have ``length`` and ``to_py()``.
        Before, ``to_js`` returned the dict itself, which has none of these."""
        js, ffi = _js(), _ffi()
        source = {"headers": {"Accept": "*/*"}, "rows": [{"id": 1}, (2, 3)]}
        converted = ffi.to_js(source, dict_converter=js.Object.fromEntries)
        assert converted.headers.Accept == "*/*" and converted.rows.length == 2
        assert converted.rows[0].id == 1 and converted.rows[1].to_py() == [2, 3]
        assert converted.to_py()["headers"] == {"Accept": "*/*"} and converted is not source
        as_map = ffi.to_js({"a": 1, "b": {"c": 2}})
        assert (as_map.size, as_map.has("a"), as_map.get("b").get("c"), as_map["a"]) == (2, True, 2, 1)
        headers = js.Object.fromEntries(as_map.entries())
        assert headers.a == 1 and headers.b.get("c") == 2  # only the top level: the inner Map stays one
        assert as_map.set("d", 4) is as_map and as_map.delete("d") and not as_map.delete("d")
        assert as_map.to_py() == {"a": 1, "b": {"c": 2}}
        assert ffi.to_js("text") == "text" and ffi.to_js(None) is None
        durable_runtime.namespace(Keeper, name="KEEPER")
        pw.serving(durable_runtime)
        kept = await sdk.env.KEEPER.getByName("a").keep(converted)
        assert kept.headers.Accept == "*/*" and kept.rows[1] == [2, 3]
        assert (await sdk.env.KEEPER.getByName("a").keep(as_map)).b.c == 2  # a Map reads back as a dict


RUNS: list[Any] = []


class Reporter(sdk.DurableObject):
    async def record(self, cron: str) -> int:
        runs = (await self.ctx.storage.get("runs") or 0) + 1
        await self.ctx.storage.put("runs", runs)
        return runs


class CronWorker(sdk.WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        return sdk.Response("ok")

    async def scheduled(self, controller: Any, env: Any, ctx: Any) -> None:
        if controller.cron == "fail":
            raise RuntimeError("cron failed")
        if controller.cron == "no retry":
            controller.noRetry()
        runs = await env.REPORTER.getByName("daily").record(controller.cron)

        async def later() -> None:
            await asyncio.sleep(0.01)
            RUNS.append((controller.cron, controller.scheduledTime, runs))

        ctx.waitUntil(later())


class TestScheduled:
    async def test_a_cron_trigger_run_by_hand(self, durable_runtime: durable.Runtime) -> None:
        """``python_workers.scheduled(Worker, runtime, cron=...)`` runs ``scheduled(controller, env,
        ctx)`` as workerd does for a Cron Trigger (measured with miniflare 4's
        ``worker.scheduled({cron, scheduledTime})``): ``{"outcome": "ok", "noRetry": false}`` once
        the handler and its ``waitUntil`` work are done; ``noRetry()`` is reported; an exception
        gives ``"exception"``; a Worker without the handler ``{"outcome": "exception", "noRetry":
        true}``. Before, there was no way to run a ``scheduled`` handler."""
        RUNS.clear()
        durable_runtime.namespace(Reporter, name="REPORTER")
        pw.serving(durable_runtime)
        result = await pw.scheduled(CronWorker, durable_runtime, cron="0 0 * * *", scheduled_time=1000)
        assert result == {"outcome": "ok", "noRetry": False} and result.outcome == "ok"
        assert RUNS == [("0 0 * * *", 1000, 1)]  # waitUntil work finished first
        assert await pw.scheduled(CronWorker, durable_runtime, cron="no retry") == {"outcome": "ok", "noRetry": True}
        assert await pw.scheduled(CronWorker, durable_runtime, cron="fail") == {
            "outcome": "exception",
            "noRetry": False,
        }

        class NoCron(sdk.WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                return sdk.Response("ok")

        assert await pw.scheduled(NoCron, durable_runtime) == {"outcome": "exception", "noRetry": True}

    async def test_cloudflare_cron_example(self, durable_runtime: durable.Runtime, tmp_path: Any) -> None:
        """A project like Cloudflare's ``08-cron``: ``Default.scheduled(self, controller, env, ctx)``
        with a ``triggers.crons`` config runs through its loaded project; a module-level
        ``on_scheduled(event)`` serves a legacy Worker."""
        (tmp_path / "wrangler.jsonc").write_text(
            '{"name": "cron", "main": "entry.py", "compatibility_flags": ["python_workers"],'
            ' "triggers": {"crons": ["*/1 * * * *"]}}'
        )
        (tmp_path / "entry.py").write_text(
            "from workers import Response, WorkerEntrypoint\n"
            "SEEN = []\n"
            "class Default(WorkerEntrypoint):\n"
            "    async def scheduled(self, controller, env, ctx):\n"
            "        SEEN.append(controller.cron)\n"
            "    async def fetch(self):\n"
            "        return Response('hello')\n"
        )
        project = pw.load_project(tmp_path)
        project.bind(durable_runtime)
        assert (await pw.scheduled(project, durable_runtime, cron="*/1 * * * *")).outcome == "ok"
        assert project.module.SEEN == ["*/1 * * * *"]
        legacy = tmp_path / "legacy"
        legacy.mkdir()
        (legacy / "wrangler.jsonc").write_text(
            '{"name": "legacy", "main": "worker.py", "compatibility_flags": ["python_workers"]}'
        )
        (legacy / "worker.py").write_text(
            "from workers import Response\n"
            "SEEN = []\n"
            "async def on_fetch(request):\n"
            "    return Response('hello')\n"
            "async def on_scheduled(event):\n"
            "    SEEN.append(event.scheduledTime)\n"
        )
        old = pw.load_project(legacy)
        assert (await pw.scheduled(old, durable_runtime, scheduled_time=5)).outcome == "ok"
        assert old.module.SEEN == [5]


class TestDate:
    def test_parse_fields_and_strings(self) -> None:
        """Measured in workerd (its local time is UTC): ``Date.parse`` of ISO 8601 with or without
        ``Z``, with a space for ``T``, date-only, year-month, year, an offset, RFC 2822; ``NaN`` for
        month 13; ``"2024-02-30"`` rolls over to March 1; ``new Date(2024, 0, 2, 3, 4, 5, 6)``
        and ``Date.UTC`` roll months and days over; a year 0-99 as a field is 1900 + year.
        Before, a date string or fields raised ``NotImplementedError``."""
        js = _js()
        expected = {
            "2024-01-02T03:04:05Z": 1704164645000,
            "2024-01-02T03:04:05": 1704164645000,
            "2024-01-02 03:04:05": 1704164645000,
            " 2024-01-02": 1704153600000,
            "2024-01": 1704067200000,
            "2024": 1704067200000,
            "2024-01-02T03:04:05.123+02:00": 1704157445123,
            "2024-01-02T03:04Z": 1704164640000,
            "+002024-01-02T00:00:00Z": 1704153600000,
            "Tue, 02 Jan 2024 03:04:05 GMT": 1704164645000,
            "2024-02-30": 1709251200000,
        }
        assert {text: js.Date.parse(text) for text in expected} == expected
        assert js.Date.parse("2024-13-01") != js.Date.parse("2024-13-01")  # NaN
        assert js.Date.new("2024-01-02T03:04:05Z").getTime() == 1704164645000
        assert js.Date.new(2024, 0, 2, 3, 4, 5, 6).getTime() == 1704164645006
        assert js.Date.new(2024, 13, 40).getTime() == 1741737600000
        assert js.Date.new(99, 0).getTime() == 915148800000
        assert (js.Date.UTC(2024, 0, 2), js.Date.UTC(2024)) == (1704153600000, 1704067200000)
        with pytest.raises(NotImplementedError, match="cannot parse 'Jan 2, 2024'"):
            js.Date.new("Jan 2, 2024")  # V8's lenient formats are not read

    def test_formats_and_getters(self) -> None:
        """workerd: ``toString()`` is ``Tue Jan 02 2024 03:04:05 GMT+0000 (Coordinated Universal
        Time)``, ``toUTCString()`` ``Tue, 02 Jan 2024 03:04:05 GMT``, ``toDateString()`` ``Tue Jan
        02 2024``; the getters read [2024, 0, 2, 2, 3, 4, 5, 6] and ``getTimezoneOffset()`` 0; an
        invalid date is ``Invalid Date``, ``getTime()`` ``NaN``, ``toJSON()`` ``null`` and
        ``toISOString()`` raises ``RangeError: Invalid time value``; past 8.64e15 ms it is invalid."""
        js = _js()
        date = js.Date.new(js.Date.UTC(2024, 0, 2, 3, 4, 5, 6))
        assert date.toString() == "Tue Jan 02 2024 03:04:05 GMT+0000 (Coordinated Universal Time)"
        assert (date.toUTCString(), date.toDateString()) == ("Tue, 02 Jan 2024 03:04:05 GMT", "Tue Jan 02 2024")
        getters = [date.getFullYear(), date.getMonth(), date.getDate(), date.getDay(), date.getHours()]
        getters += [date.getMinutes(), date.getSeconds(), date.getMilliseconds(), date.getTimezoneOffset()]
        assert getters == [2024, 0, 2, 2, 3, 4, 5, 6, 0] and date.getUTCHours() == 3
        assert date.toISOString() == "2024-01-02T03:04:05.006Z" and js.Date.new(date).getTime() == date.getTime()
        bad = js.Date.new(8.64e15 + 1)
        assert bad.toString() == "Invalid Date" and bad.toJSON() is None and bad.getTime() != bad.getTime()
        with _js_error("RangeError", "Invalid time value"):
            bad.toISOString()


class TestLeftovers:
    def test_a_promise_job_left_on_a_closed_loop_does_not_stall_the_next(self) -> None:
        """A ``then`` whose job was queued on a loop that then closed must not keep later promises
        from settling on the next loop (each job goes to the loop running when it is queued)."""
        js = _js()

        async def leave_a_job() -> None:
            # Queued by the loop's last callback: the loop stops before the job runs.
            asyncio.get_running_loop().call_soon(lambda: js.Promise.resolve(1).then(lambda value: value))

        async def settle_later() -> Any:
            return await js.Promise.resolve(2).then(lambda value: value * 2)

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(leave_a_job())
        finally:
            loop.close()
        assert asyncio.run(asyncio.wait_for(settle_later(), 5)) == 4

    def test_uninstall_cancels_pending_timers(self) -> None:
        """``uninstall()`` drops the timers of a finished test's loop (they could never run)."""
        from durable.compat.python_workers import _jsasync

        js = _js()

        class Worker(sdk.WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                js.setTimeout(lambda: None, 3_600_000)
                return sdk.Response("armed")

        async def arm() -> None:
            async with durable.Runtime() as rt:
                # Called directly, with a ctx no server drains: the request never ends (served,
                # the timer would go with the request's end).
                response = await Worker(durable.ExecutionContext(), rt.env).fetch(durable.Request("http://w/"))
                assert await response.text() == "armed"

        asyncio.run(arm())
        assert _jsasync.pending_timers() >= 1
        pw.uninstall()
        assert _jsasync.pending_timers() == 0
        pw.install()


class TestNumberParsing:
    def test_parse_int_parse_float_is_nan_is_finite(self) -> None:
        """Measured in workerd (miniflare 4, 2026-04-07) with the same arguments; before, each was
        an ``AttributeError`` (not even a known global)."""
        js = _js()
        nan = float("nan")
        cases: list[list[Any]] = [
            ["  42px"],
            ["0x1f"],
            ["1f", 16],
            ["z", 36],
            [""],
            ["12.9"],
            ["1e3"],
            [" -12", 10],
            ["08"],
        ]
        cases += [["10", 1], ["10", 37], ["10", 0], ["-0x10"], ["0x"], ["+7"], ["\uff19"]]
        cases += [["123456789012345678901234567890"]]
        expected: list[Any] = [
            42,
            31,
            31,
            35,
            nan,
            12,
            1,
            -12,
            8,
            nan,
            nan,
            10,
            -16,
            nan,
            7,
            nan,
            1.2345678901234568e29,
        ]
        got = [js.parseInt(*args) for args in cases]
        assert [repr(value) for value in got] == [repr(value) for value in expected]
        floats = [
            "3.14abc",
            ".5",
            "-Infinityx",
            "1e3x",
            "e3",
            "  -0",
            "1.",
            "+.5e-2z",
            "Infinity",
            "inf",
            "0x10",
            "1_000",
        ]
        expected = [3.14, 0.5, float("-inf"), 1000, nan, 0, 1, 0.005, float("inf"), nan, 0, 1]
        assert [repr(js.parseFloat(text)) for text in floats] == [repr(value) for value in expected]
        assert [js.isNaN(v) for v in ["abc", "12", None, "", " ", True, nan, "0x10"]] == [
            True, False, True, False, False, False, True, False,
        ]  # fmt: skip
        assert [js.isFinite(v) for v in ["12", None, float("inf"), "1e400", True]] == [True, False, False, False, True]
