"""A job queue and scheduler in one Durable Object: jobs come in by RPC, run from ``alarm()``.

``JobQueue.enqueue(kind, payload, delay_ms=0)`` stores a job in the object's SQL table and makes
sure the object's one alarm is set for the earliest job due. Each time the alarm fires, the object
runs up to ``BATCH_SIZE`` due jobs, then sets the alarm again for what is left. Two kinds of
failure are handled differently:

- A job whose handler raises is retried on its own, ``JOB_BACKOFF_MS`` x 2**n later, and after
  ``MAX_ATTEMPTS`` attempts is kept as ``dead`` with its last error.
- A handler that raises ``Unavailable`` (the service every job needs is down) stops the batch, and
  the alarm handler re-raises it: the runtime retries the alarm 2, 4, 8 ... s later, as Cloudflare
  does. After a few retries the handler stops relying on that and sets a later alarm itself.

Jobs run at least once: a job whose completion was not stored (the object was reset mid-batch,
the process died) runs again. Handlers should be idempotent. Run it::

    python examples/job_queue.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import durable
from durable.testing import MockClock

BATCH_SIZE = 10  # jobs per alarm
MAX_ATTEMPTS = 5  # attempts of one job before it is dead
JOB_BACKOFF_MS = 10_000  # a failed job waits 10 s, 20 s, 40 s ... before its next attempt
ALARM_RETRIES_TRUSTED = 4  # past this many alarm retries, schedule the next attempt ourselves
OUTAGE_PAUSE_MS = 5 * 60_000  # ... this far ahead

Handler = Callable[[Any], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def job(kind: str) -> Callable[[Handler], Handler]:
    """Register an async function as the handler of jobs of ``kind``: ``@job("email")``."""

    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return register


class Unavailable(Exception):
    """Raised by a handler when a service every job depends on is down: pauses the whole queue."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,          -- JSON
    run_at INTEGER NOT NULL,        -- ms since the epoch
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'dead')),
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, run_at, id);
"""


class JobQueue(durable.DurableObject):
    """A queue of jobs, run in batches by the object's alarm."""

    def __init__(self, ctx: durable.State, env: durable.Env) -> None:
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        ctx.block_concurrency_while(lambda: self.sql.exec(SCHEMA))

    async def enqueue(self, kind: str, payload: Any = None, delay_ms: int = 0) -> int:
        """Queue a job to run ``delay_ms`` from now; returns its id.

        Raises ``ValueError`` for a kind without a handler or a negative delay, and ``TypeError``
        for a payload JSON cannot hold.
        """
        if kind not in HANDLERS:
            raise ValueError(f"no handler for job kind {kind!r}; known kinds: {sorted(HANDLERS)}")
        if not isinstance(delay_ms, int) or delay_ms < 0:
            raise ValueError(f"delay_ms must be an int >= 0, not {delay_ms!r}")
        run_at = self.ctx.now_ms() + delay_ms
        row = self.sql.exec(
            "INSERT INTO jobs (kind, payload, run_at) VALUES (?, ?, ?) RETURNING id", kind, json.dumps(payload), run_at
        ).one()
        current = await self.ctx.storage.get_alarm()
        if current is None or current > run_at:
            await self.ctx.storage.set_alarm(run_at)
        return int(row["id"])

    def status(self, job_id: int) -> dict[str, Any] | None:
        """A job's ``status``, ``attempts``, ``run_at`` and ``last_error``, or None if unknown."""
        rows = self.sql.exec("SELECT status, attempts, run_at, last_error FROM jobs WHERE id = ?", job_id).to_array()
        return rows[0].to_py() if rows else None

    def counts(self) -> dict[str, int]:
        """How many jobs are queued, done and dead."""
        counts = {"queued": 0, "done": 0, "dead": 0}
        for row in self.sql.exec("SELECT status, count(*) AS n FROM jobs GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    async def alarm(self, info: durable.AlarmInfo) -> None:
        """Run one batch of due jobs, then set the alarm for the next one."""
        now = self.ctx.now_ms()
        # Jobs due by the alarm's own time too: an alarm run early (durable.testing.run_alarm in a
        # test) runs the jobs it was set for.
        due = self.sql.exec(
            "SELECT id, kind, payload, attempts FROM jobs WHERE status = 'queued' AND run_at <= ? ORDER BY run_at, id LIMIT ?",
            max(now, info.scheduled_time),
            BATCH_SIZE,
        ).to_array()  # read it all now: other calls may change the table at each await below
        for row in due:
            try:
                await HANDLERS[row["kind"]](json.loads(row["payload"]))
            except Unavailable:
                if info.retry_count < ALARM_RETRIES_TRUSTED:
                    raise  # the runtime retries the alarm with exponential backoff
                await self.ctx.storage.set_alarm(now + OUTAGE_PAUSE_MS)  # replaces the retry
                return
            except Exception as exc:
                self._failed(row["id"], row["attempts"] + 1, f"{type(exc).__name__}: {exc}")
            else:
                self.sql.exec("UPDATE jobs SET status = 'done', attempts = attempts + 1 WHERE id = ?", row["id"])
        await self._schedule_next()

    def _failed(self, job_id: int, attempts: int, error: str) -> None:
        if attempts >= MAX_ATTEMPTS:
            self.sql.exec(
                "UPDATE jobs SET status = 'dead', attempts = ?, last_error = ? WHERE id = ?", attempts, error, job_id
            )
        else:
            run_at = self.ctx.now_ms() + JOB_BACKOFF_MS * 2 ** (attempts - 1)
            self.sql.exec(
                "UPDATE jobs SET attempts = ?, last_error = ?, run_at = ? WHERE id = ?", attempts, error, run_at, job_id
            )

    async def _schedule_next(self) -> None:
        next_at = self.sql.exec("SELECT min(run_at) AS t FROM jobs WHERE status = 'queued'").one()["t"]
        if next_at is None:
            await self.ctx.storage.delete_alarm()
        else:
            await self.ctx.storage.set_alarm(next_at)  # a time already past runs at once: the next batch


# The demo's job kinds: one that succeeds, one that fails its first two attempts.
DELIVERED: list[str] = []
_FLAKY_FAILURES: dict[str, int] = {}


@job("email")
async def send_email(payload: Any) -> None:
    DELIVERED.append(f"email to {payload['to']}")


@job("flaky")
async def flaky(payload: Any) -> None:
    failures = _FLAKY_FAILURES.get(payload, 0)
    if failures < 2:
        _FLAKY_FAILURES[payload] = failures + 1
        raise ConnectionError(f"attempt {failures + 1} of {payload} timed out")
    DELIVERED.append(f"flaky {payload}")


async def demo() -> None:
    """Queue 25 jobs on a mock clock and watch the batches run."""
    clock = MockClock(start=1_800_000_000)
    async with durable.Runtime(clock=clock) as rt:
        queue = rt.namespace(JobQueue).get_by_name("default")
        for n in range(24):
            await queue.enqueue("email", {"to": f"user{n}@example.com"})
        flaky_id = await queue.enqueue("flaky", "webhook", delay_ms=1_000)
        await clock.advance(0)  # the first alarm runs batches until no job is due
        print("after 0 s:", await queue.counts(), f"({len(DELIVERED)} delivered)")
        await clock.advance(1)
        print("after 1 s:", await queue.status(flaky_id))
        await clock.advance(60)
        print("after 61 s:", await queue.status(flaky_id), "; last:", DELIVERED[-1])


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None).parse_args()
    asyncio.run(demo())
