"""The sequential fast paths (perf-seq, tenth pass) behave as the general paths they bypass.

Each test runs the same operation once where the inlined path is taken and once where the
general one is (a pending write to another key, ``allow_unconfirmed``, a hand-driven await),
and compares. Written by the review of that pass (review-perf).
"""

from __future__ import annotations

import ast
import asyncio
import copy
import inspect
import pickle
import re
import sqlite3
import sys
import textwrap
import threading
from typing import Any

import pytest

import durable
from durable import testing
from durable._kvcache import KV_CACHE_ENTRIES, KV_CACHE_MAX_VALUE


class Box(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def put_unconfirmed(self, key: str, value: Any) -> int:
        await self.ctx.storage.put(key, value, allow_unconfirmed=True)
        return 7

    async def bump(self) -> int:
        await self.ctx.storage.put("n", 1)
        return 1

    async def mutate_read(self, key: str, other: str | None) -> tuple[Any, Any]:
        """Read ``key`` twice, mutating the first copy; with ``other``, a write waits in the buffer
        first (the general path: ``KvCache.get``)."""
        storage = self.ctx.storage
        if other is not None:
            await storage.put(other, 0)
        first = await storage.get(key)
        first["x"].append("changed")
        return first, await storage.get(key)

    def plain(self) -> str:
        return "plain"

    async def defaults(self, a: int = 1, *, b: int = 2) -> int:
        return a + b

    @staticmethod
    def static() -> str:
        return "static"

    @classmethod
    def klass(cls) -> str:
        return cls.__name__

    def __getattr__(self, name: str) -> Any:
        if name == "dynamic":
            return lambda *args: ("dynamic", args)
        raise AttributeError(name)


BACKENDS = ["sqlite", "kv"]


@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize("persist", [False, True])
async def test_a_cached_mutable_value_is_copied_on_both_paths(storage: str, persist: bool, tmp_path: Any) -> None:
    """A dict read from the cache (Storage.get's inlined read) is a fresh copy each time, as one
    read through KvCache.get with a write in the buffer is."""
    async with durable.Runtime(path=tmp_path / "db" if persist else None) as rt:
        stub = rt.namespace(Box, storage=storage).get_by_name("a")
        await stub.put("k", {"x": [1]})
        fast = await stub.mutate_read("k", None)
        general = await stub.mutate_read("k", "other")
        assert fast == general == ({"x": [1, "changed"]}, {"x": [1]})


class Buffered(durable.DurableObject):
    """Reads of keys written earlier in the same turn: Storage.get's inlined read of the write
    buffer (twelfth pass)."""

    async def read_own_writes(self) -> list[Any]:
        storage = self.ctx.storage
        await storage.put("seen", {"x": [1]})
        await storage.put("gone", 1)
        await storage.delete("gone")
        first = await storage.get("seen")
        first["x"].append("changed")  # the buffered value is copied out, as from the cache
        return [first, await storage.get("seen"), await storage.get("gone"), await storage.get("never")]

    async def read_after_commit(self) -> list[Any]:
        storage = self.ctx.storage
        return [await storage.get("seen"), await storage.get("gone"), await storage.get("never")]


@pytest.mark.parametrize("storage", BACKENDS)
@pytest.mark.parametrize("persist", [False, True])
async def test_a_buffered_write_reads_back_as_after_its_commit(storage: str, persist: bool, tmp_path: Any) -> None:
    """A key in the write buffer (a value, or deleted) and a key never written read back in the
    turn of their writes as they do once committed (read from the cache, or SQLite)."""
    async with durable.Runtime(path=tmp_path / "db" if persist else None) as rt:
        stub = rt.namespace(Buffered, storage=storage).get_by_name("a")
        assert await stub.read_own_writes() == [{"x": [1, "changed"]}, {"x": [1]}, None, None]
        assert await stub.read_after_commit() == [{"x": [1]}, None, None]
        await testing.evict(stub)
        assert await stub.read_after_commit() == [{"x": [1]}, None, None]


def test_the_last_encoded_int_decodes_to_itself_and_nothing_else() -> None:
    """decode() answers the last encode()d int from its very bytes (_codec.last_int, twelfth
    pass); equal bytes made elsewhere, and bytes encoded before it, decode as always."""
    from durable._codec import decode, encode

    first = encode(300)
    for value in (0, 127, 128, -1, 40_000, 2**40, 2**70, -(2**70)):
        blob = encode(value)
        assert decode(blob) == value and type(decode(blob)) is int
        assert decode(bytes(bytearray(blob))) == value  # the same bytes, another object
        assert decode(bytearray(blob)) == value
    assert decode(first) == 300  # no longer the last one
    assert decode(encode(True)) is True and decode(encode("7")) == "7"  # not ints: parsed as before
    assert decode(encode([5])) == [5]


def test_an_int_encodes_to_the_same_bytes_on_encodes_shorter_path() -> None:
    """encode() of an int from 0 to 0x7fff packs the version byte with the int (thirteenth pass):
    the bytes of the general path (_enc_int) on both sides of every range boundary, decoded back."""
    from durable._codec import _VERSION_PREFIX, _enc_int, decode, encode

    boundaries = (0x80, 0x8000, 2**31, 2**63)
    values = {sign * bound + delta for bound in boundaries for sign in (1, -1) for delta in (-2, -1, 0, 1)}
    for value in sorted(values | {0, 1, 5, 127, 1000, 10**30}):
        blob = encode(value)
        assert blob == _VERSION_PREFIX + _enc_int(value), value
        assert decode(bytes(bytearray(blob))) == value and decode(blob) == value


@pytest.mark.parametrize("storage", BACKENDS)
async def test_a_lone_write_keeps_the_cache_bounded_and_drops_large_values(storage: str) -> None:
    """The lone-write commit (KvCache.write_alone, _remember inlined for a cached key) still
    evicts the oldest entries past KV_CACHE_ENTRIES and uncaches a value grown too large."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Box, storage=storage).get_by_name("a")
        for i in range(KV_CACHE_ENTRIES + 5):
            await stub.put(f"k{i}", i)

        def cache(obj: Any, ctx: durable.State) -> dict[str, Any]:
            return dict(ctx.storage._db.kv.cache)

        cached = await testing.run_in_object(stub, cache)
        assert len(cached) <= KV_CACHE_ENTRIES and "k0" not in cached
        last = f"k{KV_CACHE_ENTRIES + 4}"
        assert last in cached
        big = "b" * (KV_CACHE_MAX_VALUE + 10)
        await stub.put(last, big)  # a cached key written again, now too large to cache
        assert last not in await testing.run_in_object(stub, cache)
        assert await testing.run_in_object(stub, lambda o, c: c.storage.get(last)) == big
        await stub.put(last, 1)
        assert await testing.run_in_object(stub, lambda o, c: c.storage.get(last)) == 1


@pytest.mark.parametrize("storage", BACKENDS)
async def test_a_failed_commit_reaches_the_held_result_not_the_unconfirmed_one(storage: str) -> None:
    """_deliver's inlined hold: a gated result gets the reset error of a failed commit, as
    OutputGate.deliver holds it; an allow_unconfirmed write's result leaves at once."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Box, storage=storage).get_by_name("a")
        testing.fail_next_commit(stub)
        with pytest.raises(durable.ObjectResetError):
            await stub.put("k", 1)
        stub = rt.namespace(Box, storage=storage).get_by_name("a")
        testing.fail_next_commit(stub)
        assert await stub.put_unconfirmed("k", 1) == 7


async def test_members_called_without_arguments_as_with() -> None:
    """_first_step's func(instance) for a call without arguments: plain def, defaults, static and
    class methods and __getattr__ members answer as when called with arguments."""
    async with durable.Runtime() as rt:
        stub: Any = rt.namespace(Box).get_by_name("a")
        assert await stub.plain() == "plain"
        assert await stub.defaults() == 3 and await stub.defaults(2, b=3) == 5 and await stub.defaults(a=1) == 3
        assert await stub.static() == "static"
        assert await stub.klass() == "Box"
        for args in ((), (1,)):  # not on the class: refused with or without arguments
            with pytest.raises(TypeError, match='does not implement the method "dynamic"'):
                await stub.dynamic(*args)


async def test_an_await_driven_by_hand_without_a_loop_raises_as_current_task_does() -> None:
    """A promise whose call wrote, awaited by hand from a thread with no running loop: the await
    raises asyncio.current_task()'s "no running event loop", on 3.11 as on 3.12+, and commits
    nothing from that thread. On 3.11 the two-C-call current task (_tasks_get(None)) answered None
    and the await committed the object's writes from the foreign thread (perf-seq, 63b597d)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Box).get_by_name("a")
        await stub.bump()
        promise = stub.bump()
        batch = promise._host.output.batch if promise._host is not None else None
        assert batch is not None  # written, not yet committed
        seen = _await_in_a_thread_without_a_loop(promise)
        assert isinstance(seen, RuntimeError) and "no running event loop" in str(seen)
        assert promise._host is not None and promise._host.output.batch is batch  # not committed there
        assert await promise == 1


async def test_a_finished_task_group_refuses_a_promise_with_its_own_error() -> None:
    """A TaskGroup that is finished or shutting down refuses a promise with its RuntimeError on
    every version (3.13 calls close() first: the promise has it there, CLOSE_PER_PROMISE)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Box).get_by_name("a")
        async with asyncio.TaskGroup() as group:
            pass
        promise = stub.bump()
        with pytest.raises(RuntimeError, match="is finished"):
            group.create_task(promise)
        assert await promise == 1
        for make in (asyncio.ensure_future, lambda p: asyncio.wait_for(p, 5)):
            assert await make(stub.bump()) == 1


