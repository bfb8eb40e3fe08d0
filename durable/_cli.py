"""The ``durable`` command line: ``durable serve FILE.py`` serves a Worker with uvicorn.

The file is plain Python and declares what to serve with module-level names:

- ``Worker``: the :class:`durable.WorkerEntrypoint` subclass that receives HTTP requests
  (``default`` is accepted too, after JavaScript's ``export default``);
- ``bindings``: a dict mapping each binding name to a :class:`durable.DurableObject`
  subclass, or to ``{"class": Cls, "storage": "kv"}`` for the key-value backend; the Worker
  reaches the namespace as ``self.env.<NAME>``;
- ``vars`` (optional): a dict of plain values, also on ``self.env``.

The command opens a :class:`durable.Runtime` on ``--persist DIR`` (default ``./.durable``)
or in memory (``--in-memory``), registers each binding with ``rt.namespace(cls, name=...)`` (a
class bound under several names is one namespace, under its first name, as in workerd),
serves ``durable.asgi_app(Worker, rt)`` and, on SIGINT or SIGTERM, stops accepting
requests, lets the ones in flight finish and closes the runtime, which flushes storage.
It uses only the public API of ``durable``.

``durable inspect DIR [NAMESPACE [NAME_OR_ID]] [--sql QUERY] [--json]`` shows what a persisted
runtime's directory holds, without changing it; it lives in ``_inspect.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Final

from ._cli_messages import RELOAD_UNSUPPORTED, no_worker_message
from .asgi import asgi_app, worker_class_problem

__all__ = ["AppLoadError", "LoadedApp", "build_parser", "load_app", "main", "serve_file"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8787
DEFAULT_PERSIST: Final = ".durable"
#: Seconds that requests in flight get to finish on shutdown (Cloudflare grants 30 s).
GRACEFUL_SHUTDOWN_SECONDS: Final = 30
#: Seconds a client has to send a complete request head (Node's headersTimeout is 60 s; a
#: local server can be stricter).
DEFAULT_HEADER_TIMEOUT: Final = 10.0
#: Seconds an idle keep-alive connection stays open between requests (uvicorn's and Node's 5 s).
DEFAULT_KEEP_ALIVE_TIMEOUT: Final = 5.0

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
#: Ctrl-C before serving began (128 + SIGINT, as a shell reports a process stopped by it).
EXIT_INTERRUPTED: Final = 130

_STORAGE_KINDS: Final = ("sqlite", "kv")
_MISSING_UVICORN: Final = (
    "durable: error: `durable serve` needs uvicorn, which is not installed.\n"
    "Install the server extra: pip install 'durable-objects[server]'"
)


class AppLoadError(Exception):
    """The file given to ``durable serve`` cannot be loaded or does not declare an app."""


@dataclass(frozen=True)
class Binding:
    """One Durable Object namespace to register: ``rt.namespace(cls, name=name, ...)``."""

    name: str
    cls: type
    storage: str | None = None


@dataclass(frozen=True)
class LoadedApp:
    """What a served file declares: its Worker, its bindings and its plain vars."""

    path: Path
    worker: type
    bindings: tuple[Binding, ...]
    vars: dict[str, Any] = field(default_factory=dict)
    #: Called with the runtime once the bindings are registered (Python Workers projects).
    on_runtime: Callable[[Any], None] | None = None
    #: What the loader warns about (a Python Workers project's config), printed before serving.
    warnings: tuple[str, ...] = ()


class _CommandParser(argparse.ArgumentParser):
    """A command's parser; with ``intermixed=True`` its options may come between its positionals.

    ``durable inspect DIR --json NAMESPACE NAME`` is then as ``durable inspect DIR NAMESPACE NAME
    --json``: plain argparse fills the optional positionals before the first option and reports
    the rest as unrecognized arguments.
    """

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed
        self._parsing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = self._parse_known(args, namespace)
        if extras and not self._parsing:
            # Reported here, with this command's usage and the option meant, rather than by the
            # top-level parser, whose usage (`durable [-h] [--version] COMMAND ...`) says nothing
            # of this command's options.
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._did_you_mean(extras)}")
        return parsed, extras

    def _did_you_mean(self, extras: list[str]) -> str:
        import difflib

        names = [name for action in self._actions for name in action.option_strings if name.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.partition("=")[0], names, n=1, cutoff=0.6)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""

    def _parse_known(
        self, args: Sequence[str] | None, namespace: argparse.Namespace | None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self._intermixed or self._parsing:
            return super().parse_known_args(args, namespace)
        self._parsing = True  # parse_known_intermixed_args calls parse_known_args again
        try:
            parsed, extras = self.parse_known_intermixed_args(args, namespace)
            if extras and args is not None and "--" in args:
                # argparse's intermixed parsing mishandles `-- DIR NS -name`; plain parsing,
                # which the command had before, reads it.
                plain = super().parse_known_args(args, namespace)
                if not plain[1]:
                    return plain
            return parsed, extras
        finally:
            self._parsing = False


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``durable`` command."""
    parser = argparse.ArgumentParser(
        prog="durable",
        description="Cloudflare Durable Objects, embeddable in Python.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    commands.required = True
    serve = commands.add_parser(
        "serve",
        help="serve a Worker and its Durable Objects over HTTP (needs uvicorn)",
        description=(
            "Load FILE.py, bind its Durable Object classes to the names in its `bindings` "
            "dict, and serve its `Worker` over HTTP with uvicorn."
        ),
        epilog=(
            "The file defines `Worker` (a durable.WorkerEntrypoint subclass), `bindings = "
            '{"NAME": DurableObjectClass}` (or {"NAME": {"class": Cls, "storage": "kv"}}) and, '
            "optionally, `vars = {...}` for plain env values."
        ),
    )
    serve.add_argument(
        "file",
        metavar="FILE.py|PROJECT",
        help="the Python file that declares the app, or a Python Workers project folder "
        "(or its wrangler.jsonc / wrangler.toml)",
    )
    _add_serve_options(serve)
    inspect = commands.add_parser(
        "inspect",
        intermixed=True,
        help="show what a persisted runtime's directory holds (never changes a file)",
        description=(
            "List the namespaces and objects of a durable.Runtime(path=DIR) directory, or show one "
            "object's decoded key-value entries, SQL tables and alarm, or run one read-only SQL query "
            "on it. A directory held by a live runtime is reported with its PID, not read."
        ),
    )
    inspect.add_argument("directory", metavar="DIR", help="the runtime's storage directory")
    inspect.add_argument("namespace", metavar="NAMESPACE", nargs="?", help="only this namespace")
    inspect.add_argument("object", metavar="NAME_OR_ID", nargs="?", help="one object, by name or 64-hex id")
    inspect.add_argument("--sql", metavar="QUERY", help="run one read-only query on the object")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_serve_options(serve: argparse.ArgumentParser) -> None:
    """The options of ``durable serve`` (all but its FILE.py|PROJECT argument)."""
    serve.add_argument(
        "--host",
        type=_host,
        default=DEFAULT_HOST,
        help=f"interface to listen on (default {DEFAULT_HOST}; an IPv6 address with or without brackets)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"TCP port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    storage = serve.add_mutually_exclusive_group()
    storage.add_argument(
        "--persist",
        metavar="DIR",
        default=DEFAULT_PERSIST,
        help=f"directory that keeps the objects' storage (default ./{DEFAULT_PERSIST})",
    )
    storage.add_argument(
        "--in-memory",
        action="store_true",
        help="keep storage in memory only; it is gone when the server stops",
    )
    serve.add_argument("--reload", action="store_true", help="not supported: says why and what to do")
    serve.add_argument(
        "-e",
        "--env",
        metavar="NAME",
        default=None,
        help="a Python Workers project's wrangler environment: its [env.NAME] section applies, as with "
        "`wrangler dev --env NAME` (bindings and vars are not inherited from the top level)",
    )
    serve.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not log each request",
    )
    serve.add_argument(
        "--header-timeout",
        type=_seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="SECONDS",
        help=f"close a connection that has not sent a complete request head in this time "
        f"(default {DEFAULT_HEADER_TIMEOUT:g}; 0 turns it off)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=_seconds,
        default=DEFAULT_KEEP_ALIVE_TIMEOUT,
        metavar="SECONDS",
        help=f"close an idle keep-alive connection after this time (default {DEFAULT_KEEP_ALIVE_TIMEOUT:g})",
    )
    serve.add_argument(
        "--max-connections",
        type=_count,
        default=None,
        metavar="N",
        help="answer 503 to connections beyond N open at once (default: 1000, or a quarter of "
        "the open-files limit if lower; 0 turns the cap off)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default info)",
    )
    serve.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop for the runtime and the server (default auto: uvloop where installed)",
    )
    serve.add_argument(
        "--http",
        default="auto",
        choices=["auto", "h11", "httptools"],
        help="uvicorn's HTTP parser (default auto: httptools where installed, else h11)",
    )


