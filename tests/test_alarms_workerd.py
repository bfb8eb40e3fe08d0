"""Alarm behaviour that once differed from workerd's (measured with miniflare 4, compatibility date 2026-04-07)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable
from durable.testing import MockClock

T0 = 1_700_000_000
T0_MS = T0 * 1000


class Alarmed(durable.DurableObject):
    async def arm(self, when: Any) -> None:
        await self.ctx.storage.set_alarm(when)

    async def get(self) -> int | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: durable.AlarmInfo) -> None:
        pass


@pytest.fixture
async def rt() -> AsyncIterator[durable.Runtime]:
    async with durable.Runtime(clock=MockClock(T0)) as runtime:
        yield runtime


class TestSetAlarmArguments:
    @pytest.mark.parametrize("when", ["12345678901234", "soon", None, True, False, b"1", [T0_MS], {}])
    async def test_not_a_number_or_date_has_workerds_message(self, rt: durable.Runtime, when: Any) -> None:
        """Neither a number nor a date: workerd raises TypeError: Failed to execute 'setAlarm' on
        'DurableObjectStorage': parameter 1 is not of type 'date'. (for a string, null, a boolean,
        an object), and nothing is set."""
        stub = rt.namespace(Alarmed).get_by_name("a")
        message = r"^Failed to execute 'setAlarm' on 'DurableObjectStorage': parameter 1 is not of type 'date'\.$"
        with pytest.raises(TypeError, match=message):
            await stub.arm(when)
        assert await stub.get() is None