async def test_the_fairness_check_driven_by_hand_without_a_loop_raises_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same at the YIELD_EVERY-th await of a settled call (_same_task, which asks for the
    current task the same way): "no running event loop" on 3.11 as on 3.12+."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Box).get_by_name("a")
        promise = stub.plain()
        assert promise.done()
        monkeypatch.setattr(durable._stub, "_unyielded", durable._stub.YIELD_EVERY - 1)
        seen = _await_in_a_thread_without_a_loop(promise)
        assert isinstance(seen, RuntimeError) and "no running event loop" in str(seen)
        assert await promise == "plain"


def _await_in_a_thread_without_a_loop(promise: Any) -> BaseException:
    """Step ``promise``'s await once by hand in a thread where no loop runs; what it raised
    (``StopIteration`` if it returned)."""
    seen: list[BaseException] = []

    def drive() -> None:
        try:
            promise.__await__().send(None)
        except BaseException as exc:  # what the await raised, or StopIteration
            seen.append(exc)

    thread = threading.Thread(target=drive)
    thread.start()
    thread.join()
    return seen[0]


# -- the fetch path (perf-fetch, eleventh pass) -------------------------------------------------


class Seer(durable.DurableObject):
    """Answers what its fetch handler saw of the request; ``/redirect`` answers a 302 to ``/final``."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/redirect"):
            return durable.Response.redirect(request.url.replace("/redirect", "/final"), 302)
        try:
            request.headers.set("x", "1")
            mutable = True
        except TypeError:
            mutable = False
        seen = [request.url, request.method, request.redirect, list(request.headers), mutable, request.body is None]
        return durable.Response.json([*seen, request.body_used])


class NoRequest(durable.DurableObject):
    async def fetch(self) -> durable.Response:  # takes no request, as JavaScript may
        return durable.Response("none")


class PlainDef(durable.DurableObject):
    def fetch(self, request: durable.Request) -> durable.Response:
        return durable.Response("plain " + request.method)


class OwnAttribute(durable.DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.fetch = lambda request: durable.Response("own")  # an instance attribute wins, as getattr() finds it


class NoFetch(durable.DurableObject):
    pass


URLS = [
    "http://a.com/x?y=1#frag",
    "HTTP://A.com:80/./p/../q",
    "http://u:p@a.com/secret?z",
    "https://a.com/" + "long/" * 120,  # beyond CACHED_URL_LENGTH: the general path either way
]


async def _seen(stub: Any, url: str, **init: Any) -> tuple[Any, str, bool]:
    response = await stub.fetch(url, **init)
    return await response.json(), response.url, response.redirected


@pytest.mark.parametrize("url", URLS)
async def test_a_plain_fetch_sends_what_the_general_path_sends(url: str) -> None:
    """Stub.fetch(url)'s one-step request (plain_fetch_request) against build_request with an
    option given: the object sees the same URL, method, redirect mode, immutable empty headers
    and no body; the caller's response has the same url."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Seer).get_by_name("a")
        fast = await _seen(stub, url)
        general = await _seen(stub, url, method="GET")
        assert fast == general
        assert fast[0][2:] == ["manual", [], False, True, False]


async def test_a_plain_fetch_follows_redirects_and_rejects_bad_urls_as_the_general_path() -> None:
    async with durable.Runtime() as rt:
        stub = rt.namespace(Seer).get_by_name("a")
        fast = await _seen(stub, "http://a.com/redirect")
        general = await _seen(stub, "http://a.com/redirect", method="GET")
        assert fast == general and fast[1:] == ("http://a.com/final", True)
        for bad in ("/relative", "ftp://a.com/", "http://", "http://a.com:99999/"):
            errors = []
            for init in ({}, {"method": "GET"}):
                promise = stub.fetch(bad, **init)  # rejected, not raised at the call
                with pytest.raises(TypeError) as caught:
                    await promise
                errors.append(str(caught.value))
            assert errors[0] == errors[1], bad


async def test_a_plain_fetch_answers_alike_from_the_url_dict_and_keeps_it_bounded(monkeypatch: Any) -> None:
    """plain_fetch_request's dict of URLs taken before (thirteenth pass): a second fetch of a URL (from
    the dict) sends what the first did; URLs it must not take (credentials, not full, too long) are
    never put in it, so each call still goes the general way; it is emptied once it holds its bound."""
    from durable import _http

    monkeypatch.setattr(_http, "_PLAIN_FETCH_URLS", {})
    async with durable.Runtime() as rt:
        stub = rt.namespace(Seer).get_by_name("a")
        for url in URLS:
            first, second = await _seen(stub, url), await _seen(stub, url)
            assert first == second == await _seen(stub, url, method="GET")
        assert sorted(_http._PLAIN_FETCH_URLS) == sorted(URLS[:2])  # not the credentials nor the long one
        for bad in ("/relative", "ftp://a.com/"):
            for _ in range(2):
                with pytest.raises(TypeError, match="Fetch API cannot load|Invalid URL"):
                    await stub.fetch(bad)
        assert len(_http._PLAIN_FETCH_URLS) == 2
        monkeypatch.setattr(_http, "_PLAIN_FETCH_URLS_KEPT", 3)
        for i in range(5):
            seen = await _seen(stub, f"http://a.com/{i}")
            assert seen[1] == f"http://a.com/{i}" and seen[0][0] == f"http://a.com/{i}"
            assert len(_http._PLAIN_FETCH_URLS) <= 3


async def test_the_counters_path_dict_keeps_no_long_url(monkeypatch: Any) -> None:
    """durable.Counter.fetch's dict of paths by URL (thirteenth pass) keeps only URLs of at most
    CACHED_URL_LENGTH characters, as _http's URL caches do: it held 1,024 URLs of any length
    (1,024 fetches of 1 MB paths kept about 2 GB). A long URL is still answered by its path."""
    from durable import _counter, _http

    monkeypatch.setattr(_counter, "_PATHS", {})
    async with durable.Runtime() as rt:
        stub = rt.namespace(durable.Counter).get_by_name("a")
        long_404 = "http://a.com/" + "x" * _http.CACHED_URL_LENGTH
        long_increment = "http://a.com/increment?" + "q" * _http.CACHED_URL_LENGTH
        for url, status, text in [
            (long_404, 404, "Not found"),
            (long_increment, 200, "1"),
            ("http://a.com/increment", 200, "2"),
        ]:
            response = await stub.fetch(url)
            assert (response.status, await response.text()) == (status, text)
        assert list(_counter._PATHS) == ["http://a.com/increment"]


