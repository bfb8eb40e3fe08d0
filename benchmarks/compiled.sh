#!/usr/bin/env bash
# The eighteenth pass's experiment (docs/performance.md, "Eighteenth pass: a compiler for the hot
# path"): durable's own modules compiled to C extensions by mypyc (or Cython), measured against
# the same tree run as Python.
#
#   bash benchmarks/compiled.sh [mypyc|cython] [bench_storage.py options, e.g. --no-full --repeats 5]
#   COUNTS=1 bash benchmarks/compiled.sh mypyc     # instructions.sh's five workloads instead
#
# Run it from the repository root. It exports HEAD (`git archive`) twice into a new temporary
# directory, at paths of the same length (`pure` and `comp`), compiles the second and runs
# bench_storage.py on each, pure first (or, with COUNTS=1, benchmarks/instructions.sh's workloads,
# each tree on its own PYTHONPATH). The repository itself is not touched: the source changes the
# compilers need are made in the copy only, and the temporary directory is removed at the end.
# Needs gcc and the Python headers, and mypy (for mypyc, a dev dependency) or Cython (`pip
# install cython`; not a dependency). A mypyc build takes about 6 minutes, a Cython one about 11,
# on two cores.
#
# mypyc: every module that compiles is compiled in one shared library (native calls between
# them); the list below leaves out those it refuses (async generators, nested classes, class
# bodies it does not support, a class assigned __getattr__, an internal error). The copy gets
# the changes listed in `patch_for_mypyc` below: classes made non-native where a native class
# cannot do what the code needs (exceptions with two builtin bases, C bases such as
# asyncio.Future and sqlite3.Connection, weakly referenced classes, patched classes), closures in
# methods of non-native classes turned into functools.partial (an internal mypyc error), and
# four work-arounds of mypyc bugs. Cython compiles the unchanged files, with
# annotation_typing=False (it refuses an ABCMeta where an annotation says `type`) and without
# durable/_done.py (its compiled generator breaks `await` of a storage call: "coroutine raised
# StopIteration").
set -euo pipefail
compiler=${1:-mypyc}
shift || true
python=${PYTHON:-.venv/bin/python}
python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")
bin=$(dirname "$python")
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
for tree in pure comp; do
    mkdir "$base/$tree"
    git archive HEAD | tar -x -C "$base/$tree"
done

