"""Point-in-time recovery under ``kill -9``: the history never holds a state that never existed.

The crash worker (``tests/crash_worker.py --pitr``) runs the ``Ledger`` load of the crash test with
history on; it is killed with SIGKILL at random moments, round after round, on one directory. Then
every state of every object's history is rebuilt, offline, from the log alone, and checked:

- each is a state the object could have had: ``n_copy == n`` and the log is exactly ``1..n``
  (a batch is never half in a state);
- states follow each other: ``n`` and ``solo`` never go down from one state to the next (nothing
  restores, so a state older than its predecessor would be a state that never existed in that order);
- the last state is exactly what the database holds, and a restore through the API brings back
  an earlier one.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import durable
from durable._codec import decode
from durable._history import History
from durable._history_log import unwal as _unwal

HERE = Path(__file__).resolve().parent
WORKER = HERE / "crash_worker.py"
ROUNDS = int(os.environ.get("DURABLE_PITR_CRASH_ROUNDS", "8"))
SEED = int(os.environ.get("DURABLE_CRASH_SEED", "20240517"))


def _kill_round(directory: Path, rng: random.Random, acks_before_kill: int) -> None:
    """Run the worker until it printed ``acks_before_kill`` ACK lines (or 30 s), then SIGKILL it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))
    with subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(directory),
            "--pitr",
            "--seed",
            str(rng.randrange(2**32)),
            "--lifetime",
            "60",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        seen = 0
        try:
            while seen < acks_before_kill and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                seen += line.startswith(b"ACK")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


def _state(image: bytes) -> dict[str, Any]:
    """The KV pairs of a database image."""
    conn = sqlite3.connect(":memory:")
    try:
        if image:
            conn.deserialize(_unwal(image))
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "_cf_KV" not in tables:
            return {}
        return {key: _decoded(value) for key, value in conn.execute("SELECT key, value FROM _cf_KV")}
    finally:
        conn.close()


@functools.cache
def _decoded(value: bytes) -> Any:
    """``decode(value)``, once per distinct value: the ~2,000 states share most of their values
    (a log entry never changes once written), and decoding them again was half the test's time.
    The values are only read."""
    return decode(value)


def _check_consistent(kv: dict[str, Any], where: str) -> None:
    n = kv.get("n") or 0
    assert kv.get("n_copy", 0) == n or (n == 0 and "n_copy" not in kv), f"{where}: n={n}, n_copy={kv.get('n_copy')}"
    log = {int(key[4:]): value["n"] for key, value in kv.items() if key.startswith("log:")}
    assert log == {i: i for i in range(1, n + 1)}, f"{where}: the log is not exactly 1..{n}"