async def test_a_fetch_promise_made_without_its_loop_is_on_the_runtime_loop() -> None:
    """Stub.fetch makes its promise without ``loop=`` (thirteenth pass): it is on the running loop."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Seer).get_by_name("a")
        promise: Any = stub.fetch("http://a.com/x")
        assert promise.get_loop() is asyncio.get_running_loop() is rt.loop
        await promise


class Headed(durable.DurableObject):
    """Answers ``Response(text)``, changing its headers as the path says, after returning too."""

    kept: list[durable.Response]

    async def fetch(self, request: durable.Request) -> durable.Response:
        response = durable.Response("body")
        if request.url.endswith("/set"):
            response.headers.set("content-type", "text/html")
        elif request.url.endswith("/append"):
            response.headers.append("x-a", "1")
        self.kept = [response]
        return response

    async def change_kept(self) -> None:
        self.kept[0].headers.append("x-late", "2")


@pytest.mark.parametrize("path", ["/", "/set", "/append"])
async def test_the_callers_headers_are_the_objects_at_return_and_immutable(path: str) -> None:
    """check_response's shared tuple for Response(text)'s headers (thirteenth pass): the caller's
    headers are the object's at return, immutable, and unchanged by a later change of the object's;
    headers changed before return (a new content-type, one more) get their own copy."""
    expected = {
        "/": [("content-type", "text/plain;charset=UTF-8")],
        "/set": [("content-type", "text/html")],
        "/append": [("content-type", "text/plain;charset=UTF-8"), ("x-a", "1")],
    }[path]
    async with durable.Runtime() as rt:
        stub = rt.namespace(Headed).get_by_name("a")
        responses = [await stub.fetch("http://a.com" + path) for _ in range(2)]
        await stub.change_kept()
        for response in responses:
            assert response.headers.multi_items() == expected
            with pytest.raises(TypeError, match="immutable"):
                response.headers.append("x-b", "3")
            assert await response.text() == "body"
        assert responses[1].headers.multi_items() == expected  # the first's failed append changed nothing
        other = durable.Response("other")
        other.headers.append("x-c", "4")  # a new Response's headers stay mutable, the shared tuple unchanged
        assert (await stub.fetch("http://a.com" + path)).headers.multi_items() == expected


@pytest.mark.parametrize("cls", [NoRequest, PlainDef, OwnAttribute, NoFetch])
async def test_the_fetch_handler_is_called_alike_on_both_host_paths(cls: type) -> None:
    """_first_step's direct call_fetch (the shorter path) against ObjectClass.dispatch (the general
    path, taken under max_queued_calls): a handler without the request, a plain def, an instance
    attribute, no handler at all."""
    outcomes = []
    for limit in (None, 100):
        async with durable.Runtime(max_queued_calls=limit) as rt:
            stub = rt.namespace(cls).get_by_name("a")
            for _ in range(2):  # (the first makes the instance: the general path either way)
                try:
                    outcomes.append(await (await stub.fetch("http://a.com/")).text())
                except TypeError as exc:
                    outcomes.append(str(exc))
    assert len(set(outcomes)) == 1
    assert outcomes[0] != "" and (cls is not NoFetch or "does not export a fetch()" in outcomes[0])


class Relay(durable.DurableObject):
    """Fetches a ``Seer`` (namespace ``SEER``) from inside an object: its promise follows a task."""

    async def relay(self, url: str, manual: bool) -> list[Any]:
        stub = self.env.SEER.get_by_name("a")
        response = await (stub.fetch(url, redirect="manual") if manual else stub.fetch(url))
        return [response.status, response.url, response.redirected]


@pytest.mark.parametrize("limit", [None, 100])
async def test_redirects_are_followed_or_not_alike_on_every_path(limit: int | None) -> None:
    """A response that is a redirect makes the promise a _RedirectedFetch (the host's shorter path,
    its general one under max_queued_calls, a fetch sent by an object): followed unless
    redirect="manual"; any other response settles with asyncio's set_result."""
    async with durable.Runtime(max_queued_calls=limit) as rt:
        stub: Any = rt.namespace(Seer, name="SEER").get_by_name("a")
        relay: Any = rt.namespace(Relay).get_by_name("r")
        followed = await stub.fetch("http://a.com/redirect")
        assert (followed.status, followed.url, followed.redirected) == (200, "http://a.com/final", True)
        manual = await stub.fetch("http://a.com/redirect", redirect="manual")
        assert (manual.status, manual.url, manual.redirected) == (302, "http://a.com/redirect", False)
        plain = stub.fetch("http://a.com/plain")
        assert (await plain).status == 200 and type(plain).__name__ == "_FetchPromise"
        assert await relay.relay("http://a.com/redirect", False) == [200, "http://a.com/final", True]
        assert await relay.relay("http://a.com/redirect", True) == [302, "http://a.com/redirect", False]
        gathered = await asyncio.gather(*(stub.fetch("http://a.com/redirect") for _ in range(3)))
        assert [r.url for r in gathered] == ["http://a.com/final"] * 3

        async def elsewhere() -> list[Any]:  # on another thread's loop: forwarded (a _FetchPromise too)
            followed, manual = await asyncio.gather(
                stub.fetch("http://a.com/redirect"), stub.fetch("http://a.com/redirect", redirect="manual")
            )
            return [(r.status, r.url, r.redirected) for r in (followed, manual)]

        assert await asyncio.to_thread(asyncio.run, elsewhere()) == [
            (200, "http://a.com/final", True),
            (302, "http://a.com/redirect", False),
        ]


async def test_a_fetch_promise_has_no_getattr_hook() -> None:
    """stub.fetch's promise is not pipelined (workerd: a plain Promise), and so has no class-level
    __getattr__ (on CPython 3.11 one puts every attribute read of it, asyncio.gather's too, on the
    slow path: conc-fetch, docs/performance.md "Promise pipelining"). A Response's name read on it
    still says to await it first, every one of them (redirected too: it was the promise's own
    method, so stub.fetch(url).redirected was a bound method, always true; review-fp), on the
    runtime's loop and on another thread's; any other name is Python's usual AttributeError. It
    stays an asyncio.Future that tasks take."""
    async with durable.Runtime() as rt:
        stub: Any = rt.namespace(Seer, name="SEER").get_by_name("a")
        promise: Any = stub.fetch("http://a.com/plain")
        assert [k for k in type(promise).__mro__ if "__getattr__" in k.__dict__] == []
        # Both promise types derive from Future directly (a class more costs each call: _Promise).
        assert type(promise).__mro__[1:] == durable.RpcPromise.__mro__[1:] == (asyncio.Future, object)
        assert not isinstance(promise, durable.RpcPromise) and issubclass(type(promise), asyncio.Future)
        names = [name for name in dir(durable.Response) if not name.startswith("_")]
        assert {"status", "text", "json", "headers", "ok", "array_buffer", "arrayBuffer", "url", "redirected"} <= {
            *names
        }

        def refused(promise: Any) -> list[str]:
            """The Response names the promise refuses with the "await it first" error."""
            found = []
            for name in names:
                with pytest.raises(AttributeError) as caught:
                    getattr(promise, name)
                if re.fullmatch(rf"[^']*'{name}': it is not an RPC promise.*\)\.{name}", str(caught.value)):
                    found.append(name)
            return found

        assert refused(promise) == names
        with pytest.raises(AttributeError, match=r"^'_FetchPromise' object has no attribute 'inc'$"):
            promise.inc
        assert not hasattr(promise, "cr_frame")
        assert (await promise).status == 200
        assert (await asyncio.create_task(stub.fetch("http://a.com/redirect"))).redirected
        redirecting: Any = stub.fetch("http://a.com/redirect")
        assert refused(redirecting) == names  # (still a _FetchPromise until its response is in)
        assert (await redirecting).redirected and type(redirecting).__name__ == "_RedirectedFetch"
        assert refused(redirecting) == names

        async def elsewhere() -> tuple[list[str], bool]:  # forwarded: a _FetchPromise there too
            promise: Any = stub.fetch("http://a.com/redirect")
            return refused(promise), (await promise).redirected

        assert await asyncio.to_thread(asyncio.run, elsewhere()) == (names, True)


