"""Point-in-time recovery: deviations found by probing (see ``docs/recovery.md``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import durable
from durable.testing import MockClock, evict

T0 = 1_700_000_000
DAY = 24 * 3600


class Pit(durable.DurableObject):
    async def put(self, key: str, value: Any) -> None:
        await self.ctx.storage.put(key, value)

    async def get(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def bookmark(self) -> str:
        return await self.ctx.storage.get_current_bookmark()

    async def restore(self, bookmark: str) -> str:
        return await self.ctx.storage.on_next_session_restore_bookmark(bookmark)


class TestLogGrowth:
    async def test_restarts_without_writes_do_not_grow_the_log(self, tmp_path: Path) -> None:
        """Each clean close recorded a CLOSE (45 bytes) that nothing ever dropped: an object only read,
        and evicted between reads, grew its log forever (compaction keeps what follows the last state)."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            await evict(stub)
            (log,) = tmp_path.rglob("*.history")
            size = log.stat().st_size
            for _ in range(5):
                assert await stub.get("k") == 1
                await evict(stub)
                await clock.advance(DAY)
            assert log.stat().st_size == size
            bookmark = await stub.bookmark()
            await stub.put("k", 2)
            await stub.restore(bookmark)
            await evict(stub)
            assert await stub.get("k") == 1

    async def test_the_same_restore_asked_for_again_does_not_grow_the_log(self, tmp_path: Path) -> None:
        """Each on_next_session_restore_bookmark() appended a REQUEST record, the same one too: a
        session asking again and again (a retried request, without abort()) grew the log forever."""
        clock = MockClock(start=T0)
        async with durable.Runtime(tmp_path, clock=clock, point_in_time_recovery=True) as rt:
            stub = rt.namespace(Pit).get_by_name("a")
            await stub.put("k", 1)
            bookmark = await stub.bookmark()
            await stub.put("k", 2)
            undo = await stub.restore(bookmark)
            (log,) = tmp_path.rglob("*.history")
            size = log.stat().st_size
            for _ in range(5):
                assert await stub.restore(bookmark) == undo
            assert log.stat().st_size == size
            await evict(stub)
            assert await stub.get("k") == 1
            await stub.restore(undo)
            await evict(stub)
            assert await stub.get("k") == 2


class TestTimeArgument:
    async def test_a_date_without_time_says_what_to_pass(self) -> None:
        """``get_bookmark_for_time(date.today())`` said "parameter 1 is not of type 'date'" for a date,
        workerd's words for a value that is no JavaScript Date; it now says what to pass instead."""

        class Dates(durable.DurableObject):
            async def for_day(self) -> str:
                return await self.ctx.storage.get_bookmark_for_time(dt.date(2023, 11, 14))  # type: ignore[arg-type]

        async with durable.Runtime(clock=MockClock(start=T0), point_in_time_recovery=True) as rt:
            with pytest.raises(TypeError, match=r"not of type 'date'\. \(a datetime\.date has no time of day"):
                await rt.namespace(Dates).get_by_name("a").for_day()