@pytest.mark.slow
class TestKillNineWithHistory:
    @pytest.mark.timeout(120 + 30 * ROUNDS)
    def test_every_state_in_the_history_existed(self, tmp_path: Path) -> None:
        """After many kill -9 rounds, every state the history can rebuild is whole and in order."""
        import asyncio

        from crash_worker import OBJECTS, Ledger

        rng = random.Random(SEED)
        directory = tmp_path / "state"
        for _ in range(ROUNDS):
            _kill_round(directory, rng, rng.choice([0, 1, 20, 200, 800]))

        async def reopen() -> dict[str, Any]:
            async with durable.Runtime(directory, point_in_time_recovery=True) as rt:
                ns = rt.namespace(Ledger)
                return {name: await ns.get_by_name(name).snapshot() for name in OBJECTS}

        final = asyncio.run(reopen())  # opening recovers what the last kill left in the WALs
        checked = 0
        for log_file in sorted((directory / "Ledger").glob("*.history")):
            history = History(log_file, namespace="Ledger", hexid=log_file.stem, now_ms=lambda: int(time.time() * 1000))
            previous = (0, 0)
            states = history.states()
            assert states, f"{log_file.name}: an empty history"
            kv: dict[str, Any] = {}
            for seq, _ in states:
                kv = _state(history.image_at(seq))
                where = f"{log_file.name} state {seq}"
                _check_consistent(kv, where)
                current = (kv.get("n") or 0, kv.get("solo") or 0)
                assert current[0] >= previous[0] and current[1] >= previous[1], f"{where}: went back from {previous}"
                previous = current
                checked += 1
            snapshot = next(s for s in final.values() if s["n"] == kv.get("n") and s["solo"] == kv.get("solo"))
            assert snapshot["log"] == {i: i for i in range(1, (kv.get("n") or 0) + 1)}
        assert checked > ROUNDS

    @pytest.mark.timeout(120)
    def test_restore_after_a_crash(self, tmp_path: Path) -> None:
        """A bookmark for a moment before the kill restores exactly the state of that moment."""
        import asyncio

        from crash_worker import Ledger

        directory = tmp_path / "state"
        _kill_round(directory, random.Random(SEED), 300)

        async def body() -> None:
            async with durable.Runtime(directory, point_in_time_recovery=True) as rt:
                ns = rt.namespace(Ledger)
                stub = ns.get_by_name("alpha")
                await stub.snapshot()  # opening the object recovers what the kill left in its WAL
                log_file = next((directory / "Ledger").glob(f"{stub.id}.history"))
                history = History(log_file, namespace="Ledger", hexid=str(stub.id), now_ms=rt.clock.time_ms)
                states = history.states()
                middle = states[len(states) // 2][1]
                expected = _state(history.image_at([seq for seq, at in states if at <= middle][-1]))

                async def restore(obj: Any, ctx: durable.State) -> None:
                    await ctx.storage.on_next_session_restore_bookmark(await ctx.storage.get_bookmark_for_time(middle))

                await durable.testing.run_in_object(stub, restore)
                await durable.testing.evict(stub)
                after = await ns.get_by_name("alpha").snapshot()
                assert after["n"] == expected.get("n") and after["solo"] == expected.get("solo")
                _check_consistent(
                    {
                        "n": after["n"],
                        "n_copy": after["n_copy"],
                        **{f"log:{k}": {"n": v} for k, v in after["log"].items()},
                    },
                    "restored",
                )

        asyncio.run(body())


_CRASHING = """
import os, sys
from pathlib import Path
from durable._history import History
from durable._sqlite import connect
file = Path(sys.argv[1])
conn = connect(file)
history = History(file.with_suffix(".history"), namespace="N", hexid="h", now_ms=lambda: 1_700_000_000_000)
history.opened(conn, file)
conn.execute("CREATE TABLE t (v)")
history.committed(conn, file)
for i in range(3):
    conn.execute("INSERT INTO t VALUES (?)", (i,))
    history.committed(conn, file)
conn.execute("INSERT INTO t VALUES (99)")  # committed by SQLite; the process dies before the history copies it
with open(file.with_suffix(".history"), "ab") as log:
    log.write(b"\\x10\\x00\\x00\\x00torn")  # and an append was torn in the middle
os._exit(0)
"""


class TestWalRecovery:
    def test_commit_missing_from_the_history_is_taken_from_the_wal(self, tmp_path: Path) -> None:
        """A commit that reached SQLite but not the history (killed in between) is recovered; a torn append is dropped."""
        from durable._sqlite import connect

        file = tmp_path / "obj.sqlite"
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        subprocess.run([sys.executable, "-c", _CRASHING, str(file)], check=True, env=env, timeout=60)
        assert Path(str(file) + "-wal").stat().st_size > 32  # the kill left the WAL behind
        conn = connect(file)
        history = History(file.with_suffix(".history"), namespace="N", hexid="h", now_ms=lambda: 1_700_000_000_000)
        history.opened(conn, file)
        rows = [[row[0] for row in _table(history.image_at(seq))] for seq, _ in history.states()]
        assert rows == [[], [], [0], [0, 1], [0, 1, 2], [0, 1, 2, 99]]
        conn.close()


def _table(image: bytes) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(":memory:")
    try:
        if image:
            conn.deserialize(_unwal(image))
        if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0]:
            return []
        return conn.execute("SELECT v FROM t ORDER BY rowid").fetchall()
    finally:
        conn.close()