def test_the_promise_classes_share_their_methods_in_step() -> None:
    """RpcPromise and _FetchPromise derive from Future directly, each with _Promise's methods copied
    in (_share_promise_methods): both hold the very same objects, and only _FetchPromise._settle_from
    overrides one; nothing is written twice in the two classes instead of once in _Promise. Copying
    is not limited to plain functions (a property, a classmethod, a dunder, a constant would be
    silently missing from both), and what cannot work once copied is refused at import: a method
    using super() (its __class__ would be _Promise: a TypeError only when it runs) or slots."""
    shared = durable._stub._Promise
    share = durable._stub._share_promise_methods
    records = durable._stub._CLASS_RECORDS
    classes = (durable.RpcPromise, durable._stub._FetchPromise)
    entries = {name: value for name, value in vars(shared).items() if name not in records}
    assert {"__await__", "set_exception", "send", "throw", "_settle_from"} <= entries.keys()
    overridden = {
        f"{cls.__name__}.{name}" for cls in classes for name, value in entries.items() if vars(cls)[name] is not value
    }
    # (an override is also bypassed where a shared method calls _Promise.x(self) directly, as
    # __await__ calls _result_when_settled: list one here only after reading those calls)
    assert overridden == {"_FetchPromise._settle_from"}
    slots = {*durable.RpcPromise.__slots__, *durable._stub._FetchPromise.__slots__}
    both = set(vars(classes[0])) & set(vars(classes[1])) - records - slots - entries.keys()
    assert both == set(), "defined in both promise classes: define it once, in _Promise"
    for value in entries.values():  # (no super(): see _Promise)
        assert "__class__" not in getattr(getattr(value, "__code__", None), "co_freevars", ())

    class Source(asyncio.Future[Any]):
        __slots__ = ()
        LIMIT = 3

        def __repr__(self) -> str:
            return "source"

        @property
        def twice(self) -> int:
            return 2 * self.LIMIT

        @classmethod
        def made(cls) -> str:
            return cls.__name__

    class Target(asyncio.Future[Any]):
        __slots__ = ()

    share(Target, Source)
    target: Any = Target(loop=asyncio.new_event_loop())
    target.get_loop().close()
    made: Any = Target
    assert (repr(target), target.twice, made.made(), made.LIMIT) == ("source", 6, "Target", 3)

    class UsesSuper(asyncio.Future[Any]):
        __slots__ = ()

        def cancel(self, msg: Any = None) -> bool:
            return super().cancel(msg)

    class Slotted(asyncio.Future[Any]):
        __slots__ = ("_x",)

    with pytest.raises(TypeError, match=r"UsesSuper\.cancel uses super\(\)"):
        share(Target, UsesSuper)
    with pytest.raises(TypeError, match="Slotted may have no slots"):
        share(Target, Slotted)


class Tally(durable.DurableObject):
    async def bump(self, fail: bool) -> int:
        value = ((await self.ctx.storage.get("n")) or 0) + 1
        await self.ctx.storage.put("n", value)
        if fail:
            raise ValueError(f"failed at {value}")
        return value


async def test_results_released_together_run_their_callbacks_as_one_by_one() -> None:
    """Results held for one commit shared by many calls (_output_gate._release_together, twelfth
    pass): their promises' done callbacks run in the order of the calls and of their registration,
    each in its own context, with a held error in between settled on the
    general path; a callback that raises goes to the loop's exception handler and the rest run."""
    seen: list[Any] = []
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    import contextvars

    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=-1)

    def note(i: int, j: int) -> Any:
        def callback(promise: Any) -> None:
            seen.append((i, j, var.get(), promise.exception() is None and promise.result()))
            if (i, j) == (1, 0):
                raise RuntimeError("a callback that raises")

        return callback

    async with durable.Runtime() as rt:
        stub = rt.namespace(Tally).get_by_name("a")
        await stub.bump(False)
        promises = [stub.bump(i == 2) for i in range(4)]
        for i, promise in enumerate(promises):
            for j in range(2):
                var.set(i * 10 + j)  # each callback keeps the context it was added in
                promise.add_done_callback(note(i, j), context=contextvars.copy_context())
        var.set(-1)
        marks: list[str] = []
        loop.call_soon(marks.append, "queued before")
        await asyncio.gather(*promises, return_exceptions=True)
    expected = [(i, j, i * 10 + j, i + 2 if i != 2 else False) for i in range(4) for j in range(2)]
    assert seen == expected
    assert marks == ["queued before"]
    assert len(errors) == 1 and str(errors[0]["exception"]) == "a callback that raises"
    assert "Exception in callback" in errors[0]["message"]


@pytest.mark.parametrize("added", [["b", "c"], ["b", "b"], ["b", "c", "d"]])
async def test_results_released_together_keep_callbacks_left_after_a_removal(added: list[str]) -> None:
    """A promise whose first done callback was removed before the shared commit (asyncio.wait()
    with a timeout does that): asyncio's C future then hands out its own list of the others as
    ``_callbacks``, which ``remove_done_callback`` rewrites in place. _release_together took the
    callbacks from that very list while removing them, so it ran one twice and lost another (a
    task awaiting it never woke). Every callback left runs once, as asyncio runs them."""
    seen: list[str] = []

    def note(name: str) -> Any:
        return lambda _promise: seen.append(name)

    callbacks = {name: note(name) for name in dict.fromkeys(["a", *added])}
    async with durable.Runtime() as rt:
        stub = rt.namespace(Tally).get_by_name("a")
        await stub.bump(False)
        promises = [stub.bump(False) for _ in range(3)]
        promises[1].add_done_callback(callbacks["a"])
        for name in added:
            promises[1].add_done_callback(callbacks[name])
        promises[1].remove_done_callback(callbacks["a"])
        _, pending = await asyncio.wait(promises, timeout=10)  # (a lost callback: no hang)
        assert not pending and [p.result() for p in promises] == [2, 3, 4]
        await asyncio.sleep(0)
    assert seen == added


@pytest.mark.parametrize("step", range(1, 6))
def test_the_last_encoded_int_is_read_once_by_decode(step: int) -> None:
    """decode() of the bytes encode() made last for an int answers that int even when another
    thread encodes another int at any point of the decode: it read _codec.last_int twice (the
    bytes, then the int), so an encode between the two handed back the other thread's int. The
    other thread is simulated at the step-th line decode() runs (a trace function; deterministic,
    where real threads would only hit the window now and then)."""
    import sys

    from durable import _codec

    blob = _codec.encode(123_456)
    lines = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        if event == "line":
            lines += 1
            if lines == step:
                _codec.encode(999)  # another thread's encode, at this point of decode()
        return local

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is _codec.decode.__code__ else None

    sys.settrace(on_call)
    try:
        value = _codec.decode(blob)
    finally:
        sys.settrace(None)
    assert value == 123_456


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xef",
        b"\xef\xbb",
        b"\xef\xbb\xbfa",
        b"\xef\xbb\xbf\xef\xbb\xbfx",
        b"a\xffb",
        b"\xed\xa0\x80",
        "é€".encode(),
    ],
)
async def test_text_decodes_as_fetch_does_on_its_strict_first_path(body: bytes) -> None:
    """Response.text() (thirteenth pass) tests the mark's first byte before startswith() and decodes
    strictly first, falling back to replacing invalid sequences: the text is Fetch's UTF-8 decode (one
    leading byte order mark dropped, each invalid sequence U+FFFD) on both ways, for a Request too."""
    expected = (body[3:] if body.startswith(b"\xef\xbb\xbf") else body).decode("utf-8", "replace")
    assert await durable.Response(body).text() == expected
    assert await durable.Request("http://a.com/", method="POST", body=body).text() == expected


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("body", [b"", b"\xef", b"\xef\xbb\xbfa", b"\xefx", b"a\xef\xbb\xbf"])
async def test_text_tests_the_mark_on_what_a_subclass_bytes_returns(kind: type, body: bytes) -> None:
    """text() reads the mark's first byte as data[0] after `data and` (fifteenth pass; it sliced
    data[:1] before): on what a subclass's own bytes() returns (the general path), a bytearray or
    a memoryview (which fails as before), empty too, the text is as before; a second read raises
    the body-used error."""

    class Own(durable.Response):
        async def bytes(self) -> Any:
            return kind(await super().bytes())

    response = Own(body)
    expected = (body[3:] if body.startswith(b"\xef\xbb\xbf") else body).decode("utf-8", "replace")
    if kind is memoryview:  # (which has neither decode() nor startswith(): it failed so before too)
        with pytest.raises(AttributeError, match="'memoryview' object has no attribute"):
            await response.text()
    else:
        assert await response.text() == expected
    with pytest.raises(TypeError, match="Body has already been used"):
        await response.text()
    plain = durable.Response(body)
    assert await plain.text() == expected
    with pytest.raises(TypeError, match="Body has already been used"):
        await plain.text()


# -- the RPC path's frames (perf-rpc3, thirteenth pass) ------------------------------------------


