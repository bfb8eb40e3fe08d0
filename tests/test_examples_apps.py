"""The application examples (examples/rate_limiter.py, leaderboard.py, job_queue.py), tested as their
users would test them: through the public API, the docs' testing helpers and a mock clock."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import durable
from durable.testing import MockClock, evict, fail_next_commit, list_ids, run_alarm, run_in_object

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import job_queue
import leaderboard
import rate_limiter
from job_queue import ALARM_RETRIES_TRUSTED, BATCH_SIZE, MAX_ATTEMPTS, OUTAGE_PAUSE_MS, JobQueue, Unavailable
from leaderboard import HISTORY_KEPT, Leaderboard
from rate_limiter import CAPACITY, RateLimiter

ROOT = Path(__file__).resolve().parent.parent
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

    @pytest.mark.parametrize("count", ["0", "-1"])
    def test_main_refuses_a_request_count_below_one(self, count: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`--requests -1` printed "alice: 0 of -1 requests allowed"; it is refused, as
        examples/blocking.py refuses `--threads 0`."""
        with pytest.raises(SystemExit) as info:
            rate_limiter.main(["--requests", count])
        assert info.value.code == 2
        assert f"argument --requests: must be at least 1, not {count}" in capsys.readouterr().err

    def test_main_names_a_count_that_is_no_number(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--requests abc` said "invalid _positive value: 'abc'" (argparse names the type function):
        it says what is wanted instead, as examples/blocking.py's --threads and --calls do."""
        with pytest.raises(SystemExit) as info:
            rate_limiter.main(["--requests", "abc"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --requests: must be a whole number, not 'abc'" in err and "_positive" not in err


@pytest.fixture
async def game(durable_runtime: durable.Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of examples/leaderboard.py's Worker, in-process, as docs/http.md shows."""
    durable_runtime.namespace(Leaderboard, name="BOARDS")
    transport = httpx.ASGITransport(app=durable.asgi_app(leaderboard.Worker, durable_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://game") as client:
        yield client


async def submit(client: httpx.AsyncClient, player: str, score: object, board: str = "b") -> httpx.Response:
    return await client.post(f"/boards/{board}/scores", json={"player": player, "score": score})


class TestLeaderboard:
    async def test_upsert_keeps_the_best_score(self, game: httpx.AsyncClient) -> None:
        """A lower score counts as a game but does not lower the player's best."""
        assert (await submit(game, "ada", 300)).json() == {"player": "ada", "best": 300, "rank": 1}
        response = await submit(game, "ada", 100)
        assert response.status_code == 201 and response.json()["best"] == 300
        ada = (await game.get("/boards/b/players/ada")).json()
        assert (ada["best"], ada["games"]) == (300, 2)
        assert [h["score"] for h in ada["history"]] == [100, 300]  # newest first

    async def test_top_n_with_ties(self, game: httpx.AsyncClient) -> None:
        """Players with equal bests share a rank, the next rank skips, names break the order."""
        for player, score in [("cy", 50), ("bob", 90), ("ada", 90), ("dee", 10)]:
            await submit(game, player, score)
        top = (await game.get("/boards/b/top", params={"n": 3})).json()["top"]
        assert top == [
            {"player": "ada", "best": 90, "rank": 1},
            {"player": "bob", "best": 90, "rank": 1},
            {"player": "cy", "best": 50, "rank": 3},
        ]
        assert (await game.get("/boards/b/players/dee")).json()["rank"] == 4

    async def test_pagination_walks_every_player_once(self, game: httpx.AsyncClient) -> None:
        """Pages follow the cursor; a score changed between pages repeats or skips nobody."""
        for i in range(7):
            await submit(game, f"p{i}", i * 10)
        seen: list[str] = []
        page = (await game.get("/boards/b/ranking", params={"limit": 3})).json()
        seen += [p["player"] for p in page["players"]]
        await submit(game, "p0", 1000)  # the last player jumps to the top meanwhile
        while page["next"]:
            page = (await game.get("/boards/b/ranking", params={"limit": 3, "after": page["next"]})).json()
            seen += [p["player"] for p in page["players"]]
        assert seen == ["p6", "p5", "p4", "p3", "p2", "p1"]  # p0 moved behind the cursor

    async def test_history_is_trimmed(self, durable_runtime: durable.Runtime) -> None:
        """Only the last HISTORY_KEPT scores of a player are kept."""
        board = durable_runtime.namespace(Leaderboard, name="BOARDS").get_by_name("b")
        for score in range(HISTORY_KEPT + 5):
            await board.submit("ada", score)
        rows = await durable.testing.query(board, "SELECT min(score) AS low, count(*) AS n FROM scores")
        assert rows == [{"low": 5, "n": HISTORY_KEPT}]
        ada = await board.player("ada", recent=2)
        assert ada is not None and [h["score"] for h in ada["history"]] == [HISTORY_KEPT + 4, HISTORY_KEPT + 3]

    async def test_boards_are_separate_and_survive_eviction(self, durable_runtime: durable.Runtime) -> None:
        """Each board is its own object; its tables outlive the instance (the constructor's schema is idempotent)."""
        boards = durable_runtime.namespace(Leaderboard, name="BOARDS")
        await boards.get_by_name("daily").submit("ada", 5)
        await durable.testing.evict(boards.get_by_name("daily"))
        assert await boards.get_by_name("daily").top() == [{"player": "ada", "best": 5, "rank": 1}]
        assert await boards.get_by_name("weekly").top() == []

    async def test_a_failed_commit_stores_nothing(self, durable_runtime: durable.Runtime) -> None:
        """The upsert, the history row and the trim commit together or not at all."""
        boards = durable_runtime.namespace(Leaderboard, name="BOARDS")
        await boards.get_by_name("b").submit("ada", 5)
        durable.testing.fail_next_commit(boards.get_by_name("b"))
        with pytest.raises(durable.ObjectResetError):
            await boards.get_by_name("b").submit("ada", 50)
        ada = await boards.get_by_name("b").player("ada")
        assert ada is not None and (ada["best"], ada["games"], len(ada["history"])) == (5, 1, 1)

    @pytest.mark.parametrize(
        ("method", "path", "body", "status", "error"),
        [
            ("POST", "/boards/b/scores", {"player": "", "score": 1}, 400, "player must be a name"),
            ("POST", "/boards/b/scores", {"player": "x", "score": "1"}, 400, "score must be an integer"),
            ("POST", "/boards/b/scores", [1], 400, "must be a JSON object"),
            ("GET", "/boards/b/top?n=1000", None, 400, "n must be an integer from 1 to 100"),
            ("GET", "/boards/b/top?n=ten", None, 400, "expected an integer, not 'ten'"),
            ("GET", "/boards/b/ranking?after=nope", None, 400, "invalid cursor 'nope'"),
            ("GET", "/boards/b/players/nobody", None, 404, "no player 'nobody'"),
            ("GET", "/elsewhere", None, 404, "use /boards/<board>/"),
            ("DELETE", "/boards/b/top", None, 405, "no route for DELETE"),
        ],
    )
    async def test_bad_requests_are_named(
        self, game: httpx.AsyncClient, method: str, path: str, body: object, status: int, error: str
    ) -> None:
        """Every refused request gets a status and a JSON error saying what was wrong."""
        response = await game.request(method, path, json=body)
        assert response.status_code == status
        assert error in response.json()["error"]

    async def test_malformed_json_is_a_400(self, game: httpx.AsyncClient) -> None:
        """A body that is not JSON is the client's error, not the server's."""
        response = await game.post("/boards/b/scores", content=b"{not json")
        assert response.status_code == 400

    def test_demo_runs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`python examples/leaderboard.py` prints the top 3 and two pages."""
        asyncio.run(leaderboard.demo())
        out = capsys.readouterr().out
        assert 'top 3: [{"player": "bob", "best": 515, "rank": 1}' in out
        assert "page 2:" in out and "next: None" in out

    def test_demo_without_httpx_says_what_to_install(self, tmp_path: Path) -> None:
        """README's first command installs only the server extra, which has no httpx: the demo
        then says to install it (or to serve the file) instead of ending in a traceback."""
        blocker = tmp_path / "sitecustomize.py"
        blocker.write_text("import sys\nsys.modules['httpx'] = None  # as if not installed\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "leaderboard.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert "pip install httpx" in done.stderr and "durable serve examples/leaderboard.py" in done.stderr


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The payloads of "record" jobs run, in order (a job kind registered for the test)."""
    ran: list[Any] = []

    async def record(payload: Any) -> None:
        ran.append(payload)

    monkeypatch.setitem(job_queue.HANDLERS, "record", record)
    return ran


class Switch:
    """A job kind whose handler raises what the test sets (None: succeeds)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, ran: list[Any]) -> None:
        self.error: Exception | None = None
        self.calls = 0

        async def switch(payload: Any) -> None:
            self.calls += 1
            if self.error is not None:
                raise self.error
            ran.append(payload)

        monkeypatch.setitem(job_queue.HANDLERS, "switch", switch)


@pytest.fixture
def switch(monkeypatch: pytest.MonkeyPatch, ran: list[Any]) -> Switch:
    return Switch(monkeypatch, ran)


@pytest.fixture
def queues(durable_runtime: durable.Runtime, mock_clock: MockClock) -> durable.Namespace[JobQueue]:
    return durable_runtime.namespace(JobQueue, name="JOBS")


class TestJobQueue:
    async def test_the_alarm_follows_the_earliest_job(
        self, queues: durable.Namespace[JobQueue], mock_clock: MockClock, ran: list[Any]
    ) -> None:
        """enqueue() moves the alarm earlier, never later; each job runs at its time."""
        queue = queues.get_by_name("q")
        now = mock_clock.time_ms()
        await queue.enqueue("record", "late", delay_ms=5_000)
        await queue.enqueue("record", "early", delay_ms=1_000)
        await queue.enqueue("record", "later", delay_ms=9_000)
        assert await run_in_object(queue, lambda obj, ctx: ctx.storage.get_alarm()) == now + 1_000
        await mock_clock.advance(4.999)
        assert ran == ["early"]
        await mock_clock.advance(5)
        assert ran == ["early", "late", "later"]
        assert await run_in_object(queue, lambda obj, ctx: ctx.storage.get_alarm()) is None

    async def test_jobs_run_in_batches(self, queues: durable.Namespace[JobQueue], ran: list[Any]) -> None:
        """One alarm runs BATCH_SIZE jobs and sets the alarm again for the rest."""
        queue = queues.get_by_name("q")
        for n in range(BATCH_SIZE + 3):
            await queue.enqueue("record", n, delay_ms=60_000)
        assert await run_alarm(queue) is True  # now, a minute early
        assert ran == list(range(BATCH_SIZE))
        assert await queue.counts() == {"queued": 3, "done": BATCH_SIZE, "dead": 0}
        assert await run_alarm(queue) is True
        assert await queue.counts() == {"queued": 0, "done": BATCH_SIZE + 3, "dead": 0}
        assert await run_alarm(queue) is False  # nothing left: no alarm

    async def test_a_failing_job_backs_off_then_dies(
        self, queues: durable.Namespace[JobQueue], mock_clock: MockClock, switch: Switch
    ) -> None:
        """A job that keeps failing is tried at 0, 10, 30, 70 and 150 s, then kept as dead with its error."""
        queue = queues.get_by_name("q")
        start = mock_clock.time_ms()
        switch.error = ConnectionRefusedError("smtp down")
        job_id = await queue.enqueue("switch", "x")
        attempts_at: dict[int, int] = {}  # attempt number -> second it was made
        for second in range(200):
            await mock_clock.advance(0 if second == 0 else 1)
            attempts_at.setdefault(switch.calls, second)
        assert attempts_at == {1: 0, 2: 10, 3: 30, 4: 70, 5: 150}
        assert await queue.status(job_id) == {
            "status": "dead",
            "attempts": MAX_ATTEMPTS,
            "run_at": start + 150_000,  # the time of the last attempt
            "last_error": "ConnectionRefusedError: smtp down",
        }

    async def test_an_alarm_that_throws_is_retried_with_backoff(
        self, queues: durable.Namespace[JobQueue], mock_clock: MockClock, switch: Switch, ran: list[Any]
    ) -> None:
        """Unavailable stops the batch and fails the alarm: jobs done before it stay done, and the
        runtime retries the alarm 2 s, then 4 s later, where the rest of the batch runs."""
        queue = queues.get_by_name("q")
        await queue.enqueue("record", "before", delay_ms=60_000)
        await queue.enqueue("switch", "blocked", delay_ms=60_000)
        await queue.enqueue("record", "after", delay_ms=60_000)
        switch.error = Unavailable("payments API down")
        with pytest.raises(Unavailable):
            await run_alarm(queue)  # attempt 0, made now
        assert ran == ["before"]
        assert await queue.counts() == {"queued": 2, "done": 1, "dead": 0}
        await mock_clock.advance(2)  # retry 1 fails too
        assert switch.calls == 2
        switch.error = None
        await mock_clock.advance(3.999)
        assert switch.calls == 2  # retry 2 is 4 s after the last failure
        await mock_clock.advance(0.001)
        assert ran == ["before", "blocked", "after"]
        assert await queue.counts() == {"queued": 0, "done": 3, "dead": 0}

    async def test_a_long_outage_pauses_the_queue(
        self, queues: durable.Namespace[JobQueue], mock_clock: MockClock, switch: Switch
    ) -> None:
        """After ALARM_RETRIES_TRUSTED retries the handler sets its own alarm, OUTAGE_PAUSE_MS ahead,
        instead of letting the runtime give up and delete the alarm."""
        queue = queues.get_by_name("q")
        start = mock_clock.time_ms()
        switch.error = Unavailable("down")
        await queue.enqueue("switch", "x")
        await mock_clock.advance(30)  # attempts at 0, 2, 6, 14 and 30 s
        assert switch.calls == ALARM_RETRIES_TRUSTED + 1
        alarm = await run_in_object(queue, lambda obj, ctx: ctx.storage.get_alarm())
        assert alarm == start + 30_000 + OUTAGE_PAUSE_MS
        switch.error = None
        await mock_clock.advance(OUTAGE_PAUSE_MS / 1000)
        assert await queue.counts() == {"queued": 0, "done": 1, "dead": 0}

    async def test_a_reset_mid_batch_runs_the_batch_again(
        self, queues: durable.Namespace[JobQueue], mock_clock: MockClock, ran: list[Any]
    ) -> None:
        """A batch whose commit fails is rolled back whole and the object reset; the alarm's retry
        runs those jobs again (at least once), and the table counts each job done once."""
        queue = queues.get_by_name("q")
        for n in range(3):
            await queue.enqueue("record", n, delay_ms=60_000)
        fail_next_commit(queue)
        with pytest.raises(durable.ObjectResetError):
            await run_alarm(queue)
        assert ran == [0, 1, 2]
        queue = queues.get_by_name("q")  # the stub that saw the reset is broken
        assert await queue.counts() == {"queued": 3, "done": 0, "dead": 0}
        await mock_clock.advance(2)
        assert ran == [0, 1, 2, 0, 1, 2]
        assert await queue.counts() == {"queued": 0, "done": 3, "dead": 0}

    async def test_runtime_reset_while_a_batch_runs(
        self,
        durable_runtime: durable.Runtime,
        queues: durable.Namespace[JobQueue],
        mock_clock: MockClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """rt.reset() during a batch ends the handler without a retry and wipes the queue; the
        namespace keeps working."""
        started, release = asyncio.Event(), asyncio.Event()

        async def slow(payload: Any) -> None:
            started.set()
            await release.wait()

        monkeypatch.setitem(job_queue.HANDLERS, "slow", slow)
        await queues.get_by_name("q").enqueue("slow")
        advancing = asyncio.create_task(mock_clock.advance(0))  # waits for the handler: run it as a task
        await started.wait()
        await durable_runtime.reset()
        await advancing
        assert await list_ids(queues) == []
        await mock_clock.advance(3600)  # no retry of the interrupted alarm
        assert await queues.get_by_name("q").counts() == {"queued": 0, "done": 0, "dead": 0}

    async def test_jobs_survive_eviction(
        self, queues: durable.Namespace[JobQueue], mock_clock: MockClock, ran: list[Any]
    ) -> None:
        """An evicted queue is rebuilt by its alarm; the jobs are in storage, not in fields."""
        queue = queues.get_by_name("q")
        await queue.enqueue("record", "kept", delay_ms=60_000)
        await evict(queue)
        await mock_clock.advance(60)
        assert ran == ["kept"]

    async def test_bad_jobs_are_refused(self, queues: durable.Namespace[JobQueue]) -> None:
        """An unknown kind or a negative delay is refused with the reason."""
        queue = queues.get_by_name("q")
        with pytest.raises(ValueError, match="no handler for job kind 'nope'"):
            await queue.enqueue("nope")
        with pytest.raises(ValueError, match="delay_ms must be an int >= 0"):
            await queue.enqueue("email", {}, delay_ms=-1)

    def test_demo_runs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`python examples/job_queue.py` runs the 24 e-mails at once and the flaky job on its third attempt."""
        asyncio.run(job_queue.demo())
        out = capsys.readouterr().out
        assert "after 0 s: {'queued': 1, 'done': 24, 'dead': 0}" in out
        assert "after 61 s: {'status': 'done', 'attempts': 3" in out
