"""`durable serve --loop/--http`: the event loop and HTTP parser the server runs on."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest
from test_serve import EXAMPLE, count_text, serve  # noqa: F401 - serve is a fixture

from durable._cli import _loop_factory, build_parser, main

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
HAVE_HTTPTOOLS = importlib.util.find_spec("httptools") is not None


class TestStackArguments:
    def test_defaults_are_auto(self) -> None:
        """--loop and --http default to auto."""
        args = build_parser().parse_args(["serve", "app.py"])
        assert (args.loop, args.http) == ("auto", "auto")

    def test_asyncio_loop_factory(self) -> None:
        """--loop asyncio runs on asyncio's own loop even where uvloop is installed."""
        loop = _loop_factory("asyncio")()
        try:
            assert type(loop).__module__.startswith("asyncio")
        finally:
            loop.close()

    def test_auto_falls_back_to_asyncio(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """--loop auto uses asyncio's loop where uvloop is missing."""
        monkeypatch.setitem(sys.modules, "uvloop", None)
        loop = _loop_factory("auto")()
        try:
            assert type(loop).__module__.startswith("asyncio")
        finally:
            loop.close()

    @pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")
    def test_auto_prefers_uvloop(self) -> None:
        """--loop auto uses uvloop where it is installed."""
        loop = _loop_factory("auto")()
        try:
            assert type(loop).__module__.startswith("uvloop")
        finally:
            loop.close()

    @pytest.mark.parametrize(("flag", "module"), [("--loop", "uvloop"), ("--http", "httptools")])
    def test_missing_module_is_a_clear_error(
        self, flag: str, module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Asking for uvloop or httptools where it is missing exits 1 and says what to install."""
        monkeypatch.setitem(sys.modules, module, None)
        assert main(["serve", str(EXAMPLE), flag, module]) == 1
        err = capsys.readouterr().err
        assert f"{flag} {module} needs {module}" in err
        assert "pip install 'durable-objects[server]'" in err


@pytest.mark.slow
class TestStacks:
    @pytest.mark.parametrize(
        ("loop", "http"),
        [
            ("asyncio", "h11"),
            pytest.param(
                "uvloop",
                "httptools",
                marks=pytest.mark.skipif(
                    not (HAVE_UVLOOP and HAVE_HTTPTOOLS), reason="uvloop or httptools is not installed"
                ),
            ),
        ],
    )
    def test_counter_serves_on_each_stack(self, serve: Any, loop: str, http: str) -> None:  # noqa: F811
        """The counter answers, counts and stops cleanly on the pure-Python and the fast stack."""
        server = serve("--in-memory", "--loop", loop, "--http", http)
        for expected in range(1, 4):
            assert count_text(server.url, "/increment?name=A") == f"Durable Object 'A' count: {expected}"
        assert count_text(server.url, "/decrement?name=A") == "Durable Object 'A' count: 2"
        assert server.stop() == 0, server.diagnostics()