patch_for_mypyc() {
    "$python" - "$1" <<'PY'
import ast
import re
import sys
from pathlib import Path

root = Path(sys.argv[1])
IMPORT = "from __future__ import annotations\n"


def edit(rel, change):
    p = root / rel
    p.write_text(change(p.read_text()))


def decorate(rel, names, attr):
    def change(src):
        for name in names if names != "*" else re.findall(r"^class (\w+)", src, re.M):
            src, n = re.subn(rf"^((?:@.*\n)*)class {name}\b", rf"@_mypyc_attr({attr})\n\1class {name}", src, 1, re.M)
            assert n == 1, (rel, name)
        return src.replace(IMPORT, IMPORT + "\nfrom mypy_extensions import mypyc_attr as _mypyc_attr\n", 1)

    edit(rel, change)


# Non-native classes: two builtin bases (exceptions), a C base whose layout a native class does
# not keep (asyncio.Future: a segfault at import; sqlite3.Connection), weakly referenced (a
# WeakSet, a WeakKeyDictionary: native classes take no weak references), names assigned to the
# class after it (Done), a decorated subclass (BlockingNamespace of _Handle), an attribute
# redeclared with another type (Directory.path).
NON_NATIVE = {
    "durable/_exceptions.py": "*",
    "durable/_wsbase.py": ["WebSocketClosed", "WebSocketError"],
    "durable/_state.py": ["EventTimeoutError"],
    "durable/_websocket.py": ["ReasonWithoutCodeError"],
    "durable/_done.py": ["Done", "_DoneNone"],
    "durable/_stub.py": ["RpcPromise", "_FetchPromise", "_RedirectedFetch"],
    "durable/_dbfile.py": ["_Connection"],
    "durable/_runtime.py": ["Runtime"],
    "durable/_host.py": ["ObjectHost"],
    "durable/_sqlite.py": ["ObjectDatabase"],
    "durable/_eager.py": ["EventCall"],  # (__weakref__ in its slots: a current task)
    "durable/_inspect.py": ["_Text", "_Leave", "_Undecodable"],
    "durable/_util.py": ["NoPublicConstructor"],
    "durable/_directory.py": ["StorageDirectory", "Directory"],
    "durable/_blocking.py": ["_Handle"],
}
for rel, names in NON_NATIVE.items():
    decorate(rel, names, "native_class=False")
decorate("durable/_object.py", ["DurableObject"], "allow_interpreted_subclasses=True")  # users subclass it

# Exact replacements: closures in methods of non-native classes (mypyc's internal error in
# add_var_to_env_class) become functools.partial; mypyc bugs worked around.
FIX = {
    "durable/_stub.py": [
        (IMPORT, IMPORT + "from functools import partial as _partial\nimport _asyncio  # (mypyc names it for RpcPromise's base)\n"),
        ("lambda: self._call(kind, name, args, kwargs)", "_partial(self._call, kind, name, args, kwargs)"),
        ("        def make() -> Awaitable[Response]:\n            return self._fetch_buffered(request)\n",
         "        make = _partial(self._fetch_buffered, request)\n"),
        ("lambda: self._fetch_buffered(request)", "_partial(self._fetch_buffered, request)"),
        ("self.add_done_callback(lambda promise: task.cancel() if promise.cancelled() else None)",
         "self.add_done_callback(_partial(_cancel_with, task))"),
        ("\n\n# (and stub.fetch's promises,",
         "\n\ndef _cancel_with(task: asyncio.Task[Any], promise: asyncio.Future[Any]) -> None:\n"
         "    if promise.cancelled():\n        task.cancel()\n\n\n# (and stub.fetch's promises,"),
    ],
    "durable/_storage.py": [
        ("lambda: self._table.scan(bounds, reverse=reverse, limit=limit)",
         "partial(self._table.scan, bounds, reverse=reverse, limit=limit)"),
        ("lambda: self._table.delete(keys, gated=gated)", "partial(self._table.delete, keys, gated=gated)"),
        ("lambda: self._table.clear(gated=gated)", "partial(self._table.clear, gated=gated)"),
    ],
    "durable/_done.py": [  # (class attribute assignments: KeyError '__name__' inside mypyc)
        ('Done.__name__ = Done.__qualname__ = "StorageAwaitable"',
         'setattr(Done, "__name__", "StorageAwaitable")\nsetattr(Done, "__qualname__", "StorageAwaitable")'),
        ("Done.__getattr__ = _forgot_await_attribute  # type: ignore[attr-defined]",
         'setattr(Done, "__getattr__", _forgot_await_attribute)'),
        ('_DoneNone.__name__ = _DoneNone.__qualname__ = "StorageAwaitable"',
         'setattr(_DoneNone, "__name__", "StorageAwaitable")\nsetattr(_DoneNone, "__qualname__", "StorageAwaitable")'),
    ],
    # the dataclass default None of a field typed bool: mypyc's generated __init__ checks the bool
    "durable/_object.py": [
        ("    is_retry: bool = dataclasses.field(default=cast(bool, None), kw_only=True)",
         "    is_retry: Any = dataclasses.field(default=None, kw_only=True)"),
    ],
    # a __next__ typed as returning a tuple: the generated tp_iternext does not compile
    "durable/_kv.py": [("    def __next__(self) -> tuple[str, Any]:", "    def __next__(self) -> Any:")],
}
for rel, pairs in FIX.items():
    def change(src, pairs=pairs, rel=rel):
        for old, new in pairs:
            assert src.count(old) == 1, (rel, old)
            src = src.replace(old, new)
        return src

    edit(rel, change)
# a native attribute "_thread" becomes the C field "__thread", a keyword of gcc's
for rel in ("durable/_dbfile.py", "tests/test_dbmeta.py"):
    edit(rel, lambda src: re.sub(r"\b(self|spares)\._thread\b", r"\1._spare_thread", src))

for p in (root / "durable").glob("*.py"):
    src = p.read_text()
    # the camelCase aliases' `if TYPE_CHECKING:` declarations in class bodies (typing only)
    src = re.sub(r"^    if TYPE_CHECKING:.*\n(?:(?:        .*|\s*)\n)*", "", src, flags=re.M)
    # a non-native class's annotation naming a type imported under TYPE_CHECKING: mypyc stores
    # the type object at import, NULL inside an import cycle (a segfault): Any instead
    tree = ast.parse(src)
    late = {a.asname or a.name for node in tree.body if isinstance(node, ast.If)
            and getattr(node.test, "id", None) == "TYPE_CHECKING"
            for n in ast.walk(node) if isinstance(n, ast.ImportFrom) for a in n.names}
    lines = src.splitlines(keepends=True)
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if not node.decorator_list and not node.keywords and not any("Protocol" in ast.unparse(b) for b in node.bases):
            continue  # native
        for st in node.body:
            if isinstance(st, ast.AnnAssign) and {n.id for n in ast.walk(st.annotation) if isinstance(n, ast.Name)} & late:
                a = st.annotation
                line = lines[a.lineno - 1]
                lines[a.lineno - 1] = line[: a.col_offset] + "Any" + line[a.end_col_offset :]
    new = "".join(lines)
    if new != "".join(src.splitlines(keepends=True)) and not re.search(r"^from typing import .*\bAny\b", new, re.M):
        new = new.replace(IMPORT, IMPORT + "\nfrom typing import Any\n", 1)
    if new != p.read_text():
        p.write_text(new)
PY
}

