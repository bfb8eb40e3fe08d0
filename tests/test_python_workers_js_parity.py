"""Python Workers' ``js`` globals against JavaScript's own answers, on the inputs where a
Python idiom gives a different one: white space (``str.strip``'s set is not JavaScript's), the
order of promise jobs, timers across objects and resets, and dates outside ``datetime``'s years.

Expected values were measured with node (V8, the engine and date parser of workerd) and, for
the timers, in workerd (miniflare 4, compatibility date 2026-04-07) with the JavaScript each
test names.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

import durable
from durable.compat import python_workers as pw
from durable.compat.python_workers import workers as sdk

pytestmark = pytest.mark.usefixtures("python_workers_shims")


def _js() -> Any:
    import js  # type: ignore[import-not-found]

    return js


class TestWhiteSpace:
    def test_javascript_white_space_not_pythons(self) -> None:
        """node: ``parseInt("\\ufeff42")``, ``parseFloat("\\ufeff42")`` are 42 and
        ``isNaN("\\ufeff42")`` false (the byte order mark is white space to JavaScript);
        ``parseInt("\\x1c42")``, ``parseInt("\\x8542")``, ``parseFloat`` of them are ``NaN`` and
        ``isNaN`` true (Python's ``str.isspace`` takes them as white space, JavaScript does not);
        ``parseInt("\\u212a", 36)`` (the Kelvin sign, whose ``lower()`` is ``k``) is ``NaN``."""
        js = _js()
        assert js.parseInt("\ufeff42") == 42 and js.parseInt("\ufeff42", 16) == 66
        assert js.parseFloat("\ufeff4.5") == 4.5
        assert js.isNaN("\ufeff42") is False and js.isFinite("\u3000 42 \ufeff") is True
        for text in ("\x1c42", "\x1f42", "\x8542"):
            assert math.isnan(js.parseInt(text)) and math.isnan(js.parseFloat(text))
            assert js.isNaN(text) is True
        assert math.isnan(js.parseInt("\u212a", 36))
        assert js.parseInt("\u2028\u00a0 -12abc") == -12


FIRED: list[Any] = []


class Timed(sdk.DurableObject):
    async def arm(self, ms: Any) -> int:
        return int(_js().setTimeout(lambda: FIRED.append(("fired", self.ctx.id.name)), ms))

    async def clear(self, timer_id: int) -> None:
        _js().clearTimeout(timer_id)

    async def arm_and_abort(self) -> None:
        _js().setTimeout(lambda: FIRED.append("after reset"), 3_600_000)
        self.ctx.abort("reset")

    async def ping(self) -> str:
        return "pong"


class TestTimers:
    async def test_another_objects_timer_id_clears_nothing(self, durable_runtime: durable.Runtime) -> None:
        """workerd: object a's ``setTimeout(cb, 30)`` returned 3, object b's next two 4 and 5
        (one counter); b's ``clearTimeout(3)`` did not stop a's callback, which ran."""
        FIRED.clear()
        durable_runtime.namespace(Timed, name="TIMED")
        pw.serving(durable_runtime)
        a, b = sdk.env.TIMED.getByName("a"), sdk.env.TIMED.getByName("b")
        timer_id = await a.arm(5)
        await b.clear(timer_id)
        for _ in range(200):
            if FIRED:
                break
            await asyncio.sleep(0.005)
        assert FIRED == [("fired", "a")]

    async def test_an_infinite_delay_never_fires(self, durable_runtime: durable.Runtime) -> None:
        """workerd: ``setTimeout(cb, Infinity)`` (and ``2**31``, ``1e20``) had not fired 100 ms
        later, where ``-Infinity`` and ``NaN`` fired at once (no wrap to 0)."""
        FIRED.clear()
        durable_runtime.namespace(Timed, name="TIMED")
        pw.serving(durable_runtime)
        stub = sdk.env.TIMED.getByName("a")
        await stub.arm(math.inf)
        await stub.arm(-math.inf)
        for _ in range(200):
            if FIRED:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        assert FIRED == [("fired", "a")]  # the -Infinity one only

    async def test_a_reset_drops_the_timer_and_its_hold_on_the_object(self) -> None:
        """workerd drops an aborted object's timers: the next instance must not be kept from
        resting (evicted when idle) by a timer of the old one that would fire in an hour."""
        from durable.compat.python_workers import _jsasync

        FIRED.clear()
        async with durable.Runtime(idle_timeout=0.01) as rt:
            rt.namespace(Timed, name="TIMED")
            pw.serving(rt)
            stub = sdk.env.TIMED.getByName("a")
            with pytest.raises(Exception, match="reset"):
                await stub.arm_and_abort()
            assert await sdk.env.TIMED.getByName("a").ping() == "pong"
            assert _jsasync.pending_timers() == 0
            for _ in range(400):  # the idle instance is evicted after 10 ms (it was kept busy for an hour)
                if not rt.hosts.live:
                    break
                await asyncio.sleep(0.005)
            assert not rt.hosts.live
        assert FIRED == []


class TestPromiseJobs:
    async def test_job_order_is_javascripts(self) -> None:
        """workerd (and node) give ``["a", "qm", "catch5", "b", "p2", "c", "t0"]`` for::

            const p1 = Promise.resolve(1), p2 = new Promise(r => r(p1));
            p2.then(() => out.push("p2"));
            p1.then(() => out.push("a")).then(() => out.push("b")).then(() => out.push("c"));
            queueMicrotask(() => out.push("qm")); setTimeout(() => out.push("t0"), 0);
            Promise.reject(5).catch(v => out.push("catch" + v));

        The jobs all run before the timer (a chain of ``then`` drains before the loop's next
        callback), a microtask in its place among them, and adopting a promise takes two jobs.
        """
        js = _js()
        out: list[str] = []

        class Worker(sdk.WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                p1 = js.Promise.resolve(1)
                p2 = js.Promise.new(lambda resolve, _reject: resolve(p1))
                p2.then(lambda _: out.append("p2"))
                p1.then(lambda _: out.append("a")).then(lambda _: out.append("b")).then(lambda _: out.append("c"))
                js.queueMicrotask(lambda: out.append("qm"))
                js.setTimeout(lambda: out.append("t0"), 0)
                js.Promise.reject(5).catch(lambda v: out.append(f"catch{v}"))
                await js.Promise.new(lambda resolve, _reject: js.setTimeout(resolve, 5))
                return sdk.Response("done")

        async with durable.Runtime() as rt:
            app = durable.asgi_app(Worker, rt)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
                assert (await client.get("/")).text == "done"
        assert out == ["a", "qm", "catch5", "b", "p2", "c", "t0"]

    async def test_resolving_functions_act_once_and_finally_waits(self) -> None:
        """node: ``new Promise((res, rej) => { res(laterPromise); rej("ignored") })`` fulfils with
        the later value (resolved to a promise, it is no longer pending for ``reject``); a
        ``then`` returning its own promise rejects with ``TypeError: Chaining cycle detected for
        promise #<Promise>``; ``finally`` waits for the promise its callback returns and keeps
        the original value (``fin 7``)."""
        js = _js()
        loop = asyncio.get_running_loop()
        later = js.Promise.new(lambda resolve, _reject: loop.call_later(0.001, resolve, "late"))
        assert await js.Promise.new(lambda resolve, reject: (resolve(later), reject("ignored"))) == "late"

        cycle: Any = None
        cycle = js.Promise.resolve(1).then(lambda _: cycle)
        with pytest.raises(Exception, match=r"^TypeError: Chaining cycle detected for promise #<Promise>$"):
            await cycle

        waited: list[str] = []

        async def slow() -> None:
            await asyncio.sleep(0.001)
            waited.append("finally done")

        assert await js.Promise.resolve(7).finally_(slow) == 7
        assert waited == ["finally done"]
        with pytest.raises(ValueError, match="from finally"):
            await js.Promise.resolve(7).finally_(lambda: js.Promise.reject(ValueError("from finally")))


class TestDate:
    def test_years_outside_datetimes_range(self) -> None:
        """node (TZ=UTC, workerd's time zone): ``new Date(-62198755200000)`` is
        ``-000001-01-01T00:00:00.000Z`` / ``Fri, 01 Jan -0001 00:00:00 GMT`` / year -1, and
        ``Date.parse`` of that string gives the same ms back (durable was a day off and
        ``toISOString`` raised ``OverflowError``); 8.64e15 is ``+275760-09-13T00:00:00.000Z``,
        ``Sat Sep 13 275760 ...``; ``new Date(1.5).getTime()`` is 1."""
        js = _js()
        before_year_one = js.Date.new(-62198755200000)
        assert before_year_one.toISOString() == "-000001-01-01T00:00:00.000Z"
        assert before_year_one.toUTCString() == "Fri, 01 Jan -0001 00:00:00 GMT"
        assert (before_year_one.getFullYear(), before_year_one.getDay()) == (-1, 5)
        assert js.Date.parse("-000001-01-01T00:00:00Z") == -62198755200000
        assert js.Date.UTC(-1, 0) == -62198755200000
        last = js.Date.new(8.64e15)
        assert last.toISOString() == "+275760-09-13T00:00:00.000Z"
        assert last.toString() == "Sat Sep 13 275760 00:00:00 GMT+0000 (Coordinated Universal Time)"
        assert js.Date.new(253402300800000).toJSON() == "+010000-01-01T00:00:00.000Z"
        assert js.Date.new(-62135596800001).toISOString() == "0000-12-31T23:59:59.999Z"
        assert js.Date.new(1.5).getTime() == 1 and js.Date.new(-1.5).getTime() == -1

    def test_out_of_range_fields_are_nan(self) -> None:
        """node: each of these is ``NaN`` (durable rolled them over into a valid time), and
        ``Date.UTC()`` is ``NaN``; a two-digit RFC 2822 year 50 is 1950 (``email.utils``: 2050)."""
        js = _js()
        for text in (
            "2024-01-02T23:59:60Z",
            "2024-01-02T23:59:61Z",
            "2024-01-02T24:00:01Z",
            "2024-01-02T24:30Z",
            "2024-01-02T24:00:00.001Z",
            "2024-01-02T03:04:05+25:00",
            "2024-01-02T03:04:05-24:00",
            "2024-01-02T03:04:05+02:60",
            "-000000-01-01T00:00:00Z",
            "Tue, 32 Jan 2024 03:04:05 GMT",
            "Tue, 02 Jan 2024 25:04:05 GMT",
        ):
            assert math.isnan(js.Date.parse(text)), text
        assert js.Date.parse("2024-01-02T24:00:00.000Z") == 1704240000000
        assert js.Date.parse("2024-01-02T03:04:05+23:59") == 1704078305000
        assert math.isnan(js.Date.UTC())
        assert js.Date.parse("Tue, 02 Jan 50 03:04:05 GMT") == -631054555000
        assert js.Date.parse("Tue, 02 Jan 49 03:04:05 GMT") == js.Date.parse("Tue, 02 Jan 2049 03:04:05 GMT")


class TestToJs:
    def test_cycles_and_shared_values(self) -> None:
        """Pyodide's ``to_js`` caches each list and dict it converts before converting its items
        (python2js.c, ``_python2js_add_to_cache``): a list or dict that contains itself gives an
        array or ``Map`` that contains itself (durable recursed into ``RecursionError``). Through
        a ``dict_converter`` the dict cannot exist before its entries: a clear ``ValueError``."""
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        js = _js()
        loop: list[Any] = [1]
        loop.append(loop)
        array = to_js(loop)
        assert array[1] is array and array.to_py is not None
        mapping: dict[str, Any] = {"k": 1}
        mapping["self"] = mapping
        converted = to_js(mapping)
        assert converted["self"] is converted and converted.size == 2
        shared = [1]
        both = to_js([shared, shared])
        assert both[0] is both[1]
        with pytest.raises(ValueError, match="contains itself, with a dict_converter"):
            to_js(mapping, dict_converter=js.Object.fromEntries)
        assert to_js({"a": [1, (2, 3)]}, dict_converter=js.Object.fromEntries).a == [1, [2, 3]]


class TestSmallerParities:
    def test_structured_clone_of_a_map_is_a_map_and_date_of_undefined_is_invalid(self) -> None:
        """node: ``structuredClone(new Map([[1, "a"]]))`` is a ``Map`` whose ``get(1)`` is
        ``"a"`` (durable gave an object keyed ``"1"``); ``new Date(undefined).getTime()`` is
        ``NaN`` (Pyodide passes ``None`` as ``undefined``; durable raised ``NotImplementedError``)."""
        from pyodide.ffi import to_js

        js = _js()
        clone = js.structuredClone(to_js({1: "a", "k": [1]}))
        assert clone.has(1) and clone[1] == "a" and clone.size == 2 and clone["k"] == [1]
        assert math.isnan(js.Date.new(None).getTime())


class TestWorkerTimers:
    async def test_a_workers_timer_goes_with_its_request(self, durable_runtime: durable.Runtime) -> None:
        """workerd (miniflare 4): a Worker ``fetch`` that sets ``setTimeout(cb, 30)`` and returns
        at once: ``cb`` never runs (the request is over); with ``ctx.waitUntil`` of a 100 ms sleep
        pending, it runs. durable ran it in both cases."""
        js = _js()
        ran: list[str] = []

        class Worker(sdk.WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                if request.url.endswith("/plain"):
                    js.setTimeout(lambda: ran.append("plain"), 5)
                    js.setInterval(lambda: ran.append("interval"), 5)
                else:
                    js.setTimeout(lambda: ran.append("kept alive"), 5)
                    self.ctx.waitUntil(asyncio.sleep(0.05))
                return sdk.Response("returned")

        app = durable.asgi_app(Worker, durable_runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            assert (await client.get("/plain")).text == "returned"
            await asyncio.sleep(0.03)
            assert ran == []
            assert (await client.get("/wait")).text == "returned"
        assert ran == ["kept alive"]
