"""`durable serve`: argument parsing, the file convention, and the real server in a subprocess."""

from __future__ import annotations

import asyncio
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from durable._cli import (
    DEFAULT_HOST,
    DEFAULT_PERSIST,
    DEFAULT_PORT,
    AppLoadError,
    _bind,
    _ConnectionLimits,
    build_parser,
    load_app,
    main,
)
from durable._serve_limits import default_max_connections

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "counter.py"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SELECT = "Select a Durable Object to contact by using the `name` URL query string parameter. e.g. ?name=A"

APP_HEADER = """
import durable

class Counter(durable.DurableObject):
    async def fetch(self, request):
        return durable.Response("0")

class Worker(durable.WorkerEntrypoint):
    async def fetch(self, request):
        return durable.Response("hi")
"""


def write_app(tmp_path: Path, body: str, name: str = "app.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


class TestArguments:
    def test_defaults(self) -> None:
        """serve defaults to 127.0.0.1:8787 with storage in ./.durable."""
        args = build_parser().parse_args(["serve", "app.py"])
        assert (args.host, args.port, args.persist, args.in_memory) == ("127.0.0.1", 8787, ".durable", False)
        assert (DEFAULT_HOST, DEFAULT_PORT, DEFAULT_PERSIST) == ("127.0.0.1", 8787, ".durable")

    def test_options(self) -> None:
        """--host, --port, --persist and --in-memory are parsed."""
        args = build_parser().parse_args(["serve", "a.py", "--host", "0.0.0.0", "--port", "9000", "--persist", "d"])
        assert (args.host, args.port, args.persist) == ("0.0.0.0", 9000, "d")
        assert build_parser().parse_args(["serve", "a.py", "--in-memory"]).in_memory

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help exits 0 and describes the serve command and its options."""
        assert main(["--help"]) == 0
        assert "serve" in capsys.readouterr().out
        assert main(["serve", "--help"]) == 0
        out = capsys.readouterr().out
        for option in ("--host", "--port", "--persist", "--in-memory", "bindings"):
            assert option in out

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["serve"],
            ["serve", "a.py", "--persist", "d", "--in-memory"],
            ["serve", "a.py", "--port", "x"],
            ["serve", "a.py", "--port", "70000"],
            ["bogus"],
        ],
    )
    def test_usage_errors(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Usage errors exit with code 2 and a message."""
        assert main(argv) == 2
        assert "error" in capsys.readouterr().err

    def test_console_script(self) -> None:
        """The installed `durable` command runs main() (skipped when the package is not installed)."""
        script = Path(sys.executable).with_name("durable")
        if not script.exists():
            pytest.skip("the durable console script is not installed next to this interpreter")
        done = subprocess.run([str(script), "serve", "--help"], capture_output=True, text=True, timeout=STARTUP_TIMEOUT)
        assert done.returncode == 0
        assert "--in-memory" in done.stdout

    def test_uvicorn_missing(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        """Without uvicorn, serve exits 1 and says to install durable-objects[server]."""
        monkeypatch.setitem(sys.modules, "uvicorn", None)
        assert main(["serve", str(EXAMPLE)]) == 1
        assert "pip install 'durable-objects[server]'" in capsys.readouterr().err


class TestQuietShutdown:
    @pytest.mark.parametrize(
        ("message", "said"),
        [
            ("Exception in ASGI application\n", "a request was cancelled: the server stopped before it finished"),
            ("Exception in 'lifespan' protocol\n", "the server's startup or shutdown was cancelled (stopped twice)"),
        ],
    )
    def test_a_cancellation_at_shutdown_is_one_line(self, message: str, said: str) -> None:
        """uvicorn's report of a request (or the lifespan) cancelled while the server stops is one
        warning line without a traceback; any other exception keeps its traceback."""
        import asyncio
        import logging

        from durable._cli import _quiet_shutdown

        def record(exc: BaseException) -> logging.LogRecord:
            return logging.LogRecord("uvicorn.error", logging.ERROR, "x", 1, message, (), (type(exc), exc, None))

        cancelled = record(asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded"))
        assert _quiet_shutdown(cancelled)
        assert (cancelled.getMessage(), cancelled.levelname, cancelled.exc_info) == (said, "WARNING", None)
        failed = record(ValueError("a bug"))
        assert _quiet_shutdown(failed) and failed.exc_info is not None and failed.levelname == "ERROR"


class TestLoadApp:
    def test_file_not_found(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file exits 2 naming it."""
        assert main(["serve", str(tmp_path / "nope.py")]) == 2
        assert "file not found" in capsys.readouterr().err

    def test_a_file_that_fails_to_load_shows_its_own_frames(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file that raises while loading: its traceback, without durable's frames or Python's
        import machinery; a SyntaxError shows its line. sys.exit() there is said, not silent."""
        for code, words in [
            ("import nosuchmodule_xyz\n", "No module named 'nosuchmodule_xyz'"),
            ("def f(:\n    pass\n", "SyntaxError"),
        ]:
            path = write_app(tmp_path, code)
            assert main(["serve", str(path)]) == 2
            err = capsys.readouterr().err
            assert "raised while loading" in err and words in err
            assert "_cli.py" not in err and "<frozen importlib" not in err
        path = write_app(tmp_path, "import sys\nsys.exit(3)\n")
        assert main(["serve", str(path)]) == 2
        assert "exited while loading (sys.exit(3))" in capsys.readouterr().err

    def test_a_directory_that_is_no_project(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory without a wrangler file is said to be no Python Workers project."""
        assert main(["serve", str(tmp_path)]) == 2
        assert "is a directory without wrangler.jsonc, wrangler.json or wrangler.toml" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("persist", "words"),
        [
            ("", "empty: give a directory"),
            ("afile", "exists and is not a directory"),
            ("afile/sub", "is not a directory"),
        ],
    )
    def test_bad_persist_directories(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], persist: str, words: str
    ) -> None:
        """--persist that cannot be a storage directory is refused before anything starts (an
        empty one used to say "in memory" and write into the current directory)."""
        (tmp_path / "afile").write_text("x")
        value = str(tmp_path / persist) if persist else ""
        assert main(["serve", str(EXAMPLE), "--persist", value]) == 2
        assert words in capsys.readouterr().err

    def test_a_persist_directory_that_cannot_be_checked(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A --persist whose parent cannot be searched (EACCES) is a usage error, not a traceback."""

        def refused(self: Path) -> bool:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Path, "exists", refused)
        assert main(["serve", str(EXAMPLE), "--persist", str(tmp_path / "locked" / "state")]) == 2
        assert "cannot be used: Permission denied" in capsys.readouterr().err

    def test_no_worker(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file without Worker exits 2 saying so."""
        path = write_app(tmp_path, "bindings = {}\n")
        assert main(["serve", str(path)]) == 2
        assert "defines no `Worker`" in capsys.readouterr().err

    def test_worker_not_a_class(self, tmp_path: Path) -> None:
        """A Worker that is not a class with fetch is refused."""
        path = write_app(tmp_path, "Worker = 3\n")
        with pytest.raises(AppLoadError, match="must be a class with a fetch method"):
            load_app(path)

    def test_bindings_not_a_dict(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """bindings that is not a dict exits 2 saying so."""
        path = write_app(tmp_path, APP_HEADER + "bindings = [Counter]\n")
        assert main(["serve", str(path)]) == 2
        assert "`bindings` must be a dict" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("int", "must be a durable.DurableObject subclass"),
            ("Worker", "must be a durable.DurableObject subclass"),
            ("{'klass': Counter}", "unknown key 'klass'"),
            ("{'storage': 'kv'}", 'needs a "class" key'),
            ("{'class': Counter, 'storage': 'disk'}", 'use "sqlite" or "kv"'),
        ],
    )
    def test_bad_binding_value(
        self, tmp_path: Path, value: str, message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A binding that is not a DurableObject subclass (or a valid dict form) exits 2 naming it."""
        path = write_app(tmp_path, APP_HEADER + f"bindings = {{'COUNTER': {value}}}\n")
        assert main(["serve", str(path)]) == 2
        err = capsys.readouterr().err
        assert "'COUNTER'" in err and message in err

    def test_bad_binding_name(self, tmp_path: Path) -> None:
        """A binding name that cannot be an attribute of env is refused."""
        path = write_app(tmp_path, APP_HEADER + "bindings = {'MY COUNTER': Counter}\n")
        with pytest.raises(AppLoadError, match="binding name 'MY COUNTER'"):
            load_app(path)

    def test_bad_vars(self, tmp_path: Path) -> None:
        """vars must be a dict with str keys, and may not reuse a binding name."""
        with pytest.raises(AppLoadError, match="`vars` must be a dict"):
            load_app(write_app(tmp_path, APP_HEADER + "vars = [1]\n"))
        with pytest.raises(AppLoadError, match="both a binding and a var"):
            load_app(write_app(tmp_path, APP_HEADER + "bindings = {'C': Counter}\nvars = {'C': 1}\n", "b.py"))

    def test_file_that_raises(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that raises while loading exits 2 with its traceback."""
        path = write_app(tmp_path, "raise RuntimeError('broken app')\n")
        assert main(["serve", str(path)]) == 2
        err = capsys.readouterr().err
        assert "raised while loading" in err and "broken app" in err

    def test_full_declaration(self, tmp_path: Path) -> None:
        """Worker, both binding forms and vars are collected; `default` is accepted for Worker."""
        path = write_app(
            tmp_path,
            APP_HEADER.replace("class Worker", "class Front")
            + "default = Front\n"
            + "bindings = {'A': Counter, 'B': {'class': Counter, 'storage': 'kv'}}\n"
            + "vars = {'GREETING': 'hello'}\n",
        )
        app = load_app(path)
        assert app.worker.__name__ == "Front"
        assert [(b.name, b.cls.__name__, b.storage) for b in app.bindings] == [
            ("A", "Counter", None),
            ("B", "Counter", "kv"),
        ]
        assert app.vars == {"GREETING": "hello"}

    def test_main_block_does_not_run(self, tmp_path: Path) -> None:
        """The file is not run as __main__, so its command-line block stays idle."""
        path = write_app(tmp_path, APP_HEADER + "if __name__ == '__main__':\n    raise SystemExit(9)\n")
        assert load_app(path).worker.__name__ == "Worker"

    def test_neighbour_imports(self, tmp_path: Path) -> None:
        """The file can import modules that sit next to it."""
        write_app(tmp_path, "VALUE = 42\n", "helper_for_durable_test.py")
        path = write_app(tmp_path, APP_HEADER + "from helper_for_durable_test import VALUE\nvars = {'V': VALUE}\n")
        try:
            assert load_app(path).vars == {"V": 42}
        finally:
            sys.modules.pop("helper_for_durable_test", None)


class TestBind:
    def test_listening_socket_says_tcp(self) -> None:
        """The listening socket names IPPROTO_TCP, so asyncio sets TCP_NODELAY on connections."""
        with _bind("127.0.0.1", 0) as sock:
            assert sock.proto == socket.IPPROTO_TCP
            assert sock.getsockname()[1] != 0


# ---------------------------------------------------------------------------------------------
# The real server


class ServerProcess:
    """`python -m durable serve ...` in a subprocess on a free port, killed in close() whatever happens."""

    def __init__(self, tmp_path: Path, *args: str, command: list[str] | None = None) -> None:
        self.stderr_path = tmp_path / f"server-{os.urandom(4).hex()}.log"
        self._stderr: IO[str] = self.stderr_path.open("w")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        cmd = command or [sys.executable, "-m", "durable", "serve", str(EXAMPLE)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", "0", "--no-access-log", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self) -> str:
        """Wait (bounded) for the 'serving ... on URL' line and return the URL."""
        while True:
            try:
                line = self.lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"server did not start in {STARTUP_TIMEOUT}s: {self.diagnostics()}") from None
            if line is None:
                raise AssertionError(f"server exited before serving: {self.diagnostics()}")
            if line.startswith("durable: serving"):
                self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
                return self.url

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send signum and wait (bounded) for the exit code."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=STOP_TIMEOUT)

    def diagnostics(self) -> str:
        self._stderr.flush()
        return f"stdout={''.join(self.stdout)!r} stderr={self.stderr_path.read_text()[-3000:]!r}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def serving_source(cls, folder: Path, file_name: str, source: str) -> Iterator[ServerProcess]:
        """For a module-scoped fixture: ``source`` written to ``folder/file_name`` and served in memory."""
        app = folder / file_name
        app.write_text(source)
        with cls(folder, "--in-memory", command=[sys.executable, "-m", "durable", "serve", str(app)]) as proc:
            proc.wait_ready()
            yield proc


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start servers with serve(*args); every one started is killed at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, command: list[str] | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path, *args, command=command)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()


def get(url: str) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.get(url)


def count_text(base: str, path: str) -> str:
    resp = get(base + path)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain;charset=UTF-8"
    return resp.text


@pytest.mark.slow
class TestServeSubprocess:
    def test_rows_and_restart(self, serve: Any, tmp_path: Path) -> None:
        """The served counter answers the table's rows, and its counts survive a clean restart."""
        state = str(tmp_path / "state")
        server = serve("--persist", state)
        base = server.url
        assert base.startswith("http://127.0.0.1:")
        assert f"(storage: {state})" in server.stdout[0]
        assert count_text(base, "/") == SELECT
        assert [count_text(base, "/increment?name=A") for _ in range(3)][-1] == "Durable Object 'A' count: 3"
        assert count_text(base, "/decrement?name=A") == "Durable Object 'A' count: 2"
        assert count_text(base, "/foo?name=A") == "Durable Object 'A' count: Not found"
        assert count_text(base, "/?name=%C3%A9%20x") == "Durable Object 'é x' count: 0"
        assert server.stop(signal.SIGTERM) == 0, server.diagnostics()
        assert any("stopped; storage closed" in line for line in server.stdout), server.diagnostics()

        again = serve("--persist", state)
        assert count_text(again.url, "/?name=A") == "Durable Object 'A' count: 2"
        assert again.stop(signal.SIGINT) == 0, again.diagnostics()
        assert any("stopped; storage closed" in line for line in again.stdout), again.diagnostics()

    def test_default_persist_dir(self, serve: Any, tmp_path: Path) -> None:
        """Without --persist, storage goes to ./.durable in the working directory."""
        server = serve()
        assert "(storage: .durable)" in server.stdout[0]
        count_text(server.url, "/increment?name=A")
        assert server.stop() == 0
        assert (tmp_path / ".durable").is_dir()

    def test_in_memory(self, serve: Any) -> None:
        """--in-memory keeps nothing across a restart."""
        server = serve("--in-memory")
        assert "(storage: in memory)" in server.stdout[0]
        assert count_text(server.url, "/increment?name=A") == "Durable Object 'A' count: 1"
        assert server.stop() == 0
        again = serve("--in-memory")
        assert count_text(again.url, "/?name=A") == "Durable Object 'A' count: 0"

    def test_example_runs_as_a_script(self, serve: Any) -> None:
        """python examples/counter.py serves the same counter."""
        server = serve("--in-memory", command=[sys.executable, str(EXAMPLE)])
        assert count_text(server.url, "/increment?name=A") == "Durable Object 'A' count: 1"
        assert server.stop() == 0

    def test_worker_exception_is_logged(self, serve: Any, tmp_path: Path) -> None:
        """A Worker that raises answers 500 and its traceback appears in the server's log."""
        path = write_app(
            tmp_path,
            "import durable\nclass Worker(durable.WorkerEntrypoint):\n"
            "    async def fetch(self, request):\n        raise ValueError('no luck here')\n",
        )
        server = serve("--in-memory", command=[sys.executable, "-m", "durable", "serve", str(path)])
        resp = get(server.url + "/")
        assert (resp.status_code, resp.text) == (500, "Worker threw exception")
        assert server.stop() == 0
        log = server.stderr_path.read_text()
        assert "ERROR" in log and "durable.asgi" in log
        assert "ValueError: no luck here" in log and "Traceback" in log

    def test_a_class_bound_twice_is_one_namespace(self, serve: Any, tmp_path: Path) -> None:
        """`bindings = {"A": Counter, "B": Counter}` gives env.A and env.B one namespace, as two
        wrangler bindings of one class_name are in workerd (miniflare 4, 2026-04-07: the same ids,
        an increment through A seen through B)."""
        path = write_app(
            tmp_path,
            "import durable\nclass Worker(durable.WorkerEntrypoint):\n"
            "    async def fetch(self, request):\n"
            "        await self.env.A.get_by_name('x').fetch('http://c/increment')\n"
            "        r = await self.env.B.get_by_name('x').fetch('http://c/')\n"
            "        same = self.env.A.id_from_name('x') == self.env.B.id_from_name('x')\n"
            "        return durable.Response(f'{await r.text()} {same}')\n"
            "bindings = {'A': durable.Counter, 'B': durable.Counter}\n",
        )
        server = serve("--in-memory", command=[sys.executable, "-m", "durable", "serve", str(path)])
        assert get(server.url + "/").text == "1 True"
        assert server.stop() == 0

    def test_port_in_use(self, tmp_path: Path) -> None:
        """A port already in use exits 1 with a message."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            env = dict(os.environ, PYTHONPATH=str(REPO))
            done = subprocess.run(
                [sys.executable, "-m", "durable", "serve", str(EXAMPLE), "--port", str(port), "--in-memory"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT,
            )
        assert done.returncode == 1
        assert "cannot listen" in done.stderr

    async def test_sigkill_keeps_every_acknowledged_increment(self, serve: Any, tmp_path: Path) -> None:
        """After kill -9 under load, the count on disk covers every increment a client saw acknowledged."""
        state = str(tmp_path / "state")
        server = serve("--persist", state)
        acked: list[int] = []
        attempts = 0
        killed = asyncio.Event()

        async def client_loop(client: httpx.AsyncClient) -> None:
            nonlocal attempts
            while not killed.is_set():
                attempts += 1
                try:
                    resp = await client.get("/increment?name=K")
                except httpx.HTTPError:
                    return
                assert resp.status_code == 200
                acked.append(int(resp.text.rsplit(" ", 1)[1]))
                if len(acked) >= 60 and not killed.is_set():
                    server.proc.kill()  # SIGKILL, with other requests in flight
                    killed.set()

        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=limits) as client:
            await asyncio.wait_for(asyncio.gather(*(client_loop(client) for _ in range(16))), timeout=60)
        assert server.proc.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL

        again = serve("--persist", state)
        final = int(count_text(again.url, "/?name=K").rsplit(" ", 1)[1])
        assert final >= max(acked)
        assert final >= len(acked)
        assert final <= attempts

    def test_second_server_on_the_same_directory_is_refused(self, serve: Any, tmp_path: Path) -> None:
        """A second server on a persistence directory in use exits 1 instead of sharing it."""
        state = str(tmp_path / "state")
        serve("--persist", state)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        done = subprocess.run(
            [sys.executable, "-m", "durable", "serve", str(EXAMPLE), "--port", "0", "--persist", state],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
        )
        assert done.returncode == 1, done.stderr
        assert "durable: error:" in done.stderr


# ---------------------------------------------------------------------------------------------
# Connection bounds: header timeout, keep-alive timeout, connection cap


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=STARTUP_TIMEOUT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


class TestConnectionBoundArguments:
    def test_defaults(self) -> None:
        """The bounds default to a 10 s header timeout, 5 s keep-alive and a derived connection cap."""
        args = build_parser().parse_args(["serve", "app.py"])
        assert (args.header_timeout, args.keep_alive_timeout, args.max_connections) == (10.0, 5.0, None)
        limits = _ConnectionLimits.from_args(args)
        assert limits.max_connections == default_max_connections()
        assert 8 <= default_max_connections() <= 1000

    def test_zero_turns_off(self) -> None:
        """0 turns the header timeout and the connection cap off."""
        args = build_parser().parse_args(["serve", "a.py", "--header-timeout", "0", "--max-connections", "0"])
        limits = _ConnectionLimits.from_args(args)
        assert (limits.header_timeout, limits.max_connections) == (None, None)

    @pytest.mark.parametrize(
        "argv",
        [
            ["--header-timeout", "-1"],
            ["--header-timeout", "nan"],
            ["--keep-alive-timeout", "x"],
            ["--max-connections", "-3"],
            ["--max-connections", "1.5"],
        ],
    )
    def test_bad_values(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """A negative, non-numeric or infinite bound is a usage error naming the option."""
        assert main(["serve", "a.py", *argv]) == 2
        assert argv[0] in capsys.readouterr().err

    def test_cap_follows_the_descriptor_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Under a 1024-descriptor limit the default cap is 240 connections."""
        import resource

        monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
        assert default_max_connections() == 240


@pytest.mark.slow
@pytest.mark.parametrize("http", ["h11", "httptools"])  # both of uvicorn's parsers are guarded
class TestConnectionBounds:
    def test_silent_connection_is_closed(self, serve: Any, http: str) -> None:
        """A connection that sends nothing is closed after the header timeout."""
        server = serve("--in-memory", "--http", http, "--header-timeout", "0.5")
        with _connect(server.url) as sock:
            assert _read_until_closed(sock) == b""

    def test_slow_request_head_is_closed(self, serve: Any, http: str) -> None:
        """A client sending its request head a byte at a time is dropped before it completes."""
        server = serve("--in-memory", "--http", http, "--header-timeout", "0.5")
        head = b"GET /?name=A HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n"
        with _connect(server.url) as sock:
            closed = False
            for byte in head:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
                ready = select.select([sock], [], [], 0.05)[0]
                try:
                    if ready and sock.recv(4096) == b"":
                        closed = True
                        break
                except ConnectionResetError:
                    # Dropped while a byte of ours was unread: the kernel answers with a reset.
                    closed = True
                    break
            assert closed, "the server kept a connection whose head never completed"

    def test_idle_keep_alive_connection_is_closed(self, serve: Any, http: str) -> None:
        """After a response, an idle keep-alive connection is closed after the keep-alive timeout."""
        server = serve("--in-memory", "--http", http, "--keep-alive-timeout", "0.5")
        with _connect(server.url) as sock:
            sock.sendall(b"GET /?name=A HTTP/1.1\r\nHost: x\r\n\r\n")
            data = _read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 200 ")

    def test_connections_beyond_the_cap_are_refused(self, serve: Any, http: str) -> None:
        """Beyond --max-connections, a new connection gets 503; once idle ones time out, requests work."""
        server = serve("--in-memory", "--http", http, "--max-connections", "3", "--header-timeout", "5")
        idle = [_connect(server.url) for _ in range(3)]
        try:
            with _connect(server.url) as extra:
                assert _read_until_closed(extra).startswith(b"HTTP/1.1 503 ")
            for sock in idle:  # the header timeout frees the slots the idle ones held
                assert _read_until_closed(sock) == b""
            assert count_text(server.url, "/?name=A") == "Durable Object 'A' count: 0"
        finally:
            for sock in idle:
                sock.close()