cd "$base/comp"
mv pyproject.toml ../pyproject.toml.aside  # mypyc's and cythonize's setuptools refuse its PEP 639 license field
if [ "$compiler" = mypyc ]; then
    patch_for_mypyc .
    # Left out: async generators (_http, _websocket, _wsdelivery, _wstesting, asgi), nested
    # classes (_serve_limits, _serve_ws), statements or __getattr__ mypyc refuses (_blocking,
    # _exceptions: a surrogate in a literal, _sql), internal errors (_inspect, _hibernation),
    # `async with Runtime(...)` of a non-native Runtime (_cli).
    modules=$(ls durable/*.py | grep -v -E '/(_http|_websocket|_wsdelivery|_wstesting|asgi|_serve_limits|_serve_ws|_blocking|_exceptions|_sql|_inspect|_hibernation|_cli)\.py$')
    "$bin/mypyc" $modules >"$base/build.log" 2>&1 || { tail -30 "$base/build.log"; exit 1; }
else
    modules=$(ls durable/*.py | grep -v -E '/(__init__|__main__|_done)\.py$')
    "$bin/cythonize" -i -3 -X annotation_typing=False $modules >"$base/build.log" 2>&1 || { tail -30 "$base/build.log"; exit 1; }
fi
cd - >/dev/null
for tree in pure comp; do
    echo "== $tree ($compiler)"
    if [ "${COUNTS:-}" = 1 ]; then
        for workload in seq-noop seq-increment conc-increment seq-fetch conc-fetch; do
            (cd "$base/$tree" && PYTHONHASHSEED=0 PYTHONPATH="$base/$tree" bash benchmarks/instructions.sh "$workload" "$python")
        done
    else
        (cd "$base/$tree" && PYTHONPATH="$base/$tree" "$python" benchmarks/bench_storage.py "$@")
    fi
done
