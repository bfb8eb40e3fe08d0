"""The application examples (examples/rate_limiter.py, leaderboard.py, job_queue.py), tested as their
users would test them: through the public API, the docs' testing helpers and a mock clock."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import durable
from durable.testing import MockClock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import rate_limiter
from rate_limiter import CAPACITY, RateLimiter

T0 = 1_800_000_000  # seconds since the epoch: every time in these tests is exact


@pytest.fixture
def clock() -> MockClock:
    return MockClock(start=T0)


@pytest.fixture
def blocking(clock: MockClock) -> Iterator[durable.BlockingRuntime]:
    with durable.BlockingRuntime(clock=clock) as rt:
        yield rt


class TestRateLimiter:
    def test_a_burst_gets_exactly_the_capacity(self, blocking: durable.BlockingRuntime) -> None:
        """Fifty concurrent requests of one key from a thread pool: CAPACITY pass, the rest get 429."""
        app = rate_limiter.make_app(blocking.namespace(RateLimiter))
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: rate_limiter.call(app, "k")[0], range(50)))
        assert statuses.count("200 OK") == CAPACITY
        assert statuses.count("429 Too Many Requests") == 50 - CAPACITY

    def test_keys_have_separate_buckets(self, blocking: durable.BlockingRuntime) -> None:
        """Emptying one key's bucket leaves another key's full."""
        limiters = blocking.namespace(RateLimiter)
        for _ in range(CAPACITY):
            assert limiters.get_by_name("a").take()["allowed"]
        assert limiters.get_by_name("a").take()["allowed"] is False
        assert limiters.get_by_name("b").peek() == CAPACITY

    def test_tokens_refill_with_the_clock(self, blocking: durable.BlockingRuntime, clock: MockClock) -> None:
        """An empty bucket says how long to wait, and has a token again exactly then."""
        stub = blocking.namespace(RateLimiter).get_by_name("k")
        stub.take(CAPACITY)
        refused = stub.take()
        assert refused == {"allowed": False, "remaining": 0, "retry_after_ms": 500}
        asyncio.run(clock.advance(0.499))
        assert stub.take()["allowed"] is False
        asyncio.run(clock.advance(0.001))
        assert stub.take() == {"allowed": True, "remaining": 0, "retry_after_ms": 0}

    def test_a_full_bucket_is_forgotten(self, blocking: durable.BlockingRuntime, clock: MockClock) -> None:
        """Once the bucket has refilled, the alarm deletes the object's storage."""
        limiters = blocking.namespace(RateLimiter)
        limiters.get_by_name("k").take(4)
        assert [oid.name for oid in blocking.run(durable.testing.list_ids, limiters)] == ["k"]
        asyncio.run(clock.advance(2))  # 4 tokens at 2 per second
        assert blocking.run(durable.testing.list_ids, limiters) == []
        assert limiters.get_by_name("k").peek() == CAPACITY

    def test_bad_cost_is_refused(self, blocking: durable.BlockingRuntime) -> None:
        """A cost the bucket could never hold raises ValueError in the caller's thread."""
        stub = blocking.namespace(RateLimiter).get_by_name("k")
        with pytest.raises(ValueError, match="cost must be an int from 1 to 10"):
            stub.take(CAPACITY + 1)

    def test_wsgi_answers(self, blocking: durable.BlockingRuntime) -> None:
        """The WSGI app answers 401 without a key, 200 with the remaining tokens, then 429."""
        app = rate_limiter.make_app(blocking.namespace(RateLimiter))
        assert rate_limiter.call(app, "") == ("401 Unauthorized", {"error": "missing X-Api-Key header"})
        assert rate_limiter.call(app, "k") == ("200 OK", {"remaining": CAPACITY - 1})
        for _ in range(CAPACITY - 1):
            rate_limiter.call(app, "k")
        assert rate_limiter.call(app, "k") == ("429 Too Many Requests", {"retry_after_ms": 500})

    def test_buckets_survive_a_restart(self, tmp_path: Path) -> None:
        """A persisted bucket is found again by a new runtime on the same directory, refilled by the
        time the process was down; an alarm that fell due meanwhile runs when the namespace is registered."""
        with durable.BlockingRuntime(tmp_path, clock=MockClock(start=T0)) as rt:
            limiters = rt.namespace(RateLimiter, name="LIMITER")
            limiters.get_by_name("slow").take(CAPACITY)
            limiters.get_by_name("fast").take(1)

        clock = MockClock(start=T0 + 3)  # down for 3 s: 6 tokens back, "fast" full (its alarm is due)
        with durable.BlockingRuntime(tmp_path, clock=clock) as rt:
            limiters = rt.namespace(RateLimiter, name="LIMITER")
            asyncio.run(clock.advance(0))  # the overdue alarm runs
            assert [oid.name for oid in rt.run(durable.testing.list_ids, limiters)] == ["slow"]
            assert limiters.get_by_name("slow").peek() == 6

    def test_demo_runs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`python examples/rate_limiter.py` allows exactly a bucket per client."""
        rate_limiter.main(["--requests", "12"])
        out = capsys.readouterr().out
        assert "alice: 10 of 12 requests allowed" in out
        assert "429 Too Many Requests" in out