async def test_a_settled_promise_awaits_as_before_errors_and_fairness_included(monkeypatch: pytest.MonkeyPatch) -> None:
    """RpcPromise.__await__ hands a settled promise to asyncio's own iterator (thirteenth pass):
    its result, its error (the same object at every await), a cancelled promise's
    CancelledError and ``yield from promise.__await__()`` answer as before; the fairness yield
    (the YIELD_EVERY-th settled await of one task) still lets the loop run once, and only then."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Tally).get_by_name("a")
        assert await stub.bump(False) == 1
        failed = stub.bump(True)
        await asyncio.sleep(0)
        assert failed.done()
        errors = []
        for _ in range(2):
            with pytest.raises(ValueError, match="failed at 2") as info:
                await failed
            errors.append(info.value)
        assert errors[0] is errors[1]
        cancelled = stub.bump(False)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled

        def by_hand(promise: Any) -> Any:
            return (yield from promise.__await__())

        promise = stub.bump(False)
        await asyncio.sleep(0)
        with pytest.raises(StopIteration) as stop:
            by_hand(promise).send(None)
        assert stop.value.value == 4
        loop = asyncio.get_running_loop()
        ran: list[int] = []
        monkeypatch.setattr(durable._stub, "_unyielded_by", asyncio.current_task())
        monkeypatch.setattr(durable._stub, "_unyielded", durable._stub.YIELD_EVERY - 1)
        loop.call_soon(ran.append, 1)
        assert await stub.bump(False) == 5
        assert ran == [1]  # the YIELD_EVERY-th await yielded once
        loop.call_soon(ran.append, 2)
        assert await stub.bump(False) == 6
        assert ran == [1]  # the next one did not
        await asyncio.sleep(0)
        assert ran == [1, 2]


async def test_the_host_method_call_rpc_takes_the_same_paths_as_the_stub() -> None:
    """``ObjectHost.call_rpc`` (the method) is the module's ``call_rpc``, which RpcMethod calls
    directly: both deliver a call, on the shorter path and on the general one (a method replaced
    on the class since it was resolved)."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Box).get_by_name("a")
        assert await stub.plain() == "plain"
        host = durable._stub.host_of(stub)
        loop = asyncio.get_running_loop()
        for name, expected in (("plain", "plain"), ("static", "static")):
            fut = loop.create_future()
            host.call_rpc(name, (), {}, fut)
            assert await fut == expected
        original = Box.plain
        try:
            Box.plain = lambda self: "replaced"  # type: ignore[method-assign]
            assert await stub.plain() == "replaced"
        finally:
            Box.plain = original  # type: ignore[method-assign]
        assert await stub.plain() == "plain"


class Syncer(durable.DurableObject):
    async def write_and_sync(self, value: int) -> str:
        await self.ctx.storage.put("k", value)
        self.synced = asyncio.ensure_future(self.ctx.storage.sync())  # a waiter on the same batch
        return "written"

    async def synced_value(self) -> Any:
        await self.synced
        return await self.ctx.storage.get("k")


async def test_a_commit_with_one_held_result_and_a_waiter_settles_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """OutputGate.flush settles one held result itself (thirteenth pass) only when nothing else
    waits on the batch: with a sync() waiter beside it, both settle (Batch.succeed)."""
    from durable import _output_gate

    succeeded: list[int] = []
    succeed = _output_gate.Batch.succeed

    def counted(batch: Any) -> None:
        succeeded.append(len(batch.held))
        succeed(batch)

    monkeypatch.setattr(_output_gate.Batch, "succeed", counted)
    async with durable.Runtime() as rt:
        stub = rt.namespace(Syncer).get_by_name("a")
        for value in (1, 2):
            assert await stub.write_and_sync(value) == "written"
            assert await stub.synced_value() == value
    assert succeeded == [1, 1]  # the batches with a waiter, each holding the one result


def _statements(function: Any) -> list[ast.stmt]:
    return ast.parse(textwrap.dedent(inspect.getsource(function))).body[0].body  # type: ignore[attr-defined,no-any-return]


def _is_eager_branch(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.If) and "EAGER_TASKS" in ast.unparse(statement.test)


def test_the_inlined_copies_on_the_rpc_path_match_their_originals() -> None:
    """Two copies the thirteenth pass inlined say "keep the two alike": ``_host.call_rpc``'s 3.11
    part is ``_start_fast``'s (for an RPC call: ``fetch`` is None), and ``OutputGate.flush``'s
    settling of one held result is ``Batch.succeed``'s. A change to either original that the copy
    misses would make RPC calls (or sequential commits) behave apart from fetches (or shared
    commits) only on the path taken most: this compares their statements (written by review-rpc3,
    which found them alike, differentially too)."""
    from durable import _host, _output_gate

    original = [ast.unparse(s) for s in _statements(_host._start_fast)[1:] if not _is_eager_branch(s)]
    rpc = _statements(_host.call_rpc)
    inlined = rpc[[_is_eager_branch(s) for s in rpc].index(True) + 1 :]
    copy = [ast.unparse(s).replace("_new(EventCall)", "object.__new__(EventCall)") for s in inlined]
    assert copy == [s.replace("host.runtime.loop", "runtime.loop").replace(", fetch)", ", None)") for s in original]

    loop = next(s for s in _statements(_output_gate.Batch.succeed) if isinstance(s, ast.If)).orelse[0]
    assert isinstance(loop, ast.For) and ast.unparse(loop.target) == "(fut, value, is_error)"
    settle = next(s for s in loop.body if isinstance(s, ast.Try))
    flush = _statements(_output_gate.OutputGate.flush)
    single = next(s for s in flush if isinstance(s, ast.If) and "len(held) == 1" in ast.unparse(s.test))
    assert ast.unparse(single.body[0]) == "fut, value, is_error = held[0]"
    done_check = single.body[1]
    assert isinstance(done_check, ast.If) and ast.unparse(done_check.test) == "not _FUTURE_DONE(fut)"
    assert [ast.unparse(s) for s in done_check.body] == [ast.unparse(settle)]


def test_a_commit_runs_its_hooks_and_injected_failure_as_before_its_reorder() -> None:
    """``ObjectDatabase.commit`` reads ``fail_next`` and ``after_commit`` before it stores to them
    (fourteenth pass): the hooks still run once, in order, after the commit; a hook added by a hook
    waits for the next commit; an injected failure is raised as it is, once, with the writes rolled
    back; SQLite's own error at the commit is still worded by the database (``_commit_error``)."""
    from durable._exceptions import SqlError
    from durable._sqlite import ObjectDatabase

    db = ObjectDatabase(None)
    ran: list[str] = []
    db.kv.put("a", b"\x01")
    db.after_commit.append(lambda: ran.append("first"))

    def second() -> None:
        ran.append("second")
        db.after_commit.append(lambda: ran.append("next"))

    db.after_commit.append(second)
    db.commit()
    assert ran == ["first", "second"]
    db.commit()  # nothing to commit: the hook added by a hook waits for a commit that writes
    assert ran == ["first", "second"]
    db.kv.put("a", b"\x02")
    db.commit()
    assert ran == ["first", "second", "next"]

    failure = ValueError("injected")
    db.fail_next = failure
    db.kv.put("a", b"\x03")
    with pytest.raises(ValueError) as raised:
        db.commit()
    assert raised.value is failure
    assert vars(db)["fail_next"] is None  # (read so: mypy keeps the assignment above as its type)
    assert db.kv.get("a") == b"\x02"  # rolled back
    db.kv.put("a", b"\x04")
    db.commit()  # the failure was for one commit only
    assert db.kv.get("a") == b"\x04"

    conn = db.write_conn()
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE c (p INTEGER REFERENCES p(id))")
    db.commit()
    conn = db.write_conn()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA defer_foreign_keys = ON")
    conn.execute("INSERT INTO c VALUES (5)")
    with pytest.raises(SqlError, match="SQLITE_CONSTRAINT") as constraint:
        db.commit()
    assert isinstance(constraint.value.__cause__, sqlite3.IntegrityError)
    db.close()  # (an unclosed connection warns when collected on 3.13)


def test_first_steps_inlined_delivery_is_delivers_own() -> None:
    """``_first_step`` hands an RPC method's atomic result on itself (fourteenth pass): the block is
    ``_deliver``'s own from ``fut = call.fut`` on, and taken only where ``_deliver`` would make no
    copy and raise no reset error (an atomic result, the object's generation unchanged); a fetch,
    any other result or a reset object still go through ``_deliver``."""
    from durable import _host

    body = _statements(_host._first_step)
    ifs = [s for s in ast.walk(ast.Module(body=body, type_ignores=[])) if isinstance(s, ast.If)]
    inlined = next(s for s in ifs if "ATOMIC_TYPES" in ast.unparse(s.test))
    assert ast.unparse(inlined.test) == "fetch is None and type(result) in ATOMIC_TYPES and (gen == host.gen)"
    # Else a fetch's response (twentieth pass, below), else _deliver.
    fetch_branch = inlined.orelse[0]
    assert isinstance(fetch_branch, ast.If) and ast.unparse(fetch_branch.test) == "fetch is not None"
    assert [ast.unparse(s) for s in fetch_branch.orelse] == ["_deliver(host, call, gen, result, fetch)"]
    deliver = _statements(_host._deliver)
    tail = deliver[[ast.unparse(s) for s in deliver].index("fut = call.fut") :]
    # The one difference: _first_step delivers RPC results only, whose promises never override
    # set_result, so it calls Future.set_result without _deliver's PLAIN_FUTURES check.
    fetch_check = (
        "if type(fut) in PLAIN_FUTURES:\n            _future_set_result(fut, result)\n"
        "        else:\n            fut.set_result(result)"
    )
    assert fetch_check in ast.unparse(tail[1])
    assert [ast.unparse(s) for s in inlined.body] == [
        ast.unparse(s).replace(fetch_check, "_future_set_result(fut, result)") for s in tail
    ]


