"""A token-bucket rate limiter, one Durable Object per client key, used from synchronous code.

Each client key (an API key, an IP address) gets its own ``RateLimiter`` object holding a bucket of
``CAPACITY`` tokens that refills at ``REFILL_PER_SECOND``. A request takes a token or is refused
with the time to wait. The refill is clock arithmetic on ``ctx.now_ms()``, so no timer runs while
a client is active; an alarm set for when the bucket would be full again deletes the object's
storage, so idle clients cost nothing.

The front end is a plain WSGI function (any WSGI server, Flask or Django would do the same) calling
the objects through ``durable.BlockingRuntime``: every call blocks its request thread until the
object answers, and the input gate makes the read-modify-write of the bucket safe from many
threads at once. Run it::

    python examples/rate_limiter.py [--persist DIR] [--requests 12]

With ``--persist`` the buckets are kept on disk: run it twice within a few seconds and the second
run starts with the tokens the first one left.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import durable

CAPACITY = 10  # tokens in a full bucket: the burst a client may make
REFILL_PER_SECOND = 2.0  # tokens added per second, up to CAPACITY


class RateLimiter(durable.DurableObject):
    """The token bucket of one client key.

    Storage holds ``tokens`` (a float) and ``updated_ms``, the time they were counted. The tokens
    present now are computed from those two and the clock, never by a timer.
    """

    async def take(self, cost: int = 1) -> dict[str, Any]:
        """Take ``cost`` tokens if the bucket holds them.

        Returns ``{"allowed": bool, "remaining": int, "retry_after_ms": int}``: ``retry_after_ms`` is
        0 when allowed, else how long until enough tokens are back. Raises ``ValueError`` for a
        cost that is not between 1 and ``CAPACITY`` (it could never be served).
        """
        if not isinstance(cost, int) or not 1 <= cost <= CAPACITY:
            raise ValueError(f"cost must be an int from 1 to {CAPACITY}, not {cost!r}")
        now = self.ctx.now_ms()
        tokens = await self._tokens(now)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        await self.ctx.storage.put({"tokens": tokens, "updated_ms": now})
        # When the bucket is full again the object forgets the client: see alarm().
        await self.ctx.storage.set_alarm(now + _ms_to_refill(CAPACITY - tokens))
        return {
            "allowed": allowed,
            "remaining": int(tokens),
            "retry_after_ms": 0 if allowed else _ms_to_refill(cost - tokens),
        }

    async def peek(self) -> int:
        """The whole tokens available now, without taking any."""
        return int(await self._tokens(self.ctx.now_ms()))

    async def alarm(self, info: durable.AlarmInfo) -> None:
        """The bucket has refilled: a full bucket is the state of a client never seen, so drop it."""
        await self.ctx.storage.delete_all()

    async def _tokens(self, now: int) -> float:
        stored = await self.ctx.storage.get(["tokens", "updated_ms"])
        if not stored:
            return float(CAPACITY)
        elapsed_s = max(0, now - stored["updated_ms"]) / 1000
        return float(min(CAPACITY, stored["tokens"] + elapsed_s * REFILL_PER_SECOND))


def _ms_to_refill(missing_tokens: float) -> int:
    """Milliseconds until ``missing_tokens`` tokens have been added (rounded up)."""
    return max(0, -int(-missing_tokens * 1000 // REFILL_PER_SECOND))


def make_app(limiters: durable.BlockingNamespace[RateLimiter]) -> Callable[..., Iterable[bytes]]:
    """A WSGI application: ``GET /<anything>`` with an ``X-Api-Key`` header, limited per key.

    Answers ``200`` with the remaining tokens, ``429`` with ``Retry-After`` (seconds, rounded up)
    when the key's bucket is empty, ``401`` without a key.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        key = environ.get("HTTP_X_API_KEY", "")
        if not key:
            return _respond(start_response, "401 Unauthorized", {"error": "missing X-Api-Key header"})
        verdict = limiters.get_by_name(key).take()  # blocks this request's thread, not the others
        headers = [("X-RateLimit-Remaining", str(verdict["remaining"]))]
        if verdict["allowed"]:
            return _respond(start_response, "200 OK", {"remaining": verdict["remaining"]}, headers)
        retry_after_s = -(-verdict["retry_after_ms"] // 1000)
        headers.append(("Retry-After", str(retry_after_s)))
        return _respond(start_response, "429 Too Many Requests", {"retry_after_ms": verdict["retry_after_ms"]}, headers)

    return app


def _respond(
    start_response: Callable[..., Any], status: str, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers])
    return [data]


def call(app: Callable[..., Iterable[bytes]], api_key: str) -> tuple[str, dict[str, Any]]:
    """Send one request to a WSGI app in-process, as a WSGI server would; returns (status, JSON body)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_API_KEY": api_key}
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0], json.loads(body)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persist", metavar="DIR", default=None, help="keep the buckets under DIR (default: memory)")
    parser.add_argument("--requests", type=_positive, default=12, help="requests per client (default 12)")
    args = parser.parse_args(argv)

    with durable.BlockingRuntime(args.persist) as rt:
        app = make_app(rt.namespace(RateLimiter, name="LIMITER"))
        clients = ["alice", "bob", "carol"]
        with ThreadPoolExecutor(8) as pool:  # a threaded WSGI server's request threads
            statuses = list(pool.map(lambda key: call(app, key)[0], clients * args.requests))
        for key in clients:
            allowed = sum(s.startswith("200") for s, k in zip(statuses, clients * args.requests) if k == key)
            print(f"{key}: {allowed} of {args.requests} requests allowed (bucket of {CAPACITY})")
        print("alice, once more:", call(app, "alice"))


if __name__ == "__main__":
    main()
