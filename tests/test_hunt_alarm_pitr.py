"""Alarms and point-in-time recovery: what a fidelity and robustness hunt found.

Each test fails without the fix it names (see CHANGELOG.md); the workerd measurements are
quoted where workerd has the behaviour (its local back-end has no point-in-time recovery: those
follow Cloudflare's documentation, docs/recovery.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock

T0 = 1_700_000_000


class Clocked(durable.DurableObject):
    """Records each run of its alarm in its storage."""

    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def set_alarm_at(self, ms: int) -> None:
        await self.ctx.storage.set_alarm(ms)

    async def delete_alarm(self) -> None:
        await self.ctx.storage.delete_alarm()

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)

    async def alarm(self, info: durable.AlarmInfo) -> None:
        await self.ctx.storage.put("ran", info.scheduled_time)


_KILLED_AFTER_THE_RESTORE = """
import asyncio, os, sys
import durable
import durable._history
sys.path.insert(0, sys.argv[2])
from durable.testing import MockClock
from test_hunt_alarm_pitr import Clocked, T0

begin = durable._history.History.begin_session

def begin_then_die(self, db, *args):
    restored = begin(self, db, *args)
    if restored:
        os._exit(9)  # killed once the restored state is committed, before the scheduler heard of it
    return restored

durable._history.History.begin_session = begin_then_die

async def main():
    async with durable.Runtime(sys.argv[1], clock=MockClock(start=T0 + 10), point_in_time_recovery=True) as rt:
        await rt.namespace(Clocked).get_by_name("a").get("ran")  # the start applies the restore, and dies

asyncio.run(main())
"""


class TestRestoredAlarmSurvivesACrash:
    @pytest.mark.timeout(120)
    async def test_kill_nine_right_after_a_restore_that_brings_an_alarm_back(self, tmp_path: Path) -> None:
        """``kill -9`` once a restore to a state with an alarm has committed: the alarm still runs.

        The runtime's alarm index (which lists, as a superset, the objects to wake after a restart)
        learnt of the restored alarm only after the restore had committed: killed between the two,
        the restarted runtime never woke the object, and its restored alarm never ran.
        """
        path = tmp_path / "state"
        async with durable.Runtime(path, clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            stub = rt.namespace(Clocked).get_by_name("a")
            await stub.set_alarm_at((T0 + 100) * 1000)
            mark = await stub.bookmark()
            await stub.delete_alarm()
            await stub.restore(mark)
        here = Path(__file__).resolve().parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_THE_RESTORE, str(path), str(here)], env=env, timeout=60, check=False
        )
        assert done.returncode == 9, done
        clock = MockClock(start=T0 + 20)
        async with durable.Runtime(path, clock=clock, point_in_time_recovery=True) as rt:
            ns = rt.namespace(Clocked)
            await clock.advance(100)  # past the restored alarm, without calling the object
            assert await ns.get_by_name("a").get("ran") == (T0 + 100) * 1000