def test_first_steps_inlined_fetch_delivery_is_delivers_own() -> None:
    """``_first_step`` hands a fetch's response on itself (twentieth pass): the block is
    ``_deliver``'s fetch branch and tail, statement for statement, with the ``return`` after
    ``_hold_response`` written as an ``else`` over the tail."""
    from durable import _host

    body = _statements(_host._first_step)
    ifs = [s for s in ast.walk(ast.Module(body=body, type_ignores=[])) if isinstance(s, ast.If)]
    inlined = next(
        s for s in ifs if ast.unparse(s.test) == "fetch is not None" and "check_response" in ast.unparse(s.body[0])
    )
    deliver = [s for s in _statements(_host._deliver) if not isinstance(s, ast.Expr)]  # (its docstring)
    branch = deliver[0]
    assert isinstance(branch, ast.If) and ast.unparse(branch.test) == "fetch is not None"
    *checks, hold = branch.body
    assert isinstance(hold, ast.If) and ast.unparse(hold.body[-1]) == "return"
    tail = [ast.unparse(s) for s in deliver[1:]]
    *inlined_checks, inlined_hold = inlined.body
    assert [ast.unparse(s) for s in inlined_checks] == [ast.unparse(s) for s in checks]
    assert isinstance(inlined_hold, ast.If) and ast.unparse(inlined_hold.test) == ast.unparse(hold.test)
    assert [ast.unparse(s) for s in inlined_hold.body] == [ast.unparse(s) for s in hold.body[:-1]]
    assert [ast.unparse(s) for s in inlined_hold.orelse] == tail


def test_the_inlined_step_done_is_step_dones_own() -> None:
    """``call_rpc``, ``start_fetch`` and ``_start_fast`` end a step with ``OutputGate.step_done``'s
    statements (twentieth pass), the running loop known: ``scheduled_on is not loop`` where
    ``step_done`` asks ``_get_running_loop()``. The three copies are alike, and ``step_done`` still
    reads as the copies assume."""
    from durable import _host, _output_gate

    expected = [
        "output.steps -= 1",
        "if not output.steps:\n    output.turn_wrote = False\n"
        "    if output.batch is not None and output.scheduled_on is not loop:\n        output.schedule_commit()",
    ]
    for function in (_host.call_rpc, _host.start_fetch, _host._start_fast):
        # ``loop`` is the runtime's loop, the running one there (RpcMethod.__call__ and Stub.fetch
        # forward a call made on another loop, or attach the runtime to it, before these run)
        source = ast.unparse(ast.Module(body=_statements(function), type_ignores=[]))
        assert "loop = runtime.loop" in source or "loop = host.runtime.loop" in source, function.__name__
        tries = [s for s in ast.walk(ast.Module(body=_statements(function), type_ignores=[])) if isinstance(s, ast.Try)]
        (outer,) = [t for t in tries if t.finalbody]
        assert [ast.unparse(s) for s in outer.finalbody[1:]] == expected, function.__name__
    body = [ast.unparse(s) for s in _statements(_output_gate.OutputGate.step_done)[1:]]  # (after its docstring)
    assert body == [
        "self.steps -= 1",
        "if self.steps:\n    return",
        "self.turn_wrote = False",
        "if self.batch is None:\n    return",
        "if (on := self.scheduled_on) is not None and on is _get_running_loop():\n    return",
        "self.schedule_commit()",
    ]


def test_the_inlined_batch_is_batch_init() -> None:
    """``OutputGate.wrote_in_turn`` makes its ``Batch`` without ``__init__`` (twentieth pass): the
    fields it sets are ``Batch.__init__``'s, with the same values."""
    from durable import _output_gate

    init = [  # (the annotations dropped: assignments of the same fields)
        f"{ast.unparse(s.target)} = {ast.unparse(s.value or s.target)}".replace("self.", "batch.")
        if isinstance(s, ast.AnnAssign)
        else ast.unparse(s).replace("self.", "batch.")
        for s in _statements(_output_gate.Batch.__init__)
        if isinstance(s, (ast.Assign, ast.AnnAssign))
    ]
    # (every statement of __init__ is one of those assignments: one of another kind would be missed)
    others = [s for s in _statements(_output_gate.Batch.__init__) if not isinstance(s, (ast.Assign, ast.AnnAssign))]
    assert all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) for s in others), others
    assert type(_output_gate.Batch).__call__ is type.__call__ and _output_gate.Batch.__new__ is object.__new__
    body = _statements(_output_gate.OutputGate.wrote_in_turn)
    made = next(s for s in body if isinstance(s, ast.If) and ast.unparse(s.test) == "batch is None")
    assert ast.unparse(made.body[0]) == "batch = self.batch = _new(Batch)"
    assert [ast.unparse(s) for s in made.body[1:]] == init
    gate = _output_gate.OutputGate(commit=lambda: None)
    fresh = _output_gate.Batch()

    async def write() -> None:
        gate.wrote_in_turn(False)

    asyncio.run(write())
    assert gate.batch is not None
    assert {n: getattr(gate.batch, n) for n in fresh.__slots__} == {n: getattr(fresh, n) for n in fresh.__slots__}


class Returns(durable.DurableObject):
    async def value(self, kind: str, write: bool) -> Any:
        if write:
            await self.ctx.storage.put("k", kind)
        return {"int": 1, "str": "s", "none": None, "dict": {"a": [1]}, "bytes": b"b"}[kind]

    async def unconfirmed(self) -> int:
        await self.ctx.storage.put("k", 1, allow_unconfirmed=True)
        return 2


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("kind", ["int", "str", "none", "dict", "bytes"])
async def test_results_reach_the_caller_alike_on_the_inlined_delivery(kind: str, write: bool) -> None:
    """Atomic results (the inlined delivery) and copied ones (``_deliver``) arrive alike, held for
    the commit when the method wrote; a dict arrives as a copy; an unconfirmed write holds nothing;
    a failed commit reaches a held atomic result as the reset error."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Returns).get_by_name("a")
        expected = {"int": 1, "str": "s", "none": None, "dict": {"a": [1]}, "bytes": b"b"}[kind]
        first = await stub.value(kind, write)
        assert first == expected and type(first) is type(expected)
        assert await stub.unconfirmed() == 2
        testing.fail_next_commit(stub, ValueError("disk"))
        with pytest.raises(Exception, match="disk"):
            await stub.value(kind, True)


def test_the_inlined_copy_on_the_fetch_path_matches_its_originals() -> None:
    """``_host.start_fetch`` (fourteenth pass) is ``ObjectHost.call_fetch``'s checks and, on 3.11,
    ``_start_fast``'s part inlined, which ``Stub.fetch`` calls in one frame: its conditions must be
    the method's, and its 3.11 part ``_start_fast``'s for a fetch (``func`` None, no arguments), or
    fetches from a stub would behave apart from the host method's only on the path taken most."""
    from durable import _host

    method = _statements(_host.ObjectHost.call_fetch)
    function = _statements(_host.start_fetch)
    method_test = next(s for s in method if isinstance(s, ast.If))
    function_test = next(s for s in function if isinstance(s, ast.If))
    assert ast.unparse(function_test).replace("host.", "self.") == ast.unparse(method_test).replace(
        "self.", "host."
    ).replace("host.", "self.")
    original = [ast.unparse(s) for s in _statements(_host._start_fast)[1:] if not _is_eager_branch(s)]
    inlined = function[[_is_eager_branch(s) for s in function].index(True) + 1 :]
    copy = [ast.unparse(s).replace("_new(EventCall)", "object.__new__(EventCall)") for s in inlined]
    expected = [
        s.replace("host.runtime.loop", "runtime.loop").replace(
            "func, args, kwargs, fetch)", "None, (), _NO_KWARGS, request)"
        )
        for s in original
    ]
    assert copy == expected


