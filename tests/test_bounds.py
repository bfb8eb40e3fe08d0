"""Defaults that fit the machine: ``max_live_objects`` derived from the limit on open files."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import durable
from durable._runtime import default_max_live_objects

SCRIPT = textwrap.dedent(
    """
    import asyncio, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    import durable

    class Counter(durable.DurableObject):
        async def increment(self) -> int:
            value = (await self.ctx.storage.get("n")) or 0
            await self.ctx.storage.put("n", value + 1)
            self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (x)")
            return value + 1

    async def main(path: str, objects: int) -> None:
        async with durable.Runtime(path=path) as rt:
            print("default", rt.max_live_objects, flush=True)
            ns = rt.namespace(Counter)
            failed = 0
            for start in range(0, objects, 100):
                results = await asyncio.gather(
                    *(ns.get_by_name(f"o{i}").increment() for i in range(start, start + 100)),
                    return_exceptions=True,
                )
                failed += sum(1 for r in results if r != 1)
            print("failed", failed, flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


class TestMaxLiveObjectsDefault:
    def test_default_follows_the_descriptor_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The default is 160 under a 1024-descriptor limit, 1000 under a large one, and never below 8."""
        for soft, expected in ((1024, 160), (65536, 1000), (10, 8), (resource.RLIM_INFINITY, 1000)):
            monkeypatch.setattr(resource, "getrlimit", lambda which, soft=soft: (soft, soft))
            assert default_max_live_objects() == expected
            assert durable.Runtime().max_live_objects == expected

    def test_explicit_value_wins(self) -> None:
        """max_live_objects= given explicitly is used as is; below 1 is refused."""
        assert durable.Runtime(max_live_objects=5).max_live_objects == 5
        with pytest.raises(ValueError, match="at least 1"):
            durable.Runtime(max_live_objects=0)

    @pytest.mark.parametrize(
        ("options", "error", "words"),
        [
            ({"idle_timeout": "70"}, TypeError, "idle_timeout must be a number of seconds or None, not str"),
            ({"idle_timeout": 10**400}, ValueError, "idle_timeout must be a finite number of seconds >= 0"),
            ({"idle_timeout": -1}, ValueError, "idle_timeout must be a finite number of seconds >= 0"),
            ({"idle_timeout": float("nan")}, ValueError, "idle_timeout must be a finite number"),
            ({"hibernate_after": float("inf")}, ValueError, "hibernate_after must be a finite number"),
            ({"hibernate_after": True}, TypeError, "hibernate_after must be a number of seconds"),
            ({"max_queued_calls": "x"}, TypeError, "max_queued_calls must be an int or None, not str"),
            ({"max_queued_calls": True}, TypeError, "max_queued_calls must be an int or None, not bool"),
            ({"max_queued_calls": 1.5}, TypeError, "max_queued_calls must be an int or None, not float"),
            ({"max_queued_calls": 0}, ValueError, "max_queued_calls must be at least 1 (or None), not 0"),
            ({"max_live_objects": 2.0}, TypeError, "max_live_objects must be an int, not float"),
        ],
    )
    def test_bad_options_are_refused_naming_the_option(
        self, options: dict[str, Any], error: type[Exception], words: str
    ) -> None:
        """A bad number option is refused when the runtime is made, with an error that names it
        (it used to be accepted, and failed later in the idle bookkeeping, or evicted at once)."""
        with pytest.raises(error) as info:
            durable.Runtime(**options)
        assert str(info.value).startswith(words)

    def test_good_options_are_kept(self) -> None:
        """Whole seconds, fractions and None are accepted as given."""
        rt = durable.Runtime(idle_timeout=0, max_queued_calls=3, hibernate_after=None)
        assert (rt.idle_timeout, rt.max_queued_calls) == (0, 3)
        assert durable.Runtime(idle_timeout=None).idle_timeout is None
        assert durable.Runtime(idle_timeout=2.5).idle_timeout == 2.5

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX descriptor limits")
    def test_defaults_work_under_1024_descriptors(self, tmp_path: Path) -> None:
        """With RLIMIT_NOFILE lowered to 1024, 1000 persisted objects all write (in a subprocess)."""
        script = tmp_path / "touch.py"
        script.write_text(SCRIPT)
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "state"), "1000"],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["default", "160", "failed", "0"]