def _version() -> str:
    import durable

    return f"{durable.__version__} (durable-objects)"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range (0-65535): {port}")
    return port


def _host(text: str) -> str:
    """``--host``: an address or name, an IPv6 address also as in a URL (``[::1]``), never empty.

    An empty value would make the socket listen on every interface (as ``0.0.0.0``), which
    nobody asks for by leaving a shell variable unset.
    """
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise argparse.ArgumentTypeError(
            f"empty host {text!r}: give an address such as 127.0.0.1 (an unset shell variable, "
            "perhaps?); 0.0.0.0 listens on every interface"
        )
    return host


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be a finite number >= 0, not {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count must be >= 0, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``durable`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 after a clean shutdown, 1 when uvicorn is missing or the server fails, 2 for
    a usage error or a file that does not declare a valid app, 130 for Ctrl-C while the file loads.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported by argparse
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "serve":
        return _serve_command(args)
    if args.command == "inspect":
        from ._inspect import run

        return run(args.directory, args.namespace, args.object, sql=args.sql, as_json=args.json)
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def serve_file(path: str | Path, argv: Sequence[str] | None = None) -> int:
    """``durable serve PATH`` with the options in ``argv`` (default: ``sys.argv[1:]``); the exit code.

    What a served file runs as a script (``python examples/counter.py --port 9000``), ending with
    ``sys.exit(serve_file(__file__))``. Its ``--help`` and usage errors name the script, and take
    every option of ``durable serve`` but the file.
    """
    display = _display_path(path)
    parser = argparse.ArgumentParser(
        prog=f"python {display}",
        description=f"Serve {display} over HTTP with uvicorn, as `durable serve {display}` does: "
        "its `Worker`, and its Durable Object classes bound to the names in its `bindings` dict.",
    )
    _add_serve_options(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported by argparse
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    args.file = display
    return _serve_command(args)


def _display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies under it (as typed), else as given."""
    try:
        return Path(path).resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Loading the file


def _file_hint(path: str) -> str:
    """What the user probably meant by a FILE that does not exist: uvicorn's ``module:attribute``
    (``durable serve app:Worker``), or a module name without ``.py``."""
    name, colon, attribute = path.rpartition(":")
    if colon and name and not Path(path).exists():
        file = name if name.endswith(".py") else f"{name.replace('.', '/')}.py"
        if Path(file).is_file():
            rename = f" (add `Worker = {attribute}` at the end of {file})" if attribute != "Worker" else ""
            return (
                f"; durable serve takes a file, not uvicorn's MODULE:ATTRIBUTE: `durable serve {file}` "
                f"serves the class named Worker in it{rename}"
            )
    if not path.endswith(".py") and Path(f"{path}.py").is_file():
        return f"; did you mean `durable serve {path}.py`?"
    return ""


def load_app(path: str | Path, *, env: str | None = None) -> LoadedApp:
    """Execute the Python file at ``path`` and collect its ``Worker``, ``bindings`` and ``vars``.

    A Python Workers project (a folder with a wrangler config, or that file) is loaded with
    ``durable.compat.python_workers.load_project(path, env=env)``; ``env`` is refused for a
    plain file, which has no environments.

    The file runs as a module named after its stem (``__name__`` is not ``"__main__"``, so its
    own command-line block stays idle), with its directory first on ``sys.path`` so that it
    can import its neighbours.

    Raises:
        AppLoadError: the file is missing or raises, or what it declares is not valid; the
            message names the problem.
    """
    import durable

    from .compat import python_workers
    from .compat.python_workers._project import project_of_entry

    if python_workers.is_project(path):
        return _load_python_workers_project(path, env)
    if str(path).endswith(".py") and Path(path).is_file():
        config = project_of_entry(path, env)
        if config is not None:  # a project's entry module: its project, as `wrangler dev src/entry.py`
            return _load_python_workers_project(config, env)
    if env is not None:
        raise AppLoadError(f"--env {env}: only a Python Workers project (a wrangler config) has environments")
    file = Path(path)
    if file.is_dir():
        raise AppLoadError(
            f"{path} is a directory without wrangler.jsonc, wrangler.json or wrangler.toml: not a Python "
            "Workers project; give a Python file (durable serve app.py) or such a project's directory"
        )
    if not file.is_file():
        raise AppLoadError(f"file not found: {path}{_file_hint(str(path))}")
    module = _exec_file(file)

    worker = getattr(module, "Worker", None)
    if worker is None:
        worker = getattr(module, "default", None)
    if worker is None:
        raise AppLoadError(no_worker_message(path, module))
    problem = worker_class_problem(worker, how_to_bind='bindings = {{"NAME": {cls}}}')
    if problem is not None:
        raise AppLoadError(
            f"{path}: `Worker` must be a class with a fetch method (a durable.WorkerEntrypoint subclass), not {problem}"
        )

    raw_bindings = getattr(module, "bindings", {})
    if not isinstance(raw_bindings, dict):
        raise AppLoadError(
            f"{path}: `bindings` must be a dict mapping binding names to Durable Object "
            f"classes, not {type(raw_bindings).__name__}"
        )
    bindings = tuple(_binding(path, name, value, durable.DurableObject) for name, value in raw_bindings.items())

    raw_vars = getattr(module, "vars", {})
    if not isinstance(raw_vars, dict) or not all(isinstance(k, str) for k in raw_vars):
        raise AppLoadError(f"{path}: `vars` must be a dict with str keys")
    clash = sorted(set(raw_vars) & set(raw_bindings))
    if clash:
        raise AppLoadError(f"{path}: {clash[0]!r} is both a binding and a var")
    return LoadedApp(path=file, worker=worker, bindings=bindings, vars=dict(raw_vars))


def _load_python_workers_project(path: str | Path, env: str | None = None) -> LoadedApp:
    """A Cloudflare Python Workers project (see ``durable.compat.python_workers``), as an app."""
    from .compat import python_workers

    try:
        project = python_workers.load_project(path, env=env)
    except python_workers.ProjectError as exc:
        raise AppLoadError(str(exc)) from exc
    bindings = tuple(Binding(name=b.name, cls=b.cls, storage=b.storage) for b in project.bindings)

    def on_runtime(runtime: Any) -> None:
        project.bind_env(runtime.env)  # the placeholders of bindings durable does not emulate
        python_workers.serving(runtime)

    return LoadedApp(
        path=project.config,
        worker=project.worker,
        bindings=bindings,
        vars=project.vars,
        on_runtime=on_runtime,
        warnings=project.warnings,
    )


def _binding(path: str | Path, name: object, value: object, base: type) -> Binding:
    if not isinstance(name, str) or not name.isidentifier():
        raise AppLoadError(f"{path}: binding name {name!r} must be a str usable as an attribute (env.{name})")
    storage = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"class", "storage"})
        if unknown:
            raise AppLoadError(f"{path}: binding {name!r} has an unknown key {unknown[0]!r}")
        if "class" not in value:
            raise AppLoadError(f'{path}: binding {name!r} needs a "class" key')
        storage = value.get("storage")
        if storage is not None and storage not in _STORAGE_KINDS:
            raise AppLoadError(f'{path}: binding {name!r} has storage {storage!r}; use "sqlite" or "kv"')
        value = value["class"]
    if not (isinstance(value, type) and issubclass(value, base)):
        raise AppLoadError(f"{path}: binding {name!r} must be a durable.DurableObject subclass, not {value!r}")
    return Binding(name=name, cls=value, storage=storage)


def _persist_problem(persist: str) -> str | None:
    """What is wrong with ``--persist DIR`` (``None``: nothing found before opening it)."""
    if not persist.strip():
        return "empty: give a directory (an unset shell variable, perhaps?), or --in-memory"
    try:
        return _directory_problem(Path(persist))
    except OSError as exc:  # a parent that cannot be searched, say
        return f"cannot be used: {exc.strerror or exc}"


def _directory_problem(path: Path) -> str | None:
    if path.exists() and not path.is_dir():
        return "exists and is not a directory"
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable" if parent != path else "not writable"
    return None


def _exec_file(file: Path) -> ModuleType:
    name = file.stem if file.stem.isidentifier() else "durable_app"
    if name in sys.modules:
        name = f"durable_app_{name}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot load {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    directory = str(file.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module  # so that dataclasses, pickling and `typing` can find it
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, SystemExit):
            raise AppLoadError(f"{file} exited while loading (sys.exit({exc.code!r}))") from exc
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and exc.name in ("workers", "js", "pyodide"):
            hint = (
                f"\n{file} is a Python Workers module: serve its project, the folder with its "
                "wrangler.jsonc or wrangler.toml (durable serve FOLDER), whose `main` names it"
            )
        raise AppLoadError(f"{file} raised while loading:\n{_user_traceback(exc)}{hint}") from exc
    return module


def _user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without the frames of durable and of Python's import machinery."""
    te = traceback.TracebackException.from_exception(exc)
    package = str(Path(__file__).resolve().parent)
    te.stack = traceback.StackSummary.from_list(
        [
            frame
            for frame in te.stack
            if not frame.filename.startswith(package) and not frame.filename.startswith("<frozen importlib")
        ]
    )
    return "".join(te.format()).rstrip()


# ---------------------------------------------------------------------------------------------
# Serving


def _serve_command(args: argparse.Namespace) -> int:
    if args.reload:
        print(f"durable: error: {RELOAD_UNSUPPORTED}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvicorn  # noqa: F401 - only checked here; used in _serve
    except ImportError:
        print(_MISSING_UVICORN, file=sys.stderr)
        return EXIT_FAILURE
    try:
        app = load_app(args.file, env=args.env)
    except AppLoadError as exc:
        print(f"durable: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C while the file imports something slow: nothing is open yet
        print(f"durable: interrupted while loading {args.file}; nothing was served", file=sys.stderr)
        return EXIT_INTERRUPTED
    for warning in app.warnings:
        print(f"durable: warning: {warning}", file=sys.stderr)
    persist = None if args.in_memory else args.persist
    if persist is not None:
        problem = _persist_problem(persist)
        if problem is not None:
            print(f"durable: error: --persist {persist!r}: {problem}", file=sys.stderr)
            return EXIT_USAGE
    try:
        loop_factory = _loop_factory(args.loop)
        if args.http == "httptools":
            import httptools  # noqa: F401 - only checked here; uvicorn imports it
    except ImportError as exc:
        print(
            f"durable: error: --{'http' if args.http == 'httptools' else 'loop'} {exc.name} "
            f"needs {exc.name}, which is not installed. Install the server extra: "
            "pip install 'durable-objects[server]'",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"durable: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    with _shutdown_signals() as stopper, sock:
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(
                    _serve(
                        app,
                        sock,
                        stopper,
                        display=args.file,
                        persist=persist,
                        access_log=args.access_log,
                        log_level=args.log_level,
                        http=args.http,
                        limits=_ConnectionLimits.from_args(args),
                    )
                )
        except Exception as exc:
            print(f"durable: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop ``durable serve`` runs on: uvloop where installed (``auto``), or as chosen.

    The runtime and uvicorn share the loop, so the choice applies to both. Raises ImportError
    when ``uvloop`` is asked for and missing.
    """
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def _bind(host: str, port: int) -> socket.socket:
    """Listen on host:port ourselves, so that the real port is known before serving (port 0).

    As uvicorn does, an address with a colon is IPv6 and anything else IPv4. The protocol is
    spelled out as IPPROTO_TCP because asyncio sets TCP_NODELAY only on sockets that say so;
    with proto 0, Nagle's algorithm and delayed ACKs add ~40 ms to every response that
    uvicorn writes in two parts (headers, then body).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _Stopper:
    """Turns SIGINT/SIGTERM into a graceful stop of the uvicorn server, once it exists.

    uvicorn installs its own handlers while it serves and, once done, re-raises the signal it
    caught; this handler is what receives that re-raise, so the process does not die before
    the runtime is closed (SIGTERM's default action would kill it on the spot).
    """

    def __init__(self) -> None:
        self.server: Any = None
        self.signalled = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.server is not None and not self.signalled:
            self.server.handle_exit(signum, frame)
        self.signalled = True


@contextlib.contextmanager
def _shutdown_signals() -> Iterator[_Stopper]:
    stopper = _Stopper()
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous[signum] = signal.signal(signum, stopper)
    try:
        yield stopper
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def _serve(
    app: LoadedApp,
    sock: socket.socket,
    stopper: _Stopper,
    *,
    display: str,
    persist: str | None,
    access_log: bool,
    log_level: str,
    http: str = "auto",
    limits: _ConnectionLimits | None = None,
) -> None:
    import uvicorn

    from ._serve_limits import MAX_HEAD_BYTES, guarded_protocol
    from ._serve_ws import websocket_protocol
    from .compat.python_workers._project import register_bindings

    limits = limits or _ConnectionLimits()

    import durable

    _configure_logging(log_level)
    async with durable.Runtime(path=persist, vars=app.vars) as runtime:
        # A class bound under several names is one namespace, as in workerd.
        register_bindings(runtime, [(b.name, b.cls, b.storage) for b in app.bindings])
        if app.on_runtime is not None:
            app.on_runtime(runtime)
        config = uvicorn.Config(
            asgi_app(app.worker, runtime),
            lifespan="on",
            access_log=access_log,
            log_level=log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            server_header=False,  # workerd sends no Server header (uvicorn's says "uvicorn")
            # WebSockets as on Cloudflare: received messages up to 32 MiB, permessage-deflate
            # when the client offers it (workerd's `web_socket_compression`, on since 2023-08-15).
            ws_max_size=32 << 20,
            ws_per_message_deflate=True,
            ws=websocket_protocol() or "auto",  # a client that breaks the protocol is not reset: see _serve_ws
            timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]  # a float works (call_later)
            # The header timeout and the connection cap: see _serve_limits (uvicorn has neither).
            http=guarded_protocol(http, limits.header_timeout, limits.max_connections),
            # The guarded protocols refuse a head over workerd's 128 KiB with its 431; h11's own
            # limit (16 KiB by default, answered 400) must not come first.
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        logging.getLogger("uvicorn.error").addFilter(_quiet_shutdown)
        server = uvicorn.Server(config)
        stopper.server = server
        if stopper.signalled:
            return
        _say(f"durable: serving {display} on {_url(sock)} (storage: {persist or 'in memory'})")
        await server.serve(sockets=[sock])
    _say("durable: stopped; storage closed")


@dataclass(frozen=True)
class _ConnectionLimits:
    """What bounds the server's connections (``--header-timeout`` and friends); None: unbounded."""

    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    max_connections: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _ConnectionLimits:
        from ._serve_limits import default_max_connections

        cap = default_max_connections() if args.max_connections is None else args.max_connections
        return cls(
            header_timeout=args.header_timeout or None,
            keep_alive_timeout=args.keep_alive_timeout,
            max_connections=cap or None,
        )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _say(text: str) -> None:
    print(text, flush=True)


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """uvicorn's log filter for ``durable serve``: a request, or the lifespan, cancelled because the
    server is stopping (its graceful-shutdown timeout ran out, or a second Ctrl-C) is one line,
    not "Exception in ASGI application" with a traceback; the stop is expected."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, asyncio.CancelledError):
        message = record.getMessage()
        if message.startswith("Exception in ASGI application"):
            record.msg, record.args = "a request was cancelled: the server stopped before it finished", ()
        elif message.startswith("Exception in 'lifespan' protocol"):
            record.msg, record.args = "the server's startup or shutdown was cancelled (stopped twice)", ()
        else:
            return True
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
    return True


def _configure_logging(level: str) -> None:
    """Show the app's own log records (a Worker's exceptions, ``durable.asgi``) on stderr.

    uvicorn configures only its own loggers; without this, records of other loggers would fall
    to Python's last-resort handler. A root logger configured already is left alone.
    """
    if not logging.getLogger().handlers:
        numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper())
        logging.basicConfig(level=numeric, format="%(levelname)-9s %(name)s: %(message)s")