async def test_the_host_method_call_fetch_takes_the_same_paths_as_the_stub() -> None:
    """``ObjectHost.call_fetch`` (the method) and ``_host.start_fetch`` (what ``Stub.fetch`` calls)
    answer alike on the shorter path and on the general one: a fetch sent while a
    ``block_concurrency_while()`` that the last one started holds the gate waits for it."""
    from durable import _host

    seen: list[str] = []

    class Gated(durable.DurableObject):
        async def fetch(self, request: durable.Request) -> durable.Response:
            seen.append(request.url)
            if request.url.endswith("/hold"):

                async def hold() -> None:
                    await asyncio.sleep(0.01)
                    seen.append("released")

                self.ctx.block_concurrency_while(hold)
            return durable.Response(request.url)

    async with durable.Runtime() as rt:
        stub = rt.namespace(Gated).get_by_name("a")
        host = durable._stub.host_of(stub)
        loop = asyncio.get_running_loop()
        for deliver in (host.call_fetch, lambda request, fut: _host.start_fetch(host, request, fut)):
            seen.clear()
            futs = [loop.create_future() for _ in range(2)]
            for url, fut in zip(("http://a.com/hold", "http://a.com/x"), futs, strict=True):
                deliver(durable.Request(url), fut)  # the second while the gate is held: the general path
            assert [await (await fut).text() for fut in futs] == ["http://a.com/hold", "http://a.com/x"]
            assert seen == ["http://a.com/hold", "released", "http://a.com/x"]


class Lazy(durable.DurableObject):
    """What its fetch handler saw of the request's headers; ``/relay`` answers the response it got
    from ``/`` of the object named ``"b"``, unread."""

    async def fetch(self, request: durable.Request) -> durable.Response:
        if request.url.endswith("/relay"):
            relayed: durable.Response = await self.env.LAZY.get_by_name("b").fetch("http://b.com/")
            return relayed
        headers = request.headers
        self.seen = [headers, headers is request.headers, headers.multi_items()]
        try:
            headers.append("x", "1")
        except TypeError as exc:
            self.seen.append(str(exc))
        return durable.Response("ok")

    async def same_headers_object(self) -> bool:
        first = self.seen[0]
        await self.env.LAZY.get_by_name(self.ctx.id.name or "").fetch("http://a.com/")
        return first is self.seen[0]

    async def seen_rest(self) -> list[Any]:
        return self.seen[1:]


async def test_headers_made_at_first_read_are_those_made_at_once() -> None:
    """``_Body.headers`` makes three kinds of headers at their first read (fourteenth pass): the
    object's request of ``stub.fetch(url)`` (empty, immutable, a new object per request, as each
    JavaScript ``Request`` has its own), ``Response(text)``'s (mutable, ``content-type``) and the
    caller's copy of one (immutable, a response relayed by another object too). Each is the same
    object at every read, and a set ``headers`` is what it reads."""
    response = durable.Response("text")
    headers = response.headers
    assert headers is response.headers and type(headers) is durable.Headers
    assert headers.multi_items() == [("content-type", "text/plain;charset=UTF-8")]
    headers.append("x-a", "1")
    assert response.headers.multi_items() == [("content-type", "text/plain;charset=UTF-8"), ("x-a", "1")]
    assert durable.Response("other").headers.multi_items() == [("content-type", "text/plain;charset=UTF-8")]
    replaced = durable.Headers({"x-b": "2"})
    response.headers = replaced
    assert response.headers is replaced
    async with durable.Runtime() as rt:
        ns = rt.namespace(Lazy, name="LAZY")
        stub = ns.get_by_name("a")
        for url in ("http://a.com/", "http://a.com/relay"):
            caller = await stub.fetch(url)
            assert caller.headers is caller.headers
            assert caller.headers.multi_items() == [("content-type", "text/plain;charset=UTF-8")]
            with pytest.raises(TypeError, match="immutable"):
                caller.headers.append("x-c", "3")
            assert await caller.text() == "ok"
        assert await stub.seen_rest() == [True, [], "Can't modify immutable headers."]
        assert not await stub.same_headers_object()  # a new request's headers: a new object


def test_a_python_workers_view_shares_headers_made_at_first_read() -> None:
    """``as_fetch_response`` makes another view of a response, headers shared: of a
    ``Response(text)`` whose headers were not made yet too (they are made first)."""
    from durable.compat.python_workers._http import as_fetch_response

    response = durable.Response("text")
    view = as_fetch_response(response)
    assert view.headers is response.headers
    response.headers.append("x-a", "1")
    assert ("x-a", "1") in view.headers.multi_items()


def _unread_messages() -> list[tuple[durable.Request | durable.Response, bool]]:
    """One of each kind of message whose headers are made at their first read, and whether those
    are mutable: ``Response(text)``, the caller's copy of one, the object's request of
    ``stub.fetch(url)`` (the copy as check_response makes it, from the object's response)."""
    from durable._http import check_response, plain_fetch_request

    request = plain_fetch_request("http://a.com/")
    assert request is not None
    return [
        (durable.Response("text"), True),
        (check_response(durable.Response("text"), request), False),
        (request, False),
    ]


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_copy_of_a_message_whose_headers_are_not_made_yet_has_them(how: str) -> None:
    """``copy.copy``, ``copy.deepcopy`` and ``pickle`` of a message whose headers were not made yet
    (fourteenth pass) give what they gave before: headers (``Response(text)``'s marker came back
    from a deep copy or a pickle as a bare ``object()``, not headers), shared by a shallow copy and
    the original as any slot's value is, mutable as the original's are."""
    for message, mutable in _unread_messages():
        if how == "pickle":
            twin = pickle.loads(pickle.dumps(message))
        else:
            twin = copy.copy(message) if how == "copy" else copy.deepcopy(message)
        assert type(twin.headers) is durable.Headers, (message, twin.headers)
        assert twin.headers.multi_items() == message.headers.multi_items()
        assert (twin.headers is message.headers) == (how == "copy")
        if mutable:
            twin.headers.append("x-a", "1")
            assert twin.headers.get("x-a") == "1"
        else:
            with pytest.raises(TypeError, match="Can't modify immutable headers."):
                twin.headers.append("x-a", "1")


def test_headers_first_read_by_two_threads_at_once_are_one_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads reading a message's headers first at once (a BlockingRuntime caller's response
    handed to threads) both get the one object the message keeps, as they did when the headers were
    made at once: each made its own and kept the last stored, so a header one set could be lost."""
    from durable import _http

    both_read = threading.Barrier(2, timeout=30)  # (a timeout only so that a failure cannot hang)
    real_new = _http._new

    def new(cls: type) -> Any:
        if cls is durable.Headers:
            both_read.wait()  # each thread has read the message's unmade headers: both make them
        return real_new(cls)

    messages = _unread_messages()
    monkeypatch.setattr(_http, "_new", new)
    for message, _ in messages:
        seen: list[durable.Headers] = []
        threads = [threading.Thread(target=lambda m=message, s=seen: s.append(m.headers)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 2
        assert seen[0] is seen[1] is message.headers


class StoredResponse(durable.Response):
    """A subclass keeping its headers itself (its own ``headers``, with a setter)."""

    @property
    def headers(self) -> durable.Headers:
        return self.kept

    @headers.setter
    def headers(self, headers: durable.Headers) -> None:
        self.kept = headers


class StoredRequest(durable.Request):
    @property
    def headers(self) -> durable.Headers:
        return self.kept

    @headers.setter
    def headers(self, headers: durable.Headers) -> None:
        self.kept = headers


class SlotResponse(durable.Response):
    """A subclass declaring ``headers`` a slot of its own."""

    __slots__ = ("headers",)


class OwnHeaders(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        cls = SlotResponse if request.url.endswith("/slot") else StoredResponse
        response = cls("text")
        response.headers.append("x-a", "1")
        return response


async def test_a_subclass_with_its_own_headers_gets_and_gives_them() -> None:
    """A ``Request`` or ``Response`` subclass defining its own ``headers`` (a property keeping them
    elsewhere, or a slot) is given its headers through it and read through it, as when
    ``headers`` was the class's plain slot: made at the first read (fourteenth pass), they were
    stored in the base slot, which such a class never reads (``AttributeError``). And the caller's
    copy and a clone of one keeping them in its ``__dict__`` have headers of their own (the
    subclass's attributes were copied after the headers: the caller's were the object's, mutable)."""
    text = [("content-type", "text/plain;charset=UTF-8")]
    for cls in (StoredResponse, SlotResponse):
        assert cls("text").headers.multi_items() == text
        assert cls(b"x", headers={"x-b": "2"}).headers.multi_items() == [("x-b", "2")]
        original = cls("text")
        clone = original.clone()
        clone.headers.append("x-c", "3")
        assert clone.headers.multi_items() == [*text, ("x-c", "3")]
        assert original.headers.multi_items() == text
    request = StoredRequest("http://a.com/", headers={"x-c": "3"})
    assert request.headers.multi_items() == [("x-c", "3")]
    assert request.clone().headers.multi_items() == [("x-c", "3")]
    async with durable.Runtime() as rt:
        stub = rt.namespace(OwnHeaders).get_by_name("a")
        for path, cls in (("/", StoredResponse), ("/slot", SlotResponse)):
            response = await stub.fetch("http://a.com" + path)
            assert type(response) is cls
            assert response.headers.multi_items() == [*text, ("x-a", "1")]
            with pytest.raises(TypeError, match="immutable"):
                response.headers.append("x-b", "2")


class RaisesTypeError(durable.DurableObject):
    async def fetch(self, request: durable.Request) -> durable.Response:
        raise TypeError("the handler's own")


class PlainNoRequest(durable.DurableObject):
    def fetch(self) -> durable.Response:  # runs when called: outside the TypeError's handler, so none is seen
        return durable.Response(f"handling {sys.exc_info()[0]}")


class PlainDefRaisesTypeError(durable.DurableObject):
    def fetch(self, request: durable.Request) -> durable.Response:
        raise TypeError("a plain def's own")


class PropertyHandler(durable.DurableObject):
    reads = 0

    @property
    def fetch(self) -> Any:
        type(self).reads += 1
        return lambda request: durable.Response("from a property")


@pytest.mark.parametrize("cls", [RaisesTypeError, PlainNoRequest, PlainDefRaisesTypeError, PropertyHandler])
async def test_fetch_handlers_fail_and_are_read_alike_on_both_host_paths(cls: Any) -> None:
    """``_first_step``'s direct call_fetch (the shorter path) and ObjectClass.dispatch (the general
    path, under max_queued_calls) alike: a TypeError a handler taking the request raises reaches the
    caller as it is (no retry without the request); one taking none is called outside the
    TypeError's handling; a handler attribute is read once per fetch. (Written for an inlined
    call_fetch the fourteenth pass measured and left: docs/performance.md.)"""
    outcomes = []
    for limit in (None, 100):
        async with durable.Runtime(max_queued_calls=limit) as rt:
            stub = rt.namespace(cls).get_by_name("a")
            for _ in range(2):  # (the first makes the instance: the general path either way)
                if cls is PropertyHandler:
                    cls.reads = 0
                try:
                    outcomes.append(await (await stub.fetch("http://a.com/")).text())
                except Exception as exc:
                    outcomes.append(f"{type(exc).__name__}: {exc} / context {type(exc.__context__).__name__}")
                if cls is PropertyHandler:
                    assert cls.reads == 1
    assert len(set(outcomes)) == 1
    assert (
        outcomes[0]
        == {
            RaisesTypeError: "TypeError: the handler's own / context NoneType",
            PlainNoRequest: "handling None",
            PlainDefRaisesTypeError: "TypeError: a plain def's own / context NoneType",
            PropertyHandler: "from a property",
        }[cls]
    )


class Mixed(durable.DurableObject):
    async def call(self, i: int, write: bool, atomic: bool) -> Any:
        if write:
            await self.ctx.storage.put(f"k{i}", i)
        return i if atomic else [i]


async def test_results_of_one_turn_arrive_in_call_order_on_both_deliveries() -> None:
    """Calls started in one turn, some answered by ``_first_step``'s inlined delivery (an atomic
    result) and some by ``_deliver`` (a copied list), some writing: their results settle in call
    order, those after the first write only with its commit (review of the fourteenth pass: an
    atomic result handed on past the output gate would settle before the held ones). 3.12+ takes
    ``_fast_event``, which always goes through ``_deliver``: the same order there."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(Mixed).get_by_name("a")
        await stub.call(-1, False, True)  # built: every call below takes the fast path
        plan = [(False, True), (True, True), (False, False), (False, True), (True, False), (False, True)]
        settled: list[int] = []
        promises = []
        for i, (write, atomic) in enumerate(plan):
            promise = stub.call(i, write, atomic)
            promise.add_done_callback(lambda _, i=i: settled.append(i))
            promises.append(promise)
        results = await asyncio.gather(*promises)
        assert settled == list(range(len(plan)))
        assert results == [i if atomic else [i] for i, (_, atomic) in enumerate(plan)]


class IntsAndBlobs(durable.DurableObject):
    async def reads(self) -> list[Any]:
        """Reads through Storage.get's inlined test of ``_codec.last_int`` and around it."""
        storage = self.ctx.storage
        await storage.put("a", 300)
        seen = [await storage.get("a")]  # the very bytes encode() made last: the inlined answer
        await storage.put("b", 301)  # another int encoded since: "a" is decoded as before
        seen += [await storage.get("a"), await storage.get("b")]
        await storage.put("c", "300")  # not an int: decoded
        seen += [await storage.get("c"), await storage.get("b")]
        return seen

    async def put_outcome(self, key: str, value: Any) -> str:
        """What ``storage.put(key, value)`` does (the inlined limit check), and whether it wrote."""
        try:
            self.ctx.storage.put(key, value)
        except durable.StorageLimitError as exc:
            return f"{type(exc).__name__}: {exc} / stored: {await self.ctx.storage.get(key) is not None}"
        return "ok"


async def test_storage_get_answers_the_last_encoded_int_and_decodes_the_rest() -> None:
    """Storage.get's inlined first test of decode() (sixteenth pass): the int whose bytes encode()
    made last comes back from those bytes; an int encoded before another, a str, and an int read
    back from the database after an eviction (equal bytes, another object) are decoded as before."""
    async with durable.Runtime() as rt:
        stub = rt.namespace(IntsAndBlobs).get_by_name("x")
        assert await stub.reads() == [300, 300, 301, "300", 301]
        await testing.evict(stub)
        durable._codec.encode(7)  # another int encoded last: the stored bytes are decoded
        assert await testing.run_in_object(stub, lambda o, c: c.storage.get(["a", "b", "c"])) == {
            "a": 300,
            "b": 301,
            "c": "300",
        }
        assert await stub.reads() == [300, 300, 301, "300", 301]


@pytest.mark.parametrize("storage", ["sqlite", "kv"])
async def test_storage_puts_inlined_limit_check_is_encode_checkeds(storage: str) -> None:
    """Storage.put checks its value's size only where encode_checked could refuse it (sixteenth
    pass): on both sides of the cheap bound (encoding times V8_SIZE_FACTOR against the limit) and
    of the limit itself, with a value whose V8 size is larger than its encoding (a list of small
    ints, or ints after a float), put() refuses exactly what encode_checked() refuses, with its message, writing nothing;
    with no limit nothing is refused."""
    from durable import _keys
    from durable._v8size import V8_SIZE_FACTOR

    limit = 2000
    limits = durable.Limits(sqlite_max_row_bytes=limit, kv_max_value_bytes=limit)
    values: list[Any] = []
    for size in {limit // V8_SIZE_FACTOR - 8 + d for d in range(-3, 4)} | {limit - 40 + d for d in range(-4, 5)}:
        values += [b"x" * size, "y" * size]
    values += [[1] * n for n in (limit // V8_SIZE_FACTOR - 6, 200, 500, 900, 1000, 1990)]
    # V8 writes this list as doubles (9 bytes each), durable's codec its ints as bytes: V8's size
    # passes the limit where the encoding times V8_SIZE_FACTOR is only just over it.
    values += [[0.5] + [1] * n for n in range(200, 240, 3)]
    async with durable.Runtime(limits=limits) as rt:
        stub = rt.namespace(IntsAndBlobs, storage=storage).get_by_name("limits")
        host = durable._stub.host_of(stub)
        refused = 0
        for i, value in enumerate(values):
            key = f"k{i}"
            try:
                _keys.encode_checked(key, value, host)
                expected = "ok"
            except durable.StorageLimitError as exc:
                expected = f"StorageLimitError: {exc} / stored: False"
                refused += 1
            assert await stub.put_outcome(key, value) == expected, (storage, len(durable._codec.encode(value)))
        assert 0 < refused < len(values)
    async with durable.Runtime(limits=durable.Limits.unlimited()) as rt:
        stub = rt.namespace(IntsAndBlobs, storage=storage).get_by_name("unlimited")
        assert await stub.put_outcome("big", b"x" * (3 * 1024 * 1024)) == "ok"
